//! The namespace policy engine (`discovery_logic.md` §2.2–2.3): an immutable
//! value built from validated rules, swapped whole on apply / rollback.
//!
//! Matching uses the one namespace rule: a rule on `svc.prod` governs
//! `svc.prod` and everything under `svc.prod.`, never `svc.production`. The
//! **longest** matching rule alone decides (no merging with shorter rules).
//! Decisions allocate nothing: the matched rule is found by walking the
//! namespace's dot-boundary prefixes from the longest down, looking up only
//! prefixes whose length some rule namespace has, in a hash index.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use serde::{Serialize, Serializer};

use crate::catalog::scope::Scope;
use crate::config::Settings;
use crate::identity::Viewer;

use super::rules::Rule;
use super::validate::compile_rules;

/// Why a decision came out as it did. [`Reason::as_str`] gives MPREG's wire
/// strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The engine is disabled: everything is allowed.
    PolicyDisabled,
    /// No rule matches: `default_allow` decides.
    NoPolicy,
    /// The rule restricts neither viewer clusters nor tenants.
    VisibilityUnrestricted,
    /// The viewer's tenant is listed.
    TenantAllowed,
    /// The viewer's cluster is listed.
    ViewerAllowed,
    /// Neither is listed.
    ViewerDenied,
    /// The rule restricts no owners.
    OwnersUnrestricted,
    /// The source cluster is an owner.
    OwnerAllowed,
    /// The source cluster is not an owner.
    OwnerDenied,
    /// The rule has cutover windows and none is active.
    CutoverClosed,
    /// The active window does not allow this export scope.
    CutoverScopeDenied,
    /// Summaries are off for this namespace (rule or active window).
    SummariesDisabled,
    /// The rule does not allow this export scope.
    ScopeDenied,
    /// The summary may be exported.
    SummaryAllowed,
}

impl Reason {
    /// MPREG's wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::PolicyDisabled => "policy_disabled",
            Reason::NoPolicy => "no_policy",
            Reason::VisibilityUnrestricted => "visibility_unrestricted",
            Reason::TenantAllowed => "tenant_allowed",
            Reason::ViewerAllowed => "viewer_allowed",
            Reason::ViewerDenied => "viewer_denied",
            Reason::OwnersUnrestricted => "owners_unrestricted",
            Reason::OwnerAllowed => "owner_allowed",
            Reason::OwnerDenied => "owner_denied",
            Reason::CutoverClosed => "cutover_closed",
            Reason::CutoverScopeDenied => "cutover_scope_denied",
            Reason::SummariesDisabled => "summaries_disabled",
            Reason::ScopeDenied => "scope_denied",
            Reason::SummaryAllowed => "summary_allowed",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One policy decision.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision<'a> {
    /// Allowed or not.
    pub allowed: bool,
    /// Why.
    pub reason: Reason,
    /// The rule that decided, if one matched.
    pub rule: Option<&'a Rule>,
}

impl<'a> Decision<'a> {
    fn allow(reason: Reason, rule: Option<&'a Rule>) -> Self {
        Decision {
            allowed: true,
            reason,
            rule,
        }
    }

    fn deny(reason: Reason, rule: Option<&'a Rule>) -> Self {
        Decision {
            allowed: false,
            reason,
            rule,
        }
    }
}

/// The policy engine.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyEngine {
    enabled: bool,
    default_allow: bool,
    rules: Vec<Rule>,
    /// Normalised rule namespace → index into `rules`.
    index: HashMap<String, usize, BuildHasherDefault<FxHasher>>,
    /// Lengths of the rule namespaces: only prefixes of these lengths are
    /// looked up.
    lengths: LengthSet,
}

/// A set of string lengths: a bitmap below 256, one flag above.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct LengthSet {
    bits: [u64; 4],
    long: bool,
    max: usize,
}

impl LengthSet {
    fn insert(&mut self, len: usize) {
        self.max = self.max.max(len);
        if len < 256 {
            self.bits[len / 64] |= 1 << (len % 64);
        } else {
            self.long = true;
        }
    }

    fn contains(&self, len: usize) -> bool {
        if len < 256 {
            self.bits[len / 64] & (1 << (len % 64)) != 0
        } else {
            self.long
        }
    }
}

