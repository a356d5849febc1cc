//! The discovery roadmap's end-to-end scenarios
//! (`reference/roadmap_scenarios.md`) with real `mpreg server` processes on
//! 127.0.0.1: three regions (`us-east`, `eu-west`, `ap-south`), each an
//! exporting node, a member and a summary resolver, the regions linked
//! through their exporters (the global tier).
//!
//! * 1, multi-region delegation: every resolver answers the other regions'
//!   summaries (never their endpoints) with ingress hints into the owning
//!   region, where a zone query resolves the endpoints;
//! * 2, controlled cutover: a policy whose cutover window opens exports a
//!   namespace globally within the summary's TTL, and rolling the policy
//!   back withdraws it within the hold-down limit;
//! * 4, high churn: an endpoint flapping far faster than the hold-down
//!   keeps its summary present and stable, with at most one update per
//!   hold-down, and the settled value still arrives.
//!
//! Scenario 3 (resolver outage with client failover) is `failover.rs`.
//! One test runs the scenarios in turn on one set of nodes (nine processes
//! are plenty for the 2-core CI machine); each step names its scenario when
//! it fails. Every wait is bounded. Runs on the runtime
//! `MPREG_TEST_RUNTIME` names.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mpreg_tests::{wait_for, Conn, Node};
use serde_json::{json, Value};

const REGIONS: [&str; 3] = ["us-east", "eu-west", "ap-south"];
/// Export interval (seconds).
const INTERVAL: f64 = 0.5;
/// Export hold-down (seconds): a changed summary is exported once it stayed
/// changed this long.
const HOLD_DOWN: f64 = 2.0;
/// Bound on the first summaries crossing every region.
const CONVERGE: Duration = Duration::from_secs(30);

struct Region {
    name: &'static str,
    /// The exporting node (linked to the other regions) and a member.
    nodes: [Node; 2],
    resolver: Node,
}

fn start_regions() -> Vec<Region> {
    let mut regions: Vec<Region> = Vec::new();
    for name in REGIONS {
        let global_peer = regions.first().map(|r| r.nodes[0].url().to_string());
        let mut exporter_cfg = format!(
            "cluster_id = \"{name}\"\ncache_region = \"{name}\"\ngossip_interval = 0.5\n\
             discovery_summary_export_enabled = true\n\
             discovery_summary_export_interval_seconds = {INTERVAL}\n\
             discovery_summary_export_scope = \"global\"\n\
             discovery_summary_export_hold_down_seconds = {HOLD_DOWN}\n"
        );
        if let Some(peer) = &global_peer {
            exporter_cfg.push_str(&format!("peers = [\"{peer}\"]\n"));
        }
        exporter_cfg.push_str(&format!(
            "[[functions]]\nname = \"svc.prod.{name}.api\"\nscope = \"global\"\n"
        ));
        let exporter = Node::start_with_config(&exporter_cfg, ["--name", &format!("{name}-0")]);
        let member = Node::start_with_config(
            &format!(
                "cluster_id = \"{name}\"\ncache_region = \"{name}\"\ngossip_interval = 0.5\n\
                 peers = [\"{}\"]\n\
                 [[functions]]\nname = \"svc.prod.{name}.worker\"\nscope = \"global\"\n",
                exporter.url()
            ),
            ["--name", &format!("{name}-1")],
        );
        let resolver = Node::start_with_config(
            &format!(
                "cluster_id = \"{name}\"\ncache_region = \"{name}\"\ngossip_interval = 0.5\n\
                 peers = [\"{}\"]\n\
                 discovery_summary_resolver_mode = true\n\
                 discovery_summary_resolver_scopes = [\"global\"]\n\
                 discovery_resolver_mode = true\n",
                exporter.url()
            ),
            ["--name", &format!("{name}-resolver")],
        );
        regions.push(Region {
            name,
            nodes: [exporter, member],
            resolver,
        });
    }
    regions
}

/// `summary_query` of `namespace` at global scope, with ingress hints.
fn global_summaries(conn: &mut Conn, namespace: &str) -> Value {
    conn.call_ok(
        "summary_query",
        json!({"namespace": namespace, "scope": "global", "include_ingress": true}),
    )
}

fn items(v: &Value) -> Vec<Value> {
    v["items"].as_array().cloned().unwrap_or_default()
}

/// The summary of service `id` in `v`, if present.
fn summary<'a>(v: &'a Value, id: &str) -> Option<&'a Value> {
    v["items"]
        .as_array()?
        .iter()
        .find(|s| s["service_id"] == id)
}

