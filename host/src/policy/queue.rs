//! The queue roles: the order in which waiting work starts on a device
//! (queue order, the QueueSort analogue), whether a routed task joins a
//! device queue (admission, the Permit analogue) and which running work
//! makes room for an arriving interactive task (preemption, the PostFilter
//! analogue).
//!
//! Each role has a native default here as a pure function of plain data (a
//! [`QueueView`] and the arriving [`QueueTask`]); the engine runs the same
//! rules on its own queues without building a view, so a run with no queue
//! plugin is exactly what it was. A plugin serving a role is checked by
//! [`check_order`] and [`check_victims`]: an answer that breaks the contract
//! is a fault, and the native choice stands.

use serde::{Deserialize, Serialize};

use super::{PolicyFault, PolicyNotice};
use crate::device::Target;
use crate::model::graph::{NodeKind, Priority, Risk};

/// Bits of a [`QueueTask::id`] that hold the node's index in its graph
/// (graphs have at most [`crate::model::limits::MAX_NODES`] nodes).
pub const TASK_NODE_BITS: u32 = 20;

/// The id a queue role sees for node `node` of job `job`: unique within a
/// run (a node runs as one task at a time).
pub fn task_id(job: u64, node: u32) -> u64 {
    (job << TASK_NODE_BITS) | u64::from(node)
}

/// A task waiting for, or holding, a device slot, as queue roles see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueTask {
    /// Unique within a run (see [`task_id`]).
    pub id: u64,
    /// Its job.
    pub job_id: u64,
    /// Its job's class (graph name).
    pub job_class: String,
    /// The node's id in its graph.
    pub node_id: String,
    /// What the node does.
    pub kind: NodeKind,
    /// Its job's priority.
    pub priority: Priority,
    /// Its job's risk class.
    pub risk: Risk,
    /// When the job arrived, ms since the run's start.
    pub arrival_ms: f64,
    /// When the task was routed to this device, ms since the run's start.
    pub enqueued_ms: f64,
    /// The node's p50 deadline, ms since the run's start.
    pub deadline_ms: Option<f64>,
    /// Estimated service time on this device, ms.
    pub service_ms: f64,
    /// It runs in slices that can stop at a sweep boundary, and no
    /// preemption is pending on it.
    pub preemptible: bool,
}

/// A device queue at the moment of a decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueView {
    /// The target the decision is about.
    pub target: Target,
    /// Time now, ms since the run's start.
    pub now_ms: f64,
    /// Free slots.
    pub free_slots: u32,
    /// Slots in all.
    pub slots: u32,
    /// Waiting tasks, in the order the native rule starts them
    /// (interactive first, then batch, each first come first served).
    pub waiting: Vec<QueueTask>,
    /// Running tasks.
    pub running: Vec<QueueTask>,
    /// The queue's limit (waiting tasks) before backpressure.
    pub limit: u32,
}

/// An admission decision for one routed task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "admission", rename_all = "snake_case")]
pub enum Admission {
    /// It joins the queue.
    Accept,
    /// It is refused: retried after `retry_after_ms` (the job is rejected
    /// with that retry-after), or with none, routed elsewhere now.
    Reject {
        /// Why, in words.
        reason: String,
        /// When to try again, ms.
        retry_after_ms: Option<f64>,
    },
    /// It stays out of the queue and is asked about again at the queue's
    /// next change, up to the hardware file's `[plugins] max_hold_ms`.
    Hold {
        /// Why, in words.
        reason: String,
    },
}

/// Orders the waiting work of a device queue.
pub trait QueueOrder: Send {
    /// The name traces and reports show.
    fn name(&self) -> &str;
    /// The serving version (`name@hash`) of a plugin; `None` for native code.
    fn version(&self) -> Option<String> {
        None
    }
    /// Moves pending notices (a tripped breaker) into `out`.
    fn take_notices(&self, _out: &mut Vec<PolicyNotice>) {}
    /// A permutation of `0..queue.waiting.len()`: the order to start them in.
    fn order(&self, queue: &QueueView) -> Result<Vec<u32>, PolicyFault>;
}

/// Decides whether a routed task joins its device's queue.
pub trait Admit: Send {
    /// The name traces and reports show.
    fn name(&self) -> &str;
    /// The serving version (`name@hash`) of a plugin; `None` for native code.
    fn version(&self) -> Option<String> {
        None
    }
    /// Moves pending notices into `out`.
    fn take_notices(&self, _out: &mut Vec<PolicyNotice>) {}
    /// Accept, reject or hold `arriving` for `queue`.
    fn decide(&self, arriving: &QueueTask, queue: &QueueView) -> Result<Admission, PolicyFault>;
}

