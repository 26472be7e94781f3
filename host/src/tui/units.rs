//! Times in real units: a duration picks ns, µs, ms or s by its size, and
//! an axis picks one unit for all its ticks by the span it shows.

/// A duration (given in milliseconds) in the unit that suits it, three
/// significant digits: `517 ns`, `18.3 µs`, `907 ms`, `1.23 s`.
pub fn duration(ms: f64) -> String {
    if !ms.is_finite() {
        return format!("{ms} ms");
    }
    let a = ms.abs();
    let (value, unit) = if a == 0.0 {
        (0.0, "µs")
    } else if a >= 1000.0 {
        (ms / 1000.0, "s")
    } else if a >= 1.0 {
        (ms, "ms")
    } else if a >= 1e-3 {
        (ms * 1e3, "µs")
    } else {
        (ms * 1e6, "ns")
    };
    let v = value.abs();
    let decimals = if v >= 100.0 || v == 0.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{} {unit}", trim(format!("{value:.decimals$}")))
}

fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// The unit an axis spanning `span_ms` is labelled in: its scale in ms and
/// its name.
pub fn axis_unit(span_ms: f64) -> (f64, &'static str) {
    if span_ms >= 2000.0 {
        (1000.0, "s")
    } else if span_ms >= 2.0 {
        (1.0, "ms")
    } else if span_ms >= 2e-3 {
        (1e-3, "µs")
    } else {
        (1e-6, "ns")
    }
}

/// Ticks for an axis over `[left, right]` ms: round steps (1, 2 or 5 times
/// a power of ten), about one per ten cells, all labelled in one unit
/// chosen by the span. Each tick is its time and its label.
pub fn ticks(left: f64, right: f64, cells: usize) -> Vec<(f64, String)> {
    let span = right - left;
    if span.is_nan() || span <= 0.0 || span.is_infinite() {
        return vec![(left, duration(left))];
    }
    let (scale, unit) = axis_unit(span);
    let wanted = (cells as f64 / 10.0).max(1.0);
    let raw = span / wanted / scale;
    let power = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * power);
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let first = (left / scale / step).ceil() as i64;
    let last = (right / scale / step).floor() as i64;
    (first..=last)
        .map(|k| {
            let v = k as f64 * step;
            let label = format!("{v:.decimals$} {unit}");
            (v * scale, label)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_pick_their_unit() {
        assert_eq!(duration(0.0), "0 µs");
        assert_eq!(duration(0.000517), "517 ns");
        assert_eq!(duration(0.018297), "18.3 µs");
        assert_eq!(duration(0.001256), "1.26 µs");
        assert_eq!(duration(907.0), "907 ms");
        assert_eq!(duration(5.0), "5 ms");
        assert_eq!(duration(1234.0), "1.23 s");
    }

    #[test]
    fn ticks_are_round_and_in_one_unit() {
        // The 5-job trace: 18.3 µs wide.
        let t = ticks(0.0, 0.018297, 90);
        let labels: Vec<&str> = t.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(labels, ["0 µs", "5 µs", "10 µs", "15 µs"]);
        let t = ticks(0.0, 1500.0, 90);
        assert!(t.iter().all(|(_, l)| l.ends_with(" ms")), "{t:?}");
        assert_eq!(t[1].1, "200 ms");
        let t = ticks(1000.0, 60_000.0, 90);
        assert!(t.iter().all(|(_, l)| l.ends_with(" s")), "{t:?}");
        let t = ticks(0.0, 0.000_9, 90);
        assert!(t.iter().all(|(_, l)| l.ends_with(" ns")), "{t:?}");
        // Never "0 µs … 0 µs": distinct labels whatever the span.
        for span in [1e-5, 1e-3, 0.05, 3.0, 700.0, 9e4] {
            let t = ticks(0.0, span, 90);
            assert!(t.len() >= 2, "{span}: {t:?}");
            let mut labels: Vec<&String> = t.iter().map(|(_, l)| l).collect();
            labels.dedup();
            assert_eq!(labels.len(), t.len(), "{span}: {t:?}");
        }
    }
}
