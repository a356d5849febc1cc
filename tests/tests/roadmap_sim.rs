//! The discovery roadmap's scenarios 1, 2 and 4
//! (`reference/roadmap_scenarios.md`) in the deterministic simulator, in
//! virtual time and over several seeds: the same three-region layout as
//! `roadmap.rs` (an exporting node, a member and a summary resolver per
//! region, regions linked through their exporters), with the bounds tight
//! enough to mean something because nothing here waits on a busy machine.
//! Scenario 3 (resolver outage with client failover) runs a simulated client
//! over the simulator's client connections, rotating with `mpreg-client`'s
//! own [`Endpoints`] (the state `FailoverClient` runs); `failover.rs` runs
//! the same story with real processes and the real client.
//!
//! A failure names its seed; `MPREG_SIM_SEED=<n>` replays it.

use std::collections::HashMap;
use std::time::Duration;

use mpreg_client::failover::{urls_from_cluster_map, urls_from_summary, BackoffPolicy, Endpoints};
use mpreg_core::config::FunctionDecl;
use mpreg_core::sim::{NetConfig, Sim};
use mpreg_core::{ConnKind, Frame, Input, Settings};
use mpreg_tests::rpc_frame;
use serde_json::{json, Value};

const REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];
const INTERVAL: f64 = 0.5;
const HOLD_DOWN: f64 = 2.0;

fn seeds() -> Vec<u64> {
    match std::env::var("MPREG_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => vec![seed],
        None => (0..5).collect(),
    }
}

fn func(name: &str) -> FunctionDecl {
    serde_json::from_value(json!({"name": name, "scope": "global"})).expect("valid declaration")
}

/// Node indexes of one region in the simulator.
struct Region {
    name: &'static str,
    exporter: usize,
    member: usize,
    resolver: usize,
}

fn start(seed: u64) -> (Sim, Vec<Region>) {
    let mut sim = Sim::new(seed, NetConfig::default());
    let mut regions: Vec<Region> = Vec::new();
    for name in REGIONS {
        let base = |i: usize, peers: Vec<String>| Settings {
            cluster_id: name.into(),
            cache_region: name.into(),
            gossip_interval: 0.5,
            peers,
            ..Sim::settings(i)
        };
        let i = sim.len();
        let global: Vec<String> = regions
            .first()
            .map(|r| sim.url(r.exporter))
            .into_iter()
            .collect();
        let exporter = sim.add(Settings {
            discovery_summary_export_enabled: true,
            discovery_summary_export_interval_seconds: INTERVAL,
            discovery_summary_export_scope: Some("global".into()),
            discovery_summary_export_hold_down_seconds: HOLD_DOWN,
            functions: vec![func(&format!("svc.prod.{name}.api"))],
            ..base(i, global)
        });
        let home = vec![sim.url(exporter)];
        let member = sim.add(Settings {
            functions: vec![func(&format!("svc.prod.{name}.worker"))],
            ..base(i + 1, home.clone())
        });
        let resolver = sim.add(Settings {
            discovery_summary_resolver_mode: true,
            discovery_summary_resolver_scopes: vec!["global".into()],
            discovery_resolver_mode: true,
            ..base(i + 2, home)
        });
        regions.push(Region {
            name,
            exporter,
            member,
            resolver,
        });
    }
    (sim, regions)
}

fn call(sim: &Sim, node: usize, fun: &str, payload: Value) -> Value {
    sim.node(node)
        .expect("node runs")
        .call(sim.now(), fun, payload)
        .unwrap_or_else(|e| panic!("{fun} on node {node}: {e:?}"))
}

fn global_summaries(sim: &Sim, node: usize, ns: &str) -> Value {
    call(
        sim,
        node,
        "summary_query",
        json!({"namespace": ns, "scope": "global", "include_ingress": true}),
    )
}

fn summary(v: &Value, id: &str) -> Option<Value> {
    v["items"]
        .as_array()?
        .iter()
        .find(|s| s["service_id"] == id)
        .cloned()
}

/// Sends one RPC frame on a client connection of `node` (opened first when
/// `open`); the reply goes nowhere, the test reads the effects.
fn client_rpc(sim: &mut Sim, node: usize, conn: u64, open: bool, fun: &str, payload: Value) {
    if open {
        sim.input(
            node,
            Input::Accepted {
                conn,
                kind: ConnKind::Client,
                headers: vec![],
                peer_addr: None,
                tls: false,
            },
        );
    }
    let frame = rpc_frame(&format!("u-{conn}-{fun}"), fun, json!([payload]), json!({}));
    sim.input(
        node,
        Input::Frame {
            conn,
            frame: Frame::Text(frame.to_string()),
        },
    );
}

