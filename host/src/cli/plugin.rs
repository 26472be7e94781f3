//! `thermoroute plugin new | build | check`, and the policy flags of `run`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};

use thermoroute::hardware::Hardware;
use thermoroute::inputs::PluginFiles;
use thermoroute::plugin::authoring::{self, Lang};
use thermoroute::plugin::{PluginSet, Role, Runtime, conformance_under};
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
    /// A policy directory holding cost.wasm, eligibility.wasm, gate.wasm
    /// and/or policy.wasm (all roles); --cost/--eligibility/--gate override it.
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
            let role = match role {
                RoleArg::Cost => Role::Cost,
                RoleArg::Eligibility => Role::Eligibility,
                RoleArg::Gate => Role::Gate,
            };
            let files = authoring::new_plugin(&dir, lang, role)?;
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
    }
}

/// Guest output lines `plugin check` prints per failed case.
const GUEST_LINES_SHOWN: usize = 40;

fn check(file: &Path, json: bool, hardware: Option<&Path>) -> Result<ExitCode> {
    let runtime = Runtime::shared()?;
    let hw = match hardware {
        Some(p) => Hardware::load(p)?,
        None => Hardware::default(),
    };
    let report = conformance_under(runtime, file, &hw)
        .with_context(|| format!("checking {}", file.display()))?;
    if json {
        print_json(&report)?;
    } else {
        println!(
            "{}: world {} ({} KiB, {})",
            report.path,
            report.world,
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
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
