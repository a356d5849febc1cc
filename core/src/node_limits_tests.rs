//! Resource bounds on the node's connection and request paths (issue 11),
//! driven through `handle` like a runtime would: each bound, when hit, is
//! counted, refuses only the party that hit it (a close or an error reply
//! naming the setting), and leaves everyone else served.

use std::net::SocketAddr;

use serde_json::{json, Value};

use super::*;
use crate::time::Instant;

const T0: f64 = 1_700_000_000.0;

fn at(secs: f64) -> Now {
    Now::new(Instant::from_nanos((secs * 1e9) as u64), T0 + secs)
}

fn base() -> Settings {
    Settings {
        host: "127.0.0.1".into(),
        port: 7200,
        cluster_id: "c1".into(),
        ..Settings::default()
    }
}

struct Harness {
    node: Node,
    next_conn: ConnId,
    t: f64,
}

impl Harness {
    fn new(settings: Settings) -> Harness {
        let node = Node::new(settings, at(0.0), 11).expect("valid settings");
        let mut h = Harness {
            node,
            next_conn: 0,
            t: 0.0,
        };
        h.drain();
        h
    }

    fn drain(&mut self) -> Vec<Output> {
        std::iter::from_fn(|| self.node.poll_output()).collect()
    }

    /// Moves the clock to `t` seconds and feeds `input`.
    fn feed_at(&mut self, t: f64, input: Input) -> Vec<Output> {
        self.t = self.t.max(t);
        self.node.handle(at(self.t), input);
        self.drain()
    }

    fn feed(&mut self, input: Input) -> Vec<Output> {
        let t = self.t + 0.001;
        self.feed_at(t, input)
    }

    /// Accepts a connection of `kind` from `ip`; returns its id and what
    /// the node did.
    fn accept(&mut self, kind: ConnKind, ip: &str) -> (ConnId, Vec<Output>) {
        self.accept_over(kind, ip, false)
    }

    /// [`Harness::accept`], over TLS when `tls`.
    fn accept_over(&mut self, kind: ConnKind, ip: &str, tls: bool) -> (ConnId, Vec<Output>) {
        self.next_conn += 1;
        let conn = self.next_conn;
        let addr: SocketAddr = format!("{ip}:{}", 40000 + conn).parse().expect("addr");
        let outs = self.feed(Input::Accepted {
            conn,
            kind,
            headers: vec![],
            peer_addr: Some(addr),
            tls,
        });
        (conn, outs)
    }

    fn client(&mut self, ip: &str) -> ConnId {
        let (conn, outs) = self.accept(ConnKind::Client, ip);
        assert_eq!(closed(&outs, conn), None, "{conn} refused");
        conn
    }

    fn rpc(&mut self, conn: ConnId, fun: &str, payload: Value) -> Result<Value, Value> {
        let req = json!({"role": "rpc", "u": "u1",
            "cmds": [{"name": fun, "fun": fun, "args": [payload], "kwargs": {}}]});
        let outs = self.feed(Input::Frame {
            conn,
            frame: Frame::Text(req.to_string()),
        });
        assert_eq!(closed(&outs, conn), None, "{fun} closed {conn}");
        let v = reply(&outs, conn).unwrap_or_else(|| panic!("no reply to {fun}"));
        if v["error"].is_null() {
            Ok(v["r"][fun].clone())
        } else {
            Err(v["error"].clone())
        }
    }

    /// Subscribes `conn` as `id`; returns the acknowledgement.
    fn subscribe(&mut self, conn: ConnId, id: &str) -> Value {
        let sub = json!({"role": "pubsub-subscribe", "u": id, "subscription": {
            "subscription_id": id,
            "patterns": [{"pattern": "app.#", "exact_match": false}],
            "subscriber": "t", "get_backlog": false}});
        let outs = self.feed(Input::Frame {
            conn,
            frame: Frame::Text(sub.to_string()),
        });
        assert_eq!(closed(&outs, conn), None, "subscribe closed {conn}");
        reply(&outs, conn).expect("ack")
    }

    fn hits(&self, limit: Limit) -> u64 {
        self.node.counters().limit_hits.get(limit)
    }
}

/// The close the node asked for on `conn`, if any.
fn closed(outs: &[Output], conn: ConnId) -> Option<CloseReason> {
    outs.iter().find_map(|o| match o {
        Output::Close { conn: c, reason } if *c == conn => Some(reason.clone()),
        _ => None,
    })
}

