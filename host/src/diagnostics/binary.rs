//! R-hat and bulk ESS of two-valued series (spins, the indicator of one
//! state of a categorical variable) from bit sets, equal to ArviZ's float
//! computation to rounding.
//!
//! With two values the ranks are counts: the `N0` lower draws share rank
//! `(N0 + 1) / 2`, the others `N0 + (N1 + 1) / 2`, so the normal scores take
//! two values. R-hat then needs each chain's count of higher draws, and
//! the bulk ESS (invariant under an affine map of the series) is that of the
//! 0/1 indicator, whose autocovariance at lag `t` is an exact integer
//! expression in popcounts. Lags are computed only up to Geyer's truncation.

use statrs::distribution::{ContinuousCDF, Normal};

use super::acov::{FftScratch, MeanAcov, geyer_ess};

/// A two-valued series split into half-chains, one bit per draw (1: the
/// higher value), `words_per_chain(draws)` words per chain, bits past
/// `draws` zero.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bits<'a> {
    pub words: &'a [u64],
    pub chains: usize,
    pub draws: usize,
}

pub(crate) fn words_per_chain(draws: usize) -> usize {
    draws.div_ceil(64)
}

impl Bits<'_> {
    fn chain(&self, c: usize) -> &[u64] {
        let w = words_per_chain(self.draws);
        &self.words[c * w..(c + 1) * w]
    }
}

/// Reusable buffers: one per worker, none per variable.
#[derive(Default)]
pub(crate) struct Scratch {
    counts: Vec<u64>,
    rho: Vec<f64>,
    series: Vec<f64>,
    fft_acov: Vec<f64>,
    fft: FftScratch,
    /// Per chain: ones before lag `t` and ones in the last `t` draws.
    below: Vec<u64>,
    above: Vec<u64>,
    /// The table of lags past the switch: second differences, overlaps,
    /// prefix counts and one-runs of a chain.
    d2: Vec<i64>,
    overlap: Vec<i64>,
    prefix: Vec<u64>,
    runs: Vec<(i64, i64)>,
    /// Moments of a constant chain, keyed by (score bits, length).
    constant: Vec<(u64, usize, f64, f64)>,
}

#[inline(always)]
fn ones(y: &[u64]) -> u64 {
    y.iter().map(|w| u64::from(w.count_ones())).sum()
}

/// Ones among the first `t` bits.
#[cfg(test)]
fn ones_below(y: &[u64], t: usize) -> u64 {
    let (q, r) = (t / 64, t % 64);
    let mut s = ones(&y[..q]);
    if r > 0 {
        s += u64::from((y[q] & ((1u64 << r) - 1)).count_ones());
    }
    s
}

/// `sum_{i < n - t} y_i y_{i + t}`.
#[inline(always)]
fn lag_products(y: &[u64], t: usize) -> u64 {
    let (q, r) = (t / 64, t % 64);
    let w = y.len();
    let mut s = 0u64;
    if r == 0 {
        for i in 0..w - q {
            s += u64::from((y[i] & y[i + q]).count_ones());
        }
    } else {
        for i in 0..w - q {
            let high = if i + q + 1 < w {
                y[i + q + 1] << (64 - r)
            } else {
                0
            };
            s += u64::from((y[i] & ((y[i + q] >> r) | high)).count_ones());
        }
    }
    s
}

/// Biased autocovariance (divided by `n`) of one chain's indicator at lag
/// `t`, `k` its count of ones: `(n² S - n k (A + B) + (n - t) k²) / n³` with
/// `S` the lag products, `A` the ones before `n - t`, `B` those from `t`.
/// This returns the numerator, an exact integer (exact as f64 below 2^53);
/// callers sum the chains' numerators and divide once.
#[inline(always)]
fn acov_num(n: usize, k: u64, t: usize, s: u64, a: u64, b: u64) -> f64 {
    if n < 1 << 17 {
        let (ni, ki) = (n as i64, k as i64);
        (ni * ni * s as i64 - ni * ki * (a + b) as i64 + (ni - t as i64) * ki * ki) as f64
    } else {
        let (ni, ki) = (n as i128, i128::from(k));
        (ni * ni * i128::from(s) - ni * ki * i128::from(a + b) + (ni - t as i128) * ki * ki) as f64
    }
}

