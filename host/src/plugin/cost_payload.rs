//! What a cost-model plugin is told, in WIT form for either version, kept
//! between calls; and the check that a 0.2 model's totals add up.

use std::sync::Mutex;

use super::bindings::{cost_model as wc, v0_2};
use super::convert;
use crate::hardware::{PolicySpec, Weights};
use crate::model::graph::{NodeKind, Qos};
use crate::policy::{CostTerms, DecisionContext, DecisionSituation, NodeSummary};

/// Relative tolerance of `total` against the plain sum of the terms.
pub const ADDITIVE_TOLERANCE: f64 = 1e-9;

/// The last decision in WIT form (both versions), reused across calls.
#[derive(Debug)]
pub(super) struct CostScratch {
    pub(super) node: Option<NodeSummary>,
    pub(super) decision: wc::Decision,
    pub(super) candidates: Vec<wc::Candidate>,
    pub(super) node_v2: Option<NodeSummary>,
    pub(super) decision_v2: v0_2::cost_model::Decision,
    pub(super) candidates_v2: Vec<v0_2::cost_model::Candidate>,
}

fn empty_node() -> NodeSummary {
    NodeSummary {
        kind: NodeKind::Control,
        class: String::new(),
        flops: 0.0,
        bytes: 0.0,
        program: None,
    }
}

impl CostScratch {
    pub(super) fn new(spec: &PolicySpec) -> Mutex<CostScratch> {
        let situation = DecisionSituation::default();
        Mutex::new(CostScratch {
            node: None,
            decision: wc::Decision {
                node: convert::node(&empty_node()),
                qos: convert::qos(&Qos::default()),
                weights: convert::weights(&Weights::default()),
                penalties: convert::penalties(spec),
            },
            candidates: Vec::new(),
            node_v2: None,
            decision_v2: v0_2::cost_model::Decision {
                node: convert::v2::node(&empty_node()),
                node_id: String::new(),
                qos: convert::v2::qos(&Qos::default(), None),
                job: convert::v2::job(&situation.job),
                share: convert::v2::share(&situation.share),
                weights: convert::v2::weights(&Weights::default()),
                penalties: convert::v2::penalties(spec),
                devices: Vec::new(),
            },
            candidates_v2: Vec::new(),
        })
    }

    /// The 0.1 decision for `ctx`.
    pub(super) fn fill_v1(&mut self, ctx: &DecisionContext) {
        // Decisions repeat per node class: convert the node only when it changes.
        if self.node.as_ref() != Some(ctx.node) {
            self.decision.node = convert::node(ctx.node);
            self.node = Some(ctx.node.clone());
        }
        self.decision.qos = convert::qos(ctx.qos);
        self.decision.weights = convert::weights(ctx.weights);
        self.candidates.clear();
        self.candidates
            .extend(ctx.candidates.iter().map(convert::candidate));
    }

    /// The 0.2 decision for `ctx`: without a situation (conformance cases,
    /// benchmarks) the job and share are empty and no device is listed.
    pub(super) fn fill_v2(&mut self, ctx: &DecisionContext) {
        if self.node_v2.as_ref() != Some(ctx.node) {
            self.decision_v2.node = convert::v2::node(ctx.node);
            self.node_v2 = Some(ctx.node.clone());
        }
        let d = &mut self.decision_v2;
        let empty = DecisionSituation::default();
        let s = ctx.situation.unwrap_or(&empty);
        d.node_id.clone_from(&s.node_id);
        d.qos = convert::v2::qos(ctx.qos, s.job.energy_budget_j);
        d.job.id = s.job.id;
        d.job.class.clone_from(&s.job.class);
        d.job.arrival_ms = s.job.arrival_ms;
        d.job.now_ms = s.job.now_ms;
        d.job.energy_spent_j = s.job.energy_spent_j;
        d.job.energy_remaining_j = s.job.energy_remaining_j();
        d.share = convert::v2::share(&s.share);
        d.weights = convert::v2::weights(ctx.weights);
        d.devices.clear();
        d.devices.extend(s.devices.iter().map(convert::v2::device));
        self.candidates_v2.clear();
        self.candidates_v2
            .extend(ctx.candidates.iter().map(convert::v2::candidate));
    }
}

/// Rejects totals that are not the plain sum of their terms (relative
/// [`ADDITIVE_TOLERANCE`]).
pub fn check_additive(costs: &[CostTerms]) -> Result<(), String> {
    for (i, c) in costs.iter().enumerate() {
        let sum = c.latency + c.energy + c.error + c.risk;
        if (c.total - sum).abs() > ADDITIVE_TOLERANCE * c.total.abs().max(sum.abs()) {
            return Err(format!(
                "candidate {i}: total {} is not latency + energy + error + risk = {sum}; \
                 a model whose total is not that sum must say so (describe: additive = false)",
                c.total
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(l: f64, e: f64, a: f64, r: f64, total: f64) -> CostTerms {
        CostTerms {
            latency: l,
            energy: e,
            error: a,
            risk: r,
            risk_penalty: 0.0,
            total,
        }
    }

    #[test]
    fn totals_must_be_the_plain_sum_of_the_terms() {
        assert!(check_additive(&[terms(1.0, 2.0, 3.0, 4.0, 10.0)]).is_ok());
        assert!(check_additive(&[terms(0.0, 0.0, 0.0, 0.0, 0.0)]).is_ok());
        // Rounding is not a fault; a relative 1e-6 is.
        assert!(check_additive(&[terms(0.1, 0.2, 0.0, 0.0, 0.3)]).is_ok());
        let e = check_additive(&[
            terms(1.0, 1.0, 0.0, 0.0, 2.0),
            terms(1.0, 2.0, 3.0, 4.0, 10.00001),
        ])
        .unwrap_err();
        assert!(e.starts_with("candidate 1: total 10.00001"), "{e}");
        assert!(e.contains("additive = false"), "{e}");
    }
}
