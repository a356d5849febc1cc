//! The harness's TCP proxy on 127.0.0.1: every node advertises a proxy
//! port (`--advertised-url`), so its peers dial it through the proxy, and the
//! harness can cut and heal the link between two nodes.
//!
//! A proxy cannot see which node opened a connection from the bytes alone,
//! so on accept it looks the client socket up in `/proc/net/tcp` and finds
//! the node process holding it (Linux only; an unidentified client, such as
//! the harness's own query clients, is forwarded and never cut). Threads
//! only: one acceptor per proxy and two pumps per connection, each polling
//! a stop flag at least every [`POLL`], so cutting, healing and shutting
//! down are bounded in time.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

/// How often blocked accept loops and pumps look at their stop flags.
const POLL: Duration = Duration::from_millis(50);
/// Bound on connecting to the node behind a proxy.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// One proxied connection, as the network sees it.
struct Link {
    /// The node that opened it (`None`: not a node process).
    client: Option<String>,
    /// The node behind the proxy.
    server: String,
    /// Clones of both sockets, shut down to cut the link.
    sockets: [TcpStream; 2],
    /// Tells the pumps to stop.
    closed: Arc<AtomicBool>,
}

/// State shared by every proxy of one harness run.
#[derive(Default)]
struct NetState {
    /// Node process id -> slot name, for identifying clients.
    pids: BTreeMap<u32, String>,
    /// Cut slot pairs (stored with the smaller name first).
    cut: BTreeSet<(String, String)>,
    /// Open links by id.
    links: BTreeMap<u64, Link>,
}

/// The loopback "network" between the nodes: every proxy plus the cut
/// links. Cloning shares it.
#[derive(Clone, Default)]
pub struct Net {
    state: Arc<Mutex<NetState>>,
    next_link: Arc<AtomicU64>,
    /// Connections refused or closed because their link was cut.
    pub refused: Arc<AtomicU64>,
}

fn pair(a: &str, b: &str) -> (String, String) {
    if a <= b {
        (a.to_string(), b.to_string())
    } else {
        (b.to_string(), a.to_string())
    }
}

impl Net {
    fn lock(&self) -> MutexGuard<'_, NetState> {
        // A pump that panicked cannot leave the maps half-updated (every
        // update is one insert or remove), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records that process `pid` is the node of slot `slot`.
    pub fn set_pid(&self, pid: u32, slot: &str) {
        let mut st = self.lock();
        st.pids.retain(|_, s| s != slot);
        st.pids.insert(pid, slot.to_string());
    }

