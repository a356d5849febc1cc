//! Policy, identity, rate limiting and audit on the node's request paths,
//! driven through `handle` like a runtime would.

use std::net::SocketAddr;

use proptest::prelude::*;
use serde_json::{json, Value};

use super::*;
use crate::config::{PolicyRuleConfig, TenantCredential};
use crate::policy::PolicyEngine;
use crate::time::Instant;

const T0: f64 = 1_700_000_000.0;

fn at(secs: f64) -> Now {
    Now::new(Instant::from_nanos((secs * 1e9) as u64), T0 + secs)
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn rule(ns: &str, visibility: &[&str], tenants: &[&str]) -> PolicyRuleConfig {
    PolicyRuleConfig {
        namespace: ns.into(),
        owners: vec![],
        visibility: strs(visibility),
        visibility_tenants: strs(tenants),
        export_scopes: vec![],
        allow_summaries: false,
        cutover_windows: vec![],
        policy_version: None,
    }
}

fn base() -> Settings {
    Settings {
        host: "127.0.0.1".into(),
        port: 7100,
        cluster_id: "c1".into(),
        ..Settings::default()
    }
}

/// A node plus a helper to speak the client protocol to it.
struct Harness {
    node: Node,
    next_conn: ConnId,
    t: f64,
    /// Files the node asked to write, latest per name.
    persisted: BTreeMap<String, Vec<u8>>,
}

impl Harness {
    fn new(settings: Settings) -> Harness {
        let node = Node::new(settings, at(0.0), 7).expect("valid settings");
        let mut h = Harness {
            node,
            next_conn: 100,
            t: 0.0,
            persisted: BTreeMap::new(),
        };
        h.drain();
        h
    }

    fn now(&mut self) -> Now {
        self.t += 0.001;
        at(self.t)
    }

    fn drain(&mut self) -> Vec<Output> {
        let outs: Vec<Output> = std::iter::from_fn(|| self.node.poll_output()).collect();
        for o in &outs {
            if let Output::Persist { name, bytes } = o {
                self.persisted.insert(name.clone(), bytes.clone());
            }
        }
        outs
    }

    fn connect(&mut self, headers: &[(&str, &str)]) -> ConnId {
        self.next_conn += 1;
        let conn = self.next_conn;
        let addr: SocketAddr = format!("127.0.0.{}:4000", conn % 200 + 1).parse().unwrap();
        let now = self.now();
        self.node.handle(
            now,
            Input::Accepted {
                conn,
                kind: ConnKind::Client,
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                peer_addr: Some(addr),
                tls: false,
            },
        );
        self.drain();
        conn
    }

    /// Asks the node's DNS gateway for `name`/`qtype` over UDP from
    /// 127.0.0.1; returns the reply's response code and answer count.
    fn dns(
        &mut self,
        name: &str,
        qtype: hickory_proto::rr::RecordType,
    ) -> (hickory_proto::op::ResponseCode, usize) {
        use hickory_proto::op::{Message, MessageType, OpCode, Query};
        let mut q = Message::new(9, MessageType::Query, OpCode::Query);
        q.add_query(Query::query(
            hickory_proto::rr::Name::from_ascii(name).expect("test name"),
            qtype,
        ));
        let now = self.now();
        self.node.handle(
            now,
            Input::DnsQuery {
                id: 1,
                src: "127.0.0.1:5353".parse().unwrap(),
                transport: crate::DnsTransport::Udp,
                bytes: q.to_vec().expect("test query encodes"),
            },
        );
        let reply = self
            .drain()
            .into_iter()
            .find_map(|o| match o {
                Output::DnsReply { bytes, .. } => Some(bytes),
                _ => None,
            })
            .expect("the gateway answers");
        let m = Message::from_vec(&reply).expect("the reply parses");
        (m.metadata.response_code, m.answers.len())
    }

    /// Sends one RPC; returns `Ok(result)` or `Err(error object)`.
    fn rpc(&mut self, conn: ConnId, fun: &str, payload: Value) -> Result<Value, Value> {
        let req = json!({"role": "rpc", "u": "u1",
            "cmds": [{"name": fun, "fun": fun, "args": [payload], "kwargs": {}}]});
        let now = self.now();
        self.node.handle(
            now,
            Input::Frame {
                conn,
                frame: Frame::Text(req.to_string()),
            },
        );
        for out in self.drain() {
            if let Output::Send { conn: c, frame } = out {
                if c != conn {
                    continue;
                }
                let v: Value = serde_json::from_slice(frame.as_bytes()).unwrap();
                if v.get("u") != Some(&json!("u1")) {
                    continue;
                }
                if !v["error"].is_null() {
                    return Err(v["error"].clone());
                }
                return Ok(v["r"][fun].clone());
            }
        }
        panic!("no reply to {fun}");
    }

    /// Subscribes `conn` to `pattern` (MPREG's pubsub-subscribe).
    fn subscribe(&mut self, conn: ConnId, pattern: &str) {
        let sub = json!({"role": "pubsub-subscribe", "u": "s1", "subscription": {
            "subscription_id": format!("sub-{conn}"),
            "patterns": [{"pattern": pattern, "exact_match": false}],
            "subscriber": "t", "get_backlog": false}});
        let now = self.now();
        self.node.handle(
            now,
            Input::Frame {
                conn,
                frame: Frame::Text(sub.to_string()),
            },
        );
        self.drain();
    }

    /// Everything sent to `conn` by `outs`, as text.
    fn sent_to(outs: &[Output], conn: ConnId) -> String {
        let mut seen = String::new();
        for out in outs {
            if let Output::Send { conn: c, frame } = out {
                if *c == conn {
                    seen.push_str(&String::from_utf8_lossy(frame.as_bytes()));
                }
            }
        }
        seen
    }

    fn register_fn(&mut self, name: &str) {
        let now = self.now();
        self.node
            .call_mut(
                now,
                "catalog_register",
                json!({"entry_type": "functions", "name": name, "version": "1.0.0", "ttl_seconds": 600}),
            )
            .unwrap();
        self.drain();
    }

    fn names(&mut self, conn: ConnId, payload: Value) -> Vec<String> {
        let r = self.rpc(conn, "catalog_query", payload).unwrap();
        r["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["identity"]["name"].as_str().unwrap().to_string())
            .filter(|n| n.starts_with("svc."))
            .collect()
    }
}

fn tenant_settings(allow_override: Option<bool>) -> Settings {
    let mut s = base();
    s.discovery_policy_enabled = true;
    s.discovery_policy_default_allow = true;
    s.discovery_policy_rules = vec![rule("svc.secret", &[], &["tenant-a"])];
    s.discovery_tenant_mode = true;
    s.discovery_tenant_allow_request_override = allow_override;
    s
}

#[test]
fn tenant_visibility_and_audit_as_mpreg() {
    // test_namespace_policy_tenant_visibility_and_audit.
    let mut h = Harness::new(tenant_settings(Some(true)));
    h.register_fn("svc.secret.keys");
    h.register_fn("svc.open.hello");
    let c = h.connect(&[]);
    let q = |t: &str| json!({"entry_type": "functions", "namespace": "svc.secret", "viewer_tenant_id": t});
    assert_eq!(h.names(c, q("tenant-a")), ["svc.secret.keys"]);
    assert!(h.names(c, q("tenant-b")).is_empty());
    // Unfiltered: the secret entry is dropped per item, the open one stays.
    let all = h.names(
        c,
        json!({"entry_type": "functions", "viewer_tenant_id": "tenant-b"}),
    );
    assert_eq!(all, ["svc.open.hello"]);
    assert!(h.node.counters().policy_items_hidden >= 1);
    let audit = h.rpc(c, "discovery_access_audit", json!({})).unwrap();
    let entries = audit["entries"].as_array().unwrap();
    assert!(entries
        .iter()
        .any(|e| e["event"] == "catalog_query" && e["reason"] == "viewer_denied"));
    assert!(entries.iter().all(|e| e["allowed"] == false));
}

#[test]
fn bound_tenant_wins_and_unauthenticated_cannot_claim() {
    // test_namespace_policy_tenant_auth_binding, plus: with credentials the
    // request override is off unless set.
    let mut s = tenant_settings(None);
    s.discovery_tenant_credentials = vec![TenantCredential {
        tenant_id: "tenant-a".into(),
        token: "token-a".into(),
        scheme: "bearer".into(),
        role: "reader".into(),
    }];
    let mut h = Harness::new(s);
    h.register_fn("svc.secret.keys");
    let authed = h.connect(&[("authorization", "Bearer token-a")]);
    let anon = h.connect(&[]);
    let q = |t: &str| json!({"entry_type": "functions", "namespace": "svc.secret", "viewer_tenant_id": t});
    assert_eq!(h.names(authed, q("tenant-b")), ["svc.secret.keys"]);
    assert!(h.names(anon, q("tenant-a")).is_empty());
}

#[test]
fn admin_gate_on_apply_rollback_and_registration() {
    let mut s = base();
    s.discovery_tenant_credentials = vec![
        TenantCredential {
            tenant_id: "ops".into(),
            token: "admin-token".into(),
            scheme: "bearer".into(),
            role: "admin".into(),
        },
        TenantCredential {
            tenant_id: "viewer".into(),
            token: "reader-key".into(),
            scheme: "api-key".into(),
            role: "reader".into(),
        },
    ];
    let mut h = Harness::new(s);
    let admin = h.connect(&[("authorization", "Bearer admin-token")]);
    let reader = h.connect(&[("x-api-key", "reader-key")]);
    let anon = h.connect(&[]);
    let apply =
        json!({"rules": [{"namespace": "svc.secret", "visibility": ["ops"]}], "enabled": true});
    for c in [reader, anon] {
        let e = h
            .rpc(c, "namespace_policy_apply", apply.clone())
            .unwrap_err();
        assert_eq!(e["code"], 403, "{e}");
        assert_eq!(e["message"], "discovery_access_denied");
        let e = h
            .rpc(
                c,
                "catalog_register",
                json!({"entry_type": "functions", "name": "svc.x.f"}),
            )
            .unwrap_err();
        assert_eq!(e["code"], 403);
        let e = h
            .rpc(c, "namespace_policy_rollback", json!({"version": 1}))
            .unwrap_err();
        assert_eq!(e["code"], 403);
    }
    assert!(h.node.counters().admin_denied >= 6);
    let r = h.rpc(admin, "namespace_policy_apply", apply).unwrap();
    assert_eq!(r["applied"], true);
    assert_eq!(r["version"], 2);
    // Readers still read.
    h.rpc(reader, "namespace_policy_audit", json!({})).unwrap();
    let audit = h.rpc(reader, "namespace_policy_audit", json!({})).unwrap();
    let last = audit["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["actor"], "ops", "the principal is the audit actor");
}

#[test]
fn apply_hides_immediately_and_rollback_restores() {
    let mut h = Harness::new(base());
    h.register_fn("svc.secret.keys");
    let c = h.connect(&[]);
    let q = json!({"entry_type": "functions"});
    assert_eq!(h.names(c, q.clone()), ["svc.secret.keys"]);
    let r = h
        .rpc(
            c,
            "namespace_policy_apply",
            json!({"rules": [{"namespace": "svc.secret", "visibility": ["ops"]}], "enabled": true}),
        )
        .unwrap();
    assert_eq!(r["version"], 2);
    assert!(
        h.names(c, q.clone()).is_empty(),
        "applied policy hides at once"
    );
    let r = h
        .rpc(c, "namespace_policy_rollback", json!({"version": 1}))
        .unwrap();
    assert_eq!(r["rolled_back"], true);
    assert_eq!(h.names(c, q), ["svc.secret.keys"]);
}

#[test]
fn rate_limit_429_keyed_per_client_and_audited() {
    // test_discovery_rate_limit_blocks_excess_queries, plus: two anonymous
    // clients from different addresses have separate budgets.
    let mut s = base();
    s.discovery_rate_limit_requests_per_minute = 2;
    s.discovery_rate_limit_window_seconds = 60.0;
    s.discovery_rate_limit_max_keys = 10;
    let mut h = Harness::new(s);
    let a = h.connect(&[]);
    let b = h.connect(&[]);
    let q = json!({"entry_type": "functions"});
    h.rpc(a, "catalog_query", q.clone()).unwrap();
    h.rpc(a, "catalog_query", q.clone()).unwrap();
    let e = h.rpc(a, "catalog_query", q.clone()).unwrap_err();
    assert_eq!(e["code"], 429);
    assert_eq!(e["message"], "discovery_rate_limited");
    assert!(e["details"]
        .as_str()
        .unwrap()
        .starts_with("Rate limit exceeded for catalog_query"));
    h.rpc(b, "catalog_query", q).unwrap();
    // Not limited: list_peers.
    for _ in 0..5 {
        h.rpc(a, "list_peers", json!({})).unwrap();
    }
    let audit = h
        .rpc(
            a,
            "discovery_access_audit",
            json!({"reason": "rate_limited"}),
        )
        .unwrap();
    assert_eq!(audit["entries"].as_array().unwrap().len(), 1);
    assert_eq!(h.node.counters().rate_limited, 1);
}

#[test]
fn watch_denied_is_403_and_deliveries_are_filtered_per_viewer() {
    let mut s = base();
    s.discovery_policy_enabled = true;
    s.discovery_policy_rules = vec![rule("svc.secret", &["ops"], &[])];
    let mut h = Harness::new(s);
    let c = h.connect(&[]);
    let e = h
        .rpc(c, "catalog_watch", json!({"namespace": "svc.secret"}))
        .unwrap_err();
    assert_eq!(e["code"], 403);
    assert_eq!(
        e["details"],
        "catalog_watch denied for namespace svc.secret"
    );
    // A raw subscription to the root delta topic only ever sees what the
    // viewer may see.
    h.subscribe(c, "mpreg.discovery.#");
    let now = h.now();
    h.node
        .call_mut(
            now,
            "catalog_register",
            json!({"entry_type": "functions", "name": "svc.secret.keys", "version": "1.0.0", "ttl_seconds": 600}),
        )
        .unwrap();
    let now = h.now();
    h.node
        .call_mut(
            now,
            "catalog_register",
            json!({"entry_type": "functions", "name": "svc.open.hello", "version": "1.0.0", "ttl_seconds": 600}),
        )
        .unwrap();
    let outs = h.drain();
    let seen = Harness::sent_to(&outs, c);
    assert!(seen.contains("svc.open.hello"), "{seen}");
    assert!(!seen.contains("svc.secret"), "{seen}");
}

#[test]
fn namespace_status_redacts_the_rule_for_denied_viewers() {
    let mut s = base();
    s.discovery_policy_enabled = true;
    s.discovery_policy_rules = vec![rule("svc.secret", &["ops"], &[])];
    let mut h = Harness::new(s);
    let c = h.connect(&[]);
    let r = h
        .rpc(c, "namespace_status", json!({"namespace": "svc.secret"}))
        .unwrap();
    assert_eq!(r["allowed"], false);
    assert_eq!(r["reason"], "viewer_denied");
    assert!(r.get("rule").is_none(), "{r}");
    let r = h
        .rpc(c, "namespace_status", json!({"namespace": "svc.open"}))
        .unwrap();
    assert_eq!(r["allowed"], true);
}

#[test]
fn applied_policy_survives_a_restart() {
    let mut s = base();
    s.data_dir = Some("/nonexistent-but-set".into());
    let mut h = Harness::new(s.clone());
    let c = h.connect(&[]);
    h.rpc(
        c,
        "namespace_policy_apply",
        json!({"rules": [{"namespace": "svc.secret", "visibility": ["ops"]}], "enabled": true, "actor": "me"}),
    )
    .unwrap();
    // What the runtime would have written to the data directory.
    let bytes = h.persisted[policy::history::PERSIST_FILE].clone();
    let mut again = Harness::new(s);
    let now = again.now();
    again.node.handle(
        now,
        Input::Restored {
            name: policy::history::PERSIST_FILE.into(),
            bytes,
        },
    );
    again.drain();
    again.register_fn("svc.secret.keys");
    let c = again.connect(&[]);
    assert!(again
        .names(c, json!({"entry_type": "functions"}))
        .is_empty());
    let export = again.rpc(c, "namespace_policy_export", json!({})).unwrap();
    assert_eq!(export["version"], 2);
    assert_eq!(export["rule_count"], 1);
}

#[test]
fn apply_emits_a_persist_output_with_a_data_dir() {
    let mut s = base();
    s.data_dir = Some("/set".into());
    let mut h = Harness::new(s);
    let c = h.connect(&[]);
    let req = json!({"role": "rpc", "u": "u1", "cmds": [{"name": "a", "fun": "namespace_policy_apply",
        "args": [{"rules": [], "enabled": true}], "kwargs": {}}]});
    let now = h.now();
    h.node.handle(
        now,
        Input::Frame {
            conn: c,
            frame: Frame::Text(req.to_string()),
        },
    );
    let outs = h.drain();
    let persist = outs.iter().position(
        |o| matches!(o, Output::Persist { name, .. } if name == policy::history::PERSIST_FILE),
    );
    let reply = outs
        .iter()
        .position(|o| matches!(o, Output::Send { conn, .. } if *conn == c));
    assert!(persist.is_some() && reply.is_some());
    assert!(persist < reply, "written before the reply acknowledges it");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random policies, tenants and catalogs: a catalog_query answer, a
    /// watcher's deliveries and the DNS answers hold exactly the entries the
    /// viewer may see, and adding an unrelated rule never turns a hidden
    /// entry visible.
    #[test]
    fn queries_never_leak(
        rules in proptest::collection::vec(
            (0usize..4, proptest::collection::vec(0usize..3, 0..3), proptest::collection::vec(0usize..3, 0..3)),
            0..4),
        default_allow in any::<bool>(),
        tenant in proptest::option::of(0usize..3),
        fns in proptest::collection::vec((0usize..4, 0usize..3), 1..8),
    ) {
        const NS: [&str; 4] = ["svc.a", "svc.a.b", "svc.c", "svc.d"];
        const TENANTS: [&str; 3] = ["t0", "t1", "t2"];
        const CLUSTERS: [&str; 3] = ["c1", "c2", "c3"];
        let mut seen = std::collections::BTreeSet::new();
        let mut configs = Vec::new();
        for (ns, vis, ten) in &rules {
            if !seen.insert(*ns) {
                continue;
            }
            let vis: Vec<&str> = vis.iter().map(|i| CLUSTERS[*i]).collect();
            let ten: Vec<&str> = ten.iter().map(|i| TENANTS[*i]).collect();
            configs.push(rule(NS[*ns], &vis, &ten));
        }
        let mut s = base();
        s.discovery_policy_enabled = true;
        s.discovery_policy_default_allow = default_allow;
        s.discovery_policy_rules = configs.clone();
        s.discovery_tenant_mode = true;
        s.discovery_tenant_allow_request_override = Some(true);
        // DNS queries from 127.0.0.0/8 are the same viewer.
        s.dns_gateway_enabled = true;
        s.dns_zones = vec!["mpreg".into()];
        s.dns_viewer_tenant_id = tenant.map(|t| TENANTS[t].to_string());
        let mut h = Harness::new(s);
        let tenant = tenant.map(|t| TENANTS[t]);
        // A watcher with the same viewer, subscribed before the changes.
        let w = h.connect(&[]);
        h.rpc(w, "catalog_watch", json!({"viewer_tenant_id": tenant})).unwrap();
        h.subscribe(w, "mpreg.discovery.delta");
        let mut names = Vec::new();
        let mut delivered = String::new();
        for (i, (ns, leaf)) in fns.iter().enumerate() {
            let name = format!("{}.f{leaf}x{i}", NS[*ns]);
            let now = h.now();
            h.node
                .call_mut(
                    now,
                    "catalog_register",
                    json!({"entry_type": "functions", "name": name, "version": "1.0.0", "ttl_seconds": 600}),
                )
                .unwrap();
            let outs = h.drain();
            delivered.push_str(&Harness::sent_to(&outs, w));
            names.push(name);
        }
        let c = h.connect(&[]);
        let q = json!({"entry_type": "functions", "viewer_tenant_id": tenant});
        let got = h.names(c, q.clone());
        let engine = PolicyEngine::from_settings(h.node.settings()).unwrap();
        let viewer = Viewer::new("c1", tenant.map(str::to_string));
        let access = Access::new(&engine, &viewer, "c1");
        for n in &names {
            let f = crate::catalog::entry::Entry::from(
                crate::api::testutil::func(n, "1.0.0", "ws://127.0.0.1:7100", "c1"));
            let visible = access.entry_visible(&f);
            prop_assert_eq!(got.contains(n), visible, "query: {}", n);
            prop_assert_eq!(delivered.contains(n.as_str()), visible, "watch delivery: {}", n);
            // `_mpreg._tcp.<function>.<namespace>.mpreg` SRV.
            let (ns, leaf) = n.rsplit_once('.').expect("namespaced test name");
            let (rcode, answers) =
                h.dns(&format!("_mpreg._tcp.{leaf}.{ns}.mpreg."), hickory_proto::rr::RecordType::SRV);
            prop_assert_eq!(answers > 0, visible, "DNS answer for {}: {:?}", n, rcode);
        }
        // Add an unrelated rule (a namespace no function uses): nothing
        // hidden becomes visible.
        let mut more = configs;
        more.push(rule("svc.zzz", &["c1"], &[]));
        let apply = json!({"rules": more.iter().map(|r| json!({
            "namespace": r.namespace, "visibility": r.visibility,
            "visibility_tenants": r.visibility_tenants})).collect::<Vec<_>>(),
            "enabled": true, "default_allow": default_allow});
        h.rpc(c, "namespace_policy_apply", apply).unwrap();
        let after = h.names(c, q);
        for n in &after {
            prop_assert!(got.contains(n), "{} became visible after an unrelated rule", n);
        }
    }
}
