//! The graph file format: flat nodes that name their kind and carry the
//! payload in a field of the same name. Parsing reads this form, validation
//! checks it (so every issue has the file's JSON path), and only then does it
//! become a [`Graph`] whose nodes hold exactly one [`Payload`].

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};

use super::payload::{ControlSpec, EffectSpec, NnSpec, Payload, SampleSpec, TensorSpec};
use super::qos::Qos;
use super::{Graph, Node, NodeKind};
use crate::model::error::Issue;

// The serde names stay `Graph` and `Node`: they appear in parse errors
// ("expected struct Node") and name the definitions of the JSON Schema.

/// A workload graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Graph", expecting = "struct Graph")]
pub(super) struct GraphFile {
    /// Optional human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The nodes; `inputs` must form a DAG.
    pub nodes: Vec<NodeFile>,
    /// Quality-of-service targets for one job of this graph.
    #[serde(default)]
    pub qos: Qos,
}

/// One node of a workload graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename = "Node", expecting = "struct Node")]
pub(super) struct NodeFile {
    /// Unique id.
    pub id: String,
    /// Which kind of node; the payload field of the same name must be present.
    pub kind: NodeKind,
    /// Ids of the nodes whose outputs this node reads.
    #[serde(default)]
    pub inputs: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<ControlSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tensor: Option<TensorSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nn: Option<NnSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample: Option<SampleSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<EffectSpec>,
}

/// The issue of a node at JSON path `p` whose kind's payload is absent.
pub(super) fn missing_payload(p: &str, kind: NodeKind) -> Issue {
    Issue::new(
        format!("{p}.{}", kind.name()),
        format!("a {} node needs a `{}` payload", kind.name(), kind.name()),
    )
}

impl GraphFile {
    /// The validated graph, or every issue of the file.
    pub fn into_graph(self) -> Result<Graph, Vec<Issue>> {
        let issues = self.issues();
        if !issues.is_empty() {
            return Err(issues);
        }
        let nodes = self
            .nodes
            .into_iter()
            .enumerate()
            .map(|(i, n)| n.into_node(&format!("$.nodes[{i}]")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|issue| vec![issue])?;
        Ok(Graph {
            name: self.name,
            nodes,
            qos: self.qos,
        })
    }
}

impl NodeFile {
    /// Keeps the payload of the node's kind (validation has rejected any other).
    fn into_node(self, p: &str) -> Result<Node, Issue> {
        let payload = match self.kind {
            NodeKind::Control => self.control.map(Payload::Control),
            NodeKind::Tensor => self.tensor.map(Payload::Tensor),
            NodeKind::Nn => self.nn.map(Payload::Nn),
            NodeKind::Sample => self.sample.map(Payload::Sample),
            NodeKind::Effect => self.effect.map(Payload::Effect),
        };
        Ok(Node {
            id: self.id,
            inputs: self.inputs,
            payload: payload.ok_or_else(|| missing_payload(p, self.kind))?,
        })
    }
}

/// The schema of the file format, which is what a graph is read from.
impl JsonSchema for Graph {
    fn schema_name() -> Cow<'static, str> {
        GraphFile::schema_name()
    }

    fn schema_id() -> Cow<'static, str> {
        GraphFile::schema_id()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        GraphFile::json_schema(generator)
    }
}
