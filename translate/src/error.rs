//! The one error type of the crate.
//!
//! Request translation fails with [`TranslateError::Unsupported`] when the OpenAI request
//! asks for something the target cannot do faithfully (the field is never dropped
//! silently), and with [`TranslateError::Invalid`] when the request is not a valid chat
//! completions request. Both name the offending field as a JSON path
//! (`messages[2].content[0].image_url.url`) and become a JSON 400 in OpenAI's error shape
//! through [`TranslateError::openai_error_body`].
//!
//! Response translation fails with `Invalid` (field `response`, or a path inside it) when
//! the provider's body is not the documented shape; the caller answers 502 then.

use serde_json::json;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranslateError {
    /// The target has no faithful equivalent for this field or value.
    Unsupported { field: String, reason: String },
    /// The field is malformed (wrong type, bad value, dangling reference).
    Invalid { field: String, reason: String },
}

impl TranslateError {
    pub fn unsupported(field: impl Into<String>, reason: impl Into<String>) -> Self {
        TranslateError::Unsupported {
            field: field.into(),
            reason: reason.into(),
        }
    }

    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        TranslateError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The JSON path of the offending field.
    pub fn field(&self) -> &str {
        match self {
            TranslateError::Unsupported { field, .. } | TranslateError::Invalid { field, .. } => {
                field
            }
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            TranslateError::Unsupported { reason, .. } | TranslateError::Invalid { reason, .. } => {
                reason
            }
        }
    }

    /// `unsupported_parameter` or `invalid_parameter`, used as OpenAI's `error.code`.
    pub fn code(&self) -> &'static str {
        match self {
            TranslateError::Unsupported { .. } => "unsupported_parameter",
            TranslateError::Invalid { .. } => "invalid_parameter",
        }
    }

    /// The body of the 400 answer, in OpenAI's error shape (providers.md §1):
    /// `{"error":{"message","type":"invalid_request_error","param":<field>,"code"}}`, so the
    /// OpenAI SDK exposes the field as `e.param`.
    pub fn openai_error_body(&self) -> Vec<u8> {
        let body = json!({
            "error": {
                "message": self.to_string(),
                "type": "invalid_request_error",
                "param": self.field(),
                "code": self.code(),
            }
        });
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

impl fmt::Display for TranslateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TranslateError::Unsupported { field, reason } => {
                write!(f, "unsupported parameter `{field}`: {reason}")
            }
            TranslateError::Invalid { field, reason } => {
                write!(f, "invalid parameter `{field}`: {reason}")
            }
        }
    }
}

impl std::error::Error for TranslateError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_error_shape_names_the_field() {
        let e = TranslateError::unsupported("response_format.type", "no JSON mode");
        let v: serde_json::Value = serde_json::from_slice(&e.openai_error_body()).unwrap();
        assert_eq!(v["error"]["param"], "response_format.type");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["code"], "unsupported_parameter");
        assert!(v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("response_format.type"));
    }
}
