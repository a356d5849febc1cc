//! The MPREG client protocol (JSON over WebSocket), as the Python client and
//! CLI speak it: `reference/client_protocol.md` §1.
//!
//! Decoding is split in two steps so that every failure can be answered as
//! precisely as possible: [`decode`] turns bytes into a [`ClientMessage`] or a
//! [`DecodeFailure`] that says whether the request id (`u`) was recovered
//! (then the caller replies with an error envelope) or not (then the caller
//! closes the connection with a reason).

use serde::Serialize;
use serde_json::{json, Map, Value};

/// Error codes MPREG produces (`client_protocol.md` §1.5).
pub mod codes {
    /// Unknown lifecycle `what`.
    pub const UNKNOWN_SERVER_MESSAGE: i64 = 1000;
    /// Unknown `fun`.
    pub const COMMAND_NOT_FOUND: i64 = 1001;
    /// Any failure inside a handler (bad payload, bad scope, ...).
    pub const EXECUTION_FAILED: i64 = 1003;
    /// Unknown `role`, or the request timed out.
    pub const INVALID_ROLE: i64 = 1004;
    /// Forbidden by namespace policy or by role.
    pub const ACCESS_DENIED: i64 = 403;
    /// Rate limited.
    pub const RATE_LIMITED: i64 = 429;
}

/// An RPC error as it goes on the wire: `{"code","message","details"}`.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// Integer code (MPREG's client rejects non-numeric codes).
    pub code: i64,
    /// Short fixed message, e.g. `Command not found`.
    pub message: String,
    /// Human-readable details, or `null`.
    pub details: Option<String>,
}

impl RpcError {
    /// Error 1001 for an unknown function.
    pub fn not_found(fun: &str) -> Self {
        RpcError {
            code: codes::COMMAND_NOT_FOUND,
            message: "Command not found".into(),
            details: Some(format!("Command not found: {fun}")),
        }
    }

    /// Error 1003: the handler rejected the request; `details` says why.
    pub fn failed(details: impl Into<String>) -> Self {
        RpcError {
            code: codes::EXECUTION_FAILED,
            message: "RPC execution failed".into(),
            details: Some(details.into()),
        }
    }

    /// Error 1004 for an unknown `role`.
    pub fn invalid_role(role: &str) -> Self {
        RpcError {
            code: codes::INVALID_ROLE,
            message: format!("Invalid RPC request role: {role}"),
            details: None,
        }
    }

    /// Error 429 `discovery_rate_limited`.
    pub fn rate_limited(details: impl Into<String>) -> Self {
        RpcError {
            code: codes::RATE_LIMITED,
            message: "discovery_rate_limited".into(),
            details: Some(details.into()),
        }
    }

    /// Error 403 `discovery_access_denied`.
    pub fn access_denied(details: impl Into<String>) -> Self {
        RpcError {
            code: codes::ACCESS_DENIED,
            message: "discovery_access_denied".into(),
            details: Some(details.into()),
        }
    }

    fn to_json(&self) -> Value {
        json!({"code": self.code, "message": self.message, "details": self.details})
    }
}

/// One command of an `rpc` request.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcCommand {
    /// Result key in `r`.
    pub name: String,
    /// The RPC to run.
    pub fun: String,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments (override payload fields).
    pub kwargs: Map<String, Value>,
    /// `target_cluster`, when set.
    pub target_cluster: Option<String>,
}

impl RpcCommand {
    /// The request payload as MPREG's server builds it: `args[0]` (an object,
    /// or absent/null for "no payload"), then every `kwargs` key overrides.
    /// A non-object `args[0]` is a type error for payload-taking RPCs.
    pub fn payload(&self) -> Result<Map<String, Value>, RpcError> {
        let mut payload = match self.args.first() {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(map)) => map.clone(),
            Some(other) => {
                return Err(RpcError::failed(format!(
                    "{}: payload must be a JSON object, got {}",
                    self.fun,
                    json_type_name(other)
                )))
            }
        };
        for (k, v) in &self.kwargs {
            payload.insert(k.clone(), v.clone());
        }
        Ok(payload)
    }
}

