//! # aigw-translate
//!
//! OpenAI chat completions to and from Anthropic messages, Gemini generateContent /
//! streamGenerateContent and Bedrock converse / converse-stream (issue 10, item 2). Pure
//! functions and small state machines: no I/O, no async, no dependency beyond serde_json.
//!
//! # Use
//! 1. [`translate_request`] reads the client's OpenAI body and returns the native body,
//!    the upstream path (relative to the provider's base URL) and the headers the target
//!    needs ([`TranslatedRequest`]). A request the target cannot serve faithfully fails
//!    with [`TranslateError`], which names the field (the gateway's 400 puts it in
//!    `error.param`).
//! 2. For a 2xx non-streamed answer, [`translate_response`] turns the native body into a
//!    `chat.completion`. Native error bodies are passed to the client untranslated;
//!    [`native_error_message`] reads their message if the caller wants it for logs.
//! 3. For a 2xx streamed answer, [`stream_translator`] gives a [`StreamTranslator`]: feed
//!    it the upstream body in whatever pieces arrive and forward what it writes
//!    (`text/event-stream`, OpenAI's `data: {chunk}` … `data: [DONE]`). Nothing beyond the
//!    current SSE event or event-stream frame is held.
//!
//! # Streams
//! The OpenAI stream has a role chunk first, then content and tool-call deltas (`index`,
//! `id`, `function.name`, `function.arguments` fragments), one chunk with `finish_reason`,
//! then (only when the client sent `stream_options.include_usage`) one usage chunk with
//! `choices: []`, then `data: [DONE]`. A native stream cut before its end (no
//! `message_stop`, no Gemini `finishReason`, a partial event-stream frame) gets no
//! `[DONE]` and no usage chunk, as an OpenAI stream cut mid-way would not; a cut inside an
//! SSE event leaves an unparseable payload, which is reported as an OpenAI error event. A
//! native error event (Anthropic `event: error`, a Gemini `{"error"}` payload, a Bedrock
//! `exception` frame) becomes an OpenAI error event (`data: {"error":{...}}`, which the
//! OpenAI SDK raises as `APIError`) and ends the stream.
//!
//! # Usage (providers.md §6)
//! OpenAI's `prompt_tokens` includes cached tokens and `completion_tokens` includes
//! reasoning tokens. Anthropic and Bedrock cache reads and writes are additional to their
//! input tokens, so `prompt_tokens = input + cache_read + cache_write`, `cached_tokens =
//! cache_read`, `cache_write_tokens = cache_write`. Gemini's `cachedContentTokenCount` is
//! inside `promptTokenCount` and `thoughtsTokenCount` is additional to the candidates, so
//! `completion_tokens = candidates + thoughts`, `reasoning_tokens = thoughts`; its
//! `toolUsePromptTokenCount` is additional to the prompt and is added to `prompt_tokens`.
//! The accounting record keeps the native usage: metering reads the upstream body as
//! before, this crate only shapes what the client sees.
//!
//! Module map: [`openai`] (request model, answer writers), [`anthropic`], [`gemini`],
//! [`bedrock`], [`error`], and the SSE framing helper [`sse`]; AWS event-stream frames are
//! decoded with metering's decoder.

pub mod anthropic;
pub mod bedrock;
pub mod error;
pub mod gemini;
pub mod openai;
pub mod sse;

pub use error::TranslateError;
pub use openai::{ChatRequest, ResponseMeta};

/// Which native API a request goes to, with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Anthropic(anthropic::AnthropicOptions),
    Gemini(gemini::GeminiOptions),
    Bedrock,
}

/// The native request to send upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranslatedRequest {
    /// Path and query relative to the provider's base URL, e.g. `/v1/messages`,
    /// `/v1beta/models/gemini-x:streamGenerateContent?alt=sse`,
    /// `/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse-stream`.
    pub path: String,
    /// Always POST with this JSON body.
    pub body: Vec<u8>,
    /// Headers the target needs besides auth (`content-type`, `anthropic-version`).
    pub headers: Vec<(&'static str, String)>,
    /// The client asked for a stream (the native request streams too).
    pub stream: bool,
    /// The client asked for the final usage chunk.
    pub include_usage: bool,
}

/// Feeds a native streamed body, writes OpenAI SSE.
pub trait StreamTranslator {
    /// Reads the next piece of the upstream body (any boundaries) and appends to `out`
    /// whatever OpenAI SSE it completes.
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>);
    /// At the end of the upstream body: appends the closing chunks, if the native stream
    /// ended properly.
    fn finish(&mut self, out: &mut Vec<u8>);
}

