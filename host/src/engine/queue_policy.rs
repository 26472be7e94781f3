//! The queue roles in the event loop: a queue-order plugin picks which
//! waiting task a free slot takes, an admission plugin accepts, refuses or
//! holds a routed task, a preemption plugin names the running work an
//! interactive arrival preempts. Every role is optional: without its
//! plugin the engine runs the native rules of
//! [`decide::admit`](super::decide::admit) and [`decide::route`](super::decide::route)
//! exactly as before, without building a queue view.
//!
//! A plugin answer that breaks its contract (not a permutation, a victim
//! that is not a running preemptible task) or a plugin that faults is a
//! traced `policy_fault`, and the native choice stands. A held task waits
//! outside the queue, is asked about again whenever its device's queue
//! changes, and is rejected, with a reason naming the limit, once it has
//! been held for `[plugins] max_hold_ms`: no job is lost to a hold.

use super::decide::admit::{next_to_start, queue_of};
use super::decide::route::{Candidate, Routed, choose};
use super::state::{EventKind, Task};
use super::{Engine, EngineError, Mode};
use crate::device::{Device, Target};
use crate::model::graph::{NodeKind, Priority};
use crate::policy::{
    Admission, Estimate, PolicyFault, QueueTask, QueueView, check_admission, check_order,
    check_victims, queue_room, task_id,
};
use crate::trace::{HoldOutcome, JobStatus, NodeStatus, TraceEvent};

/// Longest reason text kept from an admission plugin.
const MAX_REASON: usize = 4096;

/// A routed task an admission plugin holds out of its device's queue.
#[derive(Debug, Clone)]
pub(super) struct Held {
    /// Unique per run: the expiry event names it.
    pub(super) id: u64,
    pub(super) slot: u32,
    pub(super) job: u64,
    pub(super) node: u32,
    /// The node's id in its graph, for the trace.
    pub(super) node_id: String,
    pub(super) target: Target,
    pub(super) estimate: Estimate,
    pub(super) timeout_ms: f64,
    pub(super) since_ms: f64,
    pub(super) reason: String,
    /// The device's (queued, busy) when it was last asked about.
    pub(super) seen: (usize, usize),
}

/// The admission plugin's word on a routing decision.
pub(super) struct Admitted {
    /// The decision after admission (a refused target may send the node
    /// elsewhere, or reject the job).
    pub(super) outcome: Routed,
    /// The chosen task is held, for this reason.
    pub(super) hold: Option<String>,
    /// Faults to trace (the native admission stood).
    pub(super) faults: Vec<PolicyFault>,
}

impl Engine {
    /// Whether a task runs in slices that can stop at a sweep boundary.
    fn sliced(&self, t: &Task) -> bool {
        match self.config.mode {
            Mode::Execute => t.sampling.is_some(),
            Mode::Simulate => t.target.preemptible(),
        }
    }

    /// Node `node` of the job in `slot` as queue roles see it.
    fn queue_task(
        &self,
        slot: u32,
        node: u32,
        target: Target,
        service_ms: f64,
        enqueued_ms: f64,
        preemptible: bool,
    ) -> QueueTask {
        let job = &self.jobs[slot];
        let plan = &self.classes[job.class as usize];
        let n = &plan.graph.nodes[node as usize];
        let budget = self.node_budget(slot, node);
        QueueTask {
            id: task_id(job.id, node),
            job_id: job.id,
            job_class: plan.name.clone(),
            node_id: n.id.clone(),
            kind: n.kind(),
            priority: plan.graph.qos.priority,
            risk: plan.graph.qos.risk,
            arrival_ms: job.arrival_ms,
            enqueued_ms,
            deadline_ms: budget.deadline_p50_ms.map(|d| job.arrival_ms + d),
            service_ms,
            preemptible: preemptible && target.samples(),
        }
    }

    /// A task of the slab as queue roles see it.
    fn task_view(&self, id: u32) -> QueueTask {
        let t = &self.tasks[id];
        let preemptible = self.sliced(t) && !t.preempt_requested;
        self.queue_task(
            t.job,
            t.node,
            t.target,
            t.estimate_ms,
            t.queued_ms,
            preemptible,
        )
    }

