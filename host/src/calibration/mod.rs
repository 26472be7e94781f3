//! Calibration: each backend's marginal error against exact enumeration on a
//! suite of small random spin programs, split into the Monte Carlo part
//! (from each run's bulk ESS) and the excess — the backend's bias, which the
//! scheduler's accuracy term uses — and service-time models measured on this
//! machine (`service.rs`), which become the scheduler's priors and simulate
//! mode's service times. A file is keyed by the machine and build that
//! measured it and refused elsewhere.

mod service;

pub use service::{MachineKey, fit_line, measure as measure_service};

use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::backends::tsu::{TsuDriver, tsu_draws};
use crate::diagnostics::diagnose;
use crate::hardware::{Hardware, MixingFit};
use crate::model::eprogram::{EProgram, Schedule};
use crate::perf::{fit as fit_mixing, run_figures, small_exact};
use crate::sampler::exact::exact_marginals;
use crate::sampler::{Draws, SampleOptions, sample};

pub const FORMAT: &str = "thermoroute-calibration";

/// One backend's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendCalibration {
    /// Mean over the suite of the largest |marginal - exact|.
    pub mean_max_error: f64,
    /// Mean over the suite of the expected Monte Carlo error of that marginal.
    pub mean_mc_error: f64,
    /// Excess error not explained by Monte Carlo noise (>= 0).
    pub bias: f64,
    pub programs: usize,
}

/// The calibration file `calibrate` writes and `run --calibration` reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub format: String,
    pub chip: String,
    pub chip_hash: String,
    pub cpu_ref: BackendCalibration,
    /// Absent when the hardware has no TSU.
    pub tsu: Option<BackendCalibration>,
    /// The machine and build that measured (absent in files from before
    /// service models were measured).
    #[serde(default)]
    pub machine: Option<MachineKey>,
    /// Service-time models per (target, node family).
    #[serde(default)]
    pub service: Vec<crate::hardware::ServiceFit>,
    /// How each backend mixes on the programs of `calibrate --graph`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mixing: Vec<MixingFit>,
}

/// Errors of calibration. Fatal for the command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CalibrationError {
    #[error(transparent)]
    Tsu(#[from] crate::backends::tsu::TsuError),
    #[error("suite program {index} does not fit the TSU: {reasons}")]
    Ineligible { index: usize, reasons: String },
    #[error("sampling failed: {0}")]
    Sample(#[from] crate::sampler::SampleError),
    #[error("TSU run failed: {0}")]
    Run(#[from] thermoroute_sim::SimError),
    #[error("{file}: {reason}")]
    File { file: String, reason: String },
    #[error(
        "{file}: measured on another machine or build: {mismatch}; run `thermoroute calibrate` here"
    )]
    Foreign { file: String, mismatch: String },
}

/// Program `index` of the random family: `n` spins on a ring plus chords,
/// couplings in ±0.8, biases in ±0.5.
pub fn suite_program(index: u64, n: usize) -> EProgram {
    let mut rng = ChaCha8Rng::seed_from_u64(1000 + index);
    let mut edges: Vec<[usize; 2]> = (0..n).map(|i| [i, (i + 1) % n]).collect();
    for _ in 0..n / 2 {
        let a = rng.random_range(0..n);
        let b = rng.random_range(0..n);
        if a != b
            && !edges
                .iter()
                .any(|e| (e[0] == a && e[1] == b) || (e[0] == b && e[1] == a))
        {
            edges.push([a, b]);
        }
    }
    let weights = edges.iter().map(|_| rng.random_range(-0.8..0.8)).collect();
    let biases = (0..n).map(|_| rng.random_range(-0.5..0.5)).collect();
    EProgram::spins(
        biases,
        edges,
        weights,
        Schedule {
            warmup: 200,
            samples: 4000,
            steps_per_sample: 1,
            chains: 4,
        },
    )
}

