//! Proptest strategies for catalog entries, shared by the entry and store
//! tests.
//!
//! Two flavours: [`pooled_entry`] draws identifiers from tiny pools so
//! random operation sequences collide on keys, names, namespaces and function
//! identities; [`wild_entry`] draws arbitrary strings and finite floats for
//! codec round trips.

use proptest::collection::{btree_map, btree_set, vec};
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::json;

use super::entry::*;
use super::scope::Scope;

pub(crate) fn scope() -> impl Strategy<Value = Scope> {
    select(Scope::ALL.to_vec())
}

fn pick(items: &'static [&'static str]) -> impl Strategy<Value = String> {
    select(items.to_vec()).prop_map(str::to_string)
}

fn tags() -> impl Strategy<Value = Vec<String>> {
    vec(pick(&["t1", "t2", ""]), 0..3)
}

const NODES: &[&str] = &["n1", "n2"];
const CLUSTERS: &[&str] = &["c1", "c2"];
const NAMES: &[&str] = &[
    "a", "a.b", "a.b.c", "a.bc", "ab.x", "b", "a.b.d", "A.b", "A.B",
];
const NAMESPACES: &[&str] = &["", "a", "a.b", "ab", "b.c", "B.c"];

/// Timing drawn from a small grid so staleness and expiry both happen.
fn timing() -> impl Strategy<Value = (f64, f64)> {
    (
        select(vec![0.0, 10.0, 20.0, 30.0]),
        select(vec![0.0, 5.0, 30.0, 30.0, 100.0]),
    )
}

/// An entry of any kind with identifiers from small pools.
pub(crate) fn pooled_entry() -> impl Strategy<Value = Entry> {
    let function = (
        pick(NAMES),
        pick(&["a", "a.b", "x", "y"]),
        pick(&["1.0.0", "10.0.0"]),
        btree_set(pick(&["r1", "r2"]), 0..2),
        option::of(pick(NAMESPACES)),
        option::of(pick(NAMESPACES)),
    )
        .prop_map(|(name, id, version, resources, summary_ns, explicit_ns)| {
            let mut f = FunctionEndpoint::new(FunctionIdentity::new(name, id, version), "", "")
                .with_resources(resources);
            f.rpc_summary = summary_ns.map(|ns| json!({"namespace": ns, "summary": "s"}));
            f.namespace = explicit_ns;
            Entry::from(f)
        });
    let node = Just(()).prop_map(|_| Entry::from(NodeDescriptor::new("", "")));
    let queue = pick(NAMES).prop_map(|q| Entry::from(QueueEndpoint::new(q, "", "")));
    let topic = (
        pick(&["s1", "s2", "s3"]),
        vec(
            pick(&["a.*", "a.b.#", "#", "b", "a.bc.x", "*.q", "a.b"]),
            0..3,
        ),
    )
        .prop_map(|(id, patterns)| Entry::from(TopicSubscription::new(id, "", "", patterns)));
    let service = (
        pick(&["svc", "api"]),
        pick(NAMESPACES),
        pick(&["tcp", "udp"]),
        select(vec![53u16, 80]),
    )
        .prop_map(|(name, ns, proto, port)| {
            Entry::from(ServiceEndpoint::new(name, ns, proto, port))
        });
    let cache = pick(&["coordinator", "replica"])
        .prop_map(|role| Entry::from(CacheRoleEntry::new(role, "", "")));
    let profile = Just(()).prop_map(|_| Entry::from(CacheNodeProfile::new("", "")));
    (
        prop_oneof![function, node, queue, topic, service, cache, profile],
        pick(NODES),
        pick(CLUSTERS),
        scope(),
        tags(),
        timing(),
    )
        .prop_map(|(mut entry, node, cluster, scope, tags, (at, ttl))| {
            set_common(&mut entry, node, cluster, scope, tags, at, ttl);
            entry
        })
}

fn set_common(
    entry: &mut Entry,
    node: String,
    cluster: String,
    scope: Scope,
    tags: Vec<String>,
    at: f64,
    ttl: f64,
) {
    macro_rules! set {
        ($e:expr) => {{
            $e.node_id = node;
            $e.cluster_id = cluster;
            $e.scope = scope;
            $e.tags = tags.into_iter().collect();
            $e.advertised_at = at;
            $e.ttl_seconds = ttl;
        }};
    }
    match entry {
        Entry::Function(e) => set!(e),
        Entry::Node(e) => set!(e),
        Entry::Queue(e) => set!(e),
        Entry::Topic(e) => set!(e),
        Entry::Service(e) => set!(e),
        Entry::Cache(e) => set!(e),
        Entry::CacheProfile(e) => set!(e),
    }
}

fn text() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

/// Which floats the wild strategies draw.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Floats {
    /// Any finite value (CBOR carries every f64 exactly).
    Any,
    /// Values with at most 13 significant decimal digits. serde_json without
    /// its `float_roundtrip` feature may misparse long mantissas by an ulp,
    /// so JSON round trips are tested on these.
    ShortDecimal,
}

