//! Logs: the library's `tracing` events and wgpu's `log` records (through
//! `tracing-log`) pass one `EnvFilter` and go to stderr, or to `--log FILE`.
//! Stdout stays the command's output (`--json` documents included).

use std::fs::File;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::util::SubscriberInitExt;

/// The flags every command takes.
#[derive(clap::Args, Debug, Default)]
pub struct LogArgs {
    /// More log output on stderr: -v info, -vv debug (why each node went
    /// where it did), -vvv trace. Without it `RUST_LOG` decides (e.g.
    /// `RUST_LOG=thermoroute=debug`); by default only thermoroute's warnings.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// No progress bars, and warnings only in the log (overrides `RUST_LOG`).
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Write the log to FILE instead of stderr (the terminal UI logs nowhere
    /// without it).
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,
}

static QUIET: AtomicBool = AtomicBool::new(false);

/// Whether `-q` was given: progress bars stay hidden.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// What the flags and `RUST_LOG` (`env`) ask for: `-q` and the default
/// thermoroute's warnings only (wgpu's backend probes log expected failures
/// as errors, e.g. EGL without a DRI driver while Vulkan serves); `-v`..
/// more from thermoroute and warnings from the rest; otherwise `RUST_LOG`,
/// where naga's multi-line shader-validation dumps stay at info unless it
/// names naga.
pub fn directives(args: &LogArgs, env: Option<&str>) -> String {
    match (args.quiet, args.verbose) {
        (true, _) => "thermoroute=warn".into(),
        (false, 0) => match env.map(str::trim) {
            Some(env) if !env.is_empty() && env.contains("naga") => env.into(),
            Some(env) if !env.is_empty() => format!("{env},naga=info"),
            _ => "thermoroute=warn".into(),
        },
        (false, 1) => "warn,thermoroute=info".into(),
        (false, 2) => "warn,thermoroute=debug".into(),
        (false, 3) => "warn,thermoroute=trace".into(),
        _ => "trace".into(),
    }
}

/// The filter of [`directives`]; a directive that does not parse is skipped.
pub fn filter(args: &LogArgs, env: Option<&str>) -> EnvFilter {
    EnvFilter::builder().parse_lossy(directives(args, env))
}

/// Installs the subscriber: to `--log FILE` when given, else to stderr
/// unless `screen` (a terminal UI owns it; then nothing is logged).
pub fn init(args: &LogArgs, screen: bool) -> Result<()> {
    QUIET.store(args.quiet, Ordering::Relaxed);
    let filter = filter(args, std::env::var("RUST_LOG").ok().as_deref());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // `try_init` also routes `log` records (wgpu's) through `tracing-log`.
    let installed = match &args.log {
        Some(path) => {
            let file = File::create(path)
                .with_context(|| format!("cannot create the log file {}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .finish()
                .try_init()
        }
        None if screen => return Ok(()),
        None => builder
            .without_time()
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .finish()
            .try_init(),
    };
    installed.context("cannot install the logger")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::level_filters::LevelFilter;

    fn args(verbose: u8, quiet: bool) -> LogArgs {
        LogArgs {
            verbose,
            quiet,
            log: None,
        }
    }

    fn max(f: EnvFilter) -> Option<LevelFilter> {
        f.max_level_hint()
    }

    #[test]
    fn flags_and_rust_log_choose_the_level() {
        assert_eq!(max(filter(&args(0, false), None)), Some(LevelFilter::WARN));
        assert_eq!(directives(&args(0, false), None), "thermoroute=warn");
        assert_eq!(
            directives(&args(0, false), Some("debug")),
            "debug,naga=info"
        );
        assert_eq!(
            directives(&args(0, false), Some("naga=trace")),
            "naga=trace"
        );
        assert_eq!(
            max(filter(&args(0, false), Some("thermoroute=debug"))),
            Some(LevelFilter::DEBUG)
        );
        assert_eq!(
            max(filter(&args(0, false), Some("  "))),
            Some(LevelFilter::WARN)
        );
        // -q wins over RUST_LOG; -v over RUST_LOG too.
        assert_eq!(
            max(filter(&args(0, true), Some("trace"))),
            Some(LevelFilter::WARN)
        );
        assert_eq!(
            max(filter(&args(1, false), Some("trace"))),
            Some(LevelFilter::INFO)
        );
        assert_eq!(max(filter(&args(2, false), None)), Some(LevelFilter::DEBUG));
        assert_eq!(max(filter(&args(3, false), None)), Some(LevelFilter::TRACE));
        assert_eq!(max(filter(&args(4, false), None)), Some(LevelFilter::TRACE));
    }
}
