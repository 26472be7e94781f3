//! `thermoroute plugin new | build | check | test`, and the policy flags of
//! `run` (and `replay-policy`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};

use thermoroute::hardware::Hardware;
use thermoroute::inputs::PluginFiles;
use thermoroute::plugin::authoring::{self, Lang};
use thermoroute::plugin::{
    CheckReport, PluginSet, QueueRole, Role, Runtime, UserCaseResult, conformance_under,
    read_cases, user_cases_under,
};
use thermoroute::policy::Policy;

use super::{print_json, table};

/// Policy plugins for a run: any role not given uses the native default.
#[derive(Args, Debug, Clone, Default)]
pub struct PolicyArgs {
    /// Cost-model plugin: a WebAssembly component exporting
    /// `thermoroute:policy/cost-model` (see `thermoroute plugin new`).
    #[arg(long, value_name = "PLUGIN.wasm")]
    pub cost: Option<PathBuf>,
    /// Eligibility-rules plugin (exports `eligibility`).
    #[arg(long, value_name = "PLUGIN.wasm")]
    pub eligibility: Option<PathBuf>,
    /// Policy-gate plugin (exports `gate`); a gate that fails is closed
    /// (`[gate] fail_closed` in the hardware file: deny or review).
    #[arg(long, value_name = "PLUGIN.wasm")]
    pub gate: Option<PathBuf>,
    /// Queue-order plugin (exports `queue-order@0.2.0`): the order in which
    /// waiting work starts on a device; native: interactive first, then
    /// arrival.
    #[arg(long, value_name = "PLUGIN.wasm")]
    pub queue_order: Option<PathBuf>,
    /// Admission plugin (exports `admit@0.2.0`): accepts, rejects (with a
    /// retry-after) or holds routed work, up to `[plugins] max_hold_ms`.
    #[arg(long, value_name = "PLUGIN.wasm")]
    pub admit: Option<PathBuf>,
    /// Preemption plugin (exports `preempt@0.2.0`): which running
    /// preemptible tasks an interactive arrival preempts.
    #[arg(long, value_name = "PLUGIN.wasm")]
    pub preempt: Option<PathBuf>,
    /// A policy directory holding cost.wasm, eligibility.wasm, gate.wasm,
    /// queue-order.wasm, admit.wasm, preempt.wasm and/or policy.wasm (all
    /// the roles it exports); a flag naming a role's file overrides it.
    #[arg(long, value_name = "DIR")]
    pub policy: Option<PathBuf>,
}

impl PolicyArgs {
    pub fn plugins(&self) -> Result<PluginSet> {
        let files = PluginFiles {
            policy: self.policy.as_deref(),
            cost: self.cost.as_deref(),
            eligibility: self.eligibility.as_deref(),
            gate: self.gate.as_deref(),
            queue_order: self.queue_order.as_deref(),
            admit: self.admit.as_deref(),
            preempt: self.preempt.as_deref(),
        };
        Ok(files.plugin_set()?)
    }

