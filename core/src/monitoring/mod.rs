//! The monitoring HTTP endpoints (`discovery_logic.md` §9,
//! `client_protocol.md` §4): a pure function of one request and a read-only
//! [`MonitoringView`] of the node at `now`, returning status, content type
//! and body. The node fills the view ([`crate::Node`] answers
//! `Input::Http`); the runtimes only move bytes ([`http`]).
//!
//! | GET | body |
//! |---|---|
//! | `/` | endpoint index |
//! | `/health` (`/healthz`) | liveness: node, cluster, instance, uptime, peer counts |
//! | `/metrics` | Prometheus text exposition ([`exposition`]) |
//! | `/discovery/summary` | `{status:"ok", summary_export, timestamp}` |
//! | `/discovery/cache` | `{status:"ok", resolver_cache, summary_cache, timestamp}` |
//! | `/discovery/policy` | `{status:"ok", policy, timestamp}` |
//! | `/discovery/lag` | `{status:"ok", lag, timestamp}` |
//! | `/dns/metrics` | `{status:"ok", dns_gateway, timestamp}` |
//!
//! With `monitoring_auth_token` set, every GET must present the token
//! (`Authorization: Bearer <token>` or `X-Monitoring-Token: <token>`) or
//! gets 401; CORS preflights and unknown paths answer as without it.
//!
//! With `monitoring_enabled = false` every path is 404 (the runtimes open
//! no monitoring listener; plain GETs on the client port get that answer).
//!
//! A subsystem the node does not run (summary export, resolver cache,
//! summary cache) answers MPREG's `{enabled:false}` form. Unknown paths are
//! 404, methods other than GET 405 (OPTIONS is a CORS preflight when CORS is
//! on), both as `{status:"error", message}`.
//!
//! Policy (DESIGN.md §5: "policy is enforced on every path, ... monitoring"):
//! when discovery credentials are configured, `/discovery/policy` shows the
//! rule contents only to a request that presents an admin credential
//! (`Authorization: Bearer` / `X-API-Key`, the same credentials and admin
//! gate as `namespace_policy_export`); others get the counts with
//! `rules: []` and `rules_redacted: true`.

pub mod exposition;
pub mod http;
pub mod latency;

use serde_json::{json, Map, Value};

use crate::audit::AccessAudit;
use crate::catalog::entry::EntryKind;
use crate::config::Settings;
use crate::dns::DnsStats;
use crate::fabric::auth::Refusal;
use crate::fabric::traffic::MsgKind;
use crate::identity::{IdentityConfig, Role};
use crate::limits::Limit;
use crate::node::{Counters, Identity};
use crate::policy::{self, PolicyHistory};
use exposition::{Exposition, Kind};

/// `Content-Type` of the JSON endpoints.
pub const JSON: &str = "application/json";

/// The endpoints, with MPREG's descriptions for its four.
pub const ENDPOINTS: &[(&str, &str)] = &[
    ("/", "Endpoint index"),
    ("/health", "Liveness: node, cluster, uptime and peer counts"),
    (
        "/metrics",
        "Prometheus metrics (text exposition format 0.0.4)",
    ),
    ("/discovery/summary", "Discovery summary export status"),
    ("/discovery/cache", "Discovery resolver cache status"),
    (
        "/discovery/policy",
        "Namespace policy status and audit summary",
    ),
    ("/discovery/lag", "Discovery delta and summary export lag"),
    ("/dns/metrics", "DNS gateway status and counters"),
];

/// Peer counts for `/health` and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerCounts {
    /// Peers with an open fabric connection.
    pub connected: usize,
    /// Remote nodes whose state this node holds (live views).
    pub known: usize,
    /// Known nodes currently suspected by the failure detector.
    pub suspected: usize,
    /// Nodes declared dead (heartbeat timeout), remembered for the
    /// tombstone horizon.
    pub dead: usize,
    /// Nodes that said GOODBYE, remembered for the tombstone horizon.
    pub departed: usize,
}

