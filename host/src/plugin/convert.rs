//! Conversions between the host's policy types and the generated WIT types
//! of both package versions: the shapes they share come from one macro,
//! instantiated once per version ([`v2`] holds 0.2's).

use super::bindings::{cost_model as wc, eligibility as we, gate as wg, types as wt};
use crate::device::Target;
use crate::hardware::{GateThresholds, PolicySpec, StochasticityPolicy, Weights};
use crate::model::graph::{NodeKind, Priority, Qos, Risk};
use crate::policy::{
    BackendLimits, CandidateInput, CostTerms, DiagnosticsLevel, EffectRequest, Evidence,
    GateDecision, Ineligible, NodeSummary, ProgramSummary,
};

/// The conversions whose shapes are the same in 0.1.0 and 0.2.0; `wt`,
/// `wc`, `we` and `wg` name the version's `types`, `cost-model`,
/// `eligibility` and `gate` modules where this is invoked.
macro_rules! shared_conversions {
    () => {
        pub fn node_kind(k: NodeKind) -> wt::NodeKind {
            match k {
                NodeKind::Control => wt::NodeKind::Control,
                NodeKind::Tensor => wt::NodeKind::Tensor,
                NodeKind::Nn => wt::NodeKind::Nn,
                NodeKind::Sample => wt::NodeKind::Sample,
                NodeKind::Effect => wt::NodeKind::Effect,
            }
        }

        pub fn node_kind_back(k: wt::NodeKind) -> NodeKind {
            match k {
                wt::NodeKind::Control => NodeKind::Control,
                wt::NodeKind::Tensor => NodeKind::Tensor,
                wt::NodeKind::Nn => NodeKind::Nn,
                wt::NodeKind::Sample => NodeKind::Sample,
                wt::NodeKind::Effect => NodeKind::Effect,
            }
        }

        pub fn target(t: Target) -> wt::Target {
            match t {
                Target::Cpu => wt::Target::Cpu,
                Target::Gpu => wt::Target::Gpu,
                Target::Tsu => wt::Target::Tsu,
                Target::GpuSim => wt::Target::GpuSim,
                Target::CpuRef => wt::Target::CpuRef,
            }
        }

        fn risk(r: Risk) -> wt::Risk {
            match r {
                Risk::Reversible => wt::Risk::Reversible,
                Risk::Irreversible => wt::Risk::Irreversible,
            }
        }

        fn priority(p: Priority) -> wt::Priority {
            match p {
                Priority::Interactive => wt::Priority::Interactive,
                Priority::Batch => wt::Priority::Batch,
            }
        }

        fn program(p: &ProgramSummary) -> wt::ProgramSummary {
            wt::ProgramSummary {
                n_vars: p.n_vars as u64,
                n_spins: p.n_spins as u64,
                n_categorical: p.n_categorical as u64,
                n_factors: p.n_factors as u64,
                n_constraints: p.n_constraints as u64,
                n_edges: p.n_edges as u64,
                n_clamped: p.n_clamped as u64,
                runtime_conditioning: p.runtime_conditioning,
                chains: p.chains,
                samples: p.samples,
                sweeps_per_chain: p.sweeps_per_chain,
                updates: p.updates,
            }
        }

        pub fn node(n: &NodeSummary) -> wt::NodeSummary {
            wt::NodeSummary {
                kind: node_kind(n.kind),
                class: n.class.clone(),
                flops: n.flops,
                bytes: n.bytes,
                program: n.program.as_ref().map(program),
            }
        }

        pub fn weights(w: &Weights) -> wc::Weights {
            wc::Weights {
                latency: w.latency,
                energy: w.energy,
                error: w.error,
                risk: w.risk,
            }
        }

        pub fn penalties(p: &PolicySpec) -> wc::RiskPenalties {
            wc::RiskPenalties {
                tsu_irreversible: p.tsu_irreversible_penalty,
                gpu_sim_irreversible: p.gpu_sim_irreversible_penalty,
            }
        }

        pub fn candidate(c: &CandidateInput) -> wc::Candidate {
            let e = &c.estimate;
            wc::Candidate {
                target: target(c.target),
                estimate: wc::Estimate {
                    latency_p50_ms: e.latency_p50_ms,
                    latency_p95_ms: e.latency_p95_ms,
                    queue_wait_ms: e.queue_wait_ms,
                    energy_j: e.energy_j,
                    error: e.error,
                },
            }
        }

        pub fn cost_terms_back(c: &wc::CostTerms) -> CostTerms {
            CostTerms {
                latency: c.latency,
                energy: c.energy,
                error: c.error,
                risk: c.risk,
                risk_penalty: c.risk_penalty,
                total: c.total,
            }
        }

        pub fn limits(l: &BackendLimits) -> we::BackendLimits {
            we::BackendLimits {
                max_vars: u64::try_from(l.max_vars).unwrap_or(u64::MAX),
                max_sweeps: l.max_sweeps,
                runtime_bias: l.runtime_bias,
            }
        }

        pub fn policy_context(p: &PolicySpec) -> we::PolicyContext {
            we::PolicyContext {
                hardware_stochasticity: match p.hardware_stochasticity {
                    StochasticityPolicy::Always => we::Stochasticity::Always,
                    StochasticityPolicy::ReversibleOnly => we::Stochasticity::ReversibleOnly,
                    StochasticityPolicy::Never => we::Stochasticity::Never,
                },
            }
        }

        pub fn ineligible_back(i: we::Ineligible) -> Ineligible {
            match i {
                we::Ineligible::UnsupportedNodeKind(kind) => Ineligible::UnsupportedNodeKind {
                    kind: node_kind_back(kind),
                },
                we::Ineligible::UnsupportedVariables(detail) => {
                    Ineligible::UnsupportedVariables { detail }
                }
                we::Ineligible::UnsupportedFactors(detail) => {
                    Ineligible::UnsupportedFactors { detail }
                }
                we::Ineligible::UnsupportedConstraints(detail) => {
                    Ineligible::UnsupportedConstraints { detail }
                }
                we::Ineligible::ExceedsLimits(x) => Ineligible::ExceedsLimits {
                    what: x.what,
                    limit: x.limit,
                    requested: x.requested,
                },
                we::Ineligible::ScheduleOutOfRange(detail) => {
                    Ineligible::ScheduleOutOfRange { detail }
                }
                we::Ineligible::ConditioningNotCompilable(detail) => {
                    Ineligible::ConditioningNotCompilable { detail }
                }
                we::Ineligible::PolicyForbids(detail) => Ineligible::PolicyForbids { detail },
                we::Ineligible::Capacity(detail) => Ineligible::Capacity { detail },
                we::Ineligible::Precision(detail) => Ineligible::Precision { detail },
            }
        }

        fn diagnostics_level(d: DiagnosticsLevel) -> wg::DiagnosticsLevel {
            match d {
                DiagnosticsLevel::None => wg::DiagnosticsLevel::None,
                DiagnosticsLevel::Basic => wg::DiagnosticsLevel::Basic,
                DiagnosticsLevel::Full => wg::DiagnosticsLevel::Full,
            }
        }

        fn evidence(e: &Evidence) -> wg::Evidence {
            wg::Evidence {
                node: e.node.clone(),
                kind: e.kind.map(node_kind),
                backend: e.backend.clone(),
                schedule: e.schedule.map(|s| wg::Schedule {
                    warmup: s.warmup,
                    samples: s.samples,
                    steps_per_sample: s.steps_per_sample,
                    chains: s.chains,
                }),
                program_hash: e.program_hash.clone(),
                inputs: e.inputs as u64,
                input_hashes: e.input_hashes.clone(),
                output_hash: e.output_hash.clone(),
                max_rhat: e.max_rhat,
                min_ess_bulk: e.min_ess_bulk,
                constraint_rate: e.constraint_rate,
                diagnostics_level: e.diagnostics_level.map(diagnostics_level),
            }
        }

        pub fn request(r: &EffectRequest) -> wg::EffectRequest {
            wg::EffectRequest {
                node: r.node.clone(),
                action: r.action.clone(),
                risk: risk(r.risk),
                priority: priority(r.priority),
                evidence: r.evidence.iter().map(evidence).collect(),
                escalations: r.escalations.clone(),
            }
        }

        pub fn thresholds(t: &GateThresholds) -> wg::Thresholds {
            wg::Thresholds {
                always_review: t.always_review,
                min_ess: t.min_ess,
                max_rhat: t.max_rhat,
                min_constraint_rate: t.min_constraint_rate,
                require_provenance: t.require_provenance,
            }
        }

        pub fn decision_back(d: wg::GateDecision) -> GateDecision {
            match d {
                wg::GateDecision::Allow => GateDecision::Allow,
                wg::GateDecision::RequireReview(r) => GateDecision::RequireReview(r),
                wg::GateDecision::Deny(r) => GateDecision::Deny(r),
            }
        }
    };
}

