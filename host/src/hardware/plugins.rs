//! `[plugins]`: the operator's ceilings on what any policy plugin may use,
//! the per-call wall-clock deadline, and the circuit breaker.
//!
//! A plugin's own `NAME.toml` may ask for less than these, or for more up to
//! the ceiling; it never gets past them.

use serde::{Deserialize, Serialize};

/// The operator's limits on every plugin of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginCeilings {
    /// Most fuel (≈ instructions) one call may get.
    pub max_fuel_per_call: u64,
    /// Most fuel an instantiation may get.
    pub max_fuel_instantiate: u64,
    /// Most linear memory per instance, MiB.
    pub max_memory_mib: u64,
    /// Most instances a store may create.
    pub max_instances: u32,
    /// Longest text (an error message, one reason) kept from a plugin, bytes.
    pub max_log_bytes: usize,
    /// Wall-clock deadline of a call unless the manifest asks otherwise, ms.
    pub deadline_ms: u64,
    /// Longest deadline a manifest may ask for, ms.
    pub max_deadline_ms: u64,
    /// Wall-clock deadline of an instantiation, ms.
    pub instantiate_deadline_ms: u64,
    /// Consecutive faults after which a plugin role is tripped (0: never).
    pub breaker_faults: u32,
    /// Calls a tripped role is answered without the plugin (the native
    /// default, or the gate's fail-closed choice) before one retry.
    pub breaker_backoff_calls: u64,
    /// Longest an admission plugin may hold a task out of a device queue,
    /// virtual ms; past it the task is rejected with a reason naming this
    /// limit (0: a hold is a rejection at once).
    pub max_hold_ms: u64,
}

/// Largest `[plugins] max_hold_ms` the hardware file may set (one hour).
pub const MAX_HOLD_LIMIT_MS: u64 = 3_600_000;

impl Default for PluginCeilings {
    fn default() -> Self {
        PluginCeilings {
            max_fuel_per_call: 200_000_000,
            max_fuel_instantiate: 4_000_000_000,
            max_memory_mib: 256,
            max_instances: 64,
            max_log_bytes: 4096,
            deadline_ms: 100,
            max_deadline_ms: 1000,
            instantiate_deadline_ms: 5000,
            breaker_faults: 5,
            breaker_backoff_calls: 1000,
            max_hold_ms: 1000,
        }
    }
}
