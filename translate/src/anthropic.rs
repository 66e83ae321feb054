//! OpenAI chat completions ⇄ Anthropic messages (`POST /v1/messages`).
//!
//! # Request
//! - Leading `system`/`developer` messages → `system` (text blocks).
//! - `user` text and images → `text` and `image` blocks; data URLs become `base64`
//!   sources (jpeg, png, gif, webp), http(s) URLs `url` sources (Anthropic fetches them).
//! - `assistant` text and `tool_calls` → `text` and `tool_use` blocks (`arguments` parsed
//!   into `input`); `tool` messages → `tool_result` blocks in a user turn. Consecutive
//!   turns of one role are merged.
//! - `tools` → `{name, description, input_schema, strict}`; `tool_choice` none / auto /
//!   required / a function → `none` / `auto` / `any` / `tool`; `parallel_tool_calls:
//!   false` → `disable_parallel_tool_use: true`.
//! - `max_completion_tokens`/`max_tokens` → `max_tokens`, which Anthropic requires: when
//!   the client sends neither, [`DEFAULT_MAX_TOKENS`] (4096) is sent.
//! - `temperature` (Anthropic's range is 0–1, so more is refused), `top_p`, `stop` →
//!   `stop_sequences`, `stream`, `user` → `metadata.user_id`.
//! - `response_format` `json_schema` → `output_config.format` `{type: json_schema,
//!   schema}` (structured outputs); `json_object` is refused: Anthropic has no schema-less
//!   JSON mode.
//! - Refused: `seed`, non-zero `frequency_penalty`/`presence_penalty`.
//!
//! # API version
//! [`AnthropicOptions::version`] picks the `anthropic-version` header. `2026-10-21`
//! removed `temperature`, `top_p` and `top_k` (a request with any of them is a 400 even
//! at default values), so under it those fields are refused here; under `2023-06-01` (the
//! default, which Anthropic still serves) they are mapped.
//!
//! # Answer
//! `text` blocks → `content`, `tool_use` → `tool_calls` (`input` serialised as
//! `arguments`); `thinking` blocks are not shown (chat completions has no field for
//! them). `stop_reason`: `end_turn`, `stop_sequence`, `pause_turn` → `stop`;
//! `max_tokens`, `model_context_window_exceeded` → `length`; `tool_use` → `tool_calls`;
//! `refusal` → `content_filter`.

use crate::openai::{
    self, ChatRequest, ChunkWriter, FinishReason, Image, Message, ResponseFormat, ResponseMeta,
    ToolCall, ToolChoice, Usage, UserPart,
};
use crate::sse::{SseDecoder, SseEvent};
use crate::{push_turn, split_system, StreamTranslator, TranslateError, TranslatedRequest};
use serde_json::{json, Map, Value};

/// `max_tokens` sent when the client gives none (Anthropic requires the field). 4096 is the
/// value Anthropic's own examples use widely and fits every current model's output limit.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AnthropicVersion {
    /// `2023-06-01`: sampling parameters accepted.
    #[default]
    V2023_06_01,
    /// `2026-10-21`: `temperature`, `top_p`, `top_k` removed.
    V2026_10_21,
}

impl AnthropicVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            AnthropicVersion::V2023_06_01 => "2023-06-01",
            AnthropicVersion::V2026_10_21 => "2026-10-21",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AnthropicOptions {
    pub version: AnthropicVersion,
}

const IMAGE_TYPES: &[&str] = &["image/jpeg", "image/png", "image/gif", "image/webp"];

