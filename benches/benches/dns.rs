//! Building one DNS answer (issue 7 goal: at most 2 µs) from a catalog of
//! 10,000 services in 100 namespaces: an SRV answer with glue, an A answer,
//! and an NXDOMAIN with the zone's SOA. Queries are built and checked with
//! hickory-proto; the responder is the one the gateway runs for every
//! query, policy check included (an allow-all closure here; the per-entry
//! policy decision has its own bench in `policy`).
//!
//! `dns_gateway_cached/<case>` is what the gateway pays per query when the
//! same question came earlier in the same second with nothing changed
//! (`Gateway::handle`: rate-limit check, viewer of the source, reply cache
//! hit, ID patched); every other query pays the build above plus the
//! gateway's bookkeeping.
//!
//! The catalog and questions are `fixtures::dns`; the `dns_cost` binary
//! answers the same questions for callgrind, whose instruction counts the
//! host's noise does not move, and with `--batches` times them by the
//! fastest of many short batches, which a busy neighbour on the host
//! cannot stretch the way it stretches criterion's mean.
//!
//! Both allocate with mimalloc, the allocator of the `mpreg` binary, so
//! they measure what a running node pays.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use hickory_proto::op::Message;
use mpreg_benches::fixtures::dns::{self, CASES, NOW};
use mpreg_core::catalog::entry::Entry;
use mpreg_core::dns::{respond, DnsConfig, DnsTransport, Gateway, Viewer};
use mpreg_core::Settings;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn dns(c: &mut Criterion) {
    let catalog = dns::catalog();
    let cfg = DnsConfig::from_settings(&Settings::default(), "ws://127.0.0.1:6666");
    let viewer = Viewer::new("c1", None);
    let all = |_: &Entry| true;
    let mut cached_cfg = cfg.clone();
    cached_cfg.rate_limit.queries_per_second = 0.0;
    let mut gateway = Gateway::new(cached_cfg, 1);
    let src = "127.0.0.1:5353".parse().expect("bench address");
    let policy = |_: &Viewer, _: &Entry| true;
    let mono = mpreg_core::time::Instant::ZERO;
    for case in &CASES {
        let (bench, rcode) = (case.id, case.rcode);
        let q = dns::query(case);
        // The bench measures the answer it claims to.
        let reply = respond(&q, DnsTransport::Udp, &viewer, &catalog, &cfg, NOW, &all);
        let m = Message::from_vec(reply.bytes.as_deref().expect("a reply")).expect("parses");
        assert_eq!(m.metadata.response_code, rcode, "{bench}");
        c.bench_function(bench, |b| {
            b.iter(|| {
                respond(
                    black_box(&q),
                    DnsTransport::Udp,
                    &viewer,
                    &catalog,
                    &cfg,
                    NOW,
                    &all,
                )
            })
        });
        let handle = |gateway: &mut Gateway, q: &[u8]| {
            gateway.handle(mono, NOW, src, DnsTransport::Udp, q, &catalog, &policy, 1)
        };
        let first = handle(&mut gateway, &q);
        let hits = gateway.stats().cache_hits;
        assert_eq!(handle(&mut gateway, &q), first, "{bench}: same reply");
        assert_eq!(
            gateway.stats().cache_hits,
            hits + 1,
            "{bench}: from the cache"
        );
        let short = bench.trim_start_matches("dns_answer_");
        c.bench_function(&format!("dns_gateway_cached/{short}"), |b| {
            b.iter(|| handle(&mut gateway, black_box(&q)))
        });
    }
}

criterion_group!(benches, dns);
criterion_main!(benches);
