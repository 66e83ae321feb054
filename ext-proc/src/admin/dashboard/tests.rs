use super::*;
use crate::admin::{AdminApi, BearerToken};
use crate::metrics::Metrics;
use crate::secrets::SecretSources;
use crate::store::sqlite::SqliteStore;
use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::{json, Value};
use tower::ServiceExt;

const TOKEN: &str = "dashboard-admin-token";
const GOOD_KEY: &str = "sk-good-upstream-key-123";
const BAD_KEY: &str = "sk-revoked-upstream-key-456";

/// A stand-in upstream on a real port: each provider family's model listing, checking the
/// credential the way the provider does, and echoing a wrong key back in its error (as
/// OpenAI's does) so the test sees it is redacted.
async fn mock_upstream() -> String {
    async fn models(h: HeaderMap, header: &'static str, prefix: &'static str) -> Response {
        let got = h.get(header).and_then(|v| v.to_str().ok()).unwrap_or("");
        if got == format!("{prefix}{GOOD_KEY}") {
            let body = json!({"data": [{"id": "m-1"}, {"id": "m-2"}], "models": null});
            (StatusCode::OK, body.to_string()).into_response()
        } else {
            let body = json!({"error": {"message": format!("Incorrect API key provided: {got}")}});
            (StatusCode::UNAUTHORIZED, body.to_string()).into_response()
        }
    }
    let app = Router::new()
        .route(
            "/oa/v1/models",
            get(|h: HeaderMap| models(h, "authorization", "Bearer ")),
        )
        .route(
            "/open/v1/models",
            get(|h: HeaderMap| async move {
                let auth = h.contains_key("authorization");
                (
                    StatusCode::OK,
                    json!({"data": [], "auth": auth}).to_string(),
                )
            }),
        )
        .route(
            "/ant/v1/models",
            get(|h: HeaderMap| models(h, "x-api-key", "")),
        )
        .route(
            "/g/v1beta/models",
            get(|h: HeaderMap| async move {
                let ok = h.get("x-goog-api-key").is_some_and(|v| v == GOOD_KEY);
                let body = json!({"models": [{"name": "models/gemini"}]}).to_string();
                if ok {
                    (StatusCode::OK, body)
                } else {
                    (StatusCode::FORBIDDEN, "plain text refusal".to_string())
                }
            }),
        )
        .route(
            "/slow/v1/models",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .route(
            "/moved/v1/models",
            get(|| async { (StatusCode::FOUND, [(LOCATION, "http://127.0.0.1:9/steal")]) }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

struct Fixture {
    router: Router,
    _secrets: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let up = mock_upstream().await;
    let closed = closed_port();
    let config = json!({
        "providers": [
            {"name": "openai", "type": "openai", "base_url": format!("{up}/oa/v1"), "api_key_secret": "GOOD_KEY",
             "models": ["gpt-4o", {"name": "gpt-4o-mini", "input": "0.15", "output": "0.60"}]},
            {"name": "revoked", "type": "openai", "base_url": format!("{up}/oa/v1"), "api_key_secret": "BAD_KEY"},
            {"name": "keyless", "type": "openai-compatible", "base_url": format!("{up}/open/v1")},
            {"name": "closed", "type": "openai-compatible", "base_url": format!("http://127.0.0.1:{closed}/v1")},
            {"name": "slow", "type": "openai-compatible", "base_url": format!("{up}/slow/v1")},
            {"name": "moved", "type": "openai", "base_url": format!("{up}/moved/v1"), "api_key_secret": "GOOD_KEY"},
            {"name": "claude", "type": "anthropic", "base_url": format!("{up}/ant"), "api_key_secret": "GOOD_KEY"},
            {"name": "claude-v1", "type": "anthropic", "base_url": format!("{up}/ant/v1"), "api_key_secret": "GOOD_KEY"},
            {"name": "claude-own", "type": "anthropic", "base_url": format!("{up}/ant"), "authorization_passthrough": true},
            {"name": "gemini", "type": "google", "base_url": format!("{up}/g"), "api_key_secret": "GOOD_KEY"},
            {"name": "gemini-bad", "type": "google", "base_url": format!("{up}/g"), "api_key_secret": "BAD_KEY"},
            {"name": "off", "type": "openai", "base_url": format!("{up}/oa/v1"), "api_key_secret": "NOT_THERE", "enabled": false},
            {"name": "aws", "type": "bedrock", "region": "us-east-1",
             "aws": {"access_key_id_secret": "AWS_ID", "secret_access_key_secret": "AWS_SECRET"}},
        ]
    });
    let config =
        crate::config_file::from_text(std::path::Path::new("test.json"), &config.to_string())
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("GOOD_KEY", GOOD_KEY),
        ("BAD_KEY", BAD_KEY),
        ("AWS_ID", "AKIAEXAMPLEEXAMPLE12"),
        ("AWS_SECRET", "aws-secret-value-never-shown"),
    ] {
        std::fs::write(dir.path().join(name), value).unwrap();
    }
    let sources = SecretSources {
        dir: Some(dir.path().to_path_buf()),
        env: false,
    };
    let gw = Arc::new(Gateway::start(config, sources).await.unwrap());
    let store = Arc::new(SqliteStore::open_in_memory().unwrap());
    let router = AdminApi::new(
        store,
        Arc::new(Metrics::default()),
        BearerToken::new(TOKEN).unwrap(),
    )
    .protect(router_with(
        gw,
        Some("https://llm.example.com/".into()),
        Duration::from_millis(500),
    ))
    .router();
    Fixture {
        router,
        _secrets: dir,
    }
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
}

async fn call(router: &Router, method: Method, uri: &str, auth: bool) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if auth {
        request = request.header("authorization", format!("Bearer {TOKEN}"));
    }
    let response = router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
        .await
        .unwrap();
    Answer {
        status,
        headers,
        body: String::from_utf8(bytes.to_vec()).unwrap(),
    }
}

async fn test(router: &Router, provider: &str) -> Value {
    let uri = format!("/api/v1/providers/{provider}/test");
    let a = call(router, Method::POST, &uri, true).await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    for secret in [GOOD_KEY, BAD_KEY, "aws-secret-value-never-shown"] {
        assert!(!a.body.contains(secret), "{provider}: key in {}", a.body);
    }
    a.json()
}

#[tokio::test]
async fn the_shell_is_public_and_locked_down() {
    let f = fixture().await;
    let page = call(&f.router, Method::GET, "/", false).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.headers[CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(page.body.contains("/dashboard/app.js"));
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert_eq!(page.headers["x-content-type-options"], "nosniff");
    // The page has no inline script or style for the CSP to refuse.
    assert!(!page.body.contains("<script>") && !page.body.contains("style="));

    for (path, ty) in [
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/chart.js", "text/javascript"),
        ("/dashboard/app.css", "text/css"),
    ] {
        let a = call(&f.router, Method::GET, path, false).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        assert!(a.headers[CONTENT_TYPE].to_str().unwrap().starts_with(ty));
        let tag = a.headers[ETAG].to_str().unwrap().to_string();
        let again = f
            .router
            .clone()
            .oneshot(
                Request::get(path)
                    .header("if-none-match", &tag)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
    }
    let r = call(&f.router, Method::GET, "/dashboard/", false).await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(r.headers[LOCATION], "/");
    // Not an asset: the admin API's 404.
    let r = call(&f.router, Method::GET, "/dashboard/nope.js", false).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_endpoints_need_the_admin_token() {
    let f = fixture().await;
    for (method, uri) in [
        (Method::GET, "/api/v1/providers"),
        (Method::POST, "/api/v1/providers/openai/test"),
        (Method::POST, "/api/v1/providers/nope/test"),
    ] {
        let a = call(&f.router, method.clone(), uri, false).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        assert_eq!(a.json()["error"]["code"], "missing_credential");
    }
}

#[tokio::test]
async fn providers_lists_the_config_without_secret_values() {
    let f = fixture().await;
    let a = call(&f.router, Method::GET, "/api/v1/providers", true).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.headers[CACHE_CONTROL], "no-store");
    for secret in [GOOD_KEY, BAD_KEY, "aws-secret-value-never-shown"] {
        assert!(!a.body.contains(secret));
    }
    let v = a.json();
    assert_eq!(v["gateway_url"], "https://llm.example.com");
    let ps = v["providers"].as_array().unwrap();
    assert_eq!(ps.len(), 13);
    let by = |n: &str| ps.iter().find(|p| p["name"] == n).unwrap().clone();
    let openai = by("openai");
    assert_eq!(openai["type"], "openai");
    assert_eq!(openai["enabled"], true);
    assert_eq!(openai["proxy_path"], "/llm/v1/providers/openai");
    assert!(openai["base_url"].as_str().unwrap().ends_with("/oa/v1"));
    assert_eq!(openai["api_key_secret"], "GOOD_KEY");
    assert_eq!(openai["secrets_present"], true);
    assert_eq!(openai["authorization_passthrough"], false);
    assert_eq!(
        openai["models"],
        json!([{"name": "gpt-4o", "prices": {}},
               {"name": "gpt-4o-mini", "prices": {"input": "0.15", "output": "0.60"}}])
    );
    let off = by("off");
    assert_eq!(off["enabled"], false);
    assert_eq!(off["secrets_present"], false);
    assert_eq!(by("keyless")["api_key_secret"], Value::Null);
    assert_eq!(by("keyless")["models"], Value::Null);
    assert_eq!(by("claude-own")["authorization_passthrough"], true);
    assert_eq!(by("claude-own")["gateway_token_required"], true);
    let aws = by("aws");
    assert_eq!(aws["region"], "us-east-1");
    assert_eq!(
        aws["base_url"],
        "https://bedrock-runtime.us-east-1.amazonaws.com"
    );
    assert_eq!(aws["aws"]["credentials"], "secrets");
    assert_eq!(aws["aws"]["secret_refs"], json!(["AWS_ID", "AWS_SECRET"]));
    assert_eq!(aws["secrets_present"], true);
}

#[tokio::test]
async fn test_connection_passes_with_the_configured_key() {
    let f = fixture().await;
    let v = test(&f.router, "openai").await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["supported"], true);
    assert_eq!(v["status"], 200);
    assert_eq!(v["models"], 2);
    assert!(v["request"].as_str().unwrap().ends_with("/oa/v1/models"));
    assert!(v["latency_ms"].is_u64());

    // Anthropic: x-api-key at /v1/models, whether or not the base ends with /v1.
    for p in ["claude", "claude-v1"] {
        let v = test(&f.router, p).await;
        assert_eq!(v["ok"], true, "{p}: {v}");
        assert!(v["request"].as_str().unwrap().ends_with("/ant/v1/models"));
    }
    let v = test(&f.router, "gemini").await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["models"], 1);
    assert!(v["request"].as_str().unwrap().ends_with("/g/v1beta/models"));

    // No key configured: none sent.
    let v = test(&f.router, "keyless").await;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["models"], 0);
}

#[tokio::test]
async fn test_connection_reports_the_upstreams_error_without_the_key() {
    let f = fixture().await;
    let v = test(&f.router, "revoked").await;
    assert_eq!(v["ok"], false);
    assert_eq!(v["status"], 401);
    let m = v["message"].as_str().unwrap();
    assert!(
        m.contains("401") && m.contains("Incorrect API key provided: Bearer [redacted]"),
        "{m}"
    );

    let v = test(&f.router, "gemini-bad").await;
    assert_eq!(v["status"], 403);
    assert!(v["message"]
        .as_str()
        .unwrap()
        .ends_with("plain text refusal"));

    let v = test(&f.router, "closed").await;
    assert_eq!(v["ok"], false);
    assert_eq!(v["status"], Value::Null);
    let m = v["message"].as_str().unwrap();
    assert!(m.starts_with("cannot connect to the upstream"), "{m}");

    let v = test(&f.router, "slow").await;
    assert_eq!(v["ok"], false);
    assert!(
        v["message"].as_str().unwrap().contains("within 500 ms"),
        "{v}"
    );
    assert!(v["latency_ms"].as_u64().unwrap() < 2500);

    // A redirect is reported, not followed with the key.
    let v = test(&f.router, "moved").await;
    assert_eq!(v["ok"], false);
    assert_eq!(v["status"], 302);
}

#[tokio::test]
async fn test_connection_says_what_it_cannot_test() {
    let f = fixture().await;
    let v = test(&f.router, "aws").await;
    assert_eq!(
        (v["ok"].clone(), v["supported"].clone()),
        (json!(false), json!(false))
    );
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("not supported for Bedrock"));
    assert_eq!(v["request"], Value::Null);

    let v = test(&f.router, "claude-own").await;
    assert_eq!(v["supported"], false);
    assert!(v["message"]
        .as_str()
        .unwrap()
        .contains("authorization_passthrough"));

    let v = test(&f.router, "off").await;
    assert_eq!(v["ok"], false);
    assert!(
        v["message"].as_str().unwrap().contains("'NOT_THERE'"),
        "{v}"
    );

    let a = call(&f.router, Method::POST, "/api/v1/providers/nope/test", true).await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.json()["error"]["code"], "not_found");
    assert!(a.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("'nope'"));

    let a = call(
        &f.router,
        Method::GET,
        "/api/v1/providers/openai/test",
        true,
    )
    .await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn join_does_not_double_the_version() {
    assert_eq!(join("http://h/x", "/v1/models"), "http://h/x/v1/models");
    assert_eq!(join("http://h/x/v1", "/v1/models"), "http://h/x/v1/models");
    assert_eq!(join("http://h", "/v1/models"), "http://h/v1/models");
    assert_eq!(join("http://h/v10", "/v1/models"), "http://h/v10/v1/models");
}
