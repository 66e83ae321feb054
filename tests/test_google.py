"""The official google-genai SDK (>= 3: API version v1) through the gateway."""

from __future__ import annotations

import time

import pytest
from google import genai
from google.genai import types

from mocks.upstream import joined_pieces


@pytest.fixture
def client(gateway, keys) -> genai.Client:
    return genai.Client(api_key=keys.gateway,
                        http_options=types.HttpOptions(base_url=gateway.url("google"), timeout=15_000))


def assert_clean(rec, keys, upstream):
    assert rec.header("host") == upstream.authority
    assert rec.header_all("x-goog-api-key") == [keys.google]
    assert rec.header("authorization") is None
    assert not rec.contains(keys.gateway), f"gateway key leaked upstream: {rec.path} {rec.headers}"
    assert "key=" not in (rec.query or "")


def test_generate_content(client, upstream, keys):
    r = client.models.generate_content(model="gemini-mock", contents="Say hello")
    assert r.text == upstream.answer
    assert r.usage_metadata.prompt_token_count == 2
    rec = upstream.only()
    assert rec.method == "POST"
    assert rec.path == "/v1/models/gemini-mock:generateContent"
    assert rec.json()["contents"][0]["parts"][0]["text"] == "Say hello"
    assert_clean(rec, keys, upstream)


def test_generate_content_stream(client, upstream, keys):
    chunks = list(client.models.generate_content_stream(model="gemini-mock-chunks4", contents="Say hello"))
    assert "".join(c.text for c in chunks) == joined_pieces(4)
    assert chunks[-1].usage_metadata.candidates_token_count == 4
    rec = upstream.only()
    assert rec.path == "/v1/models/gemini-mock-chunks4:streamGenerateContent?alt=sse"
    assert_clean(rec, keys, upstream)


@pytest.mark.timeout(20)
def test_stream_arrives_chunk_by_chunk(client, upstream):
    received = []
    for _ in client.models.generate_content_stream(model="gemini-mock-chunks5-delay200", contents="hi"):
        received.append(time.monotonic())
    assert len(received) == 5
    sent = upstream.only().chunk_times
    assert received[-1] - received[0] >= 0.6
    assert max(r - s for r, s in zip(received, sent)) < 0.25


def test_v1beta_api_version(gateway, upstream, keys):
    c = genai.Client(api_key=keys.gateway,
                     http_options=types.HttpOptions(base_url=gateway.url("google"), api_version="v1beta",
                                                    timeout=15_000))
    c.models.generate_content(model="gemini-mock", contents="hi")
    rec = upstream.only()
    assert rec.path == "/v1beta/models/gemini-mock:generateContent"
    assert_clean(rec, keys, upstream)


def test_key_in_query_is_lifted(gateway, upstream, keys):
    r = gateway.request(
        "POST", f"/llm/v1/providers/google/v1beta/models/gemini-mock:streamGenerateContent?key={keys.gateway}&alt=sse",
        body={"contents": [{"parts": [{"text": "hi"}]}]})
    assert r.status == 200, r
    assert r.body.startswith(b"data: ")
    rec = upstream.only()
    assert rec.path == "/v1beta/models/gemini-mock:streamGenerateContent?alt=sse"
    assert_clean(rec, keys, upstream)


def test_key_in_query_only_param(gateway, upstream, keys):
    r = gateway.request("POST", f"/llm/v1/providers/google/v1/models/gemini-mock:generateContent?key={keys.gateway}",
                        body={"contents": [{"parts": [{"text": "hi"}]}]})
    assert r.status == 200, r
    rec = upstream.only()
    assert rec.path == "/v1/models/gemini-mock:generateContent"
    assert_clean(rec, keys, upstream)


def test_provider_error_reaches_the_sdk(client, upstream):
    from google.genai import errors

    upstream.fail_with(429, {"error": {"code": 429, "message": "Resource has been exhausted",
                                       "status": "RESOURCE_EXHAUSTED"}})
    with pytest.raises(errors.ClientError) as ei:
        client.models.generate_content(model="gemini-mock", contents="hi")
    assert ei.value.code == 429 and ei.value.status == "RESOURCE_EXHAUSTED"
