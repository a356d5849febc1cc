//! Any bytes as a DNS query to the gateway's responder.
//!
//! Junk must get no reply or a header-only error, never a panic, and every
//! reply we emit must be a well-formed DNS response that resolvers can
//! parse: it re-parses with hickory-proto's `Message::from_vec`, echoes the
//! query id, has QR=1, agrees with what the responder reported (answer
//! count), and fits the transport's size limit (512 bytes on UDP without
//! EDNS, the negotiated size with it, 65535 on TCP). The replies to
//! rate-limited sources must re-parse too.
//!
//! The first input byte picks the transport, the viewer and whether names
//! outside the zones are answered; the rest is the query. The catalog holds
//! one entry of every kind the name forms reach (`reference/dns.md` §4),
//! including hostname and IPv6 targets, a CNAME alias, a local-scope entry
//! of another node and a long target list that forces truncation.
#![no_main]
use hickory_proto::op::{Message, MessageType};
use libfuzzer_sys::fuzz_target;
use mpreg_core::catalog::entry::{
    Entry, FunctionEndpoint, FunctionIdentity, MetadataValue, NodeDescriptor, QueueEndpoint,
    ServiceEndpoint, TransportEndpoint,
};
use mpreg_core::catalog::scope::Scope;
use mpreg_core::catalog::store::Catalog;
use mpreg_core::config::Settings;
use mpreg_core::dns::{limited_reply, respond, DnsConfig, DnsTransport, Verdict};
use mpreg_core::identity::Viewer;
use mpreg_fuzz::WALL;

const OWNER: &str = "ws://127.0.0.1:10000";
const ME: &str = "ws://127.0.0.1:6666";

fuzz_target!(|data: &[u8]| {
    let Some((&mode, query)) = data.split_first() else {
        return;
    };
    let transport = if mode & 1 == 0 {
        DnsTransport::Udp
    } else {
        DnsTransport::Tcp
    };
    let viewer = Viewer::new(if mode & 2 == 0 { "c1" } else { "c2" }, None);
    let mut settings = Settings {
        cluster_id: "c1".into(),
        dns_allow_external_names: mode & 4 != 0,
        ..Settings::default()
    };
    if mode & 8 != 0 {
        settings.dns_zones = vec!["example.com".into(), "a.b.example.com".into()];
    }
    let settings = settings.normalized().expect("fixture settings are valid");
    let cfg = DnsConfig::from_settings(&settings, ME);
    let catalog = catalog();
    let hide_secret = |e: &Entry| !e.namespace().is_some_and(|ns| ns.starts_with("secret"));
    let reply = respond(
        query,
        transport,
        &viewer,
        &catalog,
        &cfg,
        WALL,
        &hide_secret,
    );
    if let Some(bytes) = &reply.bytes {
        let m = check_reply(query, bytes, limit(query, transport, &cfg));
        assert_eq!(m.answers.len(), reply.answers, "answer count misreported");
        assert!(
            !reply.truncated || m.metadata.truncation,
            "TC=1 not set on a truncated reply"
        );
    }
    for verdict in [Verdict::Slip, Verdict::Drop] {
        if let Some(bytes) = limited_reply(query, transport, verdict) {
            check_reply(query, &bytes, limit(query, transport, &cfg));
        }
    }
});

/// Asserts what every reply must satisfy and returns it parsed.
fn check_reply(query: &[u8], bytes: &[u8], limit: usize) -> Message {
    assert!(
        bytes.len() <= limit,
        "reply of {} bytes over the {limit} byte limit",
        bytes.len()
    );
    let parsed = Message::from_vec(bytes);
    assert!(parsed.is_ok(), "reply does not re-parse: {parsed:?}");
    let Ok(m) = parsed else { unreachable!() };
    assert_eq!(m.metadata.message_type, MessageType::Response);
    assert_eq!(
        m.metadata.id.to_be_bytes(),
        [query[0], query[1]],
        "reply id differs"
    );
    m
}

/// The largest reply the transport allows for this query (`dns.md` §15).
fn limit(query: &[u8], transport: DnsTransport, cfg: &DnsConfig) -> usize {
    let edns = Message::from_vec(query).ok().and_then(|m| m.edns);
    match (transport, edns) {
        (DnsTransport::Tcp, _) => 65_535,
        (DnsTransport::Udp, None) => 512,
        (DnsTransport::Udp, Some(e)) => {
            usize::from(e.max_payload()).clamp(512, usize::from(cfg.max_udp_payload).max(512))
        }
    }
}

fn svc(name: &str, ns: &str, port: u16, targets: &[&str]) -> ServiceEndpoint {
    ServiceEndpoint::new(name, ns, "tcp", port)
        .owned_by(OWNER, "c1")
        .with_targets(targets.iter().copied())
        .advertised(WALL, 120.0)
}

/// One entry of every kind and name form the responder answers.
fn catalog() -> Catalog {
    let mut c = Catalog::new();
    let mut put = |e: Entry| {
        let origin = e.node_id().to_string();
        assert!(c.upsert(&origin, e, WALL).is_ok(), "fixture entry rejected");
    };
    let mut feed = svc(
        "tradefeed",
        "market",
        9000,
        &["10.0.1.12", "fd00::1", "feed.example.net"],
    );
    feed.metadata
        .insert("tier".into(), MetadataValue::Text("gold".into()));
    feed.metadata
        .insert("ratio".into(), MetadataValue::Float(1.5));
    put(feed.into());
    put(svc("vault", "secret", 6, &["10.6.6.6"]).into());
    put(svc("theirs", "local", 4, &["10.4.4.4"])
        .with_scope(Scope::Local)
        .into());
    put(svc("far", "market", 5, &["10.5.5.5"])
        .owned_by("ws://10.0.0.3:1", "c3")
        .into());
    let many: Vec<String> = (0..60)
        .map(|i| format!("host-{i:02}.example.net"))
        .collect();
    put(svc("big", "market", 8, &[])
        .with_targets(many.iter().map(String::as_str))
        .into());
    let mut www = svc("www", "market", 80, &["10.10.10.10"]);
    www.metadata.insert(
        "dns_cname".into(),
        MetadataValue::Text("edge.example.net".into()),
    );
    put(www.into());
    put(NodeDescriptor::new(OWNER, "c1")
        .with_endpoints([
            TransportEndpoint::new("internal", "ws", "127.0.0.1", 10000),
            TransportEndpoint::new("internal", "udp", "::1", 10002),
            TransportEndpoint::new("internal", "quic", "h.example", 10003),
        ])
        .advertised(WALL, 120.0)
        .into());
    put(
        FunctionEndpoint::new(FunctionIdentity::new("echo", "echo", "1.0.0"), OWNER, "c1")
            .advertised(WALL, 120.0)
            .into(),
    );
    put(QueueEndpoint::new("market.orders", OWNER, "c1")
        .advertised(WALL, 120.0)
        .into());
    c
}
