//! Policy rules: the validated, normalised form the engine uses, its MPREG
//! wire shape, and lenient parsing of rules sent in RPC payloads.
//!
//! Wire shape (`client_protocol.md` §2.3): `namespace`, `owners`, `visibility`,
//! `export_scopes` and `allow_summaries` are always present;
//! `visibility_tenants`, `cutover_windows` and `policy_version` are omitted
//! when empty. A window always has `starts_at`; `ends_at`, `export_scopes` and
//! `allow_summaries` are omitted when unset. The serde derives produce exactly
//! that shape, and the persisted history uses it too.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::catalog::scope::Scope;
use crate::config::{CutoverWindowConfig, PolicyRuleConfig};
use crate::wire::client::json_type_name;

/// A validated namespace policy rule (see [`super::validate::compile_rules`]).
///
/// `namespace` is normalised by the one namespace rule (`svc.prod.*` is
/// stored as `svc.prod`), list items are trimmed, non-empty and unique, and
/// scopes are known (`cluster` read as `zone`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The subtree the rule governs.
    pub namespace: String,
    /// Source clusters allowed to publish and export; empty = any.
    #[serde(default)]
    pub owners: Vec<String>,
    /// Viewer clusters allowed to see; empty together with
    /// `visibility_tenants` = everyone.
    #[serde(default)]
    pub visibility: Vec<String>,
    /// Viewer tenants allowed to see.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub visibility_tenants: Vec<String>,
    /// Summary export scopes allowed; empty = any.
    #[serde(default)]
    pub export_scopes: Vec<Scope>,
    /// Whether summaries may be exported at all.
    #[serde(default)]
    pub allow_summaries: bool,
    /// Time windows that adjust export permissions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cutover_windows: Vec<CutoverWindow>,
    /// Free-form version label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_version: Option<String>,
}

/// A validated cutover window: finite, `0 < starts_at < ends_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CutoverWindow {
    /// Start, Unix seconds (inclusive).
    pub starts_at: f64,
    /// End, Unix seconds (inclusive); `None` = open-ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<f64>,
    /// Export scopes allowed during the window; empty = no window limit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub export_scopes: Vec<Scope>,
    /// Replaces the rule's `allow_summaries` during the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_summaries: Option<bool>,
}

impl CutoverWindow {
    /// `starts_at <= now <= ends_at` (both ends inclusive, as MPREG).
    pub fn active(&self, now: f64) -> bool {
        now >= self.starts_at && self.ends_at.is_none_or(|end| now <= end)
    }
}

impl Rule {
    /// The rule as MPREG's JSON object.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// The rule as settings data (for writing back into `Settings`).
    pub fn to_config(&self) -> PolicyRuleConfig {
        let scopes = |s: &[Scope]| s.iter().map(|s| s.as_str().to_string()).collect();
        PolicyRuleConfig {
            namespace: self.namespace.clone(),
            owners: self.owners.clone(),
            visibility: self.visibility.clone(),
            visibility_tenants: self.visibility_tenants.clone(),
            export_scopes: scopes(&self.export_scopes),
            allow_summaries: self.allow_summaries,
            cutover_windows: self
                .cutover_windows
                .iter()
                .map(|w| CutoverWindowConfig {
                    starts_at: w.starts_at,
                    ends_at: w.ends_at,
                    export_scopes: scopes(&w.export_scopes),
                    allow_summaries: w.allow_summaries,
                })
                .collect(),
            policy_version: self.policy_version.clone(),
        }
    }

    /// Whether the rule restricts visibility at all.
    pub fn restricts_visibility(&self) -> bool {
        !self.visibility.is_empty() || !self.visibility_tenants.is_empty()
    }
}

const RULE_KEYS: &[&str] = &[
    "namespace",
    "owners",
    "visibility",
    "visibility_tenants",
    "export_scopes",
    "allow_summaries",
    "cutover_windows",
    "policy_version",
];
const WINDOW_KEYS: &[&str] = &["starts_at", "ends_at", "export_scopes", "allow_summaries"];

