//! Reading a trace back, whole or as a tail that follows a running writer.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use super::*;

/// A trace read back.
#[derive(Debug, Clone)]
pub struct Trace {
    /// The header (of the oldest part read), then every event in order.
    pub events: Vec<TraceEvent>,
    /// The last line was cut short (the run was killed mid-write).
    pub torn_tail: bool,
    /// The files read, oldest first (more than one for a rotated trace).
    pub parts: Vec<PathBuf>,
    /// Older parts of a rotated trace were deleted (`--trace-max`): the
    /// events start later than the run did.
    pub older_dropped: bool,
}

/// Reads a trace, checking its header; a torn final line is skipped and
/// reported, a bad line anywhere else is an error. A trace rotated by
/// `--trace-max` is read part by part, oldest first.
pub fn read_trace(path: &Path) -> Result<Trace, TraceError> {
    let parts = trace_parts(path);
    if parts.is_empty() {
        // Not there: the error names the file asked for.
        File::open(path).map_err(|source| TraceError::Read {
            file: path.into(),
            source,
        })?;
    }
    let mut trace = Trace {
        events: Vec::new(),
        torn_tail: false,
        older_dropped: parts.first().is_some_and(|(k, _)| *k > 0),
        parts: parts.iter().map(|(_, p)| p.clone()).collect(),
    };
    for (i, (_, part)) in parts.iter().enumerate() {
        if i > 0 && i + 1 == parts.len() && std::fs::metadata(part).is_ok_and(|m| m.len() == 0) {
            // Killed just as it started a new part.
            trace.torn_tail = true;
            continue;
        }
        let (events, torn) = read_part(part)?;
        trace.torn_tail |= torn;
        // Later parts repeat the header.
        let skip = usize::from(i > 0);
        trace.events.extend(events.into_iter().skip(skip));
    }
    Ok(trace)
}

/// One file of a trace: its events (header first) and whether its last line
/// is torn.
fn read_part(path: &Path) -> Result<(Vec<TraceEvent>, bool), TraceError> {
    let file = File::open(path).map_err(|source| TraceError::Read {
        file: path.into(),
        source,
    })?;
    read_trace_from(path, BufReader::new(file))
}

/// One trace file's text, already open: its events (header first, checked)
/// and whether its last line is torn; `path` names it in errors.
pub fn read_trace_from(
    path: &Path,
    reader: impl BufRead,
) -> Result<(Vec<TraceEvent>, bool), TraceError> {
    let lines: Vec<String> =
        reader
            .lines()
            .collect::<Result<_, _>>()
            .map_err(|source| TraceError::Read {
                file: path.into(),
                source,
            })?;
    let parse_error = |line: usize, reason: String| TraceError::Parse {
        file: path.into(),
        line,
        reason,
    };
    let mut events = Vec::with_capacity(lines.len());
    let mut torn_tail = false;
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<TraceEvent>(line) {
            Ok(e) => events.push(e),
            Err(_) if i + 1 == lines.len() && i > 0 => torn_tail = true,
            Err(e) => return Err(parse_error(i + 1, e.to_string())),
        }
    }
    match events.first() {
        Some(e) => check_header(path, e)?,
        None => {
            return Err(parse_error(
                1,
                "the first line is not a thermoroute trace header".into(),
            ));
        }
    }
    Ok((events, torn_tail))
}

/// Reads a trace incrementally: what is complete so far, then whatever is
/// appended later (`replay --follow` and the live UI), following a rotated
/// trace from part to part. A malformed or torn line ends the readable
/// prefix and is reported in [`TraceTail::stopped`]; a missing header or an
/// unknown format version is an error.
#[derive(Debug)]
pub struct TraceTail {
    base: PathBuf,
    path: PathBuf,
    file: File,
    part: u32,
    partial: Vec<u8>,
    lines: usize,
    header_read: bool,
    /// Where and why reading stopped, if it did.
    pub stopped: Option<String>,
    /// Set when older parts of a rotated trace were gone before they were
    /// read: what was dropped.
    pub dropped: Option<String>,
}

impl TraceTail {
    pub fn open(path: &Path) -> Result<Self, TraceError> {
        let parts = trace_parts(path);
        let (part, file_path) = parts
            .first()
            .cloned()
            .unwrap_or_else(|| (0, path.to_path_buf()));
        let file = File::open(&file_path).map_err(|source| TraceError::Read {
            file: file_path.clone(),
            source,
        })?;
        Ok(TraceTail {
            base: path.into(),
            path: file_path,
            file,
            part,
            partial: Vec::new(),
            lines: 0,
            header_read: false,
            stopped: None,
            dropped: (part > 0).then(|| dropped_note(path, part)),
        })
    }

