//! The usage record: one per request that reached a provider, or was cut short on the way.
//! Built by [`crate::accounting::Accounting::finish`] when the response ends (or the client
//! goes), in the sidecar or, for the fast path, in the filter, which sends it to the sidecar
//! as one JSON line. The sidecar prices it ([`UsageRecord::price`]) and stores it.

use crate::usage::Usage;
use aigw_core::ProviderKind;
use serde::{Deserialize, Deserializer, Serialize};
use std::borrow::Cow;

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The response was read to its end, or to the provider's end marker (the client may
    /// have closed right after it).
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

    /// The outcome [`as_str`](Self::as_str) names.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Complete,
            Self::ClientDisconnected,
            Self::UpstreamError,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// Request start, Unix milliseconds (UTC).
    pub time_ms: i64,
    /// Envoy's `x-request-id`.
    pub request_id: String,
    pub provider: String,
    /// `openai`, `anthropic`, `google`, `bedrock`, `openai-compatible`.
    #[serde(deserialize_with = "provider_type")]
    pub provider_type: Cow<'static, str>,
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
    /// The caller's W3C `traceparent`, when it sent a valid one: the request's span
    /// continues that trace ([`is_traceparent`](crate::accounting::is_traceparent)). Not
    /// stored; optional on the feed, so older filters' records still parse.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_parent: Option<String>,
    pub outcome: Outcome,
}

impl UsageRecord {
    /// Whether the cost is still to be computed: usage was reported and not priced yet.
    pub fn needs_price(&self) -> bool {
        self.usage_reported && self.cost_nanousd.is_none() && self.unpriced_reason.is_none()
    }

    /// Prices the reported usage with `cost` (provider, kind, model, usage), once.
    pub fn price(
        &mut self,
        cost: impl FnOnce(&str, ProviderKind, Option<&str>, &Usage) -> Result<u64, String>,
    ) {
        if !self.needs_price() {
            return;
        }
        let Some(kind) = ProviderKind::parse(&self.provider_type) else {
            self.unpriced_reason = Some(format!("unknown provider type '{}'", self.provider_type));
            return;
        };
        let model = self
            .model_answered
            .as_deref()
            .or(self.model_requested.as_deref());
        match cost(&self.provider, kind, model, &self.usage) {
            Ok(n) => self.cost_nanousd = Some(n),
            Err(why) => self.unpriced_reason = Some(why),
        }
    }
}

/// Provider types are a closed set; a record naming another is refused.
fn provider_type<'de, D: Deserializer<'de>>(d: D) -> Result<Cow<'static, str>, D::Error> {
    let s = <Cow<'de, str>>::deserialize(d)?;
    ProviderKind::parse(&s)
        .map(|k| Cow::Borrowed(k.as_str()))
        .ok_or_else(|| serde::de::Error::custom(format!("unknown provider type '{s}'")))
}