/// Rules from an RPC payload's `rules` value: an array of rule objects or a
/// single object (MPREG accepts both). Returns the rule count (items seen)
/// and either the parsed rules or one message per problem, in the same
/// `rules[i]...` wording as validation.
///
/// Lenient like MPREG's `from_dict` where that is harmless (missing or `null`
/// fields are defaults, a bare string is a one-item list, numbers in lists
/// and `policy_version` are stringified, `cutover_windows` may be one object)
/// and strict where leniency would silently weaken a policy: an unknown field
/// (a typo such as `visibilty` would drop a restriction) or a wrong type is
/// an error.
pub fn rules_from_json(value: &Value) -> (usize, Result<Vec<PolicyRuleConfig>, Vec<String>>) {
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![value],
        Value::Null => Vec::new(),
        other => {
            return (
                0,
                Err(vec![format!(
                    "rules must be a list of rule objects, got {}",
                    json_type_name(other)
                )]),
            )
        }
    };
    let mut rules = Vec::with_capacity(items.len());
    let mut errors = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match rule_from_json(item, &format!("rules[{i}]")) {
            Ok(rule) => rules.push(rule),
            Err(mut e) => errors.append(&mut e),
        }
    }
    let count = items.len();
    if errors.is_empty() {
        (count, Ok(rules))
    } else {
        (count, Err(errors))
    }
}

fn rule_from_json(value: &Value, path: &str) -> Result<PolicyRuleConfig, Vec<String>> {
    let Some(obj) = value.as_object() else {
        return Err(vec![format!(
            "{path} must be an object, got {}",
            json_type_name(value)
        )]);
    };
    let mut errors = Vec::new();
    unknown_keys(obj, RULE_KEYS, path, &mut errors);
    let namespace = match obj.get("namespace") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => {
            errors.push(format!(
                "{path}.namespace must be a string, got {}",
                json_type_name(other)
            ));
            String::new()
        }
    };
    let list = |key: &str, errors: &mut Vec<String>| {
        string_list(obj.get(key), &format!("{path}.{key}"), errors)
    };
    let owners = list("owners", &mut errors);
    let visibility = list("visibility", &mut errors);
    let visibility_tenants = list("visibility_tenants", &mut errors);
    let export_scopes = list("export_scopes", &mut errors);
    let allow_summaries = opt_bool(
        obj.get("allow_summaries"),
        &format!("{path}.allow_summaries"),
        &mut errors,
    )
    .unwrap_or(false);
    let windows: Vec<&Value> = match obj.get("cutover_windows") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(w @ Value::Object(_)) => vec![w],
        Some(other) => {
            errors.push(format!(
                "{path}.cutover_windows must be a list of objects, got {}",
                json_type_name(other)
            ));
            Vec::new()
        }
    };
    let mut cutover_windows = Vec::with_capacity(windows.len());
    for (j, w) in windows.into_iter().enumerate() {
        if let Some(w) = window_from_json(w, &format!("{path}.cutover_windows[{j}]"), &mut errors) {
            cutover_windows.push(w);
        }
    }
    let policy_version = match obj.get("policy_version") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            errors.push(format!(
                "{path}.policy_version must be a string, got {}",
                json_type_name(other)
            ));
            None
        }
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(PolicyRuleConfig {
        namespace,
        owners,
        visibility,
        visibility_tenants,
        export_scopes,
        allow_summaries,
        cutover_windows,
        policy_version,
    })
}

