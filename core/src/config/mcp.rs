//! The MCP gateway: upstream MCP servers the gateway aggregates, and the routes under `/mcp`
//! that expose them.
//!
//! ```json
//! "mcp": {
//!   "servers": [
//!     {"name": "github", "url": "https://mcp.github.example/mcp",
//!      "credential": {"secret": "GITHUB_MCP_TOKEN"}},
//!     {"name": "tickets", "url": "http://tickets.internal:8000/sse", "transport": "sse",
//!      "credential": {"secret": "TICKETS_KEY", "header": "x-api-key"},
//!      "access": [{"group": "support"}],
//!      "allowed_tools": ["search_tickets", "close_ticket"],
//!      "tool_access": {"close_ticket": [{"group": "support-leads"}]}}
//!   ],
//!   "mode": "deferred",
//!   "routes": [{"name": "all-tools", "mode": "aggregate", "servers": ["github"]}]
//! }
//! ```
//!
//! `/mcp` serves every server in `mode` (default `deferred`); `/mcp/<route>` serves a
//! route's servers in its own mode.

use super::AccessRule;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMcp {
    #[serde(default)]
    servers: Vec<RawServer>,
    mode: Option<McpMode>,
    #[serde(default)]
    routes: Vec<RawRoute>,
    search_results: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    name: String,
    url: String,
    #[serde(default)]
    transport: McpTransport,
    credential: Option<RawCredential>,
    access: Option<Vec<AccessRule>>,
    allowed_tools: Option<Vec<String>>,
    #[serde(default)]
    tool_access: std::collections::BTreeMap<String, Vec<AccessRule>>,
    timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredential {
    secret: String,
    header: Option<String>,
    prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    name: String,
    mode: McpMode,
    servers: Option<Vec<String>>,
}

/// How a route shows its tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum McpMode {
    /// Every approved tool, named `<server>__<tool>`.
    Aggregate,
    /// Only `search_tools` and `call_tool`: schemas are loaded when asked for.
    #[default]
    Deferred,
}

