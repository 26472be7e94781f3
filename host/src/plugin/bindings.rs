//! The one place the host generates bindings from the WIT packages, both
//! versions it loads.
//!
//! `wit/policy.wit` is `thermoroute:policy@0.2.0` (module [`v0_2`]), bound
//! through its `host` world: every role and the `log` import. The frozen
//! `wit/0.1.0/policy.wit` (`thermoroute:policy@0.1.0`, module [`v0_1`]) binds
//! through `policy-plugin`, which exports its three roles. A component that
//! serves only some roles is loaded through those roles' `GuestIndices`, so
//! one set of generated types per version covers every world.
//!
//! The names at the top level are 0.1.0's, which the host's 0.1 path uses.

pub use v0_1::{cost_model, eligibility, gate, types};

/// Bindings of `thermoroute:policy@0.1.0` (frozen).
#[allow(missing_docs)] // generated; the WIT file documents every item
pub mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/0.1.0/policy.wit",
        world: "policy-plugin",
    });

    pub use exports::thermoroute::policy::{cost_model, eligibility, gate};
    pub use thermoroute::policy::types;

    /// The package version.
    pub const VERSION: &str = "0.1.0";
    /// Export names of the role interfaces, as they appear in a component.
    pub const COST_EXPORT: &str = "thermoroute:policy/cost-model@0.1.0";
    /// Eligibility.
    pub const ELIGIBILITY_EXPORT: &str = "thermoroute:policy/eligibility@0.1.0";
    /// Gate.
    pub const GATE_EXPORT: &str = "thermoroute:policy/gate@0.1.0";
}

/// Bindings of `thermoroute:policy@0.2.0`.
#[allow(missing_docs)] // generated; the WIT file documents every item
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../wit/policy.wit",
        world: "host",
    });

    #[allow(unused_imports)]
    pub use exports::thermoroute::policy::{
        admit, cost_model, eligibility, gate, preempt, queue_order,
    };
    #[allow(unused_imports)]
    pub use thermoroute::policy::{log, queue_types, types};

    /// The package version.
    pub const VERSION: &str = "0.2.0";
    /// Export names of the 0.2 role interfaces.
    pub const COST_EXPORT: &str = "thermoroute:policy/cost-model@0.2.0";
    /// Eligibility.
    pub const ELIGIBILITY_EXPORT: &str = "thermoroute:policy/eligibility@0.2.0";
    /// Gate.
    pub const GATE_EXPORT: &str = "thermoroute:policy/gate@0.2.0";
    /// Queue order.
    #[allow(dead_code)] // the queue roles are wired by their own work (issue 15)
    pub const QUEUE_ORDER_EXPORT: &str = "thermoroute:policy/queue-order@0.2.0";
    /// Admission.
    #[allow(dead_code)] // the queue roles are wired by their own work (issue 15)
    pub const ADMIT_EXPORT: &str = "thermoroute:policy/admit@0.2.0";
    /// Preemption.
    #[allow(dead_code)] // the queue roles are wired by their own work (issue 15)
    pub const PREEMPT_EXPORT: &str = "thermoroute:policy/preempt@0.2.0";
}
