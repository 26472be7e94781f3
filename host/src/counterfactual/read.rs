//! Reading a trace for replay: the header, then only the events a
//! re-decision needs, chunks of lines parsed in parallel on a reader thread
//! (a trace of a million decisions is gigabytes; nothing else is kept).
//!
//! Route lines, nearly all of a trace, are read into just what replay uses:
//! node ids become indices into the header's node list, violation names
//! bits, and the recorded cost terms (when a cost model is replayed) and
//! reasons (when eligibility is not) are skipped; a listed change reads its
//! line again for the recorded terms. Lines of events replay does not use
//! are told by their `"event"` tag and not parsed at all.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender};

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::ReplayError;
pub(super) use super::route_line::recorded_costs;
pub(super) use super::route_line::{Cand, RouteLine};
use super::route_line::{HostReasons, from_line, route_as};
use crate::hardware::{Hardware, Weights};
use crate::model::graph::Qos;
use crate::policy::{CostTerms, EffectRequest, GateDecision};
use crate::trace::{NodeRecord, TRACE_FORMAT, TRACE_VERSION, TraceError, TraceEvent, trace_parts};

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
struct FaultLine<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
}

/// The events replay reads; everything else is skipped.
#[derive(Debug)]
pub(super) enum Line {
    Arrival {
        job: u64,
        class: usize,
    },
    Route(RouteLine),
    Gate(Box<GateLine>),
    /// New cost weights from an operator's `set_weights`.
    Weights(Weights),
    /// The recorded cost model faulted: the next route used the native one.
    CostFault,
}

/// What of a trace the replayed roles need read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Needs {
    /// The recorded cost terms (no cost model is replayed).
    pub costs: bool,
    /// The recorded reasons of ineligible candidates (eligibility is replayed).
    pub reasons: bool,
    /// Gate decisions (a gate is replayed).
    pub gates: bool,
}

impl Needs {
    /// What replaying `policy` reads.
    pub fn of(policy: &super::Counterfactual) -> Needs {
        Needs {
            costs: policy.cost.is_none(),
            reasons: policy.eligibility.is_some(),
            gates: policy.gate.is_some(),
        }
    }
}

/// Every node id of the header's classes, each once, in order of first
/// appearance: routes name their node by its index here.
pub(super) struct NodeNames<'h> {
    pub names: Vec<&'h str>,
    index: HashMap<&'h str, u32>,
}

