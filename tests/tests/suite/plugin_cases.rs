//! `thermoroute plugin test FILE --cases CASES.jsonl`: user-written policy
//! cases run after the conformance suite; every committed plugin and every
//! template's role comes with a cases file that passes.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use thermoroute::hardware::Hardware;
use thermoroute::plugin::Role;
use thermoroute::plugin::authoring::template_cases;
use thermoroute_tests::{guest, run_in};

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn plugin_test(component: &Path, cases: &Path, json: bool) -> Output {
    let mut args = vec![
        "plugin",
        "test",
        component.to_str().unwrap(),
        "--cases",
        cases.to_str().unwrap(),
    ];
    if json {
        args.push("--json");
    }
    run_in(&repo(), &args)
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs `plugin test --json` and asserts every case passed.
fn passes(component: &Path, cases: &Path) -> Value {
    let out = plugin_test(component, cases, true);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "{} with {}: {stdout}\n{stderr}",
        component.display(),
        cases.display()
    );
    let r: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(r["passed"], true);
    let cases_run = r["cases"].as_array().unwrap();
    let lines = std::fs::read_to_string(cases)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim().starts_with('#'))
        .count();
    assert_eq!(cases_run.len(), lines);
    assert!(cases_run.iter().all(|c| c["passed"] == true), "{r:#}");
    r
}

#[test]
fn committed_rust_plugins_pass_their_cases() {
    for (wasm, dir) in [
        ("cost_rust", "cost-rust"),
        ("eligibility_rust", "eligibility-rust"),
        ("gate_rust", "gate-rust"),
    ] {
        let r = passes(
            &guest(wasm),
            &repo().join("plugins").join(dir).join("cases.jsonl"),
        );
        assert!(!r["check"]["cases"].as_array().unwrap().is_empty());
    }
}

#[test]
fn every_template_writes_a_cases_file_its_logic_passes() {
    // The Rust templates' logic is the committed Rust plugins' (the cost
    // template is cost-rust's code); the Python, JavaScript, C and C++
    // templates are built and tested in plugin_langs and plugin_c.
    let dir = tempfile::tempdir().unwrap();
    for (role, name, wasm) in [
        (Role::Cost, "cost", "cost_rust"),
        (Role::Eligibility, "eligibility", "eligibility_rust"),
        (Role::Gate, "gate", "gate_rust"),
    ] {
        for lang in ["rust", "python", "js", "c", "cpp"] {
            let new = dir.path().join(format!("{name}-{lang}"));
            let out = run_in(
                &repo(),
                &[
                    "plugin",
                    "new",
                    "--lang",
                    lang,
                    "--role",
                    name,
                    new.to_str().unwrap(),
                ],
            );
            assert!(out.status.success(), "{:?}", text(&out));
            let cases = new.join("cases.jsonl");
            assert_eq!(
                std::fs::read_to_string(&cases).unwrap(),
                template_cases(role)
            );
            let toml = std::fs::read_to_string(new.join("plugin.toml")).unwrap();
            assert!(toml.contains("plugin test target/"), "{toml}");
        }
        let cases = dir.path().join(format!("{name}-rust/cases.jsonl"));
        thermoroute::plugin::read_cases(&cases, &Hardware::default()).unwrap();
        passes(&guest(wasm), &cases);
    }
}

