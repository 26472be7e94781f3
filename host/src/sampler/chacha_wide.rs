//! ChaCha8 keystream, sixteen (AVX-512) or eight (AVX2) blocks at a time.
//!
//! A sweep consumes one 32-bit word of its chain's `ChaCha8Rng` stream per
//! spin. `rand_chacha` computes four blocks at a time with the rows of a
//! block spread over a vector (shuffles between rounds); here each block
//! takes one vector lane, so every round is plain vector adds, xors and
//! rotates over lane arrays that LLVM vectorises inside the path's
//! `#[target_feature]` function (one `zmm` or `ymm` register per state
//! word), and a shuffle network transposes the result into block order.
//! The words are exactly `rand_chacha`'s (tested): [`Wide::start`] reads the
//! generator's key, stream and position, [`Wide::take`] writes the keystream
//! from there, and [`Wide::finish`] moves the generator past what was taken,
//! so callers draw the same bits as with `rng.fill(out)`. The baseline path
//! keeps `rand_chacha`'s own code.
//!
//! No crate offers this: `rand_chacha` has no wide backend, and `chacha20`'s
//! AVX-512 backend needs a `--cfg` flag and implements another `rand_core`.

use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use thermoroute_sim::cpu::CpuKernel;

/// Words per ChaCha block.
const BLOCK_WORDS: usize = 16;
/// Below this many words a wide reader is not worth starting: moving the
/// generator's position at the end regenerates its four-block buffer.
pub const MIN_WIDE: usize = 512;

/// One quarter round on words `a, b, c, d` of a block.
macro_rules! quarter {
    ($s:ident, $a:literal, $b:literal, $c:literal, $d:literal) => {
        $s[$a] = $s[$a].wrapping_add($s[$b]);
        $s[$d] = ($s[$d] ^ $s[$a]).rotate_left(16);
        $s[$c] = $s[$c].wrapping_add($s[$d]);
        $s[$b] = ($s[$b] ^ $s[$c]).rotate_left(12);
        $s[$a] = $s[$a].wrapping_add($s[$b]);
        $s[$d] = ($s[$d] ^ $s[$a]).rotate_left(8);
        $s[$c] = $s[$c].wrapping_add($s[$d]);
        $s[$b] = ($s[$b] ^ $s[$c]).rotate_left(7);
    };
}

/// A column round then a diagonal round.
macro_rules! double_round {
    ($s:ident) => {
        quarter!($s, 0, 4, 8, 12);
        quarter!($s, 1, 5, 9, 13);
        quarter!($s, 2, 6, 10, 14);
        quarter!($s, 3, 7, 11, 15);
        quarter!($s, 0, 5, 10, 15);
        quarter!($s, 1, 6, 11, 12);
        quarter!($s, 2, 7, 8, 13);
        quarter!($s, 3, 4, 9, 14);
    };
}

/// Blocks `block..block + L` of the ChaCha8 stream (`key`, `stream`):
/// `x[w][l]` is word `w` of block `block + l`. The loop over lanes (blocks)
/// is the one that vectorises: each state word is a vector of the `L`
/// blocks' words.
#[inline(always)]
fn rounds<const L: usize>(key: &[u32; 8], stream: u64, block: u64) -> [[u32; L]; 16] {
    const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];
    let mut x = [[0u32; L]; 16];
    for l in 0..L {
        let counter = block.wrapping_add(l as u64);
        let init = [
            SIGMA[0],
            SIGMA[1],
            SIGMA[2],
            SIGMA[3],
            key[0],
            key[1],
            key[2],
            key[3],
            key[4],
            key[5],
            key[6],
            key[7],
            counter as u32,
            (counter >> 32) as u32,
            stream as u32,
            (stream >> 32) as u32,
        ];
        let mut s = init;
        // Four double rounds, written out so that the lane loop is the
        // innermost loop (the vectoriser's condition).
        double_round!(s);
        double_round!(s);
        double_round!(s);
        double_round!(s);
        for w in 0..16 {
            x[w][l] = s[w].wrapping_add(init[w]);
        }
    }
    x
}

