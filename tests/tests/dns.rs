//! Black-box tests of the DNS gateway: a real `mpreg server` with
//! `dns_gateway_enabled`, queried over real UDP and TCP on 127.0.0.1 with
//! packets built and parsed by hickory-proto (and, when `dig` is installed,
//! with `dig` too). Runs on the runtime `MPREG_TEST_RUNTIME` names (tokio by
//! default), like the rest of the black-box suite.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use mpreg_tests::Node;

const TIMEOUT: Duration = Duration::from_secs(5);
const NO_ARGS: [&str; 0] = [];

fn config() -> String {
    let big: Vec<String> = (0..60)
        .map(|i| format!("\"host-{i:02}.example.net\""))
        .collect();
    format!(
        r#"
cluster_id = "dns-bb"
dns_gateway_enabled = true
dns_zones = ["mpreg"]

[[services]]
name = "tradefeed"
namespace = "market"
protocol = "tcp"
port = 9000
targets = ["127.0.0.1"]
tags = ["primary"]
capabilities = ["quotes"]
metadata = {{ tier = "gold" }}
priority = 10
weight = 5

[[services]]
name = "big"
namespace = "market"
protocol = "tcp"
port = 9100
targets = [{}]
"#,
        big.join(", ")
    )
}

fn start() -> Node {
    let node = Node::start_with_config(&config(), NO_ARGS);
    assert!(
        node.dns_port().is_some(),
        "the node printed no MPREG_DNS_PORT= line; log:\n{}",
        node.log()
    );
    node
}

fn query(name: &str, qtype: RecordType, id: u16) -> Message {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), qtype));
    m
}

fn udp(port: u16, q: &Message) -> Message {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    sock.send_to(&q.to_vec().unwrap(), ("127.0.0.1", port))
        .unwrap();
    let mut buf = vec![0u8; 65_535];
    let (n, _) = sock
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("no UDP reply for {}: {e}", q.queries[0].name()));
    assert!(n <= 1232, "UDP reply of {n} bytes");
    let m = Message::from_vec(&buf[..n]).expect("reply parses");
    assert_eq!(m.metadata.id, q.metadata.id);
    m
}

fn tcp_send(stream: &mut TcpStream, q: &Message) {
    let bytes = q.to_vec().unwrap();
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    stream.write_all(&framed).unwrap();
}

fn tcp_read(stream: &mut TcpStream) -> Message {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).expect("TCP reply length");
    let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut buf).expect("TCP reply body");
    Message::from_vec(&buf).expect("reply parses")
}

fn tcp(port: u16, q: &Message) -> Message {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    tcp_send(&mut s, q);
    let m = tcp_read(&mut s);
    assert_eq!(m.metadata.id, q.metadata.id);
    m
}

fn answers(m: &Message, t: RecordType) -> Vec<String> {
    m.answers
        .iter()
        .filter(|r| r.record_type() == t)
        .map(|r| r.data.to_string())
        .collect()
}

fn srv_ports(m: &Message) -> Vec<u16> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::SRV(s) => Some(s.port),
            _ => None,
        })
        .collect()
}

fn assert_soa_authority(m: &Message) {
    assert_eq!(m.authorities.len(), 1, "{m}");
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    assert_eq!(m.authorities[0].name.to_ascii(), "mpreg.");
}

#[test]
fn answers_every_name_form_over_udp_and_tcp() {
    let node = start();
    let port = node.dns_port().unwrap();

    // _svc SRV, with an in-zone target name and its glue.
    let m = udp(
        port,
        &query("_svc._tcp.tradefeed.market.mpreg.", RecordType::SRV, 1),
    );
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.metadata.authoritative && !m.metadata.recursion_available);
    assert_eq!(
        answers(&m, RecordType::SRV),
        ["10 5 9000 127-0-0-1.addr.mpreg."]
    );
    assert_eq!(m.additionals.len(), 1);
    // Same over TCP, same port.
    let m = tcp(
        port,
        &query("_svc._tcp.tradefeed.market.mpreg.", RecordType::SRV, 2),
    );
    assert_eq!(srv_ports(&m), [9000]);

    // Plain name: A and TXT.
    let m = udp(port, &query("tradefeed.market.mpreg.", RecordType::A, 3));
    assert_eq!(answers(&m, RecordType::A), ["127.0.0.1"]);
    assert!((1..=60).contains(&m.answers[0].ttl));
    let m = udp(port, &query("tradefeed.market.mpreg.", RecordType::TXT, 4));
    let txt = answers(&m, RecordType::TXT);
    for want in [
        "namespace=market",
        "cluster_id=dns-bb",
        "tags=primary",
        "tier=gold",
    ] {
        assert!(txt.iter().any(|t| t.contains(want)), "{want} in {txt:?}");
    }

    // The node's own RPCs: _mpreg SRV points at its WebSocket port.
    let m = udp(port, &query("_mpreg._tcp.echo.mpreg.", RecordType::SRV, 5));
    assert_eq!(srv_ports(&m), [node.port()]);

    // The node by its label.
    let label = mpreg_core::dns::encode_node_id(node.url()).unwrap();
    let m = udp(
        port,
        &query(&format!("{label}.node.mpreg."), RecordType::A, 6),
    );
    assert_eq!(answers(&m, RecordType::A), ["127.0.0.1"]);

    // Mixed case: matched, and echoed byte for byte.
    let mixed = "_SVC._Tcp.TradeFeed.Market.MPREG.";
    let m = udp(port, &query(mixed, RecordType::SRV, 7));
    assert_eq!(srv_ports(&m), [9000]);
    let want = Name::from_ascii(mixed).unwrap();
    assert!(m.queries[0].name().eq_case(&want));
    assert!(m.answers.iter().all(|r| r.name.eq_case(&want)));

    // Apex SOA.
    let m = udp(port, &query("mpreg.", RecordType::SOA, 8));
    assert_eq!(answers(&m, RecordType::SOA).len(), 1);
}

