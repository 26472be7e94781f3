//! `run --jobs-out` and `--json` at scale, and closed pipes.

use std::io::Read;
use std::process::{Command, Stdio};

use serde_json::Value;
use thermoroute_tests::{bin, example, json_of, run_in};

#[test]
fn jobs_out_writes_one_compact_line_per_job_and_json_only_the_summary() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = dir.path().join("jobs.jsonl");
    let out = run_in(
        dir.path(),
        &[
            "run",
            &example("graphs/fraud-triage.json"),
            &example("graphs/mm3-batch.json"),
            "--mode",
            "simulate",
            "--jobs",
            "3000",
            "--rate",
            "2000",
            "--seed",
            "3",
            "--jobs-out",
            jobs.to_str().unwrap(),
            "--json",
        ],
    );
    let summary = json_of(&out);
    assert!(
        summary.get("jobs").is_none(),
        "--json prints the summary only"
    );
    assert_eq!(summary["submitted"], 3000);
    let text = std::fs::read_to_string(&jobs).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    assert_eq!(lines.len(), 3000, "one line per job");
    assert!(
        text.lines().all(|l| !l.contains("\n") && !l.contains("  ")),
        "compact"
    );
    let mut ids: Vec<u64> = lines.iter().map(|l| l["job"].as_u64().unwrap()).collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..3000).collect::<Vec<_>>(), "every job once");
    let mut completed = 0;
    for l in &lines {
        for key in ["class", "status", "latency_ms", "energy_j", "nodes"] {
            assert!(l.get(key).is_some(), "{key} in {l}");
        }
        for n in l["nodes"].as_array().unwrap() {
            assert!(n["id"].is_string() && n["status"].is_string(), "{n}");
            assert!(
                n.get("candidates").is_none(),
                "candidates stay in the trace"
            );
            if n["status"] == "completed" {
                assert!(
                    n["backend"].is_string(),
                    "a completed node names its backend: {n}"
                );
            }
        }
        if l["status"] == "completed" {
            completed += 1;
        }
    }
    assert_eq!(
        summary["completed"], completed,
        "lines agree with the summary"
    );
    // The same run without per-job records gives the same summary.
    let plain = json_of(&run_in(
        dir.path(),
        &[
            "run",
            &example("graphs/fraud-triage.json"),
            &example("graphs/mm3-batch.json"),
            "--mode",
            "simulate",
            "--jobs",
            "3000",
            "--rate",
            "2000",
            "--seed",
            "3",
            "--json",
        ],
    ));
    for key in ["completed", "rejected", "latency_p95_ms", "mean_energy_j"] {
        assert_eq!(plain[key], summary[key], "{key}");
    }
    assert_eq!(plain["jobs"].as_array().unwrap().len(), 3000);
}

#[test]
fn a_one_job_run_with_jobs_out_keeps_its_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = dir.path().join("one.jsonl");
    let out = run_in(
        dir.path(),
        &[
            "run",
            &example("graphs/fraud-triage.json"),
            "--mode",
            "simulate",
            "--jobs-out",
            jobs.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&jobs).unwrap().lines().count(), 1);
}

#[test]
fn jobs_out_into_a_missing_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(
        dir.path(),
        &[
            "run",
            &example("graphs/fraud-triage.json"),
            "--mode",
            "simulate",
            "--jobs-out",
            "no/such/dir/jobs.jsonl",
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no/such/dir/jobs.jsonl") && err.contains("cannot create"),
        "{err}"
    );
}

/// Closes the command's stdout before it writes (so its first write meets a
/// closed pipe, whatever the pipe's buffer size) and expects it to end
/// quietly with status 0, as ripgrep does.
fn ends_quietly_on_a_closed_pipe(args: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(bin())
        .current_dir(dir.path())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{args:?}: {status:?}, stderr {stderr}");
    assert!(
        !stderr.contains("Broken pipe") && !stderr.contains("panicked"),
        "{stderr}"
    );
}

#[test]
fn a_closed_pipe_ends_commands_quietly_with_status_0() {
    let g = example("graphs/fraud-triage.json");
    // An error returned from a write (`print_json`).
    ends_quietly_on_a_closed_pipe(&["run", &g, "--mode", "simulate", "--jobs", "5000", "--json"]);
    // `println!`, which panics on a closed pipe.
    ends_quietly_on_a_closed_pipe(&["schema"]);
    ends_quietly_on_a_closed_pipe(&["run", &g, "--mode", "simulate", "--jobs", "50"]);
    ends_quietly_on_a_closed_pipe(&["review", "list", "--json"]);
}

#[test]
fn json_alone_streams_every_job_in_order_with_the_same_figures_as_jobs_out() {
    let dir = tempfile::tempdir().unwrap();
    // Enough events that the engine's records are drained mid-run.
    let common = [
        "run",
        &example("graphs/fraud-triage.json"),
        "--mode",
        "simulate",
        "--jobs",
        "12000",
        "--rate",
        "4000",
        "--seed",
        "5",
    ];
    let mut args = common.to_vec();
    args.push("--json");
    let doc = json_of(&run_in(dir.path(), &args));
    let jobs = doc["jobs"].as_array().expect("every job listed");
    assert_eq!(jobs.len(), 12000);
    assert_eq!(doc["submitted"], 12000);
    for (i, j) in jobs.iter().enumerate() {
        assert_eq!(j["job"], i as u64, "jobs in id order");
        // Full records: the candidates each node was chosen over.
        assert!(j["nodes"][0]["candidates"].is_array(), "{j}");
    }
    let lines = dir.path().join("jobs.jsonl");
    let mut args = common.to_vec();
    let path = lines.to_string_lossy().into_owned();
    args.extend(["--jobs-out", &path]);
    let out = run_in(dir.path(), &args);
    assert!(out.status.success());
    let mut brief: Vec<Value> = std::fs::read_to_string(&lines)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    brief.sort_by_key(|j| j["job"].as_u64().unwrap());
    for (full, short) in jobs.iter().zip(&brief) {
        for key in ["job", "status", "latency_ms", "energy_j"] {
            assert_eq!(full[key], short[key], "{key} of job {}", full["job"]);
        }
    }
}
