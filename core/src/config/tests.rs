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
    assert_eq!(
        u("bedrock").authority,
        "bedrock-runtime.us-east-1.amazonaws.com"
    );
    assert_eq!(u("vllm").authority, "vllm.internal:8000");
    assert_eq!(u("vllm").scheme, Scheme::Http);
    assert_eq!(u("vllm").path_prefix, "/v1");
    assert!(c.provider("openai").unwrap().enabled);
}

#[test]
fn errors_name_the_field() {
    let e =
        parse(r#"{"providers":[{"name":"x","type":"openai","api_key_secret":"K","colour":1}]}"#)
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

#[test]
fn bedrock_credentials() {
    let c = parse(
        r#"{"providers":[
        {"name":"b1","type":"bedrock","region":"us-east-1"},
        {"name":"b2","type":"bedrock","region":"eu-west-1","base_url":"http://127.0.0.1:9/",
         "aws":{"access_key_id_secret":"AK","secret_access_key_secret":"SK","session_token_secret":"ST"}},
        {"name":"b3","type":"bedrock","region":"us-west-2",
         "aws":{"assume_role":{"role_arn":"arn:aws:iam::123456789012:role/bedrock","external_id":"ext-1"}}}
    ]}"#,
    )
    .unwrap();
    let aws = |n: &str| c.provider(n).unwrap().aws.clone().unwrap();
    assert_eq!(aws("b1").credentials, AwsCredentials::DefaultChain);
    assert_eq!(
        aws("b2").credentials,
        AwsCredentials::Secrets {
            access_key_id_secret: "AK".into(),
            secret_access_key_secret: "SK".into(),
            session_token_secret: Some("ST".into()),
        }
    );
    assert_eq!(c.provider("b2").unwrap().upstream.authority, "127.0.0.1:9");
    let role = aws("b3").assume_role.unwrap();
    assert_eq!(role.session_name, DEFAULT_ROLE_SESSION_NAME);
    assert_eq!(role.external_id.as_deref(), Some("ext-1"));
    let refs: Vec<&str> = c.secret_refs().iter().map(|(_, r)| *r).collect();
    assert_eq!(refs, ["AK", "SK", "ST"]);

    let e = parse(
        r#"{"providers":[
        {"name":"x","type":"bedrock","region":"us-east-1","aws":{"access_key_id_secret":"AK"}},
        {"name":"y","type":"bedrock","region":"us-east-1","aws":{"assume_role":{"role_arn":"role/x","session_name":"a b"}}},
        {"name":"z","type":"openai","api_key_secret":"K","aws":{}},
        {"name":"w","type":"bedrock","region":"useast1"}
    ]}"#,
    )
    .unwrap_err();
    for want in [
        "providers[0].aws.secret_access_key_secret: is required with access_key_id_secret",
        "providers[1].aws.assume_role.role_arn: 'role/x' is not an IAM role ARN",
        "providers[1].aws.assume_role.session_name: must be 2-64 characters",
        "providers[2].aws: is only valid for type bedrock",
        "providers[3].region: 'useast1' is not an AWS region name",
    ] {
        assert!(e.contains(want), "missing {want:?} in {e}");
    }
}

#[test]
fn oidc_and_access() {
    let c = parse(
        r#"{"providers":[{"name":"o","type":"openai","api_key_secret":"K","access":[{"group":"ml"},{"api_key":"ci"}]},
                         {"name":"a","type":"anthropic","authorization_passthrough":true,"gateway_token_required":false}],
            "api_keys":[{"name":"ci","secret":"CI_KEY","agent":"ci-bot"}],
            "oidc":[{"issuer":"https://idp.example.com/realms/x","audiences":["aigw"]}],
            "default_access":[{"subject":"svc-a"}]}"#,
    )
    .unwrap();
    let o = &c.oidc[0];
    assert_eq!(o.algorithms.len(), ASYMMETRIC_ALGORITHMS.len());
    assert_eq!(o.claims, ClaimNames::default());
    assert_eq!(o.leeway_secs, 30);
    assert_eq!(
        c.provider("o").unwrap().access.as_deref(),
        Some(
            &[
                AccessRule::Group("ml".into()),
                AccessRule::ApiKey("ci".into())
            ][..]
        )
    );
    assert!(!c.provider("a").unwrap().gateway_token_required);
    assert_eq!(c.api_keys[0].agent.as_deref(), Some("ci-bot"));

    let e = parse(
        r#"{"providers":[{"name":"o","type":"openai","api_key_secret":"K","access":[{"api_key":"nope"}],"gateway_token_required":true}],
            "oidc":[{"issuer":"idp","audiences":[],"algorithms":["HS256"]}],
            "default_access":[{"colour":"x"}]}"#,
    )
    .unwrap_err();
    assert!(e.contains("default_access"), "{e}");
    let e = parse(
        r#"{"providers":[{"name":"o","type":"openai","api_key_secret":"K","access":[{"api_key":"nope"}],"gateway_token_required":true}],
            "oidc":[{"issuer":"idp","audiences":[],"algorithms":["HS256"]}]}"#,
    )
    .unwrap_err();
    for want in [
        "providers[0].gateway_token_required: is only valid with authorization_passthrough",
        "oidc[0].issuer: 'idp' is not an http(s) URL",
        "oidc[0].audiences: must list at least one",
        "oidc[0].algorithms: 'HS256' is not allowed",
        "providers[0].access[0].api_key: no API key named 'nope'",
    ] {
        assert!(e.contains(want), "missing {want:?} in {e}");
    }
}

