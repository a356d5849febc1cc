//! Discovery rate limiting (`discovery_logic.md` §6, `client_protocol.md` §1.10)
//! with the semantics its settings promise.
//!
//! A **sliding-window log** per key `(viewer id, command, namespace-or-none)`:
//! at most `discovery_rate_limit_requests_per_minute` requests are allowed in
//! any window of `discovery_rate_limit_window_seconds` (an event exactly one
//! window old has expired). Rejected requests are not counted. A limit of `0`
//! disables limiting; a window of `0` allows everything (MPREG).
//!
//! Keys are bounded by `discovery_rate_limit_max_keys` (`0` = unbounded, as in
//! MPREG). Where MPREG evicts the keys with the oldest last event, resetting
//! the budget of a key that is still active, we never drop a key that has an
//! event inside the window: when the table is full of active keys even after
//! pruning expired ones, a new key shares one **overflow** bucket (same limit)
//! until room frees up, and a key that later gets its own slot starts with the
//! overflow bucket's recent events, so no key can ever exceed its budget by
//! moving between the two. Under a flood of new keys, established clients keep
//! their budgets and new ones share a bounded one.
//!
//! Time is the monotonic [`Instant`] the runtime supplies.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use serde_json::{Map, Value};

use crate::catalog::namespace::NamespaceFilter;
use crate::config::Settings;
use crate::time::{secs, Instant};
use crate::wire::client::RpcError;

/// The limiter's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Requests allowed per key per window; `0` disables limiting.
    pub max_requests: usize,
    /// Window length; zero allows everything.
    pub window: Duration,
    /// Keys tracked individually; `0` = unbounded.
    pub max_keys: usize,
}

impl RateLimitConfig {
    /// From `discovery_rate_limit_*` (negative values read as 0).
    pub fn from_settings(settings: &Settings) -> Self {
        let count = |v: i64| usize::try_from(v.max(0)).unwrap_or(usize::MAX);
        RateLimitConfig {
            max_requests: count(settings.discovery_rate_limit_requests_per_minute),
            window: secs(settings.discovery_rate_limit_window_seconds),
            max_keys: count(settings.discovery_rate_limit_max_keys),
        }
    }

    /// Whether requests are limited at all.
    pub fn is_enabled(&self) -> bool {
        self.max_requests > 0 && !self.window.is_zero()
    }
}

/// One rate-limit key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateKey<'a> {
    /// Viewer id (see [`crate::identity::ConnIdentity::rate_limit_id`]).
    pub viewer: &'a str,
    /// Command name as limited ([`limited_command`]).
    pub command: &'a str,
    /// Request-level namespace ([`limit_namespace`]); `None` = no namespace.
    pub namespace: Option<&'a str>,
}

/// Timestamps of the allowed requests of one key, oldest first.
#[derive(Debug, Clone, Default)]
struct Log {
    events: VecDeque<Instant>,
}

impl Log {
    /// Drops events at least one window old (`window` in nanoseconds; plain
    /// integer arithmetic, no `Duration` division on the hot path).
    fn expire(&mut self, now: Instant, window: u64) {
        let now = now.as_nanos();
        while let Some(&first) = self.events.front() {
            if now.saturating_sub(first.as_nanos()) >= window {
                self.events.pop_front();
            } else {
                break;
            }
        }
    }

    /// Expires, then records `now` if there is room.
    fn admit(&mut self, now: Instant, window: u64, max: usize) -> bool {
        self.expire(now, window);
        if self.events.len() >= max {
            return false;
        }
        self.events.push_back(now);
        true
    }

    /// When this log empties if nothing more is admitted.
    fn idle_at(&self, window: u64) -> Option<Instant> {
        self.events
            .back()
            .map(|&last| Instant::from_nanos(last.as_nanos().saturating_add(window)))
    }
}

