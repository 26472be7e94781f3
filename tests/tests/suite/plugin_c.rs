//! Plugins in C and C++, end to end through the binary: the committed C
//! cost model (`plugins/cost-c`) builds into a zero-import component, passes
//! the conformance suite, answers exactly its formula on thousands of random
//! decisions and serves a run; `plugin new` → `plugin build` → `plugin check`
//! → `run` works for C and C++ in every role (clang-19 and Debian's
//! wasi-libc are installed on first use); bad plugin directories fail with
//! a message that says what is wrong.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thermoroute::device::Target;
use thermoroute::hardware::{PolicySpec, Weights};
use thermoroute::model::graph::{NodeKind, Priority, Qos, Risk};
use thermoroute::plugin::PluginCost;
use thermoroute::policy::{
    CandidateInput, CostModel, CostTerms, DecisionContext, Estimate, NativeCost, NodeSummary,
    ProgramSummary,
};
use thermoroute_tests::{bin, example, json_of, plugin_runtime, run_in};

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

fn ok(out: &std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One build at a time: the first may install clang with apt-get, and
/// concurrent apt-gets fight over dpkg's lock. Builds take under a second.
static BUILDS: Mutex<()> = Mutex::new(());

fn plugin_build(dir: &Path) -> std::process::Output {
    let _one = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    run_in(&repo(), &["plugin", "build", dir.to_str().unwrap()])
}

fn build(dir: &Path) -> PathBuf {
    let out = plugin_build(dir);
    let path = PathBuf::from(ok(&out, &format!("plugin build {}", dir.display())).trim());
    assert!(path.is_file(), "{}", path.display());
    path
}

/// `plugins/cost-c`, built once per test process.
fn cost_c() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| build(&repo().join("plugins/cost-c")))
}

fn check(component: &Path) -> serde_json::Value {
    let out = run_in(
        &repo(),
        &["plugin", "check", component.to_str().unwrap(), "--json"],
    );
    ok(&out, &format!("plugin check {}", component.display()));
    json_of(&out)
}

fn assert_conformant(report: &serde_json::Value, world: &str) {
    assert_eq!(report["world"], world, "{report:#}");
    let cases = report["cases"].as_array().unwrap();
    assert!(cases.len() >= 3, "{report:#}");
    assert!(cases.iter().all(|c| c["passed"] == true), "{report:#}");
}

/// Runs the fraud-triage example in simulate mode with `flags`; returns the
/// report and the trace header's policy line.
fn run_with(flags: &[&str]) -> (serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("t.jsonl");
    let graph = example("graphs/fraud-triage.json");
    let mut args = vec![
        "run",
        graph.as_str(),
        "--mode",
        "simulate",
        "--jobs",
        "40",
        "--rate",
        "20",
        "--json",
        "--trace",
        trace.to_str().unwrap(),
    ];
    args.extend_from_slice(flags);
    let out = run_in(dir.path(), &args);
    ok(&out, "run");
    let text = std::fs::read_to_string(&trace).unwrap();
    let header: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    (
        json_of(&out),
        header["policy"].as_str().unwrap().to_string(),
    )
}

/// `plugins/cost-c/plugin.c`'s formula, written again in Rust: the native
/// terms, with a batch job's TSU latency counting the TSU's queue wait
/// `BATCH_TSU_QUEUE_FACTOR` (2) more times. Same operations in the same
/// order, so the answers agree to the bit.
fn cost_c_reference(spec: &PolicySpec, ctx: &DecisionContext) -> Vec<CostTerms> {
    let w = ctx.weights;
    ctx.candidates
        .iter()
        .map(|c| {
            let wait = if ctx.qos.priority == Priority::Batch && c.target == Target::Tsu {
                2.0 * c.estimate.queue_wait_ms
            } else {
                0.0
            };
            let risk_penalty = match (ctx.qos.risk, c.target) {
                (Risk::Irreversible, Target::Tsu) => spec.tsu_irreversible_penalty,
                (Risk::Irreversible, Target::GpuSim) => spec.gpu_sim_irreversible_penalty,
                _ => 0.0,
            };
            let latency = w.latency * (c.estimate.latency_p50_ms + wait);
            let energy = w.energy * c.estimate.energy_j;
            let error = w.error * c.estimate.error;
            let risk = w.risk * risk_penalty;
            CostTerms {
                latency,
                energy,
                error,
                risk,
                risk_penalty,
                total: latency + energy + error + risk,
            }
        })
        .collect()
}

