//! AWS Bedrock Runtime: Converse, ConverseStream, InvokeModel and
//! InvokeModelWithResponseStream (providers.md §4).
//!
//! Normalization (§6): Bedrock's `inputTokens` excludes the cache; `cacheReadInputTokens`
//! and `cacheWriteInputTokens` are *additional*. `cacheDetails[{ttl, inputTokens}]` split
//! the writes by TTL (`5m`, `1h`); writes it does not cover are 5 minutes, the default.
//! There is no reasoning field; reasoning is inside `outputTokens`.
//!
//! Where usage is:
//! - Converse: the body's `usage`.
//! - ConverseStream: the `metadata` event (the last one), `{"usage": {…}, "metrics": …}`.
//! - InvokeModel: the model's own body when we understand it (Anthropic messages JSON,
//!   which has the 5m/1h split, or a Converse-shaped `usage` as Nova sends), else the
//!   `x-amzn-bedrock-{input,output}-token-count` headers (with the cache-read/write count
//!   headers when present).
//! - InvokeModelWithResponseStream: each `chunk` event is `{"bytes": "<base64 of the
//!   model's own event JSON>"}`. Anthropic models send their usual `message_start` /
//!   `message_delta` events (read as in [`super::anthropic`], with the TTL split); every
//!   model's last chunk carries `amazon-bedrock-invocationMetrics` with the counts, used
//!   when the model's events have none.
//!
//! Not modelled: the ConverseStream caveat in providers.md (`openai.gpt-5.6` measured with
//! `inputTokens` including cache writes) — the framing cannot tell which model answered.

use super::anthropic::AnthropicFormat;
use super::event_stream::Frame;
use super::json_scan::{JsonScanner, Path};
use super::{anthropic, count, ExtractError, Field, Format, Outcome, Usage};
use serde_json::Value;

/// Converse's `TokenUsage` in buckets.
pub fn converse_usage(u: &Value) -> Result<Usage, ExtractError> {
    if !u.is_object() {
        return Err(ExtractError::BadUsage(format!(
            "usage is not an object: {u}"
        )));
    }
    let written = count(Some(u), "cacheWriteInputTokens")?.unwrap_or(0);
    let (mut ttl_5m, mut ttl_1h) = (0u64, 0u64);
    if let Some(details) = u.get("cacheDetails").and_then(Value::as_array) {
        for d in details {
            let tokens = count(Some(d), "inputTokens")?.unwrap_or(0);
            match d.get("ttl").and_then(Value::as_str) {
                Some("1h") => ttl_1h = ttl_1h.saturating_add(tokens),
                // "5m", and any TTL we do not know, at the default.
                _ => ttl_5m = ttl_5m.saturating_add(tokens),
            }
        }
    }
    let unlabelled = written.saturating_sub(ttl_5m.saturating_add(ttl_1h));
    Ok(Usage {
        input: count(Some(u), "inputTokens")?.unwrap_or(0),
        cache_read: count(Some(u), "cacheReadInputTokens")?.unwrap_or(0),
        cache_write_5m: ttl_5m.saturating_add(unlabelled),
        cache_write_1h: ttl_1h,
        output: count(Some(u), "outputTokens")?.unwrap_or(0),
        provider_total: count(Some(u), "totalTokens")?,
        ..Usage::default()
    })
}

/// `amazon-bedrock-invocationMetrics` in buckets (cache counts appear for models with
/// prompt caching; they are additional, as everywhere on Bedrock).
pub fn invocation_metrics_usage(m: &Value) -> Result<Usage, ExtractError> {
    if !m.is_object() {
        return Err(ExtractError::BadUsage(format!(
            "amazon-bedrock-invocationMetrics is not an object: {m}"
        )));
    }
    let m = Some(m);
    Ok(Usage {
        input: count(m, "inputTokenCount")?.unwrap_or(0),
        cache_read: count(m, "cacheReadInputTokenCount")?.unwrap_or(0),
        cache_write_5m: count(m, "cacheWriteInputTokenCount")?.unwrap_or(0),
        output: count(m, "outputTokenCount")?.unwrap_or(0),
        ..Usage::default()
    })
}

