//! Performance knowledge: what a node costs on each target before anything
//! has run (the prior, from the hardware description), and what was observed
//! since (the learning loop: robust mean and p95 per (target, program class),
//! Page–Hinkley drift detection, persistence between runs).
//!
//! `summary` says what each node is, `prior` what it should cost, `learn`
//! what it did cost, and `state` keeps that between runs.

mod learn;
mod mixing;
mod prior;
mod state;
mod summary;

pub use learn::{Drift, Learned, PerfTables};
pub use mixing::{
    MixingLuck, PILOT_MAX_UPDATES, RunFigures, SimulatedOutcome, constraint_rate, fit, pilot,
    run_figures, small_exact,
};
pub use prior::{Service, busy_energy, chip_prior, p95_ratio, prior};
pub use state::{StateError, check_writable, write_atomically};
pub use summary::summarise;
