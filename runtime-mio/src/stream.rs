//! The byte stream under an inbound or outbound connection: a plain socket,
//! or a TLS session over one (`wss://` clients, `client_tls_cert_file`).
//!
//! The connection state machine needs one thing a TLS session does not
//! offer: peeking. It waits for a complete request head without consuming
//! it, so the WebSocket handshake (or the HTTP answer) reads the same bytes.
//! A TLS stream emulates that by keeping the plaintext it read while
//! sniffing and serving it to the next reads before anything else.
//!
//! rustls is driven without blocking: its `Stream` adapter does the TLS
//! handshake, record reading and writing inside `read`, `write` and `flush`,
//! and a full or empty socket comes back as `WouldBlock` like on a plain
//! socket, which every caller already handles.

use std::io::{self, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};

/// A plain or TLS connection.
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

/// A server-side TLS session over a socket, with the plaintext a sniff read
/// ahead and the next reads get first.
pub(crate) struct TlsStream {
    tls: ServerConnection,
    tcp: TcpStream,
    ahead: Vec<u8>,
    /// How much of `ahead` was read again.
    pos: usize,
}

impl Stream {
    /// Starts a TLS session on `tcp` (nothing is read or written yet).
    pub(crate) fn tls(config: Arc<ServerConfig>, tcp: TcpStream) -> Result<Self, rustls::Error> {
        Ok(Stream::Tls(Box::new(TlsStream {
            tls: ServerConnection::new(config)?,
            tcp,
            ahead: Vec::new(),
            pos: 0,
        })))
    }

    /// Whether this is a TLS session.
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Stream::Tls(_))
    }

    /// The socket underneath.
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(s) => &s.tcp,
        }
    }

    /// Copies the bytes available so far into `buf` without consuming them.
    /// `Ok(0)` means the peer closed before sending anything;
    /// `WouldBlock` that nothing arrived yet.
    pub(crate) fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.peek(buf),
            Stream::Tls(s) => s.peek(buf),
        }
    }

    /// Ends our sending side (after a TLS close alert): the HTTP answer
    /// is complete.
    pub(crate) fn shutdown_write(&mut self) {
        if let Stream::Tls(s) = self {
            s.tls.send_close_notify();
            let _ = s.tls.write_tls(&mut s.tcp);
        }
        let _ = self.tcp().shutdown(std::net::Shutdown::Write);
    }
}

impl TlsStream {
    fn peek(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len();
        let mut closed = false;
        while self.ahead.len() < want {
            let mut chunk = [0u8; 4096];
            let room = (want - self.ahead.len()).min(chunk.len());
            match self.session().read(&mut chunk[..room]) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => self.ahead.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && !self.ahead.is_empty() => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let n = self.ahead.len().min(want);
        buf[..n].copy_from_slice(&self.ahead[..n]);
        if n == 0 && !closed {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    fn session(&mut self) -> rustls::Stream<'_, ServerConnection, TcpStream> {
        rustls::Stream::new(&mut self.tls, &mut self.tcp)
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(s) => {
                if s.pos < s.ahead.len() {
                    let n = buf.len().min(s.ahead.len() - s.pos);
                    buf[..n].copy_from_slice(&s.ahead[s.pos..s.pos + n]);
                    s.pos += n;
                    if s.pos == s.ahead.len() {
                        // Done with the sniffed bytes: free them for the
                        // connection's life.
                        s.ahead = Vec::new();
                        s.pos = 0;
                    }
                    return Ok(n);
                }
                s.session().read(buf)
            }
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            Stream::Tls(s) => s.session().write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            Stream::Tls(s) => s.session().flush(),
        }
    }
}
