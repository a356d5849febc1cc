//! DNS node labels (`dns.md` §3.7): a node id (usually a URL, not
//! label-safe) becomes `b32-` + the lower-case, unpadded RFC 4648 base32 of
//! its UTF-8 bytes; a label decodes back to the id.

use data_encoding::{Encoding, Specification};

/// Prefix of encoded node labels (MPREG's `NODE_LABEL_PREFIX`).
pub const PREFIX: &str = "b32-";

/// Longest DNS label, in octets.
const MAX_LABEL: usize = 63;

/// RFC 4648 base32 (A–Z, 2–7) without padding, decoding leniently about the
/// unused trailing bits as Python's `base64.b32decode` does.
fn base32() -> Encoding {
    let mut spec = Specification::new();
    spec.symbols.push_str("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
    spec.check_trailing_bits = false;
    spec.encoding().expect("valid base32 specification")
}

/// The label of `node_id`. Errors for an empty id (MPREG: "Failed to encode
/// node_id") and for ids over 36 bytes, whose label would exceed the 63-octet
/// DNS label limit (MPREG emits such labels; no DNS query can carry them).
pub fn encode(node_id: &str) -> Result<String, String> {
    if node_id.is_empty() {
        return Err("Failed to encode node_id: the node id is empty".into());
    }
    let label = format!(
        "{PREFIX}{}",
        base32().encode(node_id.as_bytes()).to_ascii_lowercase()
    );
    if label.len() > MAX_LABEL {
        return Err(format!(
            "Failed to encode node_id: {} bytes give a {}-octet label, over the \
             {MAX_LABEL}-octet DNS limit (node ids of at most 36 bytes fit)",
            node_id.len(),
            label.len()
        ));
    }
    Ok(label)
}

/// The node id a label names: a `b32-` label is base32-decoded (any case)
/// and must be UTF-8; any other label is used verbatim iff it matches
/// `^[a-z0-9-]+$`. `None` for anything else, including `b32-` alone.
pub fn decode(label: &str) -> Option<String> {
    if label.is_empty() {
        return None;
    }
    if let Some(payload) = label.strip_prefix(PREFIX) {
        let bytes = base32()
            .decode(payload.to_ascii_uppercase().as_bytes())
            .ok()?;
        return String::from_utf8(bytes).ok().filter(|s| !s.is_empty());
    }
    label
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        .then(|| label.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The golden vectors of `dns.md` §3.7.
    #[test]
    fn golden_vectors() {
        let cases = [
            (
                "ws://127.0.0.1:10000",
                "b32-o5ztulzpgezdolrqfyyc4mj2geydambq",
            ),
            ("node-1", "b32-nzxwizjnge"),
            ("ws://[::1]:9000", "b32-o5ztulzplm5dumk5hi4tambq"),
            ("é", "b32-youq"),
        ];
        for (id, label) in cases {
            assert_eq!(encode(id).as_deref(), Ok(label), "{id}");
            assert_eq!(decode(label).as_deref(), Some(id), "{label}");
        }
        assert_eq!(encode(&"a".repeat(36)).map(|l| l.len()), Ok(62));
        assert!(encode(&"a".repeat(37)).is_err());
        assert!(encode("").is_err());
    }

    #[test]
    fn decode_edge_cases() {
        assert_eq!(decode("node-1").as_deref(), Some("node-1"));
        assert_eq!(
            decode("B32-NZXWIZJNGE"),
            None,
            "prefix is case-sensitive and uppercase plain labels are refused"
        );
        assert_eq!(decode("b32-NZXWIZJNGE").as_deref(), Some("node-1"));
        assert_eq!(decode("bad_label"), None);
        assert_eq!(decode("Node-1"), None);
        assert_eq!(decode("b32-"), None);
        assert_eq!(decode("b32-a"), None);
        assert_eq!(decode(""), None);
        // Invalid UTF-8 (0xff).
        assert_eq!(decode("b32-74"), None);
    }
}
