//! What the fuzz targets share: a node with every feature the inputs can
//! reach switched on, and the output checks that hold after any input.
//!
//! Each target builds a fresh [`Node`] per fuzz input (from a fixed seed and
//! a fixed clock), so a finding replays from its input file alone.

use std::time::Duration;

use mpreg_core::wire::fabric;
use mpreg_core::{ConnId, Instant, Node, Now, Output};

/// Wall clock of every fixture node (inside the validity of the seeds).
pub const WALL: f64 = 1_700_000_000.0;

/// The peer the fixture dials: `fabric_sequence` reports its connection as
/// `Input::Connected` with this URL.
pub const PEER_URL: &str = "ws://127.0.0.1:7001";

/// Most outputs one input may produce. A node answers one frame with a
/// handful of messages (a reply, a delta page per origin, a digest, events);
/// thousands mean an amplification bug.
pub const MAX_OUTPUTS_PER_INPUT: usize = 4096;

/// Settings that reach every subsystem a frame can touch: DNS gateway,
/// namespace policy with a restricted namespace, declared entries of every
/// kind, a seed peer, and a data directory so persistence outputs happen
/// (the node never touches it: persistence is an output).
pub const FIXTURE: &str = r#"
cluster_id = "c1"
peers = ["ws://127.0.0.1:7001"]
dns_gateway_enabled = true
discovery_policy_enabled = true
discovery_policy_default_allow = true
data_dir = "/nonexistent/mpreg-fuzz"
fabric_max_frame_bytes = 65536

[[discovery_policy_rules]]
namespace = "secret"
owners = ["c1"]
visibility = ["c1"]

[[services]]
name = "tradefeed"
namespace = "market"
port = 9000
targets = ["10.0.1.12", "fd00::1", "feed.example.net"]
metadata = { tier = "gold", n = 5 }

[[functions]]
name = "market.quotes.get"

[[queues]]
queue_name = "market.orders"

[[topics]]
patterns = ["market.*"]
"#;

/// The time every fixture node starts at.
pub fn start() -> Now {
    Now::new(Instant::ZERO, WALL)
}

/// A fresh fixture node, its start-up outputs drained (and checked).
pub fn node() -> Node {
    let settings = mpreg_core::config::load(Some(FIXTURE), &[], &[])
        .expect("fixture settings are valid")
        .settings;
    let mut node = Node::new(settings, start(), 7).expect("fixture node starts");
    drain(&mut node, &[]);
    node
}

/// `now` moved forward by `millis`.
pub fn later(now: Now, millis: u64) -> Now {
    now.advanced(Duration::from_millis(millis))
}

/// Drains every output and asserts what must hold for any input: a bounded
/// number of outputs, every frame sent on a fabric connection (one of
/// `fabric_conns`) decodes under the node's own frame bound, every frame
/// sent on any other connection is a JSON object, and close reasons fit a
/// WebSocket close frame. Returns the outputs for target-specific checks.
pub fn drain(node: &mut Node, fabric_conns: &[ConnId]) -> Vec<Output> {
    let max_frame = usize::try_from(node.settings().fabric_max_frame_bytes).unwrap_or(usize::MAX);
    let mut outputs = Vec::new();
    while let Some(out) = node.poll_output() {
        assert!(
            outputs.len() < MAX_OUTPUTS_PER_INPUT,
            "one input produced more than {MAX_OUTPUTS_PER_INPUT} outputs"
        );
        match &out {
            Output::Send { conn, frame } if fabric_conns.contains(conn) => {
                let sent = fabric::decode(frame.as_bytes(), max_frame);
                assert!(
                    sent.is_ok(),
                    "node sent a fabric frame it cannot decode: {sent:?}"
                );
            }
            Output::Send { frame, .. } => {
                let reply: Result<serde_json::Value, _> = serde_json::from_slice(frame.as_bytes());
                assert!(
                    matches!(reply, Ok(serde_json::Value::Object(_))),
                    "node sent a client frame that is not a JSON object: {reply:?}"
                );
            }
            Output::Close { reason, .. } => {
                assert!(reason.reason.len() <= 123, "close reason too long");
            }
            _ => {}
        }
        outputs.push(out);
    }
    outputs
}
