//! A job class compiled for the engine: per node, its candidates, cached
//! eligibility verdicts, priors, the simulated truth, performance-table slots
//! and its share of the latency budget (HEFT-style upward ranks).

use std::collections::HashMap;

use super::JobClass;
use crate::backends::tsu::TsuDriver;
use crate::device::Target;
use crate::hardware::{Hardware, MixingFit, TsuService};
use crate::model::Graph;
use crate::model::graph::NodeKind;
use crate::perf::{PerfTables, Service, chip_prior, pilot, prior, summarise};
use crate::policy::{BackendLimits, EligibilityQuery, Ineligible, JobContext, NodeSummary, Policy};
use crate::trace::NodeBudget;

pub(super) struct NodePlan {
    pub summary: NodeSummary,
    pub preds: Vec<u32>,
    pub succs: Vec<u32>,
    pub targets: Vec<Target>,
    /// Policy verdict per target (empty: eligible).
    pub verdicts: Vec<Vec<Ineligible>>,
    pub prior: Vec<Service>,
    /// What simulate mode draws around: the state file's learned figures
    /// when it has them, the prior otherwise.
    pub truth: Vec<Service>,
    /// Performance-table slot per target.
    pub slots: Vec<usize>,
    /// Latest completion for this node, as a fraction of the job's latency target.
    pub deadline_fraction: f64,
    /// This node's own share of the critical path (for its timeout).
    pub own_fraction: f64,
    /// Expected work after this node along its successors' critical path,
    /// milliseconds (what a late job must still leave room for).
    pub downstream_ms: f64,
    /// Cheapest energy any eligible target is expected to need.
    pub min_energy_j: f64,
    /// Energy on the CPU (the all-CPU baseline).
    pub cpu_energy_j: f64,
    pub program_hash: Option<String>,
    /// The TSU's figures come from the chip model: its cycle count is
    /// fixed, so simulate mode draws no noise around it.
    pub tsu_from_chip: bool,
    /// Simulate mode: how each target mixes on this node's program (sampling
    /// nodes; see [`attach_mixing`]).
    pub mixing: Vec<Option<MixingFit>>,
    /// Upstream nodes whose evidence an effect is judged on.
    pub evidence_nodes: Vec<u32>,
    /// Some effect is judged on this node's evidence.
    pub is_evidence: bool,
    /// Why the TSU driver cannot compile this node's program for its chip.
    pub tsu_reasons: Vec<Ineligible>,
}

impl NodePlan {
    /// Position of `target` in this node's candidate list.
    pub fn target_slot(&self, target: Target) -> usize {
        self.targets
            .iter()
            .position(|&t| t == target)
            .expect("a node only runs on its candidates")
    }
}

pub(super) struct ClassPlan {
    pub name: String,
    pub graph: Graph,
    pub index: HashMap<String, usize>,
    pub nodes: Vec<NodePlan>,
    pub entry_nodes: Vec<u32>,
    /// A clamp that contradicts a hard constraint: every job is infeasible.
    pub static_infeasible: Option<(usize, String)>,
    /// Energy of the whole job on the CPU (the baseline of `energy_relative`).
    pub cpu_energy_j: f64,
    /// Some effect is judged on upstream evidence.
    pub has_evidence: bool,
    /// Eligibility-policy faults not yet traced.
    pub policy_faults: Vec<crate::policy::PolicyFault>,
}

