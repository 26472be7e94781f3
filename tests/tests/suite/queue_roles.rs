//! The queue roles of WIT 0.2 (issue 15): `queue-order`, `admit` and
//! `preempt` plugins change what a run does, visibly in its trace; hostile
//! ones (an order that is not a permutation, an admission that holds
//! forever, victims that cannot be preempted) are typed faults with the
//! native rule serving, and no job is ever lost; the committed guests pass
//! the conformance suite; `run --policy DIR` and the role flags pick them up.

use std::path::Path;

use thermoroute::engine::{Arrivals, Engine, EngineConfig, JobClass, Mode, RunReport};
use thermoroute::hardware::Hardware;
use thermoroute::model::Graph;
use thermoroute::model::graph::Priority;
use thermoroute::plugin::{PluginSet, conformance_under};
use thermoroute::policy::Policy;
use thermoroute::trace::{HoldOutcome, TraceEvent, read_trace};
use thermoroute_tests::{example, guest, json_of, plugin_runtime, run_in};

fn graph(name: &str) -> Graph {
    Graph::load(Path::new(&example(&format!("graphs/{name}.json")))).expect("the example loads")
}

/// The M/M/3 queue of the examples: interactive and batch jobs (3:7) on
/// three CPU cores at 90% load, so work waits in both queues.
fn mm3(policy: Policy, hw: &Hardware, trace: &Path) -> RunReport {
    run(
        policy,
        hw,
        vec![
            ("mm3-interactive", graph("mm3-interactive")),
            ("mm3-batch", graph("mm3-batch")),
        ],
        vec![3.0, 7.0],
        2700.0,
        400,
        trace,
    )
}

fn mm3_hardware() -> Hardware {
    Hardware::load(Path::new(&example("hardware/mm3.toml"))).expect("the example loads")
}

/// Batch and interactive posteriors (the same program) on two CPU cores
/// and a TSU: interactive sampling arriving at a full device preempts batch
/// sampling (preemptible in slices).
fn sampling(policy: Policy, hw: &Hardware, trace: &Path) -> RunReport {
    let batch = graph("posterior-batch");
    let mut interactive = graph("posterior-batch");
    interactive.name = Some("posterior-interactive".into());
    interactive.qos.priority = Priority::Interactive;
    interactive.qos.accuracy = None;
    run(
        policy,
        hw,
        vec![("interactive", interactive), ("batch", batch)],
        vec![1.0, 3.0],
        200.0,
        300,
        trace,
    )
}

fn sampling_hardware() -> Hardware {
    Hardware::from_toml(Path::new("hw.toml"), "[cpu]\ncores = 2\n[gpu]\ncount = 0\n")
        .expect("a valid hardware file")
}

fn run(
    policy: Policy,
    hw: &Hardware,
    classes: Vec<(&str, Graph)>,
    mix: Vec<f64>,
    rate_per_s: f64,
    jobs: u64,
    trace: &Path,
) -> RunReport {
    let classes = classes
        .into_iter()
        .map(|(name, graph)| JobClass {
            name: name.into(),
            graph,
        })
        .collect();
    let mut engine = Engine::new(
        classes,
        hw.clone(),
        policy,
        Default::default(),
        EngineConfig {
            mode: Mode::Simulate,
            seed: 7,
            arrivals: Arrivals::Poisson { jobs, rate_per_s },
            mix,
            trace: Some(trace.to_path_buf()),
            ..Default::default()
        },
    )
    .expect("a valid run");
    engine.run().expect("the run completes");
    let report = engine.report();
    // Never a lost job.
    assert_eq!(report.in_flight, 0, "{report:#?}");
    assert_eq!(
        report.completed + report.failed + report.rejected + report.infeasible,
        jobs,
        "{report:#?}"
    );
    report
}

fn plugins(set: PluginSet, hw: &Hardware) -> Policy {
    set.policy(hw, None).expect("the plugins load")
}

fn events(trace: &Path) -> Vec<TraceEvent> {
    read_trace(trace).expect("the trace reads").events
}

/// (job, node) of every start, in order.
fn starts(trace: &Path) -> Vec<(u64, String)> {
    events(trace)
        .into_iter()
        .filter_map(|e| match e {
            TraceEvent::Start { job, node, .. } => Some((job, node)),
            _ => None,
        })
        .collect()
}

