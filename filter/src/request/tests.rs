use super::*;

fn table() -> ProviderTable {
    ProviderTable::from_json(
        r#"{"providers":[
        {"name":"openai","type":"openai","api_key_secret":"OPENAI_API_KEY"},
        {"name":"anthropic","type":"anthropic","api_key_secret":"ANTHROPIC_API_KEY"},
        {"name":"claude-own","type":"anthropic","authorization_passthrough":true},
        {"name":"gemini","type":"google","api_key_secret":"GEMINI_API_KEY"},
        {"name":"bedrock","type":"bedrock","region":"us-east-1"},
        {"name":"off","type":"openai","api_key_secret":"K","enabled":false}
    ]}"#,
    )
    .unwrap()
}

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn forward<'a>(t: &'a ProviderTable, hs: &'a [(String, String)]) -> Forward<'a> {
    match Request::route(t, hs) {
        Decision::Forward(f) => f,
        other => panic!("expected forward, got {other:?}"),
    }
}

fn reply(t: &ProviderTable, hs: &[(String, String)]) -> ErrorKind {
    match Request::route(t, hs) {
        Decision::Reply(e) => e.kind,
        other => panic!("expected reply, got {other:?}"),
    }
}

#[test]
fn openai_chat() {
    let t = table();
    let hs = h(&[
        (":path", "/llm/v1/providers/openai/chat/completions"),
        (":authority", "gw"),
        ("authorization", "Bearer gw-key"),
    ]);
    let f = forward(&t, &hs);
    assert_eq!(f.path, "/v1/chat/completions");
    assert_eq!(f.provider.config.upstream.authority, "api.openai.com");
    assert_eq!(f.credential, "gw-key");
    assert_eq!(f.removed_headers().collect::<Vec<_>>(), ["authorization"]);
}

#[test]
fn google_query_key_is_lifted() {
    let t = table();
    let hs = h(&[(
        ":path",
        "/llm/v1/providers/gemini/v1/models/g:streamGenerateContent?alt=sse&key=gw-key",
    )]);
    let f = forward(&t, &hs);
    assert_eq!(f.path, "/v1/models/g:streamGenerateContent?alt=sse");
    assert_eq!(f.credential, "gw-key");
}

#[test]
fn key_param_stays_for_other_providers() {
    let t = table();
    let hs = h(&[
        (":path", "/llm/v1/providers/openai/models?key=x"),
        ("authorization", "Bearer gw"),
    ]);
    assert_eq!(forward(&t, &hs).path, "/v1/models?key=x");
}

#[test]
fn passthrough_keeps_authorization() {
    let t = table();
    let hs = h(&[
        (":path", "/llm/v1/providers/claude-own/v1/messages"),
        ("authorization", "Bearer sk-ant-own"),
        ("x-gateway-token", "gw"),
    ]);
    let f = forward(&t, &hs);
    assert_eq!(f.credential, "gw");
    assert_eq!(f.removed_headers().collect::<Vec<_>>(), ["x-gateway-token"]);
}

#[test]
fn bedrock_drops_client_signing_headers() {
    let t = table();
    let hs = h(&[
        (":method", "POST"),
        (":path", "/llm/v1/providers/bedrock/model/m%3A0/converse"),
        ("authorization", "Bearer gw"),
        ("x-amz-date", "20260101T000000Z"),
        ("x-amz-security-token", "t"),
    ]);
    let f = forward(&t, &hs);
    assert_eq!(f.path, "/model/m%3A0/converse");
    assert_eq!(
        f.removed_headers().collect::<Vec<_>>(),
        ["authorization", "x-amz-date", "x-amz-security-token"]
    );
}

#[test]
fn errors() {
    let t = table();
    let cases: &[(&[(&str, &str)], ErrorKind)] = &[
        (
            &[
                (":path", "/llm/v1/providers/nope/x"),
                ("authorization", "Bearer a"),
            ],
            ErrorKind::UnknownProvider,
        ),
        (
            &[
                (":path", "/llm/v1/providers/off/x"),
                ("authorization", "Bearer a"),
            ],
            ErrorKind::ProviderDisabled,
        ),
        (
            &[
                (":path", "/llm/v1/providers/openai/../x"),
                ("authorization", "Bearer a"),
            ],
            ErrorKind::InvalidPath,
        ),
        (
            &[(":path", "/llm/v1/providers/openai/x")],
            ErrorKind::MissingCredential,
        ),
        (
            &[
                (":path", "/llm/v1/providers/openai/x"),
                ("x-aigw-upstream", "http"),
            ],
            ErrorKind::InternalHeader,
        ),
        (
            &[(":path", "/healthz"), ("X-AIGW-Upstream", "http")],
            ErrorKind::InternalHeader,
        ),
        (
            &[
                (":path", "/llm/v1/providers/openai/x"),
                ("authorization", "Bearer a"),
                ("x-api-key", "b"),
            ],
            ErrorKind::AmbiguousCredentials,
        ),
    ];
    for (hs, want) in cases {
        assert_eq!(reply(&t, &h(hs)), *want, "{hs:?}");
    }
}

#[test]
fn other_paths_pass() {
    let t = table();
    assert_eq!(
        Request::route(&t, &h(&[(":path", "/healthz")])),
        Decision::Pass
    );
}

#[test]
fn bedrock_paths_are_checked() {
    let t = table();
    let hs = h(&[
        (":path", "/llm/v1/providers/bedrock/model/m/delete"),
        ("authorization", "Bearer gw"),
    ]);
    assert_eq!(reply(&t, &hs), ErrorKind::InvalidPath);
}
