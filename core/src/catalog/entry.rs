//! The seven catalog entry kinds, with MPREG's JSON shape
//! (`client_protocol.md` §2.5, `fabric.md` §1.3–1.4).
//!
//! Field order in each struct is MPREG's key order, so `serde_json::to_string`
//! of an entry reproduces MPREG's bytes. Every key is always written except
//! the few documented as optional. Decoding is lenient in the way MPREG is:
//! unknown keys are ignored, missing non-identifying keys take MPREG's
//! defaults (scope `zone`, TTL 30 s, empty sets), scopes are normalised and
//! empty tags dropped. The identifying keys (those in the removal key, plus
//! `node_id` / `cluster_id`) are required, because an entry without them could
//! not be owned, replaced or removed.
//!
//! `advertised_at` defaults to `0.0` when missing (MPREG uses "now", which a
//! sans-IO core does not have), so such an entry is rejected as expired on
//! upsert unless the caller stamps it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::fields::{self, default_ttl};
use super::namespace::{name_namespace, topic_pattern_prefix, NamespaceFilter};
use super::scope::{self, Scope};
use super::transport;

pub use super::fields::{MetadataValue, DEFAULT_TTL_SECONDS};
pub use super::transport::{TransportEndpoint, INTERNAL_CONNECTION};

/// The catalog kinds, in a fixed order (also the `Ord` of [`EntryKind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// `functions`: RPC function endpoints.
    Functions,
    /// `nodes`: node descriptors.
    Nodes,
    /// `queues`: queue endpoints.
    Queues,
    /// `topics`: topic subscriptions.
    Topics,
    /// `services`: DNS-style service endpoints.
    Services,
    /// `caches`: cache roles.
    Caches,
    /// `cache_profiles`: cache node profiles.
    CacheProfiles,
}

/// `catalog_query` named an entry type that does not exist. The text is
/// MPREG's (error 1003), carrying the raw request value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Unsupported catalog entry_type: {0}")]
pub struct UnsupportedEntryType(pub String);

impl EntryKind {
    /// Every kind, in `Ord` order.
    pub const ALL: [EntryKind; 7] = [
        EntryKind::Functions,
        EntryKind::Nodes,
        EntryKind::Queues,
        EntryKind::Topics,
        EntryKind::Services,
        EntryKind::Caches,
        EntryKind::CacheProfiles,
    ];

    /// Number of kinds.
    pub const COUNT: usize = 7;

    /// Plural wire name (`functions`, ..., `cache_profiles`).
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Functions => "functions",
            EntryKind::Nodes => "nodes",
            EntryKind::Queues => "queues",
            EntryKind::Topics => "topics",
            EntryKind::Services => "services",
            EntryKind::Caches => "caches",
            EntryKind::CacheProfiles => "cache_profiles",
        }
    }

    /// Position in [`EntryKind::ALL`], for per-kind arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// Parses a request `entry_type`: trimmed, case-insensitive, singular
    /// and plural forms, `cache-profile(s)` and `cache_profile(s)`.
    pub fn parse(raw: &str) -> Result<EntryKind, UnsupportedEntryType> {
        let normalized = raw.trim().to_lowercase();
        let kind = match normalized.as_str() {
            "function" | "functions" => EntryKind::Functions,
            "node" | "nodes" => EntryKind::Nodes,
            "queue" | "queues" => EntryKind::Queues,
            "topic" | "topics" => EntryKind::Topics,
            "service" | "services" => EntryKind::Services,
            "cache" | "caches" => EntryKind::Caches,
            "cache-profile" | "cache_profile" | "cache-profiles" | "cache_profiles" => {
                EntryKind::CacheProfiles
            }
            _ => return Err(UnsupportedEntryType(raw.to_string())),
        };
        Ok(kind)
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EntryKind {
    type Err = UnsupportedEntryType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        EntryKind::parse(s)
    }
}

/// Builder methods shared by every entry struct.
macro_rules! common_entry_methods {
    ($t:ty) => {
        impl $t {
            /// Sets the freshness version and lifetime.
            pub fn advertised(mut self, advertised_at: f64, ttl_seconds: f64) -> Self {
                self.advertised_at = advertised_at;
                self.ttl_seconds = ttl_seconds;
                self
            }

            /// Sets the scope.
            pub fn with_scope(mut self, scope: Scope) -> Self {
                self.scope = scope;
                self
            }

            /// Sets the tags (empty strings dropped).
            pub fn with_tags<I, S>(mut self, tags: I) -> Self
            where
                I: IntoIterator<Item = S>,
                S: Into<String>,
            {
                self.tags = string_set(tags);
                self
            }
        }
    };
}

