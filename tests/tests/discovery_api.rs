//! Black-box tests of the discovery query RPCs against real nodes: the
//! scenarios of `reference/discovery_logic.md` §10 that concern
//! `catalog_query`, `cluster_map_v2`, `rpc_list` / `rpc_describe` /
//! `rpc_report` and `catalog_watch`, plus every filter and error path of
//! those RPCs.
//!
//! Nodes declare their entries in a settings file (`[[functions]]`,
//! `[[services]]`, `[[queues]]`, `[[topics]]`).

use std::collections::BTreeSet;
use std::time::Duration;

use mpreg_tests::{
    check_error_envelope, preview, wait_for, wait_for_mesh, Conn, Node, DEFAULT_TIMEOUT,
};
use serde_json::{json, Value};

/// The settings file of the single-node tests.
const MARKET: &str = r#"
cluster_id = "market"
resources = ["market"]

[[functions]]
name = "svc.market.zone"
scope = "zone"
tags = ["alpha"]

[[functions]]
name = "svc.market.region"
scope = "region"
tags = ["beta"]
summary = "A regional function."

[[functions]]
name = "svc.market.quote"
version = "1.2.0"
resources = ["market"]
tags = ["alpha"]
summary = "Return a quote."

[[functions]]
name = "svc.market.quote"
version = "2.0.0"

[[functions]]
name = "svc.alpha.one"

[[functions]]
name = "svc2.alpha.two"

[[services]]
name = "quotes"
namespace = "svc.market"
protocol = "tcp"
port = 8080
capabilities = ["http"]
tags = ["alpha"]

[[services]]
name = "quotes"
namespace = "svc.market.eu"
protocol = "udp"
port = 5353

[[services]]
name = "promo"
namespace = "svc.marketing"
port = 80

[[queues]]
queue_name = "svc.market.orders"
tags = ["alpha"]

[[queues]]
queue_name = "svc.marketing.leads"

[[topics]]
subscription_id = "ticks"
patterns = ["svc.market.ticks.#"]

[[topics]]
subscription_id = "audit"
patterns = ["audit.*"]
"#;

fn market_node() -> Node {
    Node::start_with_config(MARKET, std::iter::empty::<&str>())
}

fn strings(res: &Value, list: &str, pointer: &str) -> Vec<String> {
    res[list]
        .as_array()
        .unwrap_or_else(|| panic!("{list} is not an array: {}", preview(res)))
        .iter()
        .map(|it| {
            it.pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("no {pointer} in {}", preview(it)))
                .to_string()
        })
        .collect()
}

fn names(res: &Value) -> Vec<String> {
    strings(res, "items", "/identity/name")
}

