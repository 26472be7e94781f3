//! Policy faults per plugin, for the run summary: how many, the first
//! reason, and what the guest printed.

use serde::Serialize;

use super::Engine;
use crate::policy::{GuestOutput, PolicyFault};

/// The faults of one plugin in one role (a hot-reloaded version counts
/// apart: its `policy` names the version).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginFaults {
    /// `cost`, `eligibility`, `gate`.
    pub role: String,
    /// The plugin and its version, as the trace names it.
    pub policy: String,
    /// The plugin file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Faults counted.
    pub count: u64,
    /// The first fault's kind (`trap`, `guest_error`, ...).
    pub first_kind: String,
    /// The first fault's reason.
    pub first_reason: String,
    /// What the guest printed in the first fault that printed anything
    /// (a Python traceback, a panic message), bounded.
    #[serde(skip_serializing_if = "GuestOutput::is_empty")]
    pub output: GuestOutput,
}

/// The run's faults, grouped by role and plugin, in order of first fault.
#[derive(Debug, Default)]
pub(super) struct FaultTally {
    plugins: Vec<PluginFaults>,
}

impl FaultTally {
    /// Counts `fault`, keeping the first reason and the first output.
    pub(super) fn record(&mut self, role: &str, fault: &PolicyFault) {
        let i = match self
            .plugins
            .iter()
            .position(|p| p.role == role && p.policy == fault.policy)
        {
            Some(i) => i,
            None => {
                self.plugins.push(PluginFaults {
                    role: role.into(),
                    policy: fault.policy.clone(),
                    path: fault.path.clone(),
                    count: 0,
                    first_kind: fault.kind.clone(),
                    first_reason: fault.reason.clone(),
                    output: GuestOutput::default(),
                });
                self.plugins.len() - 1
            }
        };
        let p = &mut self.plugins[i];
        p.count += 1;
        if p.output.is_empty() && !fault.output.is_empty() {
            p.output = (*fault.output).clone();
        }
    }

    /// Every plugin that faulted.
    pub(super) fn summary(&self) -> Vec<PluginFaults> {
        self.plugins.clone()
    }
}

impl Engine {
    /// Counts, tallies and logs a policy fault the engine just met (the
    /// run's first at `warn` with the guest's output, the rest at `debug`:
    /// a broken plugin may fault on every decision).
    pub(super) fn note_fault(&mut self, role: &str, fault: &PolicyFault, fallback: &str) {
        self.counters.policy_faults += 1;
        self.fault_tally.record(role, fault);
        let (policy, kind, reason) = (&fault.policy, &fault.kind, &fault.reason);
        if self.counters.policy_faults == 1 {
            let printed = fault.output.excerpt(8);
            let printed = if printed.is_empty() {
                String::new()
            } else {
                format!("; the plugin printed:\n  {}", printed.join("\n  "))
            };
            tracing::warn!(
                role,
                %policy,
                %kind,
                "policy fault: {reason}; {fallback} serves (further faults are logged at debug){printed}"
            );
        } else {
            tracing::debug!(role, %policy, %kind, "policy fault: {reason}; {fallback} serves");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{GuestLine, LogSource};

    fn fault(policy: &str, reason: &str, printed: &[&str]) -> PolicyFault {
        PolicyFault {
            policy: policy.into(),
            reason: reason.into(),
            kind: "trap".into(),
            path: Some(format!("{policy}.wasm")),
            output: Box::new(GuestOutput {
                lines: printed
                    .iter()
                    .map(|t| GuestLine {
                        source: LogSource::Stderr,
                        text: t.to_string(),
                    })
                    .collect(),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn faults_group_per_role_and_plugin_keeping_the_first_reason() {
        let mut t = FaultTally::default();
        t.record("cost", &fault("plugin:a", "first", &[]));
        t.record("cost", &fault("plugin:a", "second", &["AttributeError: x"]));
        t.record("gate", &fault("plugin:g", "denied", &["g"]));
        t.record("cost", &fault("plugin:a", "third", &["later"]));
        let s = t.summary();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].role.as_str(), s[0].count), ("cost", 3));
        assert_eq!(s[0].first_reason, "first");
        assert_eq!(s[0].path.as_deref(), Some("plugin:a.wasm"));
        // The first output that says anything, not a later one.
        assert_eq!(s[0].output.lines[0].text, "AttributeError: x");
        assert_eq!((s[1].role.as_str(), s[1].count), ("gate", 1));
    }
}