shared_conversions!();

pub fn qos(q: &Qos) -> wt::Qos {
    wt::Qos {
        latency_p50_ms: q.latency_ms.map(|l| l.p50),
        latency_p95_ms: q.latency_ms.map(|l| l.p95),
        energy_j: q.energy_j,
        max_error: q.accuracy.map(|a| a.max_error),
        risk: risk(q.risk),
        priority: priority(q.priority),
    }
}

/// 0.2.0: the shared shapes, plus the job, the budget share, the devices
/// and the QoS as written.
pub mod v2 {
    use super::super::bindings::v0_2::{
        cost_model as wc, eligibility as we, gate as wg, types as wt,
    };
    use crate::device::Target;
    use crate::hardware::{GateThresholds, PolicySpec, StochasticityPolicy, Weights};
    use crate::model::graph::{NodeKind, Priority, Qos, Risk};
    use crate::policy::{
        BackendLimits, BudgetShare, CandidateInput, CostTerms, DeviceHealth, DeviceState,
        DiagnosticsLevel, EffectRequest, Evidence, GateDecision, Ineligible, JobContext,
        NodeSummary, ProgramSummary,
    };

    shared_conversions!();

    /// The QoS as written, with the energy budget the host enforces
    /// (`energy_budget_j`, resolved from `energy_relative` where needed).
    pub fn qos(q: &Qos, energy_budget_j: Option<f64>) -> wt::Qos {
        wt::Qos {
            latency_p50_ms: q.latency_ms.map(|l| l.p50),
            latency_p95_ms: q.latency_ms.map(|l| l.p95),
            energy_j: q.energy_j,
            energy_relative: q.energy_relative,
            energy_budget_j: energy_budget_j.or(q.energy_j),
            max_error: q.accuracy.map(|a| a.max_error),
            risk: risk(q.risk),
            priority: priority(q.priority),
        }
    }

