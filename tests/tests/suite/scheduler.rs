//! The scheduler and QoS engine through its public API: routing and every
//! QoS input, admission and backpressure, preemption, budgets, failure
//! handling, gating and the review queue, learning and drift, traces.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use thermoroute::device::{Device, Target};
use thermoroute::engine::{
    Arrivals, Command, Engine, EngineConfig, JobClass, Mode, RunReport, Step,
};
use thermoroute::hardware::Hardware;
use thermoroute::model::Graph;
use thermoroute::perf::PerfTables;
use thermoroute::policy::{
    CandidateInput, CostModel, CostTerms, DecisionContext, EffectRequest, Gate, GateDecision,
    Policy, PolicyFault,
};
use thermoroute::review::{ReviewQueue, ReviewStatus};
use thermoroute::trace::{
    FailureAction, FailureKind, JobStatus, NodeStatus, TraceEvent, read_trace,
};

fn graph(value: Value) -> Graph {
    Graph::from_json(Path::new("test.json"), &value.to_string()).expect("valid test graph")
}

fn hardware(toml: &str) -> Hardware {
    Hardware::from_toml(Path::new("hw.toml"), toml).expect("valid test hardware")
}

/// The TSU figured by throughput (about 0.08 ms a job, not the chip's
/// 42 ms) and cost alone deciding, with no default rule: for the tests of
/// cost, budget and drift mechanics (`faithful.rs` tests the defaults).
const THROUGHPUT_COST_ONLY: &str =
    "[tsu]\nservice = \"throughput\"\n[policy]\nsampling_order = []\n";

/// An open chain of `n` spins, ferromagnetic, with a schedule of `samples`.
fn chain_program(n: usize, samples: u64, chains: u64) -> Value {
    let edges: Vec<[usize; 2]> = (0..n - 1).map(|i| [i, i + 1]).collect();
    json!({
        "ising": { "n": n, "biases": vec![0.1; n], "edges": edges, "weights": vec![0.3; n - 1] },
        "beta": 1.0,
        "schedule": { "warmup": 20, "samples": samples, "steps_per_sample": 1, "chains": chains }
    })
}

fn sample_graph(program: Value, qos: Value) -> Graph {
    graph(json!({
        "name": "sampling",
        "nodes": [{ "id": "s", "kind": "sample", "sample": { "program": program, "seed": 5 } }],
        "qos": qos
    }))
}

use thermoroute_tests::{
    arrivals_at, one_class_engine, run_engine as run, run_engine_traced as run_traced,
    trace_failures,
};

fn simulate_one(g: Graph, hw: Hardware) -> RunReport {
    run(
        vec![g],
        hw,
        EngineConfig {
            mode: Mode::Simulate,
            ..Default::default()
        },
    )
}

/// The target chosen for node `id` of the first job.
fn chosen(report: &RunReport, id: &str) -> Option<Target> {
    report.jobs[0]
        .nodes
        .iter()
        .find(|n| n.id == id)
        .unwrap()
        .backend
}

fn big_sampler() -> Value {
    // 64 spins x 40k sweeps x 4 chains = 10.2 M updates.
    chain_program(64, 40_000, 4)
}

#[test]
fn default_rules_emerge_from_the_cost_model() {
    let g = graph(json!({
        "nodes": [
            { "id": "x", "kind": "tensor", "tensor": { "op": "const", "value": { "shape": [256], "generator": { "seed": 1, "dist": "normal" } } } },
            { "id": "mlp", "kind": "nn", "inputs": ["x"], "nn": { "layers": [
                { "weights": { "shape": [256, 256], "generator": { "seed": 2, "dist": "normal" } }, "activation": "relu" } ] } },
            { "id": "s", "kind": "sample", "sample": { "program": big_sampler() } },
            { "id": "c", "kind": "control", "inputs": ["s"], "control": { "op": "threshold", "source": { "node": "s", "field": "marginal", "index": 0 }, "above": 0.5 } }
        ],
        "qos": { "batch_size": 256 }
    }));
    let r = simulate_one(g.clone(), Hardware::default());
    assert_eq!(
        chosen(&r, "mlp"),
        Some(Target::Gpu),
        "big NN inference: GPU"
    );
    assert_eq!(chosen(&r, "c"), Some(Target::Cpu), "branchy control: CPU");
    assert_eq!(
        chosen(&r, "s"),
        Some(Target::Tsu),
        "sampling with a TSU: TSU"
    );
    let r = simulate_one(g.clone(), hardware("[tsu]\ncount = 0\n"));
    assert_eq!(chosen(&r, "s"), Some(Target::GpuSim), "no TSU: GPU-sim");
    let r = simulate_one(g, hardware("[tsu]\ncount = 0\n[gpu]\ncount = 0\n"));
    assert_eq!(
        chosen(&r, "s"),
        Some(Target::CpuRef),
        "neither: CPU reference"
    );
    assert_eq!(chosen(&r, "mlp"), Some(Target::Cpu));
}

#[test]
fn infeasible_qos_is_an_explained_job_status() {
    let g = sample_graph(
        big_sampler(),
        json!({ "latency_ms": { "p50": 0.001, "p95": 0.002 } }),
    );
    let r = simulate_one(g, Hardware::default());
    let job = &r.jobs[0];
    assert_eq!(job.status, JobStatus::Infeasible);
    let why = job.explanation.as_deref().unwrap();
    assert!(
        why.contains("latency p95") && why.contains("best candidate"),
        "{why}"
    );
    assert_eq!(job.nodes[0].status, NodeStatus::Infeasible);
    assert_eq!(
        job.nodes[0].candidates.len(),
        3,
        "every candidate is reported"
    );
    assert!(job.nodes[0].candidates.iter().all(|c| !c.feasible));
}

