//! Every workspace-level integration test, linked into one binary.
//!
//! Each module was once its own test target; each of those linked wasmtime,
//! wgpu and the whole host, so a clean build wrote gigabytes and spent
//! minutes in the linker. One binary links once and runs its tests in
//! parallel.

mod cli;
mod cli_run;
mod cli_tsu;
mod cpu_kernels;
mod determinism;
mod diagnostics_vs_arviz;
mod exact_enumeration;
mod export;
mod faithful;
mod fast_lowering;
mod fuzz_regressions;
mod golden;
mod gpu;
mod graph_exec;
mod guest_output;
mod input_limits;
mod logs;
mod output_scale;
mod plugin_c;
mod plugin_cases;
mod plugin_hardening;
mod plugin_langs;
mod plugin_reload;
mod plugin_v02;
mod plugins;
mod queue_roles;
mod replay_policy;
mod reviews_faults;
mod scheduler;
mod trace_parts;
mod tsu;
mod tui;
mod whatif;
mod whatif_outputs;
