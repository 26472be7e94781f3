//! Traces: JSON Lines, one event per line, the first line a header naming the
//! format and version. Every routing decision carries all of its candidates
//! with estimates, eligibility verdicts and cost terms, so a trace alone
//! explains each decision.
//!
//! Lines are written whole: the writer buffers complete lines only and hands
//! them to the OS in one write, so a killed run leaves a readable prefix (at
//! worst a torn last line, which [`read_trace`] reports and skips).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::device::{Device, Target};
use crate::hardware::Hardware;
use crate::perf::Drift;
use crate::policy::{
    CostTerms, EffectRequest, Estimate, GateDecision, Ineligible, NodeSummary, PolicyFault,
    PolicyNotice,
};

mod parts;
mod read;
mod write;

pub use parts::{TRACE_PARTS_KEPT, trace_part_path, trace_parts};
pub use read::{Trace, TraceTail, read_trace, read_trace_from};
pub use write::TraceWriter;

pub const TRACE_FORMAT: &str = "thermoroute-trace";
pub const TRACE_VERSION: u32 = 1;

/// One candidate of a routing decision, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CandidateRecord {
    pub target: Target,
    pub device: Device,
    pub eligible: bool,
    /// Why the candidate is not eligible (empty when it is).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<Ineligible>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate: Option<Estimate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostTerms>,
    /// QoS constraints the estimate violates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<String>,
    /// Whether its queue had room (absent when not eligible).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_has_room: Option<bool>,
    /// The job is behind its schedule and this candidate, though it misses
    /// the node's own latency shares (`violations`), meets the job's
    /// remaining p95 budget, so routing may still take it (absent: false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub late_ok: bool,
}

/// A node of a job class as policies see it, recorded in the header so a
/// trace alone can re-decide its routes (`thermoroute replay-policy`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// The node's id in its graph.
    pub id: String,
    /// What policies are told of it.
    pub node: NodeSummary,
}

/// A node's share of the job's budgets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct NodeBudget {
    /// Latest completion, ms after the job's arrival, for the p50 target.
    pub deadline_p50_ms: Option<f64>,
    /// Latest completion, ms after the job's arrival, for the p95 target.
    pub deadline_p95_ms: Option<f64>,
    pub energy_j: Option<f64>,
    pub max_error: Option<f64>,
    /// Hard timeout for the node's execution.
    pub timeout_ms: f64,
    /// Milliseconds since the job arrived, at decision time.
    pub elapsed_ms: f64,
}

/// Typed failures and the actions they map to (the design note's table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    BackendUnavailable,
    BudgetExceeded,
    NonConvergence,
    ConstraintInfeasible,
    /// A backend reported an error while running.
    BackendError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureAction {
    /// Route again without the failed target.
    Fallback,
    /// Keep the draws made so far.
    ReduceSamples,
    /// Keep the result but mark it degraded.
    Degrade,
    /// Full diagnostics and a human review before any effect.
    EscalateReview,
    /// The job ends infeasible with an explanation.
    Infeasible,
    /// Nothing else to try: the node (and job) failed.
    Fail,
}

/// Terminal status of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeStatus {
    Completed,
    /// On a branch not taken, or downstream of a node that did not complete.
    Skipped,
    Infeasible,
    Failed,
    /// Not run because the job was rejected.
    Rejected,
    /// An effect the gate held for human review.
    Held,
    /// An effect the gate denied.
    Denied,
}

/// Terminal status of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Completed,
    Infeasible,
    Rejected,
    Failed,
}

impl JobStatus {
    pub fn name(self) -> &'static str {
        match self {
            JobStatus::Completed => "completed",
            JobStatus::Infeasible => "infeasible",
            JobStatus::Rejected => "rejected",
            JobStatus::Failed => "failed",
        }
    }
}

/// How a hold ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldOutcome {
    /// The plugin accepted it and the queue had room: it was admitted.
    Admitted,
    /// The plugin rejected it after holding it (a `reject` follows).
    Rejected,
    /// It reached `[plugins] max_hold_ms` (a `reject` naming the limit
    /// follows).
    HoldLimit,
    /// Its job ended another way while it was held.
    JobEnded,
}

impl HoldOutcome {
    /// In words, for human output.
    pub fn words(self) -> &'static str {
        match self {
            HoldOutcome::Admitted => "admitted",
            HoldOutcome::Rejected => "rejected by the plugin",
            HoldOutcome::HoldLimit => "rejected at the hold limit",
            HoldOutcome::JobEnded => "dropped: its job ended",
        }
    }
}

