//! Catalog hot paths at scale:
//!
//! - `catalog_query/*`: a 200-item page through the public RPC path
//!   ([`Node::call`], the same handler a client request reaches), on a node
//!   whose catalog was filled through its fabric input (one delta frame per
//!   origin, as peers would send them): 10k and 100k entries (100 per
//!   origin, half functions, half services). `+encode` adds serialising the
//!   reply envelope to bytes, i.e. everything but the socket.
//! - `catalog_index/*`: the store's indexed reads directly (name index,
//!   namespace subtree, keyset page) at 100k entries.
//! - `delta_apply/*`: [`Replica::on_delta`] of a 1000-change delta onto an
//!   empty catalog (new origin) and onto the same keys again (newer versions
//!   replacing stored entries).
//! - `digest/*`: building and encoding the scuttlebutt digest of a replica
//!   that knows 1000 origins.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mpreg_benches::fixtures::{self, WALL};
use mpreg_core::catalog::{Catalog, EntryKind, NamespaceFilter};
use mpreg_core::fabric::replica::{Replica, ReplicaParams};
use mpreg_core::wire::{client, fabric};
use mpreg_core::Instant;
use serde_json::{json, Value};

const PER_ORIGIN: usize = 100;

fn query_first_page(c: &mut Criterion) {
    let mut g = c.benchmark_group("catalog_query");
    for entries in [10_000usize, 100_000] {
        let (node, now) = fixtures::filled_node(entries / PER_ORIGIN, PER_ORIGIN);
        assert!(node.catalog().len() >= entries, "fixture filled the node");
        let label = format!("{}k", entries / 1000);
        let first = json!({"entry_type": "functions", "limit": 200});
        let page = node
            .call(now, "catalog_query", first.clone())
            .expect("catalog_query answers");
        let items = page
            .get("items")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        assert_eq!(items, 200, "a full page");
        g.throughput(Throughput::Elements(200));
        g.bench_function(format!("functions_page200_{label}"), |b| {
            b.iter(|| node.call(now, "catalog_query", black_box(first.clone())))
        });
        // A page deep inside the catalog, through the keyset cursor.
        let mut token = page.get("next_page_token").cloned().unwrap_or(Value::Null);
        for _ in 0..20 {
            let next = node
                .call(
                    now,
                    "catalog_query",
                    json!({"entry_type": "functions", "limit": 200, "page_token": token}),
                )
                .expect("next page");
            token = next.get("next_page_token").cloned().unwrap_or(Value::Null);
        }
        let deep = json!({"entry_type": "functions", "limit": 200, "page_token": token});
        g.bench_function(format!("functions_page200_cursor_{label}"), |b| {
            b.iter(|| node.call(now, "catalog_query", black_box(deep.clone())))
        });
        let ns = json!({"entry_type": "services", "namespace": "svc.team7", "limit": 200});
        g.bench_function(format!("services_namespace_page200_{label}"), |b| {
            b.iter(|| node.call(now, "catalog_query", black_box(ns.clone())))
        });
        g.bench_function(format!("functions_page200_{label}+encode"), |b| {
            b.iter(|| {
                let r = node
                    .call(now, "catalog_query", black_box(first.clone()))
                    .unwrap_or(Value::Null);
                let mut m = client::Results::new();
                m.insert("catalog_query".into(), r.into());
                client::encode_result("01JD3K7Q6Z8T1V2W3X4Y5Z6A7B", &m)
            })
        });
    }
    g.finish();
}

fn index_reads(c: &mut Criterion) {
    let mut g = c.benchmark_group("catalog_index");
    let catalog = fixtures::catalog(100_000 / PER_ORIGIN, PER_ORIGIN);
    let name = match fixtures::entry(7, 4, WALL) {
        mpreg_core::catalog::Entry::Function(f) => f.identity.name,
        _ => unreachable!("even entries are functions"),
    };
    g.bench_function("by_name_100k", |b| {
        b.iter(|| {
            catalog
                .by_name(EntryKind::Functions, black_box(&name))
                .count()
        })
    });
    let filter = NamespaceFilter::parse("svc.team7");
    g.bench_function("in_namespace_take200_100k", |b| {
        b.iter(|| {
            catalog
                .in_namespace(EntryKind::Services, black_box(&filter), None)
                .take(200)
                .count()
        })
    });
    g.bench_function("range_after_take200_100k", |b| {
        b.iter(|| {
            catalog
                .range_after(EntryKind::Functions, None)
                .take(200)
                .count()
        })
    });
    g.finish();
}

