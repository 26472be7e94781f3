//! Workload graph JSON: parsing, validation (ids, inputs, cycles, payloads,
//! QoS) and the topological order of a valid graph.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use thermoroute_fuzz::model::Graph;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(g) = Graph::from_json(Path::new("fuzz.json"), text) {
        let order = g.topological_order();
        assert_eq!(order.len(), g.nodes.len(), "a valid graph is acyclic");
    }
});
