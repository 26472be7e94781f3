//! The hot path: chromatic Gibbs sampling of plain pairwise spin programs.
//!
//! Spin `i` is +1 with probability `sigmoid(2 beta h_i)`, `h_i = b_i + Σ_j w_ij s_j`.
//! Spins of one colour do not interact, so a colour class is one block: its
//! fields are computed from the other colours, then all of its spins are
//! resampled. The sigmoid uses a polynomial `exp` with relative error below
//! 3e-7 (about f32 precision), so the loop over a colour class vectorises.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use thermoroute_sim::cpu::CpuKernel;

use super::{ChainKernel, ChainState, chacha_wide, greedy_colouring};
use crate::model::EProgram;

/// Shortest stretch of identically shaped spins worth a vector pass.
const MIN_RUN: usize = 16;

/// Fields a regular segment computes at a time: its length is rounded up
/// to this when the pass has room (one AVX-512 vector of f32).
const VECTOR: usize = 16;

/// Spins per pass of a sweep (fields, random words, updates): 12 KB of
/// fields and words, well inside the L1 cache.
const CHUNK: usize = 1024;

/// A stretch `lo..hi` of one colour class whose spins read their
/// neighbours at the same index offsets (a lattice row's interior): spin
/// `i`'s coupling `k` reads `spins[i + delta[k]]` with weight
/// `weight_t[k * n + i]`, so each coupling is one contiguous, vectorised
/// pass with no index loads. `pattern` is `u32::MAX` for a stretch of
/// irregular spins (the fixed-degree or CSR loop serves it).
#[derive(Debug, Clone, Copy)]
struct Segment {
    lo: u32,
    hi: u32,
    pattern: u32,
}

/// The lattice view of a uniform-degree plan.
#[derive(Debug, Clone)]
struct Runs {
    /// Per colour, its segments in order, covering the colour class.
    segments: Vec<Vec<Segment>>,
    /// `degree` offsets per pattern.
    deltas: Vec<isize>,
    /// `weight_t[k * n_free + i]`: the CSR weights, coupling-major.
    weight_t: Vec<f32>,
}

/// A pure Ising program compiled for the CPU kernel.
#[derive(Debug, Clone)]
pub struct IsingPlan {
    /// Original variable index of each free spin, free spins ordered by colour.
    free_to_var: Vec<u32>,
    /// Half-open ranges of free-spin indices, one per colour.
    colours: Vec<(usize, usize)>,
    row_ptr: Vec<u32>,
    col: Vec<u32>,
    /// `2 beta w` per CSR entry.
    weight2: Vec<f32>,
    /// `2 beta (b_i + Σ_clamped w_ij s_j)` per free spin.
    bias2: Vec<f32>,
    clamped: Vec<(u32, i8)>,
    /// Degree shared by every free spin, if any: the CSR is then a dense
    /// `n_free x degree` table and the field loop is fully unrolled.
    uniform_degree: Option<usize>,
    /// Stretches of identically shaped spins (uniform degree only).
    runs: Option<Runs>,
    /// The instruction-set path sweeps run with.
    kernel: CpuKernel,
}

