//! Signed summary exports (`discovery_summary_signing_secret`, MPREG's name;
//! the roadmap's route signing).
//!
//! An exporter holding the secret attaches `HMAC-SHA256(secret, flood)` to
//! every export it floods; a node holding the secret drops, without relaying,
//! delivering or caching, any flood whose signature is missing or wrong, and
//! counts it. Regions that share no fabric key can still share the signing
//! secret, so a summary resolver believes only exports made by a holder of
//! it: a relay in between cannot forge or alter one. Checked before the
//! flood's sequence number is recorded, so a forged flood cannot burn the
//! number of a genuine one.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::flood::SummaryFlood;

type HmacSha256 = Hmac<Sha256>;

const LABEL: &[u8] = b"mpreg-summary-flood/1";

/// The signing secret.
#[derive(Clone)]
pub struct SummarySigner {
    key: Box<[u8]>,
}

impl std::fmt::Debug for SummarySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SummarySigner(<redacted>)")
    }
}

impl SummarySigner {
    /// A signer from the configured secret.
    pub fn new(secret: &str) -> Self {
        SummarySigner {
            key: secret.as_bytes().into(),
        }
    }

    fn mac(&self, flood: &SummaryFlood) -> HmacSha256 {
        // HMAC takes keys of any length, so this cannot fail.
        let mut mac =
            HmacSha256::new_from_slice(&self.key).expect("HMAC accepts keys of any length");
        mac.update(LABEL);
        put(&mut mac, flood.source_node.as_bytes());
        put(&mut mac, flood.instance_id.as_bytes());
        mac.update(&flood.seq.to_be_bytes());
        put(&mut mac, flood.message.as_bytes());
        mac.update(&(flood.topics.len() as u64).to_be_bytes());
        for t in &flood.topics {
            put(&mut mac, t.topic.as_bytes());
            put(&mut mac, t.message_id.as_bytes());
            match &t.namespace {
                Some(ns) => {
                    mac.update(&[1]);
                    put(&mut mac, ns.as_bytes());
                }
                None => mac.update(&[0]),
            }
        }
        mac
    }

    /// Signs `flood` in place.
    pub fn sign(&self, flood: &mut SummaryFlood) {
        flood.signature = None;
        flood.signature = Some(self.mac(flood).finalize().into_bytes().to_vec());
    }

    /// Whether `flood` carries a valid signature (constant-time compare).
    pub fn verify(&self, flood: &SummaryFlood) -> bool {
        match &flood.signature {
            Some(sig) => self.mac(flood).verify_slice(sig).is_ok(),
            None => false,
        }
    }
}

/// One length-prefixed field, so field boundaries are unambiguous.
fn put(mac: &mut HmacSha256, field: &[u8]) {
    mac.update(&(field.len() as u64).to_be_bytes());
    mac.update(field);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::flood::FloodTopic;

    fn flood() -> SummaryFlood {
        SummaryFlood {
            source_node: "ws://127.0.0.1:7001".into(),
            instance_id: "01JCZ6D5V6W0000000000000AA".into(),
            seq: 4,
            message: r#"{"summaries":[]}"#.into(),
            topics: vec![FloodTopic {
                topic: "mpreg.discovery.summary.svc".into(),
                message_id: "m1".into(),
                namespace: Some("svc".into()),
            }],
            signature: None,
        }
    }

    #[test]
    fn a_signed_flood_verifies_and_any_change_breaks_it() {
        let signer = SummarySigner::new("0123456789abcdef-summaries");
        let mut f = flood();
        assert!(!signer.verify(&f), "unsigned");
        signer.sign(&mut f);
        assert!(signer.verify(&f));
        assert!(!SummarySigner::new("0123456789abcdef-other").verify(&f));

        let mut changed = f.clone();
        changed.message = r#"{"summaries":[1]}"#.into();
        assert!(!signer.verify(&changed));
        let mut changed = f.clone();
        changed.seq += 1;
        assert!(!signer.verify(&changed));
        let mut changed = f.clone();
        changed.topics[0].namespace = None;
        assert!(!signer.verify(&changed));
        let mut changed = f.clone();
        changed.source_node = "ws://127.0.0.1:7002".into();
        assert!(!signer.verify(&changed));
    }

    #[test]
    fn signing_twice_gives_the_same_signature() {
        let signer = SummarySigner::new("0123456789abcdef-summaries");
        let mut f = flood();
        signer.sign(&mut f);
        let first = f.signature.clone();
        signer.sign(&mut f);
        assert_eq!(f.signature, first);
        assert!(!format!("{signer:?}").contains("0123456789abcdef"));
    }
}
