//! SVG plots of the results (plotters).

use std::path::{Path, PathBuf};

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

/// Writes `latency_vs_load.svg`, `energy_vs_p95.svg` and `utilisation.svg`.
pub fn plot(dir: &Path, rows: &[VariantResult]) -> Result<Vec<PathBuf>, WhatifError> {
    use plotters::prelude::*;
    let err = |file: &Path, e: &dyn std::fmt::Display| file_error(file, e.to_string());
    let palette = |i: usize| Palette99::pick(i).to_rgba();
    let metric = |r: &VariantResult, m: &str| r.metrics.get(m).map(|s| s.mean);
    let mut written = Vec::new();

    // Latency vs load, one line per series.
    let file = dir.join("latency_vs_load.svg");
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for (k, r) in rows.iter().enumerate() {
        let x = r.load_rate.unwrap_or(k as f64);
        let Some(y) = metric(r, "latency_p95_ms") else {
            continue;
        };
        match series.iter_mut().find(|(s, _)| *s == r.series) {
            Some((_, pts)) => pts.push((x, y)),
            None => series.push((r.series.clone(), vec![(x, y)])),
        }
    }
    {
        let (xs, ys): (Vec<f64>, Vec<f64>) =
            series.iter().flat_map(|(_, p)| p.iter().copied()).unzip();
        let root = SVGBackend::new(&file, (900, 540)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&file, &e))?;
        let (x0, x1) = bounds(&xs);
        let (_, y1) = bounds(&ys);
        let mut chart = ChartBuilder::on(&root)
            .caption("p95 latency vs load", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, 0.0..y1)
            .map_err(|e| err(&file, &e))?;
        chart
            .configure_mesh()
            .x_desc("arrival rate (jobs/s)")
            .y_desc("p95 latency (ms)")
            .draw()
            .map_err(|e| err(&file, &e))?;
        for (i, (name, mut pts)) in series.clone().into_iter().enumerate() {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let colour = palette(i);
            chart
                .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
                .map_err(|e| err(&file, &e))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour));
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(|e| err(&file, &e))?;
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(|e| err(&file, &e))?;
        root.present().map_err(|e| err(&file, &e))?;
    }
    written.push(file);

    // Energy per job vs p95 latency, the Pareto front joined.
    let file = dir.join("energy_vs_p95.svg");
    let points: Vec<(usize, (f64, f64))> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            Some((
                i,
                (metric(r, "energy_per_job_j")?, metric(r, "latency_p95_ms")?),
            ))
        })
        .collect();
    {
        let pts: Vec<(f64, f64)> = points.iter().map(|p| p.1).collect();
        let front = pareto_front(&pts);
        let (xs, ys): (Vec<f64>, Vec<f64>) = pts.iter().copied().unzip();
        let root = SVGBackend::new(&file, (900, 540)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&file, &e))?;
        let (x0, x1) = bounds(&xs);
        let (y0, y1) = bounds(&ys);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "energy per job vs p95 latency (Pareto front in red)",
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| err(&file, &e))?;
        chart
            .configure_mesh()
            .x_desc("energy per job (J)")
            .y_desc("p95 latency (ms)")
            .draw()
            .map_err(|e| err(&file, &e))?;
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))
            .map_err(|e| err(&file, &e))?;
        let mut front_pts: Vec<(f64, f64)> = front.iter().map(|&i| pts[i]).collect();
        front_pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(front_pts.clone(), RED.stroke_width(2)))
            .map_err(|e| err(&file, &e))?;
        chart
            .draw_series(front.iter().map(|&i| {
                Text::new(
                    rows[points[i].0].variant.clone(),
                    pts[i],
                    ("sans-serif", 11).into_font().color(&RED),
                )
            }))
            .map_err(|e| err(&file, &e))?;
        root.present().map_err(|e| err(&file, &e))?;
    }
    written.push(file);

    // Utilisation per backend, grouped bars per variant.
    let file = dir.join("utilisation.svg");
    {
        let devices = ["util_cpu", "util_gpu", "util_tsu"];
        let root =
            SVGBackend::new(&file, (900, 60 + 28 * rows.len().max(1) as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&file, &e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "utilisation per backend (cpu, gpu, tsu)",
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(20)
            .build_cartesian_2d(0.0..1.0f64, 0.0..rows.len().max(1) as f64)
            .map_err(|e| err(&file, &e))?;
        chart
            .configure_mesh()
            .x_desc("busy fraction")
            .disable_y_mesh()
            .draw()
            .map_err(|e| err(&file, &e))?;
        for (i, r) in rows.iter().enumerate() {
            for (d, m) in devices.iter().enumerate() {
                let Some(u) = metric(r, m) else { continue };
                let y0 = i as f64 + 0.1 + d as f64 * 0.25;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(0.0, y0), (u.clamp(0.0, 1.0), y0 + 0.22)],
                        palette(d).filled(),
                    )))
                    .map_err(|e| err(&file, &e))?;
            }
            chart
                .draw_series(std::iter::once(Text::new(
                    r.variant.clone(),
                    (0.5, i as f64 + 0.5),
                    ("sans-serif", 11).into_font(),
                )))
                .map_err(|e| err(&file, &e))?;
        }
        root.present().map_err(|e| err(&file, &e))?;
    }
    written.push(file);
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
