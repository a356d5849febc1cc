//! The fabric protocol between mpreg-rs nodes: WebSocket subprotocol
//! [`SUBPROTOCOL`], one CBOR-encoded [`FabricFrame`] per binary message.
//!
//! Every frame carries the protocol version, so a node can refuse a peer that
//! speaks a version it does not understand with a clear close reason instead
//! of misreading it. Frames have a hard size bound checked *before* decoding,
//! so a hostile peer cannot make the node allocate without limit.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_tuple::{Deserialize_tuple, Serialize_tuple};

use crate::catalog::entry::{Entry, EntryKey};

/// The WebSocket subprotocol that marks a connection as fabric, not client.
pub const SUBPROTOCOL: &str = "mpreg-fabric.v1";

/// The version this build speaks. Version 2 replaced version 1's digest
/// (every origin spelled out in full in every digest) with the per-connection
/// incremental [`Digest`] and added [`FabricMsg::Resync`]. Version 3 sends the
/// full [`Status`] only when its offer changes and a small [`Beat`] in the
/// other gossip rounds, so a version-2 peer would see us go stale. Version 4
/// encodes the frames every gossip round sends ([`Beat`], [`Digest`] and its
/// parts) as CBOR arrays instead of maps: their field names were most of
/// their bytes (a Beat went from about 150 bytes to about 30). Version 5
/// carries a [`Delta`]'s changes as one byte string ([`Changes`]), so
/// duplicates are dropped before their changes are parsed. Versions cannot
/// interoperate, so an older peer is refused with a named reason.
pub const PROTOCOL_VERSION: u16 = 5;

/// One fabric message with its version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FabricFrame {
    /// Protocol version of the sender.
    pub v: u16,
    /// The message.
    pub msg: FabricMsg,
}

/// Fabric messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FabricMsg {
    /// First frame in each direction: who is on the other end.
    Hello(Hello),
    /// The answer to the peer's Hello challenge when the cluster runs with
    /// `fabric_auth_key` ([`crate::fabric::auth`]).
    Auth(AuthProof),
    /// Liveness and load report with the sender's offer (MPREG's STATUS):
    /// sent when a connection opens and whenever the offer changes.
    Status(Status),
    /// Liveness and load in the gossip rounds where the offer did not change:
    /// the [`Status`] fields that move, against the last full one received
    /// on the same connection.
    Beat(Beat),
    /// Graceful departure (MPREG's GOODBYE).
    Goodbye(Goodbye),
    /// Anti-entropy summary: what the sender knows of every origin, as a
    /// change against the previous digest on the same connection.
    Digest(Digest),
    /// Versioned changes of one origin's entries.
    Delta(Delta),
    /// One summary export, flooded once per node
    /// ([`crate::summary::flood`]).
    Summary(crate::summary::flood::SummaryFlood),
    /// The receiver lost the thread of the sender's digests on this
    /// connection (a digest went missing): the next one must be full.
    Resync,
}

/// Identifies the sending node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender's node id (`ws://host:port`).
    pub node_id: String,
    /// The sender's cluster.
    pub cluster_id: String,
    /// The sender's process instance (a ULID, new at every start).
    pub instance_id: String,
    /// Set when the sender holds a cluster key: the challenge the receiver
    /// must answer with an [`AuthProof`] before the sender gossips with it.
    /// Absent on the wire otherwise, so nodes without a key exchange the
    /// same Hello as before authentication existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge: Option<Vec<u8>>,
}

/// Proof of the cluster key: the HMAC of the peer's challenge and our
/// identity ([`crate::fabric::auth::ClusterKey::proof`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthProof {
    /// The HMAC-SHA256 output.
    pub proof: Vec<u8>,
}

/// MPREG's STATUS fields (`reference/fabric.md` §1.9).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// Sender node id.
    pub node_id: String,
    /// Sender cluster.
    pub cluster_id: String,
    /// Sender instance.
    pub instance_id: String,
    /// Sender wall clock, Unix seconds.
    pub timestamp: f64,
    /// `ok` while the node runs.
    pub status: String,
    /// Client connections open at the sender.
    pub active_clients: u64,
    /// Nodes the sender knows, itself included.
    pub peer_count: u64,
    /// Function names the sender serves.
    pub funs: Vec<String>,
    /// Resources of the sender.
    pub locs: Vec<String>,
    /// URLs the sender can be reached at.
    pub advertised_urls: Vec<String>,
    /// The sender's region (`cache_region`).
    pub region: String,
    /// Message counters.
    pub metrics: StatusMetrics,
}

