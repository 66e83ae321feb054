use super::*;

#[test]
fn facts() {
    let f = read(
        br#"{"model":"gpt-x","stream":true,"max_tokens":50,"messages":[]}"#,
        true,
    );
    assert_eq!(f.model.as_deref(), Some("gpt-x"));
    assert!(f.stream);
    assert_eq!(f.max_output_tokens, Some(50));
    assert_eq!(
        f.rewritten.as_deref(),
        Some(&br#"{"stream_options":{"include_usage":true},"model":"gpt-x","stream":true,"max_tokens":50,"messages":[]}"#[..])
    );
    let g = read(
        br#"{"contents":[],"generationConfig":{"maxOutputTokens":7}}"#,
        false,
    );
    assert_eq!(g.max_output_tokens, Some(7));
    let b = read(
        br#"{"messages":[],"inferenceConfig":{"maxTokens":9}}"#,
        false,
    );
    assert_eq!(b.max_output_tokens, Some(9));
}

#[test]
fn injects_only_when_needed() {
    assert!(read(br#"{"model":"m","stream":false}"#, true)
        .rewritten
        .is_none());
    assert!(read(br#"{"model":"m","stream":true}"#, false)
        .rewritten
        .is_none());
    assert!(read(
        br#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#,
        true
    )
    .rewritten
    .is_none());
    let r = read(
        br#"{"model":"m","stream":true,"stream_options":{"include_usage":false}}"#,
        true,
    )
    .rewritten
    .unwrap();
    let v: Value = serde_json::from_slice(&r).unwrap();
    assert_eq!(v["stream_options"]["include_usage"], true);
    assert_eq!(read(b"not json", true), BodyFacts::default());
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
        let mut out = f.filter(&bytes[..split], false);
        out.extend(f.filter(&bytes[split..], true));
        assert_eq!(String::from_utf8(out).unwrap(), want, "split at {split}");
    }
    // Byte by byte, CRLF line endings.
    let crlf = STREAM.replace('\n', "\r\n");
    let mut f = UsageChunkFilter::default();
    let mut out = Vec::new();
    for (i, b) in crlf.as_bytes().iter().enumerate() {
        out.extend(f.filter(&[*b], i + 1 == crlf.len()));
    }
    assert_eq!(String::from_utf8(out).unwrap(), want.replace('\n', "\r\n"));
}

#[test]
fn complete_events_are_not_held_back() {
    let mut f = UsageChunkFilter::default();
    let first = "data: {\"choices\":[{\"delta\":{}}]}\n\n";
    assert_eq!(f.filter(first.as_bytes(), false), first.as_bytes());
    assert!(f.filter(b"data: {\"cho", false).is_empty());
}
