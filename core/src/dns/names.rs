//! Owner names: zones (longest match), the name forms of `dns.md` §3, node
//! labels (base32) and our `<ip>.addr.<zone>` host names for IP targets.
//!
//! Everything here works on *lower-cased* relative labels; the responder
//! keeps the question's own spelling for the names it writes back.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_proto::rr::Name;

/// Prefix of an encoded node label (`b32-...`).
pub const NODE_LABEL_PREFIX: &str = "b32-";

/// Longest node id (UTF-8 bytes) whose encoded label still fits the 63-octet
/// DNS label limit: `4 + ceil(36 × 8 / 5) = 62`.
pub const MAX_NODE_ID_BYTES: usize = 36;

/// The label under which node names live (`<node label>.node.<zone>`).
pub const NODE_LABEL: &str = "node";

/// The label under which our synthetic host names for IP literals live
/// (`<ip label>.addr.<zone>`), used as SRV targets (RFC 2782: a target must
/// be a host name, not an address).
pub const ADDR_LABEL: &str = "addr";

/// The label of the zone's own name server (`ns.<zone>`), the SOA `MNAME`
/// and the apex NS target.
pub const NS_LABEL: &str = "ns";

/// Why a node id has no DNS label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeLabelError {
    /// The id is empty.
    #[error("Failed to encode node_id: empty node id")]
    Empty,
    /// The encoded label would exceed 63 octets.
    #[error("Failed to encode node_id: {0} bytes is longer than the {MAX_NODE_ID_BYTES} bytes a DNS label can carry")]
    TooLong(usize),
}

const B32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// RFC 4648 base32 (standard alphabet), lower-case, without padding.
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(B32[((buffer >> bits) & 31) as usize]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(B32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Decodes unpadded base32, case-insensitively. `None` for a character
/// outside the alphabet or a length no byte string encodes to.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    if matches!(text.len() % 8, 1 | 3 | 6) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut buffer: u32 = 0;
    let mut bits = 0u32;
    for c in text.bytes() {
        let v = match c.to_ascii_lowercase() {
            c @ b'a'..=b'z' => c - b'a',
            c @ b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
        buffer &= (1 << bits) - 1;
    }
    Some(out)
}

/// The DNS label of a node id: `b32-` + lower-case unpadded base32 of its
/// UTF-8 bytes (`ws://127.0.0.1:10000` → `b32-o5ztulzpgezdolrqfyyc4mj2geydambq`).
/// Ids over [`MAX_NODE_ID_BYTES`] bytes cannot be addressed and are an error.
pub fn encode_node_id(node_id: &str) -> Result<String, NodeLabelError> {
    if node_id.is_empty() {
        return Err(NodeLabelError::Empty);
    }
    if node_id.len() > MAX_NODE_ID_BYTES {
        return Err(NodeLabelError::TooLong(node_id.len()));
    }
    Ok(format!(
        "{NODE_LABEL_PREFIX}{}",
        base32_encode(node_id.as_bytes())
    ))
}

/// The node id a label names: a `b32-` label decoded (case-insensitively),
/// or a label made only of `a-z`, `0-9` and `-` taken verbatim. `None` for
/// anything else, and for a `b32-` label that decodes to nothing or to
/// invalid UTF-8.
pub fn decode_node_label(label: &str) -> Option<String> {
    if label.is_empty() {
        return None;
    }
    if label.len() >= NODE_LABEL_PREFIX.len()
        && label.as_bytes()[..NODE_LABEL_PREFIX.len()]
            .eq_ignore_ascii_case(NODE_LABEL_PREFIX.as_bytes())
    {
        let bytes = base32_decode(&label[NODE_LABEL_PREFIX.len()..])?;
        let id = String::from_utf8(bytes).ok()?;
        return (!id.is_empty()).then_some(id);
    }
    label
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        .then(|| label.to_string())
}

/// The `addr` label of an IP literal: IPv4 `10-0-1-12`, IPv6 with `:` → `-`
/// (`fd00--1`, `0--1` for `::1`). Round-trips through [`decode_addr_label`].
pub fn encode_addr_label(ip: IpAddr) -> String {
    AddrLabel::new(ip).as_str().to_string()
}

/// An `addr` label ([`encode_addr_label`]) spelled into a buffer on the
/// stack: no allocation per SRV target.
#[derive(Clone, Copy)]
pub struct AddrLabel {
    buf: [u8; AddrLabel::CAPACITY],
    len: usize,
}

impl AddrLabel {
    /// Longest label: an IPv6 address is at most 39 characters (8 groups of
    /// 4 and 7 separators), plus the `0` put before or after a `-`.
    const CAPACITY: usize = 48;

    /// The label of `ip`.
    pub fn new(ip: IpAddr) -> AddrLabel {
        let mut l = AddrLabel {
            buf: [0; AddrLabel::CAPACITY],
            len: 0,
        };
        match ip {
            IpAddr::V4(v4) => {
                for (i, o) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        l.push(b'-');
                    }
                    if o >= 100 {
                        l.push(b'0' + o / 100);
                    }
                    if o >= 10 {
                        l.push(b'0' + o / 10 % 10);
                    }
                    l.push(b'0' + o % 10);
                }
            }
            IpAddr::V6(v6) => {
                use std::fmt::Write as _;
                // Writing to the buffer cannot fail: the text fits.
                let _ = write!(l, "{v6}");
                if l.as_bytes().contains(&b'.') {
                    // `::ffff:1.2.3.4` style: spell all eight groups instead.
                    l.len = 0;
                    for (i, g) in v6.segments().into_iter().enumerate() {
                        if i > 0 {
                            l.push(b'-');
                        }
                        let _ = write!(l, "{g:x}");
                    }
                } else {
                    // A label should not start or end with `-`: `::1` → `0--1`.
                    for b in &mut l.buf[..l.len] {
                        if *b == b':' {
                            *b = b'-';
                        }
                    }
                    if l.as_bytes().first() == Some(&b'-') && l.len < AddrLabel::CAPACITY {
                        l.buf.copy_within(0..l.len, 1);
                        l.buf[0] = b'0';
                        l.len += 1;
                    }
                    if l.as_bytes().last() == Some(&b'-') {
                        l.push(b'0');
                    }
                }
            }
        }
        l
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    /// The label's bytes (ASCII).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The label.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }
}

impl std::fmt::Write for AddrLabel {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl std::fmt::Debug for AddrLabel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("AddrLabel").field(&self.as_str()).finish()
    }
}

