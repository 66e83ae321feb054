"""Budgets end to end: the sidecar holds each request's maximum cost before the upstream
call (body bytes × the model's dearest input price + the output cap × the output price),
settles the actual cost at the end, and refuses with 429 `budget_exceeded` (Retry-After to
the UTC window reset) what does not fit; concurrency never spends past a cap; warnings past
`warn_at_percent`; per-agent budgets over the default; unpriced models refused; spend
recorded in the store counts again after a restart; `/api/v1/budgets` agrees.

Every agent here is an API key of its own (agent = key name), so tests do not share budgets.
"""

from __future__ import annotations

import calendar
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import Gateway, provider
from harness.usage import (CONVERSATION_HEADER as CONV, BUCKETS, api_records, budgets, catalog_prices, cost,
                           db_records, new_conversation, nano_per_token, override_prices, restart_sidecar, usd,
                           wait_record)
from test_errors import assert_gateway_error

PREFIX = "/llm/v1/providers"
MESSAGES = [{"role": "user", "content": "Say hello"}]
HOUSE = {"input": "1.00", "output": "2.00", "cache_read": "0.10"}  # model "m" on provider "house"
BEDROCK_MODEL = "anthropic.claude-3-5-sonnet-20241022-v2:0"
BEDROCK_PRICES = {"input": "3", "output": "15", "cache_read": "0.30", "cache_write_5m": "3.75", "cache_write_1h": "6"}
STATIC_AWS = {"access_key_id_secret": "BEDROCK_AWS_ACCESS_KEY_ID",
              "secret_access_key_secret": "BEDROCK_AWS_SECRET_ACCESS_KEY"}

DEFAULT_CAP = 500_000_000  # 0.50 USD
DEFAULT_MAX_OUTPUT = 1000
AGENTS = ["tests", "burst", "warn", "vip", "monthly", "probe", "persist", "nousage", "errs", "streamer", "quitter",
          "down"]
KEYS = {a: f"gw-budget-{a}-" + os.urandom(6).hex() for a in AGENTS}

# The burst: 64 identical requests; the cap leaves room for exactly 10 holds.
BURST_BODY = json.dumps({"model": "m", "messages": [{"role": "user", "content": "burst"}], "max_tokens": 1000},
                        separators=(",", ":")).encode()
BURST_HOLD = len(BURST_BODY) * 1000 + 1000 * 2000  # dearest input of m: 1.00; output 2.00
BURST_CAP = 10 * BURST_HOLD + BURST_HOLD // 2
BURST_USAGE = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
BURST_COST = 5 * 1000 + 3 * 2000


def budget_providers(mock, bedrock) -> list[dict]:
    return [
        provider("openai", "openai", f"{mock.url}/v1", "OPENAI_API_KEY"),
        {**provider("house", "openai", f"{mock.url}/v1", "OPENAI_API_KEY"), "models": [{"name": "m", **HOUSE}]},
        provider("anthropic", "anthropic", mock.url, "ANTHROPIC_API_KEY"),
        {**provider("anthropic-open", "anthropic", mock.url, authorization_passthrough=True),
         "gateway_token_required": False},
        provider("google", "google", mock.url, "GEMINI_API_KEY"),
        {**provider("bedrock", "bedrock", bedrock.url, region="us-east-1", aws=STATIC_AWS),
         "models": [{"name": BEDROCK_MODEL, **BEDROCK_PRICES}]},
        provider("local", "openai-compatible", f"{mock.url}/v1"),
        # Nothing listens there.
        {**provider("house-down", "openai", "http://127.0.0.1:9/v1", "OPENAI_API_KEY"),
         "models": [{"name": "m", **HOUSE}]},
    ]


BUDGETS = {
    "default": {"cap_usd": usd(DEFAULT_CAP), "window": "daily", "warn_at_percent": 80},
    "agents": {
        "burst": {"cap_usd": usd(BURST_CAP), "window": "daily"},
        "vip": {"cap_usd": "100", "window": "weekly", "warn_at_percent": 90},
        "monthly": {"cap_usd": "0.000001", "window": "monthly"},
    },
    "default_max_output_tokens": DEFAULT_MAX_OUTPUT,
}


