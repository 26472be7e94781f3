//! Guest output (issue 15, items 3 and 4): what a plugin prints to stdout
//! and stderr is captured per call, bounded, and shown with its faults: in
//! the fault's trace record, the `run` summary (human and `--json`),
//! `explain` and `plugin check`. A Python plugin's traceback and a Rust
//! panic message survive; a log flood is bounded, counted and fast.

use std::path::{Path, PathBuf};

use thermoroute::hardware::Hardware;
use thermoroute::model::graph::{Qos, Risk};
use thermoroute::plugin::{LogSource, PluginCost, PluginSet};
use thermoroute::policy::{
    CandidateInput, CostModel, CostTerms, DecisionContext, Estimate, NodeSummary, PolicyFault,
};
use thermoroute::trace::{TraceEvent, read_trace};
use thermoroute_tests::{
    example, guest, json_of, plugin_runtime as runtime, run_in, simulate_fraud as simulate,
};

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// One decision of `risk` over two candidates.
fn score(model: &dyn CostModel, risk: Risk) -> Result<Vec<CostTerms>, PolicyFault> {
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
    let qos = Qos {
        risk,
        ..Default::default()
    };
    let ctx = DecisionContext {
        node: &node,
        qos: &qos,
        weights: &Default::default(),
        candidates: &cands,
        situation: None,
    };
    let mut out = Vec::new();
    model.score(&ctx, &mut out).map(|()| out)
}

fn texts(fault: &PolicyFault) -> Vec<&str> {
    fault.output.lines.iter().map(|l| l.text.as_str()).collect()
}

#[test]
fn a_rust_panic_message_travels_with_its_fault() {
    let model = PluginCost::open(runtime(), &guest("fixture_panic"), Default::default(), None)
        .expect("loads");
    let fault = score(&model, Risk::Reversible).expect_err("it panics");
    assert_eq!(fault.kind, "trap");
    let lines = texts(&fault);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("fixture panics: index 9 out of range")),
        "{lines:?}"
    );
    assert!(
        fault
            .output
            .lines
            .iter()
            .all(|l| l.source == LogSource::Stderr),
        "{:?}",
        fault.output
    );
    assert!(
        fault
            .path
            .as_deref()
            .is_some_and(|p| p.ends_with("fixture_panic.wasm")),
        "{:?}",
        fault.path
    );
    // The next call's window starts empty: the guest error fixture prints
    // nothing, and its fault carries nothing.
    let quiet = PluginCost::open(
        runtime(),
        &guest("fixture_guest_error"),
        Default::default(),
        None,
    )
    .unwrap();
    let fault = score(&quiet, Risk::Reversible).expect_err("it refuses");
    assert_eq!(fault.kind, "guest_error");
    assert!(fault.output.is_empty(), "{:?}", fault.output);
}

#[test]
fn a_log_flood_is_bounded_counted_and_answered() {
    // 2 MiB of stdout per call. Its manifest asks for the 1 s maximum
    // deadline, so the test is about the bound, not about how busy the
    // machine is (on a loaded machine 2 MiB can take longer than the
    // default 100 ms).
    let dir = tempfile::tempdir().unwrap();
    let flood = dir.path().join("flood.wasm");
    std::fs::copy(guest("fixture_log_flood"), &flood).unwrap();
    std::fs::write(
        dir.path().join("flood.toml"),
        "[limits]\ndeadline_ms = 1000\n",
    )
    .unwrap();
    let model = PluginCost::open(runtime(), &flood, Default::default(), None).expect("loads");
    let quiet =
        PluginCost::open(runtime(), &guest("cost_rust"), Default::default(), None).expect("loads");
    for _ in 0..10 {
        let costs = score(&model, Risk::Reversible).expect("the flood answers");
        assert_eq!(costs.len(), 2);
        // Each call's window is its own: the previous flood is gone.
    }
    // A quiet plugin beside it answers, with nothing of the flood's output.
    for _ in 0..10 {
        assert_eq!(score(&quiet, Risk::Reversible).unwrap().len(), 2);
    }

    // After the flood it panics on irreversible jobs: the fault keeps the
    // first lines, the last ones (the panic message) and the counts.
    let fault = score(&model, Risk::Irreversible).expect_err("it panics");
    let out = &fault.output;
    let kept: usize = out.lines.iter().map(|l| l.text.len()).sum();
    assert!(kept <= 64 * 1024, "{kept} bytes kept");
    assert!(out.lines.len() <= 1024);
    // 2 MiB in lines of 98 bytes and a newline, less what was kept.
    assert!(
        out.dropped_bytes >= 2_000_000,
        "{} bytes dropped",
        out.dropped_bytes
    );
    assert!(out.dropped_lines >= 20_000, "{}", out.dropped_lines);
    assert!(out.gap.is_some());
    assert!(out.lines[0].text.starts_with("xxxx"));
    let lines = texts(&fault);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("log-flood: refuses irreversible jobs")),
        "{:?}",
        &lines[lines.len().saturating_sub(5)..]
    );
    assert!(lines.contains(&"log-flood: scored 2 candidates"));
    // And a human excerpt says what it dropped.
    let shown = out.excerpt(10);
    assert!(
        shown
            .iter()
            .any(|l| l.contains("dropped past the per-call bound"))
    );
}

