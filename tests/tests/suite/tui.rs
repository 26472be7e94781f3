//! The terminal UI: key handling as a state machine, a live change steering
//! the engine, snapshots of every view, broken traces, and the real binary
//! under tmux.

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use thermoroute::device::{Device, Target};
use thermoroute::engine::{Arrivals, Engine, EngineConfig, JobClass, Mode};
use thermoroute::hardware::Hardware;
use thermoroute::policy::Policy;
use thermoroute::trace::{TraceEvent, TraceTail, read_trace};
use thermoroute::tui::model::pack_lanes;
use thermoroute::tui::{Action, App, Input, Live, LogKind, View, Window, command_for, render};
use thermoroute_tests::{bin, example};

pub(super) fn key(c: char) -> KeyEvent {
    KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
}

fn example_trace() -> PathBuf {
    PathBuf::from(example("traces/fraud-triage.jsonl"))
}

fn replay_app() -> App {
    let mut tail = TraceTail::open(&example_trace()).unwrap();
    let events = tail.poll().unwrap();
    tail.finish();
    assert!(tail.stopped.is_none());
    App::replay("fraud-triage.jsonl", events)
}

#[test]
fn keys_drive_playback_views_and_filters() {
    let mut app = replay_app();
    assert_eq!(app.view, View::Timeline);
    assert_eq!(app.model.applied, 1, "only the header at t = 0");
    // d: just past the first routing decision.
    app.handle_key(key('d'));
    assert!(matches!(
        app.events[app.model.applied - 1],
        TraceEvent::Route { .. }
    ));
    assert_eq!(app.model.decisions.len(), 1);
    // n steps one event; b steps back.
    let at = app.model.applied;
    app.handle_key(key('n'));
    assert_eq!(app.model.applied, at + 1);
    app.handle_key(key('b'));
    assert_eq!(app.model.applied, at);
    // Views by number and Tab.
    app.handle_key(key('2'));
    assert_eq!(app.view, View::Decision);
    app.handle_key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE));
    assert_eq!(app.view, View::Health);
    // Selecting older decisions stops at the oldest.
    for _ in 0..5 {
        app.handle_key(key('d'));
    }
    assert_eq!(app.model.decisions.len(), 6);
    for _ in 0..10 {
        app.handle_key(key('k'));
    }
    assert_eq!(app.selected, 5);
    app.handle_key(key('j'));
    assert_eq!(app.selected, 4);
    // Play: the clock advances with wall time at the chosen speed.
    app.handle_key(key(' '));
    assert!(app.playing);
    app.handle_key(key('+'));
    let (clock, speed) = (app.clock_ms, app.speed);
    app.tick(0.5);
    assert!((app.clock_ms - (clock + 0.5 * speed)).abs() < 1e-9);
    app.handle_key(key(' '));
    assert!(!app.playing);
    // Run to the end, then search and filter the events log.
    app.advance_to(f64::INFINITY);
    assert_eq!(app.model.jobs_ended, 20);
    app.handle_key(key('/'));
    assert_eq!((app.view, app.input), (View::Events, Input::Search));
    for c in "7".chars() {
        app.handle_key(key(c));
    }
    app.handle_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    assert_eq!(app.input, Input::Normal);
    let hits = app.visible_log();
    assert!(!hits.is_empty());
    assert!(
        hits.iter()
            .all(|l| l.job == Some(7) || l.text.contains('7'))
    );
    app.handle_key(key('/'));
    app.handle_key(KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE));
    assert!(app.search.is_empty());
    app.handle_key(key('c'));
    assert_eq!(app.filter, Some(LogKind::ALL[0]));
    for _ in 0..LogKind::ALL.len() {
        app.handle_key(key('c'));
    }
    assert_eq!(app.filter, None, "the filter cycles back to all");
    // Help opens with ? and any key closes it without acting.
    app.handle_key(key('?'));
    assert!(app.show_help);
    assert!(app.handle_key(key('q')).is_empty());
    assert!(!app.show_help && !app.quit);
    // Steering keys need a live engine.
    assert!(app.handle_key(key('t')).is_empty());
    assert!(app.status.as_deref().unwrap().contains("live"));
    assert_eq!(app.handle_key(key('q')), vec![Action::Quit]);
    assert!(app.quit);
}

