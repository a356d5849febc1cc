//! Tests of the entry data model: kind parsing, JSON shape against MPREG
//! captures, lenient decoding, and CBOR / JSON round trips.

use super::*;
use crate::catalog::testutil::{config, wild_entry, Floats};
use serde_json::json;

/// The `items` of `reference/mpreg_wire/catalog_query_nodes.c3.json`,
/// byte for byte as the Python server sent them.
const NODE_ITEMS: &str = r#"[{"node_id":"ws://127.0.0.1:19611","cluster_id":"c3","scope":"zone","resources":["ref1"],"capabilities":["rpc"],"transport_endpoints":[{"connection_type":"internal","protocol":"ws","host":"127.0.0.1","port":19611,"endpoint":"ws://127.0.0.1:19611"}],"tags":[],"advertised_at":1795519947.7968507,"ttl_seconds":120.0,"region":"local"},{"node_id":"ws://127.0.0.1:19612","cluster_id":"c3","scope":"zone","resources":["ref2"],"capabilities":["rpc"],"transport_endpoints":[{"connection_type":"internal","protocol":"ws","host":"127.0.0.1","port":19612,"endpoint":"ws://127.0.0.1:19612"}],"tags":[],"advertised_at":1795519948.076387,"ttl_seconds":120.0,"region":"local"},{"node_id":"ws://127.0.0.1:19613","cluster_id":"c3","scope":"zone","resources":["ref3"],"capabilities":["rpc"],"transport_endpoints":[{"connection_type":"internal","protocol":"ws","host":"127.0.0.1","port":19613,"endpoint":"ws://127.0.0.1:19613"}],"tags":[],"advertised_at":1795519948.0509074,"ttl_seconds":120.0,"region":"local"}]"#;

/// A function item from `reference/mpreg_wire/raw_probe.json`.
const FUNCTION_ITEM: &str = r#"{"identity":{"name":"catalog_query","function_id":"catalog_query","version":"1.0.0"},"resources":[],"node_id":"ws://127.0.0.1:19601","cluster_id":"ref-cluster","scope":"zone","tags":[],"advertised_at":1795519666.8260984,"ttl_seconds":120.0,"rpc_summary":{"identity":{"name":"catalog_query","function_id":"catalog_query","version":"1.0.0"},"namespace":"","summary":"catalog query","parameter_count":2,"required_parameter_count":0,"return_type":{"display":"Payload","args":[],"is_optional":false,"module":"mpreg.core.payloads"},"spec_version":"1","spec_digest":"dcaa13ff55323f7c8bbb8842c11fb379df0ce7141d4340a5ce584b332d5bc770"},"spec_digest":"dcaa13ff55323f7c8bbb8842c11fb379df0ce7141d4340a5ce584b332d5bc770"}"#;

/// A topic item from `reference/mpreg_wire/peer_link_sample.json`.
const TOPIC_ITEM: &str = r#"{"subscription_id":"resolver_ws://127.0.0.1:19611_01M86N5QNR6DFSPDSQ2W8YX9BG","node_id":"ws://127.0.0.1:19611","cluster_id":"c3","patterns":["mpreg.discovery.delta"],"scope":"zone","tags":[],"advertised_at":1795519965.1244252,"ttl_seconds":120.0}"#;

