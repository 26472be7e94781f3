//! How far simulate mode is from execute mode on the same work: the same
//! graph, hardware, seed and arrivals run both ways, compared per class
//! (p50, p95, mean energy, backend mix). What-if answers come from simulate
//! mode, so this is the figure that says how much to trust them.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::device::Target;
use crate::engine::{
    Arrivals, ClassSummary, Engine, EngineConfig, EngineError, JobClass, Mode, RunReport,
};
use crate::hardware::Hardware;
use crate::perf::PerfTables;
use crate::policy::Policy;

/// What one mode measured for a class.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModeFigures {
    /// Jobs completed.
    pub completed: u64,
    /// Median job latency, milliseconds.
    pub latency_p50_ms: Option<f64>,
    /// 95th percentile job latency, milliseconds.
    pub latency_p95_ms: Option<f64>,
    /// Mean energy per completed job, joules (modelled: power × busy time).
    pub mean_energy_j: Option<f64>,
}

/// Simulate against execute for one class.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FidelityRow {
    /// The job class (the graph's name).
    pub class: String,
    /// Execute mode's figures.
    pub execute: ModeFigures,
    /// Simulate mode's figures.
    pub simulate: ModeFigures,
    /// Simulate p50 / execute p50.
    pub p50_ratio: Option<f64>,
    /// Simulate p95 / execute p95.
    pub p95_ratio: Option<f64>,
    /// Simulate mean energy / execute mean energy.
    pub energy_ratio: Option<f64>,
    /// The largest difference in backend mix over the nodes that ran in
    /// both modes, in percentage points (total variation distance of the
    /// target shares).
    pub mix_difference_pp: f64,
    /// The largest difference over the class's nodes in the share of
    /// completed jobs that ran the node, in percentage points: branches
    /// taken differently (simulate mode takes each way with equal odds).
    pub ran_difference_pp: f64,
}

/// Runs `class` on `hw` in both modes with the same seed and Poisson
/// arrivals, and compares them.
pub fn compare_modes(
    class: &JobClass,
    hw: &Hardware,
    jobs: u64,
    rate_per_s: f64,
    seed: u64,
) -> Result<FidelityRow, EngineError> {
    let run = |mode: Mode| -> Result<RunReport, EngineError> {
        let config = EngineConfig {
            mode,
            seed,
            arrivals: Arrivals::Poisson { jobs, rate_per_s },
            record_jobs: false,
            ..EngineConfig::default()
        };
        let mut engine = Engine::new(
            vec![class.clone()],
            hw.clone(),
            Policy::native(hw),
            PerfTables::default(),
            config,
        )?;
        engine.run()?;
        Ok(engine.report())
    };
    let execute = run(Mode::Execute)?;
    let simulate = run(Mode::Simulate)?;
    let (e, s) = (&execute.classes[0], &simulate.classes[0]);
    Ok(FidelityRow {
        class: class.name.clone(),
        execute: figures(e),
        simulate: figures(s),
        p50_ratio: ratio(s.latency_p50_ms, e.latency_p50_ms),
        p95_ratio: ratio(s.latency_p95_ms, e.latency_p95_ms),
        energy_ratio: ratio(s.mean_energy_j, e.mean_energy_j),
        mix_difference_pp: mix_difference_pp(e, s),
        ran_difference_pp: ran_difference_pp(e, s),
    })
}

fn figures(c: &ClassSummary) -> ModeFigures {
    ModeFigures {
        completed: c.completed,
        latency_p50_ms: c.latency_p50_ms,
        latency_p95_ms: c.latency_p95_ms,
        mean_energy_j: c.mean_energy_j,
    }
}

fn ratio(simulated: Option<f64>, executed: Option<f64>) -> Option<f64> {
    match (simulated, executed) {
        (Some(s), Some(e)) if e > 0.0 => Some(s / e),
        _ => None,
    }
}

