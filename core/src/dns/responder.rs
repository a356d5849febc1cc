//! Query bytes → reply bytes: the conformance rules of `dns.md` §15 around
//! the name mapping of §3–4 (see the module docs of [`crate::dns`]).
//!
//! Never panics on input: every decoding failure becomes FORMERR (header
//! readable) or no reply (not even a header), and every name the catalog
//! cannot hold simply does not exist.

use std::borrow::Cow;
use std::net::IpAddr;

use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{CNAME, NS, SOA, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
use serde_json::Value;

use super::names::{
    self, AddrLabel, Form, ZoneNames, ADDR_LABEL, HOSTMASTER_LABEL, NODE_LABEL, NS_LABEL,
};
use super::ratelimit::Verdict;
use super::records::{self, python_str, RrSets, TxtSet};
use super::{DnsConfig, DnsTransport, Viewer};
use crate::catalog::entry::{
    Entry, EntryKey, EntryKind, FunctionEndpoint, NodeDescriptor, QueueEndpoint, ServiceEndpoint,
};
use crate::catalog::scope::Scope;
use crate::catalog::store::{Catalog, DnsSuffix};

/// Metadata key that makes a service's plain name an alias (CNAME).
pub const CNAME_METADATA_KEY: &str = "dns_cname";

/// Largest reply over TCP (2-byte length prefix).
pub const TCP_MAX: usize = 65_535;

/// Question names with up to this many labels are split without allocating.
const INLINE_LABELS: usize = 16;

/// Longest name on the wire (RFC 1035 §3.1), length octets included: its
/// labels' bytes always fit.
const NAME_MAX: usize = 255;

/// Most labels a name on the wire can have (each takes at least two of
/// its 255 bytes).
const LABELS_MAX: usize = 127;

/// Classic UDP limit without EDNS.
pub const UDP_MIN: usize = 512;

/// What [`respond`] produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// The reply to send; `None` = send nothing.
    pub bytes: Option<Vec<u8>>,
    /// Its response code.
    pub rcode: Option<ResponseCode>,
    /// Whether TC=1 was set because the answer did not fit.
    pub truncated: bool,
    /// Records in the answer section as sent.
    pub answers: usize,
}

impl Reply {
    fn none() -> Reply {
        Reply {
            bytes: None,
            rcode: None,
            truncated: false,
            answers: 0,
        }
    }
}

/// The reply bytes for one query (empty: send nothing). See [`respond`].
pub fn answer(
    query: &[u8],
    transport: DnsTransport,
    viewer: &Viewer,
    catalog: &Catalog,
    cfg: &DnsConfig,
    now_wall: f64,
    visible: &dyn Fn(&Entry) -> bool,
) -> Vec<u8> {
    respond(query, transport, viewer, catalog, cfg, now_wall, visible)
        .bytes
        .unwrap_or_default()
}

/// The fixed part of a query header.
#[derive(Debug, Clone, Copy)]
struct RawHeader {
    id: u16,
    response: bool,
    opcode: u8,
    rd: bool,
    cd: bool,
}

fn raw_header(query: &[u8]) -> Option<RawHeader> {
    if query.len() < 12 {
        return None;
    }
    Some(RawHeader {
        id: u16::from_be_bytes([query[0], query[1]]),
        response: query[2] & 0x80 != 0,
        opcode: (query[2] >> 3) & 0x0f,
        rd: query[2] & 0x01 != 0,
        cd: query[3] & 0x10 != 0,
    })
}

/// A reply carrying only a header (the question could not be read).
fn header_only(h: RawHeader, rcode: ResponseCode) -> Reply {
    let mut m = Message::error_msg(h.id, OpCode::from_u8(h.opcode), rcode);
    m.metadata.recursion_desired = h.rd;
    m.metadata.checking_disabled = h.cd;
    Reply {
        bytes: m.to_vec().ok(),
        rcode: Some(rcode),
        truncated: false,
        answers: 0,
    }
}

/// The parts of a query the reply is built from.
struct Request {
    queries: Vec<Query>,
    edns: Option<Edns>,
}

