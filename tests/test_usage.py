"""Usage accounting end to end: every provider request through the official SDKs (and raw
sockets) becomes one usage record in the sidecar's SQLite store, with the tokens the mock
reported mapped into buckets per providers.md §6 and the exact cost from the price catalog;
the include_usage injection; client disconnects and upstream errors; nothing lost on SIGTERM;
the query API's sums, CSV exports and auth; `/metrics`; model allowlists and price overrides.

Each test sends its own `x-genai-conversation-id` and finds its record by it; the expected
buckets are written out from the mock's usage object with the §6 formulas, and the expected
cost is computed here from `ext-proc/pricing/catalog.json`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

import anthropic
import openai
import pytest
from botocore.exceptions import ClientError
from google import genai
from google.genai import types as gtypes

from harness import GATEWAY_KEY_SECRET, Gateway, provider
from harness import aws
from harness.usage import (CONVERSATION_HEADER as CONV, api_records, admin_csv, admin_json, catalog_prices, cost,
                           db_records, expect_tokens, new_conversation, override_prices, parse_metrics,
                           restart_sidecar, store_path, tokens_of, wait_record, wait_records)
from mocks.upstream import joined_pieces
from test_errors import assert_gateway_error

MESSAGES = [{"role": "user", "content": "Say hello"}]
BEDROCK_MODEL = "anthropic.claude-3-5-sonnet-20241022-v2:0"
BEDROCK_UNPRICED = "amazon.nova-mystery-v1:0"
BEDROCK_PRICES = {"input": "3", "output": "15", "cache_read": "0.30", "cache_write_5m": "3.75", "cache_write_1h": "6"}
HOUSE_PRICES = {"input": "1.00", "output": "2.00", "cache_read": "0.10"}
LUNA_OVERRIDE = {"input": "0.08", "output": "0.40", "cache_read": "0.008"}
LLAMA_PRICES = {"input": "0.20", "output": "0.60"}
STATIC_AWS = {"access_key_id_secret": "BEDROCK_AWS_ACCESS_KEY_ID",
              "secret_access_key_secret": "BEDROCK_AWS_SECRET_ACCESS_KEY"}
PREFIX = "/llm/v1/providers"

SVC_KEY = "gw-usage-svc-" + os.urandom(8).hex()
ANALYST_KEY = "gw-usage-analyst-" + os.urandom(8).hex()


def usage_providers(mock, bedrock) -> list[dict]:
    return [
        provider("openai", "openai", f"{mock.url}/v1", "OPENAI_API_KEY"),
        provider("anthropic", "anthropic", mock.url, "ANTHROPIC_API_KEY"),
        provider("google", "google", mock.url, "GEMINI_API_KEY"),
        provider("local", "openai-compatible", f"{mock.url}/v1"),
        {**provider("local-priced", "openai-compatible", f"{mock.url}/v1"),
         "models": [{"name": "llama-house", **LLAMA_PRICES}]},
        {**provider("bedrock", "bedrock", bedrock.url, region="us-east-1", aws=STATIC_AWS),
         "models": [{"name": BEDROCK_MODEL, **BEDROCK_PRICES}, BEDROCK_UNPRICED]},
        {**provider("openai-allow", "openai", f"{mock.url}/v1", "OPENAI_API_KEY"),
         "models": ["gpt-6-luna", {"name": "house-model", **HOUSE_PRICES}]},
        {**provider("openai-override", "openai", f"{mock.url}/v1", "OPENAI_API_KEY"),
         "models": [{"name": "gpt-6-luna", **LUNA_OVERRIDE}]},
        {**provider("google-allow", "google", mock.url, "GEMINI_API_KEY"), "models": ["gemini-3.8-flash"]},
        provider("unreachable", "openai-compatible", "http://127.0.0.1:9/v1"),
    ]


USAGE_API_KEYS = [
    {"name": "tests", "secret": GATEWAY_KEY_SECRET},
    {"name": "svc", "secret": "USAGE_SVC_KEY", "user": "alice", "agent": "billing-bot"},
    {"name": "analyst", "secret": "USAGE_ANALYST_KEY", "user": "ana", "agent": "report-bot"},
]


@pytest.fixture(scope="module", params=["fast-path", "sidecar-path"])
def ugw(request, tmp_path_factory, _upstream_server, _bedrock_server, tls_files, keys, aws_keys) -> Gateway:
    """One gateway for this module, with its own (fresh) usage store; every test runs twice:
    API-key calls metered by the filter (its fast path), and with the fast path off, by the
    sidecar. Both must record the same."""
    gw = Gateway(tmp_path_factory.mktemp("usage-gw"), usage_providers(_upstream_server, _bedrock_server),
                 {**keys.secrets(), **aws_keys.secrets(), "USAGE_SVC_KEY": SVC_KEY, "USAGE_ANALYST_KEY": ANALYST_KEY},
                 USAGE_API_KEYS, tls_listener=tls_files, name="usage", fast_path=request.param == "fast-path")
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture
def oai(ugw, keys):
    return openai.OpenAI(api_key=keys.gateway, base_url=ugw.url("openai"), max_retries=0, timeout=15)


def oai_for(gw, key, name="openai"):
    return openai.OpenAI(api_key=key, base_url=gw.url(name), max_retries=0, timeout=15)


@pytest.fixture
def claude(ugw, keys):
    return anthropic.Anthropic(api_key=keys.gateway, base_url=ugw.url("anthropic"), max_retries=0, timeout=15)


def gemini_for(gw, key, name="google"):
    return genai.Client(api_key=key, http_options=gtypes.HttpOptions(base_url=gw.url(name), timeout=15_000))


@pytest.fixture
def gem(ugw, keys):
    return gemini_for(ugw, keys.gateway)


def gcfg(cid: str, **kw) -> gtypes.GenerateContentConfig:
    return gtypes.GenerateContentConfig(http_options=gtypes.HttpOptions(headers={CONV: cid}), **kw)


@pytest.fixture
def brt(ugw, monkeypatch, keys, tls_files):
    """boto3 bedrock-runtime in bearer mode on the TLS listener; `client.conversation = cid`
    makes every request carry that conversation id."""
    monkeypatch.setenv(aws.BEARER_ENV, keys.gateway)
    c = aws.bedrock_runtime(ugw.https_url("bedrock"), verify=str(tls_files.ca_cert))
    c.conversation = None

    def add_header(request, **kw):
        if c.conversation:
            request.headers[CONV] = c.conversation

    c.meta.events.register("before-send.bedrock-runtime", add_header)
    return c


def assert_record(rec: dict, *, provider: str, provider_type: str, api_path: str, model_requested: str | None,
                  model_answered: str | None, tokens: dict, cost_nanousd: int | None, streamed: bool,
                  status: int = 200, outcome: str = "complete", principal: str = "tests", user: str = "tests",
                  agent: str = "tests", usage_reported: bool = True, conversation: str | None = None) -> None:
    """Every field of one records.csv row that the test knows."""
    assert rec["provider"] == provider, rec
    assert rec["provider_type"] == provider_type, rec
    assert rec["api_path"] == api_path, rec
    assert rec["model_requested"] == (model_requested or ""), rec
    assert rec["model_answered"] == (model_answered or ""), rec
    assert (rec["principal"], rec["user"], rec["agent"]) == (principal, user, agent), rec
    assert rec["status"] == str(status), rec
    assert rec["streamed"] == str(streamed).lower(), rec
    assert rec["outcome"] == outcome, rec
    assert rec["usage_reported"] == str(usage_reported).lower(), rec
    assert tokens_of(rec) == tokens, rec
    if cost_nanousd is None:
        assert rec["cost_nanousd"] == "" and rec["cost_usd"] == "", f"expected unpriced: {rec}"
        assert rec["unpriced_reason"], f"unpriced without a reason: {rec}"
    else:
        assert rec["cost_nanousd"] == str(cost_nanousd), (
            f"cost {rec['cost_nanousd']} != expected {cost_nanousd}: {rec}")
        assert rec["unpriced_reason"] == "", rec
    assert rec["request_id"], rec
    assert int(rec["latency_ms"]) >= 0
    if rec["ttfb_ms"]:
        assert int(rec["ttfb_ms"]) <= int(rec["latency_ms"]), rec
    if conversation is not None:
        assert rec["conversation_id"] == conversation


def assert_same_in_db(gw, rec: dict) -> dict:
    """The row in SQLite, read directly, says what the API exported."""
    rows = db_records(gw, "conversation_id = ?", [rec["conversation_id"]])
    assert len(rows) == 1, rows
    row = rows[0]
    assert row["request_id"] == rec["request_id"]
    assert row["provider"] == rec["provider"] and row["provider_type"] == rec["provider_type"]
    assert (row["model_requested"] or "") == rec["model_requested"]
    assert (row["model_answered"] or "") == rec["model_answered"]
    assert tokens_of(row) == tokens_of(rec)
    assert ("" if row["cost_nanousd"] is None else str(row["cost_nanousd"])) == rec["cost_nanousd"]
    assert row["outcome"] == rec["outcome"]
    assert (row["user_id"] or "", row["agent_id"] or "") == (rec["user"], rec["agent"])
    return row


# --------------------------------------------------------------------------- OpenAI

CHAT_USAGE = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
              "prompt_tokens_details": {"cached_tokens": 700, "cache_write_tokens": 100},
              "completion_tokens_details": {"reasoning_tokens": 120}}
# §6 OpenAI: cached and written are inside prompt; reasoning is inside completion.
CHAT_TOKENS = expect_tokens(input=1200 - 700 - 100, cache_read=700, cache_write_30m=100, output=300, reasoning=120)


def chat_cost(model: str = "gpt-6-luna") -> int:
    return cost(catalog_prices("openai", model), input=400, cache_read=700, cache_write_30m=100, output=300)


def test_openai_chat_record(ugw, upstream, oai):
    upstream.usage = CHAT_USAGE
    upstream.response_model = "gpt-6-luna-2026-08-01"
    cid = new_conversation()
    r = oai.chat.completions.create(model="gpt-6-luna", messages=MESSAGES, extra_headers={CONV: cid})
    assert r.usage.prompt_tokens == 1200
    rec = wait_record(ugw, cid)
    assert_record(rec, provider="openai", provider_type="openai", api_path="/v1/chat/completions",
                  model_requested="gpt-6-luna", model_answered="gpt-6-luna-2026-08-01", tokens=CHAT_TOKENS,
                  cost_nanousd=chat_cost(), streamed=False, conversation=cid)
    assert rec["provider_total_tokens"] == "1500"
    row = assert_same_in_db(ugw, rec)
    assert row["model"] == "gpt-6-luna-2026-08-01"  # what queries group by: the answered model
    assert upstream.only().header("accept-encoding") is None


def test_openai_chat_record_of_api_key_with_user_and_agent(ugw, upstream):
    upstream.usage = CHAT_USAGE
    cid = new_conversation()
    oai_for(ugw, SVC_KEY).chat.completions.create(model="gpt-6-luna", messages=MESSAGES, extra_headers={CONV: cid})
    rec = wait_record(ugw, cid)
    assert_record(rec, provider="openai", provider_type="openai", api_path="/v1/chat/completions",
                  model_requested="gpt-6-luna", model_answered="gpt-6-luna", tokens=CHAT_TOKENS,
                  cost_nanousd=chat_cost(), streamed=False, principal="svc", user="alice", agent="billing-bot")


def test_openai_chat_stream_usage_injected_and_removed(ugw, upstream, oai):
    """No stream_options: the gateway asks upstream for usage, the record has it, and the
    client sees no usage chunk (every chunk has choices, none has usage)."""
    upstream.usage = CHAT_USAGE
    cid = new_conversation()
    stream = oai.chat.completions.create(model="gpt-6-luna-chunks4", messages=MESSAGES, stream=True,
                                         extra_headers={CONV: cid})
    chunks = list(stream)
    assert len(chunks) == 1 + 4 + 1, [c.model_dump() for c in chunks]  # role, 4 pieces, finish
    assert all(c.choices for c in chunks), "a chunk without choices reached a client that did not ask for usage"
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == joined_pieces(4)
    up = upstream.only().json()
    assert up["stream_options"] == {"include_usage": True}, up
    rec = wait_record(ugw, cid)
    # "gpt-6-luna-chunks4" is not a catalog name: the answered model (the same) is unpriced.
    assert_record(rec, provider="openai", provider_type="openai", api_path="/v1/chat/completions",
                  model_requested="gpt-6-luna-chunks4", model_answered="gpt-6-luna-chunks4", tokens=CHAT_TOKENS,
                  cost_nanousd=None, streamed=True)


def test_openai_chat_stream_priced(ugw, upstream, oai):
    upstream.usage = CHAT_USAGE
    upstream.stream_chunks = 3
    cid = new_conversation()
    chunks = list(oai.chat.completions.create(model="gpt-6-luna", messages=MESSAGES, stream=True,
                                              extra_headers={CONV: cid}))
    assert all(c.choices and c.usage is None for c in chunks)
    rec = wait_record(ugw, cid)
    assert_record(rec, provider="openai", provider_type="openai", api_path="/v1/chat/completions",
                  model_requested="gpt-6-luna", model_answered="gpt-6-luna", tokens=CHAT_TOKENS,
                  cost_nanousd=chat_cost(), streamed=True)
    assert rec["ttfb_ms"] != ""


def test_openai_chat_stream_raw_bytes_without_usage_chunk(ugw, upstream, keys):
    """On the wire: no `choices: []` event, `[DONE]` last, the same events as without usage."""
    upstream.usage = CHAT_USAGE
    cid = new_conversation()
    body = {"model": "gpt-6-luna", "messages": MESSAGES, "stream": True}
    r = ugw.request("POST", f"{PREFIX}/openai/v1/chat/completions",
                    [("Authorization", f"Bearer {keys.gateway}"), (CONV, cid)], body)
    assert r.status == 200, r
    events = [e for e in r.body.decode().split("\n\n") if e.strip()]
    datas = [e.split("data: ", 1)[1] for e in events]
    assert datas[-1] == "[DONE]"
    parsed = [json.loads(d) for d in datas[:-1]]
    assert len(parsed) == 1 + 3 + 1
    assert all(p["choices"] for p in parsed), parsed
    assert all(p.get("usage") is None for p in parsed)
    assert tokens_of(wait_record(ugw, cid)) == CHAT_TOKENS


@pytest.mark.parametrize("options", [{"include_usage": True},
                                     {"include_usage": True, "continuous_usage_stats": False}],
                         ids=["include_usage", "with-other-option"])
def test_openai_chat_stream_client_asked_for_usage(ugw, upstream, oai, options):
    upstream.usage = CHAT_USAGE
    cid = new_conversation()
    chunks = list(oai.chat.completions.create(model="gpt-6-luna", messages=MESSAGES, stream=True,
                                              stream_options=options, extra_headers={CONV: cid}))
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens == 1200 and chunks[-1].usage.completion_tokens == 300
    assert upstream.only().json()["stream_options"] == options  # forwarded as the client sent it
    rec = wait_record(ugw, cid)
    assert tokens_of(rec) == CHAT_TOKENS and rec["cost_nanousd"] == str(chat_cost())


def test_openai_chat_stream_include_usage_false_is_overridden_and_hidden(ugw, upstream, oai):
    upstream.usage = CHAT_USAGE
    cid = new_conversation()
    chunks = list(oai.chat.completions.create(model="gpt-6-luna", messages=MESSAGES, stream=True,
                                              stream_options={"include_usage": False}, extra_headers={CONV: cid}))
    assert all(c.choices and c.usage is None for c in chunks)
    assert upstream.only().json()["stream_options"]["include_usage"] is True
    assert tokens_of(wait_record(ugw, cid)) == CHAT_TOKENS


def test_openai_chat_stream_options_null_still_metered(ugw, upstream, keys):
    """`"stream_options": null` is a stream without include_usage too: the gateway must still
    ask for usage (and hide the chunk), or the request goes unmetered."""
    upstream.usage = CHAT_USAGE
    cid = new_conversation()
    body = {"model": "gpt-6-luna", "messages": MESSAGES, "stream": True, "stream_options": None}
    r = ugw.request("POST", f"{PREFIX}/openai/v1/chat/completions",
                    [("Authorization", f"Bearer {keys.gateway}"), (CONV, cid)], body)
    assert r.status == 200, r
    assert b'"choices":[]' not in r.body
    up = upstream.only().json()
    rec = wait_record(ugw, cid)
    assert (up.get("stream_options") or {}).get("include_usage") is True, f"forwarded body: {up}"
    assert rec["usage_reported"] == "true" and tokens_of(rec) == CHAT_TOKENS, rec


def test_record_committed_within_100ms(ugw, upstream, oai):
    """From the end of the response at the client to the row in SQLite."""
    upstream.usage = CHAT_USAGE
    lags = []
    for _ in range(10):
        cid = new_conversation()
        oai.chat.completions.create(model="gpt-6-luna", messages=MESSAGES, extra_headers={CONV: cid})
        t0 = time.monotonic()
        while not db_records(ugw, "conversation_id = ?", [cid]):
            assert time.monotonic() - t0 < 2, "no record after 2 s"
            time.sleep(0.005)
        lags.append(time.monotonic() - t0)
    assert max(lags) < 0.15, f"commit lags (s): {[round(x, 3) for x in lags]}"


RESPONSES_USAGE = {"input_tokens": 2000, "output_tokens": 400, "total_tokens": 2400,
                   "input_tokens_details": {"cached_tokens": 500, "cache_write_tokens": 300,
                                            "cache_write_tokens_details": {"ttl_30m_tokens": 100,
                                                                           "ttl_12h_tokens": 200}},
                   "output_tokens_details": {"reasoning_tokens": 150}}
RESPONSES_TOKENS = expect_tokens(input=2000 - 500 - 300, cache_read=500, cache_write_30m=100, cache_write_12h=200,
                                 output=400, reasoning=150)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_openai_responses_record(ugw, upstream, oai, stream):
    upstream.usage = RESPONSES_USAGE
    cid = new_conversation()
    if stream:
        events = list(oai.responses.create(model="gpt-6.2-sol", input="Say hello", stream=True,
                                           extra_headers={CONV: cid}))
        assert events[-1].type == "response.completed"
        assert events[-1].response.usage.input_tokens == 2000
    else:
        r = oai.responses.create(model="gpt-6.2-sol", input="Say hello", extra_headers={CONV: cid})
        assert r.usage.input_tokens == 2000
    rec = wait_record(ugw, cid)
    expected = cost(catalog_prices("openai", "gpt-6.2-sol"), input=1200, cache_read=500, cache_write_30m=100,
                    cache_write_12h=200, output=400)
    assert_record(rec, provider="openai", provider_type="openai", api_path="/v1/responses",
                  model_requested="gpt-6.2-sol", model_answered="gpt-6.2-sol", tokens=RESPONSES_TOKENS,
                  cost_nanousd=expected, streamed=stream)


def test_openai_embeddings_record(ugw, upstream, oai):
    upstream.usage = {"prompt_tokens": 37, "total_tokens": 37}
    cid = new_conversation()
    oai.embeddings.create(model="gpt-6-luna", input=["a b c", "d e"], extra_headers={CONV: cid})
    rec = wait_record(ugw, cid)
    assert_record(rec, provider="openai", provider_type="openai", api_path="/v1/embeddings",
                  model_requested="gpt-6-luna", model_answered="gpt-6-luna", tokens=expect_tokens(input=37),
                  cost_nanousd=cost(catalog_prices("openai", "gpt-6-luna"), input=37), streamed=False)


def test_unknown_model_is_unpriced_not_zero(ugw, upstream, oai):
    upstream.usage = CHAT_USAGE
    cid = new_conversation()
    oai.chat.completions.create(model="gpt-unknown-9", messages=MESSAGES, extra_headers={CONV: cid})
    rec = wait_record(ugw, cid)
    assert_record(rec, provider="openai", provider_type="openai", api_path="/v1/chat/completions",
                  model_requested="gpt-unknown-9", model_answered="gpt-unknown-9", tokens=CHAT_TOKENS,
                  cost_nanousd=None, streamed=False)
    assert "gpt-unknown-9" in rec["unpriced_reason"]
    assert db_records(ugw, "conversation_id = ?", [cid])[0]["cost_nanousd"] is None  # NULL, not 0


def test_long_prompt_tier_price(ugw, upstream, oai):
    """Above 272K prompt tokens the whole request takes gpt-6-luna's tier prices."""
    upstream.usage = {"prompt_tokens": 300_000, "completion_tokens": 1000, "total_tokens": 301_000,
                      "prompt_tokens_details": {"cached_tokens": 100_000}}
    cid = new_conversation()
    oai.chat.completions.create(model="gpt-6-luna", messages=MESSAGES, extra_headers={CONV: cid})
    rec = wait_record(ugw, cid)
    tier = catalog_prices("openai", "gpt-6-luna", prompt_tokens=300_000)
    assert tier["input"] == 200  # the tier row, not the base 100
    assert rec["cost_nanousd"] == str(cost(tier, input=200_000, cache_read=100_000, output=1000))


