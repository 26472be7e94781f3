//! `thermoroute replay-policy`: re-decide a trace's decisions under another
//! policy and report what changes (the logic is in
//! `thermoroute::counterfactual`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Args;

use thermoroute::counterfactual::{
    CandidateChange, Change, Counterfactual, ReplayOptions, ReplayReport, TraceSource, replay,
};
use thermoroute::policy::CostTerms;

use super::plugin::PolicyArgs;
use super::{print_json, table};

/// Changes the human report shows (`--json` lists up to `--max-changes`).
const SHOWN: usize = 20;

#[derive(Args, Debug)]
pub struct ReplayPolicyArgs {
    /// The trace to replay (`run --trace`; every part of a rotated trace).
    pub trace: PathBuf,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Compare against the built-in defaults: roles not given as plugins
    /// use the native cost model, eligibility rules and gate instead of
    /// keeping the recorded answers.
    #[arg(long)]
    pub native: bool,
    /// Print one JSON document: decisions, changed, fraction_changed,
    /// deltas, changes and more.
    #[arg(long)]
    pub json: bool,
    /// Most changes listed (all are counted).
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub max_changes: usize,
}

pub fn replay_policy(args: ReplayPolicyArgs) -> Result<ExitCode> {
    let source = TraceSource::open(&args.trace)?;
    let set = args.policy.plugins()?;
    let policy = Counterfactual::from_plugins(&set, args.native, &source.header.hardware)?;
    let report = replay(
        &source,
        &policy,
        &ReplayOptions {
            max_changes: args.max_changes,
        },
    )?;
    if args.json {
        print_json(&report)?;
    } else {
        print_human(&report);
    }
    if report.faults.all_faulted() {
        eprintln!(
            "error: the replayed policy faulted on every call of a role ({} cost, {} eligibility, {} gate faults): nothing it decided could be compared",
            report.faults.faults.cost, report.faults.faults.eligibility, report.faults.faults.gate
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

fn terms(t: Option<&CostTerms>) -> String {
    match t {
        None => "-".into(),
        Some(t) => format!(
            "{:.4} = {:.4} + {:.4} + {:.4} + {:.4}",
            t.total, t.latency, t.energy, t.error, t.risk
        ),
    }
}

fn signed(x: f64, digits: usize) -> String {
    format!("{x:+.digits$}")
}

fn print_human(r: &ReplayReport) {
    println!("{}", r.trace);
    println!("  recorded: {}", r.recorded_policy);
    println!("  replayed: {}", r.replayed_policy);
    println!(
        "{} decisions re-decided ({} routes, {} gates): {} changed ({:.2}%)",
        r.decisions,
        r.routes.decisions,
        r.gates.decisions,
        r.changed,
        100.0 * r.fraction_changed
    );
    let d = &r.deltas;
    println!(
        "estimated deltas over the changed routes (replayed - recorded): latency p50 {} ms (p95 {} ms), energy {} J, error {}, risk penalty {}",
        signed(d.latency_p50_ms, 3),
        signed(d.latency_p95_ms, 3),
        signed(d.energy_j, 6),
        signed(d.error, 6),
        signed(d.risk_penalty, 3)
    );
    if r.routes.unrouted_after + r.routes.routed_after > 0 {
        println!(
            "  {} routed nodes would not be routed, {} unrouted would be",
            r.routes.unrouted_after, r.routes.routed_after
        );
    }
    if r.routes.widened > 0 {
        println!(
            "  {} decisions: the replayed rules admit a candidate the trace has no estimate for (kept out)",
            r.routes.widened
        );
    }
    if r.gates.decisions > 0 {
        let (b, a) = (r.gates.before, r.gates.after);
        println!(
            "gate: allow/hold/deny {}/{}/{} recorded, {}/{}/{} replayed",
            b.allow, b.hold, b.deny, a.allow, a.hold, a.deny
        );
    }
    if r.gates.without_request > 0 {
        println!(
            "  {} gate decisions not re-decided: the trace does not record their request",
            r.gates.without_request
        );
    }
    let f = &r.faults;
    let faults = f.faults.cost + f.faults.eligibility + f.faults.gate;
    if faults > 0 {
        println!(
            "the replayed policy faulted {faults} times (cost {}/{}, eligibility {}/{}, gate {}/{} calls); a run would answer as shown (native default, or the gate's fail-closed choice)",
            f.faults.cost,
            f.calls.cost,
            f.faults.eligibility,
            f.calls.eligibility,
            f.faults.gate,
            f.calls.gate
        );
        for (role, fault) in &f.first {
            println!(
                "  {role}: {} [{}]: {}",
                fault.policy, fault.kind, fault.reason
            );
            // What the guest printed, once faults carry it.
            if let Some(out) = thermoroute::plugin::guest_output(fault) {
                for line in out.lines() {
                    println!("    | {line}");
                }
            }
        }
    }
    for (why, n) in &r.skipped {
        println!("  {n} decisions skipped: {why}");
    }
    if r.torn_tail {
        println!("  the trace's last line was torn (a killed run) and skipped");
    }
    if r.older_dropped {
        println!("  older parts of the rotated trace were gone: replay starts later than the run");
    }
    println!(
        "replayed in {:.2} s ({:.2} s re-deciding, the rest reading the trace)",
        r.seconds, r.decide_seconds
    );
    if r.changes.is_empty() {
        return;
    }
    let mut t = table([
        "job / node",
        "t (ms)",
        "candidate",
        "recorded: total = L + E + A + R",
        "replayed: total = L + E + A + R",
    ]);
    for change in r.changes.iter().take(SHOWN) {
        match change {
            Change::Route {
                t_ms,
                job,
                node,
                attempt,
                before,
                after,
                candidates,
                ..
            } => {
                for (k, c) in candidates.iter().enumerate() {
                    let CandidateChange {
                        target,
                        before: b,
                        after: a,
                        ..
                    } = c;
                    let mark = |chosen: &Option<thermoroute::device::Target>| {
                        if *chosen == Some(*target) { " <" } else { "" }
                    };
                    t.add_row(vec![
                        if k == 0 {
                            format!(
                                "{job} / {node}{}",
                                if *attempt > 0 {
                                    format!(" (attempt {attempt})")
                                } else {
                                    String::new()
                                }
                            )
                        } else {
                            String::new()
                        },
                        if k == 0 {
                            format!("{t_ms:.3}")
                        } else {
                            String::new()
                        },
                        target.to_string(),
                        format!("{}{}", terms(b.as_ref()), mark(before)),
                        format!("{}{}", terms(a.as_ref()), mark(after)),
                    ]);
                }
            }
            Change::Gate {
                t_ms,
                job,
                node,
                before,
                after,
            } => {
                t.add_row(vec![
                    format!("{job} / {node}"),
                    format!("{t_ms:.3}"),
                    "gate".into(),
                    format!("{before:?}"),
                    format!("{after:?}"),
                ]);
            }
        }
    }
    println!("{t}");
    println!("(< marks the chosen candidate)");
    let listed = r.changes.len().min(SHOWN) as u64;
    if r.changed > listed {
        println!(
            "{} more changes; --json lists up to --max-changes",
            r.changed - listed
        );
    }
}