pub fn translate_request(
    req: &ChatRequest,
    model: &str,
    opts: &AnthropicOptions,
) -> Result<TranslatedRequest, TranslateError> {
    req.refuse_seed_and_penalties("Anthropic")?;
    let mut body = Map::new();
    body.insert("model".into(), json!(model));
    body.insert(
        "max_tokens".into(),
        json!(req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS)),
    );

    let (system, conversation) = split_system(req)?;
    if !system.is_empty() {
        body.insert(
            "system".into(),
            Value::Array(
                system
                    .iter()
                    .map(|t| json!({"type": "text", "text": t}))
                    .collect(),
            ),
        );
    }

    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for m in conversation {
        match m {
            Message::User { parts, .. } => {
                let mut blocks = Vec::with_capacity(parts.len());
                for p in parts {
                    blocks.push(match p {
                        UserPart::Text(t) => json!({"type": "text", "text": t}),
                        UserPart::Image { image: Image::Base64 { media_type, data }, path } => {
                            if !IMAGE_TYPES.contains(&media_type.as_str()) {
                                return Err(TranslateError::unsupported(
                                    path,
                                    format!("Anthropic accepts jpeg, png, gif and webp images, not {media_type}"),
                                ));
                            }
                            json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}})
                        }
                        UserPart::Image { image: Image::Url(url), .. } => {
                            json!({"type": "image", "source": {"type": "url", "url": url}})
                        }
                    });
                }
                push_turn(&mut turns, "user", blocks);
            }
            Message::Assistant {
                text,
                tool_calls,
                index,
            } => {
                let mut blocks = Vec::new();
                for t in text.iter().filter(|t| !t.is_empty()) {
                    blocks.push(json!({"type": "text", "text": t}));
                }
                for (k, c) in tool_calls.iter().enumerate() {
                    let path = format!("messages[{index}].tool_calls[{k}].function.arguments");
                    let input = c.arguments_value(&path)?;
                    if !input.is_object() {
                        return Err(TranslateError::invalid(
                            path,
                            "arguments must be a JSON object",
                        ));
                    }
                    blocks.push(
                        json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}),
                    );
                }
                push_turn(&mut turns, "assistant", blocks);
            }
            Message::Tool {
                tool_call_id,
                content,
                ..
            } => {
                push_turn(
                    &mut turns,
                    "user",
                    vec![
                        json!({"type": "tool_result", "tool_use_id": tool_call_id, "content": content}),
                    ],
                );
            }
            Message::System { .. } => unreachable!("split_system leaves none"),
        }
    }
    body.insert(
        "messages".into(),
        Value::Array(
            turns
                .into_iter()
                .map(|(role, content)| json!({"role": role, "content": content}))
                .collect(),
        ),
    );

    let removed = opts.version == AnthropicVersion::V2026_10_21;
    if let Some(t) = req.temperature {
        if removed {
            return Err(TranslateError::unsupported(
                "temperature",
                "removed in anthropic-version 2026-10-21, which this target uses",
            ));
        }
        if !(0.0..=1.0).contains(&t) {
            return Err(TranslateError::unsupported(
                "temperature",
                "Anthropic accepts 0 to 1",
            ));
        }
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        if removed {
            return Err(TranslateError::unsupported(
                "top_p",
                "removed in anthropic-version 2026-10-21, which this target uses",
            ));
        }
        body.insert("top_p".into(), json!(p));
    }
    if !req.stop.is_empty() {
        body.insert("stop_sequences".into(), json!(req.stop));
    }
    if req.stream {
        body.insert("stream".into(), json!(true));
    }
    if let Some(u) = &req.user {
        body.insert("metadata".into(), json!({"user_id": u}));
    }

    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut o = Map::new();
                o.insert("name".into(), json!(t.name));
                if let Some(d) = &t.description {
                    o.insert("description".into(), json!(d));
                }
                o.insert(
                    "input_schema".into(),
                    t.parameters
                        .clone()
                        .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
                );
                if let Some(s) = t.strict {
                    o.insert("strict".into(), json!(s));
                }
                Value::Object(o)
            })
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    } else if req.tool_choice.is_some() {
        return Err(TranslateError::invalid(
            "tool_choice",
            "tool_choice needs tools",
        ));
    }
    let no_parallel = req.parallel_tool_calls == Some(false);
    let choice = match (&req.tool_choice, req.tools.is_empty()) {
        (_, true) => None,
        (Some(ToolChoice::None), _) => Some(json!({"type": "none"})),
        (Some(ToolChoice::Required), _) => Some(json!({"type": "any"})),
        (Some(ToolChoice::Function(name)), _) => Some(json!({"type": "tool", "name": name})),
        (Some(ToolChoice::Auto), _) => Some(json!({"type": "auto"})),
        (None, _) if no_parallel => Some(json!({"type": "auto"})),
        (None, _) => None,
    };
    if let Some(mut c) = choice {
        if no_parallel && c["type"] != "none" {
            c["disable_parallel_tool_use"] = json!(true);
        }
        body.insert("tool_choice".into(), c);
    }

    match &req.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            return Err(TranslateError::unsupported(
                "response_format.type",
                "Anthropic has no schema-less JSON mode; send a json_schema",
            ))
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            body.insert(
                "output_config".into(),
                json!({"format": {"type": "json_schema", "schema": schema}}),
            );
        }
    }

    Ok(TranslatedRequest {
        path: "/v1/messages".into(),
        body: serde_json::to_vec(&Value::Object(body)).unwrap_or_default(),
        headers: vec![
            ("content-type", "application/json".into()),
            ("anthropic-version", opts.version.as_str().into()),
        ],
        stream: req.stream,
        include_usage: req.include_usage,
    })
}