/// Chooses running work to preempt for an arriving interactive task.
pub trait Preempt: Send {
    /// The name traces and reports show.
    fn name(&self) -> &str;
    /// The serving version (`name@hash`) of a plugin; `None` for native code.
    fn version(&self) -> Option<String> {
        None
    }
    /// Moves pending notices into `out`.
    fn take_notices(&self, _out: &mut Vec<PolicyNotice>) {}
    /// Ids of preemptible tasks of `queue.running` to preempt (empty: none).
    fn victims(&self, arriving: &QueueTask, queue: &QueueView) -> Result<Vec<u64>, PolicyFault>;
}

/// The queue roles served by plugins; a role left `None` is the native
/// default, which the engine runs on its own queues.
#[derive(Default)]
pub struct QueuePolicy {
    /// Queue order.
    pub order: Option<Box<dyn QueueOrder>>,
    /// Admission.
    pub admit: Option<Box<dyn Admit>>,
    /// Preemption.
    pub preempt: Option<Box<dyn Preempt>>,
}

impl std::fmt::Debug for QueuePolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl QueuePolicy {
    /// Whether every role is native.
    pub fn is_native(&self) -> bool {
        self.order.is_none() && self.admit.is_none() && self.preempt.is_none()
    }

    /// `, queue-order=… (v), admit=…, preempt=…` for the roles plugins
    /// serve; empty when all are native (a native run's description is
    /// unchanged).
    pub fn describe(&self) -> String {
        let part = |role: &str, name: &str, version: Option<String>| match version {
            Some(v) => format!(", {role}={name} ({v})"),
            None => format!(", {role}={name}"),
        };
        let mut s = String::new();
        if let Some(p) = &self.order {
            s += &part("queue-order", p.name(), p.version());
        }
        if let Some(p) = &self.admit {
            s += &part("admit", p.name(), p.version());
        }
        if let Some(p) = &self.preempt {
            s += &part("preempt", p.name(), p.version());
        }
        s
    }

    /// Moves every role's pending notices into `out`.
    pub fn take_notices(&self, out: &mut Vec<PolicyNotice>) {
        if let Some(p) = &self.order {
            p.take_notices(out);
        }
        if let Some(p) = &self.admit {
            p.take_notices(out);
        }
        if let Some(p) = &self.preempt {
            p.take_notices(out);
        }
    }
}

/// Index of a priority's queue: interactive work is served first.
pub fn queue_index(priority: Priority) -> usize {
    match priority {
        Priority::Interactive => 0,
        Priority::Batch => 1,
    }
}

/// The native queue order: interactive work first, then batch, each in the
/// order given (first come, first served; a preempted task goes back to
/// the head of its queue). A permutation of `0..waiting.len()`.
pub fn native_order(waiting: &[QueueTask]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..waiting.len() as u32).collect();
    order.sort_by_key(|&i| queue_index(waiting[i as usize].priority));
    order
}

/// Whether a queue has room for work of `priority` (native backpressure):
/// interactive work counts only the interactive work queued ahead of it
/// against the whole `limit`; batch work counts everything queued against
/// `batch_share` of it. A device with a free slot and nothing queued ahead
/// always has room.
pub fn queue_room(
    priority: Priority,
    queued: [usize; 2],
    free_slot: bool,
    limit: usize,
    batch_share: f64,
) -> bool {
    let interactive = priority == Priority::Interactive;
    let limit = if interactive {
        limit
    } else {
        (limit as f64 * batch_share) as usize
    };
    let ahead = queued[0] + if interactive { 0 } else { queued[1] };
    free_slot && ahead == 0 || ahead < limit
}

/// The native admission of a task routed to a queue: accept when the queue
/// has room for its priority (see [`queue_room`]), else reject with a
/// retry-after of `drain_ms`, when the queued work should be done.
pub fn native_admission(
    arriving: &QueueTask,
    queue: &QueueView,
    batch_share: f64,
    drain_ms: f64,
) -> Admission {
    let mut queued = [0usize; 2];
    for t in &queue.waiting {
        queued[queue_index(t.priority)] += 1;
    }
    if queue_room(
        arriving.priority,
        queued,
        queue.free_slots > 0,
        queue.limit as usize,
        batch_share,
    ) {
        Admission::Accept
    } else {
        Admission::Reject {
            reason: format!(
                "backpressure: the {} queue is full for {} work",
                queue.target.device(),
                match arriving.priority {
                    Priority::Interactive => "interactive",
                    Priority::Batch => "batch",
                }
            ),
            retry_after_ms: Some(drain_ms.max(0.001)),
        }
    }
}

