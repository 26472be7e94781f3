//! What the UI knows at a point of the trace: derived by applying events in
//! order, so replay, `--follow` and the live simulation share one model.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::device::{Device, Target};
use crate::hardware::Hardware;
use crate::perf::Drift;
use crate::policy::GateDecision;
use crate::trace::{FailureAction, FailureKind, JobStatus, NodeStatus, TraceEvent};

/// One execution of a node on a device (lanes are packed when drawn:
/// [`pack_lanes`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Execution {
    pub device: Device,
    pub job: u64,
    pub node: String,
    pub class: usize,
    pub target: Target,
    pub start_ms: f64,
    /// `None` while running.
    pub end_ms: Option<f64>,
    pub status: Option<NodeStatus>,
    /// Index of the routing decision that sent it there.
    pub decision: Option<usize>,
    /// How it ended when it did not end normally (preempted, fell back).
    pub note: Option<String>,
}

/// Lanes for executions, packed per device: each goes on the lowest lane
/// free at its start (a lane whose last execution ended at or before it), so
/// the order of an `end` and a `start` at the same time cannot add a lane.
/// Running executions hold their lane. Returns each execution's lane and the
/// lanes used per device.
pub fn pack_lanes(executions: &[Execution]) -> (Vec<usize>, BTreeMap<Device, usize>) {
    let mut free_at: BTreeMap<Device, Vec<f64>> = BTreeMap::new();
    let mut order: Vec<usize> = (0..executions.len()).collect();
    order.sort_by(|&a, &b| executions[a].start_ms.total_cmp(&executions[b].start_ms));
    let mut lanes = vec![0; executions.len()];
    for i in order {
        let e = &executions[i];
        let ends = free_at.entry(e.device).or_default();
        let end = e.end_ms.unwrap_or(f64::INFINITY).max(e.start_ms);
        let lane = match ends.iter().position(|&f| f <= e.start_ms) {
            Some(l) => l,
            None => {
                ends.push(0.0);
                ends.len() - 1
            }
        };
        ends[lane] = end;
        lanes[i] = lane;
    }
    let used = free_at.into_iter().map(|(d, l)| (d, l.len())).collect();
    (lanes, used)
}

/// What the events log shows, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LogKind {
    Failure,
    Fallback,
    Backpressure,
    Preemption,
    Drift,
    Gate,
    Review,
    Policy,
    Control,
    Job,
}

impl LogKind {
    pub const ALL: [LogKind; 10] = [
        LogKind::Failure,
        LogKind::Fallback,
        LogKind::Backpressure,
        LogKind::Preemption,
        LogKind::Drift,
        LogKind::Gate,
        LogKind::Review,
        LogKind::Policy,
        LogKind::Control,
        LogKind::Job,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LogKind::Failure => "failure",
            LogKind::Fallback => "fallback",
            LogKind::Backpressure => "backpressure",
            LogKind::Preemption => "preemption",
            LogKind::Drift => "drift",
            LogKind::Gate => "gate",
            LogKind::Review => "review",
            LogKind::Policy => "policy",
            LogKind::Control => "control",
            LogKind::Job => "job",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogLine {
    /// Index of the trace event.
    pub event: usize,
    pub t_ms: f64,
    pub kind: LogKind,
    pub job: Option<u64>,
    pub node: Option<String>,
    pub text: String,
}

/// Points kept per queue-depth sparkline.
pub const SPARK_POINTS: usize = 120;

/// The model: everything derived from events `0..applied`.
#[derive(Debug, Clone)]
pub struct Model {
    pub mode: String,
    pub seed: u64,
    pub policy: String,
    pub classes: Vec<String>,
    pub class_qos: Vec<crate::model::graph::Qos>,
    pub hardware: Option<Hardware>,
    pub now_ms: f64,
    pub applied: usize,
    pub executions: Vec<Execution>,
    open: HashMap<(u64, String), usize>,
    /// The latest routing decision per node.
    routes: HashMap<(u64, String), usize>,
    job_class: HashMap<u64, usize>,
    /// Trace indices of routing decisions, in order.
    pub decisions: Vec<usize>,
    pub log: Vec<LogLine>,
    /// Admitted but not started, per device.
    pub queued: BTreeMap<Device, i64>,
    pub queue_history: BTreeMap<Device, VecDeque<u64>>,
    pub energy_j: f64,
    /// End-to-end latency of every completed job, per class.
    pub latencies: Vec<Vec<f64>>,
    pub jobs_ended: u64,
    /// Per class: jobs ended, and jobs that completed within their targets.
    pub ended_by_class: Vec<u64>,
    pub slo_met: Vec<u64>,
    pub jobs_by_status: BTreeMap<&'static str, u64>,
    pub pending_reviews: u64,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            mode: String::new(),
            seed: 0,
            policy: String::new(),
            classes: Vec::new(),
            class_qos: Vec::new(),
            hardware: None,
            now_ms: 0.0,
            applied: 0,
            executions: Vec::new(),
            open: HashMap::new(),
            routes: HashMap::new(),
            job_class: HashMap::new(),
            decisions: Vec::new(),
            log: Vec::new(),
            queued: BTreeMap::new(),
            queue_history: BTreeMap::new(),
            energy_j: 0.0,
            latencies: Vec::new(),
            jobs_ended: 0,
            ended_by_class: Vec::new(),
            slo_met: Vec::new(),
            jobs_by_status: BTreeMap::new(),
            pending_reviews: 0,
        }
    }
}

