//! OpenAI chat completions ⇄ Bedrock `Converse` / `ConverseStream`.
//!
//! # Request
//! - Path `/model/{modelId}/converse` or `/converse-stream`, the model id percent-encoded
//!   as botocore does (`quote(id, safe='-._~')`: `:` → `%3A`, `/` → `%2F`; providers.md
//!   §4). SigV4 signing is the caller's (it encodes this path once more).
//! - Leading `system`/`developer` messages → `system: [{text}]`.
//! - `user` → `text` and `image {format, source: {bytes}}` blocks (data URLs; `bytes` is
//!   the base64 text, as the JSON protocol carries blobs); http(s) image URLs are refused
//!   (Converse takes bytes or S3 locations only).
//! - `assistant` → `text` and `toolUse {toolUseId, name, input}`; `tool` messages →
//!   `toolResult {toolUseId, content: [{text}]}` in a user turn.
//! - `tools` → `toolConfig.tools[].toolSpec {name, description, inputSchema: {json},
//!   strict}`; `tool_choice` auto / required / a function → `toolChoice` `auto` / `any`
//!   / `tool`; `none` and `parallel_tool_calls: false` are refused (Converse has neither).
//! - `inferenceConfig`: `maxTokens`, `temperature`, `topP`, `stopSequences`.
//! - `response_format` `json_schema` → `outputConfig.textFormat {type: json_schema,
//!   structure: {jsonSchema: {schema: <schema as a JSON string>, name, description}}}`;
//!   `json_object` is refused (no schema-less JSON mode).
//! - Refused: `seed`, non-zero penalties. `user` is ignored (no equivalent).
//!
//! # Answer
//! `output.message.content`: `text` → `content`, `toolUse` → `tool_calls`;
//! `reasoningContent` is not shown. `stopReason`: `end_turn`, `stop_sequence` → `stop`;
//! `max_tokens`, `model_context_window_exceeded` → `length`; `tool_use` → `tool_calls`;
//! `guardrail_intervened`, `content_filtered` → `content_filter`; others → `stop`.
//! Usage: `prompt_tokens = inputTokens + cacheReadInputTokens + cacheWriteInputTokens`.
//!
//! # Stream
//! The body is AWS event-stream frames. [`BedrockStreamTranslator::feed`] decodes them
//! with the gateway's event-stream decoder ([`aigw_metering::usage::event_stream`], the one
//! metering uses); a caller with its own decoder calls
//! [`BedrockStreamTranslator::feed_event`] with each frame's `:message-type`, its
//! `:event-type` (or `:exception-type`) and payload instead. Events: `messageStart` →
//! role, `contentBlockStart.start.toolUse` → tool-call start, `contentBlockDelta` `text`
//! / `toolUse.input` → deltas, `messageStop` → finish reason, `metadata` → usage chunk
//! and `[DONE]`. An `exception` frame becomes an OpenAI error event.

use crate::openai::{
    self, ChatRequest, ChunkWriter, FinishReason, Image, Message, ResponseFormat, ResponseMeta,
    ToolCall, ToolChoice, Usage, UserPart,
};
use crate::{push_turn, split_system, StreamTranslator, TranslateError, TranslatedRequest};
use aigw_metering::usage::event_stream::Decoder as FrameDecoder;
use serde_json::{json, Map, Value};

/// botocore's `quote(value, safe='-._~')`.
pub fn encode_model_id(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn image_format(media_type: &str) -> Option<&'static str> {
    match media_type {
        "image/png" => Some("png"),
        "image/jpeg" | "image/jpg" => Some("jpeg"),
        "image/gif" => Some("gif"),
        "image/webp" => Some("webp"),
        _ => None,
    }
}