# --------------------------------------------------------------------------- Anthropic

CLAUDE_USAGE = {"input_tokens": 50, "output_tokens": 40, "cache_creation_input_tokens": 300,
                "cache_read_input_tokens": 200,
                "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
                "output_tokens_details": {"thinking_tokens": 10}}
# §6 Anthropic: reads and writes are additional to input_tokens; thinking is inside output.
CLAUDE_TOKENS = expect_tokens(input=50, cache_read=200, cache_write_5m=100, cache_write_1h=200, output=40,
                              reasoning=10)


def claude_cost(model="claude-sonnet-5-5"):
    return cost(catalog_prices("anthropic", model), input=50, cache_read=200, cache_write_5m=100,
                cache_write_1h=200, output=40)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_anthropic_messages_record(ugw, upstream, claude, stream):
    upstream.usage = CLAUDE_USAGE
    upstream.response_model = "claude-sonnet-5-5-20261001"
    cid = new_conversation()
    if stream:
        events = list(claude.messages.create(model="claude-sonnet-5-5", max_tokens=64, messages=MESSAGES,
                                             stream=True, extra_headers={CONV: cid}))
        assert events[0].message.usage.cache_read_input_tokens == 200
        assert [e for e in events if e.type == "message_delta"][0].usage.output_tokens == 40
    else:
        m = claude.messages.create(model="claude-sonnet-5-5", max_tokens=64, messages=MESSAGES,
                                   extra_headers={CONV: cid})
        assert m.usage.cache_creation_input_tokens == 300
    rec = wait_record(ugw, cid)
    assert_record(rec, provider="anthropic", provider_type="anthropic", api_path="/v1/messages",
                  model_requested="claude-sonnet-5-5", model_answered="claude-sonnet-5-5-20261001",
                  tokens=CLAUDE_TOKENS, cost_nanousd=claude_cost(), streamed=stream)
    assert_same_in_db(ugw, rec)


