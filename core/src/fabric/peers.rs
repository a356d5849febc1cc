//! Per-peer runtime records and the `list_peers` gating rule
//! (`reference/fabric.md` §1.8, §4).
//!
//! We age statuses on the *local* monotonic clock (the time we received a
//! STATUS or saw the last connection drop), not on the sender's wall clock as
//! MPREG does, so clock skew between hosts cannot shift the gating windows.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::io::ConnId;
use crate::time::Instant;
use crate::wire::fabric::{Beat, Status};

/// What we know about a peer's liveness.
#[derive(Debug, Clone, PartialEq)]
pub enum Liveness {
    /// Last STATUS said `ok`, received at `at`.
    Ok {
        /// Local receipt time.
        at: Instant,
    },
    /// Every connection to it dropped; first observed at `since`.
    Disconnected {
        /// Local time of the first disconnect observation (kept across
        /// repeated demotions so the status ages continuously).
        since: Instant,
    },
}

/// One peer, keyed by node id.
#[derive(Debug, Clone, Default)]
pub struct PeerRecord {
    /// The last STATUS received (payload as sent).
    pub status: Option<Status>,
    /// Liveness derived from STATUS and connection events.
    pub liveness: Option<Liveness>,
    /// Wall time of the last STATUS or disconnect (for `status_timestamp`).
    pub status_wall: Option<f64>,
    /// Open fabric connections identified as this peer.
    pub conns: BTreeSet<ConnId>,
}

/// All peer records.
#[derive(Debug, Default)]
pub struct PeerTable {
    peers: BTreeMap<String, PeerRecord>,
}

impl PeerTable {
    /// Records a STATUS from `node_id`.
    pub fn on_status(&mut self, status: Status, now: Instant, wall: f64) {
        let rec = self.peers.entry(status.node_id.clone()).or_default();
        rec.liveness = Some(Liveness::Ok { at: now });
        rec.status_wall = Some(wall);
        rec.status = Some(status);
    }

    /// Records a beat from `node_id`: the same liveness as a STATUS, applied
    /// to the last full STATUS. False when no STATUS is known (a beat that
    /// arrived first, which a conforming peer never sends).
    pub fn on_beat(&mut self, node_id: &str, beat: Beat, now: Instant, wall: f64) -> bool {
        let Some(rec) = self.peers.get_mut(node_id) else {
            return false;
        };
        let Some(status) = rec.status.as_mut() else {
            return false;
        };
        status.apply_beat(beat);
        rec.liveness = Some(Liveness::Ok { at: now });
        rec.status_wall = Some(wall);
        true
    }

    /// A fabric connection was identified as `node_id`.
    pub fn on_conn(&mut self, node_id: &str, conn: ConnId) {
        self.peers
            .entry(node_id.to_string())
            .or_default()
            .conns
            .insert(conn);
    }

    /// A connection of `node_id` closed; demotes it to disconnected when it
    /// was the last one.
    pub fn on_conn_closed(&mut self, node_id: &str, conn: ConnId, now: Instant, wall: f64) {
        if let Some(rec) = self.peers.get_mut(node_id) {
            rec.conns.remove(&conn);
            if rec.conns.is_empty() && rec.status.is_some() {
                if !matches!(rec.liveness, Some(Liveness::Disconnected { .. })) {
                    rec.liveness = Some(Liveness::Disconnected { since: now });
                    rec.status_wall = Some(wall);
                }
                if let Some(s) = rec.status.as_mut() {
                    s.status = "disconnected".into();
                    s.advertised_urls.clear();
                }
            }
        }
    }

    /// A dial to `node_id` failed: without any open connection it counts as
    /// disconnected from now (or from its earlier disconnect).
    pub fn on_dial_failed(&mut self, node_id: &str, now: Instant, wall: f64) {
        let rec = self.peers.entry(node_id.to_string()).or_default();
        if rec.conns.is_empty() && !matches!(rec.liveness, Some(Liveness::Disconnected { .. })) {
            rec.liveness = Some(Liveness::Disconnected { since: now });
            rec.status_wall = Some(wall);
            if let Some(s) = rec.status.as_mut() {
                s.status = "disconnected".into();
                s.advertised_urls.clear();
            }
        }
    }

    /// Forgets a peer entirely (it departed).
    pub fn remove(&mut self, node_id: &str) -> Option<PeerRecord> {
        self.peers.remove(node_id)
    }

    /// The record of one peer.
    pub fn get(&self, node_id: &str) -> Option<&PeerRecord> {
        self.peers.get(node_id)
    }

    /// True when some open connection is identified as `node_id`.
    pub fn is_connected(&self, node_id: &str) -> bool {
        self.peers.get(node_id).is_some_and(|r| !r.conns.is_empty())
    }

    /// Every peer with at least one open connection, with one connection each
    /// (the lowest id, so choices are deterministic).
    pub fn connected(&self) -> impl Iterator<Item = (&str, ConnId)> {
        self.peers
            .iter()
            .filter_map(|(id, r)| r.conns.first().map(|c| (id.as_str(), *c)))
    }
}

