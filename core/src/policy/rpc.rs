//! Handlers of the policy and audit RPCs, MPREG-compatible
//! (`client_protocol.md` §3.11–3.16) plus ours (`namespace_policy_rollback`,
//! audit filters, version fields).
//!
//! Each is a pure function of what it needs, the request payload and the wall
//! time; it returns the value that goes under `r.<name>` or an [`RpcError`].
//! The caller does what is common to every command first: resolve the
//! [`Viewer`], run the admin gate ([`crate::identity::IdentityConfig::authorize`])
//! and the rate limiter ([`crate::ratelimit`]; `namespace_status` is limited).
//! After a handler that takes `&mut PolicyHistory`, the caller persists the
//! history if [`PolicyHistory::revision`] moved, and re-installs the catalog
//! ingestion filter if the current version changed.

use serde_json::{json, Map, Value};

use crate::audit::{AccessAudit, AccessAuditFilter, DEFAULT_AUDIT_LIMIT};
use crate::catalog::namespace::NamespaceFilter;
use crate::identity::Viewer;
use crate::wire::client::{json_type_name, RpcError};

use super::engine::PolicyEngine;
use super::history::{PolicyHistory, PolicyProposal};
use super::rules::rules_from_json;

/// Policy audit entries and access-audit entries shown by [`policy_status`]
/// (MPREG's monitoring endpoint shows the last 20).
pub const STATUS_AUDIT_ENTRIES: usize = 20;

/// Summary-export statistics of a namespace subtree, from the summary
/// exporter (`discovery_logic.md` §2.6): omitted from `namespace_status` when
/// `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ExportStats {
    /// Summaries exported under the namespace.
    pub summaries_exported: Option<u64>,
    /// Wall time of the latest export under it.
    pub last_export_at: Option<f64>,
}

/// `namespace_status {namespace, viewer_cluster_id?, viewer_tenant_id?}` for
/// the resolved `viewer` (the request's viewer fields are the caller's to
/// resolve): `{namespace?, generated_at, viewer_cluster_id, viewer_tenant_id,
/// allowed, reason, rule?, summaries_exported?, last_export_at?}`.
///
/// Unlike MPREG, the matched rule is returned only to a viewer who may see
/// the namespace: a denied viewer learns the decision, never the owner and
/// visibility lists. A denial is recorded in the access audit and answered
/// normally. `svc.prod.*` asks about `svc.prod`.
pub fn namespace_status(
    engine: &PolicyEngine,
    viewer: &Viewer,
    audit: &mut AccessAudit,
    export_stats: impl FnOnce(&str) -> ExportStats,
    payload: &Map<String, Value>,
    now: f64,
) -> Result<Value, RpcError> {
    let p = Fields::new("namespace_status", payload);
    let raw = p.str("namespace")?.unwrap_or_default();
    let filter = NamespaceFilter::parse(&raw);
    let namespace = filter.as_str();
    let decision = engine.allows(namespace, viewer);
    if !decision.allowed {
        audit.record_denial(
            "namespace_status",
            viewer,
            Some(namespace),
            decision.reason.as_str(),
            now,
        );
    }
    let mut out = Map::new();
    if !namespace.is_empty() {
        out.insert("namespace".into(), json!(namespace));
    }
    out.insert("generated_at".into(), json!(now));
    out.insert("viewer_cluster_id".into(), json!(viewer.cluster));
    out.insert("viewer_tenant_id".into(), json!(viewer.tenant));
    out.insert("allowed".into(), json!(decision.allowed));
    out.insert("reason".into(), json!(decision.reason.as_str()));
    if decision.allowed {
        if let Some(rule) = decision.rule {
            out.insert("rule".into(), rule.to_json());
        }
    }
    let stats = if namespace.is_empty() {
        ExportStats::default()
    } else {
        export_stats(namespace)
    };
    if let Some(n) = stats.summaries_exported {
        out.insert("summaries_exported".into(), json!(n));
    }
    if let Some(t) = stats.last_export_at {
        out.insert("last_export_at".into(), json!(t));
    }
    Ok(Value::Object(out))
}

