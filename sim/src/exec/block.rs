//! The block kernel: runs of identically shaped cells (a grid's interior)
//! updated `BLOCK` at a time with vector arithmetic.

use super::cells::{Phase, cells_fixed};
use super::noise::{decide, decide_plain, draw_salted};
use crate::image::TsuImage;

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
pub(super) struct Runs {
    pub(super) degree: usize,
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
    pub(super) fn build(image: &TsuImage) -> Option<Runs> {
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
pub(super) fn cells_in_runs<const D: usize, const L: usize>(
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
    // The noise of every (cell, chain) first, in a loop of pure 64-bit
    // arithmetic (vectorised where the CPU multiplies 64-bit lanes), then
    // the comparisons.
    let mut salt = [0u64; MAX_BLOCK_LANES];
    for (s, key) in salt.iter_mut().zip(&ctx.keys[..L]) {
        *s = key.salt(ctx.sweep);
    }
    let mut xs = [0u64; BLOCK * MAX_BLOCK_LANES];
    for (j, row) in xs[..m].chunks_exact_mut(L).enumerate() {
        for (x, &s) in row.iter_mut().zip(&salt[..L]) {
            *x = draw_salted(s, i + j);
        }
    }
    if ctx.noise.is_plain() {
        for ((o, &x), &a) in out[..m].iter_mut().zip(&xs[..m]).zip(&acc[..m]) {
            *o = decide_plain(ctx.comparator, x, a);
        }
    } else {
        for at in 0..m {
            out[at] = decide(ctx.comparator, ctx.noise, xs[at], &mut prev[at], acc[at]);
        }
    }
}
