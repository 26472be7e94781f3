//! The CPU kernels' instruction-set paths (`THERMOROUTE_CPU_KERNEL`): every
//! path this CPU runs draws the same bits, and `sample --json` names the
//! path in its provenance.

use std::process::{Command, Output};

use thermoroute::model::eprogram::Schedule;
use thermoroute::sampler::{CpuKernel, SamplerRun};
use thermoroute::workloads::pm_j_lattice;
use thermoroute_tests::{bin, example, json_of};

fn sample_with(kernel: &str, args: &[&str]) -> Output {
    Command::new(bin())
        .env("THERMOROUTE_CPU_KERNEL", kernel)
        .arg("sample")
        .args(args)
        .output()
        .expect("the binary runs")
}

const SCHEDULE: Schedule = Schedule {
    warmup: 20,
    samples: 30,
    steps_per_sample: 1,
    chains: 3,
};

#[test]
fn every_path_draws_the_same_bits_through_the_library() {
    // 48x48: rows of 24 same-coloured spins, so the lattice loop runs.
    for side in [48, 9] {
        let program = pm_j_lattice(side, 0.8, 0.2, 3, SCHEDULE);
        let mut hashes = Vec::new();
        for kernel in CpuKernel::available() {
            let mut run = SamplerRun::new(&program, 21)
                .unwrap()
                .with_cpu_kernel(kernel)
                .unwrap();
            assert_eq!(run.cpu_kernel(), kernel);
            run.advance(u64::MAX, Some(2), None).unwrap();
            hashes.push((kernel, run.draws().hash()));
        }
        for (kernel, hash) in &hashes {
            assert_eq!(
                hash, &hashes[0].1,
                "{side}x{side}: {kernel} differs from {}",
                hashes[0].0
            );
        }
    }
}

#[test]
fn every_path_draws_the_same_bits_through_the_cli_and_names_itself() {
    let dir = tempfile::tempdir().unwrap();
    let lattice = dir.path().join("lattice-48.json");
    std::fs::write(
        &lattice,
        serde_json::to_string(&pm_j_lattice(48, 0.8, 0.2, 3, SCHEDULE)).unwrap(),
    )
    .unwrap();
    let lattice = lattice.to_string_lossy().into_owned();
    let cases = [
        (lattice.clone(), "cpu"),
        (example("programs/one-hot-causes.json"), "cpu"),
        (example("programs/chain.json"), "tsu"),
        (example("programs/lattice-8x8.json"), "tsu"),
    ];
    for (file, backend) in &cases {
        let mut first: Option<String> = None;
        for kernel in CpuKernel::available() {
            let doc = json_of(&sample_with(
                kernel.name(),
                &[file, "--backend", backend, "--seed", "9", "--json"],
            ));
            assert_eq!(doc["provenance"]["cpu_kernel"], kernel.name(), "{file}");
            let hash = doc["provenance"]["draws_hash"]
                .as_str()
                .unwrap()
                .to_string();
            match &first {
                Some(h) => assert_eq!(&hash, h, "{file} on {backend}, {kernel}"),
                None => first = Some(hash),
            }
        }
    }
    // Unset or `auto`: the fastest path this CPU runs.
    let doc = json_of(&sample_with("auto", &[&lattice, "--json"]));
    assert_eq!(doc["provenance"]["cpu_kernel"], CpuKernel::detect().name());
}

#[test]
fn an_unknown_cpu_kernel_is_a_clear_error() {
    let out = sample_with("avx9", &[&example("programs/chain.json"), "--json"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("THERMOROUTE_CPU_KERNEL") && err.contains("avx9") && err.contains("avx512"),
        "{err}"
    );
    assert!(out.stdout.is_empty(), "nothing on stdout after the error");
}
