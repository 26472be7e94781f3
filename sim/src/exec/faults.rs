//! Injected faults: stuck cells, RNG bias and correlation, bias drift,
//! offline windows and clock throttling.

use serde::{Deserialize, Serialize};

use super::noise::SplitMix;

/// Injected faults. Everything is reproducible: the same seed and faults
/// give the same samples, cycle for cycle.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Cells stuck at a state: `[variable, ±1]`.
    pub stuck: Vec<(usize, i8)>,
    /// Overrides the chip's RNG bias (fraction of the noise range).
    pub rng_bias: Option<f64>,
    /// Overrides the chip's RNG correlation (probability of reusing noise).
    pub rng_correlation: Option<f64>,
    /// Every bias drifts by this much per second of device time (field units).
    pub bias_drift_per_s: f64,
    /// Windows of device time when the chip is offline.
    pub offline: Vec<TimeWindow>,
    /// Windows of device time when the clock runs `divisor` times slower.
    pub throttle: Vec<Throttle>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TimeWindow {
    pub from_s: f64,
    pub to_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Throttle {
    pub from_s: f64,
    pub to_s: f64,
    pub divisor: f64,
}

impl Faults {
    /// `count` distinct stuck cells among `n` variables, drawn from `seed`.
    pub fn random_stuck(seed: u64, count: usize, n: usize) -> Self {
        let mut rng = SplitMix::new(seed, 0x5eed);
        let mut stuck: Vec<(usize, i8)> = Vec::new();
        while stuck.len() < count.min(n) {
            let v = (rng.next() % n as u64) as usize;
            if !stuck.iter().any(|&(s, _)| s == v) {
                let state = if rng.next() & 1 == 0 { -1 } else { 1 };
                stuck.push((v, state));
            }
        }
        Faults {
            stuck,
            ..Default::default()
        }
    }
}
