//! The nodes of a chaos run: a hub (every other node's seed), a resolver
//! (`discovery_resolver_mode`), and members, each behind its own proxy
//! ([`super::proxy`]), plus the registrations the harness made on each and
//! the invariant checks.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::proxy::{Net, Proxy};
use crate::{Conn, Node};

/// The namespace of every registration the harness makes.
pub const NAMESPACE: &str = "svc.chaos";
/// Bound on one query of an invariant check.
const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// What a slot's node does in the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The seed every other node starts with.
    Hub,
    /// A node in `discovery_resolver_mode` (answers from its resolver cache).
    Resolver,
    /// A plain member.
    Member,
}

/// One position in the cluster: its proxy, its current process (if any)
/// and the registrations made on that process.
pub struct Slot {
    /// `hub`, `resolver`, `m1`, ...
    pub name: String,
    /// The slot's role.
    pub role: Role,
    /// The proxy its node advertises.
    pub proxy: Proxy,
    /// The running node, `None` while down.
    pub node: Option<Node>,
    /// Service names registered on the current process (live ones).
    pub registered: BTreeSet<String>,
}

/// Settings shared by every node of a run.
pub struct FleetConfig {
    /// `tokio` or `mio`.
    pub runtime: String,
    /// Extra TOML for every node (e.g. the DNS gateway in churn mode).
    pub extra_toml: String,
}

/// Every slot plus the loopback network between them.
pub struct Fleet {
    /// The slots, hub first, then the resolver, then members.
    pub slots: Vec<Slot>,
    /// The proxies' network.
    pub net: Net,
    config: FleetConfig,
    /// Node ids of processes that were killed or stopped: must vanish.
    pub departed: BTreeSet<String>,
}

/// The TOML every node starts with: fast gossip and a short catalog TTL so
/// a killed node's entries expire within a bounded reconvergence window,
/// and a cluster key, so every reconnection after a fault also goes through
/// fabric authentication, as in a production cluster.
fn node_toml(role: Role, extra: &str) -> String {
    let mut t = String::from(
        "cluster_id = \"chaos\"\ngossip_interval = 0.25\nfabric_catalog_ttl_seconds = 6.0\n\
         goodbye_reconnect_grace_seconds = 2.0\nfabric_dial_retry_seconds = 0.25\n\
         advertise_builtin_rpcs = false\nfabric_auth_key = \"chaos-harness-cluster-key\"\n",
    );
    if role == Role::Resolver {
        t.push_str(
            "discovery_resolver_mode = true\ndiscovery_resolver_prune_interval_seconds = 1.0\n",
        );
    }
    t.push_str(extra);
    t
}

impl Fleet {
    /// Starts a hub, a resolver and `members` members, each behind a proxy.
    pub fn start(members: usize, config: FleetConfig) -> Result<Fleet, String> {
        let net = Net::default();
        let mut slots = Vec::new();
        let mut roles = vec![("hub".to_string(), Role::Hub)];
        roles.push(("resolver".to_string(), Role::Resolver));
        roles.extend((1..=members).map(|i| (format!("m{i}"), Role::Member)));
        for (name, role) in roles {
            let proxy = net
                .proxy(&name, 0)
                .map_err(|e| format!("cannot start the proxy of {name}: {e}"))?;
            slots.push(Slot {
                name,
                role,
                proxy,
                node: None,
                registered: BTreeSet::new(),
            });
        }
        let mut fleet = Fleet {
            slots,
            net,
            config,
            departed: BTreeSet::new(),
        };
        for i in 0..fleet.slots.len() {
            fleet.boot(i);
        }
        Ok(fleet)
    }

    /// Starts slot `i`'s node (a new process, so a new node id) behind its
    /// proxy. Panics (via [`Node::start_with_config`]) if it cannot start.
    pub fn boot(&mut self, i: usize) {
        let hub_url = self.slots[0].proxy.url();
        let slot = &mut self.slots[i];
        let mut args = vec![
            "--name".to_string(),
            format!("chaos-{}", slot.name),
            "--advertised-url".to_string(),
            slot.proxy.url(),
            "--runtime".to_string(),
            self.config.runtime.clone(),
        ];
        if slot.role != Role::Hub {
            args.extend(["--peer".to_string(), hub_url]);
        }
        let node = Node::start_with_config(&node_toml(slot.role, &self.config.extra_toml), &args);
        slot.proxy.retarget(node.port());
        self.net.set_pid(node.pid(), &slot.name);
        slot.registered.clear();
        slot.node = Some(node);
    }

