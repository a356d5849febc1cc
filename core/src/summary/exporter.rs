//! The summary exporter: hold-down, explicit withdrawals, export statistics
//! and the store-and-forward backlog (`discovery_logic.md` §3.3–§3.7).
//!
//! Hold-down follows MPREG (§3.4: per namespace, a change is accepted at most
//! once per `hold_down` seconds measured from the last accepted change; the
//! first sight of a namespace is immediate; held ticks re-export the stored
//! set with a fresh `generated_at`), with these fixes (§11.11):
//! - a namespace that disappears is a change like any other: its withdrawal
//!   is held down too, then it is withdrawn explicitly;
//! - a withdrawn namespace leaves an empty record for one hold-down window
//!   (so reappearing at once is still damped) and is then forgotten, so the
//!   state never grows with namespaces that are gone.
//!
//! Together: per namespace, at most one accepted change per `hold_down`
//! window, whatever the input does.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::catalog::namespace::topic_matches;
use crate::catalog::scope::Scope;

use super::model::{summary_topic, ServiceSummary, SummaryMessage, Withdrawal};

/// How many consecutive exports repeat a withdrawal, so one lost message
/// does not leave a withdrawn service cached until its TTL.
pub const WITHDRAWAL_REPEATS: u32 = 3;

/// The exporter's settings (`discovery_summary_export_*`).
#[derive(Debug, Clone, PartialEq)]
pub struct ExportConfig {
    /// `discovery_summary_export_enabled`.
    pub enabled: bool,
    /// `discovery_summary_export_interval_seconds`.
    pub interval_seconds: f64,
    /// `discovery_summary_export_scope`.
    pub scope: Option<Scope>,
    /// `discovery_summary_export_include_unscoped`.
    pub include_unscoped: bool,
    /// `discovery_summary_export_hold_down_seconds`.
    pub hold_down_seconds: f64,
    /// `discovery_summary_export_store_forward_seconds`.
    pub store_forward_seconds: f64,
    /// `discovery_summary_export_store_forward_max_messages`.
    pub store_forward_max_messages: usize,
    /// `discovery_summary_export_namespaces` (trimmed, blanks dropped).
    pub namespaces: Vec<String>,
    /// This node's URL (`source_node`).
    pub source_node: String,
    /// This cluster (`source_cluster`).
    pub source_cluster: String,
}

impl ExportConfig {
    /// From the settings of a node `source_node` of cluster `source_cluster`.
    pub fn from_settings(s: &crate::config::Settings, source_node: &str) -> ExportConfig {
        ExportConfig {
            enabled: s.discovery_summary_export_enabled,
            interval_seconds: s.discovery_summary_export_interval_seconds,
            scope: Scope::parse_request(s.discovery_summary_export_scope.as_deref())
                .ok()
                .flatten(),
            include_unscoped: s.discovery_summary_export_include_unscoped,
            hold_down_seconds: s.discovery_summary_export_hold_down_seconds.max(0.0),
            store_forward_seconds: s.discovery_summary_export_store_forward_seconds.max(0.0),
            store_forward_max_messages: usize::try_from(
                s.discovery_summary_export_store_forward_max_messages,
            )
            .unwrap_or(0),
            namespaces: s
                .discovery_summary_export_namespaces
                .iter()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect(),
            source_node: source_node.to_string(),
            source_cluster: s.cluster_id.clone(),
        }
    }

    /// Store-and-forward is on only when both bounds are positive (§3.7).
    pub fn store_forward_enabled(&self) -> bool {
        self.store_forward_seconds > 0.0 && self.store_forward_max_messages > 0
    }

    /// The topic scopes each export is published under (§3.6).
    pub fn publish_scopes(&self) -> Vec<Option<Scope>> {
        match self.scope {
            Some(s) if self.include_unscoped => vec![Some(s), None],
            Some(s) => vec![Some(s)],
            None => vec![None],
        }
    }
}

