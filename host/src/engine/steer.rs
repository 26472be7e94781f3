//! Steering a running engine and the availability of its devices: operator
//! commands, plugin reloads, devices going offline.

use super::{Command, Engine, EngineError};
use crate::device::Device;
use crate::perf::busy_energy;
use crate::trace::{FailureKind, TraceEvent};

impl Engine {
    /// Applies a steering command now; it is recorded in the trace.
    pub fn command(&mut self, command: Command) -> Result<(), EngineError> {
        let described = command.describe();
        match command {
            Command::Pause => self.paused = true,
            Command::Resume => self.paused = false,
            Command::SetRate { per_s } => {
                if !(per_s.is_finite() && per_s > 0.0) {
                    return Err(EngineError::BadRate(per_s));
                }
                self.rate_per_s = per_s;
            }
            Command::SetOnline { device, online } => {
                self.devices[device].operator_offline = !online;
            }
            Command::SetWeights(w) => self.hw.weights = w,
            Command::SwapPolicy(p) => {
                self.policy = p;
                self.policy_notices = self.policy.gives_notices();
                for c in &mut self.classes {
                    c.refresh_verdicts(&self.hw, &self.policy, &self.native);
                }
            }
        }
        self.emit(TraceEvent::Control {
            t_ms: self.now_ms,
            command: described,
        })?;
        self.trace_eligibility_faults()?;
        self.evict_offline()?;
        Ok(())
    }

    /// Traces the eligibility faults the last verdict refresh met.
    pub(super) fn trace_eligibility_faults(&mut self) -> Result<(), EngineError> {
        for c in 0..self.classes.len() {
            for fault in std::mem::take(&mut self.classes[c].policy_faults) {
                self.note_fault("eligibility", &fault, "native eligibility rules");
                self.emit(TraceEvent::PolicyFault {
                    t_ms: self.now_ms,
                    job: None,
                    node: None,
                    role: "eligibility".into(),
                    fault,
                    fallback: "native eligibility rules".into(),
                })?;
            }
        }
        Ok(())
    }

    /// Traces plugin hot reloads; a new eligibility version re-judges every
    /// class.
    pub(super) fn poll_policy_notices(&mut self) -> Result<(), EngineError> {
        if !self.policy_notices {
            return Ok(());
        }
        let mut notices = std::mem::take(&mut self.scratch_notices);
        self.policy.cost.take_notices(&mut notices);
        self.policy.eligibility.take_notices(&mut notices);
        self.policy.gate.take_notices(&mut notices);
        self.policy.queue.take_notices(&mut notices);
        if notices.is_empty() {
            self.scratch_notices = notices;
            return Ok(());
        }
        let mut rejudge = false;
        for notice in notices.drain(..) {
            rejudge |= notice.ok && notice.role == "eligibility";
            self.emit(TraceEvent::PolicyReload {
                t_ms: self.now_ms,
                notice,
            })?;
        }
        self.scratch_notices = notices;
        if rejudge {
            for c in &mut self.classes {
                c.refresh_verdicts(&self.hw, &self.policy, &self.native);
            }
            self.trace_eligibility_faults()?;
        }
        Ok(())
    }

    /// Moves work off devices that are now offline (immediate fallback):
    /// running work fails at this moment (its end event goes stale; the
    /// busy time so far is charged), queued work is moved without running.
    pub(super) fn evict_offline(&mut self) -> Result<(), EngineError> {
        for device in Device::ALL {
            if self.device_online(device) {
                continue;
            }
            let d = device;
            let running = self.devices[d].running.clone();
            for id in running {
                let now = self.now_ms;
                let task = self.release(id);
                let ran = (now - task.run_started_ms).max(0.0);
                let energy = if task.energy_j > 0.0 {
                    task.energy_j
                } else {
                    busy_energy(&self.hw, device, task.busy_ms + ran)
                };
                self.counters.busy_ms[device] += ran;
                self.jobs[task.job].energy_j += energy;
                self.fall_back(
                    task.job,
                    task.node,
                    task.target,
                    FailureKind::BackendUnavailable,
                    format!("{device} went offline while the node ran ({ran:.3} ms in)"),
                )?;
            }
            let queued: Vec<u32> = self.devices[d]
                .queues
                .iter_mut()
                .flat_map(|q| q.drain(..))
                .collect();
            self.devices[d].backlog_ms = [0.0; 2];
            for id in queued {
                let task = self.tasks.remove(id);
                self.fall_back(
                    task.job,
                    task.node,
                    task.target,
                    FailureKind::BackendUnavailable,
                    format!("{device} went offline while the node was queued"),
                )?;
            }
        }
        Ok(())
    }

    pub(super) fn device_online(&self, device: Device) -> bool {
        !self.devices[device].operator_offline && !self.hw.offline(device, self.now_ms)
    }

    /// Queue occupancy over all devices, 0..1 (drives diagnostics degradation).
    pub(super) fn occupancy(&self) -> f64 {
        let (mut used, mut limit) = (0usize, 0usize);
        for d in Device::ALL {
            if self.hw.slots(d) > 0 {
                used += self.devices[d].queued();
                limit += self.hw.queues.limit(d);
            }
        }
        if limit == 0 {
            0.0
        } else {
            used as f64 / limit as f64
        }
    }
}
