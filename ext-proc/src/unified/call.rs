//! The try loop of one unified request: translate for a target, call it through Envoy's
//! native path, and move on to the next target when this one fails before answering.

use super::answer;
use super::plan::{self, Candidate, Endpoint, NoPlan};
use super::policy::PolicyInput;
use super::Unified;
use aigw_core::config::PolicyAction;
use aigw_core::handoff::GATEWAY_TOKEN_HEADER;
use aigw_core::path::PROXY_PREFIX;
use aigw_core::{ErrorKind, GatewayError, ProviderKind};
use aigw_translate::{anthropic::AnthropicOptions, gemini::GeminiOptions, TranslateError};
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;
use std::borrow::Cow;
use std::time::Duration;

/// Client headers carried into the native call (everything else stays behind: the SDK's
/// own headers mean nothing to another provider).
const FORWARDED_HEADERS: [&str; 2] = [
    "x-request-id",
    aigw_metering::accounting::CONVERSATION_HEADER,
];

/// How long a failed target's error body may take to arrive.
const ERROR_BODY_WAIT: Duration = Duration::from_secs(5);

/// What the gateway reads of the client's body before choosing a target.
#[derive(Deserialize)]
struct Head<'a> {
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    stream: Option<bool>,
}

/// The request for one target, ready to send.
pub struct Native {
    /// Path after `/llm/v1/providers/<name>`, query included.
    pub path: String,
    pub body: Bytes,
    pub headers: Vec<(&'static str, String)>,
    /// The translation the answer needs; `None`: the target speaks OpenAI already.
    pub target: Option<aigw_translate::Target>,
    pub stream: bool,
    pub include_usage: bool,
}

/// A try that did not serve the request.
enum Failure {
    /// The target answered 5xx or 429: kept to pass on if it was the last try.
    Status {
        status: u16,
        headers: HeaderMap,
        body: Bytes,
    },
    /// No first byte within the pool's `first_byte_timeout_ms`.
    Timeout(Duration),
    /// Envoy itself could not be reached (the gateway listener, not the provider).
    Unreachable(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Status { status, .. } => write!(f, "status {status}"),
            Failure::Timeout(d) => write!(f, "no first byte in {} ms", d.as_millis()),
            Failure::Unreachable(e) => write!(f, "the gateway listener is unreachable: {e}"),
        }
    }
}

enum Outcome {
    /// Answered (any status that is not a reason to try elsewhere), with its first chunk.
    Answered(reqwest::Response, Option<Bytes>),
    Failed(Failure),
}

pub async fn serve(
    u: &Unified,
    endpoint: Endpoint,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, GatewayError> {
    let credential = super::credential(headers)?;
    let live = u.gw.live();
    let principal = crate::auth::authenticate_token(&u.gw, &live, credential).await?;
    let head: Head<'_> = serde_json::from_slice(&body).map_err(|e| {
        GatewayError::new(
            ErrorKind::InvalidBody,
            format!("the request body must be one JSON object: {e}"),
        )
    })?;
    let model = head.model.as_deref().ok_or_else(|| {
        GatewayError::new(ErrorKind::InvalidParameter, "`model` is required").with_param("model")
    })?;
    let stream = head.stream.unwrap_or(false);

    let routed = if live.policies.is_empty() {
        None
    } else {
        let input = PolicyInput {
            path,
            headers,
            model,
            stream,
            // About four bytes of JSON per token: an estimate, never used for money.
            estimated_input_tokens: body.len() as u64 / 4,
            principal: &principal,
        };
        match live.policies.decide(&input) {
            Some(PolicyAction::Deny(message)) => {
                return Err(GatewayError::new(ErrorKind::PolicyDenied, message.clone()))
            }
            Some(PolicyAction::Route(pool)) => Some(pool.as_str()),
            None => None,
        }
    };

    let plan = plan::plan(
        &live.config,
        &live.ejections,
        model,
        routed,
        endpoint,
        &principal,
        crate::store::time::now_ms(),
    )
    .map_err(|why| no_plan(why, model, endpoint))?;

    let tries = plan.candidates.len();
    let mut last = None;
    for (i, c) in plan.candidates.iter().enumerate() {
        let native = prepare(endpoint, c, &body, stream)?;
        // The last target gets all the time it needs: there is nothing to fall back to.
        let wait = plan.first_byte_timeout().filter(|_| i + 1 < tries);
        match send(u, headers, credential, c, &native, wait).await {
            Outcome::Answered(resp, first) => {
                c.restore();
                return Ok(answer::respond(c, &native, resp, first, i + 1).await);
            }
            Outcome::Failed(f) => {
                c.eject(crate::store::time::now_ms());
                tracing::info!(target = %c.label(), attempt = i + 1, reason = %f, "unified: target failed");
                // Envoy itself unreachable fails every target alike.
                let stop = matches!(f, Failure::Unreachable(_));
                last = Some(f);
                if stop {
                    break;
                }
            }
        }
    }
    Ok(match last {
        Some(Failure::Status {
            status,
            headers,
            body,
        }) => answer::failed(status, &headers, body, tries),
        Some(Failure::Timeout(d)) => super::error_response(&GatewayError::new(
            ErrorKind::UpstreamTimeout,
            format!("no target answered within {} ms", d.as_millis()),
        )),
        Some(Failure::Unreachable(_)) | None => super::error_response(&GatewayError::new(
            ErrorKind::Misconfigured,
            "the gateway could not reach its own listener (check --envoy-url)",
        )),
    })
}

