//! `sample --backend tsu`, `tsu inspect` and `calibrate`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde_json::json;

use thermoroute::backends::SamplingTask;
use thermoroute::backends::tsu::{TsuDriver, tsu_draws};
use thermoroute::calibration::{Calibration, calibrate as run_calibration};
use thermoroute::hardware::Hardware;
use thermoroute::model::EProgram;
use thermoroute::sampler::{Draws, SampleError};

use crate::{EXIT_INFEASIBLE, print_json, report_model_error};

/// What a TSU run adds to a sample report.
pub struct TsuExtra {
    pub cycles: u64,
    pub energy_j: f64,
    pub device_seconds: f64,
    pub image_hash: String,
    pub chip_hash: String,
}

fn hardware(path: Option<&Path>) -> Result<Hardware> {
    Ok(match path {
        Some(p) => Hardware::load(p)?,
        None => Hardware::default(),
    })
}

/// Samples a program on the simulated TSU; ineligible programs are errors
/// listing every reason.
pub fn sample_on_tsu(
    program: &EProgram,
    seed: u64,
    hw: Option<&Path>,
) -> Result<Result<(Draws, TsuExtra), SampleError>> {
    let hw = hardware(hw)?;
    let driver = TsuDriver::from_hardware(&hw)?;
    if let Err(inf) = program.feasibility("$") {
        return Ok(Err(SampleError::Infeasible(inf)));
    }
    let image = match driver.compile(program) {
        Ok(image) => image,
        Err(reasons) => bail!(
            "the program is not eligible for the TSU ({}):\n  {}",
            driver.chip.name,
            reasons
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join("\n  ")
        ),
    };
    let image_hash = image.hash();
    let mut run = driver.start(image, seed);
    run.advance(u64::MAX).context("running on the TSU")?;
    let c = *run.run().counters();
    Ok(Ok((
        tsu_draws(run.run()),
        TsuExtra {
            cycles: c.cycles(),
            energy_j: c.energy_j(),
            device_seconds: c.seconds,
            image_hash,
            chip_hash: run.chip_hash().to_string(),
        },
    )))
}

#[derive(Subcommand, Debug)]
pub enum TsuCommand {
    /// Compile a program for the chip: cells, colours, quantisation error of
    /// each weight, estimated cycles and energy — or every reason it is not
    /// eligible (exit 3).
    Inspect {
        program: PathBuf,
        #[arg(long, value_name = "HW.toml")]
        hardware: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

pub fn tsu(command: TsuCommand) -> Result<ExitCode> {
    let TsuCommand::Inspect {
        program,
        hardware: hw_path,
        json,
    } = command;
    let p = match EProgram::load(&program) {
        Ok(p) => p,
        Err(e) => return Ok(report_model_error(&e)),
    };
    let hw = hardware(hw_path.as_deref())?;
    let driver = TsuDriver::from_hardware(&hw)?;
    match driver.compile(&p) {
        Err(reasons) => {
            if json {
                print_json(
                    &json!({ "eligible": false, "chip": driver.chip.name, "reasons": reasons }),
                )?;
            } else {
                println!(
                    "{}: not eligible for the TSU ({}):",
                    program.display(),
                    driver.chip.name
                );
                for r in &reasons {
                    println!("  - {r}");
                }
            }
            Ok(ExitCode::from(EXIT_INFEASIBLE))
        }
        Ok(image) => {
            let est = thermoroute_sim::estimate(&image, &driver.chip);
            if json {
                print_json(&json!({
                    "eligible": true,
                    "chip": driver.chip.name,
                    "chip_hash": driver.chip.hash(),
                    "image_hash": image.hash(),
                    "variables": image.n,
                    "copies": image.copies,
                    "cells_used": image.n * image.copies,
                    "batches": image.batches,
                    "colours": image.colours.len(),
                    "lsb": image.lsb,
                    "weight_error_max": image.weight_error_max,
                    "weight_error_mean": image.weight_error_mean,
                    "weight_errors": image.weight_errors,
                    "bias_error_max": image.bias_error_max,
                    "estimate": est,
                    "estimated_cycles": est.cycles(),
                    "estimated_energy_j": est.energy_j(),
                }))?;
            } else {
                let mut t = Table::new();
                t.load_preset(UTF8_FULL_CONDENSED);
                t.set_header(vec!["", ""]);
                let rows = [
                    (
                        "chip",
                        format!("{} ({})", driver.chip.name, driver.chip.hash()),
                    ),
                    ("image", image.hash()),
                    (
                        "cells used",
                        format!(
                            "{} of {} ({} variables x {} copies)",
                            image.n * image.copies,
                            driver.chip.cells,
                            image.n,
                            image.copies
                        ),
                    ),
                    ("batches", image.batches.to_string()),
                    ("colour phases", image.colours.len().to_string()),
                    ("field LSB", format!("{:.5} (beta included)", image.lsb)),
                    (
                        "weight quantisation error",
                        format!(
                            "max {:.5}, mean {:.5}",
                            image.weight_error_max, image.weight_error_mean
                        ),
                    ),
                    (
                        "bias quantisation error",
                        format!("max {:.5}", image.bias_error_max),
                    ),
                    (
                        "cycles (estimated)",
                        format!(
                            "{} = load {} + sweeps {} + readout {}",
                            est.cycles(),
                            est.load_cycles,
                            est.sweep_cycles,
                            est.readout_cycles
                        ),
                    ),
                    ("device time", format!("{:.6} s", est.seconds)),
                    (
                        "energy (estimated)",
                        format!(
                            "{:.3e} J = load {:.2e} + updates {:.2e} + readout {:.2e} + static {:.2e}",
                            est.energy_j(),
                            est.load_j,
                            est.update_j,
                            est.readout_j,
                            est.static_j
                        ),
                    ),
                ];
                for (k, v) in rows {
                    t.add_row(vec![k.to_string(), v]);
                }
                println!("{t}");
                let shown = image.weight_errors.len().min(12);
                if shown > 0 {
                    let errs: Vec<String> = image.weight_errors[..shown]
                        .iter()
                        .map(|e| format!("{e:.4}"))
                        .collect();
                    println!("weight errors (first {shown}): {}", errs.join(" "));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

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
    let hw = hardware(args.hardware.as_deref())?;
    let steps = args.programs as u64 * if hw.tsu.count > 0 { 2 } else { 1 };
    let bar = indicatif::ProgressBar::new(steps).with_style(
        indicatif::ProgressStyle::with_template("calibrating {bar:30} {pos}/{len} {msg}")
            .expect("valid template"),
    );
    if args.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
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
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
        "backend",
        "programs",
        "mean max |error|",
        "mean MC error",
        "bias (excess)",
    ]);
    let mut row = |name: &str, b: &thermoroute::calibration::BackendCalibration| {
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
    println!(
        "written to {} (use: thermoroute run ... --calibration {})",
        out.display(),
        out.display()
    );
}
