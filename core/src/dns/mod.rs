//! The DNS gateway's answering logic: a standards-conformant, authoritative,
//! read-only view of the catalog (`reference/dns.md`, issue 7).
//!
//! Pure and sans-IO like the rest of the core: [`answer`] maps the bytes of
//! one query (plus the viewer, the catalog, the configuration and the wall
//! clock) to the bytes of one reply; the runtime owns the UDP and TCP
//! sockets and the node feeds queries through [`Gateway`], which adds the
//! per-source rate limit and the counters.
//!
//! - [`names`]: zones (longest match), the owner-name forms, node labels.
//! - [`records`]: TTLs, MPREG's TXT layout, RRset assembly.
//! - [`responder`]: the query → reply function and its conformance rules.
//! - [`ratelimit`]: the per-source token bucket.
//!
//! ## Name forms (relative to a zone from `dns_zones`)
//!
//! | owner name | answers |
//! |---|---|
//! | `<zone>` (apex) | SOA, NS (other types: NODATA) |
//! | `ns.<zone>` | A/AAAA of the gateway, when it listens on an IP literal |
//! | `_svc._<proto>.<service>.<ns…>` | SRV per target, A/AAAA for IP targets, TXT |
//! | `<service>.<ns…>` | A/AAAA for IP targets, TXT (or one CNAME, see below) |
//! | `_mpreg._<proto>.<function>.<ns…>` | SRV/A/AAAA per serving node transport, TXT per node |
//! | `_queue._<proto>.<queue>.<ns…>` | as functions, for the queue `<ns>.<queue>` |
//! | `<node label>.node` | A/AAAA of the node's transports, TXT |
//! | `<ip label>.addr` (ours) | the A/AAAA of the IP literal spelled in the label |
//!
//! ## Where we differ from MPREG on purpose (`dns.md` §15)
//!
//! - SOA and NS at the apex; the zone SOA in the authority section of every
//!   NXDOMAIN and NODATA answer (negative caching); NOERROR for empty
//!   non-terminals (`market.<zone>` above `tradefeed.market.<zone>`), so
//!   resolvers doing QNAME minimisation still find the names below.
//! - REFUSED (AA=0) outside every zone unless `dns_allow_external_names`;
//!   FORMERR for undecodable queries, QDCOUNT ≠ 1 or several OPT records;
//!   NOTIMP for opcodes other than QUERY; BADVERS for EDNS versions > 0;
//!   REFUSED for classes other than IN/ANY and for zone transfers; queries
//!   with QR=1 are ignored. RA=0, AD=0, CD and RD copied, DO copied.
//! - EDNS0: the requester's UDP size is honoured (at least 512, at most
//!   [`DnsConfig::max_udp_payload`]) and an OPT is included exactly when the
//!   query had one. An answer that does not fit drops the additional section
//!   first, then goes out empty with TC=1 (never a partial RRset).
//! - SRV targets that are IP literals become in-zone host names
//!   `<ip label>.addr.<zone>`, with their A/AAAA in the additional section
//!   (RFC 2782: targets are host names). Hostname targets are kept.
//! - One TTL per RRset (the minimum) and no duplicate records; the TTL is the
//!   entry's *remaining* lifetime clamped to `dns_min/max_ttl_seconds`.
//! - Catalog names are matched case-insensitively; owner names keep the
//!   question's spelling byte for byte (DNS 0x20).
//! - Scope applies to every answer: a `local` entry is seen only when it is
//!   this node's, a `zone` entry only by viewers of its cluster, `region` and
//!   `global` entries by everyone. Namespace policy is the node's per-entry
//!   decision ([`crate::policy::Access`], the one every reader uses) for
//!   the viewer of the query's source network (`dns_views`, ours) or the
//!   `dns_viewer_*` settings; nodes are not namespaced.
//! - CNAME for aliases: a service whose endpoints all carry the metadata
//!   `dns_cname = "<target name>"` is an alias at its plain name
//!   `<service>.<ns…>`: that name answers one CNAME and nothing else.

pub mod names;
pub mod ratelimit;
pub mod records;
pub mod reply_cache;
pub mod responder;

#[cfg(test)]
mod responder_tests;

use std::net::{IpAddr, SocketAddr};

use crate::catalog::entry::Entry;
use crate::catalog::store::Catalog;
use crate::config::Settings;
use crate::time::Instant;

