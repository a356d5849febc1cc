//! Discovery scopes: how far an entry may travel and how wide a query looks.
//!
//! MPREG has two normalisations that must not be confused:
//! - a *request* scope is strict: an unknown value is a client error
//!   ([`Scope::parse_request`]);
//! - an *entry* scope is lenient: whatever a peer or an old snapshot carries,
//!   the entry stays usable and falls back to `zone` ([`Scope::normalize_entry`]).
//!
//! Entry structs therefore deserialize their `scope` field with [`lenient`],
//! never with the strict derive.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Visibility scope of a catalog entry or a discovery request.
///
/// The declaration order is the rank order (`local` < `zone` < `region` <
/// `global`), so the derived `Ord` compares by rank.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// This node only.
    Local,
    /// This cluster (MPREG's default; alias `cluster`).
    #[default]
    #[serde(alias = "cluster")]
    Zone,
    /// Several clusters of a region.
    Region,
    /// Everywhere.
    Global,
}

/// A request named a scope that does not exist.
///
/// The message text is MPREG's, because clients match on it (error 1003).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Unsupported discovery scope: {0}")]
pub struct ScopeError(pub String);

impl Scope {
    /// Every scope, in rank order.
    pub const ALL: [Scope; 4] = [Scope::Local, Scope::Zone, Scope::Region, Scope::Global];

    /// Numeric rank, 0 (`local`) to 3 (`global`).
    pub fn rank(self) -> u8 {
        match self {
            Scope::Local => 0,
            Scope::Zone => 1,
            Scope::Region => 2,
            Scope::Global => 3,
        }
    }

    /// Wire name (lowercase).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Local => "local",
            Scope::Zone => "zone",
            Scope::Region => "region",
            Scope::Global => "global",
        }
    }

    /// Known names after trim + lowercase, with the `cluster` alias.
    fn from_normalized(value: &str) -> Option<Scope> {
        match value {
            "local" => Some(Scope::Local),
            "zone" | "cluster" => Some(Scope::Zone),
            "region" => Some(Scope::Region),
            "global" => Some(Scope::Global),
            _ => None,
        }
    }

    /// Parses the `scope` field of a discovery request.
    ///
    /// `None`, `""` and whitespace mean "no scope" (`Ok(None)`); otherwise the
    /// value is trimmed and lowercased, `cluster` is read as `zone`, and
    /// anything else is an error carrying the raw value, as MPREG reports it.
    pub fn parse_request(raw: Option<&str>) -> Result<Option<Scope>, ScopeError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let normalized = raw.trim().to_lowercase();
        if normalized.is_empty() {
            return Ok(None);
        }
        Scope::from_normalized(&normalized)
            .map(Some)
            .ok_or_else(|| ScopeError(raw.to_string()))
    }

    /// Normalises the scope carried by an entry: missing, empty or unknown
    /// values become `zone`, so a peer's typo never makes an entry unusable.
    pub fn normalize_entry(raw: &str) -> Scope {
        Scope::from_normalized(&raw.trim().to_lowercase()).unwrap_or_default()
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an entry of scope `entry` is visible to a query of scope
/// `requested`: an entry is seen by queries at its own rank and narrower.
pub fn visible_at(entry: Scope, requested: Scope) -> bool {
    entry.rank() >= requested.rank()
}

/// Serde `deserialize_with` for entry scopes: accepts any string (normalised
/// with [`Scope::normalize_entry`]) or null, never fails on an unknown name.
pub fn lenient<'de, D>(deserializer: D) -> Result<Scope, D::Error>
where
    D: Deserializer<'de>,
{
    struct LenientScope;

    impl<'de> serde::de::Visitor<'de> for LenientScope {
        type Value = Scope;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a scope name or null")
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Scope, E> {
            Ok(Scope::normalize_entry(v))
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Scope, E> {
            Ok(Scope::default())
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Scope, E> {
            Ok(Scope::default())
        }

        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Scope, D2::Error> {
            d.deserialize_any(LenientScope)
        }
    }

    deserializer.deserialize_any(LenientScope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_and_order_agree() {
        for pair in Scope::ALL.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].rank() < pair[1].rank());
        }
        assert_eq!(Scope::Local.rank(), 0);
        assert_eq!(Scope::Global.rank(), 3);
    }

    #[test]
    fn request_scope_parsing() {
        assert_eq!(Scope::parse_request(None), Ok(None));
        assert_eq!(Scope::parse_request(Some("")), Ok(None));
        assert_eq!(Scope::parse_request(Some("   ")), Ok(None));
        assert_eq!(Scope::parse_request(Some(" Zone ")), Ok(Some(Scope::Zone)));
        assert_eq!(Scope::parse_request(Some("CLUSTER")), Ok(Some(Scope::Zone)));
        assert_eq!(
            Scope::parse_request(Some("global")),
            Ok(Some(Scope::Global))
        );
        assert_eq!(Scope::parse_request(Some("local")), Ok(Some(Scope::Local)));
        assert_eq!(
            Scope::parse_request(Some("region")),
            Ok(Some(Scope::Region))
        );
        let err = Scope::parse_request(Some("planet")).unwrap_err();
        assert_eq!(err.to_string(), "Unsupported discovery scope: planet");
        let err = Scope::parse_request(Some(" Planet ")).unwrap_err();
        assert_eq!(err.to_string(), "Unsupported discovery scope:  Planet ");
    }

    #[test]
    fn entry_scope_normalisation() {
        assert_eq!(Scope::normalize_entry(""), Scope::Zone);
        assert_eq!(Scope::normalize_entry("bogus"), Scope::Zone);
        assert_eq!(Scope::normalize_entry(" GLOBAL"), Scope::Global);
        assert_eq!(Scope::normalize_entry("cluster"), Scope::Zone);
        assert_eq!(Scope::normalize_entry("local"), Scope::Local);
    }

    #[test]
    fn visibility_is_rank_at_least() {
        assert!(visible_at(Scope::Global, Scope::Zone));
        assert!(visible_at(Scope::Zone, Scope::Zone));
        assert!(!visible_at(Scope::Zone, Scope::Region));
        assert!(visible_at(Scope::Zone, Scope::Local));
    }

    #[test]
    fn serde_is_lowercase_and_lenient_helper_never_fails() {
        assert_eq!(serde_json::to_string(&Scope::Region).unwrap(), "\"region\"");
        #[derive(Deserialize)]
        struct Holder {
            #[serde(deserialize_with = "lenient", default)]
            scope: Scope,
        }
        let h: Holder = serde_json::from_str(r#"{"scope":"MARS"}"#).unwrap();
        assert_eq!(h.scope, Scope::Zone);
        let h: Holder = serde_json::from_str(r#"{"scope":null}"#).unwrap();
        assert_eq!(h.scope, Scope::Zone);
        let h: Holder = serde_json::from_str(r#"{}"#).unwrap();
        assert_eq!(h.scope, Scope::Zone);
        let h: Holder = serde_json::from_str(r#"{"scope":"Global"}"#).unwrap();
        assert_eq!(h.scope, Scope::Global);
    }
}
