//! Who is calling, and whether they may use the provider. One module per method:
//! [`api_key`] (gateway API keys) and [`oidc`] (OpenID access tokens); [`access`] applies the
//! access lists. The resulting [`Principal`] is what usage and budgets are attributed to; it
//! never travels to the upstream.

pub mod access;
pub mod api_key;
pub mod oidc;

use crate::gateway::{Gateway, Live};
use aigw_core::handoff::Route;
use aigw_core::{ErrorKind, GatewayError};
use std::sync::{Arc, OnceLock};

/// How a principal was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    ApiKey,
    Oidc,
    /// Anthropic passthrough without a gateway token, where the provider allows it.
    Anonymous,
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub method: Method,
    /// The API key's name, or the token's `sub` (its client id when it has no `sub`).
    pub subject: String,
    pub issuer: Option<String>,
    /// `azp` or `client_id` of a token.
    pub client_id: Option<String>,
    pub user: Option<String>,
    pub agent: Option<String>,
    pub groups: Vec<String>,
    pub scopes: Vec<String>,
}

impl Principal {
    /// A caller known by method and subject only: no issuer, user, agent, groups or scopes.
    pub fn bare(method: Method, subject: impl Into<String>) -> Self {
        Principal {
            method,
            subject: subject.into(),
            issuer: None,
            client_id: None,
            user: None,
            agent: None,
            groups: Vec::new(),
            scopes: Vec::new(),
        }
    }

    fn anonymous() -> Arc<Self> {
        static ANON: OnceLock<Arc<Principal>> = OnceLock::new();
        Arc::clone(ANON.get_or_init(|| {
            Arc::new(Principal {
                // Records and budgets both key on the agent.
                agent: Some("anonymous".into()),
                ..Principal::bare(Method::Anonymous, "anonymous")
            })
        }))
    }
}

/// Authenticates `credential` (as the filter handed it over) for `route`.
pub async fn authenticate(
    gw: &Gateway,
    live: &Live,
    route: &Route<'_>,
    credential: &str,
) -> Result<Arc<Principal>, GatewayError> {
    if credential.is_empty() && route.gateway_token_optional {
        return Ok(Principal::anonymous());
    }
    authenticate_token(gw, live, credential).await
}

/// Authenticates a gateway token: an OpenID access token or a gateway API key.
pub async fn authenticate_token(
    gw: &Gateway,
    live: &Live,
    credential: &str,
) -> Result<Arc<Principal>, GatewayError> {
    if oidc::looks_like_jwt(credential) && !live.oidc.is_empty() {
        return live.oidc.verify(credential).await;
    }
    gw.api_keys
        .load()
        .authenticate(credential)
        .cloned()
        .ok_or_else(|| {
            GatewayError::new(
                ErrorKind::InvalidCredential,
                "the gateway credential is not valid",
            )
        })
}
