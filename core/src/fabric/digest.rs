//! Incremental anti-entropy digests (fabric protocol version 2).
//!
//! The replica's state is one [`DigestEntry`] per origin. Sending it whole
//! to two peers every gossip interval cost ~128 B per origin per digest
//! (737 kbit/s per node at 30 nodes and 200 ms), almost all of it origin ids
//! and instance ids that never change. Here every connection direction keeps
//! a slot table instead:
//!
//! - [`DigestSender`] (one per connection, outbound) binds each origin to a
//!   small slot the first time it is sent and remembers what it last sent;
//!   each digest then carries only the difference: heartbeat advances as a
//!   dense array (one byte per origin while an advance is below 24), version
//!   and refresh moves sparsely, new or restarted origins in full, vanished
//!   ones as dropped slots.
//! - In large clusters the heartbeat array is striped: a digest carries the
//!   advances of every `stride`-th slot only, the next digest the following
//!   stripe ([`crate::fabric::replica::beat_stride`] says why that keeps
//!   the failure detector fed). The advances of the other slots wait for
//!   their stripe, so nothing is lost, only spread over `stride` digests.
//! - [`DigestMirror`] (one per connection, inbound) applies those
//!   differences to rebuild the peer's full view, so the repair logic still
//!   compares against everything the peer holds, exactly as with full
//!   digests: an origin missing from the mirror is an origin the peer lacks.
//!
//! Digests are numbered per connection direction. A digest that does not
//! follow the previous one (lost, duplicated or reordered in transit, as the
//! simulator's lossy links do) cannot be applied as a difference: the mirror
//! marks itself out of sync, the node answers with a `Resync`, and the
//! sender's next digest is full. A full digest replaces the mirror whatever
//! came before, so the pair always recovers within one exchange.

use std::collections::HashMap;
use std::sync::Arc;

use crate::io::ConnId;
use crate::wire::fabric::{Digest, DigestEntry, SlotDef};

/// Largest slot table a peer may make us hold (origins per connection).
/// Far above any cluster this fabric targets; it bounds the memory a
/// hostile peer can claim with defs.
pub const MAX_SLOTS: usize = 1 << 20;

/// Largest heartbeat stride a peer may use. [`crate::fabric::replica::beat_stride`]
/// stays below 8 for any cluster a slot table can hold.
pub const MAX_BEAT_STRIDE: u32 = 64;

/// What was last sent for one slot.
#[derive(Debug, Clone)]
struct Sent {
    origin: Arc<str>,
    instance_id: Arc<str>,
    heartbeat: u64,
    max_version: u64,
    refreshed_at: f64,
}

/// Outbound half of a connection: encodes the replica's view as the
/// difference against what this connection was last told.
#[derive(Debug, Default)]
pub struct DigestSender {
    seq: u64,
    slots: Vec<Option<Sent>>,
    by_origin: HashMap<Arc<str>, u32>,
    free: Vec<u32>,
    /// The next digest restarts the table (first digest, or after `Resync`).
    needs_full: bool,
}

impl DigestSender {
    /// A sender whose first digest is full.
    pub fn new() -> DigestSender {
        DigestSender {
            needs_full: true,
            ..DigestSender::default()
        }
    }

    /// Makes the next digest full (the peer lost the thread).
    pub fn resync(&mut self) {
        self.needs_full = true;
    }