fn random_candidates(rng: &mut ChaCha8Rng) -> Vec<CandidateInput> {
    (0..rng.random_range(0..6))
        .map(|_| CandidateInput {
            target: Target::ALL[rng.random_range(0..5)],
            estimate: Estimate {
                latency_p50_ms: rng.random_range(0.0..1e4),
                latency_p95_ms: rng.random_range(0.0..1e4),
                queue_wait_ms: rng.random_range(0.0..1e3),
                energy_j: rng.random_range(0.0..10.0),
                error: rng.random_range(0.0..0.5),
            },
        })
        .collect()
}

#[test]
fn c_cost_plugin_is_a_conformant_zero_import_component() {
    let report = check(cost_c());
    assert_conformant(&report, "cost-plugin");
    // Memory and string functions only: no WASI, nothing to grant but the
    // WIT types it shares with the host.
    let imports = report["imports"].as_array().unwrap();
    assert!(
        imports.iter().all(|i| i[0]
            .as_str()
            .unwrap()
            .starts_with("thermoroute:policy/types")),
        "{report:#}"
    );
    let bytes = std::fs::metadata(cost_c()).unwrap().len();
    assert!(bytes < 64 * 1024, "a C cost model is small: {bytes} bytes");
    let cases = repo().join("plugins/cost-c/cases.jsonl");
    ok(
        &run_in(
            &repo(),
            &[
                "plugin",
                "test",
                cost_c().to_str().unwrap(),
                "--cases",
                cases.to_str().unwrap(),
            ],
        ),
        "plugin test plugins/cost-c",
    );
}

#[test]
fn c_cost_plugin_answers_its_formula_on_thousands_of_random_decisions() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let mut batch_tsu_seen = 0;
    for round in 0..10 {
        let spec = PolicySpec {
            tsu_irreversible_penalty: rng.random_range(0.0..5.0),
            gpu_sim_irreversible_penalty: rng.random_range(0.0..5.0),
            ..PolicySpec::default()
        };
        let plugin = PluginCost::open(plugin_runtime(), cost_c(), spec.clone(), None)
            .unwrap_or_else(|e| panic!("cost-c loads: {e}"));
        let native = NativeCost {
            policy: spec.clone(),
        };
        for case in 0..300 {
            let node = NodeSummary {
                kind: NodeKind::Sample,
                class: format!("sample:ising:2^{}", 4 + (round + case) % 8),
                flops: 0.0,
                bytes: 0.0,
                program: Some(ProgramSummary {
                    n_vars: rng.random_range(1..5000),
                    ..Default::default()
                }),
            };
            let qos = Qos {
                risk: [Risk::Reversible, Risk::Irreversible][rng.random_range(0..2)],
                priority: [Priority::Interactive, Priority::Batch][rng.random_range(0..2)],
                ..Qos::default()
            };
            let weights = Weights {
                latency: rng.random_range(0.0..10.0),
                energy: rng.random_range(0.0..1000.0),
                error: rng.random_range(0.0..1000.0),
                risk: rng.random_range(0.0..100.0),
            };
            let candidates = random_candidates(&mut rng);
            let ctx = DecisionContext {
                candidates: &candidates,
                node: &node,
                qos: &qos,
                weights: &weights,
                situation: None,
            };
            let mut got = Vec::new();
            plugin.score(&ctx, &mut got).unwrap();
            assert_eq!(got, cost_c_reference(&spec, &ctx), "{qos:?} {candidates:?}");
            let mut native_terms = Vec::new();
            native.score(&ctx, &mut native_terms).unwrap();
            for (c, (g, n)) in candidates.iter().zip(got.iter().zip(&native_terms)) {
                if qos.priority == Priority::Batch && c.target == Target::Tsu {
                    // A queued TSU costs a batch job more than natively.
                    batch_tsu_seen += 1;
                    assert!(g.total > n.total || c.estimate.queue_wait_ms == 0.0);
                } else {
                    assert_eq!(g, n, "only batch work on the TSU is priced differently");
                }
            }
        }
    }
    assert!(
        batch_tsu_seen > 100,
        "{batch_tsu_seen} batch TSU candidates"
    );
}

#[test]
fn c_cost_plugin_serves_a_run() {
    let (report, policy) = run_with(&["--cost", cost_c().to_str().unwrap()]);
    assert!(policy.contains("cost=plugin:cost-c (cost-c@"), "{policy}");
    assert_eq!(report["counters"]["policy_faults"], 0, "{report:#}");
    assert!(report["counters"]["decisions"].as_u64().unwrap() > 0);
}

