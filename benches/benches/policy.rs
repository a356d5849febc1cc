//! Per-request hot paths of the policy plane (issue 5 goals: a policy
//! decision in at most 200 ns, a rate-limit check in at most 100 ns): the
//! longest-match decision over a realistic rule set, the per-item entry
//! check every query runs, and the sliding-window limiter for a known key.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use mpreg_core::catalog::entry::{Entry, FunctionEndpoint, FunctionIdentity};
use mpreg_core::config::PolicyRuleConfig;
use mpreg_core::identity::Viewer;
use mpreg_core::policy::{compile_rules, Access, PolicyEngine};
use mpreg_core::ratelimit::{RateKey, RateLimitConfig, RateLimiter};
use mpreg_core::time::Instant;

/// 200 rules over a tree of namespaces, a third of them tenant-restricted.
fn engine() -> PolicyEngine {
    let mut rules = Vec::new();
    for team in 0..20 {
        for svc in 0..10 {
            let restricted = (team * 10 + svc) % 3 == 0;
            rules.push(PolicyRuleConfig {
                namespace: format!("svc.team{team}.s{svc}"),
                owners: vec![],
                visibility: if restricted {
                    vec!["ops".into()]
                } else {
                    vec![]
                },
                visibility_tenants: if restricted {
                    vec![format!("tenant-{team}")]
                } else {
                    vec![]
                },
                export_scopes: vec![],
                allow_summaries: true,
                cutover_windows: vec![],
                policy_version: None,
            });
        }
    }
    let rules = compile_rules(&rules).expect("bench rules are valid");
    PolicyEngine::new(true, false, rules).expect("bench engine")
}

fn policy(c: &mut Criterion) {
    let engine = engine();
    let viewer = Viewer::new("c1", Some("tenant-7".into()));
    c.bench_function("policy_decision_deep_namespace", |b| {
        b.iter(|| {
            engine
                .allows(black_box("svc.team7.s3.eu.west.quote"), black_box(&viewer))
                .allowed
        })
    });
    c.bench_function("policy_decision_no_rule", |b| {
        b.iter(|| {
            engine
                .allows(black_box("other.area.fn"), black_box(&viewer))
                .allowed
        })
    });
    let entry = Entry::Function(FunctionEndpoint::new(
        FunctionIdentity::new("svc.team7.s3.quote", "01F", "1.0.0"),
        "ws://127.0.0.1:1",
        "c2",
    ));
    let access = Access::new(&engine, &viewer, "c1");
    c.bench_function("policy_entry_visible", |b| {
        b.iter(|| access.entry_visible(black_box(&entry)))
    });
}

fn rate_limit(c: &mut Criterion) {
    let mut limiter = RateLimiter::new(RateLimitConfig {
        max_requests: 1_000_000_000,
        window: Duration::from_secs(60),
        max_keys: 10_000,
    });
    let mut t = 1_000_000_000u64;
    c.bench_function("rate_limit_check_known_key", |b| {
        b.iter(|| {
            t += 1_000;
            limiter.check(
                RateKey {
                    viewer: black_box("tenant:acme"),
                    command: "catalog_query",
                    namespace: Some("svc.market"),
                },
                Instant::from_nanos(t),
            )
        })
    });
}

/// Short runs (see `catalog.rs`): the report script has a time budget.
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
    targets = policy, rate_limit
}
criterion_main!(benches);
