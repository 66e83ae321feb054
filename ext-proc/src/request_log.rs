//! Request logs: the bodies of calls to providers with `log_requests: true`, stored beside
//! their usage records (opt-in per provider; off by default).
//!
//! # Layout
//! - [`capture`]: one request's copy, taken as the request passes: the request body as sent
//!   (the first `max_body_bytes`), and the response: a JSON body as received, or for a
//!   stream its text assembled event by event (the stream itself is never held).
//! - [`redact`]: JSON paths and regular expressions applied before anything is stored.
//! - [`writer`]: a bounded queue (bytes) to a writer thread that redacts and stores off the
//!   request path, and the retention job (age and total size). A full queue or a failing
//!   store drops the log and counts it (`aigw_request_logs_dropped_total`); the request
//!   never waits and never fails for it.
//!
//! A provider that logs takes the sidecar path (the filter's fast path never sees bodies).

pub mod capture;
pub mod redact;
pub mod writer;

pub use capture::Capture;
pub use writer::RequestLogWriter;

use serde::Serialize;

/// One stored request log, after redaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestLog {
    /// Request start, Unix milliseconds (the usage record's `time_ms`).
    pub time_ms: i64,
    /// Envoy's `x-request-id`: joins the log to its usage record.
    pub request_id: String,
    pub provider: String,
    /// The request body as the client sent it.
    pub request_body: String,
    pub request_truncated: bool,
    /// `body`: the response body as received; `text`: a stream's assembled text.
    pub response_kind: ResponseKind,
    pub response_body: String,
    pub response_truncated: bool,
}

impl RequestLog {
    /// What the log weighs against the retention's `max_total_bytes`.
    pub fn bytes(&self) -> u64 {
        (self.request_body.len() + self.response_body.len()) as u64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseKind {
    Body,
    Text,
}

impl ResponseKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Body => "body",
            Self::Text => "text",
        }
    }

    pub fn parse(s: &str) -> Self {
        if s == "text" {
            Self::Text
        } else {
            Self::Body
        }
    }
}

#[cfg(test)]
mod tests;