@pytest.fixture(scope="module")
def bgw(tmp_path_factory, _upstream_server, _bedrock_server, keys, aws_keys) -> Gateway:
    secrets = {**keys.secrets(), **aws_keys.secrets(), **{f"BUDGET_KEY_{a.upper()}": k for a, k in KEYS.items()}}
    api_keys = [{"name": a, "secret": f"BUDGET_KEY_{a.upper()}"} for a in AGENTS]
    gw = Gateway(tmp_path_factory.mktemp("budget-gw"), budget_providers(_upstream_server, _bedrock_server),
                 secrets, api_keys, name="budgets")
    gw.plugin["budgets"] = BUDGETS
    gw.start()
    yield gw
    gw.stop()


# --------------------------------------------------------------------------- helpers


def post(gw, agent: str, provider_name: str, path: str, body: dict | bytes, headers=(), timeout: float = 20.0):
    """A raw POST as `agent`, with the credential header the provider's SDK would use."""
    if provider_name.startswith("anthropic"):
        auth = [("x-api-key", KEYS[agent]), ("anthropic-version", "2023-06-01")]
    elif provider_name == "google":
        auth = [("x-goog-api-key", KEYS[agent])]
    else:
        auth = [("Authorization", f"Bearer {KEYS[agent]}")]
    raw = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    return gw.request("POST", f"{PREFIX}/{provider_name}{path}",
                      auth + [("Content-Type", "application/json"), *headers], raw, timeout=timeout)


def chat(gw, agent, body: dict, provider_name="house", headers=()):
    return post(gw, agent, provider_name, "/v1/chat/completions", body, headers)


def m_body(max_tokens: int, content: str = "hi", **extra) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens, **extra}


def hold_of(body: dict | bytes, prices: dict[str, int], max_output: int) -> int:
    """The contract's estimate: body bytes × the dearest input-side price + output cap × output."""
    raw = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    dearest = max(v for b, v in prices.items() if b != "output")
    return len(raw) * dearest + max_output * prices["output"]


def next_reset(window: str, now: float | None = None) -> int:
    """Unix seconds of the window's next UTC reset."""
    t = time.gmtime(now or time.time())
    midnight = calendar.timegm((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0))
    if window == "daily":
        return midnight + 86400
    if window == "weekly":
        return midnight + (7 - t.tm_wday) * 86400  # tm_wday: Monday 0
    y, m = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    return calendar.timegm((y, m, 1, 0, 0, 0))


def rfc3339(s: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s))


def assert_budget_exceeded(r, agent: str, window: str, at: float | None = None) -> None:
    """A 429 budget_exceeded naming the agent and window; Retry-After = seconds from `at`
    (when the answer came; now by default) to the window's UTC reset."""
    body = assert_gateway_error(r, 429, "budget_exceeded")
    msg = body["error"]["message"]
    assert f"'{agent}'" in msg and window in msg, msg
    ra = r.header("retry-after")
    assert ra is not None and ra.isdigit(), r.headers
    at = at or time.time()
    expected = next_reset(window, at) - at
    assert abs(int(ra) - expected) <= 2, f"Retry-After {ra}, expected ~{expected:.0f} s to the {window} reset"


def agent_records(gw, agent: str) -> list[dict]:
    return [r for r in api_records(gw) if r["agent"] == agent]


def wait_settled(gw, agent: str, timeout: float = 3.0) -> dict:
    """The agent's budget once nothing is reserved."""
    deadline = time.monotonic() + timeout
    while True:
        b = budgets(gw).get(agent)
        if b is not None and b["reserved_nanousd"] == 0:
            return b
        if time.monotonic() > deadline:
            raise AssertionError(f"budget of {agent} still holds a reservation: {b}")
        time.sleep(0.03)