#[test]
fn a_flooding_plugin_in_a_run_loses_no_job_and_its_faults_are_summarised() {
    let hw = Hardware::default();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let policy = PluginSet {
        cost: Some(guest("fixture_log_flood")),
        ..Default::default()
    }
    .policy(&hw, None)
    .unwrap();
    let report = simulate(policy, &hw, 20, &trace);
    assert_eq!(
        report.completed + report.failed + report.rejected + report.infeasible,
        20
    );
    // fraud-triage is irreversible: the flood faults, the breaker trips.
    assert!(report.counters.policy_faults >= 1);
    assert_eq!(report.policy_faults.len(), 1);
    let summary = &report.policy_faults[0];
    assert_eq!(summary.role, "cost");
    assert_eq!(summary.count, report.counters.policy_faults);
    assert_eq!(summary.first_kind, "trap");
    assert!(summary.output.dropped_bytes > 0);
    assert!(
        summary
            .output
            .lines
            .iter()
            .any(|l| l.text.contains("refuses irreversible jobs"))
    );
    // Each traced fault carries its bounded output, and the decision it hit.
    let events = read_trace(&trace).unwrap().events;
    let fault = events
        .iter()
        .find_map(|e| match e {
            TraceEvent::PolicyFault {
                job, node, fault, ..
            } => Some((job, node, fault)),
            _ => None,
        })
        .expect("a fault was traced");
    assert!(fault.0.is_some() && fault.1.is_some());
    assert!(fault.2.output.dropped_lines > 0);
    let line = std::fs::read_to_string(&trace)
        .unwrap()
        .lines()
        .find(|l| l.contains("\"policy_fault\""))
        .unwrap()
        .to_string();
    assert!(
        line.len() < 100 * 1024,
        "a fault line is bounded: {}",
        line.len()
    );
}

