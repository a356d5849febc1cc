//! Outbound connections: from a peer URL to a connecting socket.
//!
//! Everything here is non-blocking except name resolution, which the OS only
//! offers as a blocking call: a URL whose host is an IP literal (the common
//! case for fabric seeds) connects at once, a host name is resolved on a
//! short-lived helper thread that hands the addresses back through a channel
//! and the loop's waker. The dial's own deadline still applies while the
//! name resolves, so a hung resolver cannot hold a dial open.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token, Waker};
use mpreg_core::ConnId;
use tungstenite::handshake::client::Request;

use crate::upgrade;

/// Where a dial goes.
pub(crate) struct Target {
    /// The upgrade request (with the fabric subprotocol offered).
    pub request: Request,
    /// Host name or IP literal from the URL.
    pub host: String,
    /// Port from the URL (80 when absent, as for any `ws://` URL).
    pub port: u16,
}

impl Target {
    /// Parses a peer URL. Only `ws://` is possible: this runtime, like the
    /// tokio one, is built without TLS.
    pub(crate) fn parse(url: &str) -> Result<Target, String> {
        let request = upgrade::client_request(url)?;
        let uri = request.uri();
        match uri.scheme_str() {
            Some("ws") => {}
            Some("wss") => return Err("wss:// needs TLS, which this build does not include".into()),
            _ => return Err(format!("{url}: unsupported URL scheme (expected ws://)")),
        }
        let host = uri
            .host()
            .ok_or_else(|| format!("{url}: no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(80);
        Ok(Target {
            request,
            host,
            port,
        })
    }

    /// The address to connect to, when the host is an IP literal.
    pub(crate) fn literal(&self) -> Option<SocketAddr> {
        self.host
            .parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, self.port))
    }
}

/// Starts a non-blocking connect to the first address of `addrs` that the OS
/// accepts, registered under `token`. Addresses that fail at once are
/// skipped; the ones after the chosen address stay in `addrs` for a retry
/// if this one fails later.
pub(crate) fn connect(
    addrs: &mut VecDeque<SocketAddr>,
    registry: &Registry,
    token: Token,
) -> Result<TcpStream, String> {
    let mut last = String::from("no address to connect to");
    while let Some(addr) = addrs.pop_front() {
        match TcpStream::connect(addr) {
            Ok(mut stream) => {
                match registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
                {
                    Ok(()) => return Ok(stream),
                    Err(e) => last = format!("cannot register socket for {addr}: {e}"),
                }
            }
            Err(e) => last = format!("IO error: {e}"),
        }
    }
    Err(last)
}

/// Whether a connect in flight has finished: `Ok(true)` connected,
/// `Ok(false)` still in progress (a spurious wake-up), `Err` failed.
pub(crate) fn finished(stream: &TcpStream) -> io::Result<bool> {
    if let Some(e) = stream.take_error()? {
        return Err(e);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
        Err(e) => Err(e),
    }
}

/// A finished name lookup for a dial.
pub(crate) type Resolved = (ConnId, io::Result<Vec<SocketAddr>>);

/// Resolves host names off the loop.
pub(crate) struct Resolver {
    tx: Sender<Resolved>,
    rx: Receiver<Resolved>,
    waker: Arc<Waker>,
}

impl Resolver {
    /// A resolver that wakes the loop through `waker` when a lookup ends.
    pub(crate) fn new(waker: Arc<Waker>) -> Self {
        let (tx, rx) = channel();
        Resolver { tx, rx, waker }
    }

    /// Looks `host:port` up on a helper thread for connection `conn`.
    pub(crate) fn spawn(&self, conn: ConnId, host: String, port: u16) -> io::Result<()> {
        let tx = self.tx.clone();
        let waker = self.waker.clone();
        std::thread::Builder::new()
            .name("mpreg-mio-resolve".into())
            .spawn(move || {
                let result = (host.as_str(), port)
                    .to_socket_addrs()
                    .map(|a| a.collect::<Vec<_>>());
                // The loop may have exited meanwhile; then nobody cares.
                if tx.send((conn, result)).is_ok() {
                    let _ = waker.wake();
                }
            })
            .map(|_| ())
    }

    /// One finished lookup, if any.
    pub(crate) fn try_recv(&self) -> Option<Resolved> {
        self.rx.try_recv().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_peer_urls() {
        let t = Target::parse("ws://127.0.0.1:7001").expect("valid");
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 7001));
        assert_eq!(t.literal(), Some("127.0.0.1:7001".parse().expect("addr")));
        let t = Target::parse("ws://[::1]:7002/x").expect("valid");
        assert_eq!(t.literal(), Some("[::1]:7002".parse().expect("addr")));
        let t = Target::parse("ws://localhost").expect("valid");
        assert_eq!((t.port, t.literal()), (80, None));
        assert!(Target::parse("wss://127.0.0.1:1").is_err());
        assert!(Target::parse("http://127.0.0.1:1").is_err());
        assert!(Target::parse("").is_err());
    }
}
