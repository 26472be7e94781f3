//! The GPU sampler (wgpu; lavapipe where there is no GPU) against exact
//! enumeration, with the CPU tests' tolerance: every marginal within 4.5
//! Monte-Carlo standard errors (from the bulk ESS). Fixed seeds.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use ndarray::ArrayD;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use thermoroute::backends::gpu::{GpuBackend, GpuDevice, GpuError, GpuSampling};
use thermoroute::backends::value::{NodeCall, NodeInputs, Value};
use thermoroute::backends::{Backend, CpuBackend, SamplingTask};
use thermoroute::device::Target;
use thermoroute::engine::{EngineConfig, Mode, RunReport};
use thermoroute::hardware::Hardware;
use thermoroute::model::Graph;
use thermoroute::model::eprogram::{Constraint, ConstraintKind, EProgram, Factor};
use thermoroute::trace::{FailureAction, FailureKind, TraceEvent, read_trace};
use thermoroute_tests::models::{
    assert_matches_exact, clamped_ising, program, random_factors, random_ising,
    spins_and_categoricals,
};
use thermoroute_tests::{bin, example, json_of};

/// The process's one device (acquiring one takes a while on lavapipe).
fn gpu() -> Arc<GpuDevice> {
    GpuDevice::shared().expect(
        "a wgpu adapter (scripts/test.sh installs Mesa's Vulkan driver where there is no GPU)",
    )
}

fn check(p: &EProgram, seed: u64, label: &str) {
    let draws = gpu().sample(p, seed).unwrap();
    assert_matches_exact(p, &draws, seed, label);
}

#[test]
fn ising_random_graphs_match_exact_enumeration() {
    for seed in 0..3u64 {
        let mut rng = ChaCha8Rng::seed_from_u64(200 + seed);
        check(
            &program(random_ising(&mut rng, 10 + seed as usize, 0.35)),
            seed,
            "ising",
        );
    }
}

#[test]
fn clamps_and_beta_are_honoured() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    check(&clamped_ising(&mut rng, 13), 12, "ising-clamped");
}

fn mixed(seed: u64) -> EProgram {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut p = spins_and_categoricals(&mut rng, 7, []);
    p.factors = random_factors(
        &mut rng,
        &[(&[7, 8], 12), (&[0, 7], 6), (&[8, 3], 8), (&[5], 2)],
    );
    p.clamp.insert("1".into(), 1);
    p
}

#[test]
fn categoricals_with_unary_and_pairwise_factors_match_exact_enumeration() {
    for seed in 0..2 {
        check(&mixed(seed), seed, "mixed");
    }
}

#[test]
fn draws_are_deterministic_for_a_seed() {
    let p = mixed(5);
    let a = gpu().sample(&p, 3).unwrap();
    let b = gpu().sample(&p, 3).unwrap();
    let c = gpu().sample(&p, 4).unwrap();
    assert_eq!(a.values, b.values);
    assert_ne!(a.values, c.values);
}

/// Spins under a one-hot and an exactly-2 constraint (one member clamped
/// up), coupled to each other and to free spins and a categorical.
fn constrained(seed: u64) -> EProgram {
    let mut p = mixed(seed);
    p.constraints = vec![
        Constraint {
            kind: ConstraintKind::OneHot,
            vars: vec![2, 4, 6],
            k: None,
        },
        Constraint {
            kind: ConstraintKind::ExactlyK,
            vars: vec![1, 3, 5, 0],
            k: Some(2),
        },
    ];
    p
}

#[test]
fn hard_constraints_are_honoured_and_match_exact_enumeration() {
    for seed in 0..2 {
        let p = constrained(seed);
        let draws = gpu().sample(&p, seed).unwrap();
        // Every draw of every chain satisfies both constraints.
        for chain in 0..draws.chains {
            for sample in 0..draws.samples {
                let up = |vars: &[usize]| {
                    vars.iter()
                        .filter(|&&v| draws.get(chain, sample, v) > 0)
                        .count()
                };
                assert_eq!(up(&[2, 4, 6]), 1);
                assert_eq!(up(&[1, 3, 5, 0]), 2);
            }
        }
        assert_matches_exact(&p, &draws, seed, "constrained");
    }
}

