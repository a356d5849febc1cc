//! Per-connection state of catalog watchers: the filter of each
//! `catalog_watch` request, the delivery budget, and resync hints.
//!
//! **Filters.** `catalog_watch` only names a topic; the client subscribes
//! to it afterwards. The node remembers, per connection and topic, the
//! filter of the last `catalog_watch` request naming that topic
//! ([`WatchDelivery::set_filter`]), and applies it to every delta it
//! delivers to that connection on that topic (scope, cluster, node limit,
//! namespace), so a watcher never receives an entry its request excludes.
//! A subscriber that did not call `catalog_watch` gets the topic's
//! namespace-filtered delta, as in MPREG.
//!
//! **Memory per slow subscriber** is bounded in two layers:
//! 1. here, in the node: each connection may receive at most
//!    [`MAX_NOTIFICATIONS_PER_WINDOW`] delta notifications and
//!    [`MAX_BYTES_PER_WINDOW`] bytes of them per [`WINDOW`]. Deltas past
//!    that budget are not queued: they are dropped and counted per
//!    subscription, and when the window ends the subscription receives one
//!    explicit resync hint (headers `{"event": "discovery.resync"}`, see
//!    [`resync_message`]) telling it how many deltas it missed, so it
//!    re-reads the catalog with `catalog_query` instead of silently
//!    diverging. The budget lies below the runtimes' write bounds, so a
//!    subscriber that merely reads slower than a burst is told it missed
//!    deltas before it is disconnected.
//! 2. in the runtime: each connection's write queue is bounded (tokio:
//!    `WRITE_QUEUE_FRAMES` frames, mio: `WRITE_BUFFER_BYTES`); a client that
//!    does not read at all is disconnected when it fills, which also drops
//!    its subscriptions and watch state.
//!
//! Notifications are at most a few hundred entries each (the node splits
//! large changes), so one notification cannot blow either bound.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::watch::{WatchFilter, DELTA_TOPIC};
use crate::identity::Viewer;
use crate::io::ConnId;
use crate::time::{Instant, Now};
use crate::wire::client::PubSubMessage;

/// Length of one delivery budget window.
pub const WINDOW: Duration = Duration::from_secs(1);

/// Delta notifications one connection may receive per [`WINDOW`]: half the
/// tokio runtime's 4096-frame write queue, so a burst is cut (with a resync
/// hint) before the runtime has to drop the connection.
pub const MAX_NOTIFICATIONS_PER_WINDOW: u32 = 2048;

/// Bytes of delta notifications one connection may receive per [`WINDOW`]:
/// half the mio runtime's 16 MiB write buffer.
pub const MAX_BYTES_PER_WINDOW: usize = 8 << 20;

/// The `event` header (and payload field) of a resync hint.
pub const RESYNC_EVENT: &str = "discovery.resync";

/// Deltas a subscription missed in the current window.
#[derive(Debug, Clone, PartialEq)]
pub struct Missed {
    /// Topic of the first missed delta.
    pub topic: String,
    /// How many deltas were dropped.
    pub count: u64,
    /// Wall time of the first drop.
    pub since: f64,
}

#[derive(Debug, Default)]
struct ConnWatch {
    filters: BTreeMap<String, WatchFilter>,
    /// The viewer of the connection's latest `catalog_watch` (its tenant
    /// may come from the request, where the settings allow that).
    viewer: Option<Viewer>,
    window_start: Option<Instant>,
    sent: u32,
    bytes: usize,
    /// Subscription id → what it missed.
    missed: BTreeMap<String, Missed>,
}

impl ConnWatch {
    fn window_over(&self, now: Instant) -> bool {
        self.window_start
            .is_none_or(|s| now.saturating_duration_since(s) >= WINDOW)
    }
}

/// Watch state of every client connection.
#[derive(Debug, Default)]
pub struct WatchDelivery {
    conns: HashMap<ConnId, ConnWatch>,
}

impl WatchDelivery {
    /// Whether `conn` may watch `topic` while holding at most `max`
    /// watched topics (`client_max_watches_per_connection`): a topic it
    /// already watches is always allowed (the new filter replaces the old).
    pub fn may_watch(&self, conn: ConnId, topic: &str, max: usize) -> bool {
        self.conns
            .get(&conn)
            .is_none_or(|w| w.filters.len() < max || w.filters.contains_key(topic))
    }

    /// Whether `conn` watches anything (it is waiting for deliveries, so it
    /// is not idle).
    pub fn has_conn(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_some_and(|w| !w.filters.is_empty())
    }

