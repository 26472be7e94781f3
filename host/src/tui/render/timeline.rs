//! The timeline view: one lane per device slot, bars labelled with their
//! node, the selected bar's details.

use super::*;

/// One row of the timeline: a lane of a device.
struct LaneRow {
    device: Device,
    lane: usize,
    /// Executions on it overlapping the window, by start.
    bars: Vec<usize>,
}

/// The rows of the timeline: exactly the hardware's slots per device (more
/// only if the trace really ran more at once), with executions packed.
fn lane_rows(app: &App, left: f64, right: f64) -> Vec<LaneRow> {
    let m = app.timeline_model();
    let (lanes, used) = pack_lanes(&m.executions);
    let mut rows = Vec::new();
    for device in Device::ALL {
        let n = m
            .device_slots(device)
            .max(used.get(&device).copied().unwrap_or(0));
        for lane in 0..n {
            rows.push(LaneRow {
                device,
                lane,
                bars: Vec::new(),
            });
        }
    }
    for (i, e) in m.executions.iter().enumerate() {
        let end = bar_end(app, e);
        if end < left || e.start_ms > right {
            continue;
        }
        if let Some(row) = rows
            .iter_mut()
            .find(|r| r.device == e.device && r.lane == lanes[i])
        {
            row.bars.push(i);
        }
    }
    rows
}

/// Where a bar ends: its end, or now while it runs.
fn bar_end(app: &App, e: &Execution) -> f64 {
    e.end_ms.unwrap_or(app.clock_ms.max(e.start_ms))
}

/// The lane title: device, lane and the targets that ran on it in view.
fn lane_title(app: &App, row: &LaneRow) -> String {
    let m = app.timeline_model();
    let mut targets: Vec<&str> = row
        .bars
        .iter()
        .map(|&i| m.executions[i].target.name())
        .collect();
    targets.sort_unstable();
    targets.dedup();
    if targets.is_empty() {
        format!("{} {}", row.device.name(), row.lane)
    } else {
        format!("{} {} {}", row.device.name(), row.lane, targets.join("/"))
    }
}

/// Bars per lane with node ids, over an axis in real units.
struct TimelineWidget<'a> {
    app: &'a App,
}

