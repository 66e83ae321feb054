//! The one JSON error shape of every reply the gateway itself makes (filter, sidecar and the
//! Envoy local-reply mappers in `envoy/`).
//!
//! ```json
//! {"type":"error","error":{"type":"not_found_error","code":"unknown_provider",
//!  "message":"no provider named 'foo'","status":"NOT_FOUND","param":null},
//!  "message":"no provider named 'foo'","source":"gateway"}
//! ```
//!
//! It is readable by each native SDK: OpenAI's takes `error.{message,type,code,param}`,
//! Anthropic's `type` and `error.{type,message}`, google-genai's `error.{message,status}`.
//! botocore reads the top-level `message` and the code from the `x-amzn-errortype` header.
//! `source: "gateway"` tells an operator the reply did not come from the provider.

use serde::Serialize;

/// Every error the gateway itself answers with. One exhaustive match gives its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The path under `/llm/v1/providers/` is malformed (dot segments, `//`, bad name...).
    InvalidPath,
    /// The path (with query) is longer than [`crate::path::MAX_PATH_LEN`].
    PathTooLong,
    /// The client sent a header that only the gateway may set.
    InternalHeader,
    /// More than one, differing, credential was sent.
    AmbiguousCredentials,
    /// No gateway credential was sent.
    MissingCredential,
    /// The gateway credential is not valid.
    InvalidCredential,
    /// No provider has this name.
    UnknownProvider,
    /// The provider exists but is disabled.
    ProviderDisabled,
    /// The caller is authenticated but may not use this provider.
    AccessDenied,
    /// An OpenID issuer's signing keys cannot be had (its discovery or JWKS is down).
    IdentityProviderUnavailable,
    /// The model is not on the provider's `models` list.
    ModelNotAllowed,
    /// The caller's budget has no room for this request.
    BudgetExceeded,
    /// A budget applies but the model has no price, so the budget could not be enforced.
    UnpricedModel,
    /// Admin API: a malformed query parameter.
    InvalidQuery,
    /// The request body cannot be read for a check that needs it (model list, budget).
    InvalidBody,
    /// Admin API: no such page or resource.
    NotFound,
    /// Admin API: the method is not allowed on this path.
    MethodNotAllowed,
    /// Admin API: the usage store cannot answer.
    StoreUnavailable,
    /// The gateway could not get what it needs to call the upstream (e.g. the upstream key).
    UpstreamCredentialUnavailable,
    /// The sidecar got a request the filter did not hand over (mis-wired Envoy config).
    Misconfigured,
    /// Unified endpoint: `model` is neither a virtual model nor `<provider>/<model>`.
    UnknownModel,
    /// Unified endpoint: the target provider cannot do what this field asks (`param`).
    UnsupportedParameter,
    /// Unified endpoint: the field (`param`) is malformed.
    InvalidParameter,
    /// Unified endpoint: a routing policy denied the request.
    PolicyDenied,
    /// Unified endpoint: the provider's answer is not the documented shape.
    BadUpstreamResponse,
    /// Unified endpoint: no target sent its first byte in time.
    UpstreamTimeout,
    /// The request body is over the limit (Envoy's own 413 uses the same code).
    RequestTooLarge,
    /// A rate limit has no room for this request.
    RateLimited,
    /// The shared store of budgets and limits (PostgreSQL, Redis) cannot answer, and they
    /// fail closed.
    SharedStateUnavailable,
}

impl ErrorKind {
    pub const fn status(self) -> u16 {
        match self {
            Self::InvalidPath
            | Self::InternalHeader
            | Self::AmbiguousCredentials
            | Self::InvalidQuery
            | Self::InvalidBody
            | Self::UnsupportedParameter
            | Self::InvalidParameter => 400,
            Self::NotFound | Self::UnknownModel => 404,
            Self::MethodNotAllowed => 405,
            Self::MissingCredential | Self::InvalidCredential => 401,
            Self::ProviderDisabled
            | Self::AccessDenied
            | Self::ModelNotAllowed
            | Self::UnpricedModel
            | Self::PolicyDenied => 403,
            Self::BudgetExceeded | Self::RateLimited => 429,
            Self::UnknownProvider => 404,
            Self::PathTooLong => 414,
            Self::BadUpstreamResponse => 502,
            Self::RequestTooLarge => 413,
            Self::UpstreamTimeout => 504,
            Self::UpstreamCredentialUnavailable
            | Self::Misconfigured
            | Self::IdentityProviderUnavailable
            | Self::StoreUnavailable
            | Self::SharedStateUnavailable => 503,
        }
    }

