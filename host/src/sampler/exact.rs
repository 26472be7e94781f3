//! Exact marginals by enumeration, for small programs: the reference that the
//! samplers are tested against.

use crate::model::EProgram;
use crate::model::eprogram::VarKind;

/// Largest number of joint configurations [`exact_marginals`] enumerates.
pub const MAX_ENUMERATION: u64 = 1 << 24;

/// P(state) per variable, by summing over every configuration that honours
/// the clamps and constraints. `None` when the program is too large or has no
/// valid configuration.
pub fn exact_marginals(program: &EProgram) -> Option<Vec<Vec<f64>>> {
    let n = program.n_vars();
    let clamp = program.clamped_states();
    let states: Vec<usize> = (0..n).map(|v| program.var_kind(v).states()).collect();
    let free: Vec<usize> = (0..n).filter(|&v| clamp[v].is_none()).collect();
    let total: u64 = free
        .iter()
        .try_fold(1u64, |acc, &v| acc.checked_mul(states[v] as u64))?;
    if total > MAX_ENUMERATION {
        return None;
    }
    let mut x: Vec<usize> = (0..n).map(|v| clamp[v].map_or(0, usize::from)).collect();
    let mut weights: Vec<(f64, Vec<usize>)> = Vec::new();
    for _ in 0..total {
        if satisfies_constraints(program, &x) {
            weights.push((log_weight(program, &x), x.clone()));
        }
        // Mixed-radix increment over the free variables.
        for &v in &free {
            x[v] += 1;
            if x[v] < states[v] {
                break;
            }
            x[v] = 0;
        }
    }
    if weights.is_empty() {
        return None;
    }
    let max = weights
        .iter()
        .map(|w| w.0)
        .fold(f64::NEG_INFINITY, f64::max);
    let mut marginals: Vec<Vec<f64>> = states.iter().map(|&k| vec![0.0; k]).collect();
    let mut z = 0.0;
    for (lw, config) in &weights {
        let p = (lw - max).exp();
        z += p;
        for (v, &s) in config.iter().enumerate() {
            marginals[v][s] += p;
        }
    }
    for m in &mut marginals {
        for p in m.iter_mut() {
            *p /= z;
        }
    }
    Some(marginals)
}

fn spin(state: usize) -> f64 {
    if state == 1 { 1.0 } else { -1.0 }
}

/// The unnormalised log-probability of a configuration of state indices.
pub fn log_weight(program: &EProgram, x: &[usize]) -> f64 {
    let mut total = 0.0;
    if let Some(ising) = &program.ising {
        for (i, b) in ising.biases.iter().enumerate() {
            total += b * spin(x[i]);
        }
        for (&[i, j], w) in ising.edges.iter().zip(&ising.weights) {
            total += w * spin(x[i]) * spin(x[j]);
        }
    }
    let n_spins = program.n_spins();
    for (c, var) in program.categorical.iter().enumerate() {
        if let Some(lp) = &var.log_potential {
            total += lp[x[n_spins + c]];
        }
    }
    for f in &program.factors {
        let mut index = 0;
        for &v in &f.vars {
            index = index * program.var_kind(v).states() + x[v];
        }
        total += f.log_potential[index];
    }
    program.beta * total
}

fn satisfies_constraints(program: &EProgram, x: &[usize]) -> bool {
    program.constraints.iter().all(|c| {
        let up = c.vars.iter().filter(|&&v| x[v] == 1).count();
        debug_assert!(c.vars.iter().all(|&v| program.var_kind(v) == VarKind::Spin));
        up == c.required_up()
    })
}
