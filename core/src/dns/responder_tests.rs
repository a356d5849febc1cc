//! Every name form and conformance rule of the responder, with queries
//! built and replies parsed by hickory-proto. The catalog mirrors the worked
//! example of `dns.md` §4.8.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use proptest::prelude::*;

use super::*;
use crate::catalog::entry::{
    Entry, FunctionEndpoint, FunctionIdentity, MetadataValue, NodeDescriptor, QueueEndpoint,
    ServiceEndpoint, TransportEndpoint,
};
use crate::catalog::scope::Scope;

const NOW: f64 = 1_700_000_000.0;
const N1: &str = "ws://127.0.0.1:10000";
const ME: &str = "ws://127.0.0.1:6666";

fn svc(name: &str, ns: &str, proto: &str, port: u16, targets: &[&str]) -> ServiceEndpoint {
    ServiceEndpoint::new(name, ns, proto, port)
        .owned_by(N1, "c1")
        .with_targets(targets.iter().copied())
        .advertised(NOW, 120.0)
}

fn catalog() -> Catalog {
    let mut c = Catalog::new();
    let mut put = |e: Entry| {
        let origin = e.node_id().to_string();
        c.upsert(&origin, e, NOW).expect("fixture entry accepted");
    };
    let mut tf = svc(
        "tradefeed",
        "market",
        "tcp",
        9000,
        &["10.0.1.13", "10.0.1.12", "fd00::1", "feed.example.net"],
    )
    .with_tags(["primary", "b"]);
    tf.capabilities = ["quotes".to_string()].into_iter().collect();
    tf.metadata = BTreeMap::from([
        ("tier".to_string(), MetadataValue::Text("gold".into())),
        ("n".to_string(), MetadataValue::Int(5)),
        ("flag".to_string(), MetadataValue::Bool(true)),
        ("ratio".to_string(), MetadataValue::Float(1.5)),
    ]);
    tf.priority = 10;
    tf.weight = 5;
    put(tf.into());
    put(svc("tradefeed", "market", "udp", 9001, &["10.0.1.12"])
        .advertised(NOW, 0.4)
        .into());
    // Remaining lifetime 20 s of 120.
    put(svc("aging", "market", "tcp", 1, &["10.9.9.9"])
        .advertised(NOW - 100.0, 120.0)
        .into());
    put(svc("other", "market", "tcp", 2, &["10.2.2.2"])
        .owned_by("ws://10.0.0.2:1", "c2")
        .into());
    put(svc("mine", "local", "tcp", 3, &["10.3.3.3"])
        .owned_by(ME, "c1")
        .with_scope(Scope::Local)
        .into());
    put(svc("theirs", "local", "tcp", 4, &["10.4.4.4"])
        .with_scope(Scope::Local)
        .into());
    put(svc("far", "market", "tcp", 5, &["10.5.5.5"])
        .owned_by("ws://10.0.0.3:1", "c3")
        .with_scope(Scope::Global)
        .into());
    put(svc("vault", "secret", "tcp", 6, &["10.6.6.6"]).into());
    put(svc("MixedCase", "Market.EU", "tcp", 7, &["10.7.7.7"]).into());
    let many: Vec<String> = (0..60)
        .map(|i| format!("host-{i:02}.example.net"))
        .collect();
    put(svc("big", "market", "tcp", 8, &[])
        .with_targets(many.iter().map(String::as_str))
        .into());
    let twelve: Vec<String> = (0..10).map(|i| format!("10.8.0.{i}")).collect();
    put(svc("twelve", "market", "tcp", 9, &[])
        .with_targets(twelve.iter().map(String::as_str))
        .into());
    let mut www = svc("www", "market", "tcp", 80, &["10.10.10.10"]);
    www.metadata.insert(
        "dns_cname".into(),
        MetadataValue::Text("edge.example.net".into()),
    );
    put(www.into());

    let mut n1 = NodeDescriptor::new(N1, "c1")
        .with_endpoints([
            TransportEndpoint::new("internal", "ws", "127.0.0.1", 10000),
            TransportEndpoint::new("internal", "udp", "::1", 10002),
            TransportEndpoint::new("internal", "quic", "h.example", 10003),
        ])
        .with_tags(["t"])
        .advertised(NOW, 120.0);
    n1.capabilities = ["rpc".to_string(), "queue".to_string()]
        .into_iter()
        .collect();
    put(n1.into());
    put(NodeDescriptor::new("node-1", "c1")
        .with_endpoints([TransportEndpoint::new("internal", "tcp", "192.0.2.7", 7000)])
        .advertised(NOW, 5.0)
        .into());
    let mut echo = FunctionEndpoint::new(FunctionIdentity::new("echo", "echo", "1.0.0"), N1, "c1")
        .with_tags(["x"])
        .advertised(NOW, 120.0);
    echo.spec_digest = Some("abc".into());
    put(echo.into());
    put(FunctionEndpoint::new(
        FunctionIdentity::new("market.quotes.get", "market.quotes.get", "1.0.0"),
        N1,
        "c1",
    )
    .advertised(NOW, 120.0)
    .into());
    put(QueueEndpoint::new("market.orders", N1, "c1")
        .with_tags(["q"])
        .advertised(NOW, 120.0)
        .into());
    put(QueueEndpoint::new("jobs", N1, "c1")
        .advertised(NOW, 120.0)
        .into());
    c
}

fn config() -> DnsConfig {
    let s = crate::config::Settings {
        cluster_id: "c1".into(),
        ..Default::default()
    };
    DnsConfig::from_settings(&s, ME)
}

fn viewer(cluster: &str) -> Viewer {
    Viewer::new(cluster, None)
}

fn query_msg(name: &str, qtype: RecordType) -> Message {
    let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m
}

fn query(name: &str, qtype: RecordType) -> Vec<u8> {
    query_msg(name, qtype).to_vec().unwrap()
}

fn with_edns(name: &str, qtype: RecordType, size: u16) -> Vec<u8> {
    let mut m = query_msg(name, qtype);
    let mut e = Edns::new();
    e.set_max_payload(size);
    m.set_edns(e);
    m.to_vec().unwrap()
}

struct Fx {
    catalog: Catalog,
    cfg: DnsConfig,
}

