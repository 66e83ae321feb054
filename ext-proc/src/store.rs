//! Where usage records go. The request path only ever calls [`RecordSink::submit`], which
//! never blocks and never fails a request: a bounded queue feeds a writer thread that commits
//! in small batches. Backends live in `store/<backend>.rs`: SQLite (the embedded default)
//! and PostgreSQL (shared by many replicas).
//!
//! # Layout
//! - [`UsageStore`]: what a backend does: insert a batch, answer the admin queries. Every
//!   aggregate is computed by the database; Rust only reshapes the aggregated rows.
//! - [`sqlite`]: the default backend, an embedded file in WAL mode, migrated at open.
//! - [`postgres`]: a PostgreSQL database, for many replicas: versioned migrations under an
//!   advisory lock at open, reconnects after the server restarts.
//! - [`sink`]: [`RecordSink`], the bounded queue and its writer thread (batching, retry
//!   with backoff while the store is down, drain at shutdown). It also feeds
//!   [`crate::metrics::Metrics`], so the request path takes no lock.
//! - [`analytics`]: latency and time-to-first-token percentiles and error rates, one SQL
//!   text for both backends.
//! - [`csv`]: CSV exports of a series and of raw records.
//! - [`time`]: UTC days and RFC 3339 timestamps.
//!
//! # Wiring
//! ```no_run
//! # use std::{sync::Arc, time::Duration};
//! # use aigw_ext_proc::{metrics::Metrics, store::{self, sqlite::{SqliteOptions, SqliteStore}}};
//! let store = Arc::new(SqliteStore::open("/var/lib/aigw/usage.db", SqliteOptions::default())?);
//! let metrics = Arc::new(Metrics::default());
//! let sink = store::RecordSink::start(store.clone(), metrics.clone(), store::SinkConfig::default())?;
//! // per request: sink.submit(record);
//! // on SIGTERM, after the gRPC server has stopped:
//! let report = sink.shutdown(Duration::from_secs(5));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod analytics;
pub mod csv;
pub mod postgres;
pub mod sink;
pub mod sqlite;
pub mod time;

pub use sink::{RecordSink, ShutdownReport, SinkConfig, SinkStats};

use crate::mcp::record::ToolCallRecord;
use crate::record::UsageRecord;
use crate::request_log::RequestLog;
use serde::Serialize;
use time::UtcDay;

/// A usage store backend. Methods block (they do I/O): the writer thread calls
/// [`insert_batch`](Self::insert_batch); the admin API calls the queries from
/// `spawn_blocking`.
pub trait UsageStore: Send + Sync + 'static {
    /// A short name for logs: `sqlite`, `postgres`.
    fn backend(&self) -> &'static str;

    /// Inserts all records in one transaction: on error none is kept, and the caller retries
    /// the same batch.
    fn insert_batch(&self, records: &[UsageRecord]) -> Result<(), StoreError>;

    /// Per provider, the `days` UTC days ending with `last_day` (included): totals and one
    /// zero-filled point per day, oldest first. Providers without a record in the window are
    /// left out.
    fn provider_summary(
        &self,
        last_day: UtcDay,
        days: u32,
    ) -> Result<Vec<ProviderSummary>, StoreError>;

    /// Aggregated points, sparse (buckets without records are absent), ordered by bucket
    /// then key. See [`SeriesQuery`].
    fn usage_series(&self, query: &SeriesQuery) -> Result<Vec<SeriesPoint>, StoreError>;

    /// Raw records in `[from, to)`, oldest first, at most `limit`.
    fn records(&self, range: TimeRange, limit: usize) -> Result<Vec<UsageRecord>, StoreError>;

    /// Inserts MCP tool-call records in one transaction (none kept on error).
    fn insert_tool_calls(&self, calls: &[ToolCallRecord]) -> Result<(), StoreError>;

    /// Tool calls in `[from, to)`, newest first, at most `limit`.
    fn tool_calls(&self, range: TimeRange, limit: usize)
        -> Result<Vec<ToolCallRecord>, StoreError>;

    /// Latency, time to first token and errors per provider or model ([`analytics`]): per
    /// bucket of the query's granularity, or over the whole range. Any other grouping
    /// answers nothing.
    fn latency(
        &self,
        query: &SeriesQuery,
        whole_range: bool,
    ) -> Result<Vec<analytics::LatencyPoint>, StoreError>;

    /// Inserts request logs in one transaction (none kept on error).
    fn insert_request_logs(&self, logs: &[RequestLog]) -> Result<(), StoreError>;

    /// Usage records matching `query`, newest first, each with whether a log is stored.
    fn requests(&self, query: &RequestQuery) -> Result<Vec<RequestRow>, StoreError>;

    /// The usage records of one request id (several for a call that fell back), oldest
    /// first, and its log if one is stored.
    fn request(
        &self,
        request_id: &str,
    ) -> Result<(Vec<UsageRecord>, Option<RequestLog>), StoreError>;

    /// Retention: deletes the logs of requests that started before `before_ms`, then the
    /// oldest ones while all that remain weigh more than `max_total_bytes`. Returns how
    /// many were deleted.
    fn prune_request_logs(&self, before_ms: i64, max_total_bytes: u64) -> Result<u64, StoreError>;
}

