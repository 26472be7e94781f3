//! The simulator on its own: compile issues, the documented cycle formula,
//! determinism across slicing and checkpoints, and fault signatures.

use std::sync::Arc;

use thermoroute_sim::{
    ChipConfig, CompileIssue, CpuKernel, Faults, Schedule, SimError, SpinProblem, TimeWindow,
    TsuRun, compile,
};

fn chain(n: usize, schedule: Schedule) -> SpinProblem {
    SpinProblem {
        biases: vec![0.2; n],
        edges: (0..n - 1).map(|i| [i, i + 1]).collect(),
        weights: vec![0.5; n - 1],
        beta: 1.0,
        clamp: vec![None; n],
        schedule,
    }
}

const SCHED: Schedule = Schedule {
    warmup: 10,
    samples: 20,
    steps_per_sample: 2,
    chains: 3,
};

#[test]
fn hand_computed_cycles_and_energy() {
    // devkit: 20 MHz, 2 cycles per phase, 50 MB/s link with 20 us latency,
    // chains side by side, no double buffering.
    let chip = ChipConfig::devkit();
    let problem = chain(4, SCHED);
    let image = compile(&problem, &chip, 0.05).unwrap();
    assert_eq!(image.colours.len(), 2, "a chain is 2-colourable");
    assert_eq!(image.copies, 3);
    assert_eq!(image.batches, 1);
    // writes = (Σ degree 6 + n 4) * 3 copies = 30.
    assert_eq!(image.writes, 30);
    let mut run = TsuRun::new(Arc::new(image), &chip, 1, Faults::default());
    run.advance(u64::MAX).unwrap();
    let c = *run.counters();
    // load: ceil((20e-6 + 4 * 30 / 50e6) * 20e6) = ceil(400 + 48) = 448.
    assert_eq!(c.load_cycles, 448);
    // 50 sweeps x 2 colours x 2 cycles.
    assert_eq!(c.sweep_cycles, 200);
    // 20 samples x ceil((20e-6 + ceil(4*3/8)=2 / 50e6) * 20e6) = 20 x ceil(400.8) = 20 x 401.
    assert_eq!(c.readout_cycles, 8020);
    assert_eq!(c.cell_updates, 50 * 4 * 3);
    let update_j = 600.0 * 20e-15;
    let readout_j = 20.0 * 4.0 * 3.0 * 5e-12;
    let load_j = 30.0 * 200e-12;
    let seconds = (448 + 200 + 8020) as f64 / 20e6;
    assert!((c.seconds - seconds).abs() < 1e-12);
    let energy = update_j + readout_j + load_j + seconds * 0.01;
    assert!(
        (c.energy_j() - energy).abs() < 1e-15,
        "{} vs {energy}",
        c.energy_j()
    );
}

#[test]
fn slicing_and_checkpoints_never_change_the_draws() {
    let chip = ChipConfig::devkit();
    let image = Arc::new(compile(&chain(10, SCHED), &chip, 0.05).unwrap());
    let mut whole = TsuRun::new(image.clone(), &chip, 9, Faults::default());
    whole.advance(u64::MAX).unwrap();
    let mut sliced = TsuRun::new(image, &chip, 9, Faults::default());
    for k in [1, 4, 7, 3] {
        sliced.advance(k).unwrap();
        sliced.suspend();
    }
    sliced.advance(u64::MAX).unwrap();
    assert_eq!(whole.draws(), sliced.draws());
    assert!(
        sliced.counters().checkpoint_cycles > 0,
        "checkpoints are charged"
    );
    assert_eq!(whole.counters().checkpoint_cycles, 0);
    assert!(sliced.counters().cycles() > whole.counters().cycles());
}

#[test]
fn chains_beyond_the_copies_run_in_batches() {
    let mut chip = ChipConfig::devkit();
    chip.cells = 20; // two copies of a 10-spin chain
    let image = Arc::new(compile(&chain(10, SCHED), &chip, 0.05).unwrap());
    assert_eq!((image.copies, image.batches), (2, 2));
    let predicted = thermoroute_sim::estimate(&image, &chip);
    let mut run = TsuRun::new(image, &chip, 2, Faults::default());
    run.advance(u64::MAX).unwrap();
    assert_eq!(run.counters().sweep_cycles, 2 * 50 * 2 * 2);
    assert_eq!(
        run.counters().cycles(),
        predicted.cycles(),
        "estimate = run"
    );
    assert!((run.counters().energy_j() - predicted.energy_j()).abs() < 1e-15);
    let d = run.draws();
    assert_eq!((d.chains, d.samples), (3, 20));
}

