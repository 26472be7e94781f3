//! `thermoroute whatif` and `whatif merge`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};

use thermoroute::whatif::{
    METRICS, Prepared, RunResult, VariantResult, aggregate, parse_shard, plot, read_runs,
    write_outputs,
};

use super::{print_json, progress_bar, table};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WhatifArgs {
    #[command(subcommand)]
    command: Option<WhatifCommand>,
    /// Experiment file (TOML): graphs, [[load]], [[hardware_variant]],
    /// [[policy_variant]], [[qos_variant]], replications, seed, baseline.
    experiment: Option<PathBuf>,
    /// Directory for runs.json, results.json and results.csv.
    #[arg(long, default_value = "whatif-out")]
    out: PathBuf,
    /// Run one slice of the cross product (`i/n`, e.g. a Slurm array index);
    /// combine the slices with `thermoroute whatif merge`.
    #[arg(long)]
    shard: Option<String>,
    /// Show every variant as a ratio to the variant whose name contains this.
    #[arg(long)]
    baseline: Option<String>,
    /// Calibration file (`thermoroute calibrate`): its measured service
    /// models and biases apply to every hardware variant.
    #[arg(long, value_name = "FILE")]
    calibration: Option<PathBuf>,
    /// Print the results as one JSON document (no table, no progress bar).
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand, Debug)]
enum WhatifCommand {
    /// Combine the output directories of shards into one result.
    Merge {
        dirs: Vec<PathBuf>,
        #[arg(long, default_value = "whatif-out")]
        out: PathBuf,
        #[arg(long)]
        baseline: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub fn whatif(args: WhatifArgs) -> Result<ExitCode> {
    if let Some(WhatifCommand::Merge {
        dirs,
        out,
        baseline,
        json,
    }) = args.command
    {
        return finish(read_runs(&dirs)?, baseline.as_deref(), &out, json);
    }
    let Some(file) = args.experiment else {
        bail!("give an experiment file (see `thermoroute whatif --help`) or `whatif merge DIR...`");
    };
    let mut prepared = Prepared::load(&file)?;
    if let Some(c) = &args.calibration {
        prepared.calibration = Some(thermoroute::calibration::Calibration::load(c)?);
    }
    let shard = match &args.shard {
        Some(s) => parse_shard(s)?,
        None => (0, 1),
    };
    let total = prepared
        .runs()
        .iter()
        .filter(|r| r.index % shard.1 == shard.0)
        .count() as u64;
    let bar = progress_bar(
        total,
        "{msg} {bar:30} {pos}/{len} runs  elapsed {elapsed}  eta {eta}",
    );
    bar.set_message(prepared.experiment.name.clone());
    if args.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let runs = prepared.run_shard(shard, &|| bar.inc(1))?;
    bar.finish_and_clear();
    let baseline = args
        .baseline
        .as_deref()
        .or(prepared.experiment.baseline.as_deref());
    finish(runs, baseline, &args.out, args.json)
}

/// Aggregates runs, writes them with the results and plots into `out`, and
/// shows the results.
fn finish(
    runs: Vec<RunResult>,
    baseline: Option<&str>,
    out: &Path,
    json: bool,
) -> Result<ExitCode> {
    let rows = aggregate(runs.clone(), baseline);
    write_outputs(out, &runs, &rows)?;
    plot(out, &rows)?;
    report(&rows, out, json)?;
    Ok(ExitCode::SUCCESS)
}

fn report(rows: &[VariantResult], out: &Path, json: bool) -> Result<()> {
    if json {
        return print_json(&rows);
    }
    let shown = [
        "latency_p50_ms",
        "latency_p95_ms",
        "energy_per_job_j",
        "expected_error",
        "slo_attainment",
        "rejected",
        "util_tsu",
    ];
    let mut header = vec!["variant (load | hardware | policy | qos)".to_string()];
    header.extend(shown.iter().map(|s| s.to_string()));
    let mut t = table(header);
    for r in rows {
        let mut cells = vec![r.variant.clone()];
        for m in shown {
            cells.push(match r.metrics.get(m) {
                Some(s) => {
                    let best = if r.best.iter().any(|b| b == m) {
                        " *"
                    } else {
                        ""
                    };
                    let ratio = r
                        .vs_baseline
                        .get(m)
                        .map(|x| format!(" ({x:.2}x)"))
                        .unwrap_or_default();
                    format!("{:.4} ± {:.4}{best}{ratio}", s.mean, s.ci95)
                }
                None => "-".into(),
            });
        }
        t.add_row(cells);
    }
    println!("{t}");
    println!(
        "* best per metric; ± is the 95% confidence half-width over replications. {} metrics per run, CSV, JSON and SVG plots (latency_vs_load, energy_vs_p95, utilisation) in {}",
        METRICS.len(),
        out.display()
    );
    Ok(())
}
