//! Plugins serving the engine's policy traits, with hot reload.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{EventKind, PollWatcher, RecommendedWatcher, RecursiveMode, Watcher};
use notify_debouncer_full::{
    DebounceEventResult, DebouncedEvent, FileIdCache, NoCache, RecommendedCache, new_debouncer_opt,
};

use super::breaker::{Admit, Breaker, Change};
use super::cases::{cost_cases, eligibility_cases, gate_cases};
use super::convert;
use super::error::{PluginError, PluginFault};
use super::guest_log::GuestOutput;
use super::runtime::{Instance, LoadedPlugin, Runtime};
use super::world::Role;
use crate::hardware::{GateSpec, Hardware, PluginCeilings, PolicySpec};
use crate::model::graph::{Qos, Risk};
use crate::policy::{
    CostModel, CostTerms, DecisionContext, EffectRequest, Eligibility, EligibilityQuery, Gate,
    GateDecision, Ineligible, NativeCost, NativeEligibility, NodeSummary, Policy, PolicyFault,
    PolicyNotice, runs_kind, validate_costs,
};

/// Longest list of reasons a plugin may return.
const MAX_REASONS: usize = 64;

/// A change of the version a plugin role serves, for the trace.
pub type ReloadNotice = PolicyNotice;

/// The file behind one role and the version currently serving it.
struct Slot {
    role: Role,
    path: PathBuf,
    runtime: &'static Runtime,
    ceilings: PluginCeilings,
    current: Mutex<Arc<LoadedPlugin>>,
    generation: AtomicU64,
    notices: Mutex<Vec<PolicyNotice>>,
    has_notice: AtomicBool,
}

fn require_role(plugin: &LoadedPlugin, role: Role) -> Result<(), PluginError> {
    if plugin.roles.has(role) {
        return Ok(());
    }
    Err(PluginError::MissingRole {
        path: plugin.path.clone(),
        wanted: role.interface(),
        world: role.world(),
        found: if plugin.exports.is_empty() {
            "nothing".into()
        } else {
            plugin.exports.join(", ")
        },
    })
}

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

impl Slot {
    fn open(
        runtime: &'static Runtime,
        role: Role,
        path: &Path,
        ceilings: &PluginCeilings,
    ) -> Result<Arc<Slot>, PluginError> {
        let plugin = runtime.load_with(path, ceilings)?;
        require_role(&plugin, role)?;
        Ok(Slot::serving(runtime, role, plugin))
    }

    fn serving(runtime: &'static Runtime, role: Role, plugin: Arc<LoadedPlugin>) -> Arc<Slot> {
        Arc::new(Slot {
            role,
            path: plugin.path.clone(),
            runtime,
            ceilings: plugin.ceilings,
            current: Mutex::new(plugin),
            generation: AtomicU64::new(0),
            notices: Mutex::new(Vec::new()),
            has_notice: AtomicBool::new(false),
        })
    }

    fn current(&self) -> Arc<LoadedPlugin> {
        Arc::clone(&self.current.lock().expect("plugin slot"))
    }

    fn notify(&self, notice: PolicyNotice) {
        self.notices.lock().expect("plugin notices").push(notice);
        self.has_notice.store(true, Ordering::Release);
    }

    /// Loads the file again; swaps it in if it changed and passes the smoke
    /// test, otherwise keeps the serving version and says why.
    fn reload(&self) {
        let old = self.current();
        let attempt = self
            .runtime
            .load_with(&self.path, &self.ceilings)
            .and_then(|p| {
                require_role(&p, self.role)?;
                smoke(self.runtime, &p, self.role).map_err(|detail| PluginError::Instantiate {
                    path: self.path.clone(),
                    detail,
                })?;
                Ok(p)
            });
        match attempt {
            Ok(p) if p.hash == old.hash => {}
            Ok(p) => {
                let version = p.label();
                tracing::info!(
                    role = self.role.name(),
                    path = %self.path.display(),
                    was = %old.label(),
                    "plugin reloaded: {version} serves"
                );
                *self.current.lock().expect("plugin slot") = p;
                self.generation.fetch_add(1, Ordering::AcqRel);
                self.notify(PolicyNotice {
                    role: self.role.name().into(),
                    policy: format!("plugin:{}", old.name),
                    version,
                    ok: true,
                    detail: format!("reloaded {} (was {})", self.path.display(), old.label()),
                });
            }
            Err(e) => {
                tracing::warn!(
                    role = self.role.name(),
                    path = %self.path.display(),
                    "plugin reload refused, {} serves on: {e}",
                    old.label()
                );
                self.notify(PolicyNotice {
                    role: self.role.name().into(),
                    policy: format!("plugin:{}", old.name),
                    version: old.label(),
                    ok: false,
                    detail: format!("kept {}: the new version is broken: {e}", old.label()),
                });
            }
        }
    }

