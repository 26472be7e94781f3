//! The experiment file's form and the pure steps over it: its counts
//! against their limits and the dotted-path edits variants make. Imports
//! only the model's limits, so the fuzz targets compile it without the
//! engine (`fuzz/src/lib.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::limits::{MAX_JOBS, MAX_REPLICATIONS, MAX_RUNS, MAX_STREAMED_JOBS, MAX_VARIANTS};

/// A named set of dotted-path edits; policy variants may also name plugin
/// components (paths relative to the experiment file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    pub name: String,
    #[serde(default)]
    pub set: BTreeMap<String, toml::Value>,
    /// Cost-model plugin (policy variants only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<PathBuf>,
    /// Eligibility plugin (policy variants only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eligibility: Option<PathBuf>,
    /// Policy-gate plugin (policy variants only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<PathBuf>,
    /// Queue-order plugin (policy variants only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_order: Option<PathBuf>,
    /// Admission plugin (policy variants only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admit: Option<PathBuf>,
    /// Preemption plugin (policy variants only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preempt: Option<PathBuf>,
    /// A policy directory (cost.wasm, eligibility.wasm, gate.wasm,
    /// policy.wasm, queue-order.wasm, admit.wasm, preempt.wasm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PathBuf>,
}

impl Variant {
    pub fn has_plugins(&self) -> bool {
        self.cost.is_some()
            || self.eligibility.is_some()
            || self.gate.is_some()
            || self.queue_order.is_some()
            || self.admit.is_some()
            || self.preempt.is_some()
            || self.policy.is_some()
    }
}

/// One load level.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Load {
    #[serde(default)]
    pub name: Option<String>,
    /// Poisson arrivals per second (absent: all jobs at once).
    #[serde(default)]
    pub rate: Option<f64>,
    pub jobs: u64,
}

impl Load {
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| match self.rate {
            Some(r) => format!("{r}/s x {}", self.jobs),
            None => format!("{} at once", self.jobs),
        })
    }
}

/// The experiment file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Experiment {
    pub name: String,
    /// Workload graphs, relative to the experiment file.
    pub graphs: Vec<PathBuf>,
    #[serde(default)]
    pub mix: Vec<f64>,
    /// Base hardware description, relative to the experiment file.
    #[serde(default)]
    pub hardware: Option<PathBuf>,
    #[serde(default = "simulate")]
    pub mode: String,
    #[serde(default = "three")]
    pub replications: u64,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub baseline: Option<String>,
    pub load: Vec<Load>,
    #[serde(default)]
    pub hardware_variant: Vec<Variant>,
    #[serde(default)]
    pub policy_variant: Vec<Variant>,
    #[serde(default)]
    pub qos_variant: Vec<Variant>,
}

fn simulate() -> String {
    "simulate".into()
}

fn three() -> u64 {
    3
}

/// Every count of an experiment against its limit (`model::limits`), before
/// the cross product of runs is built.
pub fn check_counts(e: &Experiment) -> Result<(), String> {
    let over = |what: &str, value: u64, limit: u64| {
        Err(format!(
            "{what} = {value} is more than the limit of {limit}"
        ))
    };
    if e.replications > MAX_REPLICATIONS {
        return over("replications", e.replications, MAX_REPLICATIONS);
    }
    for (what, n) in [
        ("[[load]] entries", e.load.len()),
        ("[[hardware_variant]] entries", e.hardware_variant.len()),
        ("[[policy_variant]] entries", e.policy_variant.len()),
        ("[[qos_variant]] entries", e.qos_variant.len()),
    ] {
        if n > MAX_VARIANTS {
            return over(what, n as u64, MAX_VARIANTS as u64);
        }
    }
    for (i, load) in e.load.iter().enumerate() {
        // Poisson loads stream; loads arriving at once are held together.
        let limit = if load.rate.is_some() {
            MAX_STREAMED_JOBS
        } else {
            MAX_JOBS
        };
        if load.jobs > limit {
            return over(&format!("load[{i}].jobs"), load.jobs, limit);
        }
    }
    let runs = [
        e.load.len(),
        e.hardware_variant.len().max(1),
        e.policy_variant.len().max(1),
        e.qos_variant.len().max(1),
    ]
    .iter()
    .fold(e.replications, |acc, &n| acc.saturating_mul(n as u64));
    if runs > MAX_RUNS {
        return over("runs (loads x variants x replications)", runs, MAX_RUNS);
    }
    Ok(())
}

