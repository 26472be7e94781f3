//! The policy seams: cost model, eligibility rules and policy gate, with the
//! native defaults that implement the design note's rules.
//!
//! The engine asks these three traits every policy question it has; the
//! plugin runtime implements them with WebAssembly components. Policies see
//! plain summaries (no graph internals), so the same inputs cross the WIT
//! boundary unchanged.

use serde::{Deserialize, Serialize};

use crate::hardware::{Device, GateSpec, Hardware, PolicySpec, StochasticityPolicy, Weights};
use crate::model::graph::{NodeKind, Priority, Qos, Risk};

/// Where a node can run. Sampling nodes have their own targets so the trace
/// says which way of sampling was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Target {
    #[serde(rename = "cpu")]
    Cpu,
    #[serde(rename = "gpu")]
    Gpu,
    #[serde(rename = "tsu")]
    Tsu,
    /// Gibbs sampling simulated on the GPU.
    #[serde(rename = "gpu-sim")]
    GpuSim,
    /// The CPU reference sampler.
    #[serde(rename = "cpu-ref")]
    CpuRef,
}

impl Target {
    pub const ALL: [Target; 5] = [
        Target::Cpu,
        Target::Gpu,
        Target::Tsu,
        Target::GpuSim,
        Target::CpuRef,
    ];

