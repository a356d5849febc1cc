//! Client failover: one logical client over several ingress URLs.
//!
//! MPREG's outage runbook ("Resolver Or Hub Outage") tells clients to
//! rotate between ingress URLs learned from `cluster_map_v2` and
//! `summary_query` when the resolver or hub they use goes down; roadmap
//! scenario 3 asks that discovery then stays available with bounded latency.
//! This module does that in two layers:
//!
//! * [`Endpoints`] is the pure rotation state: an ordered list of URLs (the
//!   seeds given by the operator, then URLs learned from the cluster), the
//!   current one, and a per-URL exponential backoff so a dead URL is not
//!   retried on every call. It takes the time as an argument and does no
//!   I/O, so the rotation rules are unit-tested without sockets or sleeps.
//! * [`FailoverClient`] drives a [`Client`] with it: a call goes to the
//!   current URL; a connect failure, a timeout or a broken connection marks
//!   that URL failed and the call is re-sent to the next one, at most
//!   [`FailoverOptions::max_attempts`] times and never past
//!   [`FailoverOptions::call_budget`]. An error *answer* (an RPC error
//!   envelope: 403, 429, 1001...) proves the node is alive and is returned
//!   as is: another node would give the same answer, and retrying a rate
//!   limit elsewhere would only spread the load it asked to shed.
//!
//! A failed-over call is sent again, so a call that timed out may have run
//! on the first node too. Discovery queries are reads and safe to repeat;
//! use a plain [`Client`] for calls that must run at most once.

use std::time::{Duration, Instant};

use serde_json::{json, Map, Value};

use crate::{Client, ClientError, Credentials};

/// Where an endpoint's URL came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Given by the caller: kept however often it fails (the operator's
    /// seeds are the last resort when everything learned is gone).
    Seed,
    /// Learned from a node's `cluster_map_v2` or `summary_query` answer:
    /// forgotten after [`BackoffPolicy::forget_after`] consecutive failures,
    /// so nodes that left the cluster do not stay in the rotation forever.
    Learned,
}

/// Retry pacing of failed URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// Wait after a URL's first failure before it is tried again.
    pub base: Duration,
    /// Upper bound of the wait (it doubles per consecutive failure).
    pub max: Duration,
    /// Consecutive failures after which a learned URL is dropped
    /// (0: never).
    pub forget_after: u32,
    /// Most URLs kept; learned URLs beyond it are ignored, so a huge or
    /// hostile cluster map cannot grow the list without bound.
    pub max_endpoints: usize,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            base: Duration::from_millis(500),
            max: Duration::from_secs(30),
            forget_after: 5,
            max_endpoints: 64,
        }
    }
}

impl BackoffPolicy {
    /// The wait after `failures` consecutive failures (≥ 1):
    /// `base · 2^(failures−1)`, capped at `max`.
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.base
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

/// One URL and its health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `ws://` or `wss://` URL.
    pub url: String,
    /// Seed or learned.
    pub origin: Origin,
    /// Consecutive failures (0 after a success).
    pub failures: u32,
    /// Not tried again before this instant (`None`: usable now).
    pub retry_at: Option<Instant>,
}

impl Endpoint {
    fn ready(&self, now: Instant) -> bool {
        self.retry_at.is_none_or(|t| t <= now)
    }
}

/// The URL to try next and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// URL to try.
    pub url: String,
    /// Earliest time it may be tried (`now` when it is not backing off).
    pub not_before: Instant,
}

/// The rotation state (module docs). Pure: no I/O, time passed in.
#[derive(Debug, Clone)]
pub struct Endpoints {
    list: Vec<Endpoint>,
    current: usize,
    policy: BackoffPolicy,
}

/// Normalises a URL for comparison, or `None` when it is not a usable
/// WebSocket URL (node ids that are not URLs, other schemes, empty host).
pub fn normalize_url(url: &str) -> Option<String> {
    let url = url.trim().trim_end_matches('/');
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))?;
    let host_ok = !rest.is_empty()
        && !rest.starts_with(':')
        && !rest.starts_with('/')
        && !rest.chars().any(char::is_whitespace);
    host_ok.then(|| url.to_string())
}