/// The adaptive dial scheduler's last tick, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DialGauges {
    /// Distinct dial candidates.
    pub targets: usize,
    /// Candidates connected in that tick's view.
    pub connected: usize,
    /// The mesh target after the exploration raise.
    pub desired_connected: usize,
    /// `discovery_ratio` of that tick.
    pub discovery_ratio: f64,
    /// Dials in flight.
    pub in_flight: usize,
    /// Ticks that wanted to dial but were held back by `desired_connected`.
    pub saturated_ticks: u64,
}

/// Everything the endpoints read, borrowed from the node for one request.
pub struct MonitoringView<'a> {
    /// Who the node is.
    pub me: &'a Identity,
    /// Effective settings.
    pub settings: &'a Settings,
    /// Message and rejection counters.
    pub counters: &'a Counters,
    /// Peer counts.
    pub peers: PeerCounts,
    /// Catalog entries per kind, indexed by [`EntryKind::index`].
    pub catalog: [usize; EntryKind::COUNT],
    /// Registrations made over RPC.
    pub registrations: usize,
    /// DNS gateway counters.
    pub dns: &'a DnsStats,
    /// The enforced policy with its history and audit.
    pub policy: &'a PolicyHistory,
    /// Access-audit ring (denials).
    pub access_audit: &'a AccessAudit,
    /// Credentials and admin gate (who may see policy rules).
    pub ident: &'a IdentityConfig,
    /// The dial scheduler, once it ticked.
    pub dial: Option<DialGauges>,
    /// Summary exporter snapshot (`SummaryExportSnapshot`), when the node
    /// runs one.
    pub summary_export: Option<Value>,
    /// Resolver cache stats (`resolver_cache_stats` result), when the node
    /// runs in resolver mode.
    pub resolver_cache: Option<Value>,
    /// Summary cache stats (`SummaryCacheStats`), when the node runs a
    /// summary resolver.
    pub summary_cache: Option<Value>,
    /// The node's own `DiscoveryLagStatus`, when it builds one; otherwise
    /// `/discovery/lag` derives it from the two snapshots above.
    pub lag: Option<Value>,
    /// Server-side latency of discovery and DNS queries.
    pub latency: &'a latency::Latencies,
    /// Wall clock of the request, Unix seconds.
    pub now: f64,
}

/// One request, as the runtime parsed it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Method as sent.
    pub method: &'a str,
    /// Path without query.
    pub path: &'a str,
    /// Query string (unused by the endpoints today; kept for the contract).
    pub query: &'a str,
    /// Headers, names lower-cased.
    pub headers: &'a [(String, String)],
}

/// One answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type` of the body.
    pub content_type: &'static str,
    /// The body.
    pub body: Vec<u8>,
    /// Extra headers (CORS, `Allow`).
    pub headers: Vec<(String, String)>,
}

impl Response {
    fn json(status: u16, value: &Value) -> Response {
        Response {
            status,
            content_type: JSON,
            body: value.to_string().into_bytes(),
            headers: Vec::new(),
        }
    }

    fn error(status: u16, message: String) -> Response {
        Response::json(status, &json!({"status": "error", "message": message}))
    }
}

/// Where a runtime binds the monitoring listener: `monitoring_host`
/// (default the node's `host`) and `monitoring_port` (unset: port 0, a free
/// one, as MPREG auto-allocates it); `None` when `monitoring_enabled` is off.
pub fn listen_address(settings: &Settings) -> Option<String> {
    if !settings.monitoring_enabled {
        return None;
    }
    let host = settings
        .monitoring_host
        .as_deref()
        .unwrap_or(&settings.host);
    Some(format!("{host}:{}", settings.monitoring_port.unwrap_or(0)))
}

/// Header that carries the monitoring token when `Authorization` is taken
/// by an admin credential (for `/discovery/policy`).
pub const MONITORING_TOKEN_HEADER: &str = "x-monitoring-token";

/// Whether the request carries `token` as `Authorization: Bearer <token>`
/// or in [`MONITORING_TOKEN_HEADER`]. Compared as SHA-256 digests, so the
/// time taken says nothing about how much of a guess was right.
fn presents_token(headers: &[(String, String)], token: &str) -> bool {
    use sha2::{Digest, Sha256};
    let want = Sha256::digest(token.as_bytes());
    let offered = headers
        .iter()
        .filter_map(|(name, value)| match name.as_str() {
            "authorization" => {
                let (scheme, rest) = value.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            }
            MONITORING_TOKEN_HEADER => Some(value.trim()),
            _ => None,
        });
    let mut ok = false;
    for candidate in offered {
        let got = Sha256::digest(candidate.as_bytes());
        let diff = want
            .iter()
            .zip(got.iter())
            .fold(0u8, |d, (a, b)| d | (a ^ b));
        ok |= diff == 0;
    }
    ok
}

