//! One request's copy for its log, taken as the request passes. Nothing is held back: the
//! request body is copied (up to the cap) out of the message Envoy already buffered, and
//! response chunks are read and forwarded at once. A streamed response is kept as its
//! assembled text, so the copy grows with the text, not with the stream's framing.

use super::ResponseKind;
use crate::usage::event_stream::{Decoder, Frame};
use crate::usage::sse::{SseParser, SseSink};
use crate::usage::ApiFormat;
use serde_json::Value;

/// A single SSE event larger than this is not read for text (no provider sends one).
const MAX_EVENT_BYTES: usize = 1 << 20;

pub struct Capture {
    cap: usize,
    format: Option<ApiFormat>,
    request: Bounded,
    response: Option<Response>,
}

/// What a [`Capture`] kept, before redaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    pub request_body: String,
    pub request_truncated: bool,
    pub response_kind: ResponseKind,
    pub response_body: String,
    pub response_truncated: bool,
}

impl Capture {
    /// `format`: the API the request calls, which says how a stream carries its text.
    pub fn new(max_body_bytes: u64, format: Option<ApiFormat>) -> Self {
        Self {
            cap: usize::try_from(max_body_bytes).unwrap_or(usize::MAX),
            format,
            request: Bounded::default(),
            response: None,
        }
    }

    pub fn on_request_body(&mut self, body: &[u8]) {
        self.request.push(body, self.cap);
    }

    /// Picks how the response is kept from its content type.
    pub fn on_response_headers(&mut self, content_type: Option<&str>) {
        let media = content_type
            .and_then(|ct| ct.split(';').next())
            .map(|m| m.trim().to_ascii_lowercase())
            .unwrap_or_default();
        let text = self.format.and_then(TextFormat::of);
        self.response = Some(match (media.as_str(), text) {
            ("text/event-stream", Some(f)) if f != TextFormat::BedrockConverse => Response::Sse {
                parser: SseParser::new(),
                event: EventText::new(f),
            },
            ("application/vnd.amazon.eventstream", Some(TextFormat::BedrockConverse)) => {
                Response::Frames {
                    decoder: Decoder::new(),
                    text: Texts::default(),
                }
            }
            _ => Response::Body(Bounded::default()),
        });
    }

    pub fn on_response_body(&mut self, chunk: &[u8]) {
        let cap = self.cap;
        match self
            .response
            .get_or_insert_with(|| Response::Body(Bounded::default()))
        {
            Response::Body(b) => b.push(chunk, cap),
            Response::Sse { parser, event } => {
                event.cap = cap;
                parser.feed(chunk, event);
            }
            Response::Frames { decoder, text } => {
                // A broken frame ends the text; the usage extractor reports the error.
                let _ = decoder.feed(chunk, |f| bedrock_delta(&f, text, cap));
            }
        }
    }

    pub fn finish(self) -> Captured {
        let (request_body, request_truncated) = self.request.into_string();
        let (response_kind, response_body, response_truncated) = match self.response {
            None => (ResponseKind::Body, String::new(), false),
            Some(Response::Body(b)) => {
                let (s, t) = b.into_string();
                (ResponseKind::Body, s, t)
            }
            Some(Response::Sse { event, .. }) => {
                let (s, t) = event.texts.into_string();
                (ResponseKind::Text, s, t)
            }
            Some(Response::Frames { text, .. }) => {
                let (s, t) = text.into_string();
                (ResponseKind::Text, s, t)
            }
        };
        Captured {
            request_body,
            request_truncated,
            response_kind,
            response_body,
            response_truncated,
        }
    }
}

enum Response {
    Body(Bounded),
    Sse { parser: SseParser, event: EventText },
    Frames { decoder: Decoder, text: Texts },
}

/// Bytes up to a cap; what is past it is only noted.
#[derive(Default)]
struct Bounded {
    bytes: Vec<u8>,
    truncated: bool,
}

impl Bounded {
    fn push(&mut self, data: &[u8], cap: usize) {
        let room = cap.saturating_sub(self.bytes.len());
        if data.len() > room {
            self.truncated = true;
        }
        self.bytes.extend_from_slice(&data[..data.len().min(room)]);
    }

    /// As text; a character cut by the cap is dropped.
    fn into_string(self) -> (String, bool) {
        let mut s = String::from_utf8_lossy(&self.bytes).into_owned();
        if self.truncated {
            while s.ends_with(char::REPLACEMENT_CHARACTER) {
                s.pop();
            }
        }
        (s, self.truncated)
    }
}

/// The APIs whose streams carry text deltas we assemble.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextFormat {
    /// `choices[i].delta.content`, per choice.
    OpenaiChat,
    /// `response.output_text.delta` events' `delta`.
    OpenaiResponses,
    /// `content_block_delta` events' `delta.text`.
    Anthropic,
    /// `candidates[i].content.parts[].text`, per candidate.
    Gemini,
    /// ConverseStream `contentBlockDelta` frames' `delta.text`.
    BedrockConverse,
}

