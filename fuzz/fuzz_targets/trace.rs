//! The JSON Lines trace reader (`replay`, `explain`, `export`): headers,
//! every event kind, torn tails, from memory (no file per input). The
//! incremental reader (`replay --follow`) deserialises lines into the same
//! `TraceEvent`; `tests/tests/suite/fuzz_regressions.rs` replays the corpus
//! through both readers.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use thermoroute_fuzz::trace::read_trace_from;

fuzz_target!(|data: &[u8]| {
    let _ = read_trace_from(Path::new("fuzz.jsonl"), data);
});
