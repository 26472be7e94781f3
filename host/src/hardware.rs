//! The hardware description (`--hardware HW.toml`): devices, power models,
//! queue limits, cost weights, budgets, gate thresholds, performance priors
//! and fault injection. Every field has a default, so an empty file (or no
//! file) describes the built-in machine: 8 CPU cores, one GPU, one TSU.

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
    /// Performance priors that replace the built-in cost model for a
    /// (backend, program class) pair, e.g. measured calibration figures.
    pub perf: Vec<PerfPrior>,
    /// Injected faults: offline windows, slowdowns, execution errors.
    pub faults: Vec<Fault>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CpuSpec {
    pub cores: usize,
    /// Power drawn by one busy core, watts.
    pub active_w_per_core: f64,
    /// Dense f64 throughput of one core, GFLOP/s.
    pub gflops_per_core: f64,
    /// Gibbs spin updates per second on one core (measured: ~1.7e8).
    pub spin_updates_per_s: f64,
    /// Fixed cost of running any node, microseconds.
    pub overhead_us: f64,
}

impl Default for CpuSpec {
    fn default() -> Self {
        CpuSpec {
            cores: 8,
            active_w_per_core: 12.0,
            gflops_per_core: 8.0,
            spin_updates_per_s: 1.7e8,
            overhead_us: 5.0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GpuSpec {
    /// Number of GPUs (0: none).
    pub count: usize,
    /// wgpu adapter to use in execute mode: "auto" (the one wgpu prefers),
    /// "none" (no GPU: work routed there falls back), or part of an
    /// adapter's name.
    pub adapter: String,
    pub active_w: f64,
    pub gflops: f64,
    /// Kernel launch and readback, microseconds.
    pub launch_us: f64,
    /// Host-device transfer, GB/s.
    pub transfer_gb_per_s: f64,
    /// Gibbs spin updates per second for GPU-simulated sampling.
    pub spin_updates_per_s: f64,
    /// Calibrated error of f32 kernels against the f64 CPU reference.
    pub deterministic_error: f64,
    /// Calibrated bias of GPU-simulated sampling (f32 arithmetic).
    pub sampling_bias: f64,
}

impl Default for GpuSpec {
    fn default() -> Self {
        GpuSpec {
            count: 1,
            adapter: "auto".into(),
            active_w: 200.0,
            gflops: 5000.0,
            launch_us: 40.0,
            transfer_gb_per_s: 12.0,
            spin_updates_per_s: 2.0e10,
            deterministic_error: 1e-6,
            sampling_bias: 5e-4,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TsuSpec {
    /// Number of TSU devices (0: none).
    pub count: usize,
    /// Fraction of each device this tenant gets (a shared TSU is slower).
    pub shared_fraction: f64,
    /// Spin updates per second of a whole device.
    pub spin_updates_per_s: f64,
    /// Energy per spin update, picojoules.
    pub energy_pj_per_update: f64,
    /// Loading a program image and conditioning, microseconds.
    pub setup_us: f64,
    /// Power while loading, watts.
    pub setup_w: f64,
    /// Largest program the device holds (p-bit cells).
    pub max_vars: usize,
    /// Most sweeps one run may request.
    pub max_sweeps: u64,
    /// Whether biases can be rewritten between runs (needed for `bias_from`).
    pub runtime_bias: bool,
    /// Calibrated bias of hardware marginals (analog noise, finite precision).
    pub sampling_bias: f64,
    /// Windows (milliseconds of virtual time) when the TSU is available;
    /// empty means always.
    pub availability: Vec<Window>,
    /// The chip the TSU driver simulates: a preset (`devkit`, `z1-like`).
    pub chip: String,
    /// Or a chip description file (TOML, the shape of `thermoroute_sim::ChipConfig`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chip_file: Option<PathBuf>,
    /// Largest quantisation error of any weight or bias the driver accepts
    /// (field units, beta included).
    pub precision_tolerance: f64,
    /// Faults injected into the simulated chip (stuck cells, RNG bias...).
    #[serde(default)]
    pub chip_faults: thermoroute_sim::Faults,
}

impl Default for TsuSpec {
    fn default() -> Self {
        TsuSpec {
            count: 1,
            shared_fraction: 1.0,
            spin_updates_per_s: 2.0e11,
            energy_pj_per_update: 2.0,
            setup_us: 30.0,
            setup_w: 2.0,
            max_vars: 65_536,
            max_sweeps: 1_000_000,
            runtime_bias: true,
            sampling_bias: 0.004,
            availability: Vec::new(),
            chip: "devkit".into(),
            chip_file: None,
            precision_tolerance: 0.05,
            chip_faults: thermoroute_sim::Faults::default(),
        }
    }
}

/// A half-open interval of virtual time, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    pub from_ms: f64,
    pub to_ms: f64,
}

impl Window {
    pub fn contains(&self, t_ms: f64) -> bool {
        self.from_ms <= t_ms && t_ms < self.to_ms
    }
}

/// Per-device queue limits (tasks waiting, not running).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueSpec {
    pub cpu: usize,
    pub gpu: usize,
    pub tsu: usize,
    /// Batch work is admitted only while a queue is below this fraction of its
    /// limit, so interactive work always finds room.
    pub batch_share: f64,
}

impl Default for QueueSpec {
    fn default() -> Self {
        QueueSpec {
            cpu: 256,
            gpu: 256,
            tsu: 64,
            batch_share: 0.5,
        }
    }
}

impl QueueSpec {
    pub fn limit(&self, device: Device) -> usize {
        match device {
            Device::Cpu => self.cpu,
            Device::Gpu => self.gpu,
            Device::Tsu => self.tsu,
        }
    }
}

/// Weights of `wL*Latency + wE*Energy + wA*Error + wR*RiskPenalty`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Weights {
    /// Per millisecond of p50 latency (queue wait included).
    pub latency: f64,
    /// Per joule.
    pub energy: f64,
    /// Per unit of marginal error.
    pub error: f64,
    /// Per unit of risk penalty.
    pub risk: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            latency: 1.0,
            energy: 10.0,
            error: 100.0,
            risk: 10.0,
        }
    }
}

/// Budget enforcement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Budgets {
    /// A node is stopped after this multiple of its p95 latency share.
    pub timeout_factor: f64,
    /// Timeout for nodes of graphs without a latency target, milliseconds.
    pub default_timeout_ms: f64,
    /// A timed-out sampling node keeps its draws if it has at least this
    /// fraction of the requested samples (fewer samples instead of fallback).
    pub min_sample_fraction: f64,
    /// Early stopping: stop sampling once max R-hat is at most this...
    pub early_stop_rhat: f64,
    /// ...and min bulk ESS at least this. 0 disables early stopping.
    pub early_stop_ess: f64,
    /// Sweeps per slice when sampling runs in execute mode (preemption and
    /// early-stop checks happen between slices).
    pub slice_sweeps: u64,
    /// Queue occupancy (0..1) above which diagnostics drop to `basic`...
    pub degrade_basic_at: f64,
    /// ...and above which they drop to `none`.
    pub degrade_none_at: f64,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            timeout_factor: 4.0,
            default_timeout_ms: 60_000.0,
            min_sample_fraction: 0.25,
            early_stop_rhat: 1.01,
            early_stop_ess: 0.0,
            slice_sweeps: 256,
            degrade_basic_at: 0.5,
            degrade_none_at: 0.9,
        }
    }
}

