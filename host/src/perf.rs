//! Performance knowledge: what a node costs on each target before anything
//! has run (the prior, from the hardware description), and what was observed
//! since (the learning loop: robust mean and p95 per (target, program class),
//! Page–Hinkley drift detection, persistence between runs).

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::hardware::{Device, Hardware, ServiceDistribution};
use crate::model::graph::{Graph, Node, NodeKind, Payload, TensorOp};
use crate::policy::{NodeSummary, ProgramSummary, Target};

/// Summaries of every node of a graph (shapes inferred statically, work
/// scaled by the QoS batch size).
pub fn summarise(graph: &Graph) -> Vec<NodeSummary> {
    let index = graph.index();
    let mut shapes: Vec<Option<Vec<usize>>> = vec![None; graph.nodes.len()];
    let mut out: Vec<Option<NodeSummary>> = vec![None; graph.nodes.len()];
    let batch = graph.qos.batch_size.max(1) as f64;
    for i in graph.topological_order() {
        let node = &graph.nodes[i];
        let input_shapes: Vec<Option<&Vec<usize>>> = node
            .inputs
            .iter()
            .map(|id| index.get(id.as_str()).and_then(|&j| shapes[j].as_ref()))
            .collect();
        let (shape, flops) = shape_and_flops(node, &input_shapes);
        let elements =
            |s: Option<&Vec<usize>>| s.map_or(1.0, |s| s.iter().product::<usize>() as f64);
        let bytes = 8.0
            * batch
            * (input_shapes.iter().map(|s| elements(*s)).sum::<f64>() + elements(shape.as_ref()));
        let program = node.sample().map(|spec| {
            let p = &spec.program;
            let clamped = p.clamped_states();
            let free = clamped.iter().filter(|c| c.is_none()).count();
            let s = p.schedule;
            let sweeps = s.warmup + s.samples * s.steps_per_sample;
            ProgramSummary {
                n_vars: p.n_vars(),
                n_spins: p.n_spins(),
                n_categorical: p.categorical.len(),
                n_factors: p.factors.len(),
                n_constraints: p.constraints.len(),
                n_edges: p.ising.as_ref().map_or(0, |i| i.edges.len()),
                n_clamped: p.n_vars() - free,
                runtime_conditioning: !spec.bias_from.is_empty(),
                chains: s.chains,
                samples: s.samples,
                sweeps_per_chain: sweeps,
                updates: (free as f64) * (sweeps as f64) * (s.chains as f64),
            }
        });
        let flops = flops * batch;
        let class = match node.kind() {
            NodeKind::Control => "control".to_string(),
            NodeKind::Effect => "effect".to_string(),
            NodeKind::Tensor => {
                let op = node.tensor().map_or(TensorOp::Const, |t| t.op);
                let op = serde_json::to_value(op)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from));
                format!("tensor:{}:2^{}", op.unwrap_or_default(), log2_bucket(flops))
            }
            NodeKind::Nn => format!("nn:2^{}", log2_bucket(flops)),
            NodeKind::Sample => {
                let p = program.as_ref().expect("sample nodes have a program");
                let family = if node.sample().is_some_and(|s| s.program.is_pure_ising()) {
                    "ising"
                } else {
                    "general"
                };
                format!("sample:{family}:2^{}", log2_bucket(p.updates))
            }
        };
        shapes[i] = shape;
        out[i] = Some(NodeSummary {
            kind: node.kind(),
            class,
            flops,
            bytes,
            program,
        });
    }
    out.into_iter()
        .map(|s| s.expect("topological order visits every node"))
        .collect()
}

fn log2_bucket(x: f64) -> i32 {
    if x <= 1.0 { 0 } else { x.log2().round() as i32 }
}

