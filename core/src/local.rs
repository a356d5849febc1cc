//! What this node advertises about itself: its node descriptor, the RPCs it
//! serves (as a stock MPREG node advertises its registered commands), and the
//! entries declared in its settings file (`[[services]]`, `[[functions]]`,
//! `[[queues]]`, `[[topics]]`).

use std::collections::BTreeSet;

use crate::api::rpc_spec;
use crate::api::RPC_NAMES;
use crate::catalog::entry::{
    Entry, FunctionEndpoint, FunctionIdentity, MetadataValue, NodeDescriptor, QueueEndpoint,
    ServiceEndpoint, TopicSubscription, TransportEndpoint, INTERNAL_CONNECTION,
};
use crate::catalog::scope::Scope;
use crate::config::Settings;
use crate::node::Identity;

/// Version MPREG gives every registered command.
const BUILTIN_VERSION: &str = "1.0.0";

/// This node's URL plus its `advertised_urls`, deduplicated, in order.
pub fn advertised_urls(settings: &Settings, me: &Identity) -> Vec<String> {
    if settings.advertised_urls.is_empty() {
        return vec![me.node_id.clone()];
    }
    let mut seen = BTreeSet::new();
    settings
        .advertised_urls
        .iter()
        .filter(|u| seen.insert((*u).clone()))
        .cloned()
        .collect()
}

/// Every function name this node serves (sorted): the built-in RPCs plus the
/// declared `[[functions]]`.
pub fn function_names(settings: &Settings) -> Vec<String> {
    let mut names: BTreeSet<String> = builtin_names(settings).map(str::to_string).collect();
    names.extend(settings.functions.iter().map(|f| f.name.clone()));
    names.into_iter().collect()
}

/// The built-in RPCs this node advertises (`advertise_builtin_rpcs`).
fn builtin_names(settings: &Settings) -> impl Iterator<Item = &'static str> {
    let all: &'static [&'static str] = if settings.advertise_builtin_rpcs {
        RPC_NAMES
    } else {
        &[]
    };
    all.iter().copied()
}

fn scope_or(raw: Option<&str>, default: Scope) -> Scope {
    match raw {
        Some(s) if !s.trim().is_empty() => Scope::normalize_entry(s),
        _ => default,
    }
}