    /// A routed node not yet admitted, as queue roles see it.
    fn arriving_view(
        &self,
        slot: u32,
        node: u32,
        target: Target,
        estimate: &Estimate,
    ) -> QueueTask {
        let sliceable = match self.config.mode {
            Mode::Execute => true,
            Mode::Simulate => target.preemptible(),
        };
        let sample = self.classes[self.jobs[slot].class as usize].graph.nodes[node as usize].kind()
            == NodeKind::Sample;
        self.queue_task(
            slot,
            node,
            target,
            estimate.latency_p50_ms - estimate.queue_wait_ms,
            self.now_ms,
            sample && sliceable,
        )
    }

    /// Device `d`'s queue for a decision about `target`.
    fn queue_view(&self, d: Device, target: Target) -> QueueView {
        let dev = &self.devices[d];
        QueueView {
            target,
            now_ms: self.now_ms,
            free_slots: dev.slots.saturating_sub(dev.busy) as u32,
            slots: dev.slots as u32,
            waiting: dev.queues[0]
                .iter()
                .chain(&dev.queues[1])
                .map(|&id| self.task_view(id))
                .collect(),
            running: dev.running.iter().map(|&id| self.task_view(id)).collect(),
            limit: self.hw.queues.limit(d) as u32,
        }
    }

    /// Counts, logs and traces a queue role's fault; the native rule serves.
    /// `about` is the (slot, node) whose decision met it (none for a queue
    /// order, a decision about a whole queue).
    fn queue_fault(
        &mut self,
        role: &str,
        fault: PolicyFault,
        fallback: &str,
        about: Option<(u32, u32)>,
    ) -> Result<(), EngineError> {
        // A tripped role is answered natively without a word (the trip
        // itself is traced once, as a notice).
        if fault.kind == "tripped" {
            return Ok(());
        }
        self.note_fault(role, &fault, fallback);
        let (job, node) = about.map(|(slot, node)| self.ids(slot, node)).unzip();
        self.emit(TraceEvent::PolicyFault {
            t_ms: self.now_ms,
            job,
            node,
            role: role.into(),
            fault,
            fallback: fallback.into(),
        })
    }

    /// The next task a free slot of `d` takes, and its queue: the queue
    /// order plugin's first choice, or the native head of queue.
    pub(super) fn next_queued(&mut self, d: Device) -> Result<Option<(usize, u32)>, EngineError> {
        let dev = &self.devices[d];
        let native = next_to_start(&dev.queues);
        let Some(plugin) = &self.policy.queue.order else {
            return Ok(native);
        };
        if dev.queued() < 2 {
            return Ok(native);
        }
        let ids: Vec<(usize, u32)> = (0..2)
            .flat_map(|pi| dev.queues[pi].iter().map(move |&id| (pi, id)))
            .collect();
        let target = self.tasks[ids[0].1].target;
        let view = self.queue_view(d, target);
        let answer = plugin.order(&view).and_then(|order| {
            check_order(&order, ids.len())
                .map(|()| order)
                .map_err(|reason| invalid(plugin.name(), plugin.version(), reason))
        });
        match answer {
            Ok(order) => Ok(Some(ids[order[0] as usize])),
            Err(fault) => {
                self.queue_fault("queue-order", fault, "native queue order", None)?;
                Ok(native)
            }
        }
    }