/// Calls `fun` and expects error 1003; returns its details.
fn expect_1003(conn: &mut Conn, fun: &str, payload: Value) -> String {
    let reply = conn.call(fun, json!([payload]), json!({}));
    let u = reply["u"].as_str().unwrap_or_default().to_string();
    if let Err(e) = check_error_envelope(&reply, &u, 1003) {
        panic!("{fun}({payload}): {e}");
    }
    reply["error"]["details"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Follows `next_page_token` from `first`, returning every page.
fn all_pages(conn: &mut Conn, fun: &str, request: Value) -> Vec<Value> {
    let mut pages = Vec::new();
    let mut req = request;
    for _ in 0..100 {
        let page = conn.call_ok(fun, req.clone());
        let token = page.get("next_page_token").cloned();
        pages.push(page);
        match token {
            None => return pages,
            Some(Value::String(t)) => req["page_token"] = json!(t),
            Some(other) => panic!("next_page_token should be a string: {other}"),
        }
    }
    panic!("{fun} did not finish within 100 pages");
}

/// Scenario 7 (`test_catalog_query_scope_and_tags_filters`) and every
/// `catalog_query` filter on one node.
#[test]
fn catalog_query_filters_on_one_node() {
    let node = market_node();
    let mut conn = node.connect();
    let q = |conn: &mut Conn, req: Value| conn.call_ok("catalog_query", req);

    let res = q(
        &mut conn,
        json!({"entry_type": "functions", "namespace": "svc.market", "scope": "region"}),
    );
    assert_eq!(names(&res), ["svc.market.region"], "{}", preview(&res));
    let res = q(
        &mut conn,
        json!({"entry_type": "functions", "tags": ["beta"]}),
    );
    assert_eq!(names(&res), ["svc.market.region"]);
    let res = q(
        &mut conn,
        json!({"entry_type": "functions", "tags": "alpha"}),
    );
    assert_eq!(names(&res), ["svc.market.quote", "svc.market.zone"]);

    // Identity, versions, resources, node capabilities.
    let versions = |conn: &mut Conn, extra: Value| {
        let mut req = json!({"entry_type": "functions", "function_name": "svc.market.quote"});
        for (k, v) in extra.as_object().unwrap() {
            req[k] = v.clone();
        }
        strings(&q(conn, req), "items", "/identity/version")
    };
    assert_eq!(versions(&mut conn, json!({})), ["1.2.0", "2.0.0"]);
    assert_eq!(
        versions(&mut conn, json!({"version_constraint": ">=1.0.0,<2.0.0"})),
        ["1.2.0"]
    );
    assert_eq!(
        versions(&mut conn, json!({"version_constraint": "==2"})),
        ["2.0.0"]
    );
    assert_eq!(
        versions(&mut conn, json!({"version_constraint": "1.2.0"})),
        ["1.2.0"]
    );
    assert_eq!(
        versions(&mut conn, json!({"resources": ["market"]})),
        ["1.2.0"]
    );
    assert_eq!(
        versions(&mut conn, json!({"capabilities": ["rpc"]})).len(),
        2
    );
    assert!(versions(&mut conn, json!({"capabilities": ["gpu"]})).is_empty());
    assert_eq!(
        versions(&mut conn, json!({"function_id": "svc.market.quote"})).len(),
        2
    );
    let details = expect_1003(
        &mut conn,
        "catalog_query",
        json!({"entry_type": "functions", "version_constraint": ">=banana"}),
    );
    assert!(
        details.contains("Invalid version_constraint \">=banana\""),
        "{details}"
    );

    // Every function item carries MPREG's RpcSpecSummary and its digest.
    let res = q(
        &mut conn,
        json!({"entry_type": "functions", "function_name": "svc.market.quote", "version_constraint": "1.2.0"}),
    );
    let item = &res["items"][0];
    assert_eq!(item["rpc_summary"]["summary"], "Return a quote.");
    assert_eq!(item["rpc_summary"]["namespace"], "svc.market");
    assert_eq!(item["rpc_summary"]["spec_version"], "1");
    assert_eq!(item["rpc_summary"]["spec_digest"], item["spec_digest"]);
    assert_eq!(item["spec_digest"].as_str().map(str::len), Some(64));

    // Queues, services, topics.
    let res = q(
        &mut conn,
        json!({"entry_type": "queues", "namespace": "svc.market"}),
    );
    assert_eq!(strings(&res, "items", "/queue_name"), ["svc.market.orders"]);
    let res = q(
        &mut conn,
        json!({"entry_type": "queue", "queue_name": "svc.marketing.leads"}),
    );
    assert_eq!(
        strings(&res, "items", "/queue_name"),
        ["svc.marketing.leads"]
    );
    let res = q(
        &mut conn,
        json!({"entry_type": "services", "namespace": "svc.market"}),
    );
    assert_eq!(
        strings(&res, "items", "/namespace"),
        ["svc.market", "svc.market.eu"]
    );
    let res = q(
        &mut conn,
        json!({"entry_type": "services", "service_name": "quotes", "service_protocol": "udp", "service_port": 5353}),
    );
    assert_eq!(strings(&res, "items", "/namespace"), ["svc.market.eu"]);
    let res = q(
        &mut conn,
        json!({"entry_type": "services", "capabilities": ["http"], "tags": ["alpha"]}),
    );
    assert_eq!(strings(&res, "items", "/name"), ["quotes"]);
    let res = q(
        &mut conn,
        json!({"entry_type": "topics", "topic": "svc.market.ticks.eu.fx"}),
    );
    assert_eq!(strings(&res, "items", "/subscription_id"), ["ticks"]);
    let res = q(
        &mut conn,
        json!({"entry_type": "topics", "topic": "audit.login"}),
    );
    assert_eq!(strings(&res, "items", "/subscription_id"), ["audit"]);
    let res = q(
        &mut conn,
        json!({"entry_type": "topics", "topic": "audit.login.x"}),
    );
    assert_eq!(res["items"], json!([]));

    // Scope location limits: a conflicting cluster is an empty page.
    let res = q(
        &mut conn,
        json!({"entry_type": "nodes", "scope": "zone", "cluster_id": "other"}),
    );
    assert_eq!(res["items"], json!([]));
    let res = q(&mut conn, json!({"entry_type": "nodes", "scope": "local"}));
    assert_eq!(strings(&res, "items", "/node_id"), [node.url()]);
    let details = expect_1003(
        &mut conn,
        "catalog_query",
        json!({"entry_type": "nodes", "scope": "nebula"}),
    );
    assert!(
        details.contains("Unsupported discovery scope: nebula"),
        "{details}"
    );
    let details = expect_1003(
        &mut conn,
        "catalog_query",
        json!({"entry_type": "nodes", "page_token": "200:200"}),
    );
    assert!(details.contains("invalid page_token"), "{details}");
}

/// Scenario 5 (`test_namespace_filter_boundary_in_discovery`, the rpc_list
/// half) and the rpc_* RPCs on one node.
#[test]
fn rpc_catalog_on_one_node() {
    let node = market_node();
    let mut conn = node.connect();

    let res = conn.call_ok("rpc_list", json!({"namespace": "svc"}));
    let listed = names(&res);
    assert!(listed.contains(&"svc.alpha.one".to_string()), "{listed:?}");
    assert!(listed.iter().all(|n| !n.starts_with("svc2.")), "{listed:?}");
    let item = &res["items"][0];
    for key in [
        "identity",
        "namespace",
        "node_id",
        "cluster_id",
        "resources",
        "tags",
        "scope",
        "summary",
        "spec_digest",
    ] {
        assert!(
            item.get(key).is_some(),
            "rpc_list item lacks {key}: {}",
            preview(item)
        );
    }
    // Built-in commands have no namespace: the key is omitted.
    let res = conn.call_ok("rpc_list", json!({"function_name": "echo"}));
    assert!(
        res["items"][0].get("namespace").is_none(),
        "{}",
        preview(&res)
    );
    assert_eq!(res["items"][0]["resources"], json!([]));
    let res = conn.call_ok("rpc_list", json!({"query": "QUOTE"}));
    assert_eq!(names(&res), ["svc.market.quote", "svc.market.quote"]);
    let res = conn.call_ok("rpc_list", json!({"query": "regional"}));
    assert_eq!(names(&res), ["svc.market.region"]);

    // rpc_describe: full specs for this node's functions, in every mode.
    for req in [
        json!({"function_names": ["svc.market.region"]}),
        json!({"function_names": ["svc.market.region"], "mode": "catalog"}),
        json!({"function_names": ["svc.market.region"], "mode": "local"}),
        json!({"function_names": ["svc.market.region"], "mode": "scatter"}),
    ] {
        let res = conn.call_ok("rpc_describe", req.clone());
        assert_eq!(names(&res), ["svc.market.region"], "{req}");
        let spec = &res["items"][0]["spec"];
        assert_eq!(spec["doc"]["summary"], "A regional function.", "{req}");
        assert_eq!(spec["scope"], "region");
        assert_eq!(spec["spec_digest"], res["items"][0]["spec_digest"]);
        assert_eq!(res["errors"], json!([]));
    }
    let res = conn.call_ok(
        "rpc_describe",
        json!({"detail_level": "summary", "function_ids": ["catalog_query"]}),
    );
    assert!(res["items"][0].get("spec").is_none());
    assert_eq!(res["items"][0]["summary"]["parameter_count"], 2);
    let res = conn.call_ok("rpc_describe_local", json!({"namespace": "svc.market"}));
    assert_eq!(names(&res).len(), 4);
    let details = expect_1003(&mut conn, "rpc_describe", json!({"mode": "telepathy"}));
    assert!(
        details.contains("Unsupported rpc_describe mode: telepathy"),
        "{details}"
    );

    let res = conn.call_ok("rpc_report", json!({"namespace": "svc.market"}));
    assert_eq!(res["total_functions"], 4);
    assert_eq!(
        res["namespace_counts"],
        json!([{"key": "svc.market", "count": 4}])
    );
    assert_eq!(
        res["cluster_counts"],
        json!([{"key": "market", "count": 4}])
    );
    assert_eq!(
        res["tag_counts"],
        json!([{"key": "alpha", "count": 2}, {"key": "beta", "count": 1}])
    );
    let res = conn.call_ok("rpc_report", Value::Null);
    assert!(
        res["total_functions"].as_u64().unwrap_or(0) > 10,
        "{}",
        preview(&res)
    );
}

/// `catalog_watch` names the topic (the watch half of §7.4; deltas are
/// delivered once the node publishes them).
#[test]
fn catalog_watch_returns_the_topic() {
    let node = market_node();
    let mut conn = node.connect();
    let res = conn.call_ok("catalog_watch", Value::Null);
    assert_eq!(res["topic"], "mpreg.discovery.delta");
    assert_eq!(res["cluster_id"], "market");
    assert!(res["generated_at"].is_f64());
    let res = conn.call_ok(
        "catalog_watch",
        json!({"namespace": "svc.market", "scope": "zone"}),
    );
    assert_eq!(res["topic"], "mpreg.discovery.delta.svc.market");
    assert_eq!(res["scope"], "zone");
    assert_eq!(res["namespace"], "svc.market");
    let details = expect_1003(&mut conn, "catalog_watch", json!({"scope": "everywhere"}));
    assert!(
        details.contains("Unsupported discovery scope: everywhere"),
        "{details}"
    );
    // MPREG's client subscribes to that topic on the same connection.
    let sub = json!({"role": "pubsub-subscribe", "u": "sub-1", "subscription": {
        "subscription_id": "w1",
        "patterns": [{"pattern": "mpreg.discovery.delta.svc.market", "exact_match": true}],
        "subscriber": "test", "created_at": 1.0, "get_backlog": false, "backlog_seconds": 300}});
    let ack = conn.request("sub-1", &sub);
    assert_eq!(ack["success"], json!(true), "{}", preview(&ack));
}

/// The 3-node scenarios: 6 (`test_catalog_query_functions_and_nodes`) and
/// the cluster map tests of §7.3, plus specs of remote functions and the
/// local-only commands (§7.5).
#[test]
fn three_node_discovery() {
    let config = |functions: &[&str], extra: &str| {
        let mut c = String::from("cluster_id = \"market\"\n");
        c.push_str(extra);
        for f in functions {
            c.push_str(&format!(
                "\n[[functions]]\nname = \"{f}\"\nsummary = \"{f} summary\"\n"
            ));
        }
        c
    };
    let a = Node::start_with_config(
        &config(&["svc.market.quote"], ""),
        std::iter::empty::<&str>(),
    );
    let b = Node::start_with_config(
        &config(&["svc.market.indicator"], "resources = [\"queue-node\"]\n"),
        ["--peer", a.url()],
    );
    let c = Node::start_with_config(&config(&["svc.other.quote"], ""), ["--peer", a.url()]);
    let nodes = [a, b, c];
    if let Err(e) = wait_for_mesh(&nodes, Duration::from_secs(15)) {
        panic!("{e}");
    }
    let mut conn = nodes[2].connect();
    // Wait until node c's catalog holds every node's functions.
    let seen = wait_for(Duration::from_secs(10), Duration::from_millis(100), || {
        let res = conn.call_ok(
            "catalog_query",
            json!({"entry_type": "functions", "namespace": "svc"}),
        );
        (names(&res).len() == 3).then_some(res)
    });
    assert!(seen.is_some(), "functions never reached node c");

    // Scenario 6: page through svc.market one item at a time.
    let pages = all_pages(
        &mut conn,
        "catalog_query",
        json!({"entry_type": "functions", "namespace": "svc.market", "limit": 1}),
    );
    assert!(pages.len() >= 2, "limit 1 should need several pages");
    assert_eq!(pages[0]["items"].as_array().map(Vec::len), Some(1));
    assert!(pages[0]["next_page_token"].is_string());
    let got: Vec<String> = pages.iter().flat_map(names).collect();
    assert_eq!(got, ["svc.market.indicator", "svc.market.quote"], "{got:?}");
    let res = conn.call_ok(
        "catalog_query",
        json!({"entry_type": "nodes", "scope": "local"}),
    );
    assert_eq!(strings(&res, "items", "/node_id"), [nodes[2].url()]);

    // cluster_map_v2 (test_cluster_map_v2_paginates_and_scopes).
    let map = conn.call_ok("cluster_map_v2", Value::Null);
    assert_eq!(map["cluster_id"], "market");
    let all: Vec<String> = strings(&map, "nodes", "/node_id");
    assert_eq!(all.len(), 3, "{all:?}");
    for n in map["nodes"].as_array().unwrap() {
        assert_eq!(n["region"], "local", "{}", preview(n));
        assert!(n.get("load").is_some() && n.get("advertised_urls").is_some());
    }
    let pages = all_pages(
        &mut conn,
        "cluster_map_v2",
        json!({"scope": "zone", "limit": 2}),
    );
    assert_eq!(pages[0]["nodes"].as_array().map(Vec::len), Some(2));
    assert!(pages[0]["next_page_token"].is_string());
    let paged: Vec<String> = pages
        .iter()
        .flat_map(|p| strings(p, "nodes", "/node_id"))
        .collect();
    let unique: BTreeSet<&String> = paged.iter().collect();
    assert_eq!(
        unique.len(),
        paged.len(),
        "duplicates across pages: {paged:?}"
    );
    assert_eq!(paged, all);
    let res = conn.call_ok("cluster_map_v2", json!({"scope": "local"}));
    assert_eq!(strings(&res, "nodes", "/node_id"), [nodes[2].url()]);
    // test_cluster_map_v2_resource_filter: a non-empty strict subset.
    let res = conn.call_ok("cluster_map_v2", json!({"resources": ["queue-node"]}));
    assert_eq!(strings(&res, "nodes", "/node_id"), [nodes[1].url()]);
    let res = conn.call_ok("cluster_map_v2", json!({"namespace_filter": "queue-node"}));
    assert_eq!(strings(&res, "nodes", "/node_id"), [nodes[1].url()]);

    // Remote functions are described with full specs rebuilt from their
    // gossiped entries and checked against their digests.
    let res = conn.call_ok("rpc_describe", json!({"namespace": "svc"}));
    assert_eq!(
        names(&res),
        [
            "svc.market.indicator",
            "svc.market.quote",
            "svc.other.quote"
        ]
    );
    for item in res["items"].as_array().unwrap() {
        assert_eq!(
            item["spec"]["spec_digest"],
            item["spec_digest"],
            "{}",
            preview(item)
        );
    }
    assert_eq!(res["errors"], json!([]));
    let res = conn.call_ok("rpc_describe", json!({"namespace": "svc", "mode": "local"}));
    assert_eq!(names(&res), ["svc.other.quote"]);
    let res = conn.call_ok("rpc_report", json!({"namespace": "svc"}));
    assert_eq!(res["total_functions"], 3);

    // Local-only control plane commands answer on every node.
    for node in &nodes {
        let mut conn = node.connect();
        for (fun, payload) in [
            ("catalog_query", json!({"entry_type": "nodes"})),
            ("catalog_watch", Value::Null),
            ("cluster_map", Value::Null),
            ("cluster_map_v2", Value::Null),
            ("list_peers", Value::Null),
            ("rpc_list", Value::Null),
            ("rpc_describe", Value::Null),
            ("rpc_describe_local", Value::Null),
            ("rpc_report", Value::Null),
        ] {
            conn.set_timeout(DEFAULT_TIMEOUT);
            conn.call_ok(fun, payload);
        }
    }
}