/// One message to publish on `topic`.
#[derive(Debug, Clone, PartialEq)]
pub struct Publication {
    /// Concrete summary topic.
    pub topic: String,
    /// Fresh message id.
    pub message_id: String,
    /// The payload.
    pub message: SummaryMessage,
}

/// A stored export message (store-and-forward).
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    /// What was published.
    pub publication: Publication,
    /// When (wall clock).
    pub stored_at: f64,
}

#[derive(Debug, Clone)]
struct NsState {
    /// Summaries without their TTL / time, sorted by service id.
    templates: Vec<ServiceSummary>,
    fingerprint: String,
    last_change_at: f64,
}

/// Per-namespace export counters (§3.5).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NsStats {
    /// Exports that carried this namespace.
    pub exports_total: u64,
    /// Summaries of it exported.
    pub summaries_exported: u64,
    /// Last export carrying it.
    pub last_export_at: Option<f64>,
    /// Summaries in that export.
    pub last_export_count: u64,
}

/// Export counters (§3.5), plus withdrawals.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportStats {
    /// Export ticks.
    pub exports_total: u64,
    /// Summaries exported over all ticks.
    pub summaries_exported: u64,
    /// Last tick (wall clock).
    pub last_export_at: Option<f64>,
    /// Summaries in the last tick.
    pub last_export_count: u64,
    /// Namespaces with at least one summary in the last tick.
    pub last_export_namespaces: Vec<String>,
    /// Changes held back by hold-down.
    pub hold_downs_total: u64,
    /// Services withdrawn (each counted once).
    pub withdrawals_total: u64,
    /// Per namespace.
    pub per_namespace: BTreeMap<String, NsStats>,
}

/// The exporter state machine.
#[derive(Debug, Clone)]
pub struct Exporter {
    cfg: ExportConfig,
    state: BTreeMap<String, NsState>,
    /// Withdrawals still to be repeated, with the repeats left.
    pending: BTreeMap<Withdrawal, u32>,
    stats: ExportStats,
    backlog: VecDeque<Stored>,
}

