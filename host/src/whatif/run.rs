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

/// Where a shard's index (and count) come from on a cluster.
pub const SHARD_VARIABLES: [&str; 4] = [
    "JOB_COMPLETION_INDEX",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_COUNT",
];

/// Parses `--shard`: `i/n`, `auto/n` or `auto`. `auto` takes the index
/// from a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX`, 0-based) or,
/// when that is unset, a Slurm job array (`SLURM_ARRAY_TASK_ID` minus
/// `SLURM_ARRAY_TASK_MIN`); a bare `auto` takes the count from
/// `SLURM_ARRAY_TASK_COUNT`. `env` looks a variable up (`std::env::var`
/// in the binary, a table in tests).
pub fn resolve_shard(
    s: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(usize, usize), WhatifError> {
    let (i, n) = match s.split_once('/') {
        Some((i, n)) => (i.trim(), Some(n.trim())),
        None => (s.trim(), None),
    };
    if i != "auto" {
        return parse_shard(s);
    }
    let var = |name: &str| -> Result<Option<usize>, WhatifError> {
        match env(name) {
            None => Ok(None),
            Some(v) => v.trim().parse().map(Some).map_err(|_| {
                WhatifError::ShardEnv(format!("{name}={v:?} is not a non-negative integer"))
            }),
        }
    };
    let n = match n {
        Some(n) => n.parse().map_err(|_| WhatifError::Shard(s.into()))?,
        None => var("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
            WhatifError::ShardEnv(
                "--shard auto takes the shard count from SLURM_ARRAY_TASK_COUNT, which is \
                 unset; outside Slurm give it: --shard auto/N"
                    .into(),
            )
        })?,
    };
    let index = match var("JOB_COMPLETION_INDEX")? {
        Some(i) => i,
        None => {
            let id = var("SLURM_ARRAY_TASK_ID")?.ok_or_else(|| {
                WhatifError::ShardEnv(
                    "--shard auto needs JOB_COMPLETION_INDEX (Kubernetes Indexed Job) or \
                     SLURM_ARRAY_TASK_ID (Slurm job array); neither is set"
                        .into(),
                )
            })?;
            let min = var("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            id.checked_sub(min).ok_or_else(|| {
                WhatifError::ShardEnv(format!(
                    "SLURM_ARRAY_TASK_ID={id} is below SLURM_ARRAY_TASK_MIN={min}"
                ))
            })?
        }
    };
    if n == 0 || index >= n {
        return Err(WhatifError::ShardEnv(format!(
            "shard index {index} from the environment is not below the shard count {n}"
        )));
    }
    Ok((index, n))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn auto_shards_come_from_kubernetes_or_slurm() {
        let k8s = [("JOB_COMPLETION_INDEX", "2"), ("SLURM_ARRAY_TASK_ID", "9")];
        assert_eq!(resolve_shard("auto/4", &env(&k8s)).unwrap(), (2, 4));
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "7"),
            ("SLURM_ARRAY_TASK_MIN", "5"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ];
        assert_eq!(resolve_shard("auto", &env(&slurm)).unwrap(), (2, 4));
        assert_eq!(resolve_shard("auto/3", &env(&slurm)).unwrap(), (2, 3));
        assert_eq!(resolve_shard("1/3", &env(&[])).unwrap(), (1, 3));
    }

    #[test]
    fn missing_or_bad_variables_are_clear_errors() {
        let e = resolve_shard("auto/4", &env(&[])).unwrap_err().to_string();
        assert!(
            e.contains("JOB_COMPLETION_INDEX") && e.contains("SLURM_ARRAY_TASK_ID"),
            "{e}"
        );
        let e = resolve_shard("auto", &env(&[("JOB_COMPLETION_INDEX", "0")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("SLURM_ARRAY_TASK_COUNT"), "{e}");
        let e = resolve_shard("auto/2", &env(&[("JOB_COMPLETION_INDEX", "x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("JOB_COMPLETION_INDEX=\"x\""), "{e}");
        let e = resolve_shard("auto/2", &env(&[("JOB_COMPLETION_INDEX", "2")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not below"), "{e}");
        let low = [("SLURM_ARRAY_TASK_ID", "1"), ("SLURM_ARRAY_TASK_MIN", "3")];
        assert!(resolve_shard("auto/2", &env(&low)).is_err());
        assert!(resolve_shard("auto/x", &env(&[])).is_err());
    }
}
