"""Config reload without restart, through the real Envoy, filter and sidecar: the sidecar
re-reads its config file (here the Envoy YAML, rewritten atomically as a ConfigMap update
lands), validates it as at start-up and swaps it in for new requests; the filter's provider
table follows within a snapshot poll. A bad config is refused with the field named and the
old one kept. Envoy is never restarted."""

from __future__ import annotations

import copy
import os
import signal
import threading
import time

import openai
import pytest

from harness import Gateway, provider
from harness.usage import CONVERSATION_HEADER as CONV, budgets, new_conversation, wait_record
from test_errors import assert_gateway_error

MESSAGES = [{"role": "user", "content": "Say hello"}]
HOUSE_PRICES = {"input": "1.00", "output": "2.00"}  # nano-USD per token: 1000 in, 2000 out
USAGE = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
CALL_COST = 5 * 1000 + 3 * 2000
KEYS = {"app": "gw-reload-app-" + "1" * 20, "capped": "gw-reload-capped-" + "2" * 17}
# A provider is reachable from a new request within the sidecar's check (1 s) plus the
# filter's next poll (1 s).
FOLLOW_S = 5.0


def base_plugin(mock) -> dict:
    return {
        "providers": [
            provider("openai", "openai", f"{mock.url}/v1", "OPENAI_API_KEY"),
            {**provider("house", "openai", f"{mock.url}/v1", "OPENAI_API_KEY"),
             "models": [{"name": "m", **HOUSE_PRICES}]},
            provider("slow", "openai-compatible", f"{mock.url}/v1"),
        ],
        "api_keys": [{"name": n, "secret": f"KEY_{n.upper()}"} for n in KEYS],
        "budgets": {"agents": {"capped": {"cap_usd": "1", "window": "daily"}}},
    }


@pytest.fixture(scope="module")
def rgw(tmp_path_factory, _upstream_server, keys) -> Gateway:
    secrets = {**keys.secrets(), **{f"KEY_{n.upper()}": v for n, v in KEYS.items()}}
    plugin = base_plugin(_upstream_server)
    gw = Gateway(tmp_path_factory.mktemp("reload-gw"), plugin["providers"], secrets, plugin["api_keys"],
                 name="reload")
    gw.plugin.update(plugin)
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture
def plugin(rgw, upstream):
    """The base config, live again before each test (tests change copies of it)."""
    base = base_plugin(upstream)
    if rgw.plugin != base:
        st = rgw.reload(copy.deepcopy(base))
        assert st["error"] is None, st
    return base


def client(gw: Gateway, provider_name: str, key: str = "app") -> openai.OpenAI:
    return openai.OpenAI(api_key=KEYS[key], base_url=gw.url(provider_name), max_retries=0, timeout=15)


def chat(gw: Gateway, provider_name: str, key: str = "app", **kw):
    return client(gw, provider_name, key).chat.completions.create(model=kw.pop("model", "m"), messages=MESSAGES, **kw)


