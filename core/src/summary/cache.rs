//! The summary resolver's cache (`discovery_logic.md` §4.2–§4.4).
//!
//! Differences from MPREG (§11.18), each deliberate:
//! - the namespace allow-list applies per summary, not per message, so a base
//!   message carrying many namespaces brings in only the allowed ones;
//! - expiry runs on the receiver's clock (`received + ttl`), so a skewed
//!   exporter clock cannot make summaries expire early or live forever;
//! - explicit withdrawals remove a service at once (not after its TTL);
//! - per source cluster, the age of the newest summary held is tracked:
//!   that is the freshness lag `discovery_lag` reports.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::catalog::namespace::NamespaceFilter;
use crate::catalog::scope::Scope;

use super::model::{ServiceSummary, SummaryMessage};

/// The cache's settings (`discovery_summary_resolver_*`).
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConfig {
    /// `discovery_summary_resolver_mode`.
    pub enabled: bool,
    /// `discovery_summary_resolver_namespaces` (raw, for reporting).
    pub namespaces: Vec<String>,
    /// `discovery_summary_resolver_scopes` (normalised).
    pub scopes: Vec<Scope>,
    /// `discovery_summary_resolver_prune_interval_seconds`.
    pub prune_interval_seconds: f64,
}

impl CacheConfig {
    /// From normalised settings.
    pub fn from_settings(s: &crate::config::Settings) -> CacheConfig {
        CacheConfig {
            enabled: s.discovery_summary_resolver_mode,
            namespaces: s
                .discovery_summary_resolver_namespaces
                .iter()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect(),
            scopes: s
                .discovery_summary_resolver_scopes
                .iter()
                .filter_map(|raw| Scope::parse_request(Some(raw)).ok().flatten())
                .collect(),
            prune_interval_seconds: s.discovery_summary_resolver_prune_interval_seconds,
        }
    }

    /// The subscription patterns of §4.1 (per configured scope, or all).
    pub fn patterns(&self) -> Vec<String> {
        if self.scopes.is_empty() {
            return vec![
                super::model::SUMMARY_TOPIC.to_string(),
                format!("{}.#", super::model::SUMMARY_TOPIC),
            ];
        }
        let mut out = Vec::new();
        for s in &self.scopes {
            let base = super::model::summary_topic(Some(*s), None);
            out.push(format!("{base}.#"));
            out.push(base);
        }
        out.sort();
        out.dedup();
        out
    }
}

/// Cache key: (namespace, service, source cluster, scope).
pub type Key = (String, String, String, Option<Scope>);

/// One held summary.
#[derive(Debug, Clone, PartialEq)]
pub struct Cached {
    /// The summary (source cluster and scope filled in).
    pub summary: ServiceSummary,
    /// The exporting node.
    pub source_node: String,
    /// The message's `published_at` (exporter clock).
    pub published_at: f64,
    /// When we received it (our wall clock).
    pub received_at: f64,
    /// `received_at + ttl_seconds`.
    pub expires_at: f64,
}

/// Ingestion counters (MPREG's names, plus withdrawals).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CacheStats {
    /// Messages applied (even if nothing in them was new).
    pub messages_applied: u64,
    /// Messages skipped by the namespace or scope filter.
    pub messages_skipped: u64,
    /// Payloads that did not parse.
    pub messages_invalid: u64,
    /// Summaries stored.
    pub summaries_applied: u64,
    /// Summaries dropped at expiry.
    pub summaries_expired: u64,
    /// Summaries removed by explicit withdrawals.
    pub summaries_withdrawn: u64,
    /// Last applied message (our clock).
    pub last_message_at: Option<f64>,
    /// Its cluster.
    pub last_source_cluster: Option<String>,
    /// Its node.
    pub last_source_node: Option<String>,
    /// Last prune.
    pub last_prune_at: Option<f64>,
}

