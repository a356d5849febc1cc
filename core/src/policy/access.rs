//! Per-item policy decisions for one request: which catalog entries its
//! viewer may see (DESIGN.md §3: every reader goes through the one engine).
//!
//! An entry is visible when, for **every** namespace name it carries
//! ([`all_policy_names`]):
//! - the viewer may see the name (`allows_viewer`), and
//! - the entry's cluster may publish under it (`allows_source`, the rule's
//!   `owners`), unless the entry is the node's own cluster's.
//!
//! MPREG checks `owners` once, when a remote entry is ingested, so a policy
//! applied later never hides entries already held; checking at read time
//! makes an apply or rollback take effect on the next request. Checking
//! every name (a function's effective namespace *and* its full name) means a
//! rule on either denies it, and an unrelated rule can never turn a deny
//! into an allow.
//!
//! Nodes, caches and cache profiles carry no namespace and are visible to
//! every viewer, as in MPREG.

use std::cell::Cell;

use crate::catalog::entry::Entry;
use crate::catalog::namespace::topic_pattern_prefix;
use crate::identity::Viewer;

use super::engine::{Decision, PolicyEngine};

/// Whether `pred` holds for every namespace name policy is checked against
/// for `e` (true when it has none): functions → the effective namespace and
/// the full name; queues → the queue name; services → the namespace; topics →
/// each pattern's literal prefix (empty prefixes, such as `#`, govern
/// nothing). Kinds without a namespace have no names. Allocation-free: it
/// runs once per candidate entry of every query.
pub fn all_policy_names(e: &Entry, mut pred: impl FnMut(&str) -> bool) -> bool {
    let mut check = |name: &str| name.is_empty() || pred(name);
    match e {
        Entry::Function(f) => {
            let ns = f.effective_namespace();
            check(ns) && (f.identity.name == ns || check(&f.identity.name))
        }
        Entry::Queue(q) => check(&q.queue_name),
        Entry::Service(s) => check(&s.namespace),
        Entry::Topic(t) => t.patterns.iter().all(|p| check(topic_pattern_prefix(p))),
        Entry::Node(_) | Entry::Cache(_) | Entry::CacheProfile(_) => true,
    }
}

/// Whether `e` carries any namespace name (see [`all_policy_names`]).
pub fn has_policy_names(e: &Entry) -> bool {
    !all_policy_names(e, |_| false)
}

/// The policy view of one request: its viewer, the engine, and a count of
/// the items it hid.
#[derive(Debug)]
pub struct Access<'a> {
    engine: &'a PolicyEngine,
    viewer: &'a Viewer,
    own_cluster: &'a str,
    deny_all: bool,
    hidden: Cell<u64>,
}

impl<'a> Access<'a> {
    /// Decisions of `engine` for `viewer` on a node of `own_cluster`.
    pub fn new(engine: &'a PolicyEngine, viewer: &'a Viewer, own_cluster: &'a str) -> Self {
        Access {
            engine,
            viewer,
            own_cluster,
            deny_all: false,
            hidden: Cell::new(0),
        }
    }

    /// An access that hides every namespaced entry: the answer to a request
    /// whose own namespace filter was denied (MPREG answers such a request
    /// with an empty result of the usual shape).
    pub fn denying_all(mut self) -> Self {
        self.deny_all = true;
        self
    }

    /// The request's viewer.
    pub fn viewer(&self) -> &Viewer {
        self.viewer
    }

    /// The engine deciding.
    pub fn engine(&self) -> &PolicyEngine {
        self.engine
    }

