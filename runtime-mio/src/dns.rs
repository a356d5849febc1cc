//! The DNS gateway's sockets on the mio loop: one UDP socket and one TCP
//! listener on the same port by default (so a truncated UDP answer can be
//! retried over TCP where resolvers expect it), 2-byte length framing on
//! TCP with several queries per connection, an idle timeout and a
//! connection limit. Framing only: queries go to the node as
//! `Input::DnsQuery`, answers come back as `Output::DnsReply`.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream, UdpSocket};
use mio::{Interest, Registry, Token};
use mpreg_core::{DnsQueryId, DnsTransport, Settings};

/// Token of the UDP socket.
pub(crate) const UDP: Token = Token(usize::MAX - 3);
/// Token of the TCP listener.
pub(crate) const LISTENER: Token = Token(usize::MAX - 4);
/// DNS TCP connections use tokens from here up (WebSocket connections count
/// up from 1, far below).
pub(crate) const CONN_BASE: usize = usize::MAX / 2;

/// Concurrent TCP connections.
pub const MAX_TCP_CONNECTIONS: usize = 256;
/// A TCP connection with no query for this long (and nothing owed) closes.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Datagrams read per readiness event before other sockets get a turn.
const UDP_BUDGET: usize = 256;
/// Queries taken from one TCP connection per readiness event.
const TCP_BUDGET: usize = 64;
/// Unsent reply bytes one TCP connection may hold before it is dropped.
const TCP_WRITE_LIMIT: usize = 1 << 20;
/// Attempts at finding a port free for both UDP and TCP.
const SAME_PORT_ATTEMPTS: usize = 32;

/// Whether `token` belongs to a DNS TCP connection.
pub(crate) fn is_conn(token: Token) -> bool {
    token.0 >= CONN_BASE && token.0 < LISTENER.0
}

/// A query for the node.
pub(crate) struct Query {
    pub id: DnsQueryId,
    pub src: SocketAddr,
    pub transport: DnsTransport,
    pub bytes: Vec<u8>,
}

enum Pending {
    Udp(SocketAddr),
    Tcp(usize),
}

struct TcpConn {
    stream: TcpStream,
    src: SocketAddr,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    last: Instant,
    /// Replies the node still owes this connection.
    owed: usize,
    read_closed: bool,
    writable_interest: bool,
    /// Reading stopped before the socket would block (buffer full): read
    /// again without waiting for a readiness event (mio is edge-triggered).
    more_to_read: bool,
}

/// The gateway's sockets and queries in flight.
pub(crate) struct DnsGateway {
    udp: UdpSocket,
    listener: TcpListener,
    conns: HashMap<usize, TcpConn>,
    next_conn: usize,
    pending: HashMap<DnsQueryId, Pending>,
    next_query: DnsQueryId,
    buf: Vec<u8>,
}

fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let text = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(text.to_socket_addrs()?.collect())
}

fn bind_pair(addr: SocketAddr, tcp_port: Option<u16>) -> io::Result<(UdpSocket, TcpListener)> {
    let udp = UdpSocket::bind(addr)?;
    let mut tcp_addr = udp.local_addr()?;
    if let Some(p) = tcp_port {
        tcp_addr.set_port(p);
    }
    let listener = TcpListener::bind(tcp_addr)?;
    Ok((udp, listener))
}

