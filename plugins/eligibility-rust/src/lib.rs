//! The native default eligibility rules as a plugin: node kinds per target,
//! the design note's four TSU rules (factor types and constraints, schedule
//! limits, compilable conditioning, policy on hardware stochasticity) and the
//! GPU kernel's lack of constrained-block updates.

wit_bindgen::generate!({ path: "../../wit", world: "eligibility-plugin" });

use exports::thermoroute::policy::eligibility::{
    BackendLimits, Guest, Ineligible, LimitExcess, PolicyContext, Stochasticity,
};
use thermoroute::policy::types::{JobContext, NodeKind, NodeSummary, Qos, Risk, Target};

struct Plugin;

impl Guest for Plugin {
    fn verdict(
        node: NodeSummary,
        qos: Qos,
        _job: JobContext,
        target: Target,
        limits: BackendLimits,
        context: PolicyContext,
    ) -> Result<Vec<Ineligible>, String> {
        let mut reasons = Vec::new();
        let sampling_target = matches!(target, Target::Tsu | Target::GpuSim | Target::CpuRef);
        let supports_kind = match node.kind {
            NodeKind::Sample => sampling_target,
            NodeKind::Tensor | NodeKind::Nn => matches!(target, Target::Cpu | Target::Gpu),
            NodeKind::Control | NodeKind::Effect => target == Target::Cpu,
        };
        if !supports_kind {
            reasons.push(Ineligible::UnsupportedNodeKind(node.kind));
            return Ok(reasons);
        }
        let Some(p) = node.program else {
            return Ok(reasons);
        };
        if matches!(target, Target::Tsu | Target::GpuSim) {
            let forbidden = match context.hardware_stochasticity {
                Stochasticity::Always => false,
                Stochasticity::ReversibleOnly => qos.risk == Risk::Irreversible,
                Stochasticity::Never => true,
            };
            if forbidden {
                let class = match qos.risk {
                    Risk::Reversible => "reversible",
                    Risk::Irreversible => "irreversible",
                };
                reasons.push(Ineligible::PolicyForbids(format!(
                    "policy forbids hardware stochasticity for {class} stages"
                )));
            }
        }
        // Only the TSU has structural limits: the GPU sampler runs constrained
        // blocks, categoricals and pairwise factors.
        if target == Target::Tsu {
            if p.n_categorical > 0 {
                reasons.push(Ineligible::UnsupportedVariables(format!(
                    "{} categorical variable(s): p-bit cells hold spins only",
                    p.n_categorical
                )));
            }
            if p.n_factors > 0 {
                reasons.push(Ineligible::UnsupportedFactors(format!(
                    "{} general factor table(s): the TSU runs pairwise couplings only",
                    p.n_factors
                )));
            }
            if p.n_constraints > 0 {
                reasons.push(Ineligible::UnsupportedConstraints(format!(
                    "{} hard constraint(s): the TSU has no constrained-block update",
                    p.n_constraints
                )));
            }
            if p.n_vars > limits.max_vars {
                reasons.push(Ineligible::ExceedsLimits(LimitExcess {
                    what: "variables".into(),
                    limit: limits.max_vars as f64,
                    requested: p.n_vars as f64,
                }));
            }
            if p.sweeps_per_chain > limits.max_sweeps {
                reasons.push(Ineligible::ScheduleOutOfRange(format!(
                    "{} sweeps per chain exceed the device limit {}",
                    p.sweeps_per_chain, limits.max_sweeps
                )));
            }
            if p.runtime_conditioning && !limits.runtime_bias {
                reasons.push(Ineligible::ConditioningNotCompilable(
                    "biases come from upstream outputs, and this TSU cannot rewrite biases between runs".into(),
                ));
            }
        }
        Ok(reasons)
    }
}

export!(Plugin);
