//! The handlers and the JSON they answer with. Store calls block, so they run on
//! `spawn_blocking`.

use super::error::ApiError;
use super::query::{self, RecordsParams, RequestsParams, SeriesParams, SummaryParams};
use super::AdminState;
use crate::store::analytics::LatencyPoint;
use crate::store::csv::{nanousd_to_usd, records_csv as records_to_csv, series_csv};
use crate::store::time::{format_rfc3339, now_ms, UtcDay};
use crate::store::{
    DailyUsage, GroupBy, ProviderSummary, SeriesPoint, SeriesQuery, TokenTotals, TokenType,
    UsageTotals,
};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

type AppState = State<Arc<AdminState>>;

pub async fn healthz() -> Response {
    json(&serde_json::json!({ "status": "ok" }))
}

pub async fn metrics(State(state): AppState) -> Response {
    let body = state.metrics.render();
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], body).into_response()
}

pub async fn not_found(uri: Uri) -> Response {
    ApiError::NotFound(uri.path().chars().take(200).collect()).into_response()
}

pub async fn method_not_allowed() -> Response {
    ApiError::MethodNotAllowed.into_response()
}

pub async fn providers_summary(
    State(state): AppState,
    params: Result<Query<SummaryParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let days = params.map_err(bad_query)?.days()?;
    let today = UtcDay::today();
    let store = Arc::clone(&state.store);
    let mut summaries = blocking(move || store.provider_summary(today, days)).await?;
    let first_day = today.plus(1 - i64::from(days));
    if let Some(known) = &state.known_providers {
        for provider in known() {
            if !summaries.iter().any(|s| s.provider == provider) {
                summaries.push(ProviderSummary {
                    provider,
                    totals: UsageTotals::default(),
                    daily: (0..i64::from(days))
                        .map(|i| DailyUsage {
                            day: first_day.plus(i),
                            totals: UsageTotals::default(),
                        })
                        .collect(),
                });
            }
        }
        summaries.sort_by(|a, b| a.provider.cmp(&b.provider));
    }
    Ok(json(&SummaryResponse {
        days: (0..i64::from(days))
            .map(|i| first_day.plus(i).iso())
            .collect(),
        providers: summaries.iter().map(ProviderJson::from).collect(),
    }))
}

pub async fn usage_series(
    State(state): AppState,
    params: Result<Query<SeriesParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = params.map_err(bad_query)?.0.into_query(now_ms())?;
    let store = Arc::clone(&state.store);
    let q = query.clone();
    let points = blocking(move || store.usage_series(&q)).await?;
    Ok(json(&series_response(&query, points)))
}

pub async fn usage_series_csv(
    State(state): AppState,
    params: Result<Query<SeriesParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = params.map_err(bad_query)?.0.into_query(now_ms())?;
    let store = Arc::clone(&state.store);
    let q = query.clone();
    let points = blocking(move || store.usage_series(&q)).await?;
    let filename = format!(
        "usage-by-{}-{}.csv",
        query.group_by.as_str(),
        query.granularity.as_str()
    );
    Ok(csv(
        series_csv(query.group_by.as_str(), &points),
        &filename,
        None,
    ))
}

/// Latency and time-to-first-token percentiles and error rates per provider or model
/// (`group_by`), per bucket (sparse: buckets without records are absent) and over the range.
pub async fn latency(
    State(state): AppState,
    params: Result<Query<SeriesParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = params.map_err(bad_query)?.0.into_query(now_ms())?;
    if !crate::store::analytics::is_groupable(&query) {
        return Err(ApiError::BadQuery(format!(
            "latency is grouped by provider or model, not `{}`",
            query.group_by.as_str()
        )));
    }
    let store = Arc::clone(&state.store);
    let q = query.clone();
    let (totals, points) =
        blocking(move || Ok((store.latency(&q, true)?, store.latency(&q, false)?))).await?;
    let view = |p: &LatencyPoint| {
        let pct = |v: [u64; 3]| serde_json::json!({ "p50": v[0], "p90": v[1], "p99": v[2] });
        serde_json::json!({
            "bucket": p.bucket_ms.map(format_rfc3339),
            "key": p.key,
            "requests": p.requests,
            "errors": p.errors,
            "error_rate": if p.requests == 0 { 0.0 } else { p.errors as f64 / p.requests as f64 },
            "latency_ms": pct(p.latency_ms),
            "streamed": p.streamed,
            "ttft_ms": p.ttft_ms.map(pct),
        })
    };
    Ok(json(&serde_json::json!({
        "from": format_rfc3339(query.range.from_ms),
        "to": format_rfc3339(query.range.to_ms),
        "granularity": query.granularity.as_str(),
        "group_by": query.group_by.as_str(),
        "percentiles": "nearest-rank",
        "totals": totals.iter().map(view).collect::<Vec<_>>(),
        "points": points.iter().map(view).collect::<Vec<_>>(),
    })))
}