/// The native preemption victims for an arriving interactive task: the
/// first running batch task that is preemptible, when no slot is free.
pub fn native_victims(arriving: &QueueTask, queue: &QueueView) -> Vec<u64> {
    if arriving.priority != Priority::Interactive || queue.free_slots > 0 {
        return Vec::new();
    }
    queue
        .running
        .iter()
        .find(|t| t.priority == Priority::Batch && t.preemptible)
        .map(|t| vec![t.id])
        .unwrap_or_default()
}

/// Checks a queue order: a permutation of `0..n`, each index once.
pub fn check_order(order: &[u32], n: usize) -> Result<(), String> {
    let mut seen = vec![false; n];
    for (pos, &i) in order.iter().enumerate() {
        let Some(s) = seen.get_mut(i as usize) else {
            return Err(format!(
                "index {i} at position {pos} is out of range (the queue has {n} waiting tasks)"
            ));
        };
        if *s {
            return Err(format!(
                "index {i} appears twice (at position {pos}): not a permutation of 0..{n}"
            ));
        }
        *s = true;
    }
    if order.len() != n {
        let missing: Vec<String> = seen
            .iter()
            .enumerate()
            .filter(|(_, s)| !**s)
            .take(8)
            .map(|(i, _)| i.to_string())
            .collect();
        return Err(format!(
            "{} indices for {n} waiting tasks; missing {}: not a permutation of 0..{n}",
            order.len(),
            missing.join(", ")
        ));
    }
    Ok(())
}