/// Answers one request from `view`.
pub fn respond(view: &MonitoringView<'_>, req: &Request<'_>) -> Response {
    let mut resp = route(view, req);
    if view.settings.monitoring_enable_cors {
        resp.headers
            .push(("Access-Control-Allow-Origin".into(), "*".into()));
    }
    resp
}

fn route(view: &MonitoringView<'_>, req: &Request<'_>) -> Response {
    if !view.settings.monitoring_enabled {
        // The runtimes open no monitoring listener then; plain GETs on the
        // client port get this instead of the data.
        return Response::error(
            404,
            "monitoring is disabled on this node (monitoring_enabled = false)".into(),
        );
    }
    // `/discovery/lag/` is `/discovery/lag`; the index stays `/`.
    let path = match req.path.trim_end_matches('/') {
        "" => "/",
        p => p,
    };
    let known = path == "/healthz" || ENDPOINTS.iter().any(|(p, _)| *p == path);
    if !known {
        let mut body = json!({
            "status": "error",
            "message": format!("no monitoring endpoint at {path}"),
        });
        body["endpoints"] = endpoint_list();
        return Response::json(404, &body);
    }
    if req.method == "OPTIONS" && view.settings.monitoring_enable_cors {
        return Response {
            status: 204,
            content_type: "",
            body: Vec::new(),
            headers: vec![
                ("Access-Control-Allow-Methods".into(), "GET, OPTIONS".into()),
                (
                    "Access-Control-Allow-Headers".into(),
                    "Authorization, X-API-Key, X-Monitoring-Token".into(),
                ),
            ],
        };
    }
    if req.method != "GET" {
        let mut r = Response::error(
            405,
            format!(
                "method {} not allowed: monitoring endpoints answer GET",
                req.method
            ),
        );
        r.headers.push(("Allow".into(), "GET".into()));
        return r;
    }
    if let Some(token) = &view.settings.monitoring_auth_token {
        if !presents_token(req.headers, token.expose()) {
            let mut r = Response::error(
                401,
                "monitoring requires the monitoring_auth_token: send Authorization: Bearer <token> or X-Monitoring-Token".into(),
            );
            r.headers
                .push(("WWW-Authenticate".into(), "Bearer realm=\"mpreg\"".into()));
            return r;
        }
    }
    let now = view.now;
    match path {
        "/" => Response::json(
            200,
            &json!({
                "status": "ok",
                "node_id": view.me.node_id,
                "endpoints": endpoint_list(),
                "timestamp": now,
            }),
        ),
        "/health" | "/healthz" => Response::json(200, &health(view)),
        "/metrics" => Response {
            status: 200,
            content_type: exposition::CONTENT_TYPE,
            body: metrics(view).into_bytes(),
            headers: Vec::new(),
        },
        "/discovery/summary" => ok("summary_export", summary_export(view), now),
        "/discovery/cache" => Response::json(
            200,
            &json!({
                "status": "ok",
                "resolver_cache": disabled_or(&view.resolver_cache),
                "summary_cache": disabled_or(&view.summary_cache),
                "timestamp": now,
            }),
        ),
        "/discovery/policy" => ok("policy", policy_view(view, req), now),
        "/discovery/lag" => ok("lag", lag(view), now),
        "/dns/metrics" => ok("dns_gateway", dns_gateway(view), now),
        // `known` covers exactly the arms above.
        other => Response::error(404, format!("no monitoring endpoint at {other}")),
    }
}

fn ok(key: &str, value: Value, now: f64) -> Response {
    let mut body = Map::new();
    body.insert("status".into(), json!("ok"));
    body.insert(key.into(), value);
    body.insert("timestamp".into(), json!(now));
    Response::json(200, &Value::Object(body))
}

