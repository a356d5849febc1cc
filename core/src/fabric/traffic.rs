//! Fabric traffic sent, by message kind: how an operator sees which part of
//! the gossip (digests, beats, floods, repairs) costs the bandwidth, and how
//! the scaling harness measures per-node bytes without decoding frames
//! (`mpreg_fabric_sent_frames_total` / `mpreg_fabric_sent_bytes_total`).

use crate::wire::fabric::FabricMsg;

/// What a fabric message is for, as far as traffic goes: a digest that asks
/// for an answer is told apart from the answer, a flooded delta from a
/// repair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgKind {
    /// Connection opening.
    Hello,
    /// Cluster-key proof.
    Auth,
    /// Full liveness and offer report.
    Status,
    /// Liveness between full reports.
    Beat,
    /// Graceful departure.
    Goodbye,
    /// Anti-entropy digest that asks for the peer's own.
    Digest,
    /// The answering digest.
    DigestReply,
    /// Fresh changes, relayed once by each receiver.
    DeltaFlood,
    /// Changes answering a digest (not relayed).
    DeltaRepair,
    /// Summary export flood.
    Summary,
    /// Request for a full digest.
    Resync,
}

/// Number of [`MsgKind`]s.
const KINDS: usize = 11;

impl MsgKind {
    /// Every kind, in metric order.
    pub const ALL: [MsgKind; KINDS] = [
        MsgKind::Hello,
        MsgKind::Auth,
        MsgKind::Status,
        MsgKind::Beat,
        MsgKind::Goodbye,
        MsgKind::Digest,
        MsgKind::DigestReply,
        MsgKind::DeltaFlood,
        MsgKind::DeltaRepair,
        MsgKind::Summary,
        MsgKind::Resync,
    ];

    /// The kind of a message.
    pub fn of(msg: &FabricMsg) -> MsgKind {
        match msg {
            FabricMsg::Hello(_) => MsgKind::Hello,
            FabricMsg::Auth(_) => MsgKind::Auth,
            FabricMsg::Status(_) => MsgKind::Status,
            FabricMsg::Beat(_) => MsgKind::Beat,
            FabricMsg::Goodbye(_) => MsgKind::Goodbye,
            FabricMsg::Digest(d) if d.reply => MsgKind::Digest,
            FabricMsg::Digest(_) => MsgKind::DigestReply,
            FabricMsg::Delta(d) if d.flood => MsgKind::DeltaFlood,
            FabricMsg::Delta(_) => MsgKind::DeltaRepair,
            FabricMsg::Summary(_) => MsgKind::Summary,
            FabricMsg::Resync => MsgKind::Resync,
        }
    }

    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            MsgKind::Hello => "hello",
            MsgKind::Auth => "auth",
            MsgKind::Status => "status",
            MsgKind::Beat => "beat",
            MsgKind::Goodbye => "goodbye",
            MsgKind::Digest => "digest",
            MsgKind::DigestReply => "digest-reply",
            MsgKind::DeltaFlood => "delta-flood",
            MsgKind::DeltaRepair => "delta-repair",
            MsgKind::Summary => "summary",
            MsgKind::Resync => "resync",
        }
    }
}

/// Frames and payload bytes sent, per [`MsgKind`]. Bytes are the encoded
/// fabric frame (version header and CBOR body); WebSocket and TCP/IP
/// framing come on top.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    frames: [u64; KINDS],
    bytes: [u64; KINDS],
}

impl Traffic {
    /// Counts `copies` frames of `len` bytes each.
    pub fn add(&mut self, kind: MsgKind, len: usize, copies: usize) {
        let i = kind as usize;
        let copies = copies as u64;
        self.frames[i] = self.frames[i].saturating_add(copies);
        self.bytes[i] = self.bytes[i].saturating_add((len as u64).saturating_mul(copies));
    }

    /// Frames sent of one kind.
    pub fn frames(&self, kind: MsgKind) -> u64 {
        self.frames[kind as usize]
    }

    /// Bytes sent of one kind.
    pub fn bytes(&self, kind: MsgKind) -> u64 {
        self.bytes[kind as usize]
    }

    /// Frames sent of every kind.
    pub fn total_frames(&self) -> u64 {
        self.frames.iter().sum()
    }

    /// Bytes sent of every kind.
    pub fn total_bytes(&self) -> u64 {
        self.bytes.iter().sum()
    }

    /// Adds another node's traffic (cluster totals).
    pub fn absorb(&mut self, other: &Traffic) {
        for i in 0..KINDS {
            self.frames[i] = self.frames[i].saturating_add(other.frames[i]);
            self.bytes[i] = self.bytes[i].saturating_add(other.bytes[i]);
        }
    }

    /// The traffic sent after `earlier` was taken (counters only grow).
    pub fn since(&self, earlier: &Traffic) -> Traffic {
        let mut t = *self;
        for i in 0..KINDS {
            t.frames[i] = t.frames[i].saturating_sub(earlier.frames[i]);
            t.bytes[i] = t.bytes[i].saturating_sub(earlier.bytes[i]);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_index_their_own_slots() {
        for (i, k) in MsgKind::ALL.iter().enumerate() {
            assert_eq!(*k as usize, i, "{k:?}");
        }
        let labels: std::collections::BTreeSet<_> =
            MsgKind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(labels.len(), KINDS, "labels are distinct");
    }

    #[test]
    fn counts_frames_and_bytes_per_kind() {
        let mut t = Traffic::default();
        t.add(MsgKind::Beat, 40, 3);
        t.add(MsgKind::DeltaFlood, 500, 1);
        t.add(MsgKind::Beat, 10, 1);
        assert_eq!(t.frames(MsgKind::Beat), 4);
        assert_eq!(t.bytes(MsgKind::Beat), 130);
        assert_eq!(t.bytes(MsgKind::DeltaFlood), 500);
        assert_eq!(t.frames(MsgKind::DeltaRepair), 0);
        assert_eq!((t.total_frames(), t.total_bytes()), (5, 630));
        let before = t;
        t.add(MsgKind::Resync, 7, 2);
        let d = t.since(&before);
        assert_eq!((d.total_frames(), d.total_bytes()), (2, 14));
        let mut sum = before;
        sum.absorb(&d);
        assert_eq!(sum, t);
    }

    #[test]
    fn tells_the_legs_of_an_exchange_apart() {
        use crate::wire::fabric::{Changes, Delta, Digest};
        let digest = |reply| {
            FabricMsg::Digest(Digest {
                seq: 1,
                full: true,
                reply,
                drops: vec![],
                defs: vec![],
                beats: vec![],
                beat_stride: 1,
                versions: vec![],
                refreshes: vec![],
            })
        };
        let delta = |flood| {
            FabricMsg::Delta(Delta {
                origin: "ws://127.0.0.1:1".into(),
                instance_id: "i".into(),
                started_at: 0.0,
                heartbeat: 0,
                refreshed_at: 0.0,
                reset: false,
                floor: 0,
                complete_to: 0,
                changes: Changes::new(),
                flood,
            })
        };
        assert_eq!(MsgKind::of(&digest(true)), MsgKind::Digest);
        assert_eq!(MsgKind::of(&digest(false)), MsgKind::DigestReply);
        assert_eq!(MsgKind::of(&delta(true)), MsgKind::DeltaFlood);
        assert_eq!(MsgKind::of(&delta(false)), MsgKind::DeltaRepair);
        assert_eq!(MsgKind::of(&FabricMsg::Resync), MsgKind::Resync);
    }
}
