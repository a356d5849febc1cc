//! Node settings: MPREG's names and defaults, the few settings of our own, and
//! the loader that merges them from their sources.
//!
//! Settings keep the names of the Python MPREG (`mpreg/core/config.py`,
//! `MPREGSettings`) so that operators, runbooks and settings files carry over
//! unchanged. They come from four sources, each overriding the previous one key
//! by key (a list given by a later source replaces the whole list):
//!
//! 1. the defaults below ([`Settings::default`]);
//! 2. a TOML settings file, keys at the top level or all under an `[mpreg]`
//!    table (the shape `mpreg server start-config FILE` reads);
//! 3. environment variables `MPREG_<UPPER_NAME>`;
//! 4. command-line flags.
//!
//! The module is sans-IO like the rest of the core: [`load`] is given the file
//! text and the environment pairs; it reads no files, variables or clocks.
//!
//! Unlike MPREG, unknown keys and invalid values are rejected with a one-line
//! [`ConfigError`] naming the key, where it came from and what is wrong, so a
//! typo cannot silently leave a node running with a default. Keys that belong to
//! parts of MPREG this port does not build (RPC execution, queues, caches, raft,
//! route planning...) are accepted with one warning each
//! ([`IGNORED_MPREG_SETTINGS`], [`IGNORED_MPREG_PREFIXES`]).
//!
//! After merging, [`Settings::normalized`] applies MPREG's normalisation (scope
//! aliases, DNS zone clean-up, TTL and counter clamps) and our validation
//! (URLs, ports, credentials, declared catalog entries). A [`Settings`] that went
//! through it is what the rest of the core may rely on.
//!
//! Internally the loader is table-driven: every setting has a `Kind` in
//! `SETTINGS` that says how a raw TOML/JSON value or an environment string is
//! read, and the same machinery reads the nested tables (policy rules,
//! credentials, declared services...), so every error can name the exact path,
//! such as `services[1].port`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value as Json};

// ---------------------------------------------------------------------------
// Vocabularies
// ---------------------------------------------------------------------------

/// Valid scopes, narrowest first (MPREG's `SCOPE_RANKS` order). `cluster` is
/// accepted as an alias of `zone` wherever a scope is read, as in MPREG.
pub const SCOPES: [&str; 4] = ["local", "zone", "region", "global"];

/// Runtimes the `mpreg` binary can drive a node with.
pub const RUNTIMES: [&str; 2] = ["tokio", "mio"];

/// Values of `rpc_spec_gossip_mode`: `full` attaches whole RPC specs to function
/// entries, `summary` only their summaries.
pub const RPC_SPEC_GOSSIP_MODES: [&str; 2] = ["summary", "full"];

/// Schemes a tenant credential may use: `Authorization: Bearer <token>` or an
/// `X-API-Key: <token>` header.
pub const CREDENTIAL_SCHEMES: [&str; 2] = ["bearer", "api-key"];

/// Roles a credential may grant (ours): admin RPCs (policy apply, resync,
/// registration) need `admin` once credentials are configured.
pub const ROLES: [&str; 2] = ["reader", "admin"];

/// Delivery guarantees a declared queue may advertise (MPREG's queue
/// `DeliveryGuarantee` values).
pub const DELIVERY_GUARANTEES: [&str; 5] = [
    "fire_and_forget",
    "at_least_once",
    "exactly_once",
    "broadcast",
    "quorum",
];

/// Name of the table a Python MPREG settings file puts its keys under.
const MPREG_TABLE: &str = "mpreg";

/// Prefix of the environment variables the loader reads.
const ENV_PREFIX: &str = "MPREG_";

/// MPREG settings that configure parts of MPREG this port does not build (RPC
/// execution, caches, queues, persistence, raft, federation and route
/// planning, logging set-up done by the binary). A settings file written for
/// MPREG may contain them, so they are accepted with one warning each and then
/// ignored, instead of failing start-up.
///
/// Deliberately absent: MPREG security settings. Ignoring one would silently
/// run a node less protected than its operator asked for, so a security
/// setting is either built or rejected as unknown.
pub const IGNORED_MPREG_SETTINGS: &[&str] = &[
    "log_level",
    "on_port_assigned",
    "on_monitoring_port_assigned",
    "federation_config",
    "enable_default_cache",
    "enable_default_queue",
    "enable_cache_federation",
    "cache_latitude",
    "cache_longitude",
    "cache_capacity_mb",
    "persistence_config",
    "fabric_routing_enabled",
    "fabric_route_ttl_seconds",
    "fabric_route_announce_interval_seconds",
    "fabric_link_state_mode",
    "fabric_link_state_ttl_seconds",
    "fabric_link_state_announce_interval_seconds",
    "fabric_link_state_ecmp_paths",
    "fabric_link_state_area",
    "fabric_link_state_area_policy",
    "fabric_route_policy",
    "fabric_route_export_policy",
    "fabric_route_neighbor_policies",
    "fabric_route_export_neighbor_policies",
    "fabric_route_security_config",
    "fabric_route_require_signatures",
    "fabric_route_allow_unsigned",
    "fabric_route_signer",
    "fabric_route_key_registry",
    "fabric_route_key_provider",
    "fabric_route_key_refresh_interval_seconds",
    "fabric_route_key_ttl_seconds",
    "fabric_route_key_announce_interval_seconds",
    "fabric_raft_request_timeout_seconds",
];

/// Key prefixes of MPREG subsystems we do not build: any key starting with one
/// of these (and not a setting of ours, such as `cache_region`) is treated like
/// an entry of [`IGNORED_MPREG_SETTINGS`], so settings of those subsystems that
/// newer MPREG versions add do not break start-up either.
pub const IGNORED_MPREG_PREFIXES: &[&str] = &[
    "cache_",
    "queue_",
    "raft_",
    "persistence_",
    "federation_",
    "fabric_route_",
    "fabric_link_state_",
    "fabric_raft_",
    "transport_",
];

// ---------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------

