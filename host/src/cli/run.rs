//! `thermoroute run`: jobs of workload graphs through the engine.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use thermoroute::calibration::CalibrationError;
use thermoroute::engine::{
    Arrivals, Clock, Engine, EngineConfig, JobRecord, Mode, PluginFaults, RecordedArrival,
    RunReport, Step,
};
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

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockArg {
    /// Measured durations advance the clock (faithful, not repeatable).
    Measured,
    /// The service model's durations advance the clock (`[[perf]]` >
    /// `--calibration` fits > built-in): every node still computes, and one
    /// seed gives the same routing, admission, trace and report every run.
    Modelled,
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
    /// Execute mode: what advances the virtual clock.
    #[arg(long, value_enum, default_value_t = ClockArg::Measured)]
    clock: ClockArg,
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
    /// A calibration measured on another machine or build is refused; with
    /// this flag it is ignored with a warning and the built-in defaults
    /// serve instead.
    #[arg(long, requires = "calibration")]
    ignore_foreign_calibration: bool,
    /// Routing tables learned so far: read at start, written at the end.
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Where effects held for review are queued (execute mode): a SQLite
    /// database, the same file as `review --file`; a JSON queue of an
    /// earlier version there is imported once.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_REVIEW_FILE)]
    reviews: PathBuf,
    /// Seed of arrivals, simulated durations and every sample node.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Sampler threads in execute mode (default: one per core).
    /// At most 1024.
    #[arg(long, value_parser = super::parse_threads)]
    threads: Option<usize>,
    /// Print one JSON document (every job with its nodes and candidates;
    /// with --jobs-out, the summary only).
    #[arg(long)]
    json: bool,
    /// Write one compact JSON object per job to FILE (JSON Lines, in the
    /// order jobs end): job id, class, status, latency, energy, and each
    /// node's id, backend and status. Streams, so a run of millions of jobs
    /// keeps its memory flat; the full candidate lists stay in the trace.
    #[arg(long, value_name = "FILE.jsonl")]
    jobs_out: Option<PathBuf>,
    #[command(flatten)]
    plugins: PolicyArgs,
}

