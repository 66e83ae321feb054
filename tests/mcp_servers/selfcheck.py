"""Self-check of the upstream MCP test servers with the official SDK's own clients (mcp 2.3.0).

    .venv/bin/python tests/mcp_servers/selfcheck.py        # exit 0 and "N passed, 0 failed"

Starts catalog.py, tools.py and legacy.py as subprocesses on free loopback ports, waits
for their `READY <port>` line, checks them (listing with pagination, calls, errors, auth,
tools/list_changed in both protocol eras, the SSE transport), then stops each one with
SIGTERM and expects exit status 0. Every wait is bounded; a server that does not stop
in time is killed by its PID.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types

from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.subscriptions import ToolsListChanged
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

HERE = Path(__file__).resolve().parent
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
CHECK_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Upstream:
    """One server subprocess: started on a free port, stopped by SIGTERM (then SIGKILL) by PID."""

    def __init__(self, script: str, *args: str) -> None:
        self.script = script
        self.port = free_port()
        self.log = tempfile.NamedTemporaryFile(prefix=f"{Path(script).stem}-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / script), "--port", str(self.port), *args],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        ready: list[str] = []
        reader = threading.Thread(target=lambda: ready.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT)
        if not ready or ready[0].strip() != f"READY {self.port}":
            self.kill()
            raise RuntimeError(f"{script} did not print 'READY {self.port}' in time: {ready!r}\n{self.stderr()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stderr(self) -> str:
        return Path(self.log.name).read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def stop(self) -> int | None:
        """SIGTERM, wait; returns the exit status (None if it had to be killed)."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.kill()
                return None
        return self.proc.returncode


RESULTS: list[tuple[str, bool, str]] = []


async def check(name: str, fn: Callable[[], Awaitable[None]]) -> None:
    try:
        with anyio.fail_after(CHECK_TIMEOUT):
            await fn()
        RESULTS.append((name, True, ""))
        print(f"PASS {name}", flush=True)
    except Exception as exc:  # report and go on with the next check
        root = exc
        while isinstance(root, BaseExceptionGroup) and len(root.exceptions) == 1:
            root = root.exceptions[0]
        RESULTS.append((name, False, "".join(traceback.format_exception(exc))))
        print(f"FAIL {name}: {root!r}", flush=True)


def expect(cond: bool, msg: str) -> None:
    if not cond:
        raise AssertionError(msg)


@asynccontextmanager
async def http_client_session(url: str, headers: dict[str, str], mode: str = "legacy", **kw: Any):
    """Client over Streamable HTTP with custom headers on every request (POST, GET stream, DELETE)."""
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=300.0)) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode, **kw) as client:
            yield client


async def list_all_tools(client: Client) -> tuple[list[types.Tool], int]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await client.list_tools(cursor=cursor)
        pages += 1
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None or pages > 100:
            return tools, pages


def text_of(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def raw_post_status(url: str, headers: dict[str, str]) -> int:
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
    }
    async with httpx2.AsyncClient(timeout=10) as http:
        r = await http.post(
            url, json=body, headers={"accept": "application/json, text/event-stream", **headers}
        )
        return r.status_code


# ---------------------------------------------------------------- catalog


