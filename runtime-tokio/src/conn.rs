//! One WebSocket connection: a reader task and a writer task.

use futures_util::{SinkExt, StreamExt};
use mpreg_core::{CloseReason, ConnId, Frame};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::driver::Event;

/// What the driver sends to a connection's writer.
#[derive(Debug)]
pub enum Write {
    /// A message.
    Frame(Frame),
    /// Close with this reason after flushing earlier frames.
    Close(CloseReason),
}

/// The driver's hold on one connection's tasks.
#[derive(Debug)]
pub struct ConnHandle {
    /// The writer task's bounded queue.
    pub writer: mpsc::Sender<Write>,
    /// The reader task, aborted when the driver drops a slow connection:
    /// with both halves gone the socket closes, and the node is told by the
    /// driver instead of by the reader.
    pub reader: tokio::task::AbortHandle,
}

/// Starts the reader and writer tasks of an upgraded connection.
pub fn spawn<S>(
    conn: ConnId,
    ws: WebSocketStream<S>,
    events: mpsc::UnboundedSender<Event>,
) -> ConnHandle
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Write>(crate::WRITE_QUEUE_FRAMES);
    tokio::spawn(async move {
        while let Some(w) = rx.recv().await {
            let res = match w {
                Write::Frame(Frame::Binary(b)) => sink.send(Message::Binary(b)).await,
                Write::Frame(Frame::Text(t)) => sink.send(Message::Text(t.into())).await,
                Write::Close(reason) => {
                    let frame = CloseFrame {
                        code: CloseCode::from(reason.code),
                        reason: reason.reason.into(),
                    };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    let _ = sink.close().await;
                    break;
                }
            };
            if res.is_err() {
                break;
            }
        }
    });
    let reader = tokio::spawn(async move {
        while let Some(msg) = stream.next().await {
            let frame = match msg {
                Ok(Message::Binary(b)) => Frame::Binary(b),
                Ok(Message::Text(t)) => Frame::Text(t.as_str().to_owned()),
                // Pings are answered by tungstenite itself; pongs need nothing.
                Ok(Message::Ping(_)) | Ok(Message::Pong(_)) | Ok(Message::Frame(_)) => continue,
                Ok(Message::Close(_)) => break,
                Err(e) => {
                    tracing::debug!(conn, error = %e, "connection read ended");
                    break;
                }
            };
            if events.send(Event::Frame(conn, frame)).is_err() {
                break;
            }
        }
        let _ = events.send(Event::Closed(conn));
    });
    ConnHandle {
        writer: tx,
        reader: reader.abort_handle(),
    }
}