    /// Machine-readable code, stable across releases.
    pub const fn code(self) -> &'static str {
        match self {
            Self::InvalidPath => "invalid_path",
            Self::PathTooLong => "path_too_long",
            Self::InternalHeader => "internal_header",
            Self::AmbiguousCredentials => "ambiguous_credentials",
            Self::MissingCredential => "missing_credential",
            Self::InvalidCredential => "invalid_credential",
            Self::UnknownProvider => "unknown_provider",
            Self::ProviderDisabled => "provider_disabled",
            Self::AccessDenied => "access_denied",
            Self::ModelNotAllowed => "model_not_allowed",
            Self::BudgetExceeded => "budget_exceeded",
            Self::UnpricedModel => "unpriced_model",
            Self::InvalidQuery => "invalid_query",
            Self::InvalidBody => "invalid_body",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::StoreUnavailable => "store_unavailable",
            Self::IdentityProviderUnavailable => "identity_provider_unavailable",
            Self::UpstreamCredentialUnavailable => "upstream_credential_unavailable",
            Self::Misconfigured => "gateway_misconfigured",
            Self::UnknownModel => "model_not_found",
            Self::UnsupportedParameter => "unsupported_parameter",
            Self::InvalidParameter => "invalid_parameter",
            Self::PolicyDenied => "policy_denied",
            Self::BadUpstreamResponse => "bad_upstream_response",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::RequestTooLarge => "request_too_large",
            Self::RateLimited => "rate_limited",
            Self::SharedStateUnavailable => "shared_state_unavailable",
        }
    }

    /// The error `type` in the Anthropic/OpenAI vocabulary, so SDKs classify it.
    pub const fn error_type(self) -> &'static str {
        match self.status() {
            400 | 414 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            _ => "api_error",
        }
    }
}

/// The Google canonical status name for an HTTP status (google-genai reads `error.status`).
pub const fn grpc_status_name(status: u16) -> &'static str {
    match status {
        400 | 414 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        408 | 504 => "DEADLINE_EXCEEDED",
        413 => "OUT_OF_RANGE",
        429 => "RESOURCE_EXHAUSTED",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    }
}

/// An error reply: kind plus a human message. Messages never carry tokens or secret values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    pub kind: ErrorKind,
    pub message: String,
    /// Seconds after which a retry may succeed (`Retry-After`).
    pub retry_after_secs: Option<u64>,
    /// The request field the error is about (`error.param`), as a JSON path.
    pub param: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    error: Detail<'a>,
    /// botocore reads a top-level `message` (with the `x-amzn-errortype` header).
    message: &'a str,
    source: &'static str,
}

#[derive(Serialize)]
struct Detail<'a> {
    #[serde(rename = "type")]
    ty: &'static str,
    code: &'static str,
    message: &'a str,
    status: &'static str,
    param: Option<&'a str>,
}

impl GatewayError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retry_after_secs: None,
            param: None,
        }
    }

    pub fn with_param(mut self, field: impl Into<String>) -> Self {
        self.param = Some(field.into());
        self
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The JSON body. Infallible: every field is a plain string.
    pub fn to_json(&self) -> String {
        let body = Body {
            ty: "error",
            error: Detail {
                ty: self.kind.error_type(),
                code: self.kind.code(),
                message: &self.message,
                status: grpc_status_name(self.kind.status()),
                param: self.param.as_deref(),
            },
            message: &self.message,
            source: "gateway",
        };
        serde_json::to_string(&body).unwrap_or_default()
    }

    /// Every header the reply carries: the content type, the error code where botocore
    /// looks for it, and [`Self::extra_headers`].
    pub fn headers(&self) -> impl Iterator<Item = (&'static str, &'static str)> {
        [
            ("content-type", "application/json"),
            ("x-amzn-errortype", self.kind.code()),
        ]
        .into_iter()
        .chain(self.extra_headers().iter().copied())
    }

    /// `WWW-Authenticate` for credential errors.
    pub fn extra_headers(&self) -> &'static [(&'static str, &'static str)] {
        match self.kind {
            ErrorKind::MissingCredential | ErrorKind::InvalidCredential => {
                &[("www-authenticate", "Bearer error=\"invalid_token\"")]
            }
            _ => &[],
        }
    }
}

impl std::fmt::Display for GatewayError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.message)
    }
}

impl std::error::Error for GatewayError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_is_readable_by_every_sdk() {
        let e = GatewayError::new(ErrorKind::UnknownProvider, "no provider named 'x'");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["source"], "gateway");
        assert_eq!(v["error"]["type"], "not_found_error");
        assert_eq!(v["error"]["code"], "unknown_provider");
        assert_eq!(v["error"]["status"], "NOT_FOUND");
        assert_eq!(v["error"]["message"], "no provider named 'x'");
        assert!(v["error"]["param"].is_null());
        assert_eq!(e.status(), 404);
    }

    #[test]
    fn message_is_escaped() {
        let e = GatewayError::new(ErrorKind::InvalidPath, "bad \"quote\"\n");
        let v: serde_json::Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(v["error"]["message"], "bad \"quote\"\n");
    }
}
