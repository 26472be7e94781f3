//! Per-variant statistics: means with 95% confidence intervals, the best
//! variant per metric, ratios to a baseline.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Factors, RunResult};

/// The metrics, and whether lower is better.
pub const METRICS: [(&str, bool); 11] = [
    ("latency_p50_ms", true),
    ("latency_p95_ms", true),
    ("energy_per_job_j", true),
    ("expected_error", true),
    ("slo_attainment", false),
    ("rejected", true),
    ("infeasible", true),
    ("util_cpu", false),
    ("util_gpu", false),
    ("util_tsu", false),
    ("policy_faults", true),
];

/// Mean and 95% confidence half-width of one metric of one variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub mean: f64,
    pub ci95: f64,
    pub n: usize,
}

/// One row of the results table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantResult {
    pub variant: String,
    /// The level of each factor (`load`, `hardware`, `policy`, `qos`).
    #[serde(default, flatten)]
    pub factors: Factors,
    #[serde(default)]
    pub series: String,
    #[serde(default)]
    pub load_rate: Option<f64>,
    pub metrics: BTreeMap<String, Stat>,
    /// Metrics on which this variant is the best.
    pub best: Vec<String>,
    /// Ratio of each metric's mean to the baseline's (when one is named).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vs_baseline: BTreeMap<String, f64>,
}

/// Aggregates runs (from one or many shards) into per-variant rows, in the
/// cross product's order.
pub fn aggregate(mut runs: Vec<RunResult>, baseline: Option<&str>) -> Vec<VariantResult> {
    runs.sort_by_key(|r| r.spec.index);
    let mut order: Vec<String> = Vec::new();
    let mut by_variant: BTreeMap<String, Vec<&RunResult>> = BTreeMap::new();
    for r in &runs {
        if !by_variant.contains_key(&r.spec.variant) {
            order.push(r.spec.variant.clone());
        }
        by_variant
            .entry(r.spec.variant.clone())
            .or_default()
            .push(r);
    }
    let mut rows: Vec<VariantResult> = order
        .iter()
        .map(|v| {
            let rs = &by_variant[v];
            let mut metrics = BTreeMap::new();
            for (name, _) in METRICS {
                let xs: Vec<f64> = rs
                    .iter()
                    .filter_map(|r| r.metrics.get(name).copied())
                    .collect();
                if !xs.is_empty() {
                    metrics.insert(name.to_string(), stat(&xs));
                }
            }
            VariantResult {
                variant: v.clone(),
                factors: rs[0].spec.factors.clone(),
                series: rs[0].spec.series.clone(),
                load_rate: rs[0].spec.load_rate,
                metrics,
                best: Vec::new(),
                vs_baseline: BTreeMap::new(),
            }
        })
        .collect();
    for (name, lower) in METRICS {
        let best = rows
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.metrics.get(name).map(|s| (i, s.mean)))
            .reduce(|a, b| {
                let better = if lower { b.1 < a.1 } else { b.1 > a.1 };
                if better { b } else { a }
            });
        if let Some((i, _)) = best
            && rows.len() > 1
        {
            rows[i].best.push(name.to_string());
        }
    }
    if let Some(base) = baseline
        && let Some(b) = rows.iter().find(|r| r.variant.contains(base)).cloned()
    {
        for r in &mut rows {
            for (k, s) in &r.metrics {
                if let Some(bs) = b.metrics.get(k)
                    && bs.mean != 0.0
                {
                    r.vs_baseline.insert(k.clone(), s.mean / bs.mean);
                }
            }
        }
    }
    rows
}

fn stat(xs: &[f64]) -> Stat {
    let n = xs.len();
    let mean = xs.iter().sum::<f64>() / n as f64;
    let ci95 = if n > 1 {
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let t = statrs::distribution::StudentsT::new(0.0, 1.0, (n - 1) as f64)
            .map(|d| statrs::distribution::ContinuousCDF::inverse_cdf(&d, 0.975))
            .unwrap_or(f64::NAN);
        t * (var / n as f64).sqrt()
    } else {
        0.0
    };
    Stat { mean, ci95, n }
}