pub fn run(args: RunArgs) -> Result<ExitCode> {
    let mut files = InputFiles {
        graphs: &args.graphs,
        hardware: args.hardware.as_deref(),
        calibration: args.calibration.as_deref(),
        state: args.state.as_deref(),
    };
    let mut loaded = files.load();
    if args.ignore_foreign_calibration
        && let Err(InputError::Calibration(e @ CalibrationError::Foreign { .. })) = &loaded
    {
        tracing::warn!("{e}; ignored (--ignore-foreign-calibration): built-in defaults serve");
        eprintln!("warning: {e}; ignored, the built-in defaults serve instead");
        files.calibration = None;
        loaded = files.load();
    }
    let Inputs {
        classes,
        hardware: hw,
        tables,
    } = match loaded {
        Ok(inputs) => inputs,
        Err(InputError::Graph(e)) => return Ok(report_model_error(&e)),
        Err(e) => return Err(e.into()),
    };
    if let Some(p) = &args.state {
        thermoroute::perf::check_writable(p)?;
    }
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
        record_jobs: args.json || args.jobs_out.is_some() || total_jobs <= 20,
        reviews: Some(args.reviews.clone()),
        threads: args.threads,
        clock: match args.clock {
            ClockArg::Measured => Clock::Measured,
            ClockArg::Modelled => Clock::Modelled,
        },
    };
    let policy = args.plugins.build(&hw)?;
    let mut engine = Engine::new(classes, hw, policy, tables, config)?;
    let mut jobs_out = match &args.jobs_out {
        Some(p) => {
            engine = engine.brief_records();
            let file = std::fs::File::create(p)
                .with_context(|| format!("{}: cannot create", p.display()))?;
            Some(JobsOut::new(file))
        }
        None => None,
    };
    // `--json` alone: records leave the engine as jobs end and wait on disk.
    let mut spool = if args.json && jobs_out.is_none() {
        Some(JsonSpool::new()?)
    } else {
        None
    };
    let execute = args.mode == ModeArg::Execute;
    let bar = (execute || total_jobs >= 10_000).then(|| {
        progress_bar(
            total_jobs,
            "{spinner} {bar:30} {pos}/{len} jobs ended  elapsed {elapsed}  eta {eta}  {per_sec}",
        )
    });
    // Execute-mode steps are slow (real work): update on each; simulate
    // mode steps in microseconds: update now and then.
    let every: u64 = if execute { 1 } else { 65_536 };
    let mut events: u64 = 0;
    while engine.step()? == Step::Progressed {
        events += 1;
        if events.is_multiple_of(every) {
            if let Some(b) = &bar {
                b.set_position(engine.jobs_ended());
            }
            if let Some(out) = &mut jobs_out {
                out.write(engine.drain_records())?;
            }
            if let Some(s) = &mut spool {
                s.take(engine.drain_records())?;
            }
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let mut last_job = None;
    if let Some(s) = &mut spool {
        s.take(engine.drain_records())?;
        last_job = s.first.clone();
    }
    if let Some(mut out) = jobs_out {
        out.write(engine.drain_records())?;
        last_job = out.last.take();
        out.finish()
            .with_context(|| format!("{}: cannot write", display(&args.jobs_out)))?;
    }
    // A state file that cannot be written must not cost the report: print
    // it first, then the error (and fail).
    let state_error = args
        .state
        .as_ref()
        .and_then(|p| engine.tables().save(p).err());
    let report = engine.report();
    let mixing = engine.mixing_sources();
    if let Some(s) = spool {
        s.print(&report)?;
    } else if args.json {
        print_json(&report)?;
    } else {
        print_run(&report, args.trace.as_deref());
        println!("{}", service_model_line(calibrated_fits));
        if let Some(line) = mixing {
            println!("{line}");
        }
    }
    if let Some(e) = state_error {
        eprintln!("error: {e}; the learned tables were not saved (the report above is complete)");
        return Ok(ExitCode::FAILURE);
    }
    if let Some(job) = report.jobs.first().or(last_job.as_ref())
        && report.submitted == 1
    {
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

fn display(p: &Option<PathBuf>) -> String {
    p.as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

/// `run --json` without `--jobs-out`: the job records, taken from the
/// engine as jobs end, wait in a temporary file in job order (a small
/// reorder buffer holds those that end early), so a long run's memory stays
/// flat; at the end the document is the summary, then `"jobs"` copied from
/// the file, one compact record a line.
struct JsonSpool {
    file: std::io::BufWriter<std::fs::File>,
    /// The next job id to write, and the records that ended before it.
    next: u64,
    waiting: std::collections::BTreeMap<u64, JobRecord>,
    written: u64,
    /// The first record: a one-job run's exit code depends on it.
    first: Option<JobRecord>,
}

impl JsonSpool {
    fn new() -> Result<Self> {
        let file = tempfile::tempfile().context("cannot create a temporary file for --json")?;
        Ok(JsonSpool {
            file: std::io::BufWriter::with_capacity(1 << 20, file),
            next: 0,
            waiting: std::collections::BTreeMap::new(),
            written: 0,
            first: None,
        })
    }

    fn take(&mut self, jobs: impl Iterator<Item = JobRecord>) -> Result<()> {
        for j in jobs {
            self.waiting.insert(j.job, j);
        }
        while let Some(j) = self.waiting.remove(&self.next) {
            self.write(&j)?;
            self.next += 1;
        }
        Ok(())
    }

    fn write(&mut self, j: &JobRecord) -> Result<()> {
        use std::io::Write;
        if self.first.is_none() {
            self.first = Some(j.clone());
        }
        serde_json::to_writer(&mut self.file, j)?;
        self.file.write_all(b"\n")?;
        self.written += 1;
        Ok(())
    }

    /// Prints `{ summary..., "jobs": [ every record, in job order ] }`.
    fn print(mut self, report: &RunReport) -> Result<()> {
        use std::io::{BufRead, Seek, Write};
        // Whatever is left ends in job order too (ids need not be dense).
        for (_, j) in std::mem::take(&mut self.waiting) {
            self.write(&j)?;
        }
        let mut file = self
            .file
            .into_inner()
            .map_err(|e| anyhow::anyhow!("--json spool: {}", e.error()))?;
        file.rewind()?;
        // The report's fields in their own order (its drained, empty job
        // list left out), then the spooled one as the last field.
        let whole = serde_json::to_string_pretty(report)?;
        let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
        if self.written == 0 {
            writeln!(out, "{whole}")?;
            out.flush()?;
            return Ok(());
        }
        let head = whole
            .strip_suffix("\n}")
            .context("the run report is not a JSON object")?;
        write!(out, "{head},\n  \"jobs\": [")?;
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let sep = if i == 0 { "\n    " } else { ",\n    " };
            write!(out, "{sep}{}", line?)?;
        }
        writeln!(out, "\n  ]\n}}")?;
        out.flush()?;
        Ok(())
    }
}

/// `--jobs-out`: one compact JSON object per job, through a large buffer.
struct JobsOut {
    out: std::io::BufWriter<std::fs::File>,
    /// The last job written: a one-job run's exit code depends on it.
    last: Option<JobRecord>,
}

/// One line of `--jobs-out`.
#[derive(serde::Serialize)]
struct JobLine<'a> {
    job: u64,
    class: &'a str,
    status: JobStatus,
    latency_ms: f64,
    energy_j: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    explanation: Option<&'a str>,
    nodes: Vec<NodeLine<'a>>,
}

#[derive(serde::Serialize)]
struct NodeLine<'a> {
    id: &'a str,
    backend: Option<thermoroute::device::Target>,
    status: thermoroute::trace::NodeStatus,
}

impl JobsOut {
    fn new(file: std::fs::File) -> Self {
        JobsOut {
            out: std::io::BufWriter::with_capacity(1 << 20, file),
            last: None,
        }
    }

    fn write(&mut self, jobs: impl Iterator<Item = JobRecord>) -> Result<()> {
        use std::io::Write;
        for j in jobs {
            let line = JobLine {
                job: j.job,
                class: &j.class,
                status: j.status,
                latency_ms: j.latency_ms,
                energy_j: j.energy_j,
                explanation: j.explanation.as_deref(),
                nodes: j
                    .nodes
                    .iter()
                    .map(|n| NodeLine {
                        id: &n.id,
                        backend: n.backend,
                        status: n.status,
                    })
                    .collect(),
            };
            serde_json::to_writer(&mut self.out, &line)?;
            self.out.write_all(b"\n")?;
            self.last = Some(j);
        }
        Ok(())
    }

    fn finish(&mut self) -> std::io::Result<()> {
        use std::io::Write;
        self.out.flush()
    }
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
        "{} mode, {} jobs: {} completed, {} rejected, {} infeasible, {} failed; {} routing decisions, {} fallbacks, {} preemptions{}, {} timeouts, {} drift events; gate: {} allowed, {} held, {} denied",
        format!("{:?}", r.mode).to_lowercase(),
        r.submitted,
        r.completed,
        r.rejected,
        r.infeasible,
        r.failed,
        k.decisions,
        k.fallbacks,
        k.preemptions,
        if k.steals > 0 {
            format!(", {} steals", k.steals)
        } else {
            String::new()
        },
        k.timeouts,
        k.drift_events,
        k.gate_allow,
        k.gate_review,
        k.gate_deny
    );
    print_policy_faults(&r.policy_faults);
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

/// Guest output lines the run summary shows per faulting plugin.
const GUEST_LINES_SHOWN: usize = 12;

/// The policy faults per plugin: count, first reason and what the guest
/// printed, so a broken plugin is seen without `--json` or the trace.
fn print_policy_faults(faults: &[PluginFaults]) {
    if faults.is_empty() {
        return;
    }
    let total: u64 = faults.iter().map(|f| f.count).sum();
    println!(
        "policy faults: {total} (each answered by the fallback: native default, or the gate's fail-closed choice)"
    );
    for f in faults {
        println!(
            "  {} {}{}: {} fault(s); first ({}): {}",
            f.role,
            f.policy,
            f.path
                .as_deref()
                .map(|p| format!(" [{p}]"))
                .unwrap_or_default(),
            f.count,
            f.first_kind,
            f.first_reason
        );
        let printed = f.output.excerpt(GUEST_LINES_SHOWN);
        if !printed.is_empty() {
            println!("    the plugin printed:");
            for line in printed {
                println!("      {line}");
            }
        }
    }
}
