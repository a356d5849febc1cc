//! Registrations made over RPC (`catalog_register`, `dns_register`): which
//! of this node's own catalog entries exist because a client asked for
//! them, and when each one ends.
//!
//! A registration ends in one of three ways, whichever comes first:
//! - **lease**: it was registered with `ttl_seconds` and not registered
//!   again (refreshed) within that time;
//! - **connection**: it was registered with `bind_to_connection: true` and
//!   that client connection closed;
//! - **explicit**: `catalog_unregister` / `dns_unregister`.
//!
//! A `dns_register` registration without a lease or binding lives until it
//! is unregistered, as in MPREG.
//!
//! This module only keeps the books (keys, deadlines, bindings, what must
//! be persisted). The node turns every start and end into
//! `Replica::put_own` / `remove_own`, so registrations are versioned and
//! gossiped like any other own entry, and publishes the watch deltas.
//!
//! Persistence: registrations made with `persist: true` are written as one
//! JSON document ([`PERSIST_FILE`], see [`Registry::take_snapshot`]) through
//! `Output::Persist`, and read back at start through `Input::Restored`
//! ([`decode_snapshot`]). A restored registration is re-stamped with the
//! node's current identity (the node may come back on another port), and a
//! restored lease starts afresh at restore time: the client could not
//! refresh it while the node was down, so counting that time against it
//! would withdraw every leased registration of a node that restarted
//! slowly. Lease deadlines are not stored, so refreshing a persisted lease
//! does not rewrite the file.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::catalog::entry::{Entry, EntryKey, EntryKind};
use crate::io::ConnId;
use crate::time::{secs, Instant};

/// The file (inside `data_dir`) that holds persisted registrations.
pub const PERSIST_FILE: &str = "registrations.json";

/// Version of the [`PERSIST_FILE`] format.
const FORMAT: u32 = 1;

/// Which RPC made a registration (they answer in different shapes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `catalog_register` (ours).
    Catalog,
    /// `dns_register` (MPREG's).
    Dns,
}

/// A registration's lease: it ends at `until` unless registered again.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lease {
    /// Lease length; every refresh grants this much again.
    pub ttl_seconds: f64,
    /// Local monotonic deadline.
    pub until: Instant,
}

impl Lease {
    /// A lease of `ttl_seconds` starting at `now`.
    pub fn starting(now: Instant, ttl_seconds: f64) -> Lease {
        Lease {
            ttl_seconds,
            until: now + secs(ttl_seconds),
        }
    }
}

/// One registration.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    /// Id answered to the client (a ULID for `catalog_register`, a UUID4
    /// for `dns_register`, as MPREG answers).
    pub registration_id: String,
    /// Which RPC made it.
    pub source: Source,
    /// The entry as registered (owned by this node).
    pub entry: Entry,
    /// Ends when not refreshed in time.
    pub lease: Option<Lease>,
    /// Ends when this client connection closes.
    pub conn: Option<ConnId>,
    /// Survives a restart (written to `data_dir`).
    pub persist: bool,
    /// Wall time of the first registration of this key.
    pub registered_at: f64,
}

/// What [`Registry::upsert`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Upsert {
    /// A new key: the entry must be put into the catalog.
    New,
    /// The same entry again: only the lease, binding or persistence
    /// changed. The catalog entry stays as it is (the node keeps it fresh),
    /// so a heartbeat costs no gossip.
    Refreshed,
    /// The entry's content changed: the new one must be put. `previous` is
    /// what was registered before (to put back if the new one is refused).
    Changed {
        /// The replaced registration.
        previous: Box<Registration>,
    },
}

/// Whether two entries are the same but for their freshness
/// (`advertised_at`).
fn same_content(a: &Entry, b: &Entry) -> bool {
    if a.kind() != b.kind() || a.key() != b.key() {
        return false;
    }
    let strip = |e: &Entry| {
        let mut v = e.to_json();
        if let Some(m) = v.as_object_mut() {
            m.remove("advertised_at");
        }
        v
    };
    strip(a) == strip(b)
}

/// Entry TTLs as a multiset key (milliseconds), for the smallest one.
fn ttl_key(e: &Entry) -> u64 {
    let ms = (e.ttl_seconds() * 1000.0).round();
    if ms.is_finite() && ms > 0.0 {
        ms as u64
    } else {
        0
    }
}

