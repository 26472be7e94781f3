//! `thermoroute replay-policy`: counterfactual replay of a trace's decisions
//! under another policy, end to end through the binary.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use thermoroute::device::Target;
use thermoroute::trace::{CandidateRecord, TraceEvent, read_trace};
use thermoroute_tests::{example, guest, json_of, run_in};

/// Records a simulate-mode trace of fraud-triage, posterior-batch and
/// mm3-interactive jobs (the defaults route posterior-batch's sampling to
/// the TSU and GPU-sim, everything else to the CPU).
fn record(dir: &Path, name: &str, jobs: &str, flags: &[&str]) -> PathBuf {
    let trace = dir.join(name);
    let fraud = example("graphs/fraud-triage.json");
    let posterior = example("graphs/posterior-batch.json");
    let mm3 = example("graphs/mm3-interactive.json");
    let mut args = vec![
        "run",
        fraud.as_str(),
        posterior.as_str(),
        mm3.as_str(),
        "--mode",
        "simulate",
        "--jobs",
        jobs,
        "--rate",
        "400",
        "--seed",
        "7",
        "--trace",
        trace.to_str().unwrap(),
        "--json",
    ];
    args.extend_from_slice(flags);
    json_of(&run_in(dir, &args));
    trace
}

fn replay(dir: &Path, trace: &Path, flags: &[&str]) -> Output {
    let mut args = vec!["replay-policy", trace.to_str().unwrap()];
    args.extend_from_slice(flags);
    run_in(dir, &args)
}

fn replay_json(dir: &Path, trace: &Path, flags: &[&str]) -> Value {
    let mut f = flags.to_vec();
    f.extend(["--json", "--max-changes", "1000000"]);
    json_of(&replay(dir, trace, &f))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn routes_and_gates(trace: &Path) -> (Vec<TraceEvent>, usize) {
    let events = read_trace(trace).unwrap().events;
    let gates = events
        .iter()
        .filter(|e| matches!(e, TraceEvent::Gate { .. }))
        .count();
    let routes = events
        .into_iter()
        .filter(|e| matches!(e, TraceEvent::Route { .. }))
        .collect();
    (routes, gates)
}

#[test]
fn replaying_the_recorded_policy_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let native = record(dir.path(), "native.jsonl", "120", &[]);
    let (routes, gates) = routes_and_gates(&native);
    assert!(routes.len() > 100 && gates > 0, "{} {gates}", routes.len());
    let r = replay_json(dir.path(), &native, &["--native"]);
    assert_eq!(r["routes"]["decisions"], routes.len() as u64, "{r:#}");
    assert_eq!(r["gates"]["decisions"], gates as u64, "{r:#}");
    assert_eq!(r["decisions"], (routes.len() + gates) as u64);
    assert_eq!(r["changed"], 0, "{r:#}");
    assert_eq!(r["fraction_changed"], 0.0);
    assert_eq!(r["changes"].as_array().unwrap().len(), 0);
    for d in [
        "latency_p50_ms",
        "latency_p95_ms",
        "energy_j",
        "error",
        "risk_penalty",
    ] {
        assert_eq!(r["deltas"][d], 0.0, "{d}: {r:#}");
    }
    // The native rules as a plugin judge alike.
    let rules = guest("eligibility_rust");
    let r = replay_json(
        dir.path(),
        &native,
        &["--eligibility", rules.to_str().unwrap()],
    );
    assert_eq!(r["changed"], 0, "{r:#}");
    assert_eq!(r["faults"]["faults"]["eligibility"], 0, "{r:#}");

    // A plugin trace replayed under the same plugin.
    let cost = guest("cost_rust");
    let cost = cost.to_str().unwrap();
    let traced = record(dir.path(), "plugin.jsonl", "120", &["--cost", cost]);
    let r = replay_json(dir.path(), &traced, &["--cost", cost]);
    assert!(r["routes"]["decisions"].as_u64().unwrap() > 100);
    assert_eq!(r["changed"], 0, "{r:#}");
    assert_eq!(
        r["faults"]["calls"]["cost"], r["routes"]["decisions"],
        "{r:#}"
    );
    assert!(
        r["replayed_policy"]
            .as_str()
            .unwrap()
            .starts_with("cost=plugin:cost_rust"),
        "{r:#}"
    );
    // --native compares the plugin trace with the defaults: the same
    // formula, but the default rule sends sampling to the TSU (then
    // GPU-sim) where the QoS allows, whatever the cost.
    let r = replay_json(dir.path(), &traced, &["--native"]);
    assert!(r["changed"].as_u64().unwrap() > 0, "{r:#}");
    for c in r["changes"].as_array().unwrap() {
        assert_eq!(c["node"], "posterior", "{c:#}");
        assert!(c["after"] == "tsu" || c["after"] == "gpu-sim", "{c:#}");
    }
}

