//! TSU images: a spin program placed on cells, coloured, and quantised to the
//! chip's fixed-point formats.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{ChipConfig, Topology};

/// The sampling schedule, as in an EProgram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub warmup: u64,
    pub samples: u64,
    pub steps_per_sample: u64,
    pub chains: u64,
}

impl Schedule {
    /// Saturates at `u64::MAX`: a schedule that long is refused by the
    /// chip's `max_sweeps`, never wrapped into a short one.
    pub fn sweeps_per_chain(&self) -> u64 {
        self.warmup
            .saturating_add(self.samples.saturating_mul(self.steps_per_sample))
    }
}

/// What a TSU can run: pairwise spins, `p(s) ∝ exp(beta (Σ b s + Σ w s s))`,
/// some spins clamped to ±1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpinProblem {
    pub biases: Vec<f64>,
    pub edges: Vec<[usize; 2]>,
    pub weights: Vec<f64>,
    pub beta: f64,
    /// `Some(±1)` for clamped spins.
    pub clamp: Vec<Option<i8>>,
    pub schedule: Schedule,
}

impl SpinProblem {
    pub fn n(&self) -> usize {
        self.biases.len()
    }
}

/// Why a program does not fit a chip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "issue", rename_all = "snake_case")]
#[non_exhaustive]
pub enum CompileIssue {
    #[error("needs {needed} cells, the chip has {available}")]
    TooManyCells { needed: usize, available: usize },
    #[error("variable {var} has {degree} couplings, cells have {max} slots")]
    DegreeExceeded {
        var: usize,
        degree: usize,
        max: usize,
    },
    #[error("edge ({a}, {b}) is not a grid neighbour when placed row-major on a {width}-wide grid")]
    NotAGridNeighbour { a: usize, b: usize, width: usize },
    #[error("needs {needed} colour phases, the chip runs at most {max}")]
    TooManyColours { needed: usize, max: usize },
    #[error("{what}: {requested} exceeds the chip limit {limit}")]
    ScheduleTooLong {
        what: String,
        requested: u64,
        limit: u64,
    },
    #[error(
        "{what} {index} = {value:.4} (beta included) saturates the +-{range} fixed-point range"
    )]
    Saturates {
        what: String,
        index: usize,
        value: f64,
        range: f64,
    },
    #[error("{what} {index} loses {error:.4} to quantisation (tolerance {tolerance})")]
    PrecisionLoss {
        what: String,
        index: usize,
        error: f64,
        tolerance: f64,
    },
    /// The problem itself is malformed (the host's validation rules these
    /// out; a direct caller of [`compile`] is told instead of panicking).
    #[error("malformed problem: {reason}")]
    Malformed { reason: String },
}

/// A program compiled for a chip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TsuImage {
    pub chip: String,
    /// Program variables (cells per copy).
    pub n: usize,
    /// Copies of the program on the chip (chains run side by side).
    pub copies: usize,
    /// Sequential batches needed for all chains.
    pub batches: usize,
    /// Variable of each slot, free variables ordered colour by colour, then
    /// clamped ones.
    pub order: Vec<u32>,
    /// Half-open slot ranges, one per colour (free variables only).
    pub colours: Vec<(usize, usize)>,
    /// CSR over free slots: neighbour slots and quantised weights.
    pub row_ptr: Vec<u32>,
    pub col: Vec<u32>,
    /// Weight codes (the chip's weight SRAM holds at most 16 bits).
    pub weight_q: Vec<i16>,
    /// Quantised bias of each free slot, in field LSBs.
    pub bias_q: Vec<i32>,
    /// State of each slot at start: clamped slots keep it for ever.
    pub clamp: Vec<i8>,
    pub n_free: usize,
    /// Field value of one LSB (beta included).
    pub lsb: f64,
    /// The accumulator saturates at +- this many LSBs.
    pub field_max: i32,
    pub schedule: Schedule,
    /// Couplings and biases written to the chip (all copies).
    pub writes: u64,
    /// Largest and mean absolute quantisation error of the weights, and the
    /// error of each (in field units, beta included).
    pub weight_error_max: f64,
    pub weight_error_mean: f64,
    pub weight_errors: Vec<f64>,
    pub bias_error_max: f64,
}

