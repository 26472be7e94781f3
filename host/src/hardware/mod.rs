//! The run profile (`--hardware HW.toml`): everything a run assumes about
//! the machine and how to treat work on it. Every field has a default, so an
//! empty file (or no file) describes the built-in machine: 8 CPU cores, one
//! GPU, one TSU.
//!
//! | file | sections |
//! |---|---|
//! | `devices.rs` | `[cpu]`, `[gpu]`, `[tsu]` (counts, power, chip), `[queues]` |
//! | `knobs.rs` | `[weights]`, `[budgets]`, `[policy]`, `[gate]` |
//! | `simulation.rs` | `[simulate]`, `[drift]`, `[[perf]]` priors, `[[faults]]` |
//! | `plugins.rs` | `[plugins]`: the operator's ceilings on plugins, deadlines, the breaker |
//!
//! This module holds the whole description, its loading and its checks.

mod devices;
mod knobs;
mod plugins;
mod simulation;

pub use devices::{CpuSpec, GpuSpec, QueueSpec, TsuService, TsuSpec, Window};
pub use knobs::{
    Budgets, FailClosed, GateSpec, GateThresholds, PolicySpec, StochasticityPolicy, Weights,
};
pub use plugins::PluginCeilings;
pub use simulation::{
    DriftSpec, Fault, FaultKind, MixingFit, PerfPrior, ServiceDistribution, ServiceFit,
    SimulateSpec,
};

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::device::{Device, Target};

/// Errors loading a hardware file. Fatal: nothing runs on a bad description.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HardwareError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {reason}")]
    Parse { file: PathBuf, reason: String },
    #[error("{file}: {path}: {reason}")]
    Invalid {
        file: PathBuf,
        path: String,
        reason: String,
    },
}

/// The whole description.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Hardware {
    pub cpu: CpuSpec,
    pub gpu: GpuSpec,
    pub tsu: TsuSpec,
    pub queues: QueueSpec,
    pub weights: Weights,
    pub budgets: Budgets,
    pub policy: PolicySpec,
    pub gate: GateSpec,
    pub simulate: SimulateSpec,
    pub drift: DriftSpec,
    /// The operator's ceilings on policy plugins.
    pub plugins: PluginCeilings,
    /// Performance priors that replace the built-in cost model for a
    /// (backend, program class) pair, e.g. measured calibration figures.
    pub perf: Vec<PerfPrior>,
    /// Service-time models measured by `thermoroute calibrate` (filled from
    /// `--calibration`; explicit `[[perf]]` entries win over them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub calibrated: Vec<ServiceFit>,
    /// How each backend mixes per program, measured by `calibrate --graph`
    /// (filled from `--calibration`); simulate mode draws sampling
    /// diagnostics from them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub mixing: Vec<MixingFit>,
    /// Injected faults: offline windows, slowdowns, execution errors.
    pub faults: Vec<Fault>,
}

impl Hardware {
    /// Reads and checks a TOML description.
    pub fn load(file: &Path) -> Result<Self, HardwareError> {
        let text = std::fs::read_to_string(file).map_err(|source| HardwareError::Io {
            file: file.to_path_buf(),
            source,
        })?;
        Self::from_toml(file, &text)
    }

    pub fn from_toml(file: &Path, text: &str) -> Result<Self, HardwareError> {
        let hw: Hardware = toml::from_str(text).map_err(|e| HardwareError::Parse {
            file: file.to_path_buf(),
            reason: e.to_string().trim().to_string(),
        })?;
        hw.check(file)?;
        Ok(hw)
    }

    /// Product of the slowdown factors active on `device` at `t_ms`.
    pub fn slowdown(&self, device: Device, t_ms: f64) -> f64 {
        self.faults
            .iter()
            .filter(|f| f.device == device && f.kind == FaultKind::Slowdown && f.active(t_ms))
            .map(|f| f.factor)
            .product()
    }