#[test]
fn zoom_and_pan_change_the_window() {
    let mut app = replay_app();
    // A replay opens fitted to the whole trace.
    assert_eq!(app.window, Window::Fit);
    let (first, last) = app.trace_span();
    assert!(last > first + 1000.0, "{first}..{last}");
    let (l, r) = app.window_range();
    assert_eq!((l, r), (first, last));
    // z halves the span around its centre; [ pans back a quarter.
    app.handle_key(key('z'));
    let (l2, r2) = app.window_range();
    assert!(((r2 - l2) - (r - l) / 2.0).abs() < 1e-9);
    assert!(((l2 + r2) - (l + r)).abs() < 1e-9);
    app.handle_key(key('['));
    let (l3, r3) = app.window_range();
    assert!((l3 - (l2 - (r2 - l2) / 4.0)).abs() < 1e-9);
    assert!(((r3 - l3) - (r2 - l2)).abs() < 1e-9);
    app.handle_key(key(']'));
    assert!((app.window_range().0 - l2).abs() < 1e-9);
    // Out again as far as the whole trace: fitted; 0 fits from anywhere.
    app.handle_key(key('Z'));
    assert_eq!(app.window, Window::Fit);
    app.handle_key(key('z'));
    app.handle_key(key('z'));
    assert_ne!(app.window, Window::Fit);
    app.handle_key(key('0'));
    assert_eq!(app.window, Window::Fit);
}

#[test]
fn live_the_window_follows_the_clock() {
    let events = read_trace(&example_trace()).unwrap().events;
    let mut app = App::live("live", live_state());
    app.push_events(events[..200].iter().cloned());
    let (_, r) = app.window_range();
    assert_eq!(r, app.model.now_ms);
    // Zoomed in, it keeps its width and its right edge at now.
    app.handle_key(key('z'));
    let Window::Follow { width_ms } = app.window else {
        panic!("{:?}", app.window)
    };
    app.push_events(events[200..400].iter().cloned());
    let (l, r) = app.window_range();
    assert_eq!(r, app.model.now_ms);
    assert!((r - l - width_ms).abs() < 1e-9);
    // Panned back it stays put; forward to now it follows again.
    app.handle_key(key('['));
    assert!(matches!(app.window, Window::Fixed { .. }));
    app.handle_key(key(']'));
    assert!(matches!(app.window, Window::Follow { .. }));
}

fn live_state() -> Live {
    Live {
        paused: false,
        rate_per_s: 20.0,
        offline: vec![],
        weights: Default::default(),
        weight: 0,
        plugin_policy: false,
        has_plugins: false,
    }
}

/// The screen's row whose lane title is `device lane`.
fn lane_row(screen: &str, device: Device, lane: usize) -> &str {
    let title = format!("│{} {lane} ", device.name());
    screen
        .lines()
        .find(|l| l.starts_with(&title))
        .unwrap_or_else(|| panic!("no lane {title:?}:\n{screen}"))
}

/// Every execution's node id is on the row of the lane it was packed on.
fn assert_every_node_on_its_lane(app: &App, screen: &str) {
    let m = app.timeline_model();
    assert!(!m.executions.is_empty());
    let (lanes, _) = pack_lanes(&m.executions);
    for (e, lane) in m.executions.iter().zip(lanes) {
        let row = lane_row(screen, e.device, lane);
        assert!(
            row.contains(&e.node) && row.contains(e.target.name()),
            "{} of job {} not on {} {lane}:\n{screen}",
            e.node,
            e.job,
            e.device.name()
        );
    }
}

fn five_job_app() -> App {
    let graph = thermoroute::model::Graph::load(Path::new(&example("graphs/mm3-interactive.json")))
        .unwrap();
    let (_, events) = thermoroute_tests::run_engine_traced(
        vec![graph],
        Hardware::default(),
        EngineConfig {
            mode: Mode::Simulate,
            seed: 1,
            arrivals: Arrivals::AtOnce { jobs: 5 },
            ..Default::default()
        },
    );
    App::replay("five.jsonl", events)
}

#[test]
fn a_replay_opens_fitted_with_real_units_and_labelled_bars() {
    let app = five_job_app();
    let screen = screen(&app);
    insta::assert_snapshot!("timeline_fitted", screen);
    assert_every_node_on_its_lane(&app, &screen);
    // The axis: several distinct ticks in one real unit.
    let axis = screen.lines().nth(3).unwrap();
    let ticks: Vec<&str> = axis
        .split_whitespace()
        .filter(|w| w.parse::<f64>().is_ok())
        .collect();
    assert!(ticks.len() >= 3, "{axis}");
    assert!(!axis.contains("0 µs … 0 µs"));
    let mut distinct = ticks.clone();
    distinct.dedup();
    assert_eq!(distinct, ticks);
}

