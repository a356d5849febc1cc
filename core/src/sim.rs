//! A deterministic simulator: many [`Node`]s, one virtual clock, a seeded
//! network with latency, jitter, loss and partitions, and crash / restart.
//!
//! Everything is driven from one seed: the same seed replays the same run
//! exactly, which is what makes a failing scenario debuggable (print the
//! seed, replay it). Built for tests (`cfg(test)`) and for other crates with
//! the `sim` feature.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::time::Duration;

use crate::fabric::traffic::MsgKind;
use crate::io::{Command, ConnId, ConnKind, Frame, Input, Output};
use crate::rng::NodeRng;
use crate::time::{Instant, Now};
use crate::{Node, Settings};

/// Network behaviour.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// One-way base latency.
    pub latency: Duration,
    /// Extra random latency, uniform in `[0, jitter]`.
    pub jitter: Duration,
    /// Probability a frame is lost (the connection survives, as with a
    /// lossy relay; a real TCP connection would stall instead).
    pub loss: f64,
    /// Probability a frame is delivered twice.
    pub duplicate: f64,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            latency: Duration::from_millis(5),
            jitter: Duration::from_millis(5),
            loss: 0.0,
            duplicate: 0.0,
        }
    }
}

#[derive(Debug)]
enum Delivery {
    Input(usize, Input),
    DialResult {
        node: usize,
        url: String,
        target: Option<usize>,
    },
}

struct Slot {
    settings: Settings,
    node: Option<Node>,
    /// Bumped at each restart so a restarted node gets a new seed.
    generation: u64,
    /// Per origin: the newest instance start time this slot's node (in any
    /// of its lives) has held, to check that instances never go backwards.
    seen_instances: HashMap<String, f64>,
    /// The (replica membership, catalog origins) epochs of the last
    /// invariant check: while both stay put, the check would see the same
    /// state and is skipped. `None` until the running node is checked.
    checked: Option<(u64, u64)>,
}

/// One end of a simulated connection.
#[derive(Debug, Clone, Copy)]
struct End {
    node: usize,
    peer: ConnId,
}

/// The node index of a client end: clients are not nodes, their frames
/// land in [`Sim::client_recv`]'s inbox.
const CLIENT: usize = usize::MAX;

/// What reached one client end.
#[derive(Debug, Default)]
struct ClientInbox {
    frames: Vec<Frame>,
    closed: bool,
}

/// The simulated world.
pub struct Sim {
    seed: u64,
    rng: NodeRng,
    now: Now,
    net: NetConfig,
    slots: Vec<Slot>,
    by_url: HashMap<String, usize>,
    conns: HashMap<ConnId, End>,
    /// Connection ends that were told `Closed`: later frames are dropped.
    dead: BTreeSet<ConnId>,
    /// Latest scheduled delivery per receiving end: frames on one connection
    /// arrive in order, as over TCP.
    last_at: HashMap<ConnId, Instant>,
    next_conn: ConnId,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    pending: BTreeMap<u64, Delivery>,
    next_seq: u64,
    /// Unordered pairs of node indexes that cannot reach each other.
    partitions: BTreeSet<(usize, usize)>,
    /// Outputs the harness saw, for invariant checks: (node, output).
    pub trace: Vec<(usize, String)>,
    keep_trace: bool,
    /// First invariant violation, if any.
    violation: Option<String>,
    /// Client ends opened with [`Sim::client_connect`].
    clients: BTreeMap<ConnId, ClientInbox>,
}

impl Sim {
    /// An empty world whose every random choice derives from `seed`.
    pub fn new(seed: u64, net: NetConfig) -> Sim {
        Sim {
            seed,
            rng: NodeRng::new(seed),
            now: Now::new(Instant::ZERO, 1_700_000_000.0),
            net,
            slots: Vec::new(),
            by_url: HashMap::new(),
            conns: HashMap::new(),
            dead: BTreeSet::new(),
            last_at: HashMap::new(),
            next_conn: 1,
            queue: BinaryHeap::new(),
            pending: BTreeMap::new(),
            next_seq: 0,
            partitions: BTreeSet::new(),
            trace: Vec::new(),
            keep_trace: false,
            violation: None,
            clients: BTreeMap::new(),
        }
    }

