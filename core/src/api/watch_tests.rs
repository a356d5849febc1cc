use serde_json::json;

use super::*;
use crate::api::testutil::*;

#[test]
fn catalog_watch_names_the_topic() {
    let fx = Fixture::new();
    let res = fx.ok("catalog_watch", json!(null));
    assert_eq!(
        res,
        json!({"topic": "mpreg.discovery.delta", "generated_at": NOW, "cluster_id": CLUSTER})
    );
    let res = fx.ok(
        "catalog_watch",
        json!({"scope": "Cluster", "namespace": " svc.market "}),
    );
    assert_eq!(
        res,
        json!({"topic": "mpreg.discovery.delta.svc.market", "generated_at": NOW, "scope": "zone", "namespace": "svc.market", "cluster_id": CLUSTER})
    );
    let res = fx.ok(
        "catalog_watch",
        json!({"namespace": "svc.market.*", "cluster_id": "c9"}),
    );
    assert_eq!(res["topic"], "mpreg.discovery.delta.svc.market");
    assert_eq!(res["namespace"], "svc.market.*");
    assert_eq!(res["cluster_id"], "c9");
    assert_eq!(
        fx.ok("catalog_watch", json!({"namespace": "*"}))["topic"],
        DELTA_TOPIC
    );
    assert_eq!(
        fx.err("catalog_watch", json!({"scope": "galaxy"})),
        "Unsupported discovery scope: galaxy"
    );
    fx.err("catalog_watch", json!({"namespace": 3}));
    fx.err("catalog_watch", json!({"cluster_id": ["a"]}));
    fx.err("catalog_watch", json!("svc"));
}

fn entries() -> Vec<Entry> {
    vec![
        func("svc.market.quote", "1.0.0", ME, CLUSTER).into(),
        func("echo", "1.0.0", ME, CLUSTER).into(),
        queue("svc.market.eu.orders", "ws://n2:1", CLUSTER)
            .with_scope(Scope::Region)
            .into(),
        service("api", "svc.marketing", "tcp", 80, "ws://n3:1", "c2")
            .with_scope(Scope::Global)
            .into(),
        topic("t1", &["svc.market.ticks.#", "audit.*"], ME, CLUSTER).into(),
        node("ws://n2:1", CLUSTER).into(),
    ]
}

fn me() -> Identity {
    Fixture::new().me
}

fn filter(req: Value) -> WatchFilter {
    WatchFilter::from_request(&me(), req.as_object().unwrap()).unwrap()
}

#[test]
fn visibility_predicate() {
    let es = entries();
    let visible = |f: &WatchFilter| -> Vec<usize> {
        (0..es.len())
            .filter(|i| delta_visible_to(f, &es[*i]))
            .collect()
    };
    assert_eq!(visible(&WatchFilter::all()), [0, 1, 2, 3, 4, 5]);
    assert_eq!(
        visible(&filter(json!({"namespace": "svc.market"}))),
        [0, 2, 4]
    );
    assert_eq!(visible(&filter(json!({"namespace": "svc"}))), [0, 2, 3, 4]);
    assert_eq!(visible(&filter(json!({"namespace": "audit"}))), [4]);
    assert_eq!(visible(&filter(json!({"scope": "local"}))), [0, 1, 4]);
    assert_eq!(visible(&filter(json!({"scope": "zone"}))), [0, 1, 2, 4, 5]);
    assert_eq!(visible(&filter(json!({"scope": "region"}))), [2, 3]);
    assert_eq!(visible(&filter(json!({"cluster_id": "c2"}))), [3]);
    assert!(visible(&filter(json!({"scope": "zone", "cluster_id": "c2"}))).is_empty());
    assert_eq!(
        visible(&filter(json!({"scope": "zone", "namespace": "svc.market"}))),
        [0, 2, 4]
    );
}

