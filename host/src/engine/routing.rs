//! The routing step of the event loop: gathers a ready node's candidates
//! and what the host knows of them, asks the cost model, lets
//! [`decide::route`](super::decide::route) choose, and records and applies
//! the decision.

use super::decide::explain;
use super::decide::route::{CandidateFacts, HostReason, Routed, assess, choose, late_budget};
use super::queue_policy::Admitted;
use super::report::CandidateBrief;
use super::{Engine, EngineError, Mode};
use crate::policy::{CandidateInput, CostTerms, DecisionContext, PolicyFault, validate_costs};
use crate::trace::{JobStatus, NodeBudget, TraceEvent};

impl Engine {
    /// Chooses a target for a ready node and admits it, or ends the job.
    pub(super) fn route(&mut self, slot: u32, node: u32) -> Result<(), EngineError> {
        self.counters.decisions += 1;
        let (class, job_id, excluded, attempt) = {
            let j = &self.jobs[slot];
            let rt = &j.nodes[node as usize];
            (j.class as usize, j.id, rt.excluded, rt.attempt)
        };
        let plan = &self.classes[class];
        let np = &plan.nodes[node as usize];
        // Spans only where debug logging is on (each is a call to make and
        // drop even when disabled).
        let _spans = tracing::enabled!(tracing::Level::DEBUG).then(|| {
            let job = tracing::debug_span!("job", id = job_id, class = %plan.name).entered();
            let route = tracing::trace_span!(
                "route",
                node = %plan.graph.nodes[node as usize].id,
                attempt,
            )
            .entered();
            // Dropped in this order: the inner span exits first.
            (route, job)
        });
        let priority = plan.graph.qos.priority;
        let budget = self.node_budget(slot, node);
        let late = late_budget(
            &budget,
            np.preds.is_empty(),
            attempt,
            plan.graph.qos.latency_ms.map(|l| l.p95),
            np.downstream_ms,
        );

        self.scratch.clear();
        self.scratch_inputs.clear();
        for (k, &target) in np.targets.iter().enumerate() {
            let device = target.device();
            let facts = self.candidate_facts(class, node, k, excluded);
            let queue = self.devices[device]
                .snapshot(self.hw.queues.limit(device), self.hw.queues.batch_share);
            let c = assess(&facts, &queue, priority, &budget, late.as_ref(), attempt);
            if c.eligible() {
                self.scratch_inputs.push(CandidateInput {
                    target,
                    estimate: c.estimate,
                });
            }
            self.scratch.push(c);
        }
        // One call scores every eligible candidate.
        let wants_situation = self.policy.cost.wants_situation();
        if wants_situation {
            self.fill_situation(slot, node, &budget);
        }
        let plan = &self.classes[class];
        let np = &plan.nodes[node as usize];
        let ctx = DecisionContext {
            node: &np.summary,
            qos: &plan.graph.qos,
            weights: &self.hw.weights,
            candidates: &self.scratch_inputs,
            situation: wants_situation.then_some(&self.situation),
        };
        let scored = self
            .policy
            .cost
            .score(&ctx, &mut self.scratch_costs)
            .and_then(|()| {
                check_costs(
                    &self.scratch_costs,
                    self.scratch_inputs.len(),
                    self.policy.cost.name(),
                )
            });
        let native_fallback = scored.is_err();
        if let Err(fault) = scored {
            self.native
                .cost
                .score(&ctx, &mut self.scratch_costs)
                .expect("the native cost model does not fail");
            self.note_fault("cost", &fault, "native cost model");
            if self.trace.is_some() {
                let node_id = self.classes[class].graph.nodes[node as usize].id.clone();
                self.emit(TraceEvent::PolicyFault {
                    t_ms: self.now_ms,
                    job: Some(job_id),
                    node: Some(node_id),
                    role: "cost".into(),
                    fault,
                    fallback: "native cost model".into(),
                })?;
            }
        }
        for (c, cost) in self
            .scratch
            .iter_mut()
            .filter(|c| c.eligible())
            .zip(&self.scratch_costs)
        {
            c.cost = *cost;
        }
        // The explanation says when the costs are not sums of their terms.
        let additive = native_fallback || self.policy.cost.additive();
        let plan = &self.classes[class];
        let np = &plan.nodes[node as usize];
        // The order comes with the costs it was scored with.
        let order: &[crate::device::Target] =
            if np.summary.kind != crate::model::graph::NodeKind::Sample {
                &[]
            } else if native_fallback {
                self.native.cost.sampling_order()
            } else {
                self.policy.cost.sampling_order()
            };
        let outcome = choose(&self.scratch, priority, order, || {
            explain::infeasible_explanation(
                &plan.graph.nodes[node as usize].id,
                &self.scratch,
                &np.verdicts,
                &budget,
            )
        });
        if tracing::enabled!(tracing::Level::DEBUG) {
            let id = &plan.graph.nodes[node as usize].id;
            let why = explain::decision_explanation(&self.scratch, &outcome, order, additive);
            match &outcome {
                Routed::Chosen(_) => tracing::debug!(job = job_id, node = %id, "routed: {why}"),
                Routed::Busy { .. } => tracing::debug!(job = job_id, node = %id, "rejected: {why}"),
                Routed::Infeasible(_) => {
                    tracing::debug!(job = job_id, node = %id, "infeasible: {why}");
                }
            }
        }
        // An admission plugin may refuse or hold the chosen target.
        let Admitted {
            outcome,
            hold,
            faults,
        } = self.plugin_admission(slot, node, outcome, priority, order);
        if self.trace.is_some() || (self.config.record_jobs && !self.brief_records) {
            let order = order.to_vec();
            self.record_decision(slot, node, attempt, &outcome, budget, &order, additive)?;
        }
        if !faults.is_empty() {
            self.admission_faults(slot, node, faults)?;
        }
        match outcome {
            Routed::Chosen(i) => {
                let c = self.scratch[i];
                if c.target.samples() {
                    self.counters.sampling_error_sum += c.estimate.error;
                    self.counters.sampling_decisions += 1;
                }
                if let Some(reason) = hold {
                    return self.hold(slot, node, c.target, c.estimate, budget.timeout_ms, reason);
                }
                self.admit(slot, node, c.target, c.estimate, budget.timeout_ms)
            }
            Routed::Busy {
                retry_after_ms,
                why,
            } => {
                self.counters.rejections += 1;
                self.emit(TraceEvent::Reject {
                    t_ms: self.now_ms,
                    job: job_id,
                    node: self.classes[class].graph.nodes[node as usize].id.clone(),
                    retry_after_ms,
                    reason: why.clone(),
                })?;
                self.jobs[slot].retry_after_ms = Some(retry_after_ms);
                self.end_job_early(slot, JobStatus::Rejected, why, Some(node as usize))
            }
            Routed::Infeasible(why) => {
                // Nothing left because the targets that could serve it
                // failed: the job failed (with every failure), it was not
                // infeasible.
                let failures = &self.jobs[slot].nodes[node as usize].failures;
                match explain::failed_explanation(failures, &why) {
                    Some(why) => {
                        self.end_job_early(slot, JobStatus::Failed, why, Some(node as usize))
                    }
                    None => {
                        self.end_job_early(slot, JobStatus::Infeasible, why, Some(node as usize))
                    }
                }
            }
        }
    }

