//! Golden wire replays: frames captured between the real MPREG (Python)
//! client and server (`reference/mpreg_wire/*.json`) are sent verbatim to an
//! mpreg-rs node, and the reply's JSON *structure* is compared with the
//! captured reply (see [`mpreg_tests::shape_diff`]).
//!
//! RPCs listed in [`NOT_YET_IMPLEMENTED`] must instead answer a well-formed
//! error 1001 ("Command not found"); the list is itself checked, so
//! implementing one of them makes these tests fail until it is removed from
//! the list (and then its capture is compared like the others).

use std::path::{Path, PathBuf};
use std::time::Duration;

use mpreg_tests::{
    check_error_envelope, preview, shape_diff, start_cluster, wait_for_mesh, Conn, Node,
    DEFAULT_TIMEOUT,
};
use serde_json::{json, Value};

/// RPCs the node does not serve yet: they must answer error 1001.
const NOT_YET_IMPLEMENTED: &[&str] = &[];

/// The capture directory: `$MPREG_SHARED_DIR/reference/mpreg_wire` (or
/// `$MPREG_SHARED_DIR` itself if it holds the captures), else
/// `<this package>/../../shared/reference/mpreg_wire`.
fn wire_dir() -> PathBuf {
    let candidates: Vec<PathBuf> = match std::env::var_os("MPREG_SHARED_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            vec![dir.join("reference").join("mpreg_wire"), dir]
        }
        None => vec![Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("..")
            .join("shared")
            .join("reference")
            .join("mpreg_wire")],
    };
    for dir in &candidates {
        if dir.join("raw_probe.json").is_file() {
            return dir.clone();
        }
    }
    panic!(
        "golden wire captures not found (looked for raw_probe.json in {candidates:?}); \
         set MPREG_SHARED_DIR to the shared dir (the one holding reference/mpreg_wire)"
    );
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// A capture of one request and its reply.
struct Capture {
    file: String,
    raw: String,
    u: String,
    fun: String,
    response: Value,
}

/// Every `*.json` capture with a `request.raw` whose name ends in `suffix`.
fn captures(suffix: &str) -> Vec<Capture> {
    let dir = wire_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(suffix))
        })
        .collect();
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let doc = load(&path);
        let Some(raw) = doc.pointer("/request/raw").and_then(Value::as_str) else {
            continue;
        };
        let file = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let request: Value = serde_json::from_str(raw)
            .unwrap_or_else(|e| panic!("{file}: request.raw is not JSON: {e}"));
        let u = request["u"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: request has no u"))
            .to_string();
        let fun = request
            .pointer("/cmds/0/fun")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{file}: request has no cmds[0].fun"))
            .to_string();
        let response = doc
            .pointer("/response/json")
            .cloned()
            .unwrap_or_else(|| panic!("{file}: no response.json"));
        out.push(Capture {
            file,
            raw: raw.to_string(),
            u,
            fun,
            response,
        });
    }
    out
}

/// `file (fun)`, noting RPCs that are expected to answer 1001.
fn capture_label(cap: &Capture) -> String {
    if NOT_YET_IMPLEMENTED.contains(&cap.fun.as_str()) {
        format!(
            "{} ({}: not yet implemented, expects error 1001)",
            cap.file, cap.fun
        )
    } else {
        format!("{} ({}: shape compared)", cap.file, cap.fun)
    }
}

/// Replays one capture on `conn`; returns the problems found.
fn replay(conn: &mut Conn, cap: &Capture) -> Vec<String> {
    conn.send_raw(&cap.raw);
    let Some(ours) = recv_reply(conn, &cap.u) else {
        return vec![format!("no reply within {DEFAULT_TIMEOUT:?}")];
    };
    if NOT_YET_IMPLEMENTED.contains(&cap.fun.as_str()) {
        return not_found_problems(&ours, &cap.u, &cap.fun);
    }
    let mut problems = Vec::new();
    if ours.get("u").and_then(Value::as_str) != Some(cap.u.as_str()) {
        problems.push(format!("u: want {:?}, got {:?}", cap.u, ours.get("u")));
    }
    if !ours.get("error").is_some_and(Value::is_null) {
        problems.push(format!(
            "error should be null, got {}",
            preview(&ours["error"])
        ));
        return problems;
    }
    problems.extend(shape_diff(&cap.response, &ours));
    problems
}

