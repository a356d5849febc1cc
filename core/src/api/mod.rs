//! The discovery RPCs, MPREG-compatible (`reference/client_protocol.md` §3).
//!
//! Handlers are pure functions of a read-only [`Ctx`] and the request
//! payload; they return the JSON value that goes under `r.<name>` or an
//! [`RpcError`] with MPREG's code.

mod catalog_query;
pub mod cluster_map_v2;
mod peers;
pub mod registration;
mod request;
mod rpc_catalog;
pub mod rpc_spec;
#[cfg(test)]
pub(crate) mod testutil;
pub mod version;
pub mod watch;
pub mod watch_delivery;

use serde_json::Value;

use crate::catalog::store::Catalog;
use crate::config::Settings;
use crate::fabric::peers::PeerTable;
use crate::fabric::replica::Replica;
use crate::node::Identity;
use crate::policy::Access;
use crate::time::Now;
use crate::wire::client::{RpcCommand, RpcError};
use crate::wire::fabric::Status;

pub use catalog_query::{clamp_limit, PageToken, DEFAULT_LIMIT, MAX_LIMIT};
pub use peers::list_peers_explained;
pub(crate) use request::Payload;

/// The RPCs this node serves; also advertised as its function entries, as a
/// stock MPREG node advertises its registered commands.
pub const RPC_NAMES: &[&str] = &[
    "catalog_query",
    "catalog_register",
    "catalog_unregister",
    "catalog_watch",
    "cluster_map",
    "cluster_map_v2",
    "dns_describe",
    "dns_list",
    "dns_register",
    "discovery_access_audit",
    "discovery_lag",
    "dns_unregister",
    "echo",
    "echos",
    "list_peers",
    "namespace_policy_apply",
    "namespace_policy_audit",
    "namespace_policy_export",
    "namespace_policy_rollback",
    "namespace_policy_validate",
    "namespace_status",
    "resolver_cache_stats",
    "resolver_resync",
    "rpc_describe",
    "rpc_describe_local",
    "rpc_list",
    "rpc_report",
    "summary_query",
    "summary_watch",
];

/// The policy and audit RPCs: the node answers them itself (they read or
/// change its policy history and access audit), after the same checks as
/// every command.
pub const POLICY_RPCS: &[&str] = &[
    "discovery_access_audit",
    "namespace_policy_apply",
    "namespace_policy_audit",
    "namespace_policy_export",
    "namespace_policy_rollback",
    "namespace_policy_validate",
    "namespace_status",
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
    /// The request's viewer and the policy deciding what it may see:
    /// handlers drop every entry it hides.
    pub access: Access<'a>,
}

