//! `thermoroute validate` and `thermoroute schema`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use thermoroute::model::{EProgram, Graph, Infeasible, ModelError};

use super::{EXIT_INFEASIBLE, print_json, report_model_error};

#[derive(Args, Debug)]
pub struct ValidateArgs {
    /// A graph (has `nodes`) or an EProgram.
    file: PathBuf,
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub struct SchemaArgs {
    #[arg(value_enum)]
    which: Option<SchemaKind>,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum SchemaKind {
    Eprogram,
    Graph,
}

pub fn validate(args: ValidateArgs) -> Result<ExitCode> {
    let path = args.file.as_path();
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    // Malformed JSON still says what it meant to be.
    let is_graph = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => v.as_object().is_some_and(|o| o.contains_key("nodes")),
        Err(_) => text.contains("\"nodes\""),
    };
    let kind = if is_graph { "graph" } else { "eprogram" };
    let checked: Result<Option<Infeasible>, ModelError> = if is_graph {
        Graph::from_json(path, &text).map(|g| {
            g.nodes.iter().enumerate().find_map(|(i, n)| {
                n.sample().and_then(|s| {
                    s.program
                        .feasibility(&format!("$.nodes[{i}].sample.program"))
                        .err()
                })
            })
        })
    } else {
        EProgram::from_json(path, &text).map(|p| p.feasibility("$").err())
    };
    let (code, doc) = match &checked {
        Ok(None) => (
            ExitCode::SUCCESS,
            serde_json::json!({ "file": path, "kind": kind, "valid": true, "issues": [] }),
        ),
        Ok(Some(inf)) => {
            eprintln!(
                "infeasible: {}: {}: {}",
                path.display(),
                inf.constraint,
                inf.explanation
            );
            (
                ExitCode::from(EXIT_INFEASIBLE),
                serde_json::json!({ "file": path, "kind": kind, "valid": true, "infeasible": inf, "issues": [] }),
            )
        }
        Err(e) => {
            report_model_error(e);
            (
                ExitCode::FAILURE,
                serde_json::json!({ "file": path, "kind": kind, "valid": false, "issues": e.issues() }),
            )
        }
    };
    if args.json {
        print_json(&doc)?;
    } else if matches!(checked, Ok(None)) {
        println!("{}: valid {kind}", path.display());
    }
    Ok(code)
}

pub fn schema(args: SchemaArgs) -> Result<ExitCode> {
    let doc = match args.which {
        Some(SchemaKind::Eprogram) => serde_json::to_value(schemars::schema_for!(EProgram))?,
        Some(SchemaKind::Graph) => serde_json::to_value(schemars::schema_for!(Graph))?,
        None => serde_json::json!({
            "eprogram": schemars::schema_for!(EProgram),
            "graph": schemars::schema_for!(Graph),
        }),
    };
    print_json(&doc)?;
    Ok(ExitCode::SUCCESS)
}