#[cfg(test)]
fn chain_acov(y: &[u64], n: usize, k: u64, t: usize) -> f64 {
    let a = ones_below(y, n - t);
    let b = k - ones_below(y, t);
    acov_num(n, k, t, lag_products(y, t), a, b) / (n as f64).powi(3)
}

/// Draws where a chain changes value (from 0 before the first draw).
#[inline(always)]
fn changes(y: &[u64]) -> u64 {
    let mut carry = 0u64;
    let mut c = 0u64;
    for &w in y {
        c += u64::from((w ^ ((w << 1) | carry)).count_ones());
        carry = w >> 63;
    }
    c
}

/// The runs of ones of a chain, as half-open `(start, end)` intervals.
#[inline(always)]
fn one_runs(y: &[u64], n: usize, runs: &mut Vec<(i64, i64)>) {
    runs.clear();
    let mut carry = 0u64;
    let mut start = None;
    for (wi, &w) in y.iter().enumerate() {
        let mut change = w ^ ((w << 1) | carry);
        carry = w >> 63;
        while change != 0 {
            let i = (wi * 64) as i64 + i64::from(change.trailing_zeros());
            change &= change - 1;
            match start.take() {
                None => start = Some(i),
                Some(s) => runs.push((s, i)),
            }
        }
    }
    if let Some(s) = start {
        runs.push((s, n as i64));
    }
}

/// Lag products `S_t` of one chain for every lag `0..n`, from its runs of
/// ones: a pair of runs overlaps under a shift `t` along a trapezoid, so
/// the second differences in `t` are four ±1 per pair; two prefix sums give
/// every `S_t`.
#[inline(always)]
fn lag_products_all(runs: &[(i64, i64)], n: usize, d2: &mut Vec<i64>, out: &mut Vec<i64>) {
    let ni = n as i64;
    // Index u + n for shifts u in [-n, n].
    d2.clear();
    d2.resize(2 * n + 2, 0);
    for &(sa, ea) in runs {
        for &(sb, eb) in runs {
            let u3 = eb - sa;
            let u0 = sb - ea;
            if u3 <= 0 || u0 >= ni {
                continue;
            }
            let short = (ea - sa).min(eb - sb);
            for (u, d) in [(u0, 1), (u0 + short, -1), (u3 - short, -1), (u3, 1)] {
                d2[(u + ni) as usize] += d;
            }
        }
    }
    out.clear();
    out.resize(n, 0);
    let (mut slope, mut f) = (0i64, 0i64);
    for (idx, &d) in d2[..2 * n].iter().enumerate() {
        let u = idx as i64 - ni;
        if u >= 0 {
            out[u as usize] = f;
        }
        slope += d;
        f += slope;
    }
}

/// Mean and variance (ddof 1) of a chain of `n` scores, `k` of them `z_hi`
/// and the rest `z_lo`. A constant chain is summed term by term, as the
/// series itself would be, so that R-hat of chains each stuck in a
/// different value comes out as the float computation gives it.
#[inline(always)]
fn chain_moments(
    k: u64,
    n: usize,
    z_lo: f64,
    z_hi: f64,
    memo: &mut Vec<(u64, usize, f64, f64)>,
) -> (f64, f64) {
    let nf = n as f64;
    if k == 0 || k == n as u64 {
        let z = if k == 0 { z_lo } else { z_hi };
        if let Some(&(_, _, m, v)) = memo.iter().find(|e| e.0 == z.to_bits() && e.1 == n) {
            return (m, v);
        }
        let mut s = 0.0;
        for _ in 0..n {
            s += z;
        }
        let m = s / nf;
        let d = (z - m) * (z - m);
        let mut v = 0.0;
        for _ in 0..n {
            v += d;
        }
        let v = v / (nf - 1.0);
        if memo.len() < 64 {
            memo.push((z.to_bits(), n, m, v));
        }
        return (m, v);
    }
    let (kf, lf) = (k as f64, (n as u64 - k) as f64);
    let m = (kf * z_hi + lf * z_lo) / nf;
    let v = (kf * (z_hi - m) * (z_hi - m) + lf * (z_lo - m) * (z_lo - m)) / (nf - 1.0);
    (m, v)
}

