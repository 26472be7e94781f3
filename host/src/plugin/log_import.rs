//! The host side of the 0.2 `log` import: a guest's deliberate log lines
//! go to its store's bounded guest log.

use wasmtime::component::{HasData, Linker};

use super::bindings::v0_2::log;
use super::guest_log::LogSource;
use super::sandbox::Sandbox;

/// The `log` import of `thermoroute:policy@0.2.0`, as a view of the store.
struct LogView<'a>(&'a mut Sandbox);

struct LogData;

impl HasData for LogData {
    type Data<'a> = LogView<'a>;
}

impl log::Host for LogView<'_> {
    fn log(&mut self, level: log::Level, message: String) {
        let source = match level {
            log::Level::Debug => LogSource::Debug,
            log::Level::Info => LogSource::Info,
            log::Level::Warn => LogSource::Warn,
            log::Level::Error => LogSource::Error,
        };
        self.0.log_line(source, &message);
    }
}

/// Provides the 0.2 `log` import to every component. Shadowing is allowed,
/// so a linker that already provides it keeps working.
pub(super) fn link_log(linker: &mut Linker<Sandbox>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let linked = log::add_to_linker::<Sandbox, LogData>(linker, |s| LogView(s));
    linker.allow_shadowing(false);
    linked
}
