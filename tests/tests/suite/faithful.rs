//! Faithful simulation: the design note's default rule for sampling nodes
//! under the default hardware, and simulate mode's modelled sampling
//! outcomes (early stopping, NonConvergence, simulated evidence and gate).

use std::path::Path;

use serde_json::Value;
use thermoroute_tests::{example, json_of, run_in};

fn trace_events(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Route events of `node` and the target each chose.
fn routes<'a>(events: &'a [Value], node: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"] == "route" && e["node"] == node)
        .collect()
}

fn simulate(dir: &Path, graphs: &[&str], extra: &[&str]) -> (Value, Vec<Value>) {
    let trace = dir.join(format!("t{}.jsonl", extra.len() + graphs.len() * 10));
    let _ = std::fs::remove_file(&trace);
    let mut args: Vec<String> = vec!["run".into()];
    args.extend(graphs.iter().map(|g| example(g)));
    for a in [
        "--mode",
        "simulate",
        "--seed",
        "3",
        "--trace",
        &trace.to_string_lossy(),
        "--json",
    ] {
        args.push(a.into());
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = json_of(&run_in(dir, &argv));
    (report, trace_events(&trace))
}

#[test]
fn loose_reversible_sampling_goes_to_the_tsu_first_under_the_defaults() {
    let dir = tempfile::tempdir().unwrap();
    // A few jobs far apart: every device idle at each decision.
    let (_, events) = simulate(
        dir.path(),
        &["graphs/posterior-batch.json"],
        &["--jobs", "5", "--rate", "1"],
    );
    let decisions = routes(&events, "posterior");
    assert_eq!(decisions.len(), 5);
    for d in &decisions {
        assert_eq!(d["chosen"], "tsu", "{d}");
        let why = d["explanation"].as_str().unwrap();
        assert!(
            why.contains("default rule for sampling nodes (tsu > gpu-sim > cpu-ref"),
            "{why}"
        );
    }
    // Without the rule, cost alone decides and gpu-sim is cheaper.
    let hw = dir.path().join("cost-only.toml");
    std::fs::write(&hw, "[policy]\nsampling_order = []\n").unwrap();
    let (_, events) = simulate(
        dir.path(),
        &["graphs/posterior-batch.json"],
        &[
            "--jobs",
            "5",
            "--rate",
            "1",
            "--hardware",
            &hw.to_string_lossy(),
        ],
    );
    for d in routes(&events, "posterior") {
        assert_eq!(d["chosen"], "gpu-sim", "{d}");
        assert!(d["explanation"].as_str().unwrap().contains("cheapest"));
    }
}

#[test]
fn risk_and_load_still_move_sampling_off_the_tsu_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    // fraud-triage is irreversible with a 20 ms p50: never the TSU.
    let (_, events) = simulate(
        dir.path(),
        &["graphs/fraud-triage.json"],
        &["--jobs", "5", "--rate", "1"],
    );
    for d in routes(&events, "posterior") {
        assert_ne!(d["chosen"], "tsu", "{d}");
    }
    // posterior-batch at 40 jobs/s: one TSU (about 42 ms a job) cannot
    // keep up, so queued work spills to gpu-sim, explained as the TSU's
    // violated latency share.
    let (_, events) = simulate(
        dir.path(),
        &["graphs/posterior-batch.json"],
        &["--jobs", "200", "--rate", "40"],
    );
    let decisions = routes(&events, "posterior");
    let on_tsu = decisions.iter().filter(|d| d["chosen"] == "tsu").count();
    let spilled: Vec<_> = decisions.iter().filter(|d| d["chosen"] != "tsu").collect();
    assert!(on_tsu > 20 && !spilled.is_empty(), "{on_tsu} on the tsu");
    assert!(
        spilled.iter().any(|d| d["explanation"]
            .as_str()
            .unwrap()
            .contains("tsu violates latency")),
        "{}",
        spilled[0]
    );
}

