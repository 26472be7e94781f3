//! Admission decisions as pure functions: which queued task a free slot
//! takes, which queued task an idle device takes from another device's
//! queue, which running task an interactive arrival preempts, and how far a
//! simulated run had got when it was preempted.

use std::collections::VecDeque;

use super::route::Candidate;
use crate::device::Target;
use crate::model::graph::Priority;

/// Queue index of a priority: interactive work is served first.
pub fn queue_of(priority: Priority) -> usize {
    crate::policy::queue_index(priority)
}

/// The next task a free slot takes: the head of the interactive queue, else
/// of the batch queue, with the queue it came from.
pub fn next_to_start(queues: &[VecDeque<u32>; 2]) -> Option<(usize, u32)> {
    queues[0]
        .front()
        .map(|&id| (0, id))
        .or_else(|| queues[1].front().map(|&id| (1, id)))
}

/// Expected milliseconds until a running task frees its slot. Execute
/// mode knows when its current run (or sampling slice) ends, `run_left_ms`
/// from now: a task that `yields` (batch sampling, when the waiting work is
/// interactive) frees the slot then; any other also needs what its expected
/// service has left after the `ran_ms` it has run (none, once it has run
/// past the figure).
pub fn remaining_ms(expected_ms: f64, ran_ms: f64, run_left_ms: f64, yields: bool) -> f64 {
    let run_left = run_left_ms.max(0.0);
    if yields {
        run_left
    } else {
        run_left.max(expected_ms - ran_ms)
    }
}

/// Expected wait of a queued task: what the running tasks still need plus
/// the queued work ahead of it, over the device's slots.
pub fn expected_wait_ms(running_left_ms: f64, ahead_ms: f64, slots: usize) -> f64 {
    (running_left_ms + ahead_ms) / slots.max(1) as f64
}

/// A task queued on a busy device, as another device's steal decision sees it.
#[derive(Debug, Clone, Copy)]
pub struct StealOption {
    /// The task.
    pub id: u32,
    /// Its node assessed on the stealing device (its service alone, the
    /// node's budget now).
    pub here: Candidate,
    /// The stealing device's figure for the node comes from observations,
    /// not only the prior.
    pub here_measured: bool,
    /// Expected wait on the stealing device (0 when it is idle).
    pub here_wait_ms: f64,
    /// Expected wait before it starts where it is queued, from the learned
    /// figures of the work running and queued ahead of it.
    pub wait_ms: f64,
    /// Its expected service where it is queued (learned).
    pub there_ms: f64,
}

/// Constraint bits a stolen task must still meet on the idle device: energy
/// and accuracy (latency is what stealing improves).
const STEAL_KEEPS: u8 = 4 | 8;

/// The queued task a device takes from another's queue, if any (work
/// stealing): the first option, in the order given (the engine lists
/// interactive work first, each queue from its head), that the device may
/// serve within the node's energy and accuracy bounds, whose service there
/// is measured (a prior alone is what put work in the wrong queue), and
/// that would end sooner there, wait included, than it would start and run
/// where it waits.
pub fn steal_choice(options: impl IntoIterator<Item = StealOption>) -> Option<u32> {
    options
        .into_iter()
        .find(|o| {
            o.here.eligible()
                && o.here_measured
                && o.here.violations_idle & STEAL_KEEPS == 0
                && o.here_wait_ms + o.here.estimate.latency_p50_ms < o.wait_ms + o.there_ms
        })
        .map(|o| o.id)
}

/// What preemption needs to know of a running task.
#[derive(Debug, Clone, Copy)]
pub struct RunningTask {
    /// The task.
    pub id: u32,
    /// Its job's priority.
    pub priority: Priority,
    /// Where it runs.
    pub target: Target,
    /// It runs in slices that can stop at a sweep boundary: sampling in
    /// execute mode on any target; in simulate mode, on the targets the
    /// model calls preemptible.
    pub sliced: bool,
    /// A preemption was already asked for (execute mode waits for a sweep
    /// boundary).
    pub preempt_requested: bool,
}

/// The task interactive work preempts: the first running batch task that
/// runs in slices and is not already being preempted.
pub fn preemption_victim(running: impl IntoIterator<Item = RunningTask>) -> Option<u32> {
    running
        .into_iter()
        .find(|t| t.priority == Priority::Batch && t.sliced && !t.preempt_requested)
        .map(|t| t.id)
}

