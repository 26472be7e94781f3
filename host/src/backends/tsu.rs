//! The TSU driver: compiles EPrograms into images for the simulated chip
//! (`thermoroute-sim`), or says every reason it cannot, and runs them as
//! sampling tasks whose time is the chip's cycles.

use std::sync::Arc;

use thermoroute_sim::{ChipConfig, CompileIssue, SimError, SpinProblem, TsuImage, TsuRun};

use super::value::{NodeCall, NodeResult};
use super::{Backend, BackendError, SamplingTask, SliceCost};
use crate::device::Target;
use crate::hardware::Hardware;
use crate::model::EProgram;
use crate::policy::Ineligible;
use crate::sampler::{Draws, SampleError};

/// Errors setting the driver up. Fatal for the run that asked for a TSU.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TsuError {
    #[error("TSU chip: {0}")]
    Chip(#[from] thermoroute_sim::ConfigError),
}

/// The driver for the hardware description's TSU devices.
#[derive(Debug, Clone)]
pub struct TsuDriver {
    pub chip: ChipConfig,
    pub tolerance: f64,
    pub faults: thermoroute_sim::Faults,
    /// Fraction of the device this tenant gets: device time stretches by its inverse.
    pub shared_fraction: f64,
}

impl TsuDriver {
    pub fn from_hardware(hw: &Hardware) -> Result<Self, TsuError> {
        let mut chip = match &hw.tsu.chip_file {
            Some(file) => ChipConfig::load(file)?,
            None => ChipConfig::preset(&hw.tsu.chip)?,
        };
        if let Some(clock_hz) = hw.tsu.clock_hz {
            chip.clock_hz = clock_hz;
        }
        Ok(TsuDriver {
            chip,
            tolerance: hw.tsu.precision_tolerance,
            faults: hw.tsu.chip_faults.clone(),
            shared_fraction: hw.tsu.shared_fraction,
        })
    }

    /// The spin problem a program poses, or why it is not one a TSU runs.
    pub fn problem(program: &EProgram) -> Result<SpinProblem, Vec<Ineligible>> {
        let mut reasons = Vec::new();
        if !program.categorical.is_empty() {
            reasons.push(Ineligible::UnsupportedVariables {
                detail: format!(
                    "{} categorical variable(s): p-bit cells hold spins only",
                    program.categorical.len()
                ),
            });
        }
        if !program.factors.is_empty() {
            reasons.push(Ineligible::UnsupportedFactors {
                detail: format!(
                    "{} general factor table(s): the TSU runs pairwise couplings only",
                    program.factors.len()
                ),
            });
        }
        if !program.constraints.is_empty() {
            reasons.push(Ineligible::UnsupportedConstraints {
                detail: format!(
                    "{} hard constraint(s): the TSU has no constrained-block update",
                    program.constraints.len()
                ),
            });
        }
        let Some(ising) = &program.ising else {
            reasons.push(Ineligible::UnsupportedVariables {
                detail: "no spins to sample".into(),
            });
            return Err(reasons);
        };
        if !reasons.is_empty() {
            return Err(reasons);
        }
        let clamp = program
            .clamped_states()
            .into_iter()
            .take(ising.n)
            .map(|c| c.map(|s| if s == 1 { 1 } else { -1 }))
            .collect();
        let s = program.schedule;
        Ok(SpinProblem {
            biases: ising.biases.clone(),
            edges: ising.edges.clone(),
            weights: ising.weights.clone(),
            beta: program.beta,
            clamp,
            schedule: thermoroute_sim::Schedule {
                warmup: s.warmup,
                samples: s.samples,
                steps_per_sample: s.steps_per_sample,
                chains: s.chains,
            },
        })
    }

    /// Compiles a program for this driver's chip.
    pub fn compile(&self, program: &EProgram) -> Result<TsuImage, Vec<Ineligible>> {
        let problem = Self::problem(program)?;
        thermoroute_sim::compile(&problem, &self.chip, self.tolerance)
            .map_err(|issues| issues.iter().map(ineligible).collect())
    }

    /// Device seconds and joules a whole run of `image` takes on this
    /// driver's chip, as the simulator counts them (what `tsu inspect`
    /// prints), stretched by the tenant's share of a shared device.
    pub fn estimate(&self, image: &TsuImage) -> (f64, f64) {
        let c = thermoroute_sim::estimate(image, &self.chip);
        (c.seconds / self.shared_fraction, c.energy_j())
    }

