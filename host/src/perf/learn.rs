//! The learning loop: per (target, program class), a robust mean and p95
//! of observed service times, and Page–Hinkley drift detection that resets
//! the level when the service changes.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::prior::Service;
use crate::device::Target;
use crate::hardware::DriftSpec;

/// Observations before the mean becomes an exponentially weighted average.
const MEAN_WINDOW: f64 = 20.0;
/// Weight of the prior, in observations.
const PRIOR_WEIGHT: f64 = 3.0;

/// What was learned about one (target, class) pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Learned {
    pub target: Target,
    pub class: String,
    /// Observations since the last drift reset.
    pub n: u64,
    /// All observations ever.
    pub total: u64,
    pub mean_ms: f64,
    pub p95_ms: f64,
    pub energy_j: f64,
    pub drift_events: u64,
    /// Page–Hinkley state (reference level and cumulative sums).
    #[serde(default)]
    detector: PageHinkley,
}

/// Two-sided Page–Hinkley test on relative residuals against a reference
/// level frozen when the detector arms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct PageHinkley {
    /// Sum of the observations made while arming (the reference is their mean).
    arming_sum: f64,
    /// Fast moving average of recent residuals: the new level after an alarm.
    recent_residual: f64,
    reference_ms: f64,
    up: f64,
    up_min: f64,
    down: f64,
    down_min: f64,
}

/// A detected change in a (target, class) pair's service time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    pub target: Target,
    pub class: String,
    /// `up` (slower) or `down` (faster).
    pub direction: String,
    pub reference_ms: f64,
    pub observed_ms: f64,
    /// Observations in the regime that drifted.
    pub observations: u64,
    pub statistic: f64,
}

impl Learned {
    pub(super) fn new(target: Target, class: String, prior: Service) -> Self {
        Learned {
            target,
            class,
            n: 0,
            total: 0,
            mean_ms: prior.mean_ms,
            p95_ms: prior.p95_ms,
            energy_j: prior.energy_j,
            drift_events: 0,
            detector: PageHinkley::default(),
        }
    }

    /// Checks figures read from a state file: the first field that cannot be
    /// a learned service (negative or non-finite, p95 below the mean, more
    /// observations since the last reset than ever), with why.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let non_negative = [
            ("mean_ms", self.mean_ms),
            ("p95_ms", self.p95_ms),
            ("energy_j", self.energy_j),
        ];
        for (field, v) in non_negative {
            if !(v.is_finite() && v >= 0.0) {
                return Err((field, format!("{v} is not a finite number >= 0")));
            }
        }
        if self.p95_ms < self.mean_ms {
            return Err((
                "p95_ms",
                format!("{} is below the mean {}", self.p95_ms, self.mean_ms),
            ));
        }
        if self.n > self.total {
            return Err(("n", format!("{} exceeds the total {}", self.n, self.total)));
        }
        let d = &self.detector;
        let detector = [
            d.arming_sum,
            d.recent_residual,
            d.reference_ms,
            d.up,
            d.up_min,
            d.down,
            d.down_min,
        ];
        if detector.iter().any(|v| !v.is_finite()) || d.reference_ms < 0.0 || d.arming_sum < 0.0 {
            return Err((
                "detector",
                "non-finite or negative drift-detector state".into(),
            ));
        }
        Ok(())
    }

    /// Adds one observation; returns a drift alarm when the detector fires.
    pub fn observe(&mut self, ms: f64, energy_j: f64, cfg: &DriftSpec) -> Option<Drift> {
        if !(ms.is_finite() && ms >= 0.0) {
            return None;
        }
        self.n += 1;
        self.total += 1;
        let weight = 1.0 / (self.n as f64 + PRIOR_WEIGHT).min(MEAN_WINDOW);
        // Winsorise so single slow runs move the mean only a little; a
        // sustained change is the drift detector's job (it resets the level).
        let clipped = if self.n > MEAN_WINDOW as u64 {
            ms.min(4.0 * self.mean_ms)
        } else {
            ms
        };
        self.mean_ms += weight * (clipped - self.mean_ms);
        self.energy_j += weight * (energy_j - self.energy_j);
        // Stochastic p95 tracking: moves up by 0.95 steps when exceeded, down
        // by 0.05 otherwise, so it rests where 5% of observations exceed it.
        let step = 0.2 * self.mean_ms.max(1e-9);
        self.p95_ms += if ms > self.p95_ms {
            0.95 * step
        } else {
            -0.05 * step
        };
        self.p95_ms = self.p95_ms.max(self.mean_ms);

        if self.n <= cfg.min_observations {
            self.detector.arming_sum += ms;
            if self.n == cfg.min_observations {
                let reference = self.detector.arming_sum / self.n as f64;
                self.detector = PageHinkley {
                    reference_ms: reference.max(1e-12),
                    ..Default::default()
                };
            }
            return None;
        }
        let d = &mut self.detector;
        let residual = ms / d.reference_ms - 1.0;
        d.recent_residual += 0.3 * (residual - d.recent_residual);
        d.up += residual - cfg.delta;
        d.up_min = d.up_min.min(d.up);
        d.down += -residual - cfg.delta;
        d.down_min = d.down_min.min(d.down);
        let (up_stat, down_stat) = (d.up - d.up_min, d.down - d.down_min);
        let direction = if up_stat > cfg.threshold {
            "up"
        } else if down_stat > cfg.threshold {
            "down"
        } else {
            return None;
        };
        let drift = Drift {
            target: self.target,
            class: self.class.clone(),
            direction: direction.into(),
            reference_ms: d.reference_ms,
            observed_ms: ms,
            observations: self.n,
            statistic: up_stat.max(down_stat),
        };
        // Jump to the level the recent residuals point at (not to one
        // observation), keep the p95/mean shape, and re-arm on the new regime.
        let level = (d.reference_ms * (1.0 + d.recent_residual)).max(1e-12);
        let shape = (self.p95_ms / self.mean_ms.max(1e-12)).max(1.0);
        self.n = 1;
        self.mean_ms = level;
        self.p95_ms = level * shape;
        self.drift_events += 1;
        self.detector = PageHinkley {
            arming_sum: level,
            ..Default::default()
        };
        Some(drift)
    }
}

