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

/// Checks the method and upstream path (after the provider prefix, no query) name a
/// Bedrock runtime operation. Model ids are kept as sent (`%3A`, `%2F` included).
pub fn check_path(method: &str, rest: &str) -> Result<(), GatewayError> {
    let segs: Vec<&str> = rest.trim_start_matches('/').split('/').collect();
    let post = method == "POST";
    let ok = match segs.as_slice() {
        // Its request body is a stream of individually signed events; it cannot be
        // buffered and signed once.
        ["model", _, "invoke-with-bidirectional-stream"] => {
            return Err(GatewayError::new(
                ErrorKind::InvalidPath,
                "InvokeModelWithBidirectionalStream is not supported by the gateway",
            ))
        }
        ["model", id, op] => post && !id.is_empty() && MODEL_OPERATIONS.contains(op),
        ["guardrail", id, "version", v, "apply"] => post && !id.is_empty() && !v.is_empty(),
        ["guardrail-checks", "invoke"] => post,
        ["async-invoke"] => post || method == "GET",
        ["async-invoke", arn] => method == "GET" && !arn.is_empty(),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(GatewayError::new(
            ErrorKind::InvalidPath,
            "not a Bedrock runtime operation: expected POST /model/<model-id>/{invoke,invoke-with-response-stream,converse,converse-stream,count-tokens}",
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
            "/guardrail-checks/invoke",
            "/async-invoke",
        ] {
            assert!(check_path("POST", ok).is_ok(), "{ok}");
        }
        assert!(check_path("GET", "/async-invoke/arn%3Ax").is_ok());
        assert!(check_path("GET", "/model/m/converse").is_err());
        assert!(check_path("DELETE", "/async-invoke").is_err());
        assert!(check_path("POST", "/model/m/invoke-with-bidirectional-stream").is_err());
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
            assert!(check_path("POST", bad).is_err(), "{bad}");
        }
    }
}
