//! What each node kind means, run on the CPU: tensor and MLP kernels,
//! control ops, the reference sampler, effects recorded; conditioning a
//! sample node's program on its inputs (`bias_from`) and the value and
//! summary of a finished sample node, which every backend shares. The CPU
//! backend and the single-job reference run ([`crate::exec`]) both run
//! nodes through here.

use std::collections::HashMap;

use serde_json::json;

use super::cpu::kernels::{self, KernelError};
use super::value::{NodeInputs, NodeResult, Value, kernel_failure, tensor_output};
use crate::model::graph::{ControlOp, Graph, Payload, SampleSpec, SourceField};
use crate::sample_report::SampleReport;
use crate::sampler::{self, SampleError, SampleOptions};
use crate::trace::NodeStatus;

/// Options of a reference run: seeds and sampler threads.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecOptions {
    /// Added to every sample node's own seed.
    pub seed: u64,
    pub threads: Option<usize>,
}

/// Runs one node whose inputs are complete (sample nodes in one go).
pub fn run_node(
    graph: &Graph,
    i: usize,
    inputs: &NodeInputs<'_>,
    options: ExecOptions,
) -> NodeResult {
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
