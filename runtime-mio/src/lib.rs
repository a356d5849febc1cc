//! # mpreg-mio
//!
//! The high-performance runtime: one `mio::Poll` event loop driving the same
//! `mpreg_core::Node` as the tokio runtime. It is not built yet (its own
//! issue); until then `mpreg server --runtime mio` is refused with a clear
//! message and this crate only states what it will provide.

/// The runtime name `mpreg server --runtime` accepts for this crate.
pub const RUNTIME_NAME: &str = "mio";

/// Whether this build can run a node on mio.
pub const AVAILABLE: bool = false;
