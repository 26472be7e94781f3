//! `bench --suite plugins`: routing decisions/s with cost-model plugins
//! against the native cost model.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Result;

use thermoroute::engine::{Arrivals, Engine, EngineConfig, JobClass, Mode};
use thermoroute::hardware::Hardware;
use thermoroute::perf::PerfTables;
use thermoroute::plugin::{PluginCost, Runtime};
use thermoroute::policy::Policy;

use super::embedded_graph;
use crate::cli::print_json;

/// Default components of `bench --suite plugins`: the committed cost models
/// in each language, as `plugin build` leaves them.
const BENCH_PLUGINS: [&str; 4] = [
    "plugins/cost-rust/target/cost-rust.wasm",
    "plugins/cost-c/target/cost-c.wasm",
    "plugins/cost-python/target/cost-python.wasm",
    "plugins/cost-js/target/cost-js.wasm",
];

/// Paired native and plugin runs per plugin; the best rate of each is kept.
const ROUNDS: usize = 3;

/// Routing decisions per second in simulate mode with the native cost model
/// and with each plugin, plus compile, cache-load and instantiation times.
pub fn bench(files: &[PathBuf], jobs: u64, json: bool) -> Result<ExitCode> {
    let files: Vec<PathBuf> = if files.is_empty() {
        BENCH_PLUGINS.iter().map(PathBuf::from).collect()
    } else {
        files.to_vec()
    };
    for f in &files {
        if !f.is_file() {
            anyhow::bail!(
                "{} is missing: build it first (`thermoroute plugin build {}`), or name components with --plugin",
                f.display(),
                f.parent()
                    .and_then(Path::parent)
                    .map_or_else(|| "DIR".into(), |d| d.display().to_string())
            );
        }
    }
    let graph = embedded_graph(
        "fraud-triage.json",
        include_str!("../../../../examples/graphs/fraud-triage.json"),
    )?;
    let hw = Hardware::default();
    let simulate = |policy: Policy, jobs: u64| -> Result<(u64, f64)> {
        let mut engine = Engine::new(
            vec![JobClass {
                name: "fraud-triage".into(),
                graph: graph.clone(),
            }],
            hw.clone(),
            policy,
            PerfTables::default(),
            EngineConfig {
                mode: Mode::Simulate,
                seed: 1,
                arrivals: Arrivals::Poisson {
                    jobs,
                    rate_per_s: 200.0,
                },
                record_jobs: false,
                ..Default::default()
            },
        )?;
        let t = Instant::now();
        engine.run()?;
        let seconds = t.elapsed().as_secs_f64();
        let r = engine.report();
        Ok((r.counters.decisions, seconds))
    };
    let (native_decisions, native_s) = simulate(Policy::native(&hw), jobs)?;
    let native_rate = native_decisions as f64 / native_s;
    let mut rows = vec![serde_json::json!({
        "policy": "native",
        "decisions": native_decisions,
        "decisions_per_s": native_rate,
    })];
    if !json {
        eprintln!(
            "native cost model: {:.0} k decisions/s ({native_decisions} decisions, {jobs} fraud-triage jobs, simulate mode)",
            native_rate / 1e3
        );
    }
    for file in &files {
        let cache = tempfile::tempdir()?;
        let cold = Runtime::new(Some(cache.path().to_path_buf()))?;
        let compiled = cold.load(file)?;
        let cached = Runtime::new(Some(cache.path().to_path_buf()))?.load(file)?;
        let mut instance = cached.instance();
        let t = Instant::now();
        instance.instantiate()?;
        let first_us = t.elapsed().as_secs_f64() * 1e6;
        // The best of several batches: what an instantiation costs when the
        // machine is not busy with something else.
        let batch: u32 = if compiled.bytes > 1 << 20 { 5 } else { 200 };
        let mut warm_us = f64::INFINITY;
        for _ in 0..10 {
            let t = Instant::now();
            for _ in 0..batch {
                instance.instantiate()?;
            }
            warm_us = warm_us.min(t.elapsed().as_secs_f64() * 1e6 / f64::from(batch));
        }
        // Slow guests get fewer jobs; the rate is per decision either way.
        let plugin_jobs = if compiled.bytes > 1 << 20 {
            (jobs / 10).max(100)
        } else {
            jobs
        };
        // Native and plugin runs alternate, the best of each kept: on a
        // shared machine the difference of two single runs is mostly noise.
        let (mut rate, mut native_best, mut decisions) = (0.0_f64, 0.0_f64, 0);
        for _ in 0..ROUNDS {
            let (n, s) = simulate(Policy::native(&hw), plugin_jobs)?;
            native_best = native_best.max(n as f64 / s);
            let mut policy = Policy::native(&hw);
            policy.cost = Box::new(PluginCost::open(
                Runtime::shared()?,
                file,
                hw.policy.clone(),
                None,
            )?);
            let (d, s) = simulate(policy, plugin_jobs)?;
            rate = rate.max(d as f64 / s);
            decisions = d;
        }
        let added_us = (1.0 / rate - 1.0 / native_best) * 1e6;
        if !json {
            eprintln!(
                "{}: {:.0} k decisions/s (+{added_us:.2} µs per decision against native's {:.0} k/s, best of {ROUNDS} paired rounds); compile {:.0} ms, cache load {:.1} ms, instantiate first {first_us:.0} µs, warm {warm_us:.1} µs ({} KiB)",
                compiled.name,
                rate / 1e3,
                native_best / 1e3,
                compiled.load_time.as_secs_f64() * 1e3,
                cached.load_time.as_secs_f64() * 1e3,
                compiled.bytes / 1024
            );
        }
        rows.push(serde_json::json!({
            "policy": compiled.label(),
            "bytes": compiled.bytes,
            "decisions": decisions,
            "decisions_per_s": rate,
            "native_decisions_per_s": native_best,
            "added_us_per_decision": added_us,
            "compile_ms": compiled.load_time.as_secs_f64() * 1e3,
            "cache_load_ms": cached.load_time.as_secs_f64() * 1e3,
            "instantiate_first_us": first_us,
            "instantiate_warm_us": warm_us,
        }));
    }
    if json {
        print_json(&rows)?;
    }
    Ok(ExitCode::SUCCESS)
}
