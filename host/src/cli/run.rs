//! `thermoroute run`: jobs of workload graphs through the engine.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use thermoroute::engine::{Arrivals, Engine, EngineConfig, Mode, RecordedArrival, RunReport, Step};
use thermoroute::inputs::{InputError, InputFiles, Inputs};
use thermoroute::review::DEFAULT_REVIEW_FILE;
use thermoroute::trace::JobStatus;

use super::plugin::PolicyArgs;
use super::{
    EXIT_INFEASIBLE, fmt_ms, print_json, progress_bar, report_model_error, table, truncate,
};

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeArg {
    /// Run every node on its backend; measured time advances the clock.
    Execute,
    /// Draw durations from the performance model; compute nothing.
    Simulate,
}

impl From<ModeArg> for Mode {
    fn from(mode: ModeArg) -> Self {
        match mode {
            ModeArg::Execute => Mode::Execute,
            ModeArg::Simulate => Mode::Simulate,
        }
    }
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Workload graph(s). Each graph is a job class (its QoS priority decides
    /// interactive or batch); arrivals pick a class by --mix.
    #[arg(required = true)]
    graphs: Vec<PathBuf>,
    /// Hardware description (TOML). Default: 8 CPU cores, one GPU, one TSU.
    #[arg(long, value_name = "HW.toml")]
    hardware: Option<PathBuf>,
    /// Jobs to submit.
    #[arg(long, default_value_t = 1)]
    jobs: u64,
    /// Poisson arrival rate, jobs per second of virtual time (default: all at once).
    #[arg(long, value_name = "PER_S")]
    rate: Option<f64>,
    /// Recorded arrivals: a JSON array of {"t_ms": ..., "class": k} (overrides --jobs/--rate).
    #[arg(long, value_name = "FILE")]
    arrivals: Option<PathBuf>,
    /// Relative frequency of each graph's jobs, e.g. `1,9`.
    #[arg(long, value_delimiter = ',')]
    mix: Vec<f64>,
    /// execute: really run every node; simulate: model durations (fast what-ifs).
    #[arg(long, value_enum, default_value_t = ModeArg::Execute)]
    mode: ModeArg,
    /// Write a JSON Lines trace (replay it with `explain`).
    #[arg(long, value_name = "OUT.jsonl")]
    trace: Option<PathBuf>,
    /// Bound the trace's size on disk, e.g. `256MiB`, `10MB` or plain bytes:
    /// it rotates into parts of SIZE/4 (`T.jsonl`, `T.1.jsonl`, …, each with
    /// the header line) and deletes the oldest when a fifth starts; `replay`
    /// and `explain` read the parts in order. Default: one unbounded file.
    #[arg(long, value_name = "SIZE", requires = "trace", value_parser = super::parse_trace_max)]
    trace_max: Option<u64>,
    /// Per-backend error table written by `thermoroute calibrate`: the
    /// accuracy term uses its measured biases.
    #[arg(long, value_name = "FILE")]
    calibration: Option<PathBuf>,
    /// Routing tables learned so far: read at start, written at the end.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Where effects held for review are queued (execute mode).
    #[arg(long, value_name = "FILE", default_value = DEFAULT_REVIEW_FILE)]
    reviews: PathBuf,
    /// Seed of arrivals, simulated durations and every sample node.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Sampler threads in execute mode (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Print one JSON document (every job with its nodes and candidates).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    plugins: PolicyArgs,
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    let files = InputFiles {
        graphs: &args.graphs,
        hardware: args.hardware.as_deref(),
        calibration: args.calibration.as_deref(),
        state: args.state.as_deref(),
    };
    let Inputs {
        classes,
        hardware: hw,
        tables,
    } = match files.load() {
        Ok(inputs) => inputs,
        Err(InputError::Graph(e)) => return Ok(report_model_error(&e)),
        Err(e) => return Err(e.into()),
    };
    let calibrated_fits = hw.calibrated.len();
    let arrivals = if let Some(file) = &args.arrivals {
        let text = std::fs::read_to_string(file)
            .with_context(|| format!("{}: cannot read", file.display()))?;
        let list: Vec<RecordedArrival> = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a list of arrivals", file.display()))?;
        Arrivals::Recorded(list)
    } else {
        match args.rate {
            Some(rate_per_s) => Arrivals::Poisson {
                jobs: args.jobs,
                rate_per_s,
            },
            None => Arrivals::AtOnce { jobs: args.jobs },
        }
    };
    let total_jobs = match &arrivals {
        Arrivals::Recorded(l) => l.len() as u64,
        _ => args.jobs,
    };
    let config = EngineConfig {
        mode: args.mode.into(),
        seed: args.seed,
        arrivals,
        mix: args.mix.clone(),
        trace: args.trace.clone(),
        trace_max: args.trace_max,
        record_jobs: args.json || total_jobs <= 20,
        reviews: Some(args.reviews.clone()),
        threads: args.threads,
    };
    let policy = args.plugins.build(&hw)?;
    let mut engine = Engine::new(classes, hw, policy, tables, config)?;
    let bar = (!args.json && total_jobs >= 10_000).then(|| {
        progress_bar(
            total_jobs,
            "{spinner} {pos}/{len} jobs ended [{elapsed_precise}] {per_sec}",
        )
    });
    let mut events: u64 = 0;
    while engine.step()? == Step::Progressed {
        events += 1;
        if events.is_multiple_of(65_536)
            && let Some(b) = &bar
        {
            b.set_position(engine.jobs_ended());
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if let Some(p) = &args.state {
        engine.tables().save(p)?;
    }
    let report = engine.report();
    if args.json {
        print_json(&report)?;
    } else {
        print_run(&report, args.trace.as_deref());
        println!("{}", service_model_line(calibrated_fits));
    }
    if report.jobs.len() == 1 && report.submitted == 1 {
        let job = &report.jobs[0];
        if let Some(e) = &job.explanation {
            eprintln!("job {}: {} ({e})", job.job, job.status.name());
        }
        return Ok(match job.status {
            JobStatus::Completed | JobStatus::Rejected => ExitCode::SUCCESS,
            JobStatus::Infeasible => ExitCode::from(EXIT_INFEASIBLE),
            JobStatus::Failed => ExitCode::FAILURE,
        });
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the service figures came from, so nobody mistakes defaults for
/// measurements.
fn service_model_line(calibrated_fits: usize) -> String {
    if calibrated_fits == 0 {
        "service figures: uncalibrated built-in defaults (run `thermoroute calibrate`, then \
         `--calibration FILE`); energy is modelled as device power x busy time"
            .into()
    } else {
        format!(
            "service figures: {calibrated_fits} model(s) measured on this machine by `calibrate`; \
             energy is modelled as device power x busy time"
        )
    }
}

fn print_run(r: &RunReport, trace: Option<&Path>) {
    if !r.jobs.is_empty() && r.jobs.len() <= 3 {
        for job in &r.jobs {
            let mut t = table([
                "node",
                "kind",
                "backend",
                "status",
                "ms",
                "chosen over / explanation",
            ]);
            for n in &job.nodes {
                let over: Vec<String> = n
                    .candidates
                    .iter()
                    .filter(|c| Some(c.target) != n.backend)
                    .map(|c| match (c.eligible, c.feasible, c.cost) {
                        (false, _, _) => format!("{} (ineligible)", c.target),
                        (true, false, _) => format!("{} (violates QoS)", c.target),
                        (true, true, Some(cost)) => format!("{} ({cost:.3})", c.target),
                        _ => c.target.to_string(),
                    })
                    .collect();
                let detail = n.explanation.clone().unwrap_or_else(|| over.join(", "));
                t.add_row(vec![
                    n.id.clone(),
                    n.kind.name().to_string(),
                    n.backend.map_or("-".into(), |b| b.to_string()),
                    serde_json::to_value(n.status)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default(),
                    fmt_ms(n.latency_ms),
                    truncate(&detail, 100),
                ]);
            }
            println!(
                "job {} ({}): {}{}",
                job.job,
                job.class,
                job.status.name(),
                job.explanation
                    .as_deref()
                    .map(|e| format!(" — {e}"))
                    .unwrap_or_default()
            );
            println!("{t}");
        }
    }
    let mut t = table([
        "class",
        "priority",
        "jobs",
        "done",
        "rejected",
        "infeasible",
        "failed",
        "p50 ms",
        "p95 ms",
        "p95 target",
        "energy J",
        "budget J",
        "SLO",
    ]);
    for c in &r.classes {
        t.add_row(vec![
            c.class.clone(),
            format!("{:?}", c.priority).to_lowercase(),
            c.submitted.to_string(),
            c.completed.to_string(),
            c.rejected.to_string(),
            c.infeasible.to_string(),
            c.failed.to_string(),
            fmt_ms(c.latency_p50_ms),
            fmt_ms(c.latency_p95_ms),
            fmt_ms(c.qos.latency_ms.map(|l| l.p95)),
            c.mean_energy_j.map_or("-".into(), |e| format!("{e:.4}")),
            c.energy_budget_j.map_or("-".into(), |e| format!("{e:.4}")),
            c.slo_attainment
                .map_or("-".into(), |s| format!("{:.1}%", 100.0 * s)),
        ]);
    }
    println!("{t}");
    let mut mix = table(["class", "node", "backend mix"]);
    for c in &r.classes {
        for n in &c.backend_mix {
            let m: Vec<String> = n.mix.iter().map(|(t, k)| format!("{t}: {k}")).collect();
            mix.add_row(vec![c.class.clone(), n.node.clone(), m.join(", ")]);
        }
    }
    println!("{mix}");
    let k = &r.counters;
    println!(
        "{} mode, {} jobs: {} completed, {} rejected, {} infeasible, {} failed; {} routing decisions, {} fallbacks, {} preemptions, {} timeouts, {} drift events; gate: {} allowed, {} held, {} denied",
        format!("{:?}", r.mode).to_lowercase(),
        r.submitted,
        r.completed,
        r.rejected,
        r.infeasible,
        r.failed,
        k.decisions,
        k.fallbacks,
        k.preemptions,
        k.timeouts,
        k.drift_events,
        k.gate_allow,
        k.gate_review,
        k.gate_deny
    );
    println!(
        "virtual time {:.3} ms, wall {:.3} s ({:.0} jobs/s)",
        r.virtual_ms,
        r.wall_s,
        r.submitted as f64 / r.wall_s.max(1e-9)
    );
    if let Some(p) = trace {
        println!(
            "trace: {} (explain a node: thermoroute explain {} --job J --node N)",
            p.display(),
            p.display()
        );
    }
}
