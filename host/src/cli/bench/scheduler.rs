//! `bench --suite scheduler`: the engine in simulate mode on M/M/3.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;

use thermoroute::engine::{Arrivals, Engine, EngineConfig, JobClass, Mode};
use thermoroute::hardware::Hardware;
use thermoroute::perf::PerfTables;
use thermoroute::policy::Policy;

use super::embedded_graph;
use crate::cli::print_json;

/// Simulate-mode throughput on the M/M/3 example with two priority classes:
/// every job is one routing decision (two candidates, one eligible), one
/// admission, one service draw and one learning-table update.
pub fn bench(jobs: u64, json: bool) -> Result<ExitCode> {
    let classes = vec![
        JobClass {
            name: "mm3-interactive".into(),
            graph: embedded_graph(
                "mm3-interactive.json",
                include_str!("../../../../examples/graphs/mm3-interactive.json"),
            )?,
        },
        JobClass {
            name: "mm3-batch".into(),
            graph: embedded_graph(
                "mm3-batch.json",
                include_str!("../../../../examples/graphs/mm3-batch.json"),
            )?,
        },
    ];
    let hw = Hardware::from_toml(
        Path::new("mm3.toml"),
        include_str!("../../../../examples/hardware/mm3.toml"),
    )?;
    let mut rows = Vec::new();
    for round in 0..3 {
        let config = EngineConfig {
            mode: Mode::Simulate,
            seed: round,
            arrivals: Arrivals::Poisson {
                jobs,
                rate_per_s: 2_700.0,
            },
            mix: vec![3.0, 7.0],
            record_jobs: false,
            ..Default::default()
        };
        let policy = Policy::native(&hw);
        let start = std::time::Instant::now();
        let mut engine = Engine::new(
            classes.clone(),
            hw.clone(),
            policy,
            PerfTables::default(),
            config,
        )?;
        engine.run()?;
        let seconds = start.elapsed().as_secs_f64();
        let r = engine.report();
        let row = serde_json::json!({
            "round": round,
            "jobs": r.submitted,
            "completed": r.completed,
            "rejected": r.rejected,
            "decisions": r.counters.decisions,
            "seconds": seconds,
            "jobs_per_s": r.submitted as f64 / seconds,
            "decisions_per_s": r.counters.decisions as f64 / seconds,
            "interactive_p95_ms": r.classes[0].latency_p95_ms,
            "batch_p95_ms": r.classes[1].latency_p95_ms,
        });
        if !json {
            eprintln!(
                "M/M/3, 2 classes, {} jobs: {:.2} M jobs/s, {:.2} M decisions/s ({:.3} s); p95 interactive {:.3} ms, batch {:.3} ms",
                r.submitted,
                r.submitted as f64 / seconds / 1e6,
                r.counters.decisions as f64 / seconds / 1e6,
                seconds,
                r.classes[0].latency_p95_ms.unwrap_or(f64::NAN),
                r.classes[1].latency_p95_ms.unwrap_or(f64::NAN)
            );
        }
        rows.push(row);
    }
    if json {
        print_json(&serde_json::json!({ "benchmark": "scheduler-simulate-mm3", "results": rows }))?;
    }
    Ok(ExitCode::SUCCESS)
}
