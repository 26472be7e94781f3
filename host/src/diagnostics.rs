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
use rustfft::FftPlanner;
use rustfft::num_complex::Complex;
use statrs::distribution::{ContinuousCDF, Normal};

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
}

/// Each chain split into halves: (2 * chains) x (draws / 2).
fn split_chains(x: Chains<'_>) -> (Vec<f64>, usize, usize) {
    let half = x.draws / 2;
    let mut out = Vec::with_capacity(2 * x.chains * half);
    for c in 0..x.chains {
        out.extend_from_slice(&x.row(c)[..half]);
    }
    for c in 0..x.chains {
        out.extend_from_slice(&x.row(c)[x.draws - half..]);
    }
    (out, 2 * x.chains, half)
}

/// Pooled average ranks (1-based, ties share their mean rank).
fn average_ranks(x: &[f64]) -> Vec<f64> {
    // Draws take few distinct values: count them when that is cheap.
    let mut distinct: Vec<f64> = Vec::new();
    for &v in x {
        if !distinct.contains(&v) {
            distinct.push(v);
            if distinct.len() > 32 {
                return average_ranks_sorted(x);
            }
        }
    }
    distinct.sort_by(f64::total_cmp);
    let mut counts = vec![0usize; distinct.len()];
    let position = |v: f64| distinct.iter().position(|&d| d == v).unwrap_or(0);
    for &v in x {
        counts[position(v)] += 1;
    }
    let mut rank_of = Vec::with_capacity(distinct.len());
    let mut below = 0usize;
    for &c in &counts {
        rank_of.push(below as f64 + (c as f64 + 1.0) / 2.0);
        below += c;
    }
    x.iter().map(|&v| rank_of[position(v)]).collect()
}

fn average_ranks_sorted(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    ranks
}

