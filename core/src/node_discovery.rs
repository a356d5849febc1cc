//! The node's summary and resolver plane: the glue between [`Node`] and the
//! pure state machines of [`crate::summary`] and [`crate::resolver`].
//!
//! - **Export** (`discovery_summary_export_enabled`): every export interval
//!   the node summarises its cluster's exportable endpoints, applies policy
//!   (`allows_summary_export`) and hold-down, delivers the messages to local
//!   subscribers (policy-checked per subscriber), feeds its own summary cache
//!   and floods the export over the fabric as one `FabricMsg::Summary`.
//! - **Flooding**: every node relays an export it has not seen (dedup by
//!   source node, instance and sequence) to its other fabric peers once,
//!   delivers it to its own subscribers and, on summary resolvers, caches it.
//! - **Resolver mode**: the mirror is fed from every catalog change the node
//!   publishes, seeded at start, pruned and resynced on timers;
//!   `catalog_query` / `cluster_map_v2` answer from it through the query
//!   cache, stale answers being refreshed once per key after the request.
//!
//! This module is a child of `node`, so it reaches the node's private state
//! without widening its interface.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::{ConnState, Node};
use crate::catalog::entry::{Entry, EntryKey, EntryKind, FunctionEndpoint};
use crate::catalog::namespace::NamespaceFilter;
use crate::catalog::store::Catalog;
use crate::config::Settings;
use crate::identity::Viewer;
use crate::io::{ConnId, Event, Frame};
use crate::node::Identity;
use crate::policy::Access;
use crate::resolver::mirror::{Applied, Change};
use crate::resolver::query_cache::{Answer, CacheKey, CacheKind, Depends, Lookup};
use crate::resolver::{Resolver, ResolverConfig};
use crate::summary::build::{self, Stamp};
use crate::summary::cache::{CacheConfig, SummaryCache};
use crate::summary::exporter::{ExportConfig, Exporter, Publication};
use crate::summary::flood::{FloodDedup, FloodTopic, SummaryFlood};
use crate::summary::model::SummaryMessage;
use crate::summary::rpc::{self as srpc, SummaryCtx};
use crate::summary::signing::SummarySigner;
use crate::time::{secs, Instant, Now};
use crate::wire::client::{self, PubSubMessage, RpcCommand, RpcError};
use crate::wire::fabric::FabricMsg;

/// The plane's state inside the node.
#[derive(Debug)]
pub(super) struct Plane {
    exporter: Exporter,
    /// Next export; `None` when export is off or was a one-shot.
    next_export: Option<Instant>,
    cache: SummaryCache,
    next_cache_prune: Option<Instant>,
    resolver: Resolver,
    next_resolver_prune: Option<Instant>,
    next_resync: Option<Instant>,
    /// The node's catalog change counter (the mirror's sequence).
    change_seq: u64,
    /// This instance's export floods so far.
    flood_seq: u64,
    dedup: FloodDedup,
    /// Cached answers to recompute after the request that found them stale
    /// or due (the key holds the request and its viewer).
    refresh_jobs: BTreeSet<CacheKey>,
    /// Signs our exports and checks others' (`discovery_summary_signing_secret`).
    signer: Option<SummarySigner>,
}

fn after(now: Instant, seconds: f64) -> Instant {
    now + secs(seconds).max(Duration::from_millis(10))
}

impl Plane {
    /// What `namespace_status` reports of the exports under `ns`.
    pub(super) fn export_stats(&self, ns: &str) -> crate::policy::rpc::ExportStats {
        let (summaries_exported, last_export_at) = self.exporter.summary_for_namespace(ns);
        crate::policy::rpc::ExportStats {
            summaries_exported,
            last_export_at,
        }
    }

