//! Policy plugins: hostile fixtures are contained, the Rust plugins match
//! the native defaults, hot reload swaps good versions and refuses broken
//! ones, the sandbox grants nothing, and the compile cache is used.

use std::path::Path;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thermoroute::device::Target;
use thermoroute::engine::{Arrivals, Engine, EngineConfig, JobClass, Mode};
use thermoroute::hardware::{
    GateSpec, GateThresholds, Hardware, PolicySpec, StochasticityPolicy, Weights,
};
use thermoroute::model::Schedule;
use thermoroute::model::graph::{AccuracyTarget, LatencyTarget, NodeKind, Priority, Qos, Risk};
use thermoroute::plugin::{PluginCost, PluginEligibility, PluginGate, PluginSet, Runtime};
use thermoroute::policy::{
    BackendLimits, CandidateInput, CostModel, DecisionContext, DiagnosticsLevel, EffectRequest,
    Eligibility, EligibilityQuery, Estimate, Evidence, Gate, GateDecision, NativeCost,
    NativeEligibility, NativeGate, NodeSummary, Policy, ProgramSummary,
};
use thermoroute::trace::{TraceEvent, read_trace};
use thermoroute_tests::{
    example, guest, plugin_runtime as runtime, simulate_fraud, wait_for_notice,
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

fn candidates() -> Vec<CandidateInput> {
    [Target::Tsu, Target::GpuSim, Target::CpuRef]
        .map(|target| CandidateInput {
            target,
            estimate: Estimate {
                latency_p50_ms: 2.0,
                latency_p95_ms: 5.0,
                queue_wait_ms: 0.5,
                energy_j: 0.1,
                error: 0.01,
            },
        })
        .to_vec()
}

fn score(
    model: &dyn CostModel,
) -> Result<Vec<thermoroute::policy::CostTerms>, thermoroute::policy::PolicyFault> {
    let node = sample_node();
    let qos = Qos::default();
    let weights = Weights::default();
    let ctx = DecisionContext {
        candidates: &[],
        node: &node,
        qos: &qos,
        weights: &weights,
        situation: None,
    };
    let mut out = Vec::new();
    model
        .score(
            &DecisionContext {
                candidates: &candidates(),
                ..ctx
            },
            &mut out,
        )
        .map(|()| out)
}

fn cost_plugin(name: &str) -> PluginCost {
    // A deadline long enough that fuel, the deterministic bound, always
    // stops the hostile loops first, even on a loaded machine.
    let ceilings = thermoroute::hardware::PluginCeilings {
        deadline_ms: 1000,
        ..Default::default()
    };
    PluginCost::open_with(
        runtime(),
        &guest(name),
        PolicySpec::default(),
        &ceilings,
        None,
    )
    .unwrap_or_else(|e| panic!("{name} loads: {e}"))
}

#[test]
fn each_hostile_cost_model_is_contained_with_a_typed_fault() {
    for (fixture, kind, says) in [
        ("fixture_loop", "out_of_fuel", "fuel"),
        ("fixture_memory_bomb", "memory_limit", "memory limit"),
        ("fixture_recursion", "stack_overflow", "call stack"),
        ("fixture_panic", "trap", "unreachable"),
        ("fixture_guest_error", "guest_error", "refuses to score"),
        ("fixture_nan_cost", "invalid_output", "NaN"),
        ("fixture_negative_cost", "invalid_output", "-1"),
        ("fixture_infinite_cost", "invalid_output", "inf"),
        (
            "fixture_wrong_length",
            "invalid_output",
            "4 costs for 3 candidates",
        ),
    ] {
        let model = cost_plugin(fixture);
        let started = Instant::now();
        // Twice: a trapped instance is rebuilt and fails the same way.
        for _ in 0..2 {
            let fault = score(&model).expect_err(fixture);
            assert_eq!(fault.kind, kind, "{fixture}: {fault}");
            assert!(fault.reason.contains(says), "{fixture}: {}", fault.reason);
            assert!(
                fault.policy.starts_with(&format!("plugin:{fixture}")),
                "{}",
                fault.policy
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{fixture} was not stopped"
        );
    }
}

#[test]
fn a_gate_answering_with_a_huge_string_is_invalid_output() {
    // Writing and copying 8 MiB can outlast the default 100 ms deadline on a
    // loaded machine; the most a manifest may ask for keeps this test about
    // the answer's size, not the clock.
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("huge.wasm");
    std::fs::copy(guest("fixture_huge_string"), &plugin).unwrap();
    std::fs::write(
        dir.path().join("huge.toml"),
        "[limits]\ndeadline_ms = 1000\n",
    )
    .unwrap();
    let gate = PluginGate::open(runtime(), &plugin, GateSpec::default(), None).unwrap();
    let fault = gate.decide(&request(Risk::Reversible, vec![])).unwrap_err();
    assert_eq!(fault.kind, "invalid_output");
    assert!(fault.reason.contains("8388608 bytes"), "{}", fault.reason);
}

#[test]
fn the_sandbox_grants_no_files_environment_clocks_or_network() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("snoop.wasm");
    std::fs::copy(guest("fixture_wasi_snoop"), &plugin).unwrap();
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "a file right next to the plugin").unwrap();
    let gate = PluginGate::open(runtime(), &plugin, GateSpec::default(), None).unwrap();
    for path in [secret.to_str().unwrap(), "secret.txt", "/etc/passwd"] {
        let mut r = request(Risk::Reversible, vec![]);
        r.action = path.into();
        let GateDecision::Deny(report) = gate.decide(&r).unwrap() else {
            panic!("the snoop fixture always denies with its report");
        };
        assert!(
            report[0].starts_with("file: denied"),
            "{path}: {}",
            report[0]
        );
        assert!(report[1].starts_with("dir: denied"), "{}", report[1]);
        assert_eq!(report[2], "env: 0 variables");
        assert!(
            report[3].starts_with("clock: wall 0 ns, monotonic elapsed 0 ns"),
            "{}",
            report[3]
        );
        assert!(report[4].starts_with("net: denied"), "{}", report[4]);
    }
}