/// Every setting of an mpreg-rs node. Field names are MPREG's (plus a few of
/// ours, marked "ours"), so the same names work in files, `MPREG_*` variables
/// and flags.
///
/// Build one with [`load`], or start from [`Settings::default`] and call
/// [`Settings::normalized`] before use: only normalised settings carry the
/// guarantees documented on the fields (clamps, lower-cased scopes, valid URLs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address the node binds; also the host of its node id `ws://host:port`,
    /// which is why it must not be empty.
    pub host: String,
    /// Port the node listens on (ours: 6666 rather than MPREG's auto-allocation,
    /// so `mpreg server` with no arguments is reachable where clients look by
    /// default). `0` asks the runtime to pick a free port.
    pub port: u16,
    /// Human-readable node name; the `publisher` of discovery notifications.
    pub name: String,
    /// The node's own cluster: the catalog cluster of its entries and the viewer
    /// cluster of plain (non-peer) client connections for policy decisions.
    pub cluster_id: String,
    /// URLs peers and clients should use to reach this node (STATUS, ingress
    /// hints, transport endpoints). Empty means `ws://host:port`.
    pub advertised_urls: Vec<String>,
    /// Resources this node offers (NodeDescriptor resources, STATUS `locs`),
    /// used by clients to pick a node for a function.
    pub resources: Vec<String>,
    /// The node's region: NodeDescriptor region, summaries' `regions`, and the
    /// region `list_peers` compares peers against to classify their scope.
    pub cache_region: String,
    /// Scope this node advertises for its node descriptor and the default scope
    /// of entries it registers without one (ours; MPREG's entry default is
    /// `zone`). Normalised to one of [`SCOPES`].
    pub scope: String,
    /// Seed peers dialled first at start-up (`ws://` / `wss://` URLs); the rest
    /// of the mesh is discovered through gossip.
    pub peers: Vec<String>,
    /// A single seed peer (MPREG's `--connect`); dialled like an entry of `peers`.
    pub connect: Option<String>,
    /// Base gossip period in seconds: STATUS cadence and the unit of nearly
    /// every adaptive fabric timer; load metrics are stale after
    /// `max(3 × gossip_interval, 1 s)`. Must be positive.
    pub gossip_interval: f64,
    /// How long (seconds) a peer that said GOODBYE is kept as departed so stale
    /// gossip cannot resurrect it; `0` disables the grace period.
    pub goodbye_reconnect_grace_seconds: f64,
    /// TTL (seconds) of this node's catalog entries and of its summaries; entries
    /// are refreshed well before it runs out. Must be positive.
    pub fabric_catalog_ttl_seconds: f64,
    /// Base hop budget of catalog gossip (adaptive up to 12 in large meshes);
    /// bounds how far one delta travels. At least 1.
    pub fabric_routing_max_hops: u32,
    /// Hard upper bound on one fabric (node-to-node) frame in bytes (ours;
    /// default 4 MiB): larger frames close the link, so a peer cannot make us
    /// buffer without bound. At least 1024.
    pub fabric_max_frame_bytes: u64,
    /// Hard upper bound on one client WebSocket message in bytes (ours; default
    /// 20 MiB, MPREG's client limit): larger messages get an error and a close.
    /// At least 1024.
    pub client_max_message_bytes: u64,
    /// Accepted connections (client and fabric together) one remote IP
    /// address may hold open at once (ours; default 1024). The next one is
    /// closed at once with code 1008 and a reason naming this setting, so
    /// one host cannot take every socket of the node. The default leaves
    /// room for large clusters run on one machine, where every peer comes
    /// from 127.0.0.1. At least 1.
    pub max_connections_per_source: u64,
    /// Accepted connections (client and fabric together) the node holds
    /// open at once (ours; default 10000), a backstop under the process's
    /// file-descriptor limit: past it new connections are closed with code
    /// 1008 and a reason naming this setting. At least 1.
    pub max_connections: u64,
    /// Seconds an inbound connection may take to send its HTTP request head
    /// and finish the WebSocket upgrade (ours; default 10, the former fixed
    /// bound of both runtimes). A client that dribbles a partial head
    /// (slowloris) is dropped when it runs out, so half-open sockets cannot
    /// pile up. Positive.
    pub connection_handshake_timeout_seconds: f64,
    /// Seconds a client connection may stay open with no message in either
    /// direction (ours; default 300); it is then closed with code 1008 and a
    /// reason naming this setting, so abandoned sockets do not hold memory
    /// and connection slots forever. A connection with a live subscription,
    /// catalog watch or connection-bound registration is never idle: it is
    /// waiting for the node by design. Five minutes outlasts any pause of
    /// an interactive or scripted client between calls; a client that is
    /// closed simply reconnects. `0` disables.
    pub client_idle_timeout_seconds: f64,
    /// Pub/sub subscriptions one client connection may hold (ours; default
    /// 1024). A `pubsub-subscribe` past it is refused with an error in its
    /// acknowledgement; the connection stays open. At least 1.
    pub client_max_subscriptions_per_connection: u64,
    /// Catalog watches (`catalog_watch` / `summary_watch` topics with their
    /// filters) one client connection may hold (ours; default 1024). A
    /// watch request past it gets an error reply; the connection stays
    /// open. At least 1.
    pub client_max_watches_per_connection: u64,
    /// Departed and dead peer instances remembered at once (ours; default
    /// 65536). Each is kept for the tombstone horizon so a stale copy cannot
    /// resurrect it; past this cap the record nearest the end of its horizon
    /// is dropped early (counted), so GOODBYEs naming ever new instances
    /// cannot grow memory without bound. The default is far above what any
    /// real cluster's churn leaves within one horizon. At least 1.
    pub fabric_max_departed_records: u64,
    /// Tombstones (removed entries) remembered per origin (ours; default
    /// 100000). Each is kept for the tombstone horizon so stale copies of
    /// the entry cannot come back; past this cap the oldest are dropped
    /// early (counted) and a peer that still needed one gets a full reset
    /// of that origin instead, so correctness holds and memory stays
    /// bounded when an origin removes entries faster than the horizon
    /// collects them. At least 1.
    pub fabric_max_tombstones_per_origin: u64,
    /// Seconds an outbound peer dial may take before it counts as failed
    /// (ours), so a black-holed seed cannot stall the dial scheduler. Positive.
    pub fabric_dial_timeout_seconds: f64,
    /// Base backoff in seconds before re-dialling a peer whose dial failed
    /// (ours); the dial scheduler grows it per failure. Positive.
    pub fabric_dial_retry_seconds: f64,
    /// `summary` gossips only RPC summaries; `full` also attaches whole RPC specs
    /// to function entries (bigger catalog, richer `rpc_describe`).
    pub rpc_spec_gossip_mode: String,
    /// When non-empty, full RPC specs are gossiped only for these namespaces
    /// (dot-boundary prefixes), to bound catalog size.
    pub rpc_spec_gossip_namespaces: Vec<String>,
    /// Full RPC specs larger than this many bytes are gossiped as summaries only.
    /// `None` = no limit.
    pub rpc_spec_gossip_max_bytes: Option<u64>,
    /// Serve `catalog_query` / `cluster_map_v2` from a delta-fed resolver cache
    /// instead of the live catalog (for dedicated resolver nodes).
    pub discovery_resolver_mode: bool,
    /// When non-empty, the resolver only ingests deltas touching these
    /// namespaces (dot-boundary prefixes), to keep a partial mirror small.
    pub discovery_resolver_namespaces: Vec<String>,
    /// Seed the resolver cache from the local catalog at start-up, so it answers
    /// before the first deltas arrive.
    pub discovery_resolver_seed_on_start: bool,
    /// Seconds between prunes of expired resolver entries; `0` disables,
    /// otherwise at least 1 s (a tighter loop only burns CPU).
    pub discovery_resolver_prune_interval_seconds: f64,
    /// Seconds between full re-seeds of the resolver from the catalog (repairs
    /// missed deltas); `0` disables, otherwise at least 1 s.
    pub discovery_resolver_resync_interval_seconds: f64,
    /// Cache resolver query results (stale-while-revalidate plus negative
    /// caching) to absorb bursts of identical queries.
    pub discovery_resolver_query_cache_enabled: bool,
    /// Seconds a cached resolver result is fresh.
    pub discovery_resolver_query_ttl_seconds: f64,
    /// Extra seconds after the TTL during which a stale result is still served
    /// while it is recomputed.
    pub discovery_resolver_query_stale_seconds: f64,
    /// Seconds an empty result is cached, so repeated misses stay cheap.
    pub discovery_resolver_query_negative_ttl_seconds: f64,
    /// Keep-warm, in TTLs (ours, not MPREG's): a cached result read within
    /// the last this-many TTLs is recomputed before it expires and right
    /// after a change makes it stale, so its readers keep getting fresh
    /// results; `0` leaves it to the next reader (MPREG's behaviour).
    pub discovery_resolver_query_keep_warm_ttls: f64,
    /// Entry cap shared by the catalog-query and cluster-map result caches
    /// (bounds memory). Never negative after normalisation.
    pub discovery_resolver_query_cache_max_entries: i64,
    /// Cache summary exports received from other clusters, so region/global
    /// `summary_query` can be answered from them.
    pub discovery_summary_resolver_mode: bool,
    /// When non-empty, only summaries of these namespaces (dot-boundary
    /// prefixes) are cached.
    pub discovery_summary_resolver_namespaces: Vec<String>,
    /// Seconds between prunes of expired cached summaries; `0` disables,
    /// otherwise at least 1 s.
    pub discovery_summary_resolver_prune_interval_seconds: f64,
    /// When non-empty, subscribe to and accept only summaries of these scopes
    /// (normalised to [`SCOPES`]).
    pub discovery_summary_resolver_scopes: Vec<String>,
    /// Turn the namespace policy engine on at start-up (the apply RPC can also
    /// turn it on later).
    pub discovery_policy_enabled: bool,
    /// Decision for namespaces no policy rule matches.
    pub discovery_policy_default_allow: bool,
    /// Initial namespace policy rules (plain data here; the policy engine
    /// validates and compiles them).
    pub discovery_policy_rules: Vec<PolicyRuleConfig>,
    /// Tenant-aware visibility: bind a tenant to each connection (credentials or
    /// header) and apply tenant policy rules.
    pub discovery_tenant_mode: bool,
    /// Honour a request's `viewer_tenant_id` when its connection has no bound
    /// tenant (convenient in development; turn off where tenants are
    /// untrusted). Unset: on while no credentials are configured (MPREG's
    /// default), off once they are, so an unauthenticated client cannot claim
    /// a tenant unless this says so explicitly.
    pub discovery_tenant_allow_request_override: Option<bool>,
    /// Tenant assumed when a request has none and overrides are off.
    pub discovery_tenant_default_id: Option<String>,
    /// Trusted header (set by a proxy) that carries the tenant when no
    /// credentials are configured; stored lower-cased, `""` means none.
    pub discovery_tenant_header: Option<String>,
    /// Credentials that bind a tenant (and a role) to a connection presenting
    /// them.
    pub discovery_tenant_credentials: Vec<TenantCredential>,
    /// Size of the discovery access-audit ring (entries); never negative after
    /// normalisation, `0` records nothing.
    pub discovery_access_audit_max_entries: i64,
    /// Export summaries of this cluster's functions periodically on summary
    /// topics for other clusters' resolvers.
    pub discovery_summary_export_enabled: bool,
    /// Seconds between summary exports; `0` exports once at start-up.
    pub discovery_summary_export_interval_seconds: f64,
    /// When non-empty, only these namespaces (dot-boundary prefixes) are
    /// exported, after policy.
    pub discovery_summary_export_namespaces: Vec<String>,
    /// Scope stamped on exports and used in their topic names; `None` publishes
    /// unscoped only. Normalised to [`SCOPES`].
    pub discovery_summary_export_scope: Option<String>,
    /// Also publish each export on the unscoped topics (turn off for scoped-only
    /// routing, to avoid duplicate deliveries).
    pub discovery_summary_export_include_unscoped: bool,
    /// Seconds a changed summary must stay changed before it is exported
    /// (anti-flap); `0` disables.
    pub discovery_summary_export_hold_down_seconds: f64,
    /// Seconds of exports replayed to new subscribers (store-and-forward);
    /// `0` disables.
    pub discovery_summary_export_store_forward_seconds: f64,
    /// Maximum exports kept for replay; store-and-forward runs only when both
    /// this and the seconds are positive.
    pub discovery_summary_export_store_forward_max_messages: i64,
    /// Maximum discovery requests per viewer, command and namespace per window
    /// (MPREG's name says "per minute", the window decides); `0` disables rate
    /// limiting. Never negative after normalisation.
    pub discovery_rate_limit_requests_per_minute: i64,
    /// Length of the rate-limit sliding window in seconds; `0` allows everything.
    pub discovery_rate_limit_window_seconds: f64,
    /// Maximum rate-limit keys tracked (bounds memory; oldest keys are evicted).
    pub discovery_rate_limit_max_keys: i64,
    /// Start the DNS gateway (UDP and TCP) with the node, for DNS-only clients.
    pub dns_gateway_enabled: bool,
    /// Address the DNS gateway binds; `None` = `host`.
    pub dns_listen_host: Option<String>,
    /// DNS UDP port; `None` (or `0`, normalised to `None`) lets the runtime
    /// choose.
    pub dns_udp_port: Option<u16>,
    /// DNS TCP port; `None` (or `0`) lets the runtime choose (it uses the UDP
    /// port, so truncated answers can be retried over TCP on the same port).
    pub dns_tcp_port: Option<u16>,
    /// Zones the gateway is authoritative for; stored trimmed, without
    /// surrounding dots, lower-cased and de-duplicated.
    pub dns_zones: Vec<String>,
    /// Lower TTL clamp of DNS answers in seconds (at least 1, so resolvers do
    /// not hammer the gateway).
    pub dns_min_ttl_seconds: f64,
    /// Upper TTL clamp of DNS answers in seconds (raised to the minimum if
    /// lower), so a long catalog TTL does not pin stale answers in caches.
    pub dns_max_ttl_seconds: f64,
    /// Sustained DNS queries per second per source address (ours; a token
    /// bucket); `0` turns the per-source limit off.
    pub dns_rate_limit_queries_per_second: f64,
    /// Queries a quiet source may send at once (the bucket size, at least 1
    /// while the limit is on).
    pub dns_rate_limit_burst: f64,
    /// Answer names outside `dns_zones` by treating the whole name as relative.
    pub dns_allow_external_names: bool,
    /// Viewer cluster used for policy on DNS answers; `None` = `cluster_id`.
    pub dns_viewer_cluster_id: Option<String>,
    /// Viewer tenant used for policy on DNS answers (DNS carries no identity).
    pub dns_viewer_tenant_id: Option<String>,
    /// Viewers per source network (ours): a query from a listed network is
    /// answered for that view's cluster / tenant, the most specific network
    /// winning; other sources get `dns_viewer_cluster_id` /
    /// `dns_viewer_tenant_id`.
    pub dns_views: Vec<DnsViewConfig>,
    /// Serve the monitoring HTTP endpoints the CLI's reports read.
    pub monitoring_enabled: bool,
    /// Monitoring HTTP port; `None` (or `0`) lets the runtime choose.
    pub monitoring_port: Option<u16>,
    /// Monitoring bind address; `None` = `host`.
    pub monitoring_host: Option<String>,
    /// Send permissive CORS headers on monitoring responses (for browser
    /// dashboards).
    pub monitoring_enable_cors: bool,
    /// When set, every monitoring request (CORS preflights aside) must carry
    /// `Authorization: Bearer <token>`; others get 401. MPREG's name. At
    /// least 16 characters, so a guessable word is refused at start.
    pub monitoring_auth_token: Option<SecretText>,
    /// Shared cluster key (ours). When set, fabric peers prove they hold it
    /// with an HMAC challenge-response before any gossip flows, and a peer
    /// that cannot is refused, counted and audited
    /// ([`crate::fabric::auth`]). Every node of the cluster needs the same
    /// key. At least 16 characters.
    pub fabric_auth_key: Option<SecretText>,
    /// MPREG's name. When set, summary exports are signed with it and
    /// floods without a valid signature are dropped (not relayed, delivered
    /// or cached) and counted ([`crate::summary::signing`]). Exporters and
    /// the summary resolvers that must trust them share it. At least 16
    /// characters.
    pub discovery_summary_signing_secret: Option<SecretText>,
    /// PEM file with the certificate chain the node shows clients that
    /// connect with `wss://` (ours). Set together with
    /// `client_tls_key_file`; the runtime loads both at start and does not
    /// start if they do not load. The client port then serves TLS and plain
    /// connections side by side, told apart by their first byte (a TLS
    /// handshake record is never the start of an HTTP request).
    pub client_tls_cert_file: Option<String>,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1) of
    /// `client_tls_cert_file` (ours).
    pub client_tls_key_file: Option<String>,
    /// Refuse client (RPC) connections that did not arrive over TLS: they
    /// are closed with 1008 and a reason naming `wss://`, and counted
    /// (ours). Fabric peers on the same port are not affected: they prove
    /// membership with `fabric_auth_key` instead. Needs the two files above.
    pub client_tls_required: bool,
    /// Advertise the node's built-in discovery RPCs (`catalog_query`,
    /// `list_peers`, ...) as function entries, as a stock MPREG node does.
    /// Off, the node gossips only its descriptor and what it declares: in
    /// a large cluster that is ~25 fewer entries per node in every
    /// catalog; the RPCs are still served.
    pub advertise_builtin_rpcs: bool,
    /// Diagnostic scopes to log at debug level (`peer_dial`,
    /// `peer_dial_policy`, `discovery_loop`, ...), to debug one subsystem
    /// without drowning in the rest.
    pub log_debug_scopes: Vec<String>,
    /// Directory where persisted state lives (applied policies with their
    /// history, RPC registrations) so it survives a restart (ours). `None` = no
    /// persistence.
    pub data_dir: Option<String>,
    /// Runtime that drives the node (ours): `tokio` (standard) or `mio` (the
    /// hand-rolled event loop).
    pub runtime: String,
    /// Services this node declares in its catalog at start-up (ours), as
    /// `[[services]]` tables.
    pub services: Vec<ServiceDecl>,
    /// Functions this node declares at start-up (ours), as `[[functions]]`.
    pub functions: Vec<FunctionDecl>,
    /// Queues this node declares at start-up (ours), as `[[queues]]`.
    pub queues: Vec<QueueDecl>,
    /// Topic subscriptions this node declares at start-up (ours), as
    /// `[[topics]]`.
    pub topics: Vec<TopicDecl>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            host: "127.0.0.1".into(),
            port: 6666,
            name: "NO NAME PROVIDED".into(),
            cluster_id: "default-cluster".into(),
            advertised_urls: Vec::new(),
            resources: Vec::new(),
            cache_region: "local".into(),
            scope: "zone".into(),
            peers: Vec::new(),
            connect: None,
            gossip_interval: 5.0,
            goodbye_reconnect_grace_seconds: 5.0,
            fabric_catalog_ttl_seconds: 120.0,
            fabric_routing_max_hops: 5,
            fabric_max_frame_bytes: 4 * 1024 * 1024,
            client_max_message_bytes: 20 * 1024 * 1024,
            max_connections_per_source: 1024,
            max_connections: 10_000,
            connection_handshake_timeout_seconds: 10.0,
            client_idle_timeout_seconds: 300.0,
            client_max_subscriptions_per_connection: 1024,
            client_max_watches_per_connection: 1024,
            fabric_max_departed_records: 65_536,
            fabric_max_tombstones_per_origin: 100_000,
            fabric_dial_timeout_seconds: 3.0,
            fabric_dial_retry_seconds: 1.0,
            rpc_spec_gossip_mode: "summary".into(),
            rpc_spec_gossip_namespaces: Vec::new(),
            rpc_spec_gossip_max_bytes: None,
            discovery_resolver_mode: false,
            discovery_resolver_namespaces: Vec::new(),
            discovery_resolver_seed_on_start: true,
            discovery_resolver_prune_interval_seconds: 30.0,
            discovery_resolver_resync_interval_seconds: 0.0,
            discovery_resolver_query_cache_enabled: true,
            discovery_resolver_query_ttl_seconds: 10.0,
            discovery_resolver_query_stale_seconds: 20.0,
            discovery_resolver_query_negative_ttl_seconds: 5.0,
            discovery_resolver_query_keep_warm_ttls:
                crate::resolver::query_cache::DEFAULT_KEEP_WARM_TTLS,
            discovery_resolver_query_cache_max_entries: 1000,
            discovery_summary_resolver_mode: false,
            discovery_summary_resolver_namespaces: Vec::new(),
            discovery_summary_resolver_prune_interval_seconds: 30.0,
            discovery_summary_resolver_scopes: Vec::new(),
            discovery_policy_enabled: false,
            discovery_policy_default_allow: true,
            discovery_policy_rules: Vec::new(),
            discovery_tenant_mode: false,
            discovery_tenant_allow_request_override: None,
            discovery_tenant_default_id: None,
            discovery_tenant_header: None,
            discovery_tenant_credentials: Vec::new(),
            discovery_access_audit_max_entries: 500,
            discovery_summary_export_enabled: false,
            discovery_summary_export_interval_seconds: 30.0,
            discovery_summary_export_namespaces: Vec::new(),
            discovery_summary_export_scope: Some("global".into()),
            discovery_summary_export_include_unscoped: true,
            discovery_summary_export_hold_down_seconds: 0.0,
            discovery_summary_export_store_forward_seconds: 0.0,
            discovery_summary_export_store_forward_max_messages: 100,
            discovery_rate_limit_requests_per_minute: 0,
            discovery_rate_limit_window_seconds: 60.0,
            discovery_rate_limit_max_keys: 2000,
            dns_gateway_enabled: false,
            dns_listen_host: None,
            dns_udp_port: None,
            dns_tcp_port: None,
            dns_zones: vec!["mpreg".into()],
            dns_min_ttl_seconds: 1.0,
            dns_max_ttl_seconds: 60.0,
            dns_rate_limit_queries_per_second: 200.0,
            dns_rate_limit_burst: 400.0,
            dns_allow_external_names: false,
            dns_viewer_cluster_id: None,
            dns_viewer_tenant_id: None,
            dns_views: Vec::new(),
            monitoring_enabled: true,
            monitoring_port: None,
            monitoring_host: None,
            monitoring_enable_cors: true,
            monitoring_auth_token: None,
            fabric_auth_key: None,
            client_tls_cert_file: None,
            client_tls_key_file: None,
            client_tls_required: false,
            discovery_summary_signing_secret: None,
            advertise_builtin_rpcs: true,
            log_debug_scopes: Vec::new(),
            data_dir: None,
            runtime: "tokio".into(),
            services: Vec::new(),
            functions: Vec::new(),
            queues: Vec::new(),
            topics: Vec::new(),
        }
    }
}

/// One namespace policy rule, as MPREG's `NamespacePolicyRule` reads it. Plain
/// data: the policy engine decides what it means and validates it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRuleConfig {
    /// Namespace the rule governs, with everything below it (dot boundary).
    pub namespace: String,
    /// Source clusters allowed to publish and export this namespace; empty = any.
    #[serde(default)]
    pub owners: Vec<String>,
    /// Viewer clusters allowed to see it; empty together with
    /// `visibility_tenants` = everyone.
    #[serde(default)]
    pub visibility: Vec<String>,
    /// Viewer tenants allowed to see it.
    #[serde(default)]
    pub visibility_tenants: Vec<String>,
    /// Summary export scopes allowed; empty = any.
    #[serde(default)]
    pub export_scopes: Vec<String>,
    /// Whether summaries of this namespace may be exported at all.
    #[serde(default)]
    pub allow_summaries: bool,
    /// Time windows that override export permissions during a migration.
    #[serde(default)]
    pub cutover_windows: Vec<CutoverWindowConfig>,
    /// Free-form version label, echoed in audits and exports.
    #[serde(default)]
    pub policy_version: Option<String>,
}

/// A cutover window of a policy rule: between `starts_at` and `ends_at` (Unix
/// seconds, both inclusive) its export settings replace the rule's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CutoverWindowConfig {
    /// Window start, Unix seconds.
    pub starts_at: f64,
    /// Window end, Unix seconds; `None` = open-ended.
    #[serde(default)]
    pub ends_at: Option<f64>,
    /// Export scopes allowed during the window; empty = the rule's.
    #[serde(default)]
    pub export_scopes: Vec<String>,
    /// Overrides the rule's `allow_summaries` during the window; `None` inherits.
    #[serde(default)]
    pub allow_summaries: Option<bool>,
}

/// Shortest secret accepted for `fabric_auth_key` and
/// `monitoring_auth_token`: long enough that guessing it online is hopeless.
pub const MIN_SECRET_CHARS: usize = 16;

/// A secret setting (a key or token). `Debug` redacts it so settings can be
/// logged safely; serde sees the plain string, so settings still round-trip.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretText(String);

impl SecretText {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        SecretText(secret.into())
    }

    /// The secret itself, for the code that checks or uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Trims a secret (empty means unset) and refuses one too short to protect
/// anything, without echoing it.
fn tidy_secret(secret: &mut Option<SecretText>, name: &str) -> Result<(), Problem> {
    let Some(value) = secret.take() else {
        return Ok(());
    };
    let trimmed = value.0.trim();
    if trimmed.is_empty() {
        return Ok(());
    }
    let chars = trimmed.chars().count();
    if chars < MIN_SECRET_CHARS {
        return Err(Problem::new(
            name,
            format!("must be at least {MIN_SECRET_CHARS} characters (got {chars})"),
        ));
    }
    *secret = Some(SecretText(trimmed.to_string()));
    Ok(())
}

/// A credential that binds a tenant (and, ours, a role) to a connection.
///
/// `Debug` redacts the token so settings can be logged safely.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantCredential {
    /// Tenant bound to connections presenting this credential.
    pub tenant_id: String,
    /// The secret (bearer token or API key). Never empty after normalisation.
    pub token: String,
    /// `bearer` (`Authorization: Bearer <token>`) or `api-key`
    /// (`X-API-Key: <token>`).
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// `reader` or `admin` (ours): what the connection may do once
    /// credentials are configured.
    #[serde(default = "default_role")]
    pub role: String,
}

impl std::fmt::Debug for TenantCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantCredential")
            .field("tenant_id", &self.tenant_id)
            .field("token", &"<redacted>")
            .field("scheme", &self.scheme)
            .field("role", &self.role)
            .finish()
    }
}

/// A DNS viewer for one source network (`dns_views`, ours).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsViewConfig {
    /// Source network, `10.0.0.0/8` or a bare address.
    pub network: String,
    /// Viewer cluster for queries from it; `None` = the default DNS viewer's.
    #[serde(default)]
    pub cluster_id: Option<String>,
    /// Viewer tenant for queries from it; `None` = the default DNS viewer's.
    #[serde(default)]
    pub tenant_id: Option<String>,
}

/// A service this node declares at start-up (ours), like a `dns_register` that
/// needs no client. Becomes a catalog service entry owned by this node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceDecl {
    /// Service name (the first DNS label of its records).
    pub name: String,
    /// Dotted namespace it lives in (policy and DNS names use it).
    pub namespace: String,
    /// Transport protocol (`tcp`, `udp`, `ws`...), lower-cased; DNS `_tcp` /
    /// `_udp` labels match on it.
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// Port clients connect to, 1 to 65535.
    pub port: u16,
    /// Hosts serving it; empty = this node's host.
    #[serde(default)]
    pub targets: Vec<String>,
    /// Entry scope; `None` = the node's `scope`.
    #[serde(default)]
    pub scope: Option<String>,
    /// Free-form tags, for queries.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Capabilities advertised, for queries.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Extra key/values (strings, numbers or booleans), published in DNS TXT.
    #[serde(default)]
    pub metadata: BTreeMap<String, Json>,
    /// SRV priority (lower is preferred).
    #[serde(default)]
    pub priority: i64,
    /// SRV weight among equal priorities.
    #[serde(default)]
    pub weight: i64,
}

