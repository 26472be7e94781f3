//! The plain data policies see: node and program summaries, estimates and
//! cost terms, eligibility verdicts, evidence and gate decisions. The same
//! shapes cross the WIT boundary to plugins.

use serde::{Deserialize, Serialize};

use crate::device::Target;
use crate::hardware::{Hardware, Weights};
use crate::model::graph::{NodeKind, Priority, Qos, Risk};

/// What a sampling node asks for, as eligibility rules see it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgramSummary {
    pub n_vars: usize,
    pub n_spins: usize,
    pub n_categorical: usize,
    pub n_factors: usize,
    pub n_constraints: usize,
    pub n_edges: usize,
    pub n_clamped: usize,
    /// Biases are rewritten from upstream outputs at run time (`bias_from`).
    pub runtime_conditioning: bool,
    pub chains: u64,
    pub samples: u64,
    pub sweeps_per_chain: u64,
    /// Free-variable updates of the whole run.
    pub updates: f64,
}

/// A node as policies see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSummary {
    pub kind: NodeKind,
    /// Program class: the key of the performance tables (`sample:ising:2^10`).
    pub class: String,
    /// Floating-point work (batch included), for tensor and NN nodes.
    pub flops: f64,
    /// Bytes moved in and out, for tensor and NN nodes.
    pub bytes: f64,
    pub program: Option<ProgramSummary>,
}

/// A candidate's estimated figures before costing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Queue wait plus median service time.
    pub latency_p50_ms: f64,
    /// Queue wait plus 95th-percentile service time.
    pub latency_p95_ms: f64,
    pub queue_wait_ms: f64,
    pub energy_j: f64,
    /// Expected largest marginal error (calibration bias + Monte Carlo error).
    pub error: f64,
}

/// One candidate handed to the cost model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CandidateInput {
    pub target: Target,
    pub estimate: Estimate,
}

/// A candidate's cost, term by term (weights applied), plus the raw risk
/// penalty the policy assigned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CostTerms {
    pub latency: f64,
    pub energy: f64,
    pub error: f64,
    pub risk: f64,
    pub risk_penalty: f64,
    pub total: f64,
}

/// Everything a cost model is told about one decision.
#[derive(Debug, Clone, Copy)]
pub struct DecisionContext<'a> {
    pub node: &'a NodeSummary,
    pub qos: &'a Qos,
    pub weights: &'a Weights,
}

/// Why a candidate cannot serve a node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Ineligible {
    /// The hardware description has no such device.
    NotPresent,
    /// This build has no driver for the device yet.
    NotBuilt {
        detail: String,
    },
    /// The device is offline (fault injection, availability window, operator).
    Offline,
    /// The target does not run this kind of node.
    UnsupportedNodeKind {
        kind: NodeKind,
    },
    UnsupportedVariables {
        detail: String,
    },
    UnsupportedFactors {
        detail: String,
    },
    UnsupportedConstraints {
        detail: String,
    },
    ExceedsLimits {
        what: String,
        limit: f64,
        requested: f64,
    },
    ScheduleOutOfRange {
        detail: String,
    },
    ConditioningNotCompilable {
        detail: String,
    },
    PolicyForbids {
        detail: String,
    },
    /// The target failed this node earlier (fallback does not retry it).
    Failed {
        detail: String,
    },
    /// The program does not fit the device (cells, couplings, colours, placement).
    Capacity {
        detail: String,
    },
    /// Quantised weights or biases would saturate or lose too much precision.
    Precision {
        detail: String,
    },
}

impl std::fmt::Display for Ineligible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ineligible::NotPresent => write!(f, "not present in the hardware description"),
            Ineligible::NotBuilt { detail } => write!(f, "not available in this build: {detail}"),
            Ineligible::Offline => write!(f, "offline"),
            Ineligible::UnsupportedNodeKind { kind } => {
                write!(f, "does not run {} nodes", kind.name())
            }
            Ineligible::UnsupportedVariables { detail }
            | Ineligible::UnsupportedFactors { detail }
            | Ineligible::UnsupportedConstraints { detail }
            | Ineligible::ScheduleOutOfRange { detail }
            | Ineligible::ConditioningNotCompilable { detail }
            | Ineligible::PolicyForbids { detail }
            | Ineligible::Failed { detail }
            | Ineligible::Capacity { detail }
            | Ineligible::Precision { detail } => f.write_str(detail),
            Ineligible::ExceedsLimits {
                what,
                limit,
                requested,
            } => write!(f, "{what}: {requested} exceeds the limit {limit}"),
        }
    }
}

/// A backend's limits, as eligibility rules see them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendLimits {
    pub max_vars: usize,
    pub max_sweeps: u64,
    pub runtime_bias: bool,
}

impl BackendLimits {
    pub fn of(target: Target, hw: &Hardware) -> Self {
        match target {
            Target::Tsu => BackendLimits {
                max_vars: hw.tsu.max_vars,
                max_sweeps: hw.tsu.max_sweeps,
                runtime_bias: hw.tsu.runtime_bias,
            },
            _ => BackendLimits {
                max_vars: usize::MAX,
                max_sweeps: u64::MAX,
                runtime_bias: true,
            },
        }
    }
}

/// Evidence behind an effect: one upstream node's provenance and confidence.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub node: String,
    pub kind: Option<NodeKind>,
    pub backend: Option<String>,
    pub schedule: Option<crate::model::Schedule>,
    pub program_hash: Option<String>,
    /// How many inputs the node read.
    pub inputs: usize,
    /// Hashes of the node's inputs, in input order.
    pub input_hashes: Vec<String>,
    pub output_hash: Option<String>,
    pub max_rhat: Option<f64>,
    pub min_ess_bulk: Option<f64>,
    /// Fraction of draws that satisfy the program's hard constraints.
    pub constraint_rate: Option<f64>,
    pub diagnostics_level: Option<DiagnosticsLevel>,
}

/// How much diagnostic work a sampling node did (degraded under load).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosticsLevel {
    None,
    Basic,
    Full,
}

/// An effect asking to be applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EffectRequest {
    pub node: String,
    pub action: String,
    pub risk: Risk,
    pub priority: Priority,
    pub evidence: Vec<Evidence>,
    /// Reasons raised upstream that demand a human (e.g. non-convergence).
    pub escalations: Vec<String>,
}

/// A gate's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", content = "reasons", rename_all = "snake_case")]
pub enum GateDecision {
    Allow,
    RequireReview(Vec<String>),
    Deny(Vec<String>),
}
