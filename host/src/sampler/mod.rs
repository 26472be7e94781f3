//! The CPU sampler: chromatic block Gibbs sampling of EPrograms.
//!
//! A program is compiled into one of two plans:
//!
//! * [`ising::IsingPlan`] for plain pairwise spin programs (the hot path): free
//!   spins are renumbered colour by colour, clamped neighbours are folded into
//!   the biases, and each colour class is updated as one block with a
//!   branch-free loop over a CSR adjacency;
//! * [`blocks::BlockPlan`] for everything else: every categorical variable,
//!   every free spin and every constrained group of spins is a *block* whose
//!   joint conditional is enumerated and sampled exactly (softmax), so hard
//!   constraints hold in every draw.
//!
//! Chains run in parallel (rayon), each with its own ChaCha8 stream derived
//! from `(seed, chain)`, so draws do not depend on the thread count.

pub mod blocks;
mod chacha_wide;
pub mod exact;
pub mod ising;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::model::{EProgram, Infeasible, Schedule};

pub use thermoroute_sim::cpu::{CpuKernel, CpuKernelError};

/// Errors of the sampling boundary.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SampleError {
    /// The clamps contradict a hard constraint. Not fatal for a workload: the
    /// node is reported infeasible with this explanation.
    #[error("infeasible: {} ({})", .0.explanation, .0.constraint)]
    Infeasible(Infeasible),
    /// The program failed validation (call `EProgram::check` first). Fatal.
    #[error("invalid program: {0}")]
    Invalid(String),
    /// A worker pool could not be created. Fatal for this run.
    #[error("could not start {threads} sampler threads: {reason}")]
    Threads { threads: usize, reason: String },
}

impl SampleError {
    /// Whether retrying cannot help (true for every variant but `Threads`).
    pub fn is_fatal(&self) -> bool {
        !matches!(self, SampleError::Threads { .. })
    }
}

/// How to run the sampler.
#[derive(Debug, Clone, Copy, Default)]
pub struct SampleOptions<'a> {
    /// Master seed; chain `c` uses ChaCha8 stream `c` of this seed.
    pub seed: u64,
    /// Worker threads (`None`: rayon's default, one per core).
    pub threads: Option<usize>,
    /// Incremented by the number of sweeps each chain completes (for
    /// progress bars); read it from another thread while sampling runs.
    pub progress: Option<&'a AtomicU64>,
}

impl SampleOptions<'_> {
    /// Options with a seed and nothing else.
    pub fn seeded(seed: u64) -> Self {
        SampleOptions {
            seed,
            ..Default::default()
        }
    }
}

/// Total sweeps of all chains of a schedule (what `progress` counts up to).
pub fn total_sweeps(schedule: &Schedule) -> u64 {
    schedule.chains * (schedule.warmup + schedule.samples * schedule.steps_per_sample)
}

/// Draws from all chains, plus what it took to make them.
#[derive(Debug, Clone)]
pub struct Draws {
    pub chains: usize,
    pub samples: usize,
    pub n_vars: usize,
    /// States per variable (2 for spins).
    pub states: Vec<usize>,
    /// Which variables are spins (drawn as -1/+1; others as a state index).
    pub is_spin: Vec<bool>,
    /// `values[(chain * samples + sample) * n_vars + var]`. A categorical
    /// state (0..=255) is stored as its byte: read it with [`Draws::state_of`]
    /// or `value as u8`, never `value as usize` (states 128..=255 are negative
    /// as `i8`).
    pub values: Vec<i8>,
    /// Single-variable (or block) updates performed, warmup included.
    pub spin_updates: u64,
    /// Wall-clock seconds spent sampling.
    pub seconds: f64,
}

impl Draws {
    /// The draw of `var` in `chain` at `sample`.
    pub fn get(&self, chain: usize, sample: usize, var: usize) -> i8 {
        self.values[(chain * self.samples + sample) * self.n_vars + var]
    }

    /// State index (0-based) of a drawn value.
    pub fn state_of(&self, var: usize, value: i8) -> usize {
        if self.is_spin[var] {
            usize::from(value > 0)
        } else {
            usize::from(value as u8)
        }
    }

