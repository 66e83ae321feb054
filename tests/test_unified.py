"""The unified OpenAI-compatible endpoint (`/llm/v1/chat/completions`, `/embeddings`,
`/models`) with the official `openai` SDK: translation to every provider type, virtual
models with fallback and ejection, CEL policies, and the usage records of translated calls."""

from __future__ import annotations

import json
import time

import openai
import pytest

from harness import Gateway
from harness.usage import catalog_prices, cost, new_conversation, wait_record, wait_records
from mocks.upstream import MockUpstream, joined_pieces

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
TARGET = "x-aigw-target"
ATTEMPTS = "x-aigw-attempts"


@pytest.fixture
def client(gateway, keys) -> openai.OpenAI:
    return openai.OpenAI(api_key=keys.gateway, base_url=gateway.unified_url, max_retries=0, timeout=15)


def chat_raw(client: openai.OpenAI, **kw):
    """The SDK's raw response (headers and parsed body)."""
    raw = client.chat.completions.with_raw_response.create(messages=MESSAGES, **kw)
    return raw, raw.parse()


# --------------------------------------------------------------------------- translation per target


def test_anthropic_non_streamed(client, upstream, keys):
    raw, c = chat_raw(client, model="anthropic/claude-mock", max_tokens=64)
    assert c.choices[0].message.content == upstream.answer
    assert c.choices[0].finish_reason == "stop"
    assert raw.headers[TARGET] == "anthropic/claude-mock"
    assert raw.headers[ATTEMPTS] == "1"
    rec = upstream.only()
    assert rec.path == "/v1/messages"
    body = rec.json()
    assert body["model"] == "claude-mock"
    assert body["max_tokens"] == 64
    assert body["system"] == "Be brief." or body["system"][0]["text"] == "Be brief."
    assert body["messages"] == [{"role": "user", "content": "Say hello"}] or \
        body["messages"][0]["content"][0]["text"] == "Say hello"
    assert rec.header("x-api-key") == keys.anthropic
    assert not rec.contains(keys.gateway)
    assert c.usage.prompt_tokens > 0 and c.usage.completion_tokens > 0


def test_anthropic_streamed(client, upstream):
    chunks = list(client.chat.completions.create(model="anthropic/claude-mock-chunks4", messages=MESSAGES,
                                                 stream=True, stream_options={"include_usage": True}))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == joined_pieces(4)
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 4
    assert upstream.only().json()["stream"] is True


def test_gemini_streamed_and_not(client, upstream, keys):
    c = client.chat.completions.create(model="google/gemini-mock", messages=MESSAGES)
    assert c.choices[0].message.content == upstream.answer
    rec = upstream.only()
    assert rec.path_only.endswith("/models/gemini-mock:generateContent")
    assert rec.header("x-goog-api-key") == keys.google
    upstream.reset()
    chunks = list(client.chat.completions.create(model="google/gemini-mock-chunks3", messages=MESSAGES, stream=True))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == joined_pieces(3)
    assert ":streamGenerateContent" in upstream.only().path


def test_openai_target_passes_through(client, upstream, keys):
    raw, c = chat_raw(client, model="openai/mock-model")
    assert c.choices[0].message.content == upstream.answer
    assert raw.headers[TARGET] == "openai/mock-model"
    rec = upstream.only()
    assert rec.path == "/v1/chat/completions"
    assert rec.header("authorization") == f"Bearer {keys.openai}"


PNG_1PX = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


def test_tools_and_images_reach_anthropic_translated(client, upstream):
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                               "parameters": {"type": "object",
                                                              "properties": {"city": {"type": "string"}},
                                                              "required": ["city"]}}}]
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "What is this, and the weather in Paris?"},
                                     {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG_1PX}"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    client.chat.completions.create(model="anthropic/claude-mock", messages=messages, tools=tools,
                                   tool_choice="auto", temperature=0.2, stop=["END"])
    body = upstream.only().json()
    assert body["tools"] == [{"name": "get_weather", "description": "Weather in a city",
                              "input_schema": tools[0]["function"]["parameters"]}]
    assert body["stop_sequences"] == ["END"] and body["temperature"] == 0.2
    user, assistant, result = body["messages"]
    assert user["content"][1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                               "data": PNG_1PX}}
    assert assistant["content"] == [{"type": "tool_use", "id": "call_1", "name": "get_weather",
                                     "input": {"city": "Paris"}}]
    assert result["role"] == "user"
    assert result["content"][0]["type"] == "tool_result" and result["content"][0]["tool_use_id"] == "call_1"


