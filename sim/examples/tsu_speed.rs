//! The simulator's speed on the z1-like preset filled edge to edge, on each
//! CPU kernel path, with a hash of the draws (which must agree across paths).
//!
//! `cargo run --release -p thermoroute-sim --example tsu_speed -- [chains] [sweeps] [repeats]`

use std::sync::Arc;

use sha2::{Digest, Sha256};
use thermoroute_sim::{ChipConfig, CpuKernel, Faults, Schedule, SpinProblem, TsuRun, compile};

fn z1_filled(height: usize, chains: u64, sweeps: u64) -> SpinProblem {
    let chip = ChipConfig::z1_like();
    let thermoroute_sim::Topology::Grid {
        width,
        neighbourhood,
    } = &chip.topology
    else {
        unreachable!("z1-like is a grid")
    };
    let (w, h) = (*width as i64, height as i64);
    let mut edges = Vec::new();
    for y in 0..h {
        for x in 0..w {
            for &[dx, dy] in neighbourhood {
                let (nx, ny) = (x + i64::from(dx), y + i64::from(dy));
                if (dy, dx) > (0, 0) && (0..w).contains(&nx) && (0..h).contains(&ny) {
                    edges.push([(y * w + x) as usize, (ny * w + nx) as usize]);
                }
            }
        }
    }
    let n = (w * h) as usize;
    let wave = |i: usize, scale: f64| scale * ((i as f64 * 0.618_034).fract() - 0.5);
    SpinProblem {
        biases: (0..n).map(|i| wave(i, 0.6)).collect(),
        weights: (0..edges.len()).map(|i| wave(i + 7, 1.2)).collect(),
        edges,
        beta: 1.0,
        clamp: vec![None; n],
        schedule: Schedule {
            warmup: sweeps - 1,
            samples: 1,
            steps_per_sample: 1,
            chains,
        },
    }
}

/// CPU seconds this process has used, all threads (Linux; 0 elsewhere).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the command name (which ends the first ")"): utime is
    // the 12th, stime the 13th, in clock ticks (100 a second on Linux).
    let rest = &stat[stat.rfind(')').map_or(0, |i| i + 1)..];
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|x| x.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers"))
        .collect();
    let chains = args.first().copied().unwrap_or(2);
    let sweeps = args.get(1).copied().unwrap_or(200);
    let repeats = args.get(2).copied().unwrap_or(3);
    let chip = ChipConfig::z1_like();
    let image = Arc::new(compile(&z1_filled(468, chains, sweeps), &chip, 1.0).expect("fits"));
    // THERMOROUTE_CPU_KERNEL names one path to run; else every path.
    let only = CpuKernel::from_env().expect("a known path");
    for kernel in CpuKernel::available() {
        if only.is_some_and(|k| k != kernel) {
            continue;
        }
        let mut best = 0.0f64;
        let mut best_cpu = 0.0f64;
        let mut hash = String::new();
        for _ in 0..repeats {
            let mut run = TsuRun::new(image.clone(), &chip, 1, Faults::default())
                .with_cpu_kernel(kernel)
                .expect("available");
            let (start, cpu) = (std::time::Instant::now(), cpu_seconds());
            run.advance(u64::MAX).expect("online");
            let wall = start.elapsed().as_secs_f64();
            let cpu = cpu_seconds() - cpu;
            let updates = run.counters().cell_updates as f64;
            best = best.max(updates / wall / 1e6);
            best_cpu = best_cpu.max(updates / cpu / 1e6);
            let d = run.draws();
            let bytes: Vec<u8> = d.values.iter().map(|&v| v as u8).collect();
            hash = hex::encode(&Sha256::digest(&bytes)[..8]);
        }
        println!(
            "{chains} chains, {sweeps} sweeps [{kernel}]: best {best:.1} M cell-updates/s, \
             {best_cpu:.1} M per CPU-second, draws {hash}"
        );
    }
}
