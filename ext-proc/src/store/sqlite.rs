//! The default usage store: an embedded SQLite file.
//!
//! WAL mode lets the admin API read while the writer thread commits, and
//! `synchronous=NORMAL` makes a commit cost no fsync (WAL stays consistent on power loss;
//! the last commits before it may be lost, which usage accounting can afford). Writes and
//! reads have a connection each, so a slow admin query never delays a commit.
//!
//! The schema is created and upgraded at open by numbered migrations
//! (`sqlite/migrations/NNNN_*.sql`); the `schema_version` table records those applied.

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
use rusqlite::types::Type;
use rusqlite::{params, Connection, OpenFlags, Row, ToSql, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

/// Applied in order at open; a database records the highest it has in `schema_version`.
/// Never edit one that has shipped: add the next.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("sqlite/migrations/0001_usage_records.sql")),
    (2, include_str!("sqlite/migrations/0002_tool_calls.sql")),
    (3, include_str!("sqlite/migrations/0003_request_logs.sql")),
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].0;

#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// How long a statement waits for a lock another process holds before failing (the
    /// writer then retries the batch with backoff).
    pub busy_timeout: Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(1),
        }
    }
}

pub struct SqliteStore {
    writer: Mutex<Connection>,
    /// `None` in memory, where a second connection would see another database.
    reader: Option<Mutex<Connection>>,
    path: Option<PathBuf>,
}

impl SqliteStore {
    /// Opens (creating it and its directory if needed) and migrates the database at `path`.
    pub fn open(path: impl AsRef<Path>, options: SqliteOptions) -> Result<Self, StoreError> {
        let path = path.as_ref();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.display().to_string(),
                source,
            })?;
        }
        let mut writer = Connection::open(path)?;
        writer.busy_timeout(options.busy_timeout)?;
        // `journal_mode` answers with the mode in force: a row, so not `pragma_update`.
        let _mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        writer.pragma_update(None, "synchronous", "NORMAL")?;
        migrate(&mut writer)?;

        let reader = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        reader.busy_timeout(options.busy_timeout)?;
        Ok(Self {
            writer: Mutex::new(writer),
            reader: Some(Mutex::new(reader)),
            path: Some(path.to_path_buf()),
        })
    }

    /// A database that lives as long as the store: for tests and trying things out.
    pub fn open_in_memory() -> Result<Self, StoreError> {
        let mut conn = Connection::open_in_memory()?;
        migrate(&mut conn)?;
        Ok(Self {
            writer: Mutex::new(conn),
            reader: None,
            path: None,
        })
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The highest migration applied.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        let conn = self.read_conn();
        Ok(conn.query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))?)
    }

    fn read_conn(&self) -> MutexGuard<'_, Connection> {
        lock(self.reader.as_ref().unwrap_or(&self.writer))
    }
}

/// A panic while a connection was held leaves nothing half-done (an open transaction rolls
/// back when dropped), so a poisoned lock is still usable.
fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    conn.lock().unwrap_or_else(PoisonError::into_inner)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    // IMMEDIATE: two sidecars opening one file at once must not both migrate.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
             version    INTEGER PRIMARY KEY,
             applied_ms INTEGER NOT NULL
         )",
    )?;
    let current: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    if current > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported: SCHEMA_VERSION,
        });
    }
    for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_ms) VALUES (?1, ?2)",
            params![version, super::time::now_ms()],
        )?;
    }
    tx.commit()?;
    Ok(())
}

const INSERT: &str = "INSERT INTO usage_records (
    time_ms, request_id, provider, provider_type, model_requested, model_answered, model,
    principal, user_id, agent_id, api_path, status, streamed,
    input_tokens, cache_read_tokens, cache_write_5m_tokens, cache_write_1h_tokens,
    cache_write_30m_tokens, cache_write_12h_tokens, output_tokens, reasoning_tokens,
    usage_reported, provider_total_tokens, service_tier, cost_nanousd, unpriced_reason,
    latency_ms, ttfb_ms, conversation_id, outcome
) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
          ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30)";

/// Sums of [`totals_from_row`], in its order.
const TOTALS: &str = "COUNT(*), SUM(cost_nanousd IS NULL), COALESCE(SUM(cost_nanousd), 0),
    SUM(input_tokens), SUM(cache_read_tokens), SUM(cache_write_5m_tokens),
    SUM(cache_write_1h_tokens), SUM(cache_write_30m_tokens), SUM(cache_write_12h_tokens),
    SUM(output_tokens), SUM(reasoning_tokens)";

const BILLABLE_TOKENS: &str = "input_tokens + cache_read_tokens + cache_write_5m_tokens
    + cache_write_1h_tokens + cache_write_30m_tokens + cache_write_12h_tokens + output_tokens";

