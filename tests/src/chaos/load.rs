//! The traffic a chaos run keeps up while faults happen: query clients
//! (direct connections rotating over the live nodes, and a
//! `mpreg_client::FailoverClient`), catalog watchers and DNS queries, each
//! on its own thread, counting what succeeded and what failed. Every loop
//! ends when the run's stop flag is set, and every request is bounded.

use std::collections::BTreeMap;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use mpreg_client::{FailoverClient, FailoverOptions};
use serde_json::{json, Map, Value};

use super::fleet::{call, NAMESPACE};
use crate::{Conn, Event};

/// Pause between two requests of one client, so the load stays light on a
/// shared machine and the run measures availability, not throughput.
const PACE: Duration = Duration::from_millis(25);
/// Bound on one DNS reply.
const DNS_TIMEOUT: Duration = Duration::from_secs(2);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Request counts of one client kind.
#[derive(Default)]
pub struct Counter {
    /// Answered requests.
    pub ok: AtomicU64,
    /// Failed requests (error answer, timeout, refused or closed).
    pub err: AtomicU64,
    /// Failures by first words of the error, for the report.
    pub kinds: Mutex<BTreeMap<String, u64>>,
}

impl Counter {
    fn record(&self, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.err.fetch_add(1, Ordering::Relaxed);
                let key: String = e.chars().take(60).collect();
                *lock(&self.kinds).entry(key).or_default() += 1;
            }
        }
    }

    /// (ok, err).
    pub fn totals(&self) -> (u64, u64) {
        (
            self.ok.load(Ordering::Relaxed),
            self.err.load(Ordering::Relaxed),
        )
    }
}

/// What one watcher saw: per service name, the changes in order (`+`, `-`).
#[derive(Default)]
pub struct WatchLog {
    /// name -> events.
    pub events: BTreeMap<String, Vec<char>>,
    /// `discovery.resync` hints received (an explicit "re-read the catalog").
    pub resyncs: u64,
    /// Whether the watch connection broke (the log is then incomplete).
    pub broken: Option<String>,
}

/// The load of a run: shared state and the client threads.
pub struct Load {
    /// Set to stop every client thread.
    pub stop: Arc<AtomicBool>,
    /// Direct URLs of the running nodes, updated by the harness.
    pub targets: Arc<Mutex<Vec<String>>>,
    /// Direct `catalog_query` clients.
    pub direct: Arc<Counter>,
    /// The failover client's calls.
    pub failover: Arc<Counter>,
    /// DNS queries (an answer of any RCODE counts as answered).
    pub dns: Arc<Counter>,
    /// DNS answers that held the queried service.
    pub dns_hits: Arc<AtomicU64>,
    /// Service names the DNS client may ask for.
    pub dns_names: Arc<Mutex<Vec<String>>>,
    /// One log per watcher, by the watched node's URL.
    pub watches: Vec<(String, Arc<Mutex<WatchLog>>)>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// No clients yet; `targets` are the running nodes' direct URLs.
    pub fn new(targets: Vec<String>) -> Load {
        Load {
            stop: Arc::new(AtomicBool::new(false)),
            targets: Arc::new(Mutex::new(targets)),
            direct: Arc::default(),
            failover: Arc::default(),
            dns: Arc::default(),
            dns_hits: Arc::default(),
            dns_names: Arc::default(),
            watches: Vec::new(),
            threads: Vec::new(),
        }
    }

    /// Replaces the running nodes' URLs.
    pub fn set_targets(&self, urls: Vec<String>) {
        *lock(&self.targets) = urls;
    }

