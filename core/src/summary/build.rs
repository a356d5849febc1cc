//! Building [`ServiceSummary`] records from catalog function endpoints.
//!
//! Fixes over MPREG (`discovery_logic.md` §11.5, §11.19):
//! - an **export** summarises only this cluster's own endpoints whose scope
//!   permits export (never `local`; at least the export scope), and stamps
//!   the real source cluster;
//! - a **live query** groups endpoints per (source cluster, service), so a
//!   remote cluster's endpoints are never relabelled as ours;
//! - `health_band` is the share of healthy endpoints
//!   ([`HealthBand::of`]); an endpoint is healthy when its owner is not
//!   suspected by the failure detector and its entry has at least half its
//!   TTL left (owners refresh every quarter TTL, so less than half means at
//!   least one refresh went missing);
//! - `latency_band_ms` is left unmeasured (sent as MPREG's `[0,0]`): the
//!   fabric measures no request latency yet;
//! - `ttl_seconds` grows with the scope ([`summary_ttl`]).

use std::collections::{BTreeMap, BTreeSet};

use crate::catalog::entry::{Entry, EntryKind, FunctionEndpoint};
use crate::catalog::scope::Scope;
use crate::catalog::store::Catalog;

use super::model::{HealthBand, ServiceSummary};

/// How much longer a summary lives per scope step: a summary that travels
/// further is refreshed less often relative to its reach, and its holders
/// must keep it across more missed exports.
pub fn summary_ttl(base_ttl: f64, interval: f64, scope: Option<Scope>) -> f64 {
    // At least three export intervals, so one lost export never expires it.
    let base = base_ttl.max(3.0 * interval.max(0.0)).max(1.0);
    let factor = match scope {
        None | Some(Scope::Local) | Some(Scope::Zone) => 1.0,
        Some(Scope::Region) => 2.0,
        Some(Scope::Global) => 4.0,
    };
    base * factor
}

/// A service's namespace as summaries name it: the endpoint's effective
/// namespace, or the service name itself when it has none (MPREG's
/// `ns_or_self`, so `echo` summarises under `echo`).
pub fn summary_namespace(e: &FunctionEndpoint) -> &str {
    let ns = e.effective_namespace();
    if ns.is_empty() {
        &e.identity.name
    } else {
        ns
    }
}

/// Whether an endpoint may appear in this cluster's export at
/// `export_scope`: own cluster, scope not `local`, and at least as wide as
/// the export scope.
pub fn exportable(e: &FunctionEndpoint, own_cluster: &str, export_scope: Option<Scope>) -> bool {
    e.cluster_id == own_cluster
        && e.scope != Scope::Local
        && export_scope.is_none_or(|s| e.scope.rank() >= s.rank())
}

/// Endpoint health as the module docs define it.
pub fn endpoint_healthy(e: &FunctionEndpoint, now: f64, owner_suspected: bool) -> bool {
    !owner_suspected && (e.advertised_at + e.ttl_seconds - now) >= e.ttl_seconds / 2.0
}

/// What every summary of one build is stamped with.
#[derive(Debug, Clone)]
pub struct Stamp {
    /// `generated_at` (wall clock).
    pub now: f64,
    /// `ttl_seconds`.
    pub ttl_seconds: f64,
    /// `scope`.
    pub scope: Option<Scope>,
}

/// Summarises `endpoints` per (cluster, service). `region_of` names an
/// endpoint's region (its node's), `healthy` decides endpoint health, and
/// `admit` is asked once per namespace: `None` drops the namespace, `Some(v)`
/// keeps it with policy version `v`. Output is sorted by (namespace,
/// service, cluster).
pub fn summarize<'e>(
    endpoints: impl IntoIterator<Item = &'e FunctionEndpoint>,
    stamp: &Stamp,
    region_of: &dyn Fn(&FunctionEndpoint) -> Option<String>,
    healthy: &dyn Fn(&FunctionEndpoint) -> bool,
    admit: &mut dyn FnMut(&str) -> Option<Option<String>>,
) -> Vec<ServiceSummary> {
    struct Group {
        namespace: String,
        total: u64,
        healthy: u64,
        regions: BTreeSet<String>,
    }
    let mut groups: BTreeMap<(String, String, String), Group> = BTreeMap::new();
    for e in endpoints {
        let ns = summary_namespace(e).to_string();
        let key = (ns.clone(), e.identity.name.clone(), e.cluster_id.clone());
        let g = groups.entry(key).or_insert_with(|| Group {
            namespace: ns,
            total: 0,
            healthy: 0,
            regions: BTreeSet::new(),
        });
        g.total += 1;
        if healthy(e) {
            g.healthy += 1;
        }
        if let Some(r) = region_of(e).filter(|r| !r.is_empty()) {
            g.regions.insert(r);
        }
    }
    let mut decided: BTreeMap<String, Option<Option<String>>> = BTreeMap::new();
    let mut out = Vec::new();
    for ((_, service, cluster), g) in groups {
        let verdict = decided
            .entry(g.namespace.clone())
            .or_insert_with(|| admit(&g.namespace))
            .clone();
        let Some(policy_version) = verdict else {
            continue;
        };
        out.push(ServiceSummary {
            namespace: g.namespace,
            service_id: service,
            regions: g.regions.into_iter().collect(),
            endpoint_count: g.total,
            health_band: HealthBand::of(g.healthy, g.total).as_str().to_string(),
            latency_band_ms: None,
            ttl_seconds: stamp.ttl_seconds,
            generated_at: stamp.now,
            scope: stamp.scope,
            policy_version,
            source_cluster: Some(cluster),
        });
    }
    out
}

