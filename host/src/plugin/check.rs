//! The conformance suite every plugin must pass (`thermoroute plugin check`),
//! and the smoke test a hot-reloaded version must pass before it serves.
//!
//! The suite asks only what any sane policy must do, whatever its opinions:
//! answer every well-formed input within its limits, with valid output,
//! deterministically; score an empty candidate list as empty; never allow an
//! irreversible effect that has no evidence.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::{LoadedPlugin, PluginCost, PluginEligibility, PluginGate, Role, Runtime};
use crate::device::Target;
use crate::hardware::{GateSpec, Hardware, PolicySpec, Weights};
use crate::model::Schedule;
use crate::model::graph::{LatencyTarget, NodeKind, Priority, Qos, Risk};
use crate::policy::{
    BackendLimits, CandidateInput, CostModel, DecisionContext, DiagnosticsLevel, EffectRequest,
    Eligibility, Estimate, Evidence, Gate, GateDecision, NodeSummary, ProgramSummary,
};

/// One conformance case's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConformanceCase {
    pub role: &'static str,
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// What `plugin check` reports.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub path: String,
    pub hash: String,
    pub bytes: usize,
    pub world: &'static str,
    pub exports: Vec<String>,
    /// Each import and what the sandbox grants it.
    pub imports: Vec<(String, String)>,
    pub cache: super::CacheUse,
    pub load_ms: f64,
    /// Cold instantiation (fresh store and instance), microseconds.
    pub instantiate_us: f64,
    pub cases: Vec<ConformanceCase>,
    /// Mean time of one warm call per role, microseconds.
    pub call_us: Vec<(&'static str, f64)>,
}

impl CheckReport {
    pub fn passed(&self) -> bool {
        self.cases.iter().all(|c| c.passed)
    }
}

/// What the sandbox grants an import.
pub fn import_grant(name: &str) -> &'static str {
    let iface = name.split('@').next().unwrap_or(name);
    match iface {
        i if i.starts_with("wasi:filesystem/") => "denied: no directory is preopened",
        "wasi:cli/environment" => "empty: no variables, no arguments",
        i if i.starts_with("wasi:cli/std") || i.starts_with("wasi:cli/terminal") => {
            "stdio goes nowhere"
        }
        "wasi:cli/exit" => "exit ends the call as a trap",
        i if i.starts_with("wasi:clocks/") => "frozen at zero",
        i if i.starts_with("wasi:random/") => "seeded: deterministic",
        i if i.starts_with("wasi:sockets/") => "denied: every address is refused",
        i if i.starts_with("wasi:io/") => "streams and polling only",
        i if i.starts_with("thermoroute:policy/types") => "types only (nothing to call)",
        _ => "not provided",
    }
}

