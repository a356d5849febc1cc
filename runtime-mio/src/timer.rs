//! Per-connection deadlines: inbound handshakes, outbound dials and closing
//! handshakes each have a time limit.
//!
//! A binary heap with lazy deletion: a connection keeps its one current
//! deadline itself, the heap may hold older entries for it, and the loop
//! ignores an entry that no longer matches the connection's deadline. That
//! keeps rescheduling O(log n) with no search, and stale entries leave the
//! heap when their time comes.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use mpreg_core::ConnId;

/// Deadlines of all connections, earliest first.
#[derive(Default)]
pub(crate) struct Deadlines {
    heap: BinaryHeap<Reverse<(Instant, ConnId)>>,
}

impl Deadlines {
    /// Remembers that `conn` has something due at `at`.
    pub(crate) fn schedule(&mut self, at: Instant, conn: ConnId) {
        self.heap.push(Reverse((at, conn)));
    }

    /// The earliest entry, stale or not (waking for a stale one is harmless).
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Removes and returns one entry due at or before `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, ConnId)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_in_order_and_only_when_due() {
        let t0 = Instant::now();
        let mut d = Deadlines::default();
        d.schedule(t0 + Duration::from_secs(2), 2);
        d.schedule(t0 + Duration::from_secs(1), 1);
        assert_eq!(d.next(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(d.pop_due(t0), None);
        let now = t0 + Duration::from_secs(5);
        assert_eq!(d.pop_due(now).map(|e| e.1), Some(1));
        assert_eq!(d.pop_due(now).map(|e| e.1), Some(2));
        assert_eq!(d.pop_due(now), None);
        assert_eq!(d.next(), None);
    }
}
