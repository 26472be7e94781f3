//! The review queue: effects a gate held for a human, persisted on disk.
//! An item leaves `pending` only by a decision: approved (the effect is
//! applied) or denied (it is dropped). The file is rewritten atomically, so
//! a crash never loses or half-writes a held effect.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::model::graph::Risk;
use crate::policy::Evidence;

/// Default location of the queue, relative to the working directory.
pub const DEFAULT_REVIEW_FILE: &str = ".thermoroute/reviews.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewStatus {
    Pending,
    /// Approved by a reviewer; the effect was applied.
    Applied,
    /// Denied by a reviewer; the effect was dropped.
    Dropped,
}

/// One held effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewItem {
    pub id: String,
    pub graph: String,
    pub job: u64,
    pub node: String,
    pub action: String,
    pub risk: Risk,
    /// Why the gate wants a human.
    pub reasons: Vec<String>,
    pub evidence: Vec<Evidence>,
    pub status: ReviewStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct QueueFile {
    format: String,
    version: u32,
    next_id: u64,
    items: Vec<ReviewItem>,
}

const FORMAT: &str = "thermoroute-reviews";
const VERSION: u32 = 1;

/// Errors of the review queue. All fatal for the command that hit them; the
/// queue file is left as it was.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReviewError {
    #[error("{file}: cannot read: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: cannot write: {source}")]
    Write {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: not a review queue: {reason}")]
    Parse { file: PathBuf, reason: String },
    #[error("no review item {id:?} in {file}")]
    UnknownId { file: PathBuf, id: String },
    #[error("review item {id:?} was already decided ({status:?})")]
    AlreadyDecided { id: String, status: ReviewStatus },
}

/// The queue, loaded from and saved to one file.
#[derive(Debug)]
pub struct ReviewQueue {
    path: PathBuf,
    next_id: u64,
    items: Vec<ReviewItem>,
}

impl ReviewQueue {
    /// Opens the queue at `path` (empty if the file does not exist yet).
    pub fn open(path: &Path) -> Result<Self, ReviewError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(ReviewQueue {
                    path: path.into(),
                    next_id: 1,
                    items: Vec::new(),
                });
            }
            Err(source) => {
                return Err(ReviewError::Read {
                    file: path.into(),
                    source,
                });
            }
        };
        let file: QueueFile = serde_json::from_str(&text).map_err(|e| ReviewError::Parse {
            file: path.into(),
            reason: e.to_string(),
        })?;
        if file.format != FORMAT || file.version != VERSION {
            return Err(ReviewError::Parse {
                file: path.into(),
                reason: format!("format {:?} version {}", file.format, file.version),
            });
        }
        Ok(ReviewQueue {
            path: path.into(),
            next_id: file.next_id,
            items: file.items,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn items(&self) -> &[ReviewItem] {
        &self.items
    }

    pub fn pending(&self) -> impl Iterator<Item = &ReviewItem> {
        self.items
            .iter()
            .filter(|i| i.status == ReviewStatus::Pending)
    }

    /// Holds an effect; returns its id. Saved before returning.
    pub fn hold(&mut self, mut item: ReviewItem) -> Result<String, ReviewError> {
        item.id = format!("R{:04}", self.next_id);
        item.status = ReviewStatus::Pending;
        self.next_id += 1;
        let id = item.id.clone();
        self.items.push(item);
        self.save()?;
        Ok(id)
    }

    /// Approves (applies) or denies (drops) a pending item. Saved before returning.
    pub fn decide(
        &mut self,
        id: &str,
        approve: bool,
        by: Option<String>,
        note: Option<String>,
    ) -> Result<&ReviewItem, ReviewError> {
        let Some(pos) = self.items.iter().position(|i| i.id == id) else {
            return Err(ReviewError::UnknownId {
                file: self.path.clone(),
                id: id.into(),
            });
        };
        let status = self.items[pos].status;
        if status != ReviewStatus::Pending {
            return Err(ReviewError::AlreadyDecided {
                id: id.into(),
                status,
            });
        }
        let item = &mut self.items[pos];
        item.status = if approve {
            ReviewStatus::Applied
        } else {
            ReviewStatus::Dropped
        };
        item.decided_by = by;
        item.note = note;
        self.save()?;
        Ok(&self.items[pos])
    }

    fn save(&self) -> Result<(), ReviewError> {
        let file = QueueFile {
            format: FORMAT.into(),
            version: VERSION,
            next_id: self.next_id,
            items: self.items.clone(),
        };
        let text = serde_json::to_string_pretty(&file).expect("queue serialises");
        crate::perf::write_atomically(&self.path, text.as_bytes()).map_err(|source| {
            ReviewError::Write {
                file: self.path.clone(),
                source,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item() -> ReviewItem {
        ReviewItem {
            id: String::new(),
            graph: "g".into(),
            job: 0,
            node: "act".into(),
            action: "block card".into(),
            risk: Risk::Irreversible,
            reasons: vec!["low ESS".into()],
            evidence: vec![],
            status: ReviewStatus::Pending,
            decided_by: None,
            note: None,
        }
    }

    #[test]
    fn held_items_persist_until_decided() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q/reviews.json");
        let mut q = ReviewQueue::open(&path).unwrap();
        let a = q.hold(item()).unwrap();
        let b = q.hold(item()).unwrap();
        assert_ne!(a, b);
        let mut q = ReviewQueue::open(&path).unwrap();
        assert_eq!(q.pending().count(), 2);
        assert_eq!(
            q.decide(&a, true, None, None).unwrap().status,
            ReviewStatus::Applied
        );
        assert!(matches!(
            q.decide(&a, false, None, None),
            Err(ReviewError::AlreadyDecided { .. })
        ));
        assert!(matches!(
            q.decide("R9999", true, None, None),
            Err(ReviewError::UnknownId { .. })
        ));
        q.decide(&b, false, Some("ops".into()), None).unwrap();
        let q = ReviewQueue::open(&path).unwrap();
        assert_eq!(q.pending().count(), 0);
        assert_eq!(q.items()[1].status, ReviewStatus::Dropped);
    }
}
