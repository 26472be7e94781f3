//! The one place the host generates bindings from the WIT packages.
//!
//! `wit/policy.wit` (`thermoroute:policy@0.1.0`) binds through the
//! `policy-plugin` world, which exports all three roles; a component that
//! serves only one is loaded through that role's `GuestIndices`, so one set
//! of generated types covers every world. `wit/0.2.0/policy.wit` binds through
//! its `host` world (every role, and the `log` import) the same way.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "policy-plugin",
});

pub use exports::thermoroute::policy::{cost_model, eligibility, gate};
pub use thermoroute::policy::types;

/// Export names of the role interfaces, as they appear in a component.
pub const COST_EXPORT: &str = "thermoroute:policy/cost-model@0.1.0";
pub const ELIGIBILITY_EXPORT: &str = "thermoroute:policy/eligibility@0.1.0";
pub const GATE_EXPORT: &str = "thermoroute:policy/gate@0.1.0";

/// Bindings of `thermoroute:policy@0.2.0`.
#[allow(dead_code)]
pub mod v0_2 {
    wasmtime::component::bindgen!({
        path: "../wit/0.2.0",
        world: "host",
    });

    #[allow(unused_imports)]
    pub use exports::thermoroute::policy::{
        admit, cost_model, eligibility, gate, preempt, queue_order,
    };
    #[allow(unused_imports)]
    pub use thermoroute::policy::{log, queue_types, types};

    /// Export names of the 0.2 role interfaces.
    pub const COST_EXPORT: &str = "thermoroute:policy/cost-model@0.2.0";
    /// Eligibility.
    pub const ELIGIBILITY_EXPORT: &str = "thermoroute:policy/eligibility@0.2.0";
    /// Gate.
    pub const GATE_EXPORT: &str = "thermoroute:policy/gate@0.2.0";
    /// Queue order.
    pub const QUEUE_ORDER_EXPORT: &str = "thermoroute:policy/queue-order@0.2.0";
    /// Admission.
    pub const ADMIT_EXPORT: &str = "thermoroute:policy/admit@0.2.0";
    /// Preemption.
    pub const PREEMPT_EXPORT: &str = "thermoroute:policy/preempt@0.2.0";
}
