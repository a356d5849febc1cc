//! One connection as a state machine driven by readiness events.
//!
//! ```text
//! outbound: Resolving ─► Connecting ─► ClientHandshake ─┐
//! inbound:               Sniffing ───► ServerHandshake ─┴─► Open ─► Draining ─► Done
//!                           └────────► Http ─► Lingering ─────────────────────► Done
//! ```
//!
//! An inbound connection first waits for its complete request head (peeked,
//! not consumed, parsed by `mpreg_core::monitoring::http`): a WebSocket
//! upgrade goes on to the handshake, which then reads the same bytes; any
//! other request (and every request on the monitoring listener) is HTTP:
//! the head is consumed, the node answers it (`Progress::Http`), the
//! response is written and the socket closed. The node never hears of HTTP
//! connections as connections.
//!
//! Every step is non-blocking: tungstenite is driven over the mio socket and
//! a `WouldBlock` (or `HandshakeError::Interrupted`) simply leaves the state
//! as it is until the next readiness event. The connection never talks to the
//! node; [`Conn::advance`] reports [`Progress`] and the event loop turns it
//! into node inputs. That keeps "what happened on the socket" here and "what
//! the node hears, exactly once" in one place in the loop.
//!
//! `Open` covers the closing handshake we started (the node asked to close):
//! the peer may still send messages until it answers, and the node still
//! gets them, as with the tokio runtime. `Draining` is after the node was
//! told `Closed`: only the close reply is flushed and the socket's end
//! awaited, bounded by [`crate::CLOSE_TIMEOUT`].

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::mem;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use mpreg_core::monitoring::http::{self as codec, Head};
use mpreg_core::{CloseReason, ConnId, ConnKind, Frame};
use mpreg_runtime_support::tls::HANDSHAKE_RECORD;
use rustls::ServerConfig;
use tungstenite::handshake::client::{ClientHandshake, Request};
use tungstenite::handshake::server::ServerHandshake;
use tungstenite::handshake::{HandshakeError, MidHandshake};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tungstenite::{Bytes, Error as WsError, Message, Utf8Bytes, WebSocket};

use crate::dial;
use crate::stream::Stream;
use crate::upgrade::{self, Negotiate, Negotiated};

type ServerMid = MidHandshake<ServerHandshake<Stream, Negotiate>>;
type ClientMid = MidHandshake<ClientHandshake<Stream>>;

/// Who opened the connection.
enum Origin {
    /// A peer connected to our listener.
    Inbound {
        addr: SocketAddr,
        /// Filled by the handshake callback.
        negotiated: Rc<RefCell<Option<Negotiated>>>,
        /// Accepted on the monitoring listener: every request is HTTP.
        http_only: bool,
        /// Bound on the request head plus the upgrade, and on the HTTP
        /// answer after it (`connection_handshake_timeout_seconds`).
        handshake_timeout: Duration,
        /// Client TLS, when configured: a connection that starts with a TLS
        /// handshake record becomes a TLS session.
        tls: Option<Arc<ServerConfig>>,
    },
    /// The node asked us to dial `url`, giving up after `timeout`.
    Outbound { url: String, timeout: Duration },
}

enum Phase {
    /// Inbound: waiting for the complete request head.
    Sniffing(Stream),
    /// Inbound plain HTTP: the head was consumed; `out` is the response once
    /// known (from the node, or an error answered here), `written` how much
    /// of it left.
    Http {
        stream: Stream,
        out: Option<Vec<u8>>,
        written: usize,
    },
    /// The HTTP response left and our side is shut: unread request bytes
    /// are drained until the client closes (bounded by a deadline), since
    /// closing with unread input would reset the connection and could
    /// destroy the response before the client read it.
    Lingering(Stream),
    /// Waiting for the resolver thread.
    Resolving {
        request: Request,
    },
    /// TCP connect in flight; `rest` are the addresses to try next.
    Connecting {
        stream: TcpStream,
        rest: VecDeque<SocketAddr>,
        request: Request,
    },
    ClientHandshake(ClientMid),
    ServerHandshake(ServerMid),
    /// Upgraded: messages flow both ways (also while our close is pending).
    Open(WebSocket<Stream>),
    /// The node was told `Closed`; finishing the closing handshake only.
    Draining(WebSocket<Stream>),
    /// Socket gone (or never made); the loop removes the connection.
    Done,
}