def test_anthropic_unlabelled_cache_writes_are_5m(ugw, upstream, claude):
    upstream.usage = {"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 70,
                      "cache_read_input_tokens": 0}
    cid = new_conversation()
    claude.messages.create(model="claude-opus-5", max_tokens=8, messages=MESSAGES, extra_headers={CONV: cid})
    rec = wait_record(ugw, cid)
    assert tokens_of(rec) == expect_tokens(input=10, cache_write_5m=70, output=5)
    assert rec["cost_nanousd"] == str(cost(catalog_prices("anthropic", "claude-opus-5"), input=10,
                                           cache_write_5m=70, output=5))


def test_anthropic_haiku_long_prompt_tier(ugw, upstream, claude):
    """Haiku 5.5 above 100k prompt tokens (input + cache reads + writes): the tier row."""
    upstream.usage = {"input_tokens": 90_000, "output_tokens": 500, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 20_000}
    cid = new_conversation()
    claude.messages.create(model="claude-haiku-5-5", max_tokens=600, messages=MESSAGES, extra_headers={CONV: cid})
    rec = wait_record(ugw, cid)
    tier = catalog_prices("anthropic", "claude-haiku-5-5", prompt_tokens=110_000)
    assert tier["input"] == 500
    assert rec["cost_nanousd"] == str(cost(tier, input=90_000, cache_read=20_000, output=500))


# --------------------------------------------------------------------------- Gemini

GEMINI_USAGE = {"promptTokenCount": 1000, "cachedContentTokenCount": 400, "candidatesTokenCount": 120,
                "thoughtsTokenCount": 80, "toolUsePromptTokenCount": 30, "totalTokenCount": 1230}
# §6 Gemini: cached ⊂ prompt; thoughts additional, billed as output; tool-use prompt is input.
GEMINI_TOKENS = expect_tokens(input=1000 - 400 + 30, cache_read=400, output=120 + 80, reasoning=80)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_gemini_generate_content_record(ugw, upstream, gem, stream):
    upstream.usage = GEMINI_USAGE
    cid = new_conversation()
    if stream:
        upstream.stream_chunks = 4
        chunks = list(gem.models.generate_content_stream(model="gemini-3.8-flash", contents="Say hello",
                                                         config=gcfg(cid)))
        assert chunks[-1].usage_metadata.thoughts_token_count == 80
        path = "/v1/models/gemini-3.8-flash:streamGenerateContent"
    else:
        r = gem.models.generate_content(model="gemini-3.8-flash", contents="Say hello", config=gcfg(cid))
        assert r.usage_metadata.cached_content_token_count == 400
        path = "/v1/models/gemini-3.8-flash:generateContent"
    rec = wait_record(ugw, cid)
    expected = cost(catalog_prices("google", "gemini-3.8-flash"), input=630, cache_read=400, output=200)
    assert_record(rec, provider="google", provider_type="google", api_path=path,
                  model_requested="gemini-3.8-flash", model_answered="gemini-3.8-flash", tokens=GEMINI_TOKENS,
                  cost_nanousd=expected, streamed=stream)
    assert rec["provider_total_tokens"] == "1230"
    assert upstream.only().header("accept-encoding") is None


