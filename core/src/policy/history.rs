//! The policy's version history: every policy the node has enforced, with
//! its rules, flags, actor and wall time, plus MPREG's policy audit ring.
//! It owns the live [`PolicyEngine`], rebuilt whenever a version is added.
//!
//! - **Append-only.** Version 1 is the settings' policy. `apply` and
//!   `rollback` add versions; a rollback restores exactly the rules and
//!   flags of the earlier version as a new version. Only the oldest versions
//!   beyond [`MAX_VERSIONS`] are ever dropped (never the current one).
//! - **Persistence.** [`PolicyHistory::to_bytes`] / [`PolicyHistory::restore`]
//!   (JSON) let the runtime keep it in `data_dir`, so applied policies survive
//!   a restart. On restore, a settings policy different from the one recorded
//!   last is appended as a new `settings` version: editing the config file
//!   wins over an earlier apply, an unchanged config does not undo it.
//! - **Audit.** `validate`, `apply` and `rollback` attempts are recorded in
//!   MPREG's `namespace_policy_audit` shape (ring of [`POLICY_AUDIT_MAX`]),
//!   with the version they produced, so a rule change is always traceable to
//!   its content.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::audit::AuditRing;
use crate::config::{PolicyRuleConfig, Settings};

use super::engine::PolicyEngine;
use super::rules::Rule;
use super::validate::compile_rules;

/// Versions kept (the oldest beyond this are dropped).
pub const MAX_VERSIONS: usize = 1000;

/// Policy audit entries kept (MPREG's fixed 500).
pub const POLICY_AUDIT_MAX: usize = 500;

/// File in the node's data directory holding [`PolicyHistory::to_bytes`].
pub const PERSIST_FILE: &str = "policy_history.json";

/// Format number of [`PolicyHistory::to_bytes`].
const FORMAT: u32 = 1;

/// How a version came to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VersionEvent {
    /// The settings' policy (start-up, or a changed config on restart).
    Settings,
    /// `namespace_policy_apply`.
    Apply,
    /// `namespace_policy_rollback`.
    Rollback,
}

impl VersionEvent {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            VersionEvent::Settings => "settings",
            VersionEvent::Apply => "apply",
            VersionEvent::Rollback => "rollback",
        }
    }
}

/// One enforced policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyVersion {
    /// Version number, from 1, strictly increasing.
    pub version: u64,
    /// How it was made.
    pub event: VersionEvent,
    /// Engine enabled.
    pub enabled: bool,
    /// Decision when no rule matches.
    pub default_allow: bool,
    /// The rules (validated, normalised).
    pub rules: Vec<Rule>,
    /// Who made it (request `actor`, or the authenticated principal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Wall time, Unix seconds.
    pub applied_at: f64,
    /// For a rollback: the version whose policy it restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_version: Option<u64>,
}

impl PolicyVersion {
    /// Same policy (flags and rules), whatever the metadata.
    pub fn same_policy(&self, enabled: bool, default_allow: bool, rules: &[Rule]) -> bool {
        self.enabled == enabled && self.default_allow == default_allow && self.rules == rules
    }

    /// A summary for listings: `{version, event, enabled, default_allow,
    /// rule_count, applied_at, actor?, restored_version?}`.
    pub fn summary_json(&self) -> Value {
        let mut v = json!({
            "version": self.version,
            "event": self.event.as_str(),
            "enabled": self.enabled,
            "default_allow": self.default_allow,
            "rule_count": self.rules.len(),
            "applied_at": self.applied_at,
        });
        if let Some(actor) = &self.actor {
            v["actor"] = json!(actor);
        }
        if let Some(r) = self.restored_version {
            v["restored_version"] = json!(r);
        }
        v
    }
}

/// A policy audit entry, MPREG's shape `{event, timestamp, actor?, valid,
/// rule_count, errors?}` plus ours: `version?` (the version an apply or
/// rollback produced) and `restored_version?` (rollback).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyAuditEntry {
    /// `validate`, `apply` or `rollback`.
    pub event: String,
    /// Wall time, Unix seconds.
    pub timestamp: f64,
    /// Who asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Whether the rules were valid (for a rollback: whether it happened).
    pub valid: bool,
    /// Rules in the request (or restored).
    pub rule_count: usize,
    /// Problems found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// The version produced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// The version a rollback restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_version: Option<u64>,
}

