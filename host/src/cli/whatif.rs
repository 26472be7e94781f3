//! `thermoroute whatif` and `whatif merge`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Subcommand};

use thermoroute::whatif::{
    METRICS, OutputMeta, Prepared, RunResult, VariantResult, aggregate, plot, read_meta, read_runs,
    resolve_shard, write_meta, write_outputs,
};

use super::run::ModeArg;
use super::{print_json, progress_bar, table};

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WhatifArgs {
    #[command(subcommand)]
    command: Option<WhatifCommand>,
    /// Experiment file (TOML): graphs, [[load]], [[hardware_variant]],
    /// [[policy_variant]], [[qos_variant]], replications, seed, baseline.
    experiment: Option<PathBuf>,
    /// Directory for runs.csv / runs.json (one row per variant and
    /// replication), results.csv / results.json (one row per variant, with
    /// confidence intervals), experiment.json, and the plots (SVG and PNG).
    #[arg(long, default_value = "whatif-out")]
    out: PathBuf,
    /// Run one slice of the cross product and combine the slices with
    /// `thermoroute whatif merge`: `i/n`; `auto/n` takes i from a Kubernetes
    /// Indexed Job (JOB_COMPLETION_INDEX) or a Slurm job array
    /// (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN); `auto` also takes n from
    /// SLURM_ARRAY_TASK_COUNT. See examples/deploy/.
    #[arg(long, value_name = "i/n|auto/n|auto")]
    shard: Option<String>,
    /// Override the experiment's `mode` ("simulate" by default; "execute"
    /// really runs every node: slower, measured).
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// Show every metric in the table (default: the main ones, fitting 120 columns).
    #[arg(long)]
    wide: bool,
    /// Show every variant as a ratio to the variant whose name contains this.
    #[arg(long)]
    baseline: Option<String>,
    /// Calibration file (`thermoroute calibrate`): its measured service
    /// models and biases apply to every hardware variant.
    #[arg(long, value_name = "FILE")]
    calibration: Option<PathBuf>,
    /// Print the results as one JSON document instead of the table.
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
        /// Ratios to this variant (default: the baseline the shards ran with).
        #[arg(long)]
        baseline: Option<String>,
        #[arg(long)]
        json: bool,
        #[arg(long)]
        wide: bool,
    },
}

pub fn whatif(args: WhatifArgs) -> Result<ExitCode> {
    if let Some(WhatifCommand::Merge {
        dirs,
        out,
        baseline,
        json,
        wide,
    }) = args.command
    {
        let runs = read_runs(&dirs)?;
        let mut meta = read_meta(&dirs, &runs)?;
        meta.shard = (0, 1);
        if baseline.is_some() {
            meta.baseline = baseline;
        }
        return finish(runs, &meta, &out, json, wide);
    }
    let Some(file) = args.experiment else {
        bail!("give an experiment file (see `thermoroute whatif --help`) or `whatif merge DIR...`");
    };
    let mut prepared = Prepared::load(&file)?;
    if let Some(c) = &args.calibration {
        prepared.calibration = Some(thermoroute::calibration::Calibration::load(c)?);
    }
    match args.mode {
        Some(ModeArg::Execute) => prepared.experiment.mode = "execute".into(),
        Some(ModeArg::Simulate) => prepared.experiment.mode = "simulate".into(),
        None => {}
    }
    let shard = match &args.shard {
        Some(s) => resolve_shard(s, &|k| std::env::var(k).ok())?,
        None => (0, 1),
    };
    let all = prepared.runs();
    let total = all.iter().filter(|r| r.index % shard.1 == shard.0).count() as u64;
    let bar = progress_bar(
        total,
        "{msg} {bar:30} {pos}/{len} runs  elapsed {elapsed}  eta {eta}",
    );
    bar.set_message(prepared.experiment.name.clone());
    let runs = prepared.run_shard(shard, &|| bar.inc(1))?;
    bar.finish_and_clear();
    let meta = OutputMeta {
        experiment: prepared.experiment.name.clone(),
        baseline: args.baseline.or(prepared.experiment.baseline.clone()),
        shard,
        runs_total: all.len(),
        mode: prepared.experiment.mode.clone(),
    };
    finish(runs, &meta, &args.out, args.json, args.wide)
}

/// Aggregates runs, writes them with the results and plots into `out`, and
/// shows the results.
fn finish(
    runs: Vec<RunResult>,
    meta: &OutputMeta,
    out: &Path,
    json: bool,
    wide: bool,
) -> Result<ExitCode> {
    let rows = aggregate(runs.clone(), meta.baseline.as_deref());
    write_outputs(out, &runs, &rows)?;
    write_meta(out, meta)?;
    plot(out, &rows)?;
    report(&rows, out, json, wide)?;
    Ok(ExitCode::SUCCESS)
}

fn report(rows: &[VariantResult], out: &Path, json: bool, wide: bool) -> Result<()> {
    if json {
        return print_json(&rows);
    }
    let narrow = [
        ("latency_p50_ms", "p50 ms"),
        ("latency_p95_ms", "p95 ms"),
        ("energy_per_job_j", "J/job"),
        ("slo_attainment", "SLO"),
    ];
    let shown: Vec<(&str, &str)> = if wide {
        METRICS.iter().map(|(m, _)| (*m, *m)).collect()
    } else {
        narrow.to_vec()
    };
    let mut header = vec!["variant".to_string()];
    header.extend(shown.iter().map(|(_, h)| h.to_string()));
    let mut t = table(header);
    if !wide {
        t.set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
            .set_width(120);
    }
    for r in rows {
        let mut cells = vec![if wide {
            r.variant.clone()
        } else {
            super::truncate(&r.variant, 34)
        }];
        for (m, _) in &shown {
            cells.push(match r.metrics.get(*m) {
                Some(s) => {
                    let best = if r.best.iter().any(|b| b == m) {
                        "*"
                    } else {
                        ""
                    };
                    let ratio = r
                        .vs_baseline
                        .get(*m)
                        .map(|x| format!(" ({x:.2}x)"))
                        .unwrap_or_default();
                    format!("{}±{}{best}{ratio}", sig(s.mean), sig(s.ci95))
                }
                None => "-".into(),
            });
        }
        t.add_row(cells);
    }
    println!("{t}");
    println!(
        "* best per metric; ± 95% confidence half-width over replications; (x) ratio to the baseline{}",
        if wide {
            String::new()
        } else {
            format!("; --wide: all {}", METRICS.len())
        }
    );
    println!(
        "runs.csv, results.csv, JSON and plots (SVG, PNG) in {}",
        out.display()
    );
    Ok(())
}

/// `x` to three significant digits, plain or in exponent form.
fn sig(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let mag = x.abs().log10().floor() as i32;
    if (-3..5).contains(&mag) {
        let decimals = (2 - mag).max(0) as usize;
        format!("{x:.decimals$}")
    } else {
        format!("{x:.2e}")
    }
}
