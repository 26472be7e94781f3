//! The plain data policies see: node and program summaries, estimates and
//! cost terms, eligibility verdicts, evidence and gate decisions. The same
//! shapes cross the WIT boundary to plugins.

use serde::{Deserialize, Serialize};

use crate::device::Target;
use crate::hardware::{Hardware, Weights};
use crate::model::graph::{NodeKind, Priority, Qos, Risk};

use super::situation::{DecisionSituation, JobContext};

/// What a sampling node asks for, as eligibility rules see it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProgramSummary {
    /// Variables in all.
    pub n_vars: usize,
    /// Spin variables.
    pub n_spins: usize,
    /// Categorical variables.
    pub n_categorical: usize,
    /// General factor tables.
    pub n_factors: usize,
    /// Hard constraints.
    pub n_constraints: usize,
    /// Pairwise couplings.
    pub n_edges: usize,
    /// Clamped variables.
    pub n_clamped: usize,
    /// Biases are rewritten from upstream outputs at run time (`bias_from`).
    pub runtime_conditioning: bool,
    /// Chains.
    pub chains: u64,
    /// Kept samples per chain.
    pub samples: u64,
    /// Sweeps per chain, warmup included.
    pub sweeps_per_chain: u64,
    /// Free-variable updates of the whole run.
    pub updates: f64,
}

/// A node as policies see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSummary {
    /// The node kind.
    pub kind: NodeKind,
    /// Program class: the key of the performance tables (`sample:ising:2^10`).
    pub class: String,
    /// Floating-point work (batch included), for tensor and NN nodes.
    pub flops: f64,
    /// Bytes moved in and out, for tensor and NN nodes.
    pub bytes: f64,
    /// The sampling program, for sample nodes.
    pub program: Option<ProgramSummary>,
}

/// A candidate's estimated figures before costing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    /// Queue wait plus median service time.
    pub latency_p50_ms: f64,
    /// Queue wait plus 95th-percentile service time.
    pub latency_p95_ms: f64,
    /// Expected wait in the device queue, milliseconds.
    pub queue_wait_ms: f64,
    /// Expected energy, joules.
    pub energy_j: f64,
    /// Expected largest marginal error (calibration bias + Monte Carlo error).
    pub error: f64,
}

/// One candidate handed to the cost model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CandidateInput {
    /// The candidate target.
    pub target: Target,
    /// Its estimated figures.
    pub estimate: Estimate,
}

/// A candidate's cost, term by term (weights applied), plus the raw risk
/// penalty the policy assigned.
///
/// Validated costs are finite; a trace written before terms were checked
/// may hold `null` (JSON's spelling of a non-finite number), which reads
/// back as NaN.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CostTerms {
    /// Weighted latency term.
    #[serde(deserialize_with = "number_or_nan")]
    pub latency: f64,
    /// Weighted energy term.
    #[serde(deserialize_with = "number_or_nan")]
    pub energy: f64,
    /// Weighted error term.
    #[serde(deserialize_with = "number_or_nan")]
    pub error: f64,
    /// Weighted risk term.
    #[serde(deserialize_with = "number_or_nan")]
    pub risk: f64,
    /// The unweighted risk penalty the policy assigned.
    #[serde(deserialize_with = "number_or_nan")]
    pub risk_penalty: f64,
    /// The sum of the weighted terms.
    #[serde(deserialize_with = "number_or_nan")]
    pub total: f64,
}

/// A number, or `null` read as NaN.
fn number_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Everything a cost model is told about one decision.
#[derive(Debug, Clone, Copy)]
pub struct DecisionContext<'a> {
    /// The node being routed.
    pub node: &'a NodeSummary,
    /// Its job's QoS.
    pub qos: &'a Qos,
    /// The cost weights in force.
    pub weights: &'a Weights,
    /// Every eligible candidate, in the order costs are returned.
    pub candidates: &'a [CandidateInput],
    /// The job, the node's budget share and the devices, where the caller
    /// knows them (the engine fills it for models that
    /// [want it](super::CostModel::wants_situation)).
    pub situation: Option<&'a DecisionSituation>,
}

impl<'a> DecisionContext<'a> {
    /// A decision with no situation (conformance cases, benchmarks).
    pub fn new(
        node: &'a NodeSummary,
        qos: &'a Qos,
        weights: &'a Weights,
        candidates: &'a [CandidateInput],
    ) -> Self {
        DecisionContext {
            node,
            qos,
            weights,
            candidates,
            situation: None,
        }
    }
}