/// A proposed policy (validate / apply). `None` fields keep the current
/// value, as MPREG keeps the current settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PolicyProposal {
    /// New rules; `None` = the current rules.
    pub rules: Option<Vec<PolicyRuleConfig>>,
    /// New `enabled`; `None` = current.
    pub enabled: Option<bool>,
    /// New `default_allow`; `None` = current.
    pub default_allow: Option<bool>,
}

/// Why a history could not be built or restored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HistoryError {
    /// The settings' rules are invalid (one message per problem).
    #[error("invalid discovery_policy_rules: {}", .0.join("; "))]
    InvalidSettings(Vec<String>),
    /// The persisted bytes are not a history this version can read.
    #[error("unreadable policy history: {0}")]
    Corrupt(String),
}

/// Why a rollback was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RollbackError {
    /// No such version is kept.
    #[error("policy version {requested} does not exist (kept versions: {oldest}..={latest})")]
    UnknownVersion {
        /// The version asked for.
        requested: u64,
        /// Oldest kept version.
        oldest: u64,
        /// Current version.
        latest: u64,
    },
}

#[derive(Serialize, Deserialize)]
struct Persisted {
    format: u32,
    versions: Vec<PolicyVersion>,
    audit: Vec<PolicyAuditEntry>,
}

/// The version history, the policy audit ring and the live engine.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyHistory {
    versions: Vec<PolicyVersion>,
    audit: AuditRing<PolicyAuditEntry>,
    engine: PolicyEngine,
    revision: u64,
}

impl PolicyHistory {
    /// A history whose version 1 is the settings' policy, recorded at wall
    /// time `now`.
    pub fn new(settings: &Settings, now: f64) -> Result<Self, HistoryError> {
        let (enabled, default_allow, rules) = settings_policy(settings)?;
        let first = PolicyVersion {
            version: 1,
            event: VersionEvent::Settings,
            enabled,
            default_allow,
            rules,
            actor: None,
            applied_at: now,
            restored_version: None,
        };
        let engine = engine_of(&first).map_err(HistoryError::InvalidSettings)?;
        Ok(PolicyHistory {
            versions: vec![first],
            audit: AuditRing::new(POLICY_AUDIT_MAX),
            engine,
            revision: 0,
        })
    }

    /// Loads a persisted history, then appends the settings' policy as a new
    /// version if it differs from the settings policy recorded last.
    pub fn restore(bytes: &[u8], settings: &Settings, now: f64) -> Result<Self, HistoryError> {
        let (enabled, default_allow, rules) = settings_policy(settings)?;
        let mut history = PolicyHistory::from_bytes(bytes)?;
        let recorded = history
            .versions
            .iter()
            .rev()
            .find(|v| v.event == VersionEvent::Settings);
        if !recorded.is_some_and(|v| v.same_policy(enabled, default_allow, &rules)) {
            history.push_version(
                VersionEvent::Settings,
                enabled,
                default_allow,
                rules,
                None,
                now,
                None,
            );
        }
        Ok(history)
    }

