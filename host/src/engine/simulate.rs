//! Simulate mode: durations drawn around the performance model, nothing
//! computed; a branch goes either way with equal odds, and evidence is
//! what is known without computing.

use rand::Rng;
use serde_json::json;

use super::state::EventKind;
use super::{Engine, EngineError};
use crate::device::Target;
use crate::hardware::ServiceDistribution;
use crate::model::graph::{ControlOp, NodeKind};
use crate::policy::Evidence;
use crate::trace::NodeStatus;

impl Engine {
    pub(super) fn start_simulated(&mut self, task_id: u32) -> Result<(), EngineError> {
        let now = self.now_ms;
        let (slot, node, target, remaining, timeout) = {
            let t = &self.tasks[task_id];
            (t.job, t.node, t.target, t.remaining_ms, t.timeout_ms)
        };
        let run_ms = match remaining {
            Some(r) => r,
            None => {
                let class = self.jobs[slot].class as usize;
                let k = self.classes[class].nodes[node as usize].target_slot(target);
                let mean = self.classes[class].nodes[node as usize].truth[k].mean_ms;
                mean * self.noise() * self.hw.slowdown(target.device(), now)
            }
        };
        let t = &mut self.tasks[task_id];
        let so_far = t.busy_ms;
        let cut = (timeout - so_far).max(0.0);
        t.timed_out = run_ms > cut;
        t.drawn_ms = run_ms;
        t.run_ms = run_ms.min(cut);
        let at = now + t.run_ms;
        self.schedule_done(task_id, at);
        Ok(())
    }

    /// The end of a task's current run (or slice) at `at`; a preemption
    /// bumps the task's generation, which makes this event stale.
    pub(super) fn schedule_done(&mut self, task_id: u32, at: f64) {
        let generation = self.tasks[task_id].generation;
        self.push(
            at,
            EventKind::TaskDone {
                task: task_id,
                generation,
            },
        );
    }

    /// A unit-mean multiplicative draw from the configured service distribution.
    pub(super) fn noise(&mut self) -> f64 {
        match self.hw.simulate.service {
            ServiceDistribution::Deterministic => 1.0,
            ServiceDistribution::Exponential => self.rng.sample(rand_distr::Exp1),
            ServiceDistribution::Lognormal => {
                let s2 = (1.0 + self.hw.simulate.cv * self.hw.simulate.cv).ln();
                let z: f64 =
                    rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut self.rng);
                (-0.5 * s2 + s2.sqrt() * z).exp()
            }
        }
    }

    pub(super) fn simulated_done(&mut self, task_id: u32) -> Result<(), EngineError> {
        let (timed_out, device) = {
            let t = &mut self.tasks[task_id];
            t.busy_ms += t.run_ms;
            (t.timed_out, t.target.device())
        };
        let task = self.release(task_id);
        let (slot, node, target) = (task.job, task.node, task.target);
        let class = self.jobs[slot].class as usize;
        let k = self.classes[class].nodes[node as usize].target_slot(target);
        let truth = self.classes[class].nodes[node as usize].truth[k];
        let energy = truth.energy_j * task.busy_ms / truth.mean_ms.max(1e-12);
        self.jobs[slot].energy_j += energy;
        if timed_out {
            self.counters.timeouts += 1;
            let kind = self.classes[class].graph.nodes[node as usize].kind();
            if kind == NodeKind::Sample {
                // The sampler keeps the draws made before the timeout.
                let owed = (task.drawn_ms - task.run_ms).max(0.0);
                let done_fraction = task.busy_ms / (task.busy_ms + owed).max(1e-12);
                if done_fraction >= self.hw.budgets.min_sample_fraction {
                    self.keep_partial_draws(
                        slot,
                        node,
                        format!(
                            "timed out after {:.3} ms; kept the draws made so far",
                            task.busy_ms
                        ),
                    )?;
                    self.observe(slot, node, target, task.busy_ms, energy)?;
                    self.dispatch(device)?;
                    return self.complete_simulated(slot, node, target, task.busy_ms, energy, true);
                }
            }
            return self.budget_fallback(
                slot,
                node,
                target,
                format!(
                    "timed out after {:.3} ms (timeout {:.3} ms)",
                    task.busy_ms, task.timeout_ms
                ),
            );
        }
        self.observe(slot, node, target, task.busy_ms, energy)?;
        self.dispatch(device)?;
        self.complete_simulated(slot, node, target, task.busy_ms, energy, false)
    }

    pub(super) fn complete_simulated(
        &mut self,
        slot: u32,
        node: u32,
        target: Target,
        service_ms: f64,
        energy: f64,
        degraded: bool,
    ) -> Result<(), EngineError> {
        let class = self.jobs[slot].class as usize;
        let plan = &self.classes[class];
        let n = &plan.graph.nodes[node as usize];
        // Nothing was computed: a branch goes either way with equal odds.
        if let Some(c) = n.control()
            && c.op == ControlOp::Branch
        {
            let taken_then: bool = self.rng.random();
            let not_taken = if taken_then {
                &c.else_nodes
            } else {
                &c.then_nodes
            };
            let ids: Vec<usize> = not_taken
                .iter()
                .filter_map(|id| plan.index.get(id).copied())
                .collect();
            for j in ids {
                self.jobs[slot].nodes[j].skipped_by_branch = true;
            }
        }
        if plan.nodes[node as usize].is_evidence {
            // Simulated evidence: what is known without computing anything.
            let evidence = Evidence {
                node: n.id.clone(),
                kind: Some(n.kind()),
                backend: Some(target.name().into()),
                schedule: n.sample().map(|s| s.program.schedule),
                program_hash: plan.nodes[node as usize].program_hash.clone(),
                inputs: plan.nodes[node as usize].preds.len(),
                ..Default::default()
            };
            self.jobs[slot].evidence[node as usize] = Some(evidence);
        }
        self.trace_end(
            slot,
            node,
            target,
            NodeStatus::Completed,
            service_ms,
            energy,
            false,
            || degraded.then(|| json!({ "degraded": "fewer samples (timeout)" })),
        )?;
        self.close_node(slot, node, NodeStatus::Completed, None, None)
    }
}
