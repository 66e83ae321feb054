//! What the filter hands the sidecar for each request.
//!
//! The filter writes two wasm properties, which Envoy keeps as filter state (`wasm.<name>`)
//! and hands to the sidecar as ext_proc `request_attributes`. Filter state never comes from
//! the client and never goes upstream, so neither value can be forged or leaked.
//!
//! - [`ROUTE_PROPERTY`]: the matched provider as a [`Route`] line, pre-rendered at configure
//!   time, so the sidecar needs no provider table of its own.
//! - [`CREDENTIAL_PROPERTY`]: the gateway credential the client sent (its header is removed).

use crate::config::ProviderConfig;
use crate::provider::ProviderKind;

/// wasm property holding the route line; filter state key `wasm.aigw_route`.
pub const ROUTE_PROPERTY: &str = "aigw_route";
/// wasm property holding the client's gateway credential; filter state key `wasm.aigw_credential`.
pub const CREDENTIAL_PROPERTY: &str = "aigw_credential";

/// The ext_proc `request_attributes` expressions (the keys the sidecar looks up).
pub const ROUTE_ATTRIBUTE: &str = "filter_state['wasm.aigw_route']";
pub const CREDENTIAL_ATTRIBUTE: &str = "filter_state['wasm.aigw_credential']";

/// Headers beginning with this are the gateway's own; a client sending one gets a 400.
pub const INTERNAL_HEADER_PREFIX: &str = "x-aigw-";
/// Internal header the filter sets to pick the upstream cluster (`http` or `https`);
/// the route removes it before the upstream.
pub const UPSTREAM_SCHEME_HEADER: &str = "x-aigw-upstream";
/// Where a client puts its gateway credential when `Authorization` is passed through to
/// the provider (Anthropic `authorization_passthrough`).
pub const GATEWAY_TOKEN_HEADER: &str = "x-gateway-token";

const VERSION: &str = "v1";

/// The matched provider, as the sidecar needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<'a> {
    pub provider: &'a str,
    pub kind: ProviderKind,
    pub api_key_secret: Option<&'a str>,
    pub authorization_passthrough: bool,
    /// Passthrough without a gateway token is allowed (anonymous caller).
    pub gateway_token_optional: bool,
    pub region: Option<&'a str>,
}

impl<'a> Route<'a> {
    pub fn of(p: &'a ProviderConfig) -> Self {
        Self {
            provider: &p.name,
            kind: p.kind,
            api_key_secret: p.api_key_secret.as_deref(),
            authorization_passthrough: p.authorization_passthrough,
            gateway_token_optional: p.authorization_passthrough && !p.gateway_token_required,
            region: p.region.as_deref(),
        }
    }

    /// `v1|<name>|<type>|<secret>|<flags>|<region>`. Names, types, secret refs and regions
    /// are validated not to contain `|`. Flags: `p` passthrough, `o` gateway token optional.
    pub fn encode(&self) -> String {
        let flags = match (self.authorization_passthrough, self.gateway_token_optional) {
            (true, true) => "po",
            (true, false) => "p",
            (false, true) => "o",
            (false, false) => "",
        };
        format!(
            "{VERSION}|{}|{}|{}|{flags}|{}",
            self.provider,
            self.kind.as_str(),
            self.api_key_secret.unwrap_or(""),
            self.region.unwrap_or(""),
        )
    }

    /// Borrowing decode; `None` for anything the filter did not write.
    pub fn decode(s: &'a str) -> Option<Self> {
        let mut it = s.split('|');
        if it.next()? != VERSION {
            return None;
        }
        let provider = it.next().filter(|p| !p.is_empty())?;
        let kind = ProviderKind::parse(it.next()?)?;
        let secret = it.next()?;
        let flags = it.next()?;
        let region = it.next()?;
        if it.next().is_some() {
            return None;
        }
        Some(Self {
            provider,
            kind,
            api_key_secret: (!secret.is_empty()).then_some(secret),
            authorization_passthrough: flags.contains('p'),
            gateway_token_optional: flags.contains('o'),
            region: (!region.is_empty()).then_some(region),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GatewayConfig;

    #[test]
    fn round_trip() {
        let c = GatewayConfig::from_json(
            r#"{"providers":[
            {"name":"a","type":"anthropic","authorization_passthrough":true},
            {"name":"a2","type":"anthropic","authorization_passthrough":true,"gateway_token_required":false},
            {"name":"o","type":"openai","api_key_secret":"OPENAI_API_KEY"},
            {"name":"b","type":"bedrock","region":"eu-west-1"}]}"#,
        )
        .unwrap();
        for p in &c.providers {
            let line = Route::of(p).encode();
            assert_eq!(Route::decode(&line), Some(Route::of(p)), "{line}");
        }
        assert_eq!(
            Route::of(&c.providers[2]).encode(),
            "v1|o|openai|OPENAI_API_KEY||"
        );
    }

    #[test]
    fn rejects_foreign_values() {
        for s in [
            "",
            "v2|o|openai|||",
            "v1||openai|||",
            "v1|o|x|||",
            "v1|o|openai||",
            "v1|o|openai||||",
        ] {
            assert_eq!(Route::decode(s), None, "{s}");
        }
    }
}
