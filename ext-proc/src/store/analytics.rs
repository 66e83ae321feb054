//! Latency, time to first token and error rate per provider or model, computed by the
//! database. One SQL text serves both backends (only the table name and placeholders
//! differ), so SQLite and PostgreSQL give the same numbers.
//!
//! - **Percentiles** are nearest-rank: the p-th percentile of n values is the value at rank
//!   ⌈p·n/100⌉ in ascending order (the smallest value with at least p % of the values at or
//!   below it). Always one of the recorded values; no interpolation.
//! - **Latency** is the record's `latency_ms`: request start to response end.
//! - **Time to first token** is `ttfb_ms` of streamed records: request start to the first
//!   byte of the streamed body, which is the provider's first event (OpenAI's first chunk,
//!   Anthropic's `message_start`, Gemini's first candidate, Bedrock's first frame). Providers
//!   send it when generation starts, so it is the figure a client sees as the first token.
//! - **Errors** are records with an upstream status of 400 or more, or no answer because the
//!   upstream failed (`outcome = upstream_error`). A client that went away is not an error.

use super::{GroupBy, SeriesQuery};
use serde::Serialize;

/// The percentiles reported.
pub const PERCENTILES: [u32; 3] = [50, 90, 99];

/// One group's figures, in one time bucket or over the whole range.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LatencyPoint {
    /// Bucket start (Unix ms); `None` for the whole range.
    pub bucket_ms: Option<i64>,
    /// The group's value (provider or model); `None` when the record has none.
    pub key: Option<String>,
    pub requests: u64,
    pub errors: u64,
    /// `latency_ms` p50, p90, p99.
    pub latency_ms: [u64; 3],
    /// Streamed records with a first byte.
    pub streamed: u64,
    /// `ttfb_ms` of those, p50, p90, p99; `None` without any.
    pub ttft_ms: Option<[u64; 3]>,
}

/// The two statements of a latency query: latency and errors of every record, then time to
/// first token of the streamed ones. `table` is the records table, `conditions` the
/// query's filter (with its placeholders), `bucket_ms` `None` for the whole range.
pub(crate) fn sql(table: &str, conditions: &str, bucket_ms: Option<i64>, key: &str) -> [String; 2] {
    let bucket = match bucket_ms {
        Some(b) => format!("(time_ms / {b}) * {b}"),
        None => "CAST(0 AS BIGINT)".into(),
    };
    let ranks = |col: &str| {
        PERCENTILES
            .iter()
            .map(|p| format!("MIN(CASE WHEN rn >= (n * {p} + 99) / 100 THEN {col} END)"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let ranked = |value: &str, extra_where: &str| {
        format!(
            "SELECT {bucket} AS bucket, {key} AS key, {value} AS v,
                    CASE WHEN status >= 400 OR outcome = 'upstream_error' THEN 1 ELSE 0 END AS e,
                    ROW_NUMBER() OVER (PARTITION BY {bucket}, {key} ORDER BY {value}) AS rn,
                    COUNT(*) OVER (PARTITION BY {bucket}, {key}) AS n
             FROM {table} WHERE {conditions}{extra_where}"
        )
    };
    let order = "ORDER BY bucket, key IS NULL, key";
    [
        format!(
            "SELECT bucket, key, MAX(n), SUM(e), {} FROM ({}) AS ranked GROUP BY bucket, key {order}",
            ranks("v"),
            ranked("latency_ms", "")
        ),
        format!(
            "SELECT bucket, key, MAX(n), {} FROM ({}) AS ranked GROUP BY bucket, key {order}",
            ranks("v"),
            ranked("ttfb_ms", " AND streamed AND ttfb_ms IS NOT NULL")
        ),
    ]
}

/// The grouping column; latency groups by provider or model only.
pub(crate) fn key_column(group_by: GroupBy) -> Option<&'static str> {
    matches!(group_by, GroupBy::Provider | GroupBy::Model)
        .then(|| group_by.column())
        .flatten()
}

/// Joins the TTFT rows into the latency rows (both ordered the same way).
pub(crate) fn merge(
    mut points: Vec<LatencyPoint>,
    ttft: Vec<(i64, Option<String>, u64, [u64; 3])>,
    whole_range: bool,
) -> Vec<LatencyPoint> {
    for (bucket, key, n, p) in ttft {
        let bucket = (!whole_range).then_some(bucket);
        if let Some(point) = points
            .iter_mut()
            .find(|q| q.bucket_ms == bucket && q.key == key)
        {
            point.streamed = n;
            point.ttft_ms = Some(p);
        }
    }
    points
}

/// A latency query: the series query's range and filter, by provider or model.
pub fn is_groupable(query: &SeriesQuery) -> bool {
    key_column(query.group_by).is_some()
}
