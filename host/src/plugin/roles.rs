//! Plugins serving the engine's policy traits, with hot reload.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::breaker::{Admit, Breaker, Change};
use super::cases::{cost_cases, eligibility_cases, gate_cases};
use super::convert;
use super::cost_payload::{CostScratch, check_additive};
use super::error::{PluginError, PluginFault};
use super::guest_log::GuestOutput;
use super::queue_cases::queue_smoke;
use super::queue_roles::{QueueOpen, open_queue_roles, queue_roles};
use super::queue_world::QueueRole;
use super::reload::Slot;
use super::runtime::{Instance, LoadedPlugin, Runtime};
use super::world::{Role, WitVersion};
use crate::hardware::{GateSpec, Hardware, PluginCeilings, PolicySpec};
use crate::model::graph::Risk;
use crate::policy::{
    CostModel, CostTerms, DecisionContext, EffectRequest, Eligibility, EligibilityQuery, Gate,
    GateDecision, Ineligible, JobContext, NativeCost, NativeEligibility, Policy, PolicyFault,
    PolicyNotice, runs_kind, validate_costs,
};

/// Longest list of reasons a plugin may return.
const MAX_REASONS: usize = 64;

/// A change of the version a plugin role serves, for the trace.
pub type ReloadNotice = PolicyNotice;

/// The cases of one role, run on a freshly loaded version before it may
/// replace the serving one.
fn smoke(runtime: &'static Runtime, plugin: &Arc<LoadedPlugin>, role: Role) -> Result<(), String> {
    let cases = match role {
        Role::Cost => cost_cases(&PluginCost::from_plugin(
            runtime,
            Arc::clone(plugin),
            PolicySpec::default(),
        )),
        Role::Eligibility => eligibility_cases(&PluginEligibility::from_plugin(
            runtime,
            Arc::clone(plugin),
            PolicySpec::default(),
        )),
        Role::Gate => gate_cases(&PluginGate::from_plugin(
            runtime,
            Arc::clone(plugin),
            GateSpec::default(),
        )),
    };
    match cases.into_iter().find(|c| !c.passed) {
        None => Ok(()),
        Some(c) => Err(format!("fails conformance: {}: {}", c.name, c.detail)),
    }
}

/// The instance serving a role, rebuilt when the slot's version changes,
/// and the role's circuit breaker.
struct Serving {
    generation: u64,
    instance: Instance,
    breaker: Breaker,
}

/// What the three role wrappers share.
struct RolePlugin {
    slot: Arc<Slot>,
    name: String,
    serving: Mutex<Serving>,
    /// The file watch, when hot reload is on (dropped with the plugin).
    _watch: Mutex<Option<Box<dyn Send>>>,
}

