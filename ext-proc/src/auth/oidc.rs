//! OpenID Connect access tokens (JWTs), checked with `jsonwebtoken` against each configured
//! issuer's published keys.
//!
//! - Keys come from discovery (`<issuer>/.well-known/openid-configuration` → `jwks_uri`),
//!   are cached, and are refreshed in the background every `jwks_refresh_secs` (every 5 s
//!   while an issuer has never answered). A request never waits for a fetch when a cached key
//!   fits.
//! - A token signed with an unknown `kid` (key rotation) triggers one fetch, at most one per
//!   issuer every [`ON_DEMAND_MIN_INTERVAL`] (a flood of bogus kids cannot hammer the IdP);
//!   the request waits for it up to [`ON_DEMAND_WAIT`].
//! - Checks: the header's algorithm is on the issuer's asymmetric allowlist and fits the key's
//!   type (so `none` and HMAC-with-the-public-key tokens fail), the signature, `iss` exactly,
//!   `aud` one of the configured, `exp`/`nbf` with the configured leeway.
//!
//! Tokens are never logged; errors say what was wrong, never the token.

use super::{Method, Principal};
use aigw_core::config::OidcIssuer;
use aigw_core::{ErrorKind, GatewayError};
use arc_swap::{ArcSwap, ArcSwapOption};
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const ON_DEMAND_MIN_INTERVAL: Duration = Duration::from_secs(5);
pub const ON_DEMAND_WAIT: Duration = Duration::from_millis(400);
const RETRY_WHILE_UNAVAILABLE: Duration = Duration::from_secs(5);
const HTTP_TIMEOUT: Duration = Duration::from_secs(3);

/// Every configured issuer.
#[derive(Debug, Default)]
pub struct Oidc {
    issuers: Vec<Arc<Issuer>>,
}

/// Three base64url parts, as a JWS compact token has; API keys have none of the dots.
pub fn looks_like_jwt(t: &str) -> bool {
    t.starts_with("eyJ") && t.bytes().filter(|b| *b == b'.').count() == 2
}

impl Oidc {
    /// Builds the verifiers and starts their background key refresh. Does not wait for the
    /// issuers: one that is down at start makes its tokens fail with 503 until it answers.
    pub fn start(issuers: &[OidcIssuer]) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .connect_timeout(Duration::from_secs(1))
            .build()
            .map_err(|e| format!("cannot build the HTTP client for OIDC discovery: {e}"))?;
        let issuers = issuers
            .iter()
            .map(|cfg| {
                let algorithms = cfg
                    .algorithms
                    .iter()
                    .filter_map(|a| Algorithm::from_str(a).ok())
                    .collect();
                let issuer = Arc::new(Issuer {
                    cfg: cfg.clone(),
                    algorithms,
                    http: http.clone(),
                    keys: ArcSwap::from_pointee(KeySet::default()),
                    jwks_uri: ArcSwapOption::empty(),
                    created: Instant::now(),
                    last_on_demand_ms: AtomicU64::new(u64::MAX),
                    fetching: tokio::sync::Mutex::new(()),
                });
                issuer.spawn_refresh();
                issuer
            })
            .collect();
        Ok(Self { issuers })
    }

    pub fn is_empty(&self) -> bool {
        self.issuers.is_empty()
    }

    pub async fn verify(&self, token: &str) -> Result<Arc<Principal>, GatewayError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| invalid("the token is malformed"))?;
        // Which issuer: read `iss` unverified only to pick the keys to verify with.
        let unverified = jsonwebtoken::dangerous::insecure_decode::<IssOnly>(token)
            .map_err(|_| invalid("the token is malformed"))?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| Some(i.cfg.issuer.as_str()) == unverified.claims.iss.as_deref())
            .ok_or_else(|| invalid("the token's issuer is not trusted"))?;
        issuer.verify(token, &header).await
    }
}

#[derive(Deserialize)]
struct IssOnly {
    iss: Option<String>,
}

