//! The `mpreg` binary as users start it: version, help, and a clear exit
//! status for a bad command line. Building this test also makes
//! `cargo test --workspace` build `target/<profile>/mpreg` with the
//! workspace's features, which the black-box suites in `tests/` then run
//! (CI sets `MPREG_TESTS_NO_BUILD=1` so they do not build it a second time
//! with the CLI's own feature set).

use std::process::{Command, Stdio};

fn mpreg(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mpreg"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the mpreg binary runs")
}

#[test]
fn prints_its_version() {
    let out = mpreg(&["--version"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.trim(),
        format!("mpreg {}", env!("CARGO_PKG_VERSION")),
        "{text}"
    );
}

#[test]
fn help_lists_the_commands_of_the_runbook() {
    let out = mpreg(&["--help"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    for command in ["server", "client", "discovery", "monitor"] {
        assert!(text.contains(command), "no `{command}` in:\n{text}");
    }
}

#[test]
fn an_unknown_command_is_a_usage_error() {
    let out = mpreg(&["no-such-command"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-command"), "{err}");
}
