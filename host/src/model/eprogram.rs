//! EPrograms: energy-based programs over spin and categorical variables.
//!
//! The Ising subset (`ising`, `beta`, `schedule`, `clamp`) is fixed by the
//! product brief and named as in thrml's `IsingEBM`. The general form adds
//! categorical variables, factor tables and hard constraints:
//!
//! * variables `0..ising.n` are spins in {-1, +1}; variables
//!   `ising.n..ising.n + categorical.len()` are categorical with `states` states;
//! * a factor is a table of log-potentials over a few variables, row-major with
//!   the last variable varying fastest; a spin's state index is 0 for -1 and 1 for +1;
//! * a constraint (`one_hot`, `exactly_k`) restricts a set of spins to
//!   configurations with exactly `k` spins at +1; no draw ever violates one.
//!
//! The unnormalised log-probability of a configuration is
//! `beta * (Σ b_i s_i + Σ w_ij s_i s_j + Σ_v u_v[x_v] + Σ_f table_f[x_f])`.

use std::collections::BTreeMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::{Issue, ModelError, omitted_issue, parse_json, read_file};
use super::limits::MAX_ISSUES;

pub use super::limits::{
    MAX_CHAIN_VALUES, MAX_CHAINS, MAX_CONSTRAINT_CONFIGS, MAX_DRAW_VALUES, MAX_EDGES,
    MAX_FACTOR_TABLE, MAX_SAMPLES, MAX_STATES, MAX_STEPS_PER_SAMPLE, MAX_VARIABLES, MAX_WARMUP,
};

/// An energy-based program: a factor graph plus a sampling schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EProgram {
    /// Pairwise spin model over variables `0..n` (thrml's `IsingEBM`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ising: Option<Ising>,
    /// Categorical variables, numbered after the Ising spins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categorical: Vec<CategoricalVar>,
    /// General factor tables (log-potentials) over spins and categoricals.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub factors: Vec<Factor>,
    /// Hard constraints over spins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<Constraint>,
    /// Inverse temperature multiplying the whole log-potential.
    #[serde(default = "default_beta")]
    pub beta: f64,
    /// How many sweeps to run and keep.
    pub schedule: Schedule,
    /// Variables fixed to a value (conditioning): spins to ±1, categoricals to
    /// a state index. Keys are variable indices written as strings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub clamp: BTreeMap<String, i64>,
}

fn default_beta() -> f64 {
    1.0
}

/// The Ising part: `Σ b_i s_i + Σ w_ij s_i s_j` over spins `0..n`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ising {
    /// Number of spins.
    pub n: usize,
    /// One bias per spin.
    pub biases: Vec<f64>,
    /// Undirected couplings `[i, j]`, no self-loops, no duplicates.
    pub edges: Vec<[usize; 2]>,
    /// One weight per edge.
    pub weights: Vec<f64>,
}

/// A categorical variable with `states` states and an optional unary
/// log-potential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CategoricalVar {
    /// Number of states, at least 2.
    pub states: u32,
    /// Unary log-potential, one entry per state (zeros when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_potential: Option<Vec<f64>>,
}

/// A factor table over a few variables.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Factor {
    /// Distinct variable indices.
    pub vars: Vec<usize>,
    /// Log-potentials, row-major, last variable fastest; length is the product
    /// of the variables' state counts.
    pub log_potential: Vec<f64>,
}

/// Kinds of hard constraint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    /// Exactly one of the spins is +1.
    OneHot,
    /// Exactly `k` of the spins are +1.
    ExactlyK,
}

/// A hard constraint over spins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Constraint {
    /// Which constraint.
    pub kind: ConstraintKind,
    /// The spins it covers (distinct; a spin is in at most one constraint).
    pub vars: Vec<usize>,
    /// For `exactly_k`: how many spins are +1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<usize>,
}

impl Constraint {
    /// How many of `vars` must be +1.
    pub fn required_up(&self) -> usize {
        match self.kind {
            ConstraintKind::OneHot => 1,
            ConstraintKind::ExactlyK => self.k.unwrap_or(0),
        }
    }
}

