//! The input files of a run, loaded in one place: workload graphs as job
//! classes, the hardware description (or the default), a calibration
//! applied to it, the routing tables learned by earlier runs, and the
//! plugin components of a policy.
//!
//! Every error names the file it comes from; callers decide how to show it
//! (`run` lists a graph's problems one per line, the others print the error).

use std::path::{Path, PathBuf};

use crate::calibration::{Calibration, CalibrationError};
use crate::engine::JobClass;
use crate::hardware::{Hardware, HardwareError};
use crate::model::{Graph, ModelError};
use crate::perf::{PerfTables, StateError};
use crate::plugin::{PluginError, PluginSet};

/// Why the inputs of a run could not be loaded. Each variant shows exactly
/// the message of the loader it wraps.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    #[error(transparent)]
    Graph(#[from] ModelError),
    #[error(transparent)]
    Hardware(#[from] HardwareError),
    #[error(transparent)]
    Calibration(#[from] CalibrationError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// Which files to load; `None` means the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct InputFiles<'a> {
    pub graphs: &'a [PathBuf],
    pub hardware: Option<&'a Path>,
    pub calibration: Option<&'a Path>,
    pub state: Option<&'a Path>,
}

/// What a run starts from.
#[derive(Debug)]
pub struct Inputs {
    pub classes: Vec<JobClass>,
    pub hardware: Hardware,
    pub tables: PerfTables,
}

impl InputFiles<'_> {
    /// Loads graphs, then hardware, then calibration, then state: the first
    /// bad file stops the load.
    pub fn load(&self) -> Result<Inputs, InputError> {
        let classes = load_job_classes(self.graphs)?;
        let hardware = load_calibrated_hardware(self.hardware, self.calibration)?;
        let tables = load_state(self.state)?;
        Ok(Inputs {
            classes,
            hardware,
            tables,
        })
    }
}

/// One job class per graph file, named by the graph's `name` or else by
/// the file's stem.
pub fn load_job_classes(paths: &[PathBuf]) -> Result<Vec<JobClass>, ModelError> {
    paths
        .iter()
        .map(|path| {
            let graph = Graph::load(path)?;
            let name = graph.name.clone().unwrap_or_else(|| {
                path.file_stem()
                    .map_or("graph".into(), |s| s.to_string_lossy().into_owned())
            });
            Ok(JobClass { name, graph })
        })
        .collect()
}

/// The hardware description in `path`, or the default machine (8 CPU
/// cores, one GPU, one TSU).
pub fn load_hardware(path: Option<&Path>) -> Result<Hardware, HardwareError> {
    match path {
        Some(p) => Hardware::load(p),
        None => Ok(Hardware::default()),
    }
}

/// [`load_hardware`], with the measured biases of a calibration file.
pub fn load_calibrated_hardware(
    hardware: Option<&Path>,
    calibration: Option<&Path>,
) -> Result<Hardware, InputError> {
    let mut hw = load_hardware(hardware)?;
    if let Some(file) = calibration {
        Calibration::load(file)?.apply(&mut hw);
    }
    Ok(hw)
}

/// Routing tables saved by an earlier run; empty without a file (or when
/// the file does not exist yet).
pub fn load_state(path: Option<&Path>) -> Result<PerfTables, StateError> {
    match path {
        Some(p) => PerfTables::load(p),
        None => Ok(PerfTables::default()),
    }
}

/// A graph file, checked, and also kept as JSON for callers that edit it
/// before building the graph (what-if QoS variants). The file is read once.
pub fn load_graph_document(path: &Path) -> Result<serde_json::Value, ModelError> {
    let text = crate::model::error::read_file(path)?;
    Graph::from_json(path, &text)?;
    crate::model::error::parse_json(path, &text)
}

/// Plugin components named one by one; any role left out is native.
#[derive(Debug, Clone, Copy, Default)]
pub struct PluginFiles<'a> {
    /// A policy directory (cost.wasm, eligibility.wasm, gate.wasm, policy.wasm).
    pub policy: Option<&'a Path>,
    pub cost: Option<&'a Path>,
    pub eligibility: Option<&'a Path>,
    pub gate: Option<&'a Path>,
    /// Queue-order component (`queue-order@0.2.0`).
    pub queue_order: Option<&'a Path>,
    /// Admission component (`admit@0.2.0`).
    pub admit: Option<&'a Path>,
    /// Preemption component (`preempt@0.2.0`).
    pub preempt: Option<&'a Path>,
}

impl PluginFiles<'_> {
    /// The plugins of the policy directory, each role overridden by a
    /// component named on its own.
    pub fn plugin_set(&self) -> Result<PluginSet, PluginError> {
        let mut set = match self.policy {
            Some(dir) => PluginSet::from_dir(dir)?,
            None => PluginSet::default(),
        };
        for (slot, file) in [
            (&mut set.cost, self.cost),
            (&mut set.eligibility, self.eligibility),
            (&mut set.gate, self.gate),
            (&mut set.queue_order, self.queue_order),
            (&mut set.admit, self.admit),
            (&mut set.preempt, self.preempt),
        ] {
            if let Some(f) = file {
                *slot = Some(f.to_path_buf());
            }
        }
        Ok(set)
    }
}
