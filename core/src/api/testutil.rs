//! A fake node for handler unit tests: default settings, an identity, a
//! catalog the test fills, an empty peer table and replica.

use std::time::Duration;

use serde_json::{Map, Value};

use super::{dispatch, Ctx};
use crate::catalog::entry::{
    Entry, FunctionEndpoint, FunctionIdentity, NodeDescriptor, QueueEndpoint, ServiceEndpoint,
    TopicSubscription, TransportEndpoint, INTERNAL_CONNECTION,
};
use crate::catalog::scope::Scope;
use crate::catalog::store::Catalog;
use crate::config::Settings;
use crate::fabric::peers::PeerTable;
use crate::fabric::replica::{Replica, ReplicaParams};
use crate::identity::Viewer;
use crate::node::Identity;
use crate::policy::{Access, PolicyEngine};
use crate::time::{Instant, Now};
use crate::wire::client::{RpcCommand, RpcError};
use crate::wire::fabric::{Status, StatusMetrics};

/// This node's id in fixtures.
pub(crate) const ME: &str = "ws://127.0.0.1:7001";
/// This node's cluster in fixtures.
pub(crate) const CLUSTER: &str = "c1";
/// The fixture's wall clock.
pub(crate) const NOW: f64 = 1000.0;

/// Everything a [`Ctx`] borrows.
pub(crate) struct Fixture {
    pub settings: Settings,
    pub me: Identity,
    pub catalog: Catalog,
    pub peers: PeerTable,
    pub origins: Replica,
    pub status: Status,
    pub now: Now,
    /// The policy handlers decide with (disabled unless a test sets one).
    pub policy: PolicyEngine,
    /// The requests' viewer (own cluster, no tenant unless a test sets one).
    pub viewer: Viewer,
}

impl Fixture {
    /// A node `ME` of cluster `CLUSTER` whose catalog holds only its own
    /// descriptor (capability `rpc`, scope zone).
    pub(crate) fn new() -> Fixture {
        let me = Identity {
            node_id: ME.into(),
            cluster_id: CLUSTER.into(),
            instance_id: "01J00000000000000000000000".into(),
            started_at: NOW - 10.0,
        };
        let status = Status {
            node_id: ME.into(),
            cluster_id: CLUSTER.into(),
            instance_id: me.instance_id.clone(),
            timestamp: NOW,
            status: "ok".into(),
            active_clients: 1,
            peer_count: 1,
            funs: vec![],
            locs: vec![],
            advertised_urls: vec![ME.into()],
            region: "local".into(),
            metrics: StatusMetrics::default(),
        };
        let origins = Replica::new(
            ME,
            &me.instance_id,
            me.started_at,
            ReplicaParams {
                horizon: Duration::from_secs(240),
                gossip_interval: Duration::from_secs(1),
                page_bytes: 1 << 20,
                max_gone: 1024,
                max_tombstones: 100_000,
            },
        );
        let mut fx = Fixture {
            settings: Settings::default(),
            me,
            catalog: Catalog::new(),
            peers: PeerTable::default(),
            origins,
            status,
            now: Now::new(Instant::from_nanos(1_000_000_000_000), NOW),
            policy: PolicyEngine::new(false, true, Vec::new())
                .expect("an empty disabled policy is valid"),
            viewer: Viewer::new(CLUSTER, None),
        };
        fx.add(node(ME, CLUSTER).with_scope(Scope::Zone));
        fx
    }