/// A simulated run cut by preemption at `now_ms`: the service still owed
/// and the fraction done.
pub fn simulated_progress(now_ms: f64, run_started_ms: f64, run_ms: f64) -> (f64, f64) {
    let done = now_ms - run_started_ms;
    let remaining = (run_ms - done).max(0.0);
    let progress = if run_ms > 0.0 { done / run_ms } else { 1.0 };
    (remaining, progress)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interactive_work_starts_first() {
        let mut q: [VecDeque<u32>; 2] = [VecDeque::new(), VecDeque::from([7, 8])];
        assert_eq!(next_to_start(&q), Some((1, 7)));
        q[0].push_back(3);
        assert_eq!(next_to_start(&q), Some((0, 3)));
        assert_eq!(next_to_start(&[VecDeque::new(), VecDeque::new()]), None);
    }

    #[test]
    fn only_preemptible_batch_work_is_preempted() {
        let run = |id, priority, target: Target, preempt_requested| RunningTask {
            id,
            priority,
            target,
            sliced: target.preemptible(),
            preempt_requested,
        };
        let running = [
            run(1, Priority::Interactive, Target::Tsu, false),
            run(2, Priority::Batch, Target::Cpu, false),
            run(3, Priority::Batch, Target::Tsu, true),
            run(4, Priority::Batch, Target::CpuRef, false),
        ];
        assert!(!Target::Cpu.preemptible());
        assert_eq!(preemption_victim(running), Some(4));
        assert_eq!(preemption_victim(running[..3].iter().copied()), None);
        // Execute mode samples in slices on the GPU too: preemptible there.
        let gpu = RunningTask {
            sliced: true,
            ..run(5, Priority::Batch, Target::GpuSim, false)
        };
        assert!(!Target::GpuSim.preemptible());
        assert_eq!(preemption_victim([running[0], gpu]), Some(5));
    }

    #[test]
    fn progress_of_a_preempted_run() {
        assert_eq!(simulated_progress(13.0, 10.0, 12.0), (9.0, 0.25));
        assert_eq!(simulated_progress(30.0, 10.0, 12.0), (0.0, 20.0 / 12.0));
        assert_eq!(simulated_progress(10.0, 10.0, 0.0), (0.0, 1.0));
    }

    #[test]
    fn waits_count_running_and_queued_work_ahead() {
        // Expected 10 ms, ran 4, this slice ends in 1: 6 more, or 1 if it
        // yields at the slice's end.
        assert_eq!(remaining_ms(10.0, 4.0, 1.0, false), 6.0);
        assert_eq!(remaining_ms(10.0, 4.0, 1.0, true), 1.0);
        // Past its figure: the known end of the current run is what is left.
        assert_eq!(remaining_ms(10.0, 14.0, 30.0, false), 30.0);
        assert_eq!(remaining_ms(10.0, 14.0, -1.0, false), 0.0);
        assert_eq!(expected_wait_ms(6.0, 10.0, 2), 8.0);
        assert_eq!(expected_wait_ms(6.0, 10.0, 0), 16.0);
    }

    fn option(id: u32, here_ms: f64, wait_ms: f64, there_ms: f64) -> StealOption {
        use super::super::route::{CandidateFacts, QueueSnapshot, assess};
        use crate::trace::NodeBudget;
        let facts = CandidateFacts {
            target: Target::CpuRef,
            host_reason: None,
            policy_ok: true,
            mean_ms: here_ms,
            p95_ms: 2.0 * here_ms,
            energy_j: 0.1,
            error: 0.01,
        };
        let idle = QueueSnapshot {
            slots: 8,
            busy: 0,
            queued: [0, 0],
            backlog_ms: [0.0, 0.0],
            running_ms: 0.0,
            limit: 4,
            batch_share: 0.5,
        };
        let budget = NodeBudget {
            deadline_p50_ms: Some(1.0),
            deadline_p95_ms: Some(2.0),
            energy_j: Some(1.0),
            max_error: Some(0.02),
            timeout_ms: 10.0,
            elapsed_ms: 0.0,
        };
        StealOption {
            id,
            here: assess(&facts, &idle, Priority::Interactive, &budget, None, 0),
            here_measured: true,
            here_wait_ms: 0.0,
            wait_ms,
            there_ms,
        }
    }

    #[test]
    fn an_idle_device_steals_what_it_would_end_sooner() {
        // 3 ms here against 40 ms of wait and 10 of service there.
        let good = option(1, 3.0, 40.0, 10.0);
        assert_eq!(steal_choice([good]), Some(1));
        // Not sooner: stays where it waits (a late latency share is no bar).
        let slower = option(2, 30.0, 5.0, 10.0);
        assert_eq!(slower.here.violations, 1 | 2);
        assert_eq!(steal_choice([slower]), None);
        assert_eq!(steal_choice([slower, good]), Some(1));
        // The first that qualifies, in the order given (interactive first).
        assert_eq!(steal_choice([option(3, 1.0, 9.0, 9.0), good]), Some(3));
        // A busy device's own wait counts: 3 + 50 ms is not sooner than 50.
        let behind = StealOption {
            here_wait_ms: 50.0,
            ..good
        };
        assert_eq!(steal_choice([behind]), None);
        let short_wait = StealOption {
            here_wait_ms: 20.0,
            ..good
        };
        assert_eq!(steal_choice([short_wait]), Some(1));
        // A prior alone does not move work.
        let unmeasured = StealOption {
            here_measured: false,
            ..good
        };
        assert_eq!(steal_choice([unmeasured]), None);
        // Energy and accuracy still bind; so do host and policy verdicts.
        let mut inaccurate = good;
        inaccurate.here.violations_idle |= 8;
        assert_eq!(steal_choice([inaccurate]), None);
        let mut hungry = good;
        hungry.here.violations_idle |= 4;
        assert_eq!(steal_choice([hungry]), None);
        let mut refused = good;
        refused.here.policy_ok = false;
        assert_eq!(steal_choice([refused]), None);
        let mut failed_here = good;
        failed_here.here.host_reason = Some(super::super::route::HostReason::FailedHere);
        assert_eq!(steal_choice([failed_here]), None);
    }
}
