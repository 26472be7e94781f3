//! Conformance cases of the queue roles, run by `plugin check`: what any
//! sane queue order, admission or preemption plugin must do whatever its
//! opinions — answer well-formed queues within its limits, with valid
//! output (a permutation; running preemptible victims; a bounded reason),
//! the same way twice.

use std::sync::Arc;
use std::time::Instant;

use super::cases::ConformanceCase;
use super::queue_roles::{PluginAdmit, PluginPreempt, PluginQueueOrder};
use super::queue_world::QueueRole;
use super::runtime::{LoadedPlugin, Runtime};
use crate::device::Target;
use crate::model::graph::{NodeKind, Priority, Risk};
use crate::policy::{Admit, PolicyFault, Preempt, QueueOrder, QueueTask, QueueView, task_id};

/// A task of the cases' queues.
pub(super) fn case_task(job: u64, priority: Priority, preemptible: bool) -> QueueTask {
    QueueTask {
        id: task_id(job, 1),
        job_id: job,
        job_class: if priority == Priority::Interactive {
            "fraud-triage".into()
        } else {
            "nightly-batch".into()
        },
        node_id: "sample".into(),
        kind: NodeKind::Sample,
        priority,
        risk: Risk::Reversible,
        arrival_ms: job as f64,
        enqueued_ms: job as f64 + 0.5,
        deadline_ms: (priority == Priority::Interactive).then_some(job as f64 + 20.0),
        service_ms: 4.0,
        preemptible,
    }
}

/// A TSU queue with `waiting` and `running` tasks and no free slot unless
/// fewer run than its 2 slots.
pub(super) fn case_queue(waiting: Vec<QueueTask>, running: Vec<QueueTask>) -> QueueView {
    QueueView {
        target: Target::Tsu,
        now_ms: 100.0,
        free_slots: 2u32.saturating_sub(running.len() as u32),
        slots: 2,
        waiting,
        running,
        limit: 8,
    }
}

/// Five waiting tasks, batch and interactive mixed, as the engine lists
/// them (interactive first).
fn mixed_waiting() -> Vec<QueueTask> {
    vec![
        case_task(3, Priority::Interactive, true),
        case_task(5, Priority::Interactive, true),
        case_task(1, Priority::Batch, true),
        case_task(2, Priority::Batch, false),
        case_task(4, Priority::Batch, true),
    ]
}

fn mixed_running() -> Vec<QueueTask> {
    vec![
        case_task(10, Priority::Batch, false),
        case_task(11, Priority::Batch, true),
    ]
}

fn case<T: PartialEq + std::fmt::Debug>(
    role: QueueRole,
    name: &str,
    answer: &Result<T, PolicyFault>,
    expect: impl FnOnce(&T) -> Result<(), String>,
) -> ConformanceCase {
    let outcome = match answer {
        Ok(a) => expect(a),
        Err(f) => Err(format!("{}: {}", f.kind, f.reason)),
    };
    ConformanceCase {
        role: role.name(),
        name: name.into(),
        passed: outcome.is_ok(),
        detail: outcome.err().unwrap_or_default(),
        output: Default::default(),
    }
}

fn same<T: PartialEq + std::fmt::Debug>(
    role: QueueRole,
    first: &Result<T, PolicyFault>,
    again: &Result<T, PolicyFault>,
) -> ConformanceCase {
    case(
        role,
        "answers the same input the same way",
        again,
        |a| match first {
            Ok(f) if f == a => Ok(()),
            Ok(f) => Err(format!("first {f:?}, then {a:?}")),
            Err(e) => Err(format!("the first call faulted: {}", e.reason)),
        },
    )
}

/// The cases a hot-reloaded queue-role version must pass before it serves.
pub(super) fn queue_smoke(
    runtime: &'static Runtime,
    plugin: &Arc<LoadedPlugin>,
    role: QueueRole,
) -> Result<(), String> {
    match queue_cases(runtime, plugin, role)
        .0
        .into_iter()
        .find(|c| !c.passed)
    {
        None => Ok(()),
        Some(c) => Err(format!("fails conformance: {}: {}", c.name, c.detail)),
    }
}

/// The cases of `role` for `plugin`, and the mean time of a warm call, µs.
pub(super) fn queue_cases(
    runtime: &'static Runtime,
    plugin: &Arc<LoadedPlugin>,
    role: QueueRole,
) -> (Vec<ConformanceCase>, f64) {
    const CALLS: u32 = 200;
    let arriving = case_task(7, Priority::Interactive, false);
    let full = case_queue(mixed_waiting(), mixed_running());
    let idle = case_queue(vec![], vec![]);
    match role {
        QueueRole::QueueOrder => {
            let p = PluginQueueOrder::from_plugin(runtime, Arc::clone(plugin), queue_smoke);
            let one = case_queue(vec![case_task(1, Priority::Batch, true)], vec![]);
            let mut cases = vec![
                case(
                    role,
                    "orders an empty queue as empty",
                    &p.order(&idle),
                    |o| o.is_empty().then_some(()).ok_or(format!("{o:?}")),
                ),
                case(role, "orders a queue of one", &p.order(&one), |o| {
                    (o == &[0]).then_some(()).ok_or(format!("{o:?}"))
                }),
            ];
            let first = p.order(&full);
            cases.push(case(
                role,
                "orders a mixed queue as a permutation of its tasks",
                &first,
                |_| Ok(()),
            ));
            cases.push(same(role, &first, &p.order(&full)));
            let t = Instant::now();
            for _ in 0..CALLS {
                let _ = p.order(&full);
            }
            (cases, t.elapsed().as_secs_f64() * 1e6 / f64::from(CALLS))
        }
        QueueRole::Admit => {
            let p = PluginAdmit::from_plugin(runtime, Arc::clone(plugin), queue_smoke);
            let mut cases = vec![case(
                role,
                "answers a task arriving at an idle device",
                &p.decide(&arriving, &idle),
                |_| Ok(()),
            )];
            let first = p.decide(&arriving, &full);
            cases.push(case(
                role,
                "answers a task arriving at a busy queue",
                &first,
                |_| Ok(()),
            ));
            cases.push(same(role, &first, &p.decide(&arriving, &full)));
            let t = Instant::now();
            for _ in 0..CALLS {
                let _ = p.decide(&arriving, &full);
            }
            (cases, t.elapsed().as_secs_f64() * 1e6 / f64::from(CALLS))
        }
        QueueRole::Preempt => {
            let p = PluginPreempt::from_plugin(runtime, Arc::clone(plugin), queue_smoke);
            let mut cases = vec![case(
                role,
                "names no victim when nothing runs",
                &p.victims(&arriving, &idle),
                |v| v.is_empty().then_some(()).ok_or(format!("{v:?}")),
            )];
            let first = p.victims(&arriving, &full);
            cases.push(case(
                role,
                "names only running preemptible tasks",
                &first,
                |_| Ok(()),
            ));
            cases.push(same(role, &first, &p.victims(&arriving, &full)));
            let t = Instant::now();
            for _ in 0..CALLS {
                let _ = p.victims(&arriving, &full);
            }
            (cases, t.elapsed().as_secs_f64() * 1e6 / f64::from(CALLS))
        }
    }
}