    /// Asks the admission plugin (if any) about a routing decision: it may
    /// accept the chosen target, refuse it (with a retry-after: the job is
    /// rejected; without one: the node goes to the next best target), or
    /// hold the task. The native backpressure has already ruled (the
    /// plugin only sees targets with queue room).
    pub(super) fn plugin_admission(
        &self,
        slot: u32,
        node: u32,
        outcome: Routed,
        priority: Priority,
        order: &[Target],
    ) -> Admitted {
        let mut admitted = Admitted {
            outcome,
            hold: None,
            faults: Vec::new(),
        };
        let Some(plugin) = &self.policy.queue.admit else {
            return admitted;
        };
        let mut cands: Vec<Candidate> = self.scratch.clone();
        let mut refused: Vec<String> = Vec::new();
        while let Routed::Chosen(i) = admitted.outcome {
            let c = cands[i];
            let arriving = self.arriving_view(slot, node, c.target, &c.estimate);
            let view = self.queue_view(c.target.device(), c.target);
            let answer = plugin.decide(&arriving, &view).and_then(|a| {
                check_admission(&a, MAX_REASON)
                    .map(|()| a)
                    .map_err(|reason| invalid(plugin.name(), plugin.version(), reason))
            });
            match answer {
                Ok(Admission::Accept) => break,
                Ok(Admission::Hold { reason }) => {
                    admitted.hold = Some(reason);
                    break;
                }
                Ok(Admission::Reject {
                    reason,
                    retry_after_ms: Some(ms),
                }) => {
                    admitted.outcome = Routed::Busy {
                        retry_after_ms: ms,
                        why: format!("admission refused by {}: {reason}", plugin.name()),
                    };
                }
                Ok(Admission::Reject {
                    reason,
                    retry_after_ms: None,
                }) => {
                    refused.push(format!("{}: {reason}", c.target));
                    cands[i].policy_ok = false;
                    admitted.outcome = match choose(&cands, priority, order, String::new) {
                        Routed::Chosen(j) => Routed::Chosen(j),
                        _ => Routed::Busy {
                            retry_after_ms: c.drain_ms.max(0.001),
                            why: format!(
                                "admission refused by {} on every target ({})",
                                plugin.name(),
                                refused.join("; ")
                            ),
                        },
                    };
                }
                Err(fault) => {
                    admitted.faults.push(fault);
                    break;
                }
            }
        }
        admitted
    }

    /// Traces the faults of the admission of node `node` of the job in
    /// `slot`.
    pub(super) fn admission_faults(
        &mut self,
        slot: u32,
        node: u32,
        faults: Vec<PolicyFault>,
    ) -> Result<(), EngineError> {
        for f in faults {
            self.queue_fault("admit", f, "native admission (accept)", Some((slot, node)))?;
        }
        Ok(())
    }

    /// Keeps a routed task out of its device's queue for the admission
    /// plugin; past `[plugins] max_hold_ms` it is rejected.
    pub(super) fn hold(
        &mut self,
        slot: u32,
        node: u32,
        target: Target,
        estimate: Estimate,
        timeout_ms: f64,
        reason: String,
    ) -> Result<(), EngineError> {
        let limit = self.hw.plugins.max_hold_ms;
        let (job_id, node_id) = self.ids(slot, node);
        self.emit(TraceEvent::Hold {
            t_ms: self.now_ms,
            job: job_id,
            node: node_id.clone(),
            target,
            plugin: self.admit_name(),
            reason: reason.clone(),
            max_hold_ms: limit,
        })?;
        self.hold_seq += 1;
        let id = self.hold_seq;
        let h = Held {
            id,
            slot,
            job: job_id,
            node,
            node_id,
            target,
            estimate,
            timeout_ms,
            since_ms: self.now_ms,
            reason,
            seen: (0, 0),
        };
        if limit == 0 {
            self.end_hold(&h, HoldOutcome::HoldLimit)?;
            return self.reject_held(slot, node, target, 0.0, &h.reason);
        }
        let dev = &self.devices[target.device()];
        let seen = (dev.queued(), dev.busy);
        self.jobs[slot].nodes[node as usize].target = Some(target);
        tracing::debug!(
            job = self.jobs[slot].id,
            node,
            %target,
            "admission held: {}",
            h.reason
        );
        self.held.push(Held { seen, ..h });
        self.push(
            self.now_ms + limit as f64,
            EventKind::HoldExpiry { hold: id },
        );
        Ok(())
    }

    /// The admission plugin's name, for holds.
    fn admit_name(&self) -> String {
        self.policy
            .queue
            .admit
            .as_ref()
            .map_or("the admission plugin", |p| p.name())
            .to_string()
    }

