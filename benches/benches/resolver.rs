//! The resolver's query cache (`core/src/resolver/query_cache.rs`), which
//! answers `catalog_query` / `cluster_map_v2` in resolver mode.
//!
//! What a request pays: the node's `resolver_answer`
//! (`core/src/node_discovery.rs`) calls [`QueryCache::lookup_request`] with
//! the request payload and viewer, both borrowed: their compact binary id
//! is written into a buffer the cache reuses, hashed once and compared with
//! one `memcmp`, and a hit hands out the shared answer (an `Arc`), which the
//! reply encoder serialises in place. The owned [`CacheKey`] is built only
//! when an answer is stored.
//! The benches reproduce exactly that:
//!
//! - `resolver_cache_hit/request/<answer>`: lookup by request of a fresh
//!   entry in a cache of 1000 answers (MPREG's default size), for an empty
//!   (negative) answer and a 10-item page (equal: the answer is not copied).
//! - `resolver_cache_hit/lookup_only`: the lookup of the empty answer with
//!   an owned key built once.
//! - `resolver_cache_hit/key_only`: building an owned key, which a hit no
//!   longer pays.
//! - `resolver_cache_hit/answer_clone/<answer>`: deep-copying the answer,
//!   which a hit no longer pays either (kept to show what sharing saves).
//! - `resolver_cache_miss/request`: lookup by request of an absent key (the
//!   answer's computation is not included: that is the catalog query).
//! - `resolver_cache_miss/store_full`: storing a computed 10-item answer
//!   into a full cache, as the node does after a miss (it stores a clone
//!   of the answer it replies with); the oldest answer is evicted and
//!   dropped.
//!
//! Not a criterion figure: `resolver_zipf_hit_rate` replays Zipf query
//! mixes through the cache on a virtual clock and prints the steady-state
//! hit rate (see [`zipf_hit_rate`]), with refresh-ahead and keep-warm off
//! (MPREG's behaviour), with refresh-ahead alone and at our defaults, with
//! the answers computed per second (the price); it panics when its own
//! bookkeeping does not add up. It runs whatever bench filter is given
//! (a minute or two). Two rates are printed because they answer different
//! questions: MPREG's `hit_rate` counts only fresh hits (stale serves count
//! against it; a refresh-ahead hit is fresh), while "served from cache"
//! counts every answer that did not wait for a catalog query
//! (stale-while-revalidate answers at once and refreshes after).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use mpreg_core::catalog::{EntryKind, NamespaceFilter};
use mpreg_core::identity::Viewer;
use mpreg_core::resolver::query_cache::{
    CacheKey, CacheKind, Depends, Lookup, QueryCache, QueryCacheConfig, DEFAULT_KEEP_WARM_TTLS,
    DEFAULT_REFRESH_AHEAD,
};
use serde_json::{json, Map, Value};

/// MPREG's defaults (`discovery_resolver_query_*`).
fn default_config() -> QueryCacheConfig {
    QueryCacheConfig {
        enabled: true,
        ttl_seconds: 10.0,
        stale_seconds: 20.0,
        negative_ttl_seconds: 5.0,
        max_entries: 1000,
        refresh_ahead: 0.0,
        keep_warm_ttls: 0.0,
    }
}

/// Namespaces of the synthetic mix: `svc.team<T>.app<A>`, 50 × 10.
const TEAMS: usize = 50;
const APPS: usize = 10;
const ENTRY_TYPES: [&str; 3] = ["functions", "services", "nodes"];
const LIMITS: [u64; 2] = [50, 200];

/// A query of the mix: payload, viewer, namespace and entry kind.
type Query = (Map<String, Value>, Viewer, String, EntryKind);

/// Query `i` of the mix: a `catalog_query` payload as a client sends it
/// (namespace, entry type, page size) and its viewer (one of a few client
/// clusters, a tenant on some). `i` is read as mixed-radix digits, so
/// distinct `i` give distinct queries.
fn query(i: usize) -> Query {
    let ns_count = TEAMS * APPS;
    let ns_i = i % ns_count;
    let rest = i / ns_count;
    let namespace = format!("svc.team{}.app{}", ns_i / APPS, ns_i % APPS);
    let entry_type = ENTRY_TYPES[rest % ENTRY_TYPES.len()];
    let rest = rest / ENTRY_TYPES.len();
    let limit = LIMITS[rest % LIMITS.len()];
    let viewer_i = rest / LIMITS.len();
    let mut p = Map::new();
    p.insert("entry_type".into(), json!(entry_type));
    p.insert("namespace".into(), json!(namespace));
    p.insert("scope".into(), json!("zone"));
    p.insert("limit".into(), json!(limit));
    let tenant = (viewer_i % 2 == 1).then(|| format!("tenant-{}", viewer_i / 2));
    let kind = EntryKind::parse(entry_type).unwrap_or(EntryKind::Functions);
    let viewer = Viewer::new(format!("client-cluster-{viewer_i}"), tenant);
    (p, viewer, namespace, kind)
}

