"""The official OpenAI SDK through the gateway to an OpenAI-shaped mock."""

from __future__ import annotations

import json
import time

import openai
import pytest

from mocks.upstream import joined_pieces

MESSAGES = [{"role": "user", "content": "Say hello"}]


@pytest.fixture
def client(gateway, keys) -> openai.OpenAI:
    return openai.OpenAI(api_key=keys.gateway, base_url=gateway.url("openai"), max_retries=0, timeout=15)


def assert_clean_upstream_request(rec, keys, upstream):
    """What every forwarded request must look like at the provider."""
    assert rec.header("host") == upstream.authority
    assert rec.header_all("authorization") == [f"Bearer {keys.openai}"]
    assert not rec.contains(keys.gateway), f"gateway key leaked upstream: {rec.headers}"
    names = rec.header_names()
    assert not any(n.startswith("x-aigw-") for n in names), names
    assert "x-gateway-token" not in names


def test_chat_completion(client, upstream, keys):
    r = client.chat.completions.create(model="gpt-mock", messages=MESSAGES)
    assert r.choices[0].message.content == upstream.answer
    assert r.usage is not None and r.usage.prompt_tokens == 2 and r.usage.total_tokens > 2
    rec = upstream.only()
    assert rec.method == "POST"
    assert rec.path == "/v1/chat/completions"
    assert rec.json()["messages"] == MESSAGES
    assert rec.header("user-agent").startswith("OpenAI/Python")
    assert_clean_upstream_request(rec, keys, upstream)


def test_chat_completion_stream(client, upstream, keys):
    stream = client.chat.completions.create(model="gpt-mock-chunks4", messages=MESSAGES, stream=True)
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == joined_pieces(4)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)  # no include_usage: no usage chunk
    rec = upstream.only()
    assert rec.path == "/v1/chat/completions"
    assert rec.json()["stream"] is True
    assert_clean_upstream_request(rec, keys, upstream)


