//! The OpenAI side: chat-completions requests read into [`ChatRequest`], and the
//! `chat.completion` / `chat.completion.chunk` answers written from what a target returned.
//!
//! # Which request fields are read
//! Every top-level field is either mapped, accepted at a harmless value, ignored by the
//! allowlist below, or refused with [`TranslateError::Unsupported`] naming it; unknown
//! fields are refused too. Targets refuse further fields they cannot do (see each
//! module).
//!
//! Mapped (subject to the target): `model` (replaced by the caller's native model id),
//! `messages`, `max_completion_tokens` / `max_tokens`, `temperature`, `top_p`, `stop`,
//! `stream`, `stream_options.include_usage`, `tools`, `tool_choice`,
//! `parallel_tool_calls`, `response_format`, `n` (only 1), `seed`, `frequency_penalty`,
//! `presence_penalty`, `user`.
//!
//! Accepted only at their default (anything else is Unsupported): `logprobs: false`,
//! `store: false`, `logit_bias: {}`, `modalities: ["text"]`, `service_tier: "auto" |
//! "default"`, `top_logprobs: 0`.
//!
//! Ignored, because they change nothing in the answer ([`IGNORED_FIELDS`]): `metadata`
//! (OpenAI stores it with stored completions only, and `store: true` is refused),
//! `prompt_cache_key` (a routing hint for OpenAI's cache), `safety_identifier` (an abuse
//! monitoring id), `stream_options.include_obfuscation`. Inside messages: `name` (no target
//! has participant names), `image_url.detail` (a resolution hint), an assistant
//! `refusal: null`, and a tool definition's `strict` on Gemini (no such flag there).
//!
//! Refused: `functions` / `function_call` (the deprecated form; use `tools`),
//! `audio`, `prediction`, `web_search_options`, `reasoning_effort`, `verbosity`, the
//! `function` role, audio and file content parts, non-function tools.

use crate::error::TranslateError;
use serde_json::{json, Map, Value};

/// Top-level request fields that are accepted and ignored (see the module doc).
pub const IGNORED_FIELDS: &[&str] = &["metadata", "prompt_cache_key", "safety_identifier"];

/// A chat-completions request, checked and normalised.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    /// `max_completion_tokens`, else `max_tokens`.
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    /// `stop` as a list (a single string becomes one entry).
    pub stop: Vec<String>,
    pub response_format: Option<ResponseFormat>,
    pub stream: bool,
    /// `stream_options.include_usage`: the client wants the final usage chunk.
    pub include_usage: bool,
    pub seed: Option<i64>,
    /// Only non-zero penalties are kept (zero is the default and maps to nothing).
    pub frequency_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub user: Option<String>,
}

/// One message; `index` is its position in `messages`, for error paths.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// `system` or `developer`: text only.
    System {
        index: usize,
        text: Vec<String>,
    },
    User {
        index: usize,
        parts: Vec<UserPart>,
    },
    Assistant {
        index: usize,
        text: Vec<String>,
        tool_calls: Vec<ToolCall>,
    },
    Tool {
        index: usize,
        tool_call_id: String,
        content: String,
    },
}

