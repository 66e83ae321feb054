use super::*;
use crate::store::sqlite::SqliteStore;
use crate::store::tests::{record, unpriced};
use crate::store::time::{format_rfc3339, UtcDay, MS_PER_DAY, MS_PER_HOUR};
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

const TOKEN: &str = "admin-secret-token";

/// Today's UTC midnight: records are placed relative to it, since the summary ends today.
fn today() -> i64 {
    UtcDay::today().start_ms()
}

fn store() -> Arc<SqliteStore> {
    let store = SqliteStore::open_in_memory().unwrap();
    let mut claude = record(today() - 2 * MS_PER_DAY + 5, "anthropic", "claude");
    claude.user = Some("bob".into());
    store
        .insert_batch(&[
            record(today() + 1, "openai", "gpt-4o"),
            unpriced(record(today() + MS_PER_HOUR + 1, "openai", "o3")),
            claude,
            record(today() - 30 * MS_PER_DAY, "openai", "ancient"),
        ])
        .unwrap();
    Arc::new(store)
}

fn router_with(api: impl FnOnce(AdminApi) -> AdminApi) -> Router {
    let metrics = Arc::new(Metrics::default());
    metrics.observe(&[record(today(), "openai", "gpt-4o")]);
    api(AdminApi::new(
        store(),
        metrics,
        BearerToken::new(TOKEN).unwrap(),
    ))
    .router()
}

fn router() -> Router {
    router_with(|api| api)
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    /// The gateway's error shape, and its code.
    fn error_code(&self) -> String {
        let v = self.json();
        assert_eq!(v["type"], "error", "{}", self.body);
        assert_eq!(v["source"], "gateway");
        assert!(v["error"]["message"].is_string());
        v["error"]["code"].as_str().unwrap().to_string()
    }
}

async fn call(router: &Router, method: Method, uri: &str, authorization: Option<&str>) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

async fn get(router: &Router, uri: &str) -> Answer {
    call(router, Method::GET, uri, Some(&format!("Bearer {TOKEN}"))).await
}

#[tokio::test]
async fn healthz_needs_no_credential() {
    let answer = call(&router(), Method::GET, "/healthz", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["status"], "ok");
}

#[tokio::test]
async fn the_api_needs_the_admin_token() {
    let router = router();
    for uri in [
        "/api/v1/providers/summary",
        "/api/v1/usage/series",
        "/api/v1/usage/series.csv",
        "/api/v1/usage/records.csv",
        "/metrics",
    ] {
        let missing = call(&router, Method::GET, uri, None).await;
        assert_eq!(missing.status, StatusCode::UNAUTHORIZED, "{uri}");
        assert_eq!(missing.error_code(), "missing_credential");
        assert!(missing.headers.contains_key("www-authenticate"));

        for wrong in [
            "Bearer admin-secret-tokeN",
            "Bearer admin-secret-token-and-more",
            "Basic YWRtaW46c2VjcmV0",
            "admin-secret-token",
        ] {
            let answer = call(&router, Method::GET, uri, Some(wrong)).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{uri} {wrong}");
            assert_eq!(answer.error_code(), "invalid_credential");
            assert!(!answer.body.contains(TOKEN));
        }
        let ok = call(
            &router,
            Method::GET,
            uri,
            Some("bearer  admin-secret-token "),
        )
        .await;
        assert_eq!(ok.status, StatusCode::OK, "{uri}: {}", ok.body);
    }
}

