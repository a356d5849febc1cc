//! `cluster_map_v2` (`client_protocol.md` §3.4, `discovery_logic.md` §7.3):
//! the paged, filtered membership view.
//!
//! Request: `scope`, `namespace_filter`, `capabilities`, `resources`,
//! `cluster_id`, `limit`, `page_token` (and `viewer_tenant_id`, accepted
//! and unused until namespace policy exists). Response: `{cluster_id (this
//! node's), generated_at, nodes: [ClusterNodeSnapshot], next_page_token?}`,
//! nodes sorted by `(cluster_id, node_id)`.
//!
//! Semantics (ours where MPREG is quirky):
//! - `scope` is the one scope rule, as in `catalog_query`: `local` is this
//!   node, `zone` this cluster, and a node is kept only if its advertised
//!   scope is at least as wide as the requested one. A `cluster_id` that
//!   contradicts the scope gives an empty page.
//! - `capabilities` / `resources`: the node must have all of them.
//! - `namespace_filter` uses the one dot-boundary rule ([`NamespaceFilter`])
//!   where MPREG uses a plain string prefix: a node is kept when its
//!   `cluster_id`, `node_id`, any resource or any capability equals the
//!   filter or lies under it (`market` keeps cluster `market.eu` and resource
//!   `market`, not cluster `marketing`). A node id is a URL, so in practice
//!   only an exact node id matches it.
//! - Pages are keyset cursors over `(cluster_id, node_id)`, like every paged
//!   RPC here; `limit` is clamped to `[1, 2000]`, default 200.

use serde_json::{json, Map, Value};

use super::catalog_query::{page, Paging, Selection};
use super::peers::node_snapshot;
use super::request::Payload;
use super::Ctx;
use crate::catalog::entry::{Entry, EntryKind};
use crate::catalog::namespace::NamespaceFilter;
use crate::wire::client::RpcError;

/// Whether a node descriptor passes `cluster_map_v2`'s `namespace_filter`.
pub fn node_in_namespace(filter: &NamespaceFilter, e: &Entry) -> bool {
    if filter.is_all() {
        return true;
    }
    match e {
        Entry::Node(n) => {
            filter.matches(&n.cluster_id)
                || filter.matches(&n.node_id)
                || n.resources.iter().any(|r| filter.matches(r))
                || n.capabilities.iter().any(|c| filter.matches(c))
        }
        _ => false,
    }
}