    /// Starts `n` direct query clients. Client `k` starts on the `k`-th
    /// node and moves to the next one after any failure.
    pub fn spawn_direct(&mut self, n: usize) {
        for k in 0..n {
            let (stop, targets, counter) =
                (self.stop.clone(), self.targets.clone(), self.direct.clone());
            self.threads.push(thread::spawn(move || {
                let mut at = k;
                let mut conn: Option<Conn> = None;
                while !stop.load(Ordering::Relaxed) {
                    let urls = lock(&targets).clone();
                    if urls.is_empty() {
                        thread::sleep(PACE);
                        continue;
                    }
                    let url = &urls[at % urls.len()];
                    if conn.as_ref().is_none_or(|c| c.url() != url) {
                        conn = Conn::try_connect(url, Duration::from_secs(2)).ok();
                    }
                    let result = match conn.as_mut() {
                        None => Err(format!("connect {url} failed")),
                        Some(c) => call(
                            c,
                            "catalog_query",
                            json!({"entry_type": "services", "namespace": NAMESPACE, "limit": 200}),
                        )
                        .map(|_| ()),
                    };
                    if result.is_err() {
                        conn = None;
                        at += 1;
                    }
                    counter.record(result);
                    thread::sleep(PACE);
                }
            }));
        }
    }

    /// Starts the failover client: seeded with the running nodes, it
    /// learns the rest from `cluster_map_v2` every 2 s and alternates
    /// `catalog_query` and `cluster_map_v2` calls.
    pub fn spawn_failover(&mut self) {
        let (stop, targets, counter) = (
            self.stop.clone(),
            self.targets.clone(),
            self.failover.clone(),
        );
        self.threads.push(thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                counter.record(Err("cannot build a tokio runtime".into()));
                return;
            };
            let seeds = lock(&targets).clone();
            let opts = FailoverOptions {
                timeout: Duration::from_secs(2),
                max_attempts: 4,
                call_budget: Duration::from_secs(6),
                ..FailoverOptions::default()
            };
            let mut client = match FailoverClient::new(seeds.iter().map(String::as_str), opts) {
                Ok(c) => c,
                Err(e) => {
                    counter.record(Err(format!("failover client: {e}")));
                    return;
                }
            };
            let mut n: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                if n.is_multiple_of(80) {
                    let _ = rt.block_on(client.refresh_from_cluster_map(Map::new()));
                    client.learn(lock(&targets).iter().map(String::as_str));
                }
                let (fun, payload) = if n.is_multiple_of(2) {
                    (
                        "catalog_query",
                        json!({"entry_type": "services", "namespace": NAMESPACE, "limit": 200}),
                    )
                } else {
                    ("cluster_map_v2", json!({}))
                };
                let result = rt
                    .block_on(client.call(fun, vec![payload], Map::new()))
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                counter.record(result);
                n += 1;
                thread::sleep(PACE);
            }
        }));
    }

    /// Watches [`NAMESPACE`] on `url` (`catalog_watch`, then MPREG's
    /// `pubsub-subscribe` to the topic it names) and logs every change
    /// until the run stops. Returns once the subscription is acknowledged.
    pub fn spawn_watcher(&mut self, url: &str) -> Result<(), String> {
        let mut conn = Conn::try_connect(url, Duration::from_secs(5))?;
        let res = call(
            &mut conn,
            "catalog_watch",
            json!({"namespace": NAMESPACE, "scope": "zone"}),
        )?;
        let topic = res["topic"]
            .as_str()
            .ok_or_else(|| format!("catalog_watch gave no topic: {res}"))?
            .to_string();
        let u = crate::unique_id("sub");
        conn.try_send(tungstenite::Message::binary(
            json!({"role": "pubsub-subscribe", "u": u, "subscription": {
                "subscription_id": u, "patterns": [{"pattern": topic, "exact_match": true}],
                "subscriber": "chaos", "created_at": 0.0, "get_backlog": false,
                "backlog_seconds": 300}})
            .to_string()
            .into_bytes(),
        ))?;
        let log = Arc::new(Mutex::new(WatchLog::default()));
        let mut acked = false;
        for _ in 0..1_000 {
            match conn.recv_event(Duration::from_secs(5)) {
                Event::Json { value, .. } => {
                    if value["u"] == u.as_str() || value["operation_id"] == u.as_str() {
                        acked = value["success"] == true;
                        break;
                    }
                    take(&mut lock(&log), &value);
                }
                Event::Pong(_) | Event::NotJson(_) => {}
                Event::Closed(why) => return Err(format!("watch on {url} closed: {why}")),
                Event::TimedOut => break,
            }
        }
        if !acked {
            return Err(format!(
                "subscribing to {topic} on {url} was not acknowledged"
            ));
        }
        self.watches.push((url.to_string(), log.clone()));
        let stop = self.stop.clone();
        self.threads.push(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match conn.recv_event(Duration::from_millis(200)) {
                    Event::Json { value, .. } => take(&mut lock(&log), &value),
                    Event::Closed(why) => {
                        lock(&log).broken = Some(why);
                        return;
                    }
                    Event::Pong(_) | Event::NotJson(_) | Event::TimedOut => {}
                }
            }
        }));
        Ok(())
    }

    /// Starts a DNS client asking the gateways on `ports` (UDP) for the SRV
    /// records of services from [`Load::dns_names`].
    pub fn spawn_dns(&mut self, ports: Vec<u16>) {
        let (stop, names, counter, hits) = (
            self.stop.clone(),
            self.dns_names.clone(),
            self.dns.clone(),
            self.dns_hits.clone(),
        );
        self.threads.push(thread::spawn(move || {
            let Ok(sock) = UdpSocket::bind("127.0.0.1:0") else {
                counter.record(Err("cannot bind a UDP socket".into()));
                return;
            };
            if sock.set_read_timeout(Some(DNS_TIMEOUT)).is_err() {
                return;
            }
            let mut n: u16 = 0;
            while !stop.load(Ordering::Relaxed) {
                n = n.wrapping_add(1);
                let name = {
                    let names = lock(&names);
                    if names.is_empty() || ports.is_empty() {
                        None
                    } else {
                        Some(names[usize::from(n) % names.len()].clone())
                    }
                };
                let Some(name) = name else {
                    thread::sleep(PACE);
                    continue;
                };
                let port = ports[usize::from(n) % ports.len()];
                match dns_srv(&sock, port, &name, n) {
                    Ok(found) => {
                        if found {
                            hits.fetch_add(1, Ordering::Relaxed);
                        }
                        counter.record(Ok(()));
                    }
                    Err(e) => counter.record(Err(e)),
                }
                thread::sleep(PACE);
            }
        }));
    }

    /// Stops every client and waits for the threads (each ends within one
    /// request bound).
    pub fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Asks `port` for `_svc._tcp.<name>.svc.chaos.mpreg SRV`; `Ok(true)` when