    /// Decodes [`PolicyHistory::to_bytes`] output as it is (no settings
    /// merge). Every version is re-validated, so a hand-edited file cannot
    /// install rules the RPCs would refuse.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, HistoryError> {
        let p: Persisted =
            serde_json::from_slice(bytes).map_err(|e| HistoryError::Corrupt(e.to_string()))?;
        if p.format != FORMAT {
            return Err(HistoryError::Corrupt(format!(
                "format {} (this node reads format {FORMAT})",
                p.format
            )));
        }
        let Some(last) = p.versions.last() else {
            return Err(HistoryError::Corrupt("no versions".into()));
        };
        let mut previous = 0;
        for v in &p.versions {
            if v.version <= previous {
                return Err(HistoryError::Corrupt(format!(
                    "version {} follows version {previous}",
                    v.version
                )));
            }
            previous = v.version;
            let configs: Vec<PolicyRuleConfig> = v.rules.iter().map(Rule::to_config).collect();
            match compile_rules(&configs) {
                Ok(rules) if rules == v.rules => {}
                Ok(_) => {
                    return Err(HistoryError::Corrupt(format!(
                        "version {} has rules that are not normalised",
                        v.version
                    )))
                }
                Err(errors) => {
                    return Err(HistoryError::Corrupt(format!(
                        "version {}: {}",
                        v.version,
                        errors.join("; ")
                    )))
                }
            }
        }
        let engine = engine_of(last).map_err(|e| HistoryError::Corrupt(e.join("; ")))?;
        let mut audit = AuditRing::new(POLICY_AUDIT_MAX);
        for entry in p.audit {
            audit.push(entry);
        }
        Ok(PolicyHistory {
            versions: p.versions,
            audit,
            engine,
            revision: 0,
        })
    }

    /// The whole history (versions and audit) as JSON bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let p = Persisted {
            format: FORMAT,
            versions: self.versions.clone(),
            audit: self.audit.iter().cloned().collect(),
        };
        serde_json::to_vec_pretty(&p).unwrap_or_default()
    }

    /// Counts every change (versions and audit entries) since this value was
    /// built or restored: persist when it moved.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The live engine (the current version's policy).
    pub fn engine(&self) -> &PolicyEngine {
        &self.engine
    }

    /// The current version.
    pub fn current(&self) -> &PolicyVersion {
        // Never empty: built with one version, versions are only appended,
        // and pruning keeps the last.
        &self.versions[self.versions.len() - 1]
    }

    /// Every kept version, oldest first.
    pub fn versions(&self) -> &[PolicyVersion] {
        &self.versions
    }

    /// A kept version by number.
    pub fn version(&self, version: u64) -> Option<&PolicyVersion> {
        self.versions
            .binary_search_by_key(&version, |v| v.version)
            .ok()
            .map(|i| &self.versions[i])
    }

    /// The policy audit ring.
    pub fn audit_ring(&self) -> &AuditRing<PolicyAuditEntry> {
        &self.audit
    }

    /// Validates a proposal (rules `None` = the current rules) and records
    /// a `validate` audit entry. Returns the problems (empty = valid).
    pub fn validate(
        &mut self,
        proposal: &PolicyProposal,
        actor: Option<String>,
        now: f64,
    ) -> Vec<String> {
        let (count, result) = self.compile(proposal);
        let errors = result.err().unwrap_or_default();
        self.record(PolicyAuditEntry {
            event: "validate".into(),
            timestamp: now,
            actor,
            valid: errors.is_empty(),
            rule_count: count,
            errors: errors.clone(),
            version: None,
            restored_version: None,
        });
        errors
    }

    /// Records a `validate` or `apply` attempt whose rules could not even be
    /// parsed (the RPC payload was malformed), so it shows in the audit too.
    pub fn record_invalid(
        &mut self,
        event: &str,
        actor: Option<String>,
        rule_count: usize,
        errors: Vec<String>,
        now: f64,
    ) {
        self.record(PolicyAuditEntry {
            event: event.to_string(),
            timestamp: now,
            actor,
            valid: false,
            rule_count,
            errors,
            version: None,
            restored_version: None,
        });
    }

    /// Validates and, if valid, enforces a proposal as a new version; records
    /// an `apply` audit entry either way. Returns the new version number or
    /// the problems.
    pub fn apply(
        &mut self,
        proposal: &PolicyProposal,
        actor: Option<String>,
        now: f64,
    ) -> Result<u64, Vec<String>> {
        let (count, result) = self.compile(proposal);
        let rules = match result {
            Ok(rules) => rules,
            Err(errors) => {
                self.record(PolicyAuditEntry {
                    event: "apply".into(),
                    timestamp: now,
                    actor,
                    valid: false,
                    rule_count: count,
                    errors: errors.clone(),
                    version: None,
                    restored_version: None,
                });
                return Err(errors);
            }
        };
        let current = self.current();
        let enabled = proposal.enabled.unwrap_or(current.enabled);
        let default_allow = proposal.default_allow.unwrap_or(current.default_allow);
        let version = self.push_version(
            VersionEvent::Apply,
            enabled,
            default_allow,
            rules,
            actor.clone(),
            now,
            None,
        );
        self.record(PolicyAuditEntry {
            event: "apply".into(),
            timestamp: now,
            actor,
            valid: true,
            rule_count: count,
            errors: Vec::new(),
            version: Some(version),
            restored_version: None,
        });
        Ok(version)
    }

    /// Enforces the policy of version `to` again, as a new version (the
    /// history stays append-only); records a `rollback` audit entry either
    /// way. Returns the new version number.
    pub fn rollback(
        &mut self,
        to: u64,
        actor: Option<String>,
        now: f64,
    ) -> Result<u64, RollbackError> {
        let Some(target) = self.version(to).cloned() else {
            let err = RollbackError::UnknownVersion {
                requested: to,
                oldest: self.versions[0].version,
                latest: self.current().version,
            };
            self.record(PolicyAuditEntry {
                event: "rollback".into(),
                timestamp: now,
                actor,
                valid: false,
                rule_count: 0,
                errors: vec![err.to_string()],
                version: None,
                restored_version: None,
            });
            return Err(err);
        };
        let count = target.rules.len();
        let version = self.push_version(
            VersionEvent::Rollback,
            target.enabled,
            target.default_allow,
            target.rules,
            actor.clone(),
            now,
            Some(to),
        );
        self.record(PolicyAuditEntry {
            event: "rollback".into(),
            timestamp: now,
            actor,
            valid: true,
            rule_count: count,
            errors: Vec::new(),
            version: Some(version),
            restored_version: Some(to),
        });
        Ok(version)
    }

    /// MPREG's `namespace_policy_export` response for the current version:
    /// `{enabled, default_allow, generated_at, rule_count, rules}` plus ours,
    /// `version`, `event`, `applied_at` and `actor?`.
    pub fn export(&self, now: f64) -> Value {
        export_json(self.current(), now)
    }

    /// The export response of a kept version (ours: `namespace_policy_export`
    /// with a `version`).
    pub fn export_version(&self, version: u64, now: f64) -> Option<Value> {
        self.version(version).map(|v| export_json(v, now))
    }

    /// MPREG's `namespace_policy_audit` response: the newest `limit` entries,
    /// oldest first, `{generated_at, entries}`.
    pub fn audit(&self, limit: usize, now: f64) -> Value {
        let entries: Vec<Value> = self
            .audit
            .last(limit)
            .map(|e| serde_json::to_value(e).unwrap_or(Value::Null))
            .collect();
        json!({"generated_at": now, "entries": entries})
    }

    fn compile(&self, proposal: &PolicyProposal) -> (usize, Result<Vec<Rule>, Vec<String>>) {
        match &proposal.rules {
            Some(configs) => (configs.len(), compile_rules(configs)),
            None => (self.current().rules.len(), Ok(self.current().rules.clone())),
        }
    }

    fn record(&mut self, entry: PolicyAuditEntry) {
        self.audit.push(entry);
        self.revision += 1;
    }

    #[allow(clippy::too_many_arguments)]
    fn push_version(
        &mut self,
        event: VersionEvent,
        enabled: bool,
        default_allow: bool,
        rules: Vec<Rule>,
        actor: Option<String>,
        now: f64,
        restored_version: Option<u64>,
    ) -> u64 {
        let version = self.current().version + 1;
        let v = PolicyVersion {
            version,
            event,
            enabled,
            default_allow,
            rules,
            actor,
            applied_at: now,
            restored_version,
        };
        // Validated rules always build an engine; keep the old one otherwise.
        if let Ok(engine) = engine_of(&v) {
            self.engine = engine;
        }
        self.versions.push(v);
        if self.versions.len() > MAX_VERSIONS {
            let excess = self.versions.len() - MAX_VERSIONS;
            self.versions.drain(..excess);
        }
        self.revision += 1;
        version
    }
}

