//! The driver task: owns the node, the listener and the timers.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mpreg_core::monitoring::http::{self as codec, Head};
use mpreg_core::wire::fabric::SUBPROTOCOL;
use mpreg_core::{
    Command, ConnId, ConnKind, DnsQueryId, Frame, HttpId, Input, Instant, Node, Now, Output,
    Settings,
};
use mpreg_runtime_support::{log_event, restore_persisted, tls, write_persisted};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::conn::{self, ConnHandle, Write};
use crate::dns;
use crate::http::{self, Prefixed};

/// Something that happened on a socket, for the driver.
#[derive(Debug)]
pub enum Event {
    /// An inbound connection finished its upgrade.
    Accepted {
        conn: ConnId,
        kind: ConnKind,
        headers: Vec<(String, String)>,
        addr: SocketAddr,
        /// It arrived over TLS.
        tls: bool,
        writer: ConnHandle,
    },
    /// An inbound connection did not finish its upgrade in time and was
    /// dropped (the node counts it).
    HandshakeTimedOut(SocketAddr),
    /// An outbound dial connected.
    Connected {
        conn: ConnId,
        url: String,
        writer: ConnHandle,
    },
    /// An outbound dial failed.
    DialFailed { url: String, error: String },
    /// A message arrived.
    Frame(ConnId, Frame),
    /// A connection ended.
    Closed(ConnId),
    /// An HTTP request for the monitoring endpoints; the encoded response
    /// goes back through `reply`.
    Http {
        id: HttpId,
        head: Head,
        reply: oneshot::Sender<Vec<u8>>,
    },
}

/// Why the runtime could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address tried.
        addr: String,
        /// OS error.
        source: std::io::Error,
    },
    /// The settings were rejected by the node.
    #[error("{0}")]
    Config(#[from] mpreg_core::ConfigError),
    /// The client TLS certificate or key could not be loaded.
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
}

/// A handle that asks a running node to shut down gracefully.
#[derive(Clone, Default)]
pub struct Shutdown(Arc<Notify>);

impl Shutdown {
    /// A new, untriggered handle.
    pub fn new() -> Self {
        Shutdown::default()
    }

    /// Requests a graceful shutdown (GOODBYE to peers, then exit).
    pub fn trigger(&self) {
        self.0.notify_one();
    }
}

struct Clock {
    origin: std::time::Instant,
}

impl Clock {
    fn now(&self) -> Now {
        let mono = Instant::from_nanos(
            u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX),
        );
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Now::new(mono, wall)
    }

    fn to_tokio(&self, at: Instant) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.origin) + Duration::from_nanos(at.as_nanos())
    }
}

/// How long an inbound connection may take to send its request head and
/// finish the WebSocket upgrade: the `connection_handshake_timeout_seconds`
/// setting (normalised positive; a floor keeps a tiny value workable).
fn handshake_timeout(settings: &Settings) -> Duration {
    mpreg_core::time::secs(settings.connection_handshake_timeout_seconds)
        .max(Duration::from_millis(10))
}

fn ws_config(settings: &Settings) -> WebSocketConfig {
    // tungstenite's own bound sits above the node's limits so the node sees
    // (and counts, and answers) oversized messages itself.
    let max = usize::try_from(
        settings
            .client_max_message_bytes
            .max(settings.fabric_max_frame_bytes)
            .saturating_mul(2),
    )
    .unwrap_or(usize::MAX);
    WebSocketConfig::default()
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
}

/// What a node bound, reported to `on_ready` of [`run_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ready {
    /// The WebSocket listener.
    pub addr: SocketAddr,
    /// The DNS gateway (UDP; TCP listens on the same port unless both ports
    /// were configured differently), when `dns_gateway_enabled` and its
    /// sockets could be bound.
    pub dns: Option<SocketAddr>,
    /// The monitoring HTTP listener, when `monitoring_enabled` and it could
    /// be bound.
    pub monitoring: Option<SocketAddr>,
}

