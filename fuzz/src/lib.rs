//! The host's lower layers, compiled by path from `host/src` so the fuzz
//! targets reach the EProgram and graph parsers, their validation, the
//! hardware TOML and the trace reader without building (and instrumenting)
//! wasmtime or wgpu. These modules import only each other and plain-data
//! crates (the layer check keeps them below the backends); the module names
//! match the host's, so their `crate::model::…` paths resolve here. A host
//! change that makes one of them import a higher layer breaks this build:
//! `scripts/fuzz.sh` says so.
#![allow(dead_code, unused_imports, missing_debug_implementations)]

#[path = "../../host/src/model/mod.rs"]
pub mod model;

#[path = "../../host/src/device.rs"]
pub mod device;

#[path = "../../host/src/hardware/mod.rs"]
pub mod hardware;

#[path = "../../host/src/policy/mod.rs"]
pub mod policy;

#[path = "../../host/src/perf/mod.rs"]
pub mod perf;

// The mixing models in `perf` run the CPU sampler and its diagnostics.
#[path = "../../host/src/sampler/mod.rs"]
pub mod sampler;

#[path = "../../host/src/diagnostics/mod.rs"]
pub mod diagnostics;

#[path = "../../host/src/workloads.rs"]
pub mod workloads;

#[path = "../../host/src/trace/mod.rs"]
pub mod trace;

/// The experiment file's form (`whatif::file` in the host).
#[path = "../../host/src/whatif/file.rs"]
pub mod whatif_file;
