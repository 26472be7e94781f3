//! The experiment file, its variants, and the cross product of runs.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use super::file::{Experiment, Load, Variant};
use super::file::{check_counts, graph_with_qos, hardware_text, with_default};
use super::{WhatifError, file_error};
use crate::engine::JobClass;
use crate::hardware::Hardware;
use crate::inputs::{PluginFiles, load_graph_document};
use crate::model::Graph;
use crate::policy::Policy;

/// The level of each factor of a run or variant, by the experiment's own
/// names: the columns of `runs.csv` and `results.csv`. A factor the
/// experiment does not vary reads `native` (policy), `graph` (QoS as the
/// graph files set it) or the hardware file's stem (`default` without one).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Factors {
    pub load: String,
    pub hardware: String,
    pub policy: String,
    pub qos: String,
}

/// One run of the cross product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub index: usize,
    /// The load level and each factor the experiment varies, joined by ` | `.
    pub variant: String,
    #[serde(default)]
    pub factors: Factors,
    /// The variant without its load: one line of a latency-vs-load plot.
    #[serde(default)]
    pub series: String,
    /// Arrival rate of the load level (jobs/s), when Poisson.
    #[serde(default)]
    pub load_rate: Option<f64>,
    pub load: usize,
    pub hardware: usize,
    pub policy: usize,
    pub qos: usize,
    pub replication: u64,
}

/// A loaded, checked experiment ready to run.
#[derive(Debug)]
pub struct Prepared {
    pub experiment: Experiment,
    pub file: PathBuf,
    base_hardware: toml::Table,
    graphs: Vec<serde_json::Value>,
    /// Measured service models and biases applied to every hardware
    /// variant: what was measured stays measured, the TSU follows its chip.
    pub calibration: Option<crate::calibration::Calibration>,
}

impl Prepared {
    pub fn load(file: &Path) -> Result<Self, WhatifError> {
        let text = std::fs::read_to_string(file).map_err(|e| file_error(file, e.to_string()))?;
        let experiment: Experiment = toml::from_str(&text)
            .map_err(|e| file_error(file, e.to_string().trim().to_string()))?;
        let dir = file.parent().unwrap_or(Path::new("."));
        let base_hardware = match &experiment.hardware {
            Some(h) => {
                let p = dir.join(h);
                let t = std::fs::read_to_string(&p).map_err(|e| file_error(&p, e.to_string()))?;
                toml::from_str(&t).map_err(|e| file_error(&p, e.to_string()))?
            }
            None => toml::Table::new(),
        };
        let mut graphs = Vec::new();
        for g in &experiment.graphs {
            let p = dir.join(g);
            graphs.push(load_graph_document(&p).map_err(|e| file_error(&p, e.to_string()))?);
        }
        if experiment.graphs.is_empty() || experiment.load.is_empty() {
            return Err(file_error(
                file,
                "needs at least one graph and one [[load]]",
            ));
        }
        if !matches!(experiment.mode.as_str(), "simulate" | "execute") {
            return Err(file_error(
                file,
                format!(
                    "mode = {:?}: expected \"simulate\" or \"execute\"",
                    experiment.mode
                ),
            ));
        }
        if experiment.replications == 0 {
            return Err(file_error(file, "replications must be at least 1"));
        }
        check_counts(&experiment).map_err(|reason| file_error(file, reason))?;
        for v in experiment
            .hardware_variant
            .iter()
            .chain(&experiment.qos_variant)
        {
            if v.has_plugins() {
                return Err(WhatifError::Variant {
                    variant: v.name.clone(),
                    reason:
                        "plugins (cost, eligibility, gate, queue_order, admit, preempt, policy) belong in [[policy_variant]]"
                            .into(),
                });
            }
        }
        let mut experiment = experiment;
        for v in &mut experiment.policy_variant {
            build_plugin_dirs(v, dir)?;
        }
        let prepared = Prepared {
            experiment,
            file: file.into(),
            base_hardware,
            graphs,
            calibration: None,
        };
        // Build every variant once so a bad one fails before any run
        // (replications share their variant).
        for spec in prepared.runs().into_iter().filter(|r| r.replication == 0) {
            let (_, hw) = prepared.build(&spec)?;
            prepared.policy(&spec, &hw)?;
        }
        Ok(prepared)
    }

    /// The policy of a run: native defaults, with the policy variant's
    /// plugins (loaded once per process and shared across runs).
    pub(super) fn policy(&self, spec: &RunSpec, hw: &Hardware) -> Result<Policy, WhatifError> {
        let pv = &self.policy_variants()[spec.policy];
        if !pv.has_plugins() {
            return Ok(Policy::native(hw));
        }
        let dir = self.file.parent().unwrap_or(Path::new("."));
        let fail = |e: &dyn std::fmt::Display| WhatifError::Variant {
            variant: pv.name.clone(),
            reason: e.to_string(),
        };
        let in_dir = |p: &Option<PathBuf>| p.as_ref().map(|p| dir.join(p));
        let (policy, cost, eligibility, gate) = (
            in_dir(&pv.policy),
            in_dir(&pv.cost),
            in_dir(&pv.eligibility),
            in_dir(&pv.gate),
        );
        let (queue_order, admit, preempt) = (
            in_dir(&pv.queue_order),
            in_dir(&pv.admit),
            in_dir(&pv.preempt),
        );
        let files = PluginFiles {
            policy: policy.as_deref(),
            cost: cost.as_deref(),
            eligibility: eligibility.as_deref(),
            gate: gate.as_deref(),
            queue_order: queue_order.as_deref(),
            admit: admit.as_deref(),
            preempt: preempt.as_deref(),
        };
        let set = files.plugin_set().map_err(|e| fail(&e))?;
        set.policy(hw, None).map_err(|e| fail(&e))
    }