/// A `catalog_query` answer with `items` function entries of the usual
/// shape (`client_protocol.md` §2.5).
fn answer(namespace: &str, items: usize) -> Value {
    let items: Vec<Value> = (0..items)
        .map(|j| {
            let name = format!("{namespace}.fn{j}");
            json!({
                "type": "function", "name": name, "function_id": name, "version": "1.2.3",
                "namespace": namespace, "node_id": format!("ws://10.0.{}.{j}:6666", j / 250),
                "cluster_id": "bench-cluster", "resources": ["cpu"], "tags": ["tier1"],
                "scope": "zone", "rpc_summary": null, "advertised_at": 1.7e9, "ttl_seconds": 30.0,
            })
        })
        .collect();
    json!({"entry_type": "functions", "generated_at": 1.7e9, "items": items})
}

/// What the node records for a `catalog_query` answer.
fn depends(namespace: &str, kind: EntryKind) -> Depends {
    Depends {
        kinds: Some(vec![kind]),
        namespace: NamespaceFilter::parse(namespace),
    }
}

/// What the node pays per `catalog_query` in resolver mode: look the
/// request up.
fn request(cache: &mut QueryCache, payload: &Map<String, Value>, viewer: &Viewer) -> Lookup {
    cache.lookup_request(
        CacheKind::Catalog,
        black_box(payload),
        black_box(viewer),
        false,
        1.0,
    )
}

/// A cache holding answers to queries `0..n`, each with `items` items.
fn filled_cache(n: usize, items: usize) -> QueryCache {
    let mut cache = QueryCache::new(default_config());
    for i in 0..n {
        let (p, viewer, ns, kind) = query(i);
        let key = CacheKey::for_request(CacheKind::Catalog, &p, &viewer, false);
        cache.store(key, answer(&ns, items), items == 0, depends(&ns, kind), 0.0);
    }
    assert_eq!(cache.len(), n, "every answer stored");
    cache
}

fn cache_hit(c: &mut Criterion) {
    let mut g = c.benchmark_group("resolver_cache_hit");
    let probe = 417;
    let (payload, viewer, _, _) = query(probe);
    for items in [0usize, 10] {
        let mut cache = filled_cache(1000, items);
        let key = CacheKey::for_request(CacheKind::Catalog, &payload, &viewer, false);
        assert!(
            matches!(cache.lookup(&key, 1.0), Lookup::Hit(_)),
            "the probe is a fresh hit"
        );
        let label = if items == 0 {
            "request/empty_answer".to_string()
        } else {
            format!("request/{items}_items")
        };
        g.bench_function(label, |b| b.iter(|| request(&mut cache, &payload, &viewer)));
    }
    for items in [0usize, 10] {
        let value = answer("svc.team4.app1", items);
        g.bench_function(format!("answer_clone/{items}_items"), |b| {
            b.iter(|| black_box(&value).clone())
        });
    }
    let mut cache = filled_cache(1000, 0);
    let key = CacheKey::for_request(CacheKind::Catalog, &payload, &viewer, false);
    g.bench_function("lookup_only", |b| {
        b.iter(|| cache.lookup(black_box(&key), 1.0))
    });
    g.bench_function("key_only", |b| {
        b.iter(|| {
            CacheKey::for_request(
                CacheKind::Catalog,
                black_box(&payload),
                black_box(&viewer),
                false,
            )
        })
    });
    g.finish();
}

fn cache_miss(c: &mut Criterion) {
    let mut g = c.benchmark_group("resolver_cache_miss");
    let mut cache = filled_cache(1000, 10);
    // Query 5000 is not in the cache (only 0..1000 are).
    let (payload, viewer, ns, _) = query(5000);
    let key = CacheKey::for_request(CacheKind::Catalog, &payload, &viewer, false);
    assert_eq!(cache.lookup(&key, 1.0), Lookup::Miss, "the probe misses");
    g.bench_function("request", |b| {
        b.iter(|| request(&mut cache, &payload, &viewer))
    });
    // Steady state of a full cache: each store evicts the oldest answer.
    // Queries 1000.. are not cached yet; cycling through 4000 of them
    // keeps every store a new key.
    let mut full = filled_cache(1000, 10);
    let fresh = answer(&ns, 10);
    let incoming: Vec<(CacheKey, Depends)> = (1000..5000)
        .map(|i| {
            let (p, viewer, ns, kind) = query(i);
            let key = CacheKey::for_request(CacheKind::Catalog, &p, &viewer, false);
            (key, depends(&ns, kind))
        })
        .collect();
    let mut next = 0usize;
    let mut now = 1.0;
    g.bench_function("store_full", |b| {
        b.iter(|| {
            let (key, dep) = &incoming[next % incoming.len()];
            next += 1;
            now += 1e-6;
            full.store(key.clone(), fresh.clone(), false, dep.clone(), now);
        })
    });
    assert_eq!(full.len(), 1000, "a full cache stays full");
    g.finish();
}