fn fingerprint(templates: &[ServiceSummary]) -> String {
    let lines: Vec<String> = templates
        .iter()
        .map(ServiceSummary::template_line)
        .collect();
    hex(&Sha256::digest(lines.join("\n").as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Exporter {
    /// A fresh exporter.
    pub fn new(cfg: ExportConfig) -> Exporter {
        Exporter {
            cfg,
            state: BTreeMap::new(),
            pending: BTreeMap::new(),
            stats: ExportStats::default(),
            backlog: VecDeque::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ExportConfig {
        &self.cfg
    }

    /// The counters.
    pub fn stats(&self) -> &ExportStats {
        &self.stats
    }

    /// `(summaries_exported, last_export_at)` of the namespace subtree `ns`
    /// (`discovery_logic.md` §2.6): summed over the per-namespace counters
    /// of `ns` and the namespaces under it on a dot boundary, the latest
    /// export time of those; both `None` when nothing under `ns` was ever
    /// exported or `ns` is empty.
    pub fn summary_for_namespace(&self, ns: &str) -> (Option<u64>, Option<f64>) {
        if ns.is_empty() {
            return (None, None);
        }
        let mut total = 0;
        let mut last: Option<f64> = None;
        for (name, st) in &self.stats.per_namespace {
            let under = name == ns
                || name
                    .strip_prefix(ns)
                    .is_some_and(|rest| rest.starts_with('.'));
            if under {
                total += st.summaries_exported;
                if let Some(t) = st.last_export_at {
                    last = Some(last.map_or(t, |l: f64| l.max(t)));
                }
            }
        }
        if total == 0 {
            (None, None)
        } else {
            (Some(total), last)
        }
    }

    /// Namespaces with hold-down state (for tests and diagnostics).
    pub fn tracked_namespaces(&self) -> usize {
        self.state.len()
    }

    /// Applies hold-down to this tick's candidate summaries and returns what
    /// is exported per namespace (sorted by service id, re-stamped with
    /// `ttl` and `now`), plus the withdrawals this tick accepted.
    pub fn prepare(
        &mut self,
        summaries: Vec<ServiceSummary>,
        now: f64,
        ttl: f64,
    ) -> BTreeMap<String, Vec<ServiceSummary>> {
        let mut input: BTreeMap<String, Vec<ServiceSummary>> = BTreeMap::new();
        for s in summaries {
            input.entry(s.namespace.clone()).or_default().push(s);
        }
        let hold = self.cfg.hold_down_seconds;
        let names: BTreeSet<String> = self.state.keys().chain(input.keys()).cloned().collect();
        let mut out = BTreeMap::new();
        for ns in names {
            let mut new = input.remove(&ns).unwrap_or_default();
            new.sort_by(|a, b| a.service_id.cmp(&b.service_id));
            let fp = fingerprint(&new);
            let exported = match self.state.get_mut(&ns) {
                None if new.is_empty() => continue,
                None => {
                    for s in &new {
                        self.pending.remove(&withdrawal_of(s));
                    }
                    self.state.insert(
                        ns.clone(),
                        NsState {
                            templates: new.clone(),
                            fingerprint: fp,
                            last_change_at: now,
                        },
                    );
                    new
                }
                Some(st) if st.fingerprint == fp => st.templates.clone(),
                Some(st) if hold > 0.0 && now - st.last_change_at < hold => {
                    self.stats.hold_downs_total += 1;
                    st.templates.clone()
                }
                Some(st) => {
                    let kept: BTreeSet<&str> = new.iter().map(|s| s.service_id.as_str()).collect();
                    for old in &st.templates {
                        if !kept.contains(old.service_id.as_str()) {
                            self.stats.withdrawals_total += 1;
                            self.pending.insert(withdrawal_of(old), WITHDRAWAL_REPEATS);
                        }
                    }
                    for s in &new {
                        self.pending.remove(&withdrawal_of(s));
                    }
                    st.templates = new.clone();
                    st.fingerprint = fp;
                    st.last_change_at = now;
                    new
                }
            };
            if !exported.is_empty() {
                out.insert(
                    ns,
                    exported
                        .into_iter()
                        .map(|mut s| {
                            s.ttl_seconds = ttl;
                            s.generated_at = now;
                            s
                        })
                        .collect(),
                );
            }
        }
        // Forget withdrawn namespaces once their hold-down window is over.
        self.state
            .retain(|_, st| !st.templates.is_empty() || now - st.last_change_at < hold);
        out
    }

    /// One export tick: hold-down ([`Exporter::prepare`]), statistics, the
    /// messages of §3.6 (per namespace and publish scope, then the base
    /// topics; pending withdrawals ride along), and the store-and-forward
    /// record. `next_id` names each message.
    pub fn export(
        &mut self,
        summaries: Vec<ServiceSummary>,
        now: f64,
        ttl: f64,
        next_id: &mut dyn FnMut() -> String,
    ) -> Vec<Publication> {
        let by_ns = self.prepare(summaries, now, ttl);
        let withdrawn: Vec<Withdrawal> = self.pending.keys().cloned().collect();
        self.pending.retain(|_, left| {
            *left -= 1;
            *left > 0
        });
        let count: usize = by_ns.values().map(Vec::len).sum();
        let st = &mut self.stats;
        st.exports_total += 1;
        st.summaries_exported += count as u64;
        st.last_export_at = Some(now);
        st.last_export_count = count as u64;
        st.last_export_namespaces = by_ns.keys().cloned().collect();
        for (ns, items) in &by_ns {
            let n = st.per_namespace.entry(ns.clone()).or_default();
            n.exports_total += 1;
            n.summaries_exported += items.len() as u64;
            n.last_export_at = Some(now);
            n.last_export_count = items.len() as u64;
        }
        let mut namespaces: BTreeSet<&str> = by_ns.keys().map(String::as_str).collect();
        namespaces.extend(withdrawn.iter().map(|w| w.namespace.as_str()));
        let scopes = self.cfg.publish_scopes();
        let message = |summaries: Vec<ServiceSummary>, nss: Vec<String>, wd: Vec<Withdrawal>| {
            SummaryMessage {
                summaries,
                namespaces: nss,
                source_node: self.cfg.source_node.clone(),
                source_cluster: self.cfg.source_cluster.clone(),
                published_at: now,
                scope: self.cfg.scope,
                withdrawn: wd,
            }
        };
        let mut pubs = Vec::new();
        for ns in &namespaces {
            let items = by_ns.get(*ns).cloned().unwrap_or_default();
            let wd: Vec<Withdrawal> = withdrawn
                .iter()
                .filter(|w| w.namespace == *ns)
                .cloned()
                .collect();
            for scope in &scopes {
                pubs.push(Publication {
                    topic: summary_topic(*scope, Some(ns)),
                    message_id: next_id(),
                    message: message(items.clone(), vec![ns.to_string()], wd.clone()),
                });
            }
        }
        let all: Vec<ServiceSummary> = by_ns.values().flatten().cloned().collect();
        let all_ns: Vec<String> = by_ns.keys().cloned().collect();
        for scope in &scopes {
            pubs.push(Publication {
                topic: summary_topic(*scope, None),
                message_id: next_id(),
                message: message(all.clone(), all_ns.clone(), withdrawn.clone()),
            });
        }
        for p in &pubs {
            self.record(p.clone(), now);
        }
        pubs
    }

    /// Store-and-forward (§3.7): keep at most `max_messages`, none older
    /// than `store_forward_seconds`.
    fn record(&mut self, publication: Publication, now: f64) {
        if !self.cfg.store_forward_enabled() {
            return;
        }
        self.backlog.push_back(Stored {
            publication,
            stored_at: now,
        });
        while self.backlog.len() > self.cfg.store_forward_max_messages {
            self.backlog.pop_front();
        }
        self.prune_backlog(now);
    }

    fn prune_backlog(&mut self, now: f64) {
        let cutoff = now - self.cfg.store_forward_seconds;
        while self.backlog.front().is_some_and(|s| s.stored_at < cutoff) {
            self.backlog.pop_front();
        }
    }

    /// Messages held for replay.
    pub fn backlog_len(&self) -> usize {
        self.backlog.len()
    }

    /// The stored messages (oldest first) whose topic matches any of
    /// `patterns`, for a new subscriber that asked for the backlog, at most
    /// `backlog_seconds` old when the subscription set it (MPREG's
    /// `min(store_forward_seconds, backlog_seconds)`; nothing when that is
    /// not positive). The caller checks each against the subscriber's
    /// viewer.
    pub fn replay(
        &mut self,
        patterns: &[String],
        backlog_seconds: Option<f64>,
        now: f64,
    ) -> Vec<Stored> {
        if !self.cfg.store_forward_enabled() {
            return Vec::new();
        }
        self.prune_backlog(now);
        let max_age = backlog_seconds.map_or(self.cfg.store_forward_seconds, |b| {
            b.min(self.cfg.store_forward_seconds)
        });
        if max_age <= 0.0 {
            return Vec::new();
        }
        let cutoff = now - max_age;
        self.backlog
            .iter()
            .filter(|s| {
                s.stored_at >= cutoff
                    && patterns
                        .iter()
                        .any(|p| topic_matches(p, &s.publication.topic))
            })
            .cloned()
            .collect()
    }

    /// `summary_export_lag_seconds` as MPREG defines it (§3.8): time since
    /// the last export tick, `None` before the first.
    pub fn lag_seconds(&self, now: f64) -> Option<f64> {
        self.stats.last_export_at.map(|t| (now - t).max(0.0))
    }

    /// MPREG's `SummaryExportSnapshot` (§9.1) plus `withdrawals_total`.
    pub fn snapshot(&self, now: f64) -> Value {
        let st = &self.stats;
        let per_ns: Vec<Value> = st
            .per_namespace
            .iter()
            .map(|(ns, n)| {
                let mut v = json!({
                    "namespace": ns,
                    "exports_total": n.exports_total,
                    "summaries_exported": n.summaries_exported,
                    "last_export_count": n.last_export_count,
                });
                if let Some(t) = n.last_export_at {
                    v["last_export_at"] = json!(t);
                }
                v
            })
            .collect();
        let mut v = json!({
            "enabled": self.cfg.enabled,
            "generated_at": now,
            "interval_seconds": self.cfg.interval_seconds,
            "export_scope": self.cfg.scope.map(Scope::as_str),
            "hold_down_seconds": self.cfg.hold_down_seconds,
            "store_forward_seconds": self.cfg.store_forward_seconds,
            "store_forward_max_messages": self.cfg.store_forward_max_messages,
            "configured_namespaces": self.cfg.namespaces,
            "exports_total": st.exports_total,
            "summaries_exported": st.summaries_exported,
            "last_export_count": st.last_export_count,
            "last_export_namespaces": st.last_export_namespaces,
            "hold_downs_total": st.hold_downs_total,
            "withdrawals_total": st.withdrawals_total,
            "store_forward_queued": self.backlog.len(),
            "per_namespace": per_ns,
        });
        if let Some(t) = st.last_export_at {
            v["last_export_at"] = json!(t);
        }
        v
    }
}

fn withdrawal_of(s: &ServiceSummary) -> Withdrawal {
    Withdrawal {
        namespace: s.namespace.clone(),
        service_id: s.service_id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cfg(hold: f64) -> ExportConfig {
        ExportConfig {
            enabled: true,
            interval_seconds: 0.2,
            scope: Some(Scope::Global),
            include_unscoped: true,
            hold_down_seconds: hold,
            store_forward_seconds: 30.0,
            store_forward_max_messages: 10,
            namespaces: vec![],
            source_node: "ws://eu:1".into(),
            source_cluster: "eu".into(),
        }
    }

    fn s(service: &str, count: u64) -> ServiceSummary {
        ServiceSummary {
            namespace: crate::catalog::namespace::name_namespace(service).to_string(),
            service_id: service.into(),
            regions: vec![],
            endpoint_count: count,
            health_band: "healthy".into(),
            latency_band_ms: None,
            ttl_seconds: 0.0,
            generated_at: 0.0,
            scope: Some(Scope::Global),
            policy_version: None,
            source_cluster: Some("eu".into()),
        }
    }

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("m{n}")
        }
    }

    fn services(out: &BTreeMap<String, Vec<ServiceSummary>>) -> Vec<String> {
        out.values()
            .flatten()
            .map(|s| s.service_id.clone())
            .collect()
    }

    /// §3.4's asserted timeline (interval 0.2 s, hold-down 1.0 s): a new
    /// service in a known namespace is held until one hold-down after the
    /// last accepted change.
    #[test]
    fn hold_down_delays_changes() {
        let mut e = Exporter::new(cfg(1.0));
        let quote = s("svc.market.quote", 1);
        let indicator = s("svc.market.indicator", 1);
        let out = e.prepare(vec![quote.clone()], 0.0, 30.0);
        assert_eq!(services(&out), vec!["svc.market.quote"]);
        for t in [0.2, 0.4, 0.6, 0.8] {
            let out = e.prepare(vec![quote.clone(), indicator.clone()], t, 30.0);
            assert_eq!(services(&out), vec!["svc.market.quote"], "t={t}");
            assert!(out.values().flatten().all(|s| s.generated_at == t));
        }
        assert_eq!(e.stats().hold_downs_total, 4);
        let out = e.prepare(vec![quote, indicator], 1.0, 30.0);
        assert_eq!(
            services(&out),
            vec!["svc.market.indicator", "svc.market.quote"]
        );
    }

    #[test]
    fn withdrawal_is_explicit_repeated_and_state_is_collected() {
        let mut e = Exporter::new(cfg(0.0));
        let mut id = ids();
        e.export(vec![s("svc.a.x", 1), s("svc.b.y", 1)], 0.0, 30.0, &mut id);
        let pubs = e.export(vec![s("svc.a.x", 1)], 1.0, 30.0, &mut id);
        let base = pubs
            .iter()
            .find(|p| p.topic == "mpreg.discovery.summary.global")
            .unwrap();
        assert_eq!(base.message.withdrawn.len(), 1);
        assert_eq!(base.message.withdrawn[0].service_id, "svc.b.y");
        // The vanished namespace still gets its own message carrying the
        // withdrawal, so namespace watchers see it too.
        let ns = pubs
            .iter()
            .find(|p| p.topic == "mpreg.discovery.summary.global.svc.b")
            .unwrap();
        assert!(ns.message.summaries.is_empty());
        assert_eq!(ns.message.withdrawn.len(), 1);
        for t in [2.0, 3.0] {
            let pubs = e.export(vec![s("svc.a.x", 1)], t, 30.0, &mut id);
            assert!(pubs.iter().any(|p| !p.message.withdrawn.is_empty()));
        }
        let pubs = e.export(vec![s("svc.a.x", 1)], 4.0, 30.0, &mut id);
        assert!(pubs.iter().all(|p| p.message.withdrawn.is_empty()));
        assert_eq!(e.stats().withdrawals_total, 1);
        assert_eq!(e.tracked_namespaces(), 1);
    }

    #[test]
    fn topics_and_stats_follow_mpreg() {
        let mut e = Exporter::new(cfg(0.0));
        let pubs = e.export(
            vec![s("svc.a.x", 2), s("svc.b.y", 1)],
            5.0,
            30.0,
            &mut ids(),
        );
        let topics: Vec<&str> = pubs.iter().map(|p| p.topic.as_str()).collect();
        assert_eq!(
            topics,
            vec![
                "mpreg.discovery.summary.global.svc.a",
                "mpreg.discovery.summary.svc.a",
                "mpreg.discovery.summary.global.svc.b",
                "mpreg.discovery.summary.svc.b",
                "mpreg.discovery.summary.global",
                "mpreg.discovery.summary",
            ]
        );
        assert!(pubs.iter().all(|p| p.message.scope == Some(Scope::Global)));
        let snap = e.snapshot(6.0);
        assert_eq!(snap["exports_total"], 1);
        assert_eq!(snap["summaries_exported"], 2);
        assert_eq!(snap["last_export_namespaces"], json!(["svc.a", "svc.b"]));
        assert_eq!(snap["store_forward_queued"], 6);
        assert_eq!(e.lag_seconds(6.0), Some(1.0));
        // An empty tick still counts (MPREG's lag is loop liveness).
        let pubs = e.export(vec![], 7.0, 30.0, &mut ids());
        assert_eq!(pubs.len(), 2 + 2 * 2); // withdrawals of both namespaces + base
        assert_eq!(e.stats().exports_total, 2);
    }

    #[test]
    fn namespace_status_counts_the_subtree_on_dot_boundaries() {
        let mut e = Exporter::new(cfg(0.0));
        assert_eq!(e.summary_for_namespace("svc"), (None, None));
        e.export(
            vec![s("svc.a.x", 2), s("svc.ab.y", 1)],
            5.0,
            30.0,
            &mut ids(),
        );
        e.export(vec![s("svc.a.x", 2)], 8.0, 30.0, &mut ids());
        assert_eq!(e.summary_for_namespace("svc.a"), (Some(2), Some(8.0)));
        assert_eq!(e.summary_for_namespace("svc.ab"), (Some(1), Some(5.0)));
        assert_eq!(e.summary_for_namespace("svc"), (Some(3), Some(8.0)));
        assert_eq!(e.summary_for_namespace("sv"), (None, None));
        assert_eq!(e.summary_for_namespace(""), (None, None));
    }

    #[test]
    fn store_forward_bounds_and_replay() {
        let mut c = cfg(0.0);
        c.store_forward_max_messages = 4;
        c.store_forward_seconds = 10.0;
        let mut e = Exporter::new(c);
        let mut id = ids();
        e.export(vec![s("svc.a.x", 1)], 0.0, 30.0, &mut id);
        e.export(vec![s("svc.a.x", 1)], 1.0, 30.0, &mut id);
        assert_eq!(e.backlog_len(), 4);
        let replay = e.replay(&["mpreg.discovery.summary".into()], None, 2.0);
        assert_eq!(replay.len(), 1);
        assert_eq!(replay[0].stored_at, 1.0);
        let all = e.replay(&["mpreg.discovery.summary.#".into()], None, 2.0);
        assert_eq!(all.len(), 4);
        // A subscription's backlog_seconds narrows the window (everything
        // held was stored at 1.0), never widens it.
        let sub = |e: &mut Exporter, b: f64| {
            e.replay(&["mpreg.discovery.summary.#".into()], Some(b), 2.5)
                .len()
        };
        assert_eq!(sub(&mut e, 1.0), 0, "stored 1.5 s ago, older than 1 s");
        assert_eq!(sub(&mut e, 2.0), 4);
        assert_eq!(
            sub(&mut e, 100.0),
            4,
            "longer than store_forward_seconds: the same"
        );
        assert_eq!(sub(&mut e, -1.0), 0);
        assert!(e.replay(&["#".into()], None, 20.0).is_empty());
        let mut off = cfg(0.0);
        off.store_forward_max_messages = 0;
        let mut e = Exporter::new(off);
        e.export(vec![s("svc.a.x", 1)], 0.0, 30.0, &mut ids());
        assert_eq!(e.backlog_len(), 0);
    }

    proptest! {
        /// Whatever the input does, a namespace's exported set changes at
        /// most once per hold-down window, and never before the window after
        /// the previous change has passed.
        #[test]
        fn at_most_one_change_per_hold_down(
            steps in proptest::collection::vec(
                (0u64..4, proptest::collection::btree_set(0u8..4, 0..4)), 1..60),
        ) {
            let hold = 1.0;
            let mut e = Exporter::new(cfg(hold));
            let mut now = 0.0;
            let mut last: Option<(Vec<String>, f64)> = None;
            for (dt, set) in steps {
                now += dt as f64 * 0.25;
                let input: Vec<ServiceSummary> =
                    set.iter().map(|i| s(&format!("svc.a.s{i}"), 1)).collect();
                let out = e.prepare(input, now, 30.0);
                let got = services(&out);
                match &last {
                    Some((prev, at)) if *prev != got => {
                        prop_assert!(now - at >= hold, "changed after {}", now - at);
                        last = Some((got, now));
                    }
                    None if !got.is_empty() => last = Some((got, now)),
                    _ => {}
                }
            }
        }

        /// Exports carry only what they were given (no invention), and the
        /// state holds no more namespaces than were ever seen.
        #[test]
        fn exports_only_given_services(
            sets in proptest::collection::vec(proptest::collection::btree_set(0u8..6, 0..6), 1..30),
        ) {
            let mut e = Exporter::new(cfg(0.0));
            let mut seen = BTreeSet::new();
            for (i, set) in sets.iter().enumerate() {
                let input: Vec<ServiceSummary> =
                    set.iter().map(|k| s(&format!("svc.n{}.s", k), 1)).collect();
                seen.extend(input.iter().map(|s| s.service_id.clone()));
                let out = e.prepare(input.clone(), i as f64, 30.0);
                let want: Vec<String> = {
                    let mut v: Vec<String> = input.iter().map(|s| s.service_id.clone()).collect();
                    v.sort();
                    v
                };
                prop_assert_eq!(services(&out), want);
                prop_assert!(e.tracked_namespaces() <= seen.len());
            }
        }
    }
}
