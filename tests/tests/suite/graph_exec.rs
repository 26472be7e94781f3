//! Outputs flow along edges: MLP output conditions a sample node, a control
//! node reads its marginals, a branch skips the side not taken.

use std::path::Path;

use thermoroute::exec::{ExecOptions, JobStatus, NodeStatus, execute};
use thermoroute::model::Graph;

const SCHED: &str =
    r#""schedule": {"warmup": 50, "samples": 800, "steps_per_sample": 1, "chains": 4}"#;

/// A one-layer MLP whose output sets the bias of spin 0 (scaled by `scale`),
/// a sample node over two coupled spins, a branch on P(s_1 = +1).
fn pipeline(input: f64, scale: f64) -> Graph {
    let text = format!(
        r#"{{"nodes": [
          {{"id": "x", "kind": "tensor", "tensor": {{"op": "const", "value": {{"shape": [1], "data": [{input}]}}}}}},
          {{"id": "mlp", "kind": "nn", "inputs": ["x"], "nn": {{"layers": [{{"weights": {{"shape": [1, 1], "data": [2.0]}}, "bias": [0.0], "activation": "identity"}}]}}}},
          {{"id": "post", "kind": "sample", "inputs": ["mlp"], "sample": {{
              "program": {{"ising": {{"n": 2, "biases": [0, 0], "edges": [[0, 1]], "weights": [1.5]}}, {SCHED}}},
              "bias_from": [{{"node": "mlp", "vars": [0], "scale": {scale}}}], "seed": 3}}}},
          {{"id": "gate", "kind": "control", "inputs": ["post"], "control": {{"op": "branch", "source": {{"node": "post", "field": "marginal", "index": 1}}, "above": 0.5, "then": ["act"], "else": ["hold"]}}}},
          {{"id": "act", "kind": "effect", "inputs": ["gate"], "effect": {{"action": "ship", "risk": "irreversible"}}}},
          {{"id": "hold", "kind": "effect", "inputs": ["gate"], "effect": {{"action": "wait", "risk": "reversible"}}}}
        ], "qos": {{}}}}"#
    );
    Graph::from_json(Path::new("pipeline.json"), &text).unwrap()
}

fn status_of(job: &thermoroute::exec::JobOutcome, id: &str) -> NodeStatus {
    job.nodes.iter().find(|n| n.id == id).unwrap().status
}

fn marginal(job: &thermoroute::exec::JobOutcome, id: &str, v: usize) -> f64 {
    job.nodes.iter().find(|n| n.id == id).unwrap().output["marginals"][v]
        .as_f64()
        .unwrap()
}

#[test]
fn upstream_output_conditions_the_sampler_and_the_branch_follows() {
    let up = execute(&pipeline(1.0, 1.0), ExecOptions::default());
    assert_eq!(up.status, JobStatus::Completed);
    // bias 2.0 on spin 0 with coupling 1.5 pulls spin 1 up.
    assert!(
        marginal(&up, "post", 0) > 0.9,
        "{}",
        marginal(&up, "post", 0)
    );
    assert!(marginal(&up, "post", 1) > 0.8);
    assert_eq!(status_of(&up, "act"), NodeStatus::Completed);
    assert_eq!(status_of(&up, "hold"), NodeStatus::Skipped);

    let down = execute(&pipeline(-1.0, 1.0), ExecOptions::default());
    assert!(marginal(&down, "post", 1) < 0.2);
    assert_eq!(status_of(&down, "act"), NodeStatus::Skipped);
    assert_eq!(status_of(&down, "hold"), NodeStatus::Completed);
}

#[test]
fn a_failing_node_fails_the_job_and_skips_its_dependents() {
    // The MLP output has 1 value but bias_from targets 2 spins.
    let text = format!(
        r#"{{"nodes": [
          {{"id": "x", "kind": "tensor", "tensor": {{"op": "const", "value": {{"shape": [1], "data": [1.0]}}}}}},
          {{"id": "post", "kind": "sample", "inputs": ["x"], "sample": {{
              "program": {{"ising": {{"n": 2, "biases": [0, 0], "edges": [], "weights": []}}, {SCHED}}},
              "bias_from": [{{"node": "x", "vars": [0, 1]}}]}}}},
          {{"id": "after", "kind": "control", "inputs": ["post"], "control": {{"op": "argmax", "source": {{"node": "post", "field": "marginal"}}}}}}
        ]}}"#
    );
    let g = Graph::from_json(Path::new("g.json"), &text).unwrap();
    let job = execute(&g, ExecOptions::default());
    assert_eq!(job.status, JobStatus::Failed);
    assert!(job.explanation.as_ref().unwrap().contains("post"));
    assert_eq!(status_of(&job, "post"), NodeStatus::Failed);
    assert_eq!(status_of(&job, "after"), NodeStatus::Skipped);
    assert_eq!(job.nodes.len(), 3, "nothing submitted is dropped");
}

#[test]
fn an_infeasible_sample_node_makes_an_infeasible_job() {
    let text = format!(
        r#"{{"nodes": [
          {{"id": "post", "kind": "sample", "sample": {{"program": {{
              "ising": {{"n": 3, "biases": [0, 0, 0], "edges": [], "weights": []}},
              "constraints": [{{"kind": "one_hot", "vars": [0, 1, 2]}}],
              "clamp": {{"0": -1, "1": -1, "2": -1}}, {SCHED}}}}}}}
        ]}}"#
    );
    let g = Graph::from_json(Path::new("g.json"), &text).unwrap();
    let job = execute(&g, ExecOptions::default());
    assert_eq!(job.status, JobStatus::Infeasible);
    let why = job.explanation.unwrap();
    assert!(
        why.contains("one_hot") && why.contains("constraints[0]"),
        "{why}"
    );
}
