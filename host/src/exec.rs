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

use crate::backends::node::run_node;
use crate::backends::value::NodeInputs;
use crate::backends::value::Value;
use crate::model::graph::{ControlOp, Graph, NodeKind};

pub use crate::backends::node::ExecOptions;

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
