//! Node payloads: what each kind of node computes or does.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::NodeKind;
use crate::model::eprogram::EProgram;

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

/// A validated node's work: the one payload its kind calls for.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Control(ControlSpec),
    Tensor(TensorSpec),
    Nn(NnSpec),
    Sample(SampleSpec),
    Effect(EffectSpec),
}

impl Payload {
    pub fn kind(&self) -> NodeKind {
        match self {
            Payload::Control(_) => NodeKind::Control,
            Payload::Tensor(_) => NodeKind::Tensor,
            Payload::Nn(_) => NodeKind::Nn,
            Payload::Sample(_) => NodeKind::Sample,
            Payload::Effect(_) => NodeKind::Effect,
        }
    }
}
