//! One tool call through the MCP gateway, as stored (`tool_calls` table) and listed by
//! `GET /api/v1/tool-calls`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallRecord {
    /// When the call arrived, Unix milliseconds (UTC).
    pub time_ms: i64,
    /// The `/mcp` route: `default` for `/mcp` itself.
    pub route: String,
    pub server: String,
    /// The server's own tool name.
    pub tool: String,
    /// The principal's subject (API key name or token subject), user and agent.
    pub principal: String,
    pub user: Option<String>,
    pub agent: Option<String>,
    pub status: ToolCallStatus,
    /// From arrival to the answer, milliseconds.
    pub latency_ms: u64,
    /// The arguments' JSON and the result's JSON, in bytes.
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// Why it failed, when it did (never a secret).
    pub error: Option<String>,
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolCallStatus {
    /// The tool answered.
    Ok,
    /// The tool answered with `isError: true`.
    ToolError,
    /// The principal may not call it (or it is not approved).
    Denied,
    /// The arguments do not match the tool's input schema: not sent upstream.
    InvalidArguments,
    /// No such tool.
    UnknownTool,
    /// The server could not be reached, failed, or timed out.
    UpstreamError,
}

impl ToolCallStatus {
    pub const ALL: [Self; 6] = [
        Self::Ok,
        Self::ToolError,
        Self::Denied,
        Self::InvalidArguments,
        Self::UnknownTool,
        Self::UpstreamError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::ToolError => "tool_error",
            Self::Denied => "denied",
            Self::InvalidArguments => "invalid_arguments",
            Self::UnknownTool => "unknown_tool",
            Self::UpstreamError => "upstream_error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}
