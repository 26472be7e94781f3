//! The conformance suite every plugin must pass, run by `thermoroute plugin
//! check` and on each hot-reloaded version before it serves.
//!
//! The suite asks only what any sane policy must do, whatever its opinions:
//! answer every well-formed input within its limits, with valid output,
//! deterministically; score an empty candidate list as empty; never allow an
//! irreversible effect that has no evidence. It talks to the policy traits
//! only, so it knows nothing of plugins.

use serde::Serialize;

use crate::device::Target;
use crate::hardware::Weights;
use crate::model::Schedule;
use crate::model::graph::{LatencyTarget, NodeKind, Priority, Qos, Risk};
use crate::policy::{
    BackendLimits, CandidateInput, CostModel, DecisionContext, DiagnosticsLevel, EffectRequest,
    Eligibility, EligibilityQuery, Estimate, Evidence, Gate, GateDecision, GuestOutput,
    NodeSummary, PolicyFault, ProgramSummary,
};

/// One conformance case's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConformanceCase {
    /// The role the case checks (`cost`, `eligibility`, `gate`).
    pub role: &'static str,
    /// What the case asks.
    pub name: String,
    /// Whether the plugin passed it.
    pub passed: bool,
    /// Why not, when it failed.
    pub detail: String,
    /// What the plugin printed or logged in the call that failed the case.
    #[serde(skip_serializing_if = "GuestOutput::is_empty")]
    pub output: GuestOutput,
}

/// Why a case failed: in words, and what the guest printed meanwhile.
#[derive(Debug, Default)]
struct Failed {
    detail: String,
    output: GuestOutput,
}

impl From<String> for Failed {
    fn from(detail: String) -> Self {
        Failed {
            detail,
            output: GuestOutput::default(),
        }
    }
}

impl From<&str> for Failed {
    fn from(detail: &str) -> Self {
        Failed::from(detail.to_string())
    }
}

impl From<PolicyFault> for Failed {
    fn from(f: PolicyFault) -> Self {
        Failed {
            detail: f.reason,
            output: *f.output,
        }
    }
}

pub(super) fn sample_node() -> NodeSummary {
    NodeSummary {
        kind: NodeKind::Sample,
        class: "sample:ising:2^6".into(),
        flops: 0.0,
        bytes: 0.0,
        program: Some(ProgramSummary {
            n_vars: 64,
            n_spins: 64,
            n_edges: 112,
            chains: 4,
            samples: 500,
            sweeps_per_chain: 600,
            updates: 153_600.0,
            ..Default::default()
        }),
    }
}

fn tensor_node() -> NodeSummary {
    NodeSummary {
        kind: NodeKind::Tensor,
        class: "tensor:matmul:2^20".into(),
        flops: 2.0e6,
        bytes: 3.0e5,
        program: None,
    }
}

pub(super) fn qos(risk: Risk) -> Qos {
    Qos {
        latency_ms: Some(LatencyTarget {
            p50: 20.0,
            p95: 50.0,
        }),
        risk,
        priority: Priority::Interactive,
        ..Qos::default()
    }
}

pub(super) fn estimate(scale: f64) -> Estimate {
    Estimate {
        latency_p50_ms: 3.0 * scale,
        latency_p95_ms: 7.0 * scale,
        queue_wait_ms: scale,
        energy_j: 0.02 * scale,
        error: 0.01 / scale.max(1e-9),
    }
}

pub(super) fn evidence() -> Evidence {
    Evidence {
        node: "posterior".into(),
        kind: Some(NodeKind::Sample),
        backend: Some("cpu-ref".into()),
        schedule: Some(Schedule {
            warmup: 100,
            samples: 500,
            steps_per_sample: 1,
            chains: 4,
        }),
        program_hash: Some("sha256:00".into()),
        inputs: 1,
        input_hashes: vec!["sha256:11".into()],
        output_hash: Some("sha256:22".into()),
        max_rhat: Some(1.002),
        min_ess_bulk: Some(1500.0),
        constraint_rate: Some(1.0),
        diagnostics_level: Some(DiagnosticsLevel::Full),
        simulated: false,
    }
}