    /// Traces the end of hold `h`.
    fn end_hold(&mut self, h: &Held, outcome: HoldOutcome) -> Result<(), EngineError> {
        self.emit(TraceEvent::HoldEnd {
            t_ms: self.now_ms,
            job: h.job,
            node: h.node_id.clone(),
            target: h.target,
            held_ms: self.now_ms - h.since_ms,
            outcome,
            reason: h.reason.clone(),
        })
    }

    /// Rejects a held task: its job ends rejected, the reason naming the
    /// hold limit.
    fn reject_held(
        &mut self,
        slot: u32,
        node: u32,
        target: Target,
        held_ms: f64,
        reason: &str,
    ) -> Result<(), EngineError> {
        let limit = self.hw.plugins.max_hold_ms;
        let plugin = self.admit_name();
        let why = format!(
            "held by {plugin} for {held_ms:.3} ms on {target}, reaching the hold limit \
             ([plugins] max_hold_ms = {limit} ms): {reason}"
        );
        self.counters.rejections += 1;
        let (job_id, node_id) = self.ids(slot, node);
        self.emit(TraceEvent::Reject {
            t_ms: self.now_ms,
            job: job_id,
            node: node_id,
            retry_after_ms: limit as f64,
            reason: why.clone(),
        })?;
        self.jobs[slot].retry_after_ms = Some(limit as f64);
        self.end_job_early(slot, JobStatus::Rejected, why, Some(node as usize))
    }

    /// Whether a held task's node still waits for admission.
    fn still_held(&self, h: &Held) -> bool {
        let job = &self.jobs[h.slot];
        job.id == h.job && job.nodes[h.node as usize].status.is_none()
    }

    /// The hold limit of hold `id` is reached: reject it if it still waits.
    pub(super) fn hold_expired(&mut self, id: u64) -> Result<(), EngineError> {
        let Some(pos) = self.held.iter().position(|h| h.id == id) else {
            return Ok(());
        };
        let h = self.held.remove(pos);
        if !self.still_held(&h) {
            return self.end_hold(&h, HoldOutcome::JobEnded);
        }
        self.end_hold(&h, HoldOutcome::HoldLimit)?;
        self.reject_held(
            h.slot,
            h.node,
            h.target,
            self.now_ms - h.since_ms,
            &h.reason,
        )
    }

