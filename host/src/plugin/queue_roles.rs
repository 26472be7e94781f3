//! The queue roles of `thermoroute:policy@0.2.0` served by components:
//! `queue-order`, `admit` and `preempt`, in the same sandbox as the other
//! roles (fuel and a wall-clock deadline per call, the memory cap, a fresh
//! instance after a trap), each behind its own circuit breaker. A fault
//! never reaches the engine as anything but a [`PolicyFault`]: the engine
//! traces it and the native rule decides. Each role's file is watched and
//! hot-reloaded like the decision roles' (see [`super::reload`]): a new
//! version serves once it passes its role's conformance cases.
//!
//! Output is checked here, so `plugin check` and a run see the same
//! faults: an order must be a permutation of the waiting tasks, victims
//! must be running preemptible tasks named once, an admission's reason
//! must fit the text limit and its retry-after be finite.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::Store;

use super::bindings::v0_2::{admit, preempt, queue_order, queue_types, types};
use super::breaker::{Admit as Call, Breaker, Change};
use super::error::{PluginError, PluginFault};
use super::guest_log::{GuestOutput, SharedLog};
use super::queue_world::QueueRole;
use super::reload::{Slot, SlotRole, SmokeTest};
use super::runtime::{LoadedPlugin, Runtime, arm, classify, clip};
use super::sandbox::{Sandbox, ticks};
use crate::device::Target;
use crate::hardware::PluginCeilings;
use crate::model::graph::{NodeKind, Priority, Risk};
use crate::policy::{
    Admission, Admit, PolicyFault, PolicyNotice, Preempt, QueueOrder, QueuePolicy, QueueTask,
    QueueView, check_admission, check_order, check_victims,
};

impl SlotRole for QueueRole {
    fn name(self) -> &'static str {
        QueueRole::name(self)
    }

    fn require(self, plugin: &LoadedPlugin) -> Result<(), PluginError> {
        if self.exported_in(&plugin.exports) {
            return Ok(());
        }
        Err(PluginError::MissingRole {
            path: plugin.path.clone(),
            wanted: self.interface(),
            world: self.world(),
            found: if plugin.exports.is_empty() {
                "nothing".into()
            } else {
                plugin.exports.join(", ")
            },
        })
    }
}

/// How queue-role components are opened: the operator's ceilings, the
/// hot-reload debounce (none: not watched) and the conformance cases a
/// reloaded version must pass.
#[derive(Clone, Copy)]
pub(super) struct QueueOpen<'a> {
    pub(super) runtime: &'static Runtime,
    pub(super) ceilings: &'a PluginCeilings,
    pub(super) watch: Option<Duration>,
    pub(super) smoke: SmokeTest<QueueRole>,
}

/// Loads the queue-order, admit and preempt components `files` names (in
/// that order) into `queue`.
pub(super) fn open_queue_roles(
    how: QueueOpen<'_>,
    files: [&Option<std::path::PathBuf>; 3],
    queue: &mut QueuePolicy,
) -> Result<(), PluginError> {
    let [order, admit, preempt] = files;
    if let Some(p) = order {
        queue.order = Some(Box::new(PluginQueueOrder::open_with(how, p)?));
    }
    if let Some(p) = admit {
        queue.admit = Some(Box::new(PluginAdmit::open_with(how, p)?));
    }
    if let Some(p) = preempt {
        queue.preempt = Some(Box::new(PluginPreempt::open_with(how, p)?));
    }
    Ok(())
}

/// The queue roles a loaded component exports.
pub fn queue_roles(plugin: &LoadedPlugin) -> Vec<QueueRole> {
    QueueRole::ALL
        .into_iter()
        .filter(|r| r.exported_in(&plugin.exports))
        .collect()
}

/// The queue roles' guests of one live instance.
struct Live {
    store: Store<Sandbox>,
    order: Option<queue_order::Guest>,
    admit: Option<admit::Guest>,
    preempt: Option<preempt::Guest>,
}

/// An instance serving the queue roles: instantiated on first use, reused
/// across calls and rebuilt after a trap.
struct QueueInstance {
    plugin: Arc<LoadedPlugin>,
    live: Option<Live>,
    /// What the guest prints; a window per call.
    log: SharedLog,
}