/// The variants of one kind, or one unnamed default.
pub fn with_default(v: &[Variant], name: &str) -> Vec<Variant> {
    if v.is_empty() {
        vec![Variant {
            name: name.into(),
            set: BTreeMap::new(),
            cost: None,
            eligibility: None,
            gate: None,
            queue_order: None,
            admit: None,
            preempt: None,
            policy: None,
        }]
    } else {
        v.to_vec()
    }
}

/// Sets `path` (dotted) in a TOML document, creating tables on the way.
fn set_toml(doc: &mut toml::Value, path: &str, value: toml::Value) -> Result<(), String> {
    let mut cur = doc;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let table = cur
            .as_table_mut()
            .ok_or_else(|| format!("{path}: {} is not a table", parts[..i].join(".")))?;
        if i + 1 == parts.len() {
            table.insert(part.to_string(), value);
            return Ok(());
        }
        cur = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    }
    Ok(())
}

fn set_json(doc: &mut serde_json::Value, path: &str, value: serde_json::Value) {
    let mut cur = doc;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = serde_json::json!({});
        }
        if i + 1 == parts.len() {
            cur[*part] = value;
            return;
        }
        cur = &mut cur[*part];
    }
}

/// The hardware TOML of a run: `base` with each variant's edits in order,
/// or the variant whose edit does not apply and why.
pub fn hardware_text(
    base: &toml::Table,
    variants: &[&Variant],
) -> Result<String, (String, String)> {
    let mut hw = toml::Value::Table(base.clone());
    for v in variants {
        for (path, value) in &v.set {
            set_toml(&mut hw, path, value.clone()).map_err(|reason| (v.name.clone(), reason))?;
        }
    }
    toml::to_string(&hw).map_err(|e| {
        let name = variants.last().map_or(String::new(), |v| v.name.clone());
        (name, format!("the edited hardware is not TOML: {e}"))
    })
}

/// A graph document with a QoS variant's edits applied to its `qos`.
pub fn graph_with_qos(graph: &serde_json::Value, qos: &Variant) -> serde_json::Value {
    let mut g = graph.clone();
    if !g.is_object() {
        // Not a graph at all: parsing it says so.
        return g;
    }
    for (path, value) in &qos.set {
        // A TOML value always has a JSON form (dates become strings).
        let json = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        set_json(&mut g["qos"], path, json);
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qos_variant(set: &str) -> Variant {
        toml::from_str(&format!("name = \"q\"\nset = {{ {set} }}\n")).unwrap()
    }

    #[test]
    fn qos_edits_reach_only_an_object_graph() {
        let v = qos_variant("\"latency_ms.p95\" = 20");
        let g = graph_with_qos(&serde_json::json!({"nodes": []}), &v);
        assert_eq!(g["qos"]["latency_ms"]["p95"], 20);
        // A graph document that is not an object used to panic on `g["qos"]`;
        // it is left for graph parsing to reject.
        for doc in [
            serde_json::json!([1, 2]),
            serde_json::json!("x"),
            serde_json::json!(null),
        ] {
            assert_eq!(graph_with_qos(&doc, &v), doc);
        }
    }

    #[test]
    fn hardware_edits_name_the_variant_that_cannot_apply() {
        let base: toml::Table = toml::from_str("cpu = 3\n").unwrap();
        let v = qos_variant("\"cpu.cores\" = 2");
        let (variant, reason) = hardware_text(&base, &[&v]).unwrap_err();
        assert_eq!(variant, "q");
        assert!(reason.contains("cpu is not a table"), "{reason}");
        let base: toml::Table = toml::from_str("[cpu]\ncores = 3\n").unwrap();
        let text = hardware_text(&base, &[&v]).unwrap();
        assert!(text.contains("cores = 2"), "{text}");
    }

    #[test]
    fn counts_past_their_limits_name_limit_and_value() {
        let e: Experiment = toml::from_str(
            "name = \"x\"\ngraphs = [\"g.json\"]\nreplications = 4294967296\n[[load]]\njobs = 1\n",
        )
        .unwrap();
        assert_eq!(
            check_counts(&e).unwrap_err(),
            format!("replications = 4294967296 is more than the limit of {MAX_REPLICATIONS}")
        );
    }
}