/// Runs a node until `shutdown` fires or SIGINT / SIGTERM arrives.
///
/// Binds `settings.host:settings.port` (port 0 picks a free port), then calls
/// `on_ready` with the bound address before serving.
pub async fn run(
    settings: Settings,
    seed: u64,
    shutdown: Shutdown,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), RunError> {
    run_with(settings, seed, shutdown, |ready: Ready| {
        on_ready(ready.addr)
    })
    .await
}

/// [`run`], reporting every bound address (WebSocket and DNS) to
/// `on_ready`. The DNS gateway is started when `dns_gateway_enabled`; if its
/// sockets cannot be bound the failure is logged and the node serves without
/// it (`dns.md` §2).
pub async fn run_with(
    mut settings: Settings,
    seed: u64,
    shutdown: Shutdown,
    on_ready: impl FnOnce(Ready),
) -> Result<(), RunError> {
    let tls = tls::server_config(&settings)?.map(TlsAcceptor::from);
    let bind = format!("{}:{}", settings.host, settings.port);
    let listener = TcpListener::bind(&bind)
        .await
        .map_err(|source| RunError::Bind {
            addr: bind.clone(),
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|source| RunError::Bind { addr: bind, source })?;
    settings.port = local.port();
    let clock = Clock {
        origin: std::time::Instant::now(),
    };
    let mut node = Node::new(settings.clone(), clock.now(), seed)?;
    restore_persisted(&mut node, &settings, clock.now());
    let dns_sockets = if settings.dns_gateway_enabled {
        match dns::bind(&settings).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!("DNS gateway not started: {e}; the node serves without it");
                None
            }
        }
    } else {
        None
    };
    let dns_addr = dns_sockets.as_ref().and_then(|s| s.udp_addr().ok());
    if let Some(s) = &dns_sockets {
        let tcp = s.tcp_addr().map(|a| a.to_string()).unwrap_or_default();
        tracing::info!(
            "DNS gateway listening on UDP {} TCP {tcp}",
            dns_addr.map(|a| a.to_string()).unwrap_or_default()
        );
    }
    let (mut dns_queries, dns_udp) = match dns_sockets {
        Some(s) => {
            let (rx, udp) = dns::serve(s);
            (Some(rx), Some(udp))
        }
        None => (None, None),
    };
    let mut dns_pending: HashMap<DnsQueryId, dns::ReplyTo> = HashMap::new();
    let monitoring = bind_monitoring(&settings).await;
    let monitoring_addr = monitoring.as_ref().and_then(|l| l.local_addr().ok());
    if let Some(addr) = monitoring_addr {
        tracing::info!(%addr, "monitoring endpoints listening");
    }
    on_ready(Ready {
        addr: local,
        dns: dns_addr,
        monitoring: monitoring_addr,
    });
    tracing::info!(node_id = %node.identity().node_id, instance = %node.identity().instance_id, "node listening");

    let (events_tx, mut events) = mpsc::unbounded_channel::<Event>();
    let config = ws_config(&settings);
    let next_conn = Arc::new(std::sync::atomic::AtomicU64::new(1));
    spawn_acceptor(
        listener,
        events_tx.clone(),
        config,
        handshake_timeout(&settings),
        tls,
        next_conn.clone(),
    );
    if let Some(l) = monitoring {
        http::spawn_listener(
            l,
            events_tx.clone(),
            next_conn.clone(),
            handshake_timeout(&settings),
        );
    }
    let mut http_pending: HashMap<HttpId, oneshot::Sender<Vec<u8>>> = HashMap::new();

    let mut writers: HashMap<ConnId, ConnHandle> = HashMap::new();
    // Connections dropped for a full write queue, to report to the node as
    // closed once the current drain is done.
    let mut dropped: Vec<ConnId> = Vec::new();
    let mut stopping = false;
    let mut sigterm = signal_stream();
    loop {
        let mut stopped = false;
        loop {
            let Some(out) = node.poll_output() else {
                // The node must hear of every connection it can no longer
                // write to, or it would keep answering into the void (a
                // client waiting forever for its reply).
                let Some(conn) = dropped.pop() else { break };
                node.handle(clock.now(), Input::Closed { conn });
                continue;
            };
            match out {
                Output::Send { conn, frame } => {
                    if let Some(h) = writers.get(&conn) {
                        if h.writer.try_send(Write::Frame(frame)).is_err() {
                            tracing::warn!(
                                conn,
                                "write queue full or closed; dropping slow connection"
                            );
                            if let Some(h) = writers.remove(&conn) {
                                h.reader.abort();
                                dropped.push(conn);
                            }
                        }
                    }
                }
                Output::Close { conn, reason } => {
                    if let Some(h) = writers.remove(&conn) {
                        let _ = h.writer.try_send(Write::Close(reason));
                    }
                }
                Output::Dial { url, timeout } => {
                    let conn = next_conn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    spawn_dial(conn, url, timeout, config, events_tx.clone());
                }
                Output::Event(e) => log_event(e),
                Output::Persist { name, bytes } => {
                    write_persisted(settings.data_dir.as_deref(), &name, &bytes)
                }
                Output::Stopped => stopped = true,
                Output::DnsReply { id, bytes } => {
                    if let Some(to) = dns_pending.remove(&id) {
                        dns::deliver(dns_udp.as_deref(), to, bytes);
                    }
                }
                Output::HttpReply {
                    id,
                    status,
                    content_type,
                    body,
                    headers,
                } => {
                    if let Some(reply) = http_pending.remove(&id) {
                        let _ = reply.send(codec::encode_response(
                            status,
                            &content_type,
                            &headers,
                            &body,
                        ));
                    }
                }
            }
        }
        if stopped {
            // Dropping the writers lets each writer task flush what it holds
            // (the GOODBYEs and close frames) and end; give them a moment.
            drop(writers);
            tokio::time::sleep(Duration::from_millis(300)).await;
            return Ok(());
        }
        let deadline = node.poll_timeout().map(|t| clock.to_tokio(t));
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = events.recv() => {
                let Some(ev) = ev else { continue };
                let now = clock.now();
                let input = match ev {
                    Event::Accepted { conn, kind, headers, addr, tls, writer } => {
                        writers.insert(conn, writer);
                        Input::Accepted { conn, kind, headers, peer_addr: Some(addr), tls }
                    }
                    Event::HandshakeTimedOut(addr) => Input::HandshakeTimedOut { peer_addr: Some(addr) },
                    Event::Connected { conn, url, writer } => {
                        writers.insert(conn, writer);
                        Input::Connected { conn, url }
                    }
                    Event::DialFailed { url, error } => Input::DialFailed { url, error },
                    Event::Frame(conn, frame) => Input::Frame { conn, frame },
                    Event::Closed(conn) => {
                        // Also after the node closed it or the driver dropped
                        // it: the node ignores an end it already handled.
                        writers.remove(&conn);
                        Input::Closed { conn }
                    }
                    Event::Http { id, head, reply } => {
                        http_pending.insert(id, reply);
                        Input::Http {
                            id,
                            method: head.method,
                            path: head.path,
                            query: head.query,
                            headers: head.headers,
                        }
                    }
                };
                timed(&mut node, |node| node.handle(now, input));
            }
            q = next_dns(&mut dns_queries) => {
                match q {
                    Some(q) => {
                        dns_pending.insert(q.id, q.reply);
                        let input = Input::DnsQuery {
                            id: q.id,
                            src: q.src,
                            transport: q.transport,
                            bytes: q.bytes,
                        };
                        timed(&mut node, |node| node.handle(clock.now(), input));
                    }
                    None => dns_queries = None,
                }
            }
            _ = sleep => node.handle(clock.now(), Input::Tick),
            _ = shutdown.0.notified(), if !stopping => {
                stopping = true;
                node.handle(clock.now(), Input::Command(Command::Shutdown { reason: "graceful_shutdown".into() }));
            }
            _ = sigterm.recv(), if !stopping => {
                stopping = true;
                tracing::info!("signal received; sending GOODBYE to peers");
                node.handle(clock.now(), Input::Command(Command::Shutdown { reason: "graceful_shutdown".into() }));
            }
        }
    }
}

