//! The Bedrock runtime operations the gateway signs and forwards (botocore's
//! `bedrock-runtime/2023-09-30/service-2.json`). A path outside them is refused in the filter
//! with a JSON 400, before anything is signed.

use crate::error::{ErrorKind, GatewayError};

/// `/model/{modelId}/<op>` operations.
pub const MODEL_OPERATIONS: [&str; 5] = [
    "invoke",
    "invoke-with-response-stream",
    "converse",
    "converse-stream",
    "count-tokens",
];

/// Checks the upstream path (after the provider prefix, no query) names a Bedrock
/// runtime operation. Model ids are kept as sent (`%3A`, `%2F` included).
pub fn check_path(rest: &str) -> Result<(), GatewayError> {
    let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let ok = match segs.as_slice() {
        ["model", id, op] => !id.is_empty() && MODEL_OPERATIONS.contains(op),
        ["guardrail", id, "version", v, "apply"] => !id.is_empty() && !v.is_empty(),
        ["async-invoke"] => true,
        ["async-invoke", arn] => !arn.is_empty(),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(GatewayError::new(
            ErrorKind::InvalidPath,
            "not a Bedrock runtime operation: expected /model/<model-id>/{invoke,invoke-with-response-stream,converse,converse-stream,count-tokens}",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations() {
        for ok in [
            "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse",
            "/model/anthropic.claude-3-5-sonnet-20241022-v2:0/invoke",
            "/model/us.anthropic.claude-sonnet-4-6/converse-stream",
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.x%3A0/invoke-with-response-stream",
            "/model/m/count-tokens",
            "/guardrail/g1/version/1/apply",
            "/async-invoke",
            "/async-invoke/arn%3Ax",
        ] {
            assert!(check_path(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/",
            "/model",
            "/model/m",
            "/model//converse",
            "/model/m/delete",
            "/model/m/converse/extra",
            "/v1/chat/completions",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }
}