pub fn finish_reason(stop_reason: Option<&str>) -> FinishReason {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

/// Anthropic usage fields, as last reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnthropicUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub thinking_tokens: u64,
}

impl AnthropicUsage {
    /// Overwrites the fields `u` has (stream usage is cumulative: last value wins).
    pub fn update(&mut self, u: &Value) {
        let get = |k: &str| u.get(k).and_then(Value::as_u64);
        if let Some(v) = get("input_tokens") {
            self.input_tokens = v;
        }
        if let Some(v) = get("output_tokens") {
            self.output_tokens = v;
        }
        if let Some(v) = get("cache_creation_input_tokens") {
            self.cache_creation_input_tokens = v;
        }
        if let Some(v) = get("cache_read_input_tokens") {
            self.cache_read_input_tokens = v;
        }
        if let Some(v) = u
            .pointer("/output_tokens_details/thinking_tokens")
            .and_then(Value::as_u64)
        {
            self.thinking_tokens = v;
        }
    }

    /// Cache reads and writes are additional to `input_tokens`; thinking is inside output.
    pub fn to_openai(self) -> Usage {
        Usage {
            prompt_tokens: self
                .input_tokens
                .saturating_add(self.cache_read_input_tokens)
                .saturating_add(self.cache_creation_input_tokens),
            completion_tokens: self.output_tokens,
            cached_tokens: self.cache_read_input_tokens,
            cache_write_tokens: self.cache_creation_input_tokens,
            reasoning_tokens: self.thinking_tokens,
        }
    }
}

fn bad(field: &str, why: &str) -> TranslateError {
    TranslateError::invalid(field, format!("Anthropic answer: {why}"))
}

pub fn translate_response(body: &[u8], meta: &ResponseMeta) -> Result<Value, TranslateError> {
    let v: Value =
        serde_json::from_slice(body).map_err(|e| bad("response", &format!("not JSON: {e}")))?;
    let content = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("response.content", "missing"))?;
    let mut text: Option<String> = None;
    let mut calls = Vec::new();
    for b in content {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text
                .get_or_insert_with(String::new)
                .push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => calls.push(ToolCall {
                id: b
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                name: b
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                arguments: serde_json::to_string(b.get("input").unwrap_or(&json!({})))
                    .unwrap_or_default(),
            }),
            _ => {}
        }
    }
    let mut usage = AnthropicUsage::default();
    if let Some(u) = v.get("usage") {
        usage.update(u);
    }
    let id = v.get("id").and_then(Value::as_str).unwrap_or(&meta.id);
    let model = v
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(&meta.model);
    Ok(openai::completion(
        id,
        model,
        meta.created,
        text,
        &calls,
        finish_reason(v.get("stop_reason").and_then(Value::as_str)),
        Some(usage.to_openai()),
    ))
}