impl Message {
    pub fn index(&self) -> usize {
        match self {
            Message::System { index, .. }
            | Message::User { index, .. }
            | Message::Assistant { index, .. }
            | Message::Tool { index, .. } => *index,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum UserPart {
    Text(String),
    /// `path` is the JSON path of the part's `image_url.url`, for errors.
    Image {
        image: Image,
        path: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Image {
    /// From a `data:<media type>;base64,<data>` URL; `data` stays base64.
    Base64 { media_type: String, data: String },
    /// An `http(s)` URL the target would have to fetch.
    Url(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as the client sent them: a JSON text.
    pub arguments: String,
}

impl ToolCall {
    /// The arguments parsed; an empty string is `{}`. `path` names the field for errors.
    pub fn arguments_value(&self, path: &str) -> Result<Value, TranslateError> {
        if self.arguments.trim().is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_str(&self.arguments)
            .map_err(|e| TranslateError::invalid(path, format!("arguments are not JSON: {e}")))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// JSON Schema of the arguments; `None` when the client sent none.
    pub parameters: Option<Value>,
    pub strict: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    None,
    Auto,
    Required,
    Function(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    Text,
    JsonObject,
    JsonSchema {
        name: String,
        description: Option<String>,
        schema: Value,
        strict: Option<bool>,
    },
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn expect(v: &Value, path: &str, want: &str) -> TranslateError {
    TranslateError::invalid(path, format!("expected {want}, got {}", type_name(v)))
}

fn as_str<'a>(v: &'a Value, path: &str) -> Result<&'a str, TranslateError> {
    v.as_str().ok_or_else(|| expect(v, path, "a string"))
}

fn as_obj<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, TranslateError> {
    v.as_object().ok_or_else(|| expect(v, path, "an object"))
}

fn as_f64(v: &Value, path: &str) -> Result<f64, TranslateError> {
    v.as_f64().ok_or_else(|| expect(v, path, "a number"))
}

fn as_u64(v: &Value, path: &str) -> Result<u64, TranslateError> {
    v.as_u64()
        .ok_or_else(|| expect(v, path, "a non-negative integer"))
}

fn as_bool(v: &Value, path: &str) -> Result<bool, TranslateError> {
    v.as_bool().ok_or_else(|| expect(v, path, "a boolean"))
}

/// Refuses any key of `obj` outside `known`.
fn only_keys(obj: &Map<String, Value>, path: &str, known: &[&str]) -> Result<(), TranslateError> {
    for k in obj.keys() {
        if !known.contains(&k.as_str()) {
            return Err(TranslateError::unsupported(
                join(path, k),
                "not a field this gateway translates",
            ));
        }
    }
    Ok(())
}

impl ChatRequest {
    /// Refuses `seed` and the penalties, for a `target` that has neither.
    pub(crate) fn refuse_seed_and_penalties(&self, target: &str) -> Result<(), TranslateError> {
        if self.seed.is_some() {
            return Err(TranslateError::unsupported(
                "seed",
                format!("{target} has no sampling seed"),
            ));
        }
        for (field, v) in [
            ("frequency_penalty", self.frequency_penalty),
            ("presence_penalty", self.presence_penalty),
        ] {
            if v.is_some() {
                return Err(TranslateError::unsupported(
                    field,
                    format!("{target} has no penalties"),
                ));
            }
        }
        Ok(())
    }
}

/// `obj[key]`, which must be there, read with `read`; with its path for later errors.
fn required<'a, T>(
    obj: &'a Map<String, Value>,
    parent: &str,
    key: &str,
    read: impl FnOnce(&'a Value, &str) -> Result<T, TranslateError>,
) -> Result<(T, String), TranslateError> {
    let path = join(parent, key);
    let v = obj
        .get(key)
        .ok_or_else(|| TranslateError::invalid(&path, "missing"))?;
    Ok((read(v, &path)?, path))
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Treats `null` as absent, as the OpenAI API does.
fn present<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

impl ChatRequest {
    pub fn from_slice(body: &[u8]) -> Result<Self, TranslateError> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| TranslateError::invalid("body", format!("not JSON: {e}")))?;
        Self::from_value(&v)
    }

    pub fn from_value(v: &Value) -> Result<Self, TranslateError> {
        let obj = as_obj(v, "body")?;
        let mut req = ChatRequest::default();
        for (key, value) in obj {
            if value.is_null() {
                continue;
            }
            let k = key.as_str();
            match k {
                "model" => req.model = as_str(value, k)?.to_string(),
                "messages" => req.messages = parse_messages(value)?,
                "max_tokens" | "max_completion_tokens" => {
                    as_u64(value, k)?;
                }
                "temperature" => req.temperature = Some(as_f64(value, k)?),
                "top_p" => req.top_p = Some(as_f64(value, k)?),
                "stop" => {
                    req.stop = match value {
                        Value::String(s) => vec![s.clone()],
                        Value::Array(a) => a
                            .iter()
                            .enumerate()
                            .map(|(i, s)| as_str(s, &format!("stop[{i}]")).map(str::to_string))
                            .collect::<Result<_, _>>()?,
                        other => return Err(expect(other, k, "a string or an array of strings")),
                    }
                }
                "stream" => req.stream = as_bool(value, k)?,
                "stream_options" => {
                    let o = as_obj(value, k)?;
                    only_keys(o, k, &["include_usage", "include_obfuscation"])?;
                    if let Some(u) = present(o, "include_usage") {
                        req.include_usage = as_bool(u, "stream_options.include_usage")?;
                    }
                }
                "tools" => req.tools = parse_tools(value)?,
                "tool_choice" => req.tool_choice = Some(parse_tool_choice(value)?),
                "parallel_tool_calls" => req.parallel_tool_calls = Some(as_bool(value, k)?),
                "response_format" => req.response_format = Some(parse_response_format(value)?),
                "n" => {
                    let n = as_u64(value, k)?;
                    if n != 1 {
                        return Err(TranslateError::unsupported(
                            k,
                            "only one choice (n = 1) is translated",
                        ));
                    }
                }
                "seed" => {
                    req.seed = Some(
                        value
                            .as_i64()
                            .ok_or_else(|| expect(value, k, "an integer"))?,
                    )
                }
                "frequency_penalty" => {
                    req.frequency_penalty = Some(as_f64(value, k)?).filter(|p| *p != 0.0)
                }
                "presence_penalty" => {
                    req.presence_penalty = Some(as_f64(value, k)?).filter(|p| *p != 0.0)
                }
                "user" => req.user = Some(as_str(value, k)?.to_string()),
                "logprobs" | "store" => {
                    if as_bool(value, k)? {
                        return Err(TranslateError::unsupported(k, "only false is translated"));
                    }
                }
                "top_logprobs" => {
                    if as_u64(value, k)? != 0 {
                        return Err(TranslateError::unsupported(
                            k,
                            "log probabilities are not translated",
                        ));
                    }
                }
                "logit_bias" => {
                    if !as_obj(value, k)?.is_empty() {
                        return Err(TranslateError::unsupported(k, "no target has token biases"));
                    }
                }
                "modalities" => {
                    if value != &json!(["text"]) {
                        return Err(TranslateError::unsupported(
                            k,
                            "only [\"text\"] is translated",
                        ));
                    }
                }
                "service_tier" => {
                    let t = as_str(value, k)?;
                    if t != "auto" && t != "default" {
                        return Err(TranslateError::unsupported(
                            k,
                            "only \"auto\" and \"default\" are translated",
                        ));
                    }
                }
                "functions" | "function_call" => {
                    return Err(TranslateError::unsupported(
                        k,
                        "the deprecated functions API is not translated; use tools",
                    ))
                }
                _ if IGNORED_FIELDS.contains(&k) => {}
                _ => {
                    return Err(TranslateError::unsupported(
                        k,
                        "not a field this gateway translates",
                    ))
                }
            }
        }
        let max_completion = present(obj, "max_completion_tokens").and_then(Value::as_u64);
        let max = present(obj, "max_tokens").and_then(Value::as_u64);
        if let (Some(a), Some(b)) = (max_completion, max) {
            if a != b {
                return Err(TranslateError::invalid(
                    "max_tokens",
                    "max_tokens and max_completion_tokens disagree; send one",
                ));
            }
        }
        req.max_tokens = max_completion.or(max);
        if req.messages.is_empty() {
            return Err(TranslateError::invalid(
                "messages",
                "at least one message is required",
            ));
        }
        if let Some(ToolChoice::Function(name)) = &req.tool_choice {
            if !req.tools.iter().any(|t| &t.name == name) {
                return Err(TranslateError::invalid(
                    "tool_choice.function.name",
                    format!("no tool named `{name}` in tools"),
                ));
            }
        }
        Ok(req)
    }
}

/// Text of a `content` that must be text only: a string or an array of text parts.
fn text_content(v: &Value, path: &str) -> Result<Vec<String>, TranslateError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| {
                let pp = format!("{path}[{j}]");
                let o = as_obj(p, &pp)?;
                let ty = present(o, "type")
                    .map(|t| as_str(t, &join(&pp, "type")))
                    .transpose()?;
                match ty {
                    Some("text") => {
                        only_keys(o, &pp, &["type", "text"])?;
                        let t = o
                            .get("text")
                            .ok_or_else(|| TranslateError::invalid(join(&pp, "text"), "missing"))?;
                        Ok(as_str(t, &join(&pp, "text"))?.to_string())
                    }
                    Some(other) => Err(TranslateError::unsupported(
                        join(&pp, "type"),
                        format!("`{other}` parts are not allowed here; only text"),
                    )),
                    None => Err(TranslateError::invalid(join(&pp, "type"), "missing")),
                }
            })
            .collect(),
        other => Err(expect(other, path, "a string or an array of content parts")),
    }
}

fn parse_messages(v: &Value) -> Result<Vec<Message>, TranslateError> {
    let arr = v
        .as_array()
        .ok_or_else(|| expect(v, "messages", "an array"))?;
    let mut out = Vec::with_capacity(arr.len());
    for (i, m) in arr.iter().enumerate() {
        let path = format!("messages[{i}]");
        let o = as_obj(m, &path)?;
        let role_v = o
            .get("role")
            .ok_or_else(|| TranslateError::invalid(join(&path, "role"), "missing"))?;
        let role = as_str(role_v, &join(&path, "role"))?;
        let content_path = join(&path, "content");
        let content = present(o, "content");
        let msg = match role {
            "system" | "developer" => {
                only_keys(o, &path, &["role", "content", "name"])?;
                let c = content.ok_or_else(|| TranslateError::invalid(&content_path, "missing"))?;
                Message::System {
                    index: i,
                    text: text_content(c, &content_path)?,
                }
            }
            "user" => {
                only_keys(o, &path, &["role", "content", "name"])?;
                let c = content.ok_or_else(|| TranslateError::invalid(&content_path, "missing"))?;
                Message::User {
                    index: i,
                    parts: user_content(c, &content_path)?,
                }
            }
            "assistant" => {
                only_keys(
                    o,
                    &path,
                    &["role", "content", "name", "tool_calls", "refusal", "audio"],
                )?;
                if present(o, "audio").is_some() {
                    return Err(TranslateError::unsupported(
                        join(&path, "audio"),
                        "audio outputs are not translated",
                    ));
                }
                if present(o, "refusal").is_some() {
                    return Err(TranslateError::unsupported(
                        join(&path, "refusal"),
                        "no target accepts a prior refusal",
                    ));
                }
                let text = match content {
                    Some(c) => text_content(c, &content_path)?,
                    None => Vec::new(),
                };
                let tool_calls = match present(o, "tool_calls") {
                    Some(tc) => parse_tool_calls(tc, &join(&path, "tool_calls"))?,
                    None => Vec::new(),
                };
                Message::Assistant {
                    index: i,
                    text,
                    tool_calls,
                }
            }
            "tool" => {
                only_keys(o, &path, &["role", "content", "tool_call_id"])?;
                let id_path = join(&path, "tool_call_id");
                let id = o
                    .get("tool_call_id")
                    .ok_or_else(|| TranslateError::invalid(&id_path, "missing"))?;
                let c = content.ok_or_else(|| TranslateError::invalid(&content_path, "missing"))?;
                Message::Tool {
                    index: i,
                    tool_call_id: as_str(id, &id_path)?.to_string(),
                    content: text_content(c, &content_path)?.concat(),
                }
            }
            "function" => {
                return Err(TranslateError::unsupported(
                    join(&path, "role"),
                    "the deprecated function role is not translated; use tool messages",
                ))
            }
            other => {
                return Err(TranslateError::invalid(
                    join(&path, "role"),
                    format!("unknown role `{other}`"),
                ))
            }
        };
        out.push(msg);
    }
    Ok(out)
}

fn user_content(v: &Value, path: &str) -> Result<Vec<UserPart>, TranslateError> {
    let parts = match v {
        Value::String(s) => return Ok(vec![UserPart::Text(s.clone())]),
        Value::Array(parts) => parts,
        other => return Err(expect(other, path, "a string or an array of content parts")),
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, p) in parts.iter().enumerate() {
        let pp = format!("{path}[{j}]");
        let o = as_obj(p, &pp)?;
        let (ty, ty_path) = required(o, &pp, "type", as_str)?;
        match ty {
            "text" => {
                only_keys(o, &pp, &["type", "text"])?;
                let t = o
                    .get("text")
                    .ok_or_else(|| TranslateError::invalid(join(&pp, "text"), "missing"))?;
                out.push(UserPart::Text(as_str(t, &join(&pp, "text"))?.to_string()));
            }
            "image_url" => {
                only_keys(o, &pp, &["type", "image_url"])?;
                let (io, ip) = required(o, &pp, "image_url", as_obj)?;
                only_keys(io, &ip, &["url", "detail"])?;
                let (url, up) = required(io, &ip, "url", as_str)?;
                out.push(UserPart::Image {
                    image: parse_image_url(url, &up)?,
                    path: up,
                });
            }
            other => {
                return Err(TranslateError::unsupported(
                    ty_path,
                    format!("`{other}` content parts are not translated; only text and image_url"),
                ))
            }
        }
    }
    Ok(out)
}

/// `data:<media type>;base64,<data>` or an http(s) URL.
pub fn parse_image_url(url: &str, path: &str) -> Result<Image, TranslateError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest
            .split_once(',')
            .ok_or_else(|| TranslateError::invalid(path, "data URL without a comma"))?;
        let media_type = meta.strip_suffix(";base64").ok_or_else(|| {
            TranslateError::unsupported(path, "only base64 data URLs are translated")
        })?;
        if media_type.is_empty() || !media_type.contains('/') {
            return Err(TranslateError::invalid(
                path,
                "data URL without a media type",
            ));
        }
        if data.is_empty()
            || !data
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
        {
            return Err(TranslateError::invalid(
                path,
                "data URL payload is not base64",
            ));
        }
        return Ok(Image::Base64 {
            media_type: media_type.to_ascii_lowercase(),
            data: data.to_string(),
        });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(Image::Url(url.to_string()));
    }
    Err(TranslateError::invalid(
        path,
        "expected a data: or http(s): URL",
    ))
}

fn parse_tool_calls(v: &Value, path: &str) -> Result<Vec<ToolCall>, TranslateError> {
    let arr = v.as_array().ok_or_else(|| expect(v, path, "an array"))?;
    arr.iter()
        .enumerate()
        .map(|(k, c)| {
            let cp = format!("{path}[{k}]");
            let o = as_obj(c, &cp)?;
            only_keys(o, &cp, &["id", "type", "function"])?;
            if let Some(t) = present(o, "type") {
                let t = as_str(t, &join(&cp, "type"))?;
                if t != "function" {
                    return Err(TranslateError::unsupported(
                        join(&cp, "type"),
                        format!("`{t}` tool calls are not translated; only function"),
                    ));
                }
            }
            let (id, _) = required(o, &cp, "id", as_str)?;
            let (f, fp) = required(o, &cp, "function", as_obj)?;
            only_keys(f, &fp, &["name", "arguments"])?;
            let (name, _) = required(f, &fp, "name", as_str)?;
            let arguments = match present(f, "arguments") {
                Some(a) => as_str(a, &join(&fp, "arguments"))?.to_string(),
                None => String::new(),
            };
            Ok(ToolCall {
                id: id.to_string(),
                name: name.to_string(),
                arguments,
            })
        })
        .collect()
}

fn parse_tools(v: &Value) -> Result<Vec<Tool>, TranslateError> {
    let arr = v.as_array().ok_or_else(|| expect(v, "tools", "an array"))?;
    arr.iter()
        .enumerate()
        .map(|(i, t)| {
            let tp = format!("tools[{i}]");
            let o = as_obj(t, &tp)?;
            let ty = as_str(o.get("type").unwrap_or(&Value::Null), &join(&tp, "type"))?;
            if ty != "function" {
                return Err(TranslateError::unsupported(
                    join(&tp, "type"),
                    format!("`{ty}` tools are not translated; only function"),
                ));
            }
            only_keys(o, &tp, &["type", "function"])?;
            let (f, fp) = required(o, &tp, "function", as_obj)?;
            only_keys(f, &fp, &["name", "description", "parameters", "strict"])?;
            let (name, _) = required(f, &fp, "name", as_str)?;
            let description = present(f, "description")
                .map(|d| as_str(d, &join(&fp, "description")).map(str::to_string))
                .transpose()?;
            let parameters = match present(f, "parameters") {
                Some(p) => {
                    as_obj(p, &join(&fp, "parameters"))?;
                    Some(p.clone())
                }
                None => None,
            };
            let strict = present(f, "strict")
                .map(|s| as_bool(s, &join(&fp, "strict")))
                .transpose()?;
            Ok(Tool {
                name: name.to_string(),
                description,
                parameters,
                strict,
            })
        })
        .collect()
}

fn parse_tool_choice(v: &Value) -> Result<ToolChoice, TranslateError> {
    let k = "tool_choice";
    match v {
        Value::String(s) => match s.as_str() {
            "none" => Ok(ToolChoice::None),
            "auto" => Ok(ToolChoice::Auto),
            "required" => Ok(ToolChoice::Required),
            other => Err(TranslateError::invalid(
                k,
                format!("unknown value `{other}`"),
            )),
        },
        Value::Object(o) => {
            let ty = as_str(o.get("type").unwrap_or(&Value::Null), "tool_choice.type")?;
            if ty != "function" {
                return Err(TranslateError::unsupported(
                    "tool_choice.type",
                    format!("`{ty}` is not translated; only a function"),
                ));
            }
            only_keys(o, k, &["type", "function"])?;
            let f = as_obj(
                o.get("function").unwrap_or(&Value::Null),
                "tool_choice.function",
            )?;
            only_keys(f, "tool_choice.function", &["name"])?;
            let name = as_str(
                f.get("name").unwrap_or(&Value::Null),
                "tool_choice.function.name",
            )?;
            Ok(ToolChoice::Function(name.to_string()))
        }
        other => Err(expect(other, k, "a string or an object")),
    }
}

fn parse_response_format(v: &Value) -> Result<ResponseFormat, TranslateError> {
    let k = "response_format";
    let o = as_obj(v, k)?;
    let ty = as_str(
        o.get("type").unwrap_or(&Value::Null),
        "response_format.type",
    )?;
    match ty {
        "text" => {
            only_keys(o, k, &["type"])?;
            Ok(ResponseFormat::Text)
        }
        "json_object" => {
            only_keys(o, k, &["type"])?;
            Ok(ResponseFormat::JsonObject)
        }
        "json_schema" => {
            only_keys(o, k, &["type", "json_schema"])?;
            let sp = "response_format.json_schema";
            let s = as_obj(o.get("json_schema").unwrap_or(&Value::Null), sp)?;
            only_keys(s, sp, &["name", "description", "schema", "strict"])?;
            let name = as_str(
                s.get("name").unwrap_or(&Value::Null),
                "response_format.json_schema.name",
            )?;
            let description = present(s, "description")
                .map(|d| as_str(d, "response_format.json_schema.description").map(str::to_string))
                .transpose()?;
            let schema = match present(s, "schema") {
                Some(sc) => {
                    as_obj(sc, "response_format.json_schema.schema")?;
                    sc.clone()
                }
                None => {
                    return Err(TranslateError::unsupported(
                        "response_format.json_schema.schema",
                        "a json_schema without a schema has no equivalent",
                    ))
                }
            };
            let strict = present(s, "strict")
                .map(|b| as_bool(b, "response_format.json_schema.strict"))
                .transpose()?;
            Ok(ResponseFormat::JsonSchema {
                name: name.to_string(),
                description,
                schema,
                strict,
            })
        }
        other => Err(TranslateError::unsupported(
            "response_format.type",
            format!("`{other}` is not translated"),
        )),
    }
}

/// Finds the name of the function a tool message answers: the nearest earlier assistant
/// tool call with that id (ids can repeat across turns when a target generates them).
pub fn tool_call_name<'a>(messages: &'a [Message], before: usize, id: &str) -> Option<&'a str> {
    messages[..before].iter().rev().find_map(|m| match m {
        Message::Assistant { tool_calls, .. } => tool_calls
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.name.as_str()),
        _ => None,
    })
}

