//! Token usage read from provider responses as they stream past, normalized into disjoint,
//! billable buckets.
//!
//! # Layout
//! - [`Usage`]: the normalized counts. Each token is in exactly one billable bucket, so
//!   `cost = Σ bucket × price` with no provider-specific subtraction left to the caller.
//! - [`detect`] picks the [`ApiFormat`] from the provider kind, method and upstream path;
//!   [`requested_model`] reads the model out of Gemini and Bedrock paths.
//! - [`UsageExtractor`] is fed the response body chunk by chunk (any boundaries) and
//!   returns the usage at the end, also for a stream cut off mid-way. It never keeps the
//!   body: JSON bodies go through [`json_scan`], which copies out only the usage-bearing
//!   values; [`sse`] and [`event_stream`] hold at most the current line or frame.
//! - One module per provider turns its usage object into [`Usage`]: [`openai`] (also
//!   OpenAI-compatible servers), [`anthropic`], [`gemini`], [`bedrock`].
//!
//! # Buckets, per provider (providers.md §6)
//! - OpenAI: `cached_tokens` and `cache_write_tokens` are inside `prompt_tokens`
//!   (`input_tokens` on Responses), so `input = prompt − cached − written`. Writes go to
//!   the 30-minute bucket unless `ttl_12h_tokens` says otherwise. Reasoning is inside the
//!   completion count.
//! - Anthropic and Bedrock: cache reads and writes are *additional* to `input_tokens`.
//! - Gemini: `cachedContentTokenCount` is inside `promptTokenCount`; `thoughtsTokenCount` is
//!   additional to `candidatesTokenCount` and billed as output; `toolUsePromptTokenCount`
//!   is additional to the prompt and billed as input.
//!
//! Cache writes whose TTL the provider does not report count as its default TTL: 5 minutes
//! for Anthropic and Bedrock, 30 minutes for OpenAI.

pub mod anthropic;
pub mod bedrock;
pub mod event_stream;
pub mod gemini;
pub mod json_scan;
pub mod openai;
pub mod sse;

use aigw_core::ProviderKind;
use event_stream::{Frame, FrameError};
use json_scan::{JsonScanner, Path, ScanError};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::Write;

/// Tokens of one response in disjoint, billable buckets.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens billed at the plain input price (no cache involved).
    pub input: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read: u64,
    /// Input tokens written to the cache with a 5-minute TTL (Anthropic, Bedrock; also
    /// their writes whose TTL is not reported).
    pub cache_write_5m: u64,
    /// Input tokens written to the cache with a 1-hour TTL (Anthropic, Bedrock).
    pub cache_write_1h: u64,
    /// Input tokens written to the cache with a 30-minute TTL (OpenAI's default; also its
    /// writes whose TTL is not reported).
    pub cache_write_30m: u64,
    /// Input tokens written to the cache with a 12-hour TTL (OpenAI).
    pub cache_write_12h: u64,
    /// All output tokens, reasoning included.
    pub output: u64,
    /// Reasoning ("thinking") tokens; informational, already inside `output`.
    pub reasoning: u64,
    /// The model that answered, as the response names it.
    pub model: Option<String>,
    /// The service tier the response reports (OpenAI `service_tier`, Anthropic
    /// `usage.service_tier`); informational, prices do not depend on it yet.
    pub service_tier: Option<String>,
    /// The provider's own total, where it reports one (OpenAI `total_tokens`, Gemini
    /// `totalTokenCount`, Bedrock `totalTokens`), to check the buckets against.
    pub provider_total: Option<u64>,
}

impl Usage {
    /// All cache writes, whatever their TTL.
    pub fn cache_write(&self) -> u64 {
        self.cache_write_5m
            .saturating_add(self.cache_write_1h)
            .saturating_add(self.cache_write_30m)
            .saturating_add(self.cache_write_12h)
    }