/// MCP tool calls in the range, newest first.
pub async fn tool_calls(
    State(state): AppState,
    params: Result<Query<RecordsParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (range, limit) = params
        .map_err(bad_query)?
        .0
        .into_range_and_limit(now_ms())?;
    let store = Arc::clone(&state.store);
    let calls = blocking(move || store.tool_calls(range, limit)).await?;
    Ok(json(&serde_json::json!({ "tool_calls": calls })))
}

/// Usage records for the Requests page, newest first, each saying whether its bodies
/// are logged.
pub async fn requests(
    State(state): AppState,
    params: Result<Query<RequestsParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let query = params.map_err(bad_query)?.0.into_query(now_ms())?;
    let store = Arc::clone(&state.store);
    let rows = blocking(move || store.requests(&query)).await?;
    Ok(json(&serde_json::json!({ "requests": rows })))
}

/// One request: its usage records (several when a pool fell back) and its log, if any.
pub async fn request(
    State(state): AppState,
    Path(request_id): Path<String>,
) -> Result<Response, ApiError> {
    let store = Arc::clone(&state.store);
    let id = request_id.clone();
    let (records, log) = blocking(move || store.request(&id)).await?;
    if records.is_empty() && log.is_none() {
        return Err(ApiError::Absent(format!(
            "no request with id '{}'",
            request_id.chars().take(64).collect::<String>()
        )));
    }
    Ok(json(&serde_json::json!({ "records": records, "log": log })))
}

pub async fn records_csv(
    State(state): AppState,
    params: Result<Query<RecordsParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let (range, limit) = params
        .map_err(bad_query)?
        .0
        .into_range_and_limit(now_ms())?;
    let store = Arc::clone(&state.store);
    // One row more than asked tells whether the export was cut.
    let mut records = blocking(move || store.records(range, limit + 1)).await?;
    let truncated = records.len() > limit;
    records.truncate(limit);
    Ok(csv(
        records_to_csv(&records),
        "usage-records.csv",
        Some(truncated),
    ))
}

fn bad_query(rejection: QueryRejection) -> ApiError {
    ApiError::BadQuery(format!("bad query string: {}", rejection.body_text()))
}

async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => Ok(result?),
        Err(e) => Err(ApiError::Task(e.to_string())),
    }
}

fn json<T: Serialize>(value: &T) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => ApiError::Task(format!("cannot encode the answer: {e}")).into_response(),
    }
}

/// `x-aigw-truncated: true` says the row cap cut the export.
const TRUNCATED: HeaderName = HeaderName::from_static("x-aigw-truncated");

fn csv(body: String, filename: &str, truncated: Option<bool>) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Some(truncated) = truncated {
        headers.insert(
            TRUNCATED,
            HeaderValue::from_static(if truncated { "true" } else { "false" }),
        );
    }
    response
}

#[derive(Serialize)]
struct SummaryResponse {
    /// The window's days, oldest first; every `daily` array follows them.
    days: Vec<String>,
    providers: Vec<ProviderJson>,
}

#[derive(Serialize)]
struct ProviderJson {
    provider: String,
    requests: u64,
    unpriced_requests: u64,
    cost_nanousd: u64,
    cost_usd: String,
    tokens: TokensJson,
    daily: Vec<DayJson>,
}

#[derive(Serialize)]
struct TokensJson {
    #[serde(flatten)]
    buckets: TokenTotals,
    /// Billable tokens: every bucket but reasoning.
    total: u64,
}

#[derive(Serialize)]
struct DayJson {
    day: String,
    requests: u64,
    unpriced_requests: u64,
    tokens: u64,
    cost_nanousd: u64,
    cost_usd: String,
}

