"""Admission: interactive work is always accepted; batch work while fewer
than half the queue's places are taken, else it is rejected with a
retry-after of the time the queued work should take to drain."""

from wit_world import exports
from wit_world.exports.admit import Admission_Accept, Admission_Reject, Rejection
from wit_world.imports.types import Priority


class Admit(exports.Admit):
    def decide(self, arriving, queue):
        if arriving.priority == Priority.INTERACTIVE:
            return Admission_Accept()
        if 2 * len(queue.waiting) < max(queue.limit, 1):
            return Admission_Accept()
        queued_ms = sum(t.service_ms for t in queue.waiting)
        return Admission_Reject(
            Rejection(
                f"{len(queue.waiting)} of {queue.limit} queue places taken: "
                "batch work waits for the queue to drain",
                queued_ms / max(queue.slots, 1),
            )
        )