def test_unsupported_field_is_a_400_naming_it(client, upstream):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="anthropic/claude-mock", messages=MESSAGES, n=2)
    assert e.value.body["param"] == "n"
    assert e.value.body["code"] == "unsupported_parameter"
    assert upstream.requests == []


def test_unknown_model_and_missing_token(client, gateway, upstream):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    assert e.value.body["code"] == "model_not_found"
    anon = openai.OpenAI(api_key="wrong", base_url=gateway.unified_url, max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        anon.chat.completions.create(model="openai/mock-model", messages=MESSAGES)
    assert upstream.requests == []


def test_embeddings_and_models(client, upstream):
    e = client.embeddings.create(model="openai/mock-model", input="hello")
    assert len(e.data[0].embedding) > 0
    assert upstream.only().path == "/v1/embeddings"
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="anthropic/claude-mock", input="hello")
    assert err.value.body["param"] == "model"
    ids = {m.id for m in client.models.list()}
    assert ids == set(), "no provider of the shared gateway lists its models, and it has no virtual models"


# --------------------------------------------------------------------------- pools, fallback, policies

SEEN = "Hello from the mock upstream."


@pytest.fixture(scope="module")
def dead():
    """A provider that answers 503 to everything."""
    m = MockUpstream().start()
    yield m
    m.stop()


@pytest.fixture(scope="module")
def slow():
    """A provider that takes 3 s before its first byte."""
    m = MockUpstream().start()
    yield m
    m.stop()


BROKE_KEY = "broke-" + "0" * 24

POLICIES = [
    {"when": "request.estimated_input_tokens > 2000", "deny": "prompts over 2000 tokens are not allowed"},
    {"when": "request.headers['x-team'] == 'ml'", "route": "chat-ml"},
    {"when": "principal.subject == 'tests-hashed' && request.model.startsWith('openai/')",
     "deny": "the hashed key may not use openai"},
]


@pytest.fixture(scope="module")
def pgw(tmp_path_factory, _upstream_server, dead, slow, keys) -> Gateway:
    from conftest import standard_api_keys, standard_providers
    from harness import provider

    providers = standard_providers(_upstream_server) + [
        provider("dead", "openai-compatible", f"{dead.url}/v1"),
        provider("slow", "openai-compatible", f"{slow.url}/v1"),
    ]
    gw = Gateway(tmp_path_factory.mktemp("unified-gw"), providers, {**keys.secrets(), "BROKE_KEY": BROKE_KEY},
                 standard_api_keys() + [{"name": "broke", "secret": "BROKE_KEY"}], name="unified")
    gw.plugin["budgets"] = {"agents": {"broke": {"cap_usd": "0.000001", "window": "daily"}}}
    fallback = {"provider": "openai", "model": "mock-model", "priority": 1}
    gw.plugin["virtual_models"] = [
        # No ejection: each test here starts with a healthy primary.
        {"name": "chat", "targets": [{"provider": "anthropic", "model": "claude-mock"}, fallback],
         "ejection_ms": 0},
        {"name": "refused", "targets": [{"provider": "unreachable", "model": "m"}, fallback]},
        {"name": "stalls", "targets": [{"provider": "slow", "model": "mock-model"}, fallback],
         "first_byte_timeout_ms": 500},
        {"name": "dead-first", "targets": [{"provider": "dead", "model": "mock-model"}, fallback],
         "ejection_ms": 1500},
        {"name": "chat-ml", "targets": [{"provider": "google", "model": "gemini-mock"}]},
        {"name": "priced", "targets": [{"provider": "anthropic", "model": "claude-sonnet-5-5"},
                                       {"provider": "openai", "model": "gpt-6-luna", "priority": 1}]},
    ]
    gw.plugin["policies"] = POLICIES
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture
def pclient(pgw, keys, upstream, dead, slow) -> openai.OpenAI:
    dead.reset()
    dead.fail_with(503, {"error": {"message": "overloaded"}}, count=None)
    slow.reset()
    slow.response_delay = 3.0
    return openai.OpenAI(api_key=keys.gateway, base_url=pgw.unified_url, max_retries=0, timeout=15)


@pytest.mark.parametrize("status", [503, 429])
def test_fallback_on_status(pclient, upstream, status):
    upstream.fail_with(status, {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}, count=1)
    raw, c = chat_raw(pclient, model="chat")
    assert c.choices[0].message.content == SEEN
    assert raw.headers[TARGET] == "openai/mock-model"
    assert raw.headers[ATTEMPTS] == "2"
    assert [r.path for r in upstream.requests] == ["/v1/messages", "/v1/chat/completions"]


