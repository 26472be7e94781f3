//! The block kernel: runs of identically shaped cells (a grid's interior)
//! updated `BLOCK` at a time with vector arithmetic.

use std::ops::Range;

use super::cells::{Phase, cells_given};
use super::noise::{decide, draw_salted, draw_salted_hi, slot_key};
use crate::image::TsuImage;

/// Cells the block kernel updates together.
pub(super) const BLOCK: usize = 16;
/// Most chains the block kernel serves at once. With 8 the per-cell kernel
/// is faster: one pass over a cell's couplings already serves 8 chains.
pub(super) const MAX_BLOCK_LANES: usize = 4;
/// Cells per parallel work item within a colour phase (about).
const CHUNK: usize = 1024;

/// A block: `BLOCK` cells of one run from slot `start`, whose neighbours sit
/// at the offsets of pattern `pattern`.
#[derive(Debug, Clone, Copy)]
struct Block {
    start: u32,
    pattern: u32,
}

/// A parallel work item of a colour phase: slots `start..end`, and the
/// blocks among them (the other cells go through the per-cell kernel).
#[derive(Debug, Clone)]
pub(super) struct Task {
    pub(super) start: usize,
    pub(super) end: usize,
    blocks: Range<usize>,
    /// How many cells outside blocks precede this item (in the phase's
    /// order): where its cells start in `Runs::rest_*`.
    rest: usize,
}

/// Runs of consecutive cells whose neighbours sit at the same slot offsets:
/// on a grid, a row's interior, where slot `i + j` reads neighbour slots
/// `i + j + delta[k]`. For a block of such cells every coupling `k` reads
/// `BLOCK` consecutive spins and `BLOCK` consecutive weights, so the fields
/// are computed with vector arithmetic and no neighbour indices are loaded.
/// The sums are the same integers as the per-cell kernel's, so the draws are
/// identical.
///
/// Each run is tiled with blocks from its start; when its length is not a
/// multiple of `BLOCK`, one more block ends at the run's end and overlaps
/// the one before it: its cells are computed twice, to the same values (a
/// phase reads only the other colour's spins, and the p-bit's noise reuse
/// depends on the noise alone, so deciding a cell twice is deciding it
/// once). Each block's weights are stored together, coupling-major, so a
/// block streams one contiguous piece of memory.
#[derive(Debug, Clone)]
pub(super) struct Runs {
    pub(super) degree: usize,
    blocks: Vec<Block>,
    deltas: Vec<isize>,
    /// `weights[(b * degree + k) * BLOCK + j]`: coupling `k` of cell `j` of
    /// block `b`.
    weights: Vec<i16>,
    /// Per colour phase, its work items in slot order.
    tasks: Vec<Vec<Task>>,
    /// The cells outside blocks (a grid's edges), in slot order: their
    /// neighbour slots, weights (`degree` each) and biases, stored together
    /// so that these scattered cells read memory in sequence too.
    rest_col: Vec<u32>,
    rest_weight: Vec<i16>,
    rest_bias: Vec<i32>,
}

impl Runs {
    pub(super) fn build(image: &TsuImage) -> Option<Runs> {
        let degree = image.uniform_degree().filter(|d| [4, 8, 16].contains(d))?;
        // Slot `i` continues the run of slot `i - 1` when every neighbour
        // sits one slot further on. Runs are found in one pass, without
        // materialising each cell's offsets: this is paid at every TSU job
        // start.
        let offset = |i: usize, k: usize| image.col[i * degree + k] as isize - i as isize;
        let continues = |i: usize| (0..degree).all(|k| offset(i, k) == offset(i - 1, k));
        // The block kernel sums couplings in 16-bit lanes: only cells whose
        // weights cannot overflow them join a run.
        let fits = |i: usize| {
            image.weight_q[i * degree..(i + 1) * degree]
                .iter()
                .map(|&w| i32::from(w).abs())
                .sum::<i32>()
                <= i32::from(i16::MAX)
        };
        let mut deltas = Vec::new();
        let mut blocks = Vec::new();
        let mut tasks = Vec::with_capacity(image.colours.len());
        for &(lo, hi) in &image.colours {
            let first_block = blocks.len();
            let mut start = lo;
            while start < hi {
                if !fits(start) {
                    start += 1;
                    continue;
                }
                let mut end = start + 1;
                while end < hi && fits(end) && continues(end) {
                    end += 1;
                }
                if end - start >= BLOCK {
                    let pattern = (deltas.len() / degree) as u32;
                    deltas.extend((0..degree).map(|k| offset(start, k)));
                    let mut at = start;
                    while at + BLOCK <= end {
                        blocks.push(Block {
                            start: at as u32,
                            pattern,
                        });
                        at += BLOCK;
                    }
                    if at < end {
                        blocks.push(Block {
                            start: (end - BLOCK) as u32,
                            pattern,
                        });
                    }
                }
                start = end;
            }
            tasks.push(split(lo, hi, &blocks, first_block));
        }
        if blocks.is_empty() {
            return None;
        }
        let mut covered = vec![false; image.n_free];
        for b in &blocks {
            covered[b.start as usize..b.start as usize + BLOCK].fill(true);
        }
        let (mut rest_col, mut rest_weight, mut rest_bias) = (Vec::new(), Vec::new(), Vec::new());
        let mut rest = 0;
        for (colour, &(lo, hi)) in image.colours.iter().enumerate() {
            let mut next = lo;
            for task in &mut tasks[colour] {
                rest += covered[next..task.start].iter().filter(|&&c| !c).count();
                task.rest = rest;
                next = task.start;
            }
            rest += covered[next..hi].iter().filter(|&&c| !c).count();
            for i in (lo..hi).filter(|&i| !covered[i]) {
                rest_col.extend_from_slice(&image.col[i * degree..(i + 1) * degree]);
                rest_weight.extend_from_slice(&image.weight_q[i * degree..(i + 1) * degree]);
                rest_bias.push(image.bias_q[i]);
            }
        }
        let mut weights = Vec::with_capacity(blocks.len() * degree * BLOCK);
        for b in &blocks {
            for k in 0..degree {
                for j in 0..BLOCK {
                    weights.push(image.weight_q[(b.start as usize + j) * degree + k]);
                }
            }
        }
        Some(Runs {
            degree,
            blocks,
            deltas,
            weights,
            tasks,
            rest_col,
            rest_weight,
            rest_bias,
        })
    }

