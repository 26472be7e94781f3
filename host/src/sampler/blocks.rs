//! The general kernel: block Gibbs over categorical variables, spins, factor
//! tables and hard constraints.
//!
//! Every free categorical variable and every free spin outside a constraint is
//! a block of one; the free spins of each constraint form one block whose
//! configurations are exactly those that satisfy it (given the clamps). A
//! block update enumerates its configurations, scores each with every term
//! that touches the block, and draws one from the softmax. Blocks that share
//! no term get the same colour; a sweep updates the colours in turn.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use thermoroute_sim::cpu::CpuKernel;

use super::{ChainKernel, ChainState, greedy_colouring};
use crate::model::EProgram;
use crate::model::eprogram::VarKind;

#[derive(Debug, Clone)]
struct Block {
    members: Vec<u32>,
    /// `configs[c * members.len() + m]` is member m's state in configuration c.
    configs: Vec<u8>,
    edges: Vec<u32>,
    factors: Vec<u32>,
}

impl Block {
    fn n_configs(&self) -> usize {
        self.configs.len() / self.members.len()
    }
}

#[derive(Debug, Clone)]
struct TableFactor {
    vars: Vec<u32>,
    strides: Vec<usize>,
    /// beta-scaled log-potentials.
    table: Vec<f64>,
}

/// A general program compiled for the block kernel.
#[derive(Debug, Clone)]
pub struct BlockPlan {
    is_spin: Vec<bool>,
    /// beta-scaled unary log-potential per (variable, state), at `unary_at[v]`.
    unary: Vec<f64>,
    unary_at: Vec<usize>,
    /// beta-scaled spin couplings.
    edges: Vec<(u32, u32, f64)>,
    factors: Vec<TableFactor>,
    blocks: Vec<Block>,
    /// Block indices per colour.
    colours: Vec<Vec<u32>>,
    clamped: Vec<Option<u8>>,
    /// The instruction-set path sweeps run with.
    kernel: CpuKernel,
}

impl BlockPlan {
    /// Compiles a validated, feasible program.
    pub fn compile(program: &EProgram) -> Self {
        let n_vars = program.n_vars();
        let beta = program.beta;
        let clamped = program.clamped_states();
        let kinds: Vec<VarKind> = (0..n_vars).map(|v| program.var_kind(v)).collect();
        let is_spin: Vec<bool> = kinds.iter().map(|k| *k == VarKind::Spin).collect();

        let mut unary = Vec::new();
        let mut unary_at = Vec::with_capacity(n_vars);
        let n_spins = program.n_spins();
        for v in 0..n_vars {
            unary_at.push(unary.len());
            match kinds[v] {
                VarKind::Spin => {
                    let b = program.ising.as_ref().map_or(0.0, |i| i.biases[v]);
                    unary.extend([-beta * b, beta * b]);
                }
                VarKind::Categorical(k) => match &program.categorical[v - n_spins].log_potential {
                    Some(lp) => unary.extend(lp.iter().map(|x| beta * x)),
                    None => unary.extend(std::iter::repeat_n(0.0, k as usize)),
                },
            }
        }
        let edges: Vec<(u32, u32, f64)> = program
            .ising
            .iter()
            .flat_map(|i| i.edges.iter().zip(&i.weights))
            .map(|(&[i, j], &w)| (i as u32, j as u32, beta * w))
            .collect();
        let factors: Vec<TableFactor> = program
            .factors
            .iter()
            .map(|f| {
                let mut strides = vec![0; f.vars.len()];
                let mut stride = 1;
                for k in (0..f.vars.len()).rev() {
                    strides[k] = stride;
                    stride *= kinds[f.vars[k]].states();
                }
                TableFactor {
                    vars: f.vars.iter().map(|&v| v as u32).collect(),
                    strides,
                    table: f.log_potential.iter().map(|x| beta * x).collect(),
                }
            })
            .collect();

        // Blocks.
        let mut block_of = vec![u32::MAX; n_vars];
        let mut blocks: Vec<Block> = Vec::new();
        for con in &program.constraints {
            let members: Vec<u32> = con
                .vars
                .iter()
                .filter(|&&v| clamped[v].is_none())
                .map(|&v| v as u32)
                .collect();
            if members.is_empty() {
                continue;
            }
            let already_up = con.vars.iter().filter(|&&v| clamped[v] == Some(1)).count();
            let need = con.required_up() - already_up;
            let configs = k_subsets(members.len(), need);
            for &m in &members {
                block_of[m as usize] = blocks.len() as u32;
            }
            blocks.push(Block {
                members,
                configs,
                edges: Vec::new(),
                factors: Vec::new(),
            });
        }
        for v in 0..n_vars {
            if clamped[v].is_none() && block_of[v] == u32::MAX {
                block_of[v] = blocks.len() as u32;
                blocks.push(Block {
                    members: vec![v as u32],
                    // Up to 256 states: every index fits a u8, the count may not.
                    configs: (0..kinds[v].states()).map(|s| s as u8).collect(),
                    edges: Vec::new(),
                    factors: Vec::new(),
                });
            }
        }

        // Incidence and the block conflict graph.
        let mut adjacency: Vec<Vec<u32>> = vec![Vec::new(); blocks.len()];
        let mut touch = |vars: &mut dyn Iterator<Item = u32>,
                         blocks: &mut Vec<Block>,
                         term: u32,
                         is_edge: bool| {
            let mut touched: Vec<u32> = vars
                .map(|v| block_of[v as usize])
                .filter(|&b| b != u32::MAX)
                .collect();
            touched.sort_unstable();
            touched.dedup();
            for &b in &touched {
                let block = &mut blocks[b as usize];
                if is_edge {
                    block.edges.push(term);
                } else {
                    block.factors.push(term);
                }
                for &o in &touched {
                    if o != b {
                        adjacency[b as usize].push(o);
                    }
                }
            }
        };
        for (e, &(i, j, _)) in edges.iter().enumerate() {
            touch(&mut [i, j].into_iter(), &mut blocks, e as u32, true);
        }
        for (f, factor) in factors.iter().enumerate() {
            touch(
                &mut factor.vars.iter().copied(),
                &mut blocks,
                f as u32,
                false,
            );
        }
        for a in &mut adjacency {
            a.sort_unstable();
            a.dedup();
        }
        let colour = greedy_colouring(&adjacency);
        let n_colours = colour.iter().map(|&c| c as usize + 1).max().unwrap_or(0);
        let mut colours = vec![Vec::new(); n_colours];
        for (b, &c) in colour.iter().enumerate() {
            colours[c as usize].push(b as u32);
        }
        BlockPlan {
            is_spin,
            unary,
            unary_at,
            edges,
            factors,
            blocks,
            colours,
            clamped,
            kernel: CpuKernel::active(),
        }
    }