def test_chat_completion_stream_with_usage(client, upstream):
    stream = client.chat.completions.create(model="gpt-mock-chunks3", messages=MESSAGES, stream=True,
                                            stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 3


@pytest.mark.timeout(20)
def test_stream_arrives_chunk_by_chunk(client, upstream):
    """5 chunks sent 200 ms apart must reach the client 200 ms apart, each right after it
    was sent: nothing buffers the stream."""
    t_sent = time.monotonic()
    stream = client.chat.completions.create(model="gpt-mock-chunks5-delay200", messages=MESSAGES, stream=True)
    received = []
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received.append(time.monotonic())
    assert len(received) == 5
    rec = upstream.only()
    sent = rec.chunk_times[1:6]  # event 0 is the role chunk, 1..5 the content chunks
    assert received[-1] - received[0] >= 0.6, f"chunks bunched up: {[round(t - t_sent, 3) for t in received]}"
    assert received[0] < sent[-1] - 0.5, "first chunk did not arrive well before the last was sent"
    lags = [r - s for r, s in zip(received, sent)]
    assert max(lags) < 0.25, f"per-chunk delivery lag (s): {[round(x, 3) for x in lags]}"


def test_models_list_and_query_string(client, upstream, keys):
    models = client.models.list(extra_query={"foo": "bar", "limit": "2"})
    assert [m.id for m in models.data] == upstream.models
    rec = upstream.only()
    assert rec.method == "GET"
    assert rec.path == "/v1/models?foo=bar&limit=2"
    assert_clean_upstream_request(rec, keys, upstream)


def test_raw_query_string_bytes_are_kept(gateway, upstream, keys):
    q = "foo=bar&empty=&enc=a%2Fb%20c&dup=1&dup=2"
    r = gateway.request("GET", f"/llm/v1/providers/openai/models?{q}", [("Authorization", f"Bearer {keys.gateway}")])
    assert r.status == 200, r
    assert upstream.only().path == f"/v1/models?{q}"


def test_encoded_path_bytes_are_kept(gateway, upstream, keys):
    r = gateway.request("GET", "/llm/v1/providers/openai/models/ft%3Agpt-mock%2Fx",
                        [("Authorization", f"Bearer {keys.gateway}")])
    assert r.status in (200, 404), r  # the mock has no such model route; what matters is the path
    assert upstream.only().path == "/v1/models/ft%3Agpt-mock%2Fx"


def test_base_url_with_v1_is_not_doubled(gateway, upstream, keys):
    c = openai.OpenAI(api_key=keys.gateway, base_url=gateway.url("openai") + "/v1", max_retries=0, timeout=15)
    r = c.chat.completions.create(model="gpt-mock", messages=MESSAGES)
    assert r.choices[0].message.content == upstream.answer
    assert upstream.only().path == "/v1/chat/completions"


def test_embeddings(client, upstream, keys):
    r = client.embeddings.create(model="text-embedding-mock", input=["one", "two words"])
    assert len(r.data) == 2 and r.usage.prompt_tokens == 3
    rec = upstream.only()
    assert rec.path == "/v1/embeddings"
    assert_clean_upstream_request(rec, keys, upstream)


def test_responses(client, upstream, keys):
    r = client.responses.create(model="gpt-mock", input="Say hello")
    assert r.output_text == upstream.answer
    assert r.usage.input_tokens == 2
    rec = upstream.only()
    assert rec.path == "/v1/responses"
    assert_clean_upstream_request(rec, keys, upstream)


def test_hashed_gateway_key_is_accepted(gateway, upstream, keys):
    c = openai.OpenAI(api_key=keys.hashed_gateway, base_url=gateway.url("openai"), max_retries=0, timeout=15)
    c.models.list()
    rec = upstream.only()
    assert rec.header_all("authorization") == [f"Bearer {keys.openai}"]
    assert not rec.contains(keys.hashed_gateway)


def test_provider_error_reaches_the_sdk(client, upstream):
    upstream.fail_with(429, {"error": {"message": "Rate limit reached for requests", "type": "requests",
                                       "param": None, "code": "rate_limit_exceeded"}})
    with pytest.raises(openai.RateLimitError) as ei:
        client.chat.completions.create(model="gpt-mock", messages=MESSAGES)
    assert ei.value.code == "rate_limit_exceeded"
    assert len(upstream.requests) == 1


def test_keep_alive_connection_serves_many_requests(gateway, upstream, keys):
    import http.client

    from harness.http import request

    conn = http.client.HTTPConnection(gateway.host, gateway.port, timeout=10)
    try:
        for _ in range(20):
            r = request(gateway.host, gateway.port, "POST", "/llm/v1/providers/openai/chat/completions",
                        [("Authorization", f"Bearer {keys.gateway}")],
                        {"model": "gpt-mock", "messages": MESSAGES}, conn=conn)
            assert r.status == 200, r
    finally:
        conn.close()
    assert len(upstream.requests) == 20


def test_gateway_token_header_is_accepted_and_stripped(gateway, upstream, keys):
    r = gateway.request("GET", "/llm/v1/providers/openai/models", [("x-gateway-token", keys.gateway)])
    assert r.status == 200, r
    rec = upstream.only()
    assert rec.header("x-gateway-token") is None
    assert rec.header_all("authorization") == [f"Bearer {keys.openai}"]


def test_request_body_and_other_headers_forwarded_unchanged(gateway, upstream, keys):
    body = b'{ "model" : "gpt-mock",\n  "messages": [{"role":"user","content":"caf\xc3\xa9 \\u00e9"}], "x_extra": [1,2] }'
    r = gateway.request("POST", "/llm/v1/providers/openai/chat/completions",
                        [("Authorization", f"Bearer {keys.gateway}"), ("Content-Type", "application/json"),
                         ("OpenAI-Organization", "org-mock"), ("X-Custom", "a"), ("X-Custom", "b")], body)
    assert r.status == 200, r
    rec = upstream.only()
    assert rec.body == body
    assert rec.header("openai-organization") == "org-mock"
    assert rec.header_all("x-custom") in (["a", "b"], ["a,b"])


def test_large_request_body_is_streamed_through(gateway, upstream, keys):
    # Request bodies never go to the sidecar, so there is no 1 MiB buffering limit.
    big = "x" * (3 * 1024 * 1024)
    body = json.dumps({"model": "gpt-mock", "messages": [{"role": "user", "content": big}]}).encode()
    r = gateway.request("POST", "/llm/v1/providers/openai/chat/completions",
                        [("Authorization", f"Bearer {keys.gateway}"), ("Content-Type", "application/json")], body,
                        timeout=30)
    assert r.status == 200, r
    assert upstream.only().body == body


@pytest.mark.timeout(20)
def test_concurrent_streams_are_not_serialized(gateway, upstream, keys):
    from concurrent.futures import ThreadPoolExecutor

    def one(i: int) -> str:
        c = openai.OpenAI(api_key=keys.gateway, base_url=gateway.url("openai"), max_retries=0, timeout=15)
        s = c.chat.completions.create(model="gpt-mock-chunks3-delay300", messages=MESSAGES, stream=True)
        return "".join(ch.choices[0].delta.content or "" for ch in s if ch.choices)

    t0 = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        texts = list(pool.map(one, range(16)))
    elapsed = time.monotonic() - t0
    assert texts == [joined_pieces(3)] * 16
    assert len(upstream.requests) == 16
    assert elapsed < 4.0, f"16 parallel 0.6 s streams took {elapsed:.2f}s"
