//! The role calls of a live [`Instance`], one per exported function of
//! either package version. Cost-model `score` arguments go through this
//! host's own lowering (`fast_lower.rs`); the `_derived` twins use
//! wasmtime's, as the reference the tests compare against.

use super::bindings::{cost_model, eligibility, gate, v0_2};
use super::error::PluginFault;
use super::fast_lower::{self, v1};
use super::guests::Guests;
use super::runtime::Instance;

impl Instance {
    /// Calls the cost model's `score`.
    pub fn score(
        &mut self,
        decision: &cost_model::Decision,
        candidates: &[cost_model::Candidate],
    ) -> Result<Vec<cost_model::CostTerms>, PluginFault> {
        self.call(|live| {
            let Guests::V1 {
                cost: Some(guest), ..
            } = &live.guests
            else {
                return Err(wasmtime::Error::msg(
                    "does not export the cost model of 0.1.0",
                ));
            };
            v1::score(&mut live.store, guest, decision, candidates)
        })
    }

    /// [`Instance::score`] through wasmtime's derived lowering: the
    /// reference the fast lowering is tested against.
    #[doc(hidden)]
    pub fn score_derived(
        &mut self,
        decision: &cost_model::Decision,
        candidates: &[cost_model::Candidate],
    ) -> Result<Vec<cost_model::CostTerms>, PluginFault> {
        self.call(|live| match &live.guests {
            Guests::V1 {
                cost: Some(guest), ..
            } => guest.call_score(&mut live.store, decision, candidates),
            _ => Err(wasmtime::Error::msg(
                "does not export the cost model of 0.1.0",
            )),
        })
    }

    /// Calls the eligibility rules' `verdict`.
    pub fn verdict(
        &mut self,
        node: &super::bindings::types::NodeSummary,
        qos: super::bindings::types::Qos,
        target: super::bindings::types::Target,
        limits: eligibility::BackendLimits,
        context: eligibility::PolicyContext,
    ) -> Result<Vec<eligibility::Ineligible>, PluginFault> {
        self.call(|live| {
            let Guests::V1 {
                eligibility: Some(guest),
                ..
            } = &live.guests
            else {
                return Err(wasmtime::Error::msg("does not export eligibility of 0.1.0"));
            };
            guest.call_verdict(&mut live.store, node, qos, target, limits, context)
        })
    }

    /// Calls the gate's `decide`.
    pub fn decide(
        &mut self,
        request: &gate::EffectRequest,
        thresholds: gate::Thresholds,
    ) -> Result<gate::GateDecision, PluginFault> {
        self.call(|live| {
            let Guests::V1 {
                gate: Some(guest), ..
            } = &live.guests
            else {
                return Err(wasmtime::Error::msg("does not export the gate of 0.1.0"));
            };
            guest.call_decide(&mut live.store, request, thresholds)
        })
    }
}

/// Not exported (in this version): the call traps as a wasmtime error.
fn missing(what: &str) -> wasmtime::Error {
    wasmtime::Error::msg(format!(
        "does not export {what} of thermoroute:policy@0.2.0"
    ))
}

impl Instance {
    /// Calls a 0.2 cost model's `score`.
    pub fn score_v2(
        &mut self,
        decision: &v0_2::cost_model::Decision,
        candidates: &[v0_2::cost_model::Candidate],
    ) -> Result<Vec<v0_2::cost_model::CostTerms>, PluginFault> {
        self.call(|live| match &live.guests {
            Guests::V2 { cost: Some(g), .. } => {
                fast_lower::score(&mut live.store, g, decision, candidates)
            }
            _ => Err(missing("the cost model")),
        })
    }

    /// [`Instance::score_v2`] through wasmtime's derived lowering: the
    /// reference the fast lowering is tested against.
    #[doc(hidden)]
    pub fn score_v2_derived(
        &mut self,
        decision: &v0_2::cost_model::Decision,
        candidates: &[v0_2::cost_model::Candidate],
    ) -> Result<Vec<v0_2::cost_model::CostTerms>, PluginFault> {
        self.call(|live| match &live.guests {
            Guests::V2 { cost: Some(g), .. } => g.call_score(&mut live.store, decision, candidates),
            _ => Err(missing("the cost model")),
        })
    }

    /// Calls 0.2 eligibility rules' `verdict`.
    pub fn verdict_v2(
        &mut self,
        node: &v0_2::types::NodeSummary,
        qos: v0_2::types::Qos,
        job: &v0_2::types::JobContext,
        target: v0_2::types::Target,
        limits: v0_2::eligibility::BackendLimits,
        context: v0_2::eligibility::PolicyContext,
    ) -> Result<Vec<v0_2::eligibility::Ineligible>, PluginFault> {
        self.call(|live| match &live.guests {
            Guests::V2 {
                eligibility: Some(g),
                ..
            } => g.call_verdict(&mut live.store, node, qos, job, target, limits, context),
            _ => Err(missing("eligibility")),
        })
    }

    /// Calls a 0.2 gate's `decide`.
    pub fn decide_v2(
        &mut self,
        request: &v0_2::gate::EffectRequest,
        thresholds: v0_2::gate::Thresholds,
    ) -> Result<v0_2::gate::GateDecision, PluginFault> {
        self.call(|live| match &live.guests {
            Guests::V2 { gate: Some(g), .. } => g.call_decide(&mut live.store, request, thresholds),
            _ => Err(missing("the gate")),
        })
    }
}
