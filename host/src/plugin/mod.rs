//! Policy plugins: cost models, eligibility rules and gates as sandboxed
//! WebAssembly components behind the WIT package `thermoroute:policy@0.1.0`
//! (`wit/policy.wit`).
//!
//! ```text
//!   plugin.wasm ──load──▶ Runtime ──compile (or on-disk cache)──▶ LoadedPlugin
//!                                                                  │ InstancePre
//!   engine ──CostModel/Eligibility/Gate──▶ PluginPolicy ──call──▶ Instance (Store + limits)
//!                 ▲                             │ trap / out of fuel / bad output
//!                 └──── native default ◀────────┘ PolicyFault (traced)
//! ```
//!
//! The sandbox grants nothing: a WASI context with no files, no environment,
//! no network, frozen clocks and seeded randomness; fuel per call, a memory
//! cap and bounded instance/table counts per store (limits per plugin, from a
//! `NAME.toml` next to `NAME.wasm`). An instance is reused across calls and
//! rebuilt after a trap. A watcher reloads a plugin when its file changes; a
//! broken new version leaves the old one serving.

mod bindings;
pub mod build;
mod check;
mod convert;
mod roles;
mod runtime;
pub mod templates;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use check::{CheckReport, ConformanceCase, conformance};
pub use roles::{PluginCost, PluginEligibility, PluginGate, PluginSet, ReloadNotice};
pub use runtime::{CacheUse, Instance, LoadedPlugin, Runtime};

/// The roles a component serves, from its exports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roles {
    pub cost: bool,
    pub eligibility: bool,
    pub gate: bool,
}

impl Roles {
    /// The WIT world these exports implement.
    pub fn world(self) -> &'static str {
        match (self.cost, self.eligibility, self.gate) {
            (true, true, true) => "policy-plugin",
            (true, false, false) => "cost-plugin",
            (false, true, false) => "eligibility-plugin",
            (false, false, true) => "gate-plugin",
            (false, false, false) => "none",
            _ => "a mix of roles (no single world)",
        }
    }

    pub fn has(self, role: Role) -> bool {
        match role {
            Role::Cost => self.cost,
            Role::Eligibility => self.eligibility,
            Role::Gate => self.gate,
        }
    }
}

/// One of the three policy roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Cost,
    Eligibility,
    Gate,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Cost => "cost",
            Role::Eligibility => "eligibility",
            Role::Gate => "gate",
        }
    }

    pub fn interface(self) -> &'static str {
        match self {
            Role::Cost => bindings::COST_EXPORT,
            Role::Eligibility => bindings::ELIGIBILITY_EXPORT,
            Role::Gate => bindings::GATE_EXPORT,
        }
    }
}

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
    /// Instances, tables and memories a store may create.
    pub max_instances: u32,
    pub max_tables: u32,
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

/// The manifest beside a component (`NAME.toml`), or a plugin source
/// directory's `plugin.toml`: how to build it and the limits it runs under.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Manifest {
    #[serde(default)]
    pub plugin: Option<build::BuildSpec>,
    #[serde(default)]
    pub limits: PluginLimits,
}

/// A plugin that cannot be loaded. Always fatal for the load; a running
/// plugin that breaks becomes a [`PluginFault`] instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    #[error("cannot read plugin {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a WebAssembly component: {detail}")]
    NotAComponent { path: PathBuf, detail: String },
    #[error(
        "{path} does not export {wanted} (it exports: {found}); build it against world `{world}` of wit/policy.wit"
    )]
    MissingRole {
        path: PathBuf,
        wanted: &'static str,
        world: &'static str,
        found: String,
    },
    #[error("{path} needs imports the sandbox does not provide: {detail}")]
    Link { path: PathBuf, detail: String },
    #[error("{path} failed to instantiate: {detail}")]
    Instantiate { path: PathBuf, detail: String },
    #[error("bad plugin manifest {path}: {detail}")]
    Manifest { path: PathBuf, detail: String },
    #[error("plugin runtime: {0}")]
    Runtime(String),
}

/// A call into a plugin that did not produce a usable answer. Never fatal:
/// the caller falls back to the native default (gates fail closed).
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PluginFault {
    #[error("ran out of fuel ({fuel} per call)")]
    OutOfFuel { fuel: u64 },
    #[error("exceeded its memory limit ({limit_mib} MiB)")]
    MemoryLimit { limit_mib: u64 },
    #[error("overflowed its call stack")]
    StackOverflow,
    #[error("trapped: {detail}")]
    Trap { detail: String },
    #[error("answered with an error: {message}")]
    GuestError { message: String },
    #[error("returned invalid output: {detail}")]
    InvalidOutput { detail: String },
    #[error("could not be instantiated: {detail}")]
    Instantiate { detail: String },
}

impl PluginFault {
    /// Short machine-readable kind, for traces and tables.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginFault::OutOfFuel { .. } => "out_of_fuel",
            PluginFault::MemoryLimit { .. } => "memory_limit",
            PluginFault::StackOverflow => "stack_overflow",
            PluginFault::Trap { .. } => "trap",
            PluginFault::GuestError { .. } => "guest_error",
            PluginFault::InvalidOutput { .. } => "invalid_output",
            PluginFault::Instantiate { .. } => "instantiate",
        }
    }
}

/// Where compiled components are cached: `$THERMOROUTE_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/thermoroute`, else `~/.cache/thermoroute`; `components/`
/// below it.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = if let Some(d) = std::env::var_os("THERMOROUTE_CACHE_DIR") {
        PathBuf::from(d)
    } else if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        PathBuf::from(d).join("thermoroute")
    } else {
        PathBuf::from(std::env::var_os("HOME")?).join(".cache/thermoroute")
    };
    Some(base.join("components"))
}