/// The sampling schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Sweeps discarded at the start of each chain.
    pub warmup: u64,
    /// Draws kept per chain.
    pub samples: u64,
    /// Sweeps between kept draws (at least 1).
    pub steps_per_sample: u64,
    /// Independent chains.
    pub chains: u64,
}

/// The type of one variable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarKind {
    Spin,
    Categorical(u32),
}

impl VarKind {
    /// Number of states (2 for a spin).
    pub fn states(self) -> usize {
        match self {
            VarKind::Spin => 2,
            VarKind::Categorical(k) => k as usize,
        }
    }
}

/// A clamp that contradicts a hard constraint: the program has no valid
/// configuration. This is a result, not a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Infeasible {
    /// JSON path of the constraint that cannot be met.
    pub constraint: String,
    /// Why, in words.
    pub explanation: String,
}

impl EProgram {
    /// A program over spins only, at inverse temperature 1, nothing clamped.
    pub fn spins(
        biases: Vec<f64>,
        edges: Vec<[usize; 2]>,
        weights: Vec<f64>,
        schedule: Schedule,
    ) -> EProgram {
        EProgram {
            ising: Some(Ising {
                n: biases.len(),
                biases,
                edges,
                weights,
            }),
            categorical: Vec::new(),
            factors: Vec::new(),
            constraints: Vec::new(),
            beta: 1.0,
            schedule,
            clamp: Default::default(),
        }
    }

    /// Reads and validates an EProgram file.
    pub fn load(file: &Path) -> Result<Self, ModelError> {
        let text = read_file(file)?;
        Self::from_json(file, &text)
    }

    /// Parses and validates EProgram JSON; `file` is only used in messages.
    pub fn from_json(file: &Path, text: &str) -> Result<Self, ModelError> {
        let program: EProgram = parse_json(file, text)?;
        program.check(file)?;
        Ok(program)
    }

    /// Validates, returning every issue at once.
    pub fn check(&self, file: &Path) -> Result<(), ModelError> {
        let issues = self.issues("$");
        if issues.is_empty() {
            Ok(())
        } else {
            Err(ModelError::Invalid {
                file: file.to_path_buf(),
                issues,
            })
        }
    }

    /// Number of Ising spins.
    pub fn n_spins(&self) -> usize {
        self.ising.as_ref().map_or(0, |i| i.n)
    }

    /// Total number of variables.
    pub fn n_vars(&self) -> usize {
        self.n_spins() + self.categorical.len()
    }

    /// The type of variable `v`.
    pub fn var_kind(&self, v: usize) -> VarKind {
        let n = self.n_spins();
        if v < n {
            VarKind::Spin
        } else {
            VarKind::Categorical(self.categorical[v - n].states)
        }
    }

    /// Whether this is a plain Ising program (no categoricals, factors or
    /// constraints).
    pub fn is_pure_ising(&self) -> bool {
        self.categorical.is_empty() && self.factors.is_empty() && self.constraints.is_empty()
    }

    /// Clamped variables as (index, state index), after validation.
    /// Spin values map to state 0 (-1) and 1 (+1).
    pub fn clamped_states(&self) -> Vec<Option<u8>> {
        let mut out = vec![None; self.n_vars()];
        for (k, &v) in &self.clamp {
            if let Ok(i) = k.parse::<usize>()
                && i < out.len()
            {
                out[i] = Some(match self.var_kind(i) {
                    VarKind::Spin => u8::from(v > 0),
                    VarKind::Categorical(_) => v as u8,
                });
            }
        }
        out
    }