    /// Candidates for a node kind, in the design note's order of preference.
    pub fn candidates(kind: NodeKind) -> &'static [Target] {
        match kind {
            NodeKind::Sample => &[Target::Tsu, Target::GpuSim, Target::CpuRef],
            NodeKind::Tensor | NodeKind::Nn => &[Target::Gpu, Target::Cpu],
            NodeKind::Control | NodeKind::Effect => &[Target::Cpu, Target::Gpu],
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Target::Cpu => "cpu",
            Target::Gpu => "gpu",
            Target::Tsu => "tsu",
            Target::GpuSim => "gpu-sim",
            Target::CpuRef => "cpu-ref",
        }
    }

    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn device(self) -> Device {
        match self {
            Target::Cpu | Target::CpuRef => Device::Cpu,
            Target::Gpu | Target::GpuSim => Device::Gpu,
            Target::Tsu => Device::Tsu,
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether draws from this target come from physical or simulated noise
    /// the CPU reference cannot reproduce bit for bit.
    pub fn hardware_stochastic(self) -> bool {
        matches!(self, Target::Tsu | Target::GpuSim)
    }

    /// Whether running work can be suspended and resumed with identical
    /// results (sampling at sweep boundaries).
    pub fn preemptible(self) -> bool {
        matches!(self, Target::Tsu | Target::CpuRef)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

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

/// A policy that failed to answer (a trapping plugin, an invalid result).
/// Never fatal: the engine falls back to the native default and records it.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[error("policy {policy} failed: {reason}")]
pub struct PolicyFault {
    pub policy: String,
    pub reason: String,
    /// `out_of_fuel`, `memory_limit`, `stack_overflow`, `trap`,
    /// `guest_error`, `invalid_output`, `instantiate`.
    #[serde(default)]
    pub kind: String,
}

/// A change in the version that serves a policy role (a plugin hot reload,
/// or a broken new version refused), for the trace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyNotice {
    pub role: String,
    pub policy: String,
    /// The version serving after the notice (`name@hash`).
    pub version: String,
    /// Whether the new version was taken.
    pub ok: bool,
    pub detail: String,
}

/// Checks a cost model's answer: one finite, non-negative total per candidate.
pub fn validate_costs(costs: &[CostTerms], expected: usize) -> Result<(), String> {
    if costs.len() != expected {
        return Err(format!(
            "returned {} costs for {expected} candidates",
            costs.len()
        ));
    }
    for (i, c) in costs.iter().enumerate() {
        if !(c.total.is_finite() && c.total >= 0.0) {
            return Err(format!("cost {i} is {} (must be finite and >= 0)", c.total));
        }
    }
    Ok(())
}

/// Scores every candidate of one decision in one call.
pub trait CostModel: Send {
    fn name(&self) -> &str;
    /// The serving version (`name@hash`) of a plugin; `None` for native code.
    fn version(&self) -> Option<String> {
        None
    }
    /// Moves pending hot-reload notices into `out`.
    fn take_notices(&self, _out: &mut Vec<PolicyNotice>) {}
    /// Writes one [`CostTerms`] per candidate into `out` (cleared first).
    fn score(
        &self,
        ctx: &DecisionContext<'_>,
        candidates: &[CandidateInput],
        out: &mut Vec<CostTerms>,
    ) -> Result<(), PolicyFault>;
}

/// Decides whether a target may run a node.
pub trait Eligibility: Send {
    fn name(&self) -> &str;
    /// The serving version (`name@hash`) of a plugin; `None` for native code.
    fn version(&self) -> Option<String> {
        None
    }
    /// Moves pending hot-reload notices into `out`.
    fn take_notices(&self, _out: &mut Vec<PolicyNotice>) {}
    /// Empty: eligible; otherwise every reason it is not.
    fn verdict(
        &self,
        node: &NodeSummary,
        qos: &Qos,
        target: Target,
        limits: &BackendLimits,
    ) -> Result<Vec<Ineligible>, PolicyFault>;
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

/// Decides whether an effect may be applied.
pub trait Gate: Send {
    fn name(&self) -> &str;
    /// The serving version (`name@hash`) of a plugin; `None` for native code.
    fn version(&self) -> Option<String> {
        None
    }
    /// Moves pending hot-reload notices into `out`.
    fn take_notices(&self, _out: &mut Vec<PolicyNotice>) {}
    fn decide(&self, request: &EffectRequest) -> Result<GateDecision, PolicyFault>;
}

/// The three policy roles the engine consults.
pub struct Policy {
    pub cost: Box<dyn CostModel>,
    pub eligibility: Box<dyn Eligibility>,
    pub gate: Box<dyn Gate>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl Policy {
    /// The design note's rules with this hardware's knobs.
    pub fn native(hw: &Hardware) -> Self {
        Policy {
            cost: Box::new(NativeCost {
                policy: hw.policy.clone(),
            }),
            eligibility: Box::new(NativeEligibility {
                policy: hw.policy.clone(),
            }),
            gate: Box::new(NativeGate {
                spec: hw.gate.clone(),
            }),
        }
    }

    /// `cost=…, eligibility=…, gate=…`, with plugin versions (`name@hash`).
    pub fn describe(&self) -> String {
        let part = |name: &str, version: Option<String>| match version {
            Some(v) => format!("{name} ({v})"),
            None => name.to_string(),
        };
        format!(
            "cost={}, eligibility={}, gate={}",
            part(self.cost.name(), self.cost.version()),
            part(self.eligibility.name(), self.eligibility.version()),
            part(self.gate.name(), self.gate.version())
        )
    }
}

/// `wL*Latency + wE*Energy + wA*Error + wR*RiskPenalty`; the risk penalty of
/// hardware stochasticity applies to irreversible jobs only.
#[derive(Debug, Clone)]
pub struct NativeCost {
    pub policy: PolicySpec,
}

impl NativeCost {
    pub fn risk_penalty(&self, qos: &Qos, target: Target) -> f64 {
        match (qos.risk, target) {
            (Risk::Irreversible, Target::Tsu) => self.policy.tsu_irreversible_penalty,
            (Risk::Irreversible, Target::GpuSim) => self.policy.gpu_sim_irreversible_penalty,
            _ => 0.0,
        }
    }
}

impl CostModel for NativeCost {
    fn name(&self) -> &str {
        "native"
    }

    fn score(
        &self,
        ctx: &DecisionContext<'_>,
        candidates: &[CandidateInput],
        out: &mut Vec<CostTerms>,
    ) -> Result<(), PolicyFault> {
        out.clear();
        let w = ctx.weights;
        out.extend(candidates.iter().map(|c| {
            let risk_penalty = self.risk_penalty(ctx.qos, c.target);
            let latency = w.latency * c.estimate.latency_p50_ms;
            let energy = w.energy * c.estimate.energy_j;
            let error = w.error * c.estimate.error;
            let risk = w.risk * risk_penalty;
            CostTerms {
                latency,
                energy,
                error,
                risk,
                risk_penalty,
                total: latency + energy + error + risk,
            }
        }));
        Ok(())
    }
}

/// The design note's TSU eligibility rules: supported factor types and
/// constraints, schedule within limits, compilable conditioning, and policy
/// permission for hardware stochasticity.
#[derive(Debug, Clone)]
pub struct NativeEligibility {
    pub policy: PolicySpec,
}

impl Eligibility for NativeEligibility {
    fn name(&self) -> &str {
        "native"
    }

    fn verdict(
        &self,
        node: &NodeSummary,
        qos: &Qos,
        target: Target,
        limits: &BackendLimits,
    ) -> Result<Vec<Ineligible>, PolicyFault> {
        let mut reasons = Vec::new();
        let sampling_target = matches!(target, Target::Tsu | Target::GpuSim | Target::CpuRef);
        let supports_kind = match node.kind {
            NodeKind::Sample => sampling_target,
            NodeKind::Tensor | NodeKind::Nn => matches!(target, Target::Cpu | Target::Gpu),
            // Branchy control and effect bookkeeping stay on the CPU.
            NodeKind::Control | NodeKind::Effect => target == Target::Cpu,
        };
        if !supports_kind {
            reasons.push(Ineligible::UnsupportedNodeKind { kind: node.kind });
            return Ok(reasons);
        }
        let Some(p) = &node.program else {
            return Ok(reasons);
        };
        if target.hardware_stochastic() {
            let forbidden = match self.policy.hardware_stochasticity {
                StochasticityPolicy::Always => false,
                StochasticityPolicy::ReversibleOnly => qos.risk == Risk::Irreversible,
                StochasticityPolicy::Never => true,
            };
            if forbidden {
                reasons.push(Ineligible::PolicyForbids {
                    detail: format!(
                        "policy forbids hardware stochasticity for {} stages",
                        match qos.risk {
                            Risk::Reversible => "reversible",
                            Risk::Irreversible => "irreversible",
                        }
                    ),
                });
            }
        }
        // Only the TSU has structural limits: the GPU sampler runs constrained
        // blocks, categoricals and pairwise factors.
        if target == Target::Tsu {
            if p.n_categorical > 0 {
                reasons.push(Ineligible::UnsupportedVariables {
                    detail: format!(
                        "{} categorical variable(s): p-bit cells hold spins only",
                        p.n_categorical
                    ),
                });
            }
            if p.n_factors > 0 {
                reasons.push(Ineligible::UnsupportedFactors {
                    detail: format!(
                        "{} general factor table(s): the TSU runs pairwise couplings only",
                        p.n_factors
                    ),
                });
            }
            if p.n_constraints > 0 {
                reasons.push(Ineligible::UnsupportedConstraints {
                    detail: format!(
                        "{} hard constraint(s): the TSU has no constrained-block update",
                        p.n_constraints
                    ),
                });
            }
            if p.n_vars > limits.max_vars {
                reasons.push(Ineligible::ExceedsLimits {
                    what: "variables".into(),
                    limit: limits.max_vars as f64,
                    requested: p.n_vars as f64,
                });
            }
            if p.sweeps_per_chain > limits.max_sweeps {
                reasons.push(Ineligible::ScheduleOutOfRange {
                    detail: format!(
                        "{} sweeps per chain exceed the device limit {}",
                        p.sweeps_per_chain, limits.max_sweeps
                    ),
                });
            }
            if p.runtime_conditioning && !limits.runtime_bias {
                reasons.push(Ineligible::ConditioningNotCompilable {
                    detail: "biases come from upstream outputs, and this TSU cannot rewrite biases between runs".into(),
                });
            }
        }
        Ok(reasons)
    }
}

/// Thresholds by risk class, confidence checks and provenance requirements.
#[derive(Debug, Clone)]
pub struct NativeGate {
    pub spec: GateSpec,
}

impl Gate for NativeGate {
    fn name(&self) -> &str {
        "native"
    }

    fn decide(&self, request: &EffectRequest) -> Result<GateDecision, PolicyFault> {
        let t = match request.risk {
            Risk::Reversible => &self.spec.reversible,
            Risk::Irreversible => &self.spec.irreversible,
        };
        if t.require_provenance {
            let mut missing = Vec::new();
            if request.evidence.is_empty() {
                missing.push("the effect has no evidence".to_string());
            }
            for e in &request.evidence {
                let mut lacks = Vec::new();
                if e.backend.is_none() {
                    lacks.push("backend");
                }
                if e.output_hash.is_none() {
                    lacks.push("output hash");
                }
                if e.input_hashes.len() < e.inputs {
                    lacks.push("input hashes");
                }
                if e.kind == Some(NodeKind::Sample) {
                    if e.schedule.is_none() {
                        lacks.push("schedule");
                    }
                    if e.program_hash.is_none() {
                        lacks.push("program hash");
                    }
                }
                if !lacks.is_empty() {
                    missing.push(format!(
                        "missing provenance from {:?}: {}",
                        e.node,
                        lacks.join(", ")
                    ));
                }
            }
            if !missing.is_empty() {
                return Ok(GateDecision::Deny(missing));
            }
        }
        let mut review: Vec<String> = request.escalations.clone();
        if t.always_review {
            review.push(format!(
                "every {} effect needs approval",
                match request.risk {
                    Risk::Reversible => "reversible",
                    Risk::Irreversible => "irreversible",
                }
            ));
        }
        for e in request
            .evidence
            .iter()
            .filter(|e| e.kind == Some(NodeKind::Sample))
        {
            match e.min_ess_bulk {
                Some(ess) if ess >= t.min_ess => {}
                Some(ess) => review.push(format!(
                    "{:?}: min ESS {ess:.0} below {:.0}",
                    e.node, t.min_ess
                )),
                None if t.min_ess > 0.0 => review.push(format!(
                    "{:?}: ESS unknown (diagnostics {})",
                    e.node,
                    match e.diagnostics_level {
                        Some(DiagnosticsLevel::None) => "skipped under load",
                        _ => "undefined",
                    }
                )),
                None => {}
            }
            match e.max_rhat {
                Some(r) if r <= t.max_rhat => {}
                Some(r) => review.push(format!(
                    "{:?}: max R-hat {r:.3} above {:.3}",
                    e.node, t.max_rhat
                )),
                None => review.push(format!("{:?}: R-hat unknown", e.node)),
            }
            if let Some(rate) = e.constraint_rate
                && rate < t.min_constraint_rate
            {
                review.push(format!(
                    "{:?}: constraint satisfaction {rate:.3} below {:.3}",
                    e.node, t.min_constraint_rate
                ));
            }
        }
        Ok(if review.is_empty() {
            GateDecision::Allow
        } else {
            GateDecision::RequireReview(review)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_evidence() -> Evidence {
        Evidence {
            node: "s".into(),
            kind: Some(NodeKind::Sample),
            backend: Some("cpu-ref".into()),
            schedule: Some(crate::model::Schedule {
                warmup: 10,
                samples: 100,
                steps_per_sample: 1,
                chains: 4,
            }),
            program_hash: Some("sha256:00".into()),
            inputs: 1,
            input_hashes: vec!["sha256:22".into()],
            output_hash: Some("sha256:11".into()),
            max_rhat: Some(1.001),
            min_ess_bulk: Some(1000.0),
            constraint_rate: Some(1.0),
            diagnostics_level: Some(DiagnosticsLevel::Full),
        }
    }

    fn request(risk: Risk, evidence: Evidence) -> EffectRequest {
        EffectRequest {
            node: "act".into(),
            action: "block card".into(),
            risk,
            priority: Priority::Interactive,
            evidence: vec![evidence],
            escalations: vec![],
        }
    }

    #[test]
    fn gate_thresholds_by_risk_class() {
        let gate = NativeGate {
            spec: GateSpec::default(),
        };
        let good = sample_evidence();
        assert_eq!(
            gate.decide(&request(Risk::Irreversible, good.clone()))
                .unwrap(),
            GateDecision::Allow
        );
        let low_ess = Evidence {
            min_ess_bulk: Some(150.0),
            ..good.clone()
        };
        // 150 passes the reversible bar (20) and fails the irreversible one (400).
        assert_eq!(
            gate.decide(&request(Risk::Reversible, low_ess.clone()))
                .unwrap(),
            GateDecision::Allow
        );
        assert!(matches!(
            gate.decide(&request(Risk::Irreversible, low_ess)).unwrap(),
            GateDecision::RequireReview(r) if r[0].contains("ESS 150")
        ));
        let violated = Evidence {
            constraint_rate: Some(0.9),
            ..good.clone()
        };
        assert!(matches!(
            gate.decide(&request(Risk::Reversible, violated)).unwrap(),
            GateDecision::RequireReview(r) if r[0].contains("constraint satisfaction 0.900")
        ));
        let no_input_hash = Evidence {
            input_hashes: vec![],
            ..good.clone()
        };
        assert!(matches!(
            gate.decide(&request(Risk::Irreversible, no_input_hash)).unwrap(),
            GateDecision::Deny(r) if r[0].contains("input hashes")
        ));
        let no_hash = Evidence {
            program_hash: None,
            ..good
        };
        assert!(matches!(
            gate.decide(&request(Risk::Irreversible, no_hash)).unwrap(),
            GateDecision::Deny(r) if r[0].contains("program hash")
        ));
    }

    #[test]
    fn tsu_eligibility_rules_name_their_reasons() {
        let elig = NativeEligibility {
            policy: PolicySpec::default(),
        };
        let node = NodeSummary {
            kind: NodeKind::Sample,
            class: "sample:general:2^4".into(),
            flops: 0.0,
            bytes: 0.0,
            program: Some(ProgramSummary {
                n_vars: 10,
                n_categorical: 1,
                n_constraints: 1,
                sweeps_per_chain: 100,
                ..Default::default()
            }),
        };
        let limits = BackendLimits {
            max_vars: 8,
            max_sweeps: 50,
            runtime_bias: true,
        };
        let reasons = elig
            .verdict(&node, &Qos::default(), Target::Tsu, &limits)
            .unwrap();
        let tags: Vec<String> = reasons
            .iter()
            .map(|r| serde_json::to_value(r).unwrap()["reason"].to_string())
            .collect();
        assert_eq!(
            tags,
            [
                "\"unsupported_variables\"",
                "\"unsupported_constraints\"",
                "\"exceeds_limits\"",
                "\"schedule_out_of_range\""
            ]
        );
        assert!(
            elig.verdict(&node, &Qos::default(), Target::CpuRef, &limits)
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            elig.verdict(&node, &Qos::default(), Target::Gpu, &limits)
                .unwrap()[..],
            [Ineligible::UnsupportedNodeKind { .. }]
        ));
    }
}
