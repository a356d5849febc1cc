//! Sort keys and the secondary indexes of the catalog.
//!
//! Every kind has an *output order* (`client_protocol.md` §3.5): functions by
//! `(name, function_id, version, cluster_id, node_id)`, nodes by `(cluster_id,
//! node_id)`, and so on. A [`SortKey`] is that tuple, materialised. The
//! catalog stores each kind in a map ordered by it, so listing in MPREG's order
//! is a walk, and a page boundary is just "the last key I returned": keyset
//! pagination that stays stable while the catalog changes (DESIGN.md §5).
//!
//! Within one kind the sort key is unique per [`EntryKey`](super::EntryKey):
//! it contains every field of the removal key (functions append their resource
//! list; topics are keyed by subscription id, which is the last component).
//!
//! The secondary indexes map a string (namespace, name, node id, origin) to
//! the set of sort keys under it. A namespace subtree query is then a range
//! over the namespaces `N` and `N.…` followed by a k-way merge of their
//! (already sorted) key sets, so results come out in sort order without
//! scanning unrelated entries.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::binary_heap::BinaryHeap;
use std::collections::{btree_set, BTreeMap, BTreeSet};
use std::fmt;
use std::hash::BuildHasher;
use std::ops::Bound;
use std::sync::Arc;

use foldhash::quality::FixedState;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smallvec::SmallVec;

use super::entry::{Entry, EntryKey, EntryKind, FunctionIdentity};

/// Position of an entry in its kind's output order; also the keyset
/// pagination cursor.
///
/// Ordered by kind first, then MPREG's sort tuple component by component.
/// Numbers are encoded so that string order is numeric order (ports padded
/// to five digits; `MAJOR.MINOR.PATCH` versions padded per component, after
/// which non-numeric versions follow in string order). [`SortKey::to_cursor`]
/// gives a compact string and [`SortKey::parse`] reads it back, rejecting
/// malformed (untrusted) input with an error.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SortKey {
    kind: EntryKind,
    /// [`head`] of the first component. Compared before the components
    /// (derived `Ord` goes field by field), it orders as they do wherever
    /// it differs, so most comparisons of a map's descent end on one
    /// integer, without reading the shared components. It fits the
    /// padding after `kind`: the key is no larger for it.
    head: u32,
    /// Shared, not copied: the catalog's primary map and each secondary
    /// index hold the same key, so a clone is a reference count.
    parts: Arc<[Box<str>]>,
}

/// The first four bytes of a component, big-endian, zero-padded (0 for no
/// component). If two heads differ, the components compare as their heads
/// do: the first differing byte decides both, and a component that ends
/// there (padded with 0) is a prefix of the other, so sorts first. Equal
/// heads decide nothing.
pub(crate) fn head(part: Option<&str>) -> u32 {
    let mut bytes = [0u8; 4];
    if let Some(p) = part {
        let n = p.len().min(4);
        bytes[..n].copy_from_slice(&p.as_bytes()[..n]);
    }
    u32::from_be_bytes(bytes)
}

/// The services named `name` in a namespace, whatever the namespace's ASCII
/// case: what a DNS question for `<svc>.<ns>` asks. Keyed by a seeded hash
/// of `(namespace lower-cased, name)`: the question finds its keys with one
/// descent of a map of integers, then fetches each from the primary map,
/// instead of a range search of the primary map from a borrowed key plus
/// the name index (about 800 of an SRV answer's 17,000 instructions).
///
/// Names whose hashes collide share an entry; [`ServicePairs::get`] checks
/// each key against the question, so a collision costs a comparison, never
/// a wrong answer. A node seeds the hash from its own random seed
/// ([`Catalog::with_seed`](super::Catalog::with_seed)), so names cannot be
/// chosen in advance to pile into one entry. A B-tree, not a hash table:
/// iteration stays deterministic for a given seed.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServicePairs {
    /// Hash → the keys under it, sorted (the primary map's order).
    map: BTreeMap<u64, SmallVec<[SortKey; 1]>>,
    /// Seed of the hash (0 unless the owner gave one).
    seed: u64,
}

