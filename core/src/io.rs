//! The node's one input type and one output type (str0m style): everything
//! a runtime tells the node, and everything the node asks the runtime to do.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

pub use crate::dns::DnsTransport;

/// Identifies one DNS query. Allocated by the runtime, unique among the
/// queries in flight.
pub type DnsQueryId = u64;

/// Identifies one HTTP request (monitoring endpoints). Allocated by the
/// runtime, unique among the requests in flight.
pub type HttpId = u64;

/// Identifies one transport connection. Allocated by the runtime, unique for
/// the lifetime of the process.
pub type ConnId = u64;

/// What kind of peer sits on a connection, decided by the WebSocket handshake:
/// a connection that negotiated the `mpreg-fabric.v1` subprotocol is a fabric
/// peer, anything else is an MPREG client speaking JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnKind {
    /// JSON client protocol (MPREG-compatible).
    Client,
    /// CBOR fabric protocol between mpreg-rs nodes.
    Fabric,
}

/// One WebSocket message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text message (UTF-8).
    Text(String),
    /// A binary message. Cloning shares the buffer: the same frame sent on
    /// many links (a fabric delta flooded to every peer) is not copied.
    Binary(Bytes),
}

impl Frame {
    /// The payload bytes, whatever the frame type.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Frame::Text(s) => s.as_bytes(),
            Frame::Binary(b) => b,
        }
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// True for an empty payload.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A WebSocket close code plus a human-readable reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// RFC 6455 close code (1000 normal, 1002 protocol error, 1008 policy,
    /// 1009 too big, 1001 going away).
    pub code: u16,
    /// Reason text (kept under the 123 bytes a close frame can carry).
    pub reason: String,
}

impl CloseReason {
    /// Builds a close reason, truncating the text on a char boundary so it
    /// fits in a WebSocket close frame.
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        if reason.len() > 120 {
            let mut cut = 120;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        CloseReason { code, reason }
    }
}

/// Local administrative commands (from the process itself, not the network).
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Graceful shutdown: send GOODBYE to every fabric peer, close every
    /// connection, then emit [`Output::Stopped`].
    Shutdown {
        /// GOODBYE reason (`graceful_shutdown`, `maintenance`, ...).
        reason: String,
    },
}

/// Everything that can happen to a node.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A deadline from `poll_timeout` passed (or the runtime just woke up).
    Tick,
    /// An inbound WebSocket connection finished its handshake.
    Accepted {
        /// Runtime-allocated id.
        conn: ConnId,
        /// Client or fabric, from the negotiated subprotocol.
        kind: ConnKind,
        /// Upgrade request headers, names lower-cased.
        headers: Vec<(String, String)>,
        /// Remote address, when known.
        peer_addr: Option<SocketAddr>,
        /// It arrived over TLS (`wss://`): `client_tls_required` refuses
        /// client connections without it.
        tls: bool,
    },
    /// An inbound connection was dropped by the runtime because it did not
    /// send its HTTP request head and finish the WebSocket upgrade within
    /// `connection_handshake_timeout_seconds` (a slowloris client). The
    /// node never saw the connection; it only counts the hit.
    HandshakeTimedOut {
        /// Remote address, when known.
        peer_addr: Option<SocketAddr>,
    },
    /// An outbound fabric dial requested by [`Output::Dial`] succeeded.
    Connected {
        /// Runtime-allocated id.
        conn: ConnId,
        /// The URL that was dialled.
        url: String,
    },
    /// An outbound dial failed (refused, timed out, handshake rejected).
    DialFailed {
        /// The URL that was dialled.
        url: String,
        /// What went wrong, for diagnostics.
        error: String,
    },
    /// One complete WebSocket message arrived.
    Frame {
        /// The connection it arrived on.
        conn: ConnId,
        /// The message.
        frame: Frame,
    },
    /// A connection closed (either side, any reason). Sent exactly once.
    Closed {
        /// The connection.
        conn: ConnId,
    },
    /// A local administrative command.
    Command(Command),
    /// One DNS query arrived on the DNS gateway's UDP or TCP socket. The
    /// node answers every query with exactly one [`Output::DnsReply`] of
    /// the same `id` (possibly empty: send nothing).
    DnsQuery {
        /// Runtime-allocated id, echoed in the reply.
        id: DnsQueryId,
        /// Source address (the viewer network and the rate-limit key).
        src: SocketAddr,
        /// Datagram or stream (decides the reply size limit).
        transport: DnsTransport,
        /// The DNS message (without the TCP length prefix).
        bytes: Vec<u8>,
    },
    /// One HTTP request arrived, on the monitoring listener or as a plain
    /// (non-upgrade) GET on the client WebSocket port. The node answers
    /// every request with exactly one [`Output::HttpReply`] of the same `id`
    /// ([`crate::monitoring`]).
    Http {
        /// Runtime-allocated id, echoed in the reply.
        id: HttpId,
        /// Request method as sent (`GET`, `HEAD`, ...).
        method: String,
        /// Path without the query string (`/discovery/lag`).
        path: String,
        /// Raw query string without the `?` (empty when none).
        query: String,
        /// Request headers, names lower-cased (credentials for the
        /// monitoring token and the policy view).
        headers: Vec<(String, String)>,
    },
    /// The content of a file the node persisted earlier with
    /// [`Output::Persist`], read back at start. The runtime feeds one
    /// `Restored` per name in [`PERSISTED_FILES`] that exists in the data
    /// directory, after `Node::new` and before the first connection, so
    /// restored state is in place before any client can see the catalog.
    /// Unknown names and undecodable content are reported as events and
    /// otherwise ignored: a damaged file never stops a node.
    Restored {
        /// File name inside the data directory (one of [`PERSISTED_FILES`]).
        name: String,
        /// The file's bytes.
        bytes: Vec<u8>,
    },
}

