//! Bounds on what a remote party can make the node spend (issue 11):
//! connections per source address and in total, the idle life of a client
//! connection, and the per-limit hit counters the monitoring endpoint
//! exposes as `mpreg_limit_hits_total{limit="..."}`.
//!
//! Every bound here is a setting with a safe default. Hitting one refuses
//! only the party that hit it (a close or an error reply naming the
//! setting) and counts it, so an operator sees which bound bites and the
//! node keeps serving everyone else.
//!
//! Connection admission lives in the core, on `Input::Accepted`, so both
//! runtimes enforce it the same way; the runtimes only report what happens
//! before a connection exists for the node (a handshake that timed out).

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use crate::io::ConnId;
use crate::time::Instant;

/// A bound that can be hit, with the label it is counted under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `max_connections_per_source`: one address holds too many connections.
    ConnectionsPerSource,
    /// `max_connections`: the node holds too many accepted connections.
    Connections,
    /// `connection_handshake_timeout_seconds`: an inbound connection did
    /// not finish its HTTP head and WebSocket upgrade in time.
    HandshakeTimeout,
    /// `client_idle_timeout_seconds`: a client connection was closed idle.
    ClientIdle,
    /// `client_max_subscriptions_per_connection`.
    SubscriptionsPerConnection,
    /// `client_max_watches_per_connection`.
    WatchesPerConnection,
    /// `fabric_max_departed_records`: a departed / dead peer record was
    /// dropped before its horizon to make room.
    DepartedRecords,
    /// `fabric_max_tombstones_per_origin`: an origin's oldest tombstones
    /// were dropped before their horizon.
    Tombstones,
}

impl Limit {
    /// Number of limits (the size of [`LimitHits`]).
    pub const COUNT: usize = 8;

    /// Every limit, in exposition order.
    pub const ALL: [Limit; Limit::COUNT] = [
        Limit::ConnectionsPerSource,
        Limit::Connections,
        Limit::HandshakeTimeout,
        Limit::ClientIdle,
        Limit::SubscriptionsPerConnection,
        Limit::WatchesPerConnection,
        Limit::DepartedRecords,
        Limit::Tombstones,
    ];

    /// The `limit` label of `mpreg_limit_hits_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::ConnectionsPerSource => "connections_per_source",
            Limit::Connections => "connections",
            Limit::HandshakeTimeout => "handshake_timeout",
            Limit::ClientIdle => "client_idle",
            Limit::SubscriptionsPerConnection => "subscriptions_per_connection",
            Limit::WatchesPerConnection => "watches_per_connection",
            Limit::DepartedRecords => "departed_records",
            Limit::Tombstones => "tombstones",
        }
    }

    /// The setting that sets this bound, named in close reasons and errors
    /// so whoever hits it knows what to raise.
    pub fn setting(self) -> &'static str {
        match self {
            Limit::ConnectionsPerSource => "max_connections_per_source",
            Limit::Connections => "max_connections",
            Limit::HandshakeTimeout => "connection_handshake_timeout_seconds",
            Limit::ClientIdle => "client_idle_timeout_seconds",
            Limit::SubscriptionsPerConnection => "client_max_subscriptions_per_connection",
            Limit::WatchesPerConnection => "client_max_watches_per_connection",
            Limit::DepartedRecords => "fabric_max_departed_records",
            Limit::Tombstones => "fabric_max_tombstones_per_origin",
        }
    }

    fn index(self) -> usize {
        match self {
            Limit::ConnectionsPerSource => 0,
            Limit::Connections => 1,
            Limit::HandshakeTimeout => 2,
            Limit::ClientIdle => 3,
            Limit::SubscriptionsPerConnection => 4,
            Limit::WatchesPerConnection => 5,
            Limit::DepartedRecords => 6,
            Limit::Tombstones => 7,
        }
    }
}

/// How often each limit was hit since the process started.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitHits([u64; Limit::COUNT]);

impl LimitHits {
    /// Counts one hit of `limit`.
    pub fn hit(&mut self, limit: Limit) {
        self.add(limit, 1);
    }

    /// Counts `n` hits of `limit`.
    pub fn add(&mut self, limit: Limit, n: u64) {
        let count = &mut self.0[limit.index()];
        *count = count.saturating_add(n);
    }

    /// Hits of `limit` so far.
    pub fn get(&self, limit: Limit) -> u64 {
        self.0[limit.index()]
    }
}

