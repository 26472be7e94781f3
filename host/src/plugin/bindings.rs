//! The one place the host generates bindings from `wit/policy.wit`.
//!
//! `policy-plugin` exports all three roles; a component that serves only one
//! is loaded through that role's `GuestIndices`, so one set of generated types
//! covers every world.

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