impl IsingPlan {
    /// Compiles a validated pure-Ising program.
    pub fn compile(program: &EProgram) -> Self {
        let ising = program
            .ising
            .as_ref()
            .expect("a pure Ising program has `ising`");
        let n = ising.n;
        let clamp = program.clamped_states();
        let spin_of = |state: u8| if state == 1 { 1.0 } else { -1.0 };
        let two_beta = 2.0 * program.beta;

        let mut bias: Vec<f64> = ising.biases.clone();
        let mut adjacency: Vec<Vec<(u32, f64)>> = vec![Vec::new(); n];
        for (&[i, j], &w) in ising.edges.iter().zip(&ising.weights) {
            match (clamp[i], clamp[j]) {
                (None, None) => {
                    adjacency[i].push((j as u32, w));
                    adjacency[j].push((i as u32, w));
                }
                (None, Some(sj)) => bias[i] += w * spin_of(sj),
                (Some(si), None) => bias[j] += w * spin_of(si),
                (Some(_), Some(_)) => {}
            }
        }
        let free: Vec<usize> = (0..n).filter(|&v| clamp[v].is_none()).collect();
        let mut local = vec![u32::MAX; n];
        for (k, &v) in free.iter().enumerate() {
            local[v] = k as u32;
        }
        let free_adjacency: Vec<Vec<u32>> = free
            .iter()
            .map(|&v| {
                adjacency[v]
                    .iter()
                    .map(|&(j, _)| local[j as usize])
                    .collect()
            })
            .collect();
        let colour = greedy_colouring(&free_adjacency);
        let mut order: Vec<usize> = (0..free.len()).collect();
        order.sort_by_key(|&k| (colour[k], k));
        let mut new_index = vec![0u32; free.len()];
        for (pos, &k) in order.iter().enumerate() {
            new_index[k] = pos as u32;
        }
        let mut colours = Vec::new();
        let mut start = 0;
        for pos in 1..=order.len() {
            if pos == order.len() || colour[order[pos]] != colour[order[start]] {
                colours.push((start, pos));
                start = pos;
            }
        }

        let mut row_ptr = Vec::with_capacity(free.len() + 1);
        let mut col = Vec::new();
        let mut weight2 = Vec::new();
        let mut bias2 = Vec::with_capacity(free.len());
        let mut free_to_var = Vec::with_capacity(free.len());
        row_ptr.push(0u32);
        for &k in &order {
            let v = free[k];
            free_to_var.push(v as u32);
            bias2.push((two_beta * bias[v]) as f32);
            let mut row: Vec<(u32, f32)> = adjacency[v]
                .iter()
                .map(|&(j, w)| (new_index[local[j as usize] as usize], (two_beta * w) as f32))
                .collect();
            row.sort_by_key(|&(j, _)| j);
            for (j, w) in row {
                col.push(j);
                weight2.push(w);
            }
            row_ptr.push(col.len() as u32);
        }
        let clamped = (0..n)
            .filter_map(|v| clamp[v].map(|s| (v as u32, spin_of(s) as i8)))
            .collect();
        let degrees: Vec<u32> = row_ptr.windows(2).map(|w| w[1] - w[0]).collect();
        let uniform_degree = match degrees.split_first() {
            Some((&d, rest)) if rest.iter().all(|&x| x == d) => Some(d as usize),
            _ => None,
        };
        let runs = uniform_degree.and_then(|d| Runs::build(d, &colours, &col, &weight2));
        IsingPlan {
            free_to_var,
            colours,
            row_ptr,
            col,
            weight2,
            bias2,
            clamped,
            uniform_degree,
            runs,
            kernel: CpuKernel::active(),
        }
    }

    /// The same plan, sweeping with instruction-set path `kernel` (the
    /// draws are identical on every path; only the speed differs).
    pub fn with_cpu_kernel(mut self, kernel: CpuKernel) -> Self {
        self.kernel = kernel;
        self
    }

    /// Whether some spins go through the contiguous (lattice) field loop.
    pub fn uses_runs(&self) -> bool {
        self.runs.is_some()
    }

    /// The same plan without the lattice view: every spin's field through
    /// the index-table loop (tests compare the two).
    pub fn without_runs(mut self) -> Self {
        self.runs = None;
        self
    }

    /// Number of colour classes.
    pub fn n_colours(&self) -> usize {
        self.colours.len()
    }

    /// Local fields `bias + Σ w s` of free spins `lo..hi`, any degrees.
    #[inline(always)]
    fn fields_csr(&self, lo: usize, hi: usize, spins: &[f32], field: &mut [f32]) {
        for (i, h) in (lo..hi).zip(field.iter_mut()) {
            let (a, b) = (self.row_ptr[i] as usize, self.row_ptr[i + 1] as usize);
            let mut acc = self.bias2[i];
            for (&j, &w) in self.col[a..b].iter().zip(&self.weight2[a..b]) {
                acc += w * spins[j as usize];
            }
            *h = acc;
        }
    }

    /// Local fields when every spin has `D` neighbours: fixed-size rows.
    #[inline(always)]
    fn fields_fixed<const D: usize>(&self, lo: usize, hi: usize, spins: &[f32], field: &mut [f32]) {
        let cols = self.col[lo * D..hi * D].chunks_exact(D);
        let weights = self.weight2[lo * D..hi * D].chunks_exact(D);
        for (((h, &b), c), w) in field
            .iter_mut()
            .zip(&self.bias2[lo..hi])
            .zip(cols)
            .zip(weights)
        {
            let c: &[u32; D] = c.try_into().expect("chunk of D");
            let w: &[f32; D] = w.try_into().expect("chunk of D");
            let mut acc = b;
            for k in 0..D {
                acc += w[k] * spins[c[k] as usize];
            }
            *h = acc;
        }
    }

