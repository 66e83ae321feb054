use super::*;

fn ok(body: &[u8], chat: bool) -> BodyFacts {
    read(body, chat).unwrap()
}

#[test]
fn facts() {
    let f = ok(
        br#"{"model":"gpt-x","stream":true,"max_tokens":50,"n":3,"messages":[]}"#,
        true,
    );
    assert_eq!(f.model.as_deref(), Some("gpt-x"));
    assert!(f.stream);
    assert_eq!(f.max_output_tokens, Some(50));
    assert_eq!(f.choices, 3);
    assert_eq!(
        f.rewritten.as_deref(),
        Some(&br#"{"stream_options":{"include_usage":true},"model":"gpt-x","stream":true,"max_tokens":50,"n":3,"messages":[]}"#[..])
    );
    let g = ok(
        br#"{"contents":[],"generationConfig":{"maxOutputTokens":7,"candidateCount":2}}"#,
        false,
    );
    assert_eq!((g.max_output_tokens, g.choices), (Some(7), 2));
    let g = ok(
        br#"{"contents":[],"generation_config":{"max_output_tokens":8}}"#,
        false,
    );
    assert_eq!((g.max_output_tokens, g.choices), (Some(8), 1));
    let b = ok(
        br#"{"messages":[],"inferenceConfig":{"maxTokens":9}}"#,
        false,
    );
    assert_eq!(b.max_output_tokens, Some(9));
}

#[test]
fn injects_only_when_needed() {
    assert!(ok(br#"{"model":"m","stream":false}"#, true)
        .rewritten
        .is_none());
    assert!(ok(br#"{"model":"m","stream":true}"#, false)
        .rewritten
        .is_none());
    assert!(ok(
        br#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#,
        true
    )
    .rewritten
    .is_none());
    for opts in [r#"{"include_usage":false}"#, "null"] {
        let body = format!(r#"{{"model":"m","stream":true,"stream_options":{opts}}}"#);
        let r = ok(body.as_bytes(), true).rewritten.unwrap();
        let v: Value = serde_json::from_slice(&r).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true, "{opts}");
    }
}

#[test]
fn unreadable_bodies_are_not_silently_unchecked() {
    assert!(read(b"not json", true).is_err());
    assert!(read(br#"{"model":"a","model":"b"}"#, true).is_err());
    assert!(read(br#"{"model":123}"#, true).is_err());
}

const STREAM: &str = "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n\
data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n\
data: [DONE]\n\n";

#[test]
fn usage_chunk_is_removed_whatever_the_chunking() {
    let want =
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\ndata: [DONE]\n\n";
    let bytes = STREAM.as_bytes();
    for split in 0..=bytes.len() {
        let mut f = UsageChunkFilter::default();
        let mut out = sent(&mut f, &bytes[..split], false);
        out.extend(sent(&mut f, &bytes[split..], true));
        assert_eq!(String::from_utf8(out).unwrap(), want, "split at {split}");
    }
    // Byte by byte, CRLF line endings.
    let crlf = STREAM.replace('\n', "\r\n");
    let mut f = UsageChunkFilter::default();
    let mut out = Vec::new();
    for (i, b) in crlf.as_bytes().iter().enumerate() {
        out.extend(sent(&mut f, &[*b], i + 1 == crlf.len()));
    }
    assert_eq!(String::from_utf8(out).unwrap(), want.replace('\n', "\r\n"));
}

#[test]
fn complete_events_are_not_held_back() {
    let mut f = UsageChunkFilter::default();
    let first = "data: {\"choices\":[{\"delta\":{}}]}\n\n";
    assert_eq!(
        f.filter(first.as_bytes(), false),
        None,
        "passed as it is, no copy"
    );
    assert_eq!(f.filter(b"data: {\"cho", false), Some(Vec::new()));
    assert_eq!(
        sent(&mut f, b"ices\":[]}\n\n", false),
        b"data: {\"choices\":[]}\n\n"
    );
}

/// What goes on to the client for `chunk`.
fn sent(f: &mut UsageChunkFilter, chunk: &[u8], end_of_stream: bool) -> Vec<u8> {
    f.filter(chunk, end_of_stream)
        .unwrap_or_else(|| chunk.to_vec())
}

#[test]
fn only_events_with_a_usage_object_are_parsed_for_it() {
    assert!(has_usage_object(
        br#"data: {"choices":[],"usage":{"prompt_tokens":1}}"#
    ));
    assert!(has_usage_object(
        b"data: {\"choices\": [], \"usage\" :\n {\"prompt_tokens\": 1}}"
    ));
    assert!(!has_usage_object(
        br#"data: {"choices":[{"delta":{"content":"usage"}}],"usage":null}"#
    ));
    assert!(!has_usage_object(
        br#"data: {"choices":[{"delta":{"content":"\"usage\" is a word"}}]}"#
    ));
}