fn evidence(rng: &mut ChaCha8Rng) -> Evidence {
    let maybe = |rng: &mut ChaCha8Rng, s: &str| rng.random_bool(0.85).then(|| s.to_string());
    let inputs = rng.random_range(0..3usize);
    Evidence {
        node: format!("n{}", rng.random_range(0..5)),
        kind: [
            None,
            Some(NodeKind::Sample),
            Some(NodeKind::Nn),
            Some(NodeKind::Control),
        ][rng.random_range(0..4)],
        backend: maybe(rng, "tsu"),
        schedule: rng.random_bool(0.85).then_some(Schedule {
            warmup: 10,
            samples: 100,
            steps_per_sample: 1,
            chains: 4,
        }),
        program_hash: maybe(rng, "sha256:01"),
        inputs,
        input_hashes: (0..rng.random_range(0..=inputs))
            .map(|i| format!("sha256:{i}"))
            .collect(),
        output_hash: maybe(rng, "sha256:02"),
        max_rhat: rng.random_bool(0.9).then(|| rng.random_range(0.99..1.2)),
        min_ess_bulk: rng.random_bool(0.9).then(|| rng.random_range(0.0..2000.0)),
        constraint_rate: rng.random_bool(0.5).then(|| rng.random_range(0.8..=1.0)),
        diagnostics_level: [
            None,
            Some(DiagnosticsLevel::None),
            Some(DiagnosticsLevel::Basic),
            Some(DiagnosticsLevel::Full),
        ][rng.random_range(0..4)],
        simulated: false,
    }
}

fn request(risk: Risk, evidence: Vec<Evidence>) -> EffectRequest {
    EffectRequest {
        node: "act".into(),
        action: "block card".into(),
        risk,
        priority: Priority::Interactive,
        evidence,
        escalations: vec![],
    }
}

