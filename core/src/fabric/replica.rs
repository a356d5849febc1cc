//! Versioned per-origin state: the catalog dissemination protocol
//! (DESIGN.md §4, in the spirit of chitchat's scuttlebutt).
//!
//! - Every entry has an owner, its *origin* (node id + instance id). Only the
//!   owner changes its entries; each change gets the next value of the
//!   origin's version counter.
//! - A receiver holds every origin *contiguously* up to a `max_version`: a
//!   [`Delta`] covering `(floor, complete_to]` is applied only when
//!   `floor <= max_version`, so a lost message can never leave a silent hole.
//!   A gap triggers a repair (the caller sends a digest to the sender).
//! - Fresh changes are flooded once per node; duplicates are dropped by
//!   version (dedup by `(origin, version)`).
//! - Periodic digests (scuttlebutt) repair anything missed, in bounded pages.
//! - Removals are versioned tombstones, kept for a horizon. A peer so far
//!   behind that the tombstones it would need were collected gets a reset.
//! - Departed (GOODBYE) and failed `(origin, instance)` pairs are remembered
//!   for a horizon, so stale copies in flight cannot resurrect them. A failed
//!   node that is in fact alive comes back as soon as a *newer* heartbeat of
//!   it arrives; a departed one never does.
//! - Liveness: heartbeats ride the digests and deltas. An origin whose
//!   heartbeat stops advancing is suspected, then declared dead, after
//!   timeouts scaled by `log2` of the cluster size and the gossip interval.
//!
//! The catalog holds the live entries (the index every reader uses); this
//! module holds the versions and tombstones next to it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use super::digest::{DigestMirror, DigestSender};
use crate::catalog::entry::{Entry, EntryKey};
use crate::catalog::store::Catalog;
use crate::time::Instant;
use crate::wire::fabric::{Change, Changes, Delta, Digest, DigestEntry, FabricDecodeError};

/// The version slot of one key.
#[derive(Debug, Clone)]
struct Slot {
    version: u64,
    live: bool,
    /// When the key became a tombstone (local clock), for collection.
    dead_since: Option<Instant>,
}

/// Versions and tombstones of one origin.
#[derive(Debug, Clone, Default)]
struct Versions {
    max_version: u64,
    /// Versions at or below this may have had tombstones collected.
    gc_floor: u64,
    /// Both maps hold the same key (one allocation, shared): at 100k
    /// entries a second copy of every key costs tens of MiB.
    slots: BTreeMap<Arc<EntryKey>, Slot>,
    by_version: BTreeMap<u64, Arc<EntryKey>>,
    /// Slots that are tombstones (for the per-origin cap).
    dead: usize,
}

impl Versions {
    fn set(&mut self, key: EntryKey, version: u64, live: bool, now: Instant) {
        if let Some(old) = self.slots.get(&key) {
            self.by_version.remove(&old.version);
            if !old.live {
                self.dead -= 1;
            }
        }
        if !live {
            self.dead += 1;
        }
        let key = Arc::new(key);
        self.by_version.insert(version, Arc::clone(&key));
        self.slots.insert(
            key,
            Slot {
                version,
                live,
                dead_since: (!live).then_some(now),
            },
        );
        self.max_version = self.max_version.max(version);
    }

    fn live_keys(&self) -> impl Iterator<Item = &EntryKey> {
        self.slots.iter().filter(|(_, s)| s.live).map(|(k, _)| &**k)
    }

    /// Drops tombstones older than `horizon`; returns how many.
    fn collect(&mut self, now: Instant, horizon: Duration) -> usize {
        let doomed: Vec<(u64, Arc<EntryKey>)> = self
            .slots
            .iter()
            .filter(|(_, s)| {
                s.dead_since
                    .is_some_and(|t| now.saturating_duration_since(t) >= horizon)
            })
            .map(|(k, s)| (s.version, Arc::clone(k)))
            .collect();
        self.drop_tombstones(&doomed)
    }

    /// Forgets tombstones for good: versions up to the newest one dropped
    /// may now have holes, which the floor records (a peer asking from
    /// below it gets a reset).
    fn drop_tombstones(&mut self, doomed: &[(u64, Arc<EntryKey>)]) -> usize {
        for (v, k) in doomed {
            self.slots.remove(&**k);
            self.by_version.remove(v);
            self.gc_floor = self.gc_floor.max(*v);
        }
        self.dead -= doomed.len();
        doomed.len()
    }

    /// Drops the oldest tombstones beyond `max`; returns how many. Safe
    /// like collection by age: the floor rises past them, so a peer that
    /// still needed one gets a reset instead of a silent hole.
    fn trim(&mut self, max: usize) -> usize {
        if self.dead <= max {
            return 0;
        }
        let excess = self.dead - max;
        let doomed: Vec<(u64, Arc<EntryKey>)> = self
            .by_version
            .iter()
            .filter(|(_, k)| self.slots.get(&***k).is_some_and(|s| !s.live))
            .take(excess)
            .map(|(v, k)| (*v, Arc::clone(k)))
            .collect();
        self.drop_tombstones(&doomed)
    }
}

/// A remote origin as this node knows it.
#[derive(Debug, Clone)]
struct View {
    /// The origin (the map key), shared with every digest table.
    origin: Arc<str>,
    instance_id: Arc<str>,
    started_at: f64,
    heartbeat: u64,
    refreshed_at: f64,
    /// Local time of the last sign of life (heartbeat advanced, or a frame
    /// on a direct connection).
    last_seen: Instant,
    suspect: bool,
    versions: Versions,
}

/// Why an origin instance is remembered as gone.
#[derive(Debug, Clone, Copy)]
struct DeadRecord {
    /// When the departure or death was recorded.
    at: Instant,
    until: Instant,
    /// Heartbeat at the time of death; only a newer one revives it.
    /// `u64::MAX` for a GOODBYE (never revived).
    heartbeat: u64,
}

/// The result of applying a delta.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Applied {
    /// Changes applied (new versions).
    pub applied: usize,
    /// The delta started past what we hold: ask the sender for a repair.
    pub gap: bool,
    /// Relay the delta to the other peers, as a flood: it was a flood that
    /// brought something new (changes, heartbeat or refresh), or a repair
    /// that brought new changes. A repair is news for the neighbours too
    /// (a node that just joined through us, a healed partition): waiting
    /// for their next anti-entropy round would cost a gossip interval per
    /// hop (5 s at the default interval).
    pub relay: bool,
    /// A new instance of the origin replaced an older one.
    pub new_instance: bool,
    /// Catalog keys added or replaced.
    pub upserted: Vec<EntryKey>,
    /// Catalog entries removed.
    pub removed: Vec<Entry>,
    /// The delta's changes did not parse: nothing was applied, and the
    /// sender should be treated as sending a malformed frame.
    pub malformed: Option<FabricDecodeError>,
}

