//! OpenAI chat completions ⇄ Gemini `generateContent` / `streamGenerateContent?alt=sse`.
//!
//! # Request
//! - Path `/{v1beta|v1}/models/{model}:generateContent`, or
//!   `:streamGenerateContent?alt=sse` when streaming ([`GeminiOptions::api_version`];
//!   v1beta by default, as the docs still show; google-genai ≥ 3 calls v1).
//! - Leading `system`/`developer` messages → `systemInstruction.parts`.
//! - `user` → role `user` with `text` and `inlineData` parts (data URLs); http(s) image
//!   URLs are refused (Gemini fetches only its own Files API and GCS URIs).
//! - `assistant` → role `model` with `text` and `functionCall {name, args}` parts;
//!   `tool` messages → `functionResponse {name, response: {output}}` parts in a user turn
//!   (the name is looked up from the assistant tool call with that id; `output` is the
//!   content parsed as JSON when it is JSON, else the text).
//! - Gemini 3 returns a `thoughtSignature` with function calls and wants it back with
//!   them. The answer carries it inside the tool-call id (`<id>` + [`SIGNATURE_SEP`] +
//!   signature), and a request's tool-call id in that form gives the part its
//!   `thoughtSignature` back, so an OpenAI client round-trips it without knowing.
//! - `tools` → one `functionDeclarations` tool, `parameters` sent as
//!   `parametersJsonSchema` (JSON Schema as is); `strict` is ignored (no such flag).
//!   `tool_choice` none / auto / required / a function → `functionCallingConfig.mode`
//!   `NONE` / `AUTO` / `ANY` / `ANY` with `allowedFunctionNames`. `parallel_tool_calls:
//!   false` is refused (no equivalent).
//! - `generationConfig`: `maxOutputTokens`, `temperature`, `topP`, `stopSequences`,
//!   `seed`, `frequencyPenalty`, `presencePenalty`; `response_format` `json_object` →
//!   `responseMimeType: application/json`, `json_schema` → that plus `responseJsonSchema`.
//! - `user` is ignored (no equivalent; OpenAI uses it only for abuse monitoring).
//!
//! # Answer
//! The first candidate's `text` parts (not `thought` parts) → `content`, `functionCall`
//! parts → `tool_calls` with ids `call_<n>` (Gemini's own `functionCall.id` when it
//! sends one). `finishReason`: `STOP` → `stop` (`tool_calls` when the candidate called
//! functions), `MAX_TOKENS` → `length`, `SAFETY`, `RECITATION`, `BLOCKLIST`,
//! `PROHIBITED_CONTENT`, `SPII`, `IMAGE_SAFETY`, `IMAGE_PROHIBITED_CONTENT`,
//! `IMAGE_RECITATION` → `content_filter`, others → `stop`. A prompt blocked by
//! `promptFeedback.blockReason` (no candidates) → empty `content_filter` answer.
//!
//! # Stream
//! Each `data:` event is a whole `GenerateContentResponse`; text parts become content
//! deltas, each `functionCall` one tool-call delta with all its arguments (Gemini does
//! not split them). `usageMetadata` is cumulative and the last one wins; it may come on a
//! chunk without text after the `finishReason`, and the stream has no end event, so the
//! usage chunk and `[DONE]` are written at the end of the body.

use crate::openai::{
    self, tool_call_name, ChatRequest, ChunkWriter, FinishReason, Image, Message, ResponseFormat,
    ResponseMeta, ToolCall, ToolChoice, Usage, UserPart,
};
use crate::sse::{SseDecoder, SseEvent};
use crate::{push_turn, split_system, StreamTranslator, TranslateError, TranslatedRequest};
use serde_json::{json, Map, Value};

