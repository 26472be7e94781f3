//! Re-deciding one recorded decision under another policy: the recorded
//! candidates, estimates, queue room and budget violations in, the choice
//! the engine's own [`choose`] makes with the new policy's answers out.

use std::collections::HashMap;

use super::read::{Cand, GateLine, NodeNames, RouteLine};
use super::{CandidateChange, Change, Counterfactual, FaultCounts, ReplayError, TraceHeader};
use crate::device::Target;
use crate::engine::decide::gate::{gate_decision, hold_to_floor, host_floor};
use crate::engine::decide::route::{Candidate, HostReason, Routed, choose};
use crate::hardware::{Hardware, Weights};
use crate::model::graph::{NodeKind, Qos};
use crate::policy::{
    BackendLimits, CandidateInput, CostModel, CostTerms, DecisionContext, Eligibility,
    EligibilityQuery, Estimate, GateDecision, Ineligible, NativeCost, NativeEligibility,
    NodeSummary, PolicyFault,
};

/// One class's nodes, by their index in [`NodeNames`].
struct ClassInfo {
    name: String,
    qos: Qos,
    nodes: Vec<Option<NodeSummary>>,
}

/// Recorded jobs' classes: by job number while numbers are small (they
/// count up from 0 in a run), in a map past that.
#[derive(Default)]
struct JobClasses {
    dense: Vec<u32>,
    sparse: HashMap<u64, u32>,
}

impl JobClasses {
    const DENSE: u64 = 1 << 24;
    const NONE: u32 = u32::MAX;

    fn insert(&mut self, job: u64, class: u32) {
        if job < Self::DENSE && class != Self::NONE {
            let j = job as usize;
            if j >= self.dense.len() {
                self.dense.resize(j + 1, Self::NONE);
            }
            self.dense[j] = class;
            if !self.sparse.is_empty() {
                self.sparse.remove(&job);
            }
        } else {
            if let Some(slot) = self.dense.get_mut(job as usize) {
                *slot = Self::NONE;
            }
            self.sparse.insert(job, class);
        }
    }

    fn get(&self, job: u64) -> Option<u32> {
        match self.dense.get(job as usize) {
            Some(&c) if c != Self::NONE && job < Self::DENSE => Some(c),
            _ => self.sparse.get(&job).copied(),
        }
    }
}

/// What one re-decided route came to.
pub(super) struct RouteOutcome {
    pub before: Option<Target>,
    pub after: Option<Target>,
    /// Estimates of the chosen targets, before and after.
    pub estimates: Option<(Estimate, Estimate)>,
    /// The native risk penalty of each chosen target.
    pub risk: (f64, f64),
    /// The new eligibility rules admit a candidate the trace has no estimate for.
    pub widened: bool,
}

/// Re-decides recorded decisions, keeping what repeats across them.
pub(super) struct Decider<'a> {
    policy: &'a Counterfactual,
    hw: &'a Hardware,
    native_cost: NativeCost,
    native_eligibility: NativeEligibility,
    weights: Weights,
    classes: Vec<ClassInfo>,
    /// Node ids by index, as routes name them.
    node_names: Vec<String>,
    jobs: JobClasses,
    /// The new rules' verdict per class, node index and target, once asked.
    verdicts: Vec<Option<Vec<Ineligible>>>,
    recorded_native_order: bool,
    cost_fault_pending: bool,
    inputs: Vec<CandidateInput>,
    costs: Vec<CostTerms>,
    cands: Vec<Candidate>,
    eligible_after: Vec<bool>,
    pub faults: FaultCounts,
}

