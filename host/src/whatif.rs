//! What-if experiments: the cross product of load levels, hardware variants,
//! policy variants and QoS variants, replicated with seeds, each run in the
//! engine (simulate mode by default); per-variant means with 95% confidence
//! intervals, best variant per metric, ratios to a baseline.
//!
//! Variants edit documents by dotted path: hardware and policy variants set
//! fields of the hardware TOML (`"tsu.count" = 4`, `"weights.energy" = 0`),
//! QoS variants set fields of every graph's `qos` (`"latency_ms.p95" = 20`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::device::Device;
use crate::engine::{Arrivals, Engine, EngineConfig, JobClass, Mode};
use crate::hardware::Hardware;
use crate::model::Graph;
use crate::perf::PerfTables;
use crate::policy::Policy;

/// Errors of an experiment. Fatal for it; they name the file and field.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WhatifError {
    #[error("{file}: {reason}")]
    File { file: PathBuf, reason: String },
    #[error("variant {variant:?}: {reason}")]
    Variant { variant: String, reason: String },
    #[error("run {run}: {reason}")]
    Run { run: String, reason: String },
    #[error("--shard {0}: expected i/n with i < n")]
    Shard(String),
}

fn file_error(file: &Path, reason: impl Into<String>) -> WhatifError {
    WhatifError::File {
        file: file.into(),
        reason: reason.into(),
    }
}

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
    /// A policy directory (cost.wasm, eligibility.wasm, gate.wasm, policy.wasm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<PathBuf>,
}

impl Variant {
    fn has_plugins(&self) -> bool {
        self.cost.is_some()
            || self.eligibility.is_some()
            || self.gate.is_some()
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
    fn label(&self) -> String {
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

/// One run of the cross product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSpec {
    pub index: usize,
    pub variant: String,
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

/// The metrics of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub spec: RunSpec,
    pub metrics: BTreeMap<String, f64>,
}

/// The metrics, and whether lower is better.
pub const METRICS: [(&str, bool); 11] = [
    ("latency_p50_ms", true),
    ("latency_p95_ms", true),
    ("energy_per_job_j", true),
    ("expected_error", true),
    ("slo_attainment", false),
    ("rejected", true),
    ("infeasible", true),
    ("util_cpu", false),
    ("util_gpu", false),
    ("util_tsu", false),
    ("policy_faults", true),
];

/// A loaded, checked experiment ready to run.
#[derive(Debug)]
pub struct Prepared {
    pub experiment: Experiment,
    pub file: PathBuf,
    base_hardware: toml::Table,
    graphs: Vec<serde_json::Value>,
}

fn with_default(v: &[Variant], name: &str) -> Vec<Variant> {
    if v.is_empty() {
        vec![Variant {
            name: name.into(),
            set: BTreeMap::new(),
            cost: None,
            eligibility: None,
            gate: None,
            policy: None,
        }]
    } else {
        v.to_vec()
    }
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
            Graph::load(&p).map_err(|e| file_error(&p, e.to_string()))?;
            let t = std::fs::read_to_string(&p).map_err(|e| file_error(&p, e.to_string()))?;
            graphs.push(serde_json::from_str(&t).map_err(|e| file_error(&p, e.to_string()))?);
        }
        if experiment.graphs.is_empty() || experiment.load.is_empty() {
            return Err(file_error(
                file,
                "needs at least one graph and one [[load]]",
            ));
        }
        if experiment.replications == 0 {
            return Err(file_error(file, "replications must be at least 1"));
        }
        for v in experiment
            .hardware_variant
            .iter()
            .chain(&experiment.qos_variant)
        {
            if v.has_plugins() {
                return Err(WhatifError::Variant {
                    variant: v.name.clone(),
                    reason:
                        "plugins (cost, eligibility, gate, policy) belong in [[policy_variant]]"
                            .into(),
                });
            }
        }
        let prepared = Prepared {
            experiment,
            file: file.into(),
            base_hardware,
            graphs,
        };
        // Build every variant once so a bad one fails before any run.
        for spec in prepared.runs() {
            let (_, hw) = prepared.build(&spec)?;
            prepared.policy(&spec, &hw)?;
        }
        Ok(prepared)
    }

