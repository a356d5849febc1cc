//! What every node-facing command shares: connection flags, `--json`, the
//! error type behind the one-line error message and exit code, request
//! payload building, and one RPC call with MPREG's envelope.

use std::time::Duration;

use clap::Args;
use mpreg_client::failover::is_failover_error;
use mpreg_client::{Client, ClientError, Credentials};
use serde_json::{json, Map, Value};

/// Why a command failed. `main` prints it as one `error: ...` line on
/// stderr and exits with [`CliError::exit_code`].
#[derive(Debug)]
pub enum CliError {
    /// The command line is incomplete or inconsistent (exit code 2, as for
    /// clap's own usage errors).
    Usage(String),
    /// The command ran and failed: connection refused, timeout, RPC error,
    /// HTTP error (exit code 1).
    Failed(String),
}

impl CliError {
    /// Process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Failed(_) => 1,
        }
    }

    /// The message, on one line.
    pub fn line(&self) -> String {
        let text = match self {
            CliError::Usage(m) | CliError::Failed(m) => m,
        };
        one_line(text)
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        CliError::Failed(e.to_string())
    }
}

/// Collapses whitespace runs (newlines included, e.g. a Python traceback in
/// an error's `details`) into single spaces.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses `--timeout`: a positive, finite number of seconds.
pub fn parse_seconds(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if v.is_finite() && v > 0.0 && v <= 1e9 {
        Ok(v)
    } else {
        Err(format!("must be a positive number of seconds, got {s}"))
    }
}

/// Connection flags of every command that talks to a node over WebSocket.
#[derive(Args, Debug, Clone)]
pub struct ConnArgs {
    /// Node URL, e.g. ws://127.0.0.1:6666 (env MPREG_URL). Several URLs,
    /// comma-separated, are tried in order: a node that cannot be reached,
    /// times out or drops the connection hands the command to the next
    /// (the runbook's resolver or hub outage).
    #[arg(long, env = "MPREG_URL", value_name = "URL[,URL...]")]
    pub url: Option<String>,
    /// Seconds to wait for the connection and for each reply.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_seconds, allow_negative_numbers = true)]
    pub timeout: f64,
    /// Bearer token sent as `Authorization: Bearer <token>` (env MPREG_TOKEN).
    #[arg(
        long,
        env = "MPREG_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,
    /// API key sent as `X-API-Key` (env MPREG_API_KEY).
    #[arg(
        long,
        env = "MPREG_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    pub api_key: Option<String>,
    /// PEM file of the CA (or self-signed) certificate that `wss://` nodes
    /// must present (env MPREG_TLS_CA_FILE); without it the system's root
    /// certificates are trusted.
    #[arg(long, env = "MPREG_TLS_CA_FILE", value_name = "FILE")]
    pub tls_ca_file: Option<String>,
    /// Print the raw JSON result (stable field names) instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl ConnArgs {
    /// The node URLs in the order to try them, or the usage error MPREG's
    /// CLI gives.
    pub fn urls(&self) -> Result<Vec<&str>, CliError> {
        let urls: Vec<&str> = self
            .url
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect();
        if urls.is_empty() {
            return Err(CliError::Usage("Provide --url or set MPREG_URL.".into()));
        }
        Ok(urls)
    }

    fn credentials(&self) -> Result<Credentials, CliError> {
        let tls = match self.tls_ca_file.as_deref() {
            Some(path) => Some(
                mpreg_client::tls::trust_ca_file(path)
                    .map_err(|e| CliError::Usage(format!("--tls-ca-file: {e}")))?,
            ),
            None => None,
        };
        Ok(Credentials {
            token: self.token.clone(),
            api_key: self.api_key.clone(),
            tls,
        })
    }