impl Widget for TimelineWidget<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let app = self.app;
        let m = app.timeline_model();
        let (left, right) = app.window_range();
        let rows = lane_rows(app, left, right);
        let titles: Vec<String> = rows.iter().map(|r| lane_title(app, r)).collect();
        let label = titles
            .iter()
            .map(|t| t.chars().count())
            .max()
            .unwrap_or(5)
            .clamp(5, 18) as u16
            + 1;
        if area.width <= label + 4 || area.height < 3 {
            return;
        }
        let cells = area.width - label;
        let span = right - left;
        let x_of = |t: f64| -> f64 { (t - left) / span * cells as f64 };
        let dim = Style::new().fg(Color::DarkGray);
        // The axis: labels over a ruler, in one unit chosen by the span.
        let ruler_y = area.y + 1;
        for x in 0..cells {
            buf[(area.x + label + x, ruler_y)]
                .set_char('─')
                .set_style(dim);
        }
        let mut free_from = 0u16;
        for (t, text) in crate::tui::units::ticks(left, right, cells as usize) {
            let x = x_of(t).round();
            if x < 0.0 || x >= cells as f64 {
                continue;
            }
            let x = x as u16;
            buf[(area.x + label + x, ruler_y)]
                .set_char('┬')
                .set_style(dim);
            let w = text.chars().count() as u16;
            // Centred on the tick where it fits, never over the previous one.
            let start = x.saturating_sub(w / 2).max(free_from);
            if start + w <= cells {
                buf.set_string(area.x + label + start, area.y, &text, dim);
                free_from = start + w + 1;
            }
        }
        let lanes_top = area.y + 2;
        let selected = app.selected_bar;
        for (r, (row, title)) in rows.iter().zip(&titles).enumerate() {
            let y = lanes_top + r as u16;
            if y >= area.bottom() {
                break;
            }
            buf.set_string(
                area.x,
                y,
                truncate(title, label as usize - 1),
                Style::new().fg(Color::Gray),
            );
            for x in 0..cells {
                buf[(area.x + label + x, y)].set_char('·').set_style(dim);
            }
            // Cells [x0, x1) of each bar, then labels where they fit.
            let spans: Vec<(u16, u16, usize)> = row
                .bars
                .iter()
                .map(|&i| {
                    let e = &m.executions[i];
                    let x0 = (x_of(e.start_ms).max(0.0).floor() as u16).min(cells - 1);
                    let x1 = (x_of(bar_end(app, e)).ceil().max(0.0) as u16).clamp(x0 + 1, cells);
                    (x0, x1, i)
                })
                .collect();
            for &(x0, x1, i) in &spans {
                let style = bar_style(app, &m.executions[i], selected == Some(i));
                for x in x0..x1 {
                    buf[(area.x + label + x, y)].set_char('█').set_style(style);
                }
            }
            for (k, &(x0, x1, i)) in spans.iter().enumerate() {
                let e = &m.executions[i];
                let name = e.node.as_str();
                let w = name.chars().count() as u16;
                let next = spans[k + 1..]
                    .iter()
                    .map(|s| s.0)
                    .find(|&s| s >= x1)
                    .unwrap_or(cells);
                let style = bar_style(app, e, selected == Some(i));
                if x1 - x0 >= w + 2 {
                    // Inside the bar, on its colour.
                    let bg = style.fg.unwrap_or(Color::Gray);
                    buf.set_string(
                        area.x + label + x0 + 1,
                        y,
                        name,
                        Style::new().fg(Color::Black).bg(bg),
                    );
                } else if next > x1 + w && spans[..k].iter().all(|s| s.1 <= x0 || s.0 >= x1) {
                    // Just after it, in the free cells before the next bar.
                    buf.set_string(area.x + label + x1 + 1, y, name, style);
                }
            }
        }
        // The playback clock, where it falls inside the window.
        let shown = rows
            .len()
            .min(area.bottom().saturating_sub(lanes_top) as usize) as u16;
        let cx = x_of(app.clock_ms);
        if !app.following() && cx >= 0.0 && cx < cells as f64 && app.clock_ms < right {
            let x = area.x + label + cx as u16;
            for y in lanes_top..lanes_top + shown {
                let cell = &mut buf[(x, y)];
                if cell.symbol() == "·" {
                    cell.set_char('│').set_fg(Color::White);
                }
            }
        }
        let legend_y = lanes_top + shown + 1;
        if legend_y < area.bottom() {
            let mut x = area.x;
            for (i, class) in m.classes.iter().enumerate() {
                let text = format!("█ {class}  ");
                buf.set_string(
                    x,
                    legend_y,
                    &text,
                    Style::new().fg(CLASS_COLOURS[i % CLASS_COLOURS.len()]),
                );
                x = x.saturating_add(text.chars().count() as u16);
            }
            if !app.following() {
                buf.set_string(x, legend_y, "█ not yet played", dim);
            }
        }
        if legend_y + 1 < area.bottom() {
            let how = match app.window {
                Window::Fit if app.following() => "whole trace, following the clock",
                Window::Fit => "whole trace",
                Window::Follow { .. } => "following the clock",
                Window::Fixed { .. } => "zoomed",
            };
            buf.set_string(
                area.x,
                legend_y + 1,
                format!(
                    "{} to {}: {} ({how}; z/Z zoom, [/] pan, 0 fit, j/k select a bar)",
                    ms(left),
                    ms(right),
                    ms(span)
                ),
                dim,
            );
        }
        if legend_y + 3 < area.bottom() {
            let details = Rect {
                x: area.x,
                y: legend_y + 3,
                width: area.width,
                height: area.bottom() - (legend_y + 3),
            };
            Paragraph::new(bar_details(app))
                .wrap(Wrap { trim: true })
                .render(details, buf);
        }
    }
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn bar_style(app: &App, e: &Execution, selected: bool) -> Style {
    if selected {
        return Style::new().fg(Color::White).add_modifier(Modifier::BOLD);
    }
    if !app.following() && e.start_ms > app.clock_ms {
        return Style::new().fg(Color::DarkGray);
    }
    Style::new().fg(CLASS_COLOURS[e.class % CLASS_COLOURS.len()])
}

/// The selected bar: job, node, target, start, duration and why it went
/// there (the routing decision's explanation).
fn bar_details(app: &App) -> Vec<Line<'static>> {
    let m = app.timeline_model();
    let Some((i, e)) = app
        .selected_bar
        .and_then(|i| m.executions.get(i).map(|e| (i, e)))
    else {
        return vec![Line::from(Span::styled(
            "j/k select a bar to see its job, node, target, timing and why it went there",
            Style::new().fg(Color::DarkGray),
        ))];
    };
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let class = m.classes.get(e.class).cloned().unwrap_or_default();
    let outcome = match (&e.end_ms, &e.status, &e.note) {
        (None, _, _) => "running".to_string(),
        (_, _, Some(note)) => note.clone(),
        (_, Some(s), None) => format!("{s:?}").to_lowercase(),
        (_, None, None) => "ended".to_string(),
    };
    let duration = e
        .end_ms
        .map_or(format!("{} so far", ms(app.clock_ms - e.start_ms)), |end| {
            ms(end - e.start_ms)
        });
    let why = e
        .decision
        .and_then(|i| app.events.get(i))
        .and_then(|ev| match ev {
            TraceEvent::Route { explanation, .. } => Some(explanation.clone()),
            _ => None,
        })
        .unwrap_or_else(|| "no routing decision in the trace".into());
    vec![
        Line::from(vec![
            Span::styled(format!("job {} ", e.job), bold),
            Span::raw(format!("({class})  ")),
            Span::styled(format!("node {}", e.node), bold),
            Span::raw(format!(
                "  on {}, lane {} {}  start {}  duration {}  {outcome}",
                e.target,
                e.device.name(),
                pack_lanes(&m.executions).0[i],
                ms(e.start_ms),
                duration
            )),
        ]),
        Line::from(format!("why: {why}")),
    ]
}

pub(super) fn draw_timeline(frame: &mut Frame, app: &App, area: Rect) {
    let block = Block::default()
        .borders(Borders::ALL)
        .title(" timeline: a lane per device slot ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    frame.render_widget(TimelineWidget { app }, inner);
}
