//! The feed between the sidecar and the filter's fast path.
//!
//! A call the filter can complete alone (a gateway API key, a provider whose credential is a
//! static key, no budget to reserve against) skips the ext_proc round trip, which costs
//! Envoy more than everything else the gateway does. For that the filter needs two things
//! from the sidecar, and the sidecar needs one thing back; all three travel over Envoy's
//! connection to the sidecar (the `aigw_sidecar` cluster), off the request path:
//!
//! - [`SNAPSHOT_PATH`] (GET, polled every [`POLL_INTERVAL_MS`]): a [`Snapshot`] of which
//!   key digests may use which providers, and the upstream credential headers. The sidecar
//!   stays the owner of the secret store, the key table and the access rules; the filter
//!   only holds what the snapshot lists, and drops it when a poll goes unanswered (1 s
//!   timeout) or it is older than [`STALE_AFTER_MS`]; every call then goes through the
//!   sidecar again, which fails closed. Revocations reach the filter within one poll.
//!   It carries the sidecar's live gateway config too: the filter's provider table follows
//!   a reloaded config within one poll.
//! - [`RECORDS_PATH`] (POST): the usage records of fast-path calls, one JSON line each,
//!   batched every [`FLUSH_INTERVAL_MS`]. The sidecar prices and stores them like its own.

use serde::{Deserialize, Serialize};

/// Envoy cluster of the sidecar (the ext_proc cluster).
pub const SIDECAR_CLUSTER: &str = "aigw_sidecar";
/// Routed by the sidecar's gRPC server like a service, so it shares the ext_proc port.
pub const FEED_SERVICE: &str = "aigw.filter.v1.Feed";
pub const SNAPSHOT_PATH: &str = "/aigw.filter.v1.Feed/Snapshot";
pub const RECORDS_PATH: &str = "/aigw.filter.v1.Feed/Records";
/// Query parameter naming the snapshot version the filter has; unchanged → 204.
pub const VERSION_PARAM: &str = "have";

pub const POLL_INTERVAL_MS: u64 = 1000;
pub const STALE_AFTER_MS: u64 = 3000;
pub const FLUSH_INTERVAL_MS: u64 = 100;
/// Records waiting for the sidecar, per VM, past which new calls take the sidecar path
/// (so no record is ever dropped for lack of room).
pub const MAX_PENDING_RECORD_BYTES: usize = 4 << 20;

/// What the fast path may do, as of `version`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Changes whenever anything below does.
    pub version: String,
    pub keys: Vec<FastKey>,
    pub providers: Vec<FastProvider>,
    /// The sidecar's live plugin configuration (JSON): the filter routes by it, so a
    /// config reloaded by the sidecar reaches the filter with the next poll. Empty from a
    /// sidecar that predates it: the filter keeps its own.
    #[serde(default)]
    pub config: String,
}

/// A gateway API key the fast path accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FastKey {
    /// Lower-case hex SHA-256 of the key (the key itself is never sent).
    pub sha256: String,
    pub subject: String,
    pub user: Option<String>,
    pub agent: Option<String>,
    /// Providers this key may use on the fast path: access allows it and no budget applies.
    pub providers: Vec<String>,
}

/// A provider the fast path serves, with the headers that carry its upstream credential.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FastProvider {
    pub name: String,
    /// Set on the upstream request, replacing any value.
    pub set_headers: Vec<(String, String)>,
    /// Set only when the client did not send them (defaults such as `anthropic-version`).
    pub default_headers: Vec<(String, String)>,
}