fn case(role: &'static str, name: &str, outcome: Result<(), Failed>) -> ConformanceCase {
    let passed = outcome.is_ok();
    let failed = outcome.err().unwrap_or_default();
    ConformanceCase {
        role,
        name: name.into(),
        passed,
        detail: failed.detail,
        output: failed.output,
    }
}

/// Asks twice; a deterministic policy answers alike (`differ` says it did not).
fn same_answer_twice<T: PartialEq>(
    ask: impl Fn() -> Result<T, PolicyFault>,
    differ: &str,
) -> Result<(), Failed> {
    let first = ask()?;
    let second = ask()?;
    if first == second {
        Ok(())
    } else {
        Err(differ.into())
    }
}

/// Runs the cost-model cases.
pub fn cost_cases(model: &dyn CostModel) -> Vec<ConformanceCase> {
    let weights = Weights::default();
    let mut cases = Vec::new();
    let node = sample_node();
    for (label, risk) in [
        ("a reversible", Risk::Reversible),
        ("an irreversible", Risk::Irreversible),
    ] {
        let q = qos(risk);
        let ctx = DecisionContext {
            candidates: &[],
            node: &node,
            qos: &q,
            weights: &weights,
        };
        let candidates: Vec<CandidateInput> = [Target::Tsu, Target::GpuSim, Target::CpuRef]
            .iter()
            .zip([1.0, 2.0, 8.0])
            .map(|(&target, s)| CandidateInput {
                target,
                estimate: estimate(s),
            })
            .collect();
        let mut first = Vec::new();
        let mut second = Vec::new();
        let outcome = model
            .score(
                &DecisionContext {
                    candidates: &candidates,
                    ..ctx
                },
                &mut first,
            )
            .map_err(Failed::from)
            .and_then(|()| Ok(crate::policy::validate_costs(&first, candidates.len())?))
            .and_then(|()| {
                model
                    .score(
                        &DecisionContext {
                            candidates: &candidates,
                            ..ctx
                        },
                        &mut second,
                    )
                    .map_err(Failed::from)
            })
            .and_then(|()| {
                if first == second {
                    Ok(())
                } else {
                    Err("the same decision scored twice gave different costs".into())
                }
            });
        cases.push(case(
            "cost",
            &format!("scores 3 sampling candidates of {label} job, deterministically"),
            outcome,
        ));
    }
    let tensor = tensor_node();
    let q = qos(Risk::Reversible);
    let ctx = DecisionContext {
        candidates: &[],
        node: &tensor,
        qos: &q,
        weights: &weights,
    };
    let mut out = Vec::new();
    let extremes = [
        CandidateInput {
            target: Target::Gpu,
            estimate: Estimate::default(),
        },
        CandidateInput {
            target: Target::Cpu,
            estimate: estimate(1e9),
        },
    ];
    cases.push(case(
        "cost",
        "scores zero and very large estimates with finite, non-negative costs",
        model
            .score(
                &DecisionContext {
                    candidates: &extremes,
                    ..ctx
                },
                &mut out,
            )
            .map_err(Failed::from)
            .and_then(|()| Ok(crate::policy::validate_costs(&out, extremes.len())?)),
    ));
    cases.push(case(
        "cost",
        "scores an empty candidate list as empty",
        model
            .score(
                &DecisionContext {
                    candidates: &[],
                    ..ctx
                },
                &mut out,
            )
            .map_err(Failed::from)
            .and_then(|()| Ok(crate::policy::validate_costs(&out, 0)?)),
    ));
    cases
}

/// Runs the eligibility cases.
pub fn eligibility_cases(rules: &dyn Eligibility) -> Vec<ConformanceCase> {
    let mut cases = Vec::new();
    let tsu_limits = BackendLimits {
        max_vars: 4096,
        max_sweeps: 100_000,
        runtime_bias: false,
    };
    for node in [sample_node(), tensor_node()] {
        for target in Target::ALL {
            let limits = if target == Target::Tsu {
                tsu_limits.clone()
            } else {
                BackendLimits {
                    max_vars: usize::MAX,
                    max_sweeps: u64::MAX,
                    runtime_bias: true,
                }
            };
            let q = qos(Risk::Reversible);
            let outcome = same_answer_twice(
                || {
                    rules.verdict(&EligibilityQuery {
                        node: &node,
                        qos: &q,
                        target,
                        limits: &limits,
                    })
                },
                "the same question answered twice differently",
            );
            cases.push(case(
                "eligibility",
                &format!(
                    "answers {} on {target}, deterministically",
                    node.kind.name()
                ),
                outcome,
            ));
        }
    }
    cases
}