    pub(super) fn new(settings: &Settings, me: &Identity, now: Now, hash_seed: u64) -> Plane {
        let export = ExportConfig::from_settings(settings, &me.node_id);
        let cache = CacheConfig::from_settings(settings);
        let resolver = ResolverConfig::from_settings(settings);
        let prune = |on: bool, s: f64| (on && s > 0.0).then(|| after(now.mono, s.max(1.0)));
        Plane {
            next_export: export.enabled.then_some(now.mono),
            exporter: Exporter::new(export),
            next_cache_prune: prune(cache.enabled, cache.prune_interval_seconds),
            cache: SummaryCache::new(cache),
            // The first prune runs at start, as MPREG's loop does.
            next_resolver_prune: resolver
                .prune_interval_seconds
                .filter(|_| resolver.enabled)
                .map(|_| now.mono),
            // MPREG's periodic resync seeds at once, then every interval.
            next_resync: resolver
                .resync_interval_seconds
                .filter(|_| resolver.enabled)
                .map(|_| now.mono),
            resolver: Resolver::new(resolver, hash_seed),
            change_seq: 0,
            flood_seq: 0,
            dedup: FloodDedup::default(),
            refresh_jobs: BTreeSet::new(),
            signer: settings
                .discovery_summary_signing_secret
                .as_ref()
                .map(|s| SummarySigner::new(s.expose())),
        }
    }

    /// The earliest timer of the plane.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        [
            self.next_export,
            self.next_cache_prune,
            self.next_resolver_prune,
            self.next_resync,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

impl Node {
    /// The catalog `catalog_query`, `cluster_map_v2`, summaries and ingress
    /// hints read: the resolver mirror in resolver mode.
    pub(super) fn query_catalog(&self) -> &Catalog {
        if self.plane.resolver.cfg.enabled {
            self.plane.resolver.mirror.catalog()
        } else {
            &self.catalog
        }
    }

    /// Start-up: seed the resolver (`discovery_resolver_seed_on_start`).
    pub(super) fn discovery_start(&mut self, now: Now) {
        let r = &self.plane.resolver.cfg;
        if r.enabled && r.seed_on_start {
            self.resync_resolver(now, false);
        }
    }

    /// Re-seeds the mirror from the catalog; every cached answer turns stale.
    fn resync_resolver(&mut self, now: Now, gap: bool) {
        let seq = self.plane.change_seq;
        self.plane
            .resolver
            .mirror
            .seed(&self.catalog, seq, now.wall, gap);
        self.plane.resolver.cache.bump_generation();
    }

    /// Feeds one published catalog change to the resolver mirror.
    pub(super) fn feed_resolver(&mut self, upserted: &[EntryKey], removed: &[Entry], now: Now) {
        if !self.plane.resolver.cfg.enabled || (upserted.is_empty() && removed.is_empty()) {
            return;
        }
        self.plane.change_seq += 1;
        let id = self.rng.ulid(now.wall);
        let ups: Vec<(&str, &Entry)> = upserted
            .iter()
            .filter_map(|k| Some((self.catalog.origin_of(k)?, self.catalog.get(k)?)))
            .collect();
        let cluster = ups
            .first()
            .map(|(_, e)| e.cluster_id())
            .or_else(|| removed.first().map(Entry::cluster_id))
            .unwrap_or(&self.me.cluster_id)
            .to_string();
        let change = Change {
            seq: self.plane.change_seq,
            id: &id,
            cluster: &cluster,
            upserted: ups,
            removed: removed.iter().collect(),
        };
        match self.plane.resolver.mirror.apply(&change, now.wall) {
            Applied::Changed(changed) => {
                for (kind, nss) in changed {
                    let refs: Vec<&str> = nss.iter().map(String::as_str).collect();
                    self.plane.resolver.cache.invalidate(kind, &refs, now.wall);
                }
                // Keep-warm: the answers just made stale that clients are
                // reading are recomputed now, not by their next reader.
                self.run_resolver_refreshes(now);
            }
            Applied::Skipped => {}
            Applied::Gap { expected, got } => {
                self.event(Event::Info(format!(
                    "resolver mirror missed catalog changes (expected {expected}, got {got}): resynced"
                )));
                self.resync_resolver(now, true);
            }
        }
    }