// ----------------------------------------------------------------------------------------
// Answers

/// What the caller knows about the answer it is translating.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseMeta {
    /// The completion id when the provider gives none (Bedrock); Anthropic's `id` and
    /// Gemini's `responseId` are used as they are otherwise.
    pub id: String,
    /// The model to report when the provider names none (Bedrock); Anthropic's `model`
    /// and Gemini's `modelVersion` are reported otherwise.
    pub model: String,
    /// `created`, Unix seconds.
    pub created: i64,
}

/// Usage in OpenAI's terms: `prompt_tokens` includes cached and cache-written tokens,
/// `completion_tokens` includes reasoning tokens (providers.md §1, §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// `prompt_tokens_details.cached_tokens` (⊂ prompt_tokens).
    pub cached_tokens: u64,
    /// `prompt_tokens_details.cache_write_tokens` (⊂ prompt_tokens); written only when
    /// non-zero.
    pub cache_write_tokens: u64,
    /// `completion_tokens_details.reasoning_tokens` (⊂ completion_tokens).
    pub reasoning_tokens: u64,
}

impl Usage {
    pub fn to_json(&self) -> Value {
        let mut prompt_details = json!({ "cached_tokens": self.cached_tokens });
        if self.cache_write_tokens > 0 {
            prompt_details["cache_write_tokens"] = json!(self.cache_write_tokens);
        }
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens.saturating_add(self.completion_tokens),
            "prompt_tokens_details": prompt_details,
            "completion_tokens_details": { "reasoning_tokens": self.reasoning_tokens },
        })
    }
}

