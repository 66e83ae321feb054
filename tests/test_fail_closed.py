"""Fail closed: when the sidecar is down or hangs, the client gets the gateway's JSON error
and the provider sees nothing (no request leaves without the credential check)."""

from __future__ import annotations

import time

import pytest

from harness import SilentListener

CHAT = "/llm/v1/providers/openai/chat/completions"
BODY = {"model": "gpt-mock", "messages": [{"role": "user", "content": "hi"}]}


def _json_error(r, statuses, code):
    assert r.status in statuses, r
    body = r.json()
    assert body["source"] == "gateway" and body["type"] == "error", body
    assert body["error"]["code"] == code, body
    return body


def test_sidecar_killed(make_gateway, upstream, keys):
    # The sidecar path; calls on the filter's fast path fail closed within one snapshot poll
    # (test_fast_path.py).
    gw = make_gateway(name="killed", fast_path=False)
    auth = [("Authorization", f"Bearer {keys.gateway}")]
    assert gw.request("POST", CHAT, auth, BODY).status == 200
    assert len(upstream.requests) == 1
    gw.sidecar.kill()
    upstream.reset()
    for _ in range(3):
        t0 = time.monotonic()
        r = gw.request("POST", CHAT, auth, BODY)
        _json_error(r, (503,), "gateway_unavailable")
        assert time.monotonic() - t0 < 3
    assert upstream.requests == []


@pytest.mark.timeout(30)
def test_sidecar_hangs(make_gateway, upstream, keys):
    silent = SilentListener()
    try:
        gw = make_gateway(name="hung", sidecar=False, sidecar_port=silent.port)
        for _ in range(2):
            t0 = time.monotonic()
            r = gw.request("POST", CHAT, [("Authorization", f"Bearer {keys.gateway}")], BODY, timeout=15)
            elapsed = time.monotonic() - t0
            body = _json_error(r, (503, 504), "gateway_timeout" if r.status == 504 else "gateway_unavailable")
            assert elapsed < 3.0, f"took {elapsed:.2f}s: {body}"
        assert silent.connections >= 1, "Envoy never connected to the (silent) sidecar"
        assert upstream.requests == []
    finally:
        silent.close()


def test_filter_errors_need_no_sidecar(make_gateway, upstream):
    # The filter answers before ext_proc: its errors do not depend on the sidecar.
    gw = make_gateway(name="nosidecar", sidecar=False)
    r = gw.request("GET", "/llm/v1/providers/nope/models", [("Authorization", "Bearer x")])
    _json_error(r, (404,), "unknown_provider")
    r = gw.request("GET", "/llm/v1/providers/openai/models")
    _json_error(r, (401,), "missing_credential")
    r = gw.request("GET", "/llm/v1/providers/openai/models", [("Authorization", "Bearer x")])
    _json_error(r, (503,), "gateway_unavailable")
    assert upstream.requests == []
