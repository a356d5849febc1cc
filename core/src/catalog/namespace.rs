//! The one namespace rule, and AMQP-style topic patterns.
//!
//! MPREG matches namespaces three different ways depending on the code path
//! (dot-prefix, plain `startswith`, exact; `client_protocol.md` §2.2). We use
//! one rule everywhere (DESIGN.md §5): **dot-boundary prefix**. A filter
//! `svc.market` selects `svc.market` and everything under `svc.market.`, but not
//! `svc.marketing`. A pattern form `svc.market.*` (or `.#`) is accepted and
//! means the same subtree, because users write it that way.

/// A parsed namespace filter: a dot-boundary subtree, or everything.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct NamespaceFilter {
    /// Subtree root without trailing wildcards or dots; empty = everything.
    ns: String,
}

impl NamespaceFilter {
    /// The filter that matches every value (including the empty namespace).
    pub fn all() -> NamespaceFilter {
        NamespaceFilter::default()
    }

    /// Parses a user-supplied filter.
    ///
    /// Trims whitespace, then strips trailing `.*` / `.#` segments and
    /// trailing dots, so `svc.prod`, `svc.prod.`, `svc.prod.*` and `svc.prod.#`
    /// are one filter. A bare `*` or `#` (or an empty string) matches
    /// everything. A wildcard in the middle (`svc.*.eu`) is not a subtree and
    /// is kept literally, so it matches only a namespace spelled that way.
    pub fn parse(raw: &str) -> NamespaceFilter {
        let mut ns = raw.trim();
        loop {
            let before = ns;
            ns = ns.trim_end_matches('.');
            if let Some(rest) = ns.strip_suffix(".*").or_else(|| ns.strip_suffix(".#")) {
                ns = rest;
            }
            if ns == "*" || ns == "#" {
                ns = "";
            }
            if ns == before {
                break;
            }
        }
        NamespaceFilter { ns: ns.to_string() }
    }

    /// The subtree root (empty when the filter matches everything).
    pub fn as_str(&self) -> &str {
        &self.ns
    }

    /// True when the filter selects everything.
    pub fn is_all(&self) -> bool {
        self.ns.is_empty()
    }

    /// Dot-boundary match: empty filter → true; empty value → false;
    /// otherwise `value == ns` or `value` starts with `ns + "."`.
    pub fn matches(&self, value: &str) -> bool {
        if self.ns.is_empty() {
            return true;
        }
        if value.is_empty() {
            return false;
        }
        match value.strip_prefix(self.ns.as_str()) {
            Some(rest) => rest.is_empty() || rest.starts_with('.'),
            None => false,
        }
    }
}

impl std::fmt::Display for NamespaceFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.ns)
    }
}

/// Namespace of a dotted name for catalog filtering: the text before the last
/// `.`, or `""` when there is none (`svc.market.quote` → `svc.market`,
/// `echo` → `""`).
pub fn name_namespace(name: &str) -> &str {
    match name.rfind('.') {
        Some(idx) => &name[..idx],
        None => "",
    }
}

/// The literal namespace a topic pattern lives under: the prefix before the
/// first `*` or `#`, with trailing dots stripped (`svc.market.*` →
/// `svc.market`, `#` → `""`). Used for namespace filtering and policy.
pub fn topic_pattern_prefix(pattern: &str) -> &str {
    let cut = pattern.find(['*', '#']).unwrap_or(pattern.len());
    pattern[..cut].trim_end_matches('.')
}

/// One word of a parsed topic pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Word {
    /// Matches exactly this word.
    Literal(String),
    /// `*`: exactly one word.
    One,
    /// `#`: zero or more words.
    Many,
}

/// An AMQP-style topic pattern: `.` separates words, `*` matches exactly one
/// word and `#` zero or more words.
///
/// Matching is a dynamic programme over (pattern word, topic word), so it is
/// `O(pattern words × topic words)` in the worst case and never exponential,
/// whatever a client sends (`#.#.#.#...` included; consecutive `#` collapse).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPattern {
    words: Vec<Word>,
}

