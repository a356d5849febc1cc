//! Replies to repeated DNS queries, kept while nothing they are built from
//! changes.
//!
//! A reply is a pure function of the query bytes (ID aside), the transport,
//! the viewer of the source network, the catalog, the namespace policy and
//! the wall-clock second (the gateway reads the catalog at whole seconds:
//! TTLs and the SOA serial are whole seconds anyway). So a reply built once
//! is the reply to every byte-identical query until one of those moves: the
//! cache is keyed by the query after its ID (question case, flags and EDNS
//! included), the transport and the viewer, and is emptied when the
//! catalog's generation, the policy's revision or the second changes. A hit
//! copies the stored bytes and writes the query's ID into them; nothing is
//! parsed or encoded. Resolvers and load generators ask the same few names
//! over and over, which is where this pays; a query that differs in any
//! byte (a resolver's 0x20 case randomisation, another EDNS size) is simply
//! another key.

use std::collections::HashMap;

use foldhash::quality::FixedState;
use hickory_proto::op::ResponseCode;

use crate::dns::responder::Reply;
use crate::identity::Viewer;

/// Replies kept per second at most; a full cache takes no more until the
/// next second empties it (the hot names come first).
pub const MAX_REPLIES: usize = 4096;

/// Reply bytes kept per second at most (TCP replies can be 64 KiB: without
/// this, 4096 of them would be 256 MiB).
pub const MAX_BYTES: usize = 4 << 20;

/// Longest query cached (longer ones are rare and answered as usual).
const MAX_QUERY: usize = 512;

/// What the cached replies were built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Epoch {
    /// [`crate::catalog::store::Catalog::generation`].
    pub catalog: u64,
    /// The namespace policy's revision.
    pub policy: u64,
    /// The wall-clock second.
    pub second: i64,
}

/// A stored reply and what the gateway counts for it.
#[derive(Debug, Clone)]
struct Stored {
    bytes: Vec<u8>,
    rcode: Option<ResponseCode>,
    truncated: bool,
    answers: usize,
}

/// The cache (module docs).
#[derive(Debug, Clone)]
pub struct ReplyCache {
    replies: HashMap<Vec<u8>, Stored, FixedState>,
    /// Key and reply bytes held.
    bytes: usize,
    epoch: Epoch,
    /// Reused for the key of each lookup.
    key: Vec<u8>,
}

impl ReplyCache {
    /// An empty cache; `seed` seeds its key hashing (queries come from
    /// anyone, so the seed should not be guessable).
    pub fn new(seed: u64) -> ReplyCache {
        ReplyCache {
            replies: HashMap::with_hasher(FixedState::with_seed(seed)),
            bytes: 0,
            epoch: Epoch::default(),
            key: Vec::new(),
        }
    }

    /// Replies held.
    pub fn len(&self) -> usize {
        self.replies.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.replies.is_empty()
    }

    /// Forgets every reply (the policy was replaced wholesale).
    pub fn clear(&mut self) {
        self.replies.clear();
        self.bytes = 0;
    }

    /// Builds the key of `query` into the scratch buffer; false when the
    /// query is not cacheable (too short to have an ID, or too long).
    fn make_key(&mut self, query: &[u8], tcp: bool, viewer: &Viewer) -> bool {
        if query.len() < 12 || query.len() > MAX_QUERY {
            return false;
        }
        let k = &mut self.key;
        k.clear();
        k.push(u8::from(tcp));
        k.extend_from_slice(&query[2..]);
        // Lengths first, so no two (cluster, tenant) pairs share bytes.
        let tenant = viewer.tenant.as_deref();
        k.extend_from_slice(&(viewer.cluster.len() as u32).to_le_bytes());
        k.extend_from_slice(viewer.cluster.as_bytes());
        match tenant {
            Some(t) => {
                k.push(1);
                k.extend_from_slice(t.as_bytes());
            }
            None => k.push(0),
        }
        true
    }

    /// The cached reply to `query` at `epoch`, with the query's ID, if any
    /// (an older epoch empties the cache first).
    pub fn get(&mut self, epoch: Epoch, query: &[u8], tcp: bool, viewer: &Viewer) -> Option<Reply> {
        if epoch != self.epoch {
            self.clear();
            self.epoch = epoch;
            return None;
        }
        if !self.make_key(query, tcp, viewer) {
            return None;
        }
        let stored = self.replies.get(self.key.as_slice())?;
        let mut bytes = stored.bytes.clone();
        if bytes.len() >= 2 {
            bytes[..2].copy_from_slice(&query[..2]);
        }
        Some(Reply {
            bytes: Some(bytes),
            rcode: stored.rcode,
            truncated: stored.truncated,
            answers: stored.answers,
        })
    }

