//! The decision's situation for cost models that read it (WIT 0.2
//! plugins): the job, the node's share of its budgets and every candidate
//! target's device, as the engine knows them at decision time.

use super::Engine;
use crate::model::graph::Priority;
use crate::policy::{DeviceHealth, DeviceState, LearnedService};
use crate::trace::NodeBudget;

impl Engine {
    /// Fills `self.situation` for routing `node` of the job in `slot` with
    /// `budget` (its budgets now).
    pub(super) fn fill_situation(&mut self, slot: u32, node: u32, budget: &NodeBudget) {
        let mut s = std::mem::take(&mut self.situation);
        let job = &self.jobs[slot];
        let plan = &self.classes[job.class as usize];
        let np = &plan.nodes[node as usize];
        let qos = &plan.graph.qos;
        s.node_id.clone_from(&plan.graph.nodes[node as usize].id);
        s.job.id = job.id;
        s.job.class.clone_from(&plan.name);
        s.job.arrival_ms = job.arrival_ms;
        s.job.now_ms = self.now_ms;
        s.job.energy_spent_j = job.energy_j;
        s.job.energy_budget_j = qos
            .energy_j
            .or(qos.energy_relative.map(|r| r * plan.cpu_energy_j));
        s.share.deadline_ms = budget.deadline_p50_ms.map(|d| job.arrival_ms + d);
        s.share.latency_ms = qos.latency_ms.map(|l| l.p50 * np.own_fraction);
        s.share.energy_j = budget.energy_j;
        s.share.timeout_ms = Some(budget.timeout_ms);
        let interactive = qos.priority == Priority::Interactive;
        let excluded = job.nodes[node as usize].excluded;
        s.devices.clear();
        for (k, &target) in np.targets.iter().enumerate() {
            let device = target.device();
            let q = self.devices[device]
                .snapshot(self.hw.queues.limit(device), self.hw.queues.batch_share);
            // The same limit admission applies to this job's priority.
            let limit = if interactive {
                q.limit
            } else {
                (q.limit as f64 * q.batch_share) as usize
            };
            let queued = q.queued[0] + q.queued[1];
            let health = if !self.device_online(device) {
                DeviceHealth::Offline
            } else if excluded & (1 << target.index()) != 0 {
                DeviceHealth::FailedEarlier
            } else {
                DeviceHealth::Ok
            };
            let learned = self.tables.get(np.slots[k]);
            s.devices.push(DeviceState {
                target,
                queue_depth: u32::try_from(queued).unwrap_or(u32::MAX),
                running: u32::try_from(q.busy).unwrap_or(u32::MAX),
                room: u32::try_from(limit.saturating_sub(queued)).unwrap_or(u32::MAX),
                health,
                learned: (learned.total > 0).then_some(LearnedService {
                    count: learned.total,
                    mean_ms: learned.mean_ms,
                    p95_ms: learned.p95_ms,
                }),
            });
        }
        self.situation = s;
    }
}