/// Tunables of the replica.
#[derive(Debug, Clone, Copy)]
pub struct ReplicaParams {
    /// How long tombstones and dead records are kept.
    pub horizon: Duration,
    /// Gossip interval (failure-detector unit).
    pub gossip_interval: Duration,
    /// Soft size budget of one delta page, in bytes.
    pub page_bytes: usize,
    /// Most departed / dead instance records kept at once
    /// (`fabric_max_departed_records`): GOODBYEs naming ever new instances
    /// cannot grow memory without bound within the horizon.
    pub max_gone: usize,
    /// Most tombstones kept per origin (`fabric_max_tombstones_per_origin`):
    /// an origin that removes entries faster than the horizon collects them
    /// cannot grow memory without bound.
    pub max_tombstones: usize,
}

/// Failure-detector timeouts for a cluster of `n` known nodes: suspicion
/// after `gi × (3 + 2·⌈log2 n⌉)`, death after twice that. Dissemination
/// over the partial mesh takes O(log n) rounds, so the timeout grows with
/// it rather than being inflated statically.
pub fn failure_timeouts(n: usize, gi: Duration) -> (Duration, Duration) {
    let suspect = gi.saturating_mul(suspicion_rounds(n));
    (suspect, suspect.saturating_mul(2))
}

/// Silent gossip rounds before an origin is suspected: `3 + 2·⌈log2 n⌉`.
fn suspicion_rounds(n: usize) -> u32 {
    let log2 = usize::BITS - n.max(2).saturating_sub(1).leading_zeros();
    3 + 2 * log2
}

/// How many consecutive digests of a connection share out the heartbeat
/// advances ([`super::digest`]): one in `stride` slots per digest.
///
/// Every digest carrying every origin's advance made heartbeats most of a
/// steady digest (a byte per origin, four digests per node per round), yet
/// a node needs only one newer heartbeat of an origin per suspicion window
/// of S rounds to keep it alive. A node receives about four digests a round
/// (answers to its two, and two peers' own), so with `stride = S / 8` it
/// still hears of each origin about `4·S / stride ≥ 32` times per window.
/// Up to 64 nodes the stride is 1 (the crash bounds the tests check stay
/// exactly as they were); it is 2 up to 1024 nodes, 3 up to 16384, then 4.
pub fn beat_stride(n: usize) -> u32 {
    (suspicion_rounds(n) / 8).max(1)
}

/// This node's replica of every origin's versions.
#[derive(Debug)]
pub struct Replica {
    me: String,
    instance_id: String,
    started_at: f64,
    heartbeat: u64,
    refreshed_at: f64,
    own: Versions,
    /// Own changes not flooded yet.
    pending: Vec<Change>,
    pending_floor: Option<u64>,
    views: BTreeMap<String, View>,
    dead: HashMap<(String, String), DeadRecord>,
    params: ReplicaParams,
    /// Entries in received deltas that claimed another owner.
    pub foreign_writes: u64,
    /// Gone records evicted early by `max_gone` since the last
    /// [`Replica::take_gone_evictions`].
    gone_evictions: u64,
    /// Tombstones dropped before their horizon by `max_tombstones`, not
    /// yet counted by the node.
    tombstone_evictions: u64,
    /// `me` and `instance_id` as the digest tables share them.
    shared_me: Arc<str>,
    shared_instance: Arc<str>,
    /// Bumped whenever a view appears, goes or changes instance, and
    /// whenever the gone records change: see [`Replica::membership_epoch`].
    membership: u64,
}

impl Replica {
    /// A replica for node `me`, instance `instance_id` started at wall time
    /// `started_at`.
    pub fn new(me: &str, instance_id: &str, started_at: f64, params: ReplicaParams) -> Replica {
        Replica {
            me: me.to_string(),
            instance_id: instance_id.to_string(),
            started_at,
            heartbeat: 0,
            refreshed_at: started_at,
            own: Versions::default(),
            pending: Vec::new(),
            pending_floor: None,
            views: BTreeMap::new(),
            dead: HashMap::new(),
            params,
            foreign_writes: 0,
            gone_evictions: 0,
            tombstone_evictions: 0,
            shared_me: Arc::from(me),
            shared_instance: Arc::from(instance_id),
            membership: 0,
        }
    }

    // ---- own state -----------------------------------------------------

    /// Adds or replaces one of this node's own entries.
    pub fn put_own(
        &mut self,
        catalog: &mut Catalog,
        entry: Entry,
        wall: f64,
        now: Instant,
    ) -> Result<(), String> {
        let key = entry.key();
        catalog.remove(&key);
        catalog
            .upsert(&self.me, entry.clone(), wall)
            .map_err(|e| e.to_string())?;
        self.bump_own(key, Some(entry), now);
        Ok(())
    }

    /// Removes one of this node's own entries (a versioned tombstone).
    pub fn remove_own(
        &mut self,
        catalog: &mut Catalog,
        key: &EntryKey,
        now: Instant,
    ) -> Option<Entry> {
        if !self.own.slots.get(key).is_some_and(|s| s.live) {
            return None;
        }
        let removed = if catalog.origin_of(key) == Some(self.me.as_str()) {
            catalog.remove(key)
        } else {
            None
        };
        self.bump_own(key.clone(), None, now);
        removed
    }

    /// The live keys this node owns.
    pub fn own_keys(&self) -> Vec<EntryKey> {
        self.own.live_keys().cloned().collect()
    }

    fn bump_own(&mut self, key: EntryKey, entry: Option<Entry>, now: Instant) {
        if self.pending_floor.is_none() {
            self.pending_floor = Some(self.own.max_version);
        }
        let version = self.own.max_version + 1;
        self.own.set(key.clone(), version, entry.is_some(), now);
        // A key changed twice before a flush keeps only its last change, so
        // the pending delta stays "complete" for its range.
        self.pending.retain(|c| c.key != key);
        self.pending.push(Change {
            version,
            key,
            entry,
        });
    }

    /// The owner's refresh: every own entry is fresh as of `wall`.
    ///
    /// Nothing is flooded for it: the new refresh time rides the next
    /// digests (a few bytes per origin, [`Replica::on_digest`] applies it)
    /// and any flood that carries changes. A refresh-only flood, relayed by
    /// every node over every link, cost each node N × links messages per
    /// refresh period, the largest part of steady fabric traffic in large
    /// clusters, to win seconds against a TTL that leaves three quarters of
    /// its length as slack.
    pub fn refresh_own(&mut self, catalog: &mut Catalog, wall: f64) {
        if !(wall.is_finite() && wall > self.refreshed_at) {
            return;
        }
        self.refreshed_at = wall;
        catalog.refresh_origin(&self.me, wall);
    }

