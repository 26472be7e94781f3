//! Admission: interactive work is always accepted; batch work while fewer
//! than half the queue's places are taken, else it is rejected with a
//! retry-after of the time the queued work should take to drain.

wit_bindgen::generate!({ path: "../../wit", world: "admit-plugin" });

use exports::thermoroute::policy::admit::{Admission, Guest, Rejection};
use thermoroute::policy::queue_types::{QueueSnapshot, Task};
use thermoroute::policy::types::Priority;

struct Plugin;

impl Guest for Plugin {
    fn decide(arriving: Task, queue: QueueSnapshot) -> Result<Admission, String> {
        if arriving.priority == Priority::Interactive {
            return Ok(Admission::Accept);
        }
        if (queue.waiting.len() as u32) * 2 < queue.limit.max(1) {
            return Ok(Admission::Accept);
        }
        let queued_ms: f64 = queue.waiting.iter().map(|t| t.service_ms).sum();
        Ok(Admission::Reject(Rejection {
            reason: format!(
                "{} of {} queue places taken: batch work waits for the queue to drain",
                queue.waiting.len(),
                queue.limit
            ),
            retry_after_ms: Some(queued_ms / f64::from(queue.slots.max(1))),
        }))
    }
}

export!(Plugin);
