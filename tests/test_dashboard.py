"""The operator dashboard in a real browser: headless Chromium (Debian's `chromium`) driven by
playwright-core (`tests/browser/dashboard.mjs`), after real requests went through a gateway.

One gateway for the module: an openai-compatible mock provider with price overrides (the
dashboard's provider under test), OpenAI, Anthropic and Google providers on the mock, a
disabled one, one pointing at a closed port and a Bedrock one; four gateway keys for four
agents; a daily budget of $1.00 for every agent (warn at 80 %) and $0.05 for one. Requests
go through the official SDKs, then the browser script walks every page once and reports what
it showed; each test compares one page with the admin API's JSON.

Screenshots land in tests/artifacts/dashboard/ (git-ignored); `AIGW_UPDATE_SCREENSHOTS=1`
also copies them to docs/screenshots/ for the README.

Skips only when Chromium or the npm packages are missing (`make deps` installs both).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import anthropic
import anyio
import openai
import pytest
from google import genai
from google.genai import types

from harness import REPO, Gateway, free_port, new_gateway_key, provider, wait_for
from harness.mcp import McpServer, mcp_client

BROWSER_DIR = REPO / "tests" / "browser"
SCRIPT = BROWSER_DIR / "dashboard.mjs"
CHROMIUM = Path(os.environ.get("AIGW_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = REPO / "tests" / "artifacts" / "dashboard"
SCREENSHOTS = REPO / "docs" / "screenshots"
SCREENSHOT_PAGES = ("login", "home", "providers", "provider", "provider-test-failed", "usage",
                    "usage-by-model", "usage-hourly-by-user", "budgets", "tools", "requests", "request",
                    "performance")

PROVIDER = "local"  # the provider whose detail page is checked
FAILING = "unreachable"  # base URL on a closed port
UPSTREAM_KEYS = {"OPENAI_API_KEY": "sk-dash-openai-upstream-7f3a", "ANTHROPIC_API_KEY": "sk-ant-dash-upstream-91bc",
                 "GEMINI_API_KEY": "AIza-dash-upstream-55e0", "LOCAL_API_KEY": "local-dash-upstream-0d4e",
                 "BEDROCK_ID": "AKIADASHBOARDTEST001", "BEDROCK_SECRET": "dash-bedrock-secret-value-2b7c"}
AGENTS = {"alpha": "alice", "beta": "bob", "gamma": "alice", "delta": "carol"}


def _missing_browser() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        return f"Chromium not found at {CHROMIUM}: `apt-get install -y chromium chromium-driver` (make deps does)"
    if not (BROWSER_DIR / "node_modules" / "playwright-core" / "package.json").is_file():
        return "playwright-core is not installed: `npm ci --prefix tests/browser` (make deps does)"
    return None


pytestmark = pytest.mark.skipif(_missing_browser() is not None, reason=str(_missing_browser()))


# --------------------------------------------------------------------------- helpers


def nanousd_to_usd(nano: int) -> str:
    """The API's exact decimal form (at least two decimals)."""
    whole, frac = divmod(nano, 1_000_000_000)
    digits = f"{frac:09d}"
    trimmed = digits.rstrip("0")
    return f"{whole}.{digits[:2] if len(trimmed) < 2 else trimmed}"


def usd_sum(values) -> str:
    total = sum((Decimal(v) for v in values if v is not None), Decimal(0))
    return nanousd_to_usd(int(total * 1_000_000_000))


def integer(text: str) -> int:
    """A number as the page shows it (thousands separators)."""
    return int(text.replace(",", ""))


def admin_json(gw: Gateway, path: str) -> dict:
    status, body, _ = gw.sidecar_admin(path)
    assert status == 200, (path, status, body[:500])
    return json.loads(body)


