//! The runtime's clocks as the core sees them.
//!
//! The core measures time in its own [`Instant`] (nanoseconds since an origin
//! the runtime picks). This runtime's origin is the moment the loop started,
//! so the mapping both ways is one addition; the wall clock is read from
//! [`SystemTime`] for the wire timestamps MPREG publishes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mpreg_core::{Instant, Now};

/// Maps between the core's clock and [`std::time::Instant`].
pub(crate) struct Clock {
    origin: std::time::Instant,
}

impl Clock {
    /// A clock whose origin is now.
    pub(crate) fn new() -> Self {
        Clock {
            origin: std::time::Instant::now(),
        }
    }

    /// The current time on both clocks.
    pub(crate) fn now(&self) -> Now {
        let mono = Instant::from_nanos(
            u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX),
        );
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Now::new(mono, wall)
    }

    /// The std instant of a core deadline; `None` when it lies beyond what
    /// the platform clock can represent (which means "never" in practice).
    pub(crate) fn to_std(&self, at: Instant) -> Option<std::time::Instant> {
        self.origin.checked_add(Duration::from_nanos(at.as_nanos()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_never_overflows() {
        let clock = Clock::new();
        let now = clock.now();
        let back = clock
            .to_std(now.mono)
            .expect("near instants are representable");
        assert!(back <= std::time::Instant::now());
        assert!(now.wall > 1.0e9, "wall clock is Unix seconds");
        // The far future must not panic.
        let _ = clock.to_std(Instant::from_nanos(u64::MAX));
    }
}