/// The routing tables: learned figures per (target, class), indexed densely
/// so the engine's hot path does no hashing.
#[derive(Debug, Clone, Default)]
pub struct PerfTables {
    pub(super) entries: Vec<Learned>,
    pub(super) index: HashMap<(Target, String), usize>,
}

impl PerfTables {
    /// The slot of a (target, class) pair, created from `prior` if new.
    pub fn slot(&mut self, target: Target, class: &str, prior: Service) -> usize {
        if let Some(&i) = self.index.get(&(target, class.to_string())) {
            return i;
        }
        self.entries
            .push(Learned::new(target, class.to_string(), prior));
        let i = self.entries.len() - 1;
        self.index.insert((target, class.to_string()), i);
        i
    }

    pub fn get(&self, slot: usize) -> &Learned {
        &self.entries[slot]
    }

    pub fn get_mut(&mut self, slot: usize) -> &mut Learned {
        &mut self.entries[slot]
    }

    pub fn entries(&self) -> &[Learned] {
        &self.entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Exp};

    fn learned(mean: f64) -> Learned {
        Learned::new(
            Target::Cpu,
            "control".into(),
            Service {
                mean_ms: mean,
                p95_ms: mean * 3.0,
                energy_j: 0.0,
                error: 0.0,
            },
        )
    }

    #[test]
    fn learns_mean_and_p95_of_exponential_service() {
        let mut l = learned(5.0);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let exp = Exp::new(1.0).unwrap();
        let cfg = DriftSpec::default();
        for _ in 0..20_000 {
            assert!(l.observe(exp.sample(&mut rng), 0.0, &cfg).is_none());
        }
        // EWMA over ~20 observations of Exp(1): sd of the mean ~ 1/sqrt(39) ~ 0.16.
        assert!((l.mean_ms - 1.0).abs() < 0.6, "mean {}", l.mean_ms);
        assert!((l.p95_ms - 3.0).abs() < 1.0, "p95 {}", l.p95_ms);
    }

    #[test]
    fn drift_is_detected_within_bounded_observations() {
        let cfg = DriftSpec::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let exp = Exp::new(1.0).unwrap();
        let mut l = learned(1.0);
        for _ in 0..5_000 {
            assert!(
                l.observe(exp.sample(&mut rng), 0.0, &cfg).is_none(),
                "false alarm"
            );
        }
        let mut detected_after = None;
        for k in 1..=200 {
            if let Some(d) = l.observe(3.0 * exp.sample(&mut rng), 0.0, &cfg) {
                assert_eq!(d.direction, "up");
                detected_after = Some(k);
                break;
            }
        }
        let k = detected_after.expect("a 3x slowdown is detected");
        assert!(k <= 60, "detected after {k} observations");
        assert!(l.mean_ms > 1.5, "the table re-learns the slower level");
    }
}
