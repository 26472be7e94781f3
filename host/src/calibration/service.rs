//! Service-time models measured on this machine: each backend runs the same
//! node shapes at several sizes, exactly as execute mode runs them (through
//! the `Backend` trait, wall time), and a line `overhead + cost × units` is
//! fitted per (target, node family) by least squares.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::backends::value::{NodeCall, NodeInputs, Value};
use crate::backends::{Backend, CpuBackend, gpu::GpuBackend};
use crate::device::{Device, Target};
use crate::hardware::{Hardware, ServiceFit};
use crate::model::Graph;
use crate::model::eprogram::Schedule;
use crate::workloads::pm_j_lattice;

/// Which machine and build a calibration measured; a file from another is
/// refused, since its figures describe other hardware.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineKey {
    /// The CPU's model name.
    pub cpu: String,
    /// Cores available to thermoroute.
    pub cores: usize,
    /// The thermoroute version that measured.
    pub version: String,
    /// The GPU adapter its GPU figures were measured on (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<String>,
}

impl MachineKey {
    /// This machine, this build.
    pub fn here() -> MachineKey {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, name)| name.trim().to_string())
            })
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        MachineKey {
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            version: env!("CARGO_PKG_VERSION").to_string(),
            gpu: None,
        }
    }

    /// [`MachineKey::here`] with the GPU adapter `selector` picks (opening
    /// it: only when GPU figures are at stake).
    pub fn here_with_gpu(selector: &str) -> MachineKey {
        MachineKey {
            gpu: GpuBackend::shared(selector, 0.0)
                .adapter()
                .map(|a| a.name.clone()),
            ..MachineKey::here()
        }
    }

    /// What differs between `self` (the file's) and `other` (this machine).
    pub fn mismatch(&self, other: &MachineKey) -> Option<String> {
        let mut diffs = Vec::new();
        if self.cpu != other.cpu {
            diffs.push(format!(
                "CPU {:?} (this machine: {:?})",
                self.cpu, other.cpu
            ));
        }
        if self.cores != other.cores {
            diffs.push(format!(
                "{} cores (this machine: {})",
                self.cores, other.cores
            ));
        }
        if self.gpu.is_some() && self.gpu != other.gpu {
            diffs.push(format!(
                "GPU {:?} (this machine: {})",
                self.gpu.as_deref().unwrap_or_default(),
                other
                    .gpu
                    .as_deref()
                    .map_or("no adapter".into(), |g| format!("{g:?}"))
            ));
        }
        if self.version != other.version {
            diffs.push(format!(
                "thermoroute {} (this build: {})",
                self.version, other.version
            ));
        }
        (!diffs.is_empty()).then(|| diffs.join(", "))
    }
}

/// One measurement: units of work and milliseconds it took.
type Point = (f64, f64);

/// Fits `ms = overhead + slope × units` by least squares (both kept >= 0).
pub fn fit_line(target: Target, family: &str, points: &[Point]) -> ServiceFit {
    let n = points.len() as f64;
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x / n, b + y / n));
    let sxx: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let slope = if sxx > 0.0 { (sxy / sxx).max(0.0) } else { 0.0 };
    let overhead = (my - slope * mx).max(0.0);
    let residual = (points
        .iter()
        .map(|(x, y)| (y - overhead - slope * x).powi(2))
        .sum::<f64>()
        / n.max(1.0))
    .sqrt();
    ServiceFit {
        target: target.name().into(),
        family: family.into(),
        overhead_ms: overhead,
        ms_per_unit: slope,
        residual_cv: if my > 0.0 { residual / my } else { 0.0 },
        points: points.len(),
    }
}

/// Lattice sides and matrix sizes each backend runs, and repeats of each.
const SIDES: [usize; 3] = [8, 16, 32];
const MATMUL: [usize; 3] = [32, 64, 128];
const REPEATS: usize = 5;

