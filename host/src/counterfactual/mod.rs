//! Counterfactual replay: re-decide every recorded decision of a trace
//! under another policy, with the same candidates, estimates and context,
//! and report what would have changed (`thermoroute replay-policy`).
//!
//! Replay is decision-local: each decision is re-made on what the trace
//! recorded for it (candidates, estimates, queue room, budget violations,
//! the gate's request), with the engine's own choice rule. Later decisions
//! are not re-simulated: a different choice would have changed queues and
//! learning downstream, which only a new run shows. What this answers is
//! "on the situations this run met, which decisions would the other policy
//! have made differently, and what would each have cost by the estimates
//! of the time".
//!
//! Roles the replay does not replace keep their recorded answers: a
//! replayed cost model re-scores the recorded candidates, replayed
//! eligibility rules can only rule recorded candidates out (a candidate the
//! recorded rules ruled out has no estimate in the trace; decisions where
//! the new rules would admit one are counted as `widened`), and a replayed
//! gate re-decides effects whose request the trace recorded.

#![warn(missing_docs)]

mod decide;
mod read;
mod route_line;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;

use crate::device::Target;
use crate::hardware::Hardware;
use crate::plugin::{PluginCost, PluginEligibility, PluginError, PluginGate, PluginSet, Runtime};
use crate::policy::{
    CostModel, CostTerms, Eligibility, Estimate, Gate, GateDecision, NativeCost, NativeEligibility,
    NativeGate, PolicyFault,
};
use crate::trace::TraceError;

pub use read::{TraceHeader, TraceSource};

/// Why a replay could not compare anything.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The trace is missing, unreadable or malformed (the file and line).
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The header has no node summaries: written by a build before
    /// `replay-policy` existed.
    #[error(
        "{file}: the trace header records no node summaries (`class_nodes`): it was written by an older thermoroute, and its routes cannot be re-decided; record it again with this build"
    )]
    NoNodeSummaries {
        /// The trace file.
        file: PathBuf,
    },
    /// The trace holds no decision the replayed roles could re-make.
    #[error("{file}: the trace records no routing decision (and no gate request) to re-decide")]
    NoDecisions {
        /// The trace file.
        file: PathBuf,
    },
    /// A replayed policy plugin could not be loaded.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// A replayed role faulted on every one of its first calls: nothing it
    /// decides can be compared, and replaying on would only repeat it.
    #[error(
        "the replayed {role} policy faulted on each of its first {calls} calls (first: {reason}); nothing it decides can be compared"
    )]
    Faulting {
        /// The role.
        role: String,
        /// Calls made.
        calls: u64,
        /// The first fault.
        reason: String,
    },
    /// No role to replay was given.
    #[error("nothing to replay: give --cost, --eligibility, --gate, --policy DIR or --native")]
    NoPolicy,
}

/// The policy a trace is replayed under: each role given replaces the
/// recorded one; a role left out keeps the recorded answers.
#[derive(Default)]
pub struct Counterfactual {
    /// Re-scores every routing decision.
    pub cost: Option<Box<dyn CostModel>>,
    /// Re-judges every recorded-eligible candidate.
    pub eligibility: Option<Box<dyn Eligibility>>,
    /// Re-decides every gate decision whose request was recorded.
    pub gate: Option<Box<dyn Gate>>,
}

impl std::fmt::Debug for Counterfactual {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Counterfactual {
    /// The plugins of `set` on `hw` (the trace's hardware: its policy knobs,
    /// gate thresholds and plugin ceilings); with `native`, the roles `set`
    /// leaves empty use the built-in defaults instead of the recorded
    /// answers.
    pub fn from_plugins(
        set: &PluginSet,
        native: bool,
        hw: &Hardware,
    ) -> Result<Counterfactual, ReplayError> {
        let mut policy = Counterfactual::default();
        if native {
            policy.cost = Some(Box::new(NativeCost {
                policy: hw.policy.clone(),
            }));
            policy.eligibility = Some(Box::new(NativeEligibility {
                policy: hw.policy.clone(),
            }));
            policy.gate = Some(Box::new(NativeGate {
                spec: hw.gate.clone(),
            }));
        }
        if set.is_empty() {
            return if native {
                Ok(policy)
            } else {
                Err(ReplayError::NoPolicy)
            };
        }
        let runtime = Runtime::shared()?;
        // Every replayed call asks the plugin: a circuit breaker would answer
        // with the native default and hide what the plugin decides.
        let mut ceilings = hw.plugins;
        ceilings.breaker_faults = u32::MAX;
        let ceilings = &ceilings;
        if let Some(p) = &set.cost {
            policy.cost = Some(Box::new(PluginCost::open_with(
                runtime,
                p,
                hw.policy.clone(),
                ceilings,
                None,
            )?));
        }
        if let Some(p) = &set.eligibility {
            policy.eligibility = Some(Box::new(PluginEligibility::open_with(
                runtime,
                p,
                hw.policy.clone(),
                ceilings,
                None,
            )?));
        }
        if let Some(p) = &set.gate {
            policy.gate = Some(Box::new(PluginGate::open_with(
                runtime,
                p,
                hw.gate.clone(),
                ceilings,
                None,
            )?));
        }
        Ok(policy)
    }

