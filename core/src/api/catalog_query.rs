//! `catalog_query` (`client_protocol.md` §3.5) and the catalog read every
//! paged discovery RPC shares ([`Selection`], [`Paging`], [`page`]):
//! `cluster_map_v2`, `rpc_list` and `rpc_describe` are built on it.
//!
//! Filters, per entry type (a filter that does not apply to the requested
//! type is ignored, as MPREG ignores it):
//!
//! | filter | applies to | rule |
//! |---|---|---|
//! | `namespace` | functions, queues, services, topics | the one dot-boundary rule ([`NamespaceFilter`]) against [`Entry::filter_values`] (MPREG: exact for services) |
//! | `scope` | every type, nodes included | location limit (`local` = this node, `zone` = this cluster) and visibility rank (entry scope at least as wide) |
//! | `cluster_id`, `node_id` | every type | exact; a conflict with the scope's location limit gives an empty page |
//! | `capabilities` | functions: the serving node's capabilities; nodes, services: the entry's | subset |
//! | `resources` | functions, nodes | subset |
//! | `tags` | every type but nodes | subset |
//! | `function_name`, `function_id` | functions | exact |
//! | `version_constraint` | functions | MPREG's syntax ([`VersionConstraint`]); invalid → 1003 |
//! | `queue_name` | queues | exact |
//! | `service_name`, `service_protocol`, `service_port` | services | exact |
//! | `topic` | topics | some pattern of the subscription matches this concrete topic |
//!
//! Candidates come from the catalog's indexes, not a scan, whenever the
//! request names something indexed: a function, queue or service name (or a
//! node id for nodes and cache profiles) through the name index, else a
//! namespace through the namespace index; only then the whole kind, in
//! order, stopping as soon as the page is full.
//!
//! Page tokens are keyset cursors, not offsets: a token names the last entry
//! returned, so walking the pages while entries come and go never returns an
//! entry twice and never skips one that existed throughout.

use serde_json::{json, Map, Value};

use super::request::Payload;
use super::version::VersionConstraint;
use super::Ctx;
use crate::catalog::entry::{Entry, EntryKind};
use crate::catalog::index::SortKey;
use crate::catalog::namespace::{topic_matches, NamespaceFilter};
use crate::catalog::scope::{visible_at, Scope};
use crate::catalog::store::Catalog;
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

/// Where a page starts and how long it is, from a request's `page_token`
/// and `limit`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Paging {
    /// Resume strictly after this key (`None`: first page).
    pub after: Option<SortKey>,
    /// Page size.
    pub limit: usize,
}

impl Paging {
    /// Reads `page_token` and `limit` of a request paging over `kind`. The
    /// request's `limit` wins over the token's; a malformed token, or one
    /// issued for another entry type, is error 1003.
    pub(crate) fn parse(p: &Payload<'_>, kind: EntryKind) -> Result<Paging, RpcError> {
        let token = match p.str("page_token")? {
            Some(t) => Some(PageToken::decode(&t).map_err(RpcError::failed)?),
            None => None,
        };
        if let Some(t) = &token {
            if t.after.kind() != kind {
                return Err(RpcError::failed(format!(
                    "invalid page_token: it pages over {}, not {}",
                    t.after.kind(),
                    kind
                )));
            }
        }
        let limit = match p.int("limit")? {
            Some(l) => clamp_limit(l),
            None => token.as_ref().map(|t| t.limit).unwrap_or(DEFAULT_LIMIT),
        };
        Ok(Paging {
            after: token.map(|t| t.after),
            limit,
        })
    }
}

/// What a paged catalog read selects: one entry kind and its filters,
/// already narrowed by the requested scope's location limit.
#[derive(Debug, Clone)]
pub(crate) struct Selection {
    pub kind: EntryKind,
    pub namespace: NamespaceFilter,
    pub scope: Option<Scope>,
    pub cluster_id: Option<String>,
    pub node_id: Option<String>,
    pub capabilities: Vec<String>,
    pub resources: Vec<String>,
    pub tags: Vec<String>,
    pub function_name: Option<String>,
    pub function_id: Option<String>,
    pub version: Option<VersionConstraint>,
    pub queue_name: Option<String>,
    pub service_name: Option<String>,
    pub service_protocol: Option<String>,
    pub service_port: Option<u16>,
    pub topic: Option<String>,
    /// The filters contradict each other (e.g. `scope=zone` with another
    /// cluster's id): nothing matches.
    pub nothing: bool,
}

impl Selection {
    /// Everything of `kind`.
    pub(crate) fn new(kind: EntryKind) -> Selection {
        Selection {
            kind,
            namespace: NamespaceFilter::all(),
            scope: None,
            cluster_id: None,
            node_id: None,
            capabilities: Vec::new(),
            resources: Vec::new(),
            tags: Vec::new(),
            function_name: None,
            function_id: None,
            version: None,
            queue_name: None,
            service_name: None,
            service_protocol: None,
            service_port: None,
            topic: None,
            nothing: false,
        }
    }

