//! Codec hot paths: decoding MPREG client frames, encoding replies, and the
//! fabric CBOR round trip.

use criterion::{criterion_group, criterion_main, Criterion};
use mpreg_benches::CATALOG_QUERY_FRAME;
use mpreg_core::wire::{client, fabric};
use serde_json::json;
use std::hint::black_box;

fn client_codec(c: &mut Criterion) {
    c.bench_function("client_decode_catalog_query", |b| {
        b.iter(|| client::decode(black_box(CATALOG_QUERY_FRAME.as_bytes())))
    });
    let mut r = client::Results::new();
    r.insert(
        "echo".into(),
        json!({"items": [1, 2, 3], "generated_at": 1.5}).into(),
    );
    c.bench_function("client_encode_result", |b| {
        b.iter(|| client::encode_result(black_box("01JD3K7Q6Z8T1V2W3X4Y5Z6A7B"), &r))
    });
}

fn fabric_codec(c: &mut Criterion) {
    let msg = fabric::FabricMsg::Hello(fabric::Hello {
        node_id: "ws://127.0.0.1:6666".into(),
        cluster_id: "default-cluster".into(),
        instance_id: "01JD3K7Q6Z8T1V2W3X4Y5Z6A7B".into(),
        challenge: None,
    });
    let bytes = fabric::encode(&msg);
    c.bench_function("fabric_encode_hello", |b| {
        b.iter(|| fabric::encode(black_box(&msg)))
    });
    c.bench_function("fabric_decode_hello", |b| {
        b.iter(|| fabric::decode(black_box(&bytes), 1 << 20))
    });
}

/// Short runs (see `catalog.rs`): the report script has a time budget.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(1))
        .sample_size(20)
        .nresamples(10_000)
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = client_codec, fabric_codec
}
criterion_main!(benches);