#[test]
fn negative_answers_and_refusals() {
    let node = start();
    let port = node.dns_port().unwrap();
    let m = udp(port, &query("nothere.market.mpreg.", RecordType::A, 10));
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.answers.is_empty());
    assert_soa_authority(&m);
    // NODATA: the name exists, not with this type.
    let m = udp(port, &query("tradefeed.market.mpreg.", RecordType::MX, 11));
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_soa_authority(&m);
    // Outside every zone.
    let m = udp(port, &query("www.example.com.", RecordType::A, 12));
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert!(!m.metadata.authoritative);
    // Garbage with a readable header: FORMERR; an opcode we do not do: NOTIMP.
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut bad = query("a.mpreg.", RecordType::A, 13).to_vec().unwrap();
    bad.truncate(bad.len() - 2);
    sock.send_to(&bad, ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 512];
    let (n, _) = sock.recv_from(&mut buf).expect("FORMERR reply");
    assert_eq!(
        Message::from_vec(&buf[..n]).unwrap().metadata.response_code,
        ResponseCode::FormErr
    );
    let mut notify = query("a.mpreg.", RecordType::SOA, 14);
    notify.metadata.op_code = OpCode::Notify;
    let m = udp(port, &notify);
    assert_eq!(m.metadata.response_code, ResponseCode::NotImp);
}

#[test]
fn truncated_udp_answer_arrives_whole_over_tcp_on_the_same_port() {
    let node = start();
    let port = node.dns_port().unwrap();
    let name = "_svc._tcp.big.market.mpreg.";
    let m = udp(port, &query(name, RecordType::SRV, 20));
    assert!(m.metadata.truncation, "60 SRV records cannot fit 512 bytes");
    assert!(m.answers.is_empty(), "no partial RRset");
    // EDNS: a larger buffer, still capped at 1232: still truncated, OPT echoed.
    let mut q = query(name, RecordType::SRV, 21);
    let mut e = Edns::new();
    e.set_max_payload(4096);
    q.set_edns(e);
    let m = udp(port, &q);
    assert!(m.metadata.truncation);
    assert_eq!(m.edns.as_ref().map(Edns::max_payload), Some(1232));
    // A medium answer fits thanks to EDNS.
    let mut q = query("_svc._tcp.tradefeed.market.mpreg.", RecordType::ANY, 22);
    q.set_edns(Edns::new());
    let m = udp(port, &q);
    assert!(!m.metadata.truncation);
    // TCP, same port: all 60.
    let m = tcp(port, &query(name, RecordType::SRV, 23));
    assert!(!m.metadata.truncation);
    assert_eq!(srv_ports(&m).len(), 60);
}

#[test]
fn several_queries_per_tcp_connection() {
    let node = start();
    let port = node.dns_port().unwrap();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    // Pipelined: three queries, then three replies (matched by id).
    let names = [
        "tradefeed.market.mpreg.",
        "nothere.market.mpreg.",
        "_svc._tcp.big.market.mpreg.",
    ];
    for (i, n) in names.iter().enumerate() {
        let t = if i == 2 {
            RecordType::SRV
        } else {
            RecordType::A
        };
        tcp_send(&mut s, &query(n, t, 100 + i as u16));
    }
    let mut ids: Vec<u16> = (0..3).map(|_| tcp_read(&mut s).metadata.id).collect();
    ids.sort_unstable();
    assert_eq!(ids, [100, 101, 102]);
    // And the connection still serves.
    tcp_send(&mut s, &query("mpreg.", RecordType::NS, 200));
    assert_eq!(tcp_read(&mut s).metadata.id, 200);
}

#[test]
fn dns_bind_failure_leaves_the_node_serving() {
    // Occupy a UDP port, then ask the node for it.
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let cfg = format!("dns_gateway_enabled = true\ndns_udp_port = {port}\n");
    let node = Node::start_with_config(&cfg, NO_ARGS);
    assert_eq!(node.dns_port(), None);
    let mut conn = node.connect();
    assert_eq!(
        conn.call_ok("echo", serde_json::json!("still here")),
        serde_json::json!("still here")
    );
    assert!(
        node.log().contains("DNS gateway not started"),
        "{}",
        node.log()
    );
}

