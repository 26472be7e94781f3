//! `run`, `explain`, `review` and `bench --suite scheduler` end to end.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use thermoroute_tests::{bin, example, examples, json_of as stdout_json, run_in};

use serde_json::{Value, json};
use thermoroute::trace::{TraceEvent, read_trace};

fn write(dir: &Path, name: &str, value: &Value) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value.to_string()).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn run_reports_backends_and_candidates_and_traces_every_decision() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let out = run_in(
        dir.path(),
        &[
            "run",
            &example("graphs/fraud-triage.json"),
            "--mode",
            "simulate",
            "--trace",
            trace.to_str().unwrap(),
            "--json",
        ],
    );
    let doc = stdout_json(&out);
    let node = &doc["jobs"][0]["nodes"][3];
    assert_eq!(node["id"], "posterior");
    assert!(node["backend"].is_string());
    assert_eq!(node["candidates"].as_array().unwrap().len(), 3);
    let t = read_trace(&trace).unwrap();
    assert!(matches!(t.events[0], TraceEvent::Header { .. }));
    let routes = t
        .events
        .iter()
        .filter(|e| matches!(e, TraceEvent::Route { .. }))
        .count();
    assert_eq!(
        routes as u64,
        doc["counters"]["decisions"].as_u64().unwrap()
    );

    let explain = |node: &str, json: bool| {
        let mut args = vec![
            "explain",
            trace.to_str().unwrap(),
            "--job",
            "0",
            "--node",
            node,
        ];
        if json {
            args.push("--json");
        }
        run_in(dir.path(), &args)
    };
    let explained = explain("posterior", false);
    let text = String::from_utf8_lossy(&explained.stdout);
    assert!(explained.status.success());
    assert!(
        text.contains("route (attempt 0)") && text.contains("CHOSEN"),
        "{text}"
    );
    assert!(text.contains("risk"), "cost terms are shown: {text}");
    let as_json = stdout_json(&explain("posterior", true));
    assert_eq!(as_json[0]["event"], "route");
    let missing = explain("nope", false);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no events for job 0 node \"nope\""));
}

#[test]
fn infeasible_qos_exits_3_with_an_explanation() {
    let dir = tempfile::tempdir().unwrap();
    let mut g: Value = serde_json::from_str(
        &std::fs::read_to_string(example("graphs/fraud-triage.json")).unwrap(),
    )
    .unwrap();
    g["qos"]["latency_ms"] = json!({ "p50": 0.0001, "p95": 0.0002 });
    let file = write(dir.path(), "tight.json", &g);
    let out = run_in(dir.path(), &["run", &file, "--json"]);
    assert_eq!(out.status.code(), Some(3));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["jobs"][0]["status"], "infeasible");
    assert!(
        doc["jobs"][0]["explanation"]
            .as_str()
            .unwrap()
            .contains("no target meets the QoS")
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("infeasible"));
}

