//! Budget decisions for sampling nodes as pure functions: when to check for
//! early stopping, whether the draws converged, how much diagnostics the
//! queue occupancy allows, and whether a timed-out node keeps its draws.

use crate::diagnostics::{Diagnostics, diagnose, diagnose_vars};
use crate::hardware::{Budgets, GateSpec};
use crate::policy::DiagnosticsLevel;
use crate::sampler::Draws;

pub use crate::perf::constraint_rate;

/// Early stopping is checked after at least 20 samples and then every tenth
/// of the run, so the check costs little beside the sampling.
pub fn early_stop_check_due(
    samples: usize,
    total: usize,
    last_checked: usize,
    budgets: &Budgets,
) -> bool {
    budgets.early_stop_ess > 0.0 && samples >= 20 && samples >= last_checked + total.div_ceil(10)
}

/// The draws meet the early-stopping targets (R-hat and bulk ESS).
pub fn converged_early(d: &Diagnostics, budgets: &Budgets) -> bool {
    d.max_rhat.is_some_and(|r| r <= budgets.early_stop_rhat)
        && d.min_ess_bulk.is_some_and(|e| e >= budgets.early_stop_ess)
}

/// Diagnostics degrade as the queues fill: full, basic (16 variables), none.
pub fn diagnostics_level(occupancy: f64, budgets: &Budgets) -> DiagnosticsLevel {
    if occupancy >= budgets.degrade_none_at {
        DiagnosticsLevel::None
    } else if occupancy >= budgets.degrade_basic_at {
        DiagnosticsLevel::Basic
    } else {
        DiagnosticsLevel::Full
    }
}

/// The R-hat above which a node did not converge: the loosest gate's.
pub fn nonconvergence_rhat(gate: &GateSpec) -> f64 {
    gate.reversible.max_rhat.max(gate.irreversible.max_rhat)
}

/// A timed-out execution keeps its draws when it has enough of them.
pub fn keeps_draws(samples: usize, total: usize, budgets: &Budgets) -> bool {
    !((samples as f64) < budgets.min_sample_fraction * total as f64 || samples < 2)
}

/// Diagnostics at `level`: `basic` looks at a spread-out subset of at most
/// 16 variables.
pub fn run_diagnostics(draws: &Draws, level: DiagnosticsLevel) -> Option<Diagnostics> {
    match level {
        DiagnosticsLevel::None => None,
        DiagnosticsLevel::Full => Some(diagnose(draws)),
        DiagnosticsLevel::Basic => {
            let n = draws.n_vars;
            let step = n.div_ceil(16).max(1);
            let vars: Vec<usize> = (0..n).step_by(step).collect();
            Some(diagnose_vars(draws, &vars))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::EProgram;

    #[test]
    fn early_stop_checks_are_spaced_and_can_be_off() {
        let on = Budgets {
            early_stop_ess: 100.0,
            ..Budgets::default()
        };
        assert!(!early_stop_check_due(19, 100, 0, &on));
        assert!(early_stop_check_due(20, 100, 0, &on));
        assert!(!early_stop_check_due(29, 100, 20, &on));
        assert!(early_stop_check_due(30, 100, 20, &on));
        assert!(!early_stop_check_due(50, 100, 0, &Budgets::default()));
        let d = |rhat, ess| Diagnostics {
            rhat: vec![Some(rhat)],
            ess_bulk: vec![Some(ess)],
            max_rhat: Some(rhat),
            min_ess_bulk: Some(ess),
        };
        assert!(converged_early(&d(1.005, 150.0), &on));
        assert!(!converged_early(&d(1.05, 150.0), &on));
        assert!(!converged_early(&d(1.005, 50.0), &on));
    }

    #[test]
    fn diagnostics_degrade_with_occupancy() {
        let b = Budgets::default();
        assert_eq!(diagnostics_level(0.1, &b), DiagnosticsLevel::Full);
        assert_eq!(
            diagnostics_level(b.degrade_basic_at, &b),
            DiagnosticsLevel::Basic
        );
        assert_eq!(diagnostics_level(0.95, &b), DiagnosticsLevel::None);
    }

    #[test]
    fn a_timeout_keeps_draws_above_the_minimum_fraction() {
        let b = Budgets::default();
        assert!(keeps_draws(25, 100, &b));
        assert!(!keeps_draws(24, 100, &b));
        assert!(!keeps_draws(1, 2, &b));
    }

    #[test]
    fn constraint_rate_counts_draws_that_satisfy_one_hot() {
        let program: EProgram = serde_json::from_value(serde_json::json!({
            "ising": { "n": 2, "biases": [0.0, 0.0], "edges": [], "weights": [] },
            "constraints": [{ "kind": "one_hot", "vars": [0, 1] }],
            "schedule": { "warmup": 0, "samples": 4, "steps_per_sample": 1, "chains": 1 }
        }))
        .expect("a valid program");
        let draws = Draws {
            chains: 1,
            samples: 4,
            n_vars: 2,
            states: vec![2, 2],
            is_spin: vec![true, true],
            values: vec![1, -1, -1, 1, 1, 1, -1, -1],
            spin_updates: 0,
            seconds: 0.0,
        };
        assert_eq!(constraint_rate(&program, &draws), 0.5);
    }
}
