//! Commands that read the node's monitoring HTTP endpoints
//! (`client_protocol.md` §4): `mpreg report ...`, `mpreg monitor ...`,
//! `mpreg discovery lag` and `mpreg discovery status`.

use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};
use ureq::tls::{parse_pem, PemItem, RootCerts, TlsConfig};

use crate::common::{parse_seconds, print_json, CliError};
use crate::render::{self, Table};

/// Flags of every command that reads the monitoring endpoint.
#[derive(Args, Debug, Clone)]
pub struct MonArgs {
    /// Monitoring endpoint URL, e.g. http://127.0.0.1:9101 (env
    /// MPREG_MONITORING_URL; the node prints it as MPREG_MONITORING_URL=).
    /// The node's WebSocket URL works too (ws://node:port, as the runbook
    /// writes it): the client port answers plain HTTP GETs of the same
    /// endpoints.
    #[arg(long, env = "MPREG_MONITORING_URL", value_name = "URL")]
    pub url: Option<String>,
    /// Seconds to wait for each HTTP response.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub timeout: f64,
    /// Print the raw JSON (stable field names) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The node's `monitoring_auth_token`, sent as `X-Monitoring-Token`
    /// (env MPREG_MONITORING_TOKEN).
    #[arg(
        long,
        env = "MPREG_MONITORING_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub monitoring_token: Option<String>,
    /// PEM file of the CA (or self-signed) certificate an `https://` or
    /// `wss://` node must present (env MPREG_TLS_CA_FILE); without it the
    /// public web roots are trusted.
    #[arg(long, env = "MPREG_TLS_CA_FILE", value_name = "FILE")]
    pub tls_ca_file: Option<String>,
}

impl MonArgs {
    /// The HTTP base URL: `--url`, else `MPREG_MONITORING_URL`, else the
    /// node's `MPREG_URL` (its client port answers the same GETs).
    fn base(&self) -> Result<String, CliError> {
        let fallback = std::env::var("MPREG_URL").ok();
        let url = [self.url.as_deref(), fallback.as_deref()]
            .into_iter()
            .flatten()
            .map(str::trim)
            .find(|u| !u.is_empty())
            .ok_or_else(|| {
                CliError::Usage("Provide --url or set MPREG_MONITORING_URL or MPREG_URL.".into())
            })?;
        Ok(http_base(url))
    }

    /// Which servers `https://` trusts: the CA file's certificates, or the
    /// public web roots.
    fn tls(&self) -> Result<TlsConfig, CliError> {
        let Some(path) = self.tls_ca_file.as_deref() else {
            return Ok(TlsConfig::default());
        };
        let problem = |why: String| CliError::Usage(format!("--tls-ca-file {path}: {why}"));
        let pem = std::fs::read(path).map_err(|e| problem(e.to_string()))?;
        let mut certs = Vec::new();
        for item in parse_pem(&pem) {
            if let PemItem::Certificate(cert) = item.map_err(|e| problem(e.to_string()))? {
                certs.push(cert);
            }
        }
        if certs.is_empty() {
            return Err(problem("holds no `BEGIN CERTIFICATE` block".into()));
        }
        Ok(TlsConfig::builder()
            .root_certs(RootCerts::Specific(std::sync::Arc::new(certs)))
            .build())
    }

    /// GETs `path` and returns the JSON body of a 200 answer.
    pub fn get(&self, path: &str) -> Result<Value, CliError> {
        let url = format!("{}{path}", self.base()?);
        let timeout = Duration::from_secs_f64(self.timeout);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .tls_config(self.tls()?)
            .build()
            .into();
        let mut request = agent.get(&url);
        if let Some(token) = self.monitoring_token.as_deref() {
            request = request.header("X-Monitoring-Token", token.trim());
        }
        let mut response = request.call().map_err(|e| match e {
            ureq::Error::Timeout(_) => {
                CliError::Failed(format!("no answer from {url} within {timeout:?}"))
            }
            ureq::Error::Io(io) => CliError::Failed(format!("cannot reach {url}: {io}")),
            other => CliError::Failed(format!(
                "GET {url} failed: {}",
                mpreg_client::tls::with_hint(other.to_string())
            )),
        })?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .read_to_string()
            .map_err(|e| CliError::Failed(format!("cannot read the answer of {url}: {e}")))?;
        let parsed: Option<Value> = serde_json::from_str(&body).ok();
        if status != 200 {
            let message = parsed
                .as_ref()
                .and_then(|v| v.get("message"))
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| body.chars().take(200).collect());
            let hint = match status {
                404 => " (the node does not serve this endpoint)",
                401 => " (pass the node's monitoring_auth_token with --monitoring-token or MPREG_MONITORING_TOKEN)",
                _ => "",
            };
            return Err(CliError::Failed(format!(
                "GET {url} answered HTTP {status}{hint}: {message}"
            )));
        }
        let value =
            parsed.ok_or_else(|| CliError::Failed(format!("GET {url} did not answer JSON")))?;
        if value.get("status").and_then(Value::as_str) == Some("error") {
            return Err(CliError::Failed(format!(
                "GET {url} reported an error: {}",
                render::field(&value, "message")
            )));
        }
        Ok(value)
    }
}

