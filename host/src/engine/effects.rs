//! The effect step of the event loop: an effect node asks the gate on the
//! evidence of everything upstream, then is applied, held for a human, or
//! dropped. The decision comes from [`decide::gate`](super::decide::gate).

use super::decide::gate::{effect_outcome, gate_decision, hold_to_floor, host_floor};
use super::{Engine, EngineError, Mode};
use crate::model::graph::EffectSpec;
use crate::policy::{EffectRequest, GateDecision};
use crate::review::{ReviewItem, ReviewStatus};
use crate::trace::TraceEvent;

impl Engine {
    /// Gate, then apply, hold or drop an effect. Effects take no device time.
    pub(super) fn run_effect(&mut self, task_id: u32, spec: EffectSpec) -> Result<(), EngineError> {
        let task = self.release(task_id);
        let (slot, node, target) = (task.job, task.node, task.target);
        let job = &self.jobs[slot];
        let class = job.class as usize;
        let plan = &self.classes[class];
        let n = &plan.graph.nodes[node as usize];
        let graph_name = plan.name.clone();
        let request = EffectRequest {
            node: n.id.clone(),
            action: spec.action.clone(),
            risk: spec.risk,
            priority: plan.graph.qos.priority,
            evidence: plan.nodes[node as usize]
                .evidence_nodes
                .iter()
                .filter_map(|&a| job.evidence[a as usize].clone())
                .collect(),
            escalations: job.escalations.clone(),
        };
        let (decision, fault) =
            gate_decision(self.policy.gate.decide(&request), self.hw.gate.fail_closed);
        // The host's own floor, whatever the gate said.
        let (decision, floor) = hold_to_floor(decision, host_floor(&request, &self.hw.gate));
        if let Some(fault) = fault {
            self.note_fault("gate", &fault, &format!("fail closed: {decision:?}"));
            self.emit(TraceEvent::PolicyFault {
                t_ms: self.now_ms,
                job: Some(self.jobs[slot].id),
                node: Some(request.node.clone()),
                role: "gate".into(),
                fault,
                fallback: format!("fail closed: {decision:?}"),
            })?;
        }
        let job_id = self.jobs[slot].id;
        let mut review_id = None;
        match &decision {
            GateDecision::Allow => self.counters.gate_allow += 1,
            GateDecision::Deny(_) => self.counters.gate_deny += 1,
            GateDecision::RequireReview(reasons) => {
                self.counters.gate_review += 1;
                if let Some(q) = &mut self.reviews {
                    review_id = Some(q.hold(ReviewItem {
                        id: String::new(),
                        graph: graph_name,
                        job: job_id,
                        node: request.node.clone(),
                        action: spec.action.clone(),
                        risk: spec.risk,
                        reasons: reasons.clone(),
                        evidence: request.evidence,
                        status: ReviewStatus::Pending,
                        decided_by: None,
                        note: None,
                    })?);
                }
            }
        }
        let measured = self.config.mode == Mode::Execute;
        let (status, output) = effect_outcome(&decision, &spec, review_id.as_deref(), !measured);
        self.emit(TraceEvent::Gate {
            t_ms: self.now_ms,
            job: job_id,
            node: request.node,
            decision,
            review_id,
            floor,
        })?;
        self.trace_end(slot, node, target, status, 0.0, 0.0, measured, || {
            Some(output.clone())
        })?;
        self.dispatch(target.device())?;
        self.close_node(slot, node, status, None, Some(output))
    }
}
