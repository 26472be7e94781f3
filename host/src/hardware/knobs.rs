//! How work is weighed and guarded: cost weights, budgets, the native
//! policy's knobs and the gate's thresholds per risk class.

use serde::{Deserialize, Serialize};

use crate::device::Target;

/// Weights of `wL*Latency + wE*Energy + wA*Error + wR*RiskPenalty`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    /// Per millisecond of p50 latency (queue wait included).
    pub latency: f64,
    /// Per joule.
    pub energy: f64,
    /// Per unit of marginal error.
    pub error: f64,
    /// Per unit of risk penalty.
    pub risk: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            latency: 1.0,
            energy: 10.0,
            error: 100.0,
            risk: 10.0,
        }
    }
}

/// Budget enforcement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Budgets {
    /// A node is stopped after this multiple of its p95 latency share.
    pub timeout_factor: f64,
    /// Timeout for nodes of graphs without a latency target, milliseconds.
    pub default_timeout_ms: f64,
    /// A timed-out sampling node keeps its draws if it has at least this
    /// fraction of the requested samples (fewer samples instead of fallback).
    pub min_sample_fraction: f64,
    /// Early stopping: stop sampling once max R-hat is at most this...
    pub early_stop_rhat: f64,
    /// ...and min bulk ESS at least this. 0 disables early stopping.
    pub early_stop_ess: f64,
    /// Sweeps per slice when sampling runs in execute mode (preemption and
    /// early-stop checks happen between slices).
    pub slice_sweeps: u64,
    /// Queue occupancy (0..1) above which diagnostics drop to `basic`...
    pub degrade_basic_at: f64,
    /// ...and above which they drop to `none`.
    pub degrade_none_at: f64,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            timeout_factor: 4.0,
            default_timeout_ms: 60_000.0,
            min_sample_fraction: 0.25,
            early_stop_rhat: 1.01,
            early_stop_ess: 0.0,
            slice_sweeps: 256,
            degrade_basic_at: 0.5,
            degrade_none_at: 0.9,
        }
    }
}

/// When hardware stochasticity (TSU, GPU-simulated sampling) may serve a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StochasticityPolicy {
    #[default]
    Always,
    ReversibleOnly,
    Never,
}

/// The built-in policy's knobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySpec {
    pub hardware_stochasticity: StochasticityPolicy,
    /// Risk penalty of serving an irreversible job's sampling from the TSU.
    pub tsu_irreversible_penalty: f64,
    /// Risk penalty of serving it from GPU-simulated sampling.
    pub gpu_sim_irreversible_penalty: f64,
    /// The design note's default rule for sampling nodes: the first of
    /// these targets that meets the node's QoS with queue room and no risk
    /// penalty runs it; otherwise the cheapest feasible one. Empty: cost
    /// alone decides.
    pub sampling_order: Vec<Target>,
}

impl Default for PolicySpec {
    fn default() -> Self {
        PolicySpec {
            hardware_stochasticity: StochasticityPolicy::Always,
            tsu_irreversible_penalty: 1.0,
            gpu_sim_irreversible_penalty: 0.2,
            sampling_order: vec![Target::Tsu, Target::GpuSim, Target::CpuRef],
        }
    }
}

/// Gate thresholds for one risk class (all fields required when given).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateThresholds {
    /// Every effect of this class waits for a human.
    pub always_review: bool,
    pub min_ess: f64,
    pub max_rhat: f64,
    /// Fraction of draws satisfying the program's hard constraints.
    pub min_constraint_rate: f64,
    /// Backend, schedule and evidence hashes must be present.
    pub require_provenance: bool,
}

/// What a gate does when it cannot decide (a faulty plugin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailClosed {
    #[default]
    Deny,
    Review,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateSpec {
    pub reversible: GateThresholds,
    pub irreversible: GateThresholds,
    pub fail_closed: FailClosed,
}

impl Default for GateSpec {
    fn default() -> Self {
        GateSpec {
            reversible: GateThresholds {
                always_review: false,
                min_ess: 20.0,
                max_rhat: 1.1,
                min_constraint_rate: 0.99,
                require_provenance: false,
            },
            irreversible: GateThresholds {
                always_review: false,
                min_ess: 400.0,
                max_rhat: 1.01,
                min_constraint_rate: 1.0,
                require_provenance: true,
            },
            fail_closed: FailClosed::Deny,
        }
    }
}