/// The HTTP base URL of `url`: a node's WebSocket URL (`ws://host:port`,
/// `wss://...`, any path) maps to `http(s)://` on the same host and port,
/// whose plain GETs the node answers with the monitoring endpoints; an
/// `http(s)://` URL is kept (without a trailing `/`).
pub fn http_base(url: &str) -> String {
    let lower = url.to_ascii_lowercase();
    let (scheme, rest) = if lower.starts_with("ws://") {
        ("http://", &url[5..])
    } else if lower.starts_with("wss://") {
        ("https://", &url[6..])
    } else {
        return url.trim_end_matches('/').to_string();
    };
    // The WebSocket path (MPREG clients connect to any path) is not part of
    // the monitoring base.
    let authority = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    format!("{scheme}{authority}")
}

/// Output format of the `report` commands (MPREG's `--output`).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// A table for people.
    Table,
    /// JSON.
    Json,
}

/// `mpreg report` subcommands.
#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Per-namespace summary export health (GET /discovery/summary):
    /// namespace, exports, summaries, last export count and time, sorted by
    /// summaries exported.
    ///
    /// Runbook: "Summary Export Lag" (which namespaces stopped exporting).
    NamespaceHealth {
        #[command(flatten)]
        mon: MonArgs,
        /// table or json.
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
        /// Only namespaces starting with this prefix.
        #[arg(long)]
        namespace: Option<String>,
        /// Most rows shown.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Delta and summary export lag (GET /discovery/lag): resolver and
    /// export enabled, `delta_lag_seconds`, `summary_export_lag_seconds`,
    /// last delta and export times.
    ///
    /// Runbook: "Summary Export Lag" (`summary_export_lag_seconds`
    /// increasing). Same data as `mpreg discovery lag`.
    ExportLag {
        #[command(flatten)]
        mon: MonArgs,
        /// table or json.
        #[arg(long, value_enum, default_value = "table")]
        output: Output,
    },
}

/// `mpreg monitor` subcommands.
#[derive(Subcommand, Debug)]
pub enum MonitorCommand {
    /// DNS gateway state and counters (GET /dns/metrics): ports, zones,
    /// queries, NXDOMAIN and error responses, latency.
    ///
    /// Runbook: "DNS Interoperability".
    Dns {
        #[command(flatten)]
        mon: MonArgs,
    },
    /// Poll the DNS gateway metrics every --interval seconds until Ctrl-C
    /// (or --count polls).
    ///
    /// Runbook: "DNS Interoperability".
    DnsWatch {
        #[command(flatten)]
        mon: MonArgs,
        /// Seconds between polls.
        #[arg(long, default_value = "5", value_parser = parse_seconds, allow_negative_numbers = true)]
        interval: f64,
        /// Stop after this many polls.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
    },
}

/// Runs a report command.
pub fn run_report(cmd: ReportCommand) -> Result<(), CliError> {
    match cmd {
        ReportCommand::NamespaceHealth {
            mon,
            output,
            namespace,
            limit,
        } => {
            let body = mon.get("/discovery/summary")?;
            let export = body.get("summary_export").cloned().unwrap_or(json!({}));
            let mut entries: Vec<Value> = export
                .get("per_namespace")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|e| {
                    let ns = e.get("namespace").and_then(Value::as_str).unwrap_or("");
                    !ns.is_empty() && namespace.as_deref().is_none_or(|p| ns.starts_with(p))
                })
                .collect();
            let exported = |e: &Value| e.get("summaries_exported").and_then(Value::as_i64);
            entries.sort_by(|a, b| {
                exported(b)
                    .unwrap_or(0)
                    .cmp(&exported(a).unwrap_or(0))
                    .then_with(|| render::field(a, "namespace").cmp(&render::field(b, "namespace")))
            });
            if let Some(n) = limit {
                entries.truncate(n);
            }
            if output == Output::Json || mon.json {
                print_json(&json!({"summary_export": export, "namespaces": entries}));
                return Ok(());
            }
            if entries.is_empty() {
                println!("No namespace exports.");
                return Ok(());
            }
            let mut t = Table::new(&[
                "NAMESPACE",
                "EXPORTS",
                "SUMMARIES",
                "LAST EXPORT COUNT",
                "LAST EXPORT AT",
            ]);
            for e in &entries {
                t.row(vec![
                    render::field(e, "namespace"),
                    render::field(e, "exports_total"),
                    render::field(e, "summaries_exported"),
                    render::field(e, "last_export_count"),
                    time_field(e, "last_export_at"),
                ]);
            }
            print!("{}", t.render());
            Ok(())
        }
        ReportCommand::ExportLag { mut mon, output } => {
            mon.json |= output == Output::Json;
            lag(&mon)
        }
    }
}

