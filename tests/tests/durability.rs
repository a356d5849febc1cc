//! Durability under `kill -9` (issue 11 part 1): a node with a `data_dir`
//! receives a stream of writes it persists (registrations with
//! `"persist": true`, withdrawals of them, and `namespace_policy_apply`,
//! whose history is persisted) from a client that records every write the
//! node acknowledged. The node is killed with SIGKILL at a different moment
//! of the stream in every round, a new node starts on the same `data_dir`,
//! and every acknowledged write must be there: each acknowledged
//! registration listed, each acknowledged withdrawal gone, the policy at
//! least at the last acknowledged version with every acknowledged version
//! kept. The restarted node must start cleanly (no warning about the
//! persisted files). Rounds accumulate on one `data_dir`, so a round also
//! checks that a restored node persists correctly again.
//!
//! The node answers a write only after `write_persisted` (temp file, fsync,
//! rename) returned, so an acknowledged write is on disk; a write the kill
//! interrupted before its answer may or may not be there, and the checks
//! accept both. Runs once per runtime (tokio and mio).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use mpreg_tests::{rpc_frame, unique_id, unique_temp_dir, Conn, Event, Node};
use serde_json::{json, Value};

/// Kill rounds on one data directory.
const ROUNDS: u64 = 6;
/// Bound on the writes of one round (the kill normally ends it far sooner).
const MAX_WRITES_PER_ROUND: usize = 5_000;
/// Bound on waiting for one acknowledgement.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// The namespace of every registration this test makes.
const NAMESPACE: &str = "svc.durable";

/// What a round's client learned: writes the node acknowledged, and the
/// one write (if any) whose answer the kill cut off.
#[derive(Default)]
struct Acked {
    /// Registered (true) or withdrawn (false) by an acknowledged write, by
    /// registration name; the last acknowledged write of a name wins.
    registrations: BTreeMap<String, bool>,
    /// Acknowledged policy versions and the namespace each one's rule names.
    policy_versions: Vec<(u64, String)>,
    /// The name of a registration write sent but not answered (its outcome
    /// is unknown, so it is not checked).
    in_flight: Option<String>,
    /// Writes acknowledged in this round.
    writes: usize,
}

/// The delay before round `round`'s kill: spread over 40 ms to 1.2 s so the
/// kill lands early, mid-stream and late relative to file rewrites.
fn kill_delay(round: u64) -> Duration {
    Duration::from_millis(40 + (round * 397) % 1_160)
}

/// Sends one RPC and waits for its answer. `Err` when the connection
/// closed or nothing came within [`REPLY_TIMEOUT`] (the node was killed).
fn try_call(conn: &mut Conn, fun: &str, payload: Value) -> Result<Value, String> {
    let u = unique_id("dur");
    let frame = rpc_frame(&u, fun, json!([payload]), json!({}));
    conn.try_send(tungstenite::Message::binary(frame.to_string().into_bytes()))?;
    let deadline = Instant::now() + REPLY_TIMEOUT;
    for _ in 0..10_000 {
        match conn.recv_event(deadline.saturating_duration_since(Instant::now())) {
            Event::Json { value, .. } if value["u"] == u.as_str() => {
                return match value["error"].is_null() {
                    true => Ok(value["r"][fun].clone()),
                    false => Err(format!("{fun} answered an error: {value}")),
                }
            }
            Event::Json { .. } | Event::Pong(_) | Event::NotJson(_) => {}
            Event::Closed(why) => return Err(format!("closed: {why}")),
            Event::TimedOut => return Err("timed out".into()),
        }
    }
    Err("no answer".into())
}

/// The key fields of registration `name` (what `dns_unregister` needs).
fn registration(name: &str, persist: bool) -> Value {
    json!({"name": name, "namespace": NAMESPACE, "protocol": "tcp", "port": 7000, "persist": persist})
}

/// Writes until the connection breaks (the kill) or the bound is reached.
/// Registrations alternate between `catalog_register` (with a lease) and
/// `dns_register`; every fourth write applies a new policy version, every
/// seventh withdraws an earlier acknowledged registration.
fn write_stream(url: &str, round: u64) -> Acked {
    let mut acked = Acked::default();
    let Ok(mut conn) = Conn::try_connect(url, REPLY_TIMEOUT) else {
        return acked;
    };
    for i in 0..MAX_WRITES_PER_ROUND {
        let name = format!("r{round}-w{i}");
        let result = if i % 4 == 3 {
            let ns = format!("svc.policy.r{round}.w{i}");
            let apply = json!({"rules": [{"namespace": ns, "visibility": ["ops"]}],
                               "enabled": false, "actor": "durability"});
            try_call(&mut conn, "namespace_policy_apply", apply).map(|r| {
                if let Some(v) = r["version"].as_u64() {
                    acked.policy_versions.push((v, ns));
                }
            })
        } else if i % 7 == 6 {
            let Some(victim) = acked
                .registrations
                .iter()
                .find_map(|(n, live)| live.then(|| n.clone()))
            else {
                continue;
            };
            acked.in_flight = Some(victim.clone());
            try_call(&mut conn, "dns_unregister", registration(&victim, false)).map(|r| {
                if r["removed"] == true {
                    acked.registrations.insert(victim, false);
                }
            })
        } else {
            acked.in_flight = Some(name.clone());
            let (fun, payload) = if i % 2 == 0 {
                let mut p = registration(&name, true);
                p["entry_type"] = json!("services");
                p["ttl_seconds"] = json!(3_600);
                ("catalog_register", p)
            } else {
                ("dns_register", registration(&name, true))
            };
            try_call(&mut conn, fun, payload).map(|_| {
                acked.registrations.insert(name, true);
            })
        };
        match result {
            Ok(()) => {
                acked.in_flight = None;
                acked.writes += 1;
            }
            Err(_) => break,
        }
    }
    acked
}