    /// The part being read now (0: the first file).
    pub fn part(&self) -> u32 {
        self.part
    }

    /// Complete events appended since the last call (across parts: a later
    /// part's header is checked and not repeated).
    pub fn poll(&mut self) -> Result<Vec<TraceEvent>, TraceError> {
        let mut events = Vec::new();
        loop {
            self.poll_file(&mut events)?;
            if self.stopped.is_some() {
                return Ok(events);
            }
            // The writer finishes a part before it starts the next, so once
            // a later part exists this one is complete.
            let Some((next, path)) = trace_parts(&self.base)
                .into_iter()
                .find(|(k, _)| *k > self.part)
            else {
                return Ok(events);
            };
            self.poll_file(&mut events)?;
            if self.stopped.is_some() {
                return Ok(events);
            }
            if !self.partial.iter().all(u8::is_ascii_whitespace) {
                self.finish();
                return Ok(events);
            }
            let file = match File::open(&path) {
                Ok(f) => f,
                // Deleted between listing and opening: look again.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(TraceError::Read { file: path, source }),
            };
            if next > self.part + 1 {
                self.dropped = Some(dropped_note(&self.base, next));
            }
            self.file = file;
            self.path = path;
            self.part = next;
            self.partial.clear();
            self.lines = 0;
        }
    }

    fn poll_file(&mut self, events: &mut Vec<TraceEvent>) -> Result<(), TraceError> {
        use std::io::Read;
        if self.stopped.is_some() {
            return Ok(());
        }
        let mut chunk = Vec::new();
        self.file
            .read_to_end(&mut chunk)
            .map_err(|source| TraceError::Read {
                file: self.path.clone(),
                source,
            })?;
        self.partial.extend_from_slice(&chunk);
        let mut start = 0;
        while let Some(len) = self.partial[start..].iter().position(|&b| b == b'\n') {
            let line = &self.partial[start..start + len];
            start += len + 1;
            self.lines += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<TraceEvent>(line) {
                Ok(event) => {
                    if self.lines == 1 {
                        check_header(&self.path, &event)?;
                        if self.header_read {
                            // A later part's header repeats the first's.
                            continue;
                        }
                        self.header_read = true;
                    }
                    events.push(event);
                }
                Err(e) if self.lines == 1 => {
                    return Err(TraceError::Parse {
                        file: self.path.clone(),
                        line: 1,
                        reason: format!("not a thermoroute trace header: {e}"),
                    });
                }
                Err(e) => {
                    self.stopped = Some(format!(
                        "{}: stopped at line {}: {e}; showing the {} lines before it",
                        self.path.display(),
                        self.lines,
                        self.lines - 1
                    ));
                    self.partial.clear();
                    return Ok(());
                }
            }
        }
        self.partial.drain(..start);
        Ok(())
    }

    /// Call once the writer is gone: an unfinished last line is reported.
    pub fn finish(&mut self) {
        if self.stopped.is_none() && !self.partial.iter().all(u8::is_ascii_whitespace) {
            self.stopped = Some(format!(
                "{}: line {} is incomplete (the run was cut off); showing the {} lines before it",
                self.path.display(),
                self.lines + 1,
                self.lines
            ));
        }
    }
}

fn dropped_note(base: &Path, first: u32) -> String {
    format!(
        "older events were dropped: {} starts at part {first} ({}); --trace-max keeps the newest {TRACE_PARTS_KEPT} parts",
        base.display(),
        trace_part_path(base, first).display()
    )
}

fn check_header(path: &Path, event: &TraceEvent) -> Result<(), TraceError> {
    match event {
        TraceEvent::Header {
            format, version, ..
        } if format == TRACE_FORMAT && *version == TRACE_VERSION => Ok(()),
        TraceEvent::Header {
            format, version, ..
        } => Err(TraceError::Parse {
            file: path.into(),
            line: 1,
            reason: format!(
                "format {format:?} version {version} (this build reads {TRACE_FORMAT:?} version {TRACE_VERSION})"
            ),
        }),
        _ => Err(TraceError::Parse {
            file: path.into(),
            line: 1,
            reason: "the first line is not a thermoroute trace header".into(),
        }),
    }
}
