//! AWS Bedrock: requests are signed with SigV4 by the sidecar (its own issue). Until then a
//! Bedrock request is refused with a clear 501 instead of going out unsigned.

use aigw_core::handoff::Route;
use aigw_core::{ErrorKind, GatewayError};

pub fn not_yet(route: &Route<'_>) -> GatewayError {
    GatewayError::new(
        ErrorKind::NotImplemented,
        format!("provider '{}': Bedrock signing is not available in this build", route.provider),
    )
}