/// Client connection ids far above the simulator's own link ids.
const CLIENT: u64 = 1 << 40;

#[test]
fn scenario_1_multi_region_delegation() {
    for seed in seeds() {
        let (mut sim, regions) = start(seed);
        let everywhere = |s: &Sim| {
            regions.iter().all(|asker| {
                regions.iter().filter(|o| o.name != asker.name).all(|o| {
                    let ns = format!("svc.prod.{}", o.name);
                    let v = global_summaries(s, asker.resolver, &ns);
                    summary(&v, &format!("{ns}.api")).is_some()
                        && summary(&v, &format!("{ns}.worker")).is_some()
                })
            })
        };
        assert!(
            sim.run_until(Duration::from_secs(15), everywhere),
            "seed {seed}: not every resolver answered every other region"
        );
        for asker in &regions {
            for owner in regions.iter().filter(|o| o.name != asker.name) {
                let ns = format!("svc.prod.{}", owner.name);
                let v = global_summaries(&sim, asker.resolver, &ns);
                for s in v["items"].as_array().expect("items") {
                    assert_eq!(s["source_cluster"], owner.name, "seed {seed}: {s}");
                    assert!(s.get("node_id").is_none() && s.get("endpoints").is_none());
                }
                let owner_urls: Vec<String> = [owner.exporter, owner.member, owner.resolver]
                    .iter()
                    .map(|i| sim.url(*i))
                    .collect();
                let ingress = v["ingress"][owner.name]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                assert!(
                    !ingress.is_empty()
                        && ingress
                            .iter()
                            .all(|u| owner_urls.iter().any(|o| u == o.as_str())),
                    "seed {seed}: ingress of {} must point into it: {v}",
                    owner.name
                );
                let zone = json!({"entry_type": "functions", "namespace": ns, "scope": "zone"});
                let here = call(&sim, asker.resolver, "catalog_query", zone.clone());
                assert_eq!(here["items"], json!([]), "seed {seed}: {here}");
                let there = call(&sim, owner.member, "catalog_query", zone);
                assert_eq!(
                    there["items"].as_array().map(Vec::len),
                    Some(2),
                    "seed {seed}: {there}"
                );
            }
        }
        assert!(sim.violation().is_none(), "{:?}", sim.violation());
    }
}

#[test]
fn scenario_2_controlled_cutover() {
    let ns = "svc.prod.eu-west";
    let api = "svc.prod.eu-west.api";
    for seed in seeds() {
        let (mut sim, regions) = start(seed);
        let (exporter, resolver) = (regions[1].exporter, regions[0].resolver);
        let present = move |s: &Sim| summary(&global_summaries(s, resolver, ns), api).is_some();
        assert!(
            sim.run_until(Duration::from_secs(15), present),
            "seed {seed}"
        );

        let conn = CLIENT;
        client_rpc(
            &mut sim,
            exporter,
            conn,
            true,
            "namespace_policy_apply",
            json!({"enabled": true, "rules": [{"namespace": ns, "allow_summaries": false}]}),
        );
        let withdrawal = Duration::from_secs_f64(HOLD_DOWN + 2.0 * INTERVAL + 0.5);
        assert!(
            sim.run_until(withdrawal, |s| !present(s)),
            "seed {seed}: denied summaries outlived {withdrawal:?}"
        );

        let now = sim.now().wall;
        client_rpc(
            &mut sim,
            exporter,
            conn,
            false,
            "namespace_policy_apply",
            json!({"enabled": true, "rules": [{"namespace": ns, "allow_summaries": false,
                "cutover_windows": [{"starts_at": now, "ends_at": now + 600.0,
                                     "allow_summaries": true, "export_scopes": ["global"]}]}]}),
        );
        let t0 = sim.now().mono;
        assert!(
            sim.run_until(Duration::from_secs(30), present),
            "seed {seed}: the cutover never exported"
        );
        let took = sim.now().mono.saturating_duration_since(t0);
        let item = summary(&global_summaries(&sim, resolver, ns), api).expect("present");
        let ttl = item["ttl_seconds"].as_f64().unwrap_or(0.0);
        assert!(
            took.as_secs_f64() <= ttl.min(HOLD_DOWN + 2.0 * INTERVAL + 0.5),
            "seed {seed}: exported {took:?} after the window opened (TTL {ttl} s)"
        );

        // Roll back to the deny version (2: the node starts at version 1).
        client_rpc(
            &mut sim,
            exporter,
            conn,
            false,
            "namespace_policy_rollback",
            json!({"version": 2}),
        );
        let t0 = sim.now().mono;
        assert!(
            sim.run_until(withdrawal, |s| !present(s)),
            "seed {seed}: the rollback left the export up past {withdrawal:?}"
        );
        let took = sim.now().mono.saturating_duration_since(t0);
        assert!(took <= withdrawal, "seed {seed}: {took:?}");
        assert!(sim.violation().is_none(), "{:?}", sim.violation());
    }
}

