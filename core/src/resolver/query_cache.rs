//! The resolver's query cache: stale-while-revalidate plus negative
//! caching (`discovery_logic.md` §8.4), with the fixes of §11.1 and §11.13:
//! - the key holds the full viewer (cluster **and** tenant), so one tenant's
//!   filtered answer is never served to another;
//! - a catalog change invalidates only the cached answers it can affect (same
//!   entry kind and an overlapping namespace), not the whole cache; a seed or
//!   resync still invalidates everything (a generation bump);
//! - one refresh in flight per key: the first stale read schedules it, later
//!   stale reads of the same key are served without scheduling another.
//!
//! Lookups never serve an answer past its `stale_until`.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, LazyLock};

use foldhash::quality::FixedState;
use serde_json::{json, Map, Value};

use crate::catalog::entry::EntryKind;
use crate::catalog::namespace::NamespaceFilter;
use crate::identity::Viewer;

/// Settings (`discovery_resolver_query_*`).
#[derive(Debug, Clone, PartialEq)]
pub struct QueryCacheConfig {
    /// `discovery_resolver_query_cache_enabled`.
    pub enabled: bool,
    /// Seconds an answer is fresh.
    pub ttl_seconds: f64,
    /// Seconds after that it may still be served while refreshed.
    pub stale_seconds: f64,
    /// Seconds an empty answer is fresh.
    pub negative_ttl_seconds: f64,
    /// Cached answers kept (oldest evicted first); 0 keeps none.
    pub max_entries: usize,
    /// Refresh-ahead: a fresh hit in the last this-fraction of the
    /// answer's TTL schedules its refresh (0 turns it off; see
    /// [`Lookup::Ahead`]).
    pub refresh_ahead: f64,
    /// Keep-warm, in TTLs: an answer read within the last this-many TTLs is
    /// renewed without waiting for another read, at its refresh-ahead point
    /// and as soon as a change makes it stale (0 turns it off; see
    /// [`QueryCache::take_scheduled`]).
    pub keep_warm_ttls: f64,
}

impl QueryCacheConfig {
    /// Seconds an answer stays fresh: the negative TTL for an empty one.
    fn ttl(&self, negative: bool) -> f64 {
        if negative {
            self.negative_ttl_seconds
        } else {
            self.ttl_seconds
        }
        .max(0.0)
    }
}

/// The default [`QueryCacheConfig::refresh_ahead`]: a hit in the last
/// quarter of an answer's TTL renews it. Unbound's `prefetch` uses the
/// last tenth; a quarter also keeps answers read only a few times per TTL
/// fresh, for one recomputation from the local mirror per key and TTL.
pub const DEFAULT_REFRESH_AHEAD: f64 = 0.25;

/// The default [`QueryCacheConfig::keep_warm_ttls`]: answers read in the
/// last two TTLs stay computed. Refresh-ahead alone needs a read in the
/// last quarter of each TTL, which an answer read every few seconds often
/// misses, and a change leaves its answers stale until the next read; both
/// cost the next reader a stale or missed answer. Keeping the recently read
/// answers computed costs one recomputation from the local mirror per
/// answer per TTL (and per change that touches it), like CoreDNS's
/// `prefetch` of popular names but without waiting for a read.
pub const DEFAULT_KEEP_WARM_TTLS: f64 = 2.0;

/// Which RPC an answer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CacheKind {
    /// `catalog_query`.
    Catalog,
    /// `cluster_map_v2`.
    ClusterMap,
}

impl CacheKind {
    /// The RPC's name.
    pub fn rpc(self) -> &'static str {
        match self {
            CacheKind::Catalog => "catalog_query",
            CacheKind::ClusterMap => "cluster_map_v2",
        }
    }
}

/// Cache key: the RPC, the request payload (page included: keyset pages
/// are stable, so each page is its own answer), whether the request's own
/// namespace was denied, and the full viewer.
///
/// Hashed, compared and ordered by its *id*: every part written once in a
/// compact binary form ([`write_id`]) when the key is built. A lookup
/// writes the same form of the request into a reused buffer and probes
/// with those bytes: one hash of a short byte string and one `memcmp`,
/// instead of walking the payload's members twice (hash, then compare).
/// Equal keys are exactly the requests whose canonical JSON
/// ([`CacheKey::request`]) is equal, except that a payload forging the deny
/// marker gets a key of its own. The parts are private so the id cannot
/// drift from them.
#[derive(Debug, Clone)]
pub struct CacheKey {
    kind: CacheKind,
    payload: Map<String, Value>,
    deny_all: bool,
    viewer_cluster: String,
    viewer_tenant: Option<String>,
    id: Box<[u8]>,
}

/// The member [`CacheKey::request`] shows for a denied request (sorts
/// before every printable key).
const DENY_ALL_KEY: &str = "\u{0}deny_all";

/// Writes a key's id: its parts in a prefix-free binary form (every string,
/// array and object preceded by its length, every value by its type), so
/// two ids are equal exactly when the parts are: object members in key
/// order, numbers by kind and bits (`1`, `1.0`, `-1` and `-0.0` apart, as
/// JSON writes them).
fn write_id(
    buf: &mut Vec<u8>,
    kind: CacheKind,
    payload: &Map<String, Value>,
    deny_all: bool,
    cluster: &str,
    tenant: Option<&str>,
) {
    buf.push(kind as u8);
    buf.push(u8::from(deny_all));
    write_str(buf, cluster);
    match tenant {
        Some(t) => {
            buf.push(1);
            write_str(buf, t);
        }
        None => buf.push(0),
    }
    write_object(buf, payload);
}

/// A length as LEB128 (one byte below 128).
fn write_len(buf: &mut Vec<u8>, n: usize) {
    let mut n = n as u64;
    while n >= 0x80 {
        buf.push((n as u8) | 0x80);
        n >>= 7;
    }
    buf.push(n as u8);
}

fn write_str(buf: &mut Vec<u8>, s: &str) {
    write_len(buf, s.len());
    buf.extend_from_slice(s.as_bytes());
}

fn write_object(buf: &mut Vec<u8>, o: &Map<String, Value>) {
    write_len(buf, o.len());
    for (k, v) in members(o) {
        write_str(buf, k);
        write_value(buf, v);
    }
}

