//! SigV4 with `aws-sigv4`. The canonical URI is the path exactly as forwarded, encoded once
//! more (botocore's rule for every service but S3), so `%3A` in a model id is signed as
//! `%253A` and matches what AWS computes from the path it receives.
//!
//! Only `host` and the `x-amz-*` headers the signer adds are signed: headers a proxy may add
//! or rewrite on the way (`x-forwarded-*`, `x-request-id`, `user-agent`) must not break it.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign as sigv4_sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_smithy_runtime_api::client::identity::Identity;
use std::time::SystemTime;

/// A request as it goes upstream.
#[derive(Debug)]
pub struct Request<'a> {
    pub method: &'a str,
    pub authority: &'a str,
    pub path_and_query: &'a str,
    /// Extra headers to sign besides `host` (empty for Bedrock; used by the test vectors).
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SignError(String);

/// The headers to set: `authorization`, `x-amz-date`, `x-amz-content-sha256` (when
/// `content_sha256_header`), `x-amz-security-token` (with a session token).
pub fn sign(
    creds: &Credentials,
    region: &str,
    service: &str,
    req: &Request<'_>,
    time: SystemTime,
    content_sha256_header: bool,
) -> Result<Vec<(String, String)>, SignError> {
    let identity: Identity = creds.clone().into();
    let mut settings = SigningSettings::default();
    if content_sha256_header {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    }
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| SignError(e.to_string()))?
        .into();
    let url = format!("https://{}{}", req.authority, req.path_and_query);
    let headers = std::iter::once(("host", req.authority)).chain(req.headers.iter().copied());
    let signable = SignableRequest::new(req.method, url, headers, SignableBody::Bytes(req.body))
        .map_err(|e| SignError(e.to_string()))?;
    let (instructions, _signature) = sigv4_sign(signable, &params)
        .map_err(|e| SignError(e.to_string()))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect())
}

#[cfg(test)]
mod tests;
