//! `summary_query` and `summary_watch` (`discovery_logic.md` §4.5–§4.6,
//! `client_protocol.md` §3.7–§3.8), with ingress hints.
//!
//! Where the answer comes from:
//! - `scope` `region` / `global` on a summary resolver: the summary cache
//!   (what other clusters exported), never raw foreign endpoints;
//! - otherwise a live summary of the catalog (the resolver mirror in resolver
//!   mode), grouped per (cluster, service) with the real source cluster,
//!   limited by the one scope rule: `local` = this node, `zone` = this
//!   cluster, and entries whose own scope is at least the requested one.
//!
//! Every item passes the viewer's policy; pages are keyset cursors over
//! (namespace, service, cluster), so paging while summaries change never
//! repeats an item.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::api::{clamp_limit, Payload, DEFAULT_LIMIT};
use crate::catalog::entry::{Entry, EntryKind, FunctionEndpoint, NodeDescriptor};
use crate::catalog::namespace::NamespaceFilter;
use crate::catalog::scope::{visible_at, Scope};
use crate::catalog::store::Catalog;
use crate::config::Settings;
use crate::fabric::peers::PeerTable;
use crate::node::Identity;
use crate::policy::Access;
use crate::time::Now;
use crate::wire::client::RpcError;

use super::build::{self, Stamp};
use super::cache::SummaryCache;
use super::model::{summary_topic, ServiceSummary};

/// What the summary RPCs read.
pub struct SummaryCtx<'a> {
    /// Effective settings.
    pub settings: &'a Settings,
    /// This node.
    pub me: &'a Identity,
    /// The catalog answered from (the resolver mirror in resolver mode).
    pub catalog: &'a Catalog,
    /// Peer STATUS records (advertised URLs for ingress hints).
    pub peers: &'a PeerTable,
    /// The request's viewer and policy.
    pub access: &'a Access<'a>,
    /// The summary cache, on summary resolvers.
    pub cache: Option<&'a SummaryCache>,
    /// Endpoint health ([`build::endpoint_healthy`] with the failure
    /// detector's view).
    pub healthy: &'a dyn Fn(&FunctionEndpoint) -> bool,
    /// Request time.
    pub now: Now,
}

/// Page cursor: `s1:<limit>:<json [namespace, service, cluster]>`.
fn encode_token(limit: usize, s: &ServiceSummary) -> String {
    let key = json!([
        s.namespace,
        s.service_id,
        s.source_cluster.as_deref().unwrap_or("")
    ]);
    format!("s1:{limit}:{key}")
}

type Cursor = (String, String, String);

fn decode_token(raw: &str) -> Result<(usize, Cursor), RpcError> {
    let bad = || RpcError::failed(format!("invalid page_token: {raw:?}"));
    let rest = raw.strip_prefix("s1:").ok_or_else(bad)?;
    let (limit, key) = rest.split_once(':').ok_or_else(bad)?;
    let limit = limit.parse::<usize>().map_err(|_| bad())?;
    let key: (String, String, String) = serde_json::from_str(key).map_err(|_| bad())?;
    Ok((clamp_limit(limit as i64), key))
}

fn cursor_of(s: &ServiceSummary) -> Cursor {
    (
        s.namespace.clone(),
        s.service_id.clone(),
        s.source_cluster.clone().unwrap_or_default(),
    )
}

/// Live summaries of `ctx.catalog` for a query of `scope` (module docs).
pub fn live_summaries(ctx: &SummaryCtx<'_>, scope: Option<Scope>) -> Vec<ServiceSummary> {
    let wall = ctx.now.wall;
    let me = ctx.me;
    let endpoints = build::live_functions(ctx.catalog, wall).filter(|e| match scope {
        None => true,
        Some(s) => {
            visible_at(e.scope, s)
                && match s {
                    Scope::Local => e.node_id == me.node_id,
                    Scope::Zone => e.cluster_id == me.cluster_id,
                    Scope::Region | Scope::Global => true,
                }
        }
    });
    let regions = build::node_regions(ctx.catalog);
    let own_region = ctx.settings.cache_region.clone();
    let region_of = |e: &FunctionEndpoint| {
        regions.get(&e.node_id).cloned().or_else(|| {
            (e.node_id == me.node_id && !own_region.is_empty()).then(|| own_region.clone())
        })
    };
    let engine = ctx.access.engine();
    let access = ctx.access;
    let mut admit = |ns: &str| {
        access
            .namespace(ns)
            .allowed
            .then(|| policy_version(engine, ns))
    };
    let stamp = Stamp {
        now: wall,
        ttl_seconds: ctx.settings.fabric_catalog_ttl_seconds,
        scope,
    };
    build::summarize(endpoints, &stamp, &region_of, ctx.healthy, &mut admit)
}