/// `namespace_policy_validate {rules?, enabled?, default_allow?, actor?}` →
/// `{valid, generated_at, rule_count, errors}`; records a `validate` audit
/// entry. Without `rules` the current rules are validated. `principal` is
/// the connection's authenticated principal, which the audit's actor names
/// whatever the request claims.
pub fn namespace_policy_validate(
    history: &mut PolicyHistory,
    principal: Option<&str>,
    payload: &Map<String, Value>,
    now: f64,
) -> Result<Value, RpcError> {
    let fun = "namespace_policy_validate";
    let request = parse_proposal(fun, payload, principal)?;
    let (count, errors) = match request.proposal {
        Ok(proposal) => {
            let count = proposal
                .rules
                .as_ref()
                .map_or(history.current().rules.len(), Vec::len);
            (count, history.validate(&proposal, request.actor, now))
        }
        Err((count, errors)) => {
            history.record_invalid("validate", request.actor, count, errors.clone(), now);
            (count, errors)
        }
    };
    Ok(json!({
        "valid": errors.is_empty(),
        "generated_at": now,
        "rule_count": count,
        "errors": errors,
    }))
}

/// `namespace_policy_apply {rules?, enabled?, default_allow?, actor?}` →
/// `{applied, valid, generated_at, rule_count, errors}` plus ours, `version`
/// (the new version) when applied. Invalid rules change nothing. Missing
/// fields keep the current version's values. Needs the admin role when
/// credentials are configured (the caller's gate).
pub fn namespace_policy_apply(
    history: &mut PolicyHistory,
    principal: Option<&str>,
    payload: &Map<String, Value>,
    now: f64,
) -> Result<Value, RpcError> {
    let fun = "namespace_policy_apply";
    let request = parse_proposal(fun, payload, principal)?;
    let (count, result) = match request.proposal {
        Ok(proposal) => {
            let count = proposal
                .rules
                .as_ref()
                .map_or(history.current().rules.len(), Vec::len);
            (count, history.apply(&proposal, request.actor, now))
        }
        Err((count, errors)) => {
            history.record_invalid("apply", request.actor, count, errors.clone(), now);
            (count, Err(errors))
        }
    };
    Ok(match result {
        Ok(version) => json!({
            "applied": true,
            "valid": true,
            "generated_at": now,
            "rule_count": count,
            "errors": [],
            "version": version,
        }),
        Err(errors) => json!({
            "applied": false,
            "valid": false,
            "generated_at": now,
            "rule_count": count,
            "errors": errors,
        }),
    })
}

/// `namespace_policy_export {version?}` → `{enabled, default_allow,
/// generated_at, rule_count, rules}` plus ours, `version`, `event`,
/// `applied_at`, `actor?`. With `version` (ours), that kept version instead of
/// the current one; `versions: true` (ours) adds `versions`, a summary of every
/// kept version.
pub fn namespace_policy_export(
    history: &PolicyHistory,
    payload: &Map<String, Value>,
    now: f64,
) -> Result<Value, RpcError> {
    let p = Fields::new("namespace_policy_export", payload);
    let mut out = match p.int("version")? {
        None => history.export(now),
        Some(v) => u64::try_from(v)
            .ok()
            .and_then(|v| history.export_version(v, now))
            .ok_or_else(|| unknown_version(p.fun, v, history))?,
    };
    if p.bool("versions")?.unwrap_or(false) {
        out["versions"] = history
            .versions()
            .iter()
            .map(|v| v.summary_json())
            .collect();
    }
    Ok(out)
}

/// `namespace_policy_audit {limit?}` → `{generated_at, entries}`, the newest
/// `limit` entries oldest first. No limit = [`DEFAULT_AUDIT_LIMIT`]; `0` = none;
/// negative = error 1003 (MPREG returns everything for all three).
pub fn namespace_policy_audit(
    history: &PolicyHistory,
    payload: &Map<String, Value>,
    now: f64,
) -> Result<Value, RpcError> {
    let p = Fields::new("namespace_policy_audit", payload);
    Ok(history.audit(p.limit()?, now))
}

