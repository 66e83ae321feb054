//! The unified OpenAI-compatible endpoint: `/llm/v1/chat/completions`, `/llm/v1/embeddings`
//! and `/llm/v1/models`, for any provider. Envoy routes these paths to the sidecar's port;
//! the OpenAI SDK with `base_url=<gateway>/llm/v1` works unchanged.
//!
//! One request, top to bottom ([`chat`]):
//! 1. Authenticate the gateway token ([`crate::auth`]).
//! 2. Routing policies ([`policy`], CEL) may deny the request or pick a virtual model.
//! 3. [`plan`] turns `model` (a virtual model, or `<provider>/<model>`) into the targets to
//!    try, in order, skipping ejected ones and those the caller may not use.
//! 4. [`call`] translates the request for each target ([`aigw_translate`]) and sends it
//!    back into Envoy as a *native* call, `/llm/v1/providers/<name>/<native path>`, with the
//!    caller's token. That call is the native proxy exactly as for a native SDK: its
//!    upstream key or SigV4 signature, its access check, its budget reservation (against the
//!    target actually tried) and its usage record with the provider's own usage. A connect
//!    failure, a 5xx, a 429 from the provider or no first byte in time moves on to the
//!    next target; once a byte went to the client there is no other try.
//! 5. [`answer`] turns the native answer into OpenAI's shape, a stream event by event.
//!
//! Why a second pass through Envoy rather than ext_proc: ext_proc can rewrite the one
//! upstream request Envoy makes, but cannot make another one after a failure, and Envoy's
//! retries resend the same bytes to the same provider host. Trying another provider needs a
//! new request, translated and signed for it; the native path already does everything else.

pub mod answer;
pub mod call;
pub mod plan;
pub mod policy;

use crate::auth::{self, Principal};
use crate::gateway::{Gateway, Live};
use aigw_core::handoff::INTERNAL_HEADER_PREFIX;
use aigw_core::{ErrorKind, GatewayError};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;

pub const CHAT_PATH: &str = "/llm/v1/chat/completions";
pub const EMBEDDINGS_PATH: &str = "/llm/v1/embeddings";
pub const MODELS_PATH: &str = "/llm/v1/models";

/// Response header naming the target that served the request, `<provider>/<model>`.
pub const TARGET_HEADER: &str = "x-aigw-target";
/// Response header: how many targets were tried (1 when the first one served).
pub const ATTEMPTS_HEADER: &str = "x-aigw-attempts";

/// Largest request body accepted; the same as Envoy's buffer limit for native calls.
pub const MAX_REQUEST_BYTES: usize = 20 << 20;

/// The endpoint's shared state; policies and ejections live with the config
/// ([`crate::gateway::Live`]).
pub struct Unified {
    pub gw: Arc<Gateway>,
    /// Native calls go back into Envoy through this client (keep-alive pooled).
    pub client: reqwest::Client,
    /// Envoy's gateway listener, e.g. `http://127.0.0.1:8080`, without a trailing `/`.
    pub envoy_url: String,
}

impl Unified {
    pub fn new(gw: Arc<Gateway>, envoy_url: &str) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_idle_timeout(std::time::Duration::from_secs(60))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        Ok(Self {
            gw,
            client,
            envoy_url: envoy_url.trim_end_matches('/').to_string(),
        })
    }
}

pub fn router(u: Arc<Unified>) -> axum::Router {
    axum::Router::new()
        .route(CHAT_PATH, post(chat))
        .route(EMBEDDINGS_PATH, post(embeddings))
        .route(MODELS_PATH, get(models))
        .method_not_allowed_fallback(|| async {
            error_response(&GatewayError::new(
                ErrorKind::MethodNotAllowed,
                "chat completions and embeddings take POST, models GET",
            ))
        })
        .layer(DefaultBodyLimit::max(MAX_REQUEST_BYTES))
        .with_state(u)
}

async fn chat(State(u): State<Arc<Unified>>, headers: HeaderMap, body: Body) -> Response {
    serve(&u, plan::Endpoint::Chat, CHAT_PATH, &headers, body).await
}

async fn embeddings(State(u): State<Arc<Unified>>, headers: HeaderMap, body: Body) -> Response {
    serve(
        &u,
        plan::Endpoint::Embeddings,
        EMBEDDINGS_PATH,
        &headers,
        body,
    )
    .await
}

