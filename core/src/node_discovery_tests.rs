//! Summary export, summary resolvers and resolver mode on whole nodes: one
//! node driven through `handle` like a runtime would, and several nodes in
//! the simulator.

use std::time::Duration;

use serde_json::{json, Value};

use crate::config::{FunctionDecl, PolicyRuleConfig};
use crate::io::{ConnKind, Frame, Input, Output};
use crate::sim::{NetConfig, Sim};
use crate::time::{Instant, Now};
use crate::{Node, Settings};

const T0: f64 = 1_700_000_000.0;

fn at(secs: f64) -> Now {
    Now::new(Instant::from_nanos((secs * 1e9) as u64), T0 + secs)
}

fn func(name: &str, scope: &str) -> FunctionDecl {
    serde_json::from_value(json!({"name": name, "scope": scope})).expect("valid declaration")
}

/// One node, a virtual clock, and client connections.
struct One {
    node: Node,
    t: f64,
    /// Everything sent to client connections, as JSON.
    sent: Vec<(u64, Value)>,
}

impl One {
    fn new(settings: Settings) -> One {
        let node = Node::new(settings, at(0.0), 11).expect("valid settings");
        let mut one = One {
            node,
            t: 0.0,
            sent: vec![],
        };
        one.drain();
        one
    }

    fn drain(&mut self) {
        while let Some(out) = self.node.poll_output() {
            if let Output::Send { conn, frame } = out {
                if let Ok(v) = serde_json::from_slice::<Value>(frame.as_bytes()) {
                    self.sent.push((conn, v));
                }
            }
        }
    }

    /// Feeds ticks at every deadline up to `t`.
    fn advance_to(&mut self, t: f64) {
        let end = at(t).mono;
        for _ in 0..100_000 {
            match self.node.poll_timeout() {
                Some(d) if d <= end => {
                    let secs = d.as_nanos() as f64 / 1e9;
                    self.t = self.t.max(secs);
                    self.node.handle(at(self.t), Input::Tick);
                    self.drain();
                }
                _ => break,
            }
        }
        self.t = self.t.max(t);
    }

    fn connect(&mut self, conn: u64) {
        self.node.handle(
            at(self.t),
            Input::Accepted {
                conn,
                kind: ConnKind::Client,
                headers: vec![],
                peer_addr: None,
                tls: false,
            },
        );
        self.drain();
    }

    fn send(&mut self, conn: u64, v: Value) {
        self.node.handle(
            at(self.t),
            Input::Frame {
                conn,
                frame: Frame::Text(v.to_string()),
            },
        );
        self.drain();
    }

    fn rpc(&mut self, conn: u64, fun: &str, payload: Value) -> Value {
        self.sent.clear();
        let u = format!("u-{fun}-{}", self.t);
        self.send(
            conn,
            json!({"role": "rpc", "u": u,
                "cmds": [{"name": fun, "fun": fun, "args": [payload], "kwargs": {}}]}),
        );
        let reply = self
            .sent
            .iter()
            .find(|(c, v)| *c == conn && v["u"] == json!(u))
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no reply to {fun}"));
        assert!(reply["error"].is_null(), "{fun}: {reply}");
        reply["r"][fun].clone()
    }

    fn subscribe(&mut self, conn: u64, topic: &str, backlog: bool) {
        self.send(
            conn,
            json!({"role": "pubsub-subscribe", "u": "s1", "subscription": {
                "subscription_id": format!("sub-{conn}"),
                "patterns": [{"pattern": topic, "exact_match": true}],
                "subscriber": "t", "get_backlog": backlog}}),
        );
    }