def iso(ms: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + "Z"


# --------------------------------------------------------------------------- the session


class Dash:
    def __init__(self, gw: Gateway, out: dict, keys: dict[str, str]):
        self.gw = gw
        self.out = out
        self.keys = keys

    def api(self, path: str) -> dict:
        return admin_json(self.gw, path)


MCP_KEY = "tools-upstream-key-for-the-dashboard"


def _gateway(workdir: Path, mock, mcp_tools) -> tuple[Gateway, dict[str, str]]:
    keys = {agent: new_gateway_key() for agent in AGENTS}
    secrets = dict(UPSTREAM_KEYS)
    secrets.update({f"KEY_{agent.upper()}": key for agent, key in keys.items()})
    local = provider(PROVIDER, "openai-compatible", f"{mock.url}/v1", "LOCAL_API_KEY")
    # Cheap input, dear output: a budget's estimate (max_tokens=1) is far below the cost
    # of the mock's answer, so an agent can end a window over its cap.
    local["models"] = [{"name": "mock-model", "input": "1", "output": "20000"}, "mock-model-2"]
    local["log_requests"] = True  # the Requests page opens one with its bodies
    providers = [
        local,
        provider("openai", "openai", f"{mock.url}/v1", "OPENAI_API_KEY"),
        provider("anthropic", "anthropic", mock.url, "ANTHROPIC_API_KEY"),
        provider("google", "google", mock.url, "GEMINI_API_KEY"),
        provider("disabled", "openai", f"{mock.url}/v1", "OPENAI_API_KEY", enabled=False),
        provider(FAILING, "openai-compatible", f"http://127.0.0.1:{free_port()}/v1"),
        provider("bedrock", "bedrock", region="us-east-1",
                 aws={"access_key_id_secret": "BEDROCK_ID", "secret_access_key_secret": "BEDROCK_SECRET"}),
    ]
    api_keys = [{"name": agent, "secret": f"KEY_{agent.upper()}", "user": user, "agent": agent}
                for agent, user in AGENTS.items()]
    gw = Gateway(workdir, providers, secrets, api_keys, name="dashboard")
    gw.plugin["budgets"] = {
        "default": {"cap_usd": "1.00", "window": "daily", "warn_at_percent": 80},
        "agents": {"delta": {"cap_usd": "0.05", "window": "daily", "warn_at_percent": 80}},
    }
    secrets["MCP_TOOLS_KEY"] = MCP_KEY
    gw.initial_secrets["MCP_TOOLS_KEY"] = MCP_KEY
    gw.plugin["mcp"] = {"mode": "aggregate", "servers": [
        {"name": "tools", "url": f"http://127.0.0.1:{mcp_tools.port}/mcp",
         "credential": {"secret": "MCP_TOOLS_KEY", "header": "x-api-key"}},
        {"name": "offline", "url": f"http://127.0.0.1:{free_port()}/mcp"},
    ]}
    gw.start()
    return gw, keys


def _traffic(gw: Gateway, keys: dict[str, str]) -> int:
    """Real requests through the SDKs; returns how many should be recorded (at least)."""
    msgs = [{"role": "user", "content": "Hello"}]

    def oa(agent: str, name: str) -> openai.OpenAI:
        return openai.OpenAI(api_key=keys[agent], base_url=gw.url(name), max_retries=0, timeout=15)

    n = 0
    for _ in range(9):  # $0.10 each (5 output tokens): alpha ends at 90 % of its $1.00 cap
        oa("alpha", PROVIDER).chat.completions.create(model="mock-model", messages=msgs, max_tokens=1)
        n += 1
    # Estimated at $0.02 (max_tokens=1), it costs $0.10: delta ends over its $0.05 cap.
    oa("delta", PROVIDER).chat.completions.create(model="mock-model", messages=msgs, max_tokens=1)
    n += 1
    stream = oa("beta", PROVIDER).chat.completions.create(model="mock-model", messages=msgs, max_tokens=1, stream=True,
                                                         stream_options={"include_usage": True})
    for _ in stream:
        pass
    n += 1
    for _ in range(3):
        oa("beta", "openai").chat.completions.create(model="gpt-6-luna", messages=msgs, max_tokens=16)
        n += 1
    g = genai.Client(api_key=keys["beta"], http_options=types.HttpOptions(base_url=gw.url("google"), timeout=15_000))
    for _ in range(2):
        g.models.generate_content(model="gemini-3.5-flash", contents="Hello",
                                  config=types.GenerateContentConfig(max_output_tokens=16))
        n += 1
    a = anthropic.Anthropic(api_key=keys["gamma"], base_url=gw.url("anthropic"), max_retries=0, timeout=15)
    for _ in range(2):
        a.messages.create(model="claude-sonnet-5-5", max_tokens=16, messages=msgs)
        n += 1
    with pytest.raises(openai.APIStatusError):  # nothing listens there
        oa("gamma", FAILING).chat.completions.create(model="x", messages=msgs, max_tokens=1)

    async def tool_calls():  # through the MCP gateway: one ok, one tool error
        async with mcp_client(gw.base, keys["alpha"]) as c:
            wait = time.monotonic() + 20
            while "tools__add" not in {t.name for t in (await c.list_tools()).tools}:
                assert time.monotonic() < wait, "the MCP server did not connect"
                await anyio.sleep(0.1)
            await c.call_tool("tools__add", {"a": 1, "b": 2})
            await c.call_tool("tools__fail", {})
    anyio.run(tool_calls)
    return n


def _records(gw: Gateway) -> list[dict]:
    status, body, _ = gw.sidecar_admin("/api/v1/usage/records.csv?limit=1000")
    assert status == 200
    return list(csv.DictReader(io.StringIO(body.decode())))


@pytest.fixture(scope="module")
def dash(tmp_path_factory, _upstream_server) -> Dash:
    _upstream_server.reset()  # the session's mock: no settings left over from other tests
    mcp_tools = McpServer(tmp_path_factory.mktemp("dashboard-mcp"), "tools.py", "--key", MCP_KEY).start()
    gw, keys = _gateway(tmp_path_factory.mktemp("dashboard"), _upstream_server, mcp_tools)
    try:
        expected = _traffic(gw, keys)
        seen: list[int] = []

        def settled() -> bool:  # written by the sidecar's batching writer, off the request path
            seen.append(len(_records(gw)))
            return seen[-1] >= expected and len(seen) > 1 and seen[-1] == seen[-2]

        wait_for(settled, timeout=15, interval=0.3, what=f"{expected} usage records")
        gateway_url = gw.base
        if ARTIFACTS.exists():
            shutil.rmtree(ARTIFACTS)
        config = {
            "adminUrl": f"http://127.0.0.1:{gw.sidecar_admin_port}",
            "token": "test-admin-token",
            "gatewayUrl": gateway_url,
            "artifacts": str(ARTIFACTS),
            "chromium": str(CHROMIUM),
            "provider": PROVIDER,
            "failingProvider": FAILING,
        }
        cfg_file = gw.workdir / "browser.json"
        cfg_file.write_text(json.dumps(config))
        run = subprocess.run(["node", str(SCRIPT), str(cfg_file)], cwd=REPO, capture_output=True, text=True,
                             timeout=180)
        assert run.returncode == 0, f"browser script failed ({run.returncode}):\n{run.stderr[-4000:]}"
        out = json.loads(run.stdout)
        assert "failure" not in out, f"the browser run stopped after {out.get('steps')}:\n{out['failure']}"
        yield Dash(gw, out, keys)
    finally:
        gw.stop()
        mcp_tools.stop()


# --------------------------------------------------------------------------- the tests


def test_every_page_loads_without_console_errors(dash):
    out = dash.out
    assert out["steps"][:4] == ["login", "login-refused", "login", "home"], out["steps"]
    assert out["console"] == [], out["console"]
    assert out["pageErrors"] == [], out["pageErrors"]
    assert out["badResponses"] == [], out["badResponses"]


def test_login_refuses_a_wrong_token_and_sign_out_forgets_it(dash):
    wrong = dash.out["wrongToken"]
    assert wrong["message"] == "That is not the admin token."
    assert wrong["pageErrors"] == []
    # The only failure is the refused token check itself.
    assert [(r["url"].rsplit("/", 3)[-3:], r.get("status")) for r in wrong["badResponses"]] == \
        [(["api", "v1", "providers"], 401)]
    assert dash.out["afterSignOut"] is None


def test_the_shell_is_public_the_data_is_not(dash):
    status, body, headers = dash.gw.sidecar_admin("/", token=None)
    assert status == 200 and b"/dashboard/app.js" in body
    assert "script-src 'self'" in headers["content-security-policy"]
    for path in ("/api/v1/providers", "/api/v1/budgets", "/api/v1/usage/series"):
        assert dash.gw.sidecar_admin(path, token=None)[0] == 401, path


def test_home_shows_the_api_totals(dash):
    home = dash.out["home"]
    day = dash.api(f"/api/v1/usage/series?from={iso(time.time() * 1000 - 86_400_000)}&granularity=hour&group_by=provider")
    totals = [s["totals"] for s in day["series"]]
    assert integer(home["requests"]) == sum(t["requests"] for t in totals) > 0
    assert integer(home["tokens"]) == sum(t["tokens"] for t in totals)
    assert home["spend"] == "$" + usd_sum(t["cost_usd"] for t in totals)
    by_provider = {r["key"]: r for r in home["byProvider"]}
    assert set(by_provider) == {s["key"] for s in day["series"]}
    for s in day["series"]:
        assert f"${s['totals']['cost_usd']}" in by_provider[s["key"]]["text"]

    cfg = dash.api("/api/v1/providers")
    assert integer(home["providers"]) == len(cfg["providers"]) == 7
    assert home["providersSub"] == "6 enabled · 1 disabled"
    agents = dash.api("/api/v1/usage/series?from=" + time.strftime("%Y-%m-%d", time.gmtime(time.time() - 29 * 86400))
                      + "&group_by=agent")
    assert integer(home["agents"]) == len([s for s in agents["series"] if s["key"]]) == 4

    # Needs attention: alpha near its cap, delta over its cap, the disabled provider.
    budgets = {b["agent"]: b for b in dash.api("/api/v1/budgets")["budgets"]}
    kinds = {(a["kind"], a["href"]) for a in home["attention"]}
    assert ("disabled", "#/providers/disabled") in kinds
    assert budgets["delta"]["used_percent"] >= 100 and ("over cap", "#/budgets") in kinds
    assert 80 <= budgets["alpha"]["used_percent"] < 100 and ("near cap", "#/budgets") in kinds
    alpha = next(a for a in home["attention"] if "alpha" in a["text"])
    assert f"{budgets['alpha']['used_percent']}%" in alpha["text"]
    assert len(home["attention"]) == 3, home["attention"]

    # Recent requests: the newest records, newest first.
    records = _records(dash.gw)
    ids = [r["request_id"] for r in records]
    assert home["recent"] and set(home["recent"]) <= set(ids)
    assert len(home["recent"]) == min(12, len(ids))
    newest = max(records, key=lambda r: r["time"])["time"]
    assert any(r["request_id"] == home["recent"][0] and r["time"] == newest for r in records)


def test_providers_list_status_and_usage(dash):
    cfg = {p["name"]: p for p in dash.api("/api/v1/providers")["providers"]}
    summary = {p["provider"]: p for p in dash.api("/api/v1/providers/summary?days=7")["providers"]}
    rows = {r["key"]: r for r in dash.out["providers"]}
    assert set(rows) == set(cfg)
    for name, row in rows.items():
        assert row["status"] == ("enabled" if cfg[name]["enabled"] else "disabled"), name
        assert integer(row["cells"]["requests"]) == summary[name]["requests"], name
        assert row["cells"]["spend"] == f"${summary[name]['cost_usd']}", name
    assert rows["disabled"]["status"] == "disabled"


def test_provider_detail_matches_the_api(dash):
    d = dash.out["provider"]
    p = next(x for x in dash.api("/api/v1/providers")["providers"] if x["name"] == PROVIDER)
    s = next(x for x in dash.api("/api/v1/providers/summary?days=7")["providers"] if x["provider"] == PROVIDER)
    assert d["spend"] == f"${s['cost_usd']}"
    assert integer(d["requests"]) == s["requests"] > 0
    assert integer(d["tokens"]) == s["tokens"]["total"]
    assert d["sparklines"] == 3

    proxy = f"{dash.gw.base}/llm/v1/providers/{PROVIDER}"
    c = d["connection"]
    assert c["type"] == "openai-compatible"
    assert c["status"] == "enabled"
    assert c["proxy"].startswith(proxy)
    assert c["upstream"] == p["base_url"] == f"{dash.gw.plugin['providers'][0]['base_url']}"
    assert c["passthrough"] == "off"
    assert c["secret"].startswith("LOCAL_API_KEY") and "in the secret store" in c["secret"]

    # Per-model spend, from the same series the API gives.
    first_day = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 6 * 86400))
    by_model = dash.api(f"/api/v1/usage/series?from={first_day}&group_by=model&provider={PROVIDER}")
    rows = {r["key"]: r["cells"] for r in d["models"]}
    assert set(rows) == {x["key"] for x in by_model["series"]} == {"mock-model"}
    for x in by_model["series"]:
        t = x["totals"]
        assert rows[x["key"]] == {"requests": f"{t['requests']:,}", "tokens": f"{t['tokens']:,}", "spend": f"${t['cost_usd']}"}
    # Configured price overrides.
    prices = {r["key"]: r["text"] for r in d["prices"]}
    assert "$1" in prices["mock-model"] and "$20000" in prices["mock-model"]
    assert "catalog" in prices["mock-model-2"]

    # Connect: the proxy URL in every snippet that fits this provider; the others disabled.
    assert set(d["snippets"]) == {"curl", "openai"}
    assert set(d["disabledTabs"]) == {"anthropic", "google", "boto3"}
    for snippet in d["snippets"].values():
        assert proxy in snippet
    assert 'base_url="' + proxy + '"' in d["snippets"]["openai"]
    assert "mock-model" in d["snippets"]["curl"]


