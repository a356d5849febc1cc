//! Black-box tests of the registration RPCs and watch delivery against real
//! `mpreg server` processes (issue 4): `catalog_register` /
//! `catalog_unregister` with connection binding and leases, MPREG's
//! `dns_register` / `dns_unregister` / `dns_list` / `dns_describe`,
//! persistence across a restart (on both runtimes), and a watcher that
//! sees every add and remove.
//!
//! Timing figures (registration rate, propagation and withdrawal times)
//! are printed; run with `--nocapture` to see them.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mpreg_tests::{
    preview, start_cluster, unique_temp_dir, wait_for, wait_for_mesh, Conn, Event, Node,
};
use serde_json::{json, Value};

/// Services the bulk test registers.
const BULK: usize = 1000;
/// Bound on propagation and withdrawal (issue 4: "within 2 s").
const PROPAGATION: Duration = Duration::from_secs(2);

/// `catalog_query` of the services of `namespace` on one connection (all
/// pages), by name.
fn service_names(conn: &mut Conn, namespace: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..100 {
        let mut q = json!({"entry_type": "services", "namespace": namespace, "limit": 2000});
        if let Some(t) = &token {
            q["page_token"] = json!(t);
        }
        let res = conn.call_ok("catalog_query", q);
        for item in res["items"].as_array().cloned().unwrap_or_default() {
            names.push(item["name"].as_str().unwrap_or_default().to_string());
        }
        match res["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    names
}

/// Calls `catalog_watch(req)` on `conn`, subscribes to the topic it names
/// with MPREG's `pubsub-subscribe`, waits for the ack; returns the topic.
fn watch(conn: &mut Conn, sub_id: &str, req: Value) -> String {
    let res = conn.call_ok("catalog_watch", req);
    let topic = res["topic"]
        .as_str()
        .unwrap_or_else(|| panic!("catalog_watch gave no topic: {res}"))
        .to_string();
    let u = format!("sub-{sub_id}");
    let ack = conn.request(
        &u,
        &json!({"role": "pubsub-subscribe", "u": u, "subscription": {
            "subscription_id": sub_id,
            "patterns": [{"pattern": topic, "exact_match": true}],
            "subscriber": "registration-test", "created_at": 0.0,
            "get_backlog": false, "backlog_seconds": 300}}),
    );
    assert_eq!(ack["success"], true, "subscribe failed: {ack}");
    topic
}

/// What a watcher saw: per service name, the sequence of events
/// (`+` added, `-` removed), and any resync hints.
#[derive(Default)]
struct Seen {
    events: BTreeMap<String, Vec<char>>,
    adds: usize,
    removes: usize,
    resyncs: Vec<Value>,
    notifications: usize,
}

impl Seen {
    fn take(&mut self, msg: &Value) {
        if msg["role"] != "pubsub-notification" {
            return;
        }
        self.notifications += 1;
        let m = &msg["message"];
        if m["headers"]["event"] == "discovery.resync" {
            self.resyncs.push(m["payload"].clone());
            return;
        }
        assert_eq!(m["headers"]["event"], "discovery.catalog_delta", "{msg}");
        let delta = &m["payload"]["delta"];
        for (list, mark) in [("services", '+'), ("service_removals", '-')] {
            for item in delta[list].as_array().cloned().unwrap_or_default() {
                let name = item["name"].as_str().unwrap_or_default().to_string();
                self.events.entry(name).or_default().push(mark);
                if mark == '+' {
                    self.adds += 1;
                } else {
                    self.removes += 1;
                }
            }
        }
    }

    /// Reads `conn` until `done(self)` or `timeout`.
    fn read_until(&mut self, conn: &mut Conn, timeout: Duration, done: impl Fn(&Seen) -> bool) {
        let deadline = Instant::now() + timeout;
        while !done(self) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match conn.recv_event(left) {
                Event::Json { value, .. } => self.take(&value),
                Event::Pong(_) | Event::NotJson(_) => {}
                Event::Closed(why) => panic!("watcher connection closed: {why}"),
                Event::TimedOut => return,
            }
        }
    }
}

/// A client registers [`BULK`] services bound to its connection on node A
/// of a 3-node cluster (B and C started with `--peer A`); C's
/// `catalog_query` returns all of them within 2 s; the client disconnects
/// and they are withdrawn everywhere within 2 s; a watcher on C saw every
/// add and then every remove, and no resync hint.
fn bulk_registration(runtime: &str) {
    let nodes = start_cluster(&format!("bulk-{runtime}"), 3, |_| {
        vec!["--runtime".to_string(), runtime.to_string()]
    });
    wait_for_mesh(&nodes, Duration::from_secs(20)).unwrap_or_else(|e| panic!("{e}"));
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);

    let mut watcher = c.connect();
    let topic = watch(
        &mut watcher,
        "bulk-watch",
        json!({"namespace": "svc.bulk", "scope": "zone"}),
    );
    assert_eq!(topic, "mpreg.discovery.delta.svc.bulk");

    // Register, pipelined: every request first, then every reply.
    let mut client = a.connect();
    client.set_timeout(Duration::from_secs(30));
    let started = Instant::now();
    for i in 0..BULK {
        let u = format!("reg-{i}");
        let frame = json!({"role": "rpc", "u": u, "cmds": [{
            "name": "catalog_register", "fun": "catalog_register",
            "args": [{"entry_type": "services", "name": format!("svc-{i:04}"), "namespace": "svc.bulk",
                      "protocol": "tcp", "port": 10_000 + i, "targets": ["127.0.0.1"],
                      "bind_to_connection": true}],
            "kwargs": {}, "locs": [], "function_id": null, "version_constraint": null,
            "target_cluster": null, "routing_topic": null}],
            "return_intermediate_results": false, "intermediate_result_callback_topic": null,
            "include_execution_summary": false, "debug_mode": false});
        client.send_json(&frame);
    }
    for i in 0..BULK {
        let reply = client.wait_reply(&format!("reg-{i}"));
        assert!(reply["error"].is_null(), "registration {i} failed: {reply}");
        let r = &reply["r"]["catalog_register"];
        assert_eq!(r["bound_to_connection"], true, "{r}");
        assert_eq!(r["item"]["node_id"], a.url(), "{r}");
    }
    let registered = started.elapsed();
    let acked_at = Instant::now();

    // C (and B) see all of them.
    let mut on_c = c.connect();
    let seen_on_c = wait_for(PROPAGATION, Duration::from_millis(20), || {
        (service_names(&mut on_c, "svc.bulk").len() == BULK).then(Instant::now)
    });
    let propagated = match seen_on_c {
        Some(t) => t.duration_since(acked_at),
        None => panic!(
            "C holds {} of {BULK} services {PROPAGATION:?} after the last registration was acknowledged",
            service_names(&mut on_c, "svc.bulk").len()
        ),
    };
    let mut on_b = b.connect();
    assert_eq!(service_names(&mut on_b, "svc.bulk").len(), BULK);

    // Disconnect: withdrawn everywhere.
    client.close();
    let closed_at = Instant::now();
    let mut on_a = a.connect();
    let mut conns = [&mut on_a, &mut on_b, &mut on_c];
    let gone = wait_for(PROPAGATION, Duration::from_millis(20), || {
        conns
            .iter_mut()
            .all(|c| service_names(c, "svc.bulk").is_empty())
            .then(Instant::now)
    });
    let withdrawn = match gone {
        Some(t) => t.duration_since(closed_at),
        None => {
            let left: Vec<usize> = conns
                .iter_mut()
                .map(|c| service_names(c, "svc.bulk").len())
                .collect();
            panic!(
                "services left on A, B, C {PROPAGATION:?} after the client disconnected: {left:?}"
            )
        }
    };

    // The watcher saw every add, then every remove, once each.
    let mut seen = Seen::default();
    seen.read_until(&mut watcher, Duration::from_secs(10), |s| {
        s.adds >= BULK && s.removes >= BULK
    });
    assert!(seen.resyncs.is_empty(), "resync hints: {:?}", seen.resyncs);
    assert_eq!(seen.events.len(), BULK, "services seen by the watcher");
    let bad: Vec<(&String, &Vec<char>)> = seen
        .events
        .iter()
        .filter(|(_, ev)| ev.as_slice() != ['+', '-'])
        .take(5)
        .collect();
    assert!(
        bad.is_empty(),
        "services not seen as exactly add-then-remove: {bad:?}"
    );
    println!(
        "[{runtime}] {BULK} registrations acknowledged in {registered:?}; on C after {propagated:?}; \
         withdrawn from A, B, C {withdrawn:?} after disconnect; watcher got {} notifications",
        seen.notifications
    );
}