    /// Every input token: plain, cache reads and cache writes. This is the "prompt size"
    /// that long-context price tiers look at.
    pub fn prompt_tokens(&self) -> u64 {
        self.input
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write())
    }

    /// Every billable token.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens().saturating_add(self.output)
    }
}

/// Which OpenAI-shaped server answers: OpenAI itself, or a compatible server (vLLM,
/// Ollama) that may leave counts out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpenaiDialect {
    /// A usage object without its main counts is reported as malformed.
    Openai,
    /// Missing counts read as 0.
    Compatible,
}

/// The response format usage is read from: one per API operation. Whether the body is
/// JSON, SSE or an AWS event stream is decided from the response's content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiFormat {
    /// `POST …/chat/completions` (and the legacy `…/completions`, which has the same usage).
    OpenaiChat(OpenaiDialect),
    /// `POST …/responses`.
    OpenaiResponses(OpenaiDialect),
    /// `POST …/embeddings`.
    OpenaiEmbeddings(OpenaiDialect),
    /// `POST …/v1/messages`.
    AnthropicMessages,
    /// `POST …/v1/messages/count_tokens`: free, zero usage.
    AnthropicCountTokens,
    /// `POST …/models/{m}:generateContent`.
    GeminiGenerateContent,
    /// `POST …/models/{m}:streamGenerateContent` (SSE with `alt=sse`, else a JSON array).
    GeminiStreamGenerateContent,
    /// `POST …/models/{m}:embedContent` and `:batchEmbedContents`.
    GeminiEmbedContent,
    /// `POST …/models/{m}:countTokens`: free, zero usage.
    GeminiCountTokens,
    /// `POST /model/{id}/converse`.
    BedrockConverse,
    /// `POST /model/{id}/converse-stream`.
    BedrockConverseStream,
    /// `POST /model/{id}/invoke`: usage from the response headers, or the model's own body.
    BedrockInvoke,
    /// `POST /model/{id}/invoke-with-response-stream`.
    BedrockInvokeStream,
    /// `POST /model/{id}/count-tokens`: free, zero usage.
    BedrockCountTokens,
}

/// The format of a response, from what the request was. `upstream_path` is the path as
/// forwarded, with any base-path prefix, query string and percent-encoding. The content
/// type is only used to skip responses that cannot hold usage (HTML error pages, media).
pub fn detect(
    kind: ProviderKind,
    method: &str,
    upstream_path: &str,
    response_content_type: Option<&str>,
) -> Option<ApiFormat> {
    if !method.eq_ignore_ascii_case("POST") {
        return None;
    }
    if response_content_type.is_some_and(|ct| {
        let mt = media_type(ct);
        ["text/html", "image/", "audio/", "video/"]
            .iter()
            .any(|p| mt.starts_with(p))
    }) {
        return None;
    }
    let segments = path_segments(upstream_path);
    match kind {
        ProviderKind::Openai => openai_format(&segments, OpenaiDialect::Openai),
        // Ollama also serves Anthropic's `/v1/messages`.
        ProviderKind::OpenaiCompatible => openai_format(&segments, OpenaiDialect::Compatible)
            .or_else(|| anthropic_format(&segments)),
        ProviderKind::Anthropic => anthropic_format(&segments),
        ProviderKind::Google => match gemini_method(&segments)?.1.as_str() {
            "generateContent" => Some(ApiFormat::GeminiGenerateContent),
            "streamGenerateContent" => Some(ApiFormat::GeminiStreamGenerateContent),
            "embedContent" | "batchEmbedContents" => Some(ApiFormat::GeminiEmbedContent),
            "countTokens" => Some(ApiFormat::GeminiCountTokens),
            _ => None,
        },
        ProviderKind::Bedrock => match bedrock_operation(&segments)?.1 {
            "converse" => Some(ApiFormat::BedrockConverse),
            "converse-stream" => Some(ApiFormat::BedrockConverseStream),
            "invoke" => Some(ApiFormat::BedrockInvoke),
            "invoke-with-response-stream" => Some(ApiFormat::BedrockInvokeStream),
            "count-tokens" => Some(ApiFormat::BedrockCountTokens),
            _ => None,
        },
    }
}