    /// The work items of colour phase `colour`.
    pub(super) fn tasks(&self, colour: usize) -> &[Task] {
        &self.tasks[colour]
    }
}

/// Cuts slots `lo..hi` into work items of about `CHUNK` cells, never inside
/// a block (`blocks[first..]` are this phase's, in slot order).
fn split(lo: usize, hi: usize, blocks: &[Block], first: usize) -> Vec<Task> {
    let mut tasks = Vec::new();
    let (mut start, mut task_first) = (lo, first);
    // Where the blocks so far end: a cut before it would split one.
    let mut covered = lo;
    for (b, block) in blocks.iter().enumerate().skip(first) {
        let at = block.start as usize;
        if at >= start + CHUNK && at >= covered {
            tasks.push(Task {
                start,
                end: at,
                blocks: task_first..b,
                rest: 0,
            });
            start = at;
            task_first = b;
        }
        covered = covered.max(at + BLOCK);
    }
    // Past the last block, cells are cut anywhere.
    let mut cut = covered.max(start + CHUNK);
    while cut + CHUNK <= hi {
        tasks.push(Task {
            start,
            end: cut,
            blocks: task_first..blocks.len(),
            rest: 0,
        });
        task_first = blocks.len();
        start = cut;
        cut += CHUNK;
    }
    tasks.push(Task {
        start,
        end: hi,
        blocks: task_first..blocks.len(),
        rest: 0,
    });
    tasks
}

/// Work item `task` of a phase for `L` chains (`out` and `prev` hold its
/// slots): its blocks through [`block`], the cells between them through
/// [`cells_fixed`].
#[inline(always)]
pub(super) fn cells_in_task<const D: usize, const L: usize>(
    ctx: &Phase<'_>,
    runs: &Runs,
    task: &Task,
    out: &mut [i8],
    prev: &mut [u32],
) {
    let base = task.start;
    let mut next = base;
    let mut rest = task.rest;
    // Cells `from..to` outside blocks, from the compact copy of their
    // couplings.
    let mut cells = |from: usize, to: usize, out: &mut [i8], prev: &mut [u32]| {
        let span = (from - base) * L..(to - base) * L;
        let r = rest..rest + (to - from);
        cells_given::<D, L>(
            ctx,
            from,
            &runs.rest_col[r.start * D..r.end * D],
            &runs.rest_weight[r.start * D..r.end * D],
            &runs.rest_bias[r.clone()],
            &mut out[span.clone()],
            &mut prev[span],
        );
        rest = r.end;
    };
    for b in task.blocks.clone() {
        let at = runs.blocks[b].start as usize;
        if at > next {
            cells(next, at, out, prev);
        }
        let span = (at - base) * L..(at - base + BLOCK) * L;
        block::<D, L>(ctx, runs, b, &mut out[span.clone()], &mut prev[span]);
        next = next.max(at + BLOCK);
    }
    if task.end > next {
        cells(next, task.end, out, prev);
    }
}