fn settings_policy(settings: &Settings) -> Result<(bool, bool, Vec<Rule>), HistoryError> {
    let rules = compile_rules(&settings.discovery_policy_rules).map_err(|errors| {
        HistoryError::InvalidSettings(
            errors
                .into_iter()
                .map(|e| format!("discovery_policy_{e}"))
                .collect(),
        )
    })?;
    Ok((
        settings.discovery_policy_enabled,
        settings.discovery_policy_default_allow,
        rules,
    ))
}

fn engine_of(v: &PolicyVersion) -> Result<PolicyEngine, Vec<String>> {
    PolicyEngine::new(v.enabled, v.default_allow, v.rules.clone())
}

fn export_json(v: &PolicyVersion, now: f64) -> Value {
    let mut out = json!({
        "enabled": v.enabled,
        "default_allow": v.default_allow,
        "generated_at": now,
        "rule_count": v.rules.len(),
        "rules": v.rules.iter().map(Rule::to_json).collect::<Vec<_>>(),
        "version": v.version,
        "event": v.event.as_str(),
        "applied_at": v.applied_at,
    });
    if let Some(actor) = &v.actor {
        out["actor"] = json!(actor);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::scope::Scope;
    use crate::config::CutoverWindowConfig;

    fn rule(ns: &str, visibility: &[&str]) -> PolicyRuleConfig {
        PolicyRuleConfig {
            namespace: ns.into(),
            owners: vec![],
            visibility: visibility.iter().map(|s| s.to_string()).collect(),
            visibility_tenants: vec![],
            export_scopes: vec![],
            allow_summaries: false,
            cutover_windows: vec![],
            policy_version: None,
        }
    }

    fn proposal(rules: Vec<PolicyRuleConfig>) -> PolicyProposal {
        PolicyProposal {
            rules: Some(rules),
            ..Default::default()
        }
    }

    #[test]
    fn version_one_is_the_settings_policy() {
        let mut s = Settings {
            discovery_policy_enabled: true,
            discovery_policy_default_allow: false,
            discovery_policy_rules: vec![rule("svc.secret.*", &["secure"])],
            ..Default::default()
        };
        let h = PolicyHistory::new(&s, 10.0).unwrap();
        let v = h.current();
        assert_eq!(
            (v.version, v.event, v.enabled, v.default_allow),
            (1, VersionEvent::Settings, true, false)
        );
        assert_eq!(v.rules[0].namespace, "svc.secret");
        assert!(h.engine().enabled());
        assert!(
            !h.engine()
                .allows_viewer("svc.secret.x", "other", None)
                .allowed
        );
        s.discovery_policy_rules = vec![rule("", &[])];
        assert_eq!(
            PolicyHistory::new(&s, 0.0).unwrap_err(),
            HistoryError::InvalidSettings(vec![
                "discovery_policy_rules[0].namespace is empty".into()
            ])
        );
    }

    #[test]
    fn apply_and_rollback_are_append_only() {
        let mut h = PolicyHistory::new(&Settings::default(), 1.0).unwrap();
        assert!(!h.engine().enabled());
        let mut p = proposal(vec![rule("svc.a", &["c1"])]);
        p.enabled = Some(true);
        let v2 = h.apply(&p, Some("alice".into()), 2.0).unwrap();
        assert_eq!(v2, 2);
        assert!(h.engine().enabled());
        assert!(!h.engine().allows_viewer("svc.a", "c2", None).allowed);

        // Flags default to the current version's.
        let v3 = h
            .apply(&proposal(vec![rule("svc.b", &["c1"])]), None, 3.0)
            .unwrap();
        assert_eq!(v3, 3);
        assert!(h.engine().enabled());
        assert_eq!(
            h.engine()
                .allows_viewer("svc.a", "c2", None)
                .reason
                .as_str(),
            "no_policy"
        );

        // Invalid proposals change nothing.
        let before = h.current().clone();
        let errors = h
            .apply(&proposal(vec![rule("x", &[]), rule("x.*", &[])]), None, 4.0)
            .unwrap_err();
        assert_eq!(errors, vec!["rules[1].namespace duplicate: x"]);
        assert_eq!(h.current(), &before);

        let v4 = h.rollback(2, Some("bob".into()), 5.0).unwrap();
        assert_eq!(v4, 4);
        let cur = h.current();
        assert_eq!(cur.event, VersionEvent::Rollback);
        assert_eq!(cur.restored_version, Some(2));
        assert!(cur.same_policy(true, true, &h.version(2).unwrap().rules));
        assert_eq!(
            h.version(2).unwrap().rules,
            cur.rules,
            "exactly the earlier rules"
        );
        assert!(!h.engine().allows_viewer("svc.a", "c2", None).allowed);
        assert_eq!(h.versions().len(), 4);
        assert_eq!(
            h.rollback(9, None, 6.0).unwrap_err(),
            RollbackError::UnknownVersion {
                requested: 9,
                oldest: 1,
                latest: 4
            }
        );
        // Back to the settings' policy.
        h.rollback(1, None, 7.0).unwrap();
        assert!(!h.engine().enabled());
    }

    #[test]
    fn rules_absent_means_current_rules() {
        let s = Settings {
            discovery_policy_rules: vec![rule("svc.a", &["c1"])],
            ..Default::default()
        };
        let mut h = PolicyHistory::new(&s, 1.0).unwrap();
        let p = PolicyProposal {
            enabled: Some(true),
            ..Default::default()
        };
        assert!(h.validate(&p, None, 2.0).is_empty());
        h.apply(&p, None, 3.0).unwrap();
        assert_eq!(h.current().rules, h.version(1).unwrap().rules);
        assert!(h.current().enabled);
    }

    #[test]
    fn audit_entries_have_mpregs_shape() {
        let mut h = PolicyHistory::new(&Settings::default(), 1.0).unwrap();
        let r0 = h.revision();
        h.validate(
            &proposal(vec![rule("svc.secret", &["secure-cluster"])]),
            Some("admin".into()),
            1732440009.0,
        );
        h.apply(
            &proposal(vec![rule("svc.secret", &["secure-cluster"])]),
            Some("admin".into()),
            1732440010.0,
        )
        .unwrap();
        h.apply(&proposal(vec![rule(" ", &[])]), None, 1732440011.0)
            .unwrap_err();
        h.rollback(1, None, 1732440012.0).unwrap();
        assert!(h.revision() > r0);
        let a = h.audit(10, 1732440013.0);
        assert_eq!(
            a,
            json!({"generated_at": 1732440013.0, "entries": [
                {"event":"validate","timestamp":1732440009.0,"actor":"admin","valid":true,"rule_count":1},
                {"event":"apply","timestamp":1732440010.0,"actor":"admin","valid":true,"rule_count":1,"version":2},
                {"event":"apply","timestamp":1732440011.0,"valid":false,"rule_count":1,"errors":["rules[0].namespace is empty"]},
                {"event":"rollback","timestamp":1732440012.0,"valid":true,"rule_count":0,"version":3,"restored_version":1},
            ]})
        );
        let one = h.audit(1, 0.0);
        assert_eq!(one["entries"].as_array().unwrap().len(), 1);
        assert_eq!(one["entries"][0]["event"], "rollback");
        assert_eq!(h.audit(0, 0.0)["entries"], json!([]));
    }

    #[test]
    fn export_shape() {
        let h = PolicyHistory::new(&Settings::default(), 5.0).unwrap();
        // client_protocol.md §3.14's example, plus our version fields.
        assert_eq!(
            h.export(1732440011.0),
            json!({"enabled":false,"default_allow":true,"generated_at":1732440011.0,"rule_count":0,"rules":[],
                   "version":1,"event":"settings","applied_at":5.0})
        );
        assert!(h.export_version(2, 0.0).is_none());
        assert_eq!(h.export_version(1, 0.0).unwrap()["version"], 1);
    }

    #[test]
    fn bytes_roundtrip() {
        let s = Settings {
            discovery_policy_rules: vec![PolicyRuleConfig {
                namespace: "svc.m".into(),
                owners: vec!["a".into()],
                visibility: vec!["b".into()],
                visibility_tenants: vec!["t".into()],
                export_scopes: vec!["global".into()],
                allow_summaries: true,
                cutover_windows: vec![CutoverWindowConfig {
                    starts_at: 1700000100.5,
                    ends_at: Some(1700003700.25),
                    export_scopes: vec!["region".into()],
                    allow_summaries: Some(false),
                }],
                policy_version: Some("v7".into()),
            }],
            ..Default::default()
        };
        let mut h = PolicyHistory::new(&s, 1.0).unwrap();
        h.apply(&proposal(vec![rule("x", &["c"])]), Some("ops".into()), 2.0)
            .unwrap();
        h.validate(&proposal(vec![rule("", &[])]), None, 3.0);
        h.rollback(1, None, 4.0).unwrap();
        let bytes = h.to_bytes();
        let back = PolicyHistory::from_bytes(&bytes).unwrap();
        assert_eq!(back.versions(), h.versions());
        assert_eq!(
            back.audit_ring().iter().collect::<Vec<_>>(),
            h.audit_ring().iter().collect::<Vec<_>>()
        );
        assert_eq!(back.engine(), h.engine());
        assert_eq!(
            back.current().rules[0].cutover_windows[0].export_scopes,
            vec![Scope::Region]
        );
        assert_eq!(back.to_bytes(), bytes);
    }

    #[test]
    fn restore_keeps_applies_unless_the_config_changed() {
        let s = Settings::default();
        let mut h = PolicyHistory::new(&s, 1.0).unwrap();
        let mut p = proposal(vec![rule("svc.a", &["c1"])]);
        p.enabled = Some(true);
        h.apply(&p, None, 2.0).unwrap();
        let bytes = h.to_bytes();

        // Same config: the applied policy survives the restart.
        let same = PolicyHistory::restore(&bytes, &s, 3.0).unwrap();
        assert_eq!(same.current().version, 2);
        assert!(same.engine().enabled());

        // Edited config: it becomes the new current version.
        let mut edited = s.clone();
        edited.discovery_policy_rules = vec![rule("svc.b", &[])];
        let changed = PolicyHistory::restore(&bytes, &edited, 3.0).unwrap();
        assert_eq!(changed.current().version, 3);
        assert_eq!(changed.current().event, VersionEvent::Settings);
        assert_eq!(changed.current().rules[0].namespace, "svc.b");
        assert!(!changed.engine().enabled());
        // And restoring that again adds nothing.
        let again = PolicyHistory::restore(&changed.to_bytes(), &edited, 4.0).unwrap();
        assert_eq!(again.current().version, 3);
    }

    #[test]
    fn corrupt_bytes_are_refused() {
        let h = PolicyHistory::new(&Settings::default(), 1.0).unwrap();
        let mut v: Value = serde_json::from_slice(&h.to_bytes()).unwrap();
        assert!(matches!(
            PolicyHistory::from_bytes(b"nope"),
            Err(HistoryError::Corrupt(_))
        ));
        let mut bad = v.clone();
        bad["format"] = json!(99);
        assert!(PolicyHistory::from_bytes(&serde_json::to_vec(&bad).unwrap()).is_err());
        let mut bad = v.clone();
        bad["versions"] = json!([]);
        assert!(PolicyHistory::from_bytes(&serde_json::to_vec(&bad).unwrap()).is_err());
        // A hand-edited duplicate rule is refused.
        v["versions"][0]["rules"] = json!([
            {"namespace":"a","owners":[],"visibility":[],"export_scopes":[],"allow_summaries":false},
            {"namespace":"a","owners":[],"visibility":[],"export_scopes":[],"allow_summaries":false}
        ]);
        let e = PolicyHistory::from_bytes(&serde_json::to_vec(&v).unwrap()).unwrap_err();
        assert!(e.to_string().contains("duplicate"), "{e}");
    }

    #[test]
    fn old_versions_are_pruned_but_never_the_current() {
        let mut h = PolicyHistory::new(&Settings::default(), 0.0).unwrap();
        for i in 0..(MAX_VERSIONS + 5) {
            h.apply(&proposal(vec![rule(&format!("n{i}"), &[])]), None, i as f64)
                .unwrap();
        }
        assert_eq!(h.versions().len(), MAX_VERSIONS);
        assert_eq!(h.current().version, (MAX_VERSIONS + 6) as u64);
        assert_eq!(h.versions()[0].version, 7);
        assert!(h.rollback(1, None, 0.0).is_err());
        assert_eq!(h.audit_ring().len(), POLICY_AUDIT_MAX);
    }
}
