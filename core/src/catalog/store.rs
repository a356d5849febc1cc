//! The catalog store: every entry once, plus the indexes that make reads
//! cheap.
//!
//! Layout (all ordered maps, so iteration is deterministic and no hashing
//! randomness enters the sans-IO core):
//! - per kind, `SortKey → (origin, entry)` in MPREG's output order;
//! - topics' subscription id → `SortKey` (every other kind's removal key
//!   holds exactly its sort tuple, [`SortKey::of_key`], so it needs no map);
//! - per kind, namespace → keys ([`Entry::filter_values`]) and name → keys
//!   ([`Entry::name`]);
//! - services by a seeded hash of (namespace ignoring case, name), for
//!   DNS questions (`ServicePairs`: still an ordered map, of integers);
//! - node id → keys, origin → keys;
//! - `(expires_at, SortKey)`, so pruning touches only what expired;
//! - the function identity maps (name ↔ function_id, with use counts).
//!
//! Every mutation goes through [`Catalog::insert_new`] and
//! [`Catalog::remove_by_sort_key`], which update all of these together; the
//! property test at the bottom checks them against a naive model.
//!
//! Reads return stored entries whether or not they have expired; call
//! [`Catalog::prune_expired`] (or filter with [`Entry::is_expired`]) first.
//! MPREG prunes lazily on read; a sans-IO store cannot read the clock, and
//! pruning is cheap here, so the owner prunes on its tick.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use super::entry::{Entry, EntryKey, EntryKind, FunctionIdentity};
use super::index::{MergeKeys, ServicePairs, SetIndex, SortKey};
use super::namespace::{name_namespace, NamespaceFilter};

/// Why [`Catalog::upsert`] refused an entry (`fabric.md` §1.5).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CatalogError {
    /// `now > advertised_at + ttl_seconds` already.
    #[error("entry already expired (expires_at {expires_at}, now {now})")]
    Expired {
        /// `advertised_at + ttl_seconds` of the entry.
        expires_at: f64,
        /// The `now` it was offered at.
        now: f64,
    },
    /// Not newer than the stored version of the same key: older
    /// `advertised_at`, or equal `advertised_at` and TTL not longer.
    #[error(
        "stale update (advertised_at {advertised_at}, ttl {ttl_seconds}; stored {existing_advertised_at}, ttl {existing_ttl_seconds})"
    )]
    Stale {
        /// Incoming `advertised_at`.
        advertised_at: f64,
        /// Incoming `ttl_seconds`.
        ttl_seconds: f64,
        /// Stored `advertised_at`.
        existing_advertised_at: f64,
        /// Stored `ttl_seconds`.
        existing_ttl_seconds: f64,
    },
    /// A function name already maps to another id, or the id to another name.
    #[error(
        "function identity conflict: {name} / {function_id} vs registered {existing_name} / {existing_function_id}"
    )]
    IdentityConflict {
        /// Incoming name.
        name: String,
        /// Incoming function id.
        function_id: String,
        /// Registered name of the conflicting mapping.
        existing_name: String,
        /// Registered id of the conflicting mapping.
        existing_function_id: String,
    },
    /// Non-finite `advertised_at`, non-finite or negative TTL: such an entry
    /// would never expire (NaN compares false) or break the expiry order.
    #[error("invalid timing (advertised_at {advertised_at}, ttl {ttl_seconds})")]
    InvalidTiming {
        /// Incoming `advertised_at`.
        advertised_at: f64,
        /// Incoming `ttl_seconds`.
        ttl_seconds: f64,
    },
}

/// What an accepted upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upsert {
    /// A new key.
    Inserted,
    /// A newer version of a stored key.
    Replaced,
}

/// An entry and the node that owns it.
#[derive(Debug, Clone)]
struct Stored {
    origin: String,
    entry: Entry,
}

