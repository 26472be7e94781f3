//! Execute mode: nodes really run on their backends and measured time
//! advances the clock. Sampling runs in slices, so between slices it can be
//! preempted, timed out or stopped early; its draws become evidence.

use serde_json::json;

use super::decide::sampling::{
    constraint_rate, converged_early, diagnostics_level, early_stop_check_due, keeps_draws,
    nonconvergence_rhat, run_diagnostics,
};
use super::{Clock, Engine, EngineError};
use crate::backends::BackendError;
use crate::backends::node;
use crate::backends::value::{NodeCall, NodeInputs, Value};
use crate::device::Target;
use crate::diagnostics::diagnose;
use crate::model::EProgram;
use crate::model::graph::{ControlOp, NodeKind};
use crate::perf::busy_energy;
use crate::policy::{DiagnosticsLevel, Evidence};
use crate::sampler::{Draws, SampleError};
use crate::trace::{FailureAction, FailureKind, NodeStatus, TraceEvent};

impl Engine {
    pub(super) fn start_executed(
        &mut self,
        task_id: u32,
        kind: NodeKind,
    ) -> Result<(), EngineError> {
        let now = self.now_ms;
        let (slot, node, target) = {
            let t = &self.tasks[task_id];
            (t.job, t.node, t.target)
        };
        let class = self.jobs[slot].class as usize;
        let slowdown = self.hw.slowdown(target.device(), now);
        if kind != NodeKind::Sample {
            let plan = &self.classes[class];
            let index = plan.graph.index();
            let backend = self
                .backends
                .get_mut(target)
                .expect("routing only picks built backends");
            let started = std::time::Instant::now();
            let result = backend.run_node(NodeCall {
                graph: &plan.graph,
                node: node as usize,
                inputs: NodeInputs {
                    values: &self.jobs[slot].values,
                    index: &index,
                },
            });
            let measured_ms = started.elapsed().as_secs_f64() * 1e3;
            let measured_j = backend.take_energy_j();
            let (ms, measured_j) = match self.config.clock {
                Clock::Measured => (measured_ms * slowdown, measured_j),
                // The model's time, and power x that time for energy.
                Clock::Modelled => (self.modelled_ms(slot, node, target) * slowdown, None),
            };
            return match result {
                Err(e) => {
                    self.release(task_id);
                    self.fall_back(slot, node, target, failure_kind(&e), e.to_string())
                }
                Ok(result) => {
                    let t = &mut self.tasks[task_id];
                    t.result = Some(Box::new(result));
                    t.run_ms = ms;
                    t.energy_j = measured_j.map_or(0.0, |j| j * slowdown);
                    let at = now + ms;
                    self.schedule_done(task_id, at);
                    Ok(())
                }
            };
        }
        if self.tasks[task_id].sampling.is_none() {
            let plan = &self.classes[class];
            let index = plan.graph.index();
            let program = match node::conditioned_program(
                &plan.graph,
                node as usize,
                &self.jobs[slot].values,
                &index,
            ) {
                Ok(p) => p,
                Err((status, why)) => {
                    self.release(task_id);
                    return self.close_node(slot, node, status, Some(why), None);
                }
            };
            let seed = self.tasks[task_id].seed;
            let started = self
                .backends
                .get_mut(target)
                .expect("routing only picks built backends")
                .start_sampling(&program, seed);
            match started {
                Err(e) => {
                    self.release(task_id);
                    return self.fall_back(slot, node, target, failure_kind(&e), e.to_string());
                }
                Ok(Err(SampleError::Infeasible(inf))) => {
                    self.release(task_id);
                    let why = format!("{} ({})", inf.explanation, inf.constraint);
                    let (job, node_id) = self.ids(slot, node);
                    self.emit(TraceEvent::Failure {
                        t_ms: now,
                        job,
                        node: node_id,
                        kind: FailureKind::ConstraintInfeasible,
                        action: FailureAction::Infeasible,
                        detail: why.clone(),
                    })?;
                    return self.close_node(slot, node, NodeStatus::Infeasible, Some(why), None);
                }
                Ok(Err(e)) => {
                    self.release(task_id);
                    return self.close_node(
                        slot,
                        node,
                        NodeStatus::Failed,
                        Some(e.to_string()),
                        None,
                    );
                }
                Ok(Ok(run)) => {
                    let t = &mut self.tasks[task_id];
                    t.sampling = Some(run);
                    t.program = Some(Box::new(program));
                }
            }
        }
        self.run_slice(task_id)
    }