impl ServicePairs {
    /// An empty index hashing with `seed`.
    pub(crate) fn with_seed(seed: u64) -> ServicePairs {
        ServicePairs {
            map: BTreeMap::new(),
            seed,
        }
    }

    /// The seed it hashes with.
    pub(crate) fn seed(&self) -> u64 {
        self.seed
    }

    fn hash(&self, namespace: &str, name: &str) -> u64 {
        // DNS hands over lower-cased labels: fold (and allocate) only when
        // there is something to fold.
        let lower: Cow<'_, str> = if namespace.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(namespace.to_ascii_lowercase())
        } else {
            Cow::Borrowed(namespace)
        };
        FixedState::with_seed(self.seed).hash_one((&*lower, name))
    }

    /// Files a service's `key` under its namespace and name.
    pub(crate) fn insert(&mut self, namespace: &str, name: &str, key: &SortKey) {
        let hash = self.hash(namespace, name);
        let keys = self.map.entry(hash).or_default();
        if let Err(at) = keys.binary_search(key) {
            keys.insert(at, key.clone());
        }
    }

    /// Unfiles a service's `key`.
    pub(crate) fn remove(&mut self, namespace: &str, name: &str, key: &SortKey) {
        let hash = self.hash(namespace, name);
        if let Some(keys) = self.map.get_mut(&hash) {
            if let Ok(at) = keys.binary_search(key) {
                keys.remove(at);
            }
            if keys.is_empty() {
                self.map.remove(&hash);
            }
        }
    }

    /// Keys of the services named `name` (exact case) whose namespace
    /// equals `namespace` ignoring ASCII case, in sort order.
    pub(crate) fn get<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a SortKey> + 'a {
        self.map
            .get(&self.hash(namespace, name))
            .into_iter()
            .flatten()
            .filter(move |key| {
                key.part(0)
                    .is_some_and(|ns| ns.eq_ignore_ascii_case(namespace))
                    && key.part(1) == Some(name)
            })
    }

    /// Keys filed (for consistency checks).
    #[cfg(test)]
    pub(crate) fn key_count(&self) -> usize {
        self.map.values().map(SmallVec::len).sum()
    }
}

/// A cursor string that is not a valid [`SortKey`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SortKeyError {
    /// Longer than [`SortKey::MAX_CURSOR_LEN`].
    #[error("invalid cursor: longer than {0} bytes")]
    TooLong(usize),
    /// The kind prefix is not a plural kind name.
    #[error("invalid cursor: unknown kind")]
    UnknownKind,
    /// A `%` not followed by `25` or `7C`.
    #[error("invalid cursor: bad escape")]
    BadEscape,
    /// Wrong number of components for the kind.
    #[error("invalid cursor: wrong number of components")]
    WrongArity,
    /// A numeric component that is not well formed.
    #[error("invalid cursor: malformed component")]
    BadComponent,
}

/// Separator between cursor components.
const SEP: char = '|';

impl SortKey {
    /// Upper bound on the cursor length accepted by [`SortKey::parse`].
    pub const MAX_CURSOR_LEN: usize = 16 * 1024;

    /// The sort key of an entry.
    pub fn of(entry: &Entry) -> SortKey {
        match entry {
            Entry::Function(e) => {
                Self::function(&e.identity, &e.cluster_id, &e.node_id, &e.resources)
            }
            Entry::Node(e) => Self::build(EntryKind::Nodes, [&e.cluster_id, &e.node_id]),
            Entry::Queue(e) => Self::build(
                EntryKind::Queues,
                [&e.queue_name, &e.cluster_id, &e.node_id],
            ),
            Entry::Service(e) => Self::service(
                &e.namespace,
                &e.name,
                &e.protocol,
                e.port,
                &e.cluster_id,
                &e.node_id,
            ),
            Entry::Topic(e) => Self::build(
                EntryKind::Topics,
                [&e.cluster_id, &e.node_id, &e.subscription_id],
            ),
            Entry::Cache(e) => Self::build(EntryKind::Caches, [&e.role, &e.cluster_id, &e.node_id]),
            Entry::CacheProfile(e) => {
                Self::build(EntryKind::CacheProfiles, [&e.cluster_id, &e.node_id])
            }
        }
    }

