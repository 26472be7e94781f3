//! The prior: what a node should cost on each target according to the
//! hardware description, before anything has been observed.

use serde::{Deserialize, Serialize};

use crate::device::{Device, Target};
use crate::hardware::{Hardware, ServiceDistribution};
use crate::model::graph::NodeKind;
use crate::policy::NodeSummary;

/// Service figures of one node on one target.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub mean_ms: f64,
    pub p95_ms: f64,
    pub energy_j: f64,
    /// Expected largest marginal error (0 for exact deterministic work).
    pub error: f64,
}

/// Ratio p95 / mean of the service-time distribution simulate mode draws from.
pub fn p95_ratio(hw: &Hardware) -> f64 {
    match hw.simulate.service {
        ServiceDistribution::Deterministic => 1.0,
        ServiceDistribution::Exponential => 20f64.ln(),
        ServiceDistribution::Lognormal => {
            let s2 = (1.0 + hw.simulate.cv * hw.simulate.cv).ln();
            (-0.5 * s2 + 1.644_853_6 * s2.sqrt()).exp()
        }
    }
}

/// The built-in cost model: what a node should cost on a target according to
/// the hardware description (roofline-style work / throughput + overheads),
/// unless a `[[perf]]` prior in the description says otherwise.
pub fn prior(hw: &Hardware, node: &NodeSummary, target: Target) -> Service {
    let ratio = p95_ratio(hw);
    let seconds = match target {
        Target::Cpu => hw.cpu.overhead_us * 1e-6 + node.flops / (hw.cpu.gflops_per_core * 1e9),
        Target::Gpu => {
            hw.gpu.launch_us * 1e-6
                + node.bytes / (hw.gpu.transfer_gb_per_s * 1e9)
                + node.flops / (hw.gpu.gflops * 1e9)
        }
        Target::CpuRef => {
            let updates = node.program.as_ref().map_or(0.0, |p| p.updates);
            hw.cpu.overhead_us * 1e-6 + updates / hw.cpu.spin_updates_per_s
        }
        Target::GpuSim => {
            let updates = node.program.as_ref().map_or(0.0, |p| p.updates);
            hw.gpu.launch_us * 1e-6 + updates / hw.gpu.spin_updates_per_s
        }
        Target::Tsu => {
            let updates = node.program.as_ref().map_or(0.0, |p| p.updates);
            hw.tsu.setup_us * 1e-6 + updates / (hw.tsu.spin_updates_per_s * hw.tsu.shared_fraction)
        }
    };
    let energy = match target {
        Target::Cpu | Target::CpuRef => seconds * hw.cpu.active_w_per_core,
        Target::Gpu | Target::GpuSim => seconds * hw.gpu.active_w,
        Target::Tsu => {
            let updates = node.program.as_ref().map_or(0.0, |p| p.updates);
            hw.tsu.setup_us * 1e-6 * hw.tsu.setup_w + updates * hw.tsu.energy_pj_per_update * 1e-12
        }
    };
    let error = match (&node.program, target) {
        (Some(p), _) => {
            // Monte Carlo error of a marginal, assuming half the draws are
            // effectively independent, plus the target's calibrated bias.
            let ess = (p.chains * p.samples) as f64 * 0.5;
            let mc = if ess > 0.0 { 0.5 / ess.sqrt() } else { 1.0 };
            mc + match target {
                Target::Tsu => hw.tsu.sampling_bias,
                Target::GpuSim => hw.gpu.sampling_bias,
                _ => 0.0,
            }
        }
        (None, Target::Gpu) if matches!(node.kind, NodeKind::Tensor | NodeKind::Nn) => {
            hw.gpu.deterministic_error
        }
        (None, _) => 0.0,
    };
    let mut service = Service {
        mean_ms: seconds * 1e3,
        p95_ms: seconds * 1e3 * ratio,
        energy_j: energy,
        error,
    };
    if let Some(fit) = calibrated_fit(hw, node, target) {
        let units = match &node.program {
            Some(p) => p.updates,
            None => node.flops,
        };
        let ms = fit.overhead_ms + fit.ms_per_unit * units;
        service.mean_ms = ms;
        service.p95_ms = ms * ratio;
        service.energy_j = busy_energy(hw, target.device(), ms);
    }
    if let Some(p) = explicit_prior(hw, node, target) {
        service.mean_ms = p.mean_ms;
        service.p95_ms = p.mean_ms * ratio;
        if let Some(e) = p.energy_j {
            service.energy_j = e;
        }
    }
    service
}

