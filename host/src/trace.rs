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

/// How many parts of a rotated trace are kept: when a fifth would start,
/// the oldest is deleted, so a trace bounded by `--trace-max SIZE` takes at
/// most SIZE on disk, in parts of SIZE / 4.
pub const TRACE_PARTS_KEPT: u32 = 4;

/// The file of part `part` of the trace at `base`: `base` itself for part 0,
/// then `T.1.jsonl`, `T.2.jsonl`, … (`T` is `base` less a `.jsonl` ending).
pub fn trace_part_path(base: &Path, part: u32) -> PathBuf {
    if part == 0 {
        return base.to_path_buf();
    }
    let name = base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".jsonl").unwrap_or(&name);
    base.with_file_name(format!("{stem}.{part}.jsonl"))
}

/// The parts of the trace at `base` that exist, oldest first (part 0, the
/// file `base` itself, only when it exists).
pub fn trace_parts(base: &Path) -> Vec<(u32, PathBuf)> {
    let mut parts = Vec::new();
    if base.is_file() {
        parts.push((0, base.to_path_buf()));
    }
    let name = base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".jsonl").unwrap_or(&name).to_string();
    let dir = match base.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let part = file
                .strip_prefix(&stem)
                .and_then(|r| r.strip_prefix('.'))
                .and_then(|r| r.strip_suffix(".jsonl"))
                .filter(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|k| k.parse::<u32>().ok())
                .filter(|k| *k > 0);
            if let Some(k) = part {
                parts.push((k, trace_part_path(base, k)));
            }
        }
    }
    parts.sort();
    parts
}

/// Appends events to a trace file, whole lines at a time; with a size bound
/// it rotates to `T.1.jsonl`, `T.2.jsonl`, … ([`trace_part_path`]), each
/// starting with the header line, and keeps the newest [`TRACE_PARTS_KEPT`].
///
/// At equal times a task's `end` is written before the `start` of the task
/// that took its place: a `start` (or `resume`) is held until the next event,
/// and an `end` of another task on the same device at the same time goes
/// first. Nothing else is reordered.
pub struct TraceWriter {
    file: File,
    path: PathBuf,
    base: PathBuf,
    buffer: Vec<u8>,
    /// Hand every line to the OS at once (slow runs); otherwise every 64 KiB.
    line_by_line: bool,
    /// Starts waiting for the next event (see above).
    held: Vec<TraceEvent>,
    /// Bytes per part (`None`: one file, unbounded).
    part_bytes: Option<u64>,
    /// Bytes in the current part, written or buffered.
    part_len: u64,
    /// Events in the current part after its header.
    part_events: u64,
    part: u32,
    header: Option<TraceEvent>,
}

const FLUSH_BYTES: usize = 1 << 16;

impl std::fmt::Debug for TraceWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceWriter")
            .field("path", &self.path)
            .field("part", &self.part)
            .finish_non_exhaustive()
    }
}

/// The time, device and task of a start or end, for the reordering above.
fn slot_event(e: &TraceEvent) -> Option<(f64, Device, u64, &str)> {
    match e {
        TraceEvent::Start {
            t_ms,
            job,
            node,
            target,
        }
        | TraceEvent::Resume {
            t_ms,
            job,
            node,
            target,
        }
        | TraceEvent::End {
            t_ms,
            job,
            node,
            target,
            ..
        } => Some((*t_ms, target.device(), *job, node)),
        _ => None,
    }
}

impl TraceWriter {
    /// A trace at `path`, unbounded (`max_bytes: None`) or rotated so that
    /// all its parts together stay within `max_bytes`. Parts `T.k.jsonl` left
    /// by an earlier trace at the same path are deleted.
    pub fn create(
        path: &Path,
        line_by_line: bool,
        max_bytes: Option<u64>,
    ) -> Result<Self, TraceError> {
        let write_error = |source| TraceError::Write {
            file: path.into(),
            source,
        };
        for (k, old) in trace_parts(path) {
            if k > 0 {
                std::fs::remove_file(&old).map_err(write_error)?;
            }
        }
        let file = File::create(path).map_err(write_error)?;
        Ok(TraceWriter {
            file,
            path: path.into(),
            base: path.into(),
            buffer: Vec::with_capacity(FLUSH_BYTES * 2),
            line_by_line,
            held: Vec::new(),
            part_bytes: max_bytes.map(|m| (m / u64::from(TRACE_PARTS_KEPT)).max(1)),
            part_len: 0,
            part_events: 0,
            part: 0,
            header: None,
        })
    }

    /// The file being written now.
    pub fn current_path(&self) -> &Path {
        &self.path
    }

