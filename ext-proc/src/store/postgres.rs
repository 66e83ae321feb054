//! The usage store in PostgreSQL, for many replicas sharing one database.
//!
//! Writes and reads have a connection each (a slow admin query never delays a commit).
//! Each is opened lazily: a call that finds its connection missing or closed opens a new
//! one first (within [`CONNECT_TIMEOUT`]), and a connection that failed is dropped, so the
//! store outlives a database restart: the sink retries the failed batch and the next call
//! reconnects. A call that finds its idle connection killed by the server (restart,
//! `pg_terminate_backend`) before anything was sent in its transaction runs once more on
//! a new connection, so it does not fail at all.
//!
//! The schema is created and upgraded at open by numbered migrations
//! (`postgres/migrations/NNNN_*.sql`, listed in `MIGRATIONS`), recorded in
//! `aigw_schema_migrations`; see [`migrate`]. Every table is prefixed `aigw_`.
//!
//! Aggregates are computed by the database. Sums saturate at `i64::MAX` (SQLite's would
//! fail on overflow); grouped text columns sort bytewise (`COLLATE "C"`), as SQLite does.
//! PostgreSQL text cannot hold NUL, so a NUL in a stored string (or a filter) is replaced
//! by U+FFFD: one odd model name must not make a batch fail forever.
//!
//! TLS is not built in (`NoTls`): `sslmode=require` in the URL fails to connect. The
//! connect timeout bounds the TCP connect only (the driver has no bound on the startup
//! handshake or on a query): a server that accepts but never answers blocks the call.

use super::analytics::{self, LatencyPoint};
use super::time::{UtcDay, MS_PER_DAY};
use super::{
    from_sql_int, stored_provider_type, to_sql_int, ProviderSummary, SeriesFilter, SeriesPoint,
    SeriesQuery, StoreError, TimeRange, TokenTotals, TokenType, UsageStore, UsageTotals,
    RECORD_COLUMNS,
};
use super::{
    RequestQuery, RequestRow, RECORD_COLUMN_COUNT, REQUEST_LOG_COLUMNS, TOOL_CALL_COLUMNS,
};
use crate::mcp::record::{ToolCallRecord, ToolCallStatus};
use crate::record::{Outcome, UsageRecord};
use crate::request_log::{RequestLog, ResponseKind};
use crate::usage::Usage;
use ::postgres::types::ToSql;
use ::postgres::{Client, Config, NoTls, Row, Statement};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

/// Applied in order at open, each in its own transaction; a database records those applied
/// in `aigw_schema_migrations`. Never edit one that has shipped: append the next.
const MIGRATIONS: &[(i32, &str)] = &[
    (
        1,
        include_str!("postgres/migrations/0001_usage_records.sql"),
    ),
    (
        2,
        include_str!("postgres/migrations/0002_shared_counters.sql"),
    ),
    (3, include_str!("postgres/migrations/0003_tool_calls.sql")),
    (4, include_str!("postgres/migrations/0004_request_logs.sql")),
];

/// The schema version this build writes: the last migration's.
pub const SCHEMA_VERSION: i32 = MIGRATIONS[MIGRATIONS.len() - 1].0;

/// The `pg_advisory_xact_lock` key every migration transaction holds: "aigwmigr" in ASCII.
pub const MIGRATION_LOCK_KEY: i64 = 0x6169_6777_6d69_6772;

/// How long opening a connection may take, unless the URL sets `connect_timeout`.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Unacknowledged data older than this breaks the connection (a dead peer or network),
/// instead of blocking the writer until TCP gives up on its own, many minutes later.
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(30);

pub struct PostgresStore {
    config: Config,
    writer: Mutex<Option<Session>>,
    reader: Mutex<Option<Session>>,
}

/// One connection and the statements prepared on it.
struct Session {
    client: Client,
    /// By SQL text; the set of distinct queries is small and fixed.
    statements: HashMap<String, Statement>,
}

impl Session {
    fn connect(config: &Config) -> Result<Self, ::postgres::Error> {
        Ok(Self {
            client: config.connect(NoTls)?,
            statements: HashMap::new(),
        })
    }

    fn prepare(&mut self, sql: &str) -> Result<Statement, ::postgres::Error> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql)?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    /// A read: any failure of a lost connection may run again on a new one.
    fn query(&mut self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<Vec<Row>, Failed> {
        let statement = self.prepare(sql).map_err(Failed::retry_if_lost)?;
        self.client
            .query(&statement, params)
            .map_err(Failed::retry_if_lost)
    }
}