/// A pub/sub subscription request.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscribe {
    /// Request id; the ack's `operation_id`.
    pub u: String,
    /// Client-chosen subscription id.
    pub subscription_id: String,
    /// AMQP-style topic patterns.
    pub patterns: Vec<String>,
    /// Whether the client asked for backlog replay.
    pub get_backlog: bool,
    /// The subscription's `backlog_seconds` when non-zero: replay covers at
    /// most this many seconds (MPREG: `min(store_forward_seconds,
    /// backlog_seconds)`, nothing when that is not positive).
    pub backlog_seconds: Option<f64>,
}

/// A decoded client message.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    /// `role: "rpc"`.
    Rpc {
        /// Request id.
        u: String,
        /// Commands (the typed client always sends one).
        cmds: Vec<RpcCommand>,
    },
    /// `role: "pubsub-subscribe"`.
    Subscribe(Subscribe),
    /// `role: "pubsub-unsubscribe"`.
    Unsubscribe {
        /// Request id.
        u: String,
        /// The subscription to drop.
        subscription_id: String,
    },
    /// `role: "pubsub-publish"`.
    Publish {
        /// Request id.
        u: String,
        /// Topic.
        topic: String,
        /// Payload (any JSON).
        payload: Value,
        /// Headers object.
        headers: Map<String, Value>,
        /// Message id.
        message_id: Option<String>,
    },
    /// `role: "server"`: a Python MPREG peer's lifecycle message.
    Server {
        /// Request id.
        u: String,
        /// `STATUS`, `GOODBYE`, ...
        what: String,
        /// The whole `server` object.
        body: Map<String, Value>,
    },
}

/// Why a client frame could not be decoded.
#[derive(Debug, Clone, PartialEq)]
pub enum DecodeFailure {
    /// The request id is known: answer with this error envelope.
    Reply {
        /// Request id to echo (`"unknown"` when absent but the frame was
        /// otherwise an object with a role).
        u: String,
        /// The error.
        error: RpcError,
    },
    /// Nothing to reply to: close the connection with this reason.
    Close(String),
}

