//! The CPU sampler against exact enumeration on small random models: every
//! marginal within 4.5 Monte-Carlo standard errors, the standard error taken
//! from the bulk ESS. Seeds are fixed, so the test is deterministic.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thermoroute::diagnostics::diagnose;
use thermoroute::model::eprogram::{CategoricalVar, Constraint, ConstraintKind, EProgram};
use thermoroute::sampler::exact::exact_marginals;
use thermoroute::sampler::{SampleOptions, sample};
use thermoroute_tests::models::{
    SCHEDULE, assert_matches_exact, clamped_ising, program, random_factors, random_ising,
    spins_and_categoricals,
};

fn check(p: &EProgram, seed: u64, label: &str) {
    let draws = sample(p, SampleOptions::seeded(seed)).unwrap();
    assert_matches_exact(p, &draws, seed, label);
}

#[test]
fn pure_ising_random_graphs() {
    for seed in 0..4u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(100 + seed);
        let n = 10 + seed as usize; // 10..13 spins
        check(&program(random_ising(&mut rng, n, 0.35)), seed, "ising");
    }
}

#[test]
fn pure_ising_with_clamps_and_beta() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    check(&clamped_ising(&mut rng, 14), 11, "ising-clamped");
}

#[test]
fn periodic_lattice_4x3() {
    let schedule = SCHEDULE;
    let p = thermoroute::workloads::pm_j_lattice(4, 0.5, 0.3, 5, schedule);
    // 4x4 has 16 spins; take a 4x3 sub-problem by clamping the last row.
    let mut p = p;
    for v in 12..16 {
        p.clamp
            .insert(v.to_string(), if v % 2 == 0 { 1 } else { -1 });
    }
    check(&p, 3, "lattice");
}

#[test]
fn periodic_lattices_with_uniform_degree() {
    // Every spin has 4 neighbours: the kernel's fixed-degree path. The odd
    // 3x3 torus is not bipartite (more than 2 colours), the 4x4 one is.
    for (side, seed) in [(3, 31), (4, 32)] {
        let p = thermoroute::workloads::pm_j_lattice(side, 0.45, 0.3, seed, SCHEDULE);
        check(&p, seed, "torus");
    }
}

fn mixed(seed: u64) -> EProgram {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    // 8 spins, then 3 categoricals (3, 4 and 3 states): 11 variables.
    let third = CategoricalVar {
        states: 3,
        log_potential: Some(vec![-0.3, 0.0, 0.5]),
    };
    let mut p = spins_and_categoricals(&mut rng, 8, [third]);
    p.factors = random_factors(
        &mut rng,
        &[
            (&[8, 9], 12),
            (&[0, 10], 6),
            (&[1, 3, 9], 16),
            (&[5, 6, 7], 8),
        ],
    );
    p.constraints = vec![Constraint {
        kind: ConstraintKind::OneHot,
        vars: vec![2, 4, 5, 6],
        k: None,
    }];
    p
}

#[test]
fn spins_categoricals_factors_and_one_hot() {
    for seed in 0..3 {
        check(&mixed(seed), seed, "mixed");
    }
}

#[test]
fn clamps_inside_constraints_and_on_categoricals() {
    let mut p = mixed(9);
    p.clamp.insert("4".into(), -1);
    p.clamp.insert("9".into(), 2);
    check(&p, 5, "mixed-clamped");
}

#[test]
fn exactly_k_constraint_holds_in_every_draw() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let mut p = program(random_ising(&mut rng, 12, 0.3));
    p.constraints = vec![Constraint {
        kind: ConstraintKind::ExactlyK,
        vars: vec![0, 1, 2, 3, 4, 5, 6],
        k: Some(3),
    }];
    check(&p, 2, "exactly-k");
    let draws = sample(&p, SampleOptions::seeded(2)).unwrap();
    for c in 0..draws.chains {
        for s in 0..draws.samples {
            let up = (0..7).filter(|&v| draws.get(c, s, v) == 1).count();
            assert_eq!(up, 3, "chain {c} sample {s} breaks exactly_k");
        }
    }
}

#[test]
fn one_hot_holds_in_every_draw() {
    let p = mixed(4);
    let draws = sample(&p, SampleOptions::seeded(8)).unwrap();
    for c in 0..draws.chains {
        for s in 0..draws.samples {
            let up = [2, 4, 5, 6]
                .iter()
                .filter(|&&v| draws.get(c, s, v) == 1)
                .count();
            assert_eq!(up, 1);
        }
    }
}

#[test]
fn a_wrong_model_is_caught() {
    // Power check: sampling one model and comparing with another model's exact
    // marginals must fail the 4.5-sigma test somewhere.
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let p = program(random_ising(&mut rng, 10, 0.4));
    let mut q = p.clone();
    q.beta = 1.25;
    let exact = exact_marginals(&q).unwrap();
    let draws = sample(&p, SampleOptions::seeded(1)).unwrap();
    let diag = diagnose(&draws);
    let got = draws.state_marginals();
    let max_z = (0..10)
        .map(|v| {
            let se = (exact[v][1] * (1.0 - exact[v][1]) / diag.ess_bulk[v].unwrap()).sqrt();
            (got[v][1] - exact[v][1]).abs() / se
        })
        .fold(0.0, f64::max);
    assert!(
        max_z > 4.5,
        "a 25% temperature error went unnoticed (max z = {max_z:.2})"
    );
}

/// Categorical variables with 129..=256 states: state indices past 127 are
/// negative as `i8` and a 256-state range does not fit a `u8` count (issue
/// 19: `sample` panicked on both). A 200-state and a 256-state variable,
/// coupled to a spin pair and to each other, against enumeration.
#[test]
fn categoricals_with_200_and_256_states() {
    let mut rng = ChaCha8Rng::seed_from_u64(19);
    let mut p = program(random_ising(&mut rng, 2, 1.0));
    p.schedule.samples = 6000;
    let log_potential = |rng: &mut ChaCha8Rng, k: usize| -> Vec<f64> {
        (0..k).map(|_| rng.random_range(-1.5..1.5)).collect()
    };
    p.categorical = vec![
        CategoricalVar {
            states: 200,
            log_potential: Some(log_potential(&mut rng, 200)),
        },
        CategoricalVar {
            states: 256,
            log_potential: Some(log_potential(&mut rng, 256)),
        },
    ];
    p.factors = random_factors(&mut rng, &[(&[1, 2], 2 * 200), (&[2, 3], 200 * 256)]);
    let draws = sample(&p, SampleOptions::seeded(5)).unwrap();
    // States beyond 127 are drawn and read back as themselves.
    let got = draws.state_marginals();
    assert_eq!(got[2].len(), 200);
    assert_eq!(got[3].len(), 256);
    assert!(
        got[3][128..].iter().sum::<f64>() > 0.2,
        "upper states drawn"
    );
    assert!(got[3][255] > 0.0, "state 255 drawn");
    assert_matches_exact(&p, &draws, 5, "categorical-256");
}