impl Status {
    /// Whether `other` offers the same as `self`: everything but the time,
    /// the load and the counters, which a [`Beat`] carries.
    pub fn same_offer(&self, other: &Status) -> bool {
        self.node_id == other.node_id
            && self.cluster_id == other.cluster_id
            && self.instance_id == other.instance_id
            && self.status == other.status
            && self.funs == other.funs
            && self.locs == other.locs
            && self.advertised_urls == other.advertised_urls
            && self.region == other.region
    }

    /// The moving part of this status.
    pub fn beat(&self) -> Beat {
        Beat {
            timestamp: self.timestamp,
            active_clients: self.active_clients,
            peer_count: self.peer_count,
            metrics: self.metrics.clone(),
        }
    }

    /// Applies a beat from the same sender.
    pub fn apply_beat(&mut self, beat: Beat) {
        self.timestamp = beat.timestamp;
        self.active_clients = beat.active_clients;
        self.peer_count = beat.peer_count;
        self.metrics = beat.metrics;
    }
}

/// The part of a [`Status`] that changes every gossip round. Identity comes
/// from the connection (its sender sent a full STATUS on it first).
#[derive(Debug, Clone, PartialEq, Serialize_tuple, Deserialize_tuple)]
pub struct Beat {
    /// Sender wall clock, Unix seconds.
    pub timestamp: f64,
    /// Client connections open at the sender.
    pub active_clients: u64,
    /// Nodes the sender knows, itself included.
    pub peer_count: u64,
    /// Message counters.
    pub metrics: StatusMetrics,
}

/// Counters reported in STATUS and shown as `load` in `list_peers`.
#[derive(Debug, Clone, Default, PartialEq, Serialize_tuple, Deserialize_tuple)]
pub struct StatusMetrics {
    /// Client messages handled.
    pub messages_processed: u64,
    /// RPC responses not delivered.
    pub rpc_responses_skipped: u64,
    /// Fabric messages handled.
    pub server_messages: u64,
    /// Other messages handled.
    pub other_messages: u64,
}

/// MPREG's GOODBYE fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Goodbye {
    /// Departing node id.
    pub node_id: String,
    /// Its cluster.
    pub cluster_id: String,
    /// Its instance: a restarted process on the same URL is a different
    /// instance and is not affected by this departure.
    pub instance_id: String,
    /// `graceful_shutdown | maintenance | cluster_rebalance | manual_removal`.
    pub reason: String,
    /// Sender wall clock.
    pub timestamp: f64,
}

/// What a node knows about one origin: one row of its anti-entropy state.
#[derive(Debug, Clone, PartialEq, Serialize_tuple, Deserialize_tuple)]
pub struct DigestEntry {
    /// Origin node id (shared: every connection's digest table holds the
    /// same origins, so they share one copy instead of one each).
    pub origin: Arc<str>,
    /// Origin instance (shared likewise).
    pub instance_id: Arc<str>,
    /// Wall time the instance started (orders two instances of one node).
    pub started_at: f64,
    /// Highest heartbeat seen from this instance.
    pub heartbeat: u64,
    /// Highest version held contiguously (every change up to it applied).
    pub max_version: u64,
    /// Newest owner refresh time seen (entries are fresh up to it).
    pub refreshed_at: f64,
}

/// A [`DigestEntry`] bound to a slot of the connection's origin table.
#[derive(Debug, Clone, PartialEq, Serialize_tuple, Deserialize_tuple)]
pub struct SlotDef {
    /// Slot index in the sender's table for this connection.
    pub slot: u32,
    /// The origin's full state.
    pub entry: DigestEntry,
}

