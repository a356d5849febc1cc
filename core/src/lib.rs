//! # mpreg-core: the sans-IO heart of mpreg-rs
//!
//! This crate holds every protocol decision of an mpreg-rs node (catalog,
//! fabric gossip and membership, the MPREG-compatible discovery API, the wire
//! codecs) and none of the I/O. It opens no sockets, reads no clocks, spawns no
//! threads, and draws randomness only from the seed it is given. That is what
//! lets the same [`Node`] run under tokio, under a hand-rolled mio loop, inside a
//! deterministic simulator and under a fuzzer.
//!
//! ## The driver contract
//!
//! A runtime owns the sockets and the clock and drives a node like this:
//!
//! ```no_run
//! use mpreg_core::{Input, Node, Now, Instant, Output, Settings};
//! # fn wall() -> f64 { 0.0 }
//! let now = Now::new(Instant::ZERO, wall());
//! let mut node = Node::new(Settings::default(), now, 42).expect("valid settings");
//! // 1. Feed one input, always with the current time.
//! node.handle(now, Input::Tick);
//! // 2. Drain every output the input produced, until `None`.
//! while let Some(out) = node.poll_output() {
//!     match out {
//!         Output::Send { .. } => { /* write the frame to that connection */ }
//!         Output::Dial { .. } => { /* open an outbound fabric connection */ }
//!         Output::Close { .. } => { /* close that connection with the reason */ }
//!         _ => {}
//!     }
//! }
//! // 3. Sleep until the next deadline (or until I/O arrives), then feed
//! //    `Input::Tick` with the time at which it woke.
//! let _deadline: Option<Instant> = node.poll_timeout();
//! ```
//!
//! Rules the runtime must follow:
//! - **Mutate, then drain.** After every call to [`Node::handle`] the runtime
//!   calls [`Node::poll_output`] until it returns `None`. Outputs are only
//!   produced by `handle`; draining never changes protocol state.
//! - **Time only moves forward.** `now.mono` must be monotonic across calls;
//!   `now.wall` is the Unix wall clock used for wire timestamps and catalog
//!   expiry.
//! - **Deadlines come from `poll_timeout`.** When the returned instant passes,
//!   call `handle(now, Input::Tick)`. The node never needs a tick earlier than
//!   it asked for, and a late tick is harmless.
//! - **Connections are identified by [`ConnId`]s the runtime allocates.** The
//!   runtime reports `Accepted` / `Connected` before any `Frame` of that
//!   connection and `Closed` exactly once after its last frame.
//!
//! - **Persist what the node asks to persist.** [`Output::Persist`] names a
//!   file inside `data_dir`; write it atomically. At start, after
//!   `Node::new` and before accepting connections, feed
//!   [`Input::Restored`] for every name in [`PERSISTED_FILES`] that exists.
//!
//! Input from the network or from clients never panics the node: malformed or
//! oversized frames become an error reply, a close with a reason, and a counter.

pub mod api;
pub mod audit;
pub mod catalog;
pub mod config;
pub mod dns;
pub mod fabric;
pub mod identity;
mod io;
pub mod limits;
mod local;
pub mod monitoring;
mod node;
pub mod policy;
pub mod pubsub;
pub mod ratelimit;
pub mod registry;
pub mod resolver;
mod rng;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod summary;
pub mod time;
pub mod wire;

pub use config::{ConfigError, Settings};
pub use io::{
    CloseReason, Command, ConnId, ConnKind, DnsQueryId, DnsTransport, Event, Frame, HttpId, Input,
    Output, PERSISTED_FILES,
};
pub use node::Node;
pub use time::{Instant, Now};
