"""Upstream MCP test servers (tests/mcp_servers/*.py, built with the official Python SDK) as
our children, and a client of the gateway's MCP endpoint (the SDK's own)."""

from __future__ import annotations

import sys
from contextlib import asynccontextmanager
from pathlib import Path

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from .procs import Managed, free_port

SERVERS = Path(__file__).resolve().parents[1] / "mcp_servers"


class McpServer:
    """One upstream test server on a free port; `start()` again reuses the port."""

    def __init__(self, workdir: Path, script: str, *args: str):
        self.script, self.args, self.workdir = script, args, workdir
        self.port = free_port()
        self.proc: Managed | None = None

    def start(self) -> "McpServer":
        self.proc = Managed(Path(self.script).stem, [sys.executable, SERVERS / self.script, "--port", str(self.port),
                                                     *self.args], self.workdir)
        self.proc.wait_until("READY", lambda: "READY" in self.proc.stdout(), 20)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


@asynccontextmanager
async def mcp_client(base_url: str, token: str, path: str = "/mcp", mode: str = "legacy", handler=None):
    """The SDK's client on `<base_url><path>` with the gateway token. `mode`: `legacy` (the
    `initialize` handshake, 2025-11-25) or `auto` (2026-07-28 when the server speaks it)."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=60.0)) as http:
        async with Client(streamable_http_client(f"{base_url}{path}", http_client=http), mode=mode,
                          message_handler=handler) as c:
            yield c