#[test]
fn budgets_and_usd() {
    assert_eq!(parse_usd("10"), Some(10_000_000_000));
    assert_eq!(parse_usd("0.000000001"), Some(1));
    assert_eq!(parse_usd("12.5"), Some(12_500_000_000));
    assert_eq!(parse_usd(".5"), Some(500_000_000));
    for bad in ["", ".", "-1", "1e3", "0.0000000001", "1,5", "abc"] {
        assert_eq!(parse_usd(bad), None, "{bad}");
    }
    let c = parse(
        r#"{"budgets":{"default":{"cap_usd":"1.00","window":"daily","warn_at_percent":80},
                       "agents":{"ci-bot":{"cap_usd":"25","window":"monthly"}}}}"#,
    )
    .unwrap();
    assert_eq!(
        c.budgets.for_agent("ci-bot").unwrap().cap_nanousd,
        25_000_000_000
    );
    assert_eq!(
        c.budgets.for_agent("x").unwrap().window,
        BudgetWindow::Daily
    );
    assert_eq!(c.budgets.default_max_output_tokens, 4096);
    let e =
        parse(r#"{"budgets":{"default":{"cap_usd":"ten","window":"daily","warn_at_percent":0}}}"#)
            .unwrap_err();
    assert!(
        e.contains("budgets.default.cap_usd: 'ten' is not a USD amount"),
        "{e}"
    );
    assert!(
        e.contains("budgets.default.warn_at_percent: must be 1-100"),
        "{e}"
    );
    assert!(parse(r#"{"budgets":{"default":{"cap_usd":"1","window":"hourly"}}}"#).is_err());
}

const POOL_PROVIDERS: &str = r#""providers":[
    {"name":"anthropic","type":"anthropic","api_key_secret":"A"},
    {"name":"openai","type":"openai","api_key_secret":"O","models":["gpt-x"]},
    {"name":"own","type":"anthropic","authorization_passthrough":true}
]"#;

#[test]
fn virtual_models_and_policies() {
    let c = parse(&format!(
        r#"{{{POOL_PROVIDERS},
        "virtual_models":[{{"name":"chat","targets":[
            {{"provider":"anthropic","model":"claude-x"}},
            {{"provider":"openai","model":"gpt-x","priority":1,"weight":3}}]}}],
        "policies":[{{"when":"request.stream","route":"chat"}},{{"when":"true","deny":"no"}}]}}"#
    ))
    .unwrap();
    let v = c.virtual_model("chat").unwrap();
    assert_eq!(v.targets[1].priority, 1);
    assert_eq!(v.targets[1].weight, 3);
    assert_eq!(v.targets[0].weight, 1);
    assert_eq!(
        v.first_byte_timeout_ms,
        unified::DEFAULT_FIRST_BYTE_TIMEOUT_MS
    );
    assert_eq!(v.ejection_ms, unified::DEFAULT_EJECTION_MS);
    assert_eq!(c.policies[0].action, PolicyAction::Route("chat".into()));
    assert_eq!(c.policies[1].action, PolicyAction::Deny("no".into()));
}

#[test]
fn virtual_model_errors_name_the_field() {
    let e = parse(&format!(
        r#"{{{POOL_PROVIDERS},
        "virtual_models":[
            {{"name":"a/b","targets":[{{"provider":"nope","model":"m"}}]}},
            {{"name":"p","targets":[{{"provider":"openai","model":"unlisted","weight":0}}]}},
            {{"name":"q","targets":[{{"provider":"own","model":"m"}}]}},
            {{"name":"q","targets":[]}}],
        "policies":[{{"when":"true","route":"missing"}},{{"when":"true"}}]}}"#
    ))
    .unwrap_err();
    for want in [
        "virtual_models[0].name",
        "virtual_models[0].targets[0].provider: no provider named 'nope'",
        "virtual_models[1].targets[0].model",
        "virtual_models[1].targets[0].weight",
        "virtual_models[2].targets[0].provider",
        "virtual_models[3].name: duplicate",
        "virtual_models[3].targets",
        "policies[0].route: no virtual model named 'missing'",
        "policies[1]: needs exactly one",
    ] {
        assert!(e.contains(want), "missing {want:?} in {e}");
    }
}

