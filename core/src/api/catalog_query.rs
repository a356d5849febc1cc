//! `catalog_query` (`client_protocol.md` §3.5): one entry kind, filtered by
//! namespace (the one dot-boundary rule), scope (location limit plus
//! visibility rank), cluster, node and tags, in MPREG's sort order, paged with
//! keyset cursors.
//!
//! Page tokens are keyset cursors, not offsets: a token names the last entry
//! returned, so walking the pages while entries come and go never returns an
//! entry twice and never skips one that existed throughout.

use serde_json::{json, Map, Value};

use super::request::Payload;
use super::Ctx;
use crate::catalog::entry::{Entry, EntryKind};
use crate::catalog::index::SortKey;
use crate::catalog::namespace::NamespaceFilter;
use crate::catalog::scope::{visible_at, Scope};
use crate::wire::client::RpcError;

/// Page size when the request gives none.
pub const DEFAULT_LIMIT: usize = 200;
/// Largest page served.
pub const MAX_LIMIT: usize = 2000;

/// A decoded page token: the page size and the sort key of the last entry
/// of the previous page.
#[derive(Debug, Clone, PartialEq)]
pub struct PageToken {
    /// Page size carried over from the previous page.
    pub limit: usize,
    /// Resume strictly after this key.
    pub after: SortKey,
}

impl PageToken {
    /// `k1:<limit>:<sort key>`.
    pub fn encode(&self) -> String {
        format!("k1:{}:{}", self.limit, self.after.to_cursor())
    }

    /// Parses a token from an untrusted string.
    pub fn decode(raw: &str) -> Result<PageToken, String> {
        let rest = raw
            .strip_prefix("k1:")
            .ok_or_else(|| format!("invalid page_token: {raw:?}"))?;
        let (limit, key) = rest
            .split_once(':')
            .ok_or_else(|| format!("invalid page_token: {raw:?}"))?;
        let limit = limit
            .parse::<usize>()
            .map_err(|_| format!("invalid page_token: {raw:?}"))?;
        let after = SortKey::parse(key).map_err(|_| format!("invalid page_token: {raw:?}"))?;
        Ok(PageToken {
            limit: clamp_limit(limit as i64),
            after,
        })
    }
}

/// `limit` clamped to `[1, MAX_LIMIT]` (DESIGN.md §5).
pub fn clamp_limit(limit: i64) -> usize {
    limit.clamp(1, MAX_LIMIT as i64) as usize
}

struct Filters {
    kind: EntryKind,
    namespace: NamespaceFilter,
    scope: Option<Scope>,
    cluster_id: Option<String>,
    node_id: Option<String>,
    tags: Vec<String>,
}

/// Runs `catalog_query`.
pub fn run(ctx: &Ctx<'_>, payload: &Map<String, Value>) -> Result<Value, RpcError> {
    let p = Payload::new("catalog_query", payload);
    let raw_type = p.str("entry_type")?;
    let kind = EntryKind::parse(raw_type.as_deref().unwrap_or("None"))
        .map_err(|e| RpcError::failed(e.to_string()))?;
    let scope = p.scope()?;
    let token = match p.str("page_token")? {
        Some(t) => Some(PageToken::decode(&t).map_err(RpcError::failed)?),
        None => None,
    };
    let limit = match p.int("limit")? {
        Some(l) => clamp_limit(l),
        None => token.as_ref().map(|t| t.limit).unwrap_or(DEFAULT_LIMIT),
    };
    let mut f = Filters {
        kind,
        namespace: NamespaceFilter::parse(p.str("namespace")?.as_deref().unwrap_or("")),
        scope,
        cluster_id: p.str("cluster_id")?,
        node_id: p.str("node_id")?,
        tags: p.str_list("tags")?,
    };
    let empty = |kind: EntryKind| json!({"entry_type": kind.as_str(), "generated_at": ctx.now.wall, "items": []});
    // Location limit of the requested scope; a conflicting explicit filter
    // means nothing can match.
    let conflict = match scope {
        Some(Scope::Local) => {
            !merge(&mut f.cluster_id, &ctx.me.cluster_id) || !merge(&mut f.node_id, &ctx.me.node_id)
        }
        Some(Scope::Zone) => !merge(&mut f.cluster_id, &ctx.me.cluster_id),
        _ => false,
    };
    if conflict {
        return Ok(empty(kind));
    }
    let after = token.as_ref().map(|t| &t.after);
    let candidates: Box<dyn Iterator<Item = (&SortKey, &Entry)>> =
        if namespaced(kind) && !f.namespace.is_all() {
            Box::new(ctx.catalog.in_namespace(kind, &f.namespace, after))
        } else {
            Box::new(ctx.catalog.range_after(kind, after))
        };
    let mut items = Vec::with_capacity(limit.min(64));
    let mut last: Option<SortKey> = None;
    let mut more = false;
    for (key, entry) in candidates {
        if !keep(&f, entry, ctx.now.wall) {
            continue;
        }
        if items.len() == limit {
            more = true;
            break;
        }
        items.push(entry.to_json());
        last = Some(key.clone());
    }
    let mut res = Map::new();
    res.insert("entry_type".into(), json!(kind.as_str()));
    res.insert("generated_at".into(), json!(ctx.now.wall));
    res.insert("items".into(), Value::Array(items));
    if let (true, Some(after)) = (more, last) {
        res.insert(
            "next_page_token".into(),
            json!(PageToken { limit, after }.encode()),
        );
    }
    Ok(Value::Object(res))
}

/// Kinds with a namespace (MPREG does not namespace nodes, caches or cache
/// profiles; a namespace filter is ignored for them).
fn namespaced(kind: EntryKind) -> bool {
    matches!(
        kind,
        EntryKind::Functions | EntryKind::Queues | EntryKind::Services | EntryKind::Topics
    )
}

/// Narrows an optional filter to `required`; false when they conflict.
fn merge(filter: &mut Option<String>, required: &str) -> bool {
    match filter {
        Some(v) if v != required => false,
        _ => {
            *filter = Some(required.to_string());
            true
        }
    }
}

fn keep(f: &Filters, e: &Entry, now: f64) -> bool {
    if e.is_expired(now) {
        return false;
    }
    if f.cluster_id.as_deref().is_some_and(|c| c != e.cluster_id()) {
        return false;
    }
    if f.node_id.as_deref().is_some_and(|n| n != e.node_id()) {
        return false;
    }
    if let Some(scope) = f.scope {
        if !visible_at(e.scope(), scope) {
            return false;
        }
    }
    if f.kind != EntryKind::Nodes && !f.tags.iter().all(|t| e.tags().contains(t)) {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_clamped() {
        assert_eq!(clamp_limit(0), 1);
        assert_eq!(clamp_limit(-5), 1);
        assert_eq!(clamp_limit(5), 5);
        assert_eq!(clamp_limit(1_000_000), MAX_LIMIT);
    }

    #[test]
    fn bad_tokens_are_errors_not_panics() {
        for raw in [
            "",
            "200:200",
            "k1:",
            "k1:x:y",
            "k1:5",
            "k1:99999999999999999999999:a",
        ] {
            assert!(PageToken::decode(raw).is_err(), "{raw}");
        }
    }
}