/// Separates a tool-call id from the Gemini thought signature carried in it.
pub const SIGNATURE_SEP: &str = "~ts~";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GeminiApiVersion {
    #[default]
    V1beta,
    V1,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GeminiOptions {
    pub api_version: GeminiApiVersion,
}

fn model_path(model: &str) -> Result<&str, TranslateError> {
    let m = model.strip_prefix("models/").unwrap_or(model);
    if m.is_empty()
        || !m
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
    {
        return Err(TranslateError::invalid(
            "model",
            format!("`{model}` is not a Gemini model name"),
        ));
    }
    Ok(m)
}

pub fn translate_request(
    req: &ChatRequest,
    model: &str,
    opts: &GeminiOptions,
) -> Result<TranslatedRequest, TranslateError> {
    let model = model_path(model)?;
    let mut body = Map::new();
    let (system, conversation) = split_system(req)?;
    if !system.is_empty() {
        body.insert(
            "systemInstruction".into(),
            json!({"parts": system.iter().map(|t| json!({"text": t})).collect::<Vec<_>>()}),
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
                        UserPart::Image {
                            image: Image::Base64 { media_type, data },
                            ..
                        } => {
                            json!({"inlineData": {"mimeType": media_type, "data": data}})
                        }
                        UserPart::Image {
                            image: Image::Url(_),
                            path,
                        } => {
                            return Err(TranslateError::unsupported(
                                path,
                                "Gemini cannot fetch image URLs; send a base64 data URL",
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
                    let args = c.arguments_value(&path)?;
                    if !args.is_object() {
                        return Err(TranslateError::invalid(
                            path,
                            "arguments must be a JSON object",
                        ));
                    }
                    let mut part = json!({"functionCall": {"name": c.name, "args": args}});
                    if let Some((_, sig)) = c.id.rsplit_once(SIGNATURE_SEP) {
                        part["thoughtSignature"] = json!(sig);
                    }
                    out.push(part);
                }
                push_turn(&mut turns, "model", out);
            }
            Message::Tool {
                tool_call_id,
                content,
                index,
            } => {
                let name = tool_call_name(&req.messages, *index, tool_call_id).ok_or_else(|| {
                    TranslateError::invalid(
                        format!("messages[{index}].tool_call_id"),
                        format!("no earlier assistant tool call has id `{tool_call_id}` (Gemini needs the function name)"),
                    )
                })?;
                let output = serde_json::from_str::<Value>(content)
                    .unwrap_or_else(|_| Value::String(content.clone()));
                push_turn(
                    &mut turns,
                    "user",
                    vec![
                        json!({"functionResponse": {"name": name, "response": {"output": output}}}),
                    ],
                );
            }
            Message::System { .. } => unreachable!("split_system leaves none"),
        }
    }
    body.insert(
        "contents".into(),
        Value::Array(
            turns
                .into_iter()
                .map(|(role, parts)| json!({"role": role, "parts": parts}))
                .collect(),
        ),
    );

    if !req.tools.is_empty() {
        let decls: Vec<Value> = req
            .tools
            .iter()
            .map(|t| {
                let mut o = Map::new();
                o.insert("name".into(), json!(t.name));
                if let Some(d) = &t.description {
                    o.insert("description".into(), json!(d));
                }
                if let Some(p) = &t.parameters {
                    o.insert("parametersJsonSchema".into(), p.clone());
                }
                Value::Object(o)
            })
            .collect();
        body.insert("tools".into(), json!([{"functionDeclarations": decls}]));
    } else if req.tool_choice.is_some() {
        return Err(TranslateError::invalid(
            "tool_choice",
            "tool_choice needs tools",
        ));
    }
    if req.parallel_tool_calls == Some(false) {
        return Err(TranslateError::unsupported(
            "parallel_tool_calls",
            "Gemini cannot be limited to one function call per turn",
        ));
    }
    if let (Some(choice), false) = (&req.tool_choice, req.tools.is_empty()) {
        let cfg = match choice {
            ToolChoice::None => json!({"mode": "NONE"}),
            ToolChoice::Auto => json!({"mode": "AUTO"}),
            ToolChoice::Required => json!({"mode": "ANY"}),
            ToolChoice::Function(name) => json!({"mode": "ANY", "allowedFunctionNames": [name]}),
        };
        body.insert("toolConfig".into(), json!({"functionCallingConfig": cfg}));
    }

    let mut gen = Map::new();
    if let Some(n) = req.max_tokens {
        gen.insert("maxOutputTokens".into(), json!(n));
    }
    if let Some(t) = req.temperature {
        gen.insert("temperature".into(), json!(t));
    }
    if let Some(p) = req.top_p {
        gen.insert("topP".into(), json!(p));
    }
    if !req.stop.is_empty() {
        gen.insert("stopSequences".into(), json!(req.stop));
    }
    if let Some(s) = req.seed {
        gen.insert("seed".into(), json!(s));
    }
    if let Some(p) = req.frequency_penalty {
        gen.insert("frequencyPenalty".into(), json!(p));
    }
    if let Some(p) = req.presence_penalty {
        gen.insert("presencePenalty".into(), json!(p));
    }
    match &req.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => {
            gen.insert("responseMimeType".into(), json!("application/json"));
        }
        Some(ResponseFormat::JsonSchema { schema, .. }) => {
            gen.insert("responseMimeType".into(), json!("application/json"));
            gen.insert("responseJsonSchema".into(), schema.clone());
        }
    }
    if !gen.is_empty() {
        body.insert("generationConfig".into(), Value::Object(gen));
    }

    let version = match opts.api_version {
        GeminiApiVersion::V1beta => "v1beta",
        GeminiApiVersion::V1 => "v1",
    };
    let path = if req.stream {
        format!("/{version}/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("/{version}/models/{model}:generateContent")
    };
    Ok(TranslatedRequest {
        path,
        body: serde_json::to_vec(&Value::Object(body)).unwrap_or_default(),
        headers: vec![("content-type", "application/json".into())],
        stream: req.stream,
        include_usage: req.include_usage,
    })
}

pub fn finish_reason(reason: &str, called_functions: bool) -> FinishReason {
    match reason {
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => FinishReason::ContentFilter,
        _ if called_functions => FinishReason::ToolCalls,
        _ => FinishReason::Stop,
    }
}

/// `usageMetadata` → OpenAI usage: cached ⊂ prompt; thoughts additional to candidates;
/// tool-use prompt additional to the prompt.
pub fn usage(u: &Value) -> Usage {
    let get = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let thoughts = get("thoughtsTokenCount");
    Usage {
        prompt_tokens: get("promptTokenCount").saturating_add(get("toolUsePromptTokenCount")),
        completion_tokens: get("candidatesTokenCount").saturating_add(thoughts),
        cached_tokens: get("cachedContentTokenCount"),
        cache_write_tokens: 0,
        reasoning_tokens: thoughts,
    }
}

/// The tool-call id for a `functionCall` part: Gemini's id or `call_<n>`, plus the
/// thought signature when the part has one.
fn call_id(part: &Value, n: usize) -> String {
    let base = part
        .pointer("/functionCall/id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("call_{n}"));
    match part.get("thoughtSignature").and_then(Value::as_str) {
        Some(sig) => format!("{base}{SIGNATURE_SEP}{sig}"),
        None => base,
    }
}

fn function_call(part: &Value, n: usize) -> Option<ToolCall> {
    let f = part.get("functionCall")?;
    Some(ToolCall {
        id: call_id(part, n),
        name: f
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        arguments: serde_json::to_string(f.get("args").unwrap_or(&json!({}))).unwrap_or_default(),
    })
}

fn is_thought(part: &Value) -> bool {
    part.get("thought").and_then(Value::as_bool) == Some(true)
}

pub fn translate_response(body: &[u8], meta: &ResponseMeta) -> Result<Value, TranslateError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        TranslateError::invalid("response", format!("Gemini answer: not JSON: {e}"))
    })?;
    let id = v
        .get("responseId")
        .and_then(Value::as_str)
        .unwrap_or(&meta.id);
    let model = v
        .get("modelVersion")
        .and_then(Value::as_str)
        .unwrap_or(&meta.model);
    let u = v.get("usageMetadata").map(usage);
    let Some(cand) = v.pointer("/candidates/0") else {
        // No candidate: the prompt was blocked (promptFeedback.blockReason).
        return Ok(openai::completion(
            id,
            model,
            meta.created,
            None,
            &[],
            FinishReason::ContentFilter,
            u,
        ));
    };
    let mut text: Option<String> = None;
    let mut calls = Vec::new();
    if let Some(parts) = cand.pointer("/content/parts").and_then(Value::as_array) {
        for p in parts {
            if let Some(c) = function_call(p, calls.len()) {
                calls.push(c);
            } else if let Some(t) = p.get("text").and_then(Value::as_str) {
                if !is_thought(p) {
                    text.get_or_insert_with(String::new).push_str(t);
                }
            }
        }
    }
    let reason = cand
        .get("finishReason")
        .and_then(Value::as_str)
        .unwrap_or("STOP");
    Ok(openai::completion(
        id,
        model,
        meta.created,
        text,
        &calls,
        finish_reason(reason, !calls.is_empty()),
        u,
    ))
}

