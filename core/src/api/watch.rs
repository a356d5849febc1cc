//! `catalog_watch` (`client_protocol.md` §3.6, `discovery_logic.md` §7.4) and
//! the catalog delta notifications it points at.
//!
//! The RPC only validates the request and names the topic; the client then
//! subscribes to it with `pubsub-subscribe`. The node publishes a
//! `DiscoveryDeltaMessage` on those topics whenever its catalog changes:
//! [`delta_notifications`] builds them from a [`CatalogChange`], and
//! [`delta_visible_to`] / [`delta_message`] filter them per subscriber.
//!
//! Topics: `mpreg.discovery.delta` carries every change;
//! `mpreg.discovery.delta.<ns>` carries the part of a change that lies in
//! namespace `<ns>` under the one dot-boundary rule, so a watcher of
//! `svc.market` also sees `svc.market.eu` (MPREG publishes a delta only on
//! the exact namespaces it tags, and always the whole delta).

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::request::Payload;
use super::Ctx;
use crate::catalog::entry::Entry;
use crate::catalog::namespace::NamespaceFilter;
use crate::catalog::scope::{visible_at, Scope};
use crate::node::Identity;
use crate::wire::client::RpcError;

/// The topic every catalog delta is published on.
pub const DELTA_TOPIC: &str = "mpreg.discovery.delta";

/// The `event` header of delta notifications.
pub const DELTA_EVENT: &str = "discovery.catalog_delta";

/// What one watcher may receive: the `catalog_watch` request's namespace,
/// scope and cluster, with the scope's location limit applied.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchFilter {
    /// Namespace subtree (all namespaces when empty).
    pub namespace: NamespaceFilter,
    /// Requested scope: entries must be advertised at least this wide.
    pub scope: Option<Scope>,
    /// Only entries of this cluster (the request's `cluster_id`, or this
    /// cluster for scope `local` / `zone`).
    pub cluster_id: Option<String>,
    /// Only entries of this node (this node for scope `local`).
    pub node_id: Option<String>,
    /// The request contradicts itself (scope `zone` with another cluster):
    /// nothing is visible.
    pub nothing: bool,
}

impl WatchFilter {
    /// The filter that lets everything through (the root topic).
    pub fn all() -> WatchFilter {
        WatchFilter {
            namespace: NamespaceFilter::all(),
            scope: None,
            cluster_id: None,
            node_id: None,
            nothing: false,
        }
    }

    /// Only namespace `ns` (and everything under it).
    pub fn namespace(ns: &str) -> WatchFilter {
        WatchFilter {
            namespace: NamespaceFilter::parse(ns),
            ..WatchFilter::all()
        }
    }

    /// The filter of a `catalog_watch` request made to node `me`: the
    /// request's `namespace`, `scope` (1003 if unknown) and `cluster_id`.
    /// `local` limits to `me`, `zone` to `me`'s cluster; a `cluster_id`
    /// naming another cluster than the limit makes the filter match nothing.
    pub fn from_request(
        me: &Identity,
        payload: &Map<String, Value>,
    ) -> Result<WatchFilter, RpcError> {
        let p = Payload::new("catalog_watch", payload);
        Self::parse(me, &p)
    }

    fn parse(me: &Identity, p: &Payload<'_>) -> Result<WatchFilter, RpcError> {
        let scope = p.scope()?;
        let namespace = NamespaceFilter::parse(p.str("namespace")?.as_deref().unwrap_or(""));
        let requested = p.str("cluster_id")?;
        let _tenant = p.str("viewer_tenant_id")?;
        let (limit_cluster, node_id) = match scope {
            Some(Scope::Local) => (Some(me.cluster_id.clone()), Some(me.node_id.clone())),
            Some(Scope::Zone) => (Some(me.cluster_id.clone()), None),
            _ => (None, None),
        };
        let nothing = matches!((&limit_cluster, &requested), (Some(a), Some(b)) if a != b);
        Ok(WatchFilter {
            namespace,
            scope,
            cluster_id: requested.or(limit_cluster),
            node_id,
            nothing,
        })
    }

    /// The topic a watcher with this filter subscribes to:
    /// `mpreg.discovery.delta` or `mpreg.discovery.delta.<namespace>`.
    pub fn topic(&self) -> String {
        delta_topic(self.namespace.as_str())
    }
}

