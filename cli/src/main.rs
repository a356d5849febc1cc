//! `mpreg`: run an mpreg-rs node and talk to one.

mod client_cmd;
mod common;
mod discovery_cmd;
mod dns_label;
mod monitor_cmd;
mod render;
mod server_cmd;

use std::process::ExitCode;

/// mimalloc instead of the system allocator: the node's hot paths (a DNS
/// answer, a decoded frame) make many small, short-lived allocations,
/// which glibc's malloc and free served at about a fifth of a DNS answer's
/// instructions. The benches that time these paths use the same allocator.
/// Built without transparent huge pages (the `no_thp` feature), so an idle
/// node stays near glibc's resident size instead of doubling it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};

use common::CliError;

/// mpreg-rs: service discovery fabric (MPREG-compatible discovery plane).
#[derive(Parser)]
#[command(
    name = "mpreg",
    version,
    about,
    propagate_version = true,
    after_help = "Node URL: --url or MPREG_URL (ws://host:port). Monitoring URL: --url or \
                  MPREG_MONITORING_URL (http://host:port) for `discovery lag|status`, `report` \
                  and `monitor`. Credentials: --token / MPREG_TOKEN, --api-key / MPREG_API_KEY.\n\
                  Output: tables by default, --json for the raw result.\n\
                  Exit status: 0 on success, 1 when the command failed (connection, timeout, \
                  RPC error), 2 for a usage error; failures print one `error: ...` line on stderr."
)]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

// Parsed once per process: the size of the largest command's flags does
// not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Top {
    /// Run a node. With no arguments it serves on ws://127.0.0.1:6666.
    Server(server_cmd::ServerArgs),
    /// Call RPCs on a node (MPREG's `mpreg client ...`).
    Client {
        #[command(subcommand)]
        command: client_cmd::ClientCommand,
    },
    /// Inspect the discovery plane: catalog queries, summaries, watches,
    /// cluster map, resolver cache, policy, lag (DISCOVERY_RUNBOOKS.md).
    Discovery {
        #[command(subcommand)]
        command: discovery_cmd::DiscoveryCommand,
    },
    /// Reports from the node's monitoring endpoint (namespace export health,
    /// export lag).
    Report {
        #[command(subcommand)]
        command: monitor_cmd::ReportCommand,
    },
    /// Watch the node's monitoring endpoint (DNS gateway metrics).
    Monitor {
        #[command(subcommand)]
        command: monitor_cmd::MonitorCommand,
    },
    /// Print a shell completion script: `mpreg completions bash > /etc/bash_completion.d/mpreg`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// A clap error as one line: its message lines up to the first blank line
/// (the usage and tip that follow are dropped), joined with spaces.
fn clap_error_line(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let mut parts = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with("Usage:") {
            break;
        }
        parts.push(line);
    }
    let line = parts.join(" ");
    let line = line.strip_prefix("error: ").unwrap_or(&line);
    format!("{line} (see --help)")
}

/// Dies quietly on a closed stdout (`mpreg discovery query | head -1`), as
/// other Unix tools do, instead of panicking in `println!`.
fn restore_sigpipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal disposition to its default at start-up,
    // before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    restore_sigpipe();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => match err.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => err.exit(),
            _ => {
                eprintln!("error: {}", clap_error_line(&err));
                return ExitCode::from(2);
            }
        },
    };
    let result = match cli.command {
        Top::Server(args) => server_cmd::run(args).map_err(CliError::Failed),
        Top::Completions { shell } => {
            let mut cmd = Cli::command();
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut cmd, "mpreg", &mut script);
            use std::io::Write as _;
            std::io::stdout()
                .write_all(&script)
                .map_err(|e| CliError::Failed(format!("cannot write the script: {e}")))
        }
        Top::Report { command } => monitor_cmd::run_report(command),
        Top::Monitor { command } => monitor_cmd::run_monitor(command),
        Top::Client { command } => block_on(client_cmd::run(command)),
        Top::Discovery { command } => block_on(discovery_cmd::run(command)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", err.line());
            ExitCode::from(err.exit_code())
        }
    }
}

/// Runs a command's future on a single-threaded tokio runtime.
fn block_on(fut: impl std::future::Future<Output = Result<(), CliError>>) -> Result<(), CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Failed(format!("cannot start the tokio runtime: {e}")))?
        .block_on(fut)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every operator command's long help names the runbook symptom it
    /// serves (`server` and `completions` are not runbook commands).
    #[test]
    fn every_command_names_its_runbook() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for sub in cmd.get_subcommands() {
                let path = format!("{path} {}", sub.get_name());
                if sub.has_subcommands() {
                    walk(sub, &path, missing);
                    continue;
                }
                let about = sub
                    .get_long_about()
                    .or(sub.get_about())
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                if !about.contains("Runbook: ") {
                    missing.push(path);
                }
            }
        }
        let root = Cli::command();
        let mut missing = Vec::new();
        for top in ["client", "discovery", "report", "monitor"] {
            let sub = root.find_subcommand(top).expect(top);
            walk(sub, top, &mut missing);
        }
        assert!(
            missing.is_empty(),
            "no `Runbook:` in the help of {missing:?}"
        );
    }

    #[test]
    fn clap_errors_fit_on_one_line() {
        let err = Cli::try_parse_from(["mpreg", "client", "call", "echo", "--timeout", "0"])
            .err()
            .expect("a bad timeout is an error");
        let line = clap_error_line(&err);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("--timeout"), "{line}");
        let err = Cli::try_parse_from(["mpreg", "client", "dns-register", "--name", "x"])
            .err()
            .expect("missing required flags");
        let line = clap_error_line(&err);
        assert!(
            line.contains("--namespace") && line.contains("--port"),
            "{line}"
        );
    }
}