/// Decodes one client frame.
pub fn decode(bytes: &[u8]) -> Result<ClientMessage, DecodeFailure> {
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| DecodeFailure::Close(format!("malformed JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(DecodeFailure::Close(format!(
            "expected a JSON object, got {}",
            json_type_name(&value)
        )));
    };
    let u = match obj.get("u") {
        Some(Value::String(u)) if !u.is_empty() => u.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(DecodeFailure::Close("message has no request id `u`".into()))
        }
        Some(other) => {
            return Err(DecodeFailure::Close(format!(
                "request id `u` must be a string, got {}",
                json_type_name(other)
            )))
        }
    };
    let role = match obj.get("role") {
        Some(Value::String(r)) => r.as_str(),
        _ => {
            return Err(DecodeFailure::Reply {
                u,
                error: RpcError::invalid_role("<missing>"),
            })
        }
    };
    let reply = |u: &str, details: String| DecodeFailure::Reply {
        u: u.to_string(),
        error: RpcError::failed(details),
    };
    match role {
        "rpc" => {
            let cmds = match obj.get("cmds") {
                Some(Value::Array(cmds)) if !cmds.is_empty() => cmds,
                _ => {
                    return Err(reply(
                        &u,
                        "invalid rpc request: `cmds` must be a non-empty array".into(),
                    ))
                }
            };
            let mut out = Vec::with_capacity(cmds.len());
            for (i, cmd) in cmds.iter().enumerate() {
                out.push(
                    decode_command(cmd)
                        .map_err(|d| reply(&u, format!("invalid rpc request: cmds[{i}]: {d}")))?,
                );
            }
            Ok(ClientMessage::Rpc { u, cmds: out })
        }
        "pubsub-subscribe" => {
            let sub = obj
                .get("subscription")
                .and_then(Value::as_object)
                .ok_or_else(|| {
                    reply(&u, "pubsub-subscribe needs a `subscription` object".into())
                })?;
            let subscription_id = str_field(sub, "subscription_id")
                .ok_or_else(|| reply(&u, "subscription.subscription_id must be a string".into()))?;
            let mut patterns = Vec::new();
            if let Some(Value::Array(items)) = sub.get("patterns") {
                for p in items {
                    match p {
                        Value::String(s) => patterns.push(s.clone()),
                        Value::Object(o) => match str_field(o, "pattern") {
                            Some(s) => patterns.push(s),
                            None => {
                                return Err(reply(
                                    &u,
                                    "subscription.patterns[].pattern must be a string".into(),
                                ))
                            }
                        },
                        _ => {
                            return Err(reply(&u, "subscription.patterns must hold objects".into()))
                        }
                    }
                }
            }
            if patterns.is_empty() {
                return Err(reply(&u, "subscription.patterns must not be empty".into()));
            }
            let get_backlog = sub
                .get("get_backlog")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let backlog_seconds = sub
                .get("backlog_seconds")
                .and_then(Value::as_f64)
                .filter(|s| s.is_finite() && *s != 0.0);
            Ok(ClientMessage::Subscribe(Subscribe {
                u,
                subscription_id,
                patterns,
                get_backlog,
                backlog_seconds,
            }))
        }
        "pubsub-unsubscribe" => {
            let subscription_id = str_field(&obj, "subscription_id")
                .ok_or_else(|| reply(&u, "pubsub-unsubscribe needs `subscription_id`".into()))?;
            Ok(ClientMessage::Unsubscribe { u, subscription_id })
        }
        "pubsub-publish" => {
            let msg = obj
                .get("message")
                .and_then(Value::as_object)
                .ok_or_else(|| reply(&u, "pubsub-publish needs a `message` object".into()))?;
            let topic = str_field(msg, "topic")
                .ok_or_else(|| reply(&u, "message.topic must be a string".into()))?;
            Ok(ClientMessage::Publish {
                u,
                topic,
                payload: msg.get("payload").cloned().unwrap_or(Value::Null),
                headers: msg
                    .get("headers")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default(),
                message_id: str_field(msg, "message_id"),
            })
        }
        "server" => {
            let body = obj
                .get("server")
                .and_then(Value::as_object)
                .cloned()
                .ok_or_else(|| reply(&u, "server message needs a `server` object".into()))?;
            let what = str_field(&body, "what").unwrap_or_default();
            Ok(ClientMessage::Server { u, what, body })
        }
        other => Err(DecodeFailure::Reply {
            u,
            error: RpcError::invalid_role(other),
        }),
    }
}

fn decode_command(cmd: &Value) -> Result<RpcCommand, String> {
    let Value::Object(c) = cmd else {
        return Err(format!("expected an object, got {}", json_type_name(cmd)));
    };
    let fun = str_field(c, "fun").ok_or("`fun` must be a string")?;
    let name = match c.get("name") {
        Some(Value::String(n)) if !n.is_empty() => n.clone(),
        _ => fun.clone(),
    };
    let args = match c.get("args") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(other) => {
            return Err(format!(
                "`args` must be an array, got {}",
                json_type_name(other)
            ))
        }
    };
    let kwargs = match c.get("kwargs") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(k)) => k.clone(),
        Some(other) => {
            return Err(format!(
                "`kwargs` must be an object, got {}",
                json_type_name(other)
            ))
        }
    };
    Ok(RpcCommand {
        name,
        fun,
        args,
        kwargs,
        target_cluster: str_field(c, "target_cluster"),
    })
}

