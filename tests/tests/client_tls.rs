//! TLS for client connections (issue 11) with real `mpreg server`
//! processes on 127.0.0.1: one port serves `wss://` and `ws://` clients,
//! fabric peers and HTTP(S) GETs side by side; `client_tls_required` closes
//! plain clients with a reason naming `wss://` and counts them while plain
//! fabric peers still mesh; a TLS client that stalls is dropped at the
//! handshake timeout; TLS files that cannot be used stop the node at start
//! with the setting named. Runs on the runtime `MPREG_TEST_RUNTIME` names.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mpreg_client::{Client, ClientError, Credentials};
use mpreg_tests::{
    metric, metrics_text, mpreg_bin, test_runtime, unique_temp_dir, wait_until, Node,
};
use rustls::pki_types::ServerName;
use serde_json::{json, Map};

const TIMEOUT: Duration = Duration::from_secs(10);
const NO_ARGS: [&str; 0] = [];

/// A self-signed certificate for 127.0.0.1 and its key, written as PEM
/// files in a fresh directory.
struct Pki {
    dir: PathBuf,
    cert: String,
    key: String,
}

impl Pki {
    fn new(label: &str) -> Pki {
        let dir = unique_temp_dir(label);
        let pair = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("rcgen makes a certificate");
        let cert = write(&dir, "cert.pem", &pair.cert.pem());
        let key = write(&dir, "key.pem", &pair.signing_key.serialize_pem());
        Pki { dir, cert, key }
    }

    /// Settings lines turning client TLS on.
    fn settings(&self) -> String {
        format!(
            "client_tls_cert_file = {:?}\nclient_tls_key_file = {:?}\n",
            self.cert, self.key
        )
    }

    /// A client TLS configuration trusting only this certificate.
    fn trust(&self) -> Arc<rustls::ClientConfig> {
        mpreg_client::tls::trust_ca_file(&self.cert).expect("the test certificate loads")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write PEM");
    path.display().to_string()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(f)
}

/// Connects with `creds` and calls `echo`.
fn echo(url: &str, creds: &Credentials) -> Result<serde_json::Value, ClientError> {
    block_on(async {
        let mut c = Client::connect(url, TIMEOUT, creds).await?;
        let r = c.call("echo", vec![json!("over tls")], Map::new()).await;
        c.close().await;
        r
    })
}

fn tls_url(node: &Node) -> String {
    format!("wss://127.0.0.1:{}", node.port())
}

/// A TLS session to the node's client port (blocking), trusting `pki`.
fn tls_stream(node: &Node, pki: &Pki) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let tcp = TcpStream::connect(("127.0.0.1", node.port())).expect("connect");
    tcp.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    tcp.set_write_timeout(Some(TIMEOUT)).expect("timeout");
    let name = ServerName::try_from("127.0.0.1").expect("an IP address is a server name");
    let conn = rustls::ClientConnection::new(pki.trust(), name).expect("client session");
    rustls::StreamOwned::new(conn, tcp)
}

fn tls_refused(node: &Node) -> f64 {
    metric(&metrics_text(node.port()), "mpreg_client_tls_refused_total").unwrap_or(-1.0)
}

#[test]
fn wss_ws_and_https_share_the_client_port() {
    let pki = Pki::new("tls-share");
    let node = Node::start_with_config(&pki.settings(), NO_ARGS);
    assert_eq!(
        node.ready_value("MPREG_TLS_URL"),
        Some(tls_url(&node).as_str()),
        "the node prints its wss:// URL"
    );
    let trusted = Credentials {
        tls: Some(pki.trust()),
        ..Credentials::default()
    };
    let r =
        echo(&tls_url(&node), &trusted).unwrap_or_else(|e| panic!("wss echo: {e}\n{}", node.log()));
    assert_eq!(r, json!("over tls"));
    // Plain clients keep working on the same port.
    let r = echo(node.url(), &Credentials::default()).expect("ws echo");
    assert_eq!(r, json!("over tls"));

    // The system roots do not vouch for a self-signed certificate.
    let e = echo(&tls_url(&node), &Credentials::default()).expect_err("untrusted certificate");
    assert!(e.to_string().contains("certificate"), "{e}");

    // Monitoring GETs over TLS on the client port.
    let mut s = tls_stream(&node, &pki);
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .expect("GET over TLS");
    let mut text = String::new();
    // The node ends the session after the answer; a missing close_notify
    // would be an error, so read what came and check it.
    let _ = s.read_to_string(&mut text);
    assert!(
        text.starts_with("HTTP/1.1 200"),
        "{}",
        &text[..text.len().min(200)]
    );
    assert_eq!(metric(&text, "mpreg_client_tls_refused_total"), Some(0.0));
}