/// One attempt's failure, and whether running it again on a new connection is safe (the
/// connection was lost, and nothing of the attempt can have been committed).
struct Failed {
    error: StoreError,
    retry: bool,
}

impl Failed {
    fn retry_if_lost(error: ::postgres::Error) -> Self {
        Self {
            retry: connection_lost(&error),
            error: error.into(),
        }
    }
}

impl From<::postgres::Error> for Failed {
    fn from(error: ::postgres::Error) -> Self {
        Self {
            error: error.into(),
            retry: false,
        }
    }
}

impl From<StoreError> for Failed {
    fn from(error: StoreError) -> Self {
        Self {
            error,
            retry: false,
        }
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/db?…` or `host=… dbname=…`),
    /// applies the missing migrations and opens the read connection. Fails if the database
    /// is unreachable, or newer than this build ([`StoreError::SchemaTooNew`]).
    pub fn open(url: &str) -> Result<Self, StoreError> {
        let mut config: Config = url.parse()?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_tcp_user_timeout().is_none() {
            config.tcp_user_timeout(TCP_USER_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("aigw-ext-proc");
        }
        off_runtime(|| {
            let mut writer = Session::connect(&config)?;
            migrate(&mut writer.client)?;
            let reader = Session::connect(&config)?;
            Ok(Self {
                config,
                writer: Mutex::new(Some(writer)),
                reader: Mutex::new(Some(reader)),
            })
        })
    }

    /// The highest migration applied.
    pub fn schema_version(&self) -> Result<i32, StoreError> {
        self.read(|s| {
            let rows = s.query(
                "SELECT COALESCE(MAX(version), 0) FROM aigw_schema_migrations",
                &[],
            )?;
            Ok(rows.first().map(|r| r.try_get(0)).transpose()?.unwrap_or(0))
        })
    }

    fn read<T: Send>(
        &self,
        op: impl FnMut(&mut Session) -> Result<T, Failed> + Send,
    ) -> Result<T, StoreError> {
        off_runtime(|| run(&self.config, &self.reader, op))
    }
}

impl Drop for PostgresStore {
    /// Dropping a client stops its runtime, which tokio forbids on an async thread.
    fn drop(&mut self) {
        let sessions = [&mut self.writer, &mut self.reader].map(|slot| {
            slot.get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
        });
        off_runtime(move || drop(sessions));
    }
}

/// Runs `op` on the slot's connection, connecting first if there is none or it is closed.
/// A failed connection is dropped (the next call reconnects); a failure that allows it
/// (see [`Failed`]) on a connection that was reused runs once more on a new one.
fn run<T>(
    config: &Config,
    slot: &Mutex<Option<Session>>,
    mut op: impl FnMut(&mut Session) -> Result<T, Failed>,
) -> Result<T, StoreError> {
    let mut slot = lock(slot);
    let mut retried = false;
    loop {
        let (mut session, reused) = match slot.take() {
            Some(session) if !session.client.is_closed() => (session, true),
            stale => {
                drop(stale);
                (Session::connect(config)?, false)
            }
        };
        match op(&mut session) {
            Ok(value) => {
                *slot = Some(session);
                return Ok(value);
            }
            Err(failed) => {
                // Whatever went wrong, the next call starts from a clean connection.
                drop(session);
                if failed.retry && reused && !retried {
                    retried = true;
                    continue;
                }
                return Err(failed.error);
            }
        }
    }
}

/// A panic while a connection was held leaves nothing half-done (an open transaction rolls
/// back), so a poisoned lock is still usable.
fn lock(slot: &Mutex<Option<Session>>) -> MutexGuard<'_, Option<Session>> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The sync driver runs a small tokio runtime of its own, which tokio refuses to start or
/// stop on a thread that drives async tasks. Called there (a query made straight from an
/// async fn), `f` runs on a short-lived thread; elsewhere (the writer thread,
/// `spawn_blocking`, tests) in place.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|scope| scope.spawn(f).join())
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Whether the connection is gone: closed, broken, or killed by the server (which says so
/// with a FATAL error, e.g. `57P01 admin_shutdown`).
fn connection_lost(error: &::postgres::Error) -> bool {
    use ::postgres::error::Severity;
    if error.is_closed() {
        return true;
    }
    if let Some(db) = error.as_db_error() {
        let code = db.code().code();
        return matches!(
            db.parsed_severity(),
            Some(Severity::Fatal | Severity::Panic)
        ) || code.starts_with("08")
            || code.starts_with("57P");
    }
    std::error::Error::source(error).is_some_and(|cause| cause.is::<std::io::Error>())
}

/// The driver's message and, for a server error or an I/O failure, its cause (the
/// driver's own display is only e.g. `db error`). Other causes are left out: a connection
/// string's parse error may quote a piece of it, password included.
pub(crate) fn describe(error: &::postgres::Error) -> String {
    if let Some(db) = error.as_db_error() {
        return format!("{error}: {}", db.to_string().replace('\n', "; "));
    }
    match std::error::Error::source(error) {
        Some(cause) if cause.is::<std::io::Error>() => format!("{error}: {cause}"),
        _ => error.to_string(),
    }
}

const SCHEMA_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS aigw_schema_migrations (
    version    INT PRIMARY KEY,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
)";

/// Brings the database to [`SCHEMA_VERSION`]: each missing migration in its own
/// transaction, each transaction holding `pg_advisory_xact_lock(MIGRATION_LOCK_KEY)` so
/// replicas starting together apply each migration once (the later ones wait, then find it
/// applied). Refuses a database that a newer build migrated ([`StoreError::SchemaTooNew`]).
/// Leaves `client` outside any transaction.
pub fn migrate(client: &mut Client) -> Result<(), StoreError> {
    loop {
        let mut tx = client.transaction()?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])?;
        tx.batch_execute(SCHEMA_MIGRATIONS)?;
        let current: i32 = tx
            .query_one(
                "SELECT COALESCE(MAX(version), 0) FROM aigw_schema_migrations",
                &[],
            )?
            .try_get(0)?;
        if current > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: current.into(),
                supported: SCHEMA_VERSION.into(),
            });
        }
        let Some((version, sql)) = MIGRATIONS.iter().find(|(v, _)| *v > current) else {
            tx.commit()?;
            return Ok(());
        };
        tx.batch_execute(sql)?;
        tx.execute(
            "INSERT INTO aigw_schema_migrations (version) VALUES ($1)",
            &[version],
        )?;
        tx.commit()?;
    }
}

/// The inserted columns and their types, in the order of [`insert_batch`]'s arrays.
///
/// [`insert_batch`]: UsageStore::insert_batch
const INSERT_COLUMNS: [(&str, &str); 30] = [
    ("time_ms", "bigint"),
    ("request_id", "text"),
    ("provider", "text"),
    ("provider_type", "text"),
    ("model_requested", "text"),
    ("model_answered", "text"),
    ("model", "text"),
    ("principal", "text"),
    ("user_id", "text"),
    ("agent_id", "text"),
    ("api_path", "text"),
    ("status", "integer"),
    ("streamed", "boolean"),
    ("input_tokens", "bigint"),
    ("cache_read_tokens", "bigint"),
    ("cache_write_5m_tokens", "bigint"),
    ("cache_write_1h_tokens", "bigint"),
    ("cache_write_30m_tokens", "bigint"),
    ("cache_write_12h_tokens", "bigint"),
    ("output_tokens", "bigint"),
    ("reasoning_tokens", "bigint"),
    ("usage_reported", "boolean"),
    ("provider_total_tokens", "bigint"),
    ("service_tier", "text"),
    ("cost_nanousd", "bigint"),
    ("unpriced_reason", "text"),
    ("latency_ms", "bigint"),
    ("ttfb_ms", "bigint"),
    ("conversation_id", "text"),
    ("outcome", "text"),
];

/// One statement for the whole batch: one array per column, unnested into rows in the
/// batch's order (so ids, the tiebreak of `records`, follow it).
fn insert_sql() -> &'static str {
    static SQL: OnceLock<String> = OnceLock::new();
    SQL.get_or_init(|| {
        let names: Vec<&str> = INSERT_COLUMNS.iter().map(|(name, _)| *name).collect();
        let names = names.join(", ");
        let arrays: Vec<String> = INSERT_COLUMNS
            .iter()
            .enumerate()
            .map(|(i, (_, ty))| format!("${}::{ty}[]", i + 1))
            .collect();
        format!(
            "INSERT INTO aigw_usage_records ({names})
             SELECT {names} FROM unnest({}) WITH ORDINALITY AS batch ({names}, ord)
             ORDER BY ord",
            arrays.join(", ")
        )
    })
}

/// Sums of [`totals_from_row`], in its order. `SUM(bigint)` is numeric: the sums are
/// exact, then saturate to BIGINT.
const TOTALS: &str = "COUNT(*), COUNT(*) - COUNT(cost_nanousd),
    LEAST(COALESCE(SUM(cost_nanousd), 0), 9223372036854775807)::BIGINT,
    LEAST(SUM(input_tokens), 9223372036854775807)::BIGINT,
    LEAST(SUM(cache_read_tokens), 9223372036854775807)::BIGINT,
    LEAST(SUM(cache_write_5m_tokens), 9223372036854775807)::BIGINT,
    LEAST(SUM(cache_write_1h_tokens), 9223372036854775807)::BIGINT,
    LEAST(SUM(cache_write_30m_tokens), 9223372036854775807)::BIGINT,
    LEAST(SUM(cache_write_12h_tokens), 9223372036854775807)::BIGINT,
    LEAST(SUM(output_tokens), 9223372036854775807)::BIGINT,
    LEAST(SUM(reasoning_tokens), 9223372036854775807)::BIGINT";

/// Every billable token of the group (reasoning is inside output), saturated.
const BILLABLE_TOKENS: &str = "LEAST(SUM(input_tokens) + SUM(cache_read_tokens)
    + SUM(cache_write_5m_tokens) + SUM(cache_write_1h_tokens) + SUM(cache_write_30m_tokens)
    + SUM(cache_write_12h_tokens) + SUM(output_tokens), 9223372036854775807)::BIGINT";

/// PostgreSQL text cannot hold NUL.
fn pg_text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

fn pg_opt_text(s: &Option<String>) -> Option<Cow<'_, str>> {
    s.as_deref().map(pg_text)
}

/// The batch, one array per column of [`INSERT_COLUMNS`].
#[derive(Default)]
struct Columns<'a> {
    time_ms: Vec<i64>,
    request_id: Vec<Cow<'a, str>>,
    provider: Vec<Cow<'a, str>>,
    provider_type: Vec<Cow<'a, str>>,
    model_requested: Vec<Option<Cow<'a, str>>>,
    model_answered: Vec<Option<Cow<'a, str>>>,
    model: Vec<Option<Cow<'a, str>>>,
    principal: Vec<Cow<'a, str>>,
    user_id: Vec<Option<Cow<'a, str>>>,
    agent_id: Vec<Option<Cow<'a, str>>>,
    api_path: Vec<Cow<'a, str>>,
    status: Vec<i32>,
    streamed: Vec<bool>,
    /// input, cache_read, cache_write_5m/1h/30m/12h, output, reasoning.
    tokens: [Vec<i64>; 8],
    usage_reported: Vec<bool>,
    provider_total_tokens: Vec<Option<i64>>,
    service_tier: Vec<Option<Cow<'a, str>>>,
    cost_nanousd: Vec<Option<i64>>,
    unpriced_reason: Vec<Option<Cow<'a, str>>>,
    latency_ms: Vec<i64>,
    ttfb_ms: Vec<Option<i64>>,
    conversation_id: Vec<Option<Cow<'a, str>>>,
    outcome: Vec<&'static str>,
}

impl<'a> Columns<'a> {
    fn new(records: &'a [UsageRecord]) -> Self {
        let mut c = Columns::default();
        for r in records {
            let u = &r.usage;
            c.time_ms.push(r.time_ms);
            c.request_id.push(pg_text(&r.request_id));
            c.provider.push(pg_text(&r.provider));
            c.provider_type.push(pg_text(&r.provider_type));
            c.model_requested.push(pg_opt_text(&r.model_requested));
            c.model_answered.push(pg_opt_text(&r.model_answered));
            c.model.push(pg_opt_text(if r.model_answered.is_some() {
                &r.model_answered
            } else {
                &r.model_requested
            }));
            c.principal.push(pg_text(&r.principal));
            c.user_id.push(pg_opt_text(&r.user));
            c.agent_id.push(pg_opt_text(&r.agent));
            c.api_path.push(pg_text(&r.api_path));
            c.status.push(i32::from(r.status));
            c.streamed.push(r.streamed);
            for (column, n) in c.tokens.iter_mut().zip([
                u.input,
                u.cache_read,
                u.cache_write_5m,
                u.cache_write_1h,
                u.cache_write_30m,
                u.cache_write_12h,
                u.output,
                u.reasoning,
            ]) {
                column.push(to_sql_int(n));
            }
            c.usage_reported.push(r.usage_reported);
            c.provider_total_tokens
                .push(u.provider_total.map(to_sql_int));
            c.service_tier.push(pg_opt_text(&u.service_tier));
            c.cost_nanousd.push(r.cost_nanousd.map(to_sql_int));
            c.unpriced_reason.push(pg_opt_text(&r.unpriced_reason));
            c.latency_ms.push(to_sql_int(r.latency_ms));
            c.ttfb_ms.push(r.ttfb_ms.map(to_sql_int));
            c.conversation_id.push(pg_opt_text(&r.conversation_id));
            c.outcome.push(r.outcome.as_str());
        }
        c
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 30] {
        let [input, cache_read, cache_write_5m, cache_write_1h, cache_write_30m, cache_write_12h, output, reasoning] =
            &self.tokens;
        [
            &self.time_ms,
            &self.request_id,
            &self.provider,
            &self.provider_type,
            &self.model_requested,
            &self.model_answered,
            &self.model,
            &self.principal,
            &self.user_id,
            &self.agent_id,
            &self.api_path,
            &self.status,
            &self.streamed,
            input,
            cache_read,
            cache_write_5m,
            cache_write_1h,
            cache_write_30m,
            cache_write_12h,
            output,
            reasoning,
            &self.usage_reported,
            &self.provider_total_tokens,
            &self.service_tier,
            &self.cost_nanousd,
            &self.unpriced_reason,
            &self.latency_ms,
            &self.ttfb_ms,
            &self.conversation_id,
            &self.outcome,
        ]
    }
}

impl UsageStore for PostgresStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn insert_batch(&self, records: &[UsageRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let columns = Columns::new(records);
        let params = columns.params();
        off_runtime(|| {
            run(&self.config, &self.writer, |session| {
                // Nothing is sent in a transaction before BEGIN succeeds: a lost connection
                // up to there may retry. After it, the sink retries the whole batch.
                let insert = session
                    .prepare(insert_sql())
                    .map_err(Failed::retry_if_lost)?;
                let mut tx = session
                    .client
                    .transaction()
                    .map_err(Failed::retry_if_lost)?;
                tx.execute(&insert, &params)?;
                tx.commit()?;
                Ok(())
            })
        })
    }

    fn provider_summary(
        &self,
        last_day: UtcDay,
        days: u32,
    ) -> Result<Vec<ProviderSummary>, StoreError> {
        let days = i64::from(days.max(1));
        let first_day = last_day.plus(1 - days);
        let sql = format!(
            "SELECT provider, time_ms / {MS_PER_DAY} AS day, {TOTALS}
             FROM aigw_usage_records
             WHERE time_ms >= $1 AND time_ms < $2
             GROUP BY provider, day
             ORDER BY provider, day"
        );
        let (from_ms, to_ms) = (first_day.start_ms(), last_day.plus(1).start_ms());
        let rows = self.read(|s| s.query(&sql, &[&from_ms, &to_ms]))?;
        ProviderSummary::from_daily_rows(
            first_day,
            days,
            rows.iter().map(|row| -> Result<_, StoreError> {
                Ok((
                    row.try_get(0)?,
                    UtcDay(row.try_get(1)?),
                    totals_from_row(row, 2)?,
                ))
            }),
        )
    }

    fn usage_series(&self, query: &SeriesQuery) -> Result<Vec<SeriesPoint>, StoreError> {
        let bucket_ms = query.granularity.bucket_ms();
        let filter = Filter::new(&query.range, &query.filter);
        let Some(key_column) = query.group_by.column() else {
            return self.token_type_series(bucket_ms, &filter);
        };
        let sql = format!(
            "SELECT (time_ms / {bucket_ms}) * {bucket_ms} AS bucket, {key_column} AS key,
                    COUNT(*), {BILLABLE_TOKENS},
                    LEAST(COALESCE(SUM(cost_nanousd), 0), 9223372036854775807)::BIGINT,
                    COUNT(*) - COUNT(cost_nanousd)
             FROM aigw_usage_records WHERE {}
             GROUP BY bucket, key
             ORDER BY bucket, key NULLS LAST",
            filter.sql
        );
        let params = filter.params();
        let rows = self.read(|s| s.query(&sql, &params))?;
        rows.iter()
            .map(|row| {
                Ok(SeriesPoint {
                    bucket_ms: row.try_get(0)?,
                    key: row.try_get(1)?,
                    requests: from_sql_int(row.try_get(2)?),
                    tokens: from_sql_int(row.try_get(3)?),
                    cost_nanousd: Some(from_sql_int(row.try_get(4)?)),
                    unpriced_requests: from_sql_int(row.try_get(5)?),
                })
            })
            .collect()
    }

    fn records(&self, range: TimeRange, limit: usize) -> Result<Vec<UsageRecord>, StoreError> {
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM aigw_usage_records
             WHERE time_ms >= $1 AND time_ms < $2
             ORDER BY time_ms, id LIMIT $3"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.read(|s| s.query(&sql, &[&range.from_ms, &range.to_ms, &limit]))?;
        rows.iter().map(record_from_row).collect()
    }

    fn insert_tool_calls(&self, calls: &[ToolCallRecord]) -> Result<(), StoreError> {
        if calls.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO aigw_tool_calls ({TOOL_CALL_COLUMNS})
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        );
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        off_runtime(|| {
            run(&self.config, &self.writer, |session| {
                let insert = session.prepare(&sql).map_err(Failed::retry_if_lost)?;
                let mut tx = session
                    .client
                    .transaction()
                    .map_err(Failed::retry_if_lost)?;
                for c in calls {
                    tx.execute(
                        &insert,
                        &[
                            &c.time_ms,
                            &c.route,
                            &c.server,
                            &c.tool,
                            &c.principal,
                            &c.user,
                            &c.agent,
                            &c.status.as_str(),
                            &int(c.latency_ms),
                            &int(c.request_bytes),
                            &int(c.response_bytes),
                            &c.error,
                        ],
                    )?;
                }
                tx.commit()?;
                Ok(())
            })
        })
    }

    fn tool_calls(
        &self,
        range: TimeRange,
        limit: usize,
    ) -> Result<Vec<ToolCallRecord>, StoreError> {
        let sql = format!(
            "SELECT {TOOL_CALL_COLUMNS} FROM aigw_tool_calls
             WHERE time_ms >= $1 AND time_ms < $2
             ORDER BY time_ms DESC, id DESC LIMIT $3"
        );
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.read(|s| s.query(&sql, &[&range.from_ms, &range.to_ms, &limit]))?;
        let uint = |v: i64| v.max(0) as u64;
        rows.iter()
            .map(|row| -> Result<ToolCallRecord, StoreError> {
                let status: String = row.try_get(7)?;
                Ok(ToolCallRecord {
                    time_ms: row.try_get(0)?,
                    route: row.try_get(1)?,
                    server: row.try_get(2)?,
                    tool: row.try_get(3)?,
                    principal: row.try_get(4)?,
                    user: row.try_get(5)?,
                    agent: row.try_get(6)?,
                    status: ToolCallStatus::parse(&status).unwrap_or(ToolCallStatus::UpstreamError),
                    latency_ms: uint(row.try_get(8)?),
                    request_bytes: uint(row.try_get(9)?),
                    response_bytes: uint(row.try_get(10)?),
                    error: row.try_get(11)?,
                })
            })
            .collect()
    }

    fn latency(
        &self,
        query: &SeriesQuery,
        whole_range: bool,
    ) -> Result<Vec<LatencyPoint>, StoreError> {
        let Some(column) = analytics::key_column(query.group_by) else {
            return Ok(Vec::new());
        };
        // Bytewise, as SQLite orders.
        let key = format!("{column} COLLATE \"C\"");
        let filter = Filter::new(&query.range, &query.filter);
        let bucket = (!whole_range).then(|| query.granularity.bucket_ms());
        let [latency, ttft] = analytics::sql("aigw_usage_records", &filter.sql, bucket, &key);
        let params = filter.params();
        let int =
            |row: &Row, i: usize| -> Result<u64, StoreError> { Ok(from_sql_int(row.try_get(i)?)) };
        let rows = self.read(|s| s.query(&latency, &params))?;
        let points = rows
            .iter()
            .map(|row| {
                Ok(LatencyPoint {
                    bucket_ms: if whole_range {
                        None
                    } else {
                        Some(row.try_get(0)?)
                    },
                    key: row.try_get(1)?,
                    requests: int(row, 2)?,
                    errors: int(row, 3)?,
                    latency_ms: [int(row, 4)?, int(row, 5)?, int(row, 6)?],
                    streamed: 0,
                    ttft_ms: None,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let rows = self.read(|s| s.query(&ttft, &params))?;
        let ttft = rows
            .iter()
            .map(|row| {
                Ok((
                    row.try_get(0)?,
                    row.try_get(1)?,
                    int(row, 2)?,
                    [int(row, 3)?, int(row, 4)?, int(row, 5)?],
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(analytics::merge(points, ttft, whole_range))
    }

    fn insert_request_logs(&self, logs: &[RequestLog]) -> Result<(), StoreError> {
        if logs.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO aigw_request_logs ({REQUEST_LOG_COLUMNS}, bytes)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        );
        off_runtime(|| {
            run(&self.config, &self.writer, |session| {
                let insert = session.prepare(&sql).map_err(Failed::retry_if_lost)?;
                let mut tx = session
                    .client
                    .transaction()
                    .map_err(Failed::retry_if_lost)?;
                for l in logs {
                    tx.execute(
                        &insert,
                        &[
                            &l.time_ms,
                            &pg_text(&l.request_id),
                            &pg_text(&l.provider),
                            &pg_text(&l.request_body),
                            &l.request_truncated,
                            &l.response_kind.as_str(),
                            &pg_text(&l.response_body),
                            &l.response_truncated,
                            &to_sql_int(l.bytes()),
                        ],
                    )?;
                }
                tx.commit()?;
                Ok(())
            })
        })
    }

    fn requests(&self, query: &RequestQuery) -> Result<Vec<RequestRow>, StoreError> {
        let filter = Filter::new(&query.range, &query.filter);
        let status = query
            .status
            .map(|s| format!(" AND {}", s.sql()))
            .unwrap_or_default();
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        let mut params = filter.params();
        params.push(&limit);
        let sql = format!(
            "SELECT {RECORD_COLUMNS}, EXISTS (SELECT 1 FROM aigw_request_logs l
                 WHERE l.request_id = aigw_usage_records.request_id)
             FROM aigw_usage_records WHERE {}{status}
             ORDER BY time_ms DESC, id DESC LIMIT ${}",
            filter.sql,
            params.len()
        );
        let rows = self.read(|s| s.query(&sql, &params))?;
        rows.iter()
            .map(|row| {
                Ok(RequestRow {
                    record: record_from_row(row)?,
                    logged: row.try_get(RECORD_COLUMN_COUNT)?,
                })
            })
            .collect()
    }

    fn request(
        &self,
        request_id: &str,
    ) -> Result<(Vec<UsageRecord>, Option<RequestLog>), StoreError> {
        let id = pg_text(request_id);
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM aigw_usage_records WHERE request_id = $1
             ORDER BY time_ms, id"
        );
        let rows = self.read(|s| s.query(&sql, &[&id]))?;
        let records = rows.iter().map(record_from_row).collect::<Result<_, _>>()?;
        let sql = format!(
            "SELECT {REQUEST_LOG_COLUMNS} FROM aigw_request_logs WHERE request_id = $1
             ORDER BY id DESC LIMIT 1"
        );
        let rows = self.read(|s| s.query(&sql, &[&id]))?;
        let log = rows
            .first()
            .map(|row| -> Result<RequestLog, StoreError> {
                let kind: String = row.try_get(5)?;
                Ok(RequestLog {
                    time_ms: row.try_get(0)?,
                    request_id: row.try_get(1)?,
                    provider: row.try_get(2)?,
                    request_body: row.try_get(3)?,
                    request_truncated: row.try_get(4)?,
                    response_kind: ResponseKind::parse(&kind),
                    response_body: row.try_get(6)?,
                    response_truncated: row.try_get(7)?,
                })
            })
            .transpose()?;
        Ok((records, log))
    }

    fn prune_request_logs(&self, before_ms: i64, max_total_bytes: u64) -> Result<u64, StoreError> {
        let max = to_sql_int(max_total_bytes);
        off_runtime(|| {
            run(&self.config, &self.writer, |session| {
                let mut tx = session
                    .client
                    .transaction()
                    .map_err(Failed::retry_if_lost)?;
                let old = tx.execute(
                    "DELETE FROM aigw_request_logs WHERE time_ms < $1",
                    &[&before_ms],
                )?;
                let over = tx.execute(
                    "DELETE FROM aigw_request_logs WHERE id IN (
                         SELECT id FROM (SELECT id, SUM(bytes) OVER (ORDER BY time_ms DESC, id DESC) AS kept
                                         FROM aigw_request_logs) AS running
                         WHERE kept > $1::BIGINT)",
                    &[&max],
                )?;
                tx.commit()?;
                Ok(old + over)
            })
        })
    }
}

impl PostgresStore {
    /// One scan sums every bucket per time bucket; the 7 columns are then unpivoted into
    /// one point per token type.
    fn token_type_series(
        &self,
        bucket_ms: i64,
        filter: &Filter<'_>,
    ) -> Result<Vec<SeriesPoint>, StoreError> {
        let mut sums = String::new();
        for c in TokenType::COLUMNS {
            let _ = write!(
                sums,
                ", LEAST(SUM({c}), 9223372036854775807)::BIGINT, COUNT(*) FILTER (WHERE {c} > 0)"
            );
        }
        let sql = format!(
            "SELECT (time_ms / {bucket_ms}) * {bucket_ms} AS bucket{sums}
             FROM aigw_usage_records WHERE {}
             GROUP BY bucket ORDER BY bucket",
            filter.sql
        );
        let params = filter.params();
        let rows = self.read(|s| s.query(&sql, &params))?;
        let mut points = Vec::with_capacity(rows.len() * TokenType::ALL.len());
        for row in rows {
            let bucket_ms: i64 = row.try_get(0)?;
            for (i, token_type) in TokenType::ALL.iter().enumerate() {
                points.push(SeriesPoint {
                    bucket_ms,
                    key: Some(token_type.as_str().to_string()),
                    tokens: from_sql_int(row.try_get(1 + 2 * i)?),
                    requests: from_sql_int(row.try_get(2 + 2 * i)?),
                    cost_nanousd: None,
                    unpriced_requests: 0,
                });
            }
        }
        Ok(points)
    }
}

/// The WHERE clause of a series (range plus the filters given) and its arguments. Only the
/// present filters are added, so the planner can pick the matching `(column, time_ms)`
/// index.
struct Filter<'a> {
    sql: String,
    range: &'a TimeRange,
    values: Vec<Cow<'a, str>>,
}

impl<'a> Filter<'a> {
    fn new(range: &'a TimeRange, filter: &'a SeriesFilter) -> Self {
        let mut sql = String::from("time_ms >= $1 AND time_ms < $2");
        let mut values = Vec::new();
        for (column, value) in [
            ("provider", &filter.provider),
            ("model", &filter.model),
            ("user_id", &filter.user),
            ("agent_id", &filter.agent),
        ] {
            if let Some(value) = value {
                values.push(pg_text(value));
                let _ = write!(sql, " AND {column} = ${}", values.len() + 2);
            }
        }
        Self { sql, range, values }
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&self.range.from_ms, &self.range.to_ms];
        params.extend(self.values.iter().map(|v| v as &(dyn ToSql + Sync)));
        params
    }
}

fn totals_from_row(row: &Row, first: usize) -> Result<UsageTotals, StoreError> {
    let n = |i: usize| -> Result<u64, StoreError> { Ok(from_sql_int(row.try_get(first + i)?)) };
    Ok(UsageTotals {
        requests: n(0)?,
        unpriced_requests: n(1)?,
        cost_nanousd: n(2)?,
        tokens: TokenTotals {
            input: n(3)?,
            cache_read: n(4)?,
            cache_write_5m: n(5)?,
            cache_write_1h: n(6)?,
            cache_write_30m: n(7)?,
            cache_write_12h: n(8)?,
            output: n(9)?,
            reasoning: n(10)?,
        },
    })
}

fn record_from_row(row: &Row) -> Result<UsageRecord, StoreError> {
    let count = |i: usize| -> Result<u64, StoreError> { Ok(from_sql_int(row.try_get(i)?)) };
    let optional_count = |i: usize| -> Result<Option<u64>, StoreError> {
        Ok(row.try_get::<_, Option<i64>>(i)?.map(from_sql_int))
    };
    let provider_type: String = row.try_get(3)?;
    let status: i32 = row.try_get(10)?;
    let status = u16::try_from(status)
        .map_err(|_| StoreError::Corrupt(format!("status {status} is not an HTTP status")))?;
    let outcome: String = row.try_get(28)?;
    let outcome = Outcome::parse(&outcome)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown outcome `{outcome}`")))?;
    let model_answered: Option<String> = row.try_get(5)?;
    Ok(UsageRecord {
        time_ms: row.try_get(0)?,
        request_id: row.try_get(1)?,
        provider: row.try_get(2)?,
        provider_type: stored_provider_type(&provider_type).into(),
        model_requested: row.try_get(4)?,
        model_answered: model_answered.clone(),
        principal: row.try_get(6)?,
        user: row.try_get(7)?,
        agent: row.try_get(8)?,
        api_path: row.try_get(9)?,
        status,
        streamed: row.try_get(11)?,
        usage: Usage {
            input: count(12)?,
            cache_read: count(13)?,
            cache_write_5m: count(14)?,
            cache_write_1h: count(15)?,
            cache_write_30m: count(16)?,
            cache_write_12h: count(17)?,
            output: count(18)?,
            reasoning: count(19)?,
            model: model_answered,
            service_tier: row.try_get(22)?,
            provider_total: optional_count(21)?,
        },
        usage_reported: row.try_get(20)?,
        cost_nanousd: optional_count(23)?,
        unpriced_reason: row.try_get(24)?,
        latency_ms: count(25)?,
        ttfb_ms: optional_count(26)?,
        conversation_id: row.try_get(27)?,
        trace_parent: None,
        outcome,
    })
}

#[cfg(test)]
pub(crate) mod test_server;

#[cfg(test)]
mod tests;