fn str_field(obj: &Map<String, Value>, key: &str) -> Option<String> {
    match obj.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

/// The JSON type name used in error messages.
pub fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The results of one request: command name → its result, in name order
/// (as a JSON object of them sorts). Results are shared so an answer held
/// by the resolver cache is serialised where it lies, never copied.
pub type Results = std::collections::BTreeMap<String, std::sync::Arc<Value>>;

/// Encodes a successful RPC response. `results` maps command names to
/// results; MPREG's client unwraps `r` when it has exactly one key.
pub fn encode_result(u: &str, results: &Results) -> Vec<u8> {
    /// The envelope, fields in the order a JSON object of them sorts
    /// (what MPREG's and our earlier encoders wrote).
    #[derive(Serialize)]
    struct Response<'a> {
        error: Option<()>,
        execution_summary: Option<()>,
        intermediate_results: [(); 0],
        r: &'a Results,
        role: &'static str,
        u: &'a str,
    }
    // Serialising into a Vec cannot fail: every map key is a string.
    serde_json::to_vec(&Response {
        error: None,
        execution_summary: None,
        intermediate_results: [],
        r: results,
        role: "rpc-response",
        u,
    })
    .unwrap_or_default()
}

/// Encodes an error response (`r` is null).
pub fn encode_error(u: &str, error: &RpcError) -> Vec<u8> {
    to_bytes(&json!({
        "role": "rpc-response",
        "u": u,
        "r": null,
        "error": error.to_json(),
        "intermediate_results": [],
        "execution_summary": null,
    }))
}

/// Encodes a reply to a Python peer's lifecycle message (`r` is a string).
pub fn encode_server_reply(u: &str, r: &str) -> Vec<u8> {
    to_bytes(&json!({"role": "rpc-response", "u": u, "r": r, "error": null}))
}

/// Encodes a `pubsub-ack`.
pub fn encode_ack(operation_id: &str, success: bool, error: Option<&str>) -> Vec<u8> {
    to_bytes(&json!({
        "role": "pubsub-ack",
        "operation_id": operation_id,
        "success": success,
        "error": error,
        "u": format!("ack_{operation_id}"),
    }))
}

/// A message delivered to subscribers.
#[derive(Debug, Clone, PartialEq)]
pub struct PubSubMessage {
    /// Concrete topic.
    pub topic: String,
    /// Payload.
    pub payload: Value,
    /// Wall-clock seconds.
    pub timestamp: f64,
    /// Unique message id.
    pub message_id: String,
    /// Publisher (the node's `name` setting for node-originated messages).
    pub publisher: String,
    /// Headers.
    pub headers: Map<String, Value>,
}

/// Encodes a `pubsub-notification` for one subscription.
pub fn encode_notification(subscription_id: &str, msg: &PubSubMessage) -> Vec<u8> {
    to_bytes(&json!({
        "role": "pubsub-notification",
        "u": format!("notification_{}_{}", msg.message_id, subscription_id),
        "subscription_id": subscription_id,
        "message": {
            "topic": msg.topic,
            "payload": msg.payload,
            "timestamp": msg.timestamp,
            "message_id": msg.message_id,
            "publisher": msg.publisher,
            "headers": msg.headers,
            "routing_path": null,
            "current_hop": null,
        },
    }))
}

