use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::exposition::{valid_label_name, valid_metric_name};
use super::latency::{Latencies, Timed};
use super::*;
use crate::config::{PolicyRuleConfig, TenantCredential};
use crate::limits::LimitHits;

/// What a view borrows, owned by the test.
struct Fixture {
    me: Identity,
    settings: Settings,
    counters: Counters,
    dns: DnsStats,
    policy: PolicyHistory,
    access: AccessAudit,
    ident: IdentityConfig,
    latency: Latencies,
}

fn fixture(settings: Settings) -> Fixture {
    let policy = PolicyHistory::new(&settings, 100.0).expect("valid policy");
    let mut access = AccessAudit::new(100);
    access.record_denial(
        "catalog_query",
        &crate::identity::Viewer::new("c", None),
        Some("svc.secret"),
        "viewer_denied",
        101.0,
    );
    Fixture {
        me: Identity {
            node_id: "ws://127.0.0.1:7001".into(),
            cluster_id: "demo".into(),
            instance_id: "01INSTANCE".into(),
            started_at: 100.0,
        },
        ident: IdentityConfig::from_settings(&settings),
        latency: {
            let mut l = Latencies::default();
            l.observe(Timed::Query, std::time::Duration::from_micros(300));
            l.observe(Timed::Dns, std::time::Duration::from_micros(20));
            l
        },
        settings,
        counters: Counters {
            messages_processed: 7,
            server_messages: 11,
            client_frames_rejected: 1,
            rate_limited: 3,
            fabric_auth_refused: {
                let mut r = crate::fabric::auth::RefusalCounts::default();
                r.add(crate::fabric::auth::Refusal::Failed);
                r
            },
            limit_hits: {
                let mut h = LimitHits::default();
                h.hit(Limit::ConnectionsPerSource);
                h
            },
            fabric_sent: {
                let mut t = crate::fabric::traffic::Traffic::default();
                t.add(crate::fabric::traffic::MsgKind::DigestReply, 120, 2);
                t
            },
            ..Counters::default()
        },
        dns: DnsStats {
            queries: 5,
            udp_queries: 4,
            tcp_queries: 1,
            nxdomain: 2,
            ..DnsStats::default()
        },
        policy,
        access,
    }
}

fn view(f: &Fixture) -> MonitoringView<'_> {
    let mut catalog = [0; EntryKind::COUNT];
    catalog[EntryKind::Functions.index()] = 12;
    catalog[EntryKind::Nodes.index()] = 3;
    MonitoringView {
        me: &f.me,
        settings: &f.settings,
        counters: &f.counters,
        peers: PeerCounts {
            connected: 2,
            known: 2,
            suspected: 1,
            dead: 0,
            departed: 1,
        },
        catalog,
        registrations: 4,
        dns: &f.dns,
        policy: &f.policy,
        access_audit: &f.access,
        ident: &f.ident,
        dial: Some(DialGauges {
            targets: 2,
            connected: 2,
            desired_connected: 2,
            discovery_ratio: 1.0,
            in_flight: 0,
            saturated_ticks: 0,
        }),
        summary_export: None,
        resolver_cache: None,
        summary_cache: None,
        lag: None,
        latency: &f.latency,
        now: 160.0,
    }
}

fn get(v: &MonitoringView<'_>, path: &str) -> Response {
    get_with(v, path, &[])
}

fn get_with(v: &MonitoringView<'_>, path: &str, headers: &[(String, String)]) -> Response {
    respond(
        v,
        &Request {
            method: "GET",
            path,
            query: "",
            headers,
        },
    )
}

fn body(r: &Response) -> Value {
    serde_json::from_slice(&r.body).expect("JSON body")
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect()
}

fn set<'a>(items: &[&'a str]) -> BTreeSet<&'a str> {
    items.iter().copied().collect()
}

#[test]
fn discovery_endpoints_without_providers_answer_mpregs_disabled_forms() {
    let f = fixture(Settings::default());
    let v = view(&f);
    for (path, key, want) in [
        (
            "/discovery/summary",
            "summary_export",
            json!({"enabled": false}),
        ),
        (
            "/discovery/cache",
            "resolver_cache",
            json!({"enabled": false}),
        ),
        (
            "/discovery/cache",
            "summary_cache",
            json!({"enabled": false}),
        ),
    ] {
        let r = get(&v, path);
        assert_eq!((r.status, r.content_type), (200, JSON), "{path}");
        let b = body(&r);
        assert_eq!(b["status"], "ok");
        assert_eq!(b["timestamp"], 160.0);
        assert_eq!(b[key], want, "{path}");
    }
    let b = body(&get(&v, "/discovery/summary"));
    assert_eq!(keys(&b), set(&["status", "summary_export", "timestamp"]));
    let b = body(&get(&v, "/discovery/cache"));
    assert_eq!(
        keys(&b),
        set(&["status", "resolver_cache", "summary_cache", "timestamp"])
    );
}

