//! The node: composition of catalog, fabric and API behind the one
//! `handle` / `poll_output` / `poll_timeout` contract (see the crate docs).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use foldhash::quality::FixedState;
use serde_json::{Map, Value};

use crate::api::registration::{self, RegisterCtx, RegisterRequest, UnregisterTarget};
use crate::api::watch::{self, CatalogChange, DeltaPublisher, WatchFilter};
use crate::api::watch_delivery::{self, WatchDelivery};
use crate::api::{self, Ctx};
use crate::audit::AccessAudit;
use crate::catalog::entry::{
    Entry, EntryKey, EntryKind, NodeDescriptor, TransportEndpoint, INTERNAL_CONNECTION,
};
use crate::catalog::store::Catalog;
use crate::config::{ConfigError, Settings};
use crate::dns;
use crate::fabric::auth::{ClusterKey, Prover, Refusal, RefusalCounts};
use crate::fabric::dial::Dialer;
use crate::fabric::dial_policy;
use crate::fabric::digest::{DigestLinks, MirrorError};
use crate::fabric::peers::PeerTable;
use crate::fabric::replica::{Replica, ReplicaParams};
use crate::fabric::traffic::{MsgKind, Traffic};
use crate::identity::{self as ident, ConnIdentity, IdentityConfig, Viewer};
use crate::io::{CloseReason, Command, ConnId, ConnKind, Event, Frame, Input, Output};
use crate::limits::{self, Admission, IdleClock, Limit, LimitHits, LogBudget};
use crate::local;
use crate::monitoring;
use crate::monitoring::latency::{Latencies, Timed};
use crate::policy::{self, Access, PolicyHistory};
use crate::pubsub::{SubscribeError, Subscriptions};
use crate::ratelimit::{self, RateKey, RateLimiter};
use crate::registry::{self, Lease, Registration, Registry, Upsert};
use crate::rng::NodeRng;
use crate::time::{secs, Instant, Now};
use crate::wire::client::{self, ClientMessage, DecodeFailure, PubSubMessage, RpcError};
use crate::wire::fabric::{
    self as fwire, AuthProof, FabricMsg, Goodbye, Hello, Status, StatusMetrics,
};

/// Who this node is.
#[derive(Debug, Clone)]
pub struct Identity {
    /// `ws://host:port`: node id, catalog origin and peer key.
    pub node_id: String,
    /// Own cluster.
    pub cluster_id: String,
    /// This process's instance (a ULID).
    pub instance_id: String,
    /// Wall time this instance started.
    pub started_at: f64,
}

/// Counters reported in STATUS and monitoring.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Client messages handled.
    pub messages_processed: u64,
    /// Fabric messages handled.
    pub server_messages: u64,
    /// Client frames rejected (malformed, oversized, bad envelope).
    pub client_frames_rejected: u64,
    /// Fabric frames rejected (undecodable, oversized, wrong version).
    pub fabric_frames_rejected: u64,
    /// Peer digests that did not follow the previous one on their
    /// connection (lost or reordered in transit): a `Resync` was asked for.
    pub digest_resyncs: u64,
    /// Gossiped entries rejected (not owned by their origin, expired, stale).
    pub entries_rejected: u64,
    /// Entries left out of answers because the viewer may not see them
    /// (per-item policy filtering; not audited, as in MPREG).
    pub policy_items_hidden: u64,
    /// Requests denied by policy on their own namespace (audited).
    pub policy_requests_denied: u64,
    /// Requests refused by the admin gate (403).
    pub admin_denied: u64,
    /// Requests refused by the rate limiter (429, audited).
    pub rate_limited: u64,
    /// Fabric peers refused by authentication, by reason (audited).
    pub fabric_auth_refused: RefusalCounts,
    /// Summary floods dropped for a missing or wrong signature.
    pub summary_signature_rejected: u64,
    /// Plain (non-TLS) client connections refused by `client_tls_required`.
    pub client_tls_refused: u64,
    /// Resource bounds hit (connections, handshakes, idle clients,
    /// subscriptions, watches, departed records), per bound.
    pub limit_hits: LimitHits,
    /// Fabric frames and bytes sent, by message kind.
    pub fabric_sent: Traffic,
}

#[derive(Debug)]
enum ConnState {
    Client {
        /// Identity bound at accept time from the upgrade headers.
        who: ConnIdentity,
        /// Rate-limit id used while the connection is unauthenticated.
        anon: String,
    },
    Fabric {
        /// Set once the peer's Hello (or STATUS) identified it, and only
        /// after it authenticated when the cluster has a key.
        node_id: Option<String>,
        /// The URL we dialled, for outbound connections.
        dialed: Option<String>,
        /// Where the link stands in the cluster-key exchange.
        auth: LinkAuth,
        /// The peer's address (inbound links), for the audit.
        addr: Option<SocketAddr>,
    },
}

/// A fabric link's standing in the cluster-key exchange
/// ([`crate::fabric::auth`]). Only open links are gossiped with.
#[derive(Debug)]
enum LinkAuth {
    /// Gossip flows: no key is configured, or the peer proved it.
    Open,
    /// We sent our challenge and wait for the peer's proof.
    Pending {
        /// The challenge our Hello carried.
        challenge: Vec<u8>,
        /// The peer's Hello once it arrived (its proof names it).
        hello: Option<Hello>,
        /// When the exchange times out.
        deadline: Instant,
    },
    /// Refused and closing: later frames are ignored until it closes.
    Refused,
}

#[derive(Debug, Clone, Copy)]
struct Timers {
    status: Instant,
    refresh: Instant,
    prune: Instant,
}

/// Digests sent per gossip round (scuttlebutt push-pull partners).
const DIGEST_FANOUT: usize = 2;

/// Entries per published catalog delta: a larger change (a departure, a
/// closed connection's registrations) is split, so one notification stays
/// far below clients' message limits and the watch byte budget.
const DELTA_CHUNK_ENTRIES: usize = 256;

/// How long tombstones and departure records are kept: past the life of any
/// stale copy still in flight (entries expire after one TTL), and at least
/// the GOODBYE grace.
fn tombstone_horizon(settings: &Settings) -> Duration {
    secs(settings.goodbye_reconnect_grace_seconds)
        .max(secs(settings.fabric_catalog_ttl_seconds) * 2)
}

/// The URL to dial a peer at: its first advertised `ws`/`wss` URL other
/// than its id, else its id. A node's descriptor always lists its id (its
/// bind address); a node started with `--advertised-url` adds the address
/// it is reachable at (a proxy, a NAT or container port mapping), and
/// dialling the bind address instead would bypass or miss what sits in
/// front of it.
fn dial_url(node: &NodeDescriptor) -> String {
    node.transport_endpoints
        .iter()
        .filter(|ep| {
            ep.connection_type == INTERNAL_CONNECTION
                && matches!(ep.protocol.as_str(), "ws" | "wss")
        })
        .map(TransportEndpoint::endpoint)
        .find(|url| *url != node.node_id)
        .unwrap_or_else(|| node.node_id.clone())
}

#[cfg(test)]
mod dial_url_tests {
    use super::*;

    fn node(urls: &[&str]) -> NodeDescriptor {
        NodeDescriptor::new("ws://127.0.0.1:7001", "c").with_endpoints(
            urls.iter()
                .filter_map(|u| TransportEndpoint::from_url(INTERNAL_CONNECTION, u)),
        )
    }

    #[test]
    fn dials_the_advertised_url_when_there_is_one() {
        assert_eq!(dial_url(&node(&[])), "ws://127.0.0.1:7001");
        assert_eq!(
            dial_url(&node(&["ws://127.0.0.1:7001"])),
            "ws://127.0.0.1:7001",
            "nothing advertised but the id"
        );
        assert_eq!(
            dial_url(&node(&["ws://127.0.0.1:7001", "ws://127.0.0.1:9000"])),
            "ws://127.0.0.1:9000",
            "behind a proxy: the advertised URL"
        );
        assert_eq!(
            dial_url(&node(&["ws://127.0.0.1:7001", "tcp://127.0.0.1:9000"])),
            "ws://127.0.0.1:7001",
            "not a WebSocket URL"
        );
    }
}

#[path = "node_discovery.rs"]
mod discovery;

/// An mpreg-rs node, free of I/O.
pub struct Node {
    settings: Settings,
    me: Identity,
    rng: NodeRng,
    catalog: Catalog,
    replica: Replica,
    /// Per fabric connection: the incremental digest streams both ways.
    digests: DigestLinks,
    peers: PeerTable,
    dialer: Dialer,
    /// Live outbound connection per dialled URL.
    outbound: BTreeMap<String, ConnId>,
    /// Server-side query latency, timed by the runtime.
    latency: Latencies,
    /// What the input being handled was, when its time is worth filing
    /// ([`Node::record_handle_time`]).
    timing: Option<Timed>,
    /// The STATUS of the last gossip round: while the offer in it holds,
    /// rounds send a [`FabricMsg::Beat`] instead of the whole STATUS.
    last_status: Option<Status>,
    conns: HashMap<ConnId, ConnState>,
    /// Accepted connections per source address (`max_connections*`).
    admission: Admission,
    /// Log lines of refused connections and peers: one a second each.
    refusal_log: LogBudget,
    auth_log: LogBudget,
    /// Idle deadlines of client connections (`client_idle_timeout_seconds`).
    idle: IdleClock,
    subs: Subscriptions,
    /// Registrations made over RPC (leases, connection bindings, persistence).
    registry: Registry,
    /// Catalog watchers' filters and delivery budgets.
    watches: WatchDelivery,
    out: VecDeque<Output>,
    counters: Counters,
    timers: Timers,
    stopped: bool,
    /// The DNS gateway's answering state (configuration, per-source rate
    /// limit, counters); the runtime owns its sockets.
    dns: dns::Gateway,
    /// Compiled `discovery_tenant_*` settings: connection identity, viewer,
    /// admin gate.
    ident: IdentityConfig,
    /// The enforced namespace policy with its version history and audit.
    policy: PolicyHistory,
    /// `policy.revision()` last written to the data directory.
    policy_persisted: u64,
    /// Discovery rate limiter (RPCs and watches).
    limiter: RateLimiter,
    /// Denials of discovery requests.
    access_audit: AccessAudit,
    /// Summary export, summary cache and resolver mode.
    plane: discovery::Plane,
    /// The shared cluster key (`fabric_auth_key`), when peers must prove it.
    cluster_key: Option<ClusterKey>,
    /// Deadlines of fabric links still in the key exchange (entries of
    /// links that finished or closed are skipped when they come due).
    auth_deadlines: BTreeSet<(Instant, ConnId)>,
}

/// Who sent a request, and how far its viewer fields are trusted.
struct Caller {
    /// Identity of the connection (an admin without tenant in process).
    who: ConnIdentity,
    /// Rate-limit id while unauthenticated.
    anon: String,
    /// In-process callers may name any viewer in the request
    /// (`viewer_cluster_id`, `viewer_tenant_id`); network callers get the
    /// viewer of their connection (MPREG ignores the request's cluster on the
    /// network too).
    trusted: bool,
}