/// The columns of a request-log row, in [`RequestLog`] order, then `bytes` (both backends).
pub const REQUEST_LOG_COLUMNS: &str = "time_ms, request_id, provider, request_body,
    request_truncated, response_kind, response_body, response_truncated";

/// The Requests page's query: a time range, the usage filters, a status filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestQuery {
    pub range: TimeRange,
    pub filter: SeriesFilter,
    pub status: Option<StatusFilter>,
    pub limit: usize,
}

/// Which upstream statuses a request query keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    /// One status, e.g. `429`.
    Exact(u16),
    /// A class: `2xx` is `Class(2)`.
    Class(u16),
    /// No response (0), or 400 and above.
    Error,
}

impl StatusFilter {
    /// `200`, `4xx`, `error`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "error" => Some(Self::Error),
            _ if s.len() == 3 && s.ends_with("xx") => {
                let c = s[..1].parse().ok().filter(|c| (1..=5).contains(c))?;
                Some(Self::Class(c))
            }
            _ => s.parse().ok().filter(|n| *n < 1000).map(Self::Exact),
        }
    }

    /// A condition on `status`; integers only, so nothing to bind.
    pub(crate) fn sql(self) -> String {
        match self {
            Self::Exact(n) => format!("status = {n}"),
            Self::Class(c) => format!("status >= {} AND status < {}", c * 100, c * 100 + 100),
            Self::Error => "(status = 0 OR status >= 400)".into(),
        }
    }
}

/// One row of the Requests page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRow {
    #[serde(flatten)]
    pub record: UsageRecord,
    /// Whether its bodies are in the request log.
    pub logged: bool,
}

/// The columns of a tool-call row, in [`ToolCallRecord`] order (both backends).
pub const TOOL_CALL_COLUMNS: &str = "time_ms, route, server, tool, principal, user_id, agent_id,
    status, latency_ms, request_bytes, response_bytes, error";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The display adds the server's message (or the I/O cause) to the driver's own, which
    /// alone is only `db error`. Never the connection URL or its password.
    #[error("postgres: {}", postgres::describe(.0))]
    Postgres(#[from] ::postgres::Error),
    #[error("cannot create the store's directory {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    /// A newer gateway migrated the database; writing with an older schema could corrupt it.
    #[error("the store's schema is version {found}, newer than this build's {supported}")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("the store's stored data is unreadable: {0}")]
    Corrupt(String),
}

/// `[from_ms, to_ms)`, Unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRange {
    pub from_ms: i64,
    pub to_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    Hour,
    Day,
}

impl Granularity {
    pub const fn bucket_ms(self) -> i64 {
        match self {
            Self::Hour => time::MS_PER_HOUR,
            Self::Day => time::MS_PER_DAY,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "hour" => Some(Self::Hour),
            "day" => Some(Self::Day),
            _ => None,
        }
    }
}

/// What one series of a [`SeriesQuery`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Provider,
    /// `model_answered`, falling back to `model_requested`.
    Model,
    /// One series per billable bucket of [`crate::usage::Usage`] ([`TokenType`]).
    TokenType,
    User,
    Agent,
}

