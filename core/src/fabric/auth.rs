//! Fabric authentication: a peer proves it holds the shared cluster key
//! (`fabric_auth_key`) before any gossip flows on a link.
//!
//! Both ends of a new fabric link send a [`Hello`](crate::wire::fabric::Hello)
//! with a fresh challenge. Each answers the other's challenge with
//! [`ClusterKey::proof`]: `HMAC-SHA256(key, label ‖ challenge ‖ prover's node
//! id ‖ instance ‖ cluster)`. A node sends its STATUS, digests and deltas on
//! a link, and lists the peer, only after the peer's proof checked out; any
//! other frame before that closes the link.
//!
//! Why this is enough to keep outsiders out:
//! * a challenge is a keyed hash of the verifier's instance id, a counter
//!   and a random draw ([`ClusterKey::challenge`]): it never repeats and
//!   nobody without the key can predict it, so a recorded proof answers no
//!   later challenge;
//! * a proof names its prover, and a node refuses a Hello carrying its own
//!   node id, so a proof cannot be reflected back at the node that made it;
//! * proofs are compared in constant time (`hmac`'s `verify_slice`).
//!
//! What it is not: encryption. Frames after the exchange travel in the
//! clear, and someone on the network path can relay an authenticated link.
//! Confidentiality needs TLS or a private network underneath.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Bytes in a challenge (and in a proof: one SHA-256 output).
pub const CHALLENGE_LEN: usize = 32;

/// Domain labels, so a challenge can never double as a proof.
const CHALLENGE_LABEL: &[u8] = b"mpreg-fabric-challenge/1";
const PROOF_LABEL: &[u8] = b"mpreg-fabric-proof/1";

/// The node that answers a challenge, as its Hello named it.
#[derive(Debug, Clone, Copy)]
pub struct Prover<'a> {
    /// Node id (`ws://host:port`).
    pub node_id: &'a str,
    /// Process instance.
    pub instance_id: &'a str,
    /// Cluster.
    pub cluster_id: &'a str,
}

/// The shared cluster key and the challenges issued with it.
#[derive(Clone)]
pub struct ClusterKey {
    key: Box<[u8]>,
    issued: u64,
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterKey")
            .field("key", &"<redacted>")
            .field("issued", &self.issued)
            .finish()
    }
}

impl ClusterKey {
    /// A key from the configured secret.
    pub fn new(secret: &str) -> Self {
        ClusterKey {
            key: secret.as_bytes().into(),
            issued: 0,
        }
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length (long ones are hashed first), so
        // this cannot fail.
        HmacSha256::new_from_slice(&self.key).expect("HMAC accepts keys of any length")
    }

    /// A fresh challenge for one link. `instance_id` makes challenges of
    /// different processes differ; the counter makes this process's differ;
    /// `nonce` (from the node's seeded generator) adds what a replayed
    /// simulation needs to stay deterministic. Keyed, so unpredictable.
    pub fn challenge(&mut self, instance_id: &str, nonce: u64) -> Vec<u8> {
        self.issued = self.issued.wrapping_add(1);
        let mut mac = self.mac();
        mac.update(CHALLENGE_LABEL);
        put(&mut mac, instance_id.as_bytes());
        mac.update(&self.issued.to_be_bytes());
        mac.update(&nonce.to_be_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    fn proof_mac(&self, challenge: &[u8], prover: Prover<'_>) -> HmacSha256 {
        let mut mac = self.mac();
        mac.update(PROOF_LABEL);
        put(&mut mac, challenge);
        put(&mut mac, prover.node_id.as_bytes());
        put(&mut mac, prover.instance_id.as_bytes());
        put(&mut mac, prover.cluster_id.as_bytes());
        mac
    }

    /// Our answer to a peer's `challenge`.
    pub fn proof(&self, challenge: &[u8], prover: Prover<'_>) -> Vec<u8> {
        self.proof_mac(challenge, prover)
            .finalize()
            .into_bytes()
            .to_vec()
    }

    /// Whether `proof` answers our `challenge` for `prover` (constant time).
    pub fn verify(&self, challenge: &[u8], prover: Prover<'_>, proof: &[u8]) -> bool {
        self.proof_mac(challenge, prover)
            .verify_slice(proof)
            .is_ok()
    }
}

/// Feeds one length-prefixed field, so field boundaries are unambiguous
/// (`"ab" ‖ "c"` and `"a" ‖ "bc"` hash differently).
fn put(mac: &mut HmacSha256, field: &[u8]) {
    mac.update(&(field.len() as u64).to_be_bytes());
    mac.update(field);
}

/// Why a fabric peer was refused. The label is the audit reason and the
/// metric label; the detail is the close reason the peer sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// We hold a key and the peer's Hello carried no challenge: it runs
    /// without `fabric_auth_key`.
    Missing,
    /// The peer's proof does not answer our challenge: another key.
    Failed,
    /// The peer asked us to authenticate (or sent a proof) but we hold no
    /// key.
    Unexpected,
    /// A gossip frame arrived before the exchange finished.
    Premature,
    /// The exchange did not finish within the dial timeout.
    Timeout,
}

impl Refusal {
    /// Every refusal, in metric order.
    pub const ALL: [Refusal; 5] = [
        Refusal::Missing,
        Refusal::Failed,
        Refusal::Unexpected,
        Refusal::Premature,
        Refusal::Timeout,
    ];

