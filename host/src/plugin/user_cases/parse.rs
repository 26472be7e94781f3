//! Reading a cases file: every line checked before anything runs, each
//! problem named with its line and field path.

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CaseKind, CasesError, FaultExpect, GateWord, TermsExpect, UserCase};
use crate::device::Target;
use crate::hardware::{Hardware, Weights};
use crate::model::graph::{NodeKind, Priority, Qos, Risk};
use crate::policy::{
    BackendLimits, CandidateInput, EffectRequest, Estimate, Evidence, NodeSummary, ProgramSummary,
};

/// Most cases one file may hold.
const MAX_CASES: usize = 10_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLine {
    role: String,
    name: String,
    input: Value,
    expect: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNode {
    kind: NodeKind,
    #[serde(default)]
    class: String,
    #[serde(default)]
    flops: f64,
    #[serde(default)]
    bytes: f64,
    #[serde(default)]
    program: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCandidate {
    target: Target,
    #[serde(default)]
    estimate: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCostInput {
    node: RawNode,
    #[serde(default)]
    qos: Qos,
    #[serde(default)]
    weights: Option<Weights>,
    candidates: Vec<RawCandidate>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEligibilityInput {
    node: RawNode,
    #[serde(default)]
    qos: Qos,
    target: Target,
    #[serde(default)]
    limits: Option<Value>,
}

fn effect() -> String {
    "effect".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateInput {
    #[serde(default = "effect")]
    node: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    risk: Risk,
    #[serde(default)]
    priority: Priority,
    #[serde(default)]
    evidence: Vec<Value>,
    #[serde(default)]
    escalations: Vec<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawFault {
    Flag(bool),
    Kind(String),
}

fn default_tolerance() -> f64 {
    1e-9
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCostExpect {
    best: Option<Target>,
    order: Option<Vec<Target>>,
    terms: Option<BTreeMap<String, TermsExpect>>,
    #[serde(default = "default_tolerance")]
    tolerance: f64,
    fault: Option<RawFault>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEligibilityExpect {
    eligible: Option<bool>,
    reasons: Option<Vec<String>>,
    reason_contains: Option<String>,
    fault: Option<RawFault>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateExpect {
    decision: Option<String>,
    reasons_contain: Option<String>,
    fault: Option<RawFault>,
}

/// `v` as a `T`, the error naming the field path under `what`.
fn typed<T: DeserializeOwned>(what: &str, v: &Value) -> Result<T, String> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            format!("{what}: {}", e.inner())
        } else {
            format!("{what}.{path}: {}", e.inner())
        }
    })
}

/// `given` laid over `base`: the fields written replace the defaults; a
/// field the record does not have is an error.
fn overlay<T: Serialize + DeserializeOwned>(
    what: &str,
    base: T,
    given: Option<&Value>,
) -> Result<T, String> {
    let Some(given) = given.filter(|v| !v.is_null()) else {
        return Ok(base);
    };
    let Value::Object(fields) = given else {
        return Err(format!("{what}: expected an object, found {given}"));
    };
    let mut merged = serde_json::to_value(&base).map_err(|e| format!("{what}: {e}"))?;
    let Value::Object(known) = &mut merged else {
        return Err(format!("{what}: not a record"));
    };
    let names: Vec<String> = known.keys().cloned().collect();
    for (k, v) in fields {
        known.insert(k.clone(), v.clone());
    }
    let value: T = typed(what, &merged)?;
    // A field neither in the defaults nor read back is not one of the record's.
    let back = serde_json::to_value(&value).map_err(|e| format!("{what}: {e}"))?;
    for (k, v) in fields {
        let read = back.get(k).is_some() || names.contains(k);
        if !read && !matches!(v, Value::Null | Value::Bool(false)) {
            return Err(format!(
                "{what}.{k}: unknown field (the record has: {})",
                names.join(", ")
            ));
        }
    }
    Ok(value)
}

fn node(what: &str, raw: RawNode) -> Result<NodeSummary, String> {
    let program = match raw.program {
        None | Some(Value::Null) => None,
        Some(p) => Some(overlay(
            &format!("{what}.program"),
            ProgramSummary::default(),
            Some(&p),
        )?),
    };
    Ok(NodeSummary {
        kind: raw.kind,
        class: raw.class,
        flops: raw.flops,
        bytes: raw.bytes,
        program,
    })
}

fn fault(raw: Option<RawFault>) -> Option<FaultExpect> {
    match raw? {
        RawFault::Flag(false) => None,
        RawFault::Flag(true) => Some(FaultExpect::Any),
        RawFault::Kind(k) => Some(FaultExpect::Kind(k)),
    }
}

fn target_named(what: &str, name: &str) -> Result<Target, String> {
    serde_json::from_value(Value::String(name.into()))
        .map_err(|_| format!("{what}: {name:?} is not a target (cpu, gpu, tsu, gpu-sim, cpu-ref)"))
}

fn cost_case(input: &Value, expect: &Value) -> Result<CaseKind, String> {
    let raw: RawCostInput = typed("input", input)?;
    let mut candidates = Vec::with_capacity(raw.candidates.len());
    for (i, c) in raw.candidates.into_iter().enumerate() {
        let estimate = overlay(
            &format!("input.candidates[{i}].estimate"),
            Estimate::default(),
            c.estimate.as_ref(),
        )?;
        candidates.push(CandidateInput {
            target: c.target,
            estimate,
        });
    }
    let e: RawCostExpect = typed("expect", expect)?;
    let present = |t: Target, what: &str| -> Result<(), String> {
        if candidates.iter().any(|c| c.target == t) {
            Ok(())
        } else {
            Err(format!("{what}: {t} is not among the input's candidates"))
        }
    };
    if let Some(b) = e.best {
        present(b, "expect.best")?;
    }
    for t in e.order.iter().flatten() {
        present(*t, "expect.order")?;
    }
    let mut terms = Vec::new();
    for (name, t) in e.terms.into_iter().flatten() {
        let what = format!("expect.terms.{name}");
        let target = target_named(&what, &name)?;
        present(target, &what)?;
        terms.push((target, t));
    }
    if !(e.tolerance.is_finite() && e.tolerance >= 0.0) {
        return Err(format!(
            "expect.tolerance: {} (give a number >= 0)",
            e.tolerance
        ));
    }
    let fault = fault(e.fault);
    let checks = usize::from(e.best.is_some()) + usize::from(e.order.is_some()) + terms.len();
    check_count("best, order or terms", checks, fault.is_some())?;
    Ok(CaseKind::Cost {
        node: node("input.node", raw.node)?,
        qos: raw.qos,
        weights: raw.weights,
        candidates,
        best: e.best,
        order: e.order,
        terms,
        tolerance: e.tolerance,
        fault,
    })
}

/// A case checks something, and a fault expectation stands alone.
fn check_count(names: &str, checks: usize, fault: bool) -> Result<(), String> {
    match (checks, fault) {
        (0, false) => Err(format!(
            "expect: names nothing to check (give {names}, or fault)"
        )),
        (n, true) if n > 0 => Err(format!(
            "expect: fault excludes {names} (a faulting call answers nothing)"
        )),
        _ => Ok(()),
    }
}

fn eligibility_case(input: &Value, expect: &Value, hw: &Hardware) -> Result<CaseKind, String> {
    let raw: RawEligibilityInput = typed("input", input)?;
    let limits = match raw.limits {
        None => None,
        Some(l) => Some(overlay(
            "input.limits",
            BackendLimits::of(raw.target, hw),
            Some(&l),
        )?),
    };
    let e: RawEligibilityExpect = typed("expect", expect)?;
    let fault = fault(e.fault);
    let checks = usize::from(e.eligible.is_some())
        + usize::from(e.reasons.is_some())
        + usize::from(e.reason_contains.is_some());
    check_count(
        "eligible, reasons or reason_contains",
        checks,
        fault.is_some(),
    )?;
    if e.eligible == Some(true) && e.reasons.as_ref().is_some_and(|r| !r.is_empty()) {
        return Err("expect: eligible true with reasons (an eligible target has none)".into());
    }
    Ok(CaseKind::Eligibility {
        node: node("input.node", raw.node)?,
        qos: raw.qos,
        target: raw.target,
        limits,
        eligible: e.eligible,
        reasons: e.reasons,
        reason_contains: e.reason_contains,
        fault,
    })
}

fn gate_case(input: &Value, expect: &Value) -> Result<CaseKind, String> {
    let raw: RawGateInput = typed("input", input)?;
    let mut evidence = Vec::with_capacity(raw.evidence.len());
    for (i, e) in raw.evidence.iter().enumerate() {
        evidence.push(overlay(
            &format!("input.evidence[{i}]"),
            Evidence::default(),
            Some(e),
        )?);
    }
    let e: RawGateExpect = typed("expect", expect)?;
    let decision = match e.decision.as_deref() {
        None => None,
        Some("allow") => Some(GateWord::Allow),
        Some("hold" | "review" | "require_review") => Some(GateWord::Hold),
        Some("deny") => Some(GateWord::Deny),
        Some(other) => {
            return Err(format!(
                "expect.decision: {other:?} (give allow, hold or deny)"
            ));
        }
    };
    let fault = fault(e.fault);
    let checks = usize::from(decision.is_some()) + usize::from(e.reasons_contain.is_some());
    check_count("decision or reasons_contain", checks, fault.is_some())?;
    Ok(CaseKind::Gate {
        request: EffectRequest {
            node: raw.node,
            action: raw.action,
            risk: raw.risk,
            priority: raw.priority,
            evidence,
            escalations: raw.escalations,
        },
        decision,
        reasons_contain: e.reasons_contain,
        fault,
    })
}

/// One line's case.
fn case_of(text: &str, hw: &Hardware) -> Result<(String, Value, Value, CaseKind), String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not a JSON object: {e}"))?;
    if !value.is_object() {
        return Err(format!("expected a JSON object, found {value}"));
    }
    let raw: RawLine = typed("case", &value)?;
    if raw.name.trim().is_empty() {
        return Err("name: empty (name the case)".into());
    }
    if !raw.input.is_object() {
        return Err(format!("input: expected an object, found {}", raw.input));
    }
    if !raw.expect.is_object() {
        return Err(format!("expect: expected an object, found {}", raw.expect));
    }
    let kind = match raw.role.as_str() {
        "cost" => cost_case(&raw.input, &raw.expect)?,
        "eligibility" => eligibility_case(&raw.input, &raw.expect, hw)?,
        "gate" => gate_case(&raw.input, &raw.expect)?,
        other => {
            return Err(format!("role: {other:?} (give cost, eligibility or gate)"));
        }
    };
    Ok((raw.name, raw.input, raw.expect, kind))
}

/// Parses the text of a cases file (`file` names it in errors); `hw`
/// supplies defaults (a target's limits). Blank lines and lines starting
/// with `#` are skipped. The first bad line is the error.
pub fn parse_cases(file: &Path, text: &str, hw: &Hardware) -> Result<Vec<UserCase>, CasesError> {
    let mut cases = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let error = |reason: String| CasesError::Line {
            file: file.into(),
            line: i + 1,
            reason,
        };
        if cases.len() == MAX_CASES {
            return Err(error(format!("more than {MAX_CASES} cases in one file")));
        }
        let (name, input, expect, kind) = case_of(t, hw).map_err(error)?;
        cases.push(UserCase {
            line: i + 1,
            name,
            input,
            expect,
            kind,
        });
    }
    if cases.is_empty() {
        return Err(CasesError::Empty { file: file.into() });
    }
    Ok(cases)
}

/// Reads and parses a cases file.
pub fn read_cases(file: &Path, hw: &Hardware) -> Result<Vec<UserCase>, CasesError> {
    let text = std::fs::read_to_string(file).map_err(|source| CasesError::Read {
        file: file.into(),
        source,
    })?;
    parse_cases(file, &text, hw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<UserCase>, CasesError> {
        parse_cases(Path::new("c.jsonl"), text, &Hardware::default())
    }

    fn line_error(text: &str) -> (usize, String) {
        match parse(text) {
            Err(CasesError::Line { line, reason, .. }) => (line, reason),
            other => panic!("{other:?}"),
        }
    }

    const COST: &str = r#"{"role":"cost","name":"c","input":{"node":{"kind":"sample","program":{"n_vars":8}},"candidates":[{"target":"tsu","estimate":{"latency_p50_ms":2}},{"target":"cpu-ref"}]},"expect":{"best":"cpu-ref","terms":{"tsu":{"latency":2}}}}"#;

    #[test]
    fn a_cost_case_defaults_what_it_leaves_out() {
        let cases = parse(&format!("# a comment\n\n{COST}\n")).unwrap();
        assert_eq!(cases.len(), 1);
        assert_eq!(cases[0].line, 3);
        let CaseKind::Cost {
            node,
            candidates,
            best,
            terms,
            tolerance,
            ..
        } = &cases[0].kind
        else {
            panic!()
        };
        assert_eq!(node.program.as_ref().unwrap().n_vars, 8);
        assert_eq!(candidates[0].estimate.latency_p50_ms, 2.0);
        assert_eq!(candidates[1].estimate, Estimate::default());
        assert_eq!(*best, Some(Target::CpuRef));
        assert_eq!(terms[0].0, Target::Tsu);
        assert_eq!(*tolerance, 1e-9);
    }

    #[test]
    fn bad_lines_are_named_with_their_line_and_field() {
        let (line, reason) = line_error(&format!("{COST}\nnot json\n"));
        assert_eq!(line, 2);
        assert!(reason.starts_with("not a JSON object"), "{reason}");
        let (_, reason) = line_error(&COST.replace("\"role\":\"cost\"", "\"role\":\"costs\""));
        assert!(reason.contains("role: \"costs\""), "{reason}");
        let (_, reason) = line_error(&COST.replace("latency_p50_ms", "latency_ms"));
        assert!(
            reason.contains("input.candidates[0].estimate.latency_ms: unknown field"),
            "{reason}"
        );
        let (_, reason) = line_error(&COST.replace("\"best\":\"cpu-ref\"", "\"best\":\"gpu\""));
        assert!(reason.contains("expect.best: gpu is not among"), "{reason}");
        let (_, reason) = line_error(&COST.replace("\"best\"", "\"bets\""));
        assert!(reason.contains("expect"), "{reason}");
        let (_, reason) =
            line_error(r#"{"role":"gate","name":"g","input":{},"expect":{"decision":"maybe"}}"#);
        assert!(reason.contains("expect.decision: \"maybe\""), "{reason}");
        let (_, reason) = line_error(r#"{"role":"gate","name":"g","input":{},"expect":{}}"#);
        assert!(reason.contains("names nothing to check"), "{reason}");
        let (_, reason) = line_error(
            r#"{"role":"eligibility","name":"e","input":{"node":{"kind":"sample"},"target":"tsu","limits":{"max_vars":"x"}},"expect":{"eligible":true}}"#,
        );
        assert!(reason.starts_with("input.limits.max_vars"), "{reason}");
        assert!(matches!(parse("\n# only\n"), Err(CasesError::Empty { .. })));
    }

    #[test]
    fn gate_and_eligibility_cases_read_their_records() {
        let cases = parse(concat!(
            r#"{"role":"gate","name":"g","input":{"risk":"irreversible","evidence":[{"node":"p","max_rhat":1.5,"simulated":false}]},"expect":{"decision":"review"}}"#,
            "\n",
            r#"{"role":"eligibility","name":"e","input":{"node":{"kind":"tensor"},"target":"tsu","limits":{"max_vars":4}},"expect":{"eligible":false,"reasons":["unsupported_node_kind"]}}"#
        ))
        .unwrap();
        let CaseKind::Gate {
            request, decision, ..
        } = &cases[0].kind
        else {
            panic!()
        };
        assert_eq!(request.risk, Risk::Irreversible);
        assert_eq!(request.evidence[0].max_rhat, Some(1.5));
        assert_eq!(*decision, Some(GateWord::Hold));
        let CaseKind::Eligibility { limits, .. } = &cases[1].kind else {
            panic!()
        };
        let limits = limits.as_ref().unwrap();
        assert_eq!(limits.max_vars, 4);
        assert_eq!(limits.max_sweeps, Hardware::default().tsu.max_sweeps);
    }
}
