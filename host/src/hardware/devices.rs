//! The devices of the profile: CPU cores, GPUs, TSUs (chip, sharing,
//! availability windows) and their queue limits.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::device::Device;

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
    /// Where the TSU's service time and energy come from: `throughput`
    /// (`spin_updates_per_s`, `energy_pj_per_update`) or `chip` (the
    /// configured chip's cycle model for the compiled image, what `tsu
    /// inspect` prints).
    pub service: TsuService,
    /// Overrides the chip's clock (what-if: "the same chip at twice the
    /// clock").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_hz: Option<f64>,
    /// Largest quantisation error of any weight or bias the driver accepts
    /// (field units, beta included).
    pub precision_tolerance: f64,
    /// Faults injected into the simulated chip (stuck cells, RNG bias...).
    #[serde(default)]
    pub chip_faults: thermoroute_sim::Faults,
}

/// How the scheduler and simulate mode figure a TSU node's service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TsuService {
    /// From the description's throughput and energy per update.
    Throughput,
    /// From the chip model's estimate for the compiled image (programs the
    /// chip cannot compile fall back to the throughput figures).
    #[default]
    Chip,
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
            service: TsuService::Chip,
            clock_hz: None,
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

impl super::Hardware {
    /// Slots (tasks running at once) of a device.
    pub fn slots(&self, device: Device) -> usize {
        match device {
            Device::Cpu => self.cpu.cores,
            Device::Gpu => self.gpu.count,
            Device::Tsu => self.tsu.count,
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