    /// Audit reason and metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Missing => "auth_missing",
            Refusal::Failed => "auth_failed",
            Refusal::Unexpected => "auth_unexpected",
            Refusal::Premature => "auth_premature",
            Refusal::Timeout => "auth_timeout",
        }
    }

    /// The close reason: says which side has to change what.
    pub fn detail(self) -> &'static str {
        match self {
            Refusal::Missing => {
                "fabric authentication required: peer sent no challenge (set the same fabric_auth_key on every node)"
            }
            Refusal::Failed => {
                "fabric authentication failed: proof does not match (fabric_auth_key differs)"
            }
            Refusal::Unexpected => {
                "peer requires fabric authentication but this node has no fabric_auth_key"
            }
            Refusal::Premature => "fabric frame before authentication finished",
            Refusal::Timeout => "fabric authentication timed out",
        }
    }
}

/// Refusals counted by reason (for `mpreg_fabric_auth_refused_total`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RefusalCounts([u64; 5]);

impl RefusalCounts {
    /// Counts one refusal.
    pub fn add(&mut self, why: Refusal) {
        let slot = &mut self.0[why as usize];
        *slot = slot.saturating_add(1);
    }

    /// Refusals of one kind.
    pub fn get(&self, why: Refusal) -> u64 {
        self.0[why as usize]
    }

    /// All refusals.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Prover<'static> = Prover {
        node_id: "ws://127.0.0.1:7001",
        instance_id: "01JCZ6D5V6W0000000000000AA",
        cluster_id: "prod",
    };

    #[test]
    fn a_proof_of_the_same_key_verifies() {
        let mut verifier = ClusterKey::new("0123456789abcdef-shared");
        let prover = ClusterKey::new("0123456789abcdef-shared");
        let c = verifier.challenge("01JCZ6D5V6W0000000000000BB", 7);
        assert_eq!(c.len(), CHALLENGE_LEN);
        let p = prover.proof(&c, A);
        assert_eq!(p.len(), CHALLENGE_LEN);
        assert!(verifier.verify(&c, A, &p));
    }

    #[test]
    fn another_key_another_challenge_or_another_prover_fails() {
        let mut verifier = ClusterKey::new("0123456789abcdef-shared");
        let c = verifier.challenge("01JCZ6D5V6W0000000000000BB", 7);
        let wrong = ClusterKey::new("0123456789abcdef-other");
        assert!(!verifier.verify(&c, A, &wrong.proof(&c, A)));

        let good = verifier.proof(&c, A);
        let c2 = verifier.challenge("01JCZ6D5V6W0000000000000BB", 7);
        assert_ne!(c, c2, "the counter alone makes challenges differ");
        assert!(!verifier.verify(&c2, A, &good), "an old proof is no answer");

        let b = Prover {
            node_id: "ws://127.0.0.1:7002",
            ..A
        };
        assert!(!verifier.verify(&c, b, &good), "a proof names its prover");
        let restarted = Prover {
            instance_id: "01JCZ6D5V6W0000000000000CC",
            ..A
        };
        assert!(!verifier.verify(&c, restarted, &good));
        assert!(!verifier.verify(&c, A, &good[..16]), "truncated");
        assert!(!verifier.verify(&c, A, &[]), "empty");
    }

    #[test]
    fn field_boundaries_are_part_of_the_proof() {
        let key = ClusterKey::new("0123456789abcdef-shared");
        let c = vec![1u8; CHALLENGE_LEN];
        let ab = Prover {
            node_id: "ab",
            instance_id: "c",
            cluster_id: "x",
        };
        let a_bc = Prover {
            node_id: "a",
            instance_id: "bc",
            cluster_id: "x",
        };
        assert_ne!(key.proof(&c, ab), key.proof(&c, a_bc));
    }

    #[test]
    fn challenges_of_other_keys_or_instances_differ() {
        let mut k1 = ClusterKey::new("0123456789abcdef-shared");
        let mut k2 = ClusterKey::new("0123456789abcdef-other");
        assert_ne!(k1.challenge("i", 1), k2.challenge("i", 1));
        let mut k3 = ClusterKey::new("0123456789abcdef-shared");
        let mut k4 = ClusterKey::new("0123456789abcdef-shared");
        assert_ne!(k3.challenge("i", 1), k4.challenge("j", 1));
        let mut k5 = ClusterKey::new("0123456789abcdef-shared");
        assert_eq!(
            k5.challenge("i", 1),
            ClusterKey::new("0123456789abcdef-shared").challenge("i", 1),
            "deterministic for a replayed simulation"
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let key = ClusterKey::new("0123456789abcdef-shared");
        assert!(!format!("{key:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn refusals_are_counted_by_reason() {
        let mut counts = RefusalCounts::default();
        counts.add(Refusal::Failed);
        counts.add(Refusal::Failed);
        counts.add(Refusal::Timeout);
        assert_eq!(counts.get(Refusal::Failed), 2);
        assert_eq!(counts.get(Refusal::Missing), 0);
        assert_eq!(counts.total(), 3);
        let labels: Vec<_> = Refusal::ALL.iter().map(|r| r.label()).collect();
        assert_eq!(labels.len(), 5);
        assert!(Refusal::ALL.iter().all(|r| r.detail().len() < 120));
    }
}
