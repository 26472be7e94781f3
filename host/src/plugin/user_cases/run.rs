//! Running user cases against the policy traits and judging the answers.

use serde_json::{Value, json};

use super::{CaseKind, FaultExpect, GateWord, TermsExpect, UserCase, UserCaseResult, guest_output};
use crate::device::Target;
use crate::hardware::Hardware;
use crate::policy::{
    BackendLimits, CostModel, CostTerms, DecisionContext, Eligibility, EligibilityQuery, Gate,
    GateDecision, Ineligible, PolicyFault,
};

/// A fresh policy per case for each role the component exports (`None`:
/// it does not export the role, and that role's cases fail).
pub struct CaseRoles<'a> {
    /// Makes the cost model.
    pub cost: Option<&'a dyn Fn() -> Box<dyn CostModel>>,
    /// Makes the eligibility rules.
    pub eligibility: Option<&'a dyn Fn() -> Box<dyn Eligibility>>,
    /// Makes the gate.
    pub gate: Option<&'a dyn Fn() -> Box<dyn Gate>>,
}

impl std::fmt::Debug for CaseRoles<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaseRoles")
            .field("cost", &self.cost.is_some())
            .field("eligibility", &self.eligibility.is_some())
            .field("gate", &self.gate.is_some())
            .finish()
    }
}

fn fault_json(f: &PolicyFault) -> Value {
    json!({ "fault": { "kind": f.kind, "reason": f.reason, "policy": f.policy } })
}

/// Judges a faulting call: a pass if the case expected that fault.
fn on_fault(expect: &Option<FaultExpect>, f: &PolicyFault) -> Result<(), String> {
    match expect {
        Some(FaultExpect::Any) => Ok(()),
        Some(FaultExpect::Kind(k)) if *k == f.kind => Ok(()),
        Some(FaultExpect::Kind(k)) => Err(format!(
            "faulted with {} ({}), expected a {k} fault",
            f.kind, f.reason
        )),
        None => Err(format!("the call faulted ({}): {}", f.kind, f.reason)),
    }
}

fn expected_fault(expect: &Option<FaultExpect>) -> Result<(), String> {
    match expect {
        None => Ok(()),
        Some(FaultExpect::Any) => Err("answered, but the case expects a fault".into()),
        Some(FaultExpect::Kind(k)) => Err(format!("answered, but the case expects a {k} fault")),
    }
}

fn close(actual: f64, expected: f64, tol: f64) -> bool {
    (actual - expected).abs() <= tol * expected.abs().max(1.0)
}

fn check_terms(t: Target, got: &CostTerms, e: &TermsExpect, tol: f64) -> Vec<String> {
    let fields = [
        ("total", got.total, e.total),
        ("latency", got.latency, e.latency),
        ("energy", got.energy, e.energy),
        ("error", got.error, e.error),
        ("risk", got.risk, e.risk),
        ("risk_penalty", got.risk_penalty, e.risk_penalty),
    ];
    fields
        .into_iter()
        .filter_map(|(name, a, want)| {
            let want = want?;
            (!close(a, want, tol)).then(|| format!("{t}.{name} is {a}, expected {want}"))
        })
        .collect()
}

fn run_cost(
    model: &dyn CostModel,
    kind: &CaseKind,
    hw: &Hardware,
) -> (Result<(), String>, Value, Option<String>) {
    let CaseKind::Cost {
        node,
        qos,
        weights,
        candidates,
        best,
        order,
        terms,
        tolerance,
        fault,
    } = kind
    else {
        unreachable!("a cost case")
    };
    let weights = weights.unwrap_or(hw.weights);
    let ctx = DecisionContext {
        node,
        qos,
        weights: &weights,
        candidates,
        situation: None,
    };
    let mut out = Vec::new();
    if let Err(f) = model.score(&ctx, &mut out).and_then(|()| {
        crate::policy::validate_costs(&out, candidates.len()).map_err(|reason| PolicyFault {
            policy: model.name().into(),
            reason,
            kind: "invalid_output".into(),
            ..PolicyFault::default()
        })
    }) {
        return (on_fault(fault, &f), fault_json(&f), guest_output(&f));
    }
    let mut ranked: Vec<usize> = (0..out.len()).collect();
    ranked.sort_by(|&a, &b| out[a].total.total_cmp(&out[b].total));
    let actual_best = ranked.first().map(|&i| candidates[i].target);
    let actual_order: Vec<Target> = ranked.iter().map(|&i| candidates[i].target).collect();
    let actual = json!({
        "best": actual_best,
        "order": actual_order,
        "costs": candidates.iter().zip(&out).map(|(c, t)| json!({
            "target": c.target,
            "total": t.total,
            "latency": t.latency,
            "energy": t.energy,
            "error": t.error,
            "risk": t.risk,
            "risk_penalty": t.risk_penalty,
        })).collect::<Vec<_>>(),
    });
    let mut problems = Vec::new();
    if let Err(e) = expected_fault(fault) {
        problems.push(e);
    }
    if let Some(b) = best
        && actual_best != Some(*b)
    {
        problems.push(format!(
            "best is {}, expected {b}",
            actual_best.map_or("none".into(), |t| t.to_string())
        ));
    }
    if let Some(o) = order
        && !actual_order.starts_with(o)
    {
        let names = |ts: &[Target]| {
            ts.iter()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
                .join(" < ")
        };
        problems.push(format!(
            "order is {}, expected {}",
            names(&actual_order),
            names(o)
        ));
    }
    for (t, e) in terms {
        let i = candidates
            .iter()
            .position(|c| c.target == *t)
            .expect("checked when parsed");
        problems.extend(check_terms(*t, &out[i], e, *tolerance));
    }
    (joined(problems), actual, None)
}