/// A set of non-empty strings from any iterator.
fn string_set<I, S>(items: I) -> BTreeSet<String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    items
        .into_iter()
        .map(Into::into)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Drops empty strings, MPREG's tag normalisation.
fn drop_empty(set: &mut BTreeSet<String>) {
    set.retain(|s| !s.is_empty());
}

// ---------------------------------------------------------------------------
// nodes

/// A node's self-description (`nodes`, `fabric.md` §1.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeDescriptor {
    /// The node's URL (`ws://host:port`).
    pub node_id: String,
    /// The node's cluster.
    pub cluster_id: String,
    /// Visibility scope.
    #[serde(default, deserialize_with = "scope::lenient")]
    pub scope: Scope,
    /// Resources the node offers.
    #[serde(default)]
    pub resources: BTreeSet<String>,
    /// Capabilities (`rpc`, `queue`, `cache`, ...).
    #[serde(default)]
    pub capabilities: BTreeSet<String>,
    /// How to reach it, sorted and deduplicated.
    #[serde(default, deserialize_with = "transport::endpoint_list")]
    pub transport_endpoints: Vec<TransportEndpoint>,
    /// Tags.
    #[serde(default, deserialize_with = "fields::string_set")]
    pub tags: BTreeSet<String>,
    /// Freshness version (Unix seconds).
    #[serde(default)]
    pub advertised_at: f64,
    /// Lifetime after `advertised_at`.
    #[serde(default = "default_ttl")]
    pub ttl_seconds: f64,
    /// Cache region; omitted from JSON when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
}

impl NodeDescriptor {
    /// A descriptor with defaults (scope zone, TTL 30 s, advertised at 0).
    pub fn new(node_id: impl Into<String>, cluster_id: impl Into<String>) -> NodeDescriptor {
        NodeDescriptor {
            node_id: node_id.into(),
            cluster_id: cluster_id.into(),
            scope: Scope::Zone,
            resources: BTreeSet::new(),
            capabilities: BTreeSet::new(),
            transport_endpoints: Vec::new(),
            tags: BTreeSet::new(),
            advertised_at: 0.0,
            ttl_seconds: DEFAULT_TTL_SECONDS,
            region: String::new(),
        }
    }

    /// Sets the endpoints (sorted, deduplicated).
    pub fn with_endpoints(
        mut self,
        endpoints: impl IntoIterator<Item = TransportEndpoint>,
    ) -> Self {
        self.transport_endpoints = endpoints.into_iter().collect();
        self.normalize();
        self
    }

    /// Restores the invariants a decoded or hand-built value may lack.
    pub fn normalize(&mut self) {
        drop_empty(&mut self.tags);
        self.transport_endpoints.sort();
        self.transport_endpoints.dedup();
    }
}
common_entry_methods!(NodeDescriptor);

// ---------------------------------------------------------------------------
// functions

/// Identity of an RPC function. Within one catalog a `name` maps to exactly
/// one `function_id` and back (enforced by the store).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FunctionIdentity {
    /// Full dotted name, e.g. `svc.market.quote`.
    pub name: String,
    /// Stable id (stock MPREG: same as the name).
    pub function_id: String,
    /// Semantic version `MAJOR.MINOR.PATCH`.
    pub version: String,
}

impl FunctionIdentity {
    /// An identity from its parts.
    pub fn new(
        name: impl Into<String>,
        function_id: impl Into<String>,
        version: impl Into<String>,
    ) -> FunctionIdentity {
        FunctionIdentity {
            name: name.into(),
            function_id: function_id.into(),
            version: version.into(),
        }
    }
}

/// An RPC function served by a node (`functions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionEndpoint {
    /// Name, id and version.
    pub identity: FunctionIdentity,
    /// Resources the endpoint requires/offers.
    #[serde(default)]
    pub resources: BTreeSet<String>,
    /// Serving node.
    pub node_id: String,
    /// Serving node's cluster.
    pub cluster_id: String,
    /// Visibility scope.
    #[serde(default, deserialize_with = "scope::lenient")]
    pub scope: Scope,
    /// Tags.
    #[serde(default, deserialize_with = "fields::string_set")]
    pub tags: BTreeSet<String>,
    /// Freshness version (Unix seconds).
    #[serde(default)]
    pub advertised_at: f64,
    /// Lifetime after `advertised_at`.
    #[serde(default = "default_ttl")]
    pub ttl_seconds: f64,
    /// MPREG's `RpcSpecSummary`, kept opaque; its `namespace` wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_summary: Option<Value>,
    /// Full RPC spec (only with full spec gossip).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpc_spec: Option<Value>,
    /// sha256 of the canonical spec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_digest: Option<String>,
    /// Ours, not MPREG's: an explicit namespace for functions registered
    /// without an RPC summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

