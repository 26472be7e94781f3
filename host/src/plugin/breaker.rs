//! The circuit breaker of one plugin role: after `faults` consecutive
//! faults the role is tripped, answered without the plugin for `backoff`
//! calls, then the plugin is retried once — a success closes the breaker,
//! a fault trips it again at once. Counted in calls, not time, so a run
//! stays deterministic.

/// What the breaker says about the next call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admit {
    /// Call the plugin.
    Call,
    /// Do not: the role is tripped for this many more calls (this one
    /// included).
    Tripped(u64),
}

/// What a call's outcome did to the breaker, for the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    /// Nothing worth telling.
    None,
    /// It tripped after this many consecutive faults.
    Tripped(u32),
    /// The retry after a back-off succeeded: the plugin serves again.
    Recovered,
}

/// One role's breaker state.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Breaker {
    /// Consecutive faults so far.
    consecutive: u32,
    /// Calls left to answer without the plugin.
    skip: u64,
}

impl Breaker {
    /// Whether the next call may reach the plugin; a refused call counts
    /// towards the back-off.
    pub(super) fn admit(&mut self) -> Admit {
        if self.skip == 0 {
            return Admit::Call;
        }
        let left = self.skip;
        self.skip -= 1;
        Admit::Tripped(left)
    }

    /// The consecutive faults that tripped it (for a tripped fault).
    pub(super) fn faults(&self) -> u32 {
        self.consecutive
    }

    /// Records a call's outcome. `limit` is the operator's K (0: never
    /// trip), `backoff` the calls a trip lasts.
    pub(super) fn record(&mut self, ok: bool, limit: u32, backoff: u64) -> Change {
        if ok {
            let was_tripped = limit > 0 && self.consecutive >= limit;
            self.consecutive = 0;
            return if was_tripped {
                Change::Recovered
            } else {
                Change::None
            };
        }
        self.consecutive = self.consecutive.saturating_add(1);
        if limit > 0 && self.consecutive >= limit {
            self.skip = backoff;
            Change::Tripped(self.consecutive)
        } else {
            Change::None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trips_after_k_faults_backs_off_then_retries_once() {
        let mut b = Breaker::default();
        assert_eq!(b.record(false, 3, 2), Change::None);
        assert_eq!(b.record(false, 3, 2), Change::None);
        assert_eq!(b.admit(), Admit::Call);
        assert_eq!(b.record(false, 3, 2), Change::Tripped(3));
        assert_eq!(b.admit(), Admit::Tripped(2));
        assert_eq!(b.admit(), Admit::Tripped(1));
        // The retry: one call reaches the plugin; a fault trips it again.
        assert_eq!(b.admit(), Admit::Call);
        assert_eq!(b.record(false, 3, 2), Change::Tripped(4));
        assert_eq!(b.admit(), Admit::Tripped(2));
        assert_eq!(b.admit(), Admit::Tripped(1));
        assert_eq!(b.admit(), Admit::Call);
        assert_eq!(b.record(true, 3, 2), Change::Recovered);
        assert_eq!(b.admit(), Admit::Call);
        assert_eq!(b.record(true, 3, 2), Change::None);
    }

    #[test]
    fn a_zero_limit_never_trips() {
        let mut b = Breaker::default();
        for _ in 0..100 {
            assert_eq!(b.record(false, 0, 10), Change::None);
            assert_eq!(b.admit(), Admit::Call);
        }
    }
}