/// One line of a trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TraceEvent {
    Header {
        format: String,
        version: u32,
        mode: String,
        seed: u64,
        policy: String,
        /// Job classes: one per workload graph.
        classes: Vec<String>,
        hardware: Box<Hardware>,
        /// Each class's QoS targets (absent in older traces).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        class_qos: Vec<crate::model::graph::Qos>,
        /// Each class's nodes as policies see them (absent in older traces).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        class_nodes: Vec<Vec<NodeRecord>>,
        /// Which part of a rotated trace this file is (`--trace-max`): 0,
        /// and absent, for the first file `T.jsonl`, `k` for `T.k.jsonl`.
        #[serde(default, skip_serializing_if = "is_zero")]
        part: u32,
    },
    Arrival {
        t_ms: f64,
        job: u64,
        class: usize,
    },
    Route {
        t_ms: f64,
        job: u64,
        node: String,
        /// 0 for the first decision, then one more per fallback.
        attempt: u32,
        chosen: Option<Target>,
        candidates: Vec<CandidateRecord>,
        budget: NodeBudget,
        explanation: String,
    },
    Admit {
        t_ms: f64,
        job: u64,
        node: String,
        target: Target,
        queue_len: usize,
    },
    Reject {
        t_ms: f64,
        job: u64,
        node: String,
        retry_after_ms: f64,
        reason: String,
    },
    /// An admission plugin held a routed node out of its device's queue
    /// (absent in older traces). A `hold_end` follows for every hold.
    Hold {
        t_ms: f64,
        job: u64,
        node: String,
        target: Target,
        /// The admission plugin's name (`plugin:NAME`).
        plugin: String,
        reason: String,
        /// The hold limit, `[plugins] max_hold_ms`.
        max_hold_ms: u64,
    },
    /// A hold ended: the node was admitted, the plugin rejected it, the
    /// hold limit rejected it, or its job ended another way.
    HoldEnd {
        t_ms: f64,
        job: u64,
        node: String,
        target: Target,
        /// How long the node was held.
        held_ms: f64,
        outcome: HoldOutcome,
        /// The plugin's last reason for holding (its reason to reject,
        /// when it rejected the node).
        reason: String,
    },
    Preempt {
        t_ms: f64,
        job: u64,
        node: String,
        target: Target,
        by_job: u64,
        /// Fraction of the node's work done when preempted.
        progress: f64,
    },
    Resume {
        t_ms: f64,
        job: u64,
        node: String,
        target: Target,
    },
    /// A queued node moved to a device that would end it sooner (work
    /// stealing, execute mode).
    Steal {
        t_ms: f64,
        job: u64,
        node: String,
        from: Target,
        to: Target,
        /// Expected wait where it was queued, milliseconds.
        wait_ms: f64,
        /// Expected service where it was queued.
        there_ms: f64,
        /// Expected wait where it is queued now (0: it starts at once).
        here_wait_ms: f64,
        /// Expected service where it is queued now.
        here_ms: f64,
    },
    Start {
        t_ms: f64,
        job: u64,
        node: String,
        target: Target,
    },
    End {
        t_ms: f64,
        job: u64,
        node: String,
        target: Target,
        status: NodeStatus,
        /// Busy time of the node on its device (excluding queueing).
        service_ms: f64,
        energy_j: f64,
        /// Measured by running it (execute mode) or drawn from the model (simulate).
        measured: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<serde_json::Value>,
    },
    Failure {
        t_ms: f64,
        job: u64,
        node: String,
        kind: FailureKind,
        action: FailureAction,
        detail: String,
    },
    EarlyStop {
        t_ms: f64,
        job: u64,
        node: String,
        samples: usize,
        max_rhat: Option<f64>,
        min_ess_bulk: Option<f64>,
    },
    Gate {
        t_ms: f64,
        job: u64,
        node: String,
        decision: GateDecision,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        review_id: Option<String>,
        /// The host floor's reasons, when it overrode the gate.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        floor: Option<Vec<String>>,
        /// What the gate was asked (absent in older traces), so the decision
        /// can be re-decided under another gate.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request: Option<Box<EffectRequest>>,
    },
    Drift {
        t_ms: f64,
        drift: Drift,
    },
    PolicyFault {
        t_ms: f64,
        /// The job and node whose decision met the fault (none for an
        /// eligibility fault, judged per class).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        job: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        node: Option<String>,
        role: String,
        fault: PolicyFault,
        fallback: String,
    },
    /// A policy plugin was hot-reloaded, or a broken new version refused.
    PolicyReload {
        t_ms: f64,
        notice: PolicyNotice,
    },
    Control {
        t_ms: f64,
        command: serde_json::Value,
    },
    JobEnd {
        t_ms: f64,
        job: u64,
        class: usize,
        status: JobStatus,
        latency_ms: f64,
        energy_j: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        explanation: Option<String>,
    },
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Errors of the trace boundary.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// Fatal for the run: the trace cannot be written.
    #[error("{file}: cannot write the trace: {source}")]
    Write {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: line {line}: {reason}")]
    Parse {
        file: PathBuf,
        line: usize,
        reason: String,
    },
}