/// FxHash (rustc's hasher): fast and deterministic. Fine for this index,
/// whose keys are the operator's rule namespaces: a client's namespace is
/// only ever looked up, so it cannot lengthen probe chains.
#[derive(Default)]
struct FxHasher {
    hash: u64,
}

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

impl Default for PolicyEngine {
    /// Disabled, default-allow, no rules (MPREG's defaults).
    fn default() -> Self {
        PolicyEngine {
            enabled: false,
            default_allow: true,
            rules: Vec::new(),
            index: HashMap::default(),
            lengths: LengthSet::default(),
        }
    }
}

impl PolicyEngine {
    /// An engine over validated rules (from [`compile_rules`]). Fails, with
    /// validation's wording, if two rules govern the same namespace or a rule
    /// namespace is empty, which hand-built rules could do.
    pub fn new(enabled: bool, default_allow: bool, rules: Vec<Rule>) -> Result<Self, Vec<String>> {
        let mut index: HashMap<String, usize, BuildHasherDefault<FxHasher>> = HashMap::default();
        let mut lengths = LengthSet::default();
        let mut errors = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            if rule.namespace.is_empty() {
                errors.push(format!("rules[{i}].namespace is empty"));
            } else if index.insert(rule.namespace.clone(), i).is_some() {
                errors.push(format!(
                    "rules[{i}].namespace duplicate: {}",
                    rule.namespace
                ));
            }
            lengths.insert(rule.namespace.len());
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(PolicyEngine {
            enabled,
            default_allow,
            rules,
            index,
            lengths,
        })
    }

    /// The engine the settings describe (`discovery_policy_enabled`,
    /// `discovery_policy_default_allow`, `discovery_policy_rules`), or every
    /// validation problem.
    pub fn from_settings(settings: &Settings) -> Result<Self, Vec<String>> {
        let rules = compile_rules(&settings.discovery_policy_rules)?;
        PolicyEngine::new(
            settings.discovery_policy_enabled,
            settings.discovery_policy_default_allow,
            rules,
        )
    }

    /// Whether the engine enforces anything.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The decision for namespaces no rule matches.
    pub fn default_allow(&self) -> bool {
        self.default_allow
    }

    /// The rules, in the order they were given.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule governing `namespace`: the longest rule namespace that equals
    /// it or is a dot-boundary prefix of it. `None` for the empty namespace.
    pub fn best_match(&self, namespace: &str) -> Option<&Rule> {
        if self.index.is_empty() || namespace.is_empty() {
            return None;
        }
        let bytes = namespace.as_bytes();
        let lookup = |len: usize| {
            if !self.lengths.contains(len) {
                return None;
            }
            // `len` is the whole name or the position of a `.`: a char boundary.
            self.index.get(&namespace[..len]).map(|&i| &self.rules[i])
        };
        if let Some(rule) = lookup(bytes.len()) {
            return Some(rule);
        }
        // Dot-boundary prefixes, longest first; none is longer than the
        // longest rule namespace.
        let top = self.lengths.max.min(bytes.len() - 1);
        (1..=top)
            .rev()
            .filter(|&cut| bytes[cut] == b'.')
            .find_map(lookup)
    }

