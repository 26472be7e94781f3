//! The subcommands of the `thermoroute` binary, one module each, and the
//! output helpers they share.

pub mod bench;
pub mod calibrate;
pub mod explain;
pub mod export;
pub mod gpu_env;
pub mod logging;
pub mod plugin;
pub mod replay_policy;
pub mod review;
pub mod run;
pub mod sample;
pub mod tsu;
pub mod tui;
pub mod validate;
pub mod whatif;

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use comfy_table::{Row, Table, presets::UTF8_FULL_CONDENSED};

use thermoroute::model::ModelError;
use thermoroute::model::limits::MAX_THREADS;

/// Exit code for a valid request whose constraints cannot be met.
pub const EXIT_INFEASIBLE: u8 = 3;

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    // Standard output is line-buffered: a pretty document of a large run has
    // hundreds of thousands of lines, so write through one large buffer.
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// `--threads N`: 1 to [`MAX_THREADS`], checked before any thread starts.
pub fn parse_threads(text: &str) -> Result<usize, String> {
    let n: usize = text
        .parse()
        .map_err(|e| format!("{text:?} is not a thread count: {e}"))?;
    if n == 0 || n > MAX_THREADS {
        return Err(format!(
            "{n} threads: give 1 to {MAX_THREADS} (the limit of worker threads)"
        ));
    }
    Ok(n)
}

/// Prints a model error to stderr, one line per problem, naming the file.
pub fn report_model_error(err: &ModelError) -> ExitCode {
    match err {
        ModelError::Invalid { file, issues } => {
            for issue in issues {
                eprintln!(
                    "error: {}: {}: {}",
                    file.display(),
                    issue.path,
                    issue.reason
                );
            }
        }
        other => eprintln!("error: {other}"),
    }
    ExitCode::FAILURE
}

/// A progress bar on stderr drawn with `template`: hidden under `-q` and
/// when stderr is not a terminal (a pipe, a file, CI logs), so it never
/// mixes into output or logs.
pub fn progress_bar(len: u64, template: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    let bar = indicatif::ProgressBar::new(len)
        .with_style(indicatif::ProgressStyle::with_template(template).expect("valid template"));
    if logging::quiet() || !std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar
}

/// An empty table in the style every subcommand prints.
pub fn table(header: impl Into<Row>) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    t.set_header(header);
    t
}

/// `x` with `digits` decimals, or `-` when absent.
pub fn fmt_opt(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(|| "-".into(), |v| format!("{v:.digits$}"))
}

/// Milliseconds with three decimals, or `-` when absent.
pub fn fmt_ms(x: Option<f64>) -> String {
    fmt_opt(x, 3)
}

/// `s` cut to `n` characters, the last one an ellipsis when cut.
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() > n {
        format!("{}…", s.chars().take(n - 1).collect::<String>())
    } else {
        s.to_string()
    }
}

/// The smallest `--trace-max`: each of its four parts must hold the header
/// and some events.
const MIN_TRACE_MAX: u64 = 64 * 1024;

/// `--trace-max SIZE`: `256MiB`, `10MB`, `1.5GiB` or plain bytes.
pub fn parse_trace_max(text: &str) -> Result<u64, String> {
    let size: bytesize::ByteSize = text.trim().parse().map_err(|e| {
        format!(
            "{text:?} is not a size: give bytes or a number with a unit, like 256MiB or 10MB ({e})"
        )
    })?;
    if size.as_u64() < MIN_TRACE_MAX {
        return Err(format!(
            "{text:?} is {} bytes; a trace needs at least {MIN_TRACE_MAX} (64KiB)",
            size.as_u64()
        ));
    }
    Ok(size.as_u64())
}