impl Fx {
    fn new() -> Fx {
        Fx {
            catalog: catalog(),
            cfg: config(),
        }
    }

    fn raw(&self, bytes: &[u8], transport: DnsTransport, v: &Viewer) -> Reply {
        // Policy hides the namespace `secret` (services by namespace,
        // functions and queues by full name).
        let deny_secret = |e: &Entry| match e {
            Entry::Service(s) => s.namespace != "secret",
            Entry::Function(f) => f.identity.name != "secret",
            Entry::Queue(q) => q.queue_name != "secret",
            _ => true,
        };
        respond(
            bytes,
            transport,
            v,
            &self.catalog,
            &self.cfg,
            NOW,
            &deny_secret,
        )
    }

    fn bytes(&self, bytes: &[u8], transport: DnsTransport) -> Message {
        let r = self.raw(bytes, transport, &viewer("c1"));
        Message::from_vec(&r.bytes.expect("a reply")).expect("reply parses")
    }

    fn ask(&self, name: &str, qtype: RecordType) -> Message {
        self.bytes(&query(name, qtype), DnsTransport::Udp)
    }

    fn ask_as(&self, name: &str, qtype: RecordType, v: &Viewer) -> Message {
        let r = self.raw(&query(name, qtype), DnsTransport::Udp, v);
        Message::from_vec(&r.bytes.expect("a reply")).expect("reply parses")
    }
}

fn rcode(m: &Message) -> ResponseCode {
    m.metadata.response_code
}

fn data(records: &[Record]) -> Vec<String> {
    records.iter().map(|r| r.data.to_string()).collect()
}

fn of_type(m: &Message, t: RecordType) -> Vec<String> {
    let rs: Vec<Record> = m
        .answers
        .iter()
        .filter(|r| r.record_type() == t)
        .cloned()
        .collect();
    data(&rs)
}

fn txts(m: &Message) -> Vec<String> {
    of_type(m, RecordType::TXT)
        .into_iter()
        .map(|t| t.trim_matches('"').to_string())
        .collect()
}

/// NXDOMAIN / NODATA carry the zone SOA (negative TTL = SOA minimum).
fn assert_negative(m: &Message, want: ResponseCode) {
    assert_eq!(rcode(m), want, "{m}");
    assert!(m.answers.is_empty(), "{m}");
    assert_eq!(m.authorities.len(), 1, "{m}");
    let soa = &m.authorities[0];
    assert_eq!(soa.record_type(), RecordType::SOA);
    assert_eq!(soa.name.to_ascii(), "mpreg.");
    let RData::SOA(s) = &soa.data else {
        panic!("not SOA")
    };
    assert_eq!(s.minimum, 1);
    assert_eq!(soa.ttl, 1);
    assert_eq!(s.mname.to_ascii(), "ns.mpreg.");
    assert_eq!(s.rname.to_ascii(), "hostmaster.mpreg.");
}

fn assert_flags(m: &Message, aa: bool) {
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert_eq!(m.metadata.id, 0x1234);
    assert_eq!(m.metadata.authoritative, aa, "{m}");
    assert!(!m.metadata.recursion_available);
    assert!(!m.metadata.authentic_data);
    assert!(m.metadata.recursion_desired);
    assert_eq!(m.queries.len(), 1);
}

#[test]
fn service_srv_with_in_zone_targets_and_glue() {
    let fx = Fx::new();
    let m = fx.ask("_svc._tcp.tradefeed.market.mpreg.", RecordType::SRV);
    assert_flags(&m, true);
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert_eq!(
        of_type(&m, RecordType::SRV),
        [
            "10 5 9000 10-0-1-12.addr.mpreg.",
            "10 5 9000 10-0-1-13.addr.mpreg.",
            "10 5 9000 fd00--1.addr.mpreg.",
            "10 5 9000 feed.example.net.",
        ]
    );
    assert!(m
        .answers
        .iter()
        .all(|r| r.ttl == 60 && r.dns_class == DNSClass::IN));
    let glue: Vec<(String, String)> = m
        .additionals
        .iter()
        .map(|r| (r.name.to_ascii(), r.data.to_string()))
        .collect();
    assert_eq!(
        glue,
        [
            ("10-0-1-12.addr.mpreg.".to_string(), "10.0.1.12".to_string()),
            ("10-0-1-13.addr.mpreg.".to_string(), "10.0.1.13".to_string()),
            ("fd00--1.addr.mpreg.".to_string(), "fd00::1".to_string()),
        ]
    );
    assert!(m.authorities.is_empty());
    // The synthetic target names resolve.
    let a = fx.ask("10-0-1-12.addr.mpreg.", RecordType::A);
    assert_eq!(of_type(&a, RecordType::A), ["10.0.1.12"]);
    let aaaa = fx.ask("fd00--1.addr.mpreg.", RecordType::AAAA);
    assert_eq!(of_type(&aaaa, RecordType::AAAA), ["fd00::1"]);
    assert_negative(
        &fx.ask("fd00--1.addr.mpreg.", RecordType::A),
        ResponseCode::NoError,
    );
}

#[test]
fn underscore_form_filters_by_protocol() {
    let fx = Fx::new();
    let m = fx.ask("_svc._tcp.tradefeed.market.mpreg.", RecordType::A);
    assert_eq!(of_type(&m, RecordType::A), ["10.0.1.12", "10.0.1.13"]);
    let m = fx.ask("_svc._udp.tradefeed.market.mpreg.", RecordType::SRV);
    assert_eq!(
        of_type(&m, RecordType::SRV),
        ["0 0 9001 10-0-1-12.addr.mpreg."]
    );
    assert_eq!(m.answers[0].ttl, 1, "0.4 s clamps up to 1");
    // Unknown protocol: the service exists, no records (NODATA).
    assert_negative(
        &fx.ask("_svc._quic.tradefeed.market.mpreg.", RecordType::SRV),
        ResponseCode::NoError,
    );
    // Empty namespace matches every namespace.
    let m = fx.ask("_svc._tcp.tradefeed.mpreg.", RecordType::SRV);
    assert_eq!(of_type(&m, RecordType::SRV).len(), 4);
}