# --------------------------------------------------------------------------- Bedrock

CONVERSE_USAGE = {"inputTokens": 100, "outputTokens": 50, "totalTokens": 450, "cacheReadInputTokens": 200,
                  "cacheWriteInputTokens": 100,
                  "cacheDetails": [{"ttl": "1h", "inputTokens": 60}, {"ttl": "5m", "inputTokens": 40}]}
INVOKE_USAGE = {"input_tokens": 100, "output_tokens": 50, "cache_creation_input_tokens": 100,
                "cache_read_input_tokens": 200,
                "cache_creation": {"ephemeral_5m_input_tokens": 40, "ephemeral_1h_input_tokens": 60}}
# §6 Bedrock: reads and writes are additional to inputTokens.
BEDROCK_TOKENS = expect_tokens(input=100, cache_read=200, cache_write_5m=40, cache_write_1h=60, output=50)
BEDROCK_COST = cost(override_prices(BEDROCK_PRICES), input=100, cache_read=200, cache_write_5m=40,
                    cache_write_1h=60, output=50)
BEDROCK_MESSAGES = [{"role": "user", "content": [{"text": "hello there bedrock"}]}]
INVOKE_BODY = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 32,
               "messages": [{"role": "user", "content": "hello there bedrock"}]}
BEDROCK_PATH = "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/"


@pytest.mark.parametrize("op", ["converse", "converse-stream", "invoke", "invoke-with-response-stream"])
def test_bedrock_record(ugw, bedrock, brt, op):
    bedrock.usage, bedrock.invoke_usage = CONVERSE_USAGE, INVOKE_USAGE
    cid = brt.conversation = new_conversation()
    answered = None
    if op == "converse":
        out = brt.converse(modelId=BEDROCK_MODEL, messages=BEDROCK_MESSAGES, inferenceConfig={"maxTokens": 64})
        assert out["usage"]["cacheReadInputTokens"] == 200
    elif op == "converse-stream":
        events = list(brt.converse_stream(modelId=BEDROCK_MODEL, messages=BEDROCK_MESSAGES)["stream"])
        assert events[-1]["metadata"]["usage"]["cacheWriteInputTokens"] == 100
    elif op == "invoke":
        out = brt.invoke_model(modelId=BEDROCK_MODEL, body=json.dumps(INVOKE_BODY))
        assert json.loads(out["body"].read())["usage"] == INVOKE_USAGE
        answered = BEDROCK_MODEL
    else:
        out = brt.invoke_model_with_response_stream(modelId=BEDROCK_MODEL, body=json.dumps(INVOKE_BODY))
        assert len([e for e in out["body"]]) > 3
        answered = BEDROCK_MODEL
    rec = wait_record(ugw, cid)
    assert_record(rec, provider="bedrock", provider_type="bedrock", api_path=BEDROCK_PATH + op,
                  model_requested=BEDROCK_MODEL, model_answered=answered, tokens=BEDROCK_TOKENS,
                  cost_nanousd=BEDROCK_COST, streamed=op.endswith("stream"))
    assert_same_in_db(ugw, rec)


def test_bedrock_invoke_usage_from_headers(ugw, bedrock, keys):
    """A model body without a `usage` the gateway knows (Llama's own counts, say): the
    x-amzn-bedrock-*-token-count headers give the usage."""
    bedrock.invoke_usage = {}  # the mock's invoke body then has no `usage`
    cid = new_conversation()
    r = ugw.request("POST", f"{PREFIX}/bedrock/model/{BEDROCK_MODEL.replace(':', '%3A')}/invoke",
                    [("Authorization", f"Bearer {keys.gateway}"), (CONV, cid), ("Content-Type", "application/json")],
                    INVOKE_BODY)
    assert r.status == 200, r
    hdr_in = int(r.header("x-amzn-bedrock-input-token-count"))
    hdr_out = int(r.header("x-amzn-bedrock-output-token-count"))
    rec = wait_record(ugw, cid)
    assert tokens_of(rec) == expect_tokens(input=hdr_in, output=hdr_out), rec
    assert rec["cost_nanousd"] == str(cost(override_prices(BEDROCK_PRICES), input=hdr_in, output=hdr_out))


def test_bedrock_model_without_price_is_unpriced(ugw, bedrock, brt):
    bedrock.usage = CONVERSE_USAGE
    cid = brt.conversation = new_conversation()
    brt.converse(modelId=BEDROCK_UNPRICED, messages=BEDROCK_MESSAGES)
    rec = wait_record(ugw, cid)
    assert tokens_of(rec) == BEDROCK_TOKENS
    assert rec["cost_nanousd"] == "" and BEDROCK_UNPRICED in rec["unpriced_reason"], rec


# --------------------------------------------------------------------------- OpenAI-compatible


def test_openai_compatible_usage_without_detail_fields(ugw, upstream, keys):
    """Ollama's usage: prompt and completion counts only (no total, no details)."""
    upstream.usage = {"prompt_tokens": 12, "completion_tokens": 7}
    cid = new_conversation()
    oai_for(ugw, keys.gateway, "local-priced").chat.completions.create(
        model="llama-house", messages=MESSAGES, extra_headers={CONV: cid})
    rec = wait_record(ugw, cid)
    assert_record(rec, provider="local-priced", provider_type="openai-compatible", api_path="/v1/chat/completions",
                  model_requested="llama-house", model_answered="llama-house", tokens=expect_tokens(input=12, output=7),
                  cost_nanousd=cost(override_prices(LLAMA_PRICES), input=12, output=7), streamed=False)
    assert rec["provider_total_tokens"] == ""


def test_openai_compatible_without_prices_is_unpriced(ugw, upstream, keys):
    upstream.usage = {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}
    cid = new_conversation()
    oai_for(ugw, keys.gateway, "local").chat.completions.create(model="llama3", messages=MESSAGES,
                                                                extra_headers={CONV: cid})
    rec = wait_record(ugw, cid)
    assert_record(rec, provider="local", provider_type="openai-compatible", api_path="/v1/chat/completions",
                  model_requested="llama3", model_answered="llama3", tokens=expect_tokens(input=12, output=7),
                  cost_nanousd=None, streamed=False)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_openai_compatible_without_usage(ugw, upstream, keys, stream):
    """A server that reports no usage at all (a stream without the usage chunk even when
    asked): usage_reported false, zero tokens; the unknown model is unpriced, not a cost of 0."""
    upstream.omit_usage = True
    cid = new_conversation()
    c = oai_for(ugw, keys.gateway, "local")
    if stream:
        chunks = list(c.chat.completions.create(model="llama3", messages=MESSAGES, stream=True,
                                                extra_headers={CONV: cid}))
        assert all(ch.choices for ch in chunks)
    else:
        r = c.chat.completions.create(model="llama3", messages=MESSAGES, extra_headers={CONV: cid})
        assert r.usage is None
    rec = wait_record(ugw, cid)
    assert rec["usage_reported"] == "false", rec
    assert tokens_of(rec) == expect_tokens()
    assert rec["outcome"] == "complete" and rec["streamed"] == str(stream).lower()
    assert rec["cost_nanousd"] == "", f"unknown model without usage recorded with cost {rec['cost_nanousd']!r}: {rec}"


# --------------------------------------------------------------------------- disconnects and errors


def open_stream(gw, path: str, headers: list[tuple[str, str]], body: dict) -> socket.socket:
    """Sends a request on a raw socket and reads the response head; returns the socket."""
    raw = json.dumps(body).encode()
    s = socket.create_connection((gw.host, gw.port), timeout=10)
    head = [f"POST {path} HTTP/1.1", f"Host: {gw.host}:{gw.port}", "Content-Type: application/json",
            f"Content-Length: {len(raw)}"] + [f"{k}: {v}" for k, v in headers]
    s.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + raw)
    return s


def read_events(s: socket.socket, n: int) -> bytes:
    """Reads until `n` SSE events (blank-line terminated) have arrived after the head."""
    buf = b""
    while True:
        chunk = s.recv(65536)
        assert chunk, f"stream ended early: {buf!r}"
        buf += chunk
        if b"\r\n\r\n" in buf:
            head, _, rest = buf.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            if rest.count(b"\n\n") >= n:
                return buf


