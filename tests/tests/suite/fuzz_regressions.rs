//! Every committed fuzz input, replayed through the library code its fuzz
//! target drives (`fuzz/fuzz_targets/*.rs`): the seed corpus
//! (`fuzz/corpus/<target>/seed-*`) and every input that once crashed a
//! target (`tests/fuzz-regressions/<target>/`). Each must end in a value or
//! a typed error, never a panic. `scripts/fuzz.sh` runs the targets.

use std::path::{Path, PathBuf};

use thermoroute::hardware::Hardware;
use thermoroute::model::{EProgram, Graph};
use thermoroute::trace::{TraceTail, read_trace};
use thermoroute::whatif::file::{
    Experiment, check_counts, graph_with_qos, hardware_text, with_default,
};

fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The committed inputs of one target: its seeds and its regressions.
fn inputs(target: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let seeds = root().join("fuzz/corpus").join(target);
    let regressions = root().join("tests/fuzz-regressions").join(target);
    for (dir, seeds_only) in [(seeds, true), (regressions, false)] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_file() && (!seeds_only || name.starts_with("seed-")) {
                files.push(path);
            }
        }
    }
    files.sort();
    assert!(!files.is_empty(), "no committed inputs for {target}");
    files
}

fn each(target: &str, check: impl Fn(&Path, &[u8])) {
    for file in inputs(target) {
        let data = std::fs::read(&file).unwrap();
        check(&file, &data);
    }
}

#[test]
fn eprogram_inputs() {
    each("eprogram", |file, data| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if let Ok(p) = EProgram::from_json(file, text) {
            let _ = p.canonical_hash();
            let _ = p.clamped_states();
        }
    });
}

#[test]
fn graph_inputs() {
    each("graph", |file, data| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if let Ok(g) = Graph::from_json(file, text) {
            assert_eq!(
                g.topological_order().len(),
                g.nodes.len(),
                "{}",
                file.display()
            );
        }
    });
}

#[test]
fn hardware_inputs() {
    each("hardware", |file, data| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        if let Ok(hw) = Hardware::from_toml(file, text) {
            let _ = hw.availability_edges();
        }
    });
}

#[test]
fn trace_inputs() {
    let dir = tempfile::tempdir().unwrap();
    each("trace", |_, data| {
        let path = dir.path().join("trace.jsonl");
        std::fs::write(&path, data).unwrap();
        if let Ok(mut tail) = TraceTail::open(&path) {
            let _ = tail.poll();
            tail.finish();
        }
        let _ = read_trace(&path);
    });
}

#[test]
fn experiment_inputs() {
    let base: toml::Table = toml::from_str(
        &std::fs::read_to_string(root().join("examples/hardware/mm3.toml")).unwrap(),
    )
    .unwrap();
    let graph: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("examples/graphs/mm3-batch.json")).unwrap(),
    )
    .unwrap();
    each("experiment", |_, data| {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let Ok(e) = toml::from_str::<Experiment>(text) else {
            return;
        };
        if check_counts(&e).is_err() {
            return;
        }
        for h in &with_default(&e.hardware_variant, "hw") {
            for p in &with_default(&e.policy_variant, "native") {
                if let Ok(text) = hardware_text(&base, &[h, p]) {
                    let _ = Hardware::from_toml(Path::new("variant.toml"), &text);
                }
            }
        }
        for q in &with_default(&e.qos_variant, "qos") {
            let g = graph_with_qos(&graph, q);
            let _ = Graph::from_json(Path::new("variant.json"), &g.to_string());
        }
    });
}