    /// Asks again about every held task whose device's queue changed since
    /// it was last asked.
    pub(super) fn retry_holds(&mut self) -> Result<(), EngineError> {
        if self.held.is_empty() {
            return Ok(());
        }
        let held = std::mem::take(&mut self.held);
        let mut keep = Vec::with_capacity(held.len());
        for mut h in held {
            if !self.still_held(&h) {
                self.end_hold(&h, HoldOutcome::JobEnded)?;
                continue;
            }
            if self.jobs[h.slot].status.is_some() {
                // The job ended another way: the node is not needed.
                self.end_hold(&h, HoldOutcome::JobEnded)?;
                self.close_node(
                    h.slot,
                    h.node,
                    NodeStatus::Skipped,
                    Some("the job ended while admission held this node".into()),
                    None,
                )?;
                continue;
            }
            let d = h.target.device();
            let dev = &self.devices[d];
            let now = (dev.queued(), dev.busy);
            if now == h.seen {
                keep.push(h);
                continue;
            }
            h.seen = now;
            let Some(plugin) = &self.policy.queue.admit else {
                keep.push(h);
                continue;
            };
            let name = plugin.name().to_string();
            let arriving = self.arriving_view(h.slot, h.node, h.target, &h.estimate);
            let view = self.queue_view(d, h.target);
            let answer = plugin.decide(&arriving, &view).and_then(|a| {
                check_admission(&a, MAX_REASON)
                    .map(|()| a)
                    .map_err(|reason| invalid(plugin.name(), plugin.version(), reason))
            });
            let answer = match answer {
                Ok(a) => a,
                Err(fault) => {
                    self.queue_fault(
                        "admit",
                        fault,
                        "native admission (accept)",
                        Some((h.slot, h.node)),
                    )?;
                    Admission::Accept
                }
            };
            match answer {
                Admission::Accept => {
                    let priority = self.classes[self.jobs[h.slot].class as usize]
                        .graph
                        .qos
                        .priority;
                    let dev = &self.devices[d];
                    let queued = [dev.queues[0].len(), dev.queues[1].len()];
                    let room = queue_room(
                        priority,
                        queued,
                        dev.busy < dev.slots,
                        self.hw.queues.limit(d),
                        self.hw.queues.batch_share,
                    );
                    if room {
                        self.end_hold(&h, HoldOutcome::Admitted)?;
                        self.admit(h.slot, h.node, h.target, h.estimate, h.timeout_ms)?;
                    } else {
                        // Accepted into a full queue: it waits for room,
                        // still bounded by the hold limit.
                        keep.push(h);
                    }
                }
                Admission::Hold { reason } => {
                    h.reason = reason;
                    keep.push(h);
                }
                Admission::Reject {
                    reason,
                    retry_after_ms,
                } => {
                    let retry = retry_after_ms.unwrap_or(0.0);
                    h.reason = reason.clone();
                    self.end_hold(&h, HoldOutcome::Rejected)?;
                    let why = format!("admission refused by {name} after a hold: {reason}");
                    self.counters.rejections += 1;
                    let (job_id, node_id) = self.ids(h.slot, h.node);
                    self.emit(TraceEvent::Reject {
                        t_ms: self.now_ms,
                        job: job_id,
                        node: node_id,
                        retry_after_ms: retry,
                        reason: why.clone(),
                    })?;
                    self.jobs[h.slot].retry_after_ms = Some(retry);
                    self.end_job_early(h.slot, JobStatus::Rejected, why, Some(h.node as usize))?;
                }
            }
        }
        // Holds taken while these were asked (none today) stay too.
        keep.append(&mut self.held);
        self.held = keep;
        Ok(())
    }

    /// Preemption for interactive task `arriving`, queued on the full
    /// device `d`: the preemption plugin's victims, or the native one.
    pub(super) fn preempt_for_task(
        &mut self,
        d: Device,
        by_slot: u32,
        arriving: u32,
    ) -> Result<(), EngineError> {
        let Some(plugin) = &self.policy.queue.preempt else {
            return self.preempt_for(d, by_slot);
        };
        let target = self.tasks[arriving].target;
        let task = self.task_view(arriving);
        let view = self.queue_view(d, target);
        let answer = plugin.victims(&task, &view).and_then(|v| {
            check_victims(&v, &view)
                .map(|()| v)
                .map_err(|reason| invalid(plugin.name(), plugin.version(), reason))
        });
        let victims = match answer {
            Ok(v) => v,
            Err(fault) => {
                let about = (self.tasks[arriving].job, self.tasks[arriving].node);
                self.queue_fault("preempt", fault, "native preemption victim", Some(about))?;
                return self.preempt_for(d, by_slot);
            }
        };
        let running = self.devices[d].running.clone();
        for v in victims {
            let victim = running
                .iter()
                .copied()
                .find(|&id| self.task_view_id(id) == v)
                .expect("checked: a running task");
            self.preempt_task(victim, by_slot)?;
        }
        Ok(())
    }

    /// The queue-role id of task `id`.
    fn task_view_id(&self, id: u32) -> u64 {
        let t = &self.tasks[id];
        task_id(self.jobs[t.job].id, t.node)
    }

    /// The queue a suspended task goes back to.
    pub(super) fn queue_of_task(&self, id: u32) -> usize {
        queue_of(self.tasks[id].priority)
    }
}

fn invalid(name: &str, version: Option<String>, reason: String) -> PolicyFault {
    PolicyFault {
        policy: match version {
            Some(v) => format!("{name} ({v})"),
            None => name.to_string(),
        },
        reason: format!("returned invalid output: {reason}"),
        kind: "invalid_output".into(),
        ..PolicyFault::default()
    }
}
