//! The gateway configuration: the wasm filter's plugin configuration in Envoy YAML (later the
//! same JSON is an Istio `WasmPlugin.pluginConfig`). The sidecar reads the very same block out
//! of the Envoy YAML at start-up, so there is exactly one provider table.
//!
//! Parsing is strict (`deny_unknown_fields`) and every error names the field it is about,
//! e.g. `providers[2].base_url: scheme must be http or https`.

use crate::provider::ProviderKind;
use serde::Deserialize;
use std::fmt;

pub mod limits;
pub mod mcp;
pub mod request_logs;
pub mod unified;
pub use limits::{LimitKey, LimitKind, RateLimit};
pub use mcp::{McpConfig, McpMode, McpServer, McpTransport};
pub use request_logs::RequestLogConfig;
pub use unified::{Policy, PolicyAction, Target, VirtualModel};

pub const MAX_PROVIDER_NAME_LEN: usize = 63;

/// Raw config as written by the operator.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    providers: Vec<RawProvider>,
    #[serde(default)]
    api_keys: Vec<RawApiKey>,
    #[serde(default)]
    oidc: Vec<RawOidcIssuer>,
    default_access: Option<Vec<AccessRule>>,
    budgets: Option<RawBudgets>,
    fast_path: Option<bool>,
    #[serde(default)]
    virtual_models: Vec<unified::RawVirtualModel>,
    #[serde(default)]
    policies: Vec<unified::RawPolicy>,
    #[serde(default)]
    rate_limits: Vec<limits::RawRateLimit>,
    mcp: Option<mcp::RawMcp>,
    request_logs: Option<request_logs::RawRequestLogs>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBudgets {
    default: Option<RawBudget>,
    #[serde(default)]
    agents: std::collections::BTreeMap<String, RawBudget>,
    default_max_output_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    cap_usd: String,
    window: BudgetWindow,
    warn_at_percent: Option<u8>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOidcIssuer {
    issuer: String,
    audiences: Vec<String>,
    algorithms: Option<Vec<String>>,
    #[serde(default)]
    claims: ClaimNames,
    #[serde(default = "default_leeway")]
    leeway_secs: u64,
    #[serde(default = "default_jwks_refresh")]
    jwks_refresh_secs: u64,
}

fn default_leeway() -> u64 {
    30
}

fn default_jwks_refresh() -> u64 {
    300
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    name: String,
    #[serde(rename = "type")]
    kind: ProviderKind,
    base_url: Option<String>,
    api_key_secret: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    authorization_passthrough: bool,
    region: Option<String>,
    aws: Option<RawAws>,
    access: Option<Vec<AccessRule>>,
    gateway_token_required: Option<bool>,
    models: Option<Vec<RawModel>>,
    #[serde(default)]
    log_requests: bool,
}

/// A model of a provider's allowlist: its name, or its name with price overrides.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawModel {
    Name(String),
    Priced {
        name: String,
        #[serde(flatten)]
        prices: std::collections::BTreeMap<String, String>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAws {
    access_key_id_secret: Option<String>,
    secret_access_key_secret: Option<String>,
    session_token_secret: Option<String>,
    assume_role: Option<RawAssumeRole>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAssumeRole {
    role_arn: String,
    external_id: Option<String>,
    session_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApiKey {
    name: String,
    secret: String,
    user: Option<String>,
    agent: Option<String>,
}

fn yes() -> bool {
    true
}

/// The validated gateway configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    pub providers: Vec<ProviderConfig>,
    pub api_keys: Vec<ApiKeyConfig>,
    pub oidc: Vec<OidcIssuer>,
    /// Who may use a provider that has no `access` list; `None`: every authenticated caller.
    pub default_access: Option<Vec<AccessRule>>,
    pub budgets: BudgetsConfig,
    /// Whether the filter completes API-key calls without budgets alone (default on);
    /// off: every call goes through the sidecar.
    pub fast_path: bool,
    /// Provider pools the unified endpoint serves as `model: "<name>"`.
    pub virtual_models: Vec<VirtualModel>,
    /// Routing policies of the unified endpoint, tried in order.
    pub policies: Vec<Policy>,
    /// Request and token rate limits, all enforced.
    pub rate_limits: Vec<RateLimit>,
    /// The MCP gateway's upstream servers and routes.
    pub mcp: McpConfig,
    /// Body size caps, redaction and retention of the request logs.
    pub request_logs: RequestLogConfig,
}

/// Spend caps per agent, enforced before the upstream call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BudgetsConfig {
    /// Applies to every agent without an entry of its own; `None`: no cap.
    pub default: Option<Budget>,
    pub agents: std::collections::BTreeMap<String, Budget>,
    /// The output cap assumed for a request that names none, when estimating its cost.
    pub default_max_output_tokens: u64,
}

impl BudgetsConfig {
    pub fn for_agent(&self, agent: &str) -> Option<&Budget> {
        self.agents.get(agent).or(self.default.as_ref())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub cap_nanousd: u64,
    pub window: BudgetWindow,
    /// Above this share of the cap, responses carry a warning header.
    pub warn_at_percent: Option<u8>,
}

/// Budget windows, in UTC: a day, an ISO week (from Monday), a calendar month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetWindow {
    Daily,
    Weekly,
    Monthly,
}

/// `"12.50"` USD as nano-USD (1e-9 USD), exactly; at most 9 decimals.
pub fn parse_usd(s: &str) -> Option<u64> {
    let s = s.trim();
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() && frac.is_empty() || frac.len() > 9 {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut f: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..9 {
        f *= 10;
    }
    whole.checked_mul(1_000_000_000)?.checked_add(f)
}

/// An OpenID issuer whose access tokens (JWTs) the gateway accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcIssuer {
    /// Exactly as in the tokens' `iss`; discovery is at `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    /// The token's `aud` must contain one of these.
    pub audiences: Vec<String>,
    /// Accepted signature algorithms (asymmetric only).
    pub algorithms: Vec<String>,
    pub claims: ClaimNames,
    pub leeway_secs: u64,
    pub jwks_refresh_secs: u64,
}

/// Which token claims name the principal's user, agent and groups.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimNames {
    pub user: String,
    pub agent: String,
    pub groups: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            user: "sub".into(),
            agent: "client_id".into(),
            groups: "groups".into(),
        }
    }
}