fn finite(mode: Floats) -> BoxedStrategy<f64> {
    match mode {
        Floats::Any => prop_oneof![
            -1.0e12..1.0e12f64,
            Just(0.0),
            Just(120.0),
            Just(1_795_519_947.796_850_7)
        ]
        .boxed(),
        Floats::ShortDecimal => prop_oneof![
            (-1_000_000_000_000i64..1_000_000_000_000i64).prop_map(|m| m as f64 / 1000.0),
            Just(0.0),
            Just(120.0),
        ]
        .boxed(),
    }
}

/// A configuration that keeps regression files next to the test source (the
/// catalog owns only its own folder).
pub(crate) fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::WithSource("regressions"),
        )),
        ..ProptestConfig::default()
    }
}

fn json_scalar(mode: Floats) -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        finite(mode).prop_map(serde_json::Value::from),
        text().prop_map(serde_json::Value::from),
    ]
}

fn json_value(mode: Floats) -> impl Strategy<Value = serde_json::Value> {
    json_scalar(mode).prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            btree_map(text(), inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

fn metadata_value(mode: Floats) -> impl Strategy<Value = MetadataValue> {
    prop_oneof![
        any::<bool>().prop_map(MetadataValue::Bool),
        any::<i64>().prop_map(MetadataValue::Int),
        finite(mode).prop_map(MetadataValue::Float),
        text().prop_map(MetadataValue::Text),
    ]
}

fn endpoint() -> impl Strategy<Value = TransportEndpoint> {
    (text(), "[a-z]{1,5}", "[a-z0-9.:-]{1,12}", any::<u16>())
        .prop_map(|(ct, p, h, port)| TransportEndpoint::new(ct, p, h, port))
}

/// An entry with arbitrary strings and finite floats, normalised.
pub(crate) fn wild_entry(mode: Floats) -> impl Strategy<Value = Entry> {
    let set = || btree_set(text(), 0..3);
    let function = (
        (text(), text(), text()),
        set(),
        option::of(json_value(mode)),
        option::of(json_value(mode)),
        option::of(text()),
        option::of(text()),
    )
        .prop_map(|((n, id, v), resources, summary, spec, digest, ns)| {
            let mut f = FunctionEndpoint::new(FunctionIdentity::new(n, id, v), "", "")
                .with_resources(resources);
            f.rpc_summary = summary;
            f.rpc_spec = spec;
            f.spec_digest = digest;
            f.namespace = ns;
            Entry::from(f)
        });
    let node = (set(), set(), vec(endpoint(), 0..3), text()).prop_map(|(r, c, eps, region)| {
        let mut n = NodeDescriptor::new("", "").with_endpoints(eps);
        n.resources = r;
        n.capabilities = c;
        n.region = region;
        Entry::from(n)
    });
    let queue = (
        text(),
        set(),
        select(vec![
            QueueHealth::Healthy,
            QueueHealth::Degraded,
            QueueHealth::Unavailable,
        ]),
        any::<u64>(),
        btree_map(text(), text(), 0..3),
    )
        .prop_map(|(q, g, health, subs, meta)| {
            let mut e = QueueEndpoint::new(q, "", "");
            e.delivery_guarantees = g;
            e.health = health;
            e.current_subscribers = subs;
            e.metadata = meta;
            Entry::from(e)
        });
    let topic = (text(), vec(text(), 0..3))
        .prop_map(|(id, p)| Entry::from(TopicSubscription::new(id, "", "", p)));
    let service = (
        (text(), text(), text(), any::<u16>()),
        set(),
        set(),
        btree_map(text(), metadata_value(mode), 0..3),
        any::<u16>(),
        any::<u16>(),
    )
        .prop_map(|((n, ns, p, port), targets, caps, meta, prio, weight)| {
            let mut s = ServiceEndpoint::new(n, ns, p, port).with_targets(targets);
            s.capabilities = caps;
            s.metadata = meta;
            s.priority = prio;
            s.weight = weight;
            Entry::from(s)
        });
    let cache = text().prop_map(|r| Entry::from(CacheRoleEntry::new(r, "", "")));
    let profile = (
        text(),
        finite(mode),
        finite(mode),
        any::<u64>(),
        (finite(mode), finite(mode), finite(mode)),
    )
        .prop_map(|(region, lat, lon, cap, (u, l, r))| {
            let mut p = CacheNodeProfile::new("", "");
            p.region = region;
            p.coordinates = GeoCoordinates {
                latitude: lat,
                longitude: lon,
            };
            p.capacity_mb = cap;
            p.utilization_percent = u;
            p.avg_latency_ms = l;
            p.reliability_score = r;
            Entry::from(p)
        });
    (
        prop_oneof![function, node, queue, topic, service, cache, profile],
        text(),
        text(),
        scope(),
        vec(text(), 0..3),
        finite(mode),
        finite(mode),
    )
        .prop_map(|(mut entry, node, cluster, scope, tags, at, ttl)| {
            set_common(&mut entry, node, cluster, scope, tags, at, ttl);
            entry.normalize();
            entry
        })
}
