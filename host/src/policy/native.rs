//! The native defaults, the design note's rules: the weighted cost model,
//! the TSU eligibility rules and the gate's thresholds by risk class.

use super::{
    CostModel, CostTerms, DecisionContext, DiagnosticsLevel, EffectRequest, Eligibility,
    EligibilityQuery, Gate, GateDecision, Ineligible, PolicyFault,
};
use crate::device::Target;
use crate::hardware::{GateSpec, GateThresholds, PolicySpec, StochasticityPolicy};
use crate::model::graph::{NodeKind, Qos, Risk};

/// `wL*Latency + wE*Energy + wA*Error + wR*RiskPenalty`; the risk penalty of
/// hardware stochasticity applies to irreversible jobs only.
#[derive(Debug, Clone)]
pub struct NativeCost {
    /// Per-target risk penalties and stochasticity rules from the hardware file.
    pub policy: PolicySpec,
}

impl NativeCost {
    /// The risk penalty of running `qos`'s job on `target`.
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

    fn sampling_order(&self) -> &[Target] {
        &self.policy.sampling_order
    }

    fn score(&self, ctx: &DecisionContext, out: &mut Vec<CostTerms>) -> Result<(), PolicyFault> {
        out.clear();
        let candidates = ctx.candidates;
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

/// Whether a backend can run a node kind at all: the node-kind/target
/// table no policy can widen (a plugin declaring more is faulted).
pub fn runs_kind(target: Target, kind: NodeKind) -> bool {
    match kind {
        NodeKind::Sample => matches!(target, Target::Tsu | Target::GpuSim | Target::CpuRef),
        NodeKind::Tensor | NodeKind::Nn => matches!(target, Target::Cpu | Target::Gpu),
        // Branchy control and effect bookkeeping stay on the CPU.
        NodeKind::Control | NodeKind::Effect => target == Target::Cpu,
    }
}

/// The design note's TSU eligibility rules: supported factor types and
/// constraints, schedule within limits, compilable conditioning, and policy
/// permission for hardware stochasticity.
#[derive(Debug, Clone)]
pub struct NativeEligibility {
    /// The TSU rules' knobs from the hardware file.
    pub policy: PolicySpec,
}

impl Eligibility for NativeEligibility {
    fn name(&self) -> &str {
        "native"
    }

    fn verdict(&self, query: &EligibilityQuery<'_>) -> Result<Vec<Ineligible>, PolicyFault> {
        let EligibilityQuery {
            node,
            qos,
            target,
            limits,
            ..
        } = *query;
        let mut reasons = Vec::new();
        if !runs_kind(target, node.kind) {
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
    /// Thresholds per risk class and the fail-closed choice.
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
        Ok(gate_verdict(t, request))
    }
}

/// The native gate's rules for one risk class's thresholds: missing
/// provenance (when required) denies; escalations, `always_review` and
/// diagnostics short of the thresholds hold for review. A pure function:
/// the host's gate floor applies it too.
pub fn gate_verdict(t: &GateThresholds, request: &EffectRequest) -> GateDecision {
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
            return GateDecision::Deny(missing);
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
    if review.is_empty() {
        GateDecision::Allow
    } else {
        GateDecision::RequireReview(review)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::graph::Priority;
    use crate::policy::{BackendLimits, Evidence, NodeSummary, ProgramSummary};

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
            simulated: false,
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
            .verdict(&EligibilityQuery {
                node: &node,
                qos: &Qos::default(),
                target: Target::Tsu,
                limits: &limits,
                job: None,
            })
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
            elig.verdict(&EligibilityQuery {
                node: &node,
                qos: &Qos::default(),
                target: Target::CpuRef,
                limits: &limits,
                job: None,
            })
            .unwrap()
            .is_empty()
        );
        assert!(matches!(
            elig.verdict(&EligibilityQuery {
                node: &node,
                qos: &Qos::default(),
                target: Target::Gpu,
                limits: &limits,
                job: None,
            })
            .unwrap()[..],
            [Ineligible::UnsupportedNodeKind { .. }]
        ));
    }
}
