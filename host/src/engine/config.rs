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
