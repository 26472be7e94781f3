//! The p-bit's randomness: counter-based noise keys, the RNG faults' knobs,
//! and the comparator that turns a field into a spin.

use crate::image::TsuImage;

/// SplitMix64's output function: a strong 64-bit mixer.
#[inline(always)]
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small sequential generator (SplitMix64), for drawing fault sets.
#[derive(Debug, Clone)]
pub(super) struct SplitMix(u64);

impl SplitMix {
    pub(super) fn new(seed: u64, stream: u64) -> Self {
        SplitMix(seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03))
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }
}

/// Each cell's noise is a function of (chain, sweep, cell): counter-based,
/// so results do not depend on how cells are split across threads, and a
/// checkpoint needs no RNG state beyond the sweep count.
#[derive(Debug, Clone, Copy)]
pub(super) struct NoiseKey(u64);

impl NoiseKey {
    pub(super) fn chain(seed: u64, chain: u64) -> Self {
        NoiseKey(mix(
            seed ^ mix(chain.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
        ))
    }

    #[inline(always)]
    pub(super) fn draw(self, sweep: u64, slot: usize) -> u64 {
        mix(self.0
            ^ sweep.wrapping_mul(0xD6E8_FEB8_6659_FD93)
            ^ (slot as u64).wrapping_mul(0xA076_1D64_78BD_642F))
    }

    /// The part of [`draw`](Self::draw)'s input fixed for a whole sweep:
    /// `salt(sweep)` then [`draw_salted`] gives the same bits as `draw`
    /// (xor is associative), with one multiply fewer per cell.
    #[inline(always)]
    pub(super) fn salt(self, sweep: u64) -> u64 {
        self.0 ^ sweep.wrapping_mul(0xD6E8_FEB8_6659_FD93)
    }
}

/// [`NoiseKey::draw`] from a [`NoiseKey::salt`].
#[inline(always)]
pub(super) fn draw_salted(salt: u64, slot: usize) -> u64 {
    mix(salt ^ slot_key(slot))
}

/// The part of [`NoiseKey::draw`]'s input that depends on the slot. It is
/// linear (wrapping), so `slot_key(i + j) == slot_key(i) + slot_key(j)`:
/// a block of cells needs no multiply per cell for it.
#[inline(always)]
pub(super) fn slot_key(slot: usize) -> u64 {
    (slot as u64).wrapping_mul(0xA076_1D64_78BD_642F)
}

/// The high word of [`draw_salted`] (all a plain p-bit compares), from the
/// slot's [`slot_key`].
#[inline(always)]
pub(super) fn draw_salted_hi(salt: u64, key: u64) -> u32 {
    (mix(salt ^ key) >> 32) as u32
}

/// `P(+1)` thresholds over the saturated field, as 32-bit fractions.
#[derive(Debug, Clone)]
pub(super) struct Comparator {
    pub(super) lut: Vec<u32>,
    pub(super) field_max: i32,
}

impl Comparator {
    pub(super) fn new(image: &TsuImage) -> Self {
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

impl Comparator {
    /// `P(+1)` threshold of a field.
    #[inline(always)]
    pub(super) fn threshold(&self, acc: i32) -> u32 {
        let fm = self.field_max;
        self.lut[(acc.clamp(-fm, fm) + fm) as usize]
    }
}

/// Per-run knobs the hot loop reads.
#[derive(Debug, Clone, Copy)]
pub(super) struct Noise {
    /// Added to each noise sample (saturating): the RNG bias.
    pub(super) offset: i64,
    /// Reuse the previous noise when the low word is below this.
    pub(super) reuse_below: u32,
}

impl Noise {
    /// An ideal RNG: no bias, no reuse, so [`decide`] is a plain compare
    /// of the high word ([`decide_plain`]) and never touches `prev`.
    #[inline(always)]
    pub(super) fn is_plain(self) -> bool {
        self.offset == 0 && self.reuse_below == 0
    }
}

/// [`decide`] for a [`Noise::is_plain`] RNG: the same result.
#[inline(always)]
pub(super) fn decide_plain(comparator: &Comparator, x: u64, acc: i32) -> i8 {
    if ((x >> 32) as u32) < comparator.threshold(acc) {
        1
    } else {
        -1
    }
}

/// The p-bit: saturate the field, look up P(+1), compare with the noise.
#[inline(always)]
pub(super) fn decide(
    comparator: &Comparator,
    noise: Noise,
    x: u64,
    prev: &mut u32,
    acc: i32,
) -> i8 {
    let threshold = comparator.threshold(acc);
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
