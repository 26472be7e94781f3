// Preemption: an interactive arrival on a full device preempts the
// preemptible batch task that started last (the least work lost), and
// nothing for batch arrivals. Record fields arrive in camelCase, enums as
// their WIT names; task ids are u64, so BigInts.

export const preempt = {
  victims(arriving, queue) {
    if (arriving.priority !== "interactive" || queue.freeSlots > 0) return [];
    let last = null;
    for (const t of queue.running) {
      if (!t.preemptible || t.priority !== "batch") continue;
      if (last === null || t.enqueuedMs > last.enqueuedMs) last = t;
    }
    return last === null ? [] : [last.id];
  },
};
