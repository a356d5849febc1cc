//! Black-box tests of the `mpreg` operator CLI (issue 8): the binary runs as
//! a subprocess against real nodes on 127.0.0.1 and is judged by its exit
//! code, stdout and stderr.
//!
//! Conventions checked: tables by default and `--json` for the raw result,
//! `--url` / `MPREG_URL`, exit 0 on success, and on failure a non-zero exit
//! with exactly one `error: ...` line on stderr (1 for failures, 2 for usage
//! errors).
//!
//! Every command's RPC is served; [`ok_json`] requires exit 0 and a JSON
//! object.

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mpreg_tests::{mpreg_bin, unique_temp_dir, wait_for_mesh, wait_until, Node};
use serde_json::Value;

/// Longest any single CLI invocation may take here.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// What one `mpreg` invocation did.
#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(&self) -> &Self {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        self
    }

    fn json(&self) -> Value {
        self.ok();
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }

    /// A failure: `code`, and exactly one `error: ...` line on stderr,
    /// which is returned.
    fn fails(&self, code: i32) -> &str {
        assert_eq!(self.code, code, "expected exit code {code}: {self:#?}");
        let line = self.stderr.strip_suffix('\n').unwrap_or(&self.stderr);
        assert!(
            line.starts_with("error: ") && !line.contains('\n'),
            "expected one `error: ...` line on stderr: {self:#?}"
        );
        line
    }
}

/// A running `mpreg` subprocess with captured output.
struct Spawned {
    child: Child,
    dir: PathBuf,
}

impl Spawned {
    /// Waits (bounded) for the process to exit.
    fn finish(mut self) -> Run {
        let deadline = Instant::now() + CLI_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("mpreg did not exit within {CLI_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let read = |name: &str| std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        let run = Run {
            code: status.code().unwrap_or(-1),
            stdout: read("stdout"),
            stderr: read("stderr"),
        };
        let _ = std::fs::remove_dir_all(&self.dir);
        run
    }

    fn stderr_so_far(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr")).unwrap_or_default()
    }
}

/// Starts `mpreg ARGS` with a clean environment (no MPREG_* variables but
/// the given `MPREG_URL`).
fn spawn(args: &[&str], url_env: Option<&str>) -> Spawned {
    let dir = unique_temp_dir("cli");
    let out = File::create(dir.join("stdout")).expect("stdout file");
    let err = File::create(dir.join("stderr")).expect("stderr file");
    let mut cmd = Command::new(mpreg_bin());
    cmd.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("MPREG_") {
            cmd.env_remove(&key);
        }
    }
    if let Some(url) = url_env {
        cmd.env("MPREG_URL", url);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    let child = cmd.spawn().expect("spawn mpreg");
    Spawned { child, dir }
}

/// Runs `mpreg ARGS` to completion.
fn mpreg(args: &[&str], url_env: Option<&str>) -> Run {
    spawn(args, url_env).finish()
}

/// A command whose RPC may not exist on the node yet: it succeeds (and then
/// `--json` output is an object), or it fails with one error line naming
/// the node's `1001 Command not found` for `fun`.
fn ok_json(args: &[&str], url: &str, fun: &str) -> Value {
    let run = mpreg(args, Some(url));
    assert_eq!(run.code, 0, "{args:?} ({fun}) failed: {run:#?}");
    let v = run.json();
    assert!(v.is_object(), "{args:?}: {v}");
    v
}

/// A 127.0.0.1 port nothing listens on.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    port
}

/// Starts nodes `a` and `b` of cluster `cli` (b seeded with a) and waits
/// for the mesh.
fn two_nodes() -> Vec<Node> {
    let a = Node::start(["--cluster-id", "cli", "--name", "a"]);
    let b = Node::start(["--cluster-id", "cli", "--name", "b", "--peer", a.url()]);
    let nodes = vec![a, b];
    wait_for_mesh(&nodes, Duration::from_secs(30)).unwrap_or_else(|e| panic!("{e}"));
    nodes
}

