//! `thermoroute bench`: every suite, one module each.

mod diagnostics;
mod fidelity;
mod gpu;
mod plugins;
mod sampler;
mod scheduler;
mod tsu;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, ValueEnum};

use thermoroute::model::Graph;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// What to measure: the Gibbs sampler on lattices, the scheduler in
    /// simulate mode on the M/M/3 example (jobs/s, decisions/s), the TSU
    /// simulator (simulated cell updates/s, energy per sample) — these
    /// two once per CPU kernel path this CPU runs (baseline, avx2,
    /// avx512; `THERMOROUTE_CPU_KERNEL` picks the path other commands
    /// use), checking that every path drew the same bits — or
    /// routing decisions/s with each cost-model plugin against the
    /// native one, with compile, cache-load and instantiation times; or
    /// the GPU sampler's spin updates/s on ±J lattices (at least 32
    /// chains) on the adapter wgpu finds; or R-hat, bulk ESS and the
    /// `sample` outputs of a lattice (diagnostics); or how far simulate
    /// mode is from execute mode on every example graph (p50, p95, energy,
    /// backend mix).
    #[arg(long, value_enum, default_value_t = Suite::Sampler)]
    suite: Suite,
    /// Scheduler and plugins suites: jobs to simulate (default 2,000,000
    /// for the scheduler, 20,000 for plugins).
    #[arg(long)]
    jobs: Option<u64>,
    /// Fidelity suite: Poisson arrivals per second (default 5).
    #[arg(long)]
    rate: Option<f64>,
    /// Fidelity suite: hardware description (default: the built-in machine).
    #[arg(long, value_name = "HW.toml")]
    hardware: Option<PathBuf>,
    /// Fidelity suite: calibration file applied to the hardware.
    #[arg(long, value_name = "FILE")]
    calibration: Option<PathBuf>,
    /// Plugins suite: cost-model components to measure (default: the
    /// committed Rust, Python and JavaScript ones, once built with
    /// `plugin build`).
    #[arg(long = "plugin", value_name = "PLUGIN.wasm")]
    plugins: Vec<PathBuf>,
    /// Lattice sides (default 64,256; diagnostics: 256).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<usize>,
    /// Thread counts to compare.
    #[arg(long, value_delimiter = ',', default_values_t = vec![1, 2], value_parser = crate::cli::parse_threads)]
    threads: Vec<usize>,
    /// Chains per run (run in parallel across threads; default 2,
    /// diagnostics: 4).
    #[arg(long)]
    chains: Option<u64>,
    /// Diagnostics suite: draws per chain.
    #[arg(long, default_value_t = 1000)]
    samples: u64,
    /// Diagnostics suite: also write the measured lattice program to FILE
    /// (for `thermoroute sample FILE --draws ...` and a peer's timing).
    #[arg(long, value_name = "FILE")]
    write_program: Option<PathBuf>,
    /// Target updates per measurement (sets the sweep count).
    #[arg(long, default_value_t = 400_000_000)]
    updates: u64,
    #[arg(long)]
    json: bool,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Suite {
    Sampler,
    Scheduler,
    Tsu,
    Plugins,
    Gpu,
    Diagnostics,
    Fidelity,
}

pub fn bench(args: BenchArgs) -> Result<ExitCode> {
    let json = args.json;
    let sizes = if args.sizes.is_empty() {
        match args.suite {
            Suite::Diagnostics => vec![256],
            _ => vec![64, 256],
        }
    } else {
        args.sizes.clone()
    };
    let chains = args.chains.unwrap_or(2);
    match args.suite {
        Suite::Sampler => sampler::bench(&sizes, &args.threads, chains, args.updates, json),
        Suite::Scheduler => scheduler::bench(args.jobs.unwrap_or(2_000_000), json),
        Suite::Tsu => tsu::bench(json),
        Suite::Plugins => plugins::bench(&args.plugins, args.jobs.unwrap_or(20_000), json),
        Suite::Gpu => gpu::bench(&sizes, chains, json),
        Suite::Fidelity => {
            let hw = thermoroute::inputs::load_calibrated_hardware(
                args.hardware.as_deref(),
                args.calibration.as_deref(),
            )?;
            fidelity::bench(&hw, args.jobs.unwrap_or(20), args.rate.unwrap_or(5.0), json)
        }
        Suite::Diagnostics => diagnostics::bench(
            sizes.iter().copied().max().unwrap_or(256),
            args.chains.unwrap_or(4),
            args.samples,
            args.write_program.as_deref(),
            json,
        ),
    }
}

/// A graph compiled into the binary, so that suites measure the same
/// workload wherever they run; `name` is only used in messages.
fn embedded_graph(name: &str, json: &str) -> Result<Graph> {
    Graph::from_json(Path::new(name), json).map_err(|e| anyhow::anyhow!("{e}"))
}
