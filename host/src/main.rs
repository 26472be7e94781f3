//! The `thermoroute` command line.

mod cli;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use thermoroute::model::eprogram::Schedule;
use thermoroute::model::{EProgram, Graph, ModelError};
use thermoroute::sample_report::{AdapterProvenance, DrawsFile, InfeasibleReport, SampleReport};
use thermoroute::sampler::{self, SampleError, SampleOptions};
use thermoroute::workloads::pm_j_lattice;

/// Exit code for a valid request whose constraints cannot be met.
const EXIT_INFEASIBLE: u8 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "thermoroute",
    version,
    about = "Route mixed compute graphs (control, tensor, NN, energy-based sampling) to CPU, GPU or TSU under QoS constraints",
    long_about = "thermoroute samples energy-based programs (EPrograms) with chromatic block Gibbs \
                  sampling, checks convergence (rank-normalised split R-hat, bulk ESS), and routes \
                  the nodes of workload graphs to CPU, GPU or TSU under QoS targets, gating every \
                  side effect on the evidence behind it.\n\n\
                  Start with `thermoroute sample examples/programs/chain.json` or \
                  `thermoroute run examples/graphs/fraud-triage.json`."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Sample an EProgram and report marginals, diagnostics and provenance.
    ///
    /// Exit codes: 0 sampled, 1 bad input, 3 infeasible (clamps contradict a constraint).
    Sample {
        /// EProgram JSON file (see `thermoroute schema eprogram`).
        program: PathBuf,
        /// Backend to sample on.
        #[arg(long, value_enum, default_value_t = Backend::Cpu)]
        backend: Backend,
        /// Master seed: the same seed gives the same draws on the same backend.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Worker threads (default: one per core). Draws do not depend on it.
        #[arg(long)]
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
    },
    /// What-if experiments: run the cross product of loads, hardware,
    /// policy and QoS variants (simulate mode, in parallel) and compare them
    /// with 95% confidence intervals; `whatif merge` combines shards.
    Whatif(cli::whatif::WhatifArgs),
    /// Export a trace for other tools: `--perfetto TRACE.jsonl OUT.json`
    /// writes Chrome trace-event JSON for ui.perfetto.dev (a track per device
    /// lane, queue-depth and energy counters, routing decisions as instants).
    Export {
        /// The trace to convert.
        #[arg(long, value_name = "TRACE.jsonl")]
        perfetto: PathBuf,
        /// Where to write the JSON.
        out: PathBuf,
    },
    /// Replay a trace in the terminal UI: a timeline per device, every
    /// routing decision and why, queue and SLO health, an events log.
    /// `--follow` watches a trace a running `thermoroute run` still writes.
    /// Press ? for the keys.
    Replay(cli::tui::ReplayArgs),
    /// Interactive simulation in the terminal UI: the engine runs live and
    /// you steer it — pause, arrival rate (r/R), GPU/TSU offline (g/t), cost
    /// weights (w, </>), native vs plugin policy (p) — while routing, queues,
    /// latency and energy react. Every action is in the session's trace.
    Tui(cli::tui::TuiArgs),
    /// Policy plugins: write a template (`new`), build it into a WebAssembly
    /// component (`build`), and test a component (`check`).
    Plugin {
        #[command(subcommand)]
        command: cli::plugin::PluginCommand,
    },
    /// Inspect the TSU: compile a program for the chip and show the image.
    Tsu {
        #[command(subcommand)]
        command: cli::tsu::TsuCommand,
    },
    /// Measure each backend's error against exact enumeration on a suite of
    /// small programs, and write the per-backend error table `run
    /// --calibration` uses for the accuracy term.
    Calibrate(cli::tsu::CalibrateArgs),
    /// Check an EProgram or a workload graph and list every problem with its JSON path.
    ///
    /// Exit codes: 0 valid, 1 invalid, 3 valid but infeasible.
    Validate {
        /// A graph (has `nodes`) or an EProgram.
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Print the JSON Schema of EProgram files, graph files, or both.
    Schema {
        #[arg(value_enum)]
        which: Option<SchemaKind>,
    },
    /// Route and run jobs of workload graphs under QoS: routing, admission,
    /// budgets, gating, failure handling and learning, on a virtual clock.
    ///
    /// Each graph is a job class. `--mode execute` (default) really runs every
    /// node; `--mode simulate` models durations for fast what-if runs over
    /// millions of jobs. Effects the gate holds wait in the review queue
    /// (`thermoroute review list`).
    ///
    /// Exit codes: 0 finished (for one job: completed or rejected), 1 bad
    /// input or (one job) failed, 3 (one job) infeasible.
    Run(cli::RunArgs),
    /// Explain from a trace why a node of a job went where it did.
    Explain {
        /// A trace written by `run --trace`.
        trace: PathBuf,
        #[arg(long)]
        job: u64,
        #[arg(long)]
        node: String,
        #[arg(long)]
        json: bool,
    },
    /// List, approve or deny effects held for human review.
    Review {
        /// The review queue file.
        #[arg(long, value_name = "FILE", default_value = thermoroute::review::DEFAULT_REVIEW_FILE)]
        file: PathBuf,
        #[command(subcommand)]
        command: cli::ReviewCommand,
    },
    /// Benchmarks: the Gibbs sampler on ±J lattices (default), the scheduler
    /// in simulate mode (`--suite scheduler`), the TSU simulator (`--suite
    /// tsu`), policy plugins (`--suite plugins`), the GPU sampler (`--suite gpu`).
    Bench {
        /// What to measure: the Gibbs sampler on lattices, the scheduler in
        /// simulate mode on the M/M/3 example (jobs/s, decisions/s), the TSU
        /// simulator (simulated cell updates/s, energy per sample), or
        /// routing decisions/s with each cost-model plugin against the
        /// native one, with compile, cache-load and instantiation times; or
        /// the GPU sampler's spin updates/s on ±J lattices (at least 32
        /// chains) on the adapter wgpu finds.
        #[arg(long, value_enum, default_value_t = Suite::Sampler)]
        suite: Suite,
        /// Scheduler and plugins suites: jobs to simulate (default 2,000,000
        /// for the scheduler, 20,000 for plugins).
        #[arg(long)]
        jobs: Option<u64>,
        /// Plugins suite: cost-model components to measure (default: the
        /// committed Rust, Python and JavaScript ones, once built with
        /// `plugin build`).
        #[arg(long = "plugin", value_name = "PLUGIN.wasm")]
        plugins: Vec<PathBuf>,
        /// Lattice sides.
        #[arg(long, value_delimiter = ',', default_values_t = vec![64, 256])]
        sizes: Vec<usize>,
        /// Thread counts to compare.
        #[arg(long, value_delimiter = ',', default_values_t = vec![1, 2])]
        threads: Vec<usize>,
        /// Chains per run (run in parallel across threads).
        #[arg(long, default_value_t = 2)]
        chains: u64,
        /// Target updates per measurement (sets the sweep count).
        #[arg(long, default_value_t = 400_000_000)]
        updates: u64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Suite {
    Sampler,
    Scheduler,
    Tsu,
    Plugins,
    Gpu,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    Cpu,
    Gpu,
    Tsu,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum SchemaKind {
    Eprogram,
    Graph,
}

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    let cli = Cli::parse();
    match dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `thermoroute explain ... | head` closes stdout early; end quietly like
/// other Unix tools instead of printing a panic.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Sample {
            program,
            backend,
            seed,
            threads,
            json,
            draws,
            hardware,
        } => sample(
            &program,
            backend,
            seed,
            threads,
            json,
            draws.as_deref(),
            hardware.as_deref(),
        ),
        Command::Tsu { command } => cli::tsu::tsu(command),
        Command::Plugin { command } => cli::plugin::plugin(command),
        Command::Replay(args) => cli::tui::replay(args),
        Command::Tui(args) => cli::tui::tui(args),
        Command::Whatif(args) => cli::whatif::whatif(args),
        Command::Export { perfetto, out } => {
            let trace = thermoroute::trace::read_trace(&perfetto)?;
            if trace.torn_tail {
                eprintln!(
                    "{}: the last line is incomplete; exported the readable prefix",
                    perfetto.display()
                );
            }
            let doc = thermoroute::export::perfetto(&trace.events);
            std::fs::write(&out, serde_json::to_vec(&doc)?)
                .with_context(|| format!("writing {}", out.display()))?;
            let n = doc["traceEvents"].as_array().map_or(0, Vec::len);
            eprintln!(
                "{}: {n} events (open it in https://ui.perfetto.dev)",
                out.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Calibrate(args) => cli::tsu::calibrate(args),
        Command::Validate { file, json } => validate(&file, json),
        Command::Schema { which } => {
            let doc = match which {
                Some(SchemaKind::Eprogram) => {
                    serde_json::to_value(schemars::schema_for!(EProgram))?
                }
                Some(SchemaKind::Graph) => serde_json::to_value(schemars::schema_for!(Graph))?,
                None => serde_json::json!({
                    "eprogram": schemars::schema_for!(EProgram),
                    "graph": schemars::schema_for!(Graph),
                }),
            };
            print_json(&doc)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Run(args) => cli::run(args),
        Command::Explain {
            trace,
            job,
            node,
            json,
        } => cli::explain(&trace, job, &node, json),
        Command::Review { file, command } => cli::review(&file, command),
        Command::Bench {
            suite: Suite::Scheduler,
            jobs,
            json,
            ..
        } => cli::bench_scheduler(jobs.unwrap_or(2_000_000), json),
        Command::Bench {
            suite: Suite::Plugins,
            jobs,
            plugins,
            json,
            ..
        } => cli::plugin::bench_plugins(&plugins, jobs.unwrap_or(20_000), json),
        Command::Bench {
            suite: Suite::Gpu,
            sizes,
            chains,
            json,
            ..
        } => bench_gpu(&sizes, chains, json),
        Command::Bench {
            suite: Suite::Tsu,
            json,
            ..
        } => cli::tsu::bench_tsu(json),
        Command::Bench {
            sizes,
            threads,
            chains,
            updates,
            json,
            ..
        } => bench(&sizes, &threads, chains, updates, json),
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Prints a model error to stderr, one line per problem, naming the file.
fn report_model_error(err: &ModelError) -> ExitCode {
    match err {
        ModelError::Invalid { file, issues } => {
            for issue in issues {
                eprintln!(
                    "error: {}: {}: {}",
                    file.display(),
                    issue.path,
                    issue.reason
                );
            }
        }
        other => eprintln!("error: {other}"),
    }
    ExitCode::FAILURE
}

fn sample(
    path: &Path,
    backend: Backend,
    seed: u64,
    threads: Option<usize>,
    json: bool,
    draws_path: Option<&Path>,
    hardware: Option<&Path>,
) -> Result<ExitCode> {
    let program = match EProgram::load(path) {
        Ok(p) => p,
        Err(e) => return Ok(report_model_error(&e)),
    };
    let mut tsu_extra = None;
    let mut adapter = None;
    let result = if backend == Backend::Gpu {
        let gpu = thermoroute::backends::gpu::GpuDevice::shared()?;
        let draws = gpu.sample(&program, seed)?;
        let info = &gpu.info;
        adapter = Some(AdapterProvenance {
            name: info.name.clone(),
            backend: info.backend.clone(),
            device_type: info.device_type.clone(),
            driver: info.driver.clone(),
            timing: info.timing.clone(),
        });
        Ok(draws)
    } else if backend == Backend::Tsu {
        match cli::tsu::sample_on_tsu(&program, seed, hardware)? {
            Ok((draws, extra)) => {
                tsu_extra = Some(extra);
                Ok(draws)
            }
            Err(e) => Err(e),
        }
    } else {
        sample_with_progress(&program, seed, threads, !json)
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
            if json {
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
    if let Some(file) = draws_path {
        let doc = DrawsFile::from(&draws);
        let text = serde_json::to_vec(&doc)?;
        std::fs::write(file, text)
            .with_context(|| format!("writing draws to {}", file.display()))?;
    }
    let mut report = SampleReport::new(
        &program,
        &draws,
        seed,
        match backend {
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
    if json {
        print_json(&report)?;
    } else {
        print_sample_table(path, &report);
    }
    Ok(ExitCode::SUCCESS)
}

/// Spin updates per second of the GPU sampler on ±J lattices, on whatever
/// adapter wgpu finds (its name is printed).
fn bench_gpu(sizes: &[usize], chains: u64, json: bool) -> Result<ExitCode> {
    let gpu = thermoroute::backends::gpu::GpuDevice::shared()?;
    // A GPU needs many chains to fill; 32 at least.
    let chains = chains.max(32);
    eprintln!(
        "adapter: {} ({}, {})",
        gpu.info.name, gpu.info.backend, gpu.info.device_type
    );
    let mut rows = Vec::new();
    let schedule = |sweeps: u64| Schedule {
        warmup: sweeps,
        samples: 1,
        steps_per_sample: 1,
        chains,
    };
    // Lattices of each size, then a sparse degree-16 graph as large as the
    // largest lattice (the shape the GPU target is stated for).
    type Make = Box<dyn Fn(Schedule) -> EProgram>;
    let mut workloads: Vec<(String, Make)> = sizes
        .iter()
        .map(|&side| {
            let make: Make = Box::new(move |s| pm_j_lattice(side, 0.5, 0.1, 1, s));
            (format!("{side}x{side} lattice"), make)
        })
        .collect();
    if let Some(&side) = sizes.iter().max() {
        let n = side * side;
        let make: Make = Box::new(move |s| thermoroute::workloads::sparse_pm_j(n, 16, 0.3, 1, s));
        workloads.push((format!("{n}-spin sparse graph, degree 16"), make));
    }
    for (name, make) in &workloads {
        // A short run sizes the measured one to about two seconds.
        let t = std::time::Instant::now();
        gpu.sample(&make(schedule(10)), 1)?;
        let per_sweep = t.elapsed().as_secs_f64() / 11.0;
        let sweeps = ((2.0 / per_sweep) as u64).clamp(20, 100_000);
        let draws = gpu.sample(&make(schedule(sweeps)), 2)?;
        let rate = draws.spin_updates as f64 / draws.seconds;
        if !json {
            println!(
                "{name}, {chains} chains, {} sweeps: {:.1} M updates/s ({:.3} flips/ns)",
                sweeps + 1,
                rate / 1e6,
                rate / 1e9
            );
        }
        rows.push(serde_json::json!({
            "adapter": gpu.info.name,
            "backend": gpu.info.backend,
            "workload": name,
            "chains": chains,
            "sweeps": sweeps + 1,
            "updates_per_s": rate,
        }));
    }
    // Matrix product throughput: 512^3, after one warm-up call.
    let n = 512;
    let a: Vec<f32> = (0..n * n)
        .map(|i| ((i % 97) as f32 - 48.0) / 97.0)
        .collect();
    gpu.matmul(&a, n, n, &a, n)?;
    let t = std::time::Instant::now();
    const REPS: u32 = 3;
    let mut busy = 0.0;
    for _ in 0..REPS {
        busy += gpu.matmul(&a, n, n, &a, n)?.1.busy_seconds;
    }
    let seconds = t.elapsed().as_secs_f64() / f64::from(REPS);
    let flops = 2.0 * (n as f64).powi(3);
    let gflops = flops / seconds / 1e9;
    let kernel_gflops = flops / (busy / f64::from(REPS)) / 1e9;
    if !json {
        println!("matmul {n}x{n}x{n} (f32, upload and readback included): {gflops:.2} GFLOP/s");
        println!(
            "matmul {n}x{n}x{n} kernel only ({} timing): {kernel_gflops:.2} GFLOP/s",
            gpu.info.timing
        );
    }
    rows.push(serde_json::json!({
        "adapter": gpu.info.name,
        "matmul_n": n,
        "gflops": gflops,
        "kernel_gflops": kernel_gflops,
        "timing": gpu.info.timing,
    }));
    if json {
        print_json(&rows)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Samples, drawing a progress bar on stderr when it is a terminal and the
/// run is long enough to need one.
fn sample_with_progress(
    program: &EProgram,
    seed: u64,
    threads: Option<usize>,
    show: bool,
) -> Result<sampler::Draws, SampleError> {
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
                let bar = indicatif::ProgressBar::new(total).with_style(
                    indicatif::ProgressStyle::with_template(
                        "sampling {bar:40} {pos}/{len} sweeps  eta {eta}",
                    )
                    .expect("valid template"),
                );
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

fn fmt_opt(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
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
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header(vec!["var", "P(+1) / P(state)", "R-hat", "ESS bulk"]);
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
        table.add_row(vec![
            v.to_string(),
            p,
            fmt_opt(r.diagnostics.rhat[v], 4),
            fmt_opt(r.diagnostics.ess_bulk[v], 0),
        ]);
    }
    println!("{table}");
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

fn validate(path: &Path, json: bool) -> Result<ExitCode> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    // Malformed JSON still says what it meant to be.
    let is_graph = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => v.as_object().is_some_and(|o| o.contains_key("nodes")),
        Err(_) => text.contains("\"nodes\""),
    };
    let kind = if is_graph { "graph" } else { "eprogram" };
    let checked: Result<Option<thermoroute::model::Infeasible>, ModelError> = if is_graph {
        Graph::from_json(path, &text).map(|g| {
            g.nodes.iter().enumerate().find_map(|(i, n)| {
                n.sample().and_then(|s| {
                    s.program
                        .feasibility(&format!("$.nodes[{i}].sample.program"))
                        .err()
                })
            })
        })
    } else {
        EProgram::from_json(path, &text).map(|p| p.feasibility("$").err())
    };
    let (code, doc) = match &checked {
        Ok(None) => (
            ExitCode::SUCCESS,
            serde_json::json!({ "file": path, "kind": kind, "valid": true, "issues": [] }),
        ),
        Ok(Some(inf)) => {
            eprintln!(
                "infeasible: {}: {}: {}",
                path.display(),
                inf.constraint,
                inf.explanation
            );
            (
                ExitCode::from(EXIT_INFEASIBLE),
                serde_json::json!({ "file": path, "kind": kind, "valid": true, "infeasible": inf, "issues": [] }),
            )
        }
        Err(e) => {
            report_model_error(e);
            (
                ExitCode::FAILURE,
                serde_json::json!({ "file": path, "kind": kind, "valid": false, "issues": e.issues() }),
            )
        }
    };
    if json {
        print_json(&doc)?;
    } else if matches!(checked, Ok(None)) {
        println!("{}: valid {kind}", path.display());
    }
    Ok(code)
}

fn bench(
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