/// A function this node declares at start-up (ours): a catalog function entry
/// for an RPC implemented elsewhere and reachable through this node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunctionDecl {
    /// Function (RPC) name.
    pub name: String,
    /// Stable function id; `None` is filled with `name` by normalisation.
    #[serde(default)]
    pub function_id: Option<String>,
    /// Version `MAJOR.MINOR.PATCH` (digits only), compared by clients.
    #[serde(default = "default_version")]
    pub version: String,
    /// Resources the function needs (clients route on them).
    #[serde(default)]
    pub resources: Vec<String>,
    /// Entry scope; `None` = the node's `scope`.
    #[serde(default)]
    pub scope: Option<String>,
    /// Free-form tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// One-line description shown by `rpc_list` / `rpc_describe`.
    #[serde(default)]
    pub summary: Option<String>,
}

/// A queue this node declares at start-up (ours).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueDecl {
    /// Queue name (dotted; policy applies to it).
    pub queue_name: String,
    /// Delivery guarantees offered, each one of [`DELIVERY_GUARANTEES`].
    #[serde(default = "default_delivery")]
    pub delivery_guarantees: Vec<String>,
    /// Entry scope; `None` = the node's `scope`.
    #[serde(default)]
    pub scope: Option<String>,
    /// Free-form tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Extra string key/values.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// A topic subscription this node declares at start-up (ours).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicDecl {
    /// Subscription id; `None` lets the node generate one.
    #[serde(default)]
    pub subscription_id: Option<String>,
    /// Topic patterns (`*` one segment, `#` the rest); at least one.
    pub patterns: Vec<String>,
    /// Entry scope; `None` = the node's `scope`.
    #[serde(default)]
    pub scope: Option<String>,
    /// Free-form tags.
    #[serde(default)]
    pub tags: Vec<String>,
}

fn default_scheme() -> String {
    "bearer".into()
}

fn default_role() -> String {
    "reader".into()
}

fn default_protocol() -> String {
    "tcp".into()
}

fn default_version() -> String {
    "1.0.0".into()
}

fn default_delivery() -> Vec<String> {
    vec!["at_least_once".into()]
}

// ---------------------------------------------------------------------------
// Errors and results
// ---------------------------------------------------------------------------

/// A setting that could not be accepted. Always displays as one line naming
/// the key, where it came from, and what is wrong, e.g.
/// ``invalid setting `gossip_interval` (from environment MPREG_GOSSIP_INTERVAL): expected a number, got "fast"``.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render_error(.key, .source_name, .problem))]
pub struct ConfigError {
    /// The setting, or a path inside it such as `services[1].port`; empty when
    /// the problem is the file as a whole (a TOML syntax error).
    pub key: String,
    /// What is wrong, one line.
    pub problem: String,
    /// Where the value came from: `file`, `environment MPREG_X`, `flag --x`,
    /// `settings` (a [`Settings`] built in code) or `defaults`.
    pub source_name: String,
}

impl ConfigError {
    /// Builds an error, flattening control characters so it stays one line
    /// whatever the input contained.
    fn new(key: impl AsRef<str>, problem: impl AsRef<str>, source_name: impl AsRef<str>) -> Self {
        ConfigError {
            key: one_line(key.as_ref()),
            problem: one_line(problem.as_ref()),
            source_name: one_line(source_name.as_ref()),
        }
    }
}

fn render_error(key: &str, source_name: &str, problem: &str) -> String {
    if key.is_empty() {
        format!("invalid settings (from {source_name}): {problem}")
    } else {
        format!("invalid setting `{key}` (from {source_name}): {problem}")
    }
}

/// Escapes control characters (newlines included) so messages stay one line.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// The result of [`load`]: normalised settings plus the warnings to log.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The merged, normalised settings.
    pub settings: Settings,
    /// One line per MPREG setting that was accepted but has no effect here.
    pub warnings: Vec<String>,
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

/// Merges defaults < `file` (TOML text) < `env` (`MPREG_<NAME>` pairs) <
/// `flags` (`(setting_name, raw value)` pairs, read exactly like environment
/// values), then normalises and validates the result.
///
/// Environment variables other than `MPREG_` + an upper-case setting name
/// (`MPREG_URL`, `MPREG_DEBUG_*`, ...) are ignored, because the same
/// environment also configures the CLI and diagnostics. Unknown keys in the
/// file or flags are errors; MPREG keys of subsystems we do not build produce
/// one warning each.
pub fn load(
    file: Option<&str>,
    env: &[(String, String)],
    flags: &[(String, String)],
) -> Result<Loaded, ConfigError> {
    let mut layers = Layers::default();
    if let Some(text) = file {
        layers.apply_file(text)?;
    }
    layers.apply_env(env)?;
    layers.apply_flags(flags)?;
    let Layers {
        values,
        sources,
        warnings,
    } = layers;
    let merged: Settings = serde_json::from_value(Json::Object(values)).map_err(|e| {
        // Unreachable while SETTINGS matches the struct (a unit test checks it).
        ConfigError::new(
            "",
            format!("internal error assembling settings: {e}"),
            "loader",
        )
    })?;
    let source_of = |key: &str| {
        sources
            .get(key)
            .cloned()
            .unwrap_or_else(|| "defaults".to_string())
    };
    let settings = merged.normalized_from(&source_of)?;
    Ok(Loaded { settings, warnings })
}

/// Names of every setting the loader knows, in declaration order (for the CLI
/// to build flags and help from).
pub fn known_settings() -> impl Iterator<Item = &'static str> {
    SETTINGS.iter().map(|field| field.name)
}

/// Whether `key` is an MPREG setting accepted only for compatibility (one
/// warning, no effect). Settings of ours are never ignored.
pub fn is_ignored_mpreg_setting(key: &str) -> bool {
    setting(key).is_none()
        && (IGNORED_MPREG_SETTINGS.contains(&key)
            || IGNORED_MPREG_PREFIXES.iter().any(|p| key.starts_with(p)))
}

/// The environment variable that sets `setting`: `MPREG_` + its upper-case
/// name.
pub fn env_var_name(setting: &str) -> String {
    format!("{ENV_PREFIX}{}", setting.to_ascii_uppercase())
}

/// Accumulates the canonical JSON value of each key given so far (later
/// sources overwrite), where each came from, and the warnings.
#[derive(Default)]
struct Layers {
    values: Map<String, Json>,
    sources: BTreeMap<String, String>,
    warnings: Vec<String>,
}

impl Layers {
    /// Reads the TOML file: keys at the top level and/or under `[mpreg]`.
    fn apply_file(&mut self, text: &str) -> Result<(), ConfigError> {
        let table: toml::Table = toml::from_str(text).map_err(|e| toml_error(text, &e))?;
        let mut entries: Vec<(&String, &toml::Value)> = Vec::new();
        for (key, value) in &table {
            match value {
                toml::Value::Table(inner) if key == MPREG_TABLE => entries.extend(inner.iter()),
                _ => entries.push((key, value)),
            }
        }
        let mut seen = BTreeSet::new();
        for (key, value) in entries {
            if !seen.insert(key.as_str()) {
                return Err(ConfigError::new(
                    key,
                    "is set both at the top level and under [mpreg]; keep one",
                    "file",
                ));
            }
            self.set(key, &toml_to_json(value), Origin::File, "file")?;
        }
        Ok(())
    }

    /// Takes `MPREG_<UPPER_NAME>` for known settings and nothing else.
    fn apply_env(&mut self, env: &[(String, String)]) -> Result<(), ConfigError> {
        for (name, value) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if rest.is_empty() || rest.bytes().any(|b| b.is_ascii_lowercase()) {
                continue;
            }
            let key = rest.to_ascii_lowercase();
            if setting(&key).is_none() {
                continue;
            }
            let source = format!("environment {name}");
            self.set(&key, &Json::String(value.clone()), Origin::Text, &source)?;
        }
        Ok(())
    }

    /// Flags name a setting (`gossip_interval`, `gossip-interval` or
    /// `--gossip-interval`) and carry a raw string like the environment.
    fn apply_flags(&mut self, flags: &[(String, String)]) -> Result<(), ConfigError> {
        for (name, value) in flags {
            let key = name.trim().trim_start_matches('-').replace('-', "_");
            let source = format!("flag --{}", key.replace('_', "-"));
            self.set(&key, &Json::String(value.clone()), Origin::Text, &source)?;
        }
        Ok(())
    }

    /// Reads one key from one source: known settings are converted to their
    /// canonical JSON shape, ignorable MPREG keys warn, anything else fails.
    fn set(
        &mut self,
        key: &str,
        raw: &Json,
        origin: Origin,
        source: &str,
    ) -> Result<(), ConfigError> {
        if let Some(field) = setting(key) {
            let value = coerce(field.kind, raw, origin, key).map_err(|p| p.at(source))?;
            self.values.insert(key.to_string(), value);
            self.sources.insert(key.to_string(), source.to_string());
            return Ok(());
        }
        if is_ignored_mpreg_setting(key) {
            let warning = format!(
                "setting `{key}` is accepted for MPREG compatibility but has no effect in mpreg-rs"
            );
            if !self.warnings.contains(&warning) {
                self.warnings.push(warning);
            }
            return Ok(());
        }
        Err(ConfigError::new(key, unknown_setting(key), source))
    }
}

/// "unknown setting", plus the closest known name when one is near.
fn unknown_setting(key: &str) -> String {
    let closest = SETTINGS
        .iter()
        .map(|f| (edit_distance(key, f.name), f.name))
        .min();
    match closest {
        Some((distance, name)) if distance <= (key.chars().count() / 4).max(2) => {
            format!("unknown setting (did you mean `{name}`?)")
        }
        _ => "unknown setting".to_string(),
    }
}

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = Vec::with_capacity(b.len() + 1);
        row.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            let delete = prev[j + 1] + 1;
            let insert = row[j] + 1;
            row.push(substitute.min(delete).min(insert));
        }
        prev = row;
    }
    prev.last().copied().unwrap_or(0)
}

/// Turns a TOML parse error into one line with line and column.
fn toml_error(text: &str, error: &toml::de::Error) -> ConfigError {
    let position = error
        .span()
        .and_then(|span| text.get(..span.start))
        .map(|before| {
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!(" at line {line}, column {column}")
        })
        .unwrap_or_default();
    ConfigError::new(
        "",
        format!("not valid TOML{position}: {}", error.message().trim()),
        "file",
    )
}

/// TOML to JSON. Non-finite floats (which JSON cannot hold) become the strings
/// `nan` / `inf` / `-inf`, which number settings then reject by name.
fn toml_to_json(value: &toml::Value) -> Json {
    match value {
        toml::Value::String(s) => Json::String(s.clone()),
        toml::Value::Integer(i) => Json::from(*i),
        toml::Value::Float(x) => match serde_json::Number::from_f64(*x) {
            Some(n) => Json::Number(n),
            None => Json::String(x.to_string()),
        },
        toml::Value::Boolean(b) => Json::Bool(*b),
        toml::Value::Datetime(d) => Json::String(d.to_string()),
        toml::Value::Array(items) => Json::Array(items.iter().map(toml_to_json).collect()),
        toml::Value::Table(table) => Json::Object(
            table
                .iter()
                .map(|(k, v)| (k.clone(), toml_to_json(v)))
                .collect(),
        ),
    }
}

// ---------------------------------------------------------------------------
// Value kinds: how each setting is read
// ---------------------------------------------------------------------------

/// How a raw value is read into a setting's canonical JSON shape (the shape
/// serde then deserialises without surprises).
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// Boolean; strings `true/false/1/0/yes/no/on/off` (any case) too.
    Bool,
    /// Finite float; numeric strings too.
    Float,
    /// Integer within `min..=max`; numeric strings too.
    Int { min: i128, max: i128 },
    /// String (numbers are stringified, as MPREG does).
    Text,
    /// String never echoed in errors (tokens).
    Secret,
    /// List of strings; one string is a one-element list in files, a JSON array
    /// or comma-separated list in the environment and flags.
    TextList,
    /// Table of strings (numbers and booleans stringified).
    TextMap,
    /// Table of strings, numbers or booleans.
    ScalarMap,
    /// List of tables with these fields (one table = a list of one; a string
    /// is read as JSON).
    Records(&'static [Field]),
    /// `None` (JSON null, or the strings `""`, `none`, `null`) or the inner kind.
    Opt(&'static Kind),
}

const U16: Kind = Kind::Int {
    min: 0,
    max: u16::MAX as i128,
};
const U32: Kind = Kind::Int {
    min: 0,
    max: u32::MAX as i128,
};
const U64: Kind = Kind::Int {
    min: 0,
    max: u64::MAX as i128,
};
const I64: Kind = Kind::Int {
    min: i64::MIN as i128,
    max: i64::MAX as i128,
};

/// One named field of a table (top-level settings or a nested record).
#[derive(Debug, Clone, Copy)]
struct Field {
    name: &'static str,
    kind: Kind,
    required: bool,
}

/// An optional field (has a default).
const fn field(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: false,
    }
}

/// A field that must be given.
const fn required(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        required: true,
    }
}

/// Every top-level setting and how it is read. A unit test checks that this
/// table and [`Settings`] list exactly the same names with matching shapes.
const SETTINGS: &[Field] = &[
    field("host", Kind::Text),
    field("port", U16),
    field("name", Kind::Text),
    field("cluster_id", Kind::Text),
    field("advertised_urls", Kind::TextList),
    field("resources", Kind::TextList),
    field("cache_region", Kind::Text),
    field("scope", Kind::Text),
    field("peers", Kind::TextList),
    field("connect", Kind::Opt(&Kind::Text)),
    field("gossip_interval", Kind::Float),
    field("goodbye_reconnect_grace_seconds", Kind::Float),
    field("fabric_catalog_ttl_seconds", Kind::Float),
    field("fabric_routing_max_hops", U32),
    field("fabric_max_frame_bytes", U64),
    field("client_max_message_bytes", U64),
    field("max_connections_per_source", U64),
    field("max_connections", U64),
    field("connection_handshake_timeout_seconds", Kind::Float),
    field("client_idle_timeout_seconds", Kind::Float),
    field("client_max_subscriptions_per_connection", U64),
    field("client_max_watches_per_connection", U64),
    field("fabric_max_departed_records", U64),
    field("fabric_max_tombstones_per_origin", U64),
    field("fabric_dial_timeout_seconds", Kind::Float),
    field("fabric_dial_retry_seconds", Kind::Float),
    field("rpc_spec_gossip_mode", Kind::Text),
    field("rpc_spec_gossip_namespaces", Kind::TextList),
    field("rpc_spec_gossip_max_bytes", Kind::Opt(&U64)),
    field("discovery_resolver_mode", Kind::Bool),
    field("discovery_resolver_namespaces", Kind::TextList),
    field("discovery_resolver_seed_on_start", Kind::Bool),
    field("discovery_resolver_prune_interval_seconds", Kind::Float),
    field("discovery_resolver_resync_interval_seconds", Kind::Float),
    field("discovery_resolver_query_cache_enabled", Kind::Bool),
    field("discovery_resolver_query_ttl_seconds", Kind::Float),
    field("discovery_resolver_query_stale_seconds", Kind::Float),
    field("discovery_resolver_query_negative_ttl_seconds", Kind::Float),
    field("discovery_resolver_query_keep_warm_ttls", Kind::Float),
    field("discovery_resolver_query_cache_max_entries", I64),
    field("discovery_summary_resolver_mode", Kind::Bool),
    field("discovery_summary_resolver_namespaces", Kind::TextList),
    field(
        "discovery_summary_resolver_prune_interval_seconds",
        Kind::Float,
    ),
    field("discovery_summary_resolver_scopes", Kind::TextList),
    field("discovery_policy_enabled", Kind::Bool),
    field("discovery_policy_default_allow", Kind::Bool),
    field("discovery_policy_rules", Kind::Records(RULE_FIELDS)),
    field("discovery_tenant_mode", Kind::Bool),
    field(
        "discovery_tenant_allow_request_override",
        Kind::Opt(&Kind::Bool),
    ),
    field("discovery_tenant_default_id", Kind::Opt(&Kind::Text)),
    field("discovery_tenant_header", Kind::Opt(&Kind::Text)),
    field(
        "discovery_tenant_credentials",
        Kind::Records(CREDENTIAL_FIELDS),
    ),
    field("discovery_access_audit_max_entries", I64),
    field("discovery_summary_export_enabled", Kind::Bool),
    field("discovery_summary_export_interval_seconds", Kind::Float),
    field("discovery_summary_export_namespaces", Kind::TextList),
    field("discovery_summary_export_scope", Kind::Opt(&Kind::Text)),
    field("discovery_summary_export_include_unscoped", Kind::Bool),
    field("discovery_summary_export_hold_down_seconds", Kind::Float),
    field(
        "discovery_summary_export_store_forward_seconds",
        Kind::Float,
    ),
    field("discovery_summary_export_store_forward_max_messages", I64),
    field("discovery_rate_limit_requests_per_minute", I64),
    field("discovery_rate_limit_window_seconds", Kind::Float),
    field("discovery_rate_limit_max_keys", I64),
    field("dns_gateway_enabled", Kind::Bool),
    field("dns_listen_host", Kind::Opt(&Kind::Text)),
    field("dns_udp_port", Kind::Opt(&U16)),
    field("dns_tcp_port", Kind::Opt(&U16)),
    field("dns_zones", Kind::TextList),
    field("dns_min_ttl_seconds", Kind::Float),
    field("dns_max_ttl_seconds", Kind::Float),
    field("dns_rate_limit_queries_per_second", Kind::Float),
    field("dns_rate_limit_burst", Kind::Float),
    field("dns_allow_external_names", Kind::Bool),
    field("dns_viewer_cluster_id", Kind::Opt(&Kind::Text)),
    field("dns_viewer_tenant_id", Kind::Opt(&Kind::Text)),
    field("dns_views", Kind::Records(DNS_VIEW_FIELDS)),
    field("monitoring_enabled", Kind::Bool),
    field("monitoring_port", Kind::Opt(&U16)),
    field("monitoring_host", Kind::Opt(&Kind::Text)),
    field("monitoring_enable_cors", Kind::Bool),
    field("monitoring_auth_token", Kind::Opt(&Kind::Secret)),
    field("fabric_auth_key", Kind::Opt(&Kind::Secret)),
    field("discovery_summary_signing_secret", Kind::Opt(&Kind::Secret)),
    field("client_tls_cert_file", Kind::Opt(&Kind::Text)),
    field("client_tls_key_file", Kind::Opt(&Kind::Text)),
    field("client_tls_required", Kind::Bool),
    field("advertise_builtin_rpcs", Kind::Bool),
    field("log_debug_scopes", Kind::TextList),
    field("data_dir", Kind::Opt(&Kind::Text)),
    field("runtime", Kind::Text),
    field("services", Kind::Records(SERVICE_FIELDS)),
    field("functions", Kind::Records(FUNCTION_FIELDS)),
    field("queues", Kind::Records(QUEUE_FIELDS)),
    field("topics", Kind::Records(TOPIC_FIELDS)),
];