/// The discovery rate limiter.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    config: RateLimitConfig,
    /// `config.window` in nanoseconds.
    window_nanos: u64,
    /// Keys encoded by [`encode_key`]; iteration order never matters.
    keys: HashMap<String, Log>,
    /// Shared bucket for new keys while the table is full of active keys.
    overflow: Log,
    /// No tracked key can be idle before this instant (a lower bound kept by
    /// the last full prune), so a full table skips pointless prunes.
    earliest_idle: Option<Instant>,
    /// Reused key buffer: no allocation for known keys.
    scratch: String,
    overflowed: u64,
}

impl RateLimiter {
    /// A limiter with `config`.
    pub fn new(config: RateLimitConfig) -> Self {
        RateLimiter {
            config,
            window_nanos: u64::try_from(config.window.as_nanos()).unwrap_or(u64::MAX),
            keys: HashMap::new(),
            overflow: Log::default(),
            earliest_idle: None,
            scratch: String::new(),
            overflowed: 0,
        }
    }

    /// A limiter from `discovery_rate_limit_*`.
    pub fn from_settings(settings: &Settings) -> Self {
        RateLimiter::new(RateLimitConfig::from_settings(settings))
    }

    /// The configuration.
    pub fn config(&self) -> RateLimitConfig {
        self.config
    }

    /// Whether requests are limited at all.
    pub fn is_enabled(&self) -> bool {
        self.config.is_enabled()
    }

    /// Keys tracked individually (the overflow bucket not included).
    pub fn tracked_keys(&self) -> usize {
        self.keys.len()
    }

    /// Requests that went through the overflow bucket so far.
    pub fn overflowed_total(&self) -> u64 {
        self.overflowed
    }

    /// Checks one request and counts it if allowed. Denied requests are not
    /// counted.
    pub fn check(&mut self, key: RateKey<'_>, now: Instant) -> bool {
        if !self.is_enabled() {
            return true;
        }
        let RateLimitConfig {
            max_requests,
            max_keys,
            ..
        } = self.config;
        let window = self.window_nanos;
        encode_key(&mut self.scratch, key);
        if let Some(log) = self.keys.get_mut(self.scratch.as_str()) {
            return log.admit(now, window, max_requests);
        }
        if max_keys > 0 && self.keys.len() >= max_keys {
            if self.earliest_idle.is_none_or(|t| now >= t) {
                self.prune(now);
            }
            if self.keys.len() >= max_keys {
                self.overflowed = self.overflowed.saturating_add(1);
                return self.overflow.admit(now, window, max_requests);
            }
        }
        // A new key starts with the overflow bucket's recent events: it may
        // have been served from there.
        self.overflow.expire(now, window);
        let mut log = self.overflow.clone();
        let allowed = log.admit(now, window, max_requests);
        self.keys.insert(self.scratch.clone(), log);
        allowed
    }

    /// Drops expired events and keys that have none left. Call it from a
    /// periodic tick to release memory; [`RateLimiter::check`] also calls it
    /// when the table is full.
    pub fn prune(&mut self, now: Instant) {
        let window = self.window_nanos;
        let mut earliest: Option<Instant> = None;
        self.keys.retain(|_, log| {
            log.expire(now, window);
            let idle = log.idle_at(window);
            if let Some(t) = idle {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
            idle.is_some()
        });
        self.overflow.expire(now, window);
        self.earliest_idle = earliest;
        if self.keys.capacity() > 4 * self.keys.len().max(16) {
            self.keys.shrink_to_fit();
        }
    }
}

/// Writes an injective encoding of `key` into `buf` (length-prefixed fields,
/// so no viewer or namespace spelling can collide with another key).
fn encode_key(buf: &mut String, key: RateKey<'_>) {
    buf.clear();
    push_field(buf, key.command);
    push_field(buf, key.viewer);
    match key.namespace {
        Some(ns) => push_field(buf, ns),
        None => buf.push('-'),
    }
}

fn push_field(buf: &mut String, field: &str) {
    push_decimal(buf, field.len());
    buf.push(':');
    buf.push_str(field);
}

fn push_decimal(buf: &mut String, mut n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        buf.push(char::from(d));
    }
}

