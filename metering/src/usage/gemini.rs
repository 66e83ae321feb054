//! Google Gemini (AI Studio): `generateContent`, `streamGenerateContent` (SSE with
//! `alt=sse`, else one JSON array of responses), `embedContent` / `batchEmbedContents`.
//!
//! Normalization (providers.md §3, §6), from `usageMetadata`:
//! - `promptTokenCount` includes `cachedContentTokenCount`: `input = prompt − cached`,
//!   `cache_read = cached`;
//! - `toolUsePromptTokenCount` is additional to the prompt and billed as input;
//! - `thoughtsTokenCount` is additional to `candidatesTokenCount` and billed as output
//!   ("output price including thinking"): `output = candidates + thoughts`;
//! - so `input + cache_read + output = totalTokenCount`.
//!
//! Streams: `usageMetadata` is cumulative and early chunks may hold only part of it, so the
//! last one wins. The stream has no end marker but EOF; a candidate's `finishReason` is
//! the sign it ended normally.

use super::json_scan::Path;
use super::{count, ExtractError, Field, Format, Outcome, Usage};
use serde_json::Value;

const PATHS: &[(Field, Path)] = &[
    (Field::UsageMetadata, &["usageMetadata"]),
    (Field::ModelVersion, &["modelVersion"]),
    (Field::FinishReason, &["candidates", "*", "finishReason"]),
    (Field::Error, &["error"]),
];

pub(crate) struct GeminiFormat {
    /// Embeddings: completion without a `finishReason`.
    embeddings: bool,
    usage: Option<Usage>,
}

impl GeminiFormat {
    pub fn new(embeddings: bool) -> Self {
        GeminiFormat {
            embeddings,
            usage: None,
        }
    }
}

impl Format for GeminiFormat {
    fn paths(&self) -> &'static [(Field, Path)] {
        PATHS
    }

    fn value(&mut self, field: Field, value: Value, out: &mut Outcome) {
        match field {
            Field::UsageMetadata if !value.is_null() => match usage_metadata(&value) {
                Ok(u) => self.usage = Some(u),
                Err(e) => out.error(e),
            },
            Field::ModelVersion => out.set_model(&value),
            Field::FinishReason if !self.embeddings && value.is_string() => out.complete = true,
            Field::Error => out.upstream_error(&value),
            _ => {}
        }
    }

    fn usage(&self) -> Option<Usage> {
        self.usage.clone()
    }
}

/// `usageMetadata` in buckets.
pub fn usage_metadata(m: &Value) -> Result<Usage, ExtractError> {
    if !m.is_object() {
        return Err(ExtractError::BadUsage(format!(
            "usageMetadata is not an object: {m}"
        )));
    }
    let m = Some(m);
    let prompt = count(m, "promptTokenCount")?.unwrap_or(0);
    let cached = count(m, "cachedContentTokenCount")?.unwrap_or(0);
    let tool_use_prompt = count(m, "toolUsePromptTokenCount")?.unwrap_or(0);
    let candidates = count(m, "candidatesTokenCount")?.unwrap_or(0);
    let thoughts = count(m, "thoughtsTokenCount")?.unwrap_or(0);
    Ok(Usage {
        input: prompt
            .saturating_sub(cached)
            .saturating_add(tool_use_prompt),
        cache_read: cached.min(prompt),
        output: candidates.saturating_add(thoughts),
        reasoning: thoughts,
        provider_total: count(m, "totalTokenCount")?,
        ..Usage::default()
    })
}