    /// Number of colour classes.
    pub fn n_colours(&self) -> usize {
        self.colours.len()
    }

    #[inline(always)]
    fn update_block(&self, b: &Block, state: &mut [u8], logp: &mut Vec<f64>, rng: &mut ChaCha8Rng) {
        let m = b.members.len();
        logp.clear();
        for c in 0..b.n_configs() {
            let config = &b.configs[c * m..(c + 1) * m];
            let mut total = 0.0;
            for (&v, &x) in b.members.iter().zip(config) {
                state[v as usize] = x;
                total += self.unary[self.unary_at[v as usize] + x as usize];
            }
            for &e in &b.edges {
                let (i, j, w) = self.edges[e as usize];
                let si = 2.0 * f64::from(state[i as usize]) - 1.0;
                let sj = 2.0 * f64::from(state[j as usize]) - 1.0;
                total += w * si * sj;
            }
            for &f in &b.factors {
                let factor = &self.factors[f as usize];
                let index: usize = factor
                    .vars
                    .iter()
                    .zip(&factor.strides)
                    .map(|(&v, &s)| state[v as usize] as usize * s)
                    .sum();
                total += factor.table[index];
            }
            logp.push(total);
        }
        let max = logp.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut sum = 0.0;
        for x in logp.iter_mut() {
            *x = (*x - max).exp();
            sum += *x;
        }
        let mut u = rng.random::<f64>() * sum;
        let mut chosen = logp.len() - 1;
        for (c, &p) in logp.iter().enumerate() {
            if u < p {
                chosen = c;
                break;
            }
            u -= p;
        }
        for (&v, &x) in b
            .members
            .iter()
            .zip(&b.configs[chosen * m..(chosen + 1) * m])
        {
            state[v as usize] = x;
        }
    }
}

impl ChainKernel for BlockPlan {
    fn start(&self, rng: &mut ChaCha8Rng) -> ChainState {
        let mut state: Vec<u8> = self.clamped.iter().map(|c| c.unwrap_or(0)).collect();
        for b in &self.blocks {
            let m = b.members.len();
            let c = rng.random_range(0..b.n_configs());
            for (&v, &x) in b.members.iter().zip(&b.configs[c * m..(c + 1) * m]) {
                state[v as usize] = x;
            }
        }
        ChainState::Blocks {
            state,
            logp: Vec::new(),
        }
    }

    fn sweep(&self, chain: &mut ChainState, rng: &mut ChaCha8Rng) {
        let ChainState::Blocks { state, logp } = chain else {
            unreachable!("a block plan runs block states")
        };
        let plan = self;
        thermoroute_sim::cpu_dispatch!(self.kernel, (
            plan: &BlockPlan,
            state: &mut [u8],
            logp: &mut Vec<f64>,
            rng: &mut ChaCha8Rng,
        ) -> (), {
            for colour in &plan.colours {
                for &b in colour {
                    plan.update_block(&plan.blocks[b as usize], state, logp, rng);
                }
            }
        })
    }

    fn record(&self, chain: &ChainState, row: &mut [i8]) {
        let ChainState::Blocks { state, .. } = chain else {
            unreachable!("a block plan runs block states")
        };
        for (v, (r, &x)) in row.iter_mut().zip(state).enumerate() {
            *r = if self.is_spin[v] {
                2 * x as i8 - 1
            } else {
                x as i8
            };
        }
    }

    fn updates_per_sweep(&self) -> u64 {
        self.blocks.iter().map(|b| b.members.len() as u64).sum()
    }

    fn cpu_kernel(&self) -> CpuKernel {
        self.kernel
    }

    fn set_cpu_kernel(&mut self, kernel: CpuKernel) {
        self.kernel = kernel;
    }
}

/// All assignments of `m` spins (state 0 or 1) with exactly `k` ones, flattened.
pub(crate) fn k_subsets(m: usize, k: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut current = vec![0u8; m];
    fn rec(pos: usize, left: usize, current: &mut Vec<u8>, out: &mut Vec<u8>) {
        let m = current.len();
        if left > m - pos {
            return;
        }
        if pos == m {
            out.extend_from_slice(current);
            return;
        }
        current[pos] = 0;
        rec(pos + 1, left, current, out);
        if left > 0 {
            current[pos] = 1;
            rec(pos + 1, left - 1, current, out);
            current[pos] = 0;
        }
    }
    rec(0, k, &mut current, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::k_subsets;

    #[test]
    fn k_subsets_counts_and_sums() {
        let configs = k_subsets(5, 2);
        assert_eq!(configs.len(), 10 * 5);
        assert!(
            configs
                .chunks(5)
                .all(|c| c.iter().map(|&x| x as usize).sum::<usize>() == 2)
        );
    }
}
