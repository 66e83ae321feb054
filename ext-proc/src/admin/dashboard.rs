//! The operator dashboard: a static page (vanilla JS, self-drawn SVG charts) embedded in the
//! binary, and the two admin endpoints only it needs.
//!
//! | endpoint | auth | answer |
//! | --- | --- | --- |
//! | `GET /`, `GET /dashboard/{app.js,chart.js,app.css}` | none | the page shell; it holds no data |
//! | `GET /api/v1/providers` | admin | every configured provider: type, status, upstream base URL, passthrough, the *name* of its secret (never a value), models and price overrides |
//! | `POST /api/v1/providers/{name}/test` | admin | a minimal real call to the upstream with the configured credential (5 s timeout): pass or fail with the upstream's error |
//!
//! The shell is public so a browser can load it; every number on it comes from authenticated
//! API calls. The page asks for the admin token once, keeps it in `sessionStorage` (gone
//! with the tab) and sends it as `Authorization: Bearer` on each `fetch`: no cookie, so a
//! cross-site form cannot make an admin call (no CSRF), and a strict CSP (`'self'` only, no
//! inline script or style) keeps injected markup inert.
//!
//! Wiring: [`shell`] is merged as is into the admin router; [`router`] goes behind the admin
//! check with [`super::AdminApi::protect`].

use crate::gateway::Gateway;
use crate::secrets::Snapshot;
use aigw_core::config::{AwsCredentials, ProviderConfig};
use aigw_core::{ErrorKind, GatewayError, ProviderKind};
use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How long a connection test may take, connecting included.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of an upstream's error body a failed test reports.
const MAX_ERROR_CHARS: usize = 500;
/// The most of an upstream's answer a test reads.
const MAX_TEST_BODY_BYTES: usize = 1 << 20;

// --------------------------------------------------------------------------- the shell

struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const ASSETS: [Asset; 4] = [
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("dashboard/index.html"),
    },
    Asset {
        path: "/dashboard/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("dashboard/app.js"),
    },
    Asset {
        path: "/dashboard/chart.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("dashboard/chart.js"),
    },
    Asset {
        path: "/dashboard/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("dashboard/app.css"),
    },
];

/// Scripts, styles and API calls from this origin only; no inline code, no frames.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The page and its assets, public (they carry no data). Merge into the admin router.
pub fn shell() -> Router {
    let mut router = Router::new()
        .route("/dashboard", get(to_root))
        .route("/dashboard/", get(to_root));
    for (i, asset) in ASSETS.iter().enumerate() {
        router = router.route(asset.path, get(move |h: HeaderMap| serve(i, h)));
    }
    router
}

async fn to_root() -> Response {
    (StatusCode::FOUND, [(LOCATION, "/")]).into_response()
}

/// Each asset's ETag: a hash of the embedded text, computed once.
fn etag(i: usize) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    &TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| {
                let d = Sha256::digest(a.body.as_bytes());
                let hex: String = d[..12].iter().map(|b| format!("{b:02x}")).collect();
                format!("\"{hex}\"")
            })
            .collect()
    })[i]
}

async fn serve(i: usize, request: HeaderMap) -> Response {
    let asset = &ASSETS[i];
    let tag = etag(i);
    let fresh = request
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let h = response.headers_mut();
    h.insert(ETAG, HeaderValue::from_static(tag));
    // Revalidated on every load, so a new binary's page is picked up at once.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CSP),
    );
    h.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    response
}

// --------------------------------------------------------------------------- the API

/// What the dashboard's endpoints need.
pub struct Dashboard {
    gw: Arc<Gateway>,
    /// The gateway's public base URL (Envoy's listener, e.g. `https://llm.example.com`), for
    /// proxy URLs and snippets; `None`: the page asks the operator (kept in the browser).
    gateway_url: Option<String>,
    http: reqwest::Client,
    timeout: Duration,
}

/// `GET /api/v1/providers` and `POST /api/v1/providers/{name}/test`, to be mounted behind the
/// admin check ([`super::AdminApi::protect`]).
pub fn router(gw: Arc<Gateway>) -> Router {
    router_with(gw, None, TEST_TIMEOUT)
}