/// Largest |marginal - exact| and the expected Monte Carlo error there.
pub fn error_against_exact(program: &EProgram, draws: &Draws) -> (f64, f64) {
    let exact = exact_marginals(program).expect("suite programs are small");
    let d = diagnose(draws);
    let marginals = draws.state_marginals();
    let mut worst = (0.0, 0.0);
    for v in 0..draws.n_vars {
        let err = (marginals[v][1] - exact[v][1]).abs();
        if err >= worst.0 {
            let p = exact[v][1];
            let ess = d.ess_bulk[v]
                .unwrap_or((draws.chains * draws.samples) as f64)
                .max(1.0);
            worst = (err, (p * (1.0 - p) / ess).sqrt());
        }
    }
    worst
}

fn summarise(rows: &[(f64, f64)]) -> BackendCalibration {
    let k = rows.len().max(1) as f64;
    let mean_max_error = rows.iter().map(|r| r.0).sum::<f64>() / k;
    let mean_mc_error = rows.iter().map(|r| r.1).sum::<f64>() / k;
    BackendCalibration {
        mean_max_error,
        mean_mc_error,
        // The largest of n marginal errors sits ~1.5 sigma out for n ~ 8.
        bias: (mean_max_error - 1.5 * mean_mc_error).max(0.0),
        programs: rows.len(),
    }
}

/// Runs the suite on every backend of `hw`; `progress` is told each step.
pub fn calibrate(
    hw: &Hardware,
    programs: usize,
    seed: u64,
    mut progress: impl FnMut(&str, usize),
) -> Result<Calibration, CalibrationError> {
    let mut step = 0;
    let service = measure_service(hw, |what| {
        progress(what, step);
        step += 1;
    });
    let driver = TsuDriver::from_hardware(hw)?;
    let mut cpu = Vec::new();
    let mut tsu = Vec::new();
    for i in 0..programs {
        let program = suite_program(i as u64, 8);
        let draws = sample(&program, SampleOptions::seeded(seed + i as u64))?;
        cpu.push(error_against_exact(&program, &draws));
        progress("cpu-ref", i);
        if hw.tsu.count > 0 {
            let image =
                driver
                    .compile(&program)
                    .map_err(|reasons| CalibrationError::Ineligible {
                        index: i,
                        reasons: reasons
                            .iter()
                            .map(|r| r.to_string())
                            .collect::<Vec<_>>()
                            .join("; "),
                    })?;
            let mut run = driver.start(image, seed + i as u64);
            run_to_end(&mut run)?;
            tsu.push(error_against_exact(&program, &tsu_draws(run.run())));
            progress("tsu", i);
        }
    }
    Ok(Calibration {
        format: FORMAT.into(),
        chip: driver.chip.name.clone(),
        chip_hash: driver.chip.hash(),
        cpu_ref: summarise(&cpu),
        tsu: (hw.tsu.count > 0).then(|| summarise(&tsu)),
        machine: Some(if hw.slots(crate::device::Device::Gpu) > 0 {
            MachineKey::here_with_gpu(&hw.gpu.adapter)
        } else {
            MachineKey::here()
        }),
        service,
        mixing: Vec::new(),
    })
}

/// How the CPU reference and the TSU mix on each program: `runs` runs each
/// at the program's own schedule (the GPU runs the CPU reference's chain
/// law; simulate mode pilots it on the CPU). `progress` is told each run.
pub fn measure_mixing(
    hw: &Hardware,
    programs: &[EProgram],
    runs: usize,
    seed: u64,
    mut progress: impl FnMut(&str, usize),
) -> Result<Vec<MixingFit>, CalibrationError> {
    let driver = (hw.tsu.count > 0)
        .then(|| TsuDriver::from_hardware(hw))
        .transpose()?;
    let mut fits = Vec::new();
    for (i, program) in programs.iter().enumerate() {
        let exact = small_exact(program);
        let mut cpu = Vec::with_capacity(runs);
        for r in 0..runs {
            let draws = sample(program, SampleOptions::seeded(seed + r as u64))?;
            cpu.push(run_figures(program, &draws, exact.as_deref()));
            progress("cpu-ref", i);
        }
        fits.push(fit_mixing("cpu-ref", program, &cpu, "calibrated"));
        // A program the chip cannot run has no TSU figures to measure.
        if let Some(Ok(image)) = driver.as_ref().map(|d| d.compile(program)) {
            let driver = driver.as_ref().expect("compiled by it");
            let mut tsu = Vec::with_capacity(runs);
            for r in 0..runs {
                let mut run = driver.start(image.clone(), seed + r as u64);
                run_to_end(&mut run)?;
                tsu.push(run_figures(
                    program,
                    &tsu_draws(run.run()),
                    exact.as_deref(),
                ));
                progress("tsu", i);
            }
            fits.push(fit_mixing("tsu", program, &tsu, "calibrated"));
        }
    }
    Ok(fits)
}

