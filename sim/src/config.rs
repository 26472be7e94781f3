//! Chip configuration: what the silicon can hold and what each operation costs.

use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// How cells can be coupled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Topology {
    /// Any cell may couple to any other, through at most `max_degree` slots.
    Programmable { max_degree: usize },
    /// Cells on a `width`-wide grid; a cell couples only to the cells at the
    /// listed `[dx, dy]` offsets. Programs are placed row-major (variable `i`
    /// on cell `(i % width, i / width)`).
    Grid {
        width: usize,
        neighbourhood: Vec<[i32; 2]>,
    },
}

/// The host link programs and samples travel over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Link {
    pub bandwidth_bytes_per_s: f64,
    pub latency_s: f64,
}

/// How each cell's physical noise departs from an ideal uniform source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RngModel {
    /// Probability that a cell reuses its previous noise value (temporal
    /// correlation; 0 is ideal).
    pub correlation: f64,
    /// Offset of the noise, as a fraction of its range (0 is ideal; 0.01
    /// makes every cell slightly more likely to read -1).
    pub bias: f64,
}

/// What each operation costs in energy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnergyModel {
    /// One p-bit update (one cell in one Gibbs cycle), joules.
    pub cell_update_j: f64,
    /// Reading one node's state out, joules.
    pub readout_per_node_j: f64,
    /// Writing one coupling or bias, joules.
    pub coupling_write_j: f64,
    /// Static power of the whole chip, watts.
    pub static_w: f64,
}

/// Schedule limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    pub max_sweeps: u64,
    pub max_samples: u64,
}

/// A chip. Every figure is editable; the presets start from published ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChipConfig {
    pub name: String,
    pub cells: usize,
    pub topology: Topology,
    /// Signed fixed-point weights: `weight_bits` bits spanning
    /// `[-weight_range, weight_range]` (in units of beta * w).
    pub weight_bits: u32,
    pub weight_range: f64,
    pub bias_bits: u32,
    pub bias_range: f64,
    /// The field accumulator saturates at this magnitude.
    pub field_range: f64,
    pub clock_hz: f64,
    /// Clock cycles one colour phase takes (settling).
    pub cycles_per_phase: u64,
    pub max_colours: usize,
    /// Whether free cells can hold extra copies of a program (chains run
    /// side by side).
    pub on_chip_chains: bool,
    /// Whether readout of a sample overlaps the sweeps of the next one.
    pub double_buffered_readout: bool,
    pub link: Link,
    #[serde(default)]
    pub rng: RngModel,
    pub energy: EnergyModel,
    pub limits: Limits,
}

/// Errors loading a chip description. Fatal: nothing runs on a bad chip.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}: {reason}")]
    Parse { file: String, reason: String },
    #[error("{file}: {field}: {reason}")]
    Invalid {
        file: String,
        field: String,
        reason: String,
    },
    #[error("unknown chip preset {0:?} (known: z1-like, devkit)")]
    UnknownPreset(String),
}

impl ChipConfig {
    /// A chip in the style of Extropic's Z1, from publicly reported figures:
    /// 269,568 p-bit cells on a 576 x 468 grid, each coupled to 16 neighbours
    /// in a planar, 2-colourable pattern; 50 MHz Gibbs clock; 7.09 fJ per
    /// p-bit per Gibbs cycle, 1.69 pJ readout per node, 153.6 pJ per coupling
    /// write. Precision, link and limits are assumptions; edit freely.
    pub fn z1_like() -> Self {
        // Odd offsets only (|dx| + |dy| odd), so (x + y) parity 2-colours it.
        let neighbourhood = vec![
            [1, 0],
            [-1, 0],
            [0, 1],
            [0, -1],
            [2, 1],
            [2, -1],
            [-2, 1],
            [-2, -1],
            [1, 2],
            [1, -2],
            [-1, 2],
            [-1, -2],
            [3, 0],
            [-3, 0],
            [0, 3],
            [0, -3],
        ];
        ChipConfig {
            name: "z1-like".into(),
            cells: 269_568,
            topology: Topology::Grid {
                width: 576,
                neighbourhood,
            },
            weight_bits: 8,
            weight_range: 2.0,
            bias_bits: 8,
            bias_range: 4.0,
            field_range: 16.0,
            clock_hz: 50e6,
            cycles_per_phase: 1,
            max_colours: 2,
            on_chip_chains: false,
            double_buffered_readout: true,
            link: Link {
                bandwidth_bytes_per_s: 1e9,
                latency_s: 2e-6,
            },
            rng: RngModel::default(),
            energy: EnergyModel {
                cell_update_j: 7.09e-15,
                readout_per_node_j: 1.69e-12,
                coupling_write_j: 153.6e-12,
                static_w: 0.05,
            },
            limits: Limits {
                max_sweeps: 10_000_000,
                max_samples: 1_000_000,
            },
        }
    }

