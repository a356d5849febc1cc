//! Store tests: MPREG's register rules, index lookups, and a property test
//! of every index against a naive model.

use super::*;
use crate::catalog::entry::*;
use crate::catalog::testutil::{config, pooled_entry};
use proptest::prelude::*;
use proptest::sample::select;

fn func(name: &str, id: &str, node: &str, at: f64) -> Entry {
    FunctionEndpoint::new(FunctionIdentity::new(name, id, "1.0.0"), node, "c")
        .advertised(at, 30.0)
        .into()
}

fn node(id: &str, at: f64, ttl: f64) -> Entry {
    NodeDescriptor::new(id, "c").advertised(at, ttl).into()
}

#[test]
fn rejects_expired_entries() {
    let mut cat = Catalog::new();
    let err = cat.upsert("o", node("n", 0.0, 10.0), 10.5).unwrap_err();
    assert!(matches!(err, CatalogError::Expired { .. }));
    // Exactly at expiry it is still fresh (strict comparison).
    assert_eq!(
        cat.upsert("o", node("n", 0.0, 10.0), 10.0),
        Ok(Upsert::Inserted)
    );
}

#[test]
fn rejects_stale_updates() {
    let mut cat = Catalog::new();
    assert_eq!(
        cat.upsert("o", node("n", 10.0, 30.0), 10.0),
        Ok(Upsert::Inserted)
    );
    // Older.
    assert!(matches!(
        cat.upsert("o", node("n", 9.0, 60.0), 10.0),
        Err(CatalogError::Stale { .. })
    ));
    // Same time, same or shorter TTL.
    assert!(matches!(
        cat.upsert("o", node("n", 10.0, 30.0), 10.0),
        Err(CatalogError::Stale { .. })
    ));
    assert!(matches!(
        cat.upsert("o", node("n", 10.0, 20.0), 10.0),
        Err(CatalogError::Stale { .. })
    ));
    // Same time, longer TTL wins; newer wins.
    assert_eq!(
        cat.upsert("o", node("n", 10.0, 40.0), 10.0),
        Ok(Upsert::Replaced)
    );
    assert_eq!(
        cat.upsert("o2", node("n", 11.0, 5.0), 11.0),
        Ok(Upsert::Replaced)
    );
    assert_eq!(cat.len(), 1);
    let key = EntryKey::Node {
        cluster_id: "c".into(),
        node_id: "n".into(),
    };
    assert_eq!(cat.origin_of(&key), Some("o2"));
    assert_eq!(cat.get(&key).map(Entry::ttl_seconds), Some(5.0));
}

#[test]
fn rejects_invalid_timing() {
    let mut cat = Catalog::new();
    for (at, ttl) in [
        (f64::NAN, 1.0),
        (1.0, f64::INFINITY),
        (1.0, -1.0),
        (f64::MAX, f64::MAX),
    ] {
        assert!(matches!(
            cat.upsert("o", node("n", at, ttl), 0.0),
            Err(CatalogError::InvalidTiming { .. })
        ));
    }
    assert!(cat.is_empty());
}

#[test]
fn function_identity_is_unique_both_ways() {
    let mut cat = Catalog::new();
    cat.upsert("o", func("svc.quote", "q1", "n1", 1.0), 1.0)
        .unwrap();
    // Same identity on another node: fine.
    cat.upsert("o", func("svc.quote", "q1", "n2", 1.0), 1.0)
        .unwrap();
    let err = cat
        .upsert("o", func("svc.quote", "q2", "n3", 1.0), 1.0)
        .unwrap_err();
    assert!(matches!(err, CatalogError::IdentityConflict { .. }));
    assert!(err.to_string().contains("svc.quote"));
    let err = cat
        .upsert("o", func("svc.other", "q1", "n3", 1.0), 1.0)
        .unwrap_err();
    assert!(matches!(err, CatalogError::IdentityConflict { .. }));
    // Once the last user of the mapping is gone, the name is free again.
    for n in ["n1", "n2"] {
        let key = func("svc.quote", "q1", n, 1.0).key();
        assert!(cat.remove(&key).is_some());
    }
    assert_eq!(
        cat.upsert("o", func("svc.quote", "q2", "n3", 1.0), 1.0),
        Ok(Upsert::Inserted)
    );
    cat.assert_consistent();
}