async def catalog_checks(up: Upstream, paged: Upstream, token: str) -> None:
    url = f"{up.url}/mcp"
    auth = {"Authorization": f"Bearer {token}"}

    async def unauthorized() -> None:
        expect(await raw_post_status(url, {}) == 401, "no Authorization header must give 401")
        expect(await raw_post_status(url, {"Authorization": "Bearer wrong"}) == 401, "wrong token must give 401")
        expect(await raw_post_status(url, auth) == 200, "right token must give 200")
        # The SDK client surfaces the 401 as an error on connect.
        try:
            async with http_client_session(url, {"Authorization": "Bearer wrong"}):
                raise AssertionError("connecting with a wrong token succeeded")
        except AssertionError:
            raise
        except Exception:
            pass

    async def listing(mode: str, expect_version: str) -> None:
        async with http_client_session(url, auth, mode=mode) as client:
            expect(client.protocol_version == expect_version, f"protocol {client.protocol_version}")
            expect(client.server_info is not None and client.server_info.name == "catalog", "server name")
            tools, pages = await list_all_tools(client)
            names = [t.name for t in tools]
            expect(pages == 1, f"unpaginated catalog gave {pages} pages")
            expect(len(names) == 120 and len(set(names)) == 120, f"{len(names)} tools, {len(set(names))} distinct")
            prefixes = {n.split("_")[0] for n in names}
            expect(len(prefixes) >= 12, f"only {len(prefixes)} name prefixes")
            expect(len({t.description for t in tools}) == 120, "descriptions not distinct")
            with_required = 0
            for t in tools:
                props = t.input_schema.get("properties", {})
                expect(1 <= len(props) <= 4, f"{t.name} has {len(props)} parameters")
                for pname, prop in props.items():
                    expect(bool(prop.get("description")), f"{t.name}.{pname} has no description")
                    expect("type" in prop or "enum" in prop, f"{t.name}.{pname} has no type")
                with_required += bool(t.input_schema.get("required"))
            expect(60 < with_required <= 120, f"{with_required} tools with required parameters")
            args = {"namespace": "prod", "deployment": "web", "replicas": 3}
            result = await client.call_tool("kubernetes_scale_deployment", args)
            expect(not result.is_error, "call failed")
            expect(
                json.loads(text_of(result)) == {"tool": "kubernetes_scale_deployment", "arguments": args},
                f"echo was {text_of(result)!r}",
            )
            # deterministic, exact text
            expect(
                text_of(result)
                == '{"arguments":{"deployment":"web","namespace":"prod","replicas":3},'
                '"tool":"kubernetes_scale_deployment"}',
                "echo text not canonical",
            )
            bad = await client.call_tool("kubernetes_scale_deployment", {"namespace": "prod", "deployment": "web"})
            expect(bad.is_error and "replicas" in text_of(bad), f"missing required arg: {bad}")
            # MCPServer answers an unknown tool with a tool error result, not a JSON-RPC error.
            unknown = await client.call_tool("no_such_tool", {})
            expect(unknown.is_error is True and "no_such_tool" in text_of(unknown), f"unknown tool: {unknown}")

    async def paginated() -> None:
        async with http_client_session(f"{paged.url}/mcp", auth, mode="legacy") as client:
            first = await client.list_tools()
            expect(len(first.tools) == 50 and first.next_cursor == "page:50", f"page 1: {first.next_cursor}")
            tools, pages = await list_all_tools(client)
            expect(pages == 3 and len({t.name for t in tools}) == 120, f"{pages} pages, {len(tools)} tools")
            try:
                await client.list_tools(cursor="bogus")
                raise AssertionError("bad cursor accepted")
            except MCPError as e:
                expect(e.code == types.INVALID_PARAMS, f"bad cursor code {e.code}")

    await check("catalog: 401 without / with a wrong bearer token", unauthorized)
    await check("catalog: legacy handshake (2025-11-25): 120 tools, schemas, echo call", lambda: listing("legacy", "2025-11-25"))
    await check("catalog: mode auto negotiates 2026-07-28, same listing and calls", lambda: listing("auto", "2026-07-28"))
    await check("catalog --page-size 50: 3 pages via nextCursor, bad cursor rejected", paginated)


# ---------------------------------------------------------------- tools


async def tools_checks(up: Upstream, key: str) -> None:
    url = f"{up.url}/mcp"
    hdr = {"X-Api-Key": key}

    async def unauthorized() -> None:
        expect(await raw_post_status(url, {}) == 401, "no X-Api-Key must give 401")
        expect(await raw_post_status(url, {"X-Api-Key": "nope"}) == 401, "wrong key must give 401")
        expect(await raw_post_status(url, hdr) == 200, "right key must give 200")

    async def basics(mode: str) -> None:
        async with http_client_session(url, hdr, mode=mode) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            expect({"add", "echo", "fail", "slow", "register_tool"} <= names, f"tools: {names}")
            r = await client.call_tool("add", {"a": 2, "b": 3})
            expect(text_of(r) == "5" and r.structured_content == {"result": 5}, f"add: {r}")
            r = await client.call_tool("echo", {"text": "héllo"})
            expect(text_of(r) == "héllo", f"echo: {r}")
            r = await client.call_tool("fail", {})
            expect(r.is_error is True and "always fails" in text_of(r), f"fail: {r}")
            t0 = time.monotonic()
            r = await client.call_tool("slow", {"ms": 300})
            expect(time.monotonic() - t0 >= 0.3 and text_of(r) == "slept 300 ms", f"slow: {r}")
            t0 = time.monotonic()
            try:
                await client.call_tool("slow", {"ms": 5000}, read_timeout_seconds=0.5)
                raise AssertionError("read timeout did not fire")
            except MCPError as e:
                expect(e.code == types.REQUEST_TIMEOUT, f"timeout code {e.code}")
            expect(time.monotonic() - t0 < 3, "timeout took too long")

    async def list_changed_handshake() -> None:
        got = anyio.Event()
        seen: list[Any] = []

        async def on_message(message: Any) -> None:
            seen.append(message)
            if isinstance(message, types.ToolListChangedNotification):
                got.set()

        async with http_client_session(url, hdr, mode="legacy", message_handler=on_message) as watcher:
            caps = watcher.server_capabilities
            expect(caps.tools is not None and caps.tools.list_changed is True, f"tools capability {caps.tools}")
            before = {t.name for t in (await watcher.list_tools()).tools}
            await anyio.sleep(0.3)  # let the watcher's GET stream open
            async with http_client_session(url, hdr, mode="legacy") as actor:
                r = await actor.call_tool("register_tool", {"name": "dyn_handshake"})
                # at least watcher + actor (a closed session may linger while a request of it still runs)
                notified = int(text_of(r).split("notified ")[1].split()[0])
                expect(not r.is_error and notified >= 2, f"register_tool: {r}")
            with anyio.fail_after(10):
                await got.wait()
            after = {t.name for t in (await watcher.list_tools()).tools}
            expect(after - before == {"dyn_handshake"}, f"new tools: {after - before}")
            r = await watcher.call_tool("dyn_handshake", {})
            expect(text_of(r) == "dyn_handshake ok", f"dynamic tool: {r}")
            r = await watcher.call_tool("register_tool", {"name": "dyn_handshake"})
            expect(r.is_error is True, "registering a name twice must fail")

    async def list_changed_modern() -> None:
        async with http_client_session(url, hdr, mode="auto") as watcher:
            expect(watcher.protocol_version == "2026-07-28", f"protocol {watcher.protocol_version}")
            async with watcher.listen(tools_list_changed=True) as sub:
                async with http_client_session(url, hdr, mode="auto") as actor:
                    r = await actor.call_tool("register_tool", {"name": "dyn_modern"})
                    expect(not r.is_error, f"register_tool: {r}")
                with anyio.fail_after(10):
                    async for event in sub:
                        expect(isinstance(event, ToolsListChanged), f"event {event!r}")
                        break
            names = {t.name for t in (await watcher.list_tools()).tools}
            expect("dyn_modern" in names, "dyn_modern not listed")

    await check("tools: 401 without / with a wrong X-Api-Key", unauthorized)
    await check("tools: add/echo/fail/slow + read timeout (legacy handshake)", lambda: basics("legacy"))
    await check("tools: add/echo/fail/slow + read timeout (2026-07-28)", lambda: basics("auto"))
    await check("tools: register_tool -> notifications/tools/list_changed (2025-11-25)", list_changed_handshake)
    await check("tools: register_tool -> subscriptions/listen event (2026-07-28)", list_changed_modern)