fn window_from_json(
    value: &Value,
    path: &str,
    errors: &mut Vec<String>,
) -> Option<CutoverWindowConfig> {
    let Some(obj) = value.as_object() else {
        errors.push(format!(
            "{path} must be an object, got {}",
            json_type_name(value)
        ));
        return None;
    };
    unknown_keys(obj, WINDOW_KEYS, path, errors);
    let starts_at =
        opt_number(obj.get("starts_at"), &format!("{path}.starts_at"), errors).unwrap_or(0.0);
    let ends_at = opt_number(obj.get("ends_at"), &format!("{path}.ends_at"), errors);
    let export_scopes = string_list(
        obj.get("export_scopes"),
        &format!("{path}.export_scopes"),
        errors,
    );
    let allow_summaries = opt_bool(
        obj.get("allow_summaries"),
        &format!("{path}.allow_summaries"),
        errors,
    );
    Some(CutoverWindowConfig {
        starts_at,
        ends_at,
        export_scopes,
        allow_summaries,
    })
}

fn unknown_keys(obj: &Map<String, Value>, known: &[&str], path: &str, errors: &mut Vec<String>) {
    for key in obj.keys() {
        if !known.contains(&key.as_str()) {
            errors.push(format!(
                "{path}.{key} is not a rule field (expected one of {})",
                known.join(", ")
            ));
        }
    }
}

fn string_list(value: Option<&Value>, path: &str, errors: &mut Vec<String>) -> Vec<String> {
    let item = |v: &Value| match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match value {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for (k, v) in items.iter().enumerate() {
                match item(v) {
                    Some(s) if s.is_empty() => {}
                    Some(s) => out.push(s),
                    None => errors.push(format!(
                        "{path}[{k}] must be a string, got {}",
                        json_type_name(v)
                    )),
                }
            }
            out
        }
        Some(v) => match item(v) {
            Some(s) if s.is_empty() => Vec::new(),
            Some(s) => vec![s],
            None => {
                errors.push(format!(
                    "{path} must be a list of strings, got {}",
                    json_type_name(v)
                ));
                Vec::new()
            }
        },
    }
}

fn opt_bool(value: Option<&Value>, path: &str, errors: &mut Vec<String>) -> Option<bool> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            errors.push(format!(
                "{path} must be true or false, got {}",
                json_type_name(other)
            ));
            None
        }
    }
}

