//! The native default policy gate as a plugin: provenance requirements,
//! then confidence thresholds (ESS, R-hat, constraint satisfaction) for the
//! request's risk class.

wit_bindgen::generate!({ path: "../../wit", world: "gate-plugin" });

use exports::thermoroute::policy::gate::{
    DiagnosticsLevel, EffectRequest, GateDecision, Guest, Thresholds,
};
use thermoroute::policy::types::{NodeKind, Risk};

struct Plugin;

fn class(risk: Risk) -> &'static str {
    match risk {
        Risk::Reversible => "reversible",
        Risk::Irreversible => "irreversible",
    }
}

impl Guest for Plugin {
    fn decide(request: EffectRequest, t: Thresholds) -> Result<GateDecision, String> {
        if t.require_provenance {
            let mut missing = Vec::new();
            if request.evidence.is_empty() {
                missing.push("the effect has no evidence".to_string());
            }
            for e in &request.evidence {
                let mut lacks = Vec::new();
                if e.backend.is_none() {
                    lacks.push("backend");
                }
                if e.output_hash.is_none() {
                    lacks.push("output hash");
                }
                if (e.input_hashes.len() as u64) < e.inputs {
                    lacks.push("input hashes");
                }
                if e.kind == Some(NodeKind::Sample) {
                    if e.schedule.is_none() {
                        lacks.push("schedule");
                    }
                    if e.program_hash.is_none() {
                        lacks.push("program hash");
                    }
                }
                if !lacks.is_empty() {
                    missing.push(format!(
                        "missing provenance from {:?}: {}",
                        e.node,
                        lacks.join(", ")
                    ));
                }
            }
            if !missing.is_empty() {
                return Ok(GateDecision::Deny(missing));
            }
        }
        let mut review = request.escalations.clone();
        if t.always_review {
            review.push(format!(
                "every {} effect needs approval",
                class(request.risk)
            ));
        }
        for e in request
            .evidence
            .iter()
            .filter(|e| e.kind == Some(NodeKind::Sample))
        {
            match e.min_ess_bulk {
                Some(ess) if ess >= t.min_ess => {}
                Some(ess) => review.push(format!(
                    "{:?}: min ESS {ess:.0} below {:.0}",
                    e.node, t.min_ess
                )),
                None if t.min_ess > 0.0 => review.push(format!(
                    "{:?}: ESS unknown (diagnostics {})",
                    e.node,
                    match e.diagnostics_level {
                        Some(DiagnosticsLevel::None) => "skipped under load",
                        _ => "undefined",
                    }
                )),
                None => {}
            }
            match e.max_rhat {
                Some(r) if r <= t.max_rhat => {}
                Some(r) => review.push(format!(
                    "{:?}: max R-hat {r:.3} above {:.3}",
                    e.node, t.max_rhat
                )),
                None => review.push(format!("{:?}: R-hat unknown", e.node)),
            }
            if let Some(rate) = e.constraint_rate
                && rate < t.min_constraint_rate
            {
                review.push(format!(
                    "{:?}: constraint satisfaction {rate:.3} below {:.3}",
                    e.node, t.min_constraint_rate
                ));
            }
        }
        Ok(if review.is_empty() {
            GateDecision::Allow
        } else {
            GateDecision::RequireReview(review)
        })
    }
}

export!(Plugin);