fn endpoint_list() -> Value {
    ENDPOINTS
        .iter()
        .map(|(path, description)| json!({"path": path, "description": description}))
        .collect()
}

/// MPREG's answer for a provider the node does not run.
fn disabled_or(v: &Option<Value>) -> Value {
    v.clone().unwrap_or_else(|| json!({"enabled": false}))
}

fn summary_export(view: &MonitoringView<'_>) -> Value {
    disabled_or(&view.summary_export)
}

fn health(view: &MonitoringView<'_>) -> Value {
    let p = view.peers;
    json!({
        "status": "ok",
        "node_id": view.me.node_id,
        "cluster_id": view.me.cluster_id,
        "instance_id": view.me.instance_id,
        "name": view.settings.name,
        "started_at": view.me.started_at,
        "uptime_seconds": uptime(view),
        "peers": {
            "connected": p.connected,
            "known": p.known,
            "suspected": p.suspected,
            "dead": p.dead,
            "departed": p.departed,
        },
        "catalog_entries": view.catalog.iter().sum::<usize>(),
        "timestamp": view.now,
    })
}

fn uptime(view: &MonitoringView<'_>) -> f64 {
    (view.now - view.me.started_at).max(0.0)
}

/// `DiscoveryPolicyStatus`, with the rules withheld from a request that does
/// not present an admin credential while credentials are configured.
fn policy_view(view: &MonitoringView<'_>, req: &Request<'_>) -> Value {
    let mut status = policy::rpc::policy_status(view.policy, view.access_audit, view.now);
    let may_see_rules = !view.ident.credentials_configured()
        || view.ident.identify(req.headers).role == Role::Admin;
    if !may_see_rules {
        status["rules"] = json!([]);
        status["rules_redacted"] = json!(true);
    }
    status
}