/// Runs `cluster_map_v2`.
pub fn run(ctx: &Ctx<'_>, payload: &Map<String, Value>) -> Result<Value, RpcError> {
    let p = Payload::new("cluster_map_v2", payload);
    let scope = p.scope()?;
    let filter = NamespaceFilter::parse(p.str("namespace_filter")?.as_deref().unwrap_or(""));
    let _tenant = p.str("viewer_tenant_id")?;
    let mut sel = Selection::new(EntryKind::Nodes);
    sel.capabilities = p.str_list("capabilities")?;
    sel.resources = p.str_list("resources")?;
    sel.cluster_id = p.str("cluster_id")?;
    sel.narrow_to_scope(ctx, scope);
    let paging = Paging::parse(&p, EntryKind::Nodes)?;
    let page = page(ctx, &sel, &paging, |e| node_in_namespace(&filter, e));
    let nodes: Vec<Value> = page
        .items
        .iter()
        .filter_map(|e| match e {
            Entry::Node(n) => Some(node_snapshot(ctx, n)),
            _ => None,
        })
        .collect();
    let mut res = Map::new();
    res.insert("cluster_id".into(), json!(ctx.me.cluster_id));
    res.insert("generated_at".into(), json!(ctx.now.wall));
    res.insert("nodes".into(), Value::Array(nodes));
    if let Some(token) = page.next_page_token {
        res.insert("next_page_token".into(), json!(token));
    }
    Ok(Value::Object(res))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::api::testutil::*;
    use crate::catalog::scope::Scope;

    fn fixture() -> Fixture {
        let mut fx = Fixture::new();
        let mut b = node("ws://b:1", CLUSTER);
        b.resources.insert("queue-node".into());
        fx.add(b);
        let mut c = node("ws://c:1", CLUSTER).with_scope(Scope::Region);
        c.capabilities.insert("queue".into());
        fx.add(c);
        fx.add(node("ws://d:1", "market.eu").with_scope(Scope::Global));
        fx.add(node("ws://e:1", "marketing"));
        fx
    }

    fn ids(res: &serde_json::Value) -> Vec<String> {
        strings(res, "nodes", "/node_id")
    }

    #[test]
    fn unfiltered_map_lists_every_node_with_snapshots() {
        let fx = fixture();
        let res = fx.ok("cluster_map_v2", json!(null));
        assert_eq!(res["cluster_id"], CLUSTER);
        assert_eq!(res["generated_at"], json!(NOW));
        assert_eq!(
            ids(&res),
            [ME, "ws://b:1", "ws://c:1", "ws://d:1", "ws://e:1"]
        );
        assert!(res.get("next_page_token").is_none());
        let me = &res["nodes"][0];
        for key in [
            "node_id",
            "cluster_id",
            "resources",
            "capabilities",
            "region",
            "scope",
            "transport_endpoints",
            "advertised_urls",
            "advertised_at",
            "load",
        ] {
            assert!(me.get(key).is_some(), "{key} missing: {me}");
        }
        assert_eq!(me["load"]["status"], "ok");
        assert_eq!(res["nodes"][1]["load"], json!(null));
    }

    #[test]
    fn scope_and_filters() {
        let fx = fixture();
        let map = |req| ids(&fx.ok("cluster_map_v2", req));
        assert_eq!(map(json!({"scope": "local"})), [ME]);
        assert_eq!(map(json!({"scope": "zone"})), [ME, "ws://b:1", "ws://c:1"]);
        assert_eq!(map(json!({"scope": "region"})), ["ws://c:1", "ws://d:1"]);
        assert_eq!(map(json!({"scope": "global"})), ["ws://d:1"]);
        assert!(map(json!({"scope": "zone", "cluster_id": "marketing"})).is_empty());
        assert_eq!(map(json!({"cluster_id": "marketing"})), ["ws://e:1"]);
        assert_eq!(map(json!({"resources": ["queue-node"]})), ["ws://b:1"]);
        assert_eq!(map(json!({"capabilities": ["rpc", "queue"]})), ["ws://c:1"]);
        assert_eq!(map(json!({"capabilities": "queue"})), ["ws://c:1"]);
        // Dot-boundary namespace filter over cluster, node id, resources,
        // capabilities.
        assert_eq!(map(json!({"namespace_filter": "market"})), ["ws://d:1"]);
        assert_eq!(map(json!({"namespace_filter": "marketing"})), ["ws://e:1"]);
        assert_eq!(map(json!({"namespace_filter": "queue"})), ["ws://c:1"]);
        assert_eq!(map(json!({"namespace_filter": "queue-node"})), ["ws://b:1"]);
        assert_eq!(map(json!({"namespace_filter": "ws://b:1"})), ["ws://b:1"]);
        assert_eq!(map(json!({"namespace_filter": "*"})).len(), 5);
        assert_eq!(
            fx.err("cluster_map_v2", json!({"scope": "moon"})),
            "Unsupported discovery scope: moon"
        );
        fx.err("cluster_map_v2", json!({"capabilities": [1]}));
        fx.err("cluster_map_v2", json!({"limit": "x"}));
        fx.err("cluster_map_v2", json!({"page_token": "1:1"}));
    }

    #[test]
    fn pages_with_keyset_tokens() {
        let fx = fixture();
        let first = fx.ok("cluster_map_v2", json!({"scope": "zone", "limit": 2}));
        assert_eq!(ids(&first), [ME, "ws://b:1"]);
        let token = first["next_page_token"].as_str().unwrap().to_string();
        let second = fx.ok(
            "cluster_map_v2",
            json!({"scope": "zone", "page_token": token}),
        );
        assert_eq!(ids(&second), ["ws://c:1"]);
        assert!(second.get("next_page_token").is_none());
        // Nodes are in the same order everywhere: a `catalog_query` nodes
        // token pages the map too (with its page size); a functions token
        // does not.
        let f = fx.ok("catalog_query", json!({"entry_type": "nodes", "limit": 1}));
        let t = f["next_page_token"].as_str().unwrap();
        assert_eq!(
            ids(&fx.ok("cluster_map_v2", json!({"page_token": t}))),
            ["ws://b:1"]
        );
        let f = fx.ok(
            "catalog_query",
            json!({"entry_type": "functions", "limit": 1}),
        );
        assert!(f.get("next_page_token").is_none());
        let res = fx.call(
            "cluster_map_v2",
            json!({"page_token": "k1:1:functions|a|a|01|c|n"}),
        );
        assert!(res
            .unwrap_err()
            .details
            .unwrap()
            .contains("pages over functions"));
    }
}
