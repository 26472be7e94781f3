//! Autocovariances and Geyer's initial monotone sequence, shared by the
//! general (f64) and the two-valued (bit set) paths.
//!
//! ArviZ takes every chain's autocovariance at every lag by FFT, then reads
//! lags only up to Geyer's truncation point. Here the lags are asked for one
//! by one, so a caller can compute the first ones by direct sums and switch
//! to the FFT only when the truncation lag turns out long.

use rustfft::FftPlanner;
use rustfft::num_complex::Complex;

/// Lags computed by direct sums before switching to the FFT: a direct lag
/// costs one pass over the chain, the FFT about `4 log2(2n)` of them
/// (forward and inverse transforms of twice the length), so past this many
/// lags the FFT is cheaper. Both agree to rounding (~1e-15 relative).
pub(crate) fn direct_lag_limit(draws: usize) -> usize {
    let m = (2 * draws).next_power_of_two();
    4 * (m.trailing_zeros() as usize).max(1)
}

/// Reusable buffers for the FFT fallback.
#[derive(Default)]
pub(crate) struct FftScratch {
    planner: Option<FftPlanner<f64>>,
    buf: Vec<Complex<f64>>,
}

impl FftScratch {
    /// Adds the biased autocovariance (divided by `n`) of `x`, centred on its
    /// own mean, at every lag `0..x.len()` to `out`, as ArviZ's FFT does.
    pub(crate) fn add_autocov(&mut self, x: &[f64], out: &mut [f64]) {
        let n = x.len();
        let m = (2 * n).next_power_of_two();
        let mu = x.iter().sum::<f64>() / n as f64;
        let planner = self.planner.get_or_insert_with(FftPlanner::new);
        self.buf.clear();
        self.buf
            .extend(x.iter().map(|&v| Complex::new(v - mu, 0.0)));
        self.buf.resize(m, Complex::new(0.0, 0.0));
        planner.plan_fft_forward(m).process(&mut self.buf);
        for z in &mut self.buf {
            *z = Complex::new(z.norm_sqr(), 0.0);
        }
        planner.plan_fft_inverse(m).process(&mut self.buf);
        for (o, z) in out.iter_mut().zip(&self.buf[..n]) {
            *o += z.re / (m as f64) / n as f64;
        }
    }
}

/// The mean over chains of the biased autocovariance at a lag, asked for
/// in increasing order of lag.
pub(crate) trait MeanAcov {
    fn at(&mut self, t: usize) -> f64;
}

/// A closure as a [`MeanAcov`].
pub(crate) struct ByFn<F>(pub F);

impl<F: FnMut(usize) -> f64> MeanAcov for ByFn<F> {
    fn at(&mut self, t: usize) -> f64 {
        (self.0)(t)
    }
}

/// Bulk ESS of a (chains x draws) series by Geyer's initial monotone
/// sequence, step by step as ArviZ's `_ess`. `acov.at(t)` is the mean over
/// chains of the biased autocovariance at lag `t` (asked in increasing
/// order, and only up to the truncation lag); `var_chain_means` is the
/// sample variance (ddof 1) of the chain means; `rho` is scratch.
#[inline(always)]
pub(crate) fn geyer_ess(
    chains: usize,
    draws: usize,
    var_chain_means: f64,
    acov: &mut impl MeanAcov,
    rho: &mut Vec<f64>,
) -> f64 {
    let n = draws as f64;
    let mean_var = acov.at(0) * n / (n - 1.0);
    let mut var_plus = mean_var * (n - 1.0) / n;
    if chains > 1 {
        var_plus += var_chain_means;
    }
    rho.clear();
    rho.resize(draws, 0.0);
    let mut rho_even = 1.0;
    rho[0] = rho_even;
    let mut rho_odd = 1.0 - (mean_var - acov.at(1)) / var_plus;
    rho[1] = rho_odd;
    let mut t: usize = 1;
    while t + 3 < draws && rho_even + rho_odd > 0.0 {
        rho_even = 1.0 - (mean_var - acov.at(t + 1)) / var_plus;
        rho_odd = 1.0 - (mean_var - acov.at(t + 2)) / var_plus;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fft_autocov_matches_direct_sum() {
        let x: Vec<f64> = (0..37).map(|i| ((i * 7919) % 13) as f64).collect();
        let mut fast = vec![0.0; x.len()];
        FftScratch::default().add_autocov(&x, &mut fast);
        let mu = x.iter().sum::<f64>() / x.len() as f64;
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
