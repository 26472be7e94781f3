//! The per-cell kernels: each cell sums its couplings for every chain, then
//! the p-bit decides.

use super::noise::{Comparator, Noise, NoiseKey, decide, decide_plain, draw_salted};
use crate::image::TsuImage;

/// What every cell of a phase reads.
pub(super) struct Phase<'a> {
    pub(super) image: &'a TsuImage,
    pub(super) comparator: &'a Comparator,
    pub(super) noise: Noise,
    pub(super) drift_lsb: i32,
    pub(super) spins: &'a [i8],
    pub(super) keys: &'a [NoiseKey],
    pub(super) sweep: u64,
}

impl<'a> Phase<'a> {
    /// Cell `i`'s couplings (columns, quantised weights) and its biased
    /// input: `D` couplings a cell when the degree is fixed (`D > 0`), else
    /// the cell's CSR row.
    #[inline(always)]
    fn cell<const D: usize>(&self, i: usize) -> (&'a [u32], &'a [i16], i32) {
        let image = self.image;
        let (a, z) = if D > 0 {
            (i * D, i * D + D)
        } else {
            (image.row_ptr[i] as usize, image.row_ptr[i + 1] as usize)
        };
        let bias = image.bias_q[i] + self.drift_lsb;
        (&image.col[a..z], &image.weight_q[a..z], bias)
    }
}

/// [`cells`] for exactly `L` chains: the accumulators live in registers.
#[inline(always)]
pub(super) fn cells_fixed<const D: usize, const L: usize>(
    ctx: &Phase<'_>,
    start: usize,
    out: &mut [i8],
    prev: &mut [u32],
) {
    let spins = ctx.spins;
    let salt: [u64; L] = std::array::from_fn(|t| ctx.keys[t].salt(ctx.sweep));
    let plain = ctx.noise.is_plain();
    for (j, (o, p)) in out
        .chunks_exact_mut(L)
        .zip(prev.chunks_exact_mut(L))
        .enumerate()
    {
        let i = start + j;
        let (cols, weights, bias) = ctx.cell::<D>(i);
        let mut acc = [bias; L];
        for (&c, &w) in cols.iter().zip(weights) {
            let s: &[i8; L] = spins[c as usize * L..c as usize * L + L]
                .try_into()
                .expect("L lanes");
            for t in 0..L {
                acc[t] += i32::from(w) * i32::from(s[t]);
            }
        }
        for t in 0..L {
            let x = draw_salted(salt[t], i);
            o[t] = if plain {
                decide_plain(ctx.comparator, x, acc[t])
            } else {
                decide(ctx.comparator, ctx.noise, x, &mut p[t], acc[t])
            };
        }
    }
}

/// [`cells_fixed`] for `D > 0` couplings a cell, read from `cols`,
/// `weights` (`D` per cell) and `biases` instead of the image: the block
/// kernel keeps the cells outside its blocks in such compact copies. The
/// same sums and decisions, so the same draws.
#[inline(always)]
pub(super) fn cells_given<const D: usize, const L: usize>(
    ctx: &Phase<'_>,
    start: usize,
    cols: &[u32],
    weights: &[i16],
    biases: &[i32],
    out: &mut [i8],
    prev: &mut [u32],
) {
    let spins = ctx.spins;
    let salt: [u64; L] = std::array::from_fn(|t| ctx.keys[t].salt(ctx.sweep));
    let plain = ctx.noise.is_plain();
    for (j, (((o, p), (cs, ws)), &b)) in out
        .chunks_exact_mut(L)
        .zip(prev.chunks_exact_mut(L))
        .zip(cols.chunks_exact(D).zip(weights.chunks_exact(D)))
        .zip(biases)
        .enumerate()
    {
        let i = start + j;
        let mut acc = [b + ctx.drift_lsb; L];
        for (&c, &w) in cs.iter().zip(ws) {
            let s: &[i8; L] = spins[c as usize * L..c as usize * L + L]
                .try_into()
                .expect("L lanes");
            for t in 0..L {
                acc[t] += i32::from(w) * i32::from(s[t]);
            }
        }
        for t in 0..L {
            let x = draw_salted(salt[t], i);
            o[t] = if plain {
                decide_plain(ctx.comparator, x, acc[t])
            } else {
                decide(ctx.comparator, ctx.noise, x, &mut p[t], acc[t])
            };
        }
    }
}

/// Chains handled together per pass over a cell's couplings.
pub(super) const LANE_GROUP: usize = 8;

#[inline(always)]
pub(super) fn cells<const D: usize>(
    ctx: &Phase<'_>,
    start: usize,
    out: &mut [i8],
    prev: &mut [u32],
) {
    let lanes = ctx.keys.len();
    let spins = ctx.spins;
    for (j, (o, p)) in out
        .chunks_exact_mut(lanes)
        .zip(prev.chunks_exact_mut(lanes))
        .enumerate()
    {
        let i = start + j;
        let (cols, weights, bias) = ctx.cell::<D>(i);
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
