//! Black-box tests of the monitoring endpoints: a real `mpreg server`,
//! plain HTTP over 127.0.0.1 to its monitoring listener
//! (`MPREG_MONITORING_URL=`) and to its client WebSocket port, and the CLI
//! commands that read them (`mpreg discovery lag --url ws://...` as the
//! runbook writes it, `mpreg report export-lag`). Runs on the runtime
//! `MPREG_TEST_RUNTIME` names (tokio by default).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mpreg_tests::{mpreg_bin, Node};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(10);
const NO_ARGS: [&str; 0] = [];

/// One HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {self:#?}"))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `raw` to `addr` (`127.0.0.1:port`) and reads the answer until the
/// server closes (every monitoring answer is `Connection: close`), bounded
/// by [`TIMEOUT`].
fn exchange(addr: &str, raw: &[u8]) -> Answer {
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(TIMEOUT)).expect("timeout");
    s.set_write_timeout(Some(TIMEOUT)).expect("timeout");
    s.write_all(raw).expect("write request");
    let mut bytes = Vec::new();
    s.read_to_end(&mut bytes)
        .unwrap_or_else(|e| panic!("read answer from {addr}: {e}"));
    let text = String::from_utf8(bytes).expect("UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header line");
            (n.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let answer = Answer {
        status,
        headers,
        body: body.to_string(),
    };
    let length: usize = answer
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .expect("Content-Length");
    assert_eq!(length, answer.body.len(), "{answer:#?}");
    answer
}

fn request(addr: &str, method: &str, path: &str, extra: &str) -> Answer {
    let raw =
        format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    exchange(addr, raw.as_bytes())
}

fn get(addr: &str, path: &str) -> Answer {
    request(addr, "GET", path, "")
}

/// `127.0.0.1:port` of the node's monitoring listener.
fn monitoring_addr(node: &Node) -> String {
    let url = node
        .ready_value("MPREG_MONITORING_URL")
        .expect("the node prints MPREG_MONITORING_URL=");
    url.strip_prefix("http://")
        .unwrap_or_else(|| panic!("unexpected monitoring URL {url}"))
        .to_string()
}

fn client_addr(node: &Node) -> String {
    format!("127.0.0.1:{}", node.port())
}

/// Runs `mpreg ARGS` with no `MPREG_*` variables, bounded by [`TIMEOUT`]:
/// (exit code, stdout, stderr).
fn mpreg(args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(mpreg_bin());
    cmd.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("MPREG_") {
            cmd.env_remove(&key);
        }
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mpreg");
    let deadline = Instant::now() + TIMEOUT;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mpreg {args:?} did not exit within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every endpoint's shape, on one address.
fn check_endpoints(addr: &str, node: &Node) {
    for (path, key) in [
        ("/discovery/summary", "summary_export"),
        ("/discovery/cache", "resolver_cache"),
        ("/discovery/cache", "summary_cache"),
        ("/discovery/policy", "policy"),
        ("/discovery/lag", "lag"),
        ("/dns/metrics", "dns_gateway"),
    ] {
        let a = get(addr, path);
        assert_eq!(a.status, 200, "{addr}{path}: {a:#?}");
        assert_eq!(a.header("content-type"), Some("application/json"));
        let b = a.json();
        assert_eq!(b["status"], "ok", "{addr}{path}: {b}");
        assert!(b.get(key).is_some(), "{addr}{path} lacks {key}: {b}");
        assert!(b["timestamp"].as_f64().is_some(), "{addr}{path}: {b}");
    }
    let lag = get(addr, "/discovery/lag").json()["lag"].clone();
    assert_eq!(lag["resolver_enabled"], false, "{lag}");
    assert_eq!(lag["summary_export_enabled"], false, "{lag}");
    assert!(lag["generated_at"].as_f64().is_some(), "{lag}");
    let policy = get(addr, "/discovery/policy").json()["policy"].clone();
    assert!(
        policy["rules"].is_array() && policy["rule_count"] == 0,
        "{policy}"
    );

    let health = get(addr, "/health").json();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["node_id"], node.url());
    assert_eq!(health["cluster_id"], "mon");
    assert!(health["uptime_seconds"].as_f64().is_some_and(|u| u >= 0.0));
    assert!(health["peers"]["connected"].is_u64(), "{health}");

    let index = get(addr, "/").json();
    let paths: Vec<&str> = index["endpoints"]
        .as_array()
        .expect("endpoint list")
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    for p in ["/discovery/lag", "/metrics", "/health"] {
        assert!(paths.contains(&p), "{index}");
    }

    let missing = get(addr, "/no/such/endpoint");
    assert_eq!(missing.status, 404, "{missing:#?}");
    assert_eq!(missing.json()["status"], "error");
    let post = request(addr, "POST", "/discovery/lag", "Content-Length: 0\r\n");
    assert_eq!(post.status, 405, "{post:#?}");
    assert_eq!(post.header("allow"), Some("GET"));

    let scrape = get(addr, "/metrics");
    assert_eq!(scrape.status, 200);
    assert!(scrape
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/plain; version=0.0.4")));
    let samples = parse_metrics(&scrape.body);
    for series in [
        "mpreg_client_messages_total",
        "mpreg_fabric_messages_total",
        "mpreg_client_frames_rejected_total",
        "mpreg_discovery_rate_limited_total",
        "mpreg_peers{state=\"connected\"}",
        "mpreg_peers{state=\"dead\"}",
        "mpreg_catalog_entries{kind=\"functions\"}",
        "mpreg_catalog_entries{kind=\"nodes\"}",
        "mpreg_registrations",
        "mpreg_dns_queries_total{transport=\"udp\"}",
        "mpreg_access_audit_entries",
        "mpreg_discovery_summary_exports",
        "mpreg_discovery_summary_hold_downs",
        "mpreg_discovery_cache_stale_serves",
        "mpreg_discovery_delta_dropped",
    ] {
        assert!(
            samples.iter().any(|(s, _)| s == series),
            "{series} missing from {}",
            scrape.body
        );
    }
    // The node advertises itself and its RPCs.
    let nodes = samples
        .iter()
        .find(|(s, _)| s == "mpreg_catalog_entries{kind=\"nodes\"}")
        .map(|(_, v)| *v);
    assert!(nodes.is_some_and(|n| n >= 1.0), "{nodes:?}");
}

/// `(series, value)` of every sample line; asserts each line is a comment
/// (`# HELP` / `# TYPE`) or `name{labels} value` with a valid name.
fn parse_metrics(text: &str) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line}"));
        let name = series.split('{').next().unwrap_or("");
        let valid = name.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
        });
        assert!(valid && !name.is_empty(), "bad metric name in {line}");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        out.push((series.to_string(), value));
    }
    out
}