/// The model the request asked for, where the path names it: Gemini
/// `…/models/{model}:method` and Bedrock `/model/{id}/op`, percent-decoded (`%3A` → `:`,
/// `%2F` → `/`). For other providers the model is in the request body.
pub fn requested_model(kind: ProviderKind, upstream_path: &str) -> Option<String> {
    let segments = path_segments(upstream_path);
    let model = match kind {
        ProviderKind::Google => {
            let (model, _) = gemini_method(&segments)?;
            model
                .strip_prefix("models/")
                .map(str::to_string)
                .unwrap_or(model)
        }
        ProviderKind::Bedrock => percent_decode(bedrock_operation(&segments)?.0),
        _ => return None,
    };
    (!model.is_empty()).then_some(model)
}

/// The path's segments without query, fragment and empty segments (still encoded).
fn path_segments(path: &str) -> Vec<&str> {
    let path = path.split(['?', '#']).next().unwrap_or("");
    path.split('/').filter(|s| !s.is_empty()).collect()
}

fn ends_with(segments: &[&str], tail: &[&str]) -> bool {
    segments.len() >= tail.len() && segments[segments.len() - tail.len()..] == *tail
}

fn openai_format(segments: &[&str], dialect: OpenaiDialect) -> Option<ApiFormat> {
    let last = *segments.last()?;
    match last {
        "completions" => Some(ApiFormat::OpenaiChat(dialect)),
        "responses" => Some(ApiFormat::OpenaiResponses(dialect)),
        "embeddings" => Some(ApiFormat::OpenaiEmbeddings(dialect)),
        _ => None,
    }
}

fn anthropic_format(segments: &[&str]) -> Option<ApiFormat> {
    if ends_with(segments, &["messages", "count_tokens"]) {
        Some(ApiFormat::AnthropicCountTokens)
    } else if ends_with(segments, &["messages"]) {
        Some(ApiFormat::AnthropicMessages)
    } else {
        None
    }
}

/// `(model, method)` from Gemini's last segment `{model}:{method}` (the colon may be
/// `%3A`-encoded).
fn gemini_method(segments: &[&str]) -> Option<(String, String)> {
    let last = percent_decode(segments.last()?);
    let (model, method) = last.rsplit_once(':')?;
    Some((model.to_string(), method.to_string()))
}

/// `(encoded model id, operation)` from `…/model/{id}/{operation}`.
fn bedrock_operation<'a>(segments: &[&'a str]) -> Option<(&'a str, &'a str)> {
    match segments {
        [.., "model", id, op] => Some((id, op)),
        _ => None,
    }
}