type Body = Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>;

async fn serve(
    u: &Unified,
    endpoint: plan::Endpoint,
    path: &str,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let body = match body {
        Ok(b) => b,
        Err(rejection) => {
            let e = if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                GatewayError::new(
                    ErrorKind::RequestTooLarge,
                    format!("the request body is larger than {MAX_REQUEST_BYTES} bytes"),
                )
            } else {
                GatewayError::new(ErrorKind::InvalidBody, "the request body could not be read")
            };
            return error_response(&e);
        }
    };
    call::serve(u, endpoint, path, headers, body)
        .await
        .unwrap_or_else(|e| error_response(&e))
}

/// The models the caller may name: every virtual model with a target open to them, and
/// `<provider>/<model>` for the providers that list their models.
async fn models(State(u): State<Arc<Unified>>, headers: HeaderMap) -> Response {
    let live = u.gw.live();
    let principal = match authenticate(&u.gw, &live, &headers).await {
        Ok(p) => p,
        Err(e) => return error_response(&e),
    };
    let config = &live.config;
    let mut data = Vec::new();
    for v in &config.virtual_models {
        let served = plan::plan(
            config,
            &live.ejections,
            &v.name,
            None,
            plan::Endpoint::Chat,
            &principal,
            0,
        )
        .is_ok();
        if served {
            data.push(serde_json::json!({"id": v.name, "object": "model", "created": 0, "owned_by": "aigw"}));
        }
    }
    for p in &config.providers {
        let open = p.enabled && crate::auth::access::permits(config.access_rules(p), &principal);
        for m in p.models.iter().flatten().filter(|_| open) {
            data.push(serde_json::json!({"id": format!("{}/{}", p.name, m.name), "object": "model", "created": 0, "owned_by": p.name}));
        }
    }
    let body = serde_json::json!({"object": "list", "data": data});
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_vec(&body).unwrap_or_default(),
    )
        .into_response()
}

/// The caller, authenticated by [`credential`].
pub async fn authenticate(
    gw: &Gateway,
    live: &Live,
    headers: &HeaderMap,
) -> Result<Arc<Principal>, GatewayError> {
    auth::authenticate_token(gw, live, credential(headers)?).await
}

/// The gateway token, from `Authorization: Bearer` or `x-gateway-token` (the same value in
/// both is fine, differing values are refused). Headers only the gateway may set are
/// refused too.
pub fn credential(headers: &HeaderMap) -> Result<&str, GatewayError> {
    if let Some(name) = headers
        .keys()
        .find(|k| k.as_str().starts_with(INTERNAL_HEADER_PREFIX))
    {
        return Err(GatewayError::new(
            ErrorKind::InternalHeader,
            format!("the header '{name}' is reserved for the gateway"),
        ));
    }
    let bearer = headers.get_all(header::AUTHORIZATION).iter().map(|v| {
        let v = v.to_str().unwrap_or("").trim();
        match v.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(token.trim()),
            _ => Err(GatewayError::new(
                ErrorKind::InvalidCredential,
                "the Authorization header must be `Bearer <gateway token>`",
            )),
        }
    });
    let token = headers
        .get_all(aigw_core::handoff::GATEWAY_TOKEN_HEADER)
        .iter()
        .map(|v| Ok(v.to_str().unwrap_or("").trim()));
    let mut found: Option<&str> = None;
    for v in bearer.chain(token) {
        let v = v?;
        if v.is_empty() {
            continue;
        }
        match found {
            Some(f) if f != v => {
                return Err(GatewayError::new(
                    ErrorKind::AmbiguousCredentials,
                    "more than one differing credential was sent; send the gateway token once",
                ))
            }
            _ => found = Some(v),
        }
    }
    found.ok_or_else(|| {
        GatewayError::new(
            ErrorKind::MissingCredential,
            "no gateway token was sent; use `Authorization: Bearer <gateway token>`",
        )
    })
}

/// The gateway's JSON error.
pub fn error_response(e: &GatewayError) -> Response {
    let mut r = (
        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        e.to_json(),
    )
        .into_response();
    let h = r.headers_mut();
    for (k, v) in e.headers() {
        h.insert(k, HeaderValue::from_static(v));
    }
    if let Some(secs) = e.retry_after_secs {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

#[cfg(test)]
mod tests;