#[test]
fn scenario_4_churn_keeps_summaries_stable() {
    let service = "svc.prod.ap-south.pool";
    for seed in seeds() {
        let (mut sim, regions) = start(seed);
        let (exporter, resolver) = (regions[2].exporter, regions[0].resolver);
        let register = |sim: &mut Sim, conn: u64, id: &str| {
            client_rpc(
                sim,
                exporter,
                conn,
                true,
                "catalog_register",
                json!({"entry_type": "functions", "name": service, "version": "1.0.0",
                       "resources": [id], "scope": "global", "bind_to_connection": true}),
            );
        };
        for i in 0..10 {
            register(&mut sim, CLIENT + i, &format!("pool-{i}"));
        }
        let count = move |s: &Sim| {
            summary(&global_summaries(s, resolver, "svc.prod.ap-south"), service)
                .and_then(|v| v["endpoint_count"].as_u64())
        };
        assert!(
            sim.run_until(Duration::from_secs(15), |s| count(s) == Some(10)),
            "seed {seed}: the pool never reached the resolver"
        );

        // One endpoint joins and leaves every 200 ms for 20 s (100 changes;
        // 10 %/minute of 10 endpoints would be one a minute).
        let mut seen = Vec::new();
        let mut flap: Option<u64> = None;
        for step in 0..100u64 {
            flap = match flap.take() {
                None => {
                    let conn = CLIENT + 1000 + step;
                    register(&mut sim, conn, "pool-flap");
                    Some(conn)
                }
                Some(conn) => {
                    sim.input(exporter, Input::Closed { conn });
                    None
                }
            };
            for _ in 0..4 {
                sim.run_for(Duration::from_millis(50));
                seen.push(count(&sim));
            }
        }
        assert!(
            seen.iter().all(Option::is_some),
            "seed {seed}: the summary disappeared during churn"
        );
        let changes = seen.windows(2).filter(|w| w[0] != w[1]).count();
        let bound = (20.0 / HOLD_DOWN) as usize + 1;
        assert!(
            changes <= bound,
            "seed {seed}: 100 endpoint changes made the summary change {changes} times (bound {bound})"
        );

        // Settled at 12: it arrives within the hold-down.
        if flap.is_none() {
            register(&mut sim, CLIENT + 5000, "pool-flap");
        }
        register(&mut sim, CLIENT + 5001, "pool-late");
        let settle = Duration::from_secs_f64(HOLD_DOWN + 2.0 * INTERVAL + 0.5);
        assert!(
            sim.run_until(settle, |s| count(s) == Some(12)),
            "seed {seed}: the settled count never arrived within {settle:?}: {:?}",
            count(&sim)
        );
        assert!(sim.violation().is_none(), "{:?}", sim.violation());
    }
}

/// Longest a simulated call waits for its reply before it counts the URL
/// as failed (the `call_timeout` of a real client).
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts per call before giving up (`FailoverOptions::max_attempts`).
const MAX_ATTEMPTS: usize = 6;

/// A discovery client in the simulator: `mpreg-client`'s rotation state
/// over simulated client connections. Like `FailoverClient`, it keeps one
/// connection to the current URL; a refused connection, a close or a
/// timeout marks the URL failed and the call goes to the next one.
struct SimClient {
    eps: Endpoints,
    conn: Option<(String, u64)>,
    /// The rotation state runs on `std::time::Instant`: virtual time is
    /// mapped onto it from this base.
    base: std::time::Instant,
    next_u: u64,
    /// URL → node index.
    nodes: HashMap<String, usize>,
}

/// One answered call.
struct Served {
    result: Value,
    url: String,
    /// Virtual time from the call to its answer, failovers included.
    latency: Duration,
    attempts: usize,
}

