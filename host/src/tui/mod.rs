//! The terminal UI: state plus a pure render.
//!
//! [`App`] holds everything the screen shows; [`App::handle_key`] changes it
//! and returns [`Action`]s for the outside world (steering commands for a
//! live engine, quitting); [`render::draw`] depends only on the `App`. A
//! replay feeds trace events into the `App`; a live simulation feeds the
//! events its engine writes, so the two are one UI.

pub mod model;
pub mod render;
pub mod units;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::device::Device;
use crate::hardware::Weights;
use crate::trace::TraceEvent;
pub use model::{LogKind, Model};

/// The four views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    Timeline,
    Decision,
    Health,
    Events,
}

impl View {
    pub const ALL: [View; 4] = [View::Timeline, View::Decision, View::Health, View::Events];

    pub fn title(self) -> &'static str {
        match self {
            View::Timeline => "1 Timeline",
            View::Decision => "2 Decisions",
            View::Health => "3 Health",
            View::Events => "4 Events",
        }
    }
}

/// Something the UI asks of its driver.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Quit,
    /// Live mode: pause or resume the engine.
    SetPaused(bool),
    /// Live mode: a new arrival rate (jobs per second).
    SetRate(f64),
    /// Live mode: take a device offline or bring it back.
    SetOnline(Device, bool),
    /// Live mode: new cost weights.
    SetWeights(Weights),
    /// Live mode: switch between the native policy and the plugins given on
    /// the command line.
    TogglePolicy,
}

/// Where keystrokes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Normal,
    /// Typing a search in the events view.
    Search,
}

/// Live-engine state the UI shows and steers.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    pub paused: bool,
    pub rate_per_s: f64,
    pub offline: Vec<Device>,
    pub weights: Weights,
    /// Which weight `<`/`>` change: 0 latency, 1 energy, 2 error, 3 risk.
    pub weight: usize,
    pub plugin_policy: bool,
    pub has_plugins: bool,
}

/// What part of the trace the timeline shows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Window {
    /// The whole trace, first event to last (live and `--follow`: to now,
    /// so it follows the clock).
    Fit,
    /// The last `width_ms` up to now (live and `--follow`, zoomed).
    Follow { width_ms: f64 },
    /// A fixed span (zoomed or panned).
    Fixed { left_ms: f64, width_ms: f64 },
}

/// The narrowest span the timeline shows (1 ns).
const MIN_SPAN_MS: f64 = 1e-6;

/// The UI state.
#[derive(Debug, Clone)]
pub struct App {
    /// Every event known (replay: the whole file; follow/live: so far).
    pub events: Vec<TraceEvent>,
    /// Derived from `events[..model.applied]`.
    pub model: Model,
    /// Replay: derived from every event, for the timeline (which shows the
    /// whole trace, with the playback clock as a cursor). `None` live.
    pub full: Option<Model>,
    pub view: View,
    pub playing: bool,
    /// Virtual milliseconds per wall second while playing.
    pub speed: f64,
    /// Playback clock (virtual ms).
    pub clock_ms: f64,
    /// What the timeline shows.
    pub window: Window,
    /// The bar selected on the timeline (an index into the timeline's
    /// executions, [`App::timeline_model`]).
    pub selected_bar: Option<usize>,
    /// Selected decision, counted from the newest (0 = latest).
    pub selected: usize,
    pub filter: Option<LogKind>,
    pub search: String,
    pub input: Input,
    pub show_help: bool,
    /// A message for the status line (e.g. where a broken trace stopped).
    pub status: Option<String>,
    pub live: Option<Live>,
    /// `replay --follow`: new events are shown as they arrive.
    pub follow: bool,
    pub source: String,
    pub quit: bool,
}

impl App {
    /// A replay of `events` (header first), paused at the start.
    pub fn replay(source: &str, events: Vec<TraceEvent>) -> App {
        let mut app = App {
            events,
            model: Model::default(),
            full: None,
            view: View::Timeline,
            playing: false,
            speed: 10.0,
            clock_ms: 0.0,
            window: Window::Fit,
            selected_bar: None,
            selected: 0,
            filter: None,
            search: String::new(),
            input: Input::Normal,
            show_help: false,
            status: None,
            live: None,
            follow: false,
            source: source.to_string(),
            quit: false,
        };
        let mut full = Model::default();
        for (i, e) in app.events.iter().enumerate() {
            full.apply(i, e);
        }
        app.full = Some(full);
        // The header (and anything at t = 0) is shown from the start.
        app.advance_to(0.0);
        app
    }

    /// A live session: every event is shown as it arrives.
    pub fn live(source: &str, live: Live) -> App {
        let mut app = App::replay(source, Vec::new());
        app.full = None;
        app.live = Some(live);
        app.playing = true;
        app
    }