/// The TSU prior from the chip model: a whole run of the node's compiled
/// image takes `device_seconds` and `energy_j` (the simulator's estimate,
/// what `tsu inspect` prints). The cycle count of an image is fixed, so the
/// p95 is the mean. An explicit `[[perf]]` entry for the node's class still
/// wins; the error stays the rule-based one.
pub fn chip_prior(
    hw: &Hardware,
    node: &NodeSummary,
    device_seconds: f64,
    energy_j: f64,
    rule_based: Service,
) -> Option<Service> {
    if explicit_prior(hw, node, Target::Tsu).is_some() {
        return None;
    }
    let mean_ms = device_seconds * 1e3;
    Some(Service {
        mean_ms,
        p95_ms: mean_ms,
        energy_j,
        error: rule_based.error,
    })
}

/// The `[[perf]]` entry of the hardware file for this node on `target`.
fn explicit_prior<'a>(
    hw: &'a Hardware,
    node: &NodeSummary,
    target: Target,
) -> Option<&'a crate::hardware::PerfPrior> {
    hw.perf
        .iter()
        .rev()
        .find(|p| p.target == target.name() && node.class.starts_with(&p.class))
}

/// The measured service model for this node on `target`, if calibration
/// measured its family (the longest matching family wins).
fn calibrated_fit<'a>(
    hw: &'a Hardware,
    node: &NodeSummary,
    target: Target,
) -> Option<&'a crate::hardware::ServiceFit> {
    hw.calibrated
        .iter()
        .filter(|f| f.target == target.name() && node.class.starts_with(&f.family))
        .max_by_key(|f| f.family.len())
}

/// Energy a device draws for `ms` of work, for work whose energy is not modelled otherwise.
pub fn busy_energy(hw: &Hardware, device: Device, ms: f64) -> f64 {
    match device {
        Device::Cpu => ms * 1e-3 * hw.cpu.active_w_per_core,
        Device::Gpu => ms * 1e-3 * hw.gpu.active_w,
        Device::Tsu => ms * 1e-3 * hw.tsu.setup_w,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::{PerfPrior, ServiceFit};
    use crate::policy::ProgramSummary;

    fn sample_node() -> NodeSummary {
        NodeSummary {
            kind: NodeKind::Sample,
            class: "sample:ising:2^16".into(),
            flops: 0.0,
            bytes: 0.0,
            program: Some(ProgramSummary {
                chains: 2,
                samples: 100,
                updates: 1e5,
                ..Default::default()
            }),
        }
    }

    #[test]
    fn explicit_priors_beat_calibration_which_beats_defaults() {
        let node = sample_node();
        let mut hw = Hardware::default();
        let built_in = prior(&hw, &node, Target::CpuRef);
        hw.calibrated.push(ServiceFit {
            target: "cpu-ref".into(),
            family: "sample".into(),
            overhead_ms: 0.5,
            ms_per_unit: 1e-5,
            residual_cv: 0.1,
            points: 9,
        });
        let calibrated = prior(&hw, &node, Target::CpuRef);
        assert!((calibrated.mean_ms - 1.5).abs() < 1e-12);
        assert_ne!(calibrated.mean_ms, built_in.mean_ms);
        assert_eq!(calibrated.error, built_in.error);
        // Other targets keep their defaults.
        assert_eq!(
            prior(&hw, &node, Target::GpuSim),
            prior(&Hardware::default(), &node, Target::GpuSim)
        );
        hw.perf.push(PerfPrior {
            target: "cpu-ref".into(),
            class: "sample".into(),
            mean_ms: 7.0,
            energy_j: None,
        });
        assert_eq!(prior(&hw, &node, Target::CpuRef).mean_ms, 7.0);
    }
}