/// (job, node, by_job) of every preemption, in order.
fn preemptions(trace: &Path) -> Vec<(u64, String, u64)> {
    events(trace)
        .into_iter()
        .filter_map(|e| match e {
            TraceEvent::Preempt {
                job, node, by_job, ..
            } => Some((job, node, by_job)),
            _ => None,
        })
        .collect()
}

/// The guest output of every policy fault, as `explain` shows it.
fn fault_outputs(trace: &Path) -> Vec<Vec<String>> {
    events(trace)
        .into_iter()
        .filter_map(|e| match e {
            TraceEvent::PolicyFault { fault, .. } => Some(fault.output.excerpt(40)),
            _ => None,
        })
        .collect()
}

/// (role, kind, reason) of every policy fault.
fn faults(trace: &Path) -> Vec<(String, String, String)> {
    events(trace)
        .into_iter()
        .filter_map(|e| match e {
            TraceEvent::PolicyFault { role, fault, .. } => Some((role, fault.kind, fault.reason)),
            _ => None,
        })
        .collect()
}

fn class_p50(r: &RunReport, priority: Priority) -> f64 {
    r.classes
        .iter()
        .find(|c| c.priority == priority)
        .and_then(|c| c.latency_p50_ms)
        .expect("the class completed jobs")
}

#[test]
fn a_batch_first_queue_order_changes_the_start_order() {
    let hw = mm3_hardware();
    let dir = tempfile::tempdir().unwrap();
    let (native_t, plugin_t) = (dir.path().join("n.jsonl"), dir.path().join("p.jsonl"));
    let native = mm3(Policy::native(&hw), &hw, &native_t);
    let set = PluginSet {
        queue_order: Some(guest("fixture_batch_first")),
        ..Default::default()
    };
    let policy = plugins(set, &hw);
    assert!(
        policy
            .describe()
            .contains("queue-order=plugin:fixture_batch_first"),
        "{}",
        policy.describe()
    );
    let batch_first = mm3(policy, &hw, &plugin_t);
    assert_eq!(batch_first.counters.policy_faults, 0);
    assert_ne!(starts(&native_t), starts(&plugin_t));
    // Batch work overtakes interactive work: interactive jobs wait longer,
    // batch jobs less.
    assert!(
        class_p50(&batch_first, Priority::Interactive) > class_p50(&native, Priority::Interactive),
        "{batch_first:#?}\n{native:#?}"
    );
    assert!(
        class_p50(&batch_first, Priority::Batch) < class_p50(&native, Priority::Batch),
        "{batch_first:#?}\n{native:#?}"
    );
    // The trace header names the plugin.
    let TraceEvent::Header { policy, .. } = &events(&plugin_t)[0] else {
        panic!("the trace opens with its header")
    };
    assert!(
        policy.contains("queue-order=plugin:fixture_batch_first ("),
        "{policy}"
    );
}

#[test]
fn an_order_that_is_not_a_permutation_is_a_typed_fault_and_the_native_order_serves() {
    let hw = mm3_hardware();
    let dir = tempfile::tempdir().unwrap();
    let (native_t, plugin_t) = (dir.path().join("n.jsonl"), dir.path().join("p.jsonl"));
    mm3(Policy::native(&hw), &hw, &native_t);
    let set = PluginSet {
        queue_order: Some(guest("fixture_duplicate_order")),
        ..Default::default()
    };
    let report = mm3(plugins(set, &hw), &hw, &plugin_t);
    let faults = faults(&plugin_t);
    assert!(report.counters.policy_faults > 0);
    assert_eq!(report.counters.policy_faults, faults.len() as u64);
    for (role, kind, reason) in &faults {
        assert_eq!(role, "queue-order");
        assert_eq!(kind, "invalid_output");
        assert!(reason.contains("appears twice"), "{reason}");
    }
    // Each fault record carries what the guest printed in that call (one
    // line: a window per call), and the run summary keeps it per plugin.
    let printed = "duplicate-order: ordering";
    let outputs = fault_outputs(&plugin_t);
    assert_eq!(outputs.len(), faults.len());
    for lines in &outputs {
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(
            lines[0].starts_with(&format!("stderr | {printed}")),
            "{lines:?}"
        );
    }
    assert_eq!(report.policy_faults.len(), 1, "{:#?}", report.policy_faults);
    let summary = &report.policy_faults[0];
    assert_eq!(summary.role, "queue-order");
    assert_eq!(summary.count, report.counters.policy_faults);
    assert!(
        summary
            .path
            .as_deref()
            .is_some_and(|p| p.ends_with(".wasm")),
        "{summary:?}"
    );
    assert!(
        summary
            .output
            .lines
            .iter()
            .any(|l| l.text.starts_with(printed)),
        "{summary:?}"
    );
    // The breaker trips after 5 consecutive faults (a traced notice); the
    // native order serves throughout.
    assert!(faults.len() >= 5, "{faults:?}");
    assert!(
        events(&plugin_t).iter().any(|e| matches!(
            e,
            TraceEvent::PolicyReload { notice, .. }
                if notice.role == "queue-order" && notice.detail.starts_with("tripped after 5")
        )),
        "no trip notice"
    );
    assert_eq!(starts(&native_t), starts(&plugin_t));
}