/// An `exception` or `error` frame, as a readable error.
fn frame_error(frame: &Frame) -> Option<ExtractError> {
    let payload_message = || {
        serde_json::from_slice::<Value>(&frame.payload)
            .ok()
            .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_else(|| {
                String::from_utf8_lossy(&frame.payload)
                    .chars()
                    .take(300)
                    .collect()
            })
    };
    match frame.header_str(":message-type") {
        Some("exception") => Some(ExtractError::Upstream(format!(
            "{}: {}",
            frame.header_str(":exception-type").unwrap_or("exception"),
            payload_message()
        ))),
        Some("error") => Some(ExtractError::Upstream(format!(
            "{}: {}",
            frame.header_str(":error-code").unwrap_or("error"),
            frame.header_str(":error-message").unwrap_or("")
        ))),
        _ => None,
    }
}

#[derive(Debug, Default)]
pub(crate) struct ConverseFormat {
    usage: Option<Usage>,
}

impl Format for ConverseFormat {
    fn paths(&self) -> &'static [(Field, Path)] {
        &[(Field::Usage, &["usage"])]
    }

    fn value(&mut self, field: Field, value: Value, out: &mut Outcome) {
        if field == Field::Usage && !value.is_null() {
            match converse_usage(&value) {
                Ok(u) => self.usage = Some(u),
                Err(e) => out.error(e),
            }
        }
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.clone()
    }
}

#[derive(Debug, Default)]
pub(crate) struct ConverseStreamFormat {
    usage: Option<Usage>,
}

impl Format for ConverseStreamFormat {
    /// An error answer before the stream starts is plain JSON; it has no usage.
    fn paths(&self) -> &'static [(Field, Path)] {
        &[]
    }

    fn value(&mut self, _field: Field, _value: Value, _out: &mut Outcome) {}

    fn frame(&mut self, frame: Frame, out: &mut Outcome) {
        if let Some(e) = frame_error(&frame) {
            return out.error(e);
        }
        if frame.header_str(":event-type") != Some("metadata") {
            return;
        }
        let parsed = serde_json::from_slice::<Value>(&frame.payload)
            .map_err(|e| ExtractError::BadEvent(format!("metadata event is not JSON: {e}")))
            .and_then(|v| match v.get("usage") {
                Some(u) if !u.is_null() => converse_usage(u).map(Some),
                _ => Ok(None),
            });
        match parsed {
            Ok(usage) => {
                if usage.is_some() {
                    self.usage = usage;
                }
                out.complete = true;
            }
            Err(e) => out.error(e),
        }
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.clone()
    }
}

/// InvokeModel: the model's body, else the response headers.
#[derive(Debug, Default)]
pub(crate) struct InvokeFormat {
    anthropic: AnthropicFormat,
    converse_shaped: Option<Usage>,
    header_input: Option<u64>,
    header_output: Option<u64>,
    header_cache_read: Option<u64>,
    header_cache_write: Option<u64>,
}