#[test]
fn programs_the_kernel_cannot_run_are_refused_with_the_reason() {
    let mut p = mixed(1);
    p.factors.push(Factor {
        vars: vec![2, 4, 6],
        log_potential: vec![0.0; 8],
    });
    assert!(
        matches!(gpu().sample(&p, 0), Err(GpuError::Unsupported(r)) if r.contains("across 3 units")),
    );
    // A factor over three spins of one constrained block is a table over
    // the block's configurations: that runs.
    let mut p = constrained(1);
    p.factors.push(Factor {
        vars: vec![2, 4, 6],
        log_potential: (0..8).map(|i| f64::from(i) * 0.1).collect(),
    });
    assert_matches_exact(&p, &gpu().sample(&p, 2).unwrap(), 2, "block factor");
    // 10 choose 5 configurations are more than the kernel's 64 states.
    let mut p = program(random_ising(&mut ChaCha8Rng::seed_from_u64(4), 12, 0.3));
    p.constraints = vec![Constraint {
        kind: ConstraintKind::ExactlyK,
        vars: (0..10).collect(),
        k: Some(5),
    }];
    assert!(
        matches!(gpu().sample(&p, 0), Err(GpuError::Unsupported(r)) if r.contains("252 configurations"))
    );
}

#[test]
fn the_cli_samples_on_the_gpu_and_says_when_there_is_none() {
    let program = example("programs/lattice-8x8.json");
    let out = std::process::Command::new(bin())
        .args([
            "sample",
            &program,
            "--backend",
            "gpu",
            "--seed",
            "1",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc = json_of(&out);
    assert_eq!(doc["provenance"]["backend"], "gpu-sim");
    assert!(
        doc["provenance"]["adapter"]["name"]
            .as_str()
            .is_some_and(|n| !n.is_empty())
    );
    assert_eq!(doc["marginals"].as_array().unwrap().len(), 64);

    let none = std::process::Command::new(bin())
        .env("THERMOROUTE_GPU", "off")
        .args(["sample", &program, "--backend", "gpu"])
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&none.stderr).contains("no GPU available"));
}

#[test]
fn matmul_matches_the_cpu_within_float_tolerance() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    // Sizes that are not multiples of the 16x16 tile, and one that is.
    for (m, k, n) in [(37, 53, 29), (1, 7, 1), (64, 32, 48)] {
        let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let got = gpu().matmul(&a, m, k, &b, n).unwrap().0;
        for i in 0..m {
            for j in 0..n {
                let want: f64 = (0..k)
                    .map(|r| a[i * k + r] as f64 * b[r * n + j] as f64)
                    .sum();
                let g = got[i * n + j] as f64;
                assert!(
                    (g - want).abs() <= 1e-4 * (1.0 + want.abs()) * (k as f64).sqrt(),
                    "[{m}x{k}x{n}] ({i},{j}): gpu {g}, cpu {want}"
                );
            }
        }
    }
    assert!(gpu().matmul(&[1.0; 6], 2, 3, &[1.0; 5], 2).is_err());
}

#[test]
fn mlp_inference_matches_the_cpu_for_every_activation() {
    let spec: thermoroute::model::graph::NnSpec = serde_json::from_value(serde_json::json!({
        "layers": [
            { "weights": { "shape": [24, 40], "generator": { "seed": 1, "dist": "normal", "scale": 0.3 } },
              "bias": (0..24).map(|i| i as f64 * 0.01).collect::<Vec<_>>(), "activation": "relu" },
            { "weights": { "shape": [16, 24], "generator": { "seed": 2, "dist": "normal", "scale": 0.3 } },
              "activation": "tanh" },
            { "weights": { "shape": [5, 16], "generator": { "seed": 3, "dist": "normal", "scale": 0.5 } },
              "activation": "sigmoid" },
            { "weights": { "shape": [3, 5], "generator": { "seed": 4, "dist": "normal" } },
              "activation": "identity" }
        ]
    }))
    .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let batch = 5;
    let input: Vec<f64> = (0..batch * 40)
        .map(|_| rng.random_range(-1.0..1.0))
        .collect();
    let input32: Vec<f32> = input.iter().map(|&v| v as f32).collect();
    let got = gpu().mlp(&spec, &input32, batch).unwrap().0;
    assert_eq!(got.len(), batch * 3);
    for row in 0..batch {
        let x = ndarray::ArrayD::from_shape_vec(
            ndarray::IxDyn(&[40]),
            input[row * 40..(row + 1) * 40].to_vec(),
        )
        .unwrap();
        let want = thermoroute::backends::cpu::kernels::mlp(&spec, &x).unwrap();
        for (j, w) in want.iter().enumerate() {
            let g = got[row * 3 + j] as f64;
            assert!(
                (g - w).abs() < 1e-4,
                "row {row} output {j}: gpu {g}, cpu {w}"
            );
        }
    }
}

