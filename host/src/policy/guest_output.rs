//! What a policy plugin printed (stdout, stderr) or logged during one call,
//! as it travels with a [`super::PolicyFault`] into traces and reports.
//!
//! The plugin runtime collects it (bounded, see `plugin::GuestLog`); this
//! layer only carries and shows it, so traces, the TUI and `explain` can
//! read it without knowing about plugins.

use serde::{Deserialize, Serialize};

/// Where a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// Where the dropped lines were: `lines[..gap]` came before them, the
    /// rest after (a flood keeps its first and its last lines). None: at
    /// the end, or nothing dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap: Option<usize>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl GuestOutput {
    /// Nothing kept and nothing dropped.
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty() && self.dropped_lines == 0 && self.dropped_bytes == 0
    }

    /// For human output: at most `max` lines, each `tag | text` (the first
    /// quarter and the last three quarters when there are more: a
    /// traceback is at the end), and a line wherever lines were left out
    /// or dropped past the per-call bound.
    pub fn excerpt(&self, max: usize) -> Vec<String> {
        let dropped = (self.dropped_lines > 0 || self.dropped_bytes > 0).then(|| {
            format!(
                "{} line(s), {} byte(s) dropped past the per-call bound",
                self.dropped_lines, self.dropped_bytes
            )
        });
        let gap = self.gap.unwrap_or(self.lines.len()).min(self.lines.len());
        let max = max.max(1);
        let shown = |l: &GuestLine| format!("{} | {}", l.source.tag(), l.text);
        let mut out = Vec::new();
        if self.lines.len() <= max {
            for (i, l) in self.lines.iter().enumerate() {
                if i == gap
                    && let Some(d) = &dropped
                {
                    out.push(format!("… {d} …"));
                }
                out.push(shown(l));
            }
            if gap == self.lines.len()
                && let Some(d) = &dropped
            {
                out.push(format!("… {d}"));
            }
            return out;
        }
        let first = max / 4;
        let last = max - first;
        let hidden = self.lines.len() - first - last;
        out.extend(self.lines[..first].iter().map(shown));
        let mut note = vec![format!("{hidden} line(s) not shown")];
        // The drop happened among the hidden lines, or after all of them.
        let drop_hidden = gap >= first && gap <= first + hidden;
        if drop_hidden && let Some(d) = &dropped {
            note.push(d.clone());
        }
        out.push(format!("… {} …", note.join("; ")));
        for (i, l) in self.lines.iter().enumerate().skip(first + hidden) {
            if i == gap
                && !drop_hidden
                && let Some(d) = &dropped
            {
                out.push(format!("… {d} …"));
            }
            out.push(shown(l));
        }
        if gap == self.lines.len()
            && !drop_hidden
            && let Some(d) = &dropped
        {
            out.push(format!("… {d}"));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpts_clip_keep_the_end_and_say_what_they_left_out() {
        let line = |i: usize| GuestLine {
            source: LogSource::Stderr,
            text: format!("line {i}"),
        };
        let out = GuestOutput {
            lines: (0..12).map(line).collect(),
            dropped_lines: 7,
            dropped_bytes: 70,
            gap: Some(6),
        };
        // Everything fits: the drop is shown where it happened.
        let all = out.excerpt(20);
        assert_eq!(all.len(), 13);
        assert_eq!(
            all[6],
            "… 7 line(s), 70 byte(s) dropped past the per-call bound …"
        );
        assert_eq!(all[12], "stderr | line 11");
        // Clipped: one first line, three last, the middle summarised.
        let some = out.excerpt(4);
        assert_eq!(
            some,
            [
                "stderr | line 0",
                "… 8 line(s) not shown; 7 line(s), 70 byte(s) dropped past the per-call bound …",
                "stderr | line 9",
                "stderr | line 10",
                "stderr | line 11",
            ]
        );
        // Dropped at the end (the `log` rate limit), nothing clipped.
        let end = GuestOutput {
            lines: vec![line(0)],
            dropped_lines: 1,
            dropped_bytes: 3,
            gap: None,
        };
        assert_eq!(
            end.excerpt(5),
            [
                "stderr | line 0",
                "… 1 line(s), 3 byte(s) dropped past the per-call bound"
            ]
        );
        assert_eq!(GuestOutput::default().excerpt(3), Vec::<String>::new());
        // An old trace's fault has no output: it reads as empty.
        let empty: GuestOutput = serde_json::from_str("{}").unwrap();
        assert!(empty.is_empty());
        assert_eq!(serde_json::to_string(&empty).unwrap(), "{}");
    }
}