    /// The seed this run replays from.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Records a one-line trace of every output (for debugging a seed).
    pub fn keep_trace(&mut self, on: bool) {
        self.keep_trace = on;
    }

    /// Current virtual time.
    pub fn now(&self) -> Now {
        self.now
    }

    /// Adds and starts a node; `settings.host`/`port` name it. Returns its index.
    pub fn add(&mut self, settings: Settings) -> usize {
        let idx = self.slots.len();
        let url = format!("ws://{}:{}", settings.host, settings.port);
        self.by_url.insert(url, idx);
        self.slots.push(Slot {
            settings,
            node: None,
            generation: 0,
            seen_instances: HashMap::new(),
            checked: None,
        });
        self.start(idx);
        idx
    }

    /// Settings for node `i` of a test cluster: host 127.0.0.1, port 10000+i.
    pub fn settings(i: usize) -> Settings {
        Settings {
            port: 10_000 + i as u16,
            ..Settings::default()
        }
    }

    fn start(&mut self, idx: usize) {
        let slot = &mut self.slots[idx];
        slot.generation += 1;
        let seed = self.seed ^ ((idx as u64) << 32) ^ slot.generation;
        let node = Node::new(slot.settings.clone(), self.now, seed)
            .unwrap_or_else(|e| panic!("sim settings rejected: {e}"));
        slot.node = Some(node);
        slot.checked = None;
        self.drain(idx);
    }

    /// The node at `idx`, if running.
    pub fn node(&self, idx: usize) -> Option<&Node> {
        self.slots.get(idx).and_then(|s| s.node.as_ref())
    }

    /// Mutable access to a node's settings for its next restart.
    pub fn settings_mut(&mut self, idx: usize) -> &mut Settings {
        &mut self.slots[idx].settings
    }

    /// Number of nodes (running or not).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when the world has no nodes.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Kills a node without GOODBYE (kill -9): its connections drop.
    pub fn crash(&mut self, idx: usize) {
        self.slots[idx].node = None;
        self.drop_conns_of(idx);
    }

    /// Graceful stop: the node sends GOODBYE, then its connections close.
    pub fn stop(&mut self, idx: usize) {
        self.input(
            idx,
            Input::Command(Command::Shutdown {
                reason: "graceful_shutdown".into(),
            }),
        );
    }

    /// Restarts a stopped or crashed node (a new instance on the same URL).
    pub fn restart(&mut self, idx: usize) {
        if self.slots[idx].node.is_some() {
            self.crash(idx);
        }
        self.start(idx);
    }

    /// Cuts (or heals) the link between two nodes; existing connections
    /// between them drop.
    pub fn partition(&mut self, a: usize, b: usize, cut: bool) {
        let key = (a.min(b), a.max(b));
        if cut {
            self.partitions.insert(key);
            let doomed: Vec<ConnId> = self
                .conns
                .iter()
                .filter(|(_, e)| {
                    let other = self.conns.get(&e.peer).map(|p| p.node);
                    other.is_some_and(|o| (e.node.min(o), e.node.max(o)) == key)
                })
                .map(|(c, _)| *c)
                .collect();
            for c in doomed {
                self.close_conn(c);
            }
        } else {
            self.partitions.remove(&key);
        }
    }

    fn reachable(&self, a: usize, b: usize) -> bool {
        !self.partitions.contains(&(a.min(b), a.max(b)))
    }

