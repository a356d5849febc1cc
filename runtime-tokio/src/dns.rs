//! The DNS gateway's sockets: one UDP socket and one TCP listener, on the
//! same port by default so a resolver that gets a truncated UDP answer can
//! retry over TCP where it expects to (`dns.md` §8.4). Framing only: every
//! query goes to the node as `Input::DnsQuery`, every answer comes back as
//! `Output::DnsReply`.
//!
//! Limits: queries wait in a bounded queue ([`QUERY_QUEUE`]; a full queue
//! drops UDP datagrams and slows TCP readers down); at most
//! [`MAX_TCP_CONNECTIONS`] TCP connections, each closed after
//! [`TCP_IDLE_TIMEOUT`] without a query; several queries per connection
//! (RFC 7766), answered as they come.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mpreg_core::{DnsQueryId, DnsTransport, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, Semaphore};

/// Queries waiting for the node, across all sources.
pub const QUERY_QUEUE: usize = 4096;
/// Concurrent TCP connections.
pub const MAX_TCP_CONNECTIONS: usize = 256;
/// A TCP connection with no new query for this long is closed.
pub const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Replies queued for one TCP connection before further ones are dropped.
const TCP_REPLY_QUEUE: usize = 64;
/// Largest datagram read (a DNS message is at most 65535 bytes).
const UDP_BUFFER: usize = 65_535;
/// Attempts at finding a port free for both UDP and TCP.
const SAME_PORT_ATTEMPTS: usize = 32;

/// Where the answer to a query goes.
#[derive(Debug)]
pub enum ReplyTo {
    /// A datagram back to this address from the gateway's UDP socket.
    Udp(SocketAddr),
    /// The writer of the TCP connection the query came on.
    Tcp(mpsc::Sender<Vec<u8>>),
}

/// One query for the node.
#[derive(Debug)]
pub struct Query {
    /// Runtime id, echoed by the node's reply.
    pub id: DnsQueryId,
    /// Source address.
    pub src: SocketAddr,
    /// Socket kind.
    pub transport: DnsTransport,
    /// The DNS message.
    pub bytes: Vec<u8>,
    /// Where the reply goes.
    pub reply: ReplyTo,
}

/// The bound sockets, before serving.
pub struct Sockets {
    udp: UdpSocket,
    tcp: TcpListener,
}

