//! Drawing: a pure function of the [`App`].

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, Gauge, Paragraph, Row, Sparkline, Table, Tabs, Widget, Wrap,
};

use super::model::{Execution, pack_lanes};
use super::{App, HELP, Input, View, Window};
use crate::device::Device;
use crate::trace::TraceEvent;

mod timeline;
use timeline::draw_timeline;

/// Colours of job classes on the timeline.
const CLASS_COLOURS: [Color; 8] = [
    Color::Cyan,
    Color::Magenta,
    Color::Yellow,
    Color::Green,
    Color::Blue,
    Color::Red,
    Color::LightCyan,
    Color::LightMagenta,
];

/// Colours of the cost terms wL·L, wE·E, wA·Err, wR·Risk.
const TERM_COLOURS: [Color; 4] = [Color::Blue, Color::Yellow, Color::Magenta, Color::Red];

fn ms(x: f64) -> String {
    super::units::duration(x)
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, app: &App) {
    let [top, tabs, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    frame.render_widget(Paragraph::new(status_line(app)), top);
    let selected = View::ALL.iter().position(|v| *v == app.view).unwrap_or(0);
    frame.render_widget(
        Tabs::new(View::ALL.iter().map(|v| v.title()))
            .select(selected)
            .highlight_style(Style::new().add_modifier(Modifier::REVERSED)),
        tabs,
    );
    match app.view {
        View::Timeline => draw_timeline(frame, app, body),
        View::Decision => draw_decisions(frame, app, body),
        View::Health => draw_health(frame, app, body),
        View::Events => draw_events(frame, app, body),
    }
    frame.render_widget(Paragraph::new(footer(app)), bottom);
    if app.show_help {
        draw_help(frame, body);
    }
}

fn status_line(app: &App) -> Line<'static> {
    let m = &app.model;
    let state = match &app.live {
        Some(l) if l.paused => "LIVE paused".to_string(),
        Some(l) => format!("LIVE {:.0} jobs/s", l.rate_per_s),
        None if app.playing => format!("playing x{}", app.speed),
        None => "paused".to_string(),
    };
    Line::from(vec![
        Span::styled(
            format!(" thermoroute {} ", m.mode),
            Style::new().add_modifier(Modifier::REVERSED),
        ),
        Span::raw(format!(
            " t={}  event {}/{}  {}  jobs ended {}  {}",
            ms(if app.clock_ms.is_finite() {
                app.clock_ms
            } else {
                m.now_ms
            }),
            m.applied,
            app.events.len(),
            state,
            m.jobs_ended,
            app.source,
        )),
    ])
}

fn footer(app: &App) -> Line<'static> {
    if app.input == Input::Search {
        return Line::from(format!("search (job id, node id or text): {}_", app.search));
    }
    if let Some(s) = &app.status {
        return Line::from(Span::styled(s.clone(), Style::new().fg(Color::Yellow)));
    }
    let mut text =
        String::from("? help  q quit  space play/pause  n step  f next failure  d next decision");
    if let Some(l) = &app.live {
        let names = ["wL", "wE", "wA", "wR"];
        let w = [
            l.weights.latency,
            l.weights.energy,
            l.weights.error,
            l.weights.risk,
        ];
        text = format!(
            "{text}  | r/R rate  g gpu  t tsu  w/</> {}={}  p policy{}",
            names[l.weight],
            w[l.weight],
            if l.offline.is_empty() {
                String::new()
            } else {
                format!(
                    "  offline: {}",
                    l.offline
                        .iter()
                        .map(|d| d.name())
                        .collect::<Vec<_>>()
                        .join(",")
                )
            }
        );
    }
    Line::from(text)
}

/// `t job node -> target` for a routing event.
fn decision_label(e: &TraceEvent) -> String {
    match e {
        TraceEvent::Route {
            t_ms,
            job,
            node,
            attempt,
            chosen,
            ..
        } => format!(
            "{:>10} job {job} {node}{} -> {}",
            ms(*t_ms),
            if *attempt > 0 {
                format!(" (fallback {attempt})")
            } else {
                String::new()
            },
            chosen.map_or("none".into(), |t| t.to_string())
        ),
        _ => String::new(),
    }
}