impl FunctionEndpoint {
    /// An endpoint with defaults (scope zone, TTL 30 s, advertised at 0).
    pub fn new(
        identity: FunctionIdentity,
        node_id: impl Into<String>,
        cluster_id: impl Into<String>,
    ) -> FunctionEndpoint {
        FunctionEndpoint {
            identity,
            resources: BTreeSet::new(),
            node_id: node_id.into(),
            cluster_id: cluster_id.into(),
            scope: Scope::Zone,
            tags: BTreeSet::new(),
            advertised_at: 0.0,
            ttl_seconds: DEFAULT_TTL_SECONDS,
            rpc_summary: None,
            rpc_spec: None,
            spec_digest: None,
            namespace: None,
        }
    }

    /// Sets the resources.
    pub fn with_resources<I, S>(mut self, resources: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.resources = resources.into_iter().map(Into::into).collect();
        self
    }

    /// The namespace catalog filters use: `rpc_summary.namespace` when the
    /// summary carries one, else the explicit `namespace`, else the name up
    /// to its last dot (`""` without a dot).
    pub fn effective_namespace(&self) -> &str {
        if let Some(ns) = self
            .rpc_summary
            .as_ref()
            .and_then(|s| s.get("namespace"))
            .and_then(Value::as_str)
        {
            return ns;
        }
        if let Some(ns) = self.namespace.as_deref() {
            return ns;
        }
        name_namespace(&self.identity.name)
    }

    /// Restores the invariants a decoded or hand-built value may lack.
    pub fn normalize(&mut self) {
        drop_empty(&mut self.tags);
        if self.rpc_summary.as_ref().is_some_and(Value::is_null) {
            self.rpc_summary = None;
        }
        if self.rpc_spec.as_ref().is_some_and(Value::is_null) {
            self.rpc_spec = None;
        }
    }
}
common_entry_methods!(FunctionEndpoint);

// ---------------------------------------------------------------------------
// queues

/// Health of a queue endpoint.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum QueueHealth {
    /// Serving normally.
    #[default]
    Healthy,
    /// Serving with problems.
    Degraded,
    /// Not serving.
    Unavailable,
}

impl QueueHealth {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueHealth::Healthy => "healthy",
            QueueHealth::Degraded => "degraded",
            QueueHealth::Unavailable => "unavailable",
        }
    }
}

/// A message queue hosted by a node (`queues`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueueEndpoint {
    /// Dotted queue name.
    pub queue_name: String,
    /// Hosting node's cluster.
    pub cluster_id: String,
    /// Hosting node.
    pub node_id: String,
    /// Supported guarantees (`fire_and_forget`, `at_least_once`, ...).
    #[serde(default, deserialize_with = "fields::string_set")]
    pub delivery_guarantees: BTreeSet<String>,
    /// Health.
    #[serde(default)]
    pub health: QueueHealth,
    /// Current subscriber count.
    #[serde(default)]
    pub current_subscribers: u64,
    /// Free-form string metadata.
    #[serde(default, deserialize_with = "fields::string_map")]
    pub metadata: BTreeMap<String, String>,
    /// Visibility scope.
    #[serde(default, deserialize_with = "scope::lenient")]
    pub scope: Scope,
    /// Tags.
    #[serde(default, deserialize_with = "fields::string_set")]
    pub tags: BTreeSet<String>,
    /// Freshness version (Unix seconds).
    #[serde(default)]
    pub advertised_at: f64,
    /// Lifetime after `advertised_at`.
    #[serde(default = "default_ttl")]
    pub ttl_seconds: f64,
}

impl QueueEndpoint {
    /// A queue endpoint with defaults (healthy, scope zone, TTL 30 s).
    pub fn new(
        queue_name: impl Into<String>,
        node_id: impl Into<String>,
        cluster_id: impl Into<String>,
    ) -> QueueEndpoint {
        QueueEndpoint {
            queue_name: queue_name.into(),
            cluster_id: cluster_id.into(),
            node_id: node_id.into(),
            delivery_guarantees: BTreeSet::new(),
            health: QueueHealth::Healthy,
            current_subscribers: 0,
            metadata: BTreeMap::new(),
            scope: Scope::Zone,
            tags: BTreeSet::new(),
            advertised_at: 0.0,
            ttl_seconds: DEFAULT_TTL_SECONDS,
        }
    }