def test_primary_serves_when_healthy(pclient, upstream):
    raw, c = chat_raw(pclient, model="chat")
    assert raw.headers[TARGET] == "anthropic/claude-mock"
    assert [r.path for r in upstream.requests] == ["/v1/messages"]


def test_fallback_on_connection_refused(pclient, upstream):
    raw, c = chat_raw(pclient, model="refused")
    assert raw.headers[TARGET] == "openai/mock-model"
    assert c.choices[0].message.content == SEEN


@pytest.mark.timeout(20)
def test_fallback_when_primary_stalls_before_first_byte(pclient, upstream, slow):
    t0 = time.monotonic()
    chunks = list(pclient.chat.completions.create(model="stalls", messages=MESSAGES, stream=True))
    took = time.monotonic() - t0
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == joined_pieces(3)
    assert took < 2.5, f"the stalled primary held the request {took:.2f}s (timeout 0.5 s)"
    assert len(slow.requests) == 1 and len(upstream.requests) == 1


def test_no_fallback_after_first_byte(pclient, upstream):
    upstream.cut_stream_after = 3
    got = []
    with pytest.raises(Exception):
        for ch in pclient.chat.completions.create(model="chat", messages=MESSAGES, stream=True):
            got.append(ch)
    assert got, "the first chunks reached the client before the cut"
    time.sleep(0.3)
    assert [r.path for r in upstream.requests] == ["/v1/messages"], "no second try once bytes reached the client"


@pytest.mark.timeout(20)
def test_dead_primary_is_ejected(pclient, upstream, dead):
    for _ in range(5):
        raw, _c = chat_raw(pclient, model="dead-first")
        assert raw.headers[TARGET] == "openai/mock-model"
    assert len(dead.requests) == 1, "an ejected target is skipped for the ejection window"
    time.sleep(1.6)
    chat_raw(pclient, model="dead-first")
    assert len(dead.requests) == 2, "after the window the target is tried again"
    assert len(upstream.requests) == 6


def test_policy_deny_and_route(pclient, pgw, upstream, keys):
    with pytest.raises(openai.PermissionDeniedError) as e:
        pclient.chat.completions.create(model="chat", messages=[{"role": "user", "content": "x" * 9000}])
    assert e.value.body["code"] == "policy_denied"
    assert "2000 tokens" in e.value.body["message"]
    raw = pclient.chat.completions.with_raw_response.create(model="chat", messages=MESSAGES,
                                                             extra_headers={"x-team": "ml"})
    assert raw.headers[TARGET] == "google/gemini-mock"
    assert upstream.requests[0].path_only.endswith("/models/gemini-mock:generateContent")
    hashed = openai.OpenAI(api_key=keys.hashed_gateway, base_url=pgw.unified_url, max_retries=0)
    with pytest.raises(openai.PermissionDeniedError):
        hashed.chat.completions.create(model="openai/mock-model", messages=MESSAGES)
    hashed.chat.completions.create(model="anthropic/claude-mock", messages=MESSAGES)
    assert len(upstream.requests) == 2


def test_budget_refusal_is_not_a_reason_to_fall_back(pgw, pclient, upstream):
    broke = openai.OpenAI(api_key=BROKE_KEY, base_url=pgw.unified_url, max_retries=0, timeout=15)
    with pytest.raises(openai.RateLimitError) as e:
        broke.chat.completions.create(model="priced", messages=MESSAGES, max_tokens=1000)
    assert e.value.body["code"] == "budget_exceeded"
    assert e.value.response.headers[TARGET] == "anthropic/claude-sonnet-5-5"
    assert upstream.requests == [], "another target would be refused the same way"


def test_every_try_is_recorded_against_its_target(pgw, pclient, upstream):
    upstream.fail_with(503, {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}, count=1)
    cid = new_conversation()
    pclient.chat.completions.create(model="chat", messages=MESSAGES, extra_headers={"x-genai-conversation-id": cid})
    recs = sorted(wait_records(pgw, cid, 2), key=lambda r: r["provider"])
    assert [(r["provider"], r["status"]) for r in recs] == [("anthropic", "503"), ("openai", "200")]


def test_models_lists_virtual_models(pclient):
    ids = {m.id for m in pclient.models.list()}
    assert {"chat", "refused", "stalls", "dead-first", "chat-ml", "priced"} <= ids


def test_invalid_policy_is_refused_at_start(tmp_path, keys, _upstream_server):
    from conftest import standard_api_keys, standard_providers
    from harness.procs import StartupError

    gw = Gateway(tmp_path / "bad-cel", standard_providers(_upstream_server), keys.secrets(), standard_api_keys())
    gw.plugin["virtual_models"] = [{"name": "v", "targets": [{"provider": "openai", "model": "m"}]}]
    gw.plugin["policies"] = [{"when": "request.model == ", "route": "v"}]
    with pytest.raises(StartupError) as e:
        gw.start()
    gw.stop()
    assert "policies[0].when" in str(e.value)
    assert "request.model == " in str(e.value)