    /// Appends events (follow mode, live engine). In live mode they are
    /// applied at once.
    pub fn push_events(&mut self, events: impl IntoIterator<Item = TraceEvent>) {
        let from = self.events.len();
        self.events.extend(events);
        if let Some(full) = &mut self.full {
            for (i, e) in self.events.iter().enumerate().skip(from) {
                full.apply(i, e);
            }
        }
        if self.live.is_some() || self.follow {
            self.apply_until(self.events.len());
            self.clock_ms = self.model.now_ms;
        }
    }

    /// Some events never arrived (see [`Model::events_lost`]).
    pub fn events_lost(&mut self) {
        let t = self.model.now_ms;
        self.model.events_lost(t);
        if let Some(full) = &mut self.full {
            full.events_lost(t);
        }
    }

    fn apply_until(&mut self, end: usize) {
        while self.model.applied < end.min(self.events.len()) {
            let i = self.model.applied;
            let event = self.events[i].clone();
            self.model.apply(i, &event);
        }
    }

    /// Applies every event up to virtual time `t_ms`.
    pub fn advance_to(&mut self, t_ms: f64) {
        self.clock_ms = t_ms;
        while self.model.applied < self.events.len() {
            let i = self.model.applied;
            match model::event_time(&self.events[i]) {
                Some(t) if t > t_ms => break,
                _ => {
                    let event = self.events[i].clone();
                    self.model.apply(i, &event);
                }
            }
        }
    }

    /// Wall time passed while playing.
    pub fn tick(&mut self, wall_seconds: f64) {
        if self.playing && self.live.is_none() {
            self.advance_to(self.clock_ms + wall_seconds * self.speed);
            if self.model.applied >= self.events.len() {
                self.playing = false;
            }
        }
    }

    /// Applies exactly one more event.
    pub fn step(&mut self) {
        if self.model.applied < self.events.len() {
            let i = self.model.applied;
            let event = self.events[i].clone();
            self.model.apply(i, &event);
            self.clock_ms = self.model.now_ms;
        }
    }

    /// Rebuilds the model up to (not including) event `end`.
    fn rewind_to(&mut self, end: usize) {
        self.model = Model::default();
        self.apply_until(end.max(1));
        self.clock_ms = self.model.now_ms;
    }

    /// Steps to just after the next event matching `pred`.
    fn jump(&mut self, pred: fn(&TraceEvent) -> bool) {
        let from = self.model.applied;
        if let Some(offset) = self.events[from..].iter().position(pred) {
            self.apply_until(from + offset + 1);
            self.clock_ms = self.model.now_ms;
        } else {
            self.status = Some("no further match in the trace".into());
        }
    }

    fn live_action(&mut self, f: impl FnOnce(&mut Live) -> Option<Action>) -> Vec<Action> {
        match &mut self.live {
            Some(live) => f(live).into_iter().collect(),
            None => {
                self.status =
                    Some("steering keys work in `thermoroute tui` (live), not in a replay".into());
                Vec::new()
            }
        }
    }

    /// The log lines the events view shows (filter and search applied).
    pub fn visible_log(&self) -> Vec<&model::LogLine> {
        let needle = self.search.trim().to_lowercase();
        self.model
            .log
            .iter()
            .filter(|l| self.filter.is_none_or(|k| l.kind == k))
            .filter(|l| {
                needle.is_empty()
                    || l.job.is_some_and(|j| j.to_string() == needle)
                    || l.node.as_deref() == Some(needle.as_str())
                    || l.kind.name() == needle
                    || l.text.to_lowercase().contains(&needle)
            })
            .collect()
    }

    /// The model the timeline draws: the whole trace in a replay, what has
    /// happened so far live.
    pub fn timeline_model(&self) -> &Model {
        self.full.as_ref().unwrap_or(&self.model)
    }

    /// Live or following a growing trace: the timeline's right edge is now.
    pub fn following(&self) -> bool {
        self.live.is_some() || self.follow
    }

    /// First and last time of the trace (live: up to now).
    pub fn trace_span(&self) -> (f64, f64) {
        let first = self
            .events
            .iter()
            .find_map(model::event_time)
            .unwrap_or(0.0);
        let last = if self.following() {
            self.clock_ms.max(self.model.now_ms)
        } else {
            self.timeline_model().now_ms
        };
        (first, last.max(first))
    }

    /// The span the timeline shows, left and right edge in ms.
    pub fn window_range(&self) -> (f64, f64) {
        let (first, last) = self.trace_span();
        let now = last;
        let (l, w) = match self.window {
            Window::Fit => (first, last - first),
            Window::Follow { width_ms } => (now - width_ms, width_ms),
            Window::Fixed { left_ms, width_ms } => (left_ms, width_ms),
        };
        let w = w.max(MIN_SPAN_MS);
        (l, l + w)
    }

