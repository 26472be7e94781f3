//! The `thermoroute` binary end to end: output formats and every validation
//! error, each naming the file, the JSON path and the reason.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> PathBuf {
    // tests run from target/<profile>/deps/; the binary sits one level up.
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join(format!("thermoroute{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "build the binary first (cargo build): {}",
        path.display()
    );
    path
}

fn examples() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"))
}

fn run(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Writes `text` to a temp file and runs `validate` on it, expecting failure
/// whose stderr names the file, `path` and `reason`.
fn rejects(text: &str, path: &str, reason: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("input.json");
    std::fs::write(&file, text).unwrap();
    for cmd in ["validate", "sample"] {
        if cmd == "sample" && text.contains("\"nodes\"") {
            continue;
        }
        let out = run(&[cmd, file.to_str().unwrap()]);
        let err = stderr(&out);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{cmd}: expected exit 1; stderr: {err}"
        );
        assert!(
            err.contains("input.json"),
            "{cmd}: stderr does not name the file: {err}"
        );
        assert!(
            err.contains(path),
            "{cmd}: stderr does not name {path}: {err}"
        );
        assert!(
            err.contains(reason),
            "{cmd}: stderr does not say {reason:?}: {err}"
        );
    }
}

const SCHED: &str =
    r#""schedule": {"warmup": 10, "samples": 20, "steps_per_sample": 1, "chains": 2}"#;

