//! The `run`, `explain` and `review` subcommands.

pub mod plugin;
pub mod tsu;
pub mod tui;
pub mod whatif;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use thermoroute::engine::{
    Arrivals, Engine, EngineConfig, JobClass, Mode, RecordedArrival, RunReport, Step,
};
use thermoroute::hardware::Hardware;
use thermoroute::model::Graph;
use thermoroute::perf::PerfTables;
use thermoroute::policy::Policy;
use thermoroute::review::{DEFAULT_REVIEW_FILE, ReviewQueue, ReviewStatus};
use thermoroute::trace::{JobStatus, TraceEvent, read_trace};

use crate::{EXIT_INFEASIBLE, print_json, report_model_error};

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModeArg {
    /// Run every node on its backend; measured time advances the clock.
    Execute,
    /// Draw durations from the performance model; compute nothing.
    Simulate,
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
    plugins: plugin::PolicyArgs,
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    let mut classes = Vec::new();
    for path in &args.graphs {
        let graph = match Graph::load(path) {
            Ok(g) => g,
            Err(e) => return Ok(report_model_error(&e)),
        };
        let name = graph.name.clone().unwrap_or_else(|| {
            path.file_stem()
                .map_or("graph".into(), |s| s.to_string_lossy().into_owned())
        });
        classes.push(JobClass { name, graph });
    }
    let mut hw = match &args.hardware {
        Some(p) => Hardware::load(p)?,
        None => Hardware::default(),
    };
    if let Some(file) = &args.calibration {
        thermoroute::calibration::Calibration::load(file)?.apply(&mut hw);
    }
    let tables = match &args.state {
        Some(p) => PerfTables::load(p)?,
        None => PerfTables::default(),
    };
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
    let mode = match args.mode {
        ModeArg::Execute => Mode::Execute,
        ModeArg::Simulate => Mode::Simulate,
    };
    let total_jobs = match &arrivals {
        Arrivals::Recorded(l) => l.len() as u64,
        _ => args.jobs,
    };
    let config = EngineConfig {
        mode,
        seed: args.seed,
        arrivals,
        mix: args.mix.clone(),
        trace: args.trace.clone(),
        record_jobs: args.json || total_jobs <= 20,
        reviews: Some(args.reviews.clone()),
        threads: args.threads,
    };
    let policy = args.plugins.build(&hw)?;
    let mut engine = Engine::new(classes, hw, policy, tables, config)?;
    let bar = (!args.json && total_jobs >= 10_000).then(|| {
        let bar = indicatif::ProgressBar::new(total_jobs);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {pos}/{len} jobs ended [{elapsed_precise}] {per_sec}",
            )
            .expect("valid template"),
        );
        bar
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

fn fmt_ms(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{v:.3}"))
}

fn print_run(r: &RunReport, trace: Option<&Path>) {
    if !r.jobs.is_empty() && r.jobs.len() <= 3 {
        for job in &r.jobs {
            let mut t = Table::new();
            t.load_preset(UTF8_FULL_CONDENSED);
            t.set_header(vec![
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
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(vec![
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
    let mut mix = Table::new();
    mix.load_preset(UTF8_FULL_CONDENSED);
    mix.set_header(vec!["class", "node", "backend mix"]);
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

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    } else {
        s.to_string()
    }
}

/// `thermoroute explain`: why a node went where it did, from a trace alone.
pub fn explain(trace: &Path, job: u64, node: &str, json: bool) -> Result<ExitCode> {
    let t = read_trace(trace)?;
    if t.torn_tail {
        eprintln!(
            "{}: the last line is incomplete (killed run?); explaining from the readable prefix",
            trace.display()
        );
    }
    let related: Vec<&TraceEvent> = t
        .events
        .iter()
        .filter(|e| event_is_about(e, job, node))
        .collect();
    if related.is_empty() {
        bail!("{}: no events for job {job} node {node:?}", trace.display());
    }
    if json {
        print_json(&related)?;
        return Ok(ExitCode::SUCCESS);
    }
    for e in related {
        match e {
            TraceEvent::Route {
                t_ms,
                attempt,
                chosen,
                candidates,
                budget,
                explanation,
                ..
            } => {
                println!(
                    "t={t_ms:.3} ms  route (attempt {attempt}): {}",
                    chosen.map_or("no target".into(), |c| format!("-> {c}"))
                );
                println!(
                    "  budget: deadline p50 {} ms, p95 {} ms (elapsed {:.3} ms), energy {} J, max error {}, timeout {:.3} ms",
                    fmt_ms(budget.deadline_p50_ms),
                    fmt_ms(budget.deadline_p95_ms),
                    budget.elapsed_ms,
                    budget.energy_j.map_or("-".into(), |e| format!("{e:.4}")),
                    budget.max_error.map_or("-".into(), |e| format!("{e}")),
                    budget.timeout_ms
                );
                let mut tab = Table::new();
                tab.load_preset(UTF8_FULL_CONDENSED);
                tab.set_header(vec![
                    "target",
                    "eligible",
                    "wait ms",
                    "p50 ms",
                    "p95 ms",
                    "energy J",
                    "error",
                    "cost (L+E+A+R)",
                    "verdict",
                ]);
                for c in candidates {
                    let verdict = if !c.eligible {
                        c.reasons
                            .iter()
                            .map(|r| r.to_string())
                            .collect::<Vec<_>>()
                            .join("; ")
                    } else if !c.violations.is_empty() {
                        format!("violates {}", c.violations.join(", "))
                    } else if c.queue_has_room == Some(false) {
                        "queue full".into()
                    } else if Some(c.target) == *chosen {
                        "CHOSEN".into()
                    } else {
                        "feasible, costlier".into()
                    };
                    let est = c.estimate;
                    tab.add_row(vec![
                        c.target.to_string(),
                        if c.eligible { "yes" } else { "no" }.into(),
                        est.map_or("-".into(), |e| format!("{:.3}", e.queue_wait_ms)),
                        est.map_or("-".into(), |e| format!("{:.3}", e.latency_p50_ms)),
                        est.map_or("-".into(), |e| format!("{:.3}", e.latency_p95_ms)),
                        est.map_or("-".into(), |e| format!("{:.2e}", e.energy_j)),
                        est.map_or("-".into(), |e| format!("{:.4}", e.error)),
                        c.cost.map_or("-".into(), |k| {
                            format!(
                                "{:.4} ({:.3}+{:.3}+{:.3}+{:.3})",
                                k.total, k.latency, k.energy, k.error, k.risk
                            )
                        }),
                        verdict,
                    ]);
                }
                println!("{tab}");
                println!("  why: {explanation}");
            }
            other => {
                let v = serde_json::to_value(other)?;
                println!(
                    "t={:.3} ms  {}: {}",
                    v["t_ms"].as_f64().unwrap_or(0.0),
                    v["event"].as_str().unwrap_or(""),
                    summarise_event(&v)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn summarise_event(v: &serde_json::Value) -> String {
    let mut obj = v.as_object().cloned().unwrap_or_default();
    for k in ["event", "t_ms", "job", "node", "output"] {
        obj.remove(k);
    }
    truncate(&serde_json::Value::Object(obj).to_string(), 160)
}

fn event_is_about(e: &TraceEvent, j: u64, n: &str) -> bool {
    match e {
        TraceEvent::Route { job, node, .. }
        | TraceEvent::Admit { job, node, .. }
        | TraceEvent::Reject { job, node, .. }
        | TraceEvent::Preempt { job, node, .. }
        | TraceEvent::Resume { job, node, .. }
        | TraceEvent::Start { job, node, .. }
        | TraceEvent::End { job, node, .. }
        | TraceEvent::Failure { job, node, .. }
        | TraceEvent::EarlyStop { job, node, .. }
        | TraceEvent::Gate { job, node, .. } => *job == j && node == n,
        _ => false,
    }
}

#[derive(Subcommand, Debug)]
pub enum ReviewCommand {
    /// List held effects (pending ones, or all with --all).
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Approve a held effect: it is applied.
    Approve {
        id: String,
        #[arg(long)]
        by: Option<String>,
        #[arg(long)]
        note: Option<String>,
    },
    /// Deny a held effect: it is dropped.
    Deny {
        id: String,
        #[arg(long)]
        by: Option<String>,
        #[arg(long)]
        note: Option<String>,
    },
}

pub fn review(file: &Path, command: ReviewCommand) -> Result<ExitCode> {
    let mut queue = ReviewQueue::open(file)?;
    match command {
        ReviewCommand::List { all, json } => {
            let items: Vec<_> = queue
                .items()
                .iter()
                .filter(|i| all || i.status == ReviewStatus::Pending)
                .collect();
            if json {
                print_json(&items)?;
            } else if items.is_empty() {
                println!(
                    "{}: nothing {}",
                    file.display(),
                    if all { "held" } else { "pending" }
                );
            } else {
                let mut t = Table::new();
                t.load_preset(UTF8_FULL_CONDENSED);
                t.set_header(vec![
                    "id", "status", "graph", "job", "node", "action", "risk", "why",
                ]);
                for i in items {
                    t.add_row(vec![
                        i.id.clone(),
                        format!("{:?}", i.status).to_lowercase(),
                        i.graph.clone(),
                        i.job.to_string(),
                        i.node.clone(),
                        i.action.clone(),
                        format!("{:?}", i.risk).to_lowercase(),
                        truncate(&i.reasons.join("; "), 80),
                    ]);
                }
                println!("{t}");
            }
        }
        ReviewCommand::Approve { id, by, note } => {
            let item = queue.decide(&id, true, by, note)?;
            println!(
                "{}: approved; effect {:?} ({}) applied",
                item.id, item.action, item.node
            );
        }
        ReviewCommand::Deny { id, by, note } => {
            let item = queue.decide(&id, false, by, note)?;
            println!(
                "{}: denied; effect {:?} ({}) dropped",
                item.id, item.action, item.node
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Simulate-mode throughput on the M/M/3 example with two priority classes:
/// every job is one routing decision (two candidates, one eligible), one
/// admission, one service draw and one learning-table update.
pub fn bench_scheduler(jobs: u64, json: bool) -> Result<ExitCode> {
    let load = |name: &str, text: &str| {
        Graph::from_json(Path::new(name), text).map_err(|e| anyhow::anyhow!("{e}"))
    };
    let classes = vec![
        JobClass {
            name: "mm3-interactive".into(),
            graph: load(
                "mm3-interactive.json",
                include_str!("../../../examples/graphs/mm3-interactive.json"),
            )?,
        },
        JobClass {
            name: "mm3-batch".into(),
            graph: load(
                "mm3-batch.json",
                include_str!("../../../examples/graphs/mm3-batch.json"),
            )?,
        },
    ];
    let hw = Hardware::from_toml(
        Path::new("mm3.toml"),
        include_str!("../../../examples/hardware/mm3.toml"),
    )?;
    let mut rows = Vec::new();
    for round in 0..3 {
        let config = EngineConfig {
            mode: Mode::Simulate,
            seed: round,
            arrivals: Arrivals::Poisson {
                jobs,
                rate_per_s: 2_700.0,
            },
            mix: vec![3.0, 7.0],
            record_jobs: false,
            ..Default::default()
        };
        let policy = Policy::native(&hw);
        let start = std::time::Instant::now();
        let mut engine = Engine::new(
            classes.clone(),
            hw.clone(),
            policy,
            PerfTables::default(),
            config,
        )?;
        engine.run()?;
        let seconds = start.elapsed().as_secs_f64();
        let r = engine.report();
        let row = serde_json::json!({
            "round": round,
            "jobs": r.submitted,
            "completed": r.completed,
            "rejected": r.rejected,
            "decisions": r.counters.decisions,
            "seconds": seconds,
            "jobs_per_s": r.submitted as f64 / seconds,
            "decisions_per_s": r.counters.decisions as f64 / seconds,
            "interactive_p95_ms": r.classes[0].latency_p95_ms,
            "batch_p95_ms": r.classes[1].latency_p95_ms,
        });
        if !json {
            eprintln!(
                "M/M/3, 2 classes, {} jobs: {:.2} M jobs/s, {:.2} M decisions/s ({:.3} s); p95 interactive {:.3} ms, batch {:.3} ms",
                r.submitted,
                r.submitted as f64 / seconds / 1e6,
                r.counters.decisions as f64 / seconds / 1e6,
                seconds,
                r.classes[0].latency_p95_ms.unwrap_or(f64::NAN),
                r.classes[1].latency_p95_ms.unwrap_or(f64::NAN)
            );
        }
        rows.push(row);
    }
    if json {
        print_json(&serde_json::json!({ "benchmark": "scheduler-simulate-mm3", "results": rows }))?;
    }
    Ok(ExitCode::SUCCESS)
}