#[test]
fn simulated_sampling_nodes_carry_modelled_diagnostics_and_simulated_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let reviews = dir.path().join("reviews.json");
    let (report, events) = simulate(
        dir.path(),
        &["graphs/fraud-triage.json"],
        &[
            "--jobs",
            "60",
            "--rate",
            "10",
            "--reviews",
            &reviews.to_string_lossy(),
        ],
    );
    let ends: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "end" && e["node"] == "posterior")
        .collect();
    assert_eq!(ends.len(), 60);
    for e in &ends {
        let out = &e["output"];
        assert_eq!(out["simulated"], true, "{e}");
        let rhat = out["max_rhat"].as_f64().unwrap();
        let ess = out["min_ess_bulk"].as_f64().unwrap();
        assert!((1.0..1.2).contains(&rhat), "{rhat}");
        // 4 chains x 1000 draws of a well-mixing 16-spin program.
        assert!((200.0..8000.0).contains(&ess), "{ess}");
        assert_eq!(out["constraint_rate"], 1.0);
    }
    // The diagnostics vary run to run, as real ones do.
    let distinct: std::collections::BTreeSet<String> = ends
        .iter()
        .map(|e| e["output"]["max_rhat"].to_string())
        .collect();
    assert!(distinct.len() > 30);
    // Every effect was gated on that evidence; the floor's provenance rule
    // passes on the stand-in hashes, so allows outnumber everything else.
    let counters = &report["counters"];
    let gated = counters["gate_allow"].as_u64().unwrap()
        + counters["gate_review"].as_u64().unwrap()
        + counters["gate_deny"].as_u64().unwrap();
    assert_eq!(gated, 60, "{counters}");
    assert!(counters["gate_allow"].as_u64().unwrap() > 30, "{counters}");
    assert_eq!(counters["gate_deny"], 0, "{counters}");
    // Simulated holds are recorded, never queued for a human by default.
    assert!(!reviews.exists());
}

#[test]
fn early_stopping_happens_in_simulation_as_in_execution() {
    let dir = tempfile::tempdir().unwrap();
    let hw = dir.path().join("early.toml");
    std::fs::write(
        &hw,
        "[budgets]\nearly_stop_ess = 400.0\nearly_stop_rhat = 1.05\n",
    )
    .unwrap();
    let args = ["--jobs", "20", "--rate", "2", "--hardware"];
    let mut with_hw: Vec<&str> = args.to_vec();
    let hw_arg = hw.to_string_lossy().into_owned();
    with_hw.push(&hw_arg);
    let (report, events) = simulate(dir.path(), &["graphs/posterior-batch.json"], &with_hw);
    assert_eq!(
        report["counters"]["early_stops"], 20,
        "{}",
        report["counters"]
    );
    let stops: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "early_stop")
        .collect();
    assert_eq!(stops.len(), 20);
    for s in &stops {
        let samples = s["samples"].as_u64().unwrap();
        assert!(samples < 2000, "{s}");
        assert!(s["min_ess_bulk"].as_f64().unwrap() >= 400.0, "{s}");
        assert!(s["max_rhat"].as_f64().unwrap() <= 1.05, "{s}");
    }
    // Stopping early shortens the TSU's service by the sweeps it skipped.
    let service = |events: &[Value]| -> f64 {
        let v: Vec<f64> = events
            .iter()
            .filter(|e| e["event"] == "end" && e["target"] == "tsu")
            .map(|e| e["service_ms"].as_f64().unwrap())
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let (_, full) = simulate(
        dir.path(),
        &["graphs/posterior-batch.json"],
        &["--jobs", "20", "--rate", "2"],
    );
    assert!(service(&events) < 0.9 * service(&full));
}