/// Decodes a query. The usual one (one question, no other section) is
/// read as its header and question: all a full decode would read of it,
/// without building and dropping a `Message` for every query. Anything
/// else goes through hickory's `Message` decoding, which checks every
/// record (EDNS, SIG/TSIG placement, duplicates). `None`: not a decodable
/// query.
fn decode(query: &[u8]) -> Option<Request> {
    let mut decoder = BinDecoder::new(query);
    let header = Header::read(&mut decoder).ok()?;
    if header.metadata.message_type != MessageType::Query {
        return None;
    }
    let c = header.counts;
    if (c.queries, c.answers, c.authorities, c.additionals) == (1, 0, 0, 0) {
        let question = Query::read(&mut decoder).ok()?;
        return Some(Request {
            queries: vec![question],
            edns: None,
        });
    }
    let m = Message::from_vec(query).ok()?;
    Some(Request {
        queries: m.queries,
        edns: m.edns,
    })
}

/// The reply skeleton for a decoded query: id, opcode, RD and CD copied,
/// QR=1, RA=0, AD=0, the question as received (moved out of the request,
/// not copied), an OPT when the query had one.
fn skeleton(h: RawHeader, request: Request, cfg: &DnsConfig) -> Message {
    let mut m = Message::response(h.id, OpCode::Query);
    m.metadata.recursion_desired = h.rd;
    m.metadata.checking_disabled = h.cd;
    m.metadata.recursion_available = false;
    m.metadata.authentic_data = false;
    m.queries = request.queries;
    if let Some(req) = &request.edns {
        let mut e = Edns::new();
        e.set_max_payload(cfg.max_udp_payload.max(UDP_MIN as u16));
        e.set_version(0);
        e.set_dnssec_ok(req.flags().dnssec_ok);
        m.set_edns(e);
    }
    m
}

/// Size limit of a reply: TCP 65535; UDP 512, or the requester's EDNS size
/// (at least 512) up to the configured cap.
fn size_limit(edns: Option<&Edns>, transport: DnsTransport, cfg: &DnsConfig) -> usize {
    match transport {
        DnsTransport::Tcp => TCP_MAX,
        DnsTransport::Udp => match edns {
            Some(e) => usize::from(e.max_payload())
                .max(UDP_MIN)
                .min(usize::from(cfg.max_udp_payload).max(UDP_MIN)),
            None => UDP_MIN,
        },
    }
}

/// Encodes a reply within `limit`: first whole, then without the additional
/// section (glue is optional, no TC), then empty with TC=1 (never a partial
/// RRset). SERVFAIL if even that cannot be encoded.
fn finish(mut m: Message, limit: usize) -> Reply {
    let rcode = m.metadata.response_code;
    for step in 0..3 {
        match step {
            1 => m.additionals.clear(),
            2 => {
                m.answers.clear();
                m.authorities.clear();
                m.additionals.clear();
                m.metadata.truncation = true;
            }
            _ => {}
        }
        if let Ok(bytes) = m.to_vec() {
            if bytes.len() <= limit {
                return Reply {
                    bytes: Some(bytes),
                    rcode: Some(rcode),
                    truncated: step == 2,
                    answers: m.answers.len(),
                };
            }
        }
    }
    let mut fail = Message::error_msg(m.metadata.id, OpCode::Query, ResponseCode::ServFail);
    fail.metadata.recursion_desired = m.metadata.recursion_desired;
    fail.metadata.checking_disabled = m.metadata.checking_disabled;
    Reply {
        bytes: fail.to_vec().ok(),
        rcode: Some(ResponseCode::ServFail),
        truncated: false,
        answers: 0,
    }
}

/// The reply to a query over the source's rate limit: UDP `Slip` → empty
/// reply with TC=1 (the client retries over TCP), UDP `Drop` → nothing; TCP
/// → REFUSED. `None` for anything that is not a readable query.
pub fn limited_reply(query: &[u8], transport: DnsTransport, verdict: Verdict) -> Option<Vec<u8>> {
    let h = raw_header(query)?;
    if h.response || (transport == DnsTransport::Udp && verdict == Verdict::Drop) {
        return None;
    }
    let Ok(request) = Message::from_vec(query) else {
        return None;
    };
    let question = request.queries.first()?;
    let cfg_cap = request
        .edns
        .as_ref()
        .map(|e| e.max_payload())
        .unwrap_or(UDP_MIN as u16);
    let mut m = Message::response(h.id, OpCode::from_u8(h.opcode));
    m.metadata.recursion_desired = h.rd;
    m.metadata.checking_disabled = h.cd;
    m.add_query(question.clone());
    if request.edns.is_some() {
        let mut e = Edns::new();
        e.set_max_payload(cfg_cap.max(UDP_MIN as u16));
        m.set_edns(e);
    }
    match transport {
        DnsTransport::Udp => m.metadata.truncation = true,
        DnsTransport::Tcp => m.metadata.response_code = ResponseCode::Refused,
    }
    m.to_vec().ok()
}

