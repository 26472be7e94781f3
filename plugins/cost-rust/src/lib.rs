//! The native default cost model as a plugin:
//! `wL*latency + wE*energy + wA*error + wR*risk_penalty`, where hardware
//! stochasticity carries a risk penalty for irreversible jobs only.

wit_bindgen::generate!({ path: "../../wit", world: "cost-plugin" });

use exports::thermoroute::policy::cost_model::{Candidate, CostTerms, Decision, Guest, ModelInfo};
use thermoroute::policy::types::{Risk, Target};

struct Plugin;

impl Guest for Plugin {
    /// The total below is the sum of the terms.
    fn describe() -> ModelInfo {
        ModelInfo { additive: true }
    }

    fn score(decision: Decision, candidates: Vec<Candidate>) -> Result<Vec<CostTerms>, String> {
        let w = decision.weights;
        Ok(candidates
            .iter()
            .map(|c| {
                let risk_penalty = match (decision.qos.risk, c.target) {
                    (Risk::Irreversible, Target::Tsu) => decision.penalties.tsu_irreversible,
                    (Risk::Irreversible, Target::GpuSim) => decision.penalties.gpu_sim_irreversible,
                    _ => 0.0,
                };
                let latency = w.latency * c.estimate.latency_p50_ms;
                let energy = w.energy * c.estimate.energy_j;
                let error = w.error * c.estimate.error;
                let risk = w.risk * risk_penalty;
                CostTerms {
                    latency,
                    energy,
                    error,
                    risk,
                    risk_penalty,
                    total: latency + energy + error + risk,
                }
            })
            .collect())
    }
}

export!(Plugin);