def eventually(fn, timeout: float = FOLLOW_S):
    """`fn()` once it stops raising (the filter follows within a poll), else its last error."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def raw_chat(gw: Gateway, provider_name: str, key: str = "app"):
    return gw.request("POST", f"/llm/v1/providers/{provider_name}/chat/completions",
                      [("authorization", f"Bearer {KEYS[key]}"), ("content-type", "application/json")],
                      b'{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":10}')


@pytest.mark.timeout(60)
def test_an_added_provider_serves_new_requests(rgw, upstream, plugin):
    assert_gateway_error(raw_chat(rgw, "extra"), 404, "unknown_provider")
    assert not upstream.requests, "an unknown provider reaches no upstream"

    new = copy.deepcopy(plugin)
    new["providers"].append(provider("extra", "openai-compatible", f"{upstream.url}/v1", "LOCAL_API_KEY"))
    st = rgw.reload(new)
    assert st["error"] is None and st["reloads"] >= 1, st

    conv = new_conversation()
    r = eventually(lambda: client(rgw, "extra").chat.completions.create(
        model="mock-model", messages=MESSAGES, extra_headers={CONV: conv}))
    assert r.choices[0].message.content
    # The new provider's upstream key was injected, the gateway key was not forwarded.
    sent = upstream.requests[-1]
    assert sent.header("authorization") == f"Bearer {rgw.initial_secrets['LOCAL_API_KEY']}"
    rec = wait_record(rgw, conv)
    assert (rec["provider"], rec["outcome"]) == ("extra", "complete")
    # Envoy was not restarted: the same process served before and after.
    assert rgw.envoy.alive()


@pytest.mark.timeout(60)
def test_a_removed_provider_is_unknown_to_new_requests(rgw, upstream, plugin):
    chat(rgw, "openai", model="mock-model")
    new = copy.deepcopy(plugin)
    new["providers"] = [p for p in new["providers"] if p["name"] != "openai"]
    assert rgw.reload(new)["error"] is None

    def refused():
        assert_gateway_error(raw_chat(rgw, "openai"), 404, "unknown_provider")
    eventually(refused)
    upstream.reset()
    for _ in range(5):
        refused()
    assert not upstream.requests, "a removed provider reaches no upstream"


@pytest.mark.timeout(60)
def test_a_running_stream_finishes_under_the_config_it_started_with(rgw, upstream, plugin):
    """The provider is removed while its stream runs: the stream ends whole and is recorded."""
    conv = new_conversation()
    got: list[str] = []
    first = threading.Event()
    errors: list[BaseException] = []

    def stream():
        try:
            s = client(rgw, "slow").chat.completions.create(
                model="mock-chunks10-delay200", messages=MESSAGES, stream=True,
                stream_options={"include_usage": True}, extra_headers={CONV: conv})
            for chunk in s:
                if chunk.choices and chunk.choices[0].delta.content:
                    got.append(chunk.choices[0].delta.content)
                    first.set()
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)
            first.set()

    t = threading.Thread(target=stream)
    t.start()
    assert first.wait(10), "no first chunk"
    new = copy.deepcopy(plugin)
    new["providers"] = [p for p in new["providers"] if p["name"] != "slow"]
    assert rgw.reload(new)["error"] is None
    eventually(lambda: assert_gateway_error(raw_chat(rgw, "slow"), 404, "unknown_provider"))
    t.join(20)
    assert not errors, errors
    assert len(got) == 10, got
    rec = wait_record(rgw, conv)
    assert (rec["provider"], rec["outcome"], rec["streamed"]) == ("slow", "complete", "true"), rec


@pytest.mark.timeout(60)
def test_a_lowered_budget_cap_counts_what_was_spent(rgw, upstream, plugin):
    upstream.usage = USAGE
    before = budgets(rgw).get("capped", {"spent_nanousd": 0})["spent_nanousd"]
    for _ in range(2):
        chat(rgw, "house", "capped", max_tokens=10)
    spent = before + 2 * CALL_COST
    eventually(lambda: _assert_spent(rgw, "capped", spent), 3)

    lower = copy.deepcopy(plugin)
    lower["budgets"]["agents"]["capped"]["cap_usd"] = f"0.{spent - 1:09d}"  # one nano-USD under
    assert rgw.reload(lower)["error"] is None
    upstream.reset()
    upstream.usage = USAGE
    with pytest.raises(openai.RateLimitError) as e:
        chat(rgw, "house", "capped", max_tokens=10)
    assert e.value.body["code"] == "budget_exceeded", e.value.body
    assert not upstream.requests, "the refused call never reached the upstream"
    b = budgets(rgw)["capped"]
    assert (b["cap_nanousd"], b["spent_nanousd"]) == (spent - 1, spent), b

    # Raised again: the same spend, room for more.
    assert rgw.reload(copy.deepcopy(plugin))["error"] is None
    chat(rgw, "house", "capped", max_tokens=10)
    eventually(lambda: _assert_spent(rgw, "capped", spent + CALL_COST), 3)
    assert budgets(rgw)["capped"]["cap_nanousd"] == 1_000_000_000


def _assert_spent(gw, agent, nanousd):
    b = budgets(gw)[agent]
    assert (b["spent_nanousd"], b["reserved_nanousd"]) == (nanousd, 0), b


@pytest.mark.timeout(90)
def test_a_changed_rate_limit_applies_to_new_requests_with_the_counts_so_far(rgw, upstream, plugin):
    if time.time() % 60 > 40:  # counters reset on the UTC minute
        time.sleep(61 - time.time() % 60)
    limited = copy.deepcopy(plugin)
    limited["rate_limits"] = [{"name": "rpm", "per": "api_key", "provider": "openai", "requests_per_minute": 100}]
    assert rgw.reload(limited)["error"] is None
    # The limit moves `openai` off the fast path: wait for the filter to know.
    eventually(lambda: _assert_limited(chat_raw_headers(rgw), "100"))
    for _ in range(2):
        chat(rgw, "openai", model="mock-model")

    tighter = copy.deepcopy(limited)
    tighter["rate_limits"][0]["requests_per_minute"] = 4
    assert rgw.reload(tighter)["error"] is None
    # 3 counted already: one more fits, the next is refused.
    raw = client(rgw, "openai").chat.completions.with_raw_response.create(model="mock-model", messages=MESSAGES)
    assert (raw.headers["x-ratelimit-limit-requests"], raw.headers["x-ratelimit-remaining-requests"]) == ("4", "0")
    upstream.reset()
    with pytest.raises(openai.RateLimitError) as e:
        chat(rgw, "openai", model="mock-model")
    assert e.value.body["code"] == "rate_limited" and "rpm" in e.value.body["message"]
    assert not upstream.requests


def chat_raw_headers(gw):
    return client(gw, "openai").chat.completions.with_raw_response.create(model="mock-model", messages=MESSAGES).headers


def _assert_limited(headers, limit: str):
    assert headers.get("x-ratelimit-limit-requests") == limit, dict(headers)


@pytest.mark.timeout(60)
def test_a_bad_config_is_refused_with_the_field_named_and_the_old_one_kept(rgw, upstream, plugin):
    from harness.usage import parse_metrics

    def metric(name: str) -> float:
        status, body, _ = rgw.sidecar_admin("/metrics")
        return next(v for n, _, v in parse_metrics(body.decode()) if n == name)

    failures = metric("aigw_config_reload_failures_total")
    bad = copy.deepcopy(plugin)
    bad["providers"][0]["name"] = "Not A Name"
    st = rgw.reload(bad)
    assert "providers[0].name" in st["error"], st
    assert metric("aigw_config_reload_failures_total") == failures + 1
    assert metric("aigw_config_file_refused") == 1

    # A secret that does not exist: refused too, naming the secret and the field.
    missing = copy.deepcopy(plugin)
    missing["providers"].append(provider("new", "openai", f"{upstream.url}/v1", "NO_SUCH_SECRET"))
    st = rgw.reload(missing)
    assert "NO_SUCH_SECRET (from providers[3].api_key_secret)" in st["error"], st
    assert "sk-" not in st["error"]

    # The old config still serves, on both sides: a provider of the refused config is unknown.
    time.sleep(1.5)  # past a snapshot poll
    chat(rgw, "openai", model="mock-model")
    assert_gateway_error(raw_chat(rgw, "new"), 404, "unknown_provider")
    assert "Not A Name" not in rgw.sidecar_admin("/api/v1/providers")[1].decode()

    # Fixed: applied, the refusal is over.
    fixed = copy.deepcopy(missing)
    fixed["providers"][-1]["api_key_secret"] = "OPENAI_API_KEY"
    st = rgw.reload(fixed)
    assert st["error"] is None, st
    assert metric("aigw_config_file_refused") == 0
    eventually(lambda: chat(rgw, "new", model="mock-model"))


@pytest.mark.timeout(60)
def test_sighup_reloads_at_once(make_gateway, upstream):
    """With the file re-read only every minute, SIGHUP applies a change straight away."""
    gw = make_gateway(sidecar_args=["--secrets-refresh-ms", "60000"], name="sighup")
    new = copy.deepcopy(gw.plugin)
    new["providers"].append(provider("extra", "openai-compatible", f"{upstream.url}/v1"))
    gw.write_plugin(new)
    time.sleep(0.5)
    assert gw.config_status()["reloads"] == 0, "not re-read before its minute"
    os.kill(gw.sidecar.pid, signal.SIGHUP)
    deadline = time.monotonic() + 3
    while gw.config_status()["reloads"] == 0:
        assert time.monotonic() < deadline, gw.logs()
        time.sleep(0.05)
    assert gw.sidecar.alive()
    assert any(p["name"] == "extra" for p in
               __import__("json").loads(gw.sidecar_admin("/api/v1/providers")[1])["providers"])