/// Classic R-hat of chains of two-valued scores, from each chain's count of
/// `z_hi` (`hi_count(c)`).
#[inline(always)]
fn rhat_two(
    chains: usize,
    n: usize,
    hi_count: impl Fn(usize) -> u64,
    (z_lo, z_hi): (f64, f64),
    memo: &mut Vec<(u64, usize, f64, f64)>,
) -> f64 {
    let nf = n as f64;
    let cf = chains as f64;
    let (mut sum_mean, mut sum_var) = (0.0, 0.0);
    for c in 0..chains {
        let (m, v) = chain_moments(hi_count(c), n, z_lo, z_hi, memo);
        sum_mean += m;
        sum_var += v;
    }
    let grand = sum_mean / cf;
    let mut dev = 0.0;
    for c in 0..chains {
        let (m, _) = chain_moments(hi_count(c), n, z_lo, z_hi, memo);
        dev += (m - grand) * (m - grand);
    }
    let between = nf * (dev / (cf - 1.0));
    let within = sum_var / cf;
    ((between / within + nf - 1.0) / nf).sqrt()
}

/// Normal scores of the lower and the higher value when `low` of `total`
/// pooled draws take the lower one (average ranks, Blom's offset).
fn scores(low: u64, total: u64) -> (f64, f64) {
    let normal = Normal::standard();
    let size = total as f64;
    let r_lo = (low as f64 + 1.0) / 2.0;
    let r_hi = low as f64 + ((total - low) as f64 + 1.0) / 2.0;
    let z = |r: f64| normal.inverse_cdf((r - 0.375) / (size + 0.25));
    (z(r_lo), z(r_hi))
}

#[inline(always)]
fn count_chains(bits: Bits<'_>, counts: &mut Vec<u64>) -> u64 {
    counts.clear();
    counts.extend((0..bits.chains).map(|c| ones(bits.chain(c))));
    counts.iter().sum()
}

/// Rank-normalised split R-hat (max of bulk and tail) of a series taking
/// the values `lo < hi` (the ones of `bits` are `hi`).
#[inline(always)]
pub(crate) fn rhat(bits: Bits<'_>, (lo, hi): (f64, f64), scratch: &mut Scratch) -> f64 {
    let n = bits.draws;
    let total = (bits.chains * n) as u64;
    let high = count_chains(bits, &mut scratch.counts);
    let low = total - high;
    let counts = &scratch.counts;
    let memo = &mut scratch.constant;
    let bulk = rhat_two(bits.chains, n, |c| counts[c], scores(low, total), memo);
    // The tail folds the draws around their median: |x - median|.
    let sorted = |i: u64| if i < low { lo } else { hi };
    let med = if total % 2 == 1 {
        sorted(total / 2)
    } else {
        (sorted(total / 2 - 1) + sorted(total / 2)) / 2.0
    };
    let (f_lo, f_hi) = ((lo - med).abs(), (hi - med).abs());
    let tail = if f_lo == f_hi {
        // Folded draws all equal: every score the middle one.
        rhat_two(bits.chains, n, |_| 0, scores(total, total), memo)
    } else if f_lo < f_hi {
        bulk
    } else {
        let n64 = n as u64;
        rhat_two(
            bits.chains,
            n,
            |c| n64 - counts[c],
            scores(high, total),
            memo,
        )
    };
    // Python's max(bulk, tail): the first unless the second is greater.
    if tail > bulk { tail } else { bulk }
}