def observe_hold(gw, agent: str, send, timeout: float = 5.0) -> tuple[int, object]:
    """Runs `send()` in a thread (the mock answers slowly) and reads the agent's reserved
    amount while the request is in flight. Returns (reserved, response)."""
    out: dict = {}
    t = threading.Thread(target=lambda: out.setdefault("r", send()))
    before = budgets(gw).get(agent, {"reserved_nanousd": 0})["reserved_nanousd"]
    assert before == 0
    t.start()
    seen = 0
    deadline = time.monotonic() + timeout
    while t.is_alive() and time.monotonic() < deadline:
        b = budgets(gw).get(agent)
        if b and b["reserved_nanousd"]:
            seen = b["reserved_nanousd"]
            break
        time.sleep(0.02)
    t.join(timeout)
    return seen, out.get("r")


# --------------------------------------------------------------------------- the hold


LUNA = catalog_prices("openai", "gpt-6-luna")
SOL_TIER = catalog_prices("openai", "gpt-6.2-sol", prompt_tokens=300_000)
M = override_prices(HOUSE)
SONNET = catalog_prices("anthropic", "claude-sonnet-5-5")
FLASH = catalog_prices("google", "gemini-3.8-flash")
BEDROCK = override_prices(BEDROCK_PRICES)
BIG = "x " * 140_000  # 280,000 bytes of prompt: above the 272K tier

HOLD_CASES = {
    # id: (agent, provider, path, body, prices, output cap the hold must use)
    "chat-max_tokens-luna": ("probe", "openai", "/v1/chat/completions",
                             {"model": "gpt-6-luna", "messages": MESSAGES, "max_tokens": 700}, LUNA, 700),
    "chat-max_completion_tokens": ("probe", "house", "/v1/chat/completions",
                                   {"model": "m", "messages": MESSAGES, "max_completion_tokens": 600}, M, 600),
    "responses-max_output_tokens": ("probe", "house", "/v1/responses",
                                    {"model": "m", "input": "hello", "max_output_tokens": 500}, M, 500),
    "chat-no-cap-default": ("probe", "house", "/v1/chat/completions",
                            {"model": "m", "messages": MESSAGES}, M, DEFAULT_MAX_OUTPUT),
    "anthropic-max_tokens": ("probe", "anthropic", "/v1/messages",
                             {"model": "claude-sonnet-5-5", "max_tokens": 300, "messages": MESSAGES}, SONNET, 300),
    "gemini-maxOutputTokens": ("probe", "google", "/v1/models/gemini-3.8-flash:generateContent",
                               {"contents": [{"parts": [{"text": "hi"}]}],
                                "generationConfig": {"maxOutputTokens": 200}}, FLASH, 200),
    "bedrock-inferenceConfig": ("probe", "bedrock", "/model/" + BEDROCK_MODEL.replace(":", "%3A") + "/converse",
                                {"messages": [{"role": "user", "content": [{"text": "hi"}]}],
                                 "inferenceConfig": {"maxTokens": 100}}, BEDROCK, 100),
    "long-prompt-tier": ("vip", "openai", "/v1/chat/completions",
                         {"model": "gpt-6.2-sol", "messages": [{"role": "user", "content": BIG}], "max_tokens": 100},
                         SOL_TIER, 100),
}


@pytest.mark.parametrize("case", list(HOLD_CASES), ids=list(HOLD_CASES))
def test_hold_is_the_request_maximum_cost(bgw, upstream, bedrock, case):
    """While the request is in flight, `/api/v1/budgets` shows exactly its maximum cost
    reserved; afterwards only the actual cost is spent."""
    agent, prov, path, body, prices, max_out = HOLD_CASES[case]
    upstream.response_delay = bedrock.response_delay = 0.4
    before = wait_settled(bgw, agent) if agent in budgets(bgw) else {"spent_nanousd": 0}
    raw = json.dumps(body, separators=(",", ":")).encode()
    cid = new_conversation()
    reserved, r = observe_hold(bgw, agent, lambda: post(bgw, agent, prov, path, raw, [(CONV, cid)]))
    assert r is not None and r.status == 200, r
    expected = hold_of(raw, prices, max_out)
    rec = wait_record(bgw, cid)
    after = wait_settled(bgw, agent)
    assert after["spent_nanousd"] - before["spent_nanousd"] == int(rec["cost_nanousd"] or 0)
    assert reserved == expected, (
        f"held {reserved} nano-USD for {len(raw)} body bytes and an output cap of {max_out}; expected "
        f"{len(raw)} × {max(v for b, v in prices.items() if b != 'output')} (dearest input-side price) + "
        f"{max_out} × {prices['output']} = {expected}")


