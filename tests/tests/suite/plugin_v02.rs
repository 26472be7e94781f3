//! WIT `thermoroute:policy@0.2.0` (issue 15): 0.1.0 components keep loading
//! and deciding as before; a mix of versions or an unknown one is a typed
//! load error; a 0.2 cost model sees the job, its budget share, the QoS as
//! written and the devices, with real values from the engine; totals that
//! do not add up are faults unless the model declares itself non-additive.

use std::path::{Path, PathBuf};

use thermoroute::device::Target;
use thermoroute::engine::{Arrivals, EngineConfig, Mode};
use thermoroute::hardware::{Hardware, PolicySpec, Weights};
use thermoroute::model::Graph;
use thermoroute::model::graph::{NodeKind, Qos, Risk};
use thermoroute::plugin::{PluginCost, PluginError, WitVersion, conformance};
use thermoroute::policy::{
    BudgetShare, CandidateInput, CostModel, CostTerms, DecisionContext, DecisionSituation,
    DeviceHealth, DeviceState, Estimate, JobContext, LearnedService, NativeCost, NodeSummary,
    Policy, PolicyFault, ProgramSummary,
};
use thermoroute::trace::{TraceEvent, read_trace};
use thermoroute_tests::{
    example, guest, one_class_engine, plugin_runtime as runtime, run_in, simulate_fraud,
};

fn sample_node() -> NodeSummary {
    NodeSummary {
        kind: NodeKind::Sample,
        class: "sample:ising:2^6".into(),
        flops: 0.0,
        bytes: 0.0,
        program: Some(ProgramSummary {
            n_vars: 64,
            ..Default::default()
        }),
    }
}

fn estimate(p50: f64, energy_j: f64) -> Estimate {
    Estimate {
        latency_p50_ms: p50,
        latency_p95_ms: 2.0 * p50,
        queue_wait_ms: 0.25,
        energy_j,
        error: 0.01,
    }
}

fn cost_model(name: &str) -> PluginCost {
    PluginCost::open(runtime(), &guest(name), PolicySpec::default(), None)
        .unwrap_or_else(|e| panic!("{name} loads: {e}"))
}

fn score(
    model: &dyn CostModel,
    qos: &Qos,
    candidates: &[CandidateInput],
    situation: Option<&DecisionSituation>,
) -> Result<Vec<CostTerms>, PolicyFault> {
    let node = sample_node();
    let weights = Weights::default();
    let mut out = Vec::new();
    model
        .score(
            &DecisionContext {
                situation,
                ..DecisionContext::new(&node, qos, &weights, candidates)
            },
            &mut out,
        )
        .map(|()| out)
}

/// The target each route event chose, in order.
fn choices(trace: &Path) -> Vec<(u64, String, Option<Target>)> {
    read_trace(trace)
        .unwrap()
        .events
        .into_iter()
        .filter_map(|e| match e {
            TraceEvent::Route {
                job, node, chosen, ..
            } => Some((job, node, chosen)),
            _ => None,
        })
        .collect()
}

fn with_cost(name: &str, hw: &Hardware) -> Policy {
    let mut policy = Policy::native(hw);
    policy.cost = Box::new(cost_model(name));
    policy
}

#[test]
fn a_0_1_component_loads_scores_and_decides_as_before() {
    let plugin = runtime().load(&guest("fixture_cost_v01")).unwrap();
    assert_eq!(plugin.version, Some(WitVersion::V0_1));
    assert!(plugin.roles.cost);
    let v2 = runtime().load(&guest("cost_rust")).unwrap();
    assert_eq!(v2.version, Some(WitVersion::V0_2));

    let report = conformance(runtime(), &guest("fixture_cost_v01")).unwrap();
    assert!(report.passed(), "{:?}", report.cases);
    assert_eq!(report.wit_version, Some("0.1.0"));

    // The same formula through 0.1, through 0.2 and natively.
    let candidates: Vec<CandidateInput> = [
        (Target::Tsu, 1.0, 0.2),
        (Target::GpuSim, 2.0, 0.5),
        (Target::CpuRef, 8.0, 0.1),
    ]
    .map(|(target, p50, e)| CandidateInput {
        target,
        estimate: estimate(p50, e),
    })
    .to_vec();
    let native = NativeCost {
        policy: PolicySpec::default(),
    };
    for risk in [Risk::Reversible, Risk::Irreversible] {
        let qos = Qos {
            risk,
            ..Qos::default()
        };
        let expected = score(&native, &qos, &candidates, None).unwrap();
        let old = score(&cost_model("fixture_cost_v01"), &qos, &candidates, None).unwrap();
        let new = score(&cost_model("cost_rust"), &qos, &candidates, None).unwrap();
        assert_eq!(old, expected, "{risk:?}");
        assert_eq!(new, expected, "{risk:?}");
    }

    // And a whole run decides exactly as the native model does.
    let hw = Hardware::default();
    let dir = tempfile::tempdir().unwrap();
    let native_trace = dir.path().join("native.jsonl");
    let v01_trace = dir.path().join("v01.jsonl");
    simulate_fraud(Policy::native(&hw), &hw, 30, &native_trace);
    let r = simulate_fraud(with_cost("fixture_cost_v01", &hw), &hw, 30, &v01_trace);
    assert_eq!(r.counters.policy_faults, 0);
    let native_choices = choices(&native_trace);
    assert!(native_choices.len() > 30);
    assert_eq!(choices(&v01_trace), native_choices);
}