fn random_qos(rng: &mut ChaCha8Rng) -> Qos {
    Qos {
        latency_ms: rng.random_bool(0.5).then(|| LatencyTarget {
            p50: rng.random_range(1.0..10.0),
            p95: rng.random_range(10.0..100.0),
        }),
        energy_j: rng.random_bool(0.3).then(|| rng.random_range(0.0..5.0)),
        accuracy: rng.random_bool(0.3).then(|| AccuracyTarget {
            max_error: rng.random_range(0.0..0.1),
        }),
        risk: if rng.random_bool(0.5) {
            Risk::Irreversible
        } else {
            Risk::Reversible
        },
        priority: if rng.random_bool(0.5) {
            Priority::Interactive
        } else {
            Priority::Batch
        },
        ..Qos::default()
    }
}

fn random_node(rng: &mut ChaCha8Rng) -> NodeSummary {
    let kind = [
        NodeKind::Control,
        NodeKind::Tensor,
        NodeKind::Nn,
        NodeKind::Sample,
        NodeKind::Effect,
    ][rng.random_range(0..5)];
    let count = |rng: &mut ChaCha8Rng| {
        if rng.random_bool(0.6) {
            0
        } else {
            rng.random_range(1..4)
        }
    };
    NodeSummary {
        kind,
        class: format!("{}:x:2^{}", kind.name(), rng.random_range(0..20)),
        flops: rng.random_range(0.0..1e9),
        bytes: rng.random_range(0.0..1e7),
        program: (kind == NodeKind::Sample || rng.random_bool(0.1)).then(|| ProgramSummary {
            n_vars: rng.random_range(1..10_000),
            n_spins: rng.random_range(0..10_000),
            n_categorical: count(rng),
            n_factors: count(rng),
            n_constraints: count(rng),
            n_edges: rng.random_range(0..50_000),
            n_clamped: rng.random_range(0..10),
            runtime_conditioning: rng.random_bool(0.3),
            chains: rng.random_range(1..16),
            samples: rng.random_range(1..5000),
            sweeps_per_chain: rng.random_range(1..200_000),
            updates: rng.random_range(0.0..1e10),
        }),
    }
}