pub fn translate_request(
    req: &ChatRequest,
    model: &str,
) -> Result<TranslatedRequest, TranslateError> {
    if model.is_empty() {
        return Err(TranslateError::invalid("model", "empty Bedrock model id"));
    }
    req.refuse_seed_and_penalties("Bedrock Converse")?;
    let mut body = Map::new();
    let (system, conversation) = split_system(req)?;
    if !system.is_empty() {
        body.insert(
            "system".into(),
            Value::Array(system.iter().map(|t| json!({"text": t})).collect()),
        );
    }
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for m in conversation {
        match m {
            Message::User { parts, .. } => {
                let mut out = Vec::with_capacity(parts.len());
                for p in parts {
                    out.push(match p {
                        UserPart::Text(t) => json!({"text": t}),
                        UserPart::Image { image: Image::Base64 { media_type, data }, path } => {
                            let format = image_format(media_type).ok_or_else(|| {
                                TranslateError::unsupported(
                                    path,
                                    format!("Bedrock accepts png, jpeg, gif and webp images, not {media_type}"),
                                )
                            })?;
                            json!({"image": {"format": format, "source": {"bytes": data}}})
                        }
                        UserPart::Image { image: Image::Url(_), path } => {
                            return Err(TranslateError::unsupported(
                                path,
                                "Bedrock cannot fetch image URLs; send a base64 data URL",
                            ))
                        }
                    });
                }
                push_turn(&mut turns, "user", out);
            }
            Message::Assistant {
                text,
                tool_calls,
                index,
            } => {
                let mut out = Vec::new();
                for t in text.iter().filter(|t| !t.is_empty()) {
                    out.push(json!({"text": t}));
                }
                for (k, c) in tool_calls.iter().enumerate() {
                    let path = format!("messages[{index}].tool_calls[{k}].function.arguments");
                    let input = c.arguments_value(&path)?;
                    out.push(
                        json!({"toolUse": {"toolUseId": c.id, "name": c.name, "input": input}}),
                    );
                }
                push_turn(&mut turns, "assistant", out);
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
                        json!({"toolResult": {"toolUseId": tool_call_id, "content": [{"text": content}]}}),
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

    let mut inference = Map::new();
    if let Some(n) = req.max_tokens {
        inference.insert("maxTokens".into(), json!(n));
    }
    if let Some(t) = req.temperature {
        inference.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        inference.insert("topP".into(), json!(p));
    }
    if !req.stop.is_empty() {
        inference.insert("stopSequences".into(), json!(req.stop));
    }
    if !inference.is_empty() {
        body.insert("inferenceConfig".into(), Value::Object(inference));
    }

    if req.parallel_tool_calls == Some(false) {
        return Err(TranslateError::unsupported(
            "parallel_tool_calls",
            "Bedrock Converse cannot be limited to one tool call per turn",
        ));
    }
    if !req.tools.is_empty() {
        let tools: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut spec = Map::new();
                spec.insert("name".into(), json!(t.name));
                if let Some(d) = &t.description {
                    spec.insert("description".into(), json!(d));
                }
                spec.insert(
                    "inputSchema".into(),
                    json!({"json": t.parameters.clone().unwrap_or_else(|| json!({"type": "object", "properties": {}}))}),
                );
                if let Some(s) = t.strict {
                    spec.insert("strict".into(), json!(s));
                }
                json!({"toolSpec": spec})
            })
            .collect();
        let mut cfg = json!({"tools": tools});
        match &req.tool_choice {
            None => {}
            Some(ToolChoice::Auto) => cfg["toolChoice"] = json!({"auto": {}}),
            Some(ToolChoice::Required) => cfg["toolChoice"] = json!({"any": {}}),
            Some(ToolChoice::Function(name)) => cfg["toolChoice"] = json!({"tool": {"name": name}}),
            Some(ToolChoice::None) => {
                return Err(TranslateError::unsupported(
                    "tool_choice",
                    "Bedrock Converse has no tool_choice none; omit the tools instead",
                ))
            }
        }
        body.insert("toolConfig".into(), cfg);
    } else if req.tool_choice.is_some() {
        return Err(TranslateError::invalid(
            "tool_choice",
            "tool_choice needs tools",
        ));
    }

    match &req.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            return Err(TranslateError::unsupported(
                "response_format.type",
                "Bedrock Converse has no schema-less JSON mode; send a json_schema",
            ))
        }
        Some(ResponseFormat::JsonSchema {
            name,
            description,
            schema,
            ..
        }) => {
            let mut js = Map::new();
            js.insert(
                "schema".into(),
                json!(serde_json::to_string(schema).unwrap_or_default()),
            );
            js.insert("name".into(), json!(name));
            if let Some(d) = description {
                js.insert("description".into(), json!(d));
            }
            body.insert(
                "outputConfig".into(),
                json!({"textFormat": {"type": "json_schema", "structure": {"jsonSchema": js}}}),
            );
        }
    }

    let op = if req.stream {
        "converse-stream"
    } else {
        "converse"
    };
    Ok(TranslatedRequest {
        path: format!("/model/{}/{op}", encode_model_id(model)),
        body: serde_json::to_vec(&Value::Object(body)).unwrap_or_default(),
        headers: vec![("content-type", "application/json".into())],
        stream: req.stream,
        include_usage: req.include_usage,
    })
}

