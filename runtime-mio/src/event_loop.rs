//! The event loop: one `mio::Poll`, the node, the listener and every
//! connection, all on the calling thread.
//!
//! One turn of the loop:
//! 1. sleep in `poll` until a socket is ready, the waker fires (shutdown
//!    handle, name resolver), a signal arrives, or the earliest deadline
//!    (node timer, connection deadline, accept retry) passes;
//! 2. drive each ready connection until it would block (at most
//!    [`crate::READ_BUDGET`] messages, then the others get a turn), feeding
//!    the node one input at a time and applying its outputs right away
//!    (writes only go into the connection's buffer), then flush what that
//!    buffered: replies to a burst of requests leave in one write, and
//!    before the next ready connection is served (flushing only at the end
//!    of the turn made every reply wait for every other connection: with
//!    4 clients mio's `echo` p99 was 332–372 µs against 256–265 µs now);
//! 3. expire connection deadlines, tick the node if its deadline passed;
//! 4. flush every connection that still has buffered bytes.
//!
//! The node hears about a connection's end exactly once, through one path
//! ([`EventLoop::end`]): ends found while the node's outputs are being
//! applied (a slow reader dropped by a `Send`) wait in a queue until the
//! drain finishes, so the node is never fed in the middle of a drain.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::mem;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};
use mpreg_core::monitoring::http as codec;
use mpreg_core::{Command, ConnId, Input, Node, Output, Settings};
use mpreg_runtime_support::{log_event, restore_persisted, write_persisted};
use tungstenite::protocol::WebSocketConfig;

use crate::clock::Clock;
use crate::conn::{Conn, Ending, Listener, Progress, SendFailed};
use crate::dial::{Resolver, Target};
use crate::dns::{self, DnsGateway};
use crate::shutdown::Shutdown;
use crate::signals::Signals;
use crate::timer::Deadlines;
use crate::upgrade;

const LISTENER: Token = Token(usize::MAX);
const WAKER: Token = Token(usize::MAX - 1);
const SIGNALS: Token = Token(usize::MAX - 2);
/// The monitoring HTTP listener (below the DNS gateway's tokens; DNS TCP
/// connections count up from `usize::MAX / 2` and never get near it, and its
/// arm is matched before theirs).
const MONITOR: Token = Token(usize::MAX - 5);

/// Connections accepted per turn before the others get a turn.
const ACCEPT_BUDGET: usize = 256;
/// Pause after an accept error such as EMFILE, instead of spinning on it.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Readiness events taken from the OS per `poll`.
const EVENTS: usize = 1024;