/// One rule of an access list; a principal matching any rule may use the provider.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AccessRule {
    Subject(String),
    ClientId(String),
    Group(String),
    Scope(String),
    ApiKey(String),
}

/// Signature algorithms a token may use: asymmetric only, so a public key can never be
/// used as an HMAC secret.
pub const ASYMMETRIC_ALGORITHMS: [&str; 9] = [
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// One provider, validated, with its base URL split once so requests only concatenate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderConfig {
    pub name: String,
    pub kind: ProviderKind,
    pub upstream: UpstreamUrl,
    /// Name of the secret holding the upstream API key.
    pub api_key_secret: Option<String>,
    pub enabled: bool,
    /// Anthropic only: the client's own `Authorization` goes upstream unchanged.
    pub authorization_passthrough: bool,
    /// Bedrock only.
    pub region: Option<String>,
    /// Bedrock only: where the AWS credentials come from.
    pub aws: Option<AwsConfig>,
    /// Who may use this provider; `None`: the config's `default_access`.
    pub access: Option<Vec<AccessRule>>,
    /// Anthropic passthrough only: whether `x-gateway-token` must be sent (default true).
    pub gateway_token_required: bool,
    /// The models that may be used (`None`: every model), with optional price overrides.
    pub models: Option<Vec<ModelConfig>>,
    /// Whether calls keep their bodies in the request log (see [`RequestLogConfig`]).
    pub log_requests: bool,
}

/// One allowed model. `prices` holds the override fields as written (`input`, `output`,
/// `cache_read`, ... in USD per million tokens, as decimal strings); the sidecar's pricing
/// validates them at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelConfig {
    pub name: String,
    pub prices: std::collections::BTreeMap<String, String>,
}

