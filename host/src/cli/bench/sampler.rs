//! `bench` (the default suite): the CPU Gibbs sampler on ±J lattices.

use std::process::ExitCode;

use anyhow::Result;

use thermoroute::model::eprogram::Schedule;
use thermoroute::sampler::{self, SampleOptions};
use thermoroute::workloads::pm_j_lattice;

use crate::cli::print_json;

pub fn bench(
    sizes: &[usize],
    threads: &[usize],
    chains: u64,
    updates: u64,
    json: bool,
) -> Result<ExitCode> {
    let mut rows = Vec::new();
    for &side in sizes {
        let n = (side * side) as u64;
        let sweeps = (updates / (n * chains)).max(10);
        let schedule = Schedule {
            warmup: sweeps - 1,
            samples: 1,
            steps_per_sample: 1,
            chains,
        };
        let program = pm_j_lattice(side, 1.0, 0.5, 7, schedule);
        for &t in threads {
            // One short untimed run warms caches and the thread pool.
            let mut warm = program.clone();
            warm.schedule.warmup = 1;
            sampler::sample(
                &warm,
                SampleOptions {
                    seed: 1,
                    threads: Some(t),
                    ..Default::default()
                },
            )?;
            let draws = sampler::sample(
                &program,
                SampleOptions {
                    seed: 1,
                    threads: Some(t),
                    ..Default::default()
                },
            )?;
            let rate = draws.spin_updates as f64 / draws.seconds;
            rows.push(serde_json::json!({
                "lattice": format!("{side}x{side}"), "spins": n, "chains": chains, "threads": t,
                "sweeps": sweeps, "updates": draws.spin_updates, "seconds": draws.seconds,
                "updates_per_second": rate,
            }));
            if !json {
                eprintln!(
                    "{side:>4}x{side:<4} threads {t}  {:>8.1} M updates/s  ({} updates in {:.3} s)",
                    rate / 1e6,
                    draws.spin_updates,
                    draws.seconds
                );
            }
        }
    }
    if json {
        print_json(&serde_json::json!({ "benchmark": "gibbs-cpu-pm-j-lattice", "results": rows }))?;
    }
    Ok(ExitCode::SUCCESS)
}
