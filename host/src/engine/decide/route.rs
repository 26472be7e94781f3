//! Routing as a pure function: a node's candidates, what the host knows of
//! each device's queue and the node's budget in; each candidate's estimate,
//! constraint violations and queue room out, then the choice.
//!
//! The cost model is called between [`assess`] and [`choose`] by the engine
//! (it may be a plugin); everything else here is plain arithmetic.

use crate::device::Target;
use crate::model::graph::Priority;
use crate::policy::{CostTerms, Estimate, Ineligible, queue_room};
use crate::trace::NodeBudget;

/// Names of the constraint bits in [`Candidate::violations`].
pub const VIOLATIONS: [&str; 4] = ["latency p50", "latency p95", "energy", "accuracy"];

/// Why the host itself rules a candidate out (before any policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostReason {
    /// The hardware description has no such device.
    NotPresent,
    /// No backend serves the target in this build (execute mode).
    NotBuilt,
    /// The device is offline (operator, fault window or availability window).
    Offline,
    /// The target already failed this node.
    FailedHere,
}

impl HostReason {
    /// The first reason that applies, in order of precedence.
    pub fn of(present: bool, built: bool, online: bool, failed_here: bool) -> Option<HostReason> {
        if !present {
            Some(HostReason::NotPresent)
        } else if !built {
            Some(HostReason::NotBuilt)
        } else if !online {
            Some(HostReason::Offline)
        } else if failed_here {
            Some(HostReason::FailedHere)
        } else {
            None
        }
    }

    /// The reason as the trace records it.
    pub fn ineligible(self, target: Target) -> Ineligible {
        match self {
            HostReason::NotPresent => Ineligible::NotPresent,
            HostReason::NotBuilt => Ineligible::NotBuilt {
                detail: format!(
                    "no {} driver in this build; use --mode simulate to plan with it",
                    target.device()
                ),
            },
            HostReason::Offline => Ineligible::Offline,
            HostReason::FailedHere => Ineligible::Failed {
                detail: "failed earlier for this node".into(),
            },
        }
    }
}

/// A device's queues as one decision sees them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueueSnapshot {
    /// Tasks the device runs at once.
    pub slots: usize,
    /// Slots in use.
    pub busy: usize,
    /// Queued tasks, interactive then batch.
    pub queued: [usize; 2],
    /// Estimated milliseconds of queued work, interactive then batch.
    pub backlog_ms: [f64; 2],
    /// Estimated milliseconds of the running tasks.
    pub running_ms: f64,
    /// The device's queue limit.
    pub limit: usize,
    /// Share of the limit batch work may fill.
    pub batch_share: f64,
}

/// What is known of one candidate before estimating it.
#[derive(Debug, Clone, Copy)]
pub struct CandidateFacts {
    /// The candidate target.
    pub target: Target,
    /// Why the host rules it out, if it does.
    pub host_reason: Option<HostReason>,
    /// The eligibility policy accepted it.
    pub policy_ok: bool,
    /// Learned mean service time.
    pub mean_ms: f64,
    /// Learned p95 service time.
    pub p95_ms: f64,
    /// Learned energy per run.
    pub energy_j: f64,
    /// Expected error of the target (calibrated prior).
    pub error: f64,
}

/// One assessed row of a routing decision.
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    /// The candidate target.
    pub target: Target,
    /// Why the host rules it out, if it does.
    pub host_reason: Option<HostReason>,
    /// The eligibility policy accepted it.
    pub policy_ok: bool,
    /// Queue wait, latency, energy and error expected on this target.
    pub estimate: Estimate,
    /// Filled by the cost model after [`assess`].
    pub cost: CostTerms,
    /// Violated constraints, bit per [`VIOLATIONS`] entry.
    pub violations: u8,
    /// Violations that remain with an empty queue.
    pub violations_idle: u8,
    /// Violations against a late job's remaining budget (see
    /// [`late_budget`]); the same as `violations` for a job on schedule.
    pub violations_late: u8,
    /// The queue has room for this node's priority.
    pub room: bool,
    /// When the device's queued work would be done (the retry-after of a
    /// backpressure rejection).
    pub drain_ms: f64,
}