@pytest.mark.parametrize("case", ["openai-n", "gemini-candidateCount"])
def test_hold_covers_every_choice(bgw, upstream, case):
    """`n: 4` (OpenAI) / `candidateCount: 4` (Gemini) asks for four answers, each up to the
    output cap: the most the request can cost has four times the output."""
    upstream.response_delay = 0.4
    if case == "openai-n":
        prov, path, prices = "house", "/v1/chat/completions", M
        body = {"model": "m", "messages": MESSAGES, "max_tokens": 1000, "n": 4}
    else:
        prov, path, prices = "google", "/v1/models/gemini-3.8-flash:generateContent", FLASH
        body = {"contents": [{"parts": [{"text": "hi"}]}],
                "generationConfig": {"maxOutputTokens": 1000, "candidateCount": 4}}
    raw = json.dumps(body, separators=(",", ":")).encode()
    reserved, r = observe_hold(bgw, "probe", lambda: post(bgw, "probe", prov, path, raw))
    assert r.status == 200, r
    expected = hold_of(raw, prices, 4 * 1000)
    assert reserved == expected, f"held {reserved} for 4 answers of up to 1000 tokens; expected {expected}"
    wait_settled(bgw, "probe")


def test_hold_reads_gemini_snake_case_generation_config(bgw, upstream):
    """Gemini's REST API takes proto field names too (`generation_config.max_output_tokens`);
    the hold must use that cap, not `default_max_output_tokens`."""
    upstream.response_delay = 0.4
    body = {"contents": [{"parts": [{"text": "hi"}]}], "generation_config": {"max_output_tokens": 20_000}}
    raw = json.dumps(body, separators=(",", ":")).encode()
    reserved, r = observe_hold(bgw, "probe", lambda: post(bgw, "probe", "google",
                                                          "/v1/models/gemini-3.8-flash:generateContent", raw))
    assert r.status == 200, r
    assert reserved == hold_of(raw, FLASH, 20_000), f"held {reserved}: the output cap 20000 was not read"
    wait_settled(bgw, "probe")


# --------------------------------------------------------------------------- concurrency


@pytest.mark.timeout(60)
def test_64_concurrent_requests_room_for_10(bgw, upstream):
    """64 requests at once against a cap with room for exactly 10 holds: at most 10 reach the
    provider, the rest get 429 budget_exceeded with Retry-After, and the stored spend never
    passes the cap."""
    upstream.usage = BURST_USAGE
    upstream.response_delay = 1.5  # the admitted ones hold their reservation meanwhile
    n = 64
    barrier = threading.Barrier(n)
    times: list = [None] * n

    def one(i: int):
        barrier.wait()
        t0 = time.monotonic()
        r = chat(bgw, "burst", BURST_BODY)
        times[i] = (t0, time.monotonic(), time.time())
        return r

    with ThreadPoolExecutor(n) as ex:
        results = list(ex.map(one, range(n)))
    ok = [i for i, r in enumerate(results) if r.status == 200]
    refused = [i for i, r in enumerate(results) if r.status == 429]
    assert len(ok) + len(refused) == n, [r.status for r in results]
    assert len(ok) <= 10, f"{len(ok)} requests admitted against room for 10"
    # Every request was sent before the first admitted one was answered: all 64 were in flight
    # together, so exactly 10 fit.
    assert max(times[i][0] for i in range(n)) < min(times[i][1] for i in ok)
    assert len(ok) == 10, f"{len(ok)} admitted; the cap {BURST_CAP} holds 10 × {BURST_HOLD}"
    for i in refused[:5]:
        assert_budget_exceeded(results[i], "burst", "daily", at=times[i][2])
    assert len(upstream.requests) == len(ok), "refused requests reached the provider"
    time.sleep(0.3)
    recs = agent_records(bgw, "burst")
    assert len(recs) == len(ok)
    spent = sum(int(r["cost_nanousd"]) for r in recs)
    assert spent == len(ok) * BURST_COST <= BURST_CAP
    b = wait_settled(bgw, "burst")
    assert b["spent_nanousd"] == spent and b["reserved_nanousd"] == 0
    assert b["cap_nanousd"] == BURST_CAP and b["window"] == "daily"
    assert b["resets_at"] == rfc3339(next_reset("daily"))
    assert b["window_start"] == rfc3339(next_reset("daily") - 86400)
    assert b["used_percent"] == spent * 100 // BURST_CAP
    assert b["warn_at_percent"] is None
    # With the holds settled, the room is back.
    assert chat(bgw, "burst", BURST_BODY).status == 200