#[test]
fn each_qos_input_changes_a_decision() {
    // Latency targets: without them the irreversible job avoids stochastic
    // hardware (risk) and, with latency free, takes the CPU reference.
    let slow_ok = "[weights]\nlatency = 0.0\nenergy = 0.0\n";
    let irreversible = |lat: Value| {
        let mut q = json!({ "risk": "irreversible" });
        if !lat.is_null() {
            q["latency_ms"] = lat;
        }
        sample_graph(big_sampler(), q)
    };
    let base = simulate_one(irreversible(Value::Null), hardware(slow_ok));
    assert_eq!(chosen(&base, "s"), Some(Target::CpuRef));
    let p95 = simulate_one(
        irreversible(json!({ "p50": 100, "p95": 100 })),
        hardware(slow_ok),
    );
    assert_eq!(chosen(&p95, "s"), Some(Target::GpuSim), "p95 target");
    let p50 = simulate_one(
        irreversible(json!({ "p50": 30, "p95": 10000 })),
        hardware(slow_ok),
    );
    assert_eq!(chosen(&p50, "s"), Some(Target::GpuSim), "p50 target");

    // Risk class.
    let reversible = simulate_one(sample_graph(big_sampler(), json!({})), Hardware::default());
    assert_eq!(chosen(&reversible, "s"), Some(Target::Tsu));
    let risky = simulate_one(
        sample_graph(big_sampler(), json!({ "risk": "irreversible" })),
        Hardware::default(),
    );
    assert_ne!(chosen(&risky, "s"), Some(Target::Tsu), "risk class");

    // Energy, absolute and relative to the all-CPU baseline: a power-hungry
    // GPU wins on cost but breaks the budget.
    let hungry = "[tsu]\ncount = 0\n[gpu]\nactive_w = 2000.0\n";
    let free = simulate_one(sample_graph(big_sampler(), json!({})), hardware(hungry));
    assert_eq!(chosen(&free, "s"), Some(Target::GpuSim));
    let abs = simulate_one(
        sample_graph(big_sampler(), json!({ "energy_j": 0.9 })),
        hardware(hungry),
    );
    assert_eq!(
        chosen(&abs, "s"),
        Some(Target::CpuRef),
        "absolute energy budget"
    );
    let rel = simulate_one(
        sample_graph(big_sampler(), json!({ "energy_relative": 1.2 })),
        hardware(hungry),
    );
    assert_eq!(
        chosen(&rel, "s"),
        Some(Target::CpuRef),
        "relative energy budget"
    );

    // Accuracy: the TSU's calibrated bias breaks a tight error target.
    let tight = simulate_one(
        sample_graph(big_sampler(), json!({ "accuracy": { "max_error": 0.005 } })),
        Hardware::default(),
    );
    assert_eq!(chosen(&tight, "s"), Some(Target::GpuSim), "accuracy target");

    // Availability: present (above), shared, queued.
    let shared = simulate_one(
        sample_graph(big_sampler(), json!({})),
        hardware("[tsu]\nshared_fraction = 0.001\n"),
    );
    assert_eq!(
        chosen(&shared, "s"),
        Some(Target::GpuSim),
        "a TSU shared down to 0.1%"
    );
    let queued = run(
        vec![sample_graph(big_sampler(), json!({}))],
        hardware("[gpu]\ncount = 4\n"),
        EngineConfig {
            mode: Mode::Simulate,
            arrivals: Arrivals::AtOnce { jobs: 40 },
            ..Default::default()
        },
    );
    let mix = &queued.classes[0].backend_mix[0].mix;
    assert!(mix.get(&Target::Tsu).is_some_and(|&k| k > 0), "{mix:?}");
    assert!(
        mix.get(&Target::GpuSim).is_some_and(|&k| k > 0),
        "a TSU queue sends work elsewhere: {mix:?}"
    );

    // Batch size: one input stays on the CPU, a batch of 256 goes to the GPU.
    let nn = |batch: usize| {
        graph(json!({
            "nodes": [
                { "id": "x", "kind": "tensor", "tensor": { "op": "const", "value": { "shape": [256], "generator": { "seed": 1, "dist": "normal" } } } },
                { "id": "mlp", "kind": "nn", "inputs": ["x"], "nn": { "layers": [
                    { "weights": { "shape": [256, 256], "generator": { "seed": 2, "dist": "normal" } }, "activation": "relu" } ] } }
            ],
            "qos": { "batch_size": batch }
        }))
    };
    assert_eq!(
        chosen(&simulate_one(nn(1), Hardware::default()), "mlp"),
        Some(Target::Cpu)
    );
    assert_eq!(
        chosen(&simulate_one(nn(256), Hardware::default()), "mlp"),
        Some(Target::Gpu),
        "batch size"
    );
}

fn mm3_classes() -> Vec<Graph> {
    let examples = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"));
    vec![
        Graph::load(&examples.join("graphs/mm3-interactive.json")).unwrap(),
        Graph::load(&examples.join("graphs/mm3-batch.json")).unwrap(),
    ]
}

fn mm3_hardware() -> Hardware {
    let examples = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"));
    Hardware::load(&examples.join("hardware/mm3.toml")).unwrap()
}