#[test]
fn the_binary_s_five_job_trace_shows_every_node_on_its_device_lane() {
    // The target: `run mm3-interactive --jobs 5 --trace T`, then
    // `replay T`: its first screen shows every node id that ran.
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let out = Process::new(bin())
        .current_dir(dir.path())
        .args([
            "run",
            &example("graphs/mm3-interactive.json"),
            "--jobs",
            "5",
            "--trace",
            trace.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut tail = TraceTail::open(&trace).unwrap();
    let app = App::replay("t.jsonl", tail.poll().unwrap());
    assert_eq!(app.timeline_model().executions.len(), 5);
    assert_every_node_on_its_lane(&app, &screen(&app));
}

#[test]
fn a_selected_bar_says_where_it_ran_and_why() {
    let mut app = replay_app();
    // The fifth bar of the trace, selected from the fitted window.
    for _ in 0..5 {
        app.handle_key(key('j'));
    }
    let i = app.selected_bar.unwrap();
    assert_eq!(i, 4);
    let e = app.timeline_model().executions[i].clone();
    let TraceEvent::Route { explanation, .. } = &app.events[e.decision.unwrap()] else {
        panic!("not a routing decision")
    };
    let screen = screen(&app);
    insta::assert_snapshot!("timeline_selected", screen);
    let flat: String = screen.split('│').collect::<Vec<_>>().join(" ");
    for want in [
        format!("job {}", e.job),
        format!("node {}", e.node),
        format!("on {}", e.target),
        "start ".into(),
        "duration ".into(),
        "why: ".into(),
    ] {
        assert!(flat.contains(&want), "{want:?} missing:\n{screen}");
    }
    let first_words: String = explanation
        .split_whitespace()
        .take(4)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        flat.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .contains(&first_words),
        "{first_words:?} missing:\n{screen}"
    );
    // k goes back one bar and stops at the first.
    for _ in 0..10 {
        app.handle_key(key('k'));
    }
    assert_eq!(app.selected_bar, Some(0));
}

pub(super) fn header(hw: Hardware) -> TraceEvent {
    TraceEvent::Header {
        format: thermoroute::trace::TRACE_FORMAT.into(),
        version: thermoroute::trace::TRACE_VERSION,
        mode: "simulate".into(),
        seed: 0,
        policy: "native".into(),
        classes: vec!["c".into()],
        hardware: Box::new(hw),
        class_qos: vec![],
        part: 0,
    }
}

fn start(t_ms: f64, job: u64, target: Target) -> TraceEvent {
    TraceEvent::Start {
        t_ms,
        job,
        node: format!("n{job}"),
        target,
    }
}

fn end(t_ms: f64, job: u64, target: Target) -> TraceEvent {
    TraceEvent::End {
        t_ms,
        job,
        node: format!("n{job}"),
        target,
        status: thermoroute::trace::NodeStatus::Completed,
        service_ms: 1.0,
        energy_j: 0.0,
        measured: false,
        output: None,
    }
}

#[test]
fn lanes_are_the_hardware_s_slots_whatever_the_order_at_equal_times() {
    // An older trace: at t = 2 and t = 4 the next task's start was written
    // before the previous task's end, on a TSU with one slot.
    let events = vec![
        header(Hardware::default()),
        start(0.0, 0, Target::Tsu),
        start(2.0, 1, Target::Tsu),
        end(2.0, 0, Target::Tsu),
        start(4.0, 2, Target::Tsu),
        end(4.0, 1, Target::Tsu),
        end(6.0, 2, Target::Tsu),
        start(6.0, 3, Target::Cpu),
        end(7.0, 3, Target::Cpu),
    ];
    let app = App::replay("old.jsonl", events);
    let screen = screen(&app);
    insta::assert_snapshot!("timeline_packed", screen);
    assert!(!screen.contains("tsu 1"), "{screen}");
    assert_eq!(
        screen.lines().filter(|l| l.starts_with("│tsu ")).count(),
        1,
        "{screen}"
    );
    assert_every_node_on_its_lane(&app, &screen);
}

/// The most executions a device has running at once when lanes are given
/// out greedily in trace order (what an old UI did).
fn greedy_lanes(events: &[TraceEvent]) -> std::collections::BTreeMap<Device, usize> {
    let mut running: std::collections::BTreeMap<Device, usize> = Default::default();
    let mut most: std::collections::BTreeMap<Device, usize> = Default::default();
    for e in events {
        match e {
            TraceEvent::Start { target, .. } | TraceEvent::Resume { target, .. } => {
                let n = running.entry(target.device()).or_default();
                *n += 1;
                let m = most.entry(target.device()).or_default();
                *m = (*m).max(*n);
            }
            TraceEvent::End { target, .. } | TraceEvent::Preempt { target, .. } => {
                *running.entry(target.device()).or_default() -= 1;
            }
            _ => {}
        }
    }
    most
}

#[test]
fn the_engine_writes_an_end_before_the_next_start_at_equal_times() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let mut engine = posterior_engine(&trace);
    engine.run().unwrap();
    drop(engine);
    let events = read_trace(&trace).unwrap().events;
    let hw = Hardware::default();
    // A busy TSU with one slot: back-to-back tasks at equal times.
    let back_to_back = events
        .windows(2)
        .filter(|w| match (&w[0], &w[1]) {
            (
                TraceEvent::End {
                    t_ms: a, target: x, ..
                },
                TraceEvent::Start {
                    t_ms: b, target: y, ..
                },
            ) => a == b && x.device() == y.device(),
            _ => false,
        })
        .count();
    assert!(back_to_back > 0, "{back_to_back}");
    for (device, most) in greedy_lanes(&events) {
        assert!(most <= hw.slots(device), "{device:?}: {most} at once");
    }
}