    /// Restores the invariants a decoded or hand-built value may lack.
    pub fn normalize(&mut self) {
        drop_empty(&mut self.tags);
        drop_empty(&mut self.delivery_guarantees);
    }
}
common_entry_methods!(QueueEndpoint);

// ---------------------------------------------------------------------------
// services

/// A named network service (`services`; what the DNS gateway serves).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceEndpoint {
    /// Service name.
    pub name: String,
    /// Service namespace.
    pub namespace: String,
    /// Protocol label (`tcp`, `udp`, `http`, ...).
    pub protocol: String,
    /// Port.
    pub port: u16,
    /// Hosts (names or IP literals), sorted, deduplicated, non-empty.
    #[serde(default, deserialize_with = "fields::string_set")]
    pub targets: BTreeSet<String>,
    /// Visibility scope.
    #[serde(default, deserialize_with = "scope::lenient")]
    pub scope: Scope,
    /// Tags.
    #[serde(default, deserialize_with = "fields::string_set")]
    pub tags: BTreeSet<String>,
    /// Capabilities.
    #[serde(default, deserialize_with = "fields::string_set")]
    pub capabilities: BTreeSet<String>,
    /// Scalar metadata (non-scalars stringified, nulls dropped).
    #[serde(default, deserialize_with = "fields::service_metadata")]
    pub metadata: BTreeMap<String, MetadataValue>,
    /// SRV priority.
    #[serde(default)]
    pub priority: u16,
    /// SRV weight.
    #[serde(default)]
    pub weight: u16,
    /// Registering node.
    pub node_id: String,
    /// Registering node's cluster.
    pub cluster_id: String,
    /// Freshness version (Unix seconds).
    #[serde(default)]
    pub advertised_at: f64,
    /// Lifetime after `advertised_at`.
    #[serde(default = "default_ttl")]
    pub ttl_seconds: f64,
}

impl ServiceEndpoint {
    /// A service endpoint with defaults (no targets, priority/weight 0, scope
    /// zone, TTL 30 s). Set `node_id` / `cluster_id` with [`Self::owned_by`].
    pub fn new(
        name: impl Into<String>,
        namespace: impl Into<String>,
        protocol: impl Into<String>,
        port: u16,
    ) -> ServiceEndpoint {
        ServiceEndpoint {
            name: name.into(),
            namespace: namespace.into(),
            protocol: protocol.into(),
            port,
            targets: BTreeSet::new(),
            scope: Scope::Zone,
            tags: BTreeSet::new(),
            capabilities: BTreeSet::new(),
            metadata: BTreeMap::new(),
            priority: 0,
            weight: 0,
            node_id: String::new(),
            cluster_id: String::new(),
            advertised_at: 0.0,
            ttl_seconds: DEFAULT_TTL_SECONDS,
        }
    }

    /// Sets the registering node and cluster.
    pub fn owned_by(mut self, node_id: impl Into<String>, cluster_id: impl Into<String>) -> Self {
        self.node_id = node_id.into();
        self.cluster_id = cluster_id.into();
        self
    }

    /// Sets the targets (sorted, deduplicated, empty ones dropped).
    pub fn with_targets<I, S>(mut self, targets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.targets = string_set(targets);
        self
    }

    /// Restores the invariants a decoded or hand-built value may lack.
    pub fn normalize(&mut self) {
        drop_empty(&mut self.tags);
        drop_empty(&mut self.targets);
        drop_empty(&mut self.capabilities);
    }
}
common_entry_methods!(ServiceEndpoint);

// ---------------------------------------------------------------------------
// topics

/// A pub/sub subscription held by a node (`topics`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicSubscription {
    /// Globally unique subscription id (the whole removal key).
    pub subscription_id: String,
    /// Subscribing node.
    pub node_id: String,
    /// Subscribing node's cluster.
    pub cluster_id: String,
    /// AMQP-style patterns (`*` one word, `#` any number).
    #[serde(default)]
    pub patterns: Vec<String>,
    /// Visibility scope.
    #[serde(default, deserialize_with = "scope::lenient")]
    pub scope: Scope,
    /// Tags.
    #[serde(default, deserialize_with = "fields::string_set")]
    pub tags: BTreeSet<String>,
    /// Freshness version (Unix seconds).
    #[serde(default)]
    pub advertised_at: f64,
    /// Lifetime after `advertised_at`.
    #[serde(default = "default_ttl")]
    pub ttl_seconds: f64,
}