/// Guest output lines the events view shows under a policy fault.
pub const GUEST_LINES: usize = 12;

/// The time of an event (the header has none).
pub fn event_time(e: &TraceEvent) -> Option<f64> {
    use TraceEvent as E;
    match e {
        E::Header { .. } => None,
        E::Arrival { t_ms, .. }
        | E::Route { t_ms, .. }
        | E::Admit { t_ms, .. }
        | E::Reject { t_ms, .. }
        | E::Hold { t_ms, .. }
        | E::HoldEnd { t_ms, .. }
        | E::Preempt { t_ms, .. }
        | E::Resume { t_ms, .. }
        | E::Steal { t_ms, .. }
        | E::Start { t_ms, .. }
        | E::End { t_ms, .. }
        | E::Failure { t_ms, .. }
        | E::EarlyStop { t_ms, .. }
        | E::Gate { t_ms, .. }
        | E::Drift { t_ms, .. }
        | E::PolicyFault { t_ms, .. }
        | E::PolicyReload { t_ms, .. }
        | E::Control { t_ms, .. }
        | E::JobEnd { t_ms, .. } => Some(*t_ms),
    }
}

/// Whether the "jump to next" keys stop at this event.
pub fn is_failure(e: &TraceEvent) -> bool {
    matches!(
        e,
        TraceEvent::Failure { .. }
            | TraceEvent::PolicyFault { .. }
            | TraceEvent::Reject { .. }
            | TraceEvent::JobEnd {
                status: JobStatus::Failed | JobStatus::Infeasible,
                ..
            }
    )
}

impl Model {
    /// The lanes the hardware gives a device (its slots).
    pub fn device_slots(&self, device: Device) -> usize {
        self.hardware.as_ref().map_or(0, |hw| hw.slots(device))
    }

    fn push_log(
        &mut self,
        event: usize,
        t_ms: f64,
        kind: LogKind,
        job: Option<u64>,
        node: Option<&str>,
        text: String,
    ) {
        self.log.push(LogLine {
            event,
            t_ms,
            kind,
            job,
            node: node.map(str::to_string),
            text,
        });
    }

    fn bump_queue(&mut self, device: Device, by: i64) {
        let q = self.queued.entry(device).or_default();
        *q = (*q + by).max(0);
        let depth = *q as u64;
        let h = self.queue_history.entry(device).or_default();
        h.push_back(depth);
        if h.len() > SPARK_POINTS {
            h.pop_front();
        }
    }

    fn start(&mut self, job: u64, node: &str, target: Target, t_ms: f64) {
        let key = (job, node.to_string());
        let index = self.executions.len();
        self.executions.push(Execution {
            device: target.device(),
            job,
            node: node.to_string(),
            class: self.job_class.get(&job).copied().unwrap_or(0),
            target,
            start_ms: t_ms,
            end_ms: None,
            status: None,
            decision: self.routes.get(&key).copied(),
            note: None,
        });
        self.open.insert(key, index);
    }