/// The registrations of one node.
#[derive(Debug, Default)]
pub struct Registry {
    regs: BTreeMap<EntryKey, Registration>,
    by_conn: HashMap<ConnId, BTreeSet<EntryKey>>,
    deadlines: BTreeSet<(Instant, EntryKey)>,
    /// Keys of the node's configured entries (descriptor, built-in RPCs,
    /// settings-file entries): not registrable, so a client can neither
    /// replace nor withdraw them.
    reserved: BTreeSet<EntryKey>,
    /// Multiset of registered entry TTLs (ms → count).
    ttls: BTreeMap<u64, usize>,
    /// A persisted registration changed since the last snapshot.
    dirty: bool,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Marks keys as belonging to the node's configuration.
    pub fn reserve(&mut self, keys: impl IntoIterator<Item = EntryKey>) {
        self.reserved.extend(keys);
    }

    /// True for a key of the node's configuration.
    pub fn is_reserved(&self, key: &EntryKey) -> bool {
        self.reserved.contains(key)
    }

    /// The registration of this key.
    pub fn get(&self, key: &EntryKey) -> Option<&Registration> {
        self.regs.get(key)
    }

    /// The key of the registration with this id (a scan: unregistering by
    /// id is rare next to registering).
    pub fn key_of_id(&self, registration_id: &str) -> Option<EntryKey> {
        self.regs
            .iter()
            .find(|(_, r)| r.registration_id == registration_id)
            .map(|(k, _)| k.clone())
    }

    /// Number of registrations.
    pub fn len(&self) -> usize {
        self.regs.len()
    }

    /// True when nothing is registered.
    pub fn is_empty(&self) -> bool {
        self.regs.is_empty()
    }

    /// Every registration, in key order.
    pub fn iter(&self) -> impl Iterator<Item = &Registration> {
        self.regs.values()
    }

    /// Records `reg` (new, or replacing the registration of the same key).
    /// The newest terms win: a refresh without `bind_to_connection` unbinds,
    /// one without `ttl_seconds` drops the lease.
    pub fn upsert(&mut self, mut reg: Registration) -> Upsert {
        let key = reg.entry.key();
        let outcome = match self.unlink(&key) {
            None => Upsert::New,
            Some(old) => {
                reg.registered_at = old.registered_at;
                if same_content(&old.entry, &reg.entry) {
                    // Keep the stored entry: it is what the catalog holds.
                    reg.entry = old.entry.clone();
                    if old.persist || reg.persist {
                        self.dirty |= old.persist != reg.persist
                            || old.registration_id != reg.registration_id;
                    }
                    Upsert::Refreshed
                } else {
                    self.dirty |= old.persist || reg.persist;
                    Upsert::Changed {
                        previous: Box::new(old),
                    }
                }
            }
        };
        if matches!(outcome, Upsert::New) {
            self.dirty |= reg.persist;
        }
        self.link(key, reg);
        outcome
    }

    /// Removes the registration of `key`.
    pub fn remove(&mut self, key: &EntryKey) -> Option<Registration> {
        let reg = self.unlink(key)?;
        self.dirty |= reg.persist;
        Some(reg)
    }

    /// Removes every registration bound to a closed connection.
    pub fn drop_conn(&mut self, conn: ConnId) -> Vec<Registration> {
        let Some(keys) = self.by_conn.remove(&conn) else {
            return Vec::new();
        };
        keys.iter().filter_map(|k| self.remove(k)).collect()
    }

    /// Whether a registration is bound to `conn` (its client keeps the
    /// connection open to keep the registration, so it is not idle).
    pub fn has_conn(&self, conn: ConnId) -> bool {
        self.by_conn.contains_key(&conn)
    }

    /// Removes every registration whose lease ended at or before `now`.
    pub fn expire(&mut self, now: Instant) -> Vec<Registration> {
        let due: Vec<EntryKey> = self
            .deadlines
            .iter()
            .take_while(|(at, _)| *at <= now)
            .map(|(_, k)| k.clone())
            .collect();
        due.iter().filter_map(|k| self.remove(k)).collect()
    }

    /// The earliest lease deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// The smallest entry TTL of any registration (seconds): the owner must
    /// refresh its entries well within it, or peers would expire them
    /// between refreshes.
    pub fn min_entry_ttl(&self) -> Option<f64> {
        self.ttls.keys().next().map(|ms| *ms as f64 / 1000.0)
    }

