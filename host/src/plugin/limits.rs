//! The sandbox limits a plugin runs under: what its manifest asks for, and
//! what it gets under the operator's ceilings (`[plugins]` in the hardware
//! file).

use serde::{Deserialize, Serialize};

use crate::hardware::PluginCeilings;

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
    /// Wall-clock deadline per call, ms (none: the operator's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline_ms: Option<u64>,
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
            deadline_ms: None,
        }
    }
}

/// One limit as asked and as granted, for `plugin check`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitGrant {
    /// The limit's name in the manifest.
    pub limit: &'static str,
    /// What the manifest (or the default) asked for.
    pub asked: u64,
    /// What the plugin got.
    pub granted: u64,
    /// Why.
    pub why: String,
}

/// The limits a plugin runs under: what it asked for, capped by the
/// operator's ceilings (the deadline, when not asked, is the operator's
/// default). Never more than a ceiling, whatever the manifest says.
pub fn grant(asked: &PluginLimits, ceilings: &PluginCeilings) -> (PluginLimits, Vec<LimitGrant>) {
    let mut grants = Vec::new();
    let mut cap = |limit: &'static str, asked: u64, ceiling: u64, ceiling_name: &str| {
        let granted = asked.min(ceiling);
        grants.push(LimitGrant {
            limit,
            asked,
            granted,
            why: if asked > ceiling {
                format!("capped at the operator's ceiling plugins.{ceiling_name} = {ceiling}")
            } else {
                format!("within plugins.{ceiling_name} = {ceiling}")
            },
        });
        granted
    };
    let mut out = *asked;
    out.fuel_per_call = cap(
        "fuel_per_call",
        asked.fuel_per_call,
        ceilings.max_fuel_per_call,
        "max_fuel_per_call",
    );
    out.fuel_instantiate = cap(
        "fuel_instantiate",
        asked.fuel_instantiate,
        ceilings.max_fuel_instantiate,
        "max_fuel_instantiate",
    );
    out.memory_mib = cap(
        "memory_mib",
        asked.memory_mib,
        ceilings.max_memory_mib,
        "max_memory_mib",
    );
    out.max_instances = cap(
        "max_instances",
        u64::from(asked.max_instances),
        u64::from(ceilings.max_instances),
        "max_instances",
    ) as u32;
    let deadline = match asked.deadline_ms {
        Some(ms) => cap(
            "deadline_ms",
            ms,
            ceilings.max_deadline_ms,
            "max_deadline_ms",
        )
        .max(1),
        None => {
            grants.push(LimitGrant {
                limit: "deadline_ms",
                asked: ceilings.deadline_ms,
                granted: ceilings.deadline_ms,
                why: "not asked: the operator's default plugins.deadline_ms".into(),
            });
            ceilings.deadline_ms
        }
    };
    out.deadline_ms = Some(deadline);
    (out, grants)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_never_gets_past_the_ceiling() {
        let c = PluginCeilings::default();
        let greedy = PluginLimits {
            fuel_per_call: u64::MAX,
            memory_mib: 2048,
            deadline_ms: Some(u64::MAX),
            ..PluginLimits::default()
        };
        let (got, grants) = grant(&greedy, &c);
        assert_eq!(got.fuel_per_call, c.max_fuel_per_call);
        assert_eq!(got.memory_mib, c.max_memory_mib);
        assert_eq!(got.deadline_ms, Some(c.max_deadline_ms));
        assert!(grants.iter().any(|g| g.why.contains("capped")));
        let modest = PluginLimits {
            fuel_per_call: 1000,
            ..PluginLimits::default()
        };
        let (got, _) = grant(&modest, &c);
        assert_eq!(got.fuel_per_call, 1000);
        assert_eq!(got.deadline_ms, Some(c.deadline_ms));
    }
}
