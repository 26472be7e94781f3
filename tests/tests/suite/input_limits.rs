//! Hostile inputs from issue 19: each ends in a clean, typed error or a
//! correct result, never a panic, a stack overflow or an allocation abort.
//! Every limit is `thermoroute::model::limits`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Output;

use thermoroute::model::limits::{
    MAX_DRAW_VALUES, MAX_ISSUES, MAX_JOBS, MAX_REPLICATIONS, MAX_RUNS, MAX_STREAMED_JOBS,
    MAX_THREADS,
};
use thermoroute_tests::{example, json_of, run_in};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A clean failure: exit status 1 (not a signal, not a panic's 101) and a
/// message that contains `needle`.
fn assert_clean_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "exit {:?}: {err}",
        o.status.code()
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(needle), "expected {needle:?} in: {err}");
}

/// A chain `n0 -> n1 -> ... -> n{len-1}` of tensor nodes with a latency
/// target each node's share of which is far too small to route.
fn chain_graph(len: usize) -> String {
    let mut s = String::from("{\"name\":\"chain\",\"nodes\":[");
    s += "{\"id\":\"n0\",\"kind\":\"tensor\",\"tensor\":{\"op\":\"const\",\"value\":{\"shape\":[1],\"data\":[1.0]}}}";
    for i in 1..len {
        write!(
            s,
            ",{{\"id\":\"n{i}\",\"kind\":\"tensor\",\"inputs\":[\"n{}\"],\"tensor\":{{\"op\":\"relu\"}}}}",
            i - 1
        )
        .unwrap();
    }
    s += "],\"qos\":{\"latency_ms\":{\"p50\":1,\"p95\":2},\"priority\":\"interactive\"}}";
    s
}

/// Issue 19: a 20,000-node chain with a latency target passed `validate`
/// and then overflowed the stack in `run` (close_node and drain_ready
/// called each other once per node).
#[test]
fn chain_of_20000_nodes_runs_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let graph = dir.path().join("chain.json");
    std::fs::write(&graph, chain_graph(20_000)).unwrap();
    let g = graph.to_str().unwrap();
    let o = run_in(dir.path(), &["validate", g]);
    assert!(o.status.success(), "{}", stderr(&o));
    for mode in ["simulate", "execute"] {
        let o = run_in(
            dir.path(),
            &["run", g, "--mode", mode, "--jobs", "2", "--json"],
        );
        let report = json_of(&o);
        let jobs = report["jobs"].as_array().expect("jobs recorded");
        assert_eq!(jobs.len(), 2, "{mode}");
        for job in jobs {
            let status = job["status"].as_str().unwrap();
            assert!(
                ["completed", "infeasible", "rejected", "failed"].contains(&status),
                "{mode}: {status}"
            );
            assert_eq!(job["nodes"].as_array().unwrap().len(), 20_000, "{mode}");
        }
    }
}

/// A graph whose inputs form a long cycle: the cycle search is iterative.
#[test]
fn long_cycle_is_reported_without_recursion() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = chain_graph(50_000);
    // Close the chain: n0 reads the last node (and stops being a const).
    text = text.replacen(
        "{\"id\":\"n0\",\"kind\":\"tensor\",\"tensor\":{\"op\":\"const\",\"value\":{\"shape\":[1],\"data\":[1.0]}}}",
        "{\"id\":\"n0\",\"kind\":\"tensor\",\"inputs\":[\"n49999\"],\"tensor\":{\"op\":\"relu\"}}",
        1,
    );
    let graph = dir.path().join("cycle.json");
    std::fs::write(&graph, text).unwrap();
    let o = run_in(dir.path(), &["validate", graph.to_str().unwrap()]);
    assert_clean_error(&o, "the inputs form a cycle: n1 -> n2 -> n3");
    // Named by its first nodes and its length, not 50,000 names.
    assert_clean_error(&o, "-> n20 -> … (50000 nodes in the cycle)");
    assert!(stderr(&o).len() < 1000, "{}", stderr(&o));
}

