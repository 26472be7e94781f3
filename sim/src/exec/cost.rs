//! The cost side: cycles and joules by stage, and what a whole run costs
//! by the formulas in the crate docs.

use serde::{Deserialize, Serialize};

use crate::config::ChipConfig;
use crate::image::{Schedule, TsuImage};

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
pub(super) fn to_cycles(seconds: f64, clock_hz: f64) -> u64 {
    (seconds * clock_hz - 1e-6).ceil().max(0.0) as u64
}

/// Samples kept after `sweeps` sweeps of a chain.
pub(super) fn kept(sweeps: u64, s: &Schedule) -> u64 {
    (sweeps.saturating_sub(s.warmup) / s.steps_per_sample.max(1)).min(s.samples)
}