/// Expiry instant ordered with `total_cmp` (upsert admits finite values only).
#[derive(Debug, Clone, Copy)]
struct Expiry(f64);

impl PartialEq for Expiry {
    fn eq(&self, other: &Self) -> bool {
        self.0.total_cmp(&other.0).is_eq()
    }
}
impl Eq for Expiry {}
impl PartialOrd for Expiry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Expiry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// One side of the name ↔ function_id mapping, with a use count so it is
/// dropped when its last endpoint goes.
#[derive(Debug, Clone)]
struct IdentityUse {
    other: String,
    count: usize,
}

/// The discovery catalog: all entries of all kinds, indexed.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    entries: [BTreeMap<SortKey, Stored>; EntryKind::COUNT],
    /// Subscription id → sort key: the one kind whose removal key is not
    /// its sort tuple.
    topics: BTreeMap<String, SortKey>,
    namespaces: [SetIndex; EntryKind::COUNT],
    names: [SetIndex; EntryKind::COUNT],
    /// Entries whose name has ASCII upper case, under the lower-cased name:
    /// with `names` this answers case-insensitive lookups (DNS) without a
    /// scan, and stays tiny while names are lower case, as they usually are.
    folded_names: [SetIndex; EntryKind::COUNT],
    /// Services under their (namespace ignoring case, name): what a DNS
    /// question for a service asks ([`Catalog::services_named`]).
    service_pairs: ServicePairs,
    /// Services, functions and queues under the labels of their DNS
    /// namespace, reversed and lower-cased (`eu.Market` → `market.eu`), so
    /// the entries below a DNS name are one subtree of this index
    /// ([`Catalog::under_dns_suffix`]), however many namespaces exist.
    dns_suffixes: [SetIndex; EntryKind::COUNT],
    nodes: SetIndex,
    origins: SetIndex,
    expiry: BTreeSet<(Expiry, SortKey)>,
    function_names: BTreeMap<String, IdentityUse>,
    function_ids: BTreeMap<String, IdentityUse>,
    /// Counts every change (insert, removal, refresh): equal generations,
    /// equal contents (what the DNS gateway's reply cache keys on).
    generation: u64,
    /// Counts changes of the set of origins owning entries.
    origins_epoch: u64,
}

impl Catalog {
    /// An empty catalog.
    pub fn new() -> Catalog {
        Catalog::default()
    }

    /// An empty catalog whose service index hashes with `seed`. A node
    /// passes one drawn from its random seed, so advertised names cannot
    /// be chosen in advance to collide there; [`Catalog::new`] uses 0
    /// (tests, tools).
    pub fn with_seed(seed: u64) -> Catalog {
        Catalog {
            service_pairs: ServicePairs::with_seed(seed),
            ..Catalog::default()
        }
    }

    /// The seed given to [`Catalog::with_seed`]: a catalog rebuilt from
    /// this one's entries keeps it.
    pub fn seed(&self) -> u64 {
        self.service_pairs.seed()
    }

    /// The change counter: it moves with every insert, removal and
    /// refresh, so two reads at the same generation see the same entries.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// A counter that moves whenever an origin gains its first entry or
    /// loses its last, and only then: equal values, same
    /// [`Catalog::origins`] (what an invariant checker may skip on).
    pub fn origins_epoch(&self) -> u64 {
        self.origins_epoch
    }

    /// The sort key of an entry (same as [`SortKey::of`]).
    pub fn sort_key(entry: &Entry) -> SortKey {
        SortKey::of(entry)
    }