#[test]
fn rate_limits() {
    let c = parse(&format!(
        r#"{{{POOL_PROVIDERS},
        "rate_limits":[{{"name":"k","per":"api_key","requests_per_minute":60,"tokens_per_day":1000}},
                       {{"name":"m","provider":"openai","model":"gpt-x","requests_per_second":2}}]}}"#
    ))
    .unwrap();
    assert_eq!(c.rate_limits[0].per, Some(LimitKey::ApiKey));
    assert_eq!(
        c.rate_limits[0].limits,
        [
            (LimitKind::RequestsPerMinute, 60),
            (LimitKind::TokensPerDay, 1000)
        ]
    );
    assert!(c.rate_limits[1].covers_provider("openai"));
    assert!(!c.rate_limits[1].covers_provider("anthropic"));
    let e = parse(&format!(
        r#"{{{POOL_PROVIDERS},
        "rate_limits":[{{"name":"a","provider":"nope","requests_per_day":0}},
                       {{"name":"a","per":"team"}}]}}"#
    ))
    .unwrap_err();
    assert!(e.contains("rate_limits[1].per"), "{e}");
    let e = parse(&format!(
        r#"{{{POOL_PROVIDERS},
        "rate_limits":[{{"name":"a","provider":"nope","requests_per_day":0}},{{"name":"a"}}]}}"#
    ))
    .unwrap_err();
    for want in [
        "rate_limits[0].provider: no provider named 'nope'",
        "rate_limits[0].requests_per_day: must be",
        "rate_limits[1].name: duplicate",
        "rate_limits[1]: needs at least one",
    ] {
        assert!(e.contains(want), "missing {want:?} in {e}");
    }
}

#[test]
fn mcp_servers_and_routes() {
    let c = parse(
        r#"{"api_keys":[{"name":"ops","secret":"OPS"}],"mcp":{
        "servers":[
          {"name":"gh","url":"https://mcp.example/mcp","credential":{"secret":"GH_TOKEN"}},
          {"name":"tix","url":"http://tix:8000/sse","transport":"sse",
           "credential":{"secret":"TIX","header":"X-Api-Key"},
           "allowed_tools":["close"],"tool_access":{"close":[{"api_key":"ops"}]}}],
        "routes":[{"name":"all","mode":"aggregate"}]}}"#,
    )
    .unwrap();
    let m = &c.mcp;
    assert_eq!(m.mode, McpMode::Deferred);
    assert_eq!(m.search_results, mcp::DEFAULT_SEARCH_RESULTS);
    let gh = m.server("gh").unwrap().credential.as_ref().unwrap();
    assert_eq!(
        (gh.header.as_str(), gh.prefix.as_str()),
        ("authorization", "Bearer ")
    );
    let tix = m.server("tix").unwrap();
    assert_eq!(tix.transport, McpTransport::Sse);
    assert_eq!(tix.credential.as_ref().unwrap().header, "x-api-key");
    assert_eq!(tix.credential.as_ref().unwrap().prefix, "");
    assert!(m.route("all").unwrap().includes("tix"));
    let refs: Vec<_> = c
        .secret_refs()
        .into_iter()
        .map(|(f, s)| format!("{f}={s}"))
        .collect();
    assert!(
        refs.contains(&"mcp.servers[1].credential.secret=TIX".to_string()),
        "{refs:?}"
    );
}

#[test]
fn mcp_errors_name_the_field() {
    let e = parse(
        r#"{"mcp":{"servers":[
          {"name":"A_B","url":"ftp://x"},
          {"name":"ok","url":"http://h/mcp","tool_access":{"t":[{"api_key":"nobody"}]},
           "allowed_tools":["u"]}],
        "routes":[{"name":"r","mode":"aggregate","servers":["missing"]}],
        "search_results":0}}"#,
    )
    .unwrap_err();
    for field in [
        "mcp.servers[0].name",
        "mcp.servers[0].url",
        "mcp.servers[1].tool_access.t: names a tool that is not in allowed_tools",
        "mcp.servers[1].tool_access.t[0].api_key",
        "mcp.routes[0].servers[0]: no MCP server named 'missing'",
        "mcp.search_results",
    ] {
        assert!(e.contains(field), "{field} not in {e}");
    }
}

#[test]
fn request_logs_are_off_by_default_and_their_errors_name_the_field() {
    let c = parse(
        r#"{"providers":[{"name":"o","type":"openai","api_key_secret":"K","log_requests":true},
                         {"name":"p","type":"openai","api_key_secret":"K"}]}"#,
    )
    .unwrap();
    assert!(c.provider("o").unwrap().log_requests);
    assert!(!c.provider("p").unwrap().log_requests);
    assert_eq!(c.request_logs, RequestLogConfig::default());
    assert_eq!(
        c.request_logs.patterns.len(),
        request_logs::DEFAULT_PATTERNS.len()
    );

    let e = parse(
        r#"{"request_logs":{"max_body_bytes":0,"queue_bytes":10,
            "redact":{"json_paths":["user"]},
            "retention":{"max_age_hours":0,"interval_secs":0}}}"#,
    )
    .unwrap_err();
    for field in [
        "request_logs.max_body_bytes",
        "request_logs.redact.json_paths[0]: 'user' must be a JSON path starting with '$'",
        "request_logs.retention.max_age_hours",
        "request_logs.retention.interval_secs",
    ] {
        assert!(e.contains(field), "{field} not in {e}");
    }
    let e = parse(r#"{"request_logs":{"redact":{"regexes":[]}}}"#).unwrap_err();
    assert!(e.starts_with("request_logs.redact"), "{e}");
}
