//! `list_peers` and `cluster_map`: the membership views
//! (`client_protocol.md` §3.2–3.3, `fabric.md` §4).

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::request::Payload;
use super::Ctx;
use crate::catalog::entry::{Entry, EntryKind, NodeDescriptor};
use crate::catalog::scope::Scope;
use crate::fabric::peers::{exclude_disconnected, load_stale_after, Liveness};
use crate::wire::client::RpcError;
use crate::wire::fabric::Status;

/// `list_peers`: every known, live, non-departed node except this one,
/// sorted by URL, as MPREG's PeerSnapshot objects (a JSON array).
pub fn list_peers(ctx: &Ctx<'_>, payload: &Map<String, Value>) -> Result<Value, RpcError> {
    list_peers_explained(ctx, payload, &mut |_, _| {})
}

/// `list_peers`, reporting the gating decision for every known peer to
/// `explain(url, action)` (`included`, `excluded_departed`,
/// `excluded_cluster`, `excluded_stale_disconnected`, `excluded_stale_ok`):
/// the `MPREG_DEBUG_PEER_SNAPSHOT` diagnostics.
pub fn list_peers_explained(
    ctx: &Ctx<'_>,
    payload: &Map<String, Value>,
    explain: &mut dyn FnMut(&str, &'static str),
) -> Result<Value, RpcError> {
    let p = Payload::new("list_peers", payload);
    let scope = p.scope()?;
    let requested_cluster = p.str("cluster_id")?;
    let cluster_filter = match scope {
        Some(Scope::Local) => return Ok(Value::Array(vec![])),
        Some(Scope::Zone) => Some(ctx.me.cluster_id.clone()),
        _ => None,
    };
    let cluster_filter = match (cluster_filter, requested_cluster) {
        (Some(a), Some(b)) if a != b => return Ok(Value::Array(vec![])),
        (Some(a), _) => Some(a),
        (None, b) => b,
    };
    let nodes: Vec<&NodeDescriptor> = ctx
        .catalog
        .iter(EntryKind::Nodes)
        .filter_map(|e| match e {
            Entry::Node(n) => Some(n),
            _ => None,
        })
        .filter(|n| n.node_id != ctx.me.node_id)
        .collect();
    // The peer target count, as MPREG's gating uses it.
    let hint = nodes.len();
    let mut out: Vec<(String, Value)> = Vec::new();
    for n in nodes {
        if ctx.origins.origin_gone(&n.node_id) {
            explain(&n.node_id, "excluded_departed");
            continue;
        }
        if cluster_filter.as_ref().is_some_and(|c| *c != n.cluster_id) {
            explain(&n.node_id, "excluded_cluster");
            continue;
        }
        let rec = ctx.peers.get(&n.node_id);
        if exclude_disconnected(rec, ctx.now.mono, ctx.settings.gossip_interval, hint) {
            let action = match rec.and_then(|r| r.liveness.as_ref()) {
                Some(Liveness::Disconnected { .. }) => "excluded_stale_disconnected",
                _ => "excluded_stale_ok",
            };
            explain(&n.node_id, action);
            continue;
        }
        explain(&n.node_id, "included");
        out.push((n.node_id.clone(), peer_snapshot(ctx, n)));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(Value::Array(out.into_iter().map(|(_, v)| v).collect()))
}

fn peer_snapshot(ctx: &Ctx<'_>, n: &NodeDescriptor) -> Value {
    let rec = ctx.peers.get(&n.node_id);
    let status = rec.and_then(|r| r.status.as_ref());
    let (funs, mut locs) = served_by(ctx, &n.node_id);
    locs.extend(n.resources.iter().cloned());
    let region = if !n.region.is_empty() {
        n.region.clone()
    } else {
        status.map(|s| s.region.clone()).unwrap_or_default()
    };
    let scope = if n.cluster_id == ctx.me.cluster_id {
        "zone"
    } else if !region.is_empty() && region == ctx.settings.cache_region {
        "region"
    } else if !region.is_empty() {
        "global"
    } else {
        "region"
    };
    let mut obj = Map::new();
    obj.insert("url".into(), json!(n.node_id));
    obj.insert("cluster_id".into(), json!(n.cluster_id));
    obj.insert("funs".into(), json!(funs));
    obj.insert("locs".into(), json!(locs));
    obj.insert("last_seen".into(), json!(n.advertised_at));
    obj.insert(
        "status".into(),
        json!(status.map(|s| s.status.as_str()).unwrap_or("unknown")),
    );
    obj.insert(
        "status_timestamp".into(),
        json!(rec.and_then(|r| r.status_wall)),
    );
    obj.insert("scope".into(), json!(scope));
    if !region.is_empty() {
        obj.insert("region".into(), json!(region));
    }
    obj.insert(
        "advertised_urls".into(),
        json!(advertised_urls(status, &n.node_id)),
    );
    obj.insert(
        "transport_endpoints".into(),
        serde_json::to_value(&n.transport_endpoints).unwrap_or(Value::Null),
    );
    obj.insert("load".into(), load(ctx, &n.node_id));
    Value::Object(obj)
}

/// Function names a node serves and the resources those functions need.
fn served_by(ctx: &Ctx<'_>, node_id: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut funs = BTreeSet::new();
    let mut locs = BTreeSet::new();
    for e in ctx.catalog.by_node(node_id) {
        if let Entry::Function(f) = e {
            funs.insert(f.identity.name.clone());
            locs.extend(f.resources.iter().cloned());
        }
    }
    (funs, locs)
}

fn advertised_urls(status: Option<&Status>, node_id: &str) -> Vec<String> {
    match status {
        Some(s) if !s.advertised_urls.is_empty() => s.advertised_urls.clone(),
        _ => vec![node_id.to_string()],
    }
}

/// MPREG's NodeLoadMetrics for a node, from its latest STATUS (our own for
/// this node), or `null` when none was received.
fn load(ctx: &Ctx<'_>, node_id: &str) -> Value {
    let gi = ctx.settings.gossip_interval;
    let (status, age, ts) = if node_id == ctx.me.node_id {
        (Some(ctx.own_status), Some(0.0), Some(ctx.now.wall))
    } else {
        let rec = ctx.peers.get(node_id);
        let age = rec.and_then(|r| r.liveness.as_ref()).map(|l| {
            let at = match l {
                Liveness::Ok { at } => *at,
                Liveness::Disconnected { since } => *since,
            };
            ctx.now.mono.saturating_duration_since(at).as_secs_f64()
        });
        (
            rec.and_then(|r| r.status.as_ref()),
            age,
            rec.and_then(|r| r.status_wall),
        )
    };
    let Some(s) = status else { return Value::Null };
    let mut score = s.active_clients as f64;
    if s.status != "ok" {
        score += 1000.0;
    }
    if age.is_none_or(|a| a > load_stale_after(gi)) {
        score += 500.0;
    }
    json!({
        "active_clients": s.active_clients,
        "peer_count": s.peer_count,
        "status": s.status,
        "status_timestamp": ts,
        "messages_processed": s.metrics.messages_processed,
        "rpc_responses_skipped": s.metrics.rpc_responses_skipped,
        "server_messages": s.metrics.server_messages,
        "other_messages": s.metrics.other_messages,
        "load_score": score,
    })
}

/// `cluster_map` (v1): every live catalog node, this one included, sorted
/// by `(cluster_id, node_id)`.
pub fn cluster_map(ctx: &Ctx<'_>) -> Value {
    let mut nodes: Vec<&NodeDescriptor> = ctx
        .catalog
        .iter(EntryKind::Nodes)
        .filter_map(|e| match e {
            Entry::Node(n) if !e.is_expired(ctx.now.wall) => Some(n),
            _ => None,
        })
        .collect();
    nodes.sort_by(|a, b| (&a.cluster_id, &a.node_id).cmp(&(&b.cluster_id, &b.node_id)));
    let nodes: Vec<Value> = nodes.into_iter().map(|n| node_snapshot(ctx, n)).collect();
    json!({"cluster_id": ctx.me.cluster_id, "generated_at": ctx.now.wall, "nodes": nodes})
}

/// MPREG's ClusterNodeSnapshot.
pub fn node_snapshot(ctx: &Ctx<'_>, n: &NodeDescriptor) -> Value {
    let status = if n.node_id == ctx.me.node_id {
        Some(ctx.own_status)
    } else {
        ctx.peers.get(&n.node_id).and_then(|r| r.status.as_ref())
    };
    let mut obj = Map::new();
    obj.insert("node_id".into(), json!(n.node_id));
    obj.insert("cluster_id".into(), json!(n.cluster_id));
    obj.insert("resources".into(), json!(n.resources));
    obj.insert("capabilities".into(), json!(n.capabilities));
    if !n.region.is_empty() {
        obj.insert("region".into(), json!(n.region));
    }
    obj.insert("scope".into(), json!(n.scope.as_str()));
    if !n.tags.is_empty() {
        obj.insert("tags".into(), json!(n.tags));
    }
    obj.insert(
        "transport_endpoints".into(),
        serde_json::to_value(&n.transport_endpoints).unwrap_or(Value::Null),
    );
    obj.insert(
        "advertised_urls".into(),
        json!(advertised_urls(status, &n.node_id)),
    );
    obj.insert("advertised_at".into(), json!(n.advertised_at));
    obj.insert("load".into(), load(ctx, &n.node_id));
    Value::Object(obj)
}