/// `client call`, `client list-peers`, `discovery query`, `discovery
/// cluster-map` and the rpc commands against a 2-node cluster, in tables
/// and in JSON, with the URL from `--url` and from `MPREG_URL`.
#[test]
fn read_commands_against_a_cluster() {
    let nodes = two_nodes();
    let (a, b) = (nodes[0].url(), nodes[1].url());

    // client call: a string result prints as is; --json quotes it.
    let run = mpreg(&["client", "call", "echo", "\"hi\""], Some(a));
    assert_eq!(run.ok().stdout, "hi\n", "{run:#?}");
    assert_eq!(run.stderr, "");
    let run = mpreg(
        &["client", "call", "echo", "hi", "--url", a, "--json"],
        None,
    );
    assert_eq!(run.ok().stdout, "\"hi\"\n");
    let v = mpreg(
        &["client", "call", "echos", "1", "x", "{\"k\":true}"],
        Some(a),
    )
    .json();
    assert_eq!(v, serde_json::json!([1, "x", {"k": true}]));
    // Credentials are sent in the handshake; a node without auth ignores them.
    let run = mpreg(
        &[
            "client",
            "call",
            "echo",
            "ok",
            "--token",
            "t0k",
            "--api-key",
            "k3y",
        ],
        Some(a),
    );
    assert_eq!(run.ok().stdout, "ok\n");

    // list-peers: a JSON array naming the other node; a table with it.
    let peers = mpreg(&["client", "list-peers", "--json"], Some(a)).json();
    let urls: Vec<&str> = peers
        .as_array()
        .unwrap_or_else(|| panic!("list-peers --json is not an array: {peers}"))
        .iter()
        .filter_map(|p| p["url"].as_str())
        .collect();
    assert_eq!(urls, vec![b], "{peers}");
    let run = mpreg(&["client", "list-peers", "--scope", "zone"], Some(a));
    let table = &run.ok().stdout;
    assert!(table.starts_with("URL "), "{table}");
    assert!(table.contains(b) && table.contains("1 peer(s)"), "{table}");
    let run = mpreg(&["client", "list-peers", "--scope", "local"], Some(a));
    assert_eq!(run.ok().stdout, "No peers.\n");

    // discovery query --entry-type nodes: items in JSON; both URLs in the table.
    let res = mpreg(
        &["discovery", "query", "--entry-type", "nodes", "--json"],
        Some(a),
    )
    .json();
    assert_eq!(res["entry_type"], "nodes");
    let items = res["items"].as_array().expect("items");
    assert!(!items.is_empty(), "{res}");
    let ids: Vec<&str> = items.iter().filter_map(|i| i["node_id"].as_str()).collect();
    assert!(ids.contains(&a) && ids.contains(&b), "{ids:?}");
    let run = mpreg(
        &["discovery", "query", "--entry-type", "nodes", "--url", a],
        None,
    );
    let table = &run.ok().stdout;
    assert!(table.starts_with("NODE_ID"), "{table}");
    assert!(table.contains(a) && table.contains(b), "{table}");
    assert!(table.contains("2 entries (nodes)"), "{table}");
    // Default entry type: functions, one row per advertised RPC.
    let run = mpreg(&["discovery", "query", "--function-name", "echo"], Some(a));
    let table = &run.ok().stdout;
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.lines().any(|l| l.starts_with("echo ")), "{table}");
    // Paging flags reach the node.
    let page = mpreg(
        &[
            "discovery",
            "query",
            "--entry-type",
            "nodes",
            "--limit",
            "1",
            "--json",
        ],
        Some(a),
    )
    .json();
    assert_eq!(page["items"].as_array().map(Vec::len), Some(1), "{page}");
    let token = page["next_page_token"].as_str().expect("next_page_token");
    let run = mpreg(
        &[
            "discovery",
            "query",
            "--entry-type",
            "nodes",
            "--limit",
            "1",
        ],
        Some(a),
    );
    assert!(
        run.ok().stdout.contains(&format!("--page-token {token}")),
        "{run:#?}"
    );

    // discovery cluster-map --scope zone (runbook "Cluster Map Missing Nodes").
    let run = mpreg(&["discovery", "cluster-map", "--scope", "zone"], Some(a));
    let table = &run.ok().stdout;
    assert!(table.contains("cluster cli"), "{table}");
    assert!(table.contains(a) && table.contains(b), "{table}");
    assert!(table.contains("2 nodes"), "{table}");
    let map = mpreg(
        &["discovery", "cluster-map", "--scope", "zone", "--json"],
        Some(a),
    )
    .json();
    assert_eq!(map["cluster_id"], "cli");
    assert_eq!(map["nodes"].as_array().map(Vec::len), Some(2), "{map}");
    let map = mpreg(
        &["discovery", "cluster-map", "--scope", "local", "--json"],
        Some(a),
    )
    .json();
    assert_eq!(map["nodes"].as_array().map(Vec::len), Some(1), "{map}");

    // rpc-list / rpc-describe / rpc-report.
    let list = mpreg(
        &["discovery", "rpc-list", "--function-name", "echo", "--json"],
        Some(a),
    )
    .json();
    let items = list["items"].as_array().expect("items");
    assert_eq!(items.len(), 2, "echo on both nodes: {list}");
    let run = mpreg(
        &["discovery", "rpc-describe", "--function-name", "echo"],
        Some(a),
    );
    assert!(run.ok().stdout.contains("echo "), "{run:#?}");
    let report = mpreg(&["discovery", "rpc-report", "--json"], Some(a)).json();
    assert!(
        report["total_functions"].as_u64().unwrap_or(0) > 0,
        "{report}"
    );
    let run = mpreg(&["discovery", "rpc-report"], Some(a));
    assert!(run.ok().stdout.starts_with("total functions: "), "{run:#?}");
}

