//! Any bytes as one fabric frame (version header + CBOR message).
//!
//! Decoding must reject junk cleanly, and a frame that decodes must survive
//! a round trip: encoding the decoded message and decoding that again gives
//! the same bytes on re-encoding (compared as bytes, since NaN floats are
//! legal on the wire and never equal themselves).
#![no_main]
use libfuzzer_sys::fuzz_target;
use mpreg_core::wire::fabric;

/// A frame bound like a node's (`fabric_max_frame_bytes`); longer inputs
/// exercise the size check.
const MAX: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(frame) = fabric::decode(data, MAX) else {
        return;
    };
    let encoded = fabric::encode(&frame.msg);
    let again = fabric::decode(&encoded, usize::MAX);
    assert!(again.is_ok(), "re-encoded frame does not decode: {again:?}");
    if let Ok(again) = again {
        assert_eq!(again.v, fabric::PROTOCOL_VERSION);
        assert!(
            fabric::encode(&again.msg) == encoded,
            "fabric round trip changed the message"
        );
    }
});
