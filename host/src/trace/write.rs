//! Writing a trace: whole lines, rotation, and `end` before `start` at
//! equal times.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::*;

/// Appends events to a trace file, whole lines at a time; with a size bound
/// it rotates to `T.1.jsonl`, `T.2.jsonl`, … ([`trace_part_path`]), each
/// starting with the header line, and keeps the newest [`TRACE_PARTS_KEPT`].
///
/// At equal times a task's `end` is written before the `start` of the task
/// that took its place: a `start` (or `resume`) is held until the next event,
/// and an `end` of another task on the same device at the same time goes
/// first. Nothing else is reordered.
pub struct TraceWriter {
    file: File,
    path: PathBuf,
    base: PathBuf,
    buffer: Vec<u8>,
    /// Hand every line to the OS at once (slow runs); otherwise every 64 KiB.
    line_by_line: bool,
    /// Starts waiting for the next event (see above).
    held: Vec<TraceEvent>,
    /// Bytes per part (`None`: one file, unbounded).
    part_bytes: Option<u64>,
    /// Bytes in the current part, written or buffered.
    part_len: u64,
    /// Events in the current part after its header.
    part_events: u64,
    part: u32,
    header: Option<TraceEvent>,
}

const FLUSH_BYTES: usize = 1 << 16;

impl std::fmt::Debug for TraceWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TraceWriter")
            .field("path", &self.path)
            .field("part", &self.part)
            .finish_non_exhaustive()
    }
}

/// The time, device and task of a start or end, for the reordering above.
fn slot_event(e: &TraceEvent) -> Option<(f64, Device, u64, &str)> {
    match e {
        TraceEvent::Start {
            t_ms,
            job,
            node,
            target,
        }
        | TraceEvent::Resume {
            t_ms,
            job,
            node,
            target,
        }
        | TraceEvent::End {
            t_ms,
            job,
            node,
            target,
            ..
        } => Some((*t_ms, target.device(), *job, node)),
        _ => None,
    }
}

impl TraceWriter {
    /// A trace at `path`, unbounded (`max_bytes: None`) or rotated so that
    /// all its parts together stay within `max_bytes`. Parts `T.k.jsonl` left
    /// by an earlier trace at the same path are deleted.
    pub fn create(
        path: &Path,
        line_by_line: bool,
        max_bytes: Option<u64>,
    ) -> Result<Self, TraceError> {
        let write_error = |source| TraceError::Write {
            file: path.into(),
            source,
        };
        for (k, old) in trace_parts(path) {
            if k > 0 {
                std::fs::remove_file(&old).map_err(write_error)?;
            }
        }
        let file = File::create(path).map_err(write_error)?;
        Ok(TraceWriter {
            file,
            path: path.into(),
            base: path.into(),
            buffer: Vec::with_capacity(FLUSH_BYTES * 2),
            line_by_line,
            held: Vec::new(),
            part_bytes: max_bytes.map(|m| (m / u64::from(TRACE_PARTS_KEPT)).max(1)),
            part_len: 0,
            part_events: 0,
            part: 0,
            header: None,
        })
    }

    /// The file being written now.
    pub fn current_path(&self) -> &Path {
        &self.path
    }

    pub fn write(&mut self, event: &TraceEvent) -> Result<(), TraceError> {
        if matches!(event, TraceEvent::Start { .. } | TraceEvent::Resume { .. }) {
            self.held.push(event.clone());
            return Ok(());
        }
        if !self.held.is_empty() {
            let end_first = matches!(event, TraceEvent::End { .. })
                && slot_event(event).is_some_and(|(t, device, job, node)| {
                    self.held.iter().all(|h| {
                        slot_event(h).is_some_and(|(ht, hd, hj, hn)| {
                            ht == t && hd == device && (hj, hn) != (job, node)
                        })
                    })
                });
            if !end_first {
                self.release_held()?;
            }
        }
        self.write_line(event)
    }

    fn release_held(&mut self) -> Result<(), TraceError> {
        for e in std::mem::take(&mut self.held) {
            self.write_line(&e)?;
        }
        Ok(())
    }

    fn write_line(&mut self, event: &TraceEvent) -> Result<(), TraceError> {
        let at = self.buffer.len();
        serde_json::to_writer(&mut self.buffer, event).expect("trace events serialise");
        self.buffer.push(b'\n');
        let len = (self.buffer.len() - at) as u64;
        if let TraceEvent::Header { .. } = event
            && self.header.is_none()
        {
            self.header = Some(event.clone());
        } else if let Some(max) = self.part_bytes
            && self.part_events > 0
            && self.part_len + len > max
        {
            let line = self.buffer.split_off(at);
            self.rotate()?;
            self.buffer.extend_from_slice(&line);
        }
        self.part_len += len;
        if !matches!(event, TraceEvent::Header { .. }) {
            self.part_events += 1;
        }
        if self.line_by_line || self.buffer.len() >= FLUSH_BYTES {
            self.flush_buffer()?;
        }
        Ok(())
    }

    /// Closes the current part and starts the next with the header.
    fn rotate(&mut self) -> Result<(), TraceError> {
        self.flush_buffer()?;
        self.part += 1;
        // The oldest part goes before the new one exists, so a kill at any
        // moment leaves at most TRACE_PARTS_KEPT parts on disk.
        if let Some(old) = self.part.checked_sub(TRACE_PARTS_KEPT) {
            let old = trace_part_path(&self.base, old);
            match std::fs::remove_file(&old) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(TraceError::Write { file: old, source }),
            }
        }
        let path = trace_part_path(&self.base, self.part);
        self.file = File::create(&path).map_err(|source| TraceError::Write {
            file: path.clone(),
            source,
        })?;
        self.path = path;
        self.part_len = 0;
        self.part_events = 0;
        if let Some(TraceEvent::Header { .. }) = &self.header {
            let mut header = self.header.clone().expect("checked");
            if let TraceEvent::Header { part, .. } = &mut header {
                *part = self.part;
            }
            serde_json::to_writer(&mut self.buffer, &header).expect("trace events serialise");
            self.buffer.push(b'\n');
            self.part_len = self.buffer.len() as u64;
            // A new part is never left without its header.
            self.flush_buffer()?;
        }
        Ok(())
    }

    fn flush_buffer(&mut self) -> Result<(), TraceError> {
        if !self.buffer.is_empty() {
            self.file
                .write_all(&self.buffer)
                .map_err(|source| TraceError::Write {
                    file: self.path.clone(),
                    source,
                })?;
            self.buffer.clear();
        }
        Ok(())
    }

    /// Hands everything written so far to the OS (held starts included).
    pub fn flush(&mut self) -> Result<(), TraceError> {
        self.release_held()?;
        self.flush_buffer()
    }
}

impl Drop for TraceWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}