    /// Reads `catalog_query`'s filters (those that apply to `kind`) from a
    /// request and applies the scope's location limit.
    pub(crate) fn parse(
        ctx: &Ctx<'_>,
        p: &Payload<'_>,
        kind: EntryKind,
    ) -> Result<Selection, RpcError> {
        let mut sel = Selection::new(kind);
        let scope = p.scope()?;
        sel.namespace = NamespaceFilter::parse(p.str("namespace")?.as_deref().unwrap_or(""));
        sel.cluster_id = p.str("cluster_id")?;
        sel.node_id = p.str("node_id")?;
        sel.capabilities = p.str_list("capabilities")?;
        sel.resources = p.str_list("resources")?;
        sel.tags = p.str_list("tags")?;
        match kind {
            EntryKind::Functions => {
                sel.function_name = p.str("function_name")?;
                sel.function_id = p.str("function_id")?;
                sel.version = match p.str("version_constraint")? {
                    Some(raw) => Some(VersionConstraint::parse(&raw).map_err(RpcError::failed)?),
                    None => None,
                };
            }
            EntryKind::Queues => sel.queue_name = p.str("queue_name")?,
            EntryKind::Services => {
                sel.service_name = p.str("service_name")?;
                sel.service_protocol = p.str("service_protocol")?;
                sel.service_port = match p.int("service_port")? {
                    Some(port) => Some(u16::try_from(port).map_err(|_| {
                        RpcError::failed(format!(
                            "{}: `service_port` must be within 0..=65535, got {port}",
                            p.fun()
                        ))
                    })?),
                    None => None,
                };
            }
            EntryKind::Topics => sel.topic = p.str("topic")?,
            EntryKind::Nodes | EntryKind::Caches | EntryKind::CacheProfiles => {}
        }
        sel.narrow_to_scope(ctx, scope);
        Ok(sel)
    }

    /// Applies a requested scope: its visibility rank, and its location
    /// limit (`local`: this node; `zone`: this cluster). A `cluster_id` /
    /// `node_id` filter that contradicts the limit selects nothing.
    pub(crate) fn narrow_to_scope(&mut self, ctx: &Ctx<'_>, scope: Option<Scope>) {
        self.scope = scope;
        let ok = match scope {
            Some(Scope::Local) => {
                merge(&mut self.cluster_id, &ctx.me.cluster_id)
                    && merge(&mut self.node_id, &ctx.me.node_id)
            }
            Some(Scope::Zone) => merge(&mut self.cluster_id, &ctx.me.cluster_id),
            _ => true,
        };
        self.nothing |= !ok;
    }

    /// Candidate entries of the selected kind strictly after `after`, in
    /// sort order, from the narrowest index the filters allow. Candidates
    /// still have to pass [`Selection::keep`].
    pub(crate) fn candidates<'c: 's, 's>(
        &'s self,
        catalog: &'c Catalog,
        after: Option<&'s SortKey>,
    ) -> Box<dyn Iterator<Item = &'c Entry> + 's> {
        if self.nothing {
            return Box::new(std::iter::empty());
        }
        let name = match self.kind {
            EntryKind::Functions => self.function_name.as_deref(),
            EntryKind::Queues => self.queue_name.as_deref(),
            EntryKind::Services => self.service_name.as_deref(),
            EntryKind::Nodes | EntryKind::CacheProfiles => self.node_id.as_deref(),
            EntryKind::Topics | EntryKind::Caches => None,
        };
        if let Some(name) = name {
            // The name index yields in sort order; skip what a previous page
            // returned.
            let iter = catalog.by_name(self.kind, name);
            return match after {
                Some(after) => Box::new(iter.filter(move |e| SortKey::of(e) > *after)),
                None => Box::new(iter),
            };
        }
        if !self.namespace.is_all() {
            // Kinds without a namespace get the whole kind from here.
            return Box::new(
                catalog
                    .in_namespace(self.kind, &self.namespace, after)
                    .map(|(_, e)| e),
            );
        }
        Box::new(catalog.range_after(self.kind, after).map(|(_, e)| e))
    }

    /// Whether `e` (of the selected kind) passes every filter at `ctx.now`.
    pub(crate) fn keep(&self, ctx: &Ctx<'_>, e: &Entry) -> bool {
        if self.nothing || e.kind() != self.kind || e.is_expired(ctx.now.wall) {
            return false;
        }
        if self
            .cluster_id
            .as_deref()
            .is_some_and(|c| c != e.cluster_id())
        {
            return false;
        }
        if self.node_id.as_deref().is_some_and(|n| n != e.node_id()) {
            return false;
        }
        if self.scope.is_some_and(|s| !visible_at(e.scope(), s)) {
            return false;
        }
        if self.kind != EntryKind::Nodes && !self.tags.iter().all(|t| e.tags().contains(t)) {
            return false;
        }
        if !e.matches_namespace(&self.namespace) {
            return false;
        }
        self.keep_fields(ctx, e) && ctx.access.entry_visible(e)
    }

    /// The kind-specific filters of [`Selection::keep`].
    fn keep_fields(&self, ctx: &Ctx<'_>, e: &Entry) -> bool {
        match e {
            Entry::Function(f) => {
                let id = &f.identity;
                self.function_name.as_ref().is_none_or(|n| *n == id.name)
                    && self
                        .function_id
                        .as_ref()
                        .is_none_or(|i| *i == id.function_id)
                    && self.version.is_none_or(|c| c.matches_str(&id.version))
                    && self.resources.iter().all(|r| f.resources.contains(r))
                    && (self.capabilities.is_empty()
                        || node_has_capabilities(
                            ctx,
                            &f.node_id,
                            &f.cluster_id,
                            &self.capabilities,
                        ))
            }
            Entry::Node(n) => {
                self.resources.iter().all(|r| n.resources.contains(r))
                    && self.capabilities.iter().all(|c| n.capabilities.contains(c))
            }
            Entry::Queue(q) => self.queue_name.as_ref().is_none_or(|n| *n == q.queue_name),
            Entry::Service(s) => {
                self.service_name.as_ref().is_none_or(|n| *n == s.name)
                    && self
                        .service_protocol
                        .as_ref()
                        .is_none_or(|p| *p == s.protocol)
                    && self.service_port.is_none_or(|p| p == s.port)
                    && self.capabilities.iter().all(|c| s.capabilities.contains(c))
            }
            Entry::Topic(t) => self
                .topic
                .as_ref()
                .is_none_or(|topic| t.patterns.iter().any(|p| topic_matches(p, topic))),
            Entry::Cache(_) | Entry::CacheProfile(_) => true,
        }
    }
}