/// Runs one `handle` call and tells the node how long it took: the core
/// has no clock, and files the time when the input was a query
/// (`discovery.query.latency_ms`, DNS latency).
fn timed(node: &mut Node, handle: impl FnOnce(&mut Node)) {
    let started = std::time::Instant::now();
    handle(node);
    node.record_handle_time(started.elapsed());
}

/// Binds the monitoring listener where
/// [`mpreg_core::monitoring::listen_address`] says, if anywhere. A bind
/// failure is logged and the node serves without monitoring, like the DNS
/// gateway.
async fn bind_monitoring(settings: &Settings) -> Option<TcpListener> {
    let bind = mpreg_core::monitoring::listen_address(settings)?;
    match TcpListener::bind(&bind).await {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::error!("monitoring endpoints not started: cannot listen on {bind}: {e}");
            None
        }
    }
}

/// The next DNS query, or never when the gateway is off.
async fn next_dns(queries: &mut Option<mpsc::Receiver<dns::Query>>) -> Option<dns::Query> {
    match queries {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// SIGINT and SIGTERM merged into one channel.
fn signal_stream() -> mpsc::UnboundedReceiver<()> {
    let (tx, rx) = mpsc::unbounded_channel();
    let tx2 = tx.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = tx.send(());
        }
    });
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut s) = signal(SignalKind::terminate()) {
            if s.recv().await.is_some() {
                let _ = tx2.send(());
            }
        }
    });
    #[cfg(not(unix))]
    drop(tx2);
    rx
}

