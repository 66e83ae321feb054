//! The gateway credential, accepted where each native SDK sends it:
//! `Authorization: Bearer` (OpenAI, Anthropic ≥ 2.0, boto3 bearer mode), `x-api-key`
//! (Anthropic < 2.0), `x-goog-api-key` (google-genai), `?key=` (other Google clients), and
//! the gateway's own `x-gateway-token`.
//!
//! Exactly one credential may be presented: the same value in several places is accepted
//! (some clients send both), differing values are refused as ambiguous.

use aigw_core::{ErrorKind, GatewayError};

/// Credential-bearing headers the filter always removes before the upstream (except the
/// passed-through ones, see [`CredentialSources::passthrough`]).
pub const CREDENTIAL_HEADERS: [&str; 4] = [
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    aigw_core::handoff::GATEWAY_TOKEN_HEADER,
];

/// The values found on one request, borrowed from its headers.
#[derive(Debug, Default)]
pub struct CredentialSources<'a> {
    pub authorization: Vec<&'a str>,
    pub x_api_key: Vec<&'a str>,
    pub x_goog_api_key: Vec<&'a str>,
    pub gateway_token: Vec<&'a str>,
    pub query_key: Option<&'a str>,
}

impl<'a> CredentialSources<'a> {
    /// Records `name: value` if it is a credential header; returns whether it was.
    pub fn observe(&mut self, name: &str, value: &'a str) -> bool {
        if name == "authorization" {
            // Envoy joins repeated Authorization headers with ','; a Bearer token has no ','.
            self.authorization.extend(value.split(','));
            return true;
        }
        let slot = match name {
            "authorization" => &mut self.authorization,
            "x-api-key" => &mut self.x_api_key,
            "x-goog-api-key" => &mut self.x_goog_api_key,
            aigw_core::handoff::GATEWAY_TOKEN_HEADER => &mut self.gateway_token,
            _ => return false,
        };
        slot.push(value);
        true
    }

    /// The one gateway credential.
    pub fn pick(&self) -> Result<&'a str, GatewayError> {
        let mut found: Option<&'a str> = None;
        let mut add = |v: &'a str| -> Result<(), GatewayError> {
            let v = v.trim();
            if v.is_empty() {
                return Ok(());
            }
            match found {
                Some(f) if f != v => Err(GatewayError::new(
                    ErrorKind::AmbiguousCredentials,
                    "more than one differing credential was sent; send the gateway token once",
                )),
                _ => {
                    found = Some(v);
                    Ok(())
                }
            }
        };
        for a in &self.authorization {
            add(bearer(a)?)?;
        }
        for v in self
            .x_api_key
            .iter()
            .chain(&self.x_goog_api_key)
            .chain(&self.gateway_token)
        {
            add(v)?;
        }
        if let Some(k) = self.query_key {
            add(k)?;
        }
        found.ok_or_else(missing)
    }

    /// With Anthropic `authorization_passthrough` the client's `Authorization`/`x-api-key`
    /// belong to Anthropic; the gateway credential comes only from `x-gateway-token`.
    /// When it is optional and absent, the credential is empty (an anonymous caller).
    pub fn pick_passthrough(&self, required: bool) -> Result<&'a str, GatewayError> {
        let mut vals = self
            .gateway_token
            .iter()
            .map(|v| v.trim())
            .filter(|v| !v.is_empty());
        let Some(first) = vals.next() else {
            if required {
                return Err(GatewayError::new(
                    ErrorKind::MissingCredential,
                    "this provider passes Authorization through to Anthropic; send the gateway token in x-gateway-token",
                ));
            }
            return Ok("");
        };
        if vals.any(|v| v != first) {
            return Err(GatewayError::new(
                ErrorKind::AmbiguousCredentials,
                "more than one differing x-gateway-token was sent",
            ));
        }
        Ok(first)
    }
}

