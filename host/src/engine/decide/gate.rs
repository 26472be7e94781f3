//! The gate step of an effect as a pure function: the gate's answer (or
//! its fault) and the fail-closed choice in, the decision and what the
//! effect node outputs out.

use serde_json::json;

use crate::hardware::FailClosed;
use crate::model::graph::{EffectSpec, Risk};
use crate::policy::{GateDecision, PolicyFault};
use crate::trace::NodeStatus;

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
/// held item's id, when a review queue took it.
pub fn effect_outcome(
    decision: &GateDecision,
    spec: &EffectSpec,
    review_id: Option<&str>,
) -> (NodeStatus, serde_json::Value) {
    let (action, risk): (&str, Risk) = (&spec.action, spec.risk);
    match decision {
        GateDecision::Allow => (
            NodeStatus::Completed,
            json!({ "action": action, "risk": risk, "applied": true }),
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

    #[test]
    fn outcomes_say_whether_the_effect_was_applied() {
        let spec = EffectSpec {
            action: "refund".into(),
            risk: Risk::Irreversible,
        };
        let (s, out) = effect_outcome(&GateDecision::Allow, &spec, None);
        assert_eq!(s, NodeStatus::Completed);
        assert_eq!(out["applied"], true);
        let held = GateDecision::RequireReview(vec!["ESS low".into()]);
        let (s, out) = effect_outcome(&held, &spec, Some("R0001"));
        assert_eq!(s, NodeStatus::Held);
        assert_eq!(out["held_for_review"], "R0001");
        assert_eq!(out["reasons"][0], "ESS low");
        let (s, out) = effect_outcome(&GateDecision::Deny(vec!["no".into()]), &spec, None);
        assert_eq!((s, &out["applied"]), (NodeStatus::Denied, &json!(false)));
        assert_eq!(out["risk"], "irreversible");
    }
}
