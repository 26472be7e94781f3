//! A job's life after arrival: ready nodes are routed or skipped, a node's
//! end releases its successors, failures fall back to another target, and
//! the last node ends the job. Completed work feeds the learning tables.

use super::{Engine, EngineError};
use crate::device::Target;
use crate::trace::{FailureAction, FailureKind, JobStatus, NodeStatus, TraceEvent};

impl Engine {
    /// Routes (or skips) every node in the ready list. Iterative: called
    /// again while it runs (from `close_node`), it returns at once and the
    /// running loop takes the nodes just released next.
    pub(super) fn drain_ready(&mut self) -> Result<(), EngineError> {
        if self.draining {
            return Ok(());
        }
        self.draining = true;
        let result = self.drain_ready_loop();
        self.draining = false;
        result
    }

    fn drain_ready_loop(&mut self) -> Result<(), EngineError> {
        while let Some((slot, node)) = self.ready.pop() {
            let job = &self.jobs[slot];
            let plan = &self.classes[job.class as usize];
            let skip_reason = if job.status.is_some() {
                Some(format!(
                    "the job ended {} before this node was ready",
                    job.status.map_or("", |s| s.name())
                ))
            } else if job.nodes[node as usize].skipped_by_branch {
                Some("on the branch not taken".to_string())
            } else {
                plan.nodes[node as usize]
                    .preds
                    .iter()
                    .find(|&&p| job.nodes[p as usize].status != Some(NodeStatus::Completed))
                    .map(|&p| {
                        format!(
                            "input {:?} did not complete",
                            plan.graph.nodes[p as usize].id
                        )
                    })
            };
            match skip_reason {
                Some(why) => self.close_node(slot, node, NodeStatus::Skipped, Some(why), None)?,
                None => {
                    self.jobs[slot].nodes[node as usize].ready_ms = self.now_ms;
                    self.route(slot, node)?;
                }
            }
        }
        Ok(())
    }

    /// BackendUnavailable, BackendError, BudgetExceeded: route again without
    /// the target that failed; with nothing left, the node fails.
    pub(super) fn fall_back(
        &mut self,
        slot: u32,
        node: u32,
        failed: Target,
        kind: FailureKind,
        detail: String,
    ) -> Result<(), EngineError> {
        self.counters.fallbacks += 1;
        let rt = &mut self.jobs[slot].nodes[node as usize];
        rt.excluded |= 1 << failed.index();
        rt.attempt += 1;
        rt.target = None;
        let detail = format!("{failed}: {detail}");
        rt.failures.push(detail.clone());
        self.emit_failure(slot, node, kind, FailureAction::Fallback, detail)?;
        self.route(slot, node)
    }

    /// A node past its budget: its device takes the next task, then the
    /// node falls back.
    pub(super) fn budget_fallback(
        &mut self,
        slot: u32,
        node: u32,
        target: Target,
        detail: String,
    ) -> Result<(), EngineError> {
        self.dispatch(target.device())?;
        self.fall_back(slot, node, target, FailureKind::BudgetExceeded, detail)
    }

    pub(super) fn observe(
        &mut self,
        slot: u32,
        node: u32,
        target: Target,
        service_ms: f64,
        energy_j: f64,
    ) -> Result<(), EngineError> {
        let class = self.jobs[slot].class as usize;
        self.counters.busy_ms[target.device()] += service_ms;
        let np = &self.classes[class].nodes[node as usize];
        let k = np.target_slot(target);
        let table_slot = np.slots[k];
        if let Some(drift) =
            self.tables
                .get_mut(table_slot)
                .observe(service_ms, energy_j, &self.hw.drift)
        {
            self.counters.drift_events += 1;
            self.emit(TraceEvent::Drift {
                t_ms: self.now_ms,
                drift,
            })?;
        }
        Ok(())
    }