fn spawn_acceptor(
    listener: TcpListener,
    events: mpsc::UnboundedSender<Event>,
    config: WebSocketConfig,
    handshake_timeout: Duration,
    tls: Option<TlsAcceptor>,
    next_conn: Arc<std::sync::atomic::AtomicU64>,
) {
    tokio::spawn(async move {
        loop {
            let (stream, addr) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let conn = next_conn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let events = events.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                let _ = stream.set_nodelay(true);
                let handshake = Handshake {
                    conn,
                    addr,
                    config,
                    deadline: tokio::time::Instant::now() + handshake_timeout,
                    tls: false,
                };
                if let Err(e) = serve(handshake, stream, tls, events).await {
                    tracing::debug!(%addr, error = %e, "websocket upgrade failed");
                }
            });
        }
    });
}

/// With client TLS, tells a TLS connection from a plain one by its first
/// byte (peeked, not consumed); then upgrades it. Without client TLS every
/// connection is plain (a TLS handshake is just a bad request head, 400). The TLS handshake counts against the same
/// `connection_handshake_timeout_seconds` as the request head.
// The callback's error type is tungstenite's `ErrorResponse`, not ours.
#[allow(clippy::result_large_err)]
async fn serve(
    mut handshake: Handshake,
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    events: mpsc::UnboundedSender<Event>,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let Some(acceptor) = tls else {
        return upgrade(handshake, stream, events).await;
    };
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout_at(handshake.deadline, stream.peek(&mut first)).await;
    match peeked {
        Err(_) => return Err(handshake.timed_out(&events)),
        Ok(Err(e)) => return Err(e.into()),
        Ok(Ok(0)) => return Ok(()),
        Ok(Ok(_)) if first[0] != tls::HANDSHAKE_RECORD => {
            return upgrade(handshake, stream, events).await;
        }
        Ok(Ok(_)) => {}
    }
    let stream = tokio::time::timeout_at(handshake.deadline, acceptor.accept(stream))
        .await
        .map_err(|_| handshake.timed_out(&events))??;
    handshake.tls = true;
    upgrade(handshake, stream, events).await
}

