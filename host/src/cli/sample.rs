//! `thermoroute sample`, on the CPU, the GPU or the simulated TSU.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use thermoroute::backends::SamplingTask;
use thermoroute::backends::tsu::{TsuDriver, tsu_draws};
use thermoroute::inputs::load_hardware;
use thermoroute::model::EProgram;
use thermoroute::sample_report::{
    AdapterProvenance, InfeasibleReport, SampleReport, write_draws_json,
};
use thermoroute::sampler::{self, Draws, SampleError, SampleOptions};

use super::{EXIT_INFEASIBLE, fmt_opt, print_json, progress_bar, report_model_error, table};

#[derive(Args, Debug)]
pub struct SampleArgs {
    /// EProgram JSON file (see `thermoroute schema eprogram`).
    program: PathBuf,
    /// Backend to sample on.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    backend: Backend,
    /// Master seed: the same seed gives the same draws on the same backend.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Worker threads (default: one per core). Draws do not depend on it.
    /// At most 1024.
    #[arg(long, value_parser = super::parse_threads)]
    threads: Option<usize>,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write every draw to FILE as {"chains","samples","draws"}.
    #[arg(long, value_name = "FILE")]
    draws: Option<PathBuf>,
    /// Hardware description (TOML) naming the TSU chip (`[tsu] chip`,
    /// `chip_file`, `precision_tolerance`, `chip_faults`); default devkit.
    #[arg(long, value_name = "HW.toml")]
    hardware: Option<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Cpu,
    Gpu,
    Tsu,
}

/// What a TSU run adds to a sample report.
struct TsuExtra {
    cycles: u64,
    energy_j: f64,
    device_seconds: f64,
    image_hash: String,
    chip_hash: String,
}