    pub(super) fn end_job_early(
        &mut self,
        slot: u32,
        status: JobStatus,
        why: String,
        node: Option<usize>,
    ) -> Result<(), EngineError> {
        let job = &mut self.jobs[slot];
        if job.status.is_none() {
            job.status = Some(status);
            job.explanation = Some(why.clone());
        }
        match node {
            Some(n) => {
                let node_status = match status {
                    JobStatus::Infeasible => NodeStatus::Infeasible,
                    JobStatus::Rejected => NodeStatus::Rejected,
                    _ => NodeStatus::Failed,
                };
                self.close_node(slot, n as u32, node_status, Some(why), None)
            }
            None => Ok(()),
        }
    }

    /// Records a node's terminal status, releases its successors and ends
    /// the job after its last node.
    pub(super) fn close_node(
        &mut self,
        slot: u32,
        node: u32,
        status: NodeStatus,
        why: Option<String>,
        output: Option<serde_json::Value>,
    ) -> Result<(), EngineError> {
        let now = self.now_ms;
        let job = &mut self.jobs[slot];
        let class = job.class as usize;
        let rt = &mut job.nodes[node as usize];
        if rt.status.is_some() {
            return Ok(());
        }
        rt.status = Some(status);
        rt.end_ms = now;
        rt.explanation.clone_from(&why);
        let target = rt.target;
        let latency = now - rt.ready_ms;
        if matches!(status, NodeStatus::Infeasible | NodeStatus::Failed) && job.status.is_none() {
            job.status = Some(if status == NodeStatus::Infeasible {
                JobStatus::Infeasible
            } else {
                JobStatus::Failed
            });
            job.explanation = Some(format!(
                "node {:?}: {}",
                self.classes[class].graph.nodes[node as usize].id,
                why.clone().unwrap_or_default()
            ));
        }
        if let Some(r) = &mut job.record {
            let n = &mut r.nodes[node as usize];
            n.status = status;
            n.explanation = why;
            n.output = output;
            if status != NodeStatus::Skipped {
                n.latency_ms = Some(latency);
            }
            if status == NodeStatus::Completed
                || status == NodeStatus::Held
                || status == NodeStatus::Denied
                || (self.brief_records && n.backend.is_none())
            {
                n.backend = target;
            }
        }
        if let Some(t) = target
            && matches!(
                status,
                NodeStatus::Completed | NodeStatus::Held | NodeStatus::Denied
            )
        {
            self.summaries[class].node_mix[node as usize][t] += 1;
        }
        job.open_nodes -= 1;
        for &s in &self.classes[class].nodes[node as usize].succs {
            job.pending[s as usize] -= 1;
            if job.pending[s as usize] == 0 {
                self.ready.push((slot, s));
            }
        }
        if job.open_nodes == 0 {
            self.end_job(slot)?;
        }
        self.drain_ready()
    }

    pub(super) fn end_job(&mut self, slot: u32) -> Result<(), EngineError> {
        let now = self.now_ms;
        let job = &mut self.jobs[slot];
        let status = job.status.unwrap_or(JobStatus::Completed);
        let latency = now - job.arrival_ms;
        let class = job.class as usize;
        self.summaries[class].add(status, latency, job.energy_j, &self.classes[class]);
        tracing::debug!(
            job = job.id,
            class = %self.classes[class].name,
            status = status.name(),
            latency_ms = latency,
            energy_j = job.energy_j,
            "job ended"
        );
        if self.trace.is_some() {
            let event = TraceEvent::JobEnd {
                t_ms: now,
                job: job.id,
                class,
                status,
                latency_ms: latency,
                energy_j: job.energy_j,
                explanation: job.explanation.clone(),
            };
            self.emit(event)?;
        }
        let job = &mut self.jobs[slot];
        if let Some(mut r) = job.record.take() {
            r.status = status;
            r.explanation = job.explanation.clone();
            r.latency_ms = latency;
            r.energy_j = job.energy_j;
            r.retry_after_ms = job.retry_after_ms;
            self.records.push(r);
        }
        job.values.clear();
        self.jobs.free(slot);
        Ok(())
    }
}
