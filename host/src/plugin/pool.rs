//! The pool plugin instances come from: slots reserved once per process,
//! sized above every limit a store enforces.

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Instances come from a pool of slots reserved once per process: a new
/// instance reuses a slot's mappings (its memory reset in place) instead of
/// mapping and unmapping memory, the cost that dominated instantiation. The
/// slot sizes sit above every limit a store enforces (memory up to 4 GiB,
/// 16 memories and tables per module), so the store's limiter, not the pool,
/// is what a greedy plugin meets. The pool bounds how many instances live
/// at once; past it an instantiation fails as a fault like any other.
pub(super) fn pooled_engine(config: &Config) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(POOL_INSTANCES)
        .total_core_instances(4 * POOL_INSTANCES)
        .total_memories(POOL_MEMORIES)
        .total_tables(4 * POOL_INSTANCES)
        // Fiber stacks serve async calls, which plugins never make; each
        // would cost a guard-page mprotect when the pool is reserved.
        .total_stacks(0)
        .max_memories_per_module(16)
        .max_tables_per_module(16)
        .table_elements(1 << 20)
        .max_memory_size(4 << 30)
        .pagemap_scan(Enabled::Auto);
    // Where the kernel can say which pages a guest touched (Linux 6.7's
    // PAGEMAP_SCAN), those pages are reset in place on release instead of
    // being unmapped and faulted in again by the next instance. Without it
    // a kept region is cleared whole with memset, slower than unmapping.
    if kernel_has_pagemap_scan() {
        pool.linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT);
    }
    let mut config = config.clone();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

/// Whether this kernel has the PAGEMAP_SCAN ioctl (Linux 6.7 and later).
fn kernel_has_pagemap_scan() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .ok()
        .and_then(|release| linux_at_least(&release, (6, 7)))
        .unwrap_or(false)
}

/// Whether a Linux release string (`6.18.44-fc`) is at least `min`
/// (major, minor); `None` when it does not start with two numbers.
fn linux_at_least(release: &str, min: (u32, u32)) -> Option<bool> {
    let mut numbers = release.trim().split(|c: char| !c.is_ascii_digit());
    let major = numbers.next()?.parse::<u32>().ok()?;
    let minor = numbers.next()?.parse::<u32>().ok()?;
    Some((major, minor) >= min)
}

/// Bytes of a released memory or table kept mapped and reset in place: a
/// Rust or C guest's stack and heap; more of a larger guest is unmapped.
const KEEP_RESIDENT: usize = 2 << 20;

/// Component instances alive at once in one process.
const POOL_INSTANCES: u32 = 1000;
/// Linear memories alive at once (each reserves 4 GiB of address space,
/// none of it committed until used: 1 TiB in all, an eighth of what a
/// process may map).
const POOL_MEMORIES: u32 = 256;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_releases_compare_by_major_and_minor() {
        assert_eq!(linux_at_least("6.18.44-fc-v1300\n", (6, 7)), Some(true));
        assert_eq!(linux_at_least("6.7.0", (6, 7)), Some(true));
        assert_eq!(linux_at_least("6.6.30-generic", (6, 7)), Some(false));
        assert_eq!(linux_at_least("5.15.0-91-generic", (6, 7)), Some(false));
        assert_eq!(linux_at_least("10.1", (6, 7)), Some(true));
        assert_eq!(linux_at_least("", (6, 7)), None);
        assert_eq!(linux_at_least("linux", (6, 7)), None);
    }
}