fn write_value(buf: &mut Vec<u8>, v: &Value) {
    buf.push(value_rank(v));
    match v {
        Value::Null => {}
        Value::Bool(b) => buf.push(u8::from(*b)),
        Value::Number(n) => {
            let (tag, bits) = match num(n) {
                Num::Unsigned(u) => (0u8, u),
                Num::Signed(i) => (1, i as u64),
                Num::Float(f) => (2, f.to_bits()),
            };
            buf.push(tag);
            buf.extend_from_slice(&bits.to_le_bytes());
        }
        Value::String(s) => write_str(buf, s),
        Value::Array(a) => {
            write_len(buf, a.len());
            for x in a {
                write_value(buf, x);
            }
        }
        Value::Object(o) => write_object(buf, o),
    }
}

impl Borrow<[u8]> for CacheKey {
    fn borrow(&self) -> &[u8] {
        &self.id
    }
}

// Hash, equality and order are the id's (what `Borrow<[u8]>` requires of
// the maps probed with a request's bytes).
impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id.hash(state);
    }
}

impl PartialEq for CacheKey {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for CacheKey {}

impl PartialOrd for CacheKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for CacheKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.id.cmp(&other.id)
    }
}

/// An object's members in key order. serde_json's `Map` iterates in key
/// order already (a `BTreeMap`) unless some crate in the build turns on
/// its `preserve_order` feature; then the members are sorted here.
enum Members<'a> {
    InOrder(serde_json::map::Iter<'a>),
    Sorted(std::vec::IntoIter<(&'a String, &'a Value)>),
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a String, &'a Value);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Members::InOrder(it) => it.next(),
            Members::Sorted(it) => it.next(),
        }
    }
}

/// Whether this build's `Map` iterates in key order (checked once).
static MAP_IS_SORTED: LazyLock<bool> = LazyLock::new(|| {
    let mut m = Map::new();
    m.insert("b".into(), Value::Null);
    m.insert("a".into(), Value::Null);
    m.keys().next().is_some_and(|k| k == "a")
});

fn members(map: &Map<String, Value>) -> Members<'_> {
    if *MAP_IS_SORTED || map.len() < 2 {
        Members::InOrder(map.iter())
    } else {
        let mut v: Vec<(&String, &Value)> = map.iter().collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        Members::Sorted(v.into_iter())
    }
}

/// A number's kind and value, as JSON writes it apart (`1`, `-1`, `1.0`).
#[derive(PartialEq, PartialOrd)]
enum Num {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

fn num(n: &serde_json::Number) -> Num {
    if let Some(u) = n.as_u64() {
        Num::Unsigned(u)
    } else if let Some(i) = n.as_i64() {
        Num::Signed(i)
    } else {
        Num::Float(n.as_f64().unwrap_or(0.0))
    }
}

fn value_rank(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

impl CacheKey {
    /// The key of a request made by `viewer`.
    pub fn new(kind: CacheKind, payload: &Map<String, Value>, viewer: &Viewer) -> CacheKey {
        CacheKey::for_request(kind, payload, viewer, false)
    }

    /// The key of a request made by `viewer`; `deny_all` marks a request
    /// whose own namespace was denied (such an answer hides everything, so
    /// it must not share a key with the allowed one).
    pub fn for_request(
        kind: CacheKind,
        payload: &Map<String, Value>,
        viewer: &Viewer,
        deny_all: bool,
    ) -> CacheKey {
        let mut id = Vec::new();
        let tenant = viewer.tenant.as_deref();
        write_id(&mut id, kind, payload, deny_all, &viewer.cluster, tenant);
        CacheKey {
            kind,
            payload: payload.clone(),
            deny_all,
            viewer_cluster: viewer.cluster.clone(),
            viewer_tenant: viewer.tenant.clone(),
            id: id.into_boxed_slice(),
        }
    }

    /// The RPC.
    pub fn kind(&self) -> CacheKind {
        self.kind
    }

    /// The request payload.
    pub fn payload(&self) -> &Map<String, Value> {
        &self.payload
    }

    /// True when the request's own namespace was denied.
    pub fn deny_all(&self) -> bool {
        self.deny_all
    }

    /// The viewer that made the request.
    pub fn viewer(&self) -> Viewer {
        Viewer::new(self.viewer_cluster.clone(), self.viewer_tenant.clone())
    }

    /// The request as canonical JSON: the payload with its keys sorted,
    /// plus a `"\u{0}deny_all": true` member when the request was denied.
    /// For logs and tests; lookups never serialise.
    pub fn request(&self) -> String {
        let mut buf = Vec::with_capacity(16 + 32 * self.payload.len());
        buf.push(b'{');
        let mut first = true;
        let mut member = |buf: &mut Vec<u8>, k: &str, v: &Value| {
            if !first {
                buf.push(b',');
            }
            first = false;
            // Writing JSON into a Vec only fails for maps with non-string
            // keys, which a `Value` cannot hold.
            let _ = serde_json::to_writer(&mut *buf, k);
            buf.push(b':');
            let _ = serde_json::to_writer(&mut *buf, v);
        };
        // The marker goes where sorting puts it (after a `""` key only) and
        // replaces a payload member of the same name.
        let mut marker_due = self.deny_all;
        for (k, v) in members(&self.payload) {
            if marker_due && k.as_str() >= DENY_ALL_KEY {
                member(&mut buf, DENY_ALL_KEY, &Value::Bool(true));
                marker_due = false;
            }
            if !(self.deny_all && k == DENY_ALL_KEY) {
                member(&mut buf, k, v);
            }
        }
        if marker_due {
            member(&mut buf, DENY_ALL_KEY, &Value::Bool(true));
        }
        buf.push(b'}');
        String::from_utf8(buf)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
    }
}

/// What a cached answer depends on, for targeted invalidation.
#[derive(Debug, Clone, PartialEq)]
pub struct Depends {
    /// Entry kinds it reads (`None`: every kind).
    pub kinds: Option<Vec<EntryKind>>,
    /// The request's namespace filter.
    pub namespace: NamespaceFilter,
}

/// Eviction order of an answer: when it was stored, then a store sequence
/// number (answers stored at the same time go oldest first).
#[derive(Debug, Clone, Copy)]
struct Age(f64, u64);

impl PartialEq for Age {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Age {}

impl PartialOrd for Age {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Age {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(self.1.cmp(&other.1))
    }
}

/// A cached answer. Shared, so a hit hands out a reference instead of a
/// copy of the answer (which grows with its items), and the reply encoder
/// serialises it in place.
pub type Answer = Arc<Value>;

#[derive(Debug, Clone)]
struct Cached {
    value: Answer,
    age: Age,
    /// Key of this answer in the renewal index: when keep-warm renews it.
    renew: Age,
    /// Wall time of the last read (the computing request counts; a
    /// refresh does not).
    last_read: f64,
    expires_at: f64,
    stale_until: f64,
    negative: bool,
    generation: u64,
    invalidated: bool,
    depends: Depends,
}

/// A lookup's outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// Nothing usable: compute, serve and [`QueryCache::store`].
    Miss,
    /// Fresh.
    Hit(Answer),
    /// Fresh, and in the last [`QueryCacheConfig::refresh_ahead`] part of
    /// its TTL: serve it (a hit); this read scheduled the key's refresh, so
    /// an answer that keeps being read is renewed before it expires and its
    /// readers never find it stale (refresh-ahead).
    Ahead(Answer),
    /// Past its TTL (or invalidated) but within its stale window: serve it;
    /// when `refresh`, this read scheduled the key's one refresh.
    Stale {
        /// The stale answer.
        value: Answer,
        /// This read scheduled the refresh.
        refresh: bool,
    },
}

/// Counters per RPC (MPREG's names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindStats {
    /// Fresh answers served.
    pub hits: u64,
    /// Lookups that found nothing usable.
    pub misses: u64,
    /// Stale answers served.
    pub stale_serves: u64,
    /// Hits and stale serves of empty answers.
    pub negative_hits: u64,
    /// Refreshes stored.
    pub refreshes: u64,
}

/// The cache.
///
/// Answers live in a hash map (a hit is one hash of the key, whatever the
/// cache size) with an age index beside it, so evicting the oldest answer
/// when full costs O(log n) instead of sorting every key on each store.
/// Nothing iterates the hash map where order could show: invalidation,
/// pruning and counting are order-free, eviction follows the age index.
#[derive(Debug, Clone)]
pub struct QueryCache {
    cfg: QueryCacheConfig,
    entries: HashMap<CacheKey, Cached, FixedState>,
    /// Eviction order: age → key, one per entry.
    ages: BTreeMap<Age, CacheKey>,
    /// Store sequence number (the [`Age`] tie-break).
    stores: u64,
    generation: u64,
    /// Keys with a refresh scheduled and not yet stored.
    refreshing: BTreeSet<CacheKey>,
    /// Renewal order for keep-warm: renewal time → the answer's age.
    renew: BTreeMap<Age, Age>,
    /// Keys keep-warm scheduled, not yet taken by the node.
    scheduled: Vec<CacheKey>,
    /// The buffer a request's id is written into for its lookup.
    scratch: Vec<u8>,
    catalog: KindStats,
    cluster_map: KindStats,
}

impl QueryCache {
    /// An empty cache with a fixed hash seed (tests and benches).
    pub fn new(cfg: QueryCacheConfig) -> QueryCache {
        QueryCache::with_hash_seed(cfg, 0)
    }

