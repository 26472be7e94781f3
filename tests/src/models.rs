//! Small random models and the exact-enumeration check every sampler (CPU,
//! GPU) must pass: each marginal within 4.5 Monte-Carlo standard errors, the
//! standard error taken from the bulk ESS.

use std::collections::BTreeMap;

use rand::Rng;
use rand_chacha::ChaCha8Rng;
use thermoroute::diagnostics::diagnose;
use thermoroute::model::eprogram::{CategoricalVar, EProgram, Factor, Ising, Schedule};
use thermoroute::sampler::Draws;
use thermoroute::sampler::exact::exact_marginals;

pub const SCHEDULE: Schedule = Schedule {
    warmup: 200,
    samples: 4000,
    steps_per_sample: 1,
    chains: 4,
};

/// `n` spins, each pair coupled with probability `p_edge`.
pub fn random_ising(rng: &mut ChaCha8Rng, n: usize, p_edge: f64) -> Ising {
    let mut edges = Vec::new();
    for i in 0..n {
        for j in i + 1..n {
            if rng.random::<f64>() < p_edge {
                edges.push([i, j]);
            }
        }
    }
    let weights = edges.iter().map(|_| rng.random_range(-0.8..0.8)).collect();
    let biases = (0..n).map(|_| rng.random_range(-0.6..0.6)).collect();
    Ising {
        n,
        biases,
        edges,
        weights,
    }
}

/// An EProgram of just `ising`, with [`SCHEDULE`].
pub fn program(ising: Ising) -> EProgram {
    EProgram {
        ising: Some(ising),
        categorical: vec![],
        factors: vec![],
        constraints: vec![],
        beta: 1.0,
        schedule: SCHEDULE,
        clamp: BTreeMap::new(),
    }
}

/// `n` random spins (edge probability 0.3) at beta 1.3, with spin 2 clamped
/// up and spin 9 down.
pub fn clamped_ising(rng: &mut ChaCha8Rng, n: usize) -> EProgram {
    let mut p = program(random_ising(rng, n, 0.3));
    p.beta = 1.3;
    p.clamp.insert("2".into(), 1);
    p.clamp.insert("9".into(), -1);
    p
}

/// `n_spins` random spins (edge probability 0.3) followed by categoricals:
/// 3 states with a unary potential, 4 states without, then `extra`.
pub fn spins_and_categoricals(
    rng: &mut ChaCha8Rng,
    n_spins: usize,
    extra: impl IntoIterator<Item = CategoricalVar>,
) -> EProgram {
    let mut p = program(random_ising(rng, n_spins, 0.3));
    p.categorical = vec![
        CategoricalVar {
            states: 3,
            log_potential: Some(vec![0.2, -0.4, 0.1]),
        },
        CategoricalVar {
            states: 4,
            log_potential: None,
        },
    ];
    p.categorical.extend(extra);
    p
}

/// A factor over each `(vars, table size)`, its log-potential table drawn
/// uniformly from [-1, 1), factor by factor in order.
pub fn random_factors(rng: &mut ChaCha8Rng, factors: &[(&[usize], usize)]) -> Vec<Factor> {
    factors
        .iter()
        .map(|&(vars, size)| Factor {
            vars: vars.to_vec(),
            log_potential: (0..size).map(|_| rng.random_range(-1.0..1.0)).collect(),
        })
        .collect()
}

/// Checks every state marginal of `draws` against enumeration of `p`.
pub fn assert_matches_exact(p: &EProgram, draws: &Draws, seed: u64, label: &str) {
    p.check(std::path::Path::new(label))
        .expect("test program is valid");
    let exact = exact_marginals(p).expect("small enough to enumerate");
    let diag = diagnose(draws);
    let got = draws.state_marginals();
    let mut worst = 0.0f64;
    for v in 0..p.n_vars() {
        let clamped = p.clamp.contains_key(&v.to_string());
        for (k, (&pe, &ps)) in exact[v].iter().zip(&got[v]).enumerate() {
            if clamped {
                assert_eq!(pe, ps, "{label}: clamped variable {v} state {k}");
                continue;
            }
            let ess = diag.ess_bulk[v].expect("free variables have an ESS");
            let se = (pe * (1.0 - pe) / ess).sqrt();
            let z = (ps - pe).abs() / se.max(1e-12);
            worst = worst.max(z);
            assert!(
                (ps - pe).abs() <= 4.5 * se,
                "{label} seed {seed}: var {v} state {k}: sampled {ps:.4}, exact {pe:.4}, se {se:.4} (ess {ess:.0}), z = {z:.2}"
            );
        }
    }
    // The draws must also show that the check had power: no marginal is trivially exact.
    assert!(
        worst > 0.0,
        "{label}: sampled marginals identical to exact ones is implausible"
    );
}
