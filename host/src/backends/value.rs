//! What a node produces, in the form every backend and the reference
//! executor hand to the engine: the value downstream nodes read, and a JSON
//! summary for the trace, or the node's status and why it has no value.

use std::collections::HashMap;

use ndarray::ArrayD;
use serde_json::json;

use super::cpu::kernels::KernelError;
use crate::model::Graph;
use crate::trace::NodeStatus;

/// A node's output value.
#[derive(Debug, Clone)]
pub enum Value {
    Tensor(ArrayD<f64>),
    Samples { marginals: Vec<Option<f64>> },
    Bool(bool),
    Index(usize),
}

/// A node's value and a JSON summary of it, or why it has none.
pub type NodeResult = Result<(Value, serde_json::Value), (NodeStatus, String)>;

/// A kernel error as the node's failure (any backend).
pub fn kernel_failure(e: KernelError) -> (NodeStatus, String) {
    (NodeStatus::Failed, e.to_string())
}

/// A finished tensor node's value and trace summary (any backend).
pub fn tensor_output(out: ArrayD<f64>) -> (Value, serde_json::Value) {
    let summary = json!({ "shape": out.shape(), "values": preview(&out) });
    (Value::Tensor(out), summary)
}

fn preview(x: &ArrayD<f64>) -> Vec<f64> {
    x.iter().take(16).copied().collect()
}

/// The tensors node `i` reads, in input order (an input that is not a
/// tensor is the node's failure).
pub fn tensor_inputs<'a>(
    graph: &Graph,
    i: usize,
    inputs: &NodeInputs<'a>,
) -> Result<Vec<&'a ArrayD<f64>>, (NodeStatus, String)> {
    graph.nodes[i]
        .inputs
        .iter()
        .map(|id| inputs.tensor(id))
        .collect()
}

/// One deterministic node to run: where it is and what it reads.
#[derive(Debug, Clone, Copy)]
pub struct NodeCall<'a> {
    /// The graph.
    pub graph: &'a Graph,
    /// The node's index in the graph.
    pub node: usize,
    /// The outputs of the nodes it reads.
    pub inputs: NodeInputs<'a>,
}

/// The completed outputs a node can read, by node id.
#[derive(Debug, Clone, Copy)]
pub struct NodeInputs<'a> {
    pub values: &'a HashMap<usize, Value>,
    pub index: &'a HashMap<&'a str, usize>,
}

impl<'a> NodeInputs<'a> {
    pub fn get(&self, id: &str) -> &'a Value {
        &self.values[&self.index[id]]
    }

    pub fn tensor(&self, id: &str) -> Result<&'a ArrayD<f64>, (NodeStatus, String)> {
        match self.get(id) {
            Value::Tensor(t) => Ok(t),
            _ => Err(kernel_failure(KernelError::WrongInput(format!(
                "input {id:?} is not a tensor"
            )))),
        }
    }
}