/// The accepted connections of the node, per source address, for
/// `max_connections_per_source` and `max_connections`.
#[derive(Debug, Default)]
pub struct Admission {
    /// Source address of every admitted connection (`None`: the runtime
    /// did not know it; such a connection counts toward the total only).
    by_conn: HashMap<ConnId, Option<IpAddr>>,
    per_source: HashMap<IpAddr, u64>,
}

impl Admission {
    /// Admits `conn` from `source` unless that would exceed `per_source`
    /// connections from the address or `total` accepted connections; the
    /// error names the limit hit. An admitted connection is counted until
    /// [`Admission::release`].
    pub fn admit(
        &mut self,
        conn: ConnId,
        source: Option<IpAddr>,
        per_source: u64,
        total: u64,
    ) -> Result<(), Limit> {
        if self.by_conn.contains_key(&conn) {
            return Ok(());
        }
        if self.by_conn.len() as u64 >= total {
            return Err(Limit::Connections);
        }
        if let Some(ip) = source {
            let n = self.per_source.entry(ip).or_default();
            if *n >= per_source {
                return Err(Limit::ConnectionsPerSource);
            }
            *n += 1;
        }
        self.by_conn.insert(conn, source);
        Ok(())
    }

    /// Forgets a closed connection (nothing if it was never admitted).
    pub fn release(&mut self, conn: ConnId) {
        let Some(Some(ip)) = self.by_conn.remove(&conn) else {
            return;
        };
        if let Some(n) = self.per_source.get_mut(&ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_source.remove(&ip);
            }
        }
    }
}

/// Idle deadlines of client connections (`client_idle_timeout_seconds`).
///
/// Activity only records a time (O(1) per message); the ordered queue
/// holds one deadline per connection and is corrected lazily when that
/// deadline comes due, so a busy connection costs no re-sorting and the
/// node never scans every connection per tick.
#[derive(Debug)]
pub struct IdleClock {
    /// `None`: idle connections are never closed.
    timeout: Option<Duration>,
    /// Per connection: (last activity, deadline queued for it).
    conns: HashMap<ConnId, (Instant, Instant)>,
    queue: BTreeSet<(Instant, ConnId)>,
}

impl IdleClock {
    /// A clock closing connections idle for `timeout_seconds` (`0`: never).
    pub fn new(timeout_seconds: f64) -> Self {
        let timeout = (timeout_seconds > 0.0).then(|| crate::time::secs(timeout_seconds));
        IdleClock {
            timeout,
            conns: HashMap::new(),
            queue: BTreeSet::new(),
        }
    }

    /// Starts timing a new connection at `now`.
    pub fn track(&mut self, conn: ConnId, now: Instant) {
        let Some(timeout) = self.timeout else {
            return;
        };
        self.forget(conn);
        let at = now + timeout;
        self.conns.insert(conn, (now, at));
        self.queue.insert((at, conn));
    }

    /// Records activity on `conn` at `now`.
    pub fn touch(&mut self, conn: ConnId, now: Instant) {
        if let Some((last, _)) = self.conns.get_mut(&conn) {
            *last = (*last).max(now);
        }
    }

    /// Stops timing `conn`.
    pub fn forget(&mut self, conn: ConnId) {
        if let Some((_, at)) = self.conns.remove(&conn) {
            self.queue.remove(&(at, conn));
        }
    }

    /// The earliest queued deadline (possibly early: a deadline whose
    /// connection was active since is pushed back when it comes due).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue.first().map(|(at, _)| *at)
    }

    /// The connections idle for the whole timeout at `now`. They stay
    /// tracked without a deadline: the caller either closes them (and
    /// [`IdleClock::forget`]s them) or keeps them with
    /// [`IdleClock::track`].
    pub fn due(&mut self, now: Instant) -> Vec<ConnId> {
        let Some(timeout) = self.timeout else {
            return Vec::new();
        };
        let mut idle = Vec::new();
        while let Some(&(at, conn)) = self.queue.first() {
            if at > now {
                break;
            }
            self.queue.pop_first();
            let Some((last, queued)) = self.conns.get_mut(&conn) else {
                continue;
            };
            let real = *last + timeout;
            if real > now {
                *queued = real;
                self.queue.insert((real, conn));
            } else {
                idle.push(conn);
            }
        }
        idle
    }
}

/// At most one log line per [`LogBudget::PERIOD`] for a flood of the same
/// refusal (connections over a limit, peers failing authentication): an
/// attacker opening connections as fast as it can must not also fill the
/// disk with log lines. Every refusal is still counted in the metrics; the
/// line that gets through says how many were left out since the last one.
#[derive(Debug, Clone, Default)]
pub struct LogBudget {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogBudget {
    /// Minimum time between two lines.
    pub const PERIOD: Duration = Duration::from_secs(1);