/// What one ingested message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Applied: summaries stored and withdrawals honoured.
    Applied {
        /// Summaries stored.
        stored: usize,
        /// Summaries removed by withdrawals.
        withdrawn: usize,
    },
    /// Filtered out (namespace or scope).
    Skipped,
    /// Not a summary message.
    Invalid,
    /// The cache is disabled.
    Disabled,
}

/// The summary cache state machine.
#[derive(Debug, Clone)]
pub struct SummaryCache {
    cfg: CacheConfig,
    filters: Vec<NamespaceFilter>,
    entries: BTreeMap<Key, Cached>,
    stats: CacheStats,
}

impl SummaryCache {
    /// An empty cache.
    pub fn new(cfg: CacheConfig) -> SummaryCache {
        let filters = cfg
            .namespaces
            .iter()
            .map(|n| NamespaceFilter::parse(n))
            .collect();
        SummaryCache {
            cfg,
            filters,
            entries: BTreeMap::new(),
            stats: CacheStats::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &CacheConfig {
        &self.cfg
    }

    /// The counters.
    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// Summaries held (expired ones included until the next prune).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn ns_allowed(&self, ns: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| f.matches(ns))
    }

    /// Ingests one notification payload at our wall time `now`.
    pub fn ingest(&mut self, payload: &Value, now: f64) -> Ingested {
        if !self.cfg.enabled {
            return Ingested::Disabled;
        }
        let msg = match SummaryMessage::from_json(payload) {
            Ok(m) => m,
            Err(_) => {
                self.stats.messages_invalid += 1;
                return Ingested::Invalid;
            }
        };
        self.apply(&msg, now)
    }

    /// Applies a parsed message (§4.2 with the fixes of the module docs).
    pub fn apply(&mut self, msg: &SummaryMessage, now: f64) -> Ingested {
        if !self.cfg.enabled {
            return Ingested::Disabled;
        }
        let any_ns = msg
            .namespaces
            .iter()
            .map(String::as_str)
            .chain(msg.summaries.iter().map(|s| s.namespace.as_str()))
            .chain(msg.withdrawn.iter().map(|w| w.namespace.as_str()))
            .any(|ns| self.ns_allowed(ns));
        let scope_ok =
            self.cfg.scopes.is_empty() || msg.scope.is_some_and(|s| self.cfg.scopes.contains(&s));
        if !any_ns || !scope_ok {
            self.stats.messages_skipped += 1;
            return Ingested::Skipped;
        }
        let mut stored = 0;
        for s in &msg.summaries {
            if s.ttl_seconds.is_nan() || s.ttl_seconds <= 0.0 || !self.ns_allowed(&s.namespace) {
                continue;
            }
            let mut s = s.clone();
            if s.source_cluster.as_deref().is_none_or(str::is_empty) {
                s.source_cluster = Some(msg.source_cluster.clone());
            }
            s.scope = s.scope.or(msg.scope);
            let key: Key = (
                s.namespace.clone(),
                s.service_id.clone(),
                s.source_cluster.clone().unwrap_or_default(),
                s.scope,
            );
            if self
                .entries
                .get(&key)
                .is_some_and(|old| s.generated_at <= old.summary.generated_at)
            {
                continue;
            }
            let expires_at = now + s.ttl_seconds;
            self.entries.insert(
                key,
                Cached {
                    summary: s,
                    source_node: msg.source_node.clone(),
                    published_at: msg.published_at,
                    received_at: now,
                    expires_at,
                },
            );
            stored += 1;
        }
        let mut withdrawn = 0;
        for w in &msg.withdrawn {
            if !self.ns_allowed(&w.namespace) {
                continue;
            }
            let key: Key = (
                w.namespace.clone(),
                w.service_id.clone(),
                msg.source_cluster.clone(),
                msg.scope,
            );
            // A withdrawal older than what we hold (a reordered flood) does
            // not remove a newer export.
            if self
                .entries
                .get(&key)
                .is_some_and(|old| old.summary.generated_at <= msg.published_at)
            {
                self.entries.remove(&key);
                withdrawn += 1;
            }
        }
        let st = &mut self.stats;
        st.messages_applied += 1;
        st.summaries_applied += stored as u64;
        st.summaries_withdrawn += withdrawn as u64;
        st.last_message_at = Some(now);
        st.last_source_cluster = Some(msg.source_cluster.clone());
        st.last_source_node = Some(msg.source_node.clone());
        Ingested::Applied { stored, withdrawn }
    }

    /// Drops summaries whose `expires_at <= now` (§4.3); returns how many.
    pub fn prune(&mut self, now: f64) -> usize {
        let before = self.entries.len();
        self.entries.retain(|_, c| c.expires_at > now);
        let n = before - self.entries.len();
        self.stats.summaries_expired += n as u64;
        self.stats.last_prune_at = Some(now);
        n
    }

    /// Summaries matching a query (§4.4, with the one namespace rule):
    /// dot-prefix namespace, exact service id, and entry scope unset or
    /// equal to `scope`. Sorted by (namespace, service, cluster,
    /// generated_at). Expired entries are never returned.
    pub fn query(
        &self,
        namespace: &NamespaceFilter,
        service_id: Option<&str>,
        scope: Option<Scope>,
        now: f64,
    ) -> Vec<ServiceSummary> {
        let mut out: Vec<&Cached> = self
            .entries
            .values()
            .filter(|c| c.expires_at > now)
            .filter(|c| namespace.matches(&c.summary.namespace))
            .filter(|c| service_id.is_none_or(|id| c.summary.service_id == id))
            .filter(|c| c.summary.scope.is_none() || c.summary.scope == scope)
            .collect();
        out.sort_by(|a, b| {
            (
                &a.summary.namespace,
                &a.summary.service_id,
                &a.summary.source_cluster,
            )
                .cmp(&(
                    &b.summary.namespace,
                    &b.summary.service_id,
                    &b.summary.source_cluster,
                ))
                .then(a.summary.generated_at.total_cmp(&b.summary.generated_at))
        });
        out.into_iter().map(|c| c.summary.clone()).collect()
    }

    /// Freshness lag per source cluster: seconds since the newest summary
    /// held from that cluster arrived (clusters with nothing held are
    /// absent).
    pub fn freshness(&self, now: f64) -> BTreeMap<String, f64> {
        let mut newest: BTreeMap<String, f64> = BTreeMap::new();
        for ((_, _, cluster, _), c) in &self.entries {
            if c.expires_at <= now {
                continue;
            }
            let t = newest.entry(cluster.clone()).or_insert(c.received_at);
            *t = t.max(c.received_at);
        }
        newest
            .into_iter()
            .map(|(c, t)| (c, (now - t).max(0.0)))
            .collect()
    }

    /// The `summary_cache` object of `/discovery/cache` (§9.1).
    pub fn snapshot(&self, now: f64) -> Value {
        let mut v = json!({
            "enabled": self.cfg.enabled,
            "generated_at": now,
            "namespaces": self.cfg.namespaces,
            "entry_counts": {"summaries": if self.cfg.enabled { self.entries.len() } else { 0 }},
        });
        if self.cfg.enabled {
            let st = &self.stats;
            let mut stats = json!({
                "messages_applied": st.messages_applied,
                "messages_skipped": st.messages_skipped,
                "messages_invalid": st.messages_invalid,
                "summaries_applied": st.summaries_applied,
                "summaries_expired": st.summaries_expired,
                "summaries_withdrawn": st.summaries_withdrawn,
            });
            let opt = |v: &mut Value, k: &str, x: Option<Value>| {
                if let Some(x) = x {
                    v[k] = x;
                }
            };
            opt(
                &mut stats,
                "last_message_at",
                st.last_message_at.map(|t| json!(t)),
            );
            opt(
                &mut stats,
                "last_source_cluster",
                st.last_source_cluster.clone().map(Value::String),
            );
            opt(
                &mut stats,
                "last_source_node",
                st.last_source_node.clone().map(Value::String),
            );
            opt(
                &mut stats,
                "last_prune_at",
                st.last_prune_at.map(|t| json!(t)),
            );
            v["stats"] = stats;
            v["freshness_lag_seconds"] = json!(self.freshness(now));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::model::Withdrawal;
    use super::*;

    fn cfg() -> CacheConfig {
        CacheConfig {
            enabled: true,
            namespaces: vec![],
            scopes: vec![],
            prune_interval_seconds: 30.0,
        }
    }

    fn summary(service: &str, generated_at: f64, ttl: f64) -> ServiceSummary {
        ServiceSummary {
            namespace: crate::catalog::namespace::name_namespace(service).to_string(),
            service_id: service.into(),
            regions: vec!["eu".into()],
            endpoint_count: 1,
            health_band: "healthy".into(),
            latency_band_ms: None,
            ttl_seconds: ttl,
            generated_at,
            scope: None,
            policy_version: None,
            source_cluster: None,
        }
    }

    fn msg(summaries: Vec<ServiceSummary>, at: f64, scope: Option<Scope>) -> SummaryMessage {
        SummaryMessage {
            namespaces: summaries.iter().map(|s| s.namespace.clone()).collect(),
            summaries,
            source_node: "ws://eu:1".into(),
            source_cluster: "eu".into(),
            published_at: at,
            scope,
            withdrawn: vec![],
        }
    }

    #[test]
    fn ingest_fills_source_and_scope_and_rejects_older() {
        let mut c = SummaryCache::new(cfg());
        let m = msg(
            vec![summary("svc.a.x", 10.0, 30.0)],
            10.0,
            Some(Scope::Global),
        );
        assert_eq!(
            c.ingest(&m.to_json(), 100.0),
            Ingested::Applied {
                stored: 1,
                withdrawn: 0
            }
        );
        let got = c.query(
            &NamespaceFilter::parse("svc.a"),
            None,
            Some(Scope::Global),
            101.0,
        );
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].source_cluster.as_deref(), Some("eu"));
        assert_eq!(got[0].scope, Some(Scope::Global));
        // Same or older generated_at is ignored; newer replaces.
        let old = msg(
            vec![summary("svc.a.x", 10.0, 30.0)],
            10.0,
            Some(Scope::Global),
        );
        assert_eq!(
            c.apply(&old, 102.0),
            Ingested::Applied {
                stored: 0,
                withdrawn: 0
            }
        );
        // Scope mismatch and dot boundary.
        assert!(c
            .query(
                &NamespaceFilter::parse("svc.a"),
                None,
                Some(Scope::Region),
                101.0
            )
            .is_empty());
        assert!(c
            .query(
                &NamespaceFilter::parse("svc.ab"),
                None,
                Some(Scope::Global),
                101.0
            )
            .is_empty());
        assert_eq!(c.ingest(&json!("x"), 1.0), Ingested::Invalid);
        assert_eq!(c.stats().messages_invalid, 1);
    }

    #[test]
    fn expiry_uses_receiver_clock() {
        let mut c = SummaryCache::new(cfg());
        // The exporter's clock is an hour behind: expiry still counts from
        // arrival.
        c.apply(
            &msg(vec![summary("svc.a.x", 10.0, 30.0)], 10.0, None),
            3610.0,
        );
        assert_eq!(
            c.query(&NamespaceFilter::all(), None, None, 3630.0).len(),
            1
        );
        assert!(c
            .query(&NamespaceFilter::all(), None, None, 3640.0)
            .is_empty());
        assert_eq!(c.prune(3640.0), 1);
        assert_eq!(c.stats().summaries_expired, 1);
    }

    #[test]
    fn withdrawal_removes_at_once_unless_older() {
        let mut c = SummaryCache::new(cfg());
        c.apply(
            &msg(
                vec![summary("svc.a.x", 10.0, 30.0)],
                10.0,
                Some(Scope::Global),
            ),
            10.0,
        );
        let mut stale = msg(vec![], 5.0, Some(Scope::Global));
        stale.withdrawn = vec![Withdrawal {
            namespace: "svc.a".into(),
            service_id: "svc.a.x".into(),
        }];
        c.apply(&stale, 11.0);
        assert_eq!(c.len(), 1, "an older withdrawal keeps the newer export");
        let mut w = stale.clone();
        w.published_at = 12.0;
        assert_eq!(
            c.apply(&w, 12.0),
            Ingested::Applied {
                stored: 0,
                withdrawn: 1
            }
        );
        assert!(c.is_empty());
    }

    #[test]
    fn filters_scope_and_namespace_per_summary() {
        let mut c = SummaryCache::new(CacheConfig {
            namespaces: vec!["svc.a".into()],
            scopes: vec![Scope::Global],
            ..cfg()
        });
        let both = msg(
            vec![summary("svc.a.x", 1.0, 30.0), summary("svc.b.y", 1.0, 30.0)],
            1.0,
            Some(Scope::Global),
        );
        c.apply(&both, 1.0);
        assert_eq!(c.len(), 1);
        assert_eq!(c.apply(&msg(vec![], 1.0, None), 1.0), Ingested::Skipped);
        assert_eq!(
            c.apply(
                &msg(
                    vec![summary("svc.a.z", 1.0, 30.0)],
                    1.0,
                    Some(Scope::Region)
                ),
                1.0
            ),
            Ingested::Skipped
        );
        assert_eq!(
            c.apply(
                &msg(
                    vec![summary("svc.b.z", 1.0, 30.0)],
                    1.0,
                    Some(Scope::Global)
                ),
                1.0
            ),
            Ingested::Skipped
        );
        assert_eq!(c.stats().messages_skipped, 3);
        assert_eq!(
            c.config().patterns(),
            vec![
                "mpreg.discovery.summary.global".to_string(),
                "mpreg.discovery.summary.global.#".to_string()
            ]
        );
    }

    #[test]
    fn freshness_is_age_of_newest_held_per_cluster() {
        let mut c = SummaryCache::new(cfg());
        c.apply(&msg(vec![summary("svc.a.x", 1.0, 30.0)], 1.0, None), 100.0);
        c.apply(&msg(vec![summary("svc.a.y", 2.0, 30.0)], 2.0, None), 104.0);
        assert_eq!(c.freshness(110.0).get("eu"), Some(&6.0));
        let snap = c.snapshot(110.0);
        assert_eq!(snap["entry_counts"]["summaries"], 2);
        assert_eq!(snap["freshness_lag_seconds"]["eu"], 6.0);
        assert!(c.freshness(200.0).is_empty());
    }

    proptest! {
        /// A query never returns a summary past its expiry, whatever the
        /// arrival order and clocks.
        #[test]
        fn never_serves_expired(
            arrivals in proptest::collection::vec((0u8..4, 0.0f64..50.0, 0.1f64..20.0, 0.0f64..100.0), 1..40),
            at in 0.0f64..150.0,
        ) {
            let mut c = SummaryCache::new(cfg());
            let mut sorted = arrivals.clone();
            sorted.sort_by(|a, b| a.3.total_cmp(&b.3));
            let mut expiry: BTreeMap<String, f64> = BTreeMap::new();
            for (k, gen, ttl, now) in sorted {
                if now > at {
                    break;
                }
                let name = format!("svc.a.s{k}");
                if let Ingested::Applied { stored: 1, .. } =
                    c.apply(&msg(vec![summary(&name, gen, ttl)], gen, None), now)
                {
                    expiry.insert(name, now + ttl);
                }
            }
            for s in c.query(&NamespaceFilter::all(), None, None, at) {
                prop_assert!(expiry[&s.service_id] > at);
            }
        }
    }
}