#[test]
fn tls_required_refuses_plain_clients_but_not_plain_peers() {
    let pki = Pki::new("tls-required");
    let settings = format!("{}client_tls_required = true\n", pki.settings());
    let hub = Node::start_with_config(&settings, NO_ARGS);
    let peer_settings = format!("{settings}connect = {:?}\n", hub.url());
    let peer = Node::start_with_config(&peer_settings, NO_ARGS);
    let trusted = Credentials {
        tls: Some(pki.trust()),
        ..Credentials::default()
    };
    // The fabric link between the two is plain ws:// and still comes up.
    let lists_peer = || {
        block_on(async {
            let Ok(mut c) = Client::connect(&tls_url(&hub), TIMEOUT, &trusted).await else {
                return false;
            };
            let peers = c.call("list_peers", vec![], Map::new()).await;
            c.close().await;
            peers.is_ok_and(|v| v.to_string().contains(peer.url()))
        })
    };
    assert!(
        wait_until(
            Duration::from_secs(20),
            Duration::from_millis(200),
            lists_peer
        ),
        "the plain fabric peer never appeared in list_peers\n{}",
        hub.log()
    );
    let hub = &hub;

    let mut plain = mpreg_tests::Conn::connect(hub.url());
    let why = plain
        .expect_closed(TIMEOUT)
        .expect("a plain client is closed");
    assert!(why.contains("1008") && why.contains("wss://"), "{why}");
    assert!(
        wait_until(TIMEOUT, Duration::from_millis(50), || tls_refused(hub)
            >= 1.0),
        "refusal not counted: {}",
        tls_refused(hub)
    );
    assert_eq!(
        echo(&tls_url(hub), &trusted).expect("wss client served"),
        json!("over tls")
    );
}

#[test]
fn a_stalled_tls_client_is_dropped_at_the_handshake_timeout() {
    let pki = Pki::new("tls-stall");
    let settings = format!(
        "{}connection_handshake_timeout_seconds = 1.0\n",
        pki.settings()
    );
    let node = Node::start_with_config(&settings, NO_ARGS);
    // Finish the TLS handshake, then send no request head.
    let mut s = tls_stream(&node, &pki);
    let started = Instant::now();
    while s.conn.is_handshaking() && started.elapsed() < TIMEOUT {
        if s.conn.complete_io(&mut s.sock).is_err() {
            break;
        }
    }
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf);
    let waited = started.elapsed();
    assert!(
        !matches!(n, Ok(k) if k > 0),
        "the node answered a request that was never sent: {n:?}"
    );
    assert!(
        waited >= Duration::from_millis(700) && waited < TIMEOUT,
        "dropped after {waited:?}, not after about 1 s"
    );
    let hits = || {
        metric(
            &metrics_text(node.port()),
            "mpreg_limit_hits_total{limit=\"handshake_timeout\"}",
        )
        .unwrap_or(0.0)
    };
    assert!(
        wait_until(TIMEOUT, Duration::from_millis(50), || hits() >= 1.0),
        "handshake timeout not counted"
    );
}

#[test]
fn a_tls_client_of_a_node_without_tls_fails_cleanly() {
    let node = Node::start(NO_ARGS);
    let pki = Pki::new("tls-none");
    let trusted = Credentials {
        tls: Some(pki.trust()),
        ..Credentials::default()
    };
    let e = echo(&tls_url(&node), &trusted).expect_err("no TLS on this node");
    assert!(
        matches!(e, ClientError::Connect { .. } | ClientError::Timeout { .. }),
        "{e}"
    );
    // Still serving.
    assert_eq!(
        echo(node.url(), &Credentials::default()).expect("ws echo"),
        json!("over tls")
    );
}

#[test]
fn unusable_tls_files_stop_the_node_at_start() {
    let pki = Pki::new("tls-bad");
    let junk = write(&pki.dir, "junk.pem", "not a certificate\n");
    for (cert, key, setting) in [
        (junk.as_str(), pki.key.as_str(), "client_tls_cert_file"),
        (pki.cert.as_str(), junk.as_str(), "client_tls_key_file"),
        (
            pki.cert.as_str(),
            "/nonexistent/key.pem",
            "client_tls_key_file",
        ),
    ] {
        let mut cmd = Command::new(mpreg_bin());
        cmd.args(["server", "--host", "127.0.0.1", "--port", "0"])
            .args(["--client-tls-cert-file", cert, "--client-tls-key-file", key])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(runtime) = test_runtime() {
            cmd.args(["--runtime", &runtime]);
        }
        let mut child = cmd.spawn().expect("spawn mpreg");
        let exited = wait_until(TIMEOUT, Duration::from_millis(50), || {
            matches!(child.try_wait(), Ok(Some(_)))
        });
        if !exited {
            let _ = child.kill();
        }
        let out = child.wait_with_output().expect("output");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            exited && !out.status.success(),
            "the node ran: {stdout}\n{stderr}"
        );
        assert!(!stdout.contains("MPREG_URL="), "{stdout}");
        assert!(stderr.contains(setting), "{setting} not named: {stderr}");
    }
}
