//! The parts of a trace rotated under `--trace-max`.

use std::path::{Path, PathBuf};

/// How many parts of a rotated trace are kept: when a fifth would start,
/// the oldest is deleted, so a trace bounded by `--trace-max SIZE` takes at
/// most SIZE on disk, in parts of SIZE / 4.
pub const TRACE_PARTS_KEPT: u32 = 4;

/// The file of part `part` of the trace at `base`: `base` itself for part 0,
/// then `T.1.jsonl`, `T.2.jsonl`, … (`T` is `base` less a `.jsonl` ending).
pub fn trace_part_path(base: &Path, part: u32) -> PathBuf {
    if part == 0 {
        return base.to_path_buf();
    }
    let name = base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".jsonl").unwrap_or(&name);
    base.with_file_name(format!("{stem}.{part}.jsonl"))
}

/// The parts of the trace at `base` that exist, oldest first (part 0, the
/// file `base` itself, only when it exists).
pub fn trace_parts(base: &Path) -> Vec<(u32, PathBuf)> {
    let mut parts = Vec::new();
    if base.is_file() {
        parts.push((0, base.to_path_buf()));
    }
    let name = base
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".jsonl").unwrap_or(&name).to_string();
    let dir = match base.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            let part = file
                .strip_prefix(&stem)
                .and_then(|r| r.strip_prefix('.'))
                .and_then(|r| r.strip_suffix(".jsonl"))
                .filter(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|k| k.parse::<u32>().ok())
                .filter(|k| *k > 0);
            if let Some(k) = part {
                parts.push((k, trace_part_path(base, k)));
            }
        }
    }
    parts.sort();
    parts
}