impl TopicPattern {
    /// Parses a pattern. Every string is a valid pattern; a word that merely
    /// contains `*` or `#` (like `a*b`) is a literal, as in AMQP.
    pub fn new(pattern: &str) -> TopicPattern {
        let mut words: Vec<Word> = Vec::new();
        for w in pattern.split('.') {
            let word = match w {
                "*" => Word::One,
                "#" => Word::Many,
                other => Word::Literal(other.to_string()),
            };
            // `#.#` matches exactly what `#` matches; collapsing keeps the DP small.
            if word == Word::Many && words.last() == Some(&Word::Many) {
                continue;
            }
            words.push(word);
        }
        TopicPattern { words }
    }

    /// Whether the concrete `topic` matches this pattern.
    pub fn matches(&self, topic: &str) -> bool {
        let topic_words: Vec<&str> = topic.split('.').collect();
        let n = topic_words.len();
        // reach[j]: the pattern words seen so far can consume exactly the
        // first j topic words.
        let mut reach = vec![false; n + 1];
        reach[0] = true;
        for word in &self.words {
            match word {
                Word::Many => {
                    // Zero or more: once some prefix is reachable, every
                    // longer prefix is too.
                    let mut seen = false;
                    for r in reach.iter_mut() {
                        seen |= *r;
                        *r = seen;
                    }
                }
                Word::One | Word::Literal(_) => {
                    // Consume exactly one word: shift right, filtering.
                    for j in (1..=n).rev() {
                        let word_ok = match word {
                            Word::Literal(lit) => topic_words[j - 1] == lit.as_str(),
                            _ => true,
                        };
                        reach[j] = reach[j - 1] && word_ok;
                    }
                    reach[0] = false;
                }
            }
            if !reach.iter().any(|r| *r) {
                return false;
            }
        }
        reach[n]
    }

    /// The literal prefix of the pattern, as [`topic_pattern_prefix`].
    pub fn prefix(pattern: &str) -> &str {
        topic_pattern_prefix(pattern)
    }
}

