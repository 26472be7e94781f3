//! `bench --suite tsu`: the TSU simulator's speed and simulated energy.

use std::process::ExitCode;

use anyhow::Result;
use serde_json::json;

use thermoroute::backends::tsu::TsuDriver;
use thermoroute::hardware::Hardware;
use thermoroute::model::EProgram;
use thermoroute::sampler::CpuKernel;

use crate::cli::print_json;

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
pub fn bench(json: bool) -> Result<ExitCode> {
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
        // Every instruction-set path this CPU runs, in the same run; their
        // draws must be the same bits.
        let mut first_draws: Option<(CpuKernel, thermoroute_sim::Draws)> = None;
        for kernel in CpuKernel::available() {
            // The driver's run, on a chosen path.
            let mut run = thermoroute_sim::TsuRun::new(
                std::sync::Arc::new(image.clone()),
                &driver.chip,
                1,
                driver.faults.clone(),
            )
            .with_cpu_kernel(kernel)?;
            let start = std::time::Instant::now();
            run.advance(u64::MAX)?;
            let wall = start.elapsed().as_secs_f64();
            let c = *run.counters();
            let draws = run.draws();
            match &first_draws {
                Some((k, d)) if *d != draws => {
                    anyhow::bail!(
                        "{label}: the {kernel} kernel drew differently from the {k} kernel"
                    )
                }
                Some(_) => {}
                None => first_draws = Some((kernel, draws)),
            }
            let samples = (program.schedule.chains * program.schedule.samples) as f64;
            let cpu_energy_per_sample = (c.cell_updates as f64 / hw.cpu.spin_updates_per_s)
                * hw.cpu.active_w_per_core
                / samples;
            let row = json!({
                "case": label,
                "chip": driver.chip.name,
                "cpu_kernel": kernel.name(),
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
                    "{label} [{kernel}]: {:.1} M simulated cell-updates/s ({} updates in {:.3} s); energy per sample: TSU {:.3e} J (simulated) vs CPU {:.3e} J (modelled)",
                    c.cell_updates as f64 / wall / 1e6,
                    c.cell_updates,
                    wall,
                    c.energy_j() / samples,
                    cpu_energy_per_sample
                );
            }
            rows.push(row);
        }
    }
    if json {
        print_json(&json!({ "benchmark": "tsu-simulator", "results": rows }))?;
    }
    Ok(ExitCode::SUCCESS)
}
