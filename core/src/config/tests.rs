use super::*;

fn parse(json: &str) -> Result<GatewayConfig, String> {
    GatewayConfig::from_json(json).map_err(|e| e.to_string())
}

#[test]
fn defaults_per_type() {
    let c = parse(
        r#"{"providers":[
        {"name":"openai","type":"openai","api_key_secret":"OPENAI_API_KEY"},
        {"name":"anthropic","type":"anthropic","api_key_secret":"ANTHROPIC_API_KEY"},
        {"name":"gemini","type":"google","api_key_secret":"GEMINI_API_KEY"},
        {"name":"bedrock","type":"bedrock","region":"us-east-1"},
        {"name":"vllm","type":"openai-compatible","base_url":"http://vllm.internal:8000/v1/"}
    ]}"#,
    )
    .unwrap();
    let u = |n: &str| c.provider(n).unwrap().upstream.clone();
    assert_eq!(u("openai").authority, "api.openai.com");
    assert_eq!(u("openai").path_prefix, "/v1");
    assert_eq!(u("openai").scheme, Scheme::Https);
    assert_eq!(u("anthropic").authority, "api.anthropic.com");
    assert_eq!(u("anthropic").path_prefix, "");
    assert_eq!(u("gemini").authority, "generativelanguage.googleapis.com");
    assert_eq!(u("bedrock").authority, "bedrock-runtime.us-east-1.amazonaws.com");
    assert_eq!(u("vllm").authority, "vllm.internal:8000");
    assert_eq!(u("vllm").scheme, Scheme::Http);
    assert_eq!(u("vllm").path_prefix, "/v1");
    assert!(c.provider("openai").unwrap().enabled);
}

#[test]
fn errors_name_the_field() {
    let e = parse(r#"{"providers":[{"name":"x","type":"openai","api_key_secret":"K","colour":1}]}"#)
        .unwrap_err();
    assert!(e.starts_with("providers[0]"), "{e}");
    assert!(e.contains("colour"), "{e}");

    let e = parse(r#"{"providers":[{"name":"x","type":"mistral"}]}"#).unwrap_err();
    assert!(e.starts_with("providers[0].type"), "{e}");
}

#[test]
fn every_problem_reported_at_once() {
    let e = parse(
        r#"{"providers":[
        {"name":"Open AI","type":"openai","api_key_secret":"lower"},
        {"name":"vllm","type":"openai-compatible"},
        {"name":"b","type":"bedrock"},
        {"name":"o","type":"openai","authorization_passthrough":true,"api_key_secret":"K"},
        {"name":"o","type":"openai"}
    ]}"#,
    )
    .unwrap_err();
    for want in [
        "providers[0].name: 'Open AI' must match",
        "providers[0].api_key_secret: 'lower' must be UPPER_SNAKE_CASE",
        "providers[1].base_url: is required for type openai-compatible",
        "providers[2].region: is required for type bedrock",
        "providers[3].authorization_passthrough: is only valid for type anthropic",
        "providers[4].name: duplicate provider name 'o'",
        "providers[4].api_key_secret: is required for type openai",
    ] {
        assert!(e.contains(want), "missing {want:?} in {e}");
    }
}

#[test]
fn name_rules() {
    assert!(is_valid_provider_name("openai"));
    assert!(is_valid_provider_name("a-1"));
    assert!(is_valid_provider_name(&"a".repeat(63)));
    assert!(!is_valid_provider_name(&"a".repeat(64)));
    assert!(!is_valid_provider_name(""));
    assert!(!is_valid_provider_name("1a"));
    assert!(!is_valid_provider_name("-a"));
    assert!(!is_valid_provider_name("OpenAI"));
    assert!(!is_valid_provider_name("a_b"));
    assert!(is_valid_secret_ref("OPENAI_API_KEY"));
    assert!(!is_valid_secret_ref("openai"));
    assert!(!is_valid_secret_ref("_X"));
    assert!(!is_valid_secret_ref("../X"));
}

#[test]
fn base_url_rules() {
    for bad in [
        "ftp://x",
        "https://",
        "https://user@host",
        "https://h/a?b=1",
        "https://h/a#f",
        "https://h:99999",
        "https://h:0",
        "https://h//a",
        "https://h/a/../b",
        "https://h/a b",
        "https://[zz]:80",
    ] {
        assert!(UpstreamUrl::parse(bad).is_err(), "{bad} accepted");
    }
    let u = UpstreamUrl::parse("http://[::1]:8000/v1").unwrap();
    assert_eq!(u.authority, "[::1]:8000");
    assert!(u.ends_with_v1());
    let u = UpstreamUrl::parse("https://Api.Example.COM").unwrap();
    assert_eq!(u.authority, "api.example.com");
    assert_eq!(u.path_prefix, "");
}

#[test]
fn passthrough_makes_the_key_optional() {
    parse(r#"{"providers":[{"name":"a","type":"anthropic","authorization_passthrough":true}]}"#)
        .unwrap();
}

#[test]
fn api_keys_and_secret_refs() {
    let c = parse(
        r#"{"providers":[{"name":"o","type":"openai","api_key_secret":"OPENAI_API_KEY"}],
            "api_keys":[{"name":"app","secret":"APP_KEY"}]}"#,
    )
    .unwrap();
    assert_eq!(
        c.secret_refs(),
        vec![
            ("providers[0].api_key_secret".to_string(), "OPENAI_API_KEY"),
            ("api_keys[0].secret".to_string(), "APP_KEY"),
        ]
    );
    let e = parse(r#"{"api_keys":[{"name":"","secret":"x"}]}"#).unwrap_err();
    assert!(e.contains("api_keys[0].name"), "{e}");
    assert!(e.contains("api_keys[0].secret"), "{e}");
}