#[test]
fn plain_form_addresses_one_ttl_per_rrset_no_duplicates() {
    let fx = Fx::new();
    let m = fx.ask("tradefeed.market.mpreg.", RecordType::A);
    // 10.0.1.12 is a target of both endpoints: once, and the set's TTL is
    // the minimum (1 s from the udp endpoint).
    assert_eq!(of_type(&m, RecordType::A), ["10.0.1.12", "10.0.1.13"]);
    assert!(m.answers.iter().all(|r| r.ttl == 1));
    let m = fx.ask("tradefeed.market.mpreg.", RecordType::AAAA);
    assert_eq!(of_type(&m, RecordType::AAAA), ["fd00::1"]);
    assert_negative(
        &fx.ask("tradefeed.market.mpreg.", RecordType::SRV),
        ResponseCode::NoError,
    );
    assert_negative(
        &fx.ask("tradefeed.market.mpreg.", RecordType::MX),
        ResponseCode::NoError,
    );
    assert_negative(
        &fx.ask("nothere.market.mpreg.", RecordType::A),
        ResponseCode::NXDomain,
    );
}

#[test]
fn txt_layout_is_mpregs() {
    let fx = Fx::new();
    let m = fx.ask("_svc._tcp.tradefeed.market.mpreg.", RecordType::TXT);
    assert_eq!(
        txts(&m),
        [
            "namespace=market",
            "cluster_id=c1",
            "node_id=ws://127.0.0.1:10000",
            "tags=b,primary",
            "capabilities=quotes",
            "flag=True",
            "n=5",
            "ratio=1.5",
            "tier=gold",
        ]
    );
    // The plain name: both endpoints' sets, duplicates once.
    let m = fx.ask("tradefeed.market.mpreg.", RecordType::TXT);
    assert_eq!(txts(&m).len(), 9);
}

#[test]
fn any_answers_every_rrset_grouped() {
    let fx = Fx::new();
    let m = fx.ask("_svc._tcp.tradefeed.market.mpreg.", RecordType::ANY);
    let types: Vec<RecordType> = m.answers.iter().map(Record::record_type).collect();
    let mut grouped = types.clone();
    grouped.dedup();
    assert_eq!(
        grouped,
        [
            RecordType::SRV,
            RecordType::A,
            RecordType::AAAA,
            RecordType::TXT
        ]
    );
    assert_eq!(types.len(), 4 + 2 + 1 + 9);
}

#[test]
fn functions_and_queues() {
    let fx = Fx::new();
    let m = fx.ask("_mpreg._tcp.echo.mpreg.", RecordType::ANY);
    assert_eq!(
        of_type(&m, RecordType::SRV),
        ["0 0 10000 127-0-0-1.addr.mpreg."]
    );
    assert_eq!(of_type(&m, RecordType::A), ["127.0.0.1"]);
    assert_eq!(
        txts(&m),
        [
            "cluster_id=c1",
            "node_id=ws://127.0.0.1:10000",
            "tags=x",
            "spec_digest=abc"
        ]
    );
    // Namespace then function label: market.quotes.get.
    let m = fx.ask("_mpreg._tcp.get.market.quotes.mpreg.", RecordType::SRV);
    assert_eq!(of_type(&m, RecordType::SRV).len(), 1);
    let m = fx.ask("_mpreg._udp.get.market.quotes.mpreg.", RecordType::SRV);
    assert_eq!(of_type(&m, RecordType::SRV), ["0 0 10002 0--1.addr.mpreg."]);
    let m = fx.ask("_mpreg._quic.get.market.quotes.mpreg.", RecordType::SRV);
    assert_eq!(of_type(&m, RecordType::SRV), ["0 0 10003 h.example."]);
    assert_negative(
        &fx.ask("_mpreg._tcp.nothing.mpreg.", RecordType::SRV),
        ResponseCode::NXDomain,
    );
    // Queues: `<ns>.<queue>`; TXT namespace is the DNS namespace, or the
    // queue name when there is none.
    let m = fx.ask("_queue._tcp.orders.market.mpreg.", RecordType::ANY);
    assert_eq!(
        of_type(&m, RecordType::SRV),
        ["0 0 10000 127-0-0-1.addr.mpreg."]
    );
    assert_eq!(txts(&m)[0], "namespace=market");
    assert!(txts(&m).contains(&"tags=q".to_string()));
    let m = fx.ask("_queue._tcp.jobs.mpreg.", RecordType::TXT);
    assert_eq!(txts(&m)[0], "namespace=jobs");
}

#[test]
fn node_names() {
    let fx = Fx::new();
    let label = encode_node_id(N1).unwrap();
    let m = fx.ask(&format!("{label}.node.mpreg."), RecordType::ANY);
    assert_eq!(of_type(&m, RecordType::A), ["127.0.0.1"]);
    assert_eq!(of_type(&m, RecordType::AAAA), ["::1"]);
    assert_eq!(
        txts(&m),
        [
            "cluster_id=c1",
            "node_id=ws://127.0.0.1:10000",
            "tags=t",
            "capabilities=queue,rpc"
        ]
    );
    assert!(of_type(&m, RecordType::SRV).is_empty());
    // Upper-case b32 label (0x20) still decodes.
    let m = fx.ask(
        &format!("{}.NODE.mpreg.", label.to_uppercase()),
        RecordType::A,
    );
    assert_eq!(of_type(&m, RecordType::A), ["127.0.0.1"]);
    let m = fx.ask("node-1.node.mpreg.", RecordType::A);
    assert_eq!(of_type(&m, RecordType::A), ["192.0.2.7"]);
    assert_eq!(m.answers[0].ttl, 5);
    assert_negative(
        &fx.ask("node-1.node.mpreg.", RecordType::SRV),
        ResponseCode::NoError,
    );
    assert_negative(
        &fx.ask("bad_label.node.mpreg.", RecordType::A),
        ResponseCode::NXDomain,
    );
    assert_negative(
        &fx.ask("node-2.node.mpreg.", RecordType::A),
        ResponseCode::NXDomain,
    );
}