impl std::fmt::Debug for RolePlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RolePlugin")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl RolePlugin {
    fn open(
        runtime: &'static Runtime,
        role: Role,
        path: &Path,
        ceilings: &PluginCeilings,
        watch: Option<Duration>,
    ) -> Result<RolePlugin, PluginError> {
        let slot = Slot::open(runtime, role, path, ceilings, smoke)?;
        let watch = watch.and_then(|debounce| slot.watch(debounce));
        let mut plugin = RolePlugin::on(slot);
        plugin._watch = Mutex::new(watch);
        Ok(plugin)
    }

    /// Serves an already loaded plugin (no file watching).
    fn from_plugin(runtime: &'static Runtime, role: Role, plugin: Arc<LoadedPlugin>) -> RolePlugin {
        RolePlugin::on(Slot::serving(runtime, role, plugin, smoke))
    }

    fn on(slot: Arc<Slot>) -> RolePlugin {
        let plugin = slot.current();
        RolePlugin {
            name: format!("plugin:{}", plugin.name),
            serving: Mutex::new(Serving {
                generation: 0,
                instance: plugin.instance(),
                breaker: Breaker::default(),
            }),
            slot,
            _watch: Mutex::new(None),
        }
    }

    /// Calls the plugin through the role's breaker. A tripped role is not
    /// called: the answer is a [`PluginFault::Tripped`] fault.
    fn call<R>(
        &self,
        f: impl FnOnce(&mut Instance) -> Result<R, PluginFault>,
    ) -> Result<R, PolicyFault> {
        let mut serving = self.serving.lock().expect("plugin instance");
        let serving = &mut *serving;
        let generation = self.slot.generation.load(Ordering::Acquire);
        if serving.generation != generation {
            serving.instance = self.slot.current().instance();
            serving.generation = generation;
            serving.breaker = Breaker::default();
        }
        let plugin = Arc::clone(serving.instance.plugin());
        let fault = |fault: PluginFault, output: GuestOutput| PolicyFault {
            policy: format!("{} ({})", self.name, plugin.label()),
            reason: fault.to_string(),
            kind: fault.kind().into(),
            path: Some(plugin.path.display().to_string()),
            output: Box::new(output),
        };
        if let Admit::Tripped(calls) = serving.breaker.admit() {
            let faults = serving.breaker.faults();
            return Err(fault(
                PluginFault::Tripped { faults, calls },
                GuestOutput::default(),
            ));
        }
        let answer = f(&mut serving.instance);
        // One window per call: what it printed goes with its fault, or away.
        let output = serving.instance.take_output();
        let c = &plugin.ceilings;
        let change =
            serving
                .breaker
                .record(answer.is_ok(), c.breaker_faults, c.breaker_backoff_calls);
        let detail = match change {
            Change::None => None,
            Change::Tripped(n) => Some(format!(
                "tripped after {n} consecutive faults: the {} serves the next {} calls, then {} is retried once",
                match self.slot.role {
                    Role::Gate => "fail-closed choice",
                    _ => "native default",
                },
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
                role: self.slot.role.name().into(),
                policy: self.name.clone(),
                version: plugin.label(),
                ok: false,
                detail,
            });
        }
        answer.map_err(|f| fault(f, output))
    }

    /// The text limit of the serving version.
    fn max_text(&self) -> usize {
        self.slot.ceilings.max_log_bytes
    }

    fn version(&self) -> Option<String> {
        Some(self.slot.current().label())
    }
}

/// The policy-trait methods every role wrapper answers from its `inner`
/// `RolePlugin`: the three traits share them, with no common supertrait.
macro_rules! role_plugin_identity {
    () => {
        fn name(&self) -> &str {
            &self.inner.name
        }

        fn version(&self) -> Option<String> {
            self.inner.version()
        }

        fn take_notices(&self, out: &mut Vec<PolicyNotice>) {
            self.inner.slot.take_notices(out);
        }

        fn gives_notices(&self) -> bool {
            true
        }
    };
}

/// `open` and `from_plugin` for a role plugin that keeps its `spec`.
macro_rules! role_plugin_constructors {
    ($plugin:ident, $role:expr, $spec:ty, $what:literal) => {
        impl $plugin {
            #[doc = concat!("Loads ", $what, " at `path` under the default ceilings; `watch` (a debounce interval) turns on hot reload.")]
            pub fn open(
                runtime: &'static Runtime,
                path: &Path,
                spec: $spec,
                watch: Option<Duration>,
            ) -> Result<Self, PluginError> {
                Self::open_with(runtime, path, spec, &PluginCeilings::default(), watch)
            }

            #[doc = concat!("Loads ", $what, " at `path` under the operator's `ceilings`.")]
            pub fn open_with(
                runtime: &'static Runtime,
                path: &Path,
                spec: $spec,
                ceilings: &PluginCeilings,
                watch: Option<Duration>,
            ) -> Result<Self, PluginError> {
                Ok($plugin {
                    inner: RolePlugin::open(runtime, $role, path, ceilings, watch)?,
                    spec,
                })
            }

            /// Serves an already loaded plugin (conformance runs, benchmarks).
            pub fn from_plugin(
                runtime: &'static Runtime,
                plugin: Arc<LoadedPlugin>,
                spec: $spec,
            ) -> Self {
                $plugin {
                    inner: RolePlugin::from_plugin(runtime, $role, plugin),
                    spec,
                }
            }
        }
    };
}