fn publisher() -> DeltaPublisher<'static> {
    DeltaPublisher {
        node_id: ME,
        cluster_id: CLUSTER,
        update_id: "01JUPDATE",
        published_at: NOW + 1.0,
    }
}

#[test]
fn delta_message_has_mpregs_shape() {
    let es = entries();
    let removed = [
        Entry::from(func("svc.market.old", "1.0.0", ME, CLUSTER).with_resources(["gpu"])),
        Entry::from(topic("t0", &["x.y"], ME, CLUSTER)),
        Entry::from(node("ws://gone:1", CLUSTER)),
    ];
    let change = CatalogChange {
        origin_cluster: CLUSTER,
        sent_at: NOW,
        upserted: es.iter().collect(),
        removed: removed.iter().collect(),
    };
    let msg = delta_message(&change, &publisher(), &WatchFilter::all()).unwrap();
    let delta = &msg["delta"];
    assert_eq!(delta["update_id"], "01JUPDATE");
    assert_eq!(delta["cluster_id"], CLUSTER);
    assert_eq!(delta["sent_at"], json!(NOW));
    for key in [
        "functions",
        "function_removals",
        "topics",
        "topic_removals",
        "queues",
        "queue_removals",
        "services",
        "service_removals",
        "caches",
        "cache_removals",
        "cache_profiles",
        "cache_profile_removals",
        "nodes",
        "node_removals",
    ] {
        assert!(delta[key].is_array(), "{key} missing: {delta}");
    }
    assert_eq!(delta.as_object().unwrap().len(), 17);
    assert_eq!(msg["counts"].as_object().unwrap().len(), 14);
    assert_eq!(msg["counts"]["functions_added"], 2);
    assert_eq!(msg["counts"]["functions_removed"], 1);
    assert_eq!(msg["counts"]["topics_removed"], 1);
    assert_eq!(msg["counts"]["nodes_added"], 1);
    assert_eq!(msg["counts"]["nodes_removed"], 1);
    assert_eq!(msg["counts"]["caches_added"], 0);
    assert_eq!(
        delta["functions"][0]["identity"]["name"],
        "svc.market.quote"
    );
    assert_eq!(
        delta["function_removals"][0],
        json!({"cluster_id": CLUSTER, "node_id": ME, "identity": {"name": "svc.market.old", "function_id": "svc.market.old", "version": "1.0.0"}, "resources": ["gpu"]})
    );
    assert_eq!(delta["topic_removals"], json!(["t0"]));
    assert_eq!(
        delta["node_removals"][0],
        json!({"cluster_id": CLUSTER, "node_id": "ws://gone:1"})
    );
    assert_eq!(
        msg["namespaces"],
        json!([
            "audit",
            "svc.market",
            "svc.market.eu.orders",
            "svc.market.ticks",
            "svc.marketing",
            "x.y"
        ])
    );
    assert_eq!(msg["source_node"], ME);
    assert_eq!(msg["source_cluster"], CLUSTER);
    assert_eq!(msg["published_at"], json!(NOW + 1.0));

    // Nothing visible: no message. Only un-namespaced entries: the
    // namespaces fall back to the cluster id, as in MPREG.
    assert!(delta_message(&change, &publisher(), &filter(json!({"namespace": "nope"}))).is_none());
    let only_nodes = [Entry::from(node("ws://x:1", "c7"))];
    let change = CatalogChange {
        origin_cluster: "c7",
        sent_at: NOW,
        upserted: only_nodes.iter().collect(),
        removed: vec![],
    };
    let msg = delta_message(&change, &publisher(), &WatchFilter::all()).unwrap();
    assert_eq!(msg["namespaces"], json!(["c7"]));
}