/// The reply to `u` (skipping any other message), or `None` on timeout/close.
fn recv_reply(conn: &mut Conn, u: &str) -> Option<Value> {
    for _ in 0..1000 {
        let msg = conn.recv()?;
        if msg.get("u").and_then(Value::as_str) == Some(u) {
            return Some(msg);
        }
    }
    None
}

/// What is wrong with `reply` as the 1001 answer to `fun` (empty = fine).
fn not_found_problems(reply: &Value, u: &str, fun: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if reply.get("error").is_some_and(Value::is_null) {
        problems.push(format!(
            "`{fun}` is listed in NOT_YET_IMPLEMENTED but answered successfully: implement-check its shape by \
             removing it from the list. Reply: {}",
            preview(reply)
        ));
        return problems;
    }
    if let Err(e) = check_error_envelope(reply, u, 1001) {
        problems.push(format!("`{fun}` should answer error 1001: {e}"));
        return problems;
    }
    let details = reply
        .pointer("/error/details")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !details.contains(&format!("Command not found: {fun}")) {
        problems.push(format!(
            "1001 details {details:?} should be `Command not found: {fun}`"
        ));
    }
    problems
}

/// Accepted differences from the captured Python replies, as
/// `(capture file or raw_probe case name, shape_diff path)`. Each one must
/// still occur where it applies, so closing a gap makes the test fail until
/// its line is removed here.
const KNOWN_SHAPE_GAPS: &[(&str, &str)] = &[
    // Deliberate: built-in commands are zone-scoped and an export at the
    // default `global` scope leaves them out (MPREG ignores endpoint scopes
    // and exports its built-ins), so nothing under `catalog_query` was
    // exported and the two optional counters are omitted.
    (
        "namespace_status.single.json",
        "$.r.namespace_status.last_export_at",
    ),
    (
        "namespace_status.single.json",
        "$.r.namespace_status.summaries_exported",
    ),
    (
        "namespace_status.c3.json",
        "$.r.namespace_status.last_export_at",
    ),
    (
        "namespace_status.c3.json",
        "$.r.namespace_status.summaries_exported",
    ),
    // Deliberate: the resolver mirror applies real catalog changes only
    // (MPREG applies a delta for every TTL refresh), and a lone node has
    // none, so no delta has been applied when the capture asks.
    (
        "resolver_cache_stats.single.json",
        "$.r.resolver_cache_stats.stats.last_delta_id",
    ),
    (
        "resolver_cache_stats.single.json",
        "$.r.resolver_cache_stats.stats.last_delta_cluster",
    ),
    (
        "resolver_cache_stats.single.json",
        "$.r.resolver_cache_stats.stats.last_delta_at",
    ),
    (
        "resolver_cache_stats.single.json",
        "$.r.resolver_cache_stats.stats.last_delta_counts",
    ),
];

/// The capture / case a result line belongs to: the file name, or the
/// raw_probe case name without its `deflate:` / `None:` prefix.
fn result_key(name: &str) -> &str {
    let first = name.split(' ').next().unwrap_or(name);
    first.rsplit(':').next().unwrap_or(first)
}

/// Removes the [`KNOWN_SHAPE_GAPS`] from shape results, and flags gaps that
/// no longer occur for a capture that was replayed.
fn apply_known_gaps(results: &mut [(String, Vec<String>)]) {
    for (name, problems) in results.iter_mut() {
        let key = result_key(name).to_string();
        for (gap_key, path) in KNOWN_SHAPE_GAPS.iter().filter(|(k, _)| *k == key) {
            let prefix = format!("{path}:");
            let before = problems.len();
            problems.retain(|p| !p.starts_with(&prefix));
            if problems.len() == before {
                problems.push(format!(
                    "known gap ({gap_key:?}, {path:?}) no longer occurs: remove it from KNOWN_SHAPE_GAPS"
                ));
            } else {
                eprintln!("{name}: known gap {path} (see KNOWN_SHAPE_GAPS)");
            }
        }
    }
}