fn invalid(detail: String) -> PluginFault {
    PluginFault::InvalidOutput { detail }
}

fn check_reasons<'a>(
    reasons: impl ExactSizeIterator<Item = &'a str>,
    max_text: usize,
) -> Result<(), PluginFault> {
    if reasons.len() > MAX_REASONS {
        return Err(invalid(format!(
            "{} reasons (at most {MAX_REASONS})",
            reasons.len()
        )));
    }
    for (i, r) in reasons.enumerate() {
        if r.len() > max_text {
            return Err(invalid(format!(
                "reason {i} is {} bytes long (at most {max_text})",
                r.len()
            )));
        }
    }
    Ok(())
}

/// A cost-model plugin.
#[derive(Debug)]
pub struct PluginCost {
    inner: RolePlugin,
    scratch: Mutex<CostScratch>,
    /// Whether the serving model's totals are the sum of its terms (its
    /// `describe`; always for 0.1).
    additive: AtomicBool,
    /// Answers while the breaker is tripped.
    native: NativeCost,
}

impl PluginCost {
    /// Loads the cost model at `path`; `watch` (a debounce interval) turns on hot reload.
    pub fn open(
        runtime: &'static Runtime,
        path: &Path,
        spec: PolicySpec,
        watch: Option<Duration>,
    ) -> Result<Self, PluginError> {
        Self::open_with(runtime, path, spec, &PluginCeilings::default(), watch)
    }

    /// Loads the cost model at `path` under the operator's `ceilings`.
    pub fn open_with(
        runtime: &'static Runtime,
        path: &Path,
        spec: PolicySpec,
        ceilings: &PluginCeilings,
        watch: Option<Duration>,
    ) -> Result<Self, PluginError> {
        Ok(PluginCost::serving(
            RolePlugin::open(runtime, Role::Cost, path, ceilings, watch)?,
            spec,
        ))
    }

    /// Serves an already loaded plugin (conformance runs, benchmarks).
    pub fn from_plugin(
        runtime: &'static Runtime,
        plugin: Arc<LoadedPlugin>,
        spec: PolicySpec,
    ) -> Self {
        PluginCost::serving(RolePlugin::from_plugin(runtime, Role::Cost, plugin), spec)
    }

    fn serving(inner: RolePlugin, spec: PolicySpec) -> Self {
        PluginCost {
            inner,
            scratch: CostScratch::new(&spec),
            additive: AtomicBool::new(true),
            native: NativeCost { policy: spec },
        }
    }

    /// One call of the serving instance, whichever its version.
    fn call(
        &self,
        i: &mut Instance,
        scratch: &mut CostScratch,
        ctx: &DecisionContext,
        out: &mut Vec<CostTerms>,
    ) -> Result<(), PluginFault> {
        let n = ctx.candidates.len();
        if i.plugin().version == Some(WitVersion::V0_2) {
            scratch.fill_v2(ctx);
            let costs = i.score_v2(&scratch.decision_v2, &scratch.candidates_v2)?;
            out.extend(costs.iter().map(convert::v2::cost_terms_back));
            validate_costs(out, n).map_err(invalid)?;
            let additive = i.additive()?;
            self.additive.store(additive, Ordering::Relaxed);
            if additive {
                check_additive(out).map_err(invalid)?;
            }
            return Ok(());
        }
        self.additive.store(true, Ordering::Relaxed);
        scratch.fill_v1(ctx);
        let costs = i.score(&scratch.decision, &scratch.candidates)?;
        out.extend(costs.iter().map(convert::cost_terms_back));
        validate_costs(out, n).map_err(invalid)
    }
}

impl CostModel for PluginCost {
    role_plugin_identity!();

    fn score(&self, ctx: &DecisionContext, out: &mut Vec<CostTerms>) -> Result<(), PolicyFault> {
        out.clear();
        let mut scratch = self.scratch.lock().expect("cost scratch");
        let answer = self.inner.call(|i| self.call(i, &mut scratch, ctx, out));
        match answer {
            // Tripped: the native model answers, quietly (the trip is traced once).
            Err(f) if f.kind == "tripped" => self.native.score(ctx, out),
            Err(f) => {
                out.clear();
                Err(f)
            }
            ok => ok,
        }
    }