impl ClassPlan {
    pub fn compile(
        class: JobClass,
        hw: &Hardware,
        policy: &Policy,
        tables: &mut PerfTables,
        truth_tables: &PerfTables,
        tsu: Option<&TsuDriver>,
    ) -> Self {
        let graph = class.graph;
        let summaries = summarise(&graph);
        let index: HashMap<String, usize> = graph
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (n.id.clone(), i))
            .collect();
        let n = graph.nodes.len();
        let mut preds: Vec<Vec<u32>> = vec![Vec::new(); n];
        let mut succs: Vec<Vec<u32>> = vec![Vec::new(); n];
        for (i, node) in graph.nodes.iter().enumerate() {
            for input in &node.inputs {
                if let Some(&j) = index.get(input) {
                    preds[i].push(j as u32);
                    succs[j].push(i as u32);
                }
            }
        }
        let mut nodes: Vec<NodePlan> = Vec::with_capacity(n);
        for (i, summary) in summaries.into_iter().enumerate() {
            let node = &graph.nodes[i];
            let targets: Vec<Target> = Target::candidates(node.kind()).to_vec();
            let mut prior_of: Vec<Service> =
                targets.iter().map(|&t| prior(hw, &summary, t)).collect();
            // Spin problems only: the policy already names other kinds.
            let compiled = match (tsu, node.sample()) {
                (Some(driver), Some(spec)) if TsuDriver::problem(&spec.program).is_ok() => {
                    Some((driver, driver.compile(&spec.program)))
                }
                _ => None,
            };
            // The TSU's service is what the configured chip takes to run
            // the compiled image, not a throughput guess.
            let mut tsu_from_chip = false;
            if let Some((driver, Ok(image))) = &compiled
                && hw.tsu.service == TsuService::Chip
                && let Some(k) = targets.iter().position(|&t| t == Target::Tsu)
            {
                let (seconds, joules) = driver.estimate(image);
                if let Some(chip) = chip_prior(hw, &summary, seconds, joules, prior_of[k]) {
                    prior_of[k] = chip;
                    tsu_from_chip = true;
                }
            }
            let slots = targets
                .iter()
                .zip(&prior_of)
                .map(|(&t, &p)| tables.slot(t, &summary.class, p))
                .collect();
            let truth = targets
                .iter()
                .zip(&prior_of)
                .map(|(&t, &p)| {
                    truth_tables
                        .entries()
                        .iter()
                        .find(|e| e.target == t && e.class == summary.class && e.total > 0)
                        .map_or(p, |e| Service {
                            mean_ms: e.mean_ms,
                            p95_ms: e.p95_ms,
                            energy_j: e.energy_j,
                            error: p.error,
                        })
                })
                .collect();
            let cpu_energy_j = targets
                .iter()
                .zip(&prior_of)
                .find(|(t, _)| matches!(t, Target::Cpu | Target::CpuRef))
                .map_or(0.0, |(_, p)| p.energy_j);
            nodes.push(NodePlan {
                summary,
                preds: std::mem::take(&mut preds[i]),
                succs: std::mem::take(&mut succs[i]),
                targets,
                verdicts: Vec::new(),
                prior: prior_of,
                truth,
                slots,
                deadline_fraction: 1.0,
                own_fraction: 1.0,
                downstream_ms: 0.0,
                min_energy_j: 0.0,
                cpu_energy_j,
                program_hash: node.sample().map(|s| s.program.canonical_hash()),
                tsu_from_chip,
                mixing: Vec::new(),
                evidence_nodes: Vec::new(),
                is_evidence: false,
                tsu_reasons: match compiled {
                    Some((_, Err(reasons))) => reasons,
                    _ => Vec::new(),
                },
            });
        }
        // Effects are judged on everything upstream of them.
        for i in 0..n {
            if graph.nodes[i].kind() == NodeKind::Effect {
                let mut seen = vec![false; n];
                let mut stack: Vec<u32> = nodes[i].preds.clone();
                while let Some(p) = stack.pop() {
                    if !std::mem::replace(&mut seen[p as usize], true) {
                        stack.extend(nodes[p as usize].preds.iter().copied());
                    }
                }
                nodes[i].evidence_nodes = (0..n as u32).filter(|&p| seen[p as usize]).collect();
                for p in nodes[i].evidence_nodes.clone() {
                    nodes[p as usize].is_evidence = true;
                }
            }
        }
        let static_infeasible = graph.nodes.iter().enumerate().find_map(|(i, node)| {
            let spec = node.sample()?;
            spec.program.feasibility("$").err().map(|inf| {
                (
                    i,
                    format!(
                        "node {:?}: {} ({})",
                        node.id, inf.explanation, inf.constraint
                    ),
                )
            })
        });
        let entry_nodes = (0..n as u32)
            .filter(|&i| nodes[i as usize].preds.is_empty())
            .rev()
            .collect();
        let cpu_energy_j = nodes.iter().map(|p| p.cpu_energy_j).sum();
        let has_evidence = nodes.iter().any(|p| p.is_evidence);
        let mut plan = ClassPlan {
            name: class.name,
            graph,
            index,
            nodes,
            entry_nodes,
            static_infeasible,
            cpu_energy_j,
            has_evidence,
            policy_faults: Vec::new(),
        };
        let native = Policy::native(hw);
        plan.refresh_verdicts(hw, policy, &native);
        plan
    }

    /// Re-asks the eligibility policy (after a policy swap) and recomputes
    /// what depends on eligibility: budget shares and minimum energies. A
    /// policy that fails is answered by the native rules, and its faults are
    /// left in `policy_faults` for the engine to trace.
    pub fn refresh_verdicts(&mut self, hw: &Hardware, policy: &Policy, native: &Policy) {
        let qos = self.graph.qos;
        // Asked once per class: the job is the class, with no id or times.
        let job = JobContext {
            class: self.name.clone(),
            energy_budget_j: qos
                .energy_j
                .or(qos.energy_relative.map(|r| r * self.cpu_energy_j)),
            ..JobContext::default()
        };
        let faults = &mut self.policy_faults;
        for np in &mut self.nodes {
            np.verdicts = np
                .targets
                .iter()
                .map(|&t| {
                    let limits = BackendLimits::of(t, hw);
                    let mut reasons = policy
                        .eligibility
                        .verdict(&EligibilityQuery {
                            node: &np.summary,
                            qos: &qos,
                            target: t,
                            limits: &limits,
                            job: Some(&job),
                        })
                        .or_else(|fault| {
                            faults.push(fault);
                            native.eligibility.verdict(&EligibilityQuery {
                                node: &np.summary,
                                qos: &qos,
                                target: t,
                                limits: &limits,
                                job: None,
                            })
                        })
                        .unwrap_or_default();
                    if t == Target::Tsu {
                        reasons.extend(np.tsu_reasons.iter().cloned());
                    }
                    reasons
                })
                .collect();
        }
        // Upward ranks over the average service time of usable targets.
        let usable = |np: &NodePlan, k: usize| {
            np.verdicts[k].is_empty() && hw.slots(np.targets[k].device()) > 0
        };
        let work: Vec<f64> = self
            .nodes
            .iter()
            .map(|np| {
                let times: Vec<f64> = (0..np.targets.len())
                    .filter(|&k| usable(np, k))
                    .map(|k| np.prior[k].mean_ms)
                    .collect();
                if times.is_empty() {
                    0.0
                } else {
                    times.iter().sum::<f64>() / times.len() as f64
                }
            })
            .collect();
        let order = self.graph.topological_order();
        let mut rank = vec![0.0f64; self.nodes.len()];
        for &i in order.iter().rev() {
            let down = self.nodes[i]
                .succs
                .iter()
                .map(|&s| rank[s as usize])
                .fold(0.0, f64::max);
            rank[i] = work[i] + down;
        }
        let critical = rank.iter().copied().fold(0.0, f64::max);
        for (i, np) in self.nodes.iter_mut().enumerate() {
            np.downstream_ms = rank[i] - work[i];
            if critical > 0.0 {
                np.deadline_fraction = ((critical - rank[i] + work[i]) / critical).clamp(0.0, 1.0);
                np.own_fraction = work[i] / critical;
            }
            np.min_energy_j = (0..np.targets.len())
                .filter(|&k| usable(np, k))
                .map(|k| np.prior[k].energy_j)
                .fold(f64::INFINITY, f64::min);
            if !np.min_energy_j.is_finite() {
                np.min_energy_j = 0.0;
            }
        }
    }

    /// The node's budgets at decision time. `spent_j` is the job's energy so
    /// far and `reserve_j` the least the job's other open nodes will need.
    pub fn budget(
        &self,
        node: usize,
        hw: &Hardware,
        elapsed_ms: f64,
        spent_j: f64,
        reserve_j: f64,
    ) -> NodeBudget {
        let qos = &self.graph.qos;
        let np = &self.nodes[node];
        let energy_total = qos
            .energy_j
            .or(qos.energy_relative.map(|r| r * self.cpu_energy_j));
        NodeBudget {
            deadline_p50_ms: qos.latency_ms.map(|l| l.p50 * np.deadline_fraction),
            deadline_p95_ms: qos.latency_ms.map(|l| l.p95 * np.deadline_fraction),
            energy_j: energy_total.map(|e| e - spent_j - reserve_j),
            max_error: qos.accuracy.map(|a| a.max_error),
            timeout_ms: qos.latency_ms.map_or(hw.budgets.default_timeout_ms, |l| {
                (hw.budgets.timeout_factor * l.p95 * np.own_fraction).max(1.0)
            }),
            elapsed_ms,
        }
    }
}