    /// The persisted registrations as the [`PERSIST_FILE`] document, if
    /// they changed since the last call.
    pub fn take_snapshot(&mut self) -> Option<Vec<u8>> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        let registrations: Vec<StoredRegistration> = self
            .regs
            .values()
            .filter(|r| r.persist)
            .map(|r| StoredRegistration {
                registration_id: r.registration_id.clone(),
                source: r.source,
                entry_type: r.entry.kind(),
                entry: r.entry.to_json(),
                lease_ttl_seconds: r.lease.map(|l| l.ttl_seconds),
                registered_at: r.registered_at,
            })
            .collect();
        let doc = Snapshot {
            format: FORMAT,
            registrations,
        };
        // A Vec of plain structs with string keys always serialises.
        serde_json::to_vec_pretty(&doc).ok()
    }

    fn link(&mut self, key: EntryKey, reg: Registration) {
        if let Some(conn) = reg.conn {
            self.by_conn.entry(conn).or_default().insert(key.clone());
        }
        if let Some(lease) = reg.lease {
            self.deadlines.insert((lease.until, key.clone()));
        }
        *self.ttls.entry(ttl_key(&reg.entry)).or_default() += 1;
        self.regs.insert(key, reg);
    }

    fn unlink(&mut self, key: &EntryKey) -> Option<Registration> {
        let reg = self.regs.remove(key)?;
        if let Some(conn) = reg.conn {
            if let Some(keys) = self.by_conn.get_mut(&conn) {
                keys.remove(key);
                if keys.is_empty() {
                    self.by_conn.remove(&conn);
                }
            }
        }
        if let Some(lease) = reg.lease {
            self.deadlines.remove(&(lease.until, key.clone()));
        }
        let t = ttl_key(&reg.entry);
        if let Some(n) = self.ttls.get_mut(&t) {
            *n -= 1;
            if *n == 0 {
                self.ttls.remove(&t);
            }
        }
        Some(reg)
    }
}

/// The [`PERSIST_FILE`] document.
#[derive(Debug, Serialize, Deserialize)]
struct Snapshot {
    format: u32,
    registrations: Vec<StoredRegistration>,
}

/// One persisted registration.
#[derive(Debug, Serialize, Deserialize)]
struct StoredRegistration {
    registration_id: String,
    source: Source,
    entry_type: EntryKind,
    /// The catalog item (MPREG's shape).
    entry: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lease_ttl_seconds: Option<f64>,
    registered_at: f64,
}

/// A registration read back from [`PERSIST_FILE`], re-stamped for this
/// node, not yet registered.
#[derive(Debug, Clone, PartialEq)]
pub struct Restored {
    /// The registration's id.
    pub registration_id: String,
    /// Which RPC made it.
    pub source: Source,
    /// The entry, owned by this node, advertised at the restore time.
    pub entry: Entry,
    /// Lease length, when it had one.
    pub lease_ttl_seconds: Option<f64>,
    /// Wall time of the original registration.
    pub registered_at: f64,
}

/// Decodes a [`PERSIST_FILE`] document. Every entry is re-stamped with this
/// node's `node_id` / `cluster_id` and advertised at `wall`. A document that
/// is not ours fails as a whole; a single bad registration in it is
/// skipped and reported in the second list (a damaged entry must not cost
/// the others).
pub fn decode_snapshot(
    bytes: &[u8],
    node_id: &str,
    cluster_id: &str,
    wall: f64,
) -> Result<(Vec<Restored>, Vec<String>), String> {
    let doc: Snapshot =
        serde_json::from_slice(bytes).map_err(|e| format!("{PERSIST_FILE}: {e}"))?;
    if doc.format != FORMAT {
        return Err(format!(
            "{PERSIST_FILE}: format {} is not {FORMAT}",
            doc.format
        ));
    }
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for (i, stored) in doc.registrations.into_iter().enumerate() {
        let mut item = stored.entry;
        let Some(map) = item.as_object_mut() else {
            bad.push(format!("registration {i}: entry is not an object"));
            continue;
        };
        map.insert("node_id".into(), Value::from(node_id));
        map.insert("cluster_id".into(), Value::from(cluster_id));
        map.insert("advertised_at".into(), Value::from(wall));
        match Entry::from_json(stored.entry_type, item) {
            Ok(entry) => out.push(Restored {
                registration_id: stored.registration_id,
                source: stored.source,
                entry,
                lease_ttl_seconds: stored
                    .lease_ttl_seconds
                    .filter(|t| t.is_finite() && *t > 0.0),
                registered_at: stored.registered_at,
            }),
            Err(e) => bad.push(format!("registration {i}: {e}")),
        }
    }
    Ok((out, bad))
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