#[test]
fn the_events_log_is_in_words_and_search_finds_them() {
    use serde_json::json;
    let events = vec![
        header(Hardware::default()),
        TraceEvent::Control {
            t_ms: 1.0,
            command: json!({ "command": "set_online", "device": "tsu", "online": false }),
        },
        TraceEvent::Control {
            t_ms: 2.0,
            command: json!({ "command": "set_rate", "per_s": 30.0 }),
        },
        TraceEvent::Control {
            t_ms: 3.0,
            command: json!({ "command": "set_weights", "weights": { "latency": 2.0, "energy": 1.0, "error": 1.0, "risk": 1.0 } }),
        },
        TraceEvent::Failure {
            t_ms: 4.0,
            job: 7,
            node: "posterior".into(),
            kind: thermoroute::trace::FailureKind::BackendUnavailable,
            action: thermoroute::trace::FailureAction::Fallback,
            detail: "tsu went offline".into(),
        },
        TraceEvent::Control {
            t_ms: 5.0,
            command: json!({ "command": "set_online", "device": "tsu", "online": true }),
        },
        TraceEvent::Control {
            t_ms: 6.0,
            command: json!({ "command": "pause" }),
        },
    ];
    let mut app = App::replay("steered.jsonl", events);
    app.advance_to(f64::INFINITY);
    app.handle_key(key('4'));
    let texts: Vec<&str> = app.model.log.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(
        texts,
        [
            "tsu offline",
            "arrival rate set to 30 jobs/s",
            "cost weights set: latency 2, energy 1, error 1, risk 1",
            "backend unavailable: falls back to another target: tsu went offline",
            "tsu online",
            "engine paused",
        ]
    );
    assert!(!texts.iter().any(|t| t.contains('{')), "no raw JSON");
    insta::assert_snapshot!("events_in_words", screen(&app));
    app.handle_key(key('/'));
    for c in "OFFLINE".chars() {
        app.handle_key(key(c));
    }
    app.handle_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE));
    let hits: Vec<&str> = app.visible_log().iter().map(|l| l.text.as_str()).collect();
    assert_eq!(
        hits,
        [
            "tsu offline",
            "backend unavailable: falls back to another target: tsu went offline"
        ]
    );
    insta::assert_snapshot!("events_search_offline", screen(&app));
}

fn posterior_engine(trace: &Path) -> Engine {
    let graph = thermoroute::model::Graph::load(Path::new(&example("graphs/posterior-batch.json")))
        .unwrap();
    let mut hw = Hardware::default();
    hw.gpu.count = 0;
    // A TSU fast enough (by throughput, not the devkit chip's 42 ms) to
    // take every job at 200 jobs/s while it is online.
    hw.tsu.service = thermoroute::hardware::TsuService::Throughput;
    Engine::new(
        vec![JobClass {
            name: "posterior".into(),
            graph,
        }],
        hw.clone(),
        Policy::native(&hw),
        Default::default(),
        EngineConfig {
            mode: Mode::Simulate,
            seed: 9,
            arrivals: Arrivals::Poisson {
                jobs: 2_000,
                rate_per_s: 200.0,
            },
            trace: Some(trace.to_path_buf()),
            record_jobs: false,
            ..Default::default()
        },
    )
    .unwrap()
}