/// `mpreg.discovery.delta` for `""`, else `mpreg.discovery.delta.<ns>`.
pub fn delta_topic(ns: &str) -> String {
    if ns.is_empty() {
        DELTA_TOPIC.to_string()
    } else {
        format!("{DELTA_TOPIC}.{ns}")
    }
}

/// Whether one changed (added, updated or removed) entry may be delivered
/// to a watcher with `filter`:
/// - the filter is not contradictory;
/// - `cluster_id` / `node_id`, when set, equal the entry's;
/// - with a scope, the entry is advertised at least that wide
///   ([`visible_at`]);
/// - with a namespace, one of the entry's namespace values
///   ([`Entry::filter_values`]: a function's namespace, a queue's name, a
///   service's namespace, a topic subscription's pattern prefixes) lies in
///   the subtree. Kinds without a namespace (nodes, caches, cache profiles)
///   and entries with an empty namespace are only visible to watchers
///   without a namespace.
pub fn delta_visible_to(filter: &WatchFilter, entry: &Entry) -> bool {
    if filter.nothing {
        return false;
    }
    if filter
        .cluster_id
        .as_deref()
        .is_some_and(|c| c != entry.cluster_id())
    {
        return false;
    }
    if filter
        .node_id
        .as_deref()
        .is_some_and(|n| n != entry.node_id())
    {
        return false;
    }
    if filter.scope.is_some_and(|s| !visible_at(entry.scope(), s)) {
        return false;
    }
    if filter.namespace.is_all() {
        return true;
    }
    entry
        .filter_values()
        .is_some_and(|values| values.iter().any(|v| filter.namespace.matches(v)))
}

/// One change of the catalog, as the node applied it (e.g. from a
/// replica's `Applied`: `upserted` = its keys looked up in the catalog,
/// `removed` = its removed entries).
#[derive(Debug, Clone, Default)]
pub struct CatalogChange<'a> {
    /// Cluster of the node whose entries changed (the delta's
    /// `cluster_id`).
    pub origin_cluster: &'a str,
    /// When the change was made (the delta's `sent_at`): the origin's
    /// `advertised_at` for gossiped state, `now` for local changes.
    pub sent_at: f64,
    /// Entries added or replaced by a newer version, as stored.
    pub upserted: Vec<&'a Entry>,
    /// Entries removed (departure, expiry, withdrawal), as they were stored.
    pub removed: Vec<&'a Entry>,
}

/// Who publishes a delta and when.
#[derive(Debug, Clone, Copy)]
pub struct DeltaPublisher<'a> {
    /// This node (`source_node`).
    pub node_id: &'a str,
    /// This node's cluster (`source_cluster`, and the `cluster_id` header).
    pub cluster_id: &'a str,
    /// The delta's id (`delta.update_id`), fresh per change (a ULID).
    pub update_id: &'a str,
    /// Publication time (`published_at`).
    pub published_at: f64,
}

/// One message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaNotification {
    /// Topic to publish on.
    pub topic: String,
    /// The `DiscoveryDeltaMessage` payload.
    pub payload: Value,
}

/// The pub/sub headers of a delta notification:
/// `{"event": "discovery.catalog_delta", "cluster_id": <publisher's cluster>}`.
pub fn delta_headers(publisher: &DeltaPublisher<'_>) -> Map<String, Value> {
    let mut h = Map::new();
    h.insert("event".into(), json!(DELTA_EVENT));
    h.insert("cluster_id".into(), json!(publisher.cluster_id));
    h
}

/// Per kind: (added key, removed key, added count key, removed count key).
const SECTIONS: [(&str, &str, &str, &str); 7] = [
    (
        "functions",
        "function_removals",
        "functions_added",
        "functions_removed",
    ),
    ("topics", "topic_removals", "topics_added", "topics_removed"),
    ("queues", "queue_removals", "queues_added", "queues_removed"),
    (
        "services",
        "service_removals",
        "services_added",
        "services_removed",
    ),
    ("caches", "cache_removals", "caches_added", "caches_removed"),
    (
        "cache_profiles",
        "cache_profile_removals",
        "cache_profiles_added",
        "cache_profiles_removed",
    ),
    ("nodes", "node_removals", "nodes_added", "nodes_removed"),
];

