//! The review queue: effects a gate held for a human, in an embedded SQLite
//! database (WAL mode, every change one transaction, a busy timeout), so
//! concurrent `run`s and `review` commands never lose, revert or duplicate an
//! item. An item leaves `pending` only by a decision: approved (the effect is
//! applied) or denied (it is dropped).
//!
//! Ids are allocated by the database (`INTEGER PRIMARY KEY AUTOINCREMENT`,
//! never reused) and shown as `R0001`. A file at the queue's path that holds
//! the JSON queue of earlier versions is imported once, in place: the
//! database replaces it atomically and the JSON is kept beside it as
//! `FILE.json.bak`. A file that is neither is refused and left unchanged.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};

use crate::model::graph::Risk;
use crate::policy::Evidence;

/// Default location of the queue, relative to the working directory.
pub const DEFAULT_REVIEW_FILE: &str = ".thermoroute/reviews.db";

/// How long a writer waits for another process's transaction.
const BUSY_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewStatus {
    Pending,
    /// Approved by a reviewer; the effect was applied.
    Applied,
    /// Denied by a reviewer; the effect was dropped.
    Dropped,
}

impl ReviewStatus {
    fn name(self) -> &'static str {
        match self {
            ReviewStatus::Pending => "pending",
            ReviewStatus::Applied => "applied",
            ReviewStatus::Dropped => "dropped",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => ReviewStatus::Pending,
            "applied" => ReviewStatus::Applied,
            "dropped" => ReviewStatus::Dropped,
            _ => return None,
        })
    }
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

/// The JSON form: the file of earlier versions, and `review export`.
#[derive(Debug, Serialize, Deserialize)]
pub struct QueueExport {
    pub format: String,
    pub version: u32,
    pub next_id: u64,
    pub items: Vec<ReviewItem>,
}

const FORMAT: &str = "thermoroute-reviews";
const VERSION: u32 = 1;
/// Schema version of the database (`meta.schema`).
const SCHEMA: u32 = 2;
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";
/// The largest id number kept on import; larger ones (a stale or huge
/// `next_id`) are given fresh ids.
const MAX_IMPORTED_ID: u64 = 999_999_999;

/// Errors of the review queue. All fatal for the command that hit them; the
/// queue is left as it was.
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
    #[error("{file}: review database: {source}")]
    Database {
        file: PathBuf,
        source: rusqlite::Error,
    },
    #[error("no review item {id:?} in {file}")]
    UnknownId { file: PathBuf, id: String },
    #[error("review item {id:?} was already decided ({status:?})")]
    AlreadyDecided { id: String, status: ReviewStatus },
}

/// What opening found at the path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// A database (or a new, empty one).
    Database,
    /// A JSON queue of an earlier version, imported now.
    Imported {
        /// Items carried over.
        items: usize,
        /// Where the JSON file was kept.
        backup: PathBuf,
        /// Items whose ids clashed or were out of range, with their new ids.
        renamed: Vec<(String, String)>,
    },
}

/// The queue: one connection to the database at `path` (made on the first
/// write when there is no file yet, so reading creates nothing).
#[derive(Debug)]
pub struct ReviewQueue {
    path: PathBuf,
    conn: Option<Connection>,
    opened: Opened,
}

enum Content {
    Missing,
    Sqlite,
    Json,
    Other,
}

fn sniff(path: &Path) -> Result<Content, ReviewError> {
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Content::Missing),
        Err(source) => {
            return Err(ReviewError::Read {
                file: path.into(),
                source,
            });
        }
    };
    let mut head = Vec::with_capacity(64);
    f.by_ref()
        .take(64)
        .read_to_end(&mut head)
        .map_err(|source| ReviewError::Read {
            file: path.into(),
            source,
        })?;
    if head.is_empty() {
        // SQLite takes an empty file as an empty database.
        return Ok(Content::Missing);
    }
    if head.starts_with(SQLITE_MAGIC) {
        return Ok(Content::Sqlite);
    }
    let first = head.iter().find(|b| !b.is_ascii_whitespace());
    Ok(match first {
        Some(b'{') => Content::Json,
        _ => Content::Other,
    })
}