    pub fn write(&mut self, event: &TraceEvent) -> Result<(), TraceError> {
        if matches!(event, TraceEvent::Start { .. } | TraceEvent::Resume { .. }) {
            self.held.push(event.clone());
            return Ok(());
        }
        if !self.held.is_empty() {
            let end_first = matches!(event, TraceEvent::End { .. })
                && slot_event(event).is_some_and(|(t, device, job, node)| {
                    self.held.iter().all(|h| {
                        slot_event(h).is_some_and(|(ht, hd, hj, hn)| {
                            ht == t && hd == device && (hj, hn) != (job, node)
                        })
                    })
                });
            if !end_first {
                self.release_held()?;
            }
        }
        self.write_line(event)
    }

    fn release_held(&mut self) -> Result<(), TraceError> {
        for e in std::mem::take(&mut self.held) {
            self.write_line(&e)?;
        }
        Ok(())
    }

    fn write_line(&mut self, event: &TraceEvent) -> Result<(), TraceError> {
        let at = self.buffer.len();
        serde_json::to_writer(&mut self.buffer, event).expect("trace events serialise");
        self.buffer.push(b'\n');
        let len = (self.buffer.len() - at) as u64;
        if let TraceEvent::Header { .. } = event
            && self.header.is_none()
        {
            self.header = Some(event.clone());
        } else if let Some(max) = self.part_bytes
            && self.part_events > 0
            && self.part_len + len > max
        {
            let line = self.buffer.split_off(at);
            self.rotate()?;
            self.buffer.extend_from_slice(&line);
        }
        self.part_len += len;
        if !matches!(event, TraceEvent::Header { .. }) {
            self.part_events += 1;
        }
        if self.line_by_line || self.buffer.len() >= FLUSH_BYTES {
            self.flush_buffer()?;
        }
        Ok(())
    }

    /// Closes the current part and starts the next with the header.
    fn rotate(&mut self) -> Result<(), TraceError> {
        self.flush_buffer()?;
        self.part += 1;
        // The oldest part goes before the new one exists, so a kill at any
        // moment leaves at most TRACE_PARTS_KEPT parts on disk.
        if let Some(old) = self.part.checked_sub(TRACE_PARTS_KEPT) {
            let old = trace_part_path(&self.base, old);
            match std::fs::remove_file(&old) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(TraceError::Write { file: old, source }),
            }
        }
        let path = trace_part_path(&self.base, self.part);
        self.file = File::create(&path).map_err(|source| TraceError::Write {
            file: path.clone(),
            source,
        })?;
        self.path = path;
        self.part_len = 0;
        self.part_events = 0;
        if let Some(TraceEvent::Header { .. }) = &self.header {
            let mut header = self.header.clone().expect("checked");
            if let TraceEvent::Header { part, .. } = &mut header {
                *part = self.part;
            }
            serde_json::to_writer(&mut self.buffer, &header).expect("trace events serialise");
            self.buffer.push(b'\n');
            self.part_len = self.buffer.len() as u64;
            // A new part is never left without its header.
            self.flush_buffer()?;
        }
        Ok(())
    }

    fn flush_buffer(&mut self) -> Result<(), TraceError> {
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

    /// Hands everything written so far to the OS (held starts included).
    pub fn flush(&mut self) -> Result<(), TraceError> {
        self.release_held()?;
        self.flush_buffer()
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
    /// The header (of the oldest part read), then every event in order.
    pub events: Vec<TraceEvent>,
    /// The last line was cut short (the run was killed mid-write).
    pub torn_tail: bool,
    /// The files read, oldest first (more than one for a rotated trace).
    pub parts: Vec<PathBuf>,
    /// Older parts of a rotated trace were deleted (`--trace-max`): the
    /// events start later than the run did.
    pub older_dropped: bool,
}

/// Reads a trace, checking its header; a torn final line is skipped and
/// reported, a bad line anywhere else is an error. A trace rotated by
/// `--trace-max` is read part by part, oldest first.
pub fn read_trace(path: &Path) -> Result<Trace, TraceError> {
    let parts = trace_parts(path);
    if parts.is_empty() {
        // Not there: the error names the file asked for.
        File::open(path).map_err(|source| TraceError::Read {
            file: path.into(),
            source,
        })?;
    }
    let mut trace = Trace {
        events: Vec::new(),
        torn_tail: false,
        older_dropped: parts.first().is_some_and(|(k, _)| *k > 0),
        parts: parts.iter().map(|(_, p)| p.clone()).collect(),
    };
    for (i, (_, part)) in parts.iter().enumerate() {
        if i > 0 && i + 1 == parts.len() && std::fs::metadata(part).is_ok_and(|m| m.len() == 0) {
            // Killed just as it started a new part.
            trace.torn_tail = true;
            continue;
        }
        let (events, torn) = read_part(part)?;
        trace.torn_tail |= torn;
        // Later parts repeat the header.
        let skip = usize::from(i > 0);
        trace.events.extend(events.into_iter().skip(skip));
    }
    Ok(trace)
}

/// One file of a trace: its events (header first) and whether its last line
/// is torn.
fn read_part(path: &Path) -> Result<(Vec<TraceEvent>, bool), TraceError> {
    let file = File::open(path).map_err(|source| TraceError::Read {
        file: path.into(),
        source,
    })?;
    read_trace_from(path, BufReader::new(file))
}

/// One trace file's text, already open: its events (header first, checked)
/// and whether its last line is torn; `path` names it in errors.
pub fn read_trace_from(
    path: &Path,
    reader: impl BufRead,
) -> Result<(Vec<TraceEvent>, bool), TraceError> {
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
        Some(e) => check_header(path, e)?,
        None => {
            return Err(parse_error(
                1,
                "the first line is not a thermoroute trace header".into(),
            ));
        }
    }
    Ok((events, torn_tail))
}

