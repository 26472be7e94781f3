//! Policy plugins: cost models, eligibility rules and gates as sandboxed
//! WebAssembly components behind the WIT package `thermoroute:policy@0.2.0`
//! (`wit/policy.wit`); components built against the frozen 0.1.0
//! (`wit/0.1.0/policy.wit`) load and decide as before. The version comes
//! from a component's export names; a mix of versions, or one this host
//! does not know, is a load error.
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
//! no network, frozen clocks whose pollables never block, and seeded
//! randomness; fuel per call, a wall-clock epoch deadline, a memory cap and
//! bounded instance/table counts per store (limits per plugin, from a
//! `NAME.toml` next to `NAME.wasm`, capped by the operator's `[plugins]`
//! ceilings). An instance is reused across calls and rebuilt after a trap; a
//! role that keeps faulting is tripped by its circuit breaker. A watcher reloads a plugin when its file changes; a
//! broken new version leaves the old one serving.
//!
//! This file only declares and re-exports; each item lives in the module
//! below that owns it, so no submodule imports from here.
#![warn(missing_docs)]

pub mod authoring;
mod bindings;
mod breaker;
mod cache_dir;
mod calls;
mod cases;
mod check;
mod compile_cache;
mod convert;
mod cost_payload;
mod error;
mod fast_lower;
mod guest_log;
mod guests;
mod limits;
mod pool;
mod queue_cases;
mod queue_roles;
mod queue_world;
mod reload;
mod roles;
mod runtime;
mod sandbox;
mod user_cases;
mod world;

/// The generated WIT types of both versions, for tests that call an
/// [`Instance`] directly.
#[doc(hidden)]
pub use bindings::{v0_1, v0_2};
pub use cache_dir::default_cache_dir;
pub use cases::ConformanceCase;
pub use check::{CheckReport, conformance, conformance_under, user_cases_under};
pub use cost_payload::{ADDITIVE_TOLERANCE, check_additive};
pub use error::{PluginError, PluginFault};
pub use guest_log::{GuestLine, GuestOutput, LogSource};
pub use limits::{LimitGrant, PluginLimits, grant};
pub use queue_roles::{PluginAdmit, PluginPreempt, PluginQueueOrder, queue_roles};
pub use queue_world::QueueRole;
pub use roles::{PluginCost, PluginEligibility, PluginGate, PluginSet, ReloadNotice};
pub use runtime::{CacheUse, Instance, LoadedPlugin, Runtime};
pub use user_cases::{
    CaseKind, CaseRoles, CasesError, UserCase, UserCaseResult, guest_output, parse_cases,
    read_cases, run_cases,
};
pub use world::{Role, Roles, WitVersion};
