//! # mpreg-client
//!
//! A small async client for the MPREG client protocol: one WebSocket, JSON
//! request envelopes exactly as MPREG's Python client sends them, responses
//! matched by request id, and a timeout on every call (MPREG's client waits
//! forever by default; a discovery tool must not).
//!
//! [`Client`] talks to one node. [`FailoverClient`] (module [`failover`])
//! rotates over several ingress URLs, seeds plus URLs learned from
//! `cluster_map_v2` and `summary_query`, when a node is down.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

pub mod failover;
pub mod tls;

pub use failover::{
    BackoffPolicy, Endpoint, Endpoints, FailoverClient, FailoverOptions, Origin, Served,
};

/// Default per-call timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// What can go wrong talking to a node.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not a usable ws:// or wss:// URL.
    #[error("invalid URL {url}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// Why.
        reason: String,
    },
    /// Could not connect.
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The URL given.
        url: String,
        /// Why (connection refused, handshake failure...).
        reason: String,
    },
    /// The CA file for `wss://` could not be used.
    #[error("cannot use TLS CA file {path}: {reason}")]
    Tls {
        /// The file given.
        path: String,
        /// Why.
        reason: String,
    },
    /// No answer in time.
    #[error("no reply from {url} within {timeout:?}")]
    Timeout {
        /// The URL.
        url: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The node answered with an error envelope.
    #[error("RPC error {code}: {message}{}", details.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Rpc {
        /// MPREG error code (429, 403, 1001, 1003, 1004...).
        code: i64,
        /// Error message.
        message: String,
        /// Details, when given.
        details: Option<String>,
    },
    /// The node sent something unexpected.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The connection broke (closed by the node, reset, send failed): the
    /// node may be gone, so [`FailoverClient`] tries another URL.
    #[error("connection lost: {0}")]
    Disconnected(String),
    /// [`FailoverClient`]: no URL answered within the call's bounds.
    #[error("no node reachable (tried {}): {last}", if tried.is_empty() { "none".to_string() } else { tried.join(", ") })]
    Unavailable {
        /// URLs tried, in order.
        tried: Vec<String>,
        /// The last failure.
        last: String,
    },
}

/// A fresh ULID-format request id: millisecond time plus 80 random bits
/// from the process's hash seed and a counter (unique per process).
pub fn fresh_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(now.as_nanos());
    let random =
        (u128::from(h.finish()) << 16) | u128::from(COUNTER.load(Ordering::Relaxed) as u16);
    ulid::Ulid::from_parts(now.as_millis() as u64, random).to_string()
}

/// Credentials sent in the WebSocket handshake, and the servers a `wss://`
/// connection trusts.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    /// `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// `X-API-Key: <key>`.
    pub api_key: Option<String>,
    /// TLS for `wss://` URLs; `None` trusts the system's root certificates
    /// (see [`tls::trust_ca_file`] for a private CA).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// One connection to a node.
pub struct Client {
    url: String,
    timeout: Duration,
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Non-RPC messages (pub/sub notifications) received while waiting for a
    /// reply, in arrival order.
    pending: Vec<Value>,
}

