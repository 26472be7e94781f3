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
use thermoroute::tui::{Action, App, Input, Live, LogKind, View, command_for, render};
use thermoroute_tests::{bin, example};

fn key(c: char) -> KeyEvent {
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
    let w = app.window_ms;
    app.handle_key(key('z'));
    assert_eq!(app.window_ms, w / 2.0);
    app.handle_key(key('Z'));
    app.handle_key(key('Z'));
    assert_eq!(app.window_ms, w * 2.0);
    app.handle_key(key('['));
    assert_eq!(app.pan_ms, w / 2.0);
    app.handle_key(key(']'));
    app.handle_key(key(']'));
    assert_eq!(app.pan_ms, 0.0);
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

fn screen(app: &App) -> String {
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