/// [`router`] with the gateway's public base URL, and a test timeout of its own.
pub fn router_with(gw: Arc<Gateway>, gateway_url: Option<String>, timeout: Duration) -> Router {
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        // The credential must not follow a redirect to another host; the sidecar calls the
        // upstream directly, as Envoy does, not through a proxy from the environment.
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("aigw-ext-proc/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default();
    let state = Arc::new(Dashboard {
        gw,
        gateway_url: gateway_url.map(|u| u.trim_end_matches('/').to_string()),
        http,
        timeout,
    });
    Router::new()
        .route("/api/v1/providers", get(providers))
        .route("/api/v1/providers/{name}/test", post(test_connection))
        .with_state(state)
}

#[derive(Serialize)]
struct ProvidersJson {
    gateway_url: Option<String>,
    providers: Vec<ProviderJson>,
}

#[derive(Serialize)]
struct ProviderJson {
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    enabled: bool,
    /// Where clients send requests, under the gateway's URL.
    proxy_path: String,
    base_url: String,
    authorization_passthrough: bool,
    /// Only meaningful with passthrough.
    gateway_token_required: bool,
    /// The secret's reference name; the value is never sent.
    api_key_secret: Option<String>,
    /// Whether every secret the provider names is in the secret store now.
    secrets_present: bool,
    region: Option<String>,
    aws: Option<AwsJson>,
    /// `None`: every model is allowed.
    models: Option<Vec<ModelJson>>,
    /// Whether the provider has its own access list (else the config's default).
    own_access_rules: bool,
}

#[derive(Serialize)]
struct AwsJson {
    /// `secrets` or `default_chain`.
    credentials: &'static str,
    /// Reference names of the static keys, when `secrets`.
    secret_refs: Vec<String>,
    assume_role_arn: Option<String>,
}

#[derive(Serialize)]
struct ModelJson {
    name: String,
    /// Price overrides as configured (USD per million tokens, decimal strings).
    prices: BTreeMap<String, String>,
}

fn base_url(p: &ProviderConfig) -> String {
    format!(
        "{}://{}{}",
        p.upstream.scheme.as_str(),
        p.upstream.authority,
        p.upstream.path_prefix
    )
}

/// Every secret reference of a provider.
fn secret_refs(p: &ProviderConfig) -> Vec<&str> {
    let mut refs: Vec<&str> = p.api_key_secret.iter().map(String::as_str).collect();
    if let Some(AwsCredentials::Secrets {
        access_key_id_secret,
        secret_access_key_secret,
        session_token_secret,
    }) = p.aws.as_ref().map(|a| &a.credentials)
    {
        refs.push(access_key_id_secret);
        refs.push(secret_access_key_secret);
        refs.extend(session_token_secret.as_deref());
    }
    refs
}

fn provider_json(p: &ProviderConfig, secrets: &Snapshot) -> ProviderJson {
    ProviderJson {
        name: p.name.clone(),
        kind: p.kind.as_str(),
        enabled: p.enabled,
        proxy_path: format!("/llm/v1/providers/{}", p.name),
        base_url: base_url(p),
        authorization_passthrough: p.authorization_passthrough,
        gateway_token_required: p.gateway_token_required,
        api_key_secret: p.api_key_secret.clone(),
        secrets_present: secret_refs(p).iter().all(|s| secrets.contains_key(*s)),
        region: p.region.clone(),
        aws: p.aws.as_ref().map(|a| AwsJson {
            credentials: match a.credentials {
                AwsCredentials::Secrets { .. } => "secrets",
                AwsCredentials::DefaultChain => "default_chain",
            },
            secret_refs: secret_refs(p)
                .into_iter()
                .filter(|s| p.api_key_secret.as_deref() != Some(*s))
                .map(String::from)
                .collect(),
            assume_role_arn: a.assume_role.as_ref().map(|r| r.role_arn.clone()),
        }),
        models: p.models.as_ref().map(|ms| {
            ms.iter()
                .map(|m| ModelJson {
                    name: m.name.clone(),
                    prices: m.prices.clone(),
                })
                .collect()
        }),
        own_access_rules: p.access.is_some(),
    }
}

async fn providers(State(d): State<Arc<Dashboard>>) -> Response {
    let secrets = d.gw.secrets.snapshot();
    json(
        StatusCode::OK,
        &ProvidersJson {
            gateway_url: d.gateway_url.clone(),
            providers: d
                .gw
                .live()
                .config
                .providers
                .iter()
                .map(|p| provider_json(p, &secrets))
                .collect(),
        },
    )
}

/// The outcome of a connection test. A test that ran answers 200 whatever its outcome.
#[derive(Debug, Serialize, PartialEq, Eq)]
struct TestResult {
    provider: String,
    /// The upstream answered the call with a success status.
    ok: bool,
    /// `false`: this provider cannot be tested this way (see `message`); nothing was sent.
    supported: bool,
    /// What was called, e.g. `GET https://api.openai.com/v1/models`.
    request: Option<String>,
    /// The upstream's HTTP status, when it answered.
    status: Option<u16>,
    latency_ms: Option<u64>,
    /// Models in the upstream's answer, when it lists them.
    models: Option<usize>,
    /// What happened, in a sentence; on failure the upstream's error (never the key).
    message: String,
}

/// The call a test makes: a read-only listing of models, authenticated like the gateway
/// authenticates that provider's requests.
struct Probe {
    url: String,
    headers: Vec<(&'static str, String)>,
}

/// `{base}{suffix}`, unless the base already ends with the suffix's first segment
/// (`…/v1` + `/v1/models` → `…/v1/models`).
fn join(base: &str, suffix: &str) -> String {
    let first = suffix
        .split('/')
        .nth(1)
        .map(|s| format!("/{s}"))
        .unwrap_or_default();
    if !first.is_empty() && base.ends_with(&first) {
        format!("{base}{}", &suffix[first.len()..])
    } else {
        format!("{base}{suffix}")
    }
}

/// The probe for a provider, or why it cannot be tested.
fn probe(p: &ProviderConfig, key: Option<&str>) -> Result<Probe, String> {
    let base = base_url(p);
    let key = key.map(str::to_string);
    match p.kind {
        ProviderKind::Openai | ProviderKind::OpenaiCompatible => Ok(Probe {
            url: format!("{base}/models"),
            headers: key
                .map(|k| ("authorization", format!("Bearer {k}")))
                .into_iter()
                .collect(),
        }),
        ProviderKind::Anthropic => {
            let Some(k) = key else {
                return Err(
                    "this provider passes each client's own credentials through \
                    (authorization_passthrough) and holds no key of its own to test with; \
                    send a request through the gateway with a client key instead"
                        .into(),
                );
            };
            Ok(Probe {
                url: join(&base, "/v1/models"),
                headers: vec![("x-api-key", k), ("anthropic-version", "2023-06-01".into())],
            })
        }
        ProviderKind::Google => {
            let url = if base.ends_with("/v1") || base.ends_with("/v1beta") {
                format!("{base}/models")
            } else {
                format!("{base}/v1beta/models")
            };
            Ok(Probe {
                url,
                headers: key.map(|k| ("x-goog-api-key", k)).into_iter().collect(),
            })
        }
        ProviderKind::Bedrock => Err("not supported for Bedrock: the runtime API has no \
            read-only call to test AWS credentials with, and every model call is billed; \
            send a request through the gateway (e.g. the boto3 snippet) instead"
            .into()),
    }
}

async fn test_connection(State(d): State<Arc<Dashboard>>, Path(name): Path<String>) -> Response {
    let live = d.gw.live();
    let Some(p) = live.config.provider(&name) else {
        let name: String = name.chars().take(64).collect();
        let e = GatewayError::new(ErrorKind::NotFound, format!("no provider named '{name}'"));
        let mut r = (StatusCode::NOT_FOUND, e.to_json()).into_response();
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return r;
    };
    let result = run_test(&d.http, d.timeout, p, &d.gw.secrets.snapshot()).await;
    tracing::info!(
        provider = %result.provider,
        ok = result.ok,
        status = ?result.status,
        "provider connection test"
    );
    json(StatusCode::OK, &result)
}

async fn run_test(
    http: &reqwest::Client,
    timeout: Duration,
    p: &ProviderConfig,
    secrets: &Snapshot,
) -> TestResult {
    let mut result = TestResult {
        provider: p.name.clone(),
        ok: false,
        supported: true,
        request: None,
        status: None,
        latency_ms: None,
        models: None,
        message: String::new(),
    };
    let key = match &p.api_key_secret {
        None => None,
        Some(secret) => match secrets.get(secret) {
            Some(v) => Some(v.expose().to_string()),
            None => {
                result.message = format!(
                    "the secret '{secret}' (api_key_secret) is not in the secret store; nothing was sent"
                );
                return result;
            }
        },
    };
    let probe = match probe(p, key.as_deref()) {
        Ok(probe) => probe,
        Err(why) => {
            result.supported = false;
            result.message = why;
            return result;
        }
    };
    result.request = Some(format!("GET {}", probe.url));
    let redact = |s: &str| match key.as_deref().filter(|k| !k.is_empty()) {
        Some(k) => s.replace(k, "[redacted]"),
        None => s.to_string(),
    };
    let mut request = http.get(&probe.url).header("accept", "application/json");
    for (name, value) in &probe.headers {
        request = request.header(*name, value);
    }
    let started = Instant::now();
    let response = request.send().await;
    let elapsed = |started: Instant| u64::try_from(started.elapsed().as_millis()).unwrap_or(0);
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            result.latency_ms = Some(elapsed(started));
            result.message = redact(&transport_error(&e, timeout));
            return result;
        }
    };
    let status = response.status();
    result.status = Some(status.as_u16());
    let body = read_capped(response).await;
    result.latency_ms = Some(elapsed(started));
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&body).ok();
    if status.is_success() {
        result.ok = true;
        result.models = parsed.as_ref().and_then(|v| {
            ["data", "models"]
                .iter()
                .find_map(|k| v.get(*k).and_then(|m| m.as_array()).map(Vec::len))
        });
        result.message = match result.models {
            Some(n) => format!("connected: the upstream answered {status} and lists {n} models"),
            None => format!("connected: the upstream answered {status}"),
        };
    } else {
        let detail = parsed
            .as_ref()
            .and_then(upstream_message)
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
        let detail: String = redact(&detail).chars().take(MAX_ERROR_CHARS).collect();
        result.message = if detail.is_empty() {
            format!("the upstream answered {status}")
        } else {
            format!("the upstream answered {status}: {detail}")
        };
    }
    result
}