# --------------------------------------------------------------------------- warnings


def test_warning_header_past_threshold(bgw, upstream):
    """Default budget 0.50 USD, warning at 80 %. Spend honestly (output = its cap) to 60 %, then
    past 80 %: responses then carry x-aigw-budget-warning naming the agent."""
    prices = M
    r1_out = 150_000  # 0.30 USD of output
    upstream.usage = {"prompt_tokens": 1, "completion_tokens": r1_out, "total_tokens": r1_out + 1}
    r = chat(bgw, "warn", m_body(r1_out))
    assert r.status == 200 and r.header("x-aigw-budget-warning") is None, r.headers
    upstream.usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    r = chat(bgw, "warn", m_body(1))
    assert r.status == 200 and r.header("x-aigw-budget-warning") is None, "60 % used: no warning yet"
    r3_out = 55_000  # 0.11 USD: 82 % spent after it
    upstream.usage = {"prompt_tokens": 1, "completion_tokens": r3_out, "total_tokens": r3_out + 1}
    chat(bgw, "warn", m_body(r3_out))
    spent = wait_settled(bgw, "warn")["spent_nanousd"]
    assert spent * 100 // DEFAULT_CAP >= 80, spent
    upstream.usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    r = chat(bgw, "warn", m_body(1))
    assert r.status == 200
    warning = r.header("x-aigw-budget-warning")
    assert warning and "'warn'" in warning and "daily" in warning, r.headers
    assert f"{spent * 100 // DEFAULT_CAP}%" in warning, warning
    assert cost(prices, input=1, output=1) > 0


# --------------------------------------------------------------------------- windows and overrides


def test_agent_budget_overrides_default(bgw, upstream):
    """A request holding 0.60 USD: past the default cap (0.50) for `tests`, inside vip's own
    weekly 100 USD."""
    upstream.usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    body = m_body(300_000)  # 0.60 USD of output cap
    r = chat(bgw, "tests", body)
    assert_budget_exceeded(r, "tests", "daily")
    assert upstream.requests == []
    r = chat(bgw, "vip", body)
    assert r.status == 200, r
    b = wait_settled(bgw, "vip")
    assert b["window"] == "weekly" and b["cap_nanousd"] == 100 * 10**9 and b["warn_at_percent"] == 90
    assert b["resets_at"] == rfc3339(next_reset("weekly"))
    assert b["window_start"] == rfc3339(next_reset("weekly") - 7 * 86400)
    d = budgets(bgw)["tests"]
    assert d["window"] == "daily" and d["cap_nanousd"] == DEFAULT_CAP


def test_monthly_window_retry_after(bgw, upstream):
    r = chat(bgw, "monthly", m_body(1))
    assert_budget_exceeded(r, "monthly", "monthly")
    assert upstream.requests == []
    b = budgets(bgw)["monthly"]
    assert b["resets_at"] == rfc3339(next_reset("monthly")) and b["spent_nanousd"] == 0


@pytest.mark.parametrize("prov,body", [
    ("openai", {"model": "gpt-unknown-9", "messages": MESSAGES, "max_tokens": 5}),
    ("local", {"model": "llama3", "messages": MESSAGES, "max_tokens": 5}),
    ("openai", {"messages": MESSAGES, "max_tokens": 5}),
], ids=["unknown-model", "openai-compatible", "no-model"])
def test_unpriced_model_under_budget_is_403(bgw, upstream, prov, body):
    r = chat(bgw, "tests", body, provider_name=prov)
    b = assert_gateway_error(r, 403, "unpriced_model")
    assert "'tests'" in b["error"]["message"], b
    assert upstream.requests == []


