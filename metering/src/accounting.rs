//! Per-request accounting: what the request asked for, what the response reported, and the
//! [`UsageRecord`] that results. Lives with the request, in the sidecar's exchange or in the
//! filter's; every method is called from one phase of the request and does no I/O.
//!
//! - Request body: the model asked for, whether it streams, and (OpenAI chat) whether usage
//!   must be requested for the stream ([`request_body`]).
//! - Response headers: status, content type and encoding pick the usage extractor.
//! - Response body chunks: fed to the extractor as they pass; nothing is held back.
//! - End of stream, or the client gone (the exchange is dropped first): the record.

use crate::record::{Outcome, UsageRecord};
use crate::usage::{self, ApiFormat, UsageExtractor};
use aigw_core::ProviderKind;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The conversation id a client may send to group its requests.
pub const CONVERSATION_HEADER: &str = "x-genai-conversation-id";

pub struct Accounting {
    started: Instant,
    start_ms: i64,
    request_id: String,
    provider: String,
    kind: ProviderKind,
    method: String,
    api_path: String,
    principal: Principal,
    conversation_id: Option<String>,
    trace_parent: Option<String>,
    pub model_requested: Option<String>,
    pub streamed: bool,
    format: Option<ApiFormat>,
    status: u16,
    /// The upstream's connection broke or timed out before the answer ended.
    upstream_broke: bool,
    ttfb_ms: Option<u64>,
    extractor: Option<UsageExtractor>,
}

/// Who the usage is attributed to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Principal {
    /// The API key's name or the token's subject.
    pub subject: String,
    pub user: Option<String>,
    pub agent: Option<String>,
}

/// What the request path knows at the request headers.
pub struct RequestInfo<'a> {
    pub request_id: &'a str,
    pub provider: &'a str,
    pub kind: ProviderKind,
    pub method: &'a str,
    /// As forwarded upstream, with the query.
    pub path: &'a str,
    pub principal: Principal,
    pub conversation_id: Option<&'a str>,
    /// The caller's W3C `traceparent` header, when sent.
    pub traceparent: Option<&'a str>,
}

impl Accounting {
    pub fn new(r: RequestInfo<'_>) -> Self {
        let api_path = r.path.split('?').next().unwrap_or("").to_string();
        let format = usage::detect(r.kind, r.method, r.path, None);
        let streamed = matches!(
            format,
            Some(
                ApiFormat::GeminiStreamGenerateContent
                    | ApiFormat::BedrockConverseStream
                    | ApiFormat::BedrockInvokeStream
            )
        );
        Self {
            started: Instant::now(),
            start_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
            request_id: r.request_id.to_string(),
            provider: r.provider.to_string(),
            kind: r.kind,
            method: r.method.to_string(),
            model_requested: usage::requested_model(r.kind, r.path),
            api_path,
            principal: r.principal,
            conversation_id: r.conversation_id.map(str::to_string),
            trace_parent: r
                .traceparent
                .filter(|t| is_traceparent(t))
                .map(str::to_string),
            streamed,
            format,
            status: 0,
            upstream_broke: false,
            ttfb_ms: None,
            extractor: None,
        }
    }

    /// Whether the response can carry usage (an LLM API call), so its body is worth reading.
    pub fn provider(&self) -> &str {
        &self.provider
    }

    pub fn kind(&self) -> ProviderKind {
        self.kind
    }

    pub fn is_metered(&self) -> bool {
        self.format.is_some()
    }

    pub fn on_response_headers(&mut self, status: u16, header: impl Fn(&str) -> Option<String>) {
        self.status = status;
        let content_type = header("content-type");
        // The format again, now that the content type can rule out error pages.
        self.format = usage::detect(
            self.kind,
            &self.method,
            &self.api_path,
            content_type.as_deref(),
        )
        .or(self.format.filter(|_| content_type.is_none()));
        if let Some(f) = self.format {
            let mut x = UsageExtractor::new(
                f,
                content_type.as_deref(),
                header("content-encoding").as_deref(),
            );
            if matches!(f, ApiFormat::BedrockInvoke) {
                for name in [
                    "x-amzn-bedrock-input-token-count",
                    "x-amzn-bedrock-output-token-count",
                    "x-amzn-bedrock-cache-read-input-token-count",
                    "x-amzn-bedrock-cache-write-input-token-count",
                ] {
                    if let Some(v) = header(name) {
                        x.feed_header(name, v.as_bytes());
                    }
                }
            }
            self.extractor = Some(x);
        }
    }