    pub(super) fn run_slice(&mut self, task_id: u32) -> Result<(), EngineError> {
        let now = self.now_ms;
        let sweeps = self.hw.budgets.slice_sweeps;
        let modelled = self.config.clock == Clock::Modelled;
        let model_ms = if modelled {
            let t = &self.tasks[task_id];
            self.modelled_ms(t.job, t.node, t.target)
        } else {
            0.0
        };
        let t = &mut self.tasks[task_id];
        let slowdown = self.hw.slowdown(t.target.device(), now);
        let run = t.sampling.as_mut().expect("sampling started");
        let before = run.sweeps_done();
        let cost = run.advance(sweeps);
        let fraction = (run.sweeps_done() - before) as f64 / run.total_sweeps().max(1) as f64;
        match cost {
            Ok(cost) => {
                let ms = if modelled {
                    // This slice's share of the modelled service.
                    model_ms * fraction * slowdown
                } else {
                    cost.device_seconds.unwrap_or(cost.seconds) * 1e3 * slowdown
                };
                t.run_ms = ms;
                t.run_started_ms = now;
                if let Some(e) = cost.energy_j.filter(|_| !modelled) {
                    t.energy_j += e;
                }
                let at = now + ms;
                self.schedule_done(task_id, at);
                Ok(())
            }
            Err(e) => {
                let (slot, node, target) = (t.job, t.node, t.target);
                self.release(task_id);
                self.fall_back(slot, node, target, failure_kind(&e), e.to_string())
            }
        }
    }

    pub(super) fn executed_done(&mut self, task_id: u32) -> Result<(), EngineError> {
        let mut task = self.release(task_id);
        let (slot, node, target) = (task.job, task.node, task.target);
        let device = target.device();
        let service = task.run_ms;
        // A backend that measured its own busy energy (the GPU's timestamps)
        // is believed over power × wall time.
        let energy = if task.energy_j > 0.0 {
            task.energy_j
        } else {
            busy_energy(&self.hw, device, service)
        };
        self.jobs[slot].energy_j += energy;
        let result = *task.result.take().expect("executed tasks carry a result");
        if service > task.timeout_ms {
            self.counters.timeouts += 1;
            self.emit_failure(
                slot,
                node,
                FailureKind::BudgetExceeded,
                FailureAction::Degrade,
                format!(
                    "took {service:.3} ms, past the {:.3} ms timeout; result kept and marked late",
                    task.timeout_ms
                ),
            )?;
        }
        self.observe(slot, node, target, service, energy)?;
        self.dispatch(device)?;
        match result {
            Ok((value, summary)) => {
                self.complete_executed(slot, node, target, value, summary, service, energy, None)
            }
            Err((status, why)) => {
                self.trace_end(slot, node, target, status, service, energy, true, || None)?;
                self.close_node(slot, node, status, Some(why), None)
            }
        }
    }

