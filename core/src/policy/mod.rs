//! Namespace policy: who may see, publish and export which namespaces
//! (`discovery_logic.md` §2, `client_protocol.md` §2.3, §3.11–3.16).
//!
//! - [`rules`]: the rule data (MPREG's fields and wire shape) and lenient
//!   parsing of rules sent over RPC;
//! - [`validate`]: validation and normalisation, one reason per problem, at
//!   config load and on validate / apply;
//! - [`engine`]: the immutable [`PolicyEngine`] and its decisions
//!   (`allows_viewer`, `allows_source`, `allows_summary_export`), longest
//!   match on the one dot-boundary namespace rule;
//! - [`access`]: per-item visibility of catalog entries for one request's
//!   viewer (every reader uses it);
//! - [`history`]: the append-only [`PolicyHistory`] of enforced versions
//!   (apply, rollback, persistence) with the policy audit, owning the live
//!   engine;
//! - [`rpc`]: the RPC handlers (`namespace_status`, `namespace_policy_*`,
//!   `discovery_access_audit`) and the `/discovery/policy` body.
//!
//! What we do differently from MPREG, on purpose: `svc.prod.*` rules govern
//! the `svc.prod` subtree (MPREG matches them literally, so they never
//! match); unknown scopes, wildcard namespaces, typos in field names and
//! non-finite window times are rejected; rules are validated at start-up too;
//! `namespace_status` never shows a rule to a viewer it denies; every
//! enforced version is kept for rollback and audit.

pub mod access;
pub mod engine;
pub mod history;
pub mod rpc;
pub mod rules;
pub mod validate;

pub use access::Access;
pub use engine::{Decision, PolicyEngine, Reason};
pub use history::{
    HistoryError, PolicyAuditEntry, PolicyHistory, PolicyProposal, PolicyVersion, RollbackError,
    VersionEvent,
};
pub use rules::{rules_from_json, CutoverWindow, Rule};
pub use validate::{compile_rules, validate_rules, validate_settings};