    /// The policy of a run: native defaults, with the policy variant's
    /// plugins (loaded once per process and shared across runs).
    fn policy(&self, spec: &RunSpec, hw: &Hardware) -> Result<Policy, WhatifError> {
        let pv = &self.policy_variants()[spec.policy];
        if !pv.has_plugins() {
            return Ok(Policy::native(hw));
        }
        let dir = self.file.parent().unwrap_or(Path::new("."));
        let fail = |e: &dyn std::fmt::Display| WhatifError::Variant {
            variant: pv.name.clone(),
            reason: e.to_string(),
        };
        let mut set = match &pv.policy {
            Some(d) => crate::plugin::PluginSet::from_dir(&dir.join(d)).map_err(|e| fail(&e))?,
            None => crate::plugin::PluginSet::default(),
        };
        for (slot, path) in [
            (&mut set.cost, &pv.cost),
            (&mut set.eligibility, &pv.eligibility),
            (&mut set.gate, &pv.gate),
        ] {
            if let Some(p) = path {
                *slot = Some(dir.join(p));
            }
        }
        set.policy(hw, None).map_err(|e| fail(&e))
    }

    fn hardware_variants(&self) -> Vec<Variant> {
        with_default(&self.experiment.hardware_variant, "hw")
    }

    fn policy_variants(&self) -> Vec<Variant> {
        with_default(&self.experiment.policy_variant, "native")
    }

    fn qos_variants(&self) -> Vec<Variant> {
        with_default(&self.experiment.qos_variant, "qos")
    }