/// Checks preemption victims: each the id of a preemptible task of
/// `queue.running`, named once.
pub fn check_victims(victims: &[u64], queue: &QueueView) -> Result<(), String> {
    for (pos, id) in victims.iter().enumerate() {
        if victims[..pos].contains(id) {
            return Err(format!("task {id} is named twice"));
        }
        match queue.running.iter().find(|t| t.id == *id) {
            None => {
                let waiting = queue.waiting.iter().any(|t| t.id == *id);
                return Err(format!(
                    "task {id} is {}",
                    if waiting {
                        "waiting, not running"
                    } else {
                        "not running on this device"
                    }
                ));
            }
            Some(t) if !t.preemptible => {
                return Err(format!(
                    "task {id} ({} of job {}) is not preemptible",
                    t.node_id, t.job_id
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Checks an admission's reasons and retry-after.
pub fn check_admission(admission: &Admission, max_text: usize) -> Result<(), String> {
    let reason = match admission {
        Admission::Accept => return Ok(()),
        Admission::Reject {
            reason,
            retry_after_ms,
        } => {
            if let Some(ms) = retry_after_ms
                && !(ms.is_finite() && *ms >= 0.0)
            {
                return Err(format!("retry-after is {ms} ms (must be finite and >= 0)"));
            }
            reason
        }
        Admission::Hold { reason } => reason,
    };
    if reason.len() > max_text {
        return Err(format!(
            "the reason is {} bytes long (at most {max_text})",
            reason.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn task(id: u64, priority: Priority, preemptible: bool) -> QueueTask {
        QueueTask {
            id,
            job_id: id >> TASK_NODE_BITS,
            job_class: "c".into(),
            node_id: format!("n{id}"),
            kind: NodeKind::Sample,
            priority,
            risk: Risk::Reversible,
            arrival_ms: 0.0,
            enqueued_ms: 0.0,
            deadline_ms: None,
            service_ms: 1.0,
            preemptible,
        }
    }

    fn view(waiting: Vec<QueueTask>, running: Vec<QueueTask>, free: u32) -> QueueView {
        QueueView {
            target: Target::Tsu,
            now_ms: 0.0,
            free_slots: free,
            slots: running.len() as u32 + free,
            waiting,
            running,
            limit: 4,
        }
    }

    #[test]
    fn native_order_serves_interactive_work_first_then_arrival() {
        let w = [
            task(1, Priority::Batch, false),
            task(2, Priority::Interactive, false),
            task(3, Priority::Batch, false),
            task(4, Priority::Interactive, false),
        ];
        assert_eq!(native_order(&w), vec![1, 3, 0, 2]);
        assert_eq!(native_order(&[]), Vec::<u32>::new());
        check_order(&native_order(&w), 4).unwrap();
    }

    #[test]
    fn only_a_permutation_is_an_order() {
        check_order(&[2, 0, 1], 3).unwrap();
        check_order(&[], 0).unwrap();
        let dup = check_order(&[0, 0, 1], 3).unwrap_err();
        assert!(dup.contains("appears twice"), "{dup}");
        let missing = check_order(&[0, 2], 3).unwrap_err();
        assert!(missing.contains("missing 1"), "{missing}");
        let range = check_order(&[0, 1, 3], 3).unwrap_err();
        assert!(range.contains("out of range"), "{range}");
        assert!(check_order(&[0, 1, 2, 0], 3).is_err());
    }

    #[test]
    fn room_matches_the_backpressure_rule() {
        // Batch may fill half of a limit of 8: 4 queued is full.
        assert!(!queue_room(Priority::Batch, [1, 3], false, 8, 0.5));
        assert!(queue_room(Priority::Batch, [1, 2], false, 8, 0.5));
        // Interactive work counts only interactive work ahead of it.
        assert!(queue_room(Priority::Interactive, [7, 100], false, 8, 0.5));
        assert!(!queue_room(Priority::Interactive, [8, 0], false, 8, 0.5));
        // A free slot with nothing ahead: room even with a zero limit.
        assert!(queue_room(Priority::Batch, [0, 0], true, 0, 0.5));
        assert!(!queue_room(Priority::Batch, [0, 0], false, 0, 0.5));
    }

    #[test]
    fn native_admission_accepts_with_room_and_rejects_with_a_retry_after() {
        let arriving = task(9, Priority::Batch, false);
        // A limit of 4, half of it for batch work: one waiting leaves room.
        let mut q = view(vec![task(1, Priority::Batch, false)], vec![], 0);
        assert_eq!(native_admission(&arriving, &q, 0.5, 3.0), Admission::Accept);
        q.waiting.push(task(5, Priority::Batch, false));
        match native_admission(&arriving, &q, 0.5, 3.0) {
            Admission::Reject {
                reason,
                retry_after_ms,
            } => {
                assert_eq!(retry_after_ms, Some(3.0));
                assert!(reason.contains("tsu queue is full for batch"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn native_victim_is_the_first_preemptible_batch_task() {
        let arriving = task(9, Priority::Interactive, false);
        let running = vec![
            task(1, Priority::Interactive, true),
            task(2, Priority::Batch, false),
            task(3, Priority::Batch, true),
            task(4, Priority::Batch, true),
        ];
        let q = view(vec![], running, 0);
        assert_eq!(native_victims(&arriving, &q), vec![3]);
        // Batch arrivals preempt nothing; neither does a device with room.
        assert!(native_victims(&task(9, Priority::Batch, false), &q).is_empty());
        let roomy = QueueView { free_slots: 1, ..q };
        assert!(native_victims(&arriving, &roomy).is_empty());
    }

    #[test]
    fn victims_must_be_running_preemptible_and_named_once() {
        let q = view(
            vec![task(7, Priority::Batch, true)],
            vec![
                task(1, Priority::Batch, true),
                task(2, Priority::Batch, false),
            ],
            0,
        );
        check_victims(&[], &q).unwrap();
        check_victims(&[1], &q).unwrap();
        let e = check_victims(&[2], &q).unwrap_err();
        assert!(e.contains("not preemptible"), "{e}");
        let e = check_victims(&[7], &q).unwrap_err();
        assert!(e.contains("waiting, not running"), "{e}");
        let e = check_victims(&[99], &q).unwrap_err();
        assert!(e.contains("not running"), "{e}");
        let e = check_victims(&[1, 1], &q).unwrap_err();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn admissions_are_checked() {
        check_admission(&Admission::Accept, 4).unwrap();
        let bad = Admission::Reject {
            reason: "x".into(),
            retry_after_ms: Some(f64::NAN),
        };
        assert!(check_admission(&bad, 4).is_err());
        let long = Admission::Hold {
            reason: "xxxxx".into(),
        };
        assert!(check_admission(&long, 4).is_err());
    }

    #[test]
    fn task_ids_are_unique_per_job_and_node() {
        assert_ne!(task_id(1, 0), task_id(0, 1));
        assert_eq!(task_id(3, 5) >> TASK_NODE_BITS, 3);
        const { assert!(crate::model::limits::MAX_NODES < 1 << TASK_NODE_BITS) };
    }
}