#[test]
fn overload_backpressures_batch_and_keeps_interactive_on_target() {
    // Capacity is 3 jobs/ms; offer 30 jobs/ms, 5% interactive.
    let jobs = 60_000;
    let r = run(
        mm3_classes(),
        mm3_hardware(),
        EngineConfig {
            mode: Mode::Simulate,
            seed: 11,
            arrivals: Arrivals::Poisson {
                jobs,
                rate_per_s: 30_000.0,
            },
            mix: vec![1.0, 19.0],
            record_jobs: true,
            ..Default::default()
        },
    );
    assert_eq!(r.submitted, jobs);
    assert_eq!(
        r.completed + r.rejected + r.infeasible + r.failed,
        jobs,
        "every job is terminal"
    );
    assert_eq!(r.in_flight, 0);
    assert_eq!(r.jobs.len() as u64, jobs, "every job is reported");
    let interactive = &r.classes[0];
    let batch = &r.classes[1];
    let p95 = interactive.latency_p95_ms.unwrap();
    assert!(
        p95 <= 10.0,
        "interactive p95 {p95} ms over its 10 ms target"
    );
    assert!(interactive.completed as f64 >= 0.99 * interactive.submitted as f64);
    assert!(
        batch.rejected as f64 > 0.5 * batch.submitted as f64,
        "batch is backpressured: {batch:?}"
    );
    for j in r.jobs.iter().filter(|j| j.status == JobStatus::Rejected) {
        let retry = j.retry_after_ms.expect("a rejection carries a retry-after");
        assert!(retry > 0.0 && retry.is_finite());
        assert!(j.explanation.as_deref().unwrap().contains("backpressure"));
    }
}

#[test]
fn preempted_batch_sampling_resumes_with_identical_results() {
    let batch = graph(json!({
        "name": "batch",
        "nodes": [{ "id": "s", "kind": "sample", "sample": { "program": chain_program(64, 3000, 2), "seed": 9 } }],
        "qos": { "priority": "batch" }
    }));
    let interactive = graph(json!({
        "name": "interactive",
        "nodes": [{ "id": "t", "kind": "tensor", "tensor": { "op": "const", "value": { "shape": [1], "data": [1.0] } } }],
        "qos": { "priority": "interactive" }
    }));
    let hw = hardware(
        "[cpu]\ncores = 1\n[gpu]\ncount = 0\n[tsu]\ncount = 0\n[budgets]\nslice_sweeps = 16\n",
    );
    let (preempted, events) = run_traced(
        vec![batch.clone(), interactive],
        hw.clone(),
        EngineConfig {
            mode: Mode::Execute,
            arrivals: arrivals_at(&[(0.0, 0), (1e-6, 1)]),
            threads: Some(1),
            ..Default::default()
        },
    );
    assert_eq!(preempted.counters.preemptions, 1);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, TraceEvent::Preempt { job: 0, .. }))
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, TraceEvent::Resume { job: 0, .. }))
    );
    // The interactive job finished before the batch job.
    let ends: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::JobEnd { job, .. } => Some(*job),
            _ => None,
        })
        .collect();
    assert_eq!(ends, [1, 0]);
    let alone = run(
        vec![batch],
        hw,
        EngineConfig {
            mode: Mode::Execute,
            threads: Some(1),
            ..Default::default()
        },
    );
    let hash = |r: &RunReport| r.jobs[0].nodes[0].output.as_ref().unwrap()["draws_hash"].clone();
    assert_eq!(preempted.jobs[0].class, "batch");
    assert_eq!(hash(&preempted), hash(&alone));
    assert!(hash(&alone).as_str().unwrap().starts_with("sha256:"));
}

#[test]
fn execute_mode_matches_the_reference_execution() {
    let g = graph(json!({
        "nodes": [
            { "id": "x", "kind": "tensor", "tensor": { "op": "const", "value": { "shape": [1], "data": [0.7] } } },
            { "id": "s", "kind": "sample", "inputs": ["x"], "sample": {
                "program": chain_program(6, 500, 2), "bias_from": [{ "node": "x", "vars": [0] }], "seed": 4 } }
        ],
        "qos": {}
    }));
    let reference = thermoroute::exec::execute(
        &g,
        thermoroute::exec::ExecOptions {
            seed: 0,
            threads: Some(1),
        },
    );
    let routed = run(
        vec![g],
        hardware("[tsu]\ncount = 0\n[gpu]\ncount = 0\n"),
        EngineConfig {
            threads: Some(1),
            ..Default::default()
        },
    );
    let out = routed.jobs[0].nodes[1].output.as_ref().unwrap();
    assert_eq!(out["draws_hash"], reference.nodes[1].output["draws_hash"]);
    assert_eq!(chosen(&routed, "s"), Some(Target::CpuRef));
    let gpu = &routed.jobs[0].nodes[1].candidates[1];
    assert_eq!(gpu.target, Target::GpuSim);
    assert!(gpu.reasons[0].contains("not present"), "{gpu:?}");
}

