//! `bench --suite plugins`: routing decisions/s with cost-model plugins
//! against the native cost model, timed in thread CPU time.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Result;

use thermoroute::engine::{Arrivals, Engine, EngineConfig, JobClass, Mode};
use thermoroute::hardware::Hardware;
use thermoroute::perf::PerfTables;
use thermoroute::plugin::{LoadedPlugin, PluginCost, Runtime, WitVersion, v0_2};
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
        let t = CpuClock::now();
        engine.run()?;
        let seconds = t.elapsed_s();
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
            "native cost model: {:.0} k decisions/s ({native_decisions} decisions, {jobs} fraud-triage jobs, simulate mode; every time here is this thread's CPU time, so other load on the machine does not count)",
            native_rate / 1e3
        );
    }
    for file in &files {
        let cache = tempfile::tempdir()?;
        let cold = Runtime::new(Some(cache.path().to_path_buf()))?;
        let compiled = cold.load(file)?;
        let cached = Runtime::new(Some(cache.path().to_path_buf()))?.load(file)?;
        let mut instance = cached.instance();
        let t = CpuClock::now();
        instance.instantiate()?;
        let first_us = t.elapsed_s() * 1e6;
        // The best of several batches: what an instantiation costs when the
        // machine is not busy with something else.
        let batch: u32 = if compiled.bytes > 1 << 20 { 5 } else { 200 };
        let mut warm_us = f64::INFINITY;
        for _ in 0..10 {
            let t = CpuClock::now();
            for _ in 0..batch {
                instance.instantiate()?;
            }
            warm_us = warm_us.min(t.elapsed_s() * 1e6 / f64::from(batch));
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
        let call = (cached.version == Some(WitVersion::V0_2))
            .then(|| score_call_us(&cached))
            .transpose()?;
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
            if let Some((fast, derived)) = call {
                eprintln!(
                    "  one score call (4 candidates, 4 devices): {fast:.2} µs; with wasmtime's derived lowering {derived:.2} µs (best of {CALL_BATCHES} batches of {CALL_BATCH})"
                );
            }
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
            "score_call_us": call.map(|c| c.0),
            "score_call_derived_us": call.map(|c| c.1),
        }));
    }
    if json {
        print_json(&rows)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// This thread's CPU time: what the timed work itself cost, not counting
/// the time other processes on a shared machine held the cores.
struct CpuClock(f64);

impl CpuClock {
    fn seconds() -> f64 {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
        t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
    }

    fn now() -> CpuClock {
        CpuClock(Self::seconds())
    }

    fn elapsed_s(&self) -> f64 {
        Self::seconds() - self.0
    }
}

/// Batches and calls per batch of the direct `score` timing.
const CALL_BATCHES: usize = 20;
/// Calls per batch.
const CALL_BATCH: u32 = 2000;

/// One 0.2 `score` call on a warm instance, with this host's lowering and
/// with wasmtime's derived one: the best batch's mean, in µs. What a
/// decision pays at the plugin boundary, without the engine around it.
fn score_call_us(plugin: &Arc<LoadedPlugin>) -> Result<(f64, f64)> {
    use v0_2::cost_model::{Candidate, Decision, Estimate, RiskPenalties, Weights};
    use v0_2::types::{
        BudgetShare, DeviceState, Health, JobContext, Learned, NodeKind, NodeSummary, Priority,
        ProgramSummary, Qos, Risk, Target,
    };
    let targets = [Target::Cpu, Target::Gpu, Target::Tsu, Target::GpuSim];
    let decision = Decision {
        node: NodeSummary {
            kind: NodeKind::Sample,
            class: "sample:ising:2^6".into(),
            flops: 0.0,
            bytes: 4096.0,
            program: Some(ProgramSummary {
                n_vars: 64,
                n_spins: 64,
                n_categorical: 0,
                n_factors: 112,
                n_constraints: 0,
                n_edges: 112,
                n_clamped: 0,
                runtime_conditioning: false,
                chains: 4,
                samples: 1000,
                sweeps_per_chain: 1100,
                updates: 281_600.0,
            }),
        },
        node_id: "posterior".into(),
        qos: Qos {
            latency_p50_ms: Some(20.0),
            latency_p95_ms: Some(50.0),
            energy_j: None,
            energy_relative: Some(0.5),
            energy_budget_j: Some(1.2),
            max_error: Some(0.05),
            risk: Risk::Reversible,
            priority: Priority::Interactive,
        },
        job: JobContext {
            id: 42,
            class: "fraud-triage".into(),
            arrival_ms: 100.0,
            now_ms: 101.5,
            energy_spent_j: 0.1,
            energy_remaining_j: Some(1.1),
        },
        share: BudgetShare {
            deadline_ms: Some(112.0),
            latency_ms: Some(10.0),
            energy_j: Some(0.4),
            timeout_ms: Some(60.0),
        },
        weights: Weights {
            latency: 1.0,
            energy: 0.5,
            error: 100.0,
            risk: 1.0,
        },
        penalties: RiskPenalties {
            tsu_irreversible: 1000.0,
            gpu_sim_irreversible: 10.0,
        },
        devices: targets
            .iter()
            .map(|&target| DeviceState {
                target,
                queue_depth: 2,
                running: 1,
                room: 30,
                health: Health::Ok,
                learned: Some(Learned {
                    count: 100,
                    mean_ms: 3.0,
                    p95_ms: 7.5,
                }),
            })
            .collect(),
    };
    let candidates: Vec<Candidate> = targets
        .iter()
        .map(|&target| Candidate {
            target,
            estimate: Estimate {
                latency_p50_ms: 3.0,
                latency_p95_ms: 7.5,
                queue_wait_ms: 0.5,
                energy_j: 0.02,
                error: 0.01,
            },
        })
        .collect();
    let mut instance = plugin.instance();
    let mut best = |fast: bool| -> Result<f64> {
        let mut best = f64::INFINITY;
        for _ in 0..CALL_BATCHES {
            let t = CpuClock::now();
            for _ in 0..CALL_BATCH {
                let out = if fast {
                    instance.score_v2(&decision, &candidates)
                } else {
                    instance.score_v2_derived(&decision, &candidates)
                };
                std::hint::black_box(out.map_err(|f| anyhow::anyhow!("score: {f}"))?);
            }
            best = best.min(t.elapsed_s() * 1e6 / f64::from(CALL_BATCH));
        }
        Ok(best)
    };
    let derived = best(false)?;
    let fast = best(true)?;
    Ok((fast, derived))
}
