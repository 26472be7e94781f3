//! Reading a trace for replay: the header, then only the events a
//! re-decision needs, parsed line by line on a reader thread (a trace of a
//! million decisions is gigabytes; nothing else is kept).

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::mpsc::SyncSender;

use serde::Deserialize;

use super::ReplayError;
use crate::device::Target;
use crate::hardware::{Hardware, Weights};
use crate::model::graph::Qos;
use crate::policy::{EffectRequest, GateDecision};
use crate::trace::{
    CandidateRecord, NodeRecord, TRACE_FORMAT, TRACE_VERSION, TraceError, TraceEvent, trace_parts,
};

/// What the header of a trace says, for replay.
#[derive(Debug, Clone)]
pub struct TraceHeader {
    /// The hardware (policy knobs, gate thresholds, weights) of the run.
    pub hardware: Hardware,
    /// The policy that made the recorded decisions.
    pub policy: String,
    /// Job class names.
    pub classes: Vec<String>,
    /// Each class's QoS.
    pub class_qos: Vec<Qos>,
    /// Each class's nodes as policies see them.
    pub class_nodes: Vec<Vec<NodeRecord>>,
}

/// A recorded routing decision.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct RouteLine {
    pub t_ms: f64,
    pub job: u64,
    pub node: String,
    pub attempt: u32,
    pub chosen: Option<Target>,
    pub candidates: Vec<CandidateRecord>,
}

/// A recorded gate decision.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct GateLine {
    pub t_ms: f64,
    pub job: u64,
    pub node: String,
    pub decision: GateDecision,
    #[serde(default)]
    pub request: Option<Box<EffectRequest>>,
}

#[derive(Deserialize)]
struct ArrivalLine {
    job: u64,
    class: usize,
}

#[derive(Deserialize)]
struct ControlLine {
    command: serde_json::Value,
}

#[derive(Deserialize)]
struct FaultLine {
    role: String,
}

/// The events replay reads; everything else is skipped.
#[derive(Debug)]
pub(super) enum Line {
    Arrival {
        job: u64,
        class: usize,
    },
    Route(Box<RouteLine>),
    Gate(Box<GateLine>),
    /// New cost weights from an operator's `set_weights`.
    Weights(Weights),
    /// The recorded cost model faulted: the next route used the native one.
    CostFault,
}

/// A batch of lines from the reader thread, or why it stopped.
pub(super) type Batch = Result<Vec<Line>, ReplayError>;

/// An opened trace: its parts and header; events are read by [`stream`].
#[derive(Debug, Clone)]
pub struct TraceSource {
    /// The trace asked for.
    pub path: PathBuf,
    /// Its files, oldest first.
    pub parts: Vec<PathBuf>,
    /// The header of the oldest part.
    pub header: TraceHeader,
    /// Older parts of a rotated trace were deleted.
    pub older_dropped: bool,
}