/// Output shape (when it can be known before running) and work of one node.
fn shape_and_flops(node: &Node, inputs: &[Option<&Vec<usize>>]) -> (Option<Vec<usize>>, f64) {
    let count = |s: &Vec<usize>| s.iter().product::<usize>() as f64;
    match &node.payload {
        Payload::Tensor(spec) => match spec.op {
            TensorOp::Const => {
                let shape = spec.value.as_ref().map(|v| v.shape.clone());
                let n = shape.as_ref().map_or(1.0, count);
                (shape, n)
            }
            TensorOp::Matmul => match (
                inputs.first().copied().flatten(),
                inputs.get(1).copied().flatten(),
            ) {
                (Some(a), Some(b)) if a.len() == 2 && !b.is_empty() => {
                    let (m, k) = (a[0], a[1]);
                    let n = if b.len() == 2 { b[1] } else { 1 };
                    let shape = if b.len() == 2 { vec![m, n] } else { vec![m] };
                    (Some(shape), 2.0 * (m * k * n) as f64)
                }
                _ => (None, 1.0),
            },
            TensorOp::Add | TensorOp::Mul => {
                let widest = inputs
                    .iter()
                    .flatten()
                    .max_by_key(|s| s.iter().product::<usize>())
                    .map(|s| (*s).clone());
                let n = widest.as_ref().map_or(1.0, count);
                (widest, n)
            }
            TensorOp::Relu | TensorOp::Tanh | TensorOp::Sigmoid => {
                let shape = inputs.first().copied().flatten().cloned();
                let n = shape.as_ref().map_or(1.0, count);
                (shape, n)
            }
            TensorOp::Sum | TensorOp::Mean | TensorOp::Max => {
                let input = inputs.first().copied().flatten();
                let n = input.map_or(1.0, count);
                let shape = match (input, spec.axis) {
                    (Some(s), Some(axis)) if axis < s.len() => {
                        let mut s = s.clone();
                        s.remove(axis);
                        Some(s)
                    }
                    _ => Some(vec![]),
                };
                (shape, n)
            }
        },
        Payload::Nn(spec) => {
            let flops: f64 = spec
                .layers
                .iter()
                .map(|l| 2.0 * count(&l.weights.shape))
                .sum();
            let out = spec
                .layers
                .last()
                .and_then(|l| l.weights.shape.first().copied());
            (out.map(|n| vec![n]), flops)
        }
        Payload::Control(_) => (Some(vec![]), 1.0),
        Payload::Effect(_) | Payload::Sample(_) => (None, 0.0),
    }
}

/// Service figures of one node on one target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub mean_ms: f64,
    pub p95_ms: f64,
    pub energy_j: f64,
    /// Expected largest marginal error (0 for exact deterministic work).
    pub error: f64,
}

/// Ratio p95 / mean of the service-time distribution simulate mode draws from.
pub fn p95_ratio(hw: &Hardware) -> f64 {
    match hw.simulate.service {
        ServiceDistribution::Deterministic => 1.0,
        ServiceDistribution::Exponential => 20f64.ln(),
        ServiceDistribution::Lognormal => {
            let s2 = (1.0 + hw.simulate.cv * hw.simulate.cv).ln();
            (-0.5 * s2 + 1.644_853_6 * s2.sqrt()).exp()
        }
    }
}

/// The built-in cost model: what a node should cost on a target according to
/// the hardware description (roofline-style work / throughput + overheads),
/// unless a `[[perf]]` prior in the description says otherwise.
pub fn prior(hw: &Hardware, node: &NodeSummary, target: Target) -> Service {
    let ratio = p95_ratio(hw);
    let seconds = match target {
        Target::Cpu => hw.cpu.overhead_us * 1e-6 + node.flops / (hw.cpu.gflops_per_core * 1e9),
        Target::Gpu => {
            hw.gpu.launch_us * 1e-6
                + node.bytes / (hw.gpu.transfer_gb_per_s * 1e9)
                + node.flops / (hw.gpu.gflops * 1e9)
        }
        Target::CpuRef => {
            let updates = node.program.as_ref().map_or(0.0, |p| p.updates);
            hw.cpu.overhead_us * 1e-6 + updates / hw.cpu.spin_updates_per_s
        }
        Target::GpuSim => {
            let updates = node.program.as_ref().map_or(0.0, |p| p.updates);
            hw.gpu.launch_us * 1e-6 + updates / hw.gpu.spin_updates_per_s
        }
        Target::Tsu => {
            let updates = node.program.as_ref().map_or(0.0, |p| p.updates);
            hw.tsu.setup_us * 1e-6 + updates / (hw.tsu.spin_updates_per_s * hw.tsu.shared_fraction)
        }
    };
    let energy = match target {
        Target::Cpu | Target::CpuRef => seconds * hw.cpu.active_w_per_core,
        Target::Gpu | Target::GpuSim => seconds * hw.gpu.active_w,
        Target::Tsu => {
            let updates = node.program.as_ref().map_or(0.0, |p| p.updates);
            hw.tsu.setup_us * 1e-6 * hw.tsu.setup_w + updates * hw.tsu.energy_pj_per_update * 1e-12
        }
    };
    let error = match (&node.program, target) {
        (Some(p), _) => {
            // Monte Carlo error of a marginal, assuming half the draws are
            // effectively independent, plus the target's calibrated bias.
            let ess = (p.chains * p.samples) as f64 * 0.5;
            let mc = if ess > 0.0 { 0.5 / ess.sqrt() } else { 1.0 };
            mc + match target {
                Target::Tsu => hw.tsu.sampling_bias,
                Target::GpuSim => hw.gpu.sampling_bias,
                _ => 0.0,
            }
        }
        (None, Target::Gpu) if matches!(node.kind, NodeKind::Tensor | NodeKind::Nn) => {
            hw.gpu.deterministic_error
        }
        (None, _) => 0.0,
    };
    let mut service = Service {
        mean_ms: seconds * 1e3,
        p95_ms: seconds * 1e3 * ratio,
        energy_j: energy,
        error,
    };
    if let Some(p) = hw
        .perf
        .iter()
        .rev()
        .find(|p| p.target == target.name() && node.class.starts_with(&p.class))
    {
        service.mean_ms = p.mean_ms;
        service.p95_ms = p.mean_ms * ratio;
        if let Some(e) = p.energy_j {
            service.energy_j = e;
        }
    }
    service
}