#[test]
fn backend_unavailable_falls_back_immediately() {
    // The TSU goes offline 1 microsecond in, while work is queued on it.
    let hw = hardware("[[faults]]\ndevice = \"tsu\"\nkind = \"offline\"\nfrom_ms = 0.001\n");
    let (r, events) = run_traced(
        vec![sample_graph(big_sampler(), json!({}))],
        hw,
        EngineConfig {
            mode: Mode::Simulate,
            arrivals: Arrivals::AtOnce { jobs: 3 },
            ..Default::default()
        },
    );
    assert_eq!(r.completed, 3);
    assert!(
        trace_failures(&events)
            .contains(&(FailureKind::BackendUnavailable, FailureAction::Fallback))
    );
    let mix = &r.classes[0].backend_mix[0].mix;
    assert_eq!(
        mix.get(&Target::Tsu),
        None,
        "the running job fails over at the moment the TSU goes: {mix:?}"
    );
    assert_eq!(
        mix.get(&Target::GpuSim),
        Some(&3),
        "running and queued ones fall back: {mix:?}"
    );
}

#[test]
fn budget_exceeded_reduces_samples_or_falls_back() {
    let qos = json!({ "latency_ms": { "p50": 5, "p95": 10 } });
    let with_slowdown = |factor: f64| {
        hardware(&format!(
            "{THROUGHPUT_COST_ONLY}[simulate]\nservice = \"deterministic\"\n[[faults]]\ndevice = \"tsu\"\nkind = \"slowdown\"\nfactor = {factor}\n"
        ))
    };
    // TSU service ~0.08 ms; timeout = 4 x 10 ms. 600x: 48 ms, 83% done at the cut.
    let (r, events) = run_traced(
        vec![sample_graph(big_sampler(), qos.clone())],
        with_slowdown(600.0),
        EngineConfig {
            mode: Mode::Simulate,
            ..Default::default()
        },
    );
    assert_eq!(
        r.jobs[0].status,
        JobStatus::Completed,
        "{:?}",
        r.jobs[0].explanation
    );
    assert_eq!(
        trace_failures(&events),
        [(FailureKind::BudgetExceeded, FailureAction::ReduceSamples)]
    );
    assert_eq!(chosen(&r, "s"), Some(Target::Tsu));
    // 10000x: 800 ms, 5% done: fall back to GPU-sim.
    let (r, events) = run_traced(
        vec![sample_graph(big_sampler(), qos)],
        with_slowdown(10_000.0),
        EngineConfig {
            mode: Mode::Simulate,
            ..Default::default()
        },
    );
    assert_eq!(r.jobs[0].status, JobStatus::Completed);
    assert_eq!(
        trace_failures(&events),
        [(FailureKind::BudgetExceeded, FailureAction::Fallback)]
    );
    assert_eq!(chosen(&r, "s"), Some(Target::GpuSim));
}

/// Two spins locked together at low temperature, chains started apart and
/// too short to mix: R-hat is far above 1.
fn stuck_sampler(effect_risk: &str) -> Graph {
    graph(json!({
        "name": "stuck",
        "nodes": [
            { "id": "s", "kind": "sample", "sample": { "seed": 1, "program": {
                "ising": { "n": 2, "biases": [0, 0], "edges": [[0, 1]], "weights": [4.0] },
                "beta": 3.0, "schedule": { "warmup": 0, "samples": 60, "steps_per_sample": 1, "chains": 6 } } } },
            { "id": "act", "kind": "effect", "inputs": ["s"], "effect": { "action": "restart service", "risk": effect_risk } }
        ],
        "qos": {}
    }))
}

#[test]
fn non_convergence_escalates_and_holds_effects_for_review() {
    let dir = tempfile::tempdir().unwrap();
    let reviews = dir.path().join("reviews.db");
    let (r, events) = run_traced(
        vec![stuck_sampler("reversible")],
        Hardware::default(),
        EngineConfig {
            reviews: Some(reviews.clone()),
            threads: Some(1),
            ..Default::default()
        },
    );
    assert!(
        trace_failures(&events)
            .contains(&(FailureKind::NonConvergence, FailureAction::EscalateReview))
    );
    assert_eq!(
        r.jobs[0].nodes[1].status,
        NodeStatus::Held,
        "even a reversible effect waits"
    );
    let q = ReviewQueue::open(&reviews).unwrap();
    let pending = q.pending().unwrap();
    let item = pending.first().expect("held in the queue");
    assert!(
        item.reasons.iter().any(|w| w.contains("did not converge")),
        "{:?}",
        item.reasons
    );
}

#[test]
fn constraint_infeasible_is_an_infeasible_result() {
    let examples = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"));
    let program: Value = serde_json::from_str(
        &std::fs::read_to_string(examples.join("programs/infeasible-clamp.json")).unwrap(),
    )
    .unwrap();
    for mode in [Mode::Execute, Mode::Simulate] {
        let r = run(
            vec![sample_graph(program.clone(), json!({}))],
            Hardware::default(),
            EngineConfig {
                mode,
                ..Default::default()
            },
        );
        assert_eq!(r.jobs[0].status, JobStatus::Infeasible);
        let why = r.jobs[0].explanation.as_deref().unwrap();
        assert!(why.contains("one_hot") || why.contains("one-hot"), "{why}");
    }
}

