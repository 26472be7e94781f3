//! EProgram JSON: parsing and every validation rule (`validate` on a program).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use thermoroute_fuzz::model::EProgram;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(p) = EProgram::from_json(Path::new("fuzz.json"), text) {
        // A valid program answers its queries without panicking.
        let _ = p.canonical_hash();
        let _ = p.clamped_states();
        for v in 0..p.n_vars().min(4096) {
            let _ = p.var_kind(v).states();
        }
    }
});