    /// The sort key of the entry a removal key names, without the entry:
    /// for every kind but topics the key holds exactly the sort tuple's
    /// fields, so the catalog needs no key → sort key map for them. A topic
    /// is keyed by its subscription id alone and sorts by cluster and node
    /// first: `None`.
    pub fn of_key(key: &EntryKey) -> Option<SortKey> {
        Some(match key {
            EntryKey::Function {
                cluster_id,
                node_id,
                identity,
                resources,
            } => Self::function(identity, cluster_id, node_id, resources),
            EntryKey::Node {
                cluster_id,
                node_id,
            } => Self::build(EntryKind::Nodes, [cluster_id, node_id]),
            EntryKey::Queue {
                cluster_id,
                node_id,
                queue_name,
            } => Self::build(EntryKind::Queues, [queue_name, cluster_id, node_id]),
            EntryKey::Service {
                cluster_id,
                node_id,
                namespace,
                name,
                protocol,
                port,
            } => Self::service(namespace, name, protocol, *port, cluster_id, node_id),
            EntryKey::Cache {
                cluster_id,
                node_id,
                role,
            } => Self::build(EntryKind::Caches, [role, cluster_id, node_id]),
            EntryKey::CacheProfile {
                cluster_id,
                node_id,
            } => Self::build(EntryKind::CacheProfiles, [cluster_id, node_id]),
            EntryKey::Topic { .. } => return None,
        })
    }

    fn function(
        identity: &FunctionIdentity,
        cluster_id: &str,
        node_id: &str,
        resources: &BTreeSet<String>,
    ) -> SortKey {
        let version = version_part(&identity.version);
        let head = [
            identity.name.as_str(),
            identity.function_id.as_str(),
            version.as_str(),
            cluster_id,
            node_id,
        ];
        Self::build(
            EntryKind::Functions,
            head.into_iter().chain(resources.iter().map(String::as_str)),
        )
    }

    fn service(
        namespace: &str,
        name: &str,
        protocol: &str,
        port: u16,
        cluster_id: &str,
        node_id: &str,
    ) -> SortKey {
        let port = port_part(port);
        Self::build(
            EntryKind::Services,
            [
                namespace,
                name,
                protocol,
                port.as_str(),
                cluster_id,
                node_id,
            ],
        )
    }

    fn build<S: AsRef<str>>(kind: EntryKind, parts: impl IntoIterator<Item = S>) -> SortKey {
        let parts: Arc<[Box<str>]> = parts.into_iter().map(|p| Box::from(p.as_ref())).collect();
        SortKey {
            kind,
            head: head(parts.first().map(|p| &**p)),
            parts,
        }
    }

    /// The kind this key orders (a cursor for another kind must not be used
    /// to page this one; callers should check).
    pub fn kind(&self) -> EntryKind {
        self.kind
    }

    /// Component `i` (`None` past the last).
    pub(crate) fn part(&self, i: usize) -> Option<&str> {
        self.parts.get(i).map(|p| &**p)
    }

    /// Compact string form: `<kind>|<component>|...`, with `%` and `|`
    /// inside components escaped as `%25` and `%7C`.
    pub fn to_cursor(&self) -> String {
        let mut out = String::from(self.kind.as_str());
        for part in self.parts.iter() {
            out.push(SEP);
            for c in part.chars() {
                match c {
                    '%' => out.push_str("%25"),
                    SEP => out.push_str("%7C"),
                    c => out.push(c),
                }
            }
        }
        out
    }

