//! Registration RPCs: `catalog_register` / `catalog_unregister` (ours) and
//! MPREG's `dns_register` / `dns_unregister` / `dns_list` / `dns_describe`
//! (`client_protocol.md` §3.17–3.19, `dns.md` §10).
//!
//! Handlers are read-only, so the mutating RPCs are split in two: this
//! module parses and validates a request into a [`RegisterRequest`] /
//! [`UnregisterTarget`] (pure, every problem a clear 1003), and the node
//! applies it to its registry and replica and answers with
//! [`catalog_register_result`] / [`dns_register_result`] /
//! [`unregister_result`]. `dns_list` / `dns_describe` are plain read-only
//! handlers over `catalog_query`.
//!
//! `catalog_register` payload: `entry_type` (`functions`, `queues`,
//! `topics` or `services`) plus the entry's fields as `catalog_query`
//! returns them (a function may give `name` / `function_id` / `version`
//! instead of `identity`); `node_id` / `cluster_id` are this node's (giving
//! another node's is an error: nodes only advertise their own entries);
//! and how the registration ends:
//! - `ttl_seconds`: a lease. Registering the same key again within it
//!   refreshes it; otherwise it is withdrawn. Also the entry's TTL.
//! - `bind_to_connection: true`: withdrawn when this client connection
//!   closes.
//!
//! At least one of the two is required (a registration must end when its
//! owner goes away); both may be given. `persist: true` (needs the
//! `data_dir` setting; not with `bind_to_connection`) keeps it across a
//! node restart.
//!
//! Where we differ from MPREG's `dns_register` ("no validation"): `name`
//! must be non-empty; `port`, `priority` and `weight` must fit 0..=65535;
//! `ttl_seconds` must be a number of at least 1 second. MPREG stores such
//! values and then serves DNS records that cannot be encoded.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::catalog_query;
use super::request::Payload;
use super::Ctx;
use crate::catalog::entry::{Entry, EntryKey, EntryKind, MetadataValue, ServiceEndpoint};
use crate::catalog::scope::Scope;
use crate::config::Settings;
use crate::io::ConnId;
use crate::node::Identity;
use crate::registry::{Registration, Source};
use crate::time::Now;
use crate::wire::client::RpcError;

/// The RPCs that change the node's catalog (served only on client
/// connections and by `Node::call_mut`, never by the read-only dispatch).
pub const MUTATING: &[&str] = &[
    "catalog_register",
    "catalog_unregister",
    "dns_register",
    "dns_unregister",
];

/// Shortest lease / entry TTL accepted, in seconds. Below it, refreshing
/// the entry on every peer in time would cost more gossip than the entry
/// is worth.
pub const MIN_TTL_SECONDS: f64 = 1.0;

/// Longest lease / entry TTL accepted (a year), so deadline arithmetic
/// stays far from overflow.
pub const MAX_TTL_SECONDS: f64 = 365.0 * 86_400.0;

/// Request keys that steer the registration and are not entry fields.
const CONTROL_KEYS: &[&str] = &[
    "entry_type",
    "bind_to_connection",
    "persist",
    "registration_id",
    "viewer_tenant_id",
    "viewer_cluster_id",
];

/// True for an RPC that changes the catalog.
pub fn is_mutating(fun: &str) -> bool {
    MUTATING.contains(&fun)
}

/// What a mutating request is parsed against.
#[derive(Debug, Clone, Copy)]
pub struct RegisterCtx<'a> {
    /// Effective settings (`data_dir`, default TTL, host).
    pub settings: &'a Settings,
    /// This node: the owner of every registered entry.
    pub me: &'a Identity,
    /// Time of the request (`advertised_at` of new entries).
    pub now: Now,
    /// The client connection the request came on (`None` in process).
    pub conn: Option<ConnId>,
}

/// A validated registration, ready for the node to apply.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterRequest {
    /// The entry, owned by this node, advertised at the request time.
    pub entry: Entry,
    /// Lease length (`ttl_seconds` of `catalog_register`).
    pub lease_ttl_seconds: Option<f64>,
    /// Withdraw when the connection closes.
    pub bind_to_connection: bool,
    /// Keep across a restart.
    pub persist: bool,
    /// Which RPC.
    pub source: Source,
    /// `dns_register`: the `service` object to answer (MPREG's
    /// `ServiceSpec`, with the request's scope text).
    pub dns_service: Option<Value>,
}

/// What an unregister request names.
#[derive(Debug, Clone, PartialEq)]
pub enum UnregisterTarget {
    /// The entry with this key.
    Key(EntryKey),
    /// The registration with this id.
    Id(String),
}