#[test]
fn sampling_in_slices_gives_the_draws_of_one_call() {
    let p = mixed(2);
    let whole = gpu().sample(&p, 11).unwrap();
    let mut run = GpuSampling::new(gpu(), &p, 11).unwrap();
    let mut seen = 0;
    while !run.is_done() {
        run.advance(7).unwrap();
        // Draws so far are a prefix of every chain's final draws.
        let part = run.draws();
        assert_eq!(part.samples, run.samples_done());
        assert!(part.samples >= seen);
        seen = part.samples;
        for chain in 0..part.chains {
            for sample in 0..part.samples {
                for var in 0..part.n_vars {
                    assert_eq!(part.get(chain, sample, var), whole.get(chain, sample, var));
                }
            }
        }
    }
    assert_eq!(run.draws().values, whole.values);
    assert_eq!(run.samples_done(), whole.samples);
}

/// More than 65,535 workgroups per colour: the dispatch becomes a 2-D grid
/// (a real GPU bench with 256 chains on 256×256 hit the limit). Chains are
/// keyed by index, so the first chains match a run of fewer chains.
#[test]
fn colours_past_the_one_dimensional_dispatch_limit_sample_correctly() {
    let schedule = thermoroute::model::eprogram::Schedule {
        warmup: 1,
        samples: 1,
        steps_per_sample: 1,
        chains: 1024,
    };
    let mut big = thermoroute::workloads::pm_j_lattice(128, 0.4, 0.1, 3, schedule);
    // 8,192 spins per colour × 1,024 chains / 64 per workgroup = 131,072.
    let wide = gpu().sample(&big, 5).unwrap();
    big.schedule.chains = 2;
    let narrow = gpu().sample(&big, 5).unwrap();
    for chain in 0..2 {
        for var in 0..narrow.n_vars {
            assert_eq!(wide.get(chain, 0, var), narrow.get(chain, 0, var));
        }
    }
    assert_eq!(wide.chains, 1024);
}

#[test]
fn buffers_are_reused_across_calls() {
    // A private device, so that no other test's calls move its counters.
    let gpu = GpuDevice::acquire().unwrap();
    let a = vec![0.5f32; 40 * 30];
    gpu.matmul(&a, 40, 30, &a, 40).unwrap();
    let first = gpu.pool_stats();
    assert!(first.allocated > 0);
    gpu.matmul(&a, 40, 30, &a, 40).unwrap();
    let second = gpu.pool_stats();
    assert_eq!(second.allocated, first.allocated, "{first:?} -> {second:?}");
    assert_eq!(second.reused - first.reused, first.allocated);
}

fn graph(value: serde_json::Value) -> Graph {
    Graph::from_json(Path::new("gpu-test.json"), &value.to_string()).unwrap()
}

fn constant(id: &str, shape: &[usize], seed: u64) -> serde_json::Value {
    json!({ "id": id, "kind": "tensor", "tensor": { "op": "const",
        "value": { "shape": shape, "generator": { "seed": seed, "dist": "normal", "scale": 1.5 } } } })
}

fn op(id: &str, op: &str, inputs: &[&str], axis: Option<usize>) -> serde_json::Value {
    let mut tensor = json!({ "op": op });
    if let Some(axis) = axis {
        tensor["axis"] = json!(axis);
    }
    json!({ "id": id, "kind": "tensor", "inputs": inputs, "tensor": tensor })
}

