//! `rpc_list`, `rpc_describe`, `rpc_describe_local` and `rpc_report`
//! (`client_protocol.md` §3.20): the RPC catalog, built on the function
//! entries of the catalog (the same [`Selection`] as `catalog_query
//! entry_type=functions`, so the same namespace, scope and filter rules).
//!
//! Where MPREG is quirky we choose:
//! - `rpc_list` / `rpc_describe` with `query` filter the whole catalog and
//!   page with keyset tokens (MPREG only looks at the first 200 functions
//!   and pages by offset); `rpc_report` counts every function endpoint
//!   (MPREG: the first 200).
//! - `rpc_describe` modes: `local` (alias `node`) answers from this node's
//!   own functions; `catalog` from the catalog; `auto` and `scatter` from
//!   the catalog too: the core does not call other nodes, and it does not
//!   need to for mpreg-rs nodes, whose full specs are rebuilt from their
//!   catalog entries and checked against the advertised digest
//!   ([`rpc_spec::verified_spec`]). With `detail_level` `full`, in `auto` /
//!   `scatter` / `local` mode an endpoint whose full spec cannot be
//!   established gets an entry in `errors`. Any other mode is error 1003
//!   `Unsupported rpc_describe mode: <mode>`. `max_nodes` and
//!   `timeout_seconds` (scatter parameters) are validated and otherwise
//!   unused.
//! - `rpc_report` counts keep an empty key as `"key": ""` (MPREG omits the
//!   key; its client reads a missing key as `""`).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::catalog_query::{page, Paging, Selection};
use super::request::Payload;
use super::rpc_spec;
use super::Ctx;
use crate::catalog::entry::{Entry, EntryKind, FunctionEndpoint};
use crate::wire::client::RpcError;

/// MPREG's `RpcListItem`: `{identity, namespace? (omitted when empty),
/// node_id, cluster_id, resources, tags, scope, summary? (the
/// RpcSpecSummary), spec_digest?}`.
fn list_item(f: &FunctionEndpoint) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("identity".into(), json!(f.identity));
    let ns = f.effective_namespace();
    if !ns.is_empty() {
        m.insert("namespace".into(), json!(ns));
    }
    m.insert("node_id".into(), json!(f.node_id));
    m.insert("cluster_id".into(), json!(f.cluster_id));
    m.insert("resources".into(), json!(f.resources));
    m.insert("tags".into(), json!(f.tags));
    m.insert("scope".into(), json!(f.scope.as_str()));
    if let Some(summary) = rpc_spec::client_safe_summary(f) {
        m.insert("summary".into(), summary.clone());
    }
    if let Some(d) = rpc_spec::advertised_digest(f) {
        m.insert("spec_digest".into(), json!(d));
    }
    m
}

fn as_function(e: &Entry) -> Option<&FunctionEndpoint> {
    match e {
        Entry::Function(f) => Some(f),
        _ => None,
    }
}

/// `query`: a case-insensitive substring of the name, namespace, summary
/// text or function id.
fn query_matches(query: &str, f: &FunctionEndpoint) -> bool {
    let hit = |s: &str| s.to_lowercase().contains(query);
    hit(&f.identity.name)
        || hit(f.effective_namespace())
        || hit(&f.identity.function_id)
        || f.rpc_summary
            .as_ref()
            .and_then(|s| s.get("summary"))
            .and_then(Value::as_str)
            .is_some_and(hit)
}

/// The functions part of an `rpc_*` request: `catalog_query`'s function
/// filters plus `query` (lower-cased).
fn selection(ctx: &Ctx<'_>, p: &Payload<'_>) -> Result<(Selection, Option<String>), RpcError> {
    let sel = Selection::parse(ctx, p, EntryKind::Functions)?;
    let _viewer = (p.str("viewer_cluster_id")?, p.str("viewer_tenant_id")?);
    let query = p.str("query")?.map(|q| q.to_lowercase());
    Ok((sel, query))
}

/// Runs `rpc_list`: `{generated_at, items, next_page_token?}`.
pub fn rpc_list(ctx: &Ctx<'_>, payload: &Map<String, Value>) -> Result<Value, RpcError> {
    let p = Payload::new("rpc_list", payload);
    let (sel, query) = selection(ctx, &p)?;
    let paging = Paging::parse(&p, EntryKind::Functions)?;
    let page = page(ctx, &sel, &paging, |e| {
        as_function(e).is_some_and(|f| query.as_deref().is_none_or(|q| query_matches(q, f)))
    });
    let items: Vec<Value> = page
        .items
        .iter()
        .filter_map(|e| as_function(e))
        .map(|f| Value::Object(list_item(f)))
        .collect();
    let mut res = Map::new();
    res.insert("generated_at".into(), json!(ctx.now.wall));
    res.insert("items".into(), Value::Array(items));
    if let Some(token) = page.next_page_token {
        res.insert("next_page_token".into(), json!(token));
    }
    Ok(Value::Object(res))
}

/// `rpc_describe`'s `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Auto,
    Local,
    Catalog,
    Scatter,
}

/// Runs `rpc_describe`: `{generated_at, items, errors, next_page_token?}`.
pub fn rpc_describe(ctx: &Ctx<'_>, payload: &Map<String, Value>) -> Result<Value, RpcError> {
    describe(ctx, payload, "rpc_describe", None)
}

/// Runs `rpc_describe_local`: `rpc_describe` in mode `local`.
pub fn rpc_describe_local(ctx: &Ctx<'_>, payload: &Map<String, Value>) -> Result<Value, RpcError> {
    describe(ctx, payload, "rpc_describe_local", Some(Mode::Local))
}