/// Quantises `x` to a signed `bits`-bit grid spanning `[-range, range]`;
/// returns the integer code and the step.
fn quantise(x: f64, bits: u32, range: f64) -> (i64, f64) {
    let levels = ((1i64 << (bits - 1)) - 1) as f64;
    let step = range / levels;
    ((x / step).round() as i64, step)
}

/// Flags `value`, the `index`th `what` scaled by beta, when it lies outside
/// the DAC's `range`.
fn flag_saturation(
    issues: &mut Vec<CompileIssue>,
    what: &str,
    index: usize,
    value: f64,
    range: f64,
) {
    if value.abs() > range {
        issues.push(CompileIssue::Saturates {
            what: what.into(),
            index,
            value,
            range,
        });
    }
}

/// Flags the `index`th `what` when quantising it lost more than `tolerance`.
fn flag_precision_loss(
    issues: &mut Vec<CompileIssue>,
    what: &str,
    index: usize,
    error: f64,
    tolerance: f64,
) {
    if error > tolerance {
        issues.push(CompileIssue::PrecisionLoss {
            what: what.into(),
            index,
            error,
            tolerance,
        });
    }
}

/// Why `problem` cannot be compiled at all: lengths that disagree, edges
/// out of range or onto themselves, a clamp that is not ±1.
fn malformed(problem: &SpinProblem) -> Option<String> {
    let n = problem.n();
    if problem.weights.len() != problem.edges.len() {
        return Some(format!(
            "{} weights for {} edges",
            problem.weights.len(),
            problem.edges.len()
        ));
    }
    if problem.clamp.len() != n {
        return Some(format!("{} clamps for {n} spins", problem.clamp.len()));
    }
    if let Some((i, [a, b])) = problem
        .edges
        .iter()
        .enumerate()
        .find(|(_, [a, b])| *a >= n || *b >= n || a == b)
    {
        return Some(format!(
            "edge {i} ({a}, {b}) is a self-loop or leaves 0..{n}"
        ));
    }
    if let Some(v) = problem
        .clamp
        .iter()
        .position(|c| c.is_some_and(|x| x != 1 && x != -1))
    {
        return Some(format!("spin {v} is clamped to something other than +-1"));
    }
    None
}