fn draw_decisions(frame: &mut Frame, app: &App, area: Rect) {
    let m = &app.model;
    let [list_area, detail_area] =
        Layout::horizontal([Constraint::Percentage(35), Constraint::Percentage(65)]).areas(area);
    let n = m.decisions.len();
    let visible = list_area.height.saturating_sub(2) as usize;
    let lines: Vec<Line> = m
        .decisions
        .iter()
        .rev()
        .enumerate()
        .skip(app.selected.saturating_sub(visible.saturating_sub(1)))
        .take(visible)
        .map(|(i, &ev)| {
            let text = decision_label(&app.events[ev]);
            if i == app.selected {
                Line::from(Span::styled(
                    text,
                    Style::new().add_modifier(Modifier::REVERSED),
                ))
            } else {
                Line::from(text)
            }
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!(" decisions ({n}, newest first) ")),
        ),
        list_area,
    );
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" why it went there ");
    let Some(&ev) = m.decisions.iter().rev().nth(app.selected) else {
        frame.render_widget(
            Paragraph::new("no routing decision yet (press d to jump to one)").block(block),
            detail_area,
        );
        return;
    };
    let TraceEvent::Route {
        job,
        node,
        attempt,
        chosen,
        candidates,
        budget,
        explanation,
        ..
    } = &app.events[ev]
    else {
        return;
    };
    let inner = block.inner(detail_area);
    frame.render_widget(block, detail_area);
    let [head, table_area, bars_area] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Length(candidates.len() as u16 + 1),
        Constraint::Min(0),
    ])
    .areas(inner);
    frame.render_widget(
        Paragraph::new(vec![
            Line::from(format!("job {job}, node {node}, attempt {attempt}")),
            Line::from(format!("decided by: {}", m.policy)),
            Line::from(format!(
                "budget share: p95 deadline {}, energy {}, timeout {}",
                budget.deadline_p95_ms.map_or("-".into(), ms),
                budget.energy_j.map_or("-".into(), |e| format!("{e:.4} J")),
                ms(budget.timeout_ms)
            )),
            Line::from(explanation.clone()),
        ])
        .wrap(Wrap { trim: true }),
        head,
    );
    let rows = candidates.iter().map(|c| {
        let mark = if Some(c.target) == *chosen {
            "▶"
        } else {
            " "
        };
        let verdict = if c.eligible {
            if c.violations.is_empty() {
                "eligible".to_string()
            } else {
                format!("violates {}", c.violations.join(", "))
            }
        } else {
            c.reasons
                .first()
                .map_or("ineligible".into(), |r| r.to_string())
        };
        let est = c.estimate.unwrap_or_default();
        let cost = c.cost.unwrap_or_default();
        Row::new(vec![
            Cell::from(format!("{mark}{}", c.target)),
            Cell::from(verdict),
            Cell::from(if c.estimate.is_some() {
                ms(est.latency_p50_ms)
            } else {
                "-".into()
            }),
            Cell::from(if c.estimate.is_some() {
                ms(est.latency_p95_ms)
            } else {
                "-".into()
            }),
            Cell::from(if c.estimate.is_some() {
                format!("{:.2e} J", est.energy_j)
            } else {
                "-".into()
            }),
            Cell::from(if c.estimate.is_some() {
                format!("{:.4}", est.error)
            } else {
                "-".into()
            }),
            Cell::from(if c.cost.is_some() {
                format!("{:.3}", cost.risk_penalty)
            } else {
                "-".into()
            }),
            Cell::from(if c.cost.is_some() {
                format!("{:.3}", cost.total)
            } else {
                "-".into()
            }),
        ])
    });
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(9),
                Constraint::Min(12),
                Constraint::Length(9),
                Constraint::Length(9),
                Constraint::Length(10),
                Constraint::Length(7),
                Constraint::Length(6),
                Constraint::Length(9),
            ],
        )
        .header(
            Row::new([
                "target", "verdict", "p50", "p95", "energy", "error", "risk", "cost",
            ])
            .style(Style::new().add_modifier(Modifier::BOLD)),
        ),
        table_area,
    );
    // Stacked bars of the weighted terms, on one scale.
    let max_total = candidates
        .iter()
        .filter_map(|c| c.cost.map(|k| k.total))
        .fold(0.0f64, f64::max);
    let bar_width = bars_area.width.saturating_sub(10) as f64;
    let mut lines = vec![Line::from(vec![
        Span::raw("cost terms: "),
        Span::styled("█ wL·latency ", Style::new().fg(TERM_COLOURS[0])),
        Span::styled("█ wE·energy ", Style::new().fg(TERM_COLOURS[1])),
        Span::styled("█ wA·error ", Style::new().fg(TERM_COLOURS[2])),
        Span::styled("█ wR·risk", Style::new().fg(TERM_COLOURS[3])),
    ])];
    for c in candidates {
        let Some(cost) = c.cost else { continue };
        let mut spans = vec![Span::raw(format!("{:<9} ", c.target.to_string()))];
        let mut used = 0usize;
        for (term, colour) in [cost.latency, cost.energy, cost.error, cost.risk]
            .into_iter()
            .zip(TERM_COLOURS)
        {
            let cells = if max_total > 0.0 {
                (term / max_total * bar_width).round() as usize
            } else {
                0
            };
            used += cells;
            spans.push(Span::styled("█".repeat(cells), Style::new().fg(colour)));
        }
        if used == 0 {
            spans.push(Span::raw("(zero cost)"));
        }
        lines.push(Line::from(spans));
    }
    frame.render_widget(Paragraph::new(lines), bars_area);
}

