//! Who is asking: connection identity from upgrade headers, the effective
//! viewer of each request, and the admin gate (`client_protocol.md` §1.9,
//! `discovery_logic.md` §5, DESIGN.md §5).
//!
//! MPREG binds a *tenant* to a connection and authorises nothing. We keep its
//! tenant binding and add roles:
//!
//! - **Credentials configured** (`discovery_tenant_credentials` non-empty): a
//!   connection presenting a known bearer token (`authorization: Bearer x`; a
//!   value without whitespace is itself the token) or API key (`x-api-key`) is
//!   *authenticated* with that credential's role (`reader` or `admin`) and, in
//!   tenant mode, bound to its tenant. Anyone else is an unauthenticated
//!   `reader`. The trusted tenant header is never consulted, as in MPREG.
//!   Commands that change state ([`requires_admin`]) need the `admin` role.
//! - **No credentials**: nobody is authenticated and everybody is `admin`
//!   (MPREG compatibility: it authorises nothing). In tenant mode the trusted
//!   header (`discovery_tenant_header`, first comma-separated item) binds the
//!   tenant.
//!
//! Tokens are compared as SHA-256 digests in constant time, over every
//! configured credential, so neither the token's content nor its length nor
//! which credential matched shows in the timing.

use std::net::IpAddr;

use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::wire::client::RpcError;

/// What a connection may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Discovery reads only.
    Reader,
    /// Reads plus policy apply / rollback, resync and registration.
    Admin,
}

impl Role {
    /// The settings / wire name (`reader`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Admin => "admin",
        }
    }

    /// Parses a settings role name (trimmed, case-insensitive).
    pub fn parse(raw: &str) -> Option<Role> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "reader" => Some(Role::Reader),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// The identity bound to a connection when it is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnIdentity {
    /// Tenant bound to the connection (credential in tenant mode, or the
    /// trusted header when no credentials are configured). Always `None`
    /// outside tenant mode.
    pub tenant: Option<String>,
    /// What the connection may do.
    pub role: Role,
    /// The connection presented a configured credential.
    pub authenticated: bool,
    /// The matched credential's `tenant_id`, whatever the tenant mode: the
    /// stable name of an authenticated principal (rate-limit key, policy
    /// audit actor). `None` when not authenticated.
    pub principal: Option<String>,
}

impl ConnIdentity {
    /// An unauthenticated connection with no tenant and the given role.
    pub fn anonymous(role: Role) -> Self {
        ConnIdentity {
            tenant: None,
            role,
            authenticated: false,
            principal: None,
        }
    }

    /// The rate-limit viewer id of this connection (ours; MPREG keys every
    /// anonymous client of a node as `cluster:<own cluster>`, one shared
    /// bucket): `tenant:<principal>` when authenticated, `tenant:<tenant>`
    /// for a tenant bound by the trusted header, else `anonymous` (build it
    /// with [`anonymous_id`] from the remote address, or `cluster:<peer>` for
    /// a fabric peer). A tenant *claimed* in a request (`viewer_tenant_id`)
    /// never selects the bucket, so clients cannot pick fresh budgets.
    pub fn rate_limit_id(&self, anonymous: &str) -> String {
        match (&self.principal, &self.tenant) {
            (Some(p), _) if self.authenticated => format!("tenant:{p}"),
            (_, Some(t)) => format!("tenant:{t}"),
            _ => anonymous.to_string(),
        }
    }
}

/// The rate-limit id of an anonymous client: its remote IP (`addr:<ip>`, so a
/// reconnect does not get a fresh budget), else its connection (`conn:<id>`).
pub fn anonymous_id(peer_ip: Option<IpAddr>, conn: u64) -> String {
    match peer_ip {
        Some(ip) => format!("addr:{ip}"),
        None => format!("conn:{conn}"),
    }
}

/// The effective viewer of one request: policy, audit and MPREG's viewer id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Viewer {
    /// Viewer cluster: the node's own cluster for client connections, the
    /// peer's for fabric-forwarded requests.
    pub cluster: String,
    /// Effective tenant, if any.
    pub tenant: Option<String>,
}

impl Viewer {
    /// A viewer of `cluster` with an optional tenant (an empty tenant counts
    /// as none).
    pub fn new(cluster: impl Into<String>, tenant: Option<String>) -> Self {
        Viewer {
            cluster: cluster.into(),
            tenant: tenant.filter(|t| !t.is_empty()),
        }
    }