    /// Opens a connection to the first node that accepts one.
    pub async fn connect(&self) -> Result<Client, CliError> {
        let urls = self.urls()?;
        let timeout = Duration::from_secs_f64(self.timeout);
        let creds = self.credentials()?;
        let mut last = None;
        for (i, url) in urls.iter().enumerate() {
            match Client::connect(url, timeout, &creds).await {
                Ok(client) => return Ok(client),
                Err(e) if i + 1 < urls.len() && is_failover_error(&e) => {
                    eprintln!("warning: {url}: {e}; trying {}", urls[i + 1]);
                    last = Some(e);
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(last
            .map(CliError::from)
            .unwrap_or_else(|| CliError::Usage("Provide --url or set MPREG_URL.".into())))
    }

    /// Connects, makes one call with the payload as `args` and closes.
    pub async fn call(&self, fun: &str, payload: Payload) -> Result<Value, CliError> {
        self.call_with(fun, payload.into_args(), &Envelope::default())
            .await
    }

    /// Connects, makes one call with explicit positional `args` and envelope
    /// fields, and closes. A URL that cannot be reached, times out or drops
    /// the connection hands the call to the next one; an answer (an RPC
    /// error included) is final.
    pub async fn call_with(
        &self,
        fun: &str,
        args: Vec<Value>,
        envelope: &Envelope,
    ) -> Result<Value, CliError> {
        let urls = self.urls()?;
        let timeout = Duration::from_secs_f64(self.timeout);
        let creds = self.credentials()?;
        let mut outcome = Err(CliError::Usage("Provide --url or set MPREG_URL.".into()));
        for (i, url) in urls.iter().enumerate() {
            let result = match Client::connect(url, timeout, &creds).await {
                Ok(mut client) => {
                    let r = call(&mut client, fun, args.clone(), envelope).await;
                    client.close().await;
                    r
                }
                Err(e) => Err(e),
            };
            match result {
                Err(e) if i + 1 < urls.len() && is_failover_error(&e) => {
                    eprintln!("warning: {url}: {e}; trying {}", urls[i + 1]);
                    outcome = Err(e.into());
                }
                other => return Ok(other?),
            }
        }
        outcome
    }
}

/// Command fields MPREG's envelope carries besides `fun` and `args`.
#[derive(Debug, Default, Clone)]
pub struct Envelope {
    /// Resource constraints (`locs`).
    pub locs: Vec<String>,
    /// Cluster to forward the call to (`target_cluster`).
    pub target_cluster: Option<String>,
}

/// One RPC. Without envelope extras this is [`Client::call`]; with `locs` or
/// `target_cluster` (which `Client::call` cannot set) the same envelope is
/// built here and sent with [`Client::request`].
pub async fn call(
    client: &mut Client,
    fun: &str,
    args: Vec<Value>,
    envelope: &Envelope,
) -> Result<Value, ClientError> {
    if envelope.locs.is_empty() && envelope.target_cluster.is_none() {
        return client.call(fun, args, Map::new()).await;
    }
    let u = mpreg_client::fresh_id();
    let frame = json!({
        "role": "rpc",
        "cmds": [{
            "name": fun, "fun": fun, "args": args, "kwargs": {}, "locs": envelope.locs,
            "function_id": null, "version_constraint": null,
            "target_cluster": envelope.target_cluster, "routing_topic": null,
        }],
        "u": u,
        "return_intermediate_results": false,
        "intermediate_result_callback_topic": null,
        "include_execution_summary": false,
        "debug_mode": false,
    });
    let reply = client.request(&u, frame).await?;
    if let Some(err) = reply.get("error").filter(|e| !e.is_null()) {
        return Err(ClientError::Rpc {
            code: err.get("code").and_then(Value::as_i64).unwrap_or(0),
            message: err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            details: match err.get("details") {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(other) => Some(other.to_string()),
            },
        });
    }
    match reply.get("r") {
        Some(Value::Object(r)) if r.len() == 1 => {
            Ok(r.values().next().cloned().unwrap_or(Value::Null))
        }
        Some(other) => Ok(other.clone()),
        None => Err(ClientError::Protocol("reply has no `r`".into())),
    }
}

/// A request payload built the way MPREG's typed client builds it: unset,
/// empty-string and empty-list fields are omitted, and an empty payload is
/// sent as no argument at all.
#[derive(Debug, Default, Clone)]
pub struct Payload(Map<String, Value>);

impl Payload {
    /// An empty payload.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets `key` to a string unless it is `None` or empty.
    pub fn str(mut self, key: &str, v: &Option<String>) -> Self {
        if let Some(s) = v.as_deref().filter(|s| !s.is_empty()) {
            self.0.insert(key.into(), Value::String(s.to_string()));
        }
        self
    }

    /// Sets `key` to a list of strings unless it is empty.
    pub fn list(mut self, key: &str, v: &[String]) -> Self {
        if !v.is_empty() {
            self.0.insert(key.into(), json!(v));
        }
        self
    }

    /// Sets `key` to an integer unless it is `None`.
    pub fn int(mut self, key: &str, v: Option<i64>) -> Self {
        if let Some(n) = v {
            self.0.insert(key.into(), json!(n));
        }
        self
    }

    /// Sets `key` to a number unless it is `None`.
    pub fn float(mut self, key: &str, v: Option<f64>) -> Self {
        if let Some(n) = v {
            self.0.insert(key.into(), json!(n));
        }
        self
    }

    /// Sets `key` to any value.
    pub fn value(mut self, key: &str, v: Value) -> Self {
        self.0.insert(key.into(), v);
        self
    }

    /// `args` for the call: `[]` when empty, else `[payload]`.
    pub fn into_args(self) -> Vec<Value> {
        if self.0.is_empty() {
            Vec::new()
        } else {
            vec![Value::Object(self.0)]
        }
    }
}

/// Prints `v` as pretty JSON (the `--json` output).
pub fn print_json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// Checks that an RPC result is a JSON object.
pub fn expect_object<'a>(fun: &str, v: &'a Value) -> Result<&'a Map<String, Value>, CliError> {
    v.as_object().ok_or_else(|| {
        CliError::Failed(format!(
            "{fun} returned {} where an object was expected",
            crate::render::kind(v)
        ))
    })
}

/// Checks that an RPC result is a JSON array.
pub fn expect_array<'a>(fun: &str, v: &'a Value) -> Result<&'a Vec<Value>, CliError> {
    v.as_array().ok_or_else(|| {
        CliError::Failed(format!(
            "{fun} returned {} where an array was expected",
            crate::render::kind(v)
        ))
    })
}
