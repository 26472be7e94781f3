//! The run profile (`--hardware` TOML): parsing and its checks, then the
//! queries the engine makes of a valid profile.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use thermoroute_fuzz::device::Device;
use thermoroute_fuzz::hardware::Hardware;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(hw) = Hardware::from_toml(Path::new("fuzz.toml"), text) {
        let edges = hw.availability_edges();
        for d in Device::ALL {
            for &t in edges.iter().take(64).chain([0.0, 1e3].iter()) {
                let _ = hw.slowdown(d, t);
                let _ = hw.offline(d, t);
                let _ = hw.injected_error(d, t);
            }
        }
    }
});
