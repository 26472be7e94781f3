//! What-if outputs for analysis: tidy CSV and JSON, the narrow table, the
//! plots, `--mode`, and shards placed by Kubernetes or Slurm.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use thermoroute_tests::{bin, examples};

/// Two loads x two hardware variants x two QoS variants, three
/// replications, a baseline: 24 runs, 8 variants.
fn experiment(dir: &Path) -> PathBuf {
    let ex = examples();
    let p = dir.join("exp.toml");
    std::fs::write(
        &p,
        format!(
            r#"
name = "tidy"
graphs = ["{g}"]
hardware = "{h}"
replications = 3
seed = 2
baseline = "3 cores"
[[load]]
name = "light"
rate = 1000.0
jobs = 1500
[[load]]
name = "heavy"
rate = 2600.0
jobs = 1500
[[hardware_variant]]
name = "3 cores"
set = {{ "cpu.cores" = 3 }}
[[hardware_variant]]
name = "5 cores"
set = {{ "cpu.cores" = 5 }}
[[qos_variant]]
name = "p95 10ms"
set = {{ "latency_ms.p50" = 5.0, "latency_ms.p95" = 10.0 }}
[[qos_variant]]
name = "p95 50ms"
set = {{ "latency_ms.p50" = 25.0, "latency_ms.p95" = 50.0 }}
"#,
            g = ex.join("graphs/mm3-batch.json").display(),
            h = ex.join("hardware/mm3.toml").display()
        ),
    )
    .unwrap();
    p
}

fn thermoroute(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(bin());
    c.args(args);
    for v in thermoroute::whatif::SHARD_VARIABLES {
        c.env_remove(v);
    }
    c.envs(env.iter().copied());
    c.output().expect("the binary runs")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn read_csv(p: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(p).unwrap();
    let header = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|x| x.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

#[test]
fn csvs_are_tidy_with_a_column_per_factor_and_numeric_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path());
    let out = dir.path().join("out");
    let table = ok(&thermoroute(
        &[
            "whatif",
            exp.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    ));
    // runs.csv: one row per (variant, replication).
    let (header, rows) = read_csv(&out.join("runs.csv"));
    for f in [
        "load",
        "load_rate",
        "hardware",
        "policy",
        "qos",
        "replication",
    ] {
        assert!(header.iter().any(|h| h == f), "{f} in {header:?}");
    }
    assert_eq!(rows.len(), 24);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let mut keys: Vec<(String, String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r[col("load")].clone(),
                r[col("hardware")].clone(),
                r[col("qos")].clone(),
                r[col("replication")].clone(),
            )
        })
        .collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 24, "each (variant, replication) once");
    let levels = |c: usize| {
        let mut v: Vec<&str> = rows.iter().map(|r| r[c].as_str()).collect();
        v.sort();
        v.dedup();
        v
    };
    assert_eq!(levels(col("load")), ["heavy", "light"]);
    assert_eq!(levels(col("hardware")), ["3 cores", "5 cores"]);
    assert_eq!(levels(col("policy")), ["native"]);
    assert_eq!(levels(col("qos")), ["p95 10ms", "p95 50ms"]);
    assert_eq!(levels(col("replication")), ["0", "1", "2"]);
    for m in [
        "latency_p95_ms",
        "energy_per_job_j",
        "util_cpu",
        "load_rate",
    ] {
        for r in &rows {
            r[col(m)]
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("{m}: {:?}", r[col(m)]));
        }
    }
    // results.csv: one row per variant, with CI and baseline columns.
    let (header, rows) = read_csv(&out.join("results.csv"));
    assert_eq!(rows.len(), 8);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    for r in &rows {
        for m in [
            "latency_p95_ms",
            "latency_p95_ms_ci95",
            "latency_p95_ms_vs_baseline",
            "replications",
        ] {
            r[col(m)]
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("{m}: {:?}", r[col(m)]));
        }
        assert!(
            !r[col("variant")].contains("| native"),
            "names only what varies"
        );
    }
    // The JSON equivalents carry the same factors.
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let first = &results[0];
    assert_eq!(first["load"], "light");
    assert_eq!(first["hardware"], "3 cores");
    assert_eq!(first["qos"], "p95 10ms");
    assert_eq!(first["variant"], "light | 3 cores | p95 10ms");
    let runs: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("runs.json")).unwrap()).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 24);
    assert_eq!(runs[0]["spec"]["factors"]["hardware"], "3 cores");
    // The narrow table fits 120 columns; --wide shows every metric.
    for line in table.lines() {
        assert!(
            line.chars().count() <= 120,
            "{} wide: {line}",
            line.chars().count()
        );
    }
    assert!(table.contains("light | 3 cores | p95 10ms"), "{table}");
    assert!(!table.contains("util_tsu"), "{table}");
    let wide = ok(&thermoroute(
        &[
            "whatif",
            exp.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--wide",
        ],
        &[],
    ));
    assert!(
        wide.contains("util_tsu") && wide.contains("policy_faults"),
        "{wide}"
    );
    pandas_reads(&out);
}