    /// P(state) per variable, pooled over chains and samples.
    pub fn state_marginals(&self) -> Vec<Vec<f64>> {
        use rayon::prelude::*;
        // Counted in column blocks, in parallel: a block's counters stay in
        // cache while every draw row passes over it.
        const BLOCK: usize = 1024;
        let total = (self.chains * self.samples) as f64;
        let n = self.n_vars;
        let rows = self.values.len().checked_div(n).unwrap_or(0);
        let mut out: Vec<Vec<f64>> = Vec::with_capacity(n);
        let blocks: Vec<Vec<Vec<f64>>> = (0..n.div_ceil(BLOCK))
            .into_par_iter()
            .map(|b| {
                let vars = b * BLOCK..((b + 1) * BLOCK).min(n);
                let width = vars.len();
                let mut positive = vec![0u32; width];
                let mut categorical: Vec<(usize, Vec<u64>)> = vars
                    .clone()
                    .filter(|&v| !self.is_spin[v])
                    .map(|v| (v, vec![0u64; self.states[v]]))
                    .collect();
                for r in 0..rows {
                    let row = &self.values[r * n + vars.start..r * n + vars.end];
                    for (p, &x) in positive.iter_mut().zip(row) {
                        *p += u32::from(x > 0);
                    }
                    for (v, counts) in &mut categorical {
                        counts[usize::from(self.values[r * n + *v] as u8)] += 1;
                    }
                }
                let mut categorical = categorical.into_iter().peekable();
                vars.zip(positive)
                    .map(|(v, p)| {
                        if self.is_spin[v] {
                            let p = u64::from(p);
                            vec![(rows as u64 - p) as f64 / total, p as f64 / total]
                        } else {
                            let (_, counts) = categorical.next().expect("one per categorical");
                            counts.into_iter().map(|c| c as f64 / total).collect()
                        }
                    })
                    .collect()
            })
            .collect();
        for block in blocks {
            out.extend(block);
        }
        out
    }

    /// sha256 of the draws (one signed byte per value, chain-major), as `sha256:<hex>`.
    pub fn hash(&self) -> String {
        let bytes: &[u8] = bytemuck::cast_slice(&self.values);
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }

    /// Values of one variable as a (chains x samples) row-major array of f64.
    pub fn variable_series(&self, var: usize) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.chains * self.samples);
        for c in 0..self.chains {
            for s in 0..self.samples {
                let x = self.get(c, s, var);
                out.push(if self.is_spin[var] {
                    f64::from(x)
                } else {
                    self.state_of(var, x) as f64
                });
            }
        }
        out
    }
}

/// The state of one chain, with the scratch buffers its sweeps reuse.
pub(crate) enum ChainState {
    Spins {
        spins: Vec<f32>,
        field: Vec<f32>,
        noise: Vec<u32>,
    },
    Blocks {
        state: Vec<u8>,
        logp: Vec<f64>,
    },
}

/// A compiled program: draws a chain's initial state, sweeps it, records it.
trait ChainKernel: Sync + Send {
    /// A random initial state (the first draws of the chain's RNG).
    fn start(&self, rng: &mut ChaCha8Rng) -> ChainState;
    /// Updates every free variable once.
    fn sweep(&self, state: &mut ChainState, rng: &mut ChaCha8Rng);
    /// Writes the state as one draw (`n_vars` values).
    fn record(&self, state: &ChainState, row: &mut [i8]);
    fn updates_per_sweep(&self) -> u64;
    /// The instruction-set path sweeps run with.
    fn cpu_kernel(&self) -> CpuKernel;
    /// Sweeps on `kernel` from now on (the draws do not change).
    fn set_cpu_kernel(&mut self, kernel: CpuKernel);
}

/// The RNG of chain `chain` for master seed `seed`.
pub fn chain_rng(seed: u64, chain: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(chain);
    rng
}

/// Samples a validated program on the CPU.
pub fn sample(program: &EProgram, options: SampleOptions) -> Result<Draws, SampleError> {
    let mut run = SamplerRun::new(program, options.seed)?;
    run.advance(u64::MAX, options.threads, options.progress)?;
    Ok(run.draws())
}

struct Chain {
    rng: ChaCha8Rng,
    state: ChainState,
    sweeps_done: u64,
}