pub use names::{decode_node_label, encode_node_id, NodeLabelError};
pub use ratelimit::{RateLimitConfig, RateLimiter, Verdict};
use reply_cache::{Epoch, ReplyCache};
pub use responder::{answer, limited_reply, respond, Reply};

/// Which socket a query arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DnsTransport {
    /// A datagram: replies are bounded by 512 bytes or the EDNS size.
    Udp,
    /// A TCP stream with 2-byte length framing: replies up to 65535 bytes.
    Tcp,
}

/// Who is asking, for scope and policy: the same viewer every other path
/// uses (a DNS query carries no identity, so it comes from the source
/// network's view or the `dns_viewer_*` settings).
pub use crate::identity::Viewer;

/// An IP network `addr/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a host route).
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("expected an IP network like 10.0.0.0/8, got {text:?}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("prefix length must be 0..={max}, got {text:?}"))?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }

    /// Prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` lies in this network (IPv4-mapped IPv6 addresses count
    /// as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// A viewer for queries from one source network (`dns_views`, ours).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsView {
    /// Source network.
    pub network: Cidr,
    /// Viewer cluster; `None` = the default viewer's.
    pub cluster_id: Option<String>,
    /// Viewer tenant; `None` = the default viewer's.
    pub tenant_id: Option<String>,
}

/// Everything the responder needs from the settings, computed once.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Zones, most specific first.
    pub zones: Vec<names::Zone>,
    /// Answer names outside every zone (the whole name relative).
    pub allow_external_names: bool,
    /// TTL clamp, whole seconds (`min` ≥ 1, `max` ≥ `min`).
    pub min_ttl: u32,
    /// Upper TTL clamp.
    pub max_ttl: u32,
    /// TTL and MINIMUM of the synthetic SOA: how long resolvers cache
    /// NXDOMAIN / NODATA (RFC 2308).
    pub negative_ttl: u32,
    /// Largest UDP reply with EDNS (1232 is the common safe value).
    pub max_udp_payload: u16,
    /// This node's id, for `local` scope.
    pub node_id: String,
    /// The viewer of queries no view matches.
    pub default_viewer: Viewer,
    /// Viewers per source network (most specific match wins).
    pub views: Vec<DnsView>,
    /// Addresses `ns.<zone>` answers with (the gateway's own, when known).
    pub nameserver_addrs: Vec<IpAddr>,
    /// Per-source rate limit.
    pub rate_limit: RateLimitConfig,
}

/// Default EDNS UDP payload cap (the DNS flag day 2020 value).
pub const DEFAULT_MAX_UDP_PAYLOAD: u16 = 1232;

impl DnsConfig {
    /// Derives the configuration from (normalised) settings, `dns_views`
    /// included (normalisation has checked their networks; one that still
    /// does not parse is skipped rather than widened).
    pub fn from_settings(settings: &Settings, node_id: &str) -> DnsConfig {
        let views = settings
            .dns_views
            .iter()
            .filter_map(|v| {
                Some(DnsView {
                    network: Cidr::parse(&v.network).ok()?,
                    cluster_id: v.cluster_id.clone(),
                    tenant_id: v.tenant_id.clone(),
                })
            })
            .collect();
        // `int()` truncation of the bounds, as MPREG does when it starts.
        let secs = |v: f64| {
            if v.is_finite() && v > 0.0 {
                v.min(f64::from(u32::MAX)) as u32
            } else {
                0
            }
        };
        let min_ttl = secs(settings.dns_min_ttl_seconds).max(1);
        let max_ttl = secs(settings.dns_max_ttl_seconds).max(min_ttl);
        let listen = settings
            .dns_listen_host
            .as_deref()
            .unwrap_or(&settings.host);
        let nameserver_addrs = names::ip_literal(listen)
            .filter(|ip| !ip.is_unspecified())
            .into_iter()
            .collect();
        DnsConfig {
            zones: names::parse_zones(&settings.dns_zones),
            allow_external_names: settings.dns_allow_external_names,
            min_ttl,
            max_ttl,
            negative_ttl: min_ttl,
            max_udp_payload: DEFAULT_MAX_UDP_PAYLOAD,
            node_id: node_id.to_string(),
            default_viewer: Viewer::new(
                settings
                    .dns_viewer_cluster_id
                    .clone()
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| settings.cluster_id.clone()),
                settings
                    .dns_viewer_tenant_id
                    .clone()
                    .filter(|t| !t.is_empty())
                    .or_else(|| {
                        settings
                            .discovery_tenant_mode
                            .then(|| settings.discovery_tenant_default_id.clone())
                            .flatten()
                    }),
            ),
            views,
            nameserver_addrs,
            rate_limit: RateLimitConfig {
                queries_per_second: settings.dns_rate_limit_queries_per_second,
                // An empty bucket would refuse every query of a limited source.
                burst: settings.dns_rate_limit_burst.max(1.0),
                ..RateLimitConfig::default()
            },
        }
    }

    /// The viewer of a query from `src`: the most specific matching view
    /// (ties: the first configured), else the default viewer.
    pub fn viewer_for(&self, src: IpAddr) -> Viewer {
        let mut best: Option<&DnsView> = None;
        for v in &self.views {
            if v.network.contains(src)
                && best.is_none_or(|b| v.network.prefix() > b.network.prefix())
            {
                best = Some(v);
            }
        }
        match best {
            Some(v) => Viewer::new(
                v.cluster_id
                    .clone()
                    .unwrap_or_else(|| self.default_viewer.cluster.clone()),
                v.tenant_id
                    .clone()
                    .or_else(|| self.default_viewer.tenant.clone()),
            ),
            None => self.default_viewer.clone(),
        }
    }
}