/// The IP literal an `addr` label names.
pub fn decode_addr_label(label: &str) -> Option<IpAddr> {
    let parts: Vec<&str> = label.split('-').collect();
    if parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
    {
        let mut octets = [0u8; 4];
        for (o, p) in octets.iter_mut().zip(&parts) {
            *o = p.parse().ok()?;
        }
        return Some(IpAddr::V4(Ipv4Addr::from(octets)));
    }
    if !label.contains("-") {
        return None;
    }
    label
        .replace('-', ":")
        .parse::<Ipv6Addr>()
        .ok()
        .map(IpAddr::V6)
}

/// Parses an IP literal target (`10.0.1.12`, `fd00::1`, `[fd00::1]`).
pub fn ip_literal(target: &str) -> Option<IpAddr> {
    let t = target.trim();
    let t = t
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(t);
    t.parse().ok()
}

/// One zone the gateway is authoritative for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// Normalised name (`svc.corp.example`).
    pub name: String,
    /// Its labels, lower-cased.
    pub labels: Vec<String>,
    /// The zone's own names, built once (`None` when the zone is not a
    /// valid DNS name); used when a question spells the zone in lower case.
    pub names: Option<ZoneNames>,
}

/// The names of a zone the responder writes, spelled in lower case:
/// built once per zone instead of once per answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneNames {
    /// The apex `<zone>.`.
    pub apex: Name,
    /// `ns.<zone>.`: the SOA `MNAME` and the apex NS target.
    pub ns: Name,
    /// `hostmaster.<zone>.`: the SOA `RNAME`.
    pub hostmaster: Name,
    /// `addr.<zone>.`: parent of the SRV target host names of IP literals.
    pub addr: Name,
}

impl ZoneNames {
    /// The names of the zone whose apex is `apex` (spelled as given).
    pub fn new(apex: Name) -> Option<ZoneNames> {
        Some(ZoneNames {
            ns: apex.prepend_label(NS_LABEL.as_bytes()).ok()?,
            hostmaster: apex.prepend_label(HOSTMASTER_LABEL.as_bytes()).ok()?,
            addr: apex.prepend_label(ADDR_LABEL.as_bytes()).ok()?,
            apex,
        })
    }

