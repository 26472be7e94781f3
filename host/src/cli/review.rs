//! `thermoroute review`: effects held for a human's decision.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use thermoroute::review::{DEFAULT_REVIEW_FILE, ReviewQueue};

use super::{print_json, table, truncate};

#[derive(Args, Debug)]
pub struct ReviewArgs {
    /// The review queue: a SQLite database, the same file as `run --reviews`.
    /// A JSON queue of an earlier version at this path is imported once (the
    /// JSON is kept as FILE.json.bak).
    #[arg(long, value_name = "FILE", default_value = DEFAULT_REVIEW_FILE)]
    file: PathBuf,
    #[command(subcommand)]
    command: ReviewCommand,
}

#[derive(Subcommand, Debug)]
enum ReviewCommand {
    /// List held effects (pending ones, or all with --all).
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Write the whole queue as one JSON document (the format of earlier
    /// versions' queue file) to stdout or --out.
    Export {
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Approve a held effect: it is applied.
    Approve {
        id: String,
        #[arg(long)]
        by: Option<String>,
        #[arg(long)]
        note: Option<String>,
    },
    /// Deny a held effect: it is dropped.
    Deny {
        id: String,
        #[arg(long)]
        by: Option<String>,
        #[arg(long)]
        note: Option<String>,
    },
}

pub fn review(args: ReviewArgs) -> Result<ExitCode> {
    let ReviewArgs { file, command } = args;
    let mut queue = ReviewQueue::open(&file)?;
    match command {
        ReviewCommand::List { all, json } => {
            let items = if all {
                queue.items()?
            } else {
                queue.pending()?
            };
            if json {
                print_json(&items)?;
            } else if items.is_empty() {
                println!(
                    "{}: nothing {}",
                    file.display(),
                    if all { "held" } else { "pending" }
                );
            } else {
                let mut t = table([
                    "id", "status", "graph", "job", "node", "action", "risk", "why",
                ]);
                for i in &items {
                    t.add_row(vec![
                        i.id.clone(),
                        format!("{:?}", i.status).to_lowercase(),
                        i.graph.clone(),
                        i.job.to_string(),
                        i.node.clone(),
                        i.action.clone(),
                        format!("{:?}", i.risk).to_lowercase(),
                        truncate(&i.reasons.join("; "), 80),
                    ]);
                }
                println!("{t}");
            }
        }
        ReviewCommand::Export { out } => {
            let doc = queue.export()?;
            match out {
                None => print_json(&doc)?,
                Some(out) => {
                    let text = serde_json::to_string_pretty(&doc)?;
                    thermoroute::perf::write_atomically(&out, text.as_bytes())
                        .with_context(|| format!("{}: cannot write", out.display()))?;
                    eprintln!("{}: {} item(s) exported", out.display(), doc.items.len());
                }
            }
        }
        ReviewCommand::Approve { id, by, note } => {
            let item = queue.decide(&id, true, by, note)?;
            println!(
                "{}: approved; effect {:?} ({}) applied",
                item.id, item.action, item.node
            );
        }
        ReviewCommand::Deny { id, by, note } => {
            let item = queue.decide(&id, false, by, note)?;
            println!(
                "{}: denied; effect {:?} ({}) dropped",
                item.id, item.action, item.node
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
