//! Record synthesis helpers: TTLs, MPREG's TXT layout, and RRset assembly
//! with the RFC 2181 §5 rules (one TTL per RRset, no duplicate records).

use std::net::IpAddr;

use hickory_proto::rr::rdata::{A, AAAA, TXT};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::catalog::entry::MetadataValue;

/// Longest character-string inside a TXT record (RFC 1035 §3.3).
pub const TXT_CHUNK: usize = 255;

/// TTL of an answer from the entry's remaining lifetime
/// (`advertised_at + ttl − now`), truncated to whole seconds and clamped to
/// `[min, max]` (`min` is at least 1).
pub fn clamp_ttl(remaining_seconds: f64, min: u32, max: u32) -> u32 {
    let min = min.max(1);
    let max = max.max(min);
    if !remaining_seconds.is_finite() || remaining_seconds <= 0.0 {
        return min;
    }
    let whole = remaining_seconds.trunc();
    if whole >= f64::from(max) {
        max
    } else {
        (whole as u32).clamp(min, max)
    }
}

/// A value as Python's `str()` prints it, as MPREG writes TXT values
/// (`True`, `5`, `1.5`, `1e-05`).
pub fn python_str(value: &MetadataValue) -> String {
    match value {
        MetadataValue::Bool(true) => "True".into(),
        MetadataValue::Bool(false) => "False".into(),
        MetadataValue::Int(i) => i.to_string(),
        MetadataValue::Float(f) => python_float(*f),
        MetadataValue::Text(s) => s.clone(),
    }
}

/// Python's `repr(float)`: shortest round-trip digits, positional for
/// exponents in `[-4, 16)`, else `d.ddde±XX`.
pub fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // `{:e}` gives the shortest round-trip digits: `1.5e0`, `1e-5`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if (-4..16).contains(&exp) {
        let point = exp + 1; // digits before the decimal point
        let text = if point <= 0 {
            format!("0.{}{digits}", "0".repeat((-point) as usize))
        } else if (point as usize) >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
        } else {
            format!(
                "{}.{}",
                &digits[..point as usize],
                &digits[point as usize..]
            )
        };
        format!("{sign}{text}")
    } else {
        let m = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{m}e{esign}{:02}", exp.abs())
    }
}

/// One TXT RR holding `key=value`, split into ≤ 255-byte character-strings
/// when longer (MPREG fails to pack those).
pub fn txt(key: &str, value: &str) -> RData {
    let mut text = String::with_capacity(key.len() + 1 + value.len());
    text.push_str(key);
    text.push('=');
    text.push_str(value);
    let chunks: Vec<&[u8]> = if text.is_empty() {
        vec![&[][..]]
    } else {
        text.as_bytes().chunks(TXT_CHUNK).collect()
    };
    RData::TXT(TXT::from_bytes(chunks))
}

/// The A or AAAA record data of an address.
pub fn address(ip: IpAddr) -> RData {
    match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    }
}

/// MPREG's TXT set (`dns.md` §4.6), one `key=value` per RR, in order:
/// namespace, cluster_id, node_id, tags, capabilities, spec_digest, then
/// metadata. Empty values are left out; sets are sorted and comma-joined.
#[derive(Debug, Default)]
pub struct TxtSet<'a> {
    /// `namespace=`.
    pub namespace: &'a str,
    /// `cluster_id=`.
    pub cluster_id: &'a str,
    /// `node_id=`.
    pub node_id: &'a str,
    /// `tags=` (sorted input).
    pub tags: Vec<&'a str>,
    /// `capabilities=` (sorted input).
    pub capabilities: Vec<&'a str>,
    /// `spec_digest=`.
    pub spec_digest: Option<&'a str>,
    /// Metadata in order.
    pub metadata: Vec<(&'a str, String)>,
}

impl TxtSet<'_> {
    /// The TXT record data, in MPREG's order.
    pub fn records(&self) -> Vec<RData> {
        let mut out = Vec::new();
        for (k, v) in [
            ("namespace", self.namespace),
            ("cluster_id", self.cluster_id),
            ("node_id", self.node_id),
        ] {
            if !v.is_empty() {
                out.push(txt(k, v));
            }
        }
        if !self.tags.is_empty() {
            out.push(txt("tags", &self.tags.join(",")));
        }
        if !self.capabilities.is_empty() {
            out.push(txt("capabilities", &self.capabilities.join(",")));
        }
        if let Some(d) = self.spec_digest.filter(|d| !d.is_empty()) {
            out.push(txt("spec_digest", d));
        }
        for (k, v) in &self.metadata {
            out.push(txt(k, v));
        }
        out
    }
}

/// Where one RRset sits in [`RrSets`]' record list.
#[derive(Debug, Clone, Copy)]
struct SetSpan {
    rtype: RecordType,
    start: usize,
    len: usize,
}

/// The spans of the sets, the first few inline (an answer rarely has more
/// than a handful of sets: no allocation for them).
#[derive(Debug, Clone, Default)]
struct Spans {
    head: [Option<SetSpan>; Spans::INLINE],
    tail: Vec<SetSpan>,
}

impl Spans {
    const INLINE: usize = 4;

    fn iter(&self) -> impl Iterator<Item = &SetSpan> {
        self.head.iter().map_while(Option::as_ref).chain(&self.tail)
    }

    fn iter_mut(&mut self) -> impl Iterator<Item = &mut SetSpan> {
        self.head
            .iter_mut()
            .map_while(Option::as_mut)
            .chain(&mut self.tail)
    }

