//! The MCP gateway: one MCP endpoint (`/mcp`, and `/mcp/<route>`) for the approved upstream
//! MCP servers.

pub mod record;
pub mod search;
