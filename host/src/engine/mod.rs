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

#![warn(missing_docs)]

mod arrivals;
mod config;
pub mod decide;
mod effects;
mod execute;
mod faults;
mod jobs;
mod plan;
mod queue_policy;
mod queues;
mod record;
mod report;
mod routing;
mod setup;
mod simulate;
mod situation;
mod state;
mod steer;

use std::collections::{BinaryHeap, VecDeque};

use rand_chacha::ChaCha8Rng;

use crate::backends::registry::Registry;
use crate::device::PerDevice;
use crate::hardware::Hardware;
use crate::perf::PerfTables;
use crate::policy::{CandidateInput, CostTerms, DecisionSituation, Policy, PolicyNotice};
use crate::review::ReviewQueue;
use crate::trace::TraceWriter;

pub use config::{
    Arrivals, Clock, Command, EngineConfig, EngineError, JobClass, Mode, RecordedArrival, Step,
};
pub use faults::PluginFaults;
pub use record::Counters;
pub use report::{CandidateBrief, ClassSummary, JobRecord, NodeMix, NodeRecord, RunReport};

use decide::route::Candidate;
use plan::ClassPlan;
use state::{DeviceRt, Event, EventKind, JobSlab, TaskSlab};

/// The engine. Build it with [`Engine::new`], then [`Engine::run`] or step it.
pub struct Engine {
    hw: Hardware,
    config: EngineConfig,
    policy: Policy,
    /// Whether some role of `policy` can give notices (a plugin): only
    /// then does every step ask for them.
    policy_notices: bool,
    native: Policy,
    classes: Vec<ClassPlan>,
    class_cdf: Vec<f64>,
    tables: PerfTables,
    /// The backend serving each target (execute mode).
    backends: Registry,
    rng: ChaCha8Rng,
    now_ms: f64,
    seq: u64,
    events: BinaryHeap<std::cmp::Reverse<Event>>,
    jobs: JobSlab,
    tasks: TaskSlab,
    devices: PerDevice<DeviceRt>,
    arrivals_left: u64,
    rate_per_s: f64,
    recorded: VecDeque<RecordedArrival>,
    /// The `run` log span every step enters.
    span: tracing::Span,
    next_job_id: u64,
    paused: bool,
    trace: Option<TraceWriter>,
    reviews: Option<ReviewQueue>,
    summaries: Vec<report::ClassStats>,
    counters: Counters,
    /// Policy faults per plugin, for the report.
    fault_tally: faults::FaultTally,
    records: Vec<JobRecord>,
    /// Per-job records without candidate lists (`run --jobs-out`).
    brief_records: bool,
    // Scratch buffers reused by every decision.
    scratch: Vec<Candidate>,
    scratch_inputs: Vec<CandidateInput>,
    scratch_costs: Vec<CostTerms>,
    /// The decision's situation, for cost models that read it.
    situation: DecisionSituation,
    scratch_notices: Vec<PolicyNotice>,
    ready: Vec<(u32, u32)>,
    /// Set while `drain_ready` runs: a nested call (a node closed while
    /// routing or skipping another) leaves the list to the running loop, so
    /// a 20,000-node chain does not recurse 20,000 deep.
    draining: bool,
    wall_start: std::time::Instant,
    /// Tasks an admission plugin holds out of their queues.
    held: Vec<queue_policy::Held>,
    /// Ids of holds, for their expiry events.
    hold_seq: u64,
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

    /// What the run counted so far.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Where simulate mode's sampling diagnostics come from, in words
    /// (`None` in execute mode or without sampling nodes).
    pub fn mixing_sources(&self) -> Option<String> {
        (self.config.mode == Mode::Simulate)
            .then(|| plan::mixing_sources(&self.classes))
            .flatten()
    }

    /// The learning tables as they stand.
    pub fn tables(&self) -> &PerfTables {
        &self.tables
    }

    /// The hardware description the run uses.
    pub fn hardware(&self) -> &Hardware {
        &self.hw
    }

    /// Whether a `Pause` command holds the loop.
    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Jobs in the system (arrived, not yet terminal).
    pub fn jobs_in_flight(&self) -> usize {
        self.jobs.live()
    }

    /// Queue length per device (interactive + batch).
    pub fn queue_lengths(&self) -> PerDevice<usize> {
        PerDevice::from_fn(|d| self.devices[d].queued())
    }

    /// Processes one event.
    pub fn step(&mut self) -> Result<Step, EngineError> {
        if self.paused {
            return Ok(Step::Paused);
        }
        // A disabled span (the usual case) is neither cloned nor entered.
        let _run = (!self.span.is_disabled()).then(|| self.span.clone().entered());
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
            EventKind::HoldExpiry { hold } => self.hold_expired(hold)?,
        }
        self.rebalance()?;
        self.retry_holds()?;
        Ok(Step::Progressed)
    }

    /// Runs until every job is terminal (or the engine is paused).
    pub fn run(&mut self) -> Result<(), EngineError> {
        while self.step()? == Step::Progressed {}
        Ok(())
    }

    /// Writes buffered trace lines out (a live viewer tails the file).
    pub fn flush_trace(&mut self) -> Result<(), EngineError> {
        if let Some(t) = &mut self.trace {
            t.flush()?;
        }
        Ok(())
    }

    /// Runs events up to virtual time `t_ms`.
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

    /// Records jobs without their candidate lists (those stay in the
    /// trace): what `run --jobs-out` writes, at a fraction of the cost.
    /// Only has an effect with [`EngineConfig::record_jobs`].
    pub fn brief_records(mut self) -> Self {
        self.brief_records = true;
        self
    }

    /// Takes the records of the jobs ended so far, in the order they ended,
    /// so a long run can stream them out instead of holding them; the
    /// report then lists only the jobs that ended after the last drain.
    pub fn drain_records(&mut self) -> std::vec::Drain<'_, JobRecord> {
        self.records.drain(..)
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

    fn push(&mut self, t_ms: f64, kind: EventKind) {
        self.seq += 1;
        self.events.push(std::cmp::Reverse(Event {
            time: t_ms.max(0.0).to_bits(),
            seq: self.seq,
            kind,
        }));
    }

    fn task_done(&mut self, task_id: u32, generation: u32) -> Result<(), EngineError> {
        let Some(t) = self.tasks.get(task_id) else {
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
}
