//! # mpreg-runtime-support
//!
//! The parts of a runtime that are neither sockets nor an event loop and
//! that the tokio and mio runtimes must do identically: feeding the node
//! its persisted files at start, writing the files it persists, and turning
//! its events into log lines. Keeping them here keeps the two runtimes from
//! drifting apart.

pub mod tls;

use std::path::Path;

use mpreg_core::{Event as NodeEvent, Input, Node, Now, Settings, PERSISTED_FILES};

/// Feeds the node every file it persisted earlier (`Input::Restored`), from
/// `data_dir`, before it serves anyone. A missing file is a first start; an
/// unreadable one is logged and skipped.
pub fn restore_persisted(node: &mut Node, settings: &Settings, now: Now) {
    let Some(dir) = settings.data_dir.as_deref() else {
        return;
    };
    for name in PERSISTED_FILES {
        let path = Path::new(dir).join(name);
        match std::fs::read(&path) {
            Ok(bytes) => {
                tracing::info!(path = %path.display(), bytes = bytes.len(), "restoring persisted state");
                node.handle(
                    now,
                    Input::Restored {
                        name: name.to_string(),
                        bytes,
                    },
                );
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read persisted state; starting without it")
            }
        }
    }
}

/// Replaces `<data_dir>/<name>` with `bytes` atomically: write a temporary
/// file next to it, sync it, rename it over the old one, sync the
/// directory. A crash leaves the old or the new file, never a torn one.
pub fn write_persisted(data_dir: Option<&str>, name: &str, bytes: &[u8]) {
    let Some(dir) = data_dir else {
        return;
    };
    if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
        tracing::warn!(
            name,
            "refusing to persist a file name outside the data directory"
        );
        return;
    }
    let dir = Path::new(dir);
    let result = (|| -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!(".{name}.tmp"));
        {
            let mut f = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut f, bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, dir.join(name))?;
        // Make the rename itself durable (not supported everywhere: best effort).
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if let Err(e) = result {
        tracing::error!(dir = %dir.display(), name, error = %e, "cannot persist state; it lives in memory only until the next successful write");
    }
}

/// Logs one node event at the level its kind deserves.
pub fn log_event(e: NodeEvent) {
    match e {
        NodeEvent::BadInput { conn, detail } => tracing::warn!(?conn, "rejected input: {detail}"),
        NodeEvent::PeerUp { node_id } => tracing::info!(%node_id, "peer up"),
        NodeEvent::PeerDown { node_id, reason } => tracing::info!(%node_id, %reason, "peer down"),
        NodeEvent::Info(line) => tracing::debug!("{line}"),
        NodeEvent::Diag { scope, line } => tracing::info!(scope, "{line}"),
    }
}