#[test]
fn apex_soa_ns_and_nameserver() {
    let fx = Fx::new();
    let m = fx.ask("mpreg.", RecordType::SOA);
    assert_eq!(rcode(&m), ResponseCode::NoError);
    assert_eq!(of_type(&m, RecordType::SOA).len(), 1);
    let m = fx.ask("MPREG.", RecordType::NS);
    assert_eq!(of_type(&m, RecordType::NS), ["ns.MPREG."]);
    assert_eq!(data(&m.additionals), ["127.0.0.1"]);
    assert_negative(&fx.ask("mpreg.", RecordType::A), ResponseCode::NoError);
    let m = fx.ask("mpreg.", RecordType::ANY);
    assert_eq!(m.answers.len(), 2);
    let m = fx.ask("ns.mpreg.", RecordType::A);
    assert_eq!(of_type(&m, RecordType::A), ["127.0.0.1"]);
}

#[test]
fn outside_the_zones_is_refused_unless_external_names() {
    let mut fx = Fx::new();
    let m = fx.ask("_svc._tcp.tradefeed.market.", RecordType::SRV);
    assert_flags(&m, false);
    assert_eq!(rcode(&m), ResponseCode::Refused);
    assert!(m.answers.is_empty() && m.authorities.is_empty());
    let m = fx.ask("www.example.com.", RecordType::A);
    assert_eq!(rcode(&m), ResponseCode::Refused);
    fx.cfg.allow_external_names = true;
    let m = fx.ask("_svc._tcp.tradefeed.market.", RecordType::SRV);
    assert_flags(&m, true);
    assert_eq!(rcode(&m), ResponseCode::NoError);
    // No zone to put host names in: IP targets stay pseudo-names (MPREG).
    assert!(of_type(&m, RecordType::SRV).contains(&"10 5 9000 10.0.1.12.".to_string()));
    let m = fx.ask("www.example.com.", RecordType::A);
    assert_eq!(rcode(&m), ResponseCode::NXDomain);
    assert!(m.authorities.is_empty(), "no zone, no SOA");
    // In-zone names still get the zone treatment.
    assert_negative(
        &fx.ask("nothere.mpreg.", RecordType::A),
        ResponseCode::NXDomain,
    );
}

#[test]
fn longest_zone_wins() {
    let mut fx = Fx::new();
    fx.cfg.zones = names::parse_zones(&["mpreg", "market.mpreg"]);
    // Relative to `market.mpreg`, `tradefeed` is a service in no namespace
    // (every namespace).
    let m = fx.ask("tradefeed.market.mpreg.", RecordType::A);
    assert_eq!(of_type(&m, RecordType::A), ["10.0.1.12", "10.0.1.13"]);
    let m = fx.ask("market.mpreg.", RecordType::SOA);
    assert_eq!(m.answers[0].name.to_ascii(), "market.mpreg.");
}

/// Upper case below the apex leaves the zone's own spelling for the SOA.
#[test]
fn upper_case_below_the_apex_keeps_the_zones_names() {
    let fx = Fx::new();
    let m = fx.ask("NotHere.mpreg.", RecordType::A);
    assert_negative(&m, ResponseCode::NXDomain);
    let m = fx.ask("X.Y.mpreg.", RecordType::SOA);
    assert_negative(&m, ResponseCode::NXDomain);
}

/// More labels than are split inline (16), up to the most a name can hold
/// (124 one-letter labels and the zone: 255 bytes on the wire).
#[test]
fn long_names_are_answered() {
    let fx = Fx::new();
    for count in [16, 17, 40, 124] {
        for label in ["a", "A"] {
            let name = format!("{}mpreg.", format!("{label}.").repeat(count));
            let m = fx.ask(&name, RecordType::A);
            assert_negative(&m, ResponseCode::NXDomain);
            assert_eq!(m.queries[0].name().num_labels() as usize, count + 1);
        }
    }
    // Below an existing namespace too.
    let name = format!("{}market.mpreg.", "x.".repeat(30));
    assert_negative(&fx.ask(&name, RecordType::A), ResponseCode::NXDomain);
}

/// Labels that are not UTF-8 exist nowhere in the catalog, but the zone
/// still matches when its own labels are readable.
#[test]
fn labels_that_are_not_utf8() {
    let fx = Fx::new();
    let ask = |labels: &[&[u8]]| {
        let name = Name::from_labels(labels.iter().copied()).expect("a name");
        let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(name, RecordType::A));
        fx.bytes(&m.to_vec().expect("encodes"), DnsTransport::Udp)
    };
    // Under the zone: NXDOMAIN with the SOA.
    assert_negative(
        &ask(&[b"\xff", b"market", b"mpreg"]),
        ResponseCode::NXDomain,
    );
    // `é` split across two labels: neither label is UTF-8 on its own.
    assert_negative(&ask(&[b"\xc3", b"\xa9", b"mpreg"]), ResponseCode::NXDomain);
    // In place of the zone: not ours.
    assert_eq!(rcode(&ask(&[b"tradefeed", b"\xff"])), ResponseCode::Refused);
}

#[test]
fn case_insensitive_matching_case_preserving_answers() {
    let fx = Fx::new();
    let qname = "_SVC._TCP.TradeFeed.MARKET.MPREG.";
    let m = fx.ask(qname, RecordType::SRV);
    assert_eq!(of_type(&m, RecordType::SRV).len(), 4);
    let want = Name::from_ascii(qname).unwrap();
    assert!(m.queries[0].name().eq_case(&want));
    for r in &m.answers {
        assert!(r.name.eq_case(&want), "{}", r.name);
    }
    // Catalog names with upper-case letters resolve too (MPREG: never).
    let m = fx.ask("mixedcase.market.eu.mpreg.", RecordType::A);
    assert_eq!(of_type(&m, RecordType::A), ["10.7.7.7"]);
}

