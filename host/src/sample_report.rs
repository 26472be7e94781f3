//! The result document of a sampling run, as fixed by the product brief.

use std::io::{self, Write};

use rayon::prelude::*;
use serde::Serialize;

use crate::diagnostics::{Diagnostics, diagnose};
use crate::model::{EProgram, Schedule};
use crate::sampler::Draws;

/// Where a result came from: enough to reproduce and to audit it.
#[derive(Debug, Clone, Serialize)]
pub struct Provenance {
    pub backend: String,
    pub seed: u64,
    pub program_hash: String,
    pub schedule: Schedule,
    pub draws_hash: String,
    pub thermoroute_version: &'static str,
    /// TSU runs: the compiled image and the chip configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chip_hash: Option<String>,
    /// GPU runs: the adapter that ran the kernels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapter: Option<AdapterProvenance>,
    /// CPU and TSU-simulator runs: the instruction-set path the host's
    /// kernels ran with (`baseline`, `avx2` or `avx512`; the draws are the
    /// same bits on every path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_kernel: Option<&'static str>,
}

/// The GPU adapter a run used, as plain data the caller fills in (this
/// document does not depend on the GPU driver).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdapterProvenance {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    /// How GPU busy time was measured: `timestamps` or `wall`.
    pub timing: String,
}

/// Work done.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Variable updates, warmup included.
    pub spin_updates: u64,
    /// Wall-clock seconds of sampling.
    pub seconds: f64,
    /// Updates per second.
    pub updates_per_second: f64,
    /// TSU runs: simulated device cycles and energy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cycles: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub energy_j: Option<f64>,
    /// TSU runs: simulated device seconds (`seconds` is the host's wall time).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_seconds: Option<f64>,
}

/// `thermoroute sample --json` output.
#[derive(Debug, Clone, Serialize)]
pub struct SampleReport {
    /// `completed` (an infeasible program reports through [`InfeasibleReport`]).
    pub status: &'static str,
    /// P(s_i = +1) per spin; `null` for categorical variables (see `state_marginals`).
    pub marginals: Vec<Option<f64>>,
    /// P(x_i = k) for every state k of every variable (spins: [P(-1), P(+1)]).
    pub state_marginals: Vec<Vec<f64>>,
    pub diagnostics: Diagnostics,
    pub provenance: Provenance,
    pub stats: Stats,
}

/// `thermoroute sample --json` output for a program whose clamps contradict
/// a constraint.
#[derive(Debug, Clone, Serialize)]
pub struct InfeasibleReport {
    pub status: &'static str,
    pub constraint: String,
    pub explanation: String,
    pub program_hash: String,
}

impl SampleReport {
    /// Builds the report (computes diagnostics, which is the expensive part).
    pub fn new(program: &EProgram, draws: &Draws, seed: u64, backend: &str) -> Self {
        let state_marginals = draws.state_marginals();
        let marginals = state_marginals
            .iter()
            .zip(&draws.is_spin)
            .map(|(m, &spin)| spin.then(|| m[1]))
            .collect();
        SampleReport {
            status: "completed",
            marginals,
            state_marginals,
            diagnostics: diagnose(draws),
            provenance: Provenance {
                backend: backend.to_string(),
                seed,
                program_hash: program.canonical_hash(),
                schedule: program.schedule,
                draws_hash: draws.hash(),
                adapter: None,
                thermoroute_version: env!("CARGO_PKG_VERSION"),
                image_hash: None,
                chip_hash: None,
                cpu_kernel: matches!(backend, "cpu" | "tsu")
                    .then(|| crate::sampler::CpuKernel::active().name()),
            },
            stats: Stats {
                spin_updates: draws.spin_updates,
                seconds: draws.seconds,
                updates_per_second: draws.spin_updates as f64 / draws.seconds.max(1e-12),
                cycles: None,
                energy_j: None,
                device_seconds: None,
            },
        }
    }
}

/// The `--draws FILE` document.
#[derive(Debug, Clone, Serialize)]
pub struct DrawsFile {
    pub chains: usize,
    pub samples: usize,
    /// `draws[chain][sample][variable]`: ±1 for spins, a state index (0..=255) for categoricals.
    pub draws: Vec<Vec<Vec<i16>>>,
}