    /// Keeps `reply` as the answer to `query` at `epoch` (not when the
    /// epoch moved since [`ReplyCache::get`], nor replies that send
    /// nothing, nor past [`MAX_REPLIES`] or [`MAX_BYTES`]).
    pub fn put(&mut self, epoch: Epoch, query: &[u8], tcp: bool, viewer: &Viewer, reply: &Reply) {
        let Some(bytes) = &reply.bytes else {
            return;
        };
        if epoch != self.epoch || self.replies.len() >= MAX_REPLIES {
            return;
        }
        if !self.make_key(query, tcp, viewer) {
            return;
        }
        let size = self.key.len() + bytes.len();
        if self.bytes + size > MAX_BYTES || self.replies.contains_key(self.key.as_slice()) {
            return;
        }
        self.bytes += size;
        self.replies.insert(
            self.key.clone(),
            Stored {
                bytes: bytes.clone(),
                rcode: reply.rcode,
                truncated: reply.truncated,
                answers: reply.answers,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(bytes: &[u8]) -> Reply {
        Reply {
            bytes: Some(bytes.to_vec()),
            rcode: Some(ResponseCode::NoError),
            truncated: false,
            answers: 1,
        }
    }

    fn query(id: u16, tail: &[u8]) -> Vec<u8> {
        let mut q = id.to_be_bytes().to_vec();
        q.extend_from_slice(&[1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
        q.extend_from_slice(tail);
        q
    }

    #[test]
    fn a_hit_carries_the_query_id_and_the_stored_counts() {
        let mut c = ReplyCache::new(7);
        let v = Viewer::new("c", None);
        let e = Epoch {
            catalog: 1,
            policy: 1,
            second: 10,
        };
        assert!(c.get(e, &query(1, b"name"), false, &v).is_none());
        c.put(
            e,
            &query(1, b"name"),
            false,
            &v,
            &reply(&[0, 1, 0x81, 0x80, 9]),
        );
        let hit = c.get(e, &query(0xBEEF, b"name"), false, &v).expect("hit");
        assert_eq!(hit.bytes, Some(vec![0xBE, 0xEF, 0x81, 0x80, 9]));
        assert_eq!(
            (hit.rcode, hit.truncated, hit.answers),
            (Some(ResponseCode::NoError), false, 1)
        );
    }

    #[test]
    fn another_byte_transport_or_viewer_is_another_key() {
        let mut c = ReplyCache::new(7);
        let v = Viewer::new("c", None);
        let e = Epoch::default();
        c.put(e, &query(1, b"name"), false, &v, &reply(&[0, 1, 2]));
        assert!(c.get(e, &query(1, b"Name"), false, &v).is_none(), "case");
        assert!(
            c.get(e, &query(1, b"name"), true, &v).is_none(),
            "transport"
        );
        for other in [
            Viewer::new("c", Some("t".into())),
            Viewer::new("d", None),
            Viewer::new("", Some("c".into())),
        ] {
            assert!(
                c.get(e, &query(1, b"name"), false, &other).is_none(),
                "{other:?}"
            );
        }
        let mut flags = query(1, b"name");
        flags[2] ^= 0x01;
        assert!(c.get(e, &flags, false, &v).is_none(), "flags");
        assert!(c.get(e, &query(1, b"name"), false, &v).is_some());
    }

    #[test]
    fn any_epoch_change_empties_it() {
        let v = Viewer::new("c", None);
        let base = Epoch {
            catalog: 1,
            policy: 1,
            second: 10,
        };
        for moved in [
            Epoch { catalog: 2, ..base },
            Epoch { policy: 2, ..base },
            Epoch { second: 11, ..base },
        ] {
            let mut c = ReplyCache::new(7);
            c.get(base, &query(1, b"x"), false, &v);
            c.put(base, &query(1, b"x"), false, &v, &reply(&[0, 1]));
            assert!(c.get(base, &query(1, b"x"), false, &v).is_some());
            assert!(c.get(moved, &query(1, b"x"), false, &v).is_none());
            assert!(c.is_empty());
            // A reply built before the move is not kept after it.
            c.put(base, &query(1, b"x"), false, &v, &reply(&[0, 1]));
            assert!(c.is_empty());
        }
    }

    #[test]
    fn bounded_and_skips_what_it_cannot_key() {
        let mut c = ReplyCache::new(7);
        let v = Viewer::new("c", None);
        let e = Epoch::default();
        for i in 0..(MAX_REPLIES + 10) {
            c.put(
                e,
                &query(1, format!("n{i}").as_bytes()),
                false,
                &v,
                &reply(&[0, 1]),
            );
        }
        assert_eq!(c.len(), MAX_REPLIES);
        // Big replies stop at the byte budget.
        let mut c = ReplyCache::new(7);
        let big = reply(&vec![0u8; 60_000]);
        for i in 0..200 {
            c.put(e, &query(1, format!("n{i}").as_bytes()), true, &v, &big);
        }
        assert!(
            c.bytes <= MAX_BYTES && c.bytes + 60_100 > MAX_BYTES && c.len() < 200,
            "full to within one reply: {} replies, {} bytes",
            c.len(),
            c.bytes
        );
        c.clear();
        c.put(e, &query(1, b"n"), true, &v, &big);
        assert_eq!(c.len(), 1, "the budget is given back when emptied");
        let mut c = ReplyCache::new(7);
        c.put(e, &[1, 2, 3], false, &v, &reply(&[0, 1]));
        c.put(e, &query(1, &[0; MAX_QUERY]), false, &v, &reply(&[0, 1]));
        let none = Reply {
            bytes: None,
            ..reply(&[])
        };
        c.put(e, &query(1, b"x"), false, &v, &none);
        assert!(c.is_empty());
    }
}