/// The last message sent to `conn`, as JSON.
fn reply(outs: &[Output], conn: ConnId) -> Option<Value> {
    outs.iter().rev().find_map(|o| match o {
        Output::Send { conn: c, frame } if *c == conn => {
            serde_json::from_slice(frame.as_bytes()).ok()
        }
        _ => None,
    })
}

#[test]
fn connections_over_the_per_source_limit_are_closed_naming_it() {
    let mut h = Harness::new(Settings {
        max_connections_per_source: 2,
        ..base()
    });
    let first = h.client("10.0.0.1");
    h.client("10.0.0.1");
    // The third from the same address, client or fabric, is refused.
    for kind in [ConnKind::Client, ConnKind::Fabric] {
        let (extra, outs) = h.accept(kind, "10.0.0.1");
        let why = closed(&outs, extra).expect("refused");
        assert_eq!(why.code, 1008);
        assert!(
            why.reason.contains("max_connections_per_source (2)"),
            "{why:?}"
        );
        assert!(why.reason.contains("10.0.0.1"), "{why:?}");
        // Nothing else: no greeting on a refused fabric link.
        assert!(!outs
            .iter()
            .any(|o| matches!(o, Output::Send { conn, .. } if *conn == extra)));
        // The runtime reports the close; the node ignores a link it refused.
        h.feed(Input::Closed { conn: extra });
    }
    assert_eq!(h.hits(Limit::ConnectionsPerSource), 2);
    // Other sources, and the connections already admitted, are served.
    h.client("10.0.0.2");
    assert!(h.rpc(first, "list_peers", json!({})).is_ok());
    // A closed connection frees its slot.
    h.feed(Input::Closed { conn: first });
    h.client("10.0.0.1");
    assert_eq!(h.hits(Limit::ConnectionsPerSource), 2);
}

#[test]
fn connections_over_the_total_limit_are_closed_naming_it() {
    let mut h = Harness::new(Settings {
        max_connections: 2,
        ..base()
    });
    let a = h.client("10.0.0.1");
    h.client("10.0.0.2");
    let (extra, outs) = h.accept(ConnKind::Client, "10.0.0.3");
    let why = closed(&outs, extra).expect("refused");
    assert_eq!(why.code, 1008);
    assert!(why.reason.contains("max_connections (2)"), "{why:?}");
    assert_eq!(h.hits(Limit::Connections), 1);
    assert_eq!(h.hits(Limit::ConnectionsPerSource), 0);
    assert!(h.rpc(a, "list_peers", json!({})).is_ok());
}

#[test]
fn idle_clients_are_closed_but_waiting_ones_are_not() {
    let mut h = Harness::new(Settings {
        client_idle_timeout_seconds: 10.0,
        ..base()
    });
    let quiet = h.client("10.0.0.1");
    let busy = h.client("10.0.0.2");
    let subscriber = h.client("10.0.0.3");
    let watcher = h.client("10.0.0.4");
    assert_eq!(h.subscribe(subscriber, "s")["success"], json!(true));
    assert!(h
        .rpc(watcher, "catalog_watch", json!({"namespace": "svc"}))
        .is_ok());
    // The deadline comes through poll_timeout, not a scan per tick.
    let wake = h.node.poll_timeout().expect("deadline");
    assert!(wake <= at(10.01).mono, "{wake:?}");
    h.feed_at(
        6.0,
        Input::Frame {
            conn: busy,
            frame: Frame::Text("{}".into()),
        },
    );
    let outs = h.feed_at(10.5, Input::Tick);
    let why = closed(&outs, quiet).expect("quiet client closed");
    assert_eq!(why.code, 1008);
    assert!(
        why.reason.contains("client_idle_timeout_seconds"),
        "{why:?}"
    );
    for conn in [busy, subscriber, watcher] {
        assert_eq!(closed(&outs, conn), None, "{conn} closed early");
    }
    h.feed(Input::Closed { conn: quiet });
    // The busy one was last heard of at 6 s: it goes at 16 s.
    let outs = h.feed_at(16.5, Input::Tick);
    assert!(closed(&outs, busy).is_some());
    h.feed(Input::Closed { conn: busy });
    // Connections waiting for deliveries stay, however long they wait.
    let outs = h.feed_at(100.0, Input::Tick);
    assert!(closed(&outs, subscriber).is_none() && closed(&outs, watcher).is_none());
    assert_eq!(h.hits(Limit::ClientIdle), 2);
    assert!(h.rpc(subscriber, "list_peers", json!({})).is_ok());
}

