//! Deduplication of summary messages flooded over the fabric.
//!
//! Each exporting node numbers its summary floods `1, 2, ...` per process
//! instance; every node relays a flood it has not seen to its other fabric
//! peers, once. Floods can arrive out of order over different paths, so per
//! source we keep a floor (everything at or below is seen) and the set of
//! seen numbers above it, at most [`WINDOW`] of them; the number of sources
//! remembered is bounded by [`MAX_SOURCES`] (the least recently heard one is
//! forgotten first). Periodic re-export is the anti-entropy: a flood missed
//! for good is superseded by the next export.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// One export, flooded over the fabric (`FabricMsg::Summary`).
///
/// It carries the export's base message once (all summaries and
/// withdrawals) and the list of topics it was published on; a receiver
/// delivers each topic to its local subscribers, cutting the per-namespace
/// messages out of the base one, and feeds its summary cache.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryFlood {
    /// The exporting node.
    pub source_node: String,
    /// Its process instance (sequence numbers restart with it).
    pub instance_id: String,
    /// Export number of that instance, from 1.
    pub seq: u64,
    /// The base `DiscoverySummaryMessage` as JSON text.
    pub message: String,
    /// Where it was published.
    pub topics: Vec<FloodTopic>,
    /// HMAC of the rest when the exporter holds
    /// `discovery_summary_signing_secret` ([`super::signing`]); absent on
    /// the wire otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<Vec<u8>>,
}

/// One topic of a flooded export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FloodTopic {
    /// Concrete topic.
    pub topic: String,
    /// The message id used there.
    pub message_id: String,
    /// The namespace the topic's message is limited to (`None`: the base
    /// message).
    pub namespace: Option<String>,
}

/// Seen sequence numbers kept above the floor per source.
pub const WINDOW: usize = 1024;
/// Sources remembered.
pub const MAX_SOURCES: usize = 4096;

#[derive(Debug, Clone, Default)]
struct Seen {
    floor: u64,
    above: BTreeSet<u64>,
    touched: u64,
}

/// The dedup memory.
#[derive(Debug, Clone, Default)]
pub struct FloodDedup {
    sources: BTreeMap<(String, String), Seen>,
    clock: u64,
}

impl FloodDedup {
    /// True the first time `(node, instance, seq)` is offered (then relay
    /// and deliver it); false for a duplicate or for a number below what is
    /// remembered.
    pub fn first_sight(&mut self, node: &str, instance: &str, seq: u64) -> bool {
        self.clock += 1;
        let key = (node.to_string(), instance.to_string());
        if !self.sources.contains_key(&key) && self.sources.len() >= MAX_SOURCES {
            if let Some(oldest) = self
                .sources
                .iter()
                .min_by_key(|(_, s)| s.touched)
                .map(|(k, _)| k.clone())
            {
                self.sources.remove(&oldest);
            }
        }
        let s = self.sources.entry(key).or_default();
        s.touched = self.clock;
        if seq <= s.floor || !s.above.insert(seq) {
            return false;
        }
        // Advance the floor over a contiguous run, then bound the window.
        while s.above.first() == Some(&(s.floor + 1)) {
            s.floor += 1;
            s.above.pop_first();
        }
        while s.above.len() > WINDOW {
            if let Some(first) = s.above.pop_first() {
                s.floor = first;
            }
        }
        true
    }

    /// Sources remembered.
    pub fn sources(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn duplicates_and_reordering() {
        let mut d = FloodDedup::default();
        assert!(d.first_sight("a", "i1", 2));
        assert!(d.first_sight("a", "i1", 1));
        assert!(!d.first_sight("a", "i1", 2));
        assert!(!d.first_sight("a", "i1", 1));
        assert!(d.first_sight("a", "i1", 3));
        // A restarted node is a new instance and starts again at 1.
        assert!(d.first_sight("a", "i2", 1));
        assert!(d.first_sight("b", "i1", 1));
        assert_eq!(d.sources(), 3);
    }

    proptest! {
        /// Every number is accepted at most once per source, whatever the
        /// order, and memory stays bounded.
        #[test]
        fn at_most_once(seqs in proptest::collection::vec(1u64..3000, 1..3000)) {
            let mut d = FloodDedup::default();
            let mut accepted = BTreeSet::new();
            for s in seqs {
                if d.first_sight("n", "i", s) {
                    prop_assert!(accepted.insert(s), "{} accepted twice", s);
                }
            }
            let seen = &d.sources[&("n".to_string(), "i".to_string())];
            prop_assert!(seen.above.len() <= WINDOW);
        }
    }
}