/// Why the runtime could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address tried.
        addr: String,
        /// OS error.
        source: io::Error,
    },
    /// The settings were rejected by the node.
    #[error("{0}")]
    Config(#[from] mpreg_core::ConfigError),
    /// The OS refused the event loop itself (epoll / kqueue, waker).
    #[error("event loop failed: {0}")]
    Poll(#[source] io::Error),
    /// The client TLS certificate or key could not be loaded.
    #[error("{0}")]
    Tls(#[from] mpreg_runtime_support::tls::TlsError),
}

/// Runs a node on the calling thread until `shutdown` fires or SIGINT /
/// SIGTERM arrives; then the node says GOODBYE to its peers, and this
/// returns once those writes are flushed (at most [`crate::STOP_TIMEOUT`]).
///
/// Binds `settings.host:settings.port` (port 0 picks a free port), then calls
/// `on_ready` with the bound address before serving.
pub fn run(
    settings: Settings,
    seed: u64,
    shutdown: Shutdown,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), RunError> {
    run_with(settings, seed, shutdown, |ready: Ready| {
        on_ready(ready.addr)
    })
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

/// [`run`], reporting every bound address (WebSocket and DNS) to
/// `on_ready`. The DNS gateway is started when `dns_gateway_enabled`; if its
/// sockets cannot be bound the failure is logged and the node serves without
/// it.
pub fn run_with(
    mut settings: Settings,
    seed: u64,
    shutdown: Shutdown,
    on_ready: impl FnOnce(Ready),
) -> Result<(), RunError> {
    let tls = mpreg_runtime_support::tls::server_config(&settings)?;
    let bind = format!("{}:{}", settings.host, settings.port);
    let mut listener = bind_listener(&bind)?;
    let local = listener
        .local_addr()
        .map_err(|source| RunError::Bind { addr: bind, source })?;
    settings.port = local.port();
    let clock = Clock::new();
    let mut node = Node::new(settings.clone(), clock.now(), seed)?;
    restore_persisted(&mut node, &settings, clock.now());
    let poll = Poll::new().map_err(RunError::Poll)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)
        .map_err(RunError::Poll)?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKER).map_err(RunError::Poll)?);
    let signals = match Signals::register(poll.registry(), SIGNALS) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch SIGINT/SIGTERM; only the shutdown handle stops this node");
            None
        }
    };
    let dns = if settings.dns_gateway_enabled {
        match DnsGateway::bind(&settings, poll.registry()) {
            Ok(g) => {
                tracing::info!(
                    "DNS gateway listening on UDP {} TCP {}",
                    g.udp_addr().map(|a| a.to_string()).unwrap_or_default(),
                    g.tcp_addr().map(|a| a.to_string()).unwrap_or_default()
                );
                Some(g)
            }
            Err(e) => {
                tracing::error!("DNS gateway not started: {e}; the node serves without it");
                None
            }
        }
    } else {
        None
    };
    let mut monitoring = bind_monitoring(&settings);
    if let Some(l) = monitoring.as_mut() {
        if let Err(e) = poll.registry().register(l, MONITOR, Interest::READABLE) {
            tracing::error!("monitoring endpoints not started: {e}");
            monitoring = None;
        }
    }
    let monitoring_addr = monitoring.as_ref().and_then(|l| l.local_addr().ok());
    if let Some(addr) = monitoring_addr {
        tracing::info!(%addr, "monitoring endpoints listening");
    }
    shutdown.attach(Some(waker.clone()));
    on_ready(Ready {
        addr: local,
        dns: dns.as_ref().and_then(DnsGateway::udp_addr),
        monitoring: monitoring_addr,
    });
    tracing::info!(node_id = %node.identity().node_id, instance = %node.identity().instance_id, runtime = "mio", "node listening");

    let mut ev = EventLoop {
        config: upgrade::ws_config(&settings),
        handshake_timeout: mpreg_core::time::secs(settings.connection_handshake_timeout_seconds)
            .max(Duration::from_millis(10)),
        data_dir: settings.data_dir.clone(),
        poll,
        node,
        clock,
        listener: Some(listener),
        tls,
        accept_at: None,
        monitoring,
        monitor_accept_at: None,
        signals,
        shutdown: shutdown.clone(),
        resolver: Resolver::new(waker),
        conns: HashMap::new(),
        next_id: 1,
        deadlines: Deadlines::default(),
        to_flush: Vec::new(),
        again: Vec::new(),
        ends: VecDeque::new(),
        draining: false,
        stopping: false,
        stop_by: None,
        dns,
        dns_again: Vec::new(),
    };
    let result = ev.run();
    shutdown.attach(None);
    result
}

/// Binds the monitoring listener where
/// [`mpreg_core::monitoring::listen_address`] says, if anywhere. A bind
/// failure is logged and the node serves without monitoring, like the DNS
/// gateway.
fn bind_monitoring(settings: &Settings) -> Option<TcpListener> {
    let bind = mpreg_core::monitoring::listen_address(settings)?;
    match bind_listener(&bind) {
        Ok(l) => Some(l),
        Err(e) => {
            tracing::error!("monitoring endpoints not started: {e}");
            None
        }
    }
}

/// Binds the first address `bind` resolves to that the OS accepts (like
/// tokio's `TcpListener::bind`, with `SO_REUSEADDR` as mio sets it).
fn bind_listener(bind: &str) -> Result<TcpListener, RunError> {
    let err = |source| RunError::Bind {
        addr: bind.to_string(),
        source,
    };
    let mut last = io::Error::new(io::ErrorKind::InvalidInput, "no address to bind");
    for addr in bind.to_socket_addrs().map_err(err)? {
        match TcpListener::bind(addr) {
            Ok(l) => return Ok(l),
            Err(e) => last = e,
        }
    }
    Err(err(last))
}

