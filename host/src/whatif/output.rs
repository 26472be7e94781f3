//! The output directory: tidy `runs.csv` (one row per variant and
//! replication) and `results.csv` (one row per variant), their JSON
//! equivalents `runs.json` and `results.json`, and `experiment.json` (what
//! `whatif merge` needs besides the runs: the baseline, the shard).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{METRICS, RunResult, VariantResult, WhatifError, file_error};

/// `experiment.json`: which experiment and shard an output directory holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputMeta {
    pub experiment: String,
    /// The baseline the ratios (`vs_baseline`) are to, as the experiment or
    /// `--baseline` named it.
    pub baseline: Option<String>,
    /// `[i, n]`: shard `i` of `n` (`[0, 1]` unsharded).
    pub shard: (usize, usize),
    /// Runs in the whole cross product (every shard together).
    pub runs_total: usize,
    pub mode: String,
}

/// Writes `experiment.json` into `dir`.
pub fn write_meta(dir: &Path, meta: &OutputMeta) -> Result<(), WhatifError> {
    std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e.to_string()))?;
    let p = dir.join("experiment.json");
    std::fs::write(&p, serde_json::to_vec_pretty(meta).expect("serialises"))
        .map_err(|e| file_error(&p, e.to_string()))
}

/// Reads the `experiment.json` of shard directories and checks they are
/// shards of one experiment that together hold `runs` completely.
pub fn read_meta(dirs: &[PathBuf], runs: &[RunResult]) -> Result<OutputMeta, WhatifError> {
    let mut first: Option<(PathBuf, OutputMeta)> = None;
    for d in dirs {
        let p = d.join("experiment.json");
        let text = std::fs::read_to_string(&p).map_err(|e| file_error(&p, e.to_string()))?;
        let meta: OutputMeta =
            serde_json::from_str(&text).map_err(|e| file_error(&p, e.to_string()))?;
        match &first {
            None => first = Some((p, meta)),
            Some((p0, m0)) => {
                if (&m0.experiment, &m0.baseline, m0.runs_total, m0.shard.1)
                    != (
                        &meta.experiment,
                        &meta.baseline,
                        meta.runs_total,
                        meta.shard.1,
                    )
                {
                    return Err(file_error(
                        &p,
                        format!(
                            "not a shard of the same run as {} (experiment, baseline, shard count)",
                            p0.display()
                        ),
                    ));
                }
            }
        }
    }
    let Some((p, meta)) = first else {
        return Err(file_error(
            Path::new("whatif merge"),
            "give shard directories",
        ));
    };
    if runs.len() != meta.runs_total {
        return Err(file_error(
            &p,
            format!(
                "the shards hold {} of the experiment's {} runs: a shard is missing",
                runs.len(),
                meta.runs_total
            ),
        ));
    }
    Ok(meta)
}

/// Writes `runs.json`, `runs.csv`, `results.json` and `results.csv` into `dir`.
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
    write("runs.csv", runs_csv(runs))?;
    write("results.csv", results_csv(rows))
}

/// The factor columns every CSV starts with.
const FACTORS: [&str; 5] = ["load", "load_rate", "hardware", "policy", "qos"];

/// A number as CSV writes it: always with a decimal point or an exponent
/// (`1000.0`, `6.04e-5`), so readers type the column as floating point
/// whatever its values; empty when absent.
fn num(x: Option<f64>) -> String {
    x.map(|v| format!("{v:?}")).unwrap_or_default()
}

/// `runs` as tidy CSV: one record per (variant, replication), a column per
/// factor (`load`, `load_rate` in jobs/s, `hardware`, `policy`, `qos`,
/// `replication`), then one numeric column per metric (empty when a run
/// lacks it).
pub fn runs_csv(runs: &[RunResult]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["run", "variant"];
    header.extend(FACTORS);
    header.push("replication");
    header.extend(METRICS.iter().map(|(m, _)| *m));
    w.write_record(&header).expect("writes to memory");
    for r in runs {
        let f = &r.spec.factors;
        let mut record = vec![
            r.spec.index.to_string(),
            r.spec.variant.clone(),
            f.load.clone(),
            num(r.spec.load_rate),
            f.hardware.clone(),
            f.policy.clone(),
            f.qos.clone(),
            r.spec.replication.to_string(),
        ];
        record.extend(METRICS.iter().map(|(m, _)| num(r.metrics.get(*m).copied())));
        w.write_record(&record).expect("writes to memory");
    }
    w.into_inner().expect("flushes to memory")
}

/// The `results.csv` header: `variant`, the factors, `replications`, each
/// metric's mean, 95% half width and ratio to the baseline, and the
/// metrics the variant is best on.
fn csv_header() -> Vec<String> {
    let mut header = vec!["variant".to_string()];
    header.extend(FACTORS.iter().map(|f| f.to_string()));
    header.push("replications".into());
    for (m, _) in METRICS {
        header.push(m.to_string());
        header.push(format!("{m}_ci95"));
        header.push(format!("{m}_vs_baseline"));
    }
    header.push("best".into());
    header
}

/// `rows` as tidy RFC 4180 CSV (the `csv` crate quotes what needs
/// quoting): a header, then one record per variant; a metric a variant
/// lacks is empty fields, `best` its best metrics separated by spaces.
pub fn results_csv(rows: &[VariantResult]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(csv_header()).expect("writes to memory");
    for r in rows {
        let f = &r.factors;
        let n = r.metrics.values().map(|s| s.n).max().unwrap_or(0);
        let mut record = vec![
            r.variant.clone(),
            f.load.clone(),
            num(r.load_rate),
            f.hardware.clone(),
            f.policy.clone(),
            f.qos.clone(),
            n.to_string(),
        ];
        for (m, _) in METRICS {
            let s = r.metrics.get(m);
            record.push(num(s.map(|s| s.mean)));
            record.push(num(s.map(|s| s.ci95)));
            record.push(num(r.vs_baseline.get(m).copied()));
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
