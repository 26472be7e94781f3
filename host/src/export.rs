//! Perfetto export: a trace as Chrome trace-event JSON (opens in
//! ui.perfetto.dev). One process per device, one thread track per lane of
//! that device; executions are packed onto lanes so no two slices on a track
//! overlap (Perfetto hides overlapping events on one track). Counter tracks
//! carry queue depth per device and cumulative energy; routing decisions are
//! instant events with every candidate's cost terms in `args`.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Value, json};

use crate::device::{Device, Target};
use crate::trace::TraceEvent;

/// One execution interval of a node on a device.
#[derive(Debug, Clone)]
struct Slice {
    device: Device,
    start_ms: f64,
    end_ms: f64,
    name: String,
    args: Value,
}

fn pid(device: Device) -> u64 {
    device.index() as u64 + 1
}

fn us(ms: f64) -> f64 {
    ms * 1e3
}

/// Converts trace events into a Chrome trace-event document.
pub fn perfetto(events: &[TraceEvent]) -> Value {
    let mut open: HashMap<(u64, String), (Device, f64, Target)> = HashMap::new();
    let mut queued: HashMap<(u64, String), Device> = HashMap::new();
    let mut slices: Vec<Slice> = Vec::new();
    let mut out: Vec<Value> = Vec::new();
    let mut depth: BTreeMap<Device, i64> = BTreeMap::new();
    let mut energy = 0.0;
    // Queue depth changes by `delta`; each change is a counter sample.
    let bump = |out: &mut Vec<Value>,
                depth: &mut BTreeMap<Device, i64>,
                t_ms: f64,
                device: Device,
                delta: i64| {
        let q = depth.entry(device).or_default();
        *q += delta;
        out.push(json!({
            "ph": "C", "name": format!("{} queue", device.name()), "pid": pid(device), "tid": 0,
            "ts": us(t_ms), "args": { "depth": *q }
        }));
    };
    for e in events {
        match e {
            TraceEvent::Admit {
                t_ms,
                job,
                node,
                target,
                ..
            } => {
                let d = target.device();
                queued.insert((*job, node.clone()), d);
                bump(&mut out, &mut depth, *t_ms, d, 1);
            }
            TraceEvent::Start {
                t_ms,
                job,
                node,
                target,
            }
            | TraceEvent::Resume {
                t_ms,
                job,
                node,
                target,
            } => {
                let key = (*job, node.clone());
                if let Some(d) = queued.remove(&key) {
                    bump(&mut out, &mut depth, *t_ms, d, -1);
                }
                open.insert(key, (target.device(), *t_ms, *target));
            }
            TraceEvent::Steal {
                t_ms,
                job,
                node,
                to,
                ..
            } => {
                let key = (*job, node.clone());
                if let Some(d) = queued.insert(key, to.device()) {
                    bump(&mut out, &mut depth, *t_ms, d, -1);
                }
                bump(&mut out, &mut depth, *t_ms, to.device(), 1);
            }
            TraceEvent::Preempt {
                t_ms,
                job,
                node,
                target,
                progress,
                ..
            } => {
                let key = (*job, node.clone());
                if let Some((d, start, t)) = open.remove(&key) {
                    slices.push(Slice {
                        device: d,
                        start_ms: start,
                        end_ms: *t_ms,
                        name: format!("job {job} {node}"),
                        args: json!({ "target": t, "preempted_at_progress": progress }),
                    });
                }
                let d = target.device();
                queued.insert(key, d);
                bump(&mut out, &mut depth, *t_ms, d, 1);
            }
            TraceEvent::End {
                t_ms,
                job,
                node,
                target,
                status,
                service_ms,
                energy_j,
                ..
            } => {
                let key = (*job, node.clone());
                let (d, start, _) = open
                    .remove(&key)
                    .unwrap_or((target.device(), *t_ms, *target));
                slices.push(Slice {
                    device: d,
                    start_ms: start,
                    end_ms: *t_ms,
                    name: format!("job {job} {node}"),
                    args: json!({ "target": target, "status": status, "service_ms": service_ms, "energy_j": energy_j }),
                });
                energy += energy_j;
                out.push(json!({
                    "ph": "C", "name": "energy (J, cumulative)", "pid": 0, "tid": 0,
                    "ts": us(*t_ms), "args": { "energy_j": energy }
                }));
            }
            TraceEvent::Failure {
                t_ms,
                job,
                node,
                kind,
                action,
                detail,
            } => {
                // Work evicted from a queue leaves it without starting.
                let key = (*job, node.clone());
                if let Some(d) = queued.remove(&key) {
                    bump(&mut out, &mut depth, *t_ms, d, -1);
                }
                // A failed running slice ends here.
                if let Some((d, start, t)) = open.remove(&key) {
                    slices.push(Slice {
                        device: d,
                        start_ms: start,
                        end_ms: *t_ms,
                        name: format!("job {job} {node} (failed)"),
                        args: json!({ "target": t }),
                    });
                }
                out.push(json!({
                    "ph": "i", "s": "g", "name": format!("{kind:?} -> {action:?}"), "pid": 0, "tid": 0,
                    "ts": us(*t_ms), "args": { "job": job, "node": node, "detail": detail }
                }));
            }
            TraceEvent::Route {
                t_ms,
                job,
                node,
                chosen,
                candidates,
                explanation,
                ..
            } => {
                let costs: Vec<Value> = candidates
                    .iter()
                    .map(|c| json!({ "target": c.target, "eligible": c.eligible, "cost": c.cost, "violations": c.violations }))
                    .collect();
                out.push(json!({
                    "ph": "i", "s": "t", "name": format!("route job {job} {node} -> {}", chosen.map_or("none".into(), |t| t.to_string())),
                    "pid": 0, "tid": 1, "ts": us(*t_ms),
                    "args": { "candidates": costs, "why": explanation }
                }));
            }
            TraceEvent::Drift { t_ms, drift } => out.push(json!({
                "ph": "i", "s": "g", "name": format!("drift {} {}", drift.target, drift.class),
                "pid": 0, "tid": 0, "ts": us(*t_ms), "args": drift
            })),
            _ => {}
        }
    }
    // Pack slices onto lanes: earliest start first, the lowest lane free by then.
    slices.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms));
    let mut lanes: BTreeMap<Device, Vec<f64>> = BTreeMap::new();
    for s in &slices {
        let ends = lanes.entry(s.device).or_default();
        let lane = match ends.iter().position(|&end| end <= s.start_ms) {
            Some(l) => l,
            None => {
                ends.push(f64::NEG_INFINITY);
                ends.len() - 1
            }
        };
        ends[lane] = s.end_ms;
        out.push(json!({
            "ph": "X", "name": s.name, "pid": pid(s.device), "tid": lane + 1,
            "ts": us(s.start_ms), "dur": us(s.end_ms - s.start_ms), "args": s.args
        }));
    }
    let mut meta = vec![
        json!({ "ph": "M", "name": "process_name", "pid": 0, "tid": 0, "args": { "name": "scheduler" } }),
        json!({ "ph": "M", "name": "thread_name", "pid": 0, "tid": 1, "args": { "name": "routing decisions" } }),
    ];
    for (device, ends) in &lanes {
        meta.push(json!({ "ph": "M", "name": "process_name", "pid": pid(*device), "tid": 0, "args": { "name": device.name() } }));
        for lane in 0..ends.len() {
            meta.push(json!({
                "ph": "M", "name": "thread_name", "pid": pid(*device), "tid": lane + 1,
                "args": { "name": format!("{} lane {}", device.name(), lane + 1) }
            }));
        }
    }
    meta.extend(out);
    json!({ "traceEvents": meta, "displayTimeUnit": "ms" })
}