/// Whether `topic` matches the AMQP-style `pattern` (see [`TopicPattern`]).
pub fn topic_matches(pattern: &str, topic: &str) -> bool {
    TopicPattern::new(pattern).matches(topic)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_boundary_rule() {
        let f = NamespaceFilter::parse("svc.market");
        assert!(f.matches("svc.market"));
        assert!(f.matches("svc.market.eu"));
        assert!(f.matches("svc.market.eu.west"));
        assert!(!f.matches("svc.marketing"));
        assert!(!f.matches("svc"));
        assert!(!f.matches(""));
        assert!(!f.matches("xsvc.market"));
    }

    #[test]
    fn pattern_forms_mean_the_subtree() {
        for raw in [
            "svc.prod.*",
            "svc.prod.#",
            " svc.prod ",
            "svc.prod.",
            "svc.prod.*.*",
        ] {
            let f = NamespaceFilter::parse(raw);
            assert_eq!(f.as_str(), "svc.prod", "{raw}");
            assert!(f.matches("svc.prod"));
            assert!(f.matches("svc.prod.api"));
            assert!(!f.matches("svc.production"));
        }
        // A wildcard in the middle is not a subtree: kept literally.
        assert_eq!(NamespaceFilter::parse("svc.*.eu").as_str(), "svc.*.eu");
    }

    #[test]
    fn empty_filter_matches_everything() {
        for raw in ["", "   ", "*", "#", ".*", "."] {
            let f = NamespaceFilter::parse(raw);
            assert!(f.is_all(), "{raw:?}");
            assert!(f.matches(""));
            assert!(f.matches("anything.at.all"));
        }
        assert!(NamespaceFilter::all().matches("x"));
    }

    #[test]
    fn name_namespace_and_pattern_prefix() {
        assert_eq!(name_namespace("svc.market.quote"), "svc.market");
        assert_eq!(name_namespace("echo"), "");
        assert_eq!(name_namespace(""), "");
        assert_eq!(name_namespace(".x"), "");
        assert_eq!(topic_pattern_prefix("svc.market.*"), "svc.market");
        assert_eq!(topic_pattern_prefix("svc.market.#"), "svc.market");
        assert_eq!(topic_pattern_prefix("#"), "");
        assert_eq!(topic_pattern_prefix("a.*.c"), "a");
        assert_eq!(topic_pattern_prefix("plain.topic"), "plain.topic");
        assert_eq!(topic_pattern_prefix("mpreg.discovery.*"), "mpreg.discovery");
        assert_eq!(TopicPattern::prefix("x.y.#"), "x.y");
    }

    #[test]
    fn amqp_matching() {
        assert!(topic_matches("a.*", "a.b"));
        assert!(!topic_matches("a.*", "a"));
        assert!(!topic_matches("a.*", "a.b.c"));
        assert!(topic_matches("a.#", "a"));
        assert!(topic_matches("a.#", "a.b"));
        assert!(topic_matches("a.#", "a.b.c"));
        assert!(!topic_matches("a.#", "b.a"));
        assert!(topic_matches("#", "anything.at.all"));
        assert!(topic_matches("#", "x"));
        assert!(topic_matches("a.#.z", "a.z"));
        assert!(topic_matches("a.#.z", "a.b.c.z"));
        assert!(!topic_matches("a.#.z", "a.b.c"));
        assert!(topic_matches("*.b.#", "a.b"));
        assert!(topic_matches("a.b", "a.b"));
        assert!(!topic_matches("a.b", "a.c"));
        assert!(topic_matches("#.b", "b"));
        assert!(topic_matches("*.#.*", "a.b"));
        assert!(!topic_matches("*.#.*", "a"));
        // Partial wildcards are literals, as in AMQP.
        assert!(!topic_matches("a*", "ab"));
        assert!(topic_matches("a*", "a*"));
    }

    #[test]
    fn adversarial_patterns_stay_fast() {
        let pattern = ["#"; 5000].join(".") + ".x";
        let topic = ["a"; 5000].join(".");
        assert!(!topic_matches(&pattern, &topic));
        let pattern = ["#.a"; 2000].join(".") + ".b";
        let topic = ["a"; 4000].join(".");
        assert!(!topic_matches(&pattern, &topic));
        let pattern = ["*"; 3000].join(".");
        let topic = ["a"; 3000].join(".");
        assert!(topic_matches(&pattern, &topic));
    }

    proptest::proptest! {
        #![proptest_config(crate::catalog::testutil::config(256))]

        /// The DP agrees with a straightforward recursive matcher on small inputs.
        #[test]
        fn dp_matches_reference(
            pattern in proptest::collection::vec(proptest::sample::select(vec!["a", "b", "*", "#"]), 0..6),
            topic in proptest::collection::vec(proptest::sample::select(vec!["a", "b"]), 1..6),
        ) {
            fn reference(p: &[&str], t: &[&str]) -> bool {
                match p.split_first() {
                    None => t.is_empty(),
                    Some((&"#", rest)) => (0..=t.len()).any(|k| reference(rest, &t[k..])),
                    Some((&w, rest)) => match t.split_first() {
                        Some((tw, trest)) => (w == "*" || w == *tw) && reference(rest, trest),
                        None => false,
                    },
                }
            }
            let pattern_str = pattern.join(".");
            let topic_str = topic.join(".");
            let pattern_words: Vec<&str> = pattern_str.split('.').collect();
            proptest::prop_assert_eq!(
                topic_matches(&pattern_str, &topic_str),
                reference(&pattern_words, &topic)
            );
        }
    }
}