impl Endpoints {
    /// Starts from the caller's `seeds`, in order (duplicates dropped).
    /// Fails when no seed is a `ws://` or `wss://` URL.
    pub fn new<I, S>(seeds: I, policy: BackoffPolicy) -> Result<Endpoints, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut e = Endpoints {
            list: Vec::new(),
            current: 0,
            policy,
        };
        for seed in seeds {
            let seed = seed.as_ref();
            let url = normalize_url(seed).ok_or_else(|| ClientError::Url {
                url: seed.to_string(),
                reason: "not a ws:// or wss:// URL".into(),
            })?;
            e.add(url, Origin::Seed);
        }
        if e.list.is_empty() {
            return Err(ClientError::Url {
                url: String::new(),
                reason: "no URL given".into(),
            });
        }
        Ok(e)
    }

    fn add(&mut self, url: String, origin: Origin) -> bool {
        let known = self.list.iter().any(|e| e.url == url);
        // Seeds always fit: the cap only bounds what the cluster teaches us.
        let room = origin == Origin::Seed || self.list.len() < self.policy.max_endpoints;
        if known || !room {
            return false;
        }
        self.list.push(Endpoint {
            url,
            origin,
            failures: 0,
            retry_at: None,
        });
        true
    }

    /// Adds learned URLs after the known ones (unusable and known URLs are
    /// skipped). Returns how many were new. When every seed is `wss://`, a
    /// learned `ws://` URL is taken as `wss://` on the same port (a node's
    /// client port serves both): a client that chose TLS never fails over
    /// to plain text.
    pub fn learn<I, S>(&mut self, urls: I) -> usize
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let tls_only = self
            .list
            .iter()
            .filter(|e| e.origin == Origin::Seed)
            .all(|e| e.url.starts_with("wss://"));
        urls.into_iter()
            .filter_map(|u| normalize_url(u.as_ref()))
            .map(|u| match u.strip_prefix("ws://") {
                Some(rest) if tls_only => format!("wss://{rest}"),
                _ => u,
            })
            .filter(|u| self.add(u.clone(), Origin::Learned))
            .count()
    }

    /// Every endpoint, in rotation order.
    pub fn list(&self) -> &[Endpoint] {
        &self.list
    }

    /// The URLs, in rotation order.
    pub fn urls(&self) -> Vec<&str> {
        self.list.iter().map(|e| e.url.as_str()).collect()
    }

    /// The URL calls currently go to.
    pub fn current(&self) -> &str {
        // `list` is never empty: seeds are never removed and `new` needs one.
        self.list
            .get(self.current)
            .or_else(|| self.list.first())
            .map_or("", |e| e.url.as_str())
    }

    /// The URL to try next: the first one usable at `now`, starting from the
    /// current one and going round in order; when every URL is backing off,
    /// the one that becomes usable first (the caller waits or gives up).
    pub fn next_attempt(&self, now: Instant) -> Attempt {
        let n = self.list.len();
        let start = self.current.min(n.saturating_sub(1));
        let ready = (0..n)
            .map(|i| &self.list[(start + i) % n])
            .find(|e| e.ready(now));
        match ready {
            Some(e) => Attempt {
                url: e.url.clone(),
                not_before: now,
            },
            None => {
                // Earliest retry; ties go to the first in rotation order.
                let e = (0..n)
                    .map(|i| &self.list[(start + i) % n])
                    .min_by_key(|e| e.retry_at.unwrap_or(now))
                    .unwrap_or(&self.list[0]);
                Attempt {
                    url: e.url.clone(),
                    not_before: e.retry_at.unwrap_or(now).max(now),
                }
            }
        }
    }

    /// `url` answered: its backoff is cleared and it becomes current.
    pub fn record_success(&mut self, url: &str) {
        if let Some(i) = self.list.iter().position(|e| e.url == url) {
            let e = &mut self.list[i];
            e.failures = 0;
            e.retry_at = None;
            self.current = i;
        }
    }

    /// `url` failed at `now`: it backs off, a learned URL that failed too
    /// often is dropped, and when it was current the next URL becomes
    /// current.
    pub fn record_failure(&mut self, url: &str, now: Instant) {
        let Some(i) = self.list.iter().position(|e| e.url == url) else {
            return;
        };
        let e = &mut self.list[i];
        e.failures = e.failures.saturating_add(1);
        e.retry_at = Some(now + self.policy.delay(e.failures));
        let forget = e.origin == Origin::Learned
            && self.policy.forget_after > 0
            && e.failures >= self.policy.forget_after;
        if forget {
            self.list.remove(i);
            // The URL after the removed one slid into its place.
            if self.current > i {
                self.current -= 1;
            }
            if self.current >= self.list.len() {
                self.current = 0;
            }
        } else if self.current == i {
            self.current = (i + 1) % self.list.len();
        }
    }
}

