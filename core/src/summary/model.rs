//! The summary wire records, with MPREG's field names and omission rules
//! (`discovery_logic.md` §3.1, §3.6; `client_protocol.md` §3.7–3.8).
//!
//! Differences from MPREG, all additive so MPREG clients still parse them:
//! `latency_band_ms` carries a measured band when there is one, and MPREG's
//! `[0,0]` when nothing was measured (never `null`: MPREG's client turns the
//! field into a tuple), so `[0,0]` reads as "unmeasured"; `health_band` takes the values
//! `healthy` / `degraded` / `unhealthy` (MPREG only ever says `healthy`); a
//! message may carry `withdrawn`, the services that left the export.

use serde_json::{json, Map, Value};

use crate::catalog::scope::Scope;

/// The base summary topic.
pub const SUMMARY_TOPIC: &str = "mpreg.discovery.summary";

/// `mpreg.discovery.summary[.<scope>][.<namespace>]` (§3.6).
pub fn summary_topic(scope: Option<Scope>, namespace: Option<&str>) -> String {
    let mut t = String::from(SUMMARY_TOPIC);
    if let Some(s) = scope {
        t.push('.');
        t.push_str(s.as_str());
    }
    if let Some(ns) = namespace.filter(|n| !n.is_empty()) {
        t.push('.');
        t.push_str(ns);
    }
    t
}

/// Health of a service's endpoints, from real endpoint state
/// ([`super::build`] says how it is measured).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HealthBand {
    /// Every endpoint is healthy.
    Healthy,
    /// At least half are.
    Degraded,
    /// Fewer than half are.
    Unhealthy,
}

impl HealthBand {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthBand::Healthy => "healthy",
            HealthBand::Degraded => "degraded",
            HealthBand::Unhealthy => "unhealthy",
        }
    }

    /// The band of `healthy` endpoints out of `total` (`total` 0 → unhealthy).
    pub fn of(healthy: u64, total: u64) -> HealthBand {
        if total == 0 {
            HealthBand::Unhealthy
        } else if healthy >= total {
            HealthBand::Healthy
        } else if healthy * 2 >= total {
            HealthBand::Degraded
        } else {
            HealthBand::Unhealthy
        }
    }
}

/// One service summary (MPREG's `ServiceSummary`).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSummary {
    /// The service's namespace (its name up to the last dot).
    pub namespace: String,
    /// The service (function) name.
    pub service_id: String,
    /// Regions the endpoints live in.
    pub regions: Vec<String>,
    /// Endpoints summarised.
    pub endpoint_count: u64,
    /// Health band (wire: `healthy` / `degraded` / `unhealthy`; free text
    /// from other implementations is kept as received).
    pub health_band: String,
    /// Measured latency band in milliseconds; `None` = not measured (`null`).
    pub latency_band_ms: Option<(f64, f64)>,
    /// Lifetime after `generated_at`.
    pub ttl_seconds: f64,
    /// When the exporter produced it (its wall clock).
    pub generated_at: f64,
    /// Export (or query) scope.
    pub scope: Option<Scope>,
    /// The governing policy rule's version.
    pub policy_version: Option<String>,
    /// The cluster whose endpoints these are.
    pub source_cluster: Option<String>,
}