impl TextFormat {
    fn of(api: ApiFormat) -> Option<Self> {
        Some(match api {
            ApiFormat::OpenaiChat(_) => Self::OpenaiChat,
            ApiFormat::OpenaiResponses(_) => Self::OpenaiResponses,
            ApiFormat::AnthropicMessages => Self::Anthropic,
            ApiFormat::GeminiStreamGenerateContent | ApiFormat::GeminiGenerateContent => {
                Self::Gemini
            }
            ApiFormat::BedrockConverseStream => Self::BedrockConverse,
            _ => return None,
        })
    }
}

/// The assembled text, one string per choice (candidate), capped in total.
#[derive(Default)]
struct Texts {
    choices: Vec<String>,
    len: usize,
    truncated: bool,
}

impl Texts {
    fn push(&mut self, choice: usize, text: &str, cap: usize) {
        // More choices than anyone asks for would only be a way to grow this.
        if choice >= 16 || text.is_empty() {
            return;
        }
        let room = cap.saturating_sub(self.len);
        let mut take = text.len().min(room);
        while !text.is_char_boundary(take) {
            take -= 1;
        }
        if take < text.len() {
            self.truncated = true;
        }
        if take == 0 {
            return;
        }
        if self.choices.len() <= choice {
            self.choices.resize_with(choice + 1, String::new);
        }
        self.choices[choice].push_str(&text[..take]);
        self.len += take;
    }

    /// One choice: its text. Several: each headed by its index.
    fn into_string(self) -> (String, bool) {
        let s = match self.choices.len() {
            0 => String::new(),
            1 => self.choices.into_iter().next().unwrap_or_default(),
            _ => self
                .choices
                .iter()
                .enumerate()
                .map(|(i, t)| format!("[choice {i}]\n{t}"))
                .collect::<Vec<_>>()
                .join("\n\n"),
        };
        (s, self.truncated)
    }
}

/// An SSE stream's events, read for their text deltas.
struct EventText {
    format: TextFormat,
    cap: usize,
    data: Vec<u8>,
    oversized: bool,
    texts: Texts,
}

impl EventText {
    fn new(format: TextFormat) -> Self {
        Self {
            format,
            cap: 0,
            data: Vec::new(),
            oversized: false,
            texts: Texts::default(),
        }
    }
}

impl SseSink for EventText {
    fn data(&mut self, piece: &[u8]) {
        if self.data.len() + piece.len() > MAX_EVENT_BYTES {
            self.oversized = true;
        } else {
            self.data.extend_from_slice(piece);
        }
    }

    fn dispatch(&mut self, event_type: &[u8]) {
        let oversized = std::mem::take(&mut self.oversized);
        if !oversized {
            if let Ok(v) = serde_json::from_slice::<Value>(&self.data) {
                sse_delta(self.format, event_type, &v, &mut self.texts, self.cap);
            }
        }
        self.data.clear();
    }
}

fn sse_delta(format: TextFormat, event_type: &[u8], v: &Value, texts: &mut Texts, cap: usize) {
    let str_at = |ptr: &str| v.pointer(ptr).and_then(Value::as_str);
    match format {
        TextFormat::OpenaiChat => {
            for (i, c) in v["choices"].as_array().into_iter().flatten().enumerate() {
                let index = c["index"].as_u64().map_or(i, |n| n as usize);
                if let Some(t) = c.pointer("/delta/content").and_then(Value::as_str) {
                    texts.push(index, t, cap);
                }
            }
        }
        TextFormat::OpenaiResponses => {
            if v["type"] == "response.output_text.delta" {
                if let Some(t) = str_at("/delta") {
                    texts.push(0, t, cap);
                }
            }
        }
        TextFormat::Anthropic => {
            let typed = v["type"] == "content_block_delta" || event_type == b"content_block_delta";
            if typed && v.pointer("/delta/type").and_then(Value::as_str) == Some("text_delta") {
                if let Some(t) = str_at("/delta/text") {
                    texts.push(0, t, cap);
                }
            }
        }
        TextFormat::Gemini => {
            for (i, c) in v["candidates"].as_array().into_iter().flatten().enumerate() {
                let index = c["index"].as_u64().map_or(i, |n| n as usize);
                for p in c
                    .pointer("/content/parts")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    // Thought summaries are not the answer's text.
                    if p["thought"] == true {
                        continue;
                    }
                    if let Some(t) = p["text"].as_str() {
                        texts.push(index, t, cap);
                    }
                }
            }
        }
        TextFormat::BedrockConverse => {}
    }
}

fn bedrock_delta(frame: &Frame, texts: &mut Texts, cap: usize) {
    if frame.header_str(":event-type") != Some("contentBlockDelta") {
        return;
    }
    if let Ok(v) = serde_json::from_slice::<Value>(&frame.payload) {
        if let Some(t) = v.pointer("/delta/text").and_then(Value::as_str) {
            texts.push(0, t, cap);
        }
    }
}