/// `discovery watch`: subscribes, prints each notification, stops after
/// --count or --duration, exits 0. A second node joining changes the
/// catalog; a node that publishes catalog deltas reports it, one that does
/// not yet lets the watch run out its duration.
#[test]
fn discovery_watch() {
    let a = Node::start(["--cluster-id", "cli", "--name", "a"]);
    let started = Instant::now();
    let watch = spawn(
        &["discovery", "watch", "--count", "1", "--duration", "5"],
        Some(a.url()),
    );
    // Subscribed once it says what it watches.
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(20), || watch
            .stderr_so_far()
            .contains("watching mpreg.discovery.delta")),
        "the watch did not start: {:?}",
        watch.stderr_so_far()
    );
    let b = Node::start(["--cluster-id", "cli", "--name", "b", "--peer", a.url()]);
    let run = watch.finish();
    let elapsed = started.elapsed();
    run.ok();
    if run.stdout.is_empty() {
        // No delta arrived: the watch ran out its --duration.
        assert!(
            elapsed >= Duration::from_millis(4900),
            "{elapsed:?} {run:#?}"
        );
    } else {
        let lines: Vec<&str> = run.stdout.lines().collect();
        assert_eq!(lines.len(), 1, "--count 1: {run:#?}");
        assert!(lines[0].contains("  mpreg.discovery.delta  "), "{run:#?}");
    }

    // JSON lines, a namespace topic, and no change at all: exits 0 after
    // the duration.
    let started = Instant::now();
    let run = mpreg(
        &[
            "discovery",
            "watch",
            "--namespace",
            "svc.none",
            "--duration",
            "1",
            "--json",
        ],
        Some(a.url()),
    );
    run.ok();
    for line in run.stdout.lines() {
        let v: Value = serde_json::from_str(line).expect("JSON line");
        assert_eq!(v["topic"], "mpreg.discovery.delta.svc.none", "{line}");
    }
    assert!(started.elapsed() >= Duration::from_millis(900));
    drop(b);

    // A bad scope is refused by catalog_watch before subscribing.
    let line = mpreg(
        &["discovery", "watch", "--scope", "galaxy", "--duration", "1"],
        Some(a.url()),
    )
    .fails(1)
    .to_string();
    assert!(
        line.contains("RPC error 1003") && line.contains("galaxy"),
        "{line}"
    );
    // --summary needs summary_watch.
    let run = mpreg(
        &["discovery", "watch", "--summary", "--duration", "1"],
        Some(a.url()),
    );
    if run.code != 0 {
        assert!(
            run.fails(1).contains("Command not found: summary_watch"),
            "{run:#?}"
        );
    }
}

