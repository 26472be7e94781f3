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
pub mod exact;
pub mod ising;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::model::{EProgram, Infeasible, Schedule};

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
    /// `values[(chain * samples + sample) * n_vars + var]`.
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
            value as usize
        }
    }

    /// P(state) per variable, pooled over chains and samples.
    pub fn state_marginals(&self) -> Vec<Vec<f64>> {
        let mut counts: Vec<Vec<u64>> = self.states.iter().map(|&k| vec![0; k]).collect();
        for row in self.values.chunks_exact(self.n_vars.max(1)) {
            for (v, &x) in row.iter().enumerate() {
                counts[v][self.state_of(v, x)] += 1;
            }
        }
        let total = (self.chains * self.samples) as f64;
        counts
            .into_iter()
            .map(|c| c.into_iter().map(|n| n as f64 / total).collect())
            .collect()
    }

    /// sha256 of the draws (one signed byte per value, chain-major), as `sha256:<hex>`.
    pub fn hash(&self) -> String {
        let bytes: Vec<u8> = self.values.iter().map(|&v| v as u8).collect();
        format!("sha256:{}", hex::encode(Sha256::digest(&bytes)))
    }

    /// Values of one variable as a (chains x samples) row-major array of f64.
    pub fn variable_series(&self, var: usize) -> Vec<f64> {
        let mut out = Vec::with_capacity(self.chains * self.samples);
        for c in 0..self.chains {
            for s in 0..self.samples {
                out.push(f64::from(self.get(c, s, var)));
            }
        }
        out
    }
}

/// A compiled program that can run one chain.
trait ChainKernel: Sync {
    /// Runs one chain of `schedule`, writing `samples * n_vars` values into
    /// `out` and adding completed sweeps to `progress` now and then.
    /// Returns the number of updates done.
    fn run_chain(
        &self,
        schedule: &Schedule,
        rng: &mut ChaCha8Rng,
        out: &mut [i8],
        progress: &AtomicU64,
    ) -> u64;
}

/// The RNG of chain `chain` for master seed `seed`.
pub fn chain_rng(seed: u64, chain: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(chain);
    rng
}

/// Samples a validated program on the CPU.
pub fn sample(program: &EProgram, options: SampleOptions) -> Result<Draws, SampleError> {
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
    run_chains(program, kernel.as_ref(), options)
}

fn run_chains(
    program: &EProgram,
    kernel: &dyn ChainKernel,
    options: SampleOptions,
) -> Result<Draws, SampleError> {
    let schedule = program.schedule;
    let n_vars = program.n_vars();
    let chains = schedule.chains as usize;
    let samples = schedule.samples as usize;
    let mut values = vec![0i8; chains * samples * n_vars];
    let unobserved = AtomicU64::new(0);
    let progress = options.progress.unwrap_or(&unobserved);
    let start = Instant::now();
    let mut work = || -> u64 {
        values
            .par_chunks_mut((samples * n_vars).max(1))
            .enumerate()
            .map(|(c, out)| {
                let mut rng = chain_rng(options.seed, c as u64);
                kernel.run_chain(&schedule, &mut rng, out, progress)
            })
            .sum()
    };
    let spin_updates = match options.threads {
        None => work(),
        Some(threads) => rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .map_err(|e| SampleError::Threads {
                threads,
                reason: e.to_string(),
            })?
            .install(work),
    };
    let seconds = start.elapsed().as_secs_f64();
    let states = (0..n_vars).map(|v| program.var_kind(v).states()).collect();
    let is_spin = (0..n_vars)
        .map(|v| program.var_kind(v) == crate::model::VarKind::Spin)
        .collect();
    Ok(Draws {
        chains,
        samples,
        n_vars,
        states,
        is_spin,
        values,
        spin_updates,
        seconds,
    })
}

/// Runs `sweep` `count` times, reporting to `progress` every 64 sweeps.
pub(crate) fn sweeps(count: u64, progress: &AtomicU64, mut sweep: impl FnMut()) {
    let mut pending = 0;
    for _ in 0..count {
        sweep();
        pending += 1;
        if pending == 64 {
            progress.fetch_add(pending, Ordering::Relaxed);
            pending = 0;
        }
    }
    progress.fetch_add(pending, Ordering::Relaxed);
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