fn section(e: &Entry) -> usize {
    match e {
        Entry::Function(_) => 0,
        Entry::Topic(_) => 1,
        Entry::Queue(_) => 2,
        Entry::Service(_) => 3,
        Entry::Cache(_) => 4,
        Entry::CacheProfile(_) => 5,
        Entry::Node(_) => 6,
    }
}

/// MPREG's removal item of an entry.
fn removal(e: &Entry) -> Value {
    match e {
        Entry::Function(f) => json!({
            "cluster_id": f.cluster_id,
            "node_id": f.node_id,
            "identity": f.identity,
            "resources": f.resources,
        }),
        Entry::Topic(t) => json!(t.subscription_id),
        Entry::Queue(q) => {
            json!({"cluster_id": q.cluster_id, "node_id": q.node_id, "queue_name": q.queue_name})
        }
        Entry::Service(s) => json!({
            "cluster_id": s.cluster_id,
            "node_id": s.node_id,
            "namespace": s.namespace,
            "name": s.name,
            "protocol": s.protocol,
            "port": s.port,
        }),
        Entry::Cache(c) => {
            json!({"cluster_id": c.cluster_id, "node_id": c.node_id, "role": c.role})
        }
        Entry::CacheProfile(c) => json!({"cluster_id": c.cluster_id, "node_id": c.node_id}),
        Entry::Node(n) => json!({"cluster_id": n.cluster_id, "node_id": n.node_id}),
    }
}

/// The non-empty namespace values of an entry ([`Entry::filter_values`]).
fn namespaces_of(e: &Entry) -> impl Iterator<Item = &str> {
    e.filter_values()
        .unwrap_or_default()
        .into_iter()
        .filter(|v| !v.is_empty())
}

/// The `DiscoveryDeltaMessage` of `change` restricted to the entries
/// `filter` lets through ([`delta_visible_to`]), or `None` when none is.
///
/// Shape (MPREG's, `client_protocol.md` §3.6): `{delta: {update_id,
/// cluster_id (origin's), sent_at, functions, function_removals, topics,
/// topic_removals, queues, queue_removals, services, service_removals,
/// caches, cache_removals, cache_profiles, cache_profile_removals, nodes,
/// node_removals}, counts: {<kind>_added, <kind>_removed for the 7 kinds},
/// namespaces, source_node, source_cluster, published_at}`. All 14 arrays
/// and all 14 counts are always present; additions are catalog items
/// ([`Entry::to_json`]), removals MPREG's removal keys (topics: the bare
/// subscription id). `namespaces` is the sorted set of the non-empty
/// namespace values of every included entry, additions and removals (MPREG
/// tags additions only, by name); `[origin cluster]` when there are none,
/// as in MPREG.
pub fn delta_message(
    change: &CatalogChange<'_>,
    publisher: &DeltaPublisher<'_>,
    filter: &WatchFilter,
) -> Option<Value> {
    let mut added: [Vec<Value>; 7] = Default::default();
    let mut removed: [Vec<Value>; 7] = Default::default();
    let mut namespaces: BTreeSet<&str> = BTreeSet::new();
    let mut any = false;
    for e in change
        .upserted
        .iter()
        .filter(|e| delta_visible_to(filter, e))
    {
        added[section(e)].push(e.to_json());
        namespaces.extend(namespaces_of(e));
        any = true;
    }
    for e in change
        .removed
        .iter()
        .filter(|e| delta_visible_to(filter, e))
    {
        removed[section(e)].push(removal(e));
        namespaces.extend(namespaces_of(e));
        any = true;
    }
    if !any {
        return None;
    }
    let mut delta = Map::new();
    delta.insert("update_id".into(), json!(publisher.update_id));
    delta.insert("cluster_id".into(), json!(change.origin_cluster));
    delta.insert("sent_at".into(), json!(change.sent_at));
    let mut counts = Map::new();
    for (i, (add_key, rm_key, add_count, rm_count)) in SECTIONS.iter().enumerate() {
        counts.insert((*add_count).into(), json!(added[i].len()));
        counts.insert((*rm_count).into(), json!(removed[i].len()));
        delta.insert(
            (*add_key).into(),
            Value::Array(std::mem::take(&mut added[i])),
        );
        delta.insert(
            (*rm_key).into(),
            Value::Array(std::mem::take(&mut removed[i])),
        );
    }
    let namespaces: Vec<&str> = if namespaces.is_empty() {
        vec![change.origin_cluster]
    } else {
        namespaces.into_iter().collect()
    };
    Some(json!({
        "delta": delta,
        "counts": counts,
        "namespaces": namespaces,
        "source_node": publisher.node_id,
        "source_cluster": publisher.cluster_id,
        "published_at": publisher.published_at,
    }))
}