impl<'a> Decider<'a> {
    pub fn new(header: &'a TraceHeader, policy: &'a Counterfactual) -> Decider<'a> {
        let hw = &header.hardware;
        let names = NodeNames::of(header);
        let classes = header
            .classes
            .iter()
            .enumerate()
            .map(|(c, name)| {
                let mut nodes = vec![None; names.names.len()];
                for n in header.class_nodes.get(c).into_iter().flatten() {
                    if let Some(k) = names.get(&n.id) {
                        nodes[k as usize] = Some(n.node.clone());
                    }
                }
                ClassInfo {
                    name: name.clone(),
                    qos: header.class_qos.get(c).copied().unwrap_or_default(),
                    nodes,
                }
            })
            .collect();
        let node_names: Vec<String> = names.names.iter().map(|n| n.to_string()).collect();
        let verdicts = vec![None; header.classes.len() * node_names.len() * Target::COUNT];
        Decider {
            policy,
            hw,
            native_cost: NativeCost {
                policy: hw.policy.clone(),
            },
            native_eligibility: NativeEligibility {
                policy: hw.policy.clone(),
            },
            weights: hw.weights,
            classes,
            node_names,
            jobs: JobClasses::default(),
            verdicts,
            recorded_native_order: header.policy.starts_with("cost=native"),
            cost_fault_pending: false,
            inputs: Vec::new(),
            costs: Vec::new(),
            cands: Vec::new(),
            eligible_after: Vec::new(),
            faults: FaultCounts::default(),
        }
    }

    pub fn arrival(&mut self, job: u64, class: usize) {
        self.jobs
            .insert(job, u32::try_from(class).unwrap_or(JobClasses::NONE));
    }

    pub fn set_weights(&mut self, w: Weights) {
        self.weights = w;
    }

    /// Whether a gate is replayed.
    pub fn replays_gate(&self) -> bool {
        self.policy.gate.is_some()
    }

    pub fn recorded_cost_fault(&mut self) {
        self.cost_fault_pending = true;
    }

    /// The class of a recorded job, or why the decision is skipped.
    fn class_of(&self, job: u64) -> Result<u32, &'static str> {
        let c = self.jobs.get(job).ok_or("job_without_arrival")?;
        if (c as usize) < self.classes.len() {
            Ok(c)
        } else {
            Err("unknown_class")
        }
    }

    fn fault(&mut self, role: &'static str, f: PolicyFault) {
        self.faults.record(role, f);
    }

    /// The new rules' verdict on `target` for a class's node (asked once).
    fn verdict(
        &mut self,
        rules: &dyn Eligibility,
        class: u32,
        node_ix: u32,
        target: Target,
    ) -> &[Ineligible] {
        let key = (class as usize * self.node_names.len() + node_ix as usize) * Target::COUNT
            + target as usize;
        if self.verdicts[key].is_none() {
            let info = &self.classes[class as usize];
            let node = info.nodes[node_ix as usize]
                .as_ref()
                .expect("a route's node is checked before its verdicts");
            let limits = BackendLimits::of(target, self.hw);
            let query = EligibilityQuery {
                node,
                qos: &info.qos,
                target,
                limits: &limits,
                job: None,
            };
            self.faults.calls.eligibility += 1;
            let reasons = match rules.verdict(&query) {
                Ok(r) => r,
                Err(f) => {
                    let native = self.native_eligibility.verdict(&query).unwrap_or_default();
                    self.fault("eligibility", f);
                    native
                }
            };
            self.verdicts[key] = Some(reasons);
        }
        self.verdicts[key].as_deref().unwrap_or_default()
    }

    /// Re-decides one route; `Err(reason)` skips it (counted by reason).
    pub fn route(
        &mut self,
        r: &RouteLine,
        change: Option<&mut Option<Change>>,
    ) -> Result<RouteOutcome, &'static str> {
        let recorded_fault = std::mem::take(&mut self.cost_fault_pending);
        let class = self.class_of(r.job)?;
        let node_ix = r
            .node
            .filter(|&k| {
                self.classes[class as usize]
                    .nodes
                    .get(k as usize)
                    .is_some_and(Option::is_some)
            })
            .ok_or("unknown_node")?;
        // Eligibility: the recorded verdict, narrowed by new rules.
        let mut eligible_after = std::mem::take(&mut self.eligible_after);
        eligible_after.clear();
        eligible_after.extend(r.candidates.iter().map(|c| c.eligible));
        let mut widened = false;
        let policy = self.policy;
        if let Some(rules) = policy.eligibility.as_deref() {
            for (k, c) in r.candidates.iter().enumerate() {
                let out = !self.verdict(rules, class, node_ix, c.target).is_empty();
                if c.eligible {
                    eligible_after[k] = !out && c.estimate.is_some();
                } else if !out && !c.host_reason {
                    widened = true;
                }
            }
        }
        // Costs: the new model's, or the recorded ones.
        self.inputs.clear();
        for (c, &ok) in r.candidates.iter().zip(&eligible_after) {
            if ok {
                self.inputs.push(CandidateInput {
                    target: c.target,
                    estimate: c.estimate.unwrap_or_default(),
                });
            }
        }
        let mut native_order = if self.policy.cost.is_some() {
            false
        } else {
            self.recorded_native_order || recorded_fault
        };
        let info = &self.classes[class as usize];
        let node = info.nodes[node_ix as usize]
            .as_ref()
            .expect("checked above");
        let kind = node.kind;
        let qos = info.qos;
        if let Some(model) = self.policy.cost.as_deref() {
            if !self.inputs.is_empty() {
                let ctx = DecisionContext {
                    node,
                    qos: &qos,
                    weights: &self.weights,
                    candidates: &self.inputs,
                    // A trace does not record the device states a 0.2
                    // situation needs; replay decides without one.
                    situation: None,
                };
                self.faults.calls.cost += 1;
                let answer = model.score(&ctx, &mut self.costs).and_then(|()| {
                    crate::policy::validate_costs(&self.costs, self.inputs.len()).map_err(
                        |reason| PolicyFault {
                            policy: model.name().into(),
                            reason,
                            kind: "invalid_output".into(),
                            ..PolicyFault::default()
                        },
                    )
                });
                if let Err(f) = answer {
                    let _ = self.native_cost.score(&ctx, &mut self.costs);
                    native_order = true;
                    self.faults.record("cost", f);
                }
            } else {
                self.costs.clear();
            }
        } else {
            self.costs.clear();
            self.costs.extend(
                r.candidates
                    .iter()
                    .zip(&eligible_after)
                    .filter(|(_, ok)| **ok)
                    .map(|(c, _)| c.cost.unwrap_or_default()),
            );
        }
        let order: &[Target] = if kind != NodeKind::Sample {
            &[]
        } else if native_order {
            self.native_cost.sampling_order()
        } else {
            self.policy
                .cost
                .as_deref()
                .map_or(&[][..], |m| m.sampling_order())
        };
        self.cands.clear();
        let mut scored = self.costs.iter();
        for (c, &ok) in r.candidates.iter().zip(&eligible_after) {
            let violations = c.violations;
            self.cands.push(Candidate {
                target: c.target,
                host_reason: (!c.eligible).then_some(HostReason::NotPresent),
                policy_ok: ok,
                estimate: c.estimate.unwrap_or_default(),
                cost: if ok {
                    scored.next().copied().unwrap_or_default()
                } else {
                    CostTerms::default()
                },
                violations,
                violations_idle: violations,
                violations_late: if c.late_ok { 0 } else { violations },
                room: c.queue_has_room.unwrap_or(false),
                drain_ms: 0.0,
            });
        }
        let after_i = match choose(&self.cands, info.qos.priority, order, String::new) {
            Routed::Chosen(i) => Some(i),
            _ => None,
        };
        let after = after_i.map(|i| self.cands[i].target);
        let before = r.chosen;
        let estimate_of = |t: Target| -> Option<Estimate> {
            r.candidates
                .iter()
                .find(|c| c.target == t)
                .and_then(|c| c.estimate)
        };
        let estimates = match (before, after) {
            (Some(b), Some(a)) => estimate_of(b).zip(estimate_of(a)),
            _ => None,
        };
        let risk_of = |t: Option<Target>| t.map_or(0.0, |t| self.native_cost.risk_penalty(&qos, t));
        let risk = (risk_of(before), risk_of(after));
        if before != after
            && let Some(slot) = change
        {
            *slot = Some(Change::Route {
                t_ms: r.t_ms,
                job: r.job,
                node: self.node_names[node_ix as usize].clone(),
                attempt: r.attempt,
                class: info.name.clone(),
                before,
                after,
                candidates: self.candidate_changes(&r.candidates, &eligible_after),
            });
        }
        self.eligible_after = eligible_after;
        Ok(RouteOutcome {
            before,
            after,
            estimates,
            risk,
            widened,
        })
    }

    fn candidate_changes(&self, records: &[Cand], eligible_after: &[bool]) -> Vec<CandidateChange> {
        records
            .iter()
            .zip(eligible_after)
            .zip(&self.cands)
            .map(|((c, &ok), cand)| CandidateChange {
                target: c.target,
                eligible_before: c.eligible,
                eligible_after: ok,
                estimate: c.estimate,
                before: c.cost,
                after: ok.then_some(cand.cost),
            })
            .collect()
    }

    /// Re-decides a gate decision; `None` when the trace did not record the
    /// request or no gate is replayed.
    pub fn gate(&mut self, g: &GateLine) -> Option<GateDecision> {
        let gate = self.policy.gate.as_deref()?;
        let request = g.request.as_deref()?;
        self.faults.calls.gate += 1;
        let (decision, fault) = gate_decision(gate.decide(request), self.hw.gate.fail_closed);
        if let Some(f) = fault {
            self.fault("gate", f);
        }
        let (decision, _) = hold_to_floor(decision, host_floor(request, &self.hw.gate));
        Some(decision)
    }
}

/// A trace without any decision to compare is an error for the caller.
pub(super) fn nothing_to_compare(file: &std::path::Path) -> ReplayError {
    ReplayError::NoDecisions { file: file.into() }
}