/// Answers one query. `viewer` decides scope; `visible(entry)` is the
/// namespace policy for that viewer (the node passes the same per-entry
/// decision every reader uses); `now_wall` is the Unix time for expiry and
/// TTLs.
pub fn respond(
    query: &[u8],
    transport: DnsTransport,
    viewer: &Viewer,
    catalog: &Catalog,
    cfg: &DnsConfig,
    now_wall: f64,
    visible: &dyn Fn(&Entry) -> bool,
) -> Reply {
    let Some(h) = raw_header(query) else {
        return Reply::none();
    };
    if h.response {
        // Never answer responses (reflection loops).
        return Reply::none();
    }
    if h.opcode != 0 {
        return header_only(h, ResponseCode::NotImp);
    }
    let Some(request) = decode(query) else {
        return header_only(h, ResponseCode::FormErr);
    };
    if request.queries.len() != 1 {
        return header_only(h, ResponseCode::FormErr);
    }
    let limit = size_limit(request.edns.as_ref(), transport, cfg);
    let badvers = request.edns.as_ref().is_some_and(|e| e.version() > 0);
    let mut m = skeleton(h, request, cfg);
    if badvers {
        m.metadata.response_code = ResponseCode::BADVERS;
        return finish(m, limit);
    }
    let Some(question) = m.queries.first() else {
        return header_only(h, ResponseCode::FormErr);
    };
    if !matches!(question.query_class(), DNSClass::IN | DNSClass::ANY) {
        m.metadata.response_code = ResponseCode::Refused;
        return finish(m, limit);
    }
    let qtype = question.query_type();
    match qtype {
        RecordType::AXFR | RecordType::IXFR => {
            m.metadata.response_code = ResponseCode::Refused;
            return finish(m, limit);
        }
        RecordType::OPT => {
            m.metadata.response_code = ResponseCode::FormErr;
            return finish(m, limit);
        }
        _ => {}
    }

    let qname = question.name();
    // The question's labels lower-cased (ASCII, as DNS compares names) into
    // one stack buffer, checked as UTF-8 once, and borrowed as `&str`s
    // (inline for up to 16 labels): no allocation for any name.
    // `last_upper`: the last label the question spells with upper case.
    let mut folded = [0u8; NAME_MAX];
    let mut ends = [0u8; LABELS_MAX];
    let mut count = 0;
    let mut len = 0;
    let mut last_upper = None;
    for (i, raw) in qname.iter().enumerate() {
        // A decoded name has at most 127 labels and 255 bytes, length
        // octets included.
        let (Some(dst), Some(end)) = (folded.get_mut(len..len + raw.len()), ends.get_mut(i)) else {
            return header_only(h, ResponseCode::FormErr);
        };
        let mut upper = false;
        for (d, &b) in dst.iter_mut().zip(raw) {
            upper |= b.is_ascii_uppercase();
            *d = b.to_ascii_lowercase();
        }
        if upper {
            last_upper = Some(i);
        }
        len += raw.len();
        // At most 253 (the slice above fits in 255).
        *end = len as u8;
        count = i + 1;
    }
    let ends = &ends[..count];
    let whole = std::str::from_utf8(&folded[..len]).ok();
    let mut inline = [""; INLINE_LABELS];
    let mut spilled = Vec::new();
    let labels: &mut [&str] = match inline.get_mut(..count) {
        Some(l) => l,
        None => {
            spilled.resize(count, "");
            &mut spilled
        }
    };
    let mut matchable = true;
    let mut start = 0;
    for (slot, &end) in labels.iter_mut().zip(ends) {
        let end = usize::from(end);
        // The whole name is UTF-8 unless some label is not; then each label
        // on its own (the zone may still match).
        let label = whole
            .and_then(|all| all.get(start..end))
            .or_else(|| std::str::from_utf8(&folded[start..end]).ok());
        match label {
            Some(l) => *slot = l,
            // Left empty: no zone or catalog name has an empty label.
            None => matchable = false,
        }
        start = end;
    }
    let labels: &[&str] = labels;
    let (zone, relative) = match names::match_zone(&cfg.zones, labels) {
        Some(i) => {
            let n = cfg.zones[i].labels.len();
            (Some(&cfg.zones[i]), &labels[..labels.len() - n])
        }
        None if cfg.allow_external_names => (None, labels),
        None => {
            // Not ours: an authoritative-only server refuses (AA=0).
            m.metadata.response_code = ResponseCode::Refused;
            return finish(m, limit);
        }
    };
    // The apex spelled as in the question: the zone's prebuilt names when
    // the question spells it as configured (lower case), else built from
    // the question's labels.
    let (apex, zone_names) = match zone {
        Some(z) => {
            // Every label counts, a leading `*` too (`num_labels` leaves
            // it out, which would put the apex one label too low).
            let skip = labels.len().saturating_sub(z.labels.len());
            match z.names.as_ref() {
                // The zone's names are lower case, and the question's
                // apex labels equal them once lower-cased (the zone
                // matched): the same spelling unless it has upper case.
                Some(zn) if last_upper.is_none_or(|i| i < skip) => {
                    (Some(Cow::Borrowed(&zn.apex)), Some(zn))
                }
                _ => (apex_from(qname, skip).map(Cow::Owned), None),
            }
        }
        None => (None, None),
    };
    m.metadata.authoritative = true;

    let r = Resolver {
        catalog,
        cfg,
        viewer,
        now: now_wall,
        visible,
        apex: apex.as_deref(),
        zone_names,
        owner: qname,
        qtype,
    };
    let mut out = Outcome::default();
    if !matchable || (r.apex.is_none() && relative.is_empty()) {
        // Labels the catalog cannot hold, or the root in external mode.
    } else {
        r.resolve(relative, &mut out);
        if !out.exists && r.has_descendants(relative) {
            out.exists = true;
        }
    }
    let exists = out.exists;
    let authority = if out.answers.is_empty() {
        // NXDOMAIN or NODATA: the zone SOA lets resolvers cache the negative.
        r.soa()
            .map(|(apex, soa)| records::record(apex.clone(), cfg.negative_ttl, soa))
    } else {
        None
    };
    let answers = out.answers.into_records();
    let additionals = out.additionals.into_records();
    m.metadata.response_code = if exists {
        ResponseCode::NoError
    } else {
        ResponseCode::NXDomain
    };
    if let Some(soa) = authority {
        m.authorities = vec![soa];
    }
    m.answers = answers;
    m.additionals = additionals;
    finish(m, limit)
}

