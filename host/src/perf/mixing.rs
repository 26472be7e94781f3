//! How a sampler mixes on one program: the model simulate mode draws a
//! sampling node's diagnostics from, so that early stopping, diagnostics
//! levels, NonConvergence and the gate happen in simulation as they would in
//! execution.
//!
//! A [`MixingFit`] comes from real runs of the program (`calibrate --graph`
//! measures each backend; without one, simulate mode runs a short pilot on
//! the CPU reference sampler). Simulated outcomes scale it the way the
//! statistics scale: bulk ESS grows with the draws kept, R-hat − 1 and the
//! marginal error shrink as 1/draws and 1/√draws.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::diagnostics::diagnose;
use crate::hardware::MixingFit;
use crate::model::EProgram;
use crate::sampler::exact::exact_marginals;
use crate::sampler::{Draws, SampleError, SampleOptions, sample};

/// Largest program (spin updates of one run, all chains) simulate mode
/// pilots by itself; bigger ones need `calibrate --graph`.
pub const PILOT_MAX_UPDATES: f64 = 2e7;

/// Pilot runs behind one fit: enough for a spread, cheap beside a run.
pub const PILOT_RUNS: u64 = 3;

/// A simulated node's diagnostics, as execute mode would have reported them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimulatedOutcome {
    pub max_rhat: f64,
    pub min_ess_bulk: f64,
    pub constraint_rate: f64,
    pub max_error: Option<f64>,
}

/// One run's luck: unit-mean multiplicative factors on the ESS and on
/// R-hat − 1, drawn once when the node starts so that early-stop checks
/// and the final diagnostics agree.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixingLuck {
    pub ess: f64,
    pub rhat: f64,
}

fn lognormal_unit(cv: f64, rng: &mut impl Rng) -> f64 {
    if !(cv.is_finite() && cv > 0.0) {
        return 1.0;
    }
    let s2 = (1.0 + cv * cv).ln();
    let z: f64 = StandardNormal.sample(rng);
    (-0.5 * s2 + s2.sqrt() * z).exp()
}

impl MixingFit {
    /// Draws a run's luck from the fit's spread.
    pub fn luck(&self, rng: &mut impl Rng) -> MixingLuck {
        MixingLuck {
            ess: lognormal_unit(self.ess_cv, rng),
            rhat: lognormal_unit(self.rhat_cv, rng),
        }
    }

    /// The diagnostics after `samples` of the schedule's `total` samples
    /// per chain (`chains` chains), with this run's `luck`.
    pub fn outcome(
        &self,
        chains: usize,
        samples: usize,
        total: usize,
        luck: MixingLuck,
    ) -> SimulatedOutcome {
        let kept = (chains * samples).max(1) as f64;
        let share = total.max(1) as f64 / samples.max(1) as f64;
        SimulatedOutcome {
            max_rhat: 1.0 + self.rhat_excess * share * luck.rhat,
            min_ess_bulk: self.ess_per_draw * kept * luck.ess,
            constraint_rate: self.constraint_rate,
            max_error: self.max_error.map(|e| e * share.sqrt()),
        }
    }

    /// The first early-stop check (after `due` says one is due) at which
    /// the modelled diagnostics meet `rhat_target` and `ess_target`; `None`
    /// when the run goes to the end.
    pub fn early_stop_at(
        &self,
        chains: usize,
        total: usize,
        luck: MixingLuck,
        rhat_target: f64,
        ess_target: f64,
        due: impl Fn(usize, usize) -> bool,
    ) -> Option<usize> {
        let mut last = 0;
        for s in 1..total {
            if !due(s, last) {
                continue;
            }
            last = s;
            let o = self.outcome(chains, s, total, luck);
            if o.max_rhat <= rhat_target && o.min_ess_bulk >= ess_target {
                return Some(s);
            }
        }
        None
    }
}

/// Fraction of draws that satisfy every hard constraint of the program.
pub fn constraint_rate(program: &EProgram, draws: &Draws) -> f64 {
    if program.constraints.is_empty() || draws.samples == 0 {
        return 1.0;
    }
    let rows = draws.values.chunks_exact(draws.n_vars.max(1));
    let total = rows.len();
    let ok = rows
        .filter(|row| {
            program
                .constraints
                .iter()
                .all(|c| c.vars.iter().filter(|&&v| row[v] > 0).count() == c.required_up())
        })
        .count();
    ok as f64 / total as f64
}

/// What one run of a program says about mixing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunFigures {
    pub ess_per_draw: f64,
    pub rhat_excess: f64,
    pub constraint_rate: f64,
    pub max_error: Option<f64>,
}

/// The figures of one run's draws (exact error when the program is small
/// enough to enumerate).
pub fn run_figures(program: &EProgram, draws: &Draws, exact: Option<&[Vec<f64>]>) -> RunFigures {
    let d = diagnose(draws);
    let kept = (draws.chains * draws.samples).max(1) as f64;
    let max_error = exact.map(|exact| {
        let m = draws.state_marginals();
        m.iter()
            .zip(exact)
            .flat_map(|(a, b)| a.iter().zip(b).map(|(x, y)| (x - y).abs()))
            .fold(0.0, f64::max)
    });
    RunFigures {
        ess_per_draw: d.min_ess_bulk.unwrap_or(kept) / kept,
        rhat_excess: (d.max_rhat.unwrap_or(1.0) - 1.0).max(0.0),
        constraint_rate: constraint_rate(program, draws),
        max_error,
    }
}

