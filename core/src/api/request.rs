//! Typed access to request payload fields, with MPREG's leniency (missing or
//! `null` means "not given") and clear 1003 errors for wrong types.

use serde_json::{Map, Value};

use crate::catalog::scope::Scope;
use crate::wire::client::{json_type_name, RpcError};

/// A request payload with the RPC name for error messages.
pub struct Payload<'a> {
    fun: &'a str,
    map: &'a Map<String, Value>,
}

impl<'a> Payload<'a> {
    /// Wraps a payload of RPC `fun`.
    pub fn new(fun: &'a str, map: &'a Map<String, Value>) -> Self {
        Payload { fun, map }
    }

    /// The RPC name, for error messages.
    pub fn fun(&self) -> &str {
        self.fun
    }

    fn wrong(&self, key: &str, expected: &str, got: &Value) -> RpcError {
        RpcError::failed(format!(
            "{}: `{key}` must be {expected}, got {}",
            self.fun,
            json_type_name(got)
        ))
    }

    /// An optional string, trimmed; empty counts as absent.
    pub fn str(&self, key: &str) -> Result<Option<String>, RpcError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                let t = s.trim();
                Ok((!t.is_empty()).then(|| t.to_string()))
            }
            Some(other) => Err(self.wrong(key, "a string", other)),
        }
    }

    /// An optional integer (a numeric string is accepted, as MPREG's
    /// pydantic parsing does).
    pub fn int(&self, key: &str) -> Result<Option<i64>, RpcError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => match n.as_i64() {
                Some(i) => Ok(Some(i)),
                None => match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
                    _ => Err(self.wrong(key, "an integer", &Value::Number(n.clone()))),
                },
            },
            Some(Value::String(s)) => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| self.wrong(key, "an integer", &Value::String(s.clone()))),
            Some(other) => Err(self.wrong(key, "an integer", other)),
        }
    }

    /// An optional number (a numeric string is accepted, as an integer is).
    pub fn float(&self, key: &str) -> Result<Option<f64>, RpcError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a number", &Value::Number(n.clone()))),
            Some(Value::String(s)) => match s.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Some(f)),
                _ => Err(self.wrong(key, "a number", &Value::String(s.clone()))),
            },
            Some(other) => Err(self.wrong(key, "a number", other)),
        }
    }

    /// An optional boolean. Strict: `"true"` or `1` is a 1003, because a
    /// flag such as `persist` or `bind_to_connection` read wrongly changes
    /// what happens to a registration.
    pub fn bool(&self, key: &str) -> Result<Option<bool>, RpcError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(self.wrong(key, "a boolean", other)),
        }
    }

    /// A list of strings; a bare string counts as a one-item list (MPREG
    /// splits it into characters, which is never what the caller meant).
    pub fn str_list(&self, key: &str) -> Result<Vec<String>, RpcError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(if s.trim().is_empty() {
                vec![]
            } else {
                vec![s.trim().to_string()]
            }),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.trim().to_string()),
                    other => Err(self.wrong(key, "an array of strings", other)),
                })
                .filter(|r| !matches!(r, Ok(s) if s.is_empty()))
                .collect(),
            Some(other) => Err(self.wrong(key, "an array of strings", other)),
        }
    }

    /// The requested scope, normalised (1003 `Unsupported discovery scope`).
    pub fn scope(&self) -> Result<Option<Scope>, RpcError> {
        match self.map.get("scope") {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => {
                Scope::parse_request(Some(s)).map_err(|e| RpcError::failed(e.to_string()))
            }
            Some(other) => Err(self.wrong("scope", "a string", other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn strings_ints_lists_and_scopes() {
        let m = map(
            json!({"a": " x ", "b": "", "n": 5, "s": "7", "f": 2.0, "l": ["p", "q"], "one": "t", "scope": "CLUSTER"}),
        );
        let p = Payload::new("catalog_query", &m);
        assert_eq!(p.str("a").unwrap().as_deref(), Some("x"));
        assert_eq!(p.str("b").unwrap(), None);
        assert_eq!(p.str("missing").unwrap(), None);
        assert_eq!(p.int("n").unwrap(), Some(5));
        assert_eq!(p.int("s").unwrap(), Some(7));
        assert_eq!(p.int("f").unwrap(), Some(2));
        assert_eq!(p.float("f").unwrap(), Some(2.0));
        assert_eq!(p.float("s").unwrap(), Some(7.0));
        assert_eq!(p.float("missing").unwrap(), None);
        assert_eq!(p.fun(), "catalog_query");
        assert_eq!(p.str_list("l").unwrap(), vec!["p", "q"]);
        assert_eq!(p.str_list("one").unwrap(), vec!["t"]);
        assert_eq!(p.scope().unwrap(), Some(Scope::Zone));
        let m = map(json!({"t": true, "n": null, "s": "true"}));
        let p = Payload::new("catalog_register", &m);
        assert_eq!(p.bool("t").unwrap(), Some(true));
        assert_eq!(p.bool("n").unwrap(), None);
        assert_eq!(p.bool("missing").unwrap(), None);
        assert!(p
            .bool("s")
            .unwrap_err()
            .details
            .unwrap()
            .contains("a boolean"));
    }

    #[test]
    fn wrong_types_are_1003_with_the_key() {
        let m = map(json!({"a": 1, "n": "x", "l": [1], "scope": "planet"}));
        let p = Payload::new("catalog_query", &m);
        let e = p.str("a").unwrap_err();
        assert_eq!(e.code, 1003);
        assert!(e.details.unwrap().contains("`a`"));
        assert!(p.int("n").is_err());
        assert!(p.float("n").is_err());
        assert!(p.str_list("l").is_err());
        assert_eq!(
            p.scope().unwrap_err().details.unwrap(),
            "Unsupported discovery scope: planet"
        );
    }
}