/// Anthropic SSE → OpenAI SSE.
#[derive(Debug)]
pub struct AnthropicStreamTranslator {
    sse: SseDecoder,
    w: ChunkWriter,
    /// Content block index → OpenAI tool-call index, for `tool_use` blocks.
    tool_blocks: Vec<(u64, usize)>,
    usage: AnthropicUsage,
    stop_reason: Option<String>,
}

impl AnthropicStreamTranslator {
    pub fn new(meta: ResponseMeta, include_usage: bool) -> Self {
        AnthropicStreamTranslator {
            sse: SseDecoder::new(),
            w: ChunkWriter::new(meta, include_usage),
            tool_blocks: Vec::new(),
            usage: AnthropicUsage::default(),
            stop_reason: None,
        }
    }

    fn event(&mut self, e: SseEvent<'_>, out: &mut Vec<u8>) {
        let Some(v) = self.w.read_event(e.data, out) else {
            return;
        };
        let ty = v.get("type").and_then(Value::as_str).unwrap_or(e.event);
        match ty {
            "message_start" => {
                let m = &v["message"];
                if !self.w.role_sent() {
                    if let Some(id) = m.get("id").and_then(Value::as_str) {
                        self.w.id = id.to_string();
                    }
                    if let Some(model) = m.get("model").and_then(Value::as_str) {
                        self.w.model = model.to_string();
                    }
                }
                if let Some(u) = m.get("usage") {
                    self.usage.update(u);
                }
                self.w.role(out);
            }
            "content_block_start" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let b = &v["content_block"];
                match b.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let tool_index = self.tool_blocks.len();
                        self.tool_blocks.push((index, tool_index));
                        let id = b.get("id").and_then(Value::as_str).unwrap_or("");
                        let name = b.get("name").and_then(Value::as_str).unwrap_or("");
                        self.w.tool_start(tool_index, id, name, "", out);
                    }
                    Some("text") => {
                        if let Some(t) = b.get("text").and_then(Value::as_str) {
                            self.w.content(t, out);
                        }
                    }
                    _ => {}
                }
            }
            "content_block_delta" => {
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let d = &v["delta"];
                match d.get("type").and_then(Value::as_str) {
                    Some("text_delta") => self
                        .w
                        .content(d.get("text").and_then(Value::as_str).unwrap_or(""), out),
                    Some("input_json_delta") => {
                        if let Some(&(_, t)) = self.tool_blocks.iter().find(|(b, _)| *b == index) {
                            let frag = d.get("partial_json").and_then(Value::as_str).unwrap_or("");
                            self.w.tool_args(t, frag, out);
                        }
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(u) = v.get("usage") {
                    self.usage.update(u);
                }
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(r.to_string());
                    self.w.finish(finish_reason(Some(r)), out);
                }
            }
            "message_stop" => {
                self.w
                    .finish(finish_reason(self.stop_reason.as_deref()), out);
                self.w.end(Some(self.usage.to_openai()), out);
            }
            "error" => {
                let msg = v
                    .pointer("/error/message")
                    .and_then(Value::as_str)
                    .unwrap_or("upstream error");
                let kind = v
                    .pointer("/error/type")
                    .and_then(Value::as_str)
                    .unwrap_or("api_error");
                self.w.error(msg, kind, out);
            }
            _ => {} // ping, content_block_stop, and event types added later
        }
    }
}

impl StreamTranslator for AnthropicStreamTranslator {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let mut sse = std::mem::take(&mut self.sse);
        sse.feed(bytes, &mut |e| self.event(e, out));
        self.sse = sse;
        if self.sse.too_large() {
            self.w.error("upstream event too large", "api_error", out);
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        let mut sse = std::mem::take(&mut self.sse);
        sse.finish(&mut |e| self.event(e, out));
        self.sse = sse;
    }
}