impl Caller {
    fn in_process() -> Caller {
        Caller {
            who: ConnIdentity::anonymous(ident::Role::Admin),
            anon: "in-process".into(),
            trusted: true,
        }
    }
}

/// Commands whose request-level `namespace` (or `namespace_filter`) is
/// checked against the viewer before they run: a denial is audited and
/// answered with an empty result (a 403 for watches), as MPREG does.
const NAMESPACE_CHECKED: &[&str] = &[
    "catalog_query",
    "catalog_watch",
    "cluster_map_v2",
    "dns_describe",
    "dns_list",
    "rpc_describe",
    "rpc_list",
    "rpc_report",
    "summary_query",
    "summary_watch",
];

/// Commands whose envelopes count as discovery queries for
/// `discovery.query.latency_ms`: the read paths of the discovery plane.
const TIMED_QUERIES: &[&str] = &[
    "catalog_query",
    "cluster_map",
    "cluster_map_v2",
    "dns_describe",
    "dns_list",
    "list_peers",
    "rpc_describe",
    "rpc_list",
    "summary_query",
];

impl Node {
    /// Builds a node from validated settings. `seed` fixes every random
    /// choice the node makes (ids, jitter), so a simulator run replays.
    ///
    /// `settings.port` must be the port actually bound (the runtime resolves
    /// port 0 before calling this), because the node id is `ws://host:port`.
    pub fn new(settings: Settings, now: Now, seed: u64) -> Result<Node, ConfigError> {
        let settings = settings.normalized()?;
        let mut rng = NodeRng::new(seed);
        let node_id = format!("ws://{}:{}", settings.host, settings.port);
        let me_node_id = node_id.clone();
        let me = Identity {
            node_id: node_id.clone(),
            cluster_id: settings.cluster_id.clone(),
            instance_id: rng.ulid(now.wall),
            started_at: now.wall,
        };
        let mut seeds: Vec<String> = settings.peers.clone();
        seeds.extend(settings.connect.iter().cloned());
        let mut self_urls = vec![node_id.clone()];
        self_urls.extend(settings.advertised_urls.iter().cloned());
        let dialer = Dialer::new(&node_id, settings.gossip_interval, seeds, self_urls);
        let params = ReplicaParams {
            horizon: tombstone_horizon(&settings),
            gossip_interval: secs(settings.gossip_interval).max(Duration::from_millis(10)),
            // Half the frame bound leaves room for the envelope.
            page_bytes: usize::try_from(settings.fabric_max_frame_bytes / 2).unwrap_or(usize::MAX),
            max_gone: usize::try_from(settings.fabric_max_departed_records).unwrap_or(usize::MAX),
            max_tombstones: usize::try_from(settings.fabric_max_tombstones_per_origin)
                .unwrap_or(usize::MAX),
        };
        let replica = Replica::new(&me.node_id, &me.instance_id, me.started_at, params);
        let policy = PolicyHistory::new(&settings, now.wall).map_err(|e| ConfigError {
            key: "discovery_policy_rules".into(),
            problem: e.to_string(),
            source_name: "settings".into(),
        })?;
        let me_plane = me.clone();
        let mut node = Node {
            me,
            rng,
            // Its own stream (the node's RNG draws stay as they were): the
            // seed of the catalog's service index.
            catalog: Catalog::with_seed(NodeRng::new(seed ^ 0xA076_1D64_78BD_642F).next_u64()),
            replica,
            digests: DigestLinks::default(),
            peers: PeerTable::default(),
            dialer,
            outbound: BTreeMap::new(),
            last_status: None,
            latency: Latencies::default(),
            timing: None,
            conns: HashMap::new(),
            admission: Admission::default(),
            refusal_log: LogBudget::default(),
            auth_log: LogBudget::default(),
            idle: IdleClock::new(settings.client_idle_timeout_seconds),
            subs: Subscriptions::new(
                usize::try_from(settings.client_max_subscriptions_per_connection)
                    .unwrap_or(usize::MAX),
            ),
            registry: Registry::new(),
            watches: WatchDelivery::default(),
            out: VecDeque::new(),
            counters: Counters::default(),
            timers: Timers {
                status: now.mono,
                refresh: now.mono,
                prune: now.mono,
            },
            stopped: false,
            dns: dns::Gateway::new(
                dns::DnsConfig::from_settings(&settings, &me_node_id),
                NodeRng::new(seed ^ 0xD1B5_4A32_D192_ED03).next_u64(),
            ),
            ident: IdentityConfig::from_settings(&settings),
            policy,
            policy_persisted: 0,
            limiter: RateLimiter::from_settings(&settings),
            access_audit: AccessAudit::from_settings(&settings),
            // Its own stream, so the node's RNG draws stay as they were.
            plane: discovery::Plane::new(
                &settings,
                &me_plane,
                now,
                NodeRng::new(seed ^ 0x9E37_79B9_7F4A_7C15).next_u64(),
            ),
            cluster_key: settings
                .fabric_auth_key
                .as_ref()
                .map(|k| ClusterKey::new(k.expose())),
            auth_deadlines: BTreeSet::new(),
            settings,
        };
        node.advertise_own(now);
        node.discovery_start(now);
        node.timers.status = now.mono + node.gossip_interval();
        node.timers.prune = now.mono + node.gossip_interval();
        node.reconcile(now);
        Ok(node)
    }

    /// This node's identity.
    pub fn identity(&self) -> &Identity {
        &self.me
    }

    /// The effective (normalised) settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The replicated fabric state (for diagnostics and invariant checks).
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// The catalog (read-only).
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Counters for monitoring.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// DNS gateway counters for monitoring.
    pub fn dns_stats(&self) -> &dns::DnsStats {
        self.dns.stats()
    }

    /// Runs one RPC locally, as if a client on this node had called it (the
    /// simulator and operators' in-process tools use this). Read-only: it
    /// produces no outputs.
    pub fn call(&self, now: Now, fun: &str, payload: Value) -> Result<Value, RpcError> {
        let cmd = client::RpcCommand {
            name: fun.to_string(),
            fun: fun.to_string(),
            args: if payload.is_null() {
                vec![]
            } else {
                vec![payload]
            },
            kwargs: Map::new(),
            target_cluster: None,
        };
        let caller = Caller::in_process();
        let p = cmd.payload().unwrap_or_default();
        let viewer = self.viewer_of(&caller, &p);
        if let Some(v) = self.read_policy_rpc(fun, &p, &viewer, now) {
            return v;
        }
        let deny_all = self.namespace_denied(fun, &p, &viewer).is_some();
        if crate::summary::NODE_RPCS.contains(&fun) {
            return self.discovery_rpc(fun, &p, &viewer, deny_all, now);
        }
        let (value, _) = self.answer(&cmd, &viewer, deny_all, now, &mut Vec::new())?;
        Ok(value)
    }

    /// Runs one RPC in process, mutating RPCs included
    /// ([`api::registration::MUTATING`]), as a client without a connection
    /// would (so `bind_to_connection` is refused). Drain
    /// [`Node::poll_output`] afterwards: a registration floods a delta.
    pub fn call_mut(&mut self, now: Now, fun: &str, payload: Value) -> Result<Value, RpcError> {
        if self.stopped {
            return Err(RpcError::failed("node stopped"));
        }
        let cmd = client::RpcCommand {
            name: fun.to_string(),
            fun: fun.to_string(),
            args: if payload.is_null() {
                vec![]
            } else {
                vec![payload]
            },
            kwargs: Map::new(),
            target_cluster: None,
        };
        let result = self.run_client_rpc(
            None,
            &Caller::in_process(),
            std::slice::from_ref(&cmd),
            now,
            &mut Vec::new(),
        );
        self.flush_own_changes();
        self.flush_persist();
        Ok(result?
            .remove(fun)
            .map_or(Value::Null, std::sync::Arc::unwrap_or_clone))
    }