/// the answer holds a record.
fn dns_srv(sock: &UdpSocket, port: u16, name: &str, id: u16) -> Result<bool, String> {
    let qname = format!("_svc._tcp.{name}.{NAMESPACE}.mpreg.");
    let qname = Name::from_ascii(&qname).map_err(|e| format!("bad name {qname}: {e}"))?;
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.add_query(Query::query(qname, RecordType::SRV));
    let bytes = m.to_vec().map_err(|e| e.to_string())?;
    sock.send_to(&bytes, ("127.0.0.1", port))
        .map_err(|e| format!("dns send: {e}"))?;
    let mut buf = vec![0u8; 4096];
    // Skip stale replies to earlier (timed-out) queries: bounded.
    for _ in 0..8 {
        let (len, _) = sock
            .recv_from(&mut buf)
            .map_err(|e| format!("dns reply: {e}"))?;
        let reply = Message::from_vec(&buf[..len]).map_err(|e| format!("dns parse: {e}"))?;
        if reply.metadata.id != id {
            continue;
        }
        return match reply.metadata.response_code {
            ResponseCode::NoError => Ok(!reply.answers.is_empty()),
            ResponseCode::NXDomain => Ok(false),
            other => Err(format!("dns rcode {other:?}")),
        };
    }
    Err("dns: no reply with our id".into())
}

/// Logs one watcher message (catalog deltas and resync hints).
fn take(log: &mut WatchLog, msg: &Value) {
    if msg["role"] != "pubsub-notification" {
        return;
    }
    let m = &msg["message"];
    if m["headers"]["event"] == "discovery.resync" {
        log.resyncs += 1;
        return;
    }
    let delta = &m["payload"]["delta"];
    for (list, mark) in [("services", '+'), ("service_removals", '-')] {
        for item in delta[list].as_array().into_iter().flatten() {
            let name = item["name"].as_str().unwrap_or_default().to_string();
            log.events.entry(name).or_default().push(mark);
        }
    }
}
