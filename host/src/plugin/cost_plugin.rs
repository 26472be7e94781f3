//! A cost-model plugin serving the engine's [`CostModel`], for components
//! of either WIT version. A 0.2 model is told the job, the node's budget
//! share and the devices, and its totals must add up unless it describes
//! itself as non-additive.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::bindings::{cost_model as wc, v0_2};
use super::convert;
use super::error::{PluginError, PluginFault};
use super::roles::{RolePlugin, invalid, role_plugin_identity};
use super::runtime::{Instance, LoadedPlugin, Runtime};
use super::world::{Role, WitVersion};
use crate::hardware::{PluginCeilings, PolicySpec, Weights};
use crate::model::graph::{NodeKind, Qos};
use crate::policy::{
    CostModel, CostTerms, DecisionContext, DecisionSituation, NativeCost, NodeSummary, PolicyFault,
    PolicyNotice, validate_costs,
};

/// Relative tolerance of `total` against the plain sum of the terms.
pub const ADDITIVE_TOLERANCE: f64 = 1e-9;

/// A cost-model plugin.
#[derive(Debug)]
pub struct PluginCost {
    inner: RolePlugin,
    scratch: Mutex<CostScratch>,
    /// Whether the serving model's totals are the sum of its terms (its
    /// `describe`; always for 0.1).
    additive: AtomicBool,
    /// Answers while the breaker is tripped.
    native: NativeCost,
}

/// The last decision in WIT form (both versions), reused across calls.
#[derive(Debug)]
struct CostScratch {
    node: Option<NodeSummary>,
    decision: wc::Decision,
    candidates: Vec<wc::Candidate>,
    node_v2: Option<NodeSummary>,
    decision_v2: v0_2::cost_model::Decision,
    candidates_v2: Vec<v0_2::cost_model::Candidate>,
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
    fn new(spec: &PolicySpec) -> Mutex<CostScratch> {
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
    fn fill_v1(&mut self, ctx: &DecisionContext) {
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
    fn fill_v2(&mut self, ctx: &DecisionContext) {
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

impl PluginCost {
    /// Loads the cost model at `path`; `watch` (a debounce interval) turns on hot reload.
    pub fn open(
        runtime: &'static Runtime,
        path: &Path,
        spec: PolicySpec,
        watch: Option<Duration>,
    ) -> Result<Self, PluginError> {
        Self::open_with(runtime, path, spec, &PluginCeilings::default(), watch)
    }

    /// Loads the cost model at `path` under the operator's `ceilings`.
    pub fn open_with(
        runtime: &'static Runtime,
        path: &Path,
        spec: PolicySpec,
        ceilings: &PluginCeilings,
        watch: Option<Duration>,
    ) -> Result<Self, PluginError> {
        Ok(PluginCost::serving(
            RolePlugin::open(runtime, Role::Cost, path, ceilings, watch)?,
            spec,
        ))
    }

    /// Serves an already loaded plugin (conformance runs, benchmarks).
    pub fn from_plugin(
        runtime: &'static Runtime,
        plugin: Arc<LoadedPlugin>,
        spec: PolicySpec,
    ) -> Self {
        PluginCost::serving(RolePlugin::from_plugin(runtime, Role::Cost, plugin), spec)
    }

    fn serving(inner: RolePlugin, spec: PolicySpec) -> Self {
        PluginCost {
            inner,
            scratch: CostScratch::new(&spec),
            additive: AtomicBool::new(true),
            native: NativeCost { policy: spec },
        }
    }

    /// One call of the serving instance, whichever its version.
    fn call(
        &self,
        i: &mut Instance,
        scratch: &mut CostScratch,
        ctx: &DecisionContext,
        out: &mut Vec<CostTerms>,
    ) -> Result<(), PluginFault> {
        let n = ctx.candidates.len();
        if i.plugin().version == Some(WitVersion::V0_2) {
            scratch.fill_v2(ctx);
            let costs = i.score_v2(&scratch.decision_v2, &scratch.candidates_v2)?;
            out.extend(costs.iter().map(convert::v2::cost_terms_back));
            validate_costs(out, n).map_err(invalid)?;
            let additive = i.additive()?;
            self.additive.store(additive, Ordering::Relaxed);
            if additive {
                check_additive(out).map_err(invalid)?;
            }
            return Ok(());
        }
        self.additive.store(true, Ordering::Relaxed);
        scratch.fill_v1(ctx);
        let costs = i.score(&scratch.decision, &scratch.candidates)?;
        out.extend(costs.iter().map(convert::cost_terms_back));
        validate_costs(out, n).map_err(invalid)
    }
}

impl CostModel for PluginCost {
    role_plugin_identity!();

    fn score(&self, ctx: &DecisionContext, out: &mut Vec<CostTerms>) -> Result<(), PolicyFault> {
        out.clear();
        let mut scratch = self.scratch.lock().expect("cost scratch");
        let answer = self.inner.call(|i| self.call(i, &mut scratch, ctx, out));
        match answer {
            // Tripped: the native model answers, quietly (the trip is traced once).
            Err(f) if f.kind == "tripped" => self.native.score(ctx, out),
            Err(f) => {
                out.clear();
                Err(f)
            }
            ok => ok,
        }
    }

    fn wants_situation(&self) -> bool {
        true
    }

    fn additive(&self) -> bool {
        self.additive.load(Ordering::Relaxed)
    }
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
