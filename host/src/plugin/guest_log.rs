//! What a guest printed (stdout, stderr) or logged (the WIT 0.2 `log`
//! import) during its calls, kept per store in a bounded window.
//!
//! A window is the span between two [`GuestLog::take`]s, normally one call.
//! Past [`MAX_WINDOW_BYTES`], [`MAX_WINDOW_LINES`] or [`MAX_LOG_CALLS`] the
//! excess is dropped and counted, so a guest that floods its output slows
//! nothing and fills no memory. The window keeps the first half of its
//! budget for the first lines and the rest for the last ones: a traceback
//! printed after a flood is kept.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

pub use crate::policy::{GuestLine, GuestOutput, LogSource};

/// Bytes of text kept per window.
pub const MAX_WINDOW_BYTES: usize = 64 * 1024;
/// Lines kept per window.
pub const MAX_WINDOW_LINES: usize = 1024;
/// `log` calls honoured per window (the import's rate limit).
pub const MAX_LOG_CALLS: usize = 256;
/// Bytes a guest may write to stdout or stderr in one `write` (the WASI
/// stream's `check-write` permit).
const WRITE_PERMIT: usize = 64 * 1024;

/// Lines and bytes of the window's head (its first lines) and of its tail
/// (its last lines): a guest that prints a lot and then fails keeps both
/// its first output and its traceback.
const HEAD_LINES: usize = MAX_WINDOW_LINES / 2;
const HEAD_BYTES: usize = MAX_WINDOW_BYTES / 2;
const TAIL_LINES: usize = MAX_WINDOW_LINES - HEAD_LINES;
const TAIL_BYTES: usize = MAX_WINDOW_BYTES - HEAD_BYTES;

/// The per-store collector.
#[derive(Debug, Default)]
pub struct GuestLog {
    /// The window's first lines, up to the head's bounds.
    head: Vec<GuestLine>,
    head_bytes: usize,
    /// The latest lines after the head, raw; the oldest falls out first
    /// (its buffer is reused, so a flood allocates nothing per line).
    tail: VecDeque<(LogSource, Vec<u8>)>,
    tail_bytes: usize,
    /// Whether lines fell out between head and tail.
    evicted: bool,
    dropped_lines: u64,
    dropped_bytes: u64,
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
            if self.partial[slot].is_empty() {
                self.keep(source, &rest[..i]);
            } else {
                let mut line = std::mem::take(&mut self.partial[slot]);
                line.extend_from_slice(&rest[..i]);
                self.keep(source, &line);
            }
            rest = &rest[i + 1..];
        }
        // A partial line longer than the tail can never be kept whole.
        let room = TAIL_BYTES.saturating_sub(self.partial[slot].len());
        let take = rest.len().min(room);
        self.partial[slot].extend_from_slice(&rest[..take]);
        self.dropped_bytes += (rest.len() - take) as u64;
    }

    /// A `log` import call.
    pub fn log(&mut self, source: LogSource, message: &str) {
        self.log_calls += 1;
        if self.log_calls > MAX_LOG_CALLS {
            self.dropped_lines += 1;
            self.dropped_bytes += message.len() as u64;
            return;
        }
        for line in message.lines() {
            self.keep(source, line.as_bytes());
        }
    }

    fn keep(&mut self, source: LogSource, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if self.tail.is_empty()
            && self.head.len() < HEAD_LINES
            && self.head_bytes + line.len() <= HEAD_BYTES
        {
            self.head_bytes += line.len();
            self.head.push(GuestLine {
                source,
                text: String::from_utf8_lossy(line).into_owned(),
            });
            return;
        }
        let cut = line.len().saturating_sub(TAIL_BYTES);
        let line = &line[..line.len() - cut];
        self.dropped_bytes += cut as u64;
        let mut reuse = None;
        while !self.tail.is_empty()
            && (self.tail.len() >= TAIL_LINES || self.tail_bytes + line.len() > TAIL_BYTES)
        {
            let (_, old) = self.tail.pop_front().expect("not empty");
            self.tail_bytes -= old.len();
            self.dropped_lines += 1;
            self.dropped_bytes += old.len() as u64;
            self.evicted = true;
            reuse = Some(old);
        }
        let mut buf = reuse.unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(line);
        self.tail_bytes += buf.len();
        self.tail.push_back((source, buf));
    }

    /// Ends the window: flushes partial lines and returns what it held.
    pub fn take(&mut self) -> GuestOutput {
        if self.head.is_empty()
            && self.tail.is_empty()
            && self.dropped_bytes == 0
            && self.dropped_lines == 0
            && self.log_calls == 0
            && self.partial.iter().all(Vec::is_empty)
        {
            // The common case, once per call: nothing was printed.
            return GuestOutput::default();
        }
        for (slot, source) in [(0, LogSource::Stdout), (1, LogSource::Stderr)] {
            let rest = std::mem::take(&mut self.partial[slot]);
            if !rest.is_empty() {
                self.keep(source, &rest);
            }
        }
        let mut lines = std::mem::take(&mut self.head);
        let gap = self.evicted.then_some(lines.len());
        lines.extend(self.tail.drain(..).map(|(source, text)| GuestLine {
            source,
            text: String::from_utf8_lossy(&text).into_owned(),
        }));
        let out = GuestOutput {
            lines,
            dropped_lines: self.dropped_lines,
            dropped_bytes: self.dropped_bytes,
            gap,
        };
        *self = GuestLog {
            partial: std::mem::take(&mut self.partial),
            ..GuestLog::default()
        };
        out
    }
}