impl Format for InvokeFormat {
    fn paths(&self) -> &'static [(Field, Path)] {
        anthropic::PATHS
    }

    fn value(&mut self, field: Field, value: Value, out: &mut Outcome) {
        // Nova and other Amazon models answer with a Converse-shaped `usage`.
        if field == Field::Usage && value.get("inputTokens").is_some() {
            match converse_usage(&value) {
                Ok(u) => self.converse_shaped = Some(u),
                Err(e) => out.error(e),
            }
            return;
        }
        self.anthropic.value(field, value, out);
    }

    fn header(&mut self, name: &str, value: &[u8]) {
        let slot = match name {
            "x-amzn-bedrock-input-token-count" => &mut self.header_input,
            "x-amzn-bedrock-output-token-count" => &mut self.header_output,
            "x-amzn-bedrock-cache-read-input-token-count" => &mut self.header_cache_read,
            "x-amzn-bedrock-cache-write-input-token-count" => &mut self.header_cache_write,
            _ => return,
        };
        if let Some(n) = std::str::from_utf8(value)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            *slot = Some(n);
        }
    }

    fn usage(&self) -> Option<Usage> {
        if self.anthropic.has_usage() {
            return self.anthropic.usage();
        }
        if self.converse_shaped.is_some() {
            return self.converse_shaped.clone();
        }
        if self.header_input.is_none() && self.header_output.is_none() {
            return None;
        }
        Some(Usage {
            input: self.header_input.unwrap_or(0),
            cache_read: self.header_cache_read.unwrap_or(0),
            cache_write_5m: self.header_cache_write.unwrap_or(0),
            output: self.header_output.unwrap_or(0),
            ..Usage::default()
        })
    }
}

/// What is read from each chunk's inner JSON: Anthropic's events, and the metrics.
const INNER_PATHS: &[(Field, Path)] = &[
    (Field::Type, &["type"]),
    (Field::Usage, &["usage"]),
    (Field::Model, &["model"]),
    (Field::MessageUsage, &["message", "usage"]),
    (Field::MessageModel, &["message", "model"]),
    (Field::Error, &["error"]),
    (
        Field::InvocationMetrics,
        &["amazon-bedrock-invocationMetrics"],
    ),
];

pub(crate) struct InvokeStreamFormat {
    anthropic: AnthropicFormat,
    metrics: Option<Usage>,
    inner: JsonScanner<Field>,
}

impl Default for InvokeStreamFormat {
    fn default() -> Self {
        InvokeStreamFormat {
            anthropic: AnthropicFormat::default(),
            metrics: None,
            inner: JsonScanner::new(INNER_PATHS),
        }
    }
}

#[derive(serde::Deserialize)]
struct PayloadPart {
    bytes: String,
}

impl Format for InvokeStreamFormat {
    fn paths(&self) -> &'static [(Field, Path)] {
        &[]
    }

    fn value(&mut self, _field: Field, _value: Value, _out: &mut Outcome) {}

    fn frame(&mut self, frame: Frame, out: &mut Outcome) {
        if let Some(e) = frame_error(&frame) {
            return out.error(e);
        }
        if frame.header_str(":event-type") != Some("chunk") {
            return;
        }
        let inner = serde_json::from_slice::<PayloadPart>(&frame.payload)
            .map_err(|e| ExtractError::BadEvent(format!("chunk payload: {e}")))
            .and_then(|p| {
                base64_decode(&p.bytes)
                    .ok_or_else(|| ExtractError::BadEvent("chunk bytes are not base64".into()))
            });
        let inner = match inner {
            Ok(bytes) => bytes,
            Err(e) => return out.error(e),
        };
        self.inner.reset();
        self.inner.feed(&inner);
        for (field, value) in self.inner.take_captured() {
            if field == Field::InvocationMetrics {
                match invocation_metrics_usage(&value) {
                    Ok(u) => self.metrics = Some(u),
                    Err(e) => out.error(e),
                }
                out.complete = true;
            } else {
                self.anthropic.value(field, value, out);
            }
        }
        if let Some(e) = self.inner.error() {
            out.error(e.clone().into());
        }
    }

    fn usage(&self) -> Option<Usage> {
        if self.anthropic.has_usage() {
            self.anthropic.usage()
        } else {
            self.metrics.clone()
        }
    }
}

/// Standard base64 (RFC 4648 §4), padding optional; `None` for anything else.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let text = text.trim_end_matches('=').as_bytes();
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    for chunk in text.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = acc << 6 | sextet(c)?;
        }
        // A short final chunk holds 1 or 2 bytes, left-aligned.
        acc <<= 6 * (4 - chunk.len() as u32);
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}