/// The native request for `c`.
fn prepare(
    endpoint: Endpoint,
    c: &Candidate<'_>,
    body: &[u8],
    stream: bool,
) -> Result<Native, GatewayError> {
    let target = match c.provider.kind {
        ProviderKind::Openai | ProviderKind::OpenaiCompatible => {
            return Ok(Native {
                path: match endpoint {
                    Endpoint::Chat => "/chat/completions".into(),
                    Endpoint::Embeddings => "/embeddings".into(),
                },
                body: with_model(body, c.model)?.into(),
                headers: vec![("content-type", "application/json".into())],
                target: None,
                stream,
                include_usage: false,
            });
        }
        ProviderKind::Anthropic => aigw_translate::Target::Anthropic(AnthropicOptions::default()),
        ProviderKind::Google => aigw_translate::Target::Gemini(GeminiOptions::default()),
        ProviderKind::Bedrock => aigw_translate::Target::Bedrock,
    };
    let t = aigw_translate::translate_request(&target, body, c.model)
        .map_err(|e| translate_error(&e, c))?;
    Ok(Native {
        path: t.path,
        body: t.body.into(),
        headers: t.headers,
        target: Some(target),
        stream: t.stream,
        include_usage: t.include_usage,
    })
}

/// The client's body with `model` set to the target's model id.
fn with_model(body: &[u8], model: &str) -> Result<Vec<u8>, GatewayError> {
    let mut v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        GatewayError::new(
            ErrorKind::InvalidBody,
            format!("the request body must be one JSON object: {e}"),
        )
    })?;
    let Some(obj) = v.as_object_mut() else {
        return Err(GatewayError::new(
            ErrorKind::InvalidBody,
            "the request body must be one JSON object",
        ));
    };
    obj.insert("model".into(), serde_json::Value::String(model.into()));
    Ok(serde_json::to_vec(&v).unwrap_or_default())
}

/// Sends the native call and waits (at most `wait`) for its verdict and first chunk.
async fn send(
    u: &Unified,
    client_headers: &HeaderMap,
    credential: &str,
    c: &Candidate<'_>,
    native: &Native,
    wait: Option<Duration>,
) -> Outcome {
    let url = format!(
        "{}{PROXY_PREFIX}/{}{}",
        u.envoy_url, c.provider.name, native.path
    );
    let mut rb = u
        .client
        .post(url)
        .header(GATEWAY_TOKEN_HEADER, credential)
        .body(native.body.clone());
    for (k, v) in &native.headers {
        rb = rb.header(*k, v);
    }
    for name in FORWARDED_HEADERS {
        if let Some(v) = client_headers.get(name) {
            rb = rb.header(name, v);
        }
    }
    let attempt = async {
        let resp = match rb.send().await {
            Ok(r) => r,
            Err(e) => return Outcome::Failed(Failure::Unreachable(e.to_string())),
        };
        let status = resp.status().as_u16();
        if is_fallback_status(status, resp.headers()) {
            let headers = resp.headers().clone();
            let body = tokio::time::timeout(ERROR_BODY_WAIT, resp.bytes())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            return Outcome::Failed(Failure::Status {
                status,
                headers,
                body,
            });
        }
        let mut resp = resp;
        match resp.chunk().await {
            Ok(first) => Outcome::Answered(resp, first),
            // Broken before the first byte: nothing reached the client, try elsewhere.
            Err(_) => Outcome::Failed(Failure::Status {
                status: 502,
                headers: HeaderMap::new(),
                body: Bytes::new(),
            }),
        }
    };
    match wait {
        Some(d) => tokio::time::timeout(d, attempt)
            .await
            .unwrap_or(Outcome::Failed(Failure::Timeout(d))),
        None => attempt.await,
    }
}

/// 5xx (the provider's, or Envoy's when it could not connect), and 429 unless it is the
/// gateway's own budget refusal (another target would be refused the same way).
fn is_fallback_status(status: u16, headers: &reqwest::header::HeaderMap) -> bool {
    match status {
        500..=599 => true,
        429 => headers
            .get("x-amzn-errortype")
            .is_none_or(|v| v.as_bytes() != ErrorKind::BudgetExceeded.code().as_bytes()),
        _ => false,
    }
}

fn translate_error(e: &TranslateError, c: &Candidate<'_>) -> GatewayError {
    let kind = match e {
        TranslateError::Unsupported { .. } => ErrorKind::UnsupportedParameter,
        TranslateError::Invalid { .. } => ErrorKind::InvalidParameter,
    };
    GatewayError::new(kind, format!("{e} (target {})", c.label())).with_param(e.field())
}

fn no_plan(why: NoPlan, model: &str, endpoint: Endpoint) -> GatewayError {
    let (kind, message) = match why {
        NoPlan::UnknownModel => (
            ErrorKind::UnknownModel,
            format!("model '{model}' is neither a virtual model nor <provider>/<model> with a configured provider"),
        ),
        NoPlan::NotListed { provider } => (
            ErrorKind::ModelNotAllowed,
            format!("model '{model}' is not allowed on provider '{provider}'"),
        ),
        NoPlan::Disabled => (
            ErrorKind::ProviderDisabled,
            format!("every provider of model '{model}' is disabled"),
        ),
        NoPlan::Unserved => (
            ErrorKind::UnsupportedParameter,
            match endpoint {
                Endpoint::Embeddings => format!("model '{model}': embeddings are served by providers of type openai and openai-compatible only"),
                Endpoint::Chat => format!("model '{model}' has no provider for this endpoint"),
            },
        ),
        NoPlan::Denied => (
            ErrorKind::AccessDenied,
            format!("access to the providers of model '{model}' is not permitted"),
        ),
    };
    GatewayError::new(kind, message).with_param("model")
}