#[test]
fn gate_reviews_low_ess_denies_missing_provenance_and_applies_approvals() {
    let dir = tempfile::tempdir().unwrap();
    let reviews = dir.path().join("reviews.db");
    // Irreversible, evidence with ESS far below 400: held for review.
    let low_ess = graph(json!({
        "name": "low-ess",
        "nodes": [
            { "id": "s", "kind": "sample", "sample": { "program": chain_program(4, 40, 2), "seed": 2 } },
            { "id": "act", "kind": "effect", "inputs": ["s"], "effect": { "action": "wire money", "risk": "irreversible" } }
        ],
        "qos": {}
    }));
    let r = run(
        vec![low_ess.clone()],
        Hardware::default(),
        EngineConfig {
            reviews: Some(reviews.clone()),
            ..Default::default()
        },
    );
    assert_eq!(r.jobs[0].nodes[1].status, NodeStatus::Held);
    assert_eq!(r.counters.gate_review, 1);
    let mut q = ReviewQueue::open(&reviews).unwrap();
    let item = q.pending().unwrap()[0].clone();
    assert!(
        item.reasons.iter().any(|w| w.contains("ESS")),
        "{:?}",
        item.reasons
    );
    assert_eq!(item.action, "wire money");
    assert!(item.evidence[0].output_hash.is_some() && item.evidence[0].program_hash.is_some());
    assert_eq!(
        q.decide(&item.id, true, Some("ops".into()), None)
            .unwrap()
            .status,
        ReviewStatus::Applied
    );
    assert_eq!(
        ReviewQueue::open(&reviews).unwrap().items().unwrap()[0].status,
        ReviewStatus::Applied
    );

    // Simulated evidence is judged the same way: the modelled ESS of 80
    // draws is low, so the effect would be held, and is only recorded.
    let r = run(
        vec![low_ess],
        Hardware::default(),
        EngineConfig {
            mode: Mode::Simulate,
            reviews: Some(dir.path().join("simulated.json")),
            ..Default::default()
        },
    );
    assert_eq!(r.jobs[0].nodes[1].status, NodeStatus::Held);
    let out = r.jobs[0].nodes[1].output.as_ref().unwrap();
    assert_eq!(out["would_hold"], true, "{out}");
    assert_eq!(out["simulated"], true, "{out}");
    assert_eq!(out["applied"], false, "{out}");
    assert!(out["reasons"][0].as_str().unwrap().contains("ESS"), "{out}");
    assert!(!dir.path().join("simulated.json").exists());
}

#[test]
fn injected_slowdown_is_detected_as_drift_and_routing_shifts() {
    // Latency-only costs: the TSU (0.08 ms) beats GPU-sim (0.55 ms) until it
    // slows down 12x at t = 1 s.
    let hw = hardware(&format!(
        "{THROUGHPUT_COST_ONLY}[weights]\nenergy = 0.0\nerror = 0.0\n[simulate]\nservice = \"lognormal\"\ncv = 0.3\n\
         [[faults]]\ndevice = \"tsu\"\nkind = \"slowdown\"\nfactor = 12\nfrom_ms = 1000\n",
    ));
    let (r, events) = run_traced(
        vec![sample_graph(big_sampler(), json!({}))],
        hw,
        EngineConfig {
            mode: Mode::Simulate,
            seed: 3,
            arrivals: Arrivals::Poisson {
                jobs: 400,
                rate_per_s: 200.0,
            },
            ..Default::default()
        },
    );
    assert_eq!(r.completed, 400);
    let mut slow_observations = 0;
    let mut drift_at = None;
    for e in &events {
        match e {
            TraceEvent::End {
                t_ms,
                target: Target::Tsu,
                service_ms,
                ..
            } if *t_ms >= 1000.0 && *service_ms > 0.5 => slow_observations += 1,
            TraceEvent::Drift { t_ms, drift } => {
                assert_eq!(drift.target, Target::Tsu);
                assert_eq!(drift.direction, "up");
                assert!(*t_ms >= 1000.0, "no false alarm before the slowdown");
                drift_at.get_or_insert((*t_ms, slow_observations));
            }
            _ => {}
        }
    }
    let (t_drift, seen) = drift_at.expect("the slowdown is detected");
    assert!(seen <= 20, "detected after {seen} slow observations");
    let after: Vec<Target> = events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Route {
                t_ms,
                chosen: Some(t),
                ..
            } if *t_ms > t_drift => Some(*t),
            _ => None,
        })
        .collect();
    let to_gpu = after.iter().filter(|&&t| t == Target::GpuSim).count();
    assert!(
        to_gpu as f64 >= 0.9 * after.len() as f64,
        "routing shifts to GPU-sim: {to_gpu} of {}",
        after.len()
    );
}

#[test]
fn learned_tables_persist_between_runs() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let g = sample_graph(big_sampler(), json!({}));
    let mut engine = one_class_engine(
        "s",
        g.clone(),
        Hardware::default(),
        Policy::native(&Hardware::default()),
        EngineConfig {
            mode: Mode::Simulate,
            arrivals: Arrivals::AtOnce { jobs: 30 },
            ..Default::default()
        },
    );
    engine.run().unwrap();
    engine.tables().save(&state).unwrap();
    let loaded = PerfTables::load(&state).unwrap();
    let sampling: Vec<_> = loaded
        .entries()
        .iter()
        .filter(|e| e.class.starts_with("sample:ising:"))
        .collect();
    assert_eq!(
        sampling.iter().map(|e| e.total).sum::<u64>(),
        30,
        "every observation is kept"
    );
    assert!(
        sampling
            .iter()
            .any(|e| e.target == Target::Tsu && e.total > 0)
    );
}

/// A user's cost model: every candidate's total is `total_of` it.
struct TotalOf {
    name: &'static str,
    total_of: fn(&CandidateInput) -> f64,
}

impl CostModel for TotalOf {
    fn name(&self) -> &str {
        self.name
    }
    fn score(&self, ctx: &DecisionContext, out: &mut Vec<CostTerms>) -> Result<(), PolicyFault> {
        out.clear();
        out.extend(ctx.candidates.iter().map(|c| CostTerms {
            total: (self.total_of)(c),
            ..Default::default()
        }));
        Ok(())
    }
}

