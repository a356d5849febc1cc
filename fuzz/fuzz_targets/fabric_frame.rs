//! Any bytes as a fabric CBOR frame: decoding must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mpreg_core::wire::fabric::decode(data, 1 << 20);
});