#[test]
fn the_tui_events_view_shows_a_fault_with_what_the_plugin_printed() {
    use super::tui::{header, key, screen};
    use thermoroute::policy::{GuestLine, GuestOutput, LogSource, PolicyFault};
    use thermoroute::tui::{App, LogKind};
    let stderr = |t: &str| GuestLine {
        source: LogSource::Stderr,
        text: t.into(),
    };
    let events = vec![
        header(Hardware::default()),
        TraceEvent::PolicyFault {
            t_ms: 1.0,
            job: Some(3),
            node: Some("score".into()),
            role: "cost".into(),
            fault: PolicyFault {
                policy: "plugin:buggy (buggy@0123456789ab)".into(),
                reason: "trapped: wasm trap: wasm `unreachable` instruction executed".into(),
                kind: "trap".into(),
                path: Some("buggy.wasm".into()),
                output: Box::new(GuestOutput {
                    lines: vec![
                        GuestLine {
                            source: LogSource::Stdout,
                            text: "buggy: scoring 3 candidates".into(),
                        },
                        stderr("Traceback (most recent call last):"),
                        stderr("  File \"app.py\", line 14, in latency_term"),
                        stderr("AttributeError: 'Estimate' object has no attribute 'latency_ms'"),
                    ],
                    dropped_lines: 2,
                    dropped_bytes: 40,
                    gap: Some(1),
                }),
            },
            fallback: "native cost model".into(),
        },
        TraceEvent::PolicyFault {
            t_ms: 2.0,
            job: None,
            node: None,
            role: "eligibility".into(),
            fault: PolicyFault {
                policy: "plugin:quiet (quiet@0123456789ab)".into(),
                reason: "ran out of fuel (20000000 units)".into(),
                kind: "out_of_fuel".into(),
                ..Default::default()
            },
            fallback: "native eligibility rules".into(),
        },
    ];
    let mut app = App::replay("faults.jsonl", events);
    app.advance_to(f64::INFINITY);
    app.handle_key(key('4'));
    let texts: Vec<&str> = app.model.log.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "cost policy fault (trap): trapped: wasm trap: wasm `unreachable` instruction executed; native cost model",
            "  │ stdout | buggy: scoring 3 candidates",
            "  │ … 2 line(s), 40 byte(s) dropped past the per-call bound …",
            "  │ stderr | Traceback (most recent call last):",
            "  │ stderr |   File \"app.py\", line 14, in latency_term",
            "  │ stderr | AttributeError: 'Estimate' object has no attribute 'latency_ms'",
            "eligibility policy fault (out_of_fuel): ran out of fuel (20000000 units); native eligibility rules",
        ]
    );
    // The guest lines belong to the fault's decision and to the policy filter.
    assert!(app.model.log[..6].iter().all(|l| l.kind == LogKind::Policy
        && l.job == Some(3)
        && l.node.as_deref() == Some("score")));
    let screen = screen(&app);
    assert!(
        screen.contains("AttributeError: 'Estimate' object"),
        "{screen}"
    );
    insta::assert_snapshot!("events_policy_fault", screen);
}

#[test]
fn an_old_trace_fault_without_output_still_reads() {
    let old = r#"{"event":"policy_fault","t_ms":1.5,"role":"cost","fault":{"policy":"plugin:x (x@0123)","reason":"trapped: wasm trap","kind":"trap"},"fallback":"native cost model"}"#;
    let e: TraceEvent = serde_json::from_str(old).expect("reads");
    match e {
        TraceEvent::PolicyFault {
            job, node, fault, ..
        } => {
            assert!(job.is_none() && node.is_none());
            assert!(fault.output.is_empty() && fault.path.is_none());
        }
        other => panic!("{other:?}"),
    }
}

