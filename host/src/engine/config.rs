//! What a run is configured with, how it is steered while it runs, and the
//! errors of the engine boundary.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::device::Device;
use crate::hardware::Weights;
use crate::model::Graph;
use crate::policy::Policy;
use crate::trace::TraceError;

/// Where durations come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Run every node on its backend; measured time advances the clock.
    Execute,
    /// Draw durations from the performance model; compute nothing.
    Simulate,
}

/// What advances the virtual clock in execute mode.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    /// The measured duration of each node (wall time, or the device's own
    /// time where a backend measures it): faithful, not repeatable.
    #[default]
    Measured,
    /// The service model (`[[perf]]` > calibrated fit > built-in, the TSU's
    /// chip model): every node still computes, but time, routing,
    /// admission and results are identical run to run with one seed.
    Modelled,
}

/// A workload graph and the jobs made from it.
#[derive(Debug, Clone)]
pub struct JobClass {
    /// The class name (reports, traces, `--mix` order).
    pub name: String,
    /// The workload graph every job of the class runs.
    pub graph: Graph,
}

/// One arrival of a recorded arrival list.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RecordedArrival {
    /// Arrival time, milliseconds of virtual time.
    pub t_ms: f64,
    /// Index into the job classes (default 0).
    #[serde(default)]
    pub class: usize,
}

/// How jobs arrive.
#[derive(Debug, Clone, PartialEq)]
pub enum Arrivals {
    /// `jobs` jobs, all at time 0.
    AtOnce {
        /// How many.
        jobs: u64,
    },
    /// `jobs` jobs, Poisson arrivals at `rate_per_s` (virtual time).
    Poisson {
        /// How many.
        jobs: u64,
        /// Mean arrivals per second.
        rate_per_s: f64,
    },
    /// Exactly these arrivals.
    Recorded(Vec<RecordedArrival>),
}

/// Everything a run is configured with besides the policy.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Where durations come from.
    pub mode: Mode,
    /// Seed of arrivals, class choice, service draws and sample seeds.
    pub seed: u64,
    /// How jobs arrive.
    pub arrivals: Arrivals,
    /// Relative frequency of each class for counted and Poisson arrivals
    /// (empty: equal).
    pub mix: Vec<f64>,
    /// Where the JSON Lines trace goes (none: no trace).
    pub trace: Option<PathBuf>,
    /// Bound on the trace's size on disk: it rotates into parts and keeps
    /// the newest (`trace::TraceWriter`). `None`: one file, unbounded.
    pub trace_max: Option<u64>,
    /// Keep a per-job record (for `--json`) instead of aggregates only.
    pub record_jobs: bool,
    /// Where held effects are persisted (execute mode).
    pub reviews: Option<PathBuf>,
    /// Sampler threads in execute mode.
    pub threads: Option<usize>,
    /// What advances the clock in execute mode.
    pub clock: Clock,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            mode: Mode::Execute,
            seed: 0,
            arrivals: Arrivals::AtOnce { jobs: 1 },
            mix: Vec::new(),
            trace: None,
            trace_max: None,
            record_jobs: true,
            reviews: None,
            threads: None,
            clock: Clock::Measured,
        }
    }
}

/// Steering from outside while the engine runs (the TUI drives these).
#[derive(Debug)]
pub enum Command {
    /// Stop processing events until resumed.
    Pause,
    /// Continue processing events.
    Resume,
    /// New Poisson arrival rate (jobs per second of virtual time).
    SetRate {
        /// Jobs per second.
        per_s: f64,
    },
    /// Take a device offline (its queued work falls back) or bring it back.
    SetOnline {
        /// The device.
        device: Device,
        /// Whether it takes work.
        online: bool,
    },
    /// New cost weights for later decisions.
    SetWeights(Weights),
    /// Replace the cost model, eligibility rules and gate.
    SwapPolicy(Policy),
}

impl Command {
    pub(super) fn describe(&self) -> serde_json::Value {
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
    /// No workload graph was given.
    NoClasses,
    #[error(
        "--mix has {got} weight(s) for {classes} class(es); weights must be finite, >= 0, not all 0"
    )]
    /// `--mix` weights that do not fit the classes.
    BadMix {
        /// Weights given.
        got: usize,
        /// Classes there are.
        classes: usize,
    },
    #[error("recorded arrival {index}: {reason}")]
    /// A recorded arrival that cannot happen.
    BadArrival {
        /// Its position in the list.
        index: usize,
        /// Why.
        reason: String,
    },
    #[error(
        "{jobs} jobs is more than the limit of {limit} for this run ({held} arriving at once, recorded or with --json; {streamed} with --rate)",
        held = crate::model::limits::MAX_JOBS,
        streamed = crate::model::limits::MAX_STREAMED_JOBS
    )]
    /// More jobs than [`MAX_JOBS`](crate::model::limits::MAX_JOBS) held or
    /// recorded, or [`MAX_STREAMED_JOBS`](crate::model::limits::MAX_STREAMED_JOBS) streamed.
    TooManyJobs {
        /// Jobs asked for.
        jobs: u64,
        /// The limit.
        limit: u64,
    },
    #[error("arrival rate must be a positive number, got {0}")]
    /// A Poisson rate that is not a positive number.
    BadRate(f64),
    #[error(transparent)]
    /// The trace could not be written.
    Trace(#[from] TraceError),
    #[error(transparent)]
    /// The review queue could not be opened or written.
    Review(#[from] crate::review::ReviewError),
    #[error(transparent)]
    /// The TSU driver could not be built for the configured chip.
    Tsu(#[from] crate::backends::tsu::TsuError),
}

/// What one call to [`Engine::step`](super::Engine::step) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// One event was processed.
    Progressed,
    /// The engine is paused; nothing happened.
    Paused,
    /// No events remain: every job is in a terminal state.
    Finished,
}