#[test]
fn an_admission_that_rejects_everything_rejects_with_a_retry_after() {
    let hw = mm3_hardware();
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let set = PluginSet {
        admit: Some(guest("fixture_reject_all")),
        ..Default::default()
    };
    let report = mm3(plugins(set, &hw), &hw, &trace);
    assert_eq!(report.rejected, 400, "{report:#?}");
    assert_eq!(report.completed, 0);
    let rejects: Vec<(f64, String)> = events(&trace)
        .into_iter()
        .filter_map(|e| match e {
            TraceEvent::Reject {
                retry_after_ms,
                reason,
                ..
            } => Some((retry_after_ms, reason)),
            _ => None,
        })
        .collect();
    assert_eq!(rejects.len(), 400);
    for (retry, reason) in &rejects {
        assert_eq!(*retry, 250.0);
        assert!(
            reason.starts_with(
                "admission refused by plugin:fixture_reject_all: closed for maintenance"
            ),
            "{reason}"
        );
    }
}

#[test]
fn a_hold_forever_admission_is_rejected_at_the_hold_limit_and_no_job_is_lost() {
    let mut hw = mm3_hardware();
    hw.plugins.max_hold_ms = 40;
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let set = PluginSet {
        admit: Some(guest("fixture_hold_forever")),
        ..Default::default()
    };
    let report = mm3(plugins(set, &hw), &hw, &trace);
    assert_eq!(report.rejected, 400, "{report:#?}");
    let events = events(&trace);
    let mut arrivals = std::collections::HashMap::new();
    for e in &events {
        match e {
            TraceEvent::Arrival { t_ms, job, .. } => {
                arrivals.insert(*job, *t_ms);
            }
            TraceEvent::Reject {
                t_ms, job, reason, ..
            } => {
                assert!(reason.contains("[plugins] max_hold_ms = 40 ms"), "{reason}");
                assert!(
                    reason.contains("waiting for a moment that never comes"),
                    "{reason}"
                );
                // Held exactly the limit (routing happens on arrival).
                let held = t_ms - arrivals[job];
                assert!((held - 40.0).abs() < 1e-6, "{held}");
            }
            _ => {}
        }
    }
    // No task ever started.
    assert!(starts(&trace).is_empty());
    // Every hold is traced when it begins and when it ends: here at the
    // limit, just before the rejection naming it.
    let holds = hold_events(&events);
    assert_eq!(holds.len(), 400, "one hold per job");
    for (job, hold, end, reject) in &holds {
        let (plugin, reason, limit) = hold.as_ref().expect("a hold event");
        assert_eq!(plugin, "plugin:fixture_hold_forever", "job {job}");
        assert_eq!(reason, "waiting for a moment that never comes");
        assert_eq!(*limit, 40);
        let (outcome, held) = end.expect("a hold_end event");
        assert_eq!(outcome, HoldOutcome::HoldLimit, "job {job}");
        assert!((held - 40.0).abs() < 1e-6, "{held}");
        assert!(
            reject
                .as_deref()
                .is_some_and(|r| r.contains("max_hold_ms = 40 ms")),
            "job {job}: {reject:?}"
        );
    }
}