fn draw_health(frame: &mut Frame, app: &App, area: Rect) {
    let m = &app.model;
    let devices: Vec<Device> = Device::ALL
        .into_iter()
        .filter(|d| m.device_slots(*d) > 0 || m.queued.contains_key(d))
        .collect();
    let mut constraints: Vec<Constraint> = devices.iter().map(|_| Constraint::Length(3)).collect();
    constraints.push(Constraint::Length(3));
    constraints.push(Constraint::Min(2));
    let areas = Layout::vertical(constraints).split(area);
    for (i, device) in devices.iter().enumerate() {
        let history: Vec<u64> = m
            .queue_history
            .get(device)
            .map(|h| h.iter().copied().collect())
            .unwrap_or_default();
        let now = m.queued.get(device).copied().unwrap_or(0);
        frame.render_widget(
            Sparkline::default()
                .block(
                    Block::default()
                        .borders(Borders::ALL)
                        .title(format!(" {} queue depth: {now} ", device.name())),
                )
                .data(&history)
                .style(Style::new().fg(Color::Cyan)),
            areas[i],
        );
    }
    // Energy per job against the tightest class budget, when there is one.
    let per_job = if m.jobs_ended > 0 {
        m.energy_j / m.jobs_ended as f64
    } else {
        0.0
    };
    let budget = m
        .class_qos
        .iter()
        .filter_map(|q| q.energy_j)
        .fold(None, |acc: Option<f64>, e| {
            Some(acc.map_or(e, |a| a.min(e)))
        });
    let (ratio, label) = match budget {
        Some(b) if b > 0.0 => (
            (per_job / b).clamp(0.0, 1.0),
            format!(
                "energy {per_job:.3e} J per job of {b:.3e} J budget ({:.0}%)",
                per_job / b * 100.0
            ),
        ),
        _ => (
            0.0,
            format!(
                "energy {:.3e} J used, {per_job:.3e} J per job (no budget)",
                m.energy_j
            ),
        ),
    };
    frame.render_widget(
        Gauge::default()
            .block(Block::default().borders(Borders::ALL).title(" energy "))
            .gauge_style(Style::new().fg(if ratio >= 1.0 {
                Color::Red
            } else {
                Color::Green
            }))
            .ratio(ratio)
            .label(label),
        areas[devices.len()],
    );
    let mut lines = Vec::new();
    for (c, name) in m.classes.iter().enumerate() {
        let target = m.class_qos.get(c).and_then(|q| q.latency_ms);
        let quant = m.latency_quantiles(c);
        let ended = m.ended_by_class.get(c).copied().unwrap_or(0);
        let slo = if ended > 0 {
            format!("{:.1}%", m.slo_met[c] as f64 / ended as f64 * 100.0)
        } else {
            "-".into()
        };
        let vs = |got: f64, want: Option<f64>| match want {
            Some(w) if got > w => Span::styled(
                format!("{} > {}", ms(got), ms(w)),
                Style::new().fg(Color::Red),
            ),
            Some(w) => Span::styled(
                format!("{} ≤ {}", ms(got), ms(w)),
                Style::new().fg(Color::Green),
            ),
            None => Span::raw(ms(got)),
        };
        let mut spans = vec![Span::raw(format!("{name}: "))];
        match quant {
            Some((p50, p95)) => {
                spans.push(Span::raw("p50 "));
                spans.push(vs(p50, target.map(|t| t.p50)));
                spans.push(Span::raw("  p95 "));
                spans.push(vs(p95, target.map(|t| t.p95)));
            }
            None => spans.push(Span::raw("no job completed yet")),
        }
        spans.push(Span::raw(format!(
            "  SLO attainment {slo} of {ended} ended"
        )));
        lines.push(Line::from(spans));
    }
    let statuses: Vec<String> = m
        .jobs_by_status
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    lines.push(Line::from(format!(
        "jobs: {}; reviews pending {}",
        if statuses.is_empty() {
            "none ended".into()
        } else {
            statuses.join(", ")
        },
        m.pending_reviews
    )));
    frame.render_widget(
        Paragraph::new(lines)
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .title(" latency and SLOs "),
            )
            .wrap(Wrap { trim: true }),
        areas[devices.len() + 1],
    );
}

