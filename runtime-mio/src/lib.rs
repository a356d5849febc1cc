//! # mpreg-mio: the high-performance runtime
//!
//! Drives the same [`mpreg_core::Node`] as `mpreg-tokio`, with one hand-rolled
//! [`mio::Poll`] event loop on the calling thread instead of an async
//! executor: no task per connection, no channels between a socket and the
//! node, no cross-thread wake-ups on the hot path. Every readiness event is
//! turned into node inputs right where it happens, and replies are written
//! into the connection's buffer in the same turn and flushed once per turn.
//!
//! Like every runtime it owns sockets, timers and WebSocket framing and makes
//! no protocol decision: it follows the core's driver contract (feed one
//! input with the current time, drain every output, sleep until
//! `poll_timeout` or the next socket event).
//!
//! ## Layout
//!
//! - [`run`] / `event_loop`: the loop, the node, and the mapping between
//!   socket progress and node inputs / node outputs and socket actions.
//! - `conn`: one connection's state machine: TCP connect, WebSocket
//!   handshake (either side), open, closing, draining.
//! - `upgrade`: WebSocket configuration and subprotocol negotiation, the same
//!   rules as the tokio runtime.
//! - `dial`: outbound URL parsing, name resolution off the loop, non-blocking
//!   connect.
//! - `timer`: per-connection deadlines (handshake, dial, close linger).
//! - monitoring: with `monitoring_enabled` a second listener whose
//!   connections are HTTP only; a plain HTTP request (no
//!   `Upgrade: websocket`) on the client port is answered the same way
//!   (`conn` peeks at the request head and parses it with
//!   `mpreg_core::monitoring::http`), through `Input::Http` /
//!   `Output::HttpReply`.
//! - `dns`: the DNS gateway's UDP socket and TCP listener (same port by
//!   default), length-framed TCP with several queries per connection and an
//!   idle timeout; queries go to the node as `Input::DnsQuery`.
//! - `clock`: core [`mpreg_core::Instant`] ↔ [`std::time::Instant`].
//! - `shutdown` / `signals`: graceful stop from another thread or from
//!   SIGINT / SIGTERM.
//!
//! ## Limits that protect the node
//!
//! - **Backpressure.** Each connection buffers at most
//!   `max(`[`WRITE_BUFFER_BYTES`]`, largest message) + 256 KiB` unsent bytes;
//!   a peer that does not read fast enough to stay below that is disconnected
//!   (and the node told `Closed`) instead of growing memory without bound.
//! - **Slow handshakes.** An inbound connection that has not sent its
//!   request head and finished its WebSocket upgrade within
//!   `connection_handshake_timeout_seconds` is dropped, and the node told
//!   (it counts the hit).
//! - **Unanswered closes.** A connection we closed, or whose peer closed,
//!   is dropped after [`CLOSE_TIMEOUT`] even if the other side never
//!   finishes the closing handshake.
//! - **Fairness.** One connection delivers at most [`READ_BUDGET`] messages
//!   per loop turn before the others get their turn.

mod clock;
mod conn;
mod dial;
mod dns;
mod event_loop;
mod shutdown;
mod signals;
mod stream;
mod timer;
mod upgrade;

use std::time::Duration;

pub use event_loop::{run, run_with, Ready, RunError};
pub use shutdown::Shutdown;

/// The runtime name `mpreg server --runtime` accepts for this crate.
pub const RUNTIME_NAME: &str = "mio";

/// Whether this build can run a node on mio.
pub const AVAILABLE: bool = true;

/// Minimum bound on unsent bytes per connection before it is considered too
/// slow and dropped (raised to the largest message the node may send, so one
/// large reply always fits into an empty buffer).
pub const WRITE_BUFFER_BYTES: usize = 16 << 20;

/// How long a closing connection may take to finish the closing handshake
/// before its socket is dropped anyway.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// After the node stopped, how long the runtime keeps flushing GOODBYEs and
/// close frames before it exits with connections still open.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(2);

/// Messages one connection may deliver to the node in one loop turn.
pub const READ_BUDGET: usize = 64;
