//! The rules a graph file must meet. Every issue is reported, each with the
//! JSON path of what it is about.

use std::collections::{BTreeMap, HashMap};

use super::file::{GraphFile, NodeFile, missing_payload};
use super::payload::{ControlOp, TensorOp, TensorValue};
use super::qos::check_qos;
use super::{MAX_GRAPH_EDGES, MAX_NODES, MAX_TENSOR_ELEMENTS, NodeKind};
use crate::model::eprogram::VarKind;
use crate::model::error::Issue;

impl GraphFile {
    /// Checks every rule; returns all issues.
    pub(super) fn issues(&self) -> Vec<Issue> {
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
        let edges: usize = self.nodes.iter().map(|n| n.inputs.len()).sum();
        if edges > MAX_GRAPH_EDGES {
            out.push(Issue::new(
                "$.nodes",
                format!("{edges} inputs in all is more than the limit of {MAX_GRAPH_EDGES}"),
            ));
        }
        if !out.is_empty() && !self.nodes.is_empty() {
            // Too large to check node by node.
            return out;
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
            // A long cycle is named by its first nodes and its length.
            const SHOWN: usize = 20;
            let names: Vec<&str> = cycle
                .iter()
                .take(SHOWN)
                .map(|&i| self.nodes[i].id.as_str())
                .collect();
            let mut text = names.join(" -> ");
            if cycle.len() > SHOWN {
                text += &format!(" -> … ({} nodes in the cycle)", cycle.len() - 1);
            }
            out.push(Issue::new(
                format!("$.nodes[{}].inputs", cycle[0]),
                format!("the inputs form a cycle: {text}"),
            ));
        }
        out.extend(check_qos(&self.qos));
        out
    }

    /// A cycle as node indices, first node repeated at the end.
    fn find_cycle(&self) -> Option<Vec<usize>> {
        let index: HashMap<&str, usize> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.as_str(), i))
            .collect();
        // Colours: 0 unvisited, 1 on the stack, 2 done. Depth-first with an
        // explicit stack of (node, next input to follow): a chain of
        // MAX_NODES nodes must not overflow the thread's stack.
        let mut colour = vec![0u8; self.nodes.len()];
        let mut stack: Vec<(usize, usize)> = Vec::new();
        for root in 0..self.nodes.len() {
            if colour[root] != 0 {
                continue;
            }
            colour[root] = 1;
            stack.push((root, 0));
            while let Some(&mut (i, ref mut next)) = stack.last_mut() {
                let Some(input) = self.nodes[i].inputs.get(*next) else {
                    stack.pop();
                    colour[i] = 2;
                    continue;
                };
                *next += 1;
                let Some(&j) = index.get(input.as_str()) else {
                    continue;
                };
                if colour[j] == 1 {
                    let start = stack.iter().position(|&(s, _)| s == j).unwrap_or(0);
                    // Edges point from a node to its inputs; reverse for data-flow order.
                    let mut cycle: Vec<usize> = stack[start..].iter().map(|&(s, _)| s).collect();
                    cycle.reverse();
                    cycle.push(cycle[0]);
                    return Some(cycle);
                }
                if colour[j] == 0 {
                    colour[j] = 1;
                    stack.push((j, 0));
                }
            }
        }
        None
    }
}

fn check_node(
    n: &NodeFile,
    p: &str,
    ids: &BTreeMap<&str, usize>,
    g: &GraphFile,
    out: &mut Vec<Issue>,
) {
    let present = [
        (NodeKind::Control, n.control.is_some()),
        (NodeKind::Tensor, n.tensor.is_some()),
        (NodeKind::Nn, n.nn.is_some()),
        (NodeKind::Sample, n.sample.is_some()),
        (NodeKind::Effect, n.effect.is_some()),
    ];
    for (kind, is_there) in present {
        if kind == n.kind && !is_there {
            out.push(missing_payload(p, kind));
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
