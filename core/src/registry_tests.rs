//! The registry's books, and registrations end to end through a [`Node`]:
//! RPC frames in, catalog / gossip / watch notifications / persistence out.

use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::api::watch_delivery::{MAX_NOTIFICATIONS_PER_WINDOW, RESYNC_EVENT, WINDOW};
use crate::catalog::entry::{QueueEndpoint, ServiceEndpoint};
use crate::config::Settings;
use crate::io::{ConnKind, Frame, Input, Output};
use crate::node::Node;
use crate::time::Now;
use crate::wire::fabric::{self as fwire, FabricMsg};

// ---- the registry alone ------------------------------------------------

fn svc(name: &str, ttl: f64) -> Entry {
    ServiceEndpoint::new(name, "svc", "tcp", 80)
        .owned_by("ws://me:1", "c1")
        .advertised(100.0, ttl)
        .into()
}

fn reg(entry: Entry, lease: Option<Lease>, conn: Option<ConnId>, persist: bool) -> Registration {
    Registration {
        registration_id: format!("id-{}", entry.name()),
        source: Source::Catalog,
        entry,
        lease,
        conn,
        persist,
        registered_at: 100.0,
    }
}

fn at(s: u64) -> Instant {
    Instant::from_nanos(s * 1_000_000_000)
}

#[test]
fn leases_expire_unless_refreshed() {
    let mut r = Registry::new();
    assert_eq!(
        r.upsert(reg(
            svc("a", 10.0),
            Some(Lease::starting(at(0), 10.0)),
            None,
            false
        )),
        Upsert::New
    );
    r.upsert(reg(
        svc("b", 10.0),
        Some(Lease::starting(at(0), 10.0)),
        None,
        false,
    ));
    assert_eq!(r.next_deadline(), Some(at(10)));
    // Refreshing `a` at t=8 (same entry, fresher advertised_at) moves its
    // deadline and costs no catalog change.
    let mut again = svc("a", 10.0);
    again.refresh(108.0);
    assert_eq!(
        r.upsert(reg(again, Some(Lease::starting(at(8), 10.0)), None, false)),
        Upsert::Refreshed
    );
    // The stored entry is kept (it is what the catalog holds).
    assert_eq!(
        r.get(&svc("a", 10.0).key()).unwrap().entry.advertised_at(),
        100.0
    );
    assert!(r.expire(at(9)).is_empty());
    let gone = r.expire(at(10));
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].entry.name(), "b");
    assert_eq!(r.next_deadline(), Some(at(18)));
    assert_eq!(r.expire(at(18)).len(), 1);
    assert!(r.is_empty());
    assert_eq!(r.next_deadline(), None);
}

#[test]
fn connection_binding_and_changes() {
    let mut r = Registry::new();
    r.upsert(reg(svc("a", 30.0), None, Some(1), false));
    r.upsert(reg(svc("b", 30.0), None, Some(1), false));
    r.upsert(reg(svc("c", 30.0), None, Some(2), false));
    // Re-registering `b` from connection 2 moves its binding.
    assert_eq!(
        r.upsert(reg(svc("b", 30.0), None, Some(2), false)),
        Upsert::Refreshed
    );
    // A changed entry (another TTL) is a change, with the previous kept.
    match r.upsert(reg(svc("c", 20.0), None, Some(2), false)) {
        Upsert::Changed { previous } => assert_eq!(previous.entry.ttl_seconds(), 30.0),
        other => panic!("{other:?}"),
    }
    assert_eq!(r.min_entry_ttl(), Some(20.0));
    let names = |v: Vec<Registration>| {
        let mut n: Vec<String> = v.iter().map(|r| r.entry.name().to_string()).collect();
        n.sort();
        n
    };
    assert_eq!(names(r.drop_conn(1)), ["a"]);
    assert_eq!(names(r.drop_conn(1)), Vec::<String>::new());
    assert_eq!(names(r.drop_conn(2)), ["b", "c"]);
    assert_eq!(r.min_entry_ttl(), None);
    assert!(r.is_empty());
}

