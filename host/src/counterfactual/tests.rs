//! Replay on hand-written traces.

use std::io::Write;

use super::*;
use crate::device::Target;
use crate::hardware::Hardware;
use crate::model::graph::{NodeKind, Qos};
use crate::policy::{
    CandidateInput, CostModel, CostTerms, DecisionContext, Estimate, NodeSummary, PolicyFault,
};
use crate::trace::{
    CandidateRecord, NodeBudget, NodeRecord, TRACE_FORMAT, TRACE_VERSION, TraceEvent,
};

/// Costs a candidate its latency, except `cheap`, which costs nothing.
struct Prefer(Target);

impl CostModel for Prefer {
    fn name(&self) -> &str {
        "prefer"
    }
    fn score(&self, ctx: &DecisionContext, out: &mut Vec<CostTerms>) -> Result<(), PolicyFault> {
        out.clear();
        out.extend(ctx.candidates.iter().map(|c: &CandidateInput| {
            let latency = if c.target == self.0 {
                0.0
            } else {
                c.estimate.latency_p50_ms
            };
            CostTerms {
                latency,
                total: latency,
                ..CostTerms::default()
            }
        }));
        Ok(())
    }
}

/// Always faults.
struct Broken;

impl CostModel for Broken {
    fn name(&self) -> &str {
        "broken"
    }
    fn score(&self, _: &DecisionContext, _: &mut Vec<CostTerms>) -> Result<(), PolicyFault> {
        Err(PolicyFault {
            policy: "broken".into(),
            reason: "no".into(),
            kind: "trap".into(),
            ..PolicyFault::default()
        })
    }
}

fn candidate(target: Target, ms: f64, energy: f64, room: bool) -> CandidateRecord {
    let estimate = Estimate {
        latency_p50_ms: ms,
        latency_p95_ms: 2.0 * ms,
        queue_wait_ms: 0.0,
        energy_j: energy,
        error: 0.0,
    };
    CandidateRecord {
        target,
        device: target.device(),
        eligible: true,
        reasons: vec![],
        estimate: Some(estimate),
        cost: Some(CostTerms {
            latency: ms,
            total: ms,
            ..CostTerms::default()
        }),
        violations: vec![],
        queue_has_room: Some(room),
        late_ok: false,
    }
}

fn route(job: u64, chosen: Target, candidates: Vec<CandidateRecord>) -> TraceEvent {
    TraceEvent::Route {
        t_ms: job as f64,
        job,
        node: "mm".into(),
        attempt: 0,
        chosen: Some(chosen),
        candidates,
        budget: NodeBudget {
            deadline_p50_ms: None,
            deadline_p95_ms: None,
            energy_j: None,
            max_error: None,
            timeout_ms: 1e3,
            elapsed_ms: 0.0,
        },
        explanation: "cheapest feasible".into(),
    }
}

fn write(dir: &std::path::Path, events: &[TraceEvent], nodes: bool) -> std::path::PathBuf {
    let path = dir.join("t.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    let header = TraceEvent::Header {
        format: TRACE_FORMAT.into(),
        version: TRACE_VERSION,
        mode: "simulate".into(),
        seed: 0,
        policy: "cost=native, eligibility=native, gate=native".into(),
        classes: vec!["mm".into()],
        hardware: Box::new(Hardware::default()),
        class_qos: vec![Qos::default()],
        class_nodes: if nodes {
            vec![vec![NodeRecord {
                id: "mm".into(),
                node: NodeSummary {
                    kind: NodeKind::Tensor,
                    class: "tensor:matmul:2^10".into(),
                    flops: 1e6,
                    bytes: 1e4,
                    program: None,
                },
            }]]
        } else {
            vec![]
        },
        part: 0,
    };
    for e in std::iter::once(&header).chain(events) {
        writeln!(f, "{}", serde_json::to_string(e).unwrap()).unwrap();
    }
    path
}

fn events() -> Vec<TraceEvent> {
    let mut events = Vec::new();
    for job in 0..4 {
        events.push(TraceEvent::Arrival {
            t_ms: job as f64,
            job,
            class: 0,
        });
        // GPU is faster; the CPU queue has no room for job 3.
        events.push(route(
            job,
            Target::Gpu,
            vec![
                candidate(Target::Gpu, 1.0, 0.5, true),
                candidate(Target::Cpu, 4.0, 0.2, job != 3),
            ],
        ));
    }
    events
}