fn sampling_targets(events: &[TraceEvent]) -> Vec<Target> {
    events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Admit { target, .. }
                if target.device() != Device::Cpu || *target == Target::CpuRef =>
            {
                Some(*target)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn taking_the_tsu_offline_in_the_ui_changes_later_routing() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("live.jsonl");
    let mut engine = posterior_engine(&trace);
    engine.flush_trace().unwrap();
    let mut tail = TraceTail::open(&trace).unwrap();
    let mut app = App::live(
        "live",
        Live {
            paused: false,
            rate_per_s: 200.0,
            offline: vec![],
            weights: Default::default(),
            weight: 0,
            plugin_policy: false,
            has_plugins: false,
        },
    );
    engine.run_until(2_000.0).unwrap();
    engine.flush_trace().unwrap();
    app.push_events(tail.poll().unwrap());
    let before = sampling_targets(&app.events);
    assert!(
        !before.is_empty() && before.iter().all(|t| *t == Target::Tsu),
        "{before:?}"
    );
    let seen = app.events.len();

    let actions = app.handle_key(key('t'));
    assert_eq!(actions, vec![Action::SetOnline(Device::Tsu, false)]);
    for a in &actions {
        engine.command(command_for(a).unwrap()).unwrap();
    }
    engine.run_until(4_000.0).unwrap();
    engine.flush_trace().unwrap();
    app.push_events(tail.poll().unwrap());
    let after = sampling_targets(&app.events[seen..]);
    assert!(
        !after.is_empty() && after.iter().all(|t| *t != Target::Tsu),
        "{after:?}"
    );
    // The change itself is in the trace, so the session replays exactly.
    assert!(
        app.model
            .log
            .iter()
            .any(|l| l.kind == LogKind::Control && l.text.contains("tsu"))
    );
    // And back online: the TSU serves again.
    let seen = app.events.len();
    let actions = app.handle_key(key('t'));
    assert_eq!(actions, vec![Action::SetOnline(Device::Tsu, true)]);
    engine.command(command_for(&actions[0]).unwrap()).unwrap();
    engine.run_until(6_000.0).unwrap();
    engine.flush_trace().unwrap();
    app.push_events(tail.poll().unwrap());
    assert!(sampling_targets(&app.events[seen..]).contains(&Target::Tsu));
}

pub(super) fn screen(app: &App) -> String {
    let mut terminal = Terminal::new(TestBackend::new(100, 30)).unwrap();
    terminal.draw(|f| render::draw(f, app)).unwrap();
    let buffer = terminal.backend().buffer().clone();
    let mut out = String::new();
    for y in 0..buffer.area.height {
        for x in 0..buffer.area.width {
            out.push_str(buffer[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

#[test]
fn each_view_renders_as_its_snapshot() {
    let mut app = replay_app();
    // Half-way: decisions made, work running and done, jobs ended.
    let half = app.events.len() / 2;
    while app.model.applied < half {
        app.step();
    }
    for view in ['1', '2', '3', '4'] {
        app.handle_key(key(view));
        insta::assert_snapshot!(format!("view_{view}"), screen(&app));
    }
    app.handle_key(key('?'));
    insta::assert_snapshot!("help", screen(&app));
}

#[test]
fn broken_traces_open_up_to_the_last_valid_line() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(example_trace()).unwrap();
    let lines: Vec<&str> = text.lines().collect();

    // Cut mid-line: everything before the cut is shown, and where it stopped.
    let torn = dir.path().join("torn.jsonl");
    let mut cut = lines[..100].join("\n");
    cut.push('\n');
    cut.push_str(&lines[100][..lines[100].len() / 2]);
    std::fs::write(&torn, &cut).unwrap();
    let mut tail = TraceTail::open(&torn).unwrap();
    let events = tail.poll().unwrap();
    tail.finish();
    assert_eq!(events.len(), 100);
    let stopped = tail.stopped.clone().unwrap();
    assert!(stopped.contains("line 101 is incomplete"), "{stopped}");
    let mut app = App::replay("torn", events);
    app.status = tail.stopped.clone();
    assert!(screen(&app).contains("line 101 is incomplete"));

    // Garbage in the middle: stop there and say which line.
    let bad = dir.path().join("bad.jsonl");
    let mut broken: Vec<&str> = lines[..50].to_vec();
    broken.push("{\"event\": \"route\", oops");
    broken.extend(&lines[50..80]);
    std::fs::write(&bad, broken.join("\n") + "\n").unwrap();
    let mut tail = TraceTail::open(&bad).unwrap();
    assert_eq!(tail.poll().unwrap().len(), 50);
    assert!(
        tail.stopped
            .as_deref()
            .unwrap()
            .contains("stopped at line 51")
    );
    assert!(tail.poll().unwrap().is_empty());

    // An unknown format version is a clear error, not a partial replay.
    let future = dir.path().join("future.jsonl");
    std::fs::write(
        &future,
        lines[0].replace("\"version\":1", "\"version\":99") + "\n",
    )
    .unwrap();
    let e = TraceTail::open(&future)
        .unwrap()
        .poll()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("version 99") && e.contains("this build reads"),
        "{e}"
    );
    // The binary says the same and exits non-zero without touching the terminal.
    let out = Process::new(bin())
        .args(["replay", future.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("version 99"));
}

#[test]
fn follow_mode_reads_what_a_writer_appends() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(example_trace()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let file = dir.path().join("growing.jsonl");
    std::fs::write(&file, lines[..10].join("\n") + "\n").unwrap();
    let mut tail = TraceTail::open(&file).unwrap();
    let mut app = App::replay("growing", tail.poll().unwrap());
    app.follow = true;
    app.advance_to(f64::INFINITY);
    assert_eq!(app.model.applied, 10);
    // Half a line, then the rest: only whole lines are shown.
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    let half = lines[10].len() / 2;
    f.write_all(&lines[10].as_bytes()[..half]).unwrap();
    app.push_events(tail.poll().unwrap());
    assert_eq!(app.model.applied, 10);
    f.write_all(&lines[10].as_bytes()[half..]).unwrap();
    f.write_all(b"\n").unwrap();
    f.write_all((lines[11..20].join("\n") + "\n").as_bytes())
        .unwrap();
    app.push_events(tail.poll().unwrap());
    assert_eq!(app.model.applied, 20);
    assert!(tail.stopped.is_none());
}

fn tmux(args: &[&str]) -> String {
    let out = Process::new("tmux").args(args).output().expect(
        "tmux runs (scripts/test.sh installs it): the end-to-end UI test drives the real binary in it",
    );
    assert!(
        out.status.success(),
        "tmux {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Waits until the pane shows `needle`.
fn wait_for(session: &str, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pane = tmux(&["capture-pane", "-p", "-t", session]);
        if pane.contains(needle) {
            return pane;
        }
        assert!(
            Instant::now() < deadline,
            "never showed {needle:?}:\n{pane}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_binary_replays_the_example_trace_under_tmux() {
    let session = format!("thermoroute-e2e-{}", std::process::id());
    let command = format!("{} replay {}", bin().display(), example_trace().display());
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "110",
        "-y",
        "32",
        &command,
    ]);
    let result = std::panic::catch_unwind(|| {
        wait_for(&session, "1 Timeline");
        wait_for(&session, "event 1/");
        // Three routing decisions, then the decisions view.
        tmux(&["send-keys", "-t", &session, "d", "d", "d", "2"]);
        let pane = wait_for(&session, "decisions (3, newest first)");
        assert!(pane.contains("why it went there"), "{pane}");
        assert!(pane.contains("decided by: cost=native"), "{pane}");
        assert!(
            pane.contains("▶"),
            "the chosen candidate is marked:\n{pane}"
        );
        // Health, then the events log after playing to the end.
        tmux(&["send-keys", "-t", &session, "3"]);
        wait_for(&session, "latency and SLOs");
        tmux(&[
            "send-keys",
            "-t",
            &session,
            "+",
            "+",
            "+",
            "+",
            "+",
            "+",
            "+",
            "+",
            "+",
            "+",
            " ",
        ]);
        wait_for(&session, "jobs ended 20");
        tmux(&["send-keys", "-t", &session, "4"]);
        wait_for(&session, "events:");
        tmux(&["send-keys", "-t", &session, "?"]);
        wait_for(&session, "keys (any key closes)");
        tmux(&["send-keys", "-t", &session, "x", "q"]);
        // The process exits and the terminal is restored.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Process::new("tmux")
            .args(["has-session", "-t", &session])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            assert!(Instant::now() < deadline, "q did not quit");
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let _ = Process::new("tmux")
        .args(["kill-session", "-t", &session])
        .output();
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
    let _ = read_trace(&example_trace()).unwrap();
}
