//! What a run reports: per job (when recorded), per job class, per node.

use serde::Serialize;

use super::plan::ClassPlan;
use super::{Counters, Engine, Mode};
use crate::device::{PerDevice, PerTarget, Target};
use crate::model::graph::{NodeKind, Priority, Qos};
use crate::trace::{JobStatus, NodeStatus};

/// A candidate a node's target was chosen over.
#[derive(Debug, Clone, Serialize)]
pub struct CandidateBrief {
    /// The candidate target.
    pub target: Target,
    /// Neither the host nor the policy ruled it out.
    pub eligible: bool,
    /// Eligible and within every QoS constraint.
    pub feasible: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Its total cost, when eligible.
    pub cost: Option<f64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    /// Why it was ineligible or infeasible.
    pub reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
/// One node of a recorded job.
pub struct NodeRecord {
    /// The node id.
    pub id: String,
    /// The node kind.
    pub kind: NodeKind,
    /// How the node ended.
    pub status: NodeStatus,
    /// The chosen target.
    pub backend: Option<Target>,
    /// Every candidate of the last routing decision.
    pub candidates: Vec<CandidateBrief>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// From ready to end, milliseconds.
    pub latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Why it ended as it did, when not completed.
    pub explanation: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// What the node produced (summary, effect outcome).
    pub output: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize)]
/// One job, as `run --json` lists it.
pub struct JobRecord {
    /// The job id (arrival order).
    pub job: u64,
    /// The job class.
    pub class: String,
    /// How the job ended.
    pub status: JobStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// Why, when it did not complete.
    pub explanation: Option<String>,
    /// Arrival time, milliseconds.
    pub arrival_ms: f64,
    /// From arrival to end, milliseconds.
    pub latency_ms: f64,
    /// Energy of every node run, joules.
    pub energy_j: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// When to retry a rejected job, milliseconds.
    pub retry_after_ms: Option<f64>,
    /// Every node of the job.
    pub nodes: Vec<NodeRecord>,
}

/// Running aggregates of one class.
pub(super) struct ClassStats {
    pub submitted: u64,
    pub by_status: [u64; 4],
    pub latencies: Vec<f64>,
    pub energy_sum: f64,
    pub slo_met: u64,
    /// Completions per node per target.
    pub node_mix: Vec<PerTarget<u64>>,
}

impl ClassStats {
    pub fn new(plan: &ClassPlan) -> Self {
        ClassStats {
            submitted: 0,
            by_status: [0; 4],
            latencies: Vec::new(),
            energy_sum: 0.0,
            slo_met: 0,
            node_mix: vec![PerTarget::default(); plan.nodes.len()],
        }
    }

    pub fn add(&mut self, status: JobStatus, latency_ms: f64, energy_j: f64, plan: &ClassPlan) {
        self.by_status[status as usize] += 1;
        if status == JobStatus::Completed {
            self.latencies.push(latency_ms);
            self.energy_sum += energy_j;
            let qos = &plan.graph.qos;
            let on_time = qos.latency_ms.is_none_or(|l| latency_ms <= l.p95);
            let energy_budget = qos
                .energy_j
                .or(qos.energy_relative.map(|r| r * plan.cpu_energy_j));
            let in_budget = energy_budget.is_none_or(|e| energy_j <= e * (1.0 + 1e-9));
            if on_time && in_budget {
                self.slo_met += 1;
            }
        }
    }
}

/// Summary of one job class.
#[derive(Debug, Clone, Serialize)]
pub struct ClassSummary {
    /// The class name.
    pub class: String,
    /// The class priority.
    pub priority: Priority,
    /// The QoS targets of the class.
    pub qos: Qos,
    /// Jobs that arrived.
    pub submitted: u64,
    /// Jobs completed.
    pub completed: u64,
    /// Jobs infeasible.
    pub infeasible: u64,
    /// Jobs rejected (backpressure).
    pub rejected: u64,
    /// Jobs failed.
    pub failed: u64,
    /// Median latency of completed jobs, milliseconds.
    pub latency_p50_ms: Option<f64>,
    /// 95th percentile latency of completed jobs, milliseconds.
    pub latency_p95_ms: Option<f64>,
    /// Mean energy per completed job, joules.
    pub mean_energy_j: Option<f64>,
    /// The job's energy budget in joules (absolute, or relative x CPU baseline).
    pub energy_budget_j: Option<f64>,
    /// Completed jobs within the latency p95 target and energy budget, over
    /// all submitted jobs.
    pub slo_attainment: Option<f64>,
    /// Per node: completions per target.
    pub backend_mix: Vec<NodeMix>,
}

