//! Any bytes as an MPREG client frame: decoding must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mpreg_core::wire::client::ClientMessage::Rpc { cmds, .. }) = mpreg_core::wire::client::decode(data) {
        for cmd in cmds {
            let _ = cmd.payload();
        }
    }
});
