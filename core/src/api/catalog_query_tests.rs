use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::api::testutil::*;
use crate::catalog::entry::EntryKey;

#[test]
fn limits_are_clamped() {
    assert_eq!(clamp_limit(0), 1);
    assert_eq!(clamp_limit(-5), 1);
    assert_eq!(clamp_limit(5), 5);
    assert_eq!(clamp_limit(1_000_000), MAX_LIMIT);
}

#[test]
fn bad_tokens_are_errors_not_panics() {
    for raw in [
        "",
        "200:200",
        "k1:",
        "k1:x:y",
        "k1:5",
        "k1:99999999999999999999999:a",
    ] {
        assert!(PageToken::decode(raw).is_err(), "{raw}");
    }
}

/// A node `ws://n2:1` of cluster c1 with capability `gpu` and resource
/// `market`, a node of cluster c2, and functions, queues, services and
/// topics spread over them.
fn market() -> Fixture {
    let mut fx = Fixture::new();
    let mut n2 = node("ws://n2:1", CLUSTER).with_scope(Scope::Region);
    n2.capabilities.insert("gpu".into());
    n2.resources.insert("market".into());
    fx.add(n2);
    fx.add(node("ws://n3:1", "c2").with_scope(Scope::Global));
    fx.add(
        func("svc.market.quote", "1.2.0", ME, CLUSTER)
            .with_tags(["alpha"])
            .with_resources(["market"]),
    );
    fx.add(
        func("svc.market.quote", "2.0.0", "ws://n2:1", CLUSTER)
            .with_tags(["alpha", "beta"])
            .with_scope(Scope::Region),
    );
    fx.add(func("svc.market.indicator", "1.0.0", "ws://n2:1", CLUSTER).with_tags(["beta"]));
    fx.add(func("svc.marketing.promo", "1.0.0", ME, CLUSTER));
    fx.add(func("svc.other.quote", "1.0.0", "ws://n3:1", "c2").with_scope(Scope::Global));
    fx.add(func("echo", "1.0.0", ME, CLUSTER));
    fx.add(queue("svc.market.orders", ME, CLUSTER).with_tags(["alpha"]));
    fx.add(queue("svc.marketing.leads", ME, CLUSTER));
    let mut s = service("quotes", "svc.market", "tcp", 8080, "ws://n2:1", CLUSTER);
    s.capabilities.insert("http".into());
    fx.add(s);
    fx.add(service("quotes", "svc.market.eu", "udp", 53, ME, CLUSTER));
    fx.add(service("other", "svc.marketplace", "tcp", 80, ME, CLUSTER));
    fx.add(topic("t1", &["svc.market.ticks.#"], ME, CLUSTER));
    fx.add(topic(
        "t2",
        &["svc.*.ticks", "audit.#"],
        "ws://n2:1",
        CLUSTER,
    ));
    fx
}

fn names(res: &Value) -> Vec<String> {
    strings(res, "items", "/identity/name")
}

fn q(fx: &Fixture, req: Value) -> Value {
    fx.ok("catalog_query", req)
}

#[test]
fn functions_filter_by_namespace_on_dot_boundaries() {
    let fx = market();
    let res = q(
        &fx,
        json!({"entry_type": "functions", "namespace": "svc.market"}),
    );
    assert_eq!(res["entry_type"], "functions");
    assert_eq!(
        names(&res),
        [
            "svc.market.indicator",
            "svc.market.quote",
            "svc.market.quote"
        ]
    );
    let res = q(
        &fx,
        json!({"entry_type": "function", "namespace": "svc.market.*"}),
    );
    assert_eq!(names(&res).len(), 3);
    let res = q(&fx, json!({"entry_type": "functions", "namespace": "svc"}));
    assert_eq!(names(&res).len(), 5);
    assert!(res.get("next_page_token").is_none());
}