impl From<&ProviderSummary> for ProviderJson {
    fn from(s: &ProviderSummary) -> Self {
        let t = &s.totals;
        Self {
            provider: s.provider.clone(),
            requests: t.requests,
            unpriced_requests: t.unpriced_requests,
            cost_nanousd: t.cost_nanousd,
            cost_usd: nanousd_to_usd(t.cost_nanousd),
            tokens: TokensJson {
                buckets: t.tokens,
                total: t.tokens.total(),
            },
            daily: s
                .daily
                .iter()
                .map(|d| DayJson {
                    day: d.day.iso(),
                    requests: d.totals.requests,
                    unpriced_requests: d.totals.unpriced_requests,
                    tokens: d.totals.tokens.total(),
                    cost_nanousd: d.totals.cost_nanousd,
                    cost_usd: nanousd_to_usd(d.totals.cost_nanousd),
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
struct SeriesResponse {
    from: String,
    to: String,
    granularity: &'static str,
    group_by: &'static str,
    /// Every bucket start of the range, oldest first; every series' `points` follow them
    /// (zero-filled).
    buckets: Vec<String>,
    series: Vec<SeriesJson>,
}

#[derive(Serialize)]
struct SeriesJson {
    /// `null` for records without a value for the group (no user sent, say).
    key: Option<String>,
    totals: PointJson,
    points: Vec<PointJson>,
}

#[derive(Serialize, Default, Clone)]
struct PointJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    bucket: Option<String>,
    requests: u64,
    tokens: u64,
    /// `null` for token-type series: cost is not stored per token bucket.
    cost_nanousd: Option<u64>,
    cost_usd: Option<String>,
    unpriced_requests: u64,
}

impl PointJson {
    fn add(&mut self, p: &SeriesPoint) {
        self.requests = self.requests.saturating_add(p.requests);
        self.tokens = self.tokens.saturating_add(p.tokens);
        self.unpriced_requests = self.unpriced_requests.saturating_add(p.unpriced_requests);
        if let Some(cost) = p.cost_nanousd {
            let sum = self.cost_nanousd.unwrap_or(0).saturating_add(cost);
            self.cost_nanousd = Some(sum);
            self.cost_usd = Some(nanousd_to_usd(sum));
        }
    }
}

/// Groups the store's sparse points by key and lays each series over every bucket. The
/// loops run over aggregated points and buckets (bounded by [`query::MAX_BUCKETS`]), never
/// over records.
fn series_response(query: &SeriesQuery, points: Vec<SeriesPoint>) -> SeriesResponse {
    let starts: Vec<i64> = query::bucket_starts(query.range, query.granularity).collect();
    let bucket_size = query.granularity.bucket_ms();
    let first = starts.first().copied().unwrap_or(0);
    let costed = query.group_by != GroupBy::TokenType;
    let empty_point = |start: i64| PointJson {
        bucket: Some(format_rfc3339(start)),
        cost_nanousd: costed.then_some(0),
        cost_usd: costed.then(|| nanousd_to_usd(0)),
        ..PointJson::default()
    };
    let empty_series = |key: Option<String>| SeriesJson {
        key,
        totals: PointJson {
            bucket: None,
            ..empty_point(0)
        },
        points: starts.iter().map(|s| empty_point(*s)).collect(),
    };

    // Token types come in their fixed order, all seven present; other keys sorted, `null`
    // last.
    let mut keyed: BTreeMap<(bool, Option<String>), SeriesJson> = BTreeMap::new();
    let mut token_types: Vec<SeriesJson> = Vec::new();
    if query.group_by == GroupBy::TokenType {
        token_types = TokenType::ALL
            .iter()
            .map(|t| empty_series(Some(t.as_str().to_string())))
            .collect();
    }
    for p in &points {
        let series = if query.group_by == GroupBy::TokenType {
            match token_types
                .iter_mut()
                .find(|s| s.key.as_deref() == p.key.as_deref())
            {
                Some(s) => s,
                None => continue,
            }
        } else {
            keyed
                .entry((p.key.is_none(), p.key.clone()))
                .or_insert_with(|| empty_series(p.key.clone()))
        };
        series.totals.add(p);
        let index = (p.bucket_ms - first).div_euclid(bucket_size);
        if let Some(point) = usize::try_from(index)
            .ok()
            .and_then(|i| series.points.get_mut(i))
        {
            point.add(p);
        }
    }
    let series = if query.group_by == GroupBy::TokenType {
        token_types
    } else {
        keyed.into_values().collect()
    };
    SeriesResponse {
        from: format_rfc3339(query.range.from_ms),
        to: format_rfc3339(query.range.to_ms),
        granularity: query.granularity.as_str(),
        group_by: query.group_by.as_str(),
        buckets: starts.iter().map(|s| format_rfc3339(*s)).collect(),
        series,
    }
}
