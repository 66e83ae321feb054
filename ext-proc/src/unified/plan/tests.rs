use super::*;
use crate::auth::Method;

fn config(json: &str) -> GatewayConfig {
    GatewayConfig::from_json(json).unwrap()
}

fn key(name: &str) -> Principal {
    Principal::bare(Method::ApiKey, name)
}

const CONFIG: &str = r#"{
    "providers":[
        {"name":"a","type":"anthropic","api_key_secret":"A"},
        {"name":"b","type":"openai","api_key_secret":"B"},
        {"name":"c","type":"openai","api_key_secret":"C","access":[{"api_key":"ops"}]},
        {"name":"g","type":"google","api_key_secret":"G","models":["gem-1"]},
        {"name":"off","type":"openai","api_key_secret":"B","enabled":false}
    ],
    "api_keys":[{"name":"app","secret":"APP"},{"name":"ops","secret":"OPS"}],
    "virtual_models":[
        {"name":"chat","ejection_ms":1000,"targets":[
            {"provider":"b","model":"m2","priority":1},
            {"provider":"a","model":"m1"},
            {"provider":"c","model":"m3","priority":2}]},
        {"name":"even","targets":[
            {"provider":"a","model":"x","weight":1},
            {"provider":"b","model":"y","weight":3}]},
        {"name":"disabled","targets":[{"provider":"off","model":"m"}]}
    ]
}"#;

fn labels(p: &Plan<'_>) -> Vec<String> {
    p.candidates.iter().map(Candidate::label).collect()
}

#[test]
fn priority_order_and_access() {
    let c = config(CONFIG);
    let e = Ejections::new(&c);
    let p = plan(&c, &e, "chat", None, Endpoint::Chat, &key("ops"), 0).unwrap();
    assert_eq!(labels(&p), ["a/m1", "b/m2", "c/m3"]);
    assert_eq!(p.first_byte_timeout(), Some(Duration::from_millis(30_000)));
    // `c` is closed to `app`: it is not tried at all.
    let p = plan(&c, &e, "chat", None, Endpoint::Chat, &key("app"), 0).unwrap();
    assert_eq!(labels(&p), ["a/m1", "b/m2"]);
}

#[test]
fn provider_slash_model_is_one_target() {
    let c = config(CONFIG);
    let e = Ejections::new(&c);
    let app = key("app");
    let p = plan(&c, &e, "a/claude-x", None, Endpoint::Chat, &app, 0).unwrap();
    assert_eq!(labels(&p), ["a/claude-x"]);
    assert_eq!(p.first_byte_timeout(), None);
    // Model ids may contain '/' themselves.
    let p = plan(&c, &e, "b/org/model", None, Endpoint::Chat, &app, 0).unwrap();
    assert_eq!(labels(&p), ["b/org/model"]);
    let err = |m| plan(&c, &e, m, None, Endpoint::Chat, &app, 0).unwrap_err();
    assert_eq!(err("nope"), NoPlan::UnknownModel);
    assert_eq!(err("zz/m"), NoPlan::UnknownModel);
    assert_eq!(err("a/"), NoPlan::UnknownModel);
    assert_eq!(
        err("g/gem-2"),
        NoPlan::NotListed {
            provider: "g".into()
        }
    );
    assert_eq!(err("c/m"), NoPlan::Denied);
    assert_eq!(err("off/m"), NoPlan::Disabled);
    assert_eq!(err("disabled"), NoPlan::Disabled);
    assert_eq!(
        plan(&c, &e, "a/m", None, Endpoint::Embeddings, &app, 0).unwrap_err(),
        NoPlan::Unserved
    );
}

#[test]
fn a_policy_route_overrides_the_model() {
    let c = config(CONFIG);
    let e = Ejections::new(&c);
    let p = plan(&c, &e, "a/x", Some("even"), Endpoint::Chat, &key("app"), 0).unwrap();
    assert_eq!(p.pool.unwrap().name, "even");
}

#[test]
fn ejected_targets_go_last_until_their_window_ends() {
    let c = config(CONFIG);
    let e = Ejections::new(&c);
    let app = key("app");
    let p = plan(&c, &e, "chat", None, Endpoint::Chat, &app, 10_000).unwrap();
    p.candidates[0].eject(10_000);
    let p = plan(&c, &e, "chat", None, Endpoint::Chat, &app, 10_500).unwrap();
    assert_eq!(labels(&p), ["b/m2", "a/m1"]);
    // Every target ejected: still tried, in order.
    p.candidates[0].eject(10_500);
    let p = plan(&c, &e, "chat", None, Endpoint::Chat, &app, 10_600).unwrap();
    assert_eq!(labels(&p), ["a/m1", "b/m2"]);
    // The window (1000 ms) passed for a/m1 only.
    let p = plan(&c, &e, "chat", None, Endpoint::Chat, &app, 11_001).unwrap();
    assert_eq!(labels(&p), ["a/m1", "b/m2"]);
    p.candidates[1].restore();
    let p = plan(&c, &e, "chat", None, Endpoint::Chat, &app, 11_001).unwrap();
    assert_eq!(labels(&p), ["a/m1", "b/m2"]);
}

#[test]
fn weights_share_a_priority() {
    let c = config(CONFIG);
    let e = Ejections::new(&c);
    let app = key("app");
    let mut first_b = 0;
    for _ in 0..4000 {
        let p = plan(&c, &e, "even", None, Endpoint::Chat, &app, 0).unwrap();
        assert_eq!(p.candidates.len(), 2);
        if p.candidates[0].provider.name == "b" {
            first_b += 1;
        }
    }
    // Weight 3 of 4: about 3000 of 4000 (binomial sd ≈ 27).
    assert!((2800..3200).contains(&first_b), "{first_b}");
}
