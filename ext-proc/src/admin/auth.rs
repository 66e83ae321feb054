//! Who may call the admin API. [`AdminAuth`] is the seam: today a static bearer token
//! ([`BearerToken`]); an OIDC admin-role check (async: it may fetch signing keys) can
//! implement the same trait later. Any `Fn(&HeaderMap) -> Result<(), Denied>` is an
//! [`AdminAuth`] too.

use axum::http::{header, HeaderMap};
use futures_util::future::BoxFuture;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Why a request was refused. Messages never echo the credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("the admin API needs `Authorization: Bearer <admin token>`")]
    Missing,
    #[error("the admin credential is not valid")]
    Invalid,
    /// Authenticated, but without the admin role.
    #[error("{0}")]
    Forbidden(String),
}

pub trait AdminAuth: Send + Sync + 'static {
    fn authorize<'a>(&'a self, headers: &'a HeaderMap) -> BoxFuture<'a, Result<(), Denied>>;
}

impl<F> AdminAuth for F
where
    F: Fn(&HeaderMap) -> Result<(), Denied> + Send + Sync + 'static,
{
    fn authorize<'a>(&'a self, headers: &'a HeaderMap) -> BoxFuture<'a, Result<(), Denied>> {
        let result = self(headers);
        Box::pin(std::future::ready(result))
    }
}

/// A static admin token, compared in constant time. Only its SHA-256 is kept, so the
/// comparison takes the same time whatever the presented token's length.
pub struct BearerToken {
    digest: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the admin token is empty")]
pub struct EmptyToken;

impl BearerToken {
    pub fn new(token: &str) -> Result<Self, EmptyToken> {
        let token = token.trim();
        if token.is_empty() {
            return Err(EmptyToken);
        }
        Ok(Self {
            digest: Sha256::digest(token.as_bytes()).into(),
        })
    }

    pub fn check(&self, headers: &HeaderMap) -> Result<(), Denied> {
        let presented = presented_bearer(headers)?;
        let digest: [u8; 32] = Sha256::digest(presented).into();
        if bool::from(digest.ct_eq(&self.digest)) {
            Ok(())
        } else {
            Err(Denied::Invalid)
        }
    }
}

impl AdminAuth for BearerToken {
    fn authorize<'a>(&'a self, headers: &'a HeaderMap) -> BoxFuture<'a, Result<(), Denied>> {
        Box::pin(std::future::ready(self.check(headers)))
    }
}

/// The token of the one `Authorization: Bearer …` header. Several `Authorization` headers
/// are refused rather than picked from.
pub fn presented_bearer(headers: &HeaderMap) -> Result<&[u8], Denied> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(if headers.contains_key(header::AUTHORIZATION) {
            Denied::Invalid
        } else {
            Denied::Missing
        });
    };
    let value = value.as_bytes().trim_ascii();
    if value.eq_ignore_ascii_case(b"bearer") {
        return Err(Denied::Missing);
    }
    let scheme_len = "bearer ".len();
    if value.len() <= scheme_len || !value[..scheme_len].eq_ignore_ascii_case(b"bearer ") {
        return Err(Denied::Invalid);
    }
    let token = value[scheme_len..].trim_ascii();
    if token.is_empty() {
        return Err(Denied::Missing);
    }
    Ok(token)
}