    fn hardware_variants(&self) -> Vec<Variant> {
        let base = match &self.experiment.hardware {
            Some(h) => h
                .file_stem()
                .map_or("default".into(), |s| s.to_string_lossy().into_owned()),
            None => "default".into(),
        };
        with_default(&self.experiment.hardware_variant, &base)
    }

    fn policy_variants(&self) -> Vec<Variant> {
        with_default(&self.experiment.policy_variant, "native")
    }

    fn qos_variants(&self) -> Vec<Variant> {
        with_default(&self.experiment.qos_variant, "graph")
    }

    /// Every run of the cross product, in a fixed order.
    pub fn runs(&self) -> Vec<RunSpec> {
        let (h, p, q) = (
            self.hardware_variants(),
            self.policy_variants(),
            self.qos_variants(),
        );
        let e = &self.experiment;
        let mut runs = Vec::new();
        for (li, load) in e.load.iter().enumerate() {
            for (hi, hv) in h.iter().enumerate() {
                for (pi, pv) in p.iter().enumerate() {
                    for (qi, qv) in q.iter().enumerate() {
                        // Name only what the experiment varies.
                        let varied: Vec<&str> = [
                            (!e.hardware_variant.is_empty()).then_some(hv.name.as_str()),
                            (!e.policy_variant.is_empty()).then_some(pv.name.as_str()),
                            (!e.qos_variant.is_empty()).then_some(qv.name.as_str()),
                        ]
                        .into_iter()
                        .flatten()
                        .collect();
                        let label = load.label();
                        let series = if varied.is_empty() {
                            e.name.clone()
                        } else {
                            varied.join(" | ")
                        };
                        let variant = std::iter::once(label.as_str())
                            .chain(varied.iter().copied())
                            .collect::<Vec<_>>()
                            .join(" | ");
                        for r in 0..e.replications {
                            runs.push(RunSpec {
                                index: runs.len(),
                                variant: variant.clone(),
                                factors: Factors {
                                    load: label.clone(),
                                    hardware: hv.name.clone(),
                                    policy: pv.name.clone(),
                                    qos: qv.name.clone(),
                                },
                                series: series.clone(),
                                load_rate: load.rate,
                                load: li,
                                hardware: hi,
                                policy: pi,
                                qos: qi,
                                replication: r,
                            });
                        }
                    }
                }
            }
        }
        runs
    }

    pub(super) fn build(&self, spec: &RunSpec) -> Result<(Vec<JobClass>, Hardware), WhatifError> {
        let hv = &self.hardware_variants()[spec.hardware];
        let pv = &self.policy_variants()[spec.policy];
        let qv = &self.qos_variants()[spec.qos];
        let text = hardware_text(&self.base_hardware, &[hv, pv])
            .map_err(|(variant, reason)| WhatifError::Variant { variant, reason })?;
        let mut hardware = Hardware::from_toml(Path::new(&format!("variant {}", hv.name)), &text)
            .map_err(|e| WhatifError::Variant {
            variant: format!("{} / {}", hv.name, pv.name),
            reason: e.to_string(),
        })?;
        if let Some(c) = &self.calibration {
            c.apply(&mut hardware);
        }
        let mut classes = Vec::new();
        for (i, g) in self.graphs.iter().enumerate() {
            let g = graph_with_qos(g, qv);
            let graph =
                Graph::from_json(&self.experiment.graphs[i], &g.to_string()).map_err(|e| {
                    WhatifError::Variant {
                        variant: qv.name.clone(),
                        reason: e.to_string(),
                    }
                })?;
            classes.push(JobClass {
                name: graph.name.clone().unwrap_or_else(|| format!("class{i}")),
                graph,
            });
        }
        Ok((classes, hardware))
    }
}

/// A policy variant's `cost`, `eligibility`, `gate`, `queue_order`,
/// `admit` or `preempt` may name a plugin source directory (one with a
/// `plugin.toml`): it is built on demand, as `thermoroute plugin build`
/// would, and the built component reused while it is newer than every
/// source file.
fn build_plugin_dirs(v: &mut Variant, dir: &Path) -> Result<(), WhatifError> {
    for slot in [
        &mut v.cost,
        &mut v.eligibility,
        &mut v.gate,
        &mut v.queue_order,
        &mut v.admit,
        &mut v.preempt,
    ] {
        let Some(p) = slot else { continue };
        let full = dir.join(&*p);
        if !full.join("plugin.toml").is_file() {
            continue;
        }
        let built = crate::plugin::authoring::build_cached(&full, &|step| {
            tracing::info!(plugin = %full.display(), "building: {step}");
        })
        .map_err(|e| WhatifError::Variant {
            variant: v.name.clone(),
            reason: format!("building the plugin in {}: {e}", full.display()),
        })?;
        *slot = Some(built);
    }
    Ok(())
}
