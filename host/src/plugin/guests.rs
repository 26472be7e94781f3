//! The exports of a component of either WIT version: their indices (found
//! once per loaded component) and their handles in a live instance.

use wasmtime::Store;
use wasmtime::component::{Instance as ComponentInstance, InstancePre};

use super::bindings::{v0_1, v0_2};
use super::sandbox::Sandbox;
use super::world::{Roles, WitVersion};

/// Where a component's role exports are, per version.
pub(super) enum GuestIndices {
    /// A 0.1.0 component.
    V1 {
        cost: Option<v0_1::cost_model::GuestIndices>,
        eligibility: Option<v0_1::eligibility::GuestIndices>,
        gate: Option<v0_1::gate::GuestIndices>,
    },
    /// A 0.2.0 component.
    V2 {
        cost: Option<v0_2::cost_model::GuestIndices>,
        eligibility: Option<v0_2::eligibility::GuestIndices>,
        gate: Option<v0_2::gate::GuestIndices>,
    },
    /// No policy export at all.
    None,
}

/// A live instance's role exports.
pub(super) enum Guests {
    /// A 0.1.0 component.
    V1 {
        cost: Option<v0_1::cost_model::Guest>,
        eligibility: Option<v0_1::eligibility::Guest>,
        gate: Option<v0_1::gate::Guest>,
    },
    /// A 0.2.0 component.
    V2 {
        cost: Option<v0_2::cost_model::Guest>,
        eligibility: Option<v0_2::eligibility::Guest>,
        gate: Option<v0_2::gate::Guest>,
    },
    /// No policy export.
    None,
}

/// `Some(f())` where `has`, else `None`.
fn when<T>(has: bool, f: impl FnOnce() -> wasmtime::Result<T>) -> wasmtime::Result<Option<T>> {
    if has { f().map(Some) } else { Ok(None) }
}

impl GuestIndices {
    /// Finds the exports of `roles` for `version`.
    pub(super) fn new(
        pre: &InstancePre<Sandbox>,
        version: Option<WitVersion>,
        roles: Roles,
    ) -> wasmtime::Result<GuestIndices> {
        Ok(match version {
            None => GuestIndices::None,
            Some(WitVersion::V0_1) => GuestIndices::V1 {
                cost: when(roles.cost, || v0_1::cost_model::GuestIndices::new(pre))?,
                eligibility: when(roles.eligibility, || {
                    v0_1::eligibility::GuestIndices::new(pre)
                })?,
                gate: when(roles.gate, || v0_1::gate::GuestIndices::new(pre))?,
            },
            Some(WitVersion::V0_2) => GuestIndices::V2 {
                cost: when(roles.cost, || v0_2::cost_model::GuestIndices::new(pre))?,
                eligibility: when(roles.eligibility, || {
                    v0_2::eligibility::GuestIndices::new(pre)
                })?,
                gate: when(roles.gate, || v0_2::gate::GuestIndices::new(pre))?,
            },
        })
    }

    /// The exports' handles in `instance`.
    pub(super) fn load(
        &self,
        store: &mut Store<Sandbox>,
        instance: &ComponentInstance,
    ) -> wasmtime::Result<Guests> {
        Ok(match self {
            GuestIndices::None => Guests::None,
            GuestIndices::V1 {
                cost,
                eligibility,
                gate,
            } => Guests::V1 {
                cost: cost
                    .as_ref()
                    .map(|i| i.load(&mut *store, instance))
                    .transpose()?,
                eligibility: eligibility
                    .as_ref()
                    .map(|i| i.load(&mut *store, instance))
                    .transpose()?,
                gate: gate
                    .as_ref()
                    .map(|i| i.load(&mut *store, instance))
                    .transpose()?,
            },
            GuestIndices::V2 {
                cost,
                eligibility,
                gate,
            } => Guests::V2 {
                cost: cost
                    .as_ref()
                    .map(|i| i.load(&mut *store, instance))
                    .transpose()?,
                eligibility: eligibility
                    .as_ref()
                    .map(|i| i.load(&mut *store, instance))
                    .transpose()?,
                gate: gate
                    .as_ref()
                    .map(|i| i.load(&mut *store, instance))
                    .transpose()?,
            },
        })
    }
}

/// A 0.2 cost model's `describe`, called once per instantiation.
pub(super) fn describe(
    guests: &Guests,
    store: &mut Store<Sandbox>,
) -> wasmtime::Result<Option<v0_2::cost_model::ModelInfo>> {
    match guests {
        Guests::V2 { cost: Some(g), .. } => g.call_describe(store).map(Some),
        _ => Ok(None),
    }
}