    /// 0.2 models read it (the version the next call will serve).
    fn wants_situation(&self) -> bool {
        let current = self.inner.slot.current.lock().expect("plugin slot");
        current.version == Some(WitVersion::V0_2)
    }

    fn additive(&self) -> bool {
        self.additive.load(Ordering::Relaxed)
    }
}

/// An eligibility plugin.
#[derive(Debug)]
pub struct PluginEligibility {
    inner: RolePlugin,
    spec: PolicySpec,
}

role_plugin_constructors!(
    PluginEligibility,
    Role::Eligibility,
    PolicySpec,
    "the eligibility rules"
);

impl Eligibility for PluginEligibility {
    role_plugin_identity!();

    fn verdict(&self, query: &EligibilityQuery<'_>) -> Result<Vec<Ineligible>, PolicyFault> {
        let max_text = self.inner.max_text();
        let answer = self.inner.call(|i| {
            let reasons: Vec<Ineligible> = if i.plugin().version == Some(WitVersion::V0_2) {
                let empty = JobContext::default();
                let job = query.job.unwrap_or(&empty);
                i.verdict_v2(
                    &convert::v2::node(query.node),
                    convert::v2::qos(query.qos, job.energy_budget_j),
                    &convert::v2::job(job),
                    convert::v2::target(query.target),
                    convert::v2::limits(query.limits),
                    convert::v2::policy_context(&self.spec),
                )?
                .into_iter()
                .map(convert::v2::ineligible_back)
                .collect()
            } else {
                i.verdict(
                    &convert::node(query.node),
                    convert::qos(query.qos),
                    convert::target(query.target),
                    convert::limits(query.limits),
                    convert::policy_context(&self.spec),
                )?
                .into_iter()
                .map(convert::ineligible_back)
                .collect()
            };
            let texts: Vec<String> = reasons.iter().map(|r| r.to_string()).collect();
            check_reasons(texts.iter().map(String::as_str), max_text)?;
            // No policy widens what a backend can run.
            if reasons.is_empty() && !runs_kind(query.target, query.node.kind) {
                return Err(invalid(format!(
                    "declared {} eligible for a {} node, which it cannot run",
                    query.target.name(),
                    query.node.kind.name()
                )));
            }
            Ok(reasons)
        });
        match answer {
            Err(f) if f.kind == "tripped" => NativeEligibility {
                policy: self.spec.clone(),
            }
            .verdict(query),
            other => other,
        }
    }
}

/// A policy-gate plugin.
#[derive(Debug)]
pub struct PluginGate {
    inner: RolePlugin,
    spec: GateSpec,
}

role_plugin_constructors!(PluginGate, Role::Gate, GateSpec, "the gate");

impl Gate for PluginGate {
    role_plugin_identity!();

    fn decide(&self, request: &EffectRequest) -> Result<GateDecision, PolicyFault> {
        let thresholds = match request.risk {
            Risk::Reversible => &self.spec.reversible,
            Risk::Irreversible => &self.spec.irreversible,
        };
        let max_text = self.inner.max_text();
        self.inner.call(|i| {
            let decision = if i.plugin().version == Some(WitVersion::V0_2) {
                convert::v2::decision_back(i.decide_v2(
                    &convert::v2::request(request),
                    convert::v2::thresholds(thresholds),
                )?)
            } else {
                convert::decision_back(
                    i.decide(&convert::request(request), convert::thresholds(thresholds))?,
                )
            };
            if let GateDecision::RequireReview(r) | GateDecision::Deny(r) = &decision {
                check_reasons(r.iter().map(String::as_str), max_text)?;
            }
            Ok(decision)
        })
    }
}