/// Scuttlebutt digest, sent incrementally per connection (and direction).
///
/// A full digest of 1000 origins spelled out costs ~128 KB, and digests go
/// to two peers every gossip interval, so version 2 sends each origin's
/// identity once per connection ([`SlotDef`], bound to a small slot number)
/// and afterwards only what changed since the previous digest on the same
/// connection: heartbeat advances as a dense array of small integers (one
/// CBOR byte each while below 24), version and refresh changes sparsely.
/// `seq` numbers the digests of one connection direction from 1, so a lost,
/// duplicated or reordered digest is detected (the receiver asks for a
/// [`FabricMsg::Resync`] and the next digest is `full`).
#[derive(Debug, Clone, PartialEq, Serialize_tuple, Deserialize_tuple)]
pub struct Digest {
    /// Position in this connection direction's digest stream.
    pub seq: u64,
    /// The receiver discards what it knew of the sender's view first; the
    /// slot table restarts empty and `defs` describe every origin.
    pub full: bool,
    /// True when the receiver should answer with its own digest (the first
    /// leg of an exchange); false for the answer, which ends the exchange.
    pub reply: bool,
    /// Slots that the sender no longer holds (its origin died or left).
    /// Applied first, so a freed slot can be redefined in `defs`.
    pub drops: Vec<u32>,
    /// Slots (re)defined: a new origin, or a new instance of one.
    pub defs: Vec<SlotDef>,
    /// Heartbeat advances of one stripe of the slot table: index `j` holds
    /// the advance of slot `seq % beat_stride + j·beat_stride` (trailing
    /// zeros omitted). The other slots' advances wait for their stripe.
    pub beats: Vec<u64>,
    /// Distance between the slots `beats` covers (1: every slot).
    pub beat_stride: u32,
    /// `(slot, max_version)` of slots whose version moved.
    pub versions: Vec<(u32, u64)>,
    /// `(slot, refreshed_at)` of slots whose owner refresh moved.
    pub refreshes: Vec<(u32, f64)>,
}

/// One versioned change of an origin's entry set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// The origin's version at which this change happened.
    pub version: u64,
    /// Which entry.
    pub key: EntryKey,
    /// The entry, or `None` for a removal (tombstone).
    pub entry: Option<Entry>,
}

/// The changes of a [`Delta`] in their encoded form: a CBOR sequence
/// (RFC 8742) of [`Change`]s, carried as one byte string.
///
/// Flooding over a mesh of `k` links delivers every fresh delta about `k`
/// times, and all but the first copy bring nothing new. Keeping the changes
/// encoded lets a receiver read a delta's header (origin, instance, version
/// range, heartbeat) and parse the changes only when the delta can change
/// something: the duplicates are dropped unparsed (parsing them was most of
/// the fabric's receive cost), and a relay forwards the bytes as they came.
/// Whatever a node applies or relays it has parsed, so a malformed change
/// is still rejected at the first hop that acts on it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Changes {
    bytes: Vec<u8>,
}

impl Changes {
    /// No changes.
    pub fn new() -> Changes {
        Changes::default()
    }

    /// Changes as received, unchecked: [`Changes::decode`] validates them.
    pub fn from_encoded(bytes: Vec<u8>) -> Changes {
        Changes { bytes }
    }

    /// Appends one change.
    pub fn push(&mut self, change: &Change) {
        // Writing into a Vec cannot fail, and a Change always serialises.
        let _ = ciborium::into_writer(change, &mut self.bytes);
    }

    /// Appends a change already encoded by [`Changes::encode_one`].
    pub fn push_encoded(&mut self, encoded: &[u8]) {
        self.bytes.extend_from_slice(encoded);
    }

    /// One change encoded on its own (to measure it before appending it).
    pub fn encode_one(change: &Change) -> Vec<u8> {
        let mut out = Vec::new();
        let _ = ciborium::into_writer(change, &mut out);
        out
    }

    /// Whether there are no changes.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Encoded size in bytes.
    pub fn byte_len(&self) -> usize {
        self.bytes.len()
    }

    /// Parses the changes. Peer input: any malformed item is an error,
    /// never a panic.
    pub fn decode(&self) -> Result<Vec<Change>, FabricDecodeError> {
        let mut rest: &[u8] = &self.bytes;
        let mut out = Vec::new();
        while !rest.is_empty() {
            let change: Change = ciborium::from_reader(&mut rest)
                .map_err(|e| FabricDecodeError::Malformed(format!("delta change: {e}")))?;
            out.push(change);
        }
        Ok(out)
    }
}

impl<'a> FromIterator<&'a Change> for Changes {
    fn from_iter<I: IntoIterator<Item = &'a Change>>(iter: I) -> Changes {
        let mut out = Changes::new();
        for change in iter {
            out.push(change);
        }
        out
    }
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.decode() {
            Ok(changes) => f.debug_list().entries(&changes).finish(),
            Err(_) => write!(f, "Changes(<{} malformed bytes>)", self.bytes.len()),
        }
    }
}

impl Serialize for Changes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.bytes)
    }
}