    /// `cost=…, eligibility=…, gate=…`, `recorded` for the roles kept.
    pub fn describe(&self) -> String {
        let part = |name: Option<&str>, version: Option<String>| match (name, version) {
            (None, _) => "recorded".to_string(),
            (Some(n), Some(v)) => format!("{n} ({v})"),
            (Some(n), None) => n.to_string(),
        };
        format!(
            "cost={}, eligibility={}, gate={}",
            part(
                self.cost.as_deref().map(|c| c.name()),
                self.cost.as_deref().and_then(|c| c.version())
            ),
            part(
                self.eligibility.as_deref().map(|c| c.name()),
                self.eligibility.as_deref().and_then(|c| c.version())
            ),
            part(
                self.gate.as_deref().map(|c| c.name()),
                self.gate.as_deref().and_then(|c| c.version())
            ),
        )
    }
}

/// How a replay runs.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// Most changes listed in the report (all are counted).
    pub max_changes: usize,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions { max_changes: 1000 }
    }
}

/// One candidate of a changed routing decision, before and after.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CandidateChange {
    /// The candidate.
    pub target: Target,
    /// Eligible in the trace.
    pub eligible_before: bool,
    /// Eligible under the replayed rules.
    pub eligible_after: bool,
    /// Its recorded estimate (eligible candidates only).
    pub estimate: Option<Estimate>,
    /// Its recorded cost terms.
    pub before: Option<CostTerms>,
    /// Its cost terms under the replayed policy.
    pub after: Option<CostTerms>,
}

/// A decision that came out differently.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A routing decision.
    Route {
        /// When it was made (virtual ms).
        t_ms: f64,
        /// The job.
        job: u64,
        /// The node.
        node: String,
        /// 0 for a first decision, more for fallbacks.
        attempt: u32,
        /// The job's class.
        class: String,
        /// The recorded choice (`None`: rejected or infeasible).
        before: Option<Target>,
        /// The replayed choice.
        after: Option<Target>,
        /// Every candidate with its cost terms side by side.
        candidates: Vec<CandidateChange>,
    },
    /// A gate decision.
    Gate {
        /// When it was made.
        t_ms: f64,
        /// The job.
        job: u64,
        /// The effect node.
        node: String,
        /// The recorded decision.
        before: GateDecision,
        /// The replayed decision (held to the host floor, as a run would).
        after: GateDecision,
    },
}

/// Estimated differences of the chosen candidates, summed over the routing
/// decisions whose target changed (both routed): replayed minus recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Deltas {
    /// p50 latency estimate (queue wait included), ms.
    pub latency_p50_ms: f64,
    /// p95 latency estimate, ms.
    pub latency_p95_ms: f64,
    /// Energy estimate, J.
    pub energy_j: f64,
    /// Expected marginal error.
    pub error: f64,
    /// Risk penalty, by the host's own (native) rule for both choices, so
    /// policies that price risk differently compare on one scale.
    pub risk_penalty: f64,
}

impl Deltas {
    fn add(&mut self, before: &Estimate, after: &Estimate, risk: (f64, f64)) {
        self.latency_p50_ms += after.latency_p50_ms - before.latency_p50_ms;
        self.latency_p95_ms += after.latency_p95_ms - before.latency_p95_ms;
        self.energy_j += after.energy_j - before.energy_j;
        self.error += after.error - before.error;
        self.risk_penalty += risk.1 - risk.0;
    }

    fn scaled(&self, by: f64) -> Deltas {
        Deltas {
            latency_p50_ms: self.latency_p50_ms * by,
            latency_p95_ms: self.latency_p95_ms * by,
            energy_j: self.energy_j * by,
            error: self.error * by,
            risk_penalty: self.risk_penalty * by,
        }
    }
}

/// Routing decisions re-decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RouteCounts {
    /// Re-decided.
    pub decisions: u64,
    /// Whose target changed.
    pub changed: u64,
    /// Changed from a target to none (rejected or infeasible).
    pub unrouted_after: u64,
    /// Changed from none to a target.
    pub routed_after: u64,
    /// Where the replayed rules would admit a candidate the trace holds no
    /// estimate for (it stays out).
    pub widened: u64,
}

/// Allow / hold / deny counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Tally {
    /// Allowed.
    pub allow: u64,
    /// Held for review.
    pub hold: u64,
    /// Denied.
    pub deny: u64,
}