fn report(title: &str, results: &[(String, Vec<String>)]) {
    let failed: Vec<&(String, Vec<String>)> =
        results.iter().filter(|(_, p)| !p.is_empty()).collect();
    for (name, problems) in results {
        eprintln!(
            "{title}: {name}: {}",
            if problems.is_empty() { "ok" } else { "FAILED" }
        );
    }
    if !failed.is_empty() {
        let text: Vec<String> = failed
            .iter()
            .map(|(name, problems)| format!("{name}:\n    {}", problems.join("\n    ")))
            .collect();
        panic!(
            "{title}: {} of {} failed:\n{}",
            failed.len(),
            results.len(),
            text.join("\n")
        );
    }
}

/// A node configured like the capture's single node (cluster `ref-cluster`,
/// resource `ref`, resolver mode and summary export).
fn ref_node() -> Node {
    Node::start_with_config(
        "discovery_resolver_mode = true\n\
         discovery_summary_export_enabled = true\n\
         discovery_summary_export_interval_seconds = 2.0\n",
        [
            "--cluster-id",
            "ref-cluster",
            "--name",
            "ref",
            "--resource",
            "ref",
        ],
    )
}

#[test]
fn capture_directory_is_present_and_complete() {
    let dir = wire_dir();
    for name in [
        "raw_probe.json",
        "peer_link_sample.json",
        "summary_watch_subscription.single.json",
        "list_peers.single.json",
        "list_peers.c3.json",
        "cluster_map.single.json",
        "cluster_map.c3.json",
        "catalog_query_nodes.single.json",
        "catalog_query_nodes.c3.json",
    ] {
        assert!(
            dir.join(name).is_file(),
            "capture {name} missing from {}",
            dir.display()
        );
    }
    assert!(
        captures(".single.json").len() >= 5,
        "too few single-node captures in {}",
        dir.display()
    );
    assert!(
        captures(".c3.json").len() >= 3,
        "too few c3 captures in {}",
        dir.display()
    );
}

#[test]
fn golden_single_node_replays() {
    let caps = captures(".single.json");
    assert!(
        !caps.is_empty(),
        "no *.single.json captures with request.raw in {}",
        wire_dir().display()
    );
    let node = ref_node();
    let mut results = Vec::new();
    for cap in &caps {
        let mut conn = node.connect();
        results.push((capture_label(cap), replay(&mut conn, cap)));
    }
    apply_known_gaps(&mut results);
    report("single-node golden replay", &results);
}

#[test]
fn golden_three_node_replays() {
    let caps = captures(".c3.json");
    assert!(
        !caps.is_empty(),
        "no *.c3.json captures with request.raw in {}",
        wire_dir().display()
    );
    // As captured: cluster c3, node i has resource ref<i>, nodes 2 and 3
    // seeded with node 1; the captures come from node 3.
    let nodes = start_cluster("c3", 3, |i| {
        vec!["--resource".into(), format!("ref{}", i + 1)]
    });
    if let Err(e) = wait_for_mesh(&nodes, Duration::from_secs(10)) {
        panic!("{e}");
    }
    // The captured replies carry a `load` for every peer, i.e. a STATUS was
    // received from each: wait for that too (it follows the mesh by up to
    // one gossip interval), so the shapes compare like for like.
    let mut probe = nodes[2].connect();
    let statused =
        mpreg_tests::wait_until(Duration::from_secs(15), Duration::from_millis(100), || {
            let peers = probe.call_ok("list_peers", Value::Null);
            peers.as_array().is_some_and(|a| {
                a.len() == 2
                    && a.iter()
                        .all(|p| p.get("load").is_some_and(|l| !l.is_null()))
            })
        });
    assert!(statused, "node 3 never received STATUS from both peers");
    let mut results = Vec::new();
    for cap in &caps {
        let mut conn = nodes[2].connect();
        results.push((capture_label(cap), replay(&mut conn, cap)));
    }
    apply_known_gaps(&mut results);
    report("3-node golden replay", &results);
}