    /// Starts a run of a compiled image.
    pub fn start(&self, image: TsuImage, seed: u64) -> TsuSampling {
        let run = TsuRun::new(Arc::new(image), &self.chip, seed, self.faults.clone());
        TsuSampling {
            run,
            shared_fraction: self.shared_fraction,
            chip_hash: self.chip.hash(),
            last_cycles: 0,
            last_energy: 0.0,
            last_seconds: 0.0,
        }
    }
}

fn ineligible(issue: &CompileIssue) -> Ineligible {
    let detail = issue.to_string();
    match issue {
        CompileIssue::ScheduleTooLong { .. } => Ineligible::ScheduleOutOfRange { detail },
        CompileIssue::Saturates { .. } | CompileIssue::PrecisionLoss { .. } => {
            Ineligible::Precision { detail }
        }
        _ => Ineligible::Capacity { detail },
    }
}

/// A program running on the simulated chip.
#[derive(Debug)]
pub struct TsuSampling {
    run: TsuRun,
    shared_fraction: f64,
    chip_hash: String,
    last_cycles: u64,
    last_energy: f64,
    last_seconds: f64,
}

impl TsuSampling {
    pub fn run(&self) -> &TsuRun {
        &self.run
    }

    pub fn chip_hash(&self) -> &str {
        &self.chip_hash
    }
}

impl SamplingTask for TsuSampling {
    fn advance(&mut self, sweeps: u64) -> Result<SliceCost, BackendError> {
        let start = std::time::Instant::now();
        self.run.advance(sweeps).map_err(|e| match e {
            SimError::Offline { .. } => BackendError::Unavailable(e.to_string()),
            _ => BackendError::Failed(e.to_string()),
        })?;
        let c = *self.run.counters();
        let cost = SliceCost {
            seconds: start.elapsed().as_secs_f64(),
            // A shared device serves this tenant a fraction of the time.
            device_seconds: Some((c.seconds - self.last_seconds) / self.shared_fraction),
            cycles: Some(c.cycles() - self.last_cycles),
            energy_j: Some(c.energy_j() - self.last_energy),
        };
        self.last_cycles = c.cycles();
        self.last_energy = c.energy_j();
        self.last_seconds = c.seconds;
        Ok(cost)
    }

    fn suspend(&mut self) {
        self.run.suspend();
    }

    fn sweeps_done(&self) -> u64 {
        self.run.sweeps_done()
    }

    fn total_sweeps(&self) -> u64 {
        self.run.total_sweeps()
    }

    fn samples_done(&self) -> usize {
        self.run.samples_done()
    }

    fn total_samples(&self) -> usize {
        self.run.image().schedule.samples as usize
    }

    fn is_done(&self) -> bool {
        self.run.is_done()
    }

    fn draws(&self) -> Draws {
        tsu_draws(&self.run)
    }

    fn provenance(&self) -> Vec<(&'static str, String)> {
        vec![
            ("image_hash", self.run.image().hash()),
            ("chip_hash", self.chip_hash.clone()),
        ]
    }
}

/// The chip's draws in the sampler's layout (spins only, ±1).
pub fn tsu_draws(run: &TsuRun) -> Draws {
    let d = run.draws();
    let c = run.counters();
    Draws {
        chains: d.chains,
        samples: d.samples,
        n_vars: d.n,
        states: vec![2; d.n],
        is_spin: vec![true; d.n],
        values: d.values,
        spin_updates: c.cell_updates,
        seconds: c.seconds,
    }
}

impl Backend for TsuDriver {
    fn targets(&self) -> &[Target] {
        &[Target::Tsu]
    }

    fn run_node(&mut self, _call: NodeCall<'_>) -> Result<NodeResult, BackendError> {
        Err(BackendError::Unavailable(
            "the TSU runs sampling nodes only".into(),
        ))
    }

    fn start_sampling(
        &mut self,
        program: &EProgram,
        seed: u64,
    ) -> Result<Result<Box<dyn SamplingTask>, SampleError>, BackendError> {
        if let Err(inf) = program.feasibility("$") {
            return Ok(Err(SampleError::Infeasible(inf)));
        }
        let image = self.compile(program).map_err(|reasons| {
            BackendError::Failed(
                reasons
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        Ok(Ok(Box::new(self.start(image, seed))))
    }
}