/// Which plugin file serves which role; roles left empty use the native
/// defaults.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PluginSet {
    /// The cost-model component.
    pub cost: Option<PathBuf>,
    /// The eligibility-rules component.
    pub eligibility: Option<PathBuf>,
    /// The policy-gate component.
    pub gate: Option<PathBuf>,
    /// The queue-order component (`thermoroute:policy/queue-order@0.2.0`).
    pub queue_order: Option<PathBuf>,
    /// The admission component (`admit@0.2.0`).
    pub admit: Option<PathBuf>,
    /// The preemption component (`preempt@0.2.0`).
    pub preempt: Option<PathBuf>,
}

impl PluginSet {
    /// A policy directory: `cost.wasm`, `eligibility.wasm`, `gate.wasm`,
    /// `queue-order.wasm`, `admit.wasm`, `preempt.wasm`, and `policy.wasm`
    /// for the roles the others leave open (a component exporting several
    /// roles).
    pub fn from_dir(dir: &Path) -> Result<PluginSet, PluginError> {
        let file = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
        let mut set = PluginSet {
            cost: file("cost.wasm"),
            eligibility: file("eligibility.wasm"),
            gate: file("gate.wasm"),
            queue_order: file("queue-order.wasm"),
            admit: file("admit.wasm"),
            preempt: file("preempt.wasm"),
        };
        if let Some(all) = file("policy.wasm") {
            let plugin = Runtime::shared()?.load(&all)?;
            if plugin.roles.cost && set.cost.is_none() {
                set.cost = Some(all.clone());
            }
            if plugin.roles.eligibility && set.eligibility.is_none() {
                set.eligibility = Some(all.clone());
            }
            if plugin.roles.gate && set.gate.is_none() {
                set.gate = Some(all.clone());
            }
            for role in queue_roles(&plugin) {
                let slot = set.queue_slot(role);
                if slot.is_none() {
                    *slot = Some(all.clone());
                }
            }
        }
        if set.is_empty() {
            return Err(PluginError::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no cost.wasm, eligibility.wasm, gate.wasm, queue-order.wasm, admit.wasm, \
                     preempt.wasm or policy.wasm in the directory",
                ),
            });
        }
        Ok(set)
    }

    /// Whether no role has a plugin (the policy is all native).
    pub fn is_empty(&self) -> bool {
        let files = [&self.cost, &self.eligibility, &self.gate];
        let queue = [&self.queue_order, &self.admit, &self.preempt];
        files.iter().chain(&queue).all(|f| f.is_none())
    }

    /// The file serving queue role `role`.
    pub fn queue_slot(&mut self, role: QueueRole) -> &mut Option<PathBuf> {
        match role {
            QueueRole::QueueOrder => &mut self.queue_order,
            QueueRole::Admit => &mut self.admit,
            QueueRole::Preempt => &mut self.preempt,
        }
    }

    /// The policy these plugins make with this hardware's knobs; `watch`
    /// watches the files for hot reload.
    pub fn policy(&self, hw: &Hardware, watch: Option<Duration>) -> Result<Policy, PluginError> {
        let mut policy = Policy::native(hw);
        if self.is_empty() {
            return Ok(policy);
        }
        let runtime = Runtime::shared()?;
        if let Some(p) = &self.cost {
            policy.cost = Box::new(PluginCost::open_with(
                runtime,
                p,
                hw.policy.clone(),
                &hw.plugins,
                watch,
            )?);
        }
        if let Some(p) = &self.eligibility {
            policy.eligibility = Box::new(PluginEligibility::open_with(
                runtime,
                p,
                hw.policy.clone(),
                &hw.plugins,
                watch,
            )?);
        }
        if let Some(p) = &self.gate {
            policy.gate = Box::new(PluginGate::open_with(
                runtime,
                p,
                hw.gate.clone(),
                &hw.plugins,
                watch,
            )?);
        }
        let how = QueueOpen {
            runtime,
            ceilings: &hw.plugins,
            watch,
            smoke: queue_smoke,
        };
        open_queue_roles(
            how,
            [&self.queue_order, &self.admit, &self.preempt],
            &mut policy.queue,
        )?;
        Ok(policy)
    }
}
