//! Cycle-level execution of an image: load, sweeps phase by phase, readout,
//! checkpoints; every stage counted in cycles and joules.
//!
//! [`TsuRun`] drives a run and charges it; `batch` sweeps the chains
//! computed together; `cells` and `block` are the two kernels (which
//! must draw identically); `noise` is the p-bit's randomness; `cost`
//! holds the counters and the closed-form [`estimate`]; `faults` what can
//! be injected.

mod batch;
mod block;
mod cells;
mod cost;
mod faults;
mod noise;

use std::sync::Arc;

use crate::config::ChipConfig;
use crate::cpu::CpuKernel;
use crate::image::TsuImage;
use batch::{Batch, Drift, lanes_of, run_batch, start_batch};
use block::Runs;
use cells::LANE_GROUP;
use cost::{kept, to_cycles};
use noise::{Comparator, Noise};

pub use cost::{Counters, estimate};
pub use faults::{Faults, Throttle, TimeWindow};

/// Errors while running. `Offline` is not fatal for a workload: the host
/// falls back to another backend.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    #[error("the TSU is offline at device time {at_s:.6} s")]
    Offline { at_s: f64 },
}

/// Draws read out of the chip: `values[(chain * samples + s) * n + var]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Draws {
    pub chains: usize,
    pub samples: usize,
    pub n: usize,
    pub values: Vec<i8>,
}

/// A program running on a chip. Deterministic from cycle 0 and the seed.
#[derive(Debug, Clone)]
pub struct TsuRun {
    image: Arc<TsuImage>,
    chip: ChipConfig,
    faults: Faults,
    comparator: Comparator,
    noise: Noise,
    /// Stuck cells as `(slot, state)`.
    stuck: Vec<(u32, i8)>,
    seed: u64,
    chains: usize,
    current: Batch,
    /// The block kernel's view of the couplings, when the image has runs of
    /// identically shaped cells (a grid's interior).
    runs: Option<Arc<Runs>>,
    /// The device batch running, and its sweeps so far.
    batch: usize,
    device_sweeps: u64,
    /// Device batches computed together (1 when results depend on time).
    group: usize,
    /// The instruction-set path the host computes with.
    kernel: CpuKernel,
    values: Vec<i8>,
    counters: Counters,
    suspended: bool,
}