/// MPREG's snapshot gating (`fabric.md` §4.1): whether a peer that has no
/// live connection has been quiet long enough to leave `list_peers`.
///
/// `hint` is the expected number of peers (the peer target count).
pub fn exclude_disconnected(
    rec: Option<&PeerRecord>,
    now: Instant,
    gossip_interval: f64,
    hint: usize,
) -> bool {
    let Some(rec) = rec else { return false };
    if !rec.conns.is_empty() {
        return false;
    }
    let gi = if gossip_interval.is_finite() && gossip_interval > 0.0 {
        gossip_interval
    } else {
        5.0
    };
    let stale_after = (gi * 4.0f64.max((hint as f64).sqrt())).max(1.0);
    match rec.liveness {
        None => false,
        Some(Liveness::Disconnected { since }) => {
            now.saturating_duration_since(since) >= Duration::from_secs_f64(stale_after)
        }
        Some(Liveness::Ok { at }) => {
            hint <= 20
                && now.saturating_duration_since(at)
                    >= Duration::from_secs_f64((3.0 * stale_after).max(6.0 * gi).max(2.0))
        }
    }
}

/// MPREG's `stale_after` for load staleness: `max(3 × gossip_interval, 1 s)`.
pub fn load_stale_after(gossip_interval: f64) -> f64 {
    (3.0 * gossip_interval).max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(node: &str) -> Status {
        Status {
            node_id: node.into(),
            cluster_id: "c".into(),
            instance_id: "i".into(),
            timestamp: 0.0,
            status: "ok".into(),
            active_clients: 0,
            peer_count: 1,
            funs: vec![],
            locs: vec![],
            advertised_urls: vec![node.into()],
            region: "local".into(),
            metrics: Default::default(),
        }
    }

    fn at(secs: f64) -> Instant {
        Instant::ZERO + Duration::from_secs_f64(secs)
    }

    #[test]
    fn worked_values_from_the_churn_test() {
        // fabric.md §4.2: gi 0.3, hint 12 → stale_after 1.2 s, stale-ok 3.6 s.
        let mut t = PeerTable::default();
        t.on_status(status("p"), at(0.0), 0.0);
        let rec = t.get("p");
        assert!(!exclude_disconnected(rec, at(3.5), 0.3, 12));
        assert!(exclude_disconnected(rec, at(3.6), 0.3, 12));
        // With hint > 20, an "ok" status never ages out by itself.
        assert!(!exclude_disconnected(rec, at(1000.0), 0.3, 30));

        t.on_conn("p", 7);
        t.on_conn_closed("p", 7, at(10.0), 10.0);
        let rec = t.get("p");
        assert!(!exclude_disconnected(rec, at(11.1), 0.3, 12));
        assert!(exclude_disconnected(rec, at(11.2), 0.3, 12));
    }

    #[test]
    fn a_beat_refreshes_liveness_and_load_of_the_last_status() {
        let mut t = PeerTable::default();
        let mut beat = status("p").beat();
        beat.active_clients = 9;
        assert!(!t.on_beat("p", beat.clone(), at(0.5), 0.5), "no STATUS yet");
        assert!(t.get("p").is_none());

        t.on_status(status("p"), at(0.0), 0.0);
        assert!(t.on_beat("p", beat, at(3.0), 3.0));
        let rec = t.get("p").unwrap();
        assert_eq!(rec.liveness, Some(Liveness::Ok { at: at(3.0) }));
        assert_eq!(rec.status_wall, Some(3.0));
        let s = rec.status.as_ref().unwrap();
        assert_eq!((s.active_clients, s.advertised_urls.len()), (9, 1));
        // Fresh from the beat: 3.6 s of quiet after it, not after the STATUS.
        assert!(!exclude_disconnected(Some(rec), at(6.5), 0.3, 12));
        assert!(exclude_disconnected(Some(rec), at(6.6), 0.3, 12));
    }

    #[test]
    fn live_connection_or_no_status_is_always_listed() {
        let mut t = PeerTable::default();
        assert!(!exclude_disconnected(None, at(100.0), 1.0, 3));
        t.on_status(status("p"), at(0.0), 0.0);
        t.on_conn("p", 1);
        assert!(!exclude_disconnected(t.get("p"), at(1e6), 1.0, 3));
        assert!(t.is_connected("p"));
        assert_eq!(t.connected().collect::<Vec<_>>(), vec![("p", 1)]);
    }

    #[test]
    fn failed_dial_demotes_a_peer_that_never_connected() {
        let mut t = PeerTable::default();
        t.on_dial_failed("p", at(1.0), 1.0);
        assert!(!exclude_disconnected(t.get("p"), at(2.0), 0.3, 3));
        assert!(exclude_disconnected(t.get("p"), at(2.2), 0.3, 3));
        // A later connection lists it again.
        t.on_conn("p", 4);
        assert!(!exclude_disconnected(t.get("p"), at(100.0), 0.3, 3));
        t.on_dial_failed("p", at(101.0), 101.0);
        assert!(
            !exclude_disconnected(t.get("p"), at(200.0), 0.3, 3),
            "connected peers are never demoted"
        );
    }

    #[test]
    fn disconnect_time_is_kept_across_repeated_demotions() {
        let mut t = PeerTable::default();
        t.on_status(status("p"), at(0.0), 0.0);
        t.on_conn("p", 1);
        t.on_conn("p", 2);
        t.on_conn_closed("p", 1, at(1.0), 1.0);
        assert!(t.is_connected("p"));
        t.on_conn_closed("p", 2, at(2.0), 2.0);
        t.on_conn("p", 3);
        t.on_conn_closed("p", 3, at(5.0), 5.0);
        assert_eq!(
            t.get("p").unwrap().liveness,
            Some(Liveness::Disconnected { since: at(2.0) })
        );
        assert_eq!(
            t.get("p").unwrap().status.as_ref().unwrap().status,
            "disconnected"
        );
    }
}