    /// Closes every connection of a node that stopped or crashed. Frames it
    /// sent before still arrive (they are in the kernel's buffers), then the
    /// other side sees the close.
    fn drop_conns_of(&mut self, idx: usize) {
        let mut doomed: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, e)| e.node == idx)
            .map(|(c, _)| *c)
            .collect();
        doomed.sort_unstable();
        for c in doomed {
            self.close_conn(c);
        }
    }

    fn schedule(&mut self, after: Duration, d: Delivery) {
        let at = self.now.mono + after;
        self.schedule_at(at, d);
    }

    /// Schedules a delivery to connection end `to`, never before an earlier
    /// delivery to the same end.
    fn schedule_ordered(&mut self, to: ConnId, after: Duration, d: Delivery) {
        let mut at = self.now.mono + after;
        if let Some(last) = self.last_at.get(&to) {
            at = at.max(*last);
        }
        self.last_at.insert(to, at);
        self.schedule_at(at, d);
    }

    fn schedule_at(&mut self, at: Instant, d: Delivery) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.queue.push(Reverse((at, seq)));
        self.pending.insert(seq, d);
    }

    fn delay(&mut self) -> Duration {
        let j = self.net.jitter.mul_f64(self.rng.unit_f64());
        self.net.latency + j
    }

    /// Feeds an input to a running node, processes its outputs and checks
    /// the safety invariants of that node.
    pub fn input(&mut self, idx: usize, input: Input) {
        let now = self.now;
        if let Some(node) = self.slots[idx].node.as_mut() {
            node.handle(now, input);
            self.drain(idx);
            self.check(idx);
        }
    }

    /// Safety invariants of node `idx` after it handled an input: the
    /// replica's own ([`Replica::check_invariants`]) and instances never
    /// going backwards. Both depend only on the membership the replica and
    /// catalog epochs track, so an input that moved neither (a beat, a
    /// digest, a refresh) is not re-checked: the check stays proportional
    /// to membership changes, not to N × messages.
    ///
    /// [`Replica::check_invariants`]: crate::fabric::replica::Replica::check_invariants
    fn check(&mut self, idx: usize) {
        if self.violation.is_some() {
            return;
        }
        let slot = &mut self.slots[idx];
        let Some(node) = slot.node.as_ref() else {
            return;
        };
        let stamp = (
            node.replica().membership_epoch(),
            node.catalog().origins_epoch(),
        );
        if slot.checked == Some(stamp) {
            return;
        }
        slot.checked = Some(stamp);
        if let Err(e) = node.replica().check_invariants(node.catalog()) {
            self.violation = Some(format!("t={:?} {e}", self.now.mono));
            return;
        }
        for (origin, _, started) in node.replica().instances() {
            match slot.seen_instances.get_mut(origin) {
                Some(seen) if started < *seen => {
                    self.violation = Some(format!(
                        "t={:?} node {idx}: instance of {origin} went backwards",
                        self.now.mono
                    ));
                    return;
                }
                Some(seen) => *seen = started,
                None => {
                    slot.seen_instances.insert(origin.to_string(), started);
                }
            }
        }
    }

    /// The first safety violation seen, with the seed to replay it.
    pub fn violation(&self) -> Option<String> {
        self.violation
            .as_ref()
            .map(|v| format!("seed {}: {v}", self.seed))
    }

    fn drain(&mut self, idx: usize) {
        let mut outs = Vec::new();
        if let Some(node) = self.slots[idx].node.as_mut() {
            while let Some(o) = node.poll_output() {
                outs.push(o);
            }
        }
        for out in outs {
            if self.keep_trace {
                let line = match &out {
                    Output::Send {
                        frame: Frame::Binary(b),
                        ..
                    } => match crate::wire::fabric::decode(b, usize::MAX) {
                        Ok(f) => format!("Send {} {}", b.len(), MsgKind::of(&f.msg).label()),
                        Err(_) => "Send ?".into(),
                    },
                    other => format!("{other:?}"),
                };
                self.trace.push((idx, line));
            }
            match out {
                Output::Send { conn, frame } => self.send(conn, frame),
                Output::Dial { url, .. } => {
                    let target = self.by_url.get(&url).copied();
                    let d = self.delay();
                    self.schedule(
                        d * 2,
                        Delivery::DialResult {
                            node: idx,
                            url,
                            target,
                        },
                    );
                }
                Output::Close { conn, .. } => self.close_conn(conn),
                // The simulator sends no DNS or HTTP requests and has no
                // disk (persisted state is dropped, as without `data_dir`).
                Output::Event(_)
                | Output::DnsReply { .. }
                | Output::HttpReply { .. }
                | Output::Persist { .. } => {}
                Output::Stopped => {
                    self.slots[idx].node = None;
                    self.drop_conns_of(idx);
                }
            }
        }
    }

    fn send(&mut self, conn: ConnId, frame: Frame) {
        let Some(end) = self.conns.get(&conn).copied() else {
            return;
        };
        let Some(peer) = self.conns.get(&end.peer).copied() else {
            return;
        };
        if self.net.loss > 0.0 && self.rng.unit_f64() < self.net.loss {
            return;
        }
        if self.net.duplicate > 0.0 && self.rng.unit_f64() < self.net.duplicate {
            let d = self.delay();
            let dup = Input::Frame {
                conn: end.peer,
                frame: frame.clone(),
            };
            self.schedule_ordered(end.peer, d, Delivery::Input(peer.node, dup));
        }
        let d = self.delay();
        self.schedule_ordered(
            end.peer,
            d,
            Delivery::Input(
                peer.node,
                Input::Frame {
                    conn: end.peer,
                    frame,
                },
            ),
        );
    }

    fn close_conn(&mut self, conn: ConnId) {
        let Some(end) = self.conns.remove(&conn) else {
            return;
        };
        self.schedule_ordered(
            conn,
            Duration::ZERO,
            Delivery::Input(end.node, Input::Closed { conn }),
        );
        if let Some(peer) = self.conns.remove(&end.peer) {
            let d = self.delay();
            self.schedule_ordered(
                end.peer,
                d,
                Delivery::Input(peer.node, Input::Closed { conn: end.peer }),
            );
        }
    }

    fn deliver(&mut self, d: Delivery) {
        match d {
            Delivery::Input(idx, input) => {
                // Frames for connections that closed meanwhile are dropped,
                // as a real socket would drop them.
                match &input {
                    Input::Frame { conn, .. } if self.dead.contains(conn) => return,
                    Input::Closed { conn } => {
                        if !self.dead.insert(*conn) {
                            return;
                        }
                        self.last_at.remove(conn);
                    }
                    _ => {}
                }
                if idx == CLIENT {
                    self.client_input(input);
                } else {
                    self.input(idx, input)
                }
            }
            Delivery::DialResult { node, url, target } => {
                let ok =
                    target.is_some_and(|t| self.slots[t].node.is_some() && self.reachable(node, t));
                if self.slots[node].node.is_none() {
                    return;
                }
                match (ok, target) {
                    (true, Some(t)) => {
                        let a = self.next_conn;
                        let b = self.next_conn + 1;
                        self.next_conn += 2;
                        self.conns.insert(a, End { node, peer: b });
                        self.conns.insert(b, End { node: t, peer: a });
                        self.input(
                            t,
                            Input::Accepted {
                                conn: b,
                                kind: ConnKind::Fabric,
                                headers: vec![],
                                peer_addr: None,
                                tls: false,
                            },
                        );
                        self.input(node, Input::Connected { conn: a, url });
                    }
                    _ => self.input(
                        node,
                        Input::DialFailed {
                            url,
                            error: "connection refused".into(),
                        },
                    ),
                }
            }
        }
    }

    /// A client opens a connection to node `idx`: `None` (refused at once)
    /// when the node is down; otherwise the client's end, which the node
    /// accepts after one network delay. Frames the node sends on it collect
    /// in [`Sim::client_recv`]; when the node crashes or stops, the end
    /// sees the close ([`Sim::client_closed`]).
    pub fn client_connect(&mut self, idx: usize) -> Option<ConnId> {
        self.slots.get(idx)?.node.as_ref()?;
        let client = self.next_conn;
        let server = self.next_conn + 1;
        self.next_conn += 2;
        self.conns.insert(
            client,
            End {
                node: CLIENT,
                peer: server,
            },
        );
        self.conns.insert(
            server,
            End {
                node: idx,
                peer: client,
            },
        );
        self.clients.insert(client, ClientInbox::default());
        let d = self.delay();
        self.schedule_ordered(
            server,
            d,
            Delivery::Input(
                idx,
                Input::Accepted {
                    conn: server,
                    kind: ConnKind::Client,
                    headers: vec![],
                    peer_addr: None,
                    tls: false,
                },
            ),
        );
        Some(client)
    }

    /// Sends `frame` from a client end to its node (after a network delay,
    /// in order; dropped when the connection is closed).
    pub fn client_send(&mut self, client: ConnId, frame: Frame) {
        self.send(client, frame);
    }

    /// Frames that reached a client end since the last call.
    pub fn client_recv(&mut self, client: ConnId) -> Vec<Frame> {
        self.clients
            .get_mut(&client)
            .map(|c| std::mem::take(&mut c.frames))
            .unwrap_or_default()
    }

    /// Whether a client end has seen its connection close.
    pub fn client_closed(&self, client: ConnId) -> bool {
        self.clients.get(&client).is_none_or(|c| c.closed)
    }

    /// The client closes its end (the node sees the close after a delay).
    pub fn client_close(&mut self, client: ConnId) {
        self.close_conn(client);
    }

    fn client_input(&mut self, input: Input) {
        match input {
            Input::Frame { conn, frame } => {
                if let Some(c) = self.clients.get_mut(&conn) {
                    c.frames.push(frame);
                }
            }
            Input::Closed { conn } => {
                if let Some(c) = self.clients.get_mut(&conn) {
                    c.closed = true;
                }
            }
            _ => {}
        }
    }

    /// Runs the world for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.now.mono + d;
        self.run_until_instant(end);
    }

    fn next_node_deadline(&self) -> Option<(Instant, usize)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| {
                s.node
                    .as_ref()
                    .and_then(|n| n.poll_timeout())
                    .map(|t| (t, i))
            })
            .min()
    }

    fn run_until_instant(&mut self, end: Instant) {
        // Bounded: every step either delivers a queued event or fires a timer
        // that moves time forward (timers never ask for a deadline in the
        // past twice: a tick reschedules them).
        let mut steps: u64 = 0;
        loop {
            steps += 1;
            assert!(steps < 50_000_000, "simulator runaway (seed {})", self.seed);
            let next_msg = self.queue.peek().map(|Reverse((t, _))| *t);
            let next_timer = self.next_node_deadline();
            let (at, is_msg) = match (next_msg, next_timer) {
                (None, None) => break,
                (Some(m), None) => (m, true),
                (None, Some((t, _))) => (t, false),
                (Some(m), Some((t, _))) => {
                    if m <= t {
                        (m, true)
                    } else {
                        (t, false)
                    }
                }
            };
            if at > end {
                break;
            }
            self.advance_to(at);
            if is_msg {
                let Some(Reverse((_, seq))) = self.queue.pop() else {
                    break;
                };
                if let Some(d) = self.pending.remove(&seq) {
                    self.deliver(d);
                }
            } else if let Some((_, idx)) = next_timer {
                self.input(idx, Input::Tick);
            }
        }
        self.advance_to(end);
    }

    fn advance_to(&mut self, at: Instant) {
        if at > self.now.mono {
            let d = at.saturating_duration_since(self.now.mono);
            self.now = self.now.advanced(d);
        }
    }

    /// Runs until `pred` holds (checked after every event) or `limit` of
    /// virtual time passes; returns whether it held.
    pub fn run_until(&mut self, limit: Duration, mut pred: impl FnMut(&Sim) -> bool) -> bool {
        let end = self.now.mono + limit;
        let step = Duration::from_millis(10);
        while self.now.mono < end {
            if pred(self) {
                return true;
            }
            let next = (self.now.mono + step).min(end);
            self.run_until_instant(next);
        }
        pred(self)
    }
}

