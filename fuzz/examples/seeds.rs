//! Writes the generated seed inputs of the fuzz targets into `fuzz/seeds/`
//! (committed; `scripts/fuzz.sh` copies them into each target's corpus):
//! a real fabric conversation between two nodes, DNS queries built with
//! hickory-proto, policy documents, settings files, one client request per
//! RPC and, when the directory of golden wire captures is given, every
//! client request recorded there (`reference/mpreg_wire/*.json`).
//!
//! Run from `fuzz/`:
//! `cargo run --example seeds -- ../../shared/reference/mpreg_wire`.

use std::fs;
use std::path::Path;

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::{Name, RecordType};
use mpreg_core::config::Settings;
use mpreg_core::policy::{rpc, PolicyHistory};
use mpreg_core::{ConnKind, Input, Node, Output};
use mpreg_fuzz::{later, start, PEER_URL, WALL};

fn main() {
    client(std::env::args().nth(1));
    fabric();
    dns();
    policy();
    config();
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new("seeds").join(target);
    fs::create_dir_all(&dir).expect("create seed dir");
    fs::write(dir.join(name), bytes).expect("write seed");
}

/// One request per RPC, then the requests of the golden captures in `dir`.
fn client(dir: Option<String>) {
    for fun in mpreg_core::api::RPC_NAMES {
        let request = serde_json::json!({
            "role": "rpc", "u": "seed",
            "cmds": [{"name": fun, "fun": fun, "args": [{"namespace": "market", "limit": 2}], "kwargs": {}}],
        });
        write("client_frame", fun, request.to_string().as_bytes());
    }
    let Some(dir) = dir else { return };
    for file in fs::read_dir(&dir).expect("capture directory") {
        let path = file.expect("capture entry").path();
        let text = fs::read_to_string(&path).expect("capture file");
        let capture: serde_json::Value = serde_json::from_str(&text).expect("capture is JSON");
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("capture")
            .to_string();
        let mut requests: Vec<String> = Vec::new();
        requests.extend(capture["request"]["raw"].as_str().map(String::from));
        for frame in capture["frames_in_order"].as_array().into_iter().flatten() {
            if frame["direction"] == "client->server" {
                requests.extend(frame["raw"].as_str().map(String::from));
            }
        }
        for case in capture["cases"]
            .as_object()
            .into_iter()
            .flat_map(|c| c.values())
        {
            if case["request"].is_object() {
                requests.push(case["request"].to_string());
            }
        }
        for (i, request) in requests.iter().enumerate() {
            write(
                "client_frame",
                &format!("golden-{stem}-{i}"),
                request.as_bytes(),
            );
        }
    }
}

/// The fixture node dials a peer at `PEER_URL`; every frame the peer sends
/// during ten gossip rounds is recorded as a `fabric_frame` seed (one per
/// message kind) and, as op lists, as `fabric_sequence` seeds (all of
/// them, and only the small ones).
fn fabric() {
    let peer_settings = mpreg_core::config::load(
        Some(
            r#"
            host = "127.0.0.1"
            port = 7001
            cluster_id = "c1"
            [[services]]
            name = "quotes"
            namespace = "market"
            port = 9100
            [[functions]]
            name = "market.quotes.put"
            "#,
        ),
        &[],
        &[],
    )
    .expect("peer settings")
    .settings;
    let mut peer = Node::new(peer_settings, start(), 3).expect("peer starts");
    let mut node = mpreg_fuzz::node();
    while peer.poll_output().is_some() {}
    let mut now = start();
    const CONN: u64 = 1;
    node.handle(
        now,
        Input::Connected {
            conn: CONN,
            url: PEER_URL.into(),
        },
    );
    peer.handle(
        now,
        Input::Accepted {
            conn: CONN,
            kind: ConnKind::Fabric,
            headers: vec![],
            peer_addr: None,
            tls: false,
        },
    );
    let mut ops = Vec::new();
    // Without the big first delta: short inputs mutate faster.
    let mut small_ops = Vec::new();
    let mut kinds = std::collections::BTreeSet::new();
    for _ in 0..10 {
        for _ in 0..4 {
            for frame in sent(&mut node) {
                peer.handle(
                    now,
                    Input::Frame {
                        conn: CONN,
                        frame: mpreg_core::Frame::Binary(frame.into()),
                    },
                );
            }
            for frame in sent(&mut peer) {
                if let Ok(f) = mpreg_core::wire::fabric::decode(&frame, usize::MAX) {
                    let kind = format!("{:?}", f.msg)
                        .split('(')
                        .next()
                        .unwrap_or("")
                        .to_string();
                    if kinds.insert(kind.clone()) {
                        write("fabric_frame", &kind.to_lowercase(), &frame);
                    }
                }
                // Op 4: a frame on the dialled connection.
                let op = [
                    &[4][..],
                    &u16::try_from(frame.len())
                        .expect("small frame")
                        .to_le_bytes(),
                    &frame,
                ]
                .concat();
                if frame.len() < 2048 {
                    small_ops.extend_from_slice(&op);
                }
                ops.extend_from_slice(&op);
                node.handle(
                    now,
                    Input::Frame {
                        conn: CONN,
                        frame: mpreg_core::Frame::Binary(frame.into()),
                    },
                );
            }
        }
        now = later(now, 1000);
        node.handle(now, Input::Tick);
        peer.handle(now, Input::Tick);
        ops.extend_from_slice(&[2, 10]);
        small_ops.extend_from_slice(&[2, 10]);
    }
    write("fabric_sequence", "conversation", &ops);
    write("fabric_sequence", "small-frames", &small_ops);
}

