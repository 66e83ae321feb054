"""Traces end to end: with `--otlp-endpoint` the sidecar exports one OpenTelemetry span per
call over OTLP/gRPC to a real receiver (the official TraceService, `mocks/otlp.py`). Calls
through the official OpenAI and Anthropic SDKs, on the filter's fast path and on the sidecar
path, streamed and not: a caller's `traceparent` is continued (same trace id, the caller's
span as parent), the GenAI attributes equal the usage the mock reported and the stored
record, the span lasts exactly the record's latency; an upstream error marks the span; a
receiver that is down never fails a call.
"""

from __future__ import annotations

import os

import anthropic
import openai
import pytest

from harness import Gateway, provider
from harness.procs import free_port
from harness.usage import CONVERSATION_HEADER as CONV, new_conversation, wait_record
from mocks.otlp import OtlpReceiver

MESSAGES = [{"role": "user", "content": "Say hello"}]
SPAN_KIND_CLIENT = 3
STATUS_ERROR = 2


@pytest.fixture(scope="module")
def receiver():
    r = OtlpReceiver().start()
    yield r
    r.stop()


def start(tmp, mock, keys, endpoint: str, name: str) -> Gateway:
    providers = [
        provider("fast", "openai", f"{mock.url}/v1", "OPENAI_API_KEY"),
        # A model list keeps a provider off the fast path.
        {**provider("checked", "openai", f"{mock.url}/v1", "OPENAI_API_KEY"), "models": ["mock-model"]},
        provider("claude", "anthropic", mock.url, "ANTHROPIC_API_KEY"),
    ]
    return Gateway(tmp, providers, keys.secrets(), name=name, sidecar_args=["--otlp-endpoint", endpoint],
                   sidecar_env={"OTEL_BSP_SCHEDULE_DELAY": "100"}).start()


@pytest.fixture(scope="module")
def tgw(tmp_path_factory, _upstream_server, keys, receiver):
    gw = start(tmp_path_factory.mktemp("traces"), _upstream_server, keys, receiver.endpoint, "traces")
    yield gw
    gw.stop()


def caller_context() -> tuple[str, str, str]:
    trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
    return trace_id, span_id, f"00-{trace_id}-{span_id}-01"


def span_of(receiver: OtlpReceiver, conversation: str):
    return receiver.wait_span(lambda s: s.attributes.get("gen_ai.conversation.id") == conversation)


def assert_matches_record(span, record: dict, mock) -> None:
    a = span.attributes
    tokens = {k: int(record[k]) for k in ("input_tokens", "cache_read_tokens", "cache_write_5m_tokens",
                                           "cache_write_1h_tokens", "cache_write_30m_tokens",
                                           "cache_write_12h_tokens", "output_tokens")}
    assert a["gen_ai.usage.input_tokens"] == sum(v for k, v in tokens.items() if k != "output_tokens")
    assert a["gen_ai.usage.output_tokens"] == tokens["output_tokens"]
    assert a["gen_ai.request.model"] == record["model_requested"]
    assert a["gen_ai.response.model"] == record["model_answered"]
    assert a["aigw.request_id"] == record["request_id"]
    assert a["aigw.provider"] == record["provider"]
    assert a["http.response.status_code"] == int(record["status"])
    assert a["server.address"] == mock.authority
    # Unpriced models (the mock's) have no cost attribute, rather than a zero.
    assert a.get("aigw.cost_nanousd") == (int(record["cost_nanousd"]) if record["cost_nanousd"] else None)
    assert span.end_ns - span.start_ns == int(record["latency_ms"]) * 1_000_000
    assert span.kind == SPAN_KIND_CLIENT
    assert span.resource["service.name"] == "aigw"


@pytest.mark.parametrize("name,stream", [("fast", False), ("fast", True), ("checked", False), ("checked", True)])
def test_an_openai_call_continues_the_callers_trace(tgw, upstream, keys, receiver, name, stream):
    trace_id, parent, traceparent = caller_context()
    conv = new_conversation()
    streams_before = tgw.sidecar_streams()
    client = openai.OpenAI(api_key=keys.gateway, base_url=tgw.url(name), max_retries=0, timeout=15)
    headers = {"traceparent": traceparent, CONV: conv}
    if stream:
        for _ in client.chat.completions.create(model="mock-model", messages=MESSAGES, stream=True,
                                                extra_headers=headers):
            pass
    else:
        client.chat.completions.create(model="mock-model", messages=MESSAGES, extra_headers=headers)
    # The path is what the test says it is.
    assert (tgw.sidecar_streams() > streams_before) == (name == "checked")
    record = wait_record(tgw, conv)
    span = span_of(receiver, conv)
    assert (span.trace_id, span.parent_span_id) == (trace_id, parent)
    assert span.span_id != parent and len(span.span_id) == 16
    assert span.name == f"chat {record['model_requested']}"
    assert span.attributes["gen_ai.operation.name"] == "chat"
    assert span.attributes["gen_ai.provider.name"] == "openai"
    assert span.attributes["aigw.streamed"] is stream
    assert_matches_record(span, record, upstream)


def test_an_anthropic_stream_has_its_span(tgw, upstream, keys, receiver):
    trace_id, parent, traceparent = caller_context()
    conv = new_conversation()
    client = anthropic.Anthropic(api_key=keys.gateway, base_url=tgw.url("claude"), max_retries=0)
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=MESSAGES,
                                extra_headers={"traceparent": traceparent, CONV: conv}) as s:
        final = s.get_final_message()
    span = span_of(receiver, conv)
    assert (span.trace_id, span.parent_span_id) == (trace_id, parent)
    assert span.attributes["gen_ai.provider.name"] == "anthropic"
    assert span.attributes["gen_ai.usage.output_tokens"] == final.usage.output_tokens
    assert_matches_record(span, wait_record(tgw, conv), upstream)


def test_a_call_without_traceparent_starts_a_trace(tgw, upstream, keys, receiver):
    conv = new_conversation()
    openai.OpenAI(api_key=keys.gateway, base_url=tgw.url("fast"), max_retries=0).chat.completions.create(
        model="mock-model", messages=MESSAGES, extra_headers={CONV: conv, "traceparent": "not-a-trace"})
    span = span_of(receiver, conv)
    assert span.parent_span_id == "" and len(span.trace_id) == 32 and int(span.trace_id, 16) != 0
    assert span.status_code != STATUS_ERROR


def test_an_upstream_error_marks_the_span(tgw, upstream, keys, receiver):
    conv = new_conversation()
    upstream.fail_with(503, {"error": {"message": "overloaded", "type": "server_error"}}, count=1)
    with pytest.raises(openai.InternalServerError):
        openai.OpenAI(api_key=keys.gateway, base_url=tgw.url("checked"), max_retries=0).chat.completions.create(
            model="mock-model", messages=MESSAGES, extra_headers={CONV: conv})
    span = span_of(receiver, conv)
    assert span.status_code == STATUS_ERROR
    assert span.attributes["error.type"] == "503"
    assert span.attributes["http.response.status_code"] == 503


def test_a_receiver_that_is_down_never_fails_a_call(tmp_path, upstream, keys):
    gw = start(tmp_path, upstream, keys, f"http://127.0.0.1:{free_port()}", "traces-down")
    try:
        for name in ("fast", "checked"):
            client = openai.OpenAI(api_key=keys.gateway, base_url=gw.url(name), max_retries=0, timeout=15)
            answers = [client.chat.completions.create(model="mock-model", messages=MESSAGES).choices[0].message.content
                       for _ in range(3)]
            assert answers == [upstream.answer] * 3
    finally:
        gw.stop()