impl UsageStore for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    fn insert_batch(&self, records: &[UsageRecord]) -> Result<(), StoreError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(INSERT)?;
            for r in records {
                let u = &r.usage;
                let model = r.model_answered.as_ref().or(r.model_requested.as_ref());
                insert.execute(params![
                    r.time_ms,
                    r.request_id,
                    r.provider,
                    r.provider_type.as_ref(),
                    r.model_requested,
                    r.model_answered,
                    model,
                    r.principal,
                    r.user,
                    r.agent,
                    r.api_path,
                    r.status,
                    r.streamed,
                    to_sql_int(u.input),
                    to_sql_int(u.cache_read),
                    to_sql_int(u.cache_write_5m),
                    to_sql_int(u.cache_write_1h),
                    to_sql_int(u.cache_write_30m),
                    to_sql_int(u.cache_write_12h),
                    to_sql_int(u.output),
                    to_sql_int(u.reasoning),
                    r.usage_reported,
                    u.provider_total.map(to_sql_int),
                    u.service_tier,
                    r.cost_nanousd.map(to_sql_int),
                    r.unpriced_reason,
                    to_sql_int(r.latency_ms),
                    r.ttfb_ms.map(to_sql_int),
                    r.conversation_id,
                    r.outcome.as_str(),
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn provider_summary(
        &self,
        last_day: UtcDay,
        days: u32,
    ) -> Result<Vec<ProviderSummary>, StoreError> {
        let days = i64::from(days.max(1));
        let first_day = last_day.plus(1 - days);
        let conn = self.read_conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT provider, time_ms / {MS_PER_DAY} AS day, {TOTALS}
             FROM usage_records
             WHERE time_ms >= ?1 AND time_ms < ?2
             GROUP BY provider, day
             ORDER BY provider, day"
        ))?;
        let rows = stmt.query_map(
            params![first_day.start_ms(), last_day.plus(1).start_ms()],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    UtcDay(row.get(1)?),
                    totals_from_row(row, 2)?,
                ))
            },
        )?;
        ProviderSummary::from_daily_rows(first_day, days, rows.map(|r| r.map_err(StoreError::from)))
    }

    fn usage_series(&self, query: &SeriesQuery) -> Result<Vec<SeriesPoint>, StoreError> {
        let bucket_ms = query.granularity.bucket_ms();
        let (conditions, args) = filter_sql(&query.range, &query.filter);
        let conn = self.read_conn();
        let Some(key_column) = query.group_by.column() else {
            return token_type_series(&conn, bucket_ms, &conditions, &args);
        };
        let sql = format!(
            "SELECT (time_ms / {bucket_ms}) * {bucket_ms} AS bucket, {key_column} AS key,
                    COUNT(*), SUM({BILLABLE_TOKENS}), COALESCE(SUM(cost_nanousd), 0),
                    SUM(cost_nanousd IS NULL)
             FROM usage_records WHERE {conditions}
             GROUP BY bucket, key
             ORDER BY bucket, key IS NULL, key"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let points = stmt.query_map(args.as_slice(), |row| {
            Ok(SeriesPoint {
                bucket_ms: row.get(0)?,
                key: row.get(1)?,
                requests: from_sql_int(row.get(2)?),
                tokens: from_sql_int(row.get(3)?),
                cost_nanousd: Some(from_sql_int(row.get(4)?)),
                unpriced_requests: from_sql_int(row.get(5)?),
            })
        })?;
        Ok(points.collect::<Result<_, _>>()?)
    }

    fn records(&self, range: TimeRange, limit: usize) -> Result<Vec<UsageRecord>, StoreError> {
        let conn = self.read_conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM usage_records
             WHERE time_ms >= ?1 AND time_ms < ?2
             ORDER BY time_ms, id LIMIT ?3"
        ))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![range.from_ms, range.to_ms, limit], record_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn insert_tool_calls(&self, calls: &[ToolCallRecord]) -> Result<(), StoreError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(&format!(
                "INSERT INTO tool_calls ({TOOL_CALL_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"
            ))?;
            for c in calls {
                insert.execute(params![
                    c.time_ms,
                    c.route,
                    c.server,
                    c.tool,
                    c.principal,
                    c.user,
                    c.agent,
                    c.status.as_str(),
                    to_sql_int(c.latency_ms),
                    to_sql_int(c.request_bytes),
                    to_sql_int(c.response_bytes),
                    c.error,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn tool_calls(
        &self,
        range: TimeRange,
        limit: usize,
    ) -> Result<Vec<ToolCallRecord>, StoreError> {
        let conn = self.read_conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {TOOL_CALL_COLUMNS} FROM tool_calls
             WHERE time_ms >= ?1 AND time_ms < ?2
             ORDER BY time_ms DESC, id DESC LIMIT ?3"
        ))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = stmt.query_map(params![range.from_ms, range.to_ms, limit], |row| {
            let status: String = row.get(7)?;
            Ok(ToolCallRecord {
                time_ms: row.get(0)?,
                route: row.get(1)?,
                server: row.get(2)?,
                tool: row.get(3)?,
                principal: row.get(4)?,
                user: row.get(5)?,
                agent: row.get(6)?,
                status: ToolCallStatus::parse(&status).unwrap_or(ToolCallStatus::UpstreamError),
                latency_ms: row.get::<_, i64>(8)?.max(0) as u64,
                request_bytes: row.get::<_, i64>(9)?.max(0) as u64,
                response_bytes: row.get::<_, i64>(10)?.max(0) as u64,
                error: row.get(11)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn latency(
        &self,
        query: &SeriesQuery,
        whole_range: bool,
    ) -> Result<Vec<LatencyPoint>, StoreError> {
        let Some(key) = analytics::key_column(query.group_by) else {
            return Ok(Vec::new());
        };
        let (conditions, args) = filter_sql(&query.range, &query.filter);
        let bucket = (!whole_range).then(|| query.granularity.bucket_ms());
        let [latency, ttft] = analytics::sql("usage_records", &conditions, bucket, key);
        let conn = self.read_conn();
        let int =
            |row: &Row<'_>, i: usize| -> rusqlite::Result<u64> { Ok(from_sql_int(row.get(i)?)) };
        let mut stmt = conn.prepare_cached(&latency)?;
        let points = stmt
            .query_map(args.as_slice(), |row| {
                Ok(LatencyPoint {
                    bucket_ms: if whole_range { None } else { Some(row.get(0)?) },
                    key: row.get(1)?,
                    requests: int(row, 2)?,
                    errors: int(row, 3)?,
                    latency_ms: [int(row, 4)?, int(row, 5)?, int(row, 6)?],
                    streamed: 0,
                    ttft_ms: None,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = conn.prepare_cached(&ttft)?;
        let ttft = stmt
            .query_map(args.as_slice(), |row| {
                Ok((
                    row.get(0)?,
                    row.get(1)?,
                    int(row, 2)?,
                    [int(row, 3)?, int(row, 4)?, int(row, 5)?],
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(analytics::merge(points, ttft, whole_range))
    }

    fn insert_request_logs(&self, logs: &[RequestLog]) -> Result<(), StoreError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut insert = tx.prepare_cached(&format!(
                "INSERT INTO request_logs ({REQUEST_LOG_COLUMNS}, bytes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ))?;
            for l in logs {
                insert.execute(params![
                    l.time_ms,
                    l.request_id,
                    l.provider,
                    l.request_body,
                    l.request_truncated,
                    l.response_kind.as_str(),
                    l.response_body,
                    l.response_truncated,
                    to_sql_int(l.bytes()),
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn requests(&self, query: &RequestQuery) -> Result<Vec<RequestRow>, StoreError> {
        let (mut conditions, mut args) = filter_sql(&query.range, &query.filter);
        if let Some(status) = query.status {
            conditions.push_str(" AND ");
            conditions.push_str(&status.sql());
        }
        let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
        args.push(&limit);
        let conn = self.read_conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS}, EXISTS (SELECT 1 FROM request_logs l
                 WHERE l.request_id = usage_records.request_id)
             FROM usage_records WHERE {conditions}
             ORDER BY time_ms DESC, id DESC LIMIT ?"
        ))?;
        let rows = stmt.query_map(args.as_slice(), |row| {
            Ok(RequestRow {
                record: record_from_row(row)?,
                logged: row.get(RECORD_COLUMN_COUNT)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn request(
        &self,
        request_id: &str,
    ) -> Result<(Vec<UsageRecord>, Option<RequestLog>), StoreError> {
        let conn = self.read_conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM usage_records WHERE request_id = ?1 ORDER BY time_ms, id"
        ))?;
        let records = stmt
            .query_map([request_id], record_from_row)?
            .collect::<Result<Vec<_>, _>>()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {REQUEST_LOG_COLUMNS} FROM request_logs WHERE request_id = ?1
             ORDER BY id DESC LIMIT 1"
        ))?;
        let mut rows = stmt.query_map([request_id], |row| {
            let kind: String = row.get(5)?;
            Ok(RequestLog {
                time_ms: row.get(0)?,
                request_id: row.get(1)?,
                provider: row.get(2)?,
                request_body: row.get(3)?,
                request_truncated: row.get(4)?,
                response_kind: ResponseKind::parse(&kind),
                response_body: row.get(6)?,
                response_truncated: row.get(7)?,
            })
        })?;
        let log = rows.next().transpose()?;
        Ok((records, log))
    }

    fn prune_request_logs(&self, before_ms: i64, max_total_bytes: u64) -> Result<u64, StoreError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let old = tx.execute("DELETE FROM request_logs WHERE time_ms < ?1", [before_ms])?;
        let over = tx.execute(
            "DELETE FROM request_logs WHERE id IN (
                 SELECT id FROM (SELECT id, SUM(bytes) OVER (ORDER BY time_ms DESC, id DESC) AS kept
                                 FROM request_logs)
                 WHERE kept > ?1)",
            [to_sql_int(max_total_bytes)],
        )?;
        tx.commit()?;
        Ok((old + over) as u64)
    }
}

/// The WHERE clause (range plus the filters given) and its arguments. Only the present
/// filters are added, so SQLite can pick the matching `(column, time_ms)` index.
fn filter_sql<'a>(range: &'a TimeRange, filter: &'a SeriesFilter) -> (String, Vec<&'a dyn ToSql>) {
    let mut sql = String::from("time_ms >= ? AND time_ms < ?");
    let mut args: Vec<&dyn ToSql> = vec![&range.from_ms, &range.to_ms];
    for (column, value) in [
        ("provider", &filter.provider),
        ("model", &filter.model),
        ("user_id", &filter.user),
        ("agent_id", &filter.agent),
    ] {
        if let Some(value) = value {
            sql.push_str(" AND ");
            sql.push_str(column);
            sql.push_str(" = ?");
            args.push(value);
        }
    }
    (sql, args)
}

/// One scan sums every bucket per time bucket; the 7 columns are then unpivoted into one
/// point per token type.
fn token_type_series(
    conn: &Connection,
    bucket_ms: i64,
    conditions: &str,
    args: &[&dyn ToSql],
) -> Result<Vec<SeriesPoint>, StoreError> {
    let sums: Vec<String> = TokenType::COLUMNS
        .iter()
        .map(|c| format!("SUM({c}), SUM({c} > 0)"))
        .collect();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT (time_ms / {bucket_ms}) * {bucket_ms} AS bucket, {}
         FROM usage_records WHERE {conditions}
         GROUP BY bucket ORDER BY bucket",
        sums.join(", ")
    ))?;
    let rows = stmt.query_map(args, |row| {
        let bucket_ms: i64 = row.get(0)?;
        let mut points = Vec::with_capacity(TokenType::ALL.len());
        for (i, token_type) in TokenType::ALL.iter().enumerate() {
            points.push(SeriesPoint {
                bucket_ms,
                key: Some(token_type.as_str().to_string()),
                tokens: from_sql_int(row.get(1 + 2 * i)?),
                requests: from_sql_int(row.get(2 + 2 * i)?),
                cost_nanousd: None,
                unpriced_requests: 0,
            });
        }
        Ok(points)
    })?;
    let mut points = Vec::new();
    for row in rows {
        points.extend(row?);
    }
    Ok(points)
}

fn totals_from_row(row: &Row<'_>, first: usize) -> rusqlite::Result<UsageTotals> {
    let n = |i: usize| -> rusqlite::Result<u64> { Ok(from_sql_int(row.get(first + i)?)) };
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

fn record_from_row(row: &Row<'_>) -> rusqlite::Result<UsageRecord> {
    let count = |i: usize| -> rusqlite::Result<u64> { Ok(from_sql_int(row.get(i)?)) };
    let optional_count = |i: usize| -> rusqlite::Result<Option<u64>> {
        Ok(row.get::<_, Option<i64>>(i)?.map(from_sql_int))
    };
    let provider_type: String = row.get(3)?;
    let outcome: String = row.get(28)?;
    let outcome = Outcome::parse(&outcome).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            28,
            Type::Text,
            format!("unknown outcome `{outcome}`").into(),
        )
    })?;
    let model_answered: Option<String> = row.get(5)?;
    Ok(UsageRecord {
        time_ms: row.get(0)?,
        request_id: row.get(1)?,
        provider: row.get(2)?,
        provider_type: stored_provider_type(&provider_type).into(),
        model_requested: row.get(4)?,
        model_answered: model_answered.clone(),
        principal: row.get(6)?,
        user: row.get(7)?,
        agent: row.get(8)?,
        api_path: row.get(9)?,
        status: row.get(10)?,
        streamed: row.get(11)?,
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
            service_tier: row.get(22)?,
            provider_total: optional_count(21)?,
        },
        usage_reported: row.get(20)?,
        cost_nanousd: optional_count(23)?,
        unpriced_reason: row.get(24)?,
        latency_ms: count(25)?,
        ttfb_ms: optional_count(26)?,
        conversation_id: row.get(27)?,
        trace_parent: None,
        outcome,
    })
}

#[cfg(test)]
mod tests;