impl DnsGateway {
    /// Binds on `dns_listen_host` (default `host`): `dns_udp_port` /
    /// `dns_tcp_port` when set (one set: both use it), otherwise one free
    /// port for both; then registers both sockets.
    pub(crate) fn bind(settings: &Settings, registry: &Registry) -> Result<DnsGateway, String> {
        let host = settings
            .dns_listen_host
            .clone()
            .filter(|h| !h.trim().is_empty())
            .unwrap_or_else(|| settings.host.clone());
        let udp_port = settings.dns_udp_port.filter(|p| *p != 0);
        let tcp_port = settings.dns_tcp_port.filter(|p| *p != 0);
        let first = udp_port.or(tcp_port).unwrap_or(0);
        let addrs = resolve(&host, first).map_err(|e| format!("cannot resolve {host}: {e}"))?;
        let mut last = format!("{host} resolves to no address");
        let attempts = if first == 0 { SAME_PORT_ATTEMPTS } else { 1 };
        let mut bound = None;
        'outer: for addr in addrs {
            for _ in 0..attempts {
                match bind_pair(addr, tcp_port.or(udp_port)) {
                    Ok(pair) => {
                        bound = Some(pair);
                        break 'outer;
                    }
                    Err(e) => last = format!("cannot bind DNS UDP and TCP on {addr}: {e}"),
                }
            }
        }
        let (mut udp, mut listener) = bound.ok_or(last)?;
        registry
            .register(&mut udp, UDP, Interest::READABLE)
            .map_err(|e| format!("cannot watch the DNS UDP socket: {e}"))?;
        registry
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| format!("cannot watch the DNS TCP listener: {e}"))?;
        Ok(DnsGateway {
            udp,
            listener,
            conns: HashMap::new(),
            next_conn: CONN_BASE,
            pending: HashMap::new(),
            next_query: 1,
            buf: vec![0u8; 65_535],
        })
    }

    /// The UDP address.
    pub(crate) fn udp_addr(&self) -> Option<SocketAddr> {
        self.udp.local_addr().ok()
    }

    /// The TCP address.
    pub(crate) fn tcp_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    fn query_id(&mut self) -> DnsQueryId {
        let id = self.next_query;
        self.next_query += 1;
        id
    }

    /// Datagrams waiting on the UDP socket (at most a budget's worth).
    pub(crate) fn read_udp(&mut self) -> Vec<Query> {
        let mut out = Vec::new();
        for _ in 0..UDP_BUDGET {
            match self.udp.recv_from(&mut self.buf) {
                Ok((n, src)) => {
                    let id = self.query_id();
                    self.pending.insert(id, Pending::Udp(src));
                    out.push(Query {
                        id,
                        src,
                        transport: DnsTransport::Udp,
                        bytes: self.buf[..n].to_vec(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // ICMP errors of earlier sends surface here; go on.
                    tracing::debug!(error = %e, "DNS UDP receive failed");
                    break;
                }
            }
        }
        out
    }

    /// Accepts waiting TCP connections.
    pub(crate) fn accept(&mut self, registry: &Registry, now: Instant) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, src)) => {
                    if self.conns.len() >= MAX_TCP_CONNECTIONS {
                        tracing::debug!(%src, "too many DNS TCP connections; closing");
                        continue;
                    }
                    let key = self.next_conn;
                    self.next_conn = if self.next_conn + 1 >= LISTENER.0 {
                        CONN_BASE
                    } else {
                        self.next_conn + 1
                    };
                    let _ = stream.set_nodelay(true);
                    if let Err(e) = registry.register(&mut stream, Token(key), Interest::READABLE) {
                        tracing::warn!(%src, error = %e, "cannot watch DNS TCP connection");
                        continue;
                    }
                    self.conns.insert(
                        key,
                        TcpConn {
                            stream,
                            src,
                            rbuf: Vec::new(),
                            wbuf: Vec::new(),
                            last: now,
                            owed: 0,
                            read_closed: false,
                            writable_interest: false,
                            more_to_read: false,
                        },
                    );
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "DNS TCP accept failed");
                    return;
                }
            }
        }
    }

    /// A TCP connection is readable and/or writable: flush, read complete
    /// queries (at most a budget's worth), close it when finished.
    pub(crate) fn conn_event(
        &mut self,
        registry: &Registry,
        token: Token,
        readable: bool,
        writable: bool,
        now: Instant,
    ) -> Vec<Query> {
        let key = token.0;
        let mut out = Vec::new();
        let mut ids = Vec::new();
        let Some(c) = self.conns.get_mut(&key) else {
            return out;
        };
        let mut broken = false;
        if writable && flush(c).is_err() {
            broken = true;
        }
        if readable && !broken {
            c.more_to_read = false;
            let mut chunk = [0u8; 16 * 1024];
            loop {
                match c.stream.read(&mut chunk) {
                    Ok(0) => {
                        c.read_closed = true;
                        break;
                    }
                    Ok(n) => {
                        c.rbuf.extend_from_slice(&chunk[..n]);
                        if c.rbuf.len() >= 2 * 65_537 {
                            c.more_to_read = true;
                            break; // take what is complete first
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        broken = true;
                        break;
                    }
                }
            }
            while out.len() < TCP_BUDGET && c.rbuf.len() >= 2 {
                let len = usize::from(u16::from_be_bytes([c.rbuf[0], c.rbuf[1]]));
                if len == 0 {
                    c.read_closed = true;
                    c.rbuf.clear();
                    break;
                }
                if c.rbuf.len() < 2 + len {
                    break;
                }
                let bytes = c.rbuf[2..2 + len].to_vec();
                c.rbuf.drain(..2 + len);
                c.last = now;
                c.owed += 1;
                ids.push(bytes);
            }
        }
        let src = c.src;
        for bytes in ids {
            let id = self.query_id();
            self.pending.insert(id, Pending::Tcp(key));
            out.push(Query {
                id,
                src,
                transport: DnsTransport::Tcp,
                bytes,
            });
        }
        if broken {
            self.close(registry, key);
        } else {
            self.settle(registry, key);
        }
        out
    }

    /// Whether a connection still has complete queries buffered (its read
    /// budget ran out); the loop calls [`DnsGateway::conn_event`] again.
    pub(crate) fn has_buffered(&self, token: Token) -> bool {
        self.conns.get(&token.0).is_some_and(|c| {
            c.more_to_read
                || (c.rbuf.len() >= 2
                    && c.rbuf.len() >= 2 + usize::from(u16::from_be_bytes([c.rbuf[0], c.rbuf[1]])))
        })
    }

    /// Sends the node's answer to query `id` (empty: nothing to send).
    pub(crate) fn reply(&mut self, registry: &Registry, id: DnsQueryId, bytes: Vec<u8>) {
        match self.pending.remove(&id) {
            Some(Pending::Udp(addr)) if !bytes.is_empty() => {
                if let Err(e) = self.udp.send_to(&bytes, addr) {
                    tracing::debug!(%addr, error = %e, "DNS UDP reply not sent");
                }
            }
            Some(Pending::Udp(_)) => {}
            Some(Pending::Tcp(key)) => {
                let Some(c) = self.conns.get_mut(&key) else {
                    return;
                };
                c.owed = c.owed.saturating_sub(1);
                if let Ok(len) = u16::try_from(bytes.len()) {
                    if len > 0 {
                        c.wbuf.extend_from_slice(&len.to_be_bytes());
                        c.wbuf.extend_from_slice(&bytes);
                    }
                }
                if c.wbuf.len() > TCP_WRITE_LIMIT || flush(c).is_err() {
                    self.close(registry, key);
                } else {
                    self.settle(registry, key);
                }
            }
            None => {}
        }
    }

    /// After activity: close a finished connection, or watch for
    /// writability while bytes are left.
    fn settle(&mut self, registry: &Registry, key: usize) {
        let Some(c) = self.conns.get_mut(&key) else {
            return;
        };
        if c.read_closed && c.owed == 0 && c.wbuf.is_empty() {
            self.close(registry, key);
            return;
        }
        let want = !c.wbuf.is_empty();
        if want != c.writable_interest {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if registry
                .reregister(&mut c.stream, Token(key), interest)
                .is_err()
            {
                self.close(registry, key);
                return;
            }
            c.writable_interest = want;
        }
    }

    fn close(&mut self, registry: &Registry, key: usize) {
        if let Some(mut c) = self.conns.remove(&key) {
            let _ = registry.deregister(&mut c.stream);
        }
    }

    /// Closes connections idle for [`TCP_IDLE_TIMEOUT`] with nothing owed.
    pub(crate) fn expire(&mut self, registry: &Registry, now: Instant) {
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.owed == 0 && now.saturating_duration_since(c.last) >= TCP_IDLE_TIMEOUT
            })
            .map(|(k, _)| *k)
            .collect();
        for key in idle {
            self.close(registry, key);
        }
    }

    /// The earliest idle deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.conns.values().map(|c| c.last + TCP_IDLE_TIMEOUT).min()
    }

    /// Stops serving: deregisters every socket.
    pub(crate) fn shutdown(mut self, registry: &Registry) {
        let keys: Vec<usize> = self.conns.keys().copied().collect();
        for key in keys {
            self.close(registry, key);
        }
        let _ = registry.deregister(&mut self.udp);
        let _ = registry.deregister(&mut self.listener);
    }
}

/// Writes as much of the buffer as the socket takes.
fn flush(c: &mut TcpConn) -> io::Result<()> {
    while !c.wbuf.is_empty() {
        match c.stream.write(&c.wbuf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                c.wbuf.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