    /// MPREG's viewer id: `tenant:<id>` if a tenant applies, else
    /// `cluster:<id>`.
    pub fn id(&self) -> String {
        match &self.tenant {
            Some(t) => format!("tenant:{t}"),
            None => format!("cluster:{}", self.cluster),
        }
    }
}

/// Credential schemes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Bearer,
    ApiKey,
}

struct Credential {
    tenant_id: String,
    scheme: Scheme,
    role: Role,
    digest: [u8; 32],
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("tenant_id", &self.tenant_id)
            .field("scheme", &self.scheme)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// The identity settings, compiled once (tokens kept only as digests).
#[derive(Debug)]
pub struct IdentityConfig {
    tenant_mode: bool,
    allow_request_override: bool,
    default_tenant: Option<String>,
    header: Option<String>,
    credentials: Vec<Credential>,
}

impl IdentityConfig {
    /// Compiles `discovery_tenant_*` from (normalised) settings. Credentials
    /// with an unknown scheme or an empty token are skipped (normalised
    /// settings have none); an unknown role reads as `reader`.
    pub fn from_settings(settings: &Settings) -> Self {
        let credentials = settings
            .discovery_tenant_credentials
            .iter()
            .filter_map(|c| {
                let scheme = match c.scheme.trim().to_ascii_lowercase().as_str() {
                    "bearer" => Scheme::Bearer,
                    "api-key" => Scheme::ApiKey,
                    _ => return None,
                };
                let token = c.token.trim();
                if token.is_empty() {
                    return None;
                }
                Some(Credential {
                    tenant_id: c.tenant_id.trim().to_string(),
                    scheme,
                    role: Role::parse(&c.role).unwrap_or(Role::Reader),
                    digest: digest(token),
                })
            })
            .collect();
        let clean = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
        };
        IdentityConfig {
            tenant_mode: settings.discovery_tenant_mode,
            allow_request_override: settings
                .discovery_tenant_allow_request_override
                .unwrap_or(settings.discovery_tenant_credentials.is_empty()),
            default_tenant: clean(&settings.discovery_tenant_default_id),
            header: clean(&settings.discovery_tenant_header).map(|h| h.to_ascii_lowercase()),
            credentials,
        }
    }

    /// True when credentials are configured: authentication and the admin
    /// gate are on.
    pub fn credentials_configured(&self) -> bool {
        !self.credentials.is_empty()
    }

    /// True in tenant mode.
    pub fn tenant_mode(&self) -> bool {
        self.tenant_mode
    }

    /// The identity of a connection from its upgrade headers (names
    /// lower-cased; the first occurrence of a name counts).
    pub fn identify(&self, headers: &[(String, String)]) -> ConnIdentity {
        if self.credentials.is_empty() {
            let tenant = match (&self.header, self.tenant_mode) {
                (Some(name), true) => header(headers, name).and_then(|v| {
                    let first = v.split(',').next().unwrap_or("").trim();
                    (!first.is_empty()).then(|| first.to_string())
                }),
                _ => None,
            };
            return ConnIdentity {
                tenant,
                ..ConnIdentity::anonymous(Role::Admin)
            };
        }
        let matched = header(headers, "authorization")
            .and_then(bearer_token)
            .and_then(|token| self.find(Scheme::Bearer, token))
            .or_else(|| {
                header(headers, "x-api-key")
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .and_then(|token| self.find(Scheme::ApiKey, token))
            });
        match matched {
            Some(c) => ConnIdentity {
                tenant: self.tenant_mode.then(|| c.tenant_id.clone()),
                role: c.role,
                authenticated: true,
                principal: Some(c.tenant_id.clone()),
            },
            None => ConnIdentity::anonymous(Role::Reader),
        }
    }

    /// The credential of `scheme` whose token is `token`, comparing against
    /// every credential in constant time.
    fn find(&self, scheme: Scheme, token: &str) -> Option<&Credential> {
        let presented = digest(token);
        let mut found = None;
        for c in &self.credentials {
            let same = constant_time_eq(&c.digest, &presented) & (c.scheme == scheme);
            if same && found.is_none() {
                found = Some(c);
            }
        }
        found
    }

