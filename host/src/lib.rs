//! thermoroute: route mixed compute graphs to CPU, GPU or TSU under QoS
//! constraints.
//!
//! Layers, bottom up: [`model`] (EPrograms, graphs, QoS, validation),
//! [`sampler`] and [`diagnostics`] (Gibbs sampling and its checks),
//! [`backends`] (deterministic kernels), [`exec`] (running a graph), and the
//! `thermoroute` binary on top.

pub mod backends;
pub mod diagnostics;
pub mod exec;
pub mod model;
pub mod report;
pub mod sampler;
pub mod workloads;
