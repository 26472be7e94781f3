//! Perfetto export: well-formed events, no overlapping slices on a track.

use std::collections::HashMap;
use std::process::Command;
use thermoroute_tests::{arrivals_at, bin, example};

use serde_json::Value;

fn check(doc: &Value) -> usize {
    let events = doc["traceEvents"].as_array().unwrap();
    let mut tracks: HashMap<(u64, u64), Vec<(f64, f64)>> = HashMap::new();
    for e in events {
        let ph = e["ph"].as_str().expect("every event has a phase");
        assert!(e["pid"].is_u64() && e["tid"].is_u64(), "{e}");
        assert!(e["name"].is_string(), "{e}");
        if ph != "M" {
            assert!(e["ts"].as_f64().unwrap() >= 0.0, "{e}");
        }
        if ph == "X" {
            let (ts, dur) = (e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap());
            assert!(dur >= 0.0);
            tracks
                .entry((e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap()))
                .or_default()
                .push((ts, ts + dur));
        }
    }
    let mut slices = 0;
    for (track, mut spans) in tracks {
        spans.sort_by(|a, b| a.0.total_cmp(&b.0));
        for w in spans.windows(2) {
            assert!(w[0].1 <= w[1].0 + 1e-6, "overlap on track {track:?}: {w:?}");
        }
        slices += spans.len();
    }
    slices
}

#[test]
fn perfetto_export_is_well_formed_and_never_overlaps() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let out = dir.path().join("p.json");
    let status = Command::new(bin())
        .current_dir(dir.path())
        .args([
            "run",
            &example("graphs/mm3-interactive.json"),
            &example("graphs/mm3-batch.json"),
            "--hardware",
            &example("hardware/mm3.toml"),
            "--mode",
            "simulate",
            "--jobs",
            "3000",
            "--rate",
            "2900",
            "--trace",
            trace.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(status.status.success());
    let o = Command::new(bin())
        .args([
            "export",
            "--perfetto",
            trace.to_str().unwrap(),
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let slices = check(&doc);
    assert_eq!(slices, 3000, "one slice per job's node");
    let events = doc["traceEvents"].as_array().unwrap();
    let lanes = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name" && e["pid"] == 1)
        .count();
    assert_eq!(lanes, 3, "three CPU cores: three lanes");
    assert!(
        events
            .iter()
            .any(|e| e["ph"] == "C" && e["name"] == "cpu queue")
    );
    let route = events
        .iter()
        .find(|e| e["ph"] == "i" && e["tid"] == 1)
        .unwrap();
    assert!(route["args"]["candidates"].as_array().unwrap().len() == 2);
}

#[test]
fn preempted_work_splits_into_non_overlapping_slices() {
    let hw = thermoroute::hardware::Hardware::from_toml(
        std::path::Path::new("hw.toml"),
        "[gpu]\ncount = 0\n[cpu]\ncores = 1\n[simulate]\nservice = \"deterministic\"\n[tsu]\nshared_fraction = 0.01\nservice = \"throughput\"\n[policy]\nsampling_order = []\n",
    )
    .unwrap();
    let g = |name: &str, priority: &str| {
        thermoroute::model::Graph::from_json(
            std::path::Path::new("g.json"),
            &serde_json::json!({
                "name": name,
                "nodes": [{ "id": "s", "kind": "sample", "sample": { "program": {
                    "ising": { "n": 64, "biases": vec![0.1; 64], "edges": (0..63).map(|i| [i, i + 1]).collect::<Vec<_>>(), "weights": vec![0.3; 63] },
                    "schedule": { "warmup": 20, "samples": 40000, "steps_per_sample": 1, "chains": 4 } } } }],
                "qos": { "priority": priority }
            })
            .to_string(),
        )
        .unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let classes = vec![
        thermoroute::engine::JobClass {
            name: "batch".into(),
            graph: g("batch", "batch"),
        },
        thermoroute::engine::JobClass {
            name: "interactive".into(),
            graph: g("interactive", "interactive"),
        },
    ];
    let mut engine = thermoroute::engine::Engine::new(
        classes,
        hw.clone(),
        thermoroute::policy::Policy::native(&hw),
        thermoroute::perf::PerfTables::default(),
        thermoroute::engine::EngineConfig {
            mode: thermoroute::engine::Mode::Simulate,
            arrivals: arrivals_at(&[(0.0, 0), (0.5, 1)]),
            trace: Some(trace.clone()),
            ..Default::default()
        },
    )
    .unwrap();
    engine.run().unwrap();
    assert_eq!(engine.counters().preemptions, 1);
    drop(engine);
    let events = thermoroute::trace::read_trace(&trace).unwrap().events;
    let doc = thermoroute::export::perfetto(&events);
    assert_eq!(
        check(&doc),
        3,
        "the batch job in two pieces, the interactive one whole"
    );
}
