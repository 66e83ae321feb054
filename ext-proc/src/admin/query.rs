//! Query parameters of the usage endpoints, checked into store queries.

use super::error::ApiError;
use crate::store::time::{self, parse_instant, MS_PER_DAY};
use crate::store::{
    Granularity, GroupBy, RequestQuery, SeriesFilter, SeriesQuery, StatusFilter, TimeRange,
};
use serde::Deserialize;

/// A series may have at most this many buckets (an hourly series: about 208 days).
pub const MAX_BUCKETS: i64 = 5000;
/// `records.csv` without `limit`.
pub const DEFAULT_RECORD_LIMIT: usize = 10_000;
/// `records.csv` never returns more rows than this.
pub const MAX_RECORD_LIMIT: usize = 100_000;
/// The range when `from` is not given: this long before `to`.
const DEFAULT_SPAN_MS: i64 = 7 * MS_PER_DAY;
/// The provider summary's window when `days` is not given, and its largest.
pub const DEFAULT_SUMMARY_DAYS: u32 = 7;
pub const MAX_SUMMARY_DAYS: u32 = 92;

/// `?from=&to=&granularity=&group_by=&provider=&model=&user=&agent=`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeriesParams {
    pub from: Option<String>,
    pub to: Option<String>,
    pub granularity: Option<String>,
    pub group_by: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub user: Option<String>,
    pub agent: Option<String>,
}

/// `?from=&to=&limit=`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsParams {
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<String>,
}

/// `?from=&to=&provider=&model=&user=&agent=&status=&limit=` (the Requests page)
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestsParams {
    pub from: Option<String>,
    pub to: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    pub user: Option<String>,
    pub agent: Option<String>,
    pub status: Option<String>,
    pub limit: Option<String>,
}

/// `/api/v1/requests` without `limit`, and its most.
pub const DEFAULT_REQUESTS_LIMIT: usize = 100;
pub const MAX_REQUESTS_LIMIT: usize = 1000;

/// `?days=`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SummaryParams {
    pub days: Option<String>,
}

impl SeriesParams {
    pub fn into_query(self, now_ms: i64) -> Result<SeriesQuery, ApiError> {
        let granularity = match self.granularity.as_deref().filter(|s| !s.is_empty()) {
            None => Granularity::Day,
            Some(g) => Granularity::parse(g).ok_or_else(|| {
                ApiError::BadQuery(format!(
                    "`granularity` is `hour` or `day`, not `{}`",
                    clip(g)
                ))
            })?,
        };
        let group_by = match self.group_by.as_deref().filter(|s| !s.is_empty()) {
            None => GroupBy::Provider,
            Some(g) => GroupBy::parse(g).ok_or_else(|| {
                ApiError::BadQuery(format!(
                    "`group_by` is one of provider, model, token_type, user, agent; not `{}`",
                    clip(g)
                ))
            })?,
        };
        let range = range(self.from.as_deref(), self.to.as_deref(), now_ms)?;
        let buckets = bucket_count(range, granularity);
        if buckets > MAX_BUCKETS {
            return Err(ApiError::BadQuery(format!(
                "the range has {buckets} {} buckets; at most {MAX_BUCKETS} are allowed",
                granularity.as_str()
            )));
        }
        let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
        Ok(SeriesQuery {
            range,
            granularity,
            group_by,
            filter: SeriesFilter {
                provider: non_empty(self.provider),
                model: non_empty(self.model),
                user: non_empty(self.user),
                agent: non_empty(self.agent),
            },
        })
    }
}

impl RecordsParams {
    pub fn into_range_and_limit(self, now_ms: i64) -> Result<(TimeRange, usize), ApiError> {
        let range = range(self.from.as_deref(), self.to.as_deref(), now_ms)?;
        let limit = match self.limit.as_deref().filter(|s| !s.is_empty()) {
            None => DEFAULT_RECORD_LIMIT,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=MAX_RECORD_LIMIT).contains(&n) => n,
                _ => {
                    return Err(ApiError::BadQuery(format!(
                        "`limit` is a number from 1 to {MAX_RECORD_LIMIT}, not `{}`",
                        clip(l)
                    )))
                }
            },
        };
        Ok((range, limit))
    }
}