#[test]
fn a_stuck_cell_freezes_its_marginal() {
    let chip = ChipConfig::devkit();
    let image = Arc::new(compile(&chain(8, SCHED), &chip, 0.05).unwrap());
    let faults = Faults {
        stuck: vec![(3, -1)],
        ..Default::default()
    };
    let mut run = TsuRun::new(image, &chip, 4, faults);
    run.advance(u64::MAX).unwrap();
    let d = run.draws();
    for row in d.values.chunks(d.n) {
        assert_eq!(row[3], -1);
    }
    let random = Faults::random_stuck(7, 3, 8);
    assert_eq!(
        random,
        Faults::random_stuck(7, 3, 8),
        "reproducible from a seed"
    );
    assert_eq!(random.stuck.len(), 3);
}

#[test]
fn offline_windows_and_throttling() {
    let chip = ChipConfig::devkit();
    let image = Arc::new(compile(&chain(8, SCHED), &chip, 0.05).unwrap());
    let offline = Faults {
        offline: vec![TimeWindow {
            from_s: 0.0,
            to_s: 1.0,
        }],
        ..Default::default()
    };
    let mut run = TsuRun::new(image.clone(), &chip, 4, offline);
    assert!(matches!(run.advance(10), Err(SimError::Offline { .. })));
    let throttled = Faults {
        throttle: vec![thermoroute_sim::Throttle {
            from_s: 0.0,
            to_s: 1.0,
            divisor: 4.0,
        }],
        ..Default::default()
    };
    let mut slow = TsuRun::new(image.clone(), &chip, 4, throttled);
    slow.advance(u64::MAX).unwrap();
    let mut fast = TsuRun::new(image, &chip, 4, Faults::default());
    fast.advance(u64::MAX).unwrap();
    assert_eq!(slow.counters().cycles(), fast.counters().cycles());
    assert!(slow.counters().seconds > 3.0 * fast.counters().seconds);
    assert_eq!(
        slow.draws(),
        fast.draws(),
        "throttling changes time, not samples"
    );
}

#[test]
fn every_compile_rule_names_its_reason() {
    let mut chip = ChipConfig::devkit();
    chip.cells = 6;
    chip.limits.max_sweeps = 30;
    let mut p = chain(8, SCHED);
    p.weights[2] = 5.0; // saturates +-2
    // A 9-clique-ish hub: degree 9 > 8 slots, and a triangle needs 3 colours.
    let mut p2 = chain(12, SCHED);
    for j in 2..12 {
        p2.edges.push([0, j]);
        p2.weights.push(0.1);
    }
    let issues = compile(&p, &chip, 0.05).unwrap_err();
    let has = |issues: &[CompileIssue], f: &dyn Fn(&CompileIssue) -> bool| issues.iter().any(f);
    assert!(has(&issues, &|i| matches!(
        i,
        CompileIssue::TooManyCells {
            needed: 8,
            available: 6
        }
    )));
    assert!(has(&issues, &|i| matches!(
        i,
        CompileIssue::ScheduleTooLong { .. }
    )));
    assert!(has(&issues, &|i| matches!(
        i,
        CompileIssue::Saturates { index: 2, .. }
    )));
    let issues = compile(&p2, &ChipConfig::devkit(), 0.05).unwrap_err();
    assert!(has(&issues, &|i| matches!(
        i,
        CompileIssue::DegreeExceeded {
            var: 0,
            degree: 11,
            max: 8
        }
    )));
    let mut few = ChipConfig::devkit();
    few.max_colours = 2;
    let mut triangle = chain(3, SCHED);
    triangle.edges.push([0, 2]);
    triangle.weights.push(0.3);
    let issues = compile(&triangle, &few, 0.05).unwrap_err();
    assert!(has(&issues, &|i| matches!(
        i,
        CompileIssue::TooManyColours { needed: 3, max: 2 }
    )));
    let mut coarse = ChipConfig::devkit();
    coarse.weight_bits = 4;
    let issues = compile(&chain(4, SCHED), &coarse, 0.05).unwrap_err();
    assert!(has(&issues, &|i| matches!(
        i,
        CompileIssue::PrecisionLoss { .. }
    )));
    assert!(
        compile(&chain(4, SCHED), &coarse, 0.2).is_ok(),
        "a looser tolerance accepts it"
    );
    let z1 = ChipConfig::z1_like();
    let issues = compile(&chain(600, SCHED), &z1, 0.05).unwrap_err();
    assert!(
        has(&issues, &|i| matches!(
            i,
            CompileIssue::NotAGridNeighbour { a: 575, b: 576, .. }
        )),
        "{issues:?}"
    );
}