#[test]
fn empty_non_terminals_are_nodata_not_nxdomain() {
    let fx = Fx::new();
    for name in [
        "market.mpreg.",
        "_tcp.tradefeed.market.mpreg.",
        "node.mpreg.",
        "addr.mpreg.",
        "quotes.mpreg.",
        "market.quotes.mpreg.",
        "get.market.quotes.mpreg.",
        "_tcp.echo.mpreg.",
        "eu.mpreg.",
    ] {
        assert_negative(&fx.ask(name, RecordType::A), ResponseCode::NoError);
    }
    for name in [
        "zzz.mpreg.",
        "arket.mpreg.",
        "x.market.mpreg.",
        "_svc._tcp.nope.market.mpreg.",
        // A literal `*` label is a name like any other: the SOA is still
        // the zone's.
        "*.x.mpreg.",
        "*.mpreg.",
    ] {
        assert_negative(&fx.ask(name, RecordType::A), ResponseCode::NXDomain);
    }
}

#[test]
fn scope_applies_to_every_answer() {
    let fx = Fx::new();
    // zone entry of cluster c2: only c2 viewers see it.
    assert_negative(
        &fx.ask("other.market.mpreg.", RecordType::A),
        ResponseCode::NXDomain,
    );
    let m = fx.ask_as("other.market.mpreg.", RecordType::A, &viewer("c2"));
    assert_eq!(of_type(&m, RecordType::A), ["10.2.2.2"]);
    // c2 does not see c1's zone entries.
    assert_negative(
        &fx.ask_as("tradefeed.market.mpreg.", RecordType::A, &viewer("c2")),
        ResponseCode::NXDomain,
    );
    // global: everyone.
    let m = fx.ask("far.market.mpreg.", RecordType::A);
    assert_eq!(of_type(&m, RecordType::A), ["10.5.5.5"]);
    // local: only this node's own.
    let m = fx.ask("mine.local.mpreg.", RecordType::A);
    assert_eq!(of_type(&m, RecordType::A), ["10.3.3.3"]);
    assert_negative(
        &fx.ask("theirs.local.mpreg.", RecordType::A),
        ResponseCode::NXDomain,
    );
    // Nodes follow the same rule.
    assert_negative(
        &fx.ask_as("node-1.node.mpreg.", RecordType::A, &viewer("c2")),
        ResponseCode::NXDomain,
    );
}

#[test]
fn policy_hides_namespaces_without_leaking_them() {
    let fx = Fx::new();
    assert_negative(
        &fx.ask("vault.secret.mpreg.", RecordType::A),
        ResponseCode::NXDomain,
    );
    assert_negative(
        &fx.ask("secret.mpreg.", RecordType::A),
        ResponseCode::NXDomain,
    );
    assert_negative(
        &fx.ask("_svc._tcp.vault.secret.mpreg.", RecordType::SRV),
        ResponseCode::NXDomain,
    );
}

#[test]
fn ttl_is_the_remaining_lifetime_clamped() {
    let fx = Fx::new();
    let m = fx.ask("aging.market.mpreg.", RecordType::A);
    assert_eq!(m.answers[0].ttl, 20);
    // Expired entries do not exist.
    let r = respond(
        &query("aging.market.mpreg.", RecordType::A),
        DnsTransport::Udp,
        &viewer("c1"),
        &fx.catalog,
        &fx.cfg,
        NOW + 21.0,
        &|_| true,
    );
    assert_eq!(r.rcode, Some(ResponseCode::NXDomain));
}

#[test]
fn cname_for_aliases() {
    let fx = Fx::new();
    for t in [
        RecordType::A,
        RecordType::TXT,
        RecordType::CNAME,
        RecordType::ANY,
    ] {
        let m = fx.ask("www.market.mpreg.", t);
        assert_eq!(rcode(&m), ResponseCode::NoError);
        assert_eq!(of_type(&m, RecordType::CNAME), ["edge.example.net."], "{t}");
        assert_eq!(m.answers.len(), 1, "a CNAME stands alone");
    }
    // The SRV form is not an alias.
    let m = fx.ask("_svc._tcp.www.market.mpreg.", RecordType::SRV);
    assert_eq!(of_type(&m, RecordType::SRV).len(), 1);
}

#[test]
fn malformed_queries_get_formerr() {
    let fx = Fx::new();
    let check = |bytes: &[u8]| {
        let m = fx.bytes(bytes, DnsTransport::Udp);
        assert_eq!(rcode(&m), ResponseCode::FormErr);
        assert_eq!(m.metadata.id, u16::from_be_bytes([bytes[0], bytes[1]]));
        assert_eq!(m.metadata.message_type, MessageType::Response);
    };
    // Truncated question.
    let q = query("tradefeed.market.mpreg.", RecordType::A);
    check(&q[..q.len() - 3]);
    // QDCOUNT 0.
    let mut m = Message::new(7, MessageType::Query, OpCode::Query);
    check(&m.to_vec().unwrap());
    // QDCOUNT 2.
    m.add_query(Query::query(
        Name::from_ascii("a.mpreg.").unwrap(),
        RecordType::A,
    ));
    m.add_query(Query::query(
        Name::from_ascii("b.mpreg.").unwrap(),
        RecordType::A,
    ));
    check(&m.to_vec().unwrap());
    // Two OPT records: append a second raw OPT and bump ARCOUNT.
    let mut q = with_edns("a.mpreg.", RecordType::A, 1232);
    q.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
    q[11] = 2;
    check(&q);
    // QTYPE OPT.
    check(&query("a.mpreg.", RecordType::OPT));
    // Too short for a header, or a response: no reply at all.
    assert_eq!(
        fx.raw(&q[..11], DnsTransport::Udp, &viewer("c1")).bytes,
        None
    );
    let mut resp = query("a.mpreg.", RecordType::A);
    resp[2] |= 0x80;
    assert_eq!(fx.raw(&resp, DnsTransport::Udp, &viewer("c1")).bytes, None);
}

#[test]
fn other_opcodes_get_notimp() {
    let fx = Fx::new();
    for op in [1u8, 2, 4, 5, 6, 15] {
        let mut q = query("tradefeed.market.mpreg.", RecordType::A);
        q[2] = (q[2] & 0x87) | (op << 3);
        let m = fx.bytes(&q, DnsTransport::Udp);
        assert_eq!(rcode(&m), ResponseCode::NotImp, "opcode {op}");
        assert_eq!(u8::from(m.metadata.op_code), op);
        assert_eq!(m.metadata.id, 0x1234);
    }
}