fn tensor_of(v: &Value) -> &ArrayD<f64> {
    match v {
        Value::Tensor(t) => t,
        other => panic!("not a tensor: {other:?}"),
    }
}

#[test]
fn every_tensor_op_and_the_mlp_match_the_cpu_backend() {
    let g = graph(json!({
        "nodes": [
            constant("a", &[3, 4, 5], 1),
            constant("b", &[3, 4, 5], 2),
            constant("s", &[1], 3),
            constant("m", &[7, 5], 4),
            constant("v", &[5], 5),
            constant("n", &[5, 9], 6),
            // 70 000 rows: more reductions than one row of the dispatch grid.
            constant("tall", &[70_000, 3], 7),
            op("add", "add", &["a", "b"], None),
            op("mul_scalar", "mul", &["s", "a"], None),
            op("relu", "relu", &["a"], None),
            op("tanh", "tanh", &["a"], None),
            op("sigmoid", "sigmoid", &["a"], None),
            op("sum_all", "sum", &["a"], None),
            op("mean_1", "mean", &["a"], Some(1)),
            op("max_2", "max", &["a"], Some(2)),
            op("sum_0", "sum", &["a"], Some(0)),
            op("rows", "sum", &["tall"], Some(1)),
            op("matvec", "matmul", &["m", "v"], None),
            op("matmat", "matmul", &["m", "n"], None),
            { "id": "mlp", "kind": "nn", "inputs": ["v"], "nn": { "layers": [
                { "weights": { "shape": [8, 5], "generator": { "seed": 8, "dist": "normal" } }, "bias": vec![0.1; 8], "activation": "tanh" },
                { "weights": { "shape": [3, 8], "generator": { "seed": 9, "dist": "normal" } }, "activation": "sigmoid" } ] } },
            // Misshapen: both backends fail the node with the same reason.
            op("bad_add", "add", &["a", "m"], None),
            op("bad_axis", "sum", &["a"], Some(3)),
            op("bad_matmul", "matmul", &["m", "m"], None)
        ],
        "qos": {}
    }));
    let index = g.index();
    let mut cpu = CpuBackend::default();
    let mut gpu = GpuBackend::with_device(Ok(gpu()), 250.0);
    let mut values = HashMap::new();
    for i in 0..g.nodes.len() {
        let inputs = NodeInputs {
            values: &values,
            index: &index,
        };
        let call = NodeCall {
            graph: &g,
            node: i,
            inputs,
        };
        let want = cpu.run_node(call).unwrap();
        let got = gpu.run_node(call).unwrap();
        let id = &g.nodes[i].id;
        let energy = gpu.take_energy_j();
        match (&want, &got) {
            (Ok((w, _)), Ok((v, summary))) => {
                let (w, v) = (tensor_of(w), tensor_of(v));
                assert_eq!(w.shape(), v.shape(), "{id}");
                assert_eq!(summary["shape"], json!(w.shape()), "{id}");
                for (x, y) in w.iter().zip(v) {
                    assert!(
                        (x - y).abs() <= 2e-5 * (1.0 + x.abs()) * (w.len() as f64).sqrt().max(1.0),
                        "{id}: cpu {x}, gpu {y}"
                    );
                }
                if id.len() > 1 && !matches!(id.as_str(), "tall") {
                    // Work ran on the device: its energy is power x busy time.
                    let j = energy.unwrap_or_else(|| panic!("{id}: no energy measured"));
                    assert!(j > 0.0 && j.is_finite(), "{id}: {j} J");
                }
            }
            (Err(w), Err(v)) => assert_eq!(w, v, "{id}"),
            _ => panic!("{id}: cpu {want:?}, gpu {got:?}"),
        }
        if let Ok((value, _)) = want {
            values.insert(i, value);
        }
    }
    assert!(values.len() >= 20);
}

