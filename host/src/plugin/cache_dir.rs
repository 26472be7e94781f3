//! Where thermoroute keeps what it derives from plugins: compiled components
//! and, beside them, the guest toolchains it installs.

use std::path::PathBuf;

/// Where compiled components are cached: `$THERMOROUTE_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/thermoroute`, else `~/.cache/thermoroute`; `components/`
/// below it.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = if let Some(d) = std::env::var_os("THERMOROUTE_CACHE_DIR") {
        PathBuf::from(d)
    } else if let Some(d) = std::env::var_os("XDG_CACHE_HOME") {
        PathBuf::from(d).join("thermoroute")
    } else {
        PathBuf::from(std::env::var_os("HOME")?).join(".cache/thermoroute")
    };
    Some(base.join("components"))
}
