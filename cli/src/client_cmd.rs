//! `mpreg client ...`: MPREG's client commands (`client_protocol.md` §7).

use clap::{Args, Subcommand};
use serde_json::{Map, Value};

use crate::common::{
    expect_array, expect_object, print_json, CliError, ConnArgs, Envelope, Payload,
};
use crate::dns_label;
use crate::render::{self, age, cell, field, now_epoch, Table};

/// `mpreg client` subcommands.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Call any RPC and print its result.
    ///
    /// Each ARG is parsed as JSON when it is valid JSON, else sent as a
    /// string: `mpreg client call echo '"hi"'` prints `hi`,
    /// `mpreg client call catalog_query '{"entry_type":"nodes"}'` prints the
    /// query result. A string result is printed as is, anything else as
    /// pretty JSON (`--json` prints strings as JSON too).
    ///
    /// Runbook: every check that names an RPC directly (e.g. "Resolver Or
    /// Hub Outage": `cluster_map_v2` to locate alternate ingress URLs).
    Call {
        /// RPC name, e.g. echo, list_peers, catalog_query, cluster_map_v2.
        fun: String,
        /// Positional arguments (JSON, or plain strings).
        args: Vec<String>,
        /// Resource constraint sent in the envelope's `locs` (repeatable).
        #[arg(long = "locs", value_name = "LOC")]
        locs: Vec<String>,
        /// Forward the call to this cluster (envelope `target_cluster`).
        #[arg(long, value_name = "CLUSTER")]
        target_cluster: Option<String>,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// List the node's live peers (`list_peers`): URL, cluster, region,
    /// scope, status, last seen, function count and load score.
    ///
    /// Runbook: "Cluster Map Missing Nodes" (validate `list_peers` output and
    /// fabric gossip convergence) and "Fabric Churn Recovery" (departed
    /// peers must not be listed).
    ListPeers {
        /// Only peers visible at this scope: local (none), zone (own
        /// cluster), region or global (all).
        #[arg(long)]
        scope: Option<String>,
        /// Only peers of this cluster.
        #[arg(long)]
        cluster_id: Option<String>,
        /// Ask another cluster (envelope `target_cluster`).
        #[arg(long, value_name = "CLUSTER")]
        target_cluster: Option<String>,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Show the resolver cache: entry counts per kind, delta/seed/prune
    /// statistics and query-cache hits (`resolver_cache_stats`).
    ///
    /// Runbook: "Resolver Cache Stale Or Empty" (low entry counts after
    /// expected propagation). Same as `mpreg discovery cache-stats`.
    ResolverCacheStats {
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Re-seed the resolver cache from the live fabric catalog
    /// (`resolver_resync`) and show the counts after the seed.
    ///
    /// Runbook: "Resolver Cache Stale Or Empty" (trigger a resync when
    /// deltas fall behind). Same as `mpreg discovery resync`.
    ResolverResync {
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Register a service on the node (`dns_register`); it is advertised in
    /// the catalog and served by the DNS gateway. Shows the registration.
    ///
    /// Runbook: "DNS Interoperability" (records are derived from the
    /// routing catalog).
    DnsRegister {
        #[command(flatten)]
        key: DnsKeyArgs,
        /// Target host or address, repeatable (default: the node's host).
        #[arg(long = "target")]
        targets: Vec<String>,
        /// Tag, repeatable.
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Capability, repeatable.
        #[arg(long = "capability")]
        capabilities: Vec<String>,
        /// Metadata `key=value`, repeatable (value parsed as JSON when it is a
        /// JSON scalar; a bare `key` means `key=true`).
        #[arg(long = "metadata", value_name = "KEY=VALUE")]
        metadata: Vec<String>,
        /// SRV priority.
        #[arg(long, default_value_t = 0)]
        priority: i64,
        /// SRV weight.
        #[arg(long, default_value_t = 0)]
        weight: i64,
        /// Scope to advertise the service at (local, zone, region, global).
        #[arg(long)]
        scope: Option<String>,
        /// Seconds the advertisement lives (default: the catalog TTL).
        #[arg(long, value_name = "SECONDS")]
        ttl: Option<f64>,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Remove a service registration of this node (`dns_unregister`) and
    /// show whether it existed.
    ///
    /// Runbook: "DNS Interoperability".
    DnsUnregister {
        #[command(flatten)]
        key: DnsKeyArgs,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// List registered services visible to this node (`dns_list`): name,
    /// namespace, protocol, port, targets, node and scope.
    ///
    /// Runbook: "DNS Interoperability" and "Policy Or Tenant Visibility
    /// Denials" (namespace policy and scope rules apply to DNS too).
    DnsList {
        #[command(flatten)]
        query: DnsQueryArgs,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Describe registered services (`dns_describe`): the same entries as
    /// dns-list, with metadata, priority and weight.
    ///
    /// Runbook: "DNS Interoperability".
    DnsDescribe {
        #[command(flatten)]
        query: DnsQueryArgs,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Print the DNS label of a node id (`b32-` + base32), for
    /// `<label>.node.<zone>` queries. Local, no node needed.
    ///
    /// Runbook: "DNS Interoperability".
    DnsNodeEncode {
        /// Node id, e.g. ws://127.0.0.1:6666 (at most 36 bytes).
        node_id: String,
        /// Print a JSON string.
        #[arg(long)]
        json: bool,
    },
    /// Print the node id a DNS node label names. Local, no node needed.
    ///
    /// Runbook: "DNS Interoperability".
    DnsNodeDecode {
        /// A `b32-...` label, or a plain `[a-z0-9-]+` label.
        label: String,
        /// Print a JSON string.
        #[arg(long)]
        json: bool,
    },
    /// Validate, apply, export or audit the namespace policy.
    ///
    /// Runbook: "Policy Or Tenant Visibility Denials" (review `visibility`
    /// and `visibility_tenants` rules) and "Summary Export Lag" (verify
    /// `allow_summaries` and `export_scopes`).
    NamespacePolicy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
}

/// The registry key of a DNS service registration.
#[derive(Args, Debug)]
pub struct DnsKeyArgs {
    /// Service name.
    #[arg(long, required = true)]
    name: String,
    /// Service namespace.
    #[arg(long, required = true)]
    namespace: String,
    /// Protocol (tcp, udp, ws, ...).
    #[arg(long, default_value = "tcp")]
    protocol: String,
    /// Port.
    #[arg(long, required = true)]
    port: i64,
}

/// Filters of `dns-list` / `dns-describe`.
#[derive(Args, Debug)]
pub struct DnsQueryArgs {
    /// Exact namespace.
    #[arg(long)]
    namespace: Option<String>,
    /// Exact service name.
    #[arg(long)]
    name: Option<String>,
    /// Exact protocol.
    #[arg(long)]
    protocol: Option<String>,
    /// Exact port.
    #[arg(long)]
    port: Option<i64>,
    /// Scope (local, zone, region, global).
    #[arg(long)]
    scope: Option<String>,
    /// Required tag, repeatable.
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Required capability, repeatable.
    #[arg(long = "capability")]
    capabilities: Vec<String>,
    /// Only services advertised by this cluster.
    #[arg(long)]
    cluster_id: Option<String>,
    /// Only services advertised by this node.
    #[arg(long)]
    node_id: Option<String>,
    /// Page size (the node's default is 200).
    #[arg(long)]
    limit: Option<i64>,
    /// `next_page_token` of the previous page.
    #[arg(long)]
    page_token: Option<String>,
}

impl DnsQueryArgs {
    fn payload(&self) -> Payload {
        Payload::new()
            .str("namespace", &self.namespace)
            .str("name", &self.name)
            .str("protocol", &self.protocol)
            .int("port", self.port)
            .str("scope", &self.scope)
            .list("tags", &self.tags)
            .list("capabilities", &self.capabilities)
            .str("cluster_id", &self.cluster_id)
            .str("node_id", &self.node_id)
            .int("limit", self.limit)
            .str("page_token", &self.page_token)
    }
}

/// `mpreg client namespace-policy` subcommands.
#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Check rules without applying them (`namespace_policy_validate`):
    /// shows `valid`, the rule count and every error.
    ///
    /// Runbook: "Policy Or Tenant Visibility Denials".
    Validate {
        #[command(flatten)]
        rules: RulesArgs,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Replace the node's namespace policy (`namespace_policy_apply`):
    /// shows whether it was applied and any validation errors.
    ///
    /// Runbook: "Policy Or Tenant Visibility Denials".
    Apply {
        #[command(flatten)]
        rules: RulesArgs,
        /// Turn the policy on.
        #[arg(long, overrides_with = "no_enabled")]
        enabled: bool,
        /// Turn the policy off.
        #[arg(long)]
        no_enabled: bool,
        /// Namespaces without a rule are visible.
        #[arg(long, overrides_with = "default_deny")]
        default_allow: bool,
        /// Namespaces without a rule are hidden.
        #[arg(long)]
        default_deny: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Show the live policy (`namespace_policy_export`): enabled,
    /// default_allow and every rule.
    ///
    /// Runbook: "Policy Or Tenant Visibility Denials" and "Summary Export Lag".
    Export {
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Show the policy change log (`namespace_policy_audit`): validate and
    /// apply events, oldest first.
    ///
    /// Runbook: "Policy Or Tenant Visibility Denials".
    Audit {
        /// Only the last N entries.
        #[arg(long)]
        limit: Option<i64>,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

/// Rules input of validate / apply.
#[derive(Args, Debug)]
pub struct RulesArgs {
    /// JSON file holding a list of rules or a single rule object.
    #[arg(long, required = true, value_name = "FILE")]
    rules_file: String,
    /// Who makes the change (recorded in the policy audit).
    #[arg(long)]
    actor: Option<String>,
}

impl RulesArgs {
    fn payload(&self) -> Result<Payload, CliError> {
        let text = std::fs::read_to_string(&self.rules_file).map_err(|e| {
            CliError::Failed(format!("cannot read rules file {}: {e}", self.rules_file))
        })?;
        let rules: Value = serde_json::from_str(&text).map_err(|e| {
            CliError::Failed(format!(
                "rules file {} is not valid JSON: {e}",
                self.rules_file
            ))
        })?;
        let rules = match rules {
            Value::Array(_) => rules,
            Value::Object(_) => Value::Array(vec![rules]),
            other => {
                return Err(CliError::Failed(format!(
                    "rules file {} must hold a list of rules or one rule object, not {}",
                    self.rules_file,
                    render::kind(&other)
                )))
            }
        };
        Ok(Payload::new()
            .value("rules", rules)
            .str("actor", &self.actor))
    }
}

/// Parses `--metadata` items as MPREG's CLI does: `key=value` with the key
/// trimmed (empty keys skipped), the value kept typed when it is a JSON
/// scalar and as the raw string otherwise; a bare `key` means `true`.
pub fn parse_metadata(items: &[String]) -> Map<String, Value> {
    let mut out = Map::new();
    for item in items {
        let (key, value) = match item.split_once('=') {
            Some((k, v)) => {
                let parsed = match serde_json::from_str::<Value>(v) {
                    Ok(j @ (Value::Bool(_) | Value::Number(_) | Value::String(_))) => j,
                    _ => Value::String(v.to_string()),
                };
                (k.trim(), parsed)
            }
            None => (item.trim(), Value::Bool(true)),
        };
        if !key.is_empty() {
            out.insert(key.to_string(), value);
        }
    }
    out
}

/// Runs a client command.
pub async fn run(cmd: ClientCommand) -> Result<(), CliError> {
    match cmd {
        ClientCommand::Call {
            fun,
            args,
            locs,
            target_cluster,
            conn,
        } => {
            let args: Vec<Value> = args
                .iter()
                .map(|a| serde_json::from_str(a).unwrap_or_else(|_| Value::String(a.clone())))
                .collect();
            let envelope = Envelope {
                locs,
                target_cluster,
            };
            let result = conn.call_with(&fun, args, &envelope).await?;
            match &result {
                Value::String(s) if !conn.json => println!("{s}"),
                other => print_json(other),
            }
            Ok(())
        }
        ClientCommand::ListPeers {
            scope,
            cluster_id,
            target_cluster,
            conn,
        } => {
            let payload = Payload::new()
                .str("scope", &scope)
                .str("cluster_id", &cluster_id);
            let envelope = Envelope {
                locs: Vec::new(),
                target_cluster,
            };
            let result = conn
                .call_with("list_peers", payload.into_args(), &envelope)
                .await?;
            let peers = expect_array("list_peers", &result)?;
            if conn.json {
                print_json(&result);
            } else {
                print!("{}", peers_table(peers));
            }
            Ok(())
        }
        ClientCommand::ResolverCacheStats { conn } => {
            show(&conn, "resolver_cache_stats", Payload::new()).await
        }
        ClientCommand::ResolverResync { conn } => {
            show(&conn, "resolver_resync", Payload::new()).await
        }
        ClientCommand::DnsRegister {
            key,
            targets,
            tags,
            capabilities,
            metadata,
            priority,
            weight,
            scope,
            ttl,
            conn,
        } => {
            let metadata = parse_metadata(&metadata);
            let mut payload = Payload::new()
                .value("name", Value::String(key.name))
                .value("namespace", Value::String(key.namespace))
                .value("protocol", Value::String(key.protocol))
                .int("port", Some(key.port))
                .list("targets", &targets)
                .str("scope", &scope)
                .list("tags", &tags)
                .list("capabilities", &capabilities)
                .int("priority", Some(priority))
                .int("weight", Some(weight))
                .float("ttl_seconds", ttl);
            if !metadata.is_empty() {
                payload = payload.value("metadata", Value::Object(metadata));
            }
            show(&conn, "dns_register", payload).await
        }
        ClientCommand::DnsUnregister { key, conn } => {
            let payload = Payload::new()
                .value("name", Value::String(key.name))
                .value("namespace", Value::String(key.namespace))
                .value("protocol", Value::String(key.protocol))
                .int("port", Some(key.port));
            show(&conn, "dns_unregister", payload).await
        }
        ClientCommand::DnsList { query, conn } => {
            services(&conn, "dns_list", query.payload(), false).await
        }
        ClientCommand::DnsDescribe { query, conn } => {
            services(&conn, "dns_describe", query.payload(), true).await
        }
        ClientCommand::DnsNodeEncode { node_id, json } => {
            let label = dns_label::encode(&node_id).map_err(CliError::Failed)?;
            print_string(&label, json);
            Ok(())
        }
        ClientCommand::DnsNodeDecode { label, json } => {
            let id = dns_label::decode(&label)
                .ok_or_else(|| CliError::Failed(format!("Invalid DNS node label: {label:?}")))?;
            print_string(&id, json);
            Ok(())
        }
        ClientCommand::NamespacePolicy { command } => run_policy(command).await,
    }
}

async fn run_policy(cmd: PolicyCommand) -> Result<(), CliError> {
    match cmd {
        PolicyCommand::Validate { rules, conn } => {
            show(&conn, "namespace_policy_validate", rules.payload()?).await
        }
        PolicyCommand::Apply {
            rules,
            enabled,
            no_enabled,
            default_allow,
            default_deny,
            conn,
        } => {
            let mut payload = rules.payload()?;
            if enabled || no_enabled {
                payload = payload.value("enabled", Value::Bool(enabled));
            }
            if default_allow || default_deny {
                payload = payload.value("default_allow", Value::Bool(default_allow));
            }
            show(&conn, "namespace_policy_apply", payload).await
        }
        PolicyCommand::Export { conn } => {
            show(&conn, "namespace_policy_export", Payload::new()).await
        }
        PolicyCommand::Audit { limit, conn } => {
            show(
                &conn,
                "namespace_policy_audit",
                Payload::new().int("limit", limit),
            )
            .await
        }
    }
}

fn print_string(s: &str, json: bool) {
    if json {
        println!("{}", Value::String(s.to_string()));
    } else {
        println!("{s}");
    }
}

/// Calls an RPC returning an object and prints it (`key: value` listing, or
/// JSON with `--json`).
pub async fn show(conn: &ConnArgs, fun: &str, payload: Payload) -> Result<(), CliError> {
    let result = conn.call(fun, payload).await?;
    expect_object(fun, &result)?;
    if conn.json {
        print_json(&result);
    } else {
        print!("{}", render::human(&result));
    }
    Ok(())
}

/// `dns_list` / `dns_describe`: a table of services.
async fn services(
    conn: &ConnArgs,
    fun: &str,
    payload: Payload,
    describe: bool,
) -> Result<(), CliError> {
    let result = conn.call(fun, payload).await?;
    expect_object(fun, &result)?;
    if conn.json {
        print_json(&result);
        return Ok(());
    }
    let items = result
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    print!("{}", services_table(&items, describe));
    print_page_footer(items.len(), "services", &result);
    Ok(())
}

/// The table of `list_peers`.
pub fn peers_table(peers: &[Value]) -> String {
    if peers.is_empty() {
        return "No peers.\n".into();
    }
    let now = now_epoch();
    let mut t = Table::new(&[
        "URL",
        "CLUSTER",
        "REGION",
        "SCOPE",
        "STATUS",
        "LAST SEEN",
        "FUNS",
        "LOAD",
    ]);
    for p in peers {
        let funs = p.get("funs").and_then(Value::as_array).map_or(0, Vec::len);
        t.row(vec![
            field(p, "url"),
            field(p, "cluster_id"),
            field(p, "region"),
            field(p, "scope"),
            field(p, "status"),
            age(p.get("last_seen").and_then(Value::as_f64), now),
            funs.to_string(),
            render::at(p, "/load/load_score"),
        ]);
    }
    format!("{}{} peer(s)\n", t.render(), t.len())
}

/// A table of ServiceEndpoints.
pub fn services_table(items: &[Value], describe: bool) -> String {
    if items.is_empty() {
        return "No services.\n".into();
    }
    let mut headers = vec![
        "NAMESPACE",
        "NAME",
        "PROTOCOL",
        "PORT",
        "TARGETS",
        "SCOPE",
        "NODE",
    ];
    if describe {
        headers.extend(["PRIORITY", "WEIGHT", "TAGS", "METADATA"]);
    }
    let mut t = Table::new(&headers);
    for s in items {
        let mut row = vec![
            field(s, "namespace"),
            field(s, "name"),
            field(s, "protocol"),
            field(s, "port"),
            field(s, "targets"),
            field(s, "scope"),
            field(s, "node_id"),
        ];
        if describe {
            let metadata = s
                .get("metadata")
                .and_then(Value::as_object)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", cell(v)))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| "-".into());
            row.extend([
                field(s, "priority"),
                field(s, "weight"),
                field(s, "tags"),
                metadata,
            ]);
        }
        t.row(row);
    }
    t.render()
}

/// `N <noun>` (a plural) plus the generation time and the next page token
/// when there is one.
pub fn print_page_footer(n: usize, noun: &str, result: &Value) {
    let mut line = format!("{n} {noun}");
    if let Some(at) = result.get("generated_at").and_then(Value::as_f64) {
        line.push_str(&format!(" at {}", render::timestamp(at)));
    }
    if let Some(token) = result.get("next_page_token").and_then(Value::as_str) {
        line.push_str(&format!("; more with --page-token {token}"));
    }
    println!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metadata_parsing() {
        let items: Vec<String> = [
            "tier=gold",
            " n = 5",
            "flag",
            "b=true",
            "=x",
            "l=[1,2]",
            "s=\"q\"",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let m = parse_metadata(&items);
        assert_eq!(
            Value::Object(m),
            json!({"tier": "gold", "n": 5, "flag": true, "b": true, "l": "[1,2]", "s": "q"})
        );
    }

    #[test]
    fn peer_table_has_urls() {
        let peers = vec![
            json!({"url": "ws://127.0.0.1:9", "cluster_id": "c", "funs": ["a", "b"],
            "status": "ok", "last_seen": null, "load": {"load_score": 1.0}}),
        ];
        let out = peers_table(&peers);
        assert!(out.contains("ws://127.0.0.1:9  c"), "{out}");
        assert!(out.ends_with("1 peer(s)\n"), "{out}");
        assert_eq!(peers_table(&[]), "No peers.\n");
    }
}