#[test]
fn rust_plugins_match_the_native_defaults_on_thousands_of_random_inputs() {
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    const CASES: usize = 3000;
    for case in 0..CASES {
        let spec = PolicySpec {
            hardware_stochasticity: [
                StochasticityPolicy::Always,
                StochasticityPolicy::ReversibleOnly,
                StochasticityPolicy::Never,
            ][case % 3],
            tsu_irreversible_penalty: rng.random_range(0.0..5.0),
            gpu_sim_irreversible_penalty: rng.random_range(0.0..5.0),
            ..PolicySpec::default()
        };
        // A fresh plugin per spec would be slow: specs change every 100 cases.
        if case % 100 != 0 {
            continue;
        }
        let native_cost = NativeCost {
            policy: spec.clone(),
        };
        let plugin_cost = cost_plugin_with("cost_rust", spec.clone());
        let native_elig = NativeEligibility {
            policy: spec.clone(),
        };
        let plugin_elig =
            PluginEligibility::open(runtime(), &guest("eligibility_rust"), spec.clone(), None)
                .unwrap();
        let thresholds = |rng: &mut ChaCha8Rng| GateThresholds {
            always_review: rng.random_bool(0.2),
            min_ess: rng.random_range(0.0..1000.0),
            max_rhat: rng.random_range(1.0..1.2),
            min_constraint_rate: rng.random_range(0.9..=1.0),
            require_provenance: rng.random_bool(0.5),
        };
        let gate_spec = GateSpec {
            reversible: thresholds(&mut rng),
            irreversible: thresholds(&mut rng),
            ..GateSpec::default()
        };
        let native_gate = NativeGate {
            spec: gate_spec.clone(),
        };
        let plugin_gate =
            PluginGate::open(runtime(), &guest("gate_rust"), gate_spec, None).unwrap();
        for _ in 0..100 {
            let node = random_node(&mut rng);
            let qos = random_qos(&mut rng);
            let weights = Weights {
                latency: rng.random_range(0.0..10.0),
                energy: rng.random_range(0.0..1000.0),
                error: rng.random_range(0.0..1000.0),
                risk: rng.random_range(0.0..100.0),
            };
            let ctx = DecisionContext {
                candidates: &[],
                node: &node,
                qos: &qos,
                weights: &weights,
                situation: None,
            };
            let cands: Vec<CandidateInput> = (0..rng.random_range(0..6))
                .map(|_| CandidateInput {
                    target: Target::ALL[rng.random_range(0..5)],
                    estimate: Estimate {
                        latency_p50_ms: rng.random_range(0.0..1e4),
                        latency_p95_ms: rng.random_range(0.0..1e4),
                        queue_wait_ms: rng.random_range(0.0..1e3),
                        energy_j: rng.random_range(0.0..10.0),
                        error: rng.random_range(0.0..0.5),
                    },
                })
                .collect();
            let (mut a, mut b) = (Vec::new(), Vec::new());
            native_cost
                .score(
                    &DecisionContext {
                        candidates: &cands,
                        ..ctx
                    },
                    &mut a,
                )
                .unwrap();
            plugin_cost
                .score(
                    &DecisionContext {
                        candidates: &cands,
                        ..ctx
                    },
                    &mut b,
                )
                .unwrap();
            assert_eq!(a, b, "cost differs for {node:?} {qos:?}");

            let target = Target::ALL[rng.random_range(0..5)];
            let limits = BackendLimits {
                max_vars: rng.random_range(1..20_000),
                max_sweeps: rng.random_range(1..300_000),
                runtime_bias: rng.random_bool(0.5),
            };
            let query = EligibilityQuery {
                node: &node,
                qos: &qos,
                target,
                limits: &limits,
                job: None,
            };
            assert_eq!(
                native_elig.verdict(&query).unwrap(),
                plugin_elig.verdict(&query).unwrap(),
                "eligibility differs for {node:?} on {target}"
            );

            let mut r = request(
                qos.risk,
                (0..rng.random_range(0..4))
                    .map(|_| evidence(&mut rng))
                    .collect(),
            );
            if rng.random_bool(0.3) {
                r.escalations.push("sampler did not converge".into());
            }
            assert_eq!(
                native_gate.decide(&r).unwrap(),
                plugin_gate.decide(&r).unwrap(),
                "gate differs for {r:?}"
            );
        }
    }
}

fn cost_plugin_with(name: &str, spec: PolicySpec) -> PluginCost {
    PluginCost::open(runtime(), &guest(name), spec, None).unwrap()
}

/// Rewrites a file so its modification time surely changes.
fn replace(file: &Path, with: &Path) {
    let tmp = file.with_extension("new");
    std::fs::copy(with, &tmp).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::rename(&tmp, file).unwrap();
}

#[test]
fn hot_reload_swaps_a_good_version_and_refuses_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cost.wasm");
    std::fs::copy(guest("fixture_nan_cost"), &file).unwrap();
    let model = PluginCost::open(
        runtime(),
        &file,
        PolicySpec::default(),
        Some(Duration::from_millis(25)),
    )
    .unwrap();
    assert_eq!(score(&model).unwrap_err().kind, "invalid_output");
    let nan_version = model.version().unwrap();

    replace(&file, &guest("cost_rust"));
    let notice = wait_for_notice(&model);
    assert!(notice.ok, "{notice:?}");
    assert_eq!(notice.role, "cost");
    let native = NativeCost {
        policy: PolicySpec::default(),
    };
    assert_eq!(score(&model).unwrap(), score(&native).unwrap());
    let good_version = model.version().unwrap();
    assert_ne!(good_version, nan_version);

    // Not a component at all, then a component of the wrong role, then one
    // that fails conformance: each is refused and the good version serves on.
    for broken in [None, Some("gate_rust"), Some("fixture_wrong_length")] {
        match broken {
            None => {
                let tmp = file.with_extension("new");
                std::fs::write(&tmp, b"\0asm but not really").unwrap();
                std::thread::sleep(Duration::from_millis(20));
                std::fs::rename(&tmp, &file).unwrap();
            }
            Some(name) => replace(&file, &guest(name)),
        }
        let notice = wait_for_notice(&model);
        assert!(!notice.ok, "{broken:?} was taken");
        assert!(notice.detail.contains("broken"), "{}", notice.detail);
        assert_eq!(model.version().unwrap(), good_version);
        assert_eq!(score(&model).unwrap(), score(&native).unwrap());
    }
}