impl Candidate {
    /// Neither the host nor the policy rules it out.
    pub fn eligible(&self) -> bool {
        self.host_reason.is_none() && self.policy_ok
    }
}

/// The outcome of a routing decision.
#[derive(Debug, Clone, PartialEq)]
pub enum Routed {
    /// Index of the chosen candidate.
    Chosen(usize),
    /// Feasible only on an idle machine: reject with a retry-after.
    Busy {
        /// When the queued work should have drained.
        retry_after_ms: f64,
        /// The reason, in words.
        why: String,
    },
    /// No candidate can meet the QoS even on an idle machine.
    Infeasible(String),
}

/// The budget a node of a job already under way is also judged by when
/// its own latency shares cannot be met: the job's p95 target less the
/// expected work still to come after the node (`downstream_ms`, its
/// successors' critical path). The p50 share no longer binds: half of all
/// jobs end past the median, and a job that has done work is better
/// finished late within its p95 than thrown away. `None` for entry nodes
/// (their shares are the admission control) and fallbacks (already free of
/// latency shares).
pub fn late_budget(
    budget: &NodeBudget,
    entry: bool,
    attempt: u32,
    p95_target_ms: Option<f64>,
    downstream_ms: f64,
) -> Option<NodeBudget> {
    if entry || attempt > 0 {
        return None;
    }
    let target = p95_target_ms?;
    Some(NodeBudget {
        deadline_p50_ms: None,
        deadline_p95_ms: Some(
            (target - downstream_ms).max(budget.deadline_p95_ms.unwrap_or(f64::NEG_INFINITY)),
        ),
        ..*budget
    })
}

/// Estimates one candidate against its device's queue and the node's
/// budget (and a late job's remaining budget, see [`late_budget`]).
/// Ineligible candidates get no estimate.
pub fn assess(
    facts: &CandidateFacts,
    queue: &QueueSnapshot,
    priority: Priority,
    budget: &NodeBudget,
    late: Option<&NodeBudget>,
    attempt: u32,
) -> Candidate {
    let mut c = Candidate {
        target: facts.target,
        host_reason: facts.host_reason,
        policy_ok: facts.policy_ok,
        estimate: Estimate::default(),
        cost: CostTerms::default(),
        violations: 0,
        violations_idle: 0,
        violations_late: 0,
        room: false,
        drain_ms: 0.0,
    };
    if !c.eligible() {
        return c;
    }
    let interactive = priority == Priority::Interactive;
    // Interactive work waits only for interactive work ahead of it.
    let queued_ms = if interactive {
        queue.backlog_ms[0]
    } else {
        queue.backlog_ms[0] + queue.backlog_ms[1]
    };
    let free = queue.slots > queue.busy;
    let wait = if free && queue.queued[0] == 0 && (interactive || queue.queued[1] == 0) {
        0.0
    } else {
        // Running work is half done on average.
        (queued_ms + 0.5 * queue.running_ms) / queue.slots as f64
    };
    c.estimate = Estimate {
        latency_p50_ms: wait + facts.mean_ms,
        latency_p95_ms: wait + facts.p95_ms,
        queue_wait_ms: wait,
        energy_j: facts.energy_j,
        error: facts.error,
    };
    c.room = queue_room(priority, queue.queued, free, queue.limit, queue.batch_share);
    c.drain_ms = (queue.backlog_ms[0] + queue.backlog_ms[1]) / queue.slots.max(1) as f64;
    let violates = |budget: &NodeBudget, wait_ms: f64| {
        let elapsed = budget.elapsed_ms;
        let mut v = 0u8;
        if let Some(d) = budget.deadline_p50_ms
            && elapsed + wait_ms + facts.mean_ms > d
        {
            v |= 1;
        }
        if let Some(d) = budget.deadline_p95_ms
            && elapsed + wait_ms + facts.p95_ms > d
        {
            v |= 2;
        }
        if let Some(e) = budget.energy_j
            && facts.energy_j > e
        {
            v |= 4;
        }
        if let Some(a) = budget.max_error
            && facts.error > a
        {
            v |= 8;
        }
        v
    };
    // A fallback is already late: finishing late beats not at all, so
    // latency shares no longer rule candidates out.
    let mask = if attempt > 0 { !3u8 } else { !0u8 };
    c.violations = violates(budget, wait) & mask;
    c.violations_idle = violates(budget, 0.0) & mask;
    c.violations_late = match late {
        Some(late) if c.violations != 0 => c.violations & violates(late, wait) & mask,
        _ => c.violations,
    };
    c
}

