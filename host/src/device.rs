//! The device registry: every device class and routing target the host
//! knows, and per-device / per-target tables sized by it.
//!
//! A device is a piece of hardware with slots and queues (CPU, GPU, TSU); a
//! target is one way of running a node on a device (the GPU runs tensor
//! work as `gpu` and Gibbs sampling as `gpu-sim`). Everything above this
//! module sizes its tables with [`PerDevice`] and [`PerTarget`], so a new
//! backend is a new case here, not a hunt for hand-sized arrays. The recipe
//! for adding one is in `ARCHITECTURE.md`.

use std::ops::{Index, IndexMut};

use serde::{Deserialize, Serialize};

use crate::model::graph::NodeKind;

/// A device class. Routing targets map onto these for queues and slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    /// The host's cores.
    Cpu,
    /// A wgpu adapter.
    Gpu,
    /// A thermodynamic sampling unit (the cycle-level simulator).
    Tsu,
}

impl Device {
    /// How many device classes there are.
    pub const COUNT: usize = 3;
    /// Every device class, in table order.
    pub const ALL: [Device; Device::COUNT] = [Device::Cpu, Device::Gpu, Device::Tsu];

    /// The name in files, traces and reports.
    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Gpu => "gpu",
            Device::Tsu => "tsu",
        }
    }

    /// Position in [`Device::ALL`] and in every [`PerDevice`] table.
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a node can run. Sampling nodes have their own targets so the trace
/// says which way of sampling was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Target {
    /// Deterministic work on the CPU.
    #[serde(rename = "cpu")]
    Cpu,
    /// Deterministic work on the GPU.
    #[serde(rename = "gpu")]
    Gpu,
    /// Sampling on the TSU.
    #[serde(rename = "tsu")]
    Tsu,
    /// Gibbs sampling simulated on the GPU.
    #[serde(rename = "gpu-sim")]
    GpuSim,
    /// The CPU reference sampler.
    #[serde(rename = "cpu-ref")]
    CpuRef,
}

impl Target {
    /// How many targets there are.
    pub const COUNT: usize = 5;
    /// Every target, in table order.
    pub const ALL: [Target; Target::COUNT] = [
        Target::Cpu,
        Target::Gpu,
        Target::Tsu,
        Target::GpuSim,
        Target::CpuRef,
    ];

    /// Candidates for a node kind, in the design note's order of preference.
    pub fn candidates(kind: NodeKind) -> &'static [Target] {
        match kind {
            NodeKind::Sample => &[Target::Tsu, Target::GpuSim, Target::CpuRef],
            NodeKind::Tensor | NodeKind::Nn => &[Target::Gpu, Target::Cpu],
            NodeKind::Control | NodeKind::Effect => &[Target::Cpu, Target::Gpu],
        }
    }

    /// The name in files, traces and reports.
    pub fn name(self) -> &'static str {
        match self {
            Target::Cpu => "cpu",
            Target::Gpu => "gpu",
            Target::Tsu => "tsu",
            Target::GpuSim => "gpu-sim",
            Target::CpuRef => "cpu-ref",
        }
    }

    /// The target of that name.
    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The device whose slots and queue the target uses.
    pub fn device(self) -> Device {
        match self {
            Target::Cpu | Target::CpuRef => Device::Cpu,
            Target::Gpu | Target::GpuSim => Device::Gpu,
            Target::Tsu => Device::Tsu,
        }
    }

    /// Position in [`Target::ALL`] and in every [`PerTarget`] table.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Whether the target samples (rather than computing deterministically).
    pub fn samples(self) -> bool {
        matches!(self, Target::Tsu | Target::GpuSim | Target::CpuRef)
    }

    /// Whether draws from this target come from physical or simulated noise
    /// the CPU reference cannot reproduce bit for bit.
    pub fn hardware_stochastic(self) -> bool {
        matches!(self, Target::Tsu | Target::GpuSim)
    }

    /// Whether running work can be suspended and resumed with identical
    /// results (sampling at sweep boundaries).
    pub fn preemptible(self) -> bool {
        matches!(self, Target::Tsu | Target::CpuRef)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One value per device, indexed by [`Device`]; serialised as an array in
/// [`Device::ALL`] order.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PerDevice<T>(pub [T; Device::COUNT]);

/// One value per target, indexed by [`Target`]; serialised as an array in
/// [`Target::ALL`] order.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PerTarget<T>(pub [T; Target::COUNT]);

macro_rules! keyed_table {
    ($table:ident, $key:ident) => {
        impl<T> $table<T> {
            /// A table with `f(key)` for every key.
            pub fn from_fn(mut f: impl FnMut($key) -> T) -> Self {
                $table($key::ALL.map(|k| f(k)))
            }

            /// Every key with its value, in table order.
            pub fn iter(&self) -> impl Iterator<Item = ($key, &T)> {
                $key::ALL.into_iter().zip(self.0.iter())
            }

            /// A table of `f(value)`.
            pub fn map<U>(self, f: impl FnMut(T) -> U) -> $table<U> {
                $table(self.0.map(f))
            }
        }

        impl<T> Index<$key> for $table<T> {
            type Output = T;
            fn index(&self, key: $key) -> &T {
                &self.0[key.index()]
            }
        }

        impl<T> IndexMut<$key> for $table<T> {
            fn index_mut(&mut self, key: $key) -> &mut T {
                &mut self.0[key.index()]
            }
        }
    };
}

keyed_table!(PerDevice, Device);
keyed_table!(PerTarget, Target);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_follow_the_registry_order() {
        for (i, d) in Device::ALL.into_iter().enumerate() {
            assert_eq!(d.index(), i);
        }
        for (i, t) in Target::ALL.into_iter().enumerate() {
            assert_eq!(t.index(), i);
            assert_eq!(Target::from_name(t.name()), Some(t));
        }
        let mut busy = PerDevice::from_fn(|d| d.index() as f64);
        busy[Device::Tsu] += 1.0;
        assert_eq!(serde_json::to_string(&busy).unwrap(), "[0.0,1.0,3.0]");
        let names: Vec<&str> = PerTarget::from_fn(Target::name).0.to_vec();
        assert_eq!(names, ["cpu", "gpu", "tsu", "gpu-sim", "cpu-ref"]);
    }

    #[test]
    fn every_candidate_runs_on_a_registered_device() {
        for kind in [
            NodeKind::Control,
            NodeKind::Tensor,
            NodeKind::Nn,
            NodeKind::Sample,
            NodeKind::Effect,
        ] {
            for t in Target::candidates(kind) {
                assert_eq!(t.samples(), kind == NodeKind::Sample, "{t} for {kind:?}");
                assert!(Device::ALL.contains(&t.device()));
            }
        }
    }
}