#[test]
fn remove_is_unconditional_and_allows_re_add() {
    let mut cat = Catalog::new();
    cat.upsert("o", node("n", 10.0, 30.0), 10.0).unwrap();
    let key = node("n", 0.0, 0.0).key();
    assert!(cat.remove(&key).is_some());
    assert!(cat.remove(&key).is_none());
    // No tombstone: an older version is accepted after removal.
    assert_eq!(
        cat.upsert("o", node("n", 5.0, 30.0), 10.0),
        Ok(Upsert::Inserted)
    );
}

#[test]
fn topic_reregistration_moves_between_nodes() {
    let mut cat = Catalog::new();
    let t1: Entry = TopicSubscription::new("s", "n1", "c", ["a.*"])
        .advertised(1.0, 30.0)
        .into();
    let t2: Entry = TopicSubscription::new("s", "n2", "c", ["b.#"])
        .advertised(2.0, 30.0)
        .into();
    cat.upsert("o", t1, 1.0).unwrap();
    assert_eq!(cat.upsert("o", t2, 2.0), Ok(Upsert::Replaced));
    assert_eq!(cat.count(EntryKind::Topics), 1);
    assert_eq!(cat.by_node("n1").count(), 0);
    assert_eq!(cat.by_node("n2").count(), 1);
    let f = NamespaceFilter::parse("a");
    assert_eq!(cat.in_namespace(EntryKind::Topics, &f, None).count(), 0);
    let f = NamespaceFilter::parse("b");
    assert_eq!(cat.in_namespace(EntryKind::Topics, &f, None).count(), 1);
    cat.assert_consistent();
}

#[test]
fn prune_uses_expiry_order() {
    let mut cat = Catalog::new();
    cat.upsert("o", node("a", 0.0, 10.0), 0.0).unwrap();
    cat.upsert("o", node("b", 0.0, 20.0), 0.0).unwrap();
    cat.upsert("o", node("c", 0.0, 30.0), 0.0).unwrap();
    assert_eq!(cat.next_expiry(), Some(10.0));
    assert_eq!(cat.prune_expired(10.0), 0);
    assert_eq!(cat.prune_expired(15.0), 1);
    assert_eq!(cat.next_expiry(), Some(20.0));
    let taken = cat.take_expired(100.0);
    assert_eq!(taken.len(), 2);
    assert!(cat.is_empty());
    assert_eq!(cat.next_expiry(), None);
    assert_eq!(cat.prune_expired(f64::NAN), 0);
}

#[test]
fn refresh_moves_the_expiry_in_place() {
    let mut cat = Catalog::new();
    cat.upsert("o", node("a", 0.0, 10.0), 0.0).unwrap();
    cat.upsert("o", node("b", 0.0, 20.0), 0.0).unwrap();
    let a = node("a", 0.0, 10.0).key();
    assert!(cat.refresh(&a, 15.0));
    assert_eq!(cat.get(&a).map(Entry::advertised_at), Some(15.0));
    assert_eq!(cat.next_expiry(), Some(20.0));
    // Not later, not finite, or absent: nothing moves.
    assert!(!cat.refresh(&a, 15.0));
    assert!(!cat.refresh(&a, 3.0));
    assert!(!cat.refresh(&a, f64::INFINITY));
    assert!(!cat.refresh(&node("zz", 0.0, 1.0).key(), 50.0));
    assert_eq!(cat.prune_expired(21.0), 1, "b expires first now");
    assert_eq!(cat.take_expired(26.0).len(), 1);
    cat.assert_consistent();
}

#[test]
fn refresh_origin_moves_that_origins_entries_only() {
    let mut cat = Catalog::new();
    cat.upsert("o", node("a", 0.0, 10.0), 0.0).unwrap();
    cat.upsert("o", node("b", 0.0, 10.0), 0.0).unwrap();
    cat.upsert("p", node("c", 0.0, 10.0), 0.0).unwrap();
    assert_eq!(cat.refresh_origin("o", 15.0), 2);
    let at = |id: &str| cat.get(&node(id, 0.0, 1.0).key()).map(Entry::advertised_at);
    assert_eq!(
        (at("a"), at("b"), at("c")),
        (Some(15.0), Some(15.0), Some(0.0))
    );
    // Not later, not finite, or an origin with nothing: nothing moves.
    assert_eq!(cat.refresh_origin("o", 15.0), 0);
    assert_eq!(cat.refresh_origin("o", f64::NAN), 0);
    assert_eq!(cat.refresh_origin("nobody", 50.0), 0);
    assert_eq!(cat.prune_expired(11.0), 1, "only c kept its expiry");
    assert_eq!(cat.next_expiry(), Some(25.0));
    cat.assert_consistent();
}

