//! The GPU sampler (wgpu; lavapipe where there is no GPU) against exact
//! enumeration, with the CPU tests' tolerance: every marginal within 4.5
//! Monte-Carlo standard errors (from the bulk ESS). Fixed seeds.

use std::sync::OnceLock;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use thermoroute::backends::gpu::{GpuDevice, GpuError};
use thermoroute::model::eprogram::{CategoricalVar, Constraint, ConstraintKind, EProgram, Factor};
use thermoroute_tests::models::{assert_matches_exact, program, random_ising};
use thermoroute_tests::{bin, example, json_of};

/// One device for the whole test binary (acquiring one takes a while on lavapipe).
fn gpu() -> &'static GpuDevice {
    static GPU: OnceLock<GpuDevice> = OnceLock::new();
    GPU.get_or_init(|| {
        GpuDevice::acquire().expect(
            "a wgpu adapter (scripts/test.sh installs Mesa's Vulkan driver where there is no GPU)",
        )
    })
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
    let mut p = program(random_ising(&mut rng, 13, 0.3));
    p.beta = 1.3;
    p.clamp.insert("2".into(), 1);
    p.clamp.insert("9".into(), -1);
    check(&p, 12, "ising-clamped");
}

fn mixed(seed: u64) -> EProgram {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut p = program(random_ising(&mut rng, 7, 0.3));
    p.categorical = vec![
        CategoricalVar {
            states: 3,
            log_potential: Some(vec![0.2, -0.4, 0.1]),
        },
        CategoricalVar {
            states: 4,
            log_potential: None,
        },
    ];
    let mut table = |size: usize| (0..size).map(|_| rng.random_range(-1.0..1.0)).collect();
    p.factors = vec![
        Factor {
            vars: vec![7, 8],
            log_potential: table(12),
        },
        Factor {
            vars: vec![0, 7],
            log_potential: table(6),
        },
        Factor {
            vars: vec![8, 3],
            log_potential: table(8),
        },
        Factor {
            vars: vec![5],
            log_potential: table(2),
        },
    ];
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

#[test]
fn programs_the_kernel_cannot_run_are_refused_with_the_reason() {
    let mut p = mixed(1);
    p.constraints = vec![Constraint {
        kind: ConstraintKind::OneHot,
        vars: vec![2, 4],
        k: None,
    }];
    assert!(
        matches!(gpu().sample(&p, 0), Err(GpuError::Unsupported(r)) if r.contains("constraint"))
    );
    let mut p = mixed(1);
    p.factors.push(Factor {
        vars: vec![2, 4, 6],
        log_potential: vec![0.0; 8],
    });
    assert!(
        matches!(gpu().sample(&p, 0), Err(GpuError::Unsupported(r)) if r.contains("couples 3 variables"))
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
        let got = gpu().matmul(&a, m, k, &b, n).unwrap();
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
    let got = gpu().mlp(&spec, &input32, batch).unwrap();
    assert_eq!(got.len(), batch * 3);
    for row in 0..batch {
        let x = ndarray::ArrayD::from_shape_vec(
            ndarray::IxDyn(&[40]),
            input[row * 40..(row + 1) * 40].to_vec(),
        )
        .unwrap();
        let want = thermoroute::backends::cpu::mlp(&spec, &x).unwrap();
        for (j, w) in want.iter().enumerate() {
            let g = got[row * 3 + j] as f64;
            assert!(
                (g - w).abs() < 1e-4,
                "row {row} output {j}: gpu {g}, cpu {w}"
            );
        }
    }
}