/// What a step of a connection produced, for the event loop.
#[derive(Debug)]
pub(crate) enum Progress {
    /// Nothing more until the next readiness event.
    Idle,
    /// The inbound upgrade finished.
    Accepted {
        kind: ConnKind,
        headers: Vec<(String, String)>,
        addr: SocketAddr,
        /// It arrived over TLS.
        tls: bool,
    },
    /// The outbound upgrade finished and the server agreed to the fabric
    /// subprotocol.
    Connected { url: String },
    /// One complete message.
    Frame(Frame),
    /// A plain HTTP request for the node; answer with [`Conn::respond`].
    Http(Head),
    /// The connection will deliver nothing more (closed by either side,
    /// failed, or a dial that never connected), with the reason.
    Ended(String),
}

/// What the node hears when a connection ends.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ending {
    /// It knew the connection: `Input::Closed`.
    Closed,
    /// A dial that never connected: `Input::DialFailed` for this URL.
    DialFailed(String),
    /// Nothing (an inbound upgrade that failed, or already reported).
    Silent,
}

/// Why a write could not be queued: the connection is finished (`Done`).
#[derive(Debug)]
pub(crate) struct SendFailed {
    /// What went wrong.
    pub why: String,
    /// The peer reads too slowly (the write buffer bound was hit), as
    /// opposed to a broken socket.
    pub slow: bool,
}

impl SendFailed {
    fn broken(e: WsError) -> Self {
        SendFailed {
            why: e.to_string(),
            slow: false,
        }
    }
}

/// How the listener a connection arrived on treats it.
#[derive(Debug, Clone)]
pub(crate) struct Listener {
    pub config: WebSocketConfig,
    /// The monitoring listener: every request is HTTP.
    pub http_only: bool,
    /// `connection_handshake_timeout_seconds`.
    pub handshake_timeout: Duration,
    /// Client TLS (`client_tls_cert_file`), when configured.
    pub tls: Option<Arc<ServerConfig>>,
}

/// One connection.
pub(crate) struct Conn {
    id: ConnId,
    origin: Origin,
    phase: Phase,
    config: WebSocketConfig,
    /// The node knows this connection: `Accepted`/`Connected` was delivered
    /// and `Closed` not yet.
    announced: bool,
    /// `Ended` was reported (so it is reported once).
    ended: bool,
    /// We sent a close frame.
    closing: bool,
    /// When the current phase must be over.
    deadline: Option<Instant>,
    /// A new deadline the loop has not scheduled yet.
    deadline_changed: bool,
    /// Bytes may be waiting in tungstenite's write buffer.
    dirty: bool,
    /// The loop has this connection on its flush list.
    pub(crate) flush_queued: bool,
}

impl Conn {
    fn new(id: ConnId, origin: Origin, phase: Phase, config: WebSocketConfig) -> Self {
        Conn {
            id,
            origin,
            phase,
            config,
            announced: false,
            ended: false,
            closing: false,
            deadline: None,
            deadline_changed: false,
            dirty: false,
            flush_queued: false,
        }
    }

