//! What-if experiments: the cross product of load levels, hardware variants,
//! policy variants and QoS variants, replicated with seeds, each run in the
//! engine (simulate mode by default); per-variant means with 95% confidence
//! intervals, best variant per metric, ratios to a baseline.
//!
//! Variants edit documents by dotted path: hardware and policy variants set
//! fields of the hardware TOML (`"tsu.count" = 4`, `"weights.energy" = 0`),
//! QoS variants set fields of every graph's `qos` (`"latency_ms.p95" = 20`).

mod experiment;
mod fidelity;
pub mod file;
mod output;
mod plot;
mod run;
mod stats;

use std::path::{Path, PathBuf};

pub use experiment::{Experiment, Factors, Load, Prepared, RunSpec, Variant};
pub use fidelity::{FidelityRow, ModeFigures, compare_modes, mix_difference_pp};
pub use output::{
    CsvRow, OutputMeta, read_meta, read_results_csv, read_runs, results_csv, runs_csv, write_meta,
    write_outputs,
};
pub use plot::{pareto_front, plot};
pub use run::{RunResult, SHARD_VARIABLES, parse_shard, resolve_shard};
pub use stats::{METRICS, Stat, VariantResult, aggregate};

/// Errors of an experiment. Fatal for it; they name the file and field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WhatifError {
    #[error("{file}: {reason}")]
    File { file: PathBuf, reason: String },
    #[error("variant {variant:?}: {reason}")]
    Variant { variant: String, reason: String },
    #[error("run {run}: {reason}")]
    Run { run: String, reason: String },
    #[error("--shard {0}: expected i/n with i < n, auto/n or auto")]
    Shard(String),
    #[error("--shard auto: {0}")]
    ShardEnv(String),
}

fn file_error(file: &Path, reason: impl Into<String>) -> WhatifError {
    WhatifError::File {
        file: file.into(),
        reason: reason.into(),
    }
}