#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let request = Request::get("/api/v1/usage/series")
        .header("authorization", format!("Bearer {TOKEN}"))
        .header("authorization", "Bearer other")
        .body(Body::empty())
        .unwrap();
    let response = router().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn metrics_access_can_be_public_or_separate() {
    let public = router_with(|api| api.metrics_access(MetricsAccess::Public));
    let answer = call(&public, Method::GET, "/metrics", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    assert!(answer.body.contains("aigw_requests_total{"));
    // The rest of the API still needs the admin token.
    let api = call(&public, Method::GET, "/api/v1/usage/series", None).await;
    assert_eq!(api.status, StatusCode::UNAUTHORIZED);

    let scrape = BearerToken::new("scrape-token").unwrap();
    let separate = router_with(|api| api.metrics_access(MetricsAccess::Separate(Arc::new(scrape))));
    let scraped = call(
        &separate,
        Method::GET,
        "/metrics",
        Some("Bearer scrape-token"),
    )
    .await;
    assert_eq!(scraped.status, StatusCode::OK);
    let admin = call(
        &separate,
        Method::GET,
        "/metrics",
        Some(&format!("Bearer {TOKEN}")),
    )
    .await;
    assert_eq!(admin.status, StatusCode::UNAUTHORIZED);
    let denied = call(
        &separate,
        Method::GET,
        "/api/v1/usage/series",
        Some("Bearer scrape-token"),
    )
    .await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_custom_check_can_forbid() {
    let check = |headers: &HeaderMap| -> Result<(), Denied> {
        match headers.get("x-role").map(|v| v.as_bytes()) {
            Some(b"admin") => Ok(()),
            Some(_) => Err(Denied::Forbidden("the admin role is required".into())),
            None => Err(Denied::Missing),
        }
    };
    let router = AdminApi::new(store(), Arc::default(), check).router();
    let request = |role: &str| {
        Request::get("/api/v1/providers/summary")
            .header("x-role", role)
            .body(Body::empty())
            .unwrap()
    };
    let forbidden = router.clone().oneshot(request("viewer")).await.unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    let ok = router.oneshot(request("admin")).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
}

#[tokio::test]
async fn provider_summary_lists_seven_days_with_exact_costs() {
    let router =
        router_with(|api| api.known_providers(Arc::new(|| vec!["openai".into(), "idle".into()])));
    let answer = get(&router, "/api/v1/providers/summary").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let v = answer.json();
    let days = v["days"].as_array().unwrap();
    assert_eq!(days.len(), 7);
    assert_eq!(days[6], UtcDay::today().iso());
    let providers = v["providers"].as_array().unwrap();
    let names: Vec<&str> = providers
        .iter()
        .map(|p| p["provider"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["anthropic", "idle", "openai"]);

    let openai = &providers[2];
    assert_eq!(openai["requests"], 2);
    assert_eq!(openai["unpriced_requests"], 1);
    assert_eq!(openai["cost_nanousd"], 1_500_000);
    assert_eq!(openai["cost_usd"], "0.0015");
    assert_eq!(openai["tokens"]["input"], 200);
    assert_eq!(openai["tokens"]["cache_write_30m"], 10);
    assert_eq!(openai["tokens"]["reasoning"], 20);
    assert_eq!(openai["tokens"]["total"], 350);
    let daily = openai["daily"].as_array().unwrap();
    assert_eq!(daily.len(), 7);
    assert_eq!(daily[6]["requests"], 2);
    assert_eq!(daily[0]["requests"], 0);
    assert_eq!(daily[0]["cost_usd"], "0.00");

    let idle = &providers[1];
    assert_eq!(idle["requests"], 0);
    assert_eq!(idle["daily"].as_array().unwrap().len(), 7);
    assert_eq!(providers[0]["daily"][4]["requests"], 1);

    let three = get(&router, "/api/v1/providers/summary?days=3")
        .await
        .json();
    assert_eq!(three["days"].as_array().unwrap().len(), 3);
    let bad = get(&router, "/api/v1/providers/summary?days=1000").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn series_are_dense_and_filtered() {
    let router = router();
    let from = UtcDay::today().plus(-2).iso();
    let to = UtcDay::today().plus(1).iso();
    let answer = get(
        &router,
        &format!("/api/v1/usage/series?from={from}&to={to}&granularity=day&group_by=provider"),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let v = answer.json();
    assert_eq!(v["granularity"], "day");
    assert_eq!(v["group_by"], "provider");
    assert_eq!(v["from"], format_rfc3339(today() - 2 * MS_PER_DAY));
    assert_eq!(v["buckets"].as_array().unwrap().len(), 3);
    let series = v["series"].as_array().unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!(series[0]["key"], "anthropic");
    let points = series[0]["points"].as_array().unwrap();
    assert_eq!(points.len(), 3);
    assert_eq!(points[0]["requests"], 1);
    assert_eq!(points[0]["bucket"], v["buckets"][0]);
    assert_eq!(points[1]["requests"], 0);
    assert_eq!(points[1]["cost_nanousd"], 0);
    assert_eq!(series[1]["key"], "openai");
    assert_eq!(series[1]["totals"]["requests"], 2);
    assert_eq!(series[1]["totals"]["unpriced_requests"], 1);
    assert_eq!(series[1]["totals"]["cost_usd"], "0.0015");
    assert!(series[1]["totals"].get("bucket").is_none());

    // Hourly, one user, by model; timestamps with offsets are understood.
    let from = format_rfc3339(today()).replace('Z', "+00:00");
    let to = format_rfc3339(today() + 3 * MS_PER_HOUR);
    let uri = format!(
        "/api/v1/usage/series?from={}&to={to}&granularity=hour&group_by=model&user=alice",
        from.replace('+', "%2B")
    );
    let v = get(&router, &uri).await.json();
    assert_eq!(v["buckets"].as_array().unwrap().len(), 3);
    let keys: Vec<&str> = v["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys, ["gpt-4o-2025-01-01", "o3-2025-01-01"]);
    assert_eq!(v["series"][1]["points"][1]["requests"], 1);
    assert_eq!(v["series"][1]["points"][1]["cost_nanousd"], 0);

    // Token types: seven series, no cost.
    let v = get(
        &router,
        &format!("/api/v1/usage/series?group_by=token_type&provider=openai&to={to}"),
    )
    .await
    .json();
    let series = v["series"].as_array().unwrap();
    let keys: Vec<&str> = series.iter().map(|s| s["key"].as_str().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "input",
            "cache_read",
            "cache_write_5m",
            "cache_write_1h",
            "cache_write_30m",
            "cache_write_12h",
            "output"
        ]
    );
    assert_eq!(series[0]["totals"]["tokens"], 200);
    assert!(series[0]["totals"]["cost_nanousd"].is_null());
    assert!(series[0]["totals"]["cost_usd"].is_null());
    // Without `from`, the range starts 7 days before `to`.
    assert_eq!(v["buckets"].as_array().unwrap().len(), 8);
    assert_eq!(
        v["from"],
        format_rfc3339(today() + 3 * MS_PER_HOUR - 7 * MS_PER_DAY)
    );
}

#[tokio::test]
async fn bad_queries_answer_400_in_the_error_shape() {
    let router = router();
    for (query, needle) in [
        ("granularity=minute", "granularity"),
        ("group_by=country", "group_by"),
        ("from=yesterday", "from"),
        ("from=2025-02-01&to=2025-01-01", "before"),
        ("from=2000-01-01&granularity=hour", "buckets"),
        ("from=1969-12-31&to=1970-01-02", "1970"),
        ("color=blue", "color"),
    ] {
        let answer = get(&router, &format!("/api/v1/usage/series?{query}")).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{query}: {}",
            answer.body
        );
        assert_eq!(answer.error_code(), "invalid_query");
        let message = answer.json()["error"]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(message.contains(needle), "{query}: {message}");
    }
    let answer = get(&router, "/api/v1/usage/records.csv?limit=0").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let answer = get(&router, "/api/v1/usage/records.csv?limit=100001").await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_in_the_error_shape() {
    let router = router();
    let answer = get(&router, "/api/v1/nope").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    answer.error_code();
    let answer = call(
        &router,
        Method::POST,
        "/api/v1/usage/series",
        Some(&format!("Bearer {TOKEN}")),
    )
    .await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    answer.error_code();
}

#[tokio::test]
async fn series_csv_has_the_points() {
    // An explicit `to`: the fixture has a record one hour into today, maybe still ahead.
    let to = UtcDay::today().plus(1).iso();
    let uri = format!("/api/v1/usage/series.csv?group_by=provider&granularity=day&to={to}");
    let answer = get(&router(), &uri).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], "text/csv; charset=utf-8");
    assert!(answer.headers["content-disposition"]
        .to_str()
        .unwrap()
        .contains("usage-by-provider-day.csv"));
    let lines: Vec<&str> = answer.body.split("\r\n").collect();
    assert_eq!(
        lines[0],
        "bucket,provider,requests,tokens,cost_nanousd,cost_usd,unpriced_requests"
    );
    let today = format_rfc3339(today());
    assert!(
        lines.contains(&format!("{today},openai,2,350,1500000,0.0015,1").as_str()),
        "{lines:?}"
    );
    assert_eq!(lines.len(), 4, "header, two rows, and the final CRLF");
}

#[tokio::test]
async fn records_csv_is_capped_and_says_so() {
    let router = router();
    let all = get(
        &router,
        "/api/v1/usage/records.csv?from=2000-01-01&to=2100-01-01",
    )
    .await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(all.headers["x-aigw-truncated"], "false");
    assert_eq!(all.body.lines().count(), 5);
    assert!(all.body.lines().nth(1).unwrap().contains("ancient"));

    let capped = get(
        &router,
        "/api/v1/usage/records.csv?from=2000-01-01&to=2100-01-01&limit=2",
    )
    .await;
    assert_eq!(capped.headers["x-aigw-truncated"], "true");
    assert_eq!(capped.body.lines().count(), 3);
    assert!(capped.headers["content-disposition"]
        .to_str()
        .unwrap()
        .contains("usage-records.csv"));
}
