//! HTTP for the monitoring endpoints: the monitoring listener, and plain
//! (non-upgrade) requests on the client WebSocket port. Only bytes move
//! here: the head is parsed by `mpreg_core::monitoring::http` (httparse,
//! bounded), the answer comes from the node (`Input::Http` →
//! `Output::HttpReply`), one request per connection, `Connection: close`.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use mpreg_core::monitoring::http::{self as codec, Head, HeadError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::driver::Event;

/// A request head must arrive within this long, and the node's answer must
/// be written within it too; a slow or idle client cannot hold a task longer.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads until the request head is complete (at most
/// [`codec::MAX_HEAD_BYTES`]). Returns the bytes read (the head and anything
/// after it) and the parsed head. Not bounded in time: callers wrap it in a
/// timeout.
pub async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> io::Result<(Vec<u8>, Result<Head, HeadError>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let room = codec::MAX_HEAD_BYTES
            .saturating_sub(buf.len())
            .clamp(1, chunk.len());
        let n = stream.read(&mut chunk[..room]).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed before the request head ended",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        match codec::parse_head(&buf) {
            Ok(Some(head)) => return Ok((buf, Ok(head))),
            Ok(None) => {}
            Err(e) => return Ok((buf, Err(e))),
        }
    }
}

/// After the response, how long unread request bytes are drained before the
/// socket closes, and how many: closing with unread input would reset the
/// connection and could destroy the response before the client read it.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 1 << 20;

/// Answers one parsed request through the node and writes the response:
/// the driver gets `Event::Http` and sends back the encoded response. A
/// bad head is answered here (400 / 431) without bothering the node.
pub async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    id: u64,
    head: Result<Head, HeadError>,
    events: &mpsc::UnboundedSender<Event>,
) -> io::Result<()> {
    let bytes = match head {
        Err(e) => codec::error_response(e.status(), &e.message()),
        Ok(head) => {
            let (tx, rx) = oneshot::channel();
            if events
                .send(Event::Http {
                    id,
                    head,
                    reply: tx,
                })
                .is_err()
            {
                codec::error_response(503, "node stopped")
            } else {
                match tokio::time::timeout(HTTP_TIMEOUT, rx).await {
                    Ok(Ok(bytes)) => bytes,
                    // The node stopped (or dropped the request) meanwhile.
                    _ => codec::error_response(503, "node stopped"),
                }
            }
        }
    };
    tokio::time::timeout(HTTP_TIMEOUT, async {
        stream.write_all(&bytes).await?;
        stream.shutdown().await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "response not taken in time"))??;
    let _ = tokio::time::timeout(LINGER, async {
        let mut sink = [0u8; 4096];
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
    Ok(())
}

/// Serves the monitoring listener: every connection carries one request
/// (WebSocket upgrades included, which are answered over HTTP too).
pub fn spawn_listener(
    listener: TcpListener,
    events: mpsc::UnboundedSender<Event>,
    next_id: Arc<AtomicU64>,
    head_timeout: Duration,
) {
    tokio::spawn(async move {
        loop {
            let (mut stream, addr) = match listener.accept().await {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "monitoring accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let events = events.clone();
            tokio::spawn(async move {
                if let Err(e) = serve_one(&mut stream, addr, id, head_timeout, &events).await {
                    tracing::debug!(%addr, error = %e, "monitoring request failed");
                }
            });
        }
    });
}

/// One monitoring request. Its head must arrive within `head_timeout`
/// (`connection_handshake_timeout_seconds`, as on the client port); a
/// client that runs out of it is dropped and reported to the node, which
/// counts it.
async fn serve_one(
    stream: &mut TcpStream,
    addr: SocketAddr,
    id: u64,
    head_timeout: Duration,
    events: &mpsc::UnboundedSender<Event>,
) -> io::Result<()> {
    let Ok(read) = tokio::time::timeout(head_timeout, read_head(stream)).await else {
        let _ = events.send(Event::HandshakeTimedOut(addr));
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "request head not received",
        ));
    };
    let (_, head) = read?;
    answer(stream, id, head, events).await
}

/// A stream whose first reads return bytes already taken from it (the
/// request head read to tell HTTP from a WebSocket upgrade), so the
/// WebSocket handshake sees the request from its start.
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    /// `inner`, with `prefix` read first.
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Prefixed {
            prefix,
            pos: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.pos < this.prefix.len() {
            let n = buf.remaining().min(this.prefix.len() - this.pos);
            buf.put_slice(&this.prefix[this.pos..this.pos + n]);
            this.pos += n;
            if this.pos == this.prefix.len() {
                // Done with the prefix: free it for the connection's life.
                this.prefix = Vec::new();
                this.pos = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn prefix_is_read_before_the_stream() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b" world").await.unwrap();
        drop(a);
        let mut p = Prefixed::new(b"hello".to_vec(), b);
        let mut out = String::new();
        p.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }

    #[tokio::test]
    async fn head_is_read_in_pieces_and_bounded() {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        a.write_all(b"GET /health HT").await.unwrap();
        a.write_all(b"TP/1.1\r\nHost: x\r\n\r\nextra")
            .await
            .unwrap();
        let (bytes, head) = read_head(&mut b).await.unwrap();
        let head = head.unwrap();
        assert_eq!(head.path, "/health");
        assert_eq!(&bytes[head.len..], b"extra");

        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        let junk = vec![b'a'; codec::MAX_HEAD_BYTES + 10];
        tokio::spawn(async move {
            let _ = a.write_all(b"GET / HTTP/1.1\r\nX: ").await;
            let _ = a.write_all(&junk).await;
        });
        let (bytes, head) = read_head(&mut b).await.unwrap();
        assert_eq!(head.unwrap_err(), HeadError::TooLarge);
        assert!(bytes.len() <= codec::MAX_HEAD_BYTES);
    }
}
