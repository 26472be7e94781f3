//! Workload graphs: nodes of five kinds joined by `inputs`, plus a QoS object.
//!
//! Each node names its kind and carries the payload of that kind in a field of
//! the same name (`"kind": "sample", "sample": {...}`), so that every error
//! has a precise JSON path.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::eprogram::{EProgram, VarKind};
use super::error::{Issue, ModelError, parse_json, read_file};

/// Largest number of nodes in a graph.
pub const MAX_NODES: usize = 100_000;
/// Largest number of elements in one tensor.
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 26;

/// A workload graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Graph {
    /// Optional human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The nodes; `inputs` must form a DAG.
    pub nodes: Vec<Node>,
    /// Quality-of-service targets for one job of this graph.
    #[serde(default)]
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

/// One node of a workload graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Node {
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

/// A literal tensor, or one drawn from a seeded generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TensorValue {
    /// Dimensions (empty for a scalar).
    pub shape: Vec<usize>,
    /// Row-major data; exactly one of `data` and `generator`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<Generator>,
}

/// Seeded random tensor contents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Generator {
    pub seed: u64,
    pub dist: Distribution,
    /// Multiplies every value (default 1).
    #[serde(default = "one")]
    pub scale: f64,
}

fn one() -> f64 {
    1.0
}

/// Generator distributions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Distribution {
    /// Standard normal.
    Normal,
    /// Uniform on [-1, 1).
    Uniform,
}

/// Tensor operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TensorOp {
    /// The literal or generated `value` (no inputs).
    Const,
    /// Matrix product of two inputs (matrix x matrix or matrix x vector).
    Matmul,
    /// Element-wise sum of two inputs of one shape (or one a scalar).
    Add,
    /// Element-wise product of two inputs of one shape (or one a scalar).
    Mul,
    /// Element-wise max(x, 0) of one input.
    Relu,
    /// Element-wise tanh of one input.
    Tanh,
    /// Element-wise logistic sigmoid of one input.
    Sigmoid,
    /// Sum of all elements (or along `axis`).
    Sum,
    /// Mean of all elements (or along `axis`).
    Mean,
    /// Maximum of all elements (or along `axis`).
    Max,
}

impl TensorOp {
    /// How many inputs the op reads.
    pub fn arity(self) -> usize {
        match self {
            TensorOp::Const => 0,
            TensorOp::Matmul | TensorOp::Add | TensorOp::Mul => 2,
            _ => 1,
        }
    }
}

/// Payload of a tensor node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    pub op: TensorOp,
    /// For `const`: the tensor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<TensorValue>,
    /// For reductions: the axis to reduce (all axes when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub axis: Option<usize>,
}

/// Activation functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Identity,
    Relu,
    Tanh,
    Sigmoid,
}

/// One dense layer: `act(W x + b)`, W of shape [out, in].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub weights: TensorValue,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bias: Option<Vec<f64>>,
    pub activation: Activation,
}

/// Payload of an nn node: an MLP applied to its single input vector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NnSpec {
    pub layers: Vec<Layer>,
}

/// Upstream values added to the biases of spins: `b[vars[k]] += scale * x[k]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BiasInput {
    /// An input node producing a vector.
    pub node: String,
    /// The spins whose biases it shifts, one per vector element.
    pub vars: Vec<usize>,
    #[serde(default = "one")]
    pub scale: f64,
}

/// Payload of a sample node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleSpec {
    pub program: EProgram,
    /// Conditioning from upstream nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bias_from: Vec<BiasInput>,
    /// Seed for this node's sampler (default 0).
    #[serde(default)]
    pub seed: u64,
}

/// Control operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ControlOp {
    /// true when the source value is above `above`.
    Threshold,
    /// Index of the largest element of the source vector.
    Argmax,
    /// Like threshold, then skips the nodes of the branch not taken
    /// (`then` when above, `else` otherwise) and everything downstream of them.
    Branch,
}

/// What a control node reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// An input node.
    pub node: String,
    /// `value` (a tensor's element or the whole vector) or `marginal`
    /// (a sample node's P(s_i = +1)).
    #[serde(default)]
    pub field: SourceField,
    /// Element index; required for scalar reads of a vector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourceField {
    #[default]
    Value,
    Marginal,
}

/// Payload of a control node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlSpec {
    pub op: ControlOp,
    pub source: Source,
    /// Threshold for `threshold` and `branch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    /// For `branch`: nodes run only when the value is above the threshold.
    #[serde(default, rename = "then", skip_serializing_if = "Vec::is_empty")]
    pub then_nodes: Vec<String>,
    /// For `branch`: nodes run only when it is not.
    #[serde(default, rename = "else", skip_serializing_if = "Vec::is_empty")]
    pub else_nodes: Vec<String>,
}