/// Compiles a problem for a chip, or lists every reason it cannot.
/// `tolerance` bounds the quantisation error of any weight or bias, in field
/// units (beta included).
pub fn compile(
    problem: &SpinProblem,
    chip: &ChipConfig,
    tolerance: f64,
) -> Result<TsuImage, Vec<CompileIssue>> {
    let n = problem.n();
    if let Some(reason) = malformed(problem) {
        return Err(vec![CompileIssue::Malformed { reason }]);
    }
    let mut issues = Vec::new();
    let s = problem.schedule;
    if s.sweeps_per_chain() > chip.limits.max_sweeps {
        issues.push(CompileIssue::ScheduleTooLong {
            what: "sweeps per chain".into(),
            requested: s.sweeps_per_chain(),
            limit: chip.limits.max_sweeps,
        });
    }
    if s.samples > chip.limits.max_samples {
        issues.push(CompileIssue::ScheduleTooLong {
            what: "samples per chain".into(),
            requested: s.samples,
            limit: chip.limits.max_samples,
        });
    }
    if n > chip.cells {
        issues.push(CompileIssue::TooManyCells {
            needed: n,
            available: chip.cells,
        });
    }
    let mut adjacency: Vec<Vec<(usize, f64)>> = vec![Vec::new(); n];
    for (&[a, b], &w) in problem.edges.iter().zip(&problem.weights) {
        adjacency[a].push((b, w));
        adjacency[b].push((a, w));
    }
    match &chip.topology {
        Topology::Programmable { max_degree } => {
            for (v, nbrs) in adjacency.iter().enumerate() {
                if nbrs.len() > *max_degree {
                    issues.push(CompileIssue::DegreeExceeded {
                        var: v,
                        degree: nbrs.len(),
                        max: *max_degree,
                    });
                }
            }
        }
        Topology::Grid {
            width,
            neighbourhood,
        } => {
            let w = *width as i64;
            for &[a, b] in &problem.edges {
                let (ax, ay) = (a as i64 % w, a as i64 / w);
                let (bx, by) = (b as i64 % w, b as i64 / w);
                let d = [(bx - ax) as i32, (by - ay) as i32];
                if !neighbourhood.contains(&d) {
                    issues.push(CompileIssue::NotAGridNeighbour {
                        a,
                        b,
                        width: *width,
                    });
                }
            }
        }
    }
    // Quantise with beta folded in: the cell sees beta * (b + Σ w s).
    let (_, lsb) = quantise(0.0, chip.weight_bits, chip.weight_range);
    let mut weight_errors = Vec::with_capacity(problem.weights.len());
    let mut weight_code = Vec::with_capacity(problem.weights.len());
    for (i, &w) in problem.weights.iter().enumerate() {
        let x = problem.beta * w;
        flag_saturation(&mut issues, "weight", i, x, chip.weight_range);
        let (q, _) = quantise(x, chip.weight_bits, chip.weight_range);
        let err = (q as f64 * lsb - x).abs();
        flag_precision_loss(&mut issues, "weight", i, err, tolerance);
        weight_errors.push(err);
        weight_code.push(q as i32);
    }
    let mut bias_field = Vec::with_capacity(n);
    let mut bias_error_max: f64 = 0.0;
    for (i, &b) in problem.biases.iter().enumerate() {
        let x = problem.beta * b;
        flag_saturation(&mut issues, "bias", i, x, chip.bias_range);
        let (q, step) = quantise(x, chip.bias_bits, chip.bias_range);
        // The bias DAC output lands on the field's LSB grid.
        let in_lsb = (q as f64 * step / lsb).round() as i32;
        let err = (in_lsb as f64 * lsb - x).abs();
        flag_precision_loss(&mut issues, "bias", i, err, tolerance);
        bias_error_max = bias_error_max.max(err);
        bias_field.push(in_lsb);
    }

    // Colour the free variables: 2 colours when bipartite, else greedy.
    let free: Vec<usize> = (0..n).filter(|&v| problem.clamp[v].is_none()).collect();
    let colour = colour_free(n, &adjacency, &problem.clamp);
    let n_colours = free.iter().map(|&v| colour[v] + 1).max().unwrap_or(0);
    if n_colours > chip.max_colours {
        issues.push(CompileIssue::TooManyColours {
            needed: n_colours,
            max: chip.max_colours,
        });
    }
    if !issues.is_empty() {
        return Err(issues);
    }

    let mut order: Vec<u32> = free.iter().map(|&v| v as u32).collect();
    order.sort_by_key(|&v| (colour[v as usize], v));
    let mut colours = Vec::with_capacity(n_colours);
    let mut start = 0;
    for c in 0..n_colours {
        let len = order[start..]
            .iter()
            .take_while(|&&v| colour[v as usize] == c)
            .count();
        colours.push((start, start + len));
        start += len;
    }
    let n_free = order.len();
    order.extend((0..n as u32).filter(|&v| problem.clamp[v as usize].is_some()));
    let mut slot_of = vec![0u32; n];
    for (slot, &v) in order.iter().enumerate() {
        slot_of[v as usize] = slot as u32;
    }
    let mut edge_code: std::collections::HashMap<(usize, usize), i32> =
        std::collections::HashMap::with_capacity(problem.edges.len() * 2);
    for (k, &[a, b]) in problem.edges.iter().enumerate() {
        *edge_code.entry((a, b)).or_default() += weight_code[k];
        *edge_code.entry((b, a)).or_default() += weight_code[k];
    }
    let rows: Vec<Vec<usize>> = order[..n_free]
        .iter()
        .map(|&v| {
            let mut nbrs: Vec<usize> = adjacency[v as usize].iter().map(|&(j, _)| j).collect();
            nbrs.sort_unstable();
            nbrs.dedup();
            nbrs
        })
        .collect();
    // Grids are uniform except at their edges: pad short rows with zero
    // couplings (to the cell itself) so every row takes the unrolled path.
    let entries: usize = rows.iter().map(Vec::len).sum();
    let widest = rows.iter().map(Vec::len).max().unwrap_or(0);
    let pad_to = [4, 8, 16]
        .into_iter()
        .find(|&d| d >= widest && d * rows.len() <= entries + entries / 4);
    let mut row_ptr = vec![0u32];
    let mut col = Vec::new();
    let mut weight_q = Vec::new();
    for (slot, (&v, nbrs)) in order[..n_free].iter().zip(&rows).enumerate() {
        for &j in nbrs {
            col.push(slot_of[j]);
            let code = edge_code[&(v as usize, j)];
            weight_q.push(code.clamp(i16::MIN as i32, i16::MAX as i32) as i16);
        }
        if let Some(d) = pad_to {
            for _ in nbrs.len()..d {
                col.push(slot as u32);
                weight_q.push(0);
            }
        }
        row_ptr.push(col.len() as u32);
    }
    let bias_q = order[..n_free]
        .iter()
        .map(|&v| bias_field[v as usize])
        .collect();
    let clamp = order
        .iter()
        .map(|&v| problem.clamp[v as usize].unwrap_or(1))
        .collect();
    let copies = if chip.on_chip_chains && n > 0 {
        (chip.cells / n).clamp(1, s.chains.max(1) as usize)
    } else {
        1
    };
    let batches = (s.chains as usize).div_ceil(copies);
    let degree_sum: u64 = adjacency.iter().map(|a| a.len() as u64).sum();
    let writes = (degree_sum + n as u64) * copies as u64;
    let weight_error_mean = if weight_errors.is_empty() {
        0.0
    } else {
        weight_errors.iter().sum::<f64>() / weight_errors.len() as f64
    };
    Ok(TsuImage {
        chip: chip.name.clone(),
        n,
        copies,
        batches,
        order,
        colours,
        row_ptr,
        col,
        weight_q,
        bias_q,
        clamp,
        n_free,
        lsb,
        field_max: (chip.field_range / lsb).round().min(i32::MAX as f64 / 2.0) as i32,
        schedule: s,
        writes,
        weight_error_max: weight_errors.iter().copied().fold(0.0, f64::max),
        weight_error_mean,
        weight_errors,
        bias_error_max,
    })
}