    /// Whether an injected fault or a TSU availability window takes `device` offline.
    pub fn offline(&self, device: Device, t_ms: f64) -> bool {
        let injected = self
            .faults
            .iter()
            .any(|f| f.device == device && f.kind == FaultKind::Offline && f.active(t_ms));
        let outside_window = device == Device::Tsu
            && !self.tsu.availability.is_empty()
            && !self.tsu.availability.iter().any(|w| w.contains(t_ms));
        injected || outside_window
    }

    /// Whether work started on `device` at `t_ms` fails by injection.
    pub fn injected_error(&self, device: Device, t_ms: f64) -> bool {
        self.faults
            .iter()
            .any(|f| f.device == device && f.kind == FaultKind::Error && f.active(t_ms))
    }

    /// Times at which availability can change (window and fault edges).
    pub fn availability_edges(&self) -> Vec<f64> {
        let mut edges: Vec<f64> = self
            .faults
            .iter()
            .flat_map(|f| [Some(f.from_ms), f.to_ms])
            .flatten()
            .chain(
                self.tsu
                    .availability
                    .iter()
                    .flat_map(|w| [w.from_ms, w.to_ms]),
            )
            .filter(|t| t.is_finite() && *t > 0.0)
            .collect();
        edges.sort_by(f64::total_cmp);
        edges.dedup();
        edges
    }