impl QueueInstance {
    fn instantiate(&mut self) -> Result<(), PluginFault> {
        self.live = None;
        let p = &self.plugin;
        let mut store = p.new_store(&self.log);
        let budget = p.instantiate_budget();
        let fault = |e: wasmtime::Error| match classify(e, &budget) {
            PluginFault::Trap { detail } => PluginFault::Instantiate { detail },
            other => other,
        };
        store.set_fuel(budget.fuel).map_err(fault)?;
        store.set_epoch_deadline(ticks(budget.deadline_ms));
        let instance = p.pre.instantiate(&mut store).map_err(fault)?;
        let order = if QueueRole::QueueOrder.exported_in(&p.exports) {
            let i = queue_order::GuestIndices::new(&p.pre).map_err(fault)?;
            Some(i.load(&mut store, &instance).map_err(fault)?)
        } else {
            None
        };
        let admit = if QueueRole::Admit.exported_in(&p.exports) {
            let i = admit::GuestIndices::new(&p.pre).map_err(fault)?;
            Some(i.load(&mut store, &instance).map_err(fault)?)
        } else {
            None
        };
        let preempt = if QueueRole::Preempt.exported_in(&p.exports) {
            let i = preempt::GuestIndices::new(&p.pre).map_err(fault)?;
            Some(i.load(&mut store, &instance).map_err(fault)?)
        } else {
            None
        };
        self.live = Some(Live {
            store,
            order,
            admit,
            preempt,
        });
        Ok(())
    }

    /// One call, and what the guest printed during it (one window per
    /// call: the output goes with the call's fault, or away).
    fn call<R>(
        &mut self,
        f: impl FnOnce(&mut Live) -> wasmtime::Result<Result<R, String>>,
    ) -> (Result<R, PluginFault>, GuestOutput) {
        let answer = self.call_once(f);
        (answer, self.log.take())
    }

    fn call_once<R>(
        &mut self,
        f: impl FnOnce(&mut Live) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<R, PluginFault> {
        if self.live.is_none() {
            self.instantiate()?;
        }
        let budget = self.plugin.call_budget();
        let live = self.live.as_mut().expect("instantiated above");
        arm(&mut live.store, &budget)?;
        match f(live) {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(message)) => Err(PluginFault::GuestError {
                message: clip(message, budget.log_bytes),
            }),
            Err(e) => {
                self.live = None;
                Err(classify(e, &budget))
            }
        }
    }
}

/// The instance serving a queue role, rebuilt when the slot's version
/// changes, and the role's circuit breaker.
struct QueueServing {
    generation: u64,
    instance: QueueInstance,
    breaker: Breaker,
}

impl QueueServing {
    fn of(plugin: Arc<LoadedPlugin>, generation: u64) -> QueueServing {
        QueueServing {
            generation,
            instance: QueueInstance {
                plugin,
                live: None,
                log: SharedLog::default(),
            },
            breaker: Breaker::default(),
        }
    }
}

/// What the three queue-role wrappers share: the file and the version
/// serving it, its instance and the role's breaker.
struct QueuePlugin {
    role: QueueRole,
    name: String,
    slot: Arc<Slot<QueueRole>>,
    serving: Mutex<QueueServing>,
    /// The file watch, when hot reload is on (dropped with the plugin).
    _watch: Mutex<Option<Box<dyn Send>>>,
}

impl std::fmt::Debug for QueuePlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuePlugin")
            .field("role", &self.role)
            .field("plugin", &self.slot.current().label())
            .finish_non_exhaustive()
    }
}

impl QueuePlugin {
    fn open(how: QueueOpen<'_>, role: QueueRole, path: &Path) -> Result<QueuePlugin, PluginError> {
        let slot = Slot::open(how.runtime, role, path, how.ceilings, how.smoke)?;
        let watch = how.watch.and_then(|debounce| slot.watch(debounce));
        let plugin = QueuePlugin::on(role, slot);
        *plugin._watch.lock().expect("queue plugin watch") = watch;
        Ok(plugin)
    }

    fn on(role: QueueRole, slot: Arc<Slot<QueueRole>>) -> QueuePlugin {
        let plugin = slot.current();
        QueuePlugin {
            role,
            name: format!("plugin:{}", plugin.name),
            serving: Mutex::new(QueueServing::of(plugin, 0)),
            slot,
            _watch: Mutex::new(None),
        }
    }