impl Client {
    /// Connects to `url` (`ws://host:port`, or `wss://` for a node with
    /// client TLS).
    pub async fn connect(
        url: &str,
        timeout: Duration,
        creds: &Credentials,
    ) -> Result<Client, ClientError> {
        let mut request = url.into_client_request().map_err(|e| ClientError::Url {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
        let headers = request.headers_mut();
        if let Some(t) = &creds.token {
            let v =
                HeaderValue::from_str(&format!("Bearer {t}")).map_err(|_| ClientError::Url {
                    url: url.to_string(),
                    reason: "token is not a valid header value".into(),
                })?;
            headers.insert("authorization", v);
        }
        if let Some(k) = &creds.api_key {
            let v = HeaderValue::from_str(k).map_err(|_| ClientError::Url {
                url: url.to_string(),
                reason: "api key is not a valid header value".into(),
            })?;
            headers.insert("x-api-key", v);
        }
        let connector = creds.tls.clone().map(Connector::Rustls);
        let connect =
            tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector);
        let (ws, _) = tokio::time::timeout(timeout, connect)
            .await
            .map_err(|_| ClientError::Timeout {
                url: url.to_string(),
                timeout,
            })?
            .map_err(|e| ClientError::Connect {
                url: url.to_string(),
                reason: tls::with_hint(e.to_string()),
            })?;
        Ok(Client {
            url: url.to_string(),
            timeout,
            ws,
            pending: Vec::new(),
        })
    }

    /// The URL this connection was opened to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Changes the bound on waiting for each later reply.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Calls `fun` with positional `args` and keyword `kwargs`; returns the
    /// unwrapped result (`r[fun]`).
    pub async fn call(
        &mut self,
        fun: &str,
        args: Vec<Value>,
        kwargs: Map<String, Value>,
    ) -> Result<Value, ClientError> {
        let u = fresh_id();
        let frame = json!({
            "role": "rpc",
            "cmds": [{
                "name": fun, "fun": fun, "args": args, "kwargs": kwargs, "locs": [],
                "function_id": null, "version_constraint": null, "target_cluster": null, "routing_topic": null,
            }],
            "u": u,
            "return_intermediate_results": false,
            "intermediate_result_callback_topic": null,
            "include_execution_summary": false,
            "debug_mode": false,
        });
        let reply = self.request(&u, frame).await?;
        if let Some(err) = reply.get("error").filter(|e| !e.is_null()) {
            return Err(ClientError::Rpc {
                code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
                message: err
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                details: err
                    .get("details")
                    .and_then(|d| d.as_str().map(str::to_string)),
            });
        }
        match reply.get("r") {
            Some(Value::Object(r)) if r.len() == 1 => {
                Ok(r.values().next().cloned().unwrap_or(Value::Null))
            }
            Some(other) => Ok(other.clone()),
            None => Err(ClientError::Protocol("reply has no `r`".into())),
        }
    }

    /// Sends a raw message and waits for the reply whose `u` (or, for acks,
    /// `operation_id`) equals `u`.
    pub async fn request(&mut self, u: &str, message: Value) -> Result<Value, ClientError> {
        let bytes =
            serde_json::to_vec(&message).map_err(|e| ClientError::Protocol(e.to_string()))?;
        self.ws
            .send(Message::Binary(bytes.into()))
            .await
            .map_err(|e| ClientError::Disconnected(format!("send failed: {e}")))?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .map_err(|_| ClientError::Timeout {
                    url: self.url.clone(),
                    timeout: self.timeout,
                })?;
            let msg = match next {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    return Err(ClientError::Disconnected(format!("connection failed: {e}")))
                }
                None => {
                    return Err(ClientError::Disconnected(
                        "connection closed by the node".into(),
                    ))
                }
            };
            let data = match msg {
                Message::Binary(b) => b.to_vec(),
                Message::Text(t) => t.as_bytes().to_vec(),
                Message::Close(frame) => {
                    let why = frame
                        .map(|f| format!("{} {}", u16::from(f.code), f.reason))
                        .unwrap_or_default();
                    return Err(ClientError::Disconnected(format!(
                        "connection closed by the node: {why}"
                    )));
                }
                _ => continue,
            };
            let value: Value = serde_json::from_slice(&data)
                .map_err(|e| ClientError::Protocol(format!("bad JSON from node: {e}")))?;
            let matches = value.get("u").and_then(Value::as_str) == Some(u)
                || value.get("operation_id").and_then(Value::as_str) == Some(u);
            if matches {
                return Ok(value);
            }
            self.pending.push(value);
        }
    }

    /// Waits for the next unsolicited message (a pub/sub notification).
    pub async fn next_message(&mut self, timeout: Duration) -> Result<Option<Value>, ClientError> {
        if !self.pending.is_empty() {
            return Ok(Some(self.pending.remove(0)));
        }
        match tokio::time::timeout(timeout, self.ws.next()).await {
            Err(_) => Ok(None),
            Ok(None) => Err(ClientError::Disconnected(
                "connection closed by the node".into(),
            )),
            Ok(Some(Err(e))) => Err(ClientError::Disconnected(e.to_string())),
            Ok(Some(Ok(Message::Binary(b)))) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| ClientError::Protocol(e.to_string())),
            Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str(t.as_str())
                .map(Some)
                .map_err(|e| ClientError::Protocol(e.to_string())),
            Ok(Some(Ok(_))) => Ok(None),
        }
    }

    /// Closes the connection politely.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
