//! Chains computed together, sweep by sweep and colour phase by colour
//! phase; each phase hands its cells to the kernels.

use rayon::prelude::*;

use super::block::{MAX_BLOCK_LANES, Runs, Task, cells_in_task};
use super::cells::{Phase, cells, cells_fixed};
use super::noise::{Comparator, Noise, NoiseKey};
use crate::cpu::CpuKernel;
use crate::image::TsuImage;

/// The chains being computed, interleaved cell by cell
/// (`spins[slot * lanes + lane]`) so one pass over the couplings serves all.
/// A group may hold the chains of several consecutive device batches: the
/// chip runs them one after another (and is charged so), but their draws do
/// not depend on when they are computed, so the simulator computes them
/// together while the first of them runs.
#[derive(Debug, Clone)]
pub(super) struct Batch {
    /// The first device batch in this group, and how many it holds.
    pub(super) first_batch: usize,
    pub(super) batches: usize,
    pub(super) lanes: usize,
    pub(super) keys: Vec<NoiseKey>,
    pub(super) spins: Vec<i8>,
    pub(super) noise: Vec<u32>,
    pub(super) scratch: Vec<i8>,
    pub(super) sweeps_done: u64,
}

/// Bias drift over a slice, in field LSBs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Drift {
    pub(super) start_lsb: f64,
    pub(super) per_sweep_lsb: f64,
}

/// Chains in device batch `batch`.
pub(super) fn lanes_of(image: &TsuImage, batch: usize, chains: usize) -> usize {
    let first = batch * image.copies;
    (first + image.copies)
        .min(chains)
        .saturating_sub(first)
        .max(1)
}

