//! Bounded audit rings: the discovery access audit (denials of discovery
//! requests, `discovery_logic.md` §5.3) and the generic [`AuditRing`] the
//! namespace-policy audit also uses.
//!
//! Only **denials** are recorded, as MPREG records them: request-level policy
//! denials of `catalog_query`, `cluster_map_v2`, `catalog_watch`,
//! `summary_query`, `summary_watch`, `namespace_status`, `rpc_describe`
//! (local) and every rate-limited request (reason `rate_limited`).
//!
//! Reading is where we differ from MPREG: its `limit = 0` (and a missing or
//! negative limit) returns the whole ring. Ours cannot return everything by
//! accident: no limit means [`DEFAULT_AUDIT_LIMIT`] entries, `0` means none and a
//! negative limit is a request error (see [`crate::policy::rpc`]).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::catalog::namespace::NamespaceFilter;
use crate::config::Settings;
use crate::identity::Viewer;

/// Entries an audit read returns when the request names no `limit`.
pub const DEFAULT_AUDIT_LIMIT: usize = 100;

/// A bounded ring of audit entries, oldest first. Pushing into a full ring
/// drops the oldest entry; a ring of capacity 0 keeps nothing (but still
/// counts what it was given).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRing<T> {
    capacity: usize,
    entries: VecDeque<T>,
    recorded: u64,
}

impl<T> AuditRing<T> {
    /// An empty ring holding at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        AuditRing {
            capacity,
            entries: VecDeque::new(),
            recorded: 0,
        }
    }

    /// Maximum entries kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Changes the capacity, dropping the oldest entries that no longer fit.
    pub fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        while self.entries.len() > capacity {
            self.entries.pop_front();
        }
    }

    /// Appends an entry, evicting the oldest when full.
    pub fn push(&mut self, entry: T) {
        self.recorded = self.recorded.saturating_add(1);
        if self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// Entries currently held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries ever pushed (including those evicted or never kept).
    pub fn recorded_total(&self) -> u64 {
        self.recorded
    }

    /// All held entries, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator {
        self.entries.iter()
    }

    /// The newest `limit` entries, oldest first.
    pub fn last(&self, limit: usize) -> impl DoubleEndedIterator<Item = &T> + ExactSizeIterator {
        let skip = self.entries.len().saturating_sub(limit);
        self.entries.range(skip..)
    }

    /// The newest `limit` entries for which `keep` holds, oldest first.
    pub fn last_matching(&self, limit: usize, mut keep: impl FnMut(&T) -> bool) -> Vec<&T> {
        let mut picked: Vec<&T> = self
            .entries
            .iter()
            .rev()
            .filter(|e| keep(e))
            .take(limit)
            .collect();
        picked.reverse();
        picked
    }
}

/// One access-audit entry, in MPREG's wire shape:
/// `{event, timestamp, viewer_cluster_id, viewer_tenant_id?, namespace?, allowed, reason}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessAuditEntry {
    /// The command that was denied (`catalog_query`, `summary_watch`, ...).
    pub event: String,
    /// Wall time of the denial, Unix seconds.
    pub timestamp: f64,
    /// Effective viewer cluster.
    pub viewer_cluster_id: String,
    /// Effective viewer tenant, when one applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub viewer_tenant_id: Option<String>,
    /// The request-level namespace, when the request named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Always `false`: only denials are recorded.
    pub allowed: bool,
    /// The decision reason (`viewer_denied`, `no_policy`, `rate_limited`, ...).
    pub reason: String,
    /// Ours: the refused fabric peer (its node id, dialled URL or address)
    /// for `fabric_auth` entries; absent on request denials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
}

/// Which entries a `discovery_access_audit` read wants (ours; MPREG only has
/// `limit`). Every set field must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccessAuditFilter {
    /// Exact command name.
    pub event: Option<String>,
    /// Dot-boundary namespace subtree (`svc.prod` or `svc.prod.*`); entries
    /// without a namespace never match a set filter.
    pub namespace: Option<NamespaceFilter>,
    /// Exact viewer cluster.
    pub viewer_cluster_id: Option<String>,
    /// Exact viewer tenant.
    pub viewer_tenant_id: Option<String>,
    /// Exact reason.
    pub reason: Option<String>,
    /// Only entries with `timestamp >= since`.
    pub since: Option<f64>,
}