fn opt_number(value: Option<&Value>, path: &str, errors: &mut Vec<String>) -> Option<f64> {
    match value {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(f) => Some(f),
            Err(_) => {
                errors.push(format!("{path} must be a number, got a string"));
                None
            }
        },
        Some(other) => {
            errors.push(format!(
                "{path} must be a number, got {}",
                json_type_name(other)
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wire_shape_omits_what_mpreg_omits() {
        let rule = Rule {
            namespace: "svc.secret".into(),
            owners: vec!["cluster-a".into()],
            visibility: vec!["secure-cluster".into()],
            visibility_tenants: vec![],
            export_scopes: vec![],
            allow_summaries: false,
            cutover_windows: vec![],
            policy_version: Some("v1".into()),
        };
        // client_protocol.md §3.11's rule, exactly.
        assert_eq!(
            rule.to_json(),
            json!({"namespace":"svc.secret","owners":["cluster-a"],"visibility":["secure-cluster"],"export_scopes":[],"allow_summaries":false,"policy_version":"v1"})
        );
        let full = Rule {
            visibility_tenants: vec!["tenant-secure".into()],
            cutover_windows: vec![CutoverWindow {
                starts_at: 1700000100.0,
                ends_at: Some(1700003700.0),
                export_scopes: vec![Scope::Global],
                allow_summaries: Some(true),
            }],
            ..rule.clone()
        };
        // §2.3's full example.
        assert_eq!(
            full.to_json(),
            json!({"namespace":"svc.secret","owners":["cluster-a"],"visibility":["secure-cluster"],"visibility_tenants":["tenant-secure"],"export_scopes":[],"allow_summaries":false,"cutover_windows":[{"starts_at":1700000100.0,"ends_at":1700003700.0,"export_scopes":["global"],"allow_summaries":true}],"policy_version":"v1"})
        );
        let back: Rule = serde_json::from_value(full.to_json()).unwrap();
        assert_eq!(back, full);
        let minimal_window = CutoverWindow {
            starts_at: 5.0,
            ends_at: None,
            export_scopes: vec![],
            allow_summaries: None,
        };
        assert_eq!(
            serde_json::to_value(&minimal_window).unwrap(),
            json!({"starts_at": 5.0})
        );
    }

    #[test]
    fn windows_are_inclusive() {
        let w = CutoverWindow {
            starts_at: 10.0,
            ends_at: Some(20.0),
            export_scopes: vec![],
            allow_summaries: None,
        };
        assert!(!w.active(9.999));
        assert!(w.active(10.0));
        assert!(w.active(20.0));
        assert!(!w.active(20.001));
        let open = CutoverWindow { ends_at: None, ..w };
        assert!(open.active(1e12));
    }

    #[test]
    fn lenient_parsing() {
        let (n, rules) = rules_from_json(&json!({
            "namespace": "svc.a",
            "owners": "cluster-a",
            "visibility": ["x", " ", 7],
            "cutover_windows": {"starts_at": "100", "allow_summaries": true},
            "policy_version": 3
        }));
        assert_eq!(n, 1);
        let r = &rules.unwrap()[0];
        assert_eq!(r.owners, vec!["cluster-a"]);
        assert_eq!(r.visibility, vec!["x", "7"]);
        assert_eq!(r.cutover_windows[0].starts_at, 100.0);
        assert_eq!(r.cutover_windows[0].allow_summaries, Some(true));
        assert_eq!(r.policy_version.as_deref(), Some("3"));
        assert!(!r.allow_summaries);

        let (n, rules) = rules_from_json(&json!([]));
        assert_eq!((n, rules.unwrap().len()), (0, 0));
        let (n, rules) = rules_from_json(&Value::Null);
        assert_eq!((n, rules.unwrap().len()), (0, 0));
    }

    #[test]
    fn strict_where_leniency_would_weaken_a_policy() {
        let (n, rules) = rules_from_json(&json!([
            {"namespace": "a", "visibilty": ["x"]},
            {"namespace": "b", "allow_summaries": "false"},
            "c",
            {"namespace": 5, "owners": {"x": 1}, "cutover_windows": [{"starts_at": true, "foo": 1}]}
        ]));
        assert_eq!(n, 4);
        let errors = rules.unwrap_err();
        assert!(
            errors[0].starts_with("rules[0].visibilty is not a rule field"),
            "{errors:?}"
        );
        assert!(errors[1].starts_with("rules[1].allow_summaries must be true or false"));
        assert_eq!(errors[2], "rules[2] must be an object, got a string");
        assert!(errors.contains(&"rules[3].namespace must be a string, got a number".to_string()));
        assert!(errors
            .contains(&"rules[3].owners must be a list of strings, got an object".to_string()));
        assert!(errors
            .iter()
            .any(|e| e.starts_with("rules[3].cutover_windows[0].foo is not a rule field")));
        assert!(errors.contains(
            &"rules[3].cutover_windows[0].starts_at must be a number, got a boolean".to_string()
        ));
        let (_, bad) = rules_from_json(&json!(5));
        assert_eq!(
            bad.unwrap_err(),
            vec!["rules must be a list of rule objects, got a number"]
        );
    }

    #[test]
    fn to_config_roundtrips_through_compile() {
        let rule = Rule {
            namespace: "svc".into(),
            owners: vec![],
            visibility: vec!["c".into()],
            visibility_tenants: vec!["t".into()],
            export_scopes: vec![Scope::Zone, Scope::Global],
            allow_summaries: true,
            cutover_windows: vec![CutoverWindow {
                starts_at: 1.0,
                ends_at: Some(2.0),
                export_scopes: vec![Scope::Region],
                allow_summaries: Some(false),
            }],
            policy_version: None,
        };
        let compiled = super::super::validate::compile_rules(&[rule.to_config()]).unwrap();
        assert_eq!(compiled, vec![rule]);
    }
}