fn run_to_end(run: &mut crate::backends::tsu::TsuSampling) -> Result<(), CalibrationError> {
    use crate::backends::SamplingTask;
    run.advance(u64::MAX).map_err(|e| CalibrationError::File {
        file: "tsu".into(),
        reason: e.to_string(),
    })?;
    Ok(())
}

impl Calibration {
    /// Makes the scheduler's accuracy term, priors and simulate mode use
    /// these figures. The TSU's (its bias and how it mixes) are keyed by the
    /// chip they were measured on: on another chip (a what-if variant) the
    /// chip model speaks for the TSU and they are left out.
    pub fn apply(&self, hw: &mut Hardware) {
        let same_chip = TsuDriver::from_hardware(hw)
            .map(|d| d.chip.hash() == self.chip_hash)
            .unwrap_or(false);
        if let Some(t) = &self.tsu
            && same_chip
        {
            hw.tsu.sampling_bias = t.bias;
        }
        if !same_chip && hw.tsu.count > 0 {
            tracing::warn!(
                calibrated = %self.chip_hash,
                "the calibration measured another TSU chip ({}); its TSU figures are left out",
                self.chip
            );
        }
        hw.calibrated.clone_from(&self.service);
        hw.mixing = self
            .mixing
            .iter()
            .filter(|m| same_chip || m.target != "tsu")
            .cloned()
            .collect();
    }

    pub fn load(file: &Path) -> Result<Self, CalibrationError> {
        let bad = |reason: String| CalibrationError::File {
            file: file.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(file).map_err(|e| bad(e.to_string()))?;
        let c: Calibration =
            serde_json::from_str(&text).map_err(|e| bad(format!("not a calibration file: {e}")))?;
        if c.format != FORMAT {
            return Err(bad(format!("format {:?} (expected {FORMAT:?})", c.format)));
        }
        if let Some(bad_fit) = c.service.iter().find(|f| {
            !(f.overhead_ms.is_finite()
                && f.overhead_ms >= 0.0
                && f.ms_per_unit.is_finite()
                && f.ms_per_unit >= 0.0)
        }) {
            return Err(bad(format!(
                "service model {}/{} has a negative or non-finite figure",
                bad_fit.target, bad_fit.family
            )));
        }
        if let Some(m) = c.mixing.iter().find(|m| {
            let figures = [m.ess_per_draw, m.ess_cv, m.rhat_excess, m.rhat_cv];
            !(figures.iter().all(|x| x.is_finite() && *x >= 0.0)
                && (0.0..=1.0).contains(&m.constraint_rate))
        }) {
            return Err(bad(format!(
                "mixing model {}/{} has a negative, non-finite or out-of-range figure",
                m.target, m.program_hash
            )));
        }
        let mismatch = match &c.machine {
            Some(key @ MachineKey { gpu: Some(_), .. }) => {
                key.mismatch(&MachineKey::here_with_gpu("auto"))
            }
            Some(key) => key.mismatch(&MachineKey::here()),
            None => Some("no machine key (written by an older thermoroute)".into()),
        };
        if let Some(mismatch) = mismatch {
            return Err(CalibrationError::Foreign {
                file: file.display().to_string(),
                mismatch,
            });
        }
        Ok(c)
    }

    pub fn save(&self, file: &Path) -> Result<(), CalibrationError> {
        let text = serde_json::to_string_pretty(self).expect("calibration serialises");
        crate::perf::write_atomically(file, text.as_bytes()).map_err(|e| CalibrationError::File {
            file: file.display().to_string(),
            reason: e.to_string(),
        })
    }
}