    /// Local fields of free spins `lo..hi` when every spin has `degree`
    /// neighbours and no lattice view applies.
    #[inline(always)]
    fn fields_uniform(&self, lo: usize, hi: usize, spins: &[f32], field: &mut [f32]) {
        match self.uniform_degree {
            Some(2) => self.fields_fixed::<2>(lo, hi, spins, field),
            Some(4) => self.fields_fixed::<4>(lo, hi, spins, field),
            Some(6) => self.fields_fixed::<6>(lo, hi, spins, field),
            Some(8) => self.fields_fixed::<8>(lo, hi, spins, field),
            Some(16) => self.fields_fixed::<16>(lo, hi, spins, field),
            _ => self.fields_csr(lo, hi, spins, field),
        }
    }

    /// Local fields of free spins `lo..hi` of colour `colour` through its
    /// segments: regular ones coupling by coupling over contiguous slices,
    /// in the same order per spin (bias, then couplings by ascending
    /// neighbour index) as [`fields_fixed`](Self::fields_fixed), so the sums
    /// are the same bits.
    #[inline(always)]
    fn fields_runs(
        &self,
        runs: &Runs,
        colour: usize,
        (lo, hi): (usize, usize),
        spins: &[f32],
        field: &mut [f32],
    ) {
        let d = self.uniform_degree.unwrap_or(0);
        let n = self.bias2.len();
        let segments = &runs.segments[colour];
        let first = segments.partition_point(|seg| seg.hi as usize <= lo);
        for seg in &segments[first..] {
            let (a, b) = ((seg.lo as usize).max(lo), (seg.hi as usize).min(hi));
            if a >= b {
                break;
            }
            if seg.pattern == u32::MAX {
                self.fields_uniform(a, b, spins, &mut field[a - lo..b - lo]);
                continue;
            }
            let deltas = &runs.deltas[seg.pattern as usize * d..][..d];
            // A whole number of vectors: the extra fields belong to the
            // segments after this one in the same pass, which overwrite
            // them (so no scalar remainder runs).
            let mut len = b - a;
            let padded = len.next_multiple_of(VECTOR);
            if a + padded <= hi
                && deltas
                    .iter()
                    .all(|&delta| (a as isize + delta) as usize + padded <= spins.len())
            {
                len = padded;
            }
            let out = &mut field[a - lo..a - lo + len];
            out.copy_from_slice(&self.bias2[a..a + len]);
            for (k, &delta) in deltas.iter().enumerate() {
                let first = (a as isize + delta) as usize;
                let s = &spins[first..first + len];
                let w = &runs.weight_t[k * n + a..k * n + a + len];
                for ((h, &w), &s) in out.iter_mut().zip(w).zip(s) {
                    *h += w * s;
                }
            }
        }
    }

    /// One sweep on the plan's instruction-set path.
    fn sweep(&self, spins: &mut [f32], field: &mut [f32], noise: &mut [u32], rng: &mut ChaCha8Rng) {
        let plan = self;
        thermoroute_sim::cpu_dispatch!(self.kernel, (
            plan: &IsingPlan,
            spins: &mut [f32],
            field: &mut [f32],
            noise: &mut [u32],
            rng: &mut ChaCha8Rng,
        ) -> (), {
            plan.sweep_body(spins, field, noise, rng)
        })
    }

    /// One sweep: every colour class in turn, in chunks of at most
    /// [`CHUNK`] spins (fields, random words, new spins), so that a chunk's
    /// fields and words stay in the L1 cache. The random words are the
    /// chain's ChaCha8 stream in spin order, computed sixteen (AVX-512) or
    /// eight (AVX2) blocks at a time on the vector paths; the same words
    /// on every path.
    #[inline(always)]
    fn sweep_body(
        &self,
        spins: &mut [f32],
        field: &mut [f32],
        noise: &mut [u32],
        rng: &mut ChaCha8Rng,
    ) {
        let mut wide = if self.free_to_var.len() >= chacha_wide::MIN_WIDE {
            chacha_wide::Wide::start(self.kernel, rng)
        } else {
            None
        };
        for (c, &(lo, hi)) in self.colours.iter().enumerate() {
            let mut start = lo;
            while start < hi {
                let end = (start + CHUNK).min(hi);
                let field = &mut field[..end - start];
                match &self.runs {
                    Some(runs) => self.fields_runs(runs, c, (start, end), spins, field),
                    None => self.fields_uniform(start, end, spins, field),
                }
                let noise = &mut noise[..end - start];
                match &mut wide {
                    Some(wide) => wide.take(noise),
                    None => rng.fill(noise),
                }
                for ((s, &h), &r) in spins[start..end]
                    .iter_mut()
                    .zip(field.iter())
                    .zip(noise.iter())
                {
                    // u < 1 / (1 + e^-h)  <=>  u * (1 + e^-h) < 1
                    let u = (r >> 8) as f32 * (1.0 / 16_777_216.0);
                    *s = if u * (1.0 + fast_exp(-h)) < 1.0 {
                        1.0
                    } else {
                        -1.0
                    };
                }
                start = end;
            }
        }
        if let Some(wide) = wide {
            wide.finish(rng);
        }
    }
}