    fn push(&mut self, span: SetSpan) {
        match self.head.iter_mut().find(|s| s.is_none()) {
            Some(slot) => *slot = Some(span),
            None => self.tail.push(span),
        }
    }
}

/// Records grouped into RRsets (owner + type), in order of first
/// appearance. Adding a record already present only lowers the set's TTL;
/// a set's TTL is the minimum of its records' TTLs.
///
/// The records are kept as the finished list, set after set (each set's
/// records contiguous, all with the owner spelled as first added), so
/// [`RrSets::into_records`] hands the list over without copying.
#[derive(Debug, Clone, Default)]
pub struct RrSets {
    records: Vec<Record>,
    sets: Spans,
}

impl RrSets {
    /// An empty collection.
    pub fn new() -> RrSets {
        RrSets::default()
    }

    /// Adds one record.
    pub fn add(&mut self, owner: &Name, ttl: u32, data: RData) {
        let rtype = data.record_type();
        let records = &mut self.records;
        let found = self.sets.iter().enumerate().find(|(_, s)| {
            s.rtype == rtype && records.get(s.start).is_some_and(|r| r.name == *owner)
        });
        let Some((i, &span)) = found else {
            self.sets.push(SetSpan {
                rtype,
                start: records.len(),
                len: 1,
            });
            grow(records);
            records.push(record(owner.clone(), ttl, data));
            return;
        };
        let Some(set) = records.get_mut(span.start..span.start + span.len) else {
            return;
        };
        let set_ttl = set[0].ttl.min(ttl);
        for r in set.iter_mut() {
            r.ttl = set_ttl;
        }
        if set.iter().any(|r| r.data == data) {
            return;
        }
        let added = record(set[0].name.clone(), set_ttl, data);
        grow(records);
        records.insert(span.start + span.len, added);
        for (j, s) in self.sets.iter_mut().enumerate().skip(i) {
            if j == i {
                s.len += 1;
            } else {
                s.start += 1;
            }
        }
    }

    /// True when no record was added.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether a set of this type exists.
    pub fn has_type(&self, rtype: RecordType) -> bool {
        self.sets.iter().any(|s| s.rtype == rtype)
    }

    /// The records, set by set (class IN).
    pub fn into_records(self) -> Vec<Record> {
        self.records
    }
}

/// Makes room for one more record, doubling from one: `Vec`'s own first
/// step (four) would make a one-record answer a 1 KiB allocation, past
/// the allocator's fast per-thread cache.
fn grow(records: &mut Vec<Record>) {
    if records.len() == records.capacity() {
        records.reserve_exact(records.capacity().max(1));
    }
}

/// One record of class IN.
pub fn record(owner: Name, ttl: u32, data: RData) -> Record {
    let mut r = Record::from_rdata(owner, ttl, data);
    r.dns_class = DNSClass::IN;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_clamp() {
        assert_eq!(clamp_ttl(120.0, 1, 60), 60);
        assert_eq!(clamp_ttl(0.4, 1, 60), 1);
        assert_eq!(clamp_ttl(30.9, 1, 60), 30);
        assert_eq!(clamp_ttl(-5.0, 1, 60), 1);
        assert_eq!(clamp_ttl(f64::NAN, 1, 60), 1);
        assert_eq!(clamp_ttl(f64::INFINITY, 1, 60), 1);
        assert_eq!(clamp_ttl(3.0, 5, 10), 5);
        assert_eq!(clamp_ttl(1e12, 5, 10), 10);
        // min below 1 is raised, max below min is raised to min
        assert_eq!(clamp_ttl(0.0, 0, 0), 1);
        assert_eq!(clamp_ttl(100.0, 20, 10), 20);
    }

    #[test]
    fn python_values() {
        assert_eq!(python_str(&MetadataValue::Bool(true)), "True");
        assert_eq!(python_str(&MetadataValue::Bool(false)), "False");
        assert_eq!(python_str(&MetadataValue::Int(5)), "5");
        for (f, s) in [
            (1.5, "1.5"),
            (1e-5, "1e-05"),
            (100.0, "100.0"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (123456789.0, "123456789.0"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (1.25e-7, "1.25e-07"),
            (1e22, "1e+22"),
            (9999999999999998.0, "9999999999999998.0"),
        ] {
            assert_eq!(python_float(f), s, "{f}");
        }
    }

    #[test]
    fn txt_chunks_long_values() {
        let long = "x".repeat(600);
        let RData::TXT(t) = txt("k", &long) else {
            panic!("not TXT")
        };
        let sizes: Vec<usize> = t.txt_data.iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [255, 255, 92]);
    }

    #[test]
    fn rrsets_dedupe_and_min_ttl() {
        let owner = Name::from_ascii("a.mpreg.").unwrap();
        let mut s = RrSets::new();
        s.add(&owner, 60, address("10.0.0.1".parse().unwrap()));
        s.add(&owner, 30, txt("k", "v"));
        s.add(&owner, 1, address("10.0.0.1".parse().unwrap()));
        s.add(&owner, 60, address("10.0.0.2".parse().unwrap()));
        let recs = s.into_records();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[0].record_type(), RecordType::A);
        assert_eq!((recs[0].ttl, recs[1].ttl), (1, 1));
        assert_eq!(recs[2].record_type(), RecordType::TXT);
        assert_eq!(recs[2].ttl, 30);
    }
}
