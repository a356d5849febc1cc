//! The WebSocket upgrade rules, identical to the tokio runtime's so a node
//! behaves the same whichever runtime drives it:
//!
//! - an inbound upgrade that offers the `mpreg-fabric.v1` subprotocol is a
//!   fabric peer (and the reply names the subprotocol), anything else is an
//!   MPREG client; the request headers reach the node lower-cased;
//! - an outbound dial offers the subprotocol and fails unless the server
//!   agreed to it (so dialling something that is not an mpreg-rs node is a
//!   dial failure, not a client connection that speaks the wrong protocol);
//! - message and frame limits sit at twice the node's own limits, so the
//!   node itself sees, counts and answers oversized messages.

use std::cell::RefCell;
use std::rc::Rc;

use mpreg_core::wire::fabric::SUBPROTOCOL;
use mpreg_core::{ConnKind, Settings};
use tungstenite::client::IntoClientRequest;
use tungstenite::handshake::client::{Request as ClientRequest, Response as ClientResponse};
use tungstenite::handshake::server::{Callback, ErrorResponse, Request, Response};
use tungstenite::http::HeaderValue;
use tungstenite::protocol::WebSocketConfig;

/// The tungstenite configuration every connection of a node uses.
pub(crate) fn ws_config(settings: &Settings) -> WebSocketConfig {
    let largest = usize::try_from(
        settings
            .client_max_message_bytes
            .max(settings.fabric_max_frame_bytes),
    )
    .unwrap_or(usize::MAX);
    // tungstenite's own bound sits above the node's limits so the node sees
    // (and counts, and answers) oversized messages itself.
    let max = largest.saturating_mul(2);
    let defaults = WebSocketConfig::default();
    // Unsent bytes a connection may hold: one message of the largest size
    // the node deals in (never less than the crate-wide floor) on top of a
    // normal write batch, with room for frame headers. Beyond it the peer is
    // too slow.
    let max_unsent = defaults
        .write_buffer_size
        .saturating_mul(2)
        .saturating_add(largest.max(crate::WRITE_BUFFER_BYTES));
    defaults
        .max_message_size(Some(max))
        .max_frame_size(Some(max))
        .max_write_buffer_size(max_unsent)
}

/// What the server side of a handshake learned from the upgrade request.
#[derive(Debug)]
pub(crate) struct Negotiated {
    /// Client or fabric, from the offered subprotocols.
    pub kind: ConnKind,
    /// Request headers, names lower-cased.
    pub headers: Vec<(String, String)>,
}

/// The server handshake callback: records the request and picks the
/// subprotocol. tungstenite consumes the callback inside the handshake, so
/// the result travels back through a shared slot the connection keeps.
pub(crate) struct Negotiate(pub Rc<RefCell<Option<Negotiated>>>);

impl Callback for Negotiate {
    fn on_request(self, req: &Request, mut resp: Response) -> Result<Response, ErrorResponse> {
        let headers = req
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let wants_fabric = req
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim() == SUBPROTOCOL);
        let kind = if wants_fabric {
            resp.headers_mut().insert(
                "sec-websocket-protocol",
                HeaderValue::from_static(SUBPROTOCOL),
            );
            ConnKind::Fabric
        } else {
            ConnKind::Client
        };
        *self.0.borrow_mut() = Some(Negotiated { kind, headers });
        Ok(resp)
    }
}

/// The upgrade request of an outbound fabric dial to `url`.
pub(crate) fn client_request(url: &str) -> Result<ClientRequest, String> {
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    Ok(request)
}

/// Whether the server agreed to speak the fabric subprotocol.
pub(crate) fn agreed(response: &ClientResponse) -> bool {
    response
        .headers()
        .get("sec-websocket-protocol")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == SUBPROTOCOL)
}

/// The dial error for a server that did not agree (same text as tokio's).
pub(crate) fn not_agreed(url: &str) -> String {
    format!("{url} did not accept the {SUBPROTOCOL} subprotocol (not an mpreg-rs node?)")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_bounds_follow_the_settings() {
        let s = Settings::default();
        let c = ws_config(&s);
        let largest = s.client_max_message_bytes.max(s.fabric_max_frame_bytes) as usize;
        assert_eq!(c.max_message_size, Some(2 * largest));
        assert!(c.max_write_buffer_size > c.write_buffer_size + largest);
    }

    #[test]
    fn request_offers_the_subprotocol() {
        let r = client_request("ws://127.0.0.1:9/").expect("valid url");
        assert_eq!(
            r.headers()
                .get("sec-websocket-protocol")
                .map(|v| v.as_bytes()),
            Some(SUBPROTOCOL.as_bytes())
        );
        assert!(client_request("not a url").is_err());
    }
}
