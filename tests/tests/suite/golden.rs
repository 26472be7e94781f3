//! Golden outputs: what runs and samples produce must not change unless a
//! change means it to.
//!
//! For every example graph, the trace (header aside) and the `--json`
//! report (wall-clock fields removed) of a 2,000-job simulate-mode run; for
//! every example program on every backend, the draws hash (or the exit code
//! when the backend refuses it); and the job statuses of a short execute-mode
//! run of a batch graph (execute mode advances by measured time, so only
//! statuses repeat).
//!
//! A change that alters behaviour on purpose regenerates the goldens in the
//! same commit and says why:
//!
//! ```sh
//! THERMOROUTE_BLESS=1 cargo test -p thermoroute-tests --test suite golden
//! ```
//!
//! `THERMOROUTE_GOLDEN_BIN=PATH` runs another build of the binary (e.g. the
//! commit before a refactor) to bless or compare against; `THERMOROUTE_BIN`
//! does the same for every CLI test.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use thermoroute_tests::{bin, examples};

const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/golden/outputs.json");

/// Jobs and arrival rate of the simulate-mode runs.
const JOBS: &str = "2000";
const RATE: &str = "200";

fn binary() -> PathBuf {
    std::env::var_os("THERMOROUTE_GOLDEN_BIN").map_or_else(bin, PathBuf::from)
}

fn files(dir: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(examples().join(dir))
        .expect("examples exist")
        .map(|e| e.expect("readable").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    out.sort();
    out
}

fn stem(p: &Path) -> String {
    p.file_stem().expect("a file name").to_string_lossy().into()
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Removes every field that depends on the wall clock.
fn strip_wall_clock(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            map.retain(|k, _| k != "wall_s" && k != "seconds");
            map.values_mut().for_each(strip_wall_clock);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_wall_clock),
        _ => {}
    }
}

fn run(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(binary())
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the binary runs")
}

fn json(out: &std::process::Output, what: &str) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{what}: exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("one JSON document")
}

/// Every golden value, computed now.
fn outputs(dir: &Path) -> BTreeMap<String, serde_json::Value> {
    let mut got = BTreeMap::new();
    for graph in files("graphs") {
        let name = stem(&graph);
        let trace = dir.join(format!("{name}.jsonl"));
        let g = graph.to_string_lossy();
        let t = trace.to_string_lossy();
        let args = [
            "run", &g, "--mode", "simulate", "--seed", "1", "--jobs", JOBS, "--rate", RATE,
            "--trace", &t, "--json",
        ];
        let mut report = json(&run(&args, dir), &name);
        strip_wall_clock(&mut report);
        let text = std::fs::read_to_string(&trace).expect("the trace was written");
        let body = text.split_once('\n').map_or("", |(_header, rest)| rest);
        got.insert(
            format!("simulate/{name}/trace"),
            sha256(body.as_bytes()).into(),
        );
        got.insert(
            format!("simulate/{name}/report"),
            sha256(report.to_string().as_bytes()).into(),
        );
    }
    for program in files("programs") {
        let name = stem(&program);
        for backend in ["cpu", "gpu", "tsu"] {
            let p = program.to_string_lossy();
            let args = ["sample", &p, "--backend", backend, "--seed", "1", "--json"];
            let out = run(&args, dir);
            let value = if out.status.success() {
                let doc: serde_json::Value =
                    serde_json::from_slice(&out.stdout).expect("one JSON document");
                doc["provenance"]["draws_hash"].clone()
            } else {
                format!("exit {:?}", out.status.code()).into()
            };
            got.insert(format!("sample/{name}/{backend}"), value);
        }
    }
    // Batch QoS (p50 50 ms): a loaded machine does not turn late into
    // infeasible, as it can for fraud-triage's 20 ms interactive target.
    let graph = examples().join("graphs/posterior-batch.json");
    let g = graph.to_string_lossy();
    let args = [
        "run", &g, "--mode", "execute", "--seed", "1", "--jobs", "2", "--json",
    ];
    let report = json(&run(&args, dir), "execute");
    let statuses: Vec<serde_json::Value> = report["jobs"]
        .as_array()
        .expect("jobs listed")
        .iter()
        .map(|j| j["status"].clone())
        .collect();
    got.insert("execute/posterior-batch/statuses".into(), statuses.into());
    got
}

#[test]
fn runs_and_samples_match_their_golden_outputs() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let got = outputs(dir.path());
    if std::env::var_os("THERMOROUTE_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&got).expect("serialisable");
        std::fs::create_dir_all(Path::new(GOLDEN).parent().expect("a parent")).expect("mkdir");
        std::fs::write(GOLDEN, text + "\n").expect("golden file written");
        return;
    }
    let want: BTreeMap<String, serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(GOLDEN).expect("the golden file exists (bless it)"),
    )
    .expect("golden file is JSON");
    let keys: Vec<&String> = want.keys().chain(got.keys()).collect();
    let differ: Vec<String> = keys
        .into_iter()
        .filter(|k| want.get(*k) != got.get(*k))
        .map(|k| format!("{k}: want {:?}, got {:?}", want.get(k), got.get(k)))
        .collect();
    assert!(
        differ.is_empty(),
        "outputs changed ({} of {}):\n{}\nIf the change is meant, bless them (see this module's docs) and say why in the commit.",
        differ.len(),
        want.len(),
        differ.join("\n")
    );
}