impl SimClient {
    fn new(sim: &Sim, seeds: &[String]) -> SimClient {
        let policy = BackoffPolicy {
            base: Duration::from_millis(500),
            max: Duration::from_secs(5),
            ..BackoffPolicy::default()
        };
        SimClient {
            eps: Endpoints::new(seeds, policy).expect("ws:// seeds"),
            conn: None,
            base: std::time::Instant::now(),
            next_u: 0,
            nodes: (0..sim.len()).map(|i| (sim.url(i), i)).collect(),
        }
    }

    fn clock(&self, sim: &Sim) -> std::time::Instant {
        self.base + Duration::from_nanos(sim.now().mono.as_nanos())
    }

    /// Calls `fun`; `meanwhile` runs once, right after the first attempt's
    /// request is sent (to crash its node mid-call).
    fn call(
        &mut self,
        sim: &mut Sim,
        fun: &str,
        payload: Value,
        mut meanwhile: impl FnMut(&mut Sim),
    ) -> Result<Served, String> {
        let start = sim.now().mono;
        let mut tried = Vec::new();
        for attempt in 1..=MAX_ATTEMPTS {
            let now = self.clock(sim);
            let next = self.eps.next_attempt(now);
            if next.not_before > now {
                sim.run_for(next.not_before - now);
            }
            let url = next.url;
            tried.push(url.clone());
            let conn = match self.conn.take() {
                Some((u, c)) if u == url && !sim.client_closed(c) => Some(c),
                old => {
                    if let Some((_, c)) = old {
                        sim.client_close(c);
                    }
                    self.nodes.get(&url).and_then(|i| sim.client_connect(*i))
                }
            };
            let Some(conn) = conn else {
                // Refused: the node is down.
                self.eps.record_failure(&url, self.clock(sim));
                continue;
            };
            self.conn = Some((url.clone(), conn));
            self.next_u += 1;
            let u = format!("sim-client-{}", self.next_u);
            let frame = rpc_frame(&u, fun, json!([payload.clone()]), json!({}));
            sim.client_send(conn, Frame::Text(frame.to_string()));
            if attempt == 1 {
                meanwhile(sim);
            }
            let deadline = sim.now().mono + CALL_TIMEOUT;
            let mut reply = None;
            while reply.is_none() && !sim.client_closed(conn) && sim.now().mono < deadline {
                sim.run_for(Duration::from_millis(2));
                for f in sim.client_recv(conn) {
                    // Replies are JSON in text or binary frames, as over a
                    // real connection.
                    let v: Value = serde_json::from_slice(f.as_bytes())
                        .map_err(|e| format!("{url} sent a frame that is not JSON: {e}"))?;
                    if v["u"] == u.as_str() {
                        reply = Some(v);
                    }
                }
            }
            let Some(reply) = reply else {
                self.eps.record_failure(&url, self.clock(sim));
                self.conn = None;
                continue;
            };
            // An error answer proves the node alive: returned, not retried.
            if !reply["error"].is_null() {
                return Err(format!("{url} answered {fun} with an error: {reply}"));
            }
            self.eps.record_success(&url);
            return Ok(Served {
                result: reply["r"][fun].clone(),
                url,
                latency: Duration::from_nanos(sim.now().mono.as_nanos() - start.as_nanos()),
                attempts: attempt,
            });
        }
        Err(format!(
            "{fun}: no answer after {MAX_ATTEMPTS} attempts ({tried:?})"
        ))
    }
}