/// A sampling run that advances in slices and can stop at any sweep
/// boundary; slicing never changes the draws (same seed, same draws as
/// [`sample`]), which is what lets the scheduler preempt, time out or stop
/// sampling early and resume it with identical results.
pub struct SamplerRun {
    kernel: Box<dyn ChainKernel>,
    schedule: Schedule,
    n_vars: usize,
    states: Vec<usize>,
    is_spin: Vec<bool>,
    chains: Vec<Chain>,
    /// `values[(chain * samples + sample) * n_vars + var]`, filled as recorded.
    values: Vec<i8>,
    spin_updates: u64,
    seconds: f64,
    pool: Option<(usize, rayon::ThreadPool)>,
}

impl std::fmt::Debug for SamplerRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SamplerRun")
            .field("schedule", &self.schedule)
            .field("sweeps_done", &self.sweeps_done())
            .finish_non_exhaustive()
    }
}

impl SamplerRun {
    /// Validates (as [`sample`] does), compiles, and seeds every chain.
    pub fn new(program: &EProgram, seed: u64) -> Result<Self, SampleError> {
        let issues = program.issues("$");
        if let Some(first) = issues.first() {
            return Err(SampleError::Invalid(first.to_string()));
        }
        program.feasibility("$").map_err(SampleError::Infeasible)?;
        let kernel: Box<dyn ChainKernel> = if program.is_pure_ising() {
            Box::new(ising::IsingPlan::compile(program))
        } else {
            Box::new(blocks::BlockPlan::compile(program))
        };
        let schedule = program.schedule;
        let n_vars = program.n_vars();
        let chains = (0..schedule.chains)
            .map(|c| {
                let mut rng = chain_rng(seed, c);
                let state = kernel.start(&mut rng);
                Chain {
                    rng,
                    state,
                    sweeps_done: 0,
                }
            })
            .collect();
        Ok(SamplerRun {
            schedule,
            n_vars,
            states: (0..n_vars).map(|v| program.var_kind(v).states()).collect(),
            is_spin: (0..n_vars)
                .map(|v| program.var_kind(v) == crate::model::VarKind::Spin)
                .collect(),
            chains,
            values: vec![0i8; (schedule.chains * schedule.samples) as usize * n_vars],
            spin_updates: 0,
            seconds: 0.0,
            pool: None,
            kernel,
        })
    }

    /// Runs the sweeps on instruction-set path `kernel` instead of
    /// [`CpuKernel::active`]; the draws are the same bits on every path.
    /// A path this CPU cannot run is a typed error.
    pub fn with_cpu_kernel(mut self, kernel: CpuKernel) -> Result<Self, CpuKernelError> {
        self.kernel.set_cpu_kernel(kernel.check()?);
        Ok(self)
    }

    /// The instruction-set path the sweeps run with.
    pub fn cpu_kernel(&self) -> CpuKernel {
        self.kernel.cpu_kernel()
    }

    /// Sweeps each chain does in total (warmup + samples * steps_per_sample).
    pub fn total_sweeps_per_chain(&self) -> u64 {
        self.schedule.warmup + self.schedule.samples * self.schedule.steps_per_sample
    }

    /// Sweeps each chain has done (all chains advance together).
    pub fn sweeps_done(&self) -> u64 {
        self.chains.first().map_or(0, |c| c.sweeps_done)
    }

    /// Complete samples per chain recorded so far.
    pub fn samples_done(&self) -> usize {
        let after_warmup = self.sweeps_done().saturating_sub(self.schedule.warmup);
        (after_warmup / self.schedule.steps_per_sample.max(1)) as usize
    }

    pub fn is_done(&self) -> bool {
        self.sweeps_done() >= self.total_sweeps_per_chain()
    }