/// A user's policy that keeps work on CPUs whenever they are eligible.
const CPU_FIRST: TotalOf = TotalOf {
    name: "cpu-first",
    total_of: |c| {
        if c.target.device() == Device::Cpu {
            0.0
        } else {
            1.0
        }
    },
};

/// A cost model that returns garbage.
const BROKEN: TotalOf = TotalOf {
    name: "broken",
    total_of: |_| f64::NAN,
};

/// A gate that cannot answer.
struct Trapping;
impl Gate for Trapping {
    fn name(&self) -> &str {
        "trapping"
    }
    fn decide(&self, _: &EffectRequest) -> Result<GateDecision, PolicyFault> {
        Err(PolicyFault {
            policy: "trapping".into(),
            reason: "wasm trap: unreachable".into(),
            kind: "trap".into(),
            ..Default::default()
        })
    }
}

#[test]
fn the_engine_is_steered_while_it_runs() {
    let hw = hardware("[tsu]\ncount = 0\n");
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let mut engine = one_class_engine(
        "s",
        sample_graph(big_sampler(), json!({})),
        hw.clone(),
        Policy::native(&hw),
        EngineConfig {
            mode: Mode::Simulate,
            arrivals: Arrivals::Poisson {
                jobs: 300,
                rate_per_s: 100.0,
            },
            trace: Some(trace.clone()),
            ..Default::default()
        },
    );
    engine.run_until(500.0).unwrap();
    engine.command(Command::Pause).unwrap();
    assert_eq!(engine.step().unwrap(), Step::Paused);
    engine.command(Command::Resume).unwrap();
    engine.command(Command::SetRate { per_s: 1000.0 }).unwrap();
    engine
        .command(Command::SetOnline {
            device: Device::Gpu,
            online: false,
        })
        .unwrap();
    engine.run_until(engine.now_ms() + 50.0).unwrap();
    engine
        .command(Command::SetOnline {
            device: Device::Gpu,
            online: true,
        })
        .unwrap();
    let mut swapped = Policy::native(&hw);
    swapped.cost = Box::new(CPU_FIRST);
    engine.command(Command::SwapPolicy(swapped)).unwrap();
    engine.run_until(engine.now_ms() + 50.0).unwrap();
    let mut broken = Policy::native(&hw);
    broken.cost = Box::new(BROKEN);
    engine.command(Command::SwapPolicy(broken)).unwrap();
    engine.run().unwrap();
    assert!(
        engine
            .command(Command::SetRate { per_s: f64::NAN })
            .is_err()
    );
    let r = engine.report();
    assert_eq!(r.completed, 300);
    assert!(r.counters.policy_faults > 0);
    let events = read_trace(&trace).unwrap().events;
    let controls = events
        .iter()
        .filter(|e| matches!(e, TraceEvent::Control { .. }))
        .count();
    assert_eq!(controls, 7);
    // Phase by phase: GPU-sim by default, CPU while the GPU is offline,
    // CPU under the swapped-in policy, GPU-sim again once the broken model
    // falls back to the native one.
    let mut phase = 0;
    let mut seen: Vec<Vec<Target>> = vec![Vec::new(); 5];
    for e in &events {
        match e {
            TraceEvent::Control { command, .. } => {
                let name = command["command"].as_str().unwrap();
                if matches!(name, "set_online" | "swap_policy") {
                    phase += 1;
                }
            }
            TraceEvent::Route {
                chosen: Some(t), ..
            } => seen[phase.min(4)].push(*t),
            _ => {}
        }
    }
    assert!(
        seen[0].iter().all(|&t| t == Target::GpuSim),
        "{:?}",
        seen[0]
    );
    assert!(!seen[1].is_empty() && seen[1].iter().all(|&t| t == Target::CpuRef));
    assert!(
        !seen[3].is_empty() && seen[3].iter().all(|&t| t == Target::CpuRef),
        "cpu first: {:?}",
        seen[3]
    );
    assert!(!seen[4].is_empty() && seen[4].iter().all(|&t| t == Target::GpuSim));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, TraceEvent::PolicyFault { .. }))
    );
}

#[test]
fn a_failing_gate_fails_closed() {
    let hw = Hardware::default();
    let mut policy = Policy::native(&hw);
    policy.gate = Box::new(Trapping);
    let g = graph(json!({
        "nodes": [
            { "id": "x", "kind": "tensor", "tensor": { "op": "const", "value": { "shape": [1], "data": [1.0] } } },
            { "id": "act", "kind": "effect", "inputs": ["x"], "effect": { "action": "deploy", "risk": "reversible" } }
        ],
        "qos": {}
    }));
    let mut engine = one_class_engine("g", g, hw, policy, EngineConfig::default());
    engine.run().unwrap();
    let r = engine.report();
    assert_eq!(r.jobs[0].nodes[1].status, NodeStatus::Denied);
    assert_eq!(r.counters.policy_faults, 1);
}

