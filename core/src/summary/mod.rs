//! Summary export and summary resolvers (`discovery_logic.md` §3–§4).
//!
//! A cluster exports *summaries* of its own function endpoints (one
//! [`ServiceSummary`] per service: endpoint count, health band, latency band,
//! TTL) on MPREG's summary topics; summary resolvers in other clusters and
//! regions cache what they receive and answer region/global `summary_query`
//! from it, so full endpoints never leave their region.
//!
//! Everything here is a pure state machine fed with explicit time:
//! - [`model`]: the wire records (`ServiceSummary`, `DiscoverySummaryMessage`,
//!   topics) with MPREG's field names and omission rules;
//! - [`build`]: summaries from a catalog (export and live query), with health
//!   from real endpoint state;
//! - [`exporter`]: hold-down, explicit withdrawals, export statistics and the
//!   store-and-forward backlog;
//! - [`cache`]: the summary resolver's cache (ingestion, expiry, query,
//!   per-source freshness);
//! - [`flood`]: deduplication of summaries flooded over the fabric;
//! - [`signing`]: signatures on floods (`discovery_summary_signing_secret`);
//! - [`rpc`]: `summary_query` / `summary_watch` and ingress hints.

pub mod build;
pub mod cache;
pub mod exporter;
pub mod flood;
pub mod model;
pub mod rpc;
pub mod signing;

/// RPCs answered by the node from its summary and resolver state (not by
/// the read-only `api::dispatch`).
pub const NODE_RPCS: &[&str] = &[
    "discovery_lag",
    "resolver_cache_stats",
    "resolver_resync",
    "summary_query",
    "summary_watch",
];
