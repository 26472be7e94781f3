//! The event-driven engine: jobs arrive, ready nodes are routed, admitted,
//! executed and observed on a virtual clock.
//!
//! ```text
//!  arrivals ──► ready node ──► route ──► admit ──► device queue ──► start
//!  (count,        (all inputs   (eligibility,  (queue limits,  (interactive   │
//!   Poisson,       done)         estimates,     backpressure,   first,        ▼
//!   recorded)                    cost, QoS)     preemption)     slots)     run / draw
//!                                                                             │
//!  job end ◄── successors ready ◄── gate (effects) ◄── observe (learning) ◄───┘
//! ```
//!
//! Durations come from one of two sources behind the same event loop:
//! *execute* runs every node on its backend and advances virtual time by the
//! measured duration (sampling in slices, so it can be preempted, timed out
//! or stopped early at sweep boundaries); *simulate* draws durations from the
//! performance model and computes nothing. The loop can be stepped and
//! steered ([`Command`]) while it runs; every change is a trace event.

mod plan;
mod report;

use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::path::PathBuf;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::backends::gpu::GpuBackend;
use crate::backends::tsu::TsuDriver;
use crate::backends::value::{NodeResult, Value};
use crate::backends::{Backend, BackendError, CpuBackend, SamplingTask};
use crate::diagnostics::{Diagnostics, diagnose, diagnose_vars};
use crate::exec;
use crate::hardware::{Device, Hardware, ServiceDistribution, Weights};
use crate::model::graph::{ControlOp, EffectSpec, NodeKind, Priority};
use crate::model::{EProgram, Graph};
use crate::perf::{PerfTables, busy_energy};
use crate::policy::{
    CandidateInput, CostTerms, DecisionContext, DiagnosticsLevel, EffectRequest, Estimate,
    Evidence, GateDecision, Ineligible, NativeCost, NativeEligibility, NativeGate, Policy, Target,
};
use crate::review::{ReviewItem, ReviewQueue, ReviewStatus};
use crate::sampler::{Draws, SampleError};
use crate::trace::{
    CandidateRecord, FailureAction, FailureKind, JobStatus, NodeBudget, NodeStatus, TRACE_FORMAT,
    TRACE_VERSION, TraceError, TraceEvent, TraceWriter,
};

use plan::ClassPlan;
pub use report::{CandidateBrief, ClassSummary, JobRecord, NodeRecord, RunReport};

/// Where durations come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Run every node on its backend; measured time advances the clock.
    Execute,
    /// Draw durations from the performance model; compute nothing.
    Simulate,
}

/// A workload graph and the jobs made from it.
#[derive(Debug, Clone)]
pub struct JobClass {
    pub name: String,
    pub graph: Graph,
}

/// One arrival of a recorded arrival list.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RecordedArrival {
    pub t_ms: f64,
    /// Index into the job classes (default 0).
    #[serde(default)]
    pub class: usize,
}

/// How jobs arrive.
#[derive(Debug, Clone, PartialEq)]
pub enum Arrivals {
    /// `jobs` jobs, all at time 0.
    AtOnce { jobs: u64 },
    /// `jobs` jobs, Poisson arrivals at `rate_per_s` (virtual time).
    Poisson { jobs: u64, rate_per_s: f64 },
    /// Exactly these arrivals.
    Recorded(Vec<RecordedArrival>),
}

/// Everything a run is configured with besides the policy.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub mode: Mode,
    pub seed: u64,
    pub arrivals: Arrivals,
    /// Relative frequency of each class for counted and Poisson arrivals
    /// (empty: equal).
    pub mix: Vec<f64>,
    pub trace: Option<PathBuf>,
    /// Keep a per-job record (for `--json`) instead of aggregates only.
    pub record_jobs: bool,
    /// Where held effects are persisted (execute mode).
    pub reviews: Option<PathBuf>,
    /// Sampler threads in execute mode.
    pub threads: Option<usize>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            mode: Mode::Execute,
            seed: 0,
            arrivals: Arrivals::AtOnce { jobs: 1 },
            mix: Vec::new(),
            trace: None,
            record_jobs: true,
            reviews: None,
            threads: None,
        }
    }
}

/// Steering from outside while the engine runs (the TUI drives these).
#[derive(Debug)]
pub enum Command {
    Pause,
    Resume,
    /// New Poisson arrival rate (jobs per second of virtual time).
    SetRate {
        per_s: f64,
    },
    /// Take a device offline (its queued work falls back) or bring it back.
    SetOnline {
        device: Device,
        online: bool,
    },
    SetWeights(Weights),
    /// Replace the cost model, eligibility rules and gate.
    SwapPolicy(Policy),
}

impl Command {
    fn describe(&self) -> serde_json::Value {
        match self {
            Command::Pause => json!({ "command": "pause" }),
            Command::Resume => json!({ "command": "resume" }),
            Command::SetRate { per_s } => json!({ "command": "set_rate", "per_s": per_s }),
            Command::SetOnline { device, online } => {
                json!({ "command": "set_online", "device": device, "online": online })
            }
            Command::SetWeights(w) => json!({ "command": "set_weights", "weights": w }),
            Command::SwapPolicy(p) => json!({ "command": "swap_policy", "policy": p.describe() }),
        }
    }
}