impl Runs {
    /// Finds, per colour, the stretches of at least [`MIN_RUN`] consecutive
    /// spins whose neighbour offsets agree; `None` when there are none.
    fn build(
        degree: usize,
        colours: &[(usize, usize)],
        col: &[u32],
        weight2: &[f32],
    ) -> Option<Runs> {
        if degree == 0 {
            return None;
        }
        let n = col.len() / degree;
        let offset = |i: usize, k: usize| col[i * degree + k] as isize - i as isize;
        let continues = |i: usize| (0..degree).all(|k| offset(i, k) == offset(i - 1, k));
        let mut deltas: Vec<isize> = Vec::new();
        let mut segments = Vec::with_capacity(colours.len());
        let mut any = false;
        for &(lo, hi) in colours {
            let mut segs: Vec<Segment> = Vec::new();
            let mut start = lo;
            while start < hi {
                let mut end = start + 1;
                while end < hi && continues(end) {
                    end += 1;
                }
                if end - start >= MIN_RUN {
                    any = true;
                    let pattern: Vec<isize> = (0..degree).map(|k| offset(start, k)).collect();
                    let id = match deltas
                        .chunks_exact(degree)
                        .position(|p| p == pattern.as_slice())
                    {
                        Some(id) => id,
                        None => {
                            deltas.extend_from_slice(&pattern);
                            deltas.len() / degree - 1
                        }
                    };
                    segs.push(Segment {
                        lo: start as u32,
                        hi: end as u32,
                        pattern: id as u32,
                    });
                } else {
                    match segs.last_mut() {
                        Some(last) if last.pattern == u32::MAX && last.hi as usize == start => {
                            last.hi = end as u32;
                        }
                        _ => segs.push(Segment {
                            lo: start as u32,
                            hi: end as u32,
                            pattern: u32::MAX,
                        }),
                    }
                }
                start = end;
            }
            segments.push(segs);
        }
        if !any {
            return None;
        }
        let mut weight_t = vec![0f32; degree * n];
        for i in 0..n {
            for k in 0..degree {
                weight_t[k * n + i] = weight2[i * degree + k];
            }
        }
        Some(Runs {
            segments,
            deltas,
            weight_t,
        })
    }
}

impl ChainKernel for IsingPlan {
    fn start(&self, rng: &mut ChaCha8Rng) -> ChainState {
        let n_free = self.free_to_var.len();
        let spins: Vec<f32> = (0..n_free)
            .map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 })
            .collect();
        let widest = self
            .colours
            .iter()
            .map(|&(lo, hi)| hi - lo)
            .max()
            .unwrap_or(0)
            .min(CHUNK);
        ChainState::Spins {
            spins,
            field: vec![0f32; widest],
            noise: vec![0u32; widest],
        }
    }

    fn sweep(&self, state: &mut ChainState, rng: &mut ChaCha8Rng) {
        let ChainState::Spins {
            spins,
            field,
            noise,
        } = state
        else {
            unreachable!("an Ising plan runs spin states")
        };
        IsingPlan::sweep(self, spins, field, noise, rng);
    }

    fn record(&self, state: &ChainState, row: &mut [i8]) {
        let ChainState::Spins { spins, .. } = state else {
            unreachable!("an Ising plan runs spin states")
        };
        for (&v, &s) in self.free_to_var.iter().zip(spins) {
            row[v as usize] = if s > 0.0 { 1 } else { -1 };
        }
        for &(v, s) in &self.clamped {
            row[v as usize] = s;
        }
    }

    fn updates_per_sweep(&self) -> u64 {
        self.free_to_var.len() as u64
    }

    fn cpu_kernel(&self) -> CpuKernel {
        self.kernel
    }

    fn set_cpu_kernel(&mut self, kernel: CpuKernel) {
        self.kernel = kernel;
    }
}

