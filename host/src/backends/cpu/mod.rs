//! The CPU backend: deterministic nodes on the ndarray [`kernels`] (through
//! the reference executor), sampling on the reference Gibbs sampler.

pub mod kernels;

use super::node::{ExecOptions, run_node};
use super::value::{NodeCall, NodeResult};
use super::{Backend, BackendError, SamplingTask, SliceCost};
use crate::device::Target;
use crate::model::EProgram;
use crate::sampler::{Draws, SampleError, SamplerRun};

/// The CPU: ndarray kernels and the reference Gibbs sampler.
#[derive(Debug, Default)]
pub struct CpuBackend {
    pub threads: Option<usize>,
}

impl Backend for CpuBackend {
    fn targets(&self) -> &[Target] {
        &[Target::Cpu, Target::CpuRef]
    }

    fn run_node(&mut self, call: NodeCall<'_>) -> Result<NodeResult, BackendError> {
        Ok(run_node(
            call.graph,
            call.node,
            &call.inputs,
            ExecOptions {
                seed: 0,
                threads: self.threads,
            },
        ))
    }

    fn start_sampling(
        &mut self,
        program: &EProgram,
        seed: u64,
    ) -> Result<Result<Box<dyn SamplingTask>, SampleError>, BackendError> {
        Ok(SamplerRun::new(program, seed).map(|run| {
            Box::new(CpuSampling {
                run,
                threads: self.threads,
                total_samples: program.schedule.samples as usize,
            }) as Box<dyn SamplingTask>
        }))
    }
}

struct CpuSampling {
    run: SamplerRun,
    threads: Option<usize>,
    total_samples: usize,
}

impl SamplingTask for CpuSampling {
    fn advance(&mut self, sweeps: u64) -> Result<SliceCost, BackendError> {
        let start = std::time::Instant::now();
        self.run
            .advance(sweeps, self.threads, None)
            .map_err(|e| BackendError::Failed(e.to_string()))?;
        Ok(SliceCost {
            seconds: start.elapsed().as_secs_f64(),
            device_seconds: None,
            cycles: None,
            energy_j: None,
        })
    }

    fn sweeps_done(&self) -> u64 {
        self.run.sweeps_done()
    }

    fn total_sweeps(&self) -> u64 {
        self.run.total_sweeps_per_chain()
    }

    fn samples_done(&self) -> usize {
        self.run.samples_done()
    }

    fn total_samples(&self) -> usize {
        self.total_samples
    }

    fn draws(&self) -> Draws {
        self.run.draws()
    }
}