    /// The names of a zone given as labels.
    fn from_labels<L: AsRef<[u8]>>(labels: &[L]) -> Option<ZoneNames> {
        let mut apex = Name::root();
        for l in labels {
            apex = apex.append_label(l.as_ref()).ok()?;
        }
        ZoneNames::new(apex)
    }
}

/// The label of the SOA `RNAME` (`hostmaster.<zone>`).
pub const HOSTMASTER_LABEL: &str = "hostmaster";

/// Normalises zone names (trimmed, outer dots removed, lower-cased, empty
/// ones dropped, duplicates removed keeping the first) and orders them most
/// specific first (label count descending; ties keep configuration order),
/// so the first match is the longest.
pub fn parse_zones<S: AsRef<str>>(raw: &[S]) -> Vec<Zone> {
    let mut zones: Vec<Zone> = Vec::new();
    for z in raw {
        let name = z
            .as_ref()
            .trim_matches(|c: char| c.is_whitespace() || c == '.')
            .to_ascii_lowercase();
        if name.is_empty() || zones.iter().any(|x| x.name == name) {
            continue;
        }
        let labels: Vec<String> = name
            .split('.')
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        let names = ZoneNames::from_labels(&labels);
        zones.push(Zone {
            name,
            labels,
            names,
        });
    }
    zones.sort_by_key(|z| std::cmp::Reverse(z.labels.len()));
    zones
}

/// The zone (index into `zones`) whose labels are the last labels of
/// `labels` (lower-cased), most specific first; `None` when no zone matches.
pub fn match_zone<S: AsRef<str>>(zones: &[Zone], labels: &[S]) -> Option<usize> {
    zones.iter().position(|z| {
        z.labels.len() <= labels.len()
            && labels[labels.len() - z.labels.len()..]
                .iter()
                .zip(&z.labels)
                .all(|(l, z)| l.as_ref() == z)
    })
}

/// What a name (relative to its zone, lower-cased) asks for (`dns.md` §3.4,
/// plus our apex, `ns` and `addr` names). Borrows the labels it was
/// classified from where it can (a one-label namespace is not joined).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form<'a> {
    /// The zone apex itself: SOA and NS live here.
    Apex,
    /// `_svc._<proto>.<service>.<ns…>` (`proto` set) or the plain
    /// `<service>.<ns…>` (`proto` `None`). An empty namespace matches every
    /// namespace.
    Service {
        /// Service name (one label).
        name: Cow<'a, str>,
        /// Dotted namespace, possibly empty.
        namespace: Cow<'a, str>,
        /// Protocol label without its `_`, for the underscore form.
        proto: Option<Cow<'a, str>>,
    },
    /// `_mpreg._<proto>.<function>.<ns…>`: the RPC `<ns>.<function>`.
    Function {
        /// Function label.
        name: Cow<'a, str>,
        /// Dotted namespace, possibly empty.
        namespace: Cow<'a, str>,
        /// Protocol label without its `_`.
        proto: Cow<'a, str>,
    },
    /// `_queue._<proto>.<queue>.<ns…>`: the queue `<ns>.<queue>`.
    Queue {
        /// Queue label.
        name: Cow<'a, str>,
        /// Dotted namespace, possibly empty.
        namespace: Cow<'a, str>,
        /// Protocol label without its `_`.
        proto: Cow<'a, str>,
    },
    /// `<node label>.node`.
    Node {
        /// The decoded node id.
        node_id: String,
    },
    /// `<ip label>.addr`: a synthetic host name for an IP literal.
    Addr(IpAddr),
}

impl Form<'_> {
    /// The full dotted name `<namespace>.<name>` (or `<name>`).
    pub fn full_name(namespace: &str, name: &str) -> String {
        if namespace.is_empty() {
            name.to_string()
        } else {
            let mut full = String::with_capacity(namespace.len() + 1 + name.len());
            full.push_str(namespace);
            full.push('.');
            full.push_str(name);
            full
        }
    }
}

