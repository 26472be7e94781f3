//! Cycle-level execution of an image: load, sweeps phase by phase, readout,
//! checkpoints; every stage counted in cycles and joules.

use std::sync::Arc;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::ChipConfig;
use crate::image::TsuImage;

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

/// Errors while running. `Offline` is not fatal for a workload: the host
/// falls back to another backend.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    #[error("the TSU is offline at device time {at_s:.6} s")]
    Offline { at_s: f64 },
}

/// Cycles and joules by stage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    pub load_cycles: u64,
    pub sweep_cycles: u64,
    pub readout_cycles: u64,
    pub checkpoint_cycles: u64,
    pub cell_updates: u64,
    pub load_j: f64,
    pub update_j: f64,
    pub readout_j: f64,
    pub static_j: f64,
    /// Device time, seconds (throttling included).
    pub seconds: f64,
}

impl Counters {
    pub fn cycles(&self) -> u64 {
        self.load_cycles + self.sweep_cycles + self.readout_cycles + self.checkpoint_cycles
    }

    pub fn energy_j(&self) -> f64 {
        self.load_j + self.update_j + self.readout_j + self.static_j
    }
}

/// Draws read out of the chip: `values[(chain * samples + s) * n + var]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Draws {
    pub chains: usize,
    pub samples: usize,
    pub n: usize,
    pub values: Vec<i8>,
}

/// SplitMix64's output function: a strong 64-bit mixer.
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small sequential generator (SplitMix64), for drawing fault sets.
#[derive(Debug, Clone)]
struct SplitMix(u64);

