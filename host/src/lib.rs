//! thermoroute: route mixed compute graphs to CPU, GPU or TSU under QoS
//! constraints.
//!
//! Layers, bottom up (a module imports only from layers below it;
//! `scripts/layer_check.py` fails the tests on any import circle):
//!
//! 1. [`model`]: EPrograms, workload graphs, QoS, validation.
//! 2. [`device`] (the device registry: targets, devices, per-device
//!    tables) and [`workloads`] (generated benchmark models).
//! 3. [`hardware`] (the run profile) and [`sampler`] (Gibbs sampling).
//! 4. [`policy`] (cost, eligibility and gate seams, native defaults) and
//!    [`diagnostics`] (R-hat, bulk ESS).
//! 5. [`perf`] (summaries, priors, learning tables) and [`sample_report`].
//! 6. [`trace`], [`review`] (held effects) and [`plugin`] (WebAssembly
//!    implementations of the policy seams).
//! 7. [`backends`] (CPU, GPU, TSU behind one trait; the registry) and
//!    [`export`] (Perfetto).
//! 8. [`engine`] (the event loop), [`exec`] (the single-job reference run)
//!    and [`calibration`].
//! 9. [`inputs`] (loading a run's files) and [`tui`].
//! 10. [`whatif`] (experiments) and [`counterfactual`] (re-deciding a
//!     trace's decisions under another policy).
//!
//! The `thermoroute` binary (`main.rs`, `cli/`) sits on top.

pub mod backends;
pub mod calibration;
pub mod counterfactual;
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
