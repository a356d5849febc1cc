//! A mio node serving MPREG clients over real sockets on 127.0.0.1.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{settings, Runtime, TestNode};
use serde_json::json;
use tungstenite::Message;

#[test]
fn echo_round_trips_in_binary_and_text_frames() {
    let node = TestNode::start(Runtime::Mio, settings());
    let mut c = node.client();
    let reply = c.call_as("echo", json!(["hi"]), true);
    assert_eq!(reply["r"]["echo"], "hi", "binary request: {reply}");
    let reply = c.call_as("echo", json!([{"a": [1, 2]}]), false);
    assert_eq!(
        reply["r"]["echo"],
        json!({"a": [1, 2]}),
        "text request: {reply}"
    );
    // Several requests in flight on one connection, replies matched by u.
    for i in 0..20 {
        assert_eq!(c.call("echo", json!([i])), json!(i));
    }
    node.stop(Duration::from_secs(5)).expect("clean stop");
}

#[test]
fn ping_is_answered_with_pong() {
    let node = TestNode::start(Runtime::Mio, settings());
    let mut c = node.client();
    c.send(Message::Ping(b"are you there".to_vec().into()));
    // The pong is the next message (nothing else is in flight).
    match c.recv().expect("read") {
        Message::Pong(p) => assert_eq!(&p[..], b"are you there"),
        other => panic!("expected a pong, got {other:?}"),
    }
    // The connection still works after the ping.
    assert_eq!(c.call("echo", json!(["after"])), json!("after"));
}

#[test]
fn malformed_json_closes_only_that_connection() {
    let node = TestNode::start(Runtime::Mio, settings());
    let mut bad = node.client();
    let mut good = node.client();
    bad.send(Message::Text("{this is not json".into()));
    let close = bad.expect_closed().expect("bad connection closed");
    let (code, reason) = close.expect("closed with a close frame");
    assert_ne!(
        code, 1000,
        "a rejected frame is not a normal close: {reason}"
    );
    assert!(!reason.is_empty(), "close carries a reason");
    assert_eq!(
        good.call("echo", json!(["still here"])),
        json!("still here")
    );
}

#[test]
fn broken_websocket_frame_closes_only_that_connection() {
    let node = TestNode::start(Runtime::Mio, settings());
    let mut bad = node.client();
    let mut good = node.client();
    // FIN + reserved opcode 0x3, masked, empty payload: a protocol error.
    bad.ws
        .get_mut()
        .write_all(&[0x83, 0x80, 1, 2, 3, 4])
        .expect("raw write");
    match bad.expect_closed() {
        Ok(Some((code, _))) => assert_eq!(code, 1002, "protocol error close code"),
        Ok(None) => {} // dropped without a close frame: also closed
        Err(e) => panic!("bad connection not closed: {e}"),
    }
    assert_eq!(good.call("echo", json!(["ok"])), json!("ok"));
}

#[test]
fn half_finished_upgrade_does_not_block_others() {
    let node = TestNode::start(Runtime::Mio, settings());
    let mut raw = TcpStream::connect(node.addr).expect("connect");
    raw.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .expect("partial request");
    let mut c = node.client();
    assert_eq!(c.call("echo", json!(["unblocked"])), json!("unblocked"));
    // The half-open socket is still pending (its timeout is 10 s), not
    // answered with garbage.
    raw.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let mut buf = [0u8; 16];
    match raw.read(&mut buf) {
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "{e}"
        ),
        Ok(n) => panic!("half-open upgrade got {n} bytes"),
    }
}

#[test]
fn plain_http_request_is_rejected_without_harm() {
    let node = TestNode::start(Runtime::Mio, settings());
    let mut raw = TcpStream::connect(node.addr).expect("connect");
    raw.set_read_timeout(Some(common::TIMEOUT))
        .expect("timeout");
    raw.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("request");
    let mut resp = Vec::new();
    let _ = raw.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp);
    assert!(
        !text.starts_with("HTTP/1.1 101"),
        "a non-upgrade request must not be upgraded: {text}"
    );
    let mut c = node.client();
    assert_eq!(c.call("echo", json!([1])), json!(1));
}