    /// One gossip round passed: advance the own heartbeat.
    pub fn beat(&mut self) {
        self.heartbeat += 1;
    }

    /// The own changes since the last flush as one flood delta, if any.
    pub fn take_flood(&mut self) -> Option<Delta> {
        if self.pending.is_empty() {
            return None;
        }
        let floor = self.pending_floor.take().unwrap_or(self.own.max_version);
        let changes = std::mem::take(&mut self.pending).iter().collect();
        Some(Delta {
            origin: self.me.clone(),
            instance_id: self.instance_id.clone(),
            started_at: self.started_at,
            heartbeat: self.heartbeat,
            refreshed_at: self.refreshed_at,
            reset: false,
            floor,
            complete_to: self.own.max_version,
            changes,
            flood: true,
        })
    }

    // ---- digests -------------------------------------------------------

    /// This node's anti-entropy state: one entry per origin it holds, its
    /// own first. Each connection's [`DigestSender`] turns it into the
    /// difference against what that peer was last told.
    pub fn digest_entries(&self) -> Vec<DigestEntry> {
        let mut entries = Vec::with_capacity(self.views.len() + 1);
        entries.push(DigestEntry {
            origin: self.shared_me.clone(),
            instance_id: self.shared_instance.clone(),
            started_at: self.started_at,
            heartbeat: self.heartbeat,
            max_version: self.own.max_version,
            refreshed_at: self.refreshed_at,
        });
        for v in self.views.values() {
            entries.push(DigestEntry {
                origin: v.origin.clone(),
                instance_id: v.instance_id.clone(),
                started_at: v.started_at,
                heartbeat: v.heartbeat,
                max_version: v.versions.max_version,
                refreshed_at: v.refreshed_at,
            });
        }
        entries
    }

    /// The full digest a new connection starts with (every origin defined,
    /// so the stride does not matter).
    pub fn digest(&self, reply: bool) -> Digest {
        DigestSender::new().encode(&self.digest_entries(), reply, 1)
    }

    /// Handles a peer's digest, already applied to the connection's
    /// `mirror` (the peer's whole view): learns heartbeats and refreshes
    /// from the `changed` slots, and returns the repair deltas the peer is
    /// missing (paged).
    pub fn on_digest(
        &mut self,
        catalog: &mut Catalog,
        theirs: &DigestMirror,
        changed: &[u32],
        now: Instant,
    ) -> Vec<Delta> {
        // Learn liveness from their view of origins we share.
        for &slot in changed {
            if let Some(e) = theirs.slot(slot) {
                self.observe(catalog, e, now);
            }
        }
        let mut out = Vec::new();
        // Our own state.
        let mine = theirs.get(self.me.as_str());
        let behind = match mine {
            None => Some(0),
            Some(t) if *t.instance_id != *self.instance_id => Some(0),
            Some(t) if t.max_version < self.own.max_version => Some(t.max_version),
            _ => None,
        };
        if let Some(from) = behind {
            // Tombstones the peer would need were collected: send everything
            // live and have it drop what it held.
            let reset = from < self.own.gc_floor;
            out.extend(self.pages(catalog, None, if reset { 0 } else { from }, reset));
        }
        for (origin, v) in &self.views {
            let from = match theirs.get(origin.as_str()) {
                None => Some(0),
                Some(t) if t.instance_id != v.instance_id => {
                    // Send ours only if ours is the newer instance.
                    newer_instance(&v.instance_id, v.started_at, &t.instance_id, t.started_at)
                        .then_some(0)
                }
                Some(t) if t.max_version < v.versions.max_version => Some(t.max_version),
                _ => None,
            };
            if let Some(from) = from {
                let reset = from < v.versions.gc_floor;
                out.extend(self.pages(catalog, Some(origin), if reset { 0 } else { from }, reset));
            }
        }
        out
    }

    /// The heartbeat stride of this node's digests ([`beat_stride`] of the
    /// nodes it knows, as the failure detector counts them).
    pub fn beat_stride(&self) -> u32 {
        beat_stride(self.views.len() + 1)
    }

    /// Updates heartbeat / refresh of a shared origin from a digest entry.
    fn observe(&mut self, catalog: &mut Catalog, e: &DigestEntry, now: Instant) {
        if *e.origin == *self.me {
            return;
        }
        let Some(v) = self.views.get_mut(&*e.origin) else {
            return;
        };
        if v.instance_id != e.instance_id {
            return;
        }
        // Only now the gone records (their key costs two allocations to
        // build, and there usually are none).
        if !self.dead.is_empty() {
            if let Some(dead) = self
                .dead
                .get(&(e.origin.to_string(), e.instance_id.to_string()))
            {
                if e.heartbeat <= dead.heartbeat {
                    return;
                }
            }
        }
        if e.heartbeat > v.heartbeat {
            v.heartbeat = e.heartbeat;
            v.last_seen = now;
            v.suspect = false;
        }
        if e.refreshed_at.is_finite() && e.refreshed_at > v.refreshed_at {
            v.refreshed_at = e.refreshed_at;
            catalog.refresh_origin(&e.origin, e.refreshed_at);
        }
    }

    /// Repair pages of `origin` (None = own) covering `(from, max]`.
    fn pages(&self, catalog: &Catalog, origin: Option<&str>, from: u64, reset: bool) -> Vec<Delta> {
        let (name, instance, started_at, heartbeat, refreshed_at, versions) = match origin {
            None => (
                self.me.as_str(),
                self.instance_id.as_str(),
                self.started_at,
                self.heartbeat,
                self.refreshed_at,
                &self.own,
            ),
            Some(o) => match self.views.get(o) {
                Some(v) => (
                    o,
                    &*v.instance_id,
                    v.started_at,
                    v.heartbeat,
                    v.refreshed_at,
                    &v.versions,
                ),
                None => return vec![],
            },
        };
        let mut pages = Vec::new();
        let mut floor = from;
        let mut changes = Changes::new();
        let mut last_version = floor;
        let budget = self.params.page_bytes.max(1024);
        let mut first = true;
        for (version, key) in versions.by_version.range(from + 1..) {
            let Some(slot) = versions.slots.get(&**key) else {
                continue;
            };
            // A reset carries only live entries: the receiver starts empty.
            let entry = if slot.live {
                catalog.get(key).cloned()
            } else {
                None
            };
            if reset && entry.is_none() {
                continue;
            }
            let change = Change {
                version: *version,
                key: EntryKey::clone(key),
                entry,
            };
            let encoded = Changes::encode_one(&change);
            if !changes.is_empty() && changes.byte_len() + encoded.len() > budget {
                let complete_to = last_version;
                pages.push(Delta {
                    origin: name.to_string(),
                    instance_id: instance.to_string(),
                    started_at,
                    heartbeat,
                    refreshed_at,
                    reset: reset && first,
                    floor,
                    complete_to,
                    changes: std::mem::take(&mut changes),
                    flood: false,
                });
                first = false;
                floor = complete_to;
            }
            changes.push_encoded(&encoded);
            last_version = *version;
        }
        if !changes.is_empty() || pages.is_empty() {
            pages.push(Delta {
                origin: name.to_string(),
                instance_id: instance.to_string(),
                started_at,
                heartbeat,
                refreshed_at,
                reset: reset && first,
                floor,
                complete_to: versions.max_version,
                changes,
                flood: false,
            });
        } else if let Some(last) = pages.last_mut() {
            last.complete_to = versions.max_version;
        }
        pages
    }

