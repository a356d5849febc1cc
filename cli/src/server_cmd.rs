//! `mpreg server`: load settings (defaults < file < env < flags) and run.

use std::io::Write;

use clap::Args;
use mpreg_core::config;

/// Flags of `mpreg server`. Every flag is also a setting; see README.
#[derive(Args, Debug, Default)]
pub struct ServerArgs {
    /// Address to listen on (setting `host`).
    #[arg(long)]
    host: Option<String>,
    /// Port to listen on; 0 picks a free port (setting `port`, default 6666).
    #[arg(long)]
    port: Option<u16>,
    /// Node name, the publisher of its notifications (setting `name`).
    #[arg(long)]
    name: Option<String>,
    /// Cluster this node belongs to (setting `cluster_id`).
    #[arg(long)]
    cluster_id: Option<String>,
    /// Region this node advertises (setting `cache_region`).
    #[arg(long)]
    region: Option<String>,
    /// Scope this node advertises: local, zone, region or global (setting `scope`).
    #[arg(long)]
    scope: Option<String>,
    /// Seed peer URL, repeatable (setting `peers`).
    #[arg(long = "peer", value_name = "URL")]
    peers: Vec<String>,
    /// A single seed URL (setting `connect`).
    #[arg(long, value_name = "URL")]
    connect: Option<String>,
    /// Node resource, repeatable (setting `resources`).
    #[arg(long = "resource")]
    resources: Vec<String>,
    /// URL this node can be reached at by others, repeatable (setting `advertised_urls`).
    #[arg(long = "advertised-url", value_name = "URL")]
    advertised_urls: Vec<String>,
    /// PEM certificate chain for `wss://` clients (setting
    /// `client_tls_cert_file`; needs `--client-tls-key-file`).
    #[arg(long, value_name = "FILE")]
    client_tls_cert_file: Option<String>,
    /// PEM private key of that certificate (setting `client_tls_key_file`).
    #[arg(long, value_name = "FILE")]
    client_tls_key_file: Option<String>,
    /// Directory for persisted state (setting `data_dir`).
    #[arg(long)]
    data_dir: Option<String>,
    /// TOML settings file (an MPREG settings file with an [mpreg] table works too).
    #[arg(long, value_name = "FILE")]
    config: Option<String>,
    /// Runtime: tokio (standard, the default) or mio (one hand-rolled event
    /// loop; setting `runtime`).
    #[arg(long)]
    runtime: Option<String>,
    /// Log line format on stderr: `text` (the default) or `json` (one JSON
    /// object per line, for log shippers). `RUST_LOG` filters either.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// How `mpreg server` writes its log lines.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `target`, `fields`).
    Json,
}

impl ServerArgs {
    /// The flags that were given, as (setting, raw value) pairs.
    fn flag_pairs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                out.push((k.to_string(), v));
            }
        };
        put("host", self.host.clone());
        put("port", self.port.map(|p| p.to_string()));
        put("name", self.name.clone());
        put("cluster_id", self.cluster_id.clone());
        put("cache_region", self.region.clone());
        put("scope", self.scope.clone());
        put("connect", self.connect.clone());
        put("data_dir", self.data_dir.clone());
        put("client_tls_cert_file", self.client_tls_cert_file.clone());
        put("client_tls_key_file", self.client_tls_key_file.clone());
        put("runtime", self.runtime.clone());
        let list =
            |v: &Vec<String>| (!v.is_empty()).then(|| serde_json::to_string(v).unwrap_or_default());
        put("peers", list(&self.peers));
        put("resources", list(&self.resources));
        put("advertised_urls", list(&self.advertised_urls));
        out
    }
}

/// Loads settings and runs the node until SIGINT / SIGTERM.
pub fn run(args: ServerArgs) -> Result<(), String> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().init(),
    }
    let file = match &args.config {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config file {path}: {e}"))?,
        ),
        None => None,
    };
    let debug_scopes = debug_scopes_from_env();
    let env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("MPREG_"))
        .collect();
    let loaded =
        config::load(file.as_deref(), &env, &args.flag_pairs()).map_err(|e| e.to_string())?;
    for w in &loaded.warnings {
        tracing::warn!("{w}");
    }
    let mut settings = loaded.settings;
    for scope in debug_scopes {
        if !settings.log_debug_scopes.contains(&scope) {
            settings.log_debug_scopes.push(scope);
        }
    }
    let host = settings.host.clone();
    let tls = settings.client_tls_cert_file.is_some();
    let monitoring_host = settings
        .monitoring_host
        .clone()
        .unwrap_or_else(|| host.clone());
    // `MPREG_DNS_PORT=` (when the DNS gateway runs),
    // `MPREG_MONITORING_URL=` (when monitoring runs) and `MPREG_TLS_URL=`
    // (with client TLS) come first: `MPREG_URL=`
    // is the last line, printed once the node is ready.
    let print_ready = move |addr: std::net::SocketAddr,
                            dns: Option<std::net::SocketAddr>,
                            monitoring: Option<std::net::SocketAddr>| {
        let mut out = std::io::stdout().lock();
        if let Some(dns) = dns {
            let _ = writeln!(out, "MPREG_DNS_PORT={}", dns.port());
        }
        if let Some(m) = monitoring {
            let _ = writeln!(
                out,
                "MPREG_MONITORING_URL=http://{monitoring_host}:{}",
                m.port()
            );
        }
        if tls {
            // The same port serves both; clients choose.
            let _ = writeln!(out, "MPREG_TLS_URL=wss://{host}:{}", addr.port());
        }
        let _ = writeln!(out, "MPREG_URL=ws://{host}:{}", addr.port());
        let _ = out.flush();
    };
    match settings.runtime.as_str() {
        "tokio" => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
            rt.block_on(mpreg_tokio::run_with(
                settings,
                seed(),
                mpreg_tokio::Shutdown::new(),
                move |ready: mpreg_tokio::Ready| {
                    print_ready(ready.addr, ready.dns, ready.monitoring)
                },
            ))
            .map_err(|e| e.to_string())
        }
        mpreg_mio::RUNTIME_NAME => mpreg_mio::run_with(
            settings,
            seed(),
            mpreg_mio::Shutdown::new(),
            move |ready: mpreg_mio::Ready| print_ready(ready.addr, ready.dns, ready.monitoring),
        )
        .map_err(|e| e.to_string()),
        other => Err(format!(
            "runtime `{other}` is not available in this build; use --runtime tokio or --runtime mio"
        )),
    }
}

/// A seed for the node's RNG. The node is deterministic given its seed; the
/// process picks a fresh one each start so instance ids differ.
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// MPREG's diagnostic switches (`MPREG_DEBUG_PEER_DIAL=1`,
/// `MPREG_DEBUG_PEER_SNAPSHOT=1`, ...) as debug scopes: each enabled
/// `MPREG_DEBUG_<SCOPE>` adds `<scope>` (lower-cased) to `log_debug_scopes`.
fn debug_scopes_from_env() -> Vec<String> {
    let on = |v: &str| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on" | "enabled" | "debug"
        )
    };
    let mut scopes: Vec<String> = std::env::vars()
        .filter_map(|(k, v)| {
            k.strip_prefix("MPREG_DEBUG_")
                .filter(|_| on(&v))
                .map(str::to_ascii_lowercase)
        })
        .collect();
    scopes.sort();
    scopes
}
