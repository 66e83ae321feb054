use super::*;
use aigw_core::GatewayConfig;

fn limiter(rules: &str) -> RateLimiter {
    let json = format!(
        r#"{{"providers":[{{"name":"openai","type":"openai","api_key_secret":"O"}},
                          {{"name":"anthropic","type":"anthropic","api_key_secret":"A"}}],
            "rate_limits":{rules}}}"#
    );
    RateLimiter::new(GatewayConfig::from_json(&json).unwrap().rate_limits)
}

fn key(name: &str) -> Principal {
    Principal::bare(Method::ApiKey, name)
}

fn call<'a>(
    p: &'a Principal,
    provider: &'a str,
    model: &'a str,
    tokens: u64,
    now_ms: i64,
) -> Call<'a> {
    Call {
        principal: p,
        provider,
        model: Some(model),
        max_tokens: tokens,
        now_ms,
    }
}

const T0: i64 = 1_800_000_040_000; // 40 s into a minute

#[test]
fn requests_per_minute_per_key_and_reset() {
    let l = limiter(r#"[{"name":"rpm","per":"api_key","requests_per_minute":2}]"#);
    let (a, b) = (key("a"), key("b"));
    let h = l.admit(&call(&a, "openai", "m", 1, T0)).unwrap();
    assert_eq!(
        h.requests_room,
        Some(Room {
            limit: 2,
            remaining: 1,
            reset_ms: 20_000
        })
    );
    l.admit(&call(&a, "openai", "m", 1, T0)).unwrap();
    let r = l
        .admit(&call(&a, "anthropic", "m", 1, T0 + 500))
        .unwrap_err();
    assert_eq!(
        (r.rule.as_str(), r.kind, r.limit),
        ("rpm", LimitKind::RequestsPerMinute, 2)
    );
    assert_eq!(r.reset_ms, 19_500);
    assert_eq!(r.requests.unwrap().remaining, 0);
    // Another key has its own counter; the next minute starts from zero.
    l.admit(&call(&b, "openai", "m", 1, T0)).unwrap();
    l.admit(&call(&a, "openai", "m", 1, T0 + 20_000)).unwrap();
}

#[test]
fn provider_and_model_scope() {
    let l =
        limiter(r#"[{"name":"luna","provider":"openai","model":"luna","requests_per_second":1}]"#);
    let a = key("a");
    assert!(l.covers_provider("openai") && !l.covers_provider("anthropic"));
    l.admit(&call(&a, "openai", "luna", 1, T0)).unwrap();
    assert!(l.admit(&call(&a, "openai", "luna", 1, T0)).is_err());
    // Other models and providers are not counted (and get no headers).
    let h = l.admit(&call(&a, "openai", "other", 1, T0)).unwrap();
    assert_eq!(h.requests_room, None);
    l.admit(&call(&a, "anthropic", "luna", 1, T0)).unwrap();
}

#[test]
fn tokens_reserve_then_settle() {
    let l = limiter(r#"[{"name":"tpm","tokens_per_minute":1000}]"#);
    let a = key("a");
    let h1 = l.admit(&call(&a, "openai", "m", 600, T0)).unwrap();
    assert_eq!(h1.tokens_room.unwrap().remaining, 400);
    // 600 held: a second call of up to 600 does not fit...
    let r = l.admit(&call(&a, "openai", "m", 600, T0)).unwrap_err();
    assert_eq!(r.kind, LimitKind::TokensPerMinute);
    // ...until the first settles with what it really used.
    h1.settle(50);
    let h2 = l.admit(&call(&a, "openai", "m", 600, T0)).unwrap();
    assert_eq!(h2.tokens_room.unwrap().remaining, 350);
    // Released entirely (upstream error): the room comes back.
    h2.settle(0);
    assert_eq!(
        l.admit(&call(&a, "openai", "m", 1, T0))
            .unwrap()
            .tokens_room
            .unwrap()
            .remaining,
        949
    );
}

#[test]
fn all_or_nothing() {
    let l = limiter(
        r#"[{"name":"many","requests_per_minute":100},{"name":"tight","tokens_per_minute":10}]"#,
    );
    let a = key("a");
    assert_eq!(
        l.admit(&call(&a, "openai", "m", 50, T0)).unwrap_err().rule,
        "tight"
    );
    // The refused call took nothing from `many`.
    let h = l.admit(&call(&a, "openai", "m", 5, T0)).unwrap();
    assert_eq!(h.requests_room.unwrap().remaining, 99);
}

#[test]
fn concurrent_calls_never_pass_the_limit() {
    let l = Arc::new(limiter(r#"[{"name":"rpm","requests_per_minute":100}]"#));
    let admitted: usize = (0..8)
        .map(|_| {
            let l = Arc::clone(&l);
            std::thread::spawn(move || {
                let a = key("a");
                (0..100)
                    .filter(|_| l.admit(&call(&a, "openai", "m", 1, T0)).is_ok())
                    .count()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .sum();
    assert_eq!(admitted, 100);
}

#[test]
fn oidc_callers_are_not_counted_per_api_key() {
    let l = limiter(r#"[{"name":"k","per":"api_key","requests_per_second":1}]"#);
    let token = Principal {
        method: Method::Oidc,
        ..key("sub")
    };
    for _ in 0..3 {
        l.admit(&call(&token, "openai", "m", 1, T0)).unwrap();
    }
}

#[test]
fn reset_texts() {
    assert_eq!(duration_text(20), "20ms");
    assert_eq!(duration_text(1000), "1s");
    assert_eq!(duration_text(19_500), "20s");
    assert_eq!(duration_text(360_000), "6m0s");
    assert_eq!(duration_text(3_723_000), "1h2m3s");
}

#[test]
fn a_reload_keeps_each_rules_counts_by_name() {
    let l = limiter(
        r#"[{"name":"rpm","per":"api_key","requests_per_minute":5},
            {"name":"other","requests_per_minute":100}]"#,
    );
    let a = key("a");
    for _ in 0..3 {
        l.admit(&call(&a, "openai", "m", 1, T0)).unwrap();
    }
    // `rpm` lowered to 3 and moved to the end; `other` gone; `new` added.
    let json = r#"{"providers":[{"name":"openai","type":"openai","api_key_secret":"O"}],
        "rate_limits":[{"name":"new","requests_per_minute":1},
                       {"name":"rpm","per":"api_key","requests_per_minute":3}]}"#;
    let next = l.reconfigured(GatewayConfig::from_json(json).unwrap().rate_limits);
    let r = next.admit(&call(&a, "openai", "m", 1, T0)).unwrap_err();
    assert_eq!((r.rule.as_str(), r.limit), ("rpm", 3), "3 already counted");
    // Calls still under the old limiter count on the same counters.
    l.admit(&call(&a, "openai", "m", 1, T0)).unwrap();
    let h = limiter(r#"[{"name":"rpm","per":"api_key","requests_per_minute":5}]"#);
    assert!(
        h.admit(&call(&a, "openai", "m", 1, T0)).is_ok(),
        "another limiter, other counters"
    );
}