    /// Registers `entry` on behalf of `origin` under MPREG's rules: the entry
    /// is normalised; rejected if already expired at `now`, if a stored entry
    /// with the same key is at least as fresh (`advertised_at`, then
    /// `ttl_seconds`), or if it is a function whose name or id is already
    /// bound to a different id or name. Otherwise it is stored (replacing the
    /// old version, whose origin it also takes over).
    pub fn upsert(
        &mut self,
        origin: &str,
        mut entry: Entry,
        now: f64,
    ) -> Result<Upsert, CatalogError> {
        entry.normalize();
        let advertised_at = entry.advertised_at();
        let ttl_seconds = entry.ttl_seconds();
        if !advertised_at.is_finite()
            || !ttl_seconds.is_finite()
            || ttl_seconds < 0.0
            || !entry.expires_at().is_finite()
        {
            return Err(CatalogError::InvalidTiming {
                advertised_at,
                ttl_seconds,
            });
        }
        if entry.is_expired(now) {
            return Err(CatalogError::Expired {
                expires_at: entry.expires_at(),
                now,
            });
        }
        let existing = self.sort_key_of(&entry.key());
        if let Some(old) = existing.as_ref().and_then(|sk| self.stored(sk)) {
            let old_at = old.entry.advertised_at();
            let old_ttl = old.entry.ttl_seconds();
            if advertised_at < old_at || (advertised_at == old_at && ttl_seconds <= old_ttl) {
                return Err(CatalogError::Stale {
                    advertised_at,
                    ttl_seconds,
                    existing_advertised_at: old_at,
                    existing_ttl_seconds: old_ttl,
                });
            }
        }
        if let Entry::Function(f) = &entry {
            self.check_identity(&f.identity)?;
        }
        let outcome = match existing {
            Some(sk) => {
                self.remove_by_sort_key(&sk);
                Upsert::Replaced
            }
            None => Upsert::Inserted,
        };
        self.insert_new(origin.to_string(), entry);
        Ok(outcome)
    }

    /// Removes the entry with this key, unconditionally (no timestamp check,
    /// no tombstone: tombstones belong to the fabric layer).
    pub fn remove(&mut self, key: &EntryKey) -> Option<Entry> {
        let sk = self.sort_key_of(key)?;
        self.remove_by_sort_key(&sk).map(|s| s.entry)
    }

    /// Moves the entry with this key to `advertised_at = at` when that is
    /// later than its own (an owner's refresh), in place: only the expiry
    /// index changes. False when the key is absent or nothing changed.
    pub fn refresh(&mut self, key: &EntryKey, at: f64) -> bool {
        let Some(sk) = self.sort_key_of(key) else {
            return false;
        };
        let moved = refresh_stored(&mut self.entries, &mut self.expiry, &sk, at);
        self.generation += u64::from(moved);
        moved
    }

    /// [`Catalog::refresh`] for every entry `origin` stored (an owner's
    /// refresh covers all its entries), walking the origin index: no sort
    /// key is rebuilt from an entry key. Returns how many moved.
    pub fn refresh_origin(&mut self, origin: &str, at: f64) -> usize {
        let mut moved = 0;
        for sk in self.origins.get(origin) {
            moved += usize::from(refresh_stored(&mut self.entries, &mut self.expiry, sk, at));
        }
        self.generation += moved as u64;
        moved
    }

    /// The entry with this key.
    pub fn get(&self, key: &EntryKey) -> Option<&Entry> {
        self.stored_by_key(key).map(|s| &s.entry)
    }

    /// The entry at this sort key.
    pub fn get_by_sort_key(&self, key: &SortKey) -> Option<&Entry> {
        self.stored(key).map(|s| &s.entry)
    }

    /// The origin that stored the entry with this key.
    pub fn origin_of(&self, key: &EntryKey) -> Option<&str> {
        self.stored_by_key(key).map(|s| s.origin.as_str())
    }

    /// Removes every entry stored by `origin` (e.g. on its departure) and
    /// returns them in kind, then sort, order.
    pub fn remove_origin(&mut self, origin: &str) -> Vec<Entry> {
        let keys: Vec<SortKey> = self.origins.get(origin).cloned().collect();
        keys.iter()
            .filter_map(|sk| self.remove_by_sort_key(sk))
            .map(|s| s.entry)
            .collect()
    }