impl Tally {
    fn add(&mut self, d: &GateDecision) {
        match d {
            GateDecision::Allow => self.allow += 1,
            GateDecision::RequireReview(_) => self.hold += 1,
            GateDecision::Deny(_) => self.deny += 1,
        }
    }
}

/// Gate decisions re-decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct GateCounts {
    /// Re-decided.
    pub decisions: u64,
    /// Whose outcome (allow, hold, deny) changed.
    pub changed: u64,
    /// Gate decisions whose request the trace does not hold (older traces).
    pub without_request: u64,
    /// Recorded outcomes of the re-decided ones.
    pub before: Tally,
    /// Replayed outcomes.
    pub after: Tally,
}

/// Calls to the replayed roles.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct RoleCalls {
    /// Cost-model calls.
    pub cost: u64,
    /// Eligibility calls.
    pub eligibility: u64,
    /// Gate calls.
    pub gate: u64,
}

/// Consecutive faults from the first call on after which replay stops.
pub const GIVE_UP_AFTER: u64 = 1000;

/// Faults of the replayed policy; each is answered as a run would (native
/// cost or eligibility, the gate's fail-closed choice).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct FaultCounts {
    /// Calls made, per role.
    pub calls: RoleCalls,
    /// Faults, per role.
    pub faults: RoleCalls,
    /// The first few faults, with their role.
    pub first: Vec<(String, PolicyFault)>,
}

impl FaultCounts {
    fn record(&mut self, role: &'static str, fault: PolicyFault) {
        match role {
            "cost" => self.faults.cost += 1,
            "eligibility" => self.faults.eligibility += 1,
            _ => self.faults.gate += 1,
        }
        if self.first.len() < 5 {
            self.first.push((role.into(), fault));
        }
    }

    /// The role that faulted on each of at least [`GIVE_UP_AFTER`] calls.
    fn hopeless(&self) -> Option<(&'static str, u64)> {
        let (c, f) = (self.calls, self.faults);
        [
            ("cost", c.cost, f.cost),
            ("eligibility", c.eligibility, f.eligibility),
            ("gate", c.gate, f.gate),
        ]
        .into_iter()
        .find(|&(_, calls, faults)| calls >= GIVE_UP_AFTER && faults == calls)
        .map(|(role, calls, _)| (role, calls))
    }

    /// Whether some replayed role faulted on every call it got (nothing it
    /// said was compared).
    pub fn all_faulted(&self) -> bool {
        let (c, f) = (self.calls, self.faults);
        (c.cost > 0 && f.cost == c.cost)
            || (c.eligibility > 0 && f.eligibility == c.eligibility)
            || (c.gate > 0 && f.gate == c.gate)
    }
}

/// What `replay-policy` reports.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    /// The trace.
    pub trace: String,
    /// The policy that made the recorded decisions.
    pub recorded_policy: String,
    /// The policy replayed.
    pub replayed_policy: String,
    /// Decisions re-decided: routes plus gates.
    pub decisions: u64,
    /// Decisions that came out differently.
    pub changed: u64,
    /// `changed / decisions`.
    pub fraction_changed: f64,
    /// Routing decisions.
    pub routes: RouteCounts,
    /// Gate decisions.
    pub gates: GateCounts,
    /// Estimated differences summed over the changed routes.
    pub deltas: Deltas,
    /// The same per routing decision re-decided.
    pub mean_deltas: Deltas,
    /// Calls to and faults of the replayed policy.
    pub faults: FaultCounts,
    /// Decisions skipped, by reason (a job whose arrival was in a dropped
    /// part of a rotated trace, say).
    pub skipped: BTreeMap<String, u64>,
    /// The last line was torn (a killed run) and skipped.
    pub torn_tail: bool,
    /// Older parts of a rotated trace were gone.
    pub older_dropped: bool,
    /// Changes beyond `changes` (only counted).
    pub changes_omitted: u64,
    /// The changes, in trace order (at most the `max_changes` asked for).
    pub changes: Vec<Change>,
    /// Wall time of the replay, seconds.
    pub seconds: f64,
    /// Of which re-deciding (the policy calls and the choice), not reading
    /// and parsing the trace, which a reader thread does alongside.
    pub decide_seconds: f64,
}