/// `namespace_policy_rollback {version, actor?}` (ours) → `{rolled_back,
/// generated_at, version, restored_version, enabled, default_allow,
/// rule_count}`: enforces the policy of a kept earlier version again as a
/// new version. An unknown version is error 1003. Needs the admin role when
/// credentials are configured (the caller's gate).
pub fn namespace_policy_rollback(
    history: &mut PolicyHistory,
    principal: Option<&str>,
    payload: &Map<String, Value>,
    now: f64,
) -> Result<Value, RpcError> {
    let p = Fields::new("namespace_policy_rollback", payload);
    let Some(to) = p.int("version")? else {
        return Err(RpcError::failed(format!(
            "{}: `version` is required (the policy version to restore)",
            p.fun
        )));
    };
    let actor = actor_of(principal, p.str("actor")?);
    let Ok(to_u) = u64::try_from(to) else {
        return Err(unknown_version(p.fun, to, history));
    };
    let version = history
        .rollback(to_u, actor, now)
        .map_err(|e| RpcError::failed(format!("{}: {e}", p.fun)))?;
    let cur = history.current();
    Ok(json!({
        "rolled_back": true,
        "generated_at": now,
        "version": version,
        "restored_version": to_u,
        "enabled": cur.enabled,
        "default_allow": cur.default_allow,
        "rule_count": cur.rules.len(),
    }))
}

/// `discovery_access_audit {limit?, event?, namespace?, viewer_cluster_id?,
/// viewer_tenant_id?, reason?, since?}` → `{generated_at, entries}`: the
/// newest `limit` matching entries, oldest first (limit as
/// [`namespace_policy_audit`]; the filters are ours).
pub fn discovery_access_audit(
    audit: &AccessAudit,
    payload: &Map<String, Value>,
    now: f64,
) -> Result<Value, RpcError> {
    let p = Fields::new("discovery_access_audit", payload);
    let limit = p.limit()?;
    let filter = AccessAuditFilter {
        event: p.str("event")?,
        namespace: p.str("namespace")?.map(|ns| NamespaceFilter::parse(&ns)),
        viewer_cluster_id: p.str("viewer_cluster_id")?,
        viewer_tenant_id: p.str("viewer_tenant_id")?,
        reason: p.str("reason")?,
        since: p.float("since")?,
    };
    let entries: Vec<Value> = audit
        .query(&filter, limit)
        .into_iter()
        .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
        .collect();
    Ok(json!({"generated_at": now, "entries": entries}))
}

/// The body of the monitoring endpoint `/discovery/policy`
/// (`DiscoveryPolicyStatus`): `{enabled, generated_at, default_allow,
/// rule_count, rules, audit_entries, audit_total, access_entries,
/// access_total}` (the last [`STATUS_AUDIT_ENTRIES`] of each ring; totals are
/// entries held) plus ours, `version`.
pub fn policy_status(history: &PolicyHistory, access: &AccessAudit, now: f64) -> Value {
    let engine = history.engine();
    let audit_entries: Vec<Value> = history
        .audit_ring()
        .last(STATUS_AUDIT_ENTRIES)
        .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
        .collect();
    let access_entries: Vec<Value> = access
        .ring()
        .last(STATUS_AUDIT_ENTRIES)
        .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
        .collect();
    json!({
        "enabled": engine.enabled(),
        "generated_at": now,
        "default_allow": engine.default_allow(),
        "rule_count": engine.rules().len(),
        "rules": engine.rules().iter().map(|r| r.to_json()).collect::<Vec<_>>(),
        "audit_entries": audit_entries,
        "audit_total": history.audit_ring().len(),
        "access_entries": access_entries,
        "access_total": access.ring().len(),
        "version": history.current().version,
    })
}

struct ProposalRequest {
    /// The proposal, or (rule count, parse errors) when `rules` is malformed.
    proposal: Result<PolicyProposal, (usize, Vec<String>)>,
    actor: Option<String>,
}

fn parse_proposal(
    fun: &'static str,
    payload: &Map<String, Value>,
    principal: Option<&str>,
) -> Result<ProposalRequest, RpcError> {
    let p = Fields::new(fun, payload);
    let enabled = p.bool("enabled")?;
    let default_allow = p.bool("default_allow")?;
    let actor = actor_of(principal, p.str("actor")?);
    let proposal = match payload.get("rules") {
        None | Some(Value::Null) => Ok(PolicyProposal {
            rules: None,
            enabled,
            default_allow,
        }),
        Some(v) => match rules_from_json(v) {
            (_, Ok(rules)) => Ok(PolicyProposal {
                rules: Some(rules),
                enabled,
                default_allow,
            }),
            (count, Err(errors)) => Err((count, errors)),
        },
    };
    Ok(ProposalRequest { proposal, actor })
}

