//! Plots of the results (plotters), each as SVG and PNG. Text is drawn with
//! a bundled font (`assets/fonts`, DejaVu Sans cut to Latin-1, Bitstream
//! Vera licence) through `ab_glyph`, so a machine without system fonts
//! draws the same labels.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::{VariantResult, WhatifError, file_error};

/// Indices of the rows on the energy / p95-latency Pareto front (no other
/// row is at least as good on both and better on one).
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<usize> {
    (0..points.len())
        .filter(|&i| {
            let (e, l) = points[i];
            !points
                .iter()
                .enumerate()
                .any(|(j, &(e2, l2))| j != i && e2 <= e && l2 <= l && (e2 < e || l2 < l))
        })
        .collect()
}

/// The bundled font, registered once as plotters' `sans-serif`.
static FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans-subset.ttf");

/// The font family every chart names.
const SANS: &str = "sans-serif";

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if plotters::style::register_font(SANS, FontStyle::Normal, FONT).is_err() {
            unreachable!("the bundled font parses (a unit test draws with it)");
        }
    });
}

/// Whether values spanning `xs` want a log axis: all positive and the
/// largest more than ten times the smallest.
pub fn wants_log(xs: &[f64]) -> bool {
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    lo > 0.0 && hi.is_finite() && hi / lo > 10.0
}

/// A plotting range for `xs`: padded linear, or a log range one step wide
/// of the data on each side.
fn range(xs: &[f64], log: bool) -> (f64, f64) {
    if log {
        let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (lo / 1.5, hi * 1.5)
    } else {
        bounds(xs)
    }
}

type Drawn = Result<(), String>;

fn e2s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Runs `$body` with `$x` and `$y` bound to linear or log ranges.
macro_rules! axes {
    ($xlog:expr, $ylog:expr, $xs:expr, $ys:expr, |$x:ident, $y:ident| $body:block) => {{
        let (x0, x1) = $xs;
        let (y0, y1) = $ys;
        match ($xlog, $ylog) {
            (false, false) => {
                let ($x, $y) = (x0..x1, y0..y1);
                $body
            }
            (false, true) => {
                let ($x, $y) = (x0..x1, (y0..y1).log_scale());
                $body
            }
            (true, false) => {
                let ($x, $y) = ((x0..x1).log_scale(), y0..y1);
                $body
            }
            (true, true) => {
                let ($x, $y) = ((x0..x1).log_scale(), (y0..y1).log_scale());
                $body
            }
        }
    }};
}

fn palette(i: usize) -> RGBAColor {
    Palette99::pick(i).to_rgba()
}

fn metric(r: &VariantResult, m: &str) -> Option<f64> {
    r.metrics.get(m).map(|s| s.mean)
}

/// p95 latency against load, a line per series.
struct LatencyPlot {
    series: Vec<(String, Vec<(f64, f64)>)>,
    by_rate: bool,
}

