//! Rule validation and normalisation, at config load and on every validate /
//! apply RPC: one reason string per problem, MPREG's wording where MPREG has
//! one (`discovery_logic.md` §2.5), ours for the problems MPREG lets through
//! (§11.9): unknown scopes, wildcard namespaces that could never match,
//! non-finite times.
//!
//! MPREG's messages, kept verbatim:
//! - `rules[i].namespace is empty`
//! - `rules[i].namespace duplicate: <ns>` (after normalising `x.*` to `x`)
//! - `rules[i].cutover_windows[j].starts_at invalid` (`<= 0` or not finite)
//! - `rules[i].cutover_windows[j].ends_at before starts_at` (`ends_at <= starts_at`)

use std::collections::BTreeMap;

use crate::catalog::namespace::NamespaceFilter;
use crate::catalog::scope::Scope;
use crate::config::{PolicyRuleConfig, Settings};

use super::rules::{CutoverWindow, Rule};

/// Validates `rules`; empty means valid.
pub fn validate_rules(rules: &[PolicyRuleConfig]) -> Vec<String> {
    compile_rules(rules).err().unwrap_or_default()
}

/// Validates the policy rules of `settings` (for config load). Messages are
/// prefixed `discovery_policy_` so they name the setting:
/// `discovery_policy_rules[0].namespace is empty`.
pub fn validate_settings(settings: &Settings) -> Result<(), Vec<String>> {
    let errors = validate_rules(&settings.discovery_policy_rules);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors
            .into_iter()
            .map(|e| format!("discovery_policy_{e}"))
            .collect())
    }
}

/// Validates and normalises `rules` into engine rules, or returns every
/// problem found.
pub fn compile_rules(rules: &[PolicyRuleConfig]) -> Result<Vec<Rule>, Vec<String>> {
    let mut errors = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = Vec::with_capacity(rules.len());
    for (i, raw) in rules.iter().enumerate() {
        let path = format!("rules[{i}]");
        let before = errors.len();
        let Some(namespace) = namespace_of(&raw.namespace, &path, &mut errors) else {
            continue;
        };
        if seen.insert(namespace.clone(), i).is_some() {
            errors.push(format!("{path}.namespace duplicate: {namespace}"));
        }
        let export_scopes = scopes(
            &raw.export_scopes,
            &format!("{path}.export_scopes"),
            &mut errors,
        );
        let mut cutover_windows = Vec::with_capacity(raw.cutover_windows.len());
        for (j, w) in raw.cutover_windows.iter().enumerate() {
            let wpath = format!("{path}.cutover_windows[{j}]");
            let starts_ok = w.starts_at.is_finite() && w.starts_at > 0.0;
            if !starts_ok {
                errors.push(format!("{wpath}.starts_at invalid"));
            }
            if let Some(end) = w.ends_at {
                if !end.is_finite() {
                    errors.push(format!("{wpath}.ends_at invalid"));
                } else if w.starts_at.is_finite() && end <= w.starts_at {
                    errors.push(format!("{wpath}.ends_at before starts_at"));
                }
            }
            let export_scopes = scopes(
                &w.export_scopes,
                &format!("{wpath}.export_scopes"),
                &mut errors,
            );
            cutover_windows.push(CutoverWindow {
                starts_at: w.starts_at,
                ends_at: w.ends_at,
                export_scopes,
                allow_summaries: w.allow_summaries,
            });
        }
        if errors.len() > before {
            continue;
        }
        out.push(Rule {
            namespace,
            owners: ids(&raw.owners),
            visibility: ids(&raw.visibility),
            visibility_tenants: ids(&raw.visibility_tenants),
            export_scopes,
            allow_summaries: raw.allow_summaries,
            cutover_windows,
            policy_version: raw
                .policy_version
                .as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string),
        });
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The normalised namespace of a rule, or `None` after recording why it is
/// unusable.
fn namespace_of(raw: &str, path: &str, errors: &mut Vec<String>) -> Option<String> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        errors.push(format!("{path}.namespace is empty"));
        return None;
    }
    let filter = NamespaceFilter::parse(trimmed);
    if filter.is_all() {
        errors.push(format!(
            "{path}.namespace {trimmed:?} selects every namespace (use discovery_policy_default_allow for the default)"
        ));
        return None;
    }
    let ns = filter.as_str();
    if ns.contains(['*', '#']) {
        errors.push(format!(
            "{path}.namespace {trimmed:?} has a wildcard inside it; only a trailing .* (the whole subtree) is supported"
        ));
        return None;
    }
    if ns.split('.').any(|segment| segment.trim().is_empty()) || ns.chars().any(char::is_whitespace)
    {
        errors.push(format!(
            "{path}.namespace {trimmed:?} is not a dotted name (empty segment or whitespace)"
        ));
        return None;
    }
    Some(ns.to_string())
}

fn scopes(raw: &[String], path: &str, errors: &mut Vec<String>) -> Vec<Scope> {
    let mut out: Vec<Scope> = Vec::with_capacity(raw.len());
    for (k, s) in raw.iter().enumerate() {
        match Scope::parse_request(Some(s)) {
            Ok(Some(scope)) => {
                if !out.contains(&scope) {
                    out.push(scope);
                }
            }
            Ok(None) => {}
            Err(_) => errors.push(format!(
                "{path}[{k}] unknown scope: {s} (expected local, zone, region or global)"
            )),
        }
    }
    out
}

