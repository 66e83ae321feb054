//! Anthropic messages, JSON and SSE (also inside Bedrock `invoke` / invoke streams).
//!
//! Normalization (providers.md §2, §6): `input_tokens` excludes the cache, and
//! `cache_read_input_tokens` and `cache_creation_input_tokens` are *additional* to it.
//! `cache_creation.{ephemeral_5m_input_tokens, ephemeral_1h_input_tokens}` split the writes
//! by TTL; writes that split does not cover (or all of them, without it) are 5 minutes,
//! the default. `output_tokens` includes `output_tokens_details.thinking_tokens`.
//!
//! Streams: `message_start.message.usage` has the input and cache fields and a small
//! initial `output_tokens`; each `message_delta.usage` holds *cumulative* values for the
//! fields it has. The final usage is the last value of each field, never a sum.

use super::json_scan::Path;
use super::{count, ExtractError, Field, Format, Outcome, Usage};
use serde_json::Value;

pub(crate) const PATHS: &[(Field, Path)] = &[
    (Field::Type, &["type"]),
    (Field::Usage, &["usage"]),
    (Field::Model, &["model"]),
    (Field::MessageUsage, &["message", "usage"]),
    (Field::MessageModel, &["message", "model"]),
    (Field::Error, &["error"]),
];

/// The last value seen of each Anthropic usage field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawUsage {
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_creation_input_tokens: Option<u64>,
    pub cache_read_input_tokens: Option<u64>,
    pub ephemeral_5m_input_tokens: Option<u64>,
    pub ephemeral_1h_input_tokens: Option<u64>,
    pub thinking_tokens: Option<u64>,
    pub service_tier: Option<String>,
}

impl RawUsage {
    /// Takes the fields `usage` has, keeping the others.
    pub fn merge(&mut self, usage: &Value) -> Result<(), ExtractError> {
        if !usage.is_object() {
            return Err(ExtractError::BadUsage(format!(
                "usage is not an object: {usage}"
            )));
        }
        let u = Some(usage);
        let cache_creation = usage.get("cache_creation");
        let details = usage.get("output_tokens_details");
        let fields = [
            (&mut self.input_tokens, count(u, "input_tokens")?),
            (&mut self.output_tokens, count(u, "output_tokens")?),
            (
                &mut self.cache_creation_input_tokens,
                count(u, "cache_creation_input_tokens")?,
            ),
            (
                &mut self.cache_read_input_tokens,
                count(u, "cache_read_input_tokens")?,
            ),
            (
                &mut self.ephemeral_5m_input_tokens,
                count(cache_creation, "ephemeral_5m_input_tokens")?,
            ),
            (
                &mut self.ephemeral_1h_input_tokens,
                count(cache_creation, "ephemeral_1h_input_tokens")?,
            ),
            (
                &mut self.thinking_tokens,
                count(details, "thinking_tokens")?,
            ),
        ];
        for (slot, value) in fields {
            if value.is_some() {
                *slot = value;
            }
        }
        if let Some(tier) = usage.get("service_tier").and_then(Value::as_str) {
            self.service_tier = Some(tier.to_string());
        }
        Ok(())
    }

    pub fn to_usage(&self) -> Usage {
        let written = self.cache_creation_input_tokens.unwrap_or(0);
        let ttl_5m = self.ephemeral_5m_input_tokens.unwrap_or(0);
        let ttl_1h = self.ephemeral_1h_input_tokens.unwrap_or(0);
        let unlabelled = written.saturating_sub(ttl_5m.saturating_add(ttl_1h));
        Usage {
            input: self.input_tokens.unwrap_or(0),
            cache_read: self.cache_read_input_tokens.unwrap_or(0),
            cache_write_5m: ttl_5m.saturating_add(unlabelled),
            cache_write_1h: ttl_1h,
            output: self.output_tokens.unwrap_or(0),
            reasoning: self.thinking_tokens.unwrap_or(0),
            service_tier: self.service_tier.clone(),
            ..Usage::default()
        }
    }
}

/// Anthropic's message JSON or SSE stream.
#[derive(Debug, Default)]
pub(crate) struct AnthropicFormat {
    raw: RawUsage,
    seen_usage: bool,
}

impl AnthropicFormat {
    pub fn has_usage(&self) -> bool {
        self.seen_usage
    }
}

impl Format for AnthropicFormat {
    fn paths(&self) -> &'static [(Field, Path)] {
        PATHS
    }

    fn value(&mut self, field: Field, value: Value, out: &mut Outcome) {
        match field {
            Field::Usage | Field::MessageUsage if !value.is_null() => {
                match self.raw.merge(&value) {
                    Ok(()) => self.seen_usage = true,
                    Err(e) => out.error(e),
                }
            }
            Field::Model | Field::MessageModel => out.set_model(&value),
            Field::Type if value.as_str() == Some("message_stop") => out.complete = true,
            Field::Error => out.upstream_error(&value),
            _ => {}
        }
    }

    fn usage(&self) -> Option<Usage> {
        self.seen_usage.then(|| self.raw.to_usage())
    }
}
