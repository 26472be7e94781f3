//! A cycle-level simulator of a TSU: a chip of p-bit cells that sample spins
//! from the sigmoid of their local field using physical noise, many cells at
//! once, one colour phase at a time.
//!
//! ```text
//!   host ──link──► coupling/bias SRAM ──► cell array (colour phase k)
//!                   (quantised,            │  field = Σ w·s + b   (saturating
//!                    fixed point)          │                        fixed point)
//!                                          │  P(+1) = LUT[field]
//!   host ◄──link── readout buffer ◄────────┘  s = noise < P(+1) ? +1 : -1
//!                  (double-buffered)          (noise: per-cell RNG model)
//! ```
//!
//! # A tour
//!
//! 1. Describe the chip: [`ChipConfig::z1_like`] and [`ChipConfig::devkit`]
//!    are presets; every figure is editable, and [`ChipConfig::load`] reads a
//!    TOML file of the same shape.
//! 2. Describe the program as a [`SpinProblem`] (pairwise spins, clamps, a
//!    schedule) and [`compile`] it: the compiler places variables on cells,
//!    colours them, and quantises `beta * w` and `beta * b` to the chip's
//!    fixed-point formats. A program that does not fit comes back as a list
//!    of [`CompileIssue`]s: too many cells, too many couplings per cell, not a
//!    grid neighbour, too many colours, a schedule beyond the limits, weights
//!    that saturate or lose more than the tolerance.
//! 3. Run the [`TsuImage`] with [`TsuRun::new`] (this counts the program
//!    load) and [`TsuRun::advance`] (sweeps, phase by phase; readout of each
//!    kept sample). Runs are deterministic from cycle 0 and the seed, and can
//!    be suspended at any sweep boundary ([`TsuRun::suspend`]; the next
//!    `advance` restores the state, and both are charged) without changing a
//!    single sample.
//! 4. Read [`TsuRun::draws`] and [`TsuRun::counters`]: cycles and joules by
//!    stage, device seconds.
//!
//! # The cost formulas
//!
//! With `n` variables of which `f` are free, `C` colours, `p` cycles per
//! phase, `q` copies running side by side, clock `F`, link bandwidth `B`
//! bytes/s and latency `L` s:
//!
//! * load: `ceil((L + 4 * writes / B) * F)` cycles, `writes * E_write` joules,
//!   where `writes = (Σ degree + n) * q`;
//! * each sweep: `C * p` cycles and `f * q * E_update` joules;
//! * each kept sample: `ceil((L + ceil(n * q / 8) / B) * F)` readout cycles,
//!   minus the `steps_per_sample * C * p` cycles it hides behind when
//!   double-buffered, and `n * q * E_readout` joules;
//! * a checkpoint (suspend or resume): `ceil((L + (ceil(n * q / 8) + 8 q) / B) * F)` cycles;
//! * static power over the device time; batches of `q` chains run one after
//!   another.
//!
//! Faults ([`Faults`]): stuck cells, RNG bias and correlation, bias drift over
//! device time, offline windows ([`SimError::Offline`]) and clock throttling.

pub mod config;
pub mod cpu;
pub mod exec;
pub mod image;

pub use config::{ChipConfig, ConfigError, Topology};
pub use cpu::{CpuKernel, CpuKernelError};
pub use exec::{Counters, Draws, Faults, SimError, Throttle, TimeWindow, TsuRun, estimate};
pub use image::{CompileIssue, Schedule, SpinProblem, TsuImage, compile};