/// The prefer-cpu fixture's costs, by hand: CPU targets cost nothing, the
/// others their native total (what a native trace records) plus 1.
fn prefer_cpu_total(c: &CandidateRecord) -> f64 {
    match c.target {
        Target::Cpu | Target::CpuRef => 0.0,
        _ => 1.0 + c.cost.unwrap().total,
    }
}

/// The engine's choice rule by hand, with no sampling order (a plugin's):
/// the cheapest eligible candidate that meets the node's QoS with queue
/// room, else the cheapest with room that a late job may still take.
fn choose_by_hand(cands: &[CandidateRecord]) -> Option<Target> {
    let cheapest = |ok: &dyn Fn(&CandidateRecord) -> bool| {
        cands
            .iter()
            .filter(|c| c.eligible && c.queue_has_room == Some(true) && ok(c))
            .min_by(|a, b| prefer_cpu_total(a).total_cmp(&prefer_cpu_total(b)))
            .map(|c| c.target)
    };
    cheapest(&|c| c.violations.is_empty())
        .or_else(|| cheapest(&|c| c.violations.is_empty() || c.late_ok))
}

#[test]
fn a_cpu_preferring_cost_model_changes_decisions_and_the_deltas_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let native = record(dir.path(), "native.jsonl", "150", &[]);
    let fixture = guest("fixture_prefer_cpu");
    let (routes, _) = routes_and_gates(&native);
    assert!(
        routes.iter().any(|e| matches!(
            e,
            TraceEvent::Route {
                chosen: Some(Target::Tsu | Target::GpuSim),
                ..
            }
        )),
        "the defaults sample somewhere but on the CPU"
    );
    let r = replay_json(dir.path(), &native, &["--cost", fixture.to_str().unwrap()]);
    // Count by hand from the trace: which decisions change, and by how much.
    let mut changed = Vec::new();
    let mut hand = [0.0f64; 5];
    for e in &routes {
        let TraceEvent::Route {
            job,
            node,
            attempt,
            chosen,
            candidates,
            ..
        } = e
        else {
            unreachable!()
        };
        let after = choose_by_hand(candidates);
        if after == *chosen {
            continue;
        }
        changed.push((*job, node.clone(), *attempt, *chosen, after));
        let est = |t: Option<Target>| {
            candidates
                .iter()
                .find(|c| Some(c.target) == t)
                .and_then(|c| c.estimate)
        };
        if let (Some(b), Some(a)) = (est(*chosen), est(after)) {
            hand[0] += a.latency_p50_ms - b.latency_p50_ms;
            hand[1] += a.latency_p95_ms - b.latency_p95_ms;
            hand[2] += a.energy_j - b.energy_j;
            hand[3] += a.error - b.error;
        }
    }
    assert!(!changed.is_empty(), "the fixture changes nothing?");
    assert_eq!(r["routes"]["decisions"], routes.len() as u64);
    assert_eq!(r["routes"]["changed"], changed.len() as u64, "{r:#}");
    let listed: Vec<(u64, String, u64, Value, Value)> = r["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "route")
        .map(|c| {
            (
                c["job"].as_u64().unwrap(),
                c["node"].as_str().unwrap().to_string(),
                c["attempt"].as_u64().unwrap(),
                c["before"].clone(),
                c["after"].clone(),
            )
        })
        .collect();
    assert_eq!(listed.len(), changed.len());
    for ((job, node, attempt, before, after), l) in changed.iter().zip(&listed) {
        assert_eq!(
            (*job, node, u64::from(*attempt)),
            (l.0, &l.1, l.2),
            "changes in trace order"
        );
        assert_eq!(serde_json::to_value(before).unwrap(), l.3);
        assert_eq!(serde_json::to_value(after).unwrap(), l.4);
    }
    let fraction = r["fraction_changed"].as_f64().unwrap();
    let expect = changed.len() as f64 / r["decisions"].as_f64().unwrap();
    assert!((fraction - expect).abs() < 1e-12);
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
    let d = &r["deltas"];
    for (k, name) in ["latency_p50_ms", "latency_p95_ms", "energy_j", "error"]
        .iter()
        .enumerate()
    {
        assert!(
            close(d[name].as_f64().unwrap(), hand[k]),
            "{name}: {d} vs {hand:?}"
        );
    }
    // Sampling moved from the TSU and GPU-sim to the CPU reference sampler
    // spends more energy, and errs less (no hardware calibration bias).
    assert!(hand[2] > 0.0 && hand[3] < 0.0, "{hand:?}");
    assert!(d["energy_j"].as_f64().unwrap() > 0.0, "{d}");
    assert!(d["error"].as_f64().unwrap() < 0.0, "{d}");
    // Every changed route went to a CPU target, and its terms are side by side.
    for c in r["changes"].as_array().unwrap() {
        if c["kind"] != "route" {
            continue;
        }
        assert!(c["after"] == "cpu" || c["after"] == "cpu-ref", "{c:#}");
        let cands = c["candidates"].as_array().unwrap();
        let chosen = cands.iter().find(|x| x["target"] == c["after"]).unwrap();
        assert_eq!(chosen["after"]["total"], 0.0, "{c:#}");
        assert!(chosen["before"]["total"].as_f64().unwrap() > 0.0, "{c:#}");
    }
    // A policy directory takes the file names of `run --policy`.
    let policy = dir.path().join("policy");
    std::fs::create_dir(&policy).unwrap();
    std::fs::copy(&fixture, policy.join("cost.wasm")).unwrap();
    let by_dir = replay_json(dir.path(), &native, &["--policy", policy.to_str().unwrap()]);
    assert_eq!(by_dir["changed"], r["changed"]);
    assert_eq!(by_dir["deltas"], r["deltas"]);
    // The human report names the policies and shows the terms side by side.
    let out = replay(dir.path(), &native, &["--cost", fixture.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("replayed: cost=plugin:fixture_prefer_cpu"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{} changed", changed.len())),
        "{text}"
    );
    assert!(text.contains("recorded: total = L + E + A + R"), "{text}");
    assert!(
        text.contains("0.0000 = 0.0000 + 0.0000 + 0.0000 + 0.0000 <"),
        "{text}"
    );
}

#[test]
fn a_replayed_gate_re_decides_recorded_requests_under_the_floor() {
    let dir = tempfile::tempdir().unwrap();
    let native = record(dir.path(), "native.jsonl", "120", &[]);
    let gate = guest("fixture_allow_all");
    let r = replay_json(dir.path(), &native, &["--gate", gate.to_str().unwrap()]);
    let (_, gates) = routes_and_gates(&native);
    assert_eq!(r["gates"]["decisions"], gates as u64, "{r:#}");
    assert_eq!(
        r["routes"]["changed"], 0,
        "routes keep their recorded answers"
    );
    let (b, a) = (&r["gates"]["before"], &r["gates"]["after"]);
    assert!(a["allow"].as_u64() >= b["allow"].as_u64(), "{r:#}");
    // The host floor still denies what it denied: an allow-all gate loosens nothing below it.
    assert_eq!(a["deny"], b["deny"], "{r:#}");
}

#[test]
fn bad_traces_and_faulting_plugins_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let native = record(d, "native.jsonl", "30", &[]);
    let text = std::fs::read_to_string(&native).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let fails = |trace: &Path, flags: &[&str], wants: &[&str]| {
        let out = replay(d, trace, flags);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        for w in wants {
            assert!(err.contains(w), "{w:?} not in {err}");
        }
    };
    fails(
        &d.join("missing.jsonl"),
        &["--native"],
        &["missing.jsonl", "cannot read"],
    );
    fails(&native, &[], &["nothing to replay"]);

    let corrupt = d.join("corrupt.jsonl");
    let mut bad = lines.clone();
    bad[5] = "{\"event\":\"route\",\"t_ms\":";
    std::fs::write(&corrupt, bad.join("\n") + "\n").unwrap();
    fails(&corrupt, &["--native"], &["corrupt.jsonl: line 6"]);

    let empty = d.join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    fails(&empty, &["--native"], &["not a thermoroute trace header"]);

    let header_only = d.join("header.jsonl");
    std::fs::write(&header_only, format!("{}\n", lines[0])).unwrap();
    fails(
        &header_only,
        &["--native"],
        &["records no routing decision"],
    );

    let mut old: Value = serde_json::from_str(lines[0]).unwrap();
    old.as_object_mut().unwrap().remove("class_nodes");
    let older = d.join("older.jsonl");
    let mut rest = vec![old.to_string()];
    rest.extend(lines[1..].iter().map(|l| l.to_string()));
    std::fs::write(&older, rest.join("\n") + "\n").unwrap();
    fails(&older, &["--native"], &["older thermoroute", "class_nodes"]);

    // A torn last line (a killed run) is skipped and said.
    let torn = d.join("torn.jsonl");
    std::fs::write(&torn, format!("{}\n{{\"event\":\"rou", text.trim_end())).unwrap();
    let r = replay_json(d, &torn, &["--native"]);
    assert_eq!(r["torn_tail"], true);

    // A cost plugin that faults on every call: reported, and nothing compared.
    let nan = guest("fixture_nan_cost");
    let out = replay(d, &native, &["--cost", nan.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("faulted on every call"),
        "{}",
        stderr(&out)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    let calls = r["faults"]["calls"]["cost"].as_u64().unwrap();
    assert!(calls > 0);
    assert_eq!(r["faults"]["faults"]["cost"], calls, "{r:#}");
    assert_eq!(r["faults"]["first"][0][0], "cost");
    assert_eq!(
        r["faults"]["first"][0][1]["kind"], "invalid_output",
        "{r:#}"
    );

    // A plugin that cannot load.
    let not_wasm = d.join("cost.wasm");
    std::fs::write(&not_wasm, "not a component").unwrap();
    fails(
        &native,
        &["--cost", not_wasm.to_str().unwrap()],
        &["cost.wasm"],
    );
}