impl LatencyPlot {
    fn new(rows: &[VariantResult]) -> Self {
        let by_rate = rows.iter().all(|r| r.load_rate.is_some());
        let mut loads: Vec<&str> = Vec::new();
        let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
        for r in rows {
            if !loads.contains(&r.factors.load.as_str()) {
                loads.push(&r.factors.load);
            }
            let k = loads.iter().position(|l| *l == r.factors.load).unwrap_or(0);
            let x = if by_rate {
                r.load_rate.unwrap_or(0.0)
            } else {
                (k + 1) as f64
            };
            let Some(y) = metric(r, "latency_p95_ms") else {
                continue;
            };
            match series.iter_mut().find(|(s, _)| *s == r.series) {
                Some((_, pts)) => pts.push((x, y)),
                None => series.push((r.series.clone(), vec![(x, y)])),
            }
        }
        for (_, pts) in &mut series {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        LatencyPlot { series, by_rate }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        root.fill(&WHITE).map_err(e2s)?;
        let (xs, ys): (Vec<f64>, Vec<f64>) = self
            .series
            .iter()
            .flat_map(|(_, p)| p.iter().copied())
            .unzip();
        let ylog = wants_log(&ys);
        let xlog = self.by_rate && wants_log(&xs);
        let caption = format!(
            "p95 latency vs load{}",
            if ylog { " (log scale)" } else { "" }
        );
        axes!(xlog, ylog, range(&xs, xlog), range(&ys, ylog), |x, y| {
            let mut chart = ChartBuilder::on(root)
                .caption(caption, (SANS, 20))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d(x, y)
                .map_err(e2s)?;
            chart
                .configure_mesh()
                .x_desc(if self.by_rate {
                    "arrival rate (jobs/s)"
                } else {
                    "load level"
                })
                .y_desc("p95 latency (ms)")
                .label_style((SANS, 12))
                .axis_desc_style((SANS, 14))
                .draw()
                .map_err(e2s)?;
            for (i, (name, pts)) in self.series.iter().enumerate() {
                let colour = palette(i);
                chart
                    .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
                    .map_err(e2s)?
                    .label(name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                    });
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                    .map_err(e2s)?;
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .label_font((SANS, 12))
                .border_style(BLACK)
                .background_style(WHITE.mix(0.8))
                .draw()
                .map_err(e2s)?;
        });
        root.present().map_err(e2s)
    }
}

/// Energy per job against p95 latency, the Pareto front joined.
struct EnergyPlot {
    points: Vec<(String, (f64, f64))>,
}

impl EnergyPlot {
    fn new(rows: &[VariantResult]) -> Self {
        EnergyPlot {
            points: rows
                .iter()
                .filter_map(|r| {
                    Some((
                        r.variant.clone(),
                        (metric(r, "energy_per_job_j")?, metric(r, "latency_p95_ms")?),
                    ))
                })
                .collect(),
        }
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        root.fill(&WHITE).map_err(e2s)?;
        let pts: Vec<(f64, f64)> = self.points.iter().map(|p| p.1).collect();
        let front = pareto_front(&pts);
        let (xs, ys): (Vec<f64>, Vec<f64>) = pts.iter().copied().unzip();
        let (xlog, ylog) = (wants_log(&xs), wants_log(&ys));
        axes!(xlog, ylog, range(&xs, xlog), range(&ys, ylog), |x, y| {
            let mut chart = ChartBuilder::on(root)
                .caption("energy per job vs p95 latency", (SANS, 20))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(70)
                .build_cartesian_2d(x, y)
                .map_err(e2s)?;
            chart
                .configure_mesh()
                .x_desc(if xlog {
                    "energy per job (J, log scale)"
                } else {
                    "energy per job (J)"
                })
                .y_desc(if ylog {
                    "p95 latency (ms, log scale)"
                } else {
                    "p95 latency (ms)"
                })
                .label_style((SANS, 12))
                .axis_desc_style((SANS, 14))
                .draw()
                .map_err(e2s)?;
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))
                .map_err(e2s)?
                .label("variant")
                .legend(|(x, y)| Circle::new((x + 9, y), 4, BLUE.filled()));
            let mut front_pts: Vec<(f64, f64)> = front.iter().map(|&i| pts[i]).collect();
            front_pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            chart
                .draw_series(LineSeries::new(front_pts, RED.stroke_width(2)))
                .map_err(e2s)?
                .label("Pareto front (no variant better on both)")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], RED.stroke_width(2)));
            chart
                // Staggered, so names of nearby points do not overprint.
                .draw_series(front.iter().enumerate().map(|(k, &i)| {
                    EmptyElement::at(pts[i])
                        + Text::new(
                            self.points[i].0.clone(),
                            (8, 4 - 14 * (k as i32 % 4)),
                            (SANS, 11).into_font().color(&RED),
                        )
                }))
                .map_err(e2s)?;
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .label_font((SANS, 12))
                .border_style(BLACK)
                .background_style(WHITE.mix(0.8))
                .draw()
                .map_err(e2s)?;
        });
        root.present().map_err(e2s)
    }
}

/// Busy fraction per device, three bars per variant, the variants named on
/// the left axis and the devices in the legend.
struct UtilisationPlot {
    rows: Vec<(String, [Option<f64>; 3])>,
}

const DEVICES: [(&str, &str); 3] = [
    ("util_cpu", "cpu"),
    ("util_gpu", "gpu"),
    ("util_tsu", "tsu"),
];

impl UtilisationPlot {
    fn new(rows: &[VariantResult]) -> Self {
        UtilisationPlot {
            rows: rows
                .iter()
                .map(|r| (r.variant.clone(), DEVICES.map(|(m, _)| metric(r, m))))
                .collect(),
        }
    }

    fn size(&self) -> (u32, u32) {
        let longest = self
            .rows
            .iter()
            .map(|r| r.0.chars().count())
            .max()
            .unwrap_or(0);
        (
            560 + self.label_width(longest),
            130 + 42 * self.rows.len().max(1) as u32,
        )
    }