impl AccessAuditFilter {
    /// Whether `entry` passes every set field.
    pub fn matches(&self, entry: &AccessAuditEntry) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.event, &entry.event)
            && eq(&self.viewer_cluster_id, &entry.viewer_cluster_id)
            && eq(&self.reason, &entry.reason)
            && self
                .viewer_tenant_id
                .as_deref()
                .is_none_or(|w| entry.viewer_tenant_id.as_deref() == Some(w))
            && self
                .namespace
                .as_ref()
                .is_none_or(|f| entry.namespace.as_deref().is_some_and(|ns| f.matches(ns)))
            && self.since.is_none_or(|t| entry.timestamp >= t)
    }
}

/// The discovery access audit: a ring of `discovery_access_audit_max_entries`
/// denials.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessAudit {
    ring: AuditRing<AccessAuditEntry>,
}

impl AccessAudit {
    /// A ring of `max_entries` (negative means 0, as MPREG normalises it).
    pub fn new(max_entries: i64) -> Self {
        AccessAudit {
            ring: AuditRing::new(capacity_of(max_entries)),
        }
    }

    /// A ring sized by `discovery_access_audit_max_entries`.
    pub fn from_settings(settings: &Settings) -> Self {
        AccessAudit::new(settings.discovery_access_audit_max_entries)
    }

    /// Resizes the ring (settings reload), keeping the newest entries.
    pub fn resize(&mut self, max_entries: i64) {
        self.ring.set_capacity(capacity_of(max_entries));
    }

    /// Records a denial of `event` for `viewer`. An empty namespace is
    /// recorded as none.
    pub fn record_denial(
        &mut self,
        event: &str,
        viewer: &Viewer,
        namespace: Option<&str>,
        reason: &str,
        now_wall: f64,
    ) {
        self.ring.push(AccessAuditEntry {
            event: event.to_string(),
            timestamp: now_wall,
            viewer_cluster_id: viewer.cluster.clone(),
            viewer_tenant_id: viewer.tenant.clone(),
            namespace: namespace
                .map(str::trim)
                .filter(|ns| !ns.is_empty())
                .map(str::to_string),
            allowed: false,
            reason: reason.to_string(),
            peer: None,
        });
    }

    /// Records a fabric peer refused by authentication: `peer` names it,
    /// `cluster` is the cluster its Hello claimed (empty when it sent none).
    pub fn record_peer_refusal(
        &mut self,
        event: &str,
        peer: &str,
        cluster: &str,
        reason: &str,
        now_wall: f64,
    ) {
        self.ring.push(AccessAuditEntry {
            event: event.to_string(),
            timestamp: now_wall,
            viewer_cluster_id: cluster.to_string(),
            viewer_tenant_id: None,
            namespace: None,
            allowed: false,
            reason: reason.to_string(),
            peer: Some(peer.to_string()),
        });
    }

    /// The underlying ring (for `len`, `recorded_total`, iteration).
    pub fn ring(&self) -> &AuditRing<AccessAuditEntry> {
        &self.ring
    }

    /// The newest `limit` entries passing `filter`, oldest first.
    pub fn query(&self, filter: &AccessAuditFilter, limit: usize) -> Vec<&AccessAuditEntry> {
        self.ring.last_matching(limit, |e| filter.matches(e))
    }
}