/// Errors of the engine boundary. All are fatal for the run: they concern
/// its configuration or its output files, never one job (job-level problems
/// become job statuses).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    #[error("no job classes: give at least one workload graph")]
    NoClasses,
    #[error(
        "--mix has {got} weight(s) for {classes} class(es); weights must be finite, >= 0, not all 0"
    )]
    BadMix { got: usize, classes: usize },
    #[error("recorded arrival {index}: {reason}")]
    BadArrival { index: usize, reason: String },
    #[error("arrival rate must be a positive number, got {0}")]
    BadRate(f64),
    #[error(transparent)]
    Trace(#[from] TraceError),
    #[error(transparent)]
    Review(#[from] crate::review::ReviewError),
    #[error(transparent)]
    Tsu(#[from] crate::backends::tsu::TsuError),
}

/// What one call to [`Engine::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// One event was processed.
    Progressed,
    /// The engine is paused; nothing happened.
    Paused,
    /// No events remain: every job is in a terminal state.
    Finished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum EventKind {
    /// Availability may change (fault window or TSU window edge).
    Edge,
    /// A task's run (or slice) ends. Stale if `generation` moved on.
    TaskDone {
        task: u32,
        generation: u32,
    },
    Arrival,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Event {
    /// Bits of a non-negative f64: orders like the number.
    time: u64,
    seq: u64,
    kind: EventKind,
}

/// Per-node state inside a job.
#[derive(Debug, Clone, Default)]
struct NodeRt {
    status: Option<NodeStatus>,
    target: Option<Target>,
    attempt: u32,
    /// Targets that failed this node (bit per `Target::index`).
    excluded: u8,
    skipped_by_branch: bool,
    ready_ms: f64,
    end_ms: f64,
    explanation: Option<String>,
}

struct Job {
    id: u64,
    class: u32,
    arrival_ms: f64,
    pending: Vec<u32>,
    nodes: Vec<NodeRt>,
    open_nodes: u32,
    status: Option<JobStatus>,
    explanation: Option<String>,
    retry_after_ms: Option<f64>,
    energy_j: f64,
    escalations: Vec<String>,
    values: HashMap<usize, Value>,
    evidence: Vec<Option<Evidence>>,
    record: Option<JobRecord>,
}

struct Task {
    job: u32,
    node: u32,
    target: Target,
    priority: Priority,
    estimate_ms: f64,
    generation: u32,
    started: bool,
    run_started_ms: f64,
    first_start_ms: f64,
    timeout_ms: f64,
    /// Simulate mode: service still owed after a preemption.
    remaining_ms: Option<f64>,
    /// Simulate mode: the drawn duration of the current run, and whether it
    /// was cut by the timeout.
    run_ms: f64,
    /// Simulate mode: the duration drawn before the timeout cut it.
    drawn_ms: f64,
    timed_out: bool,
    busy_ms: f64,
    energy_j: f64,
    sampling: Option<Box<dyn SamplingTask>>,
    program: Option<Box<EProgram>>,
    seed: u64,
    preempt_requested: bool,
    preempted_by: u64,
    /// Execute mode, deterministic nodes: the result, delivered at TaskDone.
    result: Option<Box<NodeResult>>,
    last_checked_samples: usize,
}

struct DeviceRt {
    slots: usize,
    busy: usize,
    /// Interactive queue first, batch second.
    queues: [VecDeque<u32>; 2],
    running: Vec<u32>,
    /// Estimated milliseconds of queued work per priority.
    backlog_ms: [f64; 2],
    /// Estimated milliseconds of the running tasks.
    running_ms: f64,
    operator_offline: bool,
}

fn prio_index(p: Priority) -> usize {
    match p {
        Priority::Interactive => 0,
        Priority::Batch => 1,
    }
}

/// Counters kept for the run report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    pub decisions: u64,
    pub fallbacks: u64,
    pub rejections: u64,
    pub preemptions: u64,
    pub timeouts: u64,
    pub early_stops: u64,
    pub nonconvergence: u64,
    pub drift_events: u64,
    pub policy_faults: u64,
    pub gate_allow: u64,
    pub gate_review: u64,
    pub gate_deny: u64,
    pub degraded_diagnostics: u64,
    /// Busy milliseconds per device (cpu, gpu, tsu), for utilisation.
    pub busy_ms: [f64; 3],
    /// Sum and count of the expected error of the targets chosen for
    /// sampling nodes (the accuracy the routing bought).
    pub sampling_error_sum: f64,
    pub sampling_decisions: u64,
}

/// A scratch row of one routing decision.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    target: Target,
    /// Availability problem found by the host (not the policy).
    host_reason: Option<HostReason>,
    policy_ok: bool,
    estimate: Estimate,
    cost: CostTerms,
    /// Violated constraints, bit per [`VIOLATIONS`] entry.
    violations: u8,
    /// Violations that remain with an empty queue.
    violations_idle: u8,
    room: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostReason {
    NotPresent,
    NotBuilt,
    Offline,
    FailedHere,
}

const VIOLATIONS: [&str; 4] = ["latency p50", "latency p95", "energy", "accuracy"];

impl Candidate {
    fn eligible(&self) -> bool {
        self.host_reason.is_none() && self.policy_ok
    }
}

/// The engine. Build it with [`Engine::new`], then [`Engine::run`] or step it.
pub struct Engine {
    hw: Hardware,
    config: EngineConfig,
    policy: Policy,
    native: Policy,
    classes: Vec<ClassPlan>,
    class_cdf: Vec<f64>,
    tables: PerfTables,
    backends: Vec<Box<dyn Backend>>,
    /// Backend serving each target in execute mode.
    backend_of: [Option<usize>; 5],
    rng: ChaCha8Rng,
    now_ms: f64,
    seq: u64,
    events: BinaryHeap<std::cmp::Reverse<Event>>,
    jobs: Vec<Job>,
    free_jobs: Vec<u32>,
    tasks: Vec<Option<Task>>,
    free_tasks: Vec<u32>,
    devices: [DeviceRt; 3],
    arrivals_left: u64,
    rate_per_s: f64,
    recorded: VecDeque<RecordedArrival>,
    next_job_id: u64,
    paused: bool,
    trace: Option<TraceWriter>,
    reviews: Option<ReviewQueue>,
    summaries: Vec<report::ClassStats>,
    counters: Counters,
    records: Vec<JobRecord>,
    // Scratch buffers reused by every decision.
    scratch: Vec<Candidate>,
    scratch_inputs: Vec<CandidateInput>,
    scratch_costs: Vec<CostTerms>,
    scratch_notices: Vec<crate::policy::PolicyNotice>,
    ready: Vec<(u32, u32)>,
    wall_start: std::time::Instant,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("mode", &self.config.mode)
            .field("now_ms", &self.now_ms)
            .field("jobs_in_flight", &self.jobs_in_flight())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Compiles the job classes for this hardware and policy and schedules
    /// the first arrival. `tables` are the routing tables learned so far.
    pub fn new(
        classes: Vec<JobClass>,
        hw: Hardware,
        policy: Policy,
        tables: PerfTables,
        config: EngineConfig,
    ) -> Result<Self, EngineError> {
        if classes.is_empty() {
            return Err(EngineError::NoClasses);
        }
        let mix = if config.mix.is_empty() {
            vec![1.0; classes.len()]
        } else {
            config.mix.clone()
        };
        let total: f64 = mix.iter().sum();
        if mix.len() != classes.len()
            || mix.iter().any(|w| !(w.is_finite() && *w >= 0.0))
            || total.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
        {
            return Err(EngineError::BadMix {
                got: mix.len(),
                classes: classes.len(),
            });
        }
        let mut acc = 0.0;
        let class_cdf = mix
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        let mut tables = tables;
        let truth_tables = tables.clone();
        let tsu_driver = if hw.tsu.count > 0 {
            Some(TsuDriver::from_hardware(&hw)?)
        } else {
            None
        };
        let plans: Vec<ClassPlan> = classes
            .into_iter()
            .map(|c| {
                ClassPlan::compile(
                    c,
                    &hw,
                    &policy,
                    &mut tables,
                    &truth_tables,
                    tsu_driver.as_ref(),
                )
            })
            .collect();
        let (arrivals_left, rate, recorded) = match &config.arrivals {
            Arrivals::AtOnce { jobs } => (*jobs, f64::INFINITY, VecDeque::new()),
            Arrivals::Poisson { jobs, rate_per_s } => {
                if !(rate_per_s.is_finite() && *rate_per_s > 0.0) {
                    return Err(EngineError::BadRate(*rate_per_s));
                }
                (*jobs, *rate_per_s, VecDeque::new())
            }
            Arrivals::Recorded(list) => {
                for (i, a) in list.iter().enumerate() {
                    if !(a.t_ms.is_finite() && a.t_ms >= 0.0) {
                        return Err(EngineError::BadArrival {
                            index: i,
                            reason: format!("time {} is not a finite number >= 0", a.t_ms),
                        });
                    }
                    if a.class >= plans.len() {
                        return Err(EngineError::BadArrival {
                            index: i,
                            reason: format!(
                                "class {} does not exist ({} class(es))",
                                a.class,
                                plans.len()
                            ),
                        });
                    }
                }
                let mut list = list.clone();
                list.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
                (list.len() as u64, f64::INFINITY, list.into())
            }
        };
        let device = |d: Device| DeviceRt {
            slots: hw.slots(d),
            busy: 0,
            queues: [VecDeque::new(), VecDeque::new()],
            running: Vec::new(),
            backlog_ms: [0.0; 2],
            running_ms: 0.0,
            operator_offline: false,
        };
        let devices = [
            device(Device::Cpu),
            device(Device::Gpu),
            device(Device::Tsu),
        ];
        let mut backends: Vec<Box<dyn Backend>> = Vec::new();
        let mut backend_of = [None; 5];
        if config.mode == Mode::Execute {
            backends.push(Box::new(CpuBackend {
                threads: config.threads,
            }));
            if let Some(driver) = &tsu_driver {
                backends.push(Box::new(driver.clone()));
            }
            if hw.slots(Device::Gpu) > 0 {
                // Registered even without an adapter: it then answers
                // `BackendUnavailable` and the engine falls back.
                backends.push(Box::new(GpuBackend::shared(
                    &hw.gpu.adapter,
                    hw.gpu.active_w,
                )));
            }
            for (i, b) in backends.iter().enumerate() {
                for t in b.targets() {
                    backend_of[t.index()] = Some(i);
                }
            }
        }
        let trace = match &config.trace {
            Some(path) => Some(TraceWriter::create(path, config.mode == Mode::Execute)?),
            None => None,
        };
        let reviews = match (&config.reviews, config.mode) {
            (Some(path), Mode::Execute) => Some(ReviewQueue::open(path)?),
            _ => None,
        };
        let summaries = plans.iter().map(report::ClassStats::new).collect();
        let native = Policy {
            cost: Box::new(NativeCost {
                policy: hw.policy.clone(),
            }),
            eligibility: Box::new(NativeEligibility {
                policy: hw.policy.clone(),
            }),
            gate: Box::new(NativeGate {
                spec: hw.gate.clone(),
            }),
        };
        let mut engine = Engine {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            hw,
            policy,
            native,
            classes: plans,
            class_cdf,
            tables,
            backends,
            backend_of,
            now_ms: 0.0,
            seq: 0,
            events: BinaryHeap::new(),
            jobs: Vec::new(),
            free_jobs: Vec::new(),
            tasks: Vec::new(),
            free_tasks: Vec::new(),
            devices,
            arrivals_left,
            rate_per_s: rate,
            recorded,
            next_job_id: 0,
            paused: false,
            trace,
            reviews,
            summaries,
            counters: Counters::default(),
            records: Vec::new(),
            scratch: Vec::new(),
            scratch_inputs: Vec::new(),
            scratch_costs: Vec::new(),
            scratch_notices: Vec::new(),
            ready: Vec::new(),
            wall_start: std::time::Instant::now(),
            config,
        };
        let header = TraceEvent::Header {
            format: TRACE_FORMAT.into(),
            version: TRACE_VERSION,
            mode: match engine.config.mode {
                Mode::Execute => "execute".into(),
                Mode::Simulate => "simulate".into(),
            },
            seed: engine.config.seed,
            policy: engine.policy.describe(),
            classes: engine.classes.iter().map(|c| c.name.clone()).collect(),
            hardware: Box::new(engine.hw.clone()),
            class_qos: engine.classes.iter().map(|c| c.graph.qos).collect(),
        };
        engine.emit(header)?;
        engine.trace_eligibility_faults()?;
        for t in engine.hw.availability_edges() {
            engine.push(t, EventKind::Edge);
        }
        engine.schedule_next_arrival();
        Ok(engine)
    }

    /// Virtual time, milliseconds.
    pub fn now_ms(&self) -> f64 {
        self.now_ms
    }

    /// Jobs that reached a terminal state.
    pub fn jobs_ended(&self) -> u64 {
        self.summaries
            .iter()
            .map(|s| s.by_status.iter().sum::<u64>())
            .sum()
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn tables(&self) -> &PerfTables {
        &self.tables
    }

    pub fn hardware(&self) -> &Hardware {
        &self.hw
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Jobs in the system (arrived, not yet terminal).
    pub fn jobs_in_flight(&self) -> usize {
        self.jobs.len() - self.free_jobs.len()
    }

    /// Queue length per device (interactive + batch).
    pub fn queue_lengths(&self) -> [usize; 3] {
        [0, 1, 2].map(|d| self.devices[d].queues.iter().map(VecDeque::len).sum())
    }

    /// Applies a steering command now; it is recorded in the trace.
    pub fn command(&mut self, command: Command) -> Result<(), EngineError> {
        let described = command.describe();
        match command {
            Command::Pause => self.paused = true,
            Command::Resume => self.paused = false,
            Command::SetRate { per_s } => {
                if !(per_s.is_finite() && per_s > 0.0) {
                    return Err(EngineError::BadRate(per_s));
                }
                self.rate_per_s = per_s;
            }
            Command::SetOnline { device, online } => {
                self.devices[device.index()].operator_offline = !online;
            }
            Command::SetWeights(w) => self.hw.weights = w,
            Command::SwapPolicy(p) => {
                self.policy = p;
                for c in &mut self.classes {
                    c.refresh_verdicts(&self.hw, &self.policy, &self.native);
                }
            }
        }
        self.emit(TraceEvent::Control {
            t_ms: self.now_ms,
            command: described,
        })?;
        self.trace_eligibility_faults()?;
        self.evict_offline()?;
        Ok(())
    }

    /// Traces the eligibility faults the last verdict refresh met.
    fn trace_eligibility_faults(&mut self) -> Result<(), EngineError> {
        for c in 0..self.classes.len() {
            for fault in std::mem::take(&mut self.classes[c].policy_faults) {
                self.counters.policy_faults += 1;
                self.emit(TraceEvent::PolicyFault {
                    t_ms: self.now_ms,
                    role: "eligibility".into(),
                    fault,
                    fallback: "native eligibility rules".into(),
                })?;
            }
        }
        Ok(())
    }

    /// Traces plugin hot reloads; a new eligibility version re-judges every
    /// class.
    fn poll_policy_notices(&mut self) -> Result<(), EngineError> {
        let mut notices = std::mem::take(&mut self.scratch_notices);
        self.policy.cost.take_notices(&mut notices);
        self.policy.eligibility.take_notices(&mut notices);
        self.policy.gate.take_notices(&mut notices);
        if notices.is_empty() {
            self.scratch_notices = notices;
            return Ok(());
        }
        let mut rejudge = false;
        for notice in notices.drain(..) {
            rejudge |= notice.ok && notice.role == "eligibility";
            self.emit(TraceEvent::PolicyReload {
                t_ms: self.now_ms,
                notice,
            })?;
        }
        self.scratch_notices = notices;
        if rejudge {
            for c in &mut self.classes {
                c.refresh_verdicts(&self.hw, &self.policy, &self.native);
            }
            self.trace_eligibility_faults()?;
        }
        Ok(())
    }

    /// Processes one event.
    pub fn step(&mut self) -> Result<Step, EngineError> {
        if self.paused {
            return Ok(Step::Paused);
        }
        self.poll_policy_notices()?;
        let Some(std::cmp::Reverse(event)) = self.events.pop() else {
            self.finish()?;
            return Ok(Step::Finished);
        };
        self.now_ms = f64::from_bits(event.time);
        match event.kind {
            EventKind::Arrival => self.arrive()?,
            EventKind::TaskDone { task, generation } => self.task_done(task, generation)?,
            EventKind::Edge => self.evict_offline()?,
        }
        Ok(Step::Progressed)
    }

    /// Runs until every job is terminal (or the engine is paused).
    pub fn run(&mut self) -> Result<(), EngineError> {
        while self.step()? == Step::Progressed {}
        Ok(())
    }

    /// Runs events up to virtual time `t_ms`.
    /// Writes buffered trace lines out (a live viewer tails the file).
    pub fn flush_trace(&mut self) -> Result<(), EngineError> {
        if let Some(t) = &mut self.trace {
            t.flush()?;
        }
        Ok(())
    }

    pub fn run_until(&mut self, t_ms: f64) -> Result<Step, EngineError> {
        loop {
            match self.events.peek() {
                Some(std::cmp::Reverse(e)) if f64::from_bits(e.time) <= t_ms => {
                    let s = self.step()?;
                    if s != Step::Progressed {
                        return Ok(s);
                    }
                }
                Some(_) => {
                    self.now_ms = self.now_ms.max(t_ms);
                    return Ok(Step::Progressed);
                }
                None => {
                    self.finish()?;
                    return Ok(Step::Finished);
                }
            }
        }
    }

    /// The run's report (complete once [`Step::Finished`]).
    pub fn report(&self) -> RunReport {
        report::build(self)
    }

    fn finish(&mut self) -> Result<(), EngineError> {
        if let Some(t) = &mut self.trace {
            t.flush()?;
        }
        Ok(())
    }

    fn emit(&mut self, event: TraceEvent) -> Result<(), EngineError> {
        if let Some(t) = &mut self.trace {
            t.write(&event)?;
        }
        Ok(())
    }

    fn push(&mut self, t_ms: f64, kind: EventKind) {
        self.seq += 1;
        self.events.push(std::cmp::Reverse(Event {
            time: t_ms.max(0.0).to_bits(),
            seq: self.seq,
            kind,
        }));
    }

    fn schedule_next_arrival(&mut self) {
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

    fn arrive(&mut self) -> Result<(), EngineError> {
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
        let job_id = self.jobs[slot as usize].id;
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

    fn new_job(&mut self, class: usize) -> u32 {
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
        let slot = match self.free_jobs.pop() {
            Some(s) => s,
            None => {
                self.jobs.push(Job {
                    id: 0,
                    class: 0,
                    arrival_ms: 0.0,
                    pending: Vec::new(),
                    nodes: Vec::new(),
                    open_nodes: 0,
                    status: None,
                    explanation: None,
                    retry_after_ms: None,
                    energy_j: 0.0,
                    escalations: Vec::new(),
                    values: HashMap::new(),
                    evidence: Vec::new(),
                    record: None,
                });
                (self.jobs.len() - 1) as u32
            }
        };
        let job = &mut self.jobs[slot as usize];
        job.id = id;
        job.class = class as u32;
        job.arrival_ms = self.now_ms;
        job.pending.clear();
        job.pending
            .extend(plan.nodes.iter().map(|p| p.preds.len() as u32));
        job.nodes.clear();
        job.nodes.resize(n, NodeRt::default());
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

    /// Routes (or skips) every node in the ready list.
    fn drain_ready(&mut self) -> Result<(), EngineError> {
        while let Some((slot, node)) = self.ready.pop() {
            let job = &self.jobs[slot as usize];
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
                    self.jobs[slot as usize].nodes[node as usize].ready_ms = self.now_ms;
                    self.route(slot, node)?;
                }
            }
        }
        Ok(())
    }

    fn device_online(&self, device: Device) -> bool {
        !self.devices[device.index()].operator_offline && !self.hw.offline(device, self.now_ms)
    }

    /// Queue occupancy over all devices, 0..1 (drives diagnostics degradation).
    fn occupancy(&self) -> f64 {
        let (mut used, mut limit) = (0usize, 0usize);
        for d in Device::ALL {
            if self.hw.slots(d) > 0 {
                used += self.devices[d.index()]
                    .queues
                    .iter()
                    .map(VecDeque::len)
                    .sum::<usize>();
                limit += self.hw.queues.limit(d);
            }
        }
        if limit == 0 {
            0.0
        } else {
            used as f64 / limit as f64
        }
    }

    /// Chooses a target for a ready node and admits it, or ends the job.
    fn route(&mut self, slot: u32, node: u32) -> Result<(), EngineError> {
        self.counters.decisions += 1;
        let (class, job_id, arrival_ms, excluded, attempt) = {
            let j = &self.jobs[slot as usize];
            let rt = &j.nodes[node as usize];
            (
                j.class as usize,
                j.id,
                j.arrival_ms,
                rt.excluded,
                rt.attempt,
            )
        };
        let elapsed = self.now_ms - arrival_ms;
        let plan = &self.classes[class];
        let np = &plan.nodes[node as usize];
        let qos = plan.graph.qos;
        let priority = qos.priority;
        let pi = prio_index(priority);
        let (spent_j, reserve_j) =
            if plan.graph.qos.energy_j.is_some() || plan.graph.qos.energy_relative.is_some() {
                let job = &self.jobs[slot as usize];
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
        let budget = plan.budget(node as usize, &self.hw, elapsed, spent_j, reserve_j);

        self.scratch.clear();
        self.scratch_inputs.clear();
        for (k, &target) in np.targets.iter().enumerate() {
            let device = target.device();
            let host_reason = if self.hw.slots(device) == 0 {
                Some(HostReason::NotPresent)
            } else if self.config.mode == Mode::Execute && self.backend_of[target.index()].is_none()
            {
                Some(HostReason::NotBuilt)
            } else if !self.device_online(device) {
                Some(HostReason::Offline)
            } else if excluded & (1 << target.index()) != 0 {
                Some(HostReason::FailedHere)
            } else {
                None
            };
            let policy_ok = np.verdicts[k].is_empty();
            let mut c = Candidate {
                target,
                host_reason,
                policy_ok,
                estimate: Estimate::default(),
                cost: CostTerms::default(),
                violations: 0,
                violations_idle: 0,
                room: false,
            };
            if c.eligible() {
                let learned = self.tables.get(np.slots[k]);
                let dev = &self.devices[device.index()];
                // Interactive work waits only for interactive work ahead of it.
                let queued_ms = if pi == 0 {
                    dev.backlog_ms[0]
                } else {
                    dev.backlog_ms[0] + dev.backlog_ms[1]
                };
                let free = dev.slots > dev.busy;
                let wait =
                    if free && dev.queues[0].is_empty() && (pi == 0 || dev.queues[1].is_empty()) {
                        0.0
                    } else {
                        // Running work is half done on average.
                        (queued_ms + 0.5 * dev.running_ms) / dev.slots as f64
                    };
                c.estimate = Estimate {
                    latency_p50_ms: wait + learned.mean_ms,
                    latency_p95_ms: wait + learned.p95_ms,
                    queue_wait_ms: wait,
                    energy_j: learned.energy_j,
                    error: np.prior[k].error,
                };
                let limit = self.hw.queues.limit(device);
                let limit = if pi == 0 {
                    limit
                } else {
                    (limit as f64 * self.hw.queues.batch_share) as usize
                };
                let queued = dev.queues[0].len() + if pi == 0 { 0 } else { dev.queues[1].len() };
                c.room = free && queued == 0 || queued < limit;
                let violates = |wait_ms: f64| {
                    let mut v = 0u8;
                    if let Some(d) = budget.deadline_p50_ms
                        && elapsed + wait_ms + learned.mean_ms > d
                    {
                        v |= 1;
                    }
                    if let Some(d) = budget.deadline_p95_ms
                        && elapsed + wait_ms + learned.p95_ms > d
                    {
                        v |= 2;
                    }
                    if let Some(e) = budget.energy_j
                        && learned.energy_j > e
                    {
                        v |= 4;
                    }
                    if let Some(a) = budget.max_error
                        && np.prior[k].error > a
                    {
                        v |= 8;
                    }
                    v
                };
                // A fallback is already late: finishing late beats not at
                // all, so latency shares no longer rule candidates out.
                let mask = if attempt > 0 { !3u8 } else { !0u8 };
                c.violations = violates(wait) & mask;
                c.violations_idle = violates(0.0) & mask;
                self.scratch_inputs.push(CandidateInput {
                    target,
                    estimate: c.estimate,
                });
            }
            self.scratch.push(c);
        }
        // One call scores every eligible candidate.
        let ctx = DecisionContext {
            node: &np.summary,
            qos: &plan.graph.qos,
            weights: &self.hw.weights,
        };
        let scored = self
            .policy
            .cost
            .score(&ctx, &self.scratch_inputs, &mut self.scratch_costs)
            .and_then(|()| {
                check_costs(
                    &self.scratch_costs,
                    self.scratch_inputs.len(),
                    self.policy.cost.name(),
                )
            });
        if let Err(fault) = scored {
            self.counters.policy_faults += 1;
            self.native
                .cost
                .score(&ctx, &self.scratch_inputs, &mut self.scratch_costs)
                .expect("the native cost model does not fail");
            if self.trace.is_some() {
                self.emit(TraceEvent::PolicyFault {
                    t_ms: self.now_ms,
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
        let best = |pred: &dyn Fn(&Candidate) -> bool| {
            self.scratch
                .iter()
                .enumerate()
                .filter(|(_, c)| c.eligible() && pred(c))
                .min_by(|a, b| a.1.cost.total.total_cmp(&b.1.cost.total))
                .map(|(i, _)| i)
        };
        let chosen = best(&|c| c.violations == 0 && c.room);
        let outcome = match chosen {
            Some(i) => Routed::Chosen(i),
            None => {
                // Feasible on an idle machine: the system is busy, not the QoS impossible.
                match best(&|c| c.violations_idle == 0) {
                    Some(i) => {
                        let c = &self.scratch[i];
                        let dev = &self.devices[c.target.device().index()];
                        let retry =
                            (dev.backlog_ms[0] + dev.backlog_ms[1]) / dev.slots.max(1) as f64;
                        let why = if c.room {
                            format!(
                                "backpressure: {} would wait {:.3} ms, past the node's latency share",
                                c.target, c.estimate.queue_wait_ms
                            )
                        } else {
                            format!(
                                "backpressure: the {} queue is full for {} work",
                                c.target.device(),
                                match priority {
                                    Priority::Interactive => "interactive",
                                    Priority::Batch => "batch",
                                }
                            )
                        };
                        Routed::Busy {
                            retry_after_ms: retry.max(0.001),
                            why,
                        }
                    }
                    None => Routed::Infeasible(self.infeasible_explanation(
                        class,
                        node as usize,
                        &budget,
                    )),
                }
            }
        };
        if self.trace.is_some() || self.config.record_jobs {
            self.record_decision(slot, node, attempt, &outcome, budget)?;
        }
        match outcome {
            Routed::Chosen(i) => {
                let c = self.scratch[i];
                if np_is_sampling(c.target) {
                    self.counters.sampling_error_sum += c.estimate.error;
                    self.counters.sampling_decisions += 1;
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
                self.jobs[slot as usize].retry_after_ms = Some(retry_after_ms);
                self.end_job_early(slot, JobStatus::Rejected, why, Some(node as usize))
            }
            Routed::Infeasible(why) => {
                self.end_job_early(slot, JobStatus::Infeasible, why, Some(node as usize))
            }
        }
    }

    fn infeasible_explanation(&self, class: usize, node: usize, budget: &NodeBudget) -> String {
        let plan = &self.classes[class];
        let id = &plan.graph.nodes[node].id;
        let eligible: Vec<&Candidate> = self.scratch.iter().filter(|c| c.eligible()).collect();
        if eligible.is_empty() {
            let reasons: Vec<String> = self
                .scratch
                .iter()
                .enumerate()
                .map(|(k, c)| {
                    format!(
                        "{}: {}",
                        c.target,
                        self.reasons_of(class, node, k, c).join("; ")
                    )
                })
                .collect();
            return format!("node {id:?}: no eligible target ({})", reasons.join(" | "));
        }
        let best = eligible
            .iter()
            .min_by(|a, b| a.cost.total.total_cmp(&b.cost.total))
            .expect("non-empty");
        let violated: Vec<String> = (0..4)
            .filter(|b| best.violations_idle & (1 << b) != 0)
            .map(|b| match b {
                0 => format!(
                    "latency p50 {:.3} ms > share {:.3} ms",
                    budget.elapsed_ms + best.estimate.latency_p50_ms - best.estimate.queue_wait_ms,
                    budget.deadline_p50_ms.unwrap_or(f64::NAN)
                ),
                1 => format!(
                    "latency p95 {:.3} ms > share {:.3} ms",
                    budget.elapsed_ms + best.estimate.latency_p95_ms - best.estimate.queue_wait_ms,
                    budget.deadline_p95_ms.unwrap_or(f64::NAN)
                ),
                2 => format!(
                    "energy {:.4} J > share {:.4} J",
                    best.estimate.energy_j,
                    budget.energy_j.unwrap_or(f64::NAN)
                ),
                _ => format!(
                    "error {:.4} > max_error {:.4}",
                    best.estimate.error,
                    budget.max_error.unwrap_or(f64::NAN)
                ),
            })
            .collect();
        format!(
            "node {id:?}: no target meets the QoS; violated: {}; best candidate {} (cost {:.3}): {}",
            violated
                .iter()
                .map(|v| v
                    .split(' ')
                    .take(if v.starts_with("latency") { 2 } else { 1 })
                    .collect::<Vec<_>>()
                    .join(" "))
                .collect::<Vec<_>>()
                .join(", "),
            best.target,
            best.cost.total,
            violated.join("; ")
        )
    }

    fn reasons_of(&self, class: usize, node: usize, k: usize, c: &Candidate) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if let Some(r) = self.host_ineligible(c) {
            out.push(r.to_string());
        }
        out.extend(
            self.classes[class].nodes[node].verdicts[k]
                .iter()
                .map(|r| r.to_string()),
        );
        out
    }

    fn host_ineligible(&self, c: &Candidate) -> Option<Ineligible> {
        c.host_reason.map(|r| match r {
            HostReason::NotPresent => Ineligible::NotPresent,
            HostReason::NotBuilt => Ineligible::NotBuilt {
                detail: format!(
                    "no {} driver in this build; use --mode simulate to plan with it",
                    c.target.device()
                ),
            },
            HostReason::Offline => Ineligible::Offline,
            HostReason::FailedHere => Ineligible::Failed {
                detail: "failed earlier for this node".into(),
            },
        })
    }

    fn record_decision(
        &mut self,
        slot: u32,
        node: u32,
        attempt: u32,
        outcome: &Routed,
        budget: NodeBudget,
    ) -> Result<(), EngineError> {
        let class = self.jobs[slot as usize].class as usize;
        let chosen = match outcome {
            Routed::Chosen(i) => Some(self.scratch[*i].target),
            _ => None,
        };
        let records: Vec<CandidateRecord> = self
            .scratch
            .iter()
            .enumerate()
            .map(|(k, c)| {
                let mut reasons: Vec<Ineligible> = self.host_ineligible(c).into_iter().collect();
                reasons.extend(
                    self.classes[class].nodes[node as usize].verdicts[k]
                        .iter()
                        .cloned(),
                );
                CandidateRecord {
                    target: c.target,
                    device: c.target.device(),
                    eligible: c.eligible(),
                    reasons,
                    estimate: c.eligible().then_some(c.estimate),
                    cost: c.eligible().then_some(c.cost),
                    violations: (0..4)
                        .filter(|b| c.eligible() && c.violations & (1 << b) != 0)
                        .map(|b| VIOLATIONS[b].to_string())
                        .collect(),
                    queue_has_room: c.eligible().then_some(c.room),
                }
            })
            .collect();
        let explanation = match outcome {
            Routed::Chosen(i) => {
                let c = &self.scratch[*i];
                let others: Vec<String> = self
                    .scratch
                    .iter()
                    .filter(|o| o.target != c.target)
                    .map(|o| {
                        if !o.eligible() {
                            format!("{} ineligible", o.target)
                        } else if o.violations != 0 {
                            format!("{} violates {}", o.target, violation_names(o.violations))
                        } else if !o.room {
                            format!("{} queue full", o.target)
                        } else {
                            format!("{} costs {:.4}", o.target, o.cost.total)
                        }
                    })
                    .collect();
                format!(
                    "{}: cheapest feasible (cost {:.4} = latency {:.4} + energy {:.4} + error {:.4} + risk {:.4}){}",
                    c.target,
                    c.cost.total,
                    c.cost.latency,
                    c.cost.energy,
                    c.cost.error,
                    c.cost.risk,
                    if others.is_empty() {
                        String::new()
                    } else {
                        format!("; {}", others.join(", "))
                    }
                )
            }
            Routed::Busy { why, .. } => why.clone(),
            Routed::Infeasible(why) => why.clone(),
        };
        let job = &mut self.jobs[slot as usize];
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

    fn admit(
        &mut self,
        slot: u32,
        node: u32,
        target: Target,
        estimate: Estimate,
        timeout_ms: f64,
    ) -> Result<(), EngineError> {
        let job = &mut self.jobs[slot as usize];
        job.nodes[node as usize].target = Some(target);
        let class = job.class as usize;
        let priority = self.classes[class].graph.qos.priority;
        let service = estimate.latency_p50_ms - estimate.queue_wait_ms;
        let seed = self.classes[class].graph.nodes[node as usize]
            .sample()
            .map_or(0, |s| s.seed)
            .wrapping_add(self.config.seed)
            .wrapping_add(job.id);
        let task = Task {
            job: slot,
            node,
            target,
            priority,
            estimate_ms: service,
            generation: 0,
            started: false,
            run_started_ms: 0.0,
            first_start_ms: 0.0,
            timeout_ms,
            remaining_ms: None,
            run_ms: 0.0,
            drawn_ms: 0.0,
            timed_out: false,
            busy_ms: 0.0,
            energy_j: 0.0,
            sampling: None,
            program: None,
            seed,
            preempt_requested: false,
            preempted_by: 0,
            result: None,
            last_checked_samples: 0,
        };
        let id = match self.free_tasks.pop() {
            Some(id) => {
                self.tasks[id as usize] = Some(task);
                id
            }
            None => {
                self.tasks.push(Some(task));
                (self.tasks.len() - 1) as u32
            }
        };
        let d = target.device().index();
        let pi = prio_index(priority);
        self.devices[d].queues[pi].push_back(id);
        self.devices[d].backlog_ms[pi] += service;
        if self.trace.is_some() {
            let queue_len = self.devices[d].queues[pi].len();
            let (job_id, node_id) = self.ids(slot, node);
            self.emit(TraceEvent::Admit {
                t_ms: self.now_ms,
                job: job_id,
                node: node_id,
                target,
                queue_len,
            })?;
        }
        if self.devices[d].busy >= self.devices[d].slots && pi == 0 {
            self.preempt_for(target.device(), slot)?;
        }
        self.dispatch(target.device())
    }

    fn ids(&self, slot: u32, node: u32) -> (u64, String) {
        let job = &self.jobs[slot as usize];
        (
            job.id,
            self.classes[job.class as usize].graph.nodes[node as usize]
                .id
                .clone(),
        )
    }

    /// Suspends one running preemptible batch task on `device` so waiting
    /// interactive work can start (at once in simulate mode, at the next
    /// sweep boundary in execute mode).
    fn preempt_for(&mut self, device: Device, by_slot: u32) -> Result<(), EngineError> {
        let d = device.index();
        let victim = self.devices[d].running.iter().copied().find(|&t| {
            let task = self.tasks[t as usize]
                .as_ref()
                .expect("running task exists");
            task.priority == Priority::Batch && task.target.preemptible() && !task.preempt_requested
        });
        let Some(victim) = victim else {
            return Ok(());
        };
        let by_job = self.jobs[by_slot as usize].id;
        match self.config.mode {
            Mode::Simulate => {
                let now = self.now_ms;
                let task = self.tasks[victim as usize].as_mut().expect("exists");
                let done = now - task.run_started_ms;
                let remaining = (task.run_ms - done).max(0.0);
                let progress = if task.run_ms > 0.0 {
                    done / task.run_ms
                } else {
                    1.0
                };
                task.remaining_ms = Some(remaining);
                task.busy_ms += done;
                task.generation += 1;
                self.suspend(victim, by_job, progress)
            }
            Mode::Execute => {
                let task = self.tasks[victim as usize].as_mut().expect("exists");
                task.preempt_requested = true;
                task.preempted_by = by_job;
                Ok(())
            }
        }
    }

    fn suspend(&mut self, task_id: u32, by_job: u64, progress: f64) -> Result<(), EngineError> {
        let task = self.tasks[task_id as usize].as_mut().expect("exists");
        task.preempt_requested = false;
        let (slot, node, target, est) = (task.job, task.node, task.target, task.estimate_ms);
        let d = target.device().index();
        let dev = &mut self.devices[d];
        dev.busy -= 1;
        dev.running_ms = (dev.running_ms - est).max(0.0);
        dev.backlog_ms[1] += est;
        dev.running.retain(|&t| t != task_id);
        dev.queues[1].push_front(task_id);
        self.counters.preemptions += 1;
        let (job_id, node_id) = self.ids(slot, node);
        self.emit(TraceEvent::Preempt {
            t_ms: self.now_ms,
            job: job_id,
            node: node_id,
            target,
            by_job,
            progress,
        })
    }

    fn dispatch(&mut self, device: Device) -> Result<(), EngineError> {
        let d = device.index();
        while self.devices[d].busy < self.devices[d].slots {
            let dev = &mut self.devices[d];
            let Some((pi, id)) = dev.queues[0]
                .pop_front()
                .map(|id| (0, id))
                .or_else(|| dev.queues[1].pop_front().map(|id| (1, id)))
            else {
                break;
            };
            let est = self.tasks[id as usize]
                .as_ref()
                .expect("queued")
                .estimate_ms;
            dev.backlog_ms[pi] = (dev.backlog_ms[pi] - est).max(0.0);
            dev.running_ms += est;
            dev.busy += 1;
            dev.running.push(id);
            self.start(id)?;
        }
        Ok(())
    }

    fn release(&mut self, task_id: u32) -> Task {
        let task = self.tasks[task_id as usize].take().expect("task exists");
        let d = task.target.device().index();
        self.devices[d].running_ms = (self.devices[d].running_ms - task.estimate_ms).max(0.0);
        self.devices[d].busy -= 1;
        self.devices[d].running.retain(|&t| t != task_id);
        self.free_tasks.push(task_id);
        task
    }

    fn start(&mut self, task_id: u32) -> Result<(), EngineError> {
        let now = self.now_ms;
        let (slot, node, target, resumed) = {
            let t = self.tasks[task_id as usize].as_mut().expect("exists");
            let resumed = t.started;
            if !t.started {
                t.started = true;
                t.first_start_ms = now;
            }
            t.run_started_ms = now;
            (t.job, t.node, t.target, resumed)
        };
        let device = target.device();
        if self.trace.is_some() {
            let (job, node_id) = self.ids(slot, node);
            let event = if resumed {
                TraceEvent::Resume {
                    t_ms: now,
                    job,
                    node: node_id,
                    target,
                }
            } else {
                TraceEvent::Start {
                    t_ms: now,
                    job,
                    node: node_id,
                    target,
                }
            };
            self.emit(event)?;
        }
        if !self.device_online(device) {
            self.release(task_id);
            return self.fall_back(
                slot,
                node,
                target,
                FailureKind::BackendUnavailable,
                format!("{device} went offline"),
            );
        }
        if self.hw.injected_error(device, now) {
            self.release(task_id);
            return self.fall_back(
                slot,
                node,
                target,
                FailureKind::BackendError,
                format!("injected {device} error"),
            );
        }
        let (kind, effect) = {
            let job = &self.jobs[slot as usize];
            let n = &self.classes[job.class as usize].graph.nodes[node as usize];
            (n.kind(), n.effect().cloned())
        };
        if let Some(spec) = effect {
            return self.run_effect(task_id, spec);
        }
        match self.config.mode {
            Mode::Simulate => self.start_simulated(task_id),
            Mode::Execute => self.start_executed(task_id, kind),
        }
    }

    fn start_simulated(&mut self, task_id: u32) -> Result<(), EngineError> {
        let now = self.now_ms;
        let (slot, node, target, remaining, timeout) = {
            let t = self.tasks[task_id as usize].as_ref().expect("exists");
            (t.job, t.node, t.target, t.remaining_ms, t.timeout_ms)
        };
        let run_ms = match remaining {
            Some(r) => r,
            None => {
                let class = self.jobs[slot as usize].class as usize;
                let k = self.classes[class].nodes[node as usize].target_slot(target);
                let mean = self.classes[class].nodes[node as usize].truth[k].mean_ms;
                mean * self.noise() * self.hw.slowdown(target.device(), now)
            }
        };
        let t = self.tasks[task_id as usize].as_mut().expect("exists");
        let so_far = t.busy_ms;
        let cut = (timeout - so_far).max(0.0);
        t.timed_out = run_ms > cut;
        t.drawn_ms = run_ms;
        t.run_ms = run_ms.min(cut);
        let at = now + t.run_ms;
        self.schedule_done(task_id, at);
        Ok(())
    }

    /// The end of a task's current run (or slice) at `at`; a preemption
    /// bumps the task's generation, which makes this event stale.
    fn schedule_done(&mut self, task_id: u32, at: f64) {
        let generation = self.tasks[task_id as usize]
            .as_ref()
            .expect("scheduled tasks exist")
            .generation;
        self.push(
            at,
            EventKind::TaskDone {
                task: task_id,
                generation,
            },
        );
    }

    /// A unit-mean multiplicative draw from the configured service distribution.
    fn noise(&mut self) -> f64 {
        match self.hw.simulate.service {
            ServiceDistribution::Deterministic => 1.0,
            ServiceDistribution::Exponential => self.rng.sample(rand_distr::Exp1),
            ServiceDistribution::Lognormal => {
                let s2 = (1.0 + self.hw.simulate.cv * self.hw.simulate.cv).ln();
                let z: f64 =
                    rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut self.rng);
                (-0.5 * s2 + s2.sqrt() * z).exp()
            }
        }
    }

    fn start_executed(&mut self, task_id: u32, kind: NodeKind) -> Result<(), EngineError> {
        let now = self.now_ms;
        let (slot, node, target) = {
            let t = self.tasks[task_id as usize].as_ref().expect("exists");
            (t.job, t.node, t.target)
        };
        let backend = self.backend_of[target.index()].expect("routing only picks built backends");
        let class = self.jobs[slot as usize].class as usize;
        let slowdown = self.hw.slowdown(target.device(), now);
        if kind != NodeKind::Sample {
            let plan = &self.classes[class];
            let index = plan.graph.index();
            let started = std::time::Instant::now();
            let result = self.backends[backend].run_node(
                &plan.graph,
                node as usize,
                &self.jobs[slot as usize].values,
                &index,
            );
            let ms = started.elapsed().as_secs_f64() * 1e3 * slowdown;
            let measured_j = self.backends[backend].take_energy_j();
            return match result {
                Err(e) => {
                    self.release(task_id);
                    self.fall_back(slot, node, target, failure_kind(&e), e.to_string())
                }
                Ok(result) => {
                    let t = self.tasks[task_id as usize].as_mut().expect("exists");
                    t.result = Some(Box::new(result));
                    t.run_ms = ms;
                    t.energy_j = measured_j.map_or(0.0, |j| j * slowdown);
                    let at = now + ms;
                    self.schedule_done(task_id, at);
                    Ok(())
                }
            };
        }
        if self.tasks[task_id as usize]
            .as_ref()
            .expect("exists")
            .sampling
            .is_none()
        {
            let plan = &self.classes[class];
            let index = plan.graph.index();
            let program = match exec::conditioned_program(
                &plan.graph,
                node as usize,
                &self.jobs[slot as usize].values,
                &index,
            ) {
                Ok(p) => p,
                Err((status, why)) => {
                    self.release(task_id);
                    return self.close_node(slot, node, status, Some(why), None);
                }
            };
            let seed = self.tasks[task_id as usize].as_ref().expect("exists").seed;
            match self.backends[backend].start_sampling(&program, seed) {
                Err(e) => {
                    self.release(task_id);
                    return self.fall_back(slot, node, target, failure_kind(&e), e.to_string());
                }
                Ok(Err(SampleError::Infeasible(inf))) => {
                    self.release(task_id);
                    let why = format!("{} ({})", inf.explanation, inf.constraint);
                    let (job, node_id) = self.ids(slot, node);
                    self.emit(TraceEvent::Failure {
                        t_ms: now,
                        job,
                        node: node_id,
                        kind: FailureKind::ConstraintInfeasible,
                        action: FailureAction::Infeasible,
                        detail: why.clone(),
                    })?;
                    return self.close_node(slot, node, NodeStatus::Infeasible, Some(why), None);
                }
                Ok(Err(e)) => {
                    self.release(task_id);
                    return self.close_node(
                        slot,
                        node,
                        NodeStatus::Failed,
                        Some(e.to_string()),
                        None,
                    );
                }
                Ok(Ok(run)) => {
                    let t = self.tasks[task_id as usize].as_mut().expect("exists");
                    t.sampling = Some(run);
                    t.program = Some(Box::new(program));
                }
            }
        }
        self.run_slice(task_id)
    }

    fn run_slice(&mut self, task_id: u32) -> Result<(), EngineError> {
        let now = self.now_ms;
        let sweeps = self.hw.budgets.slice_sweeps;
        let t = self.tasks[task_id as usize].as_mut().expect("exists");
        let slowdown = self.hw.slowdown(t.target.device(), now);
        let cost = t
            .sampling
            .as_mut()
            .expect("sampling started")
            .advance(sweeps);
        match cost {
            Ok(cost) => {
                let ms = cost.device_seconds.unwrap_or(cost.seconds) * 1e3 * slowdown;
                t.run_ms = ms;
                if let Some(e) = cost.energy_j {
                    t.energy_j += e;
                }
                let at = now + ms;
                self.schedule_done(task_id, at);
                Ok(())
            }
            Err(e) => {
                let (slot, node, target) = (t.job, t.node, t.target);
                self.release(task_id);
                self.fall_back(slot, node, target, failure_kind(&e), e.to_string())
            }
        }
    }

    fn task_done(&mut self, task_id: u32, generation: u32) -> Result<(), EngineError> {
        let Some(t) = self.tasks.get(task_id as usize).and_then(Option::as_ref) else {
            return Ok(());
        };
        if t.generation != generation {
            return Ok(()); // preempted: this end no longer happens
        }
        match self.config.mode {
            Mode::Simulate => self.simulated_done(task_id),
            Mode::Execute => {
                if t.sampling.is_some() {
                    self.slice_done(task_id)
                } else {
                    self.executed_done(task_id)
                }
            }
        }
    }

    fn simulated_done(&mut self, task_id: u32) -> Result<(), EngineError> {
        let (timed_out, device) = {
            let t = self.tasks[task_id as usize].as_mut().expect("exists");
            t.busy_ms += t.run_ms;
            (t.timed_out, t.target.device())
        };
        let task = self.release(task_id);
        let (slot, node, target) = (task.job, task.node, task.target);
        let class = self.jobs[slot as usize].class as usize;
        let k = self.classes[class].nodes[node as usize].target_slot(target);
        let truth = self.classes[class].nodes[node as usize].truth[k];
        let energy = truth.energy_j * task.busy_ms / truth.mean_ms.max(1e-12);
        self.jobs[slot as usize].energy_j += energy;
        if timed_out {
            self.counters.timeouts += 1;
            let kind = self.classes[class].graph.nodes[node as usize].kind();
            if kind == NodeKind::Sample {
                // The sampler keeps the draws made before the timeout.
                let owed = (task.drawn_ms - task.run_ms).max(0.0);
                let done_fraction = task.busy_ms / (task.busy_ms + owed).max(1e-12);
                if done_fraction >= self.hw.budgets.min_sample_fraction {
                    self.emit_failure(
                        slot,
                        node,
                        FailureKind::BudgetExceeded,
                        FailureAction::ReduceSamples,
                        format!(
                            "timed out after {:.3} ms; kept the draws made so far",
                            task.busy_ms
                        ),
                    )?;
                    self.observe(slot, node, target, task.busy_ms, energy)?;
                    self.dispatch(device)?;
                    return self.complete_simulated(slot, node, target, task.busy_ms, energy, true);
                }
            }
            self.dispatch(device)?;
            return self.fall_back(
                slot,
                node,
                target,
                FailureKind::BudgetExceeded,
                format!(
                    "timed out after {:.3} ms (timeout {:.3} ms)",
                    task.busy_ms, task.timeout_ms
                ),
            );
        }
        self.observe(slot, node, target, task.busy_ms, energy)?;
        self.dispatch(device)?;
        self.complete_simulated(slot, node, target, task.busy_ms, energy, false)
    }

    fn complete_simulated(
        &mut self,
        slot: u32,
        node: u32,
        target: Target,
        service_ms: f64,
        energy: f64,
        degraded: bool,
    ) -> Result<(), EngineError> {
        let class = self.jobs[slot as usize].class as usize;
        let plan = &self.classes[class];
        let n = &plan.graph.nodes[node as usize];
        // Nothing was computed: a branch goes either way with equal odds.
        if let Some(c) = n.control()
            && c.op == ControlOp::Branch
        {
            let taken_then: bool = self.rng.random();
            let not_taken = if taken_then {
                &c.else_nodes
            } else {
                &c.then_nodes
            };
            let ids: Vec<usize> = not_taken
                .iter()
                .filter_map(|id| plan.index.get(id).copied())
                .collect();
            for j in ids {
                self.jobs[slot as usize].nodes[j].skipped_by_branch = true;
            }
        }
        if plan.nodes[node as usize].is_evidence {
            // Simulated evidence: what is known without computing anything.
            let evidence = Evidence {
                node: n.id.clone(),
                kind: Some(n.kind()),
                backend: Some(target.name().into()),
                schedule: n.sample().map(|s| s.program.schedule),
                program_hash: plan.nodes[node as usize].program_hash.clone(),
                inputs: plan.nodes[node as usize].preds.len(),
                ..Default::default()
            };
            self.jobs[slot as usize].evidence[node as usize] = Some(evidence);
        }
        self.trace_end(
            slot,
            node,
            target,
            NodeStatus::Completed,
            service_ms,
            energy,
            false,
            || degraded.then(|| json!({ "degraded": "fewer samples (timeout)" })),
        )?;
        self.close_node(slot, node, NodeStatus::Completed, None, None)
    }

    fn executed_done(&mut self, task_id: u32) -> Result<(), EngineError> {
        let mut task = self.release(task_id);
        let (slot, node, target) = (task.job, task.node, task.target);
        let device = target.device();
        let service = task.run_ms;
        // A backend that measured its own busy energy (the GPU's timestamps)
        // is believed over power × wall time.
        let energy = if task.energy_j > 0.0 {
            task.energy_j
        } else {
            busy_energy(&self.hw, device, service)
        };
        self.jobs[slot as usize].energy_j += energy;
        let result = *task.result.take().expect("executed tasks carry a result");
        if service > task.timeout_ms {
            self.counters.timeouts += 1;
            self.emit_failure(
                slot,
                node,
                FailureKind::BudgetExceeded,
                FailureAction::Degrade,
                format!(
                    "took {service:.3} ms, past the {:.3} ms timeout; result kept and marked late",
                    task.timeout_ms
                ),
            )?;
        }
        self.observe(slot, node, target, service, energy)?;
        self.dispatch(device)?;
        match result {
            Ok((value, summary)) => {
                self.complete_executed(slot, node, target, value, summary, service, energy, None)
            }
            Err((status, why)) => {
                self.trace_end(slot, node, target, status, service, energy, true, || None)?;
                self.close_node(slot, node, status, Some(why), None)
            }
        }
    }

    fn slice_done(&mut self, task_id: u32) -> Result<(), EngineError> {
        let now = self.now_ms;
        let b = self.hw.budgets.clone();
        let t = self.tasks[task_id as usize].as_mut().expect("exists");
        t.busy_ms += t.run_ms;
        let run = t.sampling.as_ref().expect("sampling");
        let done = run.is_done();
        let progress = run.sweeps_done() as f64 / run.total_sweeps().max(1) as f64;
        if !done && t.preempt_requested {
            let (device, by) = (t.target.device(), t.preempted_by);
            t.sampling.as_mut().expect("sampling").suspend();
            self.suspend(task_id, by, progress)?;
            return self.dispatch(device);
        }
        let samples = run.samples_done();
        let total = run.total_samples();
        let timed_out = !done && t.busy_ms > t.timeout_ms;
        let mut early = false;
        if !done
            && !timed_out
            && b.early_stop_ess > 0.0
            && samples >= 20
            && samples >= t.last_checked_samples + total.div_ceil(10)
        {
            t.last_checked_samples = samples;
            let d = diagnose(&run.draws());
            early = d.max_rhat.is_some_and(|r| r <= b.early_stop_rhat)
                && d.min_ess_bulk.is_some_and(|e| e >= b.early_stop_ess);
            if early {
                let (slot, node) = (t.job, t.node);
                self.counters.early_stops += 1;
                let (job, node_id) = self.ids(slot, node);
                self.emit(TraceEvent::EarlyStop {
                    t_ms: now,
                    job,
                    node: node_id,
                    samples,
                    max_rhat: d.max_rhat,
                    min_ess_bulk: d.min_ess_bulk,
                })?;
            }
        }
        if !done && !timed_out && !early {
            return self.run_slice(task_id);
        }
        let mut task = self.release(task_id);
        let (slot, node, target) = (task.job, task.node, task.target);
        let device = target.device();
        let energy = if task.energy_j > 0.0 {
            task.energy_j
        } else {
            busy_energy(&self.hw, device, task.busy_ms)
        };
        self.jobs[slot as usize].energy_j += energy;
        let mut note = None;
        if timed_out {
            self.counters.timeouts += 1;
            if (samples as f64) < b.min_sample_fraction * total as f64 || samples < 2 {
                self.dispatch(device)?;
                return self.fall_back(
                    slot,
                    node,
                    target,
                    FailureKind::BudgetExceeded,
                    format!(
                        "timed out after {:.3} ms with {samples} of {total} samples",
                        task.busy_ms
                    ),
                );
            }
            self.emit_failure(
                slot,
                node,
                FailureKind::BudgetExceeded,
                FailureAction::ReduceSamples,
                format!(
                    "timed out after {:.3} ms; kept {samples} of {total} samples",
                    task.busy_ms
                ),
            )?;
            note = Some(format!("fewer samples: {samples} of {total} (timeout)"));
        } else if early {
            note = Some(format!(
                "stopped early at {samples} of {total} samples (converged)"
            ));
        }
        self.observe(slot, node, target, task.busy_ms, energy)?;
        self.dispatch(device)?;
        let sampling = task.sampling.take().expect("sampling");
        let draws = sampling.draws();
        let provenance = sampling.provenance();
        let program = task.program.take().expect("program kept");
        self.finish_sampling(
            slot,
            node,
            target,
            &program,
            &draws,
            task.seed,
            task.busy_ms,
            energy,
            note,
            provenance,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_sampling(
        &mut self,
        slot: u32,
        node: u32,
        target: Target,
        program: &EProgram,
        draws: &Draws,
        seed: u64,
        service: f64,
        energy: f64,
        note: Option<String>,
        provenance: Vec<(&'static str, String)>,
    ) -> Result<(), EngineError> {
        let occupancy = self.occupancy();
        let b = &self.hw.budgets;
        let mut level = if occupancy >= b.degrade_none_at {
            DiagnosticsLevel::None
        } else if occupancy >= b.degrade_basic_at {
            DiagnosticsLevel::Basic
        } else {
            DiagnosticsLevel::Full
        };
        if level != DiagnosticsLevel::Full {
            self.counters.degraded_diagnostics += 1;
        }
        let mut diagnostics = run_diagnostics(draws, level);
        let threshold = self
            .hw
            .gate
            .reversible
            .max_rhat
            .max(self.hw.gate.irreversible.max_rhat);
        let not_converged = diagnostics
            .as_ref()
            .and_then(|d| d.max_rhat)
            .is_some_and(|r| r > threshold);
        if not_converged {
            // NonConvergence: escalate diagnostics and require a human.
            self.counters.nonconvergence += 1;
            if level != DiagnosticsLevel::Full {
                level = DiagnosticsLevel::Full;
                diagnostics = run_diagnostics(draws, level);
            }
            let r = diagnostics
                .as_ref()
                .and_then(|d| d.max_rhat)
                .unwrap_or(f64::NAN);
            let (_, node_id) = self.ids(slot, node);
            let why =
                format!("node {node_id:?} did not converge (max R-hat {r:.3} > {threshold:.3})");
            self.jobs[slot as usize].escalations.push(why.clone());
            self.emit_failure(
                slot,
                node,
                FailureKind::NonConvergence,
                FailureAction::EscalateReview,
                why,
            )?;
        }
        let (value, mut summary) = exec::sample_output(program, draws, seed, target.name());
        summary["diagnostics_level"] = json!(level);
        if level != DiagnosticsLevel::Full {
            summary["max_rhat"] = json!(diagnostics.as_ref().and_then(|d| d.max_rhat));
            summary["min_ess_bulk"] = json!(diagnostics.as_ref().and_then(|d| d.min_ess_bulk));
        }
        if let Some(n) = &note {
            summary["degraded"] = json!(n);
        }
        for (key, value) in provenance {
            summary[key] = json!(value);
        }
        let output_hash = summary["draws_hash"].as_str().map(String::from);
        let input_hashes = self.input_hashes(slot, node);
        let (_, node_id) = self.ids(slot, node);
        let evidence = Evidence {
            node: node_id,
            kind: Some(NodeKind::Sample),
            backend: Some(target.name().into()),
            schedule: Some(program.schedule),
            program_hash: Some(program.canonical_hash()),
            inputs: self.classes[self.jobs[slot as usize].class as usize].nodes[node as usize]
                .preds
                .len(),
            input_hashes,
            output_hash,
            max_rhat: diagnostics.as_ref().and_then(|d| d.max_rhat),
            min_ess_bulk: diagnostics.as_ref().and_then(|d| d.min_ess_bulk),
            constraint_rate: Some(constraint_rate(program, draws)),
            diagnostics_level: Some(level),
        };
        self.jobs[slot as usize].evidence[node as usize] = Some(evidence);
        self.complete_executed(slot, node, target, value, summary, service, energy, note)
    }

    fn input_hashes(&self, slot: u32, node: u32) -> Vec<String> {
        let job = &self.jobs[slot as usize];
        self.classes[job.class as usize].nodes[node as usize]
            .preds
            .iter()
            .filter_map(|&p| {
                job.evidence[p as usize]
                    .as_ref()
                    .and_then(|e| e.output_hash.clone())
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn complete_executed(
        &mut self,
        slot: u32,
        node: u32,
        target: Target,
        value: Value,
        summary: serde_json::Value,
        service: f64,
        energy: f64,
        note: Option<String>,
    ) -> Result<(), EngineError> {
        let class = self.jobs[slot as usize].class as usize;
        if let (Value::Bool(taken), Some(c)) = (
            &value,
            self.classes[class].graph.nodes[node as usize].control(),
        ) && c.op == ControlOp::Branch
        {
            let not_taken = if *taken { &c.else_nodes } else { &c.then_nodes };
            let ids: Vec<usize> = not_taken
                .iter()
                .filter_map(|id| self.classes[class].index.get(id).copied())
                .collect();
            for j in ids {
                self.jobs[slot as usize].nodes[j].skipped_by_branch = true;
            }
        }
        if self.jobs[slot as usize].evidence[node as usize].is_none() {
            let input_hashes = self.input_hashes(slot, node);
            let n = &self.classes[class].graph.nodes[node as usize];
            let inputs = self.classes[class].nodes[node as usize].preds.len();
            self.jobs[slot as usize].evidence[node as usize] = Some(Evidence {
                node: n.id.clone(),
                kind: Some(n.kind()),
                backend: Some(target.name().into()),
                inputs,
                input_hashes,
                output_hash: Some(value_hash(&value)),
                ..Default::default()
            });
        }
        self.jobs[slot as usize].values.insert(node as usize, value);
        self.trace_end(
            slot,
            node,
            target,
            NodeStatus::Completed,
            service,
            energy,
            true,
            || Some(summary.clone()),
        )?;
        self.close_node(slot, node, NodeStatus::Completed, note, Some(summary))
    }

    /// Gate, then apply, hold or drop an effect. Effects take no device time.
    fn run_effect(&mut self, task_id: u32, spec: EffectSpec) -> Result<(), EngineError> {
        let task = self.release(task_id);
        let (slot, node, target) = (task.job, task.node, task.target);
        let job = &self.jobs[slot as usize];
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
        let decision = match self.policy.gate.decide(&request) {
            Ok(d) => d,
            Err(fault) => {
                // Fail closed: a gate that cannot answer never lets an effect through.
                self.counters.policy_faults += 1;
                let reason = format!("gate failed: {}", fault.reason);
                let decision = match self.hw.gate.fail_closed {
                    crate::hardware::FailClosed::Deny => GateDecision::Deny(vec![reason]),
                    crate::hardware::FailClosed::Review => {
                        GateDecision::RequireReview(vec![reason])
                    }
                };
                self.emit(TraceEvent::PolicyFault {
                    t_ms: self.now_ms,
                    role: "gate".into(),
                    fault,
                    fallback: format!("fail closed: {decision:?}"),
                })?;
                decision
            }
        };
        let job_id = self.jobs[slot as usize].id;
        let mut review_id = None;
        let (status, output) = match &decision {
            GateDecision::Allow => {
                self.counters.gate_allow += 1;
                (
                    NodeStatus::Completed,
                    json!({ "action": spec.action, "risk": spec.risk, "applied": true }),
                )
            }
            GateDecision::RequireReview(reasons) => {
                self.counters.gate_review += 1;
                if let Some(q) = &mut self.reviews {
                    let id = q.hold(ReviewItem {
                        id: String::new(),
                        graph: graph_name,
                        job: job_id,
                        node: request.node.clone(),
                        action: spec.action.clone(),
                        risk: spec.risk,
                        reasons: reasons.clone(),
                        evidence: request.evidence.clone(),
                        status: ReviewStatus::Pending,
                        decided_by: None,
                        note: None,
                    })?;
                    review_id = Some(id);
                }
                (
                    NodeStatus::Held,
                    json!({ "action": spec.action, "risk": spec.risk, "applied": false, "held_for_review": review_id, "reasons": reasons }),
                )
            }
            GateDecision::Deny(reasons) => {
                self.counters.gate_deny += 1;
                (
                    NodeStatus::Denied,
                    json!({ "action": spec.action, "risk": spec.risk, "applied": false, "denied": reasons }),
                )
            }
        };
        let node_id = request.node.clone();
        self.emit(TraceEvent::Gate {
            t_ms: self.now_ms,
            job: job_id,
            node: node_id.clone(),
            decision,
            review_id,
        })?;
        let measured = self.config.mode == Mode::Execute;
        self.trace_end(slot, node, target, status, 0.0, 0.0, measured, || {
            Some(output.clone())
        })?;
        self.dispatch(target.device())?;
        self.close_node(slot, node, status, None, Some(output))
    }

    /// Records a node's end in the trace; `output` is built only when tracing.
    fn trace_end(
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

    fn emit_failure(
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

    /// BackendUnavailable, BackendError, BudgetExceeded: route again without
    /// the target that failed; with nothing left, the node fails.
    fn fall_back(
        &mut self,
        slot: u32,
        node: u32,
        failed: Target,
        kind: FailureKind,
        detail: String,
    ) -> Result<(), EngineError> {
        self.counters.fallbacks += 1;
        let rt = &mut self.jobs[slot as usize].nodes[node as usize];
        rt.excluded |= 1 << failed.index();
        rt.attempt += 1;
        rt.target = None;
        self.emit_failure(
            slot,
            node,
            kind,
            FailureAction::Fallback,
            format!("{failed}: {detail}"),
        )?;
        self.route(slot, node)
    }

    fn observe(
        &mut self,
        slot: u32,
        node: u32,
        target: Target,
        service_ms: f64,
        energy_j: f64,
    ) -> Result<(), EngineError> {
        let class = self.jobs[slot as usize].class as usize;
        self.counters.busy_ms[target.device().index()] += service_ms;
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

    /// Moves queued work off devices that are now offline (immediate fallback).
    fn evict_offline(&mut self) -> Result<(), EngineError> {
        for device in Device::ALL {
            if self.device_online(device) {
                continue;
            }
            let d = device.index();
            let queued: Vec<u32> = self.devices[d]
                .queues
                .iter_mut()
                .flat_map(|q| q.drain(..))
                .collect();
            self.devices[d].backlog_ms = [0.0; 2];
            for id in queued {
                let task = self.tasks[id as usize].take().expect("queued task exists");
                self.free_tasks.push(id);
                self.fall_back(
                    task.job,
                    task.node,
                    task.target,
                    FailureKind::BackendUnavailable,
                    format!("{device} went offline while the node was queued"),
                )?;
            }
        }
        Ok(())
    }

    fn end_job_early(
        &mut self,
        slot: u32,
        status: JobStatus,
        why: String,
        node: Option<usize>,
    ) -> Result<(), EngineError> {
        let job = &mut self.jobs[slot as usize];
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
    fn close_node(
        &mut self,
        slot: u32,
        node: u32,
        status: NodeStatus,
        why: Option<String>,
        output: Option<serde_json::Value>,
    ) -> Result<(), EngineError> {
        let now = self.now_ms;
        let job = &mut self.jobs[slot as usize];
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
            self.summaries[class].node_mix[node as usize][t.index()] += 1;
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

    fn end_job(&mut self, slot: u32) -> Result<(), EngineError> {
        let now = self.now_ms;
        let job = &mut self.jobs[slot as usize];
        let status = job.status.unwrap_or(JobStatus::Completed);
        let latency = now - job.arrival_ms;
        let class = job.class as usize;
        self.summaries[class].add(status, latency, job.energy_j, &self.classes[class]);
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
        let job = &mut self.jobs[slot as usize];
        if let Some(mut r) = job.record.take() {
            r.status = status;
            r.explanation = job.explanation.clone();
            r.latency_ms = latency;
            r.energy_j = job.energy_j;
            r.retry_after_ms = job.retry_after_ms;
            self.records.push(r);
        }
        job.values.clear();
        self.free_jobs.push(slot);
        Ok(())
    }
}

enum Routed {
    Chosen(usize),
    Busy { retry_after_ms: f64, why: String },
    Infeasible(String),
}

/// The failure a backend error is: `Unavailable` falls back as
/// BackendUnavailable, anything else as BackendError.
fn failure_kind(e: &BackendError) -> FailureKind {
    match e {
        BackendError::Unavailable(_) => FailureKind::BackendUnavailable,
        _ => FailureKind::BackendError,
    }
}

fn np_is_sampling(target: Target) -> bool {
    matches!(target, Target::Tsu | Target::GpuSim | Target::CpuRef)
}

fn violation_names(bits: u8) -> String {
    (0..4)
        .filter(|b| bits & (1 << b) != 0)
        .map(|b| VIOLATIONS[b])
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rejects a cost model's answer that cannot be compared: wrong length, NaN,
/// infinite or negative costs.
fn check_costs(
    costs: &[CostTerms],
    expected: usize,
    policy: &str,
) -> Result<(), crate::policy::PolicyFault> {
    crate::policy::validate_costs(costs, expected).map_err(|reason| crate::policy::PolicyFault {
        policy: policy.into(),
        reason,
        kind: "invalid_output".into(),
    })
}

fn run_diagnostics(draws: &Draws, level: DiagnosticsLevel) -> Option<Diagnostics> {
    match level {
        DiagnosticsLevel::None => None,
        DiagnosticsLevel::Full => Some(diagnose(draws)),
        DiagnosticsLevel::Basic => {
            // A spread-out subset of at most 16 variables.
            let n = draws.n_vars;
            let step = n.div_ceil(16).max(1);
            let vars: Vec<usize> = (0..n).step_by(step).collect();
            Some(diagnose_vars(draws, &vars))
        }
    }
}

/// Fraction of draws that satisfy every hard constraint of the program.
fn constraint_rate(program: &EProgram, draws: &Draws) -> f64 {
    if program.constraints.is_empty() || draws.samples == 0 {
        return 1.0;
    }
    let rows = draws.values.chunks_exact(draws.n_vars.max(1));
    let total = rows.len();
    let ok = rows
        .filter(|row| {
            program
                .constraints
                .iter()
                .all(|c| c.vars.iter().filter(|&&v| row[v] > 0).count() == c.required_up())
        })
        .count();
    ok as f64 / total as f64
}

fn value_hash(value: &Value) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    match value {
        Value::Tensor(t) => {
            for d in t.shape() {
                h.update((*d as u64).to_le_bytes());
            }
            for x in t.iter() {
                h.update(x.to_le_bytes());
            }
        }
        Value::Samples { marginals } => {
            for m in marginals {
                h.update(m.unwrap_or(f64::NAN).to_le_bytes());
            }
        }
        Value::Bool(b) => h.update([u8::from(*b)]),
        Value::Index(i) => h.update((*i as u64).to_le_bytes()),
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}
