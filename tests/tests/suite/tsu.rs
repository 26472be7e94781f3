//! The simulated TSU through the host: exact enumeration, quantisation error
//! against calibration, fault signatures, eligibility, and the engine.

use std::path::Path;

use serde_json::json;
use thermoroute::backends::SamplingTask;
use thermoroute::backends::tsu::{TsuDriver, tsu_draws};
use thermoroute::calibration::{calibrate, error_against_exact, suite_program};
use thermoroute::device::Target;
use thermoroute::diagnostics::diagnose;
use thermoroute::engine::{EngineConfig, Mode, RunReport};
use thermoroute::hardware::Hardware;
use thermoroute::model::{EProgram, Graph};
use thermoroute::policy::Ineligible;
use thermoroute::sampler::exact::exact_marginals;
use thermoroute::trace::{FailureAction, FailureKind, JobStatus, TraceEvent};

fn hardware(toml: &str) -> Hardware {
    Hardware::from_toml(Path::new("hw.toml"), toml).unwrap()
}

/// A 16-bit chip with an ideal RNG (a "high precision" devkit).
const PRECISE: &str = "[tsu]\nchip_file = \"__CHIP__\"\n";

fn precise_hardware(dir: &Path, weight_bits: u32) -> Hardware {
    let mut chip = thermoroute_sim::ChipConfig::devkit();
    chip.weight_bits = weight_bits;
    chip.bias_bits = weight_bits;
    let file = dir.join(format!("chip{weight_bits}.toml"));
    std::fs::write(&file, chip.to_toml()).unwrap();
    let mut hw = hardware(&PRECISE.replace("__CHIP__", file.to_str().unwrap()));
    hw.tsu.precision_tolerance = 1.0;
    hw
}

fn run_tsu(hw: &Hardware, program: &EProgram, seed: u64) -> thermoroute::sampler::Draws {
    let driver = TsuDriver::from_hardware(hw).unwrap();
    let image = driver.compile(program).unwrap();
    let mut run = driver.start(image, seed);
    run.advance(u64::MAX).unwrap();
    tsu_draws(run.run())
}

#[test]
fn precise_tsu_marginals_match_exact_enumeration() {
    let dir = tempfile::tempdir().unwrap();
    let hw = precise_hardware(dir.path(), 16);
    for i in 0..6 {
        let program = suite_program(50 + i, 8);
        let exact = exact_marginals(&program).unwrap();
        let draws = run_tsu(&hw, &program, i);
        let diag = diagnose(&draws);
        let m = draws.state_marginals();
        for v in 0..8 {
            let p = exact[v][1];
            let se = (p * (1.0 - p) / diag.ess_bulk[v].unwrap()).sqrt();
            let z = (m[v][1] - p).abs() / se;
            assert!(
                z < 4.5,
                "program {i} var {v}: {} vs exact {p} ({z:.2} se)",
                m[v][1]
            );
        }
    }
}

#[test]
fn coarse_weights_err_more_as_calibration_predicts() {
    let dir = tempfile::tempdir().unwrap();
    let fine = calibrate(&precise_hardware(dir.path(), 16), 8, 0, |_, _| {}).unwrap();
    let coarse_hw = precise_hardware(dir.path(), 4);
    let coarse = calibrate(&coarse_hw, 8, 0, |_, _| {}).unwrap();
    let (fine, coarse) = (fine.tsu.unwrap(), coarse.tsu.unwrap());
    assert!(
        coarse.bias > 0.02 && coarse.bias > 3.0 * fine.bias,
        "4-bit bias {} vs 16-bit {}",
        coarse.bias,
        fine.bias
    );
    // Held-out programs of the same family: the error is what calibration
    // predicts (bias + Monte Carlo), within a factor of 2.5.
    let mut measured = 0.0;
    let mut predicted = 0.0;
    for i in 0..6 {
        let program = suite_program(500 + i, 8);
        let (err, mc) = error_against_exact(&program, &run_tsu(&coarse_hw, &program, 77 + i));
        measured += err;
        predicted += coarse.bias + 1.5 * mc;
    }
    let ratio = measured / predicted;
    assert!(
        (0.4..2.5).contains(&ratio),
        "measured {measured} vs predicted {predicted}"
    );
}

#[test]
fn a_stuck_cell_shows_as_a_frozen_marginal() {
    let hw = hardware("[tsu.chip_faults]\nstuck = [[2, 1]]\n");
    let program = suite_program(3, 8);
    let m = run_tsu(&hw, &program, 1).state_marginals();
    assert_eq!(m[2][1], 1.0, "stuck at +1");
    let healthy = run_tsu(&Hardware::default(), &program, 1).state_marginals();
    assert!(healthy[2][1] < 1.0);
}

