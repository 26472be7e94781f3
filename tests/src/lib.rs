//! Workspace-level integration tests live in `tests/tests/suite/`, linked
//! into one binary; this library holds what several of them share: finding
//! the binary and the examples, running the binary, reading its JSON; and the
//! small random models the statistical tests check every sampler against.

pub mod models;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `thermoroute` binary next to the running test (target/<profile>/),
/// or `THERMOROUTE_BIN` where several checkouts share one target directory
/// (each build overwrites the same `target/debug/thermoroute`).
pub fn bin() -> PathBuf {
    if let Some(path) = std::env::var_os("THERMOROUTE_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test binary has a path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("tests run from target/<profile>/deps");
    let path = dir.join(format!("thermoroute{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "build the binary first: {}", path.display());
    path
}

/// The repository's `examples/` directory.
pub fn examples() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"))
}

/// A file under `examples/`, as a string argument.
pub fn example(rel: &str) -> String {
    examples().join(rel).to_string_lossy().into_owned()
}

/// Runs the binary in `dir` with `args`.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .current_dir(dir)
        .args(args)
        .output()
        .expect("the binary runs")
}

/// The JSON document a successful run printed.
pub fn json_of(o: &Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("stdout is one JSON document")
}

/// Runs jobs of `graphs` (one class each, named after the graph) on `hw`
/// with the native policy until every job is terminal.
pub fn run_engine(
    graphs: Vec<thermoroute::model::Graph>,
    hw: thermoroute::hardware::Hardware,
    config: thermoroute::engine::EngineConfig,
) -> thermoroute::engine::RunReport {
    use thermoroute::engine::{Engine, JobClass};
    let classes = graphs
        .into_iter()
        .enumerate()
        .map(|(i, graph)| JobClass {
            name: graph.name.clone().unwrap_or_else(|| format!("class{i}")),
            graph,
        })
        .collect();
    let policy = thermoroute::policy::Policy::native(&hw);
    let mut engine =
        Engine::new(classes, hw, policy, Default::default(), config).expect("a valid run");
    engine.run().expect("the run completes");
    engine.report()
}

/// Runs like [`run_engine`], tracing to a temporary file; returns the
/// report and the trace's events.
pub fn run_engine_traced(
    graphs: Vec<thermoroute::model::Graph>,
    hw: thermoroute::hardware::Hardware,
    config: thermoroute::engine::EngineConfig,
) -> (
    thermoroute::engine::RunReport,
    Vec<thermoroute::trace::TraceEvent>,
) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let trace = dir.path().join("t.jsonl");
    let config = thermoroute::engine::EngineConfig {
        trace: Some(trace.clone()),
        ..config
    };
    let report = run_engine(graphs, hw, config);
    let events = thermoroute::trace::read_trace(&trace)
        .expect("the trace reads back")
        .events;
    (report, events)
}

/// The failures a trace records, as (kind, action) pairs in order.
pub fn trace_failures(
    events: &[thermoroute::trace::TraceEvent],
) -> Vec<(
    thermoroute::trace::FailureKind,
    thermoroute::trace::FailureAction,
)> {
    use thermoroute::trace::TraceEvent;
    events
        .iter()
        .filter_map(|e| match e {
            TraceEvent::Failure { kind, action, .. } => Some((*kind, *action)),
            _ => None,
        })
        .collect()
}

/// Arrivals at fixed times: one job per `(t_ms, class)` pair, in order.
pub fn arrivals_at(jobs: &[(f64, usize)]) -> thermoroute::engine::Arrivals {
    use thermoroute::engine::{Arrivals, RecordedArrival};
    Arrivals::Recorded(
        jobs.iter()
            .map(|&(t_ms, class)| RecordedArrival { t_ms, class })
            .collect(),
    )
}

/// An engine serving one job class, `name`, of `graph` on `hw` under
/// `policy`, starting from empty performance tables.
pub fn one_class_engine(
    name: &str,
    graph: thermoroute::model::Graph,
    hw: thermoroute::hardware::Hardware,
    policy: thermoroute::policy::Policy,
    config: thermoroute::engine::EngineConfig,
) -> thermoroute::engine::Engine {
    use thermoroute::engine::{Engine, JobClass};
    let class = JobClass {
        name: name.into(),
        graph,
    };
    Engine::new(vec![class], hw, policy, Default::default(), config).expect("a valid engine")
}

/// A guest plugin built by this crate's build script (`cost_rust`,
/// `fixture_loop`, ...).
pub fn guest(name: &str) -> PathBuf {
    PathBuf::from(env!("GUEST_DIR")).join(format!("{name}.wasm"))
}

/// The process's plugin runtime.
pub fn plugin_runtime() -> &'static thermoroute::plugin::Runtime {
    thermoroute::plugin::Runtime::shared().expect("the plugin runtime starts")
}

/// The next hot-reload notice of a cost plugin (waits up to two minutes).
pub fn wait_for_notice(
    model: &dyn thermoroute::policy::CostModel,
) -> thermoroute::policy::PolicyNotice {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let mut notices = Vec::new();
        model.take_notices(&mut notices);
        if let Some(n) = notices.pop() {
            return n;
        }
        assert!(std::time::Instant::now() < deadline, "no reload notice");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `jobs` fraud-triage jobs (Poisson at 50/s, seed 11) in simulate mode
/// under `policy`, traced to `trace`.
pub fn simulate_fraud(
    policy: thermoroute::policy::Policy,
    hw: &thermoroute::hardware::Hardware,
    jobs: u64,
    trace: &Path,
) -> thermoroute::engine::RunReport {
    use thermoroute::engine::{Arrivals, Engine, EngineConfig, JobClass, Mode};
    let graph = thermoroute::model::Graph::load(Path::new(&example("graphs/fraud-triage.json")))
        .expect("the example graph loads");
    let mut engine = Engine::new(
        vec![JobClass {
            name: "fraud".into(),
            graph,
        }],
        hw.clone(),
        policy,
        Default::default(),
        EngineConfig {
            mode: Mode::Simulate,
            seed: 11,
            arrivals: Arrivals::Poisson {
                jobs,
                rate_per_s: 50.0,
            },
            trace: Some(trace.to_path_buf()),
            ..Default::default()
        },
    )
    .expect("a valid run");
    engine.run().expect("the run completes");
    engine.report()
}