def test_no_secret_value_reaches_the_browser(dash):
    assert set(dash.out["html"]) == set(SCREENSHOT_PAGES)
    blob = json.dumps(dash.out)  # every page's markup, every text the script read
    for value in list(UPSTREAM_KEYS.values()) + list(dash.keys.values()) + [MCP_KEY]:
        assert value not in blob
    for export in ARTIFACTS.glob("*.csv"):
        assert all(v not in export.read_text() for v in UPSTREAM_KEYS.values())


def test_test_connection_passes_against_the_mock(dash):
    t = dash.out["provider"]["test"]
    assert t["outcome"] == "pass", t
    assert "Connection works" in t["text"] and "HTTP 200" in t["text"]
    assert f"GET {dash.gw.plugin['providers'][0]['base_url']}/models" in t["text"]


def test_test_connection_fails_clearly_against_a_closed_port(dash):
    t = dash.out["failing"]
    assert t["outcome"] == "fail", t
    assert "Connection failed" in t["text"] and "cannot connect to the upstream" in t["text"], t
    assert "HTTP" not in t["text"]  # no upstream answered


def _check_usage(dash, state: dict, metric: str) -> dict:
    """The page's table, total row and chart against the API answer for the page's query."""
    assert state["error"] is None, state["error"]
    data = dash.api(f"/api/v1/usage/series?{state['api']}")
    costed = data["group_by"] != "token_type"
    assert set(state["series"]) == {s["key"] or "" for s in data["series"]}
    for s in data["series"]:
        row = state["series"][s["key"] or ""]
        t = s["totals"]
        assert integer(row["requests"]) == t["requests"]
        assert integer(row["tokens"]) == t["tokens"]
        assert integer(row["unpriced"]) == t["unpriced_requests"]
        if costed:
            assert row["spend"] == f"${t['cost_usd']}"
        else:
            assert "spend" not in row
    if data["series"]:
        total = state["total"]
        assert integer(total["tokens"]) == sum(s["totals"]["tokens"] for s in data["series"])
        if costed:
            assert total["spend"] == "$" + usd_sum(s["totals"]["cost_usd"] for s in data["series"])
            assert integer(total["requests"]) == sum(s["totals"]["requests"] for s in data["series"])
        chart = state["chart"]
        assert chart["buckets"] == len(data["buckets"]) and chart["series"] == len(data["series"])
        field = {"cost": "cost_nanousd", "requests": "requests", "tokens": "tokens"}[metric]
        nonzero = [(i, p) for i, s in enumerate(data["series"]) for p in s["points"] if (p[field] or 0) > 0]
        assert len(chart["bars"]) == len(nonzero)
        if metric == "cost":
            titles = "\n".join(b["title"] for b in chart["bars"])
            for _, p in nonzero:
                assert f"${p['cost_usd']}" in titles
        assert len(state["legend"]) == len(data["series"])
    return data


