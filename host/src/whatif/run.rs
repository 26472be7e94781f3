//! Running the cross product: one engine per run, in parallel, a shard at a time.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Prepared, RunSpec, WhatifError};
use crate::device::Device;
use crate::engine::{Arrivals, Engine, EngineConfig, Mode};
use crate::perf::PerfTables;

/// The metrics of one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunResult {
    pub spec: RunSpec,
    pub metrics: BTreeMap<String, f64>,
}

impl Prepared {
    /// Runs one spec.
    pub fn run(&self, spec: &RunSpec) -> Result<RunResult, WhatifError> {
        let (classes, hw) = self.build(spec)?;
        let load = &self.experiment.load[spec.load];
        let arrivals = match load.rate {
            Some(rate_per_s) => Arrivals::Poisson {
                jobs: load.jobs,
                rate_per_s,
            },
            None => Arrivals::AtOnce { jobs: load.jobs },
        };
        let mode = if self.experiment.mode == "execute" {
            Mode::Execute
        } else {
            Mode::Simulate
        };
        let config = EngineConfig {
            mode,
            seed: self.experiment.seed.wrapping_add(spec.replication),
            arrivals,
            mix: self.experiment.mix.clone(),
            record_jobs: false,
            threads: Some(1),
            ..Default::default()
        };
        let policy = self.policy(spec, &hw)?;
        let fail = |e: &dyn std::fmt::Display| WhatifError::Run {
            run: spec.variant.clone(),
            reason: e.to_string(),
        };
        let mut engine = Engine::new(classes, hw, policy, PerfTables::default(), config)
            .map_err(|e| fail(&e))?;
        engine.run().map_err(|e| fail(&e))?;
        let r = engine.report();
        let mut m = BTreeMap::new();
        let mut put = |k: &str, v: Option<f64>| {
            if let Some(v) = v {
                m.insert(k.to_string(), v);
            }
        };
        put("latency_p50_ms", r.latency_p50_ms);
        put("latency_p95_ms", r.latency_p95_ms);
        put("energy_per_job_j", r.mean_energy_j);
        put("expected_error", r.mean_sampling_error);
        put("policy_faults", Some(r.counters.policy_faults as f64));
        put("slo_attainment", r.slo_attainment);
        put("rejected", Some(r.rejected as f64));
        put("infeasible", Some(r.infeasible as f64));
        put("util_cpu", r.utilisation[Device::Cpu]);
        put("util_gpu", r.utilisation[Device::Gpu]);
        put("util_tsu", r.utilisation[Device::Tsu]);
        Ok(RunResult {
            spec: spec.clone(),
            metrics: m,
        })
    }

    /// Runs the runs of shard `i` of `n` (all of them for 0/1) in parallel.
    pub fn run_shard(
        &self,
        shard: (usize, usize),
        progress: &(dyn Fn() + Sync),
    ) -> Result<Vec<RunResult>, WhatifError> {
        let runs: Vec<RunSpec> = self
            .runs()
            .into_iter()
            .filter(|r| r.index % shard.1 == shard.0)
            .collect();
        runs.par_iter()
            .map(|spec| {
                let r = self.run(spec);
                progress();
                r
            })
            .collect()
    }
}

/// Parses `i/n`.
pub fn parse_shard(s: &str) -> Result<(usize, usize), WhatifError> {
    let (i, n) = s
        .split_once('/')
        .ok_or_else(|| WhatifError::Shard(s.into()))?;
    let (i, n): (usize, usize) = (
        i.trim().parse().map_err(|_| WhatifError::Shard(s.into()))?,
        n.trim().parse().map_err(|_| WhatifError::Shard(s.into()))?,
    );
    if n == 0 || i >= n {
        return Err(WhatifError::Shard(s.into()));
    }
    Ok((i, n))
}