    /// Remembers the filter of a `catalog_watch` made on `conn`, for the
    /// topic it names (replacing an earlier one for the same topic). The
    /// caller checks [`WatchDelivery::may_watch`] first.
    pub fn set_filter(&mut self, conn: ConnId, filter: WatchFilter) {
        let w = self.conns.entry(conn).or_default();
        w.filters.insert(filter.topic(), filter);
    }

    /// Remembers the viewer of a `catalog_watch` made on `conn`: deliveries
    /// to the connection are policy-checked for it, per entry.
    pub fn set_viewer(&mut self, conn: ConnId, viewer: Viewer) {
        self.conns.entry(conn).or_default().viewer = Some(viewer);
    }

    /// The viewer set by [`WatchDelivery::set_viewer`], if any.
    pub fn viewer(&self, conn: ConnId) -> Option<&Viewer> {
        self.conns.get(&conn)?.viewer.as_ref()
    }

    /// The filter of deliveries on delta `topic` to `conn`: its
    /// `catalog_watch` filter for the topic, else the topic's namespace.
    pub fn filter_for(&self, conn: ConnId, topic: &str) -> WatchFilter {
        if let Some(f) = self.conns.get(&conn).and_then(|w| w.filters.get(topic)) {
            return f.clone();
        }
        match topic.strip_prefix(DELTA_TOPIC) {
            Some(rest) if !rest.is_empty() => {
                WatchFilter::namespace(rest.strip_prefix('.').unwrap_or(rest))
            }
            _ => WatchFilter::all(),
        }
    }

    /// The filter that applies to deliveries on `topic` to `conn`, when it
    /// narrows more than the topic's own namespace does (`None`: deliver the
    /// topic's shared payload).
    pub fn narrowing_filter(&self, conn: ConnId, topic: &str) -> Option<&WatchFilter> {
        let f = self.conns.get(&conn)?.filters.get(topic)?;
        let plain = match topic.strip_prefix(DELTA_TOPIC) {
            Some("") => WatchFilter::all(),
            Some(rest) => WatchFilter::namespace(rest.strip_prefix('.').unwrap_or(rest)),
            None => return Some(f),
        };
        (*f != plain).then_some(f)
    }

    /// Whether a delta notification of `bytes` bytes for subscription
    /// `sub_id` may be sent to `conn` now. When not, it is counted as
    /// missed. Call [`WatchDelivery::due_resyncs`] first, so a resync hint
    /// of an ended window goes out before newer deltas.
    pub fn admit(
        &mut self,
        conn: ConnId,
        sub_id: &str,
        topic: &str,
        bytes: usize,
        now: Now,
    ) -> bool {
        let w = self.conns.entry(conn).or_default();
        if w.window_over(now.mono) {
            w.window_start = Some(now.mono);
            w.sent = 0;
            w.bytes = 0;
        }
        let over = w.sent >= MAX_NOTIFICATIONS_PER_WINDOW
            || w.bytes.saturating_add(bytes) > MAX_BYTES_PER_WINDOW
            || w.missed.contains_key(sub_id);
        if over {
            let m = w
                .missed
                .entry(sub_id.to_string())
                .or_insert_with(|| Missed {
                    topic: topic.to_string(),
                    count: 0,
                    since: now.wall,
                });
            m.count += 1;
            return false;
        }
        w.sent += 1;
        w.bytes = w.bytes.saturating_add(bytes);
        true
    }

    /// The resync hints due at `now`: `(connection, subscription id, what
    /// it missed)` for every subscription that missed deltas in a window
    /// that has ended. Each is returned once.
    pub fn due_resyncs(&mut self, now: Instant) -> Vec<(ConnId, String, Missed)> {
        let mut out = Vec::new();
        for (conn, w) in self.conns.iter_mut() {
            if w.missed.is_empty() || !w.window_over(now) {
                continue;
            }
            for (sub, m) in std::mem::take(&mut w.missed) {
                out.push((*conn, sub, m));
            }
        }
        out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        out
    }

    /// When the earliest pending resync hint is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .values()
            .filter(|w| !w.missed.is_empty())
            .filter_map(|w| w.window_start.map(|s| s + WINDOW))
            .min()
    }

    /// Forgets a closed connection.
    pub fn drop_conn(&mut self, conn: ConnId) {
        self.conns.remove(&conn);
    }
}

