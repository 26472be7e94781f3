//! What `thermoroute plugin new` writes: a working plugin per language and
//! role, with the WIT package beside it so the directory stands alone.

use super::lang::{Lang, POLICY_WIT, WIT_BINDGEN};
use crate::plugin::world::Role;

/// (relative path, contents) of every file of a new plugin.
pub fn files(lang: Lang, role: Role, name: &str) -> Vec<(String, String)> {
    let world = role.world();
    let (entry, body) = match lang {
        Lang::Rust => ("src/lib.rs", rust(role, world)),
        Lang::Python => ("app.py", python(role).to_string()),
        Lang::Js => ("plugin.js", js(role)),
        Lang::C => ("plugin.c", c(role).to_string()),
        Lang::Cpp => ("plugin.cpp", cpp(role).to_string()),
    };
    let entry_key = match lang {
        Lang::Rust => String::new(),
        Lang::C | Lang::Cpp => {
            "# Sources: every .c/.cpp at the top of this directory, or list them:\n\
                                # sources = [\"plugin.c\"]\n\
                                # cflags = [\"-DMY_KNOB=2\"]\n"
                .into()
        }
        Lang::Python => "module = \"app\"\n".into(),
        Lang::Js => "entry = \"plugin.js\"\n".into(),
    };
    let mut files = vec![
        (
            "plugin.toml".to_string(),
            format!(
                "# A thermoroute {role} plugin ({lang}).\n\
                 #   thermoroute plugin build .                  -> target/{name}.wasm\n\
                 #   thermoroute plugin check target/{name}.wasm\n\
                 #   thermoroute run GRAPH.json --{role} target/{name}.wasm\n\
                 [plugin]\n\
                 lang = \"{lang}\"\n\
                 world = \"{world}\"\n\
                 wit = \"wit\"\n\
                 {entry_key}\n\
                 # Sandbox limits (defaults shown): fuel and memory per call.\n\
                 [limits]\n\
                 fuel_per_call = 20000000\n\
                 memory_mib = {memory}\n",
                role = role.name(),
                lang = lang.name(),
                memory = if lang == Lang::Python { 128 } else { 64 },
            ),
        ),
        ("wit/policy.wit".to_string(), POLICY_WIT.to_string()),
        (entry.to_string(), body),
    ];
    if lang == Lang::Rust {
        files.push((
            "Cargo.toml".to_string(),
            format!(
                "[package]\n\
                 name = \"{name}\"\n\
                 version = \"0.1.0\"\n\
                 edition = \"2024\"\n\
                 publish = false\n\n\
                 [lib]\n\
                 crate-type = [\"cdylib\"]\n\n\
                 [dependencies]\n\
                 wit-bindgen = \"{}\"\n\n\
                 [profile.release]\n\
                 opt-level = \"s\"\n\
                 strip = true\n\n\
                 # Stand-alone, whatever workspace encloses it.\n\
                 [workspace]\n",
                WIT_BINDGEN
            ),
        ));
    }
    if matches!(lang, Lang::C | Lang::Cpp) {
        files.push(("Makefile".to_string(), makefile(name)));
    }
    files
}

/// `make` builds and checks through thermoroute, which generates the C
/// bindings, runs clang and encodes the component itself.
fn makefile(name: &str) -> String {
    format!(
        "# `make` builds target/{name}.wasm, `make check` runs the conformance suite.\n\
         # thermoroute generates the C bindings (target/bindings), compiles with\n\
         # clang for wasm32-wasi and encodes the component; no other tools needed.\n\
         THERMOROUTE ?= thermoroute\n\
         \n\
         .PHONY: all check clean\n\
         all: target/{name}.wasm\n\
         \n\
         target/{name}.wasm: plugin.toml $(wildcard *.c *.cpp *.h wit/*.wit)\n\
         \t$(THERMOROUTE) plugin build .\n\
         \n\
         check: target/{name}.wasm\n\
         \t$(THERMOROUTE) plugin check $<\n\
         \n\
         clean:\n\
         \trm -rf target\n"
    )
}