/// The same checks with the real `dig`, when it is installed (Debian
/// `dnsutils`); skipped otherwise.
#[test]
fn dig_when_available() {
    if Command::new("dig").arg("-v").output().is_err() {
        eprintln!("dig not installed; skipping the dig checks");
        return;
    }
    let node = start();
    let port = node.dns_port().unwrap().to_string();
    let dig = |args: &[&str]| -> String {
        let out = Command::new("dig")
            .args(["@127.0.0.1", "-p", &port, "+time=3", "+tries=1"])
            .args(args)
            .output()
            .expect("dig runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let srv = dig(&["+short", "SRV", "_svc._tcp.tradefeed.market.mpreg"]);
    assert!(srv.contains("10 5 9000 127-0-0-1.addr.mpreg."), "{srv}");
    let a = dig(&["+short", "A", "tradefeed.market.mpreg"]);
    assert_eq!(a.trim(), "127.0.0.1");
    let nx = dig(&["A", "nothere.market.mpreg"]);
    assert!(nx.contains("status: NXDOMAIN"), "{nx}");
    assert!(nx.contains("AUTHORITY: 1"), "{nx}");
    let refused = dig(&["A", "www.example.com"]);
    assert!(refused.contains("status: REFUSED"), "{refused}");
    // dig retries a truncated UDP answer over TCP by itself.
    let big = dig(&["+short", "+ignore", "SRV", "_svc._tcp.big.market.mpreg"]);
    assert!(big.trim().is_empty() || big.lines().count() < 60, "{big}");
    let big = dig(&["+short", "SRV", "_svc._tcp.big.market.mpreg"]);
    assert_eq!(big.lines().count(), 60, "{big}");
    let big_tcp = dig(&["+tcp", "+short", "SRV", "_svc._tcp.big.market.mpreg"]);
    assert_eq!(big_tcp.lines().count(), 60, "{big_tcp}");
    let mixed = dig(&["SRV", "_SVC._tcp.TradeFeed.market.MPREG"]);
    assert!(
        mixed.contains("_SVC._tcp.TradeFeed.market.MPREG."),
        "{mixed}"
    );
}

/// A node whose `dns_views` map 127.0.0.0/8 to `tenant`, with a policy that
/// shows namespace `vault` only to tenant `ops`.
fn start_with_view(tenant: &str) -> Node {
    let config = format!(
        r#"
cluster_id = "dns-views"
dns_gateway_enabled = true
dns_zones = ["mpreg"]
discovery_policy_enabled = true

[[discovery_policy_rules]]
namespace = "vault"
visibility_tenants = ["ops"]

[[dns_views]]
network = "127.0.0.0/8"
tenant_id = "{tenant}"

[[services]]
name = "keys"
namespace = "vault"
protocol = "tcp"
port = 7000
targets = ["127.0.0.1"]

[[services]]
name = "tradefeed"
namespace = "market"
protocol = "tcp"
port = 9000
targets = ["127.0.0.1"]
"#
    );
    let node = Node::start_with_config(&config, NO_ARGS);
    assert!(
        node.dns_port().is_some(),
        "no DNS port; log:\n{}",
        node.log()
    );
    node
}

/// `dns_views`: the viewer of a query is the tenant of its source network,
/// and namespace policy decides what that tenant may resolve. The same
/// catalog answers `ops` and hides the namespace from `guest` (NXDOMAIN
/// with the zone's SOA, as for a name that does not exist, so a hidden
/// service cannot be told from a missing one), over UDP, TCP and `dig`.
#[test]
fn tenant_view_hides_a_namespace() {
    let ops = start_with_view("ops");
    let guest = start_with_view("guest");
    let name = "_svc._tcp.keys.vault.mpreg.";
    let m = udp(ops.dns_port().unwrap(), &query(name, RecordType::SRV, 40));
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(answers(&m, RecordType::SRV).len(), 1, "{m:?}");
    let port = guest.dns_port().unwrap();
    for m in [
        udp(port, &query(name, RecordType::SRV, 41)),
        tcp(port, &query(name, RecordType::SRV, 42)),
        udp(port, &query("keys.vault.mpreg.", RecordType::A, 43)),
    ] {
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain, "{m:?}");
        assert!(m.answers.is_empty());
        assert_soa_authority(&m);
    }
    // Other namespaces answer the guest as before.
    let m = udp(
        port,
        &query("_svc._tcp.tradefeed.market.mpreg.", RecordType::SRV, 44),
    );
    assert_eq!(answers(&m, RecordType::SRV).len(), 1, "{m:?}");
    if Command::new("dig").arg("-v").output().is_ok() {
        let dig = |port: u16| {
            let out = Command::new("dig")
                .args(["@127.0.0.1", "-p", &port.to_string(), "+time=3", "+tries=1"])
                .args(["SRV", name])
                .output()
                .expect("dig runs");
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let seen = dig(ops.dns_port().unwrap());
        assert!(
            seen.contains("status: NOERROR") && seen.contains("7000"),
            "{seen}"
        );
        let hidden = dig(port);
        assert!(hidden.contains("status: NXDOMAIN"), "{hidden}");
        assert!(!hidden.contains("7000"), "{hidden}");
    }
}
