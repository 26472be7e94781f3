//! `--state FILE`: the learning tables saved between runs, written
//! atomically.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::learn::{Learned, PerfTables};

/// On-disk form of [`PerfTables`] (`--state FILE`).
#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    format: String,
    version: u32,
    tables: Vec<Learned>,
}

const STATE_FORMAT: &str = "thermoroute-state";
const STATE_VERSION: u32 = 1;

/// Errors reading or writing the routing-table state file. Fatal for the run
/// that asked for it; the file itself is never left half-written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: not a thermoroute state file: {reason}")]
    Parse {
        file: std::path::PathBuf,
        reason: String,
    },
    #[error("{file}: tables[{entry}] ({target} {class}): field {field}: {reason}")]
    Invalid {
        file: std::path::PathBuf,
        /// Position in `tables`.
        entry: usize,
        target: String,
        class: String,
        /// The field at fault.
        field: &'static str,
        reason: String,
    },
    #[error("{file}: tables[{entry}]: a second entry for {target} {class}")]
    Duplicate {
        file: std::path::PathBuf,
        entry: usize,
        target: String,
        class: String,
    },
    #[error("{file}: cannot write: {source}")]
    Write {
        file: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl PerfTables {
    /// Loads tables saved by an earlier run; a missing file is an empty table.
    pub fn load(file: &Path) -> Result<Self, StateError> {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(StateError::Read {
                    file: file.into(),
                    source,
                });
            }
        };
        let state: StateFile = serde_json::from_str(&text).map_err(|e| StateError::Parse {
            file: file.into(),
            reason: e.to_string(),
        })?;
        if state.format != STATE_FORMAT || state.version != STATE_VERSION {
            return Err(StateError::Parse {
                file: file.into(),
                reason: format!(
                    "format {:?} version {} (expected {STATE_FORMAT:?} version {STATE_VERSION})",
                    state.format, state.version
                ),
            });
        }
        let mut tables = Self::default();
        for (i, entry) in state.tables.into_iter().enumerate() {
            if let Err((field, reason)) = entry.check() {
                return Err(StateError::Invalid {
                    file: file.into(),
                    entry: i,
                    target: entry.target.to_string(),
                    class: entry.class,
                    field,
                    reason,
                });
            }
            if tables
                .index
                .contains_key(&(entry.target, entry.class.clone()))
            {
                return Err(StateError::Duplicate {
                    file: file.into(),
                    entry: i,
                    target: entry.target.to_string(),
                    class: entry.class,
                });
            }
            tables
                .index
                .insert((entry.target, entry.class.clone()), tables.entries.len());
            tables.entries.push(entry);
        }
        Ok(tables)
    }

    /// Writes the tables atomically (temporary file, then rename).
    pub fn save(&self, file: &Path) -> Result<(), StateError> {
        let state = StateFile {
            format: STATE_FORMAT.into(),
            version: STATE_VERSION,
            tables: self.entries.clone(),
        };
        let text = serde_json::to_string_pretty(&state).expect("tables serialise");
        write_atomically(file, text.as_bytes()).map_err(|source| StateError::Write {
            file: file.into(),
            source,
        })
    }
}

/// Checks, before a run, that `file` can be written at its end: its
/// directory exists (or can be made) and takes a temporary file. Nothing is
/// left behind.
pub fn check_writable(file: &Path) -> Result<(), StateError> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let err = |source| StateError::Write {
        file: file.into(),
        source,
    };
    if file.is_dir() {
        return Err(err(std::io::Error::new(
            std::io::ErrorKind::IsADirectory,
            "is a directory",
        )));
    }
    std::fs::create_dir_all(dir).map_err(err)?;
    tempfile::NamedTempFile::new_in(dir).map_err(err)?;
    Ok(())
}

/// Writes `bytes` to a sibling temporary file and renames it over `file`, so
/// readers see the old or the new content, never a torn one.
pub fn write_atomically(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(file).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::Target;
    use crate::hardware::DriftSpec;
    use crate::perf::Service;

    #[test]
    fn state_round_trips_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("state.json");
        let mut t = PerfTables::default();
        let slot = t.slot(
            Target::Tsu,
            "sample:ising:2^10",
            Service {
                mean_ms: 2.0,
                p95_ms: 6.0,
                energy_j: 0.1,
                error: 0.0,
            },
        );
        t.get_mut(slot).observe(4.0, 0.2, &DriftSpec::default());
        t.save(&file).unwrap();
        let back = PerfTables::load(&file).unwrap();
        assert_eq!(back.entries(), t.entries());
        std::fs::write(&file, "{\"format\": \"nope\"}").unwrap();
        assert!(matches!(
            PerfTables::load(&file),
            Err(StateError::Parse { .. })
        ));
        // Semantically impossible figures: refused, naming the field.
        t.save(&file).unwrap();
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let cases: [(&str, serde_json::Value, &str); 4] = [
            ("mean_ms", serde_json::json!(-1906.0), "mean_ms"),
            ("energy_j", serde_json::json!(-5.95e13), "energy_j"),
            ("p95_ms", serde_json::json!(0.5), "p95_ms"),
            ("n", serde_json::json!(1_000_000), "n"),
        ];
        for (key, value, field) in cases {
            let mut bad = doc.clone();
            bad["tables"][0][key] = value;
            let text = serde_json::to_string(&bad).unwrap();
            std::fs::write(&file, &text).unwrap();
            match PerfTables::load(&file) {
                Err(StateError::Invalid {
                    field: f, entry: 0, ..
                }) => assert_eq!(f, field),
                other => panic!("{key}: {other:?}"),
            }
            assert_eq!(
                std::fs::read_to_string(&file).unwrap(),
                text,
                "left unchanged"
            );
        }
        let mut dup = doc.clone();
        let first = dup["tables"][0].clone();
        dup["tables"].as_array_mut().unwrap().push(first);
        std::fs::write(&file, dup.to_string()).unwrap();
        assert!(matches!(
            PerfTables::load(&file),
            Err(StateError::Duplicate { entry: 1, .. })
        ));
        assert!(
            PerfTables::load(&dir.path().join("absent.json"))
                .unwrap()
                .entries()
                .is_empty()
        );
    }
}
