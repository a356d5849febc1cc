//! The discovery RPCs, MPREG-compatible (`reference/client_protocol.md` §3).
//!
//! Handlers are pure functions of a read-only [`Ctx`] and the request
//! payload; they return the JSON value that goes under `r.<name>` or an
//! [`RpcError`] with MPREG's code.

mod catalog_query;
mod peers;
mod request;

use serde_json::Value;

use crate::catalog::store::Catalog;
use crate::config::Settings;
use crate::fabric::replica::Replica;
use crate::fabric::peers::PeerTable;
use crate::node::Identity;
use crate::time::Now;
use crate::wire::client::{RpcCommand, RpcError};
use crate::wire::fabric::Status;

pub use catalog_query::PageToken;

/// The RPCs this node serves; also advertised as its function entries, as a
/// stock MPREG node advertises its registered commands.
pub const RPC_NAMES: &[&str] = &[
    "catalog_query",
    "cluster_map",
    "echo",
    "echos",
    "list_peers",
];

/// Read-only view of the node that handlers answer from.
pub struct Ctx<'a> {
    /// Effective settings.
    pub settings: &'a Settings,
    /// This node.
    pub me: &'a Identity,
    /// The catalog.
    pub catalog: &'a Catalog,
    /// Peer records (STATUS, connections).
    pub peers: &'a PeerTable,
    /// Origin states and departures.
    pub origins: &'a Replica,
    /// This node's own current STATUS (for its own `load`).
    pub own_status: &'a Status,
    /// The time of the request.
    pub now: Now,
}

/// Runs one command.
pub fn dispatch(ctx: &Ctx<'_>, cmd: &RpcCommand) -> Result<Value, RpcError> {
    match cmd.fun.as_str() {
        "echo" => Ok(cmd.args.first().cloned().unwrap_or(Value::Null)),
        "echos" => Ok(Value::Array(cmd.args.clone())),
        "list_peers" => peers::list_peers(ctx, &cmd.payload()?),
        "cluster_map" => Ok(peers::cluster_map(ctx)),
        "catalog_query" => catalog_query::run(ctx, &cmd.payload()?),
        other => Err(RpcError::not_found(other)),
    }
}