/// Labels joined with `.`, borrowed when there is at most one.
pub fn join_labels<S: AsRef<str>>(labels: &[S]) -> Cow<'_, str> {
    match labels {
        [] => Cow::Borrowed(""),
        [one] => Cow::Borrowed(one.as_ref()),
        many => {
            let len = many.iter().map(|l| l.as_ref().len() + 1).sum::<usize>() - 1;
            let mut out = String::with_capacity(len);
            for (i, l) in many.iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(l.as_ref());
            }
            Cow::Owned(out)
        }
    }
}

impl Form<'_> {
    /// The same form owning its text.
    pub fn into_owned(self) -> Form<'static> {
        let own = |c: Cow<'_, str>| Cow::Owned(c.into_owned());
        match self {
            Form::Apex => Form::Apex,
            Form::Service {
                name,
                namespace,
                proto,
            } => Form::Service {
                name: own(name),
                namespace: own(namespace),
                proto: proto.map(own),
            },
            Form::Function {
                name,
                namespace,
                proto,
            } => Form::Function {
                name: own(name),
                namespace: own(namespace),
                proto: own(proto),
            },
            Form::Queue {
                name,
                namespace,
                proto,
            } => Form::Queue {
                name: own(name),
                namespace: own(namespace),
                proto: own(proto),
            },
            Form::Node { node_id } => Form::Node { node_id },
            Form::Addr(ip) => Form::Addr(ip),
        }
    }
}

/// Whether the dotted name `name` ends with `labels` (joined with `.`) at a
/// label boundary, ignoring ASCII case: `eu.market` ends with `[market]`
/// and with `[eu, market]`, not with `[ket]`. Compares in place, without
/// joining the labels. The definition the catalog's DNS suffix index
/// (`Catalog::under_dns_suffix`) is tested against.
#[cfg(test)]
pub(crate) fn ends_with_labels<S: AsRef<str>>(name: &str, labels: &[S]) -> bool {
    let mut rest = name.as_bytes();
    for (i, label) in labels.iter().enumerate().rev() {
        let label = label.as_ref().as_bytes();
        let Some(split) = rest.len().checked_sub(label.len()) else {
            return false;
        };
        let (head, tail) = rest.split_at(split);
        if !tail.eq_ignore_ascii_case(label) {
            return false;
        }
        rest = head;
        if i > 0 {
            match rest.split_last() {
                Some((b'.', head)) => rest = head,
                _ => return false,
            }
        }
    }
    rest.is_empty() || rest.last() == Some(&b'.')
}

/// Classifies relative labels (lower-cased), in `dns.md` §3.4's order:
/// underscore form, node form, then plain form. Our `addr` form is tried
/// with the node form. See [`classify_labels`] for the borrowing form.
pub fn classify(labels: &[String]) -> Form<'static> {
    classify_labels(labels).into_owned()
}

/// [`classify`] borrowing the labels' text (no allocation unless the
/// namespace has several labels or the name is a node label).
pub fn classify_labels<S: AsRef<str>>(labels: &[S]) -> Form<'_> {
    let label = |i: usize| labels[i].as_ref();
    if labels.is_empty() {
        return Form::Apex;
    }
    if labels.len() >= 3 && label(0).starts_with('_') && label(1).starts_with('_') {
        let proto = Cow::Borrowed(&label(1)[1..]);
        let name = Cow::Borrowed(label(2));
        match label(0) {
            "_svc" => {
                return Form::Service {
                    name,
                    namespace: join_labels(&labels[3..]),
                    proto: Some(proto),
                }
            }
            "_mpreg" => {
                return Form::Function {
                    name,
                    namespace: join_labels(&labels[3..]),
                    proto,
                }
            }
            "_queue" => {
                return Form::Queue {
                    name,
                    namespace: join_labels(&labels[3..]),
                    proto,
                }
            }
            _ => {}
        }
    }
    if labels.len() == 2 {
        if label(1) == NODE_LABEL {
            if let Some(node_id) = decode_node_label(label(0)) {
                return Form::Node { node_id };
            }
        }
        if label(1) == ADDR_LABEL {
            if let Some(ip) = decode_addr_label(label(0)) {
                return Form::Addr(ip);
            }
        }
    }
    Form::Service {
        name: Cow::Borrowed(label(0)),
        namespace: join_labels(&labels[1..]),
        proto: None,
    }
}

