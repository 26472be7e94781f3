//! Bounded traces (`--trace-max`): rotation at the size, a header on every
//! part, readers that go through the parts in order and say what was
//! dropped, and a run killed mid-write.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use thermoroute::engine::{Arrivals, Engine, EngineConfig, Mode};
use thermoroute::hardware::Hardware;
use thermoroute::policy::Policy;
use thermoroute::trace::{
    TRACE_PARTS_KEPT, TraceEvent, TraceTail, read_trace, trace_part_path, trace_parts,
};
use thermoroute_tests::{bin, example, run_in};

/// A simulated fraud-triage run of `jobs` jobs traced to `trace`.
fn traced_run(trace: &Path, jobs: u64, max: Option<u64>) {
    let graph =
        thermoroute::model::Graph::load(Path::new(&example("graphs/fraud-triage.json"))).unwrap();
    let hw = Hardware::default();
    let mut engine = Engine::new(
        vec![thermoroute::engine::JobClass {
            name: "fraud-triage".into(),
            graph,
        }],
        hw.clone(),
        Policy::native(&hw),
        Default::default(),
        EngineConfig {
            mode: Mode::Simulate,
            seed: 3,
            arrivals: Arrivals::Poisson {
                jobs,
                rate_per_s: 100.0,
            },
            trace: Some(trace.to_path_buf()),
            trace_max: max,
            record_jobs: false,
            ..Default::default()
        },
    )
    .unwrap();
    engine.run().unwrap();
}

fn header_part(line: &str) -> u32 {
    match serde_json::from_str::<TraceEvent>(line).unwrap() {
        TraceEvent::Header { part, .. } => part,
        other => panic!("not a header: {other:?}"),
    }
}

#[test]
fn a_bounded_trace_rotates_at_its_size_and_reads_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.jsonl");
    traced_run(&whole, 300, None);
    let all = read_trace(&whole).unwrap();
    assert_eq!(all.parts.len(), 1);
    assert!(!all.older_dropped);
    let total = std::fs::metadata(&whole).unwrap().len();

    // Room for everything: four parts or fewer, nothing dropped, the same
    // events as the unbounded trace.
    let roomy = dir.path().join("roomy.jsonl");
    let max = total + total / 4;
    traced_run(&roomy, 300, Some(max));
    let parts = trace_parts(&roomy);
    assert!(
        parts.len() > 1 && parts.len() <= TRACE_PARTS_KEPT as usize,
        "{parts:?}"
    );
    for (k, path) in &parts {
        assert_eq!(*path, trace_part_path(&roomy, *k));
        let text = std::fs::read_to_string(path).unwrap();
        assert!(
            text.len() as u64 <= max / 4,
            "{path:?}: {} bytes",
            text.len()
        );
        assert_eq!(header_part(text.lines().next().unwrap()), *k);
    }
    assert_eq!(parts[1].1, dir.path().join("roomy.1.jsonl"));
    let read = read_trace(&roomy).unwrap();
    assert!(!read.older_dropped && !read.torn_tail);
    assert_eq!(read.events, all.events);

    // A tight bound: at most four parts on disk, at most `max` bytes in
    // all, the oldest parts gone and said so, the rest the run's last events.
    let tight = dir.path().join("tight.jsonl");
    let max = total / 5;
    traced_run(&tight, 300, Some(max));
    let parts = trace_parts(&tight);
    assert_eq!(parts.len(), TRACE_PARTS_KEPT as usize, "{parts:?}");
    assert!(parts[0].0 > 0 && !tight.exists());
    let on_disk: u64 = parts
        .iter()
        .map(|(_, p)| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(on_disk <= max, "{on_disk} > {max}");
    let read = read_trace(&tight).unwrap();
    assert!(read.older_dropped);
    assert!(matches!(read.events[0], TraceEvent::Header { part, .. } if part == parts[0].0));
    let kept = &read.events[1..];
    assert_eq!(kept, &all.events[all.events.len() - kept.len()..]);
    // The incremental reader goes through the same parts and says so.
    let mut tail = TraceTail::open(&tight).unwrap();
    let polled = tail.poll().unwrap();
    tail.finish();
    assert_eq!(polled, read.events);
    assert_eq!(tail.part(), parts.last().unwrap().0);
    let note = tail.dropped.clone().unwrap();
    assert!(note.contains("older events were dropped"), "{note}");

    // A new trace at the same path clears the old parts.
    traced_run(&tight, 5, Some(max));
    assert_eq!(trace_parts(&tight).len(), 1);
    assert!(!read_trace(&tight).unwrap().older_dropped);
}

