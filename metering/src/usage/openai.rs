//! OpenAI chat completions, Responses and embeddings, and the same APIs on
//! OpenAI-compatible servers (vLLM, Ollama).
//!
//! Normalization (providers.md §1, §6):
//! - chat: `prompt_tokens` includes `prompt_tokens_details.cached_tokens` and (presumably;
//!   not verified) `cache_write_tokens`, so `input = prompt − cached − written`;
//!   `completion_tokens` includes `completion_tokens_details.reasoning_tokens`.
//! - Responses: the same with `input_tokens` / `input_tokens_details` and `output_tokens` /
//!   `output_tokens_details`; `cache_write_tokens_details.{ttl_30m_tokens, ttl_12h_tokens}`
//!   split the writes by TTL, and writes without a TTL count as 30 minutes, the default.
//! - embeddings: `prompt_tokens` is all input.
//!
//! Streams: a chat stream carries usage only with `stream_options.include_usage` (one chunk
//! before `data: [DONE]`; vLLM's `continuous_usage_stats` puts cumulative usage on every
//! chunk), so the last non-null `usage` wins; a Responses stream carries it in
//! `response.usage` of `response.completed` / `.incomplete` / `.failed`.

use super::json_scan::Path;
use super::{count, ExtractError, Field, Format, OpenaiDialect, Outcome, Usage};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    Chat,
    Responses,
    Embeddings,
}

const CHAT_PATHS: &[(Field, Path)] = &[
    (Field::Usage, &["usage"]),
    (Field::Model, &["model"]),
    (Field::ServiceTier, &["service_tier"]),
    (Field::Error, &["error"]),
];

const RESPONSES_PATHS: &[(Field, Path)] = &[
    (Field::Usage, &["usage"]),
    (Field::Model, &["model"]),
    (Field::ServiceTier, &["service_tier"]),
    (Field::Error, &["error"]),
    (Field::Type, &["type"]),
    (Field::Message, &["message"]),
    (Field::ResponseUsage, &["response", "usage"]),
    (Field::ResponseModel, &["response", "model"]),
    (Field::ResponseServiceTier, &["response", "service_tier"]),
    (Field::ResponseError, &["response", "error"]),
];

/// Responses stream events after which nothing more comes.
const RESPONSES_TERMINAL_EVENTS: &[&str] = &[
    "response.completed",
    "response.incomplete",
    "response.failed",
];

pub(crate) struct OpenaiFormat {
    api: Api,
    dialect: OpenaiDialect,
    usage: Option<Usage>,
    /// The current SSE event's `type` and `message` (Responses streams).
    event_type: Option<String>,
    event_message: Option<String>,
}

impl OpenaiFormat {
    pub fn new(api: Api, dialect: OpenaiDialect) -> Self {
        OpenaiFormat {
            api,
            dialect,
            usage: None,
            event_type: None,
            event_message: None,
        }
    }

    fn take_usage(&mut self, v: &Value, out: &mut Outcome) {
        if v.is_null() {
            return;
        }
        let parsed = match self.api {
            Api::Chat => chat_usage(v, self.dialect),
            Api::Responses => responses_usage(v, self.dialect),
            Api::Embeddings => embeddings_usage(v, self.dialect),
        };
        match parsed {
            Ok(u) => self.usage = Some(u),
            Err(e) => out.error(e),
        }
    }
}

impl Format for OpenaiFormat {
    fn paths(&self) -> &'static [(Field, Path)] {
        match self.api {
            Api::Chat | Api::Embeddings => CHAT_PATHS,
            Api::Responses => RESPONSES_PATHS,
        }
    }

    fn value(&mut self, field: Field, value: Value, out: &mut Outcome) {
        match field {
            Field::Usage | Field::ResponseUsage => self.take_usage(&value, out),
            Field::Model | Field::ResponseModel => out.set_model(&value),
            Field::ServiceTier | Field::ResponseServiceTier => out.set_service_tier(&value),
            Field::Error | Field::ResponseError => out.upstream_error(&value),
            Field::Type => self.event_type = value.as_str().map(str::to_string),
            Field::Message => self.event_message = value.as_str().map(str::to_string),
            _ => {}
        }
    }

    fn event_end(&mut self, out: &mut Outcome) {
        let event_type = self.event_type.take();
        let message = self.event_message.take();
        match event_type.as_deref() {
            Some(t) if RESPONSES_TERMINAL_EVENTS.contains(&t) => out.complete = true,
            Some("error") => out.error(ExtractError::Upstream(
                message.unwrap_or_else(|| "error event".into()),
            )),
            _ => {}
        }
    }

    fn done_marker(&mut self, out: &mut Outcome) {
        out.complete = true;
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.clone()
    }
}