pub fn finish_reason(stop_reason: Option<&str>) -> FinishReason {
    match stop_reason {
        Some("max_tokens") | Some("model_context_window_exceeded") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("guardrail_intervened") | Some("content_filtered") => FinishReason::ContentFilter,
        _ => FinishReason::Stop,
    }
}

/// `TokenUsage` → OpenAI usage: cache reads and writes are additional to `inputTokens`.
pub fn usage(u: &Value) -> Usage {
    let get = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let read = get("cacheReadInputTokens");
    let write = get("cacheWriteInputTokens");
    Usage {
        prompt_tokens: get("inputTokens")
            .saturating_add(read)
            .saturating_add(write),
        completion_tokens: get("outputTokens"),
        cached_tokens: read,
        cache_write_tokens: write,
        reasoning_tokens: 0,
    }
}

pub fn translate_response(body: &[u8], meta: &ResponseMeta) -> Result<Value, TranslateError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        TranslateError::invalid("response", format!("Bedrock answer: not JSON: {e}"))
    })?;
    let content = v
        .pointer("/output/message/content")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            TranslateError::invalid("response.output.message.content", "Bedrock answer: missing")
        })?;
    let mut text: Option<String> = None;
    let mut calls = Vec::new();
    for b in content {
        if let Some(t) = b.get("text").and_then(Value::as_str) {
            text.get_or_insert_with(String::new).push_str(t);
        } else if let Some(t) = b.get("toolUse") {
            calls.push(ToolCall {
                id: t
                    .get("toolUseId")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                name: t
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                arguments: serde_json::to_string(t.get("input").unwrap_or(&json!({})))
                    .unwrap_or_default(),
            });
        }
    }
    Ok(openai::completion(
        &meta.id,
        &meta.model,
        meta.created,
        text,
        &calls,
        finish_reason(v.get("stopReason").and_then(Value::as_str)),
        v.get("usage").map(usage),
    ))
}

/// Bedrock ConverseStream (event-stream frames) → OpenAI SSE.
#[derive(Debug)]
pub struct BedrockStreamTranslator {
    frames: FrameDecoder,
    w: ChunkWriter,
    /// contentBlockIndex → OpenAI tool-call index.
    tool_blocks: Vec<(u64, usize)>,
    usage: Option<Usage>,
}

impl BedrockStreamTranslator {
    pub fn new(meta: ResponseMeta, include_usage: bool) -> Self {
        BedrockStreamTranslator {
            frames: FrameDecoder::new(),
            w: ChunkWriter::new(meta, include_usage),
            tool_blocks: Vec::new(),
            usage: None,
        }
    }