/// Per job: its hold (plugin, reason, limit), its end (outcome, held ms)
/// and the reason of the rejection after it, checking their order.
#[allow(clippy::type_complexity)]
fn hold_events(
    events: &[TraceEvent],
) -> Vec<(
    u64,
    Option<(String, String, u64)>,
    Option<(HoldOutcome, f64)>,
    Option<String>,
)> {
    let mut per_job: std::collections::BTreeMap<u64, _> = Default::default();
    for e in events {
        match e {
            TraceEvent::Hold {
                job,
                plugin,
                reason,
                max_hold_ms,
                ..
            } => {
                let slot = per_job.entry(*job).or_insert((None, None, None));
                assert!(slot.0.is_none(), "job {job} held twice");
                slot.0 = Some((plugin.clone(), reason.clone(), *max_hold_ms));
            }
            TraceEvent::HoldEnd {
                job,
                outcome,
                held_ms,
                ..
            } => {
                let slot = per_job.entry(*job).or_insert((None, None, None));
                assert!(slot.0.is_some(), "job {job}: a hold ends before it began");
                assert!(slot.1.is_none(), "job {job}: a hold ends twice");
                slot.1 = Some((*outcome, *held_ms));
            }
            TraceEvent::Reject { job, reason, .. } => {
                let slot = per_job.entry(*job).or_insert((None, None, None));
                assert!(
                    slot.1.is_some(),
                    "job {job}: rejected before its hold ended"
                );
                slot.2 = Some(reason.clone());
            }
            _ => {}
        }
    }
    per_job
        .into_iter()
        .map(|(job, (h, e, r))| (job, h, e, r))
        .collect()
}

#[test]
fn a_hold_limit_of_zero_rejects_at_once_and_the_limit_is_validated() {
    let mut hw = mm3_hardware();
    hw.plugins.max_hold_ms = 0;
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let set = PluginSet {
        admit: Some(guest("fixture_hold_forever")),
        ..Default::default()
    };
    let report = mm3(plugins(set, &hw), &hw, &trace);
    assert_eq!(report.rejected, 400);
    // Each hold still begins and ends in the trace, at the same instant.
    let holds = hold_events(&events(&trace));
    assert_eq!(holds.len(), 400);
    for (_, hold, end, _) in &holds {
        assert_eq!(hold.as_ref().map(|h| h.2), Some(0));
        assert_eq!(*end, Some((HoldOutcome::HoldLimit, 0.0)));
    }
    let err = Hardware::from_toml(Path::new("hw.toml"), "[plugins]\nmax_hold_ms = 4000000\n")
        .unwrap_err();
    assert!(err.to_string().contains("plugins.max_hold_ms"), "{err}");
    let hw = Hardware::from_toml(Path::new("hw.toml"), "[plugins]\nmax_hold_ms = 250\n").unwrap();
    assert_eq!(hw.plugins.max_hold_ms, 250);
    assert_eq!(Hardware::default().plugins.max_hold_ms, 1000);
}

#[test]
fn a_preemption_plugin_picks_its_victims() {
    let hw = sampling_hardware();
    let dir = tempfile::tempdir().unwrap();
    let (native_t, plugin_t) = (dir.path().join("n.jsonl"), dir.path().join("p.jsonl"));
    let native = sampling(Policy::native(&hw), &hw, &native_t);
    assert!(native.counters.preemptions > 0, "{native:#?}");
    let set = PluginSet {
        preempt: Some(guest("fixture_preempt_all")),
        ..Default::default()
    };
    let all = sampling(plugins(set, &hw), &hw, &plugin_t);
    assert_eq!(all.counters.policy_faults, 0);
    // Every preemptible task on the device goes, not just the first batch one.
    assert!(
        all.counters.preemptions > native.counters.preemptions,
        "{} vs {}",
        all.counters.preemptions,
        native.counters.preemptions
    );
    assert_ne!(preemptions(&native_t), preemptions(&plugin_t));
}