    fn set_window(&mut self, left: f64, width: f64) {
        let width = width.max(MIN_SPAN_MS);
        let (first, last) = self.trace_span();
        self.window = if width >= (last - first) && left <= first {
            Window::Fit
        } else if self.following() && left + width >= last {
            Window::Follow { width_ms: width }
        } else {
            Window::Fixed {
                left_ms: left,
                width_ms: width,
            }
        };
    }

    /// Zooms by `factor` (0.5: in) around the selected bar, else the
    /// window's centre; live and following, the right edge stays at now.
    fn zoom(&mut self, factor: f64) {
        let (l, r) = self.window_range();
        let w = ((r - l) * factor).max(MIN_SPAN_MS);
        let (first, last) = self.trace_span();
        if factor > 1.0 && w >= (last - first) * (1.0 - 1e-9) {
            self.window = Window::Fit;
            return;
        }
        let selected = self
            .selected_bar
            .and_then(|i| self.timeline_model().executions.get(i))
            .map(|e| e.start_ms);
        match (selected, self.window) {
            (Some(centre), _) => self.set_window(centre - w / 2.0, w),
            (None, Window::Fit | Window::Follow { .. }) if self.following() => {
                self.window = Window::Follow { width_ms: w }
            }
            (None, _) => self.set_window((l + r) / 2.0 - w / 2.0, w),
        }
    }

    fn pan(&mut self, fraction: f64) {
        let (l, r) = self.window_range();
        let w = r - l;
        self.set_window(l + w * fraction, w);
        if self.window == Window::Fit {
            // Panning never re-fits: keep the span it was given.
            self.window = Window::Fixed {
                left_ms: l + w * fraction,
                width_ms: w,
            };
        }
    }

    /// Selects the bar `step` away from the selected one (the first bar in
    /// the window when none is), and brings it into the window.
    fn select_bar(&mut self, step: isize) {
        let executions = &self.timeline_model().executions;
        if executions.is_empty() {
            self.status = Some("no execution on the timeline yet".into());
            return;
        }
        let (l, r) = self.window_range();
        let next = match self.selected_bar {
            Some(i) => (i as isize + step).clamp(0, executions.len() as isize - 1) as usize,
            None => executions
                .iter()
                .position(|e| e.end_ms.unwrap_or(f64::INFINITY) >= l)
                .unwrap_or(0),
        };
        let e = &executions[next];
        let (start, end) = (e.start_ms, e.end_ms.unwrap_or(e.start_ms));
        self.selected_bar = Some(next);
        if start < l || end > r {
            let w = r - l;
            self.set_window(start - w / 4.0, w);
        }
    }

