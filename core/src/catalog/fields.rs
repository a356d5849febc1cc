//! Lenient serde helpers shared by the entry structs.
//!
//! Entries arrive from peers, snapshots and client registrations written by
//! other implementations. MPREG normalises rather than rejects (empty tags
//! dropped, a scalar where a list belongs accepted, `null` metadata dropped),
//! so decoding does the same here: a slightly odd entry stays usable and comes
//! out normalised.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Default TTL of an entry that does not carry one (MPREG's dataclass default).
pub const DEFAULT_TTL_SECONDS: f64 = 30.0;

/// Serde default for `ttl_seconds`.
pub(crate) fn default_ttl() -> f64 {
    DEFAULT_TTL_SECONDS
}

/// A set of non-empty strings. Accepts a list (nulls and empty strings
/// dropped), a single string (one element) or null (empty set).
pub(crate) fn string_set<'de, D>(
    deserializer: D,
) -> Result<std::collections::BTreeSet<String>, D::Error>
where
    D: Deserializer<'de>,
{
    struct SetVisitor;

    impl<'de> Visitor<'de> for SetVisitor {
        type Value = std::collections::BTreeSet<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of strings, a string or null")
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            let mut set = Self::Value::new();
            if !v.is_empty() {
                set.insert(v.to_string());
            }
            Ok(set)
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Self::Value::new())
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(Self::Value::new())
        }

        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(SetVisitor)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut set = Self::Value::new();
            while let Some(item) = seq.next_element::<Option<String>>()? {
                if let Some(item) = item.filter(|s| !s.is_empty()) {
                    set.insert(item);
                }
            }
            Ok(set)
        }
    }

    deserializer.deserialize_any(SetVisitor)
}

/// A scalar metadata value of a service endpoint (MPREG keeps `str`, `int`,
/// `float` and `bool` as they are).
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    /// JSON `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float (also integers beyond `i64`).
    Float(f64),
    /// A string; non-scalar values are stored as their JSON text.
    Text(String),
}

impl MetadataValue {
    /// Converts a JSON value: scalars kept, arrays and objects stringified
    /// (as JSON text, where MPREG uses Python `str()`), `null` → `None`.
    pub fn from_json(value: serde_json::Value) -> Option<MetadataValue> {
        use serde_json::Value;
        match value {
            Value::Null => None,
            Value::Bool(b) => Some(MetadataValue::Bool(b)),
            Value::Number(n) => Some(match n.as_i64() {
                Some(i) => MetadataValue::Int(i),
                None => MetadataValue::Float(n.as_f64().unwrap_or(0.0)),
            }),
            Value::String(s) => Some(MetadataValue::Text(s)),
            other => Some(MetadataValue::Text(other.to_string())),
        }
    }

    /// The value as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            MetadataValue::Bool(b) => serde_json::Value::Bool(*b),
            MetadataValue::Int(i) => serde_json::Value::from(*i),
            MetadataValue::Float(x) => serde_json::Value::from(*x),
            MetadataValue::Text(s) => serde_json::Value::String(s.clone()),
        }
    }
}

impl From<&str> for MetadataValue {
    fn from(s: &str) -> Self {
        MetadataValue::Text(s.to_string())
    }
}

impl From<String> for MetadataValue {
    fn from(s: String) -> Self {
        MetadataValue::Text(s)
    }
}

impl From<i64> for MetadataValue {
    fn from(i: i64) -> Self {
        MetadataValue::Int(i)
    }
}

impl From<f64> for MetadataValue {
    fn from(x: f64) -> Self {
        MetadataValue::Float(x)
    }
}

impl From<bool> for MetadataValue {
    fn from(b: bool) -> Self {
        MetadataValue::Bool(b)
    }
}

impl Serialize for MetadataValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            MetadataValue::Bool(b) => serializer.serialize_bool(*b),
            MetadataValue::Int(i) => serializer.serialize_i64(*i),
            MetadataValue::Float(x) => serializer.serialize_f64(*x),
            MetadataValue::Text(s) => serializer.serialize_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for MetadataValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        MetadataValue::from_json(value)
            .ok_or_else(|| serde::de::Error::custom("metadata value must not be null"))
    }
}

/// Service metadata: a map whose `null` values are dropped and whose
/// non-scalar values are stringified (see [`MetadataValue::from_json`]).
pub(crate) fn service_metadata<'de, D>(
    deserializer: D,
) -> Result<BTreeMap<String, MetadataValue>, D::Error>
where
    D: Deserializer<'de>,
{
    struct MetaVisitor;

    impl<'de> Visitor<'de> for MetaVisitor {
        type Value = BTreeMap<String, MetadataValue>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a metadata object or null")
        }

        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }

        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }

        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(MetaVisitor)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
                if let Some(value) = MetadataValue::from_json(value) {
                    out.insert(key, value);
                }
            }
            Ok(out)
        }
    }

    deserializer.deserialize_any(MetaVisitor)
}

/// Queue metadata (`map[str,str]`): `null` values dropped, other scalars
/// stringified, so a peer sending `{"n": 3}` does not fail the whole entry.
pub(crate) fn string_map<'de, D>(deserializer: D) -> Result<BTreeMap<String, String>, D::Error>
where
    D: Deserializer<'de>,
{
    let raw = service_metadata(deserializer)?;
    Ok(raw
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                MetadataValue::Text(s) => s,
                other => other.to_json().to_string(),
            };
            (k, text)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[derive(Deserialize)]
    struct Holder {
        #[serde(default, deserialize_with = "string_set")]
        tags: BTreeSet<String>,
        #[serde(default, deserialize_with = "service_metadata")]
        meta: BTreeMap<String, MetadataValue>,
        #[serde(default, deserialize_with = "string_map")]
        smap: BTreeMap<String, String>,
    }

    #[test]
    fn sets_accept_lists_scalars_and_null() {
        let h: Holder = serde_json::from_str(r#"{"tags":["b","","a","b",null]}"#).unwrap();
        assert_eq!(h.tags.into_iter().collect::<Vec<_>>(), vec!["a", "b"]);
        let h: Holder = serde_json::from_str(r#"{"tags":"solo"}"#).unwrap();
        assert_eq!(h.tags.len(), 1);
        let h: Holder = serde_json::from_str(r#"{"tags":null}"#).unwrap();
        assert!(h.tags.is_empty());
        let h: Holder = serde_json::from_str(r#"{}"#).unwrap();
        assert!(h.tags.is_empty());
    }

    #[test]
    fn metadata_keeps_scalars_and_drops_nulls() {
        let h: Holder = serde_json::from_str(
            r#"{"meta":{"s":"x","i":3,"f":1.5,"b":true,"n":null,"l":[1,2]},"smap":{"a":"b","c":4,"d":null}}"#,
        )
        .unwrap();
        assert_eq!(h.meta.get("s"), Some(&MetadataValue::Text("x".into())));
        assert_eq!(h.meta.get("i"), Some(&MetadataValue::Int(3)));
        assert_eq!(h.meta.get("f"), Some(&MetadataValue::Float(1.5)));
        assert_eq!(h.meta.get("b"), Some(&MetadataValue::Bool(true)));
        assert_eq!(h.meta.get("n"), None);
        assert_eq!(h.meta.get("l"), Some(&MetadataValue::Text("[1,2]".into())));
        assert_eq!(h.smap.get("c").map(String::as_str), Some("4"));
        assert_eq!(h.smap.len(), 2);
    }
}