impl TopicSubscription {
    /// A subscription with defaults (scope zone, TTL 30 s).
    pub fn new<I, S>(
        subscription_id: impl Into<String>,
        node_id: impl Into<String>,
        cluster_id: impl Into<String>,
        patterns: I,
    ) -> TopicSubscription
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        TopicSubscription {
            subscription_id: subscription_id.into(),
            node_id: node_id.into(),
            cluster_id: cluster_id.into(),
            patterns: patterns.into_iter().map(Into::into).collect(),
            scope: Scope::Zone,
            tags: BTreeSet::new(),
            advertised_at: 0.0,
            ttl_seconds: DEFAULT_TTL_SECONDS,
        }
    }

    /// Restores the invariants a decoded or hand-built value may lack.
    /// Pattern order is kept (MPREG keeps the list as given).
    pub fn normalize(&mut self) {
        drop_empty(&mut self.tags);
    }
}
common_entry_methods!(TopicSubscription);

// ---------------------------------------------------------------------------
// caches

/// A cache role played by a node (`caches`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheRoleEntry {
    /// `coordinator`, `invalidator`, `replica`, `sync` or `monitor`.
    pub role: String,
    /// Node playing the role.
    pub node_id: String,
    /// Its cluster.
    pub cluster_id: String,
    /// Visibility scope.
    #[serde(default, deserialize_with = "scope::lenient")]
    pub scope: Scope,
    /// Tags.
    #[serde(default, deserialize_with = "fields::string_set")]
    pub tags: BTreeSet<String>,
    /// Freshness version (Unix seconds).
    #[serde(default)]
    pub advertised_at: f64,
    /// Lifetime after `advertised_at`.
    #[serde(default = "default_ttl")]
    pub ttl_seconds: f64,
}

impl CacheRoleEntry {
    /// A role entry with defaults (scope zone, TTL 30 s).
    pub fn new(
        role: impl Into<String>,
        node_id: impl Into<String>,
        cluster_id: impl Into<String>,
    ) -> CacheRoleEntry {
        CacheRoleEntry {
            role: role.into(),
            node_id: node_id.into(),
            cluster_id: cluster_id.into(),
            scope: Scope::Zone,
            tags: BTreeSet::new(),
            advertised_at: 0.0,
            ttl_seconds: DEFAULT_TTL_SECONDS,
        }
    }

    /// Restores the invariants a decoded or hand-built value may lack.
    pub fn normalize(&mut self) {
        drop_empty(&mut self.tags);
    }
}
common_entry_methods!(CacheRoleEntry);

/// Geographic position of a cache node.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct GeoCoordinates {
    /// Degrees north.
    #[serde(default)]
    pub latitude: f64,
    /// Degrees east.
    #[serde(default)]
    pub longitude: f64,
}

/// Capacity and placement of a cache node (`cache_profiles`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheNodeProfile {
    /// The node.
    pub node_id: String,
    /// Its cluster.
    pub cluster_id: String,
    /// Region label.
    #[serde(default)]
    pub region: String,
    /// Position.
    #[serde(default)]
    pub coordinates: GeoCoordinates,
    /// Capacity in MiB.
    #[serde(default)]
    pub capacity_mb: u64,
    /// Utilisation 0..100.
    #[serde(default)]
    pub utilization_percent: f64,
    /// Mean latency.
    #[serde(default)]
    pub avg_latency_ms: f64,
    /// Reliability 0..1.
    #[serde(default)]
    pub reliability_score: f64,
    /// Visibility scope.
    #[serde(default, deserialize_with = "scope::lenient")]
    pub scope: Scope,
    /// Tags.
    #[serde(default, deserialize_with = "fields::string_set")]
    pub tags: BTreeSet<String>,
    /// Freshness version (Unix seconds).
    #[serde(default)]
    pub advertised_at: f64,
    /// Lifetime after `advertised_at`.
    #[serde(default = "default_ttl")]
    pub ttl_seconds: f64,
}

