//! RPC specs for the functions an mpreg-rs node serves: MPREG's `RpcSpec`
//! and `RpcSpecSummary` shapes (`client_protocol.md` §2.5,
//! `mpreg/datastructures/rpc_spec.py`), and the spec digest.
//!
//! A node attaches an `RpcSpecSummary` (`rpc_summary`) and its
//! `spec_digest` to each function entry it owns, as a stock MPREG node does
//! with `rpc_spec_gossip_mode = "summary"`. The full spec is not gossiped.
//! It does not need to be: an mpreg-rs spec is a pure function of the entry
//! (identity, namespace, resources, tags, scope), the summary text and, for
//! the built-in RPCs, a fixed parameter table. So any node can rebuild the
//! full spec of an mpreg-rs function from its catalog entry, and
//! [`verified_spec`] returns it only when the rebuilt spec's digest equals
//! the advertised one, so a rebuilt spec is never a guess.
//!
//! The digest is MPREG's: sha256 (hex) of the spec without `spec_digest`,
//! serialised as Python's `json.dumps(spec, sort_keys=True,
//! separators=(",", ":"))` would ([`canonical_json`]).

use std::fmt::Write as _;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::catalog::entry::FunctionEndpoint;
use crate::catalog::namespace::name_namespace;

/// `spec_version` of every spec we produce.
pub const SPEC_VERSION: &str = "1";

/// Parameter shapes of the built-in RPCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Params {
    /// `()`: no arguments (`cluster_map`).
    None,
    /// `(payload: Payload | None = None, **kwargs)`: the discovery RPCs.
    Payload,
    /// `(arg: Any)`: `echo`.
    One,
    /// `(*args: Any)`: `echos`.
    Var,
}

/// The parameter shape of a built-in RPC (`None` for any other name).
fn builtin_params(name: &str) -> Option<Params> {
    match name {
        "echo" => Some(Params::One),
        "echos" => Some(Params::Var),
        "cluster_map" => Some(Params::None),
        n if super::RPC_NAMES.contains(&n) => Some(Params::Payload),
        _ => None,
    }
}

fn any_type() -> Value {
    json!({"display": "Any", "args": [], "is_optional": false, "module": "typing", "qualname": "Any"})
}

fn no_default() -> Value {
    json!({"has_default": false, "encoding": "none"})
}

fn param(name: &str, kind: &str, type_spec: Value, required: bool, default: Value) -> Value {
    json!({
        "name": name,
        "kind": kind,
        "type_spec": type_spec,
        "required": required,
        "default": default,
        "doc": "",
    })
}

fn parameters(params: Option<Params>) -> Vec<Value> {
    match params {
        None | Some(Params::None) => vec![],
        Some(Params::One) => vec![param(
            "arg",
            "positional_or_keyword",
            any_type(),
            true,
            no_default(),
        )],
        Some(Params::Var) => vec![param(
            "args",
            "var_positional",
            any_type(),
            false,
            no_default(),
        )],
        Some(Params::Payload) => vec![
            param(
                "payload",
                "positional_or_keyword",
                json!({"display": "Payload | None", "args": ["Payload", "None"], "is_optional": true, "origin": "UnionType"}),
                false,
                json!({"has_default": true, "encoding": "json", "json_value": null}),
            ),
            param("kwargs", "var_keyword", any_type(), false, no_default()),
        ],
    }
}

fn return_type(params: Option<Params>) -> Value {
    match params {
        None | Some(Params::One) | Some(Params::Var) => any_type(),
        Some(Params::None) | Some(Params::Payload) => {
            json!({"display": "Payload", "args": [], "is_optional": false, "module": "mpreg.core.payloads"})
        }
    }
}

/// The default one-line summary MPREG gives a function without a
/// docstring: its name with `_` as spaces.
pub fn default_summary(name: &str) -> String {
    name.replace('_', " ").trim().to_string()
}

/// The full spec (MPREG `RpcSpec.to_dict()`), without `spec_digest`.
fn spec_body(
    f: &FunctionEndpoint,
    namespace: &str,
    summary: &str,
    params: Option<Params>,
) -> Value {
    json!({
        "identity": {
            "name": f.identity.name,
            "function_id": f.identity.function_id,
            "version": f.identity.version,
        },
        "namespace": namespace,
        "doc": {"summary": summary, "description": "", "param_docs": [], "return_doc": ""},
        "parameters": parameters(params),
        "return_spec": {"type_spec": return_type(params), "doc": ""},
        "resources": f.resources,
        "tags": f.tags,
        "scope": f.scope.as_str(),
        "capabilities": [],
        "examples": [],
        "spec_version": SPEC_VERSION,
    })
}