    /// The policy fault of `fault` met by `plugin`, with what the guest
    /// printed in the call that met it.
    fn fault(
        &self,
        plugin: &LoadedPlugin,
        fault: &PluginFault,
        output: GuestOutput,
    ) -> PolicyFault {
        PolicyFault {
            policy: format!("{} ({})", self.name, plugin.label()),
            reason: fault.to_string(),
            kind: fault.kind().into(),
            path: Some(plugin.path.display().to_string()),
            output: Box::new(output),
        }
    }

    /// Calls the plugin through the role's breaker and checks the answer
    /// with `check`; a tripped role is not called.
    fn call<R>(
        &self,
        f: impl FnOnce(&mut Live) -> wasmtime::Result<Result<R, String>>,
        check: impl FnOnce(&R) -> Result<(), String>,
    ) -> Result<R, PolicyFault> {
        let mut serving = self.serving.lock().expect("queue plugin instance");
        let generation = self.slot.generation.load(Ordering::Acquire);
        if serving.generation != generation {
            // A reloaded version serves: a fresh instance and breaker.
            *serving = QueueServing::of(self.slot.current(), generation);
        }
        let QueueServing {
            instance, breaker, ..
        } = &mut *serving;
        let plugin = Arc::clone(&instance.plugin);
        if let Call::Tripped(calls) = breaker.admit() {
            let faults = breaker.faults();
            return Err(self.fault(
                &plugin,
                &PluginFault::Tripped { faults, calls },
                GuestOutput::default(),
            ));
        }
        let (answer, output) = instance.call(f);
        let answer = answer.and_then(|r| {
            check(&r)
                .map(|()| r)
                .map_err(|detail| PluginFault::InvalidOutput { detail })
        });
        let c = &plugin.ceilings;
        let change = breaker.record(answer.is_ok(), c.breaker_faults, c.breaker_backoff_calls);
        let detail = match change {
            Change::None => None,
            Change::Tripped(n) => Some(format!(
                "tripped after {n} consecutive faults: the native {} serves the next {} calls, then {} is retried once",
                self.role.name(),
                c.breaker_backoff_calls,
                plugin.label()
            )),
            Change::Recovered => Some(format!(
                "{} answered its retry: it serves again",
                plugin.label()
            )),
        };
        if let Some(detail) = detail {
            self.slot.notify(PolicyNotice {
                role: self.role.name().into(),
                policy: self.name.clone(),
                version: plugin.label(),
                ok: false,
                detail,
            });
        }
        answer.map_err(|f| self.fault(&plugin, &f, output))
    }

    /// The text limit of the serving version.
    fn max_text(&self) -> usize {
        self.slot.ceilings.max_log_bytes
    }
}

/// `open_with`, `from_plugin` and the identity methods of a queue role.
macro_rules! queue_plugin {
    ($plugin:ident, $role:expr, $what:literal) => {
        #[doc = concat!("A component serving ", $what, ".")]
        #[derive(Debug)]
        pub struct $plugin {
            inner: QueuePlugin,
        }

        impl $plugin {
            #[doc = concat!("Loads ", $what, " at `path` as `how` says (ceilings, hot reload).")]
            pub(super) fn open_with(how: QueueOpen<'_>, path: &Path) -> Result<Self, PluginError> {
                Ok($plugin {
                    inner: QueuePlugin::open(how, $role, path)?,
                })
            }

            /// Serves an already loaded plugin (conformance runs; not
            /// watched, `smoke` would check a reloaded version).
            pub(super) fn from_plugin(
                runtime: &'static Runtime,
                plugin: Arc<LoadedPlugin>,
                smoke: SmokeTest<QueueRole>,
            ) -> Self {
                $plugin {
                    inner: QueuePlugin::on($role, Slot::serving(runtime, $role, plugin, smoke)),
                }
            }
        }
    };
}

queue_plugin!(PluginQueueOrder, QueueRole::QueueOrder, "the queue order");
queue_plugin!(PluginAdmit, QueueRole::Admit, "admission");
queue_plugin!(PluginPreempt, QueueRole::Preempt, "preemption");