    /// sha256 of the canonical JSON form (fields in a fixed order, clamps
    /// sorted, defaults filled), as `sha256:<hex>`.
    pub fn canonical_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let bytes = serde_json::to_vec(self).expect("an EProgram always serialises");
        format!("sha256:{}", hex::encode(Sha256::digest(&bytes)))
    }

    /// Checks every rule; `root` prefixes the JSON paths (a program embedded
    /// in a graph passes its own path).
    pub fn issues(&self, root: &str) -> Vec<Issue> {
        let mut out = Vec::new();
        // Only the first MAX_ISSUES are kept (3 M duplicate edges must not
        // make 3 M messages); the rest are counted.
        let mut omitted = 0usize;
        let mut bad = |path: String, reason: String| {
            if out.len() < MAX_ISSUES {
                out.push(Issue::new(path, reason));
            } else {
                omitted += 1;
            }
        };
        let n_spins = self.n_spins();
        let n_vars = self.n_vars();

        if !self.beta.is_finite() || self.beta < 0.0 {
            bad(
                format!("{root}.beta"),
                format!("beta must be a finite number >= 0, got {}", self.beta),
            );
        }
        if n_vars == 0 {
            bad(
                root.to_string(),
                "the program has no variables: give `ising` with n >= 1 or `categorical`".into(),
            );
        }
        if n_vars > MAX_VARIABLES {
            bad(
                root.to_string(),
                format!("{n_vars} variables is more than the limit of {MAX_VARIABLES}"),
            );
        }

        if let Some(ising) = &self.ising {
            let p = format!("{root}.ising");
            if ising.biases.len() != ising.n {
                bad(
                    format!("{p}.biases"),
                    format!(
                        "has {} entries but n is {}: give one bias per spin",
                        ising.biases.len(),
                        ising.n
                    ),
                );
            }
            for (i, b) in ising.biases.iter().enumerate() {
                if !b.is_finite() {
                    bad(
                        format!("{p}.biases[{i}]"),
                        format!("bias is not finite ({b})"),
                    );
                }
            }
            if ising.edges.len() != ising.weights.len() {
                bad(
                    format!("{p}.weights"),
                    format!(
                        "has {} entries but there are {} edges: give one weight per edge",
                        ising.weights.len(),
                        ising.edges.len()
                    ),
                );
            }
            if ising.edges.len() > MAX_EDGES {
                bad(
                    format!("{p}.edges"),
                    format!(
                        "{} edges is more than the limit of {MAX_EDGES}",
                        ising.edges.len()
                    ),
                );
            }
            for (i, w) in ising.weights.iter().enumerate() {
                if !w.is_finite() {
                    bad(
                        format!("{p}.weights[{i}]"),
                        format!("weight is not finite ({w})"),
                    );
                }
            }
            let mut seen = std::collections::HashMap::with_capacity(ising.edges.len());
            for (e, &[i, j]) in ising.edges.iter().enumerate() {
                let ep = format!("{p}.edges[{e}]");
                if i >= ising.n || j >= ising.n {
                    bad(
                        ep,
                        format!(
                            "edge [{i}, {j}] names a spin out of range (spins are 0..{})",
                            ising.n
                        ),
                    );
                    continue;
                }
                if i == j {
                    bad(
                        ep,
                        format!("self-loop on spin {i}: an edge must join two different spins"),
                    );
                    continue;
                }
                let key = (i.min(j), i.max(j));
                if let Some(first) = seen.insert(key, e) {
                    bad(
                        ep,
                        format!(
                            "duplicate edge [{i}, {j}]: the same pair is already edges[{first}]"
                        ),
                    );
                }
            }
        }

        for (c, var) in self.categorical.iter().enumerate() {
            let p = format!("{root}.categorical[{c}]");
            if var.states < 2 || var.states > MAX_STATES {
                bad(
                    format!("{p}.states"),
                    format!(
                        "states must be between 2 and {MAX_STATES}, got {}",
                        var.states
                    ),
                );
            }
            if let Some(lp) = &var.log_potential {
                if lp.len() != var.states as usize {
                    bad(
                        format!("{p}.log_potential"),
                        format!(
                            "has {} entries but the variable has {} states",
                            lp.len(),
                            var.states
                        ),
                    );
                }
                for (s, x) in lp.iter().enumerate() {
                    if !x.is_finite() {
                        bad(
                            format!("{p}.log_potential[{s}]"),
                            format!("value is not finite ({x})"),
                        );
                    }
                }
            }
        }

        for (f, factor) in self.factors.iter().enumerate() {
            let p = format!("{root}.factors[{f}]");
            if factor.vars.is_empty() {
                bad(
                    format!("{p}.vars"),
                    "a factor needs at least one variable".into(),
                );
                continue;
            }
            let mut size: usize = 1;
            let mut ok = true;
            for (k, &v) in factor.vars.iter().enumerate() {
                if v >= n_vars {
                    bad(
                        format!("{p}.vars[{k}]"),
                        format!(
                            "variable {v} is out of range (the program has {n_vars} variables)"
                        ),
                    );
                    ok = false;
                } else {
                    size = size.saturating_mul(self.var_kind(v).states());
                }
                if factor.vars[..k].contains(&v) {
                    bad(
                        format!("{p}.vars[{k}]"),
                        format!("variable {v} appears twice in one factor"),
                    );
                    ok = false;
                }
            }
            if ok && size > MAX_FACTOR_TABLE {
                bad(
                    format!("{p}.log_potential"),
                    format!(
                        "the table would have {size} entries, more than the limit of {MAX_FACTOR_TABLE}"
                    ),
                );
            } else if ok && factor.log_potential.len() != size {
                bad(
                    format!("{p}.log_potential"),
                    format!(
                        "has {} entries but the variables' states multiply to {size}",
                        factor.log_potential.len()
                    ),
                );
            }
            for (s, x) in factor.log_potential.iter().enumerate() {
                if !x.is_finite() {
                    bad(
                        format!("{p}.log_potential[{s}]"),
                        format!("value is not finite ({x})"),
                    );
                }
            }
        }

        let mut owner: BTreeMap<usize, usize> = BTreeMap::new();
        for (c, con) in self.constraints.iter().enumerate() {
            let p = format!("{root}.constraints[{c}]");
            if con.vars.is_empty() {
                bad(
                    format!("{p}.vars"),
                    "a constraint needs at least one variable".into(),
                );
            }
            match (con.kind, con.k) {
                (ConstraintKind::ExactlyK, None) => {
                    bad(format!("{p}.k"), "exactly_k needs `k`".into())
                }
                (ConstraintKind::OneHot, Some(k)) if k != 1 => bad(
                    format!("{p}.k"),
                    format!("one_hot means k = 1; got k = {k} (use exactly_k)"),
                ),
                (_, Some(k)) if k > con.vars.len() => bad(
                    format!("{p}.k"),
                    format!(
                        "k = {k} but the constraint covers only {} spins",
                        con.vars.len()
                    ),
                ),
                _ => {}
            }
            for (k, &v) in con.vars.iter().enumerate() {
                let vp = format!("{p}.vars[{k}]");
                if v >= n_spins {
                    bad(
                        vp,
                        format!(
                            "variable {v} is not a spin: constraints cover spins 0..{n_spins} only"
                        ),
                    );
                } else if con.vars[..k].contains(&v) {
                    bad(vp, format!("variable {v} appears twice in one constraint"));
                } else if let Some(other) = owner.insert(v, c) {
                    bad(
                        vp,
                        format!(
                            "spin {v} is already in constraints[{other}]: constraints may not overlap"
                        ),
                    );
                }
            }
            let m = con.vars.len() as u64;
            let configs = binomial(m, con.required_up().min(con.vars.len()) as u64);
            if configs > MAX_CONSTRAINT_CONFIGS {
                bad(
                    p.clone(),
                    format!(
                        "{} over {m} spins has {configs} joint states; a constrained block is sampled jointly and may have at most {MAX_CONSTRAINT_CONFIGS}",
                        kind_name(con.kind)
                    ),
                );
            }
        }

        let s = &self.schedule;
        let sp = format!("{root}.schedule");
        if s.samples == 0 || s.samples > MAX_SAMPLES {
            bad(
                format!("{sp}.samples"),
                format!(
                    "samples must be between 1 and {MAX_SAMPLES}, got {}",
                    s.samples
                ),
            );
        }
        if s.chains == 0 || s.chains > MAX_CHAINS {
            bad(
                format!("{sp}.chains"),
                format!(
                    "chains must be between 1 and {MAX_CHAINS}, got {}",
                    s.chains
                ),
            );
        }
        if s.steps_per_sample == 0 || s.steps_per_sample > MAX_STEPS_PER_SAMPLE {
            bad(
                format!("{sp}.steps_per_sample"),
                format!(
                    "steps_per_sample must be between 1 and {MAX_STEPS_PER_SAMPLE}, got {}",
                    s.steps_per_sample
                ),
            );
        }
        if s.warmup > MAX_WARMUP {
            bad(
                format!("{sp}.warmup"),
                format!("warmup must be at most {MAX_WARMUP}, got {}", s.warmup),
            );
        }
        let values = s
            .chains
            .saturating_mul(s.samples)
            .saturating_mul(n_vars as u64);
        if values > MAX_DRAW_VALUES {
            bad(
                sp.clone(),
                format!(
                    "chains x samples x variables = {values} draw values, more than the limit of {MAX_DRAW_VALUES}"
                ),
            );
        }
        let chain_values = s.chains.saturating_mul(n_vars as u64);
        if chain_values > MAX_CHAIN_VALUES {
            bad(
                sp.clone(),
                format!(
                    "chains x variables = {chain_values} live chain values, more than the limit of {MAX_CHAIN_VALUES}"
                ),
            );
        }

        for (key, &value) in &self.clamp {
            let p = format!("{root}.clamp.{key}");
            let Ok(v) = key.parse::<usize>() else {
                bad(p, format!("clamp keys are variable indices, got {key:?}"));
                continue;
            };
            if v >= n_vars {
                bad(
                    p,
                    format!("variable {v} is out of range (the program has {n_vars} variables)"),
                );
                continue;
            }
            match self.var_kind(v) {
                VarKind::Spin if value != 1 && value != -1 => {
                    bad(p, format!("a spin is clamped to -1 or +1, got {value}"))
                }
                VarKind::Categorical(k) if value < 0 || value >= i64::from(k) => bad(
                    p,
                    format!(
                        "a categorical variable with {k} states is clamped to 0..{}, got {value}",
                        k - 1
                    ),
                ),
                _ => {}
            }
        }
        if omitted > 0 {
            out.push(omitted_issue(omitted));
        }
        out
    }

    /// Whether the clamps leave every hard constraint satisfiable.
    /// Call after validation.
    pub fn feasibility(&self, root: &str) -> Result<(), Infeasible> {
        let clamped = self.clamped_states();
        for (c, con) in self.constraints.iter().enumerate() {
            let need = con.required_up();
            let up = con.vars.iter().filter(|&&v| clamped[v] == Some(1)).count();
            let free = con.vars.iter().filter(|&&v| clamped[v].is_none()).count();
            if up > need || up + free < need {
                return Err(Infeasible {
                    constraint: format!("{root}.constraints[{c}]"),
                    explanation: format!(
                        "{} over spins {:?} needs exactly {need} at +1, but the clamps fix {up} at +1 and leave {free} free",
                        kind_name(con.kind),
                        con.vars
                    ),
                });
            }
        }
        Ok(())
    }
}

fn kind_name(kind: ConstraintKind) -> &'static str {
    match kind {
        ConstraintKind::OneHot => "one_hot",
        ConstraintKind::ExactlyK => "exactly_k",
    }
}

/// `m choose k`, saturating.
pub fn binomial(m: u64, k: u64) -> u64 {
    if k > m {
        return 0;
    }
    let k = k.min(m - k);
    let mut acc: u128 = 1;
    for i in 0..k {
        acc = acc * u128::from(m - i) / u128::from(i + 1);
        if acc > u128::from(u64::MAX) {
            return u64::MAX;
        }
    }
    acc as u64
}
