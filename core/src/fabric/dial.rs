//! The peer-dial scheduler: MPREG's adaptive reconcile loop
//! (`reference/fabric.md` §3) on top of the pure policy in
//! [`super::dial_policy`].
//!
//! Every reconcile tick the node hands in the candidate list (seeds, then
//! every known node) with which of them are connected; the scheduler picks
//! which to dial under the discovery-aware `desired_connected` /
//! `exploration_slots` budget, tracks dials in flight (a peer never has two
//! at once), and keeps per-URL backoff state. The tick's figures are kept
//! for the `[DIAG_PEER_DIAL]` line and the saturation counter.

use std::collections::{BTreeMap, BTreeSet};

use super::dial_policy::{plan_tick, Candidate, PeerDialState, TickPlan};
use crate::time::Instant;

/// The dial plan of one node.
#[derive(Debug)]
pub struct Dialer {
    local_url: String,
    gossip_interval: f64,
    seeds: BTreeSet<String>,
    self_urls: BTreeSet<String>,
    states: BTreeMap<String, PeerDialState>,
    /// URL → (T, c) of the tick that started its dial.
    in_flight: BTreeMap<String, (usize, f64)>,
    next_tick: Instant,
    last_plan: Option<TickPlan>,
    saturated_ticks: u64,
}

impl Dialer {
    /// A dialer for `local_url` with these seeds; `self_urls` are never
    /// dialled (this node's own URLs).
    pub fn new(
        local_url: &str,
        gossip_interval: f64,
        seeds: impl IntoIterator<Item = String>,
        self_urls: impl IntoIterator<Item = String>,
    ) -> Self {
        let self_urls: BTreeSet<String> = self_urls.into_iter().collect();
        let seeds = seeds
            .into_iter()
            .filter(|s| !self_urls.contains(s))
            .collect();
        Dialer {
            local_url: local_url.to_string(),
            gossip_interval,
            seeds,
            self_urls,
            states: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            next_tick: Instant::ZERO,
            last_plan: None,
            saturated_ticks: 0,
        }
    }

    /// The seed URLs, sorted.
    pub fn seeds(&self) -> impl Iterator<Item = &str> {
        self.seeds.iter().map(String::as_str)
    }

    /// True for a URL that is this node itself.
    pub fn is_self_url(&self, url: &str) -> bool {
        self.self_urls.contains(url)
    }

    /// The URL answered as this node itself: never dial it again.
    pub fn is_self(&mut self, url: &str) {
        self.self_urls.insert(url.to_string());
        self.seeds.remove(url);
        self.states.remove(url);
    }

    /// True when a reconcile tick is due.
    pub fn tick_due(&self, now: Instant) -> bool {
        now >= self.next_tick
    }

    /// When the next reconcile tick is due.
    pub fn next_deadline(&self) -> Instant {
        self.next_tick
    }

    /// Runs one reconcile tick. `candidates` are `(url, connected)` in §3.1
    /// order (seeds sorted by URL, then directory nodes sorted by cluster
    /// and node id), self and departed peers excluded. Returns the URLs to
    /// dial now.
    pub fn tick(
        &mut self,
        now: Instant,
        candidates: &[(String, bool)],
        discovery_ratio: f64,
    ) -> Vec<String> {
        let fresh = PeerDialState::new();
        for (url, _) in candidates {
            if !self.states.contains_key(url) && !self.self_urls.contains(url) {
                self.states.insert(url.clone(), fresh);
            }
        }
        let list: Vec<Candidate<'_>> = candidates
            .iter()
            .filter(|(url, _)| !self.self_urls.contains(url))
            .filter_map(|(url, connected)| {
                self.states.get(url).map(|state| Candidate {
                    url,
                    is_seed: self.seeds.contains(url),
                    state,
                    connected: *connected,
                })
            })
            .collect();
        let in_flight = &self.in_flight;
        let plan = plan_tick(
            &self.local_url,
            &list,
            discovery_ratio,
            self.gossip_interval,
            now,
            |u| in_flight.contains_key(u),
        );
        for url in &plan.live {
            if let Some(s) = self.states.get_mut(url) {
                s.record_success(now);
            }
        }
        let c = plan.connected_ratio;
        for url in &plan.selected {
            if let Some(s) = self.states.get_mut(url) {
                s.record_attempt(now);
            }
            self.in_flight.insert(url.clone(), (plan.targets, c));
        }
        if plan.saturated() {
            self.saturated_ticks += 1;
        }
        // Forget state of URLs that are no longer candidates nor dialling.
        let keep: BTreeSet<&str> = candidates.iter().map(|(u, _)| u.as_str()).collect();
        let in_flight = &self.in_flight;
        self.states
            .retain(|u, _| keep.contains(u.as_str()) || in_flight.contains_key(u));
        self.next_tick = now + plan.interval;
        let selected = plan.selected.clone();
        self.last_plan = Some(plan);
        selected
    }

    /// The dial to `url` connected.
    pub fn succeeded(&mut self, url: &str, now: Instant) {
        self.in_flight.remove(url);
        if let Some(s) = self.states.get_mut(url) {
            s.record_success(now);
        }
    }