fn function_names(result: &Value) -> Vec<String> {
    let mut names: Vec<String> = result["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i["identity"]["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Bound on one call's latency through a resolver outage: the refused
/// reconnect is immediate and the answer from the next URL takes an accept
/// and a request round trip (each one-way hop 5–10 ms here), so 100 ms is
/// generous; a black-holed resolver would add the client's call timeout.
const FAILOVER_BOUND: Duration = Duration::from_millis(100);

#[test]
fn scenario_3_resolver_outage_with_client_failover() {
    let ns = "svc.prod.us-east";
    let query = json!({"entry_type": "functions", "namespace": ns, "scope": "zone"});
    let seeds = match std::env::var("MPREG_SIM_SEED") {
        Ok(_) => seeds(),
        // Cheap (a quarter second a seed): more seeds than the others.
        Err(_) => (0..20).collect(),
    };
    for seed in seeds {
        let (mut sim, regions) = start(seed);
        let home = &regions[0];
        let (resolver, resolver_url) = (home.resolver, sim.url(home.resolver));
        let ready = |s: &Sim| {
            function_names(&call(s, resolver, "catalog_query", query.clone())).len() == 2
                && summary(
                    &global_summaries(s, resolver, "svc.prod.eu-west"),
                    "svc.prod.eu-west.api",
                )
                .is_some()
        };
        assert!(
            sim.run_until(Duration::from_secs(15), ready),
            "seed {seed}: the us-east resolver never answered"
        );

        // The client knows only its resolver, and learns ingress URLs from
        // it: its own region's nodes (a zone-scoped cluster map), then
        // other regions' ingress (after them in the rotation).
        let mut client = SimClient::new(&sim, std::slice::from_ref(&resolver_url));
        let map = client
            .call(&mut sim, "cluster_map_v2", json!({"scope": "zone"}), |_| {})
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let learned = client.eps.learn(urls_from_cluster_map(&map.result));
        let ingress = client
            .call(
                &mut sim,
                "summary_query",
                json!({"namespace": "svc.prod.eu-west", "scope": "global", "include_ingress": true}),
                |_| {},
            )
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        client.eps.learn(urls_from_summary(&ingress.result));
        let home_urls: Vec<String> = [home.exporter, home.member]
            .iter()
            .map(|i| sim.url(*i))
            .collect();
        assert!(
            learned >= 2
                && home_urls
                    .iter()
                    .all(|u| client.eps.urls().contains(&u.as_str())),
            "seed {seed}: the cluster map names the region's other nodes: {:?}",
            client.eps.urls()
        );
        let before = client
            .call(&mut sim, "catalog_query", query.clone(), |_| {})
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(
            before.url, resolver_url,
            "seed {seed}: served by the resolver"
        );
        let expected = function_names(&before.result);
        assert_eq!(expected.len(), 2, "seed {seed}: {}", before.result);

        // The resolver is killed while the client's request is in flight.
        let during = client
            .call(&mut sim, "catalog_query", query.clone(), |s| {
                s.crash(resolver)
            })
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_ne!(during.url, resolver_url, "seed {seed}");
        assert!(
            home_urls.contains(&during.url),
            "seed {seed}: failed over into its own region, got {}",
            during.url
        );
        assert_eq!(function_names(&during.result), expected, "seed {seed}");
        assert!(
            during.latency <= FAILOVER_BOUND,
            "seed {seed}: failover took {:?} ({} attempts)",
            during.latency,
            during.attempts
        );

        // Through the outage discovery stays available: a query every
        // 500 ms for 10 s, each answered in full and within the bound.
        let mut worst = Duration::ZERO;
        for _ in 0..20 {
            sim.run_for(Duration::from_millis(500));
            let s = client
                .call(&mut sim, "catalog_query", query.clone(), |_| {})
                .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
            assert_eq!(function_names(&s.result), expected, "seed {seed}");
            assert_ne!(s.url, resolver_url, "seed {seed}");
            worst = worst.max(s.latency);
        }
        assert!(worst <= FAILOVER_BOUND, "seed {seed}: worst {worst:?}");
        eprintln!(
            "seed {seed}: answered {:?} after the crash ({} attempts, by {}); worst call through the outage {worst:?}",
            during.latency, during.attempts, during.url
        );

        // A client that starts during the outage with the resolver first in
        // its seeds skips it after one refusal.
        let mut late = SimClient::new(&sim, &[resolver_url.clone(), home_urls[1].clone()]);
        let s = late
            .call(&mut sim, "catalog_query", query.clone(), |_| {})
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(
            (s.url.as_str(), s.attempts),
            (home_urls[1].as_str(), 2),
            "seed {seed}"
        );
        assert_eq!(function_names(&s.result), expected, "seed {seed}");

        // Warm restart: the resolver re-seeds and answers again.
        sim.restart(resolver);
        let back = |s: &Sim| {
            s.node(resolver).is_some()
                && function_names(&call(s, resolver, "catalog_query", query.clone())) == expected
        };
        assert!(
            sim.run_until(Duration::from_secs(10), back),
            "seed {seed}: the restarted resolver never answered in full"
        );
        let mut fresh = SimClient::new(&sim, std::slice::from_ref(&resolver_url));
        let s = fresh
            .call(&mut sim, "catalog_query", query.clone(), |_| {})
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(
            (s.url.as_str(), function_names(&s.result)),
            (resolver_url.as_str(), expected)
        );
        assert!(sim.violation().is_none(), "{:?}", sim.violation());
    }
}