#[test]
fn endpoints_on_the_monitoring_port_and_the_client_port() {
    let node = Node::start(["--cluster-id", "mon"]);
    let monitoring = monitoring_addr(&node);
    assert_ne!(monitoring, client_addr(&node));
    check_endpoints(&monitoring, &node);
    check_endpoints(&client_addr(&node), &node);

    // A client RPC counts in the scrape, and the client port still speaks
    // WebSocket after answering HTTP.
    let mut conn = node.connect();
    assert_eq!(conn.call_ok("echo", json!("hi")), json!("hi"));
    let samples = parse_metrics(&get(&monitoring, "/metrics").body);
    let messages = samples
        .iter()
        .find(|(s, _)| s == "mpreg_client_messages_total")
        .map(|(_, v)| *v);
    assert!(messages.is_some_and(|m| m >= 1.0), "{messages:?}");

    // Discovery queries are timed by the runtime (echo is not a query).
    let count = |samples: &[(String, f64)]| {
        samples
            .iter()
            .find(|(s, _)| s == "mpreg_discovery_query_latency_ms_count")
            .map(|(_, v)| *v)
    };
    let before = count(&samples).unwrap_or(-1.0);
    for _ in 0..3 {
        conn.call_ok("catalog_query", json!({"entry_type": "nodes"}));
    }
    let samples = parse_metrics(&get(&monitoring, "/metrics").body);
    assert_eq!(count(&samples), Some(before + 3.0), "{samples:?}");
    let le_inf = samples
        .iter()
        .find(|(s, _)| s == "mpreg_discovery_query_latency_ms_bucket{le=\"+Inf\"}")
        .map(|(_, v)| *v);
    assert_eq!(le_inf, Some(before + 3.0));

    // Requests the runtime refuses itself: garbage and an oversized head.
    let bad = exchange(&monitoring, b"\x16\x03\x01 not http\r\n\r\n");
    assert_eq!(bad.status, 400, "{bad:#?}");
    let huge = format!("GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(20 * 1024));
    let big = exchange(&client_addr(&node), huge.as_bytes());
    assert_eq!(big.status, 431, "{big:#?}");
    assert_eq!(conn.call_ok("echo", json!("still")), json!("still"));
}

#[test]
fn cli_reads_monitoring_from_the_websocket_url_and_the_monitoring_url() {
    let node = Node::start(["--cluster-id", "mon"]);
    let ws = node.url().to_string();
    let http = format!("http://{}", monitoring_addr(&node));

    let (code, out, err) = mpreg(&["discovery", "lag", "--url", &ws]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("summary_export_lag_seconds"), "{out}");
    assert!(out.contains("resolver_enabled"), "{out}");

    let (code, out, err) = mpreg(&["report", "export-lag", "--url", &http, "--output", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let lag: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(lag["summary_export_enabled"], false, "{lag}");
    let (code, out, err) = mpreg(&["report", "export-lag", "--url", &ws]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("summary_export_lag_seconds"), "{out}");

    let (code, out, err) = mpreg(&["discovery", "status", "--url", &ws, "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let status: Value = serde_json::from_str(&out).expect("JSON");
    for key in ["summary", "cache", "policy", "lag"] {
        assert_eq!(status[key]["status"], "ok", "{key}: {status}");
    }
    let (code, out, err) = mpreg(&["report", "namespace-health", "--url", &ws]);
    assert_eq!(code, 0, "{out}{err}");
}

/// `monitoring_auth_token`: every endpoint answers 401 without the token,
/// on the monitoring listener and on the client port alike, and the CLI
/// passes it with `--monitoring-token`.
#[test]
fn the_monitoring_token_guards_every_endpoint() {
    let token = "0123456789abcdef-monitoring";
    let node = Node::start_with_config(
        &format!("cluster_id = \"mon\"\nmonitoring_auth_token = \"{token}\"\n"),
        NO_ARGS,
    );
    for addr in [monitoring_addr(&node), client_addr(&node)] {
        for path in ["/metrics", "/health", "/discovery/lag"] {
            let denied = get(&addr, path);
            assert_eq!(denied.status, 401, "{addr}{path}: {denied:#?}");
            assert!(denied.body.contains("monitoring_auth_token"), "{denied:#?}");
            let wrong = request(&addr, "GET", path, "Authorization: Bearer guess\r\n");
            assert_eq!(wrong.status, 401, "{addr}{path}");
            let ok = request(
                &addr,
                "GET",
                path,
                &format!("Authorization: Bearer {token}\r\n"),
            );
            assert_eq!(ok.status, 200, "{addr}{path}: {ok:#?}");
            let ok = request(
                &addr,
                "GET",
                path,
                &format!("X-Monitoring-Token: {token}\r\n"),
            );
            assert_eq!(ok.status, 200, "{addr}{path}: {ok:#?}");
        }
    }
    let ws = node.url().to_string();
    let (code, out, err) = mpreg(&["discovery", "lag", "--url", &ws]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains("401") && err.contains("--monitoring-token"),
        "{err}"
    );
    let (code, out, err) = mpreg(&[
        "discovery",
        "lag",
        "--url",
        &ws,
        "--monitoring-token",
        token,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("summary_export_lag_seconds"), "{out}");
}

#[test]
fn policy_rules_need_an_admin_credential_and_monitoring_can_be_off() {
    let config = r#"
cluster_id = "mon"
discovery_policy_enabled = true

[[discovery_policy_rules]]
namespace = "svc.secret"
visibility = ["mon"]

[[discovery_tenant_credentials]]
tenant_id = "ops"
token = "admin-token"
scheme = "bearer"
role = "admin"

[[discovery_tenant_credentials]]
tenant_id = "viewer"
token = "reader-token"
scheme = "bearer"
role = "reader"
"#;
    let node = Node::start_with_config(config, NO_ARGS);
    let addr = monitoring_addr(&node);
    for extra in ["", "Authorization: Bearer reader-token\r\n"] {
        let p = request(&addr, "GET", "/discovery/policy", extra).json()["policy"].clone();
        assert_eq!(p["rules"], json!([]), "{extra:?}: {p}");
        assert_eq!(p["rules_redacted"], true);
        assert_eq!(p["rule_count"], 1);
    }
    let p = request(
        &addr,
        "GET",
        "/discovery/policy",
        "Authorization: Bearer admin-token\r\n",
    )
    .json()["policy"]
        .clone();
    assert_eq!(p["rules"][0]["namespace"], "svc.secret", "{p}");

    let off = Node::start_with_config(
        "cluster_id = \"mon\"\nmonitoring_enabled = false\n",
        NO_ARGS,
    );
    assert!(off.ready_value("MPREG_MONITORING_URL").is_none());
    let a = get(&client_addr(&off), "/discovery/lag");
    assert_eq!(a.status, 404, "{a:#?}");
}