    /// The next digest of `view` (every origin the replica holds, itself
    /// included) on this connection, carrying the heartbeat advances of
    /// every `stride`-th slot (clamped to `1..=MAX_BEAT_STRIDE`).
    pub fn encode(&mut self, view: &[DigestEntry], reply: bool, stride: u32) -> Digest {
        let stride = stride.clamp(1, MAX_BEAT_STRIDE);
        let full = std::mem::take(&mut self.needs_full);
        if full {
            self.slots.clear();
            self.by_origin.clear();
            self.free.clear();
        }
        self.seq += 1;
        let phase = (self.seq % u64::from(stride)) as u32;
        let mut d = Digest {
            seq: self.seq,
            full,
            reply,
            drops: Vec::new(),
            defs: Vec::new(),
            beats: Vec::new(),
            beat_stride: stride,
            versions: Vec::new(),
            refreshes: Vec::new(),
        };
        // Origins that left the view free their slots first.
        let mut present = vec![false; self.slots.len()];
        for e in view {
            if let Some(&slot) = self.by_origin.get(&*e.origin) {
                present[slot as usize] = true;
            }
        }
        for (slot, here) in present.iter().enumerate() {
            if *here {
                continue;
            }
            if let Some(sent) = self.slots[slot].take() {
                self.by_origin.remove(&sent.origin);
                let slot = slot as u32;
                self.free.push(slot);
                d.drops.push(slot);
            }
        }
        // Lowest free slot first, so the dense beats array stays short.
        self.free.sort_unstable_by(|a, b| b.cmp(a));
        let mut beats: Vec<(u32, u64)> = Vec::new();
        for e in view {
            let slot = match self.by_origin.get(&*e.origin) {
                Some(&slot) => slot,
                None => {
                    let slot = self.free.pop().unwrap_or(self.slots.len() as u32);
                    if slot as usize == self.slots.len() {
                        self.slots.push(None);
                    }
                    self.by_origin.insert(e.origin.clone(), slot);
                    slot
                }
            };
            let cell = &mut self.slots[slot as usize];
            match cell {
                // Heartbeats only move forward within an instance; one that
                // went back (the origin died here and came back) is
                // redefined below rather than sent as a negative advance.
                Some(sent)
                    if sent.instance_id == e.instance_id && e.heartbeat >= sent.heartbeat =>
                {
                    if e.heartbeat > sent.heartbeat && slot % stride == phase {
                        beats.push((slot, e.heartbeat - sent.heartbeat));
                        sent.heartbeat = e.heartbeat;
                    }
                    if e.max_version != sent.max_version {
                        d.versions.push((slot, e.max_version));
                        sent.max_version = e.max_version;
                    }
                    if e.refreshed_at != sent.refreshed_at {
                        d.refreshes.push((slot, e.refreshed_at));
                        sent.refreshed_at = e.refreshed_at;
                    }
                }
                _ => {
                    // New origin, or a new instance of it: send it whole.
                    *cell = Some(Sent {
                        origin: e.origin.clone(),
                        instance_id: e.instance_id.clone(),
                        heartbeat: e.heartbeat,
                        max_version: e.max_version,
                        refreshed_at: e.refreshed_at,
                    });
                    d.defs.push(SlotDef {
                        slot,
                        entry: e.clone(),
                    });
                }
            }
        }
        // Slot `phase + j·stride` sits at index `j`.
        if let Some(last) = beats.iter().map(|(s, _)| (s / stride) as usize).max() {
            d.beats = vec![0; last + 1];
            for (slot, advance) in beats {
                d.beats[(slot / stride) as usize] = advance;
            }
        }
        d
    }
}

/// Why a digest could not be applied to the mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MirrorError {
    /// An older or repeated digest (a duplicate in transit): ignore it.
    Stale,
    /// The digest does not follow the last one applied (one went missing),
    /// or the mirror is waiting for a full digest: ask for a resync.
    OutOfSync,
    /// The digest contradicts itself or the slot table (bad input).
    Malformed(String),
}

/// Inbound half of a connection: the peer's full view, rebuilt from its
/// incremental digests.
#[derive(Debug, Default)]
pub struct DigestMirror {
    seq: u64,
    synced: bool,
    slots: Vec<Option<DigestEntry>>,
    by_origin: HashMap<Arc<str>, u32>,
}