    /// An accepted socket, registered and waiting for its request head,
    /// which with the upgrade must be over within the listener's
    /// handshake timeout.
    pub(crate) fn inbound(
        id: ConnId,
        mut stream: TcpStream,
        addr: SocketAddr,
        listener: Listener,
        registry: &Registry,
        now: Instant,
    ) -> io::Result<Self> {
        let Listener {
            config,
            http_only,
            handshake_timeout,
            tls,
        } = listener;
        // Small messages (requests, replies, gossip) must not wait for Nagle.
        let _ = stream.set_nodelay(true);
        registry.register(
            &mut stream,
            Token(token_of(id)),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let negotiated = Rc::new(RefCell::new(None));
        let mut conn = Conn::new(
            id,
            Origin::Inbound {
                addr,
                negotiated,
                http_only,
                handshake_timeout,
                tls,
            },
            Phase::Sniffing(Stream::Plain(stream)),
            config,
        );
        conn.set_deadline(Some(now + handshake_timeout));
        Ok(conn)
    }

    /// A dial to `url`, not started yet (see [`Conn::resolved`]).
    pub(crate) fn outbound(
        id: ConnId,
        url: String,
        request: Request,
        timeout: Duration,
        config: WebSocketConfig,
        now: Instant,
    ) -> Self {
        let mut conn = Conn::new(
            id,
            Origin::Outbound { url, timeout },
            Phase::Resolving { request },
            config,
        );
        conn.set_deadline(now.checked_add(timeout));
        conn
    }

    /// A dial that failed before it began (bad URL): it only reports `Ended`.
    pub(crate) fn failed_dial(id: ConnId, url: String, config: WebSocketConfig) -> Self {
        let timeout = Duration::ZERO;
        Conn::new(id, Origin::Outbound { url, timeout }, Phase::Done, config)
    }

    /// The runtime's id of this connection.
    pub(crate) fn id(&self) -> ConnId {
        self.id
    }

    /// The node knows this connection.
    pub(crate) fn announced(&self) -> bool {
        self.announced
    }

    /// The socket is gone; remove the connection.
    pub(crate) fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// What the node must hear now that the connection ended; `Silent`
    /// after the first call, so the node hears it exactly once.
    pub(crate) fn take_ending(&mut self) -> Ending {
        if mem::replace(&mut self.ended, true) {
            return Ending::Silent;
        }
        if mem::replace(&mut self.announced, false) {
            return Ending::Closed;
        }
        match &self.origin {
            Origin::Outbound { url, .. } => Ending::DialFailed(url.clone()),
            Origin::Inbound { .. } => Ending::Silent,
        }
    }

    /// The node's answer to this connection's HTTP request (the encoded
    /// response); it is written on the next flush, then the socket closes.
    pub(crate) fn respond(&mut self, bytes: Vec<u8>) {
        if let Phase::Http {
            out: out @ None, ..
        } = &mut self.phase
        {
            *out = Some(bytes);
            self.dirty = true;
        }
    }

    /// The node was told about the end (or never needed to be).
    pub(crate) fn ended(&self) -> bool {
        self.ended
    }

    /// The WebSocket upgrade is behind us (reads are messages, not
    /// handshake bytes).
    pub(crate) fn upgraded(&self) -> bool {
        matches!(self.phase, Phase::Open(_) | Phase::Draining(_))
    }

    /// A deadline set since the last call, for the loop's timer heap.
    pub(crate) fn take_new_deadline(&mut self) -> Option<Instant> {
        if mem::replace(&mut self.deadline_changed, false) {
            self.deadline
        } else {
            None
        }
    }

    /// Whether `at` is this connection's current deadline.
    pub(crate) fn deadline_is(&self, at: Instant) -> bool {
        self.deadline == Some(at)
    }

    /// Bytes wait for the socket.
    pub(crate) fn wants_flush(&self) -> bool {
        self.dirty
    }

    fn set_deadline(&mut self, at: Option<Instant>) {
        self.deadline = at;
        self.deadline_changed = at.is_some();
    }

    /// Feeds the addresses of a resolved dial and starts connecting.
    pub(crate) fn resolved(
        &mut self,
        addrs: Vec<SocketAddr>,
        registry: &Registry,
    ) -> Result<(), String> {
        let request = match mem::replace(&mut self.phase, Phase::Done) {
            Phase::Resolving { request } => request,
            other => {
                self.phase = other; // not waiting for addresses (any more)
                return Ok(());
            }
        };
        let mut rest: VecDeque<SocketAddr> = addrs.into();
        let stream = dial::connect(&mut rest, registry, Token(token_of(self.id)))?;
        self.phase = Phase::Connecting {
            stream,
            rest,
            request,
        };
        Ok(())
    }

    /// Drives the connection as far as it goes without blocking and reports
    /// the first thing the node needs to hear. Call again until `Idle`.
    pub(crate) fn advance(&mut self, registry: &Registry, now: Instant) -> Progress {
        loop {
            match mem::replace(&mut self.phase, Phase::Done) {
                Phase::Sniffing(stream) => match self.sniff(stream, now) {
                    Some(progress) => return progress,
                    None => continue, // a WebSocket upgrade: handshake next
                },
                Phase::Http {
                    stream,
                    out,
                    written,
                } => {
                    // One request per connection: later bytes are ignored.
                    self.phase = Phase::Http {
                        stream,
                        out,
                        written,
                    };
                    return Progress::Idle;
                }
                Phase::Lingering(stream) => {
                    self.linger(stream);
                    return Progress::Idle;
                }
                Phase::Resolving { request } => {
                    self.phase = Phase::Resolving { request };
                    return Progress::Idle;
                }
                Phase::Connecting {
                    stream,
                    mut rest,
                    request,
                } => match dial::finished(&stream) {
                    Ok(false) => {
                        self.phase = Phase::Connecting {
                            stream,
                            rest,
                            request,
                        };
                        return Progress::Idle;
                    }
                    Ok(true) => {
                        let _ = stream.set_nodelay(true);
                        let stream = Stream::Plain(stream);
                        match ClientHandshake::start(stream, request, Some(self.config)) {
                            Ok(mid) => self.phase = Phase::ClientHandshake(mid),
                            Err(e) => return self.end(e.to_string()),
                        }
                    }
                    Err(e) => {
                        drop(stream);
                        match dial::connect(&mut rest, registry, Token(token_of(self.id))) {
                            Ok(stream) => {
                                self.phase = Phase::Connecting {
                                    stream,
                                    rest,
                                    request,
                                };
                                return Progress::Idle;
                            }
                            Err(_) => return self.end(format!("IO error: {e}")),
                        }
                    }
                },
                Phase::ClientHandshake(mid) => match mid.handshake() {
                    Ok((ws, response)) => {
                        let url = match &self.origin {
                            Origin::Outbound { url, .. } => url.clone(),
                            Origin::Inbound { .. } => String::new(),
                        };
                        if !upgrade::agreed(&response) {
                            return self.end(upgrade::not_agreed(&url));
                        }
                        self.phase = Phase::Open(ws);
                        self.set_deadline(None);
                        self.announced = true;
                        return Progress::Connected { url };
                    }
                    Err(HandshakeError::Interrupted(mid)) => {
                        self.phase = Phase::ClientHandshake(mid);
                        return Progress::Idle;
                    }
                    Err(HandshakeError::Failure(e)) => return self.end(e.to_string()),
                },
                Phase::ServerHandshake(mid) => match mid.handshake() {
                    Ok(ws) => {
                        let (addr, negotiated) = match &self.origin {
                            Origin::Inbound {
                                addr, negotiated, ..
                            } => (*addr, negotiated.borrow_mut().take()),
                            Origin::Outbound { .. } => return self.end("not inbound".into()),
                        };
                        // tungstenite runs the callback before the upgrade
                        // can succeed; a miss is treated as a failed upgrade.
                        let Some(n) = negotiated else {
                            return self.end("upgrade finished without a request".into());
                        };
                        let tls = ws.get_ref().is_tls();
                        self.phase = Phase::Open(ws);
                        self.set_deadline(None);
                        self.announced = true;
                        return Progress::Accepted {
                            kind: n.kind,
                            headers: n.headers,
                            addr,
                            tls,
                        };
                    }
                    Err(HandshakeError::Interrupted(mid)) => {
                        self.phase = Phase::ServerHandshake(mid);
                        return Progress::Idle;
                    }
                    Err(HandshakeError::Failure(e)) => return self.end(e.to_string()),
                },
                Phase::Open(mut ws) => match ws.read() {
                    Ok(Message::Text(t)) => {
                        self.phase = Phase::Open(ws);
                        return Progress::Frame(Frame::Text(text(t)));
                    }
                    Ok(Message::Binary(b)) => {
                        self.phase = Phase::Open(ws);
                        // tungstenite's buffer, handed over as it is.
                        return Progress::Frame(Frame::Binary(b));
                    }
                    Ok(Message::Ping(_)) => {
                        // tungstenite queued the pong; make sure it leaves
                        // even if no further read comes along to flush it.
                        self.dirty = true;
                        self.phase = Phase::Open(ws);
                    }
                    Ok(Message::Pong(_)) | Ok(Message::Frame(_)) => self.phase = Phase::Open(ws),
                    Ok(Message::Close(_)) => {
                        // tungstenite queued the close reply (or this was
                        // the reply to ours); flush it while draining.
                        self.dirty = true;
                        return self.drain(ws, now, "closed by peer".into());
                    }
                    Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.phase = Phase::Open(ws);
                        return Progress::Idle;
                    }
                    Err(WsError::ConnectionClosed) | Err(WsError::AlreadyClosed) => {
                        return self.end("connection closed".into());
                    }
                    Err(e) => {
                        // Fail the WebSocket connection (RFC 6455 §7.1.7):
                        // say why where a close code exists, then drop it.
                        let code = match &e {
                            WsError::Protocol(_) => Some(CloseCode::Protocol),
                            WsError::Capacity(_) => Some(CloseCode::Size),
                            WsError::Utf8(_) => Some(CloseCode::Invalid),
                            _ => None,
                        };
                        let why = e.to_string();
                        return match code {
                            Some(code) => {
                                let reason = CloseReason::new(code.into(), why.clone());
                                let _ = ws.close(Some(CloseFrame {
                                    code,
                                    reason: reason.reason.into(),
                                }));
                                self.dirty = true;
                                self.drain(ws, now, why)
                            }
                            None => self.end(why),
                        };
                    }
                },
                Phase::Draining(mut ws) => match ws.read() {
                    Ok(_) => self.phase = Phase::Draining(ws),
                    Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.phase = Phase::Draining(ws);
                        return Progress::Idle;
                    }
                    Err(_) => return Progress::Idle, // finished: phase stays Done
                },
                Phase::Done => return Progress::Idle,
            }
        }
    }

    /// Queues one message. `Ok` also when the connection is no longer open
    /// (the node's message to a closing connection is dropped, as tokio's
    /// runtime does once its writer is gone).
    pub(crate) fn send(&mut self, frame: Frame) -> Result<(), SendFailed> {
        if self.closing {
            return Ok(());
        }
        let Phase::Open(ws) = &mut self.phase else {
            return Ok(());
        };
        let msg = match frame {
            Frame::Binary(b) => Message::Binary(b),
            Frame::Text(t) => Message::Text(t.into()),
        };
        match ws.write(msg) {
            Ok(()) => {
                self.dirty = true;
                Ok(())
            }
            // The frame is in the buffer; the socket is full for now.
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => {
                self.dirty = true;
                Ok(())
            }
            Err(WsError::WriteBufferFull(_)) => {
                self.phase = Phase::Done;
                Err(SendFailed {
                    why: format!(
                        "write buffer bound ({} bytes) reached: peer reads too slowly",
                        self.config.max_write_buffer_size
                    ),
                    slow: true,
                })
            }
            Err(e) => {
                self.phase = Phase::Done;
                Err(SendFailed::broken(e))
            }
        }
    }

    /// Sends a close frame after everything queued before it and waits (up
    /// to [`crate::CLOSE_TIMEOUT`]) for the peer to answer.
    pub(crate) fn close(&mut self, reason: CloseReason, now: Instant) -> Result<(), SendFailed> {
        if self.closing {
            return Ok(());
        }
        let Phase::Open(ws) = &mut self.phase else {
            return Ok(());
        };
        self.closing = true;
        let frame = CloseFrame {
            code: CloseCode::from(reason.code),
            reason: reason.reason.into(),
        };
        match ws.close(Some(frame)) {
            Ok(()) => {}
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => self.dirty = true,
            Err(e) => {
                self.phase = Phase::Done;
                return Err(SendFailed::broken(e));
            }
        }
        self.set_deadline(Some(now + crate::CLOSE_TIMEOUT));
        Ok(())
    }

    /// Writes buffered bytes to the socket. `Err` means the connection broke
    /// (it is then `Done`); a full socket is fine (the next writable event
    /// resumes).
    pub(crate) fn flush(&mut self) -> Result<(), SendFailed> {
        if let Phase::Http { .. } = self.phase {
            self.flush_http(Instant::now());
            return Ok(());
        }
        let (ws, draining) = match &mut self.phase {
            Phase::Open(ws) => (ws, false),
            Phase::Draining(ws) => (ws, true),
            _ => return Ok(()),
        };
        match ws.flush() {
            Ok(()) => {
                self.dirty = false;
                Ok(())
            }
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => {
                self.phase = Phase::Done;
                if draining {
                    Ok(()) // the node already knows; nothing left to say
                } else {
                    Err(SendFailed::broken(e))
                }
            }
        }
    }

    /// The deadline passed: the connection is `Done`; returns the reason to
    /// report (`None` when it was only draining).
    /// The source of an inbound connection still in its request head or
    /// WebSocket upgrade, on either listener (whose expiry is a handshake
    /// timeout the node counts); `None` otherwise.
    pub(crate) fn upgrading_from(&self) -> Option<SocketAddr> {
        match (&self.phase, &self.origin) {
            (Phase::ServerHandshake(_) | Phase::Sniffing(_), Origin::Inbound { addr, .. }) => {
                Some(*addr)
            }
            _ => None,
        }
    }

    pub(crate) fn expire(&mut self) -> Option<String> {
        let why = match (&self.phase, &self.origin) {
            (
                Phase::Resolving { .. } | Phase::Connecting { .. } | Phase::ClientHandshake(_),
                Origin::Outbound { timeout, .. },
            ) => Some(format!("timed out after {timeout:?}")),
            (Phase::ServerHandshake(_) | Phase::Sniffing(_), _) => {
                Some("websocket upgrade timed out".to_string())
            }
            (Phase::Http { .. } | Phase::Lingering(_), _) => {
                Some("HTTP request not answered in time".to_string())
            }
            (Phase::Open(_), _) => Some("close not answered in time".to_string()),
            _ => None,
        };
        self.phase = Phase::Done;
        self.deadline = None;
        why
    }

    /// Drops the socket at once (slow reader, shutdown of an unannounced
    /// connection).
    pub(crate) fn abort(&mut self) {
        self.phase = Phase::Done;
    }

    /// Peeks at the request head. `None` when it is a WebSocket upgrade
    /// (the phase is then the server handshake, which reads the same
    /// bytes); otherwise what to report (an HTTP request for the node, or
    /// `Idle` while the head is incomplete or an error answer is queued).
    fn sniff(&mut self, mut stream: Stream, now: Instant) -> Option<Progress> {
        let mut buf = [0u8; codec::MAX_HEAD_BYTES];
        let n = match stream.peek(&mut buf) {
            Ok(0) => return Some(self.end("closed before sending a request".into())),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.phase = Phase::Sniffing(stream);
                return Some(Progress::Idle);
            }
            Err(e) => return Some(self.end(format!("IO error: {e}"))),
        };
        let (negotiated, http_only, handshake_timeout, tls) = match &self.origin {
            Origin::Inbound {
                negotiated,
                http_only,
                handshake_timeout,
                tls,
                ..
            } => (negotiated.clone(), *http_only, *handshake_timeout, tls),
            Origin::Outbound { .. } => return Some(self.end("not inbound".into())),
        };
        if let (Stream::Plain(_), Some(&HANDSHAKE_RECORD), Some(config)) =
            (&stream, buf.first(), tls)
        {
            // A TLS client: sniff again inside the session, under the same
            // deadline (the TLS handshake counts against it). Without client
            // TLS the bytes are just a bad request head (answered 400).
            let config = config.clone();
            let Stream::Plain(tcp) = stream else {
                return Some(self.end("not a plain socket".into()));
            };
            return match Stream::tls(config, tcp) {
                Ok(stream) => {
                    self.phase = Phase::Sniffing(stream);
                    None
                }
                Err(e) => Some(self.end(format!("cannot start TLS: {e}"))),
            };
        }
        let head = match codec::parse_head(&buf[..n]) {
            Ok(None) => {
                self.phase = Phase::Sniffing(stream);
                return Some(Progress::Idle);
            }
            Ok(Some(head)) if head.is_websocket_upgrade() && !http_only => {
                let mid = ServerHandshake::start(stream, Negotiate(negotiated), Some(self.config));
                self.phase = Phase::ServerHandshake(mid);
                return None;
            }
            Ok(Some(head)) => Ok(head),
            Err(e) => Err(e),
        };
        // From here on the response must leave within one more timeout.
        self.set_deadline(Some(now + handshake_timeout));
        match head {
            Ok(head) => {
                // Consume the head (it is in the socket buffer, or read
                // ahead by a TLS session: peek saw it).
                let mut left = head.len;
                while left > 0 {
                    match stream.read(&mut buf[..left]) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => left -= k,
                    }
                }
                self.phase = Phase::Http {
                    stream,
                    out: None,
                    written: 0,
                };
                Some(Progress::Http(head))
            }
            Err(e) => {
                self.phase = Phase::Http {
                    stream,
                    out: Some(codec::error_response(e.status(), &e.message())),
                    written: 0,
                };
                self.dirty = true;
                Some(Progress::Idle)
            }
        }
    }

    /// Writes the HTTP response as far as the socket takes it; once all of
    /// it left, shuts our side and lingers (a broken socket finishes the
    /// connection at once). The node is never told: it never knew it.
    fn flush_http(&mut self, now: Instant) {
        let Phase::Http {
            stream,
            out: Some(out),
            written,
        } = &mut self.phase
        else {
            return; // the node has not answered yet
        };
        let mut broken = false;
        while *written < out.len() {
            match stream.write(&out[*written..]) {
                Ok(0) => broken = true,
                Ok(k) => *written += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => broken = true,
            }
            if broken {
                break;
            }
        }
        // A TLS session may still hold records for the socket.
        match stream.flush() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => broken = true,
            Ok(()) => {}
        }
        self.dirty = false;
        let phase = mem::replace(&mut self.phase, Phase::Done);
        match phase {
            Phase::Http { mut stream, .. } if !broken => {
                stream.shutdown_write();
                self.set_deadline(Some(now + crate::CLOSE_TIMEOUT));
                // The client may have closed already (no further readiness
                // event would come): drain what is there now.
                self.linger(stream);
            }
            _ => self.ended = true,
        }
    }

    /// Discards unread input of a finished HTTP connection until the
    /// client closes (then the connection is finished) or the socket is
    /// empty for now (it stays `Lingering`).
    fn linger(&mut self, mut stream: Stream) {
        let mut sink = [0u8; 4096];
        loop {
            match stream.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.phase = Phase::Lingering(stream);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        // The client closed: nothing to tell the node.
        self.phase = Phase::Done;
        self.ended = true;
    }

    /// The socket is finished.
    fn end(&mut self, why: String) -> Progress {
        self.phase = Phase::Done;
        self.ended_progress(why)
    }

    /// The node is done with this connection; finish the closing handshake.
    fn drain(&mut self, ws: WebSocket<Stream>, now: Instant, why: String) -> Progress {
        self.phase = Phase::Draining(ws);
        self.set_deadline(Some(now + crate::CLOSE_TIMEOUT));
        self.ended_progress(why)
    }

    fn ended_progress(&mut self, why: String) -> Progress {
        if self.ended {
            Progress::Idle
        } else {
            Progress::Ended(why)
        }
    }
}

/// A text message as a `String`, reusing its buffer where possible.
fn text(t: Utf8Bytes) -> String {
    let bytes = Vec::from(Bytes::from(t));
    // tungstenite validated the UTF-8 already; the fallback never runs.
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The poll token of a connection. Connection ids count up from 1 and the
/// loop's own tokens sit at the top of the range, so they never collide.
pub(crate) fn token_of(id: ConnId) -> usize {
    usize::try_from(id).unwrap_or(usize::MAX / 2)
}
