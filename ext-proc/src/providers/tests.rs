use super::*;
use envoy_types::pb::envoy::config::core::v3::HeaderValue;

fn route(kind: ProviderKind, secret: Option<&'static str>, passthrough: bool) -> Route<'static> {
    Route {
        provider: "p",
        kind,
        api_key_secret: secret,
        authorization_passthrough: passthrough,
        gateway_token_optional: false,
        region: None,
    }
}

fn secrets() -> Snapshot {
    Snapshot::from([("KEY".into(), SecretValue::new("sk-up"))])
}

fn set_headers(m: &Mutation) -> Vec<(String, String)> {
    m.0.set_headers
        .iter()
        .map(|h| {
            let h = h.header.as_ref().unwrap();
            assert!(
                h.value.is_empty(),
                "value must stay empty; raw_value carries it"
            );
            (
                h.key.clone(),
                String::from_utf8(h.raw_value.clone()).unwrap(),
            )
        })
        .collect()
}

fn run(r: &Route<'_>, client: &[(&str, &str)]) -> Result<Vec<(String, String)>, ErrorKind> {
    let hm = HeaderMap {
        headers: client
            .iter()
            .map(|(k, v)| HeaderValue {
                key: k.to_string(),
                raw_value: v.as_bytes().to_vec(),
                ..Default::default()
            })
            .collect(),
    };
    let up = Upstream {
        route: r,
        headers: Some(&hm),
    };
    upstream_mutation(&up, &secrets())
        .map(|m| set_headers(&m))
        .map_err(|e| e.kind)
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn each_provider_gets_its_header() {
    assert_eq!(
        run(&route(ProviderKind::Openai, Some("KEY"), false), &[]).unwrap(),
        pairs(&[("authorization", "Bearer sk-up")])
    );
    assert_eq!(
        run(&route(ProviderKind::Google, Some("KEY"), false), &[]).unwrap(),
        pairs(&[("x-goog-api-key", "sk-up")])
    );
    assert_eq!(
        run(&route(ProviderKind::OpenaiCompatible, None, false), &[]).unwrap(),
        pairs(&[])
    );
    assert_eq!(
        run(
            &route(ProviderKind::OpenaiCompatible, Some("KEY"), false),
            &[]
        )
        .unwrap(),
        pairs(&[("authorization", "Bearer sk-up")])
    );
}

#[test]
fn anthropic_version_only_when_absent() {
    let r = route(ProviderKind::Anthropic, Some("KEY"), false);
    assert_eq!(
        run(&r, &[]).unwrap(),
        pairs(&[("x-api-key", "sk-up"), ("anthropic-version", "2023-06-01")])
    );
    assert_eq!(
        run(&r, &[("anthropic-version", "2026-10-21")]).unwrap(),
        pairs(&[("x-api-key", "sk-up")])
    );
    let passthrough = route(ProviderKind::Anthropic, None, true);
    assert_eq!(
        run(&passthrough, &[("anthropic-version", "2026-10-21")]).unwrap(),
        pairs(&[])
    );
}

#[test]
fn missing_secret() {
    assert_eq!(
        run(&route(ProviderKind::Openai, Some("GONE"), false), &[]).unwrap_err(),
        ErrorKind::UpstreamCredentialUnavailable
    );
    assert_eq!(
        run(&route(ProviderKind::Bedrock, None, false), &[]).unwrap(),
        pairs(&[])
    );
}
