//! What goes wrong with a plugin: at load time ([`PluginError`], fatal for
//! the load) or in a call ([`PluginFault`], never fatal).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A plugin that cannot be loaded. Always fatal for the load; a running
/// plugin that breaks becomes a [`PluginFault`] instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The component (or its manifest) could not be read.
    #[error("cannot read plugin {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The file is not a WebAssembly component.
    #[error("{path} is not a WebAssembly component: {detail}")]
    NotAComponent {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        detail: String,
    },
    /// The component does not export the role it was loaded for.
    #[error(
        "{path} does not export {wanted} (it exports: {found}); build it against world `{world}` of wit/policy.wit"
    )]
    MissingRole {
        /// The file.
        path: PathBuf,
        /// The interface the role needs.
        wanted: &'static str,
        /// The world that exports it.
        world: &'static str,
        /// What the component exports instead.
        found: String,
    },
    /// The component exports role interfaces of more than one version of
    /// `thermoroute:policy` (say `cost-model@0.1.0` and `gate@0.2.0`): the
    /// host would not know which contract it keeps.
    #[error(
        "{path} exports role interfaces of several versions of thermoroute:policy ({found}); build every role against one version, wit/policy.wit (0.2.0) for new plugins"
    )]
    MixedVersions {
        /// The file.
        path: PathBuf,
        /// The policy exports, with their versions.
        found: String,
    },
    /// The component exports `thermoroute:policy/...@X` for a version X this
    /// host does not know.
    #[error(
        "{path} exports {found}, a version of thermoroute:policy this host does not know (it loads {supported}); rebuild it against wit/policy.wit (0.2.0), or upgrade thermoroute if it was built for a newer one"
    )]
    UnknownVersion {
        /// The file.
        path: PathBuf,
        /// The exports of the unknown version(s).
        found: String,
        /// The versions this host loads.
        supported: String,
    },
    /// The component imports something the sandbox does not provide.
    #[error("{path} needs imports the sandbox does not provide: {detail}")]
    Link {
        /// The file.
        path: PathBuf,
        /// What the linker said.
        detail: String,
    },
    /// The component could not be instantiated (a trap or a limit at start-up).
    #[error("{path} failed to instantiate: {detail}")]
    Instantiate {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The `NAME.toml` beside the component is malformed.
    #[error("bad plugin manifest {path}: {detail}")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What the parser said.
        detail: String,
    },
    /// The wasmtime engine or the shared runtime could not be set up.
    #[error("plugin runtime: {0}")]
    Runtime(String),
}

/// A call into a plugin that did not produce a usable answer. Never fatal:
/// the caller falls back to the native default (gates fail closed).
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "fault", rename_all = "snake_case")]
#[non_exhaustive]
pub enum PluginFault {
    /// The call (or the instantiation) used up its fuel.
    #[error("ran out of fuel ({fuel} units)")]
    OutOfFuel {
        /// The fuel it had: per call, or per instantiation.
        fuel: u64,
    },
    /// The call outlived its wall-clock deadline (it blocked, or ran long
    /// on a slow machine before its fuel ran out).
    #[error("missed its deadline ({ms} ms)")]
    Deadline {
        /// The deadline, ms.
        ms: u64,
    },
    /// The role is tripped after consecutive faults; the plugin was not
    /// called.
    #[error("is tripped after {faults} consecutive faults; retried in {calls} calls")]
    Tripped {
        /// The consecutive faults that tripped it.
        faults: u32,
        /// Calls left before the retry.
        calls: u64,
    },
    /// The instance tried to grow its memory past the limit.
    #[error("exceeded its memory limit ({limit_mib} MiB)")]
    MemoryLimit {
        /// The limit, MiB.
        limit_mib: u64,
    },
    /// The guest recursed too deep.
    #[error("overflowed its call stack")]
    StackOverflow,
    /// Any other trap.
    #[error("trapped: {detail}")]
    Trap {
        /// The trap, as wasmtime describes it.
        detail: String,
    },
    /// The guest answered with `err(message)`.
    #[error("answered with an error: {message}")]
    GuestError {
        /// The guest's message, clipped.
        message: String,
    },
    /// The answer broke the contract (NaN cost, wrong length, ...).
    #[error("returned invalid output: {detail}")]
    InvalidOutput {
        /// What was wrong with it.
        detail: String,
    },
    /// A fresh instance could not be built for the call.
    #[error("could not be instantiated: {detail}")]
    Instantiate {
        /// What went wrong.
        detail: String,
    },
}

impl PluginFault {
    /// Short machine-readable kind, for traces and tables.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginFault::OutOfFuel { .. } => "out_of_fuel",
            PluginFault::Deadline { .. } => "deadline",
            PluginFault::Tripped { .. } => "tripped",
            PluginFault::MemoryLimit { .. } => "memory_limit",
            PluginFault::StackOverflow => "stack_overflow",
            PluginFault::Trap { .. } => "trap",
            PluginFault::GuestError { .. } => "guest_error",
            PluginFault::InvalidOutput { .. } => "invalid_output",
            PluginFault::Instantiate { .. } => "instantiate",
        }
    }
}