# ---------------------------------------------------------------- legacy


async def legacy_checks(up: Upstream) -> None:
    async def over_sse() -> None:
        async with Client(sse_client(f"{up.url}/sse"), mode="auto") as client:
            expect(client.protocol_version == "2025-11-25", f"auto fell back to {client.protocol_version}")
            names = [t.name for t in (await client.list_tools()).tools]
            expect(names == ["legacy_ping", "legacy_sum", "legacy_echo"], f"tools: {names}")
            r = await client.call_tool("legacy_sum", {"numbers": [1, 2, 3, 4]})
            expect(text_of(r) == "10" and r.structured_content == {"result": 10}, f"sum: {r}")
            r = await client.call_tool("legacy_ping", {})
            expect(text_of(r) == "pong", f"ping: {r}")
            r = await client.call_tool("legacy_sum", {"numbers": "x"})
            expect(r.is_error is True, "bad arguments must give isError")

    async def no_streamable_http() -> None:
        async with httpx2.AsyncClient(timeout=10) as http:
            r = await http.post(f"{up.url}/mcp", json={})
            expect(r.status_code == 404, f"POST /mcp on the SSE server: {r.status_code}")

    await check("legacy: SSE transport, auto falls back to initialize, list + call", over_sse)
    await check("legacy: no Streamable HTTP endpoint", no_streamable_http)


# ---------------------------------------------------------------- main


def main() -> int:
    token, key = "catalog-token-123", "tools-key-456"
    started: list[Upstream] = []
    try:
        catalog = Upstream("catalog.py", "--token", token)
        started.append(catalog)
        paged = Upstream("catalog.py", "--token", token, "--page-size", "50")
        started.append(paged)
        tools = Upstream("tools.py", "--key", key)
        started.append(tools)
        legacy = Upstream("legacy.py")
        started.append(legacy)

        async def run_all() -> None:
            await catalog_checks(catalog, paged, token)
            await tools_checks(tools, key)
            await legacy_checks(legacy)

        anyio.run(run_all)
    except Exception as exc:
        RESULTS.append(("start servers", False, "".join(traceback.format_exception(exc))))
        print(f"FAIL start servers: {exc!r}", flush=True)
    finally:
        for up in started:
            rc = up.stop()
            ok = rc == 0
            RESULTS.append((f"{up.script} {up.port}: SIGTERM -> exit 0", ok, f"exit status {rc}\n{up.stderr()}"))
            print(f"{'PASS' if ok else 'FAIL'} {up.script} on {up.port} stops on SIGTERM (status {rc})", flush=True)
            if ok:
                os.unlink(up.log.name)

    failed = [r for r in RESULTS if not r[1]]
    for name, _, detail in failed:
        print(f"\n--- {name}\n{detail}", file=sys.stderr)
    print(f"{len(RESULTS) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
