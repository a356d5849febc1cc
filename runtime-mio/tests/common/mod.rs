//! Shared helpers: nodes on either runtime in a thread of this process, and a
//! blocking WebSocket client. Everything is on 127.0.0.1 and every wait is
//! bounded, so a hung node fails a test instead of hanging the suite.

#![allow(dead_code)] // each test file uses a different subset

use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tungstenite::{Message, WebSocket};

/// Bound on a node's start-up and on one reply.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Settings for a test node on 127.0.0.1 with a free port.
pub fn settings() -> mpreg_core::Settings {
    mpreg_core::Settings {
        host: "127.0.0.1".into(),
        port: 0,
        gossip_interval: 1.0,
        ..Default::default()
    }
}

/// Which runtime a test node runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    Mio,
    Tokio,
}

enum Stop {
    Mio(mpreg_mio::Shutdown),
    Tokio(mpreg_tokio::Shutdown),
}

/// A node running in a thread of the test process.
pub struct TestNode {
    pub addr: SocketAddr,
    stop: Stop,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl TestNode {
    /// Starts a node and waits (bounded) until it listens.
    pub fn start(runtime: Runtime, settings: mpreg_core::Settings) -> TestNode {
        init_logs();
        let (tx, rx) = mpsc::channel();
        let seed = 0x5eed ^ u64::from(std::process::id());
        let (stop, thread) = match runtime {
            Runtime::Mio => {
                let shutdown = mpreg_mio::Shutdown::new();
                let s = shutdown.clone();
                let thread = std::thread::spawn(move || {
                    mpreg_mio::run(settings, seed, s, move |addr| {
                        let _ = tx.send(addr);
                    })
                    .map_err(|e| e.to_string())
                });
                (Stop::Mio(shutdown), thread)
            }
            Runtime::Tokio => {
                let shutdown = mpreg_tokio::Shutdown::new();
                let s = shutdown.clone();
                let thread = std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| e.to_string())?;
                    rt.block_on(mpreg_tokio::run(settings, seed, s, move |addr| {
                        let _ = tx.send(addr);
                    }))
                    .map_err(|e| e.to_string())
                });
                (Stop::Tokio(shutdown), thread)
            }
        };
        let addr = match rx.recv_timeout(TIMEOUT) {
            Ok(addr) => addr,
            Err(_) => {
                let why = if thread.is_finished() {
                    format!("{:?}", thread.join())
                } else {
                    "no on_ready within the timeout".to_string()
                };
                panic!("{runtime:?} node did not start: {why}");
            }
        };
        TestNode {
            addr,
            stop,
            thread: Some(thread),
        }
    }

    /// The node's URL (its node id).
    pub fn url(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// A client connection to this node.
    pub fn client(&self) -> Client {
        Client::connect(&self.url())
    }

    fn trigger(&self) {
        match &self.stop {
            Stop::Mio(s) => s.trigger(),
            Stop::Tokio(s) => s.trigger(),
        }
    }

    /// Asks for a graceful shutdown and waits (bounded) for `run` to return;
    /// returns its result.
    pub fn stop(mut self, within: Duration) -> Result<(), String> {
        self.trigger();
        let thread = self.thread.take().expect("thread is only taken here");
        let deadline = Instant::now() + within;
        while !thread.is_finished() {
            if Instant::now() >= deadline {
                return Err(format!("node did not exit within {within:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        thread
            .join()
            .map_err(|_| "node thread panicked".to_string())?
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        // Stop the node; do not wait for it (a failing test is already
        // reporting), the thread ends by itself within STOP_TIMEOUT.
        self.trigger();
    }
}

/// A blocking WebSocket client with bounded reads.
pub struct Client {
    pub ws: WebSocket<TcpStream>,
    next: u64,
}

impl Client {
    /// Connects (as an MPREG client: no subprotocol).
    pub fn connect(url: &str) -> Client {
        let addr = url.trim_start_matches("ws://");
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {url}: {e}"));
        stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        stream.set_write_timeout(Some(TIMEOUT)).expect("timeout");
        let (ws, _) =
            tungstenite::client(url, stream).unwrap_or_else(|e| panic!("upgrade {url}: {e}"));
        Client { ws, next: 0 }
    }

    /// Sends a message and flushes it.
    pub fn send(&mut self, msg: Message) {
        self.ws.send(msg).expect("send");
    }

    /// The next message, or the error that ended the read.
    pub fn recv(&mut self) -> Result<Message, tungstenite::Error> {
        self.ws.read()
    }

    /// Calls `fun` MPREG-style with the request as a text or binary frame,
    /// returns the reply envelope (skipping other messages).
    pub fn call_as(&mut self, fun: &str, args: Value, binary: bool) -> Value {
        self.next += 1;
        let u = format!("u{}", self.next);
        let req = json!({
            "role": "rpc",
            "u": u,
            "cmds": [{"name": fun, "fun": fun, "args": args, "kwargs": {}, "locs": []}],
        })
        .to_string();
        self.send(if binary {
            Message::Binary(req.into_bytes().into())
        } else {
            Message::Text(req.into())
        });
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            let msg = self
                .recv()
                .unwrap_or_else(|e| panic!("no reply to {fun}: {e}"));
            let bytes: Vec<u8> = match msg {
                Message::Text(t) => t.as_bytes().to_vec(),
                Message::Binary(b) => b.to_vec(),
                _ => continue,
            };
            let v: Value = serde_json::from_slice(&bytes).expect("reply is JSON");
            if v["u"] == u {
                return v;
            }
        }
        panic!("no reply to {fun} within {TIMEOUT:?}");
    }

    /// `r[fun]` of a successful call (binary request).
    pub fn call(&mut self, fun: &str, args: Value) -> Value {
        let reply = self.call_as(fun, args, true);
        assert!(reply["error"].is_null(), "{fun} failed: {reply}");
        reply["r"][fun].clone()
    }

    /// URLs in this node's `list_peers`.
    pub fn peer_urls(&mut self) -> Vec<String> {
        let peers = self.call("list_peers", json!([]));
        let mut urls: Vec<String> = peers
            .as_array()
            .unwrap_or_else(|| panic!("list_peers is not an array: {peers}"))
            .iter()
            .filter_map(|p| p["url"].as_str().map(str::to_string))
            .collect();
        urls.sort();
        urls
    }

    /// Waits (bounded) for the server to end the connection; returns the
    /// close frame's code and reason if one came.
    pub fn expect_closed(&mut self) -> Result<Option<(u16, String)>, String> {
        let deadline = Instant::now() + TIMEOUT;
        let mut close = None;
        while Instant::now() < deadline {
            match self.recv() {
                Ok(Message::Close(frame)) => {
                    close = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                }
                Ok(other) => {
                    if close.is_none() {
                        return Err(format!("got {other:?} instead of a close"));
                    }
                }
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err("connection still open".into())
                }
                Err(_) => return Ok(close),
            }
        }
        Err("connection still open".into())
    }
}

/// Node logs on the test's stderr when `RUST_LOG` is set (e.g.
/// `RUST_LOG=mpreg_mio=debug cargo test -p mpreg-mio -- --nocapture`).
pub fn init_logs() {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
}

/// Polls `check` every 50 ms until it holds or `within` passes.
pub fn wait_until(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
