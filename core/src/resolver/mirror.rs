//! The resolver's mirror of the node's catalog (`discovery_logic.md`
//! §8.1–§8.3), fed by the node's own catalog changes.
//!
//! Fixes over MPREG (§11.6, §11.7):
//! - every change carries the node's change sequence number; the mirror
//!   expects them contiguous, so a change it did not see is a detected gap
//!   and the node resyncs it from the catalog at once (counted in
//!   `gap_resyncs`), never a silent hole;
//! - the namespace filter applies per entry, removals included (a removal
//!   always removes, whatever its namespace), and seeds and resyncs apply it
//!   too; kinds without a namespace (nodes, caches, cache profiles) are
//!   always mirrored, since cluster maps and ingress hints need them;
//! - owners' refreshes (which move `advertised_at` forward without a change)
//!   are copied at every prune, so a mirrored entry never expires while its
//!   owner keeps it alive.

use serde_json::{json, Value};

use crate::catalog::entry::{Entry, EntryKind};
use crate::catalog::namespace::NamespaceFilter;
use crate::catalog::store::Catalog;

/// Counters (MPREG's `stats` of `resolver_cache_stats`, plus resyncs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MirrorStats {
    /// Changes applied.
    pub deltas_applied: u64,
    /// Changes with nothing for the mirror (every entry filtered out).
    pub deltas_skipped: u64,
    /// Changes refused (a sequence gap: resynced instead).
    pub deltas_invalid: u64,
    /// Id of the last applied change.
    pub last_delta_id: Option<String>,
    /// Cluster of the last applied change.
    pub last_delta_cluster: Option<String>,
    /// When it was applied (wall clock).
    pub last_delta_at: Option<f64>,
    /// Added / removed per kind in it.
    pub last_delta_counts: Option<Value>,
    /// Last seed or resync.
    pub last_seed_at: Option<f64>,
    /// Entry counts after it.
    pub last_seed_counts: Option<Value>,
    /// Last prune.
    pub last_prune_at: Option<f64>,
    /// Entries pruned then, per kind.
    pub last_prune_counts: Option<Value>,
    /// Seeds and resyncs (start, RPC, periodic, gap).
    pub resyncs: u64,
    /// Resyncs caused by a sequence gap.
    pub gap_resyncs: u64,
}

/// One change of the node's catalog, as the mirror receives it.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    /// The node's change sequence number (contiguous from 1).
    pub seq: u64,
    /// An id for `last_delta_id`.
    pub id: &'a str,
    /// The cluster the change came from.
    pub cluster: &'a str,
    /// Entries now in the catalog, with their origin.
    pub upserted: Vec<(&'a str, &'a Entry)>,
    /// Entries taken out.
    pub removed: Vec<&'a Entry>,
}

/// What applying a change did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// Applied; these (kind, namespace values) changed in the mirror.
    Changed(Vec<(EntryKind, Vec<String>)>),
    /// Nothing in it concerned the mirror.
    Skipped,
    /// A sequence gap: resync from the catalog.
    Gap {
        /// The sequence number expected.
        expected: u64,
        /// The one received.
        got: u64,
    },
}

/// The mirror.
#[derive(Debug, Clone, Default)]
pub struct Mirror {
    filters: Vec<NamespaceFilter>,
    catalog: Catalog,
    stats: MirrorStats,
    /// Last change sequence number applied (or seen by a seed).
    seq: u64,
}

/// The kinds in MPREG's `CatalogEntryCounts` order.
const KINDS: [EntryKind; 7] = [
    EntryKind::Functions,
    EntryKind::Topics,
    EntryKind::Queues,
    EntryKind::Services,
    EntryKind::Caches,
    EntryKind::CacheProfiles,
    EntryKind::Nodes,
];

/// `CatalogEntryCounts` as JSON.
pub fn entry_counts(c: &Catalog) -> Value {
    let mut m = serde_json::Map::new();
    for k in KINDS {
        m.insert(k.as_str().into(), json!(c.count(k)));
    }
    Value::Object(m)
}

/// Every key of MPREG's delta counters (`<kind>_added`, `<kind>_removed`),
/// or of its prune counts (`<kind>`), at zero.
fn zero_counts(suffixes: &[&str]) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    for k in KINDS {
        for s in suffixes {
            m.insert(format!("{}{s}", k.as_str()), json!(0));
        }
    }
    m
}

fn namespaces_of(e: &Entry) -> Vec<String> {
    e.filter_values()
        .unwrap_or_default()
        .into_iter()
        .map(str::to_string)
        .collect()
}