#[derive(Debug)]
struct Issuer {
    cfg: OidcIssuer,
    algorithms: Vec<Algorithm>,
    http: reqwest::Client,
    keys: ArcSwap<KeySet>,
    jwks_uri: ArcSwapOption<String>,
    created: Instant,
    /// Milliseconds since `created` of the last on-demand fetch (u64::MAX: never).
    last_on_demand_ms: AtomicU64,
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct KeySet {
    keys: Vec<Key>,
    /// The issuer has answered at least once.
    loaded: bool,
}

#[derive(Debug)]
struct Key {
    kid: Option<String>,
    kind: KeyKind,
    key: DecodingKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    Ec,
    Okp,
}

fn kind_for(alg: Algorithm) -> Option<KeyKind> {
    use Algorithm::*;
    match alg {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Some(KeyKind::Rsa),
        ES256 | ES384 => Some(KeyKind::Ec),
        EdDSA => Some(KeyKind::Okp),
        _ => None,
    }
}

impl KeySet {
    fn find(&self, kid: Option<&str>, kind: KeyKind) -> Option<&Key> {
        match kid {
            Some(k) => self
                .keys
                .iter()
                .find(|x| x.kid.as_deref() == Some(k) && x.kind == kind),
            // No kid: only unambiguous when the issuer has one key of that type.
            None => {
                let mut it = self.keys.iter().filter(|x| x.kind == kind);
                let first = it.next()?;
                it.next().is_none().then_some(first)
            }
        }
    }
}

impl Issuer {
    async fn verify(
        &self,
        token: &str,
        header: &jsonwebtoken::Header,
    ) -> Result<Arc<Principal>, GatewayError> {
        if !self.algorithms.contains(&header.alg) {
            return Err(invalid("the token's signature algorithm is not accepted"));
        }
        let kind = kind_for(header.alg)
            .ok_or_else(|| invalid("the token's signature algorithm is not accepted"))?;
        let kid = header.kid.as_deref();
        let mut keys = self.keys.load_full();
        if keys.find(kid, kind).is_none() {
            self.fetch_on_demand().await;
            keys = self.keys.load_full();
        }
        let Some(key) = keys.find(kid, kind) else {
            if !keys.loaded {
                return Err(GatewayError::new(
                    ErrorKind::IdentityProviderUnavailable,
                    "the token's identity provider cannot be reached to get its signing keys",
                ));
            }
            return Err(invalid("the token is signed with an unknown key"));
        };

        let mut v = Validation::new(header.alg);
        v.algorithms = vec![header.alg];
        v.set_issuer(&[&self.cfg.issuer]);
        v.set_audience(&self.cfg.audiences);
        v.leeway = self.cfg.leeway_secs;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &v).map_err(|e| {
                use jsonwebtoken::errors::ErrorKind as K;
                invalid(match e.kind() {
                    K::ExpiredSignature => "the token has expired",
                    K::ImmatureSignature => "the token is not valid yet",
                    K::InvalidAudience => "the token is not meant for this gateway (audience)",
                    K::InvalidIssuer => "the token's issuer is not trusted",
                    K::InvalidSignature => "the token's signature is invalid",
                    K::MissingRequiredClaim(_) => "the token lacks a required claim",
                    _ => "the token is invalid",
                })
            })?;
        Ok(Arc::new(self.principal(&data.claims)))
    }

    fn principal(&self, c: &Map<String, Value>) -> Principal {
        let s = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
        let client_id = s("azp").or_else(|| s("client_id"));
        let subject = s("sub").or_else(|| client_id.clone()).unwrap_or_default();
        let list = |k: &str| -> Vec<String> {
            match c.get(k) {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect(),
                Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
                _ => Vec::new(),
            }
        };
        let mut scopes = list("scope");
        if scopes.is_empty() {
            scopes = list("scp");
        }
        let names = &self.cfg.claims;
        Principal {
            method: Method::Oidc,
            user: s(&names.user).or_else(|| Some(subject.clone())),
            agent: s(&names.agent).or_else(|| client_id.clone()),
            groups: list(&names.groups),
            scopes,
            issuer: Some(self.cfg.issuer.clone()),
            client_id,
            subject,
        }
    }