    /// One decoded frame: `message_type` is its `:message-type` (`event`, `exception`,
    /// `error`), `event_type` its `:event-type`, or `:exception-type` / `:error-code` for
    /// the others.
    pub fn feed_event(
        &mut self,
        message_type: &str,
        event_type: &str,
        payload: &[u8],
        out: &mut Vec<u8>,
    ) {
        if self.w.done() {
            return;
        }
        let v: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
        if message_type != "event" {
            let msg = v
                .get("message")
                .or_else(|| v.get("Message"))
                .and_then(Value::as_str)
                .unwrap_or("upstream stream error");
            self.w.error(msg, event_type, out);
            return;
        }
        match event_type {
            "messageStart" => self.w.role(out),
            "contentBlockStart" => {
                if let Some(t) = v.pointer("/start/toolUse") {
                    let index = v
                        .get("contentBlockIndex")
                        .and_then(Value::as_u64)
                        .unwrap_or(0);
                    let tool_index = self.tool_blocks.len();
                    self.tool_blocks.push((index, tool_index));
                    let id = t.get("toolUseId").and_then(Value::as_str).unwrap_or("");
                    let name = t.get("name").and_then(Value::as_str).unwrap_or("");
                    self.w.tool_start(tool_index, id, name, "", out);
                }
            }
            "contentBlockDelta" => {
                let index = v
                    .get("contentBlockIndex")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                let d = &v["delta"];
                if let Some(t) = d.get("text").and_then(Value::as_str) {
                    self.w.content(t, out);
                } else if let Some(frag) = d.pointer("/toolUse/input").and_then(Value::as_str) {
                    if let Some(&(_, t)) = self.tool_blocks.iter().find(|(b, _)| *b == index) {
                        self.w.tool_args(t, frag, out);
                    }
                }
            }
            "messageStop" => {
                self.w.finish(
                    finish_reason(v.get("stopReason").and_then(Value::as_str)),
                    out,
                );
            }
            "metadata" => {
                if let Some(u) = v.get("usage") {
                    self.usage = Some(usage(u));
                }
                if self.w.finished() {
                    let u = self.usage;
                    self.w.end(u, out);
                }
            }
            _ => {} // contentBlockStop and event types added later
        }
    }
}

impl StreamTranslator for BedrockStreamTranslator {
    fn feed(&mut self, bytes: &[u8], out: &mut Vec<u8>) {
        let mut frames = std::mem::take(&mut self.frames);
        let r = frames.feed(bytes, |f| {
            let mt = f.header_str(":message-type").unwrap_or("event").to_string();
            let et = match mt.as_str() {
                "event" => f.header_str(":event-type"),
                "exception" => f.header_str(":exception-type"),
                _ => f.header_str(":error-code"),
            }
            .unwrap_or("")
            .to_string();
            let payload = if mt == "error" && f.payload.is_empty() {
                let m = f
                    .header_str(":error-message")
                    .unwrap_or("upstream stream error");
                serde_json::to_vec(&json!({ "message": m })).unwrap_or_default()
            } else {
                f.payload
            };
            self.feed_event(&mt, &et, &payload, out);
        });
        self.frames = frames;
        if let Err(e) = r {
            self.w.error(
                &format!("upstream stream unreadable: {e}"),
                "api_error",
                out,
            );
        }
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        // A partial frame means the stream was cut: nothing more is written.
        if self.frames.finish().is_ok() && self.w.finished() {
            let u = self.usage;
            self.w.end(u, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_ids_encode_as_botocore() {
        assert_eq!(
            encode_model_id("anthropic.claude-3-5-sonnet-20240620-v1:0"),
            "anthropic.claude-3-5-sonnet-20240620-v1%3A0"
        );
        assert_eq!(
            encode_model_id("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0"),
            "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-sonnet-4-20250514-v1%3A0"
        );
    }

    /// A caller with its own frame decoder hands decoded events in.
    #[test]
    fn feed_event_without_framing() {
        let meta = ResponseMeta {
            id: "chatcmpl-1".into(),
            model: "m".into(),
            created: 1,
        };
        let mut t = BedrockStreamTranslator::new(meta, false);
        let mut out = Vec::new();
        t.feed_event(
            "event",
            "messageStart",
            br#"{"role":"assistant"}"#,
            &mut out,
        );
        t.feed_event(
            "event",
            "contentBlockDelta",
            br#"{"contentBlockIndex":0,"delta":{"text":"hi"}}"#,
            &mut out,
        );
        t.feed_event(
            "event",
            "messageStop",
            br#"{"stopReason":"end_turn"}"#,
            &mut out,
        );
        t.feed_event(
            "event",
            "metadata",
            br#"{"usage":{"inputTokens":1,"outputTokens":1,"totalTokens":2}}"#,
            &mut out,
        );
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s.matches("data: ").count(), 4);
        assert!(s.ends_with("data: [DONE]\n\n"));
    }
}
