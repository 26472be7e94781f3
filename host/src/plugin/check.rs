//! `thermoroute plugin check`: load a component, run the conformance suite
//! for every role it exports, and time its instantiation and calls.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::cases::{
    ConformanceCase, cost_cases, eligibility_cases, estimate, evidence, gate_cases, qos,
    sample_node,
};
use super::error::PluginError;
use super::limits::LimitGrant;
use super::queue_cases::queue_cases;
use super::queue_roles::queue_roles;
use super::roles::{PluginCost, PluginEligibility, PluginGate};
use super::runtime::{CacheUse, Runtime};
use super::user_cases::{CaseRoles, UserCase, UserCaseResult, run_cases};
use super::world::{WitVersion, supported_versions};
use crate::device::Target;
use crate::hardware::Hardware;
use crate::model::graph::{Priority, Risk};
use crate::policy::{
    BackendLimits, CandidateInput, CostModel, DecisionContext, EffectRequest, Eligibility,
    EligibilityQuery, Gate,
};
use sha2::{Digest, Sha256};

/// What `plugin check` reports.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// The component file.
    pub path: String,
    /// `sha256:<hex>` of the file.
    pub hash: String,
    /// Size of the file.
    pub bytes: usize,
    /// The WIT world its exports implement.
    pub world: &'static str,
    /// The version of `thermoroute:policy` it was built against (`0.1.0`,
    /// `0.2.0`; none when it exports no policy interface this host loads).
    pub wit_version: Option<&'static str>,
    /// Its exported interfaces.
    pub exports: Vec<String>,
    /// Each import and what the sandbox grants it.
    pub imports: Vec<(String, String)>,
    /// Whether the compiled code came from the cache.
    pub cache: CacheUse,
    /// Time to load it (read, compile or cache, link, instantiate once).
    pub load_ms: f64,
    /// Cold instantiation (fresh store and instance), microseconds.
    pub instantiate_us: f64,
    /// Each sandbox limit as asked and as granted under the operator's
    /// ceilings, and why.
    pub limits: Vec<LimitGrant>,
    /// The conformance cases of every role it exports.
    pub cases: Vec<ConformanceCase>,
    /// Mean time of one warm call per role, microseconds.
    pub call_us: Vec<(&'static str, f64)>,
}

impl CheckReport {
    /// Whether every case passed (a component with no supported world
    /// fails its first case).
    pub fn passed(&self) -> bool {
        !self.cases.is_empty() && self.cases.iter().all(|c| c.passed)
    }
}

/// What the sandbox grants an import.
pub fn import_grant(name: &str) -> &'static str {
    let iface = name.split('@').next().unwrap_or(name);
    match iface {
        i if i.starts_with("wasi:filesystem/") => "denied: no directory is preopened",
        "wasi:cli/environment" => "empty: no variables, no arguments",
        i if i.starts_with("wasi:cli/std") || i.starts_with("wasi:cli/terminal") => {
            "stdio goes nowhere"
        }
        "wasi:cli/exit" => "exit ends the call as a trap",
        i if i.starts_with("wasi:clocks/") => "frozen at zero",
        i if i.starts_with("wasi:random/") => "seeded: deterministic",
        i if i.starts_with("wasi:sockets/") => "denied: every address is refused",
        i if i.starts_with("wasi:io/") => "streams and polling only",
        i if i.starts_with("thermoroute:policy/types")
            || i.starts_with("thermoroute:policy/queue-types") =>
        {
            "types only (nothing to call)"
        }
        "thermoroute:policy/log" => "kept with the call's output (bounded, rate-limited)",
        _ => "not provided",
    }
}
/// The name of the case every component must pass first.
fn world_case_name() -> String {
    format!(
        "exports a world of thermoroute:policy ({})",
        supported_versions()
    )
}