    // ---- deltas --------------------------------------------------------

    /// Applies a delta from a peer.
    pub fn on_delta(
        &mut self,
        catalog: &mut Catalog,
        delta: &Delta,
        wall: f64,
        now: Instant,
    ) -> Applied {
        let mut out = Applied::default();
        if delta.origin == self.me || delta.complete_to < delta.floor {
            return out;
        }
        // Parsed before any state moves, so a malformed delta changes
        // nothing; skipped for a pure duplicate.
        let changes = if self.needs_changes(delta) {
            match delta.changes.decode() {
                Ok(changes) => changes,
                Err(e) => {
                    out.malformed = Some(e);
                    return out;
                }
            }
        } else {
            Vec::new()
        };
        if let Some(dead) = self
            .dead
            .get(&(delta.origin.clone(), delta.instance_id.clone()))
        {
            if delta.heartbeat <= dead.heartbeat {
                return out;
            }
            // A failed node that is alive after all: forget its death.
            self.dead
                .remove(&(delta.origin.clone(), delta.instance_id.clone()));
        }
        // Instance handling.
        let replace = match self.views.get(&delta.origin) {
            None => true,
            Some(v) if *v.instance_id == *delta.instance_id => false,
            Some(v) => {
                if !newer_instance(
                    &delta.instance_id,
                    delta.started_at,
                    &v.instance_id,
                    v.started_at,
                ) {
                    return out;
                }
                true
            }
        };
        if replace {
            if let Some(old) = self.views.remove(&delta.origin) {
                self.membership += 1;
                out.new_instance = true;
                out.removed
                    .extend(drop_origin_entries(catalog, &delta.origin, &old.versions));
                // The old instance is gone for good: the new one replaced it.
                self.remember_gone(
                    (delta.origin.clone(), old.instance_id.to_string()),
                    DeadRecord {
                        at: now,
                        until: now + self.params.horizon,
                        heartbeat: u64::MAX,
                    },
                );
            }
            self.membership += 1;
            self.views.insert(
                delta.origin.clone(),
                View {
                    origin: Arc::from(delta.origin.as_str()),
                    instance_id: Arc::from(delta.instance_id.as_str()),
                    started_at: delta.started_at,
                    heartbeat: 0,
                    refreshed_at: 0.0,
                    last_seen: now,
                    suspect: false,
                    versions: Versions::default(),
                },
            );
        }
        let Some(view) = self.views.get_mut(&delta.origin) else {
            return out;
        };
        if delta.reset {
            out.removed
                .extend(drop_origin_entries(catalog, &delta.origin, &view.versions));
            view.versions = Versions::default();
        }
        if delta.heartbeat > view.heartbeat {
            view.heartbeat = delta.heartbeat;
            view.last_seen = now;
            view.suspect = false;
            out.relay |= delta.flood;
        }
        if delta.floor > view.versions.max_version {
            out.gap = true;
            return out;
        }
        for change in &changes {
            if change.version <= view.versions.max_version && !delta.reset {
                continue;
            }
            if let Some(entry) = &change.entry {
                if entry.node_id() != delta.origin || entry.key() != change.key {
                    // Only owners write their entries.
                    self.foreign_writes += 1;
                    continue;
                }
            }
            match &change.entry {
                Some(entry) => {
                    let mut entry = entry.clone();
                    entry.refresh(delta.refreshed_at.max(view.refreshed_at));
                    if catalog
                        .origin_of(&change.key)
                        .is_some_and(|o| o != delta.origin)
                    {
                        // Another origin holds this key (a topic id clash):
                        // the newer advertisement wins, as in MPREG.
                    }
                    catalog.remove(&change.key);
                    if catalog.upsert(&delta.origin, entry, wall).is_ok() {
                        out.upserted.push(change.key.clone());
                    }
                    view.versions
                        .set(change.key.clone(), change.version, true, now);
                }
                None => {
                    if catalog.origin_of(&change.key) == Some(delta.origin.as_str()) {
                        if let Some(e) = catalog.remove(&change.key) {
                            out.removed.push(e);
                        }
                    }
                    view.versions
                        .set(change.key.clone(), change.version, false, now);
                }
            }
            out.applied += 1;
        }
        if delta.complete_to > view.versions.max_version {
            view.versions.max_version = delta.complete_to;
            out.relay |= delta.flood;
        }
        if out.applied > 0 {
            // A reset page is not relayed: it would make receivers that are
            // not behind drop what they hold.
            out.relay = delta.flood || !delta.reset;
        }
        if delta.refreshed_at.is_finite() && delta.refreshed_at > view.refreshed_at {
            view.refreshed_at = delta.refreshed_at;
            catalog.refresh_origin(&delta.origin, delta.refreshed_at);
            out.relay |= delta.flood;
        }
        out
    }

    /// Whether `delta` can change anything here, so its changes must be
    /// parsed: everything but a copy of what this node already holds of the
    /// same instance (no reset, no version past ours, no newer heartbeat or
    /// refresh; such a delta is neither applied nor relayed). Flooding
    /// delivers each delta once per link, so this is most deltas.
    fn needs_changes(&self, delta: &Delta) -> bool {
        match self.views.get(&delta.origin) {
            Some(v) if *v.instance_id == *delta.instance_id => {
                delta.reset
                    || delta.complete_to > v.versions.max_version
                    || delta.heartbeat > v.heartbeat
                    || delta.refreshed_at > v.refreshed_at
            }
            _ => true,
        }
    }

    // ---- liveness and departures ---------------------------------------

    /// A frame arrived directly from `origin`: it is alive.
    pub fn seen(&mut self, origin: &str, now: Instant) {
        if let Some(v) = self.views.get_mut(origin) {
            v.last_seen = now;
            v.suspect = false;
        }
    }