#[derive(Debug, Clone, Serialize)]
/// One node's completions per target.
pub struct NodeMix {
    /// The node id.
    pub node: String,
    /// Completions per target.
    pub mix: std::collections::BTreeMap<Target, u64>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Execute or simulate.
    pub mode: Mode,
    /// Which policies decided.
    pub policy: String,
    /// Jobs that arrived.
    pub submitted: u64,
    /// Jobs completed.
    pub completed: u64,
    /// Jobs infeasible.
    pub infeasible: u64,
    /// Jobs rejected (backpressure).
    pub rejected: u64,
    /// Jobs failed.
    pub failed: u64,
    /// Jobs neither terminal nor accounted (always 0 after a finished run).
    pub in_flight: u64,
    /// Virtual time at the end, milliseconds.
    pub virtual_ms: f64,
    /// Wall-clock seconds the run took.
    pub wall_s: f64,
    /// Over every completed job of every class.
    pub latency_p50_ms: Option<f64>,
    /// 95th percentile latency over every class, milliseconds.
    pub latency_p95_ms: Option<f64>,
    /// Mean energy per completed job, joules.
    pub mean_energy_j: Option<f64>,
    /// Completed within target over submitted, all classes.
    pub slo_attainment: Option<f64>,
    /// Busy time over (slots x virtual time), per device (cpu, gpu, tsu).
    pub utilisation: PerDevice<Option<f64>>,
    /// Mean expected error of the targets chosen for sampling nodes.
    pub mean_sampling_error: Option<f64>,
    /// The run's counters.
    pub counters: Counters,
    /// Per class summaries.
    pub classes: Vec<ClassSummary>,
    /// Policy faults per plugin and role: count, first reason, and what
    /// the guest printed (absent when no policy faulted).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policy_faults: Vec<super::PluginFaults>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    /// Every job (when recorded).
    pub jobs: Vec<JobRecord>,
}

/// Nearest-rank percentile of unsorted values.
#[cfg(test)]
pub fn percentile(values: &[f64], q: f64) -> Option<f64> {
    percentiles_in_place(&mut values.to_vec(), [q])[0]
}

/// Nearest-rank percentiles `qs` of `values`, which are reordered: each is
/// the rank-th smallest in the total order, what a full sort would put
/// there, found in linear time. The highest rank is selected first; every
/// lower one is then selected among the values left below it (they are
/// exactly the smallest ones), so one buffer serves every percentile.
pub fn percentiles_in_place<const N: usize>(values: &mut [f64], qs: [f64; N]) -> [Option<f64>; N] {
    let mut out = [None; N];
    if values.is_empty() {
        return out;
    }
    let len = values.len();
    let rank = |q: f64| ((q * len as f64).ceil() as usize).clamp(1, len) - 1;
    let mut order: [usize; N] = std::array::from_fn(|i| i);
    order.sort_by_key(|&i| std::cmp::Reverse(rank(qs[i])));
    // Values at `..end` are the `end` smallest (in some order).
    let mut end = len;
    for i in order {
        let k = rank(qs[i]);
        // A rank equal to the one selected last is in place already.
        if k < end {
            values[..end].select_nth_unstable_by(k, f64::total_cmp);
            end = k;
        }
        out[i] = Some(values[k]);
    }
    out
}