#[test]
fn functions_filter_by_identity_version_resources_capabilities() {
    let fx = market();
    let quote = |extra: Value| {
        let mut req = json!({"entry_type": "functions", "function_name": "svc.market.quote"});
        for (k, v) in extra.as_object().unwrap() {
            req[k] = v.clone();
        }
        strings(&q(&fx, req), "items", "/identity/version")
    };
    assert_eq!(quote(json!({})), ["1.2.0", "2.0.0"]);
    assert_eq!(
        quote(json!({"version_constraint": ">=1.0.0,<2.0.0"})),
        ["1.2.0"]
    );
    assert_eq!(quote(json!({"version_constraint": "==2"})), ["2.0.0"]);
    assert_eq!(quote(json!({"version_constraint": "1.2"})), ["1.2.0"]);
    assert!(quote(json!({"version_constraint": ">2.0.0"})).is_empty());
    assert_eq!(quote(json!({"function_id": "svc.market.quote"})).len(), 2);
    assert!(quote(json!({"function_id": "other"})).is_empty());
    assert_eq!(quote(json!({"resources": ["market"]})), ["1.2.0"]);
    // The serving node's capabilities: only n2 has `gpu`.
    assert_eq!(quote(json!({"capabilities": ["gpu"]})), ["2.0.0"]);
    assert_eq!(quote(json!({"capabilities": ["rpc"]})), ["1.2.0", "2.0.0"]);
    assert!(quote(json!({"capabilities": ["rpc", "tpu"]})).is_empty());
    assert_eq!(quote(json!({"tags": "beta"})), ["2.0.0"]);
    assert_eq!(quote(json!({"tags": ["alpha", "beta"]})), ["2.0.0"]);
    let res = q(
        &fx,
        json!({"entry_type": "functions", "function_id": "svc.other.quote"}),
    );
    assert_eq!(names(&res), ["svc.other.quote"]);
    let err = fx.err(
        "catalog_query",
        json!({"entry_type": "functions", "version_constraint": ">=one"}),
    );
    assert!(
        err.contains("Invalid version_constraint \">=one\""),
        "{err}"
    );
}

#[test]
fn scope_limits_location_and_visibility() {
    let fx = market();
    // local: this node only.
    let res = q(
        &fx,
        json!({"entry_type": "functions", "scope": "local", "namespace": "svc"}),
    );
    assert_eq!(names(&res), ["svc.market.quote", "svc.marketing.promo"]);
    // zone: this cluster; entries of scope zone and wider.
    let res = q(
        &fx,
        json!({"entry_type": "functions", "scope": "zone", "namespace": "svc"}),
    );
    assert_eq!(names(&res).len(), 4);
    // region: everywhere, region and global entries only.
    let res = q(&fx, json!({"entry_type": "functions", "scope": "region"}));
    assert_eq!(names(&res), ["svc.market.quote", "svc.other.quote"]);
    let res = q(&fx, json!({"entry_type": "functions", "scope": "global"}));
    assert_eq!(names(&res), ["svc.other.quote"]);
    // Nodes follow the same rule.
    let nodes = |req: Value| strings(&q(&fx, req), "items", "/node_id");
    assert_eq!(
        nodes(json!({"entry_type": "nodes", "scope": "local"})),
        [ME]
    );
    assert_eq!(
        nodes(json!({"entry_type": "nodes", "scope": "zone"})),
        [ME, "ws://n2:1"]
    );
    assert_eq!(
        nodes(json!({"entry_type": "nodes", "scope": "region"})),
        ["ws://n2:1", "ws://n3:1"]
    );
    assert_eq!(
        nodes(json!({"entry_type": "nodes", "scope": "cluster"})).len(),
        2
    );
    // A conflicting cluster / node gives an empty result, not an error.
    for req in [
        json!({"entry_type": "nodes", "scope": "zone", "cluster_id": "c2"}),
        json!({"entry_type": "nodes", "scope": "local", "node_id": "ws://n2:1"}),
    ] {
        let res = q(&fx, req);
        assert_eq!(res["items"], json!([]));
    }
    let err = fx.err(
        "catalog_query",
        json!({"entry_type": "nodes", "scope": "planet"}),
    );
    assert_eq!(err, "Unsupported discovery scope: planet");
}