const RULE_FIELDS: &[Field] = &[
    required("namespace", Kind::Text),
    field("owners", Kind::TextList),
    field("visibility", Kind::TextList),
    field("visibility_tenants", Kind::TextList),
    field("export_scopes", Kind::TextList),
    field("allow_summaries", Kind::Bool),
    field("cutover_windows", Kind::Records(WINDOW_FIELDS)),
    field("policy_version", Kind::Opt(&Kind::Text)),
];

const WINDOW_FIELDS: &[Field] = &[
    required("starts_at", Kind::Float),
    field("ends_at", Kind::Opt(&Kind::Float)),
    field("export_scopes", Kind::TextList),
    field("allow_summaries", Kind::Opt(&Kind::Bool)),
];

const DNS_VIEW_FIELDS: &[Field] = &[
    required("network", Kind::Text),
    field("cluster_id", Kind::Opt(&Kind::Text)),
    field("tenant_id", Kind::Opt(&Kind::Text)),
];

const CREDENTIAL_FIELDS: &[Field] = &[
    required("tenant_id", Kind::Text),
    required("token", Kind::Secret),
    field("scheme", Kind::Text),
    field("role", Kind::Text),
];

const SERVICE_FIELDS: &[Field] = &[
    required("name", Kind::Text),
    required("namespace", Kind::Text),
    field("protocol", Kind::Text),
    required("port", U16),
    field("targets", Kind::TextList),
    field("scope", Kind::Opt(&Kind::Text)),
    field("tags", Kind::TextList),
    field("capabilities", Kind::TextList),
    field("metadata", Kind::ScalarMap),
    field("priority", I64),
    field("weight", I64),
];

const FUNCTION_FIELDS: &[Field] = &[
    required("name", Kind::Text),
    field("function_id", Kind::Opt(&Kind::Text)),
    field("version", Kind::Text),
    field("resources", Kind::TextList),
    field("scope", Kind::Opt(&Kind::Text)),
    field("tags", Kind::TextList),
    field("summary", Kind::Opt(&Kind::Text)),
];

const QUEUE_FIELDS: &[Field] = &[
    required("queue_name", Kind::Text),
    field("delivery_guarantees", Kind::TextList),
    field("scope", Kind::Opt(&Kind::Text)),
    field("tags", Kind::TextList),
    field("metadata", Kind::TextMap),
];

const TOPIC_FIELDS: &[Field] = &[
    field("subscription_id", Kind::Opt(&Kind::Text)),
    required("patterns", Kind::TextList),
    field("scope", Kind::Opt(&Kind::Text)),
    field("tags", Kind::TextList),
];

fn setting(key: &str) -> Option<&'static Field> {
    SETTINGS.iter().find(|f| f.name == key)
}

/// Where a raw value came from. It only changes how a bare string is read for
/// a list: a file string is one element (MPREG's rule), an environment or flag
/// string is a JSON array or a comma-separated list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    File,
    Text,
}

/// A problem at a key path, before the source is known.
#[derive(Debug)]
struct Problem {
    key: String,
    problem: String,
}

impl Problem {
    fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Problem {
            key: key.into(),
            problem: problem.into(),
        }
    }

    fn at(self, source: &str) -> ConfigError {
        ConfigError::new(self.key, self.problem, source)
    }
}