/// A client that sends large requests and never reads its replies is
/// dropped once its unsent replies pass the write-buffer bound; the node
/// keeps serving everyone else.
#[test]
fn slow_reader_is_disconnected_and_others_keep_working() {
    let mut s = settings();
    s.client_max_message_bytes = 1 << 20;
    let node = TestNode::start(Runtime::Mio, s);
    let mut slow = node.client();
    let payload = "x".repeat(512 * 1024);
    const REQUESTS: usize = 80; // 40 MiB of replies, well past the bound
    let mut sent = 0;
    for i in 0..REQUESTS {
        let req = json!({
            "role": "rpc", "u": format!("s{i}"),
            "cmds": [{"name": "echo", "fun": "echo", "args": [payload], "kwargs": {}, "locs": []}],
        })
        .to_string();
        if slow
            .ws
            .send(Message::Binary(req.into_bytes().into()))
            .is_err()
        {
            break; // already dropped
        }
        sent += 1;
    }
    // Others are served meanwhile.
    let mut other = node.client();
    assert_eq!(other.call("echo", json!(["fine"])), json!("fine"));
    // Now read what reached us: the connection ends before every reply came.
    let mut replies = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    let ended = loop {
        if Instant::now() >= deadline {
            break false;
        }
        match slow.recv() {
            Ok(Message::Binary(_)) | Ok(Message::Text(_)) => replies += 1,
            Ok(Message::Close(_)) => break true,
            Ok(_) => {}
            Err(_) => break true,
        }
        if replies == REQUESTS {
            break false;
        }
    };
    eprintln!("slow reader: sent {sent} requests, got {replies} replies before the drop");
    assert!(
        ended && replies < REQUESTS,
        "slow reader not dropped: sent {sent}, got {replies} replies, ended={ended}"
    );
    assert_eq!(
        other.call("echo", json!(["still fine"])),
        json!("still fine")
    );
}

#[test]
fn stop_before_any_client_returns_promptly() {
    let node = TestNode::start(Runtime::Mio, settings());
    let started = Instant::now();
    node.stop(Duration::from_secs(5)).expect("clean stop");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn client_sees_close_when_node_stops() {
    let node = TestNode::start(Runtime::Mio, settings());
    let mut c = node.client();
    assert_eq!(c.call("echo", json!([0])), json!(0));
    let reader = std::thread::spawn(move || c.expect_closed());
    node.stop(Duration::from_secs(5)).expect("clean stop");
    let close = reader.join().expect("reader").expect("closed");
    assert_eq!(close.map(|c| c.0), Some(1001), "going-away close");
}

#[test]
fn bind_failure_is_an_error_not_a_panic() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut s = settings();
    s.port = taken.local_addr().expect("addr").port();
    let err = mpreg_mio::run(s, 1, mpreg_mio::Shutdown::new(), |_| {
        panic!("must not get ready on a taken port")
    })
    .expect_err("port is taken");
    assert!(err.to_string().contains("cannot listen"), "{err}");
}

/// Slowloris: an upgrade that never finishes is dropped after the
/// handshake timeout (`connection_handshake_timeout_seconds`).
#[test]
fn unfinished_upgrade_is_dropped_after_the_handshake_timeout() {
    const TIMEOUT: Duration = Duration::from_secs(2);
    let mut s = settings();
    s.connection_handshake_timeout_seconds = TIMEOUT.as_secs_f64();
    let node = TestNode::start(Runtime::Mio, s);
    let mut raw = TcpStream::connect(node.addr).expect("connect");
    raw.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .expect("partial request");
    raw.set_read_timeout(Some(TIMEOUT + Duration::from_secs(5)))
        .expect("timeout");
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
        waited >= TIMEOUT - Duration::from_millis(500),
        "dropped too early ({waited:?})"
    );
}