#[test]
fn every_eligibility_rule_rejects_with_its_reason() {
    let driver = TsuDriver::from_hardware(&Hardware::default()).unwrap();
    let load = |name: &str| {
        EProgram::load(
            &Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/programs")).join(name),
        )
        .unwrap()
    };
    // Unsupported factor types and constraints (and categorical variables).
    let reasons = driver.compile(&load("one-hot-causes.json")).unwrap_err();
    let tags = |rs: &[Ineligible]| -> Vec<String> {
        rs.iter()
            .map(|r| {
                serde_json::to_value(r).unwrap()["reason"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(
        tags(&reasons),
        [
            "unsupported_variables",
            "unsupported_factors",
            "unsupported_constraints"
        ]
    );
    // Schedule beyond the chip's limits.
    let mut long = suite_program(1, 8);
    long.schedule.warmup = 2_000_000;
    assert_eq!(
        tags(&driver.compile(&long).unwrap_err()),
        ["schedule_out_of_range"]
    );
    // Capacity: more spins than cells; more couplings than slots.
    let mut big = suite_program(1, 8);
    let n = 5000;
    let ising = big.ising.as_mut().unwrap();
    ising.n = n;
    ising.biases = vec![0.0; n];
    ising.edges = (0..n - 1).map(|i| [i, i + 1]).collect();
    ising.weights = vec![0.1; n - 1];
    assert!(tags(&driver.compile(&big).unwrap_err()).contains(&"capacity".to_string()));
    let mut hub = suite_program(1, 12);
    let ising = hub.ising.as_mut().unwrap();
    ising.edges = (1..12).map(|j| [0, j]).collect();
    ising.weights = vec![0.1; 11];
    let reasons = driver.compile(&hub).unwrap_err();
    assert!(
        reasons[0].to_string().contains("11 couplings"),
        "{reasons:?}"
    );
    // Precision: a weight that saturates, and a grid too coarse for the tolerance.
    let mut strong = suite_program(1, 8);
    strong.ising.as_mut().unwrap().weights[0] = 3.0;
    assert_eq!(tags(&driver.compile(&strong).unwrap_err()), ["precision"]);
    let strict = TsuDriver {
        tolerance: 0.001,
        ..driver.clone()
    };
    assert!(
        tags(&strict.compile(&suite_program(1, 8)).unwrap_err())
            .iter()
            .all(|t| t == "precision")
    );

    // Conditioning that cannot be compiled and a policy against hardware
    // stochasticity are the scheduler's verdicts for the TSU target.
    let g = |risk: &str| {
        Graph::from_json(Path::new("g.json"), &json!({
            "nodes": [
                { "id": "x", "kind": "tensor", "tensor": { "op": "const", "value": { "shape": [1], "data": [0.3] } } },
                { "id": "s", "kind": "sample", "inputs": ["x"], "sample": {
                    "program": serde_json::to_value(suite_program(2, 6)).unwrap(),
                    "bias_from": [{ "node": "x", "vars": [0] }] } }
            ],
            "qos": { "risk": risk }
        }).to_string()).unwrap()
    };
    let reasons_for = |hw: Hardware, risk: &str| -> Vec<String> {
        let r = run(
            vec![g(risk)],
            hw,
            EngineConfig {
                mode: Mode::Simulate,
                ..Default::default()
            },
        );
        r.jobs[0].nodes[1].candidates[0].reasons.clone()
    };
    let no_rewrite = reasons_for(hardware("[tsu]\nruntime_bias = false\n"), "reversible");
    assert!(
        no_rewrite
            .iter()
            .any(|r| r.contains("cannot rewrite biases")),
        "{no_rewrite:?}"
    );
    let forbidden = reasons_for(
        hardware("[policy]\nhardware_stochasticity = \"reversible-only\"\n"),
        "irreversible",
    );
    assert!(
        forbidden
            .iter()
            .any(|r| r.contains("forbids hardware stochasticity")),
        "{forbidden:?}"
    );
}

use thermoroute_tests::{
    arrivals_at, run_engine as run, run_engine_traced as run_traced, trace_failures,
};

fn sampling_graph(name: &str, priority: &str, program: EProgram) -> Graph {
    Graph::from_json(Path::new("g.json"), &json!({
        "name": name,
        "nodes": [{ "id": "s", "kind": "sample", "sample": { "program": serde_json::to_value(program).unwrap(), "seed": 3 } }],
        "qos": { "priority": priority }
    }).to_string()).unwrap()
}

fn long_program() -> EProgram {
    let mut p = suite_program(4, 8);
    p.schedule.samples = 20_000;
    p
}

#[test]
fn the_engine_executes_on_the_tsu_in_device_time() {
    let hw = hardware("[gpu]\ncount = 0\n");
    let r = run(
        vec![sampling_graph("s", "batch", long_program())],
        hw,
        EngineConfig::default(),
    );
    let node = &r.jobs[0].nodes[0];
    assert_eq!(node.backend, Some(Target::Tsu));
    let out = node.output.as_ref().unwrap();
    assert!(out["image_hash"].as_str().unwrap().starts_with("sha256:"));
    assert!(out["chip_hash"].as_str().unwrap().starts_with("sha256:"));
    // Virtual time is the chip's: cycles / clock, not the host's wall time.
    let driver = TsuDriver::from_hardware(&Hardware::default()).unwrap();
    let image = driver.compile(&long_program()).unwrap();
    let est = thermoroute_sim::estimate(&image, &driver.chip);
    assert!(
        (node.latency_ms.unwrap() - est.seconds * 1e3).abs() < 1e-6 * est.seconds * 1e3 + 1e-9,
        "{} vs {}",
        node.latency_ms.unwrap(),
        est.seconds * 1e3
    );
}

#[test]
fn tsu_preemption_resumes_with_identical_draws() {
    let hw = hardware("[gpu]\ncount = 0\n[cpu]\ncores = 1\n[budgets]\nslice_sweeps = 500\n");
    let (both, events) = run_traced(
        vec![
            sampling_graph("batch", "batch", long_program()),
            sampling_graph("interactive", "interactive", suite_program(9, 8)),
        ],
        hw.clone(),
        EngineConfig {
            arrivals: arrivals_at(&[(0.0, 0), (0.2, 1)]),
            ..Default::default()
        },
    );
    assert_eq!(both.counters.preemptions, 1);
    assert_eq!(both.jobs[0].nodes[0].backend, Some(Target::Tsu));
    assert_eq!(both.jobs[1].nodes[0].backend, Some(Target::Tsu));
    assert!(events.iter().any(|e| matches!(
        e,
        TraceEvent::Resume {
            job: 0,
            target: Target::Tsu,
            ..
        }
    )));
    let alone = run(
        vec![sampling_graph("batch", "batch", long_program())],
        hw,
        EngineConfig::default(),
    );
    let hash = |r: &RunReport| r.jobs[0].nodes[0].output.as_ref().unwrap()["draws_hash"].clone();
    assert_eq!(hash(&both), hash(&alone));
    assert!(
        both.jobs[0].latency_ms > alone.jobs[0].latency_ms,
        "the checkpoint and the wait cost time"
    );
}

#[test]
fn an_offline_chip_is_backend_unavailable_and_falls_back() {
    let hw = hardware(
        "[gpu]\ncount = 0\n[tsu.chip_faults]\noffline = [{ from_s = 0.0, to_s = 10.0 }]\n",
    );
    let (r, events) = run_traced(
        vec![sampling_graph("s", "batch", long_program())],
        hw,
        EngineConfig::default(),
    );
    assert_eq!(r.jobs[0].status, JobStatus::Completed);
    assert_eq!(r.jobs[0].nodes[0].backend, Some(Target::CpuRef));
    assert_eq!(
        trace_failures(&events),
        [(FailureKind::BackendUnavailable, FailureAction::Fallback)]
    );
}

#[test]
fn a_shared_tsu_serves_slower() {
    let full = run(
        vec![sampling_graph("s", "batch", long_program())],
        hardware("[gpu]\ncount = 0\n"),
        EngineConfig::default(),
    );
    let half = run(
        vec![sampling_graph("s", "batch", long_program())],
        hardware("[gpu]\ncount = 0\n[tsu]\nshared_fraction = 0.5\n"),
        EngineConfig::default(),
    );
    assert_eq!(half.jobs[0].nodes[0].backend, Some(Target::Tsu));
    let (a, b) = (full.jobs[0].latency_ms, half.jobs[0].latency_ms);
    assert!((b / a - 2.0).abs() < 1e-6, "{a} ms vs {b} ms");
    let hash = |r: &RunReport| r.jobs[0].nodes[0].output.as_ref().unwrap()["draws_hash"].clone();
    assert_eq!(
        hash(&full),
        hash(&half),
        "sharing changes time, not samples"
    );
}
