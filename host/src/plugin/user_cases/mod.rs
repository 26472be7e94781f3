//! User-written policy cases, `thermoroute plugin test FILE --cases
//! CASES.jsonl`: one JSON object a line, `{"role": "cost" | "eligibility" |
//! "gate", "name": …, "input": {…}, "expect": {…}}`, the input in the shape
//! of the WIT record the role is given (the host's own records, snake_case;
//! every field but a few defaults), run after the conformance suite.
//!
//! Like `cases`, this talks to the policy traits only: the same cases run
//! against a plugin or a native policy. The schema, role by role, is in
//! `docs/plugins.md` and `thermoroute plugin test --help`.

#![warn(missing_docs)]

mod parse;
mod run;

use std::path::PathBuf;

use serde::Serialize;

use crate::device::Target;
use crate::hardware::Weights;
use crate::model::graph::Qos;
use crate::policy::{BackendLimits, CandidateInput, EffectRequest, NodeSummary, PolicyFault};

pub use parse::{parse_cases, read_cases};
pub use run::{CaseRoles, run_cases};

/// A cases file that cannot be used: nothing runs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CasesError {
    /// The file cannot be read.
    #[error("{file}: cannot read the cases: {source}")]
    Read {
        /// The cases file.
        file: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not a valid case.
    #[error("{file}: line {line}: {reason}")]
    Line {
        /// The cases file.
        file: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong, with the field path.
        reason: String,
    },
    /// The file holds no case.
    #[error("{file}: no cases (every line is blank or a # comment)")]
    Empty {
        /// The cases file.
        file: PathBuf,
    },
}

/// What a case expects of a faulting call: any fault, or one kind
/// (`invalid_output`, `trap`, `guest_error`, `out_of_fuel`, …).
#[derive(Debug, Clone, PartialEq)]
pub enum FaultExpect {
    /// Any fault.
    Any,
    /// A fault of this kind.
    Kind(String),
}

/// Per-field expectations of one candidate's cost terms.
#[derive(Debug, Clone, Default, PartialEq, serde::Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TermsExpect {
    /// Expected total.
    pub total: Option<f64>,
    /// Expected weighted latency term.
    pub latency: Option<f64>,
    /// Expected weighted energy term.
    pub energy: Option<f64>,
    /// Expected weighted error term.
    pub error: Option<f64>,
    /// Expected weighted risk term.
    pub risk: Option<f64>,
    /// Expected raw risk penalty.
    pub risk_penalty: Option<f64>,
}

/// The gate outcomes a case may expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateWord {
    /// `allow`.
    Allow,
    /// `hold` (also `review`, `require_review`).
    Hold,
    /// `deny`.
    Deny,
}

/// What a case feeds a role and what it expects back.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CaseKind {
    /// A cost-model case.
    Cost {
        /// The node scored.
        node: NodeSummary,
        /// Its job's QoS.
        qos: Qos,
        /// The weights (the hardware's when absent).
        weights: Option<Weights>,
        /// The candidates, in order.
        candidates: Vec<CandidateInput>,
        /// The cheapest candidate (first on ties).
        best: Option<Target>,
        /// Targets from cheapest up (a prefix is enough).
        order: Option<Vec<Target>>,
        /// Terms per candidate target.
        terms: Vec<(Target, TermsExpect)>,
        /// Relative tolerance of `terms` (`|a - e| <= tol * max(1, |e|)`).
        tolerance: f64,
        /// The call must fault.
        fault: Option<FaultExpect>,
    },
    /// An eligibility case.
    Eligibility {
        /// The node.
        node: NodeSummary,
        /// Its job's QoS.
        qos: Qos,
        /// The target asked about.
        target: Target,
        /// The target's limits (the hardware's when absent).
        limits: Option<BackendLimits>,
        /// Eligible (no reasons) or not.
        eligible: Option<bool>,
        /// The reasons' kinds (`unsupported_node_kind`, …), as a multiset.
        reasons: Option<Vec<String>>,
        /// Text some reason must contain.
        reason_contains: Option<String>,
        /// The call must fault.
        fault: Option<FaultExpect>,
    },
    /// A gate case.
    Gate {
        /// The request.
        request: EffectRequest,
        /// The decision.
        decision: Option<GateWord>,
        /// Text some reason must contain.
        reasons_contain: Option<String>,
        /// The call must fault.
        fault: Option<FaultExpect>,
    },
}

/// One case of a cases file.
#[derive(Debug, Clone)]
pub struct UserCase {
    /// Its line in the file.
    pub line: usize,
    /// Its name.
    pub name: String,
    /// The `input` object as written.
    pub input: serde_json::Value,
    /// The `expect` object as written.
    pub expect: serde_json::Value,
    /// The parsed input and expectations.
    pub kind: CaseKind,
}

impl UserCase {
    /// `cost`, `eligibility` or `gate`.
    pub fn role(&self) -> &'static str {
        match self.kind {
            CaseKind::Cost { .. } => "cost",
            CaseKind::Eligibility { .. } => "eligibility",
            CaseKind::Gate { .. } => "gate",
        }
    }
}

/// One user case's outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UserCaseResult {
    /// Its line in the cases file.
    pub line: usize,
    /// `cost`, `eligibility` or `gate`.
    pub role: &'static str,
    /// Its name.
    pub name: String,
    /// Whether every expectation held.
    pub passed: bool,
    /// What did not hold, when it failed.
    pub detail: String,
    /// The input as written.
    pub input: serde_json::Value,
    /// The expectations as written.
    pub expected: serde_json::Value,
    /// What the policy answered (or its fault).
    pub actual: serde_json::Value,
    /// What the guest printed, when a fault carries it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest_output: Option<String>,
}

/// The guest's own output (stdout, stderr, log lines) behind a fault.
///
/// Hook for guest-log capture: once a [`PolicyFault`] carries what the
/// guest printed, return it here, and `plugin test` shows it under the
/// failing case (`guest_output` in `--json`). Until then faults carry only
/// their reason.
pub fn guest_output(fault: &PolicyFault) -> Option<String> {
    let lines = fault.output.excerpt(40);
    (!lines.is_empty()).then(|| lines.join("\n"))
}
