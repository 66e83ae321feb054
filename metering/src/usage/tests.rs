//! Fixture-driven tests: every fixture is read whole, split at every byte position, and
//! byte by byte, and must give the same result each time.

use super::event_stream::{encode_frame, HeaderValue};
use super::*;
use std::io::Write;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/usage");

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{FIXTURES}/{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

const JSON: Option<&str> = Some("application/json");
const SSE: Option<&str> = Some("text/event-stream; charset=utf-8");
const EVENTSTREAM: Option<&str> = Some("application/vnd.amazon.eventstream");

fn extract_pieces<'a>(
    format: ApiFormat,
    ct: Option<&str>,
    ce: Option<&str>,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> Extracted {
    let mut x = UsageExtractor::new(format, ct, ce);
    for p in pieces {
        x.feed(p);
    }
    x.finish()
}

/// Extracts `body` whole, then split at every position, then byte by byte; all must agree.
fn extract(format: ApiFormat, ct: Option<&str>, ce: Option<&str>, body: &[u8]) -> Extracted {
    let whole = extract_pieces(format, ct, ce, [body]);
    for at in 0..=body.len() {
        let (a, b) = body.split_at(at);
        let split = extract_pieces(format, ct, ce, [a, b]);
        assert_eq!(split, whole, "split at byte {at} differs");
    }
    let bytewise = extract_pieces(format, ct, ce, body.chunks(1));
    assert_eq!(bytewise, whole, "byte-by-byte differs");
    whole
}

fn usage_of(x: &Extracted) -> &Usage {
    x.usage
        .as_ref()
        .unwrap_or_else(|| panic!("no usage in {x:?}"))
}

/// The buckets add up to the provider's own total.
fn assert_total_matches(u: &Usage) {
    assert_eq!(Some(u.total_tokens()), u.provider_total, "{u:?}");
}

fn buckets(u: &Usage) -> [u64; 8] {
    [
        u.input,
        u.cache_read,
        u.cache_write_5m,
        u.cache_write_1h,
        u.cache_write_30m,
        u.cache_write_12h,
        u.output,
        u.reasoning,
    ]
}

const CHAT: ApiFormat = ApiFormat::OpenaiChat(OpenaiDialect::Openai);
const COMPAT_CHAT: ApiFormat = ApiFormat::OpenaiChat(OpenaiDialect::Compatible);
const RESPONSES: ApiFormat = ApiFormat::OpenaiResponses(OpenaiDialect::Openai);

// ---- OpenAI ---------------------------------------------------------------------------

/// prompt 2000 ⊃ cached 1200 + written 300; completion 500 ⊃ reasoning 200.
fn expect_openai_chat(u: &Usage) {
    assert_eq!(buckets(u), [500, 1200, 0, 0, 300, 0, 500, 200]);
    assert_eq!(u.model.as_deref(), Some("gpt-6-luna-2026-08-01"));
    assert_eq!(u.service_tier.as_deref(), Some("default"));
    assert_total_matches(u);
}

#[test]
fn openai_chat_json() {
    let x = extract(CHAT, JSON, None, &fixture("openai/chat.json"));
    assert!(x.complete);
    assert_eq!(x.error, None);
    expect_openai_chat(usage_of(&x));
}

#[test]
fn openai_chat_stream_with_include_usage() {
    let x = extract(CHAT, SSE, None, &fixture("openai/chat_stream.sse"));
    assert!(x.complete);
    assert_eq!(x.error, None);
    expect_openai_chat(usage_of(&x));
}

#[test]
fn openai_chat_stream_without_include_usage_has_no_usage() {
    let x = extract(CHAT, SSE, None, &fixture("openai/chat_stream_no_usage.sse"));
    assert_eq!(x.usage, None);
    assert!(x.complete);
    assert_eq!(x.error, None);
}

#[test]
fn openai_chat_stream_cut_before_usage() {
    let x = extract(CHAT, SSE, None, &fixture("openai/chat_stream_cut.sse"));
    assert_eq!(x.usage, None);
    assert!(!x.complete);
}

#[test]
fn openai_chat_stream_cut_after_usage_keeps_it() {
    let body = fixture("openai/chat_stream.sse");
    let cut = body.len() - "data: [DONE]\n\n".len();
    let x = extract(CHAT, SSE, None, &body[..cut]);
    assert!(!x.complete);
    expect_openai_chat(usage_of(&x));
}

#[test]
fn openai_error_in_stream_is_reported() {
    let x = extract(CHAT, SSE, None, &fixture("openai/chat_stream_error.sse"));
    assert_eq!(x.usage, None);
    assert!(!x.complete);
    assert_eq!(
        x.error,
        Some(ExtractError::Upstream(
            "server_error: The server had an error while processing your request.".into()
        ))
    );
}

#[test]
fn openai_embeddings() {
    let x = extract(
        ApiFormat::OpenaiEmbeddings(OpenaiDialect::Openai),
        JSON,
        None,
        &fixture("openai/embeddings.json"),
    );
    let u = usage_of(&x);
    assert_eq!(buckets(u), [9, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(u.model.as_deref(), Some("text-embedding-4-small"));
    assert_total_matches(u);
}

/// input 300000 ⊃ cached 200000 + written 50000 (20000 at 30 min, 30000 at 12 h).
fn expect_responses(u: &Usage) {
    assert_eq!(
        buckets(u),
        [50_000, 200_000, 0, 0, 20_000, 30_000, 4000, 3000]
    );
    assert_eq!(u.model.as_deref(), Some("gpt-6.2-sol"));
    assert_total_matches(u);
}

#[test]
fn openai_responses_json() {
    let x = extract(RESPONSES, JSON, None, &fixture("openai/responses.json"));
    assert!(x.complete);
    assert_eq!(x.error, None);
    expect_responses(usage_of(&x));
}

#[test]
fn openai_responses_stream_completed() {
    let x = extract(
        RESPONSES,
        SSE,
        None,
        &fixture("openai/responses_stream.sse"),
    );
    assert!(x.complete);
    assert_eq!(x.error, None);
    expect_responses(usage_of(&x));
}

#[test]
fn openai_responses_stream_incomplete_is_terminal() {
    let x = extract(
        RESPONSES,
        SSE,
        None,
        &fixture("openai/responses_stream_incomplete.sse"),
    );
    assert!(x.complete);
    let u = usage_of(&x);
    assert_eq!(buckets(u), [1000, 0, 0, 0, 0, 0, 64, 64]);
    assert_total_matches(u);
}

#[test]
fn openai_responses_stream_failed_and_error_events() {
    let failed = b"event: response.failed\ndata: {\"type\":\"response.failed\",\"response\":{\"status\":\"failed\",\"error\":{\"code\":\"server_error\",\"message\":\"boom\"},\"usage\":{\"input_tokens\":5,\"output_tokens\":0,\"total_tokens\":5}}}\n\n";
    let x = extract(RESPONSES, SSE, None, failed);
    assert!(x.complete);
    assert_eq!(usage_of(&x).input, 5);
    assert_eq!(
        x.error,
        Some(ExtractError::Upstream("server_error: boom".into()))
    );

    let error = b"event: error\ndata: {\"type\":\"error\",\"code\":\"rate_limit_exceeded\",\"message\":\"slow down\",\"sequence_number\":1}\n\n";
    let x = extract(RESPONSES, SSE, None, error);
    assert!(!x.complete);
    assert_eq!(x.error, Some(ExtractError::Upstream("slow down".into())));
}

#[test]
fn openai_usage_without_counts_is_malformed_but_compatible_servers_are_tolerated() {
    let body = fixture("openai-compatible/partial_usage.json");
    let strict = extract(CHAT, JSON, None, &body);
    assert_eq!(strict.usage, None);
    assert!(matches!(strict.error, Some(ExtractError::BadUsage(_))));

    let compat = extract(COMPAT_CHAT, JSON, None, &body);
    assert_eq!(compat.error, None);
    assert_eq!(buckets(usage_of(&compat)), [12, 0, 0, 0, 0, 0, 0, 0]);
}

// ---- OpenAI-compatible ----------------------------------------------------------------

#[test]
fn vllm_continuous_usage_keeps_the_last() {
    let x = extract(
        COMPAT_CHAT,
        SSE,
        None,
        &fixture("openai-compatible/vllm_continuous_usage.sse"),
    );
    assert!(x.complete);
    let u = usage_of(&x);
    assert_eq!(buckets(u), [42, 0, 0, 0, 0, 0, 3, 0]);
    assert_eq!(u.model.as_deref(), Some("meta-llama/Llama-4-8B"));
    assert_total_matches(u);
}

#[test]
fn ollama_chat_json_and_stream() {
    for (name, ct) in [
        ("openai-compatible/ollama_chat.json", JSON),
        ("openai-compatible/ollama_chat_stream.sse", SSE),
    ] {
        let x = extract(COMPAT_CHAT, ct, None, &fixture(name));
        assert!(x.complete, "{name}");
        assert_eq!(x.error, None, "{name}");
        let u = usage_of(&x);
        assert_eq!(buckets(u), [26, 0, 0, 0, 0, 0, 8, 0], "{name}");
        assert_eq!(u.model.as_deref(), Some("llama3.3:8b"));
        assert_total_matches(u);
    }
}

// ---- Anthropic ------------------------------------------------------------------------

/// input 100 + cache writes 3000 (1000 at 5m, 2000 at 1h) + reads 5000, all additional;
/// output 800 ⊃ thinking 300.
fn expect_anthropic(u: &Usage) {
    assert_eq!(buckets(u), [100, 5000, 1000, 2000, 0, 0, 800, 300]);
    assert_eq!(u.model.as_deref(), Some("claude-opus-5-20261001"));
    assert_eq!(u.service_tier.as_deref(), Some("standard"));
    assert_eq!(u.prompt_tokens(), 100 + 3000 + 5000);
}

#[test]
fn anthropic_messages_json() {
    let x = extract(
        ApiFormat::AnthropicMessages,
        JSON,
        None,
        &fixture("anthropic/messages.json"),
    );
    assert!(x.complete);
    assert_eq!(x.error, None);
    expect_anthropic(usage_of(&x));
}

#[test]
fn anthropic_stream_takes_the_last_value_of_each_field() {
    let x = extract(
        ApiFormat::AnthropicMessages,
        SSE,
        None,
        &fixture("anthropic/messages_stream.sse"),
    );
    assert!(x.complete);
    assert_eq!(x.error, None);
    expect_anthropic(usage_of(&x));
}

#[test]
fn anthropic_stream_cut_keeps_message_start_usage() {
    let x = extract(
        ApiFormat::AnthropicMessages,
        SSE,
        None,
        &fixture("anthropic/messages_stream_cut.sse"),
    );
    assert!(!x.complete);
    let u = usage_of(&x);
    assert_eq!(buckets(u), [100, 5000, 1000, 2000, 0, 0, 1, 0]);
    assert_eq!(u.model.as_deref(), Some("claude-opus-5-20261001"));
}

#[test]
fn anthropic_error_event() {
    let x = extract(
        ApiFormat::AnthropicMessages,
        SSE,
        None,
        &fixture("anthropic/stream_error.sse"),
    );
    assert!(!x.complete);
    assert_eq!(
        x.error,
        Some(ExtractError::Upstream(
            "overloaded_error: Overloaded".into()
        ))
    );
    assert_eq!(usage_of(&x).output, 1);
}

#[test]
fn anthropic_cache_writes_without_ttl_split_are_5m() {
    let body = br#"{"type":"message","usage":{"input_tokens":1,"cache_creation_input_tokens":70,"cache_creation":{"ephemeral_1h_input_tokens":20},"output_tokens":2}}"#;
    let x = extract(ApiFormat::AnthropicMessages, JSON, None, body);
    assert_eq!(buckets(usage_of(&x)), [1, 0, 50, 20, 0, 0, 2, 0]);
    let body =
        br#"{"usage":{"input_tokens":1,"cache_creation_input_tokens":70,"output_tokens":2}}"#;
    let x = extract(ApiFormat::AnthropicMessages, JSON, None, body);
    assert_eq!(buckets(usage_of(&x)), [1, 0, 70, 0, 0, 0, 2, 0]);
}

#[test]
fn count_tokens_is_free() {
    for (format, name) in [
        (
            ApiFormat::AnthropicCountTokens,
            "anthropic/count_tokens.json",
        ),
        (ApiFormat::GeminiCountTokens, "gemini/count_tokens.json"),
    ] {
        let x = extract(format, JSON, None, &fixture(name));
        assert!(x.complete);
        assert_eq!(x.usage, Some(Usage::default()), "{name}");
    }
    let x = extract(
        ApiFormat::BedrockCountTokens,
        JSON,
        None,
        br#"{"inputTokens":12}"#,
    );
    assert_eq!(x.usage, Some(Usage::default()));
}

// ---- Gemini ---------------------------------------------------------------------------

/// prompt 10000 ⊃ cached 6000; tool-use prompt 500 → input; candidates 700 + thoughts 1200
/// → output.
fn expect_gemini(u: &Usage) {
    assert_eq!(buckets(u), [4500, 6000, 0, 0, 0, 0, 1900, 1200]);
    assert_eq!(u.model.as_deref(), Some("gemini-3.8-flash"));
    assert_total_matches(u);
}

#[test]
fn gemini_generate_content() {
    let x = extract(
        ApiFormat::GeminiGenerateContent,
        JSON,
        None,
        &fixture("gemini/generate.json"),
    );
    assert!(x.complete);
    assert_eq!(x.error, None);
    expect_gemini(usage_of(&x));
}

#[test]
fn gemini_stream_sse_keeps_the_last_usage() {
    let x = extract(
        ApiFormat::GeminiStreamGenerateContent,
        SSE,
        None,
        &fixture("gemini/stream.sse"),
    );
    assert!(x.complete);
    assert_eq!(x.error, None);
    expect_gemini(usage_of(&x));
}

#[test]
fn gemini_stream_as_json_array() {
    let x = extract(
        ApiFormat::GeminiStreamGenerateContent,
        JSON,
        None,
        &fixture("gemini/stream_array.json"),
    );
    assert!(x.complete);
    assert_eq!(x.error, None);
    expect_gemini(usage_of(&x));
}

#[test]
fn gemini_stream_cut_keeps_the_last_whole_chunk() {
    let x = extract(
        ApiFormat::GeminiStreamGenerateContent,
        SSE,
        None,
        &fixture("gemini/stream_cut.sse"),
    );
    assert!(!x.complete);
    let u = usage_of(&x);
    assert_eq!(buckets(u), [4500, 6000, 0, 0, 0, 0, 1500, 1200]);
    assert_total_matches(u);
}

#[test]
fn gemini_embeddings() {
    let x = extract(
        ApiFormat::GeminiEmbedContent,
        JSON,
        None,
        &fixture("gemini/batch_embed.json"),
    );
    assert!(x.complete);
    assert_eq!(x.usage, None);
    let x = extract(
        ApiFormat::GeminiEmbedContent,
        JSON,
        None,
        &fixture("gemini/embed_with_usage.json"),
    );
    assert_eq!(buckets(usage_of(&x)), [8, 0, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn gemini_error_body() {
    let x = extract(
        ApiFormat::GeminiGenerateContent,
        JSON,
        None,
        &fixture("gemini/error.json"),
    );
    assert_eq!(x.usage, None);
    assert_eq!(
        x.error,
        Some(ExtractError::Upstream(
            "RESOURCE_EXHAUSTED: Resource has been exhausted".into()
        ))
    );
}

// ---- Bedrock --------------------------------------------------------------------------

#[test]
fn bedrock_converse_with_cache_read_and_write() {
    let x = extract(
        ApiFormat::BedrockConverse,
        JSON,
        None,
        &fixture("bedrock/converse.json"),
    );
    assert!(x.complete);
    let u = usage_of(&x);
    assert_eq!(buckets(u), [50, 4000, 500, 1000, 0, 0, 300, 0]);
    assert_total_matches(u);
}

#[test]
fn bedrock_converse_stream_metadata() {
    let x = extract(
        ApiFormat::BedrockConverseStream,
        EVENTSTREAM,
        None,
        &fixture("bedrock/converse_stream.eventstream"),
    );
    assert!(x.complete);
    assert_eq!(x.error, None);
    let u = usage_of(&x);
    assert_eq!(buckets(u), [25, 1000, 500, 0, 0, 0, 12, 0]);
    assert_total_matches(u);
}

#[test]
fn bedrock_converse_stream_cut_before_metadata() {
    let body = fixture("bedrock/converse_stream.eventstream");
    let x = extract(
        ApiFormat::BedrockConverseStream,
        EVENTSTREAM,
        None,
        &body[..body.len() - 10],
    );
    assert_eq!(x.usage, None);
    assert!(!x.complete);
    assert!(matches!(
        x.error,
        Some(ExtractError::EventStream(FrameError::Truncated(_)))
    ));
}

#[test]
fn bedrock_converse_stream_exception() {
    let x = extract(
        ApiFormat::BedrockConverseStream,
        EVENTSTREAM,
        None,
        &fixture("bedrock/converse_stream_exception.eventstream"),
    );
    assert_eq!(x.usage, None);
    assert!(!x.complete);
    assert_eq!(
        x.error,
        Some(ExtractError::Upstream(
            "throttlingException: Too many requests, please wait before trying again.".into()
        ))
    );
}

#[test]
fn bedrock_event_stream_with_a_corrupted_crc() {
    let body = fixture("bedrock/converse_stream.eventstream");
    let first_frame_len = u32::from_be_bytes(body[0..4].try_into().unwrap()) as usize;
    // A payload byte of the second frame: its message CRC fails.
    let mut bad_message = body.clone();
    bad_message[first_frame_len + 40] ^= 0x01;
    let x = extract(
        ApiFormat::BedrockConverseStream,
        EVENTSTREAM,
        None,
        &bad_message,
    );
    assert_eq!(x.usage, None);
    assert!(!x.complete);
    assert!(matches!(
        x.error,
        Some(ExtractError::EventStream(FrameError::MessageCrc { .. }))
    ));
    // The second frame's length: its prelude CRC fails before the length is trusted.
    let mut bad_prelude = body.clone();
    bad_prelude[first_frame_len + 1] ^= 0x40;
    let x = extract(
        ApiFormat::BedrockConverseStream,
        EVENTSTREAM,
        None,
        &bad_prelude,
    );
    assert!(matches!(
        x.error,
        Some(ExtractError::EventStream(FrameError::PreludeCrc { .. }))
    ));
}

#[test]
fn bedrock_invoke_anthropic_body() {
    let x = extract(
        ApiFormat::BedrockInvoke,
        JSON,
        None,
        &fixture("bedrock/invoke_anthropic.json"),
    );
    assert!(x.complete);
    expect_anthropic(usage_of(&x));
}

#[test]
fn bedrock_invoke_usage_from_headers() {
    let body = br#"{"inputTextTokenCount":11,"results":[{"tokenCount":7,"outputText":"hi"}]}"#;
    let mut x = UsageExtractor::new(ApiFormat::BedrockInvoke, JSON, None);
    x.feed_headers(&[
        ("X-Amzn-Bedrock-Input-Token-Count", "11"),
        ("x-amzn-bedrock-output-token-count", "7"),
        ("x-amzn-bedrock-invocation-latency", "120"),
    ]);
    x.feed(body);
    let got = x.finish();
    assert_eq!(buckets(usage_of(&got)), [11, 0, 0, 0, 0, 0, 7, 0]);

    // The body's Anthropic usage, with its TTL split, wins over the headers.
    let mut x = UsageExtractor::new(ApiFormat::BedrockInvoke, JSON, None);
    x.feed_headers(&[
        ("x-amzn-bedrock-input-token-count", "100"),
        ("x-amzn-bedrock-output-token-count", "800"),
        ("x-amzn-bedrock-cache-write-input-token-count", "3000"),
    ]);
    x.feed(&fixture("bedrock/invoke_anthropic.json"));
    expect_anthropic(usage_of(&x.finish()));

    // Headers alone, even when the body cannot be read.
    let mut x = UsageExtractor::new(ApiFormat::BedrockInvoke, JSON, Some("br"));
    x.feed_header("x-amzn-bedrock-input-token-count", b"3");
    x.feed(b"\x0b\x02\x80garbage");
    let got = x.finish();
    assert_eq!(buckets(usage_of(&got)), [3, 0, 0, 0, 0, 0, 0, 0]);
    assert!(matches!(
        got.error,
        Some(ExtractError::UnsupportedEncoding(_))
    ));
}

#[test]
fn bedrock_invoke_stream_anthropic_events() {
    let x = extract(
        ApiFormat::BedrockInvokeStream,
        EVENTSTREAM,
        None,
        &fixture("bedrock/invoke_stream_anthropic.eventstream"),
    );
    assert!(x.complete);
    assert_eq!(x.error, None);
    expect_anthropic(usage_of(&x));
}

#[test]
fn bedrock_invoke_stream_invocation_metrics() {
    let x = extract(
        ApiFormat::BedrockInvokeStream,
        EVENTSTREAM,
        None,
        &fixture("bedrock/invoke_stream_llama.eventstream"),
    );
    assert!(x.complete);
    assert_eq!(x.error, None);
    assert_eq!(buckets(usage_of(&x)), [18, 0, 0, 0, 0, 0, 2, 0]);
}

#[test]
fn event_stream_vectors_from_providers_md() {
    let vector = hex(concat!(
        "00000087 0000004b 87ea2bf3",
        "0b 3a6576656e742d74797065 07 0005 6368756e6b",
        "0d 3a636f6e74656e742d74797065 07 0010 6170706c69636174696f6e2f6a736f6e",
        "0d 3a6d6573736167652d74797065 07 0005 6576656e74",
        "7b226279746573223a2265794a306558426c496a6f696257567a6332466e5a56397a64473977496e303d227d",
        "ba48ab22"
    ));
    let frame = event_stream::parse_frame(&vector).unwrap();
    assert_eq!(frame.header_str(":event-type"), Some("chunk"));
    assert_eq!(frame.header_str(":content-type"), Some("application/json"));
    assert_eq!(frame.header_str(":message-type"), Some("event"));
    let part: Value = serde_json::from_slice(&frame.payload).unwrap();
    let inner = bedrock::base64_decode(part["bytes"].as_str().unwrap()).unwrap();
    assert_eq!(inner, br#"{"type":"message_stop"}"#);
    // Fed in two pieces, as botocore was, through the whole extractor.
    let (a, b) = vector.split_at(50);
    let x = extract_pieces(ApiFormat::BedrockInvokeStream, EVENTSTREAM, None, [a, b]);
    assert!(x.complete);
    assert_eq!(x.error, None);

    let published = hex("0000001d 00000000 fd528c5a 7b27666f6f273a27626172277d c3653936");
    let frame = event_stream::parse_frame(&published).unwrap();
    assert!(frame.headers.is_empty());
    assert_eq!(frame.payload, b"{'foo':'bar'}");
    assert_eq!(encode_frame(&[], b"{'foo':'bar'}"), published);
}

fn hex(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

// ---- Event-stream fixtures: built from their `.frames.json` sources ---------------------

const EVENTSTREAM_FIXTURES: &[&str] = &[
    "bedrock/converse_stream",
    "bedrock/converse_stream_exception",
    "bedrock/invoke_stream_anthropic",
    "bedrock/invoke_stream_llama",
];

/// The frames a `.frames.json` source describes: `headers` (string values) and either a
/// JSON `payload` or an `inner` model event, which becomes `{"bytes": base64(inner)}`.
fn build_eventstream(source: &[u8]) -> Vec<u8> {
    let frames: Vec<Value> = serde_json::from_slice(source).unwrap();
    let mut out = Vec::new();
    for f in frames {
        let headers: Vec<(&str, HeaderValue)> = f["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.as_str(), HeaderValue::String(v.as_str().unwrap().into())))
            .collect();
        let payload = match f.get("inner") {
            Some(inner) => {
                let bytes = base64_encode(&serde_json::to_vec(inner).unwrap());
                serde_json::to_vec(&serde_json::json!({ "bytes": bytes })).unwrap()
            }
            None => serde_json::to_vec(&f["payload"]).unwrap(),
        };
        out.extend(encode_frame(&headers, &payload));
    }
    out
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.len();
        let mut b = [0u8; 3];
        b[..n].copy_from_slice(chunk);
        let v = u32::from_be_bytes([0, b[0], b[1], b[2]]);
        for i in 0..4 {
            if i <= n {
                out.push(ALPHABET[(v >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Set `AIGW_REGENERATE_FIXTURES=1` to rewrite the `.eventstream` files from their sources.
#[test]
fn eventstream_fixtures_match_their_sources() {
    let regenerate = std::env::var_os("AIGW_REGENERATE_FIXTURES").is_some();
    for name in EVENTSTREAM_FIXTURES {
        let built = build_eventstream(&fixture(&format!("{name}.frames.json")));
        let path = format!("{FIXTURES}/{name}.eventstream");
        if regenerate {
            std::fs::write(&path, &built).unwrap();
        }
        assert_eq!(
            std::fs::read(&path).ok().as_deref(),
            Some(built.as_slice()),
            "{path} is stale: run with AIGW_REGENERATE_FIXTURES=1"
        );
    }
}

#[test]
fn base64_round_trips() {
    for len in 0..20 {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
        let text = base64_encode(&bytes);
        assert_eq!(
            bedrock::base64_decode(&text).as_deref(),
            Some(bytes.as_slice())
        );
        assert_eq!(
            bedrock::base64_decode(text.trim_end_matches('=')).as_deref(),
            Some(bytes.as_slice())
        );
    }
    assert_eq!(bedrock::base64_decode("a"), None);
    assert_eq!(bedrock::base64_decode("ab!d"), None);
}

// ---- Encodings and framing ------------------------------------------------------------

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn gzip_body() {
    let body = gzip(&fixture("anthropic/messages_stream.sse"));
    let x = extract(ApiFormat::AnthropicMessages, SSE, Some("gzip"), &body);
    assert!(x.complete);
    assert_eq!(x.error, None);
    expect_anthropic(usage_of(&x));

    let x = extract(
        CHAT,
        JSON,
        Some("GZIP"),
        &gzip(&fixture("openai/chat.json")),
    );
    expect_openai_chat(usage_of(&x));
}

#[test]
fn gzip_cut_mid_way_keeps_what_was_decoded() {
    let plain = fixture("anthropic/messages_stream.sse");
    let body = gzip(&plain);
    let x = extract_pieces(
        ApiFormat::AnthropicMessages,
        SSE,
        Some("gzip"),
        [&body[..body.len() * 3 / 4]],
    );
    assert!(!x.complete);
    assert_eq!(usage_of(&x).input, 100);
    assert!(matches!(
        x.error,
        Some(ExtractError::Decompress {
            encoding: "gzip",
            ..
        })
    ));
}

#[test]
fn corrupt_gzip_is_an_error_not_a_panic() {
    let mut body = gzip(&fixture("openai/chat.json"));
    body[0] = 0;
    let x = extract(CHAT, JSON, Some("gzip"), &body);
    assert_eq!(x.usage, None);
    assert!(matches!(
        x.error,
        Some(ExtractError::Decompress {
            encoding: "gzip",
            ..
        })
    ));
}

#[test]
fn deflate_body_zlib_or_raw() {
    let plain = fixture("gemini/stream.sse");
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(&plain).unwrap();
    let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    raw.write_all(&plain).unwrap();
    for body in [zlib.finish().unwrap(), raw.finish().unwrap()] {
        let x = extract(
            ApiFormat::GeminiStreamGenerateContent,
            SSE,
            Some("deflate"),
            &body,
        );
        assert_eq!(x.error, None);
        expect_gemini(usage_of(&x));
    }
}

#[test]
fn brotli_and_zstd_are_reported_unsupported() {
    for encoding in ["br", "zstd", "gzip, br"] {
        let x = extract_pieces(CHAT, JSON, Some(encoding), [&b"\x1b\x00"[..]]);
        assert_eq!(x.usage, None);
        assert!(!x.complete);
        assert!(
            matches!(&x.error, Some(ExtractError::UnsupportedEncoding(e)) if e.contains(encoding.rsplit(' ').next().unwrap())),
            "{encoding}: {:?}",
            x.error
        );
    }
    let x = extract(CHAT, JSON, Some("identity"), &fixture("openai/chat.json"));
    expect_openai_chat(usage_of(&x));
}

#[test]
fn sse_line_endings_do_not_matter() {
    let lf = fixture("anthropic/messages_stream.sse");
    let text = String::from_utf8(lf).unwrap();
    for ending in ["\r\n", "\r"] {
        let body = text.replace('\n', ending);
        let x = extract(ApiFormat::AnthropicMessages, SSE, None, body.as_bytes());
        assert!(x.complete, "{ending:?}");
        expect_anthropic(usage_of(&x));
    }
}

#[test]
fn framing_is_sniffed_without_a_content_type() {
    let cases: &[(ApiFormat, &str)] = &[
        (CHAT, "openai/chat.json"),
        (CHAT, "openai/chat_stream.sse"),
        (
            ApiFormat::AnthropicMessages,
            "anthropic/messages_stream.sse",
        ),
        (
            ApiFormat::BedrockConverseStream,
            "bedrock/converse_stream.eventstream",
        ),
    ];
    for (format, name) in cases {
        let with_ct = extract_pieces(*format, None, None, [fixture(name).as_slice()]);
        assert!(with_ct.complete, "{name}");
        assert!(with_ct.usage.is_some(), "{name}");
        // Also with an unhelpful content type.
        let other = extract_pieces(
            *format,
            Some("text/plain"),
            None,
            [fixture(name).as_slice()],
        );
        assert_eq!(other, with_ct, "{name}");
    }
}

#[test]
fn sse_event_without_final_blank_line_is_still_read() {
    let body = b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"total_tokens\":7}}\n\ndata: [DONE]";
    let x = extract(CHAT, SSE, None, body);
    assert!(x.complete);
    assert_eq!(usage_of(&x).output, 4);
}

#[test]
fn oversized_usage_value_is_reported() {
    let big = format!(
        "{{\"usage\":{{\"prompt_tokens\":1,\"completion_tokens\":1,\"pad\":\"{}\"}}}}",
        "x".repeat(json_scan::MAX_CAPTURE_BYTES)
    );
    let x = extract_pieces(CHAT, JSON, None, [big.as_bytes()]);
    assert_eq!(x.usage, None);
    assert!(matches!(
        x.error,
        Some(ExtractError::Json(ScanError::ValueTooLarge { .. }))
    ));
}

#[test]
fn large_bodies_are_scanned_without_being_kept() {
    // 8 MiB of generated text before the usage: only the usage is copied out.
    let text = "lorem ipsum \\\"quoted\\\" ".repeat(8 << 20 >> 4);
    let body = format!(
        "{{\"model\":\"gpt-6-luna\",\"choices\":[{{\"message\":{{\"content\":\"{text}\"}}}}],\"usage\":{{\"prompt_tokens\":10,\"completion_tokens\":20,\"total_tokens\":30}}}}"
    );
    let x = extract_pieces(CHAT, JSON, None, body.as_bytes().chunks(16 << 10));
    assert!(x.complete);
    assert_eq!(buckets(usage_of(&x)), [10, 0, 0, 0, 0, 0, 20, 0]);
}

/// Every prefix of every fixture: no panic, and a complete answer only once the end
/// marker is in.
#[test]
fn every_prefix_of_every_fixture_is_safe() {
    // Each case names its end marker; no prefix without its last occurrence is complete.
    let cases: &[(ApiFormat, Option<&str>, &str, &str)] = &[
        (CHAT, SSE, "openai/chat_stream.sse", "[DONE]"),
        (
            RESPONSES,
            SSE,
            "openai/responses_stream.sse",
            "\"response.completed\"",
        ),
        (
            ApiFormat::AnthropicMessages,
            SSE,
            "anthropic/messages_stream.sse",
            "\"message_stop\"",
        ),
        (
            ApiFormat::GeminiStreamGenerateContent,
            SSE,
            "gemini/stream.sse",
            "\"finishReason\"",
        ),
        (
            ApiFormat::GeminiStreamGenerateContent,
            JSON,
            "gemini/stream_array.json",
            "\"finishReason\"",
        ),
        (
            ApiFormat::BedrockConverseStream,
            EVENTSTREAM,
            "bedrock/converse_stream.eventstream",
            ":event-type",
        ),
        (
            ApiFormat::BedrockInvokeStream,
            EVENTSTREAM,
            "bedrock/invoke_stream_anthropic.eventstream",
            ":event-type",
        ),
    ];
    for (format, ct, name, marker) in cases {
        let body = fixture(name);
        let full = extract_pieces(*format, *ct, None, [body.as_slice()]);
        assert!(full.complete, "{name}");
        let marker_at = body
            .windows(marker.len())
            .rposition(|w| w == marker.as_bytes())
            .unwrap();
        let mut was_complete = false;
        for at in 0..body.len() {
            let x = extract_pieces(*format, *ct, None, [&body[..at]]);
            assert!(
                !x.complete || at > marker_at,
                "{name}: complete at {at}, before the marker"
            );
            assert!(
                x.complete || !was_complete,
                "{name}: complete, then not, at {at}"
            );
            was_complete = x.complete;
        }
    }
}

/// A small deterministic generator, so failures reproduce.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_bytes_never_panic() {
    let formats = [
        CHAT,
        COMPAT_CHAT,
        RESPONSES,
        ApiFormat::OpenaiEmbeddings(OpenaiDialect::Openai),
        ApiFormat::AnthropicMessages,
        ApiFormat::AnthropicCountTokens,
        ApiFormat::GeminiGenerateContent,
        ApiFormat::GeminiStreamGenerateContent,
        ApiFormat::GeminiEmbedContent,
        ApiFormat::BedrockConverse,
        ApiFormat::BedrockConverseStream,
        ApiFormat::BedrockInvoke,
        ApiFormat::BedrockInvokeStream,
    ];
    let content_types = [JSON, SSE, EVENTSTREAM, None];
    let encodings = [None, Some("gzip"), Some("deflate")];
    // Random bytes, and fixtures with random bytes flipped (closer to valid input).
    let seeds: Vec<Vec<u8>> = vec![
        fixture("openai/chat_stream.sse"),
        fixture("anthropic/messages.json"),
        fixture("bedrock/invoke_stream_anthropic.eventstream"),
        fixture("gemini/stream_array.json"),
    ];
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    for round in 0..300 {
        let body: Vec<u8> = if round % 2 == 0 {
            let len = (rng.next() % 2048) as usize;
            (0..len).map(|_| rng.next() as u8).collect()
        } else {
            let mut b = seeds[round % seeds.len()].clone();
            for _ in 0..1 + rng.next() % 8 {
                let i = (rng.next() as usize) % b.len();
                b[i] = rng.next() as u8;
            }
            b
        };
        let format = formats[(rng.next() as usize) % formats.len()];
        let ct = content_types[(rng.next() as usize) % content_types.len()];
        let ce = encodings[(rng.next() as usize) % encodings.len()];
        let mut x = UsageExtractor::new(format, ct, ce);
        x.feed_header(
            "x-amzn-bedrock-input-token-count",
            &body[..body.len().min(4)],
        );
        let mut rest = body.as_slice();
        while !rest.is_empty() {
            let n = 1 + (rng.next() as usize) % 97;
            let (piece, tail) = rest.split_at(n.min(rest.len()));
            x.feed(piece);
            rest = tail;
        }
        let _ = x.finish();
    }
}

// ---- detect and requested_model -------------------------------------------------------

#[test]
fn detect_by_provider_and_path() {
    use ProviderKind::*;
    let cases: &[(ProviderKind, &str, &str, Option<ApiFormat>)] = &[
        (Openai, "POST", "/v1/chat/completions", Some(CHAT)),
        (Openai, "POST", "/base/v1/chat/completions?x=1", Some(CHAT)),
        (Openai, "POST", "/v1/completions", Some(CHAT)),
        (Openai, "POST", "/v1/responses", Some(RESPONSES)),
        (Openai, "POST", "/v1/embeddings", Some(ApiFormat::OpenaiEmbeddings(OpenaiDialect::Openai))),
        (Openai, "GET", "/v1/models", None),
        (Openai, "GET", "/v1/responses", None),
        (Openai, "POST", "/v1/messages", None),
        (OpenaiCompatible, "POST", "/v1/chat/completions", Some(COMPAT_CHAT)),
        (OpenaiCompatible, "POST", "/v1/messages", Some(ApiFormat::AnthropicMessages)),
        (Anthropic, "POST", "/v1/messages", Some(ApiFormat::AnthropicMessages)),
        (Anthropic, "POST", "/gw/anthropic/v1/messages?beta=true", Some(ApiFormat::AnthropicMessages)),
        (Anthropic, "POST", "/v1/messages/count_tokens", Some(ApiFormat::AnthropicCountTokens)),
        (Anthropic, "POST", "/v1/messages/batches", None),
        (Google, "POST", "/v1/models/gemini-3.8-flash:generateContent", Some(ApiFormat::GeminiGenerateContent)),
        (Google, "POST", "/v1beta/models/gemini-3.8-flash:streamGenerateContent?alt=sse", Some(ApiFormat::GeminiStreamGenerateContent)),
        (Google, "POST", "/p/v1/models/gemini-x%3AstreamGenerateContent", Some(ApiFormat::GeminiStreamGenerateContent)),
        (Google, "POST", "/v1/models/text-embedding:batchEmbedContents", Some(ApiFormat::GeminiEmbedContent)),
        (Google, "POST", "/v1/models/text-embedding:embedContent", Some(ApiFormat::GeminiEmbedContent)),
        (Google, "POST", "/v1/models/gemini-x:countTokens", Some(ApiFormat::GeminiCountTokens)),
        (Google, "GET", "/v1/models", None),
        (Bedrock, "POST", "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse", Some(ApiFormat::BedrockConverse)),
        (Bedrock, "POST", "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-sonnet-4-20250514-v1%3A0/converse-stream", Some(ApiFormat::BedrockConverseStream)),
        (Bedrock, "POST", "/model/m/invoke", Some(ApiFormat::BedrockInvoke)),
        (Bedrock, "POST", "/base/model/m:0/invoke-with-response-stream", Some(ApiFormat::BedrockInvokeStream)),
        (Bedrock, "POST", "/model/m/count-tokens", Some(ApiFormat::BedrockCountTokens)),
        (Bedrock, "POST", "/model/m/other", None),
    ];
    for (kind, method, path, want) in cases {
        assert_eq!(
            detect(*kind, method, path, None),
            *want,
            "{kind:?} {method} {path}"
        );
    }
    assert_eq!(
        detect(
            Openai,
            "POST",
            "/v1/chat/completions",
            Some("text/html; charset=utf-8")
        ),
        None
    );
    assert_eq!(
        detect(
            Openai,
            "post",
            "/v1/chat/completions",
            Some("application/json")
        ),
        Some(CHAT)
    );
}

#[test]
fn requested_model_from_the_path() {
    use ProviderKind::*;
    let cases: &[(ProviderKind, &str, Option<&str>)] = &[
        (Google, "/v1/models/gemini-3.8-flash:generateContent", Some("gemini-3.8-flash")),
        (Google, "/x/v1beta/models/gemini-3.1-pro-preview%3AstreamGenerateContent?alt=sse", Some("gemini-3.1-pro-preview")),
        (Google, "/v1/tunedModels/my-model:generateContent", Some("my-model")),
        (Bedrock, "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse", Some("anthropic.claude-3-5-sonnet-20240620-v1:0")),
        (Bedrock, "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-sonnet-4-20250514-v1%3A0/converse", Some("arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-20250514-v1:0")),
        (Bedrock, "/model/anthropic.claude-x-v1:0/invoke", Some("anthropic.claude-x-v1:0")),
        (Bedrock, "/model/bad%zz/invoke", Some("bad%zz")),
        (Openai, "/v1/chat/completions", None),
        (Google, "/v1/models", None),
    ];
    for (kind, path, want) in cases {
        assert_eq!(requested_model(*kind, path).as_deref(), *want, "{path}");
    }
}
