//! The one error type of the crate.
//!
//! Request translation fails with [`TranslateError::Unsupported`] when the OpenAI request
//! asks for something the target cannot do faithfully (the field is never dropped
//! silently), and with [`TranslateError::Invalid`] when the request is not a valid chat
//! completions request. Both name the offending field as a JSON path
//! (`messages[2].content[0].image_url.url`); the unified endpoint answers them with the
//! gateway's JSON 400, the field in `error.param`.
//!
//! Response translation fails with `Invalid` (field `response`, or a path inside it) when
//! the provider's body is not the documented shape; the caller answers 502 then.

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
    fn names_the_field() {
        let e = TranslateError::unsupported("response_format.type", "no JSON mode");
        assert_eq!(e.field(), "response_format.type");
        assert_eq!(e.code(), "unsupported_parameter");
        assert!(e.to_string().contains("response_format.type"));
    }
}
