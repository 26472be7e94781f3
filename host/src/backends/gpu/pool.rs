//! GPU buffers kept between calls. Allocating device memory costs far more
//! than a kernel on small tensors, so every kernel takes its buffers from
//! here and gives them back when done.

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::{Arc, Mutex};

/// Most bytes kept idle for reuse; beyond this, returned buffers are freed.
const POOL_LIMIT_BYTES: u64 = 512 << 20;

/// What the pool has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PoolStats {
    /// Requests served by a buffer given back earlier.
    pub reused: u64,
    /// Requests that allocated a new buffer.
    pub allocated: u64,
    /// Bytes held idle now.
    pub idle_bytes: u64,
}

#[derive(Default)]
struct PoolState {
    /// Idle buffers by (usage bits, size).
    idle: HashMap<(u32, u64), Vec<wgpu::Buffer>>,
    stats: PoolStats,
}

/// Idle buffers by usage and power-of-two size.
#[derive(Default, Clone)]
pub(super) struct BufferPool {
    state: Arc<Mutex<PoolState>>,
}

impl BufferPool {
    /// A buffer of at least `bytes` with exactly `usage`, reused when one is
    /// idle. Sizes round up to a power of two so that similar requests share.
    pub(super) fn take(
        &self,
        device: &wgpu::Device,
        label: &str,
        usage: wgpu::BufferUsages,
        bytes: u64,
    ) -> Pooled {
        let size = bytes.max(16).next_power_of_two();
        let key = (usage.bits(), size);
        let reused = {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            let found = state.idle.get_mut(&key).and_then(Vec::pop);
            if found.is_some() {
                state.stats.reused += 1;
                state.stats.idle_bytes -= size;
            } else {
                state.stats.allocated += 1;
            }
            found
        };
        let buffer = reused.unwrap_or_else(|| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            })
        });
        Pooled {
            buffer: Some(buffer),
            pool: self.clone(),
        }
    }

    pub(super) fn stats(&self) -> PoolStats {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).stats
    }

    fn give(&self, buffer: wgpu::Buffer) {
        let size = buffer.size();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.stats.idle_bytes + size > POOL_LIMIT_BYTES {
            return; // dropped: freed by wgpu
        }
        state.stats.idle_bytes += size;
        state
            .idle
            .entry((buffer.usage().bits(), size))
            .or_default()
            .push(buffer);
    }
}

/// A buffer on loan from the pool; it goes back when dropped.
pub(super) struct Pooled {
    buffer: Option<wgpu::Buffer>,
    pool: BufferPool,
}

impl Pooled {
    /// Frees the buffer instead of returning it (its state is unknown, e.g.
    /// a mapping that failed).
    pub(super) fn discard(mut self) {
        if let Some(b) = self.buffer.take() {
            b.destroy();
        }
    }
}

impl Deref for Pooled {
    type Target = wgpu::Buffer;

    fn deref(&self) -> &wgpu::Buffer {
        self.buffer.as_ref().expect("present until dropped")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(b) = self.buffer.take() {
            self.pool.give(b);
        }
    }
}