/// When hardware stochasticity (TSU, GPU-simulated sampling) may serve a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StochasticityPolicy {
    #[default]
    Always,
    ReversibleOnly,
    Never,
}

/// The built-in policy's knobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySpec {
    pub hardware_stochasticity: StochasticityPolicy,
    /// Risk penalty of serving an irreversible job's sampling from the TSU.
    pub tsu_irreversible_penalty: f64,
    /// Risk penalty of serving it from GPU-simulated sampling.
    pub gpu_sim_irreversible_penalty: f64,
}

impl Default for PolicySpec {
    fn default() -> Self {
        PolicySpec {
            hardware_stochasticity: StochasticityPolicy::Always,
            tsu_irreversible_penalty: 1.0,
            gpu_sim_irreversible_penalty: 0.2,
        }
    }
}

/// Gate thresholds for one risk class (all fields required when given).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateThresholds {
    /// Every effect of this class waits for a human.
    pub always_review: bool,
    pub min_ess: f64,
    pub max_rhat: f64,
    /// Fraction of draws satisfying the program's hard constraints.
    pub min_constraint_rate: f64,
    /// Backend, schedule and evidence hashes must be present.
    pub require_provenance: bool,
}

/// What a gate does when it cannot decide (a faulty plugin).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailClosed {
    #[default]
    Deny,
    Review,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateSpec {
    pub reversible: GateThresholds,
    pub irreversible: GateThresholds,
    pub fail_closed: FailClosed,
}