    fn check(&self, file: &Path) -> Result<(), HardwareError> {
        let bad = |path: &str, reason: String| {
            Err(HardwareError::Invalid {
                file: file.to_path_buf(),
                path: path.to_string(),
                reason,
            })
        };
        let order = &self.policy.sampling_order;
        if let Some(t) = order.iter().find(|t| !t.samples()) {
            return bad(
                "policy.sampling_order",
                format!("{t} does not sample; use tsu, gpu-sim and cpu-ref"),
            );
        }
        if let Some((i, t)) = order
            .iter()
            .enumerate()
            .find(|(i, t)| order[..*i].contains(t))
        {
            return bad(
                &format!("policy.sampling_order[{i}]"),
                format!("{t} is listed twice"),
            );
        }
        let positive = [
            ("cpu.active_w_per_core", self.cpu.active_w_per_core),
            ("cpu.gflops_per_core", self.cpu.gflops_per_core),
            ("cpu.spin_updates_per_s", self.cpu.spin_updates_per_s),
            ("gpu.gflops", self.gpu.gflops),
            ("gpu.transfer_gb_per_s", self.gpu.transfer_gb_per_s),
            ("gpu.spin_updates_per_s", self.gpu.spin_updates_per_s),
            ("tsu.spin_updates_per_s", self.tsu.spin_updates_per_s),
            ("budgets.timeout_factor", self.budgets.timeout_factor),
            (
                "budgets.default_timeout_ms",
                self.budgets.default_timeout_ms,
            ),
            ("drift.threshold", self.drift.threshold),
            ("tsu.clock_hz", self.tsu.clock_hz.unwrap_or(1.0)),
        ];
        for (path, x) in positive {
            if !(x.is_finite() && x > 0.0) {
                return bad(path, format!("must be a positive number, got {x}"));
            }
        }
        let non_negative = [
            ("cpu.overhead_us", self.cpu.overhead_us),
            ("gpu.active_w", self.gpu.active_w),
            ("gpu.launch_us", self.gpu.launch_us),
            ("gpu.deterministic_error", self.gpu.deterministic_error),
            ("gpu.sampling_bias", self.gpu.sampling_bias),
            ("tsu.energy_pj_per_update", self.tsu.energy_pj_per_update),
            ("tsu.setup_us", self.tsu.setup_us),
            ("tsu.setup_w", self.tsu.setup_w),
            ("tsu.sampling_bias", self.tsu.sampling_bias),
            ("weights.latency", self.weights.latency),
            ("weights.energy", self.weights.energy),
            ("weights.error", self.weights.error),
            ("weights.risk", self.weights.risk),
            ("budgets.early_stop_ess", self.budgets.early_stop_ess),
            ("simulate.cv", self.simulate.cv),
            ("drift.delta", self.drift.delta),
        ];
        for (path, x) in non_negative {
            if !(x.is_finite() && x >= 0.0) {
                return bad(path, format!("must be a finite number >= 0, got {x}"));
            }
        }
        let p = &self.plugins;
        let plugin_positive = [
            ("plugins.max_fuel_per_call", p.max_fuel_per_call),
            ("plugins.max_fuel_instantiate", p.max_fuel_instantiate),
            ("plugins.max_memory_mib", p.max_memory_mib),
            ("plugins.max_instances", u64::from(p.max_instances)),
            ("plugins.max_log_bytes", p.max_log_bytes as u64),
            ("plugins.deadline_ms", p.deadline_ms),
            ("plugins.instantiate_deadline_ms", p.instantiate_deadline_ms),
        ];
        for (path, x) in plugin_positive {
            if x == 0 {
                return bad(path, "must be at least 1".into());
            }
        }
        if p.deadline_ms > p.max_deadline_ms {
            return bad(
                "plugins.deadline_ms",
                format!(
                    "{} ms exceeds plugins.max_deadline_ms ({} ms)",
                    p.deadline_ms, p.max_deadline_ms
                ),
            );
        }
        if p.max_hold_ms > plugins::MAX_HOLD_LIMIT_MS {
            return bad(
                "plugins.max_hold_ms",
                format!(
                    "{} ms exceeds the largest hold limit ({} ms, an hour)",
                    p.max_hold_ms,
                    plugins::MAX_HOLD_LIMIT_MS
                ),
            );
        }
        if self.cpu.cores == 0 {
            return bad(
                "cpu.cores",
                "at least one CPU core is needed (control and effect nodes run there)".into(),
            );
        }
        if !(self.tsu.shared_fraction > 0.0 && self.tsu.shared_fraction <= 1.0) {
            return bad(
                "tsu.shared_fraction",
                format!("must be in (0, 1], got {}", self.tsu.shared_fraction),
            );
        }
        if !(0.0..=1.0).contains(&self.queues.batch_share) {
            return bad("queues.batch_share", "must be in [0, 1]".into());
        }
        if !(0.0..=1.0).contains(&self.budgets.min_sample_fraction) {
            return bad("budgets.min_sample_fraction", "must be in [0, 1]".into());
        }
        if self.budgets.slice_sweeps == 0 {
            return bad("budgets.slice_sweeps", "must be at least 1".into());
        }
        for (class, t) in [
            ("reversible", &self.gate.reversible),
            ("irreversible", &self.gate.irreversible),
        ] {
            let field = |name: &str| format!("gate.{class}.{name}");
            if !(t.min_ess.is_finite() && t.min_ess >= 0.0) {
                return bad(
                    &field("min_ess"),
                    format!("must be a finite number >= 0, got {}", t.min_ess),
                );
            }
            // R-hat is at least 1; a threshold below it no draws could meet.
            if !(t.max_rhat.is_finite() && t.max_rhat >= 1.0) {
                return bad(
                    &field("max_rhat"),
                    format!("must be a finite number >= 1, got {}", t.max_rhat),
                );
            }
            if !(t.min_constraint_rate.is_finite() && (0.0..=1.0).contains(&t.min_constraint_rate))
            {
                return bad(
                    &field("min_constraint_rate"),
                    format!(
                        "must be a fraction in [0, 1], got {}",
                        t.min_constraint_rate
                    ),
                );
            }
        }
        for (i, w) in self.tsu.availability.iter().enumerate() {
            if w.from_ms.partial_cmp(&w.to_ms) != Some(std::cmp::Ordering::Less) {
                return bad(
                    &format!("tsu.availability[{i}]"),
                    format!("window [{}, {}) is empty", w.from_ms, w.to_ms),
                );
            }
        }
        for (i, f) in self.faults.iter().enumerate() {
            let end = f.to_ms.unwrap_or(f64::INFINITY);
            if !f.from_ms.is_finite()
                || f.from_ms.partial_cmp(&end) != Some(std::cmp::Ordering::Less)
            {
                return bad(
                    &format!("faults[{i}]"),
                    format!("window [{}, {end}) is empty", f.from_ms),
                );
            }
            if !(f.factor.is_finite() && f.factor > 0.0) {
                return bad(
                    &format!("faults[{i}].factor"),
                    format!("must be a positive number, got {}", f.factor),
                );
            }
        }
        for (i, p) in self.perf.iter().enumerate() {
            if Target::from_name(&p.target).is_none() {
                return bad(
                    &format!("perf[{i}].target"),
                    format!(
                        "unknown target {:?} (expected cpu, gpu, tsu, gpu-sim or cpu-ref)",
                        p.target
                    ),
                );
            }
            if !(p.mean_ms.is_finite() && p.mean_ms > 0.0) {
                return bad(
                    &format!("perf[{i}].mean_ms"),
                    format!("must be a positive number, got {}", p.mean_ms),
                );
            }
            if let Some(e) = p.energy_j
                && !(e.is_finite() && e >= 0.0)
            {
                return bad(
                    &format!("perf[{i}].energy_j"),
                    format!("must be a finite number >= 0, got {e}"),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_default_machine() {
        let hw = Hardware::from_toml(Path::new("hw.toml"), "").unwrap();
        assert_eq!(hw, Hardware::default());
        assert_eq!(hw.slots(Device::Cpu), 8);
    }

    #[test]
    fn bad_values_name_their_field() {
        let err = Hardware::from_toml(Path::new("hw.toml"), "[tsu]\nshared_fraction = 0.0\n")
            .unwrap_err();
        assert!(err.to_string().contains("tsu.shared_fraction"), "{err}");
        let err = Hardware::from_toml(Path::new("hw.toml"), "[cpu]\ncorez = 3\n").unwrap_err();
        assert!(err.to_string().contains("corez"), "{err}");
        let err = Hardware::from_toml(
            Path::new("hw.toml"),
            "[[faults]]\ndevice = \"gpu\"\nkind = \"slowdown\"\nfactor = nan\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("faults[0].factor"), "{err}");
    }

    /// Issue 19: NaN, inf and `min_constraint_rate = 2.0` were accepted.
    #[test]
    fn gate_thresholds_name_their_field() {
        let gate = |class: &str, field: &str, value: &str| {
            let mut t =
                format!("[gate.{class}]\nalways_review = false\nrequire_provenance = false\n");
            for (f, v) in [
                ("min_ess", "20.0"),
                ("max_rhat", "1.1"),
                ("min_constraint_rate", "0.9"),
            ] {
                t += &format!("{f} = {}\n", if f == field { value } else { v });
            }
            Hardware::from_toml(Path::new("hw.toml"), &t)
        };
        for class in ["reversible", "irreversible"] {
            for (field, value) in [
                ("min_ess", "nan"),
                ("min_ess", "inf"),
                ("min_ess", "-1.0"),
                ("max_rhat", "nan"),
                ("max_rhat", "inf"),
                ("max_rhat", "0.5"),
                ("min_constraint_rate", "2.0"),
                ("min_constraint_rate", "nan"),
                ("min_constraint_rate", "-0.1"),
            ] {
                let err = gate(class, field, value).unwrap_err();
                assert!(
                    matches!(&err, HardwareError::Invalid { path, .. } if *path == format!("gate.{class}.{field}")),
                    "{class}.{field} = {value}: {err}"
                );
            }
            // The limits themselves are fine.
            gate(class, "min_constraint_rate", "1.0").unwrap();
            gate(class, "max_rhat", "1.0").unwrap();
            gate(class, "min_ess", "0.0").unwrap();
        }
    }

    #[test]
    fn faults_and_windows() {
        let hw = Hardware::from_toml(
            Path::new("hw.toml"),
            r#"
            [tsu]
            availability = [{ from_ms = 10, to_ms = 20 }]
            [[faults]]
            device = "cpu"
            kind = "slowdown"
            factor = 3
            from_ms = 5
            to_ms = 15
            "#,
        )
        .unwrap();
        assert!(hw.offline(Device::Tsu, 5.0));
        assert!(!hw.offline(Device::Tsu, 10.0));
        assert_eq!(hw.slowdown(Device::Cpu, 7.0), 3.0);
        assert_eq!(hw.slowdown(Device::Cpu, 15.0), 1.0);
        assert_eq!(hw.availability_edges(), vec![5.0, 10.0, 15.0, 20.0]);
    }
}