#[test]
fn nodes_filter_by_resources_and_capabilities_not_tags() {
    let fx = market();
    let nodes = |req: Value| strings(&q(&fx, req), "items", "/node_id");
    assert_eq!(
        nodes(json!({"entry_type": "nodes", "capabilities": ["gpu"]})),
        ["ws://n2:1"]
    );
    assert_eq!(
        nodes(json!({"entry_type": "nodes", "resources": ["market"]})),
        ["ws://n2:1"]
    );
    assert_eq!(
        nodes(json!({"entry_type": "nodes", "tags": ["x"]})).len(),
        3
    );
    assert_eq!(
        nodes(json!({"entry_type": "nodes", "cluster_id": "c2"})),
        ["ws://n3:1"]
    );
    assert_eq!(nodes(json!({"entry_type": "nodes", "node_id": ME})), [ME]);
}

#[test]
fn queues_services_and_topics() {
    let fx = market();
    let res = q(
        &fx,
        json!({"entry_type": "queues", "namespace": "svc.market"}),
    );
    assert_eq!(strings(&res, "items", "/queue_name"), ["svc.market.orders"]);
    let res = q(
        &fx,
        json!({"entry_type": "queues", "queue_name": "svc.marketing.leads"}),
    );
    assert_eq!(
        strings(&res, "items", "/queue_name"),
        ["svc.marketing.leads"]
    );
    let res = q(&fx, json!({"entry_type": "queues", "tags": ["alpha"]}));
    assert_eq!(strings(&res, "items", "/queue_name"), ["svc.market.orders"]);

    let svc = |req: Value| {
        let res = q(&fx, req);
        res["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                format!(
                    "{}/{}/{}",
                    s["namespace"].as_str().unwrap(),
                    s["name"].as_str().unwrap(),
                    s["port"]
                )
            })
            .collect::<Vec<_>>()
    };
    // The one namespace rule: svc.market covers svc.market.eu, not svc.marketplace.
    assert_eq!(
        svc(json!({"entry_type": "services", "namespace": "svc.market"})),
        ["svc.market/quotes/8080", "svc.market.eu/quotes/53"]
    );
    assert_eq!(
        svc(json!({"entry_type": "services", "service_name": "quotes", "service_protocol": "udp"})),
        ["svc.market.eu/quotes/53"]
    );
    assert_eq!(
        svc(json!({"entry_type": "services", "service_port": "8080"})),
        ["svc.market/quotes/8080"]
    );
    assert_eq!(
        svc(json!({"entry_type": "services", "capabilities": ["http"]})),
        ["svc.market/quotes/8080"]
    );
    let err = fx.err(
        "catalog_query",
        json!({"entry_type": "services", "service_port": 70000}),
    );
    assert!(err.contains("service_port"), "{err}");

    let topics = |req: Value| strings(&q(&fx, req), "items", "/subscription_id");
    assert_eq!(
        topics(json!({"entry_type": "topics", "topic": "svc.market.ticks.eu"})),
        ["t1"]
    );
    assert_eq!(
        topics(json!({"entry_type": "topics", "topic": "svc.market.ticks"})),
        ["t1", "t2"]
    );
    assert_eq!(
        topics(json!({"entry_type": "topics", "topic": "audit.x.y"})),
        ["t2"]
    );
    assert!(topics(json!({"entry_type": "topics", "topic": "nope"})).is_empty());
    assert_eq!(
        topics(json!({"entry_type": "topics", "namespace": "audit"})),
        ["t2"]
    );
    assert_eq!(
        topics(json!({"entry_type": "topics", "namespace": "svc.market"})),
        ["t1"]
    );
}

#[test]
fn expired_entries_are_invisible() {
    let mut fx = market();
    let mut e: Entry = func("svc.market.old", "1.0.0", ME, CLUSTER).into();
    stamp(&mut e, NOW - 100.0, 120.0);
    fx.catalog.upsert(ME, e, NOW).unwrap();
    assert_eq!(
        names(&q(
            &fx,
            json!({"entry_type": "functions", "function_name": "svc.market.old"})
        )),
        ["svc.market.old"]
    );
    fx.now.wall = NOW + 25.0;
    assert!(names(&q(
        &fx,
        json!({"entry_type": "functions", "function_name": "svc.market.old"})
    ))
    .is_empty());
}

