//! The gate step of an effect as pure functions: the gate's answer (or
//! its fault) and the fail-closed choice in, held to the host's floor, the
//! decision and what the effect node outputs out.

use serde_json::json;

use crate::hardware::{FailClosed, GateSpec, GateThresholds};
use crate::model::graph::{EffectSpec, Risk};
use crate::policy::{EffectRequest, GateDecision, PolicyFault, gate_verdict};
use crate::trace::NodeStatus;

/// The thresholds of the host's floor for a risk class: the hardware
/// file's, except that an irreversible effect always needs complete
/// provenance (backend, schedule, program, input and output hashes).
pub fn floor_thresholds(spec: &GateSpec, risk: Risk) -> GateThresholds {
    match risk {
        Risk::Reversible => spec.reversible.clone(),
        Risk::Irreversible => GateThresholds {
            require_provenance: true,
            ..spec.irreversible.clone()
        },
    }
}

/// The host's gate floor: what the native rules decide on this request's
/// evidence under [`floor_thresholds`]. No gate plugin can loosen it.
pub fn host_floor(request: &EffectRequest, spec: &GateSpec) -> GateDecision {
    gate_verdict(&floor_thresholds(spec, request.risk), request)
}

fn severity(d: &GateDecision) -> u8 {
    match d {
        GateDecision::Allow => 0,
        GateDecision::RequireReview(_) => 1,
        GateDecision::Deny(_) => 2,
    }
}

/// The gate's decision held to the floor: the stricter of the two stands (a
/// gate may tighten the floor, never loosen it). The second value is the
/// floor's reasons when it overrode the gate.
pub fn hold_to_floor(
    decision: GateDecision,
    floor: GateDecision,
) -> (GateDecision, Option<Vec<String>>) {
    if severity(&floor) <= severity(&decision) {
        return (decision, None);
    }
    let reasons = match &floor {
        GateDecision::RequireReview(r) | GateDecision::Deny(r) => r.clone(),
        GateDecision::Allow => Vec::new(),
    };
    let tagged: Vec<String> = reasons.iter().map(|r| format!("host floor: {r}")).collect();
    let held = match floor {
        GateDecision::Deny(_) => GateDecision::Deny(tagged),
        _ => GateDecision::RequireReview(tagged),
    };
    (held, Some(reasons))
}

/// The decision that stands for a gate's answer. A gate that cannot answer
/// never lets an effect through: its fault becomes a deny or a hold.
pub fn gate_decision(
    answer: Result<GateDecision, PolicyFault>,
    fail_closed: FailClosed,
) -> (GateDecision, Option<PolicyFault>) {
    match answer {
        Ok(decision) => (decision, None),
        Err(fault) => {
            let reason = format!("gate failed: {}", fault.reason);
            let decision = match fail_closed {
                FailClosed::Deny => GateDecision::Deny(vec![reason]),
                FailClosed::Review => GateDecision::RequireReview(vec![reason]),
            };
            (decision, Some(fault))
        }
    }
}