#[test]
fn thousand_bound_services_propagate_and_withdraw_tokio() {
    bulk_registration("tokio");
}

#[test]
fn thousand_bound_services_propagate_and_withdraw_mio() {
    bulk_registration("mio");
}

/// MPREG's DNS registration RPCs across nodes, plus leases and errors.
#[test]
fn dns_register_is_listed_on_another_node() {
    let nodes = start_cluster("dns", 2, |_| vec![]);
    wait_for_mesh(&nodes, Duration::from_secs(20)).unwrap_or_else(|e| panic!("{e}"));
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut on_a = a.connect();
    let mut on_b = b.connect();

    let req = json!({"name": "tradefeed", "namespace": "market", "protocol": "tcp", "port": 9000,
                     "targets": ["10.0.1.12", "10.0.1.13"], "tags": ["primary"],
                     "capabilities": ["quotes"], "metadata": {"tier": "gold"}, "priority": 10, "weight": 5});
    let res = on_a.call_ok("dns_register", req);
    assert_eq!(
        res["service"],
        json!({"name": "tradefeed", "namespace": "market", "protocol": "tcp", "port": 9000,
               "targets": ["10.0.1.12", "10.0.1.13"], "scope": "zone", "tags": ["primary"],
               "capabilities": ["quotes"], "metadata": {"tier": "gold"}, "priority": 10, "weight": 5})
    );
    assert_eq!(
        res["registration_id"].as_str().map(str::len),
        Some(36),
        "{res}"
    );
    assert!(res["registered_at"].is_f64());

    let query = json!({"namespace": "market", "name": "tradefeed", "protocol": "tcp"});
    let listed = wait_for(PROPAGATION, Duration::from_millis(20), || {
        let res = on_b.call_ok("dns_list", query.clone());
        (res["items"].as_array().is_some_and(|i| i.len() == 1)).then_some(res)
    })
    .unwrap_or_else(|| panic!("dns_list on B never showed the service registered on A"));
    assert!(listed.get("entry_type").is_none(), "{listed}");
    let item = &listed["items"][0];
    for (k, v) in [
        ("name", json!("tradefeed")),
        ("namespace", json!("market")),
        ("protocol", json!("tcp")),
        ("port", json!(9000)),
        ("targets", json!(["10.0.1.12", "10.0.1.13"])),
        ("scope", json!("zone")),
        ("priority", json!(10)),
        ("weight", json!(5)),
        ("metadata", json!({"tier": "gold"})),
        ("node_id", json!(a.url())),
    ] {
        assert_eq!(item[k], v, "{k} in {}", preview(item));
    }
    let described = on_b.call_ok("dns_describe", query.clone());
    assert_eq!(described["items"], listed["items"]);

    let res = on_a.call_ok(
        "dns_unregister",
        json!({"name": "tradefeed", "namespace": "market", "protocol": "tcp", "port": 9000}),
    );
    assert_eq!(res["removed"], true);
    let gone = wait_for(PROPAGATION, Duration::from_millis(20), || {
        on_b.call_ok("dns_list", query.clone())["items"]
            .as_array()
            .is_some_and(Vec::is_empty)
            .then_some(())
    });
    assert!(gone.is_some(), "dns_unregister on A did not reach B");

    // A lease that is not refreshed lapses everywhere.
    let res = on_a.call_ok(
        "catalog_register",
        json!({"entry_type": "queues", "queue_name": "svc.lease.q", "ttl_seconds": 1}),
    );
    assert_eq!(res["bound_to_connection"], false);
    let queues = |conn: &mut Conn| {
        conn.call_ok(
            "catalog_query",
            json!({"entry_type": "queues", "queue_name": "svc.lease.q"}),
        )["items"]
            .as_array()
            .map_or(0, Vec::len)
    };
    assert!(wait_for(PROPAGATION, Duration::from_millis(20), || (queues(
        &mut on_b
    ) == 1)
        .then_some(()))
    .is_some());
    let lapsed = wait_for(Duration::from_secs(4), Duration::from_millis(50), || {
        (queues(&mut on_a) == 0 && queues(&mut on_b) == 0).then_some(())
    });
    assert!(
        lapsed.is_some(),
        "an unrefreshed 1 s lease was not withdrawn"
    );

    // Clear errors.
    for (fun, payload, want) in [
        (
            "catalog_register",
            json!({"entry_type": "nodes", "ttl_seconds": 5}),
            "cannot be registered over RPC",
        ),
        (
            "catalog_register",
            json!({"entry_type": "queues", "queue_name": "q"}),
            "give `ttl_seconds`",
        ),
        (
            "dns_register",
            json!({"name": "x", "persist": true}),
            "data_dir",
        ),
        (
            "dns_register",
            json!({"name": "x", "port": 70000}),
            "`port` must be within",
        ),
    ] {
        let reply = on_a.call(fun, json!([payload]), json!({}));
        assert_eq!(reply["error"]["code"], 1003, "{fun}: {reply}");
        let details = reply["error"]["details"].as_str().unwrap_or_default();
        assert!(details.contains(want), "{fun}: {details:?} lacks {want:?}");
    }
}