# --------------------------------------------------------------------------- settling


def test_upstream_error_releases_the_hold(bgw, upstream):
    upstream.fail_with(500, {"error": {"message": "boom", "type": "server_error", "param": None, "code": None}})
    cid = new_conversation()
    r = chat(bgw, "errs", m_body(100_000), headers=[(CONV, cid)])
    assert r.status == 500
    assert wait_record(bgw, cid)["outcome"] == "upstream_error"
    b = wait_settled(bgw, "errs")
    assert b["spent_nanousd"] == 0 and b["reserved_nanousd"] == 0


def test_unreachable_upstream_releases_the_hold(bgw):
    """Nothing reached a provider (connection refused): nothing was spent."""
    cid = new_conversation()
    r = chat(bgw, "down", m_body(100_000), provider_name="house-down", headers=[(CONV, cid)])
    assert r.status in (502, 503), r
    rec = wait_record(bgw, cid)
    b = wait_settled(bgw, "down")
    assert b["spent_nanousd"] == 0, f"spent {b['spent_nanousd']} on a request no provider received: {rec}"


def test_stream_settles_actual_cost(bgw, upstream):
    """A stream without include_usage: the injected usage chunk gives the actual cost."""
    upstream.usage = {"prompt_tokens": 40, "completion_tokens": 9, "total_tokens": 49}
    cid = new_conversation()
    r = chat(bgw, "streamer", m_body(5000, stream=True), headers=[(CONV, cid)])
    assert r.status == 200 and b'"choices":[]' not in r.body
    rec = wait_record(bgw, cid)
    assert rec["cost_nanousd"] == str(cost(M, input=40, output=9))
    assert wait_settled(bgw, "streamer")["spent_nanousd"] == int(rec["cost_nanousd"])


def test_no_usage_keeps_the_whole_hold(bgw, upstream):
    upstream.omit_usage = True
    body = m_body(2000)
    cid = new_conversation()
    r = chat(bgw, "nousage", body, headers=[(CONV, cid)])
    assert r.status == 200
    assert wait_record(bgw, cid)["usage_reported"] == "false"
    assert wait_settled(bgw, "nousage")["spent_nanousd"] == hold_of(body, M, 2000)


def test_client_disconnect_settles_usage_seen(bgw, upstream):
    """Anthropic stream cut after message_start: the input seen is spent, the rest released."""
    import socket

    upstream.usage = {"input_tokens": 500, "output_tokens": 50, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0}
    upstream.stream_chunks, upstream.chunk_delay = 20, 0.1
    cid = new_conversation()
    raw = json.dumps({"model": "claude-sonnet-5-5", "max_tokens": 2000, "messages": MESSAGES,
                      "stream": True}).encode()
    s = socket.create_connection((bgw.host, bgw.port), timeout=10)
    head = [f"POST {PREFIX}/anthropic/v1/messages HTTP/1.1", f"Host: {bgw.host}:{bgw.port}",
            "Content-Type: application/json", f"Content-Length: {len(raw)}", f"x-api-key: {KEYS['quitter']}",
            "anthropic-version: 2023-06-01", f"{CONV}: {cid}"]
    s.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + raw)
    buf = b""
    while buf.count(b"\n\n") < 4:
        buf += s.recv(65536)
    s.close()
    rec = wait_record(bgw, cid, timeout=5)
    assert rec["outcome"] == "client_disconnected"
    assert rec["cost_nanousd"] == str(cost(SONNET, input=500, output=1)), rec
    assert wait_settled(bgw, "quitter")["spent_nanousd"] == int(rec["cost_nanousd"])