/// C templates: the generated bindings' conventions in a working plugin.
fn c(role: Role) -> &'static str {
    match role {
        Role::Cost => include_str!("c_templates/cost.c"),
        Role::Eligibility => include_str!("c_templates/eligibility.c"),
        Role::Gate => include_str!("c_templates/gate.c"),
    }
}

/// C++ templates: the C bindings from C++20 (libc++, no exceptions).
fn cpp(role: Role) -> &'static str {
    match role {
        Role::Cost => include_str!("c_templates/cost.cpp"),
        Role::Eligibility => include_str!("c_templates/eligibility.cpp"),
        Role::Gate => include_str!("c_templates/gate.cpp"),
    }
}

fn rust(role: Role, world: &str) -> String {
    let body = match role {
        Role::Cost => rust_cost(),
        Role::Eligibility => RUST_ELIGIBILITY.to_string(),
        Role::Gate => RUST_GATE.to_string(),
    };
    // The crate doc comes first, then the bindings, then the code.
    let (doc, code) = body
        .trim_start()
        .split_once("\n\n")
        .unwrap_or(("", body.as_str()));
    format!("{doc}\n\nwit_bindgen::generate!({{ path: \"wit\", world: \"{world}\" }});\n\n{code}")
}

/// The committed Rust cost model (plugins/cost-rust): the cost template is
/// its code under the template's own crate doc.
const RUST_COST_EXAMPLE: &str = include_str!("../../../../plugins/cost-rust/src/lib.rs");

fn rust_cost() -> String {
    let (_example_header, code) = RUST_COST_EXAMPLE
        .split_once("\n\nuse ")
        .expect("the example's code starts at its first use");
    format!(
        "//! A cost model: one cost per candidate, lowest total wins. Start from the\n\
         //! native formula and change what you need.\n\nuse {code}"
    )
}

const RUST_ELIGIBILITY: &str = r#"
//! Eligibility rules: an empty list means eligible.

use exports::thermoroute::policy::eligibility::{BackendLimits, Guest, Ineligible, LimitExcess, PolicyContext};
use thermoroute::policy::types::{NodeKind, NodeSummary, Qos, Target};

struct Plugin;

impl Guest for Plugin {
    fn verdict(node: NodeSummary, _qos: Qos, target: Target, limits: BackendLimits, _context: PolicyContext) -> Result<Vec<Ineligible>, String> {
        let sampling = matches!(target, Target::Tsu | Target::GpuSim | Target::CpuRef);
        let fits = match node.kind {
            NodeKind::Sample => sampling,
            NodeKind::Tensor | NodeKind::Nn => matches!(target, Target::Cpu | Target::Gpu),
            NodeKind::Control | NodeKind::Effect => target == Target::Cpu,
        };
        if !fits {
            return Ok(vec![Ineligible::UnsupportedNodeKind(node.kind)]);
        }
        let mut reasons = Vec::new();
        if let (Target::Tsu, Some(p)) = (target, &node.program) {
            if p.n_categorical + p.n_factors + p.n_constraints > 0 {
                reasons.push(Ineligible::UnsupportedFactors("the TSU runs spins with pairwise couplings only".into()));
            }
            if p.n_vars > limits.max_vars {
                reasons.push(Ineligible::ExceedsLimits(LimitExcess { what: "variables".into(), limit: limits.max_vars as f64, requested: p.n_vars as f64 }));
            }
        }
        Ok(reasons)
    }
}

export!(Plugin);
"#;

const RUST_GATE: &str = r#"
//! A policy gate: allow, hold for review, or deny each effect.

use exports::thermoroute::policy::gate::{EffectRequest, GateDecision, Guest, Thresholds};
use thermoroute::policy::types::{NodeKind, Risk};

struct Plugin;

