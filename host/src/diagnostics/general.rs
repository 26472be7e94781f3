//! R-hat and bulk ESS of any real-valued series (more than two distinct
//! values), step by step as ArviZ computes them.

use statrs::distribution::{ContinuousCDF, Normal};

use super::acov::{ByFn, FftScratch, direct_lag_limit, geyer_ess};

/// Pooled average ranks (1-based, ties share their mean rank), as scipy's
/// `rankdata(method="average")`.
pub(crate) fn average_ranks(x: &[f64]) -> Vec<f64> {
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

pub(crate) fn average_ranks_sorted(x: &[f64]) -> Vec<f64> {
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

pub(crate) fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

pub(crate) fn var_ddof1(x: &[f64]) -> f64 {
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

/// Rank-normalised R-hat (max of bulk and tail) of split chains.
pub(crate) fn rhat_split(split: &[f64], chains: usize, draws: usize) -> f64 {
    let bulk = rhat_plain(&z_scale(split), chains, draws);
    let med = median(split);
    let folded: Vec<f64> = split.iter().map(|v| (v - med).abs()).collect();
    let tail = rhat_plain(&z_scale(&folded), chains, draws);
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

/// Bulk ESS of split chains.
pub(crate) fn ess_split(split: &[f64], chains: usize, draws: usize) -> f64 {
    ess_plain(&z_scale(split), chains, draws)
}

/// ESS of a (chains x draws) array by Geyer's initial monotone sequence:
/// autocovariances by direct sums for the first lags, by FFT past
/// [`direct_lag_limit`].
fn ess_plain(x: &[f64], chains: usize, draws: usize) -> f64 {
    let (lo, hi) = x
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if hi - lo < 1e-15 {
        return x.len() as f64;
    }
    let rows = &x[..chains * draws];
    let chain_mean: Vec<f64> = rows.chunks_exact(draws).map(mean).collect();
    // Each chain centred on its own mean, for the direct sums.
    let centred: Vec<f64> = rows
        .chunks_exact(draws)
        .zip(&chain_mean)
        .flat_map(|(r, &m)| r.iter().map(move |v| v - m))
        .collect();
    let limit = direct_lag_limit(draws);
    let mut fft: Option<Vec<f64>> = None;
    let mut fft_scratch = FftScratch::default();
    let mean_acov = |t: usize| {
        if t < limit {
            let sum: f64 = centred
                .chunks_exact(draws)
                .map(|r| {
                    r[..draws - t]
                        .iter()
                        .zip(&r[t..])
                        .map(|(a, b)| a * b)
                        .sum::<f64>()
                        / draws as f64
                })
                .sum();
            return sum / chains as f64;
        }
        let all = fft.get_or_insert_with(|| {
            let mut acc = vec![0.0; draws];
            for r in rows.chunks_exact(draws) {
                fft_scratch.add_autocov(r, &mut acc);
            }
            acc
        });
        all[t] / chains as f64
    };
    let mut rho = Vec::new();
    geyer_ess(
        chains,
        draws,
        var_ddof1(&chain_mean),
        &mut ByFn(mean_acov),
        &mut rho,
    )
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
}