macro_rules! identity {
    () => {
        fn name(&self) -> &str {
            &self.inner.name
        }

        fn version(&self) -> Option<String> {
            Some(self.inner.slot.current().label())
        }

        fn take_notices(&self, out: &mut Vec<PolicyNotice>) {
            self.inner.slot.take_notices(out);
        }
    };
}

impl QueueOrder for PluginQueueOrder {
    identity!();

    fn order(&self, queue: &QueueView) -> Result<Vec<u32>, PolicyFault> {
        let snapshot = snapshot(queue);
        self.inner.call(
            |live| {
                let guest = live
                    .order
                    .as_ref()
                    .ok_or_else(|| wasmtime::Error::msg("does not export queue-order"))?;
                guest.call_order(&mut live.store, &snapshot)
            },
            |order| check_order(order, queue.waiting.len()),
        )
    }
}

impl Admit for PluginAdmit {
    identity!();

    fn decide(&self, arriving: &QueueTask, queue: &QueueView) -> Result<Admission, PolicyFault> {
        let snapshot = snapshot(queue);
        let task = task(arriving);
        let max_text = self.inner.max_text();
        self.inner.call(
            |live| {
                let guest = live
                    .admit
                    .as_ref()
                    .ok_or_else(|| wasmtime::Error::msg("does not export admit"))?;
                Ok(guest
                    .call_decide(&mut live.store, &task, &snapshot)?
                    .map(admission_back))
            },
            |a| check_admission(a, max_text),
        )
    }
}

impl Preempt for PluginPreempt {
    identity!();

    fn victims(&self, arriving: &QueueTask, queue: &QueueView) -> Result<Vec<u64>, PolicyFault> {
        let snapshot = snapshot(queue);
        let task = task(arriving);
        self.inner.call(
            |live| {
                let guest = live
                    .preempt
                    .as_ref()
                    .ok_or_else(|| wasmtime::Error::msg("does not export preempt"))?;
                guest.call_victims(&mut live.store, &task, &snapshot)
            },
            |v| check_victims(v, queue),
        )
    }
}

fn node_kind(k: NodeKind) -> types::NodeKind {
    match k {
        NodeKind::Control => types::NodeKind::Control,
        NodeKind::Tensor => types::NodeKind::Tensor,
        NodeKind::Nn => types::NodeKind::Nn,
        NodeKind::Sample => types::NodeKind::Sample,
        NodeKind::Effect => types::NodeKind::Effect,
    }
}

fn target(t: Target) -> types::Target {
    match t {
        Target::Cpu => types::Target::Cpu,
        Target::Gpu => types::Target::Gpu,
        Target::Tsu => types::Target::Tsu,
        Target::GpuSim => types::Target::GpuSim,
        Target::CpuRef => types::Target::CpuRef,
    }
}

fn task(t: &QueueTask) -> queue_types::Task {
    queue_types::Task {
        id: t.id,
        job_id: t.job_id,
        job_class: t.job_class.clone(),
        node_id: t.node_id.clone(),
        kind: node_kind(t.kind),
        priority: match t.priority {
            Priority::Interactive => types::Priority::Interactive,
            Priority::Batch => types::Priority::Batch,
        },
        risk: match t.risk {
            Risk::Reversible => types::Risk::Reversible,
            Risk::Irreversible => types::Risk::Irreversible,
        },
        arrival_ms: t.arrival_ms,
        enqueued_ms: t.enqueued_ms,
        deadline_ms: t.deadline_ms,
        service_ms: t.service_ms,
        preemptible: t.preemptible,
    }
}

fn snapshot(q: &QueueView) -> queue_types::QueueSnapshot {
    queue_types::QueueSnapshot {
        target: target(q.target),
        now_ms: q.now_ms,
        free_slots: q.free_slots,
        slots: q.slots,
        waiting: q.waiting.iter().map(task).collect(),
        running: q.running.iter().map(task).collect(),
        limit: q.limit,
    }
}

fn admission_back(a: admit::Admission) -> Admission {
    match a {
        admit::Admission::Accept => Admission::Accept,
        admit::Admission::Reject(r) => Admission::Reject {
            reason: r.reason,
            retry_after_ms: r.retry_after_ms,
        },
        admit::Admission::Hold(reason) => Admission::Hold { reason },
    }
}