pub(super) fn build(engine: &Engine) -> RunReport {
    let classes: Vec<ClassSummary> = engine
        .classes
        .iter()
        .zip(&engine.summaries)
        .map(|(plan, s)| {
            let qos = plan.graph.qos;
            let [p50, p95] = percentiles_in_place(&mut s.latencies.clone(), [0.5, 0.95]);
            ClassSummary {
                class: plan.name.clone(),
                priority: qos.priority,
                qos,
                submitted: s.submitted,
                completed: s.by_status[JobStatus::Completed as usize],
                infeasible: s.by_status[JobStatus::Infeasible as usize],
                rejected: s.by_status[JobStatus::Rejected as usize],
                failed: s.by_status[JobStatus::Failed as usize],
                latency_p50_ms: p50,
                latency_p95_ms: p95,
                mean_energy_j: (!s.latencies.is_empty())
                    .then(|| s.energy_sum / s.latencies.len() as f64),
                energy_budget_j: qos
                    .energy_j
                    .or(qos.energy_relative.map(|r| r * plan.cpu_energy_j)),
                slo_attainment: (s.submitted > 0).then(|| s.slo_met as f64 / s.submitted as f64),
                backend_mix: plan
                    .graph
                    .nodes
                    .iter()
                    .zip(&s.node_mix)
                    .map(|(n, counts)| NodeMix {
                        node: n.id.clone(),
                        mix: Target::ALL
                            .into_iter()
                            .filter(|t| counts[*t] > 0)
                            .map(|t| (t, counts[t]))
                            .collect(),
                    })
                    .collect(),
            }
        })
        .collect();
    let sum = |f: fn(&ClassSummary) -> u64| classes.iter().map(f).sum::<u64>();
    let submitted = sum(|c| c.submitted);
    let (completed, infeasible, rejected, failed) = (
        sum(|c| c.completed),
        sum(|c| c.infeasible),
        sum(|c| c.rejected),
        sum(|c| c.failed),
    );
    let mut all: Vec<f64> =
        Vec::with_capacity(engine.summaries.iter().map(|s| s.latencies.len()).sum());
    for s in &engine.summaries {
        all.extend_from_slice(&s.latencies);
    }
    let completed_jobs = all.len();
    let [all_p50, all_p95] = percentiles_in_place(&mut all, [0.5, 0.95]);
    drop(all);
    let energy: f64 = engine.summaries.iter().map(|s| s.energy_sum).sum();
    let slo: u64 = engine.summaries.iter().map(|s| s.slo_met).sum();
    let utilisation = PerDevice::from_fn(|device| {
        let slots = engine.hw.slots(device) as f64;
        (slots > 0.0 && engine.now_ms > 0.0)
            .then(|| engine.counters.busy_ms[device] / (slots * engine.now_ms))
    });
    let mut jobs = engine.records.clone();
    jobs.sort_by_key(|j| j.job);
    RunReport {
        mode: engine.config.mode,
        policy: engine.policy.describe(),
        submitted,
        completed,
        infeasible,
        rejected,
        failed,
        in_flight: submitted - completed - infeasible - rejected - failed,
        virtual_ms: engine.now_ms,
        wall_s: engine.wall_start.elapsed().as_secs_f64(),
        latency_p50_ms: all_p50,
        latency_p95_ms: all_p95,
        mean_energy_j: (completed_jobs > 0).then(|| energy / completed_jobs as f64),
        slo_attainment: (submitted > 0).then(|| slo as f64 / submitted as f64),
        utilisation,
        mean_sampling_error: (engine.counters.sampling_decisions > 0).then(|| {
            engine.counters.sampling_error_sum / engine.counters.sampling_decisions as f64
        }),
        counters: engine.counters.clone(),
        classes,
        policy_faults: engine.fault_tally.summary(),
        jobs,
    }
}

#[cfg(test)]
mod tests {
    use super::{percentile, percentiles_in_place};

    #[test]
    fn percentile_is_the_nearest_rank_of_the_sorted_values() {
        assert_eq!(percentile(&[], 0.5), None);
        // Ties, negative zero, an unsorted order and every rank position.
        let mut x: Vec<f64> = (0..997).map(|i| ((i * 7919) % 101) as f64 * 0.5).collect();
        x.extend([-0.0, 0.0, 3.25, 3.25, f64::INFINITY]);
        let mut sorted = x.clone();
        sorted.sort_by(f64::total_cmp);
        for q in [0.0, 0.001, 0.25, 0.5, 0.9, 0.95, 0.999, 1.0] {
            let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
            let want = sorted[rank - 1];
            let got = percentile(&x, q).unwrap();
            assert_eq!(got.to_bits(), want.to_bits(), "q = {q}");
        }
        assert_eq!(percentile(&[4.0], 0.95), Some(4.0));
    }

    #[test]
    fn percentiles_in_place_agree_with_one_at_a_time() {
        let x: Vec<f64> = (0..1009)
            .map(|i| ((i * 7919) % 211) as f64 * 0.25 - 3.0)
            .chain([-0.0, 0.0, f64::INFINITY, f64::NEG_INFINITY])
            .collect();
        let qs = [0.95, 0.5, 0.5, 0.0, 1.0, 0.999, 0.001];
        let got = percentiles_in_place(&mut x.clone(), qs);
        for (q, g) in qs.into_iter().zip(got) {
            assert_eq!(
                g.map(f64::to_bits),
                percentile(&x, q).map(f64::to_bits),
                "q = {q}"
            );
        }
        assert_eq!(percentiles_in_place(&mut [], [0.5, 0.95]), [None, None]);
        assert_eq!(
            percentiles_in_place(&mut [2.0], [0.5, 0.95]),
            [Some(2.0); 2]
        );
    }
}
