//! Device queues: admitting a routed node, preemption, dispatching queued
//! work to free slots, releasing slots, and starting a task in the mode's
//! way. The choices come from [`decide::admit`](super::decide::admit).

use super::decide::admit::{
    RunningTask, next_to_start, preemption_victim, queue_of, simulated_progress,
};
use super::state::Task;
use super::{Engine, EngineError, Mode};
use crate::device::{Device, Target};
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
            result: None,
            last_checked_samples: 0,
            luck: None,
            early_at: None,
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
            self.preempt_for(target.device(), slot)?;
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
        let task = &mut self.tasks[task_id];
        task.preempt_requested = false;
        let (slot, node, target, est) = (task.job, task.node, task.target, task.estimate_ms);
        let d = target.device();
        let dev = &mut self.devices[d];
        dev.busy -= 1;
        dev.running_ms = (dev.running_ms - est).max(0.0);
        dev.backlog_ms[1] += est;
        dev.running.retain(|&t| t != task_id);
        dev.queues[1].push_front(task_id);
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
        while self.devices[d].busy < self.devices[d].slots {
            let dev = &mut self.devices[d];
            let Some((pi, id)) = next_to_start(&dev.queues) else {
                break;
            };
            dev.queues[pi].pop_front();
            let est = self.tasks[id].estimate_ms;
            dev.backlog_ms[pi] = (dev.backlog_ms[pi] - est).max(0.0);
            dev.running_ms += est;
            dev.busy += 1;
            dev.running.push(id);
            self.start(id)?;
        }
        Ok(())
    }

    pub(super) fn release(&mut self, task_id: u32) -> Task {
        let task = self.tasks.remove(task_id);
        let d = task.target.device();
        self.devices[d].running_ms = (self.devices[d].running_ms - task.estimate_ms).max(0.0);
        self.devices[d].busy -= 1;
        self.devices[d].running.retain(|&t| t != task_id);
        task
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