/// Energy a device draws for `ms` of work, for work whose energy is not modelled otherwise.
pub fn busy_energy(hw: &Hardware, device: Device, ms: f64) -> f64 {
    match device {
        Device::Cpu => ms * 1e-3 * hw.cpu.active_w_per_core,
        Device::Gpu => ms * 1e-3 * hw.gpu.active_w,
        Device::Tsu => ms * 1e-3 * hw.tsu.setup_w,
    }
}

/// Observations before the mean becomes an exponentially weighted average.
const MEAN_WINDOW: f64 = 20.0;
/// Weight of the prior, in observations.
const PRIOR_WEIGHT: f64 = 3.0;

/// What was learned about one (target, class) pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Learned {
    pub target: Target,
    pub class: String,
    /// Observations since the last drift reset.
    pub n: u64,
    /// All observations ever.
    pub total: u64,
    pub mean_ms: f64,
    pub p95_ms: f64,
    pub energy_j: f64,
    pub drift_events: u64,
    /// Page–Hinkley state (reference level and cumulative sums).
    #[serde(default)]
    detector: PageHinkley,
}

/// Two-sided Page–Hinkley test on relative residuals against a reference
/// level frozen when the detector arms.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct PageHinkley {
    /// Sum of the observations made while arming (the reference is their mean).
    arming_sum: f64,
    /// Fast moving average of recent residuals: the new level after an alarm.
    recent_residual: f64,
    reference_ms: f64,
    up: f64,
    up_min: f64,
    down: f64,
    down_min: f64,
}

/// A detected change in a (target, class) pair's service time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drift {
    pub target: Target,
    pub class: String,
    /// `up` (slower) or `down` (faster).
    pub direction: String,
    pub reference_ms: f64,
    pub observed_ms: f64,
    /// Observations in the regime that drifted.
    pub observations: u64,
    pub statistic: f64,
}

impl Learned {
    fn new(target: Target, class: String, prior: Service) -> Self {
        Learned {
            target,
            class,
            n: 0,
            total: 0,
            mean_ms: prior.mean_ms,
            p95_ms: prior.p95_ms,
            energy_j: prior.energy_j,
            drift_events: 0,
            detector: PageHinkley::default(),
        }
    }