/// Decodes `%XX` escapes; anything malformed is kept as it is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `text/event-stream; charset=utf-8` → `text/event-stream`.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// What the extractor found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The usage, `None` when the response carried none (a cut stream before the usage,
    /// an OpenAI stream without `include_usage`, an unreadable body).
    pub usage: Option<Usage>,
    /// Whether the provider's end marker was seen: a JSON body read to its end, `[DONE]`,
    /// `message_stop`, a Gemini `finishReason`, Responses' `response.completed` /
    /// `.incomplete` / `.failed`, ConverseStream's `metadata`, an invoke stream's
    /// `amazon-bedrock-invocationMetrics` or `message_stop`.
    pub complete: bool,
    /// The first problem met, if any; usage is still reported from what was read.
    pub error: Option<ExtractError>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExtractError {
    #[error("content-encoding `{0}` is not supported, so usage cannot be read from the body")]
    UnsupportedEncoding(String),
    #[error("the {encoding} body cannot be decompressed: {reason}")]
    Decompress {
        encoding: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Json(#[from] ScanError),
    #[error(transparent)]
    EventStream(#[from] FrameError),
    #[error("malformed usage: {0}")]
    BadUsage(String),
    #[error("malformed event: {0}")]
    BadEvent(String),
    #[error("the provider reported an error: {0}")]
    Upstream(String),
}

/// The values a format asks the JSON scanner for. One enum for every format, so the
/// framing code is shared; each format lists its own paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    Usage,
    Model,
    ServiceTier,
    Type,
    Error,
    /// A top-level `message` string (Responses' stream `error` event).
    Message,
    MessageUsage,
    MessageModel,
    ResponseUsage,
    ResponseModel,
    ResponseServiceTier,
    ResponseError,
    UsageMetadata,
    ModelVersion,
    FinishReason,
    InvocationMetrics,
}

/// What every format reports besides its usage.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub complete: bool,
    pub error: Option<ExtractError>,
    pub model: Option<String>,
    pub service_tier: Option<String>,
}

impl Outcome {
    /// Keeps the first error: later ones are usually its consequences.
    pub fn error(&mut self, e: ExtractError) {
        self.error.get_or_insert(e);
    }

    pub fn set_model(&mut self, v: &Value) {
        if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
            self.model = Some(s.to_string());
        }
    }

    pub fn set_service_tier(&mut self, v: &Value) {
        if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
            self.service_tier = Some(s.to_string());
        }
    }

    /// An `error` value in a body or event: null means "no error" (Responses objects).
    pub fn upstream_error(&mut self, v: &Value) {
        if !v.is_null() {
            self.error(ExtractError::Upstream(error_message(v)));
        }
    }
}

/// A provider's response format: which values it wants and what they mean.
pub(crate) trait Format: Send {
    fn paths(&self) -> &'static [(Field, Path)];
    /// One wanted value, in document order.
    fn value(&mut self, field: Field, value: Value, out: &mut Outcome);
    /// An SSE event ended; all its values were given.
    fn event_end(&mut self, _out: &mut Outcome) {}
    /// SSE `data: [DONE]`.
    fn done_marker(&mut self, _out: &mut Outcome) {}
    /// One checked AWS event-stream frame.
    fn frame(&mut self, _frame: Frame, _out: &mut Outcome) {}
    /// One response header (lower-case name).
    fn header(&mut self, _name: &str, _value: &[u8]) {}
    /// The usage as of now.
    fn usage(&self) -> Option<Usage>;
}

/// Formats that cost nothing (`count_tokens`): zero usage, whatever the body says.
struct Free;

impl Format for Free {
    fn paths(&self) -> &'static [(Field, Path)] {
        &[(Field::Error, &["error"])]
    }
    fn value(&mut self, field: Field, value: Value, out: &mut Outcome) {
        if field == Field::Error {
            out.upstream_error(&value);
        }
    }
    fn usage(&self) -> Option<Usage> {
        Some(Usage::default())
    }
}

fn format_for(api: ApiFormat) -> Box<dyn Format> {
    match api {
        ApiFormat::OpenaiChat(d) => Box::new(openai::OpenaiFormat::new(openai::Api::Chat, d)),
        ApiFormat::OpenaiResponses(d) => {
            Box::new(openai::OpenaiFormat::new(openai::Api::Responses, d))
        }
        ApiFormat::OpenaiEmbeddings(d) => {
            Box::new(openai::OpenaiFormat::new(openai::Api::Embeddings, d))
        }
        ApiFormat::AnthropicMessages => Box::new(anthropic::AnthropicFormat::default()),
        ApiFormat::GeminiGenerateContent | ApiFormat::GeminiStreamGenerateContent => {
            Box::new(gemini::GeminiFormat::new(false))
        }
        ApiFormat::GeminiEmbedContent => Box::new(gemini::GeminiFormat::new(true)),
        ApiFormat::BedrockConverse => Box::new(bedrock::ConverseFormat::default()),
        ApiFormat::BedrockConverseStream => Box::new(bedrock::ConverseStreamFormat::default()),
        ApiFormat::BedrockInvoke => Box::new(bedrock::InvokeFormat::default()),
        ApiFormat::BedrockInvokeStream => Box::new(bedrock::InvokeStreamFormat::default()),
        ApiFormat::AnthropicCountTokens
        | ApiFormat::GeminiCountTokens
        | ApiFormat::BedrockCountTokens => Box::new(Free),
    }
}

