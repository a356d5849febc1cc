//! The fabric: how nodes find each other and share their catalog state.
//!
//! - [`peers`]: per-peer records (STATUS, connections, departures) and the
//!   `list_peers` gating rule.
//! - [`dial`]: which peer URLs to dial and when (seeds first, then every node
//!   descriptor learned from gossip, with exponential backoff).
//! - [`origins`]: the versioned per-origin state store: each node owns its
//!   entries, publishes them at a monotonically increasing version, and every
//!   other node keeps and relays the newest version it has seen.

pub mod dial;
pub mod origins;
pub mod peers;