#[test]
fn zero_idle_timeout_keeps_clients_forever() {
    let mut h = Harness::new(Settings {
        client_idle_timeout_seconds: 0.0,
        ..base()
    });
    let c = h.client("10.0.0.1");
    let outs = h.feed_at(1_000_000.0, Input::Tick);
    assert_eq!(closed(&outs, c), None);
    assert_eq!(h.hits(Limit::ClientIdle), 0);
}

#[test]
fn subscriptions_over_the_cap_get_an_error_ack_not_a_close() {
    let mut h = Harness::new(Settings {
        client_max_subscriptions_per_connection: 2,
        ..base()
    });
    let c = h.client("10.0.0.1");
    assert_eq!(h.subscribe(c, "a")["success"], json!(true));
    assert_eq!(h.subscribe(c, "b")["success"], json!(true));
    let ack = h.subscribe(c, "c");
    assert_eq!(ack["success"], json!(false));
    let error = ack["error"].as_str().expect("error text");
    assert!(
        error.contains("client_max_subscriptions_per_connection"),
        "{error}"
    );
    assert_eq!(h.hits(Limit::SubscriptionsPerConnection), 1);
    // Replacing one is not a new subscription; other connections have
    // their own budget; the connection keeps working.
    assert_eq!(h.subscribe(c, "a")["success"], json!(true));
    let other = h.client("10.0.0.2");
    assert_eq!(h.subscribe(other, "c")["success"], json!(true));
    assert!(h.rpc(c, "list_peers", json!({})).is_ok());
}

#[test]
fn watches_over_the_cap_get_an_error_reply_not_a_close() {
    let mut h = Harness::new(Settings {
        client_max_watches_per_connection: 1,
        ..base()
    });
    let c = h.client("10.0.0.1");
    assert!(h
        .rpc(c, "catalog_watch", json!({"namespace": "svc.a"}))
        .is_ok());
    let e = h
        .rpc(c, "catalog_watch", json!({"namespace": "svc.b"}))
        .expect_err("over the cap");
    assert_eq!(e["code"], json!(client::codes::EXECUTION_FAILED));
    let details = e["details"].as_str().expect("details");
    assert!(
        details.contains("client_max_watches_per_connection"),
        "{details}"
    );
    assert_eq!(h.hits(Limit::WatchesPerConnection), 1);
    // Re-watching the same topic replaces its filter, within the cap.
    assert!(h
        .rpc(c, "catalog_watch", json!({"namespace": "svc.a"}))
        .is_ok());
    let other = h.client("10.0.0.2");
    assert!(h
        .rpc(other, "catalog_watch", json!({"namespace": "svc.b"}))
        .is_ok());
    assert_eq!(h.hits(Limit::WatchesPerConnection), 1);
}

#[test]
fn handshake_timeouts_reported_by_the_runtime_are_counted() {
    let mut h = Harness::new(base());
    let outs = h.feed(Input::HandshakeTimedOut {
        peer_addr: Some("10.0.0.9:5000".parse().expect("addr")),
    });
    assert_eq!(h.hits(Limit::HandshakeTimeout), 1);
    assert!(outs.iter().any(|o| matches!(
        o,
        Output::Event(Event::Info(line)) if line.contains("10.0.0.9")
    )));
}

#[test]
fn departed_records_past_the_cap_are_evicted_and_counted() {
    let mut h = Harness::new(Settings {
        fabric_max_departed_records: 2,
        ..base()
    });
    let (peer, outs) = h.accept(ConnKind::Fabric, "10.0.0.1");
    assert_eq!(closed(&outs, peer), None);
    for i in 0..4 {
        let goodbye = FabricMsg::Goodbye(Goodbye {
            node_id: format!("ws://10.0.1.{i}:7000"),
            cluster_id: "c1".into(),
            instance_id: format!("inst-{i}"),
            reason: "graceful_shutdown".into(),
            timestamp: T0,
        });
        let outs = h.feed(Input::Frame {
            conn: peer,
            frame: Frame::Binary(fwire::encode(&goodbye).into()),
        });
        assert_eq!(closed(&outs, peer), None, "GOODBYE {i} closed the link");
    }
    assert_eq!(h.hits(Limit::DepartedRecords), 2);
    assert_eq!(h.node.replica().gone_counts(), (2, 0));
    // The newest departures are the ones remembered.
    assert!(h.node.replica().is_departed("ws://10.0.1.3:7000", "inst-3"));
    assert!(!h.node.replica().is_departed("ws://10.0.1.0:7000", "inst-0"));
}