    /// Parses [`SortKey::to_cursor`] output. Never panics; any malformed
    /// input is an error.
    pub fn parse(cursor: &str) -> Result<SortKey, SortKeyError> {
        if cursor.len() > Self::MAX_CURSOR_LEN {
            return Err(SortKeyError::TooLong(Self::MAX_CURSOR_LEN));
        }
        let mut pieces = cursor.split(SEP);
        let kind = pieces
            .next()
            .and_then(|k| EntryKind::ALL.into_iter().find(|kind| kind.as_str() == k))
            .ok_or(SortKeyError::UnknownKind)?;
        let parts = pieces.map(unescape).collect::<Result<Vec<_>, _>>()?;
        let arity_ok = match kind {
            EntryKind::Functions => parts.len() >= 5,
            EntryKind::Nodes | EntryKind::CacheProfiles => parts.len() == 2,
            EntryKind::Queues | EntryKind::Topics | EntryKind::Caches => parts.len() == 3,
            EntryKind::Services => parts.len() == 6,
        };
        if !arity_ok {
            return Err(SortKeyError::WrongArity);
        }
        let well_formed = match kind {
            EntryKind::Functions => parts
                .get(2)
                .is_some_and(|v| v.starts_with('0') || v.starts_with('1')),
            EntryKind::Services => parts.get(3).is_some_and(|p| {
                p.len() == 5 && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
            }),
            _ => true,
        };
        if !well_formed {
            return Err(SortKeyError::BadComponent);
        }
        let parts: Arc<[Box<str>]> = parts.into_iter().map(String::into_boxed_str).collect();
        Ok(SortKey {
            kind,
            head: head(parts.first().map(|p| &**p)),
            parts,
        })
    }
}

impl fmt::Display for SortKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_cursor())
    }
}

impl std::str::FromStr for SortKey {
    type Err = SortKeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SortKey::parse(s)
    }
}

impl Serialize for SortKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_cursor())
    }
}

