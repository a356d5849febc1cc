//! Time as the core sees it: a monotonic [`Instant`] the runtime supplies and the
//! wall clock in Unix seconds for the wire fields MPREG publishes.
//!
//! The core never reads a clock. Every input carries a [`Now`]; deadlines are
//! returned from `Node::poll_timeout` as core `Instant`s, which the runtime maps
//! back onto its own clock. Arithmetic saturates so a bogus duration from a
//! config file can never panic or wrap.

use std::time::Duration;

/// A point on the runtime's monotonic clock, in nanoseconds since an arbitrary
/// origin chosen by the runtime (process start, or zero in the simulator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The origin of the clock.
    pub const ZERO: Instant = Instant(0);

    /// Builds an instant from nanoseconds since the runtime's origin.
    pub const fn from_nanos(nanos: u64) -> Self {
        Instant(nanos)
    }

    /// Nanoseconds since the runtime's origin.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at the far future instead of overflowing.
    pub fn saturating_add(self, d: Duration) -> Instant {
        let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(nanos))
    }

    /// Time elapsed from `earlier` to `self`; zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl std::ops::Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        self.saturating_add(rhs)
    }
}

/// The two clocks every input carries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Now {
    /// Monotonic time: drives timers and every interval the node measures.
    pub mono: Instant,
    /// Wall clock, Unix epoch seconds: only for wire fields such as
    /// `generated_at` and `advertised_at` and for catalog expiry, which MPREG
    /// defines on wall-clock timestamps.
    pub wall: f64,
}

impl Now {
    /// Builds a `Now` from its two clocks.
    pub fn new(mono: Instant, wall: f64) -> Self {
        Now { mono, wall }
    }

    /// The same moment advanced by `d` on both clocks (simulator and tests).
    pub fn advanced(self, d: Duration) -> Now {
        Now {
            mono: self.mono + d,
            wall: self.wall + d.as_secs_f64(),
        }
    }
}

/// Converts seconds from configuration into a `Duration`, treating negative,
/// NaN or infinite values as zero or "very long" rather than panicking.
pub fn secs(value: f64) -> Duration {
    if value.is_nan() || value <= 0.0 {
        Duration::ZERO
    } else if value >= 1.0e9 {
        Duration::from_secs(1_000_000_000)
    } else {
        Duration::from_secs_f64(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_arithmetic_saturates() {
        let far = Instant::from_nanos(u64::MAX - 1);
        assert_eq!(far + Duration::from_secs(10), Instant::from_nanos(u64::MAX));
        assert_eq!(Instant::ZERO.saturating_duration_since(far), Duration::ZERO);
    }

    #[test]
    fn secs_handles_bad_values() {
        assert_eq!(secs(-1.0), Duration::ZERO);
        assert_eq!(secs(f64::NAN), Duration::ZERO);
        assert_eq!(secs(1.5), Duration::from_millis(1500));
        assert!(secs(f64::INFINITY) >= Duration::from_secs(1_000_000));
    }

    #[test]
    fn now_advances_both_clocks() {
        let n = Now::new(Instant::ZERO, 100.0).advanced(Duration::from_secs(2));
        assert_eq!(n.mono, Instant::from_nanos(2_000_000_000));
        assert!((n.wall - 102.0).abs() < 1e-9);
    }
}