#[test]
fn pages_carry_keyset_tokens() {
    let fx = market();
    let mut req = json!({"entry_type": "functions", "namespace": "svc", "limit": 2});
    let mut seen = Vec::new();
    for _ in 0..10 {
        let res = q(&fx, req.clone());
        seen.extend(strings(&res, "items", "/identity/version"));
        match res.get("next_page_token") {
            Some(Value::String(t)) => {
                assert!(t.starts_with("k1:2:functions|"), "{t}");
                req["page_token"] = json!(t);
            }
            None => break,
            Some(other) => panic!("{other}"),
        }
    }
    assert_eq!(seen.len(), 5);
    // The request's limit overrides the token's.
    req["limit"] = json!(5);
    req["page_token"] = json!(
        q(
            &fx,
            json!({"entry_type": "functions", "namespace": "svc", "limit": 1})
        )["next_page_token"]
    );
    assert_eq!(q(&fx, req)["items"].as_array().unwrap().len(), 4);
    // A token of another entry type, or garbage, is a clear error.
    let node_token = q(&fx, json!({"entry_type": "nodes", "limit": 1}))["next_page_token"].clone();
    let err = fx.err(
        "catalog_query",
        json!({"entry_type": "functions", "page_token": node_token}),
    );
    assert!(err.contains("pages over nodes"), "{err}");
    let err = fx.err(
        "catalog_query",
        json!({"entry_type": "functions", "page_token": "200:200"}),
    );
    assert!(err.contains("invalid page_token"), "{err}");
}

#[test]
fn bad_payloads_are_1003() {
    let fx = market();
    for req in [
        json!({}),
        json!({"entry_type": "bogus"}),
        json!({"entry_type": 5}),
        json!({"entry_type": "functions", "tags": [1]}),
        json!({"entry_type": "functions", "limit": "many"}),
        json!({"entry_type": "functions", "namespace": {}}),
        json!({"entry_type": "topics", "topic": []}),
        json!({"entry_type": "queues", "queue_name": 3}),
    ] {
        fx.err("catalog_query", req);
    }
    assert_eq!(
        fx.err("catalog_query", json!({"entry_type": "bogus"})),
        "Unsupported catalog entry_type: bogus"
    );
    // Fields for other entry types are ignored, as MPREG ignores them.
    q(
        &fx,
        json!({"entry_type": "nodes", "queue_name": 3, "version_constraint": "x"}),
    );
}

// ---------------------------------------------------------------------------
// pagination stability under concurrent change

const NAMES: &[&str] = &[
    "svc.a.x",
    "svc.a.y",
    "svc.b.z",
    "svc.q",
    "svcx.a",
    "other.svc.k",
    "svc",
];
const NODES: &[&str] = &["ws://n1:1", "ws://n2:1", "ws://n3:1"];
const SERVICE_NS: &[&str] = &["svc", "svc.a", "svcx", "x", "svc.b.c"];

/// Entries whose membership in every query below depends only on their key.
fn pooled() -> impl Strategy<Value = Entry> {
    let function = (
        proptest::sample::select(NAMES),
        proptest::sample::select(NODES),
        proptest::sample::select(&["1.0.0", "2.0.0", "10.0.0"][..]),
    )
        .prop_map(|(name, node, version)| Entry::from(func(name, version, node, CLUSTER)));
    let svc = (
        proptest::sample::select(&["api", "db"][..]),
        proptest::sample::select(SERVICE_NS),
        proptest::sample::select(&[80u16, 443][..]),
        proptest::sample::select(NODES),
    )
        .prop_map(|(name, ns, port, node)| {
            Entry::from(service(name, ns, "tcp", port, node, CLUSTER))
        });
    prop_oneof![function, svc]
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(Box<Entry>),
    /// Remove the entry at this index (modulo the current count).
    Remove(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        pooled().prop_map(|e| Op::Upsert(Box::new(e))),
        any::<usize>().prop_map(Op::Remove),
    ]
}