/// Gateway counters (for monitoring).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsStats {
    /// Queries received (both transports).
    pub queries: u64,
    /// Queries over UDP.
    pub udp_queries: u64,
    /// Queries over TCP.
    pub tcp_queries: u64,
    /// Replies with NOERROR and at least one answer.
    pub answered: u64,
    /// NODATA replies (NOERROR, empty answer).
    pub nodata: u64,
    /// NXDOMAIN replies.
    pub nxdomain: u64,
    /// REFUSED replies (outside the zones, class, zone transfer, rate limit).
    pub refused: u64,
    /// FORMERR replies and undecodable datagrams.
    pub formerr: u64,
    /// NOTIMP replies.
    pub notimp: u64,
    /// Other error replies (BADVERS, SERVFAIL).
    pub other_errors: u64,
    /// Replies sent with TC=1.
    pub truncated: u64,
    /// Queries sent no reply (responses, garbage, rate-limit drops).
    pub dropped: u64,
    /// Queries over the per-source rate limit.
    pub rate_limited: u64,
    /// Queries answered from the reply cache (counted in the rcode
    /// counters as well).
    pub cache_hits: u64,
}

/// The gateway state a node keeps: configuration, rate limiter, counters,
/// replies to repeated queries.
#[derive(Debug, Clone)]
pub struct Gateway {
    config: DnsConfig,
    limiter: RateLimiter,
    stats: DnsStats,
    replies: ReplyCache,
}

impl Gateway {
    /// A gateway with this configuration; `seed` seeds the reply cache's
    /// key hashing.
    pub fn new(config: DnsConfig, seed: u64) -> Gateway {
        Gateway {
            limiter: RateLimiter::new(config.rate_limit),
            config,
            stats: DnsStats::default(),
            replies: ReplyCache::new(seed),
        }
    }

    /// Forgets every cached reply (the namespace policy was replaced by
    /// one whose revision may repeat an earlier one's).
    pub fn forget_replies(&mut self) {
        self.replies.clear();
    }

    /// The configuration.
    pub fn config(&self) -> &DnsConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> &DnsStats {
        &self.stats
    }

