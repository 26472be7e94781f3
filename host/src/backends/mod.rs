//! Backends that execute nodes, behind one trait the engine drives in execute
//! mode. The CPU backend serves the `cpu` and `cpu-ref` targets; the GPU
//! (wgpu) and TSU (simulator driver) backends plug in through [`Backend`].

pub mod cpu;
pub mod gpu;
pub mod node;
pub mod registry;
pub mod tsu;
pub mod value;

pub use cpu::CpuBackend;

use crate::device::Target;
use crate::model::EProgram;
use crate::sampler::{Draws, SampleError};
use value::{NodeCall, NodeResult};

/// A backend failure while starting or running work.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum BackendError {
    /// The device cannot take work now; the engine falls back immediately.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// The work failed on the device; the engine falls back to another target.
    #[error("backend error: {0}")]
    Failed(String),
}

/// What one slice of sampling cost.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SliceCost {
    /// Wall-clock seconds measured on the host.
    pub seconds: f64,
    /// Seconds on the simulated device, when its time is not the host's
    /// (the TSU's cycles / clock); virtual time advances by this instead.
    pub device_seconds: Option<f64>,
    /// Device cycles, for simulated hardware.
    pub cycles: Option<u64>,
    /// Energy, where the backend accounts for it itself.
    pub energy_j: Option<f64>,
}

/// Sampling in progress: advanced slice by slice so the engine can preempt,
/// time out or stop early at sweep boundaries without changing results.
pub trait SamplingTask: Send {
    /// Runs up to `sweeps` more sweeps of every chain.
    fn advance(&mut self, sweeps: u64) -> Result<SliceCost, BackendError>;
    fn sweeps_done(&self) -> u64;
    fn total_sweeps(&self) -> u64;
    fn samples_done(&self) -> usize;
    fn total_samples(&self) -> usize;
    fn is_done(&self) -> bool {
        self.sweeps_done() >= self.total_sweeps()
    }
    /// Draws so far (every requested sample once done).
    fn draws(&self) -> Draws;
    /// Saves the device state before a preemption (charged where it costs).
    fn suspend(&mut self) {}
    /// Extra provenance entries (e.g. image and chip hashes).
    fn provenance(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// A device driver the engine can run nodes on.
pub trait Backend: Send {
    /// The routing targets this backend serves.
    fn targets(&self) -> &[Target];
    /// Runs a deterministic node (tensor, nn, control, effect bookkeeping).
    fn run_node(&mut self, call: NodeCall<'_>) -> Result<NodeResult, BackendError>;
    /// Energy the last [`Backend::run_node`] spent, where the backend
    /// measures it (the GPU: busy time from timestamps × active power);
    /// `None` leaves it to the engine's power model × wall time.
    fn take_energy_j(&mut self) -> Option<f64> {
        None
    }
    /// Starts sampling a (conditioned) program.
    fn start_sampling(
        &mut self,
        program: &EProgram,
        seed: u64,
    ) -> Result<Result<Box<dyn SamplingTask>, SampleError>, BackendError>;
}