#[test]
fn victims_that_cannot_be_preempted_are_a_typed_fault_and_the_native_victim_serves() {
    let hw = sampling_hardware();
    let dir = tempfile::tempdir().unwrap();
    let (native_t, plugin_t) = (dir.path().join("n.jsonl"), dir.path().join("p.jsonl"));
    sampling(Policy::native(&hw), &hw, &native_t);
    let set = PluginSet {
        preempt: Some(guest("fixture_preempt_pinned")),
        ..Default::default()
    };
    let report = sampling(plugins(set, &hw), &hw, &plugin_t);
    let faults = faults(&plugin_t);
    assert!(!faults.is_empty());
    assert_eq!(report.counters.policy_faults, faults.len() as u64);
    for (role, kind, reason) in &faults {
        assert_eq!(role, "preempt");
        assert_eq!(kind, "invalid_output");
        assert!(
            reason.contains("is waiting, not running")
                || reason.contains("is not preemptible")
                || reason.contains("not running on this device"),
            "{reason}"
        );
    }
    assert_eq!(preemptions(&native_t), preemptions(&plugin_t));
    // Each fault names the arriving task's decision and carries what the
    // guest printed; `explain` on that node shows it.
    let (job, node, output) = events(&plugin_t)
        .into_iter()
        .find_map(|e| match e {
            TraceEvent::PolicyFault {
                job: Some(job),
                node: Some(node),
                fault,
                ..
            } => Some((job, node, fault.output)),
            _ => None,
        })
        .expect("a preempt fault names its decision");
    assert!(
        output
            .lines
            .iter()
            .any(|l| l.text.starts_with("preempt-pinned: naming")),
        "{output:?}"
    );
    let out = run_in(
        dir.path(),
        &[
            "explain",
            plugin_t.to_str().unwrap(),
            "--job",
            &job.to_string(),
            "--node",
            &node,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("preempt policy fault (invalid_output)"),
        "{text}"
    );
    assert!(text.contains("the plugin printed:"), "{text}");
    assert!(text.contains("stderr | preempt-pinned: naming"), "{text}");
}

#[test]
fn committed_queue_guests_pass_conformance_and_hostile_ones_fail_it() {
    let hw = Hardware::default();
    for (name, role, world) in [
        ("queue_order_rust", "queue-order", "queue-order-plugin"),
        ("admit_rust", "admit", "admit-plugin"),
        ("preempt_rust", "preempt", "preempt-plugin"),
        ("fixture_batch_first", "queue-order", "queue-order-plugin"),
        ("fixture_reject_all", "admit", "admit-plugin"),
        ("fixture_hold_forever", "admit", "admit-plugin"),
        ("fixture_preempt_all", "preempt", "preempt-plugin"),
    ] {
        let report = conformance_under(plugin_runtime(), &guest(name), &hw).unwrap();
        assert_eq!(report.world, world, "{name}");
        assert!(report.cases.len() >= 3, "{name}: {report:#?}");
        assert!(report.cases.iter().all(|c| c.role == role));
        assert!(report.passed(), "{name}: {report:#?}");
        assert!(report.call_us.iter().any(|(r, _)| *r == role));
    }
    for (name, case) in [
        ("fixture_duplicate_order", "orders a queue of one"),
        (
            "fixture_preempt_pinned",
            "names no victim when nothing runs",
        ),
    ] {
        let report = conformance_under(plugin_runtime(), &guest(name), &hw).unwrap();
        assert!(!report.passed(), "{name}");
        let failed = report.cases.iter().find(|c| c.name == case).unwrap();
        assert!(!failed.passed, "{name}: {failed:?}");
        assert!(failed.detail.contains("invalid_output"), "{failed:?}");
    }
}

#[test]
fn a_component_for_the_wrong_queue_role_is_refused_at_load() {
    let hw = Hardware::default();
    let set = PluginSet {
        admit: Some(guest("fixture_batch_first")),
        ..Default::default()
    };
    let err = set.policy(&hw, None).unwrap_err().to_string();
    assert!(
        err.contains("does not export thermoroute:policy/admit@0.2.0"),
        "{err}"
    );
    assert!(err.contains("admit-plugin"), "{err}");
}

#[test]
fn policy_dir_and_role_flags_pick_up_the_queue_roles() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy");
    std::fs::create_dir(&policy).unwrap();
    std::fs::copy(guest("queue_order_rust"), policy.join("queue-order.wasm")).unwrap();
    std::fs::copy(guest("admit_rust"), policy.join("admit.wasm")).unwrap();
    std::fs::copy(guest("preempt_rust"), policy.join("preempt.wasm")).unwrap();
    // policy.wasm serves the roles it exports that no file of their own names.
    let all = dir.path().join("all");
    std::fs::create_dir(&all).unwrap();
    std::fs::copy(guest("preempt_rust"), all.join("policy.wasm")).unwrap();
    std::fs::copy(guest("cost_rust"), all.join("cost.wasm")).unwrap();
    let set = PluginSet::from_dir(&all).unwrap();
    assert_eq!(set.preempt, Some(all.join("policy.wasm")));
    assert_eq!(set.cost, Some(all.join("cost.wasm")));
    assert_eq!((set.queue_order, set.admit), (None, None));
    let set = PluginSet::from_dir(&policy).unwrap();
    assert_eq!(set.queue_order, Some(policy.join("queue-order.wasm")));
    assert_eq!(set.admit, Some(policy.join("admit.wasm")));
    assert_eq!(set.preempt, Some(policy.join("preempt.wasm")));
    let trace = dir.path().join("t.jsonl");
    let interactive = example("graphs/mm3-interactive.json");
    let batch = example("graphs/mm3-batch.json");
    let hw = example("hardware/mm3.toml");
    let base = [
        "run",
        interactive.as_str(),
        batch.as_str(),
        "--hardware",
        hw.as_str(),
        "--mode",
        "simulate",
        "--jobs",
        "300",
        "--rate",
        "2700",
        "--mix",
        "3,7",
        "--json",
        "--trace",
        trace.to_str().unwrap(),
    ];
    let mut args = base.to_vec();
    args.extend(["--policy", policy.to_str().unwrap()]);
    let report = json_of(&run_in(dir.path(), &args));
    let described = report["policy"].as_str().unwrap();
    for part in [
        "queue-order=plugin:queue-order (queue-order@",
        "admit=plugin:admit (admit@",
        "preempt=plugin:preempt (preempt@",
    ] {
        assert!(described.contains(part), "{described}");
    }
    assert_eq!(report["counters"]["policy_faults"], 0, "{report:#}");
    // A flag overrides the directory's file for its role.
    let mut args = base.to_vec();
    let reject = guest("fixture_reject_all");
    args.extend([
        "--policy",
        policy.to_str().unwrap(),
        "--admit",
        reject.to_str().unwrap(),
    ]);
    let report = json_of(&run_in(dir.path(), &args));
    assert!(
        report["policy"]
            .as_str()
            .unwrap()
            .contains("admit=plugin:fixture_reject_all"),
        "{report:#}"
    );
    assert_eq!(report["rejected"], 300, "{report:#}");
}