    /// The job.
    pub fn job(j: &JobContext) -> wt::JobContext {
        wt::JobContext {
            id: j.id,
            class: j.class.clone(),
            arrival_ms: j.arrival_ms,
            now_ms: j.now_ms,
            energy_spent_j: j.energy_spent_j,
            energy_remaining_j: j.energy_remaining_j(),
        }
    }

    /// The node's budget share.
    pub fn share(s: &BudgetShare) -> wt::BudgetShare {
        wt::BudgetShare {
            deadline_ms: s.deadline_ms,
            latency_ms: s.latency_ms,
            energy_j: s.energy_j,
            timeout_ms: s.timeout_ms,
        }
    }

    /// One device's state.
    pub fn device(d: &DeviceState) -> wt::DeviceState {
        wt::DeviceState {
            target: target(d.target),
            queue_depth: d.queue_depth,
            running: d.running,
            room: d.room,
            health: match d.health {
                DeviceHealth::Ok => wt::Health::Ok,
                DeviceHealth::Offline => wt::Health::Offline,
                DeviceHealth::FailedEarlier => wt::Health::FailedEarlier,
            },
            learned: d.learned.map(|l| wt::Learned {
                count: l.count,
                mean_ms: l.mean_ms,
                p95_ms: l.p95_ms,
            }),
        }
    }
}
