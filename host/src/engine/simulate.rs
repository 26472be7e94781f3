//! Simulate mode: durations drawn around the performance model, nothing
//! computed; a branch goes either way with equal odds. A sampling node's
//! diagnostics are drawn from its program's mixing model (calibrated, or a
//! pilot run), so early stopping, diagnostics levels, NonConvergence and
//! the gate happen as in execution, on evidence marked `simulated`.

use rand::Rng;
use serde_json::json;

use sha2::{Digest, Sha256};

use super::decide::sampling::{diagnostics_level, early_stop_check_due, nonconvergence_rhat};
use super::state::EventKind;
use super::{Engine, EngineError};
use crate::device::Target;
use crate::hardware::ServiceDistribution;
use crate::model::graph::{ControlOp, NodeKind};
use crate::perf::MixingLuck;
use crate::policy::{DiagnosticsLevel, Evidence};
use crate::trace::{FailureAction, FailureKind, NodeStatus, TraceEvent};

/// What a simulated task's end needs of the task, read as it is released.
#[derive(Debug, Clone, Copy)]
struct Ended {
    job: u32,
    node: u32,
    target: Target,
    busy_ms: f64,
    run_ms: f64,
    drawn_ms: f64,
    timeout_ms: f64,
    luck: Option<MixingLuck>,
    early_at: Option<usize>,
}

