//! The engine's mutable state: the event queue's entries, jobs and their
//! nodes, tasks on devices, and the slabs that hold jobs and tasks by id.

use std::collections::{HashMap, VecDeque};
use std::ops::{Index, IndexMut};

use super::decide::route::QueueSnapshot;
use crate::backends::SamplingTask;
use crate::backends::value::{NodeResult, Value};
use crate::device::Target;
use crate::model::EProgram;
use crate::model::graph::Priority;
use crate::perf::MixingLuck;
use crate::policy::Evidence;
use crate::trace::{JobStatus, NodeStatus};

use super::JobRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum EventKind {
    /// Availability may change (fault window or TSU window edge).
    Edge,
    /// A task's run (or slice) ends. Stale if `generation` moved on.
    TaskDone {
        task: u32,
        generation: u32,
    },
    Arrival,
    /// An admission hold reaches `[plugins] max_hold_ms`.
    HoldExpiry {
        hold: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Event {
    /// Bits of a non-negative f64: orders like the number.
    pub(super) time: u64,
    pub(super) seq: u64,
    pub(super) kind: EventKind,
}

/// Per-node state inside a job.
#[derive(Debug, Clone, Default)]
pub(super) struct NodeRt {
    pub(super) status: Option<NodeStatus>,
    pub(super) target: Option<Target>,
    pub(super) attempt: u32,
    /// Targets that failed this node (bit per `Target::index`).
    pub(super) excluded: u8,
    /// Why each excluded target failed, in order.
    pub(super) failures: Vec<String>,
    pub(super) skipped_by_branch: bool,
    pub(super) ready_ms: f64,
    pub(super) end_ms: f64,
    pub(super) explanation: Option<String>,
}

impl NodeRt {
    /// Back to [`NodeRt::default`], keeping the buffer of `failures`.
    pub(super) fn reset(&mut self) {
        let mut failures = std::mem::take(&mut self.failures);
        failures.clear();
        *self = NodeRt {
            failures,
            ..NodeRt::default()
        };
    }
}

pub(super) struct Job {
    pub(super) id: u64,
    pub(super) class: u32,
    pub(super) arrival_ms: f64,
    pub(super) pending: Vec<u32>,
    pub(super) nodes: Vec<NodeRt>,
    pub(super) open_nodes: u32,
    pub(super) status: Option<JobStatus>,
    pub(super) explanation: Option<String>,
    pub(super) retry_after_ms: Option<f64>,
    pub(super) energy_j: f64,
    pub(super) escalations: Vec<String>,
    pub(super) values: HashMap<usize, Value>,
    pub(super) evidence: Vec<Option<Evidence>>,
    pub(super) record: Option<JobRecord>,
}

pub(super) struct Task {
    pub(super) job: u32,
    pub(super) node: u32,
    pub(super) target: Target,
    pub(super) priority: Priority,
    pub(super) estimate_ms: f64,
    pub(super) generation: u32,
    pub(super) started: bool,
    pub(super) run_started_ms: f64,
    pub(super) first_start_ms: f64,
    pub(super) timeout_ms: f64,
    /// Simulate mode: service still owed after a preemption.
    pub(super) remaining_ms: Option<f64>,
    /// Simulate mode: the drawn duration of the current run, and whether it
    /// was cut by the timeout.
    pub(super) run_ms: f64,
    /// Simulate mode: the duration drawn before the timeout cut it.
    pub(super) drawn_ms: f64,
    pub(super) timed_out: bool,
    pub(super) busy_ms: f64,
    pub(super) energy_j: f64,
    pub(super) sampling: Option<Box<dyn SamplingTask>>,
    pub(super) program: Option<Box<EProgram>>,
    pub(super) seed: u64,
    pub(super) preempt_requested: bool,
    pub(super) preempted_by: u64,
    /// Work stealing moved it to another device once (it moves no more).
    pub(super) moved: bool,
    /// Execute mode, deterministic nodes: the result, delivered at TaskDone.
    pub(super) result: Option<Box<NodeResult>>,
    pub(super) last_checked_samples: usize,
    /// Simulate mode, sampling nodes: this run's luck in the mixing model,
    /// and the samples per chain at which it stops early (if it does).
    pub(super) luck: Option<MixingLuck>,
    pub(super) early_at: Option<usize>,
    /// When it was admitted to its device's queue.
    pub(super) queued_ms: f64,
}

pub(super) struct DeviceRt {
    pub(super) slots: usize,
    pub(super) busy: usize,
    /// Interactive queue first, batch second.
    pub(super) queues: [VecDeque<u32>; 2],
    pub(super) running: Vec<u32>,
    /// Estimated milliseconds of queued work per priority.
    pub(super) backlog_ms: [f64; 2],
    /// Estimated milliseconds of the running tasks.
    pub(super) running_ms: f64,
    pub(super) operator_offline: bool,
}

impl DeviceRt {
    pub(super) fn new(slots: usize) -> Self {
        DeviceRt {
            slots,
            busy: 0,
            queues: [VecDeque::new(), VecDeque::new()],
            running: Vec::new(),
            backlog_ms: [0.0; 2],
            running_ms: 0.0,
            operator_offline: false,
        }
    }

    /// The queues as a routing decision sees them.
    pub(super) fn snapshot(&self, limit: usize, batch_share: f64) -> QueueSnapshot {
        QueueSnapshot {
            slots: self.slots,
            busy: self.busy,
            queued: [self.queues[0].len(), self.queues[1].len()],
            backlog_ms: self.backlog_ms,
            running_ms: self.running_ms,
            limit,
            batch_share,
        }
    }

    /// Queued tasks, both priorities.
    pub(super) fn queued(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }
}

impl Job {
    fn vacant() -> Self {
        Job {
            id: 0,
            class: 0,
            arrival_ms: 0.0,
            pending: Vec::new(),
            nodes: Vec::new(),
            open_nodes: 0,
            status: None,
            explanation: None,
            retry_after_ms: None,
            energy_j: 0.0,
            escalations: Vec::new(),
            values: HashMap::new(),
            evidence: Vec::new(),
            record: None,
        }
    }
}

/// Jobs in the system by slot; the slots of ended jobs are reused (with
/// their buffers) by later arrivals.
#[derive(Default)]
pub(super) struct JobSlab {
    jobs: Vec<Job>,
    free: Vec<u32>,
}

impl JobSlab {
    /// A slot for a new job; its fields are reset by the caller.
    pub(super) fn alloc(&mut self) -> u32 {
        self.free.pop().unwrap_or_else(|| {
            self.jobs.push(Job::vacant());
            (self.jobs.len() - 1) as u32
        })
    }

    pub(super) fn free(&mut self, slot: u32) {
        self.free.push(slot);
    }

    /// Jobs arrived and not yet ended.
    pub(super) fn live(&self) -> usize {
        self.jobs.len() - self.free.len()
    }
}

impl Index<u32> for JobSlab {
    type Output = Job;
    fn index(&self, slot: u32) -> &Job {
        &self.jobs[slot as usize]
    }
}

impl IndexMut<u32> for JobSlab {
    fn index_mut(&mut self, slot: u32) -> &mut Job {
        &mut self.jobs[slot as usize]
    }
}

/// Tasks (a node admitted to a device) by id, from admission to release.
/// A reused id continues its predecessor's generations, so a stale end
/// event of a task released early (its device went offline) never matches
/// the task that took its id.
#[derive(Default)]
pub(super) struct TaskSlab {
    tasks: Vec<Option<Task>>,
    free: Vec<u32>,
    /// The next generation of each free id.
    generations: Vec<u32>,
}

impl TaskSlab {
    pub(super) fn insert(&mut self, mut task: Task) -> u32 {
        match self.free.pop() {
            Some(id) => {
                task.generation = self.generations[id as usize];
                self.tasks[id as usize] = Some(task);
                id
            }
            None => {
                self.tasks.push(Some(task));
                self.generations.push(0);
                (self.tasks.len() - 1) as u32
            }
        }
    }

    /// Takes a task out; its id is reused.
    pub(super) fn remove(&mut self, id: u32) -> Task {
        let task = self.tasks[id as usize]
            .take()
            .unwrap_or_else(|| panic!("task {id} was released twice"));
        self.generations[id as usize] = task.generation.wrapping_add(1);
        self.free.push(id);
        task
    }

    /// Takes a task out in place: `f` reads what the caller needs, then the
    /// task is dropped where it lies (not moved out whole); its id is reused.
    pub(super) fn remove_with<R>(&mut self, id: u32, f: impl FnOnce(&Task) -> R) -> R {
        let slot = &mut self.tasks[id as usize];
        let task = slot
            .as_ref()
            .unwrap_or_else(|| panic!("task {id} was released twice"));
        let out = f(task);
        self.generations[id as usize] = task.generation.wrapping_add(1);
        *slot = None;
        self.free.push(id);
        out
    }

    /// A task that may have been released already (a stale event's).
    pub(super) fn get(&self, id: u32) -> Option<&Task> {
        self.tasks.get(id as usize).and_then(Option::as_ref)
    }
}

impl Index<u32> for TaskSlab {
    type Output = Task;
    fn index(&self, id: u32) -> &Task {
        self.get(id)
            .unwrap_or_else(|| panic!("task {id} is not live"))
    }
}

impl IndexMut<u32> for TaskSlab {
    fn index_mut(&mut self, id: u32) -> &mut Task {
        self.tasks[id as usize]
            .as_mut()
            .unwrap_or_else(|| panic!("task {id} is not live"))
    }
}
