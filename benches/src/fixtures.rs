//! Synthetic catalogs for the benches and the memory probe.
//!
//! Shape: `origins` nodes, each advertising `per_origin` entries, half
//! functions and half services, spread over 50 team namespaces with a few
//! sub-namespaces each, tags from a small vocabulary. Every function name
//! maps to one function id (the store enforces that), and is served by
//! several nodes, as a replicated service would be.

use mpreg_core::catalog::{Catalog, Entry, FunctionEndpoint, FunctionIdentity, ServiceEndpoint};
use mpreg_core::wire::fabric::{self, Change, Delta, FabricMsg};
use mpreg_core::{ConnId, ConnKind, Frame, Input, Instant, Node, Now, Settings};

/// Wall clock of every fixture (entries are fresh at this time).
pub const WALL: f64 = 1_700_000_000.0;
/// TTL of fixture entries: long enough that nothing expires during a bench.
pub const TTL: f64 = 86_400.0;
/// Cluster of every fixture entry.
pub const CLUSTER: &str = "bench-cluster";

/// URL of fixture origin `o`.
pub fn origin_url(o: usize) -> String {
    format!(
        "ws://10.{}.{}.{}:6666",
        (o >> 16) & 255,
        (o >> 8) & 255,
        o & 255
    )
}

/// Namespace of the `j`-th entry of origin `o`: `svc.team<T>.app<A>`.
pub fn namespace(o: usize, j: usize) -> String {
    format!("svc.team{}.app{}", (o + j) % 50, j % 4)
}

/// The `j`-th entry of origin `o`: even `j` a function, odd `j` a service.
pub fn entry(o: usize, j: usize, advertised_at: f64) -> Entry {
    let tags = [format!("tier{}", j % 3), format!("shard{}", o % 8)];
    let function = matches!(j % 2, 0);
    if function {
        // A function name is served by 8 origins: origins 8k..8k+7 share
        // their function names, as replicas of one service would.
        let group = o - o % 8;
        let ns = namespace(group, j);
        let name = format!("{ns}.fn{}", (j / 2) + 1000 * (o / 8));
        let mut f = FunctionEndpoint::new(
            FunctionIdentity::new(name.clone(), name, "1.2.3"),
            origin_url(o),
            CLUSTER,
        )
        .with_resources(["cpu", "gpu"].into_iter().take(1 + (j / 2) % 2))
        .advertised(advertised_at, TTL)
        .with_tags(tags);
        f.namespace = Some(ns);
        Entry::Function(f)
    } else {
        let ns = namespace(o, j);
        let s = ServiceEndpoint::new(format!("api{}", j / 2), ns, "tcp", 8000 + (j % 1000) as u16)
            .owned_by(origin_url(o), CLUSTER)
            .with_targets([format!("10.{}.{}.{}", (o >> 8) & 255, o & 255, j % 250)])
            .advertised(advertised_at, TTL)
            .with_tags(tags);
        Entry::Service(s)
    }
}

/// Every entry of origin `o`.
pub fn origin_entries(o: usize, per_origin: usize, advertised_at: f64) -> Vec<Entry> {
    (0..per_origin)
        .map(|j| entry(o, j, advertised_at))
        .collect()
}

/// A catalog of `origins × per_origin` entries, filled through
/// [`Catalog::upsert`].
pub fn catalog(origins: usize, per_origin: usize) -> Catalog {
    let mut c = Catalog::new();
    for o in 0..origins {
        let url = origin_url(o);
        for e in origin_entries(o, per_origin, WALL) {
            c.upsert(&url, e, WALL)
                .unwrap_or_else(|err| panic!("fixture entry rejected: {err}"));
        }
    }
    c
}

/// A flooded delta from origin `o` carrying `entries` as versions
/// `floor+1 ..= floor+len`.
pub fn delta(o: usize, floor: u64, entries: Vec<Entry>, heartbeat: u64) -> Delta {
    let changes: Vec<Change> = entries
        .into_iter()
        .enumerate()
        .map(|(i, e)| Change {
            version: floor + 1 + i as u64,
            key: e.key(),
            entry: Some(e),
        })
        .collect();
    Delta {
        origin: origin_url(o),
        instance_id: format!("01JD3K7Q6Z8T1V2W3X4Y{:06}", o % 1_000_000),
        started_at: WALL - 10.0,
        heartbeat,
        refreshed_at: WALL,
        reset: false,
        floor,
        complete_to: floor + changes.len() as u64,
        changes: changes.iter().collect(),
        flood: true,
    }
}