/// Colour of each free variable (clamped ones are not updated).
fn colour_free(n: usize, adjacency: &[Vec<(usize, f64)>], clamp: &[Option<i8>]) -> Vec<usize> {
    let free = |v: usize| clamp[v].is_none();
    // Try a BFS 2-colouring first: grids and lattices are bipartite.
    let mut colour = vec![usize::MAX; n];
    let mut bipartite = true;
    'outer: for start in 0..n {
        if !free(start) || colour[start] != usize::MAX {
            continue;
        }
        colour[start] = 0;
        let mut queue = std::collections::VecDeque::from([start]);
        while let Some(v) = queue.pop_front() {
            for &(j, _) in &adjacency[v] {
                if !free(j) {
                    continue;
                }
                if colour[j] == usize::MAX {
                    colour[j] = 1 - colour[v];
                    queue.push_back(j);
                } else if colour[j] == colour[v] {
                    bipartite = false;
                    break 'outer;
                }
            }
        }
    }
    if bipartite {
        return colour;
    }
    let mut colour = vec![usize::MAX; n];
    let mut used = Vec::new();
    for v in (0..n).filter(|&v| free(v)) {
        used.clear();
        for &(j, _) in &adjacency[v] {
            if colour[j] != usize::MAX {
                if used.len() <= colour[j] {
                    used.resize(colour[j] + 1, false);
                }
                used[colour[j]] = true;
            }
        }
        colour[v] = used.iter().position(|&u| !u).unwrap_or(used.len());
    }
    colour
}

impl TsuImage {
    /// `sha256:` of the image's executable content (provenance).
    pub fn hash(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.chip.as_bytes());
        for part in [&self.order, &self.row_ptr, &self.col] {
            for x in part.iter() {
                h.update(x.to_le_bytes());
            }
        }
        for x in &self.weight_q {
            h.update(x.to_le_bytes());
        }
        for x in &self.bias_q {
            h.update(x.to_le_bytes());
        }
        for &(a, b) in &self.colours {
            h.update((a as u64).to_le_bytes());
            h.update((b as u64).to_le_bytes());
        }
        h.update(self.clamp.iter().map(|&c| c as u8).collect::<Vec<_>>());
        h.update(self.lsb.to_le_bytes());
        h.update(self.field_max.to_le_bytes());
        for x in [
            self.schedule.warmup,
            self.schedule.samples,
            self.schedule.steps_per_sample,
            self.schedule.chains,
            self.copies as u64,
        ] {
            h.update(x.to_le_bytes());
        }
        format!("sha256:{}", hex::encode(h.finalize()))
    }

    /// Degree shared by every free slot, if any (enables the unrolled path).
    pub fn uniform_degree(&self) -> Option<usize> {
        let d = self.row_ptr.get(1).copied()? as usize;
        self.row_ptr
            .windows(2)
            .all(|w| (w[1] - w[0]) as usize == d)
            .then_some(d)
    }
}