/// Block `b` for `L` chains.
#[inline(always)]
fn block<const D: usize, const L: usize>(
    ctx: &Phase<'_>,
    runs: &Runs,
    b: usize,
    out: &mut [i8],
    prev: &mut [u32],
) {
    let Block { start, pattern } = runs.blocks[b];
    let i = start as usize;
    let m = BLOCK * L;
    let (out, prev) = (&mut out[..m], &mut prev[..m]);
    let deltas: &[isize; D] = runs.deltas[pattern as usize * D..][..D]
        .try_into()
        .expect("D offsets per pattern");
    let weights = &runs.weights[b * D * BLOCK..][..D * BLOCK];
    // Flat `[cell][lane]` arrays of one fixed size, so that the sums are
    // plain element-wise loops the compiler vectorises. The weights of a
    // cell sum to at most `i16::MAX` in magnitude (`Runs::build` checks),
    // so 16-bit lanes hold the sums exactly.
    let mut acc = [0i16; BLOCK * MAX_BLOCK_LANES];
    for (k, &delta) in deltas.iter().enumerate() {
        let first = (i as isize + delta) as usize;
        let spins: &[i8] = &ctx.spins[first * L..first * L + m];
        let w: &[i16; BLOCK] = weights[k * BLOCK..(k + 1) * BLOCK]
            .try_into()
            .expect("BLOCK weights");
        let mut w_lanes = [0i16; BLOCK * MAX_BLOCK_LANES];
        for j in 0..BLOCK {
            for l in 0..L {
                w_lanes[j * L + l] = w[j];
            }
        }
        for ((a, &w), &s) in acc[..m].iter_mut().zip(&w_lanes[..m]).zip(spins) {
            *a = a.wrapping_add(w.wrapping_mul(i16::from(s)));
        }
    }
    let fm = ctx.comparator.field_max;
    let bias: &[i32; BLOCK] = ctx.image.bias_q[i..i + BLOCK]
        .try_into()
        .expect("BLOCK biases");
    let mut salt = [0u64; MAX_BLOCK_LANES];
    for (s, key) in salt.iter_mut().zip(&ctx.keys[..L]) {
        *s = key.salt(ctx.sweep);
    }
    if ctx.noise.is_plain() {
        let mut index = [0u32; BLOCK * MAX_BLOCK_LANES];
        for t in 0..m {
            let field = acc_field(acc[t], bias[t / L], ctx.drift_lsb);
            index[t] = (field.clamp(-fm, fm) + fm) as u32;
        }
        // The noise of every (cell, chain): pure 64-bit arithmetic. A plain
        // p-bit compares only its high word.
        let key0 = slot_key(i);
        let mut noise = [0u32; BLOCK * MAX_BLOCK_LANES];
        for t in 0..m {
            noise[t] = draw_salted_hi(salt[t % L], key0.wrapping_add(slot_key(t / L)));
        }
        // The index is in range (`field_max` saturation); `get` keeps the
        // loop free of panics.
        let lut = &ctx.comparator.lut[..];
        for t in 0..m {
            let threshold = lut.get(index[t] as usize).copied().unwrap_or(0);
            out[t] = if noise[t] < threshold { 1 } else { -1 };
        }
    } else {
        for j in 0..BLOCK {
            for l in 0..L {
                let x = draw_salted(salt[l], i + j);
                let at = j * L + l;
                out[at] = decide(
                    ctx.comparator,
                    ctx.noise,
                    x,
                    &mut prev[at],
                    acc_field(acc[at], bias[j], ctx.drift_lsb),
                );
            }
        }
    }
}

/// A cell's field from its 16-bit coupling sum.
#[inline(always)]
fn acc_field(sum: i16, bias: i32, drift_lsb: i32) -> i32 {
    i32::from(sum) + bias + drift_lsb
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Work items cover the phase's slots in order, and every block lies
    /// whole inside the one item that lists it.
    #[test]
    fn work_items_never_cut_a_block() {
        // Runs of 285 cells (17 blocks and an overlapping one) with 3 cells
        // between runs, a colour of 40 such rows from slot 100, and a long
        // tail without blocks.
        let (lo, pitch) = (100usize, 288usize);
        let mut blocks = vec![Block {
            start: 0,
            pattern: 0,
        }];
        let first = blocks.len();
        for row in 0..40 {
            let (start, end) = (lo + 3 + row * pitch, lo + 3 + row * pitch + 285);
            let mut at = start;
            while at + BLOCK <= end {
                blocks.push(Block {
                    start: at as u32,
                    pattern: 0,
                });
                at += BLOCK;
            }
            blocks.push(Block {
                start: (end - BLOCK) as u32,
                pattern: 0,
            });
        }
        for hi in [lo + 40 * pitch, lo + 40 * pitch + 5000] {
            let tasks = split(lo, hi, &blocks, first);
            assert_eq!(tasks[0].start, lo);
            assert_eq!(tasks.last().unwrap().end, hi);
            assert!(tasks.len() > 5, "{}", tasks.len());
            for pair in tasks.windows(2) {
                assert_eq!(pair[0].end, pair[1].start);
                assert_eq!(pair[0].blocks.end, pair[1].blocks.start);
            }
            assert_eq!(tasks[0].blocks.start, first);
            assert_eq!(tasks.last().unwrap().blocks.end, blocks.len());
            for t in &tasks {
                assert!(t.end - t.start <= 3 * CHUNK, "{t:?}");
                for b in t.blocks.clone() {
                    let at = blocks[b].start as usize;
                    assert!(t.start <= at && at + BLOCK <= t.end, "{t:?} {at}");
                }
            }
        }
        // A phase without blocks is cut anywhere.
        let tasks = split(0, 10 * CHUNK + 7, &[], 0);
        assert_eq!(tasks.len(), 10);
        assert!(tasks.iter().all(|t| t.blocks.is_empty()));
        assert_eq!(tasks.last().unwrap().end, 10 * CHUNK + 7);
    }
}