/// What a simulated sampling run did: samples per chain kept of the
/// schedule's, and its luck in the mixing model.
#[derive(Debug, Clone, Copy)]
pub(super) struct SampledRun {
    samples: usize,
    total: usize,
    luck: MixingLuck,
    early: bool,
}

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
                let np = &self.classes[class].nodes[node as usize];
                let k = np.target_slot(target);
                let mean = np.truth[k].mean_ms;
                let fixed = target == Target::Tsu && np.tsu_from_chip;
                let noise = if fixed { 1.0 } else { self.noise() };
                let full = mean * noise * self.hw.slowdown(target.device(), now);
                full * self.plan_sampling(task_id)
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

    /// Draws a sampling task's luck in its mixing model and, with early
    /// stopping on, the check at which it converges. Returns the share of
    /// the full run's time it will take (1 for a full run).
    fn plan_sampling(&mut self, task_id: u32) -> f64 {
        let (slot, node, target) = {
            let t = &self.tasks[task_id];
            (t.job, t.node, t.target)
        };
        let class = self.jobs[slot].class as usize;
        let plan = &self.classes[class];
        let (Some(spec), np) = (
            plan.graph.nodes[node as usize].sample(),
            &plan.nodes[node as usize],
        ) else {
            return 1.0;
        };
        let Some(Some(fit)) = np.mixing.get(np.target_slot(target)) else {
            return 1.0;
        };
        let s = spec.program.schedule;
        let (chains, total) = (s.chains as usize, s.samples as usize);
        let luck = fit.luck(&mut self.rng);
        let b = &self.hw.budgets;
        let early_at = (b.early_stop_ess > 0.0)
            .then(|| {
                fit.early_stop_at(
                    chains,
                    total,
                    luck,
                    b.early_stop_rhat,
                    b.early_stop_ess,
                    |done, last| early_stop_check_due(done, total, last, b),
                )
            })
            .flatten();
        let t = &mut self.tasks[task_id];
        t.luck = Some(luck);
        t.early_at = early_at;
        let sweeps =
            |samples: usize| s.warmup as f64 + (samples as u64 * s.steps_per_sample) as f64;
        early_at.map_or(1.0, |at| sweeps(at) / sweeps(total).max(1.0))
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
        let task = self.release_with(task_id, |t| Ended {
            job: t.job,
            node: t.node,
            target: t.target,
            busy_ms: t.busy_ms,
            run_ms: t.run_ms,
            drawn_ms: t.drawn_ms,
            timeout_ms: t.timeout_ms,
            luck: t.luck,
            early_at: t.early_at,
        });
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
                    let sampled = self.sampled_run(slot, node, &task, Some(done_fraction));
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
                    return self.complete_simulated(
                        slot,
                        node,
                        target,
                        task.busy_ms,
                        energy,
                        true,
                        sampled,
                    );
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
        let sampled = self.sampled_run(slot, node, &task, None);
        if let Some(run) = sampled.filter(|r| r.early) {
            self.counters.early_stops += 1;
            if self.trace.is_some() {
                let o = self.modelled(slot, node, target, run);
                let (job, node_id) = self.ids(slot, node);
                self.emit(TraceEvent::EarlyStop {
                    t_ms: self.now_ms,
                    job,
                    node: node_id,
                    samples: run.samples,
                    max_rhat: o.map(|o| o.max_rhat),
                    min_ess_bulk: o.map(|o| o.min_ess_bulk),
                })?;
            }
        }
        self.observe(slot, node, target, task.busy_ms, energy)?;
        self.dispatch(device)?;
        self.complete_simulated(slot, node, target, task.busy_ms, energy, false, sampled)
    }

    /// The samples a simulated sampling task kept: all, up to its early
    /// stop, or (timed out) the share of the sweeps it got through.
    fn sampled_run(
        &self,
        slot: u32,
        node: u32,
        task: &Ended,
        done_fraction: Option<f64>,
    ) -> Option<SampledRun> {
        let luck = task.luck?;
        let class = self.jobs[slot].class as usize;
        let s = self.classes[class].graph.nodes[node as usize]
            .sample()?
            .program
            .schedule;
        let total = s.samples as usize;
        let (warmup, steps) = (s.warmup as f64, s.steps_per_sample.max(1) as f64);
        let (samples, early) = match (done_fraction, task.early_at) {
            (Some(f), at) => {
                let planned = at.unwrap_or(total);
                let sweeps = f * (warmup + planned as f64 * steps);
                let kept = ((sweeps - warmup) / steps).floor();
                ((kept.max(0.0) as usize).min(planned), false)
            }
            (None, Some(at)) => (at, true),
            (None, None) => (total, false),
        };
        Some(SampledRun {
            samples,
            total,
            luck,
            early,
        })
    }

    /// The modelled diagnostics of a simulated run.
    fn modelled(
        &self,
        slot: u32,
        node: u32,
        target: Target,
        run: SampledRun,
    ) -> Option<crate::perf::SimulatedOutcome> {
        let class = self.jobs[slot].class as usize;
        let plan = &self.classes[class];
        let np = &plan.nodes[node as usize];
        let fit = np.mixing.get(np.target_slot(target))?.as_ref()?;
        let chains = plan.graph.nodes[node as usize]
            .sample()?
            .program
            .schedule
            .chains as usize;
        Some(fit.outcome(chains, run.samples, run.total, run.luck))
    }

    pub(super) fn complete_simulated(
        &mut self,
        slot: u32,
        node: u32,
        target: Target,
        service_ms: f64,
        energy: f64,
        degraded: bool,
        sampled: Option<SampledRun>,
    ) -> Result<(), EngineError> {
        let mut summary = serde_json::Map::new();
        if degraded {
            summary.insert("degraded".into(), json!("fewer samples (timeout)"));
        }
        if let Some(run) = sampled {
            self.judge_simulated_sampling(slot, node, target, run, &mut summary)?;
        }
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
            // Simulated evidence: the modelled diagnostics, and stand-in
            // hashes naming the output each node would have hashed.
            let input_hashes = self.input_hashes(slot, node);
            let plan = &self.classes[class];
            let n = &plan.graph.nodes[node as usize];
            let np = &plan.nodes[node as usize];
            let job = self.jobs[slot].id;
            let stand_in = stand_in_hash(job, &n.id, target, np.program_hash.as_deref());
            let figure = |key: &str| summary.get(key).and_then(serde_json::Value::as_f64);
            let evidence = Evidence {
                node: n.id.clone(),
                kind: Some(n.kind()),
                backend: Some(target.name().into()),
                schedule: n.sample().map(|s| s.program.schedule),
                program_hash: np.program_hash.clone(),
                inputs: np.preds.len(),
                input_hashes,
                output_hash: Some(stand_in),
                max_rhat: figure("max_rhat"),
                min_ess_bulk: figure("min_ess_bulk"),
                constraint_rate: figure("constraint_rate"),
                diagnostics_level: summary
                    .get("diagnostics_level")
                    .and_then(|v| serde_json::from_value(v.clone()).ok()),
                simulated: true,
            };
            self.jobs[slot].evidence[node as usize] = Some(evidence);
        }
        let summary = (!summary.is_empty()).then_some(serde_json::Value::Object(summary));
        self.trace_end(
            slot,
            node,
            target,
            NodeStatus::Completed,
            service_ms,
            energy,
            false,
            || summary.clone(),
        )?;
        self.close_node(slot, node, NodeStatus::Completed, None, None)
    }

    /// A simulated sampling node's diagnostics, judged as execute mode
    /// judges real ones: the level the queues allow, NonConvergence
    /// escalated to review. Writes what execution would report into
    /// `summary`.
    fn judge_simulated_sampling(
        &mut self,
        slot: u32,
        node: u32,
        target: Target,
        run: SampledRun,
        summary: &mut serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), EngineError> {
        let Some(o) = self.modelled(slot, node, target, run) else {
            return Ok(());
        };
        let mut level = diagnostics_level(self.occupancy(), &self.hw.budgets);
        if level != DiagnosticsLevel::Full {
            self.counters.degraded_diagnostics += 1;
        }
        let threshold = nonconvergence_rhat(&self.hw.gate);
        if level != DiagnosticsLevel::None && o.max_rhat > threshold {
            // NonConvergence: escalate diagnostics and require a human.
            self.counters.nonconvergence += 1;
            level = DiagnosticsLevel::Full;
            let (_, node_id) = self.ids(slot, node);
            let why = format!(
                "node {node_id:?} did not converge (max R-hat {:.3} > {threshold:.3}, simulated)",
                o.max_rhat
            );
            self.jobs[slot].escalations.push(why.clone());
            self.emit_failure(
                slot,
                node,
                FailureKind::NonConvergence,
                FailureAction::EscalateReview,
                why,
            )?;
        }
        summary.insert("simulated".into(), json!(true));
        summary.insert("samples".into(), json!(run.samples));
        summary.insert("diagnostics_level".into(), json!(level));
        if level != DiagnosticsLevel::None {
            summary.insert("max_rhat".into(), json!(o.max_rhat));
            summary.insert("min_ess_bulk".into(), json!(o.min_ess_bulk));
        }
        summary.insert("constraint_rate".into(), json!(o.constraint_rate));
        if let Some(e) = o.max_error {
            summary.insert("max_error".into(), json!(e));
        }
        if run.early {
            summary.insert(
                "early_stop".into(),
                json!(format!(
                    "stopped early at {} of {} samples (converged)",
                    run.samples, run.total
                )),
            );
        }
        Ok(())
    }
}

/// The stand-in output hash of a simulated node: names the job, node,
/// target and program whose output it stands for, marked `simulated:` so
/// that it can never pass for a real draws hash.
fn stand_in_hash(job: u64, node: &str, target: Target, program: Option<&str>) -> String {
    let mut h = Sha256::new();
    h.update(job.to_le_bytes());
    h.update(node.as_bytes());
    h.update(target.name().as_bytes());
    h.update(program.unwrap_or("").as_bytes());
    format!("simulated:sha256:{}", hex::encode(h.finalize()))
}
