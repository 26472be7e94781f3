//! Convergence diagnostics: rank-normalised split R-hat and bulk ESS
//! (Vehtari, Gelman, Simpson, Carpenter and Bürkner, 2021).
//!
//! The computations follow ArviZ (`arviz-stats`) step by step, so that the
//! numbers agree with it on the same draws: split each chain in two (dropping
//! the middle draw of an odd-length chain), replace values by their pooled
//! average ranks, map ranks to normal scores with Blom's offset 3/8, then take
//! the classic R-hat and the Geyer initial-monotone-sequence ESS. R-hat is the
//! larger of the bulk and the folded (tail) versions.

use rayon::prelude::*;

mod acov;
mod binary;
mod general;

use binary::{Bits, Scratch, words_per_chain};

/// Series of `chains` chains of `draws` draws, row-major.
#[derive(Debug, Clone, Copy)]
pub struct Chains<'a> {
    pub values: &'a [f64],
    pub chains: usize,
    pub draws: usize,
}

impl Chains<'_> {
    fn row(&self, c: usize) -> &[f64] {
        &self.values[c * self.draws..(c + 1) * self.draws]
    }

    /// Each chain split into halves: (2 * chains) x (draws / 2).
    fn split(&self) -> (Vec<f64>, usize, usize) {
        let half = self.draws / 2;
        let mut out = Vec::with_capacity(2 * self.chains * half);
        for c in 0..self.chains {
            out.extend_from_slice(&self.row(c)[..half]);
        }
        for c in 0..self.chains {
            out.extend_from_slice(&self.row(c)[self.draws - half..]);
        }
        (out, 2 * self.chains, half)
    }

    /// The split chains as bits when they take at most two values: the bits
    /// (ones: the higher value) and the two values.
    fn split_two_valued(&self) -> Option<(Vec<u64>, (f64, f64))> {
        let (split, chains, half) = self.split();
        let lo = split.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = split.iter().copied().fold(lo, f64::max);
        if split.iter().any(|&v| v != lo && v != hi) {
            return None;
        }
        let w = words_per_chain(half);
        let mut words = vec![0u64; chains * w];
        for (c, row) in split.chunks_exact(half.max(1)).take(chains).enumerate() {
            for (i, &v) in row.iter().enumerate() {
                words[c * w + i / 64] |= u64::from(v == hi && hi > lo) << (i % 64);
            }
        }
        Some((words, (lo, hi)))
    }
}

/// Rank-normalised split R-hat (max of bulk and tail), NaN when undefined
/// (fewer than 2 chains or 4 draws, or no variation at all).
pub fn rhat_rank(x: Chains<'_>) -> f64 {
    if x.chains < 2 || x.draws < 4 || x.values.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    if let Some((words, values)) = x.split_two_valued() {
        let bits = Bits {
            words: &words,
            chains: 2 * x.chains,
            draws: x.draws / 2,
        };
        return binary::rhat(bits, values, &mut Scratch::default());
    }
    let (split, c, d) = x.split();
    general::rhat_split(&split, c, d)
}

/// Bulk effective sample size, NaN when undefined (fewer than 4 draws).
pub fn ess_bulk(x: Chains<'_>) -> f64 {
    if x.chains < 1 || x.draws < 4 || x.values.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    if let Some((words, _)) = x.split_two_valued() {
        let bits = Bits {
            words: &words,
            chains: 2 * x.chains,
            draws: x.draws / 2,
        };
        return binary::ess(bits, &mut Scratch::default());
    }
    let (split, c, d) = x.split();
    general::ess_split(&split, c, d)
}

/// Per-variable diagnostics of a set of draws.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Diagnostics {
    /// R-hat per variable (`null` in JSON where undefined, e.g. a clamped variable).
    pub rhat: Vec<Option<f64>>,
    /// Bulk ESS per variable.
    pub ess_bulk: Vec<Option<f64>>,
    /// Largest defined R-hat.
    pub max_rhat: Option<f64>,
    /// Smallest defined bulk ESS.
    pub min_ess_bulk: Option<f64>,
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// R-hat and bulk ESS for every variable of `draws`. Spins are diagnosed on
/// their ±1 draws; a categorical variable on the indicator of each state,
/// keeping the worst (largest R-hat, smallest ESS).
pub fn diagnose(draws: &crate::sampler::Draws) -> Diagnostics {
    let all: Vec<usize> = (0..draws.n_vars).collect();
    diagnose_vars(draws, &all)
}

