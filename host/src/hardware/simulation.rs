//! What simulate mode and the learning loop assume: service-time
//! distributions, drift detection, performance priors and injected faults.

use serde::{Deserialize, Serialize};

use crate::device::Device;

/// How simulate mode draws a duration around its mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceDistribution {
    Deterministic,
    #[default]
    Exponential,
    /// Lognormal with the coefficient of variation `cv`.
    Lognormal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulateSpec {
    pub service: ServiceDistribution,
    pub cv: f64,
    /// Simulated gate decisions that would hold an effect go into the
    /// review queue too (off: they are only recorded as would-be holds).
    pub hold_reviews: bool,
}

impl Default for SimulateSpec {
    fn default() -> Self {
        SimulateSpec {
            service: ServiceDistribution::Exponential,
            cv: 0.5,
            hold_reviews: false,
        }
    }
}

/// Page–Hinkley drift detection on relative residuals `actual/predicted - 1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriftSpec {
    /// Tolerated drift per observation.
    pub delta: f64,
    /// Alarm threshold on the cumulative statistic.
    pub threshold: f64,
    /// Observations before the detector arms.
    pub min_observations: u64,
}

impl Default for DriftSpec {
    fn default() -> Self {
        DriftSpec {
            delta: 0.5,
            threshold: 40.0,
            min_observations: 50,
        }
    }
}

/// A measured or assumed performance figure for a (backend, class) pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerfPrior {
    /// Routing target name: cpu, gpu, tsu, gpu-sim, cpu-ref.
    pub target: String,
    /// Program class, or a prefix of one (`control` matches every control node).
    pub class: String,
    pub mean_ms: f64,
    #[serde(default)]
    pub energy_j: Option<f64>,
}

/// A service-time model measured on this machine by `thermoroute
/// calibrate`: a node of `family` on `target` takes `overhead_ms +
/// ms_per_unit × units`, where units are spin updates for sampling nodes
/// and flops otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFit {
    /// Routing target name: cpu, gpu, gpu-sim, cpu-ref.
    pub target: String,
    /// A prefix of the node classes it covers (`sample:ising`, `tensor:matmul`).
    pub family: String,
    /// Fixed cost per node, milliseconds.
    pub overhead_ms: f64,
    /// Cost per spin update or flop, milliseconds.
    pub ms_per_unit: f64,
    /// Spread of the measurements around the fit (standard deviation over
    /// mean).
    pub residual_cv: f64,
    /// Measurements behind the fit.
    pub points: usize,
}

/// How one backend mixes on one program, at the program's own schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MixingFit {
    /// Routing target: tsu, gpu-sim, cpu-ref (`*`: any sampling target).
    pub target: String,
    /// `sha256:` of the canonical program.
    pub program_hash: String,
    /// Smallest bulk ESS over variables, per draw kept (all chains).
    pub ess_per_draw: f64,
    /// Spread of that ESS over runs (standard deviation over mean).
    pub ess_cv: f64,
    /// Mean of (largest R-hat − 1) over runs, at the full schedule.
    pub rhat_excess: f64,
    /// Spread of that excess over runs (standard deviation over mean).
    pub rhat_cv: f64,
    /// Fraction of draws satisfying every hard constraint.
    pub constraint_rate: f64,
    /// Mean largest |marginal − exact| where exact enumeration is possible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error: Option<f64>,
    /// Runs behind the fit.
    pub runs: usize,
    /// `calibrated` (measured by `calibrate`) or `pilot` (simulate mode's
    /// own CPU-reference runs).
    pub source: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The device is unavailable during the window.
    Offline,
    /// Work on the device takes `factor` times longer during the window.
    Slowdown,
    /// Work started on the device during the window fails.
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub device: Device,
    pub kind: FaultKind,
    #[serde(default)]
    pub from_ms: f64,
    /// End of the window (absent: until the end of the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ms: Option<f64>,
    #[serde(default = "one")]
    pub factor: f64,
}

fn one() -> f64 {
    1.0
}

impl Fault {
    pub fn active(&self, t_ms: f64) -> bool {
        self.from_ms <= t_ms && self.to_ms.is_none_or(|end| t_ms < end)
    }
}
