"""Shared plumbing for the upstream MCP test servers (mcp 2.3.0, MCPServer API).

- `HeaderAuth`: a plain ASGI wrapper that answers 401 unless one request header
  carries the expected value (the SDK's own auth is OAuth-shaped; these servers
  only need a static credential so a gateway's credential injection can be tested).
- `serve(app, port)`: runs a Starlette app under uvicorn on 127.0.0.1, prints
  `READY <port>` on stdout once the socket is listening (port 0 picks a free
  one and the line tells which), and exits with status 0 on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
import uvicorn

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

HOST = "127.0.0.1"


class HeaderAuth:
    """Reject every HTTP request whose `header` is not exactly `expected` (401, JSON body).

    Lifespan events pass through untouched, so the MCP session manager still starts.
    """

    def __init__(self, app: ASGIApp, header: str, expected: str, *, www_authenticate: str | None = None) -> None:
        self.app = app
        self.header = header.lower().encode("latin-1")
        self.expected = expected.encode("latin-1")
        self.www_authenticate = www_authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            values = [v for k, v in scope.get("headers", []) if k.lower() == self.header]
            if values != [self.expected]:
                body = json.dumps(
                    {"error": "unauthorized", "detail": f"missing or wrong {self.header.decode()} header"}
                ).encode()
                headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                if self.www_authenticate:
                    headers.append((b"www-authenticate", self.www_authenticate.encode()))
                await send({"type": "http.response.start", "status": 401, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def base_args(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (0: pick a free one)")
    parser.add_argument("--log-level", default="warning", help="uvicorn log level")
    return parser


def serve(app: ASGIApp, port: int, *, log_level: str = "warning") -> None:
    """Serve `app` on 127.0.0.1:`port` until SIGTERM/SIGINT; print `READY <port>` once listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, port))
    sock.listen(128)
    sock.set_inheritable(True)
    bound_port = sock.getsockname()[1]

    config = uvicorn.Config(
        app,
        log_level=log_level,
        lifespan="on",
        # Open SSE streams (the GET stream, legacy /sse) would otherwise hold shutdown forever.
        timeout_graceful_shutdown=2,
        access_log=False,
    )
    server = uvicorn.Server(config)

    # uvicorn captures SIGTERM/SIGINT while serving, then restores the previous handlers and
    # re-raises the signal once it has shut down. With a no-op handler installed here that
    # re-raise is harmless, so the process ends with exit status 0 instead of dying by signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)

    async def main() -> None:
        async with anyio.create_task_group() as tg:

            async def run_server() -> None:
                await server.serve(sockets=[sock])
                tg.cancel_scope.cancel()

            tg.start_soon(run_server)
            while not server.started:
                if server.should_exit:
                    return
                await anyio.sleep(0.01)
            print(f"READY {bound_port}", flush=True)

    anyio.run(main)
    sock.close()
    sys.stdout.flush()