/// How the nodes of a test cluster seed each other (`fabric.md` §2.11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topology {
    /// Node i connects to i−1.
    LinearChain,
    /// Every node connects to node 0.
    StarHub,
    /// Node 0 connects to N−1; node i connects to i−1.
    Ring,
    /// Three hubs chained 0←1←2; node i ≥ 3 connects to hub i % 3.
    MultiHub,
}

impl Topology {
    /// The seed node index of node `i` in a cluster of `n`.
    pub fn seed_of(self, i: usize, n: usize) -> Option<usize> {
        match self {
            Topology::LinearChain => i.checked_sub(1),
            Topology::StarHub => (i > 0).then_some(0),
            Topology::Ring => {
                Some(if i == 0 { n.saturating_sub(1) } else { i - 1 }).filter(|&s| s != i)
            }
            Topology::MultiHub => match i {
                0 => None,
                1 | 2 => Some(i - 1),
                _ => Some(i % 3),
            },
        }
    }
}

/// Settings of node `i` of a test cluster of `n` seeded per `topology`.
pub fn cluster_settings(i: usize, n: usize, topology: Topology, gossip_interval: f64) -> Settings {
    let mut s = Sim::settings(i);
    s.gossip_interval = gossip_interval;
    s.cluster_id = format!("test-cluster-{n}");
    s.resources = vec![format!("node-{i}"), "test-resource".into()];
    if let Some(seed) = topology.seed_of(i, n) {
        let seed_settings = Sim::settings(seed);
        s.connect = Some(format!(
            "ws://{}:{}",
            seed_settings.host, seed_settings.port
        ));
    }
    s
}