/// Every name in NOT_YET_IMPLEMENTED really answers 1001 — so the list (and
/// the captures it exempts) is updated when an RPC lands.
#[test]
fn not_yet_implemented_list_is_current() {
    let node = ref_node();
    let mut conn = node.connect();
    let mut results = Vec::new();
    for fun in NOT_YET_IMPLEMENTED {
        let reply = conn.call(fun, json!([]), json!({}));
        let u = reply["u"].as_str().unwrap_or_default().to_string();
        results.push((fun.to_string(), not_found_problems(&reply, &u, fun)));
    }
    // And the implemented ones are not 1001.
    for fun in [
        "echo",
        "echos",
        "list_peers",
        "cluster_map",
        "catalog_query",
        "cluster_map_v2",
        "catalog_watch",
        "rpc_list",
        "rpc_describe",
        "rpc_describe_local",
        "rpc_report",
    ] {
        let args = if fun == "catalog_query" {
            json!([{"entry_type": "nodes"}])
        } else {
            json!([])
        };
        let reply = conn.call(fun, args, json!({}));
        let problems = if reply.get("error").is_some_and(Value::is_null) {
            Vec::new()
        } else {
            vec![format!("implemented RPC failed: {}", preview(&reply))]
        };
        results.push((fun.to_string(), problems));
    }
    report("NOT_YET_IMPLEMENTED check", &results);
}

// ---------------------------------------------------------------------------
// raw_probe.json: hand-built frames
// ---------------------------------------------------------------------------

struct ProbeCase {
    name: String,
    text_frame: bool,
    request: Value,
    /// `None` = MPREG closed the connection without replying.
    response: Option<Value>,
}

fn probe_cases() -> Vec<ProbeCase> {
    let doc = load(&wire_dir().join("raw_probe.json"));
    let cases = doc["cases"]
        .as_object()
        .expect("raw_probe.json: `cases` is an object");
    assert!(!cases.is_empty(), "raw_probe.json has no cases");
    cases
        .iter()
        .map(|(name, case)| {
            let response = case.get("response_json").cloned();
            if response.is_none() {
                let what = case
                    .get("response")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                assert!(
                    what.contains("ConnectionClosed"),
                    "raw_probe case {name}: unknown response form {what:?}"
                );
            }
            ProbeCase {
                name: name.clone(),
                text_frame: case["sent_frame"] == "text",
                request: case["request"].clone(),
                response,
            }
        })
        .collect()
}

/// The message of the exception at the end of a Python traceback
/// (`ValueError: Unsupported catalog entry_type: bogus` → the part after
/// `ValueError: `).
fn traceback_message(details: &str) -> String {
    let last = details.trim_end().lines().last().unwrap_or("");
    match last.split_once(": ") {
        Some((_, msg)) => msg.to_string(),
        None => last.to_string(),
    }
}

/// Sends one probe on a fresh connection; returns the reply (or the close).
fn send_probe(node: &Node, case: &ProbeCase) -> (Conn, Option<Value>) {
    let mut conn = node.connect();
    let text = case.request.to_string();
    if case.text_frame {
        conn.send_text(&text);
    } else {
        conn.send_raw(&text);
    }
    let reply = conn.recv();
    (conn, reply)
}