/// Gemini SSE → OpenAI SSE.
#[derive(Debug)]
pub struct GeminiStreamTranslator {
    sse: SseDecoder,
    w: ChunkWriter,
    tool_calls: usize,
    usage: Option<Usage>,
}

impl GeminiStreamTranslator {
    pub fn new(meta: ResponseMeta, include_usage: bool) -> Self {
        GeminiStreamTranslator {
            sse: SseDecoder::new(),
            w: ChunkWriter::new(meta, include_usage),
            tool_calls: 0,
            usage: None,
        }
    }

    fn event(&mut self, e: SseEvent<'_>, out: &mut Vec<u8>) {
        let Some(v) = self.w.read_event(e.data, out) else {
            return;
        };
        if let Some(err) = v.get("error") {
            let msg = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("upstream error");
            let kind = err
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("api_error");
            self.w.error(msg, kind, out);
            return;
        }
        if !self.w.role_sent() {
            if let Some(id) = v.get("responseId").and_then(Value::as_str) {
                self.w.id = id.to_string();
            }
            if let Some(m) = v.get("modelVersion").and_then(Value::as_str) {
                self.w.model = m.to_string();
            }
        }
        self.w.role(out);
        if let Some(u) = v.get("usageMetadata") {
            self.usage = Some(usage(u));
        }
        let Some(cand) = v.pointer("/candidates/0") else {
            if v.pointer("/promptFeedback/blockReason").is_some() {
                self.w.finish(FinishReason::ContentFilter, out);
            }
            return;
        };
        if let Some(parts) = cand.pointer("/content/parts").and_then(Value::as_array) {
            for p in parts {
                if let Some(c) = function_call(p, self.tool_calls) {
                    self.w
                        .tool_start(self.tool_calls, &c.id, &c.name, &c.arguments, out);
                    self.tool_calls += 1;
                } else if let Some(t) = p.get("text").and_then(Value::as_str) {
                    if !is_thought(p) {
                        self.w.content(t, out);
                    }
                }
            }
        }
        if let Some(r) = cand.get("finishReason").and_then(Value::as_str) {
            self.w.finish(finish_reason(r, self.tool_calls > 0), out);
        }
    }
}

impl StreamTranslator for GeminiStreamTranslator {
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
        if self.w.finished() {
            let u = self.usage;
            self.w.end(u, out);
        }
    }
}
