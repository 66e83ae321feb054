//! Rate limits: requests per second, minute or day and tokens per minute or day, per caller
//! (API key, subject, user or agent) or shared, for every provider or one, every model or one.
//!
//! ```json
//! "rate_limits": [
//!   {"name": "per-key", "per": "api_key", "requests_per_minute": 600},
//!   {"name": "openai-tokens", "provider": "openai", "per": "agent", "tokens_per_minute": 200000},
//!   {"name": "luna", "provider": "openai", "model": "gpt-6-luna", "requests_per_second": 20}
//! ]
//! ```

use super::ProviderConfig;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimit {
    name: String,
    per: Option<LimitKey>,
    provider: Option<String>,
    model: Option<String>,
    requests_per_second: Option<u64>,
    requests_per_minute: Option<u64>,
    requests_per_day: Option<u64>,
    tokens_per_minute: Option<u64>,
    tokens_per_day: Option<u64>,
}

/// Whose requests share one counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKey {
    /// One counter per gateway API key (OIDC callers are not limited by such a rule).
    ApiKey,
    /// Per authenticated subject: an API key's name or a token's `sub`.
    Subject,
    User,
    Agent,
}

impl LimitKey {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::Subject => "subject",
            Self::User => "user",
            Self::Agent => "agent",
        }
    }
}

/// What is counted, and over which fixed window (UTC seconds, minutes, days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LimitKind {
    RequestsPerSecond,
    RequestsPerMinute,
    RequestsPerDay,
    TokensPerMinute,
    TokensPerDay,
}

impl LimitKind {
    pub const fn window_secs(self) -> u64 {
        match self {
            Self::RequestsPerSecond => 1,
            Self::RequestsPerMinute | Self::TokensPerMinute => 60,
            Self::RequestsPerDay | Self::TokensPerDay => 86_400,
        }
    }

    pub const fn counts_tokens(self) -> bool {
        matches!(self, Self::TokensPerMinute | Self::TokensPerDay)
    }

    /// The config field, e.g. `tokens_per_minute`.
    pub const fn field(self) -> &'static str {
        match self {
            Self::RequestsPerSecond => "requests_per_second",
            Self::RequestsPerMinute => "requests_per_minute",
            Self::RequestsPerDay => "requests_per_day",
            Self::TokensPerMinute => "tokens_per_minute",
            Self::TokensPerDay => "tokens_per_day",
        }
    }
}

/// One rule: its counters apply to requests matching `provider` and `model` (when set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    pub name: String,
    /// `None`: every caller shares the counter.
    pub per: Option<LimitKey>,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// At least one, each with its limit.
    pub limits: Vec<(LimitKind, u64)>,
}

impl RateLimit {
    /// Whether the rule can apply to calls to `provider` (any model).
    pub fn covers_provider(&self, provider: &str) -> bool {
        self.provider.as_deref().is_none_or(|p| p == provider)
    }
}

pub(super) fn validate_rate_limits(
    raw: Vec<RawRateLimit>,
    providers: &[ProviderConfig],
    err: &mut dyn FnMut(String, String),
) -> Vec<RateLimit> {
    let mut out: Vec<RateLimit> = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let f = |name: &str| format!("rate_limits[{i}].{name}");
        if r.name.trim().is_empty() {
            err(f("name"), "must not be empty".into());
        }
        if out.iter().any(|o| o.name == r.name) {
            err(f("name"), format!("duplicate rate limit '{}'", r.name));
        }
        if let Some(p) = &r.provider {
            if !providers.iter().any(|q| &q.name == p) {
                err(f("provider"), format!("no provider named '{p}'"));
            }
        }
        if r.model.as_deref().is_some_and(|m| m.trim().is_empty()) {
            err(f("model"), "must not be empty".into());
        }
        let limits: Vec<(LimitKind, u64)> = [
            (LimitKind::RequestsPerSecond, r.requests_per_second),
            (LimitKind::RequestsPerMinute, r.requests_per_minute),
            (LimitKind::RequestsPerDay, r.requests_per_day),
            (LimitKind::TokensPerMinute, r.tokens_per_minute),
            (LimitKind::TokensPerDay, r.tokens_per_day),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        for (k, v) in &limits {
            if *v == 0 || *v > u64::from(u32::MAX) {
                err(f(k.field()), format!("must be 1-{}", u32::MAX));
            }
        }
        if limits.is_empty() {
            err(
                format!("rate_limits[{i}]"),
                "needs at least one of requests_per_second, requests_per_minute, requests_per_day, tokens_per_minute, tokens_per_day".into(),
            );
        }
        out.push(RateLimit {
            name: r.name,
            per: r.per,
            provider: r.provider,
            model: r.model,
            limits,
        });
    }
    out
}