#[test]
fn raw_probe_behaviour() {
    let cases = probe_cases();
    let node = ref_node();
    let mut results = Vec::new();
    let mut saw = (false, false, false, false, false); // binary, text, 1001, 1003, closed
    for case in &cases {
        let mut problems = Vec::new();
        let fun = case
            .request
            .pointer("/cmds/0/fun")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let name = case
            .request
            .pointer("/cmds/0/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        match &case.response {
            None => {
                saw.4 = true;
                let mut conn = node.connect();
                conn.send_raw(&case.request.to_string());
                if let Err(e) = conn.expect_closed(Duration::from_secs(5)) {
                    problems.push(format!("connection should be closed without a reply: {e}"));
                }
            }
            Some(captured) => {
                let (_conn, reply) = send_probe(&node, case);
                let want_u = captured["u"].as_str().unwrap_or_default();
                match reply {
                    None => problems.push(format!(
                        "no reply to a {} frame within {DEFAULT_TIMEOUT:?}",
                        if case.text_frame { "text" } else { "binary" }
                    )),
                    Some(ours) => {
                        if ours.get("u").and_then(Value::as_str) != Some(want_u) {
                            problems.push(format!("u: want {want_u:?}, got {:?}", ours.get("u")));
                        }
                        if captured["error"].is_null() {
                            if NOT_YET_IMPLEMENTED.contains(&fun.as_str()) {
                                problems.extend(not_found_problems(&ours, want_u, &fun));
                            } else if !ours["error"].is_null() {
                                problems.push(format!("error should be null: {}", preview(&ours)));
                            } else if ours.pointer(&format!("/r/{name}")).is_none() {
                                problems.push(format!("reply has no r.{name}: {}", preview(&ours)));
                            } else if case.text_frame {
                                saw.1 = true;
                            } else {
                                saw.0 = true;
                            }
                        } else {
                            let code = captured
                                .pointer("/error/code")
                                .and_then(Value::as_i64)
                                .unwrap_or(0);
                            let message = captured
                                .pointer("/error/message")
                                .and_then(Value::as_str)
                                .unwrap_or("");
                            let details = captured
                                .pointer("/error/details")
                                .and_then(Value::as_str)
                                .unwrap_or("");
                            if let Err(e) = check_error_envelope(&ours, want_u, code) {
                                problems.push(e);
                            } else {
                                let our_msg = ours
                                    .pointer("/error/message")
                                    .and_then(Value::as_str)
                                    .unwrap_or("");
                                let our_details = ours
                                    .pointer("/error/details")
                                    .and_then(Value::as_str)
                                    .unwrap_or("");
                                if our_msg != message {
                                    problems.push(format!(
                                        "error.message: want {message:?}, got {our_msg:?}"
                                    ));
                                }
                                match code {
                                    1001 => {
                                        saw.2 = true;
                                        let want = format!("Command not found: {fun}");
                                        assert_eq!(details, want, "capture's own 1001 details");
                                        if our_details != want {
                                            problems.push(format!(
                                                "error.details: want {want:?}, got {our_details:?}"
                                            ));
                                        }
                                    }
                                    1003 => {
                                        saw.3 = true;
                                        let want = traceback_message(details);
                                        assert!(
                                            want.starts_with("Unsupported catalog entry_type"),
                                            "{want}"
                                        );
                                        if !our_details.contains(&want) {
                                            problems.push(format!("error.details should contain {want:?}, got {our_details:?}"));
                                        }
                                    }
                                    other => panic!(
                                        "raw_probe case {}: unexpected captured code {other}",
                                        case.name
                                    ),
                                }
                            }
                        }
                    }
                }
            }
        }
        results.push((case.name.clone(), problems));
    }
    report("raw_probe behaviour", &results);
    assert_eq!(
        saw,
        (true, true, true, true, true),
        "raw_probe.json no longer covers all of (binary, text, 1001, 1003, close-on-missing-u)"
    );
}

/// The successful probe replies also match the captured structure.
#[test]
fn raw_probe_reply_shapes() {
    let node = ref_node();
    let mut results = Vec::new();
    for case in probe_cases() {
        let Some(captured) = &case.response else {
            continue;
        };
        let fun = case
            .request
            .pointer("/cmds/0/fun")
            .and_then(Value::as_str)
            .unwrap_or("");
        if !captured["error"].is_null() || NOT_YET_IMPLEMENTED.contains(&fun) {
            continue;
        }
        let (_conn, reply) = send_probe(&node, &case);
        let problems = match reply {
            None => vec!["no reply".to_string()],
            Some(ours) if !ours["error"].is_null() => vec![format!("error: {}", preview(&ours))],
            Some(ours) => shape_diff(captured, &ours),
        };
        results.push((case.name.clone(), problems));
    }
    assert!(
        !results.is_empty(),
        "raw_probe.json has no successful cases to compare"
    );
    apply_known_gaps(&mut results);
    report("raw_probe reply shapes", &results);
}

// ---------------------------------------------------------------------------
// summary_watch_subscription.single.json: the pub/sub part
// ---------------------------------------------------------------------------