    /// Watches the file's directory through `notify` (inotify, FSEvents,
    /// ReadDirectoryChangesW; polling where those are missing or with
    /// `THERMOROUTE_WATCH=poll`, e.g. on network file systems) and reloads
    /// once the file's events have been quiet for `debounce`. Watching the
    /// directory, not the file, follows a file replaced by rename, as
    /// editors and `cargo build` write them. The watch ends when the
    /// returned handle is dropped.
    fn watch(self: &Arc<Self>, debounce: Duration) -> Option<Box<dyn Send>> {
        let poll = std::env::var("THERMOROUTE_WATCH").is_ok_and(|v| v == "poll");
        let native = if poll {
            None
        } else {
            match watch::<RecommendedWatcher, _>(self, debounce, RecommendedCache::new()) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(
                        path = %self.path.display(),
                        "cannot watch for changes ({e}); polling instead"
                    );
                    None
                }
            }
        };
        let watched = match native {
            Some(w) => Ok(w),
            None => watch::<PollWatcher, _>(self, debounce, NoCache::new()),
        };
        match watched {
            Ok(w) => Some(w),
            Err(e) => {
                self.notify(PolicyNotice {
                    role: self.role.name().into(),
                    policy: format!("plugin:{}", self.current().name),
                    version: self.current().label(),
                    ok: false,
                    detail: format!("cannot watch for changes: {e}"),
                });
                None
            }
        }
    }

    fn take_notices(&self, out: &mut Vec<PolicyNotice>) {
        if self.has_notice.swap(false, Ordering::AcqRel) {
            out.append(&mut self.notices.lock().expect("plugin notices"));
        }
    }
}

/// Whether a debounced event changed `file` (not just opened or read it).
fn changes(event: &DebouncedEvent, file: &Path) -> bool {
    let kind_changes = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    };
    kind_changes
        && event
            .paths
            .iter()
            .any(|p| p.file_name() == file.file_name())
}

/// A debounced watch on `slot`'s directory with watcher `W`.
fn watch<W, C>(slot: &Arc<Slot>, debounce: Duration, cache: C) -> notify::Result<Box<dyn Send>>
where
    W: Watcher + Send + 'static,
    C: FileIdCache + Send + 'static,
{
    let weak: Weak<Slot> = Arc::downgrade(slot);
    let file = slot.path.clone();
    let handler = move |result: DebounceEventResult| {
        let Some(slot) = weak.upgrade() else { return };
        match result {
            Ok(events) if events.iter().any(|e| changes(e, &file)) && file.exists() => {
                slot.reload();
            }
            Ok(_) => {}
            Err(errors) => {
                for e in errors {
                    tracing::warn!(path = %file.display(), "watching for changes: {e}");
                }
            }
        }
    };
    let config = notify::Config::default().with_poll_interval(debounce);
    let mut debouncer = new_debouncer_opt::<_, W, C>(debounce, None, handler, cache, config)?;
    let dir = match slot.path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    debouncer.watch(&dir, RecursiveMode::NonRecursive)?;
    tracing::debug!(path = %slot.path.display(), watcher = ?W::kind(), "watching for changes");
    Ok(Box::new(debouncer))
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
        let slot = Slot::open(runtime, role, path, ceilings)?;
        let watch = watch.and_then(|debounce| slot.watch(debounce));
        let mut plugin = RolePlugin::on(slot);
        plugin._watch = Mutex::new(watch);
        Ok(plugin)
    }

    /// Serves an already loaded plugin (no file watching).
    fn from_plugin(runtime: &'static Runtime, role: Role, plugin: Arc<LoadedPlugin>) -> RolePlugin {
        RolePlugin::on(Slot::serving(runtime, role, plugin))
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
    /// Answers while the breaker is tripped.
    native: NativeCost,
}