#[test]
fn dns_suffixes_find_what_lies_below_a_name() {
    let mut cat = Catalog::new();
    let svc = |name: &str, ns: &str| -> Entry {
        ServiceEndpoint::new(name, ns, "tcp", 80)
            .owned_by("n", "c")
            .advertised(0.0, 30.0)
            .into()
    };
    cat.upsert("o", svc("api", "eu.Market"), 0.0).unwrap();
    cat.upsert("o", svc("api", "marketing"), 0.0).unwrap();
    cat.upsert("o", svc("top", ""), 0.0).unwrap();
    cat.upsert("o", func("market.quote", "q", "n", 0.0), 0.0)
        .unwrap();
    let below = |cat: &Catalog, kind: EntryKind, labels: &[&str]| -> Vec<String> {
        DnsSuffix::new(labels)
            .map(|s| {
                cat.under_dns_suffix(kind, &s)
                    .map(|e| e.name().to_string())
                    .collect()
            })
            .unwrap_or_default()
    };
    // Case-insensitive, at label boundaries only.
    assert_eq!(below(&cat, EntryKind::Services, &["market"]), ["api"]);
    assert_eq!(below(&cat, EntryKind::Services, &["eu", "market"]), ["api"]);
    assert_eq!(below(&cat, EntryKind::Services, &["EU", "MARKET"]), ["api"]);
    assert!(below(&cat, EntryKind::Services, &["ket"]).is_empty());
    assert!(below(&cat, EntryKind::Services, &["x", "eu", "market"]).is_empty());
    // A function's DNS namespace is its name before the last dot.
    assert_eq!(
        below(&cat, EntryKind::Functions, &["market"]),
        ["market.quote"]
    );
    // No labels, an empty label or one holding a dot: nothing is below.
    assert_eq!(DnsSuffix::new(&[]), None);
    assert_eq!(DnsSuffix::new(&["eu", ""]), None);
    assert_eq!(DnsSuffix::new(&["eu.market"]), None);
    // Removal unfiles the entry.
    cat.remove(&svc("api", "eu.Market").key());
    assert!(below(&cat, EntryKind::Services, &["market"]).is_empty());
    cat.assert_consistent();
}

#[test]
fn namespace_queries_use_the_dot_rule_and_sort_order() {
    let mut cat = Catalog::new();
    for (name, node) in [
        ("svc.market.quote", "n2"),
        ("svc.market.quote", "n1"),
        ("svc.market.eu.trade", "n1"),
        ("svc.marketing.mail", "n1"),
        ("svc.market", "n1"),
        ("echo", "n1"),
    ] {
        cat.upsert("o", func(name, name, node, 1.0), 1.0).unwrap();
    }
    let f = NamespaceFilter::parse("svc.market");
    let got: Vec<(String, String)> = cat
        .in_namespace(EntryKind::Functions, &f, None)
        .map(|(_, e)| (e.name().to_string(), e.node_id().to_string()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("svc.market.eu.trade".into(), "n1".into()),
            ("svc.market.quote".into(), "n1".into()),
            ("svc.market.quote".into(), "n2".into()),
        ]
    );
    // Pattern form is the same subtree.
    let f2 = NamespaceFilter::parse("svc.market.*");
    assert_eq!(cat.in_namespace(EntryKind::Functions, &f2, None).count(), 3);
    // Keyset pagination: resume after the first item.
    let first = cat
        .in_namespace(EntryKind::Functions, &f, None)
        .next()
        .map(|(k, _)| k.clone())
        .unwrap();
    let cursor = SortKey::parse(&first.to_cursor()).unwrap();
    assert_eq!(
        cat.in_namespace(EntryKind::Functions, &f, Some(&cursor))
            .count(),
        2
    );
    // Empty filter: everything, in sort order.
    let all: Vec<&str> = cat
        .in_namespace(EntryKind::Functions, &NamespaceFilter::all(), None)
        .map(|(_, e)| e.name())
        .collect();
    assert_eq!(
        all,
        vec![
            "echo",
            "svc.market",
            "svc.market.eu.trade",
            "svc.market.quote",
            "svc.market.quote",
            "svc.marketing.mail"
        ]
    );
    assert_eq!(
        cat.by_name(EntryKind::Functions, "svc.market.quote")
            .count(),
        2
    );
    assert_eq!(cat.by_node("n1").count(), 5);
}

