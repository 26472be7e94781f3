//! `sample --backend tsu`, `tsu inspect`, `calibrate` end to end.

use thermoroute_tests::{example, json_of, run_in};

#[test]
fn sampling_on_the_tsu_reports_cycles_energy_and_provenance() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "sample",
        &example("programs/lattice-8x8.json"),
        "--backend",
        "tsu",
        "--seed",
        "4",
        "--json",
    ];
    let a = json_of(&run_in(dir.path(), &args));
    let b = json_of(&run_in(dir.path(), &args));
    assert_eq!(a["provenance"]["backend"], "tsu");
    assert_eq!(
        a["provenance"]["draws_hash"], b["provenance"]["draws_hash"],
        "one seed, one result"
    );
    assert!(a["stats"]["cycles"].as_u64().unwrap() > 0);
    assert!(a["stats"]["energy_j"].as_f64().unwrap() > 0.0);
    assert!(
        a["provenance"]["image_hash"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(
        a["provenance"]["chip_hash"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert_eq!(a["marginals"].as_array().unwrap().len(), 64);
    assert!(a["diagnostics"]["max_rhat"].as_f64().unwrap() < 1.05);

    let out = run_in(
        dir.path(),
        &[
            "sample",
            &example("programs/one-hot-causes.json"),
            "--backend",
            "tsu",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not eligible for the TSU") && err.contains("categorical"),
        "{err}"
    );
}

#[test]
fn inspect_shows_the_image_or_every_reason() {
    let dir = tempfile::tempdir().unwrap();
    let doc = json_of(&run_in(
        dir.path(),
        &[
            "tsu",
            "inspect",
            &example("programs/lattice-8x8.json"),
            "--json",
        ],
    ));
    assert_eq!(doc["eligible"], true);
    assert_eq!(doc["colours"], 2);
    assert_eq!(doc["weight_errors"].as_array().unwrap().len(), 128);
    assert!(doc["estimated_cycles"].as_u64().unwrap() > 0);
    let out = run_in(
        dir.path(),
        &["tsu", "inspect", &example("programs/one-hot-causes.json")],
    );
    assert_eq!(out.status.code(), Some(3));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("factor table") && text.contains("hard constraint"),
        "{text}"
    );

    let hw = dir.path().join("hw.toml");
    std::fs::write(&hw, "[tsu]\nchip_file = \"missing-chip.toml\"\n").unwrap();
    let out = run_in(
        dir.path(),
        &[
            "tsu",
            "inspect",
            &example("programs/chain.json"),
            "--hardware",
            hw.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing-chip.toml"));
}

#[test]
fn calibration_feeds_the_scheduler() {
    let dir = tempfile::tempdir().unwrap();
    let doc = json_of(&run_in(
        dir.path(),
        &[
            "calibrate",
            "--programs",
            "3",
            "--out",
            "cal.json",
            "--json",
        ],
    ));
    assert_eq!(doc["tsu"]["programs"], 3);
    assert!(dir.path().join("cal.json").exists());
    let report = json_of(&run_in(
        dir.path(),
        &[
            "run",
            &example("graphs/fraud-triage.json"),
            "--mode",
            "simulate",
            "--calibration",
            "cal.json",
            "--json",
        ],
    ));
    assert_eq!(report["jobs"][0]["status"], "completed");
    std::fs::write(dir.path().join("bad.json"), "{}").unwrap();
    let out = run_in(
        dir.path(),
        &[
            "run",
            &example("graphs/fraud-triage.json"),
            "--calibration",
            "bad.json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a calibration file"));

    // Service models were measured for the CPU (and the GPU where there is
    // one), and become the scheduler's priors: the CPU reference's estimate
    // for the sample node is the fitted line, not the built-in throughput.
    let fits = doc["service"].as_array().unwrap();
    let cpu_ref = fits
        .iter()
        .find(|f| f["target"] == "cpu-ref" && f["family"] == "sample")
        .expect("a CPU sampling model");
    assert!(cpu_ref["points"].as_u64().unwrap() >= 2);
    assert!(cpu_ref["ms_per_unit"].as_f64().unwrap() > 0.0);
    assert!(
        fits.iter()
            .any(|f| f["target"] == "cpu" && f["family"] == "tensor")
    );
    let estimate = |extra: &[&str]| -> f64 {
        let trace = dir.path().join("cal-trace.jsonl");
        let mut args = vec![
            "run",
            &example("graphs/fraud-triage.json").leak()[..],
            "--mode",
            "simulate",
            "--jobs",
            "1",
            "--trace",
            trace.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let out = run_in(dir.path(), &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let events = thermoroute::trace::read_trace(&trace).unwrap().events;
        events
            .iter()
            .find_map(|e| match e {
                thermoroute::trace::TraceEvent::Route { candidates, .. } => candidates
                    .iter()
                    .find(|c| c.target == thermoroute::device::Target::CpuRef)
                    .and_then(|c| c.estimate)
                    .map(|e| e.latency_p50_ms),
                _ => None,
            })
            .unwrap()
    };
    let calibrated = estimate(&["--calibration", "cal.json"]);
    let built_in = estimate(&[]);
    assert_ne!(calibrated, built_in);

    // A file measured elsewhere is refused, naming what differs.
    let mut foreign = doc.clone();
    foreign["machine"]["cores"] = serde_json::json!(4096);
    std::fs::write(dir.path().join("foreign.json"), foreign.to_string()).unwrap();
    let out = run_in(
        dir.path(),
        &[
            "run",
            &example("graphs/fraud-triage.json"),
            "--calibration",
            "foreign.json",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("another machine") && err.contains("4096 cores"),
        "{err}"
    );
}

#[test]
fn tsu_benchmark_prints_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let doc = json_of(&run_in(dir.path(), &["bench", "--suite", "tsu", "--json"]));
    let rows = doc["results"].as_array().unwrap();
    // The lattice, and the z1-like chip with 2 and with 8 chains, each on
    // every CPU kernel path this machine runs.
    let paths = thermoroute::sampler::CpuKernel::available();
    assert_eq!(rows.len(), 3 * paths.len());
    for (r, path) in rows.iter().zip(paths.iter().cycle()) {
        assert_eq!(r["cpu_kernel"], path.name());
        assert!(r["cell_updates_per_s"].as_f64().unwrap() > 0.0);
        assert!(
            r["tsu_energy_per_sample_j"].as_f64().unwrap()
                < r["cpu_modelled_energy_per_sample_j"].as_f64().unwrap()
        );
    }
}

/// The TSU candidate's zero-load latency estimate for the posterior-batch
/// sample node, as the trace of a one-job simulate run records it.
fn tsu_estimate_ms(dir: &std::path::Path, hardware: &std::path::Path) -> f64 {
    let trace = dir.join("t.jsonl");
    let out = run_in(
        dir,
        &[
            "run",
            &example("graphs/posterior-batch.json"),
            "--mode",
            "simulate",
            "--jobs",
            "1",
            "--hardware",
            &hardware.to_string_lossy(),
            "--trace",
            &trace.to_string_lossy(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = thermoroute::trace::read_trace(&trace).expect("a readable trace");
    events
        .events
        .iter()
        .find_map(|e| match e {
            thermoroute::trace::TraceEvent::Route { candidates, .. } => candidates
                .iter()
                .find(|c| c.target == thermoroute::device::Target::Tsu)
                .and_then(|c| c.estimate)
                .map(|e| e.latency_p50_ms),
            _ => None,
        })
        .expect("the sample node had an eligible TSU candidate")
}

/// `tsu inspect`'s whole-run time on that chip, milliseconds.
fn inspected_ms(dir: &std::path::Path, hardware: &std::path::Path, clock_hz: f64) -> f64 {
    let graph: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(example("graphs/posterior-batch.json")).unwrap(),
    )
    .unwrap();
    let node = graph["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["kind"] == "sample")
        .unwrap();
    let program = dir.join("program.json");
    std::fs::write(&program, node["sample"]["program"].to_string()).unwrap();
    let report = json_of(&run_in(
        dir,
        &[
            "tsu",
            "inspect",
            &program.to_string_lossy(),
            "--hardware",
            &hardware.to_string_lossy(),
            "--json",
        ],
    ));
    report["estimated_cycles"].as_f64().unwrap() / clock_hz * 1e3
}

#[test]
fn simulated_tsu_service_follows_the_chip_model() {
    let dir = tempfile::tempdir().unwrap();
    let devkit = thermoroute_sim::ChipConfig::preset("devkit").unwrap();
    let mut fast = devkit.clone();
    fast.clock_hz *= 2.0;
    let chip = dir.path().join("fast-chip.toml");
    std::fs::write(&chip, toml::to_string(&fast).unwrap()).unwrap();
    let slow_hw = dir.path().join("devkit.toml");
    std::fs::write(&slow_hw, "[tsu]\nchip = \"devkit\"\nservice = \"chip\"\n").unwrap();
    let fast_hw = dir.path().join("fast.toml");
    std::fs::write(
        &fast_hw,
        format!(
            "[tsu]\nservice = \"chip\"\nchip_file = {:?}\n",
            chip.to_string_lossy()
        ),
    )
    .unwrap();

    let slow = tsu_estimate_ms(dir.path(), &slow_hw);
    let quick = tsu_estimate_ms(dir.path(), &fast_hw);
    let slow_inspected = inspected_ms(dir.path(), &slow_hw, devkit.clock_hz);
    let fast_inspected = inspected_ms(dir.path(), &fast_hw, fast.clock_hz);
    // The routing estimate is the chip's own time for the whole run...
    assert!(
        (slow / slow_inspected - 1.0).abs() < 1e-9,
        "{slow} vs {slow_inspected}"
    );
    // ...so a chip variant moves it by exactly what `tsu inspect` predicts.
    let want = fast_inspected / slow_inspected;
    assert!(
        (quick / slow / want - 1.0).abs() < 0.05,
        "clock x2: simulate ratio {} vs inspect ratio {want}",
        quick / slow
    );
    assert!(quick < slow);
}

#[test]
fn the_fidelity_suite_compares_both_modes_on_every_example() {
    let dir = tempfile::tempdir().unwrap();
    let report = json_of(&run_in(
        dir.path(),
        &["bench", "--suite", "fidelity", "--jobs", "3", "--json"],
    ));
    let rows = report["rows"].as_array().unwrap();
    let classes: Vec<&str> = rows.iter().map(|r| r["class"].as_str().unwrap()).collect();
    assert_eq!(
        classes,
        [
            "fraud-triage",
            "posterior-batch",
            "mm3-interactive",
            "mm3-batch"
        ]
    );
    for row in rows {
        for key in ["p50_ratio", "p95_ratio", "energy_ratio"] {
            let r = row[key]
                .as_f64()
                .unwrap_or_else(|| panic!("{key} in {row}"));
            assert!(r.is_finite() && r > 0.0, "{key} = {r} in {row}");
        }
        for key in ["mix_difference_pp", "ran_difference_pp"] {
            let pp = row[key].as_f64().unwrap();
            assert!((0.0..=100.0).contains(&pp), "{key} in {row}");
        }
    }
}

#[test]
fn a_clock_variant_in_the_hardware_file_moves_the_tsu_estimate() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.toml");
    std::fs::write(&base, "[tsu]\nchip = \"devkit\"\nservice = \"chip\"\n").unwrap();
    let doubled = dir.path().join("doubled.toml");
    std::fs::write(
        &doubled,
        "[tsu]\nchip = \"devkit\"\nservice = \"chip\"\nclock_hz = 40e6\n",
    )
    .unwrap();
    let slow = tsu_estimate_ms(dir.path(), &base);
    let fast = tsu_estimate_ms(dir.path(), &doubled);
    let want = inspected_ms(dir.path(), &doubled, 40e6) / inspected_ms(dir.path(), &base, 20e6);
    assert!(
        (fast / slow / want - 1.0).abs() < 0.05,
        "{} vs {want}",
        fast / slow
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[tsu]\nclock_hz = -1\n").unwrap();
    let out = run_in(
        dir.path(),
        &[
            "run",
            &example("graphs/posterior-batch.json"),
            "--hardware",
            &bad.to_string_lossy(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tsu.clock_hz"));
}