#[test]
fn a_torn_last_part_reads_up_to_its_last_whole_line() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    traced_run(&trace, 200, Some(200_000));
    let parts = trace_parts(&trace);
    assert!(parts.len() >= 2);
    let whole = read_trace(&trace).unwrap();
    let last = &parts.last().unwrap().1;
    let text = std::fs::read_to_string(last).unwrap();
    let cut = text.trim_end().rfind('\n').unwrap() + 20;
    std::fs::write(last, &text[..cut]).unwrap();
    let torn = read_trace(&trace).unwrap();
    assert!(torn.torn_tail);
    assert_eq!(torn.events[..], whole.events[..whole.events.len() - 1]);
    let mut tail = TraceTail::open(&trace).unwrap();
    assert_eq!(tail.poll().unwrap(), torn.events);
    tail.finish();
    assert!(tail.stopped.unwrap().contains("incomplete"));
}

#[test]
fn a_killed_bounded_run_leaves_a_readable_trace() {
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
            "--trace-max",
            "256KiB",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    // Until the first part was deleted.
    while trace.exists() || trace_parts(&trace).is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the trace never rotated past its first part"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let t = read_trace(&trace).unwrap();
    assert!(t.older_dropped);
    assert!(t.parts.len() <= TRACE_PARTS_KEPT as usize);
    assert!(matches!(t.events[0], TraceEvent::Header { .. }));
    let times: Vec<f64> = t
        .events
        .iter()
        .filter_map(thermoroute::tui::model::event_time)
        .collect();
    assert!(times.len() > 100);
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "events in order");
    let on_disk: u64 = t
        .parts
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(on_disk <= 256 * 1024, "{on_disk}");
}

#[test]
fn trace_max_takes_sizes_with_units_and_refuses_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let t = trace.to_str().unwrap();
    let graph = example("graphs/fraud-triage.json");
    let base = ["run", &graph, "--mode", "simulate", "--jobs", "400"];
    for size in ["10MB", "1MiB", "1048576", "2 MiB"] {
        let out = run_in(
            dir.path(),
            &[&base[..], &["--trace", t, "--trace-max", size]].concat(),
        );
        assert!(
            out.status.success(),
            "{size}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!read_trace(&trace).unwrap().events.is_empty());
    }
    // explain reads every part: a job of the last part is explained.
    let out = run_in(
        dir.path(),
        &[&base[..], &["--trace", t, "--trace-max", "64KiB"]].concat(),
    );
    assert!(out.status.success());
    let read = read_trace(&trace).unwrap();
    assert!(read.parts.len() > 1);
    let job = read
        .events
        .iter()
        .rev()
        .find_map(|e| match e {
            TraceEvent::Route { job, node, .. } => Some((job.to_string(), node.clone())),
            _ => None,
        })
        .unwrap();
    let out = run_in(
        dir.path(),
        &["explain", t, "--job", &job.0, "--node", &job.1],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (size, says) in [
        ("10XB", "not a size"),
        ("lots", "not a size"),
        ("100", "at least 65536"),
    ] {
        let out = run_in(
            dir.path(),
            &[&base[..], &["--trace", t, "--trace-max", size]].concat(),
        );
        assert!(!out.status.success(), "{size}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{size}: {err}");
    }
    let out = run_in(dir.path(), &[&base[..], &["--trace-max", "1MiB"]].concat());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--trace"));
}