/// Builds the buggy Python fixture (componentize-py; installed on first use).
fn build_buggy_python() -> PathBuf {
    let dir = repo().join("tests/fixtures/buggy-cost-python");
    let out = run_in(&repo(), &["plugin", "build", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "plugin build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn has_traceback(lines: &[String]) -> bool {
    lines
        .iter()
        .any(|l| l.contains("Traceback (most recent call last)"))
        && lines.iter().any(|l| {
            l.contains("AttributeError") && l.contains("latency_ms") && l.contains("Estimate")
        })
}

fn lines_of(v: &serde_json::Value) -> Vec<String> {
    v["lines"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|l| l["text"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_python_attribute_error_shows_its_traceback_everywhere() {
    let component = build_buggy_python();
    let dir = tempfile::tempdir().unwrap();
    let c = component.to_str().unwrap();

    // plugin check: the failing cases carry (and print) the traceback.
    let out = run_in(&repo(), &["plugin", "check", c, "--json"]);
    assert!(!out.status.success(), "a buggy plugin is not conformant");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed: Vec<&serde_json::Value> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .collect();
    assert!(!failed.is_empty());
    assert!(
        failed
            .iter()
            .any(|c| has_traceback(&lines_of(&c["output"]))),
        "{report:#}"
    );
    let out = run_in(&repo(), &["plugin", "check", c]);
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(human.contains("guest output of FAILED case"), "{human}");
    assert!(
        has_traceback(&human.lines().map(String::from).collect::<Vec<_>>()),
        "{human}"
    );

    // run: the human summary lists the plugin's faults with the traceback.
    let trace = dir.path().join("t.jsonl");
    let graph = example("graphs/fraud-triage.json");
    let args = [
        "run",
        graph.as_str(),
        "--mode",
        "simulate",
        "--jobs",
        "3",
        "--cost",
        c,
        "--trace",
        trace.to_str().unwrap(),
    ];
    let out = run_in(dir.path(), &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(human.contains("policy faults: "), "{human}");
    assert!(
        human.contains("cost plugin:buggy-cost-python (buggy-cost-python@"),
        "{human}"
    );
    assert!(human.contains("buggy-cost-python.wasm]"), "{human}");
    assert!(
        has_traceback(&human.lines().map(String::from).collect::<Vec<_>>()),
        "{human}"
    );

    // --json: the same list.
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let report = json_of(&run_in(dir.path(), &json_args));
    let faults = report["policy_faults"].as_array().expect("a list");
    assert_eq!(faults.len(), 1, "{report:#}");
    assert_eq!(faults[0]["role"], "cost");
    assert_eq!(faults[0]["count"], report["counters"]["policy_faults"]);
    assert_eq!(faults[0]["first_kind"], "trap");
    assert!(has_traceback(&lines_of(&faults[0]["output"])), "{report:#}");

    // The trace's fault record holds it too, and `explain` prints it.
    let events = read_trace(&trace).unwrap().events;
    let (job, node, fault) = events
        .iter()
        .find_map(|e| match e {
            TraceEvent::PolicyFault {
                job: Some(job),
                node: Some(node),
                fault,
                ..
            } => Some((*job, node.clone(), fault.clone())),
            _ => None,
        })
        .expect("a cost fault with its decision");
    let lines: Vec<String> = fault.output.lines.iter().map(|l| l.text.clone()).collect();
    assert!(has_traceback(&lines), "{lines:?}");
    assert!(
        fault
            .output
            .lines
            .iter()
            .any(|l| l.source == LogSource::Stdout && l.text.starts_with("buggy-cost: scoring")),
        "its print() is kept too"
    );
    let out = run_in(
        dir.path(),
        &[
            "explain",
            trace.to_str().unwrap(),
            "--job",
            &job.to_string(),
            "--node",
            &node,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("cost policy fault (trap)"), "{text}");
    assert!(text.contains("the plugin printed:"), "{text}");
    assert!(
        has_traceback(&text.lines().map(String::from).collect::<Vec<_>>()),
        "{text}"
    );
}

/// Writes `text` to `dir/name`.
fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[test]
fn a_javascript_error_shows_its_message_and_stack() {
    // A JS cost model that throws a TypeError deep in a helper.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("bad-js");
    let out = run_in(
        &repo(),
        &[
            "plugin",
            "new",
            "--lang",
            "js",
            "--role",
            "cost",
            dir.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let source = std::fs::read_to_string(dir.join("plugin.js")).unwrap();
    let buggy = source.replace(
        "c.estimate.latencyP50Ms",
        "c.estimate.latency.p50 /* a new author's bug */",
    );
    assert_ne!(buggy, source, "the template reads latencyP50Ms");
    write(&dir, "plugin.js", &buggy);
    let out = run_in(&repo(), &["plugin", "build", dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let component = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let out = run_in(
        &repo(),
        &["plugin", "check", component.to_str().unwrap(), "--json"],
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let failed: Vec<&serde_json::Value> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["passed"] == false)
        .collect();
    assert!(!failed.is_empty(), "{report:#}");
    // The message names the error (the template answers with its name)...
    assert!(
        failed.iter().any(|c| c["detail"]
            .as_str()
            .unwrap()
            .contains("TypeError: cannot read property 'p50' of undefined")),
        "{report:#}"
    );
    // ...and its stack is kept with the fault's guest output.
    let lines: Vec<String> = failed.iter().flat_map(|c| lines_of(&c["output"])).collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("at ") && l.contains("plugin.js:")),
        "its stack: {report:#}"
    );
    assert!(
        failed
            .iter()
            .all(|c| !c["detail"].as_str().unwrap().contains('\n')),
        "the reason is one line"
    );
}
