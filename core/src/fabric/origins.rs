//! Versioned per-origin state (chitchat style): only the owner writes its
//! state; receivers keep the newest `(instance, version)` they have seen and
//! relay it once. A departed `(origin, instance)` pair is remembered for a
//! bounded horizon so a stale copy still circulating cannot resurrect it.

use std::collections::{BTreeMap, HashMap};

use crate::time::Instant;
use crate::wire::fabric::OriginState;

/// What happened to an incoming origin state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accept {
    /// Newer than what we had: apply it and relay it.
    Newer,
    /// Same or older version: drop silently (this is the dedup of floods).
    Stale,
    /// From an instance that said GOODBYE: drop.
    Departed,
}

/// The newest state of every origin this node knows, its own included.
#[derive(Debug, Default)]
pub struct OriginStore {
    states: BTreeMap<String, OriginState>,
    /// `(origin, instance)` → until when (monotonic) its departure is kept.
    departed: HashMap<(String, String), Instant>,
}

impl OriginStore {
    /// Decides whether `incoming` replaces what we hold, and stores it if so.
    pub fn offer(&mut self, incoming: OriginState) -> Accept {
        if self
            .departed
            .contains_key(&(incoming.origin.clone(), incoming.instance_id.clone()))
        {
            return Accept::Departed;
        }
        if let Some(current) = self.states.get(&incoming.origin) {
            let newer = if current.instance_id == incoming.instance_id {
                incoming.version > current.version
            } else {
                // A different process on the same URL: the later start wins,
                // so an old instance's state cannot replace the new one's.
                incoming.started_at > current.started_at
                    || (incoming.started_at == current.started_at
                        && incoming.instance_id > current.instance_id)
            };
            if !newer {
                return Accept::Stale;
            }
        }
        self.states.insert(incoming.origin.clone(), incoming);
        Accept::Newer
    }

    /// Records a departure and forgets the state of that instance. Returns
    /// true when this was news (the caller then relays the GOODBYE).
    pub fn depart(&mut self, origin: &str, instance: &str, keep_until: Instant) -> bool {
        let key = (origin.to_string(), instance.to_string());
        let news = !self.departed.contains_key(&key);
        self.departed.insert(key, keep_until);
        if self
            .states
            .get(origin)
            .is_some_and(|s| s.instance_id == instance)
        {
            self.states.remove(origin);
        }
        news
    }

    /// True when `(origin, instance)` said GOODBYE within the horizon.
    pub fn is_departed(&self, origin: &str, instance: &str) -> bool {
        self.departed
            .contains_key(&(origin.to_string(), instance.to_string()))
    }

    /// True when the newest known instance of `origin` departed, or the
    /// origin is unknown but some instance of it departed.
    pub fn origin_departed(&self, origin: &str) -> bool {
        match self.states.get(origin) {
            Some(s) => self.is_departed(origin, &s.instance_id),
            None => self.departed.keys().any(|(o, _)| o == origin),
        }
    }

    /// Forgets departures older than their horizon.
    pub fn expire(&mut self, now: Instant) {
        self.departed.retain(|_, until| *until > now);
    }

    /// Drops an origin's state (its entries all expired).
    pub fn forget(&mut self, origin: &str) {
        self.states.remove(origin);
    }

    /// The stored state of one origin.
    pub fn get(&self, origin: &str) -> Option<&OriginState> {
        self.states.get(origin)
    }

    /// Every stored state, in origin order.
    pub fn iter(&self) -> impl Iterator<Item = &OriginState> {
        self.states.values()
    }

    /// Number of origins known.
    pub fn len(&self) -> usize {
        self.states.len()
    }

    /// True when no origin is known.
    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(origin: &str, instance: &str, started_at: f64, version: u64) -> OriginState {
        OriginState {
            origin: origin.into(),
            instance_id: instance.into(),
            started_at,
            version,
            entries: vec![],
        }
    }

    #[test]
    fn newer_versions_replace_older_ones_are_dropped() {
        let mut s = OriginStore::default();
        assert_eq!(s.offer(state("a", "i1", 1.0, 1)), Accept::Newer);
        assert_eq!(s.offer(state("a", "i1", 1.0, 1)), Accept::Stale);
        assert_eq!(s.offer(state("a", "i1", 1.0, 3)), Accept::Newer);
        assert_eq!(s.offer(state("a", "i1", 1.0, 2)), Accept::Stale);
        assert_eq!(s.get("a").unwrap().version, 3);
    }

    #[test]
    fn restarted_instance_wins_and_old_instance_cannot_come_back() {
        let mut s = OriginStore::default();
        s.offer(state("a", "i1", 1.0, 9));
        assert_eq!(s.offer(state("a", "i2", 2.0, 1)), Accept::Newer);
        assert_eq!(s.offer(state("a", "i1", 1.0, 10)), Accept::Stale);
    }

    #[test]
    fn departed_instance_is_not_resurrected() {
        let mut s = OriginStore::default();
        s.offer(state("a", "i1", 1.0, 1));
        assert!(s.depart("a", "i1", Instant::from_nanos(100)));
        assert!(
            !s.depart("a", "i1", Instant::from_nanos(100)),
            "second GOODBYE is not news"
        );
        assert!(s.get("a").is_none());
        assert_eq!(s.offer(state("a", "i1", 1.0, 5)), Accept::Departed);
        assert!(s.origin_departed("a"));
        // A new process on the same URL is welcome.
        assert_eq!(s.offer(state("a", "i2", 3.0, 1)), Accept::Newer);
        assert!(!s.origin_departed("a"));
        s.expire(Instant::from_nanos(200));
        assert!(!s.is_departed("a", "i1"));
    }
}