    /// Entries stored by `origin`, in kind, then sort, order.
    pub fn origin_entries<'a>(&'a self, origin: &str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.origins
            .get(origin)
            .filter_map(move |sk| self.stored(sk))
            .map(|s| &s.entry)
    }

    /// Removes every entry expired at `now` (`now > expires_at`) and returns
    /// how many. Walks the expiry index from its earliest instant, so the
    /// cost is proportional to what expired.
    pub fn prune_expired(&mut self, now: f64) -> usize {
        self.take_expired(now).len()
    }

    /// Like [`Catalog::prune_expired`], returning `(origin, entry)` of each
    /// removed entry in expiry order (for watchers that publish removals).
    pub fn take_expired(&mut self, now: f64) -> Vec<(String, Entry)> {
        let due: Vec<SortKey> = self
            .expiry
            .iter()
            .take_while(|(at, _)| at.0 < now)
            .map(|(_, sk)| sk.clone())
            .collect();
        due.iter()
            .filter_map(|sk| self.remove_by_sort_key(sk))
            .map(|s| (s.origin, s.entry))
            .collect()
    }

    /// The earliest `expires_at` of any stored entry: the next instant at
    /// which [`Catalog::prune_expired`] has work (strictly after it).
    pub fn next_expiry(&self) -> Option<f64> {
        self.expiry.first().map(|(at, _)| at.0)
    }

    /// Number of stored entries.
    pub fn len(&self) -> usize {
        self.entries.iter().map(BTreeMap::len).sum()
    }

    /// True when nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.entries.iter().all(BTreeMap::is_empty)
    }

    /// Number of stored entries of `kind`.
    pub fn count(&self, kind: EntryKind) -> usize {
        self.kind_map(kind).len()
    }

    /// Entries of `kind` in MPREG's output order.
    pub fn iter(&self, kind: EntryKind) -> impl Iterator<Item = &Entry> + '_ {
        self.kind_map(kind).values().map(|s| &s.entry)
    }

    /// Every entry of every kind with its origin (kind order, then sort
    /// order): for snapshots.
    pub fn iter_all(&self) -> impl Iterator<Item = (&str, &Entry)> + '_ {
        self.entries
            .iter()
            .flat_map(|m| m.values())
            .map(|s| (s.origin.as_str(), &s.entry))
    }

    /// The origins that currently own at least one entry, sorted.
    pub fn origins(&self) -> impl Iterator<Item = &str> + '_ {
        self.origins.values()
    }

    /// Entries of `kind` strictly after `after` in sort order (all of them
    /// when `None`): keyset pagination. A key of another kind compares by
    /// kind, so it yields all or nothing; callers should reject such cursors.
    pub fn range_after<'a>(
        &'a self,
        kind: EntryKind,
        after: Option<&SortKey>,
    ) -> impl Iterator<Item = (&'a SortKey, &'a Entry)> + 'a {
        let lower = match after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        self.kind_map(kind)
            .range::<SortKey, _>((lower, Bound::Unbounded))
            .map(|(k, s)| (k, &s.entry))
    }

    /// Entries of `kind` passing the namespace filter, strictly after
    /// `after`, in sort order.
    ///
    /// The filter is tested against [`Entry::filter_values`] with the
    /// dot-boundary rule. It is answered from the namespace index: a range
    /// over the namespaces in the subtree, merged; unrelated entries are not
    /// visited. Topics are indexed under every pattern prefix, so they need
    /// no scan either. Kinds a namespace does not apply to (nodes, caches,
    /// cache profiles) ignore the filter, as MPREG's `catalog_query` does.
    pub fn in_namespace<'a>(
        &'a self,
        kind: EntryKind,
        filter: &NamespaceFilter,
        after: Option<&SortKey>,
    ) -> InNamespace<'a> {
        let map = self.kind_map(kind);
        let namespaced = matches!(
            kind,
            EntryKind::Functions | EntryKind::Queues | EntryKind::Services | EntryKind::Topics
        );
        let inner = if filter.is_all() || !namespaced {
            let lower = match after {
                Some(k) => Bound::Excluded(k),
                None => Bound::Unbounded,
            };
            Inner::All(map.range::<SortKey, _>((lower, Bound::Unbounded)))
        } else {
            Inner::Merge(self.namespaces[kind.index()].subtree(filter.as_str(), after))
        };
        InNamespace { map, inner }
    }

    /// Entries of `kind` whose [`Entry::name`] is exactly `name` (function
    /// name, node id, queue name, subscription id, service name, cache role,
    /// cache profile node id), in sort order.
    pub fn by_name<'a>(
        &'a self,
        kind: EntryKind,
        name: &str,
    ) -> impl Iterator<Item = &'a Entry> + 'a {
        let map = self.kind_map(kind);
        self.names[kind.index()]
            .get(name)
            .filter_map(move |sk| map.get(sk))
            .map(|s| &s.entry)
    }

    /// Entries of `kind` (services, functions, queues) whose DNS names
    /// lie below `suffix`: those whose namespace ends with its labels,
    /// compared ignoring ASCII case (`market` finds namespaces `market` and
    /// `eu.Market`). One range of an index, not a scan, so a flood of
    /// queries for names that do not exist costs the same however large
    /// the catalog is.
    pub fn under_dns_suffix<'a>(
        &'a self,
        kind: EntryKind,
        suffix: &'a DnsSuffix,
    ) -> impl Iterator<Item = &'a Entry> + 'a {
        let map = self.kind_map(kind);
        let index = &self.dns_suffixes[kind.index()];
        index
            .get(suffix.name())
            .chain(index.starting_with(&suffix.below))
            .filter_map(move |sk| map.get(sk))
            .map(|s| &s.entry)
    }

    /// Services named `name` (exact case) whose namespace equals
    /// `namespace` ignoring ASCII case, in sort order: one lookup in their
    /// own index (`ServicePairs`), then each key in the primary map.
    /// Nothing else is visited, however many services or namespaces exist.
    pub fn services_named<'a>(&'a self, name: &str, namespace: &str) -> Vec<&'a Entry> {
        let map = self.kind_map(EntryKind::Services);
        self.service_pairs
            .get(namespace, name)
            .filter_map(|sk| map.get(sk))
            .map(|s| &s.entry)
            .collect()
    }

    /// Entries of `kind` whose name equals `name` ignoring ASCII case but
    /// is spelled otherwise, from the indexes (no scan): names in lower
    /// case are under themselves in the name index, the others under their
    /// lower-cased form in the folded index. For a lower-case `name` (what
    /// DNS asks) only the folded index can hold another spelling, so the
    /// common miss costs one lookup of a small index and no allocation.
    pub fn by_name_other_case<'a, 'n>(
        &'a self,
        kind: EntryKind,
        name: &'n str,
    ) -> impl Iterator<Item = &'a Entry> + 'n
    where
        'a: 'n,
    {
        let map = self.kind_map(kind);
        let (names, folded_names) = (&self.names[kind.index()], &self.folded_names[kind.index()]);
        let (plain, mixed) = match folded(name) {
            Some(lower) => (Some(names.get(&lower)), folded_names.get(&lower)),
            None => (None, folded_names.get(name)),
        };
        plain
            .into_iter()
            .flatten()
            .chain(mixed)
            .filter_map(move |sk| map.get(sk))
            .map(|s| &s.entry)
            .filter(move |e| e.name() != name)
    }

    /// Entries of every kind served by / held on `node_id` (kind order, then
    /// sort order): what `list_peers` reports for a peer.
    pub fn by_node<'a>(&'a self, node_id: &str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.nodes
            .get(node_id)
            .filter_map(move |sk| self.stored(sk))
            .map(|s| &s.entry)
    }

    // -- internals ---------------------------------------------------------

    fn kind_map(&self, kind: EntryKind) -> &BTreeMap<SortKey, Stored> {
        &self.entries[kind.index()]
    }

    fn stored(&self, sk: &SortKey) -> Option<&Stored> {
        self.entries[sk.kind().index()].get(sk)
    }

    /// The sort key under which the entry with removal key `key` is stored,
    /// if it is.
    fn sort_key_of(&self, key: &EntryKey) -> Option<SortKey> {
        let sk = match key {
            EntryKey::Topic { subscription_id } => self.topics.get(subscription_id)?.clone(),
            _ => SortKey::of_key(key)?,
        };
        self.stored(&sk).is_some().then_some(sk)
    }

    fn stored_by_key(&self, key: &EntryKey) -> Option<&Stored> {
        match key {
            EntryKey::Topic { subscription_id } => self.stored(self.topics.get(subscription_id)?),
            _ => self.stored(&SortKey::of_key(key)?),
        }
    }

    fn check_identity(&self, identity: &FunctionIdentity) -> Result<(), CatalogError> {
        if let Some(bound) = self.function_names.get(&identity.name) {
            if bound.other != identity.function_id {
                return Err(CatalogError::IdentityConflict {
                    name: identity.name.clone(),
                    function_id: identity.function_id.clone(),
                    existing_name: identity.name.clone(),
                    existing_function_id: bound.other.clone(),
                });
            }
        }
        if let Some(bound) = self.function_ids.get(&identity.function_id) {
            if bound.other != identity.name {
                return Err(CatalogError::IdentityConflict {
                    name: identity.name.clone(),
                    function_id: identity.function_id.clone(),
                    existing_name: bound.other.clone(),
                    existing_function_id: identity.function_id.clone(),
                });
            }
        }
        Ok(())
    }

    /// Stores a new entry (its key must be absent) and indexes it.
    fn insert_new(&mut self, origin: String, entry: Entry) {
        self.generation += 1;
        let sk = SortKey::of(&entry);
        let kind = entry.kind().index();
        if let Entry::Topic(t) = &entry {
            self.topics.insert(t.subscription_id.clone(), sk.clone());
        }
        if let Some(values) = entry.filter_values() {
            for ns in values {
                self.namespaces[kind].insert(ns, &sk);
            }
        }
        self.names[kind].insert(entry.name(), &sk);
        if let Some(folded) = folded(entry.name()) {
            self.folded_names[kind].insert(&folded, &sk);
        }
        if let Entry::Service(svc) = &entry {
            self.service_pairs.insert(&svc.namespace, &svc.name, &sk);
        }
        if let Some(suffix) = dns_suffix(&entry) {
            self.dns_suffixes[kind].insert(&suffix, &sk);
        }
        self.nodes.insert(entry.node_id(), &sk);
        if self.origins.insert(&origin, &sk) {
            self.origins_epoch += 1;
        }
        self.expiry.insert((Expiry(entry.expires_at()), sk.clone()));
        if let Entry::Function(f) = &entry {
            bind(
                &mut self.function_names,
                &f.identity.name,
                &f.identity.function_id,
            );
            bind(
                &mut self.function_ids,
                &f.identity.function_id,
                &f.identity.name,
            );
        }
        self.entries[kind].insert(sk, Stored { origin, entry });
    }

    /// Removes an entry and every index reference to it.
    fn remove_by_sort_key(&mut self, sk: &SortKey) -> Option<Stored> {
        self.generation += 1;
        let kind = sk.kind().index();
        let stored = self.entries[kind].remove(sk)?;
        let entry = &stored.entry;
        if let Entry::Topic(t) = entry {
            self.topics.remove(&t.subscription_id);
        }
        if let Some(values) = entry.filter_values() {
            for ns in values {
                self.namespaces[kind].remove(ns, sk);
            }
        }
        self.names[kind].remove(entry.name(), sk);
        if let Some(folded) = folded(entry.name()) {
            self.folded_names[kind].remove(&folded, sk);
        }
        if let Entry::Service(svc) = entry {
            self.service_pairs.remove(&svc.namespace, &svc.name, sk);
        }
        if let Some(suffix) = dns_suffix(entry) {
            self.dns_suffixes[kind].remove(&suffix, sk);
        }
        self.nodes.remove(entry.node_id(), sk);
        if self.origins.remove(&stored.origin, sk) {
            self.origins_epoch += 1;
        }
        self.expiry
            .remove(&(Expiry(entry.expires_at()), sk.clone()));
        if let Entry::Function(f) = entry {
            unbind(&mut self.function_names, &f.identity.name);
            unbind(&mut self.function_ids, &f.identity.function_id);
        }
        Some(stored)
    }

    /// Internal consistency check used by tests: every index agrees with the
    /// primary maps.
    #[cfg(test)]
    pub(crate) fn assert_consistent(&self) {
        let total: usize = self.entries.iter().map(BTreeMap::len).sum();
        assert_eq!(total, self.expiry.len());
        assert_eq!(self.topics.len(), self.count(EntryKind::Topics));
        for (sk, stored) in self.entries.iter().flatten() {
            assert_eq!(&SortKey::of(&stored.entry), sk);
            let key = stored.entry.key();
            assert_eq!(self.sort_key_of(&key).as_ref(), Some(sk));
            if !matches!(key, EntryKey::Topic { .. }) {
                assert_eq!(SortKey::of_key(&key).as_ref(), Some(sk));
            }
        }
        let mut names = 0usize;
        let mut ids = 0usize;
        for f in self.iter(EntryKind::Functions) {
            if let Entry::Function(f) = f {
                let n = self
                    .function_names
                    .get(&f.identity.name)
                    .expect("name bound");
                assert_eq!(n.other, f.identity.function_id);
                let i = self
                    .function_ids
                    .get(&f.identity.function_id)
                    .expect("id bound");
                assert_eq!(i.other, f.identity.name);
            }
        }
        for u in self.function_names.values() {
            names += u.count;
        }
        for u in self.function_ids.values() {
            ids += u.count;
        }
        assert_eq!(names, self.count(EntryKind::Functions));
        assert_eq!(ids, self.count(EntryKind::Functions));
        // The DNS suffix index holds exactly the entries that have a suffix
        // (a removal that left a key behind would show here).
        for kind in EntryKind::ALL {
            let with_suffix = self.iter(kind).filter(|e| dns_suffix(e).is_some()).count();
            assert_eq!(self.dns_suffixes[kind.index()].key_count(), with_suffix);
        }
        assert_eq!(
            self.service_pairs.key_count(),
            self.count(EntryKind::Services)
        );
        for (sk, stored) in &self.entries[EntryKind::Services.index()] {
            if let Entry::Service(s) = &stored.entry {
                assert!(
                    self.service_pairs
                        .get(&s.namespace, &s.name)
                        .any(|k| k == sk),
                    "{sk:?} filed under its namespace and name"
                );
            }
        }
    }
}

