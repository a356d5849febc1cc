//! Resolver mode (`discovery_logic.md` §8): a mirror of the node's catalog
//! ([`mirror`]) that `catalog_query` and `cluster_map_v2` answer from, with
//! a stale-while-revalidate query cache ([`query_cache`]) in front.

pub mod mirror;
pub mod query_cache;

use serde_json::{json, Value};

use crate::config::Settings;

use mirror::Mirror;
use query_cache::{QueryCache, QueryCacheConfig};

/// Resolver settings (`discovery_resolver_*`).
#[derive(Debug, Clone, PartialEq)]
pub struct ResolverConfig {
    /// `discovery_resolver_mode`.
    pub enabled: bool,
    /// `discovery_resolver_namespaces` (trimmed, blanks dropped).
    pub namespaces: Vec<String>,
    /// `discovery_resolver_seed_on_start`.
    pub seed_on_start: bool,
    /// Prune interval; `None` disables (`<= 0`), else at least 1 s.
    pub prune_interval_seconds: Option<f64>,
    /// Periodic resync interval; `None` disables, else at least 1 s.
    pub resync_interval_seconds: Option<f64>,
    /// The query cache.
    pub cache: QueryCacheConfig,
}

/// MPREG's interval rule: `<= 0` disables, otherwise at least one second.
fn interval(raw: f64) -> Option<f64> {
    (raw > 0.0).then(|| raw.max(1.0))
}

impl ResolverConfig {
    /// From normalised settings.
    pub fn from_settings(s: &Settings) -> ResolverConfig {
        ResolverConfig {
            enabled: s.discovery_resolver_mode,
            namespaces: s
                .discovery_resolver_namespaces
                .iter()
                .map(|n| n.trim().to_string())
                .filter(|n| !n.is_empty())
                .collect(),
            seed_on_start: s.discovery_resolver_seed_on_start,
            prune_interval_seconds: interval(s.discovery_resolver_prune_interval_seconds),
            resync_interval_seconds: interval(s.discovery_resolver_resync_interval_seconds),
            cache: QueryCacheConfig {
                enabled: s.discovery_resolver_query_cache_enabled,
                ttl_seconds: s.discovery_resolver_query_ttl_seconds,
                stale_seconds: s.discovery_resolver_query_stale_seconds,
                negative_ttl_seconds: s.discovery_resolver_query_negative_ttl_seconds,
                max_entries: usize::try_from(s.discovery_resolver_query_cache_max_entries)
                    .unwrap_or(0),
                refresh_ahead: query_cache::DEFAULT_REFRESH_AHEAD,
                keep_warm_ttls: s.discovery_resolver_query_keep_warm_ttls,
            },
        }
    }
}

/// The resolver: mirror plus query cache.
#[derive(Debug, Clone)]
pub struct Resolver {
    /// Settings.
    pub cfg: ResolverConfig,
    /// The mirrored catalog.
    pub mirror: Mirror,
    /// Cached answers.
    pub cache: QueryCache,
}

impl Resolver {
    /// A resolver (empty until seeded or fed); `hash_seed` seeds the query
    /// cache's key hashing.
    pub fn new(cfg: ResolverConfig, hash_seed: u64) -> Resolver {
        Resolver {
            mirror: Mirror::new(&cfg.namespaces),
            cache: QueryCache::with_hash_seed(cfg.cache.clone(), hash_seed),
            cfg,
        }
    }

    /// `resolver_cache_stats` (§8.5): MPREG's fields; `stats` adds `resyncs`
    /// and `gap_resyncs`, `query_cache` adds `hit_rate`, `stale_serves` and
    /// `negative_hits`.
    pub fn cache_stats(&self, now: f64) -> Value {
        let empty;
        let counted = if self.cfg.enabled {
            self.mirror.catalog()
        } else {
            empty = crate::catalog::store::Catalog::new();
            &empty
        };
        let mut v = json!({
            "enabled": self.cfg.enabled,
            "generated_at": now,
            "namespaces": self.cfg.namespaces,
            "entry_counts": mirror::entry_counts(counted),
        });
        if self.cfg.enabled {
            v["stats"] = self.mirror.stats_json();
            if self.cfg.cache.enabled {
                v["query_cache"] = self.cache.snapshot();
            }
        }
        v
    }

    /// The answer of `resolver_resync` after a seed (or why there was none).
    pub fn resync_reply(&self, now: f64, resynced: bool) -> Value {
        if !self.cfg.enabled {
            return json!({
                "enabled": false,
                "generated_at": now,
                "resynced": false,
                "error": "resolver_mode_disabled",
            });
        }
        json!({
            "enabled": true,
            "generated_at": now,
            "resynced": resynced,
            "entry_counts": mirror::entry_counts(self.mirror.catalog()),
            "stats": self.mirror.stats_json(),
        })
    }

    /// Seconds since the last applied change (MPREG's `delta_lag_seconds`).
    pub fn delta_lag_seconds(&self, now: f64) -> Option<f64> {
        self.mirror
            .stats()
            .last_delta_at
            .map(|t| (now - t).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_shapes_match_mpreg() {
        let r = Resolver::new(ResolverConfig::from_settings(&Settings::default()), 0);
        let s = r.cache_stats(5.0);
        assert_eq!(s["enabled"], false);
        assert_eq!(s["entry_counts"]["functions"], 0);
        assert!(s.get("stats").is_none());
        let rs = r.resync_reply(5.0, false);
        assert_eq!(rs["error"], "resolver_mode_disabled");
    }

    #[test]
    fn intervals_clamp_like_mpreg() {
        assert_eq!(interval(0.0), None);
        assert_eq!(interval(-1.0), None);
        assert_eq!(interval(0.2), Some(1.0));
        assert_eq!(interval(30.0), Some(30.0));
    }
}