/// One eligibility question: may `target` run `node` of a job with `qos`?
#[derive(Debug, Clone, Copy)]
pub struct EligibilityQuery<'a> {
    /// The node.
    pub node: &'a NodeSummary,
    /// Its job's QoS.
    pub qos: &'a Qos,
    /// The target asked about.
    pub target: Target,
    /// The target's limits on this hardware.
    pub limits: &'a BackendLimits,
    /// The job (class) asked for, where the caller knows it: eligibility is
    /// asked once per job class, so its id and times are 0.
    pub job: Option<&'a JobContext>,
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
        /// Why.
        detail: String,
    },
    /// The device is offline (fault injection, availability window, operator).
    Offline,
    /// The target does not run this kind of node.
    UnsupportedNodeKind {
        /// The node kind.
        kind: NodeKind,
    },
    /// The program has variables the target cannot sample.
    UnsupportedVariables {
        /// Which, and why.
        detail: String,
    },
    /// The program has factors the target cannot run.
    UnsupportedFactors {
        /// Which, and why.
        detail: String,
    },
    /// The program has constraints the target cannot run.
    UnsupportedConstraints {
        /// Which, and why.
        detail: String,
    },
    /// A size beyond the target's limits.
    ExceedsLimits {
        /// What is too large.
        what: String,
        /// The limit.
        limit: f64,
        /// What the node asks for.
        requested: f64,
    },
    /// The schedule is outside what the target runs.
    ScheduleOutOfRange {
        /// Why.
        detail: String,
    },
    /// Runtime conditioning cannot be compiled for the target.
    ConditioningNotCompilable {
        /// Why.
        detail: String,
    },
    /// The policy forbids the target here.
    PolicyForbids {
        /// Why.
        detail: String,
    },
    /// The target failed this node earlier (fallback does not retry it).
    Failed {
        /// Why.
        detail: String,
    },
    /// The program does not fit the device (cells, couplings, colours, placement).
    Capacity {
        /// Why.
        detail: String,
    },
    /// Quantised weights or biases would saturate or lose too much precision.
    Precision {
        /// Why.
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
    /// Most variables the target samples.
    pub max_vars: usize,
    /// Most sweeps per chain.
    pub max_sweeps: u64,
    /// Whether biases can be rewritten at run time (conditioning).
    pub runtime_bias: bool,
}

impl BackendLimits {
    /// The limits of `target` on `hw`.
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
    /// The upstream node.
    pub node: String,
    /// Its kind.
    pub kind: Option<NodeKind>,
    /// The target it ran on.
    pub backend: Option<String>,
    /// Its sampling schedule.
    pub schedule: Option<crate::model::Schedule>,
    /// Hash of its canonical program.
    pub program_hash: Option<String>,
    /// How many inputs the node read.
    pub inputs: usize,
    /// Hashes of the node's inputs, in input order.
    pub input_hashes: Vec<String>,
    /// Hash of its output (absent in simulate mode).
    pub output_hash: Option<String>,
    /// Largest R-hat of its draws.
    pub max_rhat: Option<f64>,
    /// Smallest bulk ESS of its draws.
    pub min_ess_bulk: Option<f64>,
    /// Fraction of draws that satisfy the program's hard constraints.
    pub constraint_rate: Option<f64>,
    /// How much diagnostics it ran.
    pub diagnostics_level: Option<DiagnosticsLevel>,
    /// Simulate mode made it up from the mixing model: the figures are what
    /// execution is expected to report, the output hash a stand-in naming
    /// the output it would have hashed. Never applies an effect.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub simulated: bool,
}

/// How much diagnostic work a sampling node did (degraded under load).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiagnosticsLevel {
    /// No diagnostics (queues nearly full).
    None,
    /// R-hat and ESS on at most 16 variables.
    Basic,
    /// R-hat and ESS on every variable.
    Full,
}

/// An effect asking to be applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EffectRequest {
    /// The effect node.
    pub node: String,
    /// What it does, in words.
    pub action: String,
    /// Whether it can be undone.
    pub risk: Risk,
    /// The job's priority.
    pub priority: Priority,
    /// Evidence of every upstream node.
    pub evidence: Vec<Evidence>,
    /// Reasons raised upstream that demand a human (e.g. non-convergence).
    pub escalations: Vec<String>,
}

/// A gate's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "decision", content = "reasons", rename_all = "snake_case")]
pub enum GateDecision {
    /// Apply the effect.
    Allow,
    /// Hold it for a human, with the reasons.
    RequireReview(Vec<String>),
    /// Drop it, with the reasons.
    Deny(Vec<String>),
}