/// Every notification a catalog change produces.
///
/// Contract:
/// - An empty change (nothing upserted, nothing removed) produces nothing
///   (MPREG publishes an empty delta on every refresh). What counts as a
///   change is the caller's decision: every entry passed in `upserted` is
///   published as added, whatever the reason it was stored.
/// - The first notification is always on [`DELTA_TOPIC`] and carries the
///   whole change ([`delta_message`] with [`WatchFilter::all`]); publish it
///   with message id `publisher.update_id`.
/// - Then, in topic order, one notification on `mpreg.discovery.delta.<ns>`
///   for every namespace `<ns>` that is a namespace value of some changed
///   entry ([`Entry::filter_values`], non-empty) or a dot-ancestor of one
///   (`svc.market.eu` also yields `svc.market` and `svc`), each carrying
///   only the entries in that subtree ([`delta_message`] with
///   [`WatchFilter::namespace`]), so a watcher of a namespace sees the same
///   entries a `catalog_query` of that namespace would. Publish each with a
///   fresh message id.
/// - `wanted(topic)` is asked once per namespace topic before its payload
///   is built; return false for topics nobody subscribes to, to skip them
///   (the root topic is always returned).
/// - All notifications use the headers of [`delta_headers`], publisher
///   `publisher.node_id`, and are delivered locally only (not forwarded to
///   peers, which publish their own). A subscriber's own `catalog_watch`
///   filter (scope, cluster) is applied per delivery with
///   [`delta_message`] / [`delta_visible_to`], not here.
pub fn delta_notifications(
    change: &CatalogChange<'_>,
    publisher: &DeltaPublisher<'_>,
    mut wanted: impl FnMut(&str) -> bool,
) -> Vec<DeltaNotification> {
    let Some(root) = delta_message(change, publisher, &WatchFilter::all()) else {
        return Vec::new();
    };
    let mut out = vec![DeltaNotification {
        topic: DELTA_TOPIC.to_string(),
        payload: root,
    }];
    let mut subtrees: BTreeSet<&str> = BTreeSet::new();
    for e in change.upserted.iter().chain(&change.removed) {
        for ns in namespaces_of(e) {
            subtrees.insert(ns);
            for (i, _) in ns.match_indices('.') {
                if i > 0 {
                    subtrees.insert(&ns[..i]);
                }
            }
        }
    }
    for ns in subtrees {
        let topic = delta_topic(ns);
        if !wanted(&topic) {
            continue;
        }
        if let Some(payload) = delta_message(change, publisher, &WatchFilter::namespace(ns)) {
            out.push(DeltaNotification { topic, payload });
        }
    }
    out
}

/// Runs `catalog_watch`: validates the request and returns `{topic,
/// generated_at, scope?, namespace?, cluster_id}` (`scope` normalised;
/// `namespace` as sent, trimmed; `cluster_id` the request's or this
/// node's). The topic uses the normalised namespace, so `svc.market.*`
/// watches `mpreg.discovery.delta.svc.market`.
pub fn run(ctx: &Ctx<'_>, payload: &Map<String, Value>) -> Result<Value, RpcError> {
    let p = Payload::new("catalog_watch", payload);
    let filter = WatchFilter::parse(ctx.me, &p)?;
    let mut res = Map::new();
    res.insert("topic".into(), json!(filter.topic()));
    res.insert("generated_at".into(), json!(ctx.now.wall));
    if let Some(scope) = filter.scope {
        res.insert("scope".into(), json!(scope.as_str()));
    }
    if let Some(ns) = p.str("namespace")? {
        res.insert("namespace".into(), json!(ns));
    }
    let cluster = p
        .str("cluster_id")?
        .unwrap_or_else(|| ctx.me.cluster_id.clone());
    res.insert("cluster_id".into(), json!(cluster));
    Ok(Value::Object(res))
}

#[cfg(test)]
#[path = "watch_tests.rs"]
mod tests;