/// Issue 19: 3,000,000 duplicate edges printed 3 M error lines and peaked
/// at 3.6 GB. The first MAX_ISSUES are listed, then one line counts the rest.
#[test]
fn issue_lists_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let edges = 3_000_000usize;
    let mut s = String::with_capacity(edges * 12);
    s += "{\"ising\":{\"n\":2,\"biases\":[0,0],\"edges\":[";
    for i in 0..edges {
        s += if i == 0 { "[0,1]" } else { ",[0,1]" };
    }
    s += "],\"weights\":[";
    for i in 0..edges {
        s += if i == 0 { "0.5" } else { ",0.5" };
    }
    s += "]},\"schedule\":{\"warmup\":10,\"samples\":10,\"steps_per_sample\":1,\"chains\":2}}";
    let program = dir.path().join("dup.json");
    std::fs::write(&program, s).unwrap();
    let o = run_in(dir.path(), &["validate", program.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(
        lines.len(),
        MAX_ISSUES + 1,
        "{}",
        &err[..err.len().min(2000)]
    );
    assert!(lines[0].contains("duplicate"), "{}", lines[0]);
    let last = lines.last().unwrap();
    assert!(
        last.contains(&format!("… and {} more problem(s)", edges - 1 - MAX_ISSUES)),
        "{last}"
    );
}

/// Issue 19: a program whose draws need 4 GB was called valid, then
/// aborted `sample`. The draws limit names itself and the value.
#[test]
fn draws_past_the_limit_are_rejected_by_validate_and_sample() {
    let dir = tempfile::tempdir().unwrap();
    // 2^16 spins x 64 chains x 1024 samples = 2^32 draw values (4 GiB).
    let n = 1usize << 16;
    let biases = vec!["0"; n].join(",");
    let text = format!(
        "{{\"ising\":{{\"n\":{n},\"biases\":[{biases}],\"edges\":[],\"weights\":[]}},\"schedule\":{{\"warmup\":0,\"samples\":1024,\"steps_per_sample\":1,\"chains\":64}}}}"
    );
    let program = dir.path().join("big.json");
    std::fs::write(&program, text).unwrap();
    let p = program.to_str().unwrap();
    let needle = format!("= 4294967296 draw values, more than the limit of {MAX_DRAW_VALUES}");
    assert_clean_error(&run_in(dir.path(), &["validate", p]), &needle);
    assert_clean_error(&run_in(dir.path(), &["sample", p, "--json"]), &needle);
}

/// Issue 19: `run --mode simulate --jobs 100000000 --json` aborted on
/// allocation.
#[test]
fn jobs_past_the_limit_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let jobs = (MAX_JOBS * 100).to_string();
    let graph = example("graphs/mm3-interactive.json");
    let o = run_in(
        dir.path(),
        &[
            "run", &graph, "--mode", "simulate", "--jobs", &jobs, "--json",
        ],
    );
    assert_clean_error(
        &o,
        &format!("{jobs} jobs is more than the limit of {MAX_JOBS} for this run"),
    );
    // Streamed (Poisson, no --json) the bound is higher, and still checked.
    let streamed = (MAX_STREAMED_JOBS + 1).to_string();
    let o = run_in(
        dir.path(),
        &[
            "run", &graph, "--mode", "simulate", "--jobs", &streamed, "--rate", "1000",
        ],
    );
    assert_clean_error(
        &o,
        &format!("{streamed} jobs is more than the limit of {MAX_STREAMED_JOBS} for this run"),
    );
}

/// Issue 19: `--threads 100000` took 39 s to fail.
#[test]
fn threads_past_the_limit_fail_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let program = example("programs/chain.json");
    for threads in ["100000", "0"] {
        let o = run_in(
            dir.path(),
            &["sample", &program, "--threads", threads, "--json"],
        );
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("give 1 to {MAX_THREADS}")),
            "{}",
            stderr(&o)
        );
    }
    let o = run_in(
        dir.path(),
        &[
            "run",
            &example("graphs/mm3-interactive.json"),
            "--threads",
            "100000",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

fn experiment(dir: &Path, body: &str) -> Output {
    let graph = example("graphs/mm3-interactive.json");
    let file = dir.join("exp.toml");
    std::fs::write(
        &file,
        format!("name = \"limits\"\ngraphs = [{graph:?}]\n{body}"),
    )
    .unwrap();
    let out = dir.join("out");
    run_in(
        dir,
        &[
            "whatif",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    )
}

/// Issue 19: `replications = 4294967296` aborted on a 3.7 GB allocation;
/// huge `load.jobs` ran with no bound.
#[test]
fn experiment_counts_past_their_limits_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let o = experiment(
        dir.path(),
        "replications = 4294967296\n[[load]]\njobs = 10\n",
    );
    assert_clean_error(
        &o,
        &format!("replications = 4294967296 is more than the limit of {MAX_REPLICATIONS}"),
    );
    let o = experiment(dir.path(), "[[load]]\njobs = 1000000000\n");
    assert_clean_error(
        &o,
        &format!("load[0].jobs = 1000000000 is more than the limit of {MAX_JOBS}"),
    );
    // Each count within its limit, their product past MAX_RUNS.
    let mut body = format!("replications = {MAX_REPLICATIONS}\n");
    for k in 0..20 {
        write!(body, "[[load]]\njobs = {}\n", k + 1).unwrap();
    }
    let o = experiment(dir.path(), &body);
    assert_clean_error(
        &o,
        &format!(
            "runs (loads x variants x replications) = {} is more than the limit of {MAX_RUNS}",
            20 * MAX_REPLICATIONS
        ),
    );
}