#[test]
fn kinds_without_namespace_ignore_the_filter() {
    let mut cat = Catalog::new();
    cat.upsert("o", node("n", 1.0, 30.0), 1.0).unwrap();
    let f = NamespaceFilter::parse("svc");
    assert_eq!(cat.in_namespace(EntryKind::Nodes, &f, None).count(), 1);
}

#[test]
fn remove_origin_drops_everything_it_owns() {
    let mut cat = Catalog::new();
    cat.upsert("a", node("n1", 1.0, 30.0), 1.0).unwrap();
    cat.upsert("a", func("f", "f", "n1", 1.0), 1.0).unwrap();
    cat.upsert("b", node("n2", 1.0, 30.0), 1.0).unwrap();
    assert_eq!(cat.origin_entries("a").count(), 2);
    assert_eq!(cat.origins().collect::<Vec<_>>(), vec!["a", "b"]);
    let removed = cat.remove_origin("a");
    assert_eq!(removed.len(), 2);
    assert_eq!(cat.len(), 1);
    assert_eq!(cat.origin_entries("a").count(), 0);
    assert_eq!(cat.by_name(EntryKind::Functions, "f").count(), 0);
    cat.assert_consistent();
}

// ---------------------------------------------------------------------------
// model-based property test

/// The obvious implementation: a list, scanned for everything.
#[derive(Default)]
struct Model {
    items: Vec<(String, Entry)>,
}

#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Inserted,
    Replaced,
    Expired,
    Stale,
    Conflict,
}

impl Model {
    fn upsert(&mut self, origin: &str, mut entry: Entry, now: f64) -> Outcome {
        entry.normalize();
        if entry.is_expired(now) {
            return Outcome::Expired;
        }
        let key = entry.key();
        let pos = self.items.iter().position(|(_, e)| e.key() == key);
        if let Some(p) = pos {
            let old = &self.items[p].1;
            let (a, t) = (entry.advertised_at(), entry.ttl_seconds());
            let (oa, ot) = (old.advertised_at(), old.ttl_seconds());
            if a < oa || (a == oa && t <= ot) {
                return Outcome::Stale;
            }
        }
        if let Entry::Function(f) = &entry {
            let conflict = self.items.iter().any(|(_, e)| match e {
                Entry::Function(g) => {
                    (g.identity.name == f.identity.name
                        && g.identity.function_id != f.identity.function_id)
                        || (g.identity.function_id == f.identity.function_id
                            && g.identity.name != f.identity.name)
                }
                _ => false,
            });
            if conflict {
                return Outcome::Conflict;
            }
        }
        match pos {
            Some(p) => {
                self.items[p] = (origin.to_string(), entry);
                Outcome::Replaced
            }
            None => {
                self.items.push((origin.to_string(), entry));
                Outcome::Inserted
            }
        }
    }

    fn refresh(&mut self, key: &EntryKey, at: f64) -> bool {
        let Some((_, e)) = self.items.iter_mut().find(|(_, e)| &e.key() == key) else {
            return false;
        };
        if at > e.advertised_at() {
            e.refresh(at);
            return true;
        }
        false
    }

    fn remove(&mut self, key: &EntryKey) -> Option<Entry> {
        let p = self.items.iter().position(|(_, e)| &e.key() == key)?;
        Some(self.items.remove(p).1)
    }

    fn remove_origin(&mut self, origin: &str) -> usize {
        let before = self.items.len();
        self.items.retain(|(o, _)| o != origin);
        before - self.items.len()
    }

    fn prune(&mut self, now: f64) -> usize {
        let before = self.items.len();
        self.items.retain(|(_, e)| !e.is_expired(now));
        before - self.items.len()
    }

    /// Entries passing `pred`, in sort order.
    fn sorted(&self, pred: impl Fn(&(String, Entry)) -> bool) -> Vec<&Entry> {
        let mut v: Vec<&(String, Entry)> = self.items.iter().filter(|i| pred(i)).collect();
        v.sort_by_key(|(_, e)| SortKey::of(e));
        v.into_iter().map(|(_, e)| e).collect()
    }
}

fn outcome(r: Result<Upsert, CatalogError>) -> Outcome {
    match r {
        Ok(Upsert::Inserted) => Outcome::Inserted,
        Ok(Upsert::Replaced) => Outcome::Replaced,
        Err(CatalogError::Expired { .. }) => Outcome::Expired,
        Err(CatalogError::Stale { .. }) => Outcome::Stale,
        Err(CatalogError::IdentityConflict { .. }) => Outcome::Conflict,
        Err(CatalogError::InvalidTiming { .. }) => panic!("pool timings are valid"),
    }
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(String, Entry, f64),
    Remove(Entry),
    Refresh(Entry, f64),
    RemoveOrigin(String),
    Prune(f64),
}