/// How a Bedrock provider gets the AWS credentials it signs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsConfig {
    pub credentials: AwsCredentials,
    /// Assume this role (via STS) on top of the base credentials.
    pub assume_role: Option<AssumeRole>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsCredentials {
    /// Static keys in the secret store, re-read on rotation.
    Secrets {
        access_key_id_secret: String,
        secret_access_key_secret: String,
        session_token_secret: Option<String>,
    },
    /// The AWS default chain: environment, web identity token file (EKS IRSA), shared
    /// config and credentials files, container and instance metadata.
    DefaultChain,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRole {
    pub role_arn: String,
    pub external_id: Option<String>,
    pub session_name: String,
}

/// Session name used when the config names none.
pub const DEFAULT_ROLE_SESSION_NAME: &str = "aigw";

/// A gateway API key: the secret holds the key (or `sha256:<hex>` of it); `name` is the
/// principal requests made with it are attributed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyConfig {
    pub name: String,
    pub secret: String,
    /// The user and agent requests with this key are attributed to (default: the name).
    pub user: Option<String>,
    pub agent: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
        }
    }

    /// The `x-aigw-upstream` value of the fast path's route for this scheme (ext_proc off).
    pub const fn fast_route(self) -> &'static str {
        match self {
            Self::Http => "http-fast",
            Self::Https => "https-fast",
        }
    }
}

/// A base URL split into what the filter rewrites: scheme (picks the upstream cluster),
/// authority (`:authority`, host plus optional port) and path prefix (no trailing `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamUrl {
    pub scheme: Scheme,
    pub authority: String,
    pub path_prefix: String,
}

impl UpstreamUrl {
    pub fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = if let Some(r) = url.strip_prefix("https://") {
            (Scheme::Https, r)
        } else if let Some(r) = url.strip_prefix("http://") {
            (Scheme::Http, r)
        } else {
            return Err("scheme must be http:// or https://".into());
        };
        if rest.contains(['?', '#']) {
            return Err("must not contain a query or fragment".into());
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        validate_authority(authority)?;
        let path = path.trim_end_matches('/');
        if path
            .split('/')
            .skip(1)
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err("path must not contain empty or dot segments".into());
        }
        if path.bytes().any(|b| b <= b' ' || b == 0x7f || b == b'\\') {
            return Err("path must not contain spaces, control characters or '\\'".into());
        }
        Ok(Self {
            scheme,
            authority: authority.to_ascii_lowercase(),
            path_prefix: path.to_string(),
        })
    }

    /// Whether the prefix ends in `/v1`, in which case a client path that itself starts
    /// with `/v1/` is not doubled (clients configured with `{proxy}/v1`).
    pub fn ends_with_v1(&self) -> bool {
        self.path_prefix.ends_with("/v1")
    }
}

fn validate_authority(a: &str) -> Result<(), String> {
    if a.is_empty() {
        return Err("host is missing".into());
    }
    if a.contains('@') {
        return Err("must not contain user info".into());
    }
    let (host, port) = if let Some(rest) = a.strip_prefix('[') {
        let end = rest.find(']').ok_or("unclosed '[' in IPv6 host")?;
        let host = &rest[..end];
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err("invalid IPv6 host".into());
        }
        let after = &rest[end + 1..];
        match after.strip_prefix(':') {
            Some(p) => (host, Some(p)),
            None if after.is_empty() => (host, None),
            None => return Err("unexpected characters after IPv6 host".into()),
        }
    } else {
        match a.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (a, None),
        }
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'_'))
    {
        return Err(format!("invalid host '{host}'"));
    }
    if let Some(p) = port {
        match p.parse::<u16>() {
            Ok(n) if n > 0 => {}
            _ => return Err(format!("invalid port '{p}'")),
        }
    }
    Ok(())
}

/// A configuration error naming the field it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() || self.field == "." {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// All errors found in one pass, so an operator fixes them in one go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// `^[a-z][a-z0-9-]*$`, at most 63 characters.
pub fn is_valid_provider_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= MAX_PROVIDER_NAME_LEN
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