#[test]
fn new_build_check_run_works_for_c_and_cpp_in_every_role() {
    let tmp = tempfile::tempdir().unwrap();
    for lang in ["c", "cpp"] {
        for role in ["cost", "eligibility", "gate"] {
            let name = format!("my-{role}-{lang}");
            let dir = tmp.path().join(&name);
            let plugin_new = || {
                run_in(
                    &repo(),
                    &[
                        "plugin",
                        "new",
                        "--lang",
                        lang,
                        "--role",
                        role,
                        dir.to_str().unwrap(),
                    ],
                )
            };
            ok(&plugin_new(), "plugin new");
            let source = if lang == "c" {
                "plugin.c"
            } else {
                "plugin.cpp"
            };
            for file in ["plugin.toml", "wit/policy.wit", "Makefile", source] {
                assert!(dir.join(file).is_file(), "{lang} {role}: no {file}");
            }
            assert!(!plugin_new().status.success(), "new refuses a full dir");
            // The C++ cost template goes through its Makefile; the rest
            // through `plugin build` directly.
            let component = if (lang, role) == ("cpp", "cost") {
                let _one = BUILDS.lock().unwrap_or_else(|e| e.into_inner());
                let out = std::process::Command::new("make")
                    .current_dir(&dir)
                    .arg(format!("THERMOROUTE={}", bin().display()))
                    .output()
                    .expect("make runs");
                ok(&out, "make");
                dir.join(format!("target/{name}.wasm"))
            } else {
                build(&dir)
            };
            assert!(component.is_file(), "{}", component.display());
            let report = check(&component);
            assert_conformant(&report, &format!("{role}-plugin"));
            // The template's cases pass on it.
            ok(
                &run_in(
                    &repo(),
                    &[
                        "plugin",
                        "test",
                        component.to_str().unwrap(),
                        "--cases",
                        dir.join("cases.jsonl").to_str().unwrap(),
                    ],
                ),
                &format!("{lang} {role}: plugin test --cases"),
            );
            let flag = format!("--{role}");
            let (run, policy) = run_with(&[flag.as_str(), component.to_str().unwrap()]);
            assert!(
                policy.contains(&format!("{role}=plugin:{name} ({name}@")),
                "{policy}"
            );
            assert_eq!(
                run["counters"]["policy_faults"], 0,
                "{lang} {role}: {run:#}"
            );
        }
    }
}

/// A C plugin directory with `plugin.toml` and the given files.
fn c_dir(root: &Path, name: &str, toml_extra: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("plugin.toml"),
        format!(
            "[plugin]\nlang = \"c\"\nworld = \"cost-plugin\"\nwit = \"{}\"\n{toml_extra}",
            repo().join("wit").display()
        ),
    )
    .unwrap();
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    dir
}

fn build_fails(dir: &Path) -> String {
    let out = plugin_build(dir);
    assert!(!out.status.success(), "{} built", dir.display());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_c_plugin_directories_fail_with_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    // A compile error: clang's diagnostic, with the file and line, comes back.
    let dir = c_dir(
        tmp.path(),
        "syntax",
        "",
        &[("plugin.c", "#include \"cost_plugin.h\"\nint broken( {\n")],
    );
    let err = build_fails(&dir);
    assert!(err.contains("plugin.c:2"), "{err}");
    assert!(err.contains("error"), "{err}");
    // No sources at all.
    let dir = c_dir(tmp.path(), "empty", "", &[]);
    let err = build_fails(&dir);
    assert!(err.contains("no C sources"), "{err}");
    // A world the WIT package does not have.
    let dir = c_dir(tmp.path(), "world", "", &[("plugin.c", "int x;\n")]);
    let toml = std::fs::read_to_string(dir.join("plugin.toml")).unwrap();
    std::fs::write(
        dir.join("plugin.toml"),
        toml.replace("cost-plugin", "price-plugin"),
    )
    .unwrap();
    let err = build_fails(&dir);
    assert!(err.contains("price-plugin"), "{err}");
    // Sources that compile but leave the export undefined: the link fails
    // naming the missing function.
    let dir = c_dir(
        tmp.path(),
        "unexported",
        "",
        &[(
            "plugin.c",
            "#include \"cost_plugin.h\"\nint unrelated(void) { return 1; }\n",
        )],
    );
    let err = build_fails(&dir);
    assert!(
        err.contains("exports_thermoroute_policy_cost_model_score"),
        "{err}"
    );
    // A listed source that is not there.
    let dir = c_dir(tmp.path(), "missing", "sources = [\"nope.c\"]\n", &[]);
    let err = build_fails(&dir);
    assert!(err.contains("nope.c"), "{err}");
    // An unknown key in plugin.toml is refused, not ignored.
    let dir = c_dir(
        tmp.path(),
        "typo",
        "cflag = [\"-O3\"]\n",
        &[("plugin.c", "int x;\n")],
    );
    let err = build_fails(&dir);
    assert!(err.contains("cflag"), "{err}");
}