/// The resync hint for a subscription that missed deltas: published on the
/// topic it missed them on, headers `{"event": "discovery.resync",
/// "cluster_id"}`, payload `{event, reason, missed, since, topic,
/// source_node, source_cluster, published_at, hint}`.
pub fn resync_message(
    missed: &Missed,
    node_id: &str,
    cluster_id: &str,
    message_id: String,
    now: Now,
) -> PubSubMessage {
    let mut headers = Map::new();
    headers.insert("event".into(), json!(RESYNC_EVENT));
    headers.insert("cluster_id".into(), json!(cluster_id));
    let payload: Value = json!({
        "event": RESYNC_EVENT,
        "reason": "subscriber_too_slow",
        "missed": missed.count,
        "since": missed.since,
        "topic": missed.topic,
        "source_node": node_id,
        "source_cluster": cluster_id,
        "published_at": now.wall,
        "hint": "catalog deltas were dropped for this subscription; re-read the catalog with catalog_query, then apply deltas from here on",
    });
    PubSubMessage {
        topic: missed.topic.clone(),
        payload,
        timestamp: now.wall,
        message_id,
        publisher: node_id.to_string(),
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Identity;

    fn now(ms: u64) -> Now {
        Now::new(
            Instant::from_nanos(ms * 1_000_000),
            1000.0 + ms as f64 / 1000.0,
        )
    }

    #[test]
    fn budget_cuts_a_burst_and_hints_once_per_window() {
        let mut d = WatchDelivery::default();
        for _ in 0..MAX_NOTIFICATIONS_PER_WINDOW {
            assert!(d.admit(1, "s", DELTA_TOPIC, 10, now(0)));
        }
        assert!(!d.admit(1, "s", DELTA_TOPIC, 10, now(10)));
        assert!(!d.admit(1, "s", DELTA_TOPIC, 10, now(20)));
        // Another connection has its own budget.
        assert!(d.admit(2, "s", DELTA_TOPIC, 10, now(20)));
        assert_eq!(d.next_deadline(), Some(now(0).mono + WINDOW));
        assert!(d.due_resyncs(now(999).mono).is_empty());
        let due = d.due_resyncs(now(1000).mono);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].0, 1);
        assert_eq!(due[0].2.count, 2);
        assert_eq!(due[0].2.since, now(10).wall);
        assert!(d.due_resyncs(now(2000).mono).is_empty());
        assert_eq!(d.next_deadline(), None);
        // The next window admits again.
        assert!(d.admit(1, "s", DELTA_TOPIC, 10, now(1000)));
    }

    #[test]
    fn byte_budget_and_a_missing_subscription_stays_cut_for_the_window() {
        let mut d = WatchDelivery::default();
        assert!(d.admit(1, "a", DELTA_TOPIC, MAX_BYTES_PER_WINDOW - 5, now(0)));
        assert!(!d.admit(1, "a", DELTA_TOPIC, 10, now(1)));
        // Small enough, but "a" already missed one: later deltas would be
        // out of order for it, so they are dropped too until the hint.
        assert!(!d.admit(1, "a", DELTA_TOPIC, 1, now(2)));
        assert!(d.admit(1, "b", DELTA_TOPIC, 1, now(2)));
        let due = d.due_resyncs(now(1500).mono);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].2.count, 2);
        let msg = resync_message(&due[0].2, "ws://n:1", "c1", "m1".into(), now(1500));
        assert_eq!(msg.headers["event"], RESYNC_EVENT);
        assert_eq!(msg.payload["missed"], 2);
        assert_eq!(msg.topic, DELTA_TOPIC);
    }

    #[test]
    fn filters_narrow_only_when_they_add_something() {
        let me = Identity {
            node_id: "ws://n:1".into(),
            cluster_id: "c1".into(),
            instance_id: "i".into(),
            started_at: 0.0,
        };
        let mut d = WatchDelivery::default();
        let ns_only = serde_json::json!({"namespace": "svc.market.*"});
        let f = WatchFilter::from_request(&me, ns_only.as_object().unwrap()).unwrap();
        d.set_filter(1, f);
        assert!(d
            .narrowing_filter(1, "mpreg.discovery.delta.svc.market")
            .is_none());
        let zone = serde_json::json!({"namespace": "svc.market", "scope": "zone"});
        let f = WatchFilter::from_request(&me, zone.as_object().unwrap()).unwrap();
        d.set_filter(1, f.clone());
        assert_eq!(
            d.narrowing_filter(1, "mpreg.discovery.delta.svc.market"),
            Some(&f)
        );
        assert!(d
            .narrowing_filter(2, "mpreg.discovery.delta.svc.market")
            .is_none());
        let root = WatchFilter::from_request(&me, &Map::new()).unwrap();
        d.set_filter(1, root);
        assert!(d.narrowing_filter(1, DELTA_TOPIC).is_none());
        d.drop_conn(1);
        assert!(d
            .narrowing_filter(1, "mpreg.discovery.delta.svc.market")
            .is_none());
    }
}