    /// `Some(n)` when a line may be logged now, `n` being the lines left
    /// out since the last one; `None` (and one more left out) otherwise.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.saturating_duration_since(t) < Self::PERIOD => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// `line`, plus how many like it were left out, for a [`LogBudget`] line.
pub fn with_suppressed(line: String, suppressed: u64) -> String {
    if suppressed == 0 {
        line
    } else {
        format!("{line} ({suppressed} more like it since the last report)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(last: u8) -> Option<IpAddr> {
        Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
    }

    fn at(secs: u64) -> Instant {
        Instant::from_nanos(secs * 1_000_000_000)
    }

    #[test]
    fn per_source_limit_refuses_only_that_source_until_one_closes() {
        let mut a = Admission::default();
        assert_eq!(a.admit(1, ip(1), 2, 100), Ok(()));
        assert_eq!(a.admit(2, ip(1), 2, 100), Ok(()));
        assert_eq!(a.admit(3, ip(1), 2, 100), Err(Limit::ConnectionsPerSource));
        // Another address has its own budget.
        assert_eq!(a.admit(4, ip(2), 2, 100), Ok(()));
        // A refused connection was never counted: releasing it frees no slot.
        a.release(3);
        assert_eq!(a.admit(5, ip(1), 2, 100), Err(Limit::ConnectionsPerSource));
        a.release(1);
        assert_eq!(a.admit(5, ip(1), 2, 100), Ok(()));
    }

    #[test]
    fn total_limit_counts_connections_without_an_address() {
        let mut a = Admission::default();
        assert_eq!(a.admit(1, None, 1, 2), Ok(()));
        assert_eq!(a.admit(2, ip(1), 1, 2), Ok(()));
        assert_eq!(a.admit(3, ip(2), 1, 2), Err(Limit::Connections));
        a.release(1);
        assert_eq!(a.admit(3, ip(2), 1, 2), Ok(()));
        assert_eq!(a.admit(4, ip(3), 1, 2), Err(Limit::Connections));
    }

    #[test]
    fn idle_clock_fires_once_for_quiet_connections_only() {
        let mut c = IdleClock::new(10.0);
        c.track(1, at(0));
        c.track(2, at(0));
        assert_eq!(c.next_deadline(), Some(at(10)));
        c.touch(2, at(6));
        assert!(c.due(at(9)).is_empty());
        assert_eq!(c.due(at(10)), vec![1]);
        // 2 was active at 6: its deadline moved to 16, not earlier.
        assert_eq!(c.next_deadline(), Some(at(16)));
        assert!(c.due(at(15)).is_empty());
        c.forget(1);
        assert_eq!(c.due(at(16)), vec![2]);
        // Kept alive (a live subscription): timed again from now.
        c.track(2, at(16));
        assert_eq!(c.next_deadline(), Some(at(26)));
        c.forget(2);
        assert_eq!(c.next_deadline(), None);
    }

    #[test]
    fn zero_timeout_never_fires() {
        let mut c = IdleClock::new(0.0);
        c.track(1, at(0));
        assert_eq!(c.next_deadline(), None);
        assert!(c.due(at(1_000_000)).is_empty());
    }

    #[test]
    fn hits_are_counted_per_limit() {
        let mut h = LimitHits::default();
        h.hit(Limit::ClientIdle);
        h.add(Limit::ClientIdle, 2);
        assert_eq!(h.get(Limit::ClientIdle), 3);
        assert_eq!(h.get(Limit::Connections), 0);
        let labels: BTreeSet<&str> = Limit::ALL.iter().map(|l| l.as_str()).collect();
        assert_eq!(labels.len(), Limit::COUNT);
        for (i, l) in Limit::ALL.iter().enumerate() {
            assert_eq!(l.index(), i);
        }
    }

    #[test]
    fn a_log_budget_lets_one_line_a_second_through_and_counts_the_rest() {
        let t0 = Instant::from_nanos(1_000_000_000);
        let mut b = LogBudget::default();
        assert_eq!(b.allow(t0), Some(0));
        for _ in 0..99 {
            assert_eq!(b.allow(t0 + Duration::from_millis(500)), None);
        }
        assert_eq!(b.allow(t0 + Duration::from_secs(1)), Some(99));
        assert_eq!(b.allow(t0 + Duration::from_secs(3)), Some(0));
        assert_eq!(with_suppressed("x".into(), 0), "x");
        assert_eq!(
            with_suppressed("x".into(), 99),
            "x (99 more like it since the last report)"
        );
    }
}
