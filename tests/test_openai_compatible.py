"""openai-compatible providers (vLLM, Ollama, the demo mock), and TLS upstreams."""

from __future__ import annotations

import openai
import pytest

MESSAGES = [{"role": "user", "content": "Say hello"}]


def _client(gateway, keys, name, **kw) -> openai.OpenAI:
    return openai.OpenAI(api_key=keys.gateway, base_url=gateway.url(name), max_retries=0, timeout=15, **kw)


def test_keyless_provider_sends_no_authorization(gateway, upstream, keys):
    r = _client(gateway, keys, "local").chat.completions.create(model="llama-mock", messages=MESSAGES)
    assert r.choices[0].message.content == upstream.answer
    rec = upstream.only()
    assert rec.path == "/v1/chat/completions"
    assert rec.header("authorization") is None
    assert not rec.contains(keys.gateway)


def test_keyless_provider_stream(gateway, upstream, keys):
    chunks = list(_client(gateway, keys, "local").chat.completions.create(
        model="llama-mock-chunks3", messages=MESSAGES, stream=True, stream_options={"include_usage": True}))
    assert chunks[-1].usage is not None
    rec = upstream.only()
    assert rec.header("authorization") is None


def test_keyed_provider_gets_bearer(gateway, upstream, keys):
    _client(gateway, keys, "local-keyed").models.list()
    rec = upstream.only()
    assert rec.path == "/v1/models"
    assert rec.header_all("authorization") == [f"Bearer {keys.local}"]
    assert not rec.contains(keys.gateway)


def test_tls_upstream(gateway, tls_upstream, upstream, keys):
    r = _client(gateway, keys, "openai-tls").chat.completions.create(model="gpt-mock", messages=MESSAGES)
    assert r.choices[0].message.content == tls_upstream.answer
    rec = tls_upstream.only()
    assert rec.path == "/v1/chat/completions"
    assert rec.header("host") == tls_upstream.authority  # localhost:<port>: SNI and SAN check used it
    assert rec.header_all("authorization") == [f"Bearer {keys.openai}"]
    assert not rec.contains(keys.gateway)
    assert upstream.requests == []


@pytest.mark.timeout(20)
def test_tls_upstream_stream(gateway, tls_upstream, keys):
    chunks = list(_client(gateway, keys, "openai-tls").chat.completions.create(
        model="gpt-mock-chunks3-delay50", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "tok0 tok1 tok2"
