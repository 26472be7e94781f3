//! Device queues: admitting a routed node, preemption, dispatching queued
//! work to free slots, releasing slots, and starting a task in the mode's
//! way. The choices come from [`decide::admit`](super::decide::admit).

use super::decide::admit::{
    RunningTask, StealOption, expected_wait_ms, preemption_victim, queue_of, remaining_ms,
    simulated_progress, steal_choice,
};
use super::decide::route::{QueueSnapshot, assess};
use super::state::Task;
use super::{Engine, EngineError, Mode};
use crate::device::{Device, Target};
use crate::model::graph::Priority;
use crate::policy::Estimate;
use crate::trace::{FailureKind, TraceEvent};

impl Engine {
    pub(super) fn admit(
        &mut self,
        slot: u32,
        node: u32,
        target: Target,
        estimate: Estimate,
        timeout_ms: f64,
    ) -> Result<(), EngineError> {
        let job = &mut self.jobs[slot];
        job.nodes[node as usize].target = Some(target);
        let class = job.class as usize;
        let priority = self.classes[class].graph.qos.priority;
        let service = estimate.latency_p50_ms - estimate.queue_wait_ms;
        let seed = self.classes[class].graph.nodes[node as usize]
            .sample()
            .map_or(0, |s| s.seed)
            .wrapping_add(self.config.seed)
            .wrapping_add(job.id);
        let task = Task {
            job: slot,
            node,
            target,
            priority,
            estimate_ms: service,
            generation: 0,
            started: false,
            run_started_ms: 0.0,
            first_start_ms: 0.0,
            timeout_ms,
            remaining_ms: None,
            run_ms: 0.0,
            drawn_ms: 0.0,
            timed_out: false,
            busy_ms: 0.0,
            energy_j: 0.0,
            sampling: None,
            program: None,
            seed,
            preempt_requested: false,
            preempted_by: 0,
            moved: false,
            result: None,
            last_checked_samples: 0,
            luck: None,
            early_at: None,
            queued_ms: self.now_ms,
        };
        let id = self.tasks.insert(task);
        let d = target.device();
        let pi = queue_of(priority);
        self.devices[d].queues[pi].push_back(id);
        self.devices[d].backlog_ms[pi] += service;
        if self.trace.is_some() {
            let queue_len = self.devices[d].queues[pi].len();
            let (job_id, node_id) = self.ids(slot, node);
            self.emit(TraceEvent::Admit {
                t_ms: self.now_ms,
                job: job_id,
                node: node_id,
                target,
                queue_len,
            })?;
        }
        if self.devices[d].busy >= self.devices[d].slots && pi == 0 {
            self.preempt_for_task(target.device(), slot, id)?;
        }
        self.dispatch(target.device())
    }

    /// Suspends one running preemptible batch task on `device` so waiting
    /// interactive work can start (at once in simulate mode, at the next
    /// sweep boundary in execute mode).
    pub(super) fn preempt_for(&mut self, device: Device, by_slot: u32) -> Result<(), EngineError> {
        let d = device;
        let execute = self.config.mode == Mode::Execute;
        let victim = preemption_victim(self.devices[d].running.iter().map(|&id| {
            let t = &self.tasks[id];
            RunningTask {
                id,
                priority: t.priority,
                target: t.target,
                sliced: if execute {
                    t.sampling.is_some()
                } else {
                    t.target.preemptible()
                },
                preempt_requested: t.preempt_requested,
            }
        }));
        let Some(victim) = victim else {
            return Ok(());
        };
        self.preempt_task(victim, by_slot)
    }