impl RequestsParams {
    pub fn into_query(self, now_ms: i64) -> Result<RequestQuery, ApiError> {
        let range = range(self.from.as_deref(), self.to.as_deref(), now_ms)?;
        let limit = match self.limit.as_deref().filter(|s| !s.is_empty()) {
            None => DEFAULT_REQUESTS_LIMIT,
            Some(l) => match l.parse::<usize>() {
                Ok(n) if (1..=MAX_REQUESTS_LIMIT).contains(&n) => n,
                _ => {
                    return Err(ApiError::BadQuery(format!(
                        "`limit` is a number from 1 to {MAX_REQUESTS_LIMIT}, not `{}`",
                        clip(l)
                    )))
                }
            },
        };
        let status = match self.status.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(s) => Some(StatusFilter::parse(s).ok_or_else(|| {
                ApiError::BadQuery(format!(
                    "`status` is a status (`429`), a class (`5xx`) or `error`; not `{}`",
                    clip(s)
                ))
            })?),
        };
        let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
        Ok(RequestQuery {
            range,
            filter: SeriesFilter {
                provider: non_empty(self.provider),
                model: non_empty(self.model),
                user: non_empty(self.user),
                agent: non_empty(self.agent),
            },
            status,
            limit,
        })
    }
}

impl SummaryParams {
    pub fn days(&self) -> Result<u32, ApiError> {
        match self.days.as_deref().filter(|s| !s.is_empty()) {
            None => Ok(DEFAULT_SUMMARY_DAYS),
            Some(d) => match d.parse::<u32>() {
                Ok(n) if (1..=MAX_SUMMARY_DAYS).contains(&n) => Ok(n),
                _ => Err(ApiError::BadQuery(format!(
                    "`days` is a number from 1 to {MAX_SUMMARY_DAYS}, not `{}`",
                    clip(d)
                ))),
            },
        }
    }
}

/// `[from, to)`: `to` defaults to now, `from` to 7 days before `to`.
fn range(from: Option<&str>, to: Option<&str>, now_ms: i64) -> Result<TimeRange, ApiError> {
    let instant = |name: &str, value: &str| {
        parse_instant(value).map_err(|e| ApiError::BadQuery(format!("`{name}`: {e}")))
    };
    let to_ms = match to.filter(|s| !s.is_empty()) {
        Some(t) => instant("to", t)?,
        None => now_ms,
    };
    let from_ms = match from.filter(|s| !s.is_empty()) {
        Some(f) => instant("from", f)?,
        None => to_ms.saturating_sub(DEFAULT_SPAN_MS),
    };
    if from_ms < 0 {
        return Err(ApiError::BadQuery("`from` is before 1970".into()));
    }
    if from_ms >= to_ms {
        return Err(ApiError::BadQuery(format!(
            "`from` ({}) must be before `to` ({})",
            time::format_rfc3339(from_ms),
            time::format_rfc3339(to_ms)
        )));
    }
    Ok(TimeRange { from_ms, to_ms })
}

/// How many buckets overlap the range.
pub fn bucket_count(range: TimeRange, granularity: Granularity) -> i64 {
    let size = granularity.bucket_ms();
    let first = range.from_ms.div_euclid(size) * size;
    (range.to_ms - first).div_euclid(size) + i64::from((range.to_ms - first) % size != 0)
}

/// The start of every bucket that overlaps the range, oldest first.
pub fn bucket_starts(range: TimeRange, granularity: Granularity) -> impl Iterator<Item = i64> {
    let size = granularity.bucket_ms();
    let first = range.from_ms.div_euclid(size) * size;
    (0..)
        .map(move |i: i64| first.saturating_add(i.saturating_mul(size)))
        .take_while(move |start| *start < range.to_ms)
}

/// Echoed values are cut, so an error never carries a whole oversized parameter.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}