    pub fn on_response_body(&mut self, chunk: &[u8]) {
        if self.ttfb_ms.is_none() && !chunk.is_empty() {
            self.ttfb_ms = Some(self.started.elapsed().as_millis() as u64);
        }
        if let Some(x) = &mut self.extractor {
            x.feed(chunk);
        }
    }

    /// The answer ended early on the upstream's side (where the caller can tell: Envoy's
    /// response flags), not the client's.
    pub fn upstream_broke(&mut self) {
        self.upstream_broke = true;
    }

    /// The record of this request, to be priced ([`UsageRecord::price`]).
    pub fn finish(mut self, client_gone: bool) -> UsageRecord {
        let extracted = self.extractor.take().map(UsageExtractor::finish);
        let (usage, reported) = match extracted.as_ref().and_then(|e| e.usage.clone()) {
            Some(u) => (u, true),
            None => (usage::Usage::default(), false),
        };
        // A client that closes right after the provider's end marker (the OpenAI SDK closes
        // at `[DONE]`, before the body's last empty chunk) got the whole answer.
        let ended = extracted.as_ref().is_some_and(|e| e.complete);
        let outcome = if client_gone && !ended {
            Outcome::ClientDisconnected
        } else if self.status == 0 || self.status >= 400 || self.upstream_broke {
            Outcome::UpstreamError
        } else {
            Outcome::Complete
        };
        let model_answered = usage.model.clone();
        let metered = self.format.is_some();
        let (cost_nanousd, unpriced_reason) =
            if !reported && (!metered || outcome == Outcome::UpstreamError) {
                // Not an LLM call (a model list, a file), or the provider refused: nothing billed.
                (Some(0), None)
            } else if !reported {
                (None, Some("the response reported no usage".to_string()))
            } else {
                (None, None)
            };
        UsageRecord {
            time_ms: self.start_ms,
            request_id: std::mem::take(&mut self.request_id),
            provider: std::mem::take(&mut self.provider),
            provider_type: self.kind.as_str().into(),
            model_requested: self.model_requested.take(),
            model_answered,
            principal: std::mem::take(&mut self.principal.subject),
            user: self.principal.user.take(),
            agent: self.principal.agent.take(),
            api_path: std::mem::take(&mut self.api_path),
            status: self.status,
            streamed: self.streamed,
            usage,
            usage_reported: reported,
            cost_nanousd,
            unpriced_reason,
            latency_ms: self.started.elapsed().as_millis() as u64,
            ttfb_ms: self.ttfb_ms,
            conversation_id: self.conversation_id.take(),
            trace_parent: self.trace_parent.take(),
            outcome,
        }
    }
}

/// A W3C trace context `traceparent` (version 00): `00-<32 hex>-<16 hex>-<2 hex>`, ids not
/// all zero. Anything else is not carried (the caller's context is then unknown).
pub fn is_traceparent(s: &str) -> bool {
    let b = s.as_bytes();
    let hex =
        |r: std::ops::Range<usize>| b[r].iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    let nonzero = |r: std::ops::Range<usize>| b[r].iter().any(|&c| c != b'0');
    b.len() == 55
        && s.starts_with("00-")
        && b[35] == b'-'
        && b[52] == b'-'
        && hex(3..35)
        && hex(36..52)
        && hex(53..55)
        && nonzero(3..35)
        && nonzero(36..52)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat_stream(body: &[u8], client_gone: bool) -> Outcome {
        let mut a = Accounting::new(RequestInfo {
            request_id: "r",
            provider: "openai",
            kind: ProviderKind::Openai,
            method: "POST",
            path: "/v1/chat/completions",
            principal: Principal::default(),
            conversation_id: None,
            traceparent: None,
        });
        assert!(is_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert!(!is_traceparent(bad), "{bad}");
        }
        a.on_response_headers(200, |name| {
            (name == "content-type").then(|| "text/event-stream".to_string())
        });
        a.on_response_body(body);
        a.finish(client_gone).outcome
    }

    const CHUNK: &[u8] = b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n";

    #[test]
    fn a_client_gone_after_the_end_marker_got_the_whole_answer() {
        let whole = [CHUNK, b"data: [DONE]\n\n"].concat();
        assert_eq!(chat_stream(&whole, true), Outcome::Complete);
        assert_eq!(chat_stream(&whole, false), Outcome::Complete);
        assert_eq!(chat_stream(CHUNK, true), Outcome::ClientDisconnected);
    }
}
