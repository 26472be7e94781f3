//! `bench --suite diagnostics`: what a user waits for after sampling — rank
//! R-hat and bulk ESS of every variable, the `sample --json` report (with
//! marginals and hashes) and its output, and the `--draws` file — on the
//! periodic ±J lattice (default 256×256 = 65,536 spins, 4 chains, 1,000
//! draws after 100 warmup sweeps).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};

use thermoroute::diagnostics::diagnose;
use thermoroute::model::eprogram::Schedule;
use thermoroute::sample_report::SampleReport;
use thermoroute::sampler::{self, SampleOptions};
use thermoroute::workloads::pm_j_lattice;

use crate::cli::print_json;
use crate::cli::sample::write_draws_file;

/// Timed repetitions; the median is reported.
const REPEATS: usize = 3;

pub fn bench(
    side: usize,
    chains: u64,
    samples: u64,
    write_program: Option<&Path>,
    json: bool,
) -> Result<ExitCode> {
    let schedule = Schedule {
        warmup: 100,
        samples,
        steps_per_sample: 1,
        chains,
    };
    let program = pm_j_lattice(side, 1.0, 0.5, 7, schedule);
    if let Some(path) = write_program {
        // `thermoroute sample PATH` then draws exactly what is measured here.
        let text = serde_json::to_vec(&program)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let draws = sampler::sample(&program, SampleOptions::default())?;
    let dir = tempfile::tempdir()?;
    let (report_path, draws_path) = (
        dir.path().join("report.json"),
        dir.path().join("draws.json"),
    );
    let mut times: Vec<[f64; 4]> = Vec::new();
    for _ in 0..REPEATS {
        let t = Instant::now();
        let diag = diagnose(&draws);
        let t_diag = t.elapsed().as_secs_f64();
        std::hint::black_box(&diag);
        let t = Instant::now();
        let report = SampleReport::new(&program, &draws, 0, "cpu");
        let t_report = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut out =
            std::io::BufWriter::with_capacity(1 << 16, std::fs::File::create(&report_path)?);
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        out.flush()?;
        drop(out);
        let t_json = t.elapsed().as_secs_f64();
        let t = Instant::now();
        write_draws_file(&draws, &draws_path)?;
        let t_draws = t.elapsed().as_secs_f64();
        times.push([t_diag, t_report, t_json, t_draws]);
    }
    let median = |k: usize| {
        let mut v: Vec<f64> = times.iter().map(|t| t[k]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (t_diag, t_report, t_json, t_draws) = (median(0), median(1), median(2), median(3));
    let n = side * side;
    if json {
        print_json(&serde_json::json!({
            "benchmark": "diagnostics-pm-j-lattice",
            "lattice": format!("{side}x{side}"), "variables": n, "chains": chains,
            "samples": samples, "threads": rayon::current_num_threads(),
            "sampling_seconds": draws.seconds,
            "diagnostics_seconds": t_diag,
            "report_seconds": t_report,
            "report_output_seconds": t_json,
            "diagnostics_and_output_seconds": t_report + t_json,
            "draws_file_seconds": t_draws,
            "repeats": REPEATS,
        }))?;
    } else {
        eprintln!(
            "{side}x{side} lattice ({n} spins), {chains} chains x {samples} draws, {} threads, median of {REPEATS}:",
            rayon::current_num_threads()
        );
        eprintln!(
            "  sampling (once)                    {:>8.3} s",
            draws.seconds
        );
        eprintln!("  R-hat + bulk ESS, every variable   {t_diag:>8.3} s");
        eprintln!("  sample report (diagnostics, marginals, hashes) {t_report:>8.3} s");
        eprintln!("  report JSON written               {t_json:>8.3} s");
        eprintln!(
            "  diagnostics + output              {:>8.3} s",
            t_report + t_json
        );
        eprintln!("  --draws file written              {t_draws:>8.3} s");
    }
    Ok(ExitCode::SUCCESS)
}