#[test]
fn lag_without_sources_is_the_status_with_optional_fields_omitted() {
    let f = fixture(Settings::default());
    let b = body(&get(&view(&f), "/discovery/lag"));
    assert_eq!(keys(&b), set(&["status", "lag", "timestamp"]));
    assert_eq!(
        b["lag"],
        json!({"generated_at": 160.0, "resolver_enabled": false, "summary_export_enabled": false})
    );
}

#[test]
fn providers_plug_in_and_feed_lag_and_roadmap_metrics() {
    let f = fixture(Settings::default());
    let mut v = view(&f);
    v.summary_export = Some(
        json!({"enabled": true, "exports_total": 9, "hold_downs_total": 2,
        "last_export_at": 150.0, "per_namespace": []}),
    );
    v.resolver_cache = Some(json!({"enabled": true, "stats": {"deltas_applied": 5,
        "deltas_skipped": 1, "deltas_invalid": 2, "last_delta_at": 159.5, "last_seed_at": 120.0},
        "query_cache": {"catalog_hits": 6, "cluster_map_hits": 0, "catalog_misses": 1,
        "cluster_map_misses": 1, "catalog_stale_serves": 2, "cluster_map_stale_serves": 0}}));
    v.summary_cache = Some(json!({"enabled": true, "entry_counts": {"summaries": 3}}));
    assert_eq!(
        body(&get(&v, "/discovery/summary"))["summary_export"]["exports_total"],
        9
    );
    let cache = body(&get(&v, "/discovery/cache"));
    assert_eq!(cache["resolver_cache"]["stats"]["deltas_applied"], 5);
    assert_eq!(cache["summary_cache"]["entry_counts"]["summaries"], 3);
    let lag = body(&get(&v, "/discovery/lag"))["lag"].clone();
    assert_eq!(
        lag,
        json!({"generated_at": 160.0, "resolver_enabled": true, "summary_export_enabled": true,
            "last_delta_at": 159.5, "delta_lag_seconds": 0.5, "last_seed_at": 120.0,
            "last_summary_export_at": 150.0, "summary_export_lag_seconds": 10.0})
    );
    v.lag = Some(json!({"generated_at": 160.0, "resolver_enabled": true}));
    assert_eq!(
        body(&get(&v, "/discovery/lag"))["lag"],
        v.lag.clone().unwrap()
    );
    let m = parse_exposition(&String::from_utf8(get(&v, "/metrics").body).unwrap());
    assert_eq!(m.value("mpreg_discovery_cache_hit_rate", ""), Some(0.6));
    assert_eq!(m.value("mpreg_discovery_cache_stale_serves", ""), Some(2.0));
    assert_eq!(m.value("mpreg_discovery_delta_lag_ms", ""), Some(500.0));
    assert_eq!(m.value("mpreg_discovery_delta_dropped", ""), Some(3.0));
    assert_eq!(m.value("mpreg_discovery_summary_exports", ""), Some(9.0));
    assert_eq!(m.value("mpreg_discovery_summary_hold_downs", ""), Some(2.0));
}