/// `^[A-Z][A-Z0-9_]*$`: the form of a secret reference (an environment variable or file name).
/// Why `name` is not a valid provider (or MCP server, route) name.
fn name_rule(name: &str) -> String {
    format!(
        "'{name}' must match ^[a-z][a-z0-9-]*$ and be at most {MAX_PROVIDER_NAME_LEN} characters"
    )
}

pub fn is_valid_secret_ref(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 255
        && b[0].is_ascii_uppercase()
        && b.iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'_')
}

fn is_valid_region(s: &str) -> bool {
    // e.g. us-east-1, eu-central-2, us-gov-west-1, ap-southeast-3
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

impl GatewayConfig {
    /// Parses and validates the plugin configuration JSON.
    pub fn from_json(json: &str) -> Result<Self, ConfigErrors> {
        let de = &mut serde_json::Deserializer::from_str(json);
        let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                field: e.path().to_string(),
                message: e.inner().to_string(),
            }])
        })?;
        raw.validate()
    }

    pub fn provider(&self, name: &str) -> Option<&ProviderConfig> {
        self.providers.iter().find(|p| p.name == name)
    }

    /// Who may use `p`: its own `access`, else `default_access`; `None`: every caller.
    pub fn access_rules<'a>(&'a self, p: &'a ProviderConfig) -> Option<&'a [AccessRule]> {
        p.access.as_deref().or(self.default_access.as_deref())
    }

    pub fn virtual_model(&self, name: &str) -> Option<&VirtualModel> {
        self.virtual_models.iter().find(|v| v.name == name)
    }

    /// Every secret reference the config needs, with the field that names it. A disabled
    /// provider needs none: it may be configured before its key exists.
    pub fn secret_refs(&self) -> Vec<(String, &str)> {
        let mut refs = Vec::new();
        for (i, p) in self.providers.iter().enumerate() {
            if !p.enabled {
                continue;
            }
            if let Some(s) = &p.api_key_secret {
                refs.push((format!("providers[{i}].api_key_secret"), s.as_str()));
            }
            if let Some(AwsConfig {
                credentials:
                    AwsCredentials::Secrets {
                        access_key_id_secret,
                        secret_access_key_secret,
                        session_token_secret,
                    },
                ..
            }) = &p.aws
            {
                let aws = format!("providers[{i}].aws");
                refs.push((format!("{aws}.access_key_id_secret"), access_key_id_secret));
                refs.push((
                    format!("{aws}.secret_access_key_secret"),
                    secret_access_key_secret,
                ));
                if let Some(t) = session_token_secret {
                    refs.push((format!("{aws}.session_token_secret"), t));
                }
            }
        }
        for (i, k) in self.api_keys.iter().enumerate() {
            refs.push((format!("api_keys[{i}].secret"), k.secret.as_str()));
        }
        for (i, s) in self.mcp.servers.iter().enumerate() {
            if let Some(c) = &s.credential {
                refs.push((
                    format!("mcp.servers[{i}].credential.secret"),
                    c.secret.as_str(),
                ));
            }
        }
        refs
    }
}