/// A graph whose NN node and sampling node both prefer the GPU when there is
/// no TSU.
fn gpu_pipeline() -> Graph {
    graph(json!({
        "nodes": [
            constant("x", &[256], 1),
            { "id": "mlp", "kind": "nn", "inputs": ["x"], "nn": { "layers": [
                { "weights": { "shape": [256, 256], "generator": { "seed": 2, "dist": "normal", "scale": 0.05 } }, "activation": "relu" } ] } },
            { "id": "s", "kind": "sample", "sample": { "seed": 4, "program": {
                "ising": { "n": 8, "biases": [0.2, -0.1, 0.0, 0.3, 0.1, -0.2, 0.0, 0.1],
                           "edges": [[0,1],[1,2],[2,3],[3,4],[4,5],[5,6],[6,7]], "weights": [0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4] },
                "schedule": { "warmup": 50, "samples": 20000, "steps_per_sample": 1, "chains": 256 } } } }
        ],
        "qos": { "batch_size": 256 }
    }))
}

/// Runs [`gpu_pipeline`] once in execute mode on a machine with no TSU and
/// the GPU adapter `adapter` names, tracing to `trace`.
fn execute_pipeline(adapter: &str, trace: &Path) -> RunReport {
    let hw = Hardware::from_toml(
        Path::new("hw.toml"),
        &format!("[tsu]\ncount = 0\n[gpu]\nadapter = \"{adapter}\"\nactive_w = 250.0\n"),
    )
    .unwrap();
    thermoroute_tests::run_engine(
        vec![gpu_pipeline()],
        hw,
        EngineConfig {
            mode: Mode::Execute,
            trace: Some(trace.to_path_buf()),
            threads: Some(1),
            ..Default::default()
        },
    )
}

#[test]
fn the_engine_runs_nodes_on_the_gpu_and_charges_its_busy_energy() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("gpu.jsonl");
    let report = execute_pipeline("auto", &trace);
    let job = &report.jobs[0];
    let node = |id: &str| job.nodes.iter().find(|n| n.id == id).unwrap();
    let events = read_trace(&trace).unwrap().events;
    let failures: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, TraceEvent::Failure { .. }))
        .collect();
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(node("mlp").backend, Some(Target::Gpu), "{:?}", node("mlp"));
    assert_eq!(node("s").backend, Some(Target::GpuSim), "{:?}", node("s"));
    let out = node("s").output.as_ref().unwrap();
    assert_eq!(out["samples"], 20000);
    // The sampler's marginals agree with the CPU reference execution.
    let reference = thermoroute::exec::execute(&gpu_pipeline(), Default::default());
    let cpu = &reference.nodes.iter().find(|n| n.id == "s").unwrap().output["marginals"];
    for v in 0..8 {
        let (g, c) = (
            out["marginals"][v].as_f64().unwrap(),
            cpu[v].as_f64().unwrap(),
        );
        assert!((g - c).abs() < 0.03, "spin {v}: gpu {g}, cpu {c}");
    }
    // Energy is the GPU's power over its busy time, never more than power
    // over the node's whole service time.
    let mut gpu_ends = 0;
    for e in &events {
        if let TraceEvent::End {
            target: Target::Gpu | Target::GpuSim,
            service_ms,
            energy_j,
            ..
        } = e
        {
            gpu_ends += 1;
            assert!(*energy_j > 0.0, "{e:?}");
            assert!(*energy_j <= 250.0 * service_ms / 1e3 * 1.000_001, "{e:?}");
        }
    }
    assert_eq!(gpu_ends, 2);
}

#[test]
fn without_an_adapter_gpu_work_falls_back_to_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("none.jsonl");
    let report = execute_pipeline("none", &trace);
    let job = &report.jobs[0];
    assert_eq!(job.status, thermoroute::exec::JobStatus::Completed);
    let node = |id: &str| job.nodes.iter().find(|n| n.id == id).unwrap();
    assert_eq!(node("mlp").backend, Some(Target::Cpu));
    assert_eq!(node("s").backend, Some(Target::CpuRef));
    let fallbacks: Vec<String> = read_trace(&trace)
        .unwrap()
        .events
        .into_iter()
        .filter_map(|e| match e {
            TraceEvent::Failure {
                kind: FailureKind::BackendUnavailable,
                action: FailureAction::Fallback,
                detail,
                ..
            } => Some(detail),
            _ => None,
        })
        .collect();
    assert_eq!(fallbacks.len(), 2, "{fallbacks:?}");
    assert!(
        fallbacks.iter().all(|d| d.contains("gpu.adapter")),
        "{fallbacks:?}"
    );
}