#[test]
fn a_badly_mixing_model_escalates_nonconvergence_and_holds_with_hold_reviews() {
    let dir = tempfile::tempdir().unwrap();
    let cal = dir.path().join("cal.json");
    let out = run_in(
        dir.path(),
        &[
            "calibrate",
            "--programs",
            "1",
            "--mixing-runs",
            "2",
            "--graph",
            &example("graphs/fraud-triage.json"),
            "--out",
            &cal.to_string_lossy(),
            "--json",
        ],
    );
    let mut c = json_of(&out);
    let mixing = c["mixing"].as_array().unwrap();
    let targets: Vec<&str> = mixing
        .iter()
        .map(|m| m["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["cpu-ref", "tsu"]);
    for m in mixing {
        assert!(m["ess_per_draw"].as_f64().unwrap() > 0.0, "{m}");
        assert_eq!(m["source"], "calibrated");
        // 16 spins enumerate: the error against exact is measured.
        assert!(m["max_error"].as_f64().unwrap() < 0.1, "{m}");
    }
    // The same file, except that every backend mixes badly on it.
    for m in c["mixing"].as_array_mut().unwrap() {
        m["rhat_excess"] = serde_json::json!(0.5);
    }
    std::fs::write(&cal, serde_json::to_string(&c).unwrap()).unwrap();
    let hw = dir.path().join("hold.toml");
    std::fs::write(&hw, "[simulate]\nhold_reviews = true\n").unwrap();
    let reviews = dir.path().join("reviews.json");
    let (report, events) = simulate(
        dir.path(),
        &["graphs/fraud-triage.json"],
        &[
            "--jobs",
            "10",
            "--rate",
            "5",
            "--calibration",
            &cal.to_string_lossy(),
            "--hardware",
            &hw.to_string_lossy(),
            "--reviews",
            &reviews.to_string_lossy(),
        ],
    );
    assert_eq!(report["counters"]["nonconvergence"], 10);
    let failures = events
        .iter()
        .filter(|e| e["event"] == "failure" && e["kind"] == "non_convergence")
        .count();
    assert_eq!(failures, 10);
    // Escalated to a human: every effect is held, and (asked for) queued.
    assert_eq!(
        report["counters"]["gate_review"], 10,
        "{}",
        report["counters"]
    );
    let listed = json_of(&run_in(
        dir.path(),
        &[
            "review",
            "--file",
            &reviews.to_string_lossy(),
            "list",
            "--all",
            "--json",
        ],
    ));
    let items = listed.as_array().expect("a list of held items");
    assert_eq!(items.len(), 10, "{listed}");
    assert!(
        items
            .iter()
            .all(|i| i.to_string().contains("did not converge"))
    );

    // A tampered figure is refused, naming it.
    c["mixing"][0]["ess_per_draw"] = serde_json::json!(-1.0);
    std::fs::write(&cal, serde_json::to_string(&c).unwrap()).unwrap();
    let out = run_in(
        dir.path(),
        &[
            "run",
            &example("graphs/fraud-triage.json"),
            "--mode",
            "simulate",
            "--calibration",
            &cal.to_string_lossy(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mixing model cpu-ref/sha256:"), "{err}");
}

#[test]
fn foreign_calibrations_are_refused_or_ignored_on_request_and_other_chips_keep_the_chip_model() {
    let dir = tempfile::tempdir().unwrap();
    let cal = dir.path().join("cal.json");
    let c = json_of(&run_in(
        dir.path(),
        &[
            "calibrate",
            "--programs",
            "1",
            "--mixing-runs",
            "2",
            "--graph",
            &example("graphs/posterior-batch.json"),
            "--out",
            &cal.to_string_lossy(),
            "--json",
        ],
    ));
    let run = |extra: &[&str]| {
        let mut args = vec![
            "run".to_string(),
            example("graphs/posterior-batch.json"),
            "--mode".into(),
            "simulate".into(),
            "--jobs".into(),
            "3".into(),
            "--calibration".into(),
            cal.to_string_lossy().into_owned(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        run_in(dir.path(), &argv)
    };
    // Measured here, on the devkit chip.
    let here = run(&[]);
    let text = String::from_utf8_lossy(&here.stdout);
    // posterior-batch's sampling node: TSU and CPU reference measured; the
    // GPU runs the CPU's chain law and is piloted on it.
    assert!(
        text.contains("2 measured by `calibrate --graph`, 1 from pilot runs"),
        "{text}"
    );
    // A what-if on another chip: the TSU's mixing is the chip's business,
    // so only the CPU's measured model stays.
    let z1 = dir.path().join("z1.toml");
    std::fs::write(&z1, "[tsu]\nchip = \"z1-like\"\n").unwrap();
    let other = run(&["--hardware", &z1.to_string_lossy()]);
    let text = String::from_utf8_lossy(&other.stdout);
    assert!(text.contains("1 measured by `calibrate --graph`"), "{text}");
    assert!(text.contains("from pilot runs"), "{text}");

    // The same file from another machine: refused, naming the mismatch...
    let mut foreign = c.clone();
    foreign["machine"]["cpu"] = serde_json::json!("Imaginary CPU 9000");
    std::fs::write(&cal, serde_json::to_string(&foreign).unwrap()).unwrap();
    let refused = run(&[]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("another machine") && err.contains("Imaginary CPU 9000"),
        "{err}"
    );
    // ...or, on request, ignored with a warning: the defaults serve.
    let ignored = run(&["--ignore-foreign-calibration"]);
    assert!(ignored.status.success());
    let err = String::from_utf8_lossy(&ignored.stderr);
    assert!(err.contains("warning:") && err.contains("ignored"), "{err}");
    let text = String::from_utf8_lossy(&ignored.stdout);
    assert!(text.contains("uncalibrated built-in defaults"), "{text}");
}