/// How the gateway talks to an upstream MCP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum McpTransport {
    /// The current Streamable HTTP transport (one endpoint, POST and GET).
    #[default]
    StreamableHttp,
    /// The legacy HTTP+SSE transport (GET the event stream, POST to the endpoint it names).
    Sse,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct McpConfig {
    pub servers: Vec<McpServer>,
    /// The mode of `/mcp` itself.
    pub mode: McpMode,
    pub routes: Vec<McpRoute>,
    /// How many tools `search_tools` returns at most.
    pub search_results: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpServer {
    pub name: String,
    pub url: String,
    pub transport: McpTransport,
    pub credential: Option<McpCredential>,
    /// Who may list and call this server's tools; `None`: the config's `default_access`.
    pub access: Option<Vec<AccessRule>>,
    /// The approved tools; `None`: every tool the server lists.
    pub allowed_tools: Option<Vec<String>>,
    /// Per tool, who may list and call it (instead of `access`).
    pub tool_access: std::collections::BTreeMap<String, Vec<AccessRule>>,
    /// Per upstream request.
    pub timeout_ms: u64,
}

/// A secret sent to the server on every request, as `<header>: <prefix><secret>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpCredential {
    pub secret: String,
    /// Lower case; default `authorization`.
    pub header: String,
    /// Default `Bearer ` for `authorization`, else empty.
    pub prefix: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpRoute {
    pub name: String,
    pub mode: McpMode,
    /// `None`: every server.
    pub servers: Option<Vec<String>>,
}

/// Separates the server from the tool in aggregate names, `<server>__<tool>`. Server names
/// have no `_`, so the first `__` splits.
pub const TOOL_SEPARATOR: &str = "__";

pub const DEFAULT_SEARCH_RESULTS: usize = 5;
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;

impl McpConfig {
    pub fn server(&self, name: &str) -> Option<&McpServer> {
        self.servers.iter().find(|s| s.name == name)
    }

    pub fn route(&self, name: &str) -> Option<&McpRoute> {
        self.routes.iter().find(|r| r.name == name)
    }
}

impl McpRoute {
    pub fn includes(&self, server: &str) -> bool {
        self.servers
            .as_ref()
            .is_none_or(|s| s.iter().any(|n| n == server))
    }
}

pub(super) fn validate_mcp(raw: Option<RawMcp>, err: &mut dyn FnMut(String, String)) -> McpConfig {
    let Some(raw) = raw else {
        return McpConfig {
            search_results: DEFAULT_SEARCH_RESULTS,
            ..Default::default()
        };
    };
    let mut servers: Vec<McpServer> = Vec::with_capacity(raw.servers.len());
    for (i, s) in raw.servers.into_iter().enumerate() {
        let f = |name: &str| format!("mcp.servers[{i}].{name}");
        if !super::is_valid_provider_name(&s.name) {
            err(f("name"), super::name_rule(&s.name));
        }
        if servers.iter().any(|o| o.name == s.name) {
            err(f("name"), format!("duplicate MCP server '{}'", s.name));
        }
        match s.url.split_once("://") {
            Some(("http" | "https", rest)) if !rest.is_empty() && !rest.starts_with('/') => {}
            _ => err(
                f("url"),
                "must be an absolute http:// or https:// URL".to_string(),
            ),
        }
        let credential = s.credential.map(|c| {
            if !super::is_valid_secret_ref(&c.secret) {
                err(
                    f("credential.secret"),
                    format!(
                        "'{}' must be UPPER_SNAKE_CASE (^[A-Z][A-Z0-9_]*$)",
                        c.secret
                    ),
                );
            }
            let header = c
                .header
                .unwrap_or_else(|| "authorization".into())
                .to_ascii_lowercase();
            let token_char = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            if header.is_empty() || !header.bytes().all(token_char) {
                err(f("credential.header"), "must be an HTTP header name".into());
            }
            let prefix = c.prefix.unwrap_or_else(|| {
                if header == "authorization" {
                    "Bearer ".into()
                } else {
                    String::new()
                }
            });
            McpCredential {
                secret: c.secret,
                header,
                prefix,
            }
        });
        for tool in s.tool_access.keys() {
            let listed = s.allowed_tools.as_ref().is_none_or(|a| a.contains(tool));
            if !listed {
                err(
                    f(&format!("tool_access.{tool}")),
                    "names a tool that is not in allowed_tools".into(),
                );
            }
        }
        for (j, t) in s.allowed_tools.iter().flatten().enumerate() {
            if t.is_empty() {
                err(
                    f(&format!("allowed_tools[{j}]")),
                    "must not be empty".into(),
                );
            }
        }
        let timeout_ms = s.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if timeout_ms == 0 {
            err(f("timeout_ms"), "must be at least 1".into());
        }
        servers.push(McpServer {
            name: s.name,
            url: s.url,
            transport: s.transport,
            credential,
            access: s.access,
            allowed_tools: s.allowed_tools,
            tool_access: s.tool_access,
            timeout_ms,
        });
    }
    let mut routes: Vec<McpRoute> = Vec::with_capacity(raw.routes.len());
    for (i, r) in raw.routes.into_iter().enumerate() {
        let f = |name: &str| format!("mcp.routes[{i}].{name}");
        if !super::is_valid_provider_name(&r.name) {
            err(f("name"), super::name_rule(&r.name));
        }
        if routes.iter().any(|o| o.name == r.name) {
            err(f("name"), format!("duplicate MCP route '{}'", r.name));
        }
        for (j, s) in r.servers.iter().flatten().enumerate() {
            if !servers.iter().any(|x| &x.name == s) {
                err(
                    f(&format!("servers[{j}]")),
                    format!("no MCP server named '{s}'"),
                );
            }
        }
        routes.push(McpRoute {
            name: r.name,
            mode: r.mode,
            servers: r.servers,
        });
    }
    let search_results = raw.search_results.unwrap_or(DEFAULT_SEARCH_RESULTS);
    if !(1..=50).contains(&search_results) {
        err("mcp.search_results".into(), "must be 1-50".into());
    }
    McpConfig {
        servers,
        mode: raw.mode.unwrap_or_default(),
        routes,
        search_results,
    }
}