/// OpenAI request → native request for `target`; `native_model` is the provider's model
/// id (the caller resolves `<provider>/<model>` and virtual models; the request's `model`
/// is not used).
pub fn translate_request(
    target: &Target,
    openai_body: &[u8],
    native_model: &str,
) -> Result<TranslatedRequest, TranslateError> {
    let req = ChatRequest::from_slice(openai_body)?;
    match target {
        Target::Anthropic(o) => anthropic::translate_request(&req, native_model, o),
        Target::Gemini(o) => gemini::translate_request(&req, native_model, o),
        Target::Bedrock => bedrock::translate_request(&req, native_model),
    }
}

/// Native 2xx JSON answer → `chat.completion` JSON body.
pub fn translate_response(
    target: &Target,
    native_body: &[u8],
    meta: &ResponseMeta,
) -> Result<Vec<u8>, TranslateError> {
    let v = match target {
        Target::Anthropic(_) => anthropic::translate_response(native_body, meta)?,
        Target::Gemini(_) => gemini::translate_response(native_body, meta)?,
        Target::Bedrock => bedrock::translate_response(native_body, meta)?,
    };
    Ok(serde_json::to_vec(&v).unwrap_or_default())
}

/// A translator for one native 2xx streamed answer.
pub fn stream_translator(
    target: &Target,
    meta: ResponseMeta,
    include_usage: bool,
) -> Box<dyn StreamTranslator + Send> {
    match target {
        Target::Anthropic(_) => Box::new(anthropic::AnthropicStreamTranslator::new(
            meta,
            include_usage,
        )),
        Target::Gemini(_) => Box::new(gemini::GeminiStreamTranslator::new(meta, include_usage)),
        Target::Bedrock => Box::new(bedrock::BedrockStreamTranslator::new(meta, include_usage)),
    }
}

/// The message of a native error body (Anthropic `error.message`, Gemini
/// `error.message`, Bedrock `message`), for logs; the body itself goes to the client
/// untranslated.
pub fn native_error_message(target: &Target, body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let m = match target {
        Target::Anthropic(_) | Target::Gemini(_) => v.pointer("/error/message"),
        Target::Bedrock => v.get("message").or_else(|| v.get("Message")),
    };
    m.and_then(|m| m.as_str()).map(str::to_string)
}

/// Leading `system`/`developer` messages and the conversation after them. A system
/// message after the conversation began is refused: no target has mid-conversation
/// system prompts, and moving it to the top would change its meaning.
pub(crate) fn split_system(
    req: &ChatRequest,
) -> Result<(Vec<String>, &[openai::Message]), TranslateError> {
    let start = req
        .messages
        .iter()
        .position(|m| !matches!(m, openai::Message::System { .. }))
        .unwrap_or(req.messages.len());
    let mut system = Vec::new();
    for m in &req.messages[..start] {
        if let openai::Message::System { text, .. } = m {
            system.extend(text.iter().cloned());
        }
    }
    let rest = &req.messages[start..];
    if let Some(m) = rest
        .iter()
        .find(|m| matches!(m, openai::Message::System { .. }))
    {
        return Err(TranslateError::unsupported(
            format!("messages[{}].role", m.index()),
            "system/developer messages are translated only before the first user or assistant message",
        ));
    }
    Ok((system, rest))
}

/// Appends native content blocks to the conversation, merging them into the previous turn
/// when it has the same role (tool results that follow each other, or a tool result and
/// the user message after it, become one native user turn; targets want alternation).
pub(crate) fn push_turn(
    turns: &mut Vec<(&'static str, Vec<serde_json::Value>)>,
    role: &'static str,
    blocks: Vec<serde_json::Value>,
) {
    match turns.last_mut() {
        Some((r, b)) if *r == role => b.extend(blocks),
        _ => turns.push((role, blocks)),
    }
}

#[cfg(test)]
mod fixtures;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_error_messages() {
        let a = Target::Anthropic(Default::default());
        assert_eq!(
            native_error_message(&a, br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"},"request_id":"req_1"}"#).as_deref(),
            Some("slow down")
        );
        let g = Target::Gemini(Default::default());
        assert_eq!(
            native_error_message(&g, br#"{"error":{"code":400,"message":"API key not valid.","status":"INVALID_ARGUMENT"}}"#).as_deref(),
            Some("API key not valid.")
        );
        assert_eq!(
            native_error_message(&Target::Bedrock, br#"{"message":"Too many requests"}"#)
                .as_deref(),
            Some("Too many requests")
        );
        assert_eq!(native_error_message(&Target::Bedrock, b"<html>"), None);
    }
}