/// Reads usage from a response body fed in chunks of any size.
///
/// ```
/// use aigw_metering::usage::{ApiFormat, UsageExtractor};
/// let mut x = UsageExtractor::new(ApiFormat::AnthropicMessages, Some("application/json"), None);
/// x.feed(br#"{"type":"message","model":"claude-x","usage":{"input_tokens":3,"#);
/// x.feed(br#""output_tokens":5}}"#);
/// let got = x.finish();
/// assert!(got.complete);
/// assert_eq!(got.usage.unwrap().output, 5);
/// ```
pub struct UsageExtractor {
    decoder: Decoder,
}

/// `content-encoding` undone on the way in; the decoded bytes go to the [`Body`].
enum Decoder {
    Identity(Body),
    Gzip(Box<flate2::write::MultiGzDecoder<Body>>),
    /// `deflate` is zlib-wrapped by the HTTP spec, but some servers send raw deflate: the
    /// first two bytes tell which.
    DeflateUndecided(Body, Vec<u8>),
    Zlib(Box<flate2::write::ZlibDecoder<Body>>),
    RawDeflate(Box<flate2::write::DeflateDecoder<Body>>),
    /// Nothing is read: the encoding is unknown, or decompression failed.
    Stopped(Body),
}

impl UsageExtractor {
    pub fn new(
        format: ApiFormat,
        response_content_type: Option<&str>,
        content_encoding: Option<&str>,
    ) -> Self {
        let mut body = Body::new(format_for(format), response_content_type);
        let encodings: Vec<String> = content_encoding
            .unwrap_or("")
            .split(',')
            .map(|e| e.trim().to_ascii_lowercase())
            .filter(|e| !e.is_empty() && e != "identity")
            .collect();
        let decoder = match encodings.as_slice() {
            [] => Decoder::Identity(body),
            [e] if e == "gzip" || e == "x-gzip" => {
                Decoder::Gzip(Box::new(flate2::write::MultiGzDecoder::new(body)))
            }
            [e] if e == "deflate" => Decoder::DeflateUndecided(body, Vec::new()),
            _ => {
                body.out
                    .error(ExtractError::UnsupportedEncoding(encodings.join(", ")));
                Decoder::Stopped(body)
            }
        };
        UsageExtractor { decoder }
    }

    /// Reads the next piece of the (still encoded) body.
    pub fn feed(&mut self, chunk: &[u8]) {
        let result = match &mut self.decoder {
            Decoder::Identity(body) => {
                body.feed(chunk);
                Ok(())
            }
            // flate2 keeps decoded output until the next write or flush: flush, so usage
            // is seen as soon as its bytes arrive, not one chunk late.
            Decoder::Gzip(d) => write_and_flush(d.as_mut(), chunk).map_err(|e| ("gzip", e)),
            Decoder::Zlib(d) => write_and_flush(d.as_mut(), chunk).map_err(|e| ("deflate", e)),
            Decoder::RawDeflate(d) => {
                write_and_flush(d.as_mut(), chunk).map_err(|e| ("deflate", e))
            }
            Decoder::DeflateUndecided(_, head) => {
                head.extend_from_slice(chunk);
                if head.len() >= 2 {
                    self.decide_deflate();
                }
                Ok(())
            }
            Decoder::Stopped(_) => Ok(()),
        };
        if let Err((encoding, e)) = result {
            self.stop(encoding, e);
        }
    }