fn program(ising: &str, extra: &str) -> String {
    format!(r#"{{"ising": {ising}, "beta": 1.0, {SCHED}{extra}}}"#)
}

#[test]
fn nan_weight() {
    rejects(
        &program(
            r#"{"n": 2, "biases": [0, 0], "edges": [[0, 1]], "weights": [NaN]}"#,
            "",
        ),
        "$.ising.weights",
        "NaN",
    );
}

#[test]
fn edge_index_out_of_range() {
    rejects(
        &program(
            r#"{"n": 2, "biases": [0, 0], "edges": [[0, 5]], "weights": [1]}"#,
            "",
        ),
        "$.ising.edges[0]",
        "out of range",
    );
}

#[test]
fn negative_edge_index() {
    rejects(
        &program(
            r#"{"n": 2, "biases": [0, 0], "edges": [[0, -1]], "weights": [1]}"#,
            "",
        ),
        "$.ising.edges[0]",
        "invalid value",
    );
}

#[test]
fn self_loop() {
    rejects(
        &program(
            r#"{"n": 2, "biases": [0, 0], "edges": [[1, 1]], "weights": [1]}"#,
            "",
        ),
        "$.ising.edges[0]",
        "self-loop",
    );
}

#[test]
fn duplicate_edge() {
    rejects(
        &program(
            r#"{"n": 3, "biases": [0, 0, 0], "edges": [[0, 1], [1, 0]], "weights": [1, 2]}"#,
            "",
        ),
        "$.ising.edges[1]",
        "duplicate edge",
    );
}

#[test]
fn edges_weights_length_mismatch() {
    rejects(
        &program(
            r#"{"n": 3, "biases": [0, 0, 0], "edges": [[0, 1], [1, 2]], "weights": [1]}"#,
            "",
        ),
        "$.ising.weights",
        "one weight per edge",
    );
}

#[test]
fn biases_length_mismatch() {
    rejects(
        &program(
            r#"{"n": 3, "biases": [0, 0], "edges": [], "weights": []}"#,
            "",
        ),
        "$.ising.biases",
        "one bias per spin",
    );
}

/// Two free spins, no couplings.
const TWO_FREE_SPINS: &str = r#"{"n": 2, "biases": [0, 0], "edges": [], "weights": []}"#;

/// Expects two free spins with `clamp` (a JSON object) to be rejected at
/// `path` for `reason`.
fn rejects_clamp(clamp: &str, path: &str, reason: &str) {
    let extra = format!(r#", "clamp": {clamp}"#);
    rejects(&program(TWO_FREE_SPINS, &extra), path, reason);
}

#[test]
fn clamp_out_of_range() {
    rejects_clamp(r#"{"7": 1}"#, "$.clamp.7", "out of range");
}

#[test]
fn clamp_not_plus_minus_one() {
    rejects_clamp(r#"{"1": 0}"#, "$.clamp.1", "-1 or +1");
}

#[test]
fn absurd_sizes() {
    let big = format!(
        r#"{{"ising": {TWO_FREE_SPINS}, "schedule": {{"warmup": 1, "samples": 1000000000, "steps_per_sample": 1, "chains": 2}}}}"#
    );
    rejects(&big, "$.schedule.samples", "between 1 and");
    rejects(
        &program(
            r#"{"n": 99999999999, "biases": [], "edges": [], "weights": []}"#,
            "",
        ),
        "$",
        "more than the limit",
    );
}

#[test]
fn unknown_field() {
    rejects(
        &program(
            r#"{"n": 1, "biases": [0], "edges": [], "weights": [], "temperature": 2}"#,
            "",
        ),
        "$.ising",
        "unknown field `temperature`",
    );
}

#[test]
fn malformed_json() {
    rejects(r#"{"ising": {"n": 2, "#, "$", "EOF");
}

#[test]
fn every_problem_is_listed() {
    let text = program(
        r#"{"n": 2, "biases": [0, 0], "edges": [[0, 0], [0, 9]], "weights": [1]}"#,
        r#", "clamp": {"0": 3}"#,
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("p.json");
    std::fs::write(&file, text).unwrap();
    let out = run(&["validate", file.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let paths: Vec<&str> = doc["issues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["path"].as_str().unwrap())
        .collect();
    for want in [
        "$.ising.weights",
        "$.ising.edges[0]",
        "$.ising.edges[1]",
        "$.clamp.0",
    ] {
        assert!(paths.contains(&want), "missing {want} in {paths:?}");
    }
}

fn graph(nodes: &str) -> String {
    format!(
        r#"{{"nodes": [{nodes}], "qos": {{"latency_ms": {{"p50": 20, "p95": 50}}, "risk": "reversible", "priority": "batch"}}}}"#
    )
}

const CONST: &str = r#""tensor": {"op": "const", "value": {"shape": [1], "data": [1]}}"#;

#[test]
fn graph_cycle_is_named() {
    let text = graph(&format!(
        r#"{{"id": "a", "kind": "tensor", "inputs": ["c"], "tensor": {{"op": "relu"}}}},
           {{"id": "b", "kind": "tensor", "inputs": ["a"], "tensor": {{"op": "relu"}}}},
           {{"id": "c", "kind": "tensor", "inputs": ["b"], "tensor": {{"op": "relu"}}}},
           {{"id": "k", "kind": "tensor", {CONST}}}"#
    ));
    rejects(&text, "$.nodes[", "cycle: ");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("g.json");
    std::fs::write(&file, &text).unwrap();
    let err = stderr(&run(&["validate", file.to_str().unwrap()]));
    assert!(
        err.contains("a -> b -> c -> a")
            || err.contains("b -> c -> a -> b")
            || err.contains("c -> a -> b -> c"),
        "{err}"
    );
}

#[test]
fn unknown_input_id() {
    let text =
        graph(r#"{"id": "a", "kind": "tensor", "inputs": ["ghost"], "tensor": {"op": "relu"}}"#);
    rejects(&text, "$.nodes[0].inputs[0]", "unknown input id \"ghost\"");
}

#[test]
fn graph_self_loop() {
    let text = graph(r#"{"id": "a", "kind": "tensor", "inputs": ["a"], "tensor": {"op": "relu"}}"#);
    rejects(&text, "$.nodes[0].inputs[0]", "self-loop");
}

#[test]
fn graph_nan_inside_embedded_program() {
    let text = graph(&format!(
        r#"{{"id": "s", "kind": "sample", "sample": {{"program": {{"ising": {{"n": 2, "biases": [0, Infinity], "edges": [], "weights": []}}, {SCHED}}}}}}}"#
    ));
    rejects(
        &text,
        "$.nodes[0].sample.program.ising.biases",
        "NaN and Infinity",
    );
}

#[test]
fn graph_wrong_payload_and_qos() {
    let text = r#"{"nodes": [{"id": "a", "kind": "nn", "tensor": {"op": "relu"}}], "qos": {"latency_ms": {"p50": 90, "p95": 50}}}"#;
    rejects(text, "$.nodes[0].nn", "needs a `nn` payload");
    rejects(text, "$.qos.latency_ms", "cannot exceed p95");
}

#[test]
fn infeasible_clamp_is_reported_not_crashed() {
    let file = examples().join("programs/infeasible-clamp.json");
    for cmd in ["validate", "sample"] {
        let out = run(&[cmd, file.to_str().unwrap(), "--json"]);
        assert_eq!(out.status.code(), Some(3), "{cmd}: {}", stderr(&out));
        assert!(stderr(&out).contains("$.constraints[0]"));
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let text = doc.to_string();
        assert!(
            text.contains("one_hot") && text.contains("infeasible"),
            "{text}"
        );
    }
}

#[test]
fn sample_json_has_the_fixed_fields_and_draws_file() {
    let dir = tempfile::tempdir().unwrap();
    let draws = dir.path().join("draws.json");
    let file = examples().join("programs/chain.json");
    let out = run(&[
        "sample",
        file.to_str().unwrap(),
        "--backend",
        "cpu",
        "--seed",
        "5",
        "--json",
        "--draws",
        draws.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let marginals = doc["marginals"].as_array().unwrap();
    assert_eq!(marginals.len(), 8);
    assert_eq!(marginals[0].as_f64(), Some(1.0), "spin 0 is clamped to +1");
    for key in ["rhat", "ess_bulk"] {
        assert_eq!(doc["diagnostics"][key].as_array().unwrap().len(), 8);
    }
    assert!(doc["diagnostics"]["max_rhat"].as_f64().unwrap() < 1.05);
    assert!(doc["diagnostics"]["min_ess_bulk"].as_f64().unwrap() > 100.0);
    assert_eq!(doc["provenance"]["backend"], "cpu");
    assert_eq!(doc["provenance"]["seed"], 5);
    assert!(
        doc["provenance"]["program_hash"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(doc["provenance"]["schedule"]["chains"], 4);
    assert!(doc["stats"]["spin_updates"].as_u64().unwrap() > 0);
    assert!(doc["stats"]["seconds"].as_f64().is_some());

    let d: serde_json::Value = serde_json::from_slice(&std::fs::read(&draws).unwrap()).unwrap();
    assert_eq!(d["chains"], 4);
    assert_eq!(d["samples"], 2000);
    let all = d["draws"].as_array().unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].as_array().unwrap().len(), 2000);
    assert!(
        all.iter().flat_map(|c| c.as_array().unwrap()).all(|s| s
            .as_array()
            .unwrap()
            .iter()
            .all(|x| x == 1 || x == -1))
    );

    // Same seed, same document (bar timings).
    let again = run(&["sample", file.to_str().unwrap(), "--seed", "5", "--json"]);
    let doc2: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(doc["marginals"], doc2["marginals"]);
    assert_eq!(
        doc["provenance"]["draws_hash"],
        doc2["provenance"]["draws_hash"]
    );
}

#[test]
fn sample_table_and_help() {
    let out = run(&[
        "sample",
        examples()
            .join("programs/one-hot-causes.json")
            .to_str()
            .unwrap(),
    ]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("R-hat") && text.contains("ESS bulk"),
        "{text}"
    );
    for cmd in ["sample", "validate", "schema", "run", "bench"] {
        let out = run(&[cmd, "--help"]);
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage"));
    }
}

#[test]
fn schema_describes_both_formats() {
    let out = run(&["schema"]);
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = doc.to_string();
    for word in ["ising", "schedule", "clamp", "nodes", "qos", "latency_ms"] {
        assert!(text.contains(word), "schema lacks {word}");
    }
}

#[test]
fn example_files_are_valid() {
    for sub in ["programs", "graphs"] {
        for entry in std::fs::read_dir(examples().join(sub)).unwrap() {
            let path = entry.unwrap().path();
            let out = run(&["validate", path.to_str().unwrap()]);
            let expected = if path.ends_with(Path::new("infeasible-clamp.json")) {
                3
            } else {
                0
            };
            assert_eq!(
                out.status.code(),
                Some(expected),
                "{}: {}",
                path.display(),
                stderr(&out)
            );
        }
    }
}

#[test]
fn run_executes_the_example_workload() {
    let out = run(&[
        "run",
        examples()
            .join("graphs/fraud-triage.json")
            .to_str()
            .unwrap(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let job = &doc["jobs"][0];
    assert_eq!(job["status"], "completed");
    let nodes = job["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 7);
    let kinds: std::collections::BTreeSet<&str> =
        nodes.iter().map(|n| n["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds.len(), 5, "the example uses all five node kinds");
    let skipped = nodes.iter().filter(|n| n["status"] == "skipped").count();
    assert_eq!(skipped, 1, "exactly one side of the branch is skipped");
}
