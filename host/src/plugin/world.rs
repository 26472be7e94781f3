//! The three policy roles of `wit/policy.wit` and the worlds that export
//! them, and the package version a component was built against.

use serde::{Deserialize, Serialize};

use super::bindings::{v0_1, v0_2};

/// The prefix of every policy export name.
const PACKAGE_PREFIX: &str = "thermoroute:policy/";

/// A version of the WIT package `thermoroute:policy` this host loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WitVersion {
    /// `0.1.0`, frozen in `wit/0.1.0/`: decisions carry the node, the QoS
    /// and the weights.
    #[serde(rename = "0.1.0")]
    V0_1,
    /// `0.2.0`, `wit/policy.wit`: decisions carry the job, the budget
    /// share and the devices; the cost model describes itself; `log`.
    #[serde(rename = "0.2.0")]
    V0_2,
}

impl WitVersion {
    /// Every version this host loads, oldest first.
    pub const SUPPORTED: [WitVersion; 2] = [WitVersion::V0_1, WitVersion::V0_2];

    /// `0.1.0`, `0.2.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            WitVersion::V0_1 => v0_1::VERSION,
            WitVersion::V0_2 => v0_2::VERSION,
        }
    }

    fn parse(s: &str) -> Option<WitVersion> {
        WitVersion::SUPPORTED.into_iter().find(|v| v.as_str() == s)
    }
}

impl std::fmt::Display for WitVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a component's exports name no single known version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionProblem {
    /// Policy exports of two known versions (the exports, joined).
    Mixed(String),
    /// Policy exports of a version this host does not know (the exports,
    /// joined).
    Unknown(String),
}

/// The version of `thermoroute:policy` a component's `exports` were built
/// against: `None` when it exports no policy interface at all.
pub fn detect_version(exports: &[String]) -> Result<Option<WitVersion>, VersionProblem> {
    let policy: Vec<&String> = exports
        .iter()
        .filter(|e| e.starts_with(PACKAGE_PREFIX))
        .collect();
    let unknown: Vec<&str> = policy
        .iter()
        .filter(|e| {
            e.split_once('@')
                .and_then(|(_, v)| WitVersion::parse(v))
                .is_none()
        })
        .map(|e| e.as_str())
        .collect();
    if !unknown.is_empty() {
        return Err(VersionProblem::Unknown(unknown.join(", ")));
    }
    let mut versions = policy
        .iter()
        .filter_map(|e| e.split_once('@').and_then(|(_, v)| WitVersion::parse(v)));
    let Some(first) = versions.next() else {
        return Ok(None);
    };
    if versions.any(|v| v != first) {
        let names: Vec<&str> = policy.iter().map(|e| e.as_str()).collect();
        return Err(VersionProblem::Mixed(names.join(", ")));
    }
    Ok(Some(first))
}

/// The versions this host loads, for messages: `0.1.0, 0.2.0`.
pub fn supported_versions() -> String {
    WitVersion::SUPPORTED
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

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
    /// The roles `exports` serve under `version`.
    pub fn of(exports: &[String], version: WitVersion) -> Roles {
        let has = |role: Role| exports.iter().any(|e| e == role.interface_of(version));
        Roles {
            cost: has(Role::Cost),
            eligibility: has(Role::Eligibility),
            gate: has(Role::Gate),
        }
    }

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

    /// The export name of the role's interface in the current version
    /// (`wit/policy.wit`).
    pub fn interface(self) -> &'static str {
        self.interface_of(WitVersion::V0_2)
    }

    /// The export name of the role's interface in `version`.
    pub fn interface_of(self, version: WitVersion) -> &'static str {
        match (version, self) {
            (WitVersion::V0_1, Role::Cost) => v0_1::COST_EXPORT,
            (WitVersion::V0_1, Role::Eligibility) => v0_1::ELIGIBILITY_EXPORT,
            (WitVersion::V0_1, Role::Gate) => v0_1::GATE_EXPORT,
            (WitVersion::V0_2, Role::Cost) => v0_2::COST_EXPORT,
            (WitVersion::V0_2, Role::Eligibility) => v0_2::ELIGIBILITY_EXPORT,
            (WitVersion::V0_2, Role::Gate) => v0_2::GATE_EXPORT,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_version_comes_from_the_policy_exports() {
        let v1 = names(&["thermoroute:policy/cost-model@0.1.0", "wasi:cli/run@0.2.0"]);
        assert_eq!(detect_version(&v1), Ok(Some(WitVersion::V0_1)));
        let v2 = names(&[
            "thermoroute:policy/cost-model@0.2.0",
            "thermoroute:policy/gate@0.2.0",
        ]);
        assert_eq!(detect_version(&v2), Ok(Some(WitVersion::V0_2)));
        assert_eq!(
            Roles::of(&v2, WitVersion::V0_2).world(),
            "a mix of roles (no single world)"
        );
        assert!(Roles::of(&v2, WitVersion::V0_2).gate);
        assert_eq!(detect_version(&names(&["wasi:cli/run@0.2.0"])), Ok(None));
    }

    #[test]
    fn mixed_and_unknown_versions_are_refused() {
        let mixed = names(&[
            "thermoroute:policy/cost-model@0.1.0",
            "thermoroute:policy/gate@0.2.0",
        ]);
        assert!(
            matches!(detect_version(&mixed), Err(VersionProblem::Mixed(s)) if s.contains("gate@0.2.0"))
        );
        for bad in [
            "thermoroute:policy/cost-model@9.0.0",
            "thermoroute:policy/cost-model",
        ] {
            let unknown = names(&["thermoroute:policy/gate@0.2.0", bad]);
            assert_eq!(
                detect_version(&unknown),
                Err(VersionProblem::Unknown(bad.to_string()))
            );
        }
        assert_eq!(supported_versions(), "0.1.0, 0.2.0");
    }
}