    /// The plane's timers.
    pub(super) fn discovery_tick(&mut self, now: Now) {
        if self.plane.next_export.is_some_and(|t| now.mono >= t) {
            let interval = self.plane.exporter.config().interval_seconds;
            self.plane.next_export = (interval > 0.0).then(|| after(now.mono, interval));
            self.export_summaries(now);
        }
        if self.plane.next_cache_prune.is_some_and(|t| now.mono >= t) {
            self.plane.cache.prune(now.wall);
            let every = self.plane.cache.config().prune_interval_seconds.max(1.0);
            self.plane.next_cache_prune = Some(after(now.mono, every));
        }
        if self
            .plane
            .next_resolver_prune
            .is_some_and(|t| now.mono >= t)
        {
            let removed = self.plane.resolver.mirror.prune(&self.catalog, now.wall);
            for (kind, nss) in removed {
                let refs: Vec<&str> = nss.iter().map(String::as_str).collect();
                self.plane.resolver.cache.invalidate(kind, &refs, now.wall);
            }
            self.plane.resolver.cache.prune(now.wall);
            // Also renews warm answers due while no request came.
            self.run_resolver_refreshes(now);
            let every = self
                .plane
                .resolver
                .cfg
                .prune_interval_seconds
                .unwrap_or(1.0);
            self.plane.next_resolver_prune = Some(after(now.mono, every));
        }
        if self.plane.next_resync.is_some_and(|t| now.mono >= t) {
            self.resync_resolver(now, false);
            let every = self
                .plane
                .resolver
                .cfg
                .resync_interval_seconds
                .unwrap_or(1.0);
            self.plane.next_resync = Some(after(now.mono, every));
        }
    }

    /// Whether the owner of `e` is suspected or gone (this node never is).
    fn owner_suspected(&self, e: &FunctionEndpoint) -> bool {
        e.node_id != self.me.node_id
            && (self.replica.is_suspect(&e.node_id) || self.replica.origin_gone(&e.node_id))
    }

    /// One export tick (module docs).
    fn export_summaries(&mut self, now: Now) {
        let cfg = self.plane.exporter.config().clone();
        let engine = self.policy.engine();
        let filters: Vec<NamespaceFilter> = cfg
            .namespaces
            .iter()
            .map(|n| NamespaceFilter::parse(n))
            .collect();
        let catalog = self.query_catalog();
        let regions = build::node_regions(catalog);
        let own_region = self.settings.cache_region.clone();
        let me = &self.me;
        let region_of = |e: &FunctionEndpoint| {
            regions.get(&e.node_id).cloned().or_else(|| {
                (e.node_id == me.node_id && !own_region.is_empty()).then(|| own_region.clone())
            })
        };
        let healthy =
            |e: &FunctionEndpoint| build::endpoint_healthy(e, now.wall, self.owner_suspected(e));
        let mut admit = |ns: &str| {
            let listed = filters.is_empty() || filters.iter().any(|f| f.matches(ns));
            (listed
                && engine
                    .allows_summary_export(ns, &me.cluster_id, cfg.scope, now.wall)
                    .allowed)
                .then(|| srpc::policy_version(engine, ns))
        };
        let ttl = build::summary_ttl(
            self.settings.fabric_catalog_ttl_seconds,
            cfg.interval_seconds,
            cfg.scope,
        );
        let stamp = Stamp {
            now: now.wall,
            ttl_seconds: ttl,
            scope: cfg.scope,
        };
        let endpoints = build::live_functions(catalog, now.wall)
            .filter(|e| build::exportable(e, &me.cluster_id, cfg.scope));
        let summaries = build::summarize(endpoints, &stamp, &region_of, &healthy, &mut admit);
        let rng = &mut self.rng;
        let pubs = self
            .plane
            .exporter
            .export(summaries, now.wall, ttl, &mut || rng.ulid(now.wall));
        let Some(base) = pubs.last().map(|p| p.message.clone()) else {
            return;
        };
        for p in &pubs {
            self.deliver_summary(&p.topic, &p.message_id, &p.message, None, now);
        }
        self.plane.cache.apply(&base, now.wall);
        self.plane.flood_seq += 1;
        let mut flood = SummaryFlood {
            signature: None,
            source_node: self.me.node_id.clone(),
            instance_id: self.me.instance_id.clone(),
            seq: self.plane.flood_seq,
            message: base.to_json().to_string(),
            topics: pubs
                .iter()
                .map(|p: &Publication| FloodTopic {
                    topic: p.topic.clone(),
                    message_id: p.message_id.clone(),
                    namespace: (p.message.namespaces.len() == 1
                        && p.topic.ends_with(&format!(".{}", p.message.namespaces[0])))
                    .then(|| p.message.namespaces[0].clone()),
                })
                .collect(),
        };
        if let Some(signer) = &self.plane.signer {
            signer.sign(&mut flood);
        }
        let conns = self.fabric_conns();
        self.send_fabric_many(conns, &FabricMsg::Summary(flood));
    }