/// The message of the providers' error shapes: `{"error": {"message"}}` (OpenAI, Anthropic,
/// Google), `{"error": "…"}`, `{"message": "…"}`.
fn upstream_message(v: &serde_json::Value) -> Option<String> {
    let e = v.get("error");
    e.and_then(|e| e.get("message"))
        .or(e.filter(|e| e.is_string()))
        .or_else(|| v.get("message"))
        .and_then(|m| m.as_str())
        .map(str::to_string)
}

fn transport_error(e: &reqwest::Error, timeout: Duration) -> String {
    use std::error::Error;
    let mut cause = String::new();
    let mut source = e.source();
    while let Some(s) = source {
        cause = s.to_string();
        source = s.source();
    }
    let what = if e.is_timeout() {
        let ms = timeout.as_millis();
        if ms.is_multiple_of(1000) {
            format!("no answer from the upstream within {} s", ms / 1000)
        } else {
            format!("no answer from the upstream within {ms} ms")
        }
    } else if e.is_connect() {
        "cannot connect to the upstream".to_string()
    } else {
        "the request to the upstream failed".to_string()
    };
    if cause.is_empty() || e.is_timeout() {
        what
    } else {
        format!("{what}: {cause}")
    }
}

async fn read_capped(mut response: reqwest::Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_TEST_BODY_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_TEST_BODY_BYTES {
            break;
        }
    }
    body
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut r = (status, body).into_response();
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
#[path = "dashboard/tests.rs"]
mod tests;