/// The requests walked: each uses a different candidate path (name index,
/// namespace index, whole kind).
fn request() -> impl Strategy<Value = Value> {
    proptest::sample::select(vec![
        json!({"entry_type": "functions", "namespace": "svc"}),
        json!({"entry_type": "functions", "function_name": "svc.a.x"}),
        json!({"entry_type": "functions"}),
        json!({"entry_type": "services", "namespace": "svc"}),
        json!({"entry_type": "services", "service_name": "api"}),
        json!({"entry_type": "services", "namespace": "svc.a", "service_name": "db"}),
    ])
}

/// Whether `e` matches `req` (all filters depend on key fields only).
fn matches(req: &Value, e: &Entry) -> bool {
    let kind = EntryKind::parse(req["entry_type"].as_str().unwrap()).unwrap();
    if e.kind() != kind {
        return false;
    }
    let ns = NamespaceFilter::parse(req["namespace"].as_str().unwrap_or(""));
    if !e.matches_namespace(&ns) {
        return false;
    }
    let name = req["function_name"]
        .as_str()
        .or(req["service_name"].as_str());
    name.is_none_or(|n| e.name() == n)
}

/// Pages through `req` with `limit`, applying `ops[i]` to the catalog after
/// page `i`. Returns the keys returned, in order, and the keys that matched
/// at the start and were never removed.
fn walk(
    fx: &mut Fixture,
    req: &Value,
    limit: usize,
    ops: &[Vec<Op>],
) -> (Vec<EntryKey>, BTreeSet<EntryKey>) {
    let kind = EntryKind::parse(req["entry_type"].as_str().unwrap()).unwrap();
    let mut stable: BTreeSet<EntryKey> = fx
        .catalog
        .iter(kind)
        .filter(|e| matches(req, e))
        .map(Entry::key)
        .collect();
    let mut returned = Vec::new();
    let mut req = req.clone();
    req["limit"] = json!(limit);
    let mut clock = NOW;
    for page_no in 0..1000 {
        let res = fx.ok("catalog_query", req.clone());
        for item in res["items"].as_array().unwrap() {
            let e = Entry::from_json(kind, item.clone()).unwrap();
            assert!(matches(&req, &e), "returned a non-matching entry {item}");
            returned.push(e.key());
        }
        let Some(token) = res.get("next_page_token").cloned() else {
            break;
        };
        req["page_token"] = token;
        for op in ops.get(page_no).into_iter().flatten() {
            clock += 1.0;
            match op {
                Op::Upsert(e) => {
                    let mut e = (**e).clone();
                    stamp(&mut e, clock, 1.0e6);
                    let origin = e.node_id().to_string();
                    let _ = fx.catalog.upsert(&origin, e, NOW);
                }
                Op::Remove(i) => {
                    let all: Vec<EntryKey> = fx
                        .catalog
                        .iter(EntryKind::Functions)
                        .chain(fx.catalog.iter(EntryKind::Services))
                        .map(Entry::key)
                        .collect();
                    if !all.is_empty() {
                        let key = &all[i % all.len()];
                        fx.catalog.remove(key);
                        stable.remove(key);
                    }
                }
            }
        }
    }
    (returned, stable)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Walking the pages while entries are added and removed never returns
    /// an entry twice and never skips one that was there throughout.
    #[test]
    fn paging_is_stable_under_change(
        initial in proptest::collection::vec(pooled(), 0..40),
        req in request(),
        limit in 1usize..5,
        ops in proptest::collection::vec(proptest::collection::vec(op(), 0..4), 0..40),
    ) {
        let mut fx = Fixture::new();
        for e in initial {
            let mut e = e;
            stamp(&mut e, NOW, 1.0e6);
            let origin = e.node_id().to_string();
            let _ = fx.catalog.upsert(&origin, e, NOW);
        }
        let (returned, stable) = walk(&mut fx, &req, limit, &ops);
        let unique: BTreeSet<&EntryKey> = returned.iter().collect();
        prop_assert_eq!(unique.len(), returned.len(), "an entry came back twice: {:?}", returned);
        for key in &stable {
            prop_assert!(unique.contains(key), "skipped {:?}; returned {:?}", key, returned);
        }
    }
}