    /// The policy for `hw`; plugin files are watched and hot-reloaded.
    pub fn build(&self, hw: &Hardware) -> Result<Policy> {
        let set = self.plugins()?;
        Ok(set.policy(hw, Some(Duration::from_millis(250)))?)
    }
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum LangArg {
    Rust,
    Python,
    Js,
    C,
    Cpp,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum RoleArg {
    Cost,
    Eligibility,
    Gate,
    /// WIT 0.2: the order in which waiting work starts on a device.
    QueueOrder,
    /// WIT 0.2: accept, reject or hold routed work.
    Admit,
    /// WIT 0.2: running work to preempt for an interactive arrival.
    Preempt,
}

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Write a working plugin template into a new directory.
    ///
    /// Then: `thermoroute plugin build DIR`, `thermoroute plugin check
    /// DIR/target/NAME.wasm`, `thermoroute run GRAPH.json --ROLE DIR/target/NAME.wasm`.
    New {
        #[arg(long, value_enum)]
        lang: LangArg,
        #[arg(long, value_enum)]
        role: RoleArg,
        dir: PathBuf,
    },
    /// Build a plugin directory (its plugin.toml names the language and
    /// world) into DIR/target/NAME.wasm and print that path. Installs the
    /// toolchain it needs on first use: the wasm32-wasip2 Rust target,
    /// componentize-py (PyPI), jco + componentize-js (npm), or for C and
    /// C++ clang-19 with Debian's wasi-libc (apt-get; the C bindings and the
    /// component encoding are built in).
    Build { dir: PathBuf },
    /// Load a component, report the world it implements and what the
    /// sandbox grants each import, run the conformance suite and time it.
    ///
    /// Exit codes: 0 conformant, 1 fails a case, exports no supported
    /// world, or cannot be loaded.
    Check {
        file: PathBuf,
        #[arg(long)]
        json: bool,
        /// Hardware file whose `[plugins]` ceilings and policy knobs apply.
        #[arg(long)]
        hardware: Option<PathBuf>,
    },
    /// Run the conformance suite, then your own cases, on a component.
    ///
    /// CASES.jsonl holds one JSON object a line (blank lines and lines
    /// starting with # are skipped):
    ///
    ///   {"role": "cost" | "eligibility" | "gate", "name": "…", "input": {…}, "expect": {…}}
    ///
    /// `input` takes the shape of the WIT record the role is given, field
    /// names in snake_case; fields left out default (weights, limits and
    /// gate thresholds come from --hardware or the defaults).
    ///
    /// cost: input {"node": {"kind", "class", "flops", "bytes", "program"},
    /// "qos": {…}, "weights": {…}, "candidates": [{"target", "estimate":
    /// {"latency_p50_ms", "latency_p95_ms", "queue_wait_ms", "energy_j",
    /// "error"}}]}; expect any of {"best": TARGET, "order": [TARGET, …]
    /// (cheapest first, a prefix), "terms": {TARGET: {"total", "latency",
    /// "energy", "error", "risk", "risk_penalty"}}, "tolerance": 1e-9}.
    ///
    /// eligibility: input {"node": {…}, "qos": {…}, "target": TARGET,
    /// "limits": {"max_vars", "max_sweeps", "runtime_bias"}}; expect any of
    /// {"eligible": BOOL, "reasons": ["unsupported_node_kind", …] (the
    /// kinds, any order), "reason_contains": TEXT}.
    ///
    /// gate: input {"node", "action", "risk", "priority", "evidence":
    /// [{"node", "kind", "backend", "max_rhat", "min_ess_bulk", …}],
    /// "escalations": [TEXT]}; expect any of {"decision": "allow" | "hold"
    /// | "deny", "reasons_contain": TEXT}. The gate's own answer is tested,
    /// before the host floor.
    ///
    /// Any role: expect {"fault": true} or {"fault": KIND} for a call that
    /// must fault. TARGET is cpu, gpu, tsu, gpu-sim or cpu-ref. A failing
    /// case prints its input, the expected and the actual answer (and what
    /// the guest printed, when the fault carries it).
    ///
    /// Exit codes: 0 conformant and every case passed, 1 a conformance
    /// case or a user case failed, or a file cannot be read (a malformed
    /// line is named with its line number and field).
    Test {
        file: PathBuf,
        /// The cases file (JSON Lines, see above).
        #[arg(long, value_name = "CASES.jsonl")]
        cases: PathBuf,
        #[arg(long)]
        json: bool,
        /// Hardware file whose `[plugins]` ceilings and policy knobs apply.
        #[arg(long)]
        hardware: Option<PathBuf>,
    },
}

pub fn plugin(command: PluginCommand) -> Result<ExitCode> {
    match command {
        PluginCommand::New { lang, role, dir } => {
            let lang = match lang {
                LangArg::Rust => Lang::Rust,
                LangArg::Python => Lang::Python,
                LangArg::Js => Lang::Js,
                LangArg::C => Lang::C,
                LangArg::Cpp => Lang::Cpp,
            };
            let files = match role {
                RoleArg::Cost => authoring::new_plugin(&dir, lang, Role::Cost)?,
                RoleArg::Eligibility => authoring::new_plugin(&dir, lang, Role::Eligibility)?,
                RoleArg::Gate => authoring::new_plugin(&dir, lang, Role::Gate)?,
                RoleArg::QueueOrder => {
                    authoring::new_queue_plugin(&dir, lang, QueueRole::QueueOrder)?
                }
                RoleArg::Admit => authoring::new_queue_plugin(&dir, lang, QueueRole::Admit)?,
                RoleArg::Preempt => authoring::new_queue_plugin(&dir, lang, QueueRole::Preempt)?,
            };
            for f in &files {
                println!("{}", f.display());
            }
            eprintln!("next: thermoroute plugin build {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Build { dir } => {
            let out = authoring::build(&dir, &|step| eprintln!("{}: {step}", dir.display()))?;
            println!("{}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        PluginCommand::Check {
            file,
            json,
            hardware,
        } => check(&file, json, hardware.as_deref()),
        PluginCommand::Test {
            file,
            cases,
            json,
            hardware,
        } => test(&file, &cases, json, hardware.as_deref()),
    }
}

fn hardware_of(hardware: Option<&Path>) -> Result<Hardware> {
    Ok(match hardware {
        Some(p) => Hardware::load(p)?,
        None => Hardware::default(),
    })
}

/// Everything `plugin test --json` prints.
#[derive(serde::Serialize)]
struct TestReport<'a> {
    passed: bool,
    check: &'a CheckReport,
    cases: &'a [UserCaseResult],
}

fn test(file: &Path, cases: &Path, json: bool, hardware: Option<&Path>) -> Result<ExitCode> {
    let hw = hardware_of(hardware)?;
    // A malformed cases file fails before anything runs.
    let user = read_cases(cases, &hw)?;
    let runtime = Runtime::shared()?;
    let report = conformance_under(runtime, file, &hw)
        .with_context(|| format!("checking {}", file.display()))?;
    let results = user_cases_under(runtime, file, &hw, &user)
        .with_context(|| format!("testing {}", file.display()))?;
    let passed = report.passed() && results.iter().all(|r| r.passed);
    if json {
        print_json(&TestReport {
            passed,
            check: &report,
            cases: &results,
        })?;
    } else {
        print_check(&report);
        print_cases(cases, &results);
    }
    Ok(if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_cases(file: &Path, results: &[UserCaseResult]) {
    let compact = |v: &serde_json::Value| serde_json::to_string(v).unwrap_or_default();
    for r in results {
        if r.passed {
            println!(
                "ok    {}:{} {} {:?}",
                file.display(),
                r.line,
                r.role,
                r.name
            );
            continue;
        }
        println!(
            "FAIL  {}:{} {} {:?}: {}",
            file.display(),
            r.line,
            r.role,
            r.name,
            r.detail
        );
        println!("      input:    {}", compact(&r.input));
        println!("      expected: {}", compact(&r.expected));
        println!("      actual:   {}", compact(&r.actual));
        if let Some(out) = &r.guest_output {
            println!("      guest output:");
            for line in out.lines() {
                println!("        {line}");
            }
        }
    }
    let failed = results.iter().filter(|r| !r.passed).count();
    if failed == 0 {
        println!("user cases: {} passed", results.len());
    } else {
        println!("user cases: {failed} of {} FAILED", results.len());
    }
}

/// Guest output lines `plugin check` prints per failed case.
const GUEST_LINES_SHOWN: usize = 40;

fn check(file: &Path, json: bool, hardware: Option<&Path>) -> Result<ExitCode> {
    let runtime = Runtime::shared()?;
    let hw = hardware_of(hardware)?;
    let report = conformance_under(runtime, file, &hw)
        .with_context(|| format!("checking {}", file.display()))?;
    if json {
        print_json(&report)?;
    } else {
        print_check(&report);
    }
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_check(report: &CheckReport) {
    println!(
        "{}: world {} of thermoroute:policy@{} ({} KiB, {})",
        report.path,
        report.world,
        report.wit_version.unwrap_or("?"),
        report.bytes / 1024,
        report.hash
    );
    println!(
        "loaded in {:.1} ms (compile cache: {:?}); cold instantiation {:.0} µs",
        report.load_ms, report.cache, report.instantiate_us
    );
    if report.imports.is_empty() {
        println!("imports: none");
    } else {
        let mut t = table(["import", "sandbox grants"]);
        for (name, grant) in &report.imports {
            t.add_row(vec![name.as_str(), grant.as_str()]);
        }
        println!("{t}");
    }
    let mut t = table(["limit", "asked", "granted", "why"]);
    for g in &report.limits {
        t.add_row(vec![
            g.limit.to_string(),
            g.asked.to_string(),
            g.granted.to_string(),
            g.why.clone(),
        ]);
    }
    println!("{t}");
    let mut t = table(["", "role", "conformance case", "detail"]);
    for c in &report.cases {
        t.add_row(vec![
            if c.passed { "ok" } else { "FAIL" },
            c.role,
            c.name.as_str(),
            c.detail.as_str(),
        ]);
    }
    println!("{t}");
    for c in report.cases.iter().filter(|c| !c.output.is_empty()) {
        println!("guest output of FAILED case \"{}\" ({}):", c.name, c.role);
        for line in c.output.excerpt(GUEST_LINES_SHOWN) {
            println!("  {line}");
        }
    }
    for (role, us) in &report.call_us {
        println!("{role}: {us:.1} µs per warm call");
    }
    let failed = report.cases.iter().filter(|c| !c.passed).count();
    if failed == 0 {
        println!("conformant: {} cases passed", report.cases.len());
    } else {
        println!(
            "NOT conformant: {failed} of {} cases failed",
            report.cases.len()
        );
    }
}