/// The apex name: the question's labels after the first `skip`.
fn apex_from(qname: &Name, skip: usize) -> Option<Name> {
    let mut apex = Name::root();
    for label in qname.iter().skip(skip) {
        apex = apex.append_label(label).ok()?;
    }
    Some(apex)
}

/// Records found for a name, and whether it exists at all.
#[derive(Debug, Default)]
struct Outcome {
    exists: bool,
    answers: RrSets,
    additionals: RrSets,
}

struct Resolver<'a> {
    catalog: &'a Catalog,
    cfg: &'a DnsConfig,
    viewer: &'a Viewer,
    now: f64,
    visible: &'a dyn Fn(&Entry) -> bool,
    /// The zone apex spelled as in the question; `None` in external mode.
    apex: Option<&'a Name>,
    /// The zone's prebuilt names, when `apex` is the zone's own spelling.
    zone_names: Option<&'a ZoneNames>,
    /// The question name: owner of every answer.
    owner: &'a Name,
    qtype: RecordType,
}

impl<'a> Resolver<'a> {
    fn wants(&self, t: RecordType) -> bool {
        self.qtype == t || self.qtype == RecordType::ANY
    }

    /// Whether the question wants A or AAAA records (no need to parse
    /// targets as addresses otherwise).
    fn wants_address(&self) -> bool {
        self.wants(RecordType::A) || self.wants(RecordType::AAAA)
    }