/// Four uncoupled spins with zero bias: ideal P(+1) is 1/2.
fn free_spins(samples: u64) -> SpinProblem {
    SpinProblem {
        biases: vec![0.0; 4],
        edges: vec![],
        weights: vec![],
        beta: 1.0,
        clamp: vec![None; 4],
        schedule: Schedule {
            warmup: 0,
            samples,
            steps_per_sample: 1,
            chains: 2,
        },
    }
}

fn up_fraction(d: &thermoroute_sim::Draws) -> f64 {
    d.values.iter().filter(|&&v| v > 0).count() as f64 / d.values.len() as f64
}

#[test]
fn rng_faults_show_their_signatures() {
    let chip = ChipConfig::devkit();
    let image = Arc::new(compile(&free_spins(20_000), &chip, 0.05).unwrap());
    let run = |faults: Faults| {
        let mut r = TsuRun::new(image.clone(), &chip, 3, faults);
        r.advance(u64::MAX).unwrap();
        r.draws()
    };
    // 160k draws: the standard error of a fraction near 1/2 is 0.00125.
    let ideal = up_fraction(&run(Faults::default()));
    assert!((ideal - 0.5).abs() < 0.005, "{ideal}");
    // Noise biased up by 10% of its range: P(+1) = 0.4.
    let biased = up_fraction(&run(Faults {
        rng_bias: Some(0.1),
        ..Default::default()
    }));
    assert!((biased - 0.4).abs() < 0.005, "{biased}");
    // Correlated noise: consecutive draws of a cell agree far more often.
    let agreement = |d: &thermoroute_sim::Draws| {
        let mut same = 0;
        let mut total = 0;
        for c in 0..d.chains {
            for s in 1..d.samples {
                for v in 0..d.n {
                    let a = d.values[(c * d.samples + s - 1) * d.n + v];
                    let b = d.values[(c * d.samples + s) * d.n + v];
                    same += usize::from(a == b);
                    total += 1;
                }
            }
        }
        same as f64 / total as f64
    };
    let ideal_agreement = agreement(&run(Faults::default()));
    let sticky = agreement(&run(Faults {
        rng_correlation: Some(0.8),
        ..Default::default()
    }));
    assert!((ideal_agreement - 0.5).abs() < 0.01, "{ideal_agreement}");
    assert!(sticky > 0.85, "{sticky}");
    // Bias drift: late draws lean further than early ones.
    let drifting = run(Faults {
        bias_drift_per_s: 2_000.0,
        ..Default::default()
    });
    let half = drifting.samples / 2;
    let frac = |range: std::ops::Range<usize>| {
        let mut up = 0;
        let mut total = 0;
        for c in 0..drifting.chains {
            for s in range.clone() {
                let row = &drifting.values[(c * drifting.samples + s) * 4..][..4];
                up += row.iter().filter(|&&v| v > 0).count();
                total += 4;
            }
        }
        up as f64 / total as f64
    };
    assert!(frac(half..drifting.samples) > frac(0..half) + 0.05);
}

#[test]
fn a_chain_draws_the_same_whatever_else_runs_with_it() {
    // Chains are keyed by their index: computing batches together (or not)
    // and running more chains beside them never changes a chain's draws.
    let mut chip = ChipConfig::devkit();
    chip.on_chip_chains = false; // one copy: every chain is its own batch
    let mut one = chain(10, SCHED);
    one.schedule.chains = 1;
    let three = chain(10, SCHED);
    let run = |p: &SpinProblem| {
        let image = Arc::new(compile(p, &chip, 0.05).unwrap());
        let mut r = TsuRun::new(image, &chip, 5, Faults::default());
        r.advance(7).unwrap();
        r.suspend();
        r.advance(u64::MAX).unwrap();
        r.draws()
    };
    let (a, b) = (run(&one), run(&three));
    assert_eq!(b.chains, 3);
    let per_chain = a.samples * a.n;
    assert_eq!(a.values[..per_chain], b.values[..per_chain]);
}