impl CacheNodeProfile {
    /// A profile with zero metrics (scope zone, TTL 30 s).
    pub fn new(node_id: impl Into<String>, cluster_id: impl Into<String>) -> CacheNodeProfile {
        CacheNodeProfile {
            node_id: node_id.into(),
            cluster_id: cluster_id.into(),
            region: String::new(),
            coordinates: GeoCoordinates::default(),
            capacity_mb: 0,
            utilization_percent: 0.0,
            avg_latency_ms: 0.0,
            reliability_score: 0.0,
            scope: Scope::Zone,
            tags: BTreeSet::new(),
            advertised_at: 0.0,
            ttl_seconds: DEFAULT_TTL_SECONDS,
        }
    }

    /// Restores the invariants a decoded or hand-built value may lack.
    pub fn normalize(&mut self) {
        drop_empty(&mut self.tags);
    }
}
common_entry_methods!(CacheNodeProfile);

// ---------------------------------------------------------------------------
// keys

/// The removal key of an entry (`fabric.md` §1.4): two entries with the same
/// key are the same entry at different versions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EntryKey {
    /// `FunctionKey`.
    Function {
        /// Cluster.
        cluster_id: String,
        /// Node.
        node_id: String,
        /// Name, id, version.
        identity: FunctionIdentity,
        /// Resource set.
        resources: BTreeSet<String>,
    },
    /// A topic subscription is keyed by its id alone (no node or cluster).
    Topic {
        /// Subscription id.
        subscription_id: String,
    },
    /// `QueueKey`.
    Queue {
        /// Cluster.
        cluster_id: String,
        /// Node.
        node_id: String,
        /// Queue name.
        queue_name: String,
    },
    /// `ServiceKey`.
    Service {
        /// Cluster.
        cluster_id: String,
        /// Node.
        node_id: String,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Protocol.
        protocol: String,
        /// Port.
        port: u16,
    },
    /// `CacheRoleKey`.
    Cache {
        /// Cluster.
        cluster_id: String,
        /// Node.
        node_id: String,
        /// Role.
        role: String,
    },
    /// `CacheNodeKey`.
    CacheProfile {
        /// Cluster.
        cluster_id: String,
        /// Node.
        node_id: String,
    },
    /// `NodeKey`.
    Node {
        /// Cluster.
        cluster_id: String,
        /// Node.
        node_id: String,
    },
}

impl EntryKey {
    /// The kind this key belongs to.
    pub fn kind(&self) -> EntryKind {
        match self {
            EntryKey::Function { .. } => EntryKind::Functions,
            EntryKey::Topic { .. } => EntryKind::Topics,
            EntryKey::Queue { .. } => EntryKind::Queues,
            EntryKey::Service { .. } => EntryKind::Services,
            EntryKey::Cache { .. } => EntryKind::Caches,
            EntryKey::CacheProfile { .. } => EntryKind::CacheProfiles,
            EntryKey::Node { .. } => EntryKind::Nodes,
        }
    }
}

// ---------------------------------------------------------------------------
// entry

/// Any catalog entry. Externally tagged with the plural kind name
/// (`{"functions": {...}}`), so it round-trips through CBOR and JSON; the
/// MPREG item shape is [`Entry::to_json`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Entry {
    /// `functions`.
    #[serde(rename = "functions")]
    Function(FunctionEndpoint),
    /// `nodes`.
    #[serde(rename = "nodes")]
    Node(NodeDescriptor),
    /// `queues`.
    #[serde(rename = "queues")]
    Queue(QueueEndpoint),
    /// `topics`.
    #[serde(rename = "topics")]
    Topic(TopicSubscription),
    /// `services`.
    #[serde(rename = "services")]
    Service(ServiceEndpoint),
    /// `caches`.
    #[serde(rename = "caches")]
    Cache(CacheRoleEntry),
    /// `cache_profiles`.
    #[serde(rename = "cache_profiles")]
    CacheProfile(CacheNodeProfile),
}

/// Applies the same expression to whichever struct an [`Entry`] holds.
macro_rules! on_entry {
    ($entry:expr, $e:ident => $body:expr) => {
        match $entry {
            Entry::Function($e) => $body,
            Entry::Node($e) => $body,
            Entry::Queue($e) => $body,
            Entry::Topic($e) => $body,
            Entry::Service($e) => $body,
            Entry::Cache($e) => $body,
            Entry::CacheProfile($e) => $body,
        }
    };
}

