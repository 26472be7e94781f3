//! What each node of a graph is, before anything runs: statically inferred
//! shapes, work, and the program class the learning tables key on.

use crate::model::graph::{Graph, Node, NodeKind, Payload, TensorOp};
use crate::policy::{NodeSummary, ProgramSummary};

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
