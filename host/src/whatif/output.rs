//! The output directory: `runs.json`, `results.json` and `results.csv`.

use std::path::{Path, PathBuf};

use super::{METRICS, RunResult, VariantResult, WhatifError, file_error};

/// Writes `runs.json`, `results.json` and `results.csv` into `dir`.
pub fn write_outputs(
    dir: &Path,
    runs: &[RunResult],
    rows: &[VariantResult],
) -> Result<(), WhatifError> {
    std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e.to_string()))?;
    let write = |name: &str, bytes: Vec<u8>| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).map_err(|e| file_error(&p, e.to_string()))
    };
    write(
        "runs.json",
        serde_json::to_vec_pretty(runs).expect("serialises"),
    )?;
    write(
        "results.json",
        serde_json::to_vec_pretty(rows).expect("serialises"),
    )?;
    let mut csv = String::from("variant");
    for (m, _) in METRICS {
        csv.push_str(&format!(",{m},{m}_ci95"));
    }
    csv.push_str(",best\n");
    for r in rows {
        csv.push_str(&format!("\"{}\"", r.variant.replace('"', "'")));
        for (m, _) in METRICS {
            match r.metrics.get(m) {
                Some(s) => csv.push_str(&format!(",{},{}", s.mean, s.ci95)),
                None => csv.push_str(",,"),
            }
        }
        csv.push_str(&format!(",\"{}\"\n", r.best.join(" ")));
    }
    write("results.csv", csv.into_bytes())
}

/// Reads the `runs.json` of shard output directories.
pub fn read_runs(dirs: &[PathBuf]) -> Result<Vec<RunResult>, WhatifError> {
    let mut all = Vec::new();
    for d in dirs {
        let p = d.join("runs.json");
        let text = std::fs::read_to_string(&p).map_err(|e| file_error(&p, e.to_string()))?;
        let runs: Vec<RunResult> =
            serde_json::from_str(&text).map_err(|e| file_error(&p, e.to_string()))?;
        all.extend(runs);
    }
    all.sort_by_key(|r| r.spec.index);
    all.dedup_by_key(|r| r.spec.index);
    Ok(all)
}