impl DigestMirror {
    /// Applies one digest. On success returns the slots whose state changed
    /// (their heartbeats and refreshes are news for the failure detector).
    pub fn apply(&mut self, d: &Digest) -> Result<Vec<u32>, MirrorError> {
        if d.full {
            if self.synced && d.seq <= self.seq {
                return Err(MirrorError::Stale);
            }
        } else if !self.synced {
            return Err(MirrorError::OutOfSync);
        } else if d.seq <= self.seq {
            return Err(MirrorError::Stale);
        } else if d.seq != self.seq + 1 {
            self.synced = false;
            return Err(MirrorError::OutOfSync);
        }
        let applied = self.apply_body(d);
        // A malformed digest closes the connection; until then nothing of
        // this mirror is trusted.
        self.synced = applied.is_ok();
        if applied.is_ok() {
            self.seq = d.seq;
        }
        applied
    }

    fn apply_body(&mut self, d: &Digest) -> Result<Vec<u32>, MirrorError> {
        if d.full {
            self.slots.clear();
            self.by_origin.clear();
        }
        let mut changed = Vec::new();
        for &slot in &d.drops {
            let Some(Some(e)) = self.slots.get_mut(slot as usize).map(Option::take) else {
                return Err(bad(format!("drop of empty slot {slot}")));
            };
            self.by_origin.remove(&e.origin);
        }
        for def in &d.defs {
            let i = def.slot as usize;
            if i > self.slots.len() || i >= MAX_SLOTS {
                return Err(bad(format!("slot {i} defined past the table end")));
            }
            if i == self.slots.len() {
                self.slots.push(None);
            }
            if let Some(old) = self.slots[i].take() {
                self.by_origin.remove(&old.origin);
            }
            if self
                .by_origin
                .insert(def.entry.origin.clone(), def.slot)
                .is_some()
            {
                return Err(bad(format!(
                    "origin {} held in two slots",
                    def.entry.origin
                )));
            }
            self.slots[i] = Some(def.entry.clone());
            changed.push(def.slot);
        }
        let stride = d.beat_stride;
        if !(1..=MAX_BEAT_STRIDE).contains(&stride) {
            return Err(bad(format!("heartbeat stride {stride}")));
        }
        let phase = (d.seq % u64::from(stride)) as usize;
        let stride = stride as usize;
        // Checked before the loop: `beats` may be far longer than the table.
        if d.beats.len() > self.slots.len().saturating_sub(phase).div_ceil(stride) {
            return Err(bad("more heartbeat advances than slots".into()));
        }
        for (j, &advance) in d.beats.iter().enumerate() {
            if advance == 0 {
                continue;
            }
            let i = phase + j * stride;
            let Some(Some(e)) = self.slots.get_mut(i) else {
                return Err(bad(format!("heartbeat advance for empty slot {i}")));
            };
            e.heartbeat = e.heartbeat.saturating_add(advance);
            changed.push(i as u32);
        }
        for &(slot, version) in &d.versions {
            let Some(Some(e)) = self.slots.get_mut(slot as usize) else {
                return Err(bad(format!("version for empty slot {slot}")));
            };
            e.max_version = version;
            changed.push(slot);
        }
        for &(slot, at) in &d.refreshes {
            let Some(Some(e)) = self.slots.get_mut(slot as usize) else {
                return Err(bad(format!("refresh for empty slot {slot}")));
            };
            e.refreshed_at = at;
            changed.push(slot);
        }
        changed.sort_unstable();
        changed.dedup();
        Ok(changed)
    }

    /// The peer's state of `origin`, if it holds it.
    pub fn get(&self, origin: &str) -> Option<&DigestEntry> {
        let slot = *self.by_origin.get(origin)?;
        self.slots.get(slot as usize)?.as_ref()
    }

    /// The peer's state in slot `slot`.
    pub fn slot(&self, slot: u32) -> Option<&DigestEntry> {
        self.slots.get(slot as usize)?.as_ref()
    }
}

