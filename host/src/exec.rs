//! Executes a workload graph once, every node on the CPU, in dependency order.
//!
//! Outputs flow along edges: a tensor or MLP output can shift the biases of a
//! downstream sample node (`bias_from`), a control node reads a tensor value
//! or a sample node's marginal, a branch skips the side it does not take, and
//! an effect node records what it would do with the evidence it was given.
//! Routing across backends is the scheduler's job; this is the reference
//! execution it builds on.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;
use serde_json::json;

use crate::backends::cpu::kernels::{self, KernelError};
use crate::backends::value::{NodeInputs, NodeResult, Value, kernel_failure, tensor_output};
use crate::model::graph::{ControlOp, Graph, NodeKind, Payload, SampleSpec, SourceField};
use crate::sample_report::SampleReport;
use crate::sampler::{self, SampleError, SampleOptions};

pub use crate::trace::{JobStatus, NodeStatus};

/// What happened to one node.
#[derive(Debug, Clone, Serialize)]
pub struct NodeOutcome {
    pub id: String,
    pub kind: NodeKind,
    pub backend: &'static str,
    pub status: NodeStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
    pub seconds: f64,
    /// A summary of the node's output.
    pub output: serde_json::Value,
}

/// What happened to one job (one execution of the graph).
#[derive(Debug, Clone, Serialize)]
pub struct JobOutcome {
    pub status: JobStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<String>,
    pub nodes: Vec<NodeOutcome>,
}

/// Options for [`execute`].
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecOptions {
    /// Added to every sample node's own seed.
    pub seed: u64,
    pub threads: Option<usize>,
}

/// Runs a validated graph once on the CPU.
pub fn execute(graph: &Graph, options: ExecOptions) -> JobOutcome {
    let index = graph.index();
    let mut values: HashMap<usize, Value> = HashMap::new();
    let mut status: Vec<Option<NodeStatus>> = vec![None; graph.nodes.len()];
    let mut skipped_by_branch = vec![false; graph.nodes.len()];
    let mut outcomes: Vec<Option<NodeOutcome>> = vec![None; graph.nodes.len()];
    let mut job = (JobStatus::Completed, None::<String>);

    for i in graph.topological_order() {
        let node = &graph.nodes[i];
        let start = Instant::now();
        let blocked = node.inputs.iter().find(|input| {
            index
                .get(input.as_str())
                .is_some_and(|&j| status[j] != Some(NodeStatus::Completed))
        });
        let result: Result<(Value, serde_json::Value), (NodeStatus, String)> =
            if skipped_by_branch[i] {
                Err((NodeStatus::Skipped, "on the branch not taken".into()))
            } else if let Some(input) = blocked {
                Err((
                    NodeStatus::Skipped,
                    format!("input {input:?} did not complete"),
                ))
            } else {
                run_node(
                    graph,
                    i,
                    &NodeInputs {
                        values: &values,
                        index: &index,
                    },
                    options,
                )
            };
        let seconds = start.elapsed().as_secs_f64();
        let outcome = match result {
            Ok((value, summary)) => {
                if let (Value::Bool(taken), Some(c)) = (&value, node.control())
                    && c.op == ControlOp::Branch
                {
                    let not_taken = if *taken { &c.else_nodes } else { &c.then_nodes };
                    for id in not_taken {
                        skipped_by_branch[index[id.as_str()]] = true;
                    }
                }
                values.insert(i, value);
                status[i] = Some(NodeStatus::Completed);
                NodeOutcome {
                    id: node.id.clone(),
                    kind: node.kind(),
                    backend: "cpu",
                    status: NodeStatus::Completed,
                    explanation: None,
                    seconds,
                    output: summary,
                }
            }
            Err((s, why)) => {
                status[i] = Some(s);
                if job.0 == JobStatus::Completed
                    && matches!(s, NodeStatus::Infeasible | NodeStatus::Failed)
                {
                    let js = if s == NodeStatus::Infeasible {
                        JobStatus::Infeasible
                    } else {
                        JobStatus::Failed
                    };
                    job = (js, Some(format!("node {:?}: {why}", node.id)));
                }
                NodeOutcome {
                    id: node.id.clone(),
                    kind: node.kind(),
                    backend: "cpu",
                    status: s,
                    explanation: Some(why),
                    seconds,
                    output: serde_json::Value::Null,
                }
            }
        };
        outcomes[i] = Some(outcome);
    }
    JobOutcome {
        status: job.0,
        explanation: job.1,
        nodes: outcomes.into_iter().flatten().collect(),
    }
}