/// `discovery lag` / `report export-lag`: GET /discovery/lag.
pub fn lag(mon: &MonArgs) -> Result<(), CliError> {
    let body = mon.get("/discovery/lag")?;
    let lag = body.get("lag").cloned().unwrap_or(json!({}));
    if mon.json {
        print_json(&lag);
        return Ok(());
    }
    print!("{}", lag_table(&lag));
    Ok(())
}

/// The table of a DiscoveryLagStatus.
pub fn lag_table(lag: &Value) -> String {
    let mut t = Table::new(&["FIELD", "VALUE"]);
    let seconds = |k: &str| {
        lag.get(k)
            .and_then(Value::as_f64)
            .map(|s| format!("{s:.3}"))
            .unwrap_or_else(|| "n/a".into())
    };
    t.row(vec![
        "resolver_enabled".into(),
        render::field(lag, "resolver_enabled"),
    ]);
    t.row(vec![
        "summary_export_enabled".into(),
        render::field(lag, "summary_export_enabled"),
    ]);
    t.row(vec![
        "delta_lag_seconds".into(),
        seconds("delta_lag_seconds"),
    ]);
    t.row(vec![
        "summary_export_lag_seconds".into(),
        seconds("summary_export_lag_seconds"),
    ]);
    for k in [
        "last_delta_at",
        "last_seed_at",
        "last_summary_export_at",
        "generated_at",
    ] {
        t.row(vec![k.into(), time_field(lag, k)]);
    }
    t.render()
}

fn time_field(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_f64)
        .map(render::timestamp)
        .unwrap_or_else(|| "-".into())
}

/// `discovery status`: the four discovery endpoints at once.
pub fn status(mon: &MonArgs) -> Result<(), CliError> {
    let mut all = Map::new();
    for (key, path) in [
        ("summary", "/discovery/summary"),
        ("cache", "/discovery/cache"),
        ("policy", "/discovery/policy"),
        ("lag", "/discovery/lag"),
    ] {
        all.insert(key.into(), mon.get(path)?);
    }
    let all = Value::Object(all);
    if mon.json {
        print_json(&all);
        return Ok(());
    }
    let sections = [
        ("summary export", "/summary/summary_export"),
        ("resolver cache", "/cache/resolver_cache"),
        ("summary cache", "/cache/summary_cache"),
        ("policy", "/policy/policy"),
        ("lag", "/lag/lag"),
    ];
    for (i, (title, pointer)) in sections.iter().enumerate() {
        if i > 0 {
            println!();
        }
        println!("== {title}");
        match all.pointer(pointer) {
            Some(v) => print!("{}", render::human(v)),
            None => println!("(not reported)"),
        }
    }
    Ok(())
}

/// Runs a monitor command.
pub fn run_monitor(cmd: MonitorCommand) -> Result<(), CliError> {
    match cmd {
        MonitorCommand::Dns { mon } => dns_once(&mon),
        MonitorCommand::DnsWatch {
            mon,
            interval,
            count,
        } => {
            let mut polls = 0u64;
            loop {
                dns_once(&mon)?;
                polls += 1;
                if count.is_some_and(|c| polls >= c) {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_secs_f64(interval));
                if !mon.json {
                    println!();
                }
            }
        }
    }
}

fn dns_once(mon: &MonArgs) -> Result<(), CliError> {
    let body = mon.get("/dns/metrics")?;
    if mon.json {
        println!("{body}");
        return Ok(());
    }
    let gateway = body.get("dns_gateway").cloned().unwrap_or(json!({}));
    print!("{}", render::human(&gateway));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_table_fields() {
        let out = lag_table(&json!({"generated_at": 0.0, "resolver_enabled": false,
            "summary_export_enabled": true, "summary_export_lag_seconds": 1.5}));
        assert!(out.contains("summary_export_lag_seconds  1.500\n"), "{out}");
        assert!(out.contains("delta_lag_seconds           n/a\n"), "{out}");
        assert!(out.contains("last_delta_at               -\n"), "{out}");
    }

    #[test]
    fn websocket_urls_map_to_http_on_the_same_port() {
        assert_eq!(http_base("ws://127.0.0.1:6666"), "http://127.0.0.1:6666");
        assert_eq!(http_base("WS://node:7/any/path?x"), "http://node:7");
        assert_eq!(http_base("wss://node:443/"), "https://node:443");
        assert_eq!(http_base("http://127.0.0.1:9101/"), "http://127.0.0.1:9101");
        assert_eq!(http_base("https://m:1"), "https://m:1");
    }

    #[test]
    fn given_url_wins_and_is_mapped() {
        let mon = MonArgs {
            url: Some(" ws://127.0.0.1:9/ ".into()),
            timeout: 1.0,
            json: false,
            monitoring_token: None,
            tls_ca_file: None,
        };
        assert_eq!(mon.base().unwrap(), "http://127.0.0.1:9");
    }
}