impl SplitMix {
    fn new(seed: u64, stream: u64) -> Self {
        SplitMix(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
}

/// Each cell's noise is a function of (chain, sweep, cell): counter-based,
/// so results do not depend on how cells are split across threads, and a
/// checkpoint needs no RNG state beyond the sweep count.
#[derive(Debug, Clone, Copy)]
struct NoiseKey(u64);

impl NoiseKey {
    fn chain(seed: u64, chain: u64) -> Self {
        NoiseKey(mix(
            seed ^ mix(chain.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        ))
    }

    #[inline(always)]
    fn draw(self, sweep: u64, slot: usize) -> u64 {
        mix(self.0
            ^ sweep.wrapping_mul(0xD6E8_FEB8_6659_FD93)
            ^ (slot as u64).wrapping_mul(0xA076_1D64_78BD_642F))
    }
}

/// The chains being computed, interleaved cell by cell
/// (`spins[slot * lanes + lane]`) so one pass over the couplings serves all.
/// A group may hold the chains of several consecutive device batches: the
/// chip runs them one after another (and is charged so), but their draws do
/// not depend on when they are computed, so the simulator computes them
/// together while the first of them runs.
#[derive(Debug, Clone)]
struct Batch {
    /// The first device batch in this group, and how many it holds.
    first_batch: usize,
    batches: usize,
    lanes: usize,
    keys: Vec<NoiseKey>,
    spins: Vec<i8>,
    noise: Vec<u32>,
    scratch: Vec<i8>,
    sweeps_done: u64,
}

/// `P(+1)` thresholds over the saturated field, as 32-bit fractions.
#[derive(Debug, Clone)]
struct Comparator {
    lut: Vec<u32>,
    field_max: i32,
}

impl Comparator {
    fn new(image: &TsuImage) -> Self {
        let fm = image.field_max;
        let lut = (-fm..=fm)
            .map(|f| {
                let p = 1.0 / (1.0 + (-2.0 * f as f64 * image.lsb).exp());
                (p * 4_294_967_296.0).round().min(u32::MAX as f64) as u32
            })
            .collect();
        Comparator { lut, field_max: fm }
    }
}

/// Per-run knobs the hot loop reads.
#[derive(Debug, Clone, Copy)]
struct Noise {
    /// Added to each noise sample (saturating): the RNG bias.
    offset: i64,
    /// Reuse the previous noise when the low word is below this.
    reuse_below: u32,
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

/// What a whole uninterrupted run of `image` costs, by the formulas in the
/// crate docs, without running it (no throttling, no checkpoints).
pub fn estimate(image: &TsuImage, chip: &ChipConfig) -> Counters {
    let s = image.schedule;
    let load_cycles = to_cycles(
        chip.link.latency_s + image.writes as f64 * 4.0 / chip.link.bandwidth_bytes_per_s,
        chip.clock_hz,
    );
    let phase = image.colours.len() as u64 * chip.cycles_per_phase;
    let per_chain = s.sweeps_per_chain();
    let chains = s.chains as usize;
    let mut c = Counters {
        load_cycles,
        load_j: image.writes as f64 * chip.energy.coupling_write_j,
        ..Default::default()
    };
    for batch in 0..image.batches {
        let lanes = (((batch + 1) * image.copies).min(chains) - batch * image.copies) as u64;
        c.sweep_cycles += per_chain * phase;
        c.cell_updates += per_chain * image.n_free as u64 * lanes;
        let bytes = (image.n as u64 * lanes).div_ceil(8);
        let per_sample = to_cycles(
            chip.link.latency_s + bytes as f64 / chip.link.bandwidth_bytes_per_s,
            chip.clock_hz,
        );
        let hidden = if chip.double_buffered_readout {
            s.steps_per_sample * phase
        } else {
            0
        };
        c.readout_cycles += s.samples * per_sample.saturating_sub(hidden);
        c.readout_j += (s.samples * image.n as u64 * lanes) as f64 * chip.energy.readout_per_node_j;
    }
    c.update_j = c.cell_updates as f64 * chip.energy.cell_update_j;
    c.seconds = c.cycles() as f64 / chip.clock_hz;
    c.static_j = c.seconds * chip.energy.static_w;
    c
}

/// Whole cycles covering `seconds` (rounding noise below a millionth of a
/// cycle does not cost a cycle).
fn to_cycles(seconds: f64, clock_hz: f64) -> u64 {
    (seconds * clock_hz - 1e-6).ceil().max(0.0) as u64
}

/// Samples kept after `sweeps` sweeps of a chain.
fn kept(sweeps: u64, s: &crate::image::Schedule) -> u64 {
    (sweeps.saturating_sub(s.warmup) / s.steps_per_sample.max(1)).min(s.samples)
}

/// Bias drift over a slice, in field LSBs.
#[derive(Debug, Clone, Copy)]
struct Drift {
    start_lsb: f64,
    per_sweep_lsb: f64,
}

/// Chains in device batch `batch`.
fn lanes_of(image: &TsuImage, batch: usize, chains: usize) -> usize {
    let first = batch * image.copies;
    (first + image.copies)
        .min(chains)
        .saturating_sub(first)
        .max(1)
}

/// The chains of device batches `batch..batch + group`, at cycle 0.
fn start_batch(image: &TsuImage, seed: u64, batch: usize, group: usize, chains: usize) -> Batch {
    let batches = group.min(image.batches - batch).max(1);
    let first = batch * image.copies;
    let lanes = ((batch + batches) * image.copies)
        .min(chains)
        .saturating_sub(first)
        .max(1);
    let keys: Vec<NoiseKey> = (0..lanes)
        .map(|l| NoiseKey::chain(seed, (first + l) as u64))
        .collect();
    let slots = image.order.len();
    let mut spins = vec![0i8; slots * lanes];
    for slot in 0..slots {
        for (l, key) in keys.iter().enumerate() {
            spins[slot * lanes + l] = if slot < image.n_free {
                if key.draw(u64::MAX, slot) >> 63 == 1 {
                    1
                } else {
                    -1
                }
            } else {
                image.clamp[slot]
            };
        }
    }
    Batch {
        first_batch: batch,
        batches,
        lanes,
        keys,
        spins,
        noise: vec![0; slots * lanes],
        scratch: Vec::new(),
        sweeps_done: 0,
    }
}

#[allow(clippy::too_many_arguments)]
fn run_batch(
    image: &TsuImage,
    comparator: &Comparator,
    noise: Noise,
    stuck: &[(u32, i8)],
    runs: Option<&Runs>,
    drift: Drift,
    b: &mut Batch,
    sweeps: u64,
    values: &mut [i8],
    first_chain: usize,
) {
    let s = image.schedule;
    let lanes = b.lanes;
    let degree = image.uniform_degree();
    for j in 0..sweeps {
        let drift_lsb = (drift.start_lsb + j as f64 * drift.per_sweep_lsb).round() as i32;
        for &(lo, hi) in &image.colours {
            match degree {
                Some(4) => phase::<4>(image, comparator, runs, noise, drift_lsb, b, lo, hi),
                Some(8) => phase::<8>(image, comparator, runs, noise, drift_lsb, b, lo, hi),
                Some(16) => phase::<16>(image, comparator, runs, noise, drift_lsb, b, lo, hi),
                _ => phase::<0>(image, comparator, None, noise, drift_lsb, b, lo, hi),
            }
            for &(slot, state) in stuck {
                let base = slot as usize * lanes;
                b.spins[base..base + lanes].fill(state);
            }
        }
        b.sweeps_done += 1;
        let p = b.sweeps_done;
        if p > s.warmup && (p - s.warmup).is_multiple_of(s.steps_per_sample) {
            let k = ((p - s.warmup) / s.steps_per_sample - 1) as usize;
            for l in 0..lanes {
                let chain = first_chain + l;
                let start = (chain * s.samples as usize + k) * image.n;
                let row = &mut values[start..start + image.n];
                for (slot, &v) in image.order.iter().enumerate() {
                    row[v as usize] = b.spins[slot * lanes + l];
                }
            }
        }
    }
}

/// Cells per parallel work item within a colour phase.
const CHUNK: usize = 1024;

/// One colour phase: every cell of the colour, every chain of the batch.
/// New states go to a scratch buffer (cells of one colour never read each
/// other), then replace the old ones.
fn phase<const D: usize>(
    image: &TsuImage,
    comparator: &Comparator,
    runs: Option<&Runs>,
    noise: Noise,
    drift_lsb: i32,
    b: &mut Batch,
    lo: usize,
    hi: usize,
) {
    let lanes = b.lanes;
    let len = (hi - lo) * lanes;
    b.scratch.resize(len, 0);
    let sweep = b.sweeps_done;
    let (spins, keys) = (&b.spins, &b.keys);
    let out = &mut b.scratch[..len];
    let prev = &mut b.noise[lo * lanes..hi * lanes];
    let ctx = Phase {
        image,
        comparator,
        noise,
        drift_lsb,
        spins,
        keys,
        sweep,
    };
    let runs = runs.filter(|r| D > 0 && r.degree == D);
    let run = |start: usize, o: &mut [i8], p: &mut [u32]| match (runs, lanes) {
        (Some(r), 1) => cells_in_runs::<D, 1>(&ctx, r, start, o, p),
        (Some(r), 2) => cells_in_runs::<D, 2>(&ctx, r, start, o, p),
        (Some(r), 4) => cells_in_runs::<D, 4>(&ctx, r, start, o, p),
        (_, 1) => cells_fixed::<D, 1>(&ctx, start, o, p),
        (_, 2) => cells_fixed::<D, 2>(&ctx, start, o, p),
        (_, 4) => cells_fixed::<D, 4>(&ctx, start, o, p),
        (_, 8) => cells_fixed::<D, 8>(&ctx, start, o, p),
        _ => cells::<D>(&ctx, start, o, p),
    };
    if hi - lo >= 2 * CHUNK {
        out.par_chunks_mut(CHUNK * lanes)
            .zip(prev.par_chunks_mut(CHUNK * lanes))
            .enumerate()
            .for_each(|(c, (o, p))| run(lo + c * CHUNK, o, p));
    } else {
        run(lo, out, prev);
    }
    b.spins[lo * lanes..hi * lanes].copy_from_slice(&b.scratch[..len]);
}

/// What every cell of a phase reads.
struct Phase<'a> {
    image: &'a TsuImage,
    comparator: &'a Comparator,
    noise: Noise,
    drift_lsb: i32,
    spins: &'a [i8],
    keys: &'a [NoiseKey],
    sweep: u64,
}

/// [`cells`] for exactly `L` chains: the accumulators live in registers.
#[inline(always)]
fn cells_fixed<const D: usize, const L: usize>(
    ctx: &Phase<'_>,
    start: usize,
    out: &mut [i8],
    prev: &mut [u32],
) {
    let image = ctx.image;
    let spins = ctx.spins;
    for (j, (o, p)) in out
        .chunks_exact_mut(L)
        .zip(prev.chunks_exact_mut(L))
        .enumerate()
    {
        let i = start + j;
        let (a, z) = if D > 0 {
            (i * D, i * D + D)
        } else {
            (image.row_ptr[i] as usize, image.row_ptr[i + 1] as usize)
        };
        let bias = image.bias_q[i] + ctx.drift_lsb;
        let mut acc = [bias; L];
        for (&c, &w) in image.col[a..z].iter().zip(&image.weight_q[a..z]) {
            let s: &[i8; L] = spins[c as usize * L..c as usize * L + L]
                .try_into()
                .expect("L lanes");
            for t in 0..L {
                acc[t] += i32::from(w) * i32::from(s[t]);
            }
        }
        for t in 0..L {
            let x = ctx.keys[t].draw(ctx.sweep, i);
            o[t] = decide(ctx.comparator, ctx.noise, x, &mut p[t], acc[t]);
        }
    }
}

/// Cells the block kernel updates together.
const BLOCK: usize = 16;
/// Most chains the block kernel serves at once. With 8 the per-cell kernel
/// is faster: one pass over a cell's couplings already serves 8 chains.
const MAX_BLOCK_LANES: usize = 4;

/// Runs of consecutive cells whose neighbours sit at the same slot offsets:
/// on a grid, a row's interior, where slot `i + j` reads neighbour slots
/// `i + j + delta[k]`. For a block of such cells every coupling `k` reads
/// `BLOCK` consecutive spins and `BLOCK` consecutive (transposed) weights,
/// so the fields are computed with vector arithmetic and no neighbour
/// indices are loaded. The sums are the same integers as the per-cell
/// kernel's, so the draws are identical.
#[derive(Debug, Clone)]
struct Runs {
    degree: usize,
    /// Per free slot: where its run ends (exclusive); 0 when its run is
    /// shorter than a block.
    run_end: Vec<u32>,
    /// Per free slot in a run: its run's neighbour offsets, `degree` of
    /// them, as an index into `deltas`.
    pattern: Vec<u32>,
    deltas: Vec<isize>,
    /// `weight_t[k * n_free + slot]`: the image's weights, coupling-major.
    weight_t: Vec<i16>,
}

impl Runs {
    fn build(image: &TsuImage) -> Option<Runs> {
        let degree = image.uniform_degree().filter(|d| [4, 8, 16].contains(d))?;
        let n = image.n_free;
        // Slot `i` continues the run of slot `i - 1` when every neighbour
        // sits one slot further on. Runs are found in one pass, without
        // materialising each cell's offsets: this is paid at every TSU job
        // start.
        let offset = |i: usize, k: usize| image.col[i * degree + k] as isize - i as isize;
        let continues = |i: usize| (0..degree).all(|k| offset(i, k) == offset(i - 1, k));
        let mut deltas = Vec::new();
        let mut pattern = vec![0u32; n];
        let mut run_end = vec![0u32; n];
        let mut start = 0;
        while start < n {
            let mut end = start + 1;
            while end < n && continues(end) {
                end += 1;
            }
            if end - start >= BLOCK {
                let id = (deltas.len() / degree) as u32;
                deltas.extend((0..degree).map(|k| offset(start, k)));
                pattern[start..end].fill(id);
                run_end[start..end].fill(end as u32);
            }
            start = end;
        }
        if run_end.iter().all(|&e| e == 0) {
            return None;
        }
        let mut weight_t = vec![0i16; degree * n];
        for i in 0..n {
            for k in 0..degree {
                weight_t[k * n + i] = image.weight_q[i * degree + k];
            }
        }
        Some(Runs {
            degree,
            run_end,
            pattern,
            deltas,
            weight_t,
        })
    }
}

/// Cells `start..` of a phase for `L` chains: whole blocks inside a run go
/// through [`block`], the rest through [`cells_fixed`].
#[inline(always)]
fn cells_in_runs<const D: usize, const L: usize>(
    ctx: &Phase<'_>,
    runs: &Runs,
    start: usize,
    out: &mut [i8],
    prev: &mut [u32],
) {
    let cells = out.len() / L;
    let mut j = 0;
    while j < cells {
        let i = start + j;
        if runs.run_end[i] as usize >= i + BLOCK && j + BLOCK <= cells {
            let span = j * L..(j + BLOCK) * L;
            block::<D, L>(ctx, runs, i, &mut out[span.clone()], &mut prev[span]);
            j += BLOCK;
        } else {
            let span = j * L..(j + 1) * L;
            cells_fixed::<D, L>(ctx, i, &mut out[span.clone()], &mut prev[span]);
            j += 1;
        }
    }
}

/// `BLOCK` cells of one run, from slot `i`, for `L` chains.
#[inline(always)]
fn block<const D: usize, const L: usize>(
    ctx: &Phase<'_>,
    runs: &Runs,
    i: usize,
    out: &mut [i8],
    prev: &mut [u32],
) {
    let n = ctx.image.n_free;
    let deltas: &[isize; D] = runs.deltas[runs.pattern[i] as usize * D..][..D]
        .try_into()
        .expect("D offsets per pattern");
    // Flat `[cell][lane]` arrays of one fixed size, so that the sums are
    // plain element-wise loops the compiler vectorises. Spins are ±1, so
    // `w * s` is `w` or `-w`: a sign flip instead of a multiply.
    let m = BLOCK * L;
    let mut acc = [0i32; BLOCK * MAX_BLOCK_LANES];
    let mut w_lanes = [0i32; BLOCK * MAX_BLOCK_LANES];
    for j in 0..BLOCK {
        acc[j * L..(j + 1) * L].fill(ctx.image.bias_q[i + j] + ctx.drift_lsb);
    }
    for (k, &delta) in deltas.iter().enumerate() {
        let first = (i as isize + delta) as usize;
        let spins = &ctx.spins[first * L..first * L + m];
        let weights = &runs.weight_t[k * n + i..k * n + i + BLOCK];
        for (j, &w) in weights.iter().enumerate() {
            w_lanes[j * L..(j + 1) * L].fill(i32::from(w));
        }
        for ((a, &w), &s) in acc[..m].iter_mut().zip(&w_lanes[..m]).zip(spins) {
            let flip = i32::from(s) >> 31;
            *a += (w ^ flip) - flip;
        }
    }
    for j in 0..BLOCK {
        for t in 0..L {
            let x = ctx.keys[t].draw(ctx.sweep, i + j);
            let at = j * L + t;
            out[at] = decide(ctx.comparator, ctx.noise, x, &mut prev[at], acc[at]);
        }
    }
}

/// Chains handled together per pass over a cell's couplings.
const LANE_GROUP: usize = 8;

#[inline(always)]
fn cells<const D: usize>(ctx: &Phase<'_>, start: usize, out: &mut [i8], prev: &mut [u32]) {
    let image = ctx.image;
    let lanes = ctx.keys.len();
    let spins = ctx.spins;
    for (j, (o, p)) in out
        .chunks_exact_mut(lanes)
        .zip(prev.chunks_exact_mut(lanes))
        .enumerate()
    {
        let i = start + j;
        let (a, z) = if D > 0 {
            (i * D, i * D + D)
        } else {
            (image.row_ptr[i] as usize, image.row_ptr[i + 1] as usize)
        };
        let (cols, weights) = (&image.col[a..z], &image.weight_q[a..z]);
        let bias = image.bias_q[i] + ctx.drift_lsb;
        for g in (0..lanes).step_by(LANE_GROUP) {
            let m = (lanes - g).min(LANE_GROUP);
            let mut acc = [bias; LANE_GROUP];
            if m == 1 {
                let mut a1 = bias;
                for (&c, &w) in cols.iter().zip(weights) {
                    a1 += i32::from(w) * i32::from(spins[c as usize * lanes + g]);
                }
                acc[0] = a1;
            } else {
                for (&c, &w) in cols.iter().zip(weights) {
                    let base = c as usize * lanes + g;
                    for (t, &s) in spins[base..base + m].iter().enumerate() {
                        acc[t] += i32::from(w) * i32::from(s);
                    }
                }
            }
            for t in 0..m {
                let x = ctx.keys[g + t].draw(ctx.sweep, i);
                o[g + t] = decide(ctx.comparator, ctx.noise, x, &mut p[g + t], acc[t]);
            }
        }
    }
}

/// The p-bit: saturate the field, look up P(+1), compare with the noise.
#[inline(always)]
fn decide(comparator: &Comparator, noise: Noise, x: u64, prev: &mut u32, acc: i32) -> i8 {
    let fm = comparator.field_max;
    let threshold = comparator.lut[(acc.clamp(-fm, fm) + fm) as usize];
    let mut u = (x >> 32) as u32;
    if noise.reuse_below > 0 {
        if (x as u32) < noise.reuse_below {
            u = *prev;
        }
        *prev = u;
    }
    // An unbiased RNG (the usual case) needs no saturating offset.
    let u = if noise.offset == 0 {
        u
    } else {
        (u as i64 + noise.offset).clamp(0, u32::MAX as i64) as u32
    };
    if u < threshold { 1 } else { -1 }
}
