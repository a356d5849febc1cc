//! The fabric: how nodes find each other and share their catalog state.
//!
//! - [`peers`]: per-peer records (STATUS, connections, departures) and the
//!   `list_peers` gating rule.
//! - [`dial`]: which peer URLs to dial and when (seeds first, then every node
//!   descriptor learned from gossip, with exponential backoff).
//! - [`digest`]: the per-connection incremental digests that carry the
//!   replica's anti-entropy state (origin ids once, then only changes).
//! - [`replica`]: the versioned per-origin state: each node owns its
//!   entries and versions every change; deltas flood, digests repair, and
//!   tombstones keep departed state from coming back.

pub mod auth;
pub mod dial;
pub mod dial_policy;
pub mod digest;
pub mod peers;
pub mod replica;
pub mod traffic;