/// WebSocket URLs of the nodes in a `cluster_map_v2` (or `cluster_map`)
/// answer: each node's `advertised_urls`, or its `node_id` when that is a
/// URL and it advertises none. In answer order, deduplicated.
pub fn urls_from_cluster_map(map: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let nodes = map.get("nodes").and_then(Value::as_array);
    for node in nodes.into_iter().flatten() {
        let advertised: Vec<&str> = node
            .get("advertised_urls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let candidates = if advertised.is_empty() {
            node.get("node_id")
                .and_then(Value::as_str)
                .into_iter()
                .collect()
        } else {
            advertised
        };
        for url in candidates.into_iter().filter_map(normalize_url) {
            if !out.contains(&url) {
                out.push(url);
            }
        }
    }
    out
}

/// WebSocket URLs of the `ingress` hints of a `summary_query` answer
/// (cluster id → URLs), clusters in key order, deduplicated.
pub fn urls_from_summary(summary: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let ingress = summary.get("ingress").and_then(Value::as_object);
    for urls in ingress.into_iter().flat_map(Map::values) {
        let urls = urls
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str);
        for url in urls.filter_map(normalize_url) {
            if !out.contains(&url) {
                out.push(url);
            }
        }
    }
    out
}

/// Settings of a [`FailoverClient`].
#[derive(Debug, Clone)]
pub struct FailoverOptions {
    /// Bound on connecting and on waiting for one reply from one URL.
    pub timeout: Duration,
    /// URLs tried per call, the first included (at least 1).
    pub max_attempts: u32,
    /// Bound on a whole call, failovers and backoff waits included.
    pub call_budget: Duration,
    /// Pacing of failed URLs.
    pub backoff: BackoffPolicy,
    /// Sent in every handshake.
    pub credentials: Credentials,
}

impl Default for FailoverOptions {
    fn default() -> Self {
        FailoverOptions {
            timeout: Duration::from_secs(5),
            max_attempts: 4,
            call_budget: Duration::from_secs(20),
            backoff: BackoffPolicy::default(),
            credentials: Credentials::default(),
        }
    }
}

/// A successful call: the result and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    /// The unwrapped result.
    pub value: Value,
    /// The URL that answered.
    pub url: String,
    /// URLs tried, the answering one included.
    pub attempts: u32,
}

/// True for errors that say the URL is unusable (so the call may go
/// elsewhere); false for answers and for errors of the call itself.
pub fn is_failover_error(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Connect { .. } | ClientError::Timeout { .. } | ClientError::Disconnected(_)
    )
}

/// Pages of `cluster_map_v2` followed by [`FailoverClient::refresh_from_cluster_map`].
const MAX_MAP_PAGES: usize = 16;

/// A client over several ingress URLs (module docs).
pub struct FailoverClient {
    endpoints: Endpoints,
    opts: FailoverOptions,
    conn: Option<Client>,
    served_by: Option<String>,
}