/// Reads the request head, then either answers a plain HTTP request (no
/// `Upgrade: websocket`: the monitoring endpoints, so
/// `mpreg discovery lag --url ws://node:port` works) or completes the
/// WebSocket handshake over the same bytes; the subprotocol decides client vs
/// fabric. Head and handshake together are bounded by one timeout
/// (`connection_handshake_timeout_seconds`); a connection that runs out of
/// it (a slowloris client dribbling its head) is dropped and reported to
/// the node, which counts it.
// The callback's error type is tungstenite's `ErrorResponse`, not ours.
#[allow(clippy::result_large_err)]
async fn upgrade<S>(
    handshake: Handshake,
    mut stream: S,
    events: mpsc::UnboundedSender<Event>,
) -> Result<(), tokio_tungstenite::tungstenite::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (bytes, head) = tokio::time::timeout_at(handshake.deadline, http::read_head(&mut stream))
        .await
        .map_err(|_| handshake.timed_out(&events))??;
    let Handshake {
        conn,
        addr,
        config,
        deadline,
        tls,
    } = handshake;
    match &head {
        Ok(h) if h.is_websocket_upgrade() => {}
        _ => {
            http::answer(&mut stream, conn, head, &events).await?;
            return Ok(());
        }
    }
    let stream = Prefixed::new(bytes, stream);
    let mut headers = Vec::new();
    let mut kind = ConnKind::Client;
    let callback = |req: &Request, mut resp: Response| {
        for (name, value) in req.headers() {
            headers.push((
                name.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ));
        }
        let wants_fabric = req
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim() == SUBPROTOCOL);
        if wants_fabric {
            kind = ConnKind::Fabric;
            resp.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_static(SUBPROTOCOL),
            );
        }
        Ok(resp)
    };
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config));
    let ws = match tokio::time::timeout_at(deadline, handshake).await {
        Ok(ws) => ws?,
        Err(_) => {
            let _ = events.send(Event::HandshakeTimedOut(addr));
            return Err(handshake_timed_out());
        }
    };
    let writer = conn::spawn(conn, ws, events.clone());
    let _ = events.send(Event::Accepted {
        conn,
        kind,
        headers,
        addr,
        tls,
        writer,
    });
    Ok(())
}

/// What [`upgrade`] needs to know about one inbound connection.
struct Handshake {
    conn: ConnId,
    addr: SocketAddr,
    config: WebSocketConfig,
    /// Bound on the TLS handshake, head and upgrade together.
    deadline: tokio::time::Instant,
    /// The connection is TLS (`wss://`).
    tls: bool,
}

impl Handshake {
    /// Reports a connection that ran out of its handshake time to the node
    /// (which counts it) and returns the error that ends it.
    fn timed_out(
        &self,
        events: &mpsc::UnboundedSender<Event>,
    ) -> tokio_tungstenite::tungstenite::Error {
        let _ = events.send(Event::HandshakeTimedOut(self.addr));
        handshake_timed_out()
    }
}

fn handshake_timed_out() -> tokio_tungstenite::tungstenite::Error {
    tokio_tungstenite::tungstenite::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "handshake timed out",
    ))
}

fn spawn_dial(
    conn: ConnId,
    url: String,
    timeout: Duration,
    config: WebSocketConfig,
    events: mpsc::UnboundedSender<Event>,
) {
    tokio::spawn(async move {
        let result = tokio::time::timeout(timeout, dial(&url, config)).await;
        match result {
            Ok(Ok(ws)) => {
                let writer = conn::spawn(conn, ws, events.clone());
                let _ = events.send(Event::Connected { conn, url, writer });
            }
            Ok(Err(error)) => {
                let _ = events.send(Event::DialFailed { url, error });
            }
            Err(_) => {
                let _ = events.send(Event::DialFailed {
                    url,
                    error: format!("timed out after {timeout:?}"),
                });
            }
        }
    });
}

async fn dial(
    url: &str,
    config: WebSocketConfig,
) -> Result<tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>, String>
{
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    let (ws, response) = tokio_tungstenite::connect_async_with_config(request, Some(config), true)
        .await
        .map_err(|e| e.to_string())?;
    let agreed = response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == SUBPROTOCOL);
    if !agreed {
        return Err(format!(
            "{url} did not accept the {SUBPROTOCOL} subprotocol (not an mpreg-rs node?)"
        ));
    }
    Ok(ws)
}