impl TraceSource {
    /// Opens the trace at `path` (every part of a rotated one) and reads
    /// its header. A trace written before headers recorded node summaries
    /// is refused: its routes cannot be re-decided.
    pub fn open(path: &Path) -> Result<TraceSource, ReplayError> {
        let parts = trace_parts(path);
        let Some((first_k, first)) = parts.first().cloned() else {
            File::open(path).map_err(|source| TraceError::Read {
                file: path.into(),
                source,
            })?;
            // A directory, or a file that vanished: name it anyway.
            return Err(TraceError::Read {
                file: path.into(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a trace file"),
            }
            .into());
        };
        let mut reader = open_part(&first)?;
        let mut text = String::new();
        reader
            .read_line(&mut text)
            .map_err(|source| TraceError::Read {
                file: first.clone(),
                source,
            })?;
        let header = header_of(&first, text.trim_end())?;
        if header.class_nodes.is_empty() || header.class_nodes.len() != header.classes.len() {
            return Err(ReplayError::NoNodeSummaries { file: first });
        }
        Ok(TraceSource {
            path: path.into(),
            parts: parts.into_iter().map(|(_, p)| p).collect(),
            header,
            older_dropped: first_k > 0,
        })
    }
}

fn open_part(path: &Path) -> Result<BufReader<File>, ReplayError> {
    let file = File::open(path).map_err(|source| TraceError::Read {
        file: path.into(),
        source,
    })?;
    Ok(BufReader::with_capacity(1 << 20, file))
}

fn parse_error(file: &Path, line: usize, reason: String) -> ReplayError {
    TraceError::Parse {
        file: file.into(),
        line,
        reason,
    }
    .into()
}

fn header_of(file: &Path, text: &str) -> Result<TraceHeader, ReplayError> {
    let not_header = |e: String| {
        parse_error(
            file,
            1,
            format!("the first line is not a thermoroute trace header{e}"),
        )
    };
    match serde_json::from_str::<TraceEvent>(text) {
        Ok(TraceEvent::Header {
            format,
            version,
            policy,
            classes,
            hardware,
            class_qos,
            class_nodes,
            ..
        }) => {
            if format != TRACE_FORMAT || version != TRACE_VERSION {
                return Err(parse_error(
                    file,
                    1,
                    format!(
                        "format {format:?} version {version} (this build reads {TRACE_FORMAT:?} version {TRACE_VERSION})"
                    ),
                ));
            }
            Ok(TraceHeader {
                hardware: *hardware,
                policy,
                classes,
                class_qos,
                class_nodes,
            })
        }
        Ok(_) => Err(not_header(String::new())),
        Err(e) if text.is_empty() => Err(not_header(format!(" (the file is empty: {e})"))),
        Err(e) => Err(not_header(format!(": {e}"))),
    }
}

/// The event name of a line as thermoroute writes it (`{"event":"route",…`).
fn tag(line: &[u8]) -> Option<&[u8]> {
    let rest = line.strip_prefix(b"{\"event\":\"")?;
    let end = rest.iter().position(|&b| b == b'"')?;
    Some(&rest[..end])
}

/// Parses one line into what replay needs (`None`: an event it skips).
fn parse_line(line: &[u8]) -> Result<Option<Line>, serde_json::Error> {
    let owned;
    let name: &[u8] = match tag(line) {
        Some(t) => t,
        None => {
            // Written by hand or another tool: find the tag the slow way.
            let v: serde_json::Value = serde_json::from_slice(line)?;
            owned = v
                .get("event")
                .and_then(|e| e.as_str())
                .unwrap_or_default()
                .to_string();
            owned.as_bytes()
        }
    };
    Ok(match name {
        b"route" => Some(Line::Route(serde_json::from_slice(line)?)),
        b"gate" => Some(Line::Gate(serde_json::from_slice(line)?)),
        b"arrival" => {
            let a: ArrivalLine = serde_json::from_slice(line)?;
            Some(Line::Arrival {
                job: a.job,
                class: a.class,
            })
        }
        b"control" => {
            let c: ControlLine = serde_json::from_slice(line)?;
            match c.command.get("command").and_then(|n| n.as_str()) {
                Some("set_weights") => c
                    .command
                    .get("weights")
                    .and_then(|w| serde_json::from_value(w.clone()).ok())
                    .map(Line::Weights),
                _ => None,
            }
        }
        b"policy_fault" => {
            let f: FaultLine = serde_json::from_slice(line)?;
            (f.role == "cost").then_some(Line::CostFault)
        }
        b"" => {
            // Not an event at all: let the full parser say why.
            serde_json::from_slice::<TraceEvent>(line)?;
            None
        }
        _ => None,
    })
}

/// Lines parsed together (in parallel) and sent as one batch.
const CHUNK: usize = 4096;

/// Reads every part of `source` after its header and sends what replay
/// needs in batches, each chunk of lines parsed in parallel. A bad line
/// ends the stream with an error naming it, except a torn last line (a
/// killed run), which is skipped; the returned flag says so.
pub(super) fn stream(source: &TraceSource, out: &SyncSender<Batch>) -> bool {
    use rayon::prelude::*;
    let last = source.parts.len().saturating_sub(1);
    for (part, path) in source.parts.iter().enumerate() {
        let result = (|| -> Result<Flow, ReplayError> {
            let mut reader = open_part(path)?;
            let mut line = 0usize;
            let mut text = Vec::with_capacity(CHUNK * 1024);
            let mut spans: Vec<(usize, usize, usize)> = Vec::with_capacity(CHUNK);
            loop {
                text.clear();
                spans.clear();
                let mut eof = false;
                while spans.len() < CHUNK {
                    let start = text.len();
                    let n =
                        reader
                            .read_until(b'\n', &mut text)
                            .map_err(|source| TraceError::Read {
                                file: path.clone(),
                                source,
                            })?;
                    if n == 0 {
                        eof = true;
                        break;
                    }
                    line += 1;
                    if line == 1 {
                        let header = String::from_utf8_lossy(text[start..].trim_ascii());
                        header_of(path, &header)?;
                        text.truncate(start);
                    } else if text[start..].trim_ascii().is_empty() {
                        text.truncate(start);
                    } else {
                        spans.push((line, start, text.len()));
                    }
                }
                let parsed: Vec<Result<Option<Line>, serde_json::Error>> = spans
                    .par_iter()
                    .map(|&(_, a, b)| parse_line(text[a..b].trim_ascii()))
                    .collect();
                let mut batch = Vec::with_capacity(parsed.len());
                for (k, p) in parsed.into_iter().enumerate() {
                    match p {
                        Ok(Some(l)) => batch.push(l),
                        Ok(None) => {}
                        Err(_) if k + 1 == spans.len() && eof && part == last => {
                            // The run was killed mid-write: keep what came before.
                            let _ = out.send(Ok(batch));
                            return Ok(Flow::Torn);
                        }
                        Err(e) => return Err(parse_error(path, spans[k].0, e.to_string())),
                    }
                }
                if out.send(Ok(batch)).is_err() {
                    return Ok(Flow::Stop);
                }
                if eof {
                    return Ok(Flow::Next);
                }
            }
        })();
        match result {
            Ok(Flow::Next) => {}
            Ok(Flow::Torn) => return true,
            Ok(Flow::Stop) => return false,
            Err(e) => {
                let _ = out.send(Err(e));
                return false;
            }
        }
    }
    false
}

/// How reading one part ended.
enum Flow {
    /// At its end: on to the next part.
    Next,
    /// At a torn last line.
    Torn,
    /// The receiver is gone.
    Stop,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_read_from_the_line_start() {
        assert_eq!(tag(br#"{"event":"route","t_ms":1}"#), Some(&b"route"[..]));
        assert_eq!(tag(br#"{"t_ms":1,"event":"route"}"#), None);
    }

    #[test]
    fn events_in_another_field_order_are_still_read() {
        let l = parse_line(br#"{"job":3,"class":1,"t_ms":0.5,"event":"arrival"}"#).unwrap();
        assert!(matches!(l, Some(Line::Arrival { job: 3, class: 1 })));
        let w = parse_line(
            br#"{"event":"control","t_ms":1,"command":{"command":"set_weights","weights":{"latency":2.0,"energy":0.0,"error":0.0,"risk":0.0}}}"#,
        )
        .unwrap();
        assert!(matches!(w, Some(Line::Weights(w)) if w.latency == 2.0));
        assert!(
            parse_line(br#"{"event":"start","t_ms":1}"#)
                .unwrap()
                .is_none()
        );
        assert!(parse_line(b"[1,2]").is_err());
    }
}