    /// Stops slot `i`'s node: SIGKILL when `kill`, else SIGTERM (GOODBYE).
    pub fn down(&mut self, i: usize, kill: bool) {
        let slot = &mut self.slots[i];
        slot.proxy.retarget(0);
        if let Some(mut node) = slot.node.take() {
            if kill {
                node.kill();
            } else {
                node.stop();
            }
            self.departed.insert(node.url().to_string());
        }
        self.net.drop_server(&slot.name);
        slot.registered.clear();
    }

    /// Direct URLs of the running nodes (for the query clients).
    pub fn live_urls(&self) -> Vec<String> {
        self.slots
            .iter()
            .filter_map(|s| s.node.as_ref().map(|n| n.url().to_string()))
            .collect()
    }

    /// Node ids of the running nodes.
    fn live_ids(&self) -> BTreeSet<String> {
        self.live_urls().into_iter().collect()
    }

    /// Process ids of the running nodes, by slot name.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.slots
            .iter()
            .filter_map(|s| s.node.as_ref().map(|n| (s.name.clone(), n.pid())))
            .collect()
    }

    /// Registers service `name` on slot `i`'s node (`dns_register`: it lives
    /// as long as the process). `Err` if the node did not acknowledge it.
    pub fn register(&mut self, i: usize, name: &str) -> Result<(), String> {
        let slot = &mut self.slots[i];
        let node = slot.node.as_ref().ok_or("slot is down")?;
        let mut conn = Conn::try_connect(node.url(), CHECK_TIMEOUT)?;
        call(&mut conn, "dns_register", service(name))?;
        slot.registered.insert(name.to_string());
        Ok(())
    }

    /// Withdraws service `name` from slot `i`'s node.
    pub fn withdraw(&mut self, i: usize, name: &str) -> Result<(), String> {
        let slot = &mut self.slots[i];
        let node = slot.node.as_ref().ok_or("slot is down")?;
        let mut conn = Conn::try_connect(node.url(), CHECK_TIMEOUT)?;
        let r = call(&mut conn, "dns_unregister", service(name))?;
        if r["removed"] != true {
            return Err(format!("dns_unregister {name}: {r}"));
        }
        slot.registered.remove(name);
        Ok(())
    }

    /// Every registration that should be visible: `(name, node id)`.
    pub fn expected(&self) -> BTreeSet<(String, String)> {
        self.slots
            .iter()
            .filter_map(|s| s.node.as_ref().map(|n| (s, n.url().to_string())))
            .flat_map(|(s, id)| s.registered.iter().map(move |r| (r.clone(), id.clone())))
            .collect()
    }

    /// The invariants, checked once on every running node: `list_peers`
    /// lists exactly the other running nodes; the catalog's services of
    /// [`NAMESPACE`] are exactly [`Fleet::expected`] (every live
    /// registration, nothing of a departed node); no departed node is in
    /// the catalog's nodes. `Err` lists every violation found.
    pub fn check(&self) -> Result<(), String> {
        let live = self.live_ids();
        let want = self.expected();
        let mut problems = Vec::new();
        for slot in &self.slots {
            let Some(node) = &slot.node else { continue };
            let me = node.url().to_string();
            let mut conn = match Conn::try_connect(&me, CHECK_TIMEOUT) {
                Ok(c) => c,
                Err(e) => {
                    problems.push(format!("{}: {e}", slot.name));
                    continue;
                }
            };
            let peers = match call(&mut conn, "list_peers", Value::Null) {
                Ok(p) => p,
                Err(e) => {
                    problems.push(format!("{}: {e}", slot.name));
                    continue;
                }
            };
            let listed: BTreeSet<String> = peers
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["url"].as_str().map(str::to_string))
                .collect();
            let others: BTreeSet<String> = live.iter().filter(|u| **u != me).cloned().collect();
            if listed != others {
                problems.push(format!(
                    "{}: list_peers {:?}, want {:?}",
                    slot.name, listed, others
                ));
            }
            match services(&mut conn) {
                Ok(got) => {
                    let missing = want.difference(&got).count();
                    let extra: Vec<&(String, String)> = got.difference(&want).take(3).collect();
                    if missing > 0 || !extra.is_empty() {
                        problems.push(format!(
                            "{}: catalog misses {missing} live registrations, holds {} others (e.g. {extra:?})",
                            slot.name,
                            got.difference(&want).count()
                        ));
                    }
                }
                Err(e) => problems.push(format!("{}: {e}", slot.name)),
            }
            match call(
                &mut conn,
                "catalog_query",
                json!({"entry_type": "nodes", "scope": "global", "limit": 1000}),
            ) {
                Ok(res) => {
                    let ghosts: Vec<&str> = res["items"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|n| n["node_id"].as_str())
                        .filter(|id| self.departed.contains(*id))
                        .collect();
                    if !ghosts.is_empty() {
                        problems.push(format!(
                            "{}: departed nodes in catalog: {ghosts:?}",
                            slot.name
                        ));
                    }
                }
                Err(e) => problems.push(format!("{}: {e}", slot.name)),
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }

    /// Polls, for at most `bound`, until no other running node's
    /// `list_peers` lists slot `i`'s node; returns how long that took.
    pub fn wait_isolated(&self, i: usize, bound: Duration) -> Option<Duration> {
        let start = Instant::now();
        let id = self.slots[i].node.as_ref()?.url().to_string();
        let mut conns: Vec<Conn> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .filter_map(|(_, s)| s.node.as_ref())
            .filter_map(|n| Conn::try_connect(n.url(), CHECK_TIMEOUT).ok())
            .collect();
        while start.elapsed() < bound {
            let listed = conns.iter_mut().any(|c| {
                call(c, "list_peers", Value::Null).map_or(true, |p| {
                    p.as_array()
                        .into_iter()
                        .flatten()
                        .any(|peer| peer["url"] == id.as_str())
                })
            });
            if !listed {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// Polls [`Fleet::check`] until it passes or `bound` passes; returns the
    /// time it took, or the last violation.
    pub fn wait_converged(&self, bound: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        let mut last = String::new();
        while start.elapsed() < bound {
            match self.check() {
                Ok(()) => return Ok(start.elapsed()),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!("not converged within {bound:?}: {last}"))
    }
}

/// The `dns_register` / `dns_unregister` payload of service `name`.
pub fn service(name: &str) -> Value {
    json!({"name": name, "namespace": NAMESPACE, "protocol": "tcp", "port": 7000,
           "targets": ["127.0.0.1"]})
}

/// One RPC with a bounded wait; `Err` on an error answer, a timeout or a
/// closed connection.
pub fn call(conn: &mut Conn, fun: &str, payload: Value) -> Result<Value, String> {
    let args = if payload.is_null() {
        json!([])
    } else {
        json!([payload])
    };
    let u = crate::unique_id("chaos");
    let frame = crate::rpc_frame(&u, fun, args, json!({}));
    conn.try_send(tungstenite::Message::binary(frame.to_string().into_bytes()))?;
    let deadline = Instant::now() + CHECK_TIMEOUT;
    for _ in 0..10_000 {
        match conn.recv_event(deadline.saturating_duration_since(Instant::now())) {
            crate::Event::Json { value, .. } if value["u"] == u.as_str() => {
                return if value["error"].is_null() {
                    Ok(value["r"][fun].clone())
                } else {
                    Err(format!("{fun}: {}", crate::preview(&value["error"])))
                };
            }
            crate::Event::Json { .. } | crate::Event::Pong(_) | crate::Event::NotJson(_) => {}
            crate::Event::Closed(why) => return Err(format!("{fun}: closed: {why}")),
            crate::Event::TimedOut => return Err(format!("{fun}: timed out")),
        }
    }
    Err(format!("{fun}: no answer"))
}

/// `(name, node id)` of every service of [`NAMESPACE`] a node lists (all
/// pages, bounded).
pub fn services(conn: &mut Conn) -> Result<BTreeSet<(String, String)>, String> {
    let mut out = BTreeSet::new();
    let mut token: Option<String> = None;
    for _ in 0..100 {
        let mut q = json!({"entry_type": "services", "namespace": NAMESPACE, "limit": 1000});
        if let Some(t) = &token {
            q["page_token"] = json!(t);
        }
        let res = call(conn, "catalog_query", q)?;
        for item in res["items"].as_array().into_iter().flatten() {
            out.insert((
                item["name"].as_str().unwrap_or_default().to_string(),
                item["node_id"].as_str().unwrap_or_default().to_string(),
            ));
        }
        match res["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => return Ok(out),
        }
    }
    Ok(out)
}

/// Resident set size of process `pid` in KiB (`VmRSS` of
/// `/proc/<pid>/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Per-slot RSS samples: first, peak and last, in KiB.
#[derive(Default)]
pub struct RssTrack {
    /// slot -> (start, peak, end).
    pub by_slot: BTreeMap<String, (u64, u64, u64)>,
}

impl RssTrack {
    /// Samples every running node.
    pub fn sample(&mut self, fleet: &Fleet) {
        for (slot, pid) in fleet.pids() {
            if let Some(kib) = rss_kib(pid) {
                let e = self.by_slot.entry(slot).or_insert((kib, kib, kib));
                e.1 = e.1.max(kib);
                e.2 = kib;
            }
        }
    }
}