fn keys_of(value: &serde_json::Value) -> Vec<String> {
    value
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[test]
fn entry_kind_parsing() {
    let cases = [
        ("functions", EntryKind::Functions),
        ("Function", EntryKind::Functions),
        (" NODE ", EntryKind::Nodes),
        ("queues", EntryKind::Queues),
        ("topic", EntryKind::Topics),
        ("service", EntryKind::Services),
        ("cache", EntryKind::Caches),
        ("cache-profile", EntryKind::CacheProfiles),
        ("cache_profile", EntryKind::CacheProfiles),
        ("CACHE_PROFILES", EntryKind::CacheProfiles),
    ];
    for (raw, kind) in cases {
        assert_eq!(EntryKind::parse(raw), Ok(kind), "{raw}");
    }
    let err = EntryKind::parse("widgets").unwrap_err();
    assert_eq!(err.to_string(), "Unsupported catalog entry_type: widgets");
    assert!(EntryKind::parse("").is_err());
    for kind in EntryKind::ALL {
        assert_eq!(EntryKind::parse(kind.as_str()), Ok(kind));
        assert_eq!(EntryKind::ALL[kind.index()], kind);
        assert_eq!(serde_json::to_value(kind).unwrap(), json!(kind.as_str()));
    }
}

#[test]
fn node_items_reserialize_byte_for_byte() {
    let items: Vec<serde_json::Value> = serde_json::from_str(NODE_ITEMS).unwrap();
    let mut out = Vec::new();
    for item in &items {
        let entry = Entry::from_json(EntryKind::Nodes, item.clone()).unwrap();
        assert_eq!(&entry.to_json(), item);
        out.push(entry.to_json_string());
    }
    assert_eq!(format!("[{}]", out.join(",")), NODE_ITEMS);
}

#[test]
fn function_item_reserializes_to_equal_json() {
    let item: serde_json::Value = serde_json::from_str(FUNCTION_ITEM).unwrap();
    let entry = Entry::from_json(EntryKind::Functions, item.clone()).unwrap();
    assert_eq!(entry.to_json(), item);
    assert_eq!(entry.namespace(), Some(""));
    // Key order of the typed part is MPREG's (the opaque rpc_summary is a
    // serde_json::Value, whose key order depends on serde_json features).
    let text = entry.to_json_string();
    assert!(text.starts_with(r#"{"identity":{"name":"catalog_query","function_id":"catalog_query","version":"1.0.0"},"resources":[],"node_id":"ws://127.0.0.1:19601","cluster_id":"ref-cluster","scope":"zone","tags":[],"advertised_at":1795519666.8260984,"ttl_seconds":120.0,"rpc_summary":{"#));
    assert!(text.ends_with(
        r#""spec_digest":"dcaa13ff55323f7c8bbb8842c11fb379df0ce7141d4340a5ce584b332d5bc770"}"#
    ));
}

#[test]
fn topic_item_reserializes_byte_for_byte() {
    let item: serde_json::Value = serde_json::from_str(TOPIC_ITEM).unwrap();
    let entry = Entry::from_json(EntryKind::Topics, item).unwrap();
    assert_eq!(entry.to_json_string(), TOPIC_ITEM);
    assert_eq!(entry.namespace(), None);
    assert_eq!(entry.filter_values(), Some(vec!["mpreg.discovery.delta"]));
}

#[test]
fn every_kind_has_mpreg_keys_in_order() {
    let expect: [(Entry, &[&str]); 7] = [
        (
            FunctionEndpoint::new(FunctionIdentity::new("a.b", "a.b", "1.0.0"), "n", "c").into(),
            &[
                "identity",
                "resources",
                "node_id",
                "cluster_id",
                "scope",
                "tags",
                "advertised_at",
                "ttl_seconds",
            ],
        ),
        (
            NodeDescriptor::new("n", "c").into(),
            &[
                "node_id",
                "cluster_id",
                "scope",
                "resources",
                "capabilities",
                "transport_endpoints",
                "tags",
                "advertised_at",
                "ttl_seconds",
            ],
        ),
        (
            QueueEndpoint::new("q", "n", "c").into(),
            &[
                "queue_name",
                "cluster_id",
                "node_id",
                "delivery_guarantees",
                "health",
                "current_subscribers",
                "metadata",
                "scope",
                "tags",
                "advertised_at",
                "ttl_seconds",
            ],
        ),
        (
            TopicSubscription::new("s", "n", "c", ["a.#"]).into(),
            &[
                "subscription_id",
                "node_id",
                "cluster_id",
                "patterns",
                "scope",
                "tags",
                "advertised_at",
                "ttl_seconds",
            ],
        ),
        (
            ServiceEndpoint::new("svc", "ns", "tcp", 80)
                .owned_by("n", "c")
                .into(),
            &[
                "name",
                "namespace",
                "protocol",
                "port",
                "targets",
                "scope",
                "tags",
                "capabilities",
                "metadata",
                "priority",
                "weight",
                "node_id",
                "cluster_id",
                "advertised_at",
                "ttl_seconds",
            ],
        ),
        (
            CacheRoleEntry::new("replica", "n", "c").into(),
            &[
                "role",
                "node_id",
                "cluster_id",
                "scope",
                "tags",
                "advertised_at",
                "ttl_seconds",
            ],
        ),
        (
            CacheNodeProfile::new("n", "c").into(),
            &[
                "node_id",
                "cluster_id",
                "region",
                "coordinates",
                "capacity_mb",
                "utilization_percent",
                "avg_latency_ms",
                "reliability_score",
                "scope",
                "tags",
                "advertised_at",
                "ttl_seconds",
            ],
        ),
    ];
    for (entry, keys) in expect {
        let text = entry.to_json_string();
        // Check presence and order by scanning the top-level keys in the text.
        let mut pos = 0;
        for key in keys {
            let needle = format!("\"{key}\":");
            let found = text[pos..]
                .find(&needle)
                .unwrap_or_else(|| panic!("{key} missing or out of order in {text}"));
            pos += found + needle.len();
        }
        let mut sorted_keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        sorted_keys.sort();
        assert_eq!(keys_of(&entry.to_json()), sorted_keys, "{text}");
        // And it parses back to itself.
        let back = Entry::from_json(entry.kind(), entry.to_json()).unwrap();
        assert_eq!(back, entry);
    }
}

#[test]
fn optional_keys_are_omitted_or_present() {
    let node = NodeDescriptor::new("n", "c");
    assert!(node_json(&node).get("region").is_none());
    let node = NodeDescriptor {
        region: "eu".into(),
        ..node
    };
    assert_eq!(node_json(&node)["region"], json!("eu"));

    let mut f = FunctionEndpoint::new(FunctionIdentity::new("a", "a", "1.0.0"), "n", "c");
    let v = Entry::from(f.clone()).to_json();
    for k in ["rpc_summary", "rpc_spec", "spec_digest", "namespace"] {
        assert!(v.get(k).is_none(), "{k}");
    }
    f.spec_digest = Some("d".into());
    f.namespace = Some("x".into());
    let v = Entry::from(f).to_json();
    assert_eq!(v["spec_digest"], json!("d"));
    assert_eq!(v["namespace"], json!("x"));
}

fn node_json(n: &NodeDescriptor) -> serde_json::Value {
    Entry::from(n.clone()).to_json()
}

#[test]
fn sets_are_sorted_and_normalised() {
    let v = json!({
        "name": "svc", "namespace": "ns", "protocol": "tcp", "port": 53,
        "targets": ["10.0.0.2", "", "10.0.0.1", "10.0.0.2"],
        "tags": ["z", "a", ""], "capabilities": ["y", "x"],
        "metadata": {"tier": "gold", "n": 3, "gone": null, "x": 1.5, "ok": true},
        "node_id": "n", "cluster_id": "c", "advertised_at": 1.0,
        "unknown_future_field": {"ignored": true}
    });
    let e = Entry::from_json(EntryKind::Services, v).unwrap();
    let out = e.to_json();
    assert_eq!(out["targets"], json!(["10.0.0.1", "10.0.0.2"]));
    assert_eq!(out["tags"], json!(["a", "z"]));
    assert_eq!(out["capabilities"], json!(["x", "y"]));
    assert_eq!(
        out["metadata"],
        json!({"tier": "gold", "n": 3, "x": 1.5, "ok": true})
    );
    assert_eq!(out["scope"], json!("zone"));
    assert_eq!(out["ttl_seconds"], json!(30.0));
    assert_eq!(out["priority"], json!(0));

    let node = NodeDescriptor::new("n", "c").with_endpoints([
        TransportEndpoint::new("internal", "ws", "b", 2),
        TransportEndpoint::new("internal", "ws", "a", 9),
        TransportEndpoint::new("internal", "ws", "b", 2),
    ]);
    let hosts: Vec<&str> = node
        .transport_endpoints
        .iter()
        .map(|e| e.host.as_str())
        .collect();
    assert_eq!(hosts, vec!["a", "b"]);
}

#[test]
fn decoding_is_lenient_but_needs_identifiers() {
    // Unknown scope → zone; missing optional fields → defaults.
    let e = Entry::from_json(
        EntryKind::Nodes,
        json!({"node_id": "n", "cluster_id": "c", "scope": "Mars", "extra": 1}),
    )
    .unwrap();
    assert_eq!(e.scope(), Scope::Zone);
    assert_eq!(e.ttl_seconds(), DEFAULT_TTL_SECONDS);
    assert_eq!(e.advertised_at(), 0.0);
    let e = Entry::from_json(
        EntryKind::Queues,
        json!({"queue_name": "q", "node_id": "n", "cluster_id": "c", "scope": "CLUSTER", "metadata": {"a": 1}}),
    )
    .unwrap();
    assert_eq!(e.scope(), Scope::Zone);
    // Missing identifying fields are errors, not panics.
    assert!(Entry::from_json(EntryKind::Nodes, json!({"cluster_id": "c"})).is_err());
    assert!(Entry::from_json(
        EntryKind::Topics,
        json!({"node_id": "n", "cluster_id": "c"})
    )
    .is_err());
    assert!(Entry::from_json(
        EntryKind::Functions,
        json!({"identity": {"name": "a"}, "node_id": "n", "cluster_id": "c"})
    )
    .is_err());
    assert!(Entry::from_json(EntryKind::Services, json!("not an object")).is_err());
    assert!(Entry::from_json(
        EntryKind::Services,
        json!({"name": "s", "namespace": "n", "protocol": "tcp", "port": 70000, "node_id": "n", "cluster_id": "c"})
    )
    .is_err());
}

#[test]
fn function_namespace_precedence() {
    let mut f = FunctionEndpoint::new(
        FunctionIdentity::new("svc.market.quote", "q", "1.0.0"),
        "n",
        "c",
    );
    assert_eq!(f.effective_namespace(), "svc.market");
    f.namespace = Some("explicit".into());
    assert_eq!(f.effective_namespace(), "explicit");
    f.rpc_summary = Some(json!({"namespace": "from.summary"}));
    assert_eq!(f.effective_namespace(), "from.summary");
    f.rpc_summary = Some(json!({"summary": "no namespace key"}));
    assert_eq!(f.effective_namespace(), "explicit");
    let plain = FunctionEndpoint::new(FunctionIdentity::new("echo", "echo", "1.0.0"), "n", "c");
    assert_eq!(plain.effective_namespace(), "");
}

#[test]
fn namespaces_and_filter_values_per_kind() {
    let q: Entry = QueueEndpoint::new("svc.orders.eu", "n", "c").into();
    assert_eq!(q.namespace(), Some("svc.orders"));
    assert!(q.matches_namespace(&NamespaceFilter::parse("svc.orders.eu")));
    assert!(q.matches_namespace(&NamespaceFilter::parse("svc.orders")));
    assert!(!q.matches_namespace(&NamespaceFilter::parse("svc.order")));
    let s: Entry = ServiceEndpoint::new("feed", "market", "tcp", 1).into();
    assert_eq!(s.namespace(), Some("market"));
    let t: Entry = TopicSubscription::new("s", "n", "c", ["a.b.*", "x.#", "a.b.c"]).into();
    assert_eq!(t.namespace(), None);
    assert_eq!(t.filter_values(), Some(vec!["a.b", "a.b.c", "x"]));
    assert!(t.matches_namespace(&NamespaceFilter::parse("x")));
    assert!(!t.matches_namespace(&NamespaceFilter::parse("y")));
    let n: Entry = NodeDescriptor::new("n", "c").into();
    assert_eq!(n.namespace(), None);
    assert!(n.matches_namespace(&NamespaceFilter::parse("anything")));
}

#[test]
fn expiry_is_strict() {
    let e: Entry = NodeDescriptor::new("n", "c").advertised(100.0, 30.0).into();
    assert_eq!(e.expires_at(), 130.0);
    assert!(!e.is_expired(130.0));
    assert!(e.is_expired(130.000_001));
}

#[test]
fn keys_identify_kinds() {
    let t: Entry = TopicSubscription::new("sub", "n", "c", ["a"]).into();
    assert_eq!(
        t.key(),
        EntryKey::Topic {
            subscription_id: "sub".into()
        }
    );
    for kind in EntryKind::ALL {
        let entry: Entry = match kind {
            EntryKind::Functions => {
                FunctionEndpoint::new(FunctionIdentity::new("f", "f", "1.0.0"), "n", "c").into()
            }
            EntryKind::Nodes => NodeDescriptor::new("n", "c").into(),
            EntryKind::Queues => QueueEndpoint::new("q", "n", "c").into(),
            EntryKind::Topics => t.clone(),
            EntryKind::Services => ServiceEndpoint::new("s", "ns", "tcp", 1).into(),
            EntryKind::Caches => CacheRoleEntry::new("replica", "n", "c").into(),
            EntryKind::CacheProfiles => CacheNodeProfile::new("n", "c").into(),
        };
        assert_eq!(entry.kind(), kind);
        assert_eq!(entry.key().kind(), kind);
    }
}

proptest::proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn cbor_round_trip(entry in wild_entry(Floats::Any)) {
        let mut buf = Vec::new();
        ciborium::into_writer(&entry, &mut buf).unwrap();
        let back: Entry = ciborium::from_reader(buf.as_slice()).unwrap();
        proptest::prop_assert_eq!(back, entry);
    }

    #[test]
    fn key_cbor_round_trip(entry in wild_entry(Floats::Any)) {
        let key = entry.key();
        let mut buf = Vec::new();
        ciborium::into_writer(&key, &mut buf).unwrap();
        let back: EntryKey = ciborium::from_reader(buf.as_slice()).unwrap();
        proptest::prop_assert_eq!(back, key);
    }

    #[test]
    fn json_round_trip(entry in wild_entry(Floats::ShortDecimal)) {
        let text = serde_json::to_string(&entry).unwrap();
        let back: Entry = serde_json::from_str(&text).unwrap();
        proptest::prop_assert_eq!(&back, &entry);
        let item = Entry::from_json(entry.kind(), entry.to_json()).unwrap();
        proptest::prop_assert_eq!(item, entry);
    }

    #[test]
    fn decoding_garbage_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
        let _ = ciborium::from_reader::<Entry, _>(bytes.as_slice());
        let _ = serde_json::from_slice::<Entry>(&bytes);
    }
}