    /// Answers one query from `src`: rate limit, viewer of the source
    /// network, then the reply cache ([`reply_cache`]) or [`respond`] at the
    /// whole second of `wall`. `visible` is the namespace policy and
    /// `policy_revision` must change whenever it does (cached replies are
    /// kept while the catalog's generation, the revision and the second
    /// stay). Returns the reply bytes; empty means "send nothing" (the
    /// runtime then just forgets the query).
    #[allow(clippy::too_many_arguments)]
    pub fn handle(
        &mut self,
        mono: Instant,
        wall: f64,
        src: SocketAddr,
        transport: DnsTransport,
        bytes: &[u8],
        catalog: &Catalog,
        visible: &dyn Fn(&Viewer, &Entry) -> bool,
        policy_revision: u64,
    ) -> Vec<u8> {
        self.stats.queries += 1;
        match transport {
            DnsTransport::Udp => self.stats.udp_queries += 1,
            DnsTransport::Tcp => self.stats.tcp_queries += 1,
        }
        let verdict = self.limiter.check(src.ip(), mono);
        if verdict != Verdict::Allow {
            self.stats.rate_limited += 1;
            let reply = limited_reply(bytes, transport, verdict);
            match (&reply, transport) {
                (None, _) => self.stats.dropped += 1,
                (Some(_), DnsTransport::Udp) => self.stats.truncated += 1,
                (Some(_), DnsTransport::Tcp) => self.stats.refused += 1,
            }
            return reply.unwrap_or_default();
        }
        let viewer = self.config.viewer_for(src.ip());
        // Whole seconds: TTLs and the SOA serial are whole seconds anyway,
        // and it makes a reply the same all through its second (cacheable).
        let second = if wall.is_finite() { wall.floor() } else { wall };
        let epoch = Epoch {
            catalog: catalog.generation(),
            policy: policy_revision,
            second: second as i64,
        };
        let tcp = transport == DnsTransport::Tcp;
        let reply = match self.replies.get(epoch, bytes, tcp, &viewer) {
            Some(hit) => {
                self.stats.cache_hits += 1;
                hit
            }
            None => {
                let entry_visible = |e: &Entry| visible(&viewer, e);
                let reply = respond(
                    bytes,
                    transport,
                    &viewer,
                    catalog,
                    &self.config,
                    second,
                    &entry_visible,
                );
                self.replies.put(epoch, bytes, tcp, &viewer, &reply);
                reply
            }
        };
        self.count(&reply);
        reply.bytes.unwrap_or_default()
    }

    /// Periodic housekeeping (forget idle rate-limit buckets).
    pub fn prune(&mut self, mono: Instant) {
        self.limiter.prune(mono);
    }

    fn count(&mut self, reply: &Reply) {
        use hickory_proto::op::ResponseCode as R;
        let s = &mut self.stats;
        match reply.rcode {
            None => s.dropped += 1,
            Some(R::NoError) if reply.answers > 0 => s.answered += 1,
            Some(R::NoError) => s.nodata += 1,
            Some(R::NXDomain) => s.nxdomain += 1,
            Some(R::Refused) => s.refused += 1,
            Some(R::FormErr) => s.formerr += 1,
            Some(R::NotImp) => s.notimp += 1,
            Some(_) => s.other_errors += 1,
        }
        if reply.truncated {
            s.truncated += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DnsViewConfig;

    #[test]
    fn cidr_matching() {
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:1::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.1")
            .unwrap()
            .contains("10.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("nope/8").is_err());
    }

    #[test]
    fn viewer_per_source_network_longest_prefix() {
        let s = Settings {
            cluster_id: "home".into(),
            dns_viewer_tenant_id: Some("t0".into()),
            ..Default::default()
        };
        let mut s = s;
        s.dns_views = vec![
            DnsViewConfig {
                network: "10.0.0.0/8".into(),
                cluster_id: Some("wide".into()),
                tenant_id: None,
            },
            DnsViewConfig {
                network: " 10.1.0.0/16".into(),
                cluster_id: None,
                tenant_id: Some("narrow".into()),
            },
        ];
        let s = s.normalized().expect("valid views");
        let cfg = DnsConfig::from_settings(&s, "ws://127.0.0.1:1");
        let v = |ip: &str| cfg.viewer_for(ip.parse().unwrap());
        assert_eq!(v("192.0.2.1"), Viewer::new("home", Some("t0".into())));
        assert_eq!(v("10.9.0.1").cluster, "wide");
        assert_eq!(v("10.9.0.1").tenant.as_deref(), Some("t0"));
        assert_eq!(v("10.1.0.1").cluster, "home");
        assert_eq!(v("10.1.0.1").tenant.as_deref(), Some("narrow"));
    }

    #[test]
    fn config_from_settings() {
        let mut s = Settings {
            dns_min_ttl_seconds: 2.9,
            dns_max_ttl_seconds: 1.0,
            dns_viewer_cluster_id: Some("viewers".into()),
            dns_zones: vec!["mpreg".into(), "svc.corp".into()],
            ..Default::default()
        };
        let cfg = DnsConfig::from_settings(&s, "n");
        assert_eq!((cfg.min_ttl, cfg.max_ttl), (2, 2));
        assert_eq!(cfg.default_viewer.cluster, "viewers");
        assert_eq!(cfg.zones[0].name, "svc.corp");
        assert_eq!(
            cfg.nameserver_addrs,
            vec!["127.0.0.1".parse::<IpAddr>().unwrap()]
        );
        s.host = "0.0.0.0".into();
        assert!(DnsConfig::from_settings(&s, "n")
            .nameserver_addrs
            .is_empty());
    }
}