/// The version of the policy rule governing `ns`, when policy is enabled.
pub fn policy_version(engine: &crate::policy::PolicyEngine, ns: &str) -> Option<String> {
    if !engine.enabled() {
        return None;
    }
    engine
        .best_match(ns)
        .and_then(|r| r.policy_version.clone())
        .filter(|v| !v.is_empty())
}

/// `summary_query`.
pub fn summary_query(ctx: &SummaryCtx<'_>, map: &Map<String, Value>) -> Result<Value, RpcError> {
    let p = Payload::new("summary_query", map);
    let scope = p.scope()?;
    let namespace = NamespaceFilter::parse(&p.str("namespace")?.unwrap_or_default());
    let service_id = p.str("service_id")?;
    let include_ingress = p.bool("include_ingress")?.unwrap_or(false);
    let ingress_limit = p.int("ingress_limit")?;
    let ingress_scope = match p.str("ingress_scope")? {
        Some(raw) => {
            Scope::parse_request(Some(&raw)).map_err(|e| RpcError::failed(e.to_string()))?
        }
        None => None,
    };
    let ingress_caps = p.str_list("ingress_capabilities")?;
    let ingress_tags = p.str_list("ingress_tags")?;
    let token = p.str("page_token")?.map(|t| decode_token(&t)).transpose()?;
    let limit = match p.int("limit")? {
        Some(l) => clamp_limit(l),
        None => token.as_ref().map_or(DEFAULT_LIMIT, |t| t.0),
    };
    let from_cache = matches!(scope, Some(Scope::Region | Scope::Global));
    let mut items = match (from_cache, ctx.cache) {
        (true, Some(cache)) => cache.query(&namespace, service_id.as_deref(), scope, ctx.now.wall),
        _ => live_summaries(ctx, scope),
    };
    items.retain(|s| {
        namespace.matches(&s.namespace)
            && service_id.as_deref().is_none_or(|id| s.service_id == id)
            && ctx.access.namespace(&s.namespace).allowed
    });
    items.sort_by_key(cursor_of);
    if let Some((_, after)) = &token {
        items.retain(|s| &cursor_of(s) > after);
    }
    let more = items.len() > limit;
    items.truncate(limit);
    let mut out = Map::new();
    out.insert("generated_at".into(), json!(ctx.now.wall));
    if include_ingress {
        let effective = ingress_scope.or(scope.filter(|s| s.rank() >= Scope::Region.rank()));
        let clusters: BTreeSet<&str> = items
            .iter()
            .filter_map(|s| s.source_cluster.as_deref())
            .filter(|c| !c.is_empty())
            .collect();
        let mut ingress = Map::new();
        for cluster in clusters {
            let urls = ingress_urls(
                ctx,
                cluster,
                IngressFilter {
                    scope: effective,
                    strict: ingress_scope.is_some(),
                    capabilities: &ingress_caps,
                    tags: &ingress_tags,
                    limit: ingress_limit,
                },
            );
            if !urls.is_empty() {
                ingress.insert(cluster.to_string(), json!(urls));
            }
        }
        if !ingress.is_empty() {
            out.insert("ingress".into(), Value::Object(ingress));
        }
    }
    if more {
        if let Some(last) = items.last() {
            out.insert("next_page_token".into(), json!(encode_token(limit, last)));
        }
    }
    out.insert(
        "items".into(),
        Value::Array(items.iter().map(ServiceSummary::to_json).collect()),
    );
    Ok(Value::Object(out))
}