impl Mirror {
    /// An empty mirror ingesting `namespaces` (empty: everything).
    pub fn new(namespaces: &[String]) -> Mirror {
        Mirror {
            filters: namespaces
                .iter()
                .map(|n| n.trim())
                .filter(|n| !n.is_empty())
                .map(NamespaceFilter::parse)
                .collect(),
            ..Mirror::default()
        }
    }

    /// The mirrored catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The counters.
    pub fn stats(&self) -> &MirrorStats {
        &self.stats
    }

    /// Whether the filter admits `e` (module docs).
    pub fn admits(&self, e: &Entry) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| e.matches_namespace(f))
    }

    fn put(&mut self, origin: &str, e: &Entry, now: f64) -> bool {
        let key = e.key();
        self.catalog.remove(&key);
        self.catalog.upsert(origin, e.clone(), now).is_ok()
    }

    /// Applies one change (module docs).
    pub fn apply(&mut self, change: &Change<'_>, now: f64) -> Applied {
        if change.seq != self.seq + 1 {
            self.stats.deltas_invalid += 1;
            return Applied::Gap {
                expected: self.seq + 1,
                got: change.seq,
            };
        }
        self.seq = change.seq;
        let mut changed = Vec::new();
        let mut counts = zero_counts(&["_added", "_removed"]);
        let mut bump = |kind: EntryKind, what: &str| {
            let k = format!("{}_{what}", kind.as_str());
            let n = counts.get(&k).and_then(Value::as_u64).unwrap_or(0);
            counts.insert(k, json!(n + 1));
        };
        for e in &change.removed {
            if self.catalog.remove(&e.key()).is_some() {
                bump(e.kind(), "removed");
                changed.push((e.kind(), namespaces_of(e)));
            }
        }
        for (origin, e) in &change.upserted {
            if self.admits(e) && self.put(origin, e, now) {
                bump(e.kind(), "added");
                changed.push((e.kind(), namespaces_of(e)));
            }
        }
        if changed.is_empty() {
            self.stats.deltas_skipped += 1;
            return Applied::Skipped;
        }
        let st = &mut self.stats;
        st.deltas_applied += 1;
        st.last_delta_id = Some(change.id.to_string());
        st.last_delta_cluster = Some(change.cluster.to_string());
        st.last_delta_at = Some(now);
        st.last_delta_counts = Some(Value::Object(counts));
        Applied::Changed(changed)
    }

    /// Replaces the mirror with the admitted, unexpired entries of `source`
    /// (start, `resolver_resync`, periodic resync, gap repair); `seq` is the
    /// node's current change sequence number, which the next change follows.
    pub fn seed(&mut self, source: &Catalog, seq: u64, now: f64, gap: bool) {
        let mut fresh = Catalog::with_seed(source.seed());
        for (origin, e) in source.iter_all() {
            if self.admits(e) && !e.is_expired(now) {
                // Copies of a valid catalog's entries: upsert cannot refuse
                // them except by expiry, which was checked.
                let _ = fresh.upsert(origin, e.clone(), now);
            }
        }
        self.catalog = fresh;
        self.seq = seq;
        let st = &mut self.stats;
        st.last_seed_at = Some(now);
        st.last_seed_counts = Some(entry_counts(&self.catalog));
        st.resyncs += 1;
        if gap {
            st.gap_resyncs += 1;
        }
    }

    /// Copies owners' refreshes from `source` and drops expired entries
    /// (and entries `source` no longer holds, which a missed removal would
    /// otherwise leave behind). Returns the (kind, namespaces) removed.
    pub fn prune(&mut self, source: &Catalog, now: f64) -> Vec<(EntryKind, Vec<String>)> {
        let mut refresh = Vec::new();
        let mut gone = Vec::new();
        for (_, e) in self.catalog.iter_all() {
            let key = e.key();
            match (source.get(&key), source.origin_of(&key)) {
                (Some(s), Some(origin)) if s.advertised_at() > e.advertised_at() => {
                    refresh.push((origin.to_string(), s.clone()))
                }
                (Some(_), _) if !e.is_expired(now) => {}
                _ => gone.push(e.clone()),
            }
        }
        for (origin, e) in refresh {
            self.put(&origin, &e, now);
        }
        let mut counts = zero_counts(&[""]);
        let mut out = Vec::new();
        for e in gone {
            if self.catalog.remove(&e.key()).is_some() {
                let k = e.kind().as_str().to_string();
                let n = counts.get(&k).and_then(Value::as_u64).unwrap_or(0);
                counts.insert(k, json!(n + 1));
                out.push((e.kind(), namespaces_of(&e)));
            }
        }
        self.stats.last_prune_at = Some(now);
        self.stats.last_prune_counts = Some(Value::Object(counts));
        out
    }

    /// MPREG's `stats` object of `resolver_cache_stats` (§8.5) plus
    /// `resyncs` and `gap_resyncs`.
    pub fn stats_json(&self) -> Value {
        let st = &self.stats;
        let mut v = json!({
            "deltas_applied": st.deltas_applied,
            "deltas_skipped": st.deltas_skipped,
            "deltas_invalid": st.deltas_invalid,
            "last_delta_id": st.last_delta_id,
            "last_delta_cluster": st.last_delta_cluster,
            "last_delta_at": st.last_delta_at,
            "last_seed_at": st.last_seed_at,
            "last_prune_at": st.last_prune_at,
            "resyncs": st.resyncs,
            "gap_resyncs": st.gap_resyncs,
        });
        for (k, x) in [
            ("last_delta_counts", &st.last_delta_counts),
            ("last_seed_counts", &st.last_seed_counts),
            ("last_prune_counts", &st.last_prune_counts),
        ] {
            if let Some(x) = x {
                v[k] = x.clone();
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::entry::{FunctionEndpoint, FunctionIdentity, NodeDescriptor};

    fn f(name: &str, at: f64) -> Entry {
        Entry::Function(
            FunctionEndpoint::new(FunctionIdentity::new(name, name, "1.0.0"), "ws://n:1", "c")
                .advertised(at, 30.0),
        )
    }

    fn change<'a>(seq: u64, up: &'a [Entry], rm: &'a [Entry]) -> Change<'a> {
        Change {
            seq,
            id: "d",
            cluster: "c",
            upserted: up.iter().map(|e| ("ws://n:1", e)).collect(),
            removed: rm.iter().collect(),
        }
    }

    #[test]
    fn filter_applies_per_entry_and_removals_always_remove() {
        let mut m = Mirror::new(&["svc.market".to_string()]);
        let node = Entry::Node(NodeDescriptor::new("ws://n:1", "c").advertised(1.0, 30.0));
        let up = [f("svc.market.quote", 1.0), f("svc.other.x", 1.0), node];
        assert!(matches!(
            m.apply(&change(1, &up, &[]), 2.0),
            Applied::Changed(_)
        ));
        assert_eq!(m.catalog().count(EntryKind::Functions), 1);
        assert_eq!(m.catalog().count(EntryKind::Nodes), 1);
        assert_eq!(
            m.apply(&change(2, &[f("svc.other.y", 1.0)], &[]), 2.0),
            Applied::Skipped
        );
        let rm = [f("svc.market.quote", 1.0)];
        assert!(matches!(
            m.apply(&change(3, &[], &rm), 2.0),
            Applied::Changed(_)
        ));
        assert_eq!(m.catalog().count(EntryKind::Functions), 0);
        assert_eq!(m.stats().deltas_applied, 2);
        assert_eq!(m.stats().deltas_skipped, 1);
    }

    #[test]
    fn gap_is_detected_and_seed_repairs() {
        let mut m = Mirror::new(&[]);
        let up = [f("svc.a.x", 1.0)];
        assert!(matches!(
            m.apply(&change(1, &up, &[]), 2.0),
            Applied::Changed(_)
        ));
        assert_eq!(
            m.apply(&change(3, &up, &[]), 2.0),
            Applied::Gap {
                expected: 2,
                got: 3
            }
        );
        let mut source = Catalog::with_seed(0x5eed);
        source.upsert("ws://n:1", f("svc.a.x", 1.0), 2.0).unwrap();
        source.upsert("ws://n:1", f("svc.a.y", 1.0), 2.0).unwrap();
        m.seed(&source, 3, 2.0, true);
        assert_eq!(m.catalog().count(EntryKind::Functions), 2);
        // The copy hashes its service index as the node's catalog does.
        assert_eq!(m.catalog().seed(), 0x5eed);
        assert_eq!(m.stats().gap_resyncs, 1);
        assert!(matches!(
            m.apply(&change(4, &[f("svc.a.z", 1.0)], &[]), 2.0),
            Applied::Changed(_)
        ));
    }

    #[test]
    fn prune_copies_refreshes_and_drops_what_source_lost() {
        let mut m = Mirror::new(&[]);
        let up = [f("svc.a.x", 1.0), f("svc.a.y", 1.0)];
        m.apply(&change(1, &up, &[]), 2.0);
        let mut source = Catalog::new();
        source.upsert("ws://n:1", f("svc.a.x", 20.0), 25.0).unwrap();
        let removed = m.prune(&source, 40.0);
        assert_eq!(removed.len(), 1);
        // svc.a.x was refreshed to 20 + 30 = 50 > 40: still there.
        assert_eq!(m.catalog().count(EntryKind::Functions), 1);
        assert_eq!(m.stats_json()["last_prune_counts"]["functions"], 1);
    }
}