/// Whether the live descriptor of node `node_id` (of `cluster_id`) lists
/// every capability. An unknown node has none.
fn node_has_capabilities(ctx: &Ctx<'_>, node_id: &str, cluster_id: &str, caps: &[String]) -> bool {
    ctx.catalog
        .by_name(EntryKind::Nodes, node_id)
        .filter(|e| e.cluster_id() == cluster_id && !e.is_expired(ctx.now.wall))
        .any(|e| match e {
            Entry::Node(n) => caps.iter().all(|c| n.capabilities.contains(c)),
            _ => false,
        })
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

/// One page of a selection.
pub(crate) struct Page<'a> {
    /// The entries, in sort order.
    pub items: Vec<&'a Entry>,
    /// The token of the next page, when more entries match.
    pub next_page_token: Option<String>,
}

/// The page of `sel` (further narrowed by `extra`) that `paging` asks for.
pub(crate) fn page<'a>(
    ctx: &Ctx<'a>,
    sel: &Selection,
    paging: &Paging,
    mut extra: impl FnMut(&Entry) -> bool,
) -> Page<'a> {
    let catalog: &'a Catalog = ctx.catalog;
    let mut items: Vec<&'a Entry> = Vec::with_capacity(paging.limit.min(64));
    let mut more = false;
    for e in sel.candidates(catalog, paging.after.as_ref()) {
        if !sel.keep(ctx, e) || !extra(e) {
            continue;
        }
        if items.len() == paging.limit {
            more = true;
            break;
        }
        items.push(e);
    }
    let next_page_token = match (more, items.last()) {
        (true, Some(last)) => Some(
            PageToken {
                limit: paging.limit,
                after: SortKey::of(last),
            }
            .encode(),
        ),
        _ => None,
    };
    Page {
        items,
        next_page_token,
    }
}

/// Runs `catalog_query`.
pub fn run(ctx: &Ctx<'_>, payload: &Map<String, Value>) -> Result<Value, RpcError> {
    let p = Payload::new("catalog_query", payload);
    let raw_type = p.str("entry_type")?;
    let kind = EntryKind::parse(raw_type.as_deref().unwrap_or("None"))
        .map_err(|e| RpcError::failed(e.to_string()))?;
    let sel = Selection::parse(ctx, &p, kind)?;
    let paging = Paging::parse(&p, kind)?;
    let page = page(ctx, &sel, &paging, |_| true);
    let mut res = Map::new();
    res.insert("entry_type".into(), json!(kind.as_str()));
    res.insert("generated_at".into(), json!(ctx.now.wall));
    res.insert(
        "items".into(),
        Value::Array(page.items.iter().map(|e| e.to_json()).collect()),
    );
    if let Some(token) = page.next_page_token {
        res.insert("next_page_token".into(), json!(token));
    }
    Ok(Value::Object(res))
}

#[cfg(test)]
#[path = "catalog_query_tests.rs"]
mod tests;