/// Reads `raw` as `kind`, returning the canonical JSON for it.
fn coerce(kind: Kind, raw: &Json, origin: Origin, key: &str) -> Result<Json, Problem> {
    let mismatch = || {
        Problem::new(
            key,
            format!("expected {}, got {}", expected(kind), shown(raw)),
        )
    };
    match kind {
        Kind::Bool => match raw {
            Json::Bool(_) => Ok(raw.clone()),
            Json::String(s) => parse_bool(s).map(Json::Bool).ok_or_else(mismatch),
            Json::Number(n) => match n.as_i64() {
                Some(0) => Ok(Json::Bool(false)),
                Some(1) => Ok(Json::Bool(true)),
                _ => Err(mismatch()),
            },
            _ => Err(mismatch()),
        },
        Kind::Float => {
            let value = match raw {
                Json::Number(n) => n.as_f64(),
                Json::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            }
            .ok_or_else(mismatch)?;
            if !value.is_finite() {
                return Err(Problem::new(
                    key,
                    format!("expected a finite number, got {}", shown(raw)),
                ));
            }
            serde_json::Number::from_f64(value)
                .map(Json::Number)
                .ok_or_else(mismatch)
        }
        Kind::Int { min, max } => {
            let value = match raw {
                Json::Number(n) => n
                    .as_i64()
                    .map(i128::from)
                    .or_else(|| n.as_u64().map(i128::from)),
                Json::String(s) => s.trim().parse::<i128>().ok(),
                _ => None,
            }
            .filter(|v| (min..=max).contains(v))
            .ok_or_else(mismatch)?;
            int_json(value).ok_or_else(mismatch)
        }
        Kind::Text => match raw {
            Json::String(_) => Ok(raw.clone()),
            Json::Number(n) => Ok(Json::String(n.to_string())),
            _ => Err(mismatch()),
        },
        Kind::Secret => match raw {
            Json::String(_) => Ok(raw.clone()),
            _ => Err(Problem::new(
                key,
                format!("expected a string, got {}", json_type(raw)),
            )),
        },
        Kind::TextList => match raw {
            Json::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| coerce(Kind::Text, item, origin, &format!("{key}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Json::Array),
            Json::String(s) if origin == Origin::Text => text_list(s, key),
            Json::String(_) => Ok(Json::Array(vec![raw.clone()])),
            _ => Err(mismatch()),
        },
        Kind::TextMap | Kind::ScalarMap => {
            let parsed = parse_if_string(raw, key)?;
            let Json::Object(map) = parsed.as_ref().unwrap_or(raw) else {
                return Err(mismatch());
            };
            map.iter()
                .map(|(k, v)| Ok((k.clone(), map_value(kind, v, &format!("{key}.{k}"))?)))
                .collect::<Result<Map<_, _>, _>>()
                .map(Json::Object)
        }
        Kind::Records(fields) => {
            let parsed = parse_if_string(raw, key)?;
            let items: Vec<&Json> = match parsed.as_ref().unwrap_or(raw) {
                Json::Array(items) => items.iter().collect(),
                single @ Json::Object(_) => vec![single],
                _ => return Err(mismatch()),
            };
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| record(fields, item, &format!("{key}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Json::Array)
        }
        Kind::Opt(inner) => match raw {
            Json::Null => Ok(Json::Null),
            Json::String(s) if is_none_word(s) => Ok(Json::Null),
            _ => coerce(*inner, raw, origin, key),
        },
    }
}

/// Reads one table of a record list, checking its field names and required
/// fields so errors name the exact path (`services[1].port`).
fn record(fields: &[Field], item: &Json, path: &str) -> Result<Json, Problem> {
    let Json::Object(map) = item else {
        return Err(Problem::new(
            path,
            format!("expected a table, got {}", shown(item)),
        ));
    };
    let mut out = Map::new();
    for (name, value) in map {
        let key = format!("{path}.{name}");
        let Some(field) = fields.iter().find(|f| f.name == name) else {
            let names: Vec<&str> = fields.iter().map(|f| f.name).collect();
            return Err(Problem::new(
                key,
                format!("unknown field (expected one of: {})", names.join(", ")),
            ));
        };
        // Nested values are structured data: a bare string in a list field is
        // one element, whatever the outer source was.
        out.insert(name.clone(), coerce(field.kind, value, Origin::File, &key)?);
    }
    if let Some(missing) = fields
        .iter()
        .find(|f| f.required && !out.contains_key(f.name))
    {
        return Err(Problem::new(
            format!("{path}.{}", missing.name),
            "is required",
        ));
    }
    Ok(Json::Object(out))
}

/// One value of a string or scalar table.
fn map_value(kind: Kind, value: &Json, key: &str) -> Result<Json, Problem> {
    match (kind, value) {
        (_, Json::String(_)) => Ok(value.clone()),
        (Kind::TextMap, Json::Number(_) | Json::Bool(_)) => Ok(Json::String(value.to_string())),
        (Kind::ScalarMap, Json::Number(_) | Json::Bool(_)) => Ok(value.clone()),
        (Kind::TextMap, _) => Err(Problem::new(
            key,
            format!("expected a string, got {}", shown(value)),
        )),
        _ => Err(Problem::new(
            key,
            format!("expected a string, number or boolean, got {}", shown(value)),
        )),
    }
}

/// Structured settings given as a string (environment, flags, or a string in
/// a file) are JSON. The parse error never quotes the input, which may hold
/// tokens.
fn parse_if_string(raw: &Json, key: &str) -> Result<Option<Json>, Problem> {
    match raw {
        Json::String(s) => serde_json::from_str(s)
            .map(Some)
            .map_err(|e| Problem::new(key, format!("expected JSON: {e}"))),
        _ => Ok(None),
    }
}

/// An environment / flag string for a list: a JSON array, or comma-separated.
fn text_list(text: &str, key: &str) -> Result<Json, Problem> {
    let trimmed = text.trim();
    if trimmed.starts_with('[') {
        let parsed: Json = serde_json::from_str(trimmed)
            .map_err(|e| Problem::new(key, format!("expected a JSON list of strings: {e}")))?;
        return coerce(Kind::TextList, &parsed, Origin::File, key);
    }
    Ok(Json::Array(
        trimmed
            .split(',')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .map(|part| Json::String(part.to_string()))
            .collect(),
    ))
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn is_none_word(text: &str) -> bool {
    matches!(
        text.trim().to_ascii_lowercase().as_str(),
        "" | "none" | "null"
    )
}

fn int_json(value: i128) -> Option<Json> {
    if let Ok(unsigned) = u64::try_from(value) {
        Some(Json::from(unsigned))
    } else {
        i64::try_from(value).ok().map(Json::from)
    }
}

/// What a kind accepts, for error messages.
fn expected(kind: Kind) -> String {
    match kind {
        Kind::Bool => "true or false (or 1/0, yes/no, on/off)".into(),
        Kind::Float => "a number".into(),
        Kind::Int { min, max } if min == 0 && max == i128::from(u16::MAX) => {
            "a port number from 0 to 65535".into()
        }
        Kind::Int { min, .. } if min == i128::from(i64::MIN) => "an integer".into(),
        Kind::Int { max, .. } if max == i128::from(u64::MAX) => "a non-negative integer".into(),
        Kind::Int { min, max } => format!("an integer from {min} to {max}"),
        Kind::Text | Kind::Secret => "a string".into(),
        Kind::TextList => "a list of strings".into(),
        Kind::TextMap => "a table of strings".into(),
        Kind::ScalarMap => "a table of strings, numbers or booleans".into(),
        Kind::Records(_) => "a table or a list of tables".into(),
        Kind::Opt(inner) => format!("{} or none", expected(*inner)),
    }
}

/// A raw value for an error message, quoted and clipped.
fn shown(value: &Json) -> String {
    const MAX_CHARS: usize = 80;
    let text = match value {
        Json::String(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    if text.chars().count() <= MAX_CHARS {
        text
    } else {
        let mut clipped: String = text.chars().take(MAX_CHARS).collect();
        clipped.push('…');
        clipped
    }
}

fn json_type(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "a table",
    }
}

// ---------------------------------------------------------------------------
// Normalisation and validation
// ---------------------------------------------------------------------------

/// How a float setting is normalised (after the check that it is finite).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FloatRule {
    /// Must be greater than zero (periods and TTLs that cannot be "off").
    Positive,
    /// Negative values become 0 (0 means "off" or "immediately").
    NonNegative,
    /// `<= 0` becomes 0 (off); otherwise at least 1 second (MPREG's loop floor).
    OffOrAtLeastOne,
    /// Only finiteness; the caller applies its own rule (DNS TTLs).
    Finite,
}

type FloatAt = fn(&mut Settings) -> &mut f64;
type CountAt = fn(&mut Settings) -> &mut i64;
type BytesAt = fn(&mut Settings) -> &mut u64;
type TextAt = fn(&mut Settings) -> &mut String;
type OptTextAt = fn(&mut Settings) -> &mut Option<String>;
type ListAt = fn(&mut Settings) -> &mut Vec<String>;
type OptPortAt = fn(&mut Settings) -> &mut Option<u16>;

/// `(name, accessor)` for a [`Settings`] field, the name taken from the field
/// itself so the two cannot drift apart.
macro_rules! at {
    ($ty:ty, $field:ident) => {
        (
            stringify!($field),
            (|s: &mut Settings| &mut s.$field) as $ty,
        )
    };
}

/// Every float setting and its rule (a unit test checks none is missing).
const FLOAT_RULES: &[((&str, FloatAt), FloatRule)] = &[
    (at!(FloatAt, gossip_interval), FloatRule::Positive),
    (
        at!(FloatAt, goodbye_reconnect_grace_seconds),
        FloatRule::NonNegative,
    ),
    (
        at!(FloatAt, fabric_catalog_ttl_seconds),
        FloatRule::Positive,
    ),
    (
        at!(FloatAt, connection_handshake_timeout_seconds),
        FloatRule::Positive,
    ),
    (
        at!(FloatAt, client_idle_timeout_seconds),
        FloatRule::NonNegative,
    ),
    (
        at!(FloatAt, fabric_dial_timeout_seconds),
        FloatRule::Positive,
    ),
    (at!(FloatAt, fabric_dial_retry_seconds), FloatRule::Positive),
    (
        at!(FloatAt, discovery_resolver_prune_interval_seconds),
        FloatRule::OffOrAtLeastOne,
    ),
    (
        at!(FloatAt, discovery_resolver_resync_interval_seconds),
        FloatRule::OffOrAtLeastOne,
    ),
    (
        at!(FloatAt, discovery_resolver_query_ttl_seconds),
        FloatRule::NonNegative,
    ),
    (
        at!(FloatAt, discovery_resolver_query_stale_seconds),
        FloatRule::NonNegative,
    ),
    (
        at!(FloatAt, discovery_resolver_query_negative_ttl_seconds),
        FloatRule::NonNegative,
    ),
    (
        at!(FloatAt, discovery_resolver_query_keep_warm_ttls),
        FloatRule::NonNegative,
    ),
    (
        at!(FloatAt, discovery_summary_resolver_prune_interval_seconds),
        FloatRule::OffOrAtLeastOne,
    ),
    (
        at!(FloatAt, discovery_summary_export_interval_seconds),
        FloatRule::NonNegative,
    ),
    (
        at!(FloatAt, discovery_summary_export_hold_down_seconds),
        FloatRule::NonNegative,
    ),
    (
        at!(FloatAt, discovery_summary_export_store_forward_seconds),
        FloatRule::NonNegative,
    ),
    (
        at!(FloatAt, discovery_rate_limit_window_seconds),
        FloatRule::NonNegative,
    ),
    (at!(FloatAt, dns_min_ttl_seconds), FloatRule::Finite),
    (at!(FloatAt, dns_max_ttl_seconds), FloatRule::Finite),
    (
        at!(FloatAt, dns_rate_limit_queries_per_second),
        FloatRule::NonNegative,
    ),
    (at!(FloatAt, dns_rate_limit_burst), FloatRule::NonNegative),
];

/// MPREG counters where a negative value means 0 (MPREG clamps them).
const COUNTS: &[(&str, CountAt)] = &[
    at!(CountAt, discovery_resolver_query_cache_max_entries),
    at!(CountAt, discovery_access_audit_max_entries),
    at!(CountAt, discovery_summary_export_store_forward_max_messages),
    at!(CountAt, discovery_rate_limit_requests_per_minute),
    at!(CountAt, discovery_rate_limit_max_keys),
];

/// Size limits and their floor: below 1 KiB even a handshake would not fit.
const BYTE_LIMITS: &[((&str, BytesAt), u64)] = &[
    (at!(BytesAt, fabric_max_frame_bytes), 1024),
    (at!(BytesAt, client_max_message_bytes), 1024),
];

/// Resource limits that cannot be switched off: `0` would refuse every
/// connection or request, which is never what an operator means.
const AT_LEAST_ONE: &[(&str, BytesAt)] = &[
    at!(BytesAt, max_connections_per_source),
    at!(BytesAt, max_connections),
    at!(BytesAt, client_max_subscriptions_per_connection),
    at!(BytesAt, client_max_watches_per_connection),
    at!(BytesAt, fabric_max_departed_records),
    at!(BytesAt, fabric_max_tombstones_per_origin),
];

/// Strings that identify this node and cannot be empty (trimmed).
const REQUIRED_TEXTS: &[(&str, TextAt)] = &[
    at!(TextAt, host),
    at!(TextAt, cluster_id),
    at!(TextAt, cache_region),
];

/// Strings restricted to a vocabulary (trimmed, lower-cased).
const CHOICES: &[((&str, TextAt), &[&str])] = &[
    (at!(TextAt, runtime), &RUNTIMES),
    (at!(TextAt, rpc_spec_gossip_mode), &RPC_SPEC_GOSSIP_MODES),
];

/// Optional strings: trimmed, and empty means `None`.
const OPTIONAL_TEXTS: &[(&str, OptTextAt)] = &[
    at!(OptTextAt, connect),
    at!(OptTextAt, discovery_tenant_default_id),
    at!(OptTextAt, discovery_tenant_header),
    at!(OptTextAt, dns_listen_host),
    at!(OptTextAt, dns_viewer_cluster_id),
    at!(OptTextAt, dns_viewer_tenant_id),
    at!(OptTextAt, monitoring_host),
    at!(OptTextAt, data_dir),
    at!(OptTextAt, client_tls_cert_file),
    at!(OptTextAt, client_tls_key_file),
];

/// String lists: items trimmed, empties dropped, duplicates removed.
const LISTS: &[(&str, ListAt)] = &[
    at!(ListAt, advertised_urls),
    at!(ListAt, resources),
    at!(ListAt, peers),
    at!(ListAt, rpc_spec_gossip_namespaces),
    at!(ListAt, discovery_resolver_namespaces),
    at!(ListAt, discovery_summary_resolver_namespaces),
    at!(ListAt, discovery_summary_export_namespaces),
    at!(ListAt, log_debug_scopes),
];

/// Lists of peer URLs that must be `ws://` / `wss://` with host and port.
const URL_LISTS: &[(&str, ListAt)] = &[at!(ListAt, peers), at!(ListAt, advertised_urls)];

/// Optional ports where `0` means "let the runtime choose", stored as `None` so
/// there is one spelling of it.
const OPTIONAL_PORTS: &[(&str, OptPortAt)] = &[
    at!(OptPortAt, dns_udp_port),
    at!(OptPortAt, dns_tcp_port),
    at!(OptPortAt, monitoring_port),
];

impl Settings {
    /// Applies MPREG's normalisation and our validation; the result is what
    /// the rest of the core may rely on (see the field docs). Idempotent.
    /// Errors name the offending key with source `settings`; [`load`] reports
    /// the source the value came from instead.
    pub fn normalized(self) -> Result<Settings, ConfigError> {
        self.normalized_from(&|_| "settings".to_string())
    }

    fn normalized_from(
        mut self,
        source_of: &dyn Fn(&str) -> String,
    ) -> Result<Settings, ConfigError> {
        match normalize(&mut self) {
            Ok(()) => Ok(self),
            Err(problem) => {
                let source = source_of(top_level(&problem.key));
                Err(problem.at(&source))
            }
        }
    }
}

/// The setting a key path belongs to: `services[1].port` → `services`.
fn top_level(key: &str) -> &str {
    key.split(['[', '.']).next().unwrap_or(key)
}

fn normalize(s: &mut Settings) -> Result<(), Problem> {
    normalize_numbers(s)?;
    normalize_texts(s)?;
    normalize_scopes(s)?;
    normalize_dns(s);
    normalize_dns_views(s)?;
    normalize_urls(s)?;
    normalize_credentials(s)?;
    normalize_rules(s)?;
    normalize_decls(s)
}

fn normalize_numbers(s: &mut Settings) -> Result<(), Problem> {
    for &((name, at), rule) in FLOAT_RULES {
        let value = at(s);
        *value = apply_float_rule(*value, rule).map_err(|p| Problem::new(name, p))?;
    }
    for &(_, at) in COUNTS {
        let value = at(s);
        *value = (*value).max(0);
    }
    for &((name, at), floor) in BYTE_LIMITS {
        let value = *at(s);
        if value < floor {
            return Err(Problem::new(
                name,
                format!("must be at least {floor} bytes, got {value}"),
            ));
        }
    }
    for &(name, at) in AT_LEAST_ONE {
        if *at(s) == 0 {
            return Err(Problem::new(name, "must be at least 1, got 0"));
        }
    }
    for &(_, at) in OPTIONAL_PORTS {
        let port = at(s);
        if *port == Some(0) {
            *port = None;
        }
    }
    if s.fabric_routing_max_hops == 0 {
        return Err(Problem::new(
            "fabric_routing_max_hops",
            "must be at least 1, got 0",
        ));
    }
    Ok(())
}

fn apply_float_rule(value: f64, rule: FloatRule) -> Result<f64, String> {
    if !value.is_finite() {
        return Err(format!("expected a finite number, got {value}"));
    }
    match rule {
        FloatRule::Positive if value > 0.0 => Ok(value),
        FloatRule::Positive => Err(format!("must be greater than 0, got {value}")),
        FloatRule::NonNegative => Ok(value.max(0.0)),
        FloatRule::OffOrAtLeastOne if value <= 0.0 => Ok(0.0),
        FloatRule::OffOrAtLeastOne => Ok(value.max(1.0)),
        FloatRule::Finite => Ok(value),
    }
}

fn normalize_texts(s: &mut Settings) -> Result<(), Problem> {
    for &(name, at) in REQUIRED_TEXTS {
        require_text(at(s), name)?;
    }
    for &((name, at), allowed) in CHOICES {
        choose(at(s), allowed, name)?;
    }
    for &(_, at) in OPTIONAL_TEXTS {
        tidy_optional(at(s));
    }
    // MPREG compares header names lower-cased.
    if let Some(header) = s.discovery_tenant_header.as_mut() {
        header.make_ascii_lowercase();
    }
    for (name, secret) in [
        ("monitoring_auth_token", &mut s.monitoring_auth_token),
        ("fabric_auth_key", &mut s.fabric_auth_key),
        (
            "discovery_summary_signing_secret",
            &mut s.discovery_summary_signing_secret,
        ),
    ] {
        tidy_secret(secret, name)?;
    }
    for &(_, at) in LISTS {
        tidy_list(at(s));
    }
    check_client_tls(s)
}

/// The two TLS files come as a pair, and requiring TLS needs them.
fn check_client_tls(s: &Settings) -> Result<(), Problem> {
    match (&s.client_tls_cert_file, &s.client_tls_key_file) {
        (Some(_), None) => Err(Problem::new(
            "client_tls_key_file",
            "must be set when client_tls_cert_file is (the certificate's private key)",
        )),
        (None, Some(_)) => Err(Problem::new(
            "client_tls_cert_file",
            "must be set when client_tls_key_file is (the certificate the key belongs to)",
        )),
        (None, None) if s.client_tls_required => Err(Problem::new(
            "client_tls_required",
            "needs client_tls_cert_file and client_tls_key_file",
        )),
        _ => Ok(()),
    }
}

fn normalize_scopes(s: &mut Settings) -> Result<(), Problem> {
    s.scope = scope_value(&s.scope)
        .and_then(|scope| scope.ok_or_else(|| scope_message(&s.scope)))
        .map_err(|p| Problem::new("scope", p))?;
    normalize_optional_scope(
        &mut s.discovery_summary_export_scope,
        "discovery_summary_export_scope",
    )?;
    let mut scopes = Vec::new();
    for (i, raw) in s.discovery_summary_resolver_scopes.iter().enumerate() {
        let scope = scope_value(raw)
            .map_err(|p| Problem::new(format!("discovery_summary_resolver_scopes[{i}]"), p))?;
        scopes.extend(scope);
    }
    dedupe(&mut scopes);
    s.discovery_summary_resolver_scopes = scopes;
    Ok(())
}

fn normalize_dns(s: &mut Settings) {
    for zone in &mut s.dns_zones {
        *zone = zone
            .trim_matches(|c: char| c.is_whitespace() || c == '.')
            .to_ascii_lowercase();
    }
    s.dns_zones.retain(|zone| !zone.is_empty());
    dedupe(&mut s.dns_zones);
    if s.dns_min_ttl_seconds < 1.0 {
        s.dns_min_ttl_seconds = 1.0;
    }
    if s.dns_max_ttl_seconds < s.dns_min_ttl_seconds {
        s.dns_max_ttl_seconds = s.dns_min_ttl_seconds;
    }
}

fn normalize_urls(s: &mut Settings) -> Result<(), Problem> {
    for &(name, at) in URL_LISTS {
        for (i, url) in at(s).iter_mut().enumerate() {
            *url = ws_url(url).map_err(|p| Problem::new(format!("{name}[{i}]"), p))?;
        }
    }
    if let Some(url) = s.connect.as_mut() {
        *url = ws_url(url).map_err(|p| Problem::new("connect", p))?;
    }
    Ok(())
}

/// Every `dns_views` network must parse; blank ids mean "the default's".
fn normalize_dns_views(s: &mut Settings) -> Result<(), Problem> {
    for (i, view) in s.dns_views.iter_mut().enumerate() {
        let path = format!("dns_views[{i}]");
        crate::dns::Cidr::parse(&view.network)
            .map_err(|p| Problem::new(format!("{path}.network"), p))?;
        view.network = view.network.trim().to_string();
        for id in [&mut view.cluster_id, &mut view.tenant_id] {
            *id = id
                .take()
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty());
        }
    }
    Ok(())
}

fn normalize_credentials(s: &mut Settings) -> Result<(), Problem> {
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (i, credential) in s.discovery_tenant_credentials.iter_mut().enumerate() {
        let path = format!("discovery_tenant_credentials[{i}]");
        require_text(&mut credential.tenant_id, &format!("{path}.tenant_id"))?;
        credential.token = credential.token.trim().to_string();
        if credential.token.is_empty() {
            return Err(Problem::new(format!("{path}.token"), "must not be empty"));
        }
        choose(
            &mut credential.scheme,
            &CREDENTIAL_SCHEMES,
            &format!("{path}.scheme"),
        )?;
        choose(&mut credential.role, &ROLES, &format!("{path}.role"))?;
        // One token must identify one tenant, or authentication would depend
        // on list order.
        let identity = (credential.scheme.clone(), credential.token.clone());
        if let Some(first) = seen.insert(identity, i) {
            return Err(Problem::new(
                format!("{path}.token"),
                format!("the same {} token is already configured at discovery_tenant_credentials[{first}]", credential.scheme),
            ));
        }
    }
    Ok(())
}

/// Policy rules stay plain data for the engine, but they must be rules the
/// engine accepts ([`crate::policy::validate_settings`]): otherwise loading
/// would succeed and the node would refuse to start, with an error that no
/// longer names the file or variable the rule came from. Non-finite times
/// (possible when settings are built in code) are named precisely first.
fn normalize_rules(s: &Settings) -> Result<(), Problem> {
    for (i, rule) in s.discovery_policy_rules.iter().enumerate() {
        for (j, window) in rule.cutover_windows.iter().enumerate() {
            let path = format!("discovery_policy_rules[{i}].cutover_windows[{j}]");
            let times = [
                ("starts_at", Some(window.starts_at)),
                ("ends_at", window.ends_at),
            ];
            for (name, time) in times {
                if time.is_some_and(|t| !t.is_finite()) {
                    return Err(Problem::new(
                        format!("{path}.{name}"),
                        "expected a finite number",
                    ));
                }
            }
        }
    }
    crate::policy::validate_settings(s)
        .map_err(|errors| Problem::new("discovery_policy_rules", errors.join("; ")))
}

fn normalize_decls(s: &mut Settings) -> Result<(), Problem> {
    for (i, service) in s.services.iter_mut().enumerate() {
        normalize_service(service, &format!("services[{i}]"))?;
    }
    for (i, function) in s.functions.iter_mut().enumerate() {
        normalize_function(function, &format!("functions[{i}]"))?;
    }
    for (i, queue) in s.queues.iter_mut().enumerate() {
        normalize_queue(queue, &format!("queues[{i}]"))?;
    }
    for (i, topic) in s.topics.iter_mut().enumerate() {
        normalize_topic(topic, &format!("topics[{i}]"))?;
    }
    Ok(())
}

fn normalize_service(d: &mut ServiceDecl, path: &str) -> Result<(), Problem> {
    require_text(&mut d.name, &format!("{path}.name"))?;
    require_text(&mut d.namespace, &format!("{path}.namespace"))?;
    require_text(&mut d.protocol, &format!("{path}.protocol"))?;
    d.protocol.make_ascii_lowercase();
    if d.port == 0 {
        return Err(Problem::new(
            format!("{path}.port"),
            "expected a port number from 1 to 65535, got 0",
        ));
    }
    normalize_optional_scope(&mut d.scope, &format!("{path}.scope"))?;
    tidy_list(&mut d.targets);
    tidy_list(&mut d.tags);
    tidy_list(&mut d.capabilities);
    for (key, value) in &d.metadata {
        if !matches!(value, Json::String(_) | Json::Number(_) | Json::Bool(_)) {
            return Err(Problem::new(
                format!("{path}.metadata.{key}"),
                format!("expected a string, number or boolean, got {}", shown(value)),
            ));
        }
    }
    Ok(())
}

fn normalize_function(d: &mut FunctionDecl, path: &str) -> Result<(), Problem> {
    require_text(&mut d.name, &format!("{path}.name"))?;
    tidy_optional(&mut d.function_id);
    if d.function_id.is_none() {
        d.function_id = Some(d.name.clone());
    }
    d.version = d.version.trim().to_string();
    if !is_version_triplet(&d.version) {
        return Err(Problem::new(
            format!("{path}.version"),
            format!(
                "expected MAJOR.MINOR.PATCH with digits only (like 1.0.0), got {:?}",
                d.version
            ),
        ));
    }
    normalize_optional_scope(&mut d.scope, &format!("{path}.scope"))?;
    tidy_list(&mut d.resources);
    tidy_list(&mut d.tags);
    tidy_optional(&mut d.summary);
    Ok(())
}

fn normalize_queue(d: &mut QueueDecl, path: &str) -> Result<(), Problem> {
    require_text(&mut d.queue_name, &format!("{path}.queue_name"))?;
    for (i, guarantee) in d.delivery_guarantees.iter_mut().enumerate() {
        choose(
            guarantee,
            &DELIVERY_GUARANTEES,
            &format!("{path}.delivery_guarantees[{i}]"),
        )?;
    }
    dedupe(&mut d.delivery_guarantees);
    if d.delivery_guarantees.is_empty() {
        return Err(Problem::new(
            format!("{path}.delivery_guarantees"),
            format!(
                "must list at least one of {}",
                DELIVERY_GUARANTEES.join(", ")
            ),
        ));
    }
    normalize_optional_scope(&mut d.scope, &format!("{path}.scope"))?;
    tidy_list(&mut d.tags);
    Ok(())
}

fn normalize_topic(d: &mut TopicDecl, path: &str) -> Result<(), Problem> {
    tidy_optional(&mut d.subscription_id);
    for (i, pattern) in d.patterns.iter_mut().enumerate() {
        require_text(pattern, &format!("{path}.patterns[{i}]"))?;
    }
    dedupe(&mut d.patterns);
    if d.patterns.is_empty() {
        return Err(Problem::new(
            format!("{path}.patterns"),
            "must list at least one topic pattern",
        ));
    }
    normalize_optional_scope(&mut d.scope, &format!("{path}.scope"))?;
    tidy_list(&mut d.tags);
    Ok(())
}

/// Trims a string that must not be empty.
fn require_text(value: &mut String, key: &str) -> Result<(), Problem> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(Problem::new(key, "must not be empty"));
    }
    *value = trimmed.to_string();
    Ok(())
}

/// Trims and lower-cases a string that must be one of `allowed`.
fn choose(value: &mut String, allowed: &[&str], key: &str) -> Result<(), Problem> {
    let normal = value.trim().to_ascii_lowercase();
    if !allowed.contains(&normal.as_str()) {
        return Err(Problem::new(
            key,
            format!("expected one of {}, got {:?}", allowed.join(", "), value),
        ));
    }
    *value = normal;
    Ok(())
}

/// Trims an optional string; empty means `None`.
fn tidy_optional(value: &mut Option<String>) {
    *value = value
        .take()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
}

/// Trims items, drops empty ones and duplicates (first occurrence kept).
fn tidy_list(items: &mut Vec<String>) {
    for item in items.iter_mut() {
        *item = item.trim().to_string();
    }
    items.retain(|item| !item.is_empty());
    dedupe(items);
}

fn dedupe(items: &mut Vec<String>) {
    let mut seen = BTreeSet::new();
    items.retain(|item| seen.insert(item.clone()));
}

/// MPREG's scope normalisation: trim, lower-case, `cluster` → `zone`, `""` →
/// `None`, anything else must be one of [`SCOPES`].
fn scope_value(raw: &str) -> Result<Option<String>, String> {
    let value = raw.trim().to_ascii_lowercase();
    if value.is_empty() {
        return Ok(None);
    }
    let value = if value == "cluster" {
        "zone".to_string()
    } else {
        value
    };
    if SCOPES.contains(&value.as_str()) {
        Ok(Some(value))
    } else {
        Err(scope_message(raw))
    }
}

fn scope_message(raw: &str) -> String {
    format!("expected one of local, zone, region, global (or cluster, meaning zone), got {raw:?}")
}

fn normalize_optional_scope(scope: &mut Option<String>, key: &str) -> Result<(), Problem> {
    if let Some(raw) = scope.take() {
        *scope = scope_value(&raw).map_err(|p| Problem::new(key, p))?;
    }
    Ok(())
}

fn is_version_triplet(version: &str) -> bool {
    let parts: Vec<&str> = version.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
}

/// Checks a peer URL (`ws://` or `wss://`, a host and a port from 1 to 65535)
/// and returns it trimmed with a lower-case scheme, since node ids are
/// compared as strings.
fn ws_url(raw: &str) -> Result<String, String> {
    let url = raw.trim();
    let fail = |why: &str| {
        format!(
            "expected a ws:// or wss:// URL with a host and a port (like ws://127.0.0.1:6666), got {raw:?}: {why}"
        )
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| fail("no scheme"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "ws" && scheme != "wss" {
        return Err(fail("the scheme must be ws or wss"));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(fail("user information is not allowed"));
    }
    // An IPv6 host is bracketed (`[::1]`); any other host has no colon.
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| fail("unclosed [ in the host"))?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err(fail("an IPv6 host must be in brackets"))
            }
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(fail("missing or malformed host"));
    }
    let port = port.ok_or_else(|| fail("missing port"))?;
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(format!("{scheme}://{rest}")),
        _ => Err(fail("the port must be a number from 1 to 65535")),
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn from_file(text: &str) -> Result<Loaded, ConfigError> {
        load(Some(text), &[], &[])
    }

    fn from_env(items: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
        load(None, &pairs(items), &[])
    }

    fn err_file(text: &str) -> ConfigError {
        match from_file(text) {
            Ok(loaded) => panic!("expected an error, got {loaded:?}"),
            Err(e) => e,
        }
    }

    fn err_env(items: &[(&str, &str)]) -> ConfigError {
        match from_env(items) {
            Ok(loaded) => panic!("expected an error, got {loaded:?}"),
            Err(e) => e,
        }
    }

    fn assert_one_line(e: &ConfigError) {
        let text = e.to_string();
        assert!(!text.contains('\n') && !text.contains('\r'), "{text}");
        if !e.key.is_empty() {
            assert!(text.contains(&format!("`{}`", e.key)), "{text}");
        }
    }

    #[test]
    fn defaults_are_mpregs() {
        let s = Settings::default();
        assert_eq!(s.host, "127.0.0.1");
        assert_eq!(s.port, 6666);
        assert_eq!(s.name, "NO NAME PROVIDED");
        assert_eq!(s.cluster_id, "default-cluster");
        assert_eq!(s.cache_region, "local");
        assert_eq!(s.scope, "zone");
        assert!(s.advertised_urls.is_empty() && s.resources.is_empty() && s.peers.is_empty());
        assert_eq!(s.connect, None);
        assert_eq!(s.gossip_interval, 5.0);
        assert_eq!(s.goodbye_reconnect_grace_seconds, 5.0);
        assert_eq!(s.fabric_catalog_ttl_seconds, 120.0);
        assert_eq!(s.fabric_routing_max_hops, 5);
        assert_eq!(s.fabric_max_frame_bytes, 4 << 20);
        assert_eq!(s.client_max_message_bytes, 20 << 20);
        assert_eq!(s.max_connections_per_source, 1024);
        assert_eq!(s.max_connections, 10_000);
        assert_eq!(s.connection_handshake_timeout_seconds, 10.0);
        assert_eq!(s.client_idle_timeout_seconds, 300.0);
        assert_eq!(s.client_max_subscriptions_per_connection, 1024);
        assert_eq!(s.client_max_watches_per_connection, 1024);
        assert_eq!(s.fabric_max_departed_records, 65_536);
        assert_eq!(s.fabric_max_tombstones_per_origin, 100_000);
        assert_eq!(s.fabric_dial_timeout_seconds, 3.0);
        assert_eq!(s.fabric_dial_retry_seconds, 1.0);
        assert_eq!(s.rpc_spec_gossip_mode, "summary");
        assert_eq!(s.rpc_spec_gossip_max_bytes, None);
        assert!(!s.discovery_resolver_mode);
        assert!(s.discovery_resolver_seed_on_start);
        assert_eq!(s.discovery_resolver_prune_interval_seconds, 30.0);
        assert_eq!(s.discovery_resolver_resync_interval_seconds, 0.0);
        assert!(s.discovery_resolver_query_cache_enabled);
        assert_eq!(s.discovery_resolver_query_ttl_seconds, 10.0);
        assert_eq!(s.discovery_resolver_query_stale_seconds, 20.0);
        assert_eq!(s.discovery_resolver_query_negative_ttl_seconds, 5.0);
        assert_eq!(s.discovery_resolver_query_cache_max_entries, 1000);
        assert!(!s.discovery_summary_resolver_mode);
        assert_eq!(s.discovery_summary_resolver_prune_interval_seconds, 30.0);
        assert!(s.discovery_summary_resolver_scopes.is_empty());
        assert!(!s.discovery_policy_enabled);
        assert!(s.discovery_policy_default_allow);
        assert!(s.discovery_policy_rules.is_empty());
        assert!(!s.discovery_tenant_mode);
        assert_eq!(s.discovery_tenant_allow_request_override, None);
        assert_eq!(s.discovery_tenant_default_id, None);
        assert_eq!(s.discovery_tenant_header, None);
        assert!(s.discovery_tenant_credentials.is_empty());
        assert_eq!(s.discovery_access_audit_max_entries, 500);
        assert!(!s.discovery_summary_export_enabled);
        assert_eq!(s.discovery_summary_export_interval_seconds, 30.0);
        assert_eq!(s.discovery_summary_export_scope.as_deref(), Some("global"));
        assert!(s.discovery_summary_export_include_unscoped);
        assert_eq!(s.discovery_summary_export_hold_down_seconds, 0.0);
        assert_eq!(s.discovery_summary_export_store_forward_seconds, 0.0);
        assert_eq!(s.discovery_summary_export_store_forward_max_messages, 100);
        assert_eq!(s.discovery_rate_limit_requests_per_minute, 0);
        assert_eq!(s.discovery_rate_limit_window_seconds, 60.0);
        assert_eq!(s.discovery_rate_limit_max_keys, 2000);
        assert!(!s.dns_gateway_enabled);
        assert_eq!(s.dns_listen_host, None);
        assert_eq!((s.dns_udp_port, s.dns_tcp_port), (None, None));
        assert_eq!(s.dns_zones, vec!["mpreg".to_string()]);
        assert_eq!(s.dns_min_ttl_seconds, 1.0);
        assert_eq!(s.dns_max_ttl_seconds, 60.0);
        assert!(!s.dns_allow_external_names);
        assert_eq!(
            (s.dns_viewer_cluster_id, s.dns_viewer_tenant_id),
            (None, None)
        );
        assert!(s.monitoring_enabled && s.monitoring_enable_cors);
        assert_eq!((s.monitoring_port, s.monitoring_host), (None, None));
        assert!(s.log_debug_scopes.is_empty());
        assert_eq!(s.data_dir, None);
        assert_eq!(s.runtime, "tokio");
    }

    #[test]
    fn defaults_survive_normalisation_and_loading_nothing() {
        let defaults = Settings::default();
        assert_eq!(defaults.clone().normalized(), Ok(defaults.clone()));
        let loaded = load(None, &[], &[]).expect("defaults load");
        assert_eq!(loaded.settings, defaults);
        assert!(loaded.warnings.is_empty());
    }

    #[test]
    fn settings_table_matches_the_struct() {
        let Ok(Json::Object(defaults)) = serde_json::to_value(Settings::default()) else {
            panic!("settings serialise to an object");
        };
        let struct_names: BTreeSet<&str> = defaults.keys().map(String::as_str).collect();
        let table_names: BTreeSet<&str> = known_settings().collect();
        assert_eq!(struct_names, table_names);
        assert_eq!(table_names.len(), SETTINGS.len(), "duplicate in SETTINGS");
        for field in SETTINGS {
            let value = &defaults[field.name];
            let canonical = coerce(field.kind, value, Origin::File, field.name)
                .unwrap_or_else(|p| panic!("{}: {}", p.key, p.problem));
            let mut one = Map::new();
            one.insert(field.name.to_string(), canonical);
            let back: Settings = serde_json::from_value(Json::Object(one))
                .unwrap_or_else(|e| panic!("{}: {e}", field.name));
            assert_eq!(back, Settings::default(), "{}", field.name);
        }
    }

    #[test]
    fn dns_views_load_and_bad_networks_name_their_key() {
        let loaded = from_file(
            "[[dns_views]]\nnetwork = \"10.0.0.0/8\"\ntenant_id = \"lab\"\ncluster_id = \" \"\n",
        )
        .unwrap();
        let v = &loaded.settings.dns_views[0];
        assert_eq!(v.network, "10.0.0.0/8");
        assert_eq!(v.tenant_id.as_deref(), Some("lab"));
        assert_eq!(v.cluster_id, None, "blank means the default viewer's");
        let e = from_file("[[dns_views]]\nnetwork = \"10.0.0.0/40\"\n").unwrap_err();
        assert_eq!(e.key, "dns_views[0].network");
        let e = from_file("[[dns_views]]\ntenant_id = \"x\"\n").unwrap_err();
        assert!(e.key.starts_with("dns_views[0]"), "{e:?}");
    }

    #[test]
    fn record_tables_match_their_structs() {
        fn names<T: Serialize>(value: &T) -> BTreeSet<String> {
            match serde_json::to_value(value) {
                Ok(Json::Object(map)) => map.keys().cloned().collect(),
                other => panic!("not an object: {other:?}"),
            }
        }
        fn table(fields: &[Field]) -> BTreeSet<String> {
            fields.iter().map(|f| f.name.to_string()).collect()
        }
        let loaded = from_file(
            r#"
            [[services]]
            name = "s"
            namespace = "ns"
            port = 1
            [[functions]]
            name = "f"
            [[queues]]
            queue_name = "q"
            [[topics]]
            patterns = ["a.*"]
            [[discovery_policy_rules]]
            namespace = "ns"
            cutover_windows = { starts_at = 1.0 }
            [[discovery_tenant_credentials]]
            tenant_id = "t"
            token = "x"
            "#,
        )
        .expect("minimal records load");
        let s = loaded.settings;
        assert_eq!(names(&s.services[0]), table(SERVICE_FIELDS));
        assert_eq!(names(&s.functions[0]), table(FUNCTION_FIELDS));
        assert_eq!(names(&s.queues[0]), table(QUEUE_FIELDS));
        assert_eq!(names(&s.topics[0]), table(TOPIC_FIELDS));
        assert_eq!(names(&s.discovery_policy_rules[0]), table(RULE_FIELDS));
        assert_eq!(
            names(&s.discovery_policy_rules[0].cutover_windows[0]),
            table(WINDOW_FIELDS)
        );
        assert_eq!(
            names(&s.discovery_tenant_credentials[0]),
            table(CREDENTIAL_FIELDS)
        );
    }

    #[test]
    fn every_float_setting_has_a_rule() {
        let ruled: BTreeSet<&str> = FLOAT_RULES.iter().map(|((name, _), _)| *name).collect();
        for field in SETTINGS {
            if matches!(field.kind, Kind::Float) {
                assert!(
                    ruled.contains(field.name),
                    "{} has no FloatRule",
                    field.name
                );
            }
        }
    }

    #[test]
    fn later_sources_override_earlier_ones_key_by_key() {
        let file = r#"
            gossip_interval = 2.0
            cluster_id = "from-file"
            cache_region = "eu"
            discovery_policy_enabled = true
        "#;
        let env = pairs(&[
            ("MPREG_GOSSIP_INTERVAL", "3"),
            ("MPREG_CLUSTER_ID", "from-env"),
        ]);
        let flags = pairs(&[("gossip_interval", "4.5")]);

        let only_file = load(Some(file), &[], &[]).expect("file");
        assert_eq!(only_file.settings.gossip_interval, 2.0);
        assert_eq!(only_file.settings.cluster_id, "from-file");

        let file_env = load(Some(file), &env, &[]).expect("file+env");
        assert_eq!(file_env.settings.gossip_interval, 3.0);
        assert_eq!(file_env.settings.cluster_id, "from-env");

        let all = load(Some(file), &env, &flags).expect("all");
        assert_eq!(all.settings.gossip_interval, 4.5);
        assert_eq!(all.settings.cluster_id, "from-env");
        assert_eq!(all.settings.cache_region, "eu");
        assert!(all.settings.discovery_policy_enabled);
        assert_eq!(all.settings.name, "NO NAME PROVIDED");
        assert_eq!(all.settings.host, "127.0.0.1");
    }

    #[test]
    fn a_later_list_replaces_the_whole_list() {
        let file = r#"peers = ["ws://a:1", "ws://b:2"]"#;
        let env = pairs(&[("MPREG_PEERS", "ws://c:3")]);
        let loaded = load(Some(file), &env, &[]).expect("loads");
        assert_eq!(loaded.settings.peers, vec!["ws://c:3".to_string()]);
    }

    #[test]
    fn mpreg_table_is_accepted_unchanged() {
        let loaded = from_file(
            r#"
            [mpreg]
            host = "0.0.0.0"
            port = 7000
            cluster_id = "c1"
            discovery_summary_export_scope = "cluster"
            log_level = "DEBUG"

            [[mpreg.services]]
            name = "api"
            namespace = "svc.market"
            port = 8080
            "#,
        )
        .expect("MPREG file loads");
        let s = loaded.settings;
        assert_eq!((s.host.as_str(), s.port), ("0.0.0.0", 7000));
        assert_eq!(s.cluster_id, "c1");
        assert_eq!(s.discovery_summary_export_scope.as_deref(), Some("zone"));
        assert_eq!(s.services.len(), 1);
        assert_eq!(s.services[0].protocol, "tcp");
        assert_eq!(loaded.warnings.len(), 1);
    }

    #[test]
    fn a_key_both_at_top_level_and_under_mpreg_is_an_error() {
        let e = err_file("host = \"a\"\n[mpreg]\nhost = \"b\"\n");
        assert_eq!(e.key, "host");
        assert_one_line(&e);
    }

    #[test]
    fn unknown_keys_are_errors_naming_the_key() {
        let e = err_file("gossip_intervall = 2.0");
        assert_eq!(e.key, "gossip_intervall");
        assert_eq!(e.source_name, "file");
        assert!(e.problem.contains("did you mean `gossip_interval`"), "{e}");
        assert_one_line(&e);

        let e = err_file("[mpreg]\ntotally_unknown = 1");
        assert_eq!(e.key, "totally_unknown");
        assert_eq!(e.problem, "unknown setting");

        let e = load(None, &[], &pairs(&[("no-such-flag", "1")])).expect_err("unknown flag");
        assert_eq!(e.key, "no_such_flag");
        assert_eq!(e.source_name, "flag --no-such-flag");
    }

    #[test]
    fn security_settings_are_never_in_the_ignored_list() {
        for key in [
            "monitoring_auth_token",
            "fabric_auth_key",
            "discovery_summary_signing_secret",
        ] {
            assert!(!IGNORED_MPREG_SETTINGS.contains(&key), "{key}");
        }
        let e = err_file("discovery_summary_signing_secret = \"short\"");
        assert_eq!(e.key, "discovery_summary_signing_secret");
    }

    #[test]
    fn client_tls_files_come_in_pairs_and_required_needs_them() {
        let loaded = load(
            Some("client_tls_cert_file = \" /etc/mpreg/cert.pem \"\nclient_tls_key_file = \"/etc/mpreg/key.pem\"\nclient_tls_required = true"),
            &[],
            &[],
        )
        .expect("a pair loads");
        let s = &loaded.settings;
        assert_eq!(
            s.client_tls_cert_file.as_deref(),
            Some("/etc/mpreg/cert.pem")
        );
        assert_eq!(s.client_tls_key_file.as_deref(), Some("/etc/mpreg/key.pem"));
        assert!(s.client_tls_required);

        let e = err_file("client_tls_cert_file = \"/etc/mpreg/cert.pem\"");
        assert_eq!(e.key, "client_tls_key_file");
        let e = err_file("client_tls_key_file = \"/etc/mpreg/key.pem\"");
        assert_eq!(e.key, "client_tls_cert_file");
        let e = err_file("client_tls_required = true");
        assert_eq!(e.key, "client_tls_required");
        assert_one_line(&e);
        let off = load(None, &[], &[]).expect("defaults load");
        assert!(!off.settings.client_tls_required && off.settings.client_tls_cert_file.is_none());
    }

    #[test]
    fn secrets_are_trimmed_checked_for_length_and_never_shown() {
        let file = "fabric_auth_key = \"  0123456789abcdef  \"\nmonitoring_auth_token = \"\"";
        let loaded = load(Some(file), &[], &[]).expect("loads");
        let key = loaded.settings.fabric_auth_key.as_ref().expect("key set");
        assert_eq!(key.expose(), "0123456789abcdef");
        assert_eq!(loaded.settings.monitoring_auth_token, None, "empty = unset");
        assert!(!format!("{:?}", loaded.settings).contains("0123456789abcdef"));

        let e = err_file("fabric_auth_key = \"hunter2\"");
        assert_eq!(e.key, "fabric_auth_key");
        assert!(e.problem.contains("at least 16 characters"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        let e = err_file("monitoring_auth_token = \"short\"");
        assert_eq!(e.key, "monitoring_auth_token");
    }

    #[test]
    fn ignorable_mpreg_keys_warn_once_each() {
        let file = r#"
            log_level = "DEBUG"
            fabric_routing_enabled = false
            cache_capacity_mb = 1024
            [mpreg.federation_config]
            mode = "strict"
        "#;
        let flags = pairs(&[("log-level", "INFO")]);
        let loaded = load(Some(file), &[], &flags).expect("loads with warnings");
        let mut warnings = loaded.warnings.clone();
        warnings.sort();
        assert_eq!(
            warnings,
            vec![
                "setting `cache_capacity_mb` is accepted for MPREG compatibility but has no effect in mpreg-rs",
                "setting `fabric_routing_enabled` is accepted for MPREG compatibility but has no effect in mpreg-rs",
                "setting `federation_config` is accepted for MPREG compatibility but has no effect in mpreg-rs",
                "setting `log_level` is accepted for MPREG compatibility but has no effect in mpreg-rs",
            ]
        );
        assert_eq!(loaded.settings, Settings::default());
        assert!(!is_ignored_mpreg_setting("cache_region"));
        assert!(is_ignored_mpreg_setting("raft_election_timeout"));
    }

    #[test]
    fn environment_takes_only_upper_case_known_settings() {
        let loaded = from_env(&[
            ("MPREG_URL", "ws://x:1"),
            ("MPREG_MONITORING_URL", "http://x"),
            ("MPREG_DEBUG_PEER_DIAL", "1"),
            ("MPREG_LOG_LEVEL", "DEBUG"),
            ("MPREG_cluster_id", "lower-case-ignored"),
            ("CLUSTER_ID", "no-prefix"),
            ("MPREG_", "x"),
            ("MPREG_NAME", "env-name"),
        ])
        .expect("loads");
        assert_eq!(loaded.settings.name, "env-name");
        assert_eq!(loaded.settings.cluster_id, "default-cluster");
        assert!(loaded.warnings.is_empty());
        assert_eq!(env_var_name("dns_zones"), "MPREG_DNS_ZONES");
    }

    #[test]
    fn bad_number_error_is_one_exact_line() {
        let e = err_env(&[("MPREG_GOSSIP_INTERVAL", "fast")]);
        assert_eq!(
            e.to_string(),
            "invalid setting `gossip_interval` (from environment MPREG_GOSSIP_INTERVAL): expected a number, got \"fast\""
        );
    }

    #[test]
    fn bad_bool_error_names_key_and_source() {
        let e = err_env(&[("MPREG_DNS_GATEWAY_ENABLED", "maybe")]);
        assert_eq!(e.key, "dns_gateway_enabled");
        assert_eq!(e.source_name, "environment MPREG_DNS_GATEWAY_ENABLED");
        assert!(e.problem.contains("\"maybe\""), "{e}");
        assert_one_line(&e);
        let e = load(None, &[], &pairs(&[("--monitoring-enabled", "2")])).expect_err("bad flag");
        assert_eq!(e.source_name, "flag --monitoring-enabled");
        assert_one_line(&e);
    }

    #[test]
    fn bool_words_are_accepted_in_any_case() {
        for (text, want) in [
            ("true", true),
            ("1", true),
            ("YES", true),
            ("On", true),
            ("false", false),
            ("0", false),
            ("no", false),
            (" OFF ", false),
        ] {
            let loaded = from_env(&[("MPREG_MONITORING_ENABLED", text)]).expect(text);
            assert_eq!(loaded.settings.monitoring_enabled, want, "{text}");
        }
    }

    #[test]
    fn non_finite_numbers_are_rejected_everywhere() {
        for text in ["nan", "inf", "-inf", "infinity", "NaN"] {
            let e = err_env(&[("MPREG_DNS_MAX_TTL_SECONDS", text)]);
            assert_eq!(e.key, "dns_max_ttl_seconds");
            assert!(e.problem.contains("finite"), "{e}");
        }
        let e = err_file("gossip_interval = nan");
        assert_eq!(e.key, "gossip_interval");
        assert!(e.problem.contains("finite"), "{e}");
        let e = err_file(
            "[[discovery_policy_rules]]\nnamespace = \"a\"\n[[discovery_policy_rules.cutover_windows]]\nstarts_at = inf\n",
        );
        assert_eq!(
            e.key,
            "discovery_policy_rules[0].cutover_windows[0].starts_at"
        );
        let s = Settings {
            gossip_interval: f64::NAN,
            ..Settings::default()
        };
        assert_eq!(s.normalized().expect_err("nan").key, "gossip_interval");
    }

    #[test]
    fn numbers_are_type_and_range_checked() {
        let e = err_env(&[("MPREG_PORT", "70000")]);
        assert_eq!(e.key, "port");
        assert!(e.problem.contains("65535"), "{e}");
        let e = err_env(&[("MPREG_DNS_UDP_PORT", "-1")]);
        assert_eq!(e.key, "dns_udp_port");
        let e = err_file("discovery_rate_limit_max_keys = 1.5");
        assert_eq!(e.key, "discovery_rate_limit_max_keys");
        assert!(e.problem.contains("integer"), "{e}");
        let loaded = from_env(&[
            ("MPREG_DNS_UDP_PORT", "none"),
            ("MPREG_DNS_TCP_PORT", "5353"),
        ])
        .expect("loads");
        assert_eq!(loaded.settings.dns_udp_port, None);
        assert_eq!(loaded.settings.dns_tcp_port, Some(5353));
        let loaded = from_file("gossip_interval = 2\nmonitoring_port = 0").expect("int as float");
        assert_eq!(loaded.settings.gossip_interval, 2.0);
        assert_eq!(loaded.settings.monitoring_port, None);
    }

    #[test]
    fn lists_from_comma_strings_json_and_single_file_strings() {
        let loaded = from_env(&[(
            "MPREG_DISCOVERY_RESOLVER_NAMESPACES",
            " svc.a , svc.b,,svc.a ",
        )])
        .expect("comma list");
        assert_eq!(
            loaded.settings.discovery_resolver_namespaces,
            vec!["svc.a".to_string(), "svc.b".to_string()]
        );
        let loaded = from_env(&[("MPREG_RESOURCES", r#"["gpu", "cpu,fast"]"#)]).expect("json list");
        assert_eq!(
            loaded.settings.resources,
            vec!["gpu".to_string(), "cpu,fast".to_string()]
        );
        let loaded = from_file(r#"log_debug_scopes = "peer_dial,discovery_loop""#).expect("file");
        assert_eq!(
            loaded.settings.log_debug_scopes,
            vec!["peer_dial,discovery_loop".to_string()]
        );
        let e = err_env(&[("MPREG_RESOURCES", "[1, {}]")]);
        assert_eq!(e.key, "resources[1]");
        let e = err_file("peers = 5");
        assert_eq!(e.key, "peers");
    }

    #[test]
    fn scopes_are_normalised_and_validated() {
        let loaded = load(
            Some(r#"discovery_summary_resolver_scopes = [" Region ", "", "cluster", "zone"]"#),
            &pairs(&[
                ("MPREG_SCOPE", " Cluster "),
                ("MPREG_DISCOVERY_SUMMARY_EXPORT_SCOPE", ""),
            ]),
            &[],
        )
        .expect("loads");
        assert_eq!(loaded.settings.scope, "zone");
        assert_eq!(loaded.settings.discovery_summary_export_scope, None);
        assert_eq!(
            loaded.settings.discovery_summary_resolver_scopes,
            vec!["region".to_string(), "zone".to_string()]
        );
        let loaded = from_file(r#"discovery_summary_export_scope = " REGION ""#).expect("loads");
        assert_eq!(
            loaded.settings.discovery_summary_export_scope.as_deref(),
            Some("region")
        );

        let e = err_env(&[("MPREG_SCOPE", "planet")]);
        assert_eq!(e.key, "scope");
        assert_eq!(e.source_name, "environment MPREG_SCOPE");
        assert!(e.problem.contains("\"planet\""), "{e}");
        assert_one_line(&e);
        let e = err_env(&[("MPREG_SCOPE", "")]);
        assert_eq!(e.key, "scope");
        let e = err_file(r#"discovery_summary_resolver_scopes = ["global", "galaxy"]"#);
        assert_eq!(e.key, "discovery_summary_resolver_scopes[1]");
        assert_eq!(e.source_name, "file");
    }

    #[test]
    fn dns_zones_and_ttls_are_normalised() {
        let loaded = from_file(
            r#"
            dns_zones = [" .MPREG. ", "", "..", "corp.example.", "mpreg"]
            dns_min_ttl_seconds = 0.25
            dns_max_ttl_seconds = 0.5
            "#,
        )
        .expect("loads");
        let s = loaded.settings;
        assert_eq!(
            s.dns_zones,
            vec!["mpreg".to_string(), "corp.example".to_string()]
        );
        assert_eq!(s.dns_min_ttl_seconds, 1.0);
        assert_eq!(s.dns_max_ttl_seconds, 1.0);

        let loaded =
            from_file("dns_min_ttl_seconds = 30\ndns_max_ttl_seconds = 10").expect("loads");
        assert_eq!(loaded.settings.dns_min_ttl_seconds, 30.0);
        assert_eq!(loaded.settings.dns_max_ttl_seconds, 30.0);
    }

    #[test]
    fn dns_rate_limit_settings_load_and_clamp() {
        let s = Settings::default();
        assert_eq!(s.dns_rate_limit_queries_per_second, 200.0);
        assert_eq!(s.dns_rate_limit_burst, 400.0);
        let loaded = from_file("dns_rate_limit_queries_per_second = 0\ndns_rate_limit_burst = -3")
            .expect("loads");
        assert_eq!(loaded.settings.dns_rate_limit_queries_per_second, 0.0);
        assert_eq!(loaded.settings.dns_rate_limit_burst, 0.0);
        let err = from_file("dns_rate_limit_burst = \"lots\"").unwrap_err();
        assert!(err.to_string().contains("dns_rate_limit_burst"), "{err}");
    }

    #[test]
    fn counters_and_intervals_are_clamped() {
        let loaded = from_file(
            r#"
            discovery_access_audit_max_entries = -5
            discovery_rate_limit_requests_per_minute = -1
            discovery_rate_limit_window_seconds = -60.0
            discovery_rate_limit_max_keys = -2
            discovery_resolver_prune_interval_seconds = 0.2
            discovery_resolver_resync_interval_seconds = -4.0
            discovery_summary_resolver_prune_interval_seconds = 45.0
            goodbye_reconnect_grace_seconds = -1.0
            "#,
        )
        .expect("loads");
        let s = loaded.settings;
        assert_eq!(s.discovery_access_audit_max_entries, 0);
        assert_eq!(s.discovery_rate_limit_requests_per_minute, 0);
        assert_eq!(s.discovery_rate_limit_window_seconds, 0.0);
        assert_eq!(s.discovery_rate_limit_max_keys, 0);
        assert_eq!(s.discovery_resolver_prune_interval_seconds, 1.0);
        assert_eq!(s.discovery_resolver_resync_interval_seconds, 0.0);
        assert_eq!(s.discovery_summary_resolver_prune_interval_seconds, 45.0);
        assert_eq!(s.goodbye_reconnect_grace_seconds, 0.0);
    }

    #[test]
    fn positive_periods_and_limits_are_enforced() {
        for (key, value) in [
            ("MPREG_GOSSIP_INTERVAL", "0"),
            ("MPREG_GOSSIP_INTERVAL", "-1"),
            ("MPREG_FABRIC_CATALOG_TTL_SECONDS", "0"),
            ("MPREG_FABRIC_DIAL_TIMEOUT_SECONDS", "0"),
            ("MPREG_FABRIC_MAX_FRAME_BYTES", "1023"),
            ("MPREG_CLIENT_MAX_MESSAGE_BYTES", "10"),
            ("MPREG_MAX_CONNECTIONS_PER_SOURCE", "0"),
            ("MPREG_MAX_CONNECTIONS", "0"),
            ("MPREG_CONNECTION_HANDSHAKE_TIMEOUT_SECONDS", "0"),
            ("MPREG_CLIENT_MAX_SUBSCRIPTIONS_PER_CONNECTION", "0"),
            ("MPREG_CLIENT_MAX_WATCHES_PER_CONNECTION", "0"),
            ("MPREG_FABRIC_MAX_DEPARTED_RECORDS", "0"),
            ("MPREG_FABRIC_ROUTING_MAX_HOPS", "0"),
            ("MPREG_RUNTIME", "async-std"),
            ("MPREG_RPC_SPEC_GOSSIP_MODE", "everything"),
            ("MPREG_HOST", "  "),
            ("MPREG_CLUSTER_ID", ""),
        ] {
            let e = err_env(&[(key, value)]);
            assert_eq!(env_var_name(&e.key), key, "{e}");
            assert_eq!(e.source_name, format!("environment {key}"));
            assert_one_line(&e);
        }
        let loaded = from_env(&[("MPREG_RUNTIME", " MIO ")]).expect("mio");
        assert_eq!(loaded.settings.runtime, "mio");
        // The idle timeout is the one bound that may be off; negative is off.
        let loaded = from_env(&[("MPREG_CLIENT_IDLE_TIMEOUT_SECONDS", "-5")]).expect("off");
        assert_eq!(loaded.settings.client_idle_timeout_seconds, 0.0);
    }

    #[test]
    fn peer_urls_must_be_websocket_with_host_and_port() {
        let loaded = from_file(
            r#"
            peers = [" WS://10.0.0.1:6666 ", "wss://node.example:443/path", "ws://[::1]:7000"]
            connect = "ws://seed:1"
            advertised_urls = "wss://public.example:8443"
            "#,
        )
        .expect("valid URLs");
        let s = loaded.settings;
        assert_eq!(
            s.peers,
            vec![
                "ws://10.0.0.1:6666".to_string(),
                "wss://node.example:443/path".to_string(),
                "ws://[::1]:7000".to_string()
            ]
        );
        assert_eq!(s.connect.as_deref(), Some("ws://seed:1"));
        assert_eq!(
            s.advertised_urls,
            vec!["wss://public.example:8443".to_string()]
        );

        for bad in [
            "http://a:1",
            "a:1",
            "ws://a",
            "ws://:1",
            "ws://a:0",
            "ws://a:99999",
            "ws://user@a:1",
            "ws://[::1:1",
            "ws://::1:1",
        ] {
            let e = err_env(&[("MPREG_PEERS", &format!("ws://ok:1,{bad}"))]);
            assert_eq!(e.key, "peers[1]", "{bad}");
            assert!(e.problem.contains(bad), "{e}");
            assert_one_line(&e);
        }
        let e = err_env(&[("MPREG_CONNECT", "tcp://a:1")]);
        assert_eq!(e.key, "connect");
        let e = err_file(r#"advertised_urls = ["ws://a"]"#);
        assert_eq!(e.key, "advertised_urls[0]");
        let loaded = from_env(&[("MPREG_CONNECT", "none")]).expect("none");
        assert_eq!(loaded.settings.connect, None);
    }

    #[test]
    fn tenant_settings_are_normalised() {
        let loaded = from_env(&[
            ("MPREG_DISCOVERY_TENANT_HEADER", "  X-Tenant-ID "),
            ("MPREG_DISCOVERY_TENANT_DEFAULT_ID", " "),
            (
                "MPREG_DISCOVERY_TENANT_CREDENTIALS",
                r#"[{"tenant_id":" t1 ","token":" tok1 ","scheme":" Bearer "},
                    {"tenant_id":"t2","token":"k2","scheme":"API-KEY","role":"Admin"}]"#,
            ),
        ])
        .expect("loads");
        let s = loaded.settings;
        assert_eq!(s.discovery_tenant_header.as_deref(), Some("x-tenant-id"));
        assert_eq!(s.discovery_tenant_default_id, None);
        let creds = &s.discovery_tenant_credentials;
        assert_eq!(creds.len(), 2);
        assert_eq!(
            (creds[0].tenant_id.as_str(), creds[0].token.as_str()),
            ("t1", "tok1")
        );
        assert_eq!(
            (creds[0].scheme.as_str(), creds[0].role.as_str()),
            ("bearer", "reader")
        );
        assert_eq!(
            (creds[1].scheme.as_str(), creds[1].role.as_str()),
            ("api-key", "admin")
        );
        assert!(!format!("{s:?}").contains("tok1"), "Debug leaks the token");

        let loaded = from_env(&[("MPREG_DISCOVERY_TENANT_HEADER", "")]).expect("empty header");
        assert_eq!(loaded.settings.discovery_tenant_header, None);
        // A single table is a list of one, as in MPREG.
        let loaded = from_file(
            "discovery_tenant_credentials = { tenant_id = \"t\", token = \"x\", scheme = \"api-key\" }",
        )
        .expect("single table");
        assert_eq!(loaded.settings.discovery_tenant_credentials.len(), 1);
    }

    #[test]
    fn bad_credentials_are_errors_without_echoing_tokens() {
        let e = err_env(&[(
            "MPREG_DISCOVERY_TENANT_CREDENTIALS",
            r#"{"tenant_id":"t","token":"sekrit","scheme":"basic"}"#,
        )]);
        assert_eq!(e.key, "discovery_tenant_credentials[0].scheme");
        assert!(!e.to_string().contains("sekrit"));
        let e = err_env(&[(
            "MPREG_DISCOVERY_TENANT_CREDENTIALS",
            r#"[{"tenant_id":"t","token":"  "}]"#,
        )]);
        assert_eq!(e.key, "discovery_tenant_credentials[0].token");
        let e = err_env(&[(
            "MPREG_DISCOVERY_TENANT_CREDENTIALS",
            r#"[{"tenant_id":"t","token":"sekrit"},{"tenant_id":"u","token":"sekrit"}]"#,
        )]);
        assert_eq!(e.key, "discovery_tenant_credentials[1].token");
        assert!(!e.to_string().contains("sekrit"));
        let e = err_env(&[(
            "MPREG_DISCOVERY_TENANT_CREDENTIALS",
            r#"[{"token":"sekrit""#,
        )]);
        assert_eq!(e.key, "discovery_tenant_credentials");
        assert!(!e.to_string().contains("sekrit"));
        assert_one_line(&e);
        let e = err_env(&[(
            "MPREG_DISCOVERY_TENANT_CREDENTIALS",
            r#"[{"tenant_id":"t","token":12345}]"#,
        )]);
        assert_eq!(e.key, "discovery_tenant_credentials[0].token");
        assert!(!e.to_string().contains("12345"));
        let e = err_env(&[(
            "MPREG_DISCOVERY_TENANT_CREDENTIALS",
            r#"[{"tenant_id":"t","token":"x","role":"root"}]"#,
        )]);
        assert_eq!(e.key, "discovery_tenant_credentials[0].role");
    }

    #[test]
    fn policy_rules_from_toml_and_json() {
        let loaded = from_file(
            r#"
            discovery_policy_enabled = true
            [[discovery_policy_rules]]
            namespace = "svc.secret"
            owners = "cluster-a"
            visibility = ["secure-cluster"]
            policy_version = 2
            [discovery_policy_rules.cutover_windows]
            starts_at = 1700000100
            ends_at = 1700003700.5
            export_scopes = ["global"]
            allow_summaries = true
            "#,
        )
        .expect("rules load");
        let rule = &loaded.settings.discovery_policy_rules[0];
        assert_eq!(rule.namespace, "svc.secret");
        assert_eq!(rule.owners, vec!["cluster-a".to_string()]);
        assert!(!rule.allow_summaries);
        assert_eq!(rule.policy_version.as_deref(), Some("2"));
        let window = &rule.cutover_windows[0];
        assert_eq!(window.starts_at, 1_700_000_100.0);
        assert_eq!(window.ends_at, Some(1_700_003_700.5));
        assert_eq!(window.allow_summaries, Some(true));

        let loaded = from_env(&[(
            "MPREG_DISCOVERY_POLICY_RULES",
            r#"[{"namespace":"a","visibility_tenants":["t"],"allow_summaries":"yes"},{"namespace":"b"}]"#,
        )])
        .expect("json rules");
        let rules = &loaded.settings.discovery_policy_rules;
        assert_eq!(rules.len(), 2);
        assert!(rules[0].allow_summaries);
        assert_eq!(rules[0].visibility_tenants, vec!["t".to_string()]);

        let e = err_env(&[(
            "MPREG_DISCOVERY_POLICY_RULES",
            r#"[{"namespace":"a","owner":["x"]}]"#,
        )]);
        assert_eq!(e.key, "discovery_policy_rules[0].owner");
        let e = err_env(&[("MPREG_DISCOVERY_POLICY_RULES", r#"[{"owners":["x"]}]"#)]);
        assert_eq!(e.key, "discovery_policy_rules[0].namespace");
        let e = err_env(&[("MPREG_DISCOVERY_POLICY_RULES", "[1]")]);
        assert_eq!(e.key, "discovery_policy_rules[0]");
    }

    /// Fuzz finding (`config_file`): rules the policy engine refuses used to
    /// load, and the node then refused to start without naming their source.
    #[test]
    fn policy_rules_the_engine_refuses_are_load_errors() {
        let e = err_env(&[(
            "MPREG_DISCOVERY_POLICY_RULES",
            r#"[{"namespace":"adiscov*ery_accsummary_watch"}]"#,
        )]);
        assert_eq!(e.key, "discovery_policy_rules");
        assert_eq!(e.source_name, "environment MPREG_DISCOVERY_POLICY_RULES");
        assert!(e.problem.contains("wildcard inside it"), "{e}");
        let e = err_file(
            "[[discovery_policy_rules]]\nnamespace = \"a\"\n[[discovery_policy_rules]]\nnamespace = \"a.*\"\n",
        );
        assert_eq!(e.key, "discovery_policy_rules");
        assert_eq!(e.source_name, "file");
        assert!(e.problem.contains("rules[1].namespace duplicate: a"), "{e}");
        assert_one_line(&e);
    }

    #[test]
    fn declared_entries_parse_with_defaults() {
        let loaded = from_file(
            r#"
            scope = "region"
            [[services]]
            name = "api"
            namespace = "svc.market"
            protocol = "TCP"
            port = 8080
            targets = ["10.0.0.5"]
            scope = "Global"
            tags = ["blue"]
            metadata = { env = "prod", shards = 3, canary = false }
            priority = 10
            weight = 5

            [[functions]]
            name = "market.quote"

            [[functions]]
            name = "market.trade"
            function_id = "trade-v2"
            version = "2.10.3"
            summary = "  "

            [[queues]]
            queue_name = "jobs.render"
            delivery_guarantees = ["At_Least_Once", "quorum"]
            metadata = { retries = 3 }

            [[topics]]
            patterns = ["market.*.ticks", "market.#"]
            "#,
        )
        .expect("decls load");
        let s = loaded.settings;
        assert_eq!(s.scope, "region");
        let svc = &s.services[0];
        assert_eq!(svc.protocol, "tcp");
        assert_eq!(svc.scope.as_deref(), Some("global"));
        assert_eq!(svc.metadata["shards"], Json::from(3));
        assert_eq!(svc.metadata["canary"], Json::Bool(false));
        assert_eq!((svc.priority, svc.weight), (10, 5));
        let f0 = &s.functions[0];
        assert_eq!(f0.function_id.as_deref(), Some("market.quote"));
        assert_eq!(f0.version, "1.0.0");
        assert_eq!(f0.scope, None);
        let f1 = &s.functions[1];
        assert_eq!(f1.function_id.as_deref(), Some("trade-v2"));
        assert_eq!(f1.summary, None);
        let q = &s.queues[0];
        assert_eq!(
            q.delivery_guarantees,
            vec!["at_least_once".to_string(), "quorum".to_string()]
        );
        assert_eq!(q.metadata["retries"], "3");
        let q_default = from_file("[[queues]]\nqueue_name = \"q\"").expect("queue");
        assert_eq!(
            q_default.settings.queues[0].delivery_guarantees,
            vec!["at_least_once".to_string()]
        );
        assert_eq!(s.topics[0].patterns.len(), 2);
        assert_eq!(s.topics[0].subscription_id, None);
        // Normalisation is idempotent.
        assert_eq!(s.clone().normalized(), Ok(s));
    }

    #[test]
    fn declared_entries_are_validated_by_path() {
        let svc = |body: &str| {
            format!(
                "[[services]]\nname = \"a\"\nnamespace = \"n\"\nport = 1\n[[services]]\n{body}\n"
            )
        };
        let cases = [
            (
                svc("name = \"b\"\nnamespace = \"n\"\nport = 0"),
                "services[1].port",
            ),
            (
                svc("name = \"b\"\nnamespace = \"n\"\nport = 70000"),
                "services[1].port",
            ),
            (
                svc("name = \"b\"\nnamespace = \"n\"\nport = \"http\""),
                "services[1].port",
            ),
            (
                svc("name = \"b\"\nnamespace = \"n\"\nport = 1\nprot = \"udp\""),
                "services[1].prot",
            ),
            (svc("name = \"b\"\nport = 1"), "services[1].namespace"),
            (
                svc("name = \" \"\nnamespace = \"n\"\nport = 1"),
                "services[1].name",
            ),
            (
                svc("name = \"b\"\nnamespace = \"n\"\nport = 1\nscope = \"moon\""),
                "services[1].scope",
            ),
            (
                svc("name = \"b\"\nnamespace = \"n\"\nport = 1\nmetadata = { x = [1] }"),
                "services[1].metadata.x",
            ),
            (
                "[[functions]]\nname = \"f\"\nversion = \"1.0\"".to_string(),
                "functions[0].version",
            ),
            (
                "[[functions]]\nname = \"f\"\nversion = \"1.x.0\"".to_string(),
                "functions[0].version",
            ),
            (
                "[[functions]]\nversion = \"1.0.0\"".to_string(),
                "functions[0].name",
            ),
            (
                "[[queues]]\nqueue_name = \"q\"\ndelivery_guarantees = [\"maybe\"]".to_string(),
                "queues[0].delivery_guarantees[0]",
            ),
            (
                "[[queues]]\nqueue_name = \"q\"\ndelivery_guarantees = []".to_string(),
                "queues[0].delivery_guarantees",
            ),
            (
                "[[queues]]\nqueue_name = \"q\"\nmetadata = { a = { b = 1 } }".to_string(),
                "queues[0].metadata.a",
            ),
            (
                "[[topics]]\npatterns = []".to_string(),
                "topics[0].patterns",
            ),
            (
                "[[topics]]\ntags = [\"x\"]".to_string(),
                "topics[0].patterns",
            ),
            (
                "[[topics]]\npatterns = [\"a\", \" \"]".to_string(),
                "topics[0].patterns[1]",
            ),
        ];
        for (text, key) in cases {
            let e = err_file(&text);
            assert_eq!(e.key, key, "{text}\n=> {e}");
            assert_eq!(e.source_name, "file");
            assert_one_line(&e);
        }
        let e = err_env(&[(
            "MPREG_SERVICES",
            r#"[{"name":"a","namespace":"n","port":0}]"#,
        )]);
        assert_eq!(e.key, "services[0].port");
        assert_eq!(e.source_name, "environment MPREG_SERVICES");
    }

    #[test]
    fn toml_syntax_errors_are_one_line() {
        let e = err_file("host = \"a\"\nport = = 3\n");
        assert_eq!(e.key, "");
        let text = e.to_string();
        assert!(
            text.starts_with("invalid settings (from file): not valid TOML at line 2"),
            "{text}"
        );
        assert_one_line(&e);
    }

    #[test]
    fn hostile_input_stays_one_line() {
        let e = load(None, &[], &pairs(&[("bad\nname", "x")])).expect_err("unknown");
        assert_one_line(&e);
        let e = err_env(&[("MPREG_GOSSIP_INTERVAL", "1\n2")]);
        assert_one_line(&e);
        let e = err_env(&[("MPREG_GOSSIP_INTERVAL", &"x".repeat(10_000))]);
        assert!(e.to_string().len() < 300);
    }

    #[test]
    fn settings_built_in_code_are_validated_too() {
        let mut s = Settings {
            port: 0,
            dns_udp_port: Some(0),
            ..Settings::default()
        };
        s.services.push(ServiceDecl {
            name: "x".into(),
            namespace: "n".into(),
            protocol: "tcp".into(),
            port: 9,
            targets: vec![],
            scope: Some("cluster".into()),
            tags: vec![],
            capabilities: vec![],
            metadata: BTreeMap::from([("bad".to_string(), Json::Null)]),
            priority: 0,
            weight: 0,
        });
        let e = s.clone().normalized().expect_err("null metadata");
        assert_eq!(e.key, "services[0].metadata.bad");
        assert_eq!(e.source_name, "settings");
        s.services[0].metadata.clear();
        let s = s.normalized().expect("valid");
        assert_eq!(s.port, 0);
        assert_eq!(s.dns_udp_port, None);
        assert_eq!(s.services[0].scope.as_deref(), Some("zone"));
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn any_env_value_for_any_setting_never_panics(
                index in 0..SETTINGS.len(),
                value in any::<String>(),
            ) {
                let name = env_var_name(SETTINGS[index].name);
                match load(None, &[(name, value)], &[]) {
                    Ok(loaded) => {
                        let again = loaded.settings.clone().normalized();
                        prop_assert_eq!(again, Ok(loaded.settings));
                    }
                    Err(e) => prop_assert!(!e.to_string().contains('\n')),
                }
            }

            #[test]
            fn any_file_text_never_panics(text in "\\PC*") {
                if let Err(e) = load(Some(&text), &[], &[]) {
                    prop_assert!(!e.to_string().contains('\n'));
                }
            }

            #[test]
            fn any_scalar_file_value_never_panics(
                index in 0..SETTINGS.len(),
                value in prop_oneof![
                    any::<i64>().prop_map(|v| v.to_string()),
                    any::<f64>().prop_map(|v| format!("{v:?}")),
                    any::<bool>().prop_map(|v| v.to_string()),
                    "[a-z ,.:/]{0,12}".prop_map(|v| format!("{v:?}")),
                ],
            ) {
                let text = format!("{} = {value}", SETTINGS[index].name);
                if let Err(e) = load(Some(&text), &[], &[]) {
                    prop_assert!(!e.to_string().contains('\n'));
                }
            }
        }
    }
}