/// Helpers that read a simulated node through its public RPCs.
impl Sim {
    /// MPREG's discovery metric: the number of *other* nodes with unexpired
    /// function entries in node `idx`'s catalog.
    pub fn discovered(&self, idx: usize) -> usize {
        let Some(node) = self.slots[idx].node.as_ref() else {
            return 0;
        };
        let wall = self.now.wall;
        let me = self.url(idx);
        let servers: BTreeSet<&str> = node
            .catalog()
            .iter(crate::catalog::entry::EntryKind::Functions)
            .filter(|e| !e.is_expired(wall) && e.node_id() != me)
            .map(|e| e.node_id())
            .collect();
        servers.len()
    }

    /// True when every running node has discovered every other running node.
    pub fn all_discovered(&self) -> bool {
        let running = self.running();
        let want = running.len().saturating_sub(1);
        running.iter().all(|&i| self.discovered(i) == want)
    }

    /// `list_peers` URLs of node `idx` (empty if it is down).
    pub fn peers_of(&mut self, idx: usize) -> Vec<String> {
        let now = self.now;
        let Some(node) = self.slots[idx].node.as_ref() else {
            return vec![];
        };
        match node.call(now, "list_peers", serde_json::Value::Null) {
            Ok(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|p| p.get("url").and_then(|u| u.as_str()).map(str::to_string))
                .collect(),
            _ => vec![],
        }
    }

