//! `thermoroute explain`: why a node went where it did, from a trace alone.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

use thermoroute::trace::{TraceEvent, read_trace};

use super::{fmt_ms, print_json, table, truncate};

#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// A trace written by `run --trace`.
    trace: PathBuf,
    #[arg(long)]
    job: u64,
    #[arg(long)]
    node: String,
    #[arg(long)]
    json: bool,
}

/// Guest output lines shown under a policy fault.
const GUEST_LINES_SHOWN: usize = 40;

pub fn explain(args: ExplainArgs) -> Result<ExitCode> {
    let ExplainArgs {
        trace,
        job,
        node,
        json,
    } = args;
    let t = read_trace(&trace)?;
    if t.torn_tail {
        eprintln!(
            "{}: the last line is incomplete (killed run?); explaining from the readable prefix",
            trace.display()
        );
    }
    let related: Vec<&TraceEvent> = t
        .events
        .iter()
        .filter(|e| event_is_about(e, job, &node))
        .collect();
    if related.is_empty() {
        let dropped = if t.older_dropped {
            " (its oldest parts were deleted by --trace-max: older jobs are gone)"
        } else {
            ""
        };
        bail!(
            "{}: no events for job {job} node {node:?}{dropped}",
            trace.display()
        );
    }
    if json {
        print_json(&related)?;
        return Ok(ExitCode::SUCCESS);
    }
    for e in related {
        match e {
            TraceEvent::Route {
                t_ms,
                attempt,
                chosen,
                candidates,
                budget,
                explanation,
                ..
            } => {
                println!(
                    "t={t_ms:.3} ms  route (attempt {attempt}): {}",
                    chosen.map_or("no target".into(), |c| format!("-> {c}"))
                );
                println!(
                    "  budget: deadline p50 {} ms, p95 {} ms (elapsed {:.3} ms), energy {} J, max error {}, timeout {:.3} ms",
                    fmt_ms(budget.deadline_p50_ms),
                    fmt_ms(budget.deadline_p95_ms),
                    budget.elapsed_ms,
                    budget.energy_j.map_or("-".into(), |e| format!("{e:.4}")),
                    budget.max_error.map_or("-".into(), |e| format!("{e}")),
                    budget.timeout_ms
                );
                let mut tab = table([
                    "target",
                    "eligible",
                    "wait ms",
                    "p50 ms",
                    "p95 ms",
                    "energy J",
                    "error",
                    "cost (L+E+A+R)",
                    "verdict",
                ]);
                for c in candidates {
                    let verdict = if !c.eligible {
                        c.reasons
                            .iter()
                            .map(|r| r.to_string())
                            .collect::<Vec<_>>()
                            .join("; ")
                    } else if !c.violations.is_empty() {
                        format!("violates {}", c.violations.join(", "))
                    } else if c.queue_has_room == Some(false) {
                        "queue full".into()
                    } else if Some(c.target) == *chosen {
                        "CHOSEN".into()
                    } else {
                        "feasible, costlier".into()
                    };
                    let est = c.estimate;
                    tab.add_row(vec![
                        c.target.to_string(),
                        if c.eligible { "yes" } else { "no" }.into(),
                        est.map_or("-".into(), |e| format!("{:.3}", e.queue_wait_ms)),
                        est.map_or("-".into(), |e| format!("{:.3}", e.latency_p50_ms)),
                        est.map_or("-".into(), |e| format!("{:.3}", e.latency_p95_ms)),
                        est.map_or("-".into(), |e| format!("{:.2e}", e.energy_j)),
                        est.map_or("-".into(), |e| format!("{:.4}", e.error)),
                        c.cost.map_or("-".into(), |k| {
                            format!(
                                "{:.4} ({:.3}+{:.3}+{:.3}+{:.3})",
                                k.total, k.latency, k.energy, k.error, k.risk
                            )
                        }),
                        verdict,
                    ]);
                }
                println!("{tab}");
                println!("  why: {explanation}");
            }
            TraceEvent::Hold {
                t_ms,
                target,
                plugin,
                reason,
                max_hold_ms,
                ..
            } => {
                println!(
                    "t={t_ms:.3} ms  held out of the {target} queue by {plugin} (at most {max_hold_ms} ms): {reason}"
                );
            }
            TraceEvent::HoldEnd {
                t_ms,
                target,
                held_ms,
                outcome,
                reason,
                ..
            } => {
                println!(
                    "t={t_ms:.3} ms  hold on {target} ended after {held_ms:.3} ms: {} (last reason: {reason})",
                    outcome.words()
                );
            }
            TraceEvent::PolicyFault {
                t_ms,
                role,
                fault,
                fallback,
                ..
            } => {
                println!(
                    "t={t_ms:.3} ms  {role} policy fault ({}): {} failed: {}",
                    fault.kind, fault.policy, fault.reason
                );
                if let Some(path) = &fault.path {
                    println!("  plugin: {path}");
                }
                println!("  fallback: {fallback}");
                let printed = fault.output.excerpt(GUEST_LINES_SHOWN);
                if !printed.is_empty() {
                    println!("  the plugin printed:");
                    for line in printed {
                        println!("    {line}");
                    }
                }
            }
            other => {
                let v = serde_json::to_value(other)?;
                println!(
                    "t={:.3} ms  {}: {}",
                    v["t_ms"].as_f64().unwrap_or(0.0),
                    v["event"].as_str().unwrap_or(""),
                    summarise_event(&v)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn summarise_event(v: &serde_json::Value) -> String {
    let mut obj = v.as_object().cloned().unwrap_or_default();
    for k in ["event", "t_ms", "job", "node", "output"] {
        obj.remove(k);
    }
    truncate(&serde_json::Value::Object(obj).to_string(), 160)
}

fn event_is_about(e: &TraceEvent, j: u64, n: &str) -> bool {
    match e {
        TraceEvent::Route { job, node, .. }
        | TraceEvent::Admit { job, node, .. }
        | TraceEvent::Reject { job, node, .. }
        | TraceEvent::Hold { job, node, .. }
        | TraceEvent::HoldEnd { job, node, .. }
        | TraceEvent::Preempt { job, node, .. }
        | TraceEvent::Resume { job, node, .. }
        | TraceEvent::Steal { job, node, .. }
        | TraceEvent::Start { job, node, .. }
        | TraceEvent::End { job, node, .. }
        | TraceEvent::Failure { job, node, .. }
        | TraceEvent::EarlyStop { job, node, .. }
        | TraceEvent::Gate { job, node, .. } => *job == j && node == n,
        TraceEvent::PolicyFault {
            job: Some(job),
            node: Some(node),
            ..
        } => *job == j && node == n,
        _ => false,
    }
}
