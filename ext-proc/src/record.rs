//! The usage record: one per request that reached a provider, or was cut short on the way.
//! Built by the [`crate::exchange::Exchange`] when the response ends (or the client goes),
//! queued to [`crate::store`] off the request path.

use crate::usage::Usage;
use serde::Serialize;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The response was read to its end.
    Complete,
    /// The client went away before the response ended; the usage is what was seen.
    ClientDisconnected,
    /// The upstream answered with an error status, or the connection to it broke.
    UpstreamError,
}

impl Outcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::ClientDisconnected => "client_disconnected",
            Self::UpstreamError => "upstream_error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageRecord {
    /// Request start, Unix milliseconds (UTC).
    pub time_ms: i64,
    /// Envoy's `x-request-id`.
    pub request_id: String,
    pub provider: String,
    /// `openai`, `anthropic`, `google`, `bedrock`, `openai-compatible`.
    pub provider_type: &'static str,
    pub model_requested: Option<String>,
    pub model_answered: Option<String>,
    /// The principal's subject (API key name or token subject).
    pub principal: String,
    pub user: Option<String>,
    pub agent: Option<String>,
    /// The upstream path without the query string.
    pub api_path: String,
    /// The upstream's HTTP status; 0 when no response arrived.
    pub status: u16,
    pub streamed: bool,
    /// Token buckets, disjoint (see [`Usage`]); zeros when the provider reported none.
    pub usage: Usage,
    /// Whether the provider reported usage at all.
    pub usage_reported: bool,
    /// Exact cost in nano-USD (1e-9 USD); `None` when the model has no price ("unpriced").
    pub cost_nanousd: Option<u64>,
    /// Why the cost is missing, when it is.
    pub unpriced_reason: Option<String>,
    /// From the request's start to the response's end, milliseconds.
    pub latency_ms: u64,
    /// From the request's start to the first response byte, milliseconds.
    pub ttfb_ms: Option<u64>,
    /// `x-genai-conversation-id` request header, when sent.
    pub conversation_id: Option<String>,
    pub outcome: Outcome,
}