    /// A small programmable development board: 4,096 cells, any topology up
    /// to degree 8, 8 colour phases, chains side by side in free cells.
    pub fn devkit() -> Self {
        ChipConfig {
            name: "devkit".into(),
            cells: 4096,
            topology: Topology::Programmable { max_degree: 8 },
            weight_bits: 8,
            weight_range: 2.0,
            bias_bits: 8,
            bias_range: 4.0,
            field_range: 16.0,
            clock_hz: 20e6,
            cycles_per_phase: 2,
            max_colours: 8,
            on_chip_chains: true,
            double_buffered_readout: false,
            link: Link {
                bandwidth_bytes_per_s: 50e6,
                latency_s: 20e-6,
            },
            rng: RngModel::default(),
            energy: EnergyModel {
                cell_update_j: 20e-15,
                readout_per_node_j: 5e-12,
                coupling_write_j: 200e-12,
                static_w: 0.01,
            },
            limits: Limits {
                max_sweeps: 1_000_000,
                max_samples: 100_000,
            },
        }
    }

    pub fn preset(name: &str) -> Result<Self, ConfigError> {
        match name {
            "z1-like" => Ok(Self::z1_like()),
            "devkit" => Ok(Self::devkit()),
            other => Err(ConfigError::UnknownPreset(other.into())),
        }
    }

    /// Reads and checks a TOML chip description.
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Io {
            file: name.clone(),
            source,
        })?;
        let chip: ChipConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            file: name.clone(),
            reason: e.to_string().trim().to_string(),
        })?;
        chip.check(&name)?;
        Ok(chip)
    }

    /// Checks every figure; `file` names the source in errors.
    pub fn check(&self, file: &str) -> Result<(), ConfigError> {
        let bad = |field: &str, reason: String| {
            Err(ConfigError::Invalid {
                file: file.into(),
                field: field.into(),
                reason,
            })
        };
        let positive = [
            ("weight_range", self.weight_range),
            ("bias_range", self.bias_range),
            ("field_range", self.field_range),
            ("clock_hz", self.clock_hz),
            (
                "link.bandwidth_bytes_per_s",
                self.link.bandwidth_bytes_per_s,
            ),
        ];
        for (field, x) in positive {
            if !(x.is_finite() && x > 0.0) {
                return bad(field, format!("must be a positive number, got {x}"));
            }
        }
        let non_negative = [
            ("link.latency_s", self.link.latency_s),
            ("energy.cell_update_j", self.energy.cell_update_j),
            ("energy.readout_per_node_j", self.energy.readout_per_node_j),
            ("energy.coupling_write_j", self.energy.coupling_write_j),
            ("energy.static_w", self.energy.static_w),
        ];
        for (field, x) in non_negative {
            if !(x.is_finite() && x >= 0.0) {
                return bad(field, format!("must be a finite number >= 0, got {x}"));
            }
        }
        if !(2..=16).contains(&self.weight_bits) {
            return bad(
                "weight_bits",
                format!("must be 2..=16, got {}", self.weight_bits),
            );
        }
        if !(2..=24).contains(&self.bias_bits) {
            return bad(
                "bias_bits",
                format!("must be 2..=24, got {}", self.bias_bits),
            );
        }
        if self.cells == 0 || self.cycles_per_phase == 0 || self.max_colours == 0 {
            return bad(
                "cells / cycles_per_phase / max_colours",
                "must be at least 1".into(),
            );
        }
        if !(0.0..1.0).contains(&self.rng.correlation) {
            return bad("rng.correlation", "must be in [0, 1)".into());
        }
        if !(-0.5..=0.5).contains(&self.rng.bias) {
            return bad("rng.bias", "must be in [-0.5, 0.5]".into());
        }
        if let Topology::Grid { width, .. } = self.topology
            && width == 0
        {
            return bad("topology.width", "must be at least 1".into());
        }
        Ok(())
    }

    /// The configuration as a TOML document (the shape [`ChipConfig::load`] reads).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("chip configs serialise")
    }

    /// `sha256:` of the canonical JSON of this configuration (provenance).
    pub fn hash(&self) -> String {
        let bytes = serde_json_bytes(self);
        format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
    }
}

/// Canonical bytes of a value via its TOML form (no JSON dependency here).
fn serde_json_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    toml::to_string(value)
        .expect("chip configs serialise")
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_round_trip() {
        for chip in [ChipConfig::z1_like(), ChipConfig::devkit()] {
            chip.check("preset").unwrap();
            let text = toml::to_string(&chip).unwrap();
            let back: ChipConfig = toml::from_str(&text).unwrap();
            assert_eq!(back, chip);
        }
        let z1 = ChipConfig::z1_like();
        if let Topology::Grid {
            width,
            neighbourhood,
        } = &z1.topology
        {
            assert_eq!(z1.cells % width, 0);
            assert_eq!(neighbourhood.len(), 16);
            assert!(
                neighbourhood
                    .iter()
                    .all(|[dx, dy]| (dx + dy).rem_euclid(2) == 1)
            );
        }
        assert_ne!(ChipConfig::z1_like().hash(), ChipConfig::devkit().hash());
    }
}