#[test]
fn compiled_components_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let first = Box::leak(Box::new(
        Runtime::new(Some(dir.path().to_path_buf())).unwrap(),
    ));
    let loaded = first.load(&guest("cost_rust")).unwrap();
    assert_eq!(loaded.cache, thermoroute::plugin::CacheUse::Miss);
    assert_eq!(
        first.load(&guest("cost_rust")).unwrap().cache,
        thermoroute::plugin::CacheUse::Miss
    );
    let code_files = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
            .collect()
    };
    assert_eq!(
        code_files().len(),
        1,
        "one machine-code file, no mapped copies left"
    );
    let second = Runtime::new(Some(dir.path().to_path_buf())).unwrap();
    let again = second.load(&guest("cost_rust")).unwrap();
    assert_eq!(again.cache, thermoroute::plugin::CacheUse::Hit);
    assert_eq!(again.hash, loaded.hash);
    // A corrupt cache entry is recompiled, not trusted.
    // (Rewritten in place while `second` has it loaded: the loaded code is
    // a private copy, so this cannot fault the process.)
    let entry = code_files().remove(0);
    std::fs::write(&entry, b"garbage").unwrap();
    let third = Runtime::new(Some(dir.path().to_path_buf())).unwrap();
    assert_eq!(
        third.load(&guest("cost_rust")).unwrap().cache,
        thermoroute::plugin::CacheUse::Miss
    );
    assert_eq!(code_files().len(), 1);
    // The code loaded before the rewrite still runs.
    let mut instance = again.instance();
    instance.instantiate().unwrap();
    // A component rewritten with other content is hashed and compiled
    // again, never served from the index of the old one.
    let copy = dir.path().join("copy.wasm");
    std::fs::copy(guest("cost_rust"), &copy).unwrap();
    let fourth = Runtime::new(Some(dir.path().to_path_buf())).unwrap();
    let before = fourth.load(&copy).unwrap();
    assert_eq!(before.hash, loaded.hash);
    let mut other = std::fs::read(guest("cost_rust")).unwrap();
    other.extend_from_slice(b"\0\x08\x07trailer"); // a custom section: still valid
    std::fs::write(&copy, &other).unwrap();
    let fifth = Runtime::new(Some(dir.path().to_path_buf())).unwrap();
    let after = fifth.load(&copy).unwrap();
    assert_ne!(after.hash, loaded.hash);
    assert_eq!(after.cache, thermoroute::plugin::CacheUse::Miss);
}

#[test]
fn loading_errors_are_typed_and_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"not wasm").unwrap();
    let e = runtime().load(&junk).unwrap_err();
    assert!(
        matches!(e, thermoroute::plugin::PluginError::NotAComponent { .. }),
        "{e}"
    );
    let e = runtime()
        .load(&dir.path().join("missing.wasm"))
        .unwrap_err();
    assert!(
        matches!(e, thermoroute::plugin::PluginError::Io { .. }),
        "{e}"
    );
    let Err(e) = PluginCost::open(runtime(), &guest("gate_rust"), PolicySpec::default(), None)
    else {
        panic!("a gate is not a cost model");
    };
    assert!(e.to_string().contains("cost-plugin"), "{e}");
    let bad_manifest = dir.path().join("limited.wasm");
    std::fs::copy(guest("cost_rust"), &bad_manifest).unwrap();
    std::fs::write(dir.path().join("limited.toml"), "[limits]\nfuel = 1\n").unwrap();
    let e = runtime().load(&bad_manifest).unwrap_err();
    assert!(
        matches!(e, thermoroute::plugin::PluginError::Manifest { .. }),
        "{e}"
    );
}