    /// Reads response headers; only Bedrock `invoke` reports usage there
    /// (`x-amzn-bedrock-input-token-count`, …). Names are matched case-insensitively.
    pub fn feed_header(&mut self, name: &str, value: &[u8]) {
        self.body_mut()
            .format
            .header(&name.to_ascii_lowercase(), value);
    }

    /// [`feed_header`](Self::feed_header) for several headers.
    pub fn feed_headers(&mut self, headers: &[(&str, &str)]) {
        for (name, value) in headers {
            self.feed_header(name, value.as_bytes());
        }
    }

    /// The usage seen, at the end of the body or when the stream was cut.
    pub fn finish(mut self) -> Extracted {
        if let Decoder::DeflateUndecided(..) = self.decoder {
            self.decide_deflate();
        }
        let flushed = match &mut self.decoder {
            Decoder::Gzip(d) => d.try_finish().map_err(|e| ("gzip", e)),
            Decoder::Zlib(d) => d.try_finish().map_err(|e| ("deflate", e)),
            Decoder::RawDeflate(d) => d.try_finish().map_err(|e| ("deflate", e)),
            _ => Ok(()),
        };
        if let Err((encoding, e)) = flushed {
            self.body_mut().out.error(ExtractError::Decompress {
                encoding,
                reason: e.to_string(),
            });
        }
        self.body_mut().finish()
    }

    /// Picks zlib or raw deflate from the bytes held so far and replays them.
    fn decide_deflate(&mut self) {
        let Decoder::DeflateUndecided(body, head) =
            std::mem::replace(&mut self.decoder, Decoder::Stopped(Body::placeholder()))
        else {
            return;
        };
        if head.is_empty() {
            self.decoder = Decoder::Identity(body);
            return;
        }
        let zlib_header = head.len() >= 2
            && head[0] & 0x0F == 8
            && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0;
        let result = if zlib_header {
            let mut d = Box::new(flate2::write::ZlibDecoder::new(body));
            let r = write_and_flush(d.as_mut(), &head);
            self.decoder = Decoder::Zlib(d);
            r
        } else {
            let mut d = Box::new(flate2::write::DeflateDecoder::new(body));
            let r = write_and_flush(d.as_mut(), &head);
            self.decoder = Decoder::RawDeflate(d);
            r
        };
        if let Err(e) = result {
            self.stop("deflate", e);
        }
    }

    /// A decompression error: the rest of the body is unreadable.
    fn stop(&mut self, encoding: &'static str, e: std::io::Error) {
        let placeholder = Decoder::Stopped(Body::placeholder());
        // The failed decompressor is dropped holding a placeholder body, so whatever it
        // flushes on drop goes nowhere.
        let mut body = match std::mem::replace(&mut self.decoder, placeholder) {
            Decoder::Identity(b) | Decoder::Stopped(b) | Decoder::DeflateUndecided(b, _) => b,
            Decoder::Gzip(mut d) => take_inner(d.get_mut()),
            Decoder::Zlib(mut d) => take_inner(d.get_mut()),
            Decoder::RawDeflate(mut d) => take_inner(d.get_mut()),
        };
        body.out.error(ExtractError::Decompress {
            encoding,
            reason: e.to_string(),
        });
        self.decoder = Decoder::Stopped(body);
    }

    fn body_mut(&mut self) -> &mut Body {
        match &mut self.decoder {
            Decoder::Identity(b) | Decoder::Stopped(b) | Decoder::DeflateUndecided(b, _) => b,
            Decoder::Gzip(d) => d.get_mut(),
            Decoder::Zlib(d) => d.get_mut(),
            Decoder::RawDeflate(d) => d.get_mut(),
        }
    }
}

fn write_and_flush(w: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    w.write_all(bytes)?;
    w.flush()
}