#[test]
fn policy_status_shape_and_rule_redaction() {
    let rule = PolicyRuleConfig {
        namespace: "svc.secret".into(),
        owners: vec!["demo".into()],
        visibility: vec!["demo".into()],
        visibility_tenants: vec![],
        export_scopes: vec![],
        allow_summaries: false,
        cutover_windows: vec![],
        policy_version: Some("v1".into()),
    };
    let open = Settings {
        discovery_policy_enabled: true,
        discovery_policy_rules: vec![rule.clone()],
        ..Settings::default()
    };
    let f = fixture(open.clone());
    let b = body(&get(&view(&f), "/discovery/policy"));
    assert_eq!(keys(&b), set(&["status", "policy", "timestamp"]));
    let p = &b["policy"];
    for k in [
        "enabled",
        "generated_at",
        "default_allow",
        "rule_count",
        "rules",
        "audit_entries",
        "audit_total",
        "access_entries",
        "access_total",
    ] {
        assert!(p.get(k).is_some(), "missing {k}");
    }
    assert_eq!(p["rules"][0]["namespace"], "svc.secret");
    assert_eq!(p["access_total"], 1);

    let cred = |tenant: &str, token: &str, role: &str| TenantCredential {
        tenant_id: tenant.into(),
        token: token.into(),
        scheme: "bearer".into(),
        role: role.into(),
    };
    let locked = Settings {
        discovery_tenant_credentials: vec![
            cred("ops", "admin-token", "admin"),
            cred("t1", "reader-token", "reader"),
        ],
        ..open
    };
    let f = fixture(locked);
    let v = view(&f);
    let auth = |t: &str| vec![("authorization".to_string(), format!("Bearer {t}"))];
    for headers in [vec![], auth("reader-token"), auth("wrong")] {
        let p = body(&get_with(&v, "/discovery/policy", &headers))["policy"].clone();
        assert_eq!(p["rules"], json!([]), "{headers:?}");
        assert_eq!(p["rules_redacted"], true);
        assert_eq!(p["rule_count"], 1);
    }
    let p = body(&get_with(&v, "/discovery/policy", &auth("admin-token")))["policy"].clone();
    assert_eq!(p["rules"][0]["namespace"], "svc.secret");
    assert!(p.get("rules_redacted").is_none());
}

