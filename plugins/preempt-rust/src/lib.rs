//! Preemption: an interactive arrival on a full device preempts the
//! preemptible batch task that started last (the least work lost), and
//! nothing for batch arrivals.

wit_bindgen::generate!({ path: "../../wit", world: "preempt-plugin" });

use exports::thermoroute::policy::preempt::Guest;
use thermoroute::policy::queue_types::{QueueSnapshot, Task};
use thermoroute::policy::types::Priority;

struct Plugin;

impl Guest for Plugin {
    fn victims(arriving: Task, queue: QueueSnapshot) -> Result<Vec<u64>, String> {
        if arriving.priority != Priority::Interactive || queue.free_slots > 0 {
            return Ok(Vec::new());
        }
        Ok(queue
            .running
            .iter()
            .filter(|t| t.preemptible && t.priority == Priority::Batch)
            .max_by(|a, b| a.enqueued_ms.total_cmp(&b.enqueued_ms))
            .map(|t| vec![t.id])
            .unwrap_or_default())
    }
}

export!(Plugin);