#[test]
fn reserved_keys_and_ids() {
    let mut r = Registry::new();
    r.reserve([svc("conf", 30.0).key()]);
    assert!(r.is_reserved(&svc("conf", 30.0).key()));
    assert!(!r.is_reserved(&svc("a", 30.0).key()));
    r.upsert(reg(svc("a", 30.0), None, Some(1), false));
    assert_eq!(r.key_of_id("id-a"), Some(svc("a", 30.0).key()));
    assert_eq!(r.key_of_id("nope"), None);
    assert_eq!(r.iter().count(), 1);
    assert!(r.remove(&svc("a", 30.0).key()).is_some());
    assert!(r.remove(&svc("a", 30.0).key()).is_none());
}

#[test]
fn snapshots_only_when_persisted_state_changes() {
    let mut r = Registry::new();
    r.upsert(reg(svc("a", 30.0), None, Some(1), false));
    assert_eq!(r.take_snapshot(), None, "not persisted");
    r.upsert(reg(
        svc("p", 30.0),
        Some(Lease::starting(at(0), 30.0)),
        None,
        true,
    ));
    let bytes = r.take_snapshot().expect("persisted registration added");
    assert_eq!(r.take_snapshot(), None, "taken");
    // A lease refresh does not rewrite the file.
    r.upsert(reg(
        svc("p", 30.0),
        Some(Lease::starting(at(5), 30.0)),
        None,
        true,
    ));
    assert_eq!(r.take_snapshot(), None);
    let (restored, bad) = decode_snapshot(&bytes, "ws://new:2", "c9", 500.0).unwrap();
    assert!(bad.is_empty());
    assert_eq!(restored.len(), 1);
    let back = &restored[0];
    assert_eq!(back.registration_id, "id-p");
    assert_eq!(back.lease_ttl_seconds, Some(30.0));
    assert_eq!(back.entry.node_id(), "ws://new:2");
    assert_eq!(back.entry.cluster_id(), "c9");
    assert_eq!(back.entry.advertised_at(), 500.0);
    assert_eq!(back.entry.name(), "p");
    r.remove(&svc("p", 30.0).key());
    let bytes = r.take_snapshot().expect("removal rewrites");
    assert_eq!(decode_snapshot(&bytes, "n", "c", 1.0).unwrap().0, vec![]);
}

#[test]
fn damaged_snapshots_never_panic() {
    assert!(decode_snapshot(b"", "n", "c", 1.0).is_err());
    assert!(decode_snapshot(b"{\"format\": 99, \"registrations\": []}", "n", "c", 1.0).is_err());
    let doc = json!({"format": 1, "registrations": [
        {"registration_id": "x", "source": "dns", "entry_type": "services", "entry": 5, "registered_at": 1.0},
        {"registration_id": "y", "source": "dns", "entry_type": "services", "entry": {"name": "s"}, "registered_at": 1.0},
        {"registration_id": "z", "source": "catalog", "entry_type": "queues", "entry": {"queue_name": "q"}, "registered_at": 1.0, "lease_ttl_seconds": -3.0}
    ]});
    let (ok, bad) = decode_snapshot(doc.to_string().as_bytes(), "n", "c", 1.0).unwrap();
    assert_eq!(bad.len(), 2, "{bad:?}");
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0].lease_ttl_seconds, None);
    assert_eq!(
        ok[0].entry,
        Entry::Queue(QueueEndpoint::new("q", "n", "c").advertised(1.0, 30.0))
    );
}

// ---- through a node ----------------------------------------------------

const T0: f64 = 1_700_000_000.0;

fn settings(port: u16, data_dir: bool) -> Settings {
    Settings {
        host: "127.0.0.1".into(),
        port,
        cluster_id: "c1".into(),
        data_dir: data_dir.then(|| "/nonexistent/mpreg-test".to_string()),
        ..Settings::default()
    }
}

struct Harness {
    node: Node,
    now: Now,
    outs: Vec<Output>,
    next_u: u64,
}

impl Harness {
    fn new(port: u16, data_dir: bool) -> Harness {
        let now = Now::new(Instant::from_nanos(1_000_000_000), T0);
        let node = Node::new(settings(port, data_dir), now, 7).expect("valid settings");
        let mut h = Harness {
            node,
            now,
            outs: Vec::new(),
            next_u: 0,
        };
        h.drain();
        h.outs.clear();
        h
    }