    /// The read-only view handlers get.
    pub(crate) fn ctx(&self) -> Ctx<'_> {
        Ctx {
            settings: &self.settings,
            me: &self.me,
            catalog: &self.catalog,
            peers: &self.peers,
            origins: &self.origins,
            own_status: &self.status,
            now: self.now,
            access: Access::new(&self.policy, &self.viewer, CLUSTER),
        }
    }

    /// Stores an entry (advertised now, TTL 60 s unless it already has a
    /// later `advertised_at`), owned by its node. Panics if refused.
    pub(crate) fn add(&mut self, e: impl Into<Entry>) {
        let mut e: Entry = e.into();
        stamp(&mut e, NOW, 60.0);
        let origin = e.node_id().to_string();
        self.catalog
            .upsert(&origin, e, self.now.wall)
            .expect("fixture entry accepted");
    }

    /// Runs `fun` with `payload` as `args[0]` (none when null).
    pub(crate) fn call(&self, fun: &str, payload: Value) -> Result<Value, RpcError> {
        let cmd = RpcCommand {
            name: fun.into(),
            fun: fun.into(),
            args: if payload.is_null() {
                vec![]
            } else {
                vec![payload]
            },
            kwargs: Map::new(),
            target_cluster: None,
        };
        dispatch(&self.ctx(), &cmd)
    }

    /// [`Fixture::call`] that must succeed.
    pub(crate) fn ok(&self, fun: &str, payload: Value) -> Value {
        match self.call(fun, payload.clone()) {
            Ok(v) => v,
            Err(e) => panic!("{fun}({payload}) failed: {e:?}"),
        }
    }

    /// [`Fixture::call`] that must fail with 1003; returns the details.
    pub(crate) fn err(&self, fun: &str, payload: Value) -> String {
        match self.call(fun, payload.clone()) {
            Ok(v) => panic!("{fun}({payload}) should fail, got {v}"),
            Err(e) => {
                assert_eq!(e.code, 1003, "{e:?}");
                e.details.unwrap_or_default()
            }
        }
    }
}

/// Sets `advertised_at` / `ttl_seconds` of any entry.
pub(crate) fn stamp(e: &mut Entry, at: f64, ttl: f64) {
    let stamped = match e.clone() {
        Entry::Function(f) => f.advertised(at, ttl).into(),
        Entry::Node(n) => n.advertised(at, ttl).into(),
        Entry::Queue(q) => q.advertised(at, ttl).into(),
        Entry::Topic(t) => t.advertised(at, ttl).into(),
        Entry::Service(s) => s.advertised(at, ttl).into(),
        Entry::Cache(c) => c.advertised(at, ttl).into(),
        Entry::CacheProfile(c) => c.advertised(at, ttl).into(),
    };
    *e = stamped;
}

/// A node descriptor with capability `rpc` and one ws endpoint.
pub(crate) fn node(id: &str, cluster: &str) -> NodeDescriptor {
    let mut n = NodeDescriptor::new(id, cluster)
        .with_endpoints(TransportEndpoint::from_url(INTERNAL_CONNECTION, id));
    n.capabilities.insert("rpc".into());
    n.region = "local".into();
    n
}

/// A function endpoint `name` v`version` on `node`.
pub(crate) fn func(name: &str, version: &str, node: &str, cluster: &str) -> FunctionEndpoint {
    FunctionEndpoint::new(FunctionIdentity::new(name, name, version), node, cluster)
}

/// A queue endpoint.
pub(crate) fn queue(name: &str, node: &str, cluster: &str) -> QueueEndpoint {
    QueueEndpoint::new(name, node, cluster)
}

/// A service endpoint.
pub(crate) fn service(
    name: &str,
    ns: &str,
    proto: &str,
    port: u16,
    node: &str,
    cluster: &str,
) -> ServiceEndpoint {
    ServiceEndpoint::new(name, ns, proto, port).owned_by(node, cluster)
}

/// A topic subscription.
pub(crate) fn topic(id: &str, patterns: &[&str], node: &str, cluster: &str) -> TopicSubscription {
    TopicSubscription::new(id, node, cluster, patterns.iter().copied())
}

/// `items[*].<pointer>` as strings.
pub(crate) fn strings(res: &Value, list: &str, pointer: &str) -> Vec<String> {
    res[list]
        .as_array()
        .unwrap_or_else(|| panic!("{list} is not an array: {res}"))
        .iter()
        .map(|it| {
            it.pointer(pointer)
                .and_then(Value::as_str)
                .unwrap_or_else(|| panic!("no {pointer} in {it}"))
                .to_string()
        })
        .collect()
}