fn validate_aws(
    a: RawAws,
    field: &dyn Fn(&str) -> String,
    err: &mut dyn FnMut(String, String),
) -> Option<AwsConfig> {
    let mut ok = true;
    for (name, v) in [
        ("access_key_id_secret", &a.access_key_id_secret),
        ("secret_access_key_secret", &a.secret_access_key_secret),
        ("session_token_secret", &a.session_token_secret),
    ] {
        if let Some(v) = v {
            if !is_valid_secret_ref(v) {
                err(
                    field(name),
                    format!("'{v}' must be UPPER_SNAKE_CASE (^[A-Z][A-Z0-9_]*$)"),
                );
                ok = false;
            }
        }
    }
    let credentials = match (a.access_key_id_secret, a.secret_access_key_secret) {
        (Some(id), Some(secret)) => AwsCredentials::Secrets {
            access_key_id_secret: id,
            secret_access_key_secret: secret,
            session_token_secret: a.session_token_secret,
        },
        (None, None) if a.session_token_secret.is_none() => AwsCredentials::DefaultChain,
        (None, None) => {
            err(
                field("session_token_secret"),
                "needs access_key_id_secret and secret_access_key_secret".into(),
            );
            return None;
        }
        (Some(_), None) => {
            err(
                field("secret_access_key_secret"),
                "is required with access_key_id_secret".into(),
            );
            return None;
        }
        (None, Some(_)) => {
            err(
                field("access_key_id_secret"),
                "is required with secret_access_key_secret".into(),
            );
            return None;
        }
    };
    let assume_role = match a.assume_role {
        None => None,
        Some(r) => {
            let arn_ok = r.role_arn.starts_with("arn:")
                && r.role_arn.split(':').count() == 6
                && r.role_arn
                    .split(':')
                    .nth(5)
                    .is_some_and(|res| res.starts_with("role/"));
            if !arn_ok {
                err(
                    field("assume_role.role_arn"),
                    format!(
                        "'{}' is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)",
                        r.role_arn
                    ),
                );
                ok = false;
            }
            let session_name = r
                .session_name
                .unwrap_or_else(|| DEFAULT_ROLE_SESSION_NAME.into());
            let name_ok = (2..=64).contains(&session_name.len())
                && session_name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b));
            if !name_ok {
                err(
                    field("assume_role.session_name"),
                    "must be 2-64 characters of [A-Za-z0-9_+=,.@-]".into(),
                );
                ok = false;
            }
            if let Some(x) = &r.external_id {
                if !(2..=1224).contains(&x.len()) {
                    err(
                        field("assume_role.external_id"),
                        "must be 2-1224 characters".into(),
                    );
                    ok = false;
                }
            }
            Some(AssumeRole {
                role_arn: r.role_arn,
                external_id: r.external_id,
                session_name,
            })
        }
    };
    ok.then_some(AwsConfig {
        credentials,
        assume_role,
    })
}

