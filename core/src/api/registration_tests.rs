use serde_json::{json, Value};

use super::*;
use crate::api::testutil::*;

fn rc(fx: &Fixture, conn: Option<ConnId>) -> RegisterCtx<'_> {
    RegisterCtx {
        settings: &fx.settings,
        me: &fx.me,
        now: fx.now,
        conn,
    }
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn register(fx: &Fixture, conn: Option<ConnId>, v: Value) -> Result<RegisterRequest, String> {
    parse_catalog_register(&rc(fx, conn), &obj(v), "01REG")
        .map_err(|e| e.details.unwrap_or_default())
}

#[test]
fn catalog_register_builds_an_owned_entry() {
    let fx = Fixture::new();
    let req = register(
        &fx,
        Some(7),
        json!({"entry_type": "services", "name": "api", "namespace": "svc.market", "protocol": "tcp",
               "port": 8080, "targets": ["10.0.0.2", "10.0.0.1", "10.0.0.1"], "scope": "Region",
               "tags": ["a"], "ttl_seconds": 10, "bind_to_connection": true}),
    )
    .unwrap();
    let Entry::Service(s) = &req.entry else {
        panic!("not a service: {:?}", req.entry)
    };
    assert_eq!(s.node_id, ME);
    assert_eq!(s.cluster_id, CLUSTER);
    assert_eq!(s.port, 8080);
    assert_eq!(s.scope, Scope::Region);
    assert_eq!(s.advertised_at, NOW);
    assert_eq!(s.ttl_seconds, 10.0);
    assert_eq!(
        s.targets.iter().collect::<Vec<_>>(),
        ["10.0.0.1", "10.0.0.2"]
    );
    assert_eq!(req.lease_ttl_seconds, Some(10.0));
    assert!(req.bind_to_connection);
    assert!(!req.persist);
    assert_eq!(req.source, Source::Catalog);

    // Bound only: the entry gets the catalog TTL.
    let req = register(
        &fx,
        Some(7),
        json!({"entry_type": "queues", "queue_name": "svc.market.orders", "bind_to_connection": true}),
    )
    .unwrap();
    assert_eq!(
        req.entry.ttl_seconds(),
        fx.settings.fabric_catalog_ttl_seconds
    );
    assert_eq!(req.lease_ttl_seconds, None);

    // Functions: `identity`, or the flat convenience form.
    let a = register(
        &fx,
        None,
        json!({"entry_type": "functions", "identity": {"name": "svc.market.quote", "version": "1.2.0"}, "ttl_seconds": 5}),
    )
    .unwrap();
    let b = register(
        &fx,
        None,
        json!({"entry_type": "functions", "name": "svc.market.quote", "version": "1.2.0", "ttl_seconds": 5}),
    )
    .unwrap();
    assert_eq!(a.entry.key(), b.entry.key());
    let Entry::Function(f) = &a.entry else {
        panic!()
    };
    assert_eq!(f.identity.function_id, "svc.market.quote");
    assert_eq!(f.effective_namespace(), "svc.market");

    // Topics get a cluster-unique id when none is given.
    let t = register(
        &fx,
        None,
        json!({"entry_type": "topics", "patterns": "svc.market.ticks.#", "ttl_seconds": 5}),
    )
    .unwrap();
    assert_eq!(
        t.entry.key(),
        EntryKey::Topic {
            subscription_id: format!("{ME}#01REG")
        }
    );
}