fn op() -> impl Strategy<Value = Op> {
    let origin = select(vec!["o1", "o2"]).prop_map(str::to_string);
    let now = select(vec![0.0, 5.0, 10.0, 20.0, 40.0, 140.0]);
    prop_oneof![
        6 => (origin.clone(), pooled_entry(), now.clone()).prop_map(|(o, e, n)| Op::Upsert(o, e, n)),
        2 => pooled_entry().prop_map(Op::Remove),
        2 => (pooled_entry(), now.clone()).prop_map(|(e, n)| Op::Refresh(e, n)),
        1 => origin.prop_map(Op::RemoveOrigin),
        1 => now.prop_map(Op::Prune),
    ]
}

const FILTERS: &[&str] = &["", "a", "a.b", "a.b.c", "ab", "b", "b.c", "a.*", "x"];

fn check(cat: &Catalog, model: &Model) -> Result<(), TestCaseError> {
    cat.assert_consistent();
    prop_assert_eq!(cat.len(), model.items.len());
    for kind in EntryKind::ALL {
        let expected = model.sorted(|(_, e)| e.kind() == kind);
        let got: Vec<&Entry> = cat.iter(kind).collect();
        prop_assert_eq!(&got, &expected);
        prop_assert_eq!(cat.count(kind), expected.len());

        // Keyset pagination from every position.
        for (i, e) in expected.iter().enumerate() {
            let after = SortKey::of(e);
            let rest: Vec<&Entry> = cat
                .range_after(kind, Some(&after))
                .map(|(_, e)| e)
                .collect();
            prop_assert_eq!(&rest[..], &expected[i + 1..]);
        }

        for raw in FILTERS {
            let filter = NamespaceFilter::parse(raw);
            let expected_ns =
                model.sorted(|(_, e)| e.kind() == kind && e.matches_namespace(&filter));
            let got_ns: Vec<&Entry> = cat
                .in_namespace(kind, &filter, None)
                .map(|(_, e)| e)
                .collect();
            prop_assert_eq!(&got_ns, &expected_ns, "filter {:?}", raw);
            if let Some(mid) = expected_ns.get(expected_ns.len() / 2) {
                let after = SortKey::of(mid);
                let tail: Vec<&Entry> = expected_ns
                    .iter()
                    .copied()
                    .filter(|e| SortKey::of(e) > after)
                    .collect();
                let got_tail: Vec<&Entry> = cat
                    .in_namespace(kind, &filter, Some(&after))
                    .map(|(_, e)| e)
                    .collect();
                prop_assert_eq!(got_tail, tail);
            }
        }

        for name in ["a", "a.b", "a.b.c", "n1", "n2", "s1", "svc", "replica"] {
            let expected_names = model.sorted(|(_, e)| e.kind() == kind && e.name() == name);
            let got_names: Vec<&Entry> = cat.by_name(kind, name).collect();
            prop_assert_eq!(got_names, expected_names);
        }
        if kind == EntryKind::Services {
            for ns in ["", "a", "A", "ab", "a.b", "b.c", "B.C"] {
                for name in ["svc", "api", "Svc"] {
                    let expected = model.sorted(|(_, e)| {
                        matches!(e, Entry::Service(s)
                            if s.name == name && s.namespace.eq_ignore_ascii_case(ns))
                    });
                    // In sort order, as documented: no sorting here.
                    let got = cat.services_named(name, ns);
                    prop_assert_eq!(got, expected, "services {:?} in {:?}", name, ns);
                }
            }
        }
        for name in ["a.b", "A.b", "a.B", "A.B", "b", "B"] {
            let expected = model.sorted(|(_, e)| {
                e.kind() == kind && e.name().eq_ignore_ascii_case(name) && e.name() != name
            });
            let mut got: Vec<&Entry> = cat.by_name_other_case(kind, name).collect();
            got.sort_by_key(|e| SortKey::of(e));
            prop_assert_eq!(got, expected, "other case: {:?}", name);
        }
        // The DNS suffix index against the definition: the entry's DNS
        // namespace ends with the labels, ignoring case.
        let labels: [&[&str]; 7] = [
            &["a"],
            &["b"],
            &["c"],
            &["b", "c"],
            &["a", "b"],
            &["B", "C"],
            &["x", "a"],
        ];
        for labels in labels {
            let expected = model.sorted(|(_, e)| {
                let ns = match e {
                    Entry::Service(s) => s.namespace.as_str(),
                    Entry::Function(f) => name_namespace(&f.identity.name),
                    Entry::Queue(q) => name_namespace(&q.queue_name),
                    _ => return false,
                };
                e.kind() == kind && crate::dns::names::ends_with_labels(ns, labels)
            });
            let suffix = DnsSuffix::new(labels).expect("labels are plain");
            let mut got: Vec<&Entry> = cat.under_dns_suffix(kind, &suffix).collect();
            got.sort_by_key(|e| SortKey::of(e));
            prop_assert_eq!(got, expected, "under {:?}", labels);
        }
    }
    for n in ["n1", "n2", "n3"] {
        let mut expected: Vec<&Entry> = model
            .items
            .iter()
            .map(|(_, e)| e)
            .filter(|e| e.node_id() == n)
            .collect();
        expected.sort_by_key(|e| SortKey::of(e));
        let got: Vec<&Entry> = cat.by_node(n).collect();
        prop_assert_eq!(got, expected);
    }
    for o in ["o1", "o2"] {
        let mut expected: Vec<&Entry> = model
            .items
            .iter()
            .filter(|(oo, _)| oo == o)
            .map(|(_, e)| e)
            .collect();
        expected.sort_by_key(|e| SortKey::of(e));
        let got: Vec<&Entry> = cat.origin_entries(o).collect();
        prop_assert_eq!(got, expected);
    }
    for (origin, e) in &model.items {
        prop_assert_eq!(cat.get(&e.key()), Some(e));
        prop_assert_eq!(cat.origin_of(&e.key()), Some(origin.as_str()));
    }
    let min_expiry = model
        .items
        .iter()
        .map(|(_, e)| e.expires_at())
        .min_by(f64::total_cmp);
    prop_assert_eq!(cat.next_expiry(), min_expiry);
    Ok(())
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn indexes_match_naive_model(ops in proptest::collection::vec(op(), 1..40)) {
        let mut cat = Catalog::new();
        let mut model = Model::default();
        for op in ops {
            match op {
                Op::Upsert(origin, entry, now) => {
                    let want = model.upsert(&origin, entry.clone(), now);
                    let got = outcome(cat.upsert(&origin, entry, now));
                    prop_assert_eq!(got, want);
                }
                Op::Remove(entry) => {
                    let key = entry.key();
                    prop_assert_eq!(cat.remove(&key), model.remove(&key));
                }
                Op::Refresh(entry, at) => {
                    let key = entry.key();
                    prop_assert_eq!(cat.refresh(&key, at), model.refresh(&key, at));
                }
                Op::RemoveOrigin(origin) => {
                    prop_assert_eq!(cat.remove_origin(&origin).len(), model.remove_origin(&origin));
                }
                Op::Prune(now) => {
                    prop_assert_eq!(cat.prune_expired(now), model.prune(now));
                }
            }
            check(&cat, &model)?;
        }
    }
}

