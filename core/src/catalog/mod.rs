//! The discovery catalog: entry data model, the namespace rule, and the
//! indexed store every reader goes through (DESIGN.md §3: one catalog, one
//! index, one namespace rule).
//!
//! - [`scope`]: `local | zone | region | global`, request vs entry parsing.
//! - [`namespace`]: the dot-boundary namespace rule and AMQP topic patterns.
//! - [`entry`]: the seven entry kinds with MPREG's JSON shape, their keys.
//! - [`index`]: sort keys (MPREG output order, pagination cursors).
//! - [`store`]: [`Catalog`], the store with its indexes and MPREG's register
//!   rules.
//!
//! Everything here is sans-IO: time is always a `now: f64` argument (Unix
//! wall seconds), never read from a clock.

pub mod entry;
mod fields;
pub mod index;
pub mod namespace;
pub mod scope;
pub mod store;
mod transport;

#[cfg(test)]
mod testutil;

pub use entry::{
    CacheNodeProfile, CacheRoleEntry, Entry, EntryKey, EntryKind, FunctionEndpoint,
    FunctionIdentity, GeoCoordinates, MetadataValue, NodeDescriptor, QueueEndpoint, QueueHealth,
    ServiceEndpoint, TopicSubscription, TransportEndpoint, UnsupportedEntryType,
    DEFAULT_TTL_SECONDS, INTERNAL_CONNECTION,
};
pub use index::{SortKey, SortKeyError};
pub use namespace::{
    name_namespace, topic_matches, topic_pattern_prefix, NamespaceFilter, TopicPattern,
};
pub use scope::{visible_at, Scope, ScopeError};
pub use store::{Catalog, CatalogError, DnsSuffix, InNamespace, Upsert};