/// Seed of simulate mode's pilot runs: fixed, so a simulation is repeatable
/// whatever its own seed.
const PILOT_SEED: u64 = 0x5eed_f117;

/// Simulate mode's mixing models for every sampling node and target: the
/// calibrated fit for (target, program) when `calibrate --graph` measured
/// one, else a pilot on the CPU reference (one per program, shared by the
/// targets: they run the same Gibbs chain), else none (too big to pilot).
pub fn attach_mixing(plans: &mut [ClassPlan], hw: &Hardware) {
    let mut pilots: HashMap<String, Option<MixingFit>> = HashMap::new();
    for plan in plans.iter_mut() {
        let graph = &plan.graph;
        for (i, np) in plan.nodes.iter_mut().enumerate() {
            let Some(spec) = graph.nodes[i].sample() else {
                continue;
            };
            let hash = np.program_hash.clone().unwrap_or_default();
            let mut models = Vec::with_capacity(np.targets.len());
            for t in &np.targets {
                let calibrated = hw
                    .mixing
                    .iter()
                    .find(|f| f.target == t.name() && f.program_hash == hash)
                    .cloned();
                let model = calibrated.or_else(|| {
                    pilots
                        .entry(hash.clone())
                        .or_insert_with(|| {
                            pilot(&spec.program, PILOT_SEED).unwrap_or_else(|e| {
                                tracing::warn!(node = %graph.nodes[i].id, "no mixing pilot: {e}");
                                None
                            })
                        })
                        .clone()
                });
                models.push(model);
            }
            np.mixing = models;
        }
    }
}

/// Where simulate mode's sampling diagnostics come from, in words (`None`
/// without sampling nodes).
pub fn mixing_sources(plans: &[ClassPlan]) -> Option<String> {
    let (mut calibrated, mut pilot, mut none) = (0, 0, 0);
    for m in plans.iter().flat_map(|p| &p.nodes).flat_map(|n| &n.mixing) {
        match m.as_ref().map(|m| m.source.as_str()) {
            Some("calibrated") => calibrated += 1,
            Some(_) => pilot += 1,
            None => none += 1,
        }
    }
    (calibrated + pilot + none > 0).then(|| {
        let mut parts = Vec::new();
        if calibrated > 0 {
            parts.push(format!("{calibrated} measured by `calibrate --graph`"));
        }
        if pilot > 0 {
            parts.push(format!(
                "{pilot} from pilot runs of the CPU reference sampler"
            ));
        }
        if none > 0 {
            parts.push(format!(
                "{none} unmodelled (programs over {:.0e} updates: run `calibrate --graph`)",
                crate::perf::PILOT_MAX_UPDATES
            ));
        }
        format!(
            "simulated sampling diagnostics (node x target): {}; evidence is marked simulated",
            parts.join(", ")
        )
    })
}