def test_budgets_endpoint_matches_records(bgw):
    """For every agent whose requests all reported usage, spent = Σ recorded cost."""
    time.sleep(0.2)
    recs = api_records(bgw)
    listed = budgets(bgw)
    for agent, b in listed.items():
        rs = [r for r in recs if (r["agent"] or "anonymous") == agent]
        if any(r["usage_reported"] == "false" and r["status"] == "200" for r in rs):
            continue  # those keep their hold, which no record prices
        assert b["reserved_nanousd"] == 0, b
        assert b["spent_nanousd"] == sum(int(r["cost_nanousd"] or 0) for r in rs), (agent, b)
        assert b["cap_usd"] and b["spent_usd"].replace(".", "").isdigit()
        whole, frac = b["spent_usd"].split(".")
        assert int(whole) * 10**9 + int(frac.ljust(9, "0")) == b["spent_nanousd"], b
    assert {"burst", "vip", "tests", "warn"} <= set(listed)


# --------------------------------------------------------------------------- restarts


def test_restart_counts_recorded_spend(bgw, upstream):
    """Spend recorded today counts against the budget again after a sidecar restart."""
    out = 150_000  # 0.30 USD
    upstream.usage = {"prompt_tokens": 10, "completion_tokens": out, "total_tokens": out + 10}
    cid = new_conversation()
    assert chat(bgw, "persist", m_body(out), headers=[(CONV, cid)]).status == 200
    spent = int(wait_record(bgw, cid)["cost_nanousd"])
    assert spent == cost(M, input=10, output=out)
    assert wait_settled(bgw, "persist")["spent_nanousd"] == spent
    before = {a: b["spent_nanousd"] for a, b in budgets(bgw).items()}
    restart_sidecar(bgw)
    after = budgets(bgw)
    assert after["persist"]["spent_nanousd"] == spent
    # 0.25 USD more does not fit (0.30 + 0.25 > 0.50), 0.10 does.
    r = chat(bgw, "persist", m_body(125_000))
    assert_budget_exceeded(r, "persist", "daily")
    upstream.usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    assert chat(bgw, "persist", m_body(50_000)).status == 200
    # Every agent whose spend is all in the records got it back.
    recs = api_records(bgw)
    for agent in ("burst", "vip", "warn", "streamer", "quitter", "probe"):
        if agent in before:
            assert after[agent]["spent_nanousd"] == before[agent] == sum(
                int(r["cost_nanousd"] or 0) for r in recs if r["agent"] == agent), agent


@pytest.mark.xfail(strict=True, reason="known gap: a response without usage keeps its whole hold on the budget, "
                   "but the record has no cost, and a restart reloads spend from recorded costs only")
def test_restart_keeps_spend_held_without_usage(bgw, upstream):
    """A response without usage keeps its whole hold as spend; a restart must not forget it
    (else every restart hands such an agent its budget back)."""
    upstream.omit_usage = True
    body = m_body(100_000)  # 0.20 USD held and kept
    assert chat(bgw, "nousage", body).status == 200
    before = wait_settled(bgw, "nousage")["spent_nanousd"]
    assert before >= hold_of(body, M, 100_000)
    restart_sidecar(bgw)
    after = budgets(bgw).get("nousage", {}).get("spent_nanousd", 0)
    assert after == before, f"spent {before} nano-USD before the restart, {after} after"


def test_restart_keeps_anonymous_spend(bgw, upstream):
    """Passthrough without a gateway token: the default budget applies to `anonymous`; its
    spend must survive a restart too."""
    upstream.usage = {"input_tokens": 1000, "output_tokens": 100, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0}
    cid = new_conversation()
    r = bgw.request("POST", f"{PREFIX}/anthropic-open/v1/messages",
                    [("x-api-key", "sk-ant-client-own-key"), ("anthropic-version", "2023-06-01"), (CONV, cid),
                     ("Content-Type", "application/json")],
                    {"model": "claude-sonnet-5-5", "max_tokens": 200, "messages": MESSAGES})
    assert r.status == 200, r
    rec = wait_record(bgw, cid)
    assert rec["principal"] == "anonymous"
    spent = wait_settled(bgw, "anonymous")["spent_nanousd"]
    assert spent == int(rec["cost_nanousd"]) == cost(SONNET, input=1000, output=100)
    restart_sidecar(bgw)
    after = budgets(bgw).get("anonymous", {}).get("spent_nanousd", 0)
    assert after == spent, f"anonymous spent {spent} nano-USD before the restart, {after} after"
