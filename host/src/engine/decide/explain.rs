//! The words and records of a routing decision: what the trace, `explain`
//! and `run --json` say about it. Pure functions of the assessed candidates.

use super::route::{Candidate, Routed, VIOLATIONS, cheapest, preferred};
use crate::device::Target;
use crate::policy::Ineligible;
use crate::trace::{CandidateRecord, NodeBudget};

/// The names of the constraints set in `bits`.
pub fn violation_names(bits: u8) -> String {
    (0..4)
        .filter(|b| bits & (1 << b) != 0)
        .map(|b| VIOLATIONS[b])
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every reason a candidate is ineligible: the host's first, then the
/// policy's `verdict`.
pub fn reasons(c: &Candidate, verdict: &[Ineligible]) -> Vec<Ineligible> {
    let mut out: Vec<Ineligible> = c
        .host_reason
        .map(|r| r.ineligible(c.target))
        .into_iter()
        .collect();
    out.extend(verdict.iter().cloned());
    out
}

/// The trace's record of each candidate.
pub fn candidate_records(
    cands: &[Candidate],
    verdicts: &[Vec<Ineligible>],
) -> Vec<CandidateRecord> {
    cands
        .iter()
        .zip(verdicts)
        .map(|(c, verdict)| {
            let eligible = c.eligible();
            CandidateRecord {
                target: c.target,
                device: c.target.device(),
                eligible,
                reasons: reasons(c, verdict),
                estimate: eligible.then_some(c.estimate),
                cost: eligible.then_some(c.cost),
                violations: (0..4)
                    .filter(|b| eligible && c.violations & (1 << b) != 0)
                    .map(|b| VIOLATIONS[b].to_string())
                    .collect(),
                queue_has_room: eligible.then_some(c.room),
                late_ok: eligible && c.violations != 0 && c.violations_late == 0,
            }
        })
        .collect()
}

/// One line on why the decision came out as it did.
/// `additive` is false when the cost model declared that its totals are not
/// the sum of its terms: the cost line then says so.
pub fn decision_explanation(
    cands: &[Candidate],
    outcome: &Routed,
    order: &[Target],
    additive: bool,
) -> String {
    let i = match outcome {
        Routed::Chosen(i) => *i,
        Routed::Busy { why, .. } | Routed::Infeasible(why) => return why.clone(),
    };
    let c = &cands[i];
    let cheapest = cheapest(cands, |o| o.violations == 0 && o.room);
    let rule = if c.violations != 0 {
        format!(
            "the job is behind its schedule ({} past this node's share): cheapest that still meets the job's p95 target",
            violation_names(c.violations)
        )
    } else if cheapest != Some(i) && preferred(cands, order) == Some(i) {
        let names: Vec<String> = order.iter().map(|t| t.to_string()).collect();
        format!(
            "the default rule for sampling nodes ({}: first that meets the QoS without risk)",
            names.join(" > ")
        )
    } else {
        "cheapest feasible".to_string()
    };
    let others: Vec<String> = cands
        .iter()
        .filter(|o| o.target != c.target)
        .map(|o| {
            if !o.eligible() {
                format!("{} ineligible", o.target)
            } else if o.violations != 0 {
                format!("{} violates {}", o.target, violation_names(o.violations))
            } else if !o.room {
                format!("{} queue full", o.target)
            } else {
                format!("{} costs {:.4}", o.target, o.cost.total)
            }
        })
        .collect();
    format!(
        "{}: {rule} (cost {:.4} {} latency {:.4} + energy {:.4} + error {:.4} + risk {:.4}){}",
        c.target,
        c.cost.total,
        if additive {
            "="
        } else {
            "from a non-additive cost model (its total is not the sum of its terms):"
        },
        c.cost.latency,
        c.cost.energy,
        c.cost.error,
        c.cost.risk,
        if others.is_empty() {
            String::new()
        } else {
            format!("; {}", others.join(", "))
        }
    )
}

/// Why no candidate can meet the node's QoS: every candidate's reasons when
/// none is eligible, else the best candidate's violated constraints.
pub fn infeasible_explanation(
    node_id: &str,
    cands: &[Candidate],
    verdicts: &[Vec<Ineligible>],
    budget: &NodeBudget,
) -> String {
    let Some(best) = cands
        .iter()
        .filter(|c| c.eligible())
        .min_by(|a, b| a.cost.total.total_cmp(&b.cost.total))
    else {
        let listed: Vec<String> = cands
            .iter()
            .zip(verdicts)
            .map(|(c, verdict)| {
                let why: Vec<String> = reasons(c, verdict).iter().map(|r| r.to_string()).collect();
                format!("{}: {}", c.target, why.join("; "))
            })
            .collect();
        return format!(
            "node {node_id:?}: no eligible target ({})",
            listed.join(" | ")
        );
    };
    let violated: Vec<String> = (0..4)
        .filter(|b| best.violations_idle & (1 << b) != 0)
        .map(|b| match b {
            0 => format!(
                "latency p50 {:.3} ms > share {:.3} ms",
                budget.elapsed_ms + best.estimate.latency_p50_ms - best.estimate.queue_wait_ms,
                budget.deadline_p50_ms.unwrap_or(f64::NAN)
            ),
            1 => format!(
                "latency p95 {:.3} ms > share {:.3} ms",
                budget.elapsed_ms + best.estimate.latency_p95_ms - best.estimate.queue_wait_ms,
                budget.deadline_p95_ms.unwrap_or(f64::NAN)
            ),
            2 => format!(
                "energy {:.4} J > share {:.4} J",
                best.estimate.energy_j,
                budget.energy_j.unwrap_or(f64::NAN)
            ),
            _ => format!(
                "error {:.4} > max_error {:.4}",
                best.estimate.error,
                budget.max_error.unwrap_or(f64::NAN)
            ),
        })
        .collect();
    format!(
        "node {node_id:?}: no target meets the QoS; violated: {}; best candidate {} (cost {:.3}): {}",
        violated
            .iter()
            .map(|v| v
                .split(' ')
                .take(if v.starts_with("latency") { 2 } else { 1 })
                .collect::<Vec<_>>()
                .join(" "))
            .collect::<Vec<_>>()
            .join(", "),
        best.target,
        best.cost.total,
        violated.join("; ")
    )
}

/// The explanation of a node left with no target after failures (none when
/// nothing failed: then it is infeasible).
pub fn failed_explanation(failures: &[String], rest: &str) -> Option<String> {
    (!failures.is_empty()).then(|| {
        format!(
            "every target that could serve it failed ({}); {rest}",
            failures.join("; ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::super::route::HostReason;
    use super::*;
    use crate::device::Target;
    use crate::policy::{CostTerms, Estimate};

    fn cand(target: Target, total: f64) -> Candidate {
        Candidate {
            target,
            host_reason: None,
            policy_ok: true,
            estimate: Estimate {
                latency_p50_ms: 2.0,
                latency_p95_ms: 4.0,
                queue_wait_ms: 0.0,
                energy_j: 0.5,
                error: 0.03,
            },
            cost: CostTerms {
                total,
                latency: total,
                ..Default::default()
            },
            violations: 0,
            violations_idle: 0,
            violations_late: 0,
            room: true,
            drain_ms: 0.0,
        }
    }

    fn budget() -> NodeBudget {
        NodeBudget {
            deadline_p50_ms: Some(1.0),
            deadline_p95_ms: Some(3.0),
            energy_j: Some(0.1),
            max_error: Some(0.02),
            timeout_ms: 10.0,
            elapsed_ms: 0.5,
        }
    }

    #[test]
    fn a_chosen_candidate_is_explained_against_every_other() {
        let mut cpu = cand(Target::Cpu, 2.0);
        cpu.violations = 4;
        let mut off = cand(Target::Gpu, 0.5);
        off.host_reason = Some(HostReason::Offline);
        let tsu = cand(Target::Tsu, 1.0);
        let why = decision_explanation(&[cpu, off, tsu], &Routed::Chosen(2), &[], true);
        assert!(
            why.starts_with("tsu: cheapest feasible (cost 1.0000 = latency 1.0000"),
            "{why}"
        );
        assert!(
            why.ends_with("; cpu violates energy, gpu ineligible"),
            "{why}"
        );
    }

    #[test]
    fn a_non_additive_models_cost_line_says_so() {
        let tsu = cand(Target::Tsu, 1.0);
        let why = decision_explanation(&[tsu], &Routed::Chosen(0), &[], false);
        assert!(
            why.starts_with(
                "tsu: cheapest feasible (cost 1.0000 from a non-additive cost model (its total is not the sum of its terms): latency 1.0000"
            ),
            "{why}"
        );
    }

    #[test]
    fn infeasible_names_the_best_candidates_violations() {
        let mut c = cand(Target::Cpu, 1.5);
        c.violations_idle = 1 | 4 | 8;
        let why = infeasible_explanation("n", &[c], &[vec![]], &budget());
        assert_eq!(
            why,
            "node \"n\": no target meets the QoS; violated: latency p50, energy, error; \
             best candidate cpu (cost 1.500): latency p50 2.500 ms > share 1.000 ms; \
             energy 0.5000 J > share 0.1000 J; error 0.0300 > max_error 0.0200"
        );
    }

    #[test]
    fn no_eligible_target_lists_every_reason() {
        let mut gpu = cand(Target::Gpu, 1.0);
        gpu.host_reason = Some(HostReason::NotPresent);
        let mut cpu = cand(Target::Cpu, 1.0);
        cpu.policy_ok = false;
        let verdicts = vec![vec![], vec![Ineligible::Offline]];
        let why = infeasible_explanation("n", &[gpu, cpu], &verdicts, &budget());
        assert!(
            why.starts_with("node \"n\": no eligible target (gpu: "),
            "{why}"
        );
        assert!(why.contains(" | cpu: "), "{why}");
        let records = candidate_records(&[gpu, cpu], &verdicts);
        assert_eq!(records[0].reasons, vec![Ineligible::NotPresent]);
        assert!(records[1].estimate.is_none() && !records[1].eligible);
    }

    #[test]
    fn a_node_whose_targets_all_failed_failed() {
        assert_eq!(failed_explanation(&[], "no target"), None);
        let why = failed_explanation(
            &[
                "tsu: injected tsu error".into(),
                "cpu: cpu went offline".into(),
            ],
            "no target meets the QoS",
        )
        .unwrap();
        assert!(
            why.contains("injected tsu error; cpu: cpu went offline"),
            "{why}"
        );
        assert!(why.ends_with("no target meets the QoS"), "{why}");
    }
}