impl GroupBy {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Provider => "provider",
            Self::Model => "model",
            Self::TokenType => "token_type",
            Self::User => "user",
            Self::Agent => "agent",
        }
    }

    /// The record column a series groups by; `None` for token types (one point per column).
    pub(crate) const fn column(self) -> Option<&'static str> {
        match self {
            Self::Provider => Some("provider"),
            Self::Model => Some("model"),
            Self::User => Some("user_id"),
            Self::Agent => Some("agent_id"),
            Self::TokenType => None,
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "provider" => Self::Provider,
            "model" => Self::Model,
            "token_type" => Self::TokenType,
            "user" => Self::User,
            "agent" => Self::Agent,
            _ => return None,
        })
    }
}

/// The billable token buckets, in the order series are returned. Reasoning is left out:
/// it is already inside `output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    Input,
    CacheRead,
    CacheWrite5m,
    CacheWrite1h,
    CacheWrite30m,
    CacheWrite12h,
    Output,
}

impl TokenType {
    pub const ALL: [TokenType; 7] = [
        Self::Input,
        Self::CacheRead,
        Self::CacheWrite5m,
        Self::CacheWrite1h,
        Self::CacheWrite30m,
        Self::CacheWrite12h,
        Self::Output,
    ];

    /// The record's column of each of [`Self::ALL`].
    pub(crate) const COLUMNS: [&'static str; 7] = [
        "input_tokens",
        "cache_read_tokens",
        "cache_write_5m_tokens",
        "cache_write_1h_tokens",
        "cache_write_30m_tokens",
        "cache_write_12h_tokens",
        "output_tokens",
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Input => "input",
            Self::CacheRead => "cache_read",
            Self::CacheWrite5m => "cache_write_5m",
            Self::CacheWrite1h => "cache_write_1h",
            Self::CacheWrite30m => "cache_write_30m",
            Self::CacheWrite12h => "cache_write_12h",
            Self::Output => "output",
        }
    }
}

/// Exact-match filters; `None` matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeriesFilter {
    pub provider: Option<String>,
    /// Matched against `model_answered`, falling back to `model_requested`.
    pub model: Option<String>,
    pub user: Option<String>,
    pub agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesQuery {
    pub range: TimeRange,
    pub granularity: Granularity,
    pub group_by: GroupBy,
    pub filter: SeriesFilter,
}

/// One bucket of one series.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SeriesPoint {
    /// The bucket's start (UTC hour or day), Unix milliseconds.
    pub bucket_ms: i64,
    /// The group: provider, model, user, agent or token type. `None` when the record has no
    /// value for it (no user header, no model known).
    pub key: Option<String>,
    /// Requests in the bucket. For token types: requests with a non-zero count of that type.
    pub requests: u64,
    /// Billable tokens (reasoning is inside output, not added again).
    pub tokens: u64,
    /// Spend of the priced requests; `None` for token-type series, whose cost is not
    /// stored per bucket.
    pub cost_nanousd: Option<u64>,
    /// Requests without a price (their tokens are counted, their cost is not).
    pub unpriced_requests: u64,
}

/// Token counts by bucket, as [`crate::usage::Usage`] has them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TokenTotals {
    pub input: u64,
    pub cache_read: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub cache_write_30m: u64,
    pub cache_write_12h: u64,
    pub output: u64,
    /// Informational, already inside `output`.
    pub reasoning: u64,
}

impl TokenTotals {
    /// Every billable token (reasoning not added again).
    pub fn total(&self) -> u64 {
        [
            self.input,
            self.cache_read,
            self.cache_write_5m,
            self.cache_write_1h,
            self.cache_write_30m,
            self.cache_write_12h,
            self.output,
        ]
        .iter()
        .fold(0u64, |sum, n| sum.saturating_add(*n))
    }

