//! A sequence of fabric events applied to one node through its public
//! `handle` API: state-machine fuzzing of the fabric protocol.
//!
//! The node has two fabric connections, one accepted (inbound) and one it
//! dialled (to its seed peer). The input is a list of operations, each
//! introduced by one byte whose low two bits pick it:
//!
//! - `0`, `1`: a binary frame, `u16` little-endian length then the bytes, on
//!   the dialled connection when bit 2 of the op byte is set, else on the
//!   accepted one;
//! - `2`: time passes (next byte × 100 ms, so gossip, expiry and pruning
//!   timers fire) and the node ticks;
//! - `3`: the accepted connection closes and a new one is accepted.
//!
//! After every operation the outputs are drained and checked (bounded count,
//! every fabric frame the node sends decodes, client replies are JSON) by
//! `mpreg_fuzz::drain`. Seeds are recorded conversations between two real
//! nodes, so mutations start from a completed handshake and real deltas.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mpreg_core::{ConnKind, Frame, Input};

/// Connection id the dialled (outbound) connection gets.
const DIALLED: u64 = 1;

fuzz_target!(|data: &[u8]| {
    let mut node = mpreg_fuzz::node();
    let mut now = mpreg_fuzz::start();
    let mut accepted = 2;
    let mut next_conn = 3;
    node.handle(
        now,
        Input::Connected {
            conn: DIALLED,
            url: mpreg_fuzz::PEER_URL.to_string(),
        },
    );
    node.handle(now, accept(accepted));
    mpreg_fuzz::drain(&mut node, &[DIALLED, accepted]);

    let mut rest = data;
    while let Some((&op, tail)) = rest.split_first() {
        rest = tail;
        let input = match op & 3 {
            0 | 1 => {
                let (frame, tail) = take_frame(rest);
                rest = tail;
                let conn = if op & 4 != 0 { DIALLED } else { accepted };
                Input::Frame {
                    conn,
                    frame: Frame::Binary(frame.to_vec().into()),
                }
            }
            2 => {
                let (&steps, tail) = rest.split_first().unwrap_or((&1, &[]));
                rest = tail;
                now = mpreg_fuzz::later(now, u64::from(steps) * 100);
                Input::Tick
            }
            _ => {
                node.handle(now, Input::Closed { conn: accepted });
                mpreg_fuzz::drain(&mut node, &[DIALLED, accepted]);
                accepted = next_conn;
                next_conn += 1;
                accept(accepted)
            }
        };
        node.handle(now, input);
        mpreg_fuzz::drain(&mut node, &[DIALLED, accepted]);
    }
});

fn accept(conn: u64) -> Input {
    Input::Accepted {
        conn,
        kind: ConnKind::Fabric,
        headers: Vec::new(),
        peer_addr: Some(([127, 0, 0, 1], 50000).into()),
        tls: false,
    }
}

/// Splits a `u16`-LE-length-prefixed frame off `data` (shorter when the
/// input ends early).
fn take_frame(data: &[u8]) -> (&[u8], &[u8]) {
    let (len, body) = match data {
        [lo, hi, body @ ..] => (usize::from(u16::from_le_bytes([*lo, *hi])), body),
        _ => (0, &[][..]),
    };
    body.split_at(len.min(body.len()))
}