def test_usage_page_filters_groupings_and_totals(dash):
    u = dash.out["usage"]
    initial = _check_usage(dash, u["initial"], "cost")
    assert initial["group_by"] == "provider" and initial["granularity"] == "day"
    assert set(u["initial"]["series"]) == {PROVIDER, "openai", "google", "anthropic"} | (
        {FAILING} if FAILING in u["initial"]["series"] else set())

    by_model = _check_usage(dash, u["byModel"], "cost")
    assert {"mock-model", "gpt-6-luna", "gemini-3.5-flash", "claude-sonnet-5-5"} <= set(u["byModel"]["series"])
    local = _check_usage(dash, u["byModelLocal"], "cost")
    assert "provider=local" in u["byModelLocal"]["api"]
    assert set(u["byModelLocal"]["series"]) == {"mock-model"}
    # The filter changed the chart: fewer series, fewer bars.
    assert u["byModelLocal"]["chart"]["series"] < u["byModel"]["chart"]["series"]
    assert len(u["byModelLocal"]["chart"]["bars"]) < len(u["byModel"]["chart"]["bars"])
    assert local["series"] != by_model["series"]

    _check_usage(dash, u["tokensLocal"], "tokens")
    tt = _check_usage(dash, u["byTokenType"], "tokens")
    assert [s["key"] for s in tt["series"]][0] == "input" and len(tt["series"]) == 7
    agents = _check_usage(dash, u["byAgentLocal"], "tokens")
    assert {s["key"] for s in agents["series"]} == {"alpha", "beta", "delta"}
    hourly = _check_usage(dash, u["hourly"], "tokens")
    assert hourly["granularity"] == "hour" and "granularity=hour" in u["hourly"]["api"]
    _check_usage(dash, u["byUserAllProviders"], "tokens")
    users = _check_usage(dash, u["byUser"], "tokens")
    assert {s["key"] for s in users["series"]} == {"alice", "bob", "carol"}

    # Each filter offers what the range holds.
    opts = u["options"]
    assert set(opts["f-provider"]) == {p["name"] for p in dash.api("/api/v1/providers")["providers"]}
    assert set(opts["f-agent"]) == set(AGENTS)
    assert set(opts["f-user"]) == set(AGENTS.values())
    assert {"mock-model", "gpt-6-luna"} <= set(opts["f-model"])


