//! `bench --suite fidelity`: simulate mode against execute mode on every
//! example graph, same seed and arrivals.

use std::process::ExitCode;

use anyhow::Result;
use comfy_table::Cell;

use thermoroute::engine::JobClass;
use thermoroute::hardware::Hardware;
use thermoroute::whatif::{FidelityRow, compare_modes};

use super::embedded_graph;
use crate::cli::{print_json, table};

/// The example graphs, compiled in so the suite measures the same work
/// wherever it runs.
const GRAPHS: [(&str, &str); 4] = [
    (
        "fraud-triage",
        include_str!("../../../../examples/graphs/fraud-triage.json"),
    ),
    (
        "posterior-batch",
        include_str!("../../../../examples/graphs/posterior-batch.json"),
    ),
    (
        "mm3-interactive",
        include_str!("../../../../examples/graphs/mm3-interactive.json"),
    ),
    (
        "mm3-batch",
        include_str!("../../../../examples/graphs/mm3-batch.json"),
    ),
];

/// Per example graph: p50, p95, mean energy and backend mix in both modes.
pub fn bench(hw: &Hardware, jobs: u64, rate_per_s: f64, json: bool) -> Result<ExitCode> {
    let mut rows: Vec<FidelityRow> = Vec::new();
    for (name, text) in GRAPHS {
        let class = JobClass {
            name: name.into(),
            graph: embedded_graph(&format!("{name}.json"), text)?,
        };
        rows.push(compare_modes(&class, hw, jobs, rate_per_s, 1)?);
    }
    if json {
        print_json(&serde_json::json!({
            "suite": "fidelity",
            "jobs": jobs,
            "rate_per_s": rate_per_s,
            "energy": "modelled (device power x busy time; no power meter)",
            "rows": rows,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let ms = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.3}"));
    let r = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.2}x"));
    let mut t = table([
        "graph",
        "p50 exec ms",
        "p50 sim ms",
        "p50 sim/exec",
        "p95 sim/exec",
        "energy sim/exec",
        "mix diff (pp)",
        "ran diff (pp)",
    ]);
    for row in &rows {
        t.add_row([
            Cell::new(&row.class),
            Cell::new(ms(row.execute.latency_p50_ms)),
            Cell::new(ms(row.simulate.latency_p50_ms)),
            Cell::new(r(row.p50_ratio)),
            Cell::new(r(row.p95_ratio)),
            Cell::new(r(row.energy_ratio)),
            Cell::new(format!("{:.1}", row.mix_difference_pp)),
            Cell::new(format!("{:.1}", row.ran_difference_pp)),
        ]);
    }
    println!(
        "simulate vs execute, {jobs} jobs at {rate_per_s} jobs/s, seed 1 (energy is modelled: power x busy time)"
    );
    println!("{t}");
    Ok(ExitCode::SUCCESS)
}