/// The cheapest eligible candidate that `pred` accepts.
pub fn cheapest(cands: &[Candidate], pred: impl Fn(&Candidate) -> bool) -> Option<usize> {
    cands
        .iter()
        .enumerate()
        .filter(|(_, c)| c.eligible() && pred(c))
        .min_by(|a, b| a.1.cost.total.total_cmp(&b.1.cost.total))
        .map(|(i, _)| i)
}

/// The first target of `order` whose candidate is feasible, has queue room
/// and carries no risk penalty: the design note's default rule for sampling
/// nodes (TSU, else GPU-sim, else the CPU reference) when the QoS leaves
/// room for it. Tight QoS, a full queue or risk leave the choice to cost.
pub fn preferred(cands: &[Candidate], order: &[Target]) -> Option<usize> {
    order.iter().find_map(|&t| {
        cands.iter().position(|c| {
            c.target == t
                && c.eligible()
                && c.violations == 0
                && c.room
                && c.cost.risk_penalty == 0.0
        })
    })
}

/// Chooses among scored candidates: the first of `order` that meets the
/// QoS without risk (see [`preferred`]), else the cheapest feasible one
/// with queue room, else (a job behind its schedule) the cheapest with room
/// that meets the job's remaining budget; else, if one would be feasible on
/// an idle machine, backpressure; else the node is infeasible, explained by
/// `infeasible`.
pub fn choose(
    cands: &[Candidate],
    priority: Priority,
    order: &[Target],
    infeasible: impl FnOnce() -> String,
) -> Routed {
    if let Some(i) = preferred(cands, order) {
        return Routed::Chosen(i);
    }
    if let Some(i) = cheapest(cands, |c| c.violations == 0 && c.room) {
        return Routed::Chosen(i);
    }
    if let Some(i) = cheapest(cands, |c| c.violations_late == 0 && c.room) {
        return Routed::Chosen(i);
    }
    // Feasible on an idle machine: the system is busy, not the QoS impossible.
    let Some(i) = cheapest(cands, |c| c.violations_idle == 0) else {
        return Routed::Infeasible(infeasible());
    };
    let c = &cands[i];
    let why = if c.room {
        format!(
            "backpressure: {} would wait {:.3} ms, past the node's latency share",
            c.target, c.estimate.queue_wait_ms
        )
    } else {
        format!(
            "backpressure: the {} queue is full for {} work",
            c.target.device(),
            match priority {
                Priority::Interactive => "interactive",
                Priority::Batch => "batch",
            }
        )
    };
    Routed::Busy {
        retry_after_ms: c.drain_ms.max(0.001),
        why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle(slots: usize) -> QueueSnapshot {
        QueueSnapshot {
            slots,
            busy: 0,
            queued: [0, 0],
            backlog_ms: [0.0, 0.0],
            running_ms: 0.0,
            limit: 4,
            batch_share: 0.5,
        }
    }

    fn facts(target: Target, mean_ms: f64) -> CandidateFacts {
        CandidateFacts {
            target,
            host_reason: None,
            policy_ok: true,
            mean_ms,
            p95_ms: 2.0 * mean_ms,
            energy_j: 0.1,
            error: 0.0,
        }
    }

    fn budget(deadline_p95_ms: Option<f64>) -> NodeBudget {
        NodeBudget {
            deadline_p50_ms: None,
            deadline_p95_ms,
            energy_j: None,
            max_error: None,
            timeout_ms: 1e3,
            elapsed_ms: 0.0,
        }
    }

    fn scored(mut c: Candidate, total: f64) -> Candidate {
        c.cost.total = total;
        c
    }

    #[test]
    fn host_reasons_take_precedence_in_order() {
        assert_eq!(
            HostReason::of(false, false, false, true),
            Some(HostReason::NotPresent)
        );
        assert_eq!(
            HostReason::of(true, false, false, true),
            Some(HostReason::NotBuilt)
        );
        assert_eq!(
            HostReason::of(true, true, false, true),
            Some(HostReason::Offline)
        );
        assert_eq!(
            HostReason::of(true, true, true, true),
            Some(HostReason::FailedHere)
        );
        assert_eq!(HostReason::of(true, true, true, false), None);
    }

    #[test]
    fn an_idle_device_adds_no_wait() {
        let c = assess(
            &facts(Target::Cpu, 3.0),
            &idle(2),
            Priority::Batch,
            &budget(None),
            None,
            0,
        );
        assert_eq!(c.estimate.queue_wait_ms, 0.0);
        assert_eq!(c.estimate.latency_p50_ms, 3.0);
        assert_eq!(c.estimate.latency_p95_ms, 6.0);
        assert!(c.room);
        assert_eq!(c.violations, 0);
    }

    #[test]
    fn interactive_work_waits_only_for_interactive_work() {
        let q = QueueSnapshot {
            slots: 2,
            busy: 2,
            queued: [1, 3],
            backlog_ms: [4.0, 10.0],
            running_ms: 6.0,
            limit: 8,
            batch_share: 0.5,
        };
        let f = facts(Target::Cpu, 1.0);
        let i = assess(&f, &q, Priority::Interactive, &budget(None), None, 0);
        let b = assess(&f, &q, Priority::Batch, &budget(None), None, 0);
        assert_eq!(i.estimate.queue_wait_ms, (4.0 + 3.0) / 2.0);
        assert_eq!(b.estimate.queue_wait_ms, (14.0 + 3.0) / 2.0);
        // Batch may fill half the queue: 4 queued of a limit of 8 * 0.5.
        assert!(i.room);
        assert!(!b.room);
        assert_eq!(b.drain_ms, 7.0);
    }

    #[test]
    fn violations_name_each_constraint_and_fallbacks_drop_latency() {
        let q = QueueSnapshot {
            busy: 1,
            queued: [0, 1],
            backlog_ms: [0.0, 20.0],
            ..idle(1)
        };
        let mut b = budget(Some(10.0));
        b.deadline_p50_ms = Some(5.0);
        b.energy_j = Some(0.05);
        b.max_error = Some(0.01);
        let mut f = facts(Target::Tsu, 4.0);
        f.error = 0.02;
        let c = assess(&f, &q, Priority::Batch, &b, None, 0);
        assert_eq!(c.violations, 1 | 2 | 4 | 8);
        // Idle, p50 (4 <= 5) holds but p95 (8 <= 10) also holds.
        assert_eq!(c.violations_idle, 4 | 8);
        let late = assess(&f, &q, Priority::Batch, &b, None, 1);
        assert_eq!(late.violations, 4 | 8);
    }

    #[test]
    fn ineligible_candidates_are_not_estimated() {
        let mut f = facts(Target::Gpu, 1.0);
        f.host_reason = Some(HostReason::Offline);
        let c = assess(&f, &idle(1), Priority::Batch, &budget(None), None, 0);
        assert!(!c.eligible());
        assert_eq!(c.estimate.latency_p50_ms, 0.0);
        f.host_reason = None;
        f.policy_ok = false;
        assert!(!assess(&f, &idle(1), Priority::Batch, &budget(None), None, 0).eligible());
    }

    #[test]
    fn choose_takes_the_cheapest_feasible_candidate_with_room() {
        let q = idle(1);
        let b = budget(None);
        let a = scored(
            assess(&facts(Target::Cpu, 1.0), &q, Priority::Batch, &b, None, 0),
            2.0,
        );
        let g = scored(
            assess(&facts(Target::Gpu, 1.0), &q, Priority::Batch, &b, None, 0),
            1.0,
        );
        let mut full = g;
        full.room = false;
        assert_eq!(
            choose(&[a, g], Priority::Batch, &[], String::new),
            Routed::Chosen(1)
        );
        assert_eq!(
            choose(&[a, full], Priority::Batch, &[], String::new),
            Routed::Chosen(0)
        );
    }

    #[test]
    fn the_sampling_order_wins_within_qos_and_without_risk() {
        const ORDER: [Target; 3] = [Target::Tsu, Target::GpuSim, Target::CpuRef];
        let q = idle(1);
        let b = budget(Some(10.0));
        let at = |t, ms, cost| {
            scored(
                assess(&facts(t, ms), &q, Priority::Batch, &b, None, 0),
                cost,
            )
        };
        let tsu = at(Target::Tsu, 4.0, 5.0);
        let gpu = at(Target::GpuSim, 0.1, 0.2);
        let cpu = at(Target::CpuRef, 1.0, 1.0);
        // Loose QoS: the first of the order, though it costs more.
        assert_eq!(
            choose(&[cpu, tsu, gpu], Priority::Batch, &ORDER, String::new),
            Routed::Chosen(1)
        );
        // No order: plain cost.
        assert_eq!(
            choose(&[cpu, tsu, gpu], Priority::Batch, &[], String::new),
            Routed::Chosen(2)
        );
        // Tight QoS rules the TSU out (p95 8 ms > 7 ms): the next in order.
        let tight = budget(Some(7.0));
        let slow = scored(
            assess(
                &facts(Target::Tsu, 4.0),
                &q,
                Priority::Batch,
                &tight,
                None,
                0,
            ),
            5.0,
        );
        assert_ne!(slow.violations, 0);
        assert_eq!(
            choose(&[cpu, slow, gpu], Priority::Batch, &ORDER, String::new),
            Routed::Chosen(2)
        );
        // A risk penalty leaves the choice to cost; so does a full queue.
        let mut risky = tsu;
        risky.cost.risk_penalty = 1.0;
        assert_eq!(preferred(&[cpu, risky, gpu], &ORDER), Some(2));
        let mut full = tsu;
        full.room = false;
        assert_eq!(preferred(&[cpu, full], &ORDER), Some(0));
        assert_eq!(preferred(&[cpu, tsu], &[]), None);
    }

    #[test]
    fn busy_when_only_an_idle_machine_would_do() {
        let q = QueueSnapshot {
            busy: 1,
            queued: [0, 2],
            backlog_ms: [0.0, 30.0],
            batch_share: 1.0,
            ..idle(1)
        };
        let c = scored(
            assess(
                &facts(Target::Cpu, 1.0),
                &q,
                Priority::Batch,
                &budget(Some(10.0)),
                None,
                0,
            ),
            1.0,
        );
        assert_eq!(c.violations, 2);
        match choose(&[c], Priority::Batch, &[], || unreachable!()) {
            Routed::Busy {
                retry_after_ms,
                why,
            } => {
                assert_eq!(retry_after_ms, 30.0);
                assert!(why.starts_with("backpressure: cpu would wait"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        let mut full = c;
        full.room = false;
        match choose(&[full], Priority::Interactive, &[], || unreachable!()) {
            Routed::Busy { why, .. } => {
                assert_eq!(
                    why,
                    "backpressure: the cpu queue is full for interactive work"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn infeasible_when_even_an_idle_machine_fails_the_qos() {
        let c = scored(
            assess(
                &facts(Target::Cpu, 20.0),
                &idle(1),
                Priority::Batch,
                &budget(Some(10.0)),
                None,
                0,
            ),
            1.0,
        );
        assert_eq!(
            choose(&[c], Priority::Batch, &[], || "too slow".into()),
            Routed::Infeasible("too slow".into())
        );
    }

    #[test]
    fn a_late_job_keeps_only_its_p95_in_reach() {
        let mut b = budget(Some(0.3));
        b.deadline_p50_ms = Some(0.1);
        b.elapsed_ms = 4.0;
        // Entry nodes and fallbacks: no late budget.
        assert!(late_budget(&b, true, 0, Some(50.0), 15.0).is_none());
        assert!(late_budget(&b, false, 1, Some(50.0), 15.0).is_none());
        assert!(late_budget(&b, false, 0, None, 15.0).is_none());
        let late = late_budget(&b, false, 0, Some(50.0), 15.0).unwrap();
        assert_eq!(late.deadline_p50_ms, None);
        assert_eq!(late.deadline_p95_ms, Some(35.0));
        assert_eq!((late.elapsed_ms, late.timeout_ms), (4.0, b.timeout_ms));
        // Never tighter than the node's own share.
        let roomy = late_budget(&budget(Some(40.0)), false, 0, Some(50.0), 15.0).unwrap();
        assert_eq!(roomy.deadline_p95_ms, Some(40.0));
    }

    #[test]
    fn a_late_node_is_routed_while_the_job_can_meet_its_p95() {
        // 4 ms into a job whose node share ended at 0.1 / 0.3 ms: strictly
        // infeasible, yet 4 + 1 + 2 ms (wait, p95) fits 50 - 15 ms.
        let q = QueueSnapshot {
            busy: 1,
            queued: [1, 0],
            backlog_ms: [1.0, 0.0],
            ..idle(1)
        };
        let mut b = budget(Some(0.3));
        b.deadline_p50_ms = Some(0.1);
        b.elapsed_ms = 4.0;
        let late = late_budget(&b, false, 0, Some(50.0), 15.0).unwrap();
        let f = facts(Target::Cpu, 1.0);
        let strict = scored(assess(&f, &q, Priority::Interactive, &b, None, 0), 1.0);
        assert_eq!(strict.violations, 1 | 2);
        assert_eq!(strict.violations_late, strict.violations);
        assert!(matches!(
            choose(&[strict], Priority::Interactive, &[], || "too late".into()),
            Routed::Infeasible(_)
        ));
        let c = scored(
            assess(&f, &q, Priority::Interactive, &b, Some(&late), 0),
            1.0,
        );
        assert_eq!(
            c.violations,
            1 | 2,
            "the trace still names the shares missed"
        );
        assert_eq!(c.violations_late, 0);
        assert_eq!(
            choose(&[c], Priority::Interactive, &[], || unreachable!()),
            Routed::Chosen(0)
        );
        // A candidate on schedule still wins over one only the late budget allows.
        let on_time = scored(
            assess(
                &facts(Target::Gpu, 0.01),
                &idle(1),
                Priority::Interactive,
                &budget(None),
                Some(&late),
                0,
            ),
            5.0,
        );
        assert_eq!(
            choose(&[c, on_time], Priority::Interactive, &[], || unreachable!()),
            Routed::Chosen(1)
        );
        // Past the job's p95 even with the late budget: infeasible as before.
        let mut gone = b;
        gone.elapsed_ms = 40.0;
        let gone_late = late_budget(&gone, false, 0, Some(50.0), 15.0).unwrap();
        let lost = scored(
            assess(&f, &q, Priority::Interactive, &gone, Some(&gone_late), 0),
            1.0,
        );
        assert_eq!(lost.violations_late, 2);
        assert!(matches!(
            choose(&[lost], Priority::Interactive, &[], || "too late".into()),
            Routed::Infeasible(_)
        ));
        // Energy and accuracy bind late jobs as much as any.
        let mut costly = f;
        costly.error = 0.5;
        let mut strict_acc = b;
        strict_acc.max_error = Some(0.1);
        let late_acc = late_budget(&strict_acc, false, 0, Some(50.0), 15.0).unwrap();
        let wrong = assess(
            &costly,
            &q,
            Priority::Interactive,
            &strict_acc,
            Some(&late_acc),
            0,
        );
        assert_eq!(wrong.violations_late, 8);
    }
}