/// Frames `node` sends on any connection (its other outputs dropped).
fn sent(node: &mut Node) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while let Some(out) = node.poll_output() {
        if let Output::Send { frame, .. } = out {
            frames.push(frame.as_bytes().to_vec());
        }
    }
    frames
}

/// One query per name form of the fixture catalog, UDP and TCP, with and
/// without EDNS (first byte: the target's mode byte).
fn dns() {
    let queries = [
        ("tradefeed.market.mpreg.", RecordType::SRV),
        ("_svc._tcp.tradefeed.market.mpreg.", RecordType::SRV),
        ("tradefeed.market.mpreg.", RecordType::A),
        ("tradefeed.market.mpreg.", RecordType::AAAA),
        ("tradefeed.market.mpreg.", RecordType::TXT),
        ("big.market.mpreg.", RecordType::ANY),
        ("www.market.mpreg.", RecordType::A),
        ("_mpreg._tcp.echo.mpreg.", RecordType::SRV),
        ("_queue._tcp.orders.market.mpreg.", RecordType::SRV),
        ("mpreg.", RecordType::SOA),
        ("ns.mpreg.", RecordType::A),
        ("10-0-1-12.addr.mpreg.", RecordType::A),
        ("vault.secret.mpreg.", RecordType::A),
        ("market.example.com.", RecordType::NS),
    ];
    for (i, (name, qtype)) in queries.into_iter().enumerate() {
        let mut m = Message::query();
        m.metadata.id = 0x1234;
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
        let mode = u8::try_from(i % 16).expect("small");
        if i % 2 == 0 {
            let mut e = Edns::new();
            e.set_max_payload(1232);
            m.set_edns(e);
        }
        let mut bytes = vec![mode];
        bytes.extend(m.to_vec().expect("query encodes"));
        write("dns_query", &format!("q{i:02}"), &bytes);
    }
    let node_label = mpreg_core::dns::encode_node_id("ws://127.0.0.1:10000").expect("label");
    let mut m = Message::query();
    m.add_query(Query::query(
        Name::from_ascii(format!("{node_label}.node.mpreg.")).expect("name"),
        RecordType::ANY,
    ));
    let mut bytes = vec![1];
    bytes.extend(m.to_vec().expect("query encodes"));
    write("dns_query", "node", &bytes);
}

/// Rule lists, RPC payloads and a persisted history after two changes.
fn policy() {
    let rules = r#"[
      {"namespace": "svc.prod.*", "owners": ["c1"], "visibility": ["c1", "c2"],
       "visibility_tenants": ["t1"], "export_scopes": ["region", "global"],
       "allow_summaries": true, "policy_version": "v3",
       "cutover_windows": [{"starts_at": 1700000000.0, "ends_at": 1800000000.0,
                            "export_scopes": ["zone"], "allow_summaries": false}]},
      {"namespace": "secret", "visibility": "c1"}
    ]"#;
    write("policy_document", "rules", rules.as_bytes());
    let apply =
        format!(r#"{{"rules": {rules}, "enabled": true, "default_allow": false, "actor": "ops"}}"#);
    write("policy_document", "apply", apply.as_bytes());
    write("policy_document", "invalid", br#"{"rules": [{"namespace": "", "visibilty": ["x"]}, {"namespace": "a", "cutover_windows": {"starts_at": -1}}]}"#);
    let mut history = PolicyHistory::new(&Settings::default(), WALL).expect("default history");
    let payload = serde_json::from_str::<serde_json::Value>(&apply).expect("json");
    let payload = payload.as_object().expect("object");
    rpc::namespace_policy_apply(&mut history, Some("ops"), payload, WALL).expect("apply");
    rpc::namespace_policy_validate(&mut history, None, payload, WALL + 1.0).expect("validate");
    write("policy_document", "history", &history.to_bytes());
}

/// The fixture, the loader test's records, and environment lines.
fn config() {
    write(
        "config_file",
        "fixture.toml",
        mpreg_fuzz::FIXTURE.as_bytes(),
    );
    write(
        "config_file",
        "mpreg_table.toml",
        br#"[mpreg]
host = "0.0.0.0"
port = 6666
cluster_id = "prod"
peers = ["ws://10.0.0.2:6666"]
gossip_interval = 1.5
dns_zones = ["mpreg", "Example.COM."]
dns_views = [{ network = "10.0.0.0/8", cluster_id = "c2" }]
cache_region = "eu"
[[mpreg.discovery_tenant_credentials]]
tenant_id = "t"
token = "x"
scheme = "api-key"
"#,
    );
    write(
        "config_file",
        "env",
        b"MPREG_PORT=7000\nMPREG_PEERS=[\"ws://a:1\"]\nMPREG_DNS_GATEWAY_ENABLED=true\nMPREG_DISCOVERY_POLICY_RULES=[{\"namespace\":\"a\"}]\n",
    );
}