#[test]
fn pubsub_subscribe_and_unsubscribe_acks_match_capture() {
    let doc = load(&wire_dir().join("summary_watch_subscription.single.json"));
    let frames = doc["frames_in_order"]
        .as_array()
        .expect("frames_in_order is an array");
    let node = ref_node();
    let mut conn = node.connect();
    let mut results = Vec::new();
    let mut acks_checked = 0;
    // Pair each client frame with the server reply that answers it.
    for (i, frame) in frames.iter().enumerate() {
        if frame["direction"] != "client->server" {
            continue;
        }
        let raw = frame["raw"].as_str().expect("raw frame");
        let sent: Value = serde_json::from_str(raw).expect("captured frame is JSON");
        let u = sent["u"]
            .as_str()
            .expect("captured client frame has u")
            .to_string();
        let role = sent["role"].as_str().unwrap_or("").to_string();
        let captured_reply = frames[i + 1..]
            .iter()
            .filter(|f| f["direction"] == "server->client")
            .map(|f| &f["json"])
            .find(|j| {
                j.get("u").and_then(Value::as_str) == Some(u.as_str())
                    || j.get("operation_id").and_then(Value::as_str) == Some(u.as_str())
            })
            .cloned()
            .unwrap_or_else(|| panic!("capture has no reply to frame {i} (u={u})"));
        conn.send_raw(raw);
        let ours = conn.wait_reply(&u);
        let mut problems = Vec::new();
        if role == "rpc" {
            let fun = sent
                .pointer("/cmds/0/fun")
                .and_then(Value::as_str)
                .unwrap_or("");
            if NOT_YET_IMPLEMENTED.contains(&fun) {
                problems.extend(not_found_problems(&ours, &u, fun));
            } else if !ours["error"].is_null() {
                problems.push(format!("error: {}", preview(&ours)));
            } else {
                problems.extend(shape_diff(&captured_reply, &ours));
            }
        } else {
            acks_checked += 1;
            problems.extend(shape_diff(&captured_reply, &ours));
            if ours["role"] != "pubsub-ack" {
                problems.push(format!("role should be pubsub-ack: {}", preview(&ours)));
            }
            if ours["operation_id"] != json!(u) {
                problems.push(format!("operation_id should be {u:?}: {}", preview(&ours)));
            }
            if ours["success"] != captured_reply["success"] {
                problems.push(format!(
                    "success should be {}: {}",
                    captured_reply["success"],
                    preview(&ours)
                ));
            }
        }
        results.push((format!("frame {i} ({role})"), problems));
    }
    assert_eq!(
        acks_checked, 2,
        "capture should hold a subscribe and an unsubscribe"
    );
    report("summary_watch_subscription replay", &results);
}

// ---------------------------------------------------------------------------
// peer_link_sample.json: a Python peer's STATUS
// ---------------------------------------------------------------------------

/// A Python MPREG peer's `role:"server"` STATUS is acknowledged with
/// `r:"STATUS"` as in the capture. (The capture's `fabric-gossip` frames are
/// MPREG's Python fabric, which mpreg-rs does not speak: it gossips over its
/// own CBOR fabric subprotocol.)
#[test]
fn python_peer_status_is_acknowledged() {
    let doc = load(&wire_dir().join("peer_link_sample.json"));
    let kinds = doc["first_of_each_kind"]
        .as_object()
        .expect("first_of_each_kind is an object");
    let status = kinds
        .iter()
        .find(|(k, _)| k.starts_with("client->server | server | STATUS"))
        .map(|(_, v)| v)
        .expect("capture has a client->server STATUS frame");
    let raw = status["raw"].as_str().expect("raw");
    let sent: Value = serde_json::from_str(raw).expect("STATUS frame is JSON");
    let u = sent["u"].as_str().expect("STATUS has u");
    let captured_reply = kinds
        .values()
        .map(|v| &v["json"])
        .find(|j| j.get("u").and_then(Value::as_str) == Some(u) && j.get("role").is_none())
        .expect("capture has the reply to STATUS");
    let node = Node::start(["--cluster-id", "c3", "--name", "n1"]);
    let mut conn = node.connect();
    conn.send_raw(raw);
    let ours = conn.wait_reply(u);
    // What MPREG's peer requires of the reply (RPCResponse): u, r, error.
    assert_eq!(ours["u"], json!(u), "{ours}");
    assert_eq!(ours["r"], captured_reply["r"], "reply to STATUS: {ours}");
    assert!(ours["error"].is_null(), "reply to STATUS: {ours}");
    // The node keeps serving clients on that connection.
    assert_eq!(
        conn.call_ok("echo", json!("still here")),
        json!("still here")
    );
}
