//! Admission decisions as pure functions: which queued task a free slot
//! takes, which running task an interactive arrival preempts, and how far a
//! simulated run had got when it was preempted.

use std::collections::VecDeque;

use crate::device::Target;
use crate::model::graph::Priority;

/// Queue index of a priority: interactive work is served first.
pub fn queue_of(priority: Priority) -> usize {
    match priority {
        Priority::Interactive => 0,
        Priority::Batch => 1,
    }
}

/// The next task a free slot takes: the head of the interactive queue, else
/// of the batch queue, with the queue it came from.
pub fn next_to_start(queues: &[VecDeque<u32>; 2]) -> Option<(usize, u32)> {
    queues[0]
        .front()
        .map(|&id| (0, id))
        .or_else(|| queues[1].front().map(|&id| (1, id)))
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
}