/// Whether an endpoint `protocol` answers to a DNS protocol label
/// (`dns.md` §3.6): `tcp` ↔ `tcp`, `tcps`, `ws`, `wss`; `udp` ↔ `udp`;
/// anything else exactly; case-insensitive.
pub fn proto_matches(dns_proto: &str, protocol: &str) -> bool {
    let p = protocol.trim();
    let is = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    if is(dns_proto, "tcp") {
        ["tcp", "tcps", "ws", "wss"].iter().any(|t| is(p, t))
    } else if is(dns_proto, "udp") {
        is(p, "udp")
    } else {
        is(p, dns_proto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(s: &str) -> Vec<String> {
        s.split('.')
            .filter(|l| !l.is_empty())
            .map(|l| l.to_ascii_lowercase())
            .collect()
    }

    #[test]
    fn node_label_golden_vectors() {
        for (id, label) in [
            (
                "ws://127.0.0.1:10000",
                "b32-o5ztulzpgezdolrqfyyc4mj2geydambq",
            ),
            ("node-1", "b32-nzxwizjnge"),
            ("ws://[::1]:9000", "b32-o5ztulzplm5dumk5hi4tambq"),
            ("é", "b32-youq"),
        ] {
            assert_eq!(encode_node_id(id).unwrap(), label, "{id}");
            assert_eq!(decode_node_label(label).as_deref(), Some(id), "{label}");
            let upper = label.to_ascii_uppercase();
            assert_eq!(decode_node_label(&upper).as_deref(), Some(id));
        }
        let a36 = "a".repeat(36);
        let l = encode_node_id(&a36).unwrap();
        assert_eq!(l.len(), 62);
        assert_eq!(decode_node_label(&l), Some(a36));
        assert_eq!(
            encode_node_id(&"a".repeat(37)),
            Err(NodeLabelError::TooLong(37))
        );
        assert_eq!(encode_node_id(""), Err(NodeLabelError::Empty));
    }

    #[test]
    fn node_label_decoding_rules() {
        assert_eq!(decode_node_label("node-1").as_deref(), Some("node-1"));
        assert_eq!(decode_node_label("-x-").as_deref(), Some("-x-"));
        assert_eq!(decode_node_label("bad_label"), None);
        assert_eq!(decode_node_label("Node-1"), None);
        assert_eq!(decode_node_label(""), None);
        assert_eq!(decode_node_label("b32-"), None);
        assert_eq!(decode_node_label("b32-a"), None);
        assert_eq!(decode_node_label("b32-0000"), None);
        // invalid UTF-8 payload
        assert_eq!(
            decode_node_label(&format!("b32-{}", base32_encode(&[0xff]))),
            None
        );
    }

    #[test]
    fn base32_round_trips() {
        for n in 0..40usize {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            let enc = base32_encode(&bytes);
            assert_eq!(base32_decode(&enc), Some(bytes), "{n}");
        }
    }

    #[test]
    fn addr_labels_round_trip() {
        for ip in [
            "10.0.1.12",
            "fd00::1",
            "::1",
            "::ffff:1.2.3.4",
            "2001:db8::8:800:200c:417a",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            let label = encode_addr_label(ip);
            assert!(!label.contains('.') && !label.contains(':'), "{label}");
            assert_eq!(decode_addr_label(&label), Some(ip), "{label}");
        }
        assert_eq!(encode_addr_label("10.0.1.12".parse().unwrap()), "10-0-1-12");
        assert_eq!(encode_addr_label("fd00::1".parse().unwrap()), "fd00--1");
        assert_eq!(encode_addr_label("::1".parse().unwrap()), "0--1");
        assert_eq!(encode_addr_label("fd00::".parse().unwrap()), "fd00--0");
        assert_eq!(decode_addr_label("tradefeed"), None);
        assert_eq!(decode_addr_label("1-2-3"), None);
        assert_eq!(decode_addr_label("256-0-0-1"), None);
        assert_eq!(ip_literal("[fd00::1]"), "fd00::1".parse().ok());
        assert_eq!(ip_literal("feed.example.net"), None);
    }

    #[test]
    fn zones_longest_match() {
        let zones = parse_zones(&["corp.example", " .Svc.Corp.Example. ", "mpreg", "", "MPREG"]);
        let names: Vec<&str> = zones.iter().map(|z| z.name.as_str()).collect();
        assert_eq!(names, ["svc.corp.example", "corp.example", "mpreg"]);
        let q = labels("A.B.Svc.Corp.Example.");
        let i = match_zone(&zones, &q).unwrap();
        assert_eq!(zones[i].name, "svc.corp.example");
        assert_eq!(&q[..q.len() - zones[i].labels.len()], ["a", "b"]);
        assert_eq!(
            zones[match_zone(&zones, &labels("x.corp.example")).unwrap()].name,
            "corp.example"
        );
        assert_eq!(
            match_zone(&zones, &labels("mpreg")).map(|i| zones[i].name.as_str()),
            Some("mpreg")
        );
        assert_eq!(match_zone(&zones, &labels("example")), None);
        assert_eq!(match_zone(&zones, &labels("xmpreg")), None);
    }

    #[test]
    fn classification_order() {
        let c = |s: &str| classify(&labels(s));
        assert_eq!(c(""), Form::Apex);
        assert_eq!(
            c("_svc._tcp.tradefeed.market"),
            Form::Service {
                name: "tradefeed".into(),
                namespace: "market".into(),
                proto: Some("tcp".into())
            }
        );
        assert_eq!(
            c("_svc._tcp.tradefeed"),
            Form::Service {
                name: "tradefeed".into(),
                namespace: "".into(),
                proto: Some("tcp".into())
            }
        );
        assert_eq!(
            c("_mpreg._tcp.get.market.quotes"),
            Form::Function {
                name: "get".into(),
                namespace: "market.quotes".into(),
                proto: "tcp".into()
            }
        );
        assert_eq!(
            c("_queue._tcp.orders.market"),
            Form::Queue {
                name: "orders".into(),
                namespace: "market".into(),
                proto: "tcp".into()
            }
        );
        // unknown underscore kind falls through to the plain form
        assert_eq!(
            c("_http._tcp.foo"),
            Form::Service {
                name: "_http".into(),
                namespace: "_tcp.foo".into(),
                proto: None
            }
        );
        assert_eq!(
            c("node-1.node"),
            Form::Node {
                node_id: "node-1".into()
            }
        );
        assert_eq!(
            c("bad_label.node"),
            Form::Service {
                name: "bad_label".into(),
                namespace: "node".into(),
                proto: None
            }
        );
        assert_eq!(c("10-0-0-1.addr"), Form::Addr("10.0.0.1".parse().unwrap()));
        assert_eq!(
            c("tradefeed.market"),
            Form::Service {
                name: "tradefeed".into(),
                namespace: "market".into(),
                proto: None
            }
        );
    }

    #[test]
    fn ends_with_labels_matches_the_joined_suffix() {
        let joined = |name: &str, labels: &[&str]| {
            let (n, s) = (name.as_bytes(), labels.join("."));
            let s = s.as_bytes();
            n.len() >= s.len()
                && n[n.len() - s.len()..].eq_ignore_ascii_case(s)
                && (n.len() == s.len() || n[n.len() - s.len() - 1] == b'.')
        };
        let names = [
            "",
            "eu",
            "market",
            "eu.market",
            "EU.Market",
            "x.eu.market",
            "ket",
            "a..b",
            ".",
            "a.b.c",
        ];
        let labels: [&[&str]; 9] = [
            &["market"],
            &["eu", "market"],
            &["ket"],
            &["eu"],
            &["x", "eu", "market"],
            &["b"],
            &["", "b"],
            &["a.b"],
            &["c"],
        ];
        for n in names {
            for l in labels {
                assert_eq!(ends_with_labels(n, l), joined(n, l), "{n:?} {l:?}");
            }
        }
    }

    #[test]
    fn protocol_labels() {
        for p in ["tcp", "TCPS", "ws", "wss"] {
            assert!(proto_matches("tcp", p));
            assert!(!proto_matches("udp", p));
        }
        assert!(proto_matches("udp", "UDP"));
        assert!(proto_matches("quic", "quic"));
        assert!(!proto_matches("quic", "tcp"));
        assert!(!proto_matches("tcp", "udp"));
    }
}