    /// An export flooded by another node: relay once, deliver, cache.
    pub(super) fn on_summary_flood(&mut self, from: ConnId, flood: SummaryFlood, now: Now) {
        // Checked before the sequence number is recorded: a forged flood
        // must not make the genuine one with its number look seen.
        if let Some(signer) = &self.plane.signer {
            if flood.source_node != self.me.node_id && !signer.verify(&flood) {
                self.counters.summary_signature_rejected += 1;
                let why = if flood.signature.is_some() {
                    "a wrong signature"
                } else {
                    "no signature"
                };
                self.event(Event::BadInput {
                    conn: Some(from),
                    detail: format!(
                        "summary flood {} from {} dropped: {why} (discovery_summary_signing_secret)",
                        flood.seq, flood.source_node
                    ),
                });
                return;
            }
        }
        if flood.source_node == self.me.node_id
            || !self
                .plane
                .dedup
                .first_sight(&flood.source_node, &flood.instance_id, flood.seq)
        {
            return;
        }
        let conns: Vec<ConnId> = self
            .fabric_conns()
            .into_iter()
            .filter(|c| *c != from)
            .collect();
        let parsed = serde_json::from_str::<Value>(&flood.message)
            .map_err(|e| e.to_string())
            .and_then(|v| SummaryMessage::from_json(&v));
        self.send_fabric_many(conns, &FabricMsg::Summary(flood.clone()));
        let base = match parsed {
            Ok(m) => m,
            Err(e) => {
                self.event(Event::BadInput {
                    conn: Some(from),
                    detail: format!("summary flood from {} invalid: {e}", flood.source_node),
                });
                // Counted like MPREG's `messages_invalid`.
                self.plane.cache.ingest(&Value::Null, now.wall);
                return;
            }
        };
        for t in &flood.topics {
            self.deliver_summary(&t.topic, &t.message_id, &base, t.namespace.as_deref(), now);
        }
        self.plane.cache.apply(&base, now.wall);
    }