impl ServiceSummary {
    /// MPREG's JSON: `namespace`, `scope`, `policy_version`,
    /// `source_cluster` omitted when empty; the rest always present.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if !self.namespace.is_empty() {
            m.insert("namespace".into(), json!(self.namespace));
        }
        m.insert("service_id".into(), json!(self.service_id));
        m.insert("regions".into(), json!(self.regions));
        m.insert("endpoint_count".into(), json!(self.endpoint_count));
        m.insert("health_band".into(), json!(self.health_band));
        m.insert(
            "latency_band_ms".into(),
            match self.latency_band_ms {
                Some((lo, hi)) => json!([lo, hi]),
                None => json!([0, 0]),
            },
        );
        m.insert("ttl_seconds".into(), json!(self.ttl_seconds));
        m.insert("generated_at".into(), json!(self.generated_at));
        if let Some(s) = self.scope {
            m.insert("scope".into(), json!(s.as_str()));
        }
        if let Some(v) = self.policy_version.as_deref().filter(|v| !v.is_empty()) {
            m.insert("policy_version".into(), json!(v));
        }
        if let Some(c) = self.source_cluster.as_deref().filter(|c| !c.is_empty()) {
            m.insert("source_cluster".into(), json!(c));
        }
        Value::Object(m)
    }

    /// Parses a summary as MPREG (or we) send it. `service_id` is required;
    /// everything else falls back to MPREG's defaults; an unknown scope
    /// string is an error, as the summary cannot be placed.
    pub fn from_json(v: &Value) -> Result<ServiceSummary, String> {
        let o = v.as_object().ok_or("summary is not an object")?;
        let text = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
        let service_id = text("service_id")
            .filter(|s| !s.is_empty())
            .ok_or("summary without service_id")?;
        let num = |k: &str| o.get(k).and_then(Value::as_f64).filter(|f| f.is_finite());
        let latency_band_ms = match o.get("latency_band_ms").and_then(Value::as_array) {
            Some(a) if a.len() >= 2 => match (a[0].as_f64(), a[1].as_f64()) {
                // `[0,0]` is MPREG's (and our) "nothing measured".
                (Some(lo), Some(hi)) if (lo, hi) != (0.0, 0.0) => Some((lo, hi)),
                _ => None,
            },
            _ => None,
        };
        let scope = Scope::parse_request(o.get("scope").and_then(Value::as_str))
            .map_err(|e| e.to_string())?;
        Ok(ServiceSummary {
            namespace: text("namespace").unwrap_or_default(),
            service_id,
            regions: o
                .get("regions")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            endpoint_count: o.get("endpoint_count").and_then(Value::as_u64).unwrap_or(0),
            health_band: text("health_band").unwrap_or_else(|| "healthy".into()),
            latency_band_ms,
            ttl_seconds: num("ttl_seconds").unwrap_or(0.0),
            generated_at: num("generated_at").unwrap_or(0.0),
            scope,
            policy_version: text("policy_version").filter(|s| !s.is_empty()),
            source_cluster: text("source_cluster").filter(|s| !s.is_empty()),
        })
    }

    /// The hold-down template line (§3.4): everything but `ttl_seconds` and
    /// `generated_at`.
    pub fn template_line(&self) -> String {
        let (lo, hi) = match self.latency_band_ms {
            Some((lo, hi)) => (lo.to_string(), hi.to_string()),
            None => (String::new(), String::new()),
        };
        format!(
            "{}|{}|{}|{}|{}|{}-{}|{}|{}",
            self.service_id,
            self.scope.map(Scope::as_str).unwrap_or(""),
            self.endpoint_count,
            self.regions.join(","),
            self.health_band,
            lo,
            hi,
            self.policy_version.as_deref().unwrap_or(""),
            self.source_cluster.as_deref().unwrap_or("")
        )
    }
}

/// A service that left an export: resolvers drop it at once instead of
/// waiting for its TTL (ours; MPREG has no withdrawals).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Withdrawal {
    /// Its namespace.
    pub namespace: String,
    /// The service.
    pub service_id: String,
}

/// MPREG's `DiscoverySummaryMessage`, plus our `withdrawn` list.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryMessage {
    /// The summaries (always present, possibly empty).
    pub summaries: Vec<ServiceSummary>,
    /// Namespaces the message covers (always present).
    pub namespaces: Vec<String>,
    /// The exporting node's URL.
    pub source_node: String,
    /// The exporting cluster.
    pub source_cluster: String,
    /// Export time (exporter's wall clock).
    pub published_at: f64,
    /// Export scope.
    pub scope: Option<Scope>,
    /// Services withdrawn since the previous exports (omitted when empty).
    pub withdrawn: Vec<Withdrawal>,
}