/// A z1-like grid program: rows of the chip's 576-cell width, every grid
/// neighbour coupled, deterministic pseudo-random weights and biases.
fn z1_rows(height: usize, chains: u64) -> SpinProblem {
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
            warmup: 5,
            samples: 6,
            steps_per_sample: 1,
            chains,
        },
    }
}

#[test]
fn the_block_kernel_draws_exactly_what_the_per_cell_kernel_draws() {
    let chip = ChipConfig::z1_like();
    // Noise reuse and a stuck cell exercise the per-cell noise state and the
    // fix-ups after each phase.
    let faults = Faults {
        rng_correlation: Some(0.3),
        stuck: vec![(700, 1)],
        ..Default::default()
    };
    for chains in [1, 2, 3, 4, 8] {
        let image = Arc::new(compile(&z1_rows(12, chains), &chip, 1.0).unwrap());
        let mut block = TsuRun::new(image.clone(), &chip, 5, faults.clone());
        assert!(
            block.uses_block_kernel(),
            "a grid's interior rows form runs"
        );
        let mut per_cell = TsuRun::new(image, &chip, 5, faults.clone()).without_block_kernel();
        assert!(!per_cell.uses_block_kernel());
        block.advance(u64::MAX).unwrap();
        per_cell.advance(u64::MAX).unwrap();
        assert_eq!(block.draws(), per_cell.draws(), "{chains} chains");
        assert_eq!(block.counters().cycles(), per_cell.counters().cycles());
    }
}

/// Found by the `tsu_compile` fuzz target: warmup + samples ×
/// steps_per_sample overflowed `u64` (a panic in debug builds, a wrapped
/// short schedule in release) before the chip's limit was checked.
#[test]
fn overflowing_schedules_are_refused_not_wrapped() {
    let chip = ChipConfig::devkit();
    for schedule in [
        Schedule {
            warmup: u64::MAX,
            samples: 1,
            steps_per_sample: 1,
            chains: 1,
        },
        Schedule {
            warmup: 0,
            samples: 1 << 40,
            steps_per_sample: 1 << 40,
            chains: 1,
        },
    ] {
        assert_eq!(schedule.sweeps_per_chain(), u64::MAX);
        let issues = compile(&chain(4, schedule), &chip, 0.05).unwrap_err();
        assert!(
            issues.iter().any(|i| matches!(
                i,
                CompileIssue::ScheduleTooLong {
                    requested: u64::MAX,
                    ..
                }
            )),
            "{issues:?}"
        );
    }
}

/// Found by the `tsu_compile` fuzz target: an edge past the last spin
/// indexed out of bounds. Malformed problems are refused with a reason.
#[test]
fn malformed_problems_are_refused_not_panicking() {
    let chip = ChipConfig::devkit();
    let mut cases = Vec::new();
    let mut p = chain(4, SCHED);
    p.edges.push([0, 9]);
    p.weights.push(0.1);
    cases.push(p);
    let mut p = chain(4, SCHED);
    p.edges.push([2, 2]);
    p.weights.push(0.1);
    cases.push(p);
    let mut p = chain(4, SCHED);
    p.weights.pop();
    cases.push(p);
    let mut p = chain(4, SCHED);
    p.clamp.pop();
    cases.push(p);
    let mut p = chain(4, SCHED);
    p.clamp[1] = Some(7);
    cases.push(p);
    for p in cases {
        let issues = compile(&p, &chip, 0.05).unwrap_err();
        assert!(
            matches!(issues.as_slice(), [CompileIssue::Malformed { .. }]),
            "{issues:?}"
        );
    }
}