    fn stop(
        &mut self,
        job: u64,
        node: &str,
        t_ms: f64,
        status: Option<NodeStatus>,
        note: Option<String>,
    ) {
        if let Some(index) = self.open.remove(&(job, node.to_string())) {
            let e = &mut self.executions[index];
            e.end_ms = Some(t_ms);
            e.status = status;
            e.note = note;
        }
    }

    /// Events were lost (a part of a rotated trace was deleted before it
    /// was read): what was running may have ended unseen, so it is closed
    /// at `t_ms` rather than drawn as running for ever.
    pub fn events_lost(&mut self, t_ms: f64) {
        for (_, index) in self.open.drain() {
            let e = &mut self.executions[index];
            e.end_ms = Some(t_ms.max(e.start_ms));
            e.note = Some("its end was in a dropped part of the trace".into());
        }
    }

    /// Applies event `index` (events must be applied in order).
    pub fn apply(&mut self, index: usize, event: &TraceEvent) {
        use TraceEvent as E;
        if let Some(t) = event_time(event) {
            self.now_ms = self.now_ms.max(t);
        }
        self.applied = index + 1;
        match event {
            E::Header {
                mode,
                seed,
                policy,
                classes,
                hardware,
                class_qos,
                ..
            } => {
                self.class_qos = class_qos.clone();
                self.mode = mode.clone();
                self.seed = *seed;
                self.policy = policy.clone();
                self.classes = classes.clone();
                self.latencies = vec![Vec::new(); classes.len()];
                self.ended_by_class = vec![0; classes.len()];
                self.slo_met = vec![0; classes.len()];
                self.hardware = Some((**hardware).clone());
            }
            E::Arrival { job, class, .. } => {
                self.job_class.insert(*job, *class);
            }
            E::Route {
                t_ms,
                job,
                node,
                attempt,
                chosen,
                ..
            } => {
                self.decisions.push(index);
                self.routes.insert((*job, node.clone()), index);
                if *attempt > 0 {
                    let to = chosen.map_or("nowhere".to_string(), |t| t.to_string());
                    self.push_log(
                        index,
                        *t_ms,
                        LogKind::Fallback,
                        Some(*job),
                        Some(node),
                        format!("fallback #{attempt} routes to {to}"),
                    );
                }
            }
            E::Admit { target, .. } => self.bump_queue(target.device(), 1),
            E::Steal { from, to, .. } => {
                self.bump_queue(from.device(), -1);
                self.bump_queue(to.device(), 1);
            }
            E::Start {
                t_ms,
                job,
                node,
                target,
            } => {
                self.bump_queue(target.device(), -1);
                self.start(*job, node, *target, *t_ms);
            }
            E::Resume {
                t_ms,
                job,
                node,
                target,
            } => {
                self.push_log(
                    index,
                    *t_ms,
                    LogKind::Preemption,
                    Some(*job),
                    Some(node),
                    format!("resumed on {target}"),
                );
                self.start(*job, node, *target, *t_ms);
            }
            E::End {
                t_ms,
                job,
                node,
                status,
                energy_j,
                ..
            } => {
                self.energy_j += energy_j;
                self.stop(*job, node, *t_ms, Some(*status), None);
            }
            E::Preempt {
                t_ms,
                job,
                node,
                target,
                by_job,
                progress,
            } => {
                self.stop(
                    *job,
                    node,
                    *t_ms,
                    None,
                    Some(format!("preempted by job {by_job}")),
                );
                self.push_log(
                    index,
                    *t_ms,
                    LogKind::Preemption,
                    Some(*job),
                    Some(node),
                    format!(
                        "preempted on {target} by job {by_job} at {:.0}%",
                        progress * 100.0
                    ),
                );
            }
            E::Hold {
                t_ms,
                job,
                node,
                target,
                plugin,
                reason,
                max_hold_ms,
            } => self.push_log(
                index,
                *t_ms,
                LogKind::Backpressure,
                Some(*job),
                Some(node),
                format!("held for {target} by {plugin} (at most {max_hold_ms} ms): {reason}"),
            ),
            E::HoldEnd {
                t_ms,
                job,
                node,
                target,
                held_ms,
                outcome,
                ..
            } => self.push_log(
                index,
                *t_ms,
                LogKind::Backpressure,
                Some(*job),
                Some(node),
                format!(
                    "hold on {target} ended after {held_ms:.1} ms: {}",
                    outcome.words()
                ),
            ),
            E::Reject {
                t_ms,
                job,
                node,
                retry_after_ms,
                reason,
            } => self.push_log(
                index,
                *t_ms,
                LogKind::Backpressure,
                Some(*job),
                Some(node),
                format!("rejected, retry after {retry_after_ms:.1} ms: {reason}"),
            ),
            E::Failure {
                t_ms,
                job,
                node,
                kind,
                action,
                detail,
            } => {
                if matches!(
                    action,
                    FailureAction::Fallback | FailureAction::Fail | FailureAction::Infeasible
                ) {
                    // The attempt ended here (a timeout, a backend error or an
                    // offline device): no `end` follows for it.
                    self.stop(
                        *job,
                        node,
                        *t_ms,
                        None,
                        Some(format!(
                            "{}: {}",
                            failure_words(*kind),
                            action_words(*action)
                        )),
                    );
                }
                self.push_log(
                    index,
                    *t_ms,
                    LogKind::Failure,
                    Some(*job),
                    Some(node),
                    format!(
                        "{}: {}: {detail}",
                        failure_words(*kind),
                        action_words(*action)
                    ),
                )
            }
            E::EarlyStop {
                t_ms,
                job,
                node,
                samples,
                ..
            } => self.push_log(
                index,
                *t_ms,
                LogKind::Job,
                Some(*job),
                Some(node),
                format!("stopped early after {samples} samples (converged)"),
            ),
            E::Gate {
                t_ms,
                job,
                node,
                decision,
                review_id,
                ..
            } => {
                let (kind, text) = match decision {
                    GateDecision::Allow => (LogKind::Gate, "gate allowed the effect".to_string()),
                    GateDecision::Deny(r) => {
                        (LogKind::Gate, format!("gate denied: {}", r.join("; ")))
                    }
                    GateDecision::RequireReview(r) => {
                        self.pending_reviews += 1;
                        (
                            LogKind::Review,
                            format!(
                                "held for review{}: {}",
                                review_id
                                    .as_ref()
                                    .map_or(String::new(), |id| format!(" ({id})")),
                                r.join("; ")
                            ),
                        )
                    }
                };
                self.push_log(index, *t_ms, kind, Some(*job), Some(node), text);
            }
            E::Drift { t_ms, drift } => {
                self.push_log(index, *t_ms, LogKind::Drift, None, None, drift_words(drift))
            }
            E::PolicyFault {
                t_ms,
                job,
                node,
                role,
                fault,
                fallback,
            } => {
                self.push_log(
                    index,
                    *t_ms,
                    LogKind::Policy,
                    *job,
                    node.as_deref(),
                    format!(
                        "{role} policy fault ({}): {}; {fallback}",
                        fault.kind, fault.reason
                    ),
                );
                // What the plugin printed, a line each, under the fault.
                for line in fault.output.excerpt(GUEST_LINES) {
                    let text = format!("  │ {line}");
                    self.push_log(index, *t_ms, LogKind::Policy, *job, node.as_deref(), text);
                }
            }
            E::PolicyReload { t_ms, notice } => {
                if notice.ok {
                    self.policy = format!(
                        "{} [{} now {}]",
                        self.policy_base(),
                        notice.role,
                        notice.version
                    );
                }
                self.push_log(
                    index,
                    *t_ms,
                    LogKind::Policy,
                    None,
                    None,
                    format!(
                        "{} plugin {}: {}",
                        notice.role,
                        if notice.ok {
                            "reloaded"
                        } else {
                            "reload refused"
                        },
                        notice.detail
                    ),
                );
            }
            E::Control { t_ms, command } => {
                if command["command"] == "swap_policy"
                    && let Some(p) = command["policy"].as_str()
                {
                    self.policy = p.to_string();
                }
                self.push_log(
                    index,
                    *t_ms,
                    LogKind::Control,
                    None,
                    None,
                    control_words(command),
                );
            }
            E::JobEnd {
                t_ms,
                job,
                class,
                status,
                latency_ms,
                energy_j,
                explanation,
            } => {
                self.jobs_ended += 1;
                if let Some(n) = self.ended_by_class.get_mut(*class) {
                    *n += 1;
                    let qos = self.class_qos.get(*class);
                    let within = qos.is_none_or(|q| {
                        q.latency_ms.is_none_or(|l| *latency_ms <= l.p95)
                            && q.energy_j.is_none_or(|e| *energy_j <= e)
                    });
                    if *status == JobStatus::Completed && within {
                        self.slo_met[*class] += 1;
                    }
                }
                *self.jobs_by_status.entry(status.name()).or_default() += 1;
                if *status == JobStatus::Completed
                    && let Some(l) = self.latencies.get_mut(*class)
                {
                    l.push(*latency_ms);
                }
                if *status != JobStatus::Completed {
                    self.push_log(
                        index,
                        *t_ms,
                        LogKind::Job,
                        Some(*job),
                        None,
                        format!(
                            "job {} {}{}",
                            job,
                            status.name(),
                            explanation
                                .as_ref()
                                .map_or(String::new(), |e| format!(": {e}"))
                        ),
                    );
                }
            }
        }
    }

