//! The store state every plugin call runs in, and the two wall-clock
//! guards on top of fuel: blocking clock pollables that return at once, and
//! an epoch ticker that makes a call past its deadline trap.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::guest_log::{LogSource, SharedLog};
use wasmtime::component::{Linker, Resource, ResourceTable};
use wasmtime::{Engine, StoreContextMut, StoreLimits};
use wasmtime_wasi::p2::{DynPollable, Pollable, subscribe};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

/// Milliseconds between two epoch ticks: the deadline's resolution.
pub(super) const TICK_MS: u64 = 5;

/// Per-store state: a WASI context that grants nothing, and the limits.
pub struct Sandbox {
    pub(super) wasi: WasiCtx,
    pub(super) table: ResourceTable,
    pub(super) limits: StoreLimits,
    /// What the guest printed or logged since the last call ended; its
    /// stdout and stderr streams write into the same log.
    pub(super) guest_log: SharedLog,
}

impl Sandbox {
    /// One line the guest logged deliberately (the WIT 0.2 `log` import).
    #[allow(dead_code)] // called by the 0.2 `log` host (issue 15, in progress)
    pub(super) fn log_line(&mut self, source: LogSource, message: &str) {
        self.guest_log.lock().log(source, message);
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Clocks that never move: a plugin cannot time anything, so its answers
/// cannot depend on when it runs.
pub(super) struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// A pollable that is ready at once: what a clock subscription becomes.
struct Ready;

impl Pollable for Ready {
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(std::future::ready(()))
    }
}

fn ready_pollable(
    mut store: StoreContextMut<'_, Sandbox>,
) -> wasmtime::Result<(Resource<DynPollable>,)> {
    let table = &mut store.data_mut().table;
    let r = table.push(Ready)?;
    Ok((subscribe(table, r)?,))
}

/// The `wasi:clocks/monotonic-clock` version the linker provides (older
/// guests' imports match it by semver).
const MONOTONIC_CLOCK: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Replaces the monotonic clock's subscriptions with pollables that are
/// ready at once. The guest's clock is frozen, so no amount of waiting
/// changes anything it can observe; real sleeping would only let a plugin
/// stall the host outside fuel's reach.
pub(super) fn never_block(linker: &mut Linker<Sandbox>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut clock = linker.instance(MONOTONIC_CLOCK)?;
    clock.func_wrap("subscribe-duration", |store, (_,): (u64,)| {
        ready_pollable(store)
    })?;
    clock.func_wrap("subscribe-instant", |store, (_,): (u64,)| {
        ready_pollable(store)
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Epoch ticks a deadline of `ms` needs: rounded up, plus one for the tick
/// in progress.
pub(super) fn ticks(ms: u64) -> u64 {
    ms.div_ceil(TICK_MS).saturating_add(1)
}

/// Advances `engine`'s epoch every [`TICK_MS`] from a background thread
/// that ends when the engine is dropped.
pub(super) fn start_ticker(engine: &Engine) -> std::io::Result<()> {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("plugin-epoch".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(TICK_MS));
                match weak.upgrade() {
                    Some(engine) => engine.increment_epoch(),
                    None => break,
                }
            }
        })
        .map(drop)
}