    /// URL of node `idx`.
    pub fn url(&self, idx: usize) -> String {
        let s = &self.slots[idx].settings;
        format!("ws://{}:{}", s.host, s.port)
    }

    /// Indexes of running nodes.
    pub fn running(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|i| self.slots[*i].node.is_some())
            .collect()
    }

    /// `list_peers` URLs of node `idx` without needing `&mut`.
    pub fn clone_peers(&self, idx: usize) -> Vec<String> {
        let now = self.now;
        let Some(node) = self.slots[idx].node.as_ref() else {
            return vec![];
        };
        match node.call(now, "list_peers", serde_json::Value::Null) {
            Ok(serde_json::Value::Array(items)) => items
                .iter()
                .filter_map(|p| p.get("url").and_then(|u| u.as_str()).map(str::to_string))
                .collect(),
            _ => vec![],
        }
    }

    /// True when every running node lists exactly the other running nodes.
    pub fn converged_ref(&self) -> bool {
        let running = self.running();
        running.iter().all(|&i| {
            let mut want: Vec<String> = running
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| self.url(j))
                .collect();
            want.sort();
            self.clone_peers(i) == want
        })
    }

    /// True when every running node lists exactly the other running nodes.
    pub fn converged(&mut self) -> bool {
        let running = self.running();
        running.iter().all(|&i| {
            let mut want: Vec<String> = running
                .iter()
                .filter(|&&j| j != i)
                .map(|&j| self.url(j))
                .collect();
            want.sort();
            self.peers_of(i) == want
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client end gets the node's replies in order, sees the close when
    /// the node crashes, and is refused while the node is down.
    #[test]
    fn client_connections_carry_replies_and_see_crashes() {
        let mut sim = Sim::new(3, NetConfig::default());
        let a = sim.add(Sim::settings(0));
        sim.run_for(Duration::from_millis(50));
        let c = sim.client_connect(a).expect("node up");
        for u in ["u1", "u2"] {
            let req = serde_json::json!({"role": "rpc", "u": u, "cmds": [
                {"name": "echo", "fun": "echo", "args": [u], "kwargs": {}, "locs": []}
            ]});
            sim.client_send(c, Frame::Text(req.to_string()));
        }
        sim.run_for(Duration::from_millis(100));
        let replies: Vec<serde_json::Value> = sim
            .client_recv(c)
            .iter()
            .map(|f| serde_json::from_slice(f.as_bytes()).expect("JSON reply"))
            .collect();
        let us: Vec<&str> = replies.iter().filter_map(|r| r["u"].as_str()).collect();
        assert_eq!(us, ["u1", "u2"], "{replies:?}");
        assert_eq!(replies[1]["r"]["echo"], "u2");
        assert!(!sim.client_closed(c));
        sim.crash(a);
        sim.run_for(Duration::from_millis(50));
        assert!(sim.client_closed(c));
        assert_eq!(sim.client_connect(a), None, "refused while down");
        sim.restart(a);
        assert!(sim.client_connect(a).is_some());
    }

    fn cluster(seed: u64, n: usize, gossip: f64) -> Sim {
        let mut sim = Sim::new(seed, NetConfig::default());
        for i in 0..n {
            let mut s = Sim::settings(i);
            s.gossip_interval = gossip;
            if i > 0 {
                s.peers = vec![Sim::settings(0).host_url()];
            }
            sim.add(s);
        }
        sim
    }

    trait HostUrl {
        fn host_url(&self) -> String;
    }
    impl HostUrl for Settings {
        fn host_url(&self) -> String {
            format!("ws://{}:{}", self.host, self.port)
        }
    }

    #[test]
    fn three_nodes_through_one_seed_converge() {
        for seed in 0..5 {
            let mut sim = cluster(seed, 3, 1.0);
            assert!(
                sim.run_until(Duration::from_secs(5), |s| s.clone_converged()),
                "seed {seed}"
            );
        }
    }

    /// Default settings (5 s gossip), seeds the last to start: B and C
    /// dial A before it listens, as when three processes are launched at
    /// once. The retry follows the unrecovered-seed backoff (2.5 s plus
    /// spread), and what A learns from one of them reaches the other at
    /// once (repairs are relayed), not at the next 5 s gossip round.
    #[test]
    fn three_nodes_launched_together_converge_after_one_seed_retry() {
        for seed in 0..5 {
            let mut sim = Sim::new(seed, NetConfig::default());
            let a = Sim::settings(2);
            for i in 0..2 {
                let mut s = Sim::settings(i);
                s.peers = vec![a.host_url()];
                sim.add(s);
            }
            sim.run_for(Duration::from_millis(20));
            sim.add(a);
            assert!(
                sim.run_until(Duration::from_millis(3500), |s| s.all_discovered()),
                "seed {seed}: not converged 3.5 s after launch"
            );
        }
    }

    /// Default settings, A up first, B and C launched at once: whichever
    /// order their state exchanges with A take, both learn each other at
    /// once, without waiting for a 5 s gossip round.
    #[test]
    fn three_nodes_launched_after_their_seed_converge_without_a_gossip_round() {
        for seed in 0..20 {
            let mut sim = Sim::new(seed, NetConfig::default());
            let a = Sim::settings(0);
            sim.add(a.clone());
            sim.run_for(Duration::from_millis(20));
            for i in 1..3 {
                let mut s = Sim::settings(i);
                s.peers = vec![a.host_url()];
                sim.add(s);
            }
            assert!(
                sim.run_until(Duration::from_millis(500), |s| s.all_discovered()),
                "seed {seed}: not converged 0.5 s after launch"
            );
        }
    }

    #[test]
    fn same_seed_replays_exactly() {
        let run = |seed| {
            let mut sim = cluster(seed, 4, 0.5);
            sim.keep_trace(true);
            sim.run_for(Duration::from_secs(3));
            sim.trace.clone()
        };
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
    }

    #[test]
    fn goodbye_removes_the_peer_everywhere_and_for_good() {
        let mut sim = cluster(7, 4, 0.5);
        assert!(sim.run_until(Duration::from_secs(10), |s| s.clone_converged()));
        let gone = sim.url(3);
        sim.stop(3);
        sim.run_for(Duration::from_millis(200));
        for i in 0..3 {
            assert!(
                !sim.peers_of(i).contains(&gone),
                "node {i} still lists the departed node"
            );
        }
        // Stays gone while stale state could still circulate.
        for _ in 0..20 {
            sim.run_for(Duration::from_millis(250));
            for i in 0..3 {
                assert!(!sim.peers_of(i).contains(&gone));
            }
        }
    }

    #[test]
    fn restarted_node_with_new_instance_rejoins() {
        let mut sim = cluster(9, 3, 0.5);
        assert!(sim.run_until(Duration::from_secs(10), |s| s.clone_converged()));
        sim.stop(2);
        sim.run_for(Duration::from_millis(500));
        sim.restart(2);
        assert!(
            sim.run_until(Duration::from_secs(10), |s| s.clone_converged()),
            "seed {}",
            sim.seed()
        );
    }

    #[test]
    fn crashed_node_ages_out_of_list_peers() {
        let mut sim = cluster(11, 3, 0.3);
        assert!(sim.run_until(Duration::from_secs(10), |s| s.clone_converged()));
        sim.crash(2);
        // No GOODBYE: the disconnected status ages out after stale_after
        // (max(1, 0.3 × 4) = 1.2 s) on the survivors.
        assert!(
            sim.run_until(Duration::from_secs(5), |s| s.clone_converged()),
            "seed {}",
            sim.seed()
        );
    }

    #[test]
    fn partition_heals() {
        let mut sim = cluster(13, 3, 0.5);
        assert!(sim.run_until(Duration::from_secs(10), |s| s.clone_converged()));
        sim.partition(0, 2, true);
        sim.partition(1, 2, true);
        sim.run_for(Duration::from_secs(5));
        assert!(
            !sim.peers_of(0).contains(&sim.url(2)),
            "isolated node should age out"
        );
        sim.partition(0, 2, false);
        sim.partition(1, 2, false);
        assert!(
            sim.run_until(Duration::from_secs(40), |s| s.clone_converged()),
            "seed {}",
            sim.seed()
        );
    }

    impl Sim {
        /// `converged` through a shared reference for `run_until` predicates.
        fn clone_converged(&self) -> bool {
            let running = self.running();
            let now = self.now;
            running.iter().all(|&i| {
                let mut want: Vec<String> = running
                    .iter()
                    .filter(|&&j| j != i)
                    .map(|&j| self.url(j))
                    .collect();
                want.sort();
                let Some(node) = self.slots[i].node.as_ref() else {
                    return false;
                };
                let got: Vec<String> = match node
                    .call(now, "list_peers", serde_json::Value::Null)
                    .ok()
                {
                    Some(serde_json::Value::Array(items)) => items
                        .iter()
                        .filter_map(|p| p.get("url").and_then(|u| u.as_str()).map(str::to_string))
                        .collect(),
                    _ => vec![],
                };
                got == want
            })
        }
    }
}