fn bind(map: &mut BTreeMap<String, IdentityUse>, from: &str, to: &str) {
    map.entry(from.to_string())
        .or_insert_with(|| IdentityUse {
            other: to.to_string(),
            count: 0,
        })
        .count += 1;
}

fn unbind(map: &mut BTreeMap<String, IdentityUse>, from: &str) {
    if let Some(u) = map.get_mut(from) {
        u.count = u.count.saturating_sub(1);
        if u.count == 0 {
            map.remove(from);
        }
    }
}

/// Iterator returned by [`Catalog::in_namespace`]: `(sort key, entry)` in
/// sort order.
pub struct InNamespace<'a> {
    map: &'a BTreeMap<SortKey, Stored>,
    inner: Inner<'a>,
}

enum Inner<'a> {
    All(std::collections::btree_map::Range<'a, SortKey, Stored>),
    Merge(MergeKeys<'a>),
}

impl<'a> Iterator for InNamespace<'a> {
    type Item = (&'a SortKey, &'a Entry);

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Inner::All(range) => range.next().map(|(k, s)| (k, &s.entry)),
            Inner::Merge(keys) => loop {
                let sk = keys.next()?;
                if let Some((k, s)) = self.map.get_key_value(sk) {
                    return Some((k, &s.entry));
                }
            },
        }
    }
}