/// The last decision in WIT form, reused across calls.
#[derive(Debug)]
struct CostScratch {
    node: Option<NodeSummary>,
    decision: super::bindings::cost_model::Decision,
    candidates: Vec<super::bindings::cost_model::Candidate>,
}

impl CostScratch {
    fn new(spec: &PolicySpec) -> Mutex<CostScratch> {
        Mutex::new(CostScratch {
            node: None,
            decision: super::bindings::cost_model::Decision {
                node: convert::node(&NodeSummary {
                    kind: crate::model::graph::NodeKind::Control,
                    class: String::new(),
                    flops: 0.0,
                    bytes: 0.0,
                    program: None,
                }),
                qos: convert::qos(&Qos::default()),
                weights: convert::weights(&crate::hardware::Weights::default()),
                penalties: convert::penalties(spec),
            },
            candidates: Vec::new(),
        })
    }
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
        Ok(PluginCost {
            inner: RolePlugin::open(runtime, Role::Cost, path, ceilings, watch)?,
            scratch: CostScratch::new(&spec),
            native: NativeCost { policy: spec },
        })
    }

    /// Serves an already loaded plugin (conformance runs, benchmarks).
    pub fn from_plugin(
        runtime: &'static Runtime,
        plugin: Arc<LoadedPlugin>,
        spec: PolicySpec,
    ) -> Self {
        PluginCost {
            inner: RolePlugin::from_plugin(runtime, Role::Cost, plugin),
            scratch: CostScratch::new(&spec),
            native: NativeCost { policy: spec },
        }
    }
}

impl CostModel for PluginCost {
    role_plugin_identity!();

    fn score(&self, ctx: &DecisionContext, out: &mut Vec<CostTerms>) -> Result<(), PolicyFault> {
        out.clear();
        let candidates = ctx.candidates;
        let mut scratch = self.scratch.lock().expect("cost scratch");
        let scratch = &mut *scratch;
        // Decisions repeat per node class: convert the node only when it changes.
        if scratch.node.as_ref() != Some(ctx.node) {
            scratch.decision.node = convert::node(ctx.node);
            scratch.node = Some(ctx.node.clone());
        }
        scratch.decision.qos = convert::qos(ctx.qos);
        scratch.decision.weights = convert::weights(ctx.weights);
        scratch.candidates.clear();
        scratch
            .candidates
            .extend(candidates.iter().map(convert::candidate));
        let answer = self.inner.call(|i| {
            let costs = i.score(&scratch.decision, &scratch.candidates)?;
            out.extend(costs.iter().map(convert::cost_terms_back));
            validate_costs(out, candidates.len()).map_err(invalid)
        });
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
        let wit_node = convert::node(query.node);
        let max_text = self.inner.max_text();
        let answer = self.inner.call(|i| {
            let reasons = i.verdict(
                &wit_node,
                convert::qos(query.qos),
                convert::target(query.target),
                convert::limits(query.limits),
                convert::policy_context(&self.spec),
            )?;
            let reasons: Vec<Ineligible> =
                reasons.into_iter().map(convert::ineligible_back).collect();
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
        let wit_request = convert::request(request);
        let max_text = self.inner.max_text();
        self.inner.call(|i| {
            let decision =
                convert::decision_back(i.decide(&wit_request, convert::thresholds(thresholds))?);
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
}

impl PluginSet {
    /// A policy directory: `cost.wasm`, `eligibility.wasm`, `gate.wasm`, and
    /// `policy.wasm` for the roles the others leave open (a component
    /// exporting several roles).
    pub fn from_dir(dir: &Path) -> Result<PluginSet, PluginError> {
        let file = |name: &str| Some(dir.join(name)).filter(|p| p.is_file());
        let mut set = PluginSet {
            cost: file("cost.wasm"),
            eligibility: file("eligibility.wasm"),
            gate: file("gate.wasm"),
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
                set.gate = Some(all);
            }
        }
        if set.is_empty() {
            return Err(PluginError::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no cost.wasm, eligibility.wasm, gate.wasm or policy.wasm in the directory",
                ),
            });
        }
        Ok(set)
    }

    /// Whether no role has a plugin (the policy is all native).
    pub fn is_empty(&self) -> bool {
        self.cost.is_none() && self.eligibility.is_none() && self.gate.is_none()
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
        Ok(policy)
    }
}
