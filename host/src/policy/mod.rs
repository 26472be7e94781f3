//! The policy seams: cost model, eligibility rules and policy gate, with the
//! native defaults that implement the design note's rules.
//!
//! The engine asks these three traits every policy question it has; the
//! plugin runtime implements them with WebAssembly components. Policies see
//! plain summaries (no graph internals), so the same inputs cross the WIT
//! boundary unchanged.

#![warn(missing_docs)]

mod guest_output;
mod native;
mod queue;
mod situation;
mod types;

use serde::{Deserialize, Serialize};

use crate::device::Target;
use crate::hardware::Hardware;

pub use guest_output::{GuestLine, GuestOutput, LogSource};
pub use native::{NativeCost, NativeEligibility, NativeGate, gate_verdict, runs_kind};
pub use queue::{
    Admission, Admit, Preempt, QueueOrder, QueuePolicy, QueueTask, QueueView, check_admission,
    check_order, check_victims, native_admission, native_order, native_victims, queue_index,
    queue_room, task_id,
};
pub use situation::{
    BudgetShare, DecisionSituation, DeviceHealth, DeviceState, JobContext, LearnedService,
};
pub use types::{
    BackendLimits, CandidateInput, CostTerms, DecisionContext, DiagnosticsLevel, EffectRequest,
    EligibilityQuery, Estimate, Evidence, GateDecision, Ineligible, NodeSummary, ProgramSummary,
};

/// A policy that failed to answer (a trapping plugin, an invalid result).
/// Never fatal: the engine falls back to the native default and records it.
/// Build one with `..Default::default()` for the fields that do not apply.
#[derive(Debug, Clone, Default, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[error("policy {policy} failed: {reason}")]
pub struct PolicyFault {
    /// The policy (plugin name and version, or `native`).
    pub policy: String,
    /// What went wrong.
    pub reason: String,
    /// `out_of_fuel`, `memory_limit`, `stack_overflow`, `trap`,
    /// `guest_error`, `invalid_output`, `instantiate`.
    #[serde(default)]
    pub kind: String,
    /// The plugin file, for a plugin's fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What the plugin printed or logged during the faulting call (a
    /// Python traceback, a Rust panic message), bounded. Boxed: a fault
    /// travels in every policy answer's `Err`, which stays small.
    #[serde(default, skip_serializing_if = "GuestOutput::is_empty")]
    pub output: Box<GuestOutput>,
}

/// A change in the version that serves a policy role (a plugin hot reload,
/// or a broken new version refused), for the trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyNotice {
    /// The role whose version changed.
    pub role: String,
    /// The plugin.
    pub policy: String,
    /// The version serving after the notice (`name@hash`).
    pub version: String,
    /// Whether the new version was taken.
    pub ok: bool,
    /// What happened, in words.
    pub detail: String,
}

/// Checks a cost model's answer: one cost per candidate, every term and
/// the total finite and non-negative (a trace never holds a non-finite
/// number where a reader expects one).
pub fn validate_costs(costs: &[CostTerms], expected: usize) -> Result<(), String> {
    if costs.len() != expected {
        return Err(format!(
            "returned {} costs for {expected} candidates",
            costs.len()
        ));
    }
    let ok = |x: f64| x.is_finite() && x >= 0.0;
    // The common case in one pass; the loop below names the first bad term.
    if costs.iter().all(|c| {
        ok(c.total) & ok(c.latency) & ok(c.energy) & ok(c.error) & ok(c.risk) & ok(c.risk_penalty)
    }) {
        return Ok(());
    }
    for (i, c) in costs.iter().enumerate() {
        let terms = [
            ("total", c.total),
            ("latency", c.latency),
            ("energy", c.energy),
            ("error", c.error),
            ("risk", c.risk),
            ("risk_penalty", c.risk_penalty),
        ];
        for (name, x) in terms {
            if !ok(x) {
                return Err(format!("cost {i}: {name} is {x} (must be finite and >= 0)"));
            }
        }
    }
    Ok(())
}

