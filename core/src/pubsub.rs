//! Client subscriptions (MPREG's `pubsub-subscribe`) and delivery of
//! published messages to them, matched AMQP-style (`*` one level, `#` zero or
//! more levels).
//!
//! Subscriptions belong to the connection that made them and disappear with
//! it. Each connection may hold a bounded number
//! (`client_max_subscriptions_per_connection`), so a client cannot grow the
//! node's memory without limit.

use std::collections::{BTreeMap, HashMap};

use crate::catalog::namespace::topic_matches;
use crate::io::ConnId;

/// Upper bound on patterns per subscription.
pub const MAX_PATTERNS_PER_SUBSCRIPTION: usize = 64;

/// Why a subscription was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscribeError {
    /// Too many subscriptions on one connection.
    #[error(
        "subscription limit of {limit} per connection reached \
         (client_max_subscriptions_per_connection)"
    )]
    TooMany {
        /// The limit in force.
        limit: usize,
    },
    /// Too many patterns in one subscription.
    #[error("a subscription may hold at most {MAX_PATTERNS_PER_SUBSCRIPTION} patterns")]
    TooManyPatterns,
}

#[derive(Debug, Clone)]
struct Subscription {
    conn: ConnId,
    patterns: Vec<String>,
}

/// All live subscriptions of a node.
#[derive(Debug)]
pub struct Subscriptions {
    by_key: BTreeMap<(ConnId, String), Subscription>,
    per_conn: HashMap<ConnId, usize>,
    max_per_conn: usize,
}

impl Subscriptions {
    /// No subscriptions yet; each connection may hold up to `max_per_conn`.
    pub fn new(max_per_conn: usize) -> Self {
        Subscriptions {
            by_key: BTreeMap::new(),
            per_conn: HashMap::new(),
            max_per_conn,
        }
    }

    /// Adds (or replaces) subscription `id` of connection `conn`.
    pub fn subscribe(
        &mut self,
        conn: ConnId,
        id: &str,
        patterns: Vec<String>,
    ) -> Result<(), SubscribeError> {
        if patterns.len() > MAX_PATTERNS_PER_SUBSCRIPTION {
            return Err(SubscribeError::TooManyPatterns);
        }
        let key = (conn, id.to_string());
        if !self.by_key.contains_key(&key) {
            let count = self.per_conn.entry(conn).or_default();
            if *count >= self.max_per_conn {
                return Err(SubscribeError::TooMany {
                    limit: self.max_per_conn,
                });
            }
            *count += 1;
        }
        self.by_key.insert(key, Subscription { conn, patterns });
        Ok(())
    }

    /// Removes one subscription; true if it existed.
    pub fn unsubscribe(&mut self, conn: ConnId, id: &str) -> bool {
        let existed = self.by_key.remove(&(conn, id.to_string())).is_some();
        if existed {
            if let Some(c) = self.per_conn.get_mut(&conn) {
                *c = c.saturating_sub(1);
            }
        }
        existed
    }

    /// Drops everything a closed connection held.
    pub fn drop_conn(&mut self, conn: ConnId) {
        self.by_key.retain(|_, s| s.conn != conn);
        self.per_conn.remove(&conn);
    }

    /// Every (connection, subscription id) whose patterns match `topic`.
    pub fn matching(&self, topic: &str) -> Vec<(ConnId, String)> {
        self.by_key
            .iter()
            .filter(|(_, s)| s.patterns.iter().any(|p| topic_matches(p, topic)))
            .map(|((conn, id), _)| (*conn, id.clone()))
            .collect()
    }

    /// Whether `conn` holds any subscription (it is waiting for
    /// deliveries, so it is not idle).
    pub fn has_conn(&self, conn: ConnId) -> bool {
        self.per_conn.get(&conn).is_some_and(|n| *n > 0)
    }

    /// Number of live subscriptions.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// True when nothing is subscribed.
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_follows_patterns_and_connections() {
        let mut s = Subscriptions::new(8);
        s.subscribe(1, "a", vec!["mpreg.discovery.delta.#".into()])
            .unwrap();
        s.subscribe(2, "b", vec!["mpreg.*.delta".into()]).unwrap();
        s.subscribe(2, "c", vec!["other".into()]).unwrap();
        assert_eq!(
            s.matching("mpreg.discovery.delta"),
            vec![(1, "a".to_string()), (2, "b".to_string())]
        );
        assert_eq!(
            s.matching("mpreg.discovery.delta.svc.market"),
            vec![(1, "a".to_string())]
        );
        assert!(s.unsubscribe(1, "a"));
        assert!(!s.unsubscribe(1, "a"));
        s.drop_conn(2);
        assert!(s.is_empty());
    }

    #[test]
    fn per_connection_cap_is_enforced() {
        let mut s = Subscriptions::new(3);
        for i in 0..3 {
            s.subscribe(1, &i.to_string(), vec!["t".into()]).unwrap();
        }
        let e = s.subscribe(1, "extra", vec!["t".into()]).unwrap_err();
        assert_eq!(e, SubscribeError::TooMany { limit: 3 });
        assert!(e
            .to_string()
            .contains("client_max_subscriptions_per_connection"));
        assert!(s.has_conn(1) && !s.has_conn(2));
        // Replacing an existing id is not a new subscription.
        s.subscribe(1, "0", vec!["u".into()]).unwrap();
        // Another connection has its own budget.
        s.subscribe(2, "x", vec!["t".into()]).unwrap();
    }
}