def test_client_disconnect_anthropic_keeps_input_from_message_start(ugw, upstream, keys):
    upstream.usage = CLAUDE_USAGE
    upstream.stream_chunks, upstream.chunk_delay = 20, 0.1
    cid = new_conversation()
    s = open_stream(ugw, f"{PREFIX}/anthropic/v1/messages",
                    [("x-api-key", keys.gateway), ("anthropic-version", "2023-06-01"), (CONV, cid)],
                    {"model": "claude-sonnet-5-5", "max_tokens": 64, "messages": MESSAGES, "stream": True})
    read_events(s, 4)  # message_start, content_block_start, 2 deltas
    s.close()
    rec = wait_record(ugw, cid, timeout=5)
    # message_start had input and cache counts and output_tokens 1; no message_delta came.
    tokens = expect_tokens(input=50, cache_read=200, cache_write_5m=100, cache_write_1h=200, output=1)
    assert_record(rec, provider="anthropic", provider_type="anthropic", api_path="/v1/messages",
                  model_requested="claude-sonnet-5-5", model_answered="claude-sonnet-5-5", tokens=tokens,
                  cost_nanousd=cost(catalog_prices("anthropic", "claude-sonnet-5-5"), input=50, cache_read=200,
                                    cache_write_5m=100, cache_write_1h=200, output=1),
                  streamed=True, outcome="client_disconnected")


def test_client_disconnect_openai_stream_before_usage(ugw, upstream, keys):
    upstream.usage = CHAT_USAGE
    upstream.stream_chunks, upstream.chunk_delay = 20, 0.1
    cid = new_conversation()
    s = open_stream(ugw, f"{PREFIX}/openai/v1/chat/completions",
                    [("Authorization", f"Bearer {keys.gateway}"), (CONV, cid)],
                    {"model": "gpt-6-luna", "messages": MESSAGES, "stream": True})
    read_events(s, 3)
    s.close()
    rec = wait_record(ugw, cid, timeout=5)
    assert rec["outcome"] == "client_disconnected", rec
    assert rec["usage_reported"] == "false" and tokens_of(rec) == expect_tokens(), rec
    assert rec["streamed"] == "true" and rec["status"] == "200"


def test_client_disconnect_gemini_keeps_partial_usage(ugw, upstream, keys):
    upstream.stream_chunks, upstream.chunk_delay = 20, 0.15
    cid = new_conversation()
    s = open_stream(ugw, f"{PREFIX}/google/v1/models/gemini-3.8-flash:streamGenerateContent?alt=sse",
                    [("x-goog-api-key", keys.gateway), (CONV, cid)],
                    {"contents": [{"role": "user", "parts": [{"text": "one two three"}]}]})
    read_events(s, 2)
    s.close()
    rec = wait_record(ugw, cid, timeout=5)
    assert rec["outcome"] == "client_disconnected", rec
    t = tokens_of(rec)
    # The cumulative usageMetadata of the last chunk seen: prompt 3, candidates = chunks so far.
    assert t["input"] == 3 and 2 <= t["output"] <= 4, rec
    assert rec["cost_nanousd"] == str(cost(catalog_prices("google", "gemini-3.8-flash"),
                                           input=3, output=t["output"]))


@pytest.mark.parametrize("status", [500, 429, 400])
def test_upstream_error_status(ugw, upstream, oai, status):
    upstream.fail_with(status, {"error": {"message": "boom", "type": "server_error", "param": None, "code": None}})
    cid = new_conversation()
    with pytest.raises(openai.APIStatusError) as ei:
        oai.chat.completions.create(model="gpt-6-luna", messages=MESSAGES, extra_headers={CONV: cid})
    assert ei.value.status_code == status
    rec = wait_record(ugw, cid)
    assert rec["outcome"] == "upstream_error" and rec["status"] == str(status), rec
    assert rec["usage_reported"] == "false" and tokens_of(rec) == expect_tokens()


def test_upstream_error_on_stream(ugw, upstream, claude):
    upstream.fail_with(529, {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
    cid = new_conversation()
    with pytest.raises(anthropic.APIStatusError):
        list(claude.messages.create(model="claude-sonnet-5-5", max_tokens=8, messages=MESSAGES, stream=True,
                                    extra_headers={CONV: cid}))
    rec = wait_record(ugw, cid)
    assert rec["outcome"] == "upstream_error" and rec["status"] == "529", rec


def test_upstream_connection_breaks_mid_stream(ugw, upstream, claude):
    """The provider's connection drops after message_start and two deltas: the record says
    upstream_error (the client did not go away) and keeps the usage seen."""
    upstream.usage = CLAUDE_USAGE
    upstream.stream_chunks, upstream.chunk_delay = 10, 0.05
    upstream.cut_stream_after = 4
    cid = new_conversation()
    with pytest.raises(Exception):
        list(claude.messages.create(model="claude-sonnet-5-5", max_tokens=64, messages=MESSAGES, stream=True,
                                    extra_headers={CONV: cid}))
    rec = wait_record(ugw, cid, timeout=5)
    assert tokens_of(rec) == expect_tokens(input=50, cache_read=200, cache_write_5m=100, cache_write_1h=200,
                                           output=1), rec
    if not ugw.fast_path and rec["outcome"] == "client_disconnected":
        # The filter tells the two apart by Envoy's response flags; the sidecar cannot yet.
        pytest.xfail("known gap on the sidecar path: an upstream reset mid-stream ends the ext_proc stream "
                     "early, the same as a client leaving, so the outcome is client_disconnected")
    assert rec["outcome"] == "upstream_error", f"outcome {rec['outcome']!r} for a broken upstream stream: {rec}"


def test_upstream_unreachable(ugw, keys):
    cid = new_conversation()
    r = ugw.request("POST", f"{PREFIX}/unreachable/v1/chat/completions",
                    [("Authorization", f"Bearer {keys.gateway}"), (CONV, cid)],
                    {"model": "llama3", "messages": MESSAGES})
    assert r.status in (502, 503), r
    rec = wait_record(ugw, cid)
    assert rec["outcome"] == "upstream_error", rec
    assert rec["status"] in ("0", "503"), rec
    assert rec["provider"] == "unreachable"


def test_gateway_refusals_make_no_record(ugw, upstream, keys):
    """A request the gateway answers itself never reached a provider: no record."""
    cid = new_conversation()
    r = ugw.request("POST", f"{PREFIX}/openai-allow/v1/chat/completions",
                    [("Authorization", f"Bearer {keys.gateway}"), (CONV, cid)],
                    {"model": "gpt-6-astra", "messages": MESSAGES})
    assert r.status == 403
    r = ugw.request("POST", f"{PREFIX}/openai/v1/chat/completions",
                    [("Authorization", "Bearer wrong-key"), (CONV, cid)], {"model": "gpt-6-luna"})
    assert r.status == 401
    time.sleep(0.3)
    assert [x for x in api_records(ugw) if x["conversation_id"] == cid] == []


def test_conversation_id_and_one_record_per_request(ugw, upstream, oai):
    upstream.usage = CHAT_USAGE
    cid = new_conversation()
    for _ in range(3):
        oai.chat.completions.create(model="gpt-6-luna", messages=MESSAGES, extra_headers={CONV: cid})
    recs = wait_records(ugw, cid, 3)
    assert len({r["request_id"] for r in recs}) == 3


# --------------------------------------------------------------------------- allowlists and overrides


def test_allowlist_allows_listed_model_with_catalog_price(ugw, upstream, keys):
    upstream.usage = CHAT_USAGE
    cid = new_conversation()
    oai_for(ugw, keys.gateway, "openai-allow").chat.completions.create(
        model="gpt-6-luna", messages=MESSAGES, extra_headers={CONV: cid})
    rec = wait_record(ugw, cid)
    assert rec["provider"] == "openai-allow" and rec["cost_nanousd"] == str(chat_cost()), rec


def test_allowlist_price_override_of_own_model(ugw, upstream, keys):
    upstream.usage = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100,
                      "prompt_tokens_details": {"cached_tokens": 600}}
    cid = new_conversation()
    oai_for(ugw, keys.gateway, "openai-allow").chat.completions.create(
        model="house-model", messages=MESSAGES, extra_headers={CONV: cid})
    rec = wait_record(ugw, cid)
    assert rec["cost_nanousd"] == str(cost(override_prices(HOUSE_PRICES), input=400, cache_read=600, output=100))
    assert rec["cost_nanousd"] == str(400 * 1000 + 600 * 100 + 100 * 2000)


def test_price_override_replaces_catalog(ugw, upstream, keys):
    upstream.usage = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100,
                      "prompt_tokens_details": {"cached_tokens": 600}}
    cid = new_conversation()
    oai_for(ugw, keys.gateway, "openai-override").chat.completions.create(
        model="gpt-6-luna", messages=MESSAGES, extra_headers={CONV: cid})
    rec = wait_record(ugw, cid)
    assert rec["cost_nanousd"] == str(cost(override_prices(LUNA_OVERRIDE), input=400, cache_read=600, output=100))
    assert rec["cost_nanousd"] != str(cost(catalog_prices("openai", "gpt-6-luna"), input=400, cache_read=600,
                                           output=100))


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_allowlist_refuses_other_body_model(ugw, upstream, keys, stream):
    c = oai_for(ugw, keys.gateway, "openai-allow")
    with pytest.raises(openai.PermissionDeniedError) as ei:
        r = c.chat.completions.create(model="gpt-6-astra", messages=MESSAGES, stream=stream)
        if stream:
            list(r)
    assert ei.value.status_code == 403
    assert ei.value.code == "model_not_allowed"
    assert "gpt-6-astra" in str(ei.value.message)
    assert upstream.requests == []


