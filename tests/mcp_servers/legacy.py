"""Legacy upstream: the old HTTP+SSE transport (GET /sse, POST /messages/?session_id=...), no auth.

    python tests/mcp_servers/legacy.py --port 8103

The client opens `GET /sse`; the first event (`endpoint`) names the URL to POST
JSON-RPC messages to (`/messages/?session_id=<hex>`); every answer arrives as a
`message` event on the SSE stream (the POST itself gets 202 Accepted). Only the
`initialize` handshake works here: the 2026-07-28 `server/discover` is refused,
so an SDK client in mode "auto" falls back to initialize on its own.

Tools:
- `legacy_ping()`: "pong".
- `legacy_sum(numbers: list[int])`: the sum (text and structuredContent {"result": n}).
- `legacy_echo(text: str)`: the text back, prefixed "legacy: ".
"""

from __future__ import annotations

import sys
from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import base_args, serve  # noqa: E402


def build_server() -> MCPServer:
    mcp = MCPServer("legacy", version="0.9.0")

    @mcp.tool(description="Answer 'pong'; a liveness check.")
    def legacy_ping() -> str:
        return "pong"

    @mcp.tool(description="Sum a list of integers.")
    def legacy_sum(numbers: list[int]) -> int:
        return sum(numbers)

    @mcp.tool(description="Return the text, prefixed with 'legacy: '.")
    def legacy_echo(text: str) -> str:
        return f"legacy: {text}"

    return mcp


def main() -> None:
    args = base_args(__doc__.splitlines()[0]).parse_args()
    app = build_server().sse_app(
        sse_path="/sse",
        message_path="/messages/",
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    serve(app, args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
