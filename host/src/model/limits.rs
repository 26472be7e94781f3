//! Every count a user file or flag can set, with its limit, in one place.
//!
//! Each limit is checked before the memory it implies is allocated, and a
//! value past it is a typed error naming the limit and the value (README,
//! "Limits"). The bounds keep the largest accepted input within a few GiB:
//! the figure after each says what one unit costs where it is held.

/// Nodes in one workload graph (a few hundred bytes of plan and job state each).
pub const MAX_NODES: usize = 100_000;
/// Input edges of one workload graph, summed over its nodes.
pub const MAX_GRAPH_EDGES: usize = 1_000_000;
/// Elements of one tensor (8 bytes each).
pub const MAX_TENSOR_ELEMENTS: usize = 1 << 26;

/// Variables of one EProgram.
pub const MAX_VARIABLES: usize = 1 << 24;
/// Ising edges of one EProgram (24 bytes each, plus adjacency).
pub const MAX_EDGES: usize = 1 << 27;
/// Chains of one EProgram.
pub const MAX_CHAINS: u64 = 4096;
/// Kept samples per chain.
pub const MAX_SAMPLES: u64 = 10_000_000;
/// Warmup, in sweeps.
pub const MAX_WARMUP: u64 = 100_000_000;
/// Gap between kept samples, in sweeps.
pub const MAX_STEPS_PER_SAMPLE: u64 = 1_000_000;
/// Stored draw values, chains × samples × variables: one byte each, so at
/// most 1 GiB of draws (their JSON is larger still).
pub const MAX_DRAW_VALUES: u64 = 1 << 30;
/// Live chain state, chains × variables: about 8 bytes each in the sampler.
pub const MAX_CHAIN_VALUES: u64 = 1 << 27;
/// States of one categorical variable (a state is stored in one byte).
pub const MAX_STATES: u32 = 256;
/// Entries of one factor table.
pub const MAX_FACTOR_TABLE: usize = 1 << 16;
/// Joint configurations of one constrained block (the CPU sampler
/// enumerates a constrained block jointly).
pub const MAX_CONSTRAINT_CONFIGS: u64 = 4096;

/// Jobs of one run held at once or recorded one by one: all arriving at
/// once, recorded arrivals, or `--json` (a report row each, hundreds of
/// bytes to kilobytes).
pub const MAX_JOBS: u64 = 1_000_000;
/// Jobs of one run with Poisson arrivals (`--rate`, an experiment load's
/// `rate`) and no per-job records: they stream through the engine, which
/// keeps 8 bytes of latency per finished job for the percentiles.
pub const MAX_STREAMED_JOBS: u64 = 100_000_000;
/// Replications of one experiment.
pub const MAX_REPLICATIONS: u64 = 10_000;
/// Variants of one kind (hardware, policy, QoS) or load levels in one experiment.
pub const MAX_VARIANTS: usize = 1_000;
/// Runs of one experiment: loads × variants × replications.
pub const MAX_RUNS: u64 = 100_000;
/// Worker threads (`--threads`).
pub const MAX_THREADS: usize = 1024;

/// Problems listed for one invalid file; the rest are counted.
pub const MAX_ISSUES: usize = 100;