/// pandas reads both CSVs with one row per (variant, replication) and
/// float metric columns; skipped, with the reason, where pandas cannot be
/// imported (`scripts/test.sh` installs it).
fn pandas_reads(out: &Path) {
    let script = r#"
import sys
import pandas as pd
runs = pd.read_csv(sys.argv[1] + "/runs.csv")
res = pd.read_csv(sys.argv[1] + "/results.csv")
assert len(runs) == 24, len(runs)
assert not runs.duplicated(["load", "hardware", "policy", "qos", "replication"]).any()
for c in ["latency_p50_ms", "latency_p95_ms", "energy_per_job_j", "util_cpu", "load_rate", "rejected", "policy_faults"]:
    assert runs[c].dtype.kind == "f", (c, runs[c].dtype)
assert runs["replication"].dtype.kind == "i", runs["replication"].dtype
assert len(res) == 8
for c in ["latency_p95_ms", "latency_p95_ms_ci95", "latency_p95_ms_vs_baseline"]:
    assert res[c].dtype.kind == "f", (c, res[c].dtype)
g = runs.groupby(["load", "hardware", "qos"])["latency_p95_ms"].mean()
assert len(g) == 8
print("pandas ok")
"#;
    let has_pandas = Command::new("python3")
        .args(["-c", "import pandas"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_pandas {
        eprintln!("skipped the pandas check: python3 cannot import pandas (pip install pandas)");
        return;
    }
    let o = Command::new("python3")
        .args(["-c", script, out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pandas: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn shards_from_kubernetes_and_slurm_merge_to_the_unsharded_results() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path());
    let e = exp.to_str().unwrap();
    let whole = dir.path().join("whole");
    ok(&thermoroute(
        &["-q", "whatif", e, "--out", whole.to_str().unwrap()],
        &[],
    ));
    // Four shard processes at once: two as pods of a Kubernetes Indexed
    // Job, two as tasks of a Slurm array that starts at 5.
    let shard = |i: usize| dir.path().join(format!("shard-{i}"));
    let (k0, k1, s2, s3) = (shard(0), shard(1), shard(2), shard(3));
    let spawn = |out: &Path, shard: &str, env: Vec<(&str, String)>| {
        let mut c = Command::new(bin());
        c.args([
            "-q",
            "whatif",
            e,
            "--shard",
            shard,
            "--out",
            out.to_str().unwrap(),
        ]);
        for v in thermoroute::whatif::SHARD_VARIABLES {
            c.env_remove(v);
        }
        c.envs(env);
        c.spawn().unwrap()
    };
    let children = vec![
        spawn(&k0, "auto/4", vec![("JOB_COMPLETION_INDEX", "0".into())]),
        spawn(&k1, "auto/4", vec![("JOB_COMPLETION_INDEX", "1".into())]),
        spawn(
            &s2,
            "auto",
            vec![
                ("SLURM_ARRAY_TASK_ID", "7".into()),
                ("SLURM_ARRAY_TASK_MIN", "5".into()),
                ("SLURM_ARRAY_TASK_COUNT", "4".into()),
            ],
        ),
        spawn(
            &s3,
            "auto",
            vec![
                ("SLURM_ARRAY_TASK_ID", "8".into()),
                ("SLURM_ARRAY_TASK_MIN", "5".into()),
                ("SLURM_ARRAY_TASK_COUNT", "4".into()),
            ],
        ),
    ];
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let runs_in = |d: &Path| {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("runs.json")).unwrap()).unwrap();
        v.as_array().unwrap().len()
    };
    assert_eq!(
        [&k0, &k1, &s2, &s3].map(|d| runs_in(d)),
        [6, 6, 6, 6],
        "each shard ran its quarter"
    );
    let merged = dir.path().join("merged");
    let dirs = [&k0, &k1, &s2, &s3].map(|d| d.to_str().unwrap().to_string());
    let mut args = vec!["whatif", "merge"];
    args.extend(dirs.iter().map(String::as_str));
    args.extend(["--out", merged.to_str().unwrap()]);
    ok(&thermoroute(&args, &[]));
    let read = |d: &Path, f: &str| std::fs::read_to_string(d.join(f)).unwrap();
    assert_eq!(read(&merged, "results.json"), read(&whole, "results.json"));
    assert_eq!(read(&merged, "results.csv"), read(&whole, "results.csv"));
    assert_eq!(read(&merged, "runs.csv"), read(&whole, "runs.csv"));
    let results: Value = serde_json::from_str(&read(&merged, "results.json")).unwrap();
    assert!(
        results[1]["vs_baseline"]["latency_p95_ms"].is_number(),
        "baseline ratios survive the merge"
    );
    // A missing shard is an error, not a silently smaller result.
    let o = thermoroute(
        &[
            "whatif",
            "merge",
            &dirs[0],
            &dirs[1],
            &dirs[2],
            "--out",
            merged.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("a shard is missing"));
    // `--shard auto` with neither engine's variables says which it needs.
    let o = thermoroute(
        &[
            "whatif",
            e,
            "--shard",
            "auto/4",
            "--out",
            merged.to_str().unwrap(),
        ],
        &[],
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("JOB_COMPLETION_INDEX") && err.contains("SLURM_ARRAY_TASK_ID"),
        "{err}"
    );
}

#[test]
fn mode_comes_from_the_command_line_or_the_file_and_bad_modes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let g = examples().join("graphs/fraud-triage.json");
    let exp = dir.path().join("m.toml");
    let text = |mode: &str| {
        format!(
            "name = \"m\"\ngraphs = [\"{}\"]\nreplications = 1\nmode = \"{mode}\"\n[[load]]\njobs = 2\n",
            g.display()
        )
    };
    std::fs::write(&exp, text("simulate")).unwrap();
    let out = dir.path().join("o");
    let e = exp.to_str().unwrap();
    let o = out.to_str().unwrap();
    ok(&thermoroute(
        &["-q", "whatif", e, "--out", o, "--mode", "execute"],
        &[],
    ));
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("experiment.json")).unwrap())
            .unwrap();
    assert_eq!(meta["mode"], "execute");
    ok(&thermoroute(&["-q", "whatif", e, "--out", o], &[]));
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("experiment.json")).unwrap())
            .unwrap();
    assert_eq!(meta["mode"], "simulate");
    let bad = thermoroute(&["whatif", e, "--mode", "fast"], &[]);
    assert!(!bad.status.success());
    std::fs::write(&exp, text("fast")).unwrap();
    let bad = thermoroute(&["whatif", e, "--out", o], &[]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("mode = \"fast\"") && err.contains("execute"),
        "{err}"
    );
}