    fn policy_base(&self) -> String {
        self.policy
            .split(" [")
            .next()
            .unwrap_or(&self.policy)
            .to_string()
    }

    /// p50 and p95 of a class's completed jobs so far.
    pub fn latency_quantiles(&self, class: usize) -> Option<(f64, f64)> {
        let l = self.latencies.get(class)?;
        if l.is_empty() {
            return None;
        }
        let mut v = l.clone();
        v.sort_by(f64::total_cmp);
        let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        Some((q(0.5), q(0.95)))
    }
}

/// A failure kind in words.
pub fn failure_words(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::BackendUnavailable => "backend unavailable",
        FailureKind::BudgetExceeded => "over its time budget",
        FailureKind::NonConvergence => "did not converge",
        FailureKind::ConstraintInfeasible => "constraints cannot be met",
        FailureKind::BackendError => "backend error",
    }
}

/// What the engine did about a failure, in words.
pub fn action_words(action: FailureAction) -> &'static str {
    match action {
        FailureAction::Fallback => "falls back to another target",
        FailureAction::ReduceSamples => "keeps the draws made so far",
        FailureAction::Degrade => "result kept, marked degraded",
        FailureAction::EscalateReview => "escalated for review",
        FailureAction::Infeasible => "job infeasible",
        FailureAction::Fail => "failed",
    }
}

