//! `thermoroute replay` and `thermoroute tui`: the terminal loop around the
//! pure [`thermoroute::tui::App`].

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use crossterm::event::{self, Event, KeyEventKind};

use thermoroute::engine::{Arrivals, Command, Engine, EngineConfig};
use thermoroute::hardware::Hardware;
use thermoroute::inputs::{load_hardware, load_job_classes};
use thermoroute::perf::PerfTables;
use thermoroute::policy::Policy;
use thermoroute::trace::TraceTail;
use thermoroute::tui::{Action, App, Live, command_for, render};

use super::plugin::PolicyArgs;
use super::run::ModeArg;

/// Frames per second of the UI loop.
const FRAME: Duration = Duration::from_millis(33);

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// A trace written by `run --trace` (or by `tui`). One bounded by
    /// `--trace-max` is read part by part (`T.jsonl`, `T.1.jsonl`, …); when
    /// its oldest parts were deleted, replay says so.
    trace: PathBuf,
    /// Keep reading as a running `thermoroute run --trace` appends to it.
    #[arg(long)]
    follow: bool,
}

#[derive(Args, Debug)]
pub struct TuiArgs {
    /// Workload graph(s); each is a job class.
    #[arg(required = true)]
    graphs: Vec<PathBuf>,
    #[arg(long, value_name = "HW.toml")]
    hardware: Option<PathBuf>,
    /// Arrival rate at start, jobs per second (r/R change it live).
    #[arg(long, default_value_t = 20.0)]
    rate: f64,
    /// Jobs to submit in all.
    #[arg(long, default_value_t = 1_000_000)]
    jobs: u64,
    #[arg(long, value_enum, default_value_t = ModeArg::Simulate)]
    mode: ModeArg,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where the session's trace goes (replay it exactly with `replay`).
    #[arg(
        long,
        value_name = "OUT.jsonl",
        default_value = ".thermoroute/tui-trace.jsonl"
    )]
    trace: PathBuf,
    /// Bound the session trace's size on disk (`256MiB`, `10MB`, plain
    /// bytes): it rotates into parts of SIZE/4 (`T.jsonl`, `T.1.jsonl`, …,
    /// each with the header line) and the oldest is deleted when a fifth
    /// starts; `replay` reads the parts in order and says what was dropped.
    #[arg(long, value_name = "SIZE", default_value = "256MiB", value_parser = super::parse_trace_max)]
    trace_max: u64,
    #[command(flatten)]
    plugins: PolicyArgs,
}

/// Runs `frame` until the app quits, restoring the terminal on the way out
/// (also on panic: `ratatui::init` installs that hook).
fn ui_loop(
    app: &mut App,
    mut frame: impl FnMut(&mut App, f64, Vec<Action>) -> Result<()>,
) -> Result<()> {
    let mut terminal = ratatui::init();
    let result = (|| -> Result<()> {
        let mut last = Instant::now();
        while !app.quit {
            terminal.draw(|f| render::draw(f, app))?;
            let mut actions = Vec::new();
            if event::poll(FRAME)?
                && let Event::Key(key) = event::read()?
                && key.kind == KeyEventKind::Press
            {
                actions = app.handle_key(key);
            }
            let dt = last.elapsed().as_secs_f64();
            last = Instant::now();
            frame(app, dt, actions)?;
        }
        Ok(())
    })();
    ratatui::restore();
    result
}

pub fn replay(args: ReplayArgs) -> Result<ExitCode> {
    let mut tail = TraceTail::open(&args.trace)?;
    let events = tail.poll()?;
    if !args.follow {
        tail.finish();
    }
    let mut source = args.trace.display().to_string();
    if tail.part() > 0 {
        source = format!("{source} (to part {})", tail.part());
    }
    if let Some(note) = &tail.dropped {
        eprintln!("{note}");
        source = format!("{source}; older events dropped");
    }
    let mut app = App::replay(&source, events);
    app.follow = args.follow;
    if args.follow {
        app.advance_to(f64::INFINITY);
    }
    app.status = tail.stopped.clone().or(tail.dropped.clone());
    ui_loop(&mut app, |app, dt, _actions| {
        if app.follow {
            let dropped = tail.dropped.clone();
            let new = tail.poll()?;
            if !new.is_empty() {
                app.push_events(new);
            }
            if tail.dropped != dropped {
                app.events_lost();
            }
            if let Some(s) = tail.stopped.as_ref().or(tail.dropped.as_ref()) {
                app.status = Some(s.clone());
            }
        }
        app.tick(dt);
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

pub fn tui(args: TuiArgs) -> Result<ExitCode> {
    let classes = load_job_classes(&args.graphs).map_err(|e| anyhow::anyhow!("{e}"))?;
    let hw = load_hardware(args.hardware.as_deref())?;
    let plugin_set = args.plugins.plugins()?;
    let has_plugins = !plugin_set.is_empty();
    let build_plugins = |hw: &Hardware| -> Result<Policy> { args.plugins.build(hw) };
    let policy = build_plugins(&hw)?;
    if let Some(dir) = args.trace.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let weights = hw.weights;
    let mut engine = Engine::new(
        classes,
        hw.clone(),
        policy,
        PerfTables::default(),
        EngineConfig {
            mode: args.mode.into(),
            seed: args.seed,
            arrivals: Arrivals::Poisson {
                jobs: args.jobs,
                rate_per_s: args.rate,
            },
            trace: Some(args.trace.clone()),
            trace_max: Some(args.trace_max),
            record_jobs: false,
            ..Default::default()
        },
    )?;
    engine.flush_trace()?;
    let mut tail = TraceTail::open(&args.trace)?;
    let mut app = App::live(
        &args.trace.display().to_string(),
        Live {
            paused: false,
            rate_per_s: args.rate,
            offline: Vec::new(),
            weights,
            weight: 0,
            plugin_policy: has_plugins,
            has_plugins,
        },
    );
    // Live: virtual time runs at wall speed unless changed with +/-.
    app.speed = 1000.0;
    app.push_events(tail.poll()?);
    let mut finished = false;
    ui_loop(&mut app, |app, dt, actions| {
        for action in actions {
            if let Some(command) = command_for(&action) {
                engine.command(command)?;
            } else if action == Action::TogglePolicy {
                let plugin = app.live.as_ref().is_some_and(|l| l.plugin_policy);
                let next = if plugin {
                    build_plugins(&hw)?
                } else {
                    Policy::native(&hw)
                };
                engine.command(Command::SwapPolicy(next))?;
            }
        }
        let paused = app.live.as_ref().is_some_and(|l| l.paused);
        if !paused && !finished {
            let step = engine.run_until(engine.now_ms() + dt * app.speed)?;
            finished = step == thermoroute::engine::Step::Finished;
            if finished {
                app.status = Some("every job has ended; q quits".into());
            }
        }
        engine.flush_trace()?;
        let dropped = tail.dropped.clone();
        app.push_events(tail.poll()?);
        if tail.dropped != dropped {
            // The trace rotated past parts before they were read.
            app.events_lost();
            app.status = tail.dropped.clone();
        }
        Ok(())
    })?;
    drop(engine);
    eprintln!(
        "session trace: {} (replay it with `thermoroute replay {}`)",
        args.trace.display(),
        args.trace.display()
    );
    Ok(ExitCode::SUCCESS)
}