fn function_names(conn: &mut Conn, namespace: &str, scope: &str) -> Vec<String> {
    let v = conn.call_ok(
        "catalog_query",
        json!({"entry_type": "functions", "namespace": namespace, "scope": scope}),
    );
    let mut names: Vec<String> = v["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e["identity"]["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    names
}

fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[test]
fn roadmap_scenarios_on_three_regions() {
    let regions = start_regions();
    delegation(&regions);
    cutover(&regions);
    churn(&regions);
}

/// Scenario 1: each resolver answers every other region's namespace with
/// summaries only, pointing at that region; the endpoints resolve there.
fn delegation(regions: &[Region]) {
    for asker in regions {
        let mut at_resolver = asker.resolver.connect();
        for owner in regions.iter().filter(|r| r.name != asker.name) {
            let ns = format!("svc.prod.{}", owner.name);
            let found = wait_for(CONVERGE, Duration::from_millis(200), || {
                let v = global_summaries(&mut at_resolver, &ns);
                let ids: Vec<String> = items(&v)
                    .iter()
                    .filter_map(|s| s["service_id"].as_str().map(str::to_string))
                    .collect();
                (ids.contains(&format!("{ns}.api")) && ids.contains(&format!("{ns}.worker")))
                    .then_some(v)
            })
            .unwrap_or_else(|| {
                panic!(
                    "scenario 1: the {} resolver never answered {ns}: {}",
                    asker.name,
                    global_summaries(&mut at_resolver, &ns)
                )
            });
            for s in items(&found) {
                assert_eq!(s["source_cluster"], owner.name, "scenario 1: {s}");
                assert_eq!(s["scope"], "global", "scenario 1: {s}");
                // Summaries only: counts and bands, never endpoints.
                for endpoint_field in ["node_id", "endpoints", "targets", "advertised_urls"] {
                    assert!(s.get(endpoint_field).is_none(), "scenario 1: {s}");
                }
            }
            // Every node of the owning cluster is an ingress, its resolver too.
            let owner_urls: Vec<&str> = owner
                .nodes
                .iter()
                .chain([&owner.resolver])
                .map(Node::url)
                .collect();
            let ingress: Vec<String> = found["ingress"][owner.name]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .filter_map(|u| u.as_str().map(str::to_string))
                .collect();
            assert!(
                !ingress.is_empty() && ingress.iter().all(|u| owner_urls.contains(&u.as_str())),
                "scenario 1: ingress for {} must point into it: {found}",
                owner.name
            );
            // The asking region serves none of the owner's endpoints at
            // zone scope; the owner, reached through the hint, serves both.
            assert!(
                function_names(&mut at_resolver, &ns, "zone").is_empty(),
                "scenario 1: {} serves {ns} endpoints",
                asker.name
            );
            let mut there = Conn::connect(&ingress[0]);
            assert_eq!(
                function_names(&mut there, &ns, "zone"),
                vec![format!("{ns}.api"), format!("{ns}.worker")],
                "scenario 1: resolving {ns} in its region"
            );
        }
    }
}

/// Scenario 2 on `eu-west`: deny its summaries, open a cutover window that
/// allows them (they appear at the `us-east` resolver within their TTL),
/// roll back (they leave within the hold-down limit).
fn cutover(regions: &[Region]) {
    let ns = "svc.prod.eu-west";
    let api = "svc.prod.eu-west.api";
    let mut exporter = regions[1].nodes[0].connect();
    let mut resolver = regions[0].resolver.connect();
    let withdrawal_bound = Duration::from_secs_f64(HOLD_DOWN + 2.0 * INTERVAL + 3.0);
    let withdrawn_within = |resolver: &mut Conn, bound: Duration| {
        wait_for(bound, Duration::from_millis(100), || {
            summary(&global_summaries(resolver, ns), api)
                .is_none()
                .then_some(())
        })
        .is_some()
    };

    let denied = exporter.call_ok(
        "namespace_policy_apply",
        json!({"enabled": true, "actor": "roadmap",
               "rules": [{"namespace": ns, "allow_summaries": false}]}),
    );
    let deny_version = denied["version"].clone();
    assert_eq!(denied["applied"], true, "scenario 2: {denied}");
    assert!(
        withdrawn_within(&mut resolver, withdrawal_bound),
        "scenario 2: denied summaries still at the resolver after {withdrawal_bound:?}"
    );

    let now = wall_now();
    let opened = exporter.call_ok(
        "namespace_policy_apply",
        json!({"enabled": true, "actor": "roadmap",
               "rules": [{"namespace": ns, "allow_summaries": false,
                          "cutover_windows": [{"starts_at": now - 1.0, "ends_at": now + 600.0,
                                               "allow_summaries": true,
                                               "export_scopes": ["global"]}]}]}),
    );
    assert_eq!(opened["applied"], true, "scenario 2: {opened}");
    let started = Instant::now();
    let appeared = wait_for(CONVERGE, Duration::from_millis(100), || {
        summary(&global_summaries(&mut resolver, ns), api).cloned()
    })
    .unwrap_or_else(|| panic!("scenario 2: the cutover never exported {api}"));
    let took = started.elapsed();
    let ttl = appeared["ttl_seconds"].as_f64().unwrap_or(0.0);
    assert!(
        ttl > 0.0 && took.as_secs_f64() <= ttl,
        "scenario 2: the summary took {took:?}, its TTL is {ttl} s: {appeared}"
    );

    let rolled = exporter.call_ok(
        "namespace_policy_rollback",
        json!({"version": deny_version}),
    );
    assert_eq!(rolled["rolled_back"], true, "scenario 2: {rolled}");
    let started = Instant::now();
    assert!(
        withdrawn_within(&mut resolver, withdrawal_bound),
        "scenario 2: rolled-back export still at the resolver after {:?} (bound {withdrawal_bound:?})",
        started.elapsed()
    );
}

/// Scenario 4 on `ap-south`: ten endpoints of one service plus one that
/// joins and leaves every 200 ms (far beyond 10 %/minute). Watched at the
/// `us-east` resolver, the summary never disappears and changes at most
/// once per hold-down; when the churn settles the new count arrives.
fn churn(regions: &[Region]) {
    let service = "svc.prod.ap-south.pool";
    let mut exporter = regions[2].nodes[0].connect();
    let register = |conn: &mut Conn, id: &str| -> Value {
        conn.call_ok(
            "catalog_register",
            json!({"entry_type": "functions", "name": service, "version": "1.0.0", "resources": [id],
                   "scope": "global", "bind_to_connection": true}),
        )["registration_id"]
            .clone()
    };
    for i in 0..10 {
        register(&mut exporter, &format!("pool-{i}"));
    }
    let mut resolver = regions[0].resolver.connect();
    let count = |resolver: &mut Conn| -> Option<u64> {
        summary(&global_summaries(resolver, "svc.prod.ap-south"), service)
            .and_then(|s| s["endpoint_count"].as_u64())
    };
    wait_for(CONVERGE, Duration::from_millis(100), || {
        (count(&mut resolver) == Some(10)).then_some(())
    })
    .unwrap_or_else(|| panic!("scenario 4: the pool never reached the resolver"));

    let churn_for = Duration::from_secs(8);
    let started = Instant::now();
    let mut next_flip = started;
    let mut extra: Option<Value> = None;
    let mut flips = 0;
    let mut seen: Vec<Option<u64>> = Vec::new();
    while started.elapsed() < churn_for {
        if Instant::now() >= next_flip {
            extra = match extra.take() {
                None => Some(register(&mut exporter, "pool-flap")),
                Some(id) => {
                    exporter.call_ok("catalog_unregister", json!({"registration_id": id}));
                    None
                }
            };
            flips += 1;
            next_flip += Duration::from_millis(200);
        }
        seen.push(count(&mut resolver));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        seen.iter().all(Option::is_some),
        "scenario 4: the summary disappeared during churn: {seen:?}"
    );
    let changes = seen.windows(2).filter(|w| w[0] != w[1]).count();
    let bound = (churn_for.as_secs_f64() / HOLD_DOWN).ceil() as usize + 1;
    assert!(
        flips >= 30 && changes <= bound,
        "scenario 4: {flips} endpoint changes made the summary change {changes} times \
         (bound {bound} with a {HOLD_DOWN} s hold-down): {seen:?}"
    );

    // Settle at 12 endpoints: the new count arrives within the hold-down.
    if extra.is_none() {
        register(&mut exporter, "pool-flap");
    }
    register(&mut exporter, "pool-late");
    let settle = Duration::from_secs_f64(HOLD_DOWN + 2.0 * INTERVAL + 3.0);
    let settled = wait_for(settle, Duration::from_millis(100), || {
        (count(&mut resolver) == Some(12)).then_some(())
    });
    assert!(
        settled.is_some(),
        "scenario 4: the settled count never arrived within {settle:?}: {:?}",
        count(&mut resolver)
    );
}
