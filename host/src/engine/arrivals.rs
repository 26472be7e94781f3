//! Arrivals: counted, Poisson or recorded; each arrival becomes a job whose
//! entry nodes are ready.

use rand::Rng;

use super::report::{JobRecord, NodeRecord};
use super::state::{EventKind, NodeRt};
use super::{Engine, EngineError, Mode};
use crate::trace::{FailureAction, FailureKind, JobStatus, NodeStatus, TraceEvent};

impl Engine {
    pub(super) fn schedule_next_arrival(&mut self) {
        if let Some(a) = self.recorded.front() {
            let t = a.t_ms.max(self.now_ms);
            self.push(t, EventKind::Arrival);
            return;
        }
        if self.arrivals_left == 0 {
            return;
        }
        let t = if self.rate_per_s.is_infinite() {
            self.now_ms
        } else {
            let gap: f64 = self.rng.sample(rand_distr::Exp1);
            self.now_ms + gap / self.rate_per_s * 1e3
        };
        self.push(t, EventKind::Arrival);
    }

    pub(super) fn arrive(&mut self) -> Result<(), EngineError> {
        let class = if let Some(a) = self.recorded.pop_front() {
            self.arrivals_left = self.arrivals_left.saturating_sub(1);
            a.class
        } else {
            self.arrivals_left -= 1;
            if self.class_cdf.len() == 1 {
                0
            } else {
                let u: f64 = self.rng.random();
                self.class_cdf
                    .iter()
                    .position(|&c| u < c)
                    .unwrap_or(self.class_cdf.len() - 1)
            }
        };
        self.schedule_next_arrival();
        let slot = self.new_job(class);
        let job_id = self.jobs[slot].id;
        self.summaries[class].submitted += 1;
        if self.trace.is_some() {
            self.emit(TraceEvent::Arrival {
                t_ms: self.now_ms,
                job: job_id,
                class,
            })?;
        }
        let plan = &self.classes[class];
        if let Some(why) = plan.static_infeasible.clone() {
            // ConstraintInfeasible: clamps contradict a hard constraint.
            let (node, explanation) = why;
            self.emit(TraceEvent::Failure {
                t_ms: self.now_ms,
                job: job_id,
                node: plan.graph.nodes[node].id.clone(),
                kind: FailureKind::ConstraintInfeasible,
                action: FailureAction::Infeasible,
                detail: explanation.clone(),
            })?;
            self.end_job_early(slot, JobStatus::Infeasible, explanation, Some(node))?;
            return Ok(());
        }
        let entries = &self.classes[class].entry_nodes;
        self.ready.extend(entries.iter().map(|&n| (slot, n)));
        self.drain_ready()
    }

    pub(super) fn new_job(&mut self, class: usize) -> u32 {
        let plan = &self.classes[class];
        let n = plan.nodes.len();
        let id = self.next_job_id;
        self.next_job_id += 1;
        let record = self.config.record_jobs.then(|| JobRecord {
            job: id,
            class: plan.name.clone(),
            status: JobStatus::Completed,
            explanation: None,
            arrival_ms: self.now_ms,
            latency_ms: 0.0,
            energy_j: 0.0,
            retry_after_ms: None,
            nodes: plan
                .graph
                .nodes
                .iter()
                .map(|node| NodeRecord {
                    id: node.id.clone(),
                    kind: node.kind(),
                    status: NodeStatus::Skipped,
                    backend: None,
                    candidates: Vec::new(),
                    latency_ms: None,
                    explanation: None,
                    output: None,
                })
                .collect(),
        });
        let slot = self.jobs.alloc();
        let job = &mut self.jobs[slot];
        job.id = id;
        job.class = class as u32;
        job.arrival_ms = self.now_ms;
        // A reused slot's buffers are reset in place (a job of the same
        // class, the common case, has as many nodes).
        job.pending.clear();
        job.pending
            .extend(plan.nodes.iter().map(|p| p.preds.len() as u32));
        job.nodes.truncate(n);
        job.nodes.iter_mut().for_each(NodeRt::reset);
        job.nodes.resize_with(n, NodeRt::default);
        job.open_nodes = n as u32;
        job.status = None;
        job.explanation = None;
        job.retry_after_ms = None;
        job.energy_j = 0.0;
        job.escalations.clear();
        job.values.clear();
        job.evidence.clear();
        if self.config.mode == Mode::Execute || plan.has_evidence {
            job.evidence.resize(n, None);
        }
        job.record = record;
        slot
    }
}