/// sha256 hex of the canonical JSON of `spec` without its `spec_digest`.
pub fn spec_digest(spec: &Value) -> String {
    let text = match spec {
        Value::Object(map) if map.contains_key("spec_digest") => {
            let mut m = map.clone();
            m.remove("spec_digest");
            canonical_json(&Value::Object(m))
        }
        other => canonical_json(other),
    };
    let hash = Sha256::digest(text.as_bytes());
    let mut out = String::with_capacity(64);
    for b in hash.iter() {
        // Writing to a String cannot fail.
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// The summary of a full spec (MPREG `RpcSpecSummary.to_dict()`).
fn summary_of(spec: &Value, digest: &str) -> Value {
    let params = spec["parameters"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    let required = params
        .iter()
        .filter(|p| p["required"] == json!(true))
        .count();
    json!({
        "identity": spec["identity"],
        "namespace": spec["namespace"],
        "summary": spec["doc"]["summary"],
        "parameter_count": params.len(),
        "required_parameter_count": required,
        "return_type": spec["return_spec"]["type_spec"],
        "spec_version": spec["spec_version"],
        "spec_digest": digest,
    })
}

fn full_spec(
    f: &FunctionEndpoint,
    namespace: &str,
    summary: &str,
    params: Option<Params>,
) -> (Value, String) {
    let mut spec = spec_body(f, namespace, summary, params);
    let digest = spec_digest(&spec);
    if let Value::Object(m) = &mut spec {
        m.insert("spec_digest".into(), json!(digest));
    }
    (spec, digest)
}

/// Attaches `rpc_summary` and `spec_digest` to a function entry this node
/// serves. `summary` is the one-line description (default: the name with
/// `_` as spaces). Built-in RPCs (names in [`super::RPC_NAMES`]) get their
/// parameter table; declared functions have no declared parameters. The
/// namespace is the entry's explicit `namespace`, else its name up to the
/// last dot. Call it after every other field is final: the digest covers
/// resources, tags and scope.
pub fn attach_summary(f: &mut FunctionEndpoint, summary: Option<&str>) {
    let namespace = f
        .namespace
        .clone()
        .unwrap_or_else(|| name_namespace(&f.identity.name).to_string());
    let text = summary
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| default_summary(&f.identity.name));
    let (spec, digest) = full_spec(f, &namespace, &text, builtin_params(&f.identity.name));
    f.rpc_summary = Some(summary_of(&spec, &digest));
    f.spec_digest = Some(digest);
}

/// The full spec of a function entry, when it is known for certain: the
/// gossiped `rpc_spec` if the entry carries one, else the spec rebuilt from
/// the entry and its `rpc_summary` (as [`attach_summary`] built it), kept
/// only if its digest equals the entry's advertised digest.
pub fn verified_spec(f: &FunctionEndpoint) -> Option<Value> {
    if let Some(spec @ Value::Object(_)) = &f.rpc_spec {
        return Some(spec.clone());
    }
    let summary = f.rpc_summary.as_ref()?;
    let want = advertised_digest(f)?;
    let namespace = summary.get("namespace").and_then(Value::as_str)?;
    let text = summary.get("summary").and_then(Value::as_str)?;
    let mut shapes = vec![None];
    if let Some(p) = builtin_params(&f.identity.name) {
        shapes.insert(0, Some(p));
    }
    shapes.into_iter().find_map(|params| {
        let (spec, digest) = full_spec(f, namespace, text, params);
        (digest == want).then_some(spec)
    })
}

/// The digest an entry advertises: its `spec_digest`, else its summary's.
pub fn advertised_digest(f: &FunctionEndpoint) -> Option<&str> {
    f.spec_digest
        .as_deref()
        .filter(|d| !d.is_empty())
        .or_else(|| {
            f.rpc_summary
                .as_ref()
                .and_then(|s| s.get("spec_digest"))
                .and_then(Value::as_str)
                .filter(|d| !d.is_empty())
        })
}

/// The entry's `rpc_summary` if it has the shape MPREG's client parses
/// (`identity` with string `name`, `function_id`, `version`), else `None`:
/// a malformed summary from some other implementation is left out rather
/// than crash the caller's client.
pub fn client_safe_summary(f: &FunctionEndpoint) -> Option<&Value> {
    let s = f.rpc_summary.as_ref()?;
    let id = s.get("identity")?.as_object()?;
    let ok = ["name", "function_id", "version"]
        .iter()
        .all(|k| id.get(*k).is_some_and(Value::is_string));
    ok.then_some(s)
}

// ---------------------------------------------------------------------------
// canonical JSON

/// `value` as Python's `json.dumps(value, sort_keys=True,
/// separators=(",", ":"))` writes it: keys sorted by code point, no
/// whitespace, non-ASCII escaped as `\uXXXX` (lowercase hex, surrogate
/// pairs beyond the BMP), floats in Python's `repr` form (`120.0`,
/// `1e+16`, `1e-05`).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                let _ = write!(out, "{i}");
            } else if let Some(u) = n.as_u64() {
                let _ = write!(out, "{u}");
            } else {
                out.push_str(&python_float(n.as_f64().unwrap_or(0.0)));
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_canonical(&map[k.as_str()], out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) >= 0x7f => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Python's `repr(float)`: shortest round-trip digits, fixed notation for
/// exponents in `[-4, 16)` (always with a fractional part), else
/// `d.ddde±XX`.
fn python_float(x: f64) -> String {
    if x == 0.0 {
        return if x.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // `{:e}` gives the shortest round-trip digits: `-1.2345e-5`.
    let sci = format!("{x:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let body = if point <= 0 {
            format!("0.{}{digits}", "0".repeat((-point) as usize))
        } else if (point as usize) >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
        } else {
            format!(
                "{}.{}",
                &digits[..point as usize],
                &digits[point as usize..]
            )
        };
        format!("{sign}{body}")
    } else {
        let mant = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{mant}e{esign}{:02}", exp.abs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::entry::FunctionIdentity;
    use crate::catalog::scope::Scope;

    fn func(name: &str) -> FunctionEndpoint {
        FunctionEndpoint::new(FunctionIdentity::new(name, name, "1.0.0"), "ws://n:1", "c")
    }

    #[test]
    fn canonical_json_is_pythons() {
        let v = json!({"b": [1, 2.5, true, null], "a": "é\"\\\n\u{1}😀\u{7f}", "c": {"z": 120.0, "y": 1e16, "x": 1e-5, "w": 0.0001, "v": -3}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":"\u00e9\"\\\n\u0001\ud83d\ude00\u007f","b":[1,2.5,true,null],"c":{"v":-3,"w":0.0001,"x":1e-05,"y":1e+16,"z":120.0}}"#
        );
        assert_eq!(python_float(1.5), "1.5");
        assert_eq!(python_float(123456789.125), "123456789.125");
        assert_eq!(python_float(1e15), "1000000000000000.0");
        assert_eq!(python_float(-2.5e-7), "-2.5e-07");
        assert_eq!(
            python_float(1.7976931348623157e308),
            "1.7976931348623157e+308"
        );
    }

    /// The digest of a fixed spec, checked against Python's
    /// `hashlib.sha256(json.dumps(spec, sort_keys=True,
    /// separators=(",", ":")).encode()).hexdigest()`.
    #[test]
    fn digest_matches_python() {
        let spec = json!({"identity": {"name": "svc.q", "function_id": "svc.q", "version": "1.0.0"}, "namespace": "svc", "tags": ["é"]});
        assert_eq!(spec_digest(&spec), PY_DIGEST);
    }
    const PY_DIGEST: &str = "ea08a854860ac872fc46efaebde815499b14c1a1691f14f8a87f93d111449c05";

    #[test]
    fn summaries_have_mpregs_shape_and_verify() {
        let mut f = func("catalog_query");
        attach_summary(&mut f, None);
        let s = f.rpc_summary.clone().unwrap();
        assert_eq!(s["namespace"], "");
        assert_eq!(s["summary"], "catalog query");
        assert_eq!(s["parameter_count"], 2);
        assert_eq!(s["required_parameter_count"], 0);
        assert_eq!(s["return_type"]["module"], "mpreg.core.payloads");
        assert_eq!(s["spec_version"], "1");
        let digest = f.spec_digest.clone().unwrap();
        assert_eq!(s["spec_digest"], json!(digest));
        assert_eq!(digest.len(), 64);
        let spec = verified_spec(&f).unwrap();
        assert_eq!(spec["spec_digest"], json!(digest));
        assert_eq!(spec_digest(&spec), digest);
        assert!(client_safe_summary(&f).is_some());

        let mut g = func("svc.market.quote")
            .with_tags(["alpha"])
            .with_resources(["gpu"])
            .with_scope(Scope::Region);
        attach_summary(&mut g, Some(" Return a quote. "));
        let s = g.rpc_summary.clone().unwrap();
        assert_eq!(s["namespace"], "svc.market");
        assert_eq!(s["summary"], "Return a quote.");
        assert_eq!(s["parameter_count"], 0);
        let spec = verified_spec(&g).unwrap();
        assert_eq!(spec["tags"], json!(["alpha"]));
        assert_eq!(spec["scope"], "region");
        // Any change to a covered field breaks the verification.
        let mut h = g.clone();
        h.tags.insert("beta".into());
        assert!(verified_spec(&h).is_none());
        let mut h = g.clone();
        h.spec_digest = Some("0".repeat(64));
        assert!(verified_spec(&h).is_none());
        // Different entries, different digests.
        assert_ne!(f.spec_digest, g.spec_digest);
    }

    #[test]
    fn explicit_namespace_wins_and_bad_summaries_are_not_client_safe() {
        let mut f = func("quote");
        f.namespace = Some("svc.market".into());
        attach_summary(&mut f, None);
        assert_eq!(f.rpc_summary.as_ref().unwrap()["namespace"], "svc.market");
        assert_eq!(f.effective_namespace(), "svc.market");
        let mut g = func("x");
        g.rpc_summary = Some(json!({"namespace": "a", "identity": {"name": "x"}}));
        assert!(client_safe_summary(&g).is_none());
        assert!(verified_spec(&g).is_none());
    }
}