impl Guest for Plugin {
    fn decide(request: EffectRequest, t: Thresholds) -> Result<GateDecision, String> {
        if request.risk == Risk::Irreversible && request.evidence.is_empty() {
            return Ok(GateDecision::Deny(vec!["an irreversible effect needs evidence".into()]));
        }
        let mut review = request.escalations.clone();
        for e in request.evidence.iter().filter(|e| e.kind == Some(NodeKind::Sample)) {
            if e.min_ess_bulk.is_none_or(|ess| ess < t.min_ess) {
                review.push(format!("{}: ESS below {}", e.node, t.min_ess));
            }
            if e.max_rhat.is_none_or(|r| r > t.max_rhat) {
                review.push(format!("{}: R-hat above {}", e.node, t.max_rhat));
            }
        }
        Ok(if review.is_empty() { GateDecision::Allow } else { GateDecision::RequireReview(review) })
    }
}

export!(Plugin);
"#;

fn python(role: Role) -> &'static str {
    match role {
        Role::Cost => PY_COST,
        Role::Eligibility => PY_ELIGIBILITY,
        Role::Gate => PY_GATE,
    }
}

const PY_COST: &str = r#""""A cost model: one cost per candidate, lowest total wins."""

from wit_world import exports
from wit_world.exports.cost_model import CostTerms
from wit_world.imports.types import Risk, Target


class CostModel(exports.CostModel):
    def score(self, decision, candidates):
        w = decision.weights
        out = []
        for c in candidates:
            penalty = 0.0
            if decision.qos.risk == Risk.IRREVERSIBLE:
                if c.target == Target.TSU:
                    penalty = decision.penalties.tsu_irreversible
                elif c.target == Target.GPU_SIM:
                    penalty = decision.penalties.gpu_sim_irreversible
            latency = w.latency * c.estimate.latency_p50_ms
            energy = w.energy * c.estimate.energy_j
            error = w.error * c.estimate.error
            risk = w.risk * penalty
            out.append(CostTerms(latency, energy, error, risk, penalty, latency + energy + error + risk))
        return out
"#;

const PY_ELIGIBILITY: &str = r#""""Eligibility rules: an empty list means eligible."""

from wit_world import exports
from wit_world.exports.eligibility import (
    Ineligible_ExceedsLimits,
    Ineligible_UnsupportedFactors,
    Ineligible_UnsupportedNodeKind,
    LimitExcess,
)
from wit_world.imports.types import NodeKind, Target

SAMPLING = {Target.TSU, Target.GPU_SIM, Target.CPU_REF}


class Eligibility(exports.Eligibility):
    def verdict(self, node, qos, target, limits, context):
        if node.kind == NodeKind.SAMPLE:
            fits = target in SAMPLING
        elif node.kind in (NodeKind.TENSOR, NodeKind.NN):
            fits = target in (Target.CPU, Target.GPU)
        else:
            fits = target == Target.CPU
        if not fits:
            return [Ineligible_UnsupportedNodeKind(node.kind)]
        reasons = []
        p = node.program
        if target == Target.TSU and p is not None:
            if p.n_categorical + p.n_factors + p.n_constraints > 0:
                reasons.append(Ineligible_UnsupportedFactors("the TSU runs spins with pairwise couplings only"))
            if p.n_vars > limits.max_vars:
                reasons.append(Ineligible_ExceedsLimits(LimitExcess("variables", float(limits.max_vars), float(p.n_vars))))
        return reasons
"#;

const PY_GATE: &str = r#""""A policy gate: allow, hold for review, or deny each effect."""

from wit_world import exports
from wit_world.exports.gate import GateDecision_Allow, GateDecision_Deny, GateDecision_RequireReview
from wit_world.imports.types import NodeKind, Risk


class Gate(exports.Gate):
    def decide(self, request, thresholds):
        if request.risk == Risk.IRREVERSIBLE and not request.evidence:
            return GateDecision_Deny(["an irreversible effect needs evidence"])
        review = list(request.escalations)
        for e in request.evidence:
            if e.kind != NodeKind.SAMPLE:
                continue
            if e.min_ess_bulk is None or e.min_ess_bulk < thresholds.min_ess:
                review.append(f"{e.node}: ESS below {thresholds.min_ess}")
            if e.max_rhat is None or e.max_rhat > thresholds.max_rhat:
                review.append(f"{e.node}: R-hat above {thresholds.max_rhat}")
        return GateDecision_RequireReview(review) if review else GateDecision_Allow()