#[test]
fn a_failing_case_prints_input_expected_and_actual() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.jsonl");
    std::fs::write(
        &cases,
        concat!(
            r#"{"role": "cost", "name": "gpu wins", "input": {"node": {"kind": "tensor"}, "weights": {"latency": 1, "energy": 10, "error": 100, "risk": 10}, "candidates": [{"target": "gpu", "estimate": {"latency_p50_ms": 2}}, {"target": "cpu", "estimate": {"latency_p50_ms": 5}}]}, "expect": {"best": "gpu"}}"#,
            "\n",
            r#"{"role": "cost", "name": "cpu wins (wrong)", "input": {"node": {"kind": "tensor"}, "weights": {"latency": 1, "energy": 10, "error": 100, "risk": 10}, "candidates": [{"target": "gpu", "estimate": {"latency_p50_ms": 2}}, {"target": "cpu", "estimate": {"latency_p50_ms": 5}}]}, "expect": {"best": "cpu", "terms": {"cpu": {"total": 4}}}}"#,
            "\n",
            r#"{"role": "gate", "name": "not a gate", "input": {}, "expect": {"decision": "allow"}}"#,
            "\n"
        ),
    )
    .unwrap();
    let out = plugin_test(&guest("cost_rust"), &cases, false);
    assert_eq!(out.status.code(), Some(1));
    let (stdout, _) = text(&out);
    assert!(stdout.contains("conformant"), "{stdout}");
    assert!(
        stdout.contains("cases.jsonl:1 cost \"gpu wins\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL  ") && stdout.contains("cases.jsonl:2 cost \"cpu wins (wrong)\": best is gpu, expected cpu; cpu.total is 5, expected 4"),
        "{stdout}"
    );
    assert!(stdout.contains("input:    {\"candidates\""), "{stdout}");
    assert!(stdout.contains("expected: {\"best\":\"cpu\""), "{stdout}");
    assert!(stdout.contains("actual:   {\"best\":\"gpu\""), "{stdout}");
    assert!(stdout.contains("does not export the gate role"), "{stdout}");
    assert!(stdout.contains("user cases: 2 of 3 FAILED"), "{stdout}");
    let out = plugin_test(&guest("cost_rust"), &cases, true);
    assert_eq!(out.status.code(), Some(1));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["passed"], false);
    assert_eq!(r["check"]["cases"][0]["passed"], true);
    assert_eq!(r["cases"][1]["line"], 2);
    assert_eq!(r["cases"][1]["actual"]["costs"][1]["total"], 5.0);
    assert_eq!(r["cases"][1]["expected"]["best"], "cpu");
}

#[test]
fn a_case_may_expect_a_fault() {
    let dir = tempfile::tempdir().unwrap();
    let cases = dir.path().join("cases.jsonl");
    std::fs::write(
        &cases,
        r#"{"role": "cost", "name": "NaN is refused", "input": {"node": {"kind": "tensor"}, "candidates": [{"target": "cpu"}]}, "expect": {"fault": "invalid_output"}}"#,
    )
    .unwrap();
    let out = plugin_test(&guest("fixture_nan_cost"), &cases, true);
    // The conformance suite fails the plugin; the user case passes.
    assert_eq!(out.status.code(), Some(1));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["cases"][0]["passed"], true, "{r:#}");
    assert_eq!(r["cases"][0]["actual"]["fault"]["kind"], "invalid_output");
}

#[test]
fn malformed_cases_are_named_by_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let good = r#"{"role": "cost", "name": "ok", "input": {"node": {"kind": "tensor"}, "candidates": [{"target": "cpu"}]}, "expect": {"best": "cpu"}}"#;
    for (body, wants) in [
        (
            format!("{good}\n\n{{not json\n"),
            "cases.jsonl: line 3: not a JSON object",
        ),
        (
            good.replace(
                "\"target\": \"cpu\"}",
                "\"target\": \"cpu\", \"estimate\": {\"latency\": 1}}",
            ),
            "line 1: input.candidates[0].estimate.latency: unknown field",
        ),
        (
            good.replace("\"cost\"", "\"costs\""),
            "line 1: role: \"costs\"",
        ),
        (
            good.replace("\"best\": \"cpu\"", "\"best\": \"gpu\""),
            "line 1: expect.best: gpu is not among",
        ),
        (
            good.replace("\"kind\": \"tensor\"", "\"kind\": \"matmul\""),
            "line 1: input.node.kind",
        ),
        (
            good.replace("\"best\": \"cpu\"", ""),
            "line 1: expect: names nothing to check",
        ),
        ("# nothing\n".to_string(), "no cases"),
    ] {
        let cases = dir.path().join("cases.jsonl");
        std::fs::write(&cases, body).unwrap();
        let out = plugin_test(&guest("cost_rust"), &cases, false);
        assert_eq!(out.status.code(), Some(1));
        let (stdout, stderr) = text(&out);
        assert!(stderr.contains(wants), "{wants:?} not in {stderr}");
        assert!(
            stdout.is_empty(),
            "nothing runs before the file is valid: {stdout}"
        );
    }
    let out = plugin_test(
        &guest("cost_rust"),
        &dir.path().join("missing.jsonl"),
        false,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .1
            .contains("missing.jsonl: cannot read the cases")
    );
}

#[test]
fn plugin_test_help_documents_the_schema_per_role() {
    let out = run_in(&repo(), &["plugin", "test", "--help"]);
    let (help, _) = text(&out);
    for w in [
        "--cases",
        "\"role\"",
        "cost:",
        "\"best\"",
        "\"terms\"",
        "eligibility:",
        "\"reasons\"",
        "gate:",
        "\"decision\"",
        "\"fault\"",
    ] {
        assert!(help.contains(w), "{w} not in {help}");
    }
}
