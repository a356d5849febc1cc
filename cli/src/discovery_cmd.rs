//! `mpreg discovery ...`: the discovery plane, spelled as
//! `DISCOVERY_RUNBOOKS.md` spells it (MPREG's `query`, `summary`, `watch`,
//! `status`, `access-audit`, plus the runbook's `lag`, `policy status`,
//! `cache-stats`, `resync`, `cluster-map`, and the `rpc_*` RPCs).

use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::client_cmd::{print_page_footer, services_table, show};
use crate::common::{
    call, expect_object, parse_seconds, print_json, CliError, ConnArgs, Envelope, Payload,
};
use crate::monitor_cmd::{self, MonArgs};
use crate::render::{self, at, field, Table};

/// `mpreg discovery` subcommands.
#[derive(Subcommand, Debug)]
pub enum DiscoveryCommand {
    /// Query the routing catalog (`catalog_query`): a table of entries of
    /// one type (nodes, functions, services, queues, topics, caches,
    /// cache_profiles) with their node, cluster and scope.
    ///
    /// Runbook: "Resolver Cache Stale Or Empty" and "Policy Or Tenant
    /// Visibility Denials" (`catalog_query` returns stale or empty entries).
    Query(QueryArgs),
    /// Query service summaries (`summary_query`): namespace, service id,
    /// endpoint count, regions, health, source cluster, and ingress URLs
    /// with `--include-ingress`.
    ///
    /// Runbook: "Summary Export Lag" (`summary_query` for `scope=global`
    /// returns empty) and "Summary Resolver Scope Mismatch".
    Summary(SummaryArgs),
    /// Watch catalog deltas (`catalog_watch`) or summary exports
    /// (`--summary`, `summary_watch`): subscribes to the topic and prints
    /// each notification (time, topic, what changed) until --duration or
    /// --count, or Ctrl-C; then unsubscribes.
    ///
    /// Runbook: "Resolver Cache Stale Or Empty" (validate delta stream health
    /// via `catalog_watch`) and "Policy Or Tenant Visibility Denials"
    /// (`discovery_access_denied` on watches).
    Watch(WatchArgs),
    /// Show the cluster map (`cluster_map_v2`): every node the receiving
    /// node knows with cluster, region, scope, capabilities, load and
    /// advertised URLs.
    ///
    /// Runbook: "Cluster Map Missing Nodes" (`cluster_map_v2` returns fewer
    /// nodes than expected) and "Resolver Or Hub Outage" (locate alternate
    /// ingress URLs).
    ClusterMap(ClusterMapArgs),
    /// Namespace policy status.
    ///
    /// Runbook: "Summary Export Lag" and "Policy Or Tenant Visibility
    /// Denials".
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Show the resolver cache: entry counts per kind, delta/seed/prune
    /// statistics and query-cache hits (`resolver_cache_stats`).
    ///
    /// Runbook: "Resolver Cache Stale Or Empty" (`discovery cache-stats`
    /// shows low entry counts after expected propagation).
    CacheStats {
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Re-seed the resolver cache from the live fabric catalog
    /// (`resolver_resync`) and show the counts after the seed.
    ///
    /// Runbook: "Resolver Cache Stale Or Empty" (trigger a resync when
    /// deltas fall behind).
    Resync {
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Show recent denied discovery requests (`discovery_access_audit`):
    /// event, viewer, namespace and reason (`viewer_denied`, `no_policy`,
    /// `rate_limited`).
    ///
    /// Runbook: "Policy Or Tenant Visibility Denials" and "Discovery Rate
    /// Limiting" (review access audit logs for `rate_limited` reasons).
    AccessAudit {
        /// Only the last N entries.
        #[arg(long)]
        limit: Option<i64>,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Show delta and summary-export lag (`delta_lag_seconds`,
    /// `summary_export_lag_seconds`, last delta / export times) from the
    /// node's monitoring endpoint (GET /discovery/lag).
    ///
    /// Runbook: "Summary Export Lag" (`summary_export_lag_seconds`
    /// increasing).
    Lag {
        #[command(flatten)]
        mon: MonArgs,
    },
    /// Show the node's discovery status from its monitoring endpoint: summary
    /// export, resolver and summary caches, policy, and lag (GET
    /// /discovery/summary, /discovery/cache, /discovery/policy,
    /// /discovery/lag).
    ///
    /// Runbook: "Summary Export Lag", "Resolver Cache Stale Or Empty" and
    /// "Policy Or Tenant Visibility Denials" (all their numbers at once).
    Status {
        #[command(flatten)]
        mon: MonArgs,
    },
    /// List RPCs advertised in the catalog (`rpc_list`): name, version,
    /// namespace, node, cluster and summary.
    ///
    /// Runbook: "Cluster Map Missing Nodes" (which nodes serve which
    /// functions) and "Policy Or Tenant Visibility Denials".
    RpcList(RpcListArgs),
    /// Describe RPCs with their specs (`rpc_describe`): the rpc-list columns
    /// plus parameters, and per-node errors of scatter lookups.
    ///
    /// Runbook: "Cluster Map Missing Nodes" (which nodes serve which
    /// functions).
    RpcDescribe(RpcDescribeArgs),
    /// Count advertised RPCs by namespace, cluster and tag (`rpc_report`).
    ///
    /// Runbook: "Cluster Map Missing Nodes" and "Policy Or Tenant Visibility
    /// Denials" (are a namespace's functions visible at all).
    RpcReport(RpcReportArgs),
}

/// `mpreg discovery policy` subcommands.
#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Show whether the viewer may see a namespace and why
    /// (`namespace_status`): allowed, reason, the matching rule (visibility,
    /// export scopes, allow_summaries) and summaries exported.
    ///
    /// Runbook: "Summary Export Lag" (verify `allow_summaries` and
    /// `export_scopes`) and "Policy Or Tenant Visibility Denials".
    Status {
        /// Namespace to check (all namespaces' default when omitted).
        #[arg(long)]
        namespace: Option<String>,
        /// Viewer cluster (ignored by nodes for WebSocket clients).
        #[arg(long)]
        viewer_cluster_id: Option<String>,
        /// Viewer tenant (honoured when tenant mode allows request overrides).
        #[arg(long)]
        viewer_tenant_id: Option<String>,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

/// Flags of `discovery query` (MPREG's, plus the service filters).
#[derive(Args, Debug)]
pub struct QueryArgs {
    /// functions, nodes, services, queues, topics, caches or cache_profiles.
    #[arg(long, default_value = "functions")]
    entry_type: String,
    /// Namespace subtree (dot boundary: svc.market matches svc.market.eu).
    #[arg(long)]
    namespace: Option<String>,
    /// Scope: local (this node), zone (this cluster), region or global.
    #[arg(long)]
    scope: Option<String>,
    /// Viewer cluster (ignored by nodes for WebSocket clients).
    #[arg(long)]
    viewer_cluster_id: Option<String>,
    /// Viewer tenant (honoured when tenant mode allows request overrides).
    #[arg(long)]
    viewer_tenant_id: Option<String>,
    /// Required capability, repeatable.
    #[arg(long = "capability")]
    capabilities: Vec<String>,
    /// Required resource, repeatable.
    #[arg(long = "resource")]
    resources: Vec<String>,
    /// Required tag, repeatable.
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Only entries of this cluster.
    #[arg(long)]
    cluster_id: Option<String>,
    /// Only entries of this node.
    #[arg(long)]
    node_id: Option<String>,
    /// Exact function name.
    #[arg(long)]
    function_name: Option<String>,
    /// Exact function id.
    #[arg(long)]
    function_id: Option<String>,
    /// Version constraint, e.g. ">=1.0.0,<2.0.0".
    #[arg(long)]
    version_constraint: Option<String>,
    /// Exact queue name.
    #[arg(long)]
    queue_name: Option<String>,
    /// Topic subscriptions matching this concrete topic.
    #[arg(long)]
    topic: Option<String>,
    /// Exact service name.
    #[arg(long)]
    service_name: Option<String>,
    /// Exact service protocol.
    #[arg(long)]
    service_protocol: Option<String>,
    /// Exact service port.
    #[arg(long)]
    service_port: Option<i64>,
    /// Page size (the node's default is 200).
    #[arg(long)]
    limit: Option<i64>,
    /// `next_page_token` of the previous page.
    #[arg(long)]
    page_token: Option<String>,
    #[command(flatten)]
    conn: ConnArgs,
}

/// Flags of `discovery summary`.
#[derive(Args, Debug)]
pub struct SummaryArgs {
    /// Namespace subtree.
    #[arg(long)]
    namespace: Option<String>,
    /// Exact service id.
    #[arg(long)]
    service_id: Option<String>,
    /// Viewer cluster (ignored by nodes for WebSocket clients).
    #[arg(long)]
    viewer_cluster_id: Option<String>,
    /// Viewer tenant.
    #[arg(long)]
    viewer_tenant_id: Option<String>,
    /// Scope: local, zone, region or global.
    #[arg(long)]
    scope: Option<String>,
    /// Include ingress URLs per source cluster (on by default when any
    /// --ingress-* flag is given).
    #[arg(long, overrides_with = "no_include_ingress")]
    include_ingress: bool,
    /// Do not include ingress URLs.
    #[arg(long)]
    no_include_ingress: bool,
    /// Most ingress URLs per cluster.
    #[arg(long)]
    ingress_limit: Option<i64>,
    /// Scope ingress nodes must be advertised at.
    #[arg(long)]
    ingress_scope: Option<String>,
    /// Capability ingress nodes must have, repeatable.
    #[arg(long = "ingress-capability")]
    ingress_capabilities: Vec<String>,
    /// Tag ingress nodes must have, repeatable.
    #[arg(long = "ingress-tag")]
    ingress_tags: Vec<String>,
    /// Page size.
    #[arg(long)]
    limit: Option<i64>,
    /// `next_page_token` of the previous page.
    #[arg(long)]
    page_token: Option<String>,
    #[command(flatten)]
    conn: ConnArgs,
}

/// Flags of `discovery watch`.
#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Watch summary exports (`summary_watch`) instead of catalog deltas.
    #[arg(long, overrides_with = "delta")]
    summary: bool,
    /// Watch catalog deltas (`catalog_watch`; the default).
    #[arg(long)]
    delta: bool,
    /// Scope of the watch (validated by the node; summary topics include it).
    #[arg(long)]
    scope: Option<String>,
    /// Namespace to watch (all when omitted).
    #[arg(long)]
    namespace: Option<String>,
    /// Cluster the watch is for.
    #[arg(long)]
    cluster_id: Option<String>,
    /// Viewer tenant.
    #[arg(long)]
    viewer_tenant_id: Option<String>,
    /// Stop after this many seconds (exit 0 even if nothing arrived).
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, allow_negative_numbers = true)]
    duration: Option<f64>,
    /// Stop after this many notifications.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,
    #[command(flatten)]
    conn: ConnArgs,
}

/// Flags of `discovery cluster-map`.
#[derive(Args, Debug)]
pub struct ClusterMapArgs {
    /// Scope: local (this node), zone (this cluster), region or global.
    #[arg(long)]
    scope: Option<String>,
    /// Plain prefix matched against node id, cluster, resources and
    /// capabilities (`namespace_filter`).
    #[arg(long = "namespace-filter", alias = "namespace")]
    namespace_filter: Option<String>,
    /// Required capability, repeatable.
    #[arg(long = "capability")]
    capabilities: Vec<String>,
    /// Required resource, repeatable.
    #[arg(long = "resource")]
    resources: Vec<String>,
    /// Only nodes of this cluster.
    #[arg(long)]
    cluster_id: Option<String>,
    /// Viewer tenant.
    #[arg(long)]
    viewer_tenant_id: Option<String>,
    /// Page size (the node's default is 200).
    #[arg(long)]
    limit: Option<i64>,
    /// `next_page_token` of the previous page.
    #[arg(long)]
    page_token: Option<String>,
    #[command(flatten)]
    conn: ConnArgs,
}

/// Filters shared by `rpc-list` and `rpc-describe`.
#[derive(Args, Debug)]
pub struct RpcFilterArgs {
    /// Namespace subtree.
    #[arg(long)]
    namespace: Option<String>,
    /// Scope: local, zone, region or global.
    #[arg(long)]
    scope: Option<String>,
    /// Viewer cluster (ignored by nodes for WebSocket clients).
    #[arg(long)]
    viewer_cluster_id: Option<String>,
    /// Viewer tenant.
    #[arg(long)]
    viewer_tenant_id: Option<String>,
    /// Required node capability, repeatable.
    #[arg(long = "capability")]
    capabilities: Vec<String>,
    /// Required resource, repeatable.
    #[arg(long = "resource")]
    resources: Vec<String>,
    /// Required tag, repeatable.
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Only functions of this cluster.
    #[arg(long)]
    cluster_id: Option<String>,
    /// Only functions of this node.
    #[arg(long)]
    node_id: Option<String>,
    /// Exact function name.
    #[arg(long)]
    function_name: Option<String>,
    /// Exact function id.
    #[arg(long)]
    function_id: Option<String>,
    /// Version constraint, e.g. ">=1.0.0".
    #[arg(long)]
    version_constraint: Option<String>,
    /// Case-insensitive text search over name, namespace, summary, id.
    #[arg(long)]
    query: Option<String>,
    /// Page size.
    #[arg(long)]
    limit: Option<i64>,
    /// `next_page_token` of the previous page.
    #[arg(long)]
    page_token: Option<String>,
}

impl RpcFilterArgs {
    fn payload(&self) -> Payload {
        Payload::new()
            .str("namespace", &self.namespace)
            .str("scope", &self.scope)
            .str("viewer_cluster_id", &self.viewer_cluster_id)
            .str("viewer_tenant_id", &self.viewer_tenant_id)
            .list("capabilities", &self.capabilities)
            .list("resources", &self.resources)
            .list("tags", &self.tags)
            .str("cluster_id", &self.cluster_id)
            .str("node_id", &self.node_id)
            .str("function_name", &self.function_name)
            .str("function_id", &self.function_id)
            .str("version_constraint", &self.version_constraint)
            .str("query", &self.query)
            .int("limit", self.limit)
            .str("page_token", &self.page_token)
    }
}

/// Flags of `discovery rpc-list`.
#[derive(Args, Debug)]
pub struct RpcListArgs {
    #[command(flatten)]
    filter: RpcFilterArgs,
    #[command(flatten)]
    conn: ConnArgs,
}

/// Flags of `discovery rpc-describe`.
#[derive(Args, Debug)]
pub struct RpcDescribeArgs {
    #[command(flatten)]
    filter: RpcFilterArgs,
    /// auto (catalog, then ask nodes), local, catalog or scatter.
    #[arg(long)]
    mode: Option<String>,
    /// full (with specs) or summary.
    #[arg(long)]
    detail_level: Option<String>,
    /// Only these spec digests, repeatable.
    #[arg(long = "spec-digest")]
    spec_digests: Vec<String>,
    /// Only these function names, repeatable.
    #[arg(long = "function-names")]
    function_names: Vec<String>,
    /// Only these function ids, repeatable.
    #[arg(long = "function-ids")]
    function_ids: Vec<String>,
    /// Most nodes asked in scatter mode.
    #[arg(long)]
    max_nodes: Option<i64>,
    /// Per-node timeout of scatter lookups, seconds.
    #[arg(long)]
    timeout_seconds: Option<f64>,
    #[command(flatten)]
    conn: ConnArgs,
}

/// Flags of `discovery rpc-report`.
#[derive(Args, Debug)]
pub struct RpcReportArgs {
    /// Namespace subtree.
    #[arg(long)]
    namespace: Option<String>,
    /// Scope: local, zone, region or global.
    #[arg(long)]
    scope: Option<String>,
    /// Viewer cluster (ignored by nodes for WebSocket clients).
    #[arg(long)]
    viewer_cluster_id: Option<String>,
    /// Viewer tenant.
    #[arg(long)]
    viewer_tenant_id: Option<String>,
    #[command(flatten)]
    conn: ConnArgs,
}

/// Runs a discovery command.
pub async fn run(cmd: DiscoveryCommand) -> Result<(), CliError> {
    match cmd {
        DiscoveryCommand::Query(a) => query(a).await,
        DiscoveryCommand::Summary(a) => summary(a).await,
        DiscoveryCommand::Watch(a) => watch(a).await,
        DiscoveryCommand::ClusterMap(a) => cluster_map(a).await,
        DiscoveryCommand::Policy {
            command:
                PolicyCommand::Status {
                    namespace,
                    viewer_cluster_id,
                    viewer_tenant_id,
                    conn,
                },
        } => {
            let payload = Payload::new()
                .str("namespace", &namespace)
                .str("viewer_cluster_id", &viewer_cluster_id)
                .str("viewer_tenant_id", &viewer_tenant_id);
            show(&conn, "namespace_status", payload).await
        }
        DiscoveryCommand::CacheStats { conn } => {
            show(&conn, "resolver_cache_stats", Payload::new()).await
        }
        DiscoveryCommand::Resync { conn } => show(&conn, "resolver_resync", Payload::new()).await,
        DiscoveryCommand::AccessAudit { limit, conn } => {
            show(
                &conn,
                "discovery_access_audit",
                Payload::new().int("limit", limit),
            )
            .await
        }
        DiscoveryCommand::Lag { mon } => monitor_cmd::lag(&mon),
        DiscoveryCommand::Status { mon } => monitor_cmd::status(&mon),
        DiscoveryCommand::RpcList(a) => {
            let result = a.conn.call("rpc_list", a.filter.payload()).await?;
            print_rpcs(&a.conn, "rpc_list", &result, false)
        }
        DiscoveryCommand::RpcDescribe(a) => {
            let payload = a
                .filter
                .payload()
                .str("mode", &a.mode)
                .str("detail_level", &a.detail_level)
                .list("spec_digests", &a.spec_digests)
                .list("function_names", &a.function_names)
                .list("function_ids", &a.function_ids)
                .int("max_nodes", a.max_nodes)
                .float("timeout_seconds", a.timeout_seconds);
            let result = a.conn.call("rpc_describe", payload).await?;
            print_rpcs(&a.conn, "rpc_describe", &result, true)
        }
        DiscoveryCommand::RpcReport(a) => {
            let payload = Payload::new()
                .str("namespace", &a.namespace)
                .str("scope", &a.scope)
                .str("viewer_cluster_id", &a.viewer_cluster_id)
                .str("viewer_tenant_id", &a.viewer_tenant_id);
            let result = a.conn.call("rpc_report", payload).await?;
            expect_object("rpc_report", &result)?;
            if a.conn.json {
                print_json(&result);
            } else {
                print!("{}", rpc_report_text(&result));
            }
            Ok(())
        }
    }
}

async fn query(a: QueryArgs) -> Result<(), CliError> {
    let payload = Payload::new()
        .value("entry_type", Value::String(a.entry_type.clone()))
        .str("namespace", &a.namespace)
        .str("scope", &a.scope)
        .str("viewer_cluster_id", &a.viewer_cluster_id)
        .str("viewer_tenant_id", &a.viewer_tenant_id)
        .list("capabilities", &a.capabilities)
        .list("resources", &a.resources)
        .list("tags", &a.tags)
        .str("cluster_id", &a.cluster_id)
        .str("node_id", &a.node_id)
        .str("function_name", &a.function_name)
        .str("function_id", &a.function_id)
        .str("version_constraint", &a.version_constraint)
        .str("queue_name", &a.queue_name)
        .str("topic", &a.topic)
        .str("service_name", &a.service_name)
        .str("service_protocol", &a.service_protocol)
        .int("service_port", a.service_port)
        .int("limit", a.limit)
        .str("page_token", &a.page_token);
    let result = a.conn.call("catalog_query", payload).await?;
    expect_object("catalog_query", &result)?;
    if a.conn.json {
        print_json(&result);
        return Ok(());
    }
    let entry_type = result
        .get("entry_type")
        .and_then(Value::as_str)
        .unwrap_or(&a.entry_type)
        .to_string();
    let items = result
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    print!("{}", entries_table(&entry_type, &items));
    print_page_footer(items.len(), &format!("entries ({entry_type})"), &result);
    Ok(())
}

/// The table of `catalog_query` items of one entry type.
pub fn entries_table(entry_type: &str, items: &[Value]) -> String {
    if items.is_empty() {
        return format!("No {entry_type} entries.\n");
    }
    let mut t = match entry_type {
        "nodes" => Table::new(&[
            "NODE_ID",
            "CLUSTER",
            "REGION",
            "SCOPE",
            "CAPABILITIES",
            "RESOURCES",
        ]),
        "functions" => Table::new(&["NAME", "VERSION", "NODE", "CLUSTER", "SCOPE", "TAGS"]),
        "services" => return services_table(items, false),
        "queues" => Table::new(&["QUEUE", "NODE", "CLUSTER", "HEALTH", "SCOPE", "TAGS"]),
        "topics" => Table::new(&["SUBSCRIPTION", "PATTERNS", "NODE", "CLUSTER", "SCOPE"]),
        "caches" => Table::new(&["ROLE", "NODE", "CLUSTER", "SCOPE"]),
        "cache_profiles" => Table::new(&[
            "NODE",
            "CLUSTER",
            "REGION",
            "CAPACITY_MB",
            "UTILIZATION%",
            "LATENCY_MS",
        ]),
        _ => return render::object_table(items).render(),
    };
    for e in items {
        let row = match entry_type {
            "nodes" => vec![
                field(e, "node_id"),
                field(e, "cluster_id"),
                field(e, "region"),
                field(e, "scope"),
                field(e, "capabilities"),
                field(e, "resources"),
            ],
            "functions" => vec![
                at(e, "/identity/name"),
                at(e, "/identity/version"),
                field(e, "node_id"),
                field(e, "cluster_id"),
                field(e, "scope"),
                field(e, "tags"),
            ],
            "queues" => vec![
                field(e, "queue_name"),
                field(e, "node_id"),
                field(e, "cluster_id"),
                field(e, "health"),
                field(e, "scope"),
                field(e, "tags"),
            ],
            "topics" => vec![
                field(e, "subscription_id"),
                field(e, "patterns"),
                field(e, "node_id"),
                field(e, "cluster_id"),
                field(e, "scope"),
            ],
            "caches" => vec![
                field(e, "role"),
                field(e, "node_id"),
                field(e, "cluster_id"),
                field(e, "scope"),
            ],
            _ => vec![
                field(e, "node_id"),
                field(e, "cluster_id"),
                field(e, "region"),
                field(e, "capacity_mb"),
                field(e, "utilization_percent"),
                field(e, "avg_latency_ms"),
            ],
        };
        t.row(row);
    }
    t.render()
}

async fn summary(a: SummaryArgs) -> Result<(), CliError> {
    let ingress_flag_given = a.ingress_limit.is_some()
        || a.ingress_scope.is_some()
        || !a.ingress_capabilities.is_empty()
        || !a.ingress_tags.is_empty();
    let include_ingress = if a.no_include_ingress {
        false
    } else {
        a.include_ingress || ingress_flag_given
    };
    let payload = Payload::new()
        .str("scope", &a.scope)
        .str("namespace", &a.namespace)
        .str("service_id", &a.service_id)
        .str("viewer_cluster_id", &a.viewer_cluster_id)
        .str("viewer_tenant_id", &a.viewer_tenant_id)
        .value("include_ingress", Value::Bool(include_ingress))
        .int("ingress_limit", a.ingress_limit)
        .str("ingress_scope", &a.ingress_scope)
        .list("ingress_capabilities", &a.ingress_capabilities)
        .list("ingress_tags", &a.ingress_tags)
        .int("limit", a.limit)
        .str("page_token", &a.page_token);
    let result = a.conn.call("summary_query", payload).await?;
    expect_object("summary_query", &result)?;
    if a.conn.json {
        print_json(&result);
        return Ok(());
    }
    let items = result
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if items.is_empty() {
        println!("No summaries.");
    } else {
        let mut t = Table::new(&[
            "NAMESPACE",
            "SERVICE_ID",
            "SCOPE",
            "ENDPOINTS",
            "REGIONS",
            "HEALTH",
            "SOURCE_CLUSTER",
        ]);
        for s in &items {
            t.row(vec![
                field(s, "namespace"),
                field(s, "service_id"),
                field(s, "scope"),
                field(s, "endpoint_count"),
                field(s, "regions"),
                field(s, "health_band"),
                field(s, "source_cluster"),
            ]);
        }
        print!("{}", t.render());
    }
    if let Some(ingress) = result.get("ingress").and_then(Value::as_object) {
        for (cluster, urls) in ingress {
            println!("ingress {cluster}: {}", render::cell(urls));
        }
    }
    print_page_footer(items.len(), "summaries", &result);
    Ok(())
}

async fn cluster_map(a: ClusterMapArgs) -> Result<(), CliError> {
    let payload = Payload::new()
        .str("scope", &a.scope)
        .str("namespace_filter", &a.namespace_filter)
        .str("viewer_tenant_id", &a.viewer_tenant_id)
        .list("capabilities", &a.capabilities)
        .list("resources", &a.resources)
        .str("cluster_id", &a.cluster_id)
        .int("limit", a.limit)
        .str("page_token", &a.page_token);
    let result = a.conn.call("cluster_map_v2", payload).await?;
    expect_object("cluster_map_v2", &result)?;
    if a.conn.json {
        print_json(&result);
        return Ok(());
    }
    let nodes = result
        .get("nodes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    println!(
        "cluster {} (as seen by this node)",
        field(&result, "cluster_id")
    );
    print!("{}", cluster_map_table(&nodes));
    print_page_footer(nodes.len(), "nodes", &result);
    Ok(())
}

/// The table of `cluster_map_v2` nodes.
pub fn cluster_map_table(nodes: &[Value]) -> String {
    if nodes.is_empty() {
        return "No nodes.\n".into();
    }
    let mut t = Table::new(&[
        "NODE_ID",
        "CLUSTER",
        "REGION",
        "SCOPE",
        "CAPABILITIES",
        "LOAD",
        "STATUS",
        "ADVERTISED_URLS",
    ]);
    for n in nodes {
        t.row(vec![
            field(n, "node_id"),
            field(n, "cluster_id"),
            field(n, "region"),
            field(n, "scope"),
            field(n, "capabilities"),
            at(n, "/load/load_score"),
            at(n, "/load/status"),
            field(n, "advertised_urls"),
        ]);
    }
    t.render()
}

fn print_rpcs(conn: &ConnArgs, fun: &str, result: &Value, describe: bool) -> Result<(), CliError> {
    expect_object(fun, result)?;
    if conn.json {
        print_json(result);
        return Ok(());
    }
    let items = result
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if items.is_empty() {
        println!("No RPCs.");
    } else {
        let mut headers = vec!["NAME", "VERSION", "NAMESPACE", "NODE", "CLUSTER", "SCOPE"];
        if describe {
            headers.push("PARAMS");
        }
        headers.push("SUMMARY");
        let mut t = Table::new(&headers);
        for i in &items {
            let mut row = vec![
                at(i, "/identity/name"),
                at(i, "/identity/version"),
                field(i, "namespace"),
                field(i, "node_id"),
                field(i, "cluster_id"),
                field(i, "scope"),
            ];
            if describe {
                let params = i
                    .pointer("/spec/parameters")
                    .and_then(Value::as_array)
                    .map(|ps| {
                        ps.iter()
                            .map(|p| render::field(p, "name"))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "-".into());
                row.push(params);
            }
            // MPREG's list item carries the summary text; mpreg-rs nodes
            // send the whole RpcSpecSummary object.
            let summary = match i.get("summary") {
                Some(Value::Object(o)) => o.get("summary").map_or("-".into(), render::cell),
                Some(v) => render::cell(v),
                None => "-".into(),
            };
            row.push(summary);
            t.row(row);
        }
        print!("{}", t.render());
    }
    if let Some(errors) = result.get("errors").and_then(Value::as_array) {
        for e in errors {
            println!(
                "error from {} ({}): {}",
                field(e, "node_id"),
                field(e, "cluster_id"),
                field(e, "error")
            );
        }
    }
    print_page_footer(items.len(), "RPCs", result);
    Ok(())
}

/// `rpc_report` for people: the total and one table per count kind.
pub fn rpc_report_text(result: &Value) -> String {
    let mut out = format!("total functions: {}\n", field(result, "total_functions"));
    for (key, title) in [
        ("namespace_counts", "NAMESPACE"),
        ("cluster_counts", "CLUSTER"),
        ("tag_counts", "TAG"),
    ] {
        let counts = result
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        out.push('\n');
        if counts.is_empty() {
            out.push_str(&format!("{title}: none\n"));
            continue;
        }
        let mut t = Table::new(&[title, "COUNT"]);
        for c in &counts {
            t.row(vec![field(c, "key"), field(c, "count")]);
        }
        out.push_str(&t.render());
    }
    out
}

async fn watch(a: WatchArgs) -> Result<(), CliError> {
    let fun = if a.summary && !a.delta {
        "summary_watch"
    } else {
        "catalog_watch"
    };
    let payload = Payload::new()
        .str("scope", &a.scope)
        .str("namespace", &a.namespace)
        .str("cluster_id", &a.cluster_id)
        .str("viewer_tenant_id", &a.viewer_tenant_id);
    let mut client = a.conn.connect().await?;
    let info = call(&mut client, fun, payload.into_args(), &Envelope::default()).await?;
    let topic = info
        .get("topic")
        .and_then(Value::as_str)
        .ok_or_else(|| CliError::Failed(format!("{fun} returned no topic")))?
        .to_string();

    let subscription_id = mpreg_client::fresh_id();
    let u = mpreg_client::fresh_id();
    let subscribe = json!({
        "role": "pubsub-subscribe",
        "u": u,
        "subscription": {
            "subscription_id": subscription_id,
            "patterns": [{"pattern": topic, "exact_match": !topic.contains(['*', '#'])}],
            "subscriber": format!("mpreg-cli-{subscription_id}"),
            "created_at": render::now_epoch(),
            "get_backlog": false,
            "backlog_seconds": 300,
        },
    });
    let ack = client.request(&u, subscribe).await?;
    if ack.get("success").and_then(Value::as_bool) != Some(true) {
        let why = ack
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no reason given");
        return Err(CliError::Failed(format!(
            "subscribing to {topic} was refused: {why}"
        )));
    }
    if !a.conn.json {
        let until = match (a.duration, a.count) {
            (Some(d), Some(c)) => format!("for {d}s or {c} notification(s)"),
            (Some(d), None) => format!("for {d}s"),
            (None, Some(c)) => format!("for {c} notification(s)"),
            (None, None) => "until Ctrl-C".into(),
        };
        eprintln!("watching {topic} {until}");
    }

    let deadline = a
        .duration
        .map(|d| Instant::now() + Duration::from_secs_f64(d));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut received = 0u64;
    let outcome: Result<(), CliError> = loop {
        if a.count.is_some_and(|c| received >= c) {
            break Ok(());
        }
        let wait = match deadline {
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break Ok(());
                }
                left
            }
            None => Duration::from_secs(3600),
        };
        let next = tokio::select! {
            m = client.next_message(wait) => m,
            _ = &mut ctrl_c => break Ok(()),
        };
        match next {
            Ok(Some(msg)) => {
                if msg.get("role").and_then(Value::as_str) != Some("pubsub-notification")
                    || msg.get("subscription_id").and_then(Value::as_str)
                        != Some(subscription_id.as_str())
                {
                    continue;
                }
                let message = msg.get("message").cloned().unwrap_or(Value::Null);
                let printed = json!({
                    "topic": message.get("topic").cloned().unwrap_or(Value::Null),
                    "timestamp": message.get("timestamp").cloned().unwrap_or(Value::Null),
                    "payload": message.get("payload").cloned().unwrap_or(Value::Null),
                });
                if a.conn.json {
                    println!("{printed}");
                } else {
                    println!("{}", notification_line(&printed));
                }
                received += 1;
            }
            Ok(None) => {}
            Err(e) => break Err(CliError::Failed(format!("watch of {topic} ended: {e}"))),
        }
    };
    if outcome.is_ok() {
        let u = mpreg_client::fresh_id();
        let unsubscribe = json!({
            "role": "pubsub-unsubscribe",
            "subscription_id": subscription_id,
            "u": u,
        });
        if let Err(e) = client.request(&u, unsubscribe).await {
            eprintln!("warning: unsubscribing from {topic} failed: {e}");
        }
    }
    client.close().await;
    outcome
}

/// One notification for people: time, topic, and what it says.
pub fn notification_line(n: &Value) -> String {
    let time = n
        .get("timestamp")
        .and_then(Value::as_f64)
        .map(render::timestamp)
        .unwrap_or_else(|| "-".into());
    let topic = field(n, "topic");
    let payload = n.get("payload").unwrap_or(&Value::Null);
    format!("{time}  {topic}  {}", describe_payload(payload))
}

fn describe_payload(p: &Value) -> String {
    let namespaces = p
        .get("namespaces")
        .map(render::cell)
        .unwrap_or_else(|| "-".into());
    let source = p
        .get("source_node")
        .map(render::cell)
        .unwrap_or_else(|| "-".into());
    if let Some(counts) = p.get("counts").and_then(Value::as_object) {
        let mut changes = Vec::new();
        for (k, v) in counts {
            let n = v.as_i64().unwrap_or(0);
            if n == 0 {
                continue;
            }
            if let Some(kind) = k.strip_suffix("_added") {
                changes.push(format!("+{n} {kind}"));
            } else if let Some(kind) = k.strip_suffix("_removed") {
                changes.push(format!("-{n} {kind}"));
            }
        }
        let changes = if changes.is_empty() {
            "no changes (refresh)".to_string()
        } else {
            changes.join(" ")
        };
        return format!("{changes}  namespaces={namespaces}  from {source}");
    }
    if let Some(summaries) = p.get("summaries").and_then(Value::as_array) {
        return format!(
            "{} summar{}  scope={}  namespaces={namespaces}  from {source}",
            summaries.len(),
            if summaries.len() == 1 { "y" } else { "ies" },
            field(p, "scope"),
        );
    }
    p.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_notification_line() {
        let n = json!({"topic": "mpreg.discovery.delta", "timestamp": 0.0, "payload": {
            "delta": {}, "counts": {"functions_added": 2, "functions_removed": 0, "nodes_removed": 1},
            "namespaces": ["svc.market"], "source_node": "ws://127.0.0.1:1"}});
        assert_eq!(
            notification_line(&n),
            "1970-01-01 00:00:00.000Z  mpreg.discovery.delta  +2 functions -1 nodes  \
             namespaces=svc.market  from ws://127.0.0.1:1"
        );
        let s = json!({"topic": "t", "timestamp": 0.0, "payload": {"summaries": [{}],
            "namespaces": ["a", "b"], "source_node": "n", "scope": "global"}});
        assert!(notification_line(&s).ends_with("1 summary  scope=global  namespaces=a,b  from n"));
        let other = json!({"topic": "t", "timestamp": null, "payload": 5});
        assert_eq!(notification_line(&other), "-  t  5");
    }

    #[test]
    fn entry_tables() {
        let nodes = vec![json!({"node_id": "ws://127.0.0.1:7", "cluster_id": "c",
            "scope": "zone", "capabilities": ["rpc"], "resources": []})];
        let out = entries_table("nodes", &nodes);
        assert!(out.starts_with("NODE_ID"), "{out}");
        assert!(
            out.contains("ws://127.0.0.1:7  c        -       zone   rpc"),
            "{out}"
        );
        assert_eq!(entries_table("queues", &[]), "No queues entries.\n");
        let report = rpc_report_text(&json!({"total_functions": 3,
            "namespace_counts": [{"key": "svc", "count": 3}], "cluster_counts": [], "tag_counts": []}));
        assert!(
            report.contains("NAMESPACE  COUNT\nsvc        3\n"),
            "{report}"
        );
        assert!(report.contains("TAG: none"), "{report}");
    }
}