/// `e^x` for f32: `x = n ln2 + f` with Cody-Waite reduction (|f| <= ln2/2),
/// then a degree-6 Taylor polynomial for `e^f` (relative error < 3e-7).
/// Saturates outside [-87, 88].
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let t = x * LOG2E + ROUND;
    let n = t - ROUND;
    let f = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0
        + f * (1.0
            + f * (0.5
                + f * (1.0 / 6.0 + f * (1.0 / 24.0 + f * (1.0 / 120.0 + f * (1.0 / 720.0))))));
    // `t`'s bits are `0x4B40_0000 + n` (n in -126..=127 sits in the low
    // mantissa bits of 1.5 * 2^23), and `0x4B40_0000 << 23` wraps to 0, so
    // this is `2^n` built from `(n + 127) << 23` without a float-to-int
    // conversion (whose saturating `as` does not vectorise).
    let scale = f32::from_bits(t.to_bits().wrapping_add(127) << 23);
    p * scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Schedule;
    use crate::workloads::pm_j_lattice;

    const SCHEDULE: Schedule = Schedule {
        warmup: 1,
        samples: 1,
        steps_per_sample: 1,
        chains: 1,
    };

    #[test]
    fn torus_colouring_and_layout() {
        let even = IsingPlan::compile(&pm_j_lattice(4, 1.0, 0.0, 1, SCHEDULE));
        assert_eq!(even.n_colours(), 2, "an even torus is a checkerboard");
        assert_eq!(even.uniform_degree, Some(4));
        let odd = IsingPlan::compile(&pm_j_lattice(3, 1.0, 0.0, 1, SCHEDULE));
        assert!(
            (3..=4).contains(&odd.n_colours()),
            "an odd torus needs 3 colours; greedy may use 4"
        );
        // No two spins of one colour are neighbours.
        for &(lo, hi) in &odd.colours {
            for i in lo..hi {
                let row = &odd.col[odd.row_ptr[i] as usize..odd.row_ptr[i + 1] as usize];
                assert!(row.iter().all(|&j| !(lo..hi).contains(&(j as usize))));
            }
        }
    }

    /// Runs `sweeps` sweeps of two chains and returns every recorded state.
    fn draws(plan: &IsingPlan, n: usize, sweeps: usize) -> Vec<i8> {
        let mut out = Vec::new();
        for chain in 0..2 {
            let mut rng = crate::sampler::chain_rng(11, chain);
            let mut state = plan.start(&mut rng);
            let mut row = vec![0i8; n];
            for _ in 0..sweeps {
                ChainKernel::sweep(plan, &mut state, &mut rng);
                plan.record(&state, &mut row);
                out.extend_from_slice(&row);
            }
        }
        out
    }

    #[test]
    fn lattice_view_and_every_cpu_path_draw_the_same_bits() {
        // A 64x64 torus (rows of 32 same-coloured spins: the lattice view
        // applies) with a field that is not symmetric, an odd 37x37 torus
        // (three or more colours, short rows) and a 40x40 one.
        for side in [64, 37, 40] {
            let program = pm_j_lattice(side, 0.7, 0.3, 5, SCHEDULE);
            let n = side * side;
            let plan = IsingPlan::compile(&program);
            if side == 64 {
                assert!(plan.uses_runs(), "a 64x64 torus has runs");
            }
            let reference = draws(
                &plan
                    .clone()
                    .without_runs()
                    .with_cpu_kernel(CpuKernel::Baseline),
                n,
                6,
            );
            assert!(reference.contains(&1) && reference.contains(&-1));
            for kernel in CpuKernel::available() {
                for runs in [true, false] {
                    let mut p = plan.clone().with_cpu_kernel(kernel);
                    if !runs {
                        p = p.without_runs();
                    }
                    assert!(
                        draws(&p, n, 6) == reference,
                        "{side}x{side}, {kernel}, lattice view {runs}: draws differ"
                    );
                }
            }
        }
    }

    #[test]
    fn fast_exp_scale_is_the_float_to_int_conversion() {
        // The bit trick equals `((n as i32 + 127) as u32) << 23` over the
        // whole clamped range, step 2^-10.
        for k in -(87 << 10)..=(88 << 10) {
            let x = k as f32 / 1024.0;
            let t = x * std::f32::consts::LOG2_E + 12_582_912.0;
            let n = t - 12_582_912.0;
            assert_eq!(
                t.to_bits().wrapping_add(127) << 23,
                ((n as i32 + 127) as u32) << 23,
                "x = {x}"
            );
        }
    }

    #[test]
    fn fast_exp_is_accurate() {
        for k in -800..=800 {
            let x = k as f32 * 0.1;
            let rel = (fast_exp(x) - x.exp()).abs() / x.exp();
            assert!(rel < 3e-7, "exp({x}): relative error {rel}");
        }
    }
}