#[test]
fn held_effects_are_applied_or_dropped_only_by_review() {
    let dir = tempfile::tempdir().unwrap();
    let g = json!({
        "name": "payout",
        "nodes": [
            { "id": "s", "kind": "sample", "sample": { "program": {
                "ising": { "n": 3, "biases": [0.2, 0.0, 0.0], "edges": [[0, 1], [1, 2]], "weights": [0.5, 0.5] },
                "schedule": { "warmup": 10, "samples": 30, "steps_per_sample": 1, "chains": 2 } } } },
            { "id": "pay", "kind": "effect", "inputs": ["s"], "effect": { "action": "send payout", "risk": "irreversible" } }
        ],
        "qos": {}
    });
    let file = write(dir.path(), "payout.json", &g);
    for _ in 0..2 {
        let doc = stdout_json(&run_in(dir.path(), &["run", &file, "--json"]));
        assert_eq!(doc["jobs"][0]["nodes"][1]["status"], "held");
    }
    let pending = stdout_json(&run_in(dir.path(), &["review", "list", "--json"]));
    assert_eq!(pending.as_array().unwrap().len(), 2);
    assert_eq!(pending[0]["status"], "pending");
    let ok = run_in(dir.path(), &["review", "approve", "R0001", "--by", "ops"]);
    assert!(ok.status.success());
    assert!(String::from_utf8_lossy(&ok.stdout).contains("applied"));
    let ok = run_in(dir.path(), &["review", "deny", "R0002"]);
    assert!(String::from_utf8_lossy(&ok.stdout).contains("dropped"));
    let again = run_in(dir.path(), &["review", "approve", "R0002"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already decided"));
    let all = stdout_json(&run_in(dir.path(), &["review", "list", "--all", "--json"]));
    assert_eq!(all[0]["status"], "applied");
    assert_eq!(all[0]["decided_by"], "ops");
    assert_eq!(all[1]["status"], "dropped");
    let none = run_in(dir.path(), &["review", "list"]);
    assert!(String::from_utf8_lossy(&none.stdout).contains("nothing pending"));
}

#[test]
fn a_killed_run_leaves_a_readable_trace_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let mut child = Command::new(bin())
        .current_dir(dir.path())
        .args([
            "run",
            &example("graphs/fraud-triage.json"),
            "--mode",
            "simulate",
            "--jobs",
            "100000000",
            "--rate",
            "1000",
            "--trace",
            trace.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::fs::metadata(&trace).map_or(0, |m| m.len()) < 1 << 20 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the trace never grew"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let t = read_trace(&trace).unwrap();
    assert!(t.events.len() > 100);
    assert!(matches!(t.events[0], TraceEvent::Header { .. }));
}

#[test]
fn state_persists_and_bad_files_name_their_problem() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let mut sampled_in_runs = 0;
    for _ in 0..2 {
        let report = stdout_json(&run_in(
            dir.path(),
            &[
                "run",
                &example("graphs/fraud-triage.json"),
                "--mode",
                "simulate",
                "--jobs",
                "50",
                "--state",
                state.to_str().unwrap(),
                "--json",
            ],
        ));
        // At once, a loaded second run may turn a job or two away.
        sampled_in_runs += report["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|j| j["nodes"].as_array().unwrap())
            .filter(|n| n["id"] == "posterior" && n["status"] == "completed")
            .count() as u64;
    }
    assert!(sampled_in_runs >= 90, "{sampled_in_runs}");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&state).unwrap()).unwrap();
    assert_eq!(saved["format"], "thermoroute-state");
    let sampled: u64 = saved["tables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["class"].as_str().unwrap().starts_with("sample"))
        .map(|e| e["total"].as_u64().unwrap())
        .sum();
    assert_eq!(
        sampled, sampled_in_runs,
        "the second run continued the first run's tables"
    );

    std::fs::write(&state, "{ not json").unwrap();
    let err = fraud_run_error(dir.path(), "--state", &state);
    assert!(err.contains("not a thermoroute state file"));

    let hw = dir.path().join("hw.toml");
    std::fs::write(&hw, "[queues]\nbatch_share = 2.0\n").unwrap();
    let err = fraud_run_error(dir.path(), "--hardware", &hw);
    assert!(
        err.contains("hw.toml") && err.contains("queues.batch_share"),
        "{err}"
    );
}

/// The error a `run` of the fraud example with `flag file` exits 1 with.
fn fraud_run_error(dir: &Path, flag: &str, file: &Path) -> String {
    let out = run_in(
        dir,
        &[
            "run",
            &example("graphs/fraud-triage.json"),
            flag,
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn example_hardware_files_load() {
    for name in ["default.toml", "mm3.toml"] {
        thermoroute::hardware::Hardware::load(&examples().join("hardware").join(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let written =
        thermoroute::hardware::Hardware::load(&examples().join("hardware/default.toml")).unwrap();
    assert_eq!(
        written,
        thermoroute::hardware::Hardware::default(),
        "default.toml is the built-in machine"
    );
}

#[test]
fn scheduler_benchmark_prints_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let doc = stdout_json(&run_in(
        dir.path(),
        &["bench", "--suite", "scheduler", "--jobs", "20000", "--json"],
    ));
    let rows = doc["results"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    for r in rows {
        assert_eq!(r["jobs"], 20000);
        assert_eq!(r["decisions"], 20000);
        assert!(r["jobs_per_s"].as_f64().unwrap() > 0.0);
    }
}