impl<'de> Deserialize<'de> for SortKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        SortKey::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// Reverses the escaping of [`SortKey::to_cursor`].
fn unescape(piece: &str) -> Result<String, SortKeyError> {
    let mut out = String::with_capacity(piece.len());
    let mut rest = piece;
    while let Some(idx) = rest.find('%') {
        out.push_str(&rest[..idx]);
        let after = &rest[idx + 1..];
        let code = after.get(..2).ok_or(SortKeyError::BadEscape)?;
        match code {
            "25" => out.push('%'),
            "7C" | "7c" => out.push(SEP),
            _ => return Err(SortKeyError::BadEscape),
        }
        rest = &after[2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Ports sort numerically as five-digit strings.
fn port_part(port: u16) -> String {
    format!("{port:05}")
}

/// Versions sort numerically when they are `MAJOR.MINOR.PATCH` (prefix `0`,
/// 20-digit padded components, then the raw text so `01.0.0` and `1.0.0` stay
/// distinct); anything else sorts after them by text (prefix `1`).
fn version_part(version: &str) -> String {
    let numbers: Option<Vec<u64>> = {
        let pieces: Vec<&str> = version.split('.').collect();
        if pieces.len() == 3 {
            pieces
                .iter()
                .map(|p| {
                    if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
                        p.parse::<u64>().ok()
                    } else {
                        None
                    }
                })
                .collect()
        } else {
            None
        }
    };
    match numbers.as_deref() {
        Some([major, minor, patch]) => format!("0{major:020}{minor:020}{patch:020}{version}"),
        _ => format!("1{version}"),
    }
}

/// String → set of sort keys, the shape of every secondary index.
#[derive(Debug, Clone, Default)]
pub(crate) struct SetIndex {
    map: BTreeMap<String, BTreeSet<SortKey>>,
}

impl SetIndex {
    /// Files `key` under `value`; true when `value` is new to the index.
    pub(crate) fn insert(&mut self, value: &str, key: &SortKey) -> bool {
        // Look up by `&str` first: the value is usually there already, and
        // copying it into a `String` for `entry` would allocate every time.
        if let Some(set) = self.map.get_mut(value) {
            set.insert(key.clone());
            return false;
        }
        self.map
            .insert(value.to_string(), BTreeSet::from([key.clone()]));
        true
    }

    /// Unfiles `key` from `value`; true when that was `value`'s last key.
    pub(crate) fn remove(&mut self, value: &str, key: &SortKey) -> bool {
        if let Some(set) = self.map.get_mut(value) {
            set.remove(key);
            if set.is_empty() {
                self.map.remove(value);
                return true;
            }
        }
        false
    }

    /// Keys under exactly `value`, in order.
    pub(crate) fn get(&self, value: &str) -> impl Iterator<Item = &SortKey> + '_ {
        self.map.get(value).into_iter().flatten()
    }

    /// Keys under every value starting with `prefix`, value by value.
    pub(crate) fn starting_with<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = &'a SortKey> + 'a {
        self.map
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |(value, _)| value.starts_with(prefix))
            .flat_map(|(_, set)| set)
    }

    /// The distinct values, sorted.
    pub(crate) fn values(&self) -> impl Iterator<Item = &str> + '_ {
        self.map.keys().map(String::as_str)
    }

    /// Number of keys filed, counted once per value they are under.
    #[cfg(test)]
    pub(crate) fn key_count(&self) -> usize {
        self.map.values().map(BTreeSet::len).sum()
    }

    /// Number of distinct values.
    #[cfg(test)]
    pub(crate) fn values_len(&self) -> usize {
        self.map.len()
    }

    /// Keys under the dot-boundary subtree `root` (`root` itself and every
    /// `root.…`), strictly after `after`, merged into one ordered,
    /// duplicate-free stream. `root` must be non-empty.
    pub(crate) fn subtree<'a>(&'a self, root: &str, after: Option<&SortKey>) -> MergeKeys<'a> {
        let lower = match after {
            Some(k) => Bound::Excluded(k),
            None => Bound::Unbounded,
        };
        let mut runs = Vec::new();
        if let Some(set) = self.map.get(root) {
            runs.push(set.range::<SortKey, _>((lower, Bound::Unbounded)));
        }
        // Every string starting with `root.` lies in [`root.`, `root/`):
        // '/' is the byte after '.'.
        let start = format!("{root}.");
        let end = format!("{root}/");
        for (_, set) in self.map.range::<str, _>((
            Bound::Included(start.as_str()),
            Bound::Excluded(end.as_str()),
        )) {
            runs.push(set.range::<SortKey, _>((lower, Bound::Unbounded)));
        }
        MergeKeys::new(runs)
    }
}

/// K-way merge of sorted key runs, dropping duplicates (a topic listed under
/// two prefixes of the same subtree comes out once).
pub(crate) struct MergeKeys<'a> {
    runs: Vec<btree_set::Range<'a, SortKey>>,
    heap: BinaryHeap<Reverse<(&'a SortKey, usize)>>,
    last: Option<&'a SortKey>,
}

impl<'a> MergeKeys<'a> {
    fn new(mut runs: Vec<btree_set::Range<'a, SortKey>>) -> MergeKeys<'a> {
        let mut heap = BinaryHeap::with_capacity(runs.len());
        for (i, run) in runs.iter_mut().enumerate() {
            if let Some(k) = run.next() {
                heap.push(Reverse((k, i)));
            }
        }
        MergeKeys {
            runs,
            heap,
            last: None,
        }
    }
}

impl<'a> Iterator for MergeKeys<'a> {
    type Item = &'a SortKey;