    fn drain(&mut self) {
        while let Some(o) = self.node.poll_output() {
            self.outs.push(o);
        }
    }

    fn input(&mut self, input: Input) {
        self.node.handle(self.now, input);
        self.drain();
    }

    fn advance(&mut self, d: Duration) {
        self.now = self.now.advanced(d);
        self.input(Input::Tick);
    }

    fn client(&mut self, conn: ConnId, kind: ConnKind) {
        self.input(Input::Accepted {
            conn,
            kind,
            headers: vec![],
            peer_addr: None,
            tls: false,
        });
    }

    /// JSON messages sent to `conn` since the last call (taken).
    fn sent_to(&mut self, conn: ConnId) -> Vec<Value> {
        let mut out = Vec::new();
        self.outs.retain(|o| match o {
            Output::Send { conn: c, frame } if *c == conn => {
                if let Ok(v) = serde_json::from_slice(frame.as_bytes()) {
                    out.push(v);
                }
                false
            }
            _ => true,
        });
        out
    }

    /// Calls `fun` on client connection `conn`; the whole reply envelope.
    fn call(&mut self, conn: ConnId, fun: &str, payload: Value) -> Value {
        self.next_u += 1;
        let u = format!("u{}", self.next_u);
        let frame = json!({"role": "rpc", "u": u, "cmds": [{"name": fun, "fun": fun,
            "args": [payload], "kwargs": {}, "locs": [], "function_id": null,
            "version_constraint": null, "target_cluster": null, "routing_topic": null}]});
        self.input(Input::Frame {
            conn,
            frame: Frame::Binary(frame.to_string().into_bytes().into()),
        });
        let mut reply = None;
        let mut keep = Vec::new();
        for o in std::mem::take(&mut self.outs) {
            if let Output::Send { conn: c, frame } = &o {
                if *c == conn {
                    if let Ok(v) = serde_json::from_slice::<Value>(frame.as_bytes()) {
                        if v["u"] == json!(u) {
                            reply = Some(v);
                            continue;
                        }
                    }
                }
            }
            keep.push(o);
        }
        self.outs = keep;
        reply.unwrap_or_else(|| panic!("no reply to {fun}"))
    }

    fn ok(&mut self, conn: ConnId, fun: &str, payload: Value) -> Value {
        let reply = self.call(conn, fun, payload.clone());
        assert!(reply["error"].is_null(), "{fun}({payload}): {reply}");
        reply["r"][fun].clone()
    }