    /// Service ids in the summary notifications received on `conn` since
    /// the last clear.
    fn notified(&self, conn: u64) -> Vec<String> {
        let mut out: Vec<String> = self
            .sent
            .iter()
            .filter(|(c, v)| *c == conn && v["role"] == "pubsub-notification")
            .flat_map(|(_, v)| {
                v["message"]["payload"]["summaries"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|s| s["service_id"].as_str().map(str::to_string))
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

fn exporter_settings() -> Settings {
    Settings {
        port: 7300,
        cluster_id: "market".into(),
        cache_region: "eu".into(),
        discovery_summary_export_enabled: true,
        discovery_summary_export_interval_seconds: 0.2,
        discovery_summary_export_scope: Some("global".into()),
        functions: vec![
            func("svc.market.quote", "global"),
            func("svc.market.hidden", "local"),
        ],
        ..Settings::default()
    }
}

/// §3.4 on a node (`test_summary_watch_hold_down_delays_changes`: interval
/// 0.2 s, hold-down 1.0 s): a service registered right after the first
/// export is not delivered within 0.8 s, and is within the following 3 s.
/// Endpoints of scope `local` are never exported.
#[test]
fn summary_watch_hold_down_delays_changes() {
    let mut one = One::new(Settings {
        discovery_summary_export_hold_down_seconds: 1.0,
        ..exporter_settings()
    });
    one.connect(1);
    let w = one.rpc(1, "summary_watch", json!({"scope": "global"}));
    assert_eq!(w["topic"], "mpreg.discovery.summary.global");
    one.subscribe(1, "mpreg.discovery.summary.global", false);
    one.advance_to(0.1);
    one.node
        .call_mut(
            at(one.t),
            "catalog_register",
            json!({"entry_type": "functions", "name": "svc.market.indicator",
                   "version": "1.0.0", "scope": "global", "ttl_seconds": 600}),
        )
        .expect("registered");
    one.drain();
    one.sent.clear();
    one.advance_to(0.8);
    assert_eq!(one.notified(1), vec!["svc.market.quote".to_string()]);
    one.advance_to(3.8);
    assert_eq!(
        one.notified(1),
        vec![
            "svc.market.indicator".to_string(),
            "svc.market.quote".to_string()
        ]
    );
    let snap = one.node.discovery_summary_snapshot(at(one.t));
    assert!(snap["hold_downs_total"].as_u64().unwrap() >= 3, "{snap}");
    assert!(!one
        .sent
        .iter()
        .any(|(_, v)| v.to_string().contains("svc.market.hidden")));
}

/// Deliveries and store-and-forward replay are filtered for the
/// subscriber's viewer; the export itself follows `allows_summary_export`.
#[test]
fn summary_deliveries_and_replay_follow_policy() {
    let rule = |ns: &str, visibility: &[&str]| PolicyRuleConfig {
        namespace: ns.into(),
        owners: vec![],
        visibility: visibility.iter().map(|s| s.to_string()).collect(),
        visibility_tenants: vec![],
        export_scopes: vec![],
        allow_summaries: true,
        cutover_windows: vec![],
        policy_version: Some("v7".into()),
    };
    let mut one = One::new(Settings {
        discovery_policy_enabled: true,
        discovery_policy_rules: vec![
            rule("svc.secret", &["other-cluster"]),
            rule("svc.market", &[]),
        ],
        discovery_summary_export_store_forward_seconds: 30.0,
        discovery_summary_export_store_forward_max_messages: 50,
        functions: vec![
            func("svc.market.quote", "global"),
            func("svc.secret.audit", "global"),
        ],
        ..exporter_settings()
    });
    one.advance_to(0.5);
    one.connect(1);
    one.subscribe(1, "mpreg.discovery.summary.#", true);
    let replayed: Vec<&Value> = one
        .sent
        .iter()
        .filter(|(c, v)| *c == 1 && v["u"].as_str().is_some_and(|u| u.starts_with("backlog_")))
        .map(|(_, v)| v)
        .collect();
    assert!(!replayed.is_empty(), "store-and-forward replayed nothing");
    assert_eq!(one.notified(1), vec!["svc.market.quote".to_string()]);
    one.sent.clear();
    one.advance_to(1.0);
    assert_eq!(one.notified(1), vec!["svc.market.quote".to_string()]);
    // Exported with the rule's version; a denied namespace is a 403 watch.
    let q = one.rpc(1, "summary_query", json!({"namespace": "svc.market"}));
    assert_eq!(q["items"][0]["policy_version"], "v7");
    one.sent.clear();
    one.send(
        1,
        json!({"role": "rpc", "u": "w", "cmds": [{"name": "summary_watch", "fun": "summary_watch",
            "args": [{"namespace": "svc.secret"}], "kwargs": {}}]}),
    );
    assert_eq!(one.sent[0].1["error"]["code"], 403);
}

fn resolver_settings() -> Settings {
    Settings {
        port: 7400,
        cluster_id: "market".into(),
        discovery_resolver_mode: true,
        discovery_resolver_query_ttl_seconds: 0.2,
        discovery_resolver_query_stale_seconds: 0.6,
        discovery_resolver_query_negative_ttl_seconds: 0.3,
        functions: vec![
            func("svc.market.quote", "zone"),
            func("svc.market.indicator", "zone"),
        ],
        ..Settings::default()
    }
}

/// A read in the last quarter of a cached answer's TTL is a fresh hit that
/// renews the answer right after the request, so the next reads (past the
/// first answer's TTL) are fresh too, never stale.
#[test]
fn resolver_mode_refreshes_a_read_answer_ahead_of_its_expiry() {
    let mut one = One::new(Settings {
        discovery_resolver_query_ttl_seconds: 1.0,
        discovery_resolver_query_stale_seconds: 2.0,
        ..resolver_settings()
    });
    one.connect(1);
    let q = json!({"entry_type": "functions", "namespace": "svc.market"});
    let first = one.rpc(1, "catalog_query", q.clone());
    one.advance_to(one.t + 0.5);
    let hit = one.rpc(1, "catalog_query", q.clone());
    assert_eq!(hit["generated_at"], first["generated_at"], "a plain hit");
    one.advance_to(one.t + 0.3);
    let ahead = one.rpc(1, "catalog_query", q.clone());
    assert_eq!(
        ahead["generated_at"], first["generated_at"],
        "served, then renewed"
    );
    one.advance_to(one.t + 0.5);
    let renewed = one.rpc(1, "catalog_query", q);
    assert_ne!(renewed["generated_at"], first["generated_at"]);
    let qc = &one.rpc(1, "resolver_cache_stats", json!({}))["query_cache"];
    assert_eq!(
        (
            &qc["catalog_hits"],
            &qc["catalog_stale_serves"],
            &qc["catalog_misses"],
            &qc["catalog_refreshes"]
        ),
        (&json!(3), &json!(0), &json!(1), &json!(1)),
        "{qc}"
    );
}

/// Keep-warm: when an entry of a namespace whose answer a client reads
/// expires (a change no request carries), the answer is recomputed as the
/// change arrives, so the next read is fresh and no longer holds it;
/// without keep-warm that read is served stale.
#[test]
fn resolver_mode_recomputes_a_read_answer_when_its_namespace_changes() {
    for keep_warm in [2.0, 0.0] {
        let mut one = One::new(Settings {
            discovery_resolver_query_ttl_seconds: 10.0,
            discovery_resolver_query_stale_seconds: 20.0,
            discovery_resolver_query_keep_warm_ttls: keep_warm,
            ..resolver_settings()
        });
        one.connect(1);
        one.node
            .call_mut(
                at(one.t),
                "catalog_register",
                json!({"entry_type": "functions", "name": "svc.market.depth", "version": "1.0.0", "ttl_seconds": 2}),
            )
            .expect("registered");
        one.drain();
        one.advance_to(one.t + 0.01);
        let q = json!({"entry_type": "functions", "namespace": "svc.market"});
        let count = |v: &Value| v["items"].as_array().map_or(0, Vec::len);
        assert_eq!(count(&one.rpc(1, "catalog_query", q.clone())), 3);
        // The registration expires; the node's prune timer removes it.
        one.advance_to(one.t + 4.0);
        let next = one.rpc(1, "catalog_query", q);
        let qc = &one.rpc(1, "resolver_cache_stats", json!({}))["query_cache"];
        if keep_warm > 0.0 {
            assert_eq!(count(&next), 2, "{qc}");
            assert_eq!(
                (
                    &qc["catalog_hits"],
                    &qc["catalog_stale_serves"],
                    &qc["catalog_refreshes"]
                ),
                (&json!(1), &json!(0), &json!(1)),
                "{qc}"
            );
        } else {
            assert_eq!(count(&next), 3, "served stale");
            assert_eq!(qc["catalog_stale_serves"], json!(1), "{qc}");
        }
    }
}

/// §8.4's asserted test (`test_resolver_query_cache_stale_and_negative`),
/// `resolver_cache_stats` and `resolver_resync` (§8.5).
#[test]
fn resolver_mode_serves_from_mirror_with_stale_and_negative_cache() {
    // MPREG's sequence: without keep-warm, a read past the TTL is stale.
    let mut one = One::new(Settings {
        discovery_resolver_query_keep_warm_ttls: 0.0,
        ..resolver_settings()
    });
    one.connect(1);
    let q = json!({"entry_type": "functions", "namespace": "svc.market"});
    let first = one.rpc(1, "catalog_query", q.clone());
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let missing = json!({"entry_type": "functions", "namespace": "svc.missing"});
    assert!(one.rpc(1, "catalog_query", missing.clone())["items"]
        .as_array()
        .unwrap()
        .is_empty());
    one.rpc(1, "catalog_query", missing);
    one.advance_to(one.t + 0.25);
    let stale = one.rpc(1, "catalog_query", q.clone());
    assert_eq!(stale["items"].as_array().unwrap().len(), 2);
    assert_eq!(stale["generated_at"], first["generated_at"], "served stale");
    let stats = one.rpc(1, "resolver_cache_stats", json!({}));
    assert_eq!(stats["enabled"], true);
    assert!(stats["entry_counts"]["functions"].as_u64().unwrap() >= 2);
    let qc = &stats["query_cache"];
    assert!(qc["catalog_negative_hits"].as_u64().unwrap() >= 1, "{qc}");
    assert!(qc["catalog_stale_serves"].as_u64().unwrap() >= 1, "{qc}");
    // The stale read scheduled exactly one refresh; the next read is fresh.
    assert_eq!(qc["catalog_refreshes"], 1);
    let fresh = one.rpc(1, "catalog_query", q);
    assert_ne!(fresh["generated_at"], first["generated_at"]);
    let resync = one.rpc(1, "resolver_resync", json!({}));
    assert_eq!(resync["resynced"], true);
    assert!(resync["entry_counts"]["functions"].as_u64().unwrap() >= 2);
    assert!(resync["stats"]["resyncs"].as_u64().unwrap() >= 2);
    // A registration reaches the mirror as a change, invalidating the
    // namespace's cached answers.
    one.node
        .call_mut(
            at(one.t),
            "catalog_register",
            json!({"entry_type": "functions", "name": "svc.market.depth", "version": "1.0.0", "ttl_seconds": 600}),
        )
        .expect("registered");
    one.drain();
    let stats = one.rpc(1, "resolver_cache_stats", json!({}));
    assert!(
        stats["stats"]["deltas_applied"].as_u64().unwrap() >= 1,
        "{stats}"
    );
    one.advance_to(one.t + 0.01);
    one.rpc(
        1,
        "catalog_query",
        json!({"entry_type": "functions", "namespace": "svc.market"}),
    );
    let after = one.rpc(
        1,
        "catalog_query",
        json!({"entry_type": "functions", "namespace": "svc.market"}),
    );
    assert_eq!(after["items"].as_array().unwrap().len(), 3);
    let lag = one.node.discovery_lag_snapshot(at(one.t));
    assert_eq!(lag["resolver_enabled"], true);
    assert!(lag["delta_lag_seconds"].as_f64().is_some());
}

fn sim_node(i: usize, cluster: &str, region: &str, peers: Vec<String>) -> Settings {
    Settings {
        cluster_id: cluster.into(),
        cache_region: region.into(),
        gossip_interval: 0.5,
        peers,
        ..Sim::settings(i)
    }
}

fn items(v: &Value) -> Vec<(String, String)> {
    v["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|s| {
            (
                s["service_id"].as_str().unwrap_or("").to_string(),
                s["source_cluster"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Two clusters: an exporter in `eu`, a summary resolver in `us`. The
/// resolver's `summary_query scope=global` answers eu's summaries with
/// ingress hints; a withdrawn service leaves the resolver within one export
/// interval of leaving the exporter's catalog; `local` endpoints and other
/// clusters' endpoints are never exported.
#[test]
fn two_regions_export_and_resolve_with_withdrawal() {
    let interval = 1.0;
    for seed in [1u64, 2, 3] {
        let mut sim = Sim::new(seed, NetConfig::default());
        let eu0 = sim.add(Settings {
            discovery_summary_export_enabled: true,
            discovery_summary_export_interval_seconds: interval,
            discovery_summary_export_scope: Some("global".into()),
            functions: vec![
                func("svc.market.quote", "global"),
                func("svc.market.local_only", "local"),
            ],
            ..sim_node(0, "eu", "eu", vec![])
        });
        let eu_url = sim.url(eu0);
        let eu1 = sim.add(Settings {
            functions: vec![func("svc.market.indicator", "global")],
            ..sim_node(1, "eu", "eu", vec![eu_url.clone()])
        });
        let us = sim.add(Settings {
            discovery_summary_resolver_mode: true,
            discovery_summary_resolver_scopes: vec!["global".into()],
            functions: vec![func("svc.market.us_only", "global")],
            ..sim_node(2, "us", "us", vec![eu_url.clone()])
        });
        let query = json!({"namespace": "svc.market", "scope": "global",
            "include_ingress": true, "ingress_scope": "zone"});
        let both = vec![
            ("svc.market.indicator".to_string(), "eu".to_string()),
            ("svc.market.quote".to_string(), "eu".to_string()),
        ];
        let ok = sim.run_until(Duration::from_secs(30), |s| {
            let n = s.node(us).expect("running");
            n.call(s.now(), "summary_query", query.clone())
                .is_ok_and(|v| items(&v) == both)
        });
        assert!(ok, "seed {seed}: us never resolved eu's summaries");
        let v = sim
            .node(us)
            .unwrap()
            .call(sim.now(), "summary_query", query.clone())
            .unwrap();
        assert_eq!(
            v["ingress"]["eu"],
            json!([eu_url.clone(), sim.url(eu1)]),
            "{v}"
        );
        assert_eq!(v["items"][0]["regions"], json!(["eu"]));
        assert_eq!(v["items"][0]["health_band"], "healthy");
        assert_eq!(
            v["items"][0]["latency_band_ms"],
            json!([0, 0]),
            "unmeasured"
        );
        // Its own global function is in its catalog but not in any summary:
        // us exports nothing, and the cache holds only what was exported.
        assert!(!v.to_string().contains("us_only"));
        assert!(!v.to_string().contains("local_only"));
        let lag = sim.node(us).unwrap().discovery_lag_snapshot(sim.now());
        assert!(
            lag["freshness_lag_seconds"]["eu"].as_f64().unwrap() <= interval + 0.5,
            "{lag}"
        );
        // Withdraw: eu1 restarts without the indicator.
        sim.settings_mut(eu1).functions.clear();
        sim.restart(eu1);
        let gone_at_exporter = sim.run_until(Duration::from_secs(30), |s| {
            !s.node(eu0)
                .unwrap()
                .catalog()
                .iter(crate::catalog::entry::EntryKind::Functions)
                .any(|e| e.name() == "svc.market.indicator")
        });
        assert!(gone_at_exporter, "seed {seed}");
        let t0 = sim.now().mono;
        let dropped = sim.run_until(Duration::from_secs(10), |s| {
            let v = s
                .node(us)
                .unwrap()
                .call(s.now(), "summary_query", query.clone())
                .unwrap();
            !items(&v).iter().any(|(id, _)| id == "svc.market.indicator")
        });
        assert!(
            dropped,
            "seed {seed}: withdrawal never reached the resolver"
        );
        let took = sim.now().mono.saturating_duration_since(t0);
        assert!(
            took <= Duration::from_secs_f64(interval + 0.2),
            "seed {seed}: withdrawal took {took:?}"
        );
        let cache = sim.node(us).unwrap().discovery_cache_snapshot(sim.now());
        assert!(
            cache["summary_cache"]["stats"]["summaries_withdrawn"]
                .as_u64()
                .unwrap()
                >= 1
        );
        assert!(sim.violation().is_none(), "{:?}", sim.violation());
    }
}

/// `test_resolver_mode_serves_discovery_from_cache`: a resolver that does
/// not seed at start fills its mirror from the changes gossip brings.
#[test]
fn resolver_fills_from_deltas_without_seed() {
    let mut sim = Sim::new(5, NetConfig::default());
    let hub = sim.add(Settings {
        functions: vec![
            func("svc.market.quote", "zone"),
            func("svc.market.indicator", "zone"),
        ],
        ..sim_node(0, "market", "eu", vec![])
    });
    let url = sim.url(hub);
    let r = sim.add(Settings {
        discovery_resolver_mode: true,
        discovery_resolver_seed_on_start: false,
        ..sim_node(1, "market", "eu", vec![url])
    });
    let q = json!({"entry_type": "functions", "namespace": "svc.market"});
    let ok = sim.run_until(Duration::from_secs(20), |s| {
        s.node(r)
            .unwrap()
            .call(s.now(), "catalog_query", q.clone())
            .is_ok_and(|v| v["items"].as_array().is_some_and(|a| a.len() >= 2))
    });
    assert!(ok);
    let stats = sim
        .node(r)
        .unwrap()
        .call(sim.now(), "resolver_cache_stats", json!({}))
        .unwrap();
    assert!(
        stats["stats"]["deltas_applied"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert_eq!(stats["stats"]["gap_resyncs"], 0);
}

mod replay_property {
    use proptest::prelude::*;

    use super::*;
    use crate::policy::PolicyEngine;

    const NS: [&str; 3] = ["svc.a", "svc.a.b", "svc.c"];
    const WHO: [&[&str]; 3] = [&[], &["market"], &["other-cluster"]];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Random rules and functions: a store-and-forward replay (and the
        /// live deliveries after it) hold exactly the summaries of the
        /// namespaces the subscriber's viewer may see.
        #[test]
        fn replay_never_leaks(
            rules in proptest::collection::vec((0usize..3, 0usize..3), 0..4),
            fns in proptest::collection::vec(0usize..3, 1..5),
            default_allow in any::<bool>(),
        ) {
            let mut configs: Vec<PolicyRuleConfig> = Vec::new();
            for (ns, who) in rules {
                if configs.iter().any(|r| r.namespace == NS[ns]) {
                    continue;
                }
                configs.push(PolicyRuleConfig {
                    namespace: NS[ns].into(),
                    owners: vec![],
                    visibility: WHO[who].iter().map(|s| s.to_string()).collect(),
                    visibility_tenants: vec![],
                    export_scopes: vec![],
                    allow_summaries: true,
                    cutover_windows: vec![],
                    policy_version: None,
                });
            }
            let names: Vec<String> =
                fns.iter().enumerate().map(|(i, ns)| format!("{}.f{i}", NS[*ns])).collect();
            let settings = Settings {
                discovery_policy_enabled: true,
                discovery_policy_default_allow: default_allow,
                discovery_policy_rules: configs,
                discovery_summary_export_store_forward_seconds: 30.0,
                discovery_summary_export_store_forward_max_messages: 50,
                functions: names.iter().map(|n| func(n, "global")).collect(),
                ..exporter_settings()
            };
            let engine = PolicyEngine::from_settings(&settings).unwrap();
            let mut want: Vec<String> = names
                .iter()
                .filter(|n| {
                    let ns = n.rsplit_once('.').map_or("", |(ns, _)| ns);
                    engine.allows_viewer(ns, "market", None).allowed
                })
                .cloned()
                .collect();
            want.sort();
            let mut one = One::new(settings);
            one.advance_to(0.5);
            one.connect(1);
            one.subscribe(1, "mpreg.discovery.summary.#", true);
            let replay = one.notified(1);
            // What was exported at all: the viewer here is the exporting
            // cluster, so export policy and view policy agree on it.
            for n in &replay {
                prop_assert!(want.contains(n), "replay leaked {}", n);
            }
            one.sent.clear();
            one.advance_to(1.0);
            let live = one.notified(1);
            prop_assert_eq!(&live, &want, "live deliveries");
            prop_assert_eq!(&replay, &want, "replay");
        }
    }
}

/// `discovery_summary_signing_secret`: an exporter signs its floods; a
/// summary resolver holding the same secret caches them, one holding
/// another secret drops and counts every one, and a node without a secret
/// takes them as before (it cannot check).
#[test]
fn signed_summaries_reach_only_resolvers_that_share_the_secret() {
    use crate::config::SecretText;
    let secret = || Some(SecretText::new("0123456789abcdef-summaries"));
    for seed in [1u64, 2] {
        let mut sim = Sim::new(seed, NetConfig::default());
        let eu = sim.add(Settings {
            discovery_summary_export_enabled: true,
            discovery_summary_export_interval_seconds: 1.0,
            discovery_summary_export_scope: Some("global".into()),
            discovery_summary_signing_secret: secret(),
            functions: vec![func("svc.market.quote", "global")],
            ..sim_node(0, "eu", "eu", vec![])
        });
        let eu_url = sim.url(eu);
        let resolver = |i: usize, cluster: &str, signing: Option<SecretText>| Settings {
            discovery_summary_resolver_mode: true,
            discovery_summary_resolver_scopes: vec!["global".into()],
            discovery_summary_signing_secret: signing,
            ..sim_node(i, cluster, cluster, vec![eu_url.clone()])
        };
        let us = sim.add(resolver(1, "us", secret()));
        let ap = sim.add(resolver(
            2,
            "ap",
            Some(SecretText::new("0123456789abcdef-elsewhere")),
        ));
        let sa = sim.add(resolver(3, "sa", None));
        let query = json!({"namespace": "svc.market", "scope": "global"});
        let resolved = |s: &Sim, i: usize| {
            s.node(i)
                .and_then(|n| n.call(s.now(), "summary_query", query.clone()).ok())
                .is_some_and(|v| !items(&v).is_empty())
        };
        let ok = sim.run_until(Duration::from_secs(20), |s| {
            resolved(s, us) && resolved(s, sa)
        });
        assert!(ok, "seed {seed}: the summaries never reached us and sa");
        sim.run_for(Duration::from_secs(3));
        assert!(
            !resolved(&sim, ap),
            "seed {seed}: ap cached a flood it cannot verify"
        );
        let rejected = |i: usize| sim.node(i).unwrap().counters().summary_signature_rejected;
        assert!(rejected(ap) >= 2, "seed {seed}: every export is dropped");
        assert_eq!((rejected(us), rejected(sa)), (0, 0), "seed {seed}");
        assert!(sim.violation().is_none(), "{:?}", sim.violation());
    }
}

/// A flood whose signature is missing is dropped before its sequence number
/// is recorded: the genuine flood with that number still gets through.
#[test]
fn a_forged_flood_cannot_burn_the_number_of_a_genuine_one() {
    use crate::config::SecretText;
    use crate::summary::flood::SummaryFlood;
    use crate::summary::signing::SummarySigner;
    let secret = "0123456789abcdef-summaries";
    let mut one = One::new(Settings {
        discovery_summary_resolver_mode: true,
        discovery_summary_signing_secret: Some(SecretText::new(secret)),
        ..Sim::settings(0)
    });
    let now = at(1.0);
    one.node.handle(
        now,
        Input::Accepted {
            conn: 50,
            kind: ConnKind::Fabric,
            headers: vec![],
            peer_addr: None,
            tls: false,
        },
    );
    one.drain();
    let message = json!({
        "summaries": [{
            "service_id": "svc.pay.charge", "name": "svc.pay.charge",
            "namespace": "svc.pay", "source_cluster": "eu", "source_node": "ws://127.0.0.1:9",
            "scope": "global", "endpoint_count": 1, "health_band": "healthy",
            "ttl_seconds": 60.0, "generated_at": 1.0
        }],
        "namespaces": ["svc.pay"], "source_cluster": "eu", "scope": "global",
        "generated_at": T0 + 1.0, "ttl_seconds": 60.0
    });
    let genuine = |signed: bool| {
        let mut f = SummaryFlood {
            source_node: "ws://127.0.0.1:9".into(),
            instance_id: "01JCZ6D5V6W0000000000000AA".into(),
            seq: 1,
            message: message.to_string(),
            topics: vec![],
            signature: None,
        };
        if signed {
            SummarySigner::new(secret).sign(&mut f);
        }
        f
    };
    for signed in [false, true] {
        one.node.handle(
            now,
            Input::Frame {
                conn: 50,
                frame: Frame::Binary(
                    crate::wire::fabric::encode(&crate::wire::fabric::FabricMsg::Summary(genuine(
                        signed,
                    )))
                    .into(),
                ),
            },
        );
        one.drain();
    }
    assert_eq!(one.node.counters().summary_signature_rejected, 1);
    let cache = one.node.discovery_cache_snapshot(now);
    assert_eq!(
        cache["summary_cache"]["stats"]["messages_applied"], 1,
        "the signed flood with the same number was applied: {cache}"
    );
}