/// The files a node may ask its runtime to persist ([`Output::Persist`]) and
/// that the runtime reads back at start ([`Input::Restored`]). The runtime
/// only ever touches these names inside the configured `data_dir`.
pub const PERSISTED_FILES: &[&str] = &[
    crate::registry::PERSIST_FILE,
    crate::policy::history::PERSIST_FILE,
];

/// Diagnostics the runtime logs (with `tracing`) and counts.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A bad frame or request was rejected.
    BadInput {
        /// The connection, if any.
        conn: Option<ConnId>,
        /// What was wrong.
        detail: String,
    },
    /// A fabric peer became known or connected.
    PeerUp {
        /// Peer node id (its URL).
        node_id: String,
    },
    /// A fabric peer left (GOODBYE) or its connection dropped.
    PeerDown {
        /// Peer node id (its URL).
        node_id: String,
        /// Why.
        reason: String,
    },
    /// A free-form informational line.
    Info(String),
    /// A diagnostic line of a debug scope (`peer_dial`, `peer_snapshot`),
    /// emitted only when that scope is enabled in `log_debug_scopes`.
    Diag {
        /// The scope.
        scope: &'static str,
        /// The line (e.g. `[DIAG_PEER_DIAL] node=... loop targets=...`).
        line: String,
    },
}

/// Everything a node asks its runtime to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Write one WebSocket message to a connection.
    Send {
        /// Target connection.
        conn: ConnId,
        /// The message.
        frame: Frame,
    },
    /// Open an outbound fabric connection (subprotocol `mpreg-fabric.v1`).
    /// The runtime answers with `Connected` or `DialFailed`.
    Dial {
        /// `ws://host:port` of the peer.
        url: String,
        /// Give up (and report `DialFailed`) after this long.
        timeout: Duration,
    },
    /// Close a connection after flushing what was sent before.
    Close {
        /// Target connection.
        conn: ConnId,
        /// Close code and reason.
        reason: CloseReason,
    },
    /// Something worth logging or counting.
    Event(Event),
    /// Replace file `name` in the node's `data_dir` with `bytes`, atomically
    /// (write a temporary file, sync it, rename it over the old one), so a
    /// crash leaves either the old or the new content, never a torn file.
    /// Only emitted when `data_dir` is set. It comes before the reply that
    /// acknowledges the change, so a runtime that performs outputs in order
    /// makes every acknowledged change durable. Each `Persist` carries the whole
    /// content, so a runtime may skip a write that a later `Persist` of the
    /// same name supersedes. A failed write is logged by the runtime; the
    /// node keeps serving from memory.
    Persist {
        /// File name inside the data directory (one of [`PERSISTED_FILES`]).
        name: String,
        /// The complete new content.
        bytes: Vec<u8>,
    },
    /// Shutdown finished: the runtime flushes pending writes and exits.
    Stopped,
    /// The answer to [`Input::DnsQuery`] `id`: send `bytes` to the query's
    /// source (TCP: with the 2-byte length prefix). Empty `bytes` means no
    /// reply (a response packet, garbage, a rate-limit drop); the runtime
    /// just forgets the query.
    DnsReply {
        /// The query's id.
        id: DnsQueryId,
        /// The DNS message, or empty.
        bytes: Vec<u8>,
    },
    /// The answer to [`Input::Http`] `id`: the runtime writes it as an
    /// HTTP/1.1 response ([`crate::monitoring::http::encode_response`]) and
    /// closes the connection.
    HttpReply {
        /// The request's id.
        id: HttpId,
        /// HTTP status code (200, 401, 404, 405, 500).
        status: u16,
        /// `Content-Type` of `body`.
        content_type: String,
        /// The response body.
        body: Vec<u8>,
        /// Extra response headers (CORS, `WWW-Authenticate`, `Allow`).
        headers: Vec<(String, String)>,
    },
}