/// Reads a trace incrementally: what is complete so far, then whatever is
/// appended later (`replay --follow` and the live UI), following a rotated
/// trace from part to part. A malformed or torn line ends the readable
/// prefix and is reported in [`TraceTail::stopped`]; a missing header or an
/// unknown format version is an error.
#[derive(Debug)]
pub struct TraceTail {
    base: PathBuf,
    path: PathBuf,
    file: File,
    part: u32,
    partial: Vec<u8>,
    lines: usize,
    header_read: bool,
    /// Where and why reading stopped, if it did.
    pub stopped: Option<String>,
    /// Set when older parts of a rotated trace were gone before they were
    /// read: what was dropped.
    pub dropped: Option<String>,
}

impl TraceTail {
    pub fn open(path: &Path) -> Result<Self, TraceError> {
        let parts = trace_parts(path);
        let (part, file_path) = parts
            .first()
            .cloned()
            .unwrap_or_else(|| (0, path.to_path_buf()));
        let file = File::open(&file_path).map_err(|source| TraceError::Read {
            file: file_path.clone(),
            source,
        })?;
        Ok(TraceTail {
            base: path.into(),
            path: file_path,
            file,
            part,
            partial: Vec::new(),
            lines: 0,
            header_read: false,
            stopped: None,
            dropped: (part > 0).then(|| dropped_note(path, part)),
        })
    }

    /// The part being read now (0: the first file).
    pub fn part(&self) -> u32 {
        self.part
    }

    /// Complete events appended since the last call (across parts: a later
    /// part's header is checked and not repeated).
    pub fn poll(&mut self) -> Result<Vec<TraceEvent>, TraceError> {
        let mut events = Vec::new();
        loop {
            self.poll_file(&mut events)?;
            if self.stopped.is_some() {
                return Ok(events);
            }
            // The writer finishes a part before it starts the next, so once
            // a later part exists this one is complete.
            let Some((next, path)) = trace_parts(&self.base)
                .into_iter()
                .find(|(k, _)| *k > self.part)
            else {
                return Ok(events);
            };
            self.poll_file(&mut events)?;
            if self.stopped.is_some() {
                return Ok(events);
            }
            if !self.partial.iter().all(u8::is_ascii_whitespace) {
                self.finish();
                return Ok(events);
            }
            let file = match File::open(&path) {
                Ok(f) => f,
                // Deleted between listing and opening: look again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(TraceError::Read { file: path, source }),
            };
            if next > self.part + 1 {
                self.dropped = Some(dropped_note(&self.base, next));
            }
            self.file = file;
            self.path = path;
            self.part = next;
            self.partial.clear();
            self.lines = 0;
        }
    }

    fn poll_file(&mut self, events: &mut Vec<TraceEvent>) -> Result<(), TraceError> {
        use std::io::Read;
        if self.stopped.is_some() {
            return Ok(());
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
                        if self.header_read {
                            // A later part's header repeats the first's.
                            continue;
                        }
                        self.header_read = true;
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
                    return Ok(());
                }
            }
        }
        self.partial.drain(..start);
        Ok(())
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

fn dropped_note(base: &Path, first: u32) -> String {
    format!(
        "older events were dropped: {} starts at part {first} ({}); --trace-max keeps the newest {TRACE_PARTS_KEPT} parts",
        base.display(),
        trace_part_path(base, first).display()
    )
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