/// All entries this node owns, advertised at `wall`.
pub fn entries(settings: &Settings, me: &Identity, wall: f64) -> Vec<Entry> {
    let ttl = settings.fabric_catalog_ttl_seconds;
    let node_scope = Scope::normalize_entry(&settings.scope);
    let node = &me.node_id;
    let cluster = &me.cluster_id;
    let mut out = Vec::new();

    let mut endpoints: Vec<TransportEndpoint> = Vec::new();
    for url in std::iter::once(node).chain(settings.advertised_urls.iter()) {
        if let Some(ep) = TransportEndpoint::from_url(INTERNAL_CONNECTION, url) {
            endpoints.push(ep);
        }
    }
    endpoints.dedup();
    let mut desc = NodeDescriptor::new(node.clone(), cluster.clone())
        .with_endpoints(endpoints)
        .with_scope(node_scope)
        .advertised(wall, ttl);
    desc.resources = settings.resources.iter().cloned().collect();
    desc.capabilities = ["rpc".to_string()].into_iter().collect();
    desc.region = settings.cache_region.clone();
    out.push(Entry::Node(desc));

    for name in builtin_names(settings) {
        let mut f = FunctionEndpoint::new(
            FunctionIdentity::new(name, name, BUILTIN_VERSION),
            node.clone(),
            cluster.clone(),
        )
        .with_scope(Scope::Zone)
        .advertised(wall, ttl);
        // As a stock MPREG node does: every command carries its spec summary.
        rpc_spec::attach_summary(&mut f, None);
        out.push(Entry::Function(f));
    }
    for decl in &settings.functions {
        let id = decl
            .function_id
            .clone()
            .unwrap_or_else(|| decl.name.clone());
        let mut f = FunctionEndpoint::new(
            FunctionIdentity::new(&decl.name, id, &decl.version),
            node.clone(),
            cluster.clone(),
        )
        .with_resources(decl.resources.iter().cloned())
        .with_scope(scope_or(decl.scope.as_deref(), node_scope))
        .with_tags(decl.tags.iter().cloned())
        .advertised(wall, ttl);
        f.normalize();
        rpc_spec::attach_summary(&mut f, decl.summary.as_deref());
        out.push(Entry::Function(f));
    }
    for decl in &settings.services {
        let targets: Vec<String> = if decl.targets.is_empty() {
            vec![settings.host.clone()]
        } else {
            decl.targets.clone()
        };
        let mut s = ServiceEndpoint::new(&decl.name, &decl.namespace, &decl.protocol, decl.port)
            .owned_by(node.clone(), cluster.clone())
            .with_targets(targets)
            .with_scope(scope_or(decl.scope.as_deref(), node_scope))
            .with_tags(decl.tags.iter().cloned())
            .advertised(wall, ttl);
        s.capabilities = decl.capabilities.iter().cloned().collect();
        s.metadata = decl
            .metadata
            .iter()
            .filter_map(|(k, v)| MetadataValue::from_json(v.clone()).map(|m| (k.clone(), m)))
            .collect();
        s.priority = u16::try_from(decl.priority.max(0)).unwrap_or(u16::MAX);
        s.weight = u16::try_from(decl.weight.max(0)).unwrap_or(u16::MAX);
        s.normalize();
        out.push(Entry::Service(s));
    }
    for decl in &settings.queues {
        let mut q = QueueEndpoint::new(&decl.queue_name, node.clone(), cluster.clone())
            .with_scope(scope_or(decl.scope.as_deref(), node_scope))
            .with_tags(decl.tags.iter().cloned())
            .advertised(wall, ttl);
        q.delivery_guarantees = decl.delivery_guarantees.iter().cloned().collect();
        q.metadata = decl.metadata.clone().into_iter().collect();
        q.normalize();
        out.push(Entry::Queue(q));
    }
    for (i, decl) in settings.topics.iter().enumerate() {
        // Topic keys are the subscription id alone, cluster-wide: derive a
        // default that cannot collide with another node's.
        let id = decl
            .subscription_id
            .clone()
            .unwrap_or_else(|| format!("{node}#topics[{i}]"));
        let mut t = TopicSubscription::new(
            id,
            node.clone(),
            cluster.clone(),
            decl.patterns.iter().cloned(),
        )
        .with_scope(scope_or(decl.scope.as_deref(), node_scope))
        .with_tags(decl.tags.iter().cloned())
        .advertised(wall, ttl);
        t.normalize();
        out.push(Entry::Topic(t));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::entry::EntryKind;
    use crate::config::FunctionDecl;

    fn me() -> Identity {
        Identity {
            node_id: "ws://127.0.0.1:7001".into(),
            cluster_id: "c".into(),
            instance_id: "i".into(),
            started_at: 0.0,
        }
    }

    fn declared(name: &str) -> FunctionDecl {
        toml::from_str(&format!("name = \"{name}\"")).expect("minimal declaration")
    }

    #[test]
    fn builtin_rpcs_are_advertised_unless_turned_off() {
        let mut s = Settings {
            functions: vec![declared("svc.work")],
            ..Settings::default()
        };
        let functions = |s: &Settings| {
            entries(s, &me(), 1.0)
                .into_iter()
                .filter(|e| e.kind() == EntryKind::Functions)
                .count()
        };
        assert_eq!(functions(&s), RPC_NAMES.len() + 1);
        assert_eq!(function_names(&s).len(), RPC_NAMES.len() + 1);

        s.advertise_builtin_rpcs = false;
        assert_eq!(functions(&s), 1);
        assert_eq!(function_names(&s), vec!["svc.work".to_string()]);
        assert_eq!(entries(&s, &me(), 1.0).len(), 2, "descriptor + svc.work");
    }
}