impl FailoverClient {
    /// A client over `seeds` (tried in order). Connects lazily, on the first
    /// call. Fails when no seed is a WebSocket URL.
    pub fn new<I, S>(seeds: I, opts: FailoverOptions) -> Result<FailoverClient, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Ok(FailoverClient {
            endpoints: Endpoints::new(seeds, opts.backoff.clone())?,
            opts,
            conn: None,
            served_by: None,
        })
    }

    /// The rotation state (URLs, failures, backoff).
    pub fn endpoints(&self) -> &Endpoints {
        &self.endpoints
    }

    /// The URL that answered the last call (an error answer included).
    pub fn served_by(&self) -> Option<&str> {
        self.served_by.as_deref()
    }

    /// Adds URLs learned elsewhere; returns how many were new.
    pub fn learn<I, S>(&mut self, urls: I) -> usize
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.endpoints.learn(urls)
    }

    /// [`Client::call`] with failover; returns just the result.
    pub async fn call(
        &mut self,
        fun: &str,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Result<Value, ClientError> {
        self.call_served(fun, args, kwargs).await.map(|s| s.value)
    }

    /// [`Client::call`] with failover; also says which URL answered.
    ///
    /// Errors: an RPC error answer as is; [`ClientError::Unavailable`] when
    /// no URL could be reached within the attempt and time bounds.
    pub async fn call_served(
        &mut self,
        fun: &str,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Result<Served, ClientError> {
        let started = Instant::now();
        let deadline = started + self.opts.call_budget;
        let max_attempts = self.opts.max_attempts.max(1);
        let mut tried: Vec<String> = Vec::new();
        let mut last: Option<ClientError> = None;
        for attempt in 1..=max_attempts {
            let now = Instant::now();
            let next = self.endpoints.next_attempt(now);
            if next.not_before > now {
                if next.not_before >= deadline {
                    break;
                }
                tokio::time::sleep(next.not_before - now).await;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                break;
            }
            tried.push(next.url.clone());
            let timeout = self.opts.timeout.min(remaining);
            match self.attempt(&next.url, timeout, fun, &args, &kwargs).await {
                Ok(value) => {
                    self.endpoints.record_success(&next.url);
                    self.served_by = Some(next.url.clone());
                    return Ok(Served {
                        value,
                        url: next.url,
                        attempts: attempt,
                    });
                }
                Err(e) if is_failover_error(&e) => {
                    self.conn = None;
                    self.endpoints.record_failure(&next.url, Instant::now());
                    last = Some(e);
                }
                Err(e) => {
                    // An answer: the node is alive.
                    self.endpoints.record_success(&next.url);
                    self.served_by = Some(next.url);
                    return Err(e);
                }
            }
        }
        Err(ClientError::Unavailable {
            tried,
            last: last
                .map(|e| e.to_string())
                .unwrap_or_else(|| "every URL is backing off past the call budget".to_string()),
        })
    }

    async fn attempt(
        &mut self,
        url: &str,
        timeout: Duration,
        fun: &str,
        args: &[Value],
        kwargs: &Map<String, Value>,
    ) -> Result<Value, ClientError> {
        let reuse = self.conn.as_ref().is_some_and(|c| c.url() == url);
        if !reuse {
            if let Some(old) = self.conn.take() {
                old.close().await;
            }
            self.conn = Some(Client::connect(url, timeout, &self.opts.credentials).await?);
        }
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| ClientError::Disconnected("no connection".into()))?;
        conn.set_timeout(timeout);
        conn.call(fun, args.to_vec(), kwargs.clone()).await
    }

    /// Learns the advertised URLs of every node in `cluster_map_v2`
    /// (`request` is its payload, e.g. `{"scope": "zone"}`), following
    /// `next_page_token` for a bounded number of pages. Returns how many
    /// URLs were new.
    pub async fn refresh_from_cluster_map(
        &mut self,
        request: Map<String, Value>,
    ) -> Result<usize, ClientError> {
        let mut learned = 0;
        let mut request = request;
        for _ in 0..MAX_MAP_PAGES {
            let map = self
                .call(
                    "cluster_map_v2",
                    vec![Value::Object(request.clone())],
                    Map::new(),
                )
                .await?;
            learned += self.endpoints.learn(urls_from_cluster_map(&map));
            match map.get("next_page_token") {
                Some(token) if !token.is_null() => {
                    request.insert("page_token".into(), token.clone());
                }
                _ => break,
            }
        }
        Ok(learned)
    }

    /// Learns the `ingress` URLs of a `summary_query` (`request` is its
    /// payload, e.g. `{"namespace": "svc.market", "scope": "global"}`;
    /// `include_ingress` is set). Returns how many URLs were new.
    pub async fn refresh_from_summary(
        &mut self,
        request: Map<String, Value>,
    ) -> Result<usize, ClientError> {
        let mut request = request;
        request.insert("include_ingress".into(), json!(true));
        let summary = self
            .call("summary_query", vec![Value::Object(request)], Map::new())
            .await?;
        Ok(self.endpoints.learn(urls_from_summary(&summary)))
    }

    /// Closes the open connection, if any.
    pub async fn close(mut self) {
        if let Some(c) = self.conn.take() {
            c.close().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BackoffPolicy {
        BackoffPolicy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(8),
            forget_after: 3,
            max_endpoints: 4,
        }
    }

    fn eps(urls: &[&str]) -> Endpoints {
        Endpoints::new(urls, policy()).expect("valid seeds")
    }

    const A: &str = "ws://127.0.0.1:1";
    const B: &str = "ws://127.0.0.1:2";
    const C: &str = "ws://127.0.0.1:3";

    #[test]
    fn seeds_are_validated_and_deduplicated() {
        assert!(Endpoints::new(Vec::<String>::new(), policy()).is_err());
        assert!(Endpoints::new(["http://x:1"], policy()).is_err());
        assert!(Endpoints::new(["ws://"], policy()).is_err());
        let e = eps(&[A, "ws://127.0.0.1:1/", B]);
        assert_eq!(e.urls(), [A, B]);
        assert_eq!(e.current(), A);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = policy();
        let secs: Vec<u64> = (1..=6).map(|f| p.delay(f).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 8, 8]);
        assert_eq!(p.delay(u32::MAX), p.max);
    }

    #[test]
    fn failure_rotates_to_the_next_ready_url() {
        let t0 = Instant::now();
        let mut e = eps(&[A, B, C]);
        assert_eq!(e.next_attempt(t0).url, A);
        e.record_failure(A, t0);
        assert_eq!(e.current(), B);
        assert_eq!(e.next_attempt(t0).url, B);
        e.record_failure(B, t0);
        assert_eq!(e.next_attempt(t0).url, C);
        e.record_success(C);
        assert_eq!(e.current(), C);
        // A's backoff (1 s) is over, but C answered and stays current.
        assert_eq!(e.next_attempt(t0 + Duration::from_secs(2)).url, C);
        e.record_failure(C, t0 + Duration::from_secs(2));
        assert_eq!(e.next_attempt(t0 + Duration::from_secs(2)).url, A);
    }

    #[test]
    fn a_backing_off_url_is_skipped_until_its_time() {
        let t0 = Instant::now();
        let mut e = eps(&[A, B]);
        e.record_failure(A, t0);
        e.record_success(B);
        e.record_failure(B, t0);
        // Both backing off: the earliest retry is offered, with its time.
        let next = e.next_attempt(t0);
        assert_eq!(next.url, A);
        assert_eq!(next.not_before, t0 + Duration::from_secs(1));
        // A fails again: 2 s now; B (1 s) comes first.
        e.record_failure(A, t0 + Duration::from_secs(1));
        let next = e.next_attempt(t0 + Duration::from_secs(1));
        assert_eq!(
            (next.url.as_str(), next.not_before),
            (B, t0 + Duration::from_secs(1))
        );
    }

    #[test]
    fn success_clears_the_backoff() {
        let t0 = Instant::now();
        let mut e = eps(&[A, B]);
        e.record_failure(A, t0);
        e.record_failure(A, t0);
        assert_eq!(e.list()[0].failures, 2);
        e.record_success(A);
        assert_eq!(e.list()[0].failures, 0);
        assert_eq!(e.list()[0].retry_at, None);
        assert_eq!(e.next_attempt(t0).url, A);
    }

    #[test]
    fn a_tls_only_client_learns_plain_urls_as_tls() {
        let mut e = eps(&["wss://127.0.0.1:1"]);
        assert_eq!(e.learn(["ws://h:4", "wss://h:5"]), 2);
        assert_eq!(e.urls(), ["wss://127.0.0.1:1", "wss://h:4", "wss://h:5"]);
        // With a plain seed, learned URLs stay as advertised.
        let mut mixed = eps(&[A]);
        assert_eq!(mixed.learn(["ws://h:4"]), 1);
        assert_eq!(mixed.urls(), [A, "ws://h:4"]);
    }

    #[test]
    fn learned_urls_are_appended_capped_and_forgotten() {
        let t0 = Instant::now();
        let mut e = eps(&[A]);
        assert_eq!(e.learn([B, A, "node-id-not-a-url", B, C]), 2);
        assert_eq!(e.urls(), [A, B, C]);
        // Cap 4: one more fits, then nothing.
        assert_eq!(e.learn(["ws://h:4", "ws://h:5"]), 1);
        assert_eq!(e.list().len(), 4);
        // A learned URL is dropped after 3 consecutive failures...
        for _ in 0..3 {
            e.record_failure(B, t0);
        }
        assert_eq!(e.urls(), [A, C, "ws://h:4"]);
        // ...a seed never is.
        for _ in 0..10 {
            e.record_failure(A, t0);
        }
        assert_eq!(e.urls()[0], A);
        assert_eq!(e.list()[0].origin, Origin::Seed);
        // Rotation still lands on a URL that exists.
        assert!(e.urls().contains(&e.current()));
    }

    #[test]
    fn forgetting_the_current_url_keeps_rotation_valid() {
        let t0 = Instant::now();
        let mut e = eps(&[A]);
        e.learn([B, C]);
        e.record_success(C);
        for _ in 0..3 {
            e.record_failure(C, t0);
        }
        assert_eq!(e.urls(), [A, B]);
        assert!(e.urls().contains(&e.current()));
        assert_eq!(e.next_attempt(t0).url, e.current());
    }

    #[test]
    fn rotation_is_bounded_even_when_everything_fails() {
        // Whatever sequence of failures, next_attempt always names a listed
        // URL and never waits longer than the policy's max.
        let t0 = Instant::now();
        let mut e = eps(&[A, B]);
        e.learn([C]);
        let mut now = t0;
        for step in 0..100u64 {
            let next = e.next_attempt(now);
            assert!(e.urls().contains(&next.url.as_str()));
            assert!(next.not_before <= now + policy().max);
            e.record_failure(&next.url, next.not_before);
            now = next.not_before + Duration::from_millis(step % 3);
        }
        assert_eq!(e.urls(), [A, B], "the learned URL is forgotten, seeds stay");
    }

    #[test]
    fn cluster_map_urls() {
        let map = json!({"cluster_id": "c", "generated_at": 1.0, "nodes": [
            {"node_id": A, "advertised_urls": [A, "wss://public.example:8443"]},
            {"node_id": B, "advertised_urls": []},
            {"node_id": "not-a-url"},
            {"node_id": C, "advertised_urls": [A, 7, null]},
        ]});
        assert_eq!(
            urls_from_cluster_map(&map),
            [A, "wss://public.example:8443", B]
        );
        assert!(urls_from_cluster_map(&json!({"nodes": "x"})).is_empty());
        assert!(urls_from_cluster_map(&json!(null)).is_empty());
    }

    #[test]
    fn summary_ingress_urls() {
        let s = json!({"items": [], "ingress": {
            "cluster-a": [A, B], "cluster-b": [B, C, 3], "cluster-c": "ws://bad"
        }});
        assert_eq!(urls_from_summary(&s), [A, B, C]);
        assert!(urls_from_summary(&json!({"items": []})).is_empty());
    }

    #[test]
    fn answers_do_not_fail_over() {
        let rpc = ClientError::Rpc {
            code: 429,
            message: "discovery_rate_limited".into(),
            details: None,
        };
        assert!(!is_failover_error(&rpc));
        assert!(!is_failover_error(&ClientError::Protocol(
            "bad JSON".into()
        )));
        assert!(is_failover_error(&ClientError::Disconnected(
            "closed".into()
        )));
        assert!(is_failover_error(&ClientError::Timeout {
            url: A.into(),
            timeout: Duration::from_secs(1)
        }));
        assert!(is_failover_error(&ClientError::Connect {
            url: A.into(),
            reason: "refused".into()
        }));
    }
}