/// The command name a request is limited under, or `None` if it is not
/// limited (`client_protocol.md` §1.10): `dns_list`, `dns_describe`,
/// `rpc_list`, `rpc_report` and non-local `rpc_describe` count as
/// `catalog_query`, because they are catalog queries; `rpc_describe` with mode
/// `local`/`node` and `rpc_describe_local` as `rpc_describe`. `dns_gateway`
/// (ours, for DNS queries) also counts as `catalog_query`. Not limited:
/// `list_peers`, `cluster_map`, `resolver_*`, `namespace_policy_*`,
/// `discovery_access_audit`, registrations, `echo`.
pub fn limited_command(fun: &str, payload: &Map<String, Value>) -> Option<&'static str> {
    Some(match fun {
        "catalog_query" | "dns_list" | "dns_describe" | "rpc_list" | "rpc_report"
        | "dns_gateway" => "catalog_query",
        "cluster_map_v2" => "cluster_map_v2",
        "catalog_watch" => "catalog_watch",
        "summary_query" => "summary_query",
        "summary_watch" => "summary_watch",
        "namespace_status" => "namespace_status",
        "rpc_describe_local" => "rpc_describe",
        "rpc_describe" => {
            let mode = payload
                .get("mode")
                .and_then(Value::as_str)
                .map(|m| m.trim().to_ascii_lowercase());
            match mode.as_deref() {
                Some("local") | Some("node") => "rpc_describe",
                _ => "catalog_query",
            }
        }
        _ => return None,
    })
}

/// The namespace part of the key: the request's `namespace` (`namespace_filter`
/// for `cluster_map_v2`), normalised by the one namespace rule so `svc.prod`,
/// ` svc.prod ` and `svc.prod.*` share a budget; empty means none.
pub fn limit_namespace(fun: &str, payload: &Map<String, Value>) -> Option<String> {
    let field = if fun == "cluster_map_v2" {
        "namespace_filter"
    } else {
        "namespace"
    };
    let raw = payload.get(field).and_then(Value::as_str)?;
    let filter = NamespaceFilter::parse(raw);
    (!filter.is_all()).then(|| filter.as_str().to_string())
}

/// Error 429 `discovery_rate_limited` with MPREG's details text. The caller
/// records an access-audit entry with reason [`RATE_LIMITED_REASON`] first.
pub fn rejection(command: &str, viewer: &str, namespace: Option<&str>) -> RpcError {
    RpcError::rate_limited(format!(
        "Rate limit exceeded for {command} (viewer={viewer}, namespace={})",
        namespace.unwrap_or("")
    ))
}