fn start(data: &Path, runtime: &str) -> Node {
    Node::start([
        "--data-dir",
        &data.display().to_string(),
        "--runtime",
        runtime,
    ])
}

/// Registration names in [`NAMESPACE`] a node lists (every page).
fn listed(conn: &mut Conn) -> Vec<String> {
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..1_000 {
        let mut q = json!({"entry_type": "services", "namespace": NAMESPACE, "limit": 1_000});
        if let Some(t) = &token {
            q["page_token"] = json!(t);
        }
        let res = conn.call_ok("catalog_query", q);
        for item in res["items"].as_array().into_iter().flatten() {
            names.push(item["name"].as_str().unwrap_or_default().to_string());
        }
        match res["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    names
}

/// Lines of the node's log that say a persisted file was not restored.
fn restore_problems(node: &Node) -> Vec<String> {
    node.log()
        .lines()
        .filter(|l| {
            l.contains("cannot read persisted state")
                || l.contains("ERROR")
                || (l.contains("WARN") && (l.contains("persist") || l.contains("restor")))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn acknowledged_writes_survive_kill_9_tokio() {
    acknowledged_writes_survive_kill_9("tokio");
}

#[test]
fn acknowledged_writes_survive_kill_9_mio() {
    acknowledged_writes_survive_kill_9("mio");
}

fn acknowledged_writes_survive_kill_9(runtime: &str) {
    let data: PathBuf = unique_temp_dir("durability");
    // Cumulative expectations over every round on this data directory.
    let mut registrations: BTreeMap<String, bool> = BTreeMap::new();
    let mut versions: Vec<(u64, String)> = Vec::new();
    let mut total_writes = 0;
    let mut node = start(&data, runtime);
    for round in 0..ROUNDS {
        let url = node.url().to_string();
        let writer = thread::spawn(move || write_stream(&url, round));
        let delay = kill_delay(round);
        thread::sleep(delay);
        node.kill();
        let acked = writer.join().expect("the writer thread does not panic");
        assert!(
            acked.writes > 0,
            "round {round}: no write was acknowledged within {delay:?} of the node's start"
        );
        total_writes += acked.writes;
        registrations.extend(acked.registrations);
        // Last: an unanswered withdrawal may have undone an acknowledged
        // registration of this round.
        if let Some(name) = &acked.in_flight {
            registrations.remove(name);
        }
        versions.extend(acked.policy_versions);

        node = start(&data, runtime);
        let problems = restore_problems(&node);
        assert!(
            problems.is_empty(),
            "round {round}: the restarted node did not start cleanly:\n{}",
            problems.join("\n")
        );
        let mut conn = node.connect();
        let names = listed(&mut conn);
        let missing: Vec<&String> = registrations
            .iter()
            .filter(|(n, live)| **live && !names.contains(n))
            .map(|(n, _)| n)
            .collect();
        let resurrected: Vec<&String> = registrations
            .iter()
            .filter(|(n, live)| !**live && names.contains(n))
            .map(|(n, _)| n)
            .collect();
        assert!(
            missing.is_empty() && resurrected.is_empty(),
            "round {round} (killed after {delay:?}, {} writes acknowledged): \
             acknowledged registrations missing after restart: {missing:?}; \
             acknowledged withdrawals undone: {resurrected:?}",
            acked.writes
        );
        if let Some((last, _)) = versions.last() {
            let export = conn.call_ok("namespace_policy_export", json!({"versions": true}));
            let current = export["version"].as_u64().unwrap_or(0);
            assert!(
                current >= *last,
                "round {round}: policy version {current} after restart, {last} was acknowledged: {export}"
            );
            for (v, ns) in &versions {
                let kept = conn.call_ok("namespace_policy_export", json!({"version": v}));
                let has_rule = kept["rules"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|r| r["namespace"] == ns.as_str());
                assert!(
                    has_rule,
                    "round {round}: acknowledged policy version {v} lost its rule for {ns}: {kept}"
                );
            }
        }
        // The next round writes only after the restored node answered, so
        // its writes land on top of the restored state.
        conn.close();
        eprintln!(
            "[{runtime}] round {round}: killed after {delay:?}; {} writes acknowledged; {} registrations, {} policy versions checked",
            acked.writes,
            registrations.len(),
            versions.len()
        );
    }
    assert!(total_writes > 0);
    node.stop();
    let _ = std::fs::remove_dir_all(&data);
}