    /// Suspends running task `victim` for the job in `by_slot`: at once in
    /// simulate mode, at its next sweep boundary in execute mode.
    pub(super) fn preempt_task(&mut self, victim: u32, by_slot: u32) -> Result<(), EngineError> {
        let by_job = self.jobs[by_slot].id;
        match self.config.mode {
            Mode::Simulate => {
                let now = self.now_ms;
                let task = &mut self.tasks[victim];
                let (remaining, progress) =
                    simulated_progress(now, task.run_started_ms, task.run_ms);
                let done = now - task.run_started_ms;
                task.remaining_ms = Some(remaining);
                task.busy_ms += done;
                task.generation += 1;
                self.suspend(victim, by_job, progress)
            }
            Mode::Execute => {
                let task = &mut self.tasks[victim];
                task.preempt_requested = true;
                task.preempted_by = by_job;
                Ok(())
            }
        }
    }

    pub(super) fn suspend(
        &mut self,
        task_id: u32,
        by_job: u64,
        progress: f64,
    ) -> Result<(), EngineError> {
        // Back to the head of its queue (batch, unless a preemption plugin
        // chose interactive work).
        let pi = self.queue_of_task(task_id);
        let task = &mut self.tasks[task_id];
        task.preempt_requested = false;
        let (slot, node, target, est) = (task.job, task.node, task.target, task.estimate_ms);
        let d = target.device();
        let dev = &mut self.devices[d];
        dev.busy -= 1;
        dev.running_ms = (dev.running_ms - est).max(0.0);
        dev.backlog_ms[pi] += est;
        dev.running.retain(|&t| t != task_id);
        dev.queues[pi].push_front(task_id);
        self.counters.preemptions += 1;
        let (job_id, node_id) = self.ids(slot, node);
        self.emit(TraceEvent::Preempt {
            t_ms: self.now_ms,
            job: job_id,
            node: node_id,
            target,
            by_job,
            progress,
        })
    }

    pub(super) fn dispatch(&mut self, device: Device) -> Result<(), EngineError> {
        let d = device;
        loop {
            while self.devices[d].busy < self.devices[d].slots {
                let Some((pi, id)) = self.next_queued(d)? else {
                    break;
                };
                let dev = &mut self.devices[d];
                match dev.queues[pi].iter().position(|&t| t == id) {
                    Some(0) => {
                        dev.queues[pi].pop_front();
                    }
                    Some(k) => {
                        dev.queues[pi].remove(k);
                    }
                    None => unreachable!("the next task is queued"),
                }
                let est = self.tasks[id].estimate_ms;
                dev.backlog_ms[pi] = (dev.backlog_ms[pi] - est).max(0.0);
                dev.running_ms += est;
                dev.busy += 1;
                dev.running.push(id);
                self.start(id)?;
            }
            // Execute mode: a device left idle takes work queued elsewhere
            // that it would finish sooner (the placement was made on figures
            // that measurement has since contradicted).
            if !self.idle(d) || !self.steal_into(d)? {
                return Ok(());
            }
        }
    }

    /// Execute mode: a device online with a free slot and nothing queued.
    fn idle(&self, d: Device) -> bool {
        let dev = &self.devices[d];
        self.config.mode == Mode::Execute
            && dev.busy < dev.slots
            && dev.queued() == 0
            && self.device_online(d)
    }

    /// Execute mode, after every event: each device looks for work queued
    /// elsewhere that it would end sooner (what it knows of that work
    /// changes as runs end and the tables learn, not only when its own work
    /// ends). An idle device takes any such work and starts it; a busy one
    /// only interactive work, into its queue.
    pub(super) fn rebalance(&mut self) -> Result<(), EngineError> {
        if self.config.mode != Mode::Execute {
            return Ok(());
        }
        for d in Device::ALL {
            let queued_elsewhere = Device::ALL
                .into_iter()
                .any(|o| o != d && self.devices[o].queued() > 0);
            if !queued_elsewhere || !self.device_online(d) || self.hw.slots(d) == 0 {
                continue;
            }
            if self.idle(d) {
                self.dispatch(d)?;
            } else {
                while self.steal_into(d)? {}
            }
        }
        Ok(())
    }

    /// The learned mean service of a task's node on `target`.
    fn learned_ms(&self, task: &Task, target: Target) -> f64 {
        let np = &self.classes[self.jobs[task.job].class as usize].nodes[task.node as usize];
        self.tables.get(np.slots[np.target_slot(target)]).mean_ms
    }

