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
use super::roles::{PluginCost, PluginEligibility, PluginGate};
use super::runtime::{CacheUse, Runtime};
use crate::device::Target;
use crate::hardware::Hardware;
use crate::model::graph::{Priority, Risk};
use crate::policy::{
    BackendLimits, CandidateInput, CostModel, DecisionContext, EffectRequest, Eligibility,
    EligibilityQuery, Gate,
};

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
        i if i.starts_with("thermoroute:policy/types") => "types only (nothing to call)",
        _ => "not provided",
    }
}
/// The case a component exporting no role of this host's WIT fails: it
/// names what it exports instead (another version of the package, say).
fn no_world_case(exports: &[String]) -> ConformanceCase {
    let foreign: Vec<&String> = exports
        .iter()
        .filter(|e| e.starts_with("thermoroute:policy/"))
        .collect();
    ConformanceCase {
        role: "world",
        name: "exports a world of thermoroute:policy@0.1.0".into(),
        passed: false,
        detail: if !foreign.is_empty() {
            format!(
                "exports {} — a version this host does not know (it speaks @0.1.0)",
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
    let plugin = runtime.load_with(path, &hw.plugins)?;
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
    if plugin.roles == super::world::Roles::default() {
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
    Ok(CheckReport {
        path: path.display().to_string(),
        hash: plugin.hash.clone(),
        bytes: plugin.bytes,
        world: plugin.roles.world(),
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
