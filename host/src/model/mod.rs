//! The data model: EPrograms, workload graphs, QoS, and their validation.

pub mod eprogram;
pub mod error;
pub mod graph;
pub mod limits;

pub use eprogram::{EProgram, Infeasible, Schedule, VarKind};
pub use error::{Issue, ModelError};
pub use graph::{Graph, Node, NodeKind};
