//! Server-side latency histograms (`discovery.query.latency_ms`, DNS).
//!
//! The sans-IO core never reads a clock, and a query is answered within one
//! `Node::handle` call, whose `now` does not move. So the runtime times the
//! call and hands the duration back with [`crate::Node::record_handle_time`];
//! the node files it under the kind of input it just handled (a discovery
//! query, a DNS query) or drops it (anything else). What is measured is the
//! node's own work for the answer: decoding, policy, lookup and encoding the
//! reply, not the socket write.
//!
//! Fixed buckets (Prometheus histogram semantics: cumulative `le` counts,
//! `_sum`, `_count`), so memory is constant however many queries arrive.

use std::time::Duration;

use super::exposition::{Exposition, Kind};

/// Bucket upper bounds in milliseconds: from 10 µs (an index hit) to a
/// second (something is badly wrong).
pub const BUCKETS_MS: [f64; 14] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 100.0, 250.0, 1000.0,
];

/// One latency histogram.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LatencyHistogram {
    /// Observations per bucket (not cumulative); the last slot is `+Inf`.
    counts: [u64; BUCKETS_MS.len() + 1],
    count: u64,
    sum_ms: f64,
}

impl LatencyHistogram {
    /// Files one observation.
    pub fn observe(&mut self, elapsed: Duration) {
        let ms = elapsed.as_secs_f64() * 1000.0;
        let slot = BUCKETS_MS
            .iter()
            .position(|&le| ms <= le)
            .unwrap_or(BUCKETS_MS.len());
        if let Some(c) = self.counts.get_mut(slot) {
            *c += 1;
        }
        self.count += 1;
        self.sum_ms += ms;
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The upper bound (ms) of the bucket holding quantile `q` (0..=1):
    /// an over-estimate by at most one bucket. `None` before any
    /// observation; `f64::INFINITY` when it lies above the last bound.
    pub fn quantile_upper_ms(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * self.count as f64).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(BUCKETS_MS.get(i).copied().unwrap_or(f64::INFINITY));
            }
        }
        Some(f64::INFINITY)
    }

    /// Mean in milliseconds, `None` before any observation.
    pub fn mean_ms(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum_ms / self.count as f64)
    }

    /// Writes the family `name` (`_bucket`, `_sum`, `_count`).
    pub fn write(&self, e: &mut Exposition, name: &str, help: &str) {
        e.family(name, Kind::Histogram, help);
        let mut cumulative = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            cumulative += c;
            let le = BUCKETS_MS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            e.suffixed("_bucket", &[("le", &le)], cumulative as f64);
        }
        e.suffixed("_sum", &[], self.sum_ms);
        e.suffixed("_count", &[], self.count as f64);
    }
}

/// The node's latency histograms.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latencies {
    /// Discovery queries (`catalog_query`, `cluster_map_v2`, `list_peers`,
    /// `summary_query`, ...), per RPC envelope.
    pub query: LatencyHistogram,
    /// DNS gateway queries.
    pub dns: LatencyHistogram,
}

/// What the input being handled was, for [`Latencies`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timed {
    /// A client RPC envelope with a discovery query in it.
    Query,
    /// A DNS query.
    Dns,
}

impl Latencies {
    /// Files `elapsed` under `what`.
    pub fn observe(&mut self, what: Timed, elapsed: Duration) {
        match what {
            Timed::Query => self.query.observe(elapsed),
            Timed::Dns => self.dns.observe(elapsed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    #[test]
    fn buckets_are_cumulative_with_sum_and_count() {
        let mut h = LatencyHistogram::default();
        assert_eq!(h.quantile_upper_ms(0.5), None);
        assert_eq!(h.mean_ms(), None);
        for d in [us(8), us(40), us(40), us(900), us(3_000_000)] {
            h.observe(d);
        }
        assert_eq!(h.count(), 5);
        assert_eq!(h.quantile_upper_ms(0.2), Some(0.01));
        assert_eq!(h.quantile_upper_ms(0.5), Some(0.05));
        assert_eq!(h.quantile_upper_ms(0.8), Some(1.0));
        assert_eq!(h.quantile_upper_ms(0.99), Some(f64::INFINITY));
        let mut e = Exposition::new();
        h.write(&mut e, "mpreg_x_ms", "X.");
        let text = e.finish();
        assert!(text.contains("# TYPE mpreg_x_ms histogram\n"), "{text}");
        assert!(
            text.contains("mpreg_x_ms_bucket{le=\"0.01\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("mpreg_x_ms_bucket{le=\"0.05\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("mpreg_x_ms_bucket{le=\"1000\"} 4\n"),
            "{text}"
        );
        assert!(
            text.contains("mpreg_x_ms_bucket{le=\"+Inf\"} 5\n"),
            "{text}"
        );
        assert!(text.contains("mpreg_x_ms_count 5\n"), "{text}");
        assert!(text.contains("mpreg_x_ms_sum 3000.988\n"), "{text}");
    }

    #[test]
    fn an_exact_bound_falls_in_its_bucket() {
        let mut h = LatencyHistogram::default();
        h.observe(Duration::from_micros(100));
        assert_eq!(h.quantile_upper_ms(1.0), Some(0.1));
    }
}