#[test]
fn catalog_register_errors_are_clear_1003s() {
    let mut fx = Fixture::new();
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"name": "x", "ttl_seconds": 5}),
            "`entry_type` is required",
        ),
        (
            json!({"entry_type": "nodes", "ttl_seconds": 5}),
            "cannot be registered over RPC",
        ),
        (
            json!({"entry_type": "planets", "ttl_seconds": 5}),
            "Unsupported catalog entry_type: planets",
        ),
        (
            json!({"entry_type": "queues", "queue_name": "q"}),
            "give `ttl_seconds`",
        ),
        (
            json!({"entry_type": "queues", "queue_name": "q", "ttl_seconds": 0.5}),
            "between 1 and",
        ),
        (
            json!({"entry_type": "queues", "queue_name": "q", "ttl_seconds": "soon"}),
            "`ttl_seconds` must be a number",
        ),
        (
            json!({"entry_type": "queues", "queue_name": "q", "bind_to_connection": "yes"}),
            "`bind_to_connection` must be a boolean",
        ),
        (
            json!({"entry_type": "queues", "ttl_seconds": 5}),
            "non-empty `queue_name`",
        ),
        (
            json!({"entry_type": "services", "ttl_seconds": 5}),
            "non-empty `name`",
        ),
        (
            json!({"entry_type": "services", "name": "a", "port": 70000, "ttl_seconds": 5}),
            "`port` must be within 0..=65535",
        ),
        (
            json!({"entry_type": "functions", "name": "f", "ttl_seconds": 5}),
            "needs `identity.version`",
        ),
        (
            json!({"entry_type": "functions", "name": "f", "version": "latest", "ttl_seconds": 5}),
            "is not MAJOR[.MINOR[.PATCH]]",
        ),
        (
            json!({"entry_type": "functions", "identity": "f", "ttl_seconds": 5}),
            "`identity` must be an object",
        ),
        (
            json!({"entry_type": "topics", "ttl_seconds": 5}),
            "needs `patterns`",
        ),
        (
            json!({"entry_type": "queues", "queue_name": "q", "ttl_seconds": 5, "node_id": "ws://other:1"}),
            "only registers its own entries",
        ),
        (
            json!({"entry_type": "queues", "queue_name": "q", "ttl_seconds": 5, "scope": "planet"}),
            "Unsupported discovery scope: planet",
        ),
        (
            json!({"entry_type": "queues", "queue_name": "q", "ttl_seconds": 5, "persist": true}),
            "needs the node's `data_dir`",
        ),
    ];
    for (payload, want) in &cases {
        let got = register(&fx, Some(1), payload.clone()).expect_err(&payload.to_string());
        assert!(got.contains(want), "{payload}: {got:?} lacks {want:?}");
    }
    let got = register(
        &fx,
        None,
        json!({"entry_type": "queues", "queue_name": "q", "bind_to_connection": true}),
    )
    .unwrap_err();
    assert!(got.contains("needs a client connection"), "{got}");
    fx.settings.data_dir = Some("/nonexistent".into());
    let got = register(
        &fx,
        Some(1),
        json!({"entry_type": "queues", "queue_name": "q", "bind_to_connection": true, "persist": true}),
    )
    .unwrap_err();
    assert!(got.contains("cannot be combined"), "{got}");
    let ok = register(
        &fx,
        Some(1),
        json!({"entry_type": "queues", "queue_name": "q", "ttl_seconds": 5, "persist": true}),
    )
    .unwrap();
    assert!(ok.persist);
}

#[test]
fn catalog_unregister_names_a_key_or_an_id() {
    let fx = Fixture::new();
    let target = parse_catalog_unregister(
        &rc(&fx, None),
        &obj(json!({"entry_type": "services", "name": "api", "namespace": "svc", "protocol": "tcp", "port": 80})),
    )
    .unwrap();
    assert_eq!(
        target,
        UnregisterTarget::Key(EntryKey::Service {
            cluster_id: CLUSTER.into(),
            node_id: ME.into(),
            namespace: "svc".into(),
            name: "api".into(),
            protocol: "tcp".into(),
            port: 80
        })
    );
    let target =
        parse_catalog_unregister(&rc(&fx, None), &obj(json!({"registration_id": "01X"}))).unwrap();
    assert_eq!(target, UnregisterTarget::Id("01X".into()));
    let target = parse_catalog_unregister(
        &rc(&fx, None),
        &obj(json!({"entry_type": "topics", "subscription_id": "s1"})),
    )
    .unwrap();
    assert_eq!(
        target,
        UnregisterTarget::Key(EntryKey::Topic {
            subscription_id: "s1".into()
        })
    );
    assert!(
        parse_catalog_unregister(&rc(&fx, None), &obj(json!({"entry_type": "topics"}))).is_err()
    );
    assert!(parse_catalog_unregister(&rc(&fx, None), &obj(json!({}))).is_err());
}

