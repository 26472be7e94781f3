//! `bench` (the default suite): the CPU Gibbs sampler on ±J lattices, on
//! every instruction-set path (`cpu_kernel`) this CPU runs.

use std::process::ExitCode;

use anyhow::Result;

use thermoroute::model::eprogram::Schedule;
use thermoroute::sampler::{self, CpuKernel, SampleOptions, SamplerRun};
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
            // Every instruction-set path this CPU runs, in the same run;
            // their draws must be the same bits.
            let mut hashes = Vec::new();
            for kernel in CpuKernel::available() {
                let mut run = SamplerRun::new(&program, 1)?.with_cpu_kernel(kernel)?;
                run.advance(u64::MAX, Some(t), None)?;
                let draws = run.draws();
                let rate = draws.spin_updates as f64 / draws.seconds;
                let hash = draws.hash();
                rows.push(serde_json::json!({
                    "lattice": format!("{side}x{side}"), "spins": n, "chains": chains, "threads": t,
                    "cpu_kernel": kernel.name(),
                    "sweeps": sweeps, "updates": draws.spin_updates, "seconds": draws.seconds,
                    "updates_per_second": rate, "draws_hash": hash,
                }));
                if !json {
                    eprintln!(
                        "{side:>4}x{side:<4} threads {t}  {:<8} {:>8.1} M updates/s  ({} updates in {:.3} s)",
                        kernel.name(),
                        rate / 1e6,
                        draws.spin_updates,
                        draws.seconds
                    );
                }
                hashes.push((kernel, hash));
            }
            if let Some((k, h)) = hashes.iter().find(|(_, h)| *h != hashes[0].1) {
                anyhow::bail!(
                    "{side}x{side}: the {k} kernel drew {h}, the {} kernel {}",
                    hashes[0].0,
                    hashes[0].1
                );
            }
        }
    }
    if json {
        print_json(&serde_json::json!({ "benchmark": "gibbs-cpu-pm-j-lattice", "results": rows }))?;
    }
    Ok(ExitCode::SUCCESS)
}