    /// The one scope rule, from the viewer's side: `local` entries are this
    /// node's only, `zone` entries are seen by their cluster's viewers,
    /// `region` / `global` by everyone. Expired entries do not exist.
    fn in_scope(&self, e: &Entry) -> bool {
        if e.is_expired(self.now) {
            return false;
        }
        match e.scope() {
            Scope::Local => e.node_id() == self.cfg.node_id,
            Scope::Zone => e.cluster_id() == self.viewer.cluster,
            Scope::Region | Scope::Global => true,
        }
    }

    /// Scope plus namespace policy (the caller's per-entry decision, the
    /// same every other reader uses).
    fn visible(&self, e: &Entry) -> bool {
        self.in_scope(e) && (self.visible)(e)
    }

    /// TTL from the remaining lifetime `advertised_at + ttl − now`.
    fn ttl(&self, advertised_at: f64, ttl_seconds: f64) -> u32 {
        records::clamp_ttl(
            advertised_at + ttl_seconds - self.now,
            self.cfg.min_ttl,
            self.cfg.max_ttl,
        )
    }

    /// Visible entries of `kind` named `name`, case-insensitively: those
    /// spelled exactly as asked first, and only when there are none, those
    /// spelled with other cases (both from the catalog's indexes).
    fn lookup(&self, kind: EntryKind, name: &str, keep: impl Fn(&Entry) -> bool) -> Vec<&'a Entry> {
        let ok = |e: &&Entry| self.visible(e) && keep(e);
        let found: Vec<&'a Entry> = self.catalog.by_name(kind, name).filter(ok).collect();
        if !found.is_empty() {
            return found;
        }
        self.catalog
            .by_name_other_case(kind, name)
            .filter(ok)
            .collect()
    }

    fn services(&self, name: &str, namespace: &str) -> Vec<&'a ServiceEndpoint> {
        let service = |e: &'a Entry| match e {
            Entry::Service(s) => Some(s),
            _ => None,
        };
        // The common case, the name spelled as registered: only the
        // services of that namespace are fetched (one vector, filtered in
        // place).
        if !namespace.is_empty() {
            let exact: Vec<&'a ServiceEndpoint> = self
                .catalog
                .services_named(name, namespace)
                .into_iter()
                .filter(|e| self.visible(e))
                .filter_map(service)
                .collect();
            if !exact.is_empty() {
                return exact;
            }
        }
        self.lookup(EntryKind::Services, name, |e| {
            namespace.is_empty()
                || matches!(e, Entry::Service(s) if s.namespace.eq_ignore_ascii_case(namespace))
        })
        .into_iter()
        .filter_map(service)
        .collect()
    }

    fn functions(&self, full: &str) -> Vec<&'a FunctionEndpoint> {
        self.lookup(EntryKind::Functions, full, |_| true)
            .into_iter()
            .filter_map(|e| match e {
                Entry::Function(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    fn queues(&self, full: &str) -> Vec<&'a QueueEndpoint> {
        self.lookup(EntryKind::Queues, full, |_| true)
            .into_iter()
            .filter_map(|e| match e {
                Entry::Queue(q) => Some(q),
                _ => None,
            })
            .collect()
    }

    /// The serving node of an endpoint (scope is the endpoint's business:
    /// publishing an endpoint publishes how to reach it).
    fn node_of(&self, node_id: &str, cluster_id: &str) -> Option<&'a NodeDescriptor> {
        let key = EntryKey::Node {
            cluster_id: cluster_id.to_string(),
            node_id: node_id.to_string(),
        };
        match self.catalog.get(&key) {
            Some(e @ Entry::Node(n)) if !e.is_expired(self.now) => Some(n),
            _ => None,
        }
    }

    /// `(apex, SOA)` of the zone.
    fn soa(&self) -> Option<(&'a Name, RData)> {
        let apex = self.apex?;
        let (mname, rname) = match self.zone_names {
            Some(z) => (z.ns.clone(), z.hostmaster.clone()),
            None => (
                apex.prepend_label(NS_LABEL.as_bytes()).ok()?,
                apex.prepend_label(HOSTMASTER_LABEL.as_bytes()).ok()?,
            ),
        };
        let serial = if self.now.is_finite() && self.now > 0.0 {
            (self.now as u64 % (1u64 << 32)) as u32
        } else {
            1
        };
        let soa = SOA::new(
            mname,
            rname,
            serial,
            3600,
            600,
            86_400,
            self.cfg.negative_ttl,
        );
        Some((apex, RData::SOA(soa)))
    }

    /// `ns.<zone>` spelled as the question spells the zone.
    fn ns_name(&self, apex: &Name) -> Option<Name> {
        match self.zone_names {
            Some(z) => Some(z.ns.clone()),
            None => apex.prepend_label(NS_LABEL.as_bytes()).ok(),
        }
    }

    /// Adds A/AAAA of `ip` for `owner` if the question wants that type.
    fn add_address(&self, sets: &mut RrSets, owner: &Name, ttl: u32, ip: IpAddr, always: bool) {
        let t = if ip.is_ipv4() {
            RecordType::A
        } else {
            RecordType::AAAA
        };
        if always || self.wants(t) {
            sets.add(owner, ttl, records::address(ip));
        }
    }

    /// The SRV target for a host: IP literals become `<ip>.addr.<zone>`
    /// with their address as glue; host names are kept (made absolute).
    fn srv_target(&self, host: &str, ttl: u32, out: &mut Outcome) -> Option<Name> {
        if let Some(ip) = names::ip_literal(host) {
            if let Some(apex) = self.apex {
                let label = AddrLabel::new(ip);
                let target = match self.zone_names {
                    Some(z) => z.addr.prepend_label(label.as_bytes()),
                    None => apex
                        .prepend_label(ADDR_LABEL.as_bytes())
                        .and_then(|n| n.prepend_label(label.as_bytes())),
                }
                .ok()?;
                self.add_address(&mut out.additionals, &target, ttl, ip, true);
                return Some(target);
            }
        }
        let mut name = Name::from_ascii(host.trim().trim_end_matches('.')).ok()?;
        name.set_fqdn(true);
        Some(name)
    }

    fn resolve(&self, relative: &[&str], out: &mut Outcome) {
        if let Some(apex) = self.apex {
            if relative.is_empty() {
                out.exists = true;
                if let Some((owner, soa)) = self.soa() {
                    if self.wants(RecordType::SOA) {
                        out.answers.add(owner, self.cfg.negative_ttl, soa);
                    }
                }
                if self.wants(RecordType::NS) {
                    if let Some(ns) = self.ns_name(apex) {
                        out.answers
                            .add(apex, self.cfg.max_ttl, RData::NS(NS(ns.clone())));
                        for ip in &self.cfg.nameserver_addrs {
                            self.add_address(
                                &mut out.additionals,
                                &ns,
                                self.cfg.max_ttl,
                                *ip,
                                true,
                            );
                        }
                    }
                }
                return;
            }
            if relative.len() == 1
                && relative[0] == NS_LABEL
                && !self.cfg.nameserver_addrs.is_empty()
            {
                out.exists = true;
                for ip in &self.cfg.nameserver_addrs {
                    self.add_address(&mut out.answers, self.owner, self.cfg.max_ttl, *ip, false);
                }
                return;
            }
        }
        match names::classify_labels(relative) {
            Form::Apex => {}
            Form::Service {
                name,
                namespace,
                proto,
            } => self.resolve_services(&name, &namespace, proto.as_deref(), out),
            Form::Function {
                name,
                namespace,
                proto,
            } => {
                let full = Form::full_name(&namespace, &name);
                let fns = self.functions(&full);
                out.exists = !fns.is_empty();
                for f in fns {
                    let summary_ns = f
                        .rpc_summary
                        .as_ref()
                        .and_then(|s| s.get("namespace"))
                        .and_then(Value::as_str)
                        .filter(|s| !s.is_empty());
                    let digest = f.spec_digest.as_deref().or_else(|| {
                        f.rpc_summary
                            .as_ref()
                            .and_then(|s| s.get("spec_digest"))
                            .and_then(Value::as_str)
                    });
                    let txt = TxtSet {
                        namespace: summary_ns.unwrap_or(&namespace),
                        tags: f.tags.iter().map(String::as_str).collect(),
                        spec_digest: digest,
                        ..TxtSet::default()
                    };
                    let ttl = self.ttl(f.advertised_at, f.ttl_seconds);
                    self.node_records(&f.node_id, &f.cluster_id, &proto, ttl, txt, out);
                }
            }
            Form::Queue {
                name,
                namespace,
                proto,
            } => {
                let full = Form::full_name(&namespace, &name);
                let qs = self.queues(&full);
                out.exists = !qs.is_empty();
                for q in qs {
                    let txt = TxtSet {
                        namespace: if namespace.is_empty() {
                            &q.queue_name
                        } else {
                            &namespace
                        },
                        tags: q.tags.iter().map(String::as_str).collect(),
                        ..TxtSet::default()
                    };
                    let ttl = self.ttl(q.advertised_at, q.ttl_seconds);
                    self.node_records(&q.node_id, &q.cluster_id, &proto, ttl, txt, out);
                }
            }
            Form::Node { node_id } => {
                let nodes = self.lookup(EntryKind::Nodes, &node_id, |_| true);
                out.exists = !nodes.is_empty();
                for e in nodes {
                    let Entry::Node(n) = e else { continue };
                    let ttl = self.ttl(n.advertised_at, n.ttl_seconds);
                    for te in &n.transport_endpoints {
                        if let Some(ip) = names::ip_literal(&te.host) {
                            self.add_address(&mut out.answers, self.owner, ttl, ip, false);
                        }
                    }
                    if self.wants(RecordType::TXT) {
                        let txt = TxtSet {
                            cluster_id: &n.cluster_id,
                            node_id: &n.node_id,
                            tags: n.tags.iter().map(String::as_str).collect(),
                            capabilities: n.capabilities.iter().map(String::as_str).collect(),
                            ..TxtSet::default()
                        };
                        for r in txt.records() {
                            out.answers.add(self.owner, ttl, r);
                        }
                    }
                }
            }
            Form::Addr(ip) => {
                out.exists = true;
                self.add_address(&mut out.answers, self.owner, self.cfg.max_ttl, ip, false);
            }
        }
    }

    fn resolve_services(
        &self,
        name: &str,
        namespace: &str,
        proto: Option<&str>,
        out: &mut Outcome,
    ) {
        let eps = self.services(name, namespace);
        out.exists = !eps.is_empty();
        if eps.is_empty() {
            return;
        }
        if proto.is_none() {
            if let Some(target) = self.alias(&eps) {
                let ttl = eps
                    .iter()
                    .map(|s| self.ttl(s.advertised_at, s.ttl_seconds))
                    .min()
                    .unwrap_or(self.cfg.min_ttl);
                out.answers
                    .add(self.owner, ttl, RData::CNAME(CNAME(target)));
                return;
            }
        }
        for s in eps {
            if proto.is_some_and(|p| !names::proto_matches(p, &s.protocol)) {
                continue;
            }
            let ttl = self.ttl(s.advertised_at, s.ttl_seconds);
            if proto.is_some() && self.wants(RecordType::SRV) {
                for t in &s.targets {
                    if let Some(target) = self.srv_target(t, ttl, out) {
                        let srv = SRV::new(s.priority, s.weight, s.port, target);
                        out.answers.add(self.owner, ttl, RData::SRV(srv));
                    }
                }
            }
            if self.wants_address() {
                for t in &s.targets {
                    if let Some(ip) = names::ip_literal(t) {
                        self.add_address(&mut out.answers, self.owner, ttl, ip, false);
                    }
                }
            }
            if self.wants(RecordType::TXT) {
                let txt = TxtSet {
                    namespace: &s.namespace,
                    cluster_id: &s.cluster_id,
                    node_id: &s.node_id,
                    tags: s.tags.iter().map(String::as_str).collect(),
                    capabilities: s.capabilities.iter().map(String::as_str).collect(),
                    spec_digest: None,
                    metadata: s
                        .metadata
                        .iter()
                        .map(|(k, v)| (k.as_str(), python_str(v)))
                        .collect(),
                };
                for r in txt.records() {
                    out.answers.add(self.owner, ttl, r);
                }
            }
        }
    }

    /// The CNAME target when every endpoint names the same `dns_cname`.
    fn alias(&self, eps: &[&ServiceEndpoint]) -> Option<Name> {
        let mut target: Option<&str> = None;
        for s in eps {
            let t = match s.metadata.get(CNAME_METADATA_KEY) {
                Some(crate::catalog::entry::MetadataValue::Text(t)) if !t.trim().is_empty() => {
                    t.trim()
                }
                _ => return None,
            };
            if target.is_some_and(|x| !x.eq_ignore_ascii_case(t)) {
                return None;
            }
            target = Some(t);
        }
        let mut name = Name::from_ascii(target?.trim_end_matches('.')).ok()?;
        name.set_fqdn(true);
        Some(name)
    }

    /// SRV / A / AAAA for the transports of a serving node that match the
    /// DNS protocol, then that node's TXT set.
    fn node_records<'b>(
        &self,
        node_id: &str,
        cluster_id: &str,
        proto: &str,
        ttl: u32,
        mut txt: TxtSet<'b>,
        out: &mut Outcome,
    ) where
        'a: 'b,
    {
        let Some(node) = self.node_of(node_id, cluster_id) else {
            return;
        };
        for te in &node.transport_endpoints {
            if !names::proto_matches(proto, &te.protocol) {
                continue;
            }
            if self.wants(RecordType::SRV) {
                if let Some(target) = self.srv_target(&te.host, ttl, out) {
                    let srv = SRV::new(0, 0, te.port, target);
                    out.answers.add(self.owner, ttl, RData::SRV(srv));
                }
            }
            if let Some(ip) = names::ip_literal(&te.host) {
                self.add_address(&mut out.answers, self.owner, ttl, ip, false);
            }
        }
        if self.wants(RecordType::TXT) {
            txt.cluster_id = &node.cluster_id;
            txt.node_id = &node.node_id;
            for r in txt.records() {
                out.answers.add(self.owner, ttl, r);
            }
        }
    }

    /// Whether a name that holds nothing itself has names below it (an
    /// empty non-terminal, RFC 8020: NOERROR, not NXDOMAIN), among the
    /// entries this viewer may see.
    fn has_descendants(&self, relative: &[&str]) -> bool {
        if relative.is_empty() {
            return true;
        }
        if self.apex.is_some() && relative.len() == 1 {
            if relative[0] == ADDR_LABEL {
                return true;
            }
            if relative[0] == NODE_LABEL {
                return self.catalog.iter(EntryKind::Nodes).any(|e| {
                    self.visible(e)
                        && (names::encode_node_id(e.node_id()).is_ok()
                            || names::decode_node_label(e.node_id()).is_some())
                });
            }
        }
        // `_<proto>.<x>.<ns…>` sits right above `_svc/_mpreg/_queue._<proto>.<x>.<ns…>`.
        if relative.len() >= 2 && relative[0].starts_with('_') && !relative[1].starts_with('_') {
            let x = relative[1];
            let ns = names::join_labels(&relative[2..]);
            let full = Form::full_name(&ns, x);
            if !self.services(x, &ns).is_empty()
                || !self.functions(&full).is_empty()
                || !self.queues(&full).is_empty()
            {
                return true;
            }
        }
        // `<function>.<ns…>` and `<queue>.<ns…>` sit above their
        // `_<proto>.` names.
        let full = Form::full_name(&names::join_labels(&relative[1..]), relative[0]);
        if !self.functions(&full).is_empty() || !self.queues(&full).is_empty() {
            return true;
        }
        // `<x>.<ns…>` names end with their namespace's labels: is `relative`
        // a tail of the namespace of some visible entry? One range of the
        // catalog's suffix index per kind, not a scan.
        let Some(suffix) = DnsSuffix::new(relative) else {
            return false;
        };
        [EntryKind::Services, EntryKind::Functions, EntryKind::Queues]
            .into_iter()
            .any(|kind| {
                self.catalog
                    .under_dns_suffix(kind, &suffix)
                    .any(|e| self.visible(e))
            })
    }
}