impl Default for GateSpec {
    fn default() -> Self {
        GateSpec {
            reversible: GateThresholds {
                always_review: false,
                min_ess: 20.0,
                max_rhat: 1.1,
                min_constraint_rate: 0.99,
                require_provenance: false,
            },
            irreversible: GateThresholds {
                always_review: false,
                min_ess: 400.0,
                max_rhat: 1.01,
                min_constraint_rate: 1.0,
                require_provenance: true,
            },
            fail_closed: FailClosed::Deny,
        }
    }
}

/// How simulate mode draws a duration around its mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceDistribution {
    Deterministic,
    #[default]
    Exponential,
    /// Lognormal with the coefficient of variation `cv`.
    Lognormal,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulateSpec {
    pub service: ServiceDistribution,
    pub cv: f64,
}

impl Default for SimulateSpec {
    fn default() -> Self {
        SimulateSpec {
            service: ServiceDistribution::Exponential,
            cv: 0.5,
        }
    }
}

/// Page–Hinkley drift detection on relative residuals `actual/predicted - 1`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DriftSpec {
    /// Tolerated drift per observation.
    pub delta: f64,
    /// Alarm threshold on the cumulative statistic.
    pub threshold: f64,
    /// Observations before the detector arms.
    pub min_observations: u64,
}

impl Default for DriftSpec {
    fn default() -> Self {
        DriftSpec {
            delta: 0.5,
            threshold: 40.0,
            min_observations: 50,
        }
    }
}

/// A measured or assumed performance figure for a (backend, class) pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerfPrior {
    /// Routing target name: cpu, gpu, tsu, gpu-sim, cpu-ref.
    pub target: String,
    /// Program class, or a prefix of one (`control` matches every control node).
    pub class: String,
    pub mean_ms: f64,
    #[serde(default)]
    pub energy_j: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The device is unavailable during the window.
    Offline,
    /// Work on the device takes `factor` times longer during the window.
    Slowdown,
    /// Work started on the device during the window fails.
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub device: Device,
    pub kind: FaultKind,
    #[serde(default)]
    pub from_ms: f64,
    /// End of the window (absent: until the end of the run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_ms: Option<f64>,
    #[serde(default = "one")]
    pub factor: f64,
}

fn one() -> f64 {
    1.0
}

impl Fault {
    pub fn active(&self, t_ms: f64) -> bool {
        self.from_ms <= t_ms && self.to_ms.is_none_or(|end| t_ms < end)
    }
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

    /// Slots (tasks running at once) of a device.
    pub fn slots(&self, device: Device) -> usize {
        match device {
            Device::Cpu => self.cpu.cores,
            Device::Gpu => self.gpu.count,
            Device::Tsu => self.tsu.count,
        }
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
