//! What-if experiments: answers known analytically, shards, determinism.

use std::path::{Path, PathBuf};

use thermoroute::whatif::{
    Prepared, Stat, VariantResult, aggregate, read_results_csv, read_runs, results_csv,
    write_outputs,
};

fn examples() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples"))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn mean(rows: &[thermoroute::whatif::VariantResult], variant: &str, metric: &str) -> f64 {
    rows.iter()
        .find(|r| r.variant.contains(variant))
        .unwrap_or_else(|| panic!("no variant {variant}"))
        .metrics[metric]
        .mean
}

/// M/M/c: more servers at the same load must lower the p95 latency.
fn servers_experiment(dir: &Path) -> PathBuf {
    let ex = examples();
    write(
        dir,
        "servers.toml",
        &format!(
            r#"
name = "servers"
graphs = ["{g}"]
hardware = "{h}"
replications = 3
seed = 4
[[load]]
rate = 2500.0
jobs = 6000
[[hardware_variant]]
name = "c3"
set = {{ "cpu.cores" = 3 }}
[[hardware_variant]]
name = "c4"
set = {{ "cpu.cores" = 4 }}
[[hardware_variant]]
name = "c6"
set = {{ "cpu.cores" = 6 }}
"#,
            g = ex.join("graphs/mm3-batch.json").display(),
            h = ex.join("hardware/mm3.toml").display()
        ),
    )
}

#[test]
fn more_servers_lower_the_p95() {
    let dir = tempfile::tempdir().unwrap();
    let p = Prepared::load(&servers_experiment(dir.path())).unwrap();
    let runs = p.run_shard((0, 1), &|| {}).unwrap();
    assert_eq!(runs.len(), 9);
    let rows = aggregate(runs, None);
    let (c3, c4, c6) = (
        mean(&rows, "c3", "latency_p95_ms"),
        mean(&rows, "c4", "latency_p95_ms"),
        mean(&rows, "c6", "latency_p95_ms"),
    );
    assert!(c3 > c4 && c4 > c6, "{c3} {c4} {c6}");
    assert!(
        rows.iter()
            .find(|r| r.variant.contains("c6"))
            .unwrap()
            .best
            .contains(&"latency_p95_ms".to_string())
    );
    let u3 = mean(&rows, "c3", "util_cpu");
    assert!(
        (u3 - 2.5 / 3.0).abs() < 0.05,
        "utilisation of 3 servers at rho 0.83: {u3}"
    );
}

#[test]
fn energy_weight_orders_energy_per_job() {
    let dir = tempfile::tempdir().unwrap();
    let graph = write(
        dir.path(),
        "nn.json",
        r#"{ "nodes": [
            { "id": "x", "kind": "tensor", "tensor": { "op": "const", "value": { "shape": [256], "generator": { "seed": 1, "dist": "normal" } } } },
            { "id": "mlp", "kind": "nn", "inputs": ["x"], "nn": { "layers": [
                { "weights": { "shape": [256, 256], "generator": { "seed": 2, "dist": "normal" } }, "activation": "relu" } ] } }
          ], "qos": { "batch_size": 256 } }"#,
    );
    let exp = write(
        dir.path(),
        "energy.toml",
        &format!(
            r#"
name = "energy"
graphs = ["{}"]
replications = 2
[[load]]
rate = 100.0
jobs = 300
[[hardware_variant]]
name = "hungry gpu"
set = {{ "gpu.active_w" = 2000.0 }}
[[policy_variant]]
name = "wE=0"
set = {{ "weights.energy" = 0.0, "weights.latency" = 1.0 }}
[[policy_variant]]
name = "wE>>wL"
set = {{ "weights.energy" = 1000.0, "weights.latency" = 0.001 }}
"#,
            graph.display()
        ),
    );
    let p = Prepared::load(&exp).unwrap();
    let rows = aggregate(p.run_shard((0, 1), &|| {}).unwrap(), Some("wE=0"));
    let blind = mean(&rows, "wE=0", "energy_per_job_j");
    let frugal = mean(&rows, "wE>>wL", "energy_per_job_j");
    assert!(
        frugal < blind / 2.0,
        "energy per job: wE>>wL {frugal} vs wE=0 {blind}"
    );
    let (fast, slow) = (
        mean(&rows, "wE=0", "latency_p50_ms"),
        mean(&rows, "wE>>wL", "latency_p50_ms"),
    );
    assert!(fast < slow, "and latency the other way: {fast} vs {slow}");
    let ratio = rows
        .iter()
        .find(|r| r.variant.contains("wE>>wL"))
        .unwrap()
        .vs_baseline["energy_per_job_j"];
    assert!((ratio - frugal / blind).abs() < 1e-12);
}

