//! The node's only source of randomness: a ChaCha stream seeded by the
//! runtime, so a simulator run replays exactly from its seed.

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

/// Seeded random numbers for ids, jitter and peer selection.
#[derive(Debug, Clone)]
pub struct NodeRng(ChaCha8Rng);

impl NodeRng {
    /// A generator fully determined by `seed`.
    pub fn new(seed: u64) -> Self {
        NodeRng(ChaCha8Rng::seed_from_u64(seed))
    }

    /// A uniformly random `u64`.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A uniformly random `u128` (the random part of a ULID).
    pub fn next_u128(&mut self) -> u128 {
        (u128::from(self.next_u64()) << 64) | u128::from(self.next_u64())
    }

    /// A float in `[0, 1)` (the simulator's loss and jitter draws).
    #[cfg(any(test, feature = "sim"))]
    pub fn unit_f64(&mut self) -> f64 {
        // 53 random mantissa bits: the standard exact construction.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A fresh ULID string for wall time `wall` (Unix seconds): the format
    /// MPREG uses for request, message and instance ids.
    pub fn ulid(&mut self, wall: f64) -> String {
        let millis = if wall.is_finite() && wall > 0.0 {
            (wall * 1000.0) as u64
        } else {
            0
        };
        ulid::Ulid::from_parts(millis, self.next_u128()).to_string()
    }

    /// An index in `0..len` (`len` must be non-zero; returns 0 otherwise).
    pub fn index(&mut self, len: usize) -> usize {
        if len == 0 {
            0
        } else {
            (self.next_u64() % len as u64) as usize
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = NodeRng::new(7);
        let mut b = NodeRng::new(7);
        for _ in 0..10 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_eq!(a.ulid(1.0e9), b.ulid(1.0e9));
        assert_ne!(NodeRng::new(8).next_u64(), NodeRng::new(7).next_u64());
    }

    #[test]
    fn ulid_is_26_chars() {
        assert_eq!(NodeRng::new(1).ulid(1_732_440_000.0).len(), 26);
    }
}