    fn next(&mut self) -> Option<&'a SortKey> {
        loop {
            let Reverse((key, i)) = self.heap.pop()?;
            if let Some(next) = self.runs.get_mut(i).and_then(Iterator::next) {
                self.heap.push(Reverse((next, i)));
            }
            if self.last == Some(key) {
                continue;
            }
            self.last = Some(key);
            return Some(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::entry::{
        FunctionEndpoint, FunctionIdentity, NodeDescriptor, ServiceEndpoint,
    };

    fn func(name: &str, version: &str) -> Entry {
        FunctionEndpoint::new(FunctionIdentity::new(name, name, version), "n", "c").into()
    }

    #[test]
    fn function_order_is_name_id_version_numeric() {
        let a = SortKey::of(&func("a", "9.0.0"));
        let b = SortKey::of(&func("a", "10.0.0"));
        let c = SortKey::of(&func("a", "beta"));
        let d = SortKey::of(&func("b", "1.0.0"));
        assert!(a < b && b < c && c < d);
        assert_ne!(
            SortKey::of(&func("a", "1.0.0")),
            SortKey::of(&func("a", "01.0.0"))
        );
    }

    #[test]
    fn service_ports_sort_numerically() {
        let s = |port| {
            SortKey::of(
                &ServiceEndpoint::new("svc", "ns", "tcp", port)
                    .owned_by("n", "c")
                    .into(),
            )
        };
        assert!(s(9) < s(80));
        assert!(s(80) < s(443));
        assert!(s(443) < s(65535));
    }

    #[test]
    fn cursor_round_trip_with_escapes() {
        let e: Entry = NodeDescriptor::new("ws://h:1|x%y", "c|%7C").into();
        let key = SortKey::of(&e);
        let cursor = key.to_cursor();
        assert_eq!(SortKey::parse(&cursor), Ok(key.clone()));
        let json = serde_json::to_string(&key).unwrap();
        assert_eq!(serde_json::from_str::<SortKey>(&json).unwrap(), key);
        let f = SortKey::of(&func("a.b", "1.2.3"));
        assert_eq!(SortKey::parse(&f.to_cursor()), Ok(f));
    }

    #[test]
    fn bad_cursors_are_errors() {
        assert_eq!(SortKey::parse(""), Err(SortKeyError::UnknownKind));
        assert_eq!(SortKey::parse("bogus|a|b"), Err(SortKeyError::UnknownKind));
        assert_eq!(SortKey::parse("nodes|a"), Err(SortKeyError::WrongArity));
        assert_eq!(SortKey::parse("nodes|a%|b"), Err(SortKeyError::BadEscape));
        assert_eq!(SortKey::parse("nodes|a%2"), Err(SortKeyError::BadEscape));
        assert_eq!(SortKey::parse("nodes|a%é1|b"), Err(SortKeyError::BadEscape));
        assert_eq!(
            SortKey::parse("services|ns|n|tcp|80|c|n"),
            Err(SortKeyError::BadComponent)
        );
        assert_eq!(
            SortKey::parse("services|ns|n|tcp|99999|c|n"),
            Err(SortKeyError::BadComponent)
        );
        assert_eq!(
            SortKey::parse("functions|a|a|x|c|n"),
            Err(SortKeyError::BadComponent)
        );
        let long = "nodes|".to_string() + &"x".repeat(SortKey::MAX_CURSOR_LEN);
        assert!(matches!(
            SortKey::parse(&long),
            Err(SortKeyError::TooLong(_))
        ));
    }

    proptest::proptest! {
        #![proptest_config(crate::catalog::testutil::config(256))]

        #[test]
        fn parse_never_panics(s in "\\PC{0,64}") {
            let _ = SortKey::parse(&s);
        }

        #[test]
        fn cursor_round_trips(a in "\\PC{0,16}", b in "[%|a-z]{0,8}") {
            let key = SortKey::of(&NodeDescriptor::new(a, b).into());
            proptest::prop_assert_eq!(SortKey::parse(&key.to_cursor()), Ok(key));
        }
    }

    proptest::proptest! {
        #![proptest_config(crate::catalog::testutil::config(512))]

        /// The head compared first changes nothing: keys order as their
        /// components do, NUL bytes and components shorter than the head
        /// (zero padding) included.
        #[test]
        fn keys_order_as_their_components(
            a in proptest::collection::vec("[ab\\x00]{0,6}", 0..4),
            b in proptest::collection::vec("[ab\\x00]{0,6}", 0..4),
        ) {
            let ka = SortKey::build(EntryKind::Services, &a);
            let kb = SortKey::build(EntryKind::Services, &b);
            proptest::prop_assert_eq!(ka.cmp(&kb), a.cmp(&b));
            proptest::prop_assert_eq!(ka == kb, a == b);
        }
    }

    fn service_key(namespace: &str, name: &str) -> SortKey {
        SortKey::build(EntryKind::Services, [namespace, name, "ws://n:1"])
    }

    #[test]
    fn service_pairs_match_the_namespace_in_any_case_and_the_name_exactly() {
        let mut pairs = ServicePairs::with_seed(0x5eed);
        let key = service_key("Market.EU", "svc");
        pairs.insert("Market.EU", "svc", &key);
        for ns in ["market.eu", "MARKET.EU", "Market.EU"] {
            assert_eq!(pairs.get(ns, "svc").collect::<Vec<_>>(), [&key], "{ns}");
        }
        assert_eq!(pairs.get("market.eu", "Svc").count(), 0);
        assert_eq!(pairs.get("market", "svc").count(), 0);
        pairs.remove("market.eu", "svc", &key);
        assert_eq!(pairs.key_count(), 0);
        assert!(pairs.map.is_empty(), "an emptied entry is dropped");
    }

    #[test]
    fn service_pairs_keep_keys_sorted_and_unique() {
        let mut pairs = ServicePairs::default();
        let keys = ["ws://c:1", "ws://a:1", "ws://b:1"]
            .map(|url| SortKey::build(EntryKind::Services, ["ns", "svc", url]));
        for k in keys.iter().chain(&keys) {
            pairs.insert("ns", "svc", k);
        }
        let mut sorted = keys.to_vec();
        sorted.sort();
        assert_eq!(pairs.get("ns", "svc").cloned().collect::<Vec<_>>(), sorted);
    }

    /// Names whose hashes collide share an entry; a question gets only the
    /// keys that are really its own.
    #[test]
    fn service_pairs_filter_a_colliding_entry() {
        let mut pairs = ServicePairs::default();
        let theirs = service_key("a", "svc");
        let ours = service_key("b", "api");
        pairs.insert("a", "svc", &theirs);
        pairs.insert("b", "api", &ours);
        // Force the collision: file their key under our hash too.
        let hash = pairs.hash("b", "api");
        let entry = pairs.map.entry(hash).or_default();
        entry.push(theirs.clone());
        entry.sort();
        assert_eq!(pairs.get("b", "api").collect::<Vec<_>>(), [&ours]);
        assert_eq!(pairs.get("a", "svc").collect::<Vec<_>>(), [&theirs]);
    }

    #[test]
    fn the_head_costs_no_space() {
        assert_eq!(std::mem::size_of::<SortKey>(), 24);
    }

    #[test]
    fn subtree_merge_is_ordered_and_deduplicated() {
        let keys: Vec<SortKey> = ["a", "b", "c", "d"]
            .iter()
            .map(|n| SortKey::of(&NodeDescriptor::new(*n, "c").into()))
            .collect();
        let mut idx = SetIndex::default();
        idx.insert("svc", &keys[3]);
        idx.insert("svc.x", &keys[0]);
        idx.insert("svc.x", &keys[2]);
        idx.insert("svc.y.z", &keys[1]);
        idx.insert("svc.y.z", &keys[2]);
        idx.insert("svcx", &keys[0]);
        idx.insert("sv", &keys[1]);
        let got: Vec<&SortKey> = idx.subtree("svc", None).collect();
        assert_eq!(got, vec![&keys[0], &keys[1], &keys[2], &keys[3]]);
        let got: Vec<&SortKey> = idx.subtree("svc", Some(&keys[1])).collect();
        assert_eq!(got, vec![&keys[2], &keys[3]]);
        let got: Vec<&SortKey> = idx.subtree("svc.y", None).collect();
        assert_eq!(got, vec![&keys[1], &keys[2]]);
        idx.remove("svc.y.z", &keys[1]);
        idx.remove("svc.y.z", &keys[2]);
        assert_eq!(idx.subtree("svc.y", None).count(), 0);
        assert_eq!(idx.values_len(), 4);
    }
}