impl Entry {
    /// The entry's kind.
    pub fn kind(&self) -> EntryKind {
        match self {
            Entry::Function(_) => EntryKind::Functions,
            Entry::Node(_) => EntryKind::Nodes,
            Entry::Queue(_) => EntryKind::Queues,
            Entry::Topic(_) => EntryKind::Topics,
            Entry::Service(_) => EntryKind::Services,
            Entry::Cache(_) => EntryKind::Caches,
            Entry::CacheProfile(_) => EntryKind::CacheProfiles,
        }
    }

    /// The removal key.
    pub fn key(&self) -> EntryKey {
        match self {
            Entry::Function(e) => EntryKey::Function {
                cluster_id: e.cluster_id.clone(),
                node_id: e.node_id.clone(),
                identity: e.identity.clone(),
                resources: e.resources.clone(),
            },
            Entry::Node(e) => EntryKey::Node {
                cluster_id: e.cluster_id.clone(),
                node_id: e.node_id.clone(),
            },
            Entry::Queue(e) => EntryKey::Queue {
                cluster_id: e.cluster_id.clone(),
                node_id: e.node_id.clone(),
                queue_name: e.queue_name.clone(),
            },
            Entry::Topic(e) => EntryKey::Topic {
                subscription_id: e.subscription_id.clone(),
            },
            Entry::Service(e) => EntryKey::Service {
                cluster_id: e.cluster_id.clone(),
                node_id: e.node_id.clone(),
                namespace: e.namespace.clone(),
                name: e.name.clone(),
                protocol: e.protocol.clone(),
                port: e.port,
            },
            Entry::Cache(e) => EntryKey::Cache {
                cluster_id: e.cluster_id.clone(),
                node_id: e.node_id.clone(),
                role: e.role.clone(),
            },
            Entry::CacheProfile(e) => EntryKey::CacheProfile {
                cluster_id: e.cluster_id.clone(),
                node_id: e.node_id.clone(),
            },
        }
    }

    /// The node that serves / holds the entry.
    pub fn node_id(&self) -> &str {
        on_entry!(self, e => &e.node_id)
    }

    /// That node's cluster.
    pub fn cluster_id(&self) -> &str {
        on_entry!(self, e => &e.cluster_id)
    }

    /// Visibility scope.
    pub fn scope(&self) -> Scope {
        on_entry!(self, e => e.scope)
    }

    /// Tags.
    pub fn tags(&self) -> &BTreeSet<String> {
        on_entry!(self, e => &e.tags)
    }

    /// Freshness version (Unix seconds).
    pub fn advertised_at(&self) -> f64 {
        on_entry!(self, e => e.advertised_at)
    }

    /// Moves `advertised_at` forward to `at` (never back): the owner's
    /// periodic refresh, applied by every holder of the entry.
    pub fn refresh(&mut self, at: f64) {
        on_entry!(self, e => {
            if at.is_finite() && at > e.advertised_at {
                e.advertised_at = at;
            }
        })
    }

    /// Lifetime after `advertised_at`.
    pub fn ttl_seconds(&self) -> f64 {
        on_entry!(self, e => e.ttl_seconds)
    }

    /// `advertised_at + ttl_seconds`.
    pub fn expires_at(&self) -> f64 {
        self.advertised_at() + self.ttl_seconds()
    }

    /// MPREG's strict rule: expired when `now > advertised_at + ttl`.
    pub fn is_expired(&self, now: f64) -> bool {
        now > self.expires_at()
    }

    /// The name the catalog's name index uses: function name, node id,
    /// queue name, subscription id, service name, cache role, or (for cache
    /// profiles) node id.
    pub fn name(&self) -> &str {
        match self {
            Entry::Function(e) => &e.identity.name,
            Entry::Node(e) => &e.node_id,
            Entry::Queue(e) => &e.queue_name,
            Entry::Topic(e) => &e.subscription_id,
            Entry::Service(e) => &e.name,
            Entry::Cache(e) => &e.role,
            Entry::CacheProfile(e) => &e.node_id,
        }
    }

    /// The namespace the entry belongs to: functions → effective namespace
    /// ([`FunctionEndpoint::effective_namespace`]); queues → queue name up to
    /// its last dot; services → `namespace`; topics → `None` (a subscription
    /// spans several patterns, see [`Entry::filter_values`]); nodes and
    /// caches → `None`.
    pub fn namespace(&self) -> Option<&str> {
        match self {
            Entry::Function(e) => Some(e.effective_namespace()),
            Entry::Queue(e) => Some(name_namespace(&e.queue_name)),
            Entry::Service(e) => Some(&e.namespace),
            Entry::Topic(_) | Entry::Node(_) | Entry::Cache(_) | Entry::CacheProfile(_) => None,
        }
    }

