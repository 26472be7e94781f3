//! `thermoroute calibrate`: each backend's error against exact enumeration.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use thermoroute::calibration::measure_mixing;
use thermoroute::calibration::{BackendCalibration, Calibration, calibrate as run_calibration};
use thermoroute::inputs::{load_hardware, load_job_classes};
use thermoroute::model::EProgram;

use super::{print_json, progress_bar, table};

#[derive(Args, Debug)]
pub struct CalibrateArgs {
    /// Hardware description (its TSU chip is calibrated; default devkit).
    #[arg(long, value_name = "HW.toml")]
    hardware: Option<PathBuf>,
    /// Where to write the error table (`run --calibration` reads it).
    #[arg(long, value_name = "FILE", default_value = "calibration.json")]
    out: PathBuf,
    /// Programs in the suite.
    #[arg(long, default_value_t = 8)]
    programs: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also measure how each backend mixes on the sampling nodes of these
    /// workload graphs (bulk ESS per draw, R-hat, constraint rate, error
    /// against exact enumeration where it is possible): simulate mode draws
    /// their diagnostics from it. Repeatable.
    #[arg(long = "graph", value_name = "GRAPH.json")]
    graphs: Vec<PathBuf>,
    /// Runs per (backend, program) behind each mixing model.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(2..=64))]
    mixing_runs: u64,
    #[arg(long)]
    json: bool,
}

pub fn calibrate(args: CalibrateArgs) -> Result<ExitCode> {
    let hw = load_hardware(args.hardware.as_deref())?;
    let programs = sampling_programs(&args.graphs)?;
    let backends = if hw.tsu.count > 0 { 2 } else { 1 };
    // Service models: up to two backends, six sizes each.
    let steps =
        args.programs as u64 * backends + 12 + programs.len() as u64 * backends * args.mixing_runs;
    let bar = progress_bar(
        steps,
        "calibrating {bar:30} {pos}/{len}  elapsed {elapsed}  eta {eta}  {msg}",
    );
    let mut c = run_calibration(&hw, args.programs, args.seed, |backend, i| {
        bar.set_message(format!("{backend}, program {}", i + 1));
        bar.inc(1);
    })?;
    c.mixing = measure_mixing(
        &hw,
        &programs,
        args.mixing_runs as usize,
        args.seed,
        |backend, i| {
            bar.set_message(format!("mixing: {backend}, graph program {}", i + 1));
            bar.inc(1);
        },
    )?;
    bar.finish_and_clear();
    c.save(&args.out)?;
    if args.json {
        print_json(&c)?;
    } else {
        print_calibration(&c, &args.out);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_calibration(c: &Calibration, out: &Path) {
    let mut t = table([
        "backend",
        "programs",
        "mean max |error|",
        "mean MC error",
        "bias (excess)",
    ]);
    let mut row = |name: &str, b: &BackendCalibration| {
        t.add_row(vec![
            name.to_string(),
            b.programs.to_string(),
            format!("{:.5}", b.mean_max_error),
            format!("{:.5}", b.mean_mc_error),
            format!("{:.5}", b.bias),
        ]);
    };
    row("cpu-ref", &c.cpu_ref);
    if let Some(tsu) = &c.tsu {
        row(&format!("tsu ({})", c.chip), tsu);
    }
    println!("{t}");
    let mut t = table([
        "target",
        "node family",
        "overhead ms",
        "ms per unit",
        "spread (cv)",
        "points",
    ]);
    for f in &c.service {
        t.add_row(vec![
            f.target.clone(),
            f.family.clone(),
            format!("{:.4}", f.overhead_ms),
            format!("{:.3e}", f.ms_per_unit),
            format!("{:.2}", f.residual_cv),
            f.points.to_string(),
        ]);
    }
    println!("service time on this machine (units: spin updates for sampling, flops for tensors):");
    println!("{t}");
    if !c.mixing.is_empty() {
        let mut t = table([
            "target",
            "program",
            "ESS per draw",
            "R-hat - 1",
            "constraint rate",
            "max |error|",
            "runs",
        ]);
        for m in &c.mixing {
            t.add_row(vec![
                m.target.clone(),
                m.program_hash.chars().take(19).collect(),
                format!("{:.3} (cv {:.2})", m.ess_per_draw, m.ess_cv),
                format!("{:.2e} (cv {:.2})", m.rhat_excess, m.rhat_cv),
                format!("{:.4}", m.constraint_rate),
                m.max_error.map_or("-".into(), |e| format!("{e:.4}")),
                m.runs.to_string(),
            ]);
        }
        println!("how each backend mixes (simulate mode draws sampling diagnostics from this):");
        println!("{t}");
    }
    println!(
        "written to {} (use: thermoroute run ... --calibration {})",
        out.display(),
        out.display()
    );
}

/// The distinct sampling programs of `graphs`, in order of appearance.
fn sampling_programs(graphs: &[PathBuf]) -> Result<Vec<EProgram>> {
    if graphs.is_empty() {
        return Ok(Vec::new());
    }
    let mut seen = std::collections::HashSet::new();
    let mut programs = Vec::new();
    for class in load_job_classes(graphs)? {
        for node in &class.graph.nodes {
            if let Some(spec) = node.sample()
                && seen.insert(spec.program.canonical_hash())
            {
                programs.push(spec.program.clone());
            }
        }
    }
    Ok(programs)
}
