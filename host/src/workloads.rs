//! Generators of standard programs: benchmark lattices and test models.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::model::eprogram::{EProgram, Schedule};

/// A periodic `side x side` lattice with ±J couplings (each ±`coupling` with
/// probability 1/2) and biases uniform in [-`bias`, `bias`).
pub fn pm_j_lattice(
    side: usize,
    coupling: f64,
    bias: f64,
    seed: u64,
    schedule: Schedule,
) -> EProgram {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n = side * side;
    let at = |r: usize, c: usize| (r % side) * side + (c % side);
    let mut edges = Vec::with_capacity(2 * n);
    for r in 0..side {
        for c in 0..side {
            edges.push([at(r, c), at(r, c + 1)]);
            edges.push([at(r, c), at(r + 1, c)]);
        }
    }
    if side <= 2 {
        // Periodic wrap of a tiny lattice would repeat edges.
        let mut seen = std::collections::BTreeSet::new();
        edges.retain(|&[i, j]| i != j && seen.insert((i.min(j), i.max(j))));
    }
    let weights = pm_j_weights(&mut rng, edges.len(), coupling);
    let biases = (0..n)
        .map(|_| {
            if bias > 0.0 {
                rng.random_range(-bias..bias)
            } else {
                0.0
            }
        })
        .collect();
    EProgram::spins(biases, edges, weights, schedule)
}

/// A sparse random ±J model: `n` spins, each coupled to about `degree`
/// random others (edges drawn `n * degree / 2` times, duplicates and self
/// loops dropped), the benchmark shape of "sparse graphs of degree ≤ 16".
pub fn sparse_pm_j(
    n: usize,
    degree: usize,
    coupling: f64,
    seed: u64,
    schedule: Schedule,
) -> EProgram {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut seen = std::collections::BTreeSet::new();
    let mut edges = Vec::with_capacity(n * degree / 2);
    for _ in 0..n * degree / 2 {
        let (i, j) = (rng.random_range(0..n), rng.random_range(0..n));
        if i != j && seen.insert((i.min(j), i.max(j))) {
            edges.push([i, j]);
        }
    }
    let weights = pm_j_weights(&mut rng, edges.len(), coupling);
    EProgram::spins(vec![0.0; n], edges, weights, schedule)
}

/// `count` couplings, each ±`coupling` with probability 1/2.
fn pm_j_weights(rng: &mut ChaCha8Rng, count: usize, coupling: f64) -> Vec<f64> {
    (0..count)
        .map(|_| {
            if rng.random::<bool>() {
                coupling
            } else {
                -coupling
            }
        })
        .collect()
}