/// The chains of device batches `batch..batch + group`, at cycle 0.
pub(super) fn start_batch(
    image: &TsuImage,
    seed: u64,
    batch: usize,
    group: usize,
    chains: usize,
) -> Batch {
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
pub(super) fn run_batch(
    image: &TsuImage,
    comparator: &Comparator,
    noise: Noise,
    stuck: &[(u32, i8)],
    runs: Option<&Runs>,
    drift: Drift,
    kernel: CpuKernel,
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
        for (colour, &(lo, hi)) in image.colours.iter().enumerate() {
            let ctx = PhaseArgs {
                image,
                comparator,
                noise,
                drift_lsb,
                kernel,
            };
            match degree {
                Some(4) => phase::<4>(&ctx, runs, b, colour, lo, hi),
                Some(8) => phase::<8>(&ctx, runs, b, colour, lo, hi),
                Some(16) => phase::<16>(&ctx, runs, b, colour, lo, hi),
                _ => phase::<0>(&ctx, None, b, colour, lo, hi),
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

/// What a phase reads besides the batch.
struct PhaseArgs<'a> {
    image: &'a TsuImage,
    comparator: &'a Comparator,
    noise: Noise,
    drift_lsb: i32,
    kernel: CpuKernel,
}

/// One colour phase: every cell of the colour, every chain of the batch.
/// New states go to a scratch buffer (cells of one colour never read each
/// other), then replace the old ones.
fn phase<const D: usize>(
    args: &PhaseArgs<'_>,
    runs: Option<&Runs>,
    b: &mut Batch,
    colour: usize,
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
        image: args.image,
        comparator: args.comparator,
        noise: args.noise,
        drift_lsb: args.drift_lsb,
        spins,
        keys,
        sweep,
    };
    let kernel = args.kernel;
    let runs = runs.filter(|r| D > 0 && r.degree == D && lanes <= MAX_BLOCK_LANES);
    if let Some(runs) = runs {
        // The block kernel's work items: slices of `out` and `prev` each.
        let tasks = runs.tasks(colour);
        let mut items = Vec::with_capacity(tasks.len());
        let (mut out, mut prev) = (out, prev);
        for task in tasks {
            let cells = (task.end - task.start) * lanes;
            let (o, rest_o) = out.split_at_mut(cells);
            let (p, rest_p) = prev.split_at_mut(cells);
            items.push((task, o, p));
            (out, prev) = (rest_o, rest_p);
        }
        let run = |(task, o, p): (&Task, &mut [i8], &mut [u32])| match kernel {
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            CpuKernel::Avx512 if CpuKernel::Avx512.is_available() => {
                // SAFETY: the guard just checked (cached by std) that this
                // CPU supports AVX-512 F, BW, DQ, VL and AVX2, exactly the
                // features `task_avx512` enables.
                unsafe { task_avx512::<D>(&ctx, runs, task, o, p) }
            }
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            CpuKernel::Avx2 if CpuKernel::Avx2.is_available() => {
                // SAFETY: the guard just checked (cached by std) that this
                // CPU supports AVX2, the only feature `task_avx2` enables.
                unsafe { task_avx2::<D>(&ctx, runs, task, o, p) }
            }
            _ => task_any::<D>(&ctx, runs, task, o, p),
        };
        if items.len() > 1 {
            items.into_par_iter().for_each(run);
        } else {
            items.into_iter().for_each(run);
        }
    } else {
        let run = |start: usize, o: &mut [i8], p: &mut [u32]| match kernel {
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            CpuKernel::Avx512 if CpuKernel::Avx512.is_available() => {
                // SAFETY: as above, for `cells_avx512`.
                unsafe { cells_avx512::<D>(&ctx, start, o, p) }
            }
            #[cfg(target_arch = "x86_64")]
            #[allow(unsafe_code)]
            CpuKernel::Avx2 if CpuKernel::Avx2.is_available() => {
                // SAFETY: as above, for `cells_avx2`.
                unsafe { cells_avx2::<D>(&ctx, start, o, p) }
            }
            _ => cells_any::<D>(&ctx, start, o, p),
        };
        if hi - lo >= 2 * CHUNK {
            out.par_chunks_mut(CHUNK * lanes)
                .zip(prev.par_chunks_mut(CHUNK * lanes))
                .enumerate()
                .for_each(|(c, (o, p))| run(lo + c * CHUNK, o, p));
        } else {
            run(lo, out, prev);
        }
    }
    b.spins[lo * lanes..hi * lanes].copy_from_slice(&b.scratch[..len]);
}

/// Cells `start..` of a phase, every chain, through the per-cell kernel
/// that fits the lane count. The same source is compiled for each
/// instruction-set path below, so every path draws the same bits.
#[inline(always)]
fn cells_any<const D: usize>(ctx: &Phase<'_>, start: usize, o: &mut [i8], p: &mut [u32]) {
    match ctx.keys.len() {
        1 => cells_fixed::<D, 1>(ctx, start, o, p),
        2 => cells_fixed::<D, 2>(ctx, start, o, p),
        4 => cells_fixed::<D, 4>(ctx, start, o, p),
        8 => cells_fixed::<D, 8>(ctx, start, o, p),
        _ => cells::<D>(ctx, start, o, p),
    }
}

/// [`cells_any`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn cells_avx2<const D: usize>(ctx: &Phase<'_>, start: usize, o: &mut [i8], p: &mut [u32]) {
    cells_any::<D>(ctx, start, o, p)
}

/// [`cells_any`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2")]
fn cells_avx512<const D: usize>(ctx: &Phase<'_>, start: usize, o: &mut [i8], p: &mut [u32]) {
    cells_any::<D>(ctx, start, o, p)
}

/// A block kernel work item, every chain (at most `MAX_BLOCK_LANES`).
/// Compiled for each instruction-set path like [`cells_any`].
#[inline(always)]
fn task_any<const D: usize>(
    ctx: &Phase<'_>,
    runs: &Runs,
    task: &Task,
    o: &mut [i8],
    p: &mut [u32],
) {
    match ctx.keys.len() {
        1 => cells_in_task::<D, 1>(ctx, runs, task, o, p),
        2 => cells_in_task::<D, 2>(ctx, runs, task, o, p),
        4 => cells_in_task::<D, 4>(ctx, runs, task, o, p),
        _ => cells::<D>(ctx, task.start, o, p),
    }
}

/// [`task_any`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn task_avx2<const D: usize>(
    ctx: &Phase<'_>,
    runs: &Runs,
    task: &Task,
    o: &mut [i8],
    p: &mut [u32],
) {
    task_any::<D>(ctx, runs, task, o, p)
}

/// [`task_any`] compiled for AVX-512 (64-bit lane multiplies: the noise
/// hash vectorises).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2")]
fn task_avx512<const D: usize>(
    ctx: &Phase<'_>,
    runs: &Runs,
    task: &Task,
    o: &mut [i8],
    p: &mut [u32],
) {
    task_any::<D>(ctx, runs, task, o, p)
}