/// The effect node's status and output for a decision. `review_id` is the
/// held item's id, when a review queue took it. A `simulated` run's
/// evidence is made up, so an allowed effect is only a would-be decision:
/// it is never applied.
pub fn effect_outcome(
    decision: &GateDecision,
    spec: &EffectSpec,
    review_id: Option<&str>,
    simulated: bool,
) -> (NodeStatus, serde_json::Value) {
    let (action, risk): (&str, Risk) = (&spec.action, spec.risk);
    match decision {
        GateDecision::Allow if simulated => (
            NodeStatus::Completed,
            json!({ "action": action, "risk": risk, "applied": false, "would_apply": true, "simulated": true }),
        ),
        GateDecision::Allow => (
            NodeStatus::Completed,
            json!({ "action": action, "risk": risk, "applied": true }),
        ),
        GateDecision::RequireReview(reasons) if simulated => (
            NodeStatus::Held,
            json!({ "action": action, "risk": risk, "applied": false, "would_hold": true, "held_for_review": review_id, "reasons": reasons, "simulated": true }),
        ),
        GateDecision::RequireReview(reasons) => (
            NodeStatus::Held,
            json!({ "action": action, "risk": risk, "applied": false, "held_for_review": review_id, "reasons": reasons }),
        ),
        GateDecision::Deny(reasons) => (
            NodeStatus::Denied,
            json!({ "action": action, "risk": risk, "applied": false, "denied": reasons }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault() -> PolicyFault {
        PolicyFault {
            policy: "g".into(),
            reason: "trap".into(),
            kind: "trap".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_faulty_gate_fails_closed() {
        let (d, f) = gate_decision(Err(fault()), FailClosed::Deny);
        assert_eq!(d, GateDecision::Deny(vec!["gate failed: trap".into()]));
        assert!(f.is_some());
        let (d, _) = gate_decision(Err(fault()), FailClosed::Review);
        assert_eq!(
            d,
            GateDecision::RequireReview(vec!["gate failed: trap".into()])
        );
        let (d, f) = gate_decision(Ok(GateDecision::Allow), FailClosed::Deny);
        assert_eq!((d, f.is_none()), (GateDecision::Allow, true));
    }

    fn request(risk: Risk, evidence: Vec<crate::policy::Evidence>) -> EffectRequest {
        EffectRequest {
            node: "act".into(),
            action: "refund".into(),
            risk,
            priority: crate::model::graph::Priority::Interactive,
            evidence,
            escalations: vec![],
        }
    }

    #[test]
    fn the_floor_denies_an_irreversible_effect_without_provenance() {
        let spec = GateSpec::default();
        assert!(matches!(
            host_floor(&request(Risk::Irreversible, vec![]), &spec),
            GateDecision::Deny(_)
        ));
        // Even where the hardware file waives provenance for irreversible effects.
        let mut lax = spec.clone();
        lax.irreversible.require_provenance = false;
        let bare = crate::policy::Evidence {
            node: "s".into(),
            kind: Some(crate::model::graph::NodeKind::Sample),
            backend: Some("tsu".into()),
            inputs: 1,
            ..Default::default()
        };
        let d = host_floor(&request(Risk::Irreversible, vec![bare]), &lax);
        let GateDecision::Deny(r) = d else {
            panic!("{d:?}")
        };
        assert!(
            r[0].contains("output hash") && r[0].contains("schedule"),
            "{r:?}"
        );
    }

    #[test]
    fn a_gate_tightens_the_floor_but_never_loosens_it() {
        let deny = GateDecision::Deny(vec!["no evidence".into()]);
        let review = GateDecision::RequireReview(vec!["ESS low".into()]);
        let (d, over) = hold_to_floor(GateDecision::Allow, deny.clone());
        assert_eq!(
            d,
            GateDecision::Deny(vec!["host floor: no evidence".into()])
        );
        assert_eq!(over, Some(vec!["no evidence".into()]));
        let (d, over) = hold_to_floor(GateDecision::Allow, review.clone());
        assert!(matches!(d, GateDecision::RequireReview(_)) && over.is_some());
        let (d, over) = hold_to_floor(review.clone(), deny.clone());
        assert!(matches!(d, GateDecision::Deny(_)) && over.is_some());
        // Stricter or equal gates stand as they are.
        let mine = GateDecision::Deny(vec!["mine".into()]);
        assert_eq!(hold_to_floor(mine.clone(), review.clone()), (mine, None));
        assert_eq!(
            hold_to_floor(review.clone(), review.clone()),
            (review, None)
        );
        assert_eq!(
            hold_to_floor(GateDecision::Allow, GateDecision::Allow),
            (GateDecision::Allow, None)
        );
    }

    #[test]
    fn a_simulated_allow_is_a_would_be_decision() {
        let spec = EffectSpec {
            action: "refund".into(),
            risk: Risk::Reversible,
        };
        let (s, out) = effect_outcome(&GateDecision::Allow, &spec, None, true);
        assert_eq!(s, NodeStatus::Completed);
        assert_eq!(
            (&out["applied"], &out["would_apply"]),
            (&json!(false), &json!(true))
        );
    }

    #[test]
    fn outcomes_say_whether_the_effect_was_applied() {
        let spec = EffectSpec {
            action: "refund".into(),
            risk: Risk::Irreversible,
        };
        let (s, out) = effect_outcome(&GateDecision::Allow, &spec, None, false);
        assert_eq!(s, NodeStatus::Completed);
        assert_eq!(out["applied"], true);
        let held = GateDecision::RequireReview(vec!["ESS low".into()]);
        let (s, out) = effect_outcome(&held, &spec, Some("R0001"), false);
        assert_eq!(s, NodeStatus::Held);
        assert_eq!(out["held_for_review"], "R0001");
        assert_eq!(out["reasons"][0], "ESS low");
        let (s, out) = effect_outcome(&GateDecision::Deny(vec!["no".into()]), &spec, None, false);
        assert_eq!((s, &out["applied"]), (NodeStatus::Denied, &json!(false)));
        assert_eq!(out["risk"], "irreversible");
    }
}