#[test]
fn a_flood_of_refusals_logs_one_line_a_second_and_counts_every_one() {
    let mut h = Harness::new(Settings {
        max_connections_per_source: 1,
        ..base()
    });
    h.client("10.0.0.9");
    let logged = |outs: &[Output]| {
        outs.iter()
            .filter_map(|o| match o {
                Output::Event(Event::BadInput { detail, .. }) => Some(detail.clone()),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let mut lines = Vec::new();
    for _ in 0..50 {
        let (extra, outs) = h.accept(ConnKind::Client, "10.0.0.9");
        assert!(closed(&outs, extra).is_some(), "every one is refused");
        lines.extend(logged(&outs));
        h.feed(Input::Closed { conn: extra });
    }
    assert_eq!(h.hits(Limit::ConnectionsPerSource), 50, "every one counted");
    assert_eq!(lines.len(), 1, "{lines:?}");
    // A second later the next line says how many were left out.
    let t = h.t + 1.0;
    h.t = t;
    let (_, outs) = h.accept(ConnKind::Client, "10.0.0.9");
    let next = logged(&outs);
    assert_eq!(next.len(), 1, "{next:?}");
    assert!(next[0].contains("49 more like it"), "{next:?}");
}

#[test]
fn client_tls_required_closes_plain_clients_only() {
    let mut h = Harness::new(Settings {
        client_tls_cert_file: Some("cert.pem".into()),
        client_tls_key_file: Some("key.pem".into()),
        client_tls_required: true,
        ..base()
    });
    let (plain, outs) = h.accept_over(ConnKind::Client, "10.0.0.1", false);
    let why = closed(&outs, plain).expect("a plain client is closed");
    assert_eq!(why.code, 1008);
    assert!(why.reason.contains("wss://"), "{}", why.reason);
    assert_eq!(h.node.counters().client_tls_refused, 1);
    // Frames it sent before the close reached it go nowhere.
    let outs = h.feed(Input::Frame {
        conn: plain,
        frame: Frame::Text(r#"{"role":"rpc","u":"u","cmds":[]}"#.into()),
    });
    assert!(reply(&outs, plain).is_none(), "{outs:?}");
    h.feed(Input::Closed { conn: plain });

    let (secure, outs) = h.accept_over(ConnKind::Client, "10.0.0.1", true);
    assert_eq!(closed(&outs, secure), None);
    assert_eq!(h.rpc(secure, "echo", json!("x")), Ok(json!("x")));
    // Fabric peers authenticate with the cluster key, not TLS.
    let (peer, outs) = h.accept_over(ConnKind::Fabric, "10.0.0.2", false);
    assert_eq!(closed(&outs, peer), None);
    assert_eq!(h.node.counters().client_tls_refused, 1);
}

#[test]
fn without_client_tls_required_plain_clients_are_served() {
    let mut h = Harness::new(base());
    let (plain, outs) = h.accept_over(ConnKind::Client, "10.0.0.1", false);
    assert_eq!(closed(&outs, plain), None);
    assert_eq!(h.rpc(plain, "echo", json!("y")), Ok(json!("y")));
    assert_eq!(h.node.counters().client_tls_refused, 0);
}

/// The catalog's service index hashes with a seed drawn from the node's
/// own: the same node seed gives the same index (replayable), another seed
/// another one, and neither is the fixed 0 of `Catalog::new`, which anyone
/// could precompute colliding service names for.
#[test]
fn the_service_index_is_seeded_by_the_node() {
    let seed_of = |seed| {
        Node::new(base(), at(0.0), seed)
            .expect("valid settings")
            .catalog()
            .seed()
    };
    assert_eq!(seed_of(11), seed_of(11));
    assert_ne!(seed_of(11), seed_of(12));
    assert_ne!(seed_of(11), 0);
}