    /// A fetch for an unknown kid, at most one per `ON_DEMAND_MIN_INTERVAL`, waited for at
    /// most `ON_DEMAND_WAIT`.
    async fn fetch_on_demand(&self) {
        let now = self.created.elapsed().as_millis() as u64;
        let last = self.last_on_demand_ms.load(Ordering::Relaxed);
        let min = ON_DEMAND_MIN_INTERVAL.as_millis() as u64;
        if last != u64::MAX && now.saturating_sub(last) < min {
            return;
        }
        if self
            .last_on_demand_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return; // another request just started one
        }
        let _ = tokio::time::timeout(ON_DEMAND_WAIT, self.fetch()).await;
    }

    /// Discovery (once) and the JWKS; swaps in the new key set.
    async fn fetch(&self) -> Result<(), String> {
        let _one = self.fetching.lock().await;
        let jwks_uri = match self.jwks_uri.load_full() {
            Some(u) => u,
            None => {
                let url = format!(
                    "{}/.well-known/openid-configuration",
                    self.cfg.issuer.trim_end_matches('/')
                );
                let doc: Value = self.get_json(&url).await?;
                if doc.get("issuer").and_then(Value::as_str) != Some(self.cfg.issuer.as_str()) {
                    return Err(format!("discovery at {url} names a different issuer"));
                }
                let uri = doc
                    .get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("discovery at {url} has no jwks_uri"))?;
                let uri = Arc::new(uri.to_string());
                self.jwks_uri.store(Some(Arc::clone(&uri)));
                uri
            }
        };
        let set: JwkSet = self.get_json(&jwks_uri).await?;
        let keys: Vec<Key> = set
            .keys
            .iter()
            .filter(|j| !matches!(j.common.public_key_use, Some(PublicKeyUse::Encryption)))
            .filter_map(|j| {
                let kind = match j.algorithm {
                    AlgorithmParameters::RSA(_) => KeyKind::Rsa,
                    AlgorithmParameters::EllipticCurve(_) => KeyKind::Ec,
                    AlgorithmParameters::OctetKeyPair(_) => KeyKind::Okp,
                    // Symmetric keys are never published for verification; ignore.
                    AlgorithmParameters::OctetKey(_) => return None,
                };
                let key = DecodingKey::from_jwk(j).ok()?;
                Some(Key {
                    kid: j.common.key_id.clone(),
                    kind,
                    key,
                })
            })
            .collect();
        tracing::info!(issuer = %self.cfg.issuer, keys = keys.len(), "OIDC signing keys loaded");
        self.keys.store(Arc::new(KeySet { keys, loaded: true }));
        Ok(())
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("GET {url}: HTTP {}", resp.status()));
        }
        let body = resp.bytes().await.map_err(|e| format!("GET {url}: {e}"))?;
        serde_json::from_slice(&body).map_err(|e| format!("GET {url}: invalid JSON: {e}"))
    }

    /// Refreshes the keys until the issuer is dropped (a reload replaced the OIDC config).
    fn spawn_refresh(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(me) = weak.upgrade() else { return };
                let wait = match me.fetch().await {
                    Ok(()) => Duration::from_secs(me.cfg.jwks_refresh_secs),
                    Err(e) => {
                        tracing::warn!(issuer = %me.cfg.issuer, error = %e, "OIDC keys could not be fetched");
                        if me.keys.load().loaded {
                            Duration::from_secs(me.cfg.jwks_refresh_secs)
                                .min(RETRY_WHILE_UNAVAILABLE * 6)
                        } else {
                            RETRY_WHILE_UNAVAILABLE
                        }
                    }
                };
                drop(me);
                tokio::time::sleep(wait).await;
            }
        });
    }
}

fn invalid(msg: &str) -> GatewayError {
    GatewayError::new(ErrorKind::InvalidCredential, msg)
}

#[cfg(test)]
mod tests;