/// Every failure: non-zero exit and one clear line on stderr.
/// `--url` (and `MPREG_URL`) take a comma-separated list: a node that
/// refuses the connection hands the command to the next, with a warning
/// naming both (the runbook's "Resolver Or Hub Outage").
#[test]
fn a_url_list_fails_over_to_the_next_node() {
    let node = Node::start(["--cluster-id", "cli"]);
    let dead = format!("ws://127.0.0.1:{}", closed_port());
    let list = format!("{dead},{}", node.url());

    let run = mpreg(&["client", "call", "echo", "\"hi\"", "--url", &list], None);
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(run.stdout.trim(), "hi", "{run:#?}");
    assert!(
        run.stderr.contains(&format!("warning: {dead}")) && run.stderr.contains(node.url()),
        "{run:#?}"
    );
    let run = mpreg(&["discovery", "query", "--json"], Some(&list));
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.json()["items"].is_array(), "{run:#?}");
    let run = mpreg(&["client", "list-peers", "--json"], Some(&list));
    assert_eq!(run.code, 0, "{run:#?}");

    // Every URL down: the error names the last one.
    let dead2 = format!("ws://127.0.0.1:{}", closed_port());
    let run = mpreg(
        &[
            "client",
            "call",
            "echo",
            "hi",
            "--url",
            &format!("{dead}, {dead2}"),
        ],
        None,
    );
    assert_eq!(run.code, 1, "{run:#?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{run:#?}");
    assert!(
        lines[0].starts_with(&format!("warning: {dead}")),
        "{run:#?}"
    );
    assert!(
        lines[1].starts_with("error: ") && lines[1].contains(&dead2),
        "{run:#?}"
    );
}

#[test]
fn error_paths() {
    // Connection refused names the URL.
    let url = format!("ws://127.0.0.1:{}", closed_port());
    let run = mpreg(&["client", "call", "echo", "hi", "--url", &url], None);
    let line = run.fails(1);
    assert!(line.contains(&url) && line.contains("refused"), "{line}");
    assert_eq!(run.stdout, "");

    // No URL at all.
    let run = mpreg(&["client", "call", "echo", "hi"], None);
    assert_eq!(run.fails(2), "error: Provide --url or set MPREG_URL.");
    let run = mpreg(&["discovery", "query"], None);
    assert_eq!(run.fails(2), "error: Provide --url or set MPREG_URL.");

    // Bad --timeout values are usage errors naming the flag.
    for bad in ["abc", "0", "-1", "inf"] {
        let run = mpreg(
            &[
                "client",
                "call",
                "echo",
                "hi",
                "--url",
                &url,
                "--timeout",
                bad,
            ],
            None,
        );
        let line = run.fails(2);
        assert!(line.contains("--timeout"), "{bad}: {line}");
    }

    // A server that accepts TCP but never answers: the timeout fires.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent = format!("ws://{}", listener.local_addr().expect("addr"));
    let started = Instant::now();
    let run = mpreg(
        &[
            "client",
            "call",
            "echo",
            "hi",
            "--url",
            &silent,
            "--timeout",
            "0.5",
        ],
        None,
    );
    let line = run.fails(1);
    assert!(line.contains(&silent) && line.contains("500ms"), "{line}");
    assert!(started.elapsed() < Duration::from_secs(10));
    drop(listener);

    // Unknown command and subcommand.
    let run = mpreg(&["client", "nope"], None);
    assert!(run.fails(2).contains("nope"), "{run:#?}");
    let run = mpreg(&["client", "dns-register", "--name", "x"], None);
    let line = run.fails(2);
    assert!(
        line.contains("--namespace") && line.contains("--port"),
        "{line}"
    );

    // Monitoring commands: --url, MPREG_MONITORING_URL or the node's
    // MPREG_URL, a ws:// URL read over HTTP on the same port.
    let port = closed_port();
    let ws = format!("ws://127.0.0.1:{port}");
    for args in [
        &["discovery", "lag"][..],
        &["discovery", "status"],
        &["report", "export-lag"],
        &["report", "namespace-health"],
        &["monitor", "dns"],
    ] {
        let run = mpreg(args, None);
        assert_eq!(
            run.fails(2),
            "error: Provide --url or set MPREG_MONITORING_URL or MPREG_URL.",
            "{args:?}"
        );
        let run = mpreg(args, Some(&ws));
        let line = run.fails(1);
        assert!(
            line.contains(&format!("http://127.0.0.1:{port}/")) && line.contains("refused"),
            "{args:?}: {line}"
        );
    }
    let http = format!("http://127.0.0.1:{}", closed_port());
    let run = mpreg(&["report", "export-lag", "--url", &http], None);
    let line = run.fails(1);
    assert!(line.contains(&http) && line.contains("refused"), "{line}");

    // Local DNS label errors.
    let run = mpreg(&["client", "dns-node-decode", "bad_label"], None);
    assert!(run.fails(1).contains("Invalid DNS node label"), "{run:#?}");
    let run = mpreg(&["client", "dns-node-encode", ""], None);
    assert!(
        run.fails(1).contains("Failed to encode node_id"),
        "{run:#?}"
    );
}