impl From<&Draws> for DrawsFile {
    fn from(d: &Draws) -> Self {
        let draws = (0..d.chains)
            .map(|c| {
                (0..d.samples)
                    .map(|s| {
                        let at = (c * d.samples + s) * d.n_vars;
                        d.values[at..at + d.n_vars]
                            .iter()
                            .enumerate()
                            .map(|(v, &x)| {
                                if d.is_spin[v] {
                                    i16::from(x)
                                } else {
                                    d.state_of(v, x) as i16
                                }
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        DrawsFile {
            chains: d.chains,
            samples: d.samples,
            draws,
        }
    }
}

/// Writes the `--draws FILE` document, byte for byte what `serde_json` makes
/// of a [`DrawsFile`], without building it: rows are formatted in parallel,
/// a batch at a time, and written in order. Give it a buffered writer.
pub fn write_draws_json(d: &Draws, out: &mut impl Write) -> io::Result<()> {
    const BATCH: usize = 64;
    write!(
        out,
        "{{\"chains\":{},\"samples\":{},\"draws\":[",
        d.chains, d.samples
    )?;
    let n = d.n_vars;
    let mut batch: Vec<Vec<u8>> = Vec::new();
    for chain in 0..d.chains {
        out.write_all(if chain > 0 { b",[" } else { b"[" })?;
        for start in (0..d.samples).step_by(BATCH) {
            let end = (start + BATCH).min(d.samples);
            batch.resize_with(end - start, Vec::new);
            batch.par_iter_mut().enumerate().for_each(|(k, text)| {
                let sample = start + k;
                let r = chain * d.samples + sample;
                text.clear();
                text.extend_from_slice(if sample > 0 { b",[" } else { b"[" });
                for (v, &x) in d.values[r * n..(r + 1) * n].iter().enumerate() {
                    match x {
                        1 => text.extend_from_slice(b"1,"),
                        -1 if d.is_spin[v] => text.extend_from_slice(b"-1,"),
                        _ => {
                            // A categorical state is the byte read unsigned.
                            let m = if d.is_spin[v] {
                                i16::from(x)
                            } else {
                                d.state_of(v, x) as i16
                            };
                            push_i16(text, m);
                            text.push(b',');
                        }
                    }
                }
                // The last comma closes the row instead.
                if n > 0 {
                    text.pop();
                }
                text.push(b']');
            });
            for text in &batch {
                out.write_all(text)?;
            }
        }
        out.write_all(b"]")?;
    }
    out.write_all(b"]}")
}

/// Appends a draw (a spin, or a categorical state 0..=255) as decimal text.
fn push_i16(text: &mut Vec<u8>, v: i16) {
    let mut m = v;
    if m < 0 {
        text.push(b'-');
        m = -m;
    }
    if m >= 100 {
        text.push(b'0' + (m / 100) as u8);
    }
    if m >= 10 {
        text.push(b'0' + (m / 10 % 10) as u8);
    }
    text.push(b'0' + (m % 10) as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_draws_file_equals_serde() {
        for (chains, samples, n_vars) in [(2, 3, 4), (1, 1, 1), (3, 2, 0), (2, 0, 3)] {
            let values: Vec<i8> = (0..chains * samples * n_vars)
                .map(|i| [-1i8, 1, 0, 2, 10, 127, -128, -100, 99][i % 9])
                .collect();
            let d = Draws {
                chains,
                samples,
                n_vars,
                // Every third variable a 256-state categorical: states
                // 128..=255 are negative bytes and must print unsigned.
                states: (0..n_vars)
                    .map(|v| if v % 3 == 2 { 256 } else { 2 })
                    .collect(),
                is_spin: (0..n_vars).map(|v| v % 3 != 2).collect(),
                values,
                spin_updates: 0,
                seconds: 0.0,
            };
            let mut ours = Vec::new();
            write_draws_json(&d, &mut ours).unwrap();
            let serde = serde_json::to_vec(&DrawsFile::from(&d)).unwrap();
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                String::from_utf8(serde).unwrap(),
                "{chains}x{samples}x{n_vars}"
            );
        }
    }
}