    /// May `viewer_cluster` (with `tenant`) see `namespace`? MPREG's order:
    /// `policy_disabled`, `no_policy` (default), `visibility_unrestricted`,
    /// `tenant_allowed`, `viewer_allowed`, else `viewer_denied`.
    pub fn allows_viewer(
        &self,
        namespace: &str,
        viewer_cluster: &str,
        tenant: Option<&str>,
    ) -> Decision<'_> {
        if !self.enabled {
            return Decision::allow(Reason::PolicyDisabled, None);
        }
        let Some(rule) = self.best_match(namespace) else {
            return Decision {
                allowed: self.default_allow,
                reason: Reason::NoPolicy,
                rule: None,
            };
        };
        if !rule.restricts_visibility() {
            return Decision::allow(Reason::VisibilityUnrestricted, Some(rule));
        }
        if let Some(t) = tenant.filter(|t| !t.is_empty()) {
            if rule.visibility_tenants.iter().any(|v| v == t) {
                return Decision::allow(Reason::TenantAllowed, Some(rule));
            }
        }
        if rule.visibility.iter().any(|v| v == viewer_cluster) {
            return Decision::allow(Reason::ViewerAllowed, Some(rule));
        }
        Decision::deny(Reason::ViewerDenied, Some(rule))
    }

    /// [`PolicyEngine::allows_viewer`] for a resolved [`Viewer`].
    pub fn allows(&self, namespace: &str, viewer: &Viewer) -> Decision<'_> {
        self.allows_viewer(namespace, &viewer.cluster, viewer.tenant.as_deref())
    }

    /// May `source_cluster` publish entries of `namespace` (catalog
    /// ingestion)? `policy_disabled`, `no_policy`, `owners_unrestricted`,
    /// `owner_allowed`, else `owner_denied`.
    pub fn allows_source(&self, namespace: &str, source_cluster: &str) -> Decision<'_> {
        if !self.enabled {
            return Decision::allow(Reason::PolicyDisabled, None);
        }
        let Some(rule) = self.best_match(namespace) else {
            return Decision {
                allowed: self.default_allow,
                reason: Reason::NoPolicy,
                rule: None,
            };
        };
        if rule.owners.is_empty() {
            Decision::allow(Reason::OwnersUnrestricted, Some(rule))
        } else if rule.owners.iter().any(|o| o == source_cluster) {
            Decision::allow(Reason::OwnerAllowed, Some(rule))
        } else {
            Decision::deny(Reason::OwnerDenied, Some(rule))
        }
    }

    /// May `source_cluster` export a summary of `namespace` at `export_scope`
    /// at wall time `now`? MPREG's order: `policy_disabled`, `no_policy`,
    /// `owner_denied`; with cutover windows: `cutover_closed` when none is
    /// active, else the active window with the latest start may replace
    /// `allow_summaries` and must allow the scope (`cutover_scope_denied`);
    /// then `summaries_disabled`, the rule's scopes (`scope_denied`), and
    /// `summary_allowed`. Window scopes and rule scopes must both pass.
    pub fn allows_summary_export(
        &self,
        namespace: &str,
        source_cluster: &str,
        export_scope: Option<Scope>,
        now: f64,
    ) -> Decision<'_> {
        if !self.enabled {
            return Decision::allow(Reason::PolicyDisabled, None);
        }
        let Some(rule) = self.best_match(namespace) else {
            return Decision {
                allowed: self.default_allow,
                reason: Reason::NoPolicy,
                rule: None,
            };
        };
        if !rule.owners.is_empty() && !rule.owners.iter().any(|o| o == source_cluster) {
            return Decision::deny(Reason::OwnerDenied, Some(rule));
        }
        let scope_in = |scopes: &[Scope]| export_scope.is_some_and(|s| scopes.contains(&s));
        let mut allow = rule.allow_summaries;
        if !rule.cutover_windows.is_empty() {
            let active = rule
                .cutover_windows
                .iter()
                .filter(|w| w.active(now))
                // Latest start wins; on a tie the first listed (Python's max).
                .fold(
                    None,
                    |best: Option<&super::rules::CutoverWindow>, w| match best {
                        Some(b) if b.starts_at >= w.starts_at => Some(b),
                        _ => Some(w),
                    },
                );
            let Some(window) = active else {
                return Decision::deny(Reason::CutoverClosed, Some(rule));
            };
            if let Some(v) = window.allow_summaries {
                allow = v;
            }
            if !window.export_scopes.is_empty() && !scope_in(&window.export_scopes) {
                return Decision::deny(Reason::CutoverScopeDenied, Some(rule));
            }
        }
        if !allow {
            return Decision::deny(Reason::SummariesDisabled, Some(rule));
        }
        if !rule.export_scopes.is_empty() && !scope_in(&rule.export_scopes) {
            return Decision::deny(Reason::ScopeDenied, Some(rule));
        }
        Decision::allow(Reason::SummaryAllowed, Some(rule))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CutoverWindowConfig, PolicyRuleConfig};
    use crate::policy::rules::CutoverWindow;
    use proptest::prelude::*;

    fn rule(ns: &str) -> Rule {
        Rule {
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

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn engine(default_allow: bool, rules: Vec<Rule>) -> PolicyEngine {
        PolicyEngine::new(true, default_allow, rules).unwrap()
    }

    #[test]
    fn longest_dot_boundary_match_wins() {
        let e = engine(
            true,
            vec![rule("svc"), rule("svc.market.eu"), rule("svc.market")],
        );
        let ns = |n: &str| e.best_match(n).map(|r| r.namespace.as_str());
        assert_eq!(ns("svc.market.eu.quote"), Some("svc.market.eu"));
        assert_eq!(ns("svc.market.eu"), Some("svc.market.eu"));
        assert_eq!(ns("svc.market.us"), Some("svc.market"));
        assert_eq!(ns("svc.marketing"), Some("svc"));
        assert_eq!(ns("svc"), Some("svc"));
        assert_eq!(ns("svcx"), None);
        assert_eq!(ns("other.svc"), None);
        assert_eq!(ns(""), None);
    }

    #[test]
    fn subtree_pattern_rules_match_the_subtree() {
        let mut r = PolicyRuleConfig {
            namespace: "svc.prod.us-east.*".into(),
            owners: vec![],
            visibility: strs(&["ops"]),
            visibility_tenants: vec![],
            export_scopes: vec![],
            allow_summaries: false,
            cutover_windows: vec![],
            policy_version: None,
        };
        let mut s = Settings {
            discovery_policy_enabled: true,
            discovery_policy_rules: vec![r.clone()],
            ..Default::default()
        };
        let e = PolicyEngine::from_settings(&s).unwrap();
        // MPREG matches the pattern literally and never denies; we deny.
        let d = e.allows_viewer("svc.prod.us-east.api", "other", None);
        assert_eq!((d.allowed, d.reason), (false, Reason::ViewerDenied));
        assert!(e.allows_viewer("svc.prod.us-east", "ops", None).allowed);
        assert_eq!(
            e.allows_viewer("svc.prod.us-eastern", "x", None).reason,
            Reason::NoPolicy
        );
        r.namespace = "".into();
        s.discovery_policy_rules = vec![r];
        assert_eq!(
            PolicyEngine::from_settings(&s).unwrap_err(),
            vec!["rules[0].namespace is empty"]
        );
    }

    #[test]
    fn viewer_decisions_in_mpregs_order() {
        let disabled = PolicyEngine::new(false, false, vec![rule("svc")]).unwrap();
        let d = disabled.allows_viewer("svc", "c", None);
        assert_eq!(
            (d.allowed, d.reason, d.rule),
            (true, Reason::PolicyDisabled, None)
        );

        let mut secret = rule("svc.secret");
        secret.visibility = strs(&["secure-cluster"]);
        secret.visibility_tenants = strs(&["tenant-a"]);
        let mut tenants_only = rule("svc.tenants");
        tenants_only.visibility_tenants = strs(&["tenant-a"]);
        let e = engine(false, vec![rule("svc.open"), secret, tenants_only]);

        let check = |ns: &str, cluster: &str, tenant: Option<&str>| {
            let d = e.allows_viewer(ns, cluster, tenant);
            (d.allowed, d.reason.as_str())
        };
        assert_eq!(check("other", "c", None), (false, "no_policy"));
        assert_eq!(
            check("svc.open.x", "c", None),
            (true, "visibility_unrestricted")
        );
        assert_eq!(
            check("svc.secret", "c", Some("tenant-a")),
            (true, "tenant_allowed")
        );
        assert_eq!(
            check("svc.secret", "secure-cluster", Some("tenant-a")),
            (true, "tenant_allowed")
        );
        assert_eq!(
            check("svc.secret", "secure-cluster", Some("tenant-b")),
            (true, "viewer_allowed")
        );
        assert_eq!(
            check("svc.secret", "secure-cluster", None),
            (true, "viewer_allowed")
        );
        assert_eq!(
            check("svc.secret", "c", Some("tenant-b")),
            (false, "viewer_denied")
        );
        assert_eq!(check("svc.secret", "c", Some("")), (false, "viewer_denied"));
        // A rule with only tenants denies every cluster viewer without one.
        assert_eq!(
            check("svc.tenants", "secure-cluster", None),
            (false, "viewer_denied")
        );
        let e2 = engine(true, vec![]);
        assert_eq!(e2.allows_viewer("x", "c", None).reason, Reason::NoPolicy);
        assert!(e2.allows_viewer("x", "c", None).allowed);
        let v = Viewer::new("c", Some("tenant-a".into()));
        assert!(e.allows("svc.secret.deep", &v).allowed);
        assert_eq!(
            e.allows("svc.secret.deep", &v).rule.unwrap().namespace,
            "svc.secret"
        );
    }

    #[test]
    fn source_decisions() {
        let mut owned = rule("svc.owned");
        owned.owners = strs(&["cluster-a"]);
        let e = engine(false, vec![owned, rule("svc.free")]);
        let r = |ns: &str, c: &str| e.allows_source(ns, c).reason.as_str();
        assert_eq!(r("svc.owned.x", "cluster-a"), "owner_allowed");
        assert_eq!(r("svc.owned.x", "cluster-b"), "owner_denied");
        assert_eq!(r("svc.free", "cluster-b"), "owners_unrestricted");
        assert_eq!(r("elsewhere", "cluster-b"), "no_policy");
        assert!(!e.allows_source("elsewhere", "b").allowed);
        assert_eq!(
            PolicyEngine::default().allows_source("x", "y").reason,
            Reason::PolicyDisabled
        );
    }

    #[test]
    fn summary_export_decisions() {
        let mut r = rule("svc.m");
        r.owners = strs(&["cluster-a"]);
        r.allow_summaries = true;
        r.export_scopes = vec![Scope::Global, Scope::Region];
        let e = engine(true, vec![r.clone()]);
        let d = |e: &PolicyEngine, src: &str, scope: Option<Scope>, now: f64| {
            let d = e.allows_summary_export("svc.m.quote", src, scope, now);
            (d.allowed, d.reason.as_str())
        };
        assert_eq!(
            d(&e, "cluster-b", Some(Scope::Global), 0.0),
            (false, "owner_denied")
        );
        assert_eq!(
            d(&e, "cluster-a", Some(Scope::Global), 0.0),
            (true, "summary_allowed")
        );
        assert_eq!(
            d(&e, "cluster-a", Some(Scope::Zone), 0.0),
            (false, "scope_denied")
        );
        assert_eq!(d(&e, "cluster-a", None, 0.0), (false, "scope_denied"));
        let off = engine(
            true,
            vec![Rule {
                allow_summaries: false,
                ..r.clone()
            }],
        );
        assert_eq!(
            d(&off, "cluster-a", Some(Scope::Global), 0.0),
            (false, "summaries_disabled")
        );
        let any_scope = engine(
            true,
            vec![Rule {
                export_scopes: vec![],
                ..r.clone()
            }],
        );
        assert_eq!(
            d(&any_scope, "cluster-a", None, 0.0),
            (true, "summary_allowed")
        );
        assert_eq!(
            engine(false, vec![])
                .allows_summary_export("x", "a", None, 0.0)
                .reason,
            Reason::NoPolicy
        );

        // Cutover windows: [100, 200] turns summaries off; [150, open) turns
        // them on for global only.
        let windowed = Rule {
            allow_summaries: true,
            cutover_windows: vec![
                CutoverWindow {
                    starts_at: 100.0,
                    ends_at: Some(200.0),
                    export_scopes: vec![],
                    allow_summaries: Some(false),
                },
                CutoverWindow {
                    starts_at: 150.0,
                    ends_at: None,
                    export_scopes: vec![Scope::Global],
                    allow_summaries: Some(true),
                },
            ],
            ..r.clone()
        };
        let e = engine(true, vec![windowed]);
        assert_eq!(
            d(&e, "cluster-a", Some(Scope::Global), 99.0),
            (false, "cutover_closed")
        );
        assert_eq!(
            d(&e, "cluster-a", Some(Scope::Global), 100.0),
            (false, "summaries_disabled")
        );
        // Both active from 150: the later start wins.
        assert_eq!(
            d(&e, "cluster-a", Some(Scope::Global), 150.0),
            (true, "summary_allowed")
        );
        // Window scope first, then the rule's (region passes the rule, not the window).
        assert_eq!(
            d(&e, "cluster-a", Some(Scope::Region), 160.0),
            (false, "cutover_scope_denied")
        );
        assert_eq!(
            d(&e, "cluster-a", None, 160.0),
            (false, "cutover_scope_denied")
        );
        assert_eq!(
            d(&e, "cluster-a", Some(Scope::Global), 1e10),
            (true, "summary_allowed")
        );
        // Owners are checked before windows.
        assert_eq!(
            d(&e, "cluster-b", Some(Scope::Global), 99.0),
            (false, "owner_denied")
        );
    }

    #[test]
    fn equal_window_starts_pick_the_first() {
        let r = Rule {
            allow_summaries: false,
            cutover_windows: vec![
                CutoverWindow {
                    starts_at: 10.0,
                    ends_at: None,
                    export_scopes: vec![],
                    allow_summaries: Some(true),
                },
                CutoverWindow {
                    starts_at: 10.0,
                    ends_at: None,
                    export_scopes: vec![],
                    allow_summaries: Some(false),
                },
            ],
            ..rule("a")
        };
        let e = engine(true, vec![r]);
        assert!(e.allows_summary_export("a", "x", None, 11.0).allowed);
    }

    #[test]
    fn hand_built_duplicates_are_refused() {
        assert_eq!(
            PolicyEngine::new(true, true, vec![rule("a"), rule("a"), rule("")]).unwrap_err(),
            vec![
                "rules[1].namespace duplicate: a",
                "rules[2].namespace is empty"
            ]
        );
    }

    #[test]
    fn settings_with_windows() {
        let s = Settings {
            discovery_policy_rules: vec![PolicyRuleConfig {
                namespace: "a".into(),
                owners: vec![],
                visibility: vec![],
                visibility_tenants: vec![],
                export_scopes: vec!["cluster".into()],
                allow_summaries: true,
                cutover_windows: vec![CutoverWindowConfig {
                    starts_at: 1.0,
                    ends_at: None,
                    export_scopes: vec![],
                    allow_summaries: None,
                }],
                policy_version: None,
            }],
            ..Default::default()
        };
        let e = PolicyEngine::from_settings(&s).unwrap();
        assert!(!e.enabled());
        assert!(e.default_allow());
        assert_eq!(e.rules()[0].export_scopes, vec![Scope::Zone]);
    }

    // ---- property tests: monotonicity and longest match -------------------

    const NAMESPACES: &[&str] = &["a", "a.b", "a.b.c", "a.bc", "b", "b.a", "a.b.c.d"];
    const CLUSTERS: &[&str] = &["c1", "c2", "c3"];
    const TENANTS: &[&str] = &["t1", "t2"];

    fn subset(pool: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
        proptest::sample::subsequence(pool.to_vec(), 0..=pool.len())
            .prop_map(|v| v.into_iter().map(str::to_string).collect())
    }

    fn arb_rule(ns: &'static str) -> impl Strategy<Value = Rule> {
        (subset(CLUSTERS), subset(TENANTS)).prop_map(move |(visibility, visibility_tenants)| Rule {
            visibility,
            visibility_tenants,
            ..rule(ns)
        })
    }

    fn arb_rules() -> impl Strategy<Value = Vec<Rule>> {
        proptest::sample::subsequence(NAMESPACES.to_vec(), 0..=NAMESPACES.len())
            .prop_flat_map(|nss| nss.into_iter().map(arb_rule).collect::<Vec<_>>())
            .prop_shuffle()
    }

    fn viewers() -> Vec<(&'static str, Option<&'static str>)> {
        let mut v = Vec::new();
        for c in CLUSTERS {
            v.push((*c, None));
            for t in TENANTS {
                v.push((*c, Some(*t)));
            }
        }
        v
    }

    /// Straightforward reference: scan every rule, keep the longest match.
    fn reference_best<'a>(rules: &'a [Rule], ns: &str) -> Option<&'a Rule> {
        rules
            .iter()
            .filter(|r| ns == r.namespace || ns.starts_with(&format!("{}.", r.namespace)))
            .max_by_key(|r| r.namespace.len())
    }

    /// Whether `narrow` allows no viewer that `wide` denies.
    fn is_restriction(narrow: &Rule, wide: Option<&Rule>, default_allow: bool) -> bool {
        let Some(wide) = wide else {
            return default_allow;
        };
        if !wide.restricts_visibility() {
            return true;
        }
        narrow.restricts_visibility()
            && narrow
                .visibility
                .iter()
                .all(|c| wide.visibility.contains(c))
            && narrow
                .visibility_tenants
                .iter()
                .all(|t| wide.visibility_tenants.contains(t))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// The engine's match is the longest dot-boundary match, and the
        /// decision is made from that rule alone.
        #[test]
        fn longest_match_wins(rules in arb_rules(), default_allow in any::<bool>()) {
            let e = PolicyEngine::new(true, default_allow, rules.clone()).unwrap();
            for ns in NAMESPACES.iter().chain(&["a.b.x", "a.bcd", "c", "a.b.c.d.e"]) {
                let want = reference_best(&rules, ns);
                prop_assert_eq!(e.best_match(ns), want);
                for (c, t) in viewers() {
                    let d = e.allows_viewer(ns, c, t);
                    prop_assert_eq!(d.rule, want);
                    let single = PolicyEngine::new(true, default_allow, want.cloned().into_iter().collect()).unwrap();
                    prop_assert_eq!(d.allowed, single.allows_viewer(ns, c, t).allowed);
                }
            }
        }

        /// Deny stays deny: adding a rule for an unrelated namespace changes
        /// nothing, and adding a restriction (a rule that allows no viewer the
        /// rule it shadows denies) never turns a denied viewer into an allowed
        /// one, anywhere.
        #[test]
        fn deny_stays_deny(
            rules in arb_rules(),
            default_allow in any::<bool>(),
            extra_ns in proptest::sample::select(NAMESPACES.to_vec()),
            extra in (subset(CLUSTERS), subset(TENANTS)),
        ) {
            prop_assume!(!rules.iter().any(|r| r.namespace == extra_ns));
            let before = PolicyEngine::new(true, default_allow, rules.clone()).unwrap();
            let added = Rule { visibility: extra.0, visibility_tenants: extra.1, ..rule(extra_ns) };
            let restriction = is_restriction(&added, before.best_match(extra_ns), default_allow);
            let mut more = rules.clone();
            more.push(added.clone());
            let after = PolicyEngine::new(true, default_allow, more).unwrap();
            for ns in NAMESPACES.iter().chain(&["a.b.x", "c"]) {
                let related = *ns == extra_ns || ns.starts_with(&format!("{extra_ns}."));
                for (c, t) in viewers() {
                    let b = before.allows_viewer(ns, c, t);
                    let a = after.allows_viewer(ns, c, t);
                    if !related {
                        prop_assert_eq!(a, b, "unrelated rule {} changed {}", extra_ns, ns);
                    } else if restriction && !b.allowed {
                        prop_assert!(!a.allowed, "restriction {:?} allowed {} {:?} on {}", added, c, t, ns);
                    }
                }
            }
        }

        /// Narrowing the lists of the governing rule (keeping it restricted)
        /// never allows anyone new.
        #[test]
        fn narrowing_a_rule_never_widens(
            rules in arb_rules(),
            default_allow in any::<bool>(),
            which in any::<proptest::sample::Index>(),
            keep in proptest::collection::vec(any::<bool>(), 5),
        ) {
            prop_assume!(!rules.is_empty());
            let i = which.index(rules.len());
            prop_assume!(rules[i].restricts_visibility());
            let mut narrowed = rules.clone();
            let r = &mut narrowed[i];
            let mut k = keep.iter().cycle();
            r.visibility.retain(|_| *k.next().unwrap());
            r.visibility_tenants.retain(|_| *k.next().unwrap());
            prop_assume!(r.restricts_visibility());
            let before = PolicyEngine::new(true, default_allow, rules).unwrap();
            let after = PolicyEngine::new(true, default_allow, narrowed).unwrap();
            for ns in NAMESPACES {
                for (c, t) in viewers() {
                    if !before.allows_viewer(ns, c, t).allowed {
                        prop_assert!(!after.allows_viewer(ns, c, t).allowed);
                    }
                }
            }
        }
    }
}
