//! Workload graphs: nodes of five kinds joined by `inputs`, plus a QoS object.
//!
//! Each node names its kind and carries the payload of that kind in a field of
//! the same name (`"kind": "sample", "sample": {...}`), so that every error
//! has a precise JSON path.

//!
//! The file is read in that flat form, validated, and only then turned into
//! a [`Graph`], whose nodes each hold exactly one [`Payload`].

mod file;
mod payload;
mod qos;
mod validate;

use std::collections::HashMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::error::{ModelError, cap_issues, parse_json, read_file};
use file::GraphFile;
pub use payload::{
    Activation, BiasInput, ControlOp, ControlSpec, Distribution, EffectSpec, Generator, Layer,
    NnSpec, Payload, Risk, SampleSpec, Source, SourceField, TensorOp, TensorSpec, TensorValue,
};
pub use qos::{AccuracyTarget, LatencyTarget, Priority, Qos};

pub use super::limits::{MAX_GRAPH_EDGES, MAX_NODES, MAX_TENSOR_ELEMENTS};

/// A validated workload graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Graph {
    /// Optional human-readable name.
    pub name: Option<String>,
    /// The nodes; `inputs` form a DAG.
    pub nodes: Vec<Node>,
    /// Quality-of-service targets for one job of this graph.
    pub qos: Qos,
}

/// Node kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// Small, branchy decisions: threshold, argmax, branch.
    Control,
    /// Tensor operations.
    Tensor,
    /// Neural-network (MLP) inference.
    Nn,
    /// An EProgram to sample.
    Sample,
    /// A side effect, reversible or not.
    Effect,
}

impl NodeKind {
    pub fn name(self) -> &'static str {
        match self {
            NodeKind::Control => "control",
            NodeKind::Tensor => "tensor",
            NodeKind::Nn => "nn",
            NodeKind::Sample => "sample",
            NodeKind::Effect => "effect",
        }
    }
}

/// One node of a validated workload graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Unique id.
    pub id: String,
    /// Ids of the nodes whose outputs this node reads.
    pub inputs: Vec<String>,
    pub payload: Payload,
}

impl Node {
    pub fn kind(&self) -> NodeKind {
        self.payload.kind()
    }

    pub fn control(&self) -> Option<&ControlSpec> {
        match &self.payload {
            Payload::Control(spec) => Some(spec),
            _ => None,
        }
    }

    pub fn tensor(&self) -> Option<&TensorSpec> {
        match &self.payload {
            Payload::Tensor(spec) => Some(spec),
            _ => None,
        }
    }

    pub fn nn(&self) -> Option<&NnSpec> {
        match &self.payload {
            Payload::Nn(spec) => Some(spec),
            _ => None,
        }
    }

    pub fn sample(&self) -> Option<&SampleSpec> {
        match &self.payload {
            Payload::Sample(spec) => Some(spec),
            _ => None,
        }
    }

    pub fn effect(&self) -> Option<&EffectSpec> {
        match &self.payload {
            Payload::Effect(spec) => Some(spec),
            _ => None,
        }
    }
}

impl Graph {
    /// Reads and validates a graph file.
    pub fn load(file: &Path) -> Result<Self, ModelError> {
        let text = read_file(file)?;
        Self::from_json(file, &text)
    }

    /// Parses and validates graph JSON; `file` is only used in messages.
    pub fn from_json(file: &Path, text: &str) -> Result<Self, ModelError> {
        let graph: GraphFile = parse_json(file, text)?;
        graph.into_graph().map_err(|issues| ModelError::Invalid {
            file: file.to_path_buf(),
            issues: cap_issues(issues),
        })
    }

    /// Index of each node id.
    pub fn index(&self) -> HashMap<&str, usize> {
        self.nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect()
    }

    /// Node indices in an order where every node follows its inputs.
    /// Call only on a validated graph.
    pub fn topological_order(&self) -> Vec<usize> {
        let index = self.index();
        let mut indegree: Vec<usize> = self.nodes.iter().map(|n| n.inputs.len()).collect();
        let mut users: Vec<Vec<usize>> = vec![Vec::new(); self.nodes.len()];
        for (i, n) in self.nodes.iter().enumerate() {
            for input in &n.inputs {
                if let Some(&j) = index.get(input.as_str()) {
                    users[j].push(i);
                }
            }
        }
        let mut ready: std::collections::VecDeque<usize> = (0..self.nodes.len())
            .filter(|&i| indegree[i] == 0)
            .collect();
        let mut order = Vec::with_capacity(self.nodes.len());
        while let Some(i) = ready.pop_front() {
            order.push(i);
            for &u in &users[i] {
                indegree[u] -= 1;
                if indegree[u] == 0 {
                    ready.push_back(u);
                }
            }
        }
        order
    }
}