    /// Handles one key; returns what the driver must do.
    pub fn handle_key(&mut self, key: KeyEvent) -> Vec<Action> {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            self.quit = true;
            return vec![Action::Quit];
        }
        if self.input == Input::Search {
            match key.code {
                KeyCode::Enter => self.input = Input::Normal,
                KeyCode::Esc => {
                    self.search.clear();
                    self.input = Input::Normal;
                }
                KeyCode::Backspace => {
                    self.search.pop();
                }
                KeyCode::Char(c) => self.search.push(c),
                _ => {}
            }
            return Vec::new();
        }
        if self.show_help {
            // Any key closes the help overlay.
            self.show_help = false;
            return Vec::new();
        }
        self.status = None;
        match key.code {
            KeyCode::Char('q') | KeyCode::Esc => {
                self.quit = true;
                return vec![Action::Quit];
            }
            KeyCode::Char('?') => self.show_help = true,
            KeyCode::Char('1') => self.view = View::Timeline,
            KeyCode::Char('2') => self.view = View::Decision,
            KeyCode::Char('3') => self.view = View::Health,
            KeyCode::Char('4') => self.view = View::Events,
            KeyCode::Tab => {
                let i = View::ALL.iter().position(|v| *v == self.view).unwrap_or(0);
                self.view = View::ALL[(i + 1) % View::ALL.len()];
            }
            KeyCode::Char(' ') => {
                if let Some(live) = &mut self.live {
                    live.paused = !live.paused;
                    return vec![Action::SetPaused(live.paused)];
                }
                self.playing = !self.playing;
            }
            KeyCode::Right | KeyCode::Char('n') => {
                self.playing = false;
                self.step();
            }
            KeyCode::Left | KeyCode::Char('b') if self.live.is_none() => {
                self.playing = false;
                let back = self.model.applied.saturating_sub(1);
                self.rewind_to(back);
            }
            KeyCode::Char('+') | KeyCode::Char('=') => self.speed *= 2.0,
            KeyCode::Char('-') => self.speed = (self.speed / 2.0).max(1e-3),
            KeyCode::Char('f') => self.jump(model::is_failure),
            KeyCode::Char('d') => self.jump(|e| matches!(e, TraceEvent::Route { .. })),
            KeyCode::Char('z') => self.zoom(0.5),
            KeyCode::Char('Z') => self.zoom(2.0),
            KeyCode::Char('[') => self.pan(-0.25),
            KeyCode::Char(']') => self.pan(0.25),
            KeyCode::Char('0') => self.window = Window::Fit,
            KeyCode::Up | KeyCode::Char('k') if self.view == View::Timeline => self.select_bar(-1),
            KeyCode::Down | KeyCode::Char('j') if self.view == View::Timeline => self.select_bar(1),
            KeyCode::Up | KeyCode::Char('k') if self.selected + 1 < self.model.decisions.len() => {
                self.selected += 1;
            }
            KeyCode::Down | KeyCode::Char('j') => self.selected = self.selected.saturating_sub(1),
            KeyCode::Char('/') => {
                self.view = View::Events;
                self.input = Input::Search;
                self.search.clear();
            }
            KeyCode::Char('c') => {
                // Cycle the events filter: all, then each kind.
                self.filter = match self.filter {
                    None => Some(LogKind::ALL[0]),
                    Some(k) => {
                        let i = LogKind::ALL.iter().position(|x| *x == k).unwrap_or(0);
                        LogKind::ALL.get(i + 1).copied()
                    }
                };
            }
            KeyCode::Char('r') => {
                return self.live_action(|l| {
                    l.rate_per_s *= 1.5;
                    Some(Action::SetRate(l.rate_per_s))
                });
            }
            KeyCode::Char('R') => {
                return self.live_action(|l| {
                    l.rate_per_s /= 1.5;
                    Some(Action::SetRate(l.rate_per_s))
                });
            }
            KeyCode::Char('g') | KeyCode::Char('t') => {
                let device = if key.code == KeyCode::Char('g') {
                    Device::Gpu
                } else {
                    Device::Tsu
                };
                return self.live_action(|l| {
                    let online = l.offline.contains(&device);
                    if online {
                        l.offline.retain(|d| *d != device);
                    } else {
                        l.offline.push(device);
                    }
                    Some(Action::SetOnline(device, online))
                });
            }
            KeyCode::Char('w') => {
                return self.live_action(|l| {
                    l.weight = (l.weight + 1) % 4;
                    None
                });
            }
            KeyCode::Char('>') | KeyCode::Char('<') => {
                let factor = if key.code == KeyCode::Char('>') {
                    2.0
                } else {
                    0.5
                };
                return self.live_action(|l| {
                    let w = &mut l.weights;
                    match l.weight {
                        0 => w.latency *= factor,
                        1 => w.energy *= factor,
                        2 => w.error *= factor,
                        _ => w.risk *= factor,
                    }
                    Some(Action::SetWeights(l.weights))
                });
            }
            KeyCode::Char('p') => {
                return self.live_action(|l| {
                    if !l.has_plugins {
                        return None;
                    }
                    l.plugin_policy = !l.plugin_policy;
                    Some(Action::TogglePolicy)
                });
            }
            _ => {}
        }
        Vec::new()
    }
}

/// The engine command an action asks for (`None`: nothing for the engine).
pub fn command_for(action: &Action) -> Option<crate::engine::Command> {
    use crate::engine::Command;
    match action {
        Action::Quit | Action::TogglePolicy => None,
        Action::SetPaused(true) => Some(Command::Pause),
        Action::SetPaused(false) => Some(Command::Resume),
        Action::SetRate(per_s) => Some(Command::SetRate { per_s: *per_s }),
        Action::SetOnline(device, online) => Some(Command::SetOnline {
            device: *device,
            online: *online,
        }),
        Action::SetWeights(w) => Some(Command::SetWeights(*w)),
    }
}

/// The keys, for the help overlay and `--help`.
pub const HELP: &[(&str, &str)] = &[
    ("1 2 3 4 / Tab", "timeline, decisions, health, events"),
    ("space", "play / pause (live: pause the engine)"),
    ("→ n / ← b", "step one event forward / back"),
    ("+ / -", "playback speed x2 / /2"),
    ("f / d", "jump to the next failure / routing decision"),
    (
        "z / Z, [ / ], 0",
        "timeline: zoom in / out, pan back / forward, fit all",
    ),
    (
        "↑ k / ↓ j",
        "timeline: select the previous / next bar; decisions: older / newer",
    ),
    (
        "c, /",
        "events: cycle the kind filter, search by job, node or text",
    ),
    ("r / R", "live: arrival rate x1.5 / /1.5"),
    ("g, t", "live: take the GPU / TSU offline or back"),
    ("w, < / >", "live: pick wL wE wA wR, halve / double it"),
    ("p", "live: swap native <-> plugin policy"),
    ("?", "this help"),
    ("q / Esc", "quit"),
];
