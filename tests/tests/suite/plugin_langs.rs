//! Plugins in every language, end to end through the binary: the committed
//! Python and JavaScript plugins pass the conformance suite and serve a run,
//! and `plugin new` → `plugin build` → `plugin check` → `run` works for Rust,
//! Python and JavaScript (installing componentize-py / jco on first use).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use thermoroute_tests::{example, json_of, run_in};

/// Toolchain installs and builds share directories: one at a time.
pub(crate) static BUILDS: Mutex<()> = Mutex::new(());

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn ok(out: &std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn build(dir: &Path) -> PathBuf {
    let out = run_in(&repo(), &["plugin", "build", dir.to_str().unwrap()]);
    let path = ok(&out, &format!("plugin build {}", dir.display()));
    let path = PathBuf::from(path.trim());
    assert!(path.is_file(), "{}", path.display());
    path
}

fn check(component: &Path) -> serde_json::Value {
    let out = run_in(
        &repo(),
        &["plugin", "check", component.to_str().unwrap(), "--json"],
    );
    ok(&out, &format!("plugin check {}", component.display()));
    json_of(&out)
}

/// `plugin test COMPONENT --cases CASES` passes.
fn plugin_test(component: &Path, cases: &Path) {
    let out = run_in(
        &repo(),
        &[
            "plugin",
            "test",
            component.to_str().unwrap(),
            "--cases",
            cases.to_str().unwrap(),
        ],
    );
    ok(
        &out,
        &format!(
            "plugin test {} --cases {}",
            component.display(),
            cases.display()
        ),
    );
}

/// Runs the fraud-triage example in simulate mode with `flags`; returns the
/// report and the trace header's policy line.
fn run_with(flags: &[&str]) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let graph = example("graphs/fraud-triage.json");
    let mut args = vec![
        "run",
        graph.as_str(),
        "--mode",
        "simulate",
        "--jobs",
        "40",
        "--rate",
        "20",
        "--json",
        "--trace",
        trace.to_str().unwrap(),
    ];
    args.extend_from_slice(flags);
    let out = run_in(dir.path(), &args);
    ok(&out, "run");
    let header: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&trace)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    (
        json_of(&out),
        header["policy"].as_str().unwrap().to_string(),
    )
}

#[test]
fn committed_python_and_js_plugins_are_conformant_and_serve_a_run() {
    let _one = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let cost = build(&repo().join("plugins/cost-python"));
    let gate = build(&repo().join("plugins/gate-js"));
    let cost_js = build(&repo().join("plugins/cost-js"));
    for (component, world, dir) in [
        (&cost, "cost-plugin", "cost-python"),
        (&gate, "gate-plugin", "gate-js"),
        (&cost_js, "cost-plugin", "cost-js"),
    ] {
        let report = check(component);
        assert_eq!(report["world"], world);
        let cases = report["cases"].as_array().unwrap();
        assert!(cases.len() >= 3);
        assert!(cases.iter().all(|c| c["passed"] == true), "{report:#}");
        // Each committed plugin's own cases pass.
        plugin_test(
            component,
            &repo().join("plugins").join(dir).join("cases.jsonl"),
        );
    }
    let (report, policy) = run_with(&[
        "--cost",
        cost.to_str().unwrap(),
        "--gate",
        gate.to_str().unwrap(),
    ]);
    assert!(
        policy.contains("cost=plugin:cost-python (cost-python@"),
        "{policy}"
    );
    assert!(policy.contains("gate=plugin:gate-js (gate-js@"), "{policy}");
    assert_eq!(report["counters"]["policy_faults"], 0, "{report:#}");
    // The strict gate never lets an irreversible effect through unreviewed.
    let c = &report["counters"];
    assert!(c["gate_review"].as_u64().unwrap() + c["gate_deny"].as_u64().unwrap() > 0);
}

#[test]
fn new_build_check_run_works_in_every_language() {
    let _one = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    for (lang, role) in [("rust", "eligibility"), ("python", "gate"), ("js", "cost")] {
        let dir = tmp.path().join(format!("my-{role}-{lang}"));
        let plugin_new = || {
            run_in(
                &repo(),
                &[
                    "plugin",
                    "new",
                    "--lang",
                    lang,
                    "--role",
                    role,
                    dir.to_str().unwrap(),
                ],
            )
        };
        ok(&plugin_new(), "plugin new");
        assert!(dir.join("plugin.toml").is_file());
        assert!(dir.join("wit/policy.wit").is_file());
        // A second `new` into the same directory refuses to overwrite it.
        assert!(!plugin_new().status.success());
        let component = build(&dir);
        let report = check(&component);
        assert!(
            report["cases"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["passed"] == true),
            "{lang} {role}: {report:#}"
        );
        // The template's cases file passes on the built template.
        plugin_test(&component, &dir.join("cases.jsonl"));
        let flag = format!("--{role}");
        let (run, policy) = run_with(&[flag.as_str(), component.to_str().unwrap()]);
        let name = format!("{role}=plugin:my-{role}-{lang} (my-{role}-{lang}@");
        assert!(policy.contains(&name), "{policy}");
        assert_eq!(
            run["counters"]["policy_faults"], 0,
            "{lang} {role}: {run:#}"
        );
    }
}
