//! Per-source rate limiting of DNS queries: a token bucket per source
//! address (IPv4 per address, IPv6 per /64, since one host owns a whole
//! /64), bounded in memory. Pure: time is an argument.
//!
//! Over its rate a source's queries alternate between [`Verdict::Slip`]
//! and [`Verdict::Drop`] (as RRL's "slip 2"): over UDP a slip is an empty
//! truncated reply, so a real client retries over TCP (which a spoofed
//! source cannot), and the reply is no larger than the query, so the
//! gateway is useless as an amplifier; a drop sends nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use crate::time::Instant;

/// Limits of the per-source token bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitConfig {
    /// Sustained queries per second per source; `0` disables limiting.
    pub queries_per_second: f64,
    /// Bucket size: queries a quiet source may send at once.
    pub burst: f64,
    /// Sources tracked at most; the least recently seen is forgotten first
    /// (a forgotten source starts again with a full bucket).
    pub max_sources: usize,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            queries_per_second: 200.0,
            burst: 400.0,
            max_sources: 10_000,
        }
    }
}

/// What to do with one query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answer it.
    Allow,
    /// Over the limit: answer minimally (UDP: empty reply with TC=1;
    /// TCP: REFUSED).
    Slip,
    /// Over the limit: send nothing (TCP: REFUSED anyway, TCP sources are
    /// not spoofed).
    Drop,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
    limited: u64,
}

/// Token buckets keyed by source.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    config: RateLimitConfig,
    buckets: BTreeMap<IpAddr, Bucket>,
    /// `(last seen, source)`, to forget the stalest source first.
    recency: BTreeSet<(Instant, IpAddr)>,
}

/// The bucket key of a source: IPv6 addresses share their /64.
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let mut s = v6.segments();
            s[4..].fill(0);
            IpAddr::V6(s.into())
        }
    }
}

impl RateLimiter {
    /// A limiter with these limits.
    pub fn new(config: RateLimitConfig) -> RateLimiter {
        RateLimiter {
            config,
            buckets: BTreeMap::new(),
            recency: BTreeSet::new(),
        }
    }

    /// The limits.
    pub fn config(&self) -> &RateLimitConfig {
        &self.config
    }

    /// Sources currently tracked.
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }

    /// Takes one token for a query from `src` at `now`.
    pub fn check(&mut self, src: IpAddr, now: Instant) -> Verdict {
        let rate = self.config.queries_per_second;
        if !(rate > 0.0 && rate.is_finite()) || self.config.max_sources == 0 {
            return Verdict::Allow;
        }
        let burst = self.config.burst.max(1.0);
        let key = source_key(src);
        let mut bucket = match self.buckets.remove(&key) {
            Some(b) => {
                self.recency.remove(&(b.last, key));
                let elapsed = now.saturating_duration_since(b.last);
                Bucket {
                    tokens: (b.tokens + elapsed.as_secs_f64() * rate).min(burst),
                    last: now.max(b.last),
                    limited: b.limited,
                }
            }
            None => {
                while self.buckets.len() >= self.config.max_sources {
                    match self.recency.pop_first() {
                        Some((_, stale)) => {
                            self.buckets.remove(&stale);
                        }
                        None => break,
                    }
                }
                Bucket {
                    tokens: burst,
                    last: now,
                    limited: 0,
                }
            }
        };
        let verdict = if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Verdict::Allow
        } else {
            bucket.limited += 1;
            if bucket.limited % 2 == 1 {
                Verdict::Slip
            } else {
                Verdict::Drop
            }
        };
        self.recency.insert((bucket.last, key));
        self.buckets.insert(key, bucket);
        verdict
    }

    /// Forgets sources idle for so long that their bucket is full again.
    pub fn prune(&mut self, now: Instant) {
        let rate = self.config.queries_per_second;
        if !(rate > 0.0 && rate.is_finite()) {
            self.buckets.clear();
            self.recency.clear();
            return;
        }
        let refill = Duration::from_secs_f64((self.config.burst.max(1.0) / rate).min(86_400.0));
        while let Some(&(last, key)) = self.recency.first() {
            if now.saturating_duration_since(last) < refill {
                break;
            }
            self.recency.pop_first();
            self.buckets.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn bucket_allows_burst_then_alternates_slip_and_drop() {
        let mut rl = RateLimiter::new(RateLimitConfig {
            queries_per_second: 10.0,
            burst: 5.0,
            max_sources: 100,
        });
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..5 {
            assert_eq!(rl.check(ip, at(0)), Verdict::Allow);
        }
        assert_eq!(rl.check(ip, at(0)), Verdict::Slip);
        assert_eq!(rl.check(ip, at(0)), Verdict::Drop);
        assert_eq!(rl.check(ip, at(0)), Verdict::Slip);
        // 100 ms later one token is back
        assert_eq!(rl.check(ip, at(100)), Verdict::Allow);
        assert_ne!(rl.check(ip, at(100)), Verdict::Allow);
        // another source is independent
        assert_eq!(
            rl.check("192.0.2.2".parse().unwrap(), at(100)),
            Verdict::Allow
        );
    }

    #[test]
    fn ipv6_sources_share_a_64() {
        let mut rl = RateLimiter::new(RateLimitConfig {
            queries_per_second: 1.0,
            burst: 1.0,
            max_sources: 100,
        });
        assert_eq!(
            rl.check("2001:db8::1".parse().unwrap(), at(0)),
            Verdict::Allow
        );
        assert_ne!(
            rl.check("2001:db8::2".parse().unwrap(), at(0)),
            Verdict::Allow
        );
        assert_eq!(
            rl.check("2001:db8:0:1::1".parse().unwrap(), at(0)),
            Verdict::Allow
        );
        assert_eq!(
            source_key("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn memory_is_bounded_and_prune_forgets_idle_sources() {
        let mut rl = RateLimiter::new(RateLimitConfig {
            queries_per_second: 1.0,
            burst: 2.0,
            max_sources: 3,
        });
        for i in 0..10u8 {
            rl.check(IpAddr::from([10, 0, 0, i]), at(u64::from(i)));
            assert!(rl.tracked() <= 3);
        }
        rl.prune(at(10_000));
        assert_eq!(rl.tracked(), 0);
    }

    #[test]
    fn disabled_allows_everything() {
        let mut rl = RateLimiter::new(RateLimitConfig {
            queries_per_second: 0.0,
            burst: 0.0,
            max_sources: 10,
        });
        for _ in 0..1000 {
            assert_eq!(
                rl.check("192.0.2.1".parse().unwrap(), at(0)),
                Verdict::Allow
            );
        }
        assert_eq!(rl.tracked(), 0);
    }
}