/// Trimmed, non-empty, first occurrence kept.
fn ids(raw: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(raw.len());
    for id in raw {
        let id = id.trim();
        if !id.is_empty() && !out.iter().any(|o| o == id) {
            out.push(id.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CutoverWindowConfig;

    fn rule(ns: &str) -> PolicyRuleConfig {
        PolicyRuleConfig {
            namespace: ns.into(),
            owners: vec![],
            visibility: vec![],
            visibility_tenants: vec![],
            export_scopes: vec![],
            allow_summaries: false,
            cutover_windows: vec![],
            policy_version: None,
        }
    }

    fn window(starts_at: f64, ends_at: Option<f64>) -> CutoverWindowConfig {
        CutoverWindowConfig {
            starts_at,
            ends_at,
            export_scopes: vec![],
            allow_summaries: None,
        }
    }

    #[test]
    fn mpregs_messages() {
        let mut with_windows = rule("svc.b");
        with_windows.cutover_windows = vec![
            window(0.0, None),
            window(100.0, Some(100.0)),
            window(100.0, Some(50.0)),
            window(-1.0, Some(-5.0)),
            window(100.0, Some(200.0)),
        ];
        let errors = validate_rules(&[rule("  "), rule("svc.a"), rule("svc.a"), with_windows]);
        assert_eq!(
            errors,
            vec![
                "rules[0].namespace is empty",
                "rules[2].namespace duplicate: svc.a",
                "rules[3].cutover_windows[0].starts_at invalid",
                "rules[3].cutover_windows[1].ends_at before starts_at",
                "rules[3].cutover_windows[2].ends_at before starts_at",
                "rules[3].cutover_windows[3].starts_at invalid",
                "rules[3].cutover_windows[3].ends_at before starts_at",
            ]
        );
    }

    #[test]
    fn duplicates_after_normalising_subtree_patterns() {
        let errors = validate_rules(&[rule("svc.prod.*"), rule(" svc.prod "), rule("svc.prod.#")]);
        assert_eq!(
            errors,
            vec![
                "rules[1].namespace duplicate: svc.prod",
                "rules[2].namespace duplicate: svc.prod",
            ]
        );
        let ok = compile_rules(&[rule("svc.prod.*")]).unwrap();
        assert_eq!(ok[0].namespace, "svc.prod");
    }

    #[test]
    fn our_extra_checks() {
        let mut scoped = rule("svc.s");
        scoped.export_scopes = vec!["global".into(), "planet".into(), "CLUSTER".into()];
        let mut wscoped = rule("svc.w");
        wscoped.cutover_windows = vec![CutoverWindowConfig {
            export_scopes: vec!["mars".into()],
            ..window(5.0, None)
        }];
        let mut nan = rule("svc.n");
        nan.cutover_windows = vec![window(f64::NAN, Some(f64::INFINITY))];
        let errors = validate_rules(&[
            scoped,
            wscoped,
            nan,
            rule("*"),
            rule("svc.*.eu"),
            rule("svc..x"),
            rule("svc. x"),
        ]);
        assert_eq!(errors.len(), 8, "{errors:#?}");
        assert!(errors[0].starts_with("rules[0].export_scopes[1] unknown scope: planet"));
        assert!(errors[1]
            .starts_with("rules[1].cutover_windows[0].export_scopes[0] unknown scope: mars"));
        assert_eq!(errors[2], "rules[2].cutover_windows[0].starts_at invalid");
        assert_eq!(errors[3], "rules[2].cutover_windows[0].ends_at invalid");
        assert!(errors[4].starts_with("rules[3].namespace \"*\" selects every namespace"));
        assert!(errors[5].starts_with("rules[4].namespace \"svc.*.eu\" has a wildcard inside it"));
        assert!(errors[6].starts_with("rules[5].namespace \"svc..x\" is not a dotted name"));
        assert!(errors[7].starts_with("rules[6].namespace"));
    }

    #[test]
    fn normalisation() {
        let mut r = rule(" svc.a ");
        r.owners = vec![" c1 ".into(), "".into(), "c1".into(), "c2".into()];
        r.export_scopes = vec!["Cluster".into(), "zone".into(), " ".into(), "GLOBAL".into()];
        r.policy_version = Some("  ".into());
        let out = compile_rules(&[r]).unwrap();
        assert_eq!(out[0].namespace, "svc.a");
        assert_eq!(out[0].owners, vec!["c1", "c2"]);
        assert_eq!(out[0].export_scopes, vec![Scope::Zone, Scope::Global]);
        assert_eq!(out[0].policy_version, None);
    }

    #[test]
    fn settings_messages_name_the_setting() {
        let mut s = Settings::default();
        assert!(validate_settings(&s).is_ok());
        s.discovery_policy_rules = vec![rule("")];
        assert_eq!(
            validate_settings(&s).unwrap_err(),
            vec!["discovery_policy_rules[0].namespace is empty"]
        );
    }
}