    /// Adds one observation; returns a drift alarm when the detector fires.
    pub fn observe(
        &mut self,
        ms: f64,
        energy_j: f64,
        cfg: &crate::hardware::DriftSpec,
    ) -> Option<Drift> {
        if !(ms.is_finite() && ms >= 0.0) {
            return None;
        }
        self.n += 1;
        self.total += 1;
        let weight = 1.0 / (self.n as f64 + PRIOR_WEIGHT).min(MEAN_WINDOW);
        // Winsorise so single slow runs move the mean only a little; a
        // sustained change is the drift detector's job (it resets the level).
        let clipped = if self.n > MEAN_WINDOW as u64 {
            ms.min(4.0 * self.mean_ms)
        } else {
            ms
        };
        self.mean_ms += weight * (clipped - self.mean_ms);
        self.energy_j += weight * (energy_j - self.energy_j);
        // Stochastic p95 tracking: moves up by 0.95 steps when exceeded, down
        // by 0.05 otherwise, so it rests where 5% of observations exceed it.
        let step = 0.2 * self.mean_ms.max(1e-9);
        self.p95_ms += if ms > self.p95_ms {
            0.95 * step
        } else {
            -0.05 * step
        };
        self.p95_ms = self.p95_ms.max(self.mean_ms);

        if self.n <= cfg.min_observations {
            self.detector.arming_sum += ms;
            if self.n == cfg.min_observations {
                let reference = self.detector.arming_sum / self.n as f64;
                self.detector = PageHinkley {
                    reference_ms: reference.max(1e-12),
                    ..Default::default()
                };
            }
            return None;
        }
        let d = &mut self.detector;
        let residual = ms / d.reference_ms - 1.0;
        d.recent_residual += 0.3 * (residual - d.recent_residual);
        d.up += residual - cfg.delta;
        d.up_min = d.up_min.min(d.up);
        d.down += -residual - cfg.delta;
        d.down_min = d.down_min.min(d.down);
        let (up_stat, down_stat) = (d.up - d.up_min, d.down - d.down_min);
        let direction = if up_stat > cfg.threshold {
            "up"
        } else if down_stat > cfg.threshold {
            "down"
        } else {
            return None;
        };
        let drift = Drift {
            target: self.target,
            class: self.class.clone(),
            direction: direction.into(),
            reference_ms: d.reference_ms,
            observed_ms: ms,
            observations: self.n,
            statistic: up_stat.max(down_stat),
        };
        // Jump to the level the recent residuals point at (not to one
        // observation), keep the p95/mean shape, and re-arm on the new regime.
        let level = (d.reference_ms * (1.0 + d.recent_residual)).max(1e-12);
        let shape = (self.p95_ms / self.mean_ms.max(1e-12)).max(1.0);
        self.n = 1;
        self.mean_ms = level;
        self.p95_ms = level * shape;
        self.drift_events += 1;
        self.detector = PageHinkley {
            arming_sum: level,
            ..Default::default()
        };
        Some(drift)
    }
}

/// The routing tables: learned figures per (target, class), indexed densely
/// so the engine's hot path does no hashing.
#[derive(Debug, Clone, Default)]
pub struct PerfTables {
    entries: Vec<Learned>,
    index: HashMap<(Target, String), usize>,
}

/// On-disk form of [`PerfTables`] (`--state FILE`).
#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    format: String,
    version: u32,
    tables: Vec<Learned>,
}

const STATE_FORMAT: &str = "thermoroute-state";
const STATE_VERSION: u32 = 1;