/// Rank-normalised normal scores, as ArviZ's `_z_scale`.
fn z_scale(x: &[f64]) -> Vec<f64> {
    let normal = Normal::standard();
    let size = x.len() as f64;
    let ranks = average_ranks(x);
    // Few distinct ranks: cache the inverse CDF per rank.
    let mut cache: Vec<(f64, f64)> = Vec::new();
    ranks
        .iter()
        .map(|&r| {
            if let Some(&(_, z)) = cache.iter().find(|(k, _)| *k == r) {
                return z;
            }
            let z = normal.inverse_cdf((r - 0.375) / (size + 0.25));
            if cache.len() < 64 {
                cache.push((r, z));
            }
            z
        })
        .collect()
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

fn var_ddof1(x: &[f64]) -> f64 {
    let m = mean(x);
    x.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / (x.len() as f64 - 1.0)
}

/// Classic R-hat of a (chains x draws) array.
fn rhat_plain(x: &[f64], chains: usize, draws: usize) -> f64 {
    let rows: Vec<&[f64]> = x.chunks_exact(draws).take(chains).collect();
    let chain_mean: Vec<f64> = rows.iter().map(|r| mean(r)).collect();
    let chain_var: Vec<f64> = rows.iter().map(|r| var_ddof1(r)).collect();
    let n = draws as f64;
    let between = n * var_ddof1(&chain_mean);
    let within = mean(&chain_var);
    ((between / within + n - 1.0) / n).sqrt()
}

/// Rank-normalised split R-hat (max of bulk and tail), NaN when undefined
/// (fewer than 2 chains or 4 draws, or no variation at all).
pub fn rhat_rank(x: Chains<'_>) -> f64 {
    if x.chains < 2 || x.draws < 4 || x.values.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let (split, c, d) = split_chains(x);
    let bulk = rhat_plain(&z_scale(&split), c, d);
    let med = median(&split);
    let folded: Vec<f64> = split.iter().map(|v| (v - med).abs()).collect();
    let tail = rhat_plain(&z_scale(&folded), c, d);
    // Python's max(bulk, tail): the first unless the second is greater.
    if tail > bulk { tail } else { bulk }
}

fn median(x: &[f64]) -> f64 {
    let mut s = x.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// Bulk effective sample size, NaN when undefined (fewer than 4 draws).
pub fn ess_bulk(x: Chains<'_>) -> f64 {
    if x.chains < 1 || x.draws < 4 || x.values.iter().any(|v| v.is_nan()) {
        return f64::NAN;
    }
    let (split, c, d) = split_chains(x);
    ess_plain(&z_scale(&split), c, d)
}

/// Autocovariance at every lag, biased (divided by n), via FFT.
fn autocov(x: &[f64], planner: &mut FftPlanner<f64>) -> Vec<f64> {
    let n = x.len();
    let m = (2 * n).next_power_of_two();
    let mu = mean(x);
    let mut buf: Vec<Complex<f64>> = x.iter().map(|&v| Complex::new(v - mu, 0.0)).collect();
    buf.resize(m, Complex::new(0.0, 0.0));
    planner.plan_fft_forward(m).process(&mut buf);
    for z in &mut buf {
        *z = Complex::new(z.norm_sqr(), 0.0);
    }
    planner.plan_fft_inverse(m).process(&mut buf);
    buf[..n]
        .iter()
        .map(|z| z.re / (m as f64) / n as f64)
        .collect()
}

/// ESS of a (chains x draws) array by Geyer's initial monotone sequence, as
/// ArviZ's `_ess`.
fn ess_plain(x: &[f64], chains: usize, draws: usize) -> f64 {
    let (lo, hi) = x
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if hi - lo < 1e-15 {
        return x.len() as f64;
    }
    let mut planner = FftPlanner::new();
    let acov: Vec<Vec<f64>> = x
        .chunks_exact(draws)
        .map(|r| autocov(r, &mut planner))
        .collect();
    let chain_mean: Vec<f64> = x.chunks_exact(draws).map(mean).collect();
    let n = draws as f64;
    let mean_acov = |t: usize| acov.iter().map(|a| a[t]).sum::<f64>() / chains as f64;
    let mean_var = mean_acov(0) * n / (n - 1.0);
    let mut var_plus = mean_var * (n - 1.0) / n;
    if chains > 1 {
        var_plus += var_ddof1(&chain_mean);
    }
    let mut rho = vec![0.0; draws];
    let mut rho_even = 1.0;
    rho[0] = rho_even;
    let mut rho_odd = 1.0 - (mean_var - mean_acov(1)) / var_plus;
    rho[1] = rho_odd;
    let mut t: usize = 1;
    while t + 3 < draws && rho_even + rho_odd > 0.0 {
        rho_even = 1.0 - (mean_var - mean_acov(t + 1)) / var_plus;
        rho_odd = 1.0 - (mean_var - mean_acov(t + 2)) / var_plus;
        if rho_even + rho_odd >= 0.0 {
            rho[t + 1] = rho_even;
            rho[t + 2] = rho_odd;
        }
        t += 2;
    }
    let max_t = t as isize - 2;
    if rho_even > 0.0 {
        rho[(max_t + 1) as usize] = rho_even;
    }
    let mut t: isize = 1;
    while t <= max_t - 2 {
        let (tu, i) = (t as usize, t as usize);
        if rho[tu + 1] + rho[tu + 2] > rho[i - 1] + rho[i] {
            rho[tu + 1] = (rho[i - 1] + rho[i]) / 2.0;
            rho[tu + 2] = rho[tu + 1];
        }
        t += 2;
    }
    let total = (chains * draws) as f64;
    let head: f64 = rho[..(max_t + 1) as usize].iter().sum();
    let next = rho.get((max_t + 1) as usize).copied().unwrap_or(0.0);
    let mut tau = -1.0 + 2.0 * head + next;
    tau = tau.max(1.0 / total.log10());
    if rho.iter().any(|r| r.is_nan()) {
        return f64::NAN;
    }
    total / tau
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
pub fn diagnose_vars(draws: &crate::sampler::Draws, vars: &[usize]) -> Diagnostics {
    let per_var: Vec<(f64, f64)> = vars
        .par_iter()
        .map(|&v| {
            let series = draws.variable_series(v);
            let shape = |values: &[f64]| {
                let x = Chains {
                    values,
                    chains: draws.chains,
                    draws: draws.samples,
                };
                (rhat_rank(x), ess_bulk(x))
            };
            if draws.is_spin[v] {
                shape(&series)
            } else {
                let mut worst = (f64::NAN, f64::NAN);
                for k in 0..draws.states[v] {
                    let ind: Vec<f64> =
                        series.iter().map(|&s| f64::from(s as usize == k)).collect();
                    let (r, e) = shape(&ind);
                    if worst.0.is_nan() || r > worst.0 {
                        worst.0 = r;
                    }
                    if worst.1.is_nan() || e < worst.1 {
                        worst.1 = e;
                    }
                }
                worst
            }
        })
        .collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_average_ties() {
        assert_eq!(
            average_ranks(&[1.0, -1.0, 1.0, -1.0, -1.0]),
            vec![4.5, 2.0, 4.5, 2.0, 2.0]
        );
        assert_eq!(
            average_ranks_sorted(&[3.0, 1.0, 3.0, 2.0]),
            vec![3.5, 1.0, 3.5, 2.0]
        );
    }

    #[test]
    fn fft_autocov_matches_direct_sum() {
        let x: Vec<f64> = (0..37).map(|i| ((i * 7919) % 13) as f64).collect();
        let fast = autocov(&x, &mut FftPlanner::new());
        let mu = mean(&x);
        for lag in [0, 1, 5, 36] {
            let direct: f64 = (0..x.len() - lag)
                .map(|i| (x[i] - mu) * (x[i + lag] - mu))
                .sum::<f64>()
                / x.len() as f64;
            assert!(
                (fast[lag] - direct).abs() < 1e-9,
                "lag {lag}: {} vs {direct}",
                fast[lag]
            );
        }
    }
}
