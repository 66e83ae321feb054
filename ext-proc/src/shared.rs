//! State shared by every replica of the gateway, for budgets and rate limits that hold when
//! several Envoys (each with its sidecar) serve the same callers.
//!
//! - [`postgres`]: budget and token-limit **holds** in PostgreSQL (the usage store's
//!   database). A call holds its maximum on every counter in one statement, all or none,
//!   and settles the actual amount when it ends; a crashed replica's holds are given back
//!   once its heartbeat is older than the hold expiry.
//! - [`redis`]: request-rate counters in Redis, one atomic script per call.
//!
//! Without them, [`crate::budgets`] and [`crate::limits`] count per replica. When a shared
//! backend cannot answer, calls it would decide are refused ([`FailureMode::Closed`], the
//! default) or let through unchecked ([`FailureMode::Open`]).

pub mod postgres;
pub mod redis;

use std::time::Duration;

/// What a call whose budget or limit cannot be checked gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FailureMode {
    /// A JSON 503 `shared_state_unavailable`; nothing is forwarded.
    Closed,
    /// Forwarded unchecked (and counted in `aigw_shared_state_errors_total`).
    Open,
}

/// The shared backends this replica uses (set once at start).
#[derive(Clone)]
pub struct SharedState {
    pub postgres: Option<postgres::Counters>,
    pub redis: Option<redis::RequestCounters>,
    pub failure: FailureMode,
}

/// The most a budget or limit decision waits for a shared backend before it counts as down.
/// Redis and PostgreSQL together stay under Envoy's ext_proc `message_timeout` (0.5 s), so the caller gets our JSON 503
/// (or, failing open, the upstream's answer) rather than Envoy's 504.
pub const DECISION_TIMEOUT: Duration = Duration::from_millis(200);

/// A shared backend did not answer.
#[derive(Debug, thiserror::Error)]
#[error("{backend}: {reason}")]
pub struct Unavailable {
    pub backend: &'static str,
    pub reason: String,
}

impl Unavailable {
    pub fn new(backend: &'static str, reason: impl std::fmt::Display) -> Self {
        Self {
            backend,
            reason: reason.to_string(),
        }
    }
}