/// The function endpoints of `catalog` not expired at `now`.
pub fn live_functions(catalog: &Catalog, now: f64) -> impl Iterator<Item = &FunctionEndpoint> {
    catalog
        .iter(EntryKind::Functions)
        .filter(move |e| !e.is_expired(now))
        .filter_map(|e| match e {
            Entry::Function(f) => Some(f),
            _ => None,
        })
}

/// Region of each node that has a descriptor in `catalog` (node id →
/// region), for [`summarize`]'s `region_of`.
pub fn node_regions(catalog: &Catalog) -> BTreeMap<String, String> {
    catalog
        .iter(EntryKind::Nodes)
        .filter_map(|e| match e {
            Entry::Node(n) if !n.region.is_empty() => Some((n.node_id.clone(), n.region.clone())),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::entry::FunctionIdentity;

    fn f(name: &str, node: &str, cluster: &str, scope: Scope) -> FunctionEndpoint {
        FunctionEndpoint::new(FunctionIdentity::new(name, name, "1.0.0"), node, cluster)
            .with_scope(scope)
            .advertised(100.0, 30.0)
    }

    fn stamp() -> Stamp {
        Stamp {
            now: 110.0,
            ttl_seconds: 60.0,
            scope: Some(Scope::Global),
        }
    }

    #[test]
    fn ttl_grows_with_scope() {
        let zone = summary_ttl(30.0, 5.0, Some(Scope::Zone));
        let region = summary_ttl(30.0, 5.0, Some(Scope::Region));
        let global = summary_ttl(30.0, 5.0, Some(Scope::Global));
        assert!(zone < region && region < global);
        // Never shorter than three export intervals.
        assert_eq!(summary_ttl(1.0, 10.0, Some(Scope::Zone)), 30.0);
    }

    #[test]
    fn export_filter_keeps_own_wide_enough_endpoints() {
        let own = f("svc.a.x", "ws://n:1", "eu", Scope::Global);
        assert!(exportable(&own, "eu", Some(Scope::Global)));
        assert!(!exportable(&own, "us", Some(Scope::Global)));
        let zone = f("svc.a.y", "ws://n:1", "eu", Scope::Zone);
        assert!(!exportable(&zone, "eu", Some(Scope::Global)));
        assert!(exportable(&zone, "eu", Some(Scope::Zone)));
        assert!(exportable(&zone, "eu", None));
        let local = f("svc.a.z", "ws://n:1", "eu", Scope::Local);
        assert!(!exportable(&local, "eu", None));
        assert!(!exportable(&local, "eu", Some(Scope::Local)));
    }

    #[test]
    fn summaries_group_per_cluster_with_real_health() {
        let mut stale = f("svc.a.x", "ws://n:3", "eu", Scope::Global);
        stale.advertised_at = 90.0; // 10 s of 30 left at t=110: missed refreshes
        let eps = [
            f("svc.a.x", "ws://n:1", "eu", Scope::Global),
            f("svc.a.x", "ws://n:2", "eu", Scope::Global),
            stale,
            f("svc.a.x", "ws://m:1", "us", Scope::Global),
            f("echo", "ws://n:1", "eu", Scope::Global),
        ];
        let suspected = |e: &FunctionEndpoint| e.node_id == "ws://n:2";
        let out = summarize(
            eps.iter(),
            &stamp(),
            &|e| Some(if e.cluster_id == "eu" { "emea" } else { "amer" }.into()),
            &|e| endpoint_healthy(e, 110.0, suspected(e)),
            &mut |_| Some(None),
        );
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].service_id, "echo");
        assert_eq!(out[0].namespace, "echo");
        let eu = &out[1];
        assert_eq!(eu.source_cluster.as_deref(), Some("eu"));
        assert_eq!(eu.endpoint_count, 3);
        assert_eq!(eu.health_band, "unhealthy"); // 1 of 3 healthy
        assert_eq!(eu.regions, vec!["emea".to_string()]);
        assert!(eu.latency_band_ms.is_none());
        let us = &out[2];
        assert_eq!(us.source_cluster.as_deref(), Some("us"));
        assert_eq!(us.health_band, "healthy");
    }

    #[test]
    fn admit_is_asked_once_per_namespace_and_can_drop() {
        let eps = [
            f("svc.a.x", "ws://n:1", "eu", Scope::Global),
            f("svc.a.y", "ws://n:1", "eu", Scope::Global),
            f("svc.b.x", "ws://n:1", "eu", Scope::Global),
        ];
        let mut asked = Vec::new();
        let out = summarize(eps.iter(), &stamp(), &|_| None, &|_| true, &mut |ns| {
            asked.push(ns.to_string());
            (ns == "svc.a").then(|| Some("v3".to_string()))
        });
        assert_eq!(asked, vec!["svc.a".to_string(), "svc.b".to_string()]);
        assert_eq!(out.len(), 2);
        assert!(out
            .iter()
            .all(|s| s.policy_version.as_deref() == Some("v3")));
    }
}