#[test]
fn shards_merge_to_the_unsharded_result_and_seeds_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let p = Prepared::load(&servers_experiment(dir.path())).unwrap();
    let whole = p.run_shard((0, 1), &|| {}).unwrap();
    let again = p.run_shard((0, 1), &|| {}).unwrap();
    assert_eq!(whole, again, "same seeds, same results");
    for i in 0..3 {
        let part = p.run_shard((i, 3), &|| {}).unwrap();
        let rows = aggregate(part.clone(), None);
        write_outputs(&dir.path().join(format!("s{i}")), &part, &rows).unwrap();
    }
    let merged = read_runs(&[
        dir.path().join("s0"),
        dir.path().join("s1"),
        dir.path().join("s2"),
    ])
    .unwrap();
    let mut whole_sorted = whole.clone();
    whole_sorted.sort_by_key(|r| r.spec.index);
    assert_eq!(merged, whole_sorted);
    assert_eq!(aggregate(merged, None), aggregate(whole, None));
}

#[test]
fn bad_experiments_name_their_problem() {
    let dir = tempfile::tempdir().unwrap();
    let missing = write(
        dir.path(),
        "a.toml",
        "name = \"x\"\ngraphs = [\"nope.json\"]\n[[load]]\njobs = 1\n",
    );
    assert!(
        Prepared::load(&missing)
            .unwrap_err()
            .to_string()
            .contains("nope.json")
    );
    let g = examples().join("graphs/mm3-batch.json");
    let bad_field = write(
        dir.path(),
        "b.toml",
        &format!(
            "name = \"x\"\ngraphs = [\"{}\"]\n[[load]]\njobs = 1\n[[hardware_variant]]\nname = \"v\"\nset = {{ \"cpu.corez\" = 2 }}\n",
            g.display()
        ),
    );
    let err = Prepared::load(&bad_field).unwrap_err().to_string();
    assert!(
        err.contains("corez") && err.contains("variant \"v"),
        "{err}"
    );
    assert!(thermoroute::whatif::parse_shard("3/3").is_err());
    assert_eq!(thermoroute::whatif::parse_shard("1/3").unwrap(), (1, 3));
}

#[test]
fn the_cli_writes_tables_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let exp = servers_experiment(dir.path());
    let out = dir.path().join("out");
    let o = std::process::Command::new(thermoroute_tests::bin())
        .args([
            "whatif",
            exp.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--baseline",
            "c3",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("c6") && table.contains("(1.00x)"), "{table}");
    let csv = std::fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "header and three variants");
    for plot in [
        "latency_vs_load.svg",
        "energy_vs_p95.svg",
        "utilisation.svg",
    ] {
        let svg = std::fs::read_to_string(out.join(plot)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
            "{plot}"
        );
    }
    let lines = std::fs::read_to_string(out.join("latency_vs_load.svg")).unwrap();
    assert!(
        lines.contains("\nc4\n</text>"),
        "series are labelled by their own names"
    );
}

#[test]
fn pareto_front_keeps_only_undominated_points() {
    let pts = [(1.0, 5.0), (2.0, 2.0), (3.0, 1.0), (3.0, 3.0), (1.5, 6.0)];
    assert_eq!(thermoroute::whatif::pareto_front(&pts), vec![0, 1, 2]);
}

/// Policy variants can load plugin components: the Rust port of the native
/// cost model gives identical results; a panicking one is contained, falls
/// back to the native model (identical results again) and its faults are
/// counted.
#[test]
fn policy_variants_load_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let ex = examples();
    let exp = write(
        dir.path(),
        "plugins.toml",
        &format!(
            r#"
name = "plugins"
graphs = ["{g}"]
replications = 2
[[load]]
rate = 50.0
jobs = 200
[[policy_variant]]
name = "native"
[[policy_variant]]
name = "rust plugin"
cost = "{rust}"
[[policy_variant]]
name = "panicking plugin"
cost = "{panic}"
"#,
            g = ex.join("graphs/fraud-triage.json").display(),
            rust = thermoroute_tests::guest("cost_rust").display(),
            panic = thermoroute_tests::guest("fixture_panic").display(),
        ),
    );
    let p = Prepared::load(&exp).unwrap();
    let rows = aggregate(p.run_shard((0, 1), &|| {}).unwrap(), None);
    for metric in ["latency_p95_ms", "energy_per_job_j", "expected_error"] {
        let native = mean(&rows, "native", metric);
        assert_eq!(native, mean(&rows, "rust plugin", metric), "{metric}");
        assert_eq!(native, mean(&rows, "panicking plugin", metric), "{metric}");
    }
    assert_eq!(mean(&rows, "rust plugin", "policy_faults"), 0.0);
    assert!(mean(&rows, "panicking plugin", "policy_faults") > 0.0);

    let misplaced = write(
        dir.path(),
        "misplaced.toml",
        &format!(
            "name = \"m\"\ngraphs = [\"{}\"]\n[[load]]\njobs = 1\n[[hardware_variant]]\nname = \"h\"\ncost = \"x.wasm\"\n",
            ex.join("graphs/fraud-triage.json").display()
        ),
    );
    let e = Prepared::load(&misplaced).unwrap_err().to_string();
    assert!(e.contains("[[policy_variant]]"), "{e}");
    let missing = write(
        dir.path(),
        "missing.toml",
        &format!(
            "name = \"m\"\ngraphs = [\"{}\"]\n[[load]]\njobs = 1\n[[policy_variant]]\nname = \"p\"\ncost = \"nowhere.wasm\"\n",
            ex.join("graphs/fraud-triage.json").display()
        ),
    );
    let e = Prepared::load(&missing).unwrap_err().to_string();
    assert!(e.contains("nowhere.wasm"), "{e}");
}