#[test]
fn health_index_and_dns() {
    let f = fixture(Settings::default());
    let v = view(&f);
    for path in ["/health", "/healthz", "/health/"] {
        let b = body(&get(&v, path));
        assert_eq!(b["status"], "ok", "{path}");
        assert_eq!(b["node_id"], "ws://127.0.0.1:7001");
        assert_eq!(b["cluster_id"], "demo");
        assert_eq!(b["uptime_seconds"], 60.0);
        assert_eq!(
            b["peers"],
            json!({"connected": 2, "known": 2, "suspected": 1, "dead": 0, "departed": 1})
        );
        assert_eq!(b["catalog_entries"], 15);
        assert_eq!(b["timestamp"], 160.0);
    }
    let index = body(&get(&v, "/"));
    let paths: Vec<&str> = index["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths.len(), ENDPOINTS.len());
    assert!(paths.contains(&"/discovery/lag") && paths.contains(&"/metrics"));
    assert_eq!(
        body(&get(&v, "/dns/metrics"))["dns_gateway"],
        json!({"enabled": false})
    );

    let f = fixture(Settings {
        dns_gateway_enabled: true,
        ..Settings::default()
    });
    let g = body(&get(&view(&f), "/dns/metrics"))["dns_gateway"].clone();
    assert_eq!(g["status"], "running");
    assert_eq!(g["metrics"]["total_queries"], 5);
    assert_eq!(g["metrics"]["nxdomain_responses"], 2);
}

#[test]
fn unknown_paths_404_other_methods_405_and_cors() {
    let f = fixture(Settings::default());
    let v = view(&f);
    let r = get(&v, "/nope");
    assert_eq!(r.status, 404);
    let b = body(&r);
    assert_eq!(b["status"], "error");
    assert!(b["message"].as_str().unwrap().contains("/nope"));
    assert!(r
        .headers
        .contains(&("Access-Control-Allow-Origin".into(), "*".into())));

    for method in ["POST", "HEAD", "DELETE"] {
        let r = respond(
            &v,
            &Request {
                method,
                path: "/discovery/lag",
                query: "",
                headers: &[],
            },
        );
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(body(&r)["status"], "error");
        assert!(r.headers.contains(&("Allow".into(), "GET".into())));
    }
    let preflight = Request {
        method: "OPTIONS",
        path: "/metrics",
        query: "",
        headers: &[],
    };
    assert_eq!(respond(&v, &preflight).status, 204);

    let f = fixture(Settings {
        monitoring_enable_cors: false,
        ..Settings::default()
    });
    let v = view(&f);
    let r = get(&v, "/health");
    assert!(r.headers.is_empty(), "{:?}", r.headers);
    assert_eq!(respond(&v, &preflight).status, 405);
}

#[test]
fn a_monitoring_token_is_required_when_configured() {
    let token = "0123456789abcdef-monitor";
    let f = fixture(Settings {
        monitoring_auth_token: Some(crate::config::SecretText::new(token)),
        ..Settings::default()
    });
    let v = view(&f);
    let h = |name: &str, value: String| vec![(name.to_string(), value)];
    for path in ["/", "/health", "/metrics", "/discovery/lag"] {
        let r = get(&v, path);
        assert_eq!(r.status, 401, "{path}");
        assert!(r.headers.iter().any(|(n, _)| n == "WWW-Authenticate"));
        assert!(body(&r)["message"]
            .as_str()
            .unwrap()
            .contains("monitoring_auth_token"));
        let wrong = get_with(&v, path, &h("authorization", "Bearer nope".into()));
        assert_eq!(wrong.status, 401, "{path}");
        let prefix = get_with(&v, path, &h("authorization", format!("Bearer {token}x")));
        assert_eq!(prefix.status, 401, "{path}: a longer guess is no match");
        let bearer = get_with(&v, path, &h("authorization", format!("bearer {token}")));
        assert_eq!(bearer.status, 200, "{path}");
        let header = get_with(&v, path, &h("x-monitoring-token", token.into()));
        assert_eq!(header.status, 200, "{path}");
    }
    // Unknown paths and CORS preflights answer as without a token.
    assert_eq!(get(&v, "/nope").status, 404);
    let preflight = respond(
        &v,
        &Request {
            method: "OPTIONS",
            path: "/metrics",
            query: "",
            headers: &[],
        },
    );
    assert_eq!(preflight.status, 204);
}

#[test]
fn disabled_monitoring_answers_nothing() {
    let f = fixture(Settings {
        monitoring_enabled: false,
        ..Settings::default()
    });
    let v = view(&f);
    for path in ["/", "/health", "/metrics", "/discovery/lag"] {
        let r = get(&v, path);
        assert_eq!(r.status, 404, "{path}");
        assert!(body(&r)["message"]
            .as_str()
            .unwrap()
            .contains("monitoring_enabled"));
    }
}

/// A scrape parsed back: `(name, labels) → value`, families and types.
pub(crate) struct Parsed {
    samples: BTreeMap<(String, String), f64>,
    types: BTreeMap<String, String>,
}

impl Parsed {
    fn value(&self, name: &str, labels: &str) -> Option<f64> {
        self.samples
            .get(&(name.to_string(), labels.to_string()))
            .copied()
    }
}

/// Parses the exposition line by line, checking the grammar as it goes:
/// every family has HELP then TYPE, every sample belongs to the family
/// declared last, names and label names are valid, label values are quoted
/// and escaped, values parse as floats.
pub(crate) fn parse_exposition(text: &str) -> Parsed {
    let mut samples = BTreeMap::new();
    let mut types = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut helped: Option<String> = None;
    assert!(text.ends_with('\n'), "exposition ends with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(valid_metric_name(name), "{line}");
            assert!(!types.contains_key(name), "family declared twice: {name}");
            helped = Some(name.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert_eq!(helped.as_deref(), Some(name), "HELP before TYPE: {line}");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "{line}");
            types.insert(name.to_string(), kind.to_string());
            current = Some(name.to_string());
            continue;
        }
        assert!(!line.starts_with('#') && !line.is_empty(), "{line}");
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let value: f64 = match value {
            "NaN" => f64::NAN,
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => {
                let l = l.strip_suffix('}').expect("closing brace");
                check_labels(l, line);
                (n, l.to_string())
            }
            None => (series, String::new()),
        };
        assert!(valid_metric_name(name), "{line}");
        let family = current.as_deref().unwrap_or_default();
        let histogram_part = types.get(family).is_some_and(|k| k == "histogram")
            && ["_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| name.strip_suffix(suffix) == Some(family));
        if histogram_part && name.ends_with("_bucket") {
            assert!(labels.contains("le=\""), "bucket without le: {line}");
        }
        assert!(
            name == family || histogram_part,
            "sample outside its family: {line}"
        );
        let dup = samples.insert((name.to_string(), labels), value);
        assert!(dup.is_none(), "duplicate series: {line}");
    }
    Parsed { samples, types }
}

fn check_labels(labels: &str, line: &str) {
    let mut rest = labels;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").expect("label=\"");
        assert!(valid_label_name(name), "{line}");
        let mut end = None;
        let mut escaped = false;
        for (i, c) in after.char_indices() {
            match (escaped, c) {
                (true, '\\' | '"' | 'n') => escaped = false,
                (true, _) => panic!("bad escape in {line}"),
                (false, '\\') => escaped = true,
                (false, '"') => {
                    end = Some(i);
                    break;
                }
                (false, '\n') => panic!("raw newline in {line}"),
                _ => {}
            }
        }
        let end = end.expect("closing quote");
        rest = &after[end + 1..];
        rest = rest.strip_prefix(',').unwrap_or(rest);
    }
}