fn capacity_of(max_entries: i64) -> usize {
    usize::try_from(max_entries.max(0)).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn viewer(cluster: &str, tenant: Option<&str>) -> Viewer {
        Viewer::new(cluster, tenant.map(str::to_string))
    }

    #[test]
    fn ring_is_bounded_and_keeps_the_newest() {
        let mut ring = AuditRing::new(3);
        for i in 0..5 {
            ring.push(i);
        }
        assert_eq!(ring.iter().copied().collect::<Vec<_>>(), vec![2, 3, 4]);
        assert_eq!(ring.len(), 3);
        assert_eq!(ring.recorded_total(), 5);
        assert_eq!(ring.last(2).copied().collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(ring.last(0).count(), 0);
        assert_eq!(ring.last(99).count(), 3);
        ring.set_capacity(1);
        assert_eq!(ring.iter().copied().collect::<Vec<_>>(), vec![4]);
    }

    #[test]
    fn zero_capacity_keeps_nothing() {
        let mut ring = AuditRing::new(0);
        ring.push("x");
        assert!(ring.is_empty());
        assert_eq!(ring.recorded_total(), 1);
    }

    #[test]
    fn negative_max_entries_means_zero() {
        let mut audit = AccessAudit::new(-5);
        audit.record_denial(
            "catalog_query",
            &viewer("c", None),
            None,
            "viewer_denied",
            1.0,
        );
        assert!(audit.ring().is_empty());
        let s = Settings {
            discovery_access_audit_max_entries: 2,
            ..Default::default()
        };
        assert_eq!(AccessAudit::from_settings(&s).ring().capacity(), 2);
    }

    #[test]
    fn entries_have_mpregs_shape() {
        let mut audit = AccessAudit::new(10);
        audit.record_denial(
            "catalog_query",
            &viewer("cluster-a", None),
            Some("svc.secret"),
            "viewer_denied",
            1732440012.5,
        );
        audit.record_denial(
            "summary_watch",
            &viewer("cluster-a", Some("tenant-b")),
            Some("  "),
            "rate_limited",
            1732440013.0,
        );
        let v: Vec<serde_json::Value> = audit
            .ring()
            .iter()
            .map(|e| serde_json::to_value(e).unwrap())
            .collect();
        // client_protocol.md §3.16's example entry, exactly.
        assert_eq!(
            v[0],
            serde_json::json!({"event":"catalog_query","timestamp":1732440012.5,"viewer_cluster_id":"cluster-a","namespace":"svc.secret","allowed":false,"reason":"viewer_denied"})
        );
        assert_eq!(
            v[1],
            serde_json::json!({"event":"summary_watch","timestamp":1732440013.0,"viewer_cluster_id":"cluster-a","viewer_tenant_id":"tenant-b","allowed":false,"reason":"rate_limited"})
        );
    }

    #[test]
    fn filters_and_limit() {
        let mut audit = AccessAudit::new(100);
        let a = viewer("a", None);
        let t = viewer("a", Some("t1"));
        audit.record_denial(
            "catalog_query",
            &a,
            Some("svc.prod.x"),
            "viewer_denied",
            1.0,
        );
        audit.record_denial(
            "catalog_query",
            &t,
            Some("svc.production"),
            "no_policy",
            2.0,
        );
        audit.record_denial("summary_watch", &a, None, "rate_limited", 3.0);
        audit.record_denial("catalog_query", &a, Some("svc.prod"), "viewer_denied", 4.0);

        let all = AccessAuditFilter::default();
        assert_eq!(audit.query(&all, 100).len(), 4);
        let last_two: Vec<f64> = audit.query(&all, 2).iter().map(|e| e.timestamp).collect();
        assert_eq!(last_two, vec![3.0, 4.0]);
        assert!(audit.query(&all, 0).is_empty());

        let ns = AccessAuditFilter {
            namespace: Some(NamespaceFilter::parse("svc.prod.*")),
            ..Default::default()
        };
        let ts: Vec<f64> = audit.query(&ns, 100).iter().map(|e| e.timestamp).collect();
        assert_eq!(
            ts,
            vec![1.0, 4.0],
            "dot boundary: svc.production is not under svc.prod"
        );

        let tenant = AccessAuditFilter {
            viewer_tenant_id: Some("t1".into()),
            ..Default::default()
        };
        assert_eq!(audit.query(&tenant, 100).len(), 1);
        let reason = AccessAuditFilter {
            reason: Some("rate_limited".into()),
            event: Some("summary_watch".into()),
            ..Default::default()
        };
        assert_eq!(audit.query(&reason, 100).len(), 1);
        let since = AccessAuditFilter {
            since: Some(2.5),
            viewer_cluster_id: Some("a".into()),
            ..Default::default()
        };
        assert_eq!(audit.query(&since, 100).len(), 2);
        // The limit applies after filtering: the newest matching entries.
        let newest = audit.query(&ns, 1);
        assert_eq!(newest[0].timestamp, 4.0);
    }

    #[test]
    fn resize_keeps_newest() {
        let mut audit = AccessAudit::new(5);
        for i in 0..5 {
            audit.record_denial("e", &viewer("c", None), None, "r", f64::from(i));
        }
        audit.resize(2);
        let ts: Vec<f64> = audit.ring().iter().map(|e| e.timestamp).collect();
        assert_eq!(ts, vec![3.0, 4.0]);
    }
}