/// A node whose catalog holds `origins × per_origin` remote entries,
/// delivered the way a peer would: one accepted fabric connection and one
/// delta frame per origin through [`Node::handle`]. Outputs are drained
/// and dropped.
pub fn filled_node(origins: usize, per_origin: usize) -> (Node, Now) {
    let now = Now::new(Instant::ZERO, WALL);
    let settings = Settings {
        port: 7000,
        cluster_id: CLUSTER.into(),
        fabric_catalog_ttl_seconds: TTL,
        ..Settings::default()
    };
    let mut node = Node::new(settings, now, 1).expect("valid settings");
    let conn: ConnId = 1;
    node.handle(
        now,
        Input::Accepted {
            conn,
            kind: ConnKind::Fabric,
            headers: vec![],
            peer_addr: None,
            tls: false,
        },
    );
    while node.poll_output().is_some() {}
    for o in 0..origins {
        let d = delta(o, 0, origin_entries(o, per_origin, WALL), 1);
        let bytes = fabric::encode(&FabricMsg::Delta(d));
        node.handle(
            now,
            Input::Frame {
                conn,
                frame: Frame::Binary(bytes.into()),
            },
        );
        while node.poll_output().is_some() {}
    }
    (node, now)
}

/// The DNS benches' catalog and questions (`benches/dns.rs` and the
/// `dns_cost` binary answer exactly these).
pub mod dns {
    use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
    use hickory_proto::rr::{Name, RecordType};
    use mpreg_core::catalog::{Catalog, Entry, ServiceEndpoint};

    /// Wall clock of the DNS fixture (entries advertised now, TTL 120 s).
    pub const NOW: f64 = 1_700_000_000.0;

    /// One question of the benches: id, name, type, and the answer's code.
    pub struct Case {
        /// Bench id (`dns_answer_<case>`).
        pub id: &'static str,
        /// Question name.
        pub name: &'static str,
        /// Question type.
        pub qtype: RecordType,
        /// Response code of the answer.
        pub rcode: ResponseCode,
    }

    /// SRV with glue, A, and NXDOMAIN with the zone's SOA.
    pub const CASES: [Case; 3] = [
        Case {
            id: "dns_answer_srv_with_glue",
            name: "_svc._tcp.svc42.ns17.mpreg.",
            qtype: RecordType::SRV,
            rcode: ResponseCode::NoError,
        },
        Case {
            id: "dns_answer_a",
            name: "svc42.ns17.mpreg.",
            qtype: RecordType::A,
            rcode: ResponseCode::NoError,
        },
        Case {
            id: "dns_answer_nxdomain_with_soa",
            name: "nothere.ns17.mpreg.",
            qtype: RecordType::A,
            rcode: ResponseCode::NXDomain,
        },
    ];

    /// 10,000 services in 100 namespaces (`svc<S>.ns<N>`, one target each,
    /// cluster `c1`).
    pub fn catalog() -> Catalog {
        let mut c = Catalog::new();
        for ns in 0..100 {
            for s in 0..100 {
                let node = format!("ws://10.0.{ns}.{s}:6000");
                let e = ServiceEndpoint::new(format!("svc{s}"), format!("ns{ns}"), "tcp", 8000)
                    .owned_by(&node, "c1")
                    .with_targets([format!("10.1.{ns}.{s}")])
                    .advertised(NOW, 120.0);
                // Fixture entries are fresh, finite and unique: accepted.
                c.upsert(&node, Entry::from(e), NOW)
                    .expect("fixture entries are valid");
            }
        }
        c
    }

    /// The query bytes of a case (id 7, no EDNS).
    pub fn query(case: &Case) -> Vec<u8> {
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        // The case names are constants of this module, valid names.
        let name = Name::from_ascii(case.name).expect("fixture name");
        m.add_query(Query::query(name, case.qtype));
        // A one-question message always encodes.
        m.to_vec().expect("fixture query encodes")
    }
}