/// OpenAI's `finish_reason` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
        }
    }
}

/// A whole `chat.completion` with one choice.
pub fn completion(
    id: &str,
    model: &str,
    created: i64,
    text: Option<String>,
    tool_calls: &[ToolCall],
    finish: FinishReason,
    usage: Option<Usage>,
) -> Value {
    let mut message = json!({
        "role": "assistant",
        "content": text,
        "refusal": null,
    });
    if !tool_calls.is_empty() {
        message["tool_calls"] = Value::Array(
            tool_calls
                .iter()
                .map(|c| {
                    json!({
                        "id": c.id,
                        "type": "function",
                        "function": { "name": c.name, "arguments": c.arguments },
                    })
                })
                .collect(),
        );
    }
    let mut v = json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish.as_str(),
        }],
    });
    if let Some(u) = usage {
        v["usage"] = u.to_json();
    }
    v
}

/// Writes `chat.completion.chunk` events for one choice.
#[derive(Debug)]
pub struct ChunkWriter {
    pub id: String,
    pub model: String,
    pub created: i64,
    pub include_usage: bool,
    role_sent: bool,
    finished: bool,
    done: bool,
}

impl ChunkWriter {
    /// An event's JSON, unless the stream is over; an unreadable event ends it with an error.
    pub fn read_event(&mut self, data: &[u8], out: &mut Vec<u8>) -> Option<Value> {
        if self.done() {
            return None;
        }
        match serde_json::from_slice(data) {
            Ok(v) => Some(v),
            Err(err) => {
                self.error(
                    &format!("upstream sent an unreadable event: {err}"),
                    "api_error",
                    out,
                );
                None
            }
        }
    }