    /// The viewer deliveries to a subscriber connection are checked for.
    fn subscriber_viewer(&self, conn: ConnId) -> Option<Viewer> {
        match (self.watches.viewer(conn), self.conns.get(&conn)) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(ConnState::Client { who, .. })) => {
                Some(self.ident.viewer(who, &self.me.cluster_id, None))
            }
            _ => None,
        }
    }

    /// `msg` (cut to `namespace` when given) as `viewer` may see it: every
    /// summary and withdrawal of a namespace the viewer may not see is
    /// removed; `None` when nothing of a non-empty message is left.
    fn visible_summary(
        &self,
        msg: &SummaryMessage,
        namespace: Option<&str>,
        viewer: &Viewer,
    ) -> Option<SummaryMessage> {
        let engine = self.policy.engine();
        let shown = |ns: &str| {
            namespace.is_none_or(|n| n == ns)
                && (!engine.enabled() || engine.allows(ns, viewer).allowed)
        };
        let mut out = msg.clone();
        out.summaries.retain(|s| shown(&s.namespace));
        out.withdrawn.retain(|w| shown(&w.namespace));
        match namespace {
            Some(ns) => out.namespaces = vec![ns.to_string()],
            None => out.namespaces.retain(|ns| shown(ns)),
        }
        let had = !msg.summaries.is_empty() || !msg.withdrawn.is_empty();
        let left = !out.summaries.is_empty() || !out.withdrawn.is_empty();
        (!had || left).then_some(out)
    }

    /// Delivers one summary message on `topic` to every matching local
    /// subscription, filtered for its subscriber's viewer.
    fn deliver_summary(
        &mut self,
        topic: &str,
        message_id: &str,
        msg: &SummaryMessage,
        namespace: Option<&str>,
        now: Now,
    ) {
        let targets = self.subs.matching(topic);
        if targets.is_empty() {
            return;
        }
        let mut frames = Vec::new();
        for (conn, sub_id) in targets {
            let Some(viewer) = self.subscriber_viewer(conn) else {
                continue;
            };
            let Some(visible) = self.visible_summary(msg, namespace, &viewer) else {
                continue;
            };
            let note = summary_note(topic, message_id, &visible, now.wall, &self.me.node_id);
            frames.push((conn, client::encode_notification(&sub_id, &note)));
        }
        for (conn, bytes) in frames {
            self.send(conn, Frame::Binary(bytes.into()));
        }
    }

    /// Store-and-forward replay (§3.7) to a new subscription that asked for
    /// the backlog: each stored message whose topic matches, filtered for the
    /// subscriber's viewer, with MPREG's `backlog_<message>_<subscription>` id.
    pub(super) fn replay_summaries(
        &mut self,
        conn: ConnId,
        sub_id: &str,
        patterns: &[String],
        backlog_seconds: Option<f64>,
        now: Now,
    ) {
        let stored = self
            .plane
            .exporter
            .replay(patterns, backlog_seconds, now.wall);
        let Some(viewer) = self.subscriber_viewer(conn) else {
            return;
        };
        let mut frames = Vec::new();
        for s in stored {
            let p = &s.publication;
            let Some(visible) = self.visible_summary(&p.message, None, &viewer) else {
                continue;
            };
            let note = summary_note(
                &p.topic,
                &p.message_id,
                &visible,
                s.stored_at,
                &self.me.node_id,
            );
            let mut v: Value = serde_json::from_slice(&client::encode_notification(sub_id, &note))
                .unwrap_or(Value::Null);
            v["u"] = json!(format!("backlog_{}_{}", p.message_id, sub_id));
            frames.push(serde_json::to_vec(&v).unwrap_or_default());
        }
        for bytes in frames {
            self.send(conn, Frame::Binary(bytes.into()));
        }
    }

    /// `DiscoveryLagStatus` (§9.1) plus the freshness lag: per source
    /// cluster, the age of the newest summary this node's summary cache
    /// holds (`freshness_lag_seconds`), and its maximum
    /// (`summary_freshness_lag_seconds`).
    pub fn discovery_lag_snapshot(&self, now: Now) -> Value {
        let wall = now.wall;
        let r = &self.plane.resolver;
        let e = &self.plane.exporter;
        let mut v = json!({
            "generated_at": wall,
            "resolver_enabled": r.cfg.enabled,
            "summary_export_enabled": e.config().enabled,
            "summary_resolver_enabled": self.plane.cache.config().enabled,
        });
        let mut opt = |k: &str, x: Option<f64>| {
            if let Some(x) = x {
                v[k] = json!(x);
            }
        };
        if r.cfg.enabled {
            let st = r.mirror.stats();
            opt("last_delta_at", st.last_delta_at);
            opt("delta_lag_seconds", r.delta_lag_seconds(wall));
            opt("last_seed_at", st.last_seed_at);
        }
        opt("last_summary_export_at", e.stats().last_export_at);
        opt("summary_export_lag_seconds", e.lag_seconds(wall));
        if self.plane.cache.config().enabled {
            let fresh = self.plane.cache.freshness(wall);
            let max = fresh
                .values()
                .copied()
                .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
            opt("summary_freshness_lag_seconds", max);
            v["freshness_lag_seconds"] = json!(fresh);
        }
        v
    }

    /// `SummaryExportSnapshot` for `/discovery/summary`.
    pub fn discovery_summary_snapshot(&self, now: Now) -> Value {
        self.plane.exporter.snapshot(now.wall)
    }

    /// `{resolver_cache, summary_cache}` for `/discovery/cache`.
    pub fn discovery_cache_snapshot(&self, now: Now) -> Value {
        json!({
            "resolver_cache": self.plane.resolver.cache_stats(now.wall),
            "summary_cache": self.plane.cache.snapshot(now.wall),
        })
    }

    /// The read-only answers of [`crate::summary::NODE_RPCS`];
    /// `resolver_resync` is applied by [`Node::discovery_rpc_mut`].
    pub(super) fn discovery_rpc(
        &self,
        fun: &str,
        payload: &Map<String, Value>,
        viewer: &Viewer,
        deny_all: bool,
        now: Now,
    ) -> Result<Value, RpcError> {
        match fun {
            "summary_query" => {
                let mut access = Access::new(self.policy.engine(), viewer, &self.me.cluster_id);
                if deny_all {
                    access = access.denying_all();
                }
                let healthy = |e: &FunctionEndpoint| {
                    build::endpoint_healthy(e, now.wall, self.owner_suspected(e))
                };
                let ctx = SummaryCtx {
                    settings: &self.settings,
                    me: &self.me,
                    catalog: self.query_catalog(),
                    peers: &self.peers,
                    access: &access,
                    cache: self
                        .plane
                        .cache
                        .config()
                        .enabled
                        .then_some(&self.plane.cache),
                    healthy: &healthy,
                    now,
                };
                if deny_all {
                    return Ok(json!({"generated_at": now.wall, "items": []}));
                }
                srpc::summary_query(&ctx, payload)
            }
            "summary_watch" => srpc::summary_watch(&self.me, payload, now),
            "resolver_cache_stats" => Ok(self.plane.resolver.cache_stats(now.wall)),
            "discovery_lag" => Ok(self.discovery_lag_snapshot(now)),
            "resolver_resync" => Ok(self.plane.resolver.resync_reply(now.wall, false)),
            other => Err(RpcError::not_found(other)),
        }
    }

    /// [`Node::discovery_rpc`] for a client request: `resolver_resync`
    /// re-seeds the mirror; `summary_watch` on a connection records the
    /// viewer its deliveries are checked for.
    pub(super) fn discovery_rpc_mut(
        &mut self,
        conn: Option<ConnId>,
        fun: &str,
        payload: &Map<String, Value>,
        viewer: &Viewer,
        deny_all: bool,
        now: Now,
    ) -> Result<Value, RpcError> {
        match fun {
            "resolver_resync" => {
                let enabled = self.plane.resolver.cfg.enabled;
                if enabled {
                    self.resync_resolver(now, false);
                }
                Ok(self.plane.resolver.resync_reply(now.wall, enabled))
            }
            "summary_watch" => {
                let v = self.discovery_rpc(fun, payload, viewer, deny_all, now)?;
                if let Some(c) = conn {
                    self.watches.set_viewer(c, viewer.clone());
                }
                Ok(v)
            }
            _ => self.discovery_rpc(fun, payload, viewer, deny_all, now),
        }
    }

    /// Resolver mode: `catalog_query` / `cluster_map_v2` through the query
    /// cache (`None` for other commands or without resolver mode).
    pub(super) fn resolver_answer(
        &mut self,
        cmd: &RpcCommand,
        payload: &Map<String, Value>,
        viewer: &Viewer,
        deny_all: bool,
        now: Now,
    ) -> Option<Result<Answer, RpcError>> {
        let kind = match cmd.fun.as_str() {
            "catalog_query" => CacheKind::Catalog,
            "cluster_map_v2" => CacheKind::ClusterMap,
            _ => return None,
        };
        let r = &self.plane.resolver.cfg;
        if !r.enabled || !r.cache.enabled {
            return None;
        }
        // The owned key is built only when an answer is to be stored.
        let lookup = self
            .plane
            .resolver
            .cache
            .lookup_request(kind, payload, viewer, deny_all, now.wall);
        let (value, refresh) = match lookup {
            Lookup::Hit(v) => (v, false),
            Lookup::Ahead(v) => (v, true),
            Lookup::Stale { value, refresh } => (value, refresh),
            Lookup::Miss => {
                let key = CacheKey::for_request(kind, payload, viewer, deny_all);
                return Some(
                    self.compute_and_store(kind, key, cmd, payload, deny_all, viewer, now),
                );
            }
        };
        if refresh {
            self.plane
                .refresh_jobs
                .insert(CacheKey::for_request(kind, payload, viewer, deny_all));
        }
        Some(Ok(value))
    }

    #[allow(clippy::too_many_arguments)]
    fn compute_and_store(
        &mut self,
        kind: CacheKind,
        key: CacheKey,
        cmd: &RpcCommand,
        payload: &Map<String, Value>,
        deny_all: bool,
        viewer: &Viewer,
        now: Now,
    ) -> Result<Answer, RpcError> {
        let (value, hidden) = self.answer(cmd, viewer, deny_all, now, &mut Vec::new())?;
        self.counters.policy_items_hidden += hidden;
        let list = match kind {
            CacheKind::Catalog => "items",
            CacheKind::ClusterMap => "nodes",
        };
        let negative = value
            .get(list)
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        let depends = match kind {
            CacheKind::Catalog => Depends {
                kinds: payload
                    .get("entry_type")
                    .and_then(Value::as_str)
                    .and_then(|t| EntryKind::parse(t).ok())
                    .map(|k| vec![k]),
                namespace: NamespaceFilter::parse(
                    payload
                        .get("namespace")
                        .and_then(Value::as_str)
                        .unwrap_or(""),
                ),
            },
            CacheKind::ClusterMap => Depends {
                kinds: None,
                namespace: NamespaceFilter::all(),
            },
        };
        let value = Answer::new(value);
        self.plane
            .resolver
            .cache
            .store(key, value.clone(), negative, depends, now.wall);
        Ok(value)
    }

    /// Recomputes the stale answers scheduled by the last request (one
    /// refresh per key, however many requests found it stale) and those
    /// keep-warm scheduled (read recently, and changed or due).
    pub(super) fn run_resolver_refreshes(&mut self, now: Now) {
        let mut jobs = std::mem::take(&mut self.plane.refresh_jobs);
        jobs.extend(self.plane.resolver.cache.take_scheduled(now.wall));
        for key in jobs {
            let fun = key.kind().rpc();
            let payload = key.payload().clone();
            let viewer = key.viewer();
            let cmd = RpcCommand {
                name: fun.to_string(),
                fun: fun.to_string(),
                args: vec![Value::Object(payload.clone())],
                kwargs: Map::new(),
                target_cluster: None,
            };
            let (kind, deny_all) = (key.kind(), key.deny_all());
            if let Err(e) =
                self.compute_and_store(kind, key, &cmd, &payload, deny_all, &viewer, now)
            {
                self.event(Event::Info(format!(
                    "resolver cache refresh of {fun} failed: {}",
                    e.details.unwrap_or_default()
                )));
            }
        }
    }
}

/// MPREG's summary notification message.
fn summary_note(
    topic: &str,
    message_id: &str,
    msg: &SummaryMessage,
    timestamp: f64,
    publisher: &str,
) -> PubSubMessage {
    let mut headers = Map::new();
    headers.insert("event".into(), json!("discovery.summary_export"));
    headers.insert("cluster_id".into(), json!(msg.source_cluster));
    PubSubMessage {
        topic: topic.to_string(),
        payload: msg.to_json(),
        timestamp,
        message_id: message_id.to_string(),
        publisher: publisher.to_string(),
        headers,
    }
}

#[cfg(test)]
#[path = "node_discovery_tests.rs"]
mod tests;