#[test]
fn plugin_check_runs_the_queue_role_cases() {
    let dir = tempfile::tempdir().unwrap();
    let component = guest("queue_order_rust");
    let out = run_in(
        dir.path(),
        &["plugin", "check", component.to_str().unwrap(), "--json"],
    );
    let report = json_of(&out);
    assert_eq!(report["world"], "queue-order-plugin", "{report:#}");
    assert!(
        report["cases"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["passed"] == true && c["role"] == "queue-order"),
        "{report:#}"
    );
    let hostile = guest("fixture_duplicate_order");
    let out = run_in(dir.path(), &["plugin", "check", hostile.to_str().unwrap()]);
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("appears twice"), "{text}");
}

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
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

fn build(dir: &Path) -> std::path::PathBuf {
    let out = run_in(&repo(), &["plugin", "build", dir.to_str().unwrap()]);
    let path =
        std::path::PathBuf::from(ok(&out, &format!("plugin build {}", dir.display())).trim());
    assert!(path.is_file(), "{}", path.display());
    path
}

fn check_passes(component: &Path, world: &str) {
    let out = run_in(
        &repo(),
        &["plugin", "check", component.to_str().unwrap(), "--json"],
    );
    let report = json_of(&out);
    assert_eq!(report["world"], world, "{report:#}");
    let cases = report["cases"].as_array().unwrap();
    assert!(cases.len() >= 3, "{report:#}");
    assert!(cases.iter().all(|c| c["passed"] == true), "{report:#}");
}

