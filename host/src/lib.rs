//! thermoroute: route mixed compute graphs to CPU, GPU or TSU under QoS
//! constraints.
//!
//! Layers, bottom up: [`model`] (EPrograms, graphs, QoS, validation),
//! [`sampler`] and [`diagnostics`] (Gibbs sampling and its checks),
//! [`backends`] (deterministic kernels), [`exec`] (running a graph), and the
//! `thermoroute` binary on top.

pub mod backends;
pub mod calibration;
pub mod device;
pub mod diagnostics;
pub mod engine;
pub mod exec;
pub mod export;
pub mod hardware;
pub mod inputs;
pub mod model;
pub mod perf;
pub mod plugin;
pub mod policy;
pub mod review;
pub mod sample_report;
pub mod sampler;
pub mod trace;
pub mod tui;
pub mod whatif;
pub mod workloads;