def test_allowlist_refusal_shape(ugw, upstream, keys):
    r = ugw.request("POST", f"{PREFIX}/openai-allow/v1/chat/completions", [("Authorization", f"Bearer {keys.gateway}")],
                    {"model": "gpt-6-astra", "messages": MESSAGES})
    body = assert_gateway_error(r, 403, "model_not_allowed")
    assert "gpt-6-astra" in body["error"]["message"]
    assert upstream.requests == []


def test_allowlist_duplicate_model_key_is_not_a_bypass(ugw, upstream, keys):
    """`{"model": "gpt-6-luna", "model": "gpt-6-astra"}`: most JSON parsers (Python's, the
    provider's) take the last value. The gateway must not forward a model it did not check."""
    raw = b'{"model": "gpt-6-luna", "messages": [{"role": "user", "content": "hi"}], "model": "gpt-6-astra"}'
    r = ugw.request("POST", f"{PREFIX}/openai-allow/v1/chat/completions",
                    [("Authorization", f"Bearer {keys.gateway}"), ("Content-Type", "application/json")], raw)
    forwarded = [json.loads(x.body).get("model") for x in upstream.requests]
    assert r.status in (400, 403) and forwarded == [], (
        f"duplicate `model` keys: gateway answered {r.status}, upstream got model(s) {forwarded}")


def test_allowlist_applies_to_other_model_endpoints(ugw, upstream, keys):
    """The allowlist names the models that may be used on the provider; an endpoint outside
    the metered LLM calls (images) must not be a way around it."""
    r = ugw.request("POST", f"{PREFIX}/openai-allow/v1/images/generations",
                    [("Authorization", f"Bearer {keys.gateway}")], {"model": "gpt-image-9", "prompt": "a cat"})
    forwarded = [x.path for x in upstream.requests]
    assert r.status == 403 and forwarded == [], (
        f"model gpt-image-9 (not on the list) on /v1/images/generations: gateway answered {r.status}, "
        f"forwarded {forwarded}")


@pytest.mark.parametrize("method", ["generateContent", "streamGenerateContent"])
def test_allowlist_gemini_path_model(ugw, upstream, keys, method):
    q = "?alt=sse" if method.startswith("stream") else ""
    r = ugw.request("POST", f"{PREFIX}/google-allow/v1/models/gemini-3.5-flash:{method}{q}",
                    [("x-goog-api-key", keys.gateway)], {"contents": [{"parts": [{"text": "hi"}]}]})
    body = assert_gateway_error(r, 403, "model_not_allowed")
    assert "gemini-3.5-flash" in body["error"]["message"]
    assert upstream.requests == []
    c = gemini_for(ugw, keys.gateway, "google-allow")
    with pytest.raises(genai.errors.ClientError) as ei:
        c.models.generate_content(model="gemini-3.5-flash", contents="hi")
    assert ei.value.code == 403
    assert upstream.requests == []
    cid = new_conversation()
    c.models.generate_content(model="gemini-3.8-flash", contents="hi", config=gcfg(cid))
    assert wait_record(ugw, cid)["provider"] == "google-allow"


def test_allowlist_bedrock_path_model(ugw, bedrock, brt):
    with pytest.raises(ClientError) as ei:
        brt.converse(modelId="anthropic.claude-opus-4-5-v1:0", messages=BEDROCK_MESSAGES)
    assert ei.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert "anthropic.claude-opus-4-5-v1:0" in str(ei.value)
    assert bedrock.requests == []


# --------------------------------------------------------------------------- SIGTERM: nothing lost


def _records_after_sigterm(gw, fast_path: bool, expected: int) -> list[dict]:
    """The store's records once the SIGTERMed sidecar has exited. On the fast path the
    records of the last calls may still wait in the filter (it sends every 100 ms, and keeps
    what the sidecar does not take): they must reach the next sidecar, each exactly once."""
    rc = gw.sidecar.wait_exit(15)
    assert rc == 0, f"sidecar exit code {rc}\n{gw.sidecar.output()}"
    if not fast_path:
        return db_records(store_path(gw))
    restart_sidecar(gw)
    deadline = time.monotonic() + 5
    while len(rows := db_records(store_path(gw))) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.3)  # nothing more (no duplicates) arrives later
    return db_records(store_path(gw))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "sidecar-path"])
def test_sigterm_loses_no_record(make_gateway, upstream, keys, fast_path):
    """N requests in flight together; once all have completed at the client, SIGTERM the
    sidecar at once (records still in the writer's batch window) and wait for it to exit:
    the store has exactly one record per completed response."""
    gw = make_gateway(name="sigterm", fast_path=fast_path)
    upstream.usage = CHAT_USAGE
    upstream.response_delay = 0.3
    n = 48
    cids = [new_conversation() for _ in range(n)]
    barrier = threading.Barrier(n)

    def one(cid: str) -> int:
        barrier.wait()
        body = {"model": "gpt-6-luna", "messages": MESSAGES, "stream": cid[-1] in "01234567"}
        return gw.request("POST", f"{PREFIX}/openai/v1/chat/completions",
                          [("Authorization", f"Bearer {keys.gateway}"), (CONV, cid)], body, timeout=20).status

    with ThreadPoolExecutor(n) as ex:
        statuses = list(ex.map(one, cids))
    completed = [c for c, s in zip(cids, statuses) if s == 200]
    assert len(completed) == n, statuses
    os.kill(gw.sidecar.pid, signal.SIGTERM)
    rows = _records_after_sigterm(gw, fast_path, len(completed))
    got = [r["conversation_id"] for r in rows]
    assert sorted(got) == sorted(completed), f"{len(got)} records for {len(completed)} completed responses"
    assert all(r["outcome"] == "complete" and r["input_tokens"] == 400 for r in rows)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("fast_path", [True, False], ids=["fast-path", "sidecar-path"])
def test_sigterm_with_streams_in_flight(make_gateway, upstream, keys, fast_path):
    """SIGTERM while streams are still running: every response that completed at the client
    has its record, and no request has two."""
    gw = make_gateway(name="sigterm-inflight", fast_path=fast_path)
    upstream.usage = CHAT_USAGE
    upstream.stream_chunks, upstream.chunk_delay = 6, 0.2
    n = 16
    cids = [new_conversation() for _ in range(n)]
    results: dict[str, bool] = {}

    def one(cid: str) -> None:
        try:
            r = gw.request("POST", f"{PREFIX}/openai/v1/chat/completions",
                           [("Authorization", f"Bearer {keys.gateway}"), (CONV, cid)],
                           {"model": "gpt-6-luna", "messages": MESSAGES, "stream": True}, timeout=20)
            results[cid] = r.status == 200 and r.body.rstrip().endswith(b"data: [DONE]")
        except OSError:
            results[cid] = False

    threads = [threading.Thread(target=one, args=(c,)) for c in cids]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(upstream.requests) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # every stream has started; none has ended (6 chunks, 0.2 s apart)
    os.kill(gw.sidecar.pid, signal.SIGTERM)
    for t in threads:
        t.join(20)
    rows = _records_after_sigterm(gw, fast_path, sum(results.values()))
    got = [r["conversation_id"] for r in rows]
    assert len(got) == len(set(got)), "a request has two records"
    completed = [c for c in cids if results.get(c)]
    missing = [c for c in completed if c not in got]
    assert not missing, f"{len(missing)} of {len(completed)} completed responses have no record"
    for r in rows:
        if r["conversation_id"] in completed:
            assert r["outcome"] == "complete" and r["input_tokens"] == 400, r


# --------------------------------------------------------------------------- the query API

ANA = {"principal": "analyst", "user": "ana", "agent": "report-bot"}