fn bad(reason: String) -> MirrorError {
    MirrorError::Malformed(reason)
}

/// Both halves of one fabric connection.
#[derive(Debug)]
pub struct DigestLink {
    /// What we tell the peer.
    pub tx: DigestSender,
    /// What the peer told us.
    pub rx: DigestMirror,
}

/// The digest state of every fabric connection.
#[derive(Debug, Default)]
pub struct DigestLinks {
    links: HashMap<ConnId, DigestLink>,
}

impl DigestLinks {
    /// The link state of `conn`, created fresh (first digest full) if new.
    pub fn link(&mut self, conn: ConnId) -> &mut DigestLink {
        self.links.entry(conn).or_insert_with(|| DigestLink {
            tx: DigestSender::new(),
            rx: DigestMirror::default(),
        })
    }

    /// Forgets a closed connection.
    pub fn remove(&mut self, conn: ConnId) {
        self.links.remove(&conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(origin: &str, instance: &str, hb: u64, v: u64) -> DigestEntry {
        DigestEntry {
            origin: origin.into(),
            instance_id: instance.into(),
            started_at: 1.0,
            heartbeat: hb,
            max_version: v,
            refreshed_at: 10.0,
        }
    }

    fn view_of(m: &DigestMirror) -> Vec<DigestEntry> {
        let mut v: Vec<DigestEntry> = m.slots.iter().flatten().cloned().collect();
        v.sort_by(|a, b| a.origin.cmp(&b.origin));
        v
    }

    fn sorted(mut v: Vec<DigestEntry>) -> Vec<DigestEntry> {
        v.sort_by(|a, b| a.origin.cmp(&b.origin));
        v
    }

    #[test]
    fn steady_digests_carry_only_changes() {
        let mut tx = DigestSender::new();
        let mut rx = DigestMirror::default();
        let mut view: Vec<DigestEntry> = (0..50)
            .map(|i| entry(&format!("ws://10.0.0.{i}:7000"), "inst", 5, 3))
            .collect();
        let first = tx.encode(&view, true, 1);
        assert!(first.full);
        assert_eq!(first.defs.len(), 50);
        rx.apply(&first).unwrap();
        for e in view.iter_mut() {
            e.heartbeat += 2;
        }
        view[7].max_version = 9;
        let second = tx.encode(&view, false, 1);
        assert!(!second.full && second.defs.is_empty());
        assert_eq!(second.beats, vec![2; 50]);
        assert_eq!(second.versions, vec![(7, 9)]);
        assert_eq!(rx.apply(&second).unwrap().len(), 50);
        assert_eq!(view_of(&rx), sorted(view.clone()));
        let first_len =
            crate::wire::fabric::encode(&crate::wire::fabric::FabricMsg::Digest(first)).len();
        let second_len =
            crate::wire::fabric::encode(&crate::wire::fabric::FabricMsg::Digest(second)).len();
        assert!(
            second_len * 10 < first_len,
            "steady {second_len} B vs first {first_len} B"
        );
    }

    #[test]
    fn a_striped_digest_carries_one_stripe_and_the_rest_follow() {
        let mut tx = DigestSender::new();
        let mut rx = DigestMirror::default();
        let mut view: Vec<DigestEntry> = (0..50)
            .map(|i| entry(&format!("o{i:02}"), "inst", 5, 3))
            .collect();
        rx.apply(&tx.encode(&view, true, 3)).unwrap();
        for e in view.iter_mut() {
            e.heartbeat += 2;
        }
        let mut covered = Vec::new();
        for n in 0..3 {
            let d = tx.encode(&view, true, 3);
            // Slots 0..50 split in three stripes of 17, 17 and 16.
            assert!(d.beats.len() <= 17 && d.beats.iter().all(|&b| b == 2));
            let changed = rx.apply(&d).unwrap();
            assert!(changed.iter().all(|s| s % 3 == (d.seq % 3) as u32));
            covered.extend(changed);
            if n < 2 {
                assert_ne!(view_of(&rx), sorted(view.clone()), "only a stripe moved");
            }
        }
        covered.sort_unstable();
        assert_eq!(covered, (0..50).collect::<Vec<u32>>());
        assert_eq!(view_of(&rx), sorted(view.clone()));
        // An advance waiting for its stripe accumulates.
        view[0].heartbeat += 1;
        let d = tx.encode(&view, true, 3);
        view[0].heartbeat += 1;
        rx.apply(&d).unwrap();
        while rx.get("o00").map(|e| e.heartbeat) != Some(9) {
            let d = tx.encode(&view, true, 3);
            assert!(d.seq < 10, "slot 0 never came round");
            rx.apply(&d).unwrap();
        }
    }

    #[test]
    fn vanished_origins_are_dropped_and_restarts_redefined() {
        let mut tx = DigestSender::new();
        let mut rx = DigestMirror::default();
        let view = vec![
            entry("a", "1", 1, 1),
            entry("b", "1", 1, 1),
            entry("c", "1", 1, 1),
        ];
        rx.apply(&tx.encode(&view, true, 1)).unwrap();
        // b died, c restarted, d is new: d takes b's slot.
        let view = vec![
            entry("a", "1", 1, 1),
            entry("c", "2", 0, 0),
            entry("d", "1", 4, 4),
        ];
        let d = tx.encode(&view, true, 1);
        assert_eq!(d.drops, vec![1]);
        assert_eq!(
            d.defs.iter().map(|s| s.slot).collect::<Vec<_>>(),
            vec![2, 1]
        );
        rx.apply(&d).unwrap();
        assert_eq!(view_of(&rx), sorted(view));
        assert!(rx.get("b").is_none());
        assert_eq!(rx.get("c").map(|e| &*e.instance_id), Some("2"));
    }

    #[test]
    fn a_lost_digest_is_detected_and_a_full_one_recovers() {
        let mut tx = DigestSender::new();
        let mut rx = DigestMirror::default();
        let mut view = vec![entry("a", "1", 1, 1)];
        rx.apply(&tx.encode(&view, true, 1)).unwrap();
        view[0].heartbeat = 2;
        let lost = tx.encode(&view, true, 1);
        view[0].heartbeat = 3;
        let next = tx.encode(&view, true, 1);
        assert_eq!(rx.apply(&next), Err(MirrorError::OutOfSync));
        // Still out of sync: the late one does not help either.
        assert_eq!(rx.apply(&lost), Err(MirrorError::OutOfSync));
        tx.resync();
        let full = tx.encode(&view, true, 1);
        assert!(full.full);
        rx.apply(&full).unwrap();
        assert_eq!(rx.get("a").map(|e| e.heartbeat), Some(3));
        // A duplicate of an applied digest is stale, not a gap.
        assert_eq!(rx.apply(&full), Err(MirrorError::Stale));
    }

    #[test]
    fn inconsistent_digests_are_malformed() {
        let view = vec![entry("a", "1", 1, 1)];
        type Spoil = Box<dyn Fn(&mut Digest)>;
        let cases: Vec<Spoil> = vec![
            Box::new(|d| d.beats = vec![0, 4]),
            Box::new(|d| d.beat_stride = 0),
            Box::new(|d| d.beat_stride = MAX_BEAT_STRIDE + 1),
            // Seq 2 at stride 2 covers slots 0, 2, ...: slot 2 is not there.
            Box::new(|d| {
                assert_eq!(d.seq, 2);
                d.beat_stride = 2;
                d.beats = vec![0, 1];
            }),
            Box::new(|d| {
                d.defs = vec![SlotDef {
                    slot: 9,
                    entry: entry("z", "1", 1, 1),
                }]
            }),
            Box::new(|d| {
                d.defs = vec![SlotDef {
                    slot: 1,
                    entry: entry("a", "1", 1, 1),
                }]
            }),
            Box::new(|d| d.drops = vec![3]),
            Box::new(|d| d.versions = vec![(2, 1)]),
            Box::new(|d| d.refreshes = vec![(5, 1.0)]),
        ];
        for spoil in cases {
            let mut tx = DigestSender::new();
            let mut rx = DigestMirror::default();
            rx.apply(&tx.encode(&view, true, 1)).unwrap();
            let mut d = tx.encode(&view, true, 1);
            spoil(&mut d);
            assert!(matches!(rx.apply(&d), Err(MirrorError::Malformed(_))));
            // Untrusted until a full digest arrives.
            let next = tx.encode(&view, true, 1);
            assert_eq!(rx.apply(&next), Err(MirrorError::OutOfSync));
        }
    }

    /// One digest through the wire codec and into the mirror.
    fn deliver(tx: &mut DigestSender, rx: &mut DigestMirror, list: &[DigestEntry], stride: u32) {
        let d = tx.encode(list, false, stride);
        let bytes = crate::wire::fabric::encode(&crate::wire::fabric::FabricMsg::Digest(d));
        let back = crate::wire::fabric::decode(&bytes, 1 << 20).unwrap();
        let crate::wire::fabric::FabricMsg::Digest(d) = back.msg else {
            panic!("digest decodes as a digest");
        };
        rx.apply(&d).unwrap();
    }

    proptest! {
        /// Whatever the view does between digests and whatever the stride,
        /// the mirror rebuilds it from the differences: exactly but for
        /// heartbeats still waiting for their stripe (never ahead of the
        /// view), and exactly once every stripe came round.
        #[test]
        fn mirror_tracks_the_sender_view(
            steps in proptest::collection::vec(
                (
                    proptest::collection::vec((0usize..12, 0u64..3, 0u64..40, 0u64..3), 0..12),
                    1u32..5,
                ),
                1..12,
            ),
        ) {
            let mut tx = DigestSender::new();
            let mut rx = DigestMirror::default();
            let mut view: BTreeMapView = BTreeMapView::default();
            let mut last_stride = 1;
            for (step, stride) in steps {
                for (o, inst, hb, v) in step {
                    view.put(o, inst, hb, v);
                }
                let list = view.list();
                deliver(&mut tx, &mut rx, &list, stride);
                let got = view_of(&rx);
                let want = sorted(list);
                prop_assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    prop_assert!(g.heartbeat <= w.heartbeat);
                    let mut g = g.clone();
                    g.heartbeat = w.heartbeat;
                    prop_assert_eq!(&g, w);
                }
                last_stride = stride;
            }
            let list = view.list();
            for _ in 0..last_stride {
                deliver(&mut tx, &mut rx, &list, last_stride);
            }
            prop_assert_eq!(view_of(&rx), sorted(list));
        }
    }

    /// A replica-like view for the property test: heartbeats and versions
    /// only move forward within an instance; `hb == 0` removes the origin.
    #[derive(Default)]
    struct BTreeMapView(std::collections::BTreeMap<usize, DigestEntry>);

    impl BTreeMapView {
        fn put(&mut self, o: usize, inst: u64, hb: u64, v: u64) {
            if hb == 0 {
                self.0.remove(&o);
                return;
            }
            let e = self
                .0
                .entry(o)
                .or_insert_with(|| entry(&format!("o{o}"), &inst.to_string(), hb, v));
            if *e.instance_id != *inst.to_string() {
                *e = entry(&format!("o{o}"), &inst.to_string(), hb, v);
            } else {
                e.heartbeat = e.heartbeat.max(hb);
                e.max_version = e.max_version.max(v);
                e.refreshed_at += 1.0;
            }
        }

        fn list(&self) -> Vec<DigestEntry> {
            self.0.values().cloned().collect()
        }
    }
}