/// The ingress filters of one `summary_query`.
pub struct IngressFilter<'a> {
    /// Effective ingress scope.
    pub scope: Option<Scope>,
    /// Given explicitly (no fallback to all nodes when none qualifies).
    pub strict: bool,
    /// Required capabilities.
    pub capabilities: &'a [String],
    /// Required tags.
    pub tags: &'a [String],
    /// Stop after this many URLs (`<= 0`: no URL).
    pub limit: Option<i64>,
}

/// Ingress URLs of `cluster` (§4.5 step 7): its node descriptors, scope
/// filtered (falling back to all unless strict), then capabilities and
/// tags; each node's STATUS `advertised_urls` (ours for this node) or its
/// id, in node id order, deduplicated, at most `limit`.
pub fn ingress_urls(ctx: &SummaryCtx<'_>, cluster: &str, f: IngressFilter<'_>) -> Vec<String> {
    let mut nodes: Vec<&NodeDescriptor> = ctx
        .catalog
        .iter(EntryKind::Nodes)
        .filter(|e| !e.is_expired(ctx.now.wall))
        .filter_map(|e| match e {
            Entry::Node(n) if n.cluster_id == cluster => Some(n),
            _ => None,
        })
        .collect();
    nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
    if let Some(s) = f.scope {
        let wide: Vec<&NodeDescriptor> = nodes
            .iter()
            .copied()
            .filter(|n| n.scope.rank() >= s.rank())
            .collect();
        if !wide.is_empty() || f.strict {
            nodes = wide;
        }
    }
    nodes.retain(|n| {
        f.capabilities.iter().all(|c| n.capabilities.contains(c))
            && f.tags.iter().all(|t| n.tags.contains(t))
    });
    let cap = match f.limit {
        Some(l) => usize::try_from(l).unwrap_or(0),
        None => usize::MAX,
    };
    let mut seen = BTreeSet::new();
    let mut urls = Vec::new();
    for n in nodes {
        let advertised: Vec<String> = if n.node_id == ctx.me.node_id {
            crate::local::advertised_urls(ctx.settings, ctx.me)
        } else {
            ctx.peers
                .get(&n.node_id)
                .and_then(|r| r.status.as_ref())
                .map(|s| s.advertised_urls.clone())
                .filter(|u| !u.is_empty())
                .unwrap_or_else(|| vec![n.node_id.clone()])
        };
        for u in advertised {
            if urls.len() >= cap {
                return urls;
            }
            if seen.insert(u.clone()) {
                urls.push(u);
            }
        }
    }
    urls
}

/// `summary_watch`: the topic to subscribe to (the node checks the
/// request's namespace against policy first, 403 when denied).
pub fn summary_watch(me: &Identity, map: &Map<String, Value>, now: Now) -> Result<Value, RpcError> {
    let p = Payload::new("summary_watch", map);
    let scope = p.scope()?;
    let raw_ns = p.str("namespace")?;
    let ns = raw_ns.as_deref().map(NamespaceFilter::parse);
    let topic = summary_topic(scope, ns.as_ref().map(NamespaceFilter::as_str));
    let mut out = Map::new();
    out.insert("topic".into(), json!(topic));
    out.insert("generated_at".into(), json!(now.wall));
    if let Some(s) = scope {
        out.insert("scope".into(), json!(s.as_str()));
    }
    if let Some(n) = raw_ns {
        out.insert("namespace".into(), json!(n));
    }
    let cluster = p
        .str("cluster_id")?
        .unwrap_or_else(|| me.cluster_id.clone());
    out.insert("cluster_id".into(), json!(cluster));
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_garbage() {
        let s = ServiceSummary {
            namespace: "svc.a".into(),
            service_id: "svc.a:x".into(),
            regions: vec![],
            endpoint_count: 1,
            health_band: "healthy".into(),
            latency_band_ms: None,
            ttl_seconds: 1.0,
            generated_at: 1.0,
            scope: None,
            policy_version: None,
            source_cluster: Some("eu".into()),
        };
        let t = encode_token(5, &s);
        assert_eq!(decode_token(&t).unwrap(), (5, cursor_of(&s)));
        assert!(decode_token("k1:5:x").is_err());
        assert!(decode_token("s1:x:[]").is_err());
        assert!(decode_token("s1:5:[1]").is_err());
    }
}