#[test]
fn a_cpu_preferring_model_moves_the_routes_with_room_and_the_deltas_add_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &events(), true);
    let source = TraceSource::open(&path).unwrap();
    let policy = Counterfactual {
        cost: Some(Box::new(Prefer(Target::Cpu))),
        ..Counterfactual::default()
    };
    let r = replay(&source, &policy, &ReplayOptions::default()).unwrap();
    assert_eq!(r.decisions, 4);
    assert_eq!(r.changed, 3);
    assert_eq!(r.fraction_changed, 0.75);
    assert_eq!(r.deltas.latency_p50_ms, 9.0);
    assert_eq!(r.deltas.latency_p95_ms, 18.0);
    assert!((r.deltas.energy_j - -0.9).abs() < 1e-12, "{:?}", r.deltas);
    assert_eq!(r.mean_deltas.latency_p50_ms, 2.25);
    let Change::Route {
        before,
        after,
        candidates,
        ..
    } = &r.changes[0]
    else {
        panic!()
    };
    assert_eq!((*before, *after), (Some(Target::Gpu), Some(Target::Cpu)));
    assert_eq!(candidates[1].after.unwrap().total, 0.0);
    assert_eq!(candidates[1].before.unwrap().total, 4.0);
    // The recorded policy (costs as recorded) changes nothing.
    let same = Counterfactual {
        cost: Some(Box::new(Prefer(Target::Gpu))),
        ..Counterfactual::default()
    };
    assert_eq!(
        replay(&source, &same, &ReplayOptions::default())
            .unwrap()
            .changed,
        0
    );
    // Listing is bounded; counting is not.
    let r = replay(&source, &policy, &ReplayOptions { max_changes: 1 }).unwrap();
    assert_eq!((r.changes.len(), r.changes_omitted, r.changed), (1, 2, 3));
}

#[test]
fn faults_fall_back_to_the_native_model_and_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), &events(), true);
    let source = TraceSource::open(&path).unwrap();
    let policy = Counterfactual {
        cost: Some(Box::new(Broken)),
        ..Counterfactual::default()
    };
    let r = replay(&source, &policy, &ReplayOptions::default()).unwrap();
    assert_eq!(r.faults.calls.cost, 4);
    assert_eq!(r.faults.faults.cost, 4);
    assert!(r.faults.all_faulted());
    assert_eq!(r.changed, 0, "the native model agrees with the record");
}

#[test]
fn a_role_that_only_faults_stops_the_replay() {
    let dir = tempfile::tempdir().unwrap();
    let mut many = Vec::new();
    for _ in 0..(GIVE_UP_AFTER as usize / 4 + 1) {
        many.extend(events());
    }
    let path = write(dir.path(), &many, true);
    let source = TraceSource::open(&path).unwrap();
    let policy = Counterfactual {
        cost: Some(Box::new(Broken)),
        ..Counterfactual::default()
    };
    match replay(&source, &policy, &ReplayOptions::default()) {
        Err(ReplayError::Faulting {
            role,
            calls,
            reason,
        }) => {
            assert_eq!((role.as_str(), reason.as_str()), ("cost", "no"));
            assert!(calls >= GIVE_UP_AFTER);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bad_traces_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let old = write(dir.path(), &events(), false);
    assert!(matches!(
        TraceSource::open(&old),
        Err(ReplayError::NoNodeSummaries { .. })
    ));
    let empty = write(dir.path(), &[], true);
    let source = TraceSource::open(&empty).unwrap();
    let policy = Counterfactual {
        cost: Some(Box::new(Prefer(Target::Cpu))),
        ..Counterfactual::default()
    };
    assert!(matches!(
        replay(&source, &policy, &ReplayOptions::default()),
        Err(ReplayError::NoDecisions { .. })
    ));
    assert!(matches!(
        TraceSource::open(&dir.path().join("nope.jsonl")),
        Err(ReplayError::Trace(crate::trace::TraceError::Read { .. }))
    ));
    // A job whose arrival is not in the trace is skipped and counted.
    let orphan = write(
        dir.path(),
        &[route(
            9,
            Target::Gpu,
            vec![candidate(Target::Gpu, 1.0, 0.1, true)],
        )],
        true,
    );
    let source = TraceSource::open(&orphan).unwrap();
    assert!(matches!(
        replay(&source, &policy, &ReplayOptions::default()),
        Err(ReplayError::NoDecisions { .. })
    ));
    assert!(matches!(
        Counterfactual::from_plugins(
            &crate::plugin::PluginSet::default(),
            false,
            &Hardware::default()
        ),
        Err(ReplayError::NoPolicy)
    ));
}