/// Scores every candidate of one decision in one call.
pub trait CostModel: Send {
    /// The name traces and reports show.
    fn name(&self) -> &str;
    /// The serving version (`name@hash`) of a plugin; `None` for native code.
    fn version(&self) -> Option<String> {
        None
    }
    /// Moves pending hot-reload notices into `out`.
    fn take_notices(&self, _out: &mut Vec<PolicyNotice>) {}
    /// Whether [`take_notices`](Self::take_notices) can ever give any (a
    /// plugin that hot-reloads): the engine asks for notices after every
    /// event only where some role says so. Native code gives none.
    fn gives_notices(&self) -> bool {
        false
    }
    /// Writes one [`CostTerms`] per candidate of `ctx` into `out` (cleared
    /// first).
    fn score(&self, ctx: &DecisionContext, out: &mut Vec<CostTerms>) -> Result<(), PolicyFault>;
    /// The order in which a sampling node takes the first target that meets
    /// its QoS without risk, before cost decides (the design note's default
    /// rule). Empty: cost alone decides, as for every plugin.
    fn sampling_order(&self) -> &[Target] {
        &[]
    }
    /// Whether the model reads [`DecisionContext::situation`]; the engine
    /// fills it only then (native models do not).
    fn wants_situation(&self) -> bool {
        false
    }
    /// Whether `total` is the plain sum of the terms (`explain` says so
    /// when it is not).
    fn additive(&self) -> bool {
        true
    }
}

/// Decides whether a target may run a node.
pub trait Eligibility: Send {
    /// The name traces and reports show.
    fn name(&self) -> &str;
    /// The serving version (`name@hash`) of a plugin; `None` for native code.
    fn version(&self) -> Option<String> {
        None
    }
    /// Moves pending hot-reload notices into `out`.
    fn take_notices(&self, _out: &mut Vec<PolicyNotice>) {}
    /// Whether [`take_notices`](Self::take_notices) can ever give any (a
    /// plugin that hot-reloads): the engine asks for notices after every
    /// event only where some role says so. Native code gives none.
    fn gives_notices(&self) -> bool {
        false
    }
    /// Empty: eligible; otherwise every reason it is not.
    fn verdict(&self, query: &EligibilityQuery<'_>) -> Result<Vec<Ineligible>, PolicyFault>;
}

/// Decides whether an effect may be applied.
pub trait Gate: Send {
    /// The name traces and reports show.
    fn name(&self) -> &str;
    /// The serving version (`name@hash`) of a plugin; `None` for native code.
    fn version(&self) -> Option<String> {
        None
    }
    /// Moves pending hot-reload notices into `out`.
    fn take_notices(&self, _out: &mut Vec<PolicyNotice>) {}
    /// Whether [`take_notices`](Self::take_notices) can ever give any (a
    /// plugin that hot-reloads): the engine asks for notices after every
    /// event only where some role says so. Native code gives none.
    fn gives_notices(&self) -> bool {
        false
    }
    /// Allows, holds for review or denies one effect.
    fn decide(&self, request: &EffectRequest) -> Result<GateDecision, PolicyFault>;
}

/// The three policy roles the engine consults.
pub struct Policy {
    /// Scores candidates.
    pub cost: Box<dyn CostModel>,
    /// Rules candidates out.
    pub eligibility: Box<dyn Eligibility>,
    /// Gates effects.
    pub gate: Box<dyn Gate>,
    /// Queue order, admission and preemption (native unless plugins serve
    /// them).
    pub queue: QueuePolicy,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Policy {
    /// The design note's rules with this hardware's knobs.
    pub fn native(hw: &Hardware) -> Self {
        Policy {
            cost: Box::new(NativeCost {
                policy: hw.policy.clone(),
            }),
            eligibility: Box::new(NativeEligibility {
                policy: hw.policy.clone(),
            }),
            gate: Box::new(NativeGate {
                spec: hw.gate.clone(),
            }),
            queue: QueuePolicy::default(),
        }
    }

    /// Whether any role can give notices (see
    /// [`CostModel::gives_notices`]); queue roles are served by plugins only.
    pub fn gives_notices(&self) -> bool {
        self.cost.gives_notices()
            || self.eligibility.gives_notices()
            || self.gate.gives_notices()
            || self.queue.order.is_some()
            || self.queue.admit.is_some()
            || self.queue.preempt.is_some()
    }

    /// `cost=…, eligibility=…, gate=…`, with plugin versions (`name@hash`),
    /// then the queue roles plugins serve (none: nothing more).
    pub fn describe(&self) -> String {
        let part = |name: &str, version: Option<String>| match version {
            Some(v) => format!("{name} ({v})"),
            None => name.to_string(),
        };
        format!(
            "cost={}, eligibility={}, gate={}{}",
            part(self.cost.name(), self.cost.version()),
            part(self.eligibility.name(), self.eligibility.version()),
            part(self.gate.name(), self.gate.version()),
            self.queue.describe()
        )
    }
}
