//! `thermoroute calibrate`: each backend's error against exact enumeration.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use thermoroute::calibration::{BackendCalibration, Calibration, calibrate as run_calibration};
use thermoroute::inputs::load_hardware;

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
    #[arg(long)]
    json: bool,
}

pub fn calibrate(args: CalibrateArgs) -> Result<ExitCode> {
    let hw = load_hardware(args.hardware.as_deref())?;
    // Service models: up to two backends, six sizes each.
    let steps = args.programs as u64 * if hw.tsu.count > 0 { 2 } else { 1 } + 12;
    let bar = progress_bar(
        steps,
        "calibrating {bar:30} {pos}/{len}  elapsed {elapsed}  eta {eta}  {msg}",
    );
    let c = run_calibration(&hw, args.programs, args.seed, |backend, i| {
        bar.set_message(format!("{backend}, program {}", i + 1));
        bar.inc(1);
    })?;
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
    println!(
        "written to {} (use: thermoroute run ... --calibration {})",
        out.display(),
        out.display()
    );
}