    /// A node's budgets now: its latency shares, the energy the job has
    /// left after what its other open nodes need at least, its timeout.
    pub(super) fn node_budget(&self, slot: u32, node: u32) -> NodeBudget {
        let job = &self.jobs[slot];
        let plan = &self.classes[job.class as usize];
        let elapsed = self.now_ms - job.arrival_ms;
        let (spent_j, reserve_j) =
            if plan.graph.qos.energy_j.is_some() || plan.graph.qos.energy_relative.is_some() {
                let reserve = job
                    .nodes
                    .iter()
                    .enumerate()
                    .filter(|(m, rt)| *m != node as usize && rt.status.is_none())
                    .map(|(m, _)| plan.nodes[m].min_energy_j)
                    .sum();
                (job.energy_j, reserve)
            } else {
                (0.0, 0.0)
            };
        plan.budget(node as usize, &self.hw, elapsed, spent_j, reserve_j)
    }

    /// What the host knows of a node's `k`th candidate target: whether it
    /// may serve the node (`excluded`: the targets that failed it) and its
    /// learned service.
    pub(super) fn candidate_facts(
        &self,
        class: usize,
        node: u32,
        k: usize,
        excluded: u8,
    ) -> CandidateFacts {
        let np = &self.classes[class].nodes[node as usize];
        let target = np.targets[k];
        let device = target.device();
        let host_reason = HostReason::of(
            self.hw.slots(device) > 0,
            self.config.mode != Mode::Execute || self.backends.serves(target),
            self.device_online(device),
            excluded & (1 << target.index()) != 0,
        );
        let learned = self.tables.get(np.slots[k]);
        CandidateFacts {
            target,
            host_reason,
            policy_ok: np.verdicts[k].is_empty(),
            mean_ms: learned.mean_ms,
            p95_ms: learned.p95_ms,
            energy_j: learned.energy_j,
            error: np.prior[k].error,
        }
    }

    pub(super) fn record_decision(
        &mut self,
        slot: u32,
        node: u32,
        attempt: u32,
        outcome: &Routed,
        budget: NodeBudget,
        order: &[crate::device::Target],
        additive: bool,
    ) -> Result<(), EngineError> {
        let class = self.jobs[slot].class as usize;
        let chosen = match outcome {
            Routed::Chosen(i) => Some(self.scratch[*i].target),
            _ => None,
        };
        let verdicts = &self.classes[class].nodes[node as usize].verdicts;
        let records = explain::candidate_records(&self.scratch, verdicts);
        let explanation = explain::decision_explanation(&self.scratch, outcome, order, additive);
        let job = &mut self.jobs[slot];
        let job_id = job.id;
        if let Some(r) = &mut job.record {
            let n = &mut r.nodes[node as usize];
            n.backend = chosen;
            n.candidates = records
                .iter()
                .map(|c| CandidateBrief {
                    target: c.target,
                    eligible: c.eligible,
                    feasible: c.eligible && c.violations.is_empty(),
                    cost: c.cost.map(|t| t.total),
                    reasons: c
                        .reasons
                        .iter()
                        .map(|r| r.to_string())
                        .chain(c.violations.iter().map(|v| format!("violates {v}")))
                        .collect(),
                })
                .collect();
        }
        if self.trace.is_some() {
            let node_id = self.classes[class].graph.nodes[node as usize].id.clone();
            self.emit(TraceEvent::Route {
                t_ms: self.now_ms,
                job: job_id,
                node: node_id,
                attempt,
                chosen,
                candidates: records,
                budget,
                explanation,
            })?;
        }
        Ok(())
    }
}

/// Rejects a cost model's answer that cannot be compared: wrong length, NaN,
/// infinite or negative costs.
fn check_costs(costs: &[CostTerms], expected: usize, policy: &str) -> Result<(), PolicyFault> {
    validate_costs(costs, expected).map_err(|reason| PolicyFault {
        policy: policy.into(),
        reason,
        kind: "invalid_output".into(),
        ..Default::default()
    })
}
