use super::*;
use crate::secrets::SecretSources;

async fn gateway(extra: serde_json::Value) -> (Arc<Gateway>, tempfile::TempDir) {
    let mut config = serde_json::json!({
        "providers": [
            {"name": "oa", "type": "openai", "api_key_secret": "UP_KEY"},
            {"name": "ant", "type": "anthropic", "api_key_secret": "UP_KEY"},
            {"name": "local", "type": "openai-compatible", "base_url": "http://127.0.0.1:1/v1"},
            {"name": "listed", "type": "openai", "api_key_secret": "UP_KEY", "models": [{"name": "gpt-4o"}]},
            {"name": "own", "type": "anthropic", "authorization_passthrough": true},
            {"name": "aws", "type": "bedrock", "region": "us-east-1",
             "aws": {"access_key_id_secret": "AWS_ID", "secret_access_key_secret": "AWS_SECRET"}},
            {"name": "closed", "type": "openai", "api_key_secret": "UP_KEY", "access": [{"api_key": "capped"}]},
        ],
        "api_keys": [
            {"name": "app", "secret": "GW_APP", "user": "alice"},
            {"name": "capped", "secret": "GW_CAPPED"},
        ],
        "budgets": {"agents": {"capped": {"cap_usd": "1", "window": "daily"}}},
    });
    for (k, v) in extra.as_object().unwrap() {
        config[k] = v.clone();
    }
    let config =
        crate::config_file::from_text(std::path::Path::new("test.json"), &config.to_string())
            .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [
        ("UP_KEY", "sk-upstream"),
        ("GW_APP", "gw-app-key"),
        ("GW_CAPPED", "gw-capped-key"),
        ("AWS_ID", "AKIAEXAMPLEEXAMPLE12"),
        ("AWS_SECRET", "aws-secret"),
    ] {
        std::fs::write(dir.path().join(name), value).unwrap();
    }
    let sources = SecretSources {
        dir: Some(dir.path().to_path_buf()),
        env: false,
    };
    (
        Arc::new(Gateway::start(config, sources).await.unwrap()),
        dir,
    )
}

#[tokio::test]
async fn lists_static_key_providers_and_unbudgeted_keys_only() {
    let (gw, _dir) = gateway(serde_json::json!({})).await;
    let s = snapshot(&gw);
    let names: Vec<&str> = s.providers.iter().map(|p| p.name.as_str()).collect();
    // Not: a model list, passthrough, Bedrock (SigV4).
    assert_eq!(names, ["oa", "ant", "local", "closed"]);
    let oa = &s.providers[0];
    assert_eq!(
        oa.set_headers,
        [(
            "authorization".to_string(),
            "Bearer sk-upstream".to_string()
        )]
    );
    let ant = &s.providers[1];
    assert_eq!(
        ant.set_headers,
        [("x-api-key".to_string(), "sk-upstream".to_string())]
    );
    assert_eq!(
        ant.default_headers,
        [("anthropic-version".to_string(), "2023-06-01".to_string())]
    );
    assert!(
        s.providers[2].set_headers.is_empty(),
        "keyless openai-compatible"
    );

    // `capped` has a budget: it needs reservations, so it is not listed at all.
    assert_eq!(s.keys.len(), 1);
    let k = &s.keys[0];
    assert_eq!(k.subject, "app");
    assert_eq!(k.user.as_deref(), Some("alice"));
    assert_eq!(k.sha256, hex::encode(&Sha256::digest(b"gw-app-key")));
    assert_eq!(
        k.providers,
        ["oa", "ant", "local"],
        "access to 'closed' is refused"
    );
    assert!(!serde_json::to_string(&s).unwrap().contains("gw-app-key"));
}

#[tokio::test]
async fn the_version_follows_the_content_and_the_switch_empties_it() {
    let (gw, _dir) = gateway(serde_json::json!({})).await;
    let (a, b) = (snapshot(&gw), snapshot(&gw));
    assert_eq!(a.version, b.version);
    assert_eq!(a.version.len(), 16);
    let (off, _dir2) = gateway(serde_json::json!({"fast_path": false})).await;
    let s = snapshot(&off);
    assert!(s.providers.is_empty() && s.keys.is_empty());
    assert_ne!(s.version, a.version);
}

#[tokio::test]
async fn ingest_prices_and_counts_lines() {
    let (gw, _dir) = gateway(serde_json::json!({})).await;
    let line = serde_json::json!({
        "time_ms": 1, "request_id": "r1", "provider": "oa", "provider_type": "openai",
        "model_requested": "gpt-6-luna", "model_answered": "gpt-6-luna",
        "principal": "app", "user": "alice", "agent": "app", "api_path": "/v1/chat/completions",
        "status": 200, "streamed": false,
        "usage": {"input": 10, "cache_read": 0, "cache_write_5m": 0, "cache_write_1h": 0,
                  "cache_write_30m": 0, "cache_write_12h": 0, "output": 5, "reasoning": 0,
                  "model": "gpt-6-luna", "service_tier": null, "provider_total": 15},
        "usage_reported": true, "cost_nanousd": null, "unpriced_reason": null,
        "latency_ms": 3, "ttfb_ms": 2, "conversation_id": null, "outcome": "complete"
    });
    let mut r: UsageRecord = serde_json::from_value(line.clone()).unwrap();
    r.price(|p, k, m, u| gw.live().price(p, k, m, u));
    assert!(r.cost_nanousd.is_some_and(|c| c > 0), "{r:?}");

    let mut body = serde_json::to_vec(&line).unwrap();
    body.extend_from_slice(b"\n{\"not\": \"a record\"}\n\n");
    let mut bad_type = line.clone();
    bad_type["provider_type"] = "nonsense".into();
    body.extend(serde_json::to_vec(&bad_type).unwrap());
    assert_eq!(
        ingest(&gw, &body),
        Ingested {
            stored: 1,
            refused: 2
        }
    );
}
