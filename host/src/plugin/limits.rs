//! The sandbox limits a plugin runs under.

use serde::{Deserialize, Serialize};

/// Sandbox limits of one plugin (`[limits]` in `NAME.toml` beside `NAME.wasm`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PluginLimits {
    /// Fuel (roughly, WebAssembly instructions) per call.
    pub fuel_per_call: u64,
    /// Fuel for instantiation (start functions, interpreter set-up).
    pub fuel_instantiate: u64,
    /// Linear memory per instance, MiB.
    pub memory_mib: u64,
    /// Instances a store may create.
    pub max_instances: u32,
    /// Tables a store may create.
    pub max_tables: u32,
    /// Memories a store may create.
    pub max_memories: u32,
    /// Largest table, in elements.
    pub max_table_elements: usize,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            fuel_per_call: 20_000_000,
            fuel_instantiate: 2_000_000_000,
            memory_mib: 64,
            max_instances: 64,
            max_tables: 64,
            max_memories: 16,
            max_table_elements: 100_000,
        }
    }
}