fn joined(problems: Vec<String>) -> Result<(), String> {
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The tag of a reason (`unsupported_node_kind`, …).
fn reason_kind(r: &Ineligible) -> String {
    serde_json::to_value(r)
        .ok()
        .and_then(|v| v.get("reason").and_then(|k| k.as_str()).map(String::from))
        .unwrap_or_default()
}

fn run_eligibility(
    rules: &dyn Eligibility,
    kind: &CaseKind,
    hw: &Hardware,
) -> (Result<(), String>, Value, Option<String>) {
    let CaseKind::Eligibility {
        node,
        qos,
        target,
        limits,
        eligible,
        reasons,
        reason_contains,
        fault,
    } = kind
    else {
        unreachable!("an eligibility case")
    };
    let limits = limits
        .clone()
        .unwrap_or_else(|| BackendLimits::of(*target, hw));
    let answer = rules.verdict(&EligibilityQuery {
        node,
        qos,
        target: *target,
        limits: &limits,
        job: None,
    });
    let got = match answer {
        Ok(r) => r,
        Err(f) => return (on_fault(fault, &f), fault_json(&f), guest_output(&f)),
    };
    let kinds: Vec<String> = got.iter().map(reason_kind).collect();
    let texts: Vec<String> = got.iter().map(|r| r.to_string()).collect();
    let actual = json!({ "eligible": got.is_empty(), "reasons": got, "texts": texts });
    let mut problems = Vec::new();
    if let Err(e) = expected_fault(fault) {
        problems.push(e);
    }
    if let Some(want) = eligible
        && got.is_empty() != *want
    {
        problems.push(if *want {
            format!("ineligible ({}), expected eligible", texts.join("; "))
        } else {
            "eligible, expected ineligible".into()
        });
    }
    if let Some(want) = reasons {
        let (mut a, mut w) = (kinds.clone(), want.clone());
        a.sort();
        w.sort();
        if a != w {
            problems.push(format!(
                "reasons are [{}], expected [{}]",
                kinds.join(", "),
                want.join(", ")
            ));
        }
    }
    if let Some(s) = reason_contains
        && !texts.iter().any(|t| t.contains(s.as_str()))
    {
        problems.push(format!("no reason contains {s:?}"));
    }
    (joined(problems), actual, None)
}

fn run_gate(gate: &dyn Gate, kind: &CaseKind) -> (Result<(), String>, Value, Option<String>) {
    let CaseKind::Gate {
        request,
        decision,
        reasons_contain,
        fault,
    } = kind
    else {
        unreachable!("a gate case")
    };
    let got = match gate.decide(request) {
        Ok(d) => d,
        Err(f) => return (on_fault(fault, &f), fault_json(&f), guest_output(&f)),
    };
    let (word, reasons): (&str, &[String]) = match &got {
        GateDecision::Allow => ("allow", &[]),
        GateDecision::RequireReview(r) => ("hold", r),
        GateDecision::Deny(r) => ("deny", r),
    };
    let actual = json!({ "decision": word, "reasons": reasons });
    let mut problems = Vec::new();
    if let Err(e) = expected_fault(fault) {
        problems.push(e);
    }
    if let Some(want) = decision {
        let want_word = match want {
            GateWord::Allow => "allow",
            GateWord::Hold => "hold",
            GateWord::Deny => "deny",
        };
        if want_word != word {
            problems.push(format!("decided {word}, expected {want_word}"));
        }
    }
    if let Some(s) = reasons_contain
        && !reasons.iter().any(|r| r.contains(s.as_str()))
    {
        problems.push(format!("no reason contains {s:?}"));
    }
    (joined(problems), actual, None)
}

/// Runs every case on a fresh policy of its role (`hw` supplies the
/// weights and limits a case leaves out).
pub fn run_cases(cases: &[UserCase], roles: &CaseRoles<'_>, hw: &Hardware) -> Vec<UserCaseResult> {
    cases
        .iter()
        .map(|case| {
            let missing = || {
                (
                    Err(format!(
                        "the component does not export the {} role",
                        case.role()
                    )),
                    Value::Null,
                    None,
                )
            };
            let (outcome, actual, guest) = match &case.kind {
                CaseKind::Cost { .. } => match roles.cost {
                    Some(make) => run_cost(make().as_ref(), &case.kind, hw),
                    None => missing(),
                },
                CaseKind::Eligibility { .. } => match roles.eligibility {
                    Some(make) => run_eligibility(make().as_ref(), &case.kind, hw),
                    None => missing(),
                },
                CaseKind::Gate { .. } => match roles.gate {
                    Some(make) => run_gate(make().as_ref(), &case.kind),
                    None => missing(),
                },
            };
            UserCaseResult {
                line: case.line,
                role: case.role(),
                name: case.name.clone(),
                passed: outcome.is_ok(),
                detail: outcome.err().unwrap_or_default(),
                input: case.input.clone(),
                expected: case.expect.clone(),
                actual,
                guest_output: guest,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::parse_cases;
    use super::*;
    use crate::policy::{NativeCost, NativeEligibility, NativeGate};
    use std::path::Path;

    fn native_roles(hw: &Hardware, f: impl FnOnce(&CaseRoles<'_>)) {
        let cost = || -> Box<dyn CostModel> {
            Box::new(NativeCost {
                policy: hw.policy.clone(),
            })
        };
        let elig = || -> Box<dyn Eligibility> {
            Box::new(NativeEligibility {
                policy: hw.policy.clone(),
            })
        };
        let gate = || -> Box<dyn Gate> {
            Box::new(NativeGate {
                spec: hw.gate.clone(),
            })
        };
        f(&CaseRoles {
            cost: Some(&cost),
            eligibility: Some(&elig),
            gate: Some(&gate),
        });
    }

    #[test]
    fn native_policies_pass_true_cases_and_fail_false_ones() {
        let hw = Hardware::default();
        let text = concat!(
            r#"{"role":"cost","name":"cheapest","input":{"node":{"kind":"tensor"},"candidates":[{"target":"gpu","estimate":{"latency_p50_ms":5}},{"target":"cpu","estimate":{"latency_p50_ms":1}}]},"expect":{"best":"cpu","order":["cpu","gpu"],"terms":{"cpu":{"latency":1,"total":1}}}}"#,
            "\n",
            r#"{"role":"cost","name":"wrong","input":{"node":{"kind":"tensor"},"candidates":[{"target":"gpu","estimate":{"latency_p50_ms":5}},{"target":"cpu","estimate":{"latency_p50_ms":1}}]},"expect":{"best":"gpu","terms":{"gpu":{"total":4}}}}"#,
            "\n",
            r#"{"role":"eligibility","name":"tensor on tsu","input":{"node":{"kind":"tensor"},"target":"tsu"},"expect":{"eligible":false,"reasons":["unsupported_node_kind"]}}"#,
            "\n",
            r#"{"role":"gate","name":"bare irreversible","input":{"risk":"irreversible"},"expect":{"decision":"allow"}}"#,
            "\n",
            r#"{"role":"gate","name":"faults?","input":{},"expect":{"fault":true}}"#,
        );
        let cases = parse_cases(Path::new("c.jsonl"), text, &hw).unwrap();
        native_roles(&hw, |roles| {
            let r = run_cases(&cases, roles, &hw);
            assert!(r[0].passed, "{:?}", r[0]);
            assert!(!r[1].passed);
            assert!(
                r[1].detail.contains("best is cpu, expected gpu"),
                "{}",
                r[1].detail
            );
            assert!(
                r[1].detail.contains("gpu.total is 5, expected 4"),
                "{}",
                r[1].detail
            );
            assert_eq!(r[1].actual["best"], "cpu");
            assert!(r[2].passed, "{:?}", r[2]);
            assert!(!r[3].passed);
            assert!(r[3].detail.starts_with("decided deny"), "{}", r[3].detail);
            assert!(!r[4].passed);
            assert!(r[4].detail.contains("expects a fault"), "{}", r[4].detail);
        });
        let none = CaseRoles {
            cost: None,
            eligibility: None,
            gate: None,
        };
        let r = run_cases(&cases[..1], &none, &hw);
        assert!(r[0].detail.contains("does not export the cost role"));
    }
}