impl<'de> Deserialize<'de> for Changes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Changes, D::Error> {
        struct Bytes;
        impl<'de> serde::de::Visitor<'de> for Bytes {
            type Value = Changes;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string of encoded changes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Changes, E> {
                Ok(Changes { bytes: v.to_vec() })
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Changes, E> {
                Ok(Changes { bytes: v })
            }
        }
        deserializer.deserialize_byte_buf(Bytes)
    }
}

/// Changes of one origin covering the version range `(floor, complete_to]`
/// completely: every key whose current version lies in the range is in
/// `changes`. A receiver that holds the origin up to at least `floor` can
/// apply it without a gap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    /// Origin node id.
    pub origin: String,
    /// Origin instance.
    pub instance_id: String,
    /// Wall time the instance started.
    pub started_at: f64,
    /// Sender's latest heartbeat for the origin.
    pub heartbeat: u64,
    /// Owner refresh time: the origin's entries are fresh as of this time.
    pub refreshed_at: f64,
    /// The receiver must drop what it holds of this origin first (the
    /// sender no longer has the tombstones needed for an incremental repair).
    pub reset: bool,
    /// Lower bound (exclusive) of the covered version range.
    pub floor: u64,
    /// Upper bound (inclusive) of the covered version range.
    pub complete_to: u64,
    /// The changes, in version order, still encoded: see [`Changes`].
    pub changes: Changes,
    /// True for fresh changes being flooded (receivers relay them once);
    /// false for a repair answering a digest (not relayed).
    pub flood: bool,
}

/// Why a fabric frame was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FabricDecodeError {
    /// Larger than the configured bound.
    #[error("fabric frame of {size} bytes exceeds the {max} byte limit")]
    TooLarge {
        /// Frame size.
        size: usize,
        /// Configured bound.
        max: usize,
    },
    /// Not valid CBOR for a fabric frame.
    #[error("undecodable fabric frame: {0}")]
    Malformed(String),
    /// A protocol version this build does not speak.
    #[error("unsupported fabric protocol version {0} (this node speaks {PROTOCOL_VERSION})")]
    Version(u16),
}

/// Encodes a message as a versioned frame: the protocol version as two
/// big-endian bytes, then the CBOR message. The version sits outside the
/// CBOR so a receiver can refuse another version without parsing the body.
pub fn encode(msg: &FabricMsg) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    // Writing into a Vec cannot fail, and every type here is serialisable.
    let _ = ciborium::into_writer(msg, &mut out);
    out
}

