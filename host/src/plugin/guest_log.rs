//! What a guest printed (stdout, stderr) or logged (the WIT 0.2 `log`
//! import) during its calls, kept per store in a bounded window.
//!
//! A window is the span between two [`GuestLog::take`]s, normally one call.
//! Past [`MAX_WINDOW_BYTES`], [`MAX_WINDOW_LINES`] or [`MAX_LOG_CALLS`] the
//! excess is dropped and counted, so a guest that floods its output slows
//! nothing and fills no memory.

// Wired to stdout/stderr and the fault records by issue 15 work in progress.
#![allow(dead_code)]

use serde::{Deserialize, Serialize};

/// Bytes of text kept per window.
pub const MAX_WINDOW_BYTES: usize = 64 * 1024;
/// Lines kept per window.
pub const MAX_WINDOW_LINES: usize = 1024;
/// `log` calls honoured per window (the import's rate limit).
pub const MAX_LOG_CALLS: usize = 256;

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogSource {
    /// The guest's standard output.
    Stdout,
    /// The guest's standard error (Python tracebacks land here).
    Stderr,
    /// `log(debug, ..)`.
    Debug,
    /// `log(info, ..)`.
    Info,
    /// `log(warn, ..)`.
    Warn,
    /// `log(error, ..)`.
    Error,
}

impl LogSource {
    /// A short tag for human output.
    pub fn tag(self) -> &'static str {
        match self {
            LogSource::Stdout => "stdout",
            LogSource::Stderr => "stderr",
            LogSource::Debug => "debug",
            LogSource::Info => "info",
            LogSource::Warn => "warn",
            LogSource::Error => "error",
        }
    }
}

/// One line of guest output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestLine {
    /// Where it came from.
    pub source: LogSource,
    /// The text, without its newline.
    pub text: String,
}

/// A window's output: the lines kept and what was dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestOutput {
    /// Lines kept, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<GuestLine>,
    /// Lines (or `log` calls) dropped past the limits.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_lines: u64,
    /// Bytes dropped past the limits.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped_bytes: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl GuestOutput {
    /// Nothing kept and nothing dropped.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.dropped_lines == 0 && self.dropped_bytes == 0
    }
}

/// The per-store collector.
#[derive(Debug, Default)]
pub struct GuestLog {
    window: GuestOutput,
    bytes: usize,
    log_calls: usize,
    /// Unterminated tails of stdout and stderr.
    partial: [Vec<u8>; 2],
}

impl GuestLog {
    /// Bytes the guest wrote to `source` (stdout or stderr); complete lines
    /// are kept, a trailing partial line waits for its newline or the end of
    /// the window.
    pub fn write(&mut self, source: LogSource, bytes: &[u8]) {
        let slot = usize::from(source == LogSource::Stderr);
        let mut rest = bytes;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut self.partial[slot]);
            line.extend_from_slice(&rest[..i]);
            self.keep(source, &line);
            rest = &rest[i + 1..];
        }
        // A partial line longer than the window can never be kept whole.
        let room = MAX_WINDOW_BYTES.saturating_sub(self.partial[slot].len());
        let take = rest.len().min(room);
        self.partial[slot].extend_from_slice(&rest[..take]);
        self.window.dropped_bytes += (rest.len() - take) as u64;
    }

    /// A `log` import call.
    pub fn log(&mut self, source: LogSource, message: &str) {
        self.log_calls += 1;
        if self.log_calls > MAX_LOG_CALLS {
            self.window.dropped_lines += 1;
            self.window.dropped_bytes += message.len() as u64;
            return;
        }
        for line in message.lines() {
            self.keep(source, line.as_bytes());
        }
    }

    fn keep(&mut self, source: LogSource, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if self.window.lines.len() >= MAX_WINDOW_LINES || self.bytes + line.len() > MAX_WINDOW_BYTES
        {
            self.window.dropped_lines += 1;
            self.window.dropped_bytes += line.len() as u64;
            return;
        }
        self.bytes += line.len();
        self.window.lines.push(GuestLine {
            source,
            text: String::from_utf8_lossy(line).into_owned(),
        });
    }

    /// Ends the window: flushes partial lines and returns what it held.
    pub fn take(&mut self) -> GuestOutput {
        for (slot, source) in [(0, LogSource::Stdout), (1, LogSource::Stderr)] {
            let tail = std::mem::take(&mut self.partial[slot]);
            if !tail.is_empty() {
                self.keep(source, &tail);
            }
        }
        self.bytes = 0;
        self.log_calls = 0;
        std::mem::take(&mut self.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_on_newlines_and_partials_flush_at_the_end() {
        let mut log = GuestLog::default();
        log.write(
            LogSource::Stderr,
            b"Traceback (most recent call last):\n  Fi",
        );
        log.write(LogSource::Stderr, b"le \"x.py\"\nAttributeError: y");
        log.log(LogSource::Warn, "slow");
        let out = log.take();
        let texts: Vec<&str> = out.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "Traceback (most recent call last):",
                "  File \"x.py\"",
                "slow",
                "AttributeError: y"
            ]
        );
        assert_eq!(out.lines[2].source, LogSource::Warn);
        assert!(log.take().is_empty(), "a window starts empty");
    }

    #[test]
    fn a_flood_is_bounded_and_counted() {
        let mut log = GuestLog::default();
        for _ in 0..5000 {
            log.write(LogSource::Stdout, b"0123456789\n");
        }
        for _ in 0..1000 {
            log.log(LogSource::Info, "x");
        }
        let out = log.take();
        assert_eq!(out.lines.len(), MAX_WINDOW_LINES);
        assert_eq!(out.dropped_lines, 5000 - MAX_WINDOW_LINES as u64 + 1000);
        let mut big = GuestLog::default();
        big.write(LogSource::Stdout, &vec![b'a'; 3 * MAX_WINDOW_BYTES]);
        let out = big.take();
        assert_eq!(out.lines.len(), 1);
        assert_eq!(out.lines[0].text.len(), MAX_WINDOW_BYTES);
        assert_eq!(out.dropped_bytes, 2 * MAX_WINDOW_BYTES as u64);
    }
}