/// Errors the node reports: unknown RPC (1001), bad payload (1003); and
/// every read command of the runbook and of MPREG's CLI succeeding on a
/// plain node.
#[test]
fn node_errors_and_served_rpcs() {
    let node = Node::start(["--cluster-id", "cli"]);
    let url = node.url();

    let run = mpreg(&["client", "call", "nope"], Some(url));
    let line = run.fails(1);
    assert!(
        line.contains("RPC error 1001") && line.contains("nope"),
        "{line}"
    );
    let run = mpreg(
        &[
            "discovery",
            "query",
            "--entry-type",
            "nodes",
            "--scope",
            "nowhere",
        ],
        Some(url),
    );
    let line = run.fails(1);
    assert!(
        line.contains("RPC error 1003") && line.contains("Unsupported discovery scope: nowhere"),
        "{line}"
    );
    let run = mpreg(
        &["discovery", "query", "--entry-type", "spaceships"],
        Some(url),
    );
    assert!(run.fails(1).contains("spaceships"), "{run:#?}");

    let rules = unique_temp_dir("cli-rules").join("rules.json");
    std::fs::write(
        &rules,
        r#"{"namespace": "svc.secret", "visibility": ["secure-cluster"]}"#,
    )
    .expect("write rules");
    let rules = rules.to_string_lossy().to_string();
    let served: [(&[&str], &str); 12] = [
        (
            &["discovery", "cache-stats", "--json"],
            "resolver_cache_stats",
        ),
        (
            &["client", "resolver-cache-stats", "--json"],
            "resolver_cache_stats",
        ),
        (&["discovery", "resync", "--json"], "resolver_resync"),
        (
            &["discovery", "access-audit", "--limit", "5", "--json"],
            "discovery_access_audit",
        ),
        (
            &[
                "discovery",
                "policy",
                "status",
                "--namespace",
                "svc",
                "--json",
            ],
            "namespace_status",
        ),
        (
            &[
                "discovery",
                "summary",
                "--namespace",
                "svc",
                "--scope",
                "global",
                "--json",
            ],
            "summary_query",
        ),
        (&["client", "dns-list", "--json"], "dns_list"),
        (
            &["client", "dns-describe", "--namespace", "market", "--json"],
            "dns_describe",
        ),
        (
            &["client", "namespace-policy", "export", "--json"],
            "namespace_policy_export",
        ),
        (
            &["client", "namespace-policy", "audit", "--json"],
            "namespace_policy_audit",
        ),
        (
            &[
                "client",
                "namespace-policy",
                "validate",
                "--rules-file",
                &rules,
                "--json",
            ],
            "namespace_policy_validate",
        ),
        (
            &[
                "client",
                "dns-unregister",
                "--name",
                "nothing",
                "--namespace",
                "none",
                "--port",
                "1",
                "--json",
            ],
            "dns_unregister",
        ),
    ];
    for (args, fun) in served {
        ok_json(args, url, fun);
    }
}

/// dns-register → dns-list → dns-describe → dns-unregister.
#[test]
fn dns_registration_round_trip() {
    let node = Node::start(["--cluster-id", "cli"]);
    let url = node.url();
    let reg = ok_json(
        &[
            "client",
            "dns-register",
            "--name",
            "tradefeed",
            "--namespace",
            "market",
            "--port",
            "9000",
            "--target",
            "127.0.0.1",
            "--tag",
            "primary",
            "--capability",
            "quotes",
            "--metadata",
            "tier=gold",
            "--metadata",
            "n=5",
            "--priority",
            "10",
            "--weight",
            "5",
            "--json",
        ],
        url,
        "dns_register",
    );
    assert_eq!(reg["service"]["name"], "tradefeed", "{reg}");
    assert_eq!(reg["service"]["metadata"]["n"], 5, "{reg}");
    let list = ok_json(
        &["client", "dns-list", "--namespace", "market", "--json"],
        url,
        "dns_list",
    );
    assert_eq!(list["items"][0]["port"], 9000, "{list}");
    let run = mpreg(
        &["client", "dns-describe", "--namespace", "market"],
        Some(url),
    );
    let table = &run.ok().stdout;
    assert!(
        table.contains("tradefeed") && table.contains("tier=gold"),
        "{table}"
    );
    let gone = ok_json(
        &[
            "client",
            "dns-unregister",
            "--name",
            "tradefeed",
            "--namespace",
            "market",
            "--port",
            "9000",
            "--json",
        ],
        url,
        "dns_unregister",
    );
    assert_eq!(gone["removed"], true, "{gone}");
}