#[test]
fn plots_come_as_svg_and_png_with_log_axes_legends_and_named_categories() {
    let dir = tempfile::tempdir().unwrap();
    let exp = experiment(dir.path());
    let out = dir.path().join("out");
    ok(&thermoroute(
        &[
            "-q",
            "whatif",
            exp.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
        &[],
    ));
    for name in ["latency_vs_load", "energy_vs_p95", "utilisation"] {
        let svg = std::fs::read_to_string(out.join(format!("{name}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{name}"
        );
        let png = std::fs::read(out.join(format!("{name}.png"))).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{name}.png is a PNG");
        assert!(
            png.len() > 5_000,
            "{name}.png has content: {} bytes",
            png.len()
        );
    }
    let util = std::fs::read_to_string(out.join("utilisation.svg")).unwrap();
    for label in [
        "cpu",
        "gpu",
        "tsu",
        "light | 3 cores | p95 10ms",
        "heavy | 5 cores | p95 50ms",
    ] {
        assert!(
            util.contains(&format!("\n{label}\n</text>")),
            "utilisation names {label}"
        );
    }
    let lat = std::fs::read_to_string(out.join("latency_vs_load.svg")).unwrap();
    assert!(
        lat.contains("\n3 cores | p95 10ms\n</text>"),
        "a legend entry per series"
    );
}

/// A policy variant may name a plugin source directory: built on demand,
/// reused while newer than its sources, rebuilt when a source changes.
#[test]
fn a_policy_variant_naming_a_plugin_directory_is_built_and_cached() {
    use thermoroute::whatif::{Prepared, aggregate};
    let dir = tempfile::tempdir().unwrap();
    let plug = dir.path().join("myplug");
    std::fs::create_dir_all(plug.join("src")).unwrap();
    std::fs::create_dir_all(plug.join("target")).unwrap();
    let wit = examples().join("../wit");
    std::fs::write(
        plug.join("plugin.toml"),
        format!(
            "[plugin]\nlang = \"rust\"\nworld = \"cost-plugin\"\nwit = \"{}\"\n",
            wit.display()
        ),
    )
    .unwrap();
    // Not a crate cargo accepts: a build attempt fails at once.
    std::fs::write(plug.join("Cargo.toml"), "not a manifest").unwrap();
    std::fs::write(plug.join("src/lib.rs"), "// source\n").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    // The component "built" after its sources: the Rust port of the
    // native cost model.
    std::fs::copy(
        thermoroute_tests::guest("cost_rust"),
        plug.join("target/myplug.wasm"),
    )
    .unwrap();
    let exp = dir.path().join("p.toml");
    std::fs::write(
        &exp,
        format!(
            r#"
name = "p"
graphs = ["{g}"]
replications = 1
[[load]]
rate = 50.0
jobs = 100
[[policy_variant]]
name = "native"
[[policy_variant]]
name = "from source"
cost = "myplug"
"#,
            g = examples().join("graphs/fraud-triage.json").display()
        ),
    )
    .unwrap();
    let p = Prepared::load(&exp).expect("the fresh component is reused, not rebuilt");
    let rows = aggregate(p.run_shard((0, 1), &|| {}).unwrap(), None);
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0].metrics["latency_p95_ms"],
        rows[1].metrics["latency_p95_ms"]
    );
    assert_eq!(rows[1].metrics["policy_faults"].mean, 0.0);
    // A source newer than the component: the next load rebuilds (and this
    // crate cannot build, which names the directory).
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(plug.join("src/lib.rs"), "// changed\n").unwrap();
    let e = Prepared::load(&exp).unwrap_err().to_string();
    assert!(
        e.contains("from source") && e.contains("building the plugin") && e.contains("myplug"),
        "{e}"
    );
}