fn params() -> ReplicaParams {
    ReplicaParams {
        horizon: Duration::from_secs(240),
        gossip_interval: Duration::from_secs(1),
        page_bytes: 2 << 20,
        max_gone: 65_536,
        max_tombstones: 100_000,
    }
}

fn fresh_replica() -> (Replica, Catalog) {
    (
        Replica::new(
            "ws://10.255.255.255:6666",
            "01JD3K7Q6Z8T1V2W3X4YAAAAAA",
            WALL,
            params(),
        ),
        Catalog::new(),
    )
}

fn delta_apply(c: &mut Criterion) {
    let mut g = c.benchmark_group("delta_apply");
    let now = Instant::ZERO;
    let first = fixtures::delta(1, 0, fixtures::origin_entries(1, 1000, WALL), 1);
    let second = fixtures::delta(1, 1000, fixtures::origin_entries(1, 1000, WALL + 1.0), 2);
    {
        let (mut r, mut cat) = fresh_replica();
        let a = r.on_delta(&mut cat, &first, WALL, now);
        assert_eq!(a.applied, 1000, "first delta applies in full");
        let a = r.on_delta(&mut cat, &second, WALL + 1.0, now);
        assert_eq!(a.applied, 1000, "second delta applies in full");
        assert_eq!(cat.len(), 1000);
    }
    g.throughput(Throughput::Elements(1000));
    g.bench_function("1000_changes_new_origin", |b| {
        b.iter_batched(
            fresh_replica,
            |(mut r, mut cat)| {
                r.on_delta(&mut cat, black_box(&first), WALL, now);
                (r, cat)
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("1000_changes_replace", |b| {
        b.iter_batched(
            || {
                let (mut r, mut cat) = fresh_replica();
                r.on_delta(&mut cat, &first, WALL, now);
                (r, cat)
            },
            |(mut r, mut cat)| {
                r.on_delta(&mut cat, black_box(&second), WALL + 1.0, now);
                (r, cat)
            },
            BatchSize::SmallInput,
        )
    });
    let bytes = fabric::encode(&fabric::FabricMsg::Delta(first.clone()));
    g.bench_function("1000_changes_decode", |b| {
        b.iter(|| fabric::decode(black_box(&bytes), 64 << 20))
    });
    g.finish();
}

fn digest(c: &mut Criterion) {
    let mut g = c.benchmark_group("digest");
    let (mut r, mut cat) = fresh_replica();
    for o in 0..1000 {
        let d = fixtures::delta(o, 0, fixtures::origin_entries(o, 12, WALL), 1);
        r.on_delta(&mut cat, &d, WALL, Instant::ZERO);
    }
    assert_eq!(r.origin_count(), 1000);
    g.bench_function("build_1000_origins", |b| {
        b.iter(|| r.digest(black_box(true)))
    });
    let msg = fabric::FabricMsg::Digest(r.digest(true));
    g.bench_function("build_encode_1000_origins", |b| {
        b.iter(|| fabric::encode(&fabric::FabricMsg::Digest(r.digest(black_box(true)))))
    });
    let bytes = fabric::encode(&msg);
    g.bench_function("decode_1000_origins", |b| {
        b.iter(|| fabric::decode(black_box(&bytes), 64 << 20))
    });
    g.finish();
}

/// Short runs: these benches are about orders of magnitude, and the report
/// script runs them on a shared 2-core machine within a time budget.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .sample_size(20)
        .nresamples(10_000)
        .without_plots()
}

criterion_group! {
    name = benches;
    config = config();
    targets = query_first_page, index_reads, delta_apply, digest
}
criterion_main!(benches);