/// Like [`diagnose`], for the listed variables only (entries follow `vars`);
/// the cheap "basic" level under load diagnoses a spread-out subset.
///
/// Variables go in tiles of [`TILE`], in parallel: a tile's draws are read
/// row by row (consecutive variables lie side by side in memory) into one
/// bit set per variable and split chain, then each variable is diagnosed from
/// its bits with the tile's reused buffers.
pub fn diagnose_vars(draws: &crate::sampler::Draws, vars: &[usize]) -> Diagnostics {
    let mut per_var = vec![(f64::NAN, f64::NAN); vars.len()];
    if draws.samples >= 4 && draws.chains >= 1 {
        vars.par_chunks(TILE)
            .zip(per_var.par_chunks_mut(TILE))
            .for_each_init(TileScratch::default, |scratch, (tile, out)| {
                diagnose_tile(draws, tile, out, scratch)
            });
    }
    let rhat: Vec<Option<f64>> = per_var.iter().map(|p| finite(p.0)).collect();
    let ess_bulk: Vec<Option<f64>> = per_var.iter().map(|p| finite(p.1)).collect();
    let max_rhat = rhat.iter().flatten().copied().reduce(f64::max);
    let min_ess_bulk = ess_bulk.iter().flatten().copied().reduce(f64::min);
    Diagnostics {
        rhat,
        ess_bulk,
        max_rhat,
        min_ess_bulk,
    }
}

/// Variables diagnosed together: one bit-set word per variable fills a
/// cache line of draws.
const TILE: usize = 64;

#[derive(Default)]
struct TileScratch {
    /// `bits[(h * words + w) * TILE + j]`: word `w` of split chain `h` of the
    /// tile's variable `j` (ones: draws > 0).
    bits: Vec<u64>,
    /// One variable's bits, contiguous.
    own: Vec<u64>,
    /// One categorical variable's split draws.
    series: Vec<i8>,
    diag: Scratch,
}

/// The draw row (chain, sample) holding position `i` of split chain `h`.
#[inline(always)]
fn split_row(draws: &crate::sampler::Draws, h: usize, i: usize) -> usize {
    let half = draws.samples / 2;
    let (c, start) = if h < draws.chains {
        (h, 0)
    } else {
        (h - draws.chains, draws.samples - half)
    };
    c * draws.samples + start + i
}

/// [`diagnose_tile_on`] compiled for the CPU it runs on: hardware popcount
/// (the lag sums count bits), AVX2 for the bit sets. The same integer and
/// float operations run in the same order, so results do not depend on it.
#[allow(unsafe_code)]
fn diagnose_tile(
    draws: &crate::sampler::Draws,
    tile: &[usize],
    out: &mut [(f64, f64)],
    s: &mut TileScratch,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("popcnt")
        {
            // SAFETY: the CPU has both features (checked just above).
            return unsafe { diagnose_tile_avx2(draws, tile, out, s) };
        }
        if std::arch::is_x86_feature_detected!("popcnt") {
            // SAFETY: the CPU has popcnt (checked just above).
            return unsafe { diagnose_tile_popcnt(draws, tile, out, s) };
        }
    }
    diagnose_tile_on(draws, tile, out, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,popcnt")]
fn diagnose_tile_avx2(
    draws: &crate::sampler::Draws,
    tile: &[usize],
    out: &mut [(f64, f64)],
    s: &mut TileScratch,
) {
    diagnose_tile_on(draws, tile, out, s)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "popcnt")]
fn diagnose_tile_popcnt(
    draws: &crate::sampler::Draws,
    tile: &[usize],
    out: &mut [(f64, f64)],
    s: &mut TileScratch,
) {
    diagnose_tile_on(draws, tile, out, s)
}

#[inline(always)]
fn diagnose_tile_on(
    draws: &crate::sampler::Draws,
    tile: &[usize],
    out: &mut [(f64, f64)],
    s: &mut TileScratch,
) {
    let split_chains = 2 * draws.chains;
    let half = draws.samples / 2;
    let words = words_per_chain(half);
    let contiguous = tile.windows(2).all(|p| p[1] == p[0] + 1);
    s.bits.clear();
    s.bits.resize(split_chains * words * TILE, 0);
    for h in 0..split_chains {
        let mut i = 0;
        while i < half {
            let at = (h * words + i / 64) * TILE;
            if contiguous && i % 8 == 0 && i + 8 <= half {
                // Eight draws at once: a byte of bits per variable from
                // byte-wide vector compares, then one shifted OR per word
                // (instead of eight).
                let mut bytes = [0u8; TILE];
                for k in 0..8 {
                    let base = split_row(draws, h, i + k) * draws.n_vars + tile[0];
                    let row = &draws.values[base..base + tile.len()];
                    for (b, &x) in bytes.iter_mut().zip(row) {
                        *b |= u8::from(x > 0) << k;
                    }
                }
                let shift = i % 64;
                for (d, &b) in s.bits[at..at + tile.len()].iter_mut().zip(&bytes) {
                    *d |= u64::from(b) << shift;
                }
                i += 8;
                continue;
            }
            let base = split_row(draws, h, i) * draws.n_vars;
            let dst = &mut s.bits[at..at + tile.len()];
            let shift = i % 64;
            if contiguous {
                let row = &draws.values[base + tile[0]..base + tile[0] + tile.len()];
                for (d, &x) in dst.iter_mut().zip(row) {
                    *d |= u64::from(x > 0) << shift;
                }
            } else {
                for (d, &v) in dst.iter_mut().zip(tile) {
                    *d |= u64::from(draws.values[base + v] > 0) << shift;
                }
            }
            i += 1;
        }
    }
    let with_rhat = draws.chains >= 2;
    for (j, (&v, result)) in tile.iter().zip(out.iter_mut()).enumerate() {
        s.own.clear();
        if draws.is_spin[v] {
            s.own
                .extend((0..split_chains * words).map(|k| s.bits[k * TILE + j]));
            *result = diagnose_bits(&s.own, split_chains, half, with_rhat, &mut s.diag);
            continue;
        }
        // A categorical variable: the indicator of each state, keeping the
        // worst (largest R-hat, smallest ESS).
        s.series.clear();
        for h in 0..split_chains {
            for i in 0..half {
                s.series
                    .push(draws.values[split_row(draws, h, i) * draws.n_vars + v]);
            }
        }
        let mut worst = (f64::NAN, f64::NAN);
        for k in 0..draws.states[v] {
            s.own.clear();
            s.own.resize(split_chains * words, 0);
            for (h, chain) in s.series.chunks_exact(half).enumerate() {
                for (i, &x) in chain.iter().enumerate() {
                    s.own[h * words + i / 64] |= u64::from(usize::from(x as u8) == k) << (i % 64);
                }
            }
            let (r, e) = diagnose_bits(&s.own, split_chains, half, with_rhat, &mut s.diag);
            if worst.0.is_nan() || r > worst.0 {
                worst.0 = r;
            }
            if worst.1.is_nan() || e < worst.1 {
                worst.1 = e;
            }
        }
        *result = worst;
    }
}