/// Errors reading or writing the routing-table state file. Fatal for the run
/// that asked for it; the file itself is never left half-written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: not a thermoroute state file: {reason}")]
    Parse {
        file: std::path::PathBuf,
        reason: String,
    },
    #[error("{file}: cannot write: {source}")]
    Write {
        file: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl PerfTables {
    /// The slot of a (target, class) pair, created from `prior` if new.
    pub fn slot(&mut self, target: Target, class: &str, prior: Service) -> usize {
        if let Some(&i) = self.index.get(&(target, class.to_string())) {
            return i;
        }
        self.entries
            .push(Learned::new(target, class.to_string(), prior));
        let i = self.entries.len() - 1;
        self.index.insert((target, class.to_string()), i);
        i
    }

    pub fn get(&self, slot: usize) -> &Learned {
        &self.entries[slot]
    }

    pub fn get_mut(&mut self, slot: usize) -> &mut Learned {
        &mut self.entries[slot]
    }

    pub fn entries(&self) -> &[Learned] {
        &self.entries
    }

    /// Loads tables saved by an earlier run; a missing file is an empty table.
    pub fn load(file: &Path) -> Result<Self, StateError> {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(StateError::Read {
                    file: file.into(),
                    source,
                });
            }
        };
        let state: StateFile = serde_json::from_str(&text).map_err(|e| StateError::Parse {
            file: file.into(),
            reason: e.to_string(),
        })?;
        if state.format != STATE_FORMAT || state.version != STATE_VERSION {
            return Err(StateError::Parse {
                file: file.into(),
                reason: format!(
                    "format {:?} version {} (expected {STATE_FORMAT:?} version {STATE_VERSION})",
                    state.format, state.version
                ),
            });
        }
        let mut tables = Self::default();
        for entry in state.tables {
            if !(entry.mean_ms.is_finite()
                && entry.p95_ms.is_finite()
                && entry.energy_j.is_finite())
            {
                return Err(StateError::Parse {
                    file: file.into(),
                    reason: format!("non-finite figures for {} {}", entry.target, entry.class),
                });
            }
            tables
                .index
                .insert((entry.target, entry.class.clone()), tables.entries.len());
            tables.entries.push(entry);
        }
        Ok(tables)
    }

    /// Writes the tables atomically (temporary file, then rename).
    pub fn save(&self, file: &Path) -> Result<(), StateError> {
        let state = StateFile {
            format: STATE_FORMAT.into(),
            version: STATE_VERSION,
            tables: self.entries.clone(),
        };
        let text = serde_json::to_string_pretty(&state).expect("tables serialise");
        write_atomically(file, text.as_bytes()).map_err(|source| StateError::Write {
            file: file.into(),
            source,
        })
    }
}

/// Writes `bytes` to a sibling temporary file and renames it over `file`, so
/// readers see the old or the new content, never a torn one.
pub fn write_atomically(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(file).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::DriftSpec;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Exp};

    fn learned(mean: f64) -> Learned {
        Learned::new(
            Target::Cpu,
            "control".into(),
            Service {
                mean_ms: mean,
                p95_ms: mean * 3.0,
                energy_j: 0.0,
                error: 0.0,
            },
        )
    }

    #[test]
    fn learns_mean_and_p95_of_exponential_service() {
        let mut l = learned(5.0);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let exp = Exp::new(1.0).unwrap();
        let cfg = DriftSpec::default();
        for _ in 0..20_000 {
            assert!(l.observe(exp.sample(&mut rng), 0.0, &cfg).is_none());
        }
        // EWMA over ~20 observations of Exp(1): sd of the mean ~ 1/sqrt(39) ~ 0.16.
        assert!((l.mean_ms - 1.0).abs() < 0.6, "mean {}", l.mean_ms);
        assert!((l.p95_ms - 3.0).abs() < 1.0, "p95 {}", l.p95_ms);
    }

    #[test]
    fn drift_is_detected_within_bounded_observations() {
        let cfg = DriftSpec::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let exp = Exp::new(1.0).unwrap();
        let mut l = learned(1.0);
        for _ in 0..5_000 {
            assert!(
                l.observe(exp.sample(&mut rng), 0.0, &cfg).is_none(),
                "false alarm"
            );
        }
        let mut detected_after = None;
        for k in 1..=200 {
            if let Some(d) = l.observe(3.0 * exp.sample(&mut rng), 0.0, &cfg) {
                assert_eq!(d.direction, "up");
                detected_after = Some(k);
                break;
            }
        }
        let k = detected_after.expect("a 3x slowdown is detected");
        assert!(k <= 60, "detected after {k} observations");
        assert!(l.mean_ms > 1.5, "the table re-learns the slower level");
    }

    #[test]
    fn state_round_trips_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        let mut t = PerfTables::default();
        let slot = t.slot(
            Target::Tsu,
            "sample:ising:2^10",
            Service {
                mean_ms: 2.0,
                p95_ms: 6.0,
                energy_j: 0.1,
                error: 0.0,
            },
        );
        t.get_mut(slot).observe(4.0, 0.2, &DriftSpec::default());
        t.save(&file).unwrap();
        let back = PerfTables::load(&file).unwrap();
        assert_eq!(back.entries(), t.entries());
        std::fs::write(&file, "{\"format\": \"nope\"}").unwrap();
        assert!(matches!(
            PerfTables::load(&file),
            Err(StateError::Parse { .. })
        ));
        assert!(
            PerfTables::load(&dir.path().join("absent.json"))
                .unwrap()
                .entries()
                .is_empty()
        );
    }
}