/// SplitMix64: a tiny deterministic generator, so the mix is reproducible.
struct SplitMix(u64);

impl SplitMix {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipf(`s`) over ranks `0..n` by inverse CDF.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                acc += 1.0 / (k as f64).powf(s);
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf { cdf }
    }

    fn sample(&self, rng: &mut SplitMix) -> usize {
        let u = rng.next_f64();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// One hit-rate workload.
struct Workload {
    label: &'static str,
    distinct: usize,
    zipf_s: f64,
    qps: u64,
    /// Catalog changes per second, each invalidating the cached answers
    /// whose namespace covers the changed entry's.
    changes_per_second: u64,
    cfg: QueryCacheConfig,
    warmup_seconds: u64,
    measure_seconds: u64,
}

/// Lookups during the measured window, by outcome.
#[derive(Default)]
struct Outcome {
    lookups: u64,
    hits: u64,
    stale: u64,
    misses: u64,
    /// Answers computed (misses, refreshes, keep-warm), the cost side.
    computed: u64,
}

/// Replays `w` on a virtual clock: `qps` lookups per second, Zipf-ranked
/// over `distinct` queries (rank → query through a fixed shuffle, so
/// popular queries are spread over namespaces and viewers); a miss is
/// computed and stored at once, a stale read's refresh is stored at once
/// (what the node's `run_resolver_refreshes` does after the request), and so
/// are a refresh-ahead hit's and keep-warm's; every second `changes_per_second` random
/// namespaces change; the cache is
/// pruned every 30 s as the node's prune timer does. Only the window after
/// `warmup_seconds` is counted.
fn zipf_hit_rate(w: &Workload) -> Outcome {
    let zipf = Zipf::new(w.distinct, w.zipf_s);
    let mut rng = SplitMix(0x05EE_D0FC_AC4E);
    // rank → query id: a fixed pseudo-random permutation.
    let mut perm: Vec<usize> = (0..w.distinct).collect();
    for i in (1..perm.len()).rev() {
        let j = (rng.next_f64() * (i + 1) as f64) as usize;
        perm.swap(i, j.min(i));
    }
    let queries: Vec<(CacheKey, Depends)> = (0..w.distinct)
        .map(|i| {
            let (p, viewer, ns, kind) = query(i);
            let key = CacheKey::for_request(CacheKind::Catalog, &p, &viewer, false);
            (key, depends(&ns, kind))
        })
        .collect();
    let deps: std::collections::HashMap<&CacheKey, &Depends> =
        queries.iter().map(|(k, d)| (k, d)).collect();
    assert_eq!(
        deps.len(),
        w.distinct,
        "{}: the mix has distinct keys",
        w.label
    );
    // Keep-warm's recomputations, stored at once as the node's
    // `run_resolver_refreshes` does after each request and change.
    let warm = |cache: &mut QueryCache, now: f64| -> u64 {
        let mut n = 0;
        for key in cache.take_scheduled(now) {
            let dep = deps.get(&key).map(|d| (*d).clone());
            if let Some(dep) = dep {
                cache.store(key, answer("svc.x", 2), false, dep, now);
                n += 1;
            }
        }
        n
    };
    let small = answer("svc.x", 2);
    let mut cache = QueryCache::new(w.cfg.clone());
    let mut out = Outcome::default();
    let dt = 1.0 / w.qps as f64;
    let seconds = w.warmup_seconds + w.measure_seconds;
    for second in 0..seconds {
        let measuring = second >= w.warmup_seconds;
        for _ in 0..w.changes_per_second {
            let ns_i = (rng.next_f64() * (TEAMS * APPS) as f64) as usize;
            let kind_i = (rng.next_f64() * ENTRY_TYPES.len() as f64) as usize;
            let kind = EntryKind::parse(ENTRY_TYPES[kind_i.min(ENTRY_TYPES.len() - 1)])
                .unwrap_or(EntryKind::Functions);
            let ns = format!("svc.team{}.app{}.e{second}", ns_i / APPS, ns_i % APPS);
            cache.invalidate(kind, &[ns.as_str()], second as f64);
        }
        let n = warm(&mut cache, second as f64);
        if measuring {
            out.computed += n;
        }
        if second % 30 == 0 {
            cache.prune(second as f64);
        }
        for q in 0..w.qps {
            let now = second as f64 + q as f64 * dt;
            let (key, dep) = &queries[perm[zipf.sample(&mut rng)]];
            let result = cache.lookup(key, now);
            let store = match &result {
                Lookup::Hit(_) => false,
                Lookup::Ahead(_) => true,
                Lookup::Stale { refresh, .. } => *refresh,
                Lookup::Miss => true,
            };
            if measuring {
                out.lookups += 1;
                match result {
                    Lookup::Hit(_) | Lookup::Ahead(_) => out.hits += 1,
                    Lookup::Stale { .. } => out.stale += 1,
                    Lookup::Miss => out.misses += 1,
                }
            }
            if store {
                cache.store(key.clone(), small.clone(), false, dep.clone(), now);
            }
            let n = warm(&mut cache, now) + u64::from(store);
            if measuring {
                out.computed += n;
            }
        }
    }
    out
}

fn hit_rate_report(_: &mut Criterion) {
    let mix = |label, distinct, max_entries, refresh_ahead, keep_warm_ttls| Workload {
        label,
        distinct,
        zipf_s: 1.0,
        qps: 20_000,
        changes_per_second: 17,
        cfg: QueryCacheConfig {
            max_entries,
            refresh_ahead,
            keep_warm_ttls,
            ..default_config()
        },
        warmup_seconds: 60,
        measure_seconds: 120,
    };
    let (ahead, warm) = (DEFAULT_REFRESH_AHEAD, DEFAULT_KEEP_WARM_TTLS);
    let workloads = [
        mix("10k queries, 20k qps, cache 16384, MPREG TTLs, 17 changes/s, no refresh-ahead, no keep-warm (MPREG)", 10_000, 16_384, 0.0, 0.0),
        mix("10k queries, 20k qps, cache 16384, MPREG TTLs, 17 changes/s, refresh-ahead 0.25, no keep-warm", 10_000, 16_384, ahead, 0.0),
        mix("10k queries, 20k qps, cache 16384, MPREG TTLs, 17 changes/s, refresh-ahead 0.25, keep-warm 2 TTLs (default)", 10_000, 16_384, ahead, warm),
        mix("1k queries, 20k qps, cache 1000 (MPREG default size), MPREG TTLs, 17 changes/s, no refresh-ahead, no keep-warm (MPREG)", 1_000, 1_000, 0.0, 0.0),
        mix("1k queries, 20k qps, cache 1000 (MPREG default size), MPREG TTLs, 17 changes/s, refresh-ahead 0.25, keep-warm 2 TTLs (default)", 1_000, 1_000, ahead, warm),
        mix("10k queries, 20k qps, cache 1000 (MPREG default size), MPREG TTLs, 17 changes/s, refresh-ahead 0.25, keep-warm 2 TTLs (default)", 10_000, 1_000, ahead, warm),
    ];
    for w in &workloads {
        let o = zipf_hit_rate(w);
        let expected = w.qps * w.measure_seconds;
        assert_eq!(o.lookups, expected, "every lookup counted ({})", w.label);
        assert_eq!(
            o.hits + o.stale + o.misses,
            o.lookups,
            "outcomes add up ({})",
            w.label
        );
        // Answers keep being recomputed (TTLs and changes at work), yet
        // most lookups hit; with keep-warm every lookup may hit.
        assert!(
            o.hits > 0 && o.computed > 0,
            "a Zipf mix has hits and recomputations ({})",
            w.label
        );
        let pct = |n: u64| 100.0 * n as f64 / o.lookups as f64;
        let hit = pct(o.hits);
        let served = pct(o.hits + o.stale);
        assert!(
            (0.0..=100.0).contains(&hit) && hit <= served,
            "rates in range"
        );
        println!(
            "resolver_zipf_hit_rate: {hit:.2} % (fresh hits / lookups, MPREG's hit_rate); {served:.3} % served from cache incl. stale-while-revalidate ({label}; Zipf s={s}; {lookups} lookups in {secs} s after {warm} s warm-up: {hits} hits, {stale} stale serves, {misses} misses; {computed:.0} answers computed per second)",
            label = w.label,
            s = w.zipf_s,
            lookups = o.lookups,
            secs = w.measure_seconds,
            warm = w.warmup_seconds,
            hits = o.hits,
            stale = o.stale,
            misses = o.misses,
            computed = o.computed as f64 / w.measure_seconds as f64,
        );
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = cache_hit, cache_miss, hit_rate_report
}
criterion_main!(benches);