#[test]
fn every_cpu_kernel_path_draws_the_same_bits() {
    let chip = ChipConfig::z1_like();
    let paths = CpuKernel::available();
    assert!(paths.contains(&CpuKernel::Baseline));
    // With faults (noise reuse, bias, a stuck cell) and without: both
    // branches of the p-bit's comparator.
    let faulty = Faults {
        rng_correlation: Some(0.3),
        rng_bias: Some(0.01),
        stuck: vec![(700, 1)],
        ..Default::default()
    };
    for faults in [Faults::default(), faulty] {
        for chains in [1, 2, 3, 4, 8, 9] {
            let image = Arc::new(compile(&z1_rows(12, chains), &chip, 1.0).unwrap());
            let mut reference = TsuRun::new(image.clone(), &chip, 5, faults.clone())
                .without_block_kernel()
                .with_cpu_kernel(CpuKernel::Baseline)
                .unwrap();
            reference.advance(u64::MAX).unwrap();
            let want = reference.draws();
            for &kernel in &paths {
                for block in [true, false] {
                    let mut run = TsuRun::new(image.clone(), &chip, 5, faults.clone())
                        .with_cpu_kernel(kernel)
                        .unwrap();
                    if !block {
                        run = run.without_block_kernel();
                    }
                    assert_eq!(run.cpu_kernel(), kernel);
                    run.advance(u64::MAX).unwrap();
                    assert!(
                        run.draws() == want,
                        "{kernel}, block kernel {block}, {chains} chains: draws differ"
                    );
                }
            }
        }
    }
}

/// The draws of fixed programs, seeds and faults are pinned: speed-ups of
/// the kernels must not change a single sample (golden outputs elsewhere
/// depend on them). Covers every lane-count branch (1, 2, 3, 4, 8 and 9
/// chains), the plain and faulty p-bit, bias drift, and a run that slices
/// its sweeps, on every CPU path, block kernel on and off.
#[test]
fn the_draws_of_fixed_seeds_are_pinned() {
    use sha2::{Digest, Sha256};
    let chip = ChipConfig::z1_like();
    let faulty = Faults {
        rng_correlation: Some(0.3),
        rng_bias: Some(0.01),
        stuck: vec![(700, 1), (3000, -1)],
        ..Default::default()
    };
    let drifting = Faults {
        bias_drift_per_s: 2e3,
        ..Default::default()
    };
    let cases: [(&str, Faults); 3] = [
        ("plain", Faults::default()),
        ("faulty", faulty),
        ("drifting", drifting),
    ];
    let mut got = Vec::new();
    for (name, faults) in &cases {
        for chains in [1, 2, 3, 4, 8, 9] {
            let image = Arc::new(compile(&z1_rows(12, chains), &chip, 1.0).unwrap());
            let mut hashes = Vec::new();
            for &kernel in &CpuKernel::available() {
                for block in [true, false] {
                    let mut run = TsuRun::new(image.clone(), &chip, 11, faults.clone())
                        .with_cpu_kernel(kernel)
                        .unwrap();
                    if !block {
                        run = run.without_block_kernel();
                    }
                    while !run.is_done() {
                        run.advance(3).unwrap();
                    }
                    let d = run.draws();
                    let bytes: Vec<u8> = d.values.iter().map(|&v| v as u8).collect();
                    hashes.push(hex::encode(&Sha256::digest(&bytes)[..8]));
                }
            }
            assert!(
                hashes.iter().all(|h| *h == hashes[0]),
                "{name}, {chains} chains: paths differ: {hashes:?}"
            );
            got.push(format!("{name}/{chains}: {}", hashes[0]));
        }
    }
    let want: [&str; 18] = [
        "plain/1: 47cbbad41e1e4a3d",
        "plain/2: cf549d5d4fcaa133",
        "plain/3: f01ea8d3f7db3c7a",
        "plain/4: 0a8aad3dd2c40147",
        "plain/8: e3a9638c59c0665e",
        "plain/9: 3c458829e7def0f0",
        "faulty/1: 28c4fc7062417821",
        "faulty/2: dbdc562e3ed12262",
        "faulty/3: c9296e3b22b766ba",
        "faulty/4: e903f0282f529adf",
        "faulty/8: 9834732c92fcbcec",
        "faulty/9: 5612f75d709443a7",
        "drifting/1: 599459a1651a69f5",
        "drifting/2: 99097c687762244a",
        "drifting/3: cf0391acc26a540b",
        "drifting/4: 2e29c680fe2242ae",
        "drifting/8: bb38239fc9b51296",
        "drifting/9: eceae5c39f3e5cd1",
    ];
    assert_eq!(got, want, "pinned draws changed:\n{}", got.join("\n"));
}
