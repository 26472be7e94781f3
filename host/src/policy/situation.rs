//! What the engine knows of a decision beyond the node and its candidates:
//! the job, the node's share of the job's budgets and the devices' state
//! (what WIT 0.2 hands a policy). Native policies ignore it.

use serde::{Deserialize, Serialize};

use crate::device::Target;

/// The job a decision is for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobContext {
    /// Job id, unique within a run (0 where a question is asked per job
    /// class, as eligibility is).
    #[serde(default)]
    pub id: u64,
    /// The job's class (its graph name).
    #[serde(default)]
    pub class: String,
    /// Arrival time, ms since the run's start.
    #[serde(default)]
    pub arrival_ms: f64,
    /// Time now, ms since the run's start.
    #[serde(default)]
    pub now_ms: f64,
    /// Energy the job has spent so far, joules.
    #[serde(default)]
    pub energy_spent_j: f64,
    /// The job's energy budget in joules as the host enforces it: `energy_j`,
    /// or `energy_relative` times the job's all-CPU energy (absent without
    /// an energy target).
    #[serde(default)]
    pub energy_budget_j: Option<f64>,
}

impl JobContext {
    /// Energy budget left, joules (absent without a budget).
    pub fn energy_remaining_j(&self) -> Option<f64> {
        self.energy_budget_j.map(|b| b - self.energy_spent_j)
    }
}

/// The share of the job's budgets the host gives one node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct BudgetShare {
    /// The node should finish by then, ms since the run's start.
    #[serde(default)]
    pub deadline_ms: Option<f64>,
    /// The node's share of the latency target (p50), ms.
    #[serde(default)]
    pub latency_ms: Option<f64>,
    /// The node's share of the energy budget, joules.
    #[serde(default)]
    pub energy_j: Option<f64>,
    /// The host's timeout for the node, ms.
    #[serde(default)]
    pub timeout_ms: Option<f64>,
}

/// A device's health as the host knows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceHealth {
    /// Serving.
    #[default]
    Ok,
    /// Offline (fault injection, availability window, operator).
    Offline,
    /// Failed this node earlier; the host will not retry it there.
    FailedEarlier,
}

/// What the host has learned of a target's service time for a node class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LearnedService {
    /// Observations so far.
    pub count: u64,
    /// Mean service time, ms.
    pub mean_ms: f64,
    /// 95th-percentile service time, ms.
    pub p95_ms: f64,
}

/// One candidate target's device as a decision sees it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DeviceState {
    /// The target.
    pub target: Target,
    /// Tasks waiting in its queue.
    #[serde(default)]
    pub queue_depth: u32,
    /// Tasks running on it.
    #[serde(default)]
    pub running: u32,
    /// Queue places left for this job's priority before backpressure.
    #[serde(default)]
    pub room: u32,
    /// Its health.
    #[serde(default)]
    pub health: DeviceHealth,
    /// Learned service for this node's class (absent until observed).
    #[serde(default)]
    pub learned: Option<LearnedService>,
}

/// Everything about a routing decision beyond the node, QoS, weights and
/// candidates.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DecisionSituation {
    /// The node's id in its graph.
    #[serde(default)]
    pub node_id: String,
    /// Its job.
    #[serde(default)]
    pub job: JobContext,
    /// The node's share of the job's budgets.
    #[serde(default)]
    pub share: BudgetShare,
    /// Every target the node could run on, eligible or not.
    #[serde(default)]
    pub devices: Vec<DeviceState>,
}