fn take_inner(body: &mut Body) -> Body {
    std::mem::replace(body, Body::placeholder())
}

/// How the decoded body is framed.
enum Framing {
    /// Not known yet: decided by the content type, else by the first byte.
    Undecided,
    Json(JsonScanner<Field>),
    Sse(sse::SseParser, SseEvent),
    EventStream(event_stream::Decoder),
}

/// The SSE event being read: its data goes straight into a JSON scanner.
struct SseEvent {
    scanner: JsonScanner<Field>,
    /// The first bytes of the data, enough to recognize `[DONE]`.
    head: Vec<u8>,
    len: usize,
}

const DONE_MARKER: &[u8] = b"[DONE]";

impl SseEvent {
    fn is_done_marker(&self) -> bool {
        self.len <= 16 && self.head.trim_ascii() == DONE_MARKER
    }

    fn reset(&mut self) {
        self.scanner.reset();
        self.head.clear();
        self.len = 0;
    }
}

/// The decoded body: framing plus the format's reading of it.
struct Body {
    format: Box<dyn Format>,
    framing: Framing,
    /// From the content type, when it says.
    framing_hint: Option<FramingKind>,
    out: Outcome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FramingKind {
    Json,
    Sse,
    EventStream,
}

impl Body {
    fn new(format: Box<dyn Format>, content_type: Option<&str>) -> Self {
        let framing_hint = content_type.and_then(|ct| {
            let mt = media_type(ct);
            match mt.as_str() {
                "text/event-stream" => Some(FramingKind::Sse),
                "application/vnd.amazon.eventstream" => Some(FramingKind::EventStream),
                "application/json" => Some(FramingKind::Json),
                _ if mt.ends_with("+json") => Some(FramingKind::Json),
                _ => None,
            }
        });
        Body {
            format,
            framing: Framing::Undecided,
            framing_hint,
            out: Outcome::default(),
        }
    }

    /// Stands in while a body moves between decoders.
    fn placeholder() -> Self {
        Body::new(Box::new(Free), None)
    }

    fn feed(&mut self, mut bytes: &[u8]) {
        if let Framing::Undecided = self.framing {
            let kind = match self.framing_hint {
                Some(kind) => kind,
                None => {
                    // JSON starts with `{` or `[`; an event-stream frame with 0 (its
                    // length is below 16 MiB); anything else is taken for SSE.
                    bytes = bytes.trim_ascii_start();
                    match bytes.first() {
                        None => return,
                        Some(b'{' | b'[') => FramingKind::Json,
                        Some(0) => FramingKind::EventStream,
                        Some(_) => FramingKind::Sse,
                    }
                }
            };
            let paths = self.format.paths();
            self.framing = match kind {
                FramingKind::Json => Framing::Json(JsonScanner::new(paths)),
                FramingKind::Sse => Framing::Sse(
                    sse::SseParser::new(),
                    SseEvent {
                        scanner: JsonScanner::new(paths),
                        head: Vec::new(),
                        len: 0,
                    },
                ),
                FramingKind::EventStream => Framing::EventStream(event_stream::Decoder::new()),
            };
        }
        let Body {
            format,
            framing,
            out,
            ..
        } = self;
        match framing {
            Framing::Undecided => {}
            Framing::Json(scanner) => {
                scanner.feed(bytes);
                deliver(scanner, format.as_mut(), out, true);
                if scanner.is_done() {
                    out.complete = true;
                }
            }
            Framing::Sse(parser, event) => {
                let mut sink = SseSink {
                    event,
                    format: format.as_mut(),
                    out,
                };
                parser.feed(bytes, &mut sink);
            }
            Framing::EventStream(decoder) => {
                let result = decoder.feed(bytes, |frame| format.frame(frame, out));
                if let Err(e) = result {
                    out.error(e.into());
                }
            }
        }
    }