/// Bulk ESS of a two-valued series (the ESS of its rank-normalised scores,
/// which is that of the indicator).
///
/// The first lags are direct popcount sums (cheap when chains mix and
/// Geyer's sequence stops early); once the lag passes the point where
/// tabulating every lag costs less, every lag is tabulated at once: from
/// the chains' runs of ones when they are few (slow mixing, which is when
/// the truncation lag is long), else by FFT.
#[inline(always)]
pub(crate) fn ess(bits: Bits<'_>, scratch: &mut Scratch) -> f64 {
    let n = bits.draws;
    let chains = bits.chains;
    let total = (chains * n) as u64;
    let high = count_chains(bits, &mut scratch.counts);
    if high == 0 || high == total {
        // ArviZ: no spread at all gives the draw count.
        return total as f64;
    }
    let nf = n as f64;
    let Scratch {
        counts,
        rho,
        series,
        fft_acov: table,
        fft,
        below,
        above,
        d2,
        overlap,
        prefix,
        runs,
        ..
    } = scratch;
    let counts = &*counts;
    let mean_of_means = counts.iter().map(|&k| k as f64 / nf).sum::<f64>() / chains as f64;
    let var_chain_means = counts
        .iter()
        .map(|&k| (k as f64 / nf - mean_of_means) * (k as f64 / nf - mean_of_means))
        .sum::<f64>()
        / (chains as f64 - 1.0);
    // Costs in word operations: a direct lag, a table by runs, by FFT.
    let per_lag = chains * (6 * words_per_chain(n) + 8);
    let by_runs: usize = (0..chains)
        .map(|c| {
            let one_runs = changes(bits.chain(c)) as usize / 2 + 1;
            4 * one_runs * one_runs
        })
        .sum::<usize>()
        + chains * 8 * n;
    let m = (2 * n).next_power_of_two();
    let by_fft = chains * 20 * m * m.trailing_zeros() as usize;
    below.clear();
    below.resize(chains, 0);
    above.clear();
    above.resize(chains, 0);
    let mut acov = BitAcov {
        bits,
        counts,
        switch: (by_runs.min(by_fft) / per_lag).max(2),
        by_runs: by_runs <= by_fft,
        at: 0,
        tabulated: false,
        below,
        above,
        table,
        d2,
        overlap,
        prefix,
        runs,
        series,
        fft,
    };
    geyer_ess(chains, n, var_chain_means, &mut acov, rho)
}

/// The mean autocovariance of a variable's chains of bits: direct popcount
/// sums below lag `switch`, a table of every lag from there on.
struct BitAcov<'a> {
    bits: Bits<'a>,
    counts: &'a [u64],
    switch: usize,
    /// Tabulate from runs of ones (else by FFT).
    by_runs: bool,
    /// The lag `below` and `above` stand at.
    at: usize,
    tabulated: bool,
    below: &'a mut Vec<u64>,
    above: &'a mut Vec<u64>,
    table: &'a mut Vec<f64>,
    d2: &'a mut Vec<i64>,
    overlap: &'a mut Vec<i64>,
    prefix: &'a mut Vec<u64>,
    runs: &'a mut Vec<(i64, i64)>,
    series: &'a mut Vec<f64>,
    fft: &'a mut FftScratch,
}

#[inline(always)]
fn bit(y: &[u64], i: usize) -> u64 {
    (y[i / 64] >> (i % 64)) & 1
}

impl MeanAcov for BitAcov<'_> {
    #[inline(always)]
    fn at(&mut self, t: usize) -> f64 {
        let (n, chains) = (self.bits.draws, self.bits.chains);
        let n3 = (n as f64) * (n as f64) * (n as f64);
        if t < self.switch {
            // Lags come in increasing order: move the counts up to `t`.
            while self.at < t {
                for c in 0..chains {
                    let y = self.bits.chain(c);
                    self.below[c] += bit(y, self.at);
                    self.above[c] += bit(y, n - 1 - self.at);
                }
                self.at += 1;
            }
            let mut sum = 0.0;
            for c in 0..chains {
                let (y, k) = (self.bits.chain(c), self.counts[c]);
                if k == 0 || k == n as u64 {
                    continue;
                }
                let (a, b) = (k - self.above[c], k - self.below[c]);
                sum += acov_num(n, k, t, lag_products(y, t), a, b);
            }
            return sum / n3 / chains as f64;
        }
        if !self.tabulated {
            self.tabulate();
            self.tabulated = true;
        }
        self.table[t] / chains as f64
    }
}