    /// The registrations made over RPC.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// A read-only snapshot of what the monitoring endpoints show
    /// ([`monitoring::respond`]), at `now`.
    pub fn monitoring_view(&self, now: Now) -> monitoring::MonitoringView<'_> {
        let replica = &self.replica;
        let (departed, dead) = replica.gone_counts();
        let cache = self.discovery_cache_snapshot(now);
        let mut catalog = [0; EntryKind::COUNT];
        for kind in EntryKind::ALL {
            catalog[kind.index()] = self.catalog.count(kind);
        }
        let dial = self.dialer.last_plan().map(|plan| monitoring::DialGauges {
            targets: plan.targets,
            connected: plan.connected,
            desired_connected: plan.desired_connected,
            discovery_ratio: plan.discovery_ratio,
            in_flight: self.dialer.in_flight(),
            saturated_ticks: self.dialer.saturated_ticks(),
        });
        monitoring::MonitoringView {
            me: &self.me,
            settings: &self.settings,
            counters: &self.counters,
            peers: monitoring::PeerCounts {
                connected: self.peers.connected().count(),
                known: replica.origin_count(),
                suspected: replica.origins().filter(|o| replica.is_suspect(o)).count(),
                dead,
                departed,
            },
            catalog,
            registrations: self.registry.len(),
            dns: self.dns.stats(),
            policy: &self.policy,
            access_audit: &self.access_audit,
            ident: &self.ident,
            dial,
            summary_export: Some(self.discovery_summary_snapshot(now)),
            resolver_cache: cache.get("resolver_cache").cloned(),
            summary_cache: cache.get("summary_cache").cloned(),
            lag: Some(self.discovery_lag_snapshot(now)),
            latency: &self.latency,
            now: now.wall,
        }
    }

    /// Feeds one input. Drain [`Node::poll_output`] afterwards.
    pub fn handle(&mut self, now: Now, input: Input) {
        self.timing = None;
        if self.stopped {
            return;
        }
        match input {
            Input::Tick => self.on_tick(now),
            Input::Accepted {
                conn,
                kind,
                headers,
                peer_addr,
                tls,
            } => match kind {
                // Over a connection limit: closed and never known to the node.
                _ if !self.admit_conn(conn, peer_addr, now) => {}
                ConnKind::Client if !tls && self.settings.client_tls_required => {
                    self.refuse_plain_client(conn, peer_addr, now)
                }
                ConnKind::Client => {
                    let who = self.ident.identify(&headers);
                    let anon = ident::anonymous_id(peer_addr.map(|a| a.ip()), conn);
                    self.conns.insert(conn, ConnState::Client { who, anon });
                    self.idle.track(conn, now.mono);
                }
                ConnKind::Fabric => self.greet(conn, None, peer_addr, now),
            },
            Input::HandshakeTimedOut { peer_addr } => {
                self.counters.limit_hits.hit(Limit::HandshakeTimeout);
                let from = peer_addr.map_or_else(|| "unknown".to_string(), |a| a.to_string());
                self.event(Event::Info(format!(
                    "connection from {from} dropped: no complete request (head and WebSocket \
                     upgrade) within \
                     connection_handshake_timeout_seconds"
                )));
            }
            Input::Connected { conn, url } => {
                self.dialer.succeeded(&url, now.mono);
                self.outbound.insert(url.clone(), conn);
                self.greet(conn, Some(url), None, now);
            }
            Input::DialFailed { url, error } => {
                self.event(Event::Info(format!("dial {url} failed: {error}")));
                let targets = self.dialer.failed(&url, now.mono);
                // MPREG's dial-failure demotion (full-mesh clusters only): a
                // peer we cannot reach and have no connection to starts
                // ageing out of `list_peers`, even if it never sent STATUS.
                if targets <= dial_policy::INBOUND_VIEW_MIN_TARGETS {
                    self.peers.on_dial_failed(&url, now.mono, now.wall);
                }
            }
            Input::Frame { conn, frame } => match self.conns.get(&conn) {
                Some(ConnState::Client { .. }) => self.on_client_frame(conn, frame, now),
                Some(ConnState::Fabric { .. }) => self.on_fabric_frame(conn, frame, now),
                None => self.event(Event::BadInput {
                    conn: Some(conn),
                    detail: "frame on unknown connection".into(),
                }),
            },
            Input::Closed { conn } => self.on_closed(conn, now),
            Input::Command(Command::Shutdown { reason }) => self.shutdown(now, &reason),
            Input::DnsQuery {
                id,
                src,
                transport,
                bytes,
            } => {
                // The one policy engine decides DNS answers too, per entry
                // (scope is applied inside the responder).
                let engine = self.policy.engine();
                let own = &self.me.cluster_id;
                let visible = |v: &Viewer, e: &Entry| Access::new(engine, v, own).entry_visible(e);
                self.timing = Some(Timed::Dns);
                let bytes = self.dns.handle(
                    now.mono,
                    now.wall,
                    src,
                    transport,
                    &bytes,
                    &self.catalog,
                    &visible,
                    self.policy.revision(),
                );
                self.out.push_back(Output::DnsReply { id, bytes });
            }
            Input::Restored { name, bytes } => self.on_restored(&name, &bytes, now),
            Input::Http {
                id,
                method,
                path,
                query,
                headers,
            } => {
                let request = monitoring::Request {
                    method: &method,
                    path: &path,
                    query: &query,
                    headers: &headers,
                };
                let reply = monitoring::respond(&self.monitoring_view(now), &request);
                self.out.push_back(Output::HttpReply {
                    id,
                    status: reply.status,
                    content_type: reply.content_type.to_string(),
                    body: reply.body,
                    headers: reply.headers,
                });
            }
        }
        if !self.stopped {
            self.flush_own_changes();
            self.flush_persist();
            self.flush_policy();
        }
        let evicted = self.replica.take_gone_evictions();
        if evicted > 0 {
            self.counters
                .limit_hits
                .add(Limit::DepartedRecords, evicted);
        }
        let trimmed = self.replica.take_tombstone_evictions();
        if trimmed > 0 {
            self.counters.limit_hits.add(Limit::Tombstones, trimmed);
        }
    }

    /// The next output, if any. Call until `None` after every `handle`.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// How long the last [`Node::handle`] call took, measured by the
    /// runtime around it (the core has no clock). Filed as query latency
    /// when that input was a discovery or DNS query, ignored otherwise, so
    /// a runtime may report every call.
    pub fn record_handle_time(&mut self, elapsed: std::time::Duration) {
        if let Some(what) = self.timing.take() {
            self.latency.observe(what, elapsed);
        }
    }

    /// When the node next needs `Input::Tick`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.stopped {
            return None;
        }
        let t = self.timers;
        let mut next = t.status.min(t.refresh).min(t.prune);
        next = next.min(self.dialer.next_deadline());
        if let Some(lease) = self.registry.next_deadline() {
            next = next.min(lease);
        }
        if let Some(resync) = self.watches.next_deadline() {
            next = next.min(resync);
        }
        if let Some(t) = self.plane.next_deadline() {
            next = next.min(t);
        }
        if let Some(&(t, _)) = self.auth_deadlines.first() {
            next = next.min(t);
        }
        if let Some(t) = self.idle.next_deadline() {
            next = next.min(t);
        }
        Some(next)
    }

    fn gossip_interval(&self) -> Duration {
        secs(self.settings.gossip_interval).max(Duration::from_millis(10))
    }

    fn event(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }

    fn send(&mut self, conn: ConnId, frame: Frame) {
        self.out.push_back(Output::Send { conn, frame });
    }

    fn send_fabric(&mut self, conn: ConnId, msg: &FabricMsg) {
        let bytes = fwire::encode(msg);
        self.counters
            .fabric_sent
            .add(MsgKind::of(msg), bytes.len(), 1);
        self.send(conn, Frame::Binary(bytes.into()));
    }

    /// Sends one message to many connections, encoding it once.
    fn send_fabric_many(&mut self, conns: impl IntoIterator<Item = ConnId>, msg: &FabricMsg) {
        let bytes = Bytes::from(fwire::encode(msg));
        let mut copies = 0;
        for conn in conns {
            // A reference to the one buffer, not a copy.
            self.send(conn, Frame::Binary(bytes.clone()));
            copies += 1;
        }
        self.counters
            .fabric_sent
            .add(MsgKind::of(msg), bytes.len(), copies);
    }

    fn close(&mut self, conn: ConnId, code: u16, reason: impl Into<String>) {
        self.out.push_back(Output::Close {
            conn,
            reason: CloseReason::new(code, reason),
        });
    }

    /// Fabric links gossip may use: those past the key exchange.
    fn fabric_conns(&self) -> Vec<ConnId> {
        let mut v: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, s)| {
                matches!(
                    s,
                    ConnState::Fabric {
                        auth: LinkAuth::Open,
                        ..
                    }
                )
            })
            .map(|(c, _)| *c)
            .collect();
        v.sort_unstable();
        v
    }

    // ---- timers --------------------------------------------------------

    fn on_tick(&mut self, now: Now) {
        if now.mono >= self.timers.status {
            // One gossip round: heartbeat, STATUS to direct peers, and a
            // digest to a few random peers (anti-entropy).
            self.replica.beat();
            // STATUS goes to our outbound links, as in MPREG; peers that
            // dialled us send theirs the other way. Every link got a full
            // STATUS when it opened, so a round where the offer did not
            // change sends only the moving part.
            let status = self.own_status(now);
            let msg = match &self.last_status {
                Some(last) if last.same_offer(&status) => FabricMsg::Beat(status.beat()),
                _ => FabricMsg::Status(status.clone()),
            };
            self.last_status = Some(status);
            let conns: Vec<ConnId> = self
                .outbound
                .values()
                .copied()
                .filter(|c| self.is_open(*c))
                .collect();
            self.send_fabric_many(conns, &msg);
            self.gossip_digests();
            self.timers.status = now.mono + self.gossip_interval();
        }
        if now.mono >= self.timers.refresh {
            self.replica.refresh_own(&mut self.catalog, now.wall);
            self.timers.refresh = now.mono + self.refresh_interval();
        }
        if now.mono >= self.timers.prune {
            self.prune(now);
            self.dns.prune(now.mono);
            self.timers.prune = now.mono + self.gossip_interval();
        }
        if self.dialer.tick_due(now.mono) {
            self.reconcile(now);
        }
        let lapsed = self.registry.expire(now.mono);
        if !lapsed.is_empty() {
            self.event(Event::Info(format!(
                "{} registrations withdrawn: lease not refreshed",
                lapsed.len()
            )));
            self.withdraw(lapsed, now);
        }
        self.send_due_resyncs(now);
        self.close_idle_clients(now);
        self.discovery_tick(now);
        self.expire_auth(now);
    }

    /// Admits an accepted connection under `max_connections_per_source`
    /// and `max_connections`; over either, closes it (1008, naming the
    /// setting) and counts the hit. The refused connection never becomes
    /// known to the node, so everyone else is served as before.
    fn admit_conn(
        &mut self,
        conn: ConnId,
        peer_addr: Option<std::net::SocketAddr>,
        now: Now,
    ) -> bool {
        let source = peer_addr.map(|a| a.ip());
        let Err(limit) = self.admission.admit(
            conn,
            source,
            self.settings.max_connections_per_source,
            self.settings.max_connections,
        ) else {
            return true;
        };
        self.counters.limit_hits.hit(limit);
        let reason = match (limit, source) {
            (Limit::ConnectionsPerSource, Some(ip)) => format!(
                "connection limit reached: {} ({}) for {ip}",
                limit.setting(),
                self.settings.max_connections_per_source
            ),
            _ => format!(
                "connection limit reached: {} ({})",
                limit.setting(),
                self.settings.max_connections
            ),
        };
        if let Some(left_out) = self.refusal_log.allow(now.mono) {
            self.event(Event::BadInput {
                conn: Some(conn),
                detail: limits::with_suppressed(reason.clone(), left_out),
            });
        }
        self.close(conn, 1008, reason);
        false
    }

    /// `client_tls_required`: a client that connected without TLS is told
    /// to use `wss://` and closed before it can send a request.
    fn refuse_plain_client(
        &mut self,
        conn: ConnId,
        peer_addr: Option<std::net::SocketAddr>,
        now: Now,
    ) {
        self.counters.client_tls_refused += 1;
        let reason =
            "this node accepts clients over TLS only (client_tls_required): connect with wss://";
        if let Some(left_out) = self.refusal_log.allow(now.mono) {
            let from = peer_addr.map_or_else(|| "unknown".to_string(), |a| a.to_string());
            self.event(Event::BadInput {
                conn: Some(conn),
                detail: limits::with_suppressed(
                    format!("plain client connection from {from} refused: {reason}"),
                    left_out,
                ),
            });
        }
        self.close(conn, 1008, reason.to_string());
    }

    /// Closes client connections idle for `client_idle_timeout_seconds`.
    /// One that holds a subscription, a watch or a connection-bound
    /// registration is waiting for the node, not idle: it is timed again.
    fn close_idle_clients(&mut self, now: Now) {
        for conn in self.idle.due(now.mono) {
            let waiting = self.subs.has_conn(conn)
                || self.watches.has_conn(conn)
                || self.registry.has_conn(conn);
            if waiting {
                self.idle.track(conn, now.mono);
                continue;
            }
            self.idle.forget(conn);
            self.counters.limit_hits.hit(Limit::ClientIdle);
            let reason = format!(
                "idle for {} s: client_idle_timeout_seconds",
                self.settings.client_idle_timeout_seconds
            );
            self.event(Event::Info(format!("connection {conn} closed: {reason}")));
            self.close(conn, 1008, reason);
        }
    }

    /// How often the owner re-announces its entries as fresh: a quarter of
    /// the shortest TTL among its entries (the catalog TTL, or a shorter
    /// one a registration asked for), so peers never see them expire while
    /// it lives.
    fn refresh_interval(&self) -> Duration {
        let ttl = self
            .registry
            .min_entry_ttl()
            .map_or(self.settings.fabric_catalog_ttl_seconds, |t| {
                t.min(self.settings.fabric_catalog_ttl_seconds)
            });
        (secs(ttl) / 4).max(Duration::from_millis(100))
    }

    /// Sends this node's digest to up to [`DIGEST_FANOUT`] random peers.
    fn gossip_digests(&mut self) {
        let mut peers: Vec<ConnId> = self.peers.connected().map(|(_, c)| c).collect();
        if peers.is_empty() {
            return;
        }
        let view = self.replica.digest_entries();
        for _ in 0..DIGEST_FANOUT.min(peers.len()) {
            let i = self.rng.index(peers.len());
            let conn = peers.swap_remove(i);
            self.send_digest(conn, &view, true);
        }
    }

    /// Sends `conn` the next digest of its stream: what changed in `view`
    /// since the last one it was sent (all of it on a new connection).
    fn send_digest(&mut self, conn: ConnId, view: &[fwire::DigestEntry], reply: bool) {
        let stride = self.replica.beat_stride();
        let digest = self.digests.link(conn).tx.encode(view, reply, stride);
        self.send_fabric(conn, &FabricMsg::Digest(digest));
    }

    /// Puts this node's own entries (descriptor, RPCs, declared entries)
    /// into the replica at startup.
    fn advertise_own(&mut self, now: Now) {
        let entries = local::entries(&self.settings, &self.me, now.wall);
        // Configured entries are not registrable: a client can neither
        // replace nor withdraw them.
        self.registry.reserve(entries.iter().map(Entry::key));
        for entry in entries {
            if let Err(e) = self
                .replica
                .put_own(&mut self.catalog, entry, now.wall, now.mono)
            {
                self.event(Event::Info(format!("own entry rejected: {e}")));
            }
        }
        self.timers.refresh = now.mono + self.refresh_interval();
    }

    /// Floods own changes made while handling the last input.
    fn flush_own_changes(&mut self) {
        if let Some(delta) = self.replica.take_flood() {
            let msg = FabricMsg::Delta(delta);
            let conns = self.fabric_conns();
            self.send_fabric_many(conns, &msg);
        }
    }

    fn prune(&mut self, now: Now) {
        let expired: Vec<Entry> = self
            .catalog
            .take_expired(now.wall)
            .into_iter()
            .map(|(_, e)| e)
            .collect();
        self.publish_catalog_change(&[], &expired, now);
        self.replica.collect(now.mono);
        let (suspected, dead) = self.replica.check_liveness(&mut self.catalog, now.mono);
        for origin in suspected {
            self.event(Event::Info(format!(
                "peer {origin} suspected: no heartbeat"
            )));
        }
        for (origin, removed) in dead {
            self.publish_catalog_change(&[], &removed, now);
            self.peers.remove(&origin);
            self.event(Event::PeerDown {
                node_id: origin,
                reason: "failed: heartbeat timeout".into(),
            });
        }
    }

    /// True when debug scope `scope` (`peer_dial`, `peer_snapshot`) is
    /// enabled in `log_debug_scopes`.
    fn debug_scope(&self, scope: &str) -> bool {
        self.settings.log_debug_scopes.iter().any(|s| s == scope)
    }

    /// One reconcile tick of the adaptive dial scheduler (`fabric.md` §3).
    fn reconcile(&mut self, now: Now) {
        let catalog = &self.catalog;
        let replica = &self.replica;
        let mut candidates: Vec<(String, bool)> = Vec::new();
        let grace = secs(self.settings.goodbye_reconnect_grace_seconds);
        for seed in self.dialer.seeds() {
            if !replica.departed_within(seed, now.mono, grace) {
                candidates.push((seed.to_string(), false));
            }
        }
        let mut directory = 1usize;
        // Dial URL -> node id, for the inbound-link check below when a node
        // is dialled at an advertised URL rather than at its id.
        let mut dial_ids: BTreeMap<String, String> = BTreeMap::new();
        for e in catalog.iter(EntryKind::Nodes) {
            if e.node_id() == self.me.node_id {
                continue;
            }
            directory += 1;
            let url = match e {
                Entry::Node(n) => dial_url(n),
                _ => e.node_id().to_string(),
            };
            if url != e.node_id() {
                dial_ids.insert(url.clone(), e.node_id().to_string());
            }
            candidates.push((url, false));
        }
        let servers = {
            // Hashed, not ordered: only the count is used, and node ids
            // (URLs sharing long prefixes) are slow to compare.
            let mut ids: HashSet<&str, FixedState> = HashSet::default();
            for e in catalog.iter(EntryKind::Functions) {
                ids.insert(e.node_id());
            }
            ids.insert(self.me.node_id.as_str());
            ids.len()
        };
        let mut seen = BTreeSet::new();
        candidates.retain(|(u, _)| seen.insert(u.clone()));
        let t = candidates.len();
        // Below 20 targets only our own outbound links count (each pair
        // ends up linked both ways, as in MPREG); from 20 on inbound links
        // count too.
        let inbound_counts = dial_policy::uses_inbound_view(t);
        for (url, connected) in candidates.iter_mut() {
            let node_id = dial_ids.get(url.as_str()).unwrap_or(url);
            *connected = self.outbound.contains_key(url.as_str())
                || (inbound_counts && self.peers.is_connected(node_id));
        }
        let dr = dial_policy::discovery_ratio(t, directory, servers);
        let selected = self.dialer.tick(now.mono, &candidates, dr);
        let timeout =
            secs(self.settings.fabric_dial_timeout_seconds).max(Duration::from_millis(100));
        for url in selected {
            self.out.push_back(Output::Dial { url, timeout });
        }
        if self
            .settings
            .log_debug_scopes
            .iter()
            .any(|s| s == "peer_dial")
        {
            if let Some(plan) = self.dialer.last_plan() {
                let line = plan.diag_line(&self.me.node_id, &self.settings.name);
                self.event(Event::Diag {
                    scope: "peer_dial",
                    line,
                });
            }
        }
    }

    // ---- fabric --------------------------------------------------------

    /// A new fabric connection: say who we are. Without a cluster key the
    /// link opens at once; with one, our Hello carries a challenge and the
    /// link opens when the peer's proof arrives ([`Node::on_auth`]).
    fn greet(&mut self, conn: ConnId, dialed: Option<String>, addr: Option<SocketAddr>, now: Now) {
        let challenge = match self.cluster_key.as_mut() {
            Some(key) => {
                let nonce = self.rng.next_u64();
                Some(key.challenge(&self.me.instance_id, nonce))
            }
            None => None,
        };
        let auth = match &challenge {
            Some(c) => {
                let timeout =
                    secs(self.settings.fabric_dial_timeout_seconds).max(Duration::from_millis(100));
                let deadline = now.mono + timeout;
                self.auth_deadlines.insert((deadline, conn));
                LinkAuth::Pending {
                    challenge: c.clone(),
                    hello: None,
                    deadline,
                }
            }
            None => LinkAuth::Open,
        };
        let open = matches!(auth, LinkAuth::Open);
        self.conns.insert(
            conn,
            ConnState::Fabric {
                node_id: None,
                dialed,
                auth,
                addr,
            },
        );
        let hello = FabricMsg::Hello(Hello {
            node_id: self.me.node_id.clone(),
            cluster_id: self.me.cluster_id.clone(),
            instance_id: self.me.instance_id.clone(),
            challenge,
        });
        self.send_fabric(conn, &hello);
        if open {
            self.open_link(conn, now);
        }
    }

    /// Whether gossip may flow on `conn`.
    fn is_open(&self, conn: ConnId) -> bool {
        matches!(
            self.conns.get(&conn),
            Some(ConnState::Fabric {
                auth: LinkAuth::Open,
                ..
            })
        )
    }

    /// The first gossip on a link that just opened: how we are, and a
    /// digest that starts the connect-time state exchange.
    fn open_link(&mut self, conn: ConnId, now: Now) {
        let status = self.own_status(now);
        if !self
            .last_status
            .as_ref()
            .is_some_and(|last| last.same_offer(&status))
        {
            // This link learns an offer the others were not sent yet: the
            // next round must send it to every link, even if it reverts.
            self.last_status = None;
        }
        self.send_fabric(conn, &FabricMsg::Status(status));
        let view = self.replica.digest_entries();
        self.send_digest(conn, &view, true);
    }

    fn on_fabric_frame(&mut self, conn: ConnId, frame: Frame, now: Now) {
        let Frame::Binary(bytes) = frame else {
            self.reject_fabric(conn, 1003, "fabric frames must be binary CBOR".into());
            return;
        };
        let decoded = match fwire::decode(
            &bytes,
            usize::try_from(self.settings.fabric_max_frame_bytes).unwrap_or(usize::MAX),
        ) {
            Ok(f) => f,
            Err(e) => {
                let code = match e {
                    fwire::FabricDecodeError::TooLarge { .. } => 1009,
                    _ => 1002,
                };
                self.reject_fabric(conn, code, e.to_string());
                return;
            }
        };
        self.counters.server_messages += 1;
        if let Some(ConnState::Fabric {
            node_id: Some(id), ..
        }) = self.conns.get(&conn)
        {
            let id = id.clone();
            self.replica.seen(&id, now.mono);
        }
        let auth = match self.conns.get(&conn) {
            Some(ConnState::Fabric { auth, .. }) => auth,
            _ => return,
        };
        if matches!(auth, LinkAuth::Refused) {
            return;
        }
        let pending = matches!(auth, LinkAuth::Pending { .. });
        match decoded.msg {
            FabricMsg::Hello(h) => self.on_hello(conn, h, now),
            FabricMsg::Auth(proof) => self.on_auth(conn, proof, now),
            // Nothing but the exchange itself may arrive before it ends.
            _ if pending => self.refuse_peer(conn, Refusal::Premature, now),
            FabricMsg::Status(s) => {
                if self.replica.is_departed(&s.node_id, &s.instance_id) {
                    self.close(conn, 1008, "peer is marked departed");
                    return;
                }
                self.identify(conn, &s.node_id);
                self.peers.on_status(s, now.mono, now.wall);
            }
            FabricMsg::Beat(b) => {
                let from = match self.conns.get(&conn) {
                    Some(ConnState::Fabric {
                        node_id: Some(id), ..
                    }) => id.clone(),
                    _ => String::new(),
                };
                if !self.peers.on_beat(&from, b, now.mono, now.wall) {
                    // A conforming peer sends a full STATUS on a link first.
                    self.counters.fabric_frames_rejected += 1;
                }
            }
            FabricMsg::Goodbye(g) => self.on_goodbye(Some(conn), g, now),
            FabricMsg::Digest(d) => self.on_digest(conn, &d, now),
            FabricMsg::Delta(delta) => self.on_delta(conn, delta, now),
            FabricMsg::Summary(flood) => self.on_summary_flood(conn, flood, now),
            FabricMsg::Resync => {
                // The peer lost our digest stream: restart it in full now,
                // so its repair of us is not delayed by a gossip round.
                self.digests.link(conn).tx.resync();
                let view = self.replica.digest_entries();
                self.send_digest(conn, &view, false);
            }
        }
    }

    /// A peer's digest: bring its mirror up to date, send the repairs it
    /// needs, and answer with our own digest when asked.
    fn on_digest(&mut self, conn: ConnId, d: &fwire::Digest, now: Now) {
        let link = self.digests.link(conn);
        match link.rx.apply(d) {
            Ok(changed) => {
                let pages = self
                    .replica
                    .on_digest(&mut self.catalog, &link.rx, &changed, now.mono);
                for page in pages {
                    self.send_fabric(conn, &FabricMsg::Delta(page));
                }
            }
            // A duplicate delivery of a digest already applied.
            Err(MirrorError::Stale) => {}
            Err(MirrorError::OutOfSync) => {
                self.counters.digest_resyncs += 1;
                self.send_fabric(conn, &FabricMsg::Resync);
            }
            Err(MirrorError::Malformed(why)) => {
                self.reject_fabric(conn, 1008, format!("inconsistent digest: {why}"));
                return;
            }
        }
        if d.reply {
            let view = self.replica.digest_entries();
            self.send_digest(conn, &view, false);
        }
    }

    /// Counts a bad fabric frame and closes the connection: a peer that
    /// sends garbage or speaks another protocol version is not kept.
    fn reject_fabric(&mut self, conn: ConnId, code: u16, detail: String) {
        self.counters.fabric_frames_rejected += 1;
        self.event(Event::BadInput {
            conn: Some(conn),
            detail: detail.clone(),
        });
        self.close(conn, code, detail);
    }

    fn on_hello(&mut self, conn: ConnId, hello: Hello, now: Now) {
        if hello.node_id == self.me.node_id {
            if let Some(ConnState::Fabric {
                dialed: Some(url), ..
            }) = self.conns.get(&conn)
            {
                let url = url.clone();
                self.dialer.is_self(&url);
            }
            self.close(conn, 1008, "connected to self");
            return;
        }
        let Some(ConnState::Fabric { auth, .. }) = self.conns.get_mut(&conn) else {
            return;
        };
        let LinkAuth::Pending { hello: seen, .. } = auth else {
            if matches!(auth, LinkAuth::Refused) {
                return;
            }
            if hello.challenge.is_some() {
                self.refuse_peer(conn, Refusal::Unexpected, now);
            } else {
                self.identify(conn, &hello.node_id);
            }
            return;
        };
        if seen.is_some() {
            // One Hello per link: a second one could only try to change
            // the identity the proof is checked against.
            self.refuse_peer(conn, Refusal::Premature, now);
            return;
        }
        let challenge = hello.challenge.clone();
        *seen = Some(hello);
        let (Some(challenge), Some(key)) = (challenge, self.cluster_key.as_ref()) else {
            self.refuse_peer(conn, Refusal::Missing, now);
            return;
        };
        let proof = key.proof(
            &challenge,
            Prover {
                node_id: &self.me.node_id,
                instance_id: &self.me.instance_id,
                cluster_id: &self.me.cluster_id,
            },
        );
        self.send_fabric(conn, &FabricMsg::Auth(AuthProof { proof }));
    }

    /// The peer's answer to our challenge: open the link, or refuse it.
    fn on_auth(&mut self, conn: ConnId, proof: AuthProof, now: Now) {
        let Some(ConnState::Fabric { auth, .. }) = self.conns.get(&conn) else {
            return;
        };
        let (challenge, hello) = match auth {
            LinkAuth::Pending {
                challenge,
                hello: Some(hello),
                ..
            } => (challenge, hello),
            // A proof before the Hello it must name.
            LinkAuth::Pending { hello: None, .. } => {
                return self.refuse_peer(conn, Refusal::Premature, now)
            }
            // We asked for nothing (no key), or the link is already open.
            LinkAuth::Open => return self.refuse_peer(conn, Refusal::Unexpected, now),
            LinkAuth::Refused => return,
        };
        let prover = Prover {
            node_id: &hello.node_id,
            instance_id: &hello.instance_id,
            cluster_id: &hello.cluster_id,
        };
        let verified = self
            .cluster_key
            .as_ref()
            .is_some_and(|key| key.verify(challenge, prover, &proof.proof));
        if !verified {
            return self.refuse_peer(conn, Refusal::Failed, now);
        }
        let node_id = hello.node_id.clone();
        if let Some(ConnState::Fabric { auth, .. }) = self.conns.get_mut(&conn) {
            *auth = LinkAuth::Open;
        }
        self.identify(conn, &node_id);
        self.open_link(conn, now);
    }

    /// Refuses a fabric peer that failed the cluster-key exchange: counted,
    /// audited (`fabric_auth`, with the reason), logged, and closed with a
    /// reason that says what to fix. A link we dialled backs off like a
    /// failed dial, so a misconfigured peer is not redialled every tick.
    fn refuse_peer(&mut self, conn: ConnId, why: Refusal, now: Now) {
        let Some(ConnState::Fabric {
            dialed, auth, addr, ..
        }) = self.conns.get_mut(&conn)
        else {
            return;
        };
        // Refuse once: the link is closing, later frames on it are noise.
        // It stays known until it closes, so closing cleans up as usual.
        let hello = match std::mem::replace(auth, LinkAuth::Refused) {
            LinkAuth::Pending { hello, .. } => hello,
            LinkAuth::Open => None,
            LinkAuth::Refused => return,
        };
        let dialed = dialed.clone();
        let peer = match (&hello, &dialed, addr) {
            (Some(h), _, _) => h.node_id.clone(),
            (None, Some(url), _) => url.clone(),
            (None, None, Some(a)) => a.to_string(),
            (None, None, None) => format!("connection {conn}"),
        };
        let cluster = hello.map(|h| h.cluster_id).unwrap_or_default();
        self.counters.fabric_auth_refused.add(why);
        self.access_audit.record_peer_refusal(
            "fabric_auth",
            &peer,
            &cluster,
            why.label(),
            now.wall,
        );
        if let Some(left_out) = self.auth_log.allow(now.mono) {
            self.event(Event::BadInput {
                conn: Some(conn),
                detail: limits::with_suppressed(
                    format!("fabric peer {peer} refused: {}", why.detail()),
                    left_out,
                ),
            });
        }
        if let Some(url) = dialed {
            if self.outbound.get(&url) == Some(&conn) {
                self.outbound.remove(&url);
            }
            self.dialer.failed(&url, now.mono);
        }
        self.close(conn, 1008, why.detail());
    }

    /// Refuses the links whose key exchange ran past its deadline.
    fn expire_auth(&mut self, now: Now) {
        while let Some(&(deadline, conn)) = self.auth_deadlines.first() {
            if deadline > now.mono {
                break;
            }
            self.auth_deadlines.pop_first();
            let due = matches!(
                self.conns.get(&conn),
                Some(ConnState::Fabric {
                    auth: LinkAuth::Pending { deadline: d, .. },
                    ..
                }) if *d == deadline
            );
            if due {
                self.refuse_peer(conn, Refusal::Timeout, now);
            }
        }
    }

    fn identify(&mut self, conn: ConnId, node_id: &str) {
        if let Some(ConnState::Fabric {
            node_id: slot @ None,
            ..
        }) = self.conns.get_mut(&conn)
        {
            *slot = Some(node_id.to_string());
            self.peers.on_conn(node_id, conn);
            self.event(Event::PeerUp {
                node_id: node_id.to_string(),
            });
        }
    }

    fn on_goodbye(&mut self, from: Option<ConnId>, g: Goodbye, now: Now) {
        if g.node_id == self.me.node_id {
            return;
        }
        let (news, removed) =
            self.replica
                .depart(&mut self.catalog, &g.node_id, &g.instance_id, now.mono);
        self.publish_catalog_change(&[], &removed, now);
        if !news {
            return;
        }
        self.peers.remove(&g.node_id);
        self.event(Event::PeerDown {
            node_id: g.node_id.clone(),
            reason: g.reason.clone(),
        });
        let msg = FabricMsg::Goodbye(g);
        let conns: Vec<ConnId> = self
            .fabric_conns()
            .into_iter()
            .filter(|c| Some(*c) != from)
            .collect();
        self.send_fabric_many(conns, &msg);
    }

    fn on_delta(&mut self, from: ConnId, delta: fwire::Delta, now: Now) {
        let before = self.replica.foreign_writes;
        let applied = self
            .replica
            .on_delta(&mut self.catalog, &delta, now.wall, now.mono);
        if let Some(e) = applied.malformed {
            self.reject_fabric(from, 1008, e.to_string());
            return;
        }
        self.publish_catalog_change(&applied.upserted, &applied.removed, now);
        let foreign = self.replica.foreign_writes - before;
        if foreign > 0 {
            self.counters.entries_rejected += foreign;
            self.event(Event::BadInput {
                conn: Some(from),
                detail: format!(
                    "{foreign} entries in a delta of {} claimed another owner",
                    delta.origin
                ),
            });
            // Only owners write their entries; a peer relaying forged
            // ownership is not kept.
            self.close(from, 1008, "delta claims entries of another origin");
        }
        if applied.gap {
            // We miss versions between what we hold and this delta: ask the
            // sender for a repair instead of applying out of order.
            let view = self.replica.digest_entries();
            self.send_digest(from, &view, false);
        }
        if applied.new_instance {
            self.event(Event::Info(format!(
                "peer {} restarted (instance {})",
                delta.origin, delta.instance_id
            )));
        }
        if applied.relay {
            let msg = FabricMsg::Delta(fwire::Delta {
                flood: true,
                ..delta
            });
            let conns: Vec<ConnId> = self
                .fabric_conns()
                .into_iter()
                .filter(|c| *c != from)
                .collect();
            self.send_fabric_many(conns, &msg);
        }
    }

    fn on_closed(&mut self, conn: ConnId, now: Now) {
        self.admission.release(conn);
        self.idle.forget(conn);
        match self.conns.remove(&conn) {
            Some(ConnState::Client { .. }) => {
                self.subs.drop_conn(conn);
                self.watches.drop_conn(conn);
                let bound = self.registry.drop_conn(conn);
                if !bound.is_empty() {
                    self.event(Event::Info(format!(
                        "{} registrations withdrawn: connection {conn} closed",
                        bound.len()
                    )));
                    self.withdraw(bound, now);
                }
            }
            Some(ConnState::Fabric {
                node_id, dialed, ..
            }) => {
                self.digests.remove(conn);
                if let Some(node_id) = node_id {
                    let known = self.peers.get(&node_id).is_some();
                    self.peers
                        .on_conn_closed(&node_id, conn, now.mono, now.wall);
                    if known && !self.peers.is_connected(&node_id) {
                        self.event(Event::PeerDown {
                            node_id: node_id.clone(),
                            reason: "connection closed".into(),
                        });
                    }
                }
                if let Some(url) = dialed {
                    if self.outbound.get(&url) == Some(&conn) {
                        self.outbound.remove(&url);
                    }
                }
            }
            None => {}
        }
    }

    fn shutdown(&mut self, now: Now, reason: &str) {
        let goodbye = FabricMsg::Goodbye(Goodbye {
            node_id: self.me.node_id.clone(),
            cluster_id: self.me.cluster_id.clone(),
            instance_id: self.me.instance_id.clone(),
            reason: reason.to_string(),
            timestamp: now.wall,
        });
        let conns = self.fabric_conns();
        self.send_fabric_many(conns, &goodbye);
        let mut all: Vec<ConnId> = self.conns.keys().copied().collect();
        all.sort_unstable();
        for conn in all {
            self.close(conn, 1001, "node shutting down");
        }
        self.out.push_back(Output::Stopped);
        self.stopped = true;
    }

    /// This node's STATUS.
    fn own_status(&self, now: Now) -> Status {
        let active_clients = self
            .conns
            .values()
            .filter(|c| matches!(c, ConnState::Client { .. }))
            .count() as u64;
        Status {
            node_id: self.me.node_id.clone(),
            cluster_id: self.me.cluster_id.clone(),
            instance_id: self.me.instance_id.clone(),
            timestamp: now.wall,
            status: "ok".into(),
            active_clients,
            peer_count: self.catalog.count(crate::catalog::entry::EntryKind::Nodes) as u64,
            funs: local::function_names(&self.settings),
            locs: self.settings.resources.to_vec(),
            advertised_urls: local::advertised_urls(&self.settings, &self.me),
            region: self.settings.cache_region.clone(),
            metrics: StatusMetrics {
                messages_processed: self.counters.messages_processed,
                rpc_responses_skipped: 0,
                server_messages: self.counters.server_messages,
                other_messages: 0,
            },
        }
    }

    // ---- clients -------------------------------------------------------

    fn on_client_frame(&mut self, conn: ConnId, frame: Frame, now: Now) {
        // Replies go out while this frame is handled, at the same `now`, and
        // deliveries only reach connections with subscriptions (which are
        // never idle), so inbound frames are all the activity to record.
        self.idle.touch(conn, now.mono);
        if frame.len() as u64 > self.settings.client_max_message_bytes {
            self.counters.client_frames_rejected += 1;
            let detail = format!(
                "message of {} bytes exceeds client_max_message_bytes ({})",
                frame.len(),
                self.settings.client_max_message_bytes
            );
            self.event(Event::BadInput {
                conn: Some(conn),
                detail: detail.clone(),
            });
            self.close(conn, 1009, detail);
            return;
        }
        self.counters.messages_processed += 1;
        match client::decode(frame.as_bytes()) {
            Ok(msg) => self.on_client_message(conn, msg, now),
            Err(DecodeFailure::Reply { u, error }) => {
                self.counters.client_frames_rejected += 1;
                self.event(Event::BadInput {
                    conn: Some(conn),
                    detail: format!(
                        "{} {}",
                        error.message,
                        error.details.clone().unwrap_or_default()
                    ),
                });
                self.send(conn, Frame::Binary(client::encode_error(&u, &error).into()));
            }
            Err(DecodeFailure::Close(reason)) => {
                self.counters.client_frames_rejected += 1;
                self.event(Event::BadInput {
                    conn: Some(conn),
                    detail: reason.clone(),
                });
                self.close(conn, 1007, reason);
            }
        }
    }

    fn on_client_message(&mut self, conn: ConnId, msg: ClientMessage, now: Now) {
        match msg {
            ClientMessage::Rpc { u, cmds } => {
                if cmds.iter().any(|c| TIMED_QUERIES.contains(&c.fun.as_str())) {
                    self.timing = Some(Timed::Query);
                }
                let mut diag = Vec::new();
                let caller = match self.conns.get(&conn) {
                    Some(ConnState::Client { who, anon }) => Caller {
                        who: who.clone(),
                        anon: anon.clone(),
                        trusted: false,
                    },
                    _ => return,
                };
                let reply = self.run_client_rpc(Some(conn), &caller, &cmds, now, &mut diag);
                for line in diag {
                    self.event(Event::Diag {
                        scope: "peer_snapshot",
                        line,
                    });
                }
                // Persist before replying: a runtime that writes in output
                // order makes an acknowledged registration durable.
                self.flush_persist();
                let bytes = match reply {
                    Ok(results) => client::encode_result(&u, &results),
                    Err(e) => {
                        self.event(Event::BadInput {
                            conn: Some(conn),
                            detail: format!(
                                "rpc error {}: {}",
                                e.code,
                                e.details.clone().unwrap_or_default()
                            ),
                        });
                        client::encode_error(&u, &e)
                    }
                };
                self.send(conn, Frame::Binary(bytes.into()));
            }
            ClientMessage::Subscribe(s) => {
                let result = self
                    .subs
                    .subscribe(conn, &s.subscription_id, s.patterns.clone());
                if let Err(SubscribeError::TooMany { .. }) = result {
                    self.counters
                        .limit_hits
                        .hit(Limit::SubscriptionsPerConnection);
                }
                let err = result.err().map(|e| e.to_string());
                self.send(
                    conn,
                    Frame::Binary(client::encode_ack(&s.u, err.is_none(), err.as_deref()).into()),
                );
                if err.is_none() && s.get_backlog {
                    self.replay_summaries(
                        conn,
                        &s.subscription_id,
                        &s.patterns,
                        s.backlog_seconds,
                        now,
                    );
                }
            }
            ClientMessage::Unsubscribe { u, subscription_id } => {
                let existed = self.subs.unsubscribe(conn, &subscription_id);
                self.send(
                    conn,
                    Frame::Binary(client::encode_ack(&u, existed, None).into()),
                );
            }
            ClientMessage::Publish {
                u,
                topic,
                payload,
                headers,
                message_id,
            } => {
                if topic.starts_with("mpreg.") {
                    // Node-owned topics (discovery deltas, summaries) cannot be
                    // forged by clients (MPREG accepts them: client_protocol §10).
                    self.send(
                        conn,
                        Frame::Binary(
                            client::encode_ack(
                                &u,
                                false,
                                Some("topics under `mpreg.` are reserved for the node"),
                            )
                            .into(),
                        ),
                    );
                    return;
                }
                let message_id = message_id.unwrap_or_else(|| self.rng.ulid(now.wall));
                let msg = PubSubMessage {
                    topic,
                    payload,
                    timestamp: now.wall,
                    message_id,
                    publisher: format!("client:{conn}"),
                    headers,
                };
                self.publish(&msg);
                self.send(
                    conn,
                    Frame::Binary(client::encode_ack(&u, true, None).into()),
                );
            }
            ClientMessage::Server { u, what, .. } => {
                // A Python MPREG peer's lifecycle message. mpreg-rs nodes gossip
                // over the CBOR fabric; Python peers are acknowledged but do not
                // join the membership.
                let bytes = match what.as_str() {
                    "STATUS" => client::encode_server_reply(&u, "STATUS"),
                    "GOODBYE" => client::encode_server_reply(&u, "GOODBYE_PROCESSED"),
                    other => client::encode_error(
                        &u,
                        &RpcError {
                            code: client::codes::UNKNOWN_SERVER_MESSAGE,
                            message: format!("Unknown server message: {other}"),
                            details: None,
                        },
                    ),
                };
                self.send(conn, Frame::Binary(bytes.into()));
            }
        }
    }

    /// Delivers a message to every matching subscription.
    fn publish(&mut self, msg: &PubSubMessage) {
        for (conn, sub_id) in self.subs.matching(&msg.topic) {
            self.send(
                conn,
                Frame::Binary(client::encode_notification(&sub_id, msg).into()),
            );
        }
    }

    /// Answers one read-only command for `viewer` (after the checks of
    /// [`Node::admit`]); with `deny_all` every namespaced entry is hidden.
    /// Returns the value and the number of entries policy hid. Diagnostic
    /// lines of enabled debug scopes are appended to `diag`.
    fn answer(
        &self,
        cmd: &client::RpcCommand,
        viewer: &Viewer,
        deny_all: bool,
        now: Now,
        diag: &mut Vec<String>,
    ) -> Result<(Value, u64), RpcError> {
        self.check_route(cmd)?;
        let own_status = self.own_status(now);
        let mut access = Access::new(self.policy.engine(), viewer, &self.me.cluster_id);
        if deny_all {
            access = access.denying_all();
        }
        let catalog = match cmd.fun.as_str() {
            "catalog_query" | "cluster_map_v2" => self.query_catalog(),
            _ => &self.catalog,
        };
        let ctx = Ctx {
            settings: &self.settings,
            me: &self.me,
            catalog,
            peers: &self.peers,
            origins: &self.replica,
            own_status: &own_status,
            now,
            access,
        };
        let value = if cmd.fun == "list_peers" && self.debug_scope("peer_snapshot") {
            let mut lines = Vec::new();
            let v = api::list_peers_explained(&ctx, &cmd.payload()?, &mut |url, action| {
                lines.push(format!(
                    "[DIAG_PEER_SNAPSHOT] node={} peer={url} action={action}",
                    self.me.node_id
                ));
            })?;
            diag.extend(lines);
            v
        } else {
            api::dispatch(&ctx, cmd)?
        };
        Ok((value, ctx.access.hidden()))
    }

    /// The viewer of a request: the connection's (cluster = this node's
    /// cluster, tenant per the tenant settings), or for in-process callers
    /// whatever the request names.
    fn viewer_of(&self, caller: &Caller, payload: &Map<String, Value>) -> Viewer {
        let field = |k: &str| {
            payload
                .get(k)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        let requested_tenant = field("viewer_tenant_id");
        if caller.trusted {
            let cluster = field("viewer_cluster_id").unwrap_or(&self.me.cluster_id);
            let tenant = match requested_tenant {
                Some(t) if self.ident.tenant_mode() => Some(t.to_string()),
                _ => self.ident.effective_tenant(&caller.who, None),
            };
            return Viewer::new(cluster, tenant);
        }
        self.ident
            .viewer(&caller.who, &self.me.cluster_id, requested_tenant)
    }

    /// The request-level namespace of `fun` when the viewer may not see it:
    /// `(namespace, reason)`.
    fn namespace_denied(
        &self,
        fun: &str,
        payload: &Map<String, Value>,
        viewer: &Viewer,
    ) -> Option<(String, &'static str)> {
        if !NAMESPACE_CHECKED.contains(&fun) {
            return None;
        }
        let ns = ratelimit::limit_namespace(fun, payload)?;
        let decision = self.policy.engine().allows(&ns, viewer);
        (!decision.allowed).then(|| (ns, decision.reason.as_str()))
    }

    /// The checks every network request passes before its handler
    /// (DESIGN.md §3): the admin gate, the rate limiter, then the
    /// request-level namespace policy. Refusals are counted and (rate limit,
    /// policy) audited. `Ok(true)` means: run it, hiding every namespaced
    /// entry (the request's own namespace is denied).
    fn admit(
        &mut self,
        caller: &Caller,
        fun: &str,
        payload: &Map<String, Value>,
        viewer: &Viewer,
        now: Now,
    ) -> Result<bool, RpcError> {
        if let Err(e) = self.ident.authorize(&caller.who, fun) {
            self.counters.admin_denied += 1;
            self.access_audit
                .record_denial(fun, viewer, None, "admin_required", now.wall);
            return Err(e);
        }
        if caller.trusted {
            return Ok(self.namespace_denied(fun, payload, viewer).is_some());
        }
        if let Some(command) = ratelimit::limited_command(fun, payload) {
            let ns = ratelimit::limit_namespace(fun, payload);
            let id = caller.who.rate_limit_id(&caller.anon);
            let key = RateKey {
                viewer: &id,
                command,
                namespace: ns.as_deref(),
            };
            if !self.limiter.check(key, now.mono) {
                self.counters.rate_limited += 1;
                self.access_audit.record_denial(
                    command,
                    viewer,
                    ns.as_deref(),
                    ratelimit::RATE_LIMITED_REASON,
                    now.wall,
                );
                return Err(ratelimit::rejection(command, &id, ns.as_deref()));
            }
        }
        let Some((ns, reason)) = self.namespace_denied(fun, payload, viewer) else {
            return Ok(false);
        };
        self.counters.policy_requests_denied += 1;
        self.access_audit
            .record_denial(fun, viewer, Some(&ns), reason, now.wall);
        if fun == "catalog_watch" || fun == "summary_watch" {
            return Err(RpcError::access_denied(format!(
                "{fun} denied for namespace {ns}"
            )));
        }
        Ok(true)
    }

    /// The policy RPCs that only read (`namespace_policy_export`,
    /// `namespace_policy_audit`, `discovery_access_audit`), and
    /// `namespace_status` without recording its denial (in-process callers);
    /// `None` for other commands.
    fn read_policy_rpc(
        &self,
        fun: &str,
        payload: &Map<String, Value>,
        viewer: &Viewer,
        now: Now,
    ) -> Option<Result<Value, RpcError>> {
        Some(match fun {
            "namespace_policy_export" => {
                policy::rpc::namespace_policy_export(&self.policy, payload, now.wall)
            }
            "namespace_policy_audit" => {
                policy::rpc::namespace_policy_audit(&self.policy, payload, now.wall)
            }
            "discovery_access_audit" => {
                policy::rpc::discovery_access_audit(&self.access_audit, payload, now.wall)
            }
            "namespace_status" => policy::rpc::namespace_status(
                self.policy.engine(),
                viewer,
                &mut AccessAudit::new(0),
                |ns| self.plane.export_stats(ns),
                payload,
                now.wall,
            ),
            _ => return None,
        })
    }

    /// Runs a policy RPC ([`api::POLICY_RPCS`]) for a network or in-process
    /// caller, then persists the history if it changed.
    fn policy_rpc(
        &mut self,
        caller: &Caller,
        fun: &str,
        payload: &Map<String, Value>,
        viewer: &Viewer,
        now: Now,
    ) -> Result<Value, RpcError> {
        let principal = caller.who.principal.clone();
        let principal = principal.as_deref();
        let result = match fun {
            "namespace_status" => policy::rpc::namespace_status(
                self.policy.engine(),
                viewer,
                &mut self.access_audit,
                |ns| self.plane.export_stats(ns),
                payload,
                now.wall,
            ),
            "namespace_policy_validate" => policy::rpc::namespace_policy_validate(
                &mut self.policy,
                principal,
                payload,
                now.wall,
            ),
            "namespace_policy_apply" => {
                policy::rpc::namespace_policy_apply(&mut self.policy, principal, payload, now.wall)
            }
            "namespace_policy_rollback" => policy::rpc::namespace_policy_rollback(
                &mut self.policy,
                principal,
                payload,
                now.wall,
            ),
            other => match self.read_policy_rpc(other, payload, viewer, now) {
                Some(r) => r,
                None => Err(RpcError::not_found(other)),
            },
        };
        self.flush_policy();
        result
    }

    /// Asks the runtime to write the policy history when it changed since
    /// the last write (only with a `data_dir`).
    fn flush_policy(&mut self) {
        let revision = self.policy.revision();
        if revision == self.policy_persisted {
            return;
        }
        self.policy_persisted = revision;
        if self.settings.data_dir.is_some() {
            self.out.push_back(Output::Persist {
                name: policy::history::PERSIST_FILE.to_string(),
                bytes: self.policy.to_bytes(),
            });
        }
    }

    // ---- registrations and watches -------------------------------------

    /// Runs the commands of one client request in order, each through
    /// [`Node::admit`]. Mutating RPCs (registrations) and the policy RPCs are
    /// applied here; the rest go to the read-only handlers. A
    /// `catalog_watch` made on a connection also stores its filter, so
    /// deltas delivered to that connection are filtered by it. Diagnostic
    /// lines of enabled debug scopes are appended to `diag`.
    fn run_client_rpc(
        &mut self,
        conn: Option<ConnId>,
        caller: &Caller,
        cmds: &[client::RpcCommand],
        now: Now,
        diag: &mut Vec<String>,
    ) -> Result<client::Results, RpcError> {
        let mut results = client::Results::new();
        for cmd in cmds {
            self.check_route(cmd)?;
            // A payload that does not parse is the handler's error to report.
            let payload = cmd.payload().unwrap_or_default();
            let viewer = self.viewer_of(caller, &payload);
            let deny_all = self.admit(caller, &cmd.fun, &payload, &viewer, now)?;
            let value = if registration::is_mutating(&cmd.fun) {
                self.apply_mutation(conn, cmd, now)?.into()
            } else if api::POLICY_RPCS.contains(&cmd.fun.as_str()) {
                self.policy_rpc(caller, &cmd.fun, &payload, &viewer, now)?
                    .into()
            } else if crate::summary::NODE_RPCS.contains(&cmd.fun.as_str()) {
                self.discovery_rpc_mut(conn, &cmd.fun, &payload, &viewer, deny_all, now)?
                    .into()
            } else if let Some(v) = self.resolver_answer(cmd, &payload, &viewer, deny_all, now) {
                // Shared with the resolver cache: no copy of the answer.
                v?
            } else {
                if cmd.fun == "catalog_watch" {
                    self.check_watch_cap(conn, &payload)?;
                }
                let (value, hidden) = self.answer(cmd, &viewer, deny_all, now, diag)?;
                self.counters.policy_items_hidden += hidden;
                if let (Some(c), "catalog_watch") = (conn, cmd.fun.as_str()) {
                    // The handler accepted the payload, so it parses here too.
                    if let Ok(f) = WatchFilter::from_request(&self.me, &payload) {
                        self.watches.set_filter(c, f);
                        self.watches.set_viewer(c, viewer);
                    }
                }
                value.into()
            };
            results.insert(cmd.name.clone(), value);
        }
        self.run_resolver_refreshes(now);
        Ok(results)
    }

    /// Refuses a `catalog_watch` on `conn` that would watch a topic more
    /// than `client_max_watches_per_connection` allow (counted; the
    /// connection stays open). A payload that does not parse is left to
    /// the handler to report.
    fn check_watch_cap(
        &mut self,
        conn: Option<ConnId>,
        payload: &Map<String, Value>,
    ) -> Result<(), RpcError> {
        let Some(c) = conn else { return Ok(()) };
        let Ok(filter) = WatchFilter::from_request(&self.me, payload) else {
            return Ok(());
        };
        let max = self.settings.client_max_watches_per_connection;
        let cap = usize::try_from(max).unwrap_or(usize::MAX);
        if self.watches.may_watch(c, &filter.topic(), cap) {
            return Ok(());
        }
        self.counters.limit_hits.hit(Limit::WatchesPerConnection);
        Err(RpcError::failed(format!(
            "watch limit of {max} per connection reached \
             (client_max_watches_per_connection)"
        )))
    }

    /// Registrations are local to the node a client talks to: a command
    /// aimed at another cluster has no route (1001), as for queries.
    fn check_route(&self, cmd: &client::RpcCommand) -> Result<(), RpcError> {
        match cmd.target_cluster.as_deref() {
            Some(target) if !target.is_empty() && target != self.me.cluster_id => Err(RpcError {
                code: client::codes::COMMAND_NOT_FOUND,
                message: "Command not found".into(),
                details: Some(format!("no route to cluster {target} for {}", cmd.fun)),
            }),
            _ => Ok(()),
        }
    }

    /// Applies one mutating RPC made on `conn`.
    fn apply_mutation(
        &mut self,
        conn: Option<ConnId>,
        cmd: &client::RpcCommand,
        now: Now,
    ) -> Result<Value, RpcError> {
        let payload = cmd.payload()?;
        let rc = RegisterCtx {
            settings: &self.settings,
            me: &self.me,
            now,
            conn,
        };
        match cmd.fun.as_str() {
            "catalog_register" => {
                let id = self.rng.ulid(now.wall);
                let req = registration::parse_catalog_register(&rc, &payload, &id)?;
                let (reg, refreshed) = self.register(req, id, conn, now)?;
                Ok(registration::catalog_register_result(&reg, refreshed, now))
            }
            "dns_register" => {
                let req = registration::parse_dns_register(&rc, &payload)?;
                let id = registration::uuid4(self.rng.next_u128());
                let service = req.dns_service.clone().unwrap_or(Value::Null);
                self.register(req, id.clone(), conn, now)?;
                Ok(registration::dns_register_result(&id, &service, now))
            }
            "catalog_unregister" => {
                let key = match registration::parse_catalog_unregister(&rc, &payload)? {
                    UnregisterTarget::Key(k) => Some(k),
                    UnregisterTarget::Id(id) => self.registry.key_of_id(&id),
                };
                let removed = key.is_some_and(|k| self.unregister(&k, now));
                Ok(registration::unregister_result(removed, now))
            }
            "dns_unregister" => {
                let key = registration::parse_dns_unregister(&rc, &payload)?;
                let removed = self.unregister(&key, now);
                Ok(registration::unregister_result(removed, now))
            }
            other => Err(RpcError::not_found(other)),
        }
    }

    /// Registers (or refreshes) a validated request. A `catalog_register`
    /// refresh keeps its registration id; `dns_register` answers a new id
    /// every time, as MPREG does.
    fn register(
        &mut self,
        req: RegisterRequest,
        new_id: String,
        conn: Option<ConnId>,
        now: Now,
    ) -> Result<(Registration, bool), RpcError> {
        let fun = match req.source {
            registry::Source::Catalog => "catalog_register",
            registry::Source::Dns => "dns_register",
        };
        let key = req.entry.key();
        let registration_id = match self.registry.get(&key) {
            Some(old) if req.source == registry::Source::Catalog && old.source == req.source => {
                old.registration_id.clone()
            }
            _ => new_id,
        };
        let reg = Registration {
            registration_id,
            source: req.source,
            entry: req.entry,
            lease: req.lease_ttl_seconds.map(|t| Lease::starting(now.mono, t)),
            conn: if req.bind_to_connection { conn } else { None },
            persist: req.persist,
            registered_at: now.wall,
        };
        let refreshed = self
            .install(reg, now)
            .map_err(|e| RpcError::failed(format!("{fun}: {e}")))?;
        match self.registry.get(&key) {
            Some(reg) => Ok((reg.clone(), refreshed)),
            // `install` succeeded, so the registration is there.
            None => Err(RpcError::failed(format!("{fun}: registration lost"))),
        }
    }

    /// Records a registration and puts its entry into the catalog through
    /// the replica (versioned, flooded on the next flush), unless it only
    /// refreshed a registration whose entry is unchanged. True for such a
    /// refresh. Refuses keys of the node's configuration and topic ids that
    /// another node holds.
    fn install(&mut self, reg: Registration, now: Now) -> Result<bool, String> {
        let key = reg.entry.key();
        if self.registry.is_reserved(&key) {
            return Err(format!(
                "this {} entry is part of the node's configuration and cannot be registered over RPC",
                key.kind()
            ));
        }
        if let Some(owner) = self.catalog.origin_of(&key) {
            if owner != self.me.node_id {
                return Err(format!("the key is already held by node {owner}"));
            }
        }
        let entry = reg.entry.clone();
        match self.registry.upsert(reg) {
            Upsert::Refreshed if self.catalog.get(&key).is_some() => return Ok(true),
            Upsert::Refreshed | Upsert::New => {
                let mut entry = entry;
                entry.refresh(now.wall);
                if let Err(e) = self
                    .replica
                    .put_own(&mut self.catalog, entry, now.wall, now.mono)
                {
                    self.registry.remove(&key);
                    return Err(e);
                }
            }
            Upsert::Changed { previous } => {
                if let Err(e) = self
                    .replica
                    .put_own(&mut self.catalog, entry, now.wall, now.mono)
                {
                    // `put_own` dropped the old catalog copy: restore the
                    // previous registration and its entry.
                    let mut previous = *previous;
                    previous.entry.refresh(now.wall);
                    let old = previous.entry.clone();
                    self.registry.upsert(previous);
                    if let Err(e2) =
                        self.replica
                            .put_own(&mut self.catalog, old, now.wall, now.mono)
                    {
                        self.event(Event::Info(format!(
                            "previous registration could not be restored: {e2}"
                        )));
                    }
                    return Err(e);
                }
            }
        }
        self.publish_catalog_change(std::slice::from_ref(&key), &[], now);
        // A registration may bring a shorter TTL than any entry before it.
        self.timers.refresh = self.timers.refresh.min(now.mono + self.refresh_interval());
        Ok(false)
    }

    /// Withdraws the registration of `key`; false when there is none.
    fn unregister(&mut self, key: &EntryKey, now: Now) -> bool {
        match self.registry.remove(key) {
            Some(reg) => {
                self.withdraw(vec![reg], now);
                true
            }
            None => false,
        }
    }

    /// Removes ended registrations' entries (versioned tombstones, flooded
    /// on the next flush) and tells the watchers.
    fn withdraw(&mut self, regs: Vec<Registration>, now: Now) {
        let mut removed = Vec::with_capacity(regs.len());
        for reg in regs {
            if let Some(e) = self
                .replica
                .remove_own(&mut self.catalog, &reg.entry.key(), now.mono)
            {
                removed.push(e);
            }
        }
        self.publish_catalog_change(&[], &removed, now);
    }

    /// A persisted file read back at start.
    fn on_restored(&mut self, name: &str, bytes: &[u8], now: Now) {
        if name == policy::history::PERSIST_FILE {
            self.restore_policy(bytes, now);
            return;
        }
        if name != registry::PERSIST_FILE {
            self.event(Event::Info(format!(
                "ignoring restored file {name}: not one this node writes"
            )));
            return;
        }
        let (restored, bad) =
            match registry::decode_snapshot(bytes, &self.me.node_id, &self.me.cluster_id, now.wall)
            {
                Ok(x) => x,
                Err(e) => {
                    self.event(Event::BadInput {
                        conn: None,
                        detail: format!("cannot restore registrations: {e}"),
                    });
                    return;
                }
            };
        for detail in bad {
            self.event(Event::BadInput {
                conn: None,
                detail: format!("skipped a persisted registration: {detail}"),
            });
        }
        let mut count = 0usize;
        for r in restored {
            let key = r.entry.key();
            if self.registry.get(&key).is_some() {
                continue; // a live registration is newer than the file
            }
            let reg = Registration {
                registration_id: r.registration_id,
                source: r.source,
                entry: r.entry,
                lease: r.lease_ttl_seconds.map(|t| {
                    Lease::starting(
                        now.mono,
                        t.clamp(registration::MIN_TTL_SECONDS, registration::MAX_TTL_SECONDS),
                    )
                }),
                conn: None,
                persist: true,
                registered_at: r.registered_at,
            };
            match self.install(reg, now) {
                Ok(_) => count += 1,
                Err(e) => self.event(Event::BadInput {
                    conn: None,
                    detail: format!("skipped a persisted registration: {e}"),
                }),
            }
        }
        self.event(Event::Info(format!(
            "restored {count} registrations from {name}"
        )));
    }

    /// Puts back the policy history written before a restart: the last
    /// applied (or rolled back) version is enforced again, unless the
    /// settings' policy changed since, which then becomes a new version. A
    /// file that does not decode is reported and the settings' policy stays.
    fn restore_policy(&mut self, bytes: &[u8], now: Now) {
        match PolicyHistory::restore(bytes, &self.settings, now.wall) {
            Ok(history) => {
                let version = history.current().version;
                self.policy = history;
                // Its revision counts from 0 again: the DNS replies cached
                // under the old history's revisions must go.
                self.dns.forget_replies();
                // Revision 0: written back only if restoring appended the
                // settings' changed policy as a new version.
                self.policy_persisted = 0;
                self.event(Event::Info(format!(
                    "restored namespace policy history: version {version} enforced"
                )));
            }
            Err(e) => self.event(Event::BadInput {
                conn: None,
                detail: format!(
                    "cannot restore {}: {e}; the settings' policy is enforced",
                    policy::history::PERSIST_FILE
                ),
            }),
        }
    }

    /// Asks the runtime to write the persisted registrations when they
    /// changed (only with a `data_dir`).
    fn flush_persist(&mut self) {
        if let Some(bytes) = self.registry.take_snapshot() {
            if self.settings.data_dir.is_some() {
                self.out.push_back(Output::Persist {
                    name: registry::PERSIST_FILE.to_string(),
                    bytes,
                });
            }
        }
    }

    /// Publishes MPREG's catalog delta notifications
    /// (`mpreg.discovery.delta[.<ns>]`, [`watch::delta_notifications`]) for
    /// one change of the catalog: `upserted` are keys now in the catalog,
    /// `removed` the entries taken out. Each subscriber gets the delta
    /// filtered by its own `catalog_watch` request, within its delivery
    /// budget ([`WatchDelivery`]). Large changes are split into deltas of
    /// [`DELTA_CHUNK_ENTRIES`], one per origin cluster.
    fn publish_catalog_change(&mut self, upserted: &[EntryKey], removed: &[Entry], now: Now) {
        self.feed_resolver(upserted, removed, now);
        if self.subs.is_empty() || (upserted.is_empty() && removed.is_empty()) {
            return;
        }
        self.send_due_resyncs(now);
        let mut by_cluster: BTreeMap<&str, Vec<(bool, &Entry)>> = BTreeMap::new();
        for key in upserted {
            if let Some(e) = self.catalog.get(key) {
                by_cluster
                    .entry(e.cluster_id())
                    .or_default()
                    .push((true, e));
            }
        }
        for e in removed {
            by_cluster
                .entry(e.cluster_id())
                .or_default()
                .push((false, e));
        }
        let subs = &self.subs;
        let watches = &self.watches;
        let rng = &mut self.rng;
        let me = &self.me;
        let conns = &self.conns;
        let ident = &self.ident;
        // With policy enabled every delivery is checked per entry for its
        // subscriber's viewer (MPREG checks only the watch request).
        let engine = self.policy.engine().enabled().then(|| self.policy.engine());
        let mut deliveries: Vec<(ConnId, String, PubSubMessage)> = Vec::new();
        for (cluster, changes) in &by_cluster {
            for chunk in changes.chunks(DELTA_CHUNK_ENTRIES) {
                let adds: Vec<&Entry> = chunk.iter().filter(|c| c.0).map(|c| c.1).collect();
                let rems: Vec<&Entry> = chunk.iter().filter(|c| !c.0).map(|c| c.1).collect();
                let sent_at = adds
                    .iter()
                    .map(|e| e.advertised_at())
                    .fold(None, |m: Option<f64>, a| Some(m.map_or(a, |m| m.max(a))))
                    .unwrap_or(now.wall);
                let change = CatalogChange {
                    origin_cluster: cluster,
                    sent_at,
                    upserted: adds,
                    removed: rems,
                };
                let update_id = rng.ulid(now.wall);
                let publisher = DeltaPublisher {
                    node_id: &me.node_id,
                    cluster_id: &me.cluster_id,
                    update_id: &update_id,
                    published_at: now.wall,
                };
                let headers = watch::delta_headers(&publisher);
                let notes = watch::delta_notifications(&change, &publisher, |t| {
                    !subs.matching(t).is_empty()
                });
                for (i, note) in notes.into_iter().enumerate() {
                    let targets = subs.matching(&note.topic);
                    if targets.is_empty() {
                        continue;
                    }
                    let message_id = if i == 0 {
                        update_id.clone()
                    } else {
                        rng.ulid(now.wall)
                    };
                    for (conn, sub_id) in targets {
                        let payload = match engine {
                            Some(engine) => {
                                let viewer = match (watches.viewer(conn), conns.get(&conn)) {
                                    (Some(v), _) => v.clone(),
                                    (None, Some(ConnState::Client { who, .. })) => {
                                        ident.viewer(who, &me.cluster_id, None)
                                    }
                                    _ => continue,
                                };
                                let access = Access::new(engine, &viewer, &me.cluster_id);
                                let keep = |e: &&Entry| access.entry_visible(e);
                                let visible = CatalogChange {
                                    origin_cluster: change.origin_cluster,
                                    sent_at: change.sent_at,
                                    upserted: change
                                        .upserted
                                        .iter()
                                        .copied()
                                        .filter(keep)
                                        .collect(),
                                    removed: change.removed.iter().copied().filter(keep).collect(),
                                };
                                let filter = watches.filter_for(conn, &note.topic);
                                watch::delta_message(&visible, &publisher, &filter)
                            }
                            None => match watches.narrowing_filter(conn, &note.topic) {
                                Some(f) => watch::delta_message(&change, &publisher, f),
                                None => Some(note.payload.clone()),
                            },
                        };
                        let Some(payload) = payload else {
                            continue;
                        };
                        deliveries.push((
                            conn,
                            sub_id,
                            PubSubMessage {
                                topic: note.topic.clone(),
                                payload,
                                timestamp: now.wall,
                                message_id: message_id.clone(),
                                publisher: me.node_id.clone(),
                                headers: headers.clone(),
                            },
                        ));
                    }
                }
            }
        }
        for (conn, sub_id, msg) in deliveries {
            let bytes = client::encode_notification(&sub_id, &msg);
            if self
                .watches
                .admit(conn, &sub_id, &msg.topic, bytes.len(), now)
            {
                self.send(conn, Frame::Binary(bytes.into()));
            }
        }
    }

    /// Sends the resync hints of subscriptions that missed deltas in a
    /// budget window that has ended.
    fn send_due_resyncs(&mut self, now: Now) {
        for (conn, sub_id, missed) in self.watches.due_resyncs(now.mono) {
            if !self.conns.contains_key(&conn) {
                continue;
            }
            let id = self.rng.ulid(now.wall);
            let msg = watch_delivery::resync_message(
                &missed,
                &self.me.node_id,
                &self.me.cluster_id,
                id,
                now,
            );
            self.event(Event::Info(format!(
                "watch subscription {sub_id} on connection {conn} missed {} deltas; resync hint sent",
                missed.count
            )));
            self.send(
                conn,
                Frame::Binary(client::encode_notification(&sub_id, &msg).into()),
            );
        }
    }
}

#[cfg(test)]
#[path = "node_policy_tests.rs"]
mod policy_tests;

#[cfg(test)]
#[path = "node_auth_tests.rs"]
mod auth_tests;

#[cfg(test)]
#[path = "node_limits_tests.rs"]
mod limits_tests;