/// Decodes a frame, enforcing the size bound and the version first.
pub fn decode(bytes: &[u8], max: usize) -> Result<FabricFrame, FabricDecodeError> {
    if bytes.len() > max {
        return Err(FabricDecodeError::TooLarge {
            size: bytes.len(),
            max,
        });
    }
    let [hi, lo, body @ ..] = bytes else {
        return Err(FabricDecodeError::Malformed(
            "frame shorter than its version header".into(),
        ));
    };
    let v = u16::from_be_bytes([*hi, *lo]);
    if v != PROTOCOL_VERSION {
        return Err(FabricDecodeError::Version(v));
    }
    let msg: FabricMsg =
        ciborium::from_reader(body).map_err(|e| FabricDecodeError::Malformed(e.to_string()))?;
    Ok(FabricFrame { v, msg })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_str() -> impl Strategy<Value = String> {
        "[a-z0-9:/._-]{0,24}"
    }

    fn arb_msg() -> impl Strategy<Value = FabricMsg> {
        prop_oneof![
            (
                arb_str(),
                arb_str(),
                arb_str(),
                proptest::option::of(proptest::collection::vec(any::<u8>(), 32))
            )
                .prop_map(|(node_id, cluster_id, instance_id, challenge)| {
                    FabricMsg::Hello(Hello {
                        node_id,
                        cluster_id,
                        instance_id,
                        challenge,
                    })
                }),
            proptest::collection::vec(any::<u8>(), 0..40)
                .prop_map(|proof| FabricMsg::Auth(AuthProof { proof })),
            (
                arb_str(),
                arb_str(),
                0.0f64..2e9,
                any::<u64>(),
                proptest::collection::vec(arb_str(), 0..4)
            )
                .prop_map(|(node_id, cluster_id, timestamp, n, funs)| {
                    FabricMsg::Status(Status {
                        node_id: node_id.clone(),
                        cluster_id,
                        instance_id: "i".into(),
                        timestamp,
                        status: "ok".into(),
                        active_clients: n,
                        peer_count: n / 2,
                        funs,
                        locs: vec![],
                        advertised_urls: vec![node_id],
                        region: "local".into(),
                        metrics: StatusMetrics {
                            messages_processed: n,
                            ..Default::default()
                        },
                    })
                }),
            (arb_str(), arb_str(), arb_str(), 0.0f64..2e9).prop_map(
                |(node_id, cluster_id, reason, timestamp)| {
                    FabricMsg::Goodbye(Goodbye {
                        node_id,
                        cluster_id,
                        instance_id: "i".into(),
                        reason,
                        timestamp,
                    })
                }
            ),
            (
                arb_str(),
                arb_str(),
                0.0f64..2e9,
                any::<u64>(),
                any::<bool>()
            )
                .prop_map(|(origin, instance_id, started_at, version, flood)| {
                    FabricMsg::Delta(Delta {
                        origin: origin.clone(),
                        instance_id,
                        started_at,
                        heartbeat: version / 3,
                        refreshed_at: started_at,
                        reset: flood,
                        floor: version / 2,
                        complete_to: version,
                        changes: [Change {
                            version,
                            key: EntryKey::Topic {
                                subscription_id: origin,
                            },
                            entry: None,
                        }]
                        .iter()
                        .collect(),
                        flood,
                    })
                }),
            (arb_str(), arb_str(), any::<u64>(), any::<bool>()).prop_map(
                |(origin, instance_id, v, reply)| {
                    FabricMsg::Digest(Digest {
                        seq: v,
                        full: !reply,
                        reply,
                        drops: vec![(v % 7) as u32],
                        defs: vec![SlotDef {
                            slot: (v % 5) as u32,
                            entry: DigestEntry {
                                origin: origin.into(),
                                instance_id: instance_id.into(),
                                started_at: 1.5,
                                heartbeat: v,
                                max_version: v / 2,
                                refreshed_at: 2.5,
                            },
                        }],
                        beats: vec![0, v % 30, 1, v],
                        beat_stride: 1,
                        versions: vec![(1, v / 3)],
                        refreshes: vec![(2, 3.25)],
                    })
                }
            ),
            (0.0f64..2e9, any::<u64>()).prop_map(|(timestamp, n)| {
                FabricMsg::Beat(Beat {
                    timestamp,
                    active_clients: n % 100,
                    peer_count: n / 2,
                    metrics: StatusMetrics {
                        server_messages: n,
                        ..Default::default()
                    },
                })
            }),
            Just(FabricMsg::Resync),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(msg in arb_msg()) {
            let bytes = encode(&msg);
            let frame = decode(&bytes, 1 << 20).unwrap();
            prop_assert_eq!(frame.v, PROTOCOL_VERSION);
            prop_assert_eq!(frame.msg, msg);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes, 1 << 20);
        }

        #[test]
        fn truncated_frames_are_errors(msg in arb_msg(), cut in 0usize..64) {
            let bytes = encode(&msg);
            let cut = cut.min(bytes.len().saturating_sub(1));
            prop_assert!(decode(&bytes[..cut], 1 << 20).is_err());
        }
    }

    #[test]
    fn changes_are_a_sequence_parsed_on_demand() {
        let changes: Vec<Change> = (1..=3)
            .map(|version| Change {
                version,
                key: EntryKey::Topic {
                    subscription_id: format!("s{version}"),
                },
                entry: None,
            })
            .collect();
        let encoded: Changes = changes.iter().collect();
        assert_eq!(encoded.decode().unwrap(), changes);
        let mut built = Changes::new();
        for c in &changes {
            built.push_encoded(&Changes::encode_one(c));
        }
        assert_eq!(built, encoded);
        assert_eq!(Changes::new().decode().unwrap(), vec![]);
        // A frame carrying garbage changes decodes (its header is fine);
        // the changes themselves are an error, whole or cut short.
        let garbage = Changes::from_encoded(vec![0xa1, 0xff]);
        assert!(garbage.decode().is_err());
        let cut = Changes::from_encoded(encoded.bytes[..encoded.byte_len() - 1].to_vec());
        assert!(cut.decode().is_err());
        assert_eq!(format!("{garbage:?}"), "Changes(<2 malformed bytes>)");
    }

    #[test]
    fn oversized_frame_is_rejected_before_decoding() {
        let bytes = encode(&FabricMsg::Hello(Hello {
            node_id: "x".repeat(100),
            cluster_id: "c".into(),
            instance_id: "i".into(),
            challenge: None,
        }));
        assert!(matches!(
            decode(&bytes, 10),
            Err(FabricDecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_hello_without_challenge_is_the_hello_of_before() {
        // Nodes without a cluster key keep exchanging the Hello they did
        // before authentication existed: no new field on the wire.
        #[derive(Serialize)]
        enum Old {
            Hello {
                node_id: String,
                cluster_id: String,
                instance_id: String,
            },
        }
        let hello = Hello {
            node_id: "ws://127.0.0.1:7001".into(),
            cluster_id: "prod".into(),
            instance_id: "01JCZ6D5V6W0000000000000AB".into(),
            challenge: None,
        };
        let mut old = PROTOCOL_VERSION.to_be_bytes().to_vec();
        ciborium::into_writer(
            &Old::Hello {
                node_id: hello.node_id.clone(),
                cluster_id: hello.cluster_id.clone(),
                instance_id: hello.instance_id.clone(),
            },
            &mut old,
        )
        .expect("encodes");
        assert_eq!(encode(&FabricMsg::Hello(hello.clone())), old);
        let decoded = decode(&old, 1 << 20).expect("decodes");
        assert_eq!(decoded.msg, FabricMsg::Hello(hello));
    }

    #[test]
    fn older_peers_are_refused_by_name() {
        // Version 1 (full digests), version 2 (STATUS every round), version
        // 3 (gossip frames as CBOR maps) and version 4 (delta changes
        // parsed with the frame) frames from older builds.
        for old in [1u16, 2, 3, 4] {
            let mut bytes = old.to_be_bytes().to_vec();
            let _ = ciborium::into_writer(&"Resync", &mut bytes);
            let err = decode(&bytes, 1 << 20).unwrap_err();
            assert_eq!(err, FabricDecodeError::Version(old));
            assert_eq!(
                err.to_string(),
                format!("unsupported fabric protocol version {old} (this node speaks 5)")
            );
        }
    }

    #[test]
    fn a_beat_is_a_fraction_of_a_status() {
        let status = Status {
            node_id: "ws://127.0.0.1:7001".into(),
            cluster_id: "prod".into(),
            instance_id: "01JCZ6D5V6W0000000000000AB".into(),
            timestamp: 1_764_000_000.25,
            status: "ok".into(),
            active_clients: 3,
            peer_count: 100,
            funs: (0..25).map(|i| format!("mpreg.builtin.fn{i}")).collect(),
            locs: vec!["gpu".into()],
            advertised_urls: vec!["ws://127.0.0.1:7001".into()],
            region: "eu".into(),
            metrics: StatusMetrics {
                messages_processed: 123_456,
                server_messages: 654_321,
                ..Default::default()
            },
        };
        let full = encode(&FabricMsg::Status(status.clone())).len();
        let beat = encode(&FabricMsg::Beat(status.beat())).len();
        assert!(beat * 5 < full, "beat {beat} B, status {full} B");
        // An array, not a map: the field names would triple it (version 3
        // sent 137 bytes for this beat).
        assert!(beat <= 40, "beat {beat} B");
        let mut applied = status.clone();
        applied.apply_beat(status.beat());
        assert_eq!(applied, status);
        let mut moved = status.clone();
        moved.timestamp += 1.0;
        moved.metrics.server_messages += 9;
        assert!(moved.same_offer(&status));
        moved.funs.pop();
        assert!(!moved.same_offer(&status));
    }

    #[test]
    fn steady_digest_costs_about_a_byte_per_origin() {
        // 1000 origins whose heartbeats advanced by a few rounds, nothing else.
        let d = FabricMsg::Digest(Digest {
            seq: 1234,
            full: false,
            reply: true,
            drops: vec![],
            defs: vec![],
            beats: (0..1000).map(|i| 1 + i % 20).collect(),
            beat_stride: 1,
            versions: vec![],
            refreshes: vec![],
        });
        let len = encode(&d).len();
        // 1000 bytes of advances and about 20 of header (version 3: 70).
        assert!(len < 1030, "1000-origin steady digest is {len} bytes");
    }

    #[test]
    fn future_version_is_named() {
        let mut bytes = 9u16.to_be_bytes().to_vec();
        bytes.extend_from_slice(b"anything");
        assert_eq!(decode(&bytes, 1 << 20), Err(FabricDecodeError::Version(9)));
        assert!(matches!(
            decode(&[1], 1 << 20),
            Err(FabricDecodeError::Malformed(_))
        ));
    }
}
