//! AWS Bedrock: every request is signed with SigV4 by the sidecar (service `bedrock`, the
//! provider's region) over the final method, host, path and query and the SHA-256 of the
//! exact body, with credentials the client never sees.
//!
//! The body is needed for the signature, so a Bedrock request's headers answer switches its
//! body mode to BUFFERED; the signature goes out as a header mutation on the body answer
//! (Envoy applies it before the upstream call).
//!
//! - [`credentials`]: where the keys come from (secret store, STS assume-role, default chain),
//!   cached and refreshed ahead of expiry.
//! - [`sign`]: the SigV4 signature as header mutations.

pub mod credentials;
pub mod sign;

use super::Mutation;
use aigw_core::{ErrorKind, GatewayError};
use credentials::CredentialSource;
use std::time::SystemTime;

/// AWS's signing name for Bedrock runtime.
pub const SERVICE: &str = "bedrock";

/// One Bedrock provider's signer.
#[derive(Debug)]
pub struct BedrockSigner {
    pub provider: String,
    pub region: String,
    pub credentials: CredentialSource,
}

/// What a request needs signed, taken from the headers as they will go upstream.
#[derive(Debug, Clone, Default)]
pub struct Pending {
    pub method: String,
    pub authority: String,
    pub path: String,
}

impl BedrockSigner {
    /// Signs `req` with `body`, returning the header changes.
    pub async fn sign(
        &self,
        req: &Pending,
        body: &[u8],
        secrets: &crate::secrets::Snapshot,
    ) -> Result<Mutation, GatewayError> {
        let creds = self.credentials.get(secrets).await.map_err(|e| {
            tracing::error!(provider = %self.provider, error = %e, "no AWS credentials to sign with");
            GatewayError::new(
                ErrorKind::UpstreamCredentialUnavailable,
                format!("the AWS credentials of provider '{}' are not available", self.provider),
            )
        })?;
        let input = sign::Request {
            method: &req.method,
            authority: &req.authority,
            path_and_query: &req.path,
            headers: &[],
            body,
        };
        let headers = sign::sign(
            &creds,
            &self.region,
            SERVICE,
            &input,
            SystemTime::now(),
            true,
        )
        .map_err(|e| {
            tracing::error!(provider = %self.provider, error = %e, "SigV4 signing failed");
            GatewayError::new(
                ErrorKind::InvalidPath,
                "the request cannot be signed for Bedrock",
            )
        })?;
        let mut m = Mutation::default();
        for (name, value) in headers {
            m.set(&name, value.into_bytes());
        }
        Ok(m)
    }
}