fn describe(
    ctx: &Ctx<'_>,
    payload: &Map<String, Value>,
    fun: &str,
    forced: Option<Mode>,
) -> Result<Value, RpcError> {
    let p = Payload::new(fun, payload);
    let mode = match forced {
        Some(m) => m,
        None => match p.str("mode")? {
            None => Mode::Auto,
            Some(raw) => match raw.to_lowercase().as_str() {
                "auto" => Mode::Auto,
                "local" | "node" => Mode::Local,
                "catalog" => Mode::Catalog,
                "scatter" => Mode::Scatter,
                _ => {
                    return Err(RpcError::failed(format!(
                        "Unsupported rpc_describe mode: {raw}"
                    )))
                }
            },
        },
    };
    // Unknown detail levels mean `full`, as in MPREG.
    let full = p
        .str("detail_level")?
        .is_none_or(|d| !d.eq_ignore_ascii_case("summary"));
    let (mut sel, query) = selection(ctx, &p)?;
    let digests = p.str_list("spec_digests")?;
    let names = p.str_list("function_names")?;
    let ids = p.str_list("function_ids")?;
    if let Some(n) = p.int("max_nodes")? {
        if n < 0 {
            return Err(RpcError::failed(format!(
                "{fun}: `max_nodes` must not be negative, got {n}"
            )));
        }
    }
    let _timeout = p.float("timeout_seconds")?;
    if mode == Mode::Local {
        // This node's own registry: a request naming another node or
        // cluster gets nothing.
        sel.narrow_to_scope(ctx, Some(crate::catalog::scope::Scope::Local));
        sel.scope = p.scope()?;
    }
    let paging = Paging::parse(&p, EntryKind::Functions)?;
    let page = page(ctx, &sel, &paging, |e| {
        let Some(f) = as_function(e) else {
            return false;
        };
        query.as_deref().is_none_or(|q| query_matches(q, f))
            && (names.is_empty() || names.contains(&f.identity.name))
            && (ids.is_empty() || ids.contains(&f.identity.function_id))
            && (digests.is_empty()
                || rpc_spec::advertised_digest(f).is_some_and(|d| digests.iter().any(|x| x == d)))
    });
    let mut items = Vec::with_capacity(page.items.len());
    let mut errors = Vec::new();
    for f in page.items.iter().filter_map(|e| as_function(e)) {
        let mut item = list_item(f);
        if full {
            match rpc_spec::verified_spec(f) {
                Some(spec) => {
                    item.insert("spec".into(), spec);
                }
                None if mode != Mode::Catalog => errors.push(json!({
                    "node_id": f.node_id,
                    "cluster_id": f.cluster_id,
                    "error": format!(
                        "no verifiable spec for {} {}: the entry carries no full spec and mpreg-rs does not fetch specs from other nodes",
                        f.identity.name, f.identity.version
                    ),
                })),
                None => {}
            }
        }
        items.push(Value::Object(item));
    }
    let mut res = Map::new();
    res.insert("generated_at".into(), json!(ctx.now.wall));
    res.insert("items".into(), Value::Array(items));
    res.insert("errors".into(), Value::Array(errors));
    if let Some(token) = page.next_page_token {
        res.insert("next_page_token".into(), json!(token));
    }
    Ok(Value::Object(res))
}

/// `[{key, count}]`, by count descending, then key.
fn counts(map: BTreeMap<String, u64>) -> Value {
    let mut v: Vec<(String, u64)> = map.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Value::Array(
        v.into_iter()
            .map(|(key, count)| json!({"key": key, "count": count}))
            .collect(),
    )
}

/// Runs `rpc_report`: `{generated_at, total_functions, namespace_counts,
/// cluster_counts, tag_counts}` over every function endpoint matching the
/// request's `namespace` and `scope`.
pub fn rpc_report(ctx: &Ctx<'_>, payload: &Map<String, Value>) -> Result<Value, RpcError> {
    let p = Payload::new("rpc_report", payload);
    let mut sel = Selection::new(EntryKind::Functions);
    sel.namespace = crate::catalog::namespace::NamespaceFilter::parse(
        p.str("namespace")?.as_deref().unwrap_or(""),
    );
    let _viewer = (p.str("viewer_cluster_id")?, p.str("viewer_tenant_id")?);
    sel.narrow_to_scope(ctx, p.scope()?);
    let mut total = 0u64;
    let mut namespaces: BTreeMap<String, u64> = BTreeMap::new();
    let mut clusters: BTreeMap<String, u64> = BTreeMap::new();
    let mut tags: BTreeMap<String, u64> = BTreeMap::new();
    for e in sel.candidates(ctx.catalog, None) {
        let Some(f) = as_function(e).filter(|_| sel.keep(ctx, e)) else {
            continue;
        };
        total += 1;
        *namespaces
            .entry(f.effective_namespace().to_string())
            .or_default() += 1;
        *clusters.entry(f.cluster_id.clone()).or_default() += 1;
        for t in &f.tags {
            *tags.entry(t.clone()).or_default() += 1;
        }
    }
    Ok(json!({
        "generated_at": ctx.now.wall,
        "total_functions": total,
        "namespace_counts": counts(namespaces),
        "cluster_counts": counts(clusters),
        "tag_counts": counts(tags),
    }))
}

#[cfg(test)]
#[path = "rpc_catalog_tests.rs"]
mod tests;