/// Runs one read-only command. The mutating RPCs
/// ([`registration::MUTATING`]) are applied by the node itself
/// (`Node::handle` for client connections, `Node::call_mut` in process);
/// here they are a 1003 that says so.
pub fn dispatch(ctx: &Ctx<'_>, cmd: &RpcCommand) -> Result<Value, RpcError> {
    match cmd.fun.as_str() {
        "echo" => Ok(cmd.args.first().cloned().unwrap_or(Value::Null)),
        "echos" => Ok(Value::Array(cmd.args.clone())),
        "list_peers" => peers::list_peers(ctx, &cmd.payload()?),
        "cluster_map" => Ok(peers::cluster_map(ctx)),
        "catalog_query" => catalog_query::run(ctx, &cmd.payload()?),
        "catalog_watch" => watch::run(ctx, &cmd.payload()?),
        "cluster_map_v2" => cluster_map_v2::run(ctx, &cmd.payload()?),
        "rpc_list" => rpc_catalog::rpc_list(ctx, &cmd.payload()?),
        "rpc_describe" => rpc_catalog::rpc_describe(ctx, &cmd.payload()?),
        "rpc_describe_local" => rpc_catalog::rpc_describe_local(ctx, &cmd.payload()?),
        "rpc_report" => rpc_catalog::rpc_report(ctx, &cmd.payload()?),
        "dns_list" | "dns_describe" => registration::dns_list(ctx, &cmd.fun, &cmd.payload()?),
        f if registration::is_mutating(f) => Err(RpcError::failed(format!(
            "{f} changes the node's catalog and is served on client connections only"
        ))),
        f if POLICY_RPCS.contains(&f) => Err(RpcError::failed(format!(
            "{f} is answered by the node from its policy history and audit"
        ))),
        f if crate::summary::NODE_RPCS.contains(&f) => Err(RpcError::failed(format!(
            "{f} is answered by the node from its summary and resolver state"
        ))),
        other => Err(RpcError::not_found(other)),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{json, Map, Value};

    use super::testutil::*;
    use super::*;

    /// Field names every handler reads, so random payloads hit the parsers.
    const KEYS: &[&str] = &[
        "entry_type",
        "namespace",
        "namespace_filter",
        "scope",
        "cluster_id",
        "node_id",
        "capabilities",
        "resources",
        "tags",
        "function_name",
        "function_id",
        "version_constraint",
        "queue_name",
        "service_name",
        "service_protocol",
        "service_port",
        "topic",
        "limit",
        "page_token",
        "query",
        "mode",
        "detail_level",
        "spec_digests",
        "function_names",
        "function_ids",
        "max_nodes",
        "timeout_seconds",
        "viewer_tenant_id",
        "viewer_cluster_id",
    ];

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(|i| json!(i)),
            (-1.0e20f64..1.0e20).prop_map(|f| json!(f)),
            proptest::sample::select(vec![
                "functions",
                "nodes",
                "services",
                "topics",
                "queues",
                "caches",
                "cache_profiles",
                "zone",
                "local",
                "region",
                "global",
                "svc",
                "svc.market.*",
                "*",
                "",
                ">=1.0,<2",
                "==1.2",
                "local",
                "catalog",
                "scatter",
                "summary",
                "k1:1:nodes|c1|x",
                "k1:2:functions|a|a|01|c|n",
                "200:200",
                "#",
                "a.#.b",
            ])
            .prop_map(|s| json!(s)),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(2, 8, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map("[a-z_]{1,8}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    fn payload() -> impl Strategy<Value = Value> {
        proptest::collection::vec((proptest::sample::select(KEYS), json_value()), 0..8).prop_map(
            |pairs| {
                let mut m = Map::new();
                for (k, v) in pairs {
                    m.insert(k.to_string(), v);
                }
                Value::Object(m)
            },
        )
    }

    fn fixture() -> Fixture {
        let mut fx = Fixture::new();
        let mut f = func("svc.market.quote", "1.0.0", ME, CLUSTER).with_tags(["alpha"]);
        rpc_spec::attach_summary(&mut f, Some("Quote."));
        fx.add(f);
        fx.add(node("ws://n2:1", CLUSTER));
        fx.add(queue("svc.market.orders", "ws://n2:1", CLUSTER));
        fx.add(service("api", "svc.market", "tcp", 80, ME, CLUSTER));
        fx.add(topic("t1", &["svc.#"], ME, CLUSTER));
        fx
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// No payload makes a handler panic; every failure is a 1003 with
        /// details.
        #[test]
        fn handlers_never_panic(payload in payload(), args in proptest::option::of(json_value())) {
            let fx = fixture();
            for fun in RPC_NAMES {
                for p in [payload.clone(), args.clone().unwrap_or(Value::Null)] {
                    if let Err(e) = fx.call(fun, p) {
                        prop_assert_eq!(e.code, 1003, "{}: {:?}", fun, e);
                        prop_assert!(e.details.is_some_and(|d| !d.is_empty()));
                    }
                }
            }
        }
    }

    #[test]
    fn every_advertised_rpc_is_dispatched() {
        let fx = fixture();
        for fun in RPC_NAMES {
            if registration::is_mutating(fun)
                || POLICY_RPCS.contains(fun)
                || crate::summary::NODE_RPCS.contains(fun)
            {
                // Applied by the node, not by the read-only dispatch.
                assert_eq!(fx.call(fun, Value::Null).unwrap_err().code, 1003);
                continue;
            }
            let payload = if *fun == "catalog_query" {
                json!({"entry_type": "nodes"})
            } else {
                Value::Null
            };
            fx.ok(fun, payload);
        }
        let err = fx.call("no_such_rpc", Value::Null).unwrap_err();
        assert_eq!(err.code, 1001);
    }
}
