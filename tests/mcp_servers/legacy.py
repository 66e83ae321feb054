"""Legacy upstream: the old HTTP+SSE transport (GET /sse, POST /messages/?session_id=...), no auth.

    python tests/mcp_servers/legacy.py --port 8103 [--dual-era]

The client opens `GET /sse`; the first event (`endpoint`) names the URL to POST
JSON-RPC messages to (`/messages/?session_id=<hex>`); every answer arrives as a
`message` event on the SSE stream (each POST itself gets 202 Accepted).

Like a pre-2026 server, it speaks only the `initialize` handshake (protocol
2024-11-05 .. 2025-11-25): the 2026-07-28 `server/discover` probe is refused with
a JSON-RPC error, so an SDK client in mode "auto" falls back to initialize by
itself. That takes driving each connection with the SDK's handshake-only loop
(`mcp.server.runner.serve_loop`): `MCPServer.sse_app()` drives the dual-era loop,
which locks a connection to 2026-07-28 when its first request is a discover, and
an "auto" client would then never use the handshake. `--dual-era` serves
`MCPServer.sse_app()` unchanged instead.

Tools:
- `legacy_ping()`: "pong".
- `legacy_sum(numbers: list[int])`: the sum (text and structuredContent {"result": n}).
- `legacy_echo(text: str)`: the text back, prefixed "legacy: ".
"""

from __future__ import annotations

import sys
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from mcp.server.mcpserver import MCPServer
from mcp.server.runner import serve_loop
from mcp.server.sse import SseServerTransport
from mcp.server.transport_security import TransportSecuritySettings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import base_args, serve  # noqa: E402

NO_REBINDING_CHECK = TransportSecuritySettings(enable_dns_rebinding_protection=False)


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


def handshake_only_sse_app(mcp: MCPServer) -> Starlette:
    """GET /sse + POST /messages/, each connection served by the handshake-only loop."""
    lowlevel = mcp._lowlevel_server  # pyright: ignore[reportPrivateUsage]
    sse = SseServerTransport("/messages/", security_settings=NO_REBINDING_CHECK)
    state: dict[str, object] = {}

    async def handle_sse(request: Request) -> Response:
        async with sse.connect_sse(request.scope, request.receive, request._send) as (read, write):  # pyright: ignore[reportPrivateUsage]
            await serve_loop(
                lowlevel,
                read,
                write,
                lifespan_state=state["lifespan"],
                init_options=lowlevel.create_initialization_options(),
            )
        return Response()

    @asynccontextmanager
    async def lifespan(_app: Starlette):
        async with lowlevel.lifespan(lowlevel) as lifespan_state:
            state["lifespan"] = lifespan_state
            yield

    return Starlette(
        routes=[
            Route("/sse", endpoint=handle_sse, methods=["GET"]),
            Mount("/messages/", app=sse.handle_post_message),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    parser = base_args(__doc__.splitlines()[0])
    parser.add_argument(
        "--dual-era",
        action="store_true",
        help="serve MCPServer.sse_app() as is (also 2026-07-28 via server/discover)",
    )
    args = parser.parse_args()
    mcp = build_server()
    if args.dual_era:
        app = mcp.sse_app(sse_path="/sse", message_path="/messages/", transport_security=NO_REBINDING_CHECK)
    else:
        app = handshake_only_sse_app(mcp)
    serve(app, args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