    /// Every run of the cross product, in a fixed order.
    pub fn runs(&self) -> Vec<RunSpec> {
        let (h, p, q) = (
            self.hardware_variants(),
            self.policy_variants(),
            self.qos_variants(),
        );
        let mut runs = Vec::new();
        for (li, load) in self.experiment.load.iter().enumerate() {
            for (hi, hv) in h.iter().enumerate() {
                for (pi, pv) in p.iter().enumerate() {
                    for (qi, qv) in q.iter().enumerate() {
                        for r in 0..self.experiment.replications {
                            runs.push(RunSpec {
                                index: runs.len(),
                                variant: variant_name(&load.label(), &hv.name, &pv.name, &qv.name),
                                series: format!("{} | {} | {}", hv.name, pv.name, qv.name),
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

    fn build(&self, spec: &RunSpec) -> Result<(Vec<JobClass>, Hardware), WhatifError> {
        let hv = &self.hardware_variants()[spec.hardware];
        let pv = &self.policy_variants()[spec.policy];
        let qv = &self.qos_variants()[spec.qos];
        let mut hw = toml::Value::Table(self.base_hardware.clone());
        for v in [hv, pv] {
            for (path, value) in &v.set {
                set_toml(&mut hw, path, value.clone()).map_err(|reason| WhatifError::Variant {
                    variant: v.name.clone(),
                    reason,
                })?;
            }
        }
        let text = toml::to_string(&hw).expect("tables serialise");
        let hardware = Hardware::from_toml(Path::new(&format!("variant {}", hv.name)), &text)
            .map_err(|e| WhatifError::Variant {
                variant: format!("{} / {}", hv.name, pv.name),
                reason: e.to_string(),
            })?;
        let mut classes = Vec::new();
        for (i, g) in self.graphs.iter().enumerate() {
            let mut g = g.clone();
            for (path, value) in &qv.set {
                let json = serde_json::to_value(value).expect("TOML values are JSON");
                set_json(&mut g["qos"], path, json);
            }
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

    /// Runs one spec.
    pub fn run(&self, spec: &RunSpec) -> Result<RunResult, WhatifError> {
        let (classes, hw) = self.build(spec)?;
        let load = &self.experiment.load[spec.load];
        let arrivals = match load.rate {
            Some(rate_per_s) => Arrivals::Poisson {
                jobs: load.jobs,
                rate_per_s,
            },
            None => Arrivals::AtOnce { jobs: load.jobs },
        };
        let mode = if self.experiment.mode == "execute" {
            Mode::Execute
        } else {
            Mode::Simulate
        };
        let config = EngineConfig {
            mode,
            seed: self.experiment.seed.wrapping_add(spec.replication),
            arrivals,
            mix: self.experiment.mix.clone(),
            record_jobs: false,
            threads: Some(1),
            ..Default::default()
        };
        let policy = self.policy(spec, &hw)?;
        let fail = |e: &dyn std::fmt::Display| WhatifError::Run {
            run: spec.variant.clone(),
            reason: e.to_string(),
        };
        let mut engine = Engine::new(classes, hw, policy, PerfTables::default(), config)
            .map_err(|e| fail(&e))?;
        engine.run().map_err(|e| fail(&e))?;
        let r = engine.report();
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: Option<f64>| {
            if let Some(v) = v {
                m.insert(k.to_string(), v);
            }
        };
        put("latency_p50_ms", r.latency_p50_ms);
        put("latency_p95_ms", r.latency_p95_ms);
        put("energy_per_job_j", r.mean_energy_j);
        put("expected_error", r.mean_sampling_error);
        put("policy_faults", Some(r.counters.policy_faults as f64));
        put("slo_attainment", r.slo_attainment);
        put("rejected", Some(r.rejected as f64));
        put("infeasible", Some(r.infeasible as f64));
        put("util_cpu", r.utilisation[Device::Cpu]);
        put("util_gpu", r.utilisation[Device::Gpu]);
        put("util_tsu", r.utilisation[Device::Tsu]);
        Ok(RunResult {
            spec: spec.clone(),
            metrics: m,
        })
    }

    /// Runs the runs of shard `i` of `n` (all of them for 0/1) in parallel.
    pub fn run_shard(
        &self,
        shard: (usize, usize),
        progress: &(dyn Fn() + Sync),
    ) -> Result<Vec<RunResult>, WhatifError> {
        let runs: Vec<RunSpec> = self
            .runs()
            .into_iter()
            .filter(|r| r.index % shard.1 == shard.0)
            .collect();
        runs.par_iter()
            .map(|spec| {
                let r = self.run(spec);
                progress();
                r
            })
            .collect()
    }
}

fn variant_name(load: &str, hw: &str, policy: &str, qos: &str) -> String {
    format!("{load} | {hw} | {policy} | {qos}")
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

/// Mean and 95% confidence half-width of one metric of one variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub mean: f64,
    pub ci95: f64,
    pub n: usize,
}

/// One row of the results table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantResult {
    pub variant: String,
    #[serde(default)]
    pub series: String,
    #[serde(default)]
    pub load_rate: Option<f64>,
    pub metrics: BTreeMap<String, Stat>,
    /// Metrics on which this variant is the best.
    pub best: Vec<String>,
    /// Ratio of each metric's mean to the baseline's (when one is named).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vs_baseline: BTreeMap<String, f64>,
}

/// Aggregates runs (from one or many shards) into per-variant rows, in the
/// cross product's order.
pub fn aggregate(mut runs: Vec<RunResult>, baseline: Option<&str>) -> Vec<VariantResult> {
    runs.sort_by_key(|r| r.spec.index);
    let mut order: Vec<String> = Vec::new();
    let mut by_variant: BTreeMap<String, Vec<&RunResult>> = BTreeMap::new();
    for r in &runs {
        if !by_variant.contains_key(&r.spec.variant) {
            order.push(r.spec.variant.clone());
        }
        by_variant
            .entry(r.spec.variant.clone())
            .or_default()
            .push(r);
    }
    let mut rows: Vec<VariantResult> = order
        .iter()
        .map(|v| {
            let rs = &by_variant[v];
            let mut metrics = BTreeMap::new();
            for (name, _) in METRICS {
                let xs: Vec<f64> = rs
                    .iter()
                    .filter_map(|r| r.metrics.get(name).copied())
                    .collect();
                if !xs.is_empty() {
                    metrics.insert(name.to_string(), stat(&xs));
                }
            }
            VariantResult {
                variant: v.clone(),
                series: rs[0].spec.series.clone(),
                load_rate: rs[0].spec.load_rate,
                metrics,
                best: Vec::new(),
                vs_baseline: BTreeMap::new(),
            }
        })
        .collect();
    for (name, lower) in METRICS {
        let best = rows
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.metrics.get(name).map(|s| (i, s.mean)))
            .reduce(|a, b| {
                let better = if lower { b.1 < a.1 } else { b.1 > a.1 };
                if better { b } else { a }
            });
        if let Some((i, _)) = best
            && rows.len() > 1
        {
            rows[i].best.push(name.to_string());
        }
    }
    if let Some(base) = baseline
        && let Some(b) = rows.iter().find(|r| r.variant.contains(base)).cloned()
    {
        for r in &mut rows {
            for (k, s) in &r.metrics {
                if let Some(bs) = b.metrics.get(k)
                    && bs.mean != 0.0
                {
                    r.vs_baseline.insert(k.clone(), s.mean / bs.mean);
                }
            }
        }
    }
    rows
}

fn stat(xs: &[f64]) -> Stat {
    let n = xs.len();
    let mean = xs.iter().sum::<f64>() / n as f64;
    let ci95 = if n > 1 {
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
        let t = statrs::distribution::StudentsT::new(0.0, 1.0, (n - 1) as f64)
            .map(|d| statrs::distribution::ContinuousCDF::inverse_cdf(&d, 0.975))
            .unwrap_or(f64::NAN);
        t * (var / n as f64).sqrt()
    } else {
        0.0
    };
    Stat { mean, ci95, n }
}

/// Writes `runs.json`, `results.json` and `results.csv` into `dir`.
pub fn write_outputs(
    dir: &Path,
    runs: &[RunResult],
    rows: &[VariantResult],
) -> Result<(), WhatifError> {
    std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e.to_string()))?;
    let write = |name: &str, bytes: Vec<u8>| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).map_err(|e| file_error(&p, e.to_string()))
    };
    write(
        "runs.json",
        serde_json::to_vec_pretty(runs).expect("serialises"),
    )?;
    write(
        "results.json",
        serde_json::to_vec_pretty(rows).expect("serialises"),
    )?;
    let mut csv = String::from("variant");
    for (m, _) in METRICS {
        csv.push_str(&format!(",{m},{m}_ci95"));
    }
    csv.push_str(",best\n");
    for r in rows {
        csv.push_str(&format!("\"{}\"", r.variant.replace('"', "'")));
        for (m, _) in METRICS {
            match r.metrics.get(m) {
                Some(s) => csv.push_str(&format!(",{},{}", s.mean, s.ci95)),
                None => csv.push_str(",,"),
            }
        }
        csv.push_str(&format!(",\"{}\"\n", r.best.join(" ")));
    }
    write("results.csv", csv.into_bytes())
}

/// Reads the `runs.json` of shard output directories.
pub fn read_runs(dirs: &[PathBuf]) -> Result<Vec<RunResult>, WhatifError> {
    let mut all = Vec::new();
    for d in dirs {
        let p = d.join("runs.json");
        let text = std::fs::read_to_string(&p).map_err(|e| file_error(&p, e.to_string()))?;
        let runs: Vec<RunResult> =
            serde_json::from_str(&text).map_err(|e| file_error(&p, e.to_string()))?;
        all.extend(runs);
    }
    all.sort_by_key(|r| r.spec.index);
    all.dedup_by_key(|r| r.spec.index);
    Ok(all)
}

/// Parses `i/n`.
pub fn parse_shard(s: &str) -> Result<(usize, usize), WhatifError> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| WhatifError::Shard(s.into()))?;
    let (i, n): (usize, usize) = (
        i.trim().parse().map_err(|_| WhatifError::Shard(s.into()))?,
        n.trim().parse().map_err(|_| WhatifError::Shard(s.into()))?,
    );
    if n == 0 || i >= n {
        return Err(WhatifError::Shard(s.into()));
    }
    Ok((i, n))
}

/// Indices of the rows on the energy / p95-latency Pareto front (no other
/// row is at least as good on both and better on one).
pub fn pareto_front(points: &[(f64, f64)]) -> Vec<usize> {
    (0..points.len())
        .filter(|&i| {
            let (e, l) = points[i];
            !points
                .iter()
                .enumerate()
                .any(|(j, &(e2, l2))| j != i && e2 <= e && l2 <= l && (e2 < e || l2 < l))
        })
        .collect()
}

/// Writes `latency_vs_load.svg`, `energy_vs_p95.svg` and `utilisation.svg`.
pub fn plot(dir: &Path, rows: &[VariantResult]) -> Result<Vec<PathBuf>, WhatifError> {
    use plotters::prelude::*;
    let err = |file: &Path, e: &dyn std::fmt::Display| file_error(file, e.to_string());
    let palette = |i: usize| Palette99::pick(i).to_rgba();
    let metric = |r: &VariantResult, m: &str| r.metrics.get(m).map(|s| s.mean);
    let mut written = Vec::new();

    // Latency vs load, one line per series.
    let file = dir.join("latency_vs_load.svg");
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for (k, r) in rows.iter().enumerate() {
        let x = r.load_rate.unwrap_or(k as f64);
        let Some(y) = metric(r, "latency_p95_ms") else {
            continue;
        };
        match series.iter_mut().find(|(s, _)| *s == r.series) {
            Some((_, pts)) => pts.push((x, y)),
            None => series.push((r.series.clone(), vec![(x, y)])),
        }
    }
    {
        let (xs, ys): (Vec<f64>, Vec<f64>) =
            series.iter().flat_map(|(_, p)| p.iter().copied()).unzip();
        let root = SVGBackend::new(&file, (900, 540)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&file, &e))?;
        let (x0, x1) = bounds(&xs);
        let (_, y1) = bounds(&ys);
        let mut chart = ChartBuilder::on(&root)
            .caption("p95 latency vs load", ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, 0.0..y1)
            .map_err(|e| err(&file, &e))?;
        chart
            .configure_mesh()
            .x_desc("arrival rate (jobs/s)")
            .y_desc("p95 latency (ms)")
            .draw()
            .map_err(|e| err(&file, &e))?;
        for (i, (name, mut pts)) in series.clone().into_iter().enumerate() {
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            let colour = palette(i);
            chart
                .draw_series(LineSeries::new(pts.clone(), colour.stroke_width(2)))
                .map_err(|e| err(&file, &e))?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], colour));
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, colour.filled())))
                .map_err(|e| err(&file, &e))?;
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()
            .map_err(|e| err(&file, &e))?;
        root.present().map_err(|e| err(&file, &e))?;
    }
    written.push(file);

    // Energy per job vs p95 latency, the Pareto front joined.
    let file = dir.join("energy_vs_p95.svg");
    let points: Vec<(usize, (f64, f64))> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            Some((
                i,
                (metric(r, "energy_per_job_j")?, metric(r, "latency_p95_ms")?),
            ))
        })
        .collect();
    {
        let pts: Vec<(f64, f64)> = points.iter().map(|p| p.1).collect();
        let front = pareto_front(&pts);
        let (xs, ys): (Vec<f64>, Vec<f64>) = pts.iter().copied().unzip();
        let root = SVGBackend::new(&file, (900, 540)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&file, &e))?;
        let (x0, x1) = bounds(&xs);
        let (y0, y1) = bounds(&ys);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "energy per job vs p95 latency (Pareto front in red)",
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(|e| err(&file, &e))?;
        chart
            .configure_mesh()
            .x_desc("energy per job (J)")
            .y_desc("p95 latency (ms)")
            .draw()
            .map_err(|e| err(&file, &e))?;
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))
            .map_err(|e| err(&file, &e))?;
        let mut front_pts: Vec<(f64, f64)> = front.iter().map(|&i| pts[i]).collect();
        front_pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(front_pts.clone(), RED.stroke_width(2)))
            .map_err(|e| err(&file, &e))?;
        chart
            .draw_series(front.iter().map(|&i| {
                Text::new(
                    rows[points[i].0].variant.clone(),
                    pts[i],
                    ("sans-serif", 11).into_font().color(&RED),
                )
            }))
            .map_err(|e| err(&file, &e))?;
        root.present().map_err(|e| err(&file, &e))?;
    }
    written.push(file);

    // Utilisation per backend, grouped bars per variant.
    let file = dir.join("utilisation.svg");
    {
        let devices = ["util_cpu", "util_gpu", "util_tsu"];
        let root =
            SVGBackend::new(&file, (900, 60 + 28 * rows.len().max(1) as u32)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&file, &e))?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "utilisation per backend (cpu, gpu, tsu)",
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(20)
            .build_cartesian_2d(0.0..1.0f64, 0.0..rows.len().max(1) as f64)
            .map_err(|e| err(&file, &e))?;
        chart
            .configure_mesh()
            .x_desc("busy fraction")
            .disable_y_mesh()
            .draw()
            .map_err(|e| err(&file, &e))?;
        for (i, r) in rows.iter().enumerate() {
            for (d, m) in devices.iter().enumerate() {
                let Some(u) = metric(r, m) else { continue };
                let y0 = i as f64 + 0.1 + d as f64 * 0.25;
                chart
                    .draw_series(std::iter::once(Rectangle::new(
                        [(0.0, y0), (u.clamp(0.0, 1.0), y0 + 0.22)],
                        palette(d).filled(),
                    )))
                    .map_err(|e| err(&file, &e))?;
            }
            chart
                .draw_series(std::iter::once(Text::new(
                    r.variant.clone(),
                    (0.5, i as f64 + 0.5),
                    ("sans-serif", 11).into_font(),
                )))
                .map_err(|e| err(&file, &e))?;
        }
        root.present().map_err(|e| err(&file, &e))?;
    }
    written.push(file);
    Ok(written)
}

/// A padded, non-empty plotting range.
fn bounds(xs: &[f64]) -> (f64, f64) {
    let lo = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() || !hi.is_finite() {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.05).max(1e-9);
    (
        (lo - pad).max(if lo >= 0.0 { 0.0 } else { f64::NEG_INFINITY }),
        hi + pad,
    )
}
