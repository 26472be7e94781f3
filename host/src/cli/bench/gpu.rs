//! `bench --suite gpu`: the GPU sampler and matrix product.

use std::process::ExitCode;

use anyhow::Result;

use thermoroute::model::EProgram;
use thermoroute::model::eprogram::Schedule;
use thermoroute::workloads::pm_j_lattice;

use crate::cli::print_json;

/// Spin updates per second of the GPU sampler on ±J lattices, on whatever
/// adapter wgpu finds (its name is printed).
pub fn bench(sizes: &[usize], chains: u64, json: bool) -> Result<ExitCode> {
    let gpu = thermoroute::backends::gpu::GpuDevice::shared()?;
    // A GPU needs many chains to fill; 32 at least.
    let chains = chains.max(32);
    eprintln!(
        "adapter: {} ({}, {})",
        gpu.info.name, gpu.info.backend, gpu.info.device_type
    );
    let mut rows = Vec::new();
    let schedule = |sweeps: u64| Schedule {
        warmup: sweeps,
        samples: 1,
        steps_per_sample: 1,
        chains,
    };
    // Lattices of each size, then a sparse degree-16 graph as large as the
    // largest lattice (the shape the GPU target is stated for).
    type Make = Box<dyn Fn(Schedule) -> EProgram>;
    let mut workloads: Vec<(String, Make)> = sizes
        .iter()
        .map(|&side| {
            let make: Make = Box::new(move |s| pm_j_lattice(side, 0.5, 0.1, 1, s));
            (format!("{side}x{side} lattice"), make)
        })
        .collect();
    if let Some(&side) = sizes.iter().max() {
        let n = side * side;
        let make: Make = Box::new(move |s| thermoroute::workloads::sparse_pm_j(n, 16, 0.3, 1, s));
        workloads.push((format!("{n}-spin sparse graph, degree 16"), make));
    }
    for (name, make) in &workloads {
        // A short run sizes the measured one to about two seconds.
        let t = std::time::Instant::now();
        gpu.sample(&make(schedule(10)), 1)?;
        let per_sweep = t.elapsed().as_secs_f64() / 11.0;
        let sweeps = ((2.0 / per_sweep) as u64).clamp(20, 100_000);
        let draws = gpu.sample(&make(schedule(sweeps)), 2)?;
        let rate = draws.spin_updates as f64 / draws.seconds;
        if !json {
            println!(
                "{name}, {chains} chains, {} sweeps: {:.1} M updates/s ({:.3} flips/ns)",
                sweeps + 1,
                rate / 1e6,
                rate / 1e9
            );
        }
        rows.push(serde_json::json!({
            "adapter": gpu.info.name,
            "backend": gpu.info.backend,
            "workload": name,
            "chains": chains,
            "sweeps": sweeps + 1,
            "updates_per_s": rate,
        }));
    }
    // Matrix product throughput: 512^3, after one warm-up call.
    let n = 512;
    let a: Vec<f32> = (0..n * n)
        .map(|i| ((i % 97) as f32 - 48.0) / 97.0)
        .collect();
    gpu.matmul(&a, n, n, &a, n)?;
    let t = std::time::Instant::now();
    const REPS: u32 = 3;
    let mut busy = 0.0;
    for _ in 0..REPS {
        busy += gpu.matmul(&a, n, n, &a, n)?.1.busy_seconds;
    }
    let seconds = t.elapsed().as_secs_f64() / f64::from(REPS);
    let flops = 2.0 * (n as f64).powi(3);
    let gflops = flops / seconds / 1e9;
    let kernel_gflops = flops / (busy / f64::from(REPS)) / 1e9;
    if !json {
        println!("matmul {n}x{n}x{n} (f32, upload and readback included): {gflops:.2} GFLOP/s");
        println!(
            "matmul {n}x{n}x{n} kernel only ({} timing): {kernel_gflops:.2} GFLOP/s",
            gpu.info.timing
        );
    }
    rows.push(serde_json::json!({
        "adapter": gpu.info.name,
        "matmul_n": n,
        "gflops": gflops,
        "kernel_gflops": kernel_gflops,
        "timing": gpu.info.timing,
    }));
    if json {
        print_json(&rows)?;
    }
    Ok(ExitCode::SUCCESS)
}
