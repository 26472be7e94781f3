//! `thermoroute export --perfetto`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// The trace to convert.
    #[arg(long, value_name = "TRACE.jsonl")]
    perfetto: PathBuf,
    /// Where to write the JSON.
    out: PathBuf,
}

pub fn export(args: ExportArgs) -> Result<ExitCode> {
    let ExportArgs { perfetto, out } = args;
    let trace = thermoroute::trace::read_trace(&perfetto)?;
    if trace.torn_tail {
        eprintln!(
            "{}: the last line is incomplete; exported the readable prefix",
            perfetto.display()
        );
    }
    let doc = thermoroute::export::perfetto(&trace.events);
    std::fs::write(&out, serde_json::to_vec(&doc)?)
        .with_context(|| format!("writing {}", out.display()))?;
    let n = doc["traceEvents"].as_array().map_or(0, Vec::len);
    eprintln!(
        "{}: {n} events (open it in https://ui.perfetto.dev)",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