    pub(super) fn slice_done(&mut self, task_id: u32) -> Result<(), EngineError> {
        let now = self.now_ms;
        let b = self.hw.budgets.clone();
        let t = &mut self.tasks[task_id];
        t.busy_ms += t.run_ms;
        let run = t.sampling.as_ref().expect("sampling");
        let done = run.is_done();
        let progress = run.sweeps_done() as f64 / run.total_sweeps().max(1) as f64;
        if !done && t.preempt_requested {
            let (device, by) = (t.target.device(), t.preempted_by);
            t.sampling.as_mut().expect("sampling").suspend();
            self.suspend(task_id, by, progress)?;
            return self.dispatch(device);
        }
        let samples = run.samples_done();
        let total = run.total_samples();
        let timed_out = !done && t.busy_ms > t.timeout_ms;
        let mut early = false;
        if !done && !timed_out && early_stop_check_due(samples, total, t.last_checked_samples, &b) {
            t.last_checked_samples = samples;
            let d = diagnose(&run.draws());
            early = converged_early(&d, &b);
            if early {
                let (slot, node) = (t.job, t.node);
                self.counters.early_stops += 1;
                let (job, node_id) = self.ids(slot, node);
                self.emit(TraceEvent::EarlyStop {
                    t_ms: now,
                    job,
                    node: node_id,
                    samples,
                    max_rhat: d.max_rhat,
                    min_ess_bulk: d.min_ess_bulk,
                })?;
            }
        }
        if !done && !timed_out && !early {
            return self.run_slice(task_id);
        }
        let mut task = self.release(task_id);
        let (slot, node, target) = (task.job, task.node, task.target);
        let device = target.device();
        let energy = if task.energy_j > 0.0 {
            task.energy_j
        } else {
            busy_energy(&self.hw, device, task.busy_ms)
        };
        self.jobs[slot].energy_j += energy;
        let mut note = None;
        if timed_out {
            self.counters.timeouts += 1;
            if !keeps_draws(samples, total, &b) {
                return self.budget_fallback(
                    slot,
                    node,
                    target,
                    format!(
                        "timed out after {:.3} ms with {samples} of {total} samples",
                        task.busy_ms
                    ),
                );
            }
            self.keep_partial_draws(
                slot,
                node,
                format!(
                    "timed out after {:.3} ms; kept {samples} of {total} samples",
                    task.busy_ms
                ),
            )?;
            note = Some(format!("fewer samples: {samples} of {total} (timeout)"));
        } else if early {
            note = Some(format!(
                "stopped early at {samples} of {total} samples (converged)"
            ));
        }
        self.observe(slot, node, target, task.busy_ms, energy)?;
        self.dispatch(device)?;
        let sampling = task.sampling.take().expect("sampling");
        let draws = sampling.draws();
        let provenance = sampling.provenance();
        let program = task.program.take().expect("program kept");
        self.finish_sampling(
            slot,
            node,
            target,
            &program,
            &draws,
            task.seed,
            task.busy_ms,
            energy,
            note,
            provenance,
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn finish_sampling(
        &mut self,
        slot: u32,
        node: u32,
        target: Target,
        program: &EProgram,
        draws: &Draws,
        seed: u64,
        service: f64,
        energy: f64,
        note: Option<String>,
        provenance: Vec<(&'static str, String)>,
    ) -> Result<(), EngineError> {
        let occupancy = self.occupancy();
        let mut level = diagnostics_level(occupancy, &self.hw.budgets);
        if level != DiagnosticsLevel::Full {
            self.counters.degraded_diagnostics += 1;
        }
        let mut diagnostics = run_diagnostics(draws, level);
        let threshold = nonconvergence_rhat(&self.hw.gate);
        let not_converged = diagnostics
            .as_ref()
            .and_then(|d| d.max_rhat)
            .is_some_and(|r| r > threshold);
        if not_converged {
            // NonConvergence: escalate diagnostics and require a human.
            self.counters.nonconvergence += 1;
            if level != DiagnosticsLevel::Full {
                level = DiagnosticsLevel::Full;
                diagnostics = run_diagnostics(draws, level);
            }
            let r = diagnostics
                .as_ref()
                .and_then(|d| d.max_rhat)
                .unwrap_or(f64::NAN);
            let (_, node_id) = self.ids(slot, node);
            let why =
                format!("node {node_id:?} did not converge (max R-hat {r:.3} > {threshold:.3})");
            self.jobs[slot].escalations.push(why.clone());
            self.emit_failure(
                slot,
                node,
                FailureKind::NonConvergence,
                FailureAction::EscalateReview,
                why,
            )?;
        }
        let (value, mut summary) = node::sample_output(program, draws, seed, target.name());
        summary["diagnostics_level"] = json!(level);
        if level != DiagnosticsLevel::Full {
            summary["max_rhat"] = json!(diagnostics.as_ref().and_then(|d| d.max_rhat));
            summary["min_ess_bulk"] = json!(diagnostics.as_ref().and_then(|d| d.min_ess_bulk));
        }
        if let Some(n) = &note {
            summary["degraded"] = json!(n);
        }
        for (key, value) in provenance {
            summary[key] = json!(value);
        }
        let output_hash = summary["draws_hash"].as_str().map(String::from);
        let input_hashes = self.input_hashes(slot, node);
        let (_, node_id) = self.ids(slot, node);
        let evidence = Evidence {
            node: node_id,
            kind: Some(NodeKind::Sample),
            backend: Some(target.name().into()),
            schedule: Some(program.schedule),
            program_hash: Some(program.canonical_hash()),
            inputs: self.classes[self.jobs[slot].class as usize].nodes[node as usize]
                .preds
                .len(),
            input_hashes,
            output_hash,
            max_rhat: diagnostics.as_ref().and_then(|d| d.max_rhat),
            min_ess_bulk: diagnostics.as_ref().and_then(|d| d.min_ess_bulk),
            constraint_rate: Some(constraint_rate(program, draws)),
            diagnostics_level: Some(level),
            simulated: false,
        };
        self.jobs[slot].evidence[node as usize] = Some(evidence);
        self.complete_executed(slot, node, target, value, summary, service, energy, note)
    }

    pub(super) fn input_hashes(&self, slot: u32, node: u32) -> Vec<String> {
        let job = &self.jobs[slot];
        self.classes[job.class as usize].nodes[node as usize]
            .preds
            .iter()
            .filter_map(|&p| {
                job.evidence[p as usize]
                    .as_ref()
                    .and_then(|e| e.output_hash.clone())
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn complete_executed(
        &mut self,
        slot: u32,
        node: u32,
        target: Target,
        value: Value,
        summary: serde_json::Value,
        service: f64,
        energy: f64,
        note: Option<String>,
    ) -> Result<(), EngineError> {
        let class = self.jobs[slot].class as usize;
        if let (Value::Bool(taken), Some(c)) = (
            &value,
            self.classes[class].graph.nodes[node as usize].control(),
        ) && c.op == ControlOp::Branch
        {
            let not_taken = if *taken { &c.else_nodes } else { &c.then_nodes };
            let ids: Vec<usize> = not_taken
                .iter()
                .filter_map(|id| self.classes[class].index.get(id).copied())
                .collect();
            for j in ids {
                self.jobs[slot].nodes[j].skipped_by_branch = true;
            }
        }
        if self.jobs[slot].evidence[node as usize].is_none() {
            let input_hashes = self.input_hashes(slot, node);
            let n = &self.classes[class].graph.nodes[node as usize];
            let inputs = self.classes[class].nodes[node as usize].preds.len();
            self.jobs[slot].evidence[node as usize] = Some(Evidence {
                node: n.id.clone(),
                kind: Some(n.kind()),
                backend: Some(target.name().into()),
                inputs,
                input_hashes,
                output_hash: Some(value_hash(&value)),
                ..Default::default()
            });
        }
        self.jobs[slot].values.insert(node as usize, value);
        self.trace_end(
            slot,
            node,
            target,
            NodeStatus::Completed,
            service,
            energy,
            true,
            || Some(summary.clone()),
        )?;
        self.close_node(slot, node, NodeStatus::Completed, note, Some(summary))
    }
}

impl Engine {
    /// The service model's mean for a node on a target (`--clock
    /// modelled`): `[[perf]]` > calibrated fit > built-in, the TSU's from
    /// its chip model.
    fn modelled_ms(&self, slot: u32, node: u32, target: Target) -> f64 {
        let np = &self.classes[self.jobs[slot].class as usize].nodes[node as usize];
        np.prior[np.target_slot(target)].mean_ms
    }
}

/// The failure a backend error is: `Unavailable` falls back as
/// BackendUnavailable, anything else as BackendError.
pub(super) fn failure_kind(e: &BackendError) -> FailureKind {
    match e {
        BackendError::Unavailable(_) => FailureKind::BackendUnavailable,
        _ => FailureKind::BackendError,
    }
}

/// The evidence hash of a deterministic node's output.
fn value_hash(value: &Value) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    match value {
        Value::Tensor(t) => {
            for d in t.shape() {
                h.update((*d as u64).to_le_bytes());
            }
            for x in t.iter() {
                h.update(x.to_le_bytes());
            }
        }
        Value::Samples { marginals } => {
            for m in marginals {
                h.update(m.unwrap_or(f64::NAN).to_le_bytes());
            }
        }
        Value::Bool(b) => h.update([u8::from(*b)]),
        Value::Index(i) => h.update((*i as u64).to_le_bytes()),
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}