@pytest.fixture(scope="module")
def ana_set(ugw, _upstream_server, keys):
    """A known set of requests by the `analyst` key (user ana, agent report-bot) and what
    each must have recorded."""
    mock = _upstream_server
    mock.reset()
    done = []
    try:
        oa = oai_for(ugw, ANALYST_KEY)
        cl = anthropic.Anthropic(api_key=ANALYST_KEY, base_url=ugw.url("anthropic"), max_retries=0, timeout=15)
        gm = gemini_for(ugw, ANALYST_KEY)
        plan = [
            ("openai", "gpt-6-luna", CHAT_USAGE, CHAT_TOKENS, chat_cost()),
            ("openai", "gpt-6-luna", CHAT_USAGE, CHAT_TOKENS, chat_cost()),
            ("openai", "gpt-unknown-9", CHAT_USAGE, CHAT_TOKENS, None),
            ("anthropic", "claude-sonnet-5-5", CLAUDE_USAGE, CLAUDE_TOKENS, claude_cost()),
            ("google", "gemini-3.8-flash", GEMINI_USAGE, GEMINI_TOKENS,
             cost(catalog_prices("google", "gemini-3.8-flash"), input=630, cache_read=400, output=200)),
        ]
        for prov, model, usage, tokens, c in plan:
            mock.usage = usage
            cid = new_conversation()
            if prov == "openai":
                oa.chat.completions.create(model=model, messages=MESSAGES, extra_headers={CONV: cid})
            elif prov == "anthropic":
                cl.messages.create(model=model, max_tokens=64, messages=MESSAGES, extra_headers={CONV: cid})
            else:
                gm.models.generate_content(model=model, contents="hi", config=gcfg(cid))
            done.append({"provider": prov, "model": model, "tokens": tokens, "cost": c, "cid": cid})
        for d in done:
            wait_record(ugw, d["cid"])
    finally:
        mock.reset()
    return done


def billable(tokens: dict) -> int:
    return sum(v for k, v in tokens.items() if k != "reasoning")


def series(gw, **params) -> dict:
    from urllib.parse import urlencode

    return admin_json(gw, "/api/v1/usage/series?" + urlencode(params))


def settled_records(gw) -> list[dict]:
    """All records, once no more are arriving."""
    prev = None
    for _ in range(40):
        recs = api_records(gw)
        if prev is not None and len(recs) == len(prev):
            return recs
        prev = recs
        time.sleep(0.15)
    return prev


@pytest.mark.parametrize("group_by,key_of", [
    ("model", lambda d: d["model"]), ("provider", lambda d: d["provider"]),
], ids=["by-model", "by-provider"])
def test_series_known_requests(ugw, ana_set, group_by, key_of):
    got = series(ugw, group_by=group_by, user="ana")
    assert got["group_by"] == group_by and got["granularity"] == "day"
    expected: dict = defaultdict(lambda: {"requests": 0, "tokens": 0, "cost_nanousd": 0, "unpriced_requests": 0})
    for d in ana_set:
        e = expected[key_of(d)]
        e["requests"] += 1
        e["tokens"] += billable(d["tokens"])
        if d["cost"] is None:
            e["unpriced_requests"] += 1
        else:
            e["cost_nanousd"] += d["cost"]
    seen = {s["key"]: {k: s["totals"][k] for k in ("requests", "tokens", "cost_nanousd", "unpriced_requests")}
            for s in got["series"]}
    assert seen == dict(expected)
    for s in got["series"]:
        assert len(s["points"]) == len(got["buckets"])
        assert s["points"][-1]["requests"] == s["totals"]["requests"]  # all today
        assert sum(p["requests"] for p in s["points"]) == s["totals"]["requests"]
    # agent filter: the same records
    by_agent = series(ugw, group_by=group_by, agent="report-bot")
    assert {s["key"]: s["totals"]["requests"] for s in by_agent["series"]} == \
        {k: v["requests"] for k, v in expected.items()}


def test_series_token_types_known_requests(ugw, ana_set):
    got = series(ugw, group_by="token_type", user="ana")
    keys_ = [s["key"] for s in got["series"]]
    assert keys_ == ["input", "cache_read", "cache_write_5m", "cache_write_1h", "cache_write_30m",
                     "cache_write_12h", "output"]
    for s in got["series"]:
        assert s["totals"]["tokens"] == sum(d["tokens"][s["key"]] for d in ana_set), s
        assert s["totals"]["cost_nanousd"] is None


def test_series_filters_combine(ugw, ana_set):
    got = series(ugw, group_by="model", user="ana", provider="openai")
    assert {s["key"]: s["totals"]["requests"] for s in got["series"]} == {"gpt-6-luna": 2, "gpt-unknown-9": 1}
    got = series(ugw, group_by="user", model="claude-sonnet-5-5", agent="report-bot")
    assert [(s["key"], s["totals"]["requests"]) for s in got["series"]] == [("ana", 1)]
    assert series(ugw, group_by="agent", user="nobody-at-all")["series"] == []


def test_series_hourly_buckets(ugw, ana_set):
    now = time.time()
    frm = time.strftime("%Y-%m-%dT%H:00:00Z", time.gmtime(now - 3 * 3600))
    to = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now + 1))
    got = series(ugw, group_by="agent", user="ana", granularity="hour", **{"from": frm, "to": to})
    first = int(now - 3 * 3600) // 3600 * 3600
    n_buckets = -(-(int(now + 1) - first) // 3600)
    assert got["granularity"] == "hour" and len(got["buckets"]) == n_buckets, got["buckets"]
    assert got["buckets"][0] == frm
    [s] = got["series"]
    assert s["key"] == "report-bot"
    assert s["totals"]["requests"] == len(ana_set)
    assert sum(p["requests"] for p in s["points"][-2:]) == len(ana_set)


def test_series_and_summary_equal_sums_over_records(ugw, ana_set):
    recs = settled_records(ugw)
    assert len(recs) >= len(ana_set)
    for group_by, col in [("provider", "provider"), ("user", "user"), ("agent", "agent")]:
        got = series(ugw, group_by=group_by)
        exp: dict = defaultdict(lambda: [0, 0, 0, 0])
        for r in recs:
            e = exp[r[col] or None]
            e[0] += 1
            e[1] += billable(tokens_of(r))
            e[2] += int(r["cost_nanousd"] or 0)
            e[3] += r["cost_nanousd"] == ""
        seen = {s["key"]: [s["totals"]["requests"], s["totals"]["tokens"], s["totals"]["cost_nanousd"],
                           s["totals"]["unpriced_requests"]] for s in got["series"]}
        assert seen == dict(exp), group_by
    summary = admin_json(ugw, "/api/v1/providers/summary")
    assert len(summary["days"]) == 7 and summary["days"][-1] == time.strftime("%Y-%m-%d", time.gmtime())
    by_provider = {p["provider"]: p for p in summary["providers"]}
    configured = {p["name"] for p in ugw.plugin["providers"]}
    assert configured <= set(by_provider), "idle providers are listed too"
    for name, p in by_provider.items():
        rs = [r for r in recs if r["provider"] == name]
        assert p["requests"] == len(rs), name
        assert p["unpriced_requests"] == sum(r["cost_nanousd"] == "" for r in rs), name
        assert p["cost_nanousd"] == sum(int(r["cost_nanousd"] or 0) for r in rs), name
        for b, v in p["tokens"].items():
            if b == "total":
                assert v == sum(billable(tokens_of(r)) for r in rs), name
            else:
                assert v == sum(tokens_of(r)[b] for r in rs), (name, b)
        assert p["daily"][-1]["requests"] == len(rs)
        assert p["daily"][-1]["cost_nanousd"] == p["cost_nanousd"]
        assert sum(d["requests"] for d in p["daily"]) == len(rs)
    # the SQLite file itself says the same
    rows = db_records(ugw)
    assert len(rows) == len(recs)
    assert sum(r["cost_nanousd"] or 0 for r in rows) == sum(int(r["cost_nanousd"] or 0) for r in recs)


def test_series_csv_matches_json(ugw, ana_set):
    js = series(ugw, group_by="model", user="ana")
    rows = admin_csv(ugw, "/api/v1/usage/series.csv?group_by=model&user=ana")
    assert rows and list(rows[0].keys()) == ["bucket", "model", "requests", "tokens", "cost_nanousd", "cost_usd",
                                             "unpriced_requests"]
    csv_tot: dict = defaultdict(lambda: [0, 0, 0])
    for r in rows:
        t = csv_tot[r["model"]]
        t[0] += int(r["requests"])
        t[1] += int(r["tokens"])
        t[2] += int(r["cost_nanousd"])
    assert dict(csv_tot) == {s["key"]: [s["totals"]["requests"], s["totals"]["tokens"], s["totals"]["cost_nanousd"]]
                             for s in js["series"]}
    tt = admin_csv(ugw, "/api/v1/usage/series.csv?group_by=token_type&user=ana")
    assert all(r["cost_nanousd"] == "" for r in tt)


def test_records_csv_export(ugw, ana_set):
    recs = [r for r in api_records(ugw) if r["user"] == "ana"]
    assert {r["conversation_id"] for r in recs} == {d["cid"] for d in ana_set}
    for r in recs:
        d = next(x for x in ana_set if x["cid"] == r["conversation_id"])
        assert tokens_of(r) == d["tokens"]
        assert r["cost_nanousd"] == ("" if d["cost"] is None else str(d["cost"]))
        if d["cost"] is not None:
            whole, frac = r["cost_usd"].split(".")
            assert int(whole) * 10**9 + int(frac.ljust(9, "0")) == d["cost"], r["cost_usd"]
        assert (r["principal"], r["user"], r["agent"]) == tuple(ANA.values())
    status, body, headers = ugw.sidecar_admin("/api/v1/usage/records.csv?limit=2")
    assert status == 200
    hdrs = {k.lower(): v for k, v in headers.items()}
    assert hdrs.get("x-aigw-truncated") == "true"
    assert len(body.decode().strip().split("\r\n")) == 3
    _, body, headers = ugw.sidecar_admin("/api/v1/usage/records.csv?limit=100000")
    assert {k.lower(): v for k, v in headers.items()}.get("x-aigw-truncated") == "false"
    future = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 2 * 86400))
    assert api_records(ugw, f"from={future}&to={future}T12:00:00Z") == []


