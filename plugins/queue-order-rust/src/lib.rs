//! A queue order: earliest deadline first; work without a deadline after
//! it, first come first served. Interactive work usually has a deadline,
//! so it still goes first, but a batch task with a deadline overtakes an
//! interactive one whose deadline is later.

wit_bindgen::generate!({ path: "../../wit", world: "queue-order-plugin" });

use exports::thermoroute::policy::queue_order::Guest;
use thermoroute::policy::queue_types::QueueSnapshot;

struct Plugin;

impl Guest for Plugin {
    fn order(queue: QueueSnapshot) -> Result<Vec<u32>, String> {
        let mut order: Vec<u32> = (0..queue.waiting.len() as u32).collect();
        // A stable sort keeps the host's order among equals.
        order.sort_by(|&a, &b| {
            let (a, b) = (&queue.waiting[a as usize], &queue.waiting[b as usize]);
            let key = |d: Option<f64>| d.unwrap_or(f64::INFINITY);
            key(a.deadline_ms)
                .total_cmp(&key(b.deadline_ms))
                .then(a.enqueued_ms.total_cmp(&b.enqueued_ms))
        });
        Ok(order)
    }
}

export!(Plugin);