fn fraud_graph() -> thermoroute::model::Graph {
    thermoroute::model::Graph::load(Path::new(&example("graphs/fraud-triage.json"))).unwrap()
}

fn routes(trace: &Path) -> Vec<(u64, String, Option<Target>)> {
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

#[test]
fn in_the_engine_a_trapping_plugin_is_traced_and_the_native_default_decides() {
    let hw = Hardware::default();
    let dir = tempfile::tempdir().unwrap();
    let native_trace = dir.path().join("native.jsonl");
    let native = simulate_fraud(Policy::native(&hw), &hw, 200, &native_trace);

    let hostile_trace = dir.path().join("hostile.jsonl");
    let policy = PluginSet {
        cost: Some(guest("fixture_panic")),
        eligibility: None,
        gate: Some(guest("fixture_huge_string")),
        ..Default::default()
    }
    .policy(&hw, None)
    .unwrap();
    let hostile = simulate_fraud(policy, &hw, 200, &hostile_trace);
    assert_eq!(routes(&native_trace), routes(&hostile_trace));
    assert_eq!(
        hostile.completed + hostile.failed + hostile.rejected + hostile.infeasible,
        200
    );
    let events = read_trace(&hostile_trace).unwrap().events;
    let faults: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::PolicyFault {
                role,
                fault,
                fallback,
                ..
            } => Some((role.clone(), fault.kind.clone(), fallback.clone())),
            _ => None,
        })
        .collect();
    assert!(
        faults
            .iter()
            .any(|(r, k, f)| r == "cost" && k == "trap" && f == "native cost model")
    );
    // The gate fails closed: its effects are denied, never applied.
    assert!(
        faults
            .iter()
            .any(|(r, k, f)| r == "gate" && k == "invalid_output" && f.contains("Deny"))
    );
    let c = &native.counters;
    let decisions = c.gate_allow + c.gate_review + c.gate_deny;
    assert!(decisions > 0);
    assert_eq!(hostile.counters.gate_allow, 0);
    assert_eq!(hostile.counters.gate_deny, decisions);
    let TraceEvent::Header { policy, .. } = &events[0] else {
        panic!()
    };
    assert!(
        policy.contains("plugin:fixture_panic (fixture_panic@"),
        "{policy}"
    );
}

#[test]
fn a_policy_directory_serves_each_role_from_its_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(guest("cost_rust"), dir.path().join("cost.wasm")).unwrap();
    std::fs::copy(guest("gate_rust"), dir.path().join("gate.wasm")).unwrap();
    let set = PluginSet::from_dir(dir.path()).unwrap();
    assert!(set.cost.is_some() && set.gate.is_some() && set.eligibility.is_none());
    let policy = set.policy(&Hardware::default(), None).unwrap();
    let d = policy.describe();
    assert!(d.starts_with("cost=plugin:cost (cost@"), "{d}");
    assert!(d.contains("eligibility=native"), "{d}");
    let empty = tempfile::tempdir().unwrap();
    assert!(PluginSet::from_dir(empty.path()).is_err());
}