@pytest.mark.parametrize("path", ["/api/v1/providers/summary", "/api/v1/usage/series", "/api/v1/usage/series.csv",
                                  "/api/v1/usage/records.csv", "/api/v1/budgets", "/metrics"])
def test_admin_api_needs_the_admin_token(ugw, path):
    for token, code in [(None, "missing_credential"), ("not-the-admin-token", "invalid_credential")]:
        status, body, headers = ugw.sidecar_admin(path, token=token)
        assert status == 401, (path, token, status, body)
        hdrs = {k.lower(): v for k, v in headers.items()}
        assert hdrs["content-type"].startswith("application/json")
        err = json.loads(body)
        assert err["type"] == "error" and err["source"] == "gateway", err
        assert err["error"]["code"] == code and err["error"]["status"] == "UNAUTHENTICATED", err
        assert err["error"]["message"] and "not-the-admin-token" not in body.decode()
    assert ugw.sidecar_admin("/healthz", token=None)[0] == 200


@pytest.mark.parametrize("query", ["granularity=minute", "group_by=color", "from=yesterday", "limit=0",
                                   "from=2026-12-02&to=2026-12-01", "bogus=1"])
def test_admin_api_bad_query_is_400(ugw, query):
    path = "/api/v1/usage/records.csv" if query.startswith("limit") else "/api/v1/usage/series"
    status, body, _ = ugw.sidecar_admin(f"{path}?{query}")
    assert status == 400, (query, status, body)
    err = json.loads(body)
    assert err["type"] == "error" and err["error"]["code"] == "invalid_query", err


# --------------------------------------------------------------------------- /metrics


def operation(provider_type: str, api_path: str) -> str:
    if provider_type == "bedrock":
        op = api_path.rsplit("/", 1)[-1]
        return {"converse": "chat", "converse-stream": "chat", "invoke": "invoke_model",
                "invoke-with-response-stream": "invoke_model", "count-tokens": "count_tokens"}.get(op, "other")
    if provider_type == "google":
        m = api_path.rsplit(":", 1)[-1]
        return {"generateContent": "generate_content", "streamGenerateContent": "generate_content",
                "countTokens": "count_tokens", "embedContent": "embeddings"}.get(m, "other")
    if api_path.endswith("/chat/completions") or api_path.endswith("/responses") or api_path.endswith("/messages"):
        return "chat"
    if api_path.endswith("/embeddings"):
        return "embeddings"
    return "other"


def status_class(s: str) -> str:
    s = int(s)
    return "none" if s == 0 else "429" if s == 429 else f"{s // 100}xx"


def test_metrics_consistent_with_records(ugw, ana_set):
    recs = settled_records(ugw)
    status, body, headers = ugw.sidecar_admin("/metrics")
    assert status == 200
    assert {k.lower(): v for k, v in headers.items()}["content-type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    for fam, kind in [("gen_ai_client_token_usage", "histogram"),
                      ("gen_ai_client_operation_duration_seconds", "histogram"),
                      ("gen_ai_server_time_to_first_token_seconds", "histogram"),
                      ("aigw_requests_total", "counter"), ("aigw_cost_nanousd_total", "counter"),
                      ("aigw_unpriced_requests_total", "counter")]:
        assert f"# TYPE {fam} {kind}" in text, fam
    samples = parse_metrics(text)

    def label_key(r):
        return (r["provider"], r["model_requested"] or r["model_answered"] or "unknown",
                operation(r["provider_type"], r["api_path"]))

    exp_requests: dict = defaultdict(int)
    exp_cost: dict = defaultdict(int)
    exp_unpriced: dict = defaultdict(int)
    exp_tokens: dict = defaultdict(lambda: [0, 0])  # count, sum
    for r in recs:
        k = label_key(r)
        exp_requests[k + (status_class(r["status"]),)] += 1
        if r["cost_nanousd"] == "":
            exp_unpriced[k] += 1
        else:
            exp_cost[k] += int(r["cost_nanousd"])
        if r["usage_reported"] == "true":
            t = tokens_of(r)
            for tt, v in [("input", billable(t) - t["output"]), ("output", t["output"])]:
                exp_tokens[k + (tt,)][0] += 1
                exp_tokens[k + (tt,)][1] += v

    def base(lbl):
        return (lbl["gen_ai_provider_name"], lbl["gen_ai_request_model"], lbl["gen_ai_operation_name"])

    got_requests = {base(lbl) + (lbl["status"],): v for n, lbl, v in samples if n == "aigw_requests_total"}
    assert got_requests == dict(exp_requests)
    got_cost = {base(lbl): v for n, lbl, v in samples if n == "aigw_cost_nanousd_total" and v}
    assert got_cost == {k: v for k, v in exp_cost.items() if v}
    got_unpriced = {base(lbl): v for n, lbl, v in samples if n == "aigw_unpriced_requests_total" and v}
    assert got_unpriced == dict(exp_unpriced)
    got_tokens: dict = defaultdict(lambda: [0, 0])
    for n, lbl, v in samples:
        if n == "gen_ai_client_token_usage_count":
            got_tokens[base(lbl) + (lbl["gen_ai_token_type"],)][0] = v
        elif n == "gen_ai_client_token_usage_sum":
            got_tokens[base(lbl) + (lbl["gen_ai_token_type"],)][1] = v
    assert dict(got_tokens) == {k: v for k, v in exp_tokens.items()}
    # The histogram's +Inf bucket is its count; durations are counted per status.
    for n, lbl, v in samples:
        if n == "gen_ai_client_token_usage_bucket" and lbl["le"] == "+Inf":
            assert v == got_tokens[base(lbl) + (lbl["gen_ai_token_type"],)][0]
    dur = defaultdict(float)
    for n, lbl, v in samples:
        if n == "gen_ai_client_operation_duration_seconds_count":
            dur[base(lbl) + (lbl["status"],)] = v
    assert dict(dur) == dict(exp_requests)
    assert ("aigw_records_dropped_total", {}, 0.0) in samples


# --------------------------------------------------------------------------- OIDC principals


@pytest.mark.timeout(60)
def test_oidc_principal_user_agent_in_record(tmp_path, _upstream_server, upstream, keys):
    """OIDC: principal and user are the token's `sub`, agent its client id (`client_id`, else
    `azp`)."""
    from harness.idp import IdP, client, idp_missing

    if idp_missing():
        pytest.skip(idp_missing())
    s = {n: "cs-" + os.urandom(8).hex() for n in ("agent-x", "app-plain", "azp-only")}
    idp = IdP(tmp_path / "idp", [client("agent-x", s["agent-x"], claims={"sub": "user-alice"}),
                                 client("app-plain", s["app-plain"]),
                                 client("azp-only", s["azp-only"], claims={"client_id": None, "azp": "azp-only"})],
              alg="RS256", resource_servers=[{"resource": "urn:aigw", "audience": "aigw"}], name="idp-usage").start()
    gw = Gateway(tmp_path / "gw", [provider("openai", "openai", f"{_upstream_server.url}/v1", "OPENAI_API_KEY")],
                 keys.secrets(), [{"name": "tests", "secret": GATEWAY_KEY_SECRET}], name="usage-oidc")
    gw.plugin["oidc"] = [{"issuer": idp.issuer, "audiences": ["aigw"]}]
    try:
        gw.start()
        upstream.usage = CHAT_USAGE
        for name, (principal, user, agent) in {"agent-x": ("user-alice", "user-alice", "agent-x"),
                                                "app-plain": ("app-plain", "app-plain", "app-plain"),
                                                "azp-only": ("azp-only", "azp-only", "azp-only")}.items():
            token = idp.access_token(name, s[name], resource="urn:aigw")
            cid = new_conversation()
            oai_for(gw, token).chat.completions.create(model="gpt-6-luna", messages=MESSAGES,
                                                       extra_headers={CONV: cid})
            rec = wait_record(gw, cid)
            assert (rec["principal"], rec["user"], rec["agent"]) == (principal, user, agent), rec
            assert rec["cost_nanousd"] == str(chat_cost())
    finally:
        gw.stop()
        idp.stop()
