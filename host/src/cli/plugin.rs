//! `thermoroute plugin new | build | check`, and the policy flags of `run`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};

use thermoroute::hardware::Hardware;
use thermoroute::plugin::authoring::{self, Lang};
use thermoroute::plugin::{PluginSet, Role, Runtime, conformance};
use thermoroute::policy::Policy;

use crate::print_json;

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
        let mut set = match &self.policy {
            Some(dir) => PluginSet::from_dir(dir)?,
            None => PluginSet::default(),
        };
        if let Some(p) = &self.cost {
            set.cost = Some(p.clone());
        }
        if let Some(p) = &self.eligibility {
            set.eligibility = Some(p.clone());
        }
        if let Some(p) = &self.gate {
            set.gate = Some(p.clone());
        }
        Ok(set)
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
    /// componentize-py (PyPI) or jco + componentize-js (npm).
    Build { dir: PathBuf },
    /// Load a component, report the world it implements and what the
    /// sandbox grants each import, run the conformance suite and time it.
    ///
    /// Exit codes: 0 conformant, 1 fails a case or cannot be loaded.
    Check {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub fn plugin(command: PluginCommand) -> Result<ExitCode> {
    match command {
        PluginCommand::New { lang, role, dir } => {
            let lang = match lang {
                LangArg::Rust => Lang::Rust,
                LangArg::Python => Lang::Python,
                LangArg::Js => Lang::Js,
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
        PluginCommand::Check { file, json } => check(&file, json),
    }
}

fn check(file: &Path, json: bool) -> Result<ExitCode> {
    let runtime = Runtime::shared()?;
    let report =
        conformance(runtime, file).with_context(|| format!("checking {}", file.display()))?;
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
            let mut t = Table::new();
            t.load_preset(UTF8_FULL_CONDENSED);
            t.set_header(vec!["import", "sandbox grants"]);
            for (name, grant) in &report.imports {
                t.add_row(vec![name.as_str(), grant.as_str()]);
            }
            println!("{t}");
        }
        let mut t = Table::new();
        t.load_preset(UTF8_FULL_CONDENSED);
        t.set_header(vec!["", "role", "conformance case", "detail"]);
        for c in &report.cases {
            t.add_row(vec![
                if c.passed { "ok" } else { "FAIL" },
                c.role,
                c.name.as_str(),
                c.detail.as_str(),
            ]);
        }
        println!("{t}");
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

/// Default components of `bench --suite plugins`: the committed cost models
/// in each language, as `plugin build` leaves them.
pub const BENCH_PLUGINS: [&str; 3] = [
    "plugins/cost-rust/target/cost-rust.wasm",
    "plugins/cost-python/target/cost-python.wasm",
    "plugins/cost-js/target/cost-js.wasm",
];

/// Routing decisions per second in simulate mode with the native cost model
/// and with each plugin, plus compile, cache-load and instantiation times.
pub fn bench_plugins(files: &[PathBuf], jobs: u64, json: bool) -> Result<ExitCode> {
    use std::time::Instant;
    use thermoroute::engine::{Arrivals, Engine, EngineConfig, JobClass, Mode};
    use thermoroute::model::Graph;
    use thermoroute::perf::PerfTables;
    use thermoroute::plugin::PluginCost;

    let files: Vec<PathBuf> = if files.is_empty() {
        BENCH_PLUGINS.iter().map(PathBuf::from).collect()
    } else {
        files.to_vec()
    };
    for f in &files {
        if !f.is_file() {
            anyhow::bail!(
                "{} is missing: build it first (`thermoroute plugin build {}`), or name components with --plugin",
                f.display(),
                f.parent()
                    .and_then(Path::parent)
                    .map_or_else(|| "DIR".into(), |d| d.display().to_string())
            );
        }
    }
    let graph = Graph::from_json(
        Path::new("fraud-triage.json"),
        include_str!("../../../examples/graphs/fraud-triage.json"),
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let hw = Hardware::default();
    let simulate = |policy: Policy, jobs: u64| -> Result<(u64, f64)> {
        let mut engine = Engine::new(
            vec![JobClass {
                name: "fraud-triage".into(),
                graph: graph.clone(),
            }],
            hw.clone(),
            policy,
            PerfTables::default(),
            EngineConfig {
                mode: Mode::Simulate,
                seed: 1,
                arrivals: Arrivals::Poisson {
                    jobs,
                    rate_per_s: 200.0,
                },
                record_jobs: false,
                ..Default::default()
            },
        )?;
        let t = Instant::now();
        engine.run()?;
        let seconds = t.elapsed().as_secs_f64();
        let r = engine.report();
        Ok((r.counters.decisions, seconds))
    };
    let (native_decisions, native_s) = simulate(Policy::native(&hw), jobs)?;
    let native_rate = native_decisions as f64 / native_s;
    let mut rows = vec![serde_json::json!({
        "policy": "native",
        "decisions": native_decisions,
        "decisions_per_s": native_rate,
    })];
    if !json {
        eprintln!(
            "native cost model: {:.0} k decisions/s ({native_decisions} decisions, {jobs} fraud-triage jobs, simulate mode)",
            native_rate / 1e3
        );
    }
    for file in &files {
        let cache = tempfile::tempdir()?;
        let cold = Runtime::new(Some(cache.path().to_path_buf()))?;
        let compiled = cold.load(file)?;
        let cached = Runtime::new(Some(cache.path().to_path_buf()))?.load(file)?;
        let mut instance = cached.instance();
        let t = Instant::now();
        instance.instantiate()?;
        let first_us = t.elapsed().as_secs_f64() * 1e6;
        const WARM: u32 = 50;
        let t = Instant::now();
        for _ in 0..WARM {
            instance.instantiate()?;
        }
        let warm_us = t.elapsed().as_secs_f64() * 1e6 / f64::from(WARM);
        // Slow guests get fewer jobs; the rate is per decision either way.
        let plugin_jobs = if compiled.bytes > 1 << 20 {
            (jobs / 10).max(100)
        } else {
            jobs
        };
        let mut policy = Policy::native(&hw);
        policy.cost = Box::new(PluginCost::open(
            Runtime::shared()?,
            file,
            hw.policy.clone(),
            None,
        )?);
        let (decisions, seconds) = simulate(policy, plugin_jobs)?;
        let rate = decisions as f64 / seconds;
        let added_us = (1.0 / rate - 1.0 / native_rate) * 1e6;
        if !json {
            eprintln!(
                "{}: {:.0} k decisions/s (+{added_us:.2} µs per decision); compile {:.0} ms, cache load {:.1} ms, instantiate first {first_us:.0} µs, warm {warm_us:.1} µs ({} KiB)",
                compiled.name,
                rate / 1e3,
                compiled.load_time.as_secs_f64() * 1e3,
                cached.load_time.as_secs_f64() * 1e3,
                compiled.bytes / 1024
            );
        }
        rows.push(serde_json::json!({
            "policy": compiled.label(),
            "bytes": compiled.bytes,
            "decisions": decisions,
            "decisions_per_s": rate,
            "added_us_per_decision": added_us,
            "compile_ms": compiled.load_time.as_secs_f64() * 1e3,
            "cache_load_ms": cached.load_time.as_secs_f64() * 1e3,
            "instantiate_first_us": first_us,
            "instantiate_warm_us": warm_us,
        }));
    }
    if json {
        print_json(&rows)?;
    }
    Ok(ExitCode::SUCCESS)
}