/// Runs the gate cases.
pub fn gate_cases(gate: &dyn Gate) -> Vec<ConformanceCase> {
    let request = |risk, evidence: Vec<Evidence>| EffectRequest {
        node: "act".into(),
        action: "block card".into(),
        risk,
        priority: Priority::Interactive,
        evidence,
        escalations: vec![],
    };
    let mut cases = Vec::new();
    for risk in [Risk::Reversible, Risk::Irreversible] {
        let r = request(risk, vec![evidence()]);
        let outcome = same_answer_twice(
            || gate.decide(&r),
            "the same request decided twice differently",
        );
        cases.push(case(
            "gate",
            &format!(
                "decides a well-evidenced {} effect, deterministically",
                match risk {
                    Risk::Reversible => "reversible",
                    Risk::Irreversible => "irreversible",
                }
            ),
            outcome,
        ));
    }
    let bare = request(Risk::Irreversible, vec![]);
    cases.push(case(
        "gate",
        "never allows an irreversible effect with no evidence",
        match gate.decide(&bare) {
            Ok(GateDecision::Allow) => Err("allowed it".into()),
            Ok(_) => Ok(()),
            Err(f) => Err(f.into()),
        },
    ));
    cases.push(case(
        "gate",
        &format!(
            "never allows what the host floor denies, on {GATE_PROBES} varied requests (seed {GATE_PROBE_SEED:#x})"
        ),
        floor_probes(gate),
    ));
    cases
}

/// Randomised gate requests per conformance run: a gate cannot pass by
/// recognising one fixed probe.
const GATE_PROBES: usize = 48;
/// Their seed (fixed, so a check is reproducible).
const GATE_PROBE_SEED: u64 = 0x6761_7465;

/// A request with random names, risk and evidence, each evidence item
/// missing random pieces of provenance.
fn random_request(rng: &mut rand_chacha::ChaCha8Rng, i: usize) -> EffectRequest {
    use rand::Rng;
    let mut items = Vec::new();
    for k in 0..rng.random_range(0..4usize) {
        let mut e = evidence();
        e.node = format!("n{i}-{k}");
        if rng.random_bool(0.3) {
            e.backend = None;
        }
        if rng.random_bool(0.3) {
            e.output_hash = None;
        }
        if rng.random_bool(0.3) {
            e.schedule = None;
        }
        if rng.random_bool(0.3) {
            e.program_hash = None;
        }
        if rng.random_bool(0.3) {
            e.input_hashes.clear();
        }
        e.min_ess_bulk = Some(rng.random_range(1.0..3000.0));
        e.max_rhat = Some(rng.random_range(1.0..1.2));
        items.push(e);
    }
    EffectRequest {
        node: format!("effect-{i}"),
        action: ["refund", "block card", "notify", "ship", "wire"][i % 5].into(),
        risk: if rng.random_bool(0.6) {
            Risk::Irreversible
        } else {
            Risk::Reversible
        },
        priority: if rng.random_bool(0.5) {
            Priority::Interactive
        } else {
            Priority::Batch
        },
        evidence: items,
        escalations: vec![],
    }
}

fn floor_probes(gate: &dyn Gate) -> Result<(), Failed> {
    use rand::SeedableRng;
    let floor = crate::policy::NativeGate {
        spec: crate::hardware::GateSpec::default(),
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(GATE_PROBE_SEED);
    for i in 0..GATE_PROBES {
        let r = random_request(&mut rng, i);
        let must = floor.decide(&r)?;
        match gate.decide(&r) {
            Ok(GateDecision::Allow) if matches!(must, GateDecision::Deny(_)) => {
                return Err(format!(
                    "allowed probe {i} ({:?}, {} evidence item(s)), which the floor denies: {must:?}",
                    r.risk,
                    r.evidence.len()
                )
                .into());
            }
            Ok(_) => {}
            Err(f) => {
                return Err(Failed {
                    detail: format!("probe {i}: {}", f.reason),
                    output: *f.output,
                });
            }
        }
    }
    Ok(())
}