fn missing() -> GatewayError {
    GatewayError::new(
        ErrorKind::MissingCredential,
        "no gateway credential: send it as 'Authorization: Bearer <token>' (or x-api-key / x-goog-api-key, as your SDK does)",
    )
}

/// The token of `Bearer <token>` (scheme case-insensitive).
fn bearer(v: &str) -> Result<&str, GatewayError> {
    let v = v.trim();
    match v.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(token.trim()),
        _ if v.is_empty() || v.eq_ignore_ascii_case("bearer") => Ok(""),
        _ => Err(GatewayError::new(
            ErrorKind::InvalidCredential,
            "the Authorization header must use the Bearer scheme with a gateway token",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src<'a>(headers: &[(&str, &'a str)]) -> CredentialSources<'a> {
        let mut s = CredentialSources::default();
        for (n, v) in headers {
            s.observe(n, v);
        }
        s
    }

    #[test]
    fn each_sdk_location() {
        assert_eq!(
            src(&[("authorization", "Bearer gw-1")]).pick().unwrap(),
            "gw-1"
        );
        assert_eq!(
            src(&[("authorization", "bearer  gw-1 ")]).pick().unwrap(),
            "gw-1"
        );
        assert_eq!(src(&[("x-api-key", "gw-1")]).pick().unwrap(), "gw-1");
        assert_eq!(src(&[("x-goog-api-key", "gw-1")]).pick().unwrap(), "gw-1");
        assert_eq!(src(&[("x-gateway-token", "gw-1")]).pick().unwrap(), "gw-1");
        let s = CredentialSources {
            query_key: Some("gw-1"),
            ..Default::default()
        };
        assert_eq!(s.pick().unwrap(), "gw-1");
    }

    #[test]
    fn same_value_twice_is_fine_different_is_not() {
        let s = src(&[("authorization", "Bearer gw-1"), ("x-api-key", "gw-1")]);
        assert_eq!(s.pick().unwrap(), "gw-1");
        let s = src(&[("authorization", "Bearer gw-1"), ("x-api-key", "gw-2")]);
        assert_eq!(s.pick().unwrap_err().kind, ErrorKind::AmbiguousCredentials);
        let s = src(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]);
        assert_eq!(s.pick().unwrap_err().kind, ErrorKind::AmbiguousCredentials);
        // As Envoy hands repeated headers to the filter: joined with ','.
        let s = src(&[("authorization", "Bearer a,Bearer b")]);
        assert_eq!(s.pick().unwrap_err().kind, ErrorKind::AmbiguousCredentials);
        let s = src(&[("authorization", "Bearer a, Bearer a")]);
        assert_eq!(s.pick().unwrap(), "a");
    }

    #[test]
    fn missing_or_wrong_scheme() {
        assert_eq!(
            src(&[]).pick().unwrap_err().kind,
            ErrorKind::MissingCredential
        );
        assert_eq!(
            src(&[("authorization", "Bearer ")])
                .pick()
                .unwrap_err()
                .kind,
            ErrorKind::MissingCredential
        );
        assert_eq!(
            src(&[("authorization", "Basic dXNlcjpwdw==")])
                .pick()
                .unwrap_err()
                .kind,
            ErrorKind::InvalidCredential
        );
        assert_eq!(
            src(&[("authorization", "AWS4-HMAC-SHA256 Credential=x")])
                .pick()
                .unwrap_err()
                .kind,
            ErrorKind::InvalidCredential
        );
    }

    #[test]
    fn passthrough_reads_only_the_gateway_header() {
        let s = src(&[
            ("authorization", "Bearer sk-ant-own"),
            ("x-gateway-token", "gw-1"),
        ]);
        assert_eq!(s.pick_passthrough(true).unwrap(), "gw-1");
        let s = src(&[("authorization", "Bearer sk-ant-own")]);
        assert_eq!(
            s.pick_passthrough(true).unwrap_err().kind,
            ErrorKind::MissingCredential
        );
        assert_eq!(s.pick_passthrough(false).unwrap(), "");
    }
}