/// Eight blocks, AVX2: one `ymm` register per state word, and the
/// transpose (blocks one after another in `out`) by two 8x8 shuffle
/// networks.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn group_avx2(key: &[u32; 8], stream: u64, block: u64, out: &mut [u32; 8 * BLOCK_WORDS]) {
    use std::arch::x86_64::*;
    let x = rounds::<8>(key, stream, block);
    for half in 0..2 {
        // SAFETY: rows of `x` are 8 u32 (32 bytes) and every store writes
        // 8 u32 inside `out`, unaligned; the CPU has AVX2.
        #[allow(unsafe_code)]
        unsafe {
            let r: [__m256i; 8] =
                std::array::from_fn(|i| _mm256_loadu_si256(x[8 * half + i].as_ptr().cast()));
            let mut t = [_mm256_setzero_si256(); 8];
            for i in 0..4 {
                t[2 * i] = _mm256_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
                t[2 * i + 1] = _mm256_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
            }
            let mut u = [_mm256_setzero_si256(); 8];
            for q in 0..2 {
                let b = 4 * q;
                u[b] = _mm256_unpacklo_epi64(t[b], t[b + 2]);
                u[b + 1] = _mm256_unpackhi_epi64(t[b], t[b + 2]);
                u[b + 2] = _mm256_unpacklo_epi64(t[b + 1], t[b + 3]);
                u[b + 3] = _mm256_unpackhi_epi64(t[b + 1], t[b + 3]);
            }
            for i in 0..4 {
                let lo = _mm256_permute2x128_si256::<0x20>(u[i], u[4 + i]);
                let hi = _mm256_permute2x128_si256::<0x31>(u[i], u[4 + i]);
                _mm256_storeu_si256(out[i * BLOCK_WORDS + 8 * half..].as_mut_ptr().cast(), lo);
                _mm256_storeu_si256(
                    out[(4 + i) * BLOCK_WORDS + 8 * half..].as_mut_ptr().cast(),
                    hi,
                );
            }
        }
    }
}

/// Sixteen blocks, AVX-512: one `zmm` register per state word, and the
/// transpose by a shuffle network (LLVM would scatter, several times slower).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512dq,avx512vl,avx2")]
fn group_avx512(key: &[u32; 8], stream: u64, block: u64, out: &mut [u32; 16 * BLOCK_WORDS]) {
    use std::arch::x86_64::*;
    let x = rounds::<16>(key, stream, block);
    // SAFETY: `x` rows and `out` rows are 16 u32 each (64 bytes), read and
    // written unaligned; the CPU has AVX-512 F (this function's features).
    #[allow(unsafe_code)]
    unsafe {
        let mut r: [__m512i; 16] =
            std::array::from_fn(|w| _mm512_loadu_si512(x[w].as_ptr().cast()));
        let mut t = [_mm512_setzero_si512(); 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
        }
        for q in 0..4 {
            let b = 4 * q;
            r[b] = _mm512_unpacklo_epi64(t[b], t[b + 2]);
            r[b + 1] = _mm512_unpackhi_epi64(t[b], t[b + 2]);
            r[b + 2] = _mm512_unpacklo_epi64(t[b + 1], t[b + 3]);
            r[b + 3] = _mm512_unpackhi_epi64(t[b + 1], t[b + 3]);
        }
        for h in 0..2 {
            let b = 8 * h;
            for i in 0..4 {
                t[b + i] = _mm512_shuffle_i32x4::<0x88>(r[b + i], r[b + 4 + i]);
                t[b + 4 + i] = _mm512_shuffle_i32x4::<0xdd>(r[b + i], r[b + 4 + i]);
            }
        }
        for i in 0..8 {
            r[i] = _mm512_shuffle_i32x4::<0x88>(t[i], t[8 + i]);
            r[8 + i] = _mm512_shuffle_i32x4::<0xdd>(t[i], t[8 + i]);
        }
        for (l, row) in r.iter().enumerate() {
            _mm512_storeu_si512(out[l * BLOCK_WORDS..].as_mut_ptr().cast(), *row);
        }
    }
}