/// Measures every backend `hw` has a device for; `progress` is told each
/// (target, size) step.
pub fn measure(hw: &Hardware, mut progress: impl FnMut(&str)) -> Vec<ServiceFit> {
    let mut fits = Vec::new();
    let mut cpu = CpuBackend::default();
    let mut gpu = (hw.slots(Device::Gpu) > 0)
        .then(|| GpuBackend::shared(&hw.gpu.adapter, hw.gpu.active_w))
        .filter(GpuBackend::is_available);
    let mut backends: Vec<(Target, Target, &mut dyn Backend)> =
        vec![(Target::CpuRef, Target::Cpu, &mut cpu)];
    if let Some(g) = gpu.as_mut() {
        backends.push((Target::GpuSim, Target::Gpu, g));
    }
    for (sampling, deterministic, backend) in backends {
        let mut points = Vec::new();
        for side in SIDES {
            progress(&format!("{sampling}, {side}x{side} lattice"));
            let schedule = Schedule {
                warmup: 10,
                samples: 100,
                steps_per_sample: 1,
                chains: 2,
            };
            let program = pm_j_lattice(side, 0.4, 0.1, side as u64, schedule);
            let updates = (side * side) as f64 * 110.0 * 2.0;
            // The fastest of the repeats: a load spike is not the backend.
            let mut best = f64::INFINITY;
            for r in 0..REPEATS {
                let started = Instant::now();
                let ok = match backend.start_sampling(&program, r as u64) {
                    Ok(Ok(mut task)) => task.advance(u64::MAX).is_ok(),
                    _ => false,
                };
                if ok {
                    best = best.min(started.elapsed().as_secs_f64() * 1e3);
                }
            }
            if best.is_finite() {
                points.push((updates, best));
            }
        }
        if points.len() >= 2 {
            fits.push(fit_line(sampling, "sample", &points));
        }
        let mut points = Vec::new();
        for n in MATMUL {
            progress(&format!("{deterministic}, {n}x{n} matmul"));
            let graph = matmul_graph(n);
            let index = graph.index();
            let mut values: HashMap<usize, Value> = HashMap::new();
            for i in 0..2 {
                if let Ok(Ok((value, _))) = cpu_const(&graph, i, &values, &index) {
                    values.insert(i, value);
                }
            }
            let flops = 2.0 * (n * n * n) as f64;
            let mut best = f64::INFINITY;
            for _ in 0..REPEATS {
                let started = Instant::now();
                let call = NodeCall {
                    graph: &graph,
                    node: 2,
                    inputs: NodeInputs {
                        values: &values,
                        index: &index,
                    },
                };
                if matches!(backend.run_node(call), Ok(Ok(_))) {
                    best = best.min(started.elapsed().as_secs_f64() * 1e3);
                }
            }
            if best.is_finite() {
                points.push((flops, best));
            }
        }
        if points.len() >= 2 {
            fits.push(fit_line(deterministic, "tensor", &points));
        }
    }
    fits
}

/// Constant inputs are built on the CPU for every backend, as the engine
/// would route them.
fn cpu_const(
    graph: &Graph,
    i: usize,
    values: &HashMap<usize, Value>,
    index: &HashMap<&str, usize>,
) -> Result<crate::backends::value::NodeResult, crate::backends::BackendError> {
    CpuBackend::default().run_node(NodeCall {
        graph,
        node: i,
        inputs: NodeInputs { values, index },
    })
}

/// `a · b` for two seeded `n × n` matrices.
fn matmul_graph(n: usize) -> Graph {
    let constant = |id: &str, seed: u64| {
        serde_json::json!({
            "id": id, "kind": "tensor",
            "tensor": { "op": "const", "value": { "shape": [n, n],
                "generator": { "seed": seed, "dist": "normal" } } }
        })
    };
    let doc = serde_json::json!({
        "nodes": [
            constant("a", 1),
            constant("b", 2),
            { "id": "m", "kind": "tensor", "inputs": ["a", "b"], "tensor": { "op": "matmul" } }
        ],
        "qos": {}
    });
    Graph::from_json(Path::new("calibration-matmul.json"), &doc.to_string())
        .expect("the calibration graph is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_through_exact_points_is_recovered() {
        let f = fit_line(
            Target::Cpu,
            "tensor",
            &[(0.0, 2.0), (10.0, 7.0), (20.0, 12.0)],
        );
        assert!((f.overhead_ms - 2.0).abs() < 1e-12);
        assert!((f.ms_per_unit - 0.5).abs() < 1e-12);
        assert!(f.residual_cv < 1e-12);
        assert_eq!(f.points, 3);
        // Noise shows as spread; a negative slope is clamped to none.
        let g = fit_line(
            Target::Cpu,
            "tensor",
            &[(0.0, 5.0), (10.0, 3.0), (20.0, 4.0)],
        );
        assert_eq!(g.ms_per_unit, 0.0);
        assert!(g.residual_cv > 0.0);
    }

    #[test]
    fn machine_keys_name_what_differs() {
        let here = MachineKey::here();
        assert_eq!(here.mismatch(&here), None);
        let other = MachineKey {
            cores: here.cores + 2,
            ..here.clone()
        };
        let why = other.mismatch(&here).expect("differs");
        assert!(why.contains("cores"), "{why}");
        // A GPU adapter keys the file only when it was measured on one.
        let measured_on_a = MachineKey {
            gpu: Some("A".into()),
            ..here.clone()
        };
        let with_b = MachineKey {
            gpu: Some("B".into()),
            ..here.clone()
        };
        let why = measured_on_a.mismatch(&with_b).expect("differs");
        assert!(why.contains("GPU \"A\" (this machine: \"B\")"), "{why}");
        let why = measured_on_a.mismatch(&here).expect("differs");
        assert!(why.contains("no adapter"), "{why}");
        assert_eq!(here.mismatch(&with_b), None);
    }
}
