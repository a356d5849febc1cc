//! # mpreg-tokio: the standard runtime
//!
//! Owns the sockets and the clock and nothing else. One driver task holds the
//! [`mpreg_core::Node`]; every connection has a reader task that forwards
//! complete WebSocket messages to the driver and a writer task fed by a
//! bounded queue. The driver follows the core's contract: feed one input,
//! drain every output, sleep until `poll_timeout` or the next input.
//!
//! With `dns_gateway_enabled` the driver also serves the DNS gateway
//! ([`dns`]): UDP and TCP on one port, queries fed to the node as
//! `Input::DnsQuery`, answers written back from `Output::DnsReply`.
//!
//! With `monitoring_enabled` the driver serves the monitoring endpoints
//! (`http`) on their own listener, and a plain HTTP request (no
//! `Upgrade: websocket`) on the client port gets the same answers; the node
//! answers `Input::Http` with `Output::HttpReply`.
//!
//! Backpressure: each connection's write queue holds at most
//! [`WRITE_QUEUE_FRAMES`] messages; a peer that does not read fast enough to
//! keep it below that is disconnected instead of growing the node's memory.

mod conn;
pub mod dns;
mod driver;
mod http;

pub use driver::{run, run_with, Ready, RunError, Shutdown};

/// Frames queued for one connection before it is considered too slow.
pub const WRITE_QUEUE_FRAMES: usize = 4096;