/// Local commands: completions, DNS labels, help texts.
#[test]
fn local_commands() {
    let run = mpreg(&["completions", "bash"], None);
    let script = &run.ok().stdout;
    assert!(
        script.contains("_mpreg()") && script.contains("complete "),
        "{script}"
    );
    assert!(script.contains("cluster-map"), "subcommands are completed");
    for shell in ["zsh", "fish"] {
        let run = mpreg(&["completions", shell], None);
        assert!(run.ok().stdout.contains("discovery"), "{shell}");
    }
    let run = mpreg(&["completions", "tcsh"], None);
    run.fails(2);

    let run = mpreg(&["client", "dns-node-encode", "ws://127.0.0.1:10000"], None);
    assert_eq!(run.ok().stdout, "b32-o5ztulzpgezdolrqfyyc4mj2geydambq\n");
    let run = mpreg(
        &[
            "client",
            "dns-node-decode",
            "b32-o5ztulzpgezdolrqfyyc4mj2geydambq",
        ],
        None,
    );
    assert_eq!(run.ok().stdout, "ws://127.0.0.1:10000\n");
    let run = mpreg(&["client", "dns-node-decode", "node-1", "--json"], None);
    assert_eq!(run.ok().stdout, "\"node-1\"\n");

    // Every command the runbook names has help saying which symptom it serves.
    for (args, mentions) in [
        (&["discovery", "lag"][..], "summary_export_lag_seconds"),
        (&["discovery", "summary"], "Summary Export Lag"),
        (&["discovery", "policy", "status"], "allow_summaries"),
        (
            &["discovery", "cache-stats"],
            "Resolver Cache Stale Or Empty",
        ),
        (&["discovery", "resync"], "Resolver Cache Stale Or Empty"),
        (&["discovery", "access-audit"], "rate_limited"),
        (&["discovery", "cluster-map"], "Cluster Map Missing Nodes"),
        (&["discovery", "query"], "catalog_query"),
        (&["discovery", "watch"], "catalog_watch"),
        (&["discovery", "status"], "/discovery/lag"),
        (&["client", "list-peers"], "list_peers"),
        (&["report", "export-lag"], "summary_export_lag_seconds"),
        (&["report", "namespace-health"], "Summary Export Lag"),
        (&["monitor", "dns"], "DNS Interoperability"),
    ] {
        let mut with_help = args.to_vec();
        with_help.push("--help");
        let run = mpreg(&with_help, None);
        let help = &run.ok().stdout;
        assert!(help.contains("Runbook: "), "{args:?}: {help}");
        assert!(
            help.contains(mentions),
            "{args:?} should mention {mentions}: {help}"
        );
    }
}