    fn err(&mut self, conn: ConnId, fun: &str, payload: Value) -> String {
        let reply = self.call(conn, fun, payload.clone());
        assert_eq!(reply["error"]["code"], 1003, "{fun}({payload}): {reply}");
        reply["error"]["details"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn services(&self, name: &str) -> usize {
        let res = self
            .node
            .call(
                self.now,
                "catalog_query",
                json!({"entry_type": "services", "service_name": name}),
            )
            .unwrap();
        res["items"].as_array().map_or(0, Vec::len)
    }

    fn persisted(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        self.outs.retain(|o| match o {
            Output::Persist { name, bytes } if name == PERSIST_FILE => {
                out.push(bytes.clone());
                false
            }
            _ => true,
        });
        out
    }

    /// Fabric deltas flooded to `conn` since the last call (taken).
    fn deltas_to(&mut self, conn: ConnId) -> Vec<fwire::Delta> {
        let mut out = Vec::new();
        self.outs.retain(|o| match o {
            Output::Send {
                conn: c,
                frame: Frame::Binary(b),
            } if *c == conn => {
                if let Ok(f) = fwire::decode(b, usize::MAX) {
                    if let FabricMsg::Delta(d) = f.msg {
                        out.push(d);
                    }
                }
                false
            }
            _ => true,
        });
        out
    }
}

#[test]
fn a_lease_holds_while_refreshed_and_is_withdrawn_and_gossiped_when_not() {
    let mut h = Harness::new(7001, false);
    h.client(1, ConnKind::Client);
    h.client(9, ConnKind::Fabric);
    h.outs.clear();
    let res = h.ok(
        1,
        "catalog_register",
        json!({"entry_type": "services", "name": "api", "namespace": "svc", "protocol": "tcp", "port": 80, "ttl_seconds": 4}),
    );
    assert_eq!(res["refreshed"], false);
    assert_eq!(res["bound_to_connection"], false);
    assert_eq!(res["expires_at"], T0 + 4.0);
    assert_eq!(res["item"]["node_id"], "ws://127.0.0.1:7001");
    let id = res["registration_id"].as_str().unwrap().to_string();
    assert_eq!(h.services("api"), 1);
    let d = h.deltas_to(9);
    assert_eq!(d.len(), 1);
    assert!(d[0]
        .changes
        .decode()
        .unwrap()
        .iter()
        .any(|c| c.entry.is_some()));

    // Refreshed every 3 s: still there at 9 s, and a refresh floods nothing
    // but freshness.
    for _ in 0..3 {
        h.advance(Duration::from_secs(3));
        let res = h.ok(
            1,
            "catalog_register",
            json!({"entry_type": "services", "name": "api", "namespace": "svc", "protocol": "tcp", "port": 80, "ttl_seconds": 4}),
        );
        assert_eq!(res["refreshed"], true);
        assert_eq!(res["registration_id"], id.as_str());
        assert_eq!(h.services("api"), 1);
    }
    assert!(h.deltas_to(9).iter().all(|d| d.changes.is_empty()));
    // The node re-announces its entries within a quarter of the shortest TTL.
    let next = h.node.poll_timeout().unwrap();
    assert!(next <= h.now.mono + Duration::from_secs(1), "{next:?}");

    // No refresh: withdrawn at the deadline, as a flooded tombstone.
    h.advance(Duration::from_millis(3_900));
    assert_eq!(h.services("api"), 1);
    h.advance(Duration::from_millis(200));
    assert_eq!(h.services("api"), 0);
    assert!(h.node.registry().is_empty());
    let d = h.deltas_to(9);
    assert!(
        d.iter().any(|d| d
            .changes
            .decode()
            .unwrap()
            .iter()
            .any(|c| c.entry.is_none())),
        "{d:?}"
    );
    // Gone, so unregistering finds nothing.
    let res = h.ok(1, "catalog_unregister", json!({"registration_id": id}));
    assert_eq!(res["removed"], false);
}

#[test]
fn bound_registrations_end_with_their_connection() {
    let mut h = Harness::new(7001, false);
    h.client(1, ConnKind::Client);
    h.client(2, ConnKind::Client);
    for i in 0..3 {
        h.ok(
            1,
            "catalog_register",
            json!({"entry_type": "queues", "queue_name": format!("svc.q{i}"), "bind_to_connection": true}),
        );
    }
    let res = h.ok(
        2,
        "catalog_register",
        json!({"entry_type": "queues", "queue_name": "svc.keep", "bind_to_connection": true}),
    );
    assert_eq!(res["bound_to_connection"], true);
    assert!(res.get("expires_at").is_none());
    let count = |h: &Harness| {
        h.node
            .call(h.now, "catalog_query", json!({"entry_type": "queues"}))
            .unwrap()["items"]
            .as_array()
            .map_or(0, Vec::len)
    };
    assert_eq!(count(&h), 4);
    h.input(Input::Closed { conn: 1 });
    assert_eq!(count(&h), 1);
    assert_eq!(h.node.registry().len(), 1);
    // Unregistering explicitly works from any connection.
    h.client(3, ConnKind::Client);
    let res = h.ok(
        3,
        "catalog_unregister",
        json!({"entry_type": "queues", "queue_name": "svc.keep"}),
    );
    assert_eq!(res["removed"], true);
    assert_eq!(count(&h), 0);
}

#[test]
fn registration_refuses_what_it_must_not_touch() {
    let mut h = Harness::new(7001, false);
    h.client(1, ConnKind::Client);
    // A built-in RPC's entry is configuration.
    let d = h.err(
        1,
        "catalog_register",
        json!({"entry_type": "functions", "name": "echo", "version": "1.0.0", "ttl_seconds": 5}),
    );
    assert!(d.contains("part of the node's configuration"), "{d}");
    let res = h.ok(
        1,
        "catalog_unregister",
        json!({"entry_type": "functions", "name": "echo", "version": "1.0.0"}),
    );
    assert_eq!(res["removed"], false);
    // A function name bound to another id is refused, and nothing changes.
    h.ok(
        1,
        "catalog_register",
        json!({"entry_type": "functions", "name": "svc.f", "version": "1.0.0", "ttl_seconds": 5}),
    );
    let d = h.err(
        1,
        "catalog_register",
        json!({"entry_type": "functions", "name": "svc.f", "function_id": "other", "version": "2.0.0", "ttl_seconds": 5}),
    );
    assert!(d.starts_with("catalog_register:"), "{d}");
    assert_eq!(h.node.registry().len(), 1);
    // The read-only in-process path refuses mutations; call_mut runs them.
    assert_eq!(
        h.node
            .call(h.now, "dns_register", json!({"name": "a"}))
            .unwrap_err()
            .code,
        1003
    );
    let now = h.now;
    let res = h
        .node
        .call_mut(now, "dns_register", json!({"name": "a", "port": 53}))
        .unwrap();
    assert_eq!(res["service"]["port"], 53);
    // Another cluster is not routable.
    let reply = {
        h.next_u += 1;
        let frame = json!({"role": "rpc", "u": "x", "cmds": [{"name": "dns_register", "fun": "dns_register",
            "args": [{"name": "b"}], "kwargs": {}, "target_cluster": "elsewhere"}]});
        h.input(Input::Frame {
            conn: 1,
            frame: Frame::Text(frame.to_string()),
        });
        h.sent_to(1).pop().unwrap()
    };
    assert_eq!(reply["error"]["code"], 1001, "{reply}");
}

#[test]
fn dns_register_replaces_by_key_with_a_new_id_and_lives_until_unregistered() {
    let mut h = Harness::new(7001, false);
    h.client(1, ConnKind::Client);
    let p = json!({"name": "tradefeed", "namespace": "market", "protocol": "tcp", "port": 9000, "targets": ["10.0.1.12"]});
    let a = h.ok(1, "dns_register", p.clone());
    let b = h.ok(1, "dns_register", p.clone());
    assert_ne!(a["registration_id"], b["registration_id"]);
    assert_eq!(a["registered_at"], T0);
    assert_eq!(h.services("tradefeed"), 1);
    // Not bound, no lease: survives its connection.
    h.input(Input::Closed { conn: 1 });
    h.advance(Duration::from_secs(120));
    assert_eq!(h.services("tradefeed"), 1);
    h.client(2, ConnKind::Client);
    let listed = h.ok(2, "dns_list", json!({"namespace": "market"}));
    assert_eq!(listed["items"][0]["targets"], json!(["10.0.1.12"]));
    let res = h.ok(
        2,
        "dns_unregister",
        json!({"name": "tradefeed", "namespace": "market", "protocol": "tcp", "port": 9000}),
    );
    assert_eq!(res["removed"], true);
    let res = h.ok(
        2,
        "dns_unregister",
        json!({"name": "tradefeed", "namespace": "market", "protocol": "tcp", "port": 9000}),
    );
    assert_eq!(res["removed"], false);
    assert_eq!(h.services("tradefeed"), 0);
}

#[test]
fn persisted_registrations_round_trip_through_persist_and_restored() {
    let mut a = Harness::new(7001, true);
    a.client(1, ConnKind::Client);
    a.ok(
        1,
        "dns_register",
        json!({"name": "tradefeed", "namespace": "market", "protocol": "tcp", "port": 9000, "persist": true}),
    );
    a.ok(
        1,
        "catalog_register",
        json!({"entry_type": "queues", "queue_name": "svc.orders", "ttl_seconds": 60, "persist": true}),
    );
    // Not persisted: not in the file.
    a.ok(
        1,
        "catalog_register",
        json!({"entry_type": "queues", "queue_name": "svc.temp", "bind_to_connection": true}),
    );
    let files = a.persisted();
    assert_eq!(files.len(), 2, "one write per change");
    let file = files.last().unwrap().clone();
    // A refresh does not rewrite the file.
    a.ok(
        1,
        "catalog_register",
        json!({"entry_type": "queues", "queue_name": "svc.orders", "ttl_seconds": 60, "persist": true}),
    );
    assert!(a.persisted().is_empty());

    // "Restart" on another port: the runtime feeds the file back.
    let mut b = Harness::new(7002, true);
    b.input(Input::Restored {
        name: PERSIST_FILE.into(),
        bytes: file,
    });
    assert_eq!(b.services("tradefeed"), 1);
    let q = b
        .node
        .call(b.now, "catalog_query", json!({"entry_type": "queues"}))
        .unwrap();
    assert_eq!(q["items"].as_array().unwrap().len(), 1);
    assert_eq!(q["items"][0]["queue_name"], "svc.orders");
    assert_eq!(q["items"][0]["node_id"], "ws://127.0.0.1:7002");
    assert_eq!(b.node.registry().len(), 2);
    // Re-stamped content is written back.
    let rewritten = b.persisted();
    assert_eq!(rewritten.len(), 1);
    assert!(String::from_utf8_lossy(&rewritten[0]).contains("ws://127.0.0.1:7002"));
    // The restored lease starts afresh and lapses without refresh.
    b.advance(Duration::from_secs(61));
    let q = b
        .node
        .call(b.now, "catalog_query", json!({"entry_type": "queues"}))
        .unwrap();
    assert_eq!(q["items"].as_array().unwrap().len(), 0);
    assert_eq!(
        b.services("tradefeed"),
        1,
        "dns registrations have no lease"
    );
    assert_eq!(b.persisted().len(), 1, "the lapse rewrote the file");

    // Garbage and unknown files are reported, never fatal.
    b.input(Input::Restored {
        name: PERSIST_FILE.into(),
        bytes: b"{not json".to_vec(),
    });
    b.input(Input::Restored {
        name: "other.json".into(),
        bytes: vec![],
    });
    assert!(b
        .outs
        .iter()
        .any(|o| matches!(o, Output::Event(crate::io::Event::BadInput { .. }))));
    assert_eq!(b.services("tradefeed"), 1);

    // Without data_dir nothing is written, and persist is refused.
    let mut c = Harness::new(7003, false);
    c.client(1, ConnKind::Client);
    let d = c.err(1, "dns_register", json!({"name": "x", "persist": true}));
    assert!(d.contains("data_dir"), "{d}");
    assert!(c.persisted().is_empty());
}

/// Subscribes connection `conn` to the topic its `catalog_watch(req)`
/// names.
fn watch(h: &mut Harness, conn: ConnId, sub: &str, req: Value) -> String {
    let res = h.ok(conn, "catalog_watch", req);
    let topic = res["topic"].as_str().unwrap().to_string();
    let frame = json!({"role": "pubsub-subscribe", "u": format!("s-{sub}"), "subscription": {
        "subscription_id": sub, "patterns": [{"pattern": topic, "exact_match": true}],
        "subscriber": "t", "created_at": T0, "get_backlog": false, "backlog_seconds": 300}});
    h.input(Input::Frame {
        conn,
        frame: Frame::Text(frame.to_string()),
    });
    let ack = h.sent_to(conn);
    assert_eq!(ack[0]["success"], true, "{ack:?}");
    topic
}

#[test]
fn watchers_get_only_what_their_catalog_watch_asked_for() {
    let mut h = Harness::new(7001, false);
    h.client(1, ConnKind::Client);
    h.client(2, ConnKind::Client);
    h.client(3, ConnKind::Client);
    let topic = watch(
        &mut h,
        2,
        "zone",
        json!({"namespace": "svc.market", "scope": "zone"}),
    );
    assert_eq!(topic, "mpreg.discovery.delta.svc.market");
    watch(&mut h, 3, "all", json!({}));
    let reg = |h: &mut Harness, name: &str, ns: &str, scope: &str| {
        h.ok(
            1,
            "catalog_register",
            json!({"entry_type": "services", "name": name, "namespace": ns, "scope": scope, "bind_to_connection": true}),
        );
    };
    reg(&mut h, "quote", "svc.market", "zone");
    reg(&mut h, "eu", "svc.market.eu", "region");
    reg(&mut h, "hidden", "svc.market", "local");
    reg(&mut h, "other", "svc.other", "zone");
    let names = |msgs: &[Value], list: &str| -> Vec<String> {
        msgs.iter()
            .flat_map(|m| {
                m["message"]["payload"]["delta"][list]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .map(|i| i["name"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let zone = h.sent_to(2);
    assert_eq!(names(&zone, "services"), ["quote", "eu"]);
    for m in &zone {
        assert_eq!(m["role"], "pubsub-notification");
        assert_eq!(m["subscription_id"], "zone");
        assert_eq!(m["message"]["topic"], topic);
        assert_eq!(m["message"]["headers"]["event"], "discovery.catalog_delta");
        assert_eq!(m["message"]["publisher"], "ws://127.0.0.1:7001");
    }
    let all = h.sent_to(3);
    assert_eq!(names(&all, "services"), ["quote", "eu", "hidden", "other"]);
    // Removals follow the same filter, in one delta per change.
    h.input(Input::Closed { conn: 1 });
    let zone = h.sent_to(2);
    assert_eq!(zone.len(), 1);
    assert_eq!(names(&zone, "service_removals"), ["quote", "eu"]);
    assert_eq!(
        zone[0]["message"]["payload"]["counts"]["services_removed"],
        2
    );
    let all = h.sent_to(3);
    assert_eq!(all.len(), 1);
    assert_eq!(names(&all, "service_removals").len(), 4);
}

#[test]
fn a_flooded_watcher_is_cut_and_told_to_resync() {
    let mut h = Harness::new(7001, false);
    h.client(1, ConnKind::Client);
    h.client(2, ConnKind::Client);
    watch(&mut h, 2, "w", json!({}));
    let total = MAX_NOTIFICATIONS_PER_WINDOW as usize + 52;
    for i in 0..total {
        h.ok(
            1,
            "catalog_register",
            json!({"entry_type": "services", "name": format!("s{i}"), "namespace": "svc", "bind_to_connection": true}),
        );
    }
    let got = h.sent_to(2);
    assert_eq!(got.len(), MAX_NOTIFICATIONS_PER_WINDOW as usize);
    assert!(h.node.poll_timeout().unwrap() <= h.now.mono + WINDOW);
    h.advance(WINDOW);
    let hint = h.sent_to(2);
    assert_eq!(hint.len(), 1, "{hint:?}");
    assert_eq!(hint[0]["subscription_id"], "w");
    assert_eq!(hint[0]["message"]["headers"]["event"], RESYNC_EVENT);
    assert_eq!(hint[0]["message"]["payload"]["missed"], 52);
    // The next window delivers again (all removals, in chunks).
    h.input(Input::Closed { conn: 1 });
    let removed: usize = h
        .sent_to(2)
        .iter()
        .map(|m| {
            m["message"]["payload"]["counts"]["services_removed"]
                .as_u64()
                .unwrap_or(0) as usize
        })
        .sum();
    assert_eq!(removed, total);
}

/// A delta whose changes do not parse, from a peer that brings news with
/// it, is a malformed frame: counted, the link closed, nothing applied.
#[test]
fn a_delta_with_unparsable_changes_closes_the_link() {
    let mut h = Harness::new(7001, false);
    h.client(9, ConnKind::Fabric);
    let peer = "ws://127.0.0.1:7002";
    let frame = |msg: FabricMsg| Input::Frame {
        conn: 9,
        frame: Frame::Binary(fwire::encode(&msg).into()),
    };
    h.input(frame(FabricMsg::Hello(fwire::Hello {
        node_id: peer.into(),
        cluster_id: "c".into(),
        instance_id: "i1".into(),
        challenge: None,
    })));
    h.outs.clear();
    h.input(frame(FabricMsg::Delta(fwire::Delta {
        origin: peer.into(),
        instance_id: "i1".into(),
        started_at: T0,
        heartbeat: 1,
        refreshed_at: T0,
        reset: false,
        floor: 0,
        complete_to: 1,
        changes: fwire::Changes::from_encoded(vec![0xa1, 0xff]),
        flood: true,
    })));
    let closed = h.outs.iter().find_map(|o| match o {
        Output::Close { conn: 9, reason } => Some((reason.code, reason.reason.clone())),
        _ => None,
    });
    let (code, reason) = closed.expect("the link is closed");
    assert_eq!(code, 1008);
    assert!(reason.contains("delta change"), "{reason}");
    assert_eq!(h.node.counters().fabric_frames_rejected, 1);
    assert!(h.node.replica().view_instance(peer).is_none());
}
