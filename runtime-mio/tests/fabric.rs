//! Nodes finding each other over the fabric: mio with mio, mio with tokio,
//! and GOODBYE on a graceful stop. Real sockets on 127.0.0.1.

mod common;

use std::time::{Duration, Instant};

use common::{settings, wait_until, Runtime, TestNode};

/// Starts `a`, then `b` with `a` as its seed, and waits until each lists
/// the other.
fn converge(a_rt: Runtime, b_rt: Runtime) -> (TestNode, TestNode) {
    let a = TestNode::start(a_rt, settings());
    let mut s = settings();
    s.peers = vec![a.url()];
    let b = TestNode::start(b_rt, s);
    let (mut ca, mut cb) = (a.client(), b.client());
    let started = Instant::now();
    let mut last = (Vec::new(), Vec::new());
    let ok = wait_until(Duration::from_secs(5), || {
        last = (ca.peer_urls(), cb.peer_urls());
        last.0 == [b.url()] && last.1 == [a.url()]
    });
    assert!(
        ok,
        "{a_rt:?} {} and {b_rt:?} {} did not converge within 5 s: a lists {:?}, b lists {:?}",
        a.url(),
        b.url(),
        last.0,
        last.1
    );
    eprintln!("{a_rt:?}+{b_rt:?} converged in {:?}", started.elapsed());
    (a, b)
}

#[test]
fn two_mio_nodes_converge() {
    converge(Runtime::Mio, Runtime::Mio);
}

#[test]
fn mio_node_dials_tokio_node() {
    converge(Runtime::Tokio, Runtime::Mio);
}

#[test]
fn tokio_node_dials_mio_node() {
    converge(Runtime::Mio, Runtime::Tokio);
}

/// Stopping `leaver` through its Shutdown handle sends GOODBYE: `stayer`
/// drops it from `list_peers` within 2 s (its liveness timeout is far
/// longer, so only the GOODBYE can explain that), and `run` returns.
fn goodbye(leaver_rt: Runtime, stayer_rt: Runtime) {
    let (stayer, leaver) = converge(stayer_rt, leaver_rt);
    let gone = leaver.url();
    let mut c = stayer.client();
    let stopped = Instant::now();
    leaver
        .stop(Duration::from_secs(5))
        .expect("leaver exits cleanly");
    eprintln!("{leaver_rt:?} node exited in {:?}", stopped.elapsed());
    let mut last = Vec::new();
    let ok = wait_until(Duration::from_secs(2), || {
        last = c.peer_urls();
        !last.contains(&gone)
    });
    assert!(
        ok,
        "{stayer_rt:?} node still lists {gone} 2 s after its graceful stop: {last:?}"
    );
}

#[test]
fn mio_shutdown_sends_goodbye_to_mio_peer() {
    goodbye(Runtime::Mio, Runtime::Mio);
}

#[test]
fn mio_shutdown_sends_goodbye_to_tokio_peer() {
    goodbye(Runtime::Mio, Runtime::Tokio);
}

#[test]
fn tokio_shutdown_is_seen_by_mio_peer() {
    goodbye(Runtime::Tokio, Runtime::Mio);
}

#[test]
fn unreachable_seed_does_not_disturb_the_node() {
    // A port nothing listens on: every dial fails fast and is retried.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_url = format!("ws://{}", dead.local_addr().expect("addr"));
    drop(dead);
    let mut s = settings();
    s.peers = vec![dead_url, "ws://localhost:1".into()];
    let node = TestNode::start(Runtime::Mio, s);
    let mut c = node.client();
    for i in 0..5 {
        assert_eq!(c.call("echo", serde_json::json!([i])), serde_json::json!(i));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(c.peer_urls().is_empty());
    node.stop(Duration::from_secs(5)).expect("clean stop");
}

/// The seed is dialled as soon as the node starts, not at its first gossip
/// round: with the default 5 s interval the pair still meets at once.
#[test]
fn seed_is_dialled_at_start() {
    let mut s = settings();
    s.gossip_interval = 5.0;
    let a = TestNode::start(Runtime::Mio, s.clone());
    s.peers = vec![a.url()];
    let b = TestNode::start(Runtime::Mio, s);
    let mut ca = a.client();
    let ok = wait_until(Duration::from_secs(2), || ca.peer_urls() == [b.url()]);
    assert!(ok, "{} never heard from its dialler {}", a.url(), b.url());
}

/// Accepts one connection on `listener` within 5 s.
fn accept_within(listener: &std::net::TcpListener) -> std::net::TcpStream {
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match listener.accept() {
            Ok((sock, _)) => {
                sock.set_nonblocking(false).expect("blocking");
                sock.set_read_timeout(Some(Duration::from_secs(5)))
                    .expect("timeout");
                return sock;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "the node never dialled");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// A dial offers the fabric subprotocol and gives up after the dial
/// timeout when the server never answers the upgrade.
#[test]
fn dial_offers_the_subprotocol_and_times_out_on_a_silent_server() {
    use std::io::Read;
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut s = settings();
    s.fabric_dial_timeout_seconds = 0.5;
    s.peers = vec![format!("ws://{}", silent.local_addr().expect("addr"))];
    let _node = TestNode::start(Runtime::Mio, s);
    let mut sock = accept_within(&silent);
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = sock.read(&mut buf).expect("upgrade request");
        assert!(n > 0, "closed before the request was complete");
        request.extend_from_slice(&buf[..n]);
    }
    let request = String::from_utf8_lossy(&request).to_ascii_lowercase();
    assert!(
        request.contains("sec-websocket-protocol: mpreg-fabric.v1"),
        "dial does not offer the subprotocol: {request}"
    );
    // Say nothing; the dialler must hang up after its 0.5 s timeout.
    let waited = Instant::now();
    let ended = loop {
        match sock.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break false
            }
            Err(_) => break true,
        }
    };
    assert!(
        ended && waited.elapsed() < Duration::from_secs(3),
        "silent dial still open after {:?}",
        waited.elapsed()
    );
}

/// A WebSocket server that does not agree to the fabric subprotocol is not
/// a peer: the dial fails and the connection is dropped.
#[test]
fn dial_to_a_server_without_the_subprotocol_fails() {
    let plain = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut s = settings();
    s.peers = vec![format!("ws://{}", plain.local_addr().expect("addr"))];
    let node = TestNode::start(Runtime::Mio, s);
    let sock = accept_within(&plain);
    let mut ws = tungstenite::accept(sock).expect("upgrade without subprotocol");
    match ws.read() {
        Err(_) | Ok(tungstenite::Message::Close(_)) => {}
        Ok(other) => panic!("the dialler sent {other:?} over a non-fabric connection"),
    }
    assert!(node.client().peer_urls().is_empty());
}
