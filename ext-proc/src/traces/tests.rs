use super::*;

#[test]
fn a_traceparent_becomes_the_remote_parent() {
    let sc = remote_parent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
    assert_eq!(
        sc.trace_id(),
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap()
    );
    assert_eq!(sc.span_id(), SpanId::from_hex("00f067aa0ba902b7").unwrap());
    assert!(sc.is_sampled() && sc.is_remote());
}

#[test]
fn attributes_follow_the_genai_conventions() {
    let mut r = crate::store::tests::record(1_000, "house", "gpt-4o");
    r.provider_type = "openai-compatible".into();
    r.usage = crate::usage::Usage {
        input: 10,
        cache_read: 5,
        cache_write_5m: 2,
        output: 7,
        ..Default::default()
    };
    r.usage_reported = true;
    r.status = 503;
    r.outcome = Outcome::UpstreamError;
    let a = attributes(&r, "chat", Some("llm.internal:8000"));
    let get = |k: &str| {
        a.iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(get("gen_ai.operation.name").as_deref(), Some("chat"));
    assert_eq!(get("gen_ai.provider.name").as_deref(), Some("house"));
    assert_eq!(get("gen_ai.usage.input_tokens").as_deref(), Some("17"));
    assert_eq!(
        get("gen_ai.usage.cache_read.input_tokens").as_deref(),
        Some("5")
    );
    assert_eq!(
        get("gen_ai.usage.cache_creation.input_tokens").as_deref(),
        Some("2")
    );
    assert_eq!(get("gen_ai.usage.output_tokens").as_deref(), Some("7"));
    assert_eq!(get("server.address").as_deref(), Some("llm.internal:8000"));
    assert_eq!(get("error.type").as_deref(), Some("503"));
    assert_eq!(get("http.response.status_code").as_deref(), Some("503"));
}