def test_usage_csv_download_is_the_api_export(dash):
    c = dash.out["usage"]["csv"]
    assert c["filename"] == "usage-by-user-hour.csv"
    got = Path(c["path"]).read_bytes()
    status, want, headers = dash.gw.sidecar_admin(f"/api/v1/usage/series.csv?{c['api']}")
    content_type = {k.lower(): v for k, v in headers.items()}["content-type"]
    assert status == 200 and content_type.startswith("text/csv")
    assert got == want
    rows = list(csv.DictReader(io.StringIO(got.decode())))
    assert rows and {r["user"] for r in rows} == set(AGENTS.values())


def test_budgets_page_matches_the_api(dash):
    budgets = {b["agent"]: b for b in dash.api("/api/v1/budgets")["budgets"]}
    rows = {r["key"]: r["cells"] for r in dash.out["budgets"]}
    assert set(rows) == set(AGENTS) == set(budgets)
    for agent, b in budgets.items():
        r = rows[agent]
        assert r["spent"] == f"${b['spent_usd']}"
        assert r["reserved"] == f"${b['reserved_usd']}"
        assert r["cap"] == f"${b['cap_usd']}"
        assert r["used"].startswith(f"{b['used_percent']}%")
        assert r["window"].startswith(b["window"])
        assert b["window_start"].replace("T", " ").replace("Z", " UTC") in r["start"]
        assert b["resets_at"].replace("T", " ").replace("Z", " UTC") in r["resets"]
    assert "over cap" in rows["delta"]["used"] and "near cap" in rows["alpha"]["used"]
    assert rows["delta"]["cap"] == "$0.05"


