//! Black-box: summary export across clusters, a summary resolver, and
//! resolver mode, with real `mpreg server` processes on 127.0.0.1 and the
//! `mpreg` CLI commands the runbook names ("Summary Export Lag" and
//! "Resolver Cache Stale Or Empty").

use std::process::{Command, Stdio};
use std::time::Duration;

use mpreg_tests::{mpreg_bin, wait_for, Node};
use serde_json::Value;

/// Runs `mpreg ARGS --json` against `url` (no other MPREG_* variables) and
/// returns its JSON output, or the failure text.
fn cli(args: &[&str], url: &str) -> Result<Value, String> {
    let mut cmd = Command::new(mpreg_bin());
    cmd.args(args).args(["--url", url, "--json"]);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("MPREG_") {
            cmd.env_remove(&key);
        }
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("spawn mpreg: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "mpreg {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "mpreg {args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

const INTERVAL: f64 = 0.5;

/// `eu` exports summaries of its global functions; `us` is a summary
/// resolver (global scope) and runs in resolver mode.
fn regions() -> (Node, Node) {
    let eu = Node::start_with_config(
        &format!(
            "cache_region = \"eu\"\n\
             discovery_summary_export_enabled = true\n\
             discovery_summary_export_interval_seconds = {INTERVAL}\n\
             discovery_summary_export_scope = \"global\"\n\
             gossip_interval = 0.5\n\
             [[functions]]\nname = \"svc.market.quote\"\nscope = \"global\"\n\
             [[functions]]\nname = \"svc.market.local_only\"\nscope = \"local\"\n"
        ),
        ["--cluster-id", "eu", "--name", "eu-0"],
    );
    let us = Node::start_with_config(
        "cache_region = \"us\"\n\
         discovery_summary_resolver_mode = true\n\
         discovery_summary_resolver_scopes = [\"global\"]\n\
         discovery_resolver_mode = true\n\
         gossip_interval = 0.5\n",
        ["--cluster-id", "us", "--name", "us-0", "--peer", eu.url()],
    );
    (eu, us)
}

/// `mpreg discovery summary --namespace svc.market --scope global` on the
/// resolver `us`, polled until eu's `svc.market.quote` summary shows up;
/// returns the items.
fn global_market_summaries(us: &Node) -> Vec<Value> {
    wait_for(Duration::from_secs(20), Duration::from_millis(200), || {
        let v = cli(
            &[
                "discovery",
                "summary",
                "--namespace",
                "svc.market",
                "--scope",
                "global",
            ],
            us.url(),
        )
        .ok()?;
        let items = v["items"].as_array()?.clone();
        items
            .iter()
            .any(|s| s["service_id"] == "svc.market.quote" && s["source_cluster"] == "eu")
            .then_some(items)
    })
    .expect("us never answered eu's global svc.market summary")
}

/// Runbook "Summary Export Lag": the checks `mpreg discovery lag` and
/// `mpreg discovery summary --namespace svc.market --scope global`.
#[test]
fn summary_export_lag_checks() {
    let (eu, us) = regions();
    // Symptom check: `summary_query` for scope=global on the resolver of the
    // other region returns eu's summaries (never a `local` endpoint).
    let items = global_market_summaries(&us);
    assert!(
        items
            .iter()
            .all(|s| s["service_id"] != "svc.market.local_only"),
        "{items:?}"
    );
    assert!(items.iter().all(|s| s["scope"] == "global"), "{items:?}");
    // The lag status on the exporter (the `discovery_lag` RPC, which is what
    // `mpreg discovery lag` shows through `/discovery/lag`): export enabled,
    // lag within a few export intervals (it grows if the export loop
    // stalls).
    let lag = cli(&["client", "call", "discovery_lag"], eu.url()).expect("discovery_lag on eu");
    assert_eq!(lag["summary_export_enabled"], true, "{lag}");
    let export_lag = lag["summary_export_lag_seconds"]
        .as_f64()
        .unwrap_or_else(|| panic!("no summary_export_lag_seconds: {lag}"));
    assert!(export_lag <= 4.0 * INTERVAL, "{lag}");
    // And the freshness lag on the resolver: the age of the newest summary
    // it holds from eu, bounded by the export interval plus delivery.
    let lag = cli(&["client", "call", "discovery_lag"], us.url()).expect("discovery_lag on us");
    let fresh = lag["freshness_lag_seconds"]["eu"]
        .as_f64()
        .unwrap_or_else(|| panic!("no freshness lag for eu: {lag}"));
    assert!(fresh <= 4.0 * INTERVAL, "{lag}");
}

/// Runbook "Resolver Cache Stale Or Empty": `mpreg discovery cache-stats`
/// and `mpreg discovery resync` on the resolver, then `catalog_query` from
/// it sees the exporter's endpoints.
#[test]
fn resolver_cache_stats_and_resync() {
    let (_eu, us) = regions();
    let stats = wait_for(Duration::from_secs(20), Duration::from_millis(200), || {
        let v = cli(&["discovery", "cache-stats"], us.url()).ok()?;
        (v["entry_counts"]["functions"].as_u64()? >= 2
            && v["stats"]["deltas_applied"].as_u64()? >= 1)
            .then_some(v)
    })
    .expect("resolver never filled");
    assert_eq!(stats["enabled"], true);
    assert!(stats["query_cache"].is_object(), "{stats}");
    let resync = cli(&["discovery", "resync"], us.url()).expect("discovery resync");
    assert_eq!(resync["enabled"], true, "{resync}");
    assert_eq!(resync["resynced"], true, "{resync}");
    assert!(
        resync["entry_counts"]["functions"].as_u64().unwrap_or(0) >= 2,
        "{resync}"
    );
    let q = cli(
        &[
            "discovery",
            "query",
            "--entry-type",
            "functions",
            "--namespace",
            "svc.market",
        ],
        us.url(),
    )
    .expect("discovery query");
    assert!(q.to_string().contains("svc.market.quote"), "{q}");
}

/// Every command the runbook names, spelled as it spells it, against a real
/// two-region cluster (eu exports, us is a summary resolver in resolver
/// mode), each with `--url ws://...`: exit 0 and the fields the runbook's
/// checks look at.
#[test]
fn runbook_commands_walk_two_regions() {
    let (eu, us) = regions();
    // "Summary Export Lag": lag on the exporter, global summaries on the
    // other region's resolver.
    let lag = cli(&["discovery", "lag"], eu.url()).expect("discovery lag");
    assert!(
        lag["summary_export_lag_seconds"].is_number() && lag["summary_export_enabled"] == true,
        "{lag}"
    );
    let global = global_market_summaries(&us);
    assert!(global.iter().all(|s| s["scope"] == "global"), "{global:?}");
    let status = cli(&["discovery", "policy", "status"], eu.url()).expect("policy status");
    assert!(
        status["allowed"].is_boolean() && status["reason"].is_string(),
        "{status}"
    );
    // "Resolver Cache Stale Or Empty".
    let stats = cli(&["discovery", "cache-stats"], us.url()).expect("cache-stats");
    assert_eq!(stats["enabled"], true, "{stats}");
    assert!(
        stats["entry_counts"]["nodes"].as_u64() >= Some(2),
        "{stats}"
    );
    let resync = cli(&["discovery", "resync"], us.url()).expect("resync");
    assert_eq!(resync["resynced"], true, "{resync}");
    // "Summary Resolver Scope Mismatch": the resolver caches only `global`,
    // so a `region` query is empty while `global` is not.
    let region = cli(&["discovery", "summary", "--scope", "region"], us.url())
        .expect("summary --scope region");
    assert_eq!(region["items"], serde_json::json!([]), "{region}");
    // "Policy Or Tenant Visibility Denials".
    let audit = cli(&["discovery", "access-audit"], eu.url()).expect("access-audit");
    assert!(audit["entries"].is_array(), "{audit}");
    // "Cluster Map Missing Nodes".
    let map = cli(&["discovery", "cluster-map", "--scope", "zone"], eu.url()).expect("cluster-map");
    assert_eq!(map["cluster_id"], "eu", "{map}");
    assert!(
        map["nodes"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n["node_id"] == eu.url())),
        "{map}"
    );
}