    /// Advances every chain by up to `sweeps` more sweeps, chains in
    /// parallel. Returns the updates done in this call.
    pub fn advance(
        &mut self,
        sweeps: u64,
        threads: Option<usize>,
        progress: Option<&AtomicU64>,
    ) -> Result<u64, SampleError> {
        let unobserved = AtomicU64::new(0);
        let progress = progress.unwrap_or(&unobserved);
        let start = Instant::now();
        let (kernel, schedule, n_vars) = (self.kernel.as_ref(), self.schedule, self.n_vars);
        let row_len = (schedule.samples as usize * n_vars).max(1);
        let chains = &mut self.chains;
        let values = &mut self.values;
        let mut work = move || -> u64 {
            values
                .par_chunks_mut(row_len)
                .zip(chains.par_iter_mut())
                .map(|(out, chain)| {
                    advance_chain(kernel, &schedule, n_vars, chain, sweeps, out, progress)
                })
                .sum()
        };
        let updates = match threads {
            None => work(),
            Some(threads) => {
                if self.pool.as_ref().is_none_or(|(t, _)| *t != threads) {
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(threads)
                        .build()
                        .map_err(|e| SampleError::Threads {
                            threads,
                            reason: e.to_string(),
                        })?;
                    self.pool = Some((threads, pool));
                }
                let (_, pool) = self.pool.as_ref().expect("pool just built");
                pool.install(work)
            }
        };
        self.spin_updates += updates;
        self.seconds += start.elapsed().as_secs_f64();
        Ok(updates)
    }

    /// The draws so far: the first [`samples_done`](Self::samples_done)
    /// samples of every chain (all of them once done).
    pub fn draws(&self) -> Draws {
        let chains = self.chains.len();
        let samples = self.samples_done().min(self.schedule.samples as usize);
        let full = self.schedule.samples as usize;
        let values = if samples == full {
            self.values.clone()
        } else {
            let mut v = Vec::with_capacity(chains * samples * self.n_vars);
            for c in 0..chains {
                let start = c * full * self.n_vars;
                v.extend_from_slice(&self.values[start..start + samples * self.n_vars]);
            }
            v
        };
        Draws {
            chains,
            samples,
            n_vars: self.n_vars,
            states: self.states.clone(),
            is_spin: self.is_spin.clone(),
            values,
            spin_updates: self.spin_updates,
            seconds: self.seconds,
        }
    }
}

/// Runs up to `budget` sweeps of one chain from where it stopped, recording
/// a draw after every `steps_per_sample`-th sweep past warmup.
fn advance_chain(
    kernel: &dyn ChainKernel,
    schedule: &Schedule,
    n_vars: usize,
    chain: &mut Chain,
    budget: u64,
    out: &mut [i8],
    progress: &AtomicU64,
) -> u64 {
    let total = schedule.warmup + schedule.samples * schedule.steps_per_sample;
    let start = chain.sweeps_done;
    let end = total.min(start.saturating_add(budget));
    let mut pending = 0;
    while chain.sweeps_done < end {
        kernel.sweep(&mut chain.state, &mut chain.rng);
        chain.sweeps_done += 1;
        pending += 1;
        if pending == 64 {
            progress.fetch_add(pending, Ordering::Relaxed);
            pending = 0;
        }
        let p = chain.sweeps_done;
        if p > schedule.warmup && (p - schedule.warmup).is_multiple_of(schedule.steps_per_sample) {
            let k = ((p - schedule.warmup) / schedule.steps_per_sample - 1) as usize;
            kernel.record(&chain.state, &mut out[k * n_vars..(k + 1) * n_vars]);
        }
    }
    progress.fetch_add(pending, Ordering::Relaxed);
    (end - start) * kernel.updates_per_sweep()
}