/// `DiscoveryLagStatus` (`discovery_logic.md` §3.8), the node's own when it
/// gives one. Otherwise derived: lags are `now` minus
/// the last applied delta / the last export tick, from the resolver and
/// exporter snapshots; fields without a source are omitted.
fn lag(view: &MonitoringView<'_>) -> Value {
    if let Some(lag) = &view.lag {
        return lag.clone();
    }
    let enabled = |v: &Option<Value>| {
        v.as_ref()
            .and_then(|v| v.get("enabled"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    };
    let mut lag = Map::new();
    lag.insert("generated_at".into(), json!(view.now));
    lag.insert(
        "resolver_enabled".into(),
        json!(enabled(&view.resolver_cache)),
    );
    lag.insert(
        "summary_export_enabled".into(),
        json!(enabled(&view.summary_export)),
    );
    let stats = view.resolver_cache.as_ref().and_then(|v| v.get("stats"));
    let at = |v: Option<&Value>, key: &str| v.and_then(|v| v.get(key)).and_then(Value::as_f64);
    if let Some(t) = at(stats, "last_delta_at") {
        lag.insert("last_delta_at".into(), json!(t));
        lag.insert("delta_lag_seconds".into(), json!((view.now - t).max(0.0)));
    }
    if let Some(t) = at(stats, "last_seed_at") {
        lag.insert("last_seed_at".into(), json!(t));
    }
    if let Some(t) = at(view.summary_export.as_ref(), "last_export_at") {
        lag.insert("last_summary_export_at".into(), json!(t));
        lag.insert(
            "summary_export_lag_seconds".into(),
            json!((view.now - t).max(0.0)),
        );
    }
    Value::Object(lag)
}

/// MPREG's DNS metrics shape (`client_protocol.md` §4) plus our per-rcode
/// counters. Ports are the configured ones (`null` = chosen at bind time,
/// printed by the server as `MPREG_DNS_PORT`).
fn dns_gateway(view: &MonitoringView<'_>) -> Value {
    let s = view.settings;
    if !s.dns_gateway_enabled {
        return json!({"enabled": false});
    }
    let d = view.dns;
    json!({
        "enabled": true,
        "status": "running",
        "udp_port": s.dns_udp_port,
        "tcp_port": s.dns_tcp_port,
        "zones": s.dns_zones,
        "metrics": {
            "total_queries": d.queries,
            "udp_queries": d.udp_queries,
            "tcp_queries": d.tcp_queries,
            "nxdomain_responses": d.nxdomain,
            "error_responses": d.refused + d.formerr + d.notimp + d.other_errors,
            "answered": d.answered,
            "nodata_responses": d.nodata,
            "refused_responses": d.refused,
            "truncated_responses": d.truncated,
            "dropped": d.dropped,
            "rate_limited": d.rate_limited,
            // Ours: replies reused for a byte-identical query.
            "cache_hits": d.cache_hits,
            // Ours: the node's time per query, bucket upper bounds (ms).
            "latency_ms": latency_json(&view.latency.dns),
        },
    })
}

/// p50 / p99 (bucket upper bounds, ms), mean and count of a histogram;
/// the quantiles are null before the first observation.
fn latency_json(h: &latency::LatencyHistogram) -> Value {
    let finite = |v: Option<f64>| v.filter(|v| v.is_finite());
    json!({
        "count": h.count(),
        "mean": h.mean_ms(),
        "p50_le": finite(h.quantile_upper_ms(0.5)),
        "p99_le": finite(h.quantile_upper_ms(0.99)),
    })
}

/// The numeric field `key` of a JSON object, if present.
fn num(v: Option<&Value>, key: &str) -> Option<f64> {
    v.and_then(|v| v.get(key)).and_then(Value::as_f64)
}

/// The `/metrics` exposition.
fn metrics(view: &MonitoringView<'_>) -> String {
    let mut e = Exposition::new();
    let c = view.counters;
    let me = view.me;
    e.family(
        "mpreg_node_info",
        Kind::Gauge,
        "Identity of this node (always 1).",
    )
    .sample(
        &[
            ("node_id", &me.node_id),
            ("cluster_id", &me.cluster_id),
            ("instance_id", &me.instance_id),
        ],
        1.0,
    );
    e.single(
        "mpreg_uptime_seconds",
        Kind::Gauge,
        "Seconds since this instance started.",
        uptime(view),
    );
    let counters: [(&str, &str, u64); 11] = [
        (
            "mpreg_client_messages_total",
            "Client (JSON) messages handled.",
            c.messages_processed,
        ),
        (
            "mpreg_fabric_messages_total",
            "Fabric (CBOR) messages handled.",
            c.server_messages,
        ),
        (
            "mpreg_client_frames_rejected_total",
            "Client frames rejected (malformed, oversized, bad envelope).",
            c.client_frames_rejected,
        ),
        (
            "mpreg_fabric_frames_rejected_total",
            "Fabric frames rejected (undecodable, oversized, wrong version).",
            c.fabric_frames_rejected,
        ),
        (
            "mpreg_fabric_entries_rejected_total",
            "Gossiped entries rejected (not owned by their origin).",
            c.entries_rejected,
        ),
        (
            "mpreg_policy_items_hidden_total",
            "Entries left out of answers by per-item policy filtering.",
            c.policy_items_hidden,
        ),
        (
            "mpreg_policy_requests_denied_total",
            "Requests denied by namespace policy.",
            c.policy_requests_denied,
        ),
        (
            "mpreg_admin_denied_total",
            "Requests refused by the admin gate (403).",
            c.admin_denied,
        ),
        (
            "mpreg_discovery_rate_limited_total",
            "Discovery requests refused by the rate limiter (429).",
            c.rate_limited,
        ),
        (
            "mpreg_summary_signature_rejected_total",
            "Summary floods dropped for a missing or wrong signature.",
            c.summary_signature_rejected,
        ),
        (
            "mpreg_client_tls_refused_total",
            "Plain client connections refused because client_tls_required is set.",
            c.client_tls_refused,
        ),
    ];
    for (name, help, value) in counters {
        e.single(name, Kind::Counter, help, value as f64);
    }
    e.by_label(
        "mpreg_fabric_auth_refused_total",
        Kind::Counter,
        "Fabric peers refused by cluster-key authentication, by reason.",
        "reason",
        Refusal::ALL.map(|why| (why.label(), c.fabric_auth_refused.get(why) as f64)),
    );
    e.by_label(
        "mpreg_limit_hits_total",
        Kind::Counter,
        "Resource bounds hit, by the bound (each refused or closed only the party that hit it).",
        "limit",
        Limit::ALL.map(|limit| (limit.as_str(), c.limit_hits.get(limit) as f64)),
    );
    e.by_label(
        "mpreg_fabric_sent_frames_total",
        Kind::Counter,
        "Fabric frames sent, by message kind.",
        "kind",
        MsgKind::ALL.map(|kind| (kind.label(), c.fabric_sent.frames(kind) as f64)),
    );
    e.by_label(
        "mpreg_fabric_sent_bytes_total",
        Kind::Counter,
        "Fabric payload bytes sent (encoded frames, before WebSocket framing), by message kind.",
        "kind",
        MsgKind::ALL.map(|kind| (kind.label(), c.fabric_sent.bytes(kind) as f64)),
    );

    let p = view.peers;
    e.family(
        "mpreg_peers",
        Kind::Gauge,
        "Fabric peers by state (connected, known, suspected, dead, departed).",
    );
    for (state, n) in [
        ("connected", p.connected),
        ("known", p.known),
        ("suspected", p.suspected),
        ("dead", p.dead),
        ("departed", p.departed),
    ] {
        e.sample(&[("state", state)], n as f64);
    }
    e.family(
        "mpreg_catalog_entries",
        Kind::Gauge,
        "Catalog entries by kind.",
    );
    for kind in EntryKind::ALL {
        e.sample(
            &[("kind", kind.as_str())],
            view.catalog[kind.index()] as f64,
        );
    }
    e.single(
        "mpreg_registrations",
        Kind::Gauge,
        "Registrations made over RPC (catalog_register, dns_register).",
        view.registrations as f64,
    );
    if let Some(d) = view.dial {
        e.single(
            "mpreg_peer_dial_targets",
            Kind::Gauge,
            "Distinct dial candidates in the last reconcile tick.",
            d.targets as f64,
        );
        e.single(
            "mpreg_peer_dial_connected",
            Kind::Gauge,
            "Dial candidates connected in the last reconcile tick.",
            d.connected as f64,
        );
        e.single(
            "mpreg_peer_dial_desired_connected",
            Kind::Gauge,
            "Mesh target of the adaptive dial scheduler.",
            d.desired_connected as f64,
        );
        e.single(
            "mpreg_peer_dial_discovery_ratio",
            Kind::Gauge,
            "discovery_ratio of the last reconcile tick.",
            d.discovery_ratio,
        );
        e.single(
            "mpreg_peer_dial_in_flight",
            Kind::Gauge,
            "Outbound dials in flight.",
            d.in_flight as f64,
        );
        e.single(
            "mpreg_peer_dial_saturated_ticks_total",
            Kind::Counter,
            "Reconcile ticks held back by desired_connected.",
            d.saturated_ticks as f64,
        );
    }

    let d = view.dns;
    e.family(
        "mpreg_dns_queries_total",
        Kind::Counter,
        "DNS gateway queries by transport.",
    )
    .sample(&[("transport", "udp")], d.udp_queries as f64)
    .sample(&[("transport", "tcp")], d.tcp_queries as f64);
    e.family(
        "mpreg_dns_responses_total",
        Kind::Counter,
        "DNS gateway replies by outcome.",
    );
    for (outcome, n) in [
        ("answered", d.answered),
        ("nodata", d.nodata),
        ("nxdomain", d.nxdomain),
        ("refused", d.refused),
        ("formerr", d.formerr),
        ("notimp", d.notimp),
        ("other_error", d.other_errors),
    ] {
        e.sample(&[("outcome", outcome)], n as f64);
    }
    e.single(
        "mpreg_dns_truncated_total",
        Kind::Counter,
        "DNS replies sent with TC=1.",
        d.truncated as f64,
    );
    e.single(
        "mpreg_dns_dropped_total",
        Kind::Counter,
        "DNS queries answered with nothing (responses, garbage, rate-limit drops).",
        d.dropped as f64,
    );
    e.single(
        "mpreg_dns_rate_limited_total",
        Kind::Counter,
        "DNS queries over the per-source rate limit.",
        d.rate_limited as f64,
    );
    e.single(
        "mpreg_dns_reply_cache_hits_total",
        Kind::Counter,
        "DNS queries answered with a reply cached for a byte-identical query in the same second.",
        d.cache_hits as f64,
    );

    let engine = view.policy.engine();
    e.single(
        "mpreg_policy_enabled",
        Kind::Gauge,
        "1 when the namespace policy is enforced.",
        if engine.enabled() { 1.0 } else { 0.0 },
    );
    e.single(
        "mpreg_policy_rules",
        Kind::Gauge,
        "Rules of the enforced namespace policy.",
        engine.rules().len() as f64,
    );
    e.single(
        "mpreg_policy_version",
        Kind::Gauge,
        "Version of the enforced namespace policy.",
        view.policy.current().version as f64,
    );
    e.single(
        "mpreg_policy_audit_entries",
        Kind::Gauge,
        "Policy audit entries held.",
        view.policy.audit_ring().len() as f64,
    );
    e.single(
        "mpreg_access_audit_entries",
        Kind::Gauge,
        "Access-audit entries (denials) held.",
        view.access_audit.ring().len() as f64,
    );
    e.single(
        "mpreg_access_audit_recorded_total",
        Kind::Counter,
        "Access-audit entries ever recorded.",
        view.access_audit.ring().recorded_total() as f64,
    );

    roadmap_metrics(view, &mut e);
    e.finish()
}

/// The roadmap's discovery metrics (`discovery_logic.md` §9.3), named after
/// it (`discovery.cache.hit_rate` → `mpreg_discovery_cache_hit_rate`) and
/// computed from the resolver and exporter snapshots. Counters of a
/// subsystem the node does not run are 0 (nothing happened); ratios and lags
/// without a source have no sample. `discovery.query.latency_ms` is a
/// histogram of the node's own time per query, timed by the runtime
/// ([`latency`]).
fn roadmap_metrics(view: &MonitoringView<'_>, e: &mut Exposition) {
    view.latency.query.write(
        e,
        "mpreg_discovery_query_latency_ms",
        "Milliseconds the node spent answering a discovery query (decode, policy, lookup, encode).",
    );
    view.latency.dns.write(
        e,
        "mpreg_dns_query_latency_ms",
        "Milliseconds the node spent answering a DNS query.",
    );
    let resolver = view.resolver_cache.as_ref();
    let qc = resolver.and_then(|r| r.get("query_cache"));
    let stats = resolver.and_then(|r| r.get("stats"));
    let export = view.summary_export.as_ref();
    let sum = |v: Option<&Value>, keys: &[&str]| keys.iter().filter_map(|k| num(v, k)).sum::<f64>();

    e.family(
        "mpreg_discovery_cache_hit_rate",
        Kind::Gauge,
        "Resolver query cache hits / (hits + misses + stale serves).",
    );
    if qc.is_some() {
        let hits = sum(qc, &["catalog_hits", "cluster_map_hits"]);
        let misses = sum(qc, &["catalog_misses", "cluster_map_misses"]);
        let stale = sum(qc, &["catalog_stale_serves", "cluster_map_stale_serves"]);
        let total = hits + misses + stale;
        e.sample(&[], if total > 0.0 { hits / total } else { 0.0 });
    }
    e.single(
        "mpreg_discovery_cache_stale_serves",
        Kind::Counter,
        "Resolver query cache answers served stale (catalog + cluster map).",
        sum(qc, &["catalog_stale_serves", "cluster_map_stale_serves"]),
    );
    e.family(
        "mpreg_discovery_delta_lag_ms",
        Kind::Gauge,
        "Milliseconds since the resolver applied its last delta.",
    );
    if let Some(t) = num(stats, "last_delta_at") {
        e.sample(&[], ((view.now - t) * 1000.0).max(0.0));
    }
    e.single(
        "mpreg_discovery_delta_dropped",
        Kind::Counter,
        "Resolver deltas skipped or invalid.",
        sum(stats, &["deltas_skipped", "deltas_invalid"]),
    );
    e.single(
        "mpreg_discovery_summary_exports",
        Kind::Counter,
        "Summary export ticks.",
        num(export, "exports_total").unwrap_or(0.0),
    );
    e.single(
        "mpreg_discovery_summary_hold_downs",
        Kind::Counter,
        "Summary changes held back by the export hold-down.",
        num(export, "hold_downs_total").unwrap_or(0.0),
    );
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