    /// Records a GOODBYE: drops the instance's entries and remembers it for
    /// the horizon. True when this was news (relay the GOODBYE).
    pub fn depart(
        &mut self,
        catalog: &mut Catalog,
        origin: &str,
        instance: &str,
        now: Instant,
    ) -> (bool, Vec<Entry>) {
        let key = (origin.to_string(), instance.to_string());
        let news = self.dead.get(&key).is_none_or(|d| d.heartbeat != u64::MAX);
        self.remember_gone(
            key,
            DeadRecord {
                at: now,
                until: now + self.params.horizon,
                heartbeat: u64::MAX,
            },
        );
        let mut removed = Vec::new();
        if self
            .views
            .get(origin)
            .is_some_and(|v| *v.instance_id == *instance)
        {
            if let Some(v) = self.views.remove(origin) {
                self.membership += 1;
                removed = drop_origin_entries(catalog, origin, &v.versions);
            }
        }
        (news, removed)
    }

    /// Runs the failure detector over every remote origin; returns the
    /// origins newly suspected and newly declared dead (with the entries
    /// their death removed).
    pub fn check_liveness(
        &mut self,
        catalog: &mut Catalog,
        now: Instant,
    ) -> (Vec<String>, Vec<(String, Vec<Entry>)>) {
        let (suspect_after, dead_after) =
            failure_timeouts(self.views.len() + 1, self.params.gossip_interval);
        let mut suspected = Vec::new();
        let mut dead = Vec::new();
        for (origin, v) in self.views.iter_mut() {
            let quiet = now.saturating_duration_since(v.last_seen);
            if quiet >= dead_after {
                dead.push(origin.clone());
            } else if quiet >= suspect_after && !v.suspect {
                v.suspect = true;
                suspected.push(origin.clone());
            }
        }
        let mut out = Vec::new();
        for origin in dead {
            if let Some(v) = self.views.remove(&origin) {
                self.membership += 1;
                self.remember_gone(
                    (origin.clone(), v.instance_id.to_string()),
                    DeadRecord {
                        at: now,
                        until: now + self.params.horizon,
                        heartbeat: v.heartbeat,
                    },
                );
                out.push((
                    origin.clone(),
                    drop_origin_entries(catalog, &origin, &v.versions),
                ));
            }
        }
        (suspected, out)
    }

    /// Records a gone instance. At `max_gone` records the one closest to
    /// the end of its horizon makes room (it is the least likely to still
    /// meet a stale copy), and the eviction is counted.
    fn remember_gone(&mut self, key: (String, String), record: DeadRecord) {
        if !self.dead.contains_key(&key) && self.dead.len() >= self.params.max_gone.max(1) {
            let oldest = self
                .dead
                .iter()
                .min_by_key(|(_, d)| d.until)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.dead.remove(&k);
                self.gone_evictions += 1;
            }
        }
        self.dead.insert(key, record);
        self.membership += 1;
    }

    /// Gone records evicted by `max_gone` since the last call.
    pub fn take_gone_evictions(&mut self) -> u64 {
        std::mem::take(&mut self.gone_evictions)
    }

    /// Collects old tombstones and dead records, then trims every origin
    /// to `max_tombstones` (oldest first, counted).
    pub fn collect(&mut self, now: Instant) {
        let horizon = self.params.horizon;
        let max = self.params.max_tombstones.max(1);
        self.own.collect(now, horizon);
        let mut trimmed = self.own.trim(max);
        for v in self.views.values_mut() {
            v.versions.collect(now, horizon);
            trimmed += v.versions.trim(max);
        }
        self.tombstone_evictions += trimmed as u64;
        let gone = self.dead.len();
        self.dead.retain(|_, d| d.until > now);
        if self.dead.len() != gone {
            self.membership += 1;
        }
    }

    /// Tombstones dropped by `max_tombstones` since the last call.
    pub fn take_tombstone_evictions(&mut self) -> u64 {
        std::mem::take(&mut self.tombstone_evictions)
    }

    /// True when `(origin, instance)` departed or was declared dead.
    pub fn is_gone(&self, origin: &str, instance: &str) -> bool {
        self.dead
            .contains_key(&(origin.to_string(), instance.to_string()))
    }

    /// True when `(origin, instance)` said GOODBYE (within the horizon).
    pub fn is_departed(&self, origin: &str, instance: &str) -> bool {
        self.dead
            .get(&(origin.to_string(), instance.to_string()))
            .is_some_and(|d| d.heartbeat == u64::MAX)
    }

    /// True when some instance of `origin` said GOODBYE less than `grace`
    /// ago: seeds are not redialled during that window (MPREG's
    /// `goodbye_reconnect_grace_seconds`), after it a restarted seed is.
    pub fn departed_within(&self, origin: &str, now: Instant, grace: Duration) -> bool {
        self.dead.iter().any(|((o, _), d)| {
            o == origin && d.heartbeat == u64::MAX && now.saturating_duration_since(d.at) < grace
        })
    }

    /// True when `origin` has no live view and some instance of it is gone.
    pub fn origin_gone(&self, origin: &str) -> bool {
        !self.views.contains_key(origin) && self.dead.keys().any(|(o, _)| o == origin)
    }

    /// True when `origin` is currently suspected.
    pub fn is_suspect(&self, origin: &str) -> bool {
        self.views.get(origin).is_some_and(|v| v.suspect)
    }

    /// Remembered gone instances within the horizon: `(departed, dead)`,
    /// departed being those that said GOODBYE (or were replaced by a newer
    /// instance), dead those the failure detector declared dead.
    pub fn gone_counts(&self) -> (usize, usize) {
        let departed = self
            .dead
            .values()
            .filter(|d| d.heartbeat == u64::MAX)
            .count();
        (departed, self.dead.len() - departed)
    }

    /// Number of remote origins held.
    pub fn origin_count(&self) -> usize {
        self.views.len()
    }

    /// Remote origin ids.
    pub fn origins(&self) -> impl Iterator<Item = &str> {
        self.views.keys().map(String::as_str)
    }

    /// Every remote origin with the instance (id, start time) held for it,
    /// in origin order.
    pub fn instances(&self) -> impl Iterator<Item = (&str, &str, f64)> {
        self.views
            .iter()
            .map(|(o, v)| (o.as_str(), &*v.instance_id, v.started_at))
    }

    /// A counter that moves whenever the remote origins held, their
    /// instances or the gone (dead and departed) records change, and only
    /// then (heartbeats and entry versions do not move it). Equal values
    /// mean [`Replica::check_invariants`] and [`Replica::instances`] would
    /// see the same membership, so a checker may skip the second look.
    pub fn membership_epoch(&self) -> u64 {
        self.membership
    }

    /// The instance (id, start time) held for a remote origin.
    pub fn view_instance(&self, origin: &str) -> Option<(&str, f64)> {
        self.views
            .get(origin)
            .map(|v| (&*v.instance_id, v.started_at))
    }

    /// Checks the replica's safety invariants against the catalog: no
    /// departed `(origin, instance)` is held again, and no entry of an
    /// origin without a live view remains in the catalog. Used by the
    /// simulator after every step.
    pub fn check_invariants(&self, catalog: &Catalog) -> Result<(), String> {
        for ((origin, instance), d) in &self.dead {
            if d.heartbeat != u64::MAX {
                continue;
            }
            if self
                .views
                .get(origin)
                .is_some_and(|v| *v.instance_id == **instance)
            {
                return Err(format!(
                    "{}: departed {origin} instance {instance} reappeared",
                    self.me
                ));
            }
        }
        for origin in catalog.origins() {
            if origin != self.me && !self.views.contains_key(origin) {
                return Err(format!(
                    "{}: catalog holds entries of {origin}, which has no live view",
                    self.me
                ));
            }
        }
        Ok(())
    }

    /// This node's own max version.
    pub fn own_version(&self) -> u64 {
        self.own.max_version
    }
}