pub fn sample(args: SampleArgs) -> Result<ExitCode> {
    let path = args.program.as_path();
    let program = match EProgram::load(path) {
        Ok(p) => p,
        Err(e) => return Ok(report_model_error(&e)),
    };
    let mut tsu_extra = None;
    let mut adapter = None;
    let result = match args.backend {
        Backend::Gpu => {
            let gpu = thermoroute::backends::gpu::GpuDevice::shared()?;
            let draws = gpu.sample(&program, args.seed)?;
            let info = &gpu.info;
            adapter = Some(AdapterProvenance {
                name: info.name.clone(),
                backend: info.backend.clone(),
                device_type: info.device_type.clone(),
                driver: info.driver.clone(),
                timing: info.timing.clone(),
            });
            Ok(draws)
        }
        Backend::Tsu => {
            sample_on_tsu(&program, args.seed, args.hardware.as_deref())?.map(|(draws, extra)| {
                tsu_extra = Some(extra);
                draws
            })
        }
        Backend::Cpu => sample_with_progress(&program, args.seed, args.threads, !args.json),
    };
    let draws = match result {
        Ok(d) => d,
        Err(SampleError::Infeasible(inf)) => {
            eprintln!(
                "infeasible: {}: {}: {}",
                path.display(),
                inf.constraint,
                inf.explanation
            );
            if args.json {
                print_json(&InfeasibleReport {
                    status: "infeasible",
                    constraint: inf.constraint,
                    explanation: inf.explanation,
                    program_hash: program.canonical_hash(),
                })?;
            }
            return Ok(ExitCode::from(EXIT_INFEASIBLE));
        }
        Err(e) => return Err(e).with_context(|| format!("sampling {}", path.display())),
    };
    if let Some(file) = &args.draws {
        write_draws_file(&draws, file)
            .with_context(|| format!("writing draws to {}", file.display()))?;
    }
    let mut report = SampleReport::new(
        &program,
        &draws,
        args.seed,
        match args.backend {
            Backend::Tsu => "tsu",
            Backend::Gpu => "gpu-sim",
            Backend::Cpu => "cpu",
        },
    );
    report.provenance.adapter = adapter;
    if let Some(extra) = tsu_extra {
        report.stats.cycles = Some(extra.cycles);
        report.stats.energy_j = Some(extra.energy_j);
        report.stats.device_seconds = Some(extra.device_seconds);
        report.provenance.image_hash = Some(extra.image_hash);
        report.provenance.chip_hash = Some(extra.chip_hash);
    }
    if args.json {
        print_json(&report)?;
    } else {
        print_sample_table(path, &report);
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the `--draws FILE` document through a large buffer.
pub(crate) fn write_draws_file(draws: &Draws, file: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(file)?);
    write_draws_json(draws, &mut out)?;
    out.flush()
}

/// Samples a program on the simulated TSU; ineligible programs are errors
/// listing every reason.
fn sample_on_tsu(
    program: &EProgram,
    seed: u64,
    hardware: Option<&Path>,
) -> Result<Result<(Draws, TsuExtra), SampleError>> {
    let hw = load_hardware(hardware)?;
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

/// Samples, drawing a progress bar on stderr when it is a terminal and the
/// run is long enough to need one.
fn sample_with_progress(
    program: &EProgram,
    seed: u64,
    threads: Option<usize>,
    show: bool,
) -> Result<Draws, SampleError> {
    use std::io::IsTerminal;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let total = sampler::total_sweeps(&program.schedule);
    let updates = total.saturating_mul(program.n_vars() as u64);
    let show = show && std::io::stderr().is_terminal() && updates > 50_000_000;
    let counter = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        if show {
            scope.spawn(|| {
                let bar = progress_bar(total, "sampling {bar:40} {pos}/{len} sweeps  eta {eta}");
                while !done.load(Ordering::Relaxed) {
                    bar.set_position(counter.load(Ordering::Relaxed));
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                bar.finish_and_clear();
            });
        }
        let result = sampler::sample(
            program,
            SampleOptions {
                seed,
                threads,
                progress: Some(&counter),
            },
        );
        done.store(true, Ordering::Relaxed);
        result
    })
}

fn print_sample_table(path: &Path, r: &SampleReport) {
    let s = &r.provenance.schedule;
    println!(
        "{}: {} variables, {} chains x {} samples (warmup {}, {} sweep(s) apart), backend {}, seed {}",
        path.display(),
        r.marginals.len(),
        s.chains,
        s.samples,
        s.warmup,
        s.steps_per_sample,
        r.provenance.backend,
        r.provenance.seed
    );
    let mut t = table(["var", "P(+1) / P(state)", "R-hat", "ESS bulk"]);
    const SHOWN: usize = 24;
    for v in 0..r.marginals.len().min(SHOWN) {
        let p = match r.marginals[v] {
            Some(p) => format!("{p:.4}"),
            None => r.state_marginals[v]
                .iter()
                .map(|p| format!("{p:.3}"))
                .collect::<Vec<_>>()
                .join(" "),
        };
        t.add_row(vec![
            v.to_string(),
            p,
            fmt_opt(r.diagnostics.rhat[v], 4),
            fmt_opt(r.diagnostics.ess_bulk[v], 0),
        ]);
    }
    println!("{t}");
    if r.marginals.len() > SHOWN {
        println!(
            "... {} more variables (use --json for all)",
            r.marginals.len() - SHOWN
        );
    }
    let max_rhat = r.diagnostics.max_rhat;
    println!(
        "max R-hat {}   min ESS bulk {}   {}",
        fmt_opt(max_rhat, 4),
        fmt_opt(r.diagnostics.min_ess_bulk, 0),
        match max_rhat {
            Some(x) if x > 1.01 => "WARNING: R-hat > 1.01, chains have not converged",
            _ => "",
        }
    );
    println!(
        "{} updates in {:.3} s ({:.1} M updates/s)   program {}   draws {}",
        r.stats.spin_updates,
        r.stats.seconds,
        r.stats.updates_per_second / 1e6,
        r.provenance.program_hash,
        r.provenance.draws_hash
    );
    if let (Some(cycles), Some(energy), Some(device)) =
        (r.stats.cycles, r.stats.energy_j, r.stats.device_seconds)
    {
        println!(
            "TSU: {cycles} cycles, {:.3} ms device time, {:.3e} J   image {}",
            device * 1e3,
            energy,
            r.provenance.image_hash.as_deref().unwrap_or("-")
        );
    }
}
