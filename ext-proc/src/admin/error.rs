//! The admin API's failures, answered in the gateway's one error shape
//! ([`aigw_core::GatewayError`]). One exhaustive match picks the kind.

use super::auth::Denied;
use crate::store::StoreError;
use aigw_core::{ErrorKind, GatewayError};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Denied(#[from] Denied),
    /// A query parameter is missing, malformed or out of range.
    #[error("{0}")]
    BadQuery(String),
    #[error("no admin endpoint at {0}")]
    NotFound(String),
    /// A well-formed request for something the store does not have (a request id).
    #[error("{0}")]
    Absent(String),
    #[error("the admin API only answers GET")]
    MethodNotAllowed,
    /// The store failed; the detail is logged, not sent.
    #[error("usage store unavailable: {0}")]
    Store(#[from] StoreError),
    /// The blocking query task died (panicked or was cancelled).
    #[error("usage query did not complete: {0}")]
    Task(String),
}

impl ApiError {
    /// `aigw_core` has no admin kinds yet; until it has `InvalidQuery` (400), `NotFound`
    /// (404), `MethodNotAllowed` (405) and `StoreUnavailable` (503), the nearest existing
    /// kinds stand in (and the HTTP status is set right regardless).
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Denied(Denied::Missing) => ErrorKind::MissingCredential,
            Self::Denied(Denied::Invalid) => ErrorKind::InvalidCredential,
            Self::Denied(Denied::Forbidden(_)) => ErrorKind::AccessDenied,
            Self::BadQuery(_) => ErrorKind::InvalidQuery,
            Self::NotFound(_) | Self::Absent(_) => ErrorKind::NotFound,
            Self::MethodNotAllowed => ErrorKind::MethodNotAllowed,
            Self::Store(_) | Self::Task(_) => ErrorKind::StoreUnavailable,
        }
    }

    fn public_message(&self) -> String {
        match self {
            Self::Store(_) | Self::Task(_) => "the usage store is unavailable".to_string(),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            Self::Store(_) | Self::Task(_) => tracing::warn!(error = %self, "admin query failed"),
            Self::Denied(_) => tracing::debug!(error = %self, "admin request refused"),
            Self::BadQuery(_) | Self::NotFound(_) | Self::Absent(_) | Self::MethodNotAllowed => {}
        }
        let error = GatewayError::new(self.kind(), self.public_message());
        let status = match &self {
            // Until core has `NotFound`, the status at least is right.
            Self::NotFound(_) | Self::Absent(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            _ => StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        };
        let mut response = (status, error.to_json()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in error.extra_headers() {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        response
    }
}