    pub fn add(&mut self, other: &TokenTotals) {
        self.input = self.input.saturating_add(other.input);
        self.cache_read = self.cache_read.saturating_add(other.cache_read);
        self.cache_write_5m = self.cache_write_5m.saturating_add(other.cache_write_5m);
        self.cache_write_1h = self.cache_write_1h.saturating_add(other.cache_write_1h);
        self.cache_write_30m = self.cache_write_30m.saturating_add(other.cache_write_30m);
        self.cache_write_12h = self.cache_write_12h.saturating_add(other.cache_write_12h);
        self.output = self.output.saturating_add(other.output);
        self.reasoning = self.reasoning.saturating_add(other.reasoning);
    }
}

/// Requests, spend and tokens over some window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UsageTotals {
    pub requests: u64,
    /// Requests without a price; not in `cost_nanousd`.
    pub unpriced_requests: u64,
    pub cost_nanousd: u64,
    pub tokens: TokenTotals,
}

impl UsageTotals {
    pub fn add(&mut self, other: &UsageTotals) {
        self.requests = self.requests.saturating_add(other.requests);
        self.unpriced_requests = self
            .unpriced_requests
            .saturating_add(other.unpriced_requests);
        self.cost_nanousd = self.cost_nanousd.saturating_add(other.cost_nanousd);
        self.tokens.add(&other.tokens);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DailyUsage {
    pub day: UtcDay,
    pub totals: UsageTotals,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderSummary {
    pub provider: String,
    /// Over the whole window.
    pub totals: UsageTotals,
    /// One point per day of the window, oldest first, zero-filled.
    pub daily: Vec<DailyUsage>,
}

impl ProviderSummary {
    /// Summaries from `(provider, day, totals)` rows ordered by provider: each provider gets
    /// its window's totals and one point per day from `first_day`, zero-filled.
    pub(crate) fn from_daily_rows<E>(
        first_day: UtcDay,
        days: i64,
        rows: impl IntoIterator<Item = Result<(String, UtcDay, UsageTotals), E>>,
    ) -> Result<Vec<Self>, E> {
        let mut summaries: Vec<ProviderSummary> = Vec::new();
        for row in rows {
            let (provider, day, totals) = row?;
            if summaries.last().is_none_or(|s| s.provider != provider) {
                summaries.push(ProviderSummary {
                    provider,
                    totals: UsageTotals::default(),
                    daily: (0..days)
                        .map(|i| DailyUsage {
                            day: first_day.plus(i),
                            totals: UsageTotals::default(),
                        })
                        .collect(),
                });
            }
            let Some(summary) = summaries.last_mut() else {
                continue;
            };
            summary.totals.add(&totals);
            if let Some(point) = usize::try_from(day.0 - first_day.0)
                .ok()
                .and_then(|i| summary.daily.get_mut(i))
            {
                point.totals = totals;
            }
        }
        Ok(summaries)
    }
}

impl Serialize for UtcDay {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.iso())
    }
}

/// The columns every backend reads a record from, in the order of its `record_from_row`.
pub(crate) const RECORD_COLUMNS: &str =
    "time_ms, request_id, provider, provider_type, model_requested,
    model_answered, principal, user_id, agent_id, api_path, status, streamed,
    input_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
    cache_write_30m_tokens, cache_write_12h_tokens, output_tokens, reasoning_tokens,
    usage_reported, provider_total_tokens, service_tier, cost_nanousd, unpriced_reason,
    latency_ms, ttfb_ms, conversation_id, outcome";

/// How many columns [`RECORD_COLUMNS`] names: the index of the first column after them.
pub(crate) const RECORD_COLUMN_COUNT: usize = {
    let b = RECORD_COLUMNS.as_bytes();
    let (mut i, mut n) = (0, 1);
    while i < b.len() {
        if b[i] == b',' {
            n += 1;
        }
        i += 1;
    }
    n
};

/// A stored `provider_type` as the record's `&'static str`: the kinds this build knows,
/// else `unknown`.
pub(crate) fn stored_provider_type(s: &str) -> &'static str {
    aigw_core::ProviderKind::parse(s).map_or("unknown", aigw_core::ProviderKind::as_str)
}

/// Saturating conversions between the record's unsigned counts and SQL's signed integers.
pub(crate) fn to_sql_int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn from_sql_int(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod tests;