#[test]
fn metrics_parse_back_with_counters_present() {
    let f = fixture(Settings::default());
    let r = get(&view(&f), "/metrics");
    assert_eq!((r.status, r.content_type), (200, exposition::CONTENT_TYPE));
    let m = parse_exposition(&String::from_utf8(r.body).unwrap());
    let want = [
        ("mpreg_client_messages_total", "", 7.0),
        ("mpreg_fabric_messages_total", "", 11.0),
        ("mpreg_client_frames_rejected_total", "", 1.0),
        ("mpreg_discovery_rate_limited_total", "", 3.0),
        (
            "mpreg_fabric_auth_refused_total",
            "reason=\"auth_failed\"",
            1.0,
        ),
        (
            "mpreg_fabric_auth_refused_total",
            "reason=\"auth_missing\"",
            0.0,
        ),
        (
            "mpreg_limit_hits_total",
            "limit=\"connections_per_source\"",
            1.0,
        ),
        ("mpreg_limit_hits_total", "limit=\"client_idle\"", 0.0),
        (
            "mpreg_fabric_sent_frames_total",
            "kind=\"digest-reply\"",
            2.0,
        ),
        (
            "mpreg_fabric_sent_bytes_total",
            "kind=\"digest-reply\"",
            240.0,
        ),
        ("mpreg_fabric_sent_bytes_total", "kind=\"delta-flood\"", 0.0),
        ("mpreg_peers", "state=\"connected\"", 2.0),
        ("mpreg_peers", "state=\"suspected\"", 1.0),
        ("mpreg_peers", "state=\"departed\"", 1.0),
        ("mpreg_catalog_entries", "kind=\"functions\"", 12.0),
        ("mpreg_catalog_entries", "kind=\"cache_profiles\"", 0.0),
        ("mpreg_registrations", "", 4.0),
        ("mpreg_dns_queries_total", "transport=\"udp\"", 4.0),
        ("mpreg_dns_responses_total", "outcome=\"nxdomain\"", 2.0),
        ("mpreg_access_audit_entries", "", 1.0),
        ("mpreg_access_audit_recorded_total", "", 1.0),
        ("mpreg_uptime_seconds", "", 60.0),
        ("mpreg_peer_dial_targets", "", 2.0),
        ("mpreg_discovery_summary_exports", "", 0.0),
        ("mpreg_discovery_summary_hold_downs", "", 0.0),
        ("mpreg_discovery_cache_stale_serves", "", 0.0),
        ("mpreg_discovery_delta_dropped", "", 0.0),
        // The fixture's 300 µs query and 20 µs DNS answer.
        (
            "mpreg_discovery_query_latency_ms_bucket",
            "le=\"0.25\"",
            0.0,
        ),
        ("mpreg_discovery_query_latency_ms_bucket", "le=\"0.5\"", 1.0),
        (
            "mpreg_discovery_query_latency_ms_bucket",
            "le=\"+Inf\"",
            1.0,
        ),
        ("mpreg_discovery_query_latency_ms_count", "", 1.0),
        ("mpreg_discovery_query_latency_ms_sum", "", 0.3),
        ("mpreg_dns_query_latency_ms_bucket", "le=\"0.025\"", 1.0),
        ("mpreg_dns_query_latency_ms_count", "", 1.0),
    ];
    for (name, labels, value) in want {
        assert_eq!(m.value(name, labels), Some(value), "{name}{{{labels}}}");
    }
    assert_eq!(
        m.value(
            "mpreg_node_info",
            "node_id=\"ws://127.0.0.1:7001\",cluster_id=\"demo\",instance_id=\"01INSTANCE\""
        ),
        Some(1.0)
    );
    // Ratios and lags without a source are declared but have no sample.
    assert_eq!(m.types["mpreg_discovery_cache_hit_rate"], "gauge");
    assert_eq!(m.value("mpreg_discovery_cache_hit_rate", ""), None);
    assert_eq!(m.value("mpreg_discovery_delta_lag_ms", ""), None);
    assert_eq!(m.types["mpreg_client_messages_total"], "counter");
    assert_eq!(m.types["mpreg_peers"], "gauge");
}

#[test]
fn label_values_are_escaped_in_the_scrape() {
    let mut f = fixture(Settings::default());
    f.me.cluster_id = "a\"b\\c\nd".into();
    let text = String::from_utf8(get(&view(&f), "/metrics").body).unwrap();
    let m = parse_exposition(&text);
    assert!(text.contains(r#"cluster_id="a\"b\\c\nd""#), "{text}");
    assert_eq!(m.types.len(), m.types.keys().collect::<BTreeSet<_>>().len());
}