    /// An empty cache whose key hashing is seeded with `seed` (a node
    /// passes one drawn from its seeded RNG): keys come from clients, and
    /// an unknown seed keeps them from aiming at one bucket.
    pub fn with_hash_seed(cfg: QueryCacheConfig, seed: u64) -> QueryCache {
        QueryCache {
            cfg,
            entries: HashMap::with_hasher(FixedState::with_seed(seed)),
            ages: BTreeMap::new(),
            stores: 0,
            generation: 0,
            refreshing: BTreeSet::new(),
            renew: BTreeMap::new(),
            scheduled: Vec::new(),
            scratch: Vec::new(),
            catalog: KindStats::default(),
            cluster_map: KindStats::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &QueryCacheConfig {
        &self.cfg
    }

    fn stats_mut(&mut self, kind: CacheKind) -> &mut KindStats {
        match kind {
            CacheKind::Catalog => &mut self.catalog,
            CacheKind::ClusterMap => &mut self.cluster_map,
        }
    }

    /// Counters of one RPC.
    pub fn stats(&self, kind: CacheKind) -> KindStats {
        match kind {
            CacheKind::Catalog => self.catalog,
            CacheKind::ClusterMap => self.cluster_map,
        }
    }

    /// Answers cached.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Looks `key` up at wall time `now` (module docs).
    pub fn lookup(&mut self, key: &CacheKey, now: f64) -> Lookup {
        self.lookup_id(&key.id, key.kind, now, || key.clone())
    }

    /// Looks up the answer to a request without building its owned key:
    /// the request's id is written into a reused buffer and the payload
    /// and viewer are only read. Equal to
    /// `lookup(&CacheKey::for_request(..), now)`; this is what every
    /// resolver request pays.
    pub fn lookup_request(
        &mut self,
        kind: CacheKind,
        payload: &Map<String, Value>,
        viewer: &Viewer,
        deny_all: bool,
        now: f64,
    ) -> Lookup {
        let mut id = std::mem::take(&mut self.scratch);
        id.clear();
        let tenant = viewer.tenant.as_deref();
        write_id(&mut id, kind, payload, deny_all, &viewer.cluster, tenant);
        let owned = || CacheKey::for_request(kind, payload, viewer, deny_all);
        let result = self.lookup_id(&id, kind, now, owned);
        self.scratch = id;
        result
    }

    /// The lookup of the key with id `id`; `owned` builds that key when
    /// this read schedules its refresh.
    fn lookup_id(
        &mut self,
        id: &[u8],
        kind: CacheKind,
        now: f64,
        owned: impl FnOnce() -> CacheKey,
    ) -> Lookup {
        let generation = self.generation;
        let Some(e) = self.entries.get_mut(id) else {
            self.stats_mut(kind).misses += 1;
            return Lookup::Miss;
        };
        if now <= e.stale_until {
            e.last_read = e.last_read.max(now);
        }
        let negative = e.negative;
        let result = if e.generation == generation && !e.invalidated && now <= e.expires_at {
            let ttl = e.expires_at - e.age.0;
            let renew_from = e.expires_at - ttl * self.cfg.refresh_ahead.clamp(0.0, 1.0);
            if self.cfg.refresh_ahead > 0.0 && now >= renew_from && !self.refreshing.contains(id) {
                Lookup::Ahead(e.value.clone())
            } else {
                Lookup::Hit(e.value.clone())
            }
        } else if now <= e.stale_until {
            let refresh = !self.refreshing.contains(id);
            Lookup::Stale {
                value: e.value.clone(),
                refresh,
            }
        } else {
            if let Some(gone) = self.entries.remove(id) {
                self.ages.remove(&gone.age);
                self.renew.remove(&gone.renew);
            }
            self.refreshing.remove(id);
            self.stats_mut(kind).misses += 1;
            return Lookup::Miss;
        };
        let st = self.stats_mut(kind);
        match &result {
            Lookup::Hit(_) | Lookup::Ahead(_) => st.hits += 1,
            _ => st.stale_serves += 1,
        }
        if negative {
            st.negative_hits += 1;
        }
        if let Lookup::Stale { refresh: true, .. } | Lookup::Ahead(_) = result {
            self.refreshing.insert(owned());
        }
        result
    }

    /// Keys whose refresh was scheduled and not yet stored.
    pub fn pending_refreshes(&self) -> Vec<CacheKey> {
        self.refreshing.iter().cloned().collect()
    }

    /// Stores a computed answer (`negative` when it holds no item).
    pub fn store(
        &mut self,
        key: CacheKey,
        value: impl Into<Answer>,
        negative: bool,
        depends: Depends,
        now: f64,
    ) {
        if !self.cfg.enabled {
            return;
        }
        let refresh = self.refreshing.remove(&key);
        if refresh {
            self.stats_mut(key.kind).refreshes += 1;
        }
        // A refresh is not a read: the answer stays as warm as it was.
        let last_read = match self.entries.get(&key) {
            Some(old) if refresh => old.last_read,
            _ => now,
        };
        let ttl = self.cfg.ttl(negative);
        let stale = self.cfg.stale_seconds.max(0.0);
        self.stores += 1;
        let age = Age(now, self.stores);
        self.ages.insert(age, key.clone());
        let ahead = self.cfg.refresh_ahead.clamp(0.0, 1.0);
        let renew = Age(now + ttl * (1.0 - ahead), self.stores);
        if self.cfg.keep_warm_ttls > 0.0 {
            self.renew.insert(renew, age);
        }
        let replaced = self.entries.insert(
            key,
            Cached {
                value: value.into(),
                age,
                renew,
                last_read,
                expires_at: now + ttl,
                stale_until: now + ttl + stale,
                negative,
                generation: self.generation,
                invalidated: false,
                depends,
            },
        );
        if let Some(old) = replaced {
            self.ages.remove(&old.age);
            self.renew.remove(&old.renew);
        }
        self.capacity_prune();
    }

    /// Evicts the oldest answers (by store time) beyond `max_entries`.
    fn capacity_prune(&mut self) {
        while self.entries.len() > self.cfg.max_entries {
            let Some((_, k)) = self.ages.pop_first() else {
                break;
            };
            if let Some(gone) = self.entries.remove(&k) {
                self.renew.remove(&gone.renew);
            }
            self.refreshing.remove(&k);
        }
    }

    /// Everything becomes stale (a seed or resync replaced the mirror).
    pub fn bump_generation(&mut self) {
        self.generation += 1;
    }

    /// A change of an entry of `kind` whose namespace values are `namespaces`
    /// (empty: a kind without namespace), at wall time `now`, makes every
    /// answer that could contain it stale; the warm ones among them are
    /// scheduled for recomputation ([`QueryCache::take_scheduled`]).
    /// Returns how many were invalidated.
    pub fn invalidate(&mut self, kind: EntryKind, namespaces: &[&str], now: f64) -> usize {
        let mut n = 0;
        let mut warm = Vec::new();
        for (key, e) in self.entries.iter_mut() {
            if e.invalidated {
                continue;
            }
            let reads_kind = e.depends.kinds.as_ref().is_none_or(|k| k.contains(&kind));
            let overlaps = e.depends.namespace.is_all()
                || namespaces.is_empty()
                || namespaces.iter().any(|ns| e.depends.namespace.matches(ns));
            if reads_kind && overlaps {
                e.invalidated = true;
                n += 1;
                if is_warm(&self.cfg, e, now) {
                    warm.push(key.clone());
                }
            }
        }
        for key in warm {
            if self.refreshing.insert(key.clone()) {
                self.scheduled.push(key);
            }
        }
        n
    }

    /// Keep-warm: the keys whose answers should be recomputed now, each
    /// scheduled once (like a stale read's refresh): answers a change made
    /// stale ([`QueryCache::invalidate`]) and answers at their refresh-ahead
    /// point, when read within the last
    /// [`QueryCacheConfig::keep_warm_ttls`] TTLs. An answer nobody read for
    /// that long is left to expire. The node runs these after every request
    /// and change, as it runs a stale read's refresh.
    pub fn take_scheduled(&mut self, now: f64) -> Vec<CacheKey> {
        while let Some((&at, &age)) = self.renew.first_key_value() {
            if at.0 > now {
                break;
            }
            self.renew.pop_first();
            let Some(key) = self.ages.get(&age) else {
                continue;
            };
            let due = self
                .entries
                .get(key)
                .is_some_and(|e| e.age == age && is_warm(&self.cfg, e, now));
            if due && !self.refreshing.contains(key) {
                self.refreshing.insert(key.clone());
                self.scheduled.push(key.clone());
            }
        }
        std::mem::take(&mut self.scheduled)
    }

    /// Drops answers past their stale window (§8.4 `prune_expired`).
    pub fn prune(&mut self, now: f64) -> usize {
        let before = self.entries.len();
        let (ages, renew) = (&mut self.ages, &mut self.renew);
        self.entries.retain(|_, e| {
            let keep = e.stale_until > now;
            if !keep {
                ages.remove(&e.age);
                renew.remove(&e.renew);
            }
            keep
        });
        let entries = &self.entries;
        self.refreshing.retain(|k| entries.contains_key(k));
        before - self.entries.len()
    }

    /// `query_cache` of `resolver_cache_stats` (§8.5) plus `hit_rate`,
    /// `stale_serves` and `negative_hits` over both RPCs.
    pub fn snapshot(&self) -> Value {
        let count = |kind: CacheKind| self.entries.keys().filter(|k| k.kind == kind).count();
        let (c, m) = (self.catalog, self.cluster_map);
        let hits = c.hits + m.hits;
        let lookups = hits + c.misses + m.misses + c.stale_serves + m.stale_serves;
        json!({
            "catalog_entries": count(CacheKind::Catalog),
            "cluster_map_entries": count(CacheKind::ClusterMap),
            "catalog_hits": c.hits,
            "catalog_misses": c.misses,
            "catalog_stale_serves": c.stale_serves,
            "catalog_negative_hits": c.negative_hits,
            "catalog_refreshes": c.refreshes,
            "cluster_map_hits": m.hits,
            "cluster_map_misses": m.misses,
            "cluster_map_stale_serves": m.stale_serves,
            "cluster_map_negative_hits": m.negative_hits,
            "cluster_map_refreshes": m.refreshes,
            "hit_rate": if lookups == 0 { 0.0 } else { hits as f64 / lookups as f64 },
            "stale_serves": c.stale_serves + m.stale_serves,
            "negative_hits": c.negative_hits + m.negative_hits,
        })
    }
}

/// Whether keep-warm renews `e` at `now`: read within the last
/// `keep_warm_ttls` of its TTLs.
fn is_warm(cfg: &QueryCacheConfig, e: &Cached, now: f64) -> bool {
    cfg.keep_warm_ttls > 0.0 && now - e.last_read <= cfg.ttl(e.negative) * cfg.keep_warm_ttls
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cfg() -> QueryCacheConfig {
        QueryCacheConfig {
            enabled: true,
            ttl_seconds: 0.2,
            stale_seconds: 0.6,
            negative_ttl_seconds: 0.3,
            max_entries: 100,
            refresh_ahead: 0.0,
            keep_warm_ttls: 0.0,
        }
    }

    fn key(ns: &str, tenant: Option<&str>) -> CacheKey {
        let mut m = Map::new();
        m.insert("namespace".into(), json!(ns));
        m.insert("entry_type".into(), json!("functions"));
        CacheKey::new(
            CacheKind::Catalog,
            &m,
            &Viewer::new("c", tenant.map(str::to_string)),
        )
    }

    fn dep(ns: &str) -> Depends {
        Depends {
            kinds: Some(vec![EntryKind::Functions]),
            namespace: NamespaceFilter::parse(ns),
        }
    }

    /// §8.4's asserted sequence (ttl 0.2, stale 0.6, negative 0.3).
    #[test]
    fn stale_and_negative() {
        let mut c = QueryCache::new(cfg());
        let market = key("svc.market", None);
        let missing = key("svc.missing", None);
        assert_eq!(c.lookup(&market, 0.0), Lookup::Miss);
        c.store(market.clone(), json!([1, 2]), false, dep("svc.market"), 0.0);
        assert_eq!(c.lookup(&missing, 0.0), Lookup::Miss);
        c.store(missing.clone(), json!([]), true, dep("svc.missing"), 0.0);
        assert_eq!(c.lookup(&missing, 0.01), Lookup::Hit(json!([]).into()));
        assert_eq!(
            c.lookup(&market, 0.25),
            Lookup::Stale {
                value: json!([1, 2]).into(),
                refresh: true
            }
        );
        // Single flight: the next stale read does not schedule another.
        assert_eq!(
            c.lookup(&market, 0.3),
            Lookup::Stale {
                value: json!([1, 2]).into(),
                refresh: false
            }
        );
        assert_eq!(c.pending_refreshes(), vec![market.clone()]);
        c.store(
            market.clone(),
            json!([1, 2, 3]),
            false,
            dep("svc.market"),
            0.31,
        );
        assert!(c.pending_refreshes().is_empty());
        let s = c.stats(CacheKind::Catalog);
        assert_eq!((s.negative_hits, s.stale_serves, s.refreshes), (1, 2, 1));
        // Past the stale window: a miss, and the answer is gone.
        assert_eq!(c.lookup(&market, 2.0), Lookup::Miss);
        assert_eq!(c.snapshot()["catalog_misses"], 3);
    }

    #[test]
    fn tenant_is_part_of_the_key() {
        let mut c = QueryCache::new(cfg());
        c.store(
            key("svc", Some("a")),
            json!(["a-only"]),
            false,
            dep("svc"),
            0.0,
        );
        assert_eq!(c.lookup(&key("svc", Some("b")), 0.0), Lookup::Miss);
        assert_eq!(c.lookup(&key("svc", None), 0.0), Lookup::Miss);
        assert_eq!(
            c.lookup(&key("svc", Some("a")), 0.0),
            Lookup::Hit(json!(["a-only"]).into())
        );
    }

    #[test]
    fn ids_keep_every_part_apart() {
        let id = |p: Value, cluster: &str, tenant: Option<&str>| {
            let Value::Object(p) = p else {
                panic!("an object payload");
            };
            let v = Viewer::new(cluster, tenant.map(str::to_string));
            CacheKey::for_request(CacheKind::Catalog, &p, &v, false)
        };
        // Where one string ends and the next starts is part of the id:
        // without lengths, both of these would write `a 3 x 0`.
        assert_ne!(
            id(json!({"a": "x\u{0}"}), "c", None),
            id(json!({"a\u{3}x": null}), "c", None)
        );
        assert_ne!(id(json!({}), "ab", None), id(json!({}), "a", Some("b")));
        assert_ne!(
            id(json!({"a": "bc"}), "c", None),
            id(json!({"ab": "c"}), "c", None)
        );
        assert_ne!(
            id(json!({"x": [1, 2]}), "c", None),
            id(json!({"x": [[1], 2]}), "c", None)
        );
        assert_ne!(
            id(json!({"x": {}}), "c", None),
            id(json!({"x": []}), "c", None)
        );
        assert_ne!(
            id(json!({"x": null}), "c", None),
            id(json!({"x": false}), "c", None)
        );
        // A string long enough for a two-byte length.
        let long = "n".repeat(300);
        assert_ne!(
            id(json!({"x": long}), "c", None),
            id(json!({"x": &long[1..]}), "c", None)
        );
        assert_eq!(
            id(json!({"x": long}), "c", None),
            id(json!({"x": long}), "c", None)
        );
        let k = id(json!({"a": 1}), "c", Some("t"));
        assert_eq!(k.viewer(), Viewer::new("c", Some("t".into())));
        assert_eq!(k.payload().get("a"), Some(&json!(1)));
        assert_eq!((k.kind(), k.deny_all()), (CacheKind::Catalog, false));
    }

    #[test]
    fn invalidation_is_per_namespace_and_kind() {
        let mut c = QueryCache::new(QueryCacheConfig {
            ttl_seconds: 10.0,
            ..cfg()
        });
        c.store(key("svc.a", None), json!([1]), false, dep("svc.a"), 0.0);
        c.store(key("svc.b", None), json!([1]), false, dep("svc.b"), 0.0);
        assert_eq!(c.invalidate(EntryKind::Queues, &["svc.a"], 0.5), 0);
        assert_eq!(c.invalidate(EntryKind::Functions, &["svc.a.x"], 0.5), 1);
        assert!(matches!(
            c.lookup(&key("svc.a", None), 1.0),
            Lookup::Stale { .. }
        ));
        assert!(matches!(c.lookup(&key("svc.b", None), 1.0), Lookup::Hit(_)));
        c.bump_generation();
        assert!(matches!(
            c.lookup(&key("svc.b", None), 1.0),
            Lookup::Stale { .. }
        ));
    }

    #[test]
    fn capacity_evicts_oldest() {
        let mut c = QueryCache::new(QueryCacheConfig {
            max_entries: 2,
            ..cfg()
        });
        for (i, ns) in ["a", "b", "c"].iter().enumerate() {
            c.store(key(ns, None), json!([1]), false, dep(ns), i as f64 * 0.01);
        }
        assert_eq!(c.len(), 2);
        assert_eq!(c.lookup(&key("a", None), 0.02), Lookup::Miss);
        let mut none = QueryCache::new(QueryCacheConfig {
            max_entries: 0,
            ..cfg()
        });
        none.store(key("a", None), json!([1]), false, dep("a"), 0.0);
        assert!(none.is_empty());
    }

    /// The canonical JSON is what serialising a sorted copy gives (the
    /// key format before the copy-free writer), deny marker included.
    #[test]
    fn key_is_the_sorted_payload() {
        let payload = json!({
            "namespace": "svc.\"q\"\u{1}", "limit": 50, "entry_type": "functions",
            "tags": ["b", "a"], "nested": {"z": 1, "a": [null, 1.5]}, "": true,
        });
        let Value::Object(map) = payload else {
            unreachable!("an object literal")
        };
        let viewer = Viewer::new("c", Some("t".into()));
        let sorted: BTreeMap<&String, &Value> = map.iter().collect();
        let plain = CacheKey::new(CacheKind::Catalog, &map, &viewer);
        assert_eq!(plain.request(), serde_json::to_string(&sorted).unwrap());
        let mut marked = map.clone();
        marked.insert(DENY_ALL_KEY.into(), Value::Bool(true));
        let sorted: BTreeMap<&String, &Value> = marked.iter().collect();
        let denied = CacheKey::for_request(CacheKind::Catalog, &map, &viewer, true);
        assert_eq!(denied.request(), serde_json::to_string(&sorted).unwrap());
        assert_ne!(denied, plain);
        // A payload forging the marker neither reaches the denied answer
        // nor shows the marker twice.
        let mut forged = map.clone();
        forged.insert(DENY_ALL_KEY.into(), Value::Bool(true));
        let forged_plain = CacheKey::for_request(CacheKind::Catalog, &forged, &viewer, false);
        assert_ne!(forged_plain, denied);
        let forged_denied = CacheKey::for_request(CacheKind::Catalog, &forged, &viewer, true);
        assert_eq!(forged_denied.request(), denied.request());
        assert_eq!(
            CacheKey::for_request(CacheKind::Catalog, &Map::new(), &viewer, false).request(),
            "{}"
        );
    }

    /// A hit in the last `refresh_ahead` of the TTL schedules one refresh
    /// (later hits are plain hits until it is stored) and counts as a hit;
    /// storing it renews the TTL, so a key read this way never goes stale.
    #[test]
    fn refresh_ahead_renews_an_answer_before_it_expires() {
        let mut c = QueryCache::new(QueryCacheConfig {
            ttl_seconds: 10.0,
            stale_seconds: 20.0,
            refresh_ahead: 0.25,
            ..cfg()
        });
        let k = key("a", None);
        c.store(k.clone(), json!([1]), false, dep("a"), 0.0);
        assert_eq!(c.lookup(&k, 7.4), Lookup::Hit(json!([1]).into()));
        assert_eq!(c.lookup(&k, 7.5), Lookup::Ahead(json!([1]).into()));
        assert_eq!(c.lookup(&k, 7.6), Lookup::Hit(json!([1]).into()));
        assert_eq!(c.pending_refreshes(), vec![k.clone()]);
        c.store(k.clone(), json!([2]), false, dep("a"), 7.6);
        assert!(c.pending_refreshes().is_empty());
        // Renewed at 7.6: fresh until 17.6, renewed from 15.1.
        for t in [12.0, 15.0] {
            assert_eq!(c.lookup(&k, t), Lookup::Hit(json!([2]).into()), "t={t}");
        }
        assert_eq!(c.lookup(&k, 15.2), Lookup::Ahead(json!([2]).into()));
        let st = c.stats(CacheKind::Catalog);
        assert_eq!(
            (st.hits, st.stale_serves, st.misses, st.refreshes),
            (6, 0, 0, 1)
        );
        // Off: the same reads are plain hits, then the answer goes stale.
        let mut off = QueryCache::new(QueryCacheConfig {
            ttl_seconds: 10.0,
            stale_seconds: 20.0,
            ..cfg()
        });
        off.store(k.clone(), json!([1]), false, dep("a"), 0.0);
        assert_eq!(off.lookup(&k, 9.9), Lookup::Hit(json!([1]).into()));
        assert!(matches!(
            off.lookup(&k, 10.1),
            Lookup::Stale { refresh: true, .. }
        ));
    }

    /// Keep-warm renews an answer read recently at its refresh-ahead point
    /// without a read there, and recomputes it right after a change; one
    /// nobody read for two TTLs is left to expire.
    #[test]
    fn keep_warm_renews_read_answers_and_lets_unread_ones_go() {
        let mut c = QueryCache::new(QueryCacheConfig {
            ttl_seconds: 10.0,
            stale_seconds: 20.0,
            refresh_ahead: 0.25,
            keep_warm_ttls: 2.0,
            ..cfg()
        });
        let (read, unread) = (key("svc.a", None), key("svc.b", None));
        c.store(read.clone(), json!([1]), false, dep("svc.a"), 0.0);
        c.store(unread.clone(), json!([1]), false, dep("svc.b"), 0.0);
        assert!(c.take_scheduled(7.4).is_empty(), "nothing due yet");
        // Due at 7.5; the computing request counts as a read of both.
        let both = |c: &mut QueryCache, at: f64| {
            let due = c.take_scheduled(at);
            for k in &due {
                let ns = k.payload["namespace"].as_str().unwrap_or("").to_string();
                c.store(k.clone(), json!([at]), false, dep(&ns), at);
            }
            due.len()
        };
        assert_eq!(both(&mut c, 7.5), 2);
        assert_eq!(c.lookup(&read, 12.0), Lookup::Hit(json!([7.5]).into()));
        // 15.0: both were read within two TTLs (20 s).
        assert_eq!(both(&mut c, 15.0), 2);
        // 22.5: `read` (last read 12.0) is warm; `unread` (0.0) is not.
        assert_eq!(c.take_scheduled(22.5), vec![read.clone()]);
        assert!(c.take_scheduled(22.5).is_empty(), "scheduled once");
        c.store(read.clone(), json!([3]), false, dep("svc.a"), 22.5);
        // A change: the warm answer is recomputed at once, not served
        // stale to its next reader.
        assert_eq!(c.invalidate(EntryKind::Functions, &["svc.a"], 23.0), 1);
        assert_eq!(c.take_scheduled(23.0), vec![read.clone()]);
        c.store(read.clone(), json!([4]), false, dep("svc.a"), 23.0);
        assert_eq!(c.lookup(&read, 24.0), Lookup::Hit(json!([4]).into()));
        // The unread answer expired at 25.0 and is served stale.
        assert!(matches!(
            c.lookup(&unread, 26.0),
            Lookup::Stale { refresh: true, .. }
        ));
        let st = c.stats(CacheKind::Catalog);
        assert_eq!((st.hits, st.stale_serves, st.refreshes), (2, 1, 6));
        // Off: nothing is scheduled without a read.
        let mut off = QueryCache::new(QueryCacheConfig {
            ttl_seconds: 10.0,
            refresh_ahead: 0.25,
            ..cfg()
        });
        off.store(read.clone(), json!([1]), false, dep("svc.a"), 0.0);
        off.invalidate(EntryKind::Functions, &["svc.a"], 1.0);
        assert!(off.take_scheduled(9.0).is_empty());
    }

    #[test]
    fn numbers_share_a_key_only_when_written_alike() {
        let forms = [
            json!(1),
            json!(-1),
            json!(1.0),
            json!(0),
            json!(0.0),
            json!(-0.0),
            json!(u64::MAX),
            json!(i64::MIN),
            json!(1e300),
        ];
        let viewer = Viewer::new("c", None);
        let key = |v: &Value| {
            let mut m = Map::new();
            m.insert("limit".into(), json!([v, {"n": v}]));
            CacheKey::new(CacheKind::Catalog, &m, &viewer)
        };
        for x in &forms {
            for y in &forms {
                let (kx, ky) = (key(x), key(y));
                // Written forms, not `Value` equality (which has -0.0 == 0.0).
                let (wx, wy) = (x.to_string(), y.to_string());
                assert_eq!(kx == ky, wx == wy, "{x} vs {y}");
                assert_eq!(kx.request() == ky.request(), kx == ky, "{x} vs {y}");
            }
        }
    }

    #[test]
    fn equal_store_times_evict_in_store_order() {
        let mut c = QueryCache::new(QueryCacheConfig {
            max_entries: 2,
            ..cfg()
        });
        for ns in ["c", "b", "a"] {
            c.store(key(ns, None), json!([1]), false, dep(ns), 0.0);
        }
        assert_eq!(c.lookup(&key("c", None), 0.0), Lookup::Miss);
        assert!(matches!(c.lookup(&key("b", None), 0.0), Lookup::Hit(_)));
        // Storing an answer again makes it the newest.
        c.store(key("b", None), json!([2]), false, dep("b"), 0.0);
        c.store(key("d", None), json!([1]), false, dep("d"), 0.0);
        assert_eq!(c.lookup(&key("a", None), 0.0), Lookup::Miss);
        assert_eq!(
            c.lookup(&key("b", None), 0.0),
            Lookup::Hit(json!([2]).into())
        );
    }

    /// Small payloads from a small alphabet (so two draws are often
    /// equal), with every JSON kind and the number forms JSON tells apart.
    fn payload_strategy() -> impl Strategy<Value = Map<String, Value>> {
        let text = "[\"\\\\\u{1}aé]{0,2}";
        let number = prop_oneof![
            Just(json!(1)),
            Just(json!(-1)),
            Just(json!(1.0)),
            Just(json!(0.0)),
            Just(json!(-0.0)),
            Just(json!(u64::MAX)),
        ];
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            number,
            text.prop_map(Value::String),
        ];
        let value = leaf.prop_recursive(2, 8, 3, move |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
                proptest::collection::btree_map("[ab]", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        });
        proptest::collection::btree_map("[ab\u{0}]{0,2}", value, 0..3)
            .prop_map(|m| m.into_iter().collect())
    }

    proptest! {
        /// A lookup by request finds exactly what a lookup by owned key
        /// finds (same answer, same counters, same scheduled refreshes),
        /// for any payload, viewer and deny flag.
        #[test]
        fn lookup_request_equals_lookup_of_the_owned_key(
            stores in proptest::collection::vec((0u8..4, 0u8..3, any::<bool>(), 0u8..3), 1..12),
            probes in proptest::collection::vec((0u8..4, 0u8..3, any::<bool>(), 0u8..3, 0u64..60), 1..40),
        ) {
            let payload = |ns: u8, extra: u8| {
                let mut m = Map::new();
                m.insert("namespace".into(), json!(format!("svc.n{ns}")));
                if extra > 0 {
                    m.insert("limit".into(), json!(extra));
                    m.insert("\u{0}deny_all".into(), json!(extra == 2));
                }
                m
            };
            let viewer = |t: u8| Viewer::new("c", (t > 0).then(|| format!("t{t}")));
            let mut by_key = QueryCache::new(cfg());
            let mut by_request = QueryCache::new(cfg());
            for (ns, extra, deny, t) in stores {
                let k = CacheKey::for_request(CacheKind::Catalog, &payload(ns, extra), &viewer(t), deny);
                by_key.store(k.clone(), json!([ns, extra]), false, dep("svc"), 0.0);
                by_request.store(k, json!([ns, extra]), false, dep("svc"), 0.0);
            }
            let mut now = 0.0;
            for (ns, extra, deny, t, dt) in probes {
                now += dt as f64 * 0.01;
                let (p, v) = (payload(ns, extra), viewer(t));
                let k = CacheKey::for_request(CacheKind::Catalog, &p, &v, deny);
                prop_assert_eq!(
                    by_request.lookup_request(CacheKind::Catalog, &p, &v, deny, now),
                    by_key.lookup(&k, now)
                );
            }
            prop_assert_eq!(by_request.snapshot(), by_key.snapshot());
            prop_assert_eq!(by_request.pending_refreshes(), by_key.pending_refreshes());
            prop_assert_eq!(by_request.len(), by_key.len());
        }

        /// Two requests share a key exactly when their canonical JSON is
        /// equal, and equal keys hash equally; the canonical JSON is
        /// serde_json's rendering of the sorted payload whatever its strings
        /// hold (quotes, backslashes, control characters, non-ASCII) and
        /// whatever the values' kinds (`1`, `-1`, `1.0`, `-0.0`, `0.0`).
        #[test]
        fn keys_are_equal_exactly_when_canonical_requests_are(
            a in payload_strategy(),
            b in payload_strategy(),
            deny in any::<(bool, bool)>(),
        ) {
            let viewer = Viewer::new("c", None);
            let ka = CacheKey::for_request(CacheKind::Catalog, &a, &viewer, deny.0);
            let kb = CacheKey::for_request(CacheKind::Catalog, &b, &viewer, deny.1);
            prop_assert_eq!(ka == kb, ka.request() == kb.request());
            prop_assert_eq!(ka.cmp(&kb) == Ordering::Equal, ka == kb);
            if ka == kb {
                let h = |k: &CacheKey| {
                    let mut s = std::collections::hash_map::DefaultHasher::new();
                    k.hash(&mut s);
                    s.finish()
                };
                prop_assert_eq!(h(&ka), h(&kb));
            }
            let mut marked = a.clone();
            if deny.0 {
                marked.insert(DENY_ALL_KEY.into(), Value::Bool(true));
            }
            let sorted: BTreeMap<&String, &Value> = marked.iter().collect();
            prop_assert_eq!(ka.request(), serde_json::to_string(&sorted).expect("serialisable"));
        }

        /// The age index always holds exactly the cached answers, and the
        /// cache never holds more than `max_entries`.
        #[test]
        fn age_index_matches_entries(ops in proptest::collection::vec((0u8..6, 0u8..6, 0u64..50), 1..120)) {
            let mut c = QueryCache::new(QueryCacheConfig {
                max_entries: 3,
                refresh_ahead: 0.25,
                keep_warm_ttls: 2.0,
                ..cfg()
            });
            let mut now = 0.0;
            for (op, k, dt) in ops {
                now += dt as f64 * 0.02;
                let ns = format!("svc.n{k}");
                match op {
                    0 | 1 => c.store(key(&ns, None), json!([k]), k == 0, dep(&ns), now),
                    2 => { c.lookup(&key(&ns, None), now); }
                    3 => { c.invalidate(EntryKind::Functions, &[&ns], now); }
                    4 => {
                        // What the node does with keep-warm's keys.
                        for key in c.take_scheduled(now) {
                            let ns = key.payload["namespace"].as_str().unwrap_or("").to_string();
                            c.store(key, json!([0]), false, dep(&ns), now);
                        }
                    }
                    _ => { c.prune(now); }
                }
                prop_assert!(c.len() <= 3);
                prop_assert_eq!(c.ages.len(), c.entries.len());
                for (age, k) in &c.ages {
                    prop_assert_eq!(c.entries.get(k).map(|e| e.age), Some(*age));
                }
                // Every renewal points at its own answer's age.
                prop_assert!(c.renew.len() <= c.entries.len());
                for (at, age) in &c.renew {
                    let e = c.ages.get(age).and_then(|k| c.entries.get(k));
                    prop_assert_eq!(e.map(|e| (e.renew, e.age)), Some((*at, *age)));
                }
                prop_assert!(c.refreshing.iter().all(|k| c.entries.contains_key(k)));
            }
        }

        /// Never serves an answer past its stale_until, and a hit is always
        /// within its TTL.
        #[test]
        fn never_past_stale_until(ops in proptest::collection::vec((0u8..3, 0u8..3, 0u64..50), 1..80)) {
            let c0 = QueryCacheConfig { refresh_ahead: 0.5, ..cfg() };
            let mut c = QueryCache::new(c0.clone());
            let mut stored: BTreeMap<CacheKey, (f64, bool)> = BTreeMap::new();
            let mut now = 0.0;
            for (op, k, dt) in ops {
                now += dt as f64 * 0.02;
                let ns = format!("svc.n{k}");
                let key = key(&ns, None);
                match op {
                    0 => {
                        let negative = k == 0;
                        c.store(key.clone(), json!([k]), negative, dep(&ns), now);
                        stored.insert(key, (now, negative));
                    }
                    1 => { c.invalidate(EntryKind::Functions, &[&ns], now); }
                    _ => match c.lookup(&key, now) {
                        Lookup::Miss => {}
                        Lookup::Hit(_) => {
                            let (at, neg) = stored[&key];
                            let ttl = if neg { c0.negative_ttl_seconds } else { c0.ttl_seconds };
                            prop_assert!(now <= at + ttl);
                        }
                        Lookup::Ahead(_) => {
                            let (at, neg) = stored[&key];
                            let ttl = if neg { c0.negative_ttl_seconds } else { c0.ttl_seconds };
                            prop_assert!(now >= at + ttl * (1.0 - c0.refresh_ahead) - 1e-9);
                            prop_assert!(now <= at + ttl);
                        }
                        Lookup::Stale { .. } => {
                            let (at, neg) = stored[&key];
                            let ttl = if neg { c0.negative_ttl_seconds } else { c0.ttl_seconds };
                            prop_assert!(now <= at + ttl + c0.stale_seconds);
                        }
                    },
                }
            }
        }
    }
}
