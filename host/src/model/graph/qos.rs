//! Quality-of-service targets for one job of a graph, and their checks.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::payload::Risk;
use crate::model::error::Issue;

/// Latency targets in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatencyTarget {
    pub p50: f64,
    pub p95: f64,
}

/// Accuracy target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccuracyTarget {
    /// Largest acceptable error of any marginal.
    pub max_error: f64,
}

/// Priority classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Interactive,
    #[default]
    Batch,
}

/// QoS targets for one job, as fixed by the product brief.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Qos {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<LatencyTarget>,
    /// Absolute energy budget in joules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_j: Option<f64>,
    /// Energy budget relative to the all-CPU baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_relative: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<AccuracyTarget>,
    #[serde(default)]
    pub risk: Risk,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default = "one_usize")]
    pub batch_size: usize,
}

fn one_usize() -> usize {
    1
}

impl Default for Qos {
    /// No latency, energy or accuracy targets; reversible, batch, one at a time.
    fn default() -> Self {
        Qos {
            latency_ms: None,
            energy_j: None,
            energy_relative: None,
            accuracy: None,
            risk: Risk::default(),
            priority: Priority::default(),
            batch_size: 1,
        }
    }
}

pub(super) fn check_qos(q: &Qos) -> Vec<Issue> {
    let mut out = Vec::new();
    if let Some(l) = q.latency_ms {
        if !(l.p50.is_finite() && l.p50 > 0.0) {
            out.push(Issue::new(
                "$.qos.latency_ms.p50",
                "must be a positive number of milliseconds",
            ));
        }
        if !(l.p95.is_finite() && l.p95 > 0.0) {
            out.push(Issue::new(
                "$.qos.latency_ms.p95",
                "must be a positive number of milliseconds",
            ));
        }
        if l.p50 > l.p95 {
            out.push(Issue::new(
                "$.qos.latency_ms",
                format!("p50 ({}) cannot exceed p95 ({})", l.p50, l.p95),
            ));
        }
    }
    if q.energy_j.is_some() && q.energy_relative.is_some() {
        out.push(Issue::new(
            "$.qos",
            "give either energy_j (absolute) or energy_relative, not both",
        ));
    }
    if let Some(e) = q.energy_j
        && !(e.is_finite() && e > 0.0)
    {
        out.push(Issue::new(
            "$.qos.energy_j",
            "must be a positive number of joules",
        ));
    }
    if let Some(e) = q.energy_relative
        && !(e.is_finite() && e > 0.0)
    {
        out.push(Issue::new(
            "$.qos.energy_relative",
            "must be a positive fraction of the all-CPU energy",
        ));
    }
    if let Some(a) = q.accuracy
        && !(a.max_error.is_finite() && a.max_error > 0.0 && a.max_error <= 1.0)
    {
        out.push(Issue::new("$.qos.accuracy.max_error", "must be in (0, 1]"));
    }
    if q.batch_size == 0 {
        out.push(Issue::new("$.qos.batch_size", "must be at least 1"));
    }
    out
}