#[test]
fn notifications_cover_every_namespace_subtree() {
    let es = [
        Entry::from(func("svc.market.quote", "1.0.0", ME, CLUSTER)),
        Entry::from(queue("svc.market.eu.orders", ME, CLUSTER)),
        Entry::from(func("echo", "1.0.0", ME, CLUSTER)),
    ];
    let removed = [Entry::from(service("api", "other", "tcp", 80, ME, CLUSTER))];
    let change = CatalogChange {
        origin_cluster: CLUSTER,
        sent_at: NOW,
        upserted: es.iter().collect(),
        removed: removed.iter().collect(),
    };
    let all = delta_notifications(&change, &publisher(), |_| true);
    let topics: Vec<&str> = all.iter().map(|n| n.topic.as_str()).collect();
    assert_eq!(
        topics,
        [
            "mpreg.discovery.delta",
            "mpreg.discovery.delta.other",
            "mpreg.discovery.delta.svc",
            "mpreg.discovery.delta.svc.market",
            "mpreg.discovery.delta.svc.market.eu",
            "mpreg.discovery.delta.svc.market.eu.orders",
        ]
    );
    let count = |n: &DeltaNotification, k: &str| n.payload["counts"][k].as_u64().unwrap();
    assert_eq!(count(&all[0], "functions_added"), 2);
    assert_eq!(count(&all[0], "services_removed"), 1);
    assert_eq!(count(&all[1], "services_removed"), 1);
    assert_eq!(count(&all[1], "functions_added"), 0);
    assert_eq!(count(&all[3], "functions_added"), 1);
    assert_eq!(count(&all[3], "queues_added"), 1);
    assert_eq!(count(&all[4], "functions_added"), 0);
    assert_eq!(count(&all[4], "queues_added"), 1);
    assert_eq!(
        all[4].payload["namespaces"],
        json!(["svc.market.eu.orders"])
    );
    for n in &all {
        assert_eq!(n.payload["delta"]["update_id"], "01JUPDATE");
    }
    // Unwanted topics are skipped, the root never is.
    let some = delta_notifications(&change, &publisher(), |t| t.ends_with(".svc.market"));
    let topics: Vec<&str> = some.iter().map(|n| n.topic.as_str()).collect();
    assert_eq!(
        topics,
        ["mpreg.discovery.delta", "mpreg.discovery.delta.svc.market"]
    );
    // No change, no notification.
    let empty = CatalogChange {
        origin_cluster: CLUSTER,
        sent_at: NOW,
        upserted: vec![],
        removed: vec![],
    };
    assert!(delta_notifications(&empty, &publisher(), |_| true).is_empty());
    assert_eq!(
        delta_headers(&publisher()),
        json!({"event": "discovery.catalog_delta", "cluster_id": CLUSTER})
            .as_object()
            .unwrap()
            .clone()
    );
}

#[test]
fn a_namespace_watcher_sees_what_catalog_query_sees() {
    // The topic a watcher gets from catalog_watch carries exactly the
    // changed entries that catalog_query with the same namespace returns.
    let mut fx = Fixture::new();
    let es = entries();
    for e in &es {
        fx.add(e.clone());
    }
    let change = CatalogChange {
        origin_cluster: CLUSTER,
        sent_at: NOW,
        upserted: es.iter().collect(),
        removed: vec![],
    };
    let notes = delta_notifications(&change, &publisher(), |_| true);
    for ns in [
        "svc",
        "svc.market",
        "svc.market.eu",
        "audit",
        "svc.marketing",
    ] {
        let topic = fx.ok("catalog_watch", json!({"namespace": ns}))["topic"]
            .as_str()
            .unwrap()
            .to_string();
        let note = notes
            .iter()
            .find(|n| n.topic == topic)
            .unwrap_or_else(|| panic!("no {topic}"));
        for (kind, list) in [
            ("functions", "functions"),
            ("queues", "queues"),
            ("services", "services"),
            ("topics", "topics"),
        ] {
            let q = fx.ok(
                "catalog_query",
                json!({"entry_type": kind, "namespace": ns}),
            );
            assert_eq!(
                q["items"].as_array().unwrap().len(),
                note.payload["delta"][list].as_array().unwrap().len(),
                "{ns} {kind}"
            );
        }
    }
}