def test_mcp_tools_page_matches_the_api(dash):
    servers = {s["name"]: s for s in dash.api("/api/v1/mcp/servers")["servers"]}
    rows = {r["key"]: r for r in dash.out["mcpServers"]}
    assert set(rows) == {"tools", "offline"} == set(servers)
    assert rows["tools"]["cells"]["tools"] == str(servers["tools"]["tools"]) and "connected" in rows["tools"]["text"]
    assert "down" in rows["offline"]["text"] and servers["offline"]["error"] in rows["offline"]["cells"]["error"]
    calls = dash.api("/api/v1/tool-calls?limit=200")["tool_calls"]
    shown = [(r["key"], r["cells"]["latency"], r["cells"]["request-bytes"]) for r in dash.out["toolCalls"]]
    assert shown == [(f"{c['server']}/{c['tool']}/{c['status']}", f"{c['latency_ms']} ms", str(c["request_bytes"]))
                     for c in calls]
    assert {k for k, _, _ in shown} == {"tools/add/ok", "tools/fail/tool_error"}


def test_performance_page_matches_the_api(dash):
    shown = dash.out["performance"]
    for kind in ("providers", "models"):
        api = dash.api(shown["api"][kind])["totals"]
        rows = {r["key"]: r["cells"] for r in shown[kind]}
        assert api and set(rows) == {t["key"] or "" for t in api}
        for t in api:
            cells = rows[t["key"] or ""]
            assert cells["requests"] == f"{t['requests']:,}"
            assert cells["errors"].startswith(f"{t['errors']:,} (")
            for p in ("p50", "p90", "p99"):
                assert cells[f"latency-{p}"] == f"{t['latency_ms'][p]:,} ms"
            assert cells["ttft-p50"] == (f"{t['ttft_ms']['p50']:,} ms" if t["ttft_ms"] else "—")


