//! What each provider type's upstream expects, applied to the request headers as an
//! ext_proc header mutation. One module per provider type; [`upstream_mutation`] dispatches.

pub mod anthropic;
pub mod bedrock;
pub mod google;
pub mod openai;
pub mod openai_compatible;

use crate::secrets::{SecretValue, Snapshot};
use aigw_core::handoff::Route;
use aigw_core::{ErrorKind, GatewayError, ProviderKind};
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue, HeaderValueOption};
use envoy_types::pb::envoy::service::ext_proc::v3::HeaderMutation;

/// The request as the sidecar sees it (after the filter's rewrite).
pub struct Upstream<'a> {
    pub route: &'a Route<'a>,
    pub headers: Option<&'a HeaderMap>,
}

impl Upstream<'_> {
    /// Whether the client sent `name` (lower-case).
    pub fn has_header(&self, name: &str) -> bool {
        self.headers
            .is_some_and(|h| h.headers.iter().any(|v| v.key == name))
    }
}

/// Header changes for the upstream request.
#[derive(Debug, Default)]
pub struct Mutation(pub HeaderMutation);

impl Mutation {
    /// Sets `name` (replacing any value). Always `raw_value`: Envoy ignores `value` here
    /// and would send an empty header.
    pub fn set(&mut self, name: &str, value: Vec<u8>) {
        self.0.set_headers.push(HeaderValueOption {
            header: Some(HeaderValue {
                key: name.to_string(),
                value: String::new(),
                raw_value: value,
            }),
            append_action: HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
            ..Default::default()
        });
    }
}

/// The upstream credential headers for this request.
pub fn upstream_mutation(up: &Upstream<'_>, secrets: &Snapshot) -> Result<Mutation, GatewayError> {
    let key = match up.route.api_key_secret {
        Some(name) => Some(secrets.get(name).ok_or_else(|| {
            tracing::error!(
                provider = up.route.provider,
                secret = name,
                "upstream secret not found in the secret store"
            );
            GatewayError::new(
                ErrorKind::UpstreamCredentialUnavailable,
                format!(
                    "the upstream credential of provider '{}' is not available",
                    up.route.provider
                ),
            )
        })?),
        None => None,
    };
    let mut m = Mutation::default();
    match up.route.kind {
        ProviderKind::Openai => openai::apply(need(key, up)?, &mut m),
        ProviderKind::OpenaiCompatible => openai_compatible::apply(key, &mut m),
        ProviderKind::Anthropic => anthropic::apply(up, key, &mut m),
        ProviderKind::Google => google::apply(need(key, up)?, &mut m),
        // Signed in the body phase instead (see bedrock.rs); nothing to add here.
        ProviderKind::Bedrock => {}
    }
    Ok(m)
}

fn need<'a>(
    key: Option<&'a SecretValue>,
    up: &Upstream<'_>,
) -> Result<&'a SecretValue, GatewayError> {
    key.ok_or_else(|| {
        GatewayError::new(
            ErrorKind::Misconfigured,
            format!(
                "provider '{}' has no upstream credential configured",
                up.route.provider
            ),
        )
    })
}

/// `Bearer <key>` as header bytes.
pub(crate) fn bearer(key: &SecretValue) -> Vec<u8> {
    let k = key.expose().as_bytes();
    let mut v = Vec::with_capacity(7 + k.len());
    v.extend_from_slice(b"Bearer ");
    v.extend_from_slice(k);
    v
}

#[cfg(test)]
mod tests;
