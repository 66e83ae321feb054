//! Provider kinds and what each one defaults to.

use serde::{Deserialize, Serialize};

/// The upstream API family a provider speaks. Decides the default base URL, where the
/// upstream credential goes and how usage is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    Openai,
    Anthropic,
    Google,
    Bedrock,
    OpenaiCompatible,
}

impl ProviderKind {
    /// The name used in configuration and in the filter-to-sidecar handoff.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::Anthropic => "anthropic",
            Self::Google => "google",
            Self::Bedrock => "bedrock",
            Self::OpenaiCompatible => "openai-compatible",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "openai" => Self::Openai,
            "anthropic" => Self::Anthropic,
            "google" => Self::Google,
            "bedrock" => Self::Bedrock,
            "openai-compatible" => Self::OpenaiCompatible,
            _ => return None,
        })
    }

    /// Base URL used when the config gives none. Bedrock's depends on the region;
    /// openai-compatible has none (a base URL is required).
    pub fn default_base_url(self, region: Option<&str>) -> Option<String> {
        match self {
            Self::Openai => Some("https://api.openai.com/v1".into()),
            Self::Anthropic => Some("https://api.anthropic.com".into()),
            Self::Google => Some("https://generativelanguage.googleapis.com".into()),
            Self::Bedrock => region.map(|r| format!("https://bedrock-runtime.{r}.amazonaws.com")),
            Self::OpenaiCompatible => None,
        }
    }

    /// Whether an upstream credential is mandatory for this kind.
    pub const fn requires_api_key(self) -> bool {
        matches!(self, Self::Openai | Self::Anthropic | Self::Google)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in [
            ProviderKind::Openai,
            ProviderKind::Anthropic,
            ProviderKind::Google,
            ProviderKind::Bedrock,
            ProviderKind::OpenaiCompatible,
        ] {
            assert_eq!(ProviderKind::parse(k.as_str()), Some(k));
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        assert_eq!(ProviderKind::parse("OpenAI"), None);
    }

    #[test]
    fn defaults() {
        assert_eq!(
            ProviderKind::Openai.default_base_url(None).unwrap(),
            "https://api.openai.com/v1"
        );
        assert_eq!(
            ProviderKind::Bedrock
                .default_base_url(Some("eu-west-1"))
                .unwrap(),
            "https://bedrock-runtime.eu-west-1.amazonaws.com"
        );
        assert_eq!(ProviderKind::OpenaiCompatible.default_base_url(None), None);
    }
}