/// True when instance `a` (started at `a_start`) is newer than `b`.
fn newer_instance(a: &str, a_start: f64, b: &str, b_start: f64) -> bool {
    a_start > b_start || (a_start == b_start && a > b)
}

/// Removes every catalog entry `origin` owns per `versions`.
fn drop_origin_entries(catalog: &mut Catalog, origin: &str, versions: &Versions) -> Vec<Entry> {
    let mut removed = Vec::new();
    for key in versions.live_keys() {
        if catalog.origin_of(key) == Some(origin) {
            if let Some(e) = catalog.remove(key) {
                removed.push(e);
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::entry::{FunctionEndpoint, FunctionIdentity};
    use proptest::prelude::*;

    const WALL: f64 = 1_000_000.0;

    fn params(page_bytes: usize) -> ReplicaParams {
        ReplicaParams {
            horizon: Duration::from_secs(60),
            gossip_interval: Duration::from_secs(1),
            page_bytes,
            max_gone: 1024,
            max_tombstones: 100_000,
        }
    }

    fn at(secs: u64) -> Instant {
        Instant::ZERO + Duration::from_secs(secs)
    }

    fn func(node: &str, i: usize) -> Entry {
        Entry::from(
            FunctionEndpoint::new(
                FunctionIdentity::new(format!("svc.f{i}"), format!("svc.f{i}"), "1.0.0"),
                node,
                "c",
            )
            .advertised(WALL, 120.0),
        )
    }

    struct Side {
        r: Replica,
        c: Catalog,
    }

    fn side(name: &str, instance: &str) -> Side {
        Side {
            r: Replica::new(name, instance, WALL, params(64 * 1024)),
            c: Catalog::new(),
        }
    }

    fn names(c: &Catalog, origin: &str) -> Vec<String> {
        let mut v: Vec<String> = c
            .origin_entries(origin)
            .map(|e| e.name().to_string())
            .collect();
        v.sort();
        v
    }

    /// `to`'s answer to `from`'s full digest (a new connection's first).
    fn answer(from: &Side, to: &mut Side, now: Instant) -> Vec<Delta> {
        let mut mirror = DigestMirror::default();
        let changed = mirror.apply(&from.r.digest(true)).unwrap();
        to.r.on_digest(&mut to.c, &mirror, &changed, now)
    }

    /// A full push-pull exchange from `a` to `b` and back.
    fn sync(a: &mut Side, b: &mut Side, now: Instant) {
        for page in answer(a, b, now) {
            a.r.on_delta(&mut a.c, &page, WALL, now);
        }
        for page in answer(b, a, now) {
            b.r.on_delta(&mut b.c, &page, WALL, now);
        }
    }

    #[test]
    fn floods_apply_once_and_duplicates_are_dropped() {
        let mut a = side("A", "a1");
        let mut b = side("B", "b1");
        for i in 0..3 {
            a.r.put_own(&mut a.c, func("A", i), WALL, at(0)).unwrap();
        }
        let delta = a.r.take_flood().unwrap();
        assert_eq!(
            (
                delta.floor,
                delta.complete_to,
                delta.changes.decode().unwrap().len()
            ),
            (0, 3, 3)
        );
        let first = b.r.on_delta(&mut b.c, &delta, WALL, at(0));
        assert_eq!(first.applied, 3);
        assert!(first.relay);
        let again = b.r.on_delta(&mut b.c, &delta, WALL, at(0));
        assert_eq!(again.applied, 0);
        assert!(!again.relay, "a duplicate is not relayed again");
        assert_eq!(names(&b.c, "A"), vec!["svc.f0", "svc.f1", "svc.f2"]);
    }

    #[test]
    fn duplicates_go_unparsed_and_malformed_news_changes_nothing() {
        let mut a = side("A", "a1");
        let mut b = side("B", "b1");
        a.r.put_own(&mut a.c, func("A", 0), WALL, at(0)).unwrap();
        let delta = a.r.take_flood().unwrap();
        let garbage = Delta {
            changes: Changes::from_encoded(vec![0xa1, 0xff]),
            ..delta.clone()
        };
        // News with unparsable changes: rejected before anything moves.
        let bad = b.r.on_delta(&mut b.c, &garbage, WALL, at(0));
        assert!(bad.malformed.is_some());
        assert_eq!((bad.applied, bad.relay), (0, false));
        assert!(b.r.view_instance("A").is_none(), "nothing of A was taken");
        assert_eq!(b.r.on_delta(&mut b.c, &delta, WALL, at(0)).applied, 1);
        // The same header again is a duplicate: dropped, changes unparsed.
        let dup = b.r.on_delta(&mut b.c, &garbage, WALL, at(0));
        assert!(dup.malformed.is_none());
        assert_eq!((dup.applied, dup.relay), (0, false));
        // A newer heartbeat is news (it would be relayed): parsed, rejected,
        // and the heartbeat does not move.
        let newer = |changes| Delta {
            heartbeat: delta.heartbeat + 1,
            changes,
            ..delta.clone()
        };
        let bad =
            b.r.on_delta(&mut b.c, &newer(garbage.changes.clone()), WALL, at(1));
        assert!(bad.malformed.is_some());
        let good =
            b.r.on_delta(&mut b.c, &newer(delta.changes.clone()), WALL, at(1));
        assert!(
            good.malformed.is_none() && good.relay,
            "the heartbeat is still news"
        );
        assert_eq!(names(&b.c, "A"), vec!["svc.f0"]);
    }

    #[test]
    fn a_gap_is_detected_and_repaired_by_digest() {
        let mut a = side("A", "a1");
        let mut b = side("B", "b1");
        a.r.put_own(&mut a.c, func("A", 0), WALL, at(0)).unwrap();
        let lost = a.r.take_flood().unwrap();
        a.r.put_own(&mut a.c, func("A", 1), WALL, at(0)).unwrap();
        let second = a.r.take_flood().unwrap();
        let _ = lost;
        let applied = b.r.on_delta(&mut b.c, &second, WALL, at(0));
        assert!(applied.gap, "version 2 without version 1 is a gap");
        assert_eq!(applied.applied, 0);
        sync(&mut b, &mut a, at(1));
        assert_eq!(names(&b.c, "A"), vec!["svc.f0", "svc.f1"]);
    }

    #[test]
    fn repair_is_paged_and_pages_chain() {
        let mut a = Side {
            r: Replica::new("A", "a1", WALL, params(1024)),
            c: Catalog::new(),
        };
        let mut b = side("B", "b1");
        for i in 0..40 {
            a.r.put_own(&mut a.c, func("A", i), WALL, at(0)).unwrap();
        }
        let pages = answer(&b, &mut a, at(0));
        assert!(
            pages.len() > 3,
            "40 entries in 1 KiB pages need several pages, got {}",
            pages.len()
        );
        for w in pages.windows(2) {
            assert_eq!(
                w[0].complete_to, w[1].floor,
                "pages cover contiguous ranges"
            );
        }
        for p in &pages {
            assert!(!b.r.on_delta(&mut b.c, p, WALL, at(0)).gap);
        }
        assert_eq!(b.c.origin_entries("A").count(), 40);
    }

    #[test]
    fn removals_propagate_and_collected_tombstones_force_a_reset() {
        let mut a = side("A", "a1");
        let mut b = side("B", "b1");
        let mut c = side("C", "c1");
        for i in 0..3 {
            a.r.put_own(&mut a.c, func("A", i), WALL, at(0)).unwrap();
        }
        sync(&mut b, &mut a, at(0));
        sync(&mut c, &mut a, at(0));
        // C misses the removal; B sees it.
        a.r.remove_own(&mut a.c, &func("A", 1).key(), at(1));
        let removal = a.r.take_flood().unwrap();
        b.r.on_delta(&mut b.c, &removal, WALL, at(1));
        assert_eq!(names(&b.c, "A"), vec!["svc.f0", "svc.f2"]);
        // Long after, A has collected the tombstone: C can only be reset.
        a.r.collect(at(1000));
        sync(&mut c, &mut a, at(1000));
        assert_eq!(
            names(&c.c, "A"),
            vec!["svc.f0", "svc.f2"],
            "reset removed the entry C still held"
        );
    }

    #[test]
    fn tombstones_past_the_cap_are_dropped_oldest_first_and_force_a_reset() {
        let mut a = side("A", "a1");
        let mut c = side("C", "c1");
        a.r.params.max_tombstones = 2;
        for i in 0..6 {
            a.r.put_own(&mut a.c, func("A", i), WALL, at(0)).unwrap();
        }
        sync(&mut c, &mut a, at(0));
        // Four removals C never hears of, well inside the horizon.
        for i in 1..5 {
            a.r.remove_own(&mut a.c, &func("A", i).key(), at(1));
        }
        let _ = a.r.take_flood();
        a.r.collect(at(2));
        assert_eq!(a.r.take_tombstone_evictions(), 2, "two over the cap of 2");
        assert_eq!(a.r.own.dead, 2);
        a.r.collect(at(3));
        assert_eq!(a.r.take_tombstone_evictions(), 0, "already within the cap");
        // C needed the dropped ones: it is reset, and holds exactly A's live set.
        sync(&mut c, &mut a, at(3));
        assert_eq!(names(&c.c, "A"), vec!["svc.f0", "svc.f5"]);
        a.r.check_invariants(&a.c).unwrap();
        c.r.check_invariants(&c.c).unwrap();
    }

    #[test]
    fn a_departed_instance_is_never_resurrected_but_a_new_one_is_welcome() {
        let mut a = side("A", "a1");
        let mut b = side("B", "b1");
        a.r.put_own(&mut a.c, func("A", 0), WALL, at(0)).unwrap();
        a.r.beat();
        let stale = a.r.take_flood().unwrap();
        b.r.on_delta(&mut b.c, &stale, WALL, at(0));
        let (news, removed) = b.r.depart(&mut b.c, "A", "a1", at(1));
        assert!(news);
        assert_eq!(removed.len(), 1);
        let mut later = stale.clone();
        later.heartbeat = 1_000;
        assert_eq!(b.r.on_delta(&mut b.c, &later, WALL, at(2)).applied, 0);
        assert!(names(&b.c, "A").is_empty());
        b.r.check_invariants(&b.c).unwrap();
        // A restart is a new instance with a later start.
        let mut a2 = Side {
            r: Replica::new("A", "a2", WALL + 10.0, params(64 * 1024)),
            c: Catalog::new(),
        };
        a2.r.put_own(&mut a2.c, func("A", 5), WALL, at(3)).unwrap();
        let fresh = a2.r.take_flood().unwrap();
        assert_eq!(b.r.on_delta(&mut b.c, &fresh, WALL, at(3)).applied, 1);
        assert_eq!(names(&b.c, "A"), vec!["svc.f5"]);
    }

    #[test]
    fn an_owner_refresh_floods_nothing_and_rides_the_next_digest() {
        let mut a = side("A", "a1");
        let mut b = side("B", "b1");
        a.r.put_own(&mut a.c, func("A", 0), WALL, at(0)).unwrap();
        b.r.on_delta(&mut b.c, &a.r.take_flood().unwrap(), WALL, at(0));
        let key = func("A", 0).key();
        let advertised = |s: &Side| s.c.get(&key).map(Entry::advertised_at);
        assert_eq!(advertised(&b), Some(WALL));
        a.r.refresh_own(&mut a.c, WALL + 30.0);
        assert_eq!(advertised(&a), Some(WALL + 30.0));
        assert!(a.r.take_flood().is_none(), "no refresh-only flood");
        // B learns the refresh from A's digest, with no delta of A's.
        let repairs = answer(&a, &mut b, at(1));
        assert!(repairs.iter().all(|d| d.origin != "A"), "{repairs:?}");
        assert_eq!(advertised(&b), Some(WALL + 30.0));
    }

    #[test]
    fn membership_epoch_moves_with_membership_only() {
        let mut a = side("A", "a1");
        let mut b = side("B", "b1");
        let epoch = |s: &Side| s.r.membership_epoch();
        a.r.put_own(&mut a.c, func("A", 0), WALL, at(0)).unwrap();
        a.r.beat();
        let e0 = epoch(&b);
        b.r.on_delta(&mut b.c, &a.r.take_flood().unwrap(), WALL, at(0));
        let e1 = epoch(&b);
        assert_ne!(e1, e0, "a new origin");
        // More entries, heartbeats and refreshes of a known instance: same
        // membership.
        a.r.put_own(&mut a.c, func("A", 1), WALL, at(1)).unwrap();
        a.r.beat();
        b.r.on_delta(&mut b.c, &a.r.take_flood().unwrap(), WALL, at(1));
        sync(&mut a, &mut b, at(2));
        b.r.collect(at(3));
        assert_eq!(epoch(&b), e1);
        assert_eq!(names(&b.c, "A"), vec!["svc.f0", "svc.f1"]);
        // A new instance replaces the old one.
        let mut a2 = Side {
            r: Replica::new("A", "a2", WALL + 10.0, params(64 * 1024)),
            c: Catalog::new(),
        };
        a2.r.put_own(&mut a2.c, func("A", 5), WALL, at(4)).unwrap();
        b.r.on_delta(&mut b.c, &a2.r.take_flood().unwrap(), WALL, at(4));
        let e2 = epoch(&b);
        assert_ne!(e2, e1, "a new instance");
        // Departure, then the gone record expiring.
        b.r.depart(&mut b.c, "A", "a2", at(5));
        let e3 = epoch(&b);
        assert_ne!(e3, e2, "a departure");
        b.r.collect(at(5) + b.r.params.horizon + Duration::from_secs(1));
        assert_ne!(epoch(&b), e3, "gone records collected");
        b.r.check_invariants(&b.c).unwrap();
    }

    #[test]
    fn failed_nodes_die_after_the_scaled_timeout_and_revive_on_a_newer_heartbeat() {
        let mut a = side("A", "a1");
        let mut b = side("B", "b1");
        a.r.put_own(&mut a.c, func("A", 0), WALL, at(0)).unwrap();
        a.r.beat();
        b.r.on_delta(&mut b.c, &a.r.take_flood().unwrap(), WALL, at(0));
        let (suspect, dead) = failure_timeouts(2, Duration::from_secs(1));
        assert_eq!(
            (suspect, dead),
            (Duration::from_secs(5), Duration::from_secs(10))
        );
        let (s, d) = b.r.check_liveness(&mut b.c, at(6));
        assert_eq!((s, d.len()), (vec!["A".to_string()], 0));
        let (_, d) = b.r.check_liveness(&mut b.c, at(11));
        assert_eq!(d.len(), 1);
        assert!(names(&b.c, "A").is_empty());
        // A was only partitioned away: its next heartbeat brings it back.
        a.r.beat();
        sync(&mut b, &mut a, at(12));
        assert_eq!(names(&b.c, "A"), vec!["svc.f0"]);
    }

    #[test]
    fn departed_records_are_capped_evicting_the_oldest() {
        let mut b = side("B", "b1");
        b.r.params.max_gone = 3;
        for i in 0..3u64 {
            let (news, _) = b.r.depart(&mut b.c, &format!("X{i}"), "x", at(i));
            assert!(news);
        }
        assert_eq!(b.r.take_gone_evictions(), 0);
        // A repeated GOODBYE of a remembered instance needs no room.
        b.r.depart(&mut b.c, "X2", "x", at(3));
        assert_eq!(b.r.take_gone_evictions(), 0);
        // A new one past the cap evicts the record nearest its horizon.
        b.r.depart(&mut b.c, "X9", "x", at(4));
        assert_eq!(b.r.take_gone_evictions(), 1);
        assert_eq!(b.r.gone_counts(), (3, 0));
        assert!(!b.r.is_departed("X0", "x"));
        assert!(b.r.is_departed("X1", "x") && b.r.is_departed("X9", "x"));
        assert_eq!(b.r.take_gone_evictions(), 0);
    }

    #[test]
    fn timeouts_grow_with_log_of_cluster_size() {
        let gi = Duration::from_secs(1);
        let (s3, _) = failure_timeouts(3, gi);
        let (s1000, _) = failure_timeouts(1000, gi);
        assert_eq!(s3, Duration::from_secs(7));
        assert_eq!(s1000, Duration::from_secs(23));
    }

    #[test]
    fn the_heartbeat_stride_keeps_32_reports_per_suspicion_window() {
        assert_eq!(beat_stride(1), 1);
        assert_eq!(beat_stride(64), 1);
        assert_eq!(beat_stride(65), 2);
        assert_eq!(beat_stride(1000), 2);
        assert_eq!(beat_stride(1 << 16), 4);
        assert_eq!(beat_stride(1024), 2);
        assert_eq!(beat_stride(1025), 3);
        for n in [2, 10, 65, 100, 1000, 10_000, 1 << 20] {
            let rounds = suspicion_rounds(n);
            // Four digests received per round, one stripe of `stride` each.
            assert!(
                beat_stride(n) == 1 || 4 * rounds / beat_stride(n) >= 32,
                "n = {n}"
            );
            assert!(beat_stride(n) <= super::super::digest::MAX_BEAT_STRIDE);
        }
    }

    #[test]
    fn entries_claiming_another_owner_are_rejected() {
        let mut b = side("B", "b1");
        let forged = Delta {
            origin: "A".into(),
            instance_id: "a1".into(),
            started_at: WALL,
            heartbeat: 1,
            refreshed_at: WALL,
            reset: false,
            floor: 0,
            complete_to: 1,
            changes: [Change {
                version: 1,
                key: func("C", 0).key(),
                entry: Some(func("C", 0)),
            }]
            .iter()
            .collect(),
            flood: true,
        };
        assert_eq!(b.r.on_delta(&mut b.c, &forged, WALL, at(0)).applied, 0);
        assert_eq!(b.r.foreign_writes, 1);
        assert!(b.c.is_empty());
    }

    proptest! {
        /// Whatever subset of floods arrives, in whatever order and however
        /// often, one digest exchange converges B to exactly A's entries.
        #[test]
        fn delivery_order_loss_and_duplication_converge(
            ops in proptest::collection::vec((0usize..12, any::<bool>()), 1..40),
            deliveries in proptest::collection::vec((0usize..64, any::<bool>()), 0..80),
        ) {
            let mut a = side("A", "a1");
            let mut b = side("B", "b1");
            let mut floods = Vec::new();
            for (i, (id, put)) in ops.iter().enumerate() {
                if *put {
                    a.r.put_own(&mut a.c, func("A", *id), WALL + i as f64, at(0)).unwrap();
                } else {
                    a.r.remove_own(&mut a.c, &func("A", *id).key(), at(0));
                }
                if let Some(d) = a.r.take_flood() {
                    floods.push(d);
                }
            }
            if !floods.is_empty() {
                for (pick, twice) in &deliveries {
                    let d = &floods[pick % floods.len()];
                    b.r.on_delta(&mut b.c, d, WALL, at(0));
                    if *twice {
                        b.r.on_delta(&mut b.c, d, WALL, at(0));
                    }
                    b.r.check_invariants(&b.c).unwrap();
                }
            }
            sync(&mut b, &mut a, at(1));
            prop_assert_eq!(names(&b.c, "A"), names(&a.c, "A"));
            b.r.check_invariants(&b.c).unwrap();
        }
    }
}