/// Mean and coefficient of variation.
fn mean_cv(xs: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let n = xs.clone().count().max(1) as f64;
    let mean = xs.clone().sum::<f64>() / n;
    let var = xs.map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0).max(1.0);
    let cv = if mean > 0.0 { var.sqrt() / mean } else { 0.0 };
    (mean, cv)
}

/// A fit from several runs' figures.
pub fn fit(target: &str, program: &EProgram, runs: &[RunFigures], source: &str) -> MixingFit {
    let (ess_per_draw, ess_cv) = mean_cv(runs.iter().map(|r| r.ess_per_draw));
    let (rhat_excess, rhat_cv) = mean_cv(runs.iter().map(|r| r.rhat_excess));
    let (constraint_rate, _) = mean_cv(runs.iter().map(|r| r.constraint_rate));
    let errors: Vec<f64> = runs.iter().filter_map(|r| r.max_error).collect();
    MixingFit {
        target: target.into(),
        program_hash: program.canonical_hash(),
        ess_per_draw,
        ess_cv,
        rhat_excess,
        rhat_cv,
        constraint_rate,
        max_error: (!errors.is_empty()).then(|| errors.iter().sum::<f64>() / errors.len() as f64),
        runs: runs.len(),
        source: source.into(),
    }
}

/// Exact marginals when the program has at most 16 free variables.
pub fn small_exact(program: &EProgram) -> Option<Vec<Vec<f64>>> {
    (program.n_vars() <= 16)
        .then(|| exact_marginals(program))
        .flatten()
}

/// Simulate mode's pilot: `PILOT_RUNS` runs of the CPU reference sampler
/// at the program's schedule. `None` when the program is too big to pilot.
pub fn pilot(program: &EProgram, seed: u64) -> Result<Option<MixingFit>, SampleError> {
    let s = &program.schedule;
    let sweeps = (s.warmup + s.samples * s.steps_per_sample) as f64;
    let updates = sweeps * s.chains as f64 * program.n_vars() as f64;
    if updates > PILOT_MAX_UPDATES {
        return Ok(None);
    }
    let exact = small_exact(program);
    let mut runs = Vec::new();
    for r in 0..PILOT_RUNS {
        let options = SampleOptions {
            threads: Some(1),
            ..SampleOptions::seeded(seed.wrapping_add(r))
        };
        let draws = sample(program, options)?;
        runs.push(run_figures(program, &draws, exact.as_deref()));
    }
    Ok(Some(fit("*", program, &runs, "pilot")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fit_of(ess_per_draw: f64, rhat_excess: f64) -> MixingFit {
        MixingFit {
            target: "*".into(),
            program_hash: "sha256:x".into(),
            ess_per_draw,
            ess_cv: 0.0,
            rhat_excess,
            rhat_cv: 0.0,
            constraint_rate: 1.0,
            max_error: Some(0.01),
            runs: 3,
            source: "pilot".into(),
        }
    }

    const EVEN: MixingLuck = MixingLuck {
        ess: 1.0,
        rhat: 1.0,
    };

    #[test]
    fn outcomes_scale_with_the_draws_kept() {
        let f = fit_of(0.5, 0.004);
        let full = f.outcome(4, 1000, 1000, EVEN);
        assert_eq!(full.min_ess_bulk, 2000.0);
        assert!((full.max_rhat - 1.004).abs() < 1e-12);
        let quarter = f.outcome(4, 250, 1000, EVEN);
        assert_eq!(quarter.min_ess_bulk, 500.0);
        assert!((quarter.max_rhat - 1.016).abs() < 1e-12);
        assert!((quarter.max_error.unwrap() - 0.02).abs() < 1e-12);
    }

    #[test]
    fn early_stop_at_the_first_check_that_converges() {
        let f = fit_of(0.5, 0.004);
        // Checks every 100 samples; ESS 400 needs 200 samples on 4 chains,
        // R-hat <= 1.01 needs 1 + 0.004 * 1000 / s <= 1.01, s >= 400.
        let due = |s: usize, last: usize| s >= last + 100;
        assert_eq!(f.early_stop_at(4, 1000, EVEN, 1.01, 400.0, due), Some(400));
        assert_eq!(f.early_stop_at(4, 1000, EVEN, 1.001, 400.0, due), None);
    }

    #[test]
    fn a_pilot_measures_a_real_program() {
        let program: EProgram = serde_json::from_value(serde_json::json!({
            "ising": { "n": 3, "biases": [0.2, -0.1, 0.0], "edges": [[0, 1], [1, 2]], "weights": [0.5, -0.3] },
            "schedule": { "warmup": 50, "samples": 400, "steps_per_sample": 1, "chains": 4 }
        }))
        .expect("a valid program");
        let f = pilot(&program, 7).expect("samples").expect("small");
        assert_eq!(f.runs, 3);
        // Three weakly coupled spins mix almost independently draw to draw.
        assert!(f.ess_per_draw > 0.2 && f.ess_per_draw < 2.0, "{f:?}");
        assert!(f.rhat_excess < 0.05, "{f:?}");
        assert_eq!(f.constraint_rate, 1.0);
        // 1600 draws: the largest marginal error is a few standard errors.
        let e = f.max_error.expect("3 spins enumerate");
        assert!(
            e < 5.0 * (0.25f64 / (1600.0 * f.ess_per_draw)).sqrt(),
            "{e}"
        );
    }
}