impl Sockets {
    /// The UDP address (the TCP listener has the same host, and the same
    /// port unless both ports were configured differently).
    pub fn udp_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// The TCP address.
    pub fn tcp_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Binds the gateway's sockets on `dns_listen_host` (default `host`):
/// `dns_udp_port` / `dns_tcp_port` when set (one of them set: both use it),
/// otherwise one free port for both.
pub async fn bind(settings: &Settings) -> Result<Sockets, String> {
    let host = settings
        .dns_listen_host
        .clone()
        .filter(|h| !h.trim().is_empty())
        .unwrap_or_else(|| settings.host.clone());
    let udp_port = settings.dns_udp_port.filter(|p| *p != 0);
    let tcp_port = settings.dns_tcp_port.filter(|p| *p != 0);
    match (udp_port, tcp_port) {
        (None, None) => {
            let mut last = String::new();
            for _ in 0..SAME_PORT_ATTEMPTS {
                let addr = host_port(&host, 0);
                let udp = UdpSocket::bind(&addr)
                    .await
                    .map_err(|e| format!("cannot bind DNS UDP on {addr}: {e}"))?;
                let port = udp
                    .local_addr()
                    .map_err(|e| format!("DNS UDP socket has no address: {e}"))?
                    .port();
                let tcp_addr = host_port(&host, port);
                match TcpListener::bind(&tcp_addr).await {
                    Ok(tcp) => return Ok(Sockets { udp, tcp }),
                    // That port is taken for TCP: try another UDP port.
                    Err(e) => last = format!("cannot bind DNS TCP on {tcp_addr}: {e}"),
                }
            }
            Err(last)
        }
        (udp_port, tcp_port) => {
            let udp_port = udp_port.or(tcp_port).unwrap_or(0);
            let tcp_port = tcp_port.unwrap_or(udp_port);
            let udp_addr = host_port(&host, udp_port);
            let udp = UdpSocket::bind(&udp_addr)
                .await
                .map_err(|e| format!("cannot bind DNS UDP on {udp_addr}: {e}"))?;
            let tcp_addr = host_port(&host, tcp_port);
            let tcp = TcpListener::bind(&tcp_addr)
                .await
                .map_err(|e| format!("cannot bind DNS TCP on {tcp_addr}: {e}"))?;
            Ok(Sockets { udp, tcp })
        }
    }
}

/// Starts serving: a UDP reader task and a TCP acceptor task. Returns the
/// query queue the driver reads and the UDP socket it answers on.
pub fn serve(sockets: Sockets) -> (mpsc::Receiver<Query>, Arc<UdpSocket>) {
    let (tx, rx) = mpsc::channel::<Query>(QUERY_QUEUE);
    let next_id = Arc::new(AtomicU64::new(1));
    let udp = Arc::new(sockets.udp);
    tokio::spawn(read_udp(udp.clone(), tx.clone(), next_id.clone()));
    tokio::spawn(accept_tcp(sockets.tcp, tx, next_id));
    (rx, udp)
}

async fn read_udp(udp: Arc<UdpSocket>, queries: mpsc::Sender<Query>, next_id: Arc<AtomicU64>) {
    let mut buf = vec![0u8; UDP_BUFFER];
    loop {
        let (n, src) = match udp.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                // ICMP errors from earlier sends surface here on some
                // platforms; keep serving.
                tracing::debug!(error = %e, "DNS UDP receive failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let q = Query {
            id: next_id.fetch_add(1, Ordering::Relaxed),
            src,
            transport: DnsTransport::Udp,
            bytes: buf[..n].to_vec(),
            reply: ReplyTo::Udp(src),
        };
        match queries.try_send(q) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!(%src, "DNS query queue full; datagram dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

async fn accept_tcp(listener: TcpListener, queries: mpsc::Sender<Query>, next_id: Arc<AtomicU64>) {
    let slots = Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS));
    loop {
        let (stream, src) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "DNS TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%src, "too many DNS TCP connections; closing");
            continue;
        };
        let queries = queries.clone();
        let next_id = next_id.clone();
        tokio::spawn(async move {
            serve_tcp(stream, src, queries, next_id).await;
            drop(permit);
        });
    }
}

/// One TCP connection: 2-byte length-prefixed queries in, replies out in
/// the order the node answers them, until EOF, a zero length, an error or
/// [`TCP_IDLE_TIMEOUT`] without a query.
async fn serve_tcp(
    stream: TcpStream,
    src: SocketAddr,
    queries: mpsc::Sender<Query>,
    next_id: Arc<AtomicU64>,
) {
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(TCP_REPLY_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(reply) = rx.recv().await {
            let Ok(len) = u16::try_from(reply.len()) else {
                continue;
            };
            let mut framed = Vec::with_capacity(reply.len() + 2);
            framed.extend_from_slice(&len.to_be_bytes());
            framed.extend_from_slice(&reply);
            if wr.write_all(&framed).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(TCP_IDLE_TIMEOUT, rd.read_exact(&mut len)).await {
            Ok(Ok(_)) => {}
            _ => break,
        }
        let len = usize::from(u16::from_be_bytes(len));
        if len == 0 {
            break;
        }
        let mut bytes = vec![0u8; len];
        match tokio::time::timeout(TCP_IDLE_TIMEOUT, rd.read_exact(&mut bytes)).await {
            Ok(Ok(_)) => {}
            _ => break,
        }
        let q = Query {
            id: next_id.fetch_add(1, Ordering::Relaxed),
            src,
            transport: DnsTransport::Tcp,
            bytes,
            reply: ReplyTo::Tcp(tx.clone()),
        };
        if queries.send(q).await.is_err() {
            break;
        }
    }
    // The writer ends once every reply still owed has been written (the
    // driver holds a sender per query in flight).
    drop(tx);
    let _ = writer.await;
}

/// Sends a reply where it belongs; empty replies are not sent.
pub fn deliver(udp: Option<&UdpSocket>, to: ReplyTo, bytes: Vec<u8>) {
    if bytes.is_empty() {
        return;
    }
    match to {
        ReplyTo::Udp(addr) => {
            if let Some(udp) = udp {
                if let Err(e) = udp.try_send_to(&bytes, addr) {
                    tracing::debug!(%addr, error = %e, "DNS UDP reply not sent");
                }
            }
        }
        ReplyTo::Tcp(tx) => {
            if tx.try_send(bytes).is_err() {
                tracing::debug!("DNS TCP reply queue full or connection gone; reply dropped");
            }
        }
    }
}