    fn finish(&mut self) -> Extracted {
        let Body {
            format,
            framing,
            out,
            ..
        } = self;
        match framing {
            Framing::Undecided | Framing::Json(_) => {}
            Framing::Sse(parser, event) => {
                // An event not closed by a blank line is dropped by the SSE rules; we still
                // take it when its data is whole (`[DONE]` or a complete JSON value), since
                // some servers end the stream without the final blank line.
                if parser.pending_has_data() {
                    if event.is_done_marker() {
                        format.done_marker(out);
                    } else if event.scanner.is_done() {
                        deliver(&mut event.scanner, format.as_mut(), out, false);
                        format.event_end(out);
                    }
                }
            }
            Framing::EventStream(decoder) => {
                if let Err(e) = decoder.finish() {
                    out.error(e.into());
                }
            }
        }
        let mut usage = format.usage();
        if let Some(u) = &mut usage {
            if u.model.is_none() {
                u.model = out.model.clone();
            }
            if u.service_tier.is_none() {
                u.service_tier = out.service_tier.clone();
            }
        }
        Extracted {
            usage,
            complete: out.complete,
            error: out.error.clone(),
        }
    }
}

/// Decompressors write the decoded bytes straight into the body's framing.
impl Write for Body {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.feed(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Hands the scanner's captured values to the format. In SSE events, a syntax error only
/// means the data is not JSON (some servers send plain-text data), so only lost values
/// are reported; in a JSON body every error is.
fn deliver(
    scanner: &mut JsonScanner<Field>,
    format: &mut dyn Format,
    out: &mut Outcome,
    body: bool,
) {
    for (field, value) in scanner.take_captured() {
        format.value(field, value, out);
    }
    match scanner.error() {
        Some(ScanError::Syntax { .. } | ScanError::TooDeep { .. }) if !body => {}
        Some(e) => out.error(e.clone().into()),
        None => {}
    }
}

struct SseSink<'a> {
    event: &'a mut SseEvent,
    format: &'a mut dyn Format,
    out: &'a mut Outcome,
}

impl sse::SseSink for SseSink<'_> {
    fn data(&mut self, piece: &[u8]) {
        let e = &mut *self.event;
        if e.head.len() < 16 {
            let room = 16 - e.head.len();
            e.head.extend_from_slice(&piece[..piece.len().min(room)]);
        }
        e.len = e.len.saturating_add(piece.len());
        e.scanner.feed(piece);
    }

    fn dispatch(&mut self, _event_type: &[u8]) {
        if self.event.is_done_marker() {
            self.format.done_marker(self.out);
        } else {
            deliver(&mut self.event.scanner, self.format, self.out, false);
            self.format.event_end(self.out);
        }
        self.event.reset();
    }
}

/// A token count at `key` of a usage object: absent or null is `None`; a non-negative
/// integer (also written as `12.0`) is the count; anything else is malformed.
pub(crate) fn count(obj: Option<&Value>, key: &str) -> Result<Option<u64>, ExtractError> {
    let Some(v) = obj.and_then(|o| o.get(key)) else {
        return Ok(None);
    };
    if v.is_null() {
        return Ok(None);
    }
    if let Some(n) = v.as_u64() {
        return Ok(Some(n));
    }
    match v.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 1.8e19 => Ok(Some(f as u64)),
        _ => Err(ExtractError::BadUsage(format!(
            "`{key}` is not a token count: {v}"
        ))),
    }
}

/// A readable message from a provider's error value (`{"message": …}` in every shape).
pub(crate) fn error_message(v: &Value) -> String {
    let message = v
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| v.as_str());
    let kind = ["type", "status", "code"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str));
    let text = match (kind, message) {
        (Some(k), Some(m)) => format!("{k}: {m}"),
        (None, Some(m)) => m.to_string(),
        _ => v.to_string(),
    };
    text.chars().take(300).collect()
}

#[cfg(test)]
mod tests;
