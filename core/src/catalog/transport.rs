//! Transport endpoints advertised by a node (`fabric.md` §1.2).
//!
//! The wire carries a derived `endpoint` URL next to the four parts. We store
//! only the parts (so they can never disagree) and derive the URL when
//! serialising; when decoding, parts missing from the object are recovered
//! from `endpoint`, as MPREG does.

use std::fmt;

use serde::de::Deserializer;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Serialize, Serializer};

/// One way to reach a node. Ordered by `(connection_type, protocol, host,
/// port)`, the order MPREG sorts a node's endpoint list in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransportEndpoint {
    /// `internal` for everything a stock server advertises.
    pub connection_type: String,
    /// URL scheme: `ws`, `wss`, `tcp`, ...
    pub protocol: String,
    /// Host name or IP literal (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

/// The `connection_type` a server uses for its own URLs.
pub const INTERNAL_CONNECTION: &str = "internal";

impl TransportEndpoint {
    /// An endpoint from its parts.
    pub fn new(
        connection_type: impl Into<String>,
        protocol: impl Into<String>,
        host: impl Into<String>,
        port: u16,
    ) -> TransportEndpoint {
        TransportEndpoint {
            connection_type: connection_type.into(),
            protocol: protocol.into(),
            host: host.into(),
            port,
        }
    }

    /// Parses `scheme://host:port[/path]` into an endpoint; `None` unless the
    /// URL has a scheme, a host and a port (the servers' rule for advertised
    /// URLs).
    pub fn from_url(connection_type: impl Into<String>, url: &str) -> Option<TransportEndpoint> {
        let (protocol, host, port) = split_url(url)?;
        Some(TransportEndpoint::new(
            connection_type,
            protocol,
            host,
            port?,
        ))
    }

    /// The derived URL `protocol://host:port`. IPv6 hosts are bracketed so
    /// the URL parses back (MPREG's f-string leaves them bare).
    pub fn endpoint(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("{}://[{}]:{}", self.protocol, self.host, self.port)
        } else {
            format!("{}://{}:{}", self.protocol, self.host, self.port)
        }
    }
}

impl fmt::Display for TransportEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.endpoint())
    }
}

/// Splits a URL into (scheme, host, port). Host brackets are removed. Returns
/// `None` without a scheme or host; the port is `None` when absent or invalid.
fn split_url(url: &str) -> Option<(String, String, Option<u16>)> {
    let (scheme, rest) = url.trim().split_once("://")?;
    if scheme.is_empty() {
        return None;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    // Drop any userinfo.
    let authority = authority.rsplit('@').next().unwrap_or(authority);
    let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
        let (host, after) = inner.split_once(']')?;
        let port = after.strip_prefix(':').and_then(|p| p.parse::<u16>().ok());
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, port.parse::<u16>().ok()),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    Some((scheme.to_string(), host.to_string(), port))
}

impl Serialize for TransportEndpoint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("TransportEndpoint", 5)?;
        s.serialize_field("connection_type", &self.connection_type)?;
        s.serialize_field("protocol", &self.protocol)?;
        s.serialize_field("host", &self.host)?;
        s.serialize_field("port", &self.port)?;
        s.serialize_field("endpoint", &self.endpoint())?;
        s.end()
    }
}

impl<'de> Deserialize<'de> for TransportEndpoint {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            #[serde(default)]
            connection_type: Option<String>,
            #[serde(default)]
            protocol: Option<String>,
            #[serde(default)]
            host: Option<String>,
            #[serde(default)]
            port: Option<u16>,
            #[serde(default)]
            endpoint: Option<String>,
        }
        let raw = Raw::deserialize(deserializer)?;
        let parsed = raw.endpoint.as_deref().and_then(split_url);
        let (url_protocol, url_host, url_port) = match parsed {
            Some((p, h, port)) => (Some(p), Some(h), port),
            None => (None, None, None),
        };
        let nonempty = |s: Option<String>| s.filter(|s| !s.is_empty());
        let protocol = nonempty(raw.protocol)
            .or(url_protocol)
            .ok_or_else(|| serde::de::Error::custom("transport endpoint without protocol"))?;
        let host = nonempty(raw.host)
            .or(url_host)
            .ok_or_else(|| serde::de::Error::custom("transport endpoint without host"))?;
        let port = raw
            .port
            .or(url_port)
            .ok_or_else(|| serde::de::Error::custom("transport endpoint without port"))?;
        Ok(TransportEndpoint {
            connection_type: raw
                .connection_type
                .unwrap_or_else(|| INTERNAL_CONNECTION.to_string()),
            protocol,
            host,
            port,
        })
    }
}

/// Serde `deserialize_with` for endpoint lists: sorted and deduplicated.
pub(crate) fn endpoint_list<'de, D>(deserializer: D) -> Result<Vec<TransportEndpoint>, D::Error>
where
    D: Deserializer<'de>,
{
    let mut list = Option::<Vec<TransportEndpoint>>::deserialize(deserializer)?.unwrap_or_default();
    list.sort();
    list.dedup();
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_and_round_trip() {
        let ep = TransportEndpoint::new("internal", "ws", "127.0.0.1", 9001);
        let json = serde_json::to_string(&ep).unwrap();
        assert_eq!(
            json,
            r#"{"connection_type":"internal","protocol":"ws","host":"127.0.0.1","port":9001,"endpoint":"ws://127.0.0.1:9001"}"#
        );
        let back: TransportEndpoint = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ep);
    }

    #[test]
    fn missing_parts_come_from_endpoint() {
        let ep: TransportEndpoint =
            serde_json::from_str(r#"{"endpoint":"wss://node.example:443/path"}"#).unwrap();
        assert_eq!(
            ep,
            TransportEndpoint::new("internal", "wss", "node.example", 443)
        );
        let ep: TransportEndpoint =
            serde_json::from_str(r#"{"endpoint":"ws://[::1]:9000","connection_type":"x"}"#)
                .unwrap();
        assert_eq!(ep.host, "::1");
        assert_eq!(ep.endpoint(), "ws://[::1]:9000");
        assert!(serde_json::from_str::<TransportEndpoint>(r#"{"endpoint":"nonsense"}"#).is_err());
        assert!(
            serde_json::from_str::<TransportEndpoint>(r#"{"host":"h","protocol":"ws"}"#).is_err()
        );
    }

    #[test]
    fn from_url_requires_scheme_host_port() {
        assert!(TransportEndpoint::from_url("internal", "ws://h:1").is_some());
        assert!(TransportEndpoint::from_url("internal", "ws://h").is_none());
        assert!(TransportEndpoint::from_url("internal", "h:1").is_none());
        assert!(TransportEndpoint::from_url("internal", "ws://:1").is_none());
        assert!(TransportEndpoint::from_url("internal", "ws://h:99999").is_none());
    }
}