#[test]
fn a_component_exporting_two_versions_is_a_typed_load_error() {
    let file = guest("fixture_mixed_version");
    let err = runtime().load(&file).unwrap_err();
    assert!(
        matches!(&err, PluginError::MixedVersions { found, .. }
            if found.contains("cost-model@0.1.0") && found.contains("cost-model@0.2.0")),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("build every role against one version"),
        "{text}"
    );
    assert!(PluginCost::open(runtime(), &file, PolicySpec::default(), None).is_err());

    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), &["plugin", "check", file.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("NOT conformant"), "{stdout}");
    let out = run_in(
        dir.path(),
        &["plugin", "check", file.to_str().unwrap(), "--json"],
    );
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let detail = report["cases"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("several versions"), "{detail}");
    assert_eq!(report["world"], "none");
}

#[test]
fn an_unknown_version_is_a_typed_load_error_that_says_what_to_do() {
    let file = guest("fixture_foreign_version");
    let err = runtime().load(&file).unwrap_err();
    let PluginError::UnknownVersion {
        found, supported, ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(found, "thermoroute:policy/cost-model@9.0.0");
    assert_eq!(supported, "0.1.0, 0.2.0");
    let text = err.to_string();
    assert!(
        text.contains("rebuild it against wit/policy.wit (0.2.0)"),
        "{text}"
    );

    // `run` refuses it before running anything, naming the file.
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(
        dir.path(),
        &[
            "run",
            &example("graphs/fraud-triage.json"),
            "--mode",
            "simulate",
            "--cost",
            file.to_str().unwrap(),
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("fixture_foreign_version.wasm") && stderr.contains("@9.0.0"),
        "{stderr}"
    );
}

/// A situation whose every figure is distinct, to read back from the probe.
fn probe_situation() -> DecisionSituation {
    DecisionSituation {
        node_id: "posterior".into(),
        job: JobContext {
            id: 41,
            class: "fraud".into(),
            arrival_ms: 10.0,
            now_ms: 12.5,
            energy_spent_j: 0.25,
            energy_budget_j: Some(1.5),
        },
        share: BudgetShare {
            deadline_ms: Some(30.0),
            latency_ms: Some(7.0),
            energy_j: Some(0.4),
            timeout_ms: Some(123.0),
        },
        devices: vec![
            DeviceState {
                target: Target::Tsu,
                queue_depth: 3,
                running: 1,
                room: 5,
                health: DeviceHealth::Ok,
                learned: Some(LearnedService {
                    count: 9,
                    mean_ms: 1.0,
                    p95_ms: 2.0,
                }),
            },
            DeviceState {
                target: Target::CpuRef,
                queue_depth: 4,
                running: 0,
                room: 0,
                health: DeviceHealth::FailedEarlier,
                learned: None,
            },
        ],
    }
}

#[test]
fn a_0_2_cost_model_is_told_the_job_its_share_the_qos_as_written_and_the_devices() {
    let probe = cost_model("fixture_probe_cost");
    let qos = Qos {
        energy_relative: Some(0.5),
        ..Qos::default()
    };
    let candidates = vec![CandidateInput {
        target: Target::Tsu,
        estimate: estimate(1.0, 0.1),
    }];
    let situation = probe_situation();
    let terms = score(&probe, &qos, &candidates, Some(&situation)).unwrap();
    assert_eq!(terms[0].latency, 0.5, "energy_relative as written");
    assert_eq!(terms[0].energy, 1.5, "the resolved energy budget");
    assert_eq!(terms[0].error, 41.0, "the job id");
    assert_eq!(
        terms[0].risk,
        2.0 + 3.0 + 4.0,
        "two devices and their queues"
    );
    assert_eq!(terms[0].risk_penalty, 123.0, "the node's timeout");

    // An inconsistent remaining budget is caught by the probe itself: the
    // host derives it from the budget and what was spent.
    let mut late = probe_situation();
    late.job.now_ms = 5.0;
    let fault = score(&probe, &qos, &candidates, Some(&late)).unwrap_err();
    assert!(fault.reason.contains("after now"), "{fault:?}");
}

/// The fraud-triage graph with `energy_relative` instead of `energy_j`.
fn fraud_with_energy_relative(dir: &Path, relative: Option<f64>) -> PathBuf {
    let mut g: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(example("graphs/fraud-triage.json")).unwrap(),
    )
    .unwrap();
    let qos = g["qos"].as_object_mut().unwrap();
    qos.remove("energy_j");
    if let Some(r) = relative {
        qos.insert("energy_relative".into(), serde_json::json!(r));
    }
    let path = dir.join(format!("fraud-{relative:?}.json"));
    std::fs::write(&path, g.to_string()).unwrap();
    path
}

#[test]
fn the_engine_fills_the_0_2_payload_with_real_values_at_decision_time() {
    let dir = tempfile::tempdir().unwrap();
    let graph = Graph::load(&fraud_with_energy_relative(dir.path(), Some(0.5))).unwrap();
    let hw = Hardware::default();
    let trace = dir.path().join("t.jsonl");
    let mut engine = one_class_engine(
        "fraud",
        graph,
        hw.clone(),
        with_cost("fixture_probe_cost", &hw),
        EngineConfig {
            mode: Mode::Simulate,
            seed: 3,
            arrivals: Arrivals::Poisson {
                jobs: 20,
                rate_per_s: 50.0,
            },
            trace: Some(trace.clone()),
            ..Default::default()
        },
    );
    engine.run().unwrap();
    let report = engine.report();
    // The probe answers with an error when a string is empty or a figure
    // is inconsistent: none did.
    assert_eq!(report.counters.policy_faults, 0);
    let mut routes = 0;
    let mut jobs = std::collections::BTreeSet::new();
    for e in read_trace(&trace).unwrap().events {
        let TraceEvent::Route {
            job,
            candidates,
            budget,
            ..
        } = e
        else {
            continue;
        };
        for c in candidates.iter().filter_map(|c| c.cost) {
            routes += 1;
            assert_eq!(c.latency, 0.5, "energy_relative as written");
            assert!(c.energy > 0.0, "energy_relative resolved: {}", c.energy);
            assert_eq!(c.error, job as f64, "the job's id");
            assert!(c.risk >= 1.0, "every candidate target's device is listed");
            assert_eq!(c.risk_penalty, budget.timeout_ms, "the node's timeout");
        }
        jobs.insert(job);
    }
    assert!(routes > 20, "{routes}");
    assert!(
        jobs.len() > 1,
        "each decision is told its own job: {jobs:?}"
    );
}

#[test]
fn an_energy_aware_model_changes_its_choice_when_the_share_is_tight() {
    let model = cost_model("fixture_energy_share");
    let candidates = vec![
        CandidateInput {
            target: Target::Tsu,
            estimate: estimate(1.0, 2.0),
        },
        CandidateInput {
            target: Target::CpuRef,
            estimate: estimate(6.0, 0.3),
        },
    ];
    let cheapest = |terms: &[CostTerms]| {
        let i = (0..terms.len())
            .min_by(|&a, &b| terms[a].total.total_cmp(&terms[b].total))
            .unwrap();
        candidates[i].target
    };
    // No energy target: the fastest.
    let free = score(&model, &Qos::default(), &candidates, None).unwrap();
    assert_eq!(cheapest(&free), Target::Tsu);
    // `energy_relative = 0.5` leaves this node 0.5 J: the frugal one.
    let qos = Qos {
        energy_relative: Some(0.5),
        ..Qos::default()
    };
    let mut tight = probe_situation();
    tight.share.energy_j = Some(0.5);
    let terms = score(&model, &qos, &candidates, Some(&tight)).unwrap();
    assert_eq!(cheapest(&terms), Target::CpuRef, "{terms:?}");

    // Through the engine: with the host's share from `energy_relative`, the
    // model's choices change; every decision is served by the plugin.
    let dir = tempfile::tempdir().unwrap();
    let hw = Hardware::default();
    let run = |relative: Option<f64>| {
        let graph = Graph::load(&fraud_with_energy_relative(dir.path(), relative)).unwrap();
        let trace = dir.path().join(format!("{relative:?}.jsonl"));
        let mut engine = one_class_engine(
            "fraud",
            graph,
            hw.clone(),
            with_cost("fixture_energy_share", &hw),
            EngineConfig {
                mode: Mode::Simulate,
                seed: 5,
                arrivals: Arrivals::Poisson {
                    jobs: 30,
                    rate_per_s: 20.0,
                },
                trace: Some(trace.clone()),
                ..Default::default()
            },
        );
        engine.run().unwrap();
        assert_eq!(engine.report().counters.policy_faults, 0);
        // The energy terms the model charged: non-zero only over a share.
        let over: f64 = read_trace(&trace)
            .unwrap()
            .events
            .iter()
            .filter_map(|e| match e {
                TraceEvent::Route { candidates, .. } => Some(
                    candidates
                        .iter()
                        .filter_map(|c| c.cost.map(|k| k.energy))
                        .sum::<f64>(),
                ),
                _ => None,
            })
            .sum();
        over
    };
    assert_eq!(run(None), 0.0, "no energy target, no energy term");
    assert!(run(Some(0.05)) > 0.0, "a tight share is seen and charged");
}

#[test]
fn a_total_that_is_not_the_sum_of_its_terms_is_a_fault_with_native_fallback() {
    let model = cost_model("fixture_inconsistent_total");
    let candidates = vec![CandidateInput {
        target: Target::Tsu,
        estimate: estimate(1.0, 0.1),
    }];
    let fault = score(&model, &Qos::default(), &candidates, None).unwrap_err();
    assert_eq!(fault.kind, "invalid_output");
    assert!(
        fault
            .reason
            .contains("is not latency + energy + error + risk"),
        "{fault:?}"
    );
    assert!(
        fault.policy.contains("fixture_inconsistent_total"),
        "{fault:?}"
    );

    // In a run: every decision faults, is traced, and the native model
    // decides (the same choices as a native run).
    // A breaker that never trips: every decision asks the plugin.
    let mut hw = Hardware::default();
    hw.plugins.breaker_faults = u32::MAX;
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let native_trace = dir.path().join("native.jsonl");
    let report = simulate_fraud(
        with_cost("fixture_inconsistent_total", &hw),
        &hw,
        10,
        &trace,
    );
    simulate_fraud(Policy::native(&hw), &hw, 10, &native_trace);
    assert!(report.counters.policy_faults > 0);
    let faults: Vec<_> = read_trace(&trace)
        .unwrap()
        .events
        .into_iter()
        .filter_map(|e| match e {
            TraceEvent::PolicyFault {
                role,
                fault,
                fallback,
                ..
            } => Some((role, fault, fallback)),
            _ => None,
        })
        .collect();
    assert_eq!(faults.len() as u64, report.counters.policy_faults);
    let (role, fault, fallback) = &faults[0];
    assert_eq!(
        (role.as_str(), fallback.as_str()),
        ("cost", "native cost model")
    );
    assert_eq!(fault.kind, "invalid_output");
    assert_eq!(choices(&trace), choices(&native_trace));
}

#[test]
fn a_declared_non_additive_model_is_accepted_and_explain_says_so() {
    let model = cost_model("fixture_non_additive");
    let candidates = vec![CandidateInput {
        target: Target::Tsu,
        estimate: estimate(1.0, 0.1),
    }];
    let terms = score(&model, &Qos::default(), &candidates, None).unwrap();
    assert!(terms[0].total < terms[0].latency + terms[0].energy + terms[0].error);
    assert!(!model.additive());
    assert!(cost_model("cost_rust").additive());

    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let out = run_in(
        dir.path(),
        &[
            "run",
            &example("graphs/fraud-triage.json"),
            "--mode",
            "simulate",
            "--jobs",
            "5",
            "--cost",
            guest("fixture_non_additive").to_str().unwrap(),
            "--trace",
            trace.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["counters"]["policy_faults"], 0);
    let explained = run_in(
        dir.path(),
        &[
            "explain",
            trace.to_str().unwrap(),
            "--job",
            "0",
            "--node",
            "posterior",
        ],
    );
    let text = String::from_utf8_lossy(&explained.stdout);
    assert!(explained.status.success(), "{text}");
    assert!(text.contains("CHOSEN"), "{text}");
    assert!(text.contains("non-additive cost model"), "{text}");

    // The additive default says nothing of the kind.
    let native_trace = dir.path().join("native.jsonl");
    let hw = Hardware::default();
    simulate_fraud(Policy::native(&hw), &hw, 3, &native_trace);
    let explained = run_in(
        dir.path(),
        &[
            "explain",
            native_trace.to_str().unwrap(),
            "--job",
            "0",
            "--node",
            "posterior",
        ],
    );
    let text = String::from_utf8_lossy(&explained.stdout);
    assert!(!text.contains("non-additive"), "{text}");
}