/// `name` lower-cased when it has ASCII upper case (the folded index key).
fn folded(name: &str) -> Option<String> {
    name.bytes()
        .any(|b| b.is_ascii_uppercase())
        .then(|| name.to_ascii_lowercase())
}

/// A DNS name relative to its zone, as [`Catalog::under_dns_suffix`]
/// searches for it: its labels reversed and lower-cased, with a final dot
/// (`nothere.ns17` → `ns17.nothere.`), so the index values below it are
/// the name itself and one contiguous range of those starting with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsSuffix {
    below: String,
}

impl DnsSuffix {
    /// The suffix of `labels` (most specific first). `None` when there are
    /// no labels or one is empty or holds a dot (DNS allows `a\.b`): no
    /// namespace is below such a name.
    pub fn new(labels: &[&str]) -> Option<DnsSuffix> {
        if labels.is_empty() || labels.iter().any(|l| l.is_empty() || l.contains('.')) {
            return None;
        }
        let mut below = String::with_capacity(labels.iter().map(|l| l.len() + 1).sum());
        for label in labels.iter().rev() {
            below.push_str(label);
            below.push('.');
        }
        below.make_ascii_lowercase();
        Some(DnsSuffix { below })
    }

    /// The reversed name without the final dot.
    fn name(&self) -> &str {
        self.below.strip_suffix('.').unwrap_or(&self.below)
    }
}