fn draw_events(frame: &mut Frame, app: &App, area: Rect) {
    let lines = app.visible_log();
    let visible = area.height.saturating_sub(2) as usize;
    let shown: Vec<Line> = lines
        .iter()
        .rev()
        .take(visible)
        .rev()
        .map(|l| {
            let colour = match l.kind {
                super::LogKind::Failure | super::LogKind::Backpressure => Color::Red,
                super::LogKind::Review | super::LogKind::Drift => Color::Yellow,
                super::LogKind::Policy | super::LogKind::Fallback => Color::Magenta,
                _ => Color::Gray,
            };
            Line::from(vec![
                Span::raw(format!("{:>10} ", ms(l.t_ms))),
                Span::styled(format!("{:<12} ", l.kind.name()), Style::new().fg(colour)),
                Span::raw(match (&l.job, &l.node) {
                    (Some(j), Some(n)) => format!("job {j} {n}: "),
                    (Some(j), None) => format!("job {j}: "),
                    _ => String::new(),
                }),
                Span::raw(l.text.clone()),
            ])
        })
        .collect();
    let title = format!(
        " events: {} of {} (c filter: {}{}) ",
        lines.len(),
        app.model.log.len(),
        app.filter.map_or("all", |k| k.name()),
        if app.search.is_empty() {
            String::new()
        } else {
            format!(", search {:?}", app.search)
        }
    );
    frame.render_widget(
        Paragraph::new(shown).block(Block::default().borders(Borders::ALL).title(title)),
        area,
    );
}

fn draw_help(frame: &mut Frame, area: Rect) {
    let width = 64.min(area.width);
    let height = (HELP.len() as u16 + 2).min(area.height);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    frame.render_widget(Clear, popup);
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(k, v)| {
            Line::from(vec![
                Span::styled(
                    format!("{k:<14}"),
                    Style::new().add_modifier(Modifier::BOLD),
                ),
                Span::raw(*v),
            ])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" keys (any key closes) "),
        ),
        popup,
    );
}