fn failed(fun: &str, msg: impl std::fmt::Display) -> RpcError {
    RpcError::failed(format!("{fun}: {msg}"))
}

/// A validated TTL: finite, within [`MIN_TTL_SECONDS`, `MAX_TTL_SECONDS`].
fn ttl(p: &Payload<'_>) -> Result<Option<f64>, RpcError> {
    match p.float("ttl_seconds")? {
        None => Ok(None),
        Some(t) if t.is_finite() && (MIN_TTL_SECONDS..=MAX_TTL_SECONDS).contains(&t) => Ok(Some(t)),
        Some(t) => Err(failed(
            p.fun(),
            format!(
                "`ttl_seconds` must be between {MIN_TTL_SECONDS} and {MAX_TTL_SECONDS} seconds, got {t}"
            ),
        )),
    }
}

/// An optional integer that must fit a `u16` (ports, SRV priority/weight).
fn u16_field(p: &Payload<'_>, key: &str) -> Result<Option<u16>, RpcError> {
    match p.int(key)? {
        None => Ok(None),
        Some(v) => u16::try_from(v).map(Some).map_err(|_| {
            failed(
                p.fun(),
                format!("`{key}` must be within 0..=65535, got {v}"),
            )
        }),
    }
}

/// `node_id` / `cluster_id`, when given, must be this node's.
fn check_owner(p: &Payload<'_>, me: &Identity) -> Result<(), RpcError> {
    for (key, mine) in [("node_id", &me.node_id), ("cluster_id", &me.cluster_id)] {
        if let Some(given) = p.str(key)? {
            if given != *mine {
                return Err(failed(
                    p.fun(),
                    format!(
                        "`{key}` is {given:?}, but a node only registers its own entries ({key} {mine:?}); omit it"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The lifetime flags shared by both register RPCs, checked against each
/// other and the node.
fn lifetime(
    rc: &RegisterCtx<'_>,
    p: &Payload<'_>,
    lease: Option<f64>,
    need_one: bool,
) -> Result<(bool, bool), RpcError> {
    let bind = p.bool("bind_to_connection")?.unwrap_or(false);
    let persist = p.bool("persist")?.unwrap_or(false);
    if need_one && lease.is_none() && !bind {
        return Err(failed(
            p.fun(),
            "give `ttl_seconds` (a lease: register again within it to keep the entry) \
             or `bind_to_connection: true` (withdrawn when this connection closes)",
        ));
    }
    if bind && rc.conn.is_none() {
        return Err(failed(
            p.fun(),
            "`bind_to_connection` needs a client connection",
        ));
    }
    if bind && persist {
        return Err(failed(
            p.fun(),
            "`persist` cannot be combined with `bind_to_connection`: the connection does not survive a restart",
        ));
    }
    if persist && rc.settings.data_dir.is_none() {
        return Err(failed(
            p.fun(),
            "`persist: true` needs the node's `data_dir` setting (this node has none)",
        ));
    }
    Ok((bind, persist))
}

/// MPREG's client parses function versions with `^v?\d+(\.\d+){0,2}$` and
/// fails on anything else, so such a version is refused at registration.
fn valid_version(v: &str) -> bool {
    let v = v.strip_prefix('v').unwrap_or(v);
    let parts: Vec<&str> = v.split('.').collect();
    parts.len() <= 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The catalog item a register / unregister request describes: the
/// request's fields minus the control keys, owned by this node, advertised
/// at `now` with TTL `entry_ttl`. Fills what the item's shape requires from
/// the convenient forms (function `name` / `version`, service defaults).
fn build_item(
    rc: &RegisterCtx<'_>,
    p: &Payload<'_>,
    payload: &Map<String, Value>,
    kind: EntryKind,
    entry_ttl: f64,
    topic_default_id: Option<&str>,
) -> Result<Entry, RpcError> {
    let fun = p.fun();
    check_owner(p, rc.me)?;
    let mut item: Map<String, Value> = payload
        .iter()
        .filter(|(k, _)| !CONTROL_KEYS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    item.insert("node_id".into(), json!(rc.me.node_id));
    item.insert("cluster_id".into(), json!(rc.me.cluster_id));
    item.insert("advertised_at".into(), json!(rc.now.wall));
    item.insert("ttl_seconds".into(), json!(entry_ttl));
    if let Some(scope) = p.scope()? {
        item.insert("scope".into(), json!(scope.as_str()));
    }
    match kind {
        EntryKind::Functions => {
            let identity = match item.get("identity") {
                Some(Value::Object(id)) => id.clone(),
                None | Some(Value::Null) => Map::new(),
                Some(_) => return Err(failed(fun, "`identity` must be an object")),
            };
            let sub = Payload::new(fun, &identity);
            let name = match sub.str("name")? {
                Some(n) => Some(n),
                None => p.str("name")?.or(p.str("function_name")?),
            };
            let Some(name) = name else {
                return Err(failed(fun, "a function needs `identity.name` (or `name`)"));
            };
            let function_id = sub
                .str("function_id")?
                .or(p.str("function_id")?)
                .unwrap_or_else(|| name.clone());
            let Some(version) = sub.str("version")?.or(p.str("version")?) else {
                return Err(failed(
                    fun,
                    "a function needs `identity.version` (or `version`), e.g. \"1.0.0\"",
                ));
            };
            if !valid_version(&version) {
                return Err(failed(
                    fun,
                    format!("version {version:?} is not MAJOR[.MINOR[.PATCH]] (MPREG's clients reject it)"),
                ));
            }
            for k in ["name", "function_name", "function_id", "version"] {
                item.remove(k);
            }
            item.insert(
                "identity".into(),
                json!({"name": name, "function_id": function_id, "version": version}),
            );
        }
        EntryKind::Queues => {
            if p.str("queue_name")?.is_none() {
                return Err(failed(fun, "a queue needs a non-empty `queue_name`"));
            }
        }
        EntryKind::Services => {
            if p.str("name")?.is_none() {
                return Err(failed(fun, "a service needs a non-empty `name`"));
            }
            item.insert("port".into(), json!(u16_field(p, "port")?.unwrap_or(0)));
            item.insert(
                "priority".into(),
                json!(u16_field(p, "priority")?.unwrap_or(0)),
            );
            item.insert("weight".into(), json!(u16_field(p, "weight")?.unwrap_or(0)));
            for k in ["namespace", "protocol"] {
                let v = p.str(k)?.unwrap_or_default();
                item.insert(k.into(), json!(v));
            }
        }
        EntryKind::Topics => {
            let patterns = p.str_list("patterns")?;
            if topic_default_id.is_some() && patterns.is_empty() {
                return Err(failed(fun, "a topic subscription needs `patterns`"));
            }
            item.insert("patterns".into(), json!(patterns));
            match (p.str("subscription_id")?, topic_default_id) {
                (Some(id), _) => {
                    item.insert("subscription_id".into(), json!(id));
                }
                (None, Some(id)) => {
                    item.insert("subscription_id".into(), json!(id));
                }
                (None, None) => {
                    return Err(failed(fun, "a topic subscription is named by `subscription_id`"))
                }
            }
        }
        other => {
            return Err(failed(
                fun,
                format!(
                    "entry_type {other} cannot be registered over RPC (functions, queues, topics or services)"
                ),
            ))
        }
    }
    Entry::from_json(kind, Value::Object(item))
        .map_err(|e| failed(fun, format!("invalid {kind} entry: {e}")))
}

/// The registrable entry type of a request (1003 when missing or not one of
/// functions, queues, topics, services).
fn entry_type(p: &Payload<'_>) -> Result<EntryKind, RpcError> {
    let Some(raw) = p.str("entry_type")? else {
        return Err(failed(
            p.fun(),
            "`entry_type` is required (functions, queues, topics or services)",
        ));
    };
    let kind = EntryKind::parse(&raw).map_err(|e| RpcError::failed(e.to_string()))?;
    match kind {
        EntryKind::Functions | EntryKind::Queues | EntryKind::Topics | EntryKind::Services => {
            Ok(kind)
        }
        other => Err(failed(
            p.fun(),
            format!(
                "entry_type {other} cannot be registered over RPC (functions, queues, topics or services)"
            ),
        )),
    }
}

/// Parses `catalog_register`. `registration_id` names a topic
/// subscription registered without a `subscription_id`
/// (`<node_id>#<registration_id>`, unique in the cluster).
pub fn parse_catalog_register(
    rc: &RegisterCtx<'_>,
    payload: &Map<String, Value>,
    registration_id: &str,
) -> Result<RegisterRequest, RpcError> {
    let p = Payload::new("catalog_register", payload);
    let kind = entry_type(&p)?;
    let lease = ttl(&p)?;
    let (bind, persist) = lifetime(rc, &p, lease, true)?;
    let entry_ttl = lease.unwrap_or(rc.settings.fabric_catalog_ttl_seconds);
    let default_topic_id = format!("{}#{registration_id}", rc.me.node_id);
    let entry = build_item(rc, &p, payload, kind, entry_ttl, Some(&default_topic_id))?;
    Ok(RegisterRequest {
        entry,
        lease_ttl_seconds: lease,
        bind_to_connection: bind,
        persist,
        source: Source::Catalog,
        dns_service: None,
    })
}

/// Parses `catalog_unregister`: `registration_id`, or `entry_type` plus the
/// fields of the entry's key (functions: identity and `resources`; queues:
/// `queue_name`; services: `namespace`, `name`, `protocol`, `port`; topics:
/// `subscription_id`).
pub fn parse_catalog_unregister(
    rc: &RegisterCtx<'_>,
    payload: &Map<String, Value>,
) -> Result<UnregisterTarget, RpcError> {
    let p = Payload::new("catalog_unregister", payload);
    if let Some(id) = p.str("registration_id")? {
        return Ok(UnregisterTarget::Id(id));
    }
    let kind = entry_type(&p)?;
    let ttl = rc.settings.fabric_catalog_ttl_seconds.max(MIN_TTL_SECONDS);
    let entry = build_item(rc, &p, payload, kind, ttl, None)?;
    Ok(UnregisterTarget::Key(entry.key()))
}

/// Parses `dns_register` (`dns.md` §10.1): a service keyed by
/// `(namespace, name, protocol, port)`; `ttl_seconds` is the entry's (and
/// so the DNS records') TTL, not a lease. Without `bind_to_connection` the
/// registration lives until `dns_unregister`, as in MPREG.
pub fn parse_dns_register(
    rc: &RegisterCtx<'_>,
    payload: &Map<String, Value>,
) -> Result<RegisterRequest, RpcError> {
    let p = Payload::new("dns_register", payload);
    let Some(name) = p.str("name")? else {
        return Err(failed(p.fun(), "`name` is required"));
    };
    let namespace = p.str("namespace")?.unwrap_or_default();
    let protocol = p.str("protocol")?.unwrap_or_default();
    let port = u16_field(&p, "port")?.unwrap_or(0);
    let targets: BTreeSet<String> = p.str_list("targets")?.into_iter().collect();
    let tags: BTreeSet<String> = p.str_list("tags")?.into_iter().collect();
    let capabilities: BTreeSet<String> = p.str_list("capabilities")?.into_iter().collect();
    let scope_text = p
        .str("scope")?
        .map(|s| s.to_lowercase())
        .unwrap_or_else(|| "zone".into());
    let metadata = match payload.get("metadata") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(failed(p.fun(), "`metadata` must be an object")),
    };
    let priority = u16_field(&p, "priority")?.unwrap_or(0);
    let weight = u16_field(&p, "weight")?.unwrap_or(0);
    let ttl_seconds = ttl(&p)?;
    check_owner(&p, rc.me)?;
    let (bind, persist) = lifetime(rc, &p, None, false)?;

    let mut svc = ServiceEndpoint::new(name.clone(), namespace.clone(), protocol.clone(), port)
        .owned_by(rc.me.node_id.clone(), rc.me.cluster_id.clone())
        .with_targets(targets.iter().cloned())
        .with_scope(Scope::normalize_entry(&scope_text))
        .with_tags(tags.iter().cloned())
        .advertised(
            rc.now.wall,
            ttl_seconds.unwrap_or(rc.settings.fabric_catalog_ttl_seconds),
        );
    svc.capabilities = capabilities.iter().cloned().collect();
    svc.metadata = metadata
        .iter()
        .filter_map(|(k, v)| MetadataValue::from_json(v.clone()).map(|m| (k.clone(), m)))
        .collect();
    svc.priority = priority;
    svc.weight = weight;
    svc.normalize();

    // MPREG's ServiceSpec: empty strings and lists omitted, metadata always.
    let mut spec = Map::new();
    for (k, v) in [
        ("name", &name),
        ("namespace", &namespace),
        ("protocol", &protocol),
    ] {
        if !v.is_empty() {
            spec.insert(k.into(), json!(v));
        }
    }
    spec.insert("port".into(), json!(port));
    if !svc.targets.is_empty() {
        spec.insert("targets".into(), json!(svc.targets));
    }
    spec.insert("scope".into(), json!(scope_text));
    if !svc.tags.is_empty() {
        spec.insert("tags".into(), json!(svc.tags));
    }
    if !svc.capabilities.is_empty() {
        spec.insert("capabilities".into(), json!(svc.capabilities));
    }
    let meta: Map<String, Value> = svc
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), v.to_json()))
        .collect();
    spec.insert("metadata".into(), Value::Object(meta));
    spec.insert("priority".into(), json!(priority));
    spec.insert("weight".into(), json!(weight));
    if let Some(t) = ttl_seconds {
        spec.insert("ttl_seconds".into(), json!(t));
    }
    Ok(RegisterRequest {
        entry: Entry::Service(svc),
        lease_ttl_seconds: None,
        bind_to_connection: bind,
        persist,
        source: Source::Dns,
        dns_service: Some(Value::Object(spec)),
    })
}

/// Parses `dns_unregister` (`dns.md` §10.2): the service key
/// `(namespace, name, protocol, port)` on this node, defaults `""` / 0.
pub fn parse_dns_unregister(
    rc: &RegisterCtx<'_>,
    payload: &Map<String, Value>,
) -> Result<EntryKey, RpcError> {
    let p = Payload::new("dns_unregister", payload);
    Ok(EntryKey::Service {
        cluster_id: rc.me.cluster_id.clone(),
        node_id: rc.me.node_id.clone(),
        namespace: p.str("namespace")?.unwrap_or_default(),
        name: p.str("name")?.unwrap_or_default(),
        protocol: p.str("protocol")?.unwrap_or_default(),
        port: u16_field(&p, "port")?.unwrap_or(0),
    })
}

/// `catalog_register`'s answer: `{registration_id, entry_type, item,
/// registered_at, refreshed, bound_to_connection, persisted,
/// expires_at?}` (`expires_at`: wall time the lease ends unless
/// refreshed).
pub fn catalog_register_result(reg: &Registration, refreshed: bool, now: Now) -> Value {
    let mut res = Map::new();
    res.insert("registration_id".into(), json!(reg.registration_id));
    res.insert("entry_type".into(), json!(reg.entry.kind().as_str()));
    res.insert("item".into(), reg.entry.to_json());
    res.insert("registered_at".into(), json!(reg.registered_at));
    res.insert("refreshed".into(), json!(refreshed));
    res.insert("bound_to_connection".into(), json!(reg.conn.is_some()));
    res.insert("persisted".into(), json!(reg.persist));
    if let Some(lease) = reg.lease {
        res.insert("expires_at".into(), json!(now.wall + lease.ttl_seconds));
    }
    Value::Object(res)
}

/// `dns_register`'s answer (`client_protocol.md` §3.17):
/// `{registration_id, service, registered_at}`.
pub fn dns_register_result(registration_id: &str, service: &Value, now: Now) -> Value {
    json!({
        "registration_id": registration_id,
        "service": service,
        "registered_at": now.wall,
    })
}

/// The answer of `catalog_unregister` and `dns_unregister`:
/// `{removed, generated_at}`.
pub fn unregister_result(removed: bool, now: Now) -> Value {
    json!({"removed": removed, "generated_at": now.wall})
}

/// A UUID4 string from 128 random bits (`dns_register`'s
/// `registration_id`, as MPREG's `uuid.uuid4()`).
pub fn uuid4(bits: u128) -> String {
    let b = (bits & !(0xF << 76) & !(0x3 << 62)) | (0x4 << 76) | (0x2 << 62);
    let h = format!("{b:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `dns_list` / `dns_describe` (`client_protocol.md` §3.19): a services
/// `catalog_query` with MPREG's DNS field names (`name`, `protocol`,
/// `port`), answered as `{generated_at, items, next_page_token?}`. The
/// namespace filter is the one dot-boundary rule (MPREG: exact).
pub fn dns_list(ctx: &Ctx<'_>, fun: &str, payload: &Map<String, Value>) -> Result<Value, RpcError> {
    let mut q = Map::new();
    q.insert("entry_type".into(), json!("services"));
    for (from, to) in [
        ("namespace", "namespace"),
        ("name", "service_name"),
        ("protocol", "service_protocol"),
        ("port", "service_port"),
        ("scope", "scope"),
        ("tags", "tags"),
        ("capabilities", "capabilities"),
        ("cluster_id", "cluster_id"),
        ("node_id", "node_id"),
        ("limit", "limit"),
        ("page_token", "page_token"),
    ] {
        if let Some(v) = payload.get(from) {
            q.insert(to.into(), v.clone());
        }
    }
    let mut res = catalog_query::run(ctx, &q).map_err(|mut e| {
        if let Some(d) = e.details.as_mut() {
            *d = d.replace("catalog_query", fun);
        }
        e
    })?;
    if let Some(m) = res.as_object_mut() {
        m.remove("entry_type");
    }
    Ok(res)
}

#[cfg(test)]
#[path = "registration_tests.rs"]
mod tests;