fn run_node(graph: &Graph, i: usize, inputs: &NodeInputs<'_>, options: ExecOptions) -> NodeResult {
    let node = &graph.nodes[i];
    let tensor_input = |id: &str| inputs.tensor(id);
    let input = |id: &str| inputs.get(id);
    match &node.payload {
        Payload::Tensor(spec) => {
            let inputs = node
                .inputs
                .iter()
                .map(|id| tensor_input(id))
                .collect::<Result<Vec<_>, _>>()?;
            kernels::tensor(spec, &inputs)
                .map(tensor_output)
                .map_err(kernel_failure)
        }
        Payload::Nn(spec) => kernels::mlp(spec, tensor_input(&node.inputs[0])?)
            .map(tensor_output)
            .map_err(kernel_failure),
        Payload::Sample(spec) => {
            let program = condition(spec, inputs)?;
            let seed = spec.seed.wrapping_add(options.seed);
            match sampler::sample(
                &program,
                SampleOptions {
                    seed,
                    threads: options.threads,
                    ..Default::default()
                },
            ) {
                Ok(draws) => Ok(sample_output(&program, &draws, seed, "cpu")),
                Err(SampleError::Infeasible(inf)) => Err((
                    NodeStatus::Infeasible,
                    format!("{} ({})", inf.explanation, inf.constraint),
                )),
                Err(e) => Err((NodeStatus::Failed, e.to_string())),
            }
        }
        Payload::Control(spec) => {
            let src = &spec.source;
            let vector: Vec<f64> = match (input(&src.node), src.field) {
                (Value::Tensor(t), SourceField::Value) => t.iter().copied().collect(),
                (Value::Samples { marginals }, SourceField::Marginal) => {
                    marginals.iter().map(|m| m.unwrap_or(f64::NAN)).collect()
                }
                (Value::Bool(b), SourceField::Value) => vec![f64::from(u8::from(*b))],
                (Value::Index(k), SourceField::Value) => vec![*k as f64],
                (_, field) => {
                    return Err(kernel_failure(KernelError::WrongInput(format!(
                        "input {:?} has no {field:?} to read",
                        src.node
                    ))));
                }
            };
            match spec.op {
                ControlOp::Argmax => {
                    let k = kernels::argmax(&vector).map_err(kernel_failure)?;
                    Ok((Value::Index(k), json!({ "argmax": k })))
                }
                ControlOp::Threshold | ControlOp::Branch => {
                    let x = match (src.index, vector.len()) {
                        (Some(k), len) if k < len => vector[k],
                        (None, 1) => vector[0],
                        (k, len) => {
                            return Err(kernel_failure(KernelError::WrongInput(format!(
                                "source index {k:?} does not pick one of {len} values"
                            ))));
                        }
                    };
                    if !x.is_finite() {
                        return Err(kernel_failure(KernelError::NonFinite(format!(
                            "source value is {x}"
                        ))));
                    }
                    let above = x > spec.above.expect("validated: threshold present");
                    let summary = if spec.op == ControlOp::Branch {
                        json!({ "value": x, "taken": if above { "then" } else { "else" } })
                    } else {
                        json!({ "value": x, "above": above })
                    };
                    Ok((Value::Bool(above), summary))
                }
            }
        }
        Payload::Effect(spec) => {
            // thermoroute never performs the action; it records it with its evidence.
            Ok((
                Value::Bool(true),
                json!({ "action": spec.action, "risk": spec.risk, "applied": true, "evidence": node.inputs }),
            ))
        }
    }
}

/// A sample node's program with its `bias_from` conditioning applied.
pub fn conditioned_program(
    graph: &Graph,
    i: usize,
    values: &HashMap<usize, Value>,
    index: &HashMap<&str, usize>,
) -> Result<crate::model::EProgram, (NodeStatus, String)> {
    let node = &graph.nodes[i];
    let Some(spec) = node.sample() else {
        return Err((
            NodeStatus::Failed,
            format!(
                "node {:?} is a {} node, not a sample node",
                node.id,
                node.kind().name()
            ),
        ));
    };
    condition(spec, &NodeInputs { values, index })
}

fn condition(
    spec: &SampleSpec,
    inputs: &NodeInputs<'_>,
) -> Result<crate::model::EProgram, (NodeStatus, String)> {
    let mut program = spec.program.clone();
    for b in &spec.bias_from {
        let x = inputs.tensor(&b.node)?;
        if x.len() != b.vars.len() {
            return Err(kernel_failure(KernelError::Shape(format!(
                "bias_from {:?} gives {} values for {} spins",
                b.node,
                x.len(),
                b.vars.len()
            ))));
        }
        let ising = program
            .ising
            .as_mut()
            .expect("validated: bias targets are spins");
        for (&v, &value) in b.vars.iter().zip(x.iter()) {
            ising.biases[v] += b.scale * value;
        }
    }
    Ok(program)
}

/// The value and summary of a finished sample node.
pub fn sample_output(
    program: &crate::model::EProgram,
    draws: &sampler::Draws,
    seed: u64,
    backend: &str,
) -> (Value, serde_json::Value) {
    let report = SampleReport::new(program, draws, seed, backend);
    let summary = json!({
        "marginals": report.marginals,
        "samples": draws.samples,
        "max_rhat": report.diagnostics.max_rhat,
        "min_ess_bulk": report.diagnostics.min_ess_bulk,
        "program_hash": report.provenance.program_hash,
        "draws_hash": report.provenance.draws_hash,
    });
    (
        Value::Samples {
            marginals: report.marginals,
        },
        summary,
    )
}

/// Runs one node whose inputs are in `values` (sample nodes in one go).
pub fn run_one(
    graph: &Graph,
    i: usize,
    values: &HashMap<usize, Value>,
    index: &HashMap<&str, usize>,
    options: ExecOptions,
) -> NodeResult {
    run_node(graph, i, &NodeInputs { values, index }, options)
}