    fn label_width(&self, chars: usize) -> u32 {
        (chars as u32 * 7 + 24).clamp(80, 480)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Drawn {
        root.fill(&WHITE).map_err(e2s)?;
        let n = self.rows.len().max(1) as f64;
        let longest = self
            .rows
            .iter()
            .map(|r| r.0.chars().count())
            .max()
            .unwrap_or(0);
        let mut chart = ChartBuilder::on(root)
            .caption("utilisation per device", (SANS, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(self.label_width(longest))
            .build_cartesian_2d(0.0..1.0f64, 0.0..n)
            .map_err(e2s)?;
        chart
            .configure_mesh()
            .x_desc("busy fraction")
            .label_style((SANS, 12))
            .axis_desc_style((SANS, 14))
            .disable_y_mesh()
            .y_labels(0)
            .draw()
            .map_err(e2s)?;
        for (d, (_, device)) in DEVICES.iter().enumerate() {
            let colour = palette(d);
            let bars = self.rows.iter().enumerate().filter_map(|(i, (_, u))| {
                let u = u[d]?;
                // Top to bottom in the rows' order; cpu, gpu, tsu downwards.
                let top = n - i as f64 - 0.12 - d as f64 * 0.26;
                Some(Rectangle::new(
                    [(0.0, top - 0.24), (u.clamp(0.0, 1.0), top)],
                    colour.filled(),
                ))
            });
            chart
                .draw_series(bars)
                .map_err(e2s)?
                .label(*device)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 14, y + 5)], colour.filled())
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font((SANS, 12))
            .border_style(BLACK)
            .background_style(WHITE.mix(0.9))
            .draw()
            .map_err(e2s)?;
        // Each variant's name left of its bars, outside the plotting area.
        let style =
            TextStyle::from((SANS, 12).into_font()).pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Right,
                plotters::style::text_anchor::VPos::Center,
            ));
        for (i, (name, _)) in self.rows.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(0.0, n - i as f64 - 0.5));
            root.draw(&Text::new(name.clone(), (px - 8, py), style.clone()))
                .map_err(e2s)?;
        }
        root.present().map_err(e2s)
    }
}

/// Writes `latency_vs_load`, `energy_vs_p95` and `utilisation`, each as
/// `.svg` and `.png`, into `dir`; returns the files written.
pub fn plot(dir: &Path, rows: &[VariantResult]) -> Result<Vec<PathBuf>, WhatifError> {
    register_font();
    let mut written = Vec::new();
    let latency = LatencyPlot::new(rows);
    let energy = EnergyPlot::new(rows);
    let utilisation = UtilisationPlot::new(rows);
    macro_rules! emit {
        ($name:expr, $size:expr, $plot:expr) => {{
            let svg = dir.join(format!("{}.svg", $name));
            $plot
                .draw(&SVGBackend::new(&svg, $size).into_drawing_area())
                .map_err(|e| file_error(&svg, e))?;
            written.push(svg);
            let png = dir.join(format!("{}.png", $name));
            $plot
                .draw(&BitMapBackend::new(&png, $size).into_drawing_area())
                .map_err(|e| file_error(&png, e))?;
            written.push(png);
        }};
    }
    emit!("latency_vs_load", (900, 540), latency);
    emit!("energy_vs_p95", (900, 540), energy);
    emit!("utilisation", utilisation.size(), utilisation);
    Ok(written)
}

/// A padded, non-empty plotting range.
fn bounds(xs: &[f64]) -> (f64, f64) {
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.05).max(1e-9);
    (
        (lo - pad).max(if lo >= 0.0 { 0.0 } else { f64::NEG_INFINITY }),
        hi + pad,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_axis_when_values_span_more_than_ten_times() {
        assert!(wants_log(&[0.1, 59.0]));
        assert!(!wants_log(&[1.0, 10.0]));
        assert!(!wants_log(&[0.0, 59.0]), "zero has no logarithm");
        assert!(!wants_log(&[]));
    }

    /// The bundled font draws text into a bitmap with no system font.
    #[test]
    fn the_bundled_font_renders_text_in_bitmaps() {
        register_font();
        let (w, h) = (200u32, 40u32);
        let mut pixels = vec![255u8; (w * h * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut pixels, (w, h)).into_drawing_area();
            root.draw(&Text::new("cpu gpu tsu", (5, 10), (SANS, 20).into_font()))
                .unwrap();
            root.present().unwrap();
        }
        let inked = pixels
            .chunks(3)
            .filter(|p| p.iter().any(|&c| c < 128))
            .count();
        assert!(inked > 100, "text drew {inked} dark pixels");
    }
}