    pub fn new(meta: ResponseMeta, include_usage: bool) -> Self {
        ChunkWriter {
            id: meta.id,
            model: meta.model,
            created: meta.created,
            include_usage,
            role_sent: false,
            finished: false,
            done: false,
        }
    }

    pub fn role_sent(&self) -> bool {
        self.role_sent
    }

    pub fn finished(&self) -> bool {
        self.finished
    }

    /// `[DONE]` (or an error) was written; nothing more will be.
    pub fn done(&self) -> bool {
        self.done
    }

    fn chunk(&self, delta: Value, finish: Option<FinishReason>, out: &mut Vec<u8>) {
        let mut v = json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{
                "index": 0,
                "delta": delta,
                "logprobs": null,
                "finish_reason": finish.map(FinishReason::as_str),
            }],
        });
        if self.include_usage {
            v["usage"] = Value::Null;
        }
        crate::sse::write_data(out, &v);
    }

    /// The first chunk: `{"role":"assistant","content":""}`; written once.
    pub fn role(&mut self, out: &mut Vec<u8>) {
        if !self.role_sent && !self.done {
            self.role_sent = true;
            self.chunk(json!({"role": "assistant", "content": ""}), None, out);
        }
    }

    pub fn content(&mut self, text: &str, out: &mut Vec<u8>) {
        if text.is_empty() || self.done {
            return;
        }
        self.role(out);
        self.chunk(json!({ "content": text }), None, out);
    }

    /// A tool call begins: index, id, name and (possibly empty) first arguments.
    pub fn tool_start(
        &mut self,
        index: usize,
        id: &str,
        name: &str,
        args: &str,
        out: &mut Vec<u8>,
    ) {
        if self.done {
            return;
        }
        self.role(out);
        self.chunk(
            json!({ "tool_calls": [{
                "index": index,
                "id": id,
                "type": "function",
                "function": { "name": name, "arguments": args },
            }]}),
            None,
            out,
        );
    }

    pub fn tool_args(&mut self, index: usize, fragment: &str, out: &mut Vec<u8>) {
        if fragment.is_empty() || self.done {
            return;
        }
        self.role(out);
        self.chunk(
            json!({ "tool_calls": [{ "index": index, "function": { "arguments": fragment } }] }),
            None,
            out,
        );
    }

    /// The chunk with `finish_reason` and an empty delta; written once.
    pub fn finish(&mut self, reason: FinishReason, out: &mut Vec<u8>) {
        if self.finished || self.done {
            return;
        }
        self.role(out);
        self.finished = true;
        self.chunk(json!({}), Some(reason), out);
    }

    /// The usage chunk (`choices: []`) when the client asked for it, then `[DONE]`.
    pub fn end(&mut self, usage: Option<Usage>, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        if self.include_usage {
            let v = json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [],
                "usage": usage.unwrap_or_default().to_json(),
            });
            crate::sse::write_data(out, &v);
        }
        crate::sse::write_done(out);
        self.done = true;
    }

    /// An error event in OpenAI's shape (the SDK raises `APIError` on a `data:` with an
    /// `error` key, providers.md §1); the stream ends after it, without `[DONE]`.
    pub fn error(&mut self, message: &str, kind: &str, out: &mut Vec<u8>) {
        if self.done {
            return;
        }
        crate::sse::write_data(
            out,
            &json!({"error": {"message": message, "type": kind, "param": null, "code": null}}),
        );
        self.done = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(v: Value) -> TranslateError {
        ChatRequest::from_value(&v).unwrap_err()
    }

    #[test]
    fn unknown_and_refused_fields_name_the_field() {
        let m = json!([{"role": "user", "content": "hi"}]);
        assert_eq!(
            err(json!({"model": "x", "messages": m, "foo": 1})).field(),
            "foo"
        );
        assert_eq!(
            err(json!({"model": "x", "messages": m, "n": 2})).field(),
            "n"
        );
        assert_eq!(
            err(json!({"model": "x", "messages": m, "logprobs": true})).field(),
            "logprobs"
        );
        assert_eq!(
            err(json!({"model": "x", "messages": m, "functions": []})).field(),
            "functions"
        );
        assert_eq!(
            err(json!({"model": "x", "messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]})).field(),
            "messages[0].content[0].type"
        );
        assert_eq!(
            err(json!({"model": "x", "messages": [{"role": "user", "content": "a", "weird": 1}]}))
                .field(),
            "messages[0].weird"
        );
        let e =
            err(json!({"model": "x", "messages": m, "max_tokens": 5, "max_completion_tokens": 6}));
        assert!(matches!(e, TranslateError::Invalid { .. }));
    }

    #[test]
    fn ignored_and_default_fields_pass() {
        let r = ChatRequest::from_value(&json!({
            "model": "x", "messages": [{"role": "user", "content": "hi", "name": "bob"}],
            "metadata": {"a": "b"}, "store": false, "n": 1, "logprobs": false,
            "prompt_cache_key": "k", "safety_identifier": "s", "service_tier": "auto",
            "stream": true, "stream_options": {"include_usage": true, "include_obfuscation": false},
            "frequency_penalty": 0, "stop": "END", "max_tokens": 10, "temperature": null
        }))
        .unwrap();
        assert!(r.stream && r.include_usage);
        assert_eq!(r.stop, vec!["END"]);
        assert_eq!(r.max_tokens, Some(10));
        assert_eq!(r.frequency_penalty, None);
        assert_eq!(r.temperature, None);
    }

    #[test]
    fn image_urls() {
        assert_eq!(
            parse_image_url("data:image/PNG;base64,iVBORw0KGgo=", "p").unwrap(),
            Image::Base64 {
                media_type: "image/png".into(),
                data: "iVBORw0KGgo=".into()
            }
        );
        assert!(matches!(
            parse_image_url("https://x/y.png", "p").unwrap(),
            Image::Url(_)
        ));
        assert!(parse_image_url("data:image/png,abc", "p").is_err());
        assert!(parse_image_url("ftp://x", "p").is_err());
    }

    #[test]
    fn usage_json() {
        let u = Usage {
            prompt_tokens: 10,
            completion_tokens: 5,
            cached_tokens: 3,
            cache_write_tokens: 2,
            reasoning_tokens: 1,
        };
        assert_eq!(
            u.to_json(),
            json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                   "prompt_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 2},
                   "completion_tokens_details": {"reasoning_tokens": 1}})
        );
    }
}