struct EventLoop {
    poll: Poll,
    /// Where `Output::Persist` files go (the `data_dir` setting).
    data_dir: Option<String>,
    node: Node,
    clock: Clock,
    config: WebSocketConfig,
    /// `connection_handshake_timeout_seconds`: how long an inbound
    /// connection may take to send its head and finish its upgrade.
    handshake_timeout: Duration,
    /// `None` once the node stopped.
    listener: Option<TcpListener>,
    /// Client TLS on the listener (`client_tls_cert_file`), when configured.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// Accept again at this time (budget used up, or backing off an error).
    accept_at: Option<Instant>,
    /// The monitoring HTTP listener; `None` when off or once the node stopped.
    monitoring: Option<TcpListener>,
    /// `accept_at` of the monitoring listener.
    monitor_accept_at: Option<Instant>,
    signals: Option<Signals>,
    shutdown: Shutdown,
    resolver: Resolver,
    conns: HashMap<ConnId, Conn>,
    next_id: ConnId,
    deadlines: Deadlines,
    /// Connections with buffered bytes, flushed at the end of the turn.
    to_flush: Vec<ConnId>,
    /// Connections that used their read budget and go again next turn.
    again: Vec<ConnId>,
    /// Connection ends waiting to be told to the node.
    ends: VecDeque<(ConnId, String)>,
    /// The node's outputs are being applied (re-entrancy guard).
    draining: bool,
    /// Shutdown was asked for (the node was given the command).
    stopping: bool,
    /// The node stopped: exit when every connection is gone, or at this time.
    stop_by: Option<Instant>,
    /// The DNS gateway's sockets, when it runs.
    dns: Option<DnsGateway>,
    /// DNS TCP connections with queries left after their read budget.
    dns_again: Vec<Token>,
}