/// Registrations made with `persist: true` survive a restart (the node
/// comes back on another port, so they are re-stamped with its new id);
/// the others do not.
fn persisted_registrations_survive_a_restart(runtime: &str) {
    let data = unique_temp_dir("data");
    let args = |dir: &std::path::Path| {
        vec![
            "--runtime".to_string(),
            runtime.to_string(),
            "--data-dir".to_string(),
            dir.display().to_string(),
        ]
    };
    let mut first = Node::start(args(&data));
    let mut conn = first.connect();
    conn.call_ok(
        "dns_register",
        json!({"name": "kept", "namespace": "svc.persist", "protocol": "tcp", "port": 80, "persist": true}),
    );
    conn.call_ok(
        "catalog_register",
        json!({"entry_type": "services", "name": "leased", "namespace": "svc.persist", "ttl_seconds": 600, "persist": true}),
    );
    conn.call_ok(
        "catalog_register",
        json!({"entry_type": "services", "name": "bound", "namespace": "svc.persist", "bind_to_connection": true}),
    );
    let file = data.join("registrations.json");
    assert!(file.is_file(), "{} was not written", file.display());
    assert!(
        !data.join(".registrations.json.tmp").exists(),
        "temp file left behind"
    );
    let old_url = first.url().to_string();
    conn.close();
    assert!(first.stop().is_some(), "node did not stop on SIGTERM");

    let second = Node::start(args(&data));
    let mut conn = second.connect();
    let res = conn.call_ok(
        "catalog_query",
        json!({"entry_type": "services", "namespace": "svc.persist"}),
    );
    let items = res["items"].as_array().cloned().unwrap_or_default();
    let mut names: Vec<&str> = items.iter().filter_map(|i| i["name"].as_str()).collect();
    names.sort();
    assert_eq!(names, ["kept", "leased"], "{res}");
    for item in &items {
        assert_eq!(item["node_id"], second.url(), "re-stamped (was {old_url})");
    }
    let res = conn.call_ok(
        "dns_unregister",
        json!({"name": "kept", "namespace": "svc.persist", "protocol": "tcp", "port": 80}),
    );
    assert_eq!(res["removed"], true);
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        !text.contains("\"kept\""),
        "unregistered entry still persisted: {text}"
    );
    assert!(text.contains("\"leased\""), "{text}");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn persisted_registrations_survive_a_restart_tokio() {
    persisted_registrations_survive_a_restart("tokio");
}

#[test]
fn persisted_registrations_survive_a_restart_mio() {
    persisted_registrations_survive_a_restart("mio");
}
