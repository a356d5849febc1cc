//! Fabric authentication with real `mpreg server` processes on 127.0.0.1:
//! members sharing `fabric_auth_key` mesh as usual; a node with another
//! key and a node with none are refused, counted, audited and never listed
//! (issue 11). Runs on the runtime `MPREG_TEST_RUNTIME` names.

use std::time::Duration;

use mpreg_tests::{metric, metrics_text, peer_urls, wait_for_mesh, wait_until, Conn, Node};
use serde_json::{json, Value};

const KEY: &str = "0123456789abcdef-cluster";
const NO_ARGS: [&str; 0] = [];

fn config(key: Option<&str>, connect: Option<&str>) -> String {
    let mut toml = String::from("cluster_id = \"auth\"\ngossip_interval = 0.3\n");
    if let Some(key) = key {
        toml.push_str(&format!("fabric_auth_key = \"{key}\"\n"));
    }
    if let Some(url) = connect {
        toml.push_str(&format!("connect = \"{url}\"\n"));
    }
    toml
}

/// `mpreg_fabric_auth_refused_total{reason=...}` from the node's scrape
/// (plain GET on its client port).
fn refused(node: &Node, reason: &str) -> u64 {
    let series = format!("mpreg_fabric_auth_refused_total{{reason=\"{reason}\"}}");
    metric(&metrics_text(node.port()), &series).map_or(0, |v| v as u64)
}

#[test]
fn a_cluster_key_admits_members_and_refuses_outsiders() {
    let hub = Node::start_with_config(&config(Some(KEY), None), NO_ARGS);
    let hub_url = hub.url().to_string();
    let member = Node::start_with_config(&config(Some(KEY), Some(&hub_url)), NO_ARGS);
    let members = [hub, member];
    wait_for_mesh(&members, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("members did not mesh: {e}"));

    let intruder = Node::start_with_config(
        &config(Some("0123456789abcdef-intruder"), Some(&hub_url)),
        NO_ARGS,
    );
    let keyless = Node::start_with_config(&config(None, Some(&hub_url)), NO_ARGS);
    let hub = &members[0];
    assert!(
        wait_until(Duration::from_secs(20), Duration::from_millis(200), || {
            refused(hub, "auth_failed") >= 1 && refused(hub, "auth_missing") >= 1
        }),
        "the hub did not refuse both outsiders: failed {} missing {}\n{}",
        refused(hub, "auth_failed"),
        refused(hub, "auth_missing"),
        hub.log()
    );
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
            refused(&keyless, "auth_unexpected") >= 1
        }),
        "the keyless node did not name the reason"
    );
    assert!(
        keyless.log().contains("this node has no fabric_auth_key")
            || hub.log().contains("fabric_auth_key"),
        "the refusal is logged with what to fix\n{}\n{}",
        keyless.log(),
        hub.log()
    );

    // Give the outsiders a few gossip rounds of redials: still nobody
    // lists them and they learn nothing.
    std::thread::sleep(Duration::from_secs(2));
    let outsiders = [intruder.url().to_string(), keyless.url().to_string()];
    for m in &members {
        let mut conn = m.connect();
        let peers = peer_urls(&mut conn);
        assert!(
            !peers.iter().any(|p| outsiders.contains(p)),
            "{} lists an outsider: {peers:?}",
            m.url()
        );
        let nodes = conn.call_ok("catalog_query", json!({"entry_type": "nodes"}));
        let text = nodes.to_string();
        assert!(
            !outsiders.iter().any(|o| text.contains(o.as_str())),
            "{} has an outsider in its catalog: {text}",
            m.url()
        );
    }
    for o in [&intruder, &keyless] {
        let mut conn: Conn = o.connect();
        assert!(peer_urls(&mut conn).is_empty(), "{} was let in", o.url());
    }

    // The hub's access audit names each refused peer and why.
    let mut conn = hub.connect();
    let audit = conn.call_ok("discovery_access_audit", json!({"event": "fabric_auth"}));
    let entries = audit["entries"].as_array().cloned().unwrap_or_default();
    let reasons: Vec<&str> = entries
        .iter()
        .filter_map(|e| e.get("reason").and_then(Value::as_str))
        .collect();
    assert!(
        reasons.contains(&"auth_failed") && reasons.contains(&"auth_missing"),
        "{audit}"
    );
    assert!(
        entries
            .iter()
            .all(|e| e["event"] == "fabric_auth" && e["allowed"] == false && e["peer"].is_string()),
        "{audit}"
    );
}