/// Policy variants can name queue-role components too, on their own or in
/// a policy directory: an admission that rejects everything rejects every
/// job, where the native baseline completes them; a queue order that
/// serves batch work first changes the latencies; a queue role named in
/// a hardware variant is refused.
#[test]
fn policy_variants_load_queue_role_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let ex = examples();
    let policy = dir.path().join("closed");
    std::fs::create_dir(&policy).unwrap();
    std::fs::copy(
        thermoroute_tests::guest("fixture_reject_all"),
        policy.join("admit.wasm"),
    )
    .unwrap();
    let exp = write(
        dir.path(),
        "queues.toml",
        &format!(
            r#"
name = "queue roles"
graphs = ["{i}", "{b}"]
mix = [3.0, 7.0]
hardware = "{hw}"
replications = 1
baseline = "native"
[[load]]
rate = 2700.0
jobs = 200
[[policy_variant]]
name = "native"
[[policy_variant]]
name = "reject all"
admit = "{reject}"
[[policy_variant]]
name = "closed dir"
policy = "closed"
[[policy_variant]]
name = "batch first"
queue_order = "{batch_first}"
"#,
            i = ex.join("graphs/mm3-interactive.json").display(),
            b = ex.join("graphs/mm3-batch.json").display(),
            hw = ex.join("hardware/mm3.toml").display(),
            reject = thermoroute_tests::guest("fixture_reject_all").display(),
            batch_first = thermoroute_tests::guest("fixture_batch_first").display(),
        ),
    );
    let p = Prepared::load(&exp).unwrap();
    let rows = aggregate(p.run_shard((0, 1), &|| {}).unwrap(), Some("native"));
    assert_eq!(mean(&rows, "native", "rejected"), 0.0);
    assert_eq!(mean(&rows, "reject all", "rejected"), 200.0);
    assert_eq!(mean(&rows, "closed dir", "rejected"), 200.0);
    assert_eq!(mean(&rows, "reject all", "policy_faults"), 0.0);
    assert_ne!(
        mean(&rows, "native", "latency_p50_ms"),
        mean(&rows, "batch first", "latency_p50_ms")
    );
    assert_eq!(mean(&rows, "batch first", "policy_faults"), 0.0);

    let misplaced = write(
        dir.path(),
        "misplaced.toml",
        &format!(
            "name = \"m\"\ngraphs = [\"{}\"]\n[[load]]\njobs = 1\n[[qos_variant]]\nname = \"q\"\nadmit = \"x.wasm\"\n",
            ex.join("graphs/mm3-batch.json").display()
        ),
    );
    let e = Prepared::load(&misplaced).unwrap_err().to_string();
    assert!(
        e.contains("[[policy_variant]]") && e.contains("admit"),
        "{e}"
    );
    // A component for another role is refused when the experiment loads.
    let wrong = write(
        dir.path(),
        "wrong.toml",
        &format!(
            "name = \"w\"\ngraphs = [\"{}\"]\n[[load]]\njobs = 1\n[[policy_variant]]\nname = \"p\"\npreempt = \"{}\"\n",
            ex.join("graphs/mm3-batch.json").display(),
            thermoroute_tests::guest("fixture_reject_all").display(),
        ),
    );
    let e = Prepared::load(&wrong).unwrap_err().to_string();
    assert!(e.contains("preempt"), "{e}");
}

#[test]
fn results_csv_round_trips_a_variant_name_with_quotes_commas_and_a_newline() {
    let name = "load=\"peak\", gpu off\nsecond line";
    let row = VariantResult {
        variant: name.into(),
        factors: Default::default(),
        series: String::new(),
        load_rate: None,
        metrics: [
            (
                "latency_p50_ms".to_string(),
                Stat {
                    mean: 1.25,
                    ci95: 0.5,
                    n: 3,
                },
            ),
            (
                "energy_per_job_j".to_string(),
                Stat {
                    mean: 0.1 + 0.2,
                    ci95: 1e-9,
                    n: 3,
                },
            ),
        ]
        .into_iter()
        .collect(),
        best: vec!["latency_p50_ms".into(), "energy_per_job_j".into()],
        vs_baseline: Default::default(),
    };
    let bytes = results_csv(std::slice::from_ref(&row));
    let text = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        text.contains("\"load=\"\"peak\"\", gpu off\nsecond line\""),
        "RFC 4180 quoting: {text}"
    );
    let back = read_results_csv(&bytes).unwrap();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].variant, name, "the name comes back unchanged");
    assert_eq!(back[0].best, row.best);
    assert_eq!(back[0].metrics["latency_p50_ms"], (1.25, 0.5));
    assert_eq!(back[0].metrics["energy_per_job_j"], (0.1 + 0.2, 1e-9));
    assert_eq!(back[0].metrics.len(), 2, "absent metrics stay absent");
}