fn sample_node() -> NodeSummary {
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

fn qos(risk: Risk) -> Qos {
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

fn estimate(scale: f64) -> Estimate {
    Estimate {
        latency_p50_ms: 3.0 * scale,
        latency_p95_ms: 7.0 * scale,
        queue_wait_ms: scale,
        energy_j: 0.02 * scale,
        error: 0.01 / scale.max(1e-9),
    }
}

fn evidence() -> Evidence {
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
    }
}

fn case(role: &'static str, name: &str, outcome: Result<(), String>) -> ConformanceCase {
    ConformanceCase {
        role,
        name: name.into(),
        passed: outcome.is_ok(),
        detail: outcome.err().unwrap_or_default(),
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
            .score(&ctx, &candidates, &mut first)
            .map_err(|f| f.reason)
            .and_then(|()| crate::policy::validate_costs(&first, candidates.len()))
            .and_then(|()| {
                model
                    .score(&ctx, &candidates, &mut second)
                    .map_err(|f| f.reason)
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
            .score(&ctx, &extremes, &mut out)
            .map_err(|f| f.reason)
            .and_then(|()| crate::policy::validate_costs(&out, extremes.len())),
    ));
    cases.push(case(
        "cost",
        "scores an empty candidate list as empty",
        model
            .score(&ctx, &[], &mut out)
            .map_err(|f| f.reason)
            .and_then(|()| crate::policy::validate_costs(&out, 0)),
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
            let outcome = rules
                .verdict(&node, &q, target, &limits)
                .map_err(|f| f.reason)
                .and_then(|a| {
                    let b = rules
                        .verdict(&node, &q, target, &limits)
                        .map_err(|f| f.reason)?;
                    if a == b {
                        Ok(())
                    } else {
                        Err("the same question answered twice differently".into())
                    }
                });
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
        let outcome = gate.decide(&r).map_err(|f| f.reason).and_then(|a| {
            let b = gate.decide(&r).map_err(|f| f.reason)?;
            if a == b {
                Ok(())
            } else {
                Err("the same request decided twice differently".into())
            }
        });
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
            Err(f) => Err(f.reason),
        },
    ));
    cases
}

/// Loads `path`, runs the suite for every role it exports and times it.
pub fn conformance(
    runtime: &'static Runtime,
    path: &std::path::Path,
) -> Result<CheckReport, super::PluginError> {
    let plugin = runtime.load(path)?;
    let hw = Hardware::default();
    let started = Instant::now();
    let mut probe = plugin.instance();
    let mut instantiate_us = 0.0;
    const COLD: usize = 5;
    for _ in 0..COLD {
        let t = Instant::now();
        probe
            .instantiate()
            .map_err(|e| super::PluginError::Instantiate {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
        instantiate_us += t.elapsed().as_secs_f64() * 1e6 / COLD as f64;
    }
    let _ = started;
    let mut cases = Vec::new();
    let mut call_us = Vec::new();
    const CALLS: u32 = 200;
    if plugin.roles.cost {
        let model = PluginCost::from_plugin(runtime, Arc::clone(&plugin), hw.policy.clone());
        cases.extend(cost_cases(&model));
        let node = sample_node();
        let q = qos(Risk::Reversible);
        let weights = hw.weights;
        let ctx = DecisionContext {
            node: &node,
            qos: &q,
            weights: &weights,
        };
        let cands: Vec<CandidateInput> = [Target::Tsu, Target::GpuSim, Target::CpuRef]
            .map(|target| CandidateInput {
                target,
                estimate: estimate(1.0),
            })
            .to_vec();
        let mut out = Vec::new();
        let t = Instant::now();
        for _ in 0..CALLS {
            let _ = model.score(&ctx, &cands, &mut out);
        }
        call_us.push(("cost", t.elapsed().as_secs_f64() * 1e6 / f64::from(CALLS)));
    }
    if plugin.roles.eligibility {
        let rules = PluginEligibility::from_plugin(runtime, Arc::clone(&plugin), hw.policy.clone());
        cases.extend(eligibility_cases(&rules));
        let node = sample_node();
        let q = qos(Risk::Reversible);
        let limits = BackendLimits::of(Target::Tsu, &hw);
        let t = Instant::now();
        for _ in 0..CALLS {
            let _ = rules.verdict(&node, &q, Target::Tsu, &limits);
        }
        call_us.push((
            "eligibility",
            t.elapsed().as_secs_f64() * 1e6 / f64::from(CALLS),
        ));
    }
    if plugin.roles.gate {
        let gate = PluginGate::from_plugin(runtime, Arc::clone(&plugin), hw.gate.clone());
        cases.extend(gate_cases(&gate));
        let r = EffectRequest {
            node: "act".into(),
            action: "block card".into(),
            risk: Risk::Irreversible,
            priority: Priority::Interactive,
            evidence: vec![evidence()],
            escalations: vec![],
        };
        let t = Instant::now();
        for _ in 0..CALLS {
            let _ = gate.decide(&r);
        }
        call_us.push(("gate", t.elapsed().as_secs_f64() * 1e6 / f64::from(CALLS)));
    }
    Ok(CheckReport {
        path: path.display().to_string(),
        hash: plugin.hash.clone(),
        bytes: plugin.bytes,
        world: plugin.roles.world(),
        exports: plugin.exports.clone(),
        imports: plugin
            .imports
            .iter()
            .map(|i| (i.clone(), import_grant(i).to_string()))
            .collect(),
        cache: plugin.cache,
        load_ms: plugin.load_time.as_secs_f64() * 1e3,
        instantiate_us,
        cases,
        call_us,
    })
}

/// The cases of one role, run on a freshly loaded version before it may
/// replace the serving one.
pub(super) fn smoke(
    runtime: &'static Runtime,
    plugin: &Arc<LoadedPlugin>,
    role: Role,
) -> Result<(), String> {
    let cases = match role {
        Role::Cost => cost_cases(&PluginCost::from_plugin(
            runtime,
            Arc::clone(plugin),
            PolicySpec::default(),
        )),
        Role::Eligibility => eligibility_cases(&PluginEligibility::from_plugin(
            runtime,
            Arc::clone(plugin),
            PolicySpec::default(),
        )),
        Role::Gate => gate_cases(&PluginGate::from_plugin(
            runtime,
            Arc::clone(plugin),
            GateSpec::default(),
        )),
    };
    match cases.into_iter().find(|c| !c.passed) {
        None => Ok(()),
        Some(c) => Err(format!("fails conformance: {}: {}", c.name, c.detail)),
    }
}
