//! The queue roles of `thermoroute:policy@0.2.0` and the worlds that
//! export them.

use serde::{Deserialize, Serialize};

use super::bindings::v0_2::{ADMIT_EXPORT, PREEMPT_EXPORT, QUEUE_ORDER_EXPORT};

/// One of the queue roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueueRole {
    /// Orders the waiting work of a device queue.
    QueueOrder,
    /// Accepts, rejects or holds a routed task.
    Admit,
    /// Names running work to preempt for an interactive arrival.
    Preempt,
}

impl QueueRole {
    /// Every queue role.
    pub const ALL: [QueueRole; 3] = [QueueRole::QueueOrder, QueueRole::Admit, QueueRole::Preempt];

    /// The role's name in flags, file names, traces and reports.
    pub fn name(self) -> &'static str {
        match self {
            QueueRole::QueueOrder => "queue-order",
            QueueRole::Admit => "admit",
            QueueRole::Preempt => "preempt",
        }
    }

    /// The export name of the role's interface.
    pub fn interface(self) -> &'static str {
        match self {
            QueueRole::QueueOrder => QUEUE_ORDER_EXPORT,
            QueueRole::Admit => ADMIT_EXPORT,
            QueueRole::Preempt => PREEMPT_EXPORT,
        }
    }

    /// The WIT world (of `thermoroute:policy@0.2.0`) that exports it alone.
    pub fn world(self) -> &'static str {
        match self {
            QueueRole::QueueOrder => "queue-order-plugin",
            QueueRole::Admit => "admit-plugin",
            QueueRole::Preempt => "preempt-plugin",
        }
    }

    /// Whether a component with these exports serves this role.
    pub fn exported_in(self, exports: &[String]) -> bool {
        exports.iter().any(|e| e == self.interface())
    }
}