/// A store's guest log, shared by the store's state (the `log` import) and
/// the guest's stdout and stderr streams.
#[derive(Debug, Clone, Default)]
pub struct SharedLog(Arc<Mutex<GuestLog>>);

impl SharedLog {
    /// The log (a panic while it was held leaves it usable: it is only text).
    pub fn lock(&self) -> MutexGuard<'_, GuestLog> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends the window (see [`GuestLog::take`]).
    pub fn take(&self) -> GuestOutput {
        self.lock().take()
    }

    /// A WASI stdout or stderr that writes into this log.
    pub fn stream(&self, source: LogSource) -> GuestStream {
        GuestStream {
            log: self.clone(),
            source,
        }
    }
}

/// The guest's stdout or stderr: every write lands in the [`SharedLog`],
/// never blocks and never fails (the log bounds what it keeps).
#[derive(Debug, Clone)]
pub struct GuestStream {
    log: SharedLog,
    source: LogSource,
}

impl IsTerminal for GuestStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStream {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for GuestStream {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.log.lock().write(self.source, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

impl Pollable for GuestStream {
    fn ready<'a, 'b>(&'a mut self) -> Pin<Box<dyn Future<Output = ()> + Send + 'b>>
    where
        'a: 'b,
        Self: 'b,
    {
        Box::pin(std::future::ready(()))
    }
}

impl tokio::io::AsyncWrite for GuestStream {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.log.lock().write(self.source, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
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
        // 5000 printed and 256 logged lines, the window's 1024 kept, and
        // the 744 `log` calls past the rate limit.
        assert_eq!(out.dropped_lines, 5000 + 256 - 1024 + 744);
        assert_eq!(out.gap, Some(HEAD_LINES));
        assert_eq!(out.lines[HEAD_LINES - 1].source, LogSource::Stdout);
        assert_eq!(out.lines.last().unwrap().source, LogSource::Info);
        let mut big = GuestLog::default();
        big.write(LogSource::Stdout, &vec![b'a'; 3 * MAX_WINDOW_BYTES]);
        let out = big.take();
        assert_eq!(out.lines.len(), 1);
        assert_eq!(out.lines[0].text.len(), TAIL_BYTES);
        assert_eq!(
            out.dropped_bytes,
            (3 * MAX_WINDOW_BYTES - TAIL_BYTES) as u64
        );
    }

    #[test]
    fn a_traceback_after_a_flood_is_kept() {
        let mut log = GuestLog::default();
        log.write(LogSource::Stdout, b"starting\n");
        for i in 0..100_000 {
            log.write(LogSource::Stdout, format!("debug {i}\n").as_bytes());
        }
        log.write(
            LogSource::Stderr,
            b"Traceback (most recent call last):\nAttributeError: 'Estimate' object has no attribute 'latency_ms'\n",
        );
        let out = log.take();
        assert_eq!(out.lines[0].text, "starting");
        let last = out.lines.last().unwrap();
        assert_eq!(last.source, LogSource::Stderr);
        assert!(last.text.starts_with("AttributeError"));
        assert!(out.dropped_lines > 90_000);
        let bytes: usize = out.lines.iter().map(|l| l.text.len()).sum();
        assert!(bytes <= MAX_WINDOW_BYTES && out.lines.len() <= MAX_WINDOW_LINES);
        let shown = out.excerpt(10);
        assert!(
            shown.last().unwrap().contains("AttributeError"),
            "{shown:?}"
        );
        assert!(shown.iter().any(|l| l.contains("dropped")), "{shown:?}");
    }

    #[test]
    fn streams_write_into_the_shared_log_and_windows_take_it() {
        let log = SharedLog::default();
        let mut out = log.stream(LogSource::Stdout);
        let mut err = log.stream(LogSource::Stderr);
        assert_eq!(out.check_write().unwrap(), WRITE_PERMIT);
        out.write(bytes::Bytes::from_static(b"hello\nwor")).unwrap();
        err.write(bytes::Bytes::from_static(b"oops\n")).unwrap();
        log.lock().log(LogSource::Info, "deliberate");
        out.write(bytes::Bytes::from_static(b"ld\n")).unwrap();
        let window = log.take();
        let lines: Vec<(LogSource, &str)> = window
            .lines
            .iter()
            .map(|l| (l.source, l.text.as_str()))
            .collect();
        assert_eq!(
            lines,
            [
                (LogSource::Stdout, "hello"),
                (LogSource::Stderr, "oops"),
                (LogSource::Info, "deliberate"),
                (LogSource::Stdout, "world"),
            ]
        );
        assert!(log.take().is_empty());
        // A partial line alone is flushed by the window's end.
        out.write(bytes::Bytes::from_static(b"no newline")).unwrap();
        assert_eq!(log.take().lines[0].text, "no newline");
    }

    #[test]
    fn a_megabyte_flood_in_big_writes_stays_bounded() {
        let log = SharedLog::default();
        let mut out = log.stream(LogSource::Stdout);
        let chunk = bytes::Bytes::from("x".repeat(99) + "\n");
        let started = std::time::Instant::now();
        for _ in 0..(4 << 20) / chunk.len() {
            out.write(chunk.clone()).unwrap();
        }
        let window = log.take();
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        let kept: usize = window.lines.iter().map(|l| l.text.len()).sum();
        assert!(kept <= MAX_WINDOW_BYTES);
        assert_eq!(window.lines.len(), 2 * (HEAD_BYTES / 99));
        assert_eq!(
            window.dropped_lines as usize + window.lines.len(),
            (4 << 20) / chunk.len()
        );
    }
}
