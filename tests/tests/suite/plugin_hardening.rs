//! Plugin sandbox hardening (issue 18): a wall clock under fuel, the
//! operator's ceilings, a gate floor no plugin lowers, checked cost terms,
//! `plugin check` on foreign components, a circuit breaker, and eligibility
//! bounded by what a backend can run. One test per hostile case.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use thermoroute::engine::RunReport;
use thermoroute::hardware::{Hardware, PluginCeilings};
use thermoroute::plugin::{PluginCost, PluginSet, conformance};
use thermoroute::policy::{
    CandidateInput, CostModel, DecisionContext, Estimate, GateDecision, NodeSummary, Policy,
    PolicyFault,
};
use thermoroute::trace::{TraceEvent, read_trace};
use thermoroute_tests::{guest, plugin_runtime as runtime, run_in, simulate_fraud as simulate};

fn score(model: &dyn CostModel) -> Result<Vec<thermoroute::policy::CostTerms>, PolicyFault> {
    let node = NodeSummary {
        kind: thermoroute::model::graph::NodeKind::Tensor,
        class: "tensor".into(),
        flops: 1.0e6,
        bytes: 1.0e3,
        program: None,
    };
    let cands: Vec<CandidateInput> = [
        thermoroute::device::Target::Gpu,
        thermoroute::device::Target::Cpu,
    ]
    .map(|target| CandidateInput {
        target,
        estimate: Estimate {
            latency_p50_ms: 2.0,
            latency_p95_ms: 5.0,
            queue_wait_ms: 0.0,
            energy_j: 0.1,
            error: 0.0,
        },
    })
    .to_vec();
    let ctx = DecisionContext {
        node: &node,
        qos: &Default::default(),
        weights: &Default::default(),
        candidates: &cands,
        situation: None,
    };
    let mut out = Vec::new();
    model.score(&ctx, &mut out).map(|()| out)
}

/// `fixture` copied to `dir/NAME.wasm` with `manifest` as `dir/NAME.toml`.
fn with_manifest(dir: &Path, fixture: &str, name: &str, manifest: &str) -> PathBuf {
    let wasm = dir.join(format!("{name}.wasm"));
    std::fs::copy(guest(fixture), &wasm).unwrap();
    std::fs::write(dir.join(format!("{name}.toml")), manifest).unwrap();
    wasm
}

fn all_accounted(r: &RunReport, jobs: u64) {
    assert_eq!(r.completed + r.failed + r.rejected + r.infeasible, jobs);
}