impl TsuRun {
    /// Loads the image (coupling writes over the link) and seeds every chain.
    pub fn new(image: Arc<TsuImage>, chip: &ChipConfig, seed: u64, faults: Faults) -> Self {
        let chains = image.schedule.chains as usize;
        let slot_of = {
            let mut s = vec![0u32; image.n];
            for (slot, &v) in image.order.iter().enumerate() {
                s[v as usize] = slot as u32;
            }
            s
        };
        let stuck = faults
            .stuck
            .iter()
            .filter(|&&(v, _)| v < image.n)
            .map(|&(v, s)| (slot_of[v], s.signum()))
            .collect();
        let bias = faults.rng_bias.unwrap_or(chip.rng.bias);
        let corr = faults.rng_correlation.unwrap_or(chip.rng.correlation);
        let noise = Noise {
            offset: (bias * 4_294_967_296.0) as i64,
            reuse_below: (corr * 4_294_967_296.0).min(u32::MAX as f64) as u32,
        };
        let load_s =
            chip.link.latency_s + image.writes as f64 * 4.0 / chip.link.bandwidth_bytes_per_s;
        let load_cycles = to_cycles(load_s, chip.clock_hz);
        let counters = Counters {
            load_cycles,
            load_j: image.writes as f64 * chip.energy.coupling_write_j,
            seconds: load_cycles as f64 / chip.clock_hz,
            static_j: load_cycles as f64 / chip.clock_hz * chip.energy.static_w,
            ..Default::default()
        };
        let values = vec![0i8; chains * image.schedule.samples as usize * image.n];
        // Bias drift depends on device time, so such runs compute batch by batch.
        let group = if faults.bias_drift_per_s == 0.0 {
            (LANE_GROUP / image.copies.max(1)).max(1)
        } else {
            1
        };
        let current = start_batch(&image, seed, 0, group, chains);
        TsuRun {
            comparator: Comparator::new(&image),
            runs: Runs::build(&image).map(Arc::new),
            chip: chip.clone(),
            faults,
            noise,
            stuck,
            seed,
            chains,
            current,
            batch: 0,
            device_sweeps: 0,
            group,
            kernel: CpuKernel::active(),
            values,
            counters,
            suspended: false,
            image,
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Runs every cell through the per-cell kernel, never the block kernel
    /// (which must give the same draws: tests compare the two).
    pub fn without_block_kernel(mut self) -> Self {
        self.runs = None;
        self
    }

    /// Computes on instruction-set path `kernel` instead of
    /// [`CpuKernel::active`]; the draws are the same bits on every path.
    pub fn with_cpu_kernel(
        mut self,
        kernel: CpuKernel,
    ) -> Result<Self, crate::cpu::CpuKernelError> {
        self.kernel = kernel.check()?;
        Ok(self)
    }

    /// The instruction-set path the host computes with.
    pub fn cpu_kernel(&self) -> CpuKernel {
        self.kernel
    }

    /// Whether some cells go through the block kernel.
    pub fn uses_block_kernel(&self) -> bool {
        self.runs.is_some()
    }

    pub fn image(&self) -> &TsuImage {
        &self.image
    }

    /// Device sweeps in total: every batch runs the whole schedule.
    pub fn total_sweeps(&self) -> u64 {
        self.image.batches as u64 * self.image.schedule.sweeps_per_chain()
    }

    /// Device sweeps done so far.
    pub fn sweeps_done(&self) -> u64 {
        if self.is_done() {
            return self.total_sweeps();
        }
        self.batch as u64 * self.image.schedule.sweeps_per_chain() + self.device_sweeps
    }

    pub fn is_done(&self) -> bool {
        self.batch >= self.image.batches
    }

    /// Samples every chain has (0 until the last batch starts recording).
    pub fn samples_done(&self) -> usize {
        let s = self.image.schedule;
        if self.is_done() {
            s.samples as usize
        } else if self.batch + 1 == self.image.batches {
            kept(self.device_sweeps, &s) as usize
        } else {
            0
        }
    }

    fn clock_now(&self) -> f64 {
        let t = self.counters.seconds;
        let divisor = self
            .faults
            .throttle
            .iter()
            .filter(|w| w.from_s <= t && t < w.to_s)
            .map(|w| w.divisor)
            .fold(1.0, f64::max);
        self.chip.clock_hz / divisor
    }

    fn account(&mut self, cycles: u64, stage: fn(&mut Counters) -> &mut u64) {
        let clock = self.clock_now();
        *stage(&mut self.counters) += cycles;
        let dt = cycles as f64 / clock;
        self.counters.seconds += dt;
        self.counters.static_j += dt * self.chip.energy.static_w;
    }

    /// Runs up to `sweeps` more sweeps of the current batch (and of the next
    /// ones while budget is left). Returns the cycles this call took.
    pub fn advance(&mut self, sweeps: u64) -> Result<u64, SimError> {
        let t = self.counters.seconds;
        if self
            .faults
            .offline
            .iter()
            .any(|w| w.from_s <= t && t < w.to_s)
        {
            return Err(SimError::Offline { at_s: t });
        }
        if self.suspended {
            self.resume();
        }
        let before = self.counters.cycles();
        let mut budget = sweeps;
        let s = self.image.schedule;
        let per_chain = s.sweeps_per_chain();
        while budget > 0 && !self.is_done() {
            let done = self.device_sweeps;
            let k = budget.min(per_chain - done);
            let kept_before = kept(done, &s);
            let kept_after = kept(done + k, &s);
            // Bias drift in LSBs at the start of this slice, and per sweep.
            let sweep_s = (self.image.colours.len() as u64 * self.chip.cycles_per_phase) as f64
                / self.clock_now();
            let drift = Drift {
                start_lsb: self.faults.bias_drift_per_s * self.counters.seconds / self.image.lsb,
                per_sweep_lsb: self.faults.bias_drift_per_s * sweep_s / self.image.lsb,
            };
            let image_arc = Arc::clone(&self.image);
            let image = &*image_arc;
            // Later batches of a group were computed with the first one.
            if self.batch == self.current.first_batch {
                let first_chain = self.current.first_batch * image.copies;
                run_batch(
                    image,
                    &self.comparator,
                    self.noise,
                    &self.stuck,
                    self.runs.as_deref(),
                    drift,
                    self.kernel,
                    &mut self.current,
                    k,
                    &mut self.values,
                    first_chain,
                );
            }
            budget -= k;
            self.device_sweeps += k;
            let copies_running = lanes_of(image, self.batch, self.chains) as u64;
            let updates = k * image.n_free as u64 * copies_running;
            self.counters.cell_updates += updates;
            self.counters.update_j += updates as f64 * self.chip.energy.cell_update_j;
            let phase = image.colours.len() as u64 * self.chip.cycles_per_phase;
            self.account(k * phase, |c| &mut c.sweep_cycles);
            let new_samples = kept_after - kept_before;
            if new_samples > 0 {
                // One bit per node per copy crosses the link per kept sample.
                let bytes = (image.n as u64 * copies_running).div_ceil(8);
                let per_sample = to_cycles(
                    self.chip.link.latency_s + bytes as f64 / self.chip.link.bandwidth_bytes_per_s,
                    self.chip.clock_hz,
                );
                let hidden = if self.chip.double_buffered_readout {
                    s.steps_per_sample * phase
                } else {
                    0
                };
                self.account(new_samples * per_sample.saturating_sub(hidden), |c| {
                    &mut c.readout_cycles
                });
                self.counters.readout_j += (new_samples * image.n as u64 * copies_running) as f64
                    * self.chip.energy.readout_per_node_j;
            }
            if done + k == per_chain {
                self.batch += 1;
                self.device_sweeps = 0;
                let group_end = self.current.first_batch + self.current.batches;
                if !self.is_done() && self.batch >= group_end {
                    self.current =
                        start_batch(image, self.seed, self.batch, self.group, self.chains);
                }
            }
        }
        Ok(self.counters.cycles() - before)
    }

    /// Saves the chip state to the host at a sweep boundary (preemption):
    /// one bit per cell of every running copy crosses the link (the noise is
    /// counter-based, so the sweep count is all the RNG state there is).
    pub fn suspend(&mut self) {
        if self.suspended || self.is_done() {
            return;
        }
        let cycles = self.checkpoint_cycles();
        self.account(cycles, |c| &mut c.checkpoint_cycles);
        self.suspended = true;
    }

    fn resume(&mut self) {
        let cycles = self.checkpoint_cycles();
        self.account(cycles, |c| &mut c.checkpoint_cycles);
        self.suspended = false;
    }

    fn checkpoint_cycles(&self) -> u64 {
        let lanes = lanes_of(&self.image, self.batch, self.chains) as u64;
        let bytes = (self.image.order.len() as u64 * lanes).div_ceil(8) + 8 * lanes;
        to_cycles(
            self.chip.link.latency_s + bytes as f64 / self.chip.link.bandwidth_bytes_per_s,
            self.chip.clock_hz,
        )
    }

    /// The draws read out so far (all of them once done).
    pub fn draws(&self) -> Draws {
        let chains = self.chains;
        let full = self.image.schedule.samples as usize;
        let samples = self.samples_done();
        let n = self.image.n;
        let mut values = Vec::with_capacity(chains * samples * n);
        for c in 0..chains {
            values.extend_from_slice(&self.values[c * full * n..(c * full + samples) * n]);
        }
        Draws {
            chains,
            samples,
            n,
            values,
        }
    }
}