#[test]
fn origins_epoch_moves_when_the_set_of_origins_does() {
    let mut cat = Catalog::new();
    let origins = |c: &Catalog| c.origins().map(str::to_string).collect::<Vec<_>>();
    let e0 = cat.origins_epoch();
    cat.upsert("o", func("a", "a", "n", 10.0), 10.0).unwrap();
    let e1 = cat.origins_epoch();
    assert_ne!(e1, e0, "first entry of o");
    // A second entry, a replacement and a refresh by the same origin.
    cat.upsert("o", func("b", "b", "n", 10.0), 10.0).unwrap();
    cat.upsert("o", func("b", "b", "n", 11.0), 11.0).unwrap();
    let key = func("a", "a", "n", 10.0).key();
    assert!(cat.refresh(&key, 12.0));
    assert_eq!(cat.origins_epoch(), e1);
    // Another origin takes over `b`: o2 appears, o keeps `a`.
    cat.upsert("o2", func("b", "b", "n", 12.0), 12.0).unwrap();
    let e2 = cat.origins_epoch();
    assert_ne!(e2, e1);
    assert_eq!(origins(&cat), ["o", "o2"]);
    // o's last entry goes.
    cat.remove(&key);
    assert_ne!(cat.origins_epoch(), e2);
    assert_eq!(origins(&cat), ["o2"]);
}