/// The key of an entry in [`Catalog::under_dns_suffix`]' index: the labels
/// of the namespace its DNS names end with (a service's namespace, the
/// part of a function or queue name before its last dot), reversed and
/// lower-cased. `None` for other kinds and for the empty namespace (no
/// name sits below the root through it).
fn dns_suffix(entry: &Entry) -> Option<String> {
    let namespace = match entry {
        Entry::Service(s) => s.namespace.as_str(),
        Entry::Function(f) => name_namespace(&f.identity.name),
        Entry::Queue(q) => name_namespace(&q.queue_name),
        _ => return None,
    };
    if namespace.is_empty() {
        return None;
    }
    let mut reversed = String::with_capacity(namespace.len());
    for (i, label) in namespace.rsplit('.').enumerate() {
        if i > 0 {
            reversed.push('.');
        }
        reversed.push_str(label);
    }
    reversed.make_ascii_lowercase();
    Some(reversed)
}

/// Moves the entry at `sk` to `advertised_at = at` when that is later than
/// its own, and its expiry index entry with it. Only a later, finite time
/// whose expiry stays finite moves it (upsert admits finite expiries only;
/// the index stays that way).
fn refresh_stored(
    entries: &mut [BTreeMap<SortKey, Stored>; EntryKind::COUNT],
    expiry: &mut BTreeSet<(Expiry, SortKey)>,
    sk: &SortKey,
    at: f64,
) -> bool {
    let Some(stored) = entries[sk.kind().index()].get_mut(sk) else {
        return false;
    };
    let before = stored.entry.expires_at();
    let after = at + stored.entry.ttl_seconds();
    if !(at.is_finite() && at > stored.entry.advertised_at() && after.is_finite()) {
        return false;
    }
    stored.entry.refresh(at);
    expiry.remove(&(Expiry(before), sk.clone()));
    expiry.insert((Expiry(after), sk.clone()));
    true
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
