//! Any bytes as one MPREG client frame (the JSON envelope and, through it,
//! every discovery, registration and policy request payload).
//!
//! The decoder must reject junk cleanly, and a node fed the frame on a
//! client connection (as a text frame when it is UTF-8, else binary) must
//! answer without panicking, with a bounded number of outputs, each reply a
//! JSON object (checked by `mpreg_fuzz::drain`). Clean rejection: a frame
//! that does not decode is answered with an error envelope echoing its
//! request id when it has one, else the connection is closed; an RPC
//! request is always answered with its request id. The seeds are the golden
//! captures' requests and one request per RPC, so mutations reach every
//! handler's payload parsing rather than stopping at the envelope.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mpreg_core::wire::client::{self, ClientMessage, DecodeFailure};
use mpreg_core::{ConnKind, Frame, Input, Output};

const CONN: u64 = 1;

fuzz_target!(|data: &[u8]| {
    let decoded = client::decode(data);
    if let Ok(ClientMessage::Rpc { cmds, .. }) = &decoded {
        for cmd in cmds {
            let _ = cmd.payload();
        }
    }

    let mut node = mpreg_fuzz::node();
    let now = mpreg_fuzz::start();
    node.handle(
        now,
        Input::Accepted {
            conn: CONN,
            kind: ConnKind::Client,
            headers: Vec::new(),
            peer_addr: Some(([127, 0, 0, 1], 40000).into()),
            tls: false,
        },
    );
    mpreg_fuzz::drain(&mut node, &[]);
    let frame = match std::str::from_utf8(data) {
        Ok(text) => Frame::Text(text.to_string()),
        Err(_) => Frame::Binary(data.to_vec().into()),
    };
    node.handle(now, Input::Frame { conn: CONN, frame });
    let outputs = mpreg_fuzz::drain(&mut node, &[]);
    let answered = |u: &str| outputs.iter().any(|out| replies_to(out, u));
    match &decoded {
        Ok(ClientMessage::Rpc { u, .. }) | Err(DecodeFailure::Reply { u, .. }) => {
            assert!(answered(u), "request {u:?} got no reply");
        }
        Err(DecodeFailure::Close(_)) => {
            let closed = outputs
                .iter()
                .any(|out| matches!(out, Output::Close { conn: CONN, .. }));
            assert!(closed, "undecodable frame neither answered nor closed");
        }
        Ok(_) => {}
    }
    // Whatever the request started (a watch, a lease, a subscription) must
    // survive time passing and the client leaving.
    let now = mpreg_fuzz::later(now, 60_000);
    node.handle(now, Input::Tick);
    mpreg_fuzz::drain(&mut node, &[]);
    node.handle(now, Input::Closed { conn: CONN });
    mpreg_fuzz::drain(&mut node, &[]);
});

/// Whether `out` is a reply on the client connection carrying request id `u`.
fn replies_to(out: &Output, u: &str) -> bool {
    let Output::Send { conn: CONN, frame } = out else {
        return false;
    };
    serde_json::from_slice::<serde_json::Value>(frame.as_bytes()).is_ok_and(|reply| reply["u"] == u)
}