    /// The effective tenant of a request (§1.9 plus ours): the connection's
    /// tenant; else, in tenant mode, the request's `viewer_tenant_id` if
    /// `discovery_tenant_allow_request_override` is on and the connection is
    /// not authenticated; else `discovery_tenant_default_id`. Never a tenant
    /// outside tenant mode.
    pub fn effective_tenant(&self, conn: &ConnIdentity, requested: Option<&str>) -> Option<String> {
        if !self.tenant_mode {
            return None;
        }
        if let Some(t) = conn.tenant.as_deref().filter(|t| !t.is_empty()) {
            return Some(t.to_string());
        }
        let requested = requested.map(str::trim).filter(|t| !t.is_empty());
        if let Some(t) = requested {
            if self.allow_request_override && !conn.authenticated {
                return Some(t.to_string());
            }
        }
        self.default_tenant.clone()
    }

    /// The effective viewer of a request on a connection whose viewer cluster
    /// is `cluster` (the node's own cluster for clients, the peer's for
    /// fabric-forwarded requests; MPREG ignores the request's
    /// `viewer_cluster_id` on the network and so do we).
    pub fn viewer(
        &self,
        conn: &ConnIdentity,
        cluster: &str,
        requested_tenant: Option<&str>,
    ) -> Viewer {
        Viewer::new(cluster, self.effective_tenant(conn, requested_tenant))
    }

    /// The admin gate: `Ok` unless credentials are configured, `fun`
    /// [`requires_admin`] and the connection is not an admin; then error 403
    /// `discovery_access_denied`.
    pub fn authorize(&self, conn: &ConnIdentity, fun: &str) -> Result<(), RpcError> {
        if !self.credentials_configured() || !requires_admin(fun) || conn.role == Role::Admin {
            return Ok(());
        }
        let who = if conn.authenticated {
            "the connection's credential has the reader role"
        } else {
            "the connection presented no valid credential"
        };
        Err(RpcError::access_denied(format!(
            "{fun} requires an admin credential ({who})"
        )))
    }
}

/// Commands that change node state or reveal every policy rule: they need the
/// admin role when credentials are configured.
pub const ADMIN_COMMANDS: &[&str] = &[
    "catalog_register",
    "catalog_unregister",
    "dns_register",
    "dns_unregister",
    "namespace_policy_apply",
    "namespace_policy_export",
    "namespace_policy_rollback",
    "resolver_resync",
];

/// Whether `fun` needs the admin role when credentials are configured.
pub fn requires_admin(fun: &str) -> bool {
    ADMIN_COMMANDS.contains(&fun)
}