impl ReviewQueue {
    /// Opens the queue at `path`, creating an empty database if there is no
    /// file yet, importing a JSON queue of an earlier version once.
    pub fn open(path: &Path) -> Result<Self, ReviewError> {
        match sniff(path)? {
            Content::Missing => {
                return Ok(ReviewQueue {
                    path: path.into(),
                    conn: None,
                    opened: Opened::Database,
                });
            }
            Content::Sqlite => {}
            Content::Json => return Self::import_json(path),
            Content::Other => {
                return Err(ReviewError::Parse {
                    file: path.into(),
                    reason: "neither a SQLite review database nor a JSON review queue".into(),
                });
            }
        }
        let conn = connect(path)?;
        Ok(ReviewQueue {
            path: path.into(),
            conn: Some(conn),
            opened: Opened::Database,
        })
    }

    /// What opening found (a database, or a JSON queue imported now).
    pub fn opened(&self) -> &Opened {
        &self.opened
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, made now if there was no file yet.
    fn writer(&mut self) -> Result<&mut Connection, ReviewError> {
        if self.conn.is_none() {
            self.conn = Some(connect(&self.path)?);
        }
        Ok(self.conn.as_mut().expect("connected"))
    }

    fn db_err(&self, source: rusqlite::Error) -> ReviewError {
        ReviewError::Database {
            file: self.path.clone(),
            source,
        }
    }

    /// Every item, oldest first.
    pub fn items(&self) -> Result<Vec<ReviewItem>, ReviewError> {
        self.query(false)
    }

    /// The items still waiting for a decision, oldest first.
    pub fn pending(&self) -> Result<Vec<ReviewItem>, ReviewError> {
        self.query(true)
    }

    fn query(&self, pending_only: bool) -> Result<Vec<ReviewItem>, ReviewError> {
        let sql = if pending_only {
            "SELECT id, graph, job, node, action, risk, reasons, evidence, status, decided_by, note \
             FROM items WHERE status = 'pending' ORDER BY seq"
        } else {
            "SELECT id, graph, job, node, action, risk, reasons, evidence, status, decided_by, note \
             FROM items ORDER BY seq"
        };
        let Some(conn) = &self.conn else {
            return Ok(Vec::new());
        };
        let mut stmt = conn.prepare(sql).map_err(|e| self.db_err(e))?;
        let rows = stmt
            .query_map([], row_item)
            .map_err(|e| self.db_err(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.db_err(e))?;
        rows.into_iter()
            .map(|r| {
                r.map_err(|reason| ReviewError::Parse {
                    file: self.path.clone(),
                    reason,
                })
            })
            .collect()
    }

    /// One item by id.
    pub fn get(&self, id: &str) -> Result<ReviewItem, ReviewError> {
        match &self.conn {
            Some(conn) => get_item(conn, &self.path, id),
            None => Err(ReviewError::UnknownId {
                file: self.path.clone(),
                id: id.into(),
            }),
        }
    }

    /// Holds an effect; returns its id, allocated by the database. Committed
    /// before returning.
    pub fn hold(&mut self, item: ReviewItem) -> Result<String, ReviewError> {
        let path = self.path.clone();
        let err = |source| ReviewError::Database {
            file: path.clone(),
            source,
        };
        let tx = self
            .writer()?
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let id = insert_item(&tx, &item, None, ReviewStatus::Pending).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(id)
    }

    /// Approves (applies) or denies (drops) a pending item, in one
    /// transaction: of two concurrent decisions exactly one wins.
    pub fn decide(
        &mut self,
        id: &str,
        approve: bool,
        by: Option<String>,
        note: Option<String>,
    ) -> Result<ReviewItem, ReviewError> {
        let path = self.path.clone();
        if self.conn.is_none() {
            return Err(ReviewError::UnknownId {
                file: path,
                id: id.into(),
            });
        }
        let err = |source| ReviewError::Database {
            file: path.clone(),
            source,
        };
        let tx = self
            .writer()?
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let item = get_item(&tx, &path, id)?;
        if item.status != ReviewStatus::Pending {
            return Err(ReviewError::AlreadyDecided {
                id: id.into(),
                status: item.status,
            });
        }
        let status = if approve {
            ReviewStatus::Applied
        } else {
            ReviewStatus::Dropped
        };
        tx.execute(
            "UPDATE items SET status = ?1, decided_by = ?2, note = ?3 \
             WHERE id = ?4 AND status = 'pending'",
            params![status.name(), by, note, id],
        )
        .map_err(err)?;
        let item = get_item(&tx, &path, id)?;
        tx.commit().map_err(err)?;
        Ok(item)
    }

    /// The whole queue in the JSON form of earlier versions (`review export`).
    pub fn export(&self) -> Result<QueueExport, ReviewError> {
        let items = self.items()?;
        let Some(conn) = &self.conn else {
            return Ok(QueueExport {
                format: FORMAT.into(),
                version: VERSION,
                next_id: 1,
                items,
            });
        };
        let next_id: u64 = conn
            .query_row(
                "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'items'), 0)",
                [],
                |r| r.get::<_, i64>(0),
            )
            .map_err(|e| self.db_err(e))? as u64
            + 1;
        Ok(QueueExport {
            format: FORMAT.into(),
            version: VERSION,
            next_id,
            items,
        })
    }

    /// Imports the JSON queue at `path` into a database that replaces it;
    /// the JSON is kept as `path.json.bak`. Serialised by a lock file, and
    /// checked again under the lock, so concurrent openers import once.
    fn import_json(path: &Path) -> Result<Self, ReviewError> {
        let lock_path = sibling(path, ".import-lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| ReviewError::Write {
                file: lock_path.clone(),
                source,
            })?;
        lock.lock().map_err(|source| ReviewError::Write {
            file: lock_path.clone(),
            source,
        })?;
        let result = Self::import_locked(path);
        let _ = std::fs::remove_file(&lock_path);
        drop(lock);
        result
    }

    fn import_locked(path: &Path) -> Result<Self, ReviewError> {
        if !matches!(sniff(path)?, Content::Json) {
            // Another process imported it while we waited for the lock.
            return Self::open(path);
        }
        let text = std::fs::read_to_string(path).map_err(|source| ReviewError::Read {
            file: path.into(),
            source,
        })?;
        let file: QueueExport = serde_json::from_str(&text).map_err(|e| ReviewError::Parse {
            file: path.into(),
            reason: e.to_string(),
        })?;
        if file.format != FORMAT || file.version != VERSION {
            return Err(ReviewError::Parse {
                file: path.into(),
                reason: format!("format {:?} version {}", file.format, file.version),
            });
        }
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = tempfile::Builder::new()
            .prefix(".reviews-import-")
            .tempfile_in(dir)
            .map_err(|source| ReviewError::Write {
                file: dir.into(),
                source,
            })?
            .into_temp_path();
        let err = |source| ReviewError::Database {
            file: path.into(),
            source,
        };
        let renamed = {
            let mut conn = connect(&tmp)?;
            let tx = conn.transaction().map_err(err)?;
            // Keep every id that is unique and in range (its number is its
            // row's sequence number); then give the others fresh ids, above
            // all kept ones.
            let mut seen = std::collections::HashSet::new();
            let keep: Vec<Option<u64>> = file
                .items
                .iter()
                .map(|i| id_number(&i.id).filter(|n| seen.insert(*n)))
                .collect();
            for (item, n) in file.items.iter().zip(&keep) {
                if let Some(n) = n {
                    insert_item(&tx, item, Some((*n as i64, &item.id)), item.status)
                        .map_err(err)?;
                }
            }
            let mut renamed = Vec::new();
            for (item, n) in file.items.iter().zip(&keep) {
                if n.is_none() {
                    let id = insert_item(&tx, item, None, item.status).map_err(err)?;
                    renamed.push((item.id.clone(), id));
                }
            }
            tx.commit().map_err(err)?;
            conn.close().map_err(|(_, e)| err(e))?;
            renamed
        };
        let backup = backup_path(path);
        std::fs::copy(path, &backup).map_err(|source| ReviewError::Write {
            file: backup.clone(),
            source,
        })?;
        tmp.persist(path).map_err(|e| ReviewError::Write {
            file: path.into(),
            source: e.error,
        })?;
        let conn = connect(path)?;
        tracing::warn!(
            "{}: imported {} review item(s) from the JSON queue into a SQLite database{}; \
             the JSON file is kept as {}",
            path.display(),
            file.items.len(),
            if renamed.is_empty() {
                String::new()
            } else {
                format!(
                    " ({} clashing or out-of-range id(s) renamed: {})",
                    renamed.len(),
                    renamed
                        .iter()
                        .map(|(a, b)| format!("{a} -> {b}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            },
            backup.display()
        );
        Ok(ReviewQueue {
            path: path.into(),
            conn: Some(conn),
            opened: Opened::Imported {
                items: file.items.len(),
                backup,
                renamed,
            },
        })
    }
}

/// `R0042` → 42 (in range), anything else → none.
fn id_number(id: &str) -> Option<u64> {
    let digits = id.strip_prefix('R')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits
        .parse::<u64>()
        .ok()
        .filter(|n| (1..=MAX_IMPORTED_ID).contains(n))
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// `FILE.json.bak` (`FILE.bak` when FILE ends in `.json`), or with `.N`
/// added if that is taken.
fn backup_path(path: &Path) -> PathBuf {
    let json = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"));
    let first = sibling(path, if json { ".bak" } else { ".json.bak" });
    if !first.exists() {
        return first;
    }
    (1..)
        .map(|n| sibling(&first, &format!(".{n}")))
        .find(|p| !p.exists())
        .expect("some free name")
}

/// Opens (or creates) the database at `path` in WAL mode, with the schema.
/// A file that is not a review database fails and is not written.
fn connect(path: &Path) -> Result<Connection, ReviewError> {
    let err = |source| ReviewError::Database {
        file: path.into(),
        source,
    };
    let parse = |reason: String| ReviewError::Parse {
        file: path.into(),
        reason,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| ReviewError::Write {
            file: path.into(),
            source,
        })?;
    }
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(err)?;
    // Read first: a corrupt or foreign file fails here, before any write.
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut s| {
            s.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(|e| parse(format!("unreadable database: {e}")))?;
    let ours = tables.iter().any(|t| t == "review_meta");
    if !tables.is_empty() && !ours {
        return Err(parse(format!(
            "a SQLite database without a review queue (tables: {})",
            tables.join(", ")
        )));
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        // Switching needs a moment alone with the file; the busy handler is
        // not always consulted for it, so retry a little.
        let mut tries = 0;
        loop {
            match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
                Ok(_) => break,
                Err(e) if tries < 200 && is_busy(&e) => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(25));
                }
                Err(e) => return Err(err(e)),
            }
        }
    }
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         CREATE TABLE IF NOT EXISTS review_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
         INSERT OR IGNORE INTO review_meta (key, value) VALUES ('format', 'thermoroute-reviews');
         INSERT OR IGNORE INTO review_meta (key, value) VALUES ('schema', '2');
         CREATE TABLE IF NOT EXISTS items (
             seq INTEGER PRIMARY KEY AUTOINCREMENT,
             id TEXT UNIQUE,
             graph TEXT NOT NULL,
             job INTEGER NOT NULL,
             node TEXT NOT NULL,
             action TEXT NOT NULL,
             risk TEXT NOT NULL,
             reasons TEXT NOT NULL,
             evidence TEXT NOT NULL,
             status TEXT NOT NULL,
             decided_by TEXT,
             note TEXT
         );
         COMMIT;",
    )
    .map_err(err)?;
    let schema: Option<String> = conn
        .query_row(
            "SELECT value FROM review_meta WHERE key = 'schema'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(err)?;
    if schema.as_deref() != Some(&SCHEMA.to_string()) {
        return Err(parse(format!(
            "schema {schema:?}, this build reads schema {SCHEMA}"
        )));
    }
    Ok(conn)
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// Inserts an item with its sequence number and id (kept from an import)
/// or fresh ones (`R` and the row's sequence number); returns the id.
fn insert_item(
    conn: &Connection,
    item: &ReviewItem,
    kept: Option<(i64, &str)>,
    status: ReviewStatus,
) -> rusqlite::Result<String> {
    conn.execute(
        "INSERT INTO items (seq, id, graph, job, node, action, risk, reasons, evidence, status, \
         decided_by, note) VALUES (?12, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            kept.map(|k| k.1),
            item.graph,
            item.job as i64,
            item.node,
            item.action,
            json(&item.risk),
            json(&item.reasons),
            json(&item.evidence),
            status.name(),
            item.decided_by,
            item.note,
            kept.map(|k| k.0),
        ],
    )?;
    let seq = conn.last_insert_rowid();
    match kept {
        Some((_, id)) => Ok(id.to_string()),
        None => {
            let id = format!("R{seq:04}");
            conn.execute("UPDATE items SET id = ?1 WHERE seq = ?2", params![id, seq])?;
            Ok(id)
        }
    }
}

/// JSON text of a serialisable value (the columns that hold structure).
fn json<T: Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("review fields serialise")
}

fn get_item(conn: &Connection, path: &Path, id: &str) -> Result<ReviewItem, ReviewError> {
    let row = conn
        .query_row(
            "SELECT id, graph, job, node, action, risk, reasons, evidence, status, decided_by, \
             note FROM items WHERE id = ?1",
            params![id],
            row_item,
        )
        .optional()
        .map_err(|source| ReviewError::Database {
            file: path.into(),
            source,
        })?;
    match row {
        None => Err(ReviewError::UnknownId {
            file: path.into(),
            id: id.into(),
        }),
        Some(r) => r.map_err(|reason| ReviewError::Parse {
            file: path.into(),
            reason,
        }),
    }
}

/// One row as an item; a column that does not parse is a `Parse` error.
fn row_item(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<ReviewItem, String>> {
    let id: String = r.get(0)?;
    let risk: String = r.get(5)?;
    let reasons: String = r.get(6)?;
    let evidence: String = r.get(7)?;
    let status: String = r.get(8)?;
    let field = |name: &str, e: serde_json::Error| format!("item {id}: {name}: {e}");
    Ok((|| {
        Ok(ReviewItem {
            graph: r.get(1).map_err(|e| e.to_string())?,
            job: r.get::<_, i64>(2).map_err(|e| e.to_string())? as u64,
            node: r.get(3).map_err(|e| e.to_string())?,
            action: r.get(4).map_err(|e| e.to_string())?,
            risk: serde_json::from_str(&risk).map_err(|e| field("risk", e))?,
            reasons: serde_json::from_str(&reasons).map_err(|e| field("reasons", e))?,
            evidence: serde_json::from_str(&evidence).map_err(|e| field("evidence", e))?,
            status: ReviewStatus::parse(&status)
                .ok_or_else(|| format!("item {id}: status {status:?}"))?,
            decided_by: r.get(9).map_err(|e| e.to_string())?,
            note: r.get(10).map_err(|e| e.to_string())?,
            id: id.clone(),
        })
    })())
}

#[cfg(test)]
mod tests;