impl SummaryMessage {
    /// The notification payload.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "summaries".into(),
            Value::Array(self.summaries.iter().map(ServiceSummary::to_json).collect()),
        );
        m.insert("namespaces".into(), json!(self.namespaces));
        m.insert("source_node".into(), json!(self.source_node));
        m.insert("source_cluster".into(), json!(self.source_cluster));
        m.insert("published_at".into(), json!(self.published_at));
        if let Some(s) = self.scope {
            m.insert("scope".into(), json!(s.as_str()));
        }
        if !self.withdrawn.is_empty() {
            m.insert(
                "withdrawn".into(),
                Value::Array(
                    self.withdrawn
                        .iter()
                        .map(|w| json!({"namespace": w.namespace, "service_id": w.service_id}))
                        .collect(),
                ),
            );
        }
        Value::Object(m)
    }

    /// Parses a payload; malformed summaries make the whole message invalid
    /// (MPREG's `from_dict` raises the same way).
    pub fn from_json(v: &Value) -> Result<SummaryMessage, String> {
        let o = v.as_object().ok_or("summary message is not an object")?;
        let summaries = match o.get("summaries") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a
                .iter()
                .map(ServiceSummary::from_json)
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("summaries is not a list".into()),
        };
        let namespaces = match o.get("namespaces") {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        let text = |k: &str| {
            o.get(k)
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_default()
        };
        let withdrawn = o
            .get("withdrawn")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|w| {
                        Some(Withdrawal {
                            namespace: w.get("namespace")?.as_str()?.to_string(),
                            service_id: w.get("service_id")?.as_str()?.to_string(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(SummaryMessage {
            summaries,
            namespaces,
            source_node: text("source_node"),
            source_cluster: text("source_cluster"),
            published_at: o
                .get("published_at")
                .and_then(Value::as_f64)
                .filter(|f| f.is_finite())
                .unwrap_or(0.0),
            scope: Scope::parse_request(o.get("scope").and_then(Value::as_str))
                .map_err(|e| e.to_string())?,
            withdrawn,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(service: &str) -> ServiceSummary {
        ServiceSummary {
            namespace: crate::catalog::namespace::name_namespace(service).to_string(),
            service_id: service.into(),
            regions: vec!["eu".into()],
            endpoint_count: 2,
            health_band: "healthy".into(),
            latency_band_ms: None,
            ttl_seconds: 120.0,
            generated_at: 10.0,
            scope: Some(Scope::Global),
            policy_version: None,
            source_cluster: Some("eu".into()),
        }
    }

    #[test]
    fn topics_follow_mpreg_naming() {
        assert_eq!(
            summary_topic(Some(Scope::Global), Some("svc.market")),
            "mpreg.discovery.summary.global.svc.market"
        );
        assert_eq!(
            summary_topic(Some(Scope::Global), None),
            "mpreg.discovery.summary.global"
        );
        assert_eq!(
            summary_topic(None, Some("svc.market")),
            "mpreg.discovery.summary.svc.market"
        );
        assert_eq!(summary_topic(None, Some("")), "mpreg.discovery.summary");
    }

    #[test]
    fn summary_json_round_trips_with_omissions() {
        let s = sample("svc.market.quote");
        let v = s.to_json();
        assert!(v.get("policy_version").is_none());
        assert_eq!(v["latency_band_ms"], json!([0, 0]));
        assert_eq!(v["scope"], "global");
        assert_eq!(ServiceSummary::from_json(&v).unwrap(), s);
        let mut measured = s.clone();
        measured.latency_band_ms = Some((1.5, 9.0));
        assert_eq!(
            ServiceSummary::from_json(&measured.to_json()).unwrap(),
            measured
        );
    }

    #[test]
    fn mpreg_payload_parses() {
        let raw = json!({"summaries":[{"namespace":"svc.market","service_id":"svc.market.quote",
            "regions":["local"],"endpoint_count":2,"health_band":"healthy","latency_band_ms":[0,0],
            "ttl_seconds":120.0,"generated_at":1.0,"scope":"global","policy_version":"v1",
            "source_cluster":"cluster-a"}],"namespaces":"svc.market","source_node":"ws://a:1",
            "source_cluster":"cluster-a","published_at":1.0,"scope":"global"});
        let m = SummaryMessage::from_json(&raw).unwrap();
        assert_eq!(m.namespaces, vec!["svc.market".to_string()]);
        assert_eq!(m.summaries[0].latency_band_ms, None, "[0,0] is unmeasured");
        assert!(m.withdrawn.is_empty());
        assert!(SummaryMessage::from_json(&json!({"summaries": [{"x": 1}]})).is_err());
        assert!(SummaryMessage::from_json(&json!({"scope": "planet"})).is_err());
        assert!(SummaryMessage::from_json(&json!(3)).is_err());
    }

    #[test]
    fn withdrawals_are_additive() {
        let m = SummaryMessage {
            summaries: vec![],
            namespaces: vec!["svc.a".into()],
            source_node: "ws://n:1".into(),
            source_cluster: "eu".into(),
            published_at: 5.0,
            scope: Some(Scope::Global),
            withdrawn: vec![Withdrawal {
                namespace: "svc.a".into(),
                service_id: "svc.a.x".into(),
            }],
        };
        let v = m.to_json();
        assert_eq!(v["withdrawn"][0]["service_id"], "svc.a.x");
        assert_eq!(SummaryMessage::from_json(&v).unwrap(), m);
    }

    #[test]
    fn health_bands() {
        assert_eq!(HealthBand::of(3, 3), HealthBand::Healthy);
        assert_eq!(HealthBand::of(2, 3), HealthBand::Degraded);
        assert_eq!(HealthBand::of(1, 2), HealthBand::Degraded);
        assert_eq!(HealthBand::of(1, 3), HealthBand::Unhealthy);
        assert_eq!(HealthBand::of(0, 0), HealthBand::Unhealthy);
    }
}