impl BitAcov<'_> {
    /// Every lag from `switch` on, summed over chains.
    #[inline(always)]
    fn tabulate(&mut self) {
        let (n, chains) = (self.bits.draws, self.bits.chains);
        let n3 = (n as f64) * (n as f64) * (n as f64);
        self.table.clear();
        self.table.resize(n, 0.0);
        if !self.by_runs {
            for c in 0..chains {
                let y = self.bits.chain(c);
                self.series.clear();
                self.series.extend((0..n).map(|i| bit(y, i) as f64));
                self.fft.add_autocov(self.series, self.table);
            }
            return;
        }
        for c in 0..chains {
            let (y, k) = (self.bits.chain(c), self.counts[c]);
            if k == 0 || k == n as u64 {
                continue;
            }
            one_runs(y, n, self.runs);
            lag_products_all(self.runs, n, self.d2, self.overlap);
            self.prefix.clear();
            self.prefix.push(0);
            for i in 0..n {
                self.prefix.push(self.prefix[i] + bit(y, i));
            }
            let prefix = &self.prefix;
            for (lag, acc) in self.table.iter_mut().enumerate().skip(self.switch) {
                let s = self.overlap[lag] as u64;
                *acc += acov_num(n, k, lag, s, prefix[n - lag], k - prefix[lag]);
            }
        }
        for acc in self.table.iter_mut() {
            *acc /= n3;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits_of(y: &[u8], chains: usize) -> Vec<u64> {
        let n = y.len() / chains;
        let w = words_per_chain(n);
        let mut out = vec![0u64; chains * w];
        for c in 0..chains {
            for i in 0..n {
                out[c * w + i / 64] |= u64::from(y[c * n + i]) << (i % 64);
            }
        }
        out
    }

    #[test]
    fn lag_products_from_runs_equal_popcounts() {
        for n in [5usize, 63, 64, 65, 130, 500] {
            for pattern in 0..4 {
                let y: Vec<u8> = (0..n)
                    .map(|i| match pattern {
                        0 => ((i * 7 + i / 3) % 5 < 2) as u8,
                        1 => (i / 17 % 2) as u8,
                        2 => u8::from(i == 0 || i + 1 == n),
                        _ => 1,
                    })
                    .collect();
                let w = bits_of(&y, 1);
                let (mut runs, mut d2, mut all) = (Vec::new(), Vec::new(), Vec::new());
                one_runs(&w, n, &mut runs);
                lag_products_all(&runs, n, &mut d2, &mut all);
                for t in 0..n {
                    assert_eq!(
                        all[t] as u64,
                        lag_products(&w, t),
                        "n {n} pattern {pattern} t {t}"
                    );
                }
            }
        }
    }

    #[test]
    fn popcount_autocov_equals_direct_sums() {
        for n in [5usize, 63, 64, 65, 130, 500] {
            let y: Vec<u8> = (0..n).map(|i| ((i * 7 + i / 3) % 5 < 2) as u8).collect();
            let w = bits_of(&y, 1);
            let k = y.iter().map(|&v| u64::from(v)).sum::<u64>();
            let mu = k as f64 / n as f64;
            for t in [0, 1, 2, 31, 63, 64, 65, n - 1] {
                if t >= n {
                    continue;
                }
                let direct: f64 = (0..n - t)
                    .map(|i| (f64::from(y[i]) - mu) * (f64::from(y[i + t]) - mu))
                    .sum::<f64>()
                    / n as f64;
                let fast = chain_acov(&w, n, k, t);
                assert!(
                    (fast - direct).abs() < 1e-12,
                    "n {n} t {t}: {fast} vs {direct}"
                );
            }
        }
    }
}
