use super::*;

fn ok(p: &str) -> ProxyPath<'_> {
    parse(p).unwrap().unwrap()
}

fn err(p: &str) -> ErrorKind {
    parse(p).unwrap_err().kind
}

#[test]
fn splits_provider_rest_and_query() {
    let p = ok("/llm/v1/providers/openai/chat/completions");
    assert_eq!(
        (p.provider, p.rest, p.query),
        ("openai", "/chat/completions", None)
    );
    let p = ok("/llm/v1/providers/gemini/v1/models/gemini-x:streamGenerateContent?alt=sse");
    assert_eq!(p.provider, "gemini");
    assert_eq!(p.rest, "/v1/models/gemini-x:streamGenerateContent");
    assert_eq!(p.query, Some("alt=sse"));
    let p = ok("/llm/v1/providers/openai");
    assert_eq!((p.provider, p.rest), ("openai", ""));
    let p = ok("/llm/v1/providers/openai?x=1");
    assert_eq!((p.provider, p.rest, p.query), ("openai", "", Some("x=1")));
    // Percent-encoded model ids pass untouched.
    let p = ok("/llm/v1/providers/bedrock/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.x%3A0/converse");
    assert_eq!(
        p.rest,
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.x%3A0/converse"
    );
    // One trailing slash is fine; a dotted file name is not a dot segment.
    ok("/llm/v1/providers/openai/models/");
    ok("/llm/v1/providers/openai/files/a.b..c");
    ok("/llm/v1/providers/openai/...");
}

#[test]
fn not_ours() {
    assert_eq!(parse("/").unwrap(), None);
    assert_eq!(parse("/healthz").unwrap(), None);
    assert_eq!(parse("/llm/v1/providersx/a").unwrap(), None);
    assert_eq!(parse("/LLM/v1/providers/openai").unwrap(), None);
}

#[test]
fn bad_input() {
    for p in [
        "/llm/v1/providers",
        "/llm/v1/providers/",
        "/llm/v1/providers//chat",
        "/llm/v1/providers/OpenAI/chat",
        "/llm/v1/providers/open_ai/chat",
        "/llm/v1/providers/%6fpenai/chat",
        "/llm/v1/providers/openai/../anthropic/v1/messages",
        "/llm/v1/providers/openai/./chat",
        "/llm/v1/providers/openai/%2e%2e/x",
        "/llm/v1/providers/openai/%2E%2e/x",
        "/llm/v1/providers/openai/.%2e/x",
        "/llm/v1/providers/openai/%2e",
        "/llm/v1/providers/openai/chat//completions",
        "/llm/v1/providers/openai/chat/..",
        "/llm/v1/providers/openai/a\\b",
        "/llm/v1/providers/openai/a%5Cb",
        "/llm/v1/providers/openai/a%00b",
        "/llm/v1/providers/openai/a\tb",
        "/llm/v1/providers/openai/a?b=\x01",
        "/llm/v1/providers/openai/a#frag",
    ] {
        assert_eq!(err(p), ErrorKind::InvalidPath, "{p:?}");
    }
    let long = format!("/llm/v1/providers/openai/{}", "a".repeat(16 * 1024));
    assert_eq!(err(&long), ErrorKind::PathTooLong);
    let name64 = format!("/llm/v1/providers/{}/x", "a".repeat(64));
    assert_eq!(err(&name64), ErrorKind::InvalidPath);
}

fn up(base: &str, path: &str) -> String {
    let u = UpstreamUrl::parse(base).unwrap();
    let p = ok(path);
    let mut out = String::new();
    write_upstream_path(&u, p.rest, p.query, &mut out);
    out
}

#[test]
fn upstream_paths() {
    let openai = "https://api.openai.com/v1";
    assert_eq!(
        up(openai, "/llm/v1/providers/o/chat/completions"),
        "/v1/chat/completions"
    );
    // Client configured with {proxy}/v1: not doubled.
    assert_eq!(
        up(openai, "/llm/v1/providers/o/v1/chat/completions"),
        "/v1/chat/completions"
    );
    assert_eq!(up(openai, "/llm/v1/providers/o/v1"), "/v1");
    assert_eq!(up(openai, "/llm/v1/providers/o/v1beta/x"), "/v1/v1beta/x");
    assert_eq!(
        up(openai, "/llm/v1/providers/o/models?limit=2"),
        "/v1/models?limit=2"
    );
    let anthropic = "https://api.anthropic.com";
    assert_eq!(
        up(anthropic, "/llm/v1/providers/a/v1/messages"),
        "/v1/messages"
    );
    assert_eq!(up(anthropic, "/llm/v1/providers/a"), "/");
    assert_eq!(up(anthropic, "/llm/v1/providers/a?q"), "/?q");
    assert_eq!(
        up("http://vllm:8000/v1", "/llm/v1/providers/v/models"),
        "/v1/models"
    );
    assert_eq!(
        up("http://h/base/v1", "/llm/v1/providers/v/v1/models"),
        "/base/v1/models"
    );
    assert_eq!(
        up("http://h/base", "/llm/v1/providers/v/v1/models"),
        "/base/v1/models"
    );
}

#[test]
fn query_param_lifting() {
    assert_eq!(
        take_query_param("alt=sse&key=abc", "key"),
        (Some("abc"), "alt=sse".into())
    );
    assert_eq!(
        take_query_param("key=abc", "key"),
        (Some("abc"), String::new())
    );
    assert_eq!(take_query_param("alt=sse", "key"), (None, "alt=sse".into()));
    assert_eq!(
        take_query_param("keys=1&key=", "key"),
        (Some(""), "keys=1".into())
    );
}
