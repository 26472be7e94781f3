//! Traces: JSON Lines, one event per line, the first line a header naming the
//! format and version. Every routing decision carries all of its candidates
//! with estimates, eligibility verdicts and cost terms, so a trace alone
//! explains each decision.
//!
//! Lines are written whole: the writer buffers complete lines only and hands
//! them to the OS in one write, so a killed run leaves a readable prefix (at
//! worst a torn last line, which [`read_trace`] reports and skips).

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::device::{Device, Target};
use crate::hardware::Hardware;
use crate::perf::Drift;
use crate::policy::{CostTerms, Estimate, GateDecision, Ineligible, PolicyFault, PolicyNotice};

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
    },
    Drift {
        t_ms: f64,
        drift: Drift,
    },
    PolicyFault {
        t_ms: f64,
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

/// Appends events to a trace file, whole lines at a time.
pub struct TraceWriter {
    file: File,
    path: PathBuf,
    buffer: Vec<u8>,
    /// Hand every line to the OS at once (slow runs); otherwise every 64 KiB.
    line_by_line: bool,
}

const FLUSH_BYTES: usize = 1 << 16;

impl std::fmt::Debug for TraceWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceWriter")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl TraceWriter {
    pub fn create(path: &Path, line_by_line: bool) -> Result<Self, TraceError> {
        let file = File::create(path).map_err(|source| TraceError::Write {
            file: path.into(),
            source,
        })?;
        Ok(TraceWriter {
            file,
            path: path.into(),
            buffer: Vec::with_capacity(FLUSH_BYTES * 2),
            line_by_line,
        })
    }

    pub fn write(&mut self, event: &TraceEvent) -> Result<(), TraceError> {
        serde_json::to_writer(&mut self.buffer, event).expect("trace events serialise");
        self.buffer.push(b'\n');
        if self.line_by_line || self.buffer.len() >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), TraceError> {
        if !self.buffer.is_empty() {
            self.file
                .write_all(&self.buffer)
                .map_err(|source| TraceError::Write {
                    file: self.path.clone(),
                    source,
                })?;
            self.buffer.clear();
        }
        Ok(())
    }
}

impl Drop for TraceWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// A trace read back.
#[derive(Debug, Clone)]
pub struct Trace {
    pub events: Vec<TraceEvent>,
    /// The last line was cut short (the run was killed mid-write).
    pub torn_tail: bool,
}

/// Reads a trace, checking its header; a torn final line is skipped and
/// reported, a bad line anywhere else is an error.
pub fn read_trace(path: &Path) -> Result<Trace, TraceError> {
    let file = File::open(path).map_err(|source| TraceError::Read {
        file: path.into(),
        source,
    })?;
    read_trace_from(path, BufReader::new(file))
}

/// [`read_trace`] of text already open; `path` names it in errors.
pub fn read_trace_from(path: &Path, reader: impl BufRead) -> Result<Trace, TraceError> {
    let lines: Vec<String> =
        reader
            .lines()
            .collect::<Result<_, _>>()
            .map_err(|source| TraceError::Read {
                file: path.into(),
                source,
            })?;
    let parse_error = |line: usize, reason: String| TraceError::Parse {
        file: path.into(),
        line,
        reason,
    };
    let mut events = Vec::with_capacity(lines.len());
    let mut torn_tail = false;
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<TraceEvent>(line) {
            Ok(e) => events.push(e),
            Err(_) if i + 1 == lines.len() && i > 0 => torn_tail = true,
            Err(e) => return Err(parse_error(i + 1, e.to_string())),
        }
    }
    match events.first() {
        Some(TraceEvent::Header {
            format, version, ..
        }) if format == TRACE_FORMAT && *version == TRACE_VERSION => {}
        Some(TraceEvent::Header {
            format, version, ..
        }) => {
            return Err(parse_error(
                1,
                format!(
                    "format {format:?} version {version} (this build reads {TRACE_FORMAT:?} version {TRACE_VERSION})"
                ),
            ));
        }
        _ => {
            return Err(parse_error(
                1,
                "the first line is not a thermoroute trace header".into(),
            ));
        }
    }
    Ok(Trace { events, torn_tail })
}

/// Reads a trace incrementally: what is complete so far, then whatever is
/// appended later (`replay --follow` and the live UI). A malformed or torn
/// line ends the readable prefix and is reported in [`TraceTail::stopped`];
/// a missing header or an unknown format version is an error.
#[derive(Debug)]
pub struct TraceTail {
    path: PathBuf,
    file: File,
    partial: Vec<u8>,
    lines: usize,
    /// Where and why reading stopped, if it did.
    pub stopped: Option<String>,
}

impl TraceTail {
    pub fn open(path: &Path) -> Result<Self, TraceError> {
        let file = File::open(path).map_err(|source| TraceError::Read {
            file: path.into(),
            source,
        })?;
        Ok(TraceTail {
            path: path.into(),
            file,
            partial: Vec::new(),
            lines: 0,
            stopped: None,
        })
    }

    /// Complete events appended since the last call.
    pub fn poll(&mut self) -> Result<Vec<TraceEvent>, TraceError> {
        use std::io::Read;
        let mut events = Vec::new();
        if self.stopped.is_some() {
            return Ok(events);
        }
        let mut chunk = Vec::new();
        self.file
            .read_to_end(&mut chunk)
            .map_err(|source| TraceError::Read {
                file: self.path.clone(),
                source,
            })?;
        self.partial.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(len) = self.partial[start..].iter().position(|&b| b == b'\n') {
            let line = &self.partial[start..start + len];
            start += len + 1;
            self.lines += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<TraceEvent>(line) {
                Ok(event) => {
                    if self.lines == 1 {
                        check_header(&self.path, &event)?;
                    }
                    events.push(event);
                }
                Err(e) if self.lines == 1 => {
                    return Err(TraceError::Parse {
                        file: self.path.clone(),
                        line: 1,
                        reason: format!("not a thermoroute trace header: {e}"),
                    });
                }
                Err(e) => {
                    self.stopped = Some(format!(
                        "{}: stopped at line {}: {e}; showing the {} lines before it",
                        self.path.display(),
                        self.lines,
                        self.lines - 1
                    ));
                    self.partial.clear();
                    return Ok(events);
                }
            }
        }
        self.partial.drain(..start);
        Ok(events)
    }

    /// Call once the writer is gone: an unfinished last line is reported.
    pub fn finish(&mut self) {
        if self.stopped.is_none() && !self.partial.iter().all(u8::is_ascii_whitespace) {
            self.stopped = Some(format!(
                "{}: line {} is incomplete (the run was cut off); showing the {} lines before it",
                self.path.display(),
                self.lines + 1,
                self.lines
            ));
        }
    }
}

fn check_header(path: &Path, event: &TraceEvent) -> Result<(), TraceError> {
    match event {
        TraceEvent::Header {
            format, version, ..
        } if format == TRACE_FORMAT && *version == TRACE_VERSION => Ok(()),
        TraceEvent::Header {
            format, version, ..
        } => Err(TraceError::Parse {
            file: path.into(),
            line: 1,
            reason: format!(
                "format {format:?} version {version} (this build reads {TRACE_FORMAT:?} version {TRACE_VERSION})"
            ),
        }),
        _ => Err(TraceError::Parse {
            file: path.into(),
            line: 1,
            reason: "the first line is not a thermoroute trace header".into(),
        }),
    }
}