/// Greedy colouring of a graph given as adjacency lists: node `i` gets the
/// smallest colour unused by its already-coloured neighbours. On bipartite
/// lattices numbered row by row this yields the checkerboard.
pub fn greedy_colouring(adjacency: &[Vec<u32>]) -> Vec<u32> {
    let mut colour = vec![u32::MAX; adjacency.len()];
    let mut used: Vec<bool> = Vec::new();
    for i in 0..adjacency.len() {
        used.clear();
        for &j in &adjacency[i] {
            let c = colour[j as usize];
            if c != u32::MAX {
                if used.len() <= c as usize {
                    used.resize(c as usize + 1, false);
                }
                used[c as usize] = true;
            }
        }
        colour[i] = used.iter().position(|&u| !u).unwrap_or(used.len()) as u32;
    }
    colour
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workloads::pm_j_lattice;

    const SCHEDULE: Schedule = Schedule {
        warmup: 13,
        samples: 40,
        steps_per_sample: 3,
        chains: 3,
    };

    fn example(file: &str) -> EProgram {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/programs");
        EProgram::load(&std::path::Path::new(dir).join(file)).unwrap()
    }

    fn sliced(program: &EProgram, seed: u64, slices: &[u64]) -> Draws {
        let mut run = SamplerRun::new(program, seed).unwrap();
        for &s in slices {
            run.advance(s, Some(1), None).unwrap();
        }
        run.advance(u64::MAX, Some(2), None).unwrap();
        assert!(run.is_done());
        run.draws()
    }

    #[test]
    fn slicing_never_changes_the_draws() {
        let lattice = pm_j_lattice(6, 1.0, 0.2, 4, SCHEDULE);
        let general = example("one-hot-causes.json");
        for program in [&lattice, &general] {
            let whole = sample(program, SampleOptions::seeded(7)).unwrap();
            let pieces = sliced(program, 7, &[1, 7, 3, 50, 2]);
            assert_eq!(pieces.values, whole.values);
            assert_eq!(pieces.hash(), whole.hash());
            assert_eq!(pieces.spin_updates, whole.spin_updates);
        }
    }

    /// Hashes made by the sampler before it became resumable (one
    /// `run_chain` per chain): any change to RNG order or recording breaks them.
    #[test]
    fn draws_match_the_pre_resumable_sampler() {
        let golden = [
            (
                pm_j_lattice(6, 1.0, 0.2, 4, SCHEDULE),
                "1ade58010af357fe0c2fadba6c67d3856911ce870b59d40e7fe58ba6d6c83d12",
            ),
            (
                pm_j_lattice(5, 1.0, 0.2, 9, SCHEDULE),
                "333955457f8ce8398ff419637b8391fc2a4a3ec14a04a518455ffed6e793cd67",
            ),
            (
                example("chain.json"),
                "18740f0a51b3e796ceb1d488548a94943a51ad17a9716c5dd5862e651baa4108",
            ),
            (
                example("lattice-8x8.json"),
                "63854f11cfa441497749174f313fd4c31bdf0dc465ced91d4b34268264911504",
            ),
            (
                example("one-hot-causes.json"),
                "f6337ea3ffcabc1415fa5318a0c0ad9dd8ce25a3552e5ebed6c30071b232ba97",
            ),
        ];
        for (program, hash) in &golden {
            let draws = sample(program, SampleOptions::seeded(7)).unwrap();
            assert_eq!(draws.hash(), format!("sha256:{hash}"));
        }
    }

    #[test]
    fn partial_draws_hold_the_samples_recorded_so_far() {
        let schedule = Schedule {
            warmup: 10,
            samples: 8,
            steps_per_sample: 2,
            chains: 2,
        };
        let lattice = pm_j_lattice(4, 1.0, 0.0, 1, schedule);
        let mut general = example("one-hot-causes.json");
        general.schedule = schedule;
        for program in [&lattice, &general] {
            let whole = sample(program, SampleOptions::seeded(3)).unwrap();
            let mut run = SamplerRun::new(program, 3).unwrap();
            assert_eq!(run.total_sweeps_per_chain(), 26);
            // (slice, sweeps done after it, samples done after it)
            for (slice, sweeps, samples) in [
                (0, 0, 0),
                (9, 9, 0),
                (1, 10, 0),
                (1, 11, 0),
                (3, 14, 2),
                (1, 15, 2),
                (7, 22, 6),
                (100, 26, 8),
                (5, 26, 8),
            ] {
                run.advance(slice, None, None).unwrap();
                assert_eq!(run.sweeps_done(), sweeps);
                assert_eq!(run.samples_done(), samples);
                assert_eq!(run.is_done(), sweeps == 26);
                let partial = run.draws();
                assert_eq!(partial.samples, samples);
                assert_eq!(partial.values.len(), 2 * samples * program.n_vars());
                for c in 0..2 {
                    for s in 0..samples {
                        for v in 0..program.n_vars() {
                            assert_eq!(partial.get(c, s, v), whole.get(c, s, v));
                        }
                    }
                }
            }
            let done = run.draws();
            assert_eq!(done.values, whole.values);
            assert_eq!(done.spin_updates, whole.spin_updates);
        }
    }
}