"#;

fn js(role: Role) -> String {
    match role {
        Role::Cost => js_cost(),
        Role::Eligibility => with_reported(JS_ELIGIBILITY),
        Role::Gate => with_reported(JS_GATE),
    }
}

/// What every JavaScript template wraps its export in (the committed
/// plugins/*-js carry it too): QuickJS guests have no `console`, and an
/// uncaught error answers with its message only, so the wrapper answers
/// with the error's name, message and stack; the host keeps the stack with
/// the fault's guest output.
const JS_REPORTED: &str = r#"// An error answers with its name, message and stack: the host shows the
// stack with the fault (QuickJS guests have no console to print it).
function reported(role) {
  for (const [name, f] of Object.entries(role)) {
    role[name] = (...args) => {
      try {
        return f.apply(role, args);
      } catch (e) {
        throw e instanceof Error ? new Error(`${e.name}: ${e.message}\n${e.stack ?? ""}`) : e;
      }
    };
  }
  return role;
}
"#;

/// `template` (a header comment, a blank line, the code) with
/// [`JS_REPORTED`] between its header and its code.
fn with_reported(template: &str) -> String {
    let (header, code) = template
        .split_once("\n\n")
        .expect("a template opens with a header comment");
    format!("{header}\n\n{JS_REPORTED}\n{code}")
}

/// The committed JavaScript cost model (plugins/cost-js): the cost template
/// is its code under the template's own header comment.
const JS_COST_EXAMPLE: &str = include_str!("../../../../plugins/cost-js/plugin.js");

const JS_COST_HEADER: &str = "// A cost model: one cost per candidate, lowest total wins.\n\
                              // Record fields arrive in camelCase; enums are their WIT names as strings.";

fn js_cost() -> String {
    let (_example_header, code) = JS_COST_EXAMPLE
        .split_once("\n\n")
        .expect("the example opens with a header comment");
    format!("{JS_COST_HEADER}\n\n{code}")
}

const JS_ELIGIBILITY: &str = r#"// Eligibility rules: an empty list means eligible.

const SAMPLING = new Set(["tsu", "gpu-sim", "cpu-ref"]);

export const eligibility = reported({
  verdict(node, qos, target, limits, context) {
    let fits;
    if (node.kind === "sample") fits = SAMPLING.has(target);
    else if (node.kind === "tensor" || node.kind === "nn") fits = target === "cpu" || target === "gpu";
    else fits = target === "cpu";
    if (!fits) return [{ tag: "unsupported-node-kind", val: node.kind }];
    const reasons = [];
    const p = node.program;
    if (target === "tsu" && p) {
      if (p.nCategorical + p.nFactors + p.nConstraints > 0n) {
        reasons.push({ tag: "unsupported-factors", val: "the TSU runs spins with pairwise couplings only" });
      }
      if (p.nVars > limits.maxVars) {
        reasons.push({ tag: "exceeds-limits", val: { what: "variables", limit: Number(limits.maxVars), requested: Number(p.nVars) } });
      }
    }
    return reasons;
  },
});
"#;

const JS_GATE: &str = r#"// A policy gate: allow, hold for review, or deny each effect.

export const gate = reported({
  decide(request, thresholds) {
    if (request.risk === "irreversible" && request.evidence.length === 0) {
      return { tag: "deny", val: ["an irreversible effect needs evidence"] };
    }
    const review = [...request.escalations];
    for (const e of request.evidence) {
      if (e.kind !== "sample") continue;
      if (e.minEssBulk == null || e.minEssBulk < thresholds.minEss) review.push(`${e.node}: ESS below ${thresholds.minEss}`);
      if (e.maxRhat == null || e.maxRhat > thresholds.maxRhat) review.push(`${e.node}: R-hat above ${thresholds.maxRhat}`);
    }
    return review.length === 0 ? { tag: "allow" } : { tag: "require-review", val: review };
  },
});
"#;