/// `plugin new` → `plugin build` → `plugin check` for every queue role in
/// Rust, Python and JavaScript; then the committed Python admission and
/// JavaScript preemption plugins serve a run.
#[test]
fn queue_role_templates_build_and_pass_conformance_in_every_language() {
    let _one = super::plugin_langs::BUILDS
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    for role in ["queue-order", "admit", "preempt"] {
        for lang in ["rust", "python", "js"] {
            let dir = tmp.path().join(format!("my-{role}-{lang}"));
            let out = run_in(
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
            );
            ok(&out, "plugin new");
            assert!(dir.join("wit/policy.wit").is_file());
            let component = build(&dir);
            check_passes(&component, &format!("{role}-plugin"));
        }
    }
    let refused = run_in(
        &repo(),
        &[
            "plugin",
            "new",
            "--lang",
            "c",
            "--role",
            "admit",
            tmp.path().join("c-admit").to_str().unwrap(),
        ],
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("no C template for the admit role"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let admit = build(&repo().join("plugins/admit-python"));
    let preempt = build(&repo().join("plugins/preempt-js"));
    check_passes(&admit, "admit-plugin");
    check_passes(&preempt, "preempt-plugin");
    let trace = tmp.path().join("t.jsonl");
    let fraud = example("graphs/fraud-triage.json");
    let batch = example("graphs/posterior-batch.json");
    let out = run_in(
        tmp.path(),
        &[
            "run",
            fraud.as_str(),
            batch.as_str(),
            "--mode",
            "simulate",
            "--jobs",
            "200",
            "--rate",
            "400",
            "--mix",
            "1,3",
            "--json",
            "--trace",
            trace.to_str().unwrap(),
            "--admit",
            admit.to_str().unwrap(),
            "--preempt",
            preempt.to_str().unwrap(),
        ],
    );
    let report = json_of(&out);
    let policy = report["policy"].as_str().unwrap();
    assert!(
        policy.contains("admit=plugin:admit-python (admit-python@"),
        "{policy}"
    );
    assert!(
        policy.contains("preempt=plugin:preempt-js (preempt-js@"),
        "{policy}"
    );
    assert_eq!(report["counters"]["policy_faults"], 0, "{report:#}");
    assert_eq!(report["in_flight"], 0, "{report:#}");
}

#[test]
fn holds_read_back_render_in_words_and_old_traces_without_them_still_read() {
    use super::tui::{header, key};
    use thermoroute::device::Target;
    use thermoroute::tui::App;
    let hold = TraceEvent::Hold {
        t_ms: 1.0,
        job: 3,
        node: "score".into(),
        target: Target::Cpu,
        plugin: "plugin:hold_forever".into(),
        reason: "cooling down".into(),
        max_hold_ms: 40,
    };
    let end = TraceEvent::HoldEnd {
        t_ms: 41.0,
        job: 3,
        node: "score".into(),
        target: Target::Cpu,
        held_ms: 40.0,
        outcome: HoldOutcome::HoldLimit,
        reason: "cooling down".into(),
    };
    for e in [&hold, &end] {
        let line = serde_json::to_string(e).unwrap();
        assert_eq!(&serde_json::from_str::<TraceEvent>(&line).unwrap(), e);
    }
    assert!(
        serde_json::to_string(&end)
            .unwrap()
            .contains(r#""event":"hold_end""#)
    );
    assert!(
        serde_json::to_string(&end)
            .unwrap()
            .contains(r#""outcome":"hold_limit""#)
    );
    // A trace written before holds were traced reads as before.
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old.jsonl");
    let header_line = serde_json::to_string(&header(Hardware::default())).unwrap();
    std::fs::write(
        &old,
        format!(
            "{header_line}\n{}\n",
            r#"{"event":"reject","t_ms":41.0,"job":3,"node":"score","retry_after_ms":40.0,"reason":"held by plugin:x for 40.000 ms on cpu, reaching the hold limit ([plugins] max_hold_ms = 40 ms): cooling down"}"#
        ),
    )
    .unwrap();
    assert_eq!(read_trace(&old).unwrap().events.len(), 2);
    // The events view says what happened in words.
    let mut app = App::replay("holds.jsonl", vec![header(Hardware::default()), hold, end]);
    app.advance_to(f64::INFINITY);
    app.handle_key(key('4'));
    let texts: Vec<&str> = app.model.log.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "held for cpu by plugin:hold_forever (at most 40 ms): cooling down",
            "hold on cpu ended after 40.0 ms: rejected at the hold limit",
        ]
    );
}
