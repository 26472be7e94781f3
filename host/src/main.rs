//! The `thermoroute` command line: parse, then hand each subcommand to its
//! module under `cli/`.

mod cli;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "thermoroute",
    version,
    about = "Route mixed compute graphs (control, tensor, NN, energy-based sampling) to CPU, GPU or TSU under QoS constraints",
    long_about = "thermoroute samples energy-based programs (EPrograms) with chromatic block Gibbs \
                  sampling, checks convergence (rank-normalised split R-hat, bulk ESS), and routes \
                  the nodes of workload graphs to CPU, GPU or TSU under QoS targets, gating every \
                  side effect on the evidence behind it.\n\n\
                  Start with `thermoroute sample examples/programs/chain.json` or \
                  `thermoroute run examples/graphs/fraud-triage.json`."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    log: cli::logging::LogArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Sample an EProgram and report marginals, diagnostics and provenance.
    ///
    /// Exit codes: 0 sampled, 1 bad input, 3 infeasible (clamps contradict a constraint).
    Sample(cli::sample::SampleArgs),
    /// What-if experiments: run the cross product of loads, hardware,
    /// policy and QoS variants (simulate mode, in parallel) and compare them
    /// with 95% confidence intervals; `whatif merge` combines shards.
    Whatif(cli::whatif::WhatifArgs),
    /// Export a trace for other tools: `--perfetto TRACE.jsonl OUT.json`
    /// writes Chrome trace-event JSON for ui.perfetto.dev (a track per device
    /// lane, queue-depth and energy counters, routing decisions as instants).
    Export(cli::export::ExportArgs),
    /// Replay a trace in the terminal UI: a timeline per device, every
    /// routing decision and why, queue and SLO health, an events log.
    /// `--follow` watches a trace a running `thermoroute run` still writes.
    /// Press ? for the keys.
    Replay(cli::tui::ReplayArgs),
    /// Interactive simulation in the terminal UI: the engine runs live and
    /// you steer it — pause, arrival rate (r/R), GPU/TSU offline (g/t), cost
    /// weights (w, </>), native vs plugin policy (p) — while routing, queues,
    /// latency and energy react. Every action is in the session's trace.
    Tui(cli::tui::TuiArgs),
    /// Policy plugins: write a template (`new`), build it into a WebAssembly
    /// component (`build`), check a component (`check`: the conformance
    /// suite) and test it with your own cases (`test --cases`).
    Plugin {
        #[command(subcommand)]
        command: cli::plugin::PluginCommand,
    },
    /// Inspect the TSU: compile a program for the chip and show the image.
    Tsu {
        #[command(subcommand)]
        command: cli::tsu::TsuCommand,
    },
    /// Measure each backend's error against exact enumeration on a suite of
    /// small programs, and write the per-backend error table `run
    /// --calibration` uses for the accuracy term.
    Calibrate(cli::calibrate::CalibrateArgs),
    /// Check an EProgram or a workload graph and list every problem with its JSON path.
    ///
    /// Exit codes: 0 valid, 1 invalid, 3 valid but infeasible.
    Validate(cli::validate::ValidateArgs),
    /// Print the JSON Schema of EProgram files, graph files, or both.
    Schema(cli::validate::SchemaArgs),
    /// Route and run jobs of workload graphs under QoS: routing, admission,
    /// budgets, gating, failure handling and learning, on a virtual clock.
    ///
    /// Each graph is a job class. `--mode execute` (default) really runs every
    /// node; `--mode simulate` models durations for fast what-if runs over
    /// millions of jobs. Effects the gate holds wait in the review queue
    /// (`thermoroute review list`).
    ///
    /// Exit codes: 0 finished (for one job: completed or rejected), 1 bad
    /// input or (one job) failed, 3 (one job) infeasible.
    Run(cli::run::RunArgs),
    /// Explain from a trace why a node of a job went where it did.
    Explain(cli::explain::ExplainArgs),
    /// Counterfactual replay: re-decide every recorded routing decision (and
    /// gate decision, where the trace records its request) under another
    /// policy, with the same candidates, estimates and context, and report
    /// the decisions that change, side by side with their cost terms, plus
    /// the fraction changed and the estimated latency, energy, error and
    /// risk deltas.
    ///
    /// Roles given (--cost, --eligibility, --gate, --policy DIR with the
    /// file names of `run --policy`) replace the recorded ones; the others
    /// keep their recorded answers, or with --native use the built-in
    /// defaults (compare a plugin trace against them). Decisions are
    /// re-made one by one on what the trace recorded: later queues are not
    /// re-simulated.
    ///
    /// Exit codes: 0 compared, 1 bad input (missing or corrupt trace, a
    /// trace with no decision, a plugin that cannot load) or the replayed
    /// policy faulted on every call of a role.
    ReplayPolicy(cli::replay_policy::ReplayPolicyArgs),
    /// List, approve or deny effects held for human review.
    Review(cli::review::ReviewArgs),
    /// Benchmarks: the Gibbs sampler on ±J lattices (default), the scheduler
    /// in simulate mode (`--suite scheduler`), the TSU simulator (`--suite
    /// tsu`), policy plugins (`--suite plugins`), the GPU sampler (`--suite gpu`).
    Bench(cli::bench::BenchArgs),
}

fn main() -> ExitCode {
    quiet_on_closed_stdout();
    cli::gpu_env::no_wayland_probe_without_wayland();
    let _runtime_dir = cli::gpu_env::private_runtime_dir_without_wayland();
    let cli = Cli::parse();
    let screen = matches!(cli.command, Command::Replay(_) | Command::Tui(_));
    if let Err(err) = cli::logging::init(&cli.log, screen) {
        eprintln!("error: {err:#}");
        return ExitCode::FAILURE;
    }
    // A bad THERMOROUTE_CPU_KERNEL is an error, not a silent fallback.
    if let Err(err) = thermoroute::sampler::CpuKernel::from_env() {
        eprintln!("error: THERMOROUTE_CPU_KERNEL: {err}");
        return ExitCode::FAILURE;
    }
    match dispatch(cli) {
        Ok(code) => code,
        Err(err) if closed_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether `err` is a write to a closed pipe (`thermoroute ... | head`).
fn closed_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || e.downcast_ref::<serde_json::Error>()
                .and_then(|j| j.io_error_kind())
                .is_some_and(|k| k == std::io::ErrorKind::BrokenPipe)
    })
}

/// `thermoroute explain ... | head` closes stdout early: end quietly with
/// status 0, as ripgrep does, instead of printing a panic (`println!`
/// panics on a closed pipe; errors returned are handled in `main`).
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
}

fn dispatch(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Sample(args) => cli::sample::sample(args),
        Command::Whatif(args) => cli::whatif::whatif(args),
        Command::Export(args) => cli::export::export(args),
        Command::Replay(args) => cli::tui::replay(args),
        Command::Tui(args) => cli::tui::tui(args),
        Command::Plugin { command } => cli::plugin::plugin(command),
        Command::Tsu { command } => cli::tsu::tsu(command),
        Command::Calibrate(args) => cli::calibrate::calibrate(args),
        Command::Validate(args) => cli::validate::validate(args),
        Command::Schema(args) => cli::validate::schema(args),
        Command::Run(args) => cli::run::run(args),
        Command::Explain(args) => cli::explain::explain(args),
        Command::ReplayPolicy(args) => cli::replay_policy::replay_policy(args),
        Command::Review(args) => cli::review::review(args),
        Command::Bench(args) => cli::bench::bench(args),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