/// The case a component exporting no role of this host's WIT fails: it
/// names what it exports instead.
fn no_world_case(exports: &[String]) -> ConformanceCase {
    let foreign: Vec<&String> = exports
        .iter()
        .filter(|e| e.starts_with("thermoroute:policy/"))
        .collect();
    ConformanceCase {
        role: "world",
        name: world_case_name(),
        passed: false,
        detail: if !foreign.is_empty() {
            format!(
                "exports only {}, no role interface",
                foreign
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else if exports.is_empty() {
            "exports nothing".into()
        } else {
            format!("exports only {}", exports.join(", "))
        },
        output: Default::default(),
    }
}

/// Loads `path`, runs the suite for every role it exports and times it,
/// under the default hardware's ceilings.
pub fn conformance(
    runtime: &'static Runtime,
    path: &std::path::Path,
) -> Result<CheckReport, PluginError> {
    conformance_under(runtime, path, &Hardware::default())
}

/// [`conformance`] under `hw`'s plugin ceilings and policy knobs.
pub fn conformance_under(
    runtime: &'static Runtime,
    path: &std::path::Path,
    hw: &Hardware,
) -> Result<CheckReport, PluginError> {
    let plugin = match runtime.load_with(path, &hw.plugins) {
        Ok(p) => p,
        Err(e @ (PluginError::MixedVersions { .. } | PluginError::UnknownVersion { .. })) => {
            return version_report(path, &e);
        }
        Err(e) => return Err(e),
    };
    let started = Instant::now();
    let mut probe = plugin.instance();
    let mut instantiate_us = 0.0;
    const COLD: usize = 5;
    for _ in 0..COLD {
        let t = Instant::now();
        probe.instantiate().map_err(|e| PluginError::Instantiate {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        instantiate_us += t.elapsed().as_secs_f64() * 1e6 / COLD as f64;
    }
    let _ = started;
    let mut cases = Vec::new();
    let queue = queue_roles(&plugin);
    if plugin.roles == super::world::Roles::default() && queue.is_empty() {
        cases.push(no_world_case(&plugin.exports));
    }
    let mut call_us = Vec::new();
    const CALLS: u32 = 200;
    if plugin.roles.cost {
        let model = PluginCost::from_plugin(runtime, Arc::clone(&plugin), hw.policy.clone());
        cases.extend(cost_cases(&model));
        let node = sample_node();
        let q = qos(Risk::Reversible);
        let weights = hw.weights;
        let ctx = DecisionContext {
            candidates: &[],
            node: &node,
            qos: &q,
            weights: &weights,
            situation: None,
        };
        let cands: Vec<CandidateInput> = [Target::Tsu, Target::GpuSim, Target::CpuRef]
            .map(|target| CandidateInput {
                target,
                estimate: estimate(1.0),
            })
            .to_vec();
        let mut out = Vec::new();
        let t = Instant::now();
        for _ in 0..CALLS {
            let _ = model.score(
                &DecisionContext {
                    candidates: &cands,
                    ..ctx
                },
                &mut out,
            );
        }
        call_us.push(("cost", t.elapsed().as_secs_f64() * 1e6 / f64::from(CALLS)));
    }
    if plugin.roles.eligibility {
        let rules = PluginEligibility::from_plugin(runtime, Arc::clone(&plugin), hw.policy.clone());
        cases.extend(eligibility_cases(&rules));
        let node = sample_node();
        let q = qos(Risk::Reversible);
        let limits = BackendLimits::of(Target::Tsu, hw);
        let t = Instant::now();
        for _ in 0..CALLS {
            let _ = rules.verdict(&EligibilityQuery {
                node: &node,
                qos: &q,
                target: Target::Tsu,
                limits: &limits,
                job: None,
            });
        }
        call_us.push((
            "eligibility",
            t.elapsed().as_secs_f64() * 1e6 / f64::from(CALLS),
        ));
    }
    if plugin.roles.gate {
        let gate = PluginGate::from_plugin(runtime, Arc::clone(&plugin), hw.gate.clone());
        cases.extend(gate_cases(&gate));
        let r = EffectRequest {
            node: "act".into(),
            action: "block card".into(),
            risk: Risk::Irreversible,
            priority: Priority::Interactive,
            evidence: vec![evidence()],
            escalations: vec![],
        };
        let t = Instant::now();
        for _ in 0..CALLS {
            let _ = gate.decide(&r);
        }
        call_us.push(("gate", t.elapsed().as_secs_f64() * 1e6 / f64::from(CALLS)));
    }
    for &role in &queue {
        let (role_cases, us) = queue_cases(runtime, &plugin, role);
        cases.extend(role_cases);
        call_us.push((role.name(), us));
    }
    let world = match queue.as_slice() {
        [] => plugin.roles.world(),
        [one] if plugin.roles == super::world::Roles::default() => one.world(),
        _ => "a mix of roles (no single world)",
    };
    Ok(CheckReport {
        path: path.display().to_string(),
        hash: plugin.hash.clone(),
        bytes: plugin.bytes,
        world,
        wit_version: plugin.version.map(WitVersion::as_str),
        exports: plugin.exports.clone(),
        imports: plugin
            .imports
            .iter()
            .map(|i| (i.clone(), import_grant(i).to_string()))
            .collect(),
        cache: plugin.cache,
        load_ms: plugin.load_time.as_secs_f64() * 1e3,
        instantiate_us,
        limits: plugin.grants.clone(),
        cases,
        call_us,
    })
}

/// The report on a component whose exports name several versions of the
/// package, or one this host does not know: it fails its first case with
/// the load error, which says what to do.
fn version_report(path: &std::path::Path, e: &PluginError) -> Result<CheckReport, PluginError> {
    let bytes = std::fs::read(path).map_err(|source| PluginError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let (PluginError::MixedVersions { found, .. } | PluginError::UnknownVersion { found, .. }) = e
    else {
        unreachable!("called for version errors only")
    };
    Ok(CheckReport {
        path: path.display().to_string(),
        hash: format!("sha256:{}", hex::encode(Sha256::digest(&bytes))),
        bytes: bytes.len(),
        world: "none",
        wit_version: None,
        exports: found.split(", ").map(String::from).collect(),
        imports: Vec::new(),
        cache: CacheUse::Disabled,
        load_ms: 0.0,
        instantiate_us: 0.0,
        limits: Vec::new(),
        cases: vec![ConformanceCase {
            role: "world",
            name: world_case_name(),
            passed: false,
            detail: e.to_string(),
            output: Default::default(),
        }],
        call_us: Vec::new(),
    })
}

/// Loads `path` and runs the user `cases` against the roles it exports,
/// each case on a fresh instance, under `hw`'s ceilings and knobs.
pub fn user_cases_under(
    runtime: &'static Runtime,
    path: &std::path::Path,
    hw: &Hardware,
    cases: &[UserCase],
) -> Result<Vec<UserCaseResult>, PluginError> {
    let plugin = runtime.load_with(path, &hw.plugins)?;
    let cost = || -> Box<dyn CostModel> {
        Box::new(PluginCost::from_plugin(
            runtime,
            Arc::clone(&plugin),
            hw.policy.clone(),
        ))
    };
    let eligibility = || -> Box<dyn Eligibility> {
        Box::new(PluginEligibility::from_plugin(
            runtime,
            Arc::clone(&plugin),
            hw.policy.clone(),
        ))
    };
    let gate = || -> Box<dyn Gate> {
        Box::new(PluginGate::from_plugin(
            runtime,
            Arc::clone(&plugin),
            hw.gate.clone(),
        ))
    };
    let roles = CaseRoles {
        cost: plugin
            .roles
            .cost
            .then_some(&cost as &dyn Fn() -> Box<dyn CostModel>),
        eligibility: plugin
            .roles
            .eligibility
            .then_some(&eligibility as &dyn Fn() -> Box<dyn Eligibility>),
        gate: plugin
            .roles
            .gate
            .then_some(&gate as &dyn Fn() -> Box<dyn Gate>),
    };
    Ok(run_cases(cases, &roles, hw))
}
