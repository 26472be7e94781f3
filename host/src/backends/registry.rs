//! The backend registry: which backend serves each device, built from the
//! hardware description. Execute mode runs nodes through it; routing asks
//! it which targets this build can run.
//!
//! The `match` in [`backend_for`] is exhaustive over [`Device`], so a new
//! device does not compile until it says how its backend is built.

use super::Backend;
use super::CpuBackend;
use super::gpu::GpuBackend;
use super::tsu::TsuDriver;
use crate::device::{Device, PerTarget, Target};
use crate::hardware::Hardware;

/// What building backends needs beyond the hardware description.
#[derive(Debug, Clone, Copy, Default)]
pub struct BackendOptions<'a> {
    /// Sampler threads on the CPU (default: one per core).
    pub threads: Option<usize>,
    /// The TSU driver, compiled once for the configured chip.
    pub tsu: Option<&'a TsuDriver>,
}

/// The backend of `device`, or `None` when the hardware has none.
pub fn backend_for(
    device: Device,
    hw: &Hardware,
    options: &BackendOptions,
) -> Option<Box<dyn Backend>> {
    match device {
        Device::Cpu => Some(Box::new(CpuBackend {
            threads: options.threads,
        })),
        // Registered even without an adapter: it then answers
        // `BackendUnavailable` and the engine falls back.
        Device::Gpu => (hw.slots(Device::Gpu) > 0).then(|| {
            Box::new(GpuBackend::shared(&hw.gpu.adapter, hw.gpu.active_w)) as Box<dyn Backend>
        }),
        Device::Tsu => options
            .tsu
            .map(|driver| Box::new(driver.clone()) as Box<dyn Backend>),
    }
}

/// The backends of a run, and which one serves each target.
#[derive(Default)]
pub struct Registry {
    backends: Vec<Box<dyn Backend>>,
    serving: PerTarget<Option<usize>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let targets: Vec<Target> = Target::ALL
            .into_iter()
            .filter(|&t| self.serves(t))
            .collect();
        f.debug_struct("Registry")
            .field("targets", &targets)
            .finish()
    }
}

impl Registry {
    /// Every device's backend, as the hardware describes it.
    pub fn build(hw: &Hardware, options: &BackendOptions) -> Registry {
        let mut registry = Registry::default();
        for device in Device::ALL {
            if let Some(backend) = backend_for(device, hw, options) {
                registry.add(backend);
            }
        }
        registry
    }

    /// Adds a backend for the targets it names (a later one wins a target).
    pub fn add(&mut self, backend: Box<dyn Backend>) {
        let i = self.backends.len();
        for &t in backend.targets() {
            self.serving[t] = Some(i);
        }
        self.backends.push(backend);
    }

    /// A backend serves `target` in this build.
    pub fn serves(&self, target: Target) -> bool {
        self.serving[target].is_some()
    }

    /// The backend serving `target`.
    pub fn get_mut(&mut self, target: Target) -> Option<&mut (dyn Backend + 'static)> {
        let i = self.serving[target]?;
        Some(self.backends[i].as_mut())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_present_device_gets_a_backend() {
        let hw = Hardware {
            gpu: crate::hardware::GpuSpec {
                adapter: "none".into(),
                ..Default::default()
            },
            ..Hardware::default()
        };
        let registry = Registry::build(&hw, &BackendOptions::default());
        assert!(registry.serves(Target::Cpu) && registry.serves(Target::CpuRef));
        assert_eq!(registry.serves(Target::Gpu), hw.slots(Device::Gpu) > 0);
        // No TSU driver was given: nothing serves the TSU.
        assert!(!registry.serves(Target::Tsu));
    }
}
