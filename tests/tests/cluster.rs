//! Multi-process tests: real `mpreg server` nodes on 127.0.0.1 (`--port 0`).
//! Every test starts its own nodes, so tests can run in parallel.

use std::time::{Duration, Instant};

use mpreg_tests::{
    check_error_envelope, peer_urls, preview, rpc_frame, start_cluster, unique_id, wait_for_mesh,
    wait_until, Conn, Event, Node,
};
use serde_json::{json, Value};

/// Keys every `list_peers` item carries (`client_protocol.md` §2.5).
const PEER_SNAPSHOT_KEYS: &[&str] = &[
    "url",
    "cluster_id",
    "funs",
    "locs",
    "last_seen",
    "status",
    "status_timestamp",
    "advertised_urls",
    "transport_endpoints",
    "load",
];

const POLL: Duration = Duration::from_millis(100);

fn urls_except(nodes: &[Node], skip: usize) -> Vec<String> {
    let mut v: Vec<String> = nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != skip)
        .map(|(_, n)| n.url().to_string())
        .collect();
    v.sort();
    v
}

fn cluster_map_node_ids(conn: &mut Conn) -> Vec<String> {
    let map = conn.call_ok("cluster_map", Value::Null);
    let mut ids: Vec<String> = map["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("cluster_map.nodes is not an array: {}", preview(&map)))
        .iter()
        .map(|n| n["node_id"].as_str().unwrap_or("<no node_id>").to_string())
        .collect();
    ids.sort();
    ids
}

/// (a) B and C only know A; within 5 s every node lists exactly the other
/// two, sorted by URL, as full PeerSnapshots, and cluster_map has all three.
#[test]
fn three_nodes_discover_each_other() {
    let nodes = start_cluster("tri-a", 3, |_| Vec::new());
    let started = Instant::now();
    if let Err(e) = wait_for_mesh(&nodes, Duration::from_secs(5)) {
        panic!("{e}");
    }
    eprintln!("mesh formed in {:?}", started.elapsed());
    for (i, node) in nodes.iter().enumerate() {
        let mut conn = node.connect();
        let peers = conn.call_ok("list_peers", Value::Null);
        let items = peers
            .as_array()
            .unwrap_or_else(|| panic!("list_peers is not an array: {peers}"));
        let got: Vec<&str> = items
            .iter()
            .map(|p| p["url"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(
            got,
            urls_except(&nodes, i),
            "list_peers of {} (must be exactly the others, sorted by url)",
            node.url()
        );
        for item in items {
            let obj = item
                .as_object()
                .unwrap_or_else(|| panic!("peer is not an object: {item}"));
            let missing: Vec<&&str> = PEER_SNAPSHOT_KEYS
                .iter()
                .filter(|k| !obj.contains_key(**k))
                .collect();
            assert!(
                missing.is_empty(),
                "PeerSnapshot from {} lacks {missing:?}: {}",
                node.url(),
                preview(item)
            );
            assert_eq!(
                item["cluster_id"],
                "tri-a",
                "peer cluster_id: {}",
                preview(item)
            );
            for key in ["funs", "locs", "advertised_urls", "transport_endpoints"] {
                assert!(
                    item[key].is_array(),
                    "PeerSnapshot.{key} should be an array: {}",
                    preview(item)
                );
            }
            assert!(
                item["status"].is_string(),
                "PeerSnapshot.status should be a string: {}",
                preview(item)
            );
        }
        let mut all: Vec<String> = nodes.iter().map(|n| n.url().to_string()).collect();
        all.sort();
        let mut last = Vec::new();
        let ok = wait_until(Duration::from_secs(5), POLL, || {
            last = cluster_map_node_ids(&mut conn);
            last == all
        });
        assert!(
            ok,
            "cluster_map of {} should list the 3 nodes {all:?}, got {last:?}",
            node.url()
        );
    }
}

/// (b) SIGTERM on C: it exits, A and B drop it within 5 s, and it does not
/// come back during the next 2 s.
#[test]
fn graceful_departure_removes_peer() {
    let mut nodes = start_cluster("tri-b", 3, |_| Vec::new());
    if let Err(e) = wait_for_mesh(&nodes, Duration::from_secs(10)) {
        panic!("precondition: {e}");
    }
    let c_url = nodes[2].url().to_string();
    let sigterm_at = Instant::now();
    let status = nodes[2].stop_within(Duration::from_secs(5));
    let status = status
        .unwrap_or_else(|| panic!("node C ({c_url}) did not exit within 5 s of SIGTERM (killed)"));
    assert!(
        status.success(),
        "node C exited with {status} after SIGTERM; log:\n{}",
        nodes[2].log()
    );

    let mut conns: Vec<Conn> = nodes[..2].iter().map(Node::connect).collect();
    let expected: Vec<Vec<String>> = vec![
        vec![nodes[1].url().to_string()],
        vec![nodes[0].url().to_string()],
    ];
    let mut last: Vec<Vec<String>> = vec![Vec::new(); 2];
    let remaining = Duration::from_secs(5).saturating_sub(sigterm_at.elapsed());
    let ok = wait_until(remaining, POLL, || {
        let mut all = true;
        for (i, conn) in conns.iter_mut().enumerate() {
            last[i] = peer_urls(conn);
            all &= last[i] == expected[i];
        }
        all
    });
    assert!(
        ok,
        "within 5 s of SIGTERM to C ({c_url}), A and B should list only each other; A sees {:?}, B sees {:?}",
        last[0], last[1]
    );
    eprintln!("C dropped after {:?}", sigterm_at.elapsed());

    // C must not come back (no resurrection from stale gossip).
    let watch_until = Instant::now() + Duration::from_secs(2);
    let mut rounds = 0;
    while Instant::now() < watch_until && rounds < 200 {
        rounds += 1;
        for (i, conn) in conns.iter_mut().enumerate() {
            let seen = peer_urls(conn);
            assert!(
                !seen.contains(&c_url),
                "departed node {c_url} came back in list_peers of {} after {:?}: {seen:?}",
                nodes[i].url(),
                sigterm_at.elapsed()
            );
            assert_eq!(
                seen,
                expected[i],
                "list_peers of {} changed after C left",
                nodes[i].url()
            );
        }
        std::thread::sleep(POLL);
    }
}

/// (c) Malformed frames close only their own connection; error replies have
/// MPREG's codes and messages; the node keeps serving.
#[test]
fn bad_input_keeps_the_node_serving() {
    let mut node = Node::start(["--cluster-id", "bad-input"]);
    let close_wait = Duration::from_secs(5);

    // Malformed JSON: no reply, connection closed.
    let mut conn = node.connect();
    conn.send_raw(r#"{"role":"rpc","u":"x","cmds":[{"#);
    if let Err(e) = conn.expect_closed(close_wait) {
        panic!("malformed JSON: connection should be closed without a reply: {e}");
    }

    // No `u`: no reply, connection closed.
    let mut conn = node.connect();
    conn.send_raw(
        r#"{"role":"rpc","cmds":[{"name":"list_peers","fun":"list_peers","args":[],"locs":[]}]}"#,
    );
    if let Err(e) = conn.expect_closed(close_wait) {
        panic!("frame without u: connection should be closed without a reply: {e}");
    }

    // Error replies, all on one connection that stays open.
    let mut conn = node.connect();

    let u = unique_id("role");
    let reply = conn.request(&u, &json!({"role": "not-a-role", "u": u}));
    check_error_envelope(&reply, &u, 1004).unwrap_or_else(|e| panic!("unknown role: {e}"));
    assert_eq!(
        reply["error"]["message"], "Invalid RPC request role: not-a-role",
        "unknown role: {reply}"
    );

    let u = unique_id("fun");
    let reply = conn.request(&u, &rpc_frame(&u, "no_such_fn", json!([]), json!({})));
    check_error_envelope(&reply, &u, 1001).unwrap_or_else(|e| panic!("unknown fun: {e}"));
    assert_eq!(
        reply["error"]["message"], "Command not found",
        "unknown fun: {reply}"
    );
    assert_eq!(
        reply["error"]["details"], "Command not found: no_such_fn",
        "unknown fun: {reply}"
    );

    let u = unique_id("type");
    let reply = conn.request(&u, &rpc_frame(&u, "catalog_query", json!([5]), json!({})));
    check_error_envelope(&reply, &u, 1003)
        .unwrap_or_else(|e| panic!("catalog_query args:[5]: {e}"));
    assert_eq!(
        reply["error"]["message"], "RPC execution failed",
        "catalog_query args:[5]: {reply}"
    );

    let u = unique_id("scope");
    let reply = conn.request(
        &u,
        &rpc_frame(
            &u,
            "catalog_query",
            json!([{"entry_type": "nodes", "scope": "planet"}]),
            json!({}),
        ),
    );
    check_error_envelope(&reply, &u, 1003).unwrap_or_else(|e| panic!("scope planet: {e}"));
    let details = reply["error"]["details"].as_str().unwrap_or("");
    assert!(
        details.contains("Unsupported discovery scope: planet"),
        "scope planet: details should say `Unsupported discovery scope: planet`: {reply}"
    );

    // The same connection still works after the errors...
    assert_eq!(conn.call_ok("echo", json!("same conn")), json!("same conn"));
    // ...and so does a fresh one.
    let mut fresh = node.connect();
    assert_eq!(fresh.call_ok("echo", json!("hello")), json!("hello"));
    assert_eq!(fresh.call_ok("echos", json!("x")), json!(["x"]));
    assert!(node.is_running(), "node exited; log:\n{}", node.log());
}

/// (d) WebSocket pings are answered with a pong carrying the same payload.
#[test]
fn pings_are_answered() {
    let node = Node::start(["--cluster-id", "ping"]);
    let mut conn = node.connect();
    for round in 0..3u8 {
        let payload = [b'p', b'i', b'n', b'g', b'0' + round];
        conn.send_ping(&payload);
        match conn.recv_event(Duration::from_secs(5)) {
            Event::Pong(p) => assert_eq!(p, payload, "pong payload for ping {round}"),
            Event::Json { value, .. } => {
                panic!("unexpected message while waiting for pong {round}: {value}")
            }
            other => panic!("no pong for ping {round}: {other:?}"),
        }
    }
    // The connection is still usable for RPCs.
    assert_eq!(conn.call_ok("echo", json!(1)), json!(1));
}

/// (e) `catalog_query` pages with `next_page_token` and filters namespaces
/// on dot boundaries.
#[test]
fn catalog_query_pages_by_namespace() {
    let mut config = String::new();
    let market: Vec<String> = (0..7).map(|i| format!("svc.market.quote{i}")).collect();
    for name in &market {
        config.push_str(&format!(
            "[[functions]]\nname = \"{name}\"\nversion = \"1.2.3\"\ntags = [\"market\", \"quotes\"]\nscope = \"zone\"\n\n"
        ));
    }
    // Decoys: share a string prefix with `svc.market`, not a namespace.
    let decoys = ["svc.marketing.promo", "svc.marketplace.listing"];
    for name in decoys {
        config.push_str(&format!("[[functions]]\nname = \"{name}\"\nversion = \"1.0.0\"\ntags = [\"decoy\"]\nscope = \"zone\"\n\n"));
    }
    let node = Node::start_with_config(&config, ["--cluster-id", "paging"]);
    let mut conn = node.connect();

    let names_of = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap_or_else(|| panic!("items is not an array: {}", preview(page)))
            .iter()
            .map(|it| {
                it.pointer("/identity/name")
                    .and_then(Value::as_str)
                    .unwrap_or_else(|| {
                        panic!("function item without identity.name: {}", preview(it))
                    })
                    .to_string()
            })
            .collect()
    };

    let mut seen: Vec<String> = Vec::new();
    let mut page_sizes = Vec::new();
    let mut request = json!({"entry_type": "functions", "namespace": "svc.market", "limit": 3});
    let mut finished = false;
    for _ in 0..10 {
        let page = conn.call_ok("catalog_query", request.clone());
        assert_eq!(page["entry_type"], "functions", "{}", preview(&page));
        let names = names_of(&page);
        assert!(names.len() <= 3, "page larger than limit 3: {names:?}");
        page_sizes.push(names.len());
        seen.extend(names);
        match page.get("next_page_token") {
            None | Some(Value::Null) => {
                finished = true;
                break;
            }
            Some(Value::String(token)) => {
                assert!(!token.is_empty(), "empty next_page_token should be omitted");
                request = json!({"entry_type": "functions", "namespace": "svc.market", "limit": 3, "page_token": token});
            }
            Some(other) => panic!("next_page_token should be a string: {other}"),
        }
    }
    assert!(
        finished,
        "paging did not end within 10 pages; seen {seen:?}"
    );
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        seen.len(),
        "duplicates across pages: {seen:?} (page sizes {page_sizes:?})"
    );
    let mut want = market.clone();
    want.sort();
    assert_eq!(sorted, want, "svc.market pages (page sizes {page_sizes:?})");

    // Same query, one page.
    let all = conn.call_ok(
        "catalog_query",
        json!({"entry_type": "functions", "namespace": "svc.market"}),
    );
    let mut names = names_of(&all);
    names.sort();
    assert_eq!(names, want, "svc.market without limit");
    assert!(
        all.get("next_page_token").is_none_or(Value::is_null),
        "no more pages: {}",
        preview(&all)
    );

    // `svc.marketing` is a different namespace.
    let other = conn.call_ok(
        "catalog_query",
        json!({"entry_type": "functions", "namespace": "svc.marketing"}),
    );
    let names = names_of(&other);
    assert!(
        names.iter().all(|n| !market.contains(n)),
        "svc.marketing returned svc.market functions: {names:?}"
    );
    assert_eq!(
        names,
        vec!["svc.marketing.promo".to_string()],
        "svc.marketing"
    );
}

/// A bad setting stops `mpreg server` at start with one line naming the key
/// and the problem, and a non-zero exit code: from a file, the environment
/// and a flag.
#[test]
fn server_rejects_bad_settings_with_one_clear_line() {
    let dir = mpreg_tests::unique_temp_dir("badcfg");
    let cfg = dir.join("bad.toml");
    std::fs::write(&cfg, "gossip_intervl = 1\n").unwrap();
    let run = |args: &[&str], env: Option<(&str, &str)>| {
        let mut cmd = std::process::Command::new(mpreg_tests::mpreg_bin());
        cmd.arg("server")
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("MPREG_") {
                cmd.env_remove(k);
            }
        }
        if let Some((k, v)) = env {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run mpreg");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        )
    };
    let cfg_arg = cfg.to_string_lossy().to_string();
    type Case<'a> = (Vec<&'a str>, Option<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (vec!["--config", cfg_arg.as_str()], None, "`gossip_intervl`"),
        (
            vec![],
            Some(("MPREG_GOSSIP_INTERVAL", "fast")),
            "`gossip_interval`",
        ),
        (vec!["--runtime", "quantum"], None, "`runtime`"),
        (vec!["--scope", "planet"], None, "`scope`"),
    ];
    for (args, env, key) in cases {
        let (ok, stderr) = run(&args, env);
        assert!(!ok, "{args:?} {env:?} should fail");
        assert_eq!(
            stderr.lines().count(),
            1,
            "one line expected, got: {stderr}"
        );
        assert!(stderr.contains(key), "{stderr} should name {key}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// A mixed cluster: nodes on the tokio and the mio runtime side by side
/// (alternating, whatever `MPREG_TEST_RUNTIME` says) form a full mesh, list
/// each other, and a GOODBYE from a mio node reaches the tokio ones.
#[test]
fn mixed_runtimes_form_one_cluster() {
    let runtime = |i: usize| if i.is_multiple_of(2) { "tokio" } else { "mio" };
    let mut nodes = start_cluster("mixed", 4, |i| {
        vec!["--runtime".to_string(), runtime(i).to_string()]
    });
    if let Err(e) = wait_for_mesh(&nodes, Duration::from_secs(10)) {
        panic!("{e}");
    }
    for (i, node) in nodes.iter().enumerate() {
        assert!(
            node.log().contains(&format!("mpreg_{}", runtime(i))),
            "node {i} is not on {}: {}",
            runtime(i),
            node.log()
        );
    }
    let gone = nodes[3].url().to_string();
    nodes[3].stop();
    let mut hub = nodes[0].connect();
    assert!(
        wait_until(Duration::from_secs(5), Duration::from_millis(50), || {
            !peer_urls(&mut hub).contains(&gone)
        }),
        "the tokio hub still lists the departed mio node {gone}"
    );
}

/// `mpreg server --log-format json` writes one JSON object per log line
/// (for log shippers), on either runtime.
#[test]
fn json_log_lines_on_request() {
    let node = Node::start(["--cluster-id", "logs", "--log-format", "json"]);
    assert!(
        wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
            node.log().contains("node listening")
        }),
        "no listening line: {}",
        node.log()
    );
    let log = node.log();
    let line = log
        .lines()
        .find(|l| l.contains("node listening"))
        .unwrap_or_default();
    let v: Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("not a JSON object per line ({e}): {log}"));
    assert_eq!(v["level"], "INFO", "{v}");
    assert_eq!(v["fields"]["message"], "node listening", "{v}");
    assert_eq!(v["fields"]["node_id"], node.url(), "{v}");
}