/// Largest total-variation distance between the two modes' target shares of
/// any node, in percentage points (0: same mix, 100: disjoint).
pub fn mix_difference_pp(a: &ClassSummary, b: &ClassSummary) -> f64 {
    fn shares(c: &ClassSummary) -> BTreeMap<&str, BTreeMap<Target, f64>> {
        c.backend_mix
            .iter()
            .map(|n| {
                let total: u64 = n.mix.values().sum();
                let share = n
                    .mix
                    .iter()
                    .map(|(&t, &k)| (t, k as f64 / total.max(1) as f64))
                    .collect();
                (n.node.as_str(), share)
            })
            .collect()
    }
    let (sa, sb) = (shares(a), shares(b));
    let nodes: BTreeSet<&str> = sa.keys().chain(sb.keys()).copied().collect();
    nodes
        .into_iter()
        .map(|n| match (sa.get(n), sb.get(n)) {
            (Some(x), Some(y)) if !x.is_empty() && !y.is_empty() => {
                let distance: f64 = Target::ALL
                    .iter()
                    .map(|t| (x.get(t).unwrap_or(&0.0) - y.get(t).unwrap_or(&0.0)).abs())
                    .sum();
                50.0 * distance
            }
            // Ran in one mode only: a branch, counted by `ran_difference_pp`.
            _ => 0.0,
        })
        .fold(0.0, f64::max)
}

/// Largest difference between the two modes in the share of completed jobs
/// that ran a node, in percentage points.
pub fn ran_difference_pp(a: &ClassSummary, b: &ClassSummary) -> f64 {
    fn ran(c: &ClassSummary) -> BTreeMap<&str, f64> {
        c.backend_mix
            .iter()
            .map(|n| {
                let runs: u64 = n.mix.values().sum();
                (n.node.as_str(), runs as f64 / c.completed.max(1) as f64)
            })
            .collect()
    }
    let (ra, rb) = (ran(a), ran(b));
    ra.keys()
        .chain(rb.keys())
        .map(|n| {
            let x = ra.get(n).copied().unwrap_or(0.0).min(1.0);
            let y = rb.get(n).copied().unwrap_or(0.0).min(1.0);
            100.0 * (x - y).abs()
        })
        .fold(0.0, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::NodeMix;
    use crate::model::graph::{Priority, Qos};

    fn class(mix: &[(&str, &[(Target, u64)])]) -> ClassSummary {
        ClassSummary {
            class: "c".into(),
            priority: Priority::Batch,
            qos: Qos::default(),
            submitted: 1,
            completed: 1,
            infeasible: 0,
            rejected: 0,
            failed: 0,
            latency_p50_ms: None,
            latency_p95_ms: None,
            mean_energy_j: None,
            energy_budget_j: None,
            slo_attainment: None,
            backend_mix: mix
                .iter()
                .map(|(node, m)| NodeMix {
                    node: (*node).into(),
                    mix: m.iter().copied().collect(),
                })
                .collect(),
        }
    }

    #[test]
    fn mix_difference_is_the_largest_share_moved() {
        let a = class(&[("s", &[(Target::Tsu, 3), (Target::CpuRef, 1)])]);
        let b = class(&[("s", &[(Target::CpuRef, 4)])]);
        assert_eq!(mix_difference_pp(&a, &b), 75.0);
        assert_eq!(mix_difference_pp(&a, &a), 0.0);
        // A node that ran in one mode only is a branch, not a mix change.
        let c = class(&[("t", &[(Target::Cpu, 1)])]);
        assert_eq!(mix_difference_pp(&a, &c), 0.0);
        assert_eq!(ran_difference_pp(&a, &c), 100.0);
        let mut half = class(&[("s", &[(Target::CpuRef, 2)])]);
        half.completed = 4;
        let mut all = class(&[("s", &[(Target::CpuRef, 4)])]);
        all.completed = 4;
        assert_eq!(ran_difference_pp(&half, &all), 50.0);
        assert_eq!(mix_difference_pp(&half, &all), 0.0);
    }

    #[test]
    fn ratios_need_both_figures() {
        assert_eq!(ratio(Some(2.0), Some(4.0)), Some(0.5));
        assert_eq!(ratio(None, Some(4.0)), None);
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
    }
}
