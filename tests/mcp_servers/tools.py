"""Tools upstream: a few behavioural tools, Streamable HTTP at /mcp, `X-Api-Key` auth.

    python tests/mcp_servers/tools.py --port 8102 --key k-123

Every request must carry `X-Api-Key: <key>` (else 401).

Tools:
- `add(a: int, b: int)`: the sum (text "5" and structuredContent {"result": 5}).
- `echo(text: str)`: the text back (text and structuredContent {"result": text}).
- `fail()`: a tool error result (isError true, text "fail: this tool always fails").
- `slow(ms: int)`: sleeps `ms` milliseconds, then answers "slept <ms> ms".
- `register_tool(name: str)`: adds a tool `name` at run time (it takes no arguments
  and answers "<name> ok") and tells every connected client that the tool list changed:
  handshake-era sessions (protocol <= 2025-11-25) get `notifications/tools/list_changed`
  on their standalone channel (the Streamable HTTP GET stream); 2026-07-28 clients get a
  tools-list-changed event on their `subscriptions/listen` streams. Registering a name
  that exists already is a tool error.

The server advertises `tools.listChanged: true` in its initialize result.
"""

from __future__ import annotations

import logging
import sys
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from mcp.server.lowlevel import NotificationOptions
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import HeaderAuth, base_args, serve  # noqa: E402

logger = logging.getLogger("tools-server")


class SessionRegistry:
    """The handshake-era sessions seen so far, keyed by connection, for broadcasts.

    A `ServerSession` is a per-request proxy, but its standalone channel belongs to the
    connection and stays usable after that request has finished. Sessions are recorded
    by a server middleware on every inbound message (so a client that only initialized
    is known too) and forgotten when their connection closes (client DELETE, idle
    timeout; a send to a closed one would be dropped silently) or a send fails.
    """

    def __init__(self) -> None:
        self._sessions: dict[int, Any] = {}

    async def middleware(self, ctx: Any, call_next: Any) -> Any:
        if ctx.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS:
            # The SDK keeps the per-connection state (mcp.server.connection.Connection) private here.
            connection = getattr(ctx.session, "_connection", None)
            key = id(connection if connection is not None else ctx.session)
            if key not in self._sessions:
                self._sessions[key] = ctx.session
                if connection is not None:
                    connection.exit_stack.callback(self._sessions.pop, key, None)
        return await call_next(ctx)

    def __len__(self) -> int:
        return len(self._sessions)

    async def broadcast_tools_changed(self) -> int:
        sent = 0
        for key, session in list(self._sessions.items()):
            try:
                with anyio.fail_after(2):
                    await session.send_tool_list_changed()
                sent += 1
            except Exception as exc:  # a closed session: forget it
                logger.debug("dropping session %s: %r", key, exc)
                self._sessions.pop(key, None)
        return sent


def build_server() -> MCPServer:
    registry = SessionRegistry()
    mcp = MCPServer("tools", version="1.0.0", middleware=[registry.middleware])
    # MCPServer has no public switch for the handshake-era `tools.listChanged` flag; the
    # lowlevel server reads it from NotificationOptions when it builds the initialize result.
    lowlevel = mcp._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    lowlevel.create_initialization_options = partial(  # type: ignore[method-assign]
        type(lowlevel).create_initialization_options, lowlevel, NotificationOptions(tools_changed=True)
    )

    @mcp.tool(description="Add two integers.")
    def add(a: int, b: int) -> int:
        return a + b

    @mcp.tool(description="Return the given text unchanged.")
    def echo(text: str) -> str:
        return text

    @mcp.tool(description="Always fails with a tool error (isError true).")
    def fail() -> str:
        raise ToolError("fail: this tool always fails")

    @mcp.tool(description="Sleep for the given number of milliseconds, then answer.")
    async def slow(ms: int) -> str:
        await anyio.sleep(ms / 1000)
        return f"slept {ms} ms"

    @mcp.tool(description="Register a new no-argument tool at run time and announce the changed tool list.")
    async def register_tool(name: str, ctx: Context) -> str:
        if mcp._tool_manager.get_tool(name) is not None:  # pyright: ignore[reportPrivateUsage]
            raise ToolError(f"tool {name!r} exists already")

        def dynamic() -> str:
            return f"{name} ok"

        mcp.add_tool(dynamic, name=name, description=f"Tool {name}, registered at run time.", structured_output=False)
        await ctx.notify_tools_changed()  # 2026-07-28: subscriptions/listen streams
        sent = await registry.broadcast_tools_changed()  # handshake era: every known session
        return f"registered {name}; notified {sent} session(s)"

    return mcp


def main() -> None:
    parser = base_args(__doc__.splitlines()[0])
    parser.add_argument("--key", required=True, help="value every request's X-Api-Key header must have")
    args = parser.parse_args()
    app = build_server().streamable_http_app(
        streamable_http_path="/mcp",
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    serve(HeaderAuth(app, "x-api-key", args.key), args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