/// (R-hat, bulk ESS) of one variable's 0/1 split chains.
#[inline(always)]
fn diagnose_bits(
    words: &[u64],
    chains: usize,
    draws: usize,
    with_rhat: bool,
    scratch: &mut Scratch,
) -> (f64, f64) {
    let bits = Bits {
        words,
        chains,
        draws,
    };
    let rhat = if with_rhat {
        binary::rhat(bits, (0.0, 1.0), scratch)
    } else {
        f64::NAN
    };
    (rhat, binary::ess(bits, scratch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sampler::Draws;
    use rand::{Rng, SeedableRng};

    /// Draws of spins and 3-state variables: some mixing, some sticky, some
    /// stuck in one value per chain, some clamped.
    fn draws(chains: usize, samples: usize) -> Draws {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let n_vars = 9;
        let is_spin: Vec<bool> = (0..n_vars).map(|v| v % 3 != 2).collect();
        let states: Vec<usize> = is_spin.iter().map(|&s| if s { 2 } else { 3 }).collect();
        let flip = [0.5, 0.05, 0.0, 0.3, 0.01, 0.2, 0.0, 0.4, 0.1];
        let mut values = vec![0i8; chains * samples * n_vars];
        for v in 0..n_vars {
            for c in 0..chains {
                let mut x: i8 = if v == 6 { 1 } else { (c % 2) as i8 };
                for s in 0..samples {
                    if rng.random::<f64>() < flip[v] {
                        x = (x + 1) % states[v] as i8;
                    }
                    values[(c * samples + s) * n_vars + v] =
                        if is_spin[v] { 2 * x.min(1) - 1 } else { x };
                }
            }
        }
        Draws {
            chains,
            samples,
            n_vars,
            states,
            is_spin,
            values,
            spin_updates: 0,
            seconds: 0.0,
        }
    }

    /// The float path (ranks, FFT) on the same series.
    fn reference(d: &Draws, v: usize) -> (f64, f64) {
        let series = d.variable_series(v);
        let one = |values: &[f64]| {
            let x = Chains {
                values,
                chains: d.chains,
                draws: d.samples,
            };
            if x.chains < 1 || x.draws < 4 {
                return (f64::NAN, f64::NAN);
            }
            let (split, c, h) = x.split();
            let r = if x.chains < 2 {
                f64::NAN
            } else {
                general::rhat_split(&split, c, h)
            };
            (r, general::ess_split(&split, c, h))
        };
        if d.is_spin[v] {
            return one(&series);
        }
        let mut worst = (f64::NAN, f64::NAN);
        for k in 0..d.states[v] {
            let ind: Vec<f64> = series.iter().map(|&s| f64::from(s as usize == k)).collect();
            let (r, e) = one(&ind);
            if worst.0.is_nan() || r > worst.0 {
                worst.0 = r;
            }
            if worst.1.is_nan() || e < worst.1 {
                worst.1 = e;
            }
        }
        worst
    }

    #[test]
    fn bit_path_equals_float_path() {
        for (chains, samples) in [(4, 1000), (3, 301), (1, 200), (2, 9), (2, 130)] {
            let d = draws(chains, samples);
            let ours = diagnose(&d);
            for v in 0..d.n_vars {
                let (r, e) = reference(&d, v);
                let close = |a: Option<f64>, b: f64| match a {
                    Some(a) => (a - b).abs() < 1e-9 * b.abs().max(1.0),
                    None => !b.is_finite(),
                };
                assert!(
                    close(ours.rhat[v], r),
                    "{chains}x{samples} var {v}: R-hat {:?} vs {r}",
                    ours.rhat[v]
                );
                assert!(
                    close(ours.ess_bulk[v], e),
                    "{chains}x{samples} var {v}: ESS {:?} vs {e}",
                    ours.ess_bulk[v]
                );
            }
        }
    }
}