/// Risk classes of side effects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    #[default]
    Reversible,
    Irreversible,
}

/// Payload of an effect node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EffectSpec {
    /// What the effect does, in words (recorded, never executed by thermoroute).
    pub action: String,
    pub risk: Risk,
}

/// Latency targets in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatencyTarget {
    pub p50: f64,
    pub p95: f64,
}

/// Accuracy target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccuracyTarget {
    /// Largest acceptable error of any marginal.
    pub max_error: f64,
}

/// Priority classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Interactive,
    #[default]
    Batch,
}

/// QoS targets for one job, as fixed by the product brief.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Qos {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<LatencyTarget>,
    /// Absolute energy budget in joules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_j: Option<f64>,
    /// Energy budget relative to the all-CPU baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_relative: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<AccuracyTarget>,
    #[serde(default)]
    pub risk: Risk,
    #[serde(default)]
    pub priority: Priority,
    #[serde(default = "one_usize")]
    pub batch_size: usize,
}

fn one_usize() -> usize {
    1
}

impl Default for Qos {
    /// No latency, energy or accuracy targets; reversible, batch, one at a time.
    fn default() -> Self {
        Qos {
            latency_ms: None,
            energy_j: None,
            energy_relative: None,
            accuracy: None,
            risk: Risk::default(),
            priority: Priority::default(),
            batch_size: 1,
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
        let graph: Graph = parse_json(file, text)?;
        let issues = graph.issues();
        if issues.is_empty() {
            Ok(graph)
        } else {
            Err(ModelError::Invalid {
                file: file.to_path_buf(),
                issues,
            })
        }
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

    /// Checks every rule; returns all issues.
    pub fn issues(&self) -> Vec<Issue> {
        let mut out = Vec::new();
        if self.nodes.is_empty() {
            out.push(Issue::new("$.nodes", "a graph needs at least one node"));
        }
        if self.nodes.len() > MAX_NODES {
            out.push(Issue::new(
                "$.nodes",
                format!(
                    "{} nodes is more than the limit of {MAX_NODES}",
                    self.nodes.len()
                ),
            ));
        }
        let mut ids: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if n.id.is_empty() {
                out.push(Issue::new(
                    format!("$.nodes[{i}].id"),
                    "id must not be empty",
                ));
            }
            if let Some(first) = ids.insert(&n.id, i) {
                out.push(Issue::new(
                    format!("$.nodes[{i}].id"),
                    format!("duplicate id {:?}: already used by nodes[{first}]", n.id),
                ));
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            let p = format!("$.nodes[{i}]");
            for (k, input) in n.inputs.iter().enumerate() {
                if *input == n.id {
                    out.push(Issue::new(
                        format!("{p}.inputs[{k}]"),
                        format!("node {:?} lists itself as an input (self-loop)", n.id),
                    ));
                } else if !ids.contains_key(input.as_str()) {
                    out.push(Issue::new(
                        format!("{p}.inputs[{k}]"),
                        format!("unknown input id {input:?}: no node has that id"),
                    ));
                }
            }
            check_node(n, &p, &ids, self, &mut out);
        }
        if out.is_empty()
            && let Some(cycle) = self.find_cycle()
        {
            let names: Vec<&str> = cycle.iter().map(|&i| self.nodes[i].id.as_str()).collect();
            out.push(Issue::new(
                format!("$.nodes[{}].inputs", cycle[0]),
                format!("the inputs form a cycle: {}", names.join(" -> ")),
            ));
        }
        out.extend(check_qos(&self.qos));
        out
    }

    /// A cycle as node indices, first node repeated at the end.
    fn find_cycle(&self) -> Option<Vec<usize>> {
        let index = self.index();
        // Colours: 0 unvisited, 1 on the stack, 2 done.
        let mut colour = vec![0u8; self.nodes.len()];
        let mut stack: Vec<usize> = Vec::new();
        fn visit(
            g: &Graph,
            index: &HashMap<&str, usize>,
            i: usize,
            colour: &mut [u8],
            stack: &mut Vec<usize>,
        ) -> Option<Vec<usize>> {
            colour[i] = 1;
            stack.push(i);
            for input in &g.nodes[i].inputs {
                let Some(&j) = index.get(input.as_str()) else {
                    continue;
                };
                if colour[j] == 1 {
                    let start = stack.iter().position(|&s| s == j).unwrap_or(0);
                    // Edges point from a node to its inputs; reverse for data-flow order.
                    let mut cycle: Vec<usize> = stack[start..].to_vec();
                    cycle.reverse();
                    cycle.push(cycle[0]);
                    return Some(cycle);
                }
                if colour[j] == 0
                    && let Some(c) = visit(g, index, j, colour, stack)
                {
                    return Some(c);
                }
            }
            stack.pop();
            colour[i] = 2;
            None
        }
        for i in 0..self.nodes.len() {
            if colour[i] == 0
                && let Some(c) = visit(self, &index, i, &mut colour, &mut stack)
            {
                return Some(c);
            }
        }
        None
    }
}

fn check_node(n: &Node, p: &str, ids: &BTreeMap<&str, usize>, g: &Graph, out: &mut Vec<Issue>) {
    let present = [
        (NodeKind::Control, n.control.is_some()),
        (NodeKind::Tensor, n.tensor.is_some()),
        (NodeKind::Nn, n.nn.is_some()),
        (NodeKind::Sample, n.sample.is_some()),
        (NodeKind::Effect, n.effect.is_some()),
    ];
    for (kind, is_there) in present {
        if kind == n.kind && !is_there {
            out.push(Issue::new(
                format!("{p}.{}", kind.name()),
                format!("a {} node needs a `{}` payload", kind.name(), kind.name()),
            ));
        }
        if kind != n.kind && is_there {
            out.push(Issue::new(
                format!("{p}.{}", kind.name()),
                format!(
                    "a {} node cannot carry a `{}` payload",
                    n.kind.name(),
                    kind.name()
                ),
            ));
        }
    }
    let is_input = |id: &str| n.inputs.iter().any(|i| i == id);
    if let Some(t) = &n.tensor {
        let arity = t.op.arity();
        if n.inputs.len() != arity {
            out.push(Issue::new(
                format!("{p}.inputs"),
                format!(
                    "tensor op {:?} takes {arity} input(s), got {}",
                    t.op,
                    n.inputs.len()
                ),
            ));
        }
        match (&t.value, t.op) {
            (None, TensorOp::Const) => out.push(Issue::new(
                format!("{p}.tensor.value"),
                "a const tensor needs a `value`",
            )),
            (Some(v), TensorOp::Const) => check_tensor_value(v, &format!("{p}.tensor.value"), out),
            (Some(_), _) => out.push(Issue::new(
                format!("{p}.tensor.value"),
                "only a const tensor carries a `value`",
            )),
            (None, _) => {}
        }
    }
    if let Some(nn) = &n.nn {
        if nn.layers.is_empty() {
            out.push(Issue::new(
                format!("{p}.nn.layers"),
                "an MLP needs at least one layer",
            ));
        }
        if n.inputs.len() != 1 {
            out.push(Issue::new(
                format!("{p}.inputs"),
                format!(
                    "an nn node reads exactly one input vector, got {} inputs",
                    n.inputs.len()
                ),
            ));
        }
        let mut prev_out: Option<usize> = None;
        for (l, layer) in nn.layers.iter().enumerate() {
            let lp = format!("{p}.nn.layers[{l}]");
            check_tensor_value(&layer.weights, &format!("{lp}.weights"), out);
            if layer.weights.shape.len() != 2 {
                out.push(Issue::new(
                    format!("{lp}.weights.shape"),
                    format!(
                        "layer weights are a matrix [out, in], got shape {:?}",
                        layer.weights.shape
                    ),
                ));
                prev_out = None;
                continue;
            }
            let (o, i) = (layer.weights.shape[0], layer.weights.shape[1]);
            if let Some(po) = prev_out
                && po != i
            {
                out.push(Issue::new(
                    format!("{lp}.weights.shape"),
                    format!("layer takes {i} inputs but the previous layer gives {po}"),
                ));
            }
            if let Some(b) = &layer.bias {
                if b.len() != o {
                    out.push(Issue::new(
                        format!("{lp}.bias"),
                        format!("has {} entries but the layer has {o} outputs", b.len()),
                    ));
                }
                check_finite(b, &format!("{lp}.bias"), out);
            }
            prev_out = Some(o);
        }
    }
    if let Some(s) = &n.sample {
        let pp = format!("{p}.sample.program");
        let issues = s.program.issues(&pp);
        let program_ok = issues.is_empty();
        out.extend(issues);
        for (b, bi) in s.bias_from.iter().enumerate() {
            let bp = format!("{p}.sample.bias_from[{b}]");
            if !is_input(&bi.node) {
                out.push(Issue::new(
                    format!("{bp}.node"),
                    format!("{:?} is not one of this node's inputs", bi.node),
                ));
            }
            if !bi.scale.is_finite() {
                out.push(Issue::new(format!("{bp}.scale"), "scale is not finite"));
            }
            for (k, &v) in bi.vars.iter().enumerate() {
                if program_ok && (v >= s.program.n_vars() || s.program.var_kind(v) != VarKind::Spin)
                {
                    out.push(Issue::new(
                        format!("{bp}.vars[{k}]"),
                        format!("variable {v} is not a spin of the program"),
                    ));
                }
            }
        }
    }
    if let Some(c) = &n.control {
        if !is_input(&c.source.node) {
            out.push(Issue::new(
                format!("{p}.control.source.node"),
                format!("{:?} is not one of this node's inputs", c.source.node),
            ));
        }
        let needs_threshold = matches!(c.op, ControlOp::Threshold | ControlOp::Branch);
        match c.above {
            None if needs_threshold => out.push(Issue::new(
                format!("{p}.control.above"),
                format!("{:?} needs a threshold `above`", c.op),
            )),
            Some(x) if !x.is_finite() => out.push(Issue::new(
                format!("{p}.control.above"),
                "threshold is not finite",
            )),
            _ => {}
        }
        if c.op != ControlOp::Branch && (!c.then_nodes.is_empty() || !c.else_nodes.is_empty()) {
            out.push(Issue::new(
                format!("{p}.control"),
                "`then` and `else` belong to a branch",
            ));
        }
        for (field, list) in [("then", &c.then_nodes), ("else", &c.else_nodes)] {
            for (k, id) in list.iter().enumerate() {
                let ok = ids
                    .get(id.as_str())
                    .is_some_and(|&j| g.nodes[j].inputs.contains(&n.id));
                if !ok {
                    out.push(Issue::new(
                        format!("{p}.control.{field}[{k}]"),
                        format!("{id:?} must be a node that takes this branch as an input"),
                    ));
                }
            }
        }
    }
}

fn check_tensor_value(v: &TensorValue, p: &str, out: &mut Vec<Issue>) {
    let size = v
        .shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let Some(size) = size.filter(|&s| s <= MAX_TENSOR_ELEMENTS) else {
        out.push(Issue::new(
            format!("{p}.shape"),
            format!(
                "shape {:?} has more than {MAX_TENSOR_ELEMENTS} elements",
                v.shape
            ),
        ));
        return;
    };
    match (&v.data, &v.generator) {
        (Some(d), None) => {
            if d.len() != size {
                out.push(Issue::new(
                    format!("{p}.data"),
                    format!(
                        "has {} values but shape {:?} needs {size}",
                        d.len(),
                        v.shape
                    ),
                ));
            }
            check_finite(d, &format!("{p}.data"), out);
        }
        (None, Some(g)) => {
            if !g.scale.is_finite() {
                out.push(Issue::new(
                    format!("{p}.generator.scale"),
                    "scale is not finite",
                ));
            }
        }
        _ => out.push(Issue::new(
            p.to_string(),
            "give exactly one of `data` and `generator`",
        )),
    }
}

fn check_finite(xs: &[f64], p: &str, out: &mut Vec<Issue>) {
    for (i, x) in xs.iter().enumerate() {
        if !x.is_finite() {
            out.push(Issue::new(
                format!("{p}[{i}]"),
                format!("value is not finite ({x})"),
            ));
        }
    }
}

fn check_qos(q: &Qos) -> Vec<Issue> {
    let mut out = Vec::new();
    if let Some(l) = q.latency_ms {
        if !(l.p50.is_finite() && l.p50 > 0.0) {
            out.push(Issue::new(
                "$.qos.latency_ms.p50",
                "must be a positive number of milliseconds",
            ));
        }
        if !(l.p95.is_finite() && l.p95 > 0.0) {
            out.push(Issue::new(
                "$.qos.latency_ms.p95",
                "must be a positive number of milliseconds",
            ));
        }
        if l.p50 > l.p95 {
            out.push(Issue::new(
                "$.qos.latency_ms",
                format!("p50 ({}) cannot exceed p95 ({})", l.p50, l.p95),
            ));
        }
    }
    if q.energy_j.is_some() && q.energy_relative.is_some() {
        out.push(Issue::new(
            "$.qos",
            "give either energy_j (absolute) or energy_relative, not both",
        ));
    }
    if let Some(e) = q.energy_j
        && !(e.is_finite() && e > 0.0)
    {
        out.push(Issue::new(
            "$.qos.energy_j",
            "must be a positive number of joules",
        ));
    }
    if let Some(e) = q.energy_relative
        && !(e.is_finite() && e > 0.0)
    {
        out.push(Issue::new(
            "$.qos.energy_relative",
            "must be a positive fraction of the all-CPU energy",
        ));
    }
    if let Some(a) = q.accuracy
        && !(a.max_error.is_finite() && a.max_error > 0.0 && a.max_error <= 1.0)
    {
        out.push(Issue::new("$.qos.accuracy.max_error", "must be in (0, 1]"));
    }
    if q.batch_size == 0 {
        out.push(Issue::new("$.qos.batch_size", "must be at least 1"));
    }
    out
}