/// The access-audit reason of a rate-limit rejection.
pub const RATE_LIMITED_REASON: &str = "rate_limited";

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn at(secs: f64) -> Instant {
        Instant::from_nanos((secs * 1e9) as u64)
    }

    fn cfg(max_requests: usize, window_secs: u64, max_keys: usize) -> RateLimitConfig {
        RateLimitConfig {
            max_requests,
            window: Duration::from_secs(window_secs),
            max_keys,
        }
    }

    fn key<'a>(viewer: &'a str, ns: Option<&'a str>) -> RateKey<'a> {
        RateKey {
            viewer,
            command: "catalog_query",
            namespace: ns,
        }
    }

    #[test]
    fn mpregs_asserted_case() {
        // test_discovery_rate_limit_blocks_excess_queries: 2 / 60 s / 10 keys.
        let mut rl = RateLimiter::new(cfg(2, 60, 10));
        let k = key("cluster:c", None);
        assert!(rl.check(k, at(0.0)));
        assert!(rl.check(k, at(0.1)));
        assert!(!rl.check(k, at(0.2)));
    }

    #[test]
    fn boundary_event_exactly_one_window_old_expires() {
        let mut rl = RateLimiter::new(cfg(1, 60, 10));
        let k = key("v", None);
        assert!(rl.check(k, at(10.0)));
        assert!(!rl.check(k, at(69.999)));
        assert!(rl.check(k, at(70.0)));
    }

    #[test]
    fn events_at_time_zero_are_not_expired_early() {
        let mut rl = RateLimiter::new(cfg(1, 60, 10));
        let k = key("v", None);
        assert!(rl.check(k, Instant::ZERO));
        assert!(!rl.check(k, at(1.0)));
    }

    #[test]
    fn rejected_requests_are_not_counted() {
        let mut rl = RateLimiter::new(cfg(2, 10, 10));
        let k = key("v", None);
        assert!(rl.check(k, at(0.0)));
        assert!(rl.check(k, at(5.0)));
        for i in 0..50 {
            assert!(!rl.check(k, at(5.0 + f64::from(i) * 0.1)));
        }
        // The first event expires at 10 s: one slot, though 50 were refused.
        assert!(rl.check(k, at(10.0)));
        assert!(!rl.check(k, at(10.5)));
        assert!(rl.check(k, at(15.0)));
    }

    #[test]
    fn keys_are_independent() {
        let mut rl = RateLimiter::new(cfg(1, 60, 10));
        assert!(rl.check(key("a", None), at(0.0)));
        assert!(rl.check(key("b", None), at(0.0)));
        assert!(rl.check(key("a", Some("svc")), at(0.0)));
        let other_cmd = RateKey {
            viewer: "a",
            command: "summary_query",
            namespace: None,
        };
        assert!(rl.check(other_cmd, at(0.0)));
        assert!(!rl.check(key("a", None), at(1.0)));
        assert_eq!(rl.tracked_keys(), 4);
    }

    #[test]
    fn key_encoding_is_injective() {
        let mut a = String::new();
        let mut b = String::new();
        encode_key(&mut a, key("x:1", Some("y")));
        encode_key(&mut b, key("x", Some("1:y")));
        assert_ne!(a, b);
        encode_key(&mut a, key("v", None));
        encode_key(&mut b, key("v", Some("-")));
        assert_ne!(a, b);
        encode_key(&mut a, key("v", Some("")));
        assert_ne!(a, b);
        let mut n = String::new();
        push_decimal(&mut n, 0);
        push_decimal(&mut n, 1234567890);
        assert_eq!(n, "01234567890");
    }

    #[test]
    fn disabled_configurations_allow_everything() {
        for c in [cfg(0, 60, 10), cfg(5, 0, 10)] {
            let mut rl = RateLimiter::new(c);
            assert!(!rl.is_enabled());
            for i in 0..100 {
                assert!(rl.check(key("v", None), at(f64::from(i) * 0.001)));
            }
            assert_eq!(rl.tracked_keys(), 0);
        }
        let mut s = Settings::default();
        assert!(!RateLimiter::from_settings(&s).is_enabled());
        s.discovery_rate_limit_requests_per_minute = 3;
        s.discovery_rate_limit_window_seconds = 1.5;
        s.discovery_rate_limit_max_keys = -1;
        let c = RateLimitConfig::from_settings(&s);
        assert_eq!(c, cfg(3, 0, 0).with_window(Duration::from_millis(1500)));
        assert!(c.is_enabled());
    }

    impl RateLimitConfig {
        fn with_window(mut self, window: Duration) -> Self {
            self.window = window;
            self
        }
    }

    #[test]
    fn full_table_prunes_idle_keys_first() {
        let mut rl = RateLimiter::new(cfg(1, 10, 2));
        assert!(rl.check(key("a", None), at(0.0)));
        assert!(rl.check(key("b", None), at(1.0)));
        // At 10.5 "a" is idle: pruned, "c" gets its own slot.
        assert!(rl.check(key("c", None), at(10.5)));
        assert_eq!(rl.tracked_keys(), 2);
        assert_eq!(rl.overflowed_total(), 0);
        assert!(!rl.check(key("b", None), at(10.9)), "b keeps its budget");
    }

    #[test]
    fn eviction_never_resets_an_active_budget() {
        let mut rl = RateLimiter::new(cfg(2, 60, 2));
        let victim = key("victim", None);
        assert!(rl.check(victim, at(0.0)));
        assert!(rl.check(victim, at(0.0)));
        assert!(!rl.check(victim, at(0.1)));
        // A flood of fresh keys (fresh namespaces) while the victim is active.
        for i in 0..500 {
            let ns = format!("ns{i}");
            let _ = rl.check(key("attacker", Some(&ns)), at(1.0 + f64::from(i) * 0.01));
        }
        assert!(rl.tracked_keys() <= 2);
        assert!(!rl.check(victim, at(30.0)), "still saturated");
        // The flood shared one overflow bucket of 2 requests.
        assert!(rl.overflowed_total() >= 498);
    }

    #[test]
    fn new_key_inherits_overflow_events() {
        let mut rl = RateLimiter::new(cfg(1, 10, 1));
        assert!(rl.check(key("a", None), at(0.0)));
        // Table full of an active key: "b" is served from the overflow bucket.
        assert!(rl.check(key("b", None), at(1.0)));
        assert!(!rl.check(key("b", None), at(2.0)));
        // "a" idles at 10 s; "b" gets its own slot at 10.5 but must not get a
        // second request inside (0.5, 10.5]: its overflow event at 1.0 counts.
        assert!(!rl.check(key("b", None), at(10.5)));
        assert!(rl.check(key("b", None), at(11.0)));
    }

    #[test]
    fn periodic_prune_releases_keys() {
        let mut rl = RateLimiter::new(cfg(5, 10, 0));
        for i in 0..100 {
            let v = format!("v{i}");
            assert!(rl.check(key(&v, None), at(0.0)));
        }
        assert_eq!(rl.tracked_keys(), 100, "max_keys 0 = unbounded");
        rl.prune(at(9.0));
        assert_eq!(rl.tracked_keys(), 100);
        rl.prune(at(10.0));
        assert_eq!(rl.tracked_keys(), 0);
    }

    #[test]
    fn which_commands_are_limited() {
        let empty = Map::new();
        for (fun, as_) in [
            ("catalog_query", "catalog_query"),
            ("dns_list", "catalog_query"),
            ("dns_describe", "catalog_query"),
            ("rpc_list", "catalog_query"),
            ("rpc_report", "catalog_query"),
            ("rpc_describe", "catalog_query"),
            ("dns_gateway", "catalog_query"),
            ("cluster_map_v2", "cluster_map_v2"),
            ("catalog_watch", "catalog_watch"),
            ("summary_query", "summary_query"),
            ("summary_watch", "summary_watch"),
            ("namespace_status", "namespace_status"),
            ("rpc_describe_local", "rpc_describe"),
        ] {
            assert_eq!(limited_command(fun, &empty), Some(as_), "{fun}");
        }
        for fun in [
            "list_peers",
            "cluster_map",
            "resolver_cache_stats",
            "resolver_resync",
            "namespace_policy_apply",
            "namespace_policy_validate",
            "namespace_policy_export",
            "namespace_policy_audit",
            "namespace_policy_rollback",
            "discovery_access_audit",
            "dns_register",
            "dns_unregister",
            "echo",
        ] {
            assert_eq!(limited_command(fun, &empty), None, "{fun}");
        }
        let local = json!({"mode": " Local "}).as_object().cloned().unwrap();
        assert_eq!(
            limited_command("rpc_describe", &local),
            Some("rpc_describe")
        );
        let node = json!({"mode": "node"}).as_object().cloned().unwrap();
        assert_eq!(limited_command("rpc_describe", &node), Some("rpc_describe"));
        let scatter = json!({"mode": "scatter"}).as_object().cloned().unwrap();
        assert_eq!(
            limited_command("rpc_describe", &scatter),
            Some("catalog_query")
        );
    }

    #[test]
    fn namespace_part_of_the_key() {
        let p = |v: Value| v.as_object().cloned().unwrap();
        assert_eq!(
            limit_namespace("catalog_query", &p(json!({"namespace": " svc.prod.* "}))).as_deref(),
            Some("svc.prod")
        );
        assert_eq!(
            limit_namespace("catalog_query", &p(json!({"namespace": ""}))),
            None
        );
        assert_eq!(limit_namespace("catalog_query", &p(json!({}))), None);
        assert_eq!(
            limit_namespace("cluster_map_v2", &p(json!({"namespace_filter": "svc"}))).as_deref(),
            Some("svc")
        );
        assert_eq!(
            limit_namespace("cluster_map_v2", &p(json!({"namespace": "svc"}))),
            None
        );
    }

    #[test]
    fn rejection_error_is_mpregs() {
        let e = rejection("catalog_query", "cluster:c", None);
        assert_eq!(e.code, 429);
        assert_eq!(e.message, "discovery_rate_limited");
        assert_eq!(
            e.details.as_deref(),
            Some("Rate limit exceeded for catalog_query (viewer=cluster:c, namespace=)")
        );
        let e = rejection("summary_watch", "tenant:t", Some("svc"));
        assert!(e.details.unwrap().ends_with("namespace=svc)"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever the traffic, key-table size and pruning: no key is ever
        /// allowed more than N requests in any window (t - W, t].
        #[test]
        fn never_more_than_n_in_any_window(
            max_requests in 1usize..4,
            window_ms in 1u64..2_000,
            max_keys in 0usize..4,
            ops in proptest::collection::vec((0usize..6, 0u64..400, any::<bool>()), 1..300),
        ) {
            let window = Duration::from_millis(window_ms);
            let mut rl = RateLimiter::new(RateLimitConfig { max_requests, window, max_keys });
            let viewers = ["a", "b", "c", "d", "e", "f"];
            let mut now = Instant::ZERO;
            let mut allowed: Vec<Vec<Instant>> = vec![Vec::new(); viewers.len()];
            for (who, step_ms, prune) in ops {
                now = now + Duration::from_millis(step_ms);
                if prune {
                    rl.prune(now);
                }
                let k = RateKey { viewer: viewers[who], command: "catalog_query", namespace: None };
                if rl.check(k, now) {
                    let log = &mut allowed[who];
                    log.push(now);
                    let in_window = log
                        .iter()
                        .filter(|&&t| now.saturating_duration_since(t) < window)
                        .count();
                    prop_assert!(in_window <= max_requests,
                        "{} allowed {} in one window (max {})", viewers[who], in_window, max_requests);
                }
                if max_keys > 0 {
                    prop_assert!(rl.tracked_keys() <= max_keys);
                }
            }
        }

        /// With room for every key, a key is refused only when it already has
        /// N requests in the window (the limiter is not stricter than needed).
        #[test]
        fn refuses_only_when_full(
            max_requests in 1usize..4,
            window_ms in 1u64..2_000,
            ops in proptest::collection::vec((0usize..3, 0u64..400), 1..200),
        ) {
            let window = Duration::from_millis(window_ms);
            let mut rl = RateLimiter::new(RateLimitConfig { max_requests, window, max_keys: 0 });
            let viewers = ["a", "b", "c"];
            let mut now = Instant::ZERO;
            let mut allowed: Vec<Vec<Instant>> = vec![Vec::new(); viewers.len()];
            for (who, step_ms) in ops {
                now = now + Duration::from_millis(step_ms);
                let k = RateKey { viewer: viewers[who], command: "x", namespace: None };
                let recent = allowed[who]
                    .iter()
                    .filter(|&&t| now.saturating_duration_since(t) < window)
                    .count();
                let ok = rl.check(k, now);
                prop_assert_eq!(ok, recent < max_requests);
                if ok {
                    allowed[who].push(now);
                }
            }
        }
    }
}