/// A ChaCha8 stream read in pieces on a wide path: [`Wide::start`] takes
/// the generator's position, [`Wide::take`] hands out the following words
/// (whole groups straight into the caller's slice), and [`Wide::finish`]
/// moves the generator past everything taken. The words are the ones
/// `rng.fill` would have given, piece after piece.
pub struct Wide {
    kernel: CpuKernel,
    key: [u32; 8],
    stream: u64,
    /// The generator's word position at the start.
    start: u128,
    /// Words handed out since.
    taken: u128,
    /// The next block to compute.
    block: u64,
    /// Words computed but not yet handed out: `buf[at..len]`.
    buf: [u32; 256],
    at: usize,
    len: usize,
}

impl Wide {
    /// A wide reader of `rng` on path `kernel`, or `None` for the baseline
    /// and for a path this CPU lacks (callers then use `rng.fill`).
    pub fn start(kernel: CpuKernel, rng: &mut ChaCha8Rng) -> Option<Wide> {
        if !matches!(kernel, CpuKernel::Avx2 | CpuKernel::Avx512) || !kernel.is_available() {
            return None;
        }
        let start = rng.get_word_pos();
        let mut buf = [0u32; 256];
        // The rest of the current block comes from the generator's buffer.
        let head =
            ((BLOCK_WORDS as u128 - start % BLOCK_WORDS as u128) % BLOCK_WORDS as u128) as usize;
        for w in &mut buf[..head] {
            *w = rng.next_u32();
        }
        let seed = rng.get_seed();
        let mut key = [0u32; 8];
        for (k, bytes) in key.iter_mut().zip(seed.chunks_exact(4)) {
            *k = u32::from_le_bytes(bytes.try_into().expect("4 bytes"));
        }
        Some(Wide {
            kernel,
            key,
            stream: rng.get_stream(),
            start,
            taken: 0,
            block: ((start + head as u128) / BLOCK_WORDS as u128) as u64,
            buf,
            at: 0,
            len: head,
        })
    }

    /// Words per group on this path.
    fn group_words(&self) -> usize {
        match self.kernel {
            CpuKernel::Avx512 => 256,
            _ => 128,
        }
    }

    /// The next group into `out[..group_words]`.
    #[allow(unsafe_code)]
    fn group(&mut self, out: &mut [u32]) {
        match self.kernel {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `start` checked that this CPU runs the path.
            CpuKernel::Avx512 => unsafe {
                group_avx512(
                    &self.key,
                    self.stream,
                    self.block,
                    out.try_into().expect("256"),
                )
            },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: as above.
            CpuKernel::Avx2 => unsafe {
                group_avx2(
                    &self.key,
                    self.stream,
                    self.block,
                    out.try_into().expect("128"),
                )
            },
            _ => unreachable!("`start` makes wide readers on wide paths only"),
        }
        self.block = self
            .block
            .wrapping_add((self.group_words() / BLOCK_WORDS) as u64);
    }

    /// Fills `out` with the next words of the stream.
    pub fn take(&mut self, out: &mut [u32]) {
        self.taken += out.len() as u128;
        let from_buf = out.len().min(self.len - self.at);
        let (first, mut rest) = out.split_at_mut(from_buf);
        first.copy_from_slice(&self.buf[self.at..self.at + from_buf]);
        self.at += from_buf;
        let gw = self.group_words();
        while rest.len() >= gw {
            let (group, tail) = rest.split_at_mut(gw);
            self.group(group);
            rest = tail;
        }
        if !rest.is_empty() {
            let mut buf = [0u32; 256];
            self.group(&mut buf[..gw]);
            rest.copy_from_slice(&buf[..rest.len()]);
            self.buf = buf;
            self.at = rest.len();
            self.len = gw;
        }
    }