#[test]
fn classes_and_zone_transfers() {
    let fx = Fx::new();
    let mut m = query_msg("tradefeed.market.mpreg.", RecordType::A);
    m.queries[0].set_query_class(DNSClass::CH);
    let r = fx.bytes(&m.to_vec().unwrap(), DnsTransport::Udp);
    assert_eq!(rcode(&r), ResponseCode::Refused);
    m.queries[0].set_query_class(DNSClass::ANY);
    let r = fx.bytes(&m.to_vec().unwrap(), DnsTransport::Udp);
    assert_eq!(of_type(&r, RecordType::A).len(), 2);
    for t in [RecordType::AXFR, RecordType::IXFR] {
        let r = fx.bytes(&query("mpreg.", t), DnsTransport::Tcp);
        assert_eq!(rcode(&r), ResponseCode::Refused);
    }
}

#[test]
fn edns_is_negotiated_and_echoed() {
    let fx = Fx::new();
    let m = fx.ask("tradefeed.market.mpreg.", RecordType::A);
    assert!(m.edns.is_none(), "no OPT without one in the query");
    let mut q = query_msg("tradefeed.market.mpreg.", RecordType::A);
    let mut e = Edns::new();
    e.set_max_payload(4096);
    e.set_dnssec_ok(true);
    q.set_edns(e);
    let m = fx.bytes(&q.to_vec().unwrap(), DnsTransport::Udp);
    let edns = m.edns.as_ref().expect("OPT echoed");
    assert_eq!(edns.max_payload(), 1232);
    assert_eq!(edns.version(), 0);
    assert!(edns.flags().dnssec_ok, "DO copied");
    assert_eq!(of_type(&m, RecordType::A).len(), 2);
    // Version 1: BADVERS (extended rcode 16 through the OPT).
    let mut e = Edns::new();
    e.set_version(1);
    q.set_edns(e);
    let m = fx.bytes(&q.to_vec().unwrap(), DnsTransport::Udp);
    assert_eq!(u16::from(rcode(&m)), 16);
    assert_eq!(m.edns.as_ref().map(Edns::version), Some(0));
    // The CD bit is copied.
    let mut raw = query("tradefeed.market.mpreg.", RecordType::A);
    raw[3] |= 0x10 | 0x20; // CD and AD
    let m = fx.bytes(&raw, DnsTransport::Udp);
    assert!(m.metadata.checking_disabled);
    assert!(!m.metadata.authentic_data);
}

#[test]
fn truncation_and_size_limits() {
    let fx = Fx::new();
    let name = "_svc._tcp.big.market.mpreg.";
    // 60 SRV records do not fit 512 bytes: empty answer with TC=1.
    let r = fx.raw(
        &query(name, RecordType::SRV),
        DnsTransport::Udp,
        &viewer("c1"),
    );
    assert!(r.truncated);
    let bytes = r.bytes.unwrap();
    assert!(bytes.len() <= 512);
    let m = Message::from_vec(&bytes).unwrap();
    assert!(m.metadata.truncation);
    assert!(m.answers.is_empty());
    assert_eq!(rcode(&m), ResponseCode::NoError);
    // Nor 1232 (EDNS asks 4096, capped).
    let r = fx.raw(
        &with_edns(name, RecordType::SRV, 4096),
        DnsTransport::Udp,
        &viewer("c1"),
    );
    assert!(r.truncated);
    assert!(r.bytes.unwrap().len() <= 1232);
    // With a bigger cap it fits.
    let mut big = Fx::new();
    big.cfg.max_udp_payload = 4096;
    let r = big.raw(
        &with_edns(name, RecordType::SRV, 4096),
        DnsTransport::Udp,
        &viewer("c1"),
    );
    assert!(!r.truncated);
    assert_eq!(r.answers, 60);
    // TCP: everything.
    let m = fx.bytes(&query(name, RecordType::SRV), DnsTransport::Tcp);
    assert!(!m.metadata.truncation);
    assert_eq!(of_type(&m, RecordType::SRV).len(), 60);
    // Ten IP targets: the SRV set fits 512 bytes, the glue does not;
    // the glue is dropped, no TC.
    let r = fx.raw(
        &query("_svc._tcp.twelve.market.mpreg.", RecordType::SRV),
        DnsTransport::Udp,
        &viewer("c1"),
    );
    let m = Message::from_vec(&r.bytes.unwrap()).unwrap();
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 10);
    assert!(m.additionals.is_empty());
    let m = fx.bytes(
        &query("_svc._tcp.twelve.market.mpreg.", RecordType::SRV),
        DnsTransport::Tcp,
    );
    assert_eq!(m.additionals.len(), 10);
}

#[test]
fn gateway_rate_limits_per_source_and_picks_views() {
    let mut cfg = config();
    cfg.rate_limit = RateLimitConfig {
        queries_per_second: 1.0,
        burst: 2.0,
        max_sources: 16,
    };
    cfg.views = vec![DnsView {
        network: Cidr::parse("10.2.0.0/16").unwrap(),
        cluster_id: Some("c2".into()),
        tenant_id: None,
    }];
    let mut gw = Gateway::new(cfg, 0);
    let cat = catalog();
    let src: SocketAddr = "192.0.2.1:5353".parse().unwrap();
    let q = query("tradefeed.market.mpreg.", RecordType::A);
    let all = |_: &Viewer, _: &Entry| true;
    let t0 = crate::time::Instant::ZERO;
    for _ in 0..2 {
        let r = gw.handle(t0, NOW, src, DnsTransport::Udp, &q, &cat, &all, 1);
        assert_eq!(Message::from_vec(&r).unwrap().answers.len(), 2);
    }
    let slip = gw.handle(t0, NOW, src, DnsTransport::Udp, &q, &cat, &all, 1);
    let m = Message::from_vec(&slip).unwrap();
    assert!(m.metadata.truncation && m.answers.is_empty());
    assert_eq!(m.queries.len(), 1);
    assert!(gw
        .handle(t0, NOW, src, DnsTransport::Udp, &q, &cat, &all, 1)
        .is_empty());
    let refused = gw.handle(t0, NOW, src, DnsTransport::Tcp, &q, &cat, &all, 1);
    assert_eq!(
        rcode(&Message::from_vec(&refused).unwrap()),
        ResponseCode::Refused
    );
    assert_eq!(gw.stats().rate_limited, 3);
    assert_eq!(gw.stats().answered, 2);
    // A source in 10.2.0.0/16 is viewed as cluster c2.
    let src2: SocketAddr = "10.2.3.4:53".parse().unwrap();
    let q2 = query("other.market.mpreg.", RecordType::A);
    let r = gw.handle(t0, NOW, src2, DnsTransport::Udp, &q2, &cat, &all, 1);
    assert_eq!(
        of_type(&Message::from_vec(&r).unwrap(), RecordType::A),
        ["10.2.2.2"]
    );
    // The policy predicate sees the viewer (another policy: another
    // revision).
    let only_c1 = |v: &Viewer, _: &Entry| v.cluster == "c1";
    let r = gw.handle(t0, NOW, src2, DnsTransport::Udp, &q2, &cat, &only_c1, 2);
    assert_eq!(
        rcode(&Message::from_vec(&r).unwrap()),
        ResponseCode::NXDomain
    );
}