impl<'h> NodeNames<'h> {
    pub fn of(header: &'h TraceHeader) -> NodeNames<'h> {
        let mut names = Vec::new();
        let mut index = HashMap::new();
        for n in header.class_nodes.iter().flatten() {
            index.entry(n.id.as_str()).or_insert_with(|| {
                names.push(n.id.as_str());
                (names.len() - 1) as u32
            });
        }
        NodeNames { names, index }
    }

    pub fn get(&self, id: &str) -> Option<u32> {
        if self.names.len() <= 16 {
            // A graph's few nodes: comparing beats hashing.
            self.names.iter().position(|n| *n == id).map(|k| k as u32)
        } else {
            self.index.get(id).copied()
        }
    }
}

/// What parsing a line needs besides the line.
pub(super) struct ParseCtx<'n, 'h> {
    pub needs: Needs,
    pub nodes: &'n NodeNames<'h>,
}

/// Lines from the reader thread, with the text they were read from (routes
/// point into it; the receiver hands it back for the next batch).
#[derive(Debug)]
pub(super) struct Batch {
    pub text: Vec<u8>,
    pub lines: Vec<Line>,
}

/// A batch, or why reading stopped.
pub(super) type Sent = Result<Batch, ReplayError>;

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
/// `span` is where the line is in its batch's text.
fn parse_line(
    line: &[u8],
    span: Range<usize>,
    ctx: &ParseCtx<'_, '_>,
) -> Result<Option<Line>, serde_json::Error> {
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
    let nodes = ctx.nodes;
    Ok(match name {
        b"route" => Some(Line::Route(match (ctx.needs.costs, ctx.needs.reasons) {
            (true, true) => route_as::<CostTerms, HostReasons>(line, |id| nodes.get(id), span)?,
            (true, false) => route_as::<CostTerms, IgnoredAny>(line, |id| nodes.get(id), span)?,
            (false, true) => route_as::<IgnoredAny, HostReasons>(line, |id| nodes.get(id), span)?,
            (false, false) => route_as::<IgnoredAny, IgnoredAny>(line, |id| nodes.get(id), span)?,
        })),
        // Without a replayed gate, gate decisions change nothing.
        b"gate" if ctx.needs.gates => Some(Line::Gate(from_line(line)?)),
        b"arrival" => {
            let a: ArrivalLine = from_line(line)?;
            Some(Line::Arrival {
                job: a.job,
                class: a.class,
            })
        }
        b"control" => {
            let c: ControlLine = from_line(line)?;
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
            let f: FaultLine = from_line(line)?;
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
/// needs in batches, each chunk of lines parsed in parallel; the text of a
/// batch comes back through `spare` to be filled again. A bad line ends the
/// stream with an error naming it, except a torn last line (a killed run),
/// which is skipped; the returned flag says so.
pub(super) fn stream(
    source: &TraceSource,
    needs: Needs,
    out: &SyncSender<Sent>,
    spare: &Receiver<Vec<u8>>,
) -> bool {
    use rayon::prelude::*;
    let nodes = NodeNames::of(&source.header);
    let ctx = ParseCtx {
        needs,
        nodes: &nodes,
    };
    let last = source.parts.len().saturating_sub(1);
    let mut spans: Vec<(usize, usize, usize)> = Vec::with_capacity(CHUNK);
    for (part, path) in source.parts.iter().enumerate() {
        let result = (|| -> Result<Flow, ReplayError> {
            let mut reader = open_part(path)?;
            let mut line = 0usize;
            loop {
                let mut text = spare
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(CHUNK * 1024));
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
                    .with_min_len(64)
                    .map(|&(_, a, b)| parse_line(text[a..b].trim_ascii(), a..b, &ctx))
                    .collect();
                let mut lines = Vec::with_capacity(parsed.len());
                for (k, p) in parsed.into_iter().enumerate() {
                    match p {
                        Ok(Some(l)) => lines.push(l),
                        Ok(None) => {}
                        Err(_) if k + 1 == spans.len() && eof && part == last => {
                            // The run was killed mid-write: keep what came before.
                            let _ = out.send(Ok(Batch { text, lines }));
                            return Ok(Flow::Torn);
                        }
                        Err(e) => return Err(parse_error(path, spans[k].0, e.to_string())),
                    }
                }
                if out.send(Ok(Batch { text, lines })).is_err() {
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
    use crate::device::Target;

    #[test]
    fn tags_are_read_from_the_line_start() {
        assert_eq!(tag(br#"{"event":"route","t_ms":1}"#), Some(&b"route"[..]));
        assert_eq!(tag(br#"{"t_ms":1,"event":"route"}"#), None);
    }

    fn parse(line: &[u8]) -> Result<Option<Line>, serde_json::Error> {
        let header = TraceHeader {
            hardware: Hardware::default(),
            policy: String::new(),
            classes: vec![],
            class_qos: vec![],
            class_nodes: vec![],
        };
        let nodes = NodeNames::of(&header);
        let needs = Needs {
            costs: true,
            reasons: true,
            gates: true,
        };
        parse_line(
            line,
            0..line.len(),
            &ParseCtx {
                needs,
                nodes: &nodes,
            },
        )
    }

    const ROUTE: &[u8] = br#"{"event":"route","t_ms":1.5,"job":7,"node":"b","attempt":1,"chosen":"gpu","candidates":[{"target":"gpu","device":"gpu","eligible":true,"estimate":{"latency_p50_ms":1.0,"latency_p95_ms":2.0,"queue_wait_ms":0.0,"energy_j":0.1,"error":0.0},"cost":{"latency":1.0,"energy":0.5,"error":0.0,"risk":0.0,"risk_penalty":0.0,"total":1.5},"violations":["latency p95","a name from elsewhere","energy"],"queue_has_room":true,"late_ok":true},{"target":"tsu","device":"tsu","eligible":false,"reasons":[{"reason":"offline"}]},{"target":"cpu","device":"cpu","eligible":false,"reasons":[{"reason":"policy_forbids","detail":"no"}]}],"budget":{"deadline_p50_ms":null},"explanation":"gpu: \"cheapest\""}"#;

    fn route_with(needs: Needs) -> RouteLine {
        let nodes = NodeNames {
            names: vec!["a", "b"],
            index: HashMap::new(),
        };
        let ctx = ParseCtx {
            needs,
            nodes: &nodes,
        };
        match parse_line(ROUTE, 3..9, &ctx) {
            Ok(Some(Line::Route(r))) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn routes_are_read_into_what_replay_needs() {
        let all = Needs {
            costs: true,
            reasons: true,
            gates: true,
        };
        let r = route_with(all);
        assert_eq!((r.t_ms, r.job, r.node, r.attempt), (1.5, 7, Some(1), 1));
        assert_eq!((r.chosen, r.span), (Some(Target::Gpu), 3..9));
        let [gpu, tsu, cpu] = &r.candidates[..] else {
            panic!("{:?}", r.candidates)
        };
        // Names this build does not know are left out of the bits.
        assert_eq!(gpu.violations, 0b110);
        assert!(gpu.eligible && gpu.late_ok && gpu.queue_has_room == Some(true));
        assert_eq!(gpu.estimate.map(|e| e.energy_j), Some(0.1));
        assert_eq!(gpu.cost.map(|c| c.total), Some(1.5));
        assert!(!tsu.eligible && tsu.host_reason && tsu.estimate.is_none());
        assert!(!cpu.host_reason, "a policy's reason is not the host's");

        // What the replayed roles do not use is skipped: recorded costs
        // when a cost model is replayed, reasons when eligibility is not.
        let lean = route_with(Needs {
            costs: false,
            reasons: false,
            gates: false,
        });
        assert!(lean.candidates.iter().all(|c| c.cost.is_none()));
        assert!(!lean.candidates[1].host_reason);
        assert_eq!(lean.candidates[0].estimate, gpu.estimate);
        // A listed change reads the recorded costs again from the line.
        let costs = recorded_costs(ROUTE);
        assert_eq!(costs.len(), 3);
        assert_eq!(costs[0], gpu.cost);
        assert_eq!(costs[1], None);

        // A route naming a node no class has reads; replay skips it later.
        let nodes = NodeNames {
            names: vec!["a"],
            index: HashMap::new(),
        };
        let ctx = ParseCtx {
            needs: all,
            nodes: &nodes,
        };
        let Ok(Some(Line::Route(r))) = parse_line(ROUTE, 0..1, &ctx) else {
            panic!()
        };
        assert_eq!(r.node, None);
        // Gate decisions are read only when a gate is replayed.
        let gate =
            br#"{"event":"gate","t_ms":1,"job":1,"node":"n","decision":{"decision":"allow"}}"#;
        assert!(matches!(
            parse_line(gate, 0..1, &ctx),
            Ok(Some(Line::Gate(_)))
        ));
    }

    #[test]
    fn a_route_missing_what_the_full_event_requires_is_an_error() {
        let nodes = NodeNames {
            names: vec![],
            index: HashMap::new(),
        };
        let ctx = ParseCtx {
            needs: Needs {
                costs: false,
                reasons: false,
                gates: false,
            },
            nodes: &nodes,
        };
        let no_device = br#"{"event":"route","t_ms":1,"job":1,"node":"a","attempt":0,"chosen":null,"candidates":[{"target":"cpu","eligible":true}]}"#;
        let e = parse_line(no_device, 0..1, &ctx).unwrap_err();
        assert!(e.to_string().contains("missing field `device`"), "{e}");
        let bad_violation = br#"{"event":"route","t_ms":1,"job":1,"node":"a","attempt":0,"chosen":null,"candidates":[{"target":"cpu","device":"cpu","eligible":true,"violations":[3]}]}"#;
        assert!(parse_line(bad_violation, 0..1, &ctx).is_err());
        let torn = br#"{"event":"route","t_ms":1,"job":1,"node":"a","attempt":0,"chosen":null,"candidates":[]"#;
        assert!(parse_line(torn, 0..1, &ctx).is_err());
        // Not UTF-8: the byte parser says where.
        let e = parse_line(b"{\"event\":\"route\",\"node\":\"\xff\"}", 0..1, &ctx).unwrap_err();
        assert!(e.to_string().contains("column"), "{e}");
    }

    #[test]
    fn events_in_another_field_order_are_still_read() {
        let l = parse(br#"{"job":3,"class":1,"t_ms":0.5,"event":"arrival"}"#).unwrap();
        assert!(matches!(l, Some(Line::Arrival { job: 3, class: 1 })));
        let w = parse(
            br#"{"event":"control","t_ms":1,"command":{"command":"set_weights","weights":{"latency":2.0,"energy":0.0,"error":0.0,"risk":0.0}}}"#,
        )
        .unwrap();
        assert!(matches!(w, Some(Line::Weights(w)) if w.latency == 2.0));
        assert!(parse(br#"{"event":"start","t_ms":1}"#).unwrap().is_none());
        assert!(parse(b"[1,2]").is_err());
    }
}