    /// The dial to `url` failed: back off with the T and c of its tick.
    /// Returns the peer target count of that tick (for the dial-failure
    /// demotion rule).
    pub fn failed(&mut self, url: &str, now: Instant) -> usize {
        let (t, c) = self
            .in_flight
            .remove(url)
            .unwrap_or((self.states.len(), 0.0));
        let is_seed = self.seeds.contains(url);
        if let Some(s) = self.states.get_mut(url) {
            s.record_dial_failure(now, url, is_seed, t, c, self.gossip_interval);
            // Wake when the retry is due, not a whole reconcile interval
            // later: with few targets that interval is `gi / sqrt(T)` (5 s
            // for one seed at the default 5 s gossip interval), which made a
            // node whose seed was not listening yet wait 5 s instead of the
            // unrecovered-seed backoff (at most `gi / 2`, plus spread).
            self.next_tick = self.next_tick.min(s.next_attempt_at);
        }
        t
    }

    /// The figures of the last tick (for the diagnostic line).
    pub fn last_plan(&self) -> Option<&TickPlan> {
        self.last_plan.as_ref()
    }

    /// Ticks that wanted to dial but were held back by `desired_connected`.
    pub fn saturated_ticks(&self) -> u64 {
        self.saturated_ticks
    }

    /// Dials in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn cands(urls: &[(&str, bool)]) -> Vec<(String, bool)> {
        urls.iter().map(|(u, c)| (u.to_string(), *c)).collect()
    }

    #[test]
    fn a_failed_seed_dial_is_retried_when_its_backoff_ends() {
        // One seed at MPREG's default 5 s interval: the reconcile loop would
        // sleep 5 s, the unrecovered-seed backoff is 2.5 s plus spread.
        let mut d = Dialer::new(
            "ws://me:1",
            5.0,
            ["ws://a:1".to_string()],
            ["ws://me:1".to_string()],
        );
        let c = cands(&[("ws://a:1", false)]);
        let t0 = Instant::ZERO;
        assert_eq!(d.tick(t0, &c, 1.0), vec!["ws://a:1".to_string()]);
        assert!(d.next_deadline() >= t0 + Duration::from_secs(5));
        let failed_at = t0 + Duration::from_millis(3);
        d.failed("ws://a:1", failed_at);
        let retry = d.next_deadline();
        assert!(
            retry > failed_at + Duration::from_millis(2400)
                && retry < failed_at + Duration::from_millis(3200),
            "retry {:?} after the failure",
            retry.saturating_duration_since(failed_at)
        );
        assert_eq!(d.tick(retry, &c, 1.0), vec!["ws://a:1".to_string()]);
    }

    #[test]
    fn small_cluster_dials_every_unconnected_peer_once() {
        let mut d = Dialer::new(
            "ws://me:1",
            1.0,
            ["ws://a:1".to_string()],
            ["ws://me:1".to_string()],
        );
        let t0 = Instant::ZERO;
        let c = cands(&[
            ("ws://a:1", false),
            ("ws://b:1", true),
            ("ws://c:1", false),
            ("ws://me:1", false),
        ]);
        let mut sel = d.tick(t0, &c, 1.0);
        sel.sort();
        assert_eq!(sel, vec!["ws://a:1".to_string(), "ws://c:1".to_string()]);
        // In flight: not dialled again on the next tick.
        let t1 = d.next_deadline();
        assert!(t1 > t0);
        assert!(d.tick(t1, &c, 1.0).is_empty());
        assert_eq!(d.in_flight(), 2);
    }

    #[test]
    fn failures_back_off_and_success_resets() {
        let mut d = Dialer::new(
            "ws://me:1",
            1.0,
            std::iter::empty(),
            ["ws://me:1".to_string()],
        );
        let c = cands(&[("ws://a:1", false)]);
        assert_eq!(d.tick(Instant::ZERO, &c, 1.0), vec!["ws://a:1".to_string()]);
        let now = Instant::ZERO + Duration::from_millis(100);
        assert_eq!(d.failed("ws://a:1", now), 1);
        // Not due again before the backoff elapses.
        let soon = now + Duration::from_millis(50);
        assert!(d.tick(soon, &c, 1.0).is_empty());
        let later = now + Duration::from_secs(10);
        assert_eq!(d.tick(later, &c, 1.0), vec!["ws://a:1".to_string()]);
        d.succeeded("ws://a:1", later);
        assert_eq!(d.in_flight(), 0);
    }

    #[test]
    fn self_urls_are_never_dialled() {
        let mut d = Dialer::new(
            "ws://me:1",
            1.0,
            ["ws://alias:1".to_string()],
            ["ws://me:1".to_string()],
        );
        d.is_self("ws://alias:1");
        assert!(d
            .tick(
                Instant::ZERO,
                &cands(&[("ws://alias:1", false), ("ws://me:1", false)]),
                1.0
            )
            .is_empty());
        assert_eq!(d.seeds().count(), 0);
    }
}