// ---- never panic ---------------------------------------------------------

const VOCAB: &[&str] = &[
    "_svc",
    "_mpreg",
    "_queue",
    "_tcp",
    "_udp",
    "_quic",
    "tradefeed",
    "TradeFeed",
    "market",
    "echo",
    "get",
    "quotes",
    "orders",
    "jobs",
    "node",
    "addr",
    "ns",
    "node-1",
    "b32-",
    "b32-a",
    "10-0-1-12",
    "fd00--1",
    "mpreg",
    "MPREG",
    "example",
    "com",
    "big",
    "www",
    "x",
    "",
];

fn arb_query() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::collection::vec(0..VOCAB.len(), 0..8),
        any::<u16>(),
        prop::option::of(any::<u16>()),
        any::<u8>(),
        any::<u16>(),
        0u8..3,
    )
        .prop_map(|(labels, qtype, edns, flags, class, opt_version)| {
            let name = labels
                .iter()
                .map(|i| VOCAB[*i])
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(".");
            let name = Name::from_ascii(format!("{name}.")).unwrap_or_else(|_| Name::root());
            let mut m = Message::new(1, MessageType::Query, OpCode::Query);
            let mut q = Query::query(name, RecordType::from(qtype % 300));
            if class % 4 == 0 {
                q.set_query_class(DNSClass::from(class));
            }
            m.add_query(q);
            m.metadata.recursion_desired = flags & 1 != 0;
            m.metadata.checking_disabled = flags & 2 != 0;
            if let Some(size) = edns {
                let mut e = Edns::new();
                e.set_max_payload(size);
                e.set_version(opt_version / 2);
                m.set_edns(e);
            }
            m.to_vec().unwrap_or_default()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let fx = Fx::new();
        for t in [DnsTransport::Udp, DnsTransport::Tcp] {
            let r = fx.raw(&bytes, t, &viewer("c1"));
            if let Some(b) = r.bytes {
                prop_assert!(b.len() >= 12);
                prop_assert_eq!(&b[..2], &bytes[..2]);
                if t == DnsTransport::Udp {
                    prop_assert!(b.len() <= 1232);
                }
            }
            let _ = limited_reply(&bytes, t, Verdict::Slip);
        }
    }

    #[test]
    fn mutated_queries_never_panic(q in arb_query(), flips in prop::collection::vec((any::<usize>(), any::<u8>()), 0..4)) {
        let fx = Fx::new();
        let mut bytes = q.clone();
        for (at, v) in flips {
            if !bytes.is_empty() {
                let i = at % bytes.len();
                bytes[i] ^= v;
            }
        }
        let _ = fx.raw(&bytes, DnsTransport::Udp, &viewer("c1"));
    }

    #[test]
    fn valid_queries_get_parseable_matching_replies(q in arb_query()) {
        prop_assume!(!q.is_empty());
        let fx = Fx::new();
        for t in [DnsTransport::Udp, DnsTransport::Tcp] {
            let r = fx.raw(&q, t, &viewer("c1"));
            let bytes = r.bytes.expect("every query is answered");
            let reply = Message::from_vec(&bytes).expect("reply parses");
            let request = Message::from_vec(&q).unwrap();
            prop_assert_eq!(reply.metadata.id, 1);
            prop_assert_eq!(reply.metadata.message_type, MessageType::Response);
            prop_assert!(!reply.metadata.recursion_available);
            prop_assert_eq!(reply.edns.is_some(), request.edns.is_some());
            prop_assert!(reply.queries.len() == 1);
            prop_assert!(reply.queries[0].name().eq_case(request.queries[0].name()));
            if t == DnsTransport::Udp {
                let cap = request.edns.as_ref().map(|e| e.max_payload().clamp(512, 1232)).unwrap_or(512);
                prop_assert!(bytes.len() <= usize::from(cap));
            }
            // one TTL per RRset
            let mut seen: Vec<(Name, RecordType, u32)> = Vec::new();
            for rec in reply.answers.iter() {
                if let Some((_, _, ttl)) = seen.iter().find(|(n, t, _)| *n == rec.name && *t == rec.record_type()) {
                    prop_assert_eq!(*ttl, rec.ttl);
                } else {
                    seen.push((rec.name.clone(), rec.record_type(), rec.ttl));
                }
            }
        }
    }
}