    /// May the viewer see `namespace`?
    pub fn namespace(&self, namespace: &str) -> Decision<'a> {
        self.engine.allows(namespace, self.viewer)
    }

    /// Whether the viewer may see `e` (see the module docs); a hidden entry
    /// is counted.
    pub fn entry_visible(&self, e: &Entry) -> bool {
        let visible = self.decide(e);
        if !visible {
            self.hidden.set(self.hidden.get() + 1);
        }
        visible
    }

    fn decide(&self, e: &Entry) -> bool {
        if self.deny_all {
            return !has_policy_names(e);
        }
        if !self.engine.enabled() {
            return true;
        }
        let foreign = e.cluster_id() != self.own_cluster;
        all_policy_names(e, |name| {
            self.engine.allows(name, self.viewer).allowed
                && (!foreign || self.engine.allows_source(name, e.cluster_id()).allowed)
        })
    }

    /// Items hidden so far.
    pub fn hidden(&self) -> u64 {
        self.hidden.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::testutil::{func, node, queue, service, topic};
    use crate::config::PolicyRuleConfig;

    fn strs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn rule(ns: &str, visibility: &[&str], tenants: &[&str], owners: &[&str]) -> PolicyRuleConfig {
        PolicyRuleConfig {
            namespace: ns.into(),
            owners: strs(owners),
            visibility: strs(visibility),
            visibility_tenants: strs(tenants),
            export_scopes: vec![],
            allow_summaries: false,
            cutover_windows: vec![],
            policy_version: None,
        }
    }

    fn names(e: &Entry) -> Vec<String> {
        let mut out = Vec::new();
        all_policy_names(e, |n| {
            out.push(n.to_string());
            true
        });
        out
    }

    fn engine(rules: &[PolicyRuleConfig], default_allow: bool) -> PolicyEngine {
        let rules = crate::policy::compile_rules(rules).unwrap();
        PolicyEngine::new(true, default_allow, rules).unwrap()
    }

    #[test]
    fn names_per_kind() {
        let f = Entry::from(func("svc.market.quote", "1.0.0", "ws://n:1", "c"));
        assert_eq!(names(&f), ["svc.market", "svc.market.quote"]);
        let q = Entry::from(queue("svc.jobs.q1", "ws://n:1", "c"));
        assert_eq!(names(&q), ["svc.jobs.q1"]);
        let s = Entry::from(service("api", "svc.web", "tcp", 80, "ws://n:1", "c"));
        assert_eq!(names(&s), ["svc.web"]);
        let t = Entry::from(topic("t", &["svc.a.#", "svc.b.*", "#"], "ws://n:1", "c"));
        assert_eq!(names(&t), ["svc.a", "svc.b"]);
        let n = Entry::from(node("ws://n:1", "c"));
        assert!(names(&n).is_empty() && !has_policy_names(&n));
    }

    #[test]
    fn viewer_rules_hide_and_count() {
        let e = engine(&[rule("svc.secret", &["ops"], &["tenant-a"], &[])], true);
        let open = Entry::from(func("svc.open.f", "1.0.0", "ws://n:1", "c"));
        let secret = Entry::from(func("svc.secret.f", "1.0.0", "ws://n:1", "c"));
        let b = Viewer::new("c", Some("tenant-b".into()));
        let a = Viewer::new("c", Some("tenant-a".into()));
        let ops = Viewer::new("ops", None);
        let acc = Access::new(&e, &b, "c");
        assert!(acc.entry_visible(&open));
        assert!(!acc.entry_visible(&secret));
        assert_eq!(acc.hidden(), 1);
        assert!(Access::new(&e, &a, "c").entry_visible(&secret));
        assert!(Access::new(&e, &ops, "c").entry_visible(&secret));
    }

    #[test]
    fn a_rule_on_the_full_function_name_applies() {
        let e = engine(&[rule("svc.market.quote", &["ops"], &[], &[])], true);
        let f = Entry::from(func("svc.market.quote", "1.0.0", "ws://n:1", "c"));
        let v = Viewer::new("c", None);
        assert!(!Access::new(&e, &v, "c").entry_visible(&f));
    }

    #[test]
    fn owners_hide_foreign_entries_only() {
        let e = engine(&[rule("svc.pay", &[], &[], &["eu"])], true);
        let v = Viewer::new("us", None);
        let ours = Entry::from(func("svc.pay.f", "1.0.0", "ws://n:1", "us"));
        let eu = Entry::from(func("svc.pay.f", "1.0.0", "ws://n:2", "eu"));
        let rogue = Entry::from(func("svc.pay.f", "1.0.0", "ws://n:3", "apac"));
        let acc = Access::new(&e, &v, "us");
        assert!(acc.entry_visible(&ours), "own cluster always passes");
        assert!(acc.entry_visible(&eu));
        assert!(!acc.entry_visible(&rogue));
    }

    #[test]
    fn deny_all_hides_namespaced_entries_but_not_nodes() {
        let e = PolicyEngine::new(false, true, Vec::new()).unwrap();
        let v = Viewer::new("c", None);
        let acc = Access::new(&e, &v, "c").denying_all();
        let f = Entry::from(func("svc.open.f", "1.0.0", "ws://n:1", "c"));
        let n = Entry::from(node("ws://n:1", "c"));
        assert!(!acc.entry_visible(&f));
        assert!(acc.entry_visible(&n));
    }

    #[test]
    fn disabled_engine_and_default_deny() {
        let off = PolicyEngine::new(false, false, Vec::new()).unwrap();
        let v = Viewer::new("c", None);
        let f = Entry::from(func("svc.x.f", "1.0.0", "ws://n:1", "c"));
        assert!(Access::new(&off, &v, "c").entry_visible(&f));
        let deny = engine(&[], false);
        assert!(!Access::new(&deny, &v, "c").entry_visible(&f));
    }
}