/// An operator command (a `control` event) in words: `tsu offline`,
/// `arrival rate 30 jobs/s`, …; an unknown command is shown as it was
/// recorded.
pub fn control_words(command: &serde_json::Value) -> String {
    let num = |key: &str| command[key].as_f64().map_or("?".into(), |x| format!("{x}"));
    match command["command"].as_str() {
        Some("pause") => "engine paused".into(),
        Some("resume") => "engine resumed".into(),
        Some("set_rate") => format!("arrival rate set to {} jobs/s", num("per_s")),
        Some("set_online") => {
            let device = command["device"].as_str().unwrap_or("device");
            match command["online"].as_bool() {
                Some(true) => format!("{device} online"),
                Some(false) => format!("{device} offline"),
                None => format!("{device} online state: {}", command["online"]),
            }
        }
        Some("set_weights") => {
            let w = &command["weights"];
            let f = |k: &str| w[k].as_f64().map_or("?".into(), |x| format!("{x}"));
            format!(
                "cost weights set: latency {}, energy {}, error {}, risk {}",
                f("latency"),
                f("energy"),
                f("error"),
                f("risk")
            )
        }
        Some("swap_policy") => format!(
            "policy swapped to {}",
            command["policy"].as_str().unwrap_or("?")
        ),
        _ => command.to_string(),
    }
}

/// A drift alarm in words.
pub fn drift_words(d: &Drift) -> String {
    let way = match d.direction.as_str() {
        "up" => "slower",
        "down" => "faster",
        other => other,
    };
    format!(
        "{} on {} drifted {way}: {} against {} expected, after {} observations",
        d.class,
        d.target,
        super::units::duration(d.observed_ms),
        super::units::duration(d.reference_ms),
        d.observations
    )
}