    /// The values a namespace filter is tested against (the entry matches
    /// when any of them dot-matches), as `catalog_query` does:
    /// functions → effective namespace; queues → the full queue name
    /// (MPREG matches queues on the name, which also matches every filter
    /// that matches its namespace); services → `namespace`; topics → each
    /// pattern's literal prefix ([`topic_pattern_prefix`]), deduplicated.
    /// `None` for kinds a namespace filter does not apply to (nodes, caches,
    /// cache profiles).
    pub fn filter_values(&self) -> Option<Vec<&str>> {
        match self {
            Entry::Function(e) => Some(vec![e.effective_namespace()]),
            Entry::Queue(e) => Some(vec![e.queue_name.as_str()]),
            Entry::Service(e) => Some(vec![e.namespace.as_str()]),
            Entry::Topic(e) => {
                let mut prefixes: Vec<&str> =
                    e.patterns.iter().map(|p| topic_pattern_prefix(p)).collect();
                prefixes.sort_unstable();
                prefixes.dedup();
                Some(prefixes)
            }
            Entry::Node(_) | Entry::Cache(_) | Entry::CacheProfile(_) => None,
        }
    }

    /// Whether the entry passes a namespace filter. Kinds without a
    /// namespace (nodes, caches, cache profiles) always pass: MPREG does not
    /// namespace-filter them.
    pub fn matches_namespace(&self, filter: &NamespaceFilter) -> bool {
        if filter.is_all() {
            return true;
        }
        match self.filter_values() {
            Some(values) => values.iter().any(|v| filter.matches(v)),
            None => true,
        }
    }

    /// Restores the invariants (sorted/deduplicated endpoint lists, no
    /// empty tags or targets) of a decoded or hand-built entry.
    pub fn normalize(&mut self) {
        on_entry!(self, e => e.normalize())
    }

    /// The entry as MPREG's catalog item JSON (no kind wrapper).
    pub fn to_json(&self) -> Value {
        // Serialising these structs to a Value cannot fail: every map has
        // string keys. Fall back to null rather than panic regardless.
        on_entry!(self, e => serde_json::to_value(e).unwrap_or(Value::Null))
    }

    /// The item JSON as text in MPREG's key order (`to_json` loses the order
    /// unless serde_json's `preserve_order` is on).
    pub fn to_json_string(&self) -> String {
        on_entry!(self, e => serde_json::to_string(e).unwrap_or_default())
    }

    /// Parses an MPREG catalog item of the given kind, normalised.
    pub fn from_json(kind: EntryKind, value: Value) -> Result<Entry, serde_json::Error> {
        let mut entry = match kind {
            EntryKind::Functions => Entry::Function(serde_json::from_value(value)?),
            EntryKind::Nodes => Entry::Node(serde_json::from_value(value)?),
            EntryKind::Queues => Entry::Queue(serde_json::from_value(value)?),
            EntryKind::Topics => Entry::Topic(serde_json::from_value(value)?),
            EntryKind::Services => Entry::Service(serde_json::from_value(value)?),
            EntryKind::Caches => Entry::Cache(serde_json::from_value(value)?),
            EntryKind::CacheProfiles => Entry::CacheProfile(serde_json::from_value(value)?),
        };
        entry.normalize();
        Ok(entry)
    }
}

impl From<FunctionEndpoint> for Entry {
    fn from(e: FunctionEndpoint) -> Self {
        Entry::Function(e)
    }
}
impl From<NodeDescriptor> for Entry {
    fn from(e: NodeDescriptor) -> Self {
        Entry::Node(e)
    }
}
impl From<QueueEndpoint> for Entry {
    fn from(e: QueueEndpoint) -> Self {
        Entry::Queue(e)
    }
}
impl From<TopicSubscription> for Entry {
    fn from(e: TopicSubscription) -> Self {
        Entry::Topic(e)
    }
}
impl From<ServiceEndpoint> for Entry {
    fn from(e: ServiceEndpoint) -> Self {
        Entry::Service(e)
    }
}
impl From<CacheRoleEntry> for Entry {
    fn from(e: CacheRoleEntry) -> Self {
        Entry::Cache(e)
    }
}
impl From<CacheNodeProfile> for Entry {
    fn from(e: CacheNodeProfile) -> Self {
        Entry::CacheProfile(e)
    }
}

#[cfg(test)]
#[path = "entry_tests.rs"]
mod tests;