    /// Leaves `rng` just past the words taken.
    pub fn finish(self, rng: &mut ChaCha8Rng) {
        rng.set_word_pos(self.start + self.taken);
    }
}

/// Fills `out` with the next words of `rng`'s stream, exactly as
/// `rng.fill(out)` would, and leaves `rng` just past them, computing the
/// blocks on the instruction-set path `kernel` (`rng.fill` itself for the
/// baseline, for short runs and where this CPU lacks the path; every path
/// writes the same words). The tests' reference use of [`Wide`].
#[cfg(test)]
pub fn fill(kernel: CpuKernel, rng: &mut ChaCha8Rng, out: &mut [u32]) {
    use rand::Rng;
    if out.len() < MIN_WIDE {
        return rng.fill(out);
    }
    match Wide::start(kernel, rng) {
        Some(mut wide) => {
            wide.take(out);
            wide.finish(rng);
        }
        None => rng.fill(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn wide_fill_is_rand_chachas_stream() {
        for (seed, stream, skip, len) in [
            (1u64, 0u64, 0usize, MIN_WIDE),
            (2, 0, 3, 256 * 3 + 128),
            (7, 3, 5, 5000),
            (99, u64::MAX, 17, 4096 + 3),
            (3, 1, 16, 700),
            (4, 2, 1, 10),
        ] {
            let mut ours = ChaCha8Rng::seed_from_u64(seed);
            ours.set_stream(stream);
            let mut theirs = ours.clone();
            for _ in 0..skip {
                assert_eq!(ours.next_u32(), theirs.next_u32());
            }
            let mut b = vec![0u32; len];
            theirs.fill(&mut b[..]);
            for kernel in CpuKernel::available() {
                let mut ours = ours.clone();
                let mut theirs = theirs.clone();
                let mut a = vec![0u32; len];
                fill(kernel, &mut ours, &mut a);
                assert!(
                    a == b,
                    "{kernel}: seed {seed} stream {stream} skip {skip} len {len}"
                );
                // Both generators go on identically.
                for _ in 0..40 {
                    assert_eq!(ours.next_u32(), theirs.next_u32());
                }
            }
        }
    }

    #[test]
    fn wide_reader_in_pieces_is_rand_chachas_stream() {
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        rng.set_stream(4);
        for _ in 0..3 {
            rng.next_u32();
        }
        let pieces = [1usize, 15, 300, 1024, 7, 256, 128, 129, 2000, 0, 5];
        let total: usize = pieces.iter().sum();
        let mut want = vec![0u32; total];
        let mut theirs = rng.clone();
        theirs.fill(&mut want[..]);
        for kernel in CpuKernel::available() {
            let mut ours = rng.clone();
            let mut got = vec![0u32; total];
            match Wide::start(kernel, &mut ours) {
                Some(mut wide) => {
                    let mut rest = &mut got[..];
                    for &p in &pieces {
                        let (piece, tail) = rest.split_at_mut(p);
                        wide.take(piece);
                        rest = tail;
                    }
                    wide.finish(&mut ours);
                }
                None => {
                    assert_eq!(kernel, CpuKernel::Baseline);
                    ours.fill(&mut got[..]);
                }
            }
            assert!(got == want, "{kernel}");
            assert_eq!(ours.next_u64(), theirs.clone().next_u64(), "{kernel}");
        }
    }

    #[test]
    fn wide_fill_crosses_the_block_counter_carry() {
        let mut ours = ChaCha8Rng::seed_from_u64(5);
        ours.set_word_pos((u128::from(u32::MAX) - 3) * 16 + 9);
        let mut theirs = ours.clone();
        let mut b = vec![0u32; 3000];
        theirs.fill(&mut b[..]);
        for kernel in CpuKernel::available() {
            let mut ours = ours.clone();
            let mut a = vec![0u32; 3000];
            fill(kernel, &mut ours, &mut a);
            assert!(a == b, "{kernel}");
            assert_eq!(ours.get_word_pos(), theirs.get_word_pos());
        }
    }
}