#[test]
fn a_running_engine_takes_a_hot_reloaded_plugin_and_traces_it() {
    let hw = Hardware::default();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cost.wasm");
    std::fs::copy(guest("fixture_nan_cost"), &file).unwrap();
    let trace = dir.path().join("t.jsonl");
    let policy = PluginSet {
        cost: Some(file.clone()),
        ..PluginSet::default()
    }
    .policy(&hw, Some(Duration::from_millis(20)))
    .unwrap();
    let mut engine = Engine::new(
        vec![JobClass {
            name: "fraud".into(),
            graph: fraud_graph(),
        }],
        hw,
        policy,
        Default::default(),
        EngineConfig {
            mode: Mode::Simulate,
            seed: 5,
            arrivals: Arrivals::Poisson {
                jobs: 20_000,
                rate_per_s: 50.0,
            },
            trace: Some(trace.clone()),
            record_jobs: false,
            ..Default::default()
        },
    )
    .unwrap();
    engine.run_until(1_000.0).unwrap();
    let faults = |e: &Engine| e.report().counters.policy_faults;
    assert!(faults(&engine) > 0, "the NaN plugin faults");
    replace(&file, &guest("cost_rust"));
    // Advance in small steps until decisions stop faulting (the new version serves).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut quiet = 0;
    while quiet < 3 {
        assert!(Instant::now() < deadline, "the new version never served");
        let before = faults(&engine);
        engine.run_until(engine.now_ms() + 200.0).unwrap();
        quiet = if faults(&engine) == before {
            quiet + 1
        } else {
            0
        };
        std::thread::sleep(Duration::from_millis(10));
    }
    engine.run().unwrap();
    let events = read_trace(&trace).unwrap().events;
    let reload = events
        .iter()
        .position(|e| matches!(e, TraceEvent::PolicyReload { notice, .. } if notice.ok && notice.role == "cost"))
        .expect("the reload is traced");
    let cost_faults_after = events[reload..]
        .iter()
        .filter(|e| matches!(e, TraceEvent::PolicyFault { role, .. } if role == "cost"))
        .count();
    assert_eq!(cost_faults_after, 0);
    assert!(
        events[reload..]
            .iter()
            .any(|e| matches!(e, TraceEvent::Route { .. }))
    );
}

#[test]
fn the_cli_checks_plugins_and_runs_a_policy_directory() {
    use thermoroute_tests::run_in;
    let dir = tempfile::tempdir().unwrap();
    let good = run_in(
        dir.path(),
        &[
            "plugin",
            "check",
            guest("eligibility_rust").to_str().unwrap(),
        ],
    );
    let text = String::from_utf8_lossy(&good.stdout);
    assert!(good.status.success(), "{text}");
    assert!(text.contains("world eligibility-plugin"), "{text}");
    assert!(text.contains("wasi:cli/environment"), "{text}");
    assert!(text.contains("µs per warm call"), "{text}");
    assert!(text.contains("conformant: 10 cases passed"), "{text}");

    let hostile = run_in(
        dir.path(),
        &["plugin", "check", guest("fixture_loop").to_str().unwrap()],
    );
    assert_eq!(hostile.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&hostile.stdout).contains("ran out of fuel"));

    std::fs::write(dir.path().join("junk.wasm"), b"junk").unwrap();
    let junk = run_in(dir.path(), &["plugin", "check", "junk.wasm"]);
    assert_eq!(junk.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&junk.stderr).contains("is not a WebAssembly component"),
        "{}",
        String::from_utf8_lossy(&junk.stderr)
    );

    let policy = dir.path().join("policy");
    std::fs::create_dir(&policy).unwrap();
    std::fs::copy(guest("cost_rust"), policy.join("cost.wasm")).unwrap();
    std::fs::copy(guest("gate_rust"), policy.join("gate.wasm")).unwrap();
    let graph = example("graphs/fraud-triage.json");
    let run = run_in(
        dir.path(),
        &[
            "run", &graph, "--mode", "simulate", "--jobs", "30", "--rate", "10", "--policy",
            "policy", "--trace", "t.jsonl",
        ],
    );
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let TraceEvent::Header { policy, .. } =
        &read_trace(&dir.path().join("t.jsonl")).unwrap().events[0]
    else {
        panic!("a trace starts with its header")
    };
    assert!(policy.contains("cost=plugin:cost (cost@"), "{policy}");
    assert!(policy.contains("gate=plugin:gate (gate@"), "{policy}");
}
