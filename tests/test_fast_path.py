"""The filter's fast path (core/src/feed.rs): API-key calls that need no budget reservation,
no model list, no SigV4 and no passthrough are completed by the filter alone, without the
ext_proc round trip; everything else still goes through the sidecar. Which path a call took
is read from Envoy's ext_proc stream counter. The answers and records of both paths are
compared by test_usage.py, which runs every test on both."""

from __future__ import annotations

import time

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as gtypes

from conftest import standard_providers
from harness import GATEWAY_KEY_SECRET, Gateway, wait_for
from harness.usage import CONVERSATION_HEADER as CONV, new_conversation, wait_record

CHAT = "/llm/v1/providers/openai/chat/completions"
BODY = {"model": "gpt-mock", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def fgw(make_gateway):
    return make_gateway(name="fast")


def test_sdk_calls_skip_the_sidecar(fgw, upstream, keys):
    before = fgw.sidecar_streams()
    oa = openai.OpenAI(api_key=keys.gateway, base_url=fgw.url("openai"), max_retries=0, timeout=10)
    assert oa.chat.completions.create(**BODY).choices[0].message.content
    assert "".join(c.choices[0].delta.content or "" for c in oa.chat.completions.create(**BODY, stream=True)
                   if c.choices)
    assert oa.models.list().data
    cl = anthropic.Anthropic(api_key=keys.gateway, base_url=fgw.url("anthropic"), max_retries=0, timeout=10)
    assert cl.messages.create(model="claude-mock", max_tokens=16, messages=[{"role": "user", "content": "hi"}]).content
    gm = genai.Client(api_key=keys.gateway, http_options=gtypes.HttpOptions(base_url=fgw.url("google"), timeout=10_000))
    assert gm.models.generate_content(model="gemini-mock", contents="hi").text
    local = openai.OpenAI(api_key=keys.gateway, base_url=fgw.url("local"), max_retries=0, timeout=10)
    assert local.chat.completions.create(**BODY).choices
    assert fgw.sidecar_streams() == before, "a call went through the sidecar"

    # What each upstream got is what the sidecar path sends (test_auth.py checks that path).
    by_path: dict = {}
    for r in upstream.requests:
        by_path.setdefault(r.path_only, r)  # the first: openai's, then the keyless local one
    chat = by_path["/v1/chat/completions"]
    assert chat.header_all("authorization") == [f"Bearer {keys.openai}"]
    assert chat.header("accept-encoding") is None, "a metered answer must be readable"
    msgs = by_path["/v1/messages"]
    assert msgs.header_all("x-api-key") == [keys.anthropic] and msgs.header("authorization") is None
    assert msgs.header("anthropic-version")
    gen = next(r for p, r in by_path.items() if p.endswith(":generateContent"))
    assert gen.header_all("x-goog-api-key") == [keys.google]
    for r in upstream.requests:
        assert keys.gateway not in str(r.headers), "the gateway key reached the upstream"
        assert not [h for h, _ in r.headers if h.lower().startswith("x-aigw-")]


def test_a_stream_gets_its_usage_and_the_client_the_stream_it_asked_for(fgw, upstream, keys):
    before = fgw.sidecar_streams()
    cid = new_conversation()
    oa = openai.OpenAI(api_key=keys.gateway, base_url=fgw.url("openai"), max_retries=0, timeout=10,
                       default_headers={CONV: cid})
    chunks = list(oa.chat.completions.create(**BODY, stream=True))
    assert chunks and all(c.usage is None for c in chunks), "the client did not ask for usage"
    sent = upstream.only().json()
    assert sent["stream_options"] == {"include_usage": True}
    rec = wait_record(fgw, cid)
    assert rec["usage_reported"] == "true" and int(rec["output_tokens"]) > 0, rec
    assert rec["streamed"] == "true" and rec["outcome"] == "complete", rec
    assert fgw.sidecar_streams() == before


@pytest.fixture
def mixed(tmp_path, upstream, keys):
    """A key with a budget, one without, and a provider with a model list."""
    providers = standard_providers(upstream)
    providers.append({"name": "listed", "type": "openai", "base_url": f"{upstream.url}/v1",
                      "api_key_secret": "OPENAI_API_KEY", "models": [{"name": "gpt-mock"}]})
    gw = Gateway(tmp_path / "mixed", providers, {**keys.secrets(), "CAPPED_KEY": CAPPED},
                 [{"name": "tests", "secret": GATEWAY_KEY_SECRET}, {"name": "capped", "secret": "CAPPED_KEY"}],
                 name="mixed")
    gw.plugin["budgets"] = {"agents": {"capped": {"cap_usd": "100", "window": "daily"}}}
    gw.start()
    yield gw
    gw.stop()


CAPPED = "gw-capped-key-0123456789"


def test_what_the_filter_cannot_do_alone_goes_through_the_sidecar(mixed, upstream, keys):
    gw = mixed
    auth = [("Authorization", f"Bearer {keys.gateway}")]
    n = gw.sidecar_streams()
    assert gw.request("POST", CHAT, auth, BODY).status == 200
    assert gw.sidecar_streams() == n, "no budget, no model list: fast path"

    priced = {**BODY, "model": "gpt-6-luna"}  # a budget needs a price to hold against
    assert gw.request("POST", CHAT, [("Authorization", f"Bearer {CAPPED}")], priced).status == 200
    assert gw.sidecar_streams() == n + 1, "a budget needs a reservation"

    r = gw.request("POST", "/llm/v1/providers/listed/chat/completions", auth, {**BODY, "model": "gpt-other"})
    assert r.status == 403 and r.json()["error"]["code"] == "model_not_allowed", r
    assert gw.sidecar_streams() == n + 2, "a model list is checked by the sidecar"

    # Unknown key: the sidecar answers (one source for every error).
    r = gw.request("POST", CHAT, [("Authorization", "Bearer gw-not-a-key")], BODY)
    assert r.status == 401 and r.json()["error"]["code"] == "invalid_credential"
    assert gw.sidecar_streams() == n + 3

    # The client's own Anthropic credential, passed through.
    gw.request("POST", "/llm/v1/providers/anthropic-own/v1/messages",
               [("Authorization", "Bearer sk-ant-own"), ("x-gateway-token", keys.gateway)],
               {"model": "claude-mock", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})
    assert gw.sidecar_streams() == n + 4


def test_fast_path_off_sends_everything_through_the_sidecar(make_gateway, upstream, keys):
    gw = make_gateway(name="slow", fast_path=False)
    n = gw.sidecar_streams()
    for _ in range(3):
        assert gw.request("POST", CHAT, [("Authorization", f"Bearer {keys.gateway}")], BODY).status == 200
    assert gw.sidecar_streams() == n + 3


def test_a_dead_sidecar_fails_fast_path_calls_closed_within_a_poll(fgw, upstream, keys):
    auth = [("Authorization", f"Bearer {keys.gateway}")]
    assert fgw.request("POST", CHAT, auth, BODY).status == 200
    fgw.sidecar.kill()
    t0 = time.monotonic()
    wait_for(lambda: fgw.request("POST", CHAT, auth, BODY).status == 503, 2.5,
             what="fast-path calls refused once the sidecar is gone")
    assert time.monotonic() - t0 < 2.5
    upstream.reset()
    for _ in range(3):
        r = fgw.request("POST", CHAT, auth, BODY)
        assert r.status == 503 and r.json()["error"]["code"] == "gateway_unavailable", r
    assert upstream.requests == []
