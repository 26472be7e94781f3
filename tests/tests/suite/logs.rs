//! Logs end to end: `RUST_LOG`, `-v`, `-q` and `--log` choose what reaches
//! stderr (or a file); stdout keeps the command's output, `--json` included;
//! a default execute-mode run writes nothing to stderr.

use std::path::Path;
use std::process::{Command, Output};

use thermoroute_tests::{bin, example};

/// Runs the binary in `dir` with `RUST_LOG` set to `rust_log` (or unset),
/// no Wayland display and no `XDG_RUNTIME_DIR`.
fn run_with(dir: &Path, rust_log: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.current_dir(dir)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("WAYLAND_DISPLAY")
        .env_remove("NODEVICE_SELECT");
    if let Some(filter) = rust_log {
        cmd.env("RUST_LOG", filter);
    }
    cmd.output().expect("the binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A simulate-mode run of the fraud graph: deterministic, many decisions.
fn simulate_args(extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "run",
        &example("graphs/fraud-triage.json"),
        "--mode",
        "simulate",
        "--jobs",
        "20",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn refs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

#[test]
fn rust_log_debug_explains_every_decision_in_one_line_and_leaves_stdout_alone() {
    let dir = tempfile::tempdir().unwrap();
    let args = simulate_args(&["--json"]);
    let quiet = run_with(dir.path(), None, &refs(&args));
    let loud = run_with(dir.path(), Some("thermoroute=debug"), &refs(&args));
    assert!(quiet.status.success() && loud.status.success());
    assert_eq!(text(&quiet.stderr), "", "no logs by default");

    // --json stdout stays one pure JSON document.
    let doc: serde_json::Value = serde_json::from_slice(&loud.stdout).expect("pure JSON");
    let decisions = doc["counters"]["decisions"].as_u64().unwrap();
    assert!(decisions > 0);

    let log = text(&loud.stderr);
    let decision_lines: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("routed: ") || l.contains("infeasible: ") || l.contains("rejected: ")
        })
        .collect();
    assert_eq!(
        decision_lines.len() as u64,
        decisions,
        "one line per routing decision:\n{log}"
    );
    let routed = decision_lines
        .iter()
        .find(|l| l.contains("routed: "))
        .expect("a routed node");
    for part in ["DEBUG", "run{", "job{", "node=", "cheapest feasible"] {
        assert!(routed.contains(part), "{part} missing in {routed}");
    }
    assert!(log.contains("job ended"), "{log}");
    // RUST_LOG names thermoroute only: nothing at trace level.
    assert!(!log.contains("TRACE"), "{log}");
}

#[test]
fn plain_output_is_the_same_with_and_without_logs() {
    let dir = tempfile::tempdir().unwrap();
    let args = simulate_args(&[]);
    let without_wall = |o: &Output| {
        text(&o.stdout)
            .lines()
            .filter(|l| !l.contains("wall "))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let quiet = run_with(dir.path(), None, &refs(&args));
    let loud = run_with(dir.path(), Some("debug"), &refs(&args));
    assert_eq!(without_wall(&quiet), without_wall(&loud));
    assert!(!text(&loud.stderr).is_empty());
}

#[test]
fn verbose_quiet_and_log_file_flags() {
    let dir = tempfile::tempdir().unwrap();
    // -vv: debug from thermoroute, whatever RUST_LOG says.
    let vv = run_with(dir.path(), Some("off"), &refs(&simulate_args(&["-vv"])));
    assert!(vv.status.success());
    assert!(
        text(&vv.stderr).contains("routed: "),
        "{}",
        text(&vv.stderr)
    );
    // -v: info, not debug.
    let v = run_with(dir.path(), None, &refs(&simulate_args(&["-v"])));
    assert!(!text(&v.stderr).contains("routed: "));
    // -q: warnings only, even with RUST_LOG=debug.
    let q = run_with(dir.path(), Some("debug"), &refs(&simulate_args(&["-q"])));
    assert!(q.status.success());
    assert_eq!(text(&q.stderr), "");
    // -q and -v contradict each other.
    let both = run_with(dir.path(), None, &refs(&simulate_args(&["-q", "-v"])));
    assert!(!both.status.success());
    // --log FILE: the log goes to the file, not stderr; the flag is global.
    let file = dir.path().join("run.log");
    let mut args = vec!["--log".to_string(), file.to_str().unwrap().to_string()];
    args.extend(simulate_args(&["-vv"]));
    let logged = run_with(dir.path(), None, &refs(&args));
    assert!(logged.status.success());
    assert_eq!(text(&logged.stderr), "");
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.contains("routed: "), "{written}");
    assert!(!written.contains('\u{1b}'), "no colour codes in a file");
}

/// Execute mode really runs the nodes (and probes the GPU): nothing may
/// reach stderr, not even libwayland's "XDG_RUNTIME_DIR is invalid" from a
/// Vulkan layer's display probe.
#[test]
fn a_default_execute_run_writes_nothing_to_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_with(
        dir.path(),
        None,
        &["run", &example("graphs/mm3-batch.json"), "--json"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "");
    serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("pure JSON");
    // A device chosen through Mesa's layer keeps the layer (and its display
    // probe) on: the private runtime directory still keeps libwayland quiet.
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args(["run", &example("graphs/mm3-batch.json"), "--json"])
        .env_remove("RUST_LOG")
        .env_remove("XDG_RUNTIME_DIR")
        .env_remove("WAYLAND_DISPLAY")
        .env("DRI_PRIME", "1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stderr), "", "with DRI_PRIME=1");
    // Its plain table too.
    let out = run_with(
        dir.path(),
        None,
        &["run", &example("graphs/mm3-batch.json")],
    );
    assert!(out.status.success());
    assert_eq!(text(&out.stderr), "");
}

#[test]
fn gpu_adapter_choice_is_logged_at_info() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_with(
        dir.path(),
        Some("thermoroute=info"),
        &["run", &example("graphs/mm3-batch.json"), "--json"],
    );
    assert!(out.status.success());
    let log = text(&out.stderr);
    assert!(
        log.contains("GPU adapter selected") || log.contains("no GPU"),
        "{log}"
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("pure JSON");
}