def test_requests_page_matches_the_api(dash):
    shown = dash.out["requests"]
    api = dash.api(shown["api"])["requests"]
    assert [r["key"] for r in shown["rows"]] == [r["request_id"] for r in api] and api
    for row, rec in zip(shown["rows"], api):
        assert row["cells"]["status"] == str(rec["status"])
        assert row["cells"]["latency"] == f"{rec['latency_ms']} ms"
        assert (row["cells"]["logged"] == "logged") == rec["logged"]
    assert any(r["logged"] for r in api) and not all(r["logged"] for r in api)
    filtered = dash.out["requests"]["filtered"]
    assert f"provider={PROVIDER}" in filtered["api"] and "status=2xx" in filtered["api"]
    ok = dash.api(filtered["api"])["requests"]
    assert [r["key"] for r in filtered["rows"]] == [r["request_id"] for r in ok] and ok
    assert all(r["provider"] == PROVIDER and 200 <= r["status"] < 300 for r in ok)
    assert len(ok) < len(api)


def test_a_logged_request_shows_its_bodies_as_stored(dash):
    opened = dash.out["request"]
    detail = dash.api(f"/api/v1/requests/{opened['id']}")
    log = detail["log"]
    assert json.loads(opened["requestBody"]) == json.loads(log["request_body"])
    shown = opened["responseBody"]
    assert (json.loads(shown) == json.loads(log["response_body"])) if log["response_kind"] == "body" \
        else shown == log["response_body"]
    assert opened["fields"]["status"] == str(detail["records"][0]["status"])


def test_screenshots_of_every_page(dash):
    for page in SCREENSHOT_PAGES:
        png = ARTIFACTS / f"{page}.png"
        assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", page
        assert png.stat().st_size > 10_000, page  # a rendered page, not a blank one
    if os.environ.get("AIGW_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for page in SCREENSHOT_PAGES:
            shutil.copyfile(ARTIFACTS / f"{page}.png", SCREENSHOTS / f"{page}.png")
