//! The output directory: `runs.json`, `results.json` and `results.csv`.

use std::collections::BTreeMap;
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
    write("results.csv", results_csv(rows))
}

/// The `results.csv` header: `variant`, each metric's mean and 95% half
/// width, and the metrics the variant is best on.
fn csv_header() -> Vec<String> {
    let mut header = vec!["variant".to_string()];
    for (m, _) in METRICS {
        header.push(m.to_string());
        header.push(format!("{m}_ci95"));
    }
    header.push("best".into());
    header
}

/// `rows` as RFC 4180 CSV (the `csv` crate quotes what needs quoting): a
/// header, then one record per variant; a metric a variant lacks is two
/// empty fields, `best` its best metrics separated by spaces.
pub fn results_csv(rows: &[VariantResult]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(csv_header()).expect("writes to memory");
    for r in rows {
        let mut record = vec![r.variant.clone()];
        for (m, _) in METRICS {
            match r.metrics.get(m) {
                Some(s) => {
                    record.push(s.mean.to_string());
                    record.push(s.ci95.to_string());
                }
                None => record.extend([String::new(), String::new()]),
            }
        }
        record.push(r.best.join(" "));
        w.write_record(&record).expect("writes to memory");
    }
    w.into_inner().expect("flushes to memory")
}

/// One record of `results.csv` read back.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvRow {
    pub variant: String,
    /// Metric name to (mean, 95% half width), for the metrics present.
    pub metrics: BTreeMap<String, (f64, f64)>,
    pub best: Vec<String>,
}

/// Reads a `results.csv` as [`results_csv`] wrote it.
pub fn read_results_csv(bytes: &[u8]) -> Result<Vec<CsvRow>, csv::Error> {
    let mut r = csv::Reader::from_reader(bytes);
    let header: Vec<String> = r.headers()?.iter().map(String::from).collect();
    let mut rows = Vec::new();
    for record in r.records() {
        let record = record?;
        let field = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .and_then(|i| record.get(i))
                .unwrap_or("")
        };
        let mut metrics = BTreeMap::new();
        for (m, _) in METRICS {
            let ci = format!("{m}_ci95");
            if let (Ok(mean), Ok(ci95)) = (field(m).parse(), field(&ci).parse()) {
                metrics.insert(m.to_string(), (mean, ci95));
            }
        }
        rows.push(CsvRow {
            variant: field("variant").to_string(),
            metrics,
            best: field("best").split_whitespace().map(String::from).collect(),
        });
    }
    Ok(rows)
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
