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

/// A spin program with the chip's grid shape: every in-bounds neighbour
/// offset of every cell coupled, weights and biases from a seed.
fn grid_program(
    width: usize,
    height: usize,
    offsets: &[[i32; 2]],
    periodic: bool,
    sweeps: u64,
    chains: u64,
) -> EProgram {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let n = width * height;
    let mut edges = Vec::new();
    for y in 0..height as i64 {
        for x in 0..width as i64 {
            for &[dx, dy] in offsets {
                // Each undirected edge once: only "forward" offsets.
                if (dy, dx) <= (0, 0) {
                    continue;
                }
                let (mut nx, mut ny) = (x + dx as i64, y + dy as i64);
                if periodic {
                    nx = nx.rem_euclid(width as i64);
                    ny = ny.rem_euclid(height as i64);
                } else if nx < 0 || ny < 0 || nx >= width as i64 || ny >= height as i64 {
                    continue;
                }
                edges.push([
                    (y * width as i64 + x) as usize,
                    (ny * width as i64 + nx) as usize,
                ]);
            }
        }
    }
    let weights = edges.iter().map(|_| rng.random_range(-0.5..0.5)).collect();
    let biases = (0..n).map(|_| rng.random_range(-0.3..0.3)).collect();
    EProgram::spins(
        biases,
        edges,
        weights,
        thermoroute::model::eprogram::Schedule {
            warmup: sweeps - 1,
            samples: 1,
            steps_per_sample: 1,
            chains,
        },
    )
}

/// Simulator speed (simulated cell updates per second of host time) on a
/// 65,536-cell lattice and on the z1-like preset filled edge to edge, with
/// the simulated energy per sample next to the CPU backend's modelled energy.
pub fn bench_tsu(json: bool) -> Result<ExitCode> {
    let hw = Hardware::default();
    let mut lattice_chip = thermoroute_sim::ChipConfig::devkit();
    lattice_chip.name = "devkit-64k".into();
    lattice_chip.cells = 65_536 * 2;
    let z1 = thermoroute_sim::ChipConfig::z1_like();
    let offsets = match &z1.topology {
        thermoroute_sim::Topology::Grid { neighbourhood, .. } => neighbourhood.clone(),
        _ => unreachable!("z1-like is a grid"),
    };
    let cases = [
        (
            "lattice 256x256 (65,536 cells, degree 4)",
            lattice_chip,
            grid_program(256, 256, &[[1, 0], [-1, 0], [0, 1], [0, -1]], true, 400, 2),
        ),
        (
            "z1-like filled (269,568 cells, degree <= 16)",
            z1.clone(),
            grid_program(576, 468, &offsets, false, 200, 2),
        ),
        // Eight chains: the chip runs them batch after batch, the simulator
        // computes them in one pass over the couplings.
        (
            "z1-like filled, 8 chains",
            z1,
            grid_program(576, 468, &offsets, false, 60, 8),
        ),
    ];
    let mut rows = Vec::new();
    for (label, chip, program) in cases {
        let driver = TsuDriver {
            chip,
            tolerance: 0.05,
            faults: Default::default(),
            shared_fraction: 1.0,
        };
        let image = driver
            .compile(&program)
            .map_err(|r| anyhow::anyhow!("{label}: {r:?}"))?;
        let cells = image.n;
        let mut run = driver.start(image, 1);
        let start = std::time::Instant::now();
        run.advance(u64::MAX)?;
        let wall = start.elapsed().as_secs_f64();
        let c = *run.run().counters();
        let samples = (program.schedule.chains * program.schedule.samples) as f64;
        let cpu_energy_per_sample = (c.cell_updates as f64 / hw.cpu.spin_updates_per_s)
            * hw.cpu.active_w_per_core
            / samples;
        let row = json!({
            "case": label,
            "chip": driver.chip.name,
            "cells": cells,
            "cell_updates": c.cell_updates,
            "wall_s": wall,
            "cell_updates_per_s": c.cell_updates as f64 / wall,
            "device_seconds": c.seconds,
            "tsu_energy_per_sample_j": c.energy_j() / samples,
            "cpu_modelled_energy_per_sample_j": cpu_energy_per_sample,
        });
        if !json {
            eprintln!(
                "{label}: {:.1} M simulated cell-updates/s ({} updates in {:.3} s); energy per sample: TSU {:.3e} J (simulated) vs CPU {:.3e} J (modelled)",
                c.cell_updates as f64 / wall / 1e6,
                c.cell_updates,
                wall,
                c.energy_j() / samples,
                cpu_energy_per_sample
            );
        }
        rows.push(row);
    }
    if json {
        print_json(&json!({ "benchmark": "tsu-simulator", "results": rows }))?;
    }
    Ok(ExitCode::SUCCESS)
}