#[test]
fn bad_engine_inputs_are_typed_errors() {
    let g = sample_graph(chain_program(3, 10, 1), json!({}));
    let class = || {
        vec![JobClass {
            name: "g".into(),
            graph: g.clone(),
        }]
    };
    let hw = Hardware::default();
    let err = |config: EngineConfig, classes: Vec<JobClass>| {
        Engine::new(
            classes,
            hw.clone(),
            Policy::native(&hw),
            PerfTables::default(),
            config,
        )
        .unwrap_err()
        .to_string()
    };
    assert!(err(EngineConfig::default(), vec![]).contains("no job classes"));
    assert!(
        err(
            EngineConfig {
                mix: vec![1.0, 2.0],
                ..Default::default()
            },
            class()
        )
        .contains("--mix")
    );
    assert!(
        err(
            EngineConfig {
                arrivals: Arrivals::Poisson {
                    jobs: 1,
                    rate_per_s: -1.0
                },
                ..Default::default()
            },
            class()
        )
        .contains("rate")
    );
    assert!(
        err(
            EngineConfig {
                arrivals: arrivals_at(&[(0.0, 4)]),
                ..Default::default()
            },
            class()
        )
        .contains("class 4")
    );
    assert!(
        err(
            EngineConfig {
                trace: Some(PathBuf::from("/nonexistent/dir/t.jsonl")),
                ..Default::default()
            },
            class()
        )
        .contains("/nonexistent/dir/t.jsonl")
    );
}

#[test]
fn mm3_simulation_agrees_with_queueing_theory() {
    // Single class M/M/3 at rho = 0.9: Erlang C gives P(wait) = 0.7958 and a
    // mean response time of 1 + P(wait) / (3 - 2.7) = 3.653 ms.
    let classes = vec![mm3_classes().remove(1)];
    let r = run(
        classes,
        mm3_hardware(),
        EngineConfig {
            mode: Mode::Simulate,
            seed: 5,
            arrivals: Arrivals::Poisson {
                jobs: 400_000,
                rate_per_s: 2_700.0,
            },
            record_jobs: true,
            ..Default::default()
        },
    );
    assert_eq!(r.completed, 400_000);
    let mean: f64 = r.jobs.iter().map(|j| j.latency_ms).sum::<f64>() / r.jobs.len() as f64;
    // Batch means over 40 blocks of 10k jobs give the Monte Carlo error.
    let blocks: Vec<f64> = r
        .jobs
        .chunks(10_000)
        .map(|b| b.iter().map(|j| j.latency_ms).sum::<f64>() / b.len() as f64)
        .collect();
    let bm = blocks.iter().sum::<f64>() / blocks.len() as f64;
    let sd =
        (blocks.iter().map(|b| (b - bm).powi(2)).sum::<f64>() / (blocks.len() - 1) as f64).sqrt();
    let se = sd / (blocks.len() as f64).sqrt();
    assert!(
        (mean - 3.653).abs() < 4.0 * se + 0.01,
        "mean response {mean:.4} ms, se {se:.4}"
    );
}

#[test]
fn tsu_availability_windows_and_injected_errors_steer_routing() {
    // A TSU by throughput: its job at 150 ms ends inside the window (the
    // devkit chip's would still run at 200 ms, and a device going offline
    // fails its running work).
    let hw = hardware(
        "[tsu]\nservice = \"throughput\"\navailability = [{ from_ms = 100, to_ms = 200 }]\n\
         [policy]\nsampling_order = []\n",
    );
    let r = run(
        vec![sample_graph(big_sampler(), json!({}))],
        hw,
        EngineConfig {
            mode: Mode::Simulate,
            arrivals: arrivals_at(&[(50.0, 0), (150.0, 0), (250.0, 0)]),
            ..Default::default()
        },
    );
    let targets: Vec<_> = r.jobs.iter().map(|j| j.nodes[0].backend).collect();
    assert_eq!(
        targets,
        [
            Some(Target::GpuSim),
            Some(Target::Tsu),
            Some(Target::GpuSim)
        ]
    );
    let tsu = &r.jobs[0].nodes[0].candidates[0];
    assert!(
        !tsu.eligible && tsu.reasons[0].contains("offline"),
        "{tsu:?}"
    );

    let (r, events) = run_traced(
        vec![sample_graph(big_sampler(), json!({}))],
        hardware("[[faults]]\ndevice = \"tsu\"\nkind = \"error\"\n"),
        EngineConfig {
            mode: Mode::Simulate,
            ..Default::default()
        },
    );
    assert_eq!(r.jobs[0].status, JobStatus::Completed);
    assert_eq!(chosen(&r, "s"), Some(Target::GpuSim));
    assert_eq!(
        trace_failures(&events),
        [(FailureKind::BackendError, FailureAction::Fallback)]
    );
}

#[test]
fn a_node_is_held_to_its_share_of_the_latency_budget() {
    // Two equal samplers in sequence: the first must finish by half of a
    // 160 ms p95 budget. The CPU reference (p95 ~ 3 x 30 ms = 90 ms) fits
    // the whole budget but not that share, so the first goes to the GPU.
    let program = chain_program(64, 20_000, 4);
    let g = |p95: f64| {
        graph(json!({
            "nodes": [
                { "id": "a", "kind": "sample", "sample": { "program": program } },
                { "id": "b", "kind": "sample", "inputs": ["a"], "sample": { "program": program } }
            ],
            "qos": { "latency_ms": { "p50": p95, "p95": p95 }, "risk": "irreversible" }
        }))
    };
    let hw = "[tsu]\ncount = 0\n[weights]\nlatency = 0.0\nenergy = 0.0\n";
    let generous = simulate_one(g(1000.0), hardware(hw));
    assert_eq!(chosen(&generous, "a"), Some(Target::CpuRef));
    let split = simulate_one(g(160.0), hardware(hw));
    assert_eq!(
        chosen(&split, "a"),
        Some(Target::GpuSim),
        "its share, not the whole budget"
    );
    // The second node inherits the slack the first one left: the rest of
    // the budget is its share, and the CPU reference fits it.
    assert_eq!(chosen(&split, "b"), Some(Target::CpuRef));
}