/// The audit actor: an authenticated principal always; what the request
/// claims is kept beside it when it differs.
fn actor_of(principal: Option<&str>, declared: Option<String>) -> Option<String> {
    match (principal, declared) {
        (Some(p), Some(d)) if d != p => Some(format!("{p} (as {d})")),
        (Some(p), _) => Some(p.to_string()),
        (None, d) => d,
    }
}

fn unknown_version(fun: &str, v: i64, history: &PolicyHistory) -> RpcError {
    RpcError::failed(format!(
        "{fun}: policy version {v} does not exist (kept versions: {}..={})",
        history.versions()[0].version,
        history.current().version
    ))
}

/// Payload fields with MPREG's leniency (missing or `null` = not given) and
/// 1003 errors naming the key, as `api::request::Payload` words them.
struct Fields<'a> {
    fun: &'static str,
    map: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn new(fun: &'static str, map: &'a Map<String, Value>) -> Self {
        Fields { fun, map }
    }

    fn wrong(&self, key: &str, expected: &str, got: &Value) -> RpcError {
        RpcError::failed(format!(
            "{}: `{key}` must be {expected}, got {}",
            self.fun,
            json_type_name(got)
        ))
    }

    /// Optional string, trimmed; empty = absent.
    fn str(&self, key: &str) -> Result<Option<String>, RpcError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                let t = s.trim();
                Ok((!t.is_empty()).then(|| t.to_string()))
            }
            Some(other) => Err(self.wrong(key, "a string", other)),
        }
    }

    /// Optional boolean.
    fn bool(&self, key: &str) -> Result<Option<bool>, RpcError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong(key, "true or false", other)),
        }
    }

    /// Optional integer (integral floats and numeric strings accepted).
    fn int(&self, key: &str) -> Result<Option<i64>, RpcError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v @ Value::Number(n)) => match n.as_i64() {
                Some(i) => Ok(Some(i)),
                None => match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
                    _ => Err(self.wrong(key, "an integer", v)),
                },
            },
            Some(v @ Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| self.wrong(key, "an integer", v)),
            Some(other) => Err(self.wrong(key, "an integer", other)),
        }
    }

    /// Optional finite number (numeric strings accepted).
    fn float(&self, key: &str) -> Result<Option<f64>, RpcError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(v @ Value::Number(n)) => n
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a number", v)),
            Some(v @ Value::String(s)) => match s.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Some(f)),
                _ => Err(self.wrong(key, "a number", v)),
            },
            Some(other) => Err(self.wrong(key, "a number", other)),
        }
    }

    /// Audit `limit`: absent = [`DEFAULT_AUDIT_LIMIT`], `0` = none, negative
    /// = error.
    fn limit(&self) -> Result<usize, RpcError> {
        match self.int("limit")? {
            None => Ok(DEFAULT_AUDIT_LIMIT),
            Some(n) if n < 0 => Err(RpcError::failed(format!(
                "{}: `limit` must be 0 or more, got {n}",
                self.fun
            ))),
            Some(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PolicyRuleConfig, Settings};
    use std::collections::BTreeSet;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    fn keys(v: &Value) -> BTreeSet<String> {
        v.as_object().unwrap().keys().cloned().collect()
    }

    /// The `r.namespace_status` object of
    /// `reference/mpreg_wire/namespace_status.single.json`.
    const CAPTURE_STATUS_SINGLE: &str = r#"{"namespace":"catalog_query","generated_at":1795519683.194701,"viewer_cluster_id":"ref-cluster","viewer_tenant_id":null,"allowed":true,"reason":"no_policy","summaries_exported":39,"last_export_at":1795519682.833765}"#;
    /// ... of `namespace_status.c3.json`.
    const CAPTURE_STATUS_C3: &str = r#"{"namespace":"catalog_query","generated_at":1795519957.874841,"viewer_cluster_id":"c3","viewer_tenant_id":null,"allowed":true,"reason":"policy_disabled","summaries_exported":4,"last_export_at":1795519954.7669926}"#;
    /// ... of `discovery_access_audit.single.json`.
    const CAPTURE_ACCESS_AUDIT: &str = r#"{"generated_at":1795519681.4486263,"entries":[]}"#;

    fn secret_rule() -> PolicyRuleConfig {
        PolicyRuleConfig {
            namespace: "svc.secret".into(),
            owners: vec!["cluster-a".into()],
            visibility: vec!["secure-cluster".into()],
            visibility_tenants: vec![],
            export_scopes: vec![],
            allow_summaries: false,
            cutover_windows: vec![],
            policy_version: Some("v1".into()),
        }
    }

    fn policy_settings(enabled: bool) -> Settings {
        Settings {
            discovery_policy_enabled: enabled,
            discovery_policy_rules: vec![secret_rule()],
            ..Default::default()
        }
    }

    #[test]
    fn namespace_status_matches_the_captures() {
        // single: policy enabled, no rule for the namespace.
        let h = PolicyHistory::new(&policy_settings(true), 0.0).unwrap();
        let mut audit = AccessAudit::new(10);
        let v = namespace_status(
            h.engine(),
            &Viewer::new("ref-cluster", None),
            &mut audit,
            |ns| {
                assert_eq!(ns, "catalog_query");
                ExportStats {
                    summaries_exported: Some(39),
                    last_export_at: Some(1795519682.833765),
                }
            },
            &map(json!({"namespace": "catalog_query"})),
            1795519683.194701,
        )
        .unwrap();
        let want: Value = serde_json::from_str(CAPTURE_STATUS_SINGLE).unwrap();
        assert_eq!(v, want);

        // c3: policy disabled.
        let h = PolicyHistory::new(&policy_settings(false), 0.0).unwrap();
        let v = namespace_status(
            h.engine(),
            &Viewer::new("c3", None),
            &mut audit,
            |_| ExportStats {
                summaries_exported: Some(4),
                last_export_at: Some(1795519954.7669926),
            },
            &map(json!({"namespace": "catalog_query"})),
            1795519957.874841,
        )
        .unwrap();
        let want: Value = serde_json::from_str(CAPTURE_STATUS_C3).unwrap();
        assert_eq!(v, want);
        assert!(audit.ring().is_empty(), "allowed requests are not audited");
    }

    #[test]
    fn namespace_status_redacts_the_rule_for_denied_viewers() {
        let h = PolicyHistory::new(&policy_settings(true), 0.0).unwrap();
        let mut audit = AccessAudit::new(10);
        let denied = namespace_status(
            h.engine(),
            &Viewer::new("cluster-a", None),
            &mut audit,
            |_| ExportStats::default(),
            &map(json!({"namespace": "svc.secret"})),
            1732440008.0,
        )
        .unwrap();
        // §3.11's example minus the leaked rule.
        assert_eq!(
            denied,
            json!({"namespace":"svc.secret","generated_at":1732440008.0,"viewer_cluster_id":"cluster-a","viewer_tenant_id":null,"allowed":false,"reason":"viewer_denied"})
        );
        let e = &audit.ring().iter().collect::<Vec<_>>()[0];
        assert_eq!(
            (e.event.as_str(), e.reason.as_str()),
            ("namespace_status", "viewer_denied")
        );
        assert_eq!(e.namespace.as_deref(), Some("svc.secret"));

        let allowed = namespace_status(
            h.engine(),
            &Viewer::new("secure-cluster", Some("t1".into())),
            &mut audit,
            |_| ExportStats::default(),
            &map(json!({"namespace": " svc.secret.api.* "})),
            1.0,
        )
        .unwrap();
        assert_eq!(allowed["allowed"], true);
        assert_eq!(allowed["reason"], "viewer_allowed");
        assert_eq!(allowed["namespace"], "svc.secret.api");
        assert_eq!(allowed["viewer_tenant_id"], "t1");
        assert_eq!(
            allowed["rule"],
            json!({"namespace":"svc.secret","owners":["cluster-a"],"visibility":["secure-cluster"],"export_scopes":[],"allow_summaries":false,"policy_version":"v1"})
        );
        assert_eq!(audit.ring().len(), 1);

        // Missing namespace: omitted, no export stats asked for.
        let none = namespace_status(
            h.engine(),
            &Viewer::new("x", None),
            &mut audit,
            |_| panic!("no stats for the empty namespace"),
            &Map::new(),
            1.0,
        )
        .unwrap();
        assert!(none.get("namespace").is_none());
        assert_eq!(none["reason"], "no_policy");
        let bad = namespace_status(
            h.engine(),
            &Viewer::new("x", None),
            &mut audit,
            |_| ExportStats::default(),
            &map(json!({"namespace": 5})),
            1.0,
        )
        .unwrap_err();
        assert_eq!(bad.code, 1003);
    }

    #[test]
    fn validate_and_apply_shapes() {
        let mut h = PolicyHistory::new(&Settings::default(), 0.0).unwrap();
        // §3.12's example.
        let v = namespace_policy_validate(
            &mut h,
            None,
            &map(json!({"rules":[{"namespace":"svc.secret","visibility":["secure-cluster"],"policy_version":"v1"}],"actor":"admin"})),
            1732440009.0,
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"valid":true,"generated_at":1732440009.0,"rule_count":1,"errors":[]})
        );
        // §3.13's example, plus the version.
        let v = namespace_policy_apply(
            &mut h,
            None,
            &map(json!({"rules":[{"namespace":"svc.secret","visibility":["secure-cluster"]}],"enabled":true,"actor":"admin"})),
            1732440010.0,
        )
        .unwrap();
        assert_eq!(
            v,
            json!({"applied":true,"valid":true,"generated_at":1732440010.0,"rule_count":1,"errors":[],"version":2})
        );
        assert!(h.engine().enabled());
        // §3.15's example.
        let a = namespace_policy_audit(&h, &map(json!({"limit": 1})), 1732440012.0).unwrap();
        assert_eq!(
            a,
            json!({"generated_at":1732440012.0,"entries":[{"event":"apply","timestamp":1732440010.0,"actor":"admin","valid":true,"rule_count":1,"version":2}]})
        );

        // Invalid rules: one reason per problem, nothing applied.
        let v = namespace_policy_apply(
            &mut h,
            None,
            &map(json!({"rules":[{"namespace":""},{"namespace":"a","export_scopes":["planet"]},{"namespace":"a.*"}]})),
            1.0,
        )
        .unwrap();
        assert_eq!(v["applied"], false);
        assert_eq!(v["valid"], false);
        assert_eq!(v["rule_count"], 3);
        let errors: Vec<&str> = v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap())
            .collect();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert_eq!(errors[0], "rules[0].namespace is empty");
        assert!(errors[1].starts_with("rules[1].export_scopes[0] unknown scope: planet"));
        assert_eq!(errors[2], "rules[2].namespace duplicate: a");
        assert!(v.get("version").is_none());
        assert_eq!(h.current().version, 2);

        // Structurally malformed rules are also reasons, and audited.
        let v = namespace_policy_validate(
            &mut h,
            None,
            &map(json!({"rules": [{"namespace":"a","visibilty":["x"]}]})),
            2.0,
        )
        .unwrap();
        assert_eq!(v["valid"], false);
        assert!(v["errors"][0]
            .as_str()
            .unwrap()
            .contains("visibilty is not a rule field"));
        let last = h.audit_ring().iter().last().unwrap();
        assert_eq!((last.event.as_str(), last.valid), ("validate", false));

        // Wrong types of the envelope fields are 1003.
        let e =
            namespace_policy_apply(&mut h, None, &map(json!({"enabled": "yes"})), 3.0).unwrap_err();
        assert_eq!(e.code, 1003);
        assert!(e.details.unwrap().contains("`enabled`"));

        // Rules absent: the current rules, flags changed.
        let v = namespace_policy_apply(
            &mut h,
            Some("ops"),
            &map(json!({"default_allow": false, "actor": "me"})),
            4.0,
        )
        .unwrap();
        assert_eq!(v["applied"], true);
        assert_eq!(v["rule_count"], 1);
        assert!(!h.engine().default_allow());
        assert_eq!(h.current().actor.as_deref(), Some("ops (as me)"));
    }

    #[test]
    fn export_and_rollback() {
        let mut h = PolicyHistory::new(&Settings::default(), 0.0).unwrap();
        let e = namespace_policy_export(&h, &Map::new(), 1732440011.0).unwrap();
        for k in [
            "enabled",
            "default_allow",
            "generated_at",
            "rule_count",
            "rules",
        ] {
            assert!(e.get(k).is_some(), "{k}");
        }
        assert_eq!(e["rules"], json!([]));
        namespace_policy_apply(
            &mut h,
            None,
            &map(json!({"rules":[secret_rule_json()],"enabled":true})),
            1.0,
        )
        .unwrap();
        let e = namespace_policy_export(&h, &map(json!({"versions": true})), 2.0).unwrap();
        assert_eq!(e["rules"][0], secret_rule_json());
        assert_eq!(e["version"], 2);
        assert_eq!(e["versions"].as_array().unwrap().len(), 2);
        let old = namespace_policy_export(&h, &map(json!({"version": 1})), 2.0).unwrap();
        assert_eq!(old["rule_count"], 0);
        assert_eq!(
            namespace_policy_export(&h, &map(json!({"version": 7})), 2.0)
                .unwrap_err()
                .code,
            1003
        );

        let r = namespace_policy_rollback(&mut h, Some("ops"), &map(json!({"version": 1})), 3.0)
            .unwrap();
        assert_eq!(
            r,
            json!({"rolled_back":true,"generated_at":3.0,"version":3,"restored_version":1,"enabled":false,"default_allow":true,"rule_count":0})
        );
        assert!(!h.engine().enabled());
        let r =
            namespace_policy_rollback(&mut h, None, &map(json!({"version": "2"})), 4.0).unwrap();
        assert_eq!(r["version"], 4);
        assert_eq!(h.current().rules, h.version(2).unwrap().rules);
        assert_eq!(
            namespace_policy_rollback(&mut h, None, &Map::new(), 5.0)
                .unwrap_err()
                .code,
            1003
        );
        let e =
            namespace_policy_rollback(&mut h, None, &map(json!({"version": 99})), 5.0).unwrap_err();
        assert!(e
            .details
            .unwrap()
            .contains("policy version 99 does not exist"));
        assert_eq!(
            namespace_policy_rollback(&mut h, None, &map(json!({"version": -1})), 5.0)
                .unwrap_err()
                .code,
            1003
        );
    }

    fn secret_rule_json() -> Value {
        json!({"namespace":"svc.secret","owners":["cluster-a"],"visibility":["secure-cluster"],"export_scopes":[],"allow_summaries":false,"policy_version":"v1"})
    }

    #[test]
    fn access_audit_matches_the_capture_and_filters() {
        let mut audit = AccessAudit::new(500);
        let v =
            discovery_access_audit(&audit, &map(json!({"limit": 5})), 1795519681.4486263).unwrap();
        let want: Value = serde_json::from_str(CAPTURE_ACCESS_AUDIT).unwrap();
        assert_eq!(v, want);
        assert_eq!(keys(&v), keys(&want));

        for i in 0..150 {
            let ns = if i % 2 == 0 { "svc.a" } else { "svc.b" };
            audit.record_denial(
                "catalog_query",
                &Viewer::new("c", None),
                Some(ns),
                "viewer_denied",
                f64::from(i),
            );
        }
        audit.record_denial(
            "summary_watch",
            &Viewer::new("c", Some("t".into())),
            None,
            "rate_limited",
            200.0,
        );
        let all = discovery_access_audit(&audit, &Map::new(), 0.0).unwrap();
        assert_eq!(
            all["entries"].as_array().unwrap().len(),
            DEFAULT_AUDIT_LIMIT,
            "no limit ≠ everything"
        );
        let zero = discovery_access_audit(&audit, &map(json!({"limit": 0})), 0.0).unwrap();
        assert_eq!(
            zero["entries"],
            json!([]),
            "limit 0 is nothing, not everything"
        );
        assert_eq!(
            discovery_access_audit(&audit, &map(json!({"limit": -1})), 0.0)
                .unwrap_err()
                .code,
            1003
        );
        let big = discovery_access_audit(&audit, &map(json!({"limit": 100000})), 0.0).unwrap();
        assert_eq!(big["entries"].as_array().unwrap().len(), 151);
        let last = discovery_access_audit(&audit, &map(json!({"limit": 1})), 0.0).unwrap();
        assert_eq!(
            last["entries"][0],
            json!({"event":"summary_watch","timestamp":200.0,"viewer_cluster_id":"c","viewer_tenant_id":"t","allowed":false,"reason":"rate_limited"})
        );
        let b = discovery_access_audit(
            &audit,
            &map(json!({"namespace": "svc.b.*", "limit": 1000})),
            0.0,
        )
        .unwrap();
        assert_eq!(b["entries"].as_array().unwrap().len(), 75);
        let rl = discovery_access_audit(
            &audit,
            &map(json!({"reason": "rate_limited", "viewer_tenant_id": "t"})),
            0.0,
        )
        .unwrap();
        assert_eq!(rl["entries"].as_array().unwrap().len(), 1);
        let since = discovery_access_audit(
            &audit,
            &map(json!({"since": 148, "event": "catalog_query"})),
            0.0,
        )
        .unwrap();
        assert_eq!(since["entries"].as_array().unwrap().len(), 2);
        assert_eq!(
            discovery_access_audit(&audit, &map(json!({"since": "x"})), 0.0)
                .unwrap_err()
                .code,
            1003
        );
    }

    #[test]
    fn audit_limits() {
        let mut h = PolicyHistory::new(&Settings::default(), 0.0).unwrap();
        for i in 0..3 {
            namespace_policy_validate(&mut h, None, &Map::new(), f64::from(i)).unwrap();
        }
        let n = |v: Value| v["entries"].as_array().unwrap().len();
        assert_eq!(n(namespace_policy_audit(&h, &Map::new(), 0.0).unwrap()), 3);
        assert_eq!(
            n(namespace_policy_audit(&h, &map(json!({"limit": 0})), 0.0).unwrap()),
            0
        );
        assert_eq!(
            n(namespace_policy_audit(&h, &map(json!({"limit": 2})), 0.0).unwrap()),
            2
        );
        assert_eq!(
            namespace_policy_audit(&h, &map(json!({"limit": -1})), 0.0)
                .unwrap_err()
                .code,
            1003
        );
        assert_eq!(
            namespace_policy_audit(&h, &map(json!({"limit": "x"})), 0.0)
                .unwrap_err()
                .code,
            1003
        );
    }

    #[test]
    fn monitoring_status_shape() {
        let mut h = PolicyHistory::new(&policy_settings(true), 0.0).unwrap();
        let mut access = AccessAudit::new(100);
        for i in 0..30 {
            namespace_policy_validate(&mut h, None, &Map::new(), f64::from(i)).unwrap();
            access.record_denial(
                "catalog_query",
                &Viewer::new("c", None),
                None,
                "no_policy",
                f64::from(i),
            );
        }
        let s = policy_status(&h, &access, 9.0);
        let want: BTreeSet<String> = [
            "enabled",
            "generated_at",
            "default_allow",
            "rule_count",
            "rules",
            "audit_entries",
            "audit_total",
            "access_entries",
            "access_total",
            "version",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(keys(&s), want);
        assert_eq!(s["audit_entries"].as_array().unwrap().len(), 20);
        assert_eq!(s["access_entries"].as_array().unwrap().len(), 20);
        assert_eq!(s["audit_total"], 30);
        assert_eq!(s["access_total"], 30);
        assert_eq!(s["rule_count"], 1);
    }

    #[test]
    fn actors() {
        assert_eq!(actor_of(None, None), None);
        assert_eq!(actor_of(None, Some("x".into())).as_deref(), Some("x"));
        assert_eq!(actor_of(Some("p"), None).as_deref(), Some("p"));
        assert_eq!(actor_of(Some("p"), Some("p".into())).as_deref(), Some("p"));
        assert_eq!(
            actor_of(Some("p"), Some("x".into())).as_deref(),
            Some("p (as x)")
        );
    }
}
