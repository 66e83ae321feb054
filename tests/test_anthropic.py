"""The official Anthropic SDK (2.x: `Authorization: Bearer`) through the gateway."""

from __future__ import annotations

import json
import time
import urllib.request

import anthropic
import pytest

from mocks.upstream import joined_pieces

MESSAGES = [{"role": "user", "content": "Say hello"}]
SDK_VERSION_HEADER = "2026-10-21"  # what anthropic 2.15 sends


@pytest.fixture
def client(gateway, keys) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=keys.gateway, base_url=gateway.url("anthropic"), max_retries=0, timeout=15)


def assert_clean(rec, keys, upstream):
    assert rec.header("host") == upstream.authority
    assert rec.header_all("x-api-key") == [keys.anthropic]
    assert rec.header("authorization") is None, "the client's Authorization must not reach Anthropic"
    assert not rec.contains(keys.gateway), f"gateway key leaked upstream: {rec.headers}"
    assert not any(n.startswith("x-aigw-") for n in rec.header_names())


def test_messages_create(client, upstream, keys):
    m = client.messages.create(model="claude-mock", max_tokens=64, messages=MESSAGES)
    assert m.content[0].text == upstream.answer
    assert m.usage.input_tokens == 2
    rec = upstream.only()
    assert rec.method == "POST"
    assert rec.path == "/v1/messages"
    assert rec.json()["model"] == "claude-mock"
    # The SDK sends its own anthropic-version; the gateway keeps it.
    assert rec.header_all("anthropic-version") == [SDK_VERSION_HEADER]
    assert_clean(rec, keys, upstream)


def test_messages_stream(client, upstream, keys):
    events = list(client.messages.create(model="claude-mock-chunks4", max_tokens=64, messages=MESSAGES, stream=True))
    types = [e.type for e in events]
    assert types[0] == "message_start" and types[-1] == "message_stop"
    assert "message_delta" in types
    text = "".join(e.delta.text for e in events if e.type == "content_block_delta")
    assert text == joined_pieces(4)
    rec = upstream.only()
    assert rec.path == "/v1/messages"
    assert rec.json()["stream"] is True
    assert_clean(rec, keys, upstream)


def test_messages_stream_helper_final_message(client, upstream):
    with client.messages.stream(model="claude-mock-chunks3", max_tokens=64, messages=MESSAGES) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == joined_pieces(3)
    assert final.usage.output_tokens == 3
    assert final.stop_reason == "end_turn"


@pytest.mark.timeout(20)
def test_stream_arrives_event_by_event(client, upstream):
    received = []
    for e in client.messages.create(model="claude-mock-chunks5-delay200", max_tokens=64, messages=MESSAGES, stream=True):
        if e.type == "content_block_delta":
            received.append(time.monotonic())
    assert len(received) == 5
    sent = upstream.only().chunk_times[2:7]
    assert received[-1] - received[0] >= 0.6
    assert max(r - s for r, s in zip(received, sent)) < 0.25


def _raw_messages(gateway, provider: str, headers: dict[str, str]) -> dict:
    body = json.dumps({"model": "claude-mock", "max_tokens": 16, "messages": MESSAGES}).encode()
    req = urllib.request.Request(f"{gateway.url(provider)}/v1/messages", data=body, method="POST",
                                 headers={"content-type": "application/json", **headers})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
        return json.loads(r.read())


def test_anthropic_version_defaulted_when_absent(gateway, upstream, keys):
    out = _raw_messages(gateway, "anthropic", {"x-api-key": keys.gateway})
    assert out["type"] == "message"
    rec = upstream.only()
    assert rec.header_all("anthropic-version") == ["2023-06-01"]
    assert_clean(rec, keys, upstream)


def test_anthropic_version_and_beta_kept_as_sent(gateway, upstream, keys):
    _raw_messages(gateway, "anthropic", {"authorization": f"Bearer {keys.gateway}",
                                         "anthropic-version": "2024-01-01", "anthropic-beta": "b1,b2"})
    rec = upstream.only()
    assert rec.header_all("anthropic-version") == ["2024-01-01"]
    assert rec.header_all("anthropic-beta") == ["b1,b2"]
    assert_clean(rec, keys, upstream)


def test_old_sdk_style_x_api_key(gateway, upstream, keys):
    # anthropic <= 1.17 sent the key as X-Api-Key.
    _raw_messages(gateway, "anthropic", {"X-Api-Key": keys.gateway, "anthropic-version": "2023-06-01"})
    rec = upstream.only()
    assert rec.header_all("x-api-key") == [keys.anthropic]
    assert_clean(rec, keys, upstream)


def test_authorization_passthrough(gateway, upstream, keys):
    own = "sk-ant-client-own-" + keys.gateway[-6:] + "x"
    c = anthropic.Anthropic(api_key=own, base_url=gateway.url("anthropic-own"), max_retries=0, timeout=15,
                            default_headers={"x-gateway-token": keys.gateway})
    m = c.messages.create(model="claude-mock", max_tokens=16, messages=MESSAGES)
    assert m.content[0].text == upstream.answer
    rec = upstream.only()
    assert rec.path == "/v1/messages"
    assert rec.header_all("authorization") == [f"Bearer {own}"]
    assert rec.header("x-gateway-token") is None
    assert not rec.contains(keys.gateway)
    assert rec.header_all("anthropic-version") == [SDK_VERSION_HEADER]


def test_authorization_passthrough_needs_gateway_token(gateway, upstream):
    c = anthropic.Anthropic(api_key="sk-ant-client-own", base_url=gateway.url("anthropic-own"), max_retries=0,
                            timeout=15)
    with pytest.raises(anthropic.AuthenticationError) as ei:
        c.messages.create(model="claude-mock", max_tokens=16, messages=MESSAGES)
    assert ei.value.body["error"]["code"] == "missing_credential"
    assert upstream.requests == []


def test_authorization_passthrough_wrong_gateway_token(gateway, upstream):
    c = anthropic.Anthropic(api_key="sk-ant-client-own", base_url=gateway.url("anthropic-own"), max_retries=0,
                            timeout=15, default_headers={"x-gateway-token": "gw-wrong"})
    with pytest.raises(anthropic.AuthenticationError) as ei:
        c.messages.create(model="claude-mock", max_tokens=16, messages=MESSAGES)
    assert ei.value.body["error"]["code"] == "invalid_credential"
    assert upstream.requests == []


def test_provider_error_reaches_the_sdk(client, upstream):
    upstream.fail_with(529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"},
                             "request_id": "req_mock"})
    with pytest.raises(anthropic.APIStatusError) as ei:
        client.messages.create(model="claude-mock", max_tokens=16, messages=MESSAGES)
    assert ei.value.status_code == 529
    assert ei.value.type == "overloaded_error"


def test_authorization_passthrough_with_x_api_key(gateway, upstream, keys):
    # Old SDKs send the client's own Anthropic key as x-api-key; with passthrough it goes upstream too.
    _raw_messages(gateway, "anthropic-own", {"x-api-key": "sk-ant-client-own", "x-gateway-token": keys.gateway,
                                             "anthropic-version": "2023-06-01"})
    rec = upstream.only()
    assert rec.header_all("x-api-key") == ["sk-ant-client-own"]
    assert rec.header("x-gateway-token") is None
    assert not rec.contains(keys.gateway)