#[test]
fn dns_register_answers_mpregs_service_spec() {
    let fx = Fixture::new();
    // client_protocol.md §3.17's example.
    let req = parse_dns_register(
        &rc(&fx, None),
        &obj(json!({"name":"tradefeed","namespace":"market","protocol":"tcp","port":9000,
                    "targets":["10.0.1.13","10.0.1.12"],"tags":["primary"],"capabilities":["quotes"],
                    "metadata":{"tier":"gold","n":null,"nested":[1]},"priority":10,"weight":5})),
    )
    .unwrap();
    assert_eq!(
        req.dns_service,
        Some(
            json!({"name":"tradefeed","namespace":"market","protocol":"tcp","port":9000,
                    "targets":["10.0.1.12","10.0.1.13"],"scope":"zone","tags":["primary"],
                    "capabilities":["quotes"],"metadata":{"tier":"gold","nested":"[1]"},
                    "priority":10,"weight":5})
        )
    );
    let Entry::Service(s) = &req.entry else {
        panic!()
    };
    assert_eq!(s.ttl_seconds, fx.settings.fabric_catalog_ttl_seconds);
    assert_eq!(s.node_id, ME);
    assert_eq!(req.lease_ttl_seconds, None);
    assert_eq!(req.source, Source::Dns);
    // Scope text as sent (lower-cased), entry scope normalised; TTL kept.
    let req = parse_dns_register(
        &rc(&fx, None),
        &obj(json!({"name": "a", "scope": "CLUSTER", "ttl_seconds": 12})),
    )
    .unwrap();
    let spec = req.dns_service.unwrap();
    assert_eq!(spec["scope"], "cluster");
    assert_eq!(spec["ttl_seconds"], 12.0);
    assert_eq!(spec["metadata"], json!({}));
    assert!(spec.get("namespace").is_none());
    assert_eq!(req.entry.scope(), Scope::Zone);
    assert_eq!(req.entry.ttl_seconds(), 12.0);
    for (bad, want) in [
        (json!({}), "`name` is required"),
        (json!({"name": "a", "port": -1}), "`port` must be within"),
        (
            json!({"name": "a", "priority": 65536}),
            "`priority` must be within",
        ),
        (
            json!({"name": "a", "metadata": [1]}),
            "`metadata` must be an object",
        ),
        (
            json!({"name": "a", "ttl_seconds": 0}),
            "`ttl_seconds` must be between",
        ),
    ] {
        let e = parse_dns_register(&rc(&fx, None), &obj(bad.clone())).unwrap_err();
        assert!(
            e.details.as_deref().unwrap_or("").contains(want),
            "{bad}: {e:?}"
        );
    }
    let key = parse_dns_unregister(
        &rc(&fx, None),
        &obj(json!({"name":"tradefeed","namespace":"market","protocol":"tcp","port":9000})),
    )
    .unwrap();
    assert_eq!(key, req_key("tradefeed", "market", "tcp", 9000));
}

fn req_key(name: &str, ns: &str, proto: &str, port: u16) -> EntryKey {
    Entry::Service(service(name, ns, proto, port, ME, CLUSTER)).key()
}

#[test]
fn dns_list_and_describe_are_services_queries() {
    let mut fx = Fixture::new();
    let mut s = service("tradefeed", "market", "tcp", 9000, ME, CLUSTER);
    s.targets.insert("10.0.1.12".into());
    fx.add(s);
    fx.add(service("tradefeed", "market", "udp", 9000, ME, CLUSTER));
    fx.add(service(
        "other",
        "market.eu",
        "tcp",
        1,
        "ws://n2:1",
        CLUSTER,
    ));
    fx.add(service("x", "marketing", "tcp", 1, ME, CLUSTER));
    for fun in ["dns_list", "dns_describe"] {
        let res = fx.ok(
            fun,
            json!({"namespace": "market", "name": "tradefeed", "protocol": "tcp"}),
        );
        assert!(res.get("entry_type").is_none());
        assert_eq!(res["generated_at"], NOW);
        let items = res["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{res}");
        assert_eq!(items[0]["port"], 9000);
        assert_eq!(items[0]["targets"], json!(["10.0.1.12"]));
        // One namespace rule: market.eu is in market's subtree, marketing is not.
        let res = fx.ok(fun, json!({"namespace": "market"}));
        assert_eq!(
            strings(&res, "items", "/name"),
            ["tradefeed", "tradefeed", "other"]
        );
        let res = fx.ok(fun, json!({"port": 1, "limit": 1}));
        assert_eq!(res["items"].as_array().unwrap().len(), 1);
        assert!(res["next_page_token"].is_string());
        let d = fx.err(fun, json!({"scope": "planet"}));
        assert_eq!(d, "Unsupported discovery scope: planet");
        let d = fx.err(fun, json!({"port": 99999}));
        assert!(d.starts_with(fun), "{d}");
    }
}

#[test]
fn uuid4_has_the_version_and_variant_bits() {
    for bits in [0u128, u128::MAX, 0x0123_4567_89ab_cdef_0123_4567_89ab_cdef] {
        let u = uuid4(bits);
        assert_eq!(u.len(), 36);
        let parts: Vec<&str> = u.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'), "{u}");
        assert!(
            matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
            "{u}"
        );
    }
}

#[test]
fn versions_follow_mpregs_client_rule() {
    for ok in ["1", "1.2", "1.2.3", "v1.0.0", "10.20.30"] {
        assert!(valid_version(ok), "{ok}");
    }
    for bad in ["", "v", "1.", "1..2", "1.2.3.4", "1.0.0-beta", "x"] {
        assert!(!valid_version(bad), "{bad}");
    }
}