fn to_bytes(v: &Value) -> Vec<u8> {
    // Serialising a `Value` cannot fail: every map key is a string.
    serde_json::to_vec(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAPTURED: &str = r#"{"role":"rpc","cmds":[{"name":"catalog_query","fun":"catalog_query","args":[{"entry_type":"nodes"}],"kwargs":{},"locs":[],"function_id":null,"version_constraint":null,"target_cluster":null,"routing_topic":null}],"u":"01JD3K7Q6Z8T1V2W3X4Y5Z6A7B","return_intermediate_results":false,"intermediate_result_callback_topic":null,"include_execution_summary":false,"debug_mode":false}"#;

    #[test]
    fn decodes_the_python_clients_frame() {
        let ClientMessage::Rpc { u, cmds } = decode(CAPTURED.as_bytes()).unwrap() else {
            panic!("expected rpc")
        };
        assert_eq!(u, "01JD3K7Q6Z8T1V2W3X4Y5Z6A7B");
        assert_eq!(cmds.len(), 1);
        assert_eq!(cmds[0].fun, "catalog_query");
        let payload = cmds[0].payload().unwrap();
        assert_eq!(payload["entry_type"], "nodes");
    }

    #[test]
    fn kwargs_override_args_payload() {
        let frame = r#"{"role":"rpc","u":"x","cmds":[{"fun":"catalog_query","args":[{"entry_type":"nodes","limit":5}],"kwargs":{"limit":7}}]}"#;
        let ClientMessage::Rpc { cmds, .. } = decode(frame.as_bytes()).unwrap() else {
            panic!()
        };
        let p = cmds[0].payload().unwrap();
        assert_eq!(p["limit"], 7);
        assert_eq!(p["entry_type"], "nodes");
        assert_eq!(cmds[0].name, "catalog_query", "name defaults to fun");
    }

    #[test]
    fn non_object_payload_is_a_1003() {
        let cmd = RpcCommand {
            name: "catalog_query".into(),
            fun: "catalog_query".into(),
            args: vec![json!(5)],
            kwargs: Map::new(),
            target_cluster: None,
        };
        assert_eq!(cmd.payload().unwrap_err().code, codes::EXECUTION_FAILED);
    }

    #[test]
    fn bad_frames_close_or_reply() {
        assert!(matches!(decode(b"{not json"), Err(DecodeFailure::Close(_))));
        assert!(matches!(decode(b"[1,2]"), Err(DecodeFailure::Close(_))));
        assert!(matches!(
            decode(br#"{"role":"rpc","cmds":[]}"#),
            Err(DecodeFailure::Close(_))
        ));
        match decode(br#"{"role":"nope","u":"a"}"#) {
            Err(DecodeFailure::Reply { u, error }) => {
                assert_eq!(u, "a");
                assert_eq!(error.code, 1004);
                assert_eq!(error.message, "Invalid RPC request role: nope");
            }
            other => panic!("{other:?}"),
        }
        match decode(br#"{"role":"rpc","u":"a","cmds":"x"}"#) {
            Err(DecodeFailure::Reply { error, .. }) => assert_eq!(error.code, 1003),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn response_envelope_shape() {
        let mut r = Results::new();
        r.insert("echo".into(), json!("hi").into());
        let bytes = encode_result("u1", &r);
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            r#"{"error":null,"execution_summary":null,"intermediate_results":[],"r":{"echo":"hi"},"role":"rpc-response","u":"u1"}"#
        );
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["u"], "u1");
        assert_eq!(v["r"]["echo"], "hi");
        assert!(v["error"].is_null());
        let e: Value =
            serde_json::from_slice(&encode_error("u2", &RpcError::not_found("zz"))).unwrap();
        assert_eq!(e["error"]["code"], 1001);
        assert_eq!(e["error"]["details"], "Command not found: zz");
        assert!(e["r"].is_null());
    }

    #[test]
    fn subscribe_and_ack() {
        let frame = r#"{"role":"pubsub-subscribe","u":"S1","subscription":{"subscription_id":"X","patterns":[{"pattern":"mpreg.discovery.delta.svc","exact_match":true}],"subscriber":"c","created_at":1.0,"get_backlog":false,"backlog_seconds":300}}"#;
        let ClientMessage::Subscribe(s) = decode(frame.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(s.subscription_id, "X");
        assert_eq!(s.patterns, vec!["mpreg.discovery.delta.svc".to_string()]);
        assert_eq!(s.backlog_seconds, Some(300.0));
        for (raw, want) in [("0", None), ("-5", Some(-5.0)), ("\"x\"", None)] {
            let frame = format!(
                r#"{{"role":"pubsub-subscribe","u":"S2","subscription":{{"subscription_id":"Y","patterns":[{{"pattern":"t","exact_match":true}}],"get_backlog":true,"backlog_seconds":{raw}}}}}"#
            );
            let ClientMessage::Subscribe(s) = decode(frame.as_bytes()).unwrap() else {
                panic!()
            };
            assert_eq!(s.backlog_seconds, want, "{raw}");
        }
        let ack: Value = serde_json::from_slice(&encode_ack("S1", true, None)).unwrap();
        assert_eq!(ack["operation_id"], "S1");
        assert_eq!(ack["role"], "pubsub-ack");
        assert_eq!(ack["success"], true);
    }
}