    /// Cuts the link between slots `a` and `b`: open connections between
    /// them are shut down, new ones are refused until [`Net::heal`].
    pub fn cut(&self, a: &str, b: &str) {
        let mut st = self.lock();
        st.cut.insert(pair(a, b));
        let doomed: Vec<u64> = st
            .links
            .iter()
            .filter(|(_, l)| {
                l.client
                    .as_deref()
                    .is_some_and(|c| pair(c, &l.server) == pair(a, b))
            })
            .map(|(id, _)| *id)
            .collect();
        for id in doomed {
            if let Some(link) = st.links.remove(&id) {
                close(&link);
                self.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Heals every cut link.
    pub fn heal_all(&self) {
        self.lock().cut.clear();
    }

    /// Closes every open connection to `server` (its node went away).
    pub fn drop_server(&self, server: &str) {
        let mut st = self.lock();
        let doomed: Vec<u64> = st
            .links
            .iter()
            .filter(|(_, l)| l.server == server)
            .map(|(id, _)| *id)
            .collect();
        for id in doomed {
            if let Some(link) = st.links.remove(&id) {
                close(&link);
            }
        }
    }

    /// Open node-to-node links through the proxies, and how many of them
    /// have an identified client.
    pub fn link_counts(&self) -> (usize, usize) {
        let st = self.lock();
        let known = st.links.values().filter(|l| l.client.is_some()).count();
        (st.links.len(), known)
    }

    /// Starts a proxy for slot `slot` on a free 127.0.0.1 port, forwarding
    /// to `target` (0 = nothing behind it yet: connections are closed).
    pub fn proxy(&self, slot: &str, target: u16) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let port = listener.local_addr()?.port();
        let proxy = Proxy {
            port,
            target: Arc::new(AtomicU16::new(target)),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let (net, slot, target, stop) = (
            self.clone(),
            slot.to_string(),
            proxy.target.clone(),
            proxy.stop.clone(),
        );
        thread::spawn(move || accept_loop(&net, &slot, &listener, &target, &stop));
        Ok(proxy)
    }

    fn admit(&self, client: TcpStream, slot: &str, target: u16) {
        let peer = client.peer_addr().ok();
        let own_port = client.local_addr().map(|a| a.port()).unwrap_or(0);
        let who = peer.and_then(|p| self.owner(p, own_port));
        if let Some(c) = &who {
            if self.lock().cut.contains(&pair(c, slot)) {
                self.refused.fetch_add(1, Ordering::Relaxed);
                let _ = client.shutdown(Shutdown::Both);
                return;
            }
        }
        if target == 0 {
            let _ = client.shutdown(Shutdown::Both);
            return;
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], target));
        let Ok(server) = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) else {
            let _ = client.shutdown(Shutdown::Both);
            return;
        };
        let (Ok(c2), Ok(s2), Ok(c3), Ok(s3)) = (
            client.try_clone(),
            server.try_clone(),
            client.try_clone(),
            server.try_clone(),
        ) else {
            return;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let closed = Arc::new(AtomicBool::new(false));
        let id = self.next_link.fetch_add(1, Ordering::Relaxed);
        self.lock().links.insert(
            id,
            Link {
                client: who,
                server: slot.to_string(),
                sockets: [c3, s3],
                closed: closed.clone(),
            },
        );
        for (from, to) in [(client, s2), (server, c2)] {
            let (net, closed) = (self.clone(), closed.clone());
            thread::spawn(move || {
                pump(from, to, &closed);
                if let Some(link) = net.lock().links.remove(&id) {
                    close(&link);
                }
            });
        }
    }

    /// The slot whose node process owns the socket `peer` (connected to our
    /// port `own_port`), from `/proc/net/tcp` and `/proc/<pid>/fd`.
    fn owner(&self, peer: SocketAddr, own_port: u16) -> Option<String> {
        let inode = socket_inode(peer.port(), own_port)?;
        let want = format!("socket:[{inode}]");
        let pids: Vec<(u32, String)> = self
            .lock()
            .pids
            .iter()
            .map(|(p, s)| (*p, s.clone()))
            .collect();
        pids.into_iter().find_map(|(pid, slot)| {
            let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
            fds.take(100_000)
                .filter_map(Result::ok)
                .any(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|l| l.to_string_lossy() == want.as_str())
                })
                .then_some(slot)
        })
    }
}

fn close(link: &Link) {
    link.closed.store(true, Ordering::Relaxed);
    for s in &link.sockets {
        let _ = s.shutdown(Shutdown::Both);
    }
}

/// The inode of the IPv4 loopback socket with local port `local` and remote
/// port `remote`.
fn socket_inode(local: u16, remote: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let (want_l, want_r) = (
        format!("0100007F:{local:04X}"),
        format!("0100007F:{remote:04X}"),
    );
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        (f.len() > 9 && f[1] == want_l && f[2] == want_r)
            .then(|| f[9].parse().ok())
            .flatten()
    })
}

fn accept_loop(
    net: &Net,
    slot: &str,
    listener: &TcpListener,
    target: &AtomicU16,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((client, _)) => {
                let _ = client.set_nonblocking(false);
                net.admit(client, slot, target.load(Ordering::Relaxed));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(POLL / 5),
            Err(_) => thread::sleep(POLL),
        }
    }
}

/// Copies `from` to `to` until either side closes or `closed` is set.
fn pump(mut from: TcpStream, mut to: TcpStream, closed: &AtomicBool) {
    if from.set_read_timeout(Some(POLL)).is_err() {
        return;
    }
    let _ = to.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf = vec![0u8; 64 * 1024];
    while !closed.load(Ordering::Relaxed) {
        match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => break,
        }
    }
    closed.store(true, Ordering::Relaxed);
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// One listening proxy port. Dropping it stops accepting (open links stay
/// until their node or the harness closes them).
pub struct Proxy {
    port: u16,
    target: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// `ws://127.0.0.1:<proxy port>`, the URL its node advertises.
    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    /// Points the proxy at a (re)started node's port.
    pub fn retarget(&self, port: u16) {
        self.target.store(port, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
