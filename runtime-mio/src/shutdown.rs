//! A handle that stops a running node from another thread.
//!
//! The event loop sleeps in `epoll_wait` (or its platform equivalent), so a
//! flag alone would only be seen at the next socket event or timer. The
//! handle therefore also holds the loop's [`mio::Waker`] once the loop has
//! started; a trigger before that is remembered by the flag and honoured as
//! soon as the loop attaches.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Asks a running node to shut down gracefully (GOODBYE to its peers, close
/// every connection, exit). Cheap to clone; usable from any thread.
#[derive(Clone, Default)]
pub struct Shutdown(Arc<Inner>);

#[derive(Default)]
struct Inner {
    requested: AtomicBool,
    waker: Mutex<Option<Arc<mio::Waker>>>,
}

impl Shutdown {
    /// A new, untriggered handle.
    pub fn new() -> Self {
        Shutdown::default()
    }

    /// Requests a graceful shutdown. Returns at once; [`crate::run`] returns
    /// after the node has said GOODBYE and its writes are flushed.
    pub fn trigger(&self) {
        self.0.requested.store(true, Ordering::SeqCst);
        let waker = self.0.waker.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(w) = waker.as_ref() {
            if let Err(e) = w.wake() {
                tracing::warn!(error = %e, "cannot wake the event loop for shutdown");
            }
        }
    }

    /// Whether a shutdown was requested.
    pub(crate) fn requested(&self) -> bool {
        self.0.requested.load(Ordering::SeqCst)
    }

    /// Connects the handle to a running loop (`None` detaches it on exit).
    pub(crate) fn attach(&self, waker: Option<Arc<mio::Waker>>) {
        *self.0.waker.lock().unwrap_or_else(PoisonError::into_inner) = waker;
    }
}
