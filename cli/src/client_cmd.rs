//! `mpreg client ...`: MPREG's client commands.

use std::time::Duration;

use clap::{Args, Subcommand};
use mpreg_client::{Client, Credentials};
use serde_json::{Map, Value};

/// Connection flags shared by every command that talks to a node.
#[derive(Args, Debug, Clone)]
pub struct ConnArgs {
    /// Node URL (ws://host:port).
    #[arg(long, env = "MPREG_URL")]
    url: Option<String>,
    /// Seconds to wait for the node before giving up.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Bearer token sent as `Authorization: Bearer <token>`.
    #[arg(long, env = "MPREG_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// API key sent as `X-API-Key`.
    #[arg(long, env = "MPREG_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
}

impl ConnArgs {
    async fn connect(&self) -> Result<Client, String> {
        let url = self
            .url
            .as_deref()
            .ok_or("Provide --url or set MPREG_URL.")?;
        if !(self.timeout.is_finite() && self.timeout > 0.0) {
            return Err(format!(
                "--timeout must be a positive number of seconds, got {}",
                self.timeout
            ));
        }
        let creds = Credentials {
            token: self.token.clone(),
            api_key: self.api_key.clone(),
        };
        Client::connect(url, Duration::from_secs_f64(self.timeout), &creds)
            .await
            .map_err(|e| e.to_string())
    }
}

/// `mpreg client` subcommands.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Call any RPC and print its result as JSON. Each ARG is parsed as JSON
    /// when it is valid JSON, else sent as a string.
    Call {
        /// RPC name, e.g. echo, list_peers, catalog_query.
        fun: String,
        /// Positional arguments.
        args: Vec<String>,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

/// Runs a client command.
pub fn run(cmd: ClientCommand) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the tokio runtime: {e}"))?;
    rt.block_on(async move {
        match cmd {
            ClientCommand::Call { fun, args, conn } => {
                let args: Vec<Value> = args
                    .iter()
                    .map(|a| serde_json::from_str(a).unwrap_or_else(|_| Value::String(a.clone())))
                    .collect();
                let mut client = conn.connect().await?;
                let result = client
                    .call(&fun, args, Map::new())
                    .await
                    .map_err(|e| e.to_string())?;
                client.close().await;
                print_json(&result);
                Ok(())
            }
        }
    })
}

fn print_json(v: &Value) {
    match v {
        Value::String(s) => println!("{s}"),
        other => println!(
            "{}",
            serde_json::to_string_pretty(other).unwrap_or_default()
        ),
    }
}