    /// What `d`'s running tasks still need before work of queue `pi` can
    /// start (see [`remaining_ms`]).
    fn running_left_ms(&self, d: Device, pi: usize) -> f64 {
        let now = self.now_ms;
        self.devices[d]
            .running
            .iter()
            .map(|&id| {
                let t = &self.tasks[id];
                let ran = t.busy_ms + (now - t.run_started_ms);
                let run_left = t.run_started_ms + t.run_ms - now;
                let yields = pi == 0 && t.priority == Priority::Batch && t.sampling.is_some();
                remaining_ms(self.learned_ms(t, t.target), ran, run_left, yields)
            })
            .sum()
    }

    /// Learned service of everything in `d`'s queue `pi`.
    fn queued_ms(&self, d: Device, pi: usize) -> f64 {
        self.devices[d].queues[pi]
            .iter()
            .map(|&id| {
                let t = &self.tasks[id];
                self.learned_ms(t, t.target)
            })
            .sum()
    }

    /// Tasks looked at per queue when a device looks for work.
    const STEAL_SCAN: usize = 32;

    /// Work stealing: moves one task queued on a busy device to `device`
    /// (see [`steal_choice`]): any work when `device` is idle, else only
    /// interactive work, behind its own. Each task moves at most once.
    /// Whether it moved one.
    fn steal_into(&mut self, device: Device) -> Result<bool, EngineError> {
        let thief_idle = self.idle(device);
        let idle_queue = QueueSnapshot {
            slots: self.devices[device].slots,
            busy: 0,
            queued: [0, 0],
            backlog_ms: [0.0, 0.0],
            running_ms: 0.0,
            limit: self.hw.queues.limit(device),
            batch_share: self.hw.queues.batch_share,
        };
        let here_wait_ms = if thief_idle {
            0.0
        } else {
            expected_wait_ms(
                self.running_left_ms(device, 0),
                self.queued_ms(device, 0),
                self.devices[device].slots,
            )
        };
        let mut options: Vec<(StealOption, Device, usize, Target)> = Vec::new();
        // Interactive work first, then batch; each queue from its head.
        for pi in 0..if thief_idle { 2 } else { 1 } {
            for from in Device::ALL {
                let dev = &self.devices[from];
                if from == device || dev.busy < dev.slots || dev.queues[pi].is_empty() {
                    continue;
                }
                let running_left = self.running_left_ms(from, pi);
                let mut ahead = if pi == 1 {
                    self.queued_ms(from, 0)
                } else {
                    0.0
                };
                for &id in dev.queues[pi].iter().take(Self::STEAL_SCAN) {
                    let t = &self.tasks[id];
                    let there_ms = self.learned_ms(t, t.target);
                    let wait_ms = expected_wait_ms(running_left, ahead, dev.slots);
                    ahead += there_ms;
                    if t.started || t.moved {
                        // Suspended mid-run (its state lives on its
                        // backend), or moved once already.
                        continue;
                    }
                    let job = &self.jobs[t.job];
                    let class = job.class as usize;
                    let np = &self.classes[class].nodes[t.node as usize];
                    let Some(k) = np.targets.iter().position(|x| x.device() == device) else {
                        continue;
                    };
                    let rt = &job.nodes[t.node as usize];
                    let facts = self.candidate_facts(class, t.node, k, rt.excluded);
                    let budget = self.node_budget(t.job, t.node);
                    let here = assess(&facts, &idle_queue, t.priority, &budget, None, rt.attempt);
                    options.push((
                        StealOption {
                            id,
                            here,
                            here_measured: self.tables.get(np.slots[k]).total > 0,
                            here_wait_ms,
                            wait_ms,
                            there_ms,
                        },
                        from,
                        pi,
                        np.targets[k],
                    ));
                }
            }
        }
        let Some(id) = steal_choice(options.iter().map(|o| o.0)) else {
            return Ok(false);
        };
        let (option, from, pi, to) = *options
            .iter()
            .find(|o| o.0.id == id)
            .expect("the choice is an option");
        let old = &mut self.devices[from];
        old.queues[pi].retain(|&t| t != id);
        let task = &mut self.tasks[id];
        old.backlog_ms[pi] = (old.backlog_ms[pi] - task.estimate_ms).max(0.0);
        let was = task.target;
        task.target = to;
        task.moved = true;
        task.estimate_ms = option.here.estimate.latency_p50_ms;
        let (slot, node, est) = (task.job, task.node, task.estimate_ms);
        self.jobs[slot].nodes[node as usize].target = Some(to);
        let new = &mut self.devices[device];
        new.queues[pi].push_back(id);
        new.backlog_ms[pi] += est;
        let full = new.busy >= new.slots;
        self.counters.steals += 1;
        if self.trace.is_some() {
            let (job, node_id) = self.ids(slot, node);
            self.emit(TraceEvent::Steal {
                t_ms: self.now_ms,
                job,
                node: node_id,
                from: was,
                to,
                wait_ms: option.wait_ms,
                there_ms: option.there_ms,
                here_wait_ms,
                here_ms: est,
            })?;
        }
        if full && pi == 0 {
            // As at admission: interactive work waiting on a full device
            // asks a batch sampler there to yield.
            self.preempt_for_task(device, slot, id)?;
        }
        Ok(true)
    }