proptest! {
    /// Whatever happens between queries (time passing, entries added,
    /// removed or refreshed, another policy), the gateway's reply, cached or
    /// not, is byte for byte what `respond` builds at that second for that
    /// viewer, with the query's ID.
    #[test]
    fn cached_replies_are_what_a_fresh_build_gives(
        ops in proptest::collection::vec((0u8..8, 0u16..u16::MAX, 0u16..3000), 1..60),
    ) {
        let mut cfg = config();
        cfg.rate_limit.queries_per_second = 0.0;
        cfg.views = vec![DnsView {
            network: Cidr::parse("10.2.0.0/16").unwrap(),
            cluster_id: Some("c2".into()),
            tenant_id: Some("t".into()),
        }];
        let mut gw = Gateway::new(cfg.clone(), 3);
        let mut cat = catalog();
        let mut wall = NOW;
        let mut revision = 1u64;
        type Policy<'a> = &'a dyn Fn(&Viewer, &Entry) -> bool;
        let policies: [Policy; 2] = [
            &|_: &Viewer, _: &Entry| true,
            &|v: &Viewer, e: &Entry| v.cluster == "c1" || e.name() != "tradefeed",
        ];
        let queries = [
            query("tradefeed.market.mpreg.", RecordType::A),
            query("TradeFeed.market.mpreg.", RecordType::A),
            query("_svc._tcp.tradefeed.market.mpreg.", RecordType::SRV),
            with_edns("_svc._tcp.tradefeed.market.mpreg.", RecordType::SRV, 1232),
            query("extra.market.mpreg.", RecordType::A),
            query("missing.market.mpreg.", RecordType::A),
        ];
        let sources: [SocketAddr; 2] = ["127.0.0.1:5353".parse().unwrap(), "10.2.0.9:53".parse().unwrap()];
        for (op, id, arg) in ops {
            match op {
                // Time passes (up to 3 s).
                0 => wall += f64::from(arg) / 1000.0,
                // An entry comes, is refreshed, goes.
                1 => {
                    let e: Entry = svc("extra", "market", "tcp", 9100 + arg % 3, &["10.7.0.1"])
                        .advertised(wall, 30.0)
                        .into();
                    let _ = cat.upsert(N1, e, wall);
                }
                2 => {
                    let e: Entry = svc("extra", "market", "tcp", 9100 + arg % 3, &["10.7.0.1"]).into();
                    cat.remove(&e.key());
                }
                3 => {
                    let e: Entry = svc("extra", "market", "tcp", 9100 + arg % 3, &["10.7.0.1"]).into();
                    cat.refresh(&e.key(), wall);
                }
                // Another policy.
                4 => revision += 1,
                // A query.
                _ => {
                    let mut q = queries[usize::from(arg) % queries.len()].clone();
                    q[..2].copy_from_slice(&id.to_be_bytes());
                    let src = sources[usize::from(id) % 2];
                    let transport = if arg % 5 == 0 { DnsTransport::Tcp } else { DnsTransport::Udp };
                    let policy = policies[(revision % 2) as usize];
                    let got = gw.handle(crate::time::Instant::ZERO, wall, src, transport, &q, &cat, policy, revision);
                    let viewer = cfg.viewer_for(src.ip());
                    let fresh = respond(&q, transport, &viewer, &cat, &cfg, wall.floor(), &|e: &Entry| policy(&viewer, e));
                    prop_assert_eq!(got, fresh.bytes.unwrap_or_default());
                }
            }
        }
    }
}

/// A repeated query is answered from the reply cache (counted), and a
/// catalog change or another second is answered anew.
#[test]
fn repeated_queries_are_answered_from_the_reply_cache() {
    let mut gw = Gateway::new(config(), 0);
    let mut cat = catalog();
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let all = |_: &Viewer, _: &Entry| true;
    let t0 = crate::time::Instant::ZERO;
    let ask = |gw: &mut Gateway, cat: &Catalog, id: u16, wall: f64| {
        let mut q = query("tradefeed.market.mpreg.", RecordType::A);
        q[..2].copy_from_slice(&id.to_be_bytes());
        Message::from_vec(&gw.handle(t0, wall, src, DnsTransport::Udp, &q, cat, &all, 1)).unwrap()
    };
    let first = ask(&mut gw, &cat, 1, NOW + 0.1);
    let again = ask(&mut gw, &cat, 2, NOW + 0.9);
    assert_eq!((first.metadata.id, again.metadata.id), (1, 2));
    assert_eq!(data(&first.answers), data(&again.answers));
    assert_eq!(gw.stats().cache_hits, 1);
    let e: Entry = svc("tradefeed", "market", "tcp", 9002, &["10.0.1.99"]).into();
    cat.upsert(N1, e, NOW).unwrap();
    let changed = ask(&mut gw, &cat, 3, NOW + 0.9);
    assert!(data(&changed.answers).contains(&"10.0.1.99".to_string()));
    ask(&mut gw, &cat, 4, NOW + 1.0);
    assert_eq!(gw.stats().cache_hits, 1, "a change and a new second miss");
    ask(&mut gw, &cat, 5, NOW + 1.5);
    assert_eq!(gw.stats().cache_hits, 2);
    assert_eq!(gw.stats().answered, 5, "hits are counted as answers too");
}

#[test]
fn ip_targets_to_names() {
    let ip: IpAddr = "10.0.1.12".parse().unwrap();
    assert_eq!(names::encode_addr_label(ip), "10-0-1-12");
}

#[test]
fn node_answers_dns_queries_with_one_reply_each() {
    use crate::{Input, Node, Now, Output};
    let toml = r#"
        cluster_id = "c1"
        dns_gateway_enabled = true
        [[services]]
        name = "tradefeed"
        namespace = "market"
        port = 9000
    "#;
    let settings = crate::config::load(Some(toml), &[], &[])
        .expect("valid settings")
        .settings;
    let now = Now::new(crate::time::Instant::ZERO, NOW);
    let mut node = Node::new(settings, now, 1).expect("node");
    while node.poll_output().is_some() {}
    let src: SocketAddr = "127.0.0.1:5353".parse().unwrap();
    let mut replies = Vec::new();
    for (id, bytes) in [
        (7, query("tradefeed.market.mpreg.", RecordType::A)),
        (8, vec![1, 2, 3]),
    ] {
        node.handle(
            now,
            Input::DnsQuery {
                id,
                src,
                transport: DnsTransport::Udp,
                bytes,
            },
        );
        while let Some(out) = node.poll_output() {
            if let Output::DnsReply { id, bytes } = out {
                replies.push((id, bytes));
            }
        }
    }
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[0].0, 7);
    let m = Message::from_vec(&replies[0].1).unwrap();
    assert_eq!(of_type(&m, RecordType::A), ["127.0.0.1"]);
    // Garbage: answered with "send nothing".
    assert_eq!(replies[1], (8, Vec::new()));
    assert_eq!(node.dns_stats().queries, 2);
    assert_eq!(node.dns_stats().answered, 1);
    assert_eq!(node.dns_stats().dropped, 1);
}