impl EventLoop {
    fn run(&mut self) -> Result<(), RunError> {
        let mut events = Events::with_capacity(EVENTS);
        // `Node::new` may already have asked for something (the seed dials).
        self.drain();
        if self.shutdown.requested() {
            self.begin_shutdown();
        }
        loop {
            if let Some(by) = self.stop_by {
                if self.conns.is_empty() || Instant::now() >= by {
                    if !self.conns.is_empty() {
                        tracing::debug!(
                            open = self.conns.len(),
                            "exiting with connections still closing"
                        );
                    }
                    return Ok(());
                }
            }
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue; // a signal; its pipe is readable next turn
                }
                return Err(RunError::Poll(e));
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(false),
                    MONITOR => self.accept(true),
                    WAKER => self.woken(),
                    SIGNALS => self.signalled(),
                    dns::UDP => self.dns_udp(),
                    dns::LISTENER => {
                        if let Some(g) = self.dns.as_mut() {
                            g.accept(self.poll.registry(), Instant::now());
                        }
                    }
                    t if dns::is_conn(t) => {
                        let readable =
                            event.is_readable() || event.is_read_closed() || event.is_error();
                        self.dns_conn(t, readable, event.is_writable());
                    }
                    Token(t) => {
                        let readable =
                            event.is_readable() || event.is_read_closed() || event.is_error();
                        self.conn_event(t as ConnId, readable, event.is_writable());
                        // Its replies leave now, not after every other
                        // ready connection was served: a burst from one
                        // connection still leaves in one write.
                        self.flush_all();
                    }
                }
            }
            for id in mem::take(&mut self.again) {
                self.pump(id);
            }
            for t in mem::take(&mut self.dns_again) {
                self.dns_conn(t, true, false);
            }
            if let Some(g) = self.dns.as_mut() {
                g.expire(self.poll.registry(), Instant::now());
            }
            self.expire_deadlines();
            self.tick_node();
            if self.accept_at.is_some_and(|at| at <= Instant::now()) {
                self.accept_at = None;
                self.accept(false);
            }
            if self
                .monitor_accept_at
                .is_some_and(|at| at <= Instant::now())
            {
                self.monitor_accept_at = None;
                self.accept(true);
            }
            self.flush_all();
        }
    }

    /// How long `poll` may sleep.
    fn poll_timeout(&self) -> Option<Duration> {
        if !self.again.is_empty() || !self.dns_again.is_empty() {
            return Some(Duration::ZERO);
        }
        let node = self.node.poll_timeout().and_then(|d| self.clock.to_std(d));
        let dns = self.dns.as_ref().and_then(DnsGateway::next_deadline);
        [
            node,
            self.deadlines.next(),
            self.accept_at,
            self.monitor_accept_at,
            self.stop_by,
            dns,
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|at| at.saturating_duration_since(Instant::now()))
    }

    fn next_id(&mut self) -> ConnId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    // ----- node side -------------------------------------------------------

    /// One input to the node, then every output applied.
    fn feed(&mut self, input: Input) {
        if self.stop_by.is_some() {
            return; // the node stopped; nothing more to tell it
        }
        // Timed here, not in the core (which has no clock): the node files
        // it when the input was a query (`discovery.query.latency_ms`).
        let started = std::time::Instant::now();
        self.node.handle(self.clock.now(), input);
        self.node.record_handle_time(started.elapsed());
        self.drain();
    }

    /// Applies the node's outputs until none are left, telling it about
    /// connection ends found meanwhile (each of which may produce more).
    fn drain(&mut self) {
        if self.draining {
            return; // the outer drain picks up what was queued
        }
        self.draining = true;
        loop {
            while let Some(out) = self.node.poll_output() {
                self.apply(out);
            }
            let Some((id, why)) = self.ends.pop_front() else {
                break;
            };
            if let Some(input) = self.finish(id, why) {
                if self.stop_by.is_none() {
                    self.node.handle(self.clock.now(), input);
                }
            }
        }
        self.draining = false;
    }

    fn apply(&mut self, out: Output) {
        match out {
            Output::Send { conn, frame } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                match c.send(frame) {
                    Ok(()) => self.track(conn),
                    Err(f) => self.send_failed(conn, f),
                }
            }
            Output::Close { conn, reason } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                match c.close(reason, Instant::now()) {
                    Ok(()) => self.track(conn),
                    Err(f) => self.send_failed(conn, f),
                }
            }
            Output::Dial { url, timeout } => self.dial(url, timeout),
            Output::Event(e) => log_event(e),
            Output::Persist { name, bytes } => {
                write_persisted(self.data_dir.as_deref(), &name, &bytes)
            }
            Output::Stopped => self.node_stopped(),
            Output::DnsReply { id, bytes } => {
                if let Some(g) = self.dns.as_mut() {
                    g.reply(self.poll.registry(), id, bytes);
                }
            }
            Output::HttpReply {
                id,
                status,
                content_type,
                body,
                headers,
            } => {
                // HTTP requests use their connection's id.
                if let Some(c) = self.conns.get_mut(&id) {
                    c.respond(codec::encode_response(
                        status,
                        &content_type,
                        &headers,
                        &body,
                    ));
                    self.track(id);
                }
            }
        }
    }

    fn send_failed(&mut self, conn: ConnId, f: SendFailed) {
        if f.slow {
            tracing::warn!(conn, "{}; dropping slow connection", f.why);
        } else {
            tracing::debug!(conn, error = %f.why, "write failed");
        }
        self.end(conn, f.why);
    }

    /// Queues the end of a connection for the node and drains.
    fn end(&mut self, id: ConnId, why: String) {
        self.ends.push_back((id, why));
        self.drain();
    }

    /// What the node must hear about an ended connection; forgets the
    /// connection once its socket is gone.
    fn finish(&mut self, id: ConnId, why: String) -> Option<Input> {
        let conn = self.conns.get_mut(&id)?;
        let ending = conn.take_ending();
        if conn.is_done() {
            self.conns.remove(&id);
        }
        match ending {
            Ending::Closed => {
                tracing::debug!(conn = id, reason = %why, "connection closed");
                Some(Input::Closed { conn: id })
            }
            // The node logs failed dials itself.
            Ending::DialFailed(url) => Some(Input::DialFailed { url, error: why }),
            Ending::Silent => {
                tracing::debug!(conn = id, error = %why, "websocket upgrade failed");
                None
            }
        }
    }

    fn begin_shutdown(&mut self) {
        if mem::replace(&mut self.stopping, true) {
            return;
        }
        self.feed(Input::Command(Command::Shutdown {
            reason: "graceful_shutdown".into(),
        }));
    }

    /// The node said GOODBYE and closed everything it knew: stop accepting,
    /// drop what it never knew, and let the closes finish (bounded).
    fn node_stopped(&mut self) {
        self.stop_by = Some(Instant::now() + crate::STOP_TIMEOUT);
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        if let Some(mut l) = self.monitoring.take() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        self.monitor_accept_at = None;
        if let Some(g) = self.dns.take() {
            g.shutdown(self.poll.registry());
        }
        self.dns_again.clear();
        self.accept_at = None;
        let unknown: Vec<ConnId> = self
            .conns
            .values()
            .filter(|c| !c.announced())
            .map(Conn::id)
            .collect();
        for id in unknown {
            if let Some(c) = self.conns.get_mut(&id) {
                c.abort();
            }
            self.ends.push_back((id, "node stopped".into()));
        }
    }

    /// Feeds the node every datagram waiting on the DNS UDP socket.
    fn dns_udp(&mut self) {
        let Some(g) = self.dns.as_mut() else {
            return;
        };
        for q in g.read_udp() {
            self.feed_dns(q);
        }
    }

    /// A DNS TCP connection is ready: feeds the node its complete queries.
    fn dns_conn(&mut self, token: Token, readable: bool, writable: bool) {
        let Some(g) = self.dns.as_mut() else {
            return;
        };
        let queries = g.conn_event(
            self.poll.registry(),
            token,
            readable,
            writable,
            Instant::now(),
        );
        for q in queries {
            self.feed_dns(q);
        }
        if self.dns.as_ref().is_some_and(|g| g.has_buffered(token))
            && !self.dns_again.contains(&token)
        {
            self.dns_again.push(token);
        }
    }

    fn feed_dns(&mut self, q: dns::Query) {
        self.feed(Input::DnsQuery {
            id: q.id,
            src: q.src,
            transport: q.transport,
            bytes: q.bytes,
        });
    }

    fn tick_node(&mut self) {
        let Some(due) = self.node.poll_timeout() else {
            return;
        };
        if self.clock.now().mono >= due {
            self.feed(Input::Tick);
        }
    }

    // ----- socket side -----------------------------------------------------

    /// Accepts waiting connections of the client listener, or of the
    /// monitoring listener (`monitor`: HTTP only).
    fn accept(&mut self, monitor: bool) {
        fn retry_at(ev: &mut EventLoop, monitor: bool) -> &mut Option<Instant> {
            if monitor {
                &mut ev.monitor_accept_at
            } else {
                &mut ev.accept_at
            }
        }
        for _ in 0..ACCEPT_BUDGET {
            let listener = if monitor {
                self.monitoring.as_ref()
            } else {
                self.listener.as_ref()
            };
            let accepted = match listener {
                Some(l) => l.accept(),
                None => return,
            };
            match accepted {
                Ok((stream, addr)) => {
                    let id = self.next_id();
                    let registry = self.poll.registry();
                    let now = Instant::now();
                    let from = Listener {
                        config: self.config,
                        http_only: monitor,
                        handshake_timeout: self.handshake_timeout,
                        tls: if monitor { None } else { self.tls.clone() },
                    };
                    match Conn::inbound(id, stream, addr, from, registry, now) {
                        Ok(conn) => {
                            self.conns.insert(id, conn);
                            self.track(id);
                        }
                        Err(e) => {
                            tracing::warn!(%addr, error = %e, "cannot watch accepted connection")
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    *retry_at(self, monitor) = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
        // More may be waiting; take them next turn, after the others.
        *retry_at(self, monitor) = Some(Instant::now());
    }

    fn dial(&mut self, url: String, timeout: Duration) {
        if self.stop_by.is_some() {
            return;
        }
        let id = self.next_id();
        let target = match Target::parse(&url) {
            Ok(t) => t,
            Err(why) => {
                self.conns
                    .insert(id, Conn::failed_dial(id, url, self.config));
                self.end(id, why);
                return;
            }
        };
        let literal = target.literal();
        let mut conn = Conn::outbound(
            id,
            url,
            target.request,
            timeout,
            self.config,
            Instant::now(),
        );
        let started = match literal {
            Some(addr) => conn.resolved(vec![addr], self.poll.registry()),
            None => self
                .resolver
                .spawn(id, target.host, target.port)
                .map_err(|e| format!("cannot start name resolution: {e}")),
        };
        self.conns.insert(id, conn);
        self.track(id);
        if let Err(why) = started {
            if let Some(c) = self.conns.get_mut(&id) {
                c.abort();
            }
            self.end(id, why);
        }
    }

    /// The waker fired: a shutdown request or finished name lookups.
    fn woken(&mut self) {
        if self.shutdown.requested() {
            self.begin_shutdown();
        }
        while let Some((id, result)) = self.resolver.try_recv() {
            let Some(conn) = self.conns.get_mut(&id) else {
                continue; // timed out meanwhile
            };
            let started = match result {
                Ok(addrs) if addrs.is_empty() => Err("name resolved to no address".to_string()),
                Ok(addrs) => conn.resolved(addrs, self.poll.registry()),
                Err(e) => Err(format!("IO error: {e}")),
            };
            match started {
                Ok(()) => self.track(id),
                Err(why) => {
                    conn.abort();
                    self.end(id, why);
                }
            }
        }
    }

    fn signalled(&mut self) {
        let fired = self.signals.as_mut().is_some_and(Signals::fired);
        if fired && !self.stopping {
            tracing::info!("signal received; sending GOODBYE to peers");
            self.begin_shutdown();
        }
    }

    fn conn_event(&mut self, id: ConnId, readable: bool, writable: bool) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if writable {
            if let Err(f) = conn.flush() {
                self.send_failed(id, f);
                return;
            }
        }
        if readable || !conn.upgraded() {
            self.pump(id);
        } else {
            self.track(id);
        }
    }

    /// Drives one connection until it would block or used its budget.
    fn pump(&mut self, id: ConnId) {
        for _ in 0..crate::READ_BUDGET {
            let Some(conn) = self.conns.get_mut(&id) else {
                return;
            };
            let progress = conn.advance(self.poll.registry(), Instant::now());
            self.track(id);
            match progress {
                Progress::Idle => return,
                Progress::Accepted {
                    kind,
                    headers,
                    addr,
                    tls,
                } => self.feed(Input::Accepted {
                    conn: id,
                    kind,
                    headers,
                    peer_addr: Some(addr),
                    tls,
                }),
                Progress::Connected { url } => self.feed(Input::Connected { conn: id, url }),
                Progress::Frame(frame) => self.feed(Input::Frame { conn: id, frame }),
                // The connection's id names the request.
                Progress::Http(head) => self.feed(Input::Http {
                    id,
                    method: head.method,
                    path: head.path,
                    query: head.query,
                    headers: head.headers,
                }),
                Progress::Ended(why) => self.end(id, why),
            }
        }
        self.again.push(id);
    }

    /// Bookkeeping after anything happened to a connection: schedule its new
    /// deadline, queue it for flushing, forget it once finished and told.
    fn track(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            return;
        };
        if let Some(at) = conn.take_new_deadline() {
            self.deadlines.schedule(at, id);
        }
        if conn.wants_flush() && !conn.flush_queued {
            conn.flush_queued = true;
            self.to_flush.push(id);
        }
        if conn.is_done() && conn.ended() {
            self.conns.remove(&id);
        }
    }

    fn expire_deadlines(&mut self) {
        let now = Instant::now();
        while let Some((at, id)) = self.deadlines.pop_due(now) {
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            if !conn.deadline_is(at) {
                continue; // rescheduled or cleared since
            }
            let upgrading = conn.upgrading_from();
            match conn.expire() {
                Some(why) => self.end(id, why),
                None => self.track(id),
            }
            if let Some(addr) = upgrading {
                self.feed(Input::HandshakeTimedOut {
                    peer_addr: Some(addr),
                });
            }
        }
    }

    /// Writes out everything the turn buffered. A socket that is full keeps
    /// the rest for its next writable event.
    fn flush_all(&mut self) {
        for id in mem::take(&mut self.to_flush) {
            let Some(conn) = self.conns.get_mut(&id) else {
                continue;
            };
            conn.flush_queued = false;
            match conn.flush() {
                Ok(()) => {
                    // A finished HTTP answer starts its linger deadline.
                    if let Some(at) = conn.take_new_deadline() {
                        self.deadlines.schedule(at, id);
                    }
                    if conn.is_done() && conn.ended() {
                        self.conns.remove(&id);
                    }
                }
                Err(f) => self.send_failed(id, f),
            }
        }
    }
}
