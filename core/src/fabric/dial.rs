//! Outbound dial scheduling: which peer URLs to dial and when.
//!
//! Seeds (`peers`, `connect`) are dialled from the start and retried forever
//! with capped exponential backoff and jitter; URLs learned from gossiped
//! node descriptors are dialled the same way while they are not connected.
//! A URL that turned out to be this node itself is never dialled again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::rng::NodeRng;
use crate::time::Instant;

/// Longest wait between two attempts on one URL.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, Clone)]
struct Target {
    in_flight: bool,
    failures: u32,
    next_attempt: Instant,
}

/// The dial plan of one node.
#[derive(Debug)]
pub struct Dialer {
    base_backoff: Duration,
    targets: BTreeMap<String, Target>,
    seeds: BTreeSet<String>,
    self_urls: BTreeSet<String>,
}

impl Dialer {
    /// A dialer whose first retry waits `base_backoff`.
    pub fn new(
        base_backoff: Duration,
        seeds: impl IntoIterator<Item = String>,
        self_urls: impl IntoIterator<Item = String>,
    ) -> Self {
        let self_urls: BTreeSet<String> = self_urls.into_iter().collect();
        let seeds: BTreeSet<String> = seeds
            .into_iter()
            .filter(|s| !self_urls.contains(s))
            .collect();
        let targets = seeds
            .iter()
            .map(|s| {
                (
                    s.clone(),
                    Target {
                        in_flight: false,
                        failures: 0,
                        next_attempt: Instant::ZERO,
                    },
                )
            })
            .collect();
        Dialer {
            base_backoff: base_backoff.max(Duration::from_millis(50)),
            targets,
            seeds,
            self_urls,
        }
    }

    /// Makes sure `url` is a dial target (a learned peer).
    pub fn want(&mut self, url: &str, now: Instant) {
        if self.self_urls.contains(url) {
            return;
        }
        self.targets.entry(url.to_string()).or_insert(Target {
            in_flight: false,
            failures: 0,
            next_attempt: now,
        });
    }

    /// Stops dialling a learned peer (it left). Seeds stay.
    pub fn forget(&mut self, url: &str) {
        if !self.seeds.contains(url) {
            self.targets.remove(url);
        }
    }

    /// The URL answered as this node itself: never dial it again.
    pub fn is_self(&mut self, url: &str) {
        self.self_urls.insert(url.to_string());
        self.seeds.remove(url);
        self.targets.remove(url);
    }

    /// URLs due for a dial now, given which URLs are already connected; each
    /// returned URL is marked in flight until `succeeded` or `failed`.
    pub fn due(&mut self, now: Instant, connected: impl Fn(&str) -> bool) -> Vec<String> {
        let mut out = Vec::new();
        let recheck = now + self.base_backoff;
        for (url, t) in self.targets.iter_mut() {
            if t.in_flight || t.next_attempt > now {
                continue;
            }
            if connected(url) {
                // Already connected (maybe inbound): look again later rather
                // than reporting a deadline that is always in the past.
                t.next_attempt = recheck;
            } else {
                t.in_flight = true;
                out.push(url.clone());
            }
        }
        out
    }

    /// The dial to `url` connected.
    pub fn succeeded(&mut self, url: &str) {
        if let Some(t) = self.targets.get_mut(url) {
            t.in_flight = false;
            t.failures = 0;
        }
    }

    /// The dial to `url` failed, or its connection closed: schedule a retry.
    pub fn failed(&mut self, url: &str, now: Instant, rng: &mut NodeRng) {
        let base = self.base_backoff;
        if let Some(t) = self.targets.get_mut(url) {
            t.in_flight = false;
            t.failures = t.failures.saturating_add(1);
            let exp = base.saturating_mul(1u32 << t.failures.min(10).saturating_sub(1));
            let wait = exp.min(MAX_BACKOFF);
            // Up to 25 % jitter so a restarted seed is not hit by every node at once.
            let jitter = wait.mul_f64(0.25 * rng.unit_f64());
            t.next_attempt = now + wait + jitter;
        }
    }

    /// A connection to `url` closed: dial it again after the base backoff.
    pub fn disconnected(&mut self, url: &str, now: Instant) {
        if let Some(t) = self.targets.get_mut(url) {
            t.in_flight = false;
            t.next_attempt = now + self.base_backoff;
        }
    }

    /// The earliest moment a not-in-flight target becomes due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.targets
            .values()
            .filter(|t| !t.in_flight)
            .map(|t| t.next_attempt)
            .min()
    }

    /// Number of dial targets.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// True when there is nothing to dial.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_due_at_once_and_back_off_on_failure() {
        let mut rng = NodeRng::new(1);
        let mut d = Dialer::new(
            Duration::from_secs(1),
            ["ws://a:1".to_string()],
            ["ws://me:1".to_string()],
        );
        let t0 = Instant::ZERO;
        assert_eq!(d.due(t0, |_| false), vec!["ws://a:1".to_string()]);
        assert!(d.due(t0, |_| false).is_empty(), "in flight");
        d.failed("ws://a:1", t0, &mut rng);
        let next = d.next_deadline().unwrap();
        assert!(next >= t0 + Duration::from_secs(1) && next <= t0 + Duration::from_millis(1250));
        d.failed("ws://a:1", next, &mut rng);
        assert!(d.next_deadline().unwrap() >= next + Duration::from_secs(2));
    }

    #[test]
    fn self_and_connected_urls_are_not_dialled() {
        let mut d = Dialer::new(
            Duration::from_secs(1),
            ["ws://me:1".to_string(), "ws://b:1".to_string()],
            ["ws://me:1".to_string()],
        );
        d.want("ws://me:1", Instant::ZERO);
        assert!(d.due(Instant::ZERO, |u| u == "ws://b:1").is_empty());
        // A connected target is not due again at once (no busy loop).
        assert!(d.next_deadline().unwrap() > Instant::ZERO);
        d.want("ws://c:1", Instant::ZERO);
        let later = Instant::ZERO + Duration::from_secs(2);
        assert_eq!(
            d.due(later, |_| false),
            vec!["ws://b:1".to_string(), "ws://c:1".to_string()]
        );
        d.is_self("ws://c:1");
        d.forget("ws://b:1");
        assert_eq!(d.len(), 1, "seeds are never forgotten");
    }

    #[test]
    fn backoff_is_capped() {
        let mut rng = NodeRng::new(2);
        let mut d = Dialer::new(Duration::from_secs(1), ["ws://a:1".to_string()], []);
        let mut now = Instant::ZERO;
        for _ in 0..40 {
            d.due(now, |_| false);
            d.failed("ws://a:1", now, &mut rng);
            let next = d.next_deadline().unwrap();
            assert!(next.saturating_duration_since(now) <= MAX_BACKOFF.mul_f64(1.25));
            now = next;
        }
    }
}