impl RawConfig {
    fn validate(self) -> Result<GatewayConfig, ConfigErrors> {
        let mut errors = Vec::new();
        let mut err = |field: String, message: String| errors.push(ConfigError { field, message });

        let mut providers = Vec::with_capacity(self.providers.len());
        for (i, p) in self.providers.into_iter().enumerate() {
            let f = |name: &str| format!("providers[{i}].{name}");
            if !is_valid_provider_name(&p.name) {
                err(f("name"), name_rule(&p.name));
            }
            if providers.iter().any(|q: &ProviderConfig| q.name == p.name) {
                err(f("name"), format!("duplicate provider name '{}'", p.name));
            }
            match (&p.region, p.kind) {
                (None, ProviderKind::Bedrock) => {
                    err(f("region"), "is required for type bedrock".into())
                }
                (Some(r), ProviderKind::Bedrock) if !is_valid_region(r) => {
                    err(f("region"), format!("'{r}' is not an AWS region name"))
                }
                (Some(_), k) if k != ProviderKind::Bedrock => {
                    err(f("region"), "is only valid for type bedrock".into())
                }
                _ => {}
            }
            if p.authorization_passthrough && p.kind != ProviderKind::Anthropic {
                err(
                    f("authorization_passthrough"),
                    "is only valid for type anthropic".into(),
                );
            }
            match &p.api_key_secret {
                Some(s) if !is_valid_secret_ref(s) => err(
                    f("api_key_secret"),
                    format!("'{s}' must be UPPER_SNAKE_CASE (^[A-Z][A-Z0-9_]*$)"),
                ),
                Some(_) if p.kind == ProviderKind::Bedrock => err(
                    f("api_key_secret"),
                    "is not used by type bedrock (it signs with AWS credentials)".into(),
                ),
                None if p.kind.requires_api_key() && !p.authorization_passthrough => err(
                    f("api_key_secret"),
                    format!("is required for type {}", p.kind.as_str()),
                ),
                _ => {}
            }
            if p.gateway_token_required.is_some() && !p.authorization_passthrough {
                err(
                    f("gateway_token_required"),
                    "is only valid with authorization_passthrough".into(),
                );
            }
            for (j, m) in p.models.iter().flatten().enumerate() {
                let name = match m {
                    RawModel::Name(n) | RawModel::Priced { name: n, .. } => n,
                };
                if name.trim().is_empty() {
                    err(
                        format!("providers[{i}].models[{j}]"),
                        "a model name must not be empty".into(),
                    );
                }
            }
            let aws = match (p.aws, p.kind) {
                (Some(_), k) if k != ProviderKind::Bedrock => {
                    err(f("aws"), "is only valid for type bedrock".into());
                    None
                }
                (Some(a), _) => validate_aws(a, &|n| f(&format!("aws.{n}")), &mut err),
                (None, ProviderKind::Bedrock) => Some(AwsConfig {
                    credentials: AwsCredentials::DefaultChain,
                    assume_role: None,
                }),
                (None, _) => None,
            };
            let base = match &p.base_url {
                Some(u) => Some(u.clone()),
                None => p.kind.default_base_url(p.region.as_deref()),
            };
            let upstream = match base.as_deref().map(UpstreamUrl::parse) {
                Some(Ok(u)) => Some(u),
                Some(Err(e)) => {
                    err(f("base_url"), e);
                    None
                }
                None if p.kind == ProviderKind::OpenaiCompatible => {
                    err(
                        f("base_url"),
                        "is required for type openai-compatible".into(),
                    );
                    None
                }
                None => None, // bedrock without region: already reported
            };
            if let Some(upstream) = upstream {
                providers.push(ProviderConfig {
                    name: p.name,
                    kind: p.kind,
                    upstream,
                    api_key_secret: p.api_key_secret,
                    enabled: p.enabled,
                    authorization_passthrough: p.authorization_passthrough,
                    region: p.region,
                    aws,
                    access: p.access,
                    gateway_token_required: p.gateway_token_required.unwrap_or(true),
                    log_requests: p.log_requests,
                    models: p.models.map(|ms| {
                        ms.into_iter()
                            .map(|m| match m {
                                RawModel::Name(name) => ModelConfig {
                                    name,
                                    prices: Default::default(),
                                },
                                RawModel::Priced { name, prices } => ModelConfig { name, prices },
                            })
                            .collect()
                    }),
                });
            }
        }

        let mut api_keys: Vec<ApiKeyConfig> = Vec::with_capacity(self.api_keys.len());
        for (i, k) in self.api_keys.into_iter().enumerate() {
            if k.name.trim().is_empty() {
                err(format!("api_keys[{i}].name"), "must not be empty".into());
            }
            if api_keys.iter().any(|q| q.name == k.name) {
                err(
                    format!("api_keys[{i}].name"),
                    format!("duplicate API key name '{}'", k.name),
                );
            }
            if !is_valid_secret_ref(&k.secret) {
                err(
                    format!("api_keys[{i}].secret"),
                    format!(
                        "'{}' must be UPPER_SNAKE_CASE (^[A-Z][A-Z0-9_]*$)",
                        k.secret
                    ),
                );
            }
            api_keys.push(ApiKeyConfig {
                name: k.name,
                secret: k.secret,
                user: k.user,
                agent: k.agent,
            });
        }

        let mut oidc: Vec<OidcIssuer> = Vec::with_capacity(self.oidc.len());
        for (i, o) in self.oidc.into_iter().enumerate() {
            let f = |name: &str| format!("oidc[{i}].{name}");
            if let Err(e) = UpstreamUrl::parse(&o.issuer) {
                err(
                    f("issuer"),
                    format!("'{}' is not an http(s) URL: {e}", o.issuer),
                );
            }
            if oidc.iter().any(|q| q.issuer == o.issuer) {
                err(f("issuer"), format!("duplicate issuer '{}'", o.issuer));
            }
            if o.audiences.is_empty() || o.audiences.iter().any(|a| a.is_empty()) {
                err(
                    f("audiences"),
                    "must list at least one non-empty audience".into(),
                );
            }
            let algorithms = o.algorithms.unwrap_or_else(|| {
                ASYMMETRIC_ALGORITHMS
                    .iter()
                    .map(|a| a.to_string())
                    .collect()
            });
            for a in &algorithms {
                if !ASYMMETRIC_ALGORITHMS.contains(&a.as_str()) {
                    err(
                        f("algorithms"),
                        format!(
                            "'{a}' is not allowed; use one of {}",
                            ASYMMETRIC_ALGORITHMS.join(", ")
                        ),
                    );
                }
            }
            if o.jwks_refresh_secs == 0 {
                err(f("jwks_refresh_secs"), "must be at least 1".into());
            }
            oidc.push(OidcIssuer {
                issuer: o.issuer,
                audiences: o.audiences,
                algorithms,
                claims: o.claims,
                leeway_secs: o.leeway_secs,
                jwks_refresh_secs: o.jwks_refresh_secs,
            });
        }

        // Access rules naming API keys must name existing ones.
        let check_rules = |field: String,
                           rules: &Option<Vec<AccessRule>>,
                           err: &mut dyn FnMut(String, String)| {
            for (j, r) in rules.iter().flatten().enumerate() {
                if let AccessRule::ApiKey(name) = r {
                    if !api_keys.iter().any(|k| &k.name == name) {
                        err(
                            format!("{field}[{j}].api_key"),
                            format!("no API key named '{name}'"),
                        );
                    }
                }
            }
        };
        check_rules("default_access".into(), &self.default_access, &mut err);

        let mut budgets = BudgetsConfig {
            default_max_output_tokens: 4096,
            ..Default::default()
        };
        if let Some(b) = self.budgets {
            let mut one = |field: String, r: RawBudget| -> Option<Budget> {
                let cap = parse_usd(&r.cap_usd);
                if cap.is_none() {
                    err(
                        format!("{field}.cap_usd"),
                        format!("'{}' is not a USD amount like \"12.50\"", r.cap_usd),
                    );
                }
                if r.warn_at_percent.is_some_and(|p| p == 0 || p > 100) {
                    err(format!("{field}.warn_at_percent"), "must be 1-100".into());
                }
                Some(Budget {
                    cap_nanousd: cap?,
                    window: r.window,
                    warn_at_percent: r.warn_at_percent,
                })
            };
            budgets.default = b.default.and_then(|d| one("budgets.default".into(), d));
            for (agent, r) in b.agents {
                if let Some(x) = one(format!("budgets.agents.{agent}"), r) {
                    budgets.agents.insert(agent, x);
                }
            }
            if let Some(n) = b.default_max_output_tokens {
                budgets.default_max_output_tokens = n;
            }
        }
        for (i, p) in providers.iter().enumerate() {
            check_rules(format!("providers[{i}].access"), &p.access, &mut err);
        }

        let virtual_models =
            unified::validate_virtual_models(self.virtual_models, &providers, &mut err);
        let policies = unified::validate_policies(self.policies, &virtual_models, &mut err);
        let rate_limits = limits::validate_rate_limits(self.rate_limits, &providers, &mut err);
        let mcp = mcp::validate_mcp(self.mcp, &mut err);
        let request_logs = request_logs::validate_request_logs(self.request_logs, &mut err);
        for (i, s) in mcp.servers.iter().enumerate() {
            check_rules(format!("mcp.servers[{i}].access"), &s.access, &mut err);
            for (tool, rules) in &s.tool_access {
                let rules = Some(rules.clone());
                check_rules(
                    format!("mcp.servers[{i}].tool_access.{tool}"),
                    &rules,
                    &mut err,
                );
            }
        }

        if errors.is_empty() {
            Ok(GatewayConfig {
                providers,
                api_keys,
                oidc,
                default_access: self.default_access,
                budgets,
                fast_path: self.fast_path.unwrap_or(true),
                virtual_models,
                policies,
                rate_limits,
                mcp,
                request_logs,
            })
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

#[cfg(test)]
mod tests;