/// Replays every decision of `source` under `policy`.
pub fn replay(
    source: &TraceSource,
    policy: &Counterfactual,
    options: &ReplayOptions,
) -> Result<ReplayReport, ReplayError> {
    let started = Instant::now();
    let mut d = decide::Decider::new(&source.header, policy);
    let mut report = ReplayReport {
        trace: source.path.display().to_string(),
        recorded_policy: source.header.policy.clone(),
        replayed_policy: policy.describe(),
        decisions: 0,
        changed: 0,
        fraction_changed: 0.0,
        routes: RouteCounts::default(),
        gates: GateCounts::default(),
        deltas: Deltas::default(),
        mean_deltas: Deltas::default(),
        faults: FaultCounts::default(),
        skipped: BTreeMap::new(),
        torn_tail: false,
        older_dropped: source.older_dropped,
        changes_omitted: 0,
        changes: Vec::new(),
        seconds: 0.0,
        decide_seconds: 0.0,
    };
    let needs = read::Needs::of(policy);
    let (tx, rx) = std::sync::mpsc::sync_channel::<read::Sent>(4);
    // Batch texts go back to the reader to be filled again.
    let (spare_tx, spare_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
    let torn = std::thread::scope(|s| -> Result<bool, ReplayError> {
        let reader = s.spawn(move || read::stream(source, needs, &tx, &spare_rx));
        // `rx` moves in: an early return drops it, which ends the reader.
        for batch in rx {
            let batch = batch?;
            let t = Instant::now();
            for line in &batch.lines {
                apply(&mut d, line, &batch.text, needs, &mut report, options);
            }
            report.decide_seconds += t.elapsed().as_secs_f64();
            let _ = spare_tx.try_send(batch.text);
            if let Some((role, calls)) = d.faults.hopeless() {
                return Err(ReplayError::Faulting {
                    role: role.into(),
                    calls,
                    reason: d
                        .faults
                        .first
                        .first()
                        .map(|(_, f)| f.reason.clone())
                        .unwrap_or_default(),
                });
            }
        }
        Ok(reader.join().unwrap_or(false))
    })?;
    report.torn_tail = torn;
    report.faults = std::mem::take(&mut d.faults);
    report.decisions = report.routes.decisions + report.gates.decisions;
    report.changed = report.routes.changed + report.gates.changed;
    if report.decisions == 0 {
        return Err(decide::nothing_to_compare(&source.path));
    }
    report.fraction_changed = report.changed as f64 / report.decisions as f64;
    if report.routes.decisions > 0 {
        report.mean_deltas = report.deltas.scaled(1.0 / report.routes.decisions as f64);
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn keep_change(report: &mut ReplayReport, options: &ReplayOptions, change: Option<Change>) {
    if let Some(c) = change {
        if report.changes.len() < options.max_changes {
            report.changes.push(c);
        } else {
            report.changes_omitted += 1;
        }
    }
}

fn apply(
    d: &mut decide::Decider<'_>,
    line: &read::Line,
    text: &[u8],
    needs: read::Needs,
    report: &mut ReplayReport,
    options: &ReplayOptions,
) {
    match line {
        read::Line::Arrival { job, class } => d.arrival(*job, *class),
        read::Line::Weights(w) => d.set_weights(*w),
        read::Line::CostFault => d.recorded_cost_fault(),
        read::Line::Route(r) => {
            let listing = report.changes.len() < options.max_changes;
            let mut change = None;
            match d.route(r, listing.then_some(&mut change)) {
                Ok(o) => {
                    report.routes.decisions += 1;
                    report.routes.widened += u64::from(o.widened);
                    if o.before != o.after {
                        report.routes.changed += 1;
                        match (o.before, o.after) {
                            (Some(_), None) => report.routes.unrouted_after += 1,
                            (None, Some(_)) => report.routes.routed_after += 1,
                            _ => {}
                        }
                        if let Some((b, a)) = o.estimates {
                            report.deltas.add(&b, &a, o.risk);
                        }
                        if listing {
                            if !needs.costs
                                && let Some(Change::Route { candidates, .. }) = &mut change
                            {
                                // Skipped on the first read: the recorded terms, side by side.
                                let costs = read::recorded_costs(&text[r.span.clone()]);
                                for (c, cost) in candidates.iter_mut().zip(costs) {
                                    c.before = cost;
                                }
                            }
                            keep_change(report, options, change);
                        } else {
                            report.changes_omitted += 1;
                        }
                    }
                }
                Err(why) => *report.skipped.entry(why.into()).or_default() += 1,
            }
        }
        read::Line::Gate(g) => {
            if policy_has_gate(d) && g.request.is_none() {
                report.gates.without_request += 1;
                return;
            }
            if let Some(after) = d.gate(g) {
                report.gates.decisions += 1;
                report.gates.before.add(&g.decision);
                report.gates.after.add(&after);
                if std::mem::discriminant(&after) != std::mem::discriminant(&g.decision) {
                    report.gates.changed += 1;
                    keep_change(
                        report,
                        options,
                        Some(Change::Gate {
                            t_ms: g.t_ms,
                            job: g.job,
                            node: g.node.clone(),
                            before: g.decision.clone(),
                            after,
                        }),
                    );
                }
            }
        }
    }
}

fn policy_has_gate(d: &decide::Decider<'_>) -> bool {
    d.replays_gate()
}

#[cfg(test)]
mod tests;