/// A count the dialect requires: OpenAI always sends it, compatible servers may not.
fn required(u: &Value, key: &str, dialect: OpenaiDialect) -> Result<u64, ExtractError> {
    match (count(Some(u), key)?, dialect) {
        (Some(n), _) => Ok(n),
        (None, OpenaiDialect::Compatible) => Ok(0),
        (None, OpenaiDialect::Openai) => {
            Err(ExtractError::BadUsage(format!("usage has no `{key}`")))
        }
    }
}

fn check_object(u: &Value) -> Result<(), ExtractError> {
    if u.is_object() {
        Ok(())
    } else {
        Err(ExtractError::BadUsage(format!(
            "usage is not an object: {u}"
        )))
    }
}

/// Chat completions' (and legacy completions') usage.
pub fn chat_usage(u: &Value, dialect: OpenaiDialect) -> Result<Usage, ExtractError> {
    check_object(u)?;
    let prompt = required(u, "prompt_tokens", dialect)?;
    let completion = required(u, "completion_tokens", dialect)?;
    let details = u.get("prompt_tokens_details");
    let reasoning = count(u.get("completion_tokens_details"), "reasoning_tokens")?;
    with_input_details(prompt, details, completion, reasoning, u)
}

/// The Responses API's usage.
pub fn responses_usage(u: &Value, dialect: OpenaiDialect) -> Result<Usage, ExtractError> {
    check_object(u)?;
    let input = required(u, "input_tokens", dialect)?;
    let output = required(u, "output_tokens", dialect)?;
    let details = u.get("input_tokens_details");
    let reasoning = count(u.get("output_tokens_details"), "reasoning_tokens")?;
    with_input_details(input, details, output, reasoning, u)
}

/// Embeddings' usage: `prompt_tokens` is all input (some servers also send a
/// `completion_tokens` of 0).
pub fn embeddings_usage(u: &Value, dialect: OpenaiDialect) -> Result<Usage, ExtractError> {
    check_object(u)?;
    Ok(Usage {
        input: required(u, "prompt_tokens", dialect)?,
        output: count(Some(u), "completion_tokens")?.unwrap_or(0),
        provider_total: count(Some(u), "total_tokens")?,
        ..Usage::default()
    })
}

/// Splits an input count that includes its cache reads and writes.
fn with_input_details(
    all_input: u64,
    details: Option<&Value>,
    output: u64,
    reasoning: Option<u64>,
    u: &Value,
) -> Result<Usage, ExtractError> {
    let cached = count(details, "cached_tokens")?.unwrap_or(0);
    let written = count(details, "cache_write_tokens")?.unwrap_or(0);
    let ttl = details.and_then(|d| d.get("cache_write_tokens_details"));
    let ttl_30m = count(ttl, "ttl_30m_tokens")?.unwrap_or(0);
    let ttl_12h = count(ttl, "ttl_12h_tokens")?.unwrap_or(0);
    // Writes the TTL details do not account for are the default 30 minutes.
    let unlabelled = written.saturating_sub(ttl_30m.saturating_add(ttl_12h));
    let cache_write_30m = ttl_30m.saturating_add(unlabelled);
    let all_written = cache_write_30m.saturating_add(ttl_12h);
    Ok(Usage {
        input: all_input.saturating_sub(cached).saturating_sub(all_written),
        cache_read: cached,
        cache_write_30m,
        cache_write_12h: ttl_12h,
        output,
        reasoning: reasoning.unwrap_or(0),
        provider_total: count(Some(u), "total_tokens")?,
        ..Usage::default()
    })
}
