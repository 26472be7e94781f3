//! The what-if experiment TOML: parsing, counts against their limits, and
//! the variant edits `whatif` makes before any run (hardware TOML by dotted
//! path, then its checks; graph QoS by dotted path, then graph validation).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use thermoroute_fuzz::hardware::Hardware;
use thermoroute_fuzz::model::Graph;
use thermoroute_fuzz::whatif_file::{
    Experiment, check_counts, graph_with_qos, hardware_text, with_default,
};

const BASE_HARDWARE: &str = include_str!("../../examples/hardware/mm3.toml");
const GRAPH: &str = include_str!("../../examples/graphs/mm3-batch.json");

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(e) = toml::from_str::<Experiment>(text) else {
        return;
    };
    if check_counts(&e).is_err() {
        return;
    }
    let base: toml::Table = toml::from_str(BASE_HARDWARE).expect("example hardware");
    let graph: serde_json::Value = serde_json::from_str(GRAPH).expect("example graph");
    let hv = with_default(&e.hardware_variant, "hw");
    let pv = with_default(&e.policy_variant, "native");
    for h in hv.iter().take(8) {
        for p in pv.iter().take(8) {
            if let Ok(text) = hardware_text(&base, &[h, p]) {
                let _ = Hardware::from_toml(Path::new("variant.toml"), &text);
            }
        }
    }
    for q in with_default(&e.qos_variant, "qos").iter().take(8) {
        let g = graph_with_qos(&graph, q);
        let _ = Graph::from_json(Path::new("variant.json"), &g.to_string());
    }
});
