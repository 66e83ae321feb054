"""Rate limits (requests per second/minute/day, tokens per minute/day) through the real Envoy,
filter and sidecar, with the official SDKs: refusals are JSON 429s with `Retry-After` and
OpenAI's `x-ratelimit-*` headers, nothing reaches the upstream, concurrent calls never pass
a limit, and token holds are settled with the reported usage."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from harness import Gateway

MESSAGES = [{"role": "user", "content": "Say hello"}]
KEYS = {"limited": "lim-" + "1" * 28, "tokens": "tok-" + "2" * 28, "free": "free-" + "3" * 27}

RATE_LIMITS = [
    {"name": "per-key", "per": "api_key", "requests_per_minute": 5},
    {"name": "tpm", "per": "agent", "provider": "local", "tokens_per_minute": 2000},
]


@pytest.fixture(scope="module")
def rgw(tmp_path_factory, _upstream_server, keys) -> Gateway:
    from conftest import standard_providers

    secrets = {**keys.secrets(), **{f"KEY_{n.upper()}": v for n, v in KEYS.items()}}
    api_keys = [{"name": n, "secret": f"KEY_{n.upper()}"} for n in KEYS]
    gw = Gateway(tmp_path_factory.mktemp("limits-gw"), standard_providers(_upstream_server), secrets, api_keys,
                 name="limits")
    # `per-key` applies to the keys `limited` and `tokens` only through `per`; `free` has its own
    # counter too. Scope it to openai so the `local` provider shows the token limit alone.
    gw.plugin["rate_limits"] = [dict(RATE_LIMITS[0], provider="openai"), RATE_LIMITS[1]]
    gw.start()
    yield gw
    gw.stop()


def client(gw: Gateway, key: str, provider: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=KEYS[key], base_url=gw.url(provider), max_retries=0, timeout=15)


def away_from_minute_edge() -> None:
    """Counters reset on the UTC minute: start a counting test well inside one."""
    if time.time() % 60 > 45:
        time.sleep(61 - time.time() % 60)


@pytest.mark.timeout(60)
def test_requests_per_minute_refuses_with_headers(rgw, upstream):
    away_from_minute_edge()
    c = client(rgw, "limited", "openai")
    raw = c.chat.completions.with_raw_response.create(model="mock-model", messages=MESSAGES)
    assert raw.headers["x-ratelimit-limit-requests"] == "5"
    assert raw.headers["x-ratelimit-remaining-requests"] == "4"
    assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    for _ in range(4):
        c.chat.completions.create(model="mock-model", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as e:
        c.chat.completions.create(model="mock-model", messages=MESSAGES)
    err, h = e.value.body, e.value.response.headers
    assert err["code"] == "rate_limited" and "per-key" in err["message"]
    assert 1 <= int(h["retry-after"]) <= 60
    assert h["x-ratelimit-remaining-requests"] == "0"
    assert len(upstream.requests) == 5, "the refused call never reached the upstream"
    # Another key has its own counter; another provider is not limited by this rule.
    client(rgw, "free", "openai").chat.completions.create(model="mock-model", messages=MESSAGES)
    client(rgw, "limited", "local").chat.completions.create(model="mock-model", messages=MESSAGES, max_tokens=50)


@pytest.mark.timeout(60)
def test_concurrent_calls_never_pass_the_limit(tmp_path, upstream, keys):
    from conftest import standard_providers

    away_from_minute_edge()
    secrets = {**keys.secrets(), "KEY_BURST": "burst-" + "4" * 26}
    gw = Gateway(tmp_path / "burst", standard_providers(upstream), secrets,
                 [{"name": "burst", "secret": "KEY_BURST"}], name="burst")
    gw.plugin["rate_limits"] = [{"name": "burst", "per": "api_key", "requests_per_minute": 10}]
    with gw:
        c = openai.OpenAI(api_key=secrets["KEY_BURST"], base_url=gw.url("openai"), max_retries=0, timeout=15)

        def one(_):
            try:
                c.chat.completions.create(model="mock-model", messages=MESSAGES)
                return 200
            except openai.RateLimitError:
                return 429

        with ThreadPoolExecutor(32) as ex:
            got = list(ex.map(one, range(64)))
    assert got.count(200) == 10 and got.count(429) == 54
    assert len(upstream.requests) == 10


@pytest.mark.timeout(60)
def test_token_limit_reserves_then_settles(rgw, upstream):
    away_from_minute_edge()
    c = client(rgw, "tokens", "local")
    upstream.usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    # Each call holds up to its body's bytes plus max_tokens (900): two fit in 2000, a third not.
    raw = c.chat.completions.with_raw_response.create(model="mock-model", messages=MESSAGES, max_tokens=900)
    held = 2000 - int(raw.headers["x-ratelimit-remaining-tokens"])
    assert 900 < held < 1100, held
    # Settled at the reported 15 tokens: the room is back for the next call.
    raw = c.chat.completions.with_raw_response.create(model="mock-model", messages=MESSAGES, max_tokens=900)
    assert 2000 - int(raw.headers["x-ratelimit-remaining-tokens"]) == 15 + held
    with pytest.raises(openai.RateLimitError) as e:
        c.chat.completions.create(model="mock-model", messages=MESSAGES, max_tokens=1990)
    assert "tpm" in e.value.body["message"]
    assert e.value.response.headers["x-ratelimit-limit-tokens"] == "2000"
    assert len(upstream.requests) == 2


def test_unified_endpoint_passes_the_limit_headers_on(rgw, upstream):
    c = openai.OpenAI(api_key=KEYS["free"], base_url=rgw.unified_url, max_retries=0, timeout=15)
    raw = c.chat.completions.with_raw_response.create(model="local/mock-model", messages=MESSAGES, max_tokens=50)
    assert raw.headers["x-aigw-target"] == "local/mock-model"
    assert raw.headers["x-ratelimit-limit-tokens"] == "2000"
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) < 2000


def test_limited_providers_leave_the_fast_path(rgw, upstream):
    before = rgw.sidecar_streams()
    # (A call without max_tokens would hold the default output cap, 4096 tokens: over this limit.)
    client(rgw, "free", "local").chat.completions.create(model="mock-model", messages=MESSAGES, max_tokens=50)
    assert rgw.sidecar_streams() == before + 1, "a provider with a rate limit is counted by the sidecar"
    before = rgw.sidecar_streams()
    client(rgw, "free", "local-keyed").chat.completions.create(model="mock-model", messages=MESSAGES)
    assert rgw.sidecar_streams() == before, "providers without limits keep the fast path"
