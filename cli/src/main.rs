//! `mpreg`: run an mpreg-rs node and talk to one.

mod client_cmd;
mod server_cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mpreg-rs: service discovery fabric (MPREG-compatible discovery plane).
#[derive(Parser)]
#[command(name = "mpreg", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Subcommand)]
enum Top {
    /// Run a node. With no arguments it serves on ws://127.0.0.1:6666.
    Server(server_cmd::ServerArgs),
    /// Call RPCs on a node (MPREG's `mpreg client ...`).
    Client {
        #[command(subcommand)]
        command: client_cmd::ClientCommand,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Top::Server(args) => server_cmd::run(args),
        Top::Client { command } => client_cmd::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(line) => {
            eprintln!("error: {line}");
            ExitCode::FAILURE
        }
    }
}