/// The runbook's "Policy Or Tenant Visibility Denials", end to end: a
/// tenant-restricted namespace comes back empty for the wrong tenant
/// (symptom); `discovery policy status` and `discovery access-audit` name
/// the rule's decision (checks); asking as the allowed tenant, and
/// authenticating as it, shows the entries (actions). The admin gate and the
/// watch denial the runbook mentions are checked on the way.
#[test]
fn runbook_policy_or_tenant_visibility_denials() {
    let config = r#"
discovery_policy_enabled = true
discovery_policy_default_allow = true
discovery_tenant_mode = true
discovery_tenant_allow_request_override = true

[[discovery_policy_rules]]
namespace = "svc.secret"
visibility_tenants = ["tenant-a"]

[[discovery_tenant_credentials]]
tenant_id = "tenant-a"
token = "token-a"
role = "reader"

[[discovery_tenant_credentials]]
tenant_id = "ops"
token = "admin-token"
role = "admin"
"#;
    let node = Node::start_with_config(config, ["--cluster-id", "runbook"]);
    let url = node.url();
    let register = r#"{"entry_type": "functions", "name": "svc.secret.keys", "version": "1.0.0", "ttl_seconds": 600}"#;
    // Registration needs an admin once credentials exist.
    let line = mpreg(
        &[
            "client",
            "call",
            "catalog_register",
            register,
            "--token",
            "token-a",
        ],
        Some(url),
    )
    .fails(1)
    .to_string();
    assert!(line.contains("403"), "{line}");
    mpreg(
        &[
            "client",
            "call",
            "catalog_register",
            register,
            "--token",
            "admin-token",
        ],
        Some(url),
    )
    .ok();

    // Symptom: catalog_query returns empty for a known service.
    let query = |extra: &[&str]| {
        let mut args = vec!["discovery", "query", "--namespace", "svc.secret", "--json"];
        args.extend_from_slice(extra);
        let v = mpreg(&args, Some(url)).json();
        v["items"].as_array().map_or(0, Vec::len)
    };
    assert_eq!(query(&["--viewer-tenant-id", "tenant-b"]), 0);
    // The CLI shows discovery_access_denied on watches.
    let run = mpreg(
        &[
            "discovery",
            "watch",
            "--namespace",
            "svc.secret",
            "--count",
            "1",
        ],
        Some(url),
    );
    let line = run.fails(1).to_string();
    assert!(line.contains("discovery_access_denied"), "{line}");

    // Checks: the policy status names the decision; the audit records it.
    let status = mpreg(
        &[
            "discovery",
            "policy",
            "status",
            "--namespace",
            "svc.secret",
            "--viewer-tenant-id",
            "tenant-b",
            "--json",
        ],
        Some(url),
    )
    .json();
    assert_eq!(status["allowed"], false, "{status}");
    assert_eq!(status["reason"], "viewer_denied");
    assert!(status.get("rule").is_none(), "rule redacted: {status}");
    let audit = mpreg(&["discovery", "access-audit", "--json"], Some(url)).json();
    let entries = audit["entries"].as_array().expect("entries");
    assert!(
        entries
            .iter()
            .any(|e| e["event"] == "catalog_query" && e["reason"] == "viewer_denied"),
        "{audit}"
    );
    // The table form names the same.
    let table = mpreg(&["discovery", "access-audit"], Some(url));
    assert!(table.ok().stdout.contains("viewer_denied"), "{table:#?}");

    // Actions: include the right viewer_tenant_id; or authenticate as the
    // tenant (a bound tenant wins over whatever the request claims).
    assert_eq!(query(&["--viewer-tenant-id", "tenant-a"]), 1);
    assert_eq!(
        query(&["--viewer-tenant-id", "tenant-b", "--token", "token-a"]),
        1
    );
}

/// The runbook's "Discovery Rate Limiting": the third query within the
/// window fails with 429 `discovery_rate_limited` (symptom); the access
/// audit shows `rate_limited` (check); a node with a higher
/// `discovery_rate_limit_requests_per_minute` serves the same load (action).
#[test]
fn runbook_discovery_rate_limiting() {
    let limited = |per_minute: u32| {
        format!(
            "discovery_rate_limit_requests_per_minute = {per_minute}\n\
             discovery_rate_limit_window_seconds = 60\n\
             discovery_rate_limit_max_keys = 100\n"
        )
    };
    let node = Node::start_with_config(&limited(2), ["--cluster-id", "rl"]);
    let url = node.url();
    let q = ["discovery", "query", "--entry-type", "nodes", "--json"];
    mpreg(&q, Some(url)).json();
    mpreg(&q, Some(url)).json();
    let run = mpreg(&q, Some(url));
    let line = run.fails(1);
    assert!(
        line.contains("429") && line.contains("discovery_rate_limited"),
        "{line}"
    );
    // Unlimited commands keep working for the same client.
    mpreg(&["client", "list-peers", "--json"], Some(url)).json();
    let audit = mpreg(&["discovery", "access-audit", "--json"], Some(url)).json();
    let entries = audit["entries"].as_array().expect("entries");
    assert!(
        entries
            .iter()
            .any(|e| e["reason"] == "rate_limited" && e["event"] == "catalog_query"),
        "{audit}"
    );

    let roomy = Node::start_with_config(&limited(100), ["--cluster-id", "rl"]);
    for _ in 0..5 {
        mpreg(&q, Some(roomy.url())).json();
    }
}
