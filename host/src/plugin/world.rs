//! The three policy roles of `wit/policy.wit` and the worlds that export them.

use serde::{Deserialize, Serialize};

use super::bindings::{COST_EXPORT, ELIGIBILITY_EXPORT, GATE_EXPORT};

/// The roles a component serves, from its exports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roles {
    /// Exports the cost model.
    pub cost: bool,
    /// Exports the eligibility rules.
    pub eligibility: bool,
    /// Exports the policy gate.
    pub gate: bool,
}

impl Roles {
    /// The WIT world these exports implement.
    pub fn world(self) -> &'static str {
        match (self.cost, self.eligibility, self.gate) {
            (true, true, true) => "policy-plugin",
            (true, false, false) => Role::Cost.world(),
            (false, true, false) => Role::Eligibility.world(),
            (false, false, true) => Role::Gate.world(),
            (false, false, false) => "none",
            _ => "a mix of roles (no single world)",
        }
    }

    /// Whether `role` is among them.
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
    /// Scores the candidates of a routing decision.
    Cost,
    /// Says whether a target may run a node.
    Eligibility,
    /// Allows, holds for review or denies an effect.
    Gate,
}

impl Role {
    /// The role's name in flags, traces and reports.
    pub fn name(self) -> &'static str {
        match self {
            Role::Cost => "cost",
            Role::Eligibility => "eligibility",
            Role::Gate => "gate",
        }
    }

    /// The export name of the role's interface.
    pub fn interface(self) -> &'static str {
        match self {
            Role::Cost => COST_EXPORT,
            Role::Eligibility => ELIGIBILITY_EXPORT,
            Role::Gate => GATE_EXPORT,
        }
    }

    /// The WIT world that exports this role alone.
    pub fn world(self) -> &'static str {
        match self {
            Role::Cost => "cost-plugin",
            Role::Eligibility => "eligibility-plugin",
            Role::Gate => "gate-plugin",
        }
    }
}
