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
}

#[test]
fn tsu_benchmark_prints_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let doc = json_of(&run_in(dir.path(), &["bench", "--suite", "tsu", "--json"]));
    let rows = doc["results"].as_array().unwrap();
    // The lattice, and the z1-like chip with 2 and with 8 chains.
    assert_eq!(rows.len(), 3);
    for r in rows {
        assert!(r["cell_updates_per_s"].as_f64().unwrap() > 0.0);
        assert!(
            r["tsu_energy_per_sample_j"].as_f64().unwrap()
                < r["cpu_modelled_energy_per_sample_j"].as_f64().unwrap()
        );
    }
}
