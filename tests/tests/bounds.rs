//! Black-box tests of the resource bounds (issue 11) on real `mpreg server`
//! processes over 127.0.0.1, with small limits set in a settings file: each
//! bound, when hit, refuses only the party that hit it with a reason naming
//! the setting, is counted in `mpreg_limit_hits_total{limit}`, and leaves
//! the node serving everyone else. Runs on the runtime `MPREG_TEST_RUNTIME`
//! names (tokio by default).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mpreg_tests::{metric, metrics_text, unique_id, wait_until, Conn, Node};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(10);
const NO_ARGS: [&str; 0] = [];

/// `mpreg_limit_hits_total{limit="<limit>"}` scraped from `/metrics` on
/// the node's client port.
fn limit_hits(node: &Node, limit: &str) -> f64 {
    let text = metrics_text(node.port());
    let series = format!("mpreg_limit_hits_total{{limit=\"{limit}\"}}");
    metric(&text, &series).unwrap_or_else(|| panic!("no {series} in /metrics:\n{text}"))
}

/// Waits (bounded) until the `limit` counter reaches `want`.
fn wait_hits(node: &Node, limit: &str, want: f64) {
    let ok = wait_until(TIMEOUT, Duration::from_millis(50), || {
        limit_hits(node, limit) >= want
    });
    assert!(
        ok,
        "{limit} hits stayed at {} (< {want})",
        limit_hits(node, limit)
    );
}

/// Subscribes `conn` to `app.#` as `id`; returns the acknowledgement.
fn subscribe(conn: &mut Conn, id: &str) -> Value {
    let u = unique_id("sub");
    conn.request(
        &u,
        &json!({"role": "pubsub-subscribe", "u": u, "subscription": {
            "subscription_id": id,
            "patterns": [{"pattern": "app.#", "exact_match": false}],
            "subscriber": "bounds-test", "get_backlog": false}}),
    )
}

#[test]
fn connections_over_the_per_source_limit_are_refused_with_the_reason() {
    let node = Node::start_with_config("max_connections_per_source = 2\n", NO_ARGS);
    let mut first = node.connect();
    let mut second = node.connect();
    assert_eq!(first.call_ok("echo", json!("a")), json!("a"));
    assert_eq!(second.call_ok("echo", json!("b")), json!("b"));
    // Every test connection comes from 127.0.0.1: the third is over.
    let mut third = Conn::try_connect(node.url(), TIMEOUT).expect("upgrade itself succeeds");
    let why = third
        .expect_closed(TIMEOUT)
        .expect("third connection closed");
    assert!(why.contains("1008"), "{why}");
    assert!(why.contains("max_connections_per_source (2)"), "{why}");
    // The connections already admitted still answer.
    assert_eq!(first.call_ok("echo", json!("still")), json!("still"));
    wait_hits(&node, "connections_per_source", 1.0);
    // A closed connection frees its slot.
    second.close();
    let ok = wait_until(TIMEOUT, Duration::from_millis(100), || {
        let Ok(mut c) = Conn::try_connect(node.url(), TIMEOUT) else {
            return false;
        };
        let u = unique_id("u");
        c.send_json(&mpreg_tests::rpc_frame(
            &u,
            "echo",
            json!(["again"]),
            json!({}),
        ));
        c.recv().is_some_and(|v| v["r"]["echo"] == json!("again"))
    });
    assert!(ok, "the freed slot was not reusable:\n{}", node.log());
}

/// Sends `partial` (a request head that never ends, a slowloris client)
/// to `addr` and checks the node hangs up after about the 1 s handshake
/// timeout and counts it.
fn assert_partial_head_dropped(node: &Node, addr: &str, partial: &[u8]) {
    let mut raw = TcpStream::connect(addr).expect("connect");
    raw.write_all(partial).expect("partial head");
    raw.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    let started = Instant::now();
    let mut buf = [0u8; 64];
    let n = raw.read(&mut buf);
    let waited = started.elapsed();
    assert!(
        matches!(n, Ok(0))
            || matches!(&n, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "expected the node to hang up, got {n:?} after {waited:?}"
    );
    assert!(
        waited >= Duration::from_millis(700) && waited < TIMEOUT,
        "dropped after {waited:?}, not after about 1 s"
    );
    wait_hits(node, "handshake_timeout", 1.0);
}

#[test]
fn a_partial_http_head_is_dropped_after_the_handshake_timeout() {
    let node = Node::start_with_config("connection_handshake_timeout_seconds = 1.0\n", NO_ARGS);
    let addr = format!("127.0.0.1:{}", node.port());
    assert_partial_head_dropped(&node, &addr, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    // Everyone else is served.
    let mut c = node.connect();
    assert_eq!(c.call_ok("echo", json!("ok")), json!("ok"));
}

#[test]
fn a_partial_head_on_the_monitoring_port_is_dropped_and_counted() {
    let node = Node::start_with_config("connection_handshake_timeout_seconds = 1.0\n", NO_ARGS);
    let url = node
        .ready_value("MPREG_MONITORING_URL")
        .expect("monitoring is on by default");
    let addr = url.strip_prefix("http://").expect("http URL");
    assert_partial_head_dropped(&node, addr, b"GET /metrics HTTP/1.1\r\n");
}

#[test]
fn an_idle_client_is_closed_but_a_subscriber_is_kept() {
    let node = Node::start_with_config("client_idle_timeout_seconds = 1.0\n", NO_ARGS);
    let mut subscriber = node.connect();
    assert_eq!(subscribe(&mut subscriber, "s1")["success"], json!(true));
    let mut idle = node.connect();
    let started = Instant::now();
    let why = idle.expect_closed(TIMEOUT).expect("idle client closed");
    let waited = started.elapsed();
    assert!(why.contains("1008"), "{why}");
    assert!(why.contains("client_idle_timeout_seconds"), "{why}");
    assert!(
        waited >= Duration::from_millis(700),
        "closed after {waited:?}"
    );
    // Well past the timeout, the subscriber (waiting for deliveries) is
    // still there and served.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(subscriber.call_ok("echo", json!("here")), json!("here"));
    wait_hits(&node, "client_idle", 1.0);
}

#[test]
fn subscriptions_and_watches_over_their_caps_get_error_replies() {
    let config = "client_max_subscriptions_per_connection = 2\n\
                  client_max_watches_per_connection = 1\n";
    let node = Node::start_with_config(config, NO_ARGS);
    let mut c = node.connect();
    assert_eq!(subscribe(&mut c, "a")["success"], json!(true));
    assert_eq!(subscribe(&mut c, "b")["success"], json!(true));
    let ack = subscribe(&mut c, "c");
    assert_eq!(ack["success"], json!(false), "{ack}");
    let error = ack["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("client_max_subscriptions_per_connection"),
        "{ack}"
    );
    wait_hits(&node, "subscriptions_per_connection", 1.0);

    c.call_ok("catalog_watch", json!({"namespace": "svc.a"}));
    let reply = c.call("catalog_watch", json!([{"namespace": "svc.b"}]), json!({}));
    assert_eq!(reply["error"]["code"], json!(1003), "{reply}");
    let details = reply["error"]["details"].as_str().unwrap_or_default();
    assert!(
        details.contains("client_max_watches_per_connection"),
        "{reply}"
    );
    wait_hits(&node, "watches_per_connection", 1.0);
    // Not a close: the same connection keeps working.
    assert_eq!(c.call_ok("echo", json!("fine")), json!("fine"));
}