/// The first value of header `name` (already lower-cased by the runtime;
/// compared case-insensitively anyway).
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The bearer token of an `authorization` value: `Bearer <token>` (scheme
/// case-insensitive), or a bare value without whitespace. Other schemes
/// yield nothing.
fn bearer_token(value: &str) -> Option<&str> {
    let value = value.trim();
    let token = match value.split_once(char::is_whitespace) {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        Some(_) => return None,
        None => value,
    };
    (!token.is_empty()).then_some(token)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Constant-time equality of two byte strings: the time depends only on the
/// lengths, never on where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut diff = 0u8;
    for (x, y) in a.iter().zip(b) {
        diff |= x ^ y;
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TenantCredential;

    fn cred(tenant: &str, token: &str, scheme: &str, role: &str) -> TenantCredential {
        TenantCredential {
            tenant_id: tenant.into(),
            token: token.into(),
            scheme: scheme.into(),
            role: role.into(),
        }
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    fn with_creds() -> Settings {
        Settings {
            discovery_tenant_mode: true,
            discovery_tenant_credentials: vec![
                cred("tenant-a", "token-a", "bearer", "reader"),
                cred("ops", "root-token", "bearer", "admin"),
                cred("tenant-k", "key-k", "api-key", "reader"),
            ],
            ..Default::default()
        }
    }

    #[test]
    fn bearer_forms() {
        let cfg = IdentityConfig::from_settings(&with_creds());
        for value in [
            "Bearer token-a",
            "bearer   token-a ",
            "BEARER token-a",
            "token-a",
        ] {
            let id = cfg.identify(&h(&[("authorization", value)]));
            assert_eq!(id.tenant.as_deref(), Some("tenant-a"), "{value}");
            assert!(id.authenticated);
            assert_eq!(id.role, Role::Reader);
            assert_eq!(id.principal.as_deref(), Some("tenant-a"));
        }
        for value in [
            "Basic token-a",
            "Bearer token-b",
            "Bearer",
            "",
            "Bearer key-k",
        ] {
            let id = cfg.identify(&h(&[("authorization", value)]));
            assert!(!id.authenticated, "{value}");
            assert_eq!(id.tenant, None);
            assert_eq!(id.role, Role::Reader);
        }
        let admin = cfg.identify(&h(&[("authorization", "Bearer root-token")]));
        assert_eq!(admin.role, Role::Admin);
        assert_eq!(admin.tenant.as_deref(), Some("ops"));
    }

    #[test]
    fn api_key_and_fallback() {
        let cfg = IdentityConfig::from_settings(&with_creds());
        let id = cfg.identify(&h(&[("x-api-key", "  key-k ")]));
        assert_eq!(id.tenant.as_deref(), Some("tenant-k"));
        // A bearer credential is not an API key.
        assert!(!cfg.identify(&h(&[("x-api-key", "token-a")])).authenticated);
        // A failing authorization header falls back to the API key.
        let id = cfg.identify(&h(&[
            ("authorization", "Bearer nope"),
            ("x-api-key", "key-k"),
        ]));
        assert_eq!(id.tenant.as_deref(), Some("tenant-k"));
    }

    #[test]
    fn header_mode_only_without_credentials() {
        let s = Settings {
            discovery_tenant_mode: true,
            discovery_tenant_header: Some("x-tenant-id".into()),
            ..Default::default()
        };
        let cfg = IdentityConfig::from_settings(&s);
        let id = cfg.identify(&h(&[("x-tenant-id", " t1 , t2")]));
        assert_eq!(id.tenant.as_deref(), Some("t1"));
        assert!(!id.authenticated);
        assert_eq!(
            id.role,
            Role::Admin,
            "no credentials: MPREG authorises everything"
        );
        assert_eq!(cfg.identify(&h(&[("x-tenant-id", " , t2")])).tenant, None);
        assert_eq!(cfg.identify(&[]).tenant, None);

        // With credentials the trusted header is ignored.
        let mut s = with_creds();
        s.discovery_tenant_header = Some("x-tenant-id".into());
        let cfg = IdentityConfig::from_settings(&s);
        assert_eq!(cfg.identify(&h(&[("x-tenant-id", "t1")])).tenant, None);

        // Outside tenant mode no tenant is bound, but credentials still
        // authenticate (roles).
        let mut s = with_creds();
        s.discovery_tenant_mode = false;
        let cfg = IdentityConfig::from_settings(&s);
        let id = cfg.identify(&h(&[("authorization", "Bearer root-token")]));
        assert_eq!(id.tenant, None);
        assert!(id.authenticated);
        assert_eq!(id.role, Role::Admin);
        assert_eq!(id.principal.as_deref(), Some("ops"));
    }

    #[test]
    fn effective_tenant_rules() {
        // MPREG's test_namespace_policy_tenant_auth_binding: override off.
        let mut s = with_creds();
        s.discovery_tenant_allow_request_override = Some(false);
        let cfg = IdentityConfig::from_settings(&s);
        let bound = cfg.identify(&h(&[("authorization", "token-a")]));
        assert_eq!(
            cfg.effective_tenant(&bound, Some("tenant-b")).as_deref(),
            Some("tenant-a")
        );
        let anon = cfg.identify(&[]);
        assert_eq!(cfg.effective_tenant(&anon, Some("tenant-a")), None);

        // Override on: an unauthenticated connection may claim a tenant.
        s.discovery_tenant_allow_request_override = Some(true);
        let cfg = IdentityConfig::from_settings(&s);
        assert_eq!(
            cfg.effective_tenant(&anon, Some(" tenant-a ")).as_deref(),
            Some("tenant-a")
        );
        assert_eq!(cfg.effective_tenant(&anon, Some("  ")), None);

        // Default tenant as the last resort.
        s.discovery_tenant_allow_request_override = Some(false);
        s.discovery_tenant_default_id = Some("dflt".into());
        let cfg = IdentityConfig::from_settings(&s);
        assert_eq!(
            cfg.effective_tenant(&anon, Some("tenant-a")).as_deref(),
            Some("dflt")
        );
        assert_eq!(cfg.effective_tenant(&anon, None).as_deref(), Some("dflt"));

        // Tenant mode off: never a tenant.
        s.discovery_tenant_mode = false;
        let cfg = IdentityConfig::from_settings(&s);
        assert_eq!(cfg.effective_tenant(&anon, Some("tenant-a")), None);
    }

    #[test]
    fn viewer_ids() {
        // Credentials configured and the override left unset: an
        // unauthenticated claim is ignored.
        let cfg = IdentityConfig::from_settings(&with_creds());
        let anon = cfg.identify(&[]);
        let v = cfg.viewer(&anon, "cluster-a", Some("t9"));
        assert_eq!(v.id(), "cluster:cluster-a");
        let mut s = with_creds();
        s.discovery_tenant_allow_request_override = Some(true);
        let cfg = IdentityConfig::from_settings(&s);
        let v = cfg.viewer(&anon, "cluster-a", Some("t9"));
        assert_eq!(v.id(), "tenant:t9");
        let v = cfg.viewer(&anon, "cluster-a", None);
        assert_eq!(v.id(), "cluster:cluster-a");
        assert_eq!(Viewer::new("c", Some(String::new())).tenant, None);
    }

    #[test]
    fn rate_limit_ids_follow_authentication_not_claims() {
        let cfg = IdentityConfig::from_settings(&with_creds());
        let anon = cfg.identify(&[]);
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        assert_eq!(
            anon.rate_limit_id(&anonymous_id(Some(ip), 3)),
            "addr:10.0.0.7"
        );
        assert_eq!(anon.rate_limit_id(&anonymous_id(None, 3)), "conn:3");
        let authed = cfg.identify(&h(&[("authorization", "token-a")]));
        assert_eq!(authed.rate_limit_id("addr:x"), "tenant:tenant-a");
        let header = ConnIdentity {
            tenant: Some("t1".into()),
            ..ConnIdentity::anonymous(Role::Admin)
        };
        assert_eq!(header.rate_limit_id("addr:x"), "tenant:t1");
    }

    #[test]
    fn admin_gate() {
        let cfg = IdentityConfig::from_settings(&with_creds());
        let reader = cfg.identify(&h(&[("authorization", "token-a")]));
        let admin = cfg.identify(&h(&[("authorization", "root-token")]));
        let anon = cfg.identify(&[]);
        for fun in ADMIN_COMMANDS {
            assert_eq!(cfg.authorize(&reader, fun).unwrap_err().code, 403);
            assert_eq!(cfg.authorize(&anon, fun).unwrap_err().code, 403);
            assert!(cfg.authorize(&admin, fun).is_ok());
        }
        let e = cfg.authorize(&anon, "namespace_policy_apply").unwrap_err();
        assert_eq!(e.message, "discovery_access_denied");
        for fun in [
            "catalog_query",
            "namespace_status",
            "namespace_policy_validate",
            "echo",
        ] {
            assert!(cfg.authorize(&anon, fun).is_ok(), "{fun}");
        }
        // No credentials: MPREG behaviour, everything allowed.
        let open = IdentityConfig::from_settings(&Settings::default());
        let anyone = open.identify(&[]);
        assert!(!open.credentials_configured());
        assert!(open.authorize(&anyone, "namespace_policy_apply").is_ok());
        assert!(open
            .authorize(&ConnIdentity::anonymous(Role::Reader), "dns_register")
            .is_ok());
        assert!(requires_admin("resolver_resync"));
        assert!(!requires_admin("catalog_query"));
    }

    #[test]
    fn constant_time_eq_basics() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn debug_never_shows_tokens() {
        let cfg = IdentityConfig::from_settings(&with_creds());
        let dbg = format!("{cfg:?}");
        assert!(
            !dbg.contains("token-a") && !dbg.contains("root-token"),
            "{dbg}"
        );
    }

    #[test]
    fn role_names() {
        assert_eq!(Role::parse(" ADMIN "), Some(Role::Admin));
        assert_eq!(Role::parse("reader"), Some(Role::Reader));
        assert_eq!(Role::parse("root"), None);
        assert_eq!(Role::Admin.as_str(), "admin");
    }
}
