//! SIGINT and SIGTERM as readiness events of the loop.
//!
//! `signal-hook-mio` installs the handlers and turns each delivery into a
//! byte on a self-pipe registered with the poll, so a signal wakes the loop
//! like any socket and the handler itself does nothing but write one byte.
//! Dropping [`Signals`] unregisters the handlers again.

use mio::{Registry, Token};

/// The stop signals, registered with the loop.
pub(crate) struct Signals {
    #[cfg(unix)]
    inner: signal_hook_mio::v1_0::Signals,
}

impl Signals {
    /// Installs the handlers and registers their pipe under `token`.
    #[cfg(unix)]
    pub(crate) fn register(registry: &Registry, token: Token) -> std::io::Result<Self> {
        use signal_hook::consts::signal::{SIGINT, SIGTERM};
        let mut inner = signal_hook_mio::v1_0::Signals::new([SIGINT, SIGTERM])?;
        registry.register(&mut inner, token, mio::Interest::READABLE)?;
        Ok(Signals { inner })
    }

    /// No signal support on this platform: the Shutdown handle still works.
    #[cfg(not(unix))]
    pub(crate) fn register(_registry: &Registry, _token: Token) -> std::io::Result<Self> {
        Ok(Signals {})
    }

    /// Drains the pipe; true when a stop signal arrived.
    #[cfg(unix)]
    pub(crate) fn fired(&mut self) -> bool {
        self.inner.pending().count() > 0
    }

    /// Drains the pipe; true when a stop signal arrived.
    #[cfg(not(unix))]
    pub(crate) fn fired(&mut self) -> bool {
        false
    }
}