    pub(super) fn release(&mut self, task_id: u32) -> Task {
        let task = self.tasks.remove(task_id);
        self.free_slot(task_id, task.target.device(), task.estimate_ms);
        task
    }

    /// [`release`](Self::release) for a caller that needs only what `f`
    /// reads of the task: it is dropped in place, not moved out.
    pub(super) fn release_with<R>(&mut self, task_id: u32, f: impl FnOnce(&Task) -> R) -> R {
        let (d, est, out) = self
            .tasks
            .remove_with(task_id, |t| (t.target.device(), t.estimate_ms, f(t)));
        self.free_slot(task_id, d, est);
        out
    }

    /// A released task's slot on device `d` is free again.
    fn free_slot(&mut self, task_id: u32, d: Device, estimate_ms: f64) {
        let dev = &mut self.devices[d];
        dev.running_ms = (dev.running_ms - estimate_ms).max(0.0);
        dev.busy -= 1;
        dev.running.retain(|&t| t != task_id);
    }

    pub(super) fn start(&mut self, task_id: u32) -> Result<(), EngineError> {
        let now = self.now_ms;
        let (slot, node, target, resumed) = {
            let t = &mut self.tasks[task_id];
            let resumed = t.started;
            if !t.started {
                t.started = true;
                t.first_start_ms = now;
            }
            t.run_started_ms = now;
            (t.job, t.node, t.target, resumed)
        };
        let device = target.device();
        if self.trace.is_some() {
            let (job, node_id) = self.ids(slot, node);
            let event = if resumed {
                TraceEvent::Resume {
                    t_ms: now,
                    job,
                    node: node_id,
                    target,
                }
            } else {
                TraceEvent::Start {
                    t_ms: now,
                    job,
                    node: node_id,
                    target,
                }
            };
            self.emit(event)?;
        }
        if !self.device_online(device) {
            self.release(task_id);
            return self.fall_back(
                slot,
                node,
                target,
                FailureKind::BackendUnavailable,
                format!("{device} went offline"),
            );
        }
        if self.hw.injected_error(device, now) {
            self.release(task_id);
            return self.fall_back(
                slot,
                node,
                target,
                FailureKind::BackendError,
                format!("injected {device} error"),
            );
        }
        let (kind, effect) = {
            let job = &self.jobs[slot];
            let n = &self.classes[job.class as usize].graph.nodes[node as usize];
            (n.kind(), n.effect().cloned())
        };
        if let Some(spec) = effect {
            return self.run_effect(task_id, spec);
        }
        match self.config.mode {
            Mode::Simulate => self.start_simulated(task_id),
            Mode::Execute => self.start_executed(task_id, kind),
        }
    }
}
