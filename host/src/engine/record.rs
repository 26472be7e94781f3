//! What the run records: the trace (whole events, only when tracing) and
//! the counters of the run report.

use serde::Serialize;

use super::{Engine, EngineError};
use crate::device::{PerDevice, Target};
use crate::trace::{FailureAction, FailureKind, NodeStatus, TraceEvent};

#[derive(Debug, Clone, Default, Serialize)]
/// Counters kept for the run report.
pub struct Counters {
    /// Routing decisions made (fallbacks re-route).
    pub decisions: u64,
    /// Nodes moved to another target after a failure.
    pub fallbacks: u64,
    /// Jobs rejected by backpressure.
    pub rejections: u64,
    /// Running tasks suspended for interactive work.
    pub preemptions: u64,
    /// Queued tasks an idle device took from a busy one (execute mode).
    #[serde(skip_serializing_if = "is_zero")]
    pub steals: u64,
    /// Nodes stopped by their timeout.
    pub timeouts: u64,
    /// Sampling nodes stopped early (converged).
    pub early_stops: u64,
    /// Sampling nodes that did not converge.
    pub nonconvergence: u64,
    /// Page-Hinkley drift alarms.
    pub drift_events: u64,
    /// Policy calls that failed (native fallback or fail closed).
    pub policy_faults: u64,
    /// Effects the gate allowed.
    pub gate_allow: u64,
    /// Effects held for review.
    pub gate_review: u64,
    /// Effects denied.
    pub gate_deny: u64,
    /// Sampling nodes whose diagnostics were degraded under load.
    pub degraded_diagnostics: u64,
    /// Busy milliseconds per device (cpu, gpu, tsu), for utilisation.
    pub busy_ms: PerDevice<f64>,
    /// Sum and count of the expected error of the targets chosen for
    /// sampling nodes (the accuracy the routing bought).
    pub sampling_error_sum: f64,
    /// Sampling decisions (the count behind `sampling_error_sum`).
    pub sampling_decisions: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Engine {
    /// Records a node's end in the trace; `output` is built only when tracing.
    pub(super) fn trace_end(
        &mut self,
        slot: u32,
        node: u32,
        target: Target,
        status: NodeStatus,
        service_ms: f64,
        energy_j: f64,
        measured: bool,
        output: impl FnOnce() -> Option<serde_json::Value>,
    ) -> Result<(), EngineError> {
        if self.trace.is_none() {
            return Ok(());
        }
        let (job, node) = self.ids(slot, node);
        self.emit(TraceEvent::End {
            t_ms: self.now_ms,
            job,
            node,
            target,
            status,
            service_ms,
            energy_j,
            measured,
            output: output(),
        })
    }

    /// A timed-out sampling node that keeps the draws it made.
    pub(super) fn keep_partial_draws(
        &mut self,
        slot: u32,
        node: u32,
        detail: String,
    ) -> Result<(), EngineError> {
        self.emit_failure(
            slot,
            node,
            FailureKind::BudgetExceeded,
            FailureAction::ReduceSamples,
            detail,
        )
    }

    pub(super) fn emit_failure(
        &mut self,
        slot: u32,
        node: u32,
        kind: FailureKind,
        action: FailureAction,
        detail: String,
    ) -> Result<(), EngineError> {
        if self.trace.is_some() {
            let (job, node_id) = self.ids(slot, node);
            self.emit(TraceEvent::Failure {
                t_ms: self.now_ms,
                job,
                node: node_id,
                kind,
                action,
                detail,
            })?;
        }
        Ok(())
    }

    pub(super) fn emit(&mut self, event: TraceEvent) -> Result<(), EngineError> {
        if let Some(t) = &mut self.trace {
            t.write(&event)?;
        }
        Ok(())
    }

    pub(super) fn ids(&self, slot: u32, node: u32) -> (u64, String) {
        let job = &self.jobs[slot];
        (
            job.id,
            self.classes[job.class as usize].graph.nodes[node as usize]
                .id
                .clone(),
        )
    }
}
