use super::*;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::json;
use std::time::{SystemTime, UNIX_EPOCH};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/oidc");
const ISS: &str = "https://idp.test";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An issuer with the fixture key already loaded (no network).
fn issuer(loaded: bool) -> Issuer {
    let cfg = OidcIssuer {
        // An address nothing listens on: any fetch fails fast.
        issuer: if loaded {
            ISS.into()
        } else {
            "http://127.0.0.1:9".into()
        },
        audiences: vec!["aigw".into()],
        algorithms: aigw_core::config::ASYMMETRIC_ALGORITHMS
            .iter()
            .map(|s| s.to_string())
            .collect(),
        claims: Default::default(),
        leeway_secs: 5,
        jwks_refresh_secs: 300,
    };
    let set: JwkSet = serde_json::from_slice(&fixture("jwks.json")).unwrap();
    let keys = if loaded {
        set.keys
            .iter()
            .map(|j| Key {
                kid: j.common.key_id.clone(),
                kind: KeyKind::Rsa,
                key: DecodingKey::from_jwk(j).unwrap(),
            })
            .collect()
    } else {
        Vec::new()
    };
    Issuer {
        algorithms: cfg
            .algorithms
            .iter()
            .filter_map(|a| Algorithm::from_str(a).ok())
            .collect(),
        cfg,
        http: reqwest::Client::new(),
        keys: ArcSwap::from_pointee(KeySet { keys, loaded }),
        jwks_uri: ArcSwapOption::empty(),
        created: Instant::now(),
        last_on_demand_ms: AtomicU64::new(u64::MAX),
        fetching: tokio::sync::Mutex::new(()),
    }
}

fn claims() -> Value {
    json!({"iss": ISS, "aud": "aigw", "sub": "svc-a", "client_id": "ci", "exp": now() + 300,
           "iat": now(), "scope": "openid llm:invoke", "groups": ["ml"]})
}

fn sign(claims: &Value, kid: Option<&str>) -> String {
    let mut h = Header::new(Algorithm::RS256);
    h.kid = kid.map(String::from);
    encode(
        &h,
        claims,
        &EncodingKey::from_rsa_pem(&fixture("rsa-private.pem")).unwrap(),
    )
    .unwrap()
}

async fn check(i: &Issuer, token: &str) -> Result<Arc<Principal>, GatewayError> {
    let h = jsonwebtoken::decode_header(token).map_err(|_| invalid("malformed"))?;
    i.verify(token, &h).await
}

#[tokio::test]
async fn valid_token_gives_the_principal() {
    let i = issuer(true);
    let p = check(&i, &sign(&claims(), Some("test-rsa-1")))
        .await
        .unwrap();
    assert_eq!(p.method, Method::Oidc);
    assert_eq!(p.subject, "svc-a");
    assert_eq!(p.client_id.as_deref(), Some("ci"));
    assert_eq!(p.user.as_deref(), Some("svc-a"));
    assert_eq!(p.agent.as_deref(), Some("ci"));
    assert_eq!(p.groups, ["ml"]);
    assert_eq!(p.scopes, ["openid", "llm:invoke"]);
    // No kid, one key: unambiguous.
    assert!(check(&i, &sign(&claims(), None)).await.is_ok());
}

#[tokio::test]
async fn refusals() {
    let i = issuer(true);
    let mut c = claims();
    c["exp"] = json!(now() - 60);
    assert_eq!(
        check(&i, &sign(&c, Some("test-rsa-1")))
            .await
            .unwrap_err()
            .message,
        "the token has expired"
    );
    let mut c = claims();
    c["aud"] = json!("other");
    assert!(check(&i, &sign(&c, Some("test-rsa-1")))
        .await
        .unwrap_err()
        .message
        .contains("audience"));
    let mut c = claims();
    c["iss"] = json!("https://evil.test");
    assert!(check(&i, &sign(&c, Some("test-rsa-1")))
        .await
        .unwrap_err()
        .message
        .contains("issuer"));
    let mut c = claims();
    c["nbf"] = json!(now() + 120);
    assert!(check(&i, &sign(&c, Some("test-rsa-1")))
        .await
        .unwrap_err()
        .message
        .contains("not valid yet"));
    let mut c = claims();
    c.as_object_mut().unwrap().remove("aud");
    assert!(check(&i, &sign(&c, Some("test-rsa-1"))).await.is_err());

    // Tampered payload: same signature, different claims.
    let t = sign(&claims(), Some("test-rsa-1"));
    let parts: Vec<&str> = t.split('.').collect();
    let evil = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "admin"}),
        &EncodingKey::from_secret(b"x"),
    )
    .unwrap();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        evil.split('.').nth(1).unwrap(),
        parts[2]
    );
    assert!(check(&i, &forged).await.is_err());
    // Flipped signature byte.
    let mut sig = parts[2].as_bytes().to_vec();
    sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
    let bad = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        String::from_utf8(sig).unwrap()
    );
    assert!(check(&i, &bad).await.is_err());

    // HS256 with the RSA public key as the secret (the classic algorithm confusion).
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("test-rsa-1".into());
    let hs = encode(
        &h,
        &claims(),
        &EncodingKey::from_secret(&fixture("rsa-public.pem")),
    )
    .unwrap();
    assert!(check(&i, &hs)
        .await
        .unwrap_err()
        .message
        .contains("algorithm"));

    // alg: none never even parses as a header.
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", parts[1]);
    assert!(jsonwebtoken::decode_header(&none).is_err());
}

#[tokio::test]
async fn unknown_key_and_unreachable_issuer() {
    let i = issuer(true);
    let e = check(&i, &sign(&claims(), Some("rotated-away")))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::InvalidCredential);
    // A second bogus kid right away does not fetch again (rate limit) and fails the same.
    let started = Instant::now();
    assert!(check(&i, &sign(&claims(), Some("bogus-2"))).await.is_err());
    assert!(started.elapsed() < ON_DEMAND_WAIT);

    let down = issuer(false);
    let mut c = claims();
    c["iss"] = json!("http://127.0.0.1:9");
    let e = check(&down, &sign(&c, Some("test-rsa-1")))
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::IdentityProviderUnavailable);
}

#[test]
fn jwt_shape() {
    assert!(looks_like_jwt("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"));
    assert!(!looks_like_jwt("aigw-demo-key"));
    assert!(!looks_like_jwt("sk-live.abc.def"));
}
