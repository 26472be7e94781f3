//! `thermoroute tsu inspect`: a program compiled for the chip.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;

use thermoroute::backends::tsu::TsuDriver;
use thermoroute::inputs::load_hardware;
use thermoroute::model::EProgram;

use super::{EXIT_INFEASIBLE, print_json, report_model_error, table};

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
    let hw = load_hardware(hw_path.as_deref())?;
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
                let mut t = table(["", ""]);
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