# --------------------------------------------------------------------------- usage of translated calls

CLAUDE_USAGE = {"input_tokens": 50, "output_tokens": 40, "cache_creation_input_tokens": 300,
                "cache_read_input_tokens": 200}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_translated_call_records_native_usage(client, gateway, upstream, stream):
    upstream.usage = CLAUDE_USAGE
    cid = new_conversation()
    kw = dict(model="anthropic/claude-sonnet-5-5", messages=MESSAGES, extra_headers={"x-genai-conversation-id": cid})
    if stream:
        chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
        usage = chunks[-1].usage
    else:
        usage = client.chat.completions.create(**kw).usage
    # OpenAI's prompt_tokens includes cache reads and writes (providers.md §6).
    assert usage.prompt_tokens == 50 + 200 + 300
    assert usage.completion_tokens == 40
    assert usage.prompt_tokens_details.cached_tokens == 200
    rec = wait_record(gateway, cid)
    assert rec["provider"] == "anthropic" and rec["api_path"] == "/v1/messages"
    assert int(rec["input_tokens"]) == 50 and int(rec["cache_read_tokens"]) == 200
    assert int(rec["output_tokens"]) == 40
    prices = catalog_prices("anthropic", "claude-sonnet-5-5")
    assert rec["cost_nanousd"] == str(cost(prices, input=50, cache_read=200, cache_write_5m=300, output=40))


# --------------------------------------------------------------------------- Bedrock (SigV4)


@pytest.fixture(scope="module")
def bgw(tmp_path_factory, _bedrock_server, keys, aws_keys) -> Gateway:
    from harness import GATEWAY_KEY_SECRET
    from test_bedrock import bedrock_providers

    gw = Gateway(tmp_path_factory.mktemp("unified-bedrock"), bedrock_providers(_bedrock_server),
                 {GATEWAY_KEY_SECRET: keys.gateway, **aws_keys.secrets()}, name="unified-bedrock")
    gw.start()
    yield gw
    gw.stop()


MODEL_COLON = "anthropic.claude-3-5-sonnet-20241022-v2:0"


@pytest.mark.parametrize("stream", [False, True], ids=["converse", "converse-stream"])
def test_bedrock_converse_signed(bgw, bedrock, keys, stream):
    c = openai.OpenAI(api_key=keys.gateway, base_url=bgw.unified_url, max_retries=0, timeout=15)
    kw = dict(model=f"bedrock/{MODEL_COLON}", messages=MESSAGES, max_tokens=32)
    if stream:
        chunks = list(c.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kw))
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens > 0
    else:
        r = c.chat.completions.create(**kw)
        text = r.choices[0].message.content
        assert r.usage.prompt_tokens > 0
    assert text
    rec = bedrock.only()
    assert rec.verified, rec
    op = "converse-stream" if stream else "converse"
    assert rec.path == f"/model/{MODEL_COLON.replace(':', '%3A')}/{op}"
    body = json.loads(rec.body)
    assert body["system"] == [{"text": "Be brief."}]
    assert body["inferenceConfig"]["maxTokens"] == 32


def _raw(gateway, method: str, path: str, body: bytes | None, token: str):
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"{gateway.base}{path}", data=body, method=method,
                                 headers={"Authorization": f"Bearer {token}", "content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


@pytest.mark.timeout(40)
def test_bad_input_gets_the_gateway_json_error(gateway, upstream, keys):
    cases = [
        ("DELETE", "/llm/v1/chat/completions", None, 405, "method_not_allowed"),
        ("POST", "/llm/v1/chat/completions", b"not json", 400, "invalid_body"),
        ("POST", "/llm/v1/chat/completions", b'{"messages":[]}', 400, "invalid_parameter"),
        ("POST", "/llm/v1/chat/completions",
         json.dumps({"model": "openai/mock-model", "messages": MESSAGES, "pad": "x" * (21 << 20)}).encode(),
         413, "request_too_large"),
    ]
    for method, path, body, status, code in cases:
        got, headers, raw = _raw(gateway, method, path, body, keys.gateway)
        assert got == status, (method, path, raw[:200])
        assert headers["content-type"] == "application/json"
        err = json.loads(raw)
        assert err["source"] == "gateway" and err["error"]["code"] == code
    assert upstream.requests == []