#[test]
fn interactive_sampling_preempts_batch_sampling_in_simulation() {
    let batch = graph(json!({
        "name": "batch",
        "nodes": [{ "id": "s", "kind": "sample", "sample": { "program": big_sampler() } }],
        "qos": { "priority": "batch" }
    }));
    let interactive = graph(json!({
        "name": "interactive",
        "nodes": [{ "id": "s", "kind": "sample", "sample": { "program": big_sampler() } }],
        "qos": { "priority": "interactive" }
    }));
    let hw = hardware(
        "[gpu]\ncount = 0\n[cpu]\ncores = 1\n[simulate]\nservice = \"deterministic\"\n[tsu]\nshared_fraction = 0.01\n",
    );
    let r = run(
        vec![batch, interactive],
        hw,
        EngineConfig {
            mode: Mode::Simulate,
            arrivals: arrivals_at(&[(0.0, 0), (0.5, 1)]),
            ..Default::default()
        },
    );
    assert_eq!(r.counters.preemptions, 1);
    assert_eq!(r.completed, 2);
    let (b, i) = (&r.jobs[0], &r.jobs[1]);
    assert_eq!(b.nodes[0].backend, Some(Target::Tsu));
    assert!(
        i.arrival_ms + i.latency_ms < b.arrival_ms + b.latency_ms,
        "interactive finished first"
    );
    // The batch job lost no work: its busy time is its full service time.
    let solo = simulate_one(
        graph(json!({
            "nodes": [{ "id": "s", "kind": "sample", "sample": { "program": big_sampler() } }],
            "qos": { "priority": "batch" }
        })),
        hardware(
            "[gpu]\ncount = 0\n[cpu]\ncores = 1\n[simulate]\nservice = \"deterministic\"\n[tsu]\nshared_fraction = 0.01\n",
        ),
    );
    let waited = b.latency_ms - solo.jobs[0].latency_ms;
    assert!(
        (waited - i.latency_ms).abs() < 1e-6,
        "batch waited exactly the interactive service: {waited} vs {}",
        i.latency_ms
    );
}

#[test]
fn sampling_stops_early_once_converged() {
    let hw =
        hardware("[budgets]\nearly_stop_ess = 400.0\nearly_stop_rhat = 1.05\nslice_sweeps = 200\n");
    let (r, events) = run_traced(
        vec![sample_graph(chain_program(8, 20_000, 4), json!({}))],
        hw,
        EngineConfig {
            threads: Some(1),
            ..Default::default()
        },
    );
    assert_eq!(r.counters.early_stops, 1);
    let out = r.jobs[0].nodes[0].output.as_ref().unwrap();
    let samples = out["samples"].as_u64().unwrap();
    assert!(samples < 20_000, "stopped at {samples}");
    assert!(out["min_ess_bulk"].as_f64().unwrap() >= 400.0);
    assert!(out["degraded"].as_str().unwrap().contains("stopped early"));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, TraceEvent::EarlyStop { .. }))
    );
}

#[test]
fn diagnostics_degrade_under_load_and_marginals_stay() {
    // One core, a queue of 10: the first jobs finish while the queue is
    // nearly full (no diagnostics), later ones as it drains (basic, full).
    let hw = hardware(
        "[cpu]\ncores = 1\n[gpu]\ncount = 0\n[tsu]\ncount = 0\n[queues]\ncpu = 10\nbatch_share = 1.0\n",
    );
    let r = run(
        vec![sample_graph(chain_program(40, 200, 2), json!({}))],
        hw,
        EngineConfig {
            arrivals: Arrivals::AtOnce { jobs: 11 },
            threads: Some(1),
            ..Default::default()
        },
    );
    assert_eq!(r.completed, 11);
    let levels: Vec<String> = r
        .jobs
        .iter()
        .map(|j| {
            j.nodes[0].output.as_ref().unwrap()["diagnostics_level"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for level in ["none", "basic", "full"] {
        assert!(levels.iter().any(|l| l == level), "{levels:?}");
    }
    for j in &r.jobs {
        let out = j.nodes[0].output.as_ref().unwrap();
        assert_eq!(
            out["marginals"].as_array().unwrap().len(),
            40,
            "core results are kept"
        );
    }
    assert!(r.counters.degraded_diagnostics > 0);
}

#[test]
fn changing_cost_weights_while_running_changes_decisions() {
    let hw = hardware(THROUGHPUT_COST_ONLY);
    let mut engine = one_class_engine(
        "s",
        sample_graph(big_sampler(), json!({ "risk": "irreversible" })),
        hw.clone(),
        Policy::native(&hw),
        EngineConfig {
            mode: Mode::Simulate,
            arrivals: arrivals_at(&[(0.0, 0), (10.0, 0)]),
            ..Default::default()
        },
    );
    engine.run_until(5.0).unwrap();
    engine
        .command(Command::SetWeights(thermoroute::hardware::Weights {
            risk: 0.0,
            ..hw.weights
        }))
        .unwrap();
    engine.run().unwrap();
    let r = engine.report();
    assert_ne!(
        r.jobs[0].nodes[0].backend,
        Some(Target::Tsu),
        "risk keeps it off the TSU"
    );
    assert_eq!(
        r.jobs[1].nodes[0].backend,
        Some(Target::Tsu),
        "risk weight 0: cheapest wins"
    );
}