#[test]
fn a_guest_sleeping_on_a_clock_pollable_does_not_stall_the_host() {
    let model = PluginCost::open(runtime(), &guest("fixture_sleep"), Default::default(), None)
        .expect("loads");
    let started = Instant::now();
    // An hour's sleep per call returns at once: the guest's clock is frozen.
    for _ in 0..5 {
        score(&model).expect("the sleep ends at once and the answer is valid");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // In a run: 200 jobs with a sleeping cost model take about what native takes.
    let hw = Hardware::default();
    let dir = tempfile::tempdir().unwrap();
    let policy = PluginSet {
        cost: Some(guest("fixture_sleep")),
        ..Default::default()
    }
    .policy(&hw, None)
    .unwrap();
    let started = Instant::now();
    let report = simulate(policy, &hw, 200, &dir.path().join("t.jsonl"));
    all_accounted(&report, 200);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_call_past_its_wall_clock_deadline_is_a_deadline_fault() {
    // An operator who lifts the fuel ceiling still has the deadline.
    let ceilings = PluginCeilings {
        max_fuel_per_call: u64::MAX,
        deadline_ms: 50,
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let wasm = with_manifest(
        dir.path(),
        "fixture_loop",
        "hog",
        "[limits]\nfuel_per_call = 18446744073709551615\n",
    );
    let model = PluginCost::open_with(runtime(), &wasm, Default::default(), &ceilings, None)
        .expect("loads");
    for _ in 0..2 {
        let started = Instant::now();
        let fault = score(&model).expect_err("never returns");
        assert_eq!(fault.kind, "deadline", "{fault}");
        assert!(fault.reason.contains("50 ms"), "{}", fault.reason);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }
}

#[test]
fn a_manifest_cannot_raise_its_limits_past_the_operators_ceiling() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = with_manifest(
        dir.path(),
        "fixture_loop",
        "greedy",
        "[limits]\nfuel_per_call = 18446744073709551615\nmemory_mib = 2048\ndeadline_ms = 100000\n",
    );
    let ceilings = PluginCeilings::default();
    let plugin = runtime().load_with(&wasm, &ceilings).unwrap();
    assert_eq!(plugin.limits.fuel_per_call, ceilings.max_fuel_per_call);
    assert_eq!(plugin.limits.memory_mib, ceilings.max_memory_mib);
    assert_eq!(plugin.limits.deadline_ms, Some(ceilings.max_deadline_ms));
    let capped = plugin
        .grants
        .iter()
        .filter(|g| g.why.contains("capped"))
        .count();
    assert_eq!(capped, 3, "{:?}", plugin.grants);
    // The late infinite loop is stopped (by fuel or the deadline), not run forever.
    let model = PluginCost::open(runtime(), &wasm, Default::default(), None).unwrap();
    let started = Instant::now();
    let fault = score(&model).expect_err("never returns");
    assert!(
        fault.kind == "out_of_fuel" || fault.kind == "deadline",
        "{fault}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // Memory: 2048 MiB asked, the ceiling (here 32 MiB) granted.
    let bomb = with_manifest(
        dir.path(),
        "fixture_memory_bomb",
        "bomb",
        "[limits]\nmemory_mib = 2048\n",
    );
    let small = PluginCeilings {
        max_memory_mib: 32,
        deadline_ms: 1000,
        ..Default::default()
    };
    let model = PluginCost::open_with(runtime(), &bomb, Default::default(), &small, None).unwrap();
    let fault = score(&model).expect_err("runs out of memory");
    assert_eq!(fault.kind, "memory_limit", "{fault}");
    assert!(fault.reason.contains("32 MiB"), "{}", fault.reason);

    // The hardware file's [plugins] section sets the ceilings.
    let hw = Hardware::from_toml(
        Path::new("hw.toml"),
        "[plugins]\nmax_fuel_per_call = 1000\ndeadline_ms = 20\n",
    )
    .unwrap();
    assert_eq!(hw.plugins.max_fuel_per_call, 1000);
    assert!(Hardware::from_toml(Path::new("hw.toml"), "[plugins]\ndeadline_ms = 0\n").is_err());
}

fn gate_events(trace: &Path) -> Vec<(String, GateDecision, Option<Vec<String>>)> {
    read_trace(trace)
        .unwrap()
        .events
        .into_iter()
        .filter_map(|e| match e {
            TraceEvent::Gate {
                node,
                decision,
                floor,
                ..
            } => Some((node, decision, floor)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_host_floor_holds_whatever_a_gate_plugin_allows() {
    // A floor no simulated evidence meets: every effect is held to it.
    let mut hw = Hardware::default();
    hw.gate.reversible.min_ess = 1e9;
    hw.gate.irreversible.min_ess = 1e9;
    let dir = tempfile::tempdir().unwrap();
    let native_trace = dir.path().join("native.jsonl");
    let native = simulate(Policy::native(&hw), &hw, 60, &native_trace);
    let trace = dir.path().join("allow.jsonl");
    let policy = PluginSet {
        gate: Some(guest("fixture_allow_all")),
        ..Default::default()
    }
    .policy(&hw, None)
    .unwrap();
    let hostile = simulate(policy, &hw, 60, &trace);
    all_accounted(&hostile, 60);
    // Whatever the plugin says, no effect passes that the floor stops.
    assert_eq!(hostile.counters.gate_allow, native.counters.gate_allow);
    let events = gate_events(&trace);
    assert!(!events.is_empty());
    let overridden = events.iter().filter(|(_, _, f)| f.is_some()).count();
    assert!(overridden > 0, "the floor overrode the allow-all gate");
    for (_, decision, floor) in &events {
        if floor.is_some() {
            assert!(!matches!(decision, GateDecision::Allow));
        }
    }
    // Simulated evidence never applies an effect: allowed ones are would-be.
    for e in read_trace(&trace).unwrap().events {
        if let TraceEvent::End {
            output: Some(out), ..
        } = e
            && out.get("action").is_some()
        {
            assert_eq!(out["applied"], false, "{out}");
            if out.get("would_apply").is_some() {
                assert_eq!(out["simulated"], true);
            }
        }
    }
}

#[test]
fn plugin_check_probes_with_varied_requests_a_probe_recogniser_fails() {
    let report = conformance(runtime(), &guest("fixture_probe_gate")).unwrap();
    assert!(!report.passed());
    let failed: Vec<_> = report.cases.iter().filter(|c| !c.passed).collect();
    assert!(
        failed
            .iter()
            .any(|c| c.name.contains("varied requests") && c.detail.contains("allowed probe")),
        "{failed:?}"
    );
    let report = conformance(runtime(), &guest("fixture_allow_all")).unwrap();
    assert!(!report.passed());
    // The honest port of the native gate passes the same probes.
    let report = conformance(runtime(), &guest("gate_rust")).unwrap();
    assert!(report.passed(), "{:?}", report.cases);
    assert!(!report.limits.is_empty());
}

#[test]
fn cost_terms_are_checked_and_old_traces_with_null_terms_still_read() {
    let model = PluginCost::open(
        runtime(),
        &guest("fixture_nan_term"),
        Default::default(),
        None,
    )
    .unwrap();
    let fault = score(&model).expect_err("NaN terms are invalid");
    assert_eq!(fault.kind, "invalid_output");
    assert!(fault.reason.contains("latency is NaN"), "{}", fault.reason);

    // In a run: the fault falls back to native; the trace holds no null cost.
    let hw = Hardware::default();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let policy = PluginSet {
        cost: Some(guest("fixture_nan_term")),
        ..Default::default()
    }
    .policy(&hw, None)
    .unwrap();
    all_accounted(&simulate(policy, &hw, 20, &trace), 20);
    let text = std::fs::read_to_string(&trace).unwrap();
    assert!(!text.contains("\"latency\":null"));

    // A trace an older thermoroute wrote with a null term: explain and
    // export read it.
    let key = "\"cost\":{\"latency\":";
    let (first, _) = text.split_once(key).expect("a cost term in the trace");
    let rest = &text[first.len() + key.len()..];
    let end = rest.find(',').unwrap();
    let old = format!("{first}{key}null{}", &rest[end..]);
    let old_trace = dir.path().join("old.jsonl");
    std::fs::write(&old_trace, old).unwrap();
    read_trace(&old_trace).expect("a null term reads as NaN");
    let route = read_trace(&old_trace)
        .unwrap()
        .events
        .into_iter()
        .find_map(|e| match e {
            TraceEvent::Route { job, node, .. } => Some((job, node)),
            _ => None,
        })
        .unwrap();
    let explain = run_in(
        dir.path(),
        &[
            "explain",
            "old.jsonl",
            "--job",
            &route.0.to_string(),
            "--node",
            &route.1,
        ],
    );
    assert!(
        explain.status.success(),
        "{}",
        String::from_utf8_lossy(&explain.stderr)
    );
    let export = run_in(
        dir.path(),
        &["export", "--perfetto", "old.jsonl", "out.json"],
    );
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
}

/// The smallest component: the header and nothing else.
const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

#[test]
fn plugin_check_fails_a_component_with_no_supported_world() {
    let report = conformance(runtime(), &guest("fixture_foreign_version")).unwrap();
    assert!(!report.passed());
    assert_eq!(report.world, "none");
    assert!(
        report.cases[0].detail.contains("@9.0.0"),
        "{:?}",
        report.cases
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("empty.wasm"), EMPTY_COMPONENT).unwrap();
    let report = conformance(runtime(), &dir.path().join("empty.wasm")).unwrap();
    assert!(!report.passed());
    assert!(
        report.cases[0].detail.contains("nothing"),
        "{:?}",
        report.cases
    );

    for file in [
        guest("fixture_foreign_version"),
        dir.path().join("empty.wasm"),
    ] {
        let out = run_in(dir.path(), &["plugin", "check", file.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(text.contains("NOT conformant"), "{text}");
    }
}

#[test]
fn a_plugin_failing_every_call_is_tripped_and_retried() {
    let mut hw = Hardware::default();
    hw.plugins.breaker_faults = 3;
    hw.plugins.breaker_backoff_calls = 100;
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let policy = PluginSet {
        cost: Some(guest("fixture_panic")),
        ..Default::default()
    }
    .policy(&hw, None)
    .unwrap();
    let report = simulate(policy, &hw, 200, &trace);
    all_accounted(&report, 200);
    let events = read_trace(&trace).unwrap().events;
    let faults = events
        .iter()
        .filter(|e| matches!(e, TraceEvent::PolicyFault { role, .. } if role == "cost"))
        .count();
    let trips: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::PolicyReload { notice, .. } if notice.detail.contains("tripped") => {
                Some(notice.detail.clone())
            }
            _ => None,
        })
        .collect();
    let routes = events
        .iter()
        .filter(|e| matches!(e, TraceEvent::Route { .. }))
        .count();
    assert!(!trips.is_empty(), "the breaker tripped");
    // 3 faults trip it; each retry after 100 quiet calls faults once more.
    assert!(
        faults <= 3 + routes / 100 + 1,
        "{faults} faults, {routes} routes"
    );
    assert_eq!(trips.len(), faults - 2, "{trips:?}");
    // The native cost model decided: routes match a native run.
    let native_trace = dir.path().join("native.jsonl");
    simulate(Policy::native(&hw), &hw, 200, &native_trace);
    let chosen = |t: &Path| -> Vec<_> {
        read_trace(t)
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
    };
    assert_eq!(chosen(&trace), chosen(&native_trace));
}

#[test]
fn eligibility_cannot_widen_what_a_backend_can_run() {
    let hw = Hardware::default();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let native = simulate(Policy::native(&hw), &hw, 40, &dir.path().join("n.jsonl"));
    let policy = PluginSet {
        eligibility: Some(guest("fixture_eligible_everywhere")),
        ..Default::default()
    }
    .policy(&hw, None)
    .unwrap();
    let report = simulate(policy, &hw, 40, &trace);
    all_accounted(&report, 40);
    assert_eq!(report.failed, native.failed, "no job fails for it");
    let faults: Vec<String> = read_trace(&trace)
        .unwrap()
        .events
        .into_iter()
        .filter_map(|e| match e {
            TraceEvent::PolicyFault { role, fault, .. } if role == "eligibility" => {
                Some(fault.reason)
            }
            _ => None,
        })
        .collect();
    assert!(
        faults
            .iter()
            .any(|r| r.contains("gpu eligible for a control node")),
        "{faults:?}"
    );
}
