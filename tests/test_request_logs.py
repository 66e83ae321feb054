"""Request logs end to end: providers with `log_requests: true` keep the bodies of their
calls beside the usage record. What the official SDKs sent (the exact bytes, seen through an
httpx hook) and received (the raw body; a stream's text as the SDK assembled it) is what
`GET /api/v1/requests/<id>` shows, redacted by the configured JSON paths and patterns while
the upstream still gets the original; a provider without the flag keeps no body; retention
deletes exactly the oldest logs past the size limit; a logging store that is down or a log
queue that is full never fails a request, and every log is either stored or counted as
dropped.
"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import anthropic
import httpx2 as httpx  # the HTTP client of openai 3.x and anthropic 2.x
import openai
import pytest

from harness import GATEWAY_KEY_SECRET, Gateway, provider
from harness.services import PostgresServer, ServiceUnavailable
from mocks.upstream import joined_pieces
from harness.usage import CONVERSATION_HEADER as CONV, admin_json, new_conversation, parse_metrics, wait_record

REDACTED = "[REDACTED]"
MESSAGES = [{"role": "user", "content": "Say hello"}]


def providers(mock) -> list[dict]:
    return [
        {**provider("logged", "openai", f"{mock.url}/v1", "OPENAI_API_KEY"), "log_requests": True},
        {**provider("claude", "anthropic", mock.url, "ANTHROPIC_API_KEY"), "log_requests": True},
        provider("plain", "openai", f"{mock.url}/v1", "OPENAI_API_KEY"),
    ]


def start(tmp, mock, keys, request_logs: dict, name: str, **kw) -> Gateway:
    gw = Gateway(tmp, providers(mock), keys.secrets(), name=name, **kw)
    gw.plugin["request_logs"] = request_logs
    return gw.start()


@pytest.fixture(scope="module")
def lgw(tmp_path_factory, _upstream_server, keys) -> Gateway:
    gw = start(tmp_path_factory.mktemp("request-logs"), _upstream_server, keys,
               {"redact": {"json_paths": ["$.user", "$.metadata.*"]}, "max_body_bytes": 4096}, "request-logs")
    yield gw
    gw.stop()


class Sent:
    """The request bodies an SDK's HTTP client sent, in order (an httpx event hook)."""

    def __init__(self):
        self.bodies: list[bytes] = []

    def hook(self, request: httpx.Request) -> None:
        self.bodies.append(request.read())

    def client(self) -> httpx.Client:
        return httpx.Client(event_hooks={"request": [self.hook]}, timeout=15)


def openai_client(gw: Gateway, keys, name: str, sent: Sent) -> openai.OpenAI:
    return openai.OpenAI(api_key=keys.gateway, base_url=gw.url(name), max_retries=0, http_client=sent.client())


def logged(gw: Gateway, conversation: str) -> tuple[dict, dict | None]:
    """The record of the call with this conversation id, and its log once the writer has
    stored it (logs are batched off the request path)."""
    record = wait_record(gw, conversation)
    deadline = time.monotonic() + 3
    while True:
        detail = admin_json(gw, f"/api/v1/requests/{record['request_id']}")
        if detail["log"] is not None or time.monotonic() > deadline:
            return detail, detail["log"]
        time.sleep(0.05)


def test_a_non_streamed_call_is_logged_as_sent_and_received(lgw, upstream, keys):
    sent, conv = Sent(), new_conversation()
    raw = openai_client(lgw, keys, "logged", sent).chat.completions.with_raw_response.create(
        model="mock-model", messages=MESSAGES, extra_headers={CONV: conv})
    received = raw.http_response.text
    assert raw.parse().choices[0].message.content == upstream.answer
    detail, log = logged(lgw, conv)
    assert log is not None, detail
    assert log["request_body"] == sent.bodies[-1].decode()
    assert log["response_kind"] == "body"
    assert json.loads(log["response_body"]) == json.loads(received)
    assert (log["request_truncated"], log["response_truncated"]) == (False, False)
    assert [r["request_id"] for r in detail["records"]] == [log["request_id"]]
    assert detail["records"][0]["provider"] == "logged"


def test_a_stream_is_logged_as_the_text_the_client_assembled(lgw, upstream, keys):
    sent, conv = Sent(), new_conversation()
    stream = openai_client(lgw, keys, "logged", sent).chat.completions.create(
        model="mock-model", messages=MESSAGES, stream=True, extra_headers={CONV: conv})
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == joined_pieces(upstream.stream_chunks)
    _, log = logged(lgw, conv)
    assert log["response_kind"] == "text"
    assert log["response_body"] == text
    # What the client sent, not the `include_usage` the gateway added upstream.
    assert log["request_body"] == sent.bodies[-1].decode()
    assert "include_usage" in upstream.last().body.decode()
    assert "include_usage" not in log["request_body"]


def test_an_anthropic_stream_is_logged_as_its_text(lgw, upstream, keys):
    sent, conv = Sent(), new_conversation()
    client = anthropic.Anthropic(api_key=keys.gateway, base_url=lgw.url("claude"), max_retries=0,
                                 http_client=sent.client())
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=50, messages=MESSAGES,
                                extra_headers={CONV: conv}) as s:
        text = "".join(s.text_stream)
    assert text == joined_pieces(upstream.stream_chunks)
    _, log = logged(lgw, conv)
    assert (log["response_kind"], log["response_body"]) == ("text", text)
    assert log["request_body"] == sent.bodies[-1].decode()


def test_redaction_applies_to_the_log_not_to_the_upstream(lgw, upstream, keys):
    sent, conv = Sent(), new_conversation()
    secret_mail, secret_key = "ann.lee@example.com", "sk-proj-" + "x7" * 12
    messages = [{"role": "user", "content": f"mail {secret_mail} the key {secret_key}"}]
    openai_client(lgw, keys, "logged", sent).chat.completions.create(
        model="mock-model", messages=messages, user="u-4242", metadata={"team": "blue"},
        extra_headers={CONV: conv})
    _, log = logged(lgw, conv)
    stored = json.loads(log["request_body"])
    assert stored["user"] == REDACTED
    assert stored["metadata"] == {"team": REDACTED}
    assert stored["messages"][0]["content"] == f"mail {REDACTED} the key {REDACTED}"
    for secret in (secret_mail, secret_key, "u-4242"):
        assert secret not in log["request_body"]
    # The provider got the request as sent.
    forwarded = upstream.last().json()
    assert forwarded["user"] == "u-4242" and secret_key in forwarded["messages"][0]["content"]


def test_a_provider_without_log_requests_keeps_no_body(lgw, upstream, keys):
    conv = new_conversation()
    openai_client(lgw, keys, "plain", Sent()).chat.completions.create(
        model="mock-model", messages=MESSAGES, extra_headers={CONV: conv})
    record = wait_record(lgw, conv)
    time.sleep(0.3)
    detail = admin_json(lgw, f"/api/v1/requests/{record['request_id']}")
    assert detail["log"] is None and len(detail["records"]) == 1
    rows = admin_json(lgw, "/api/v1/requests?provider=plain&limit=5")["requests"]
    assert rows and rows[0]["request_id"] == record["request_id"] and rows[0]["logged"] is False


def test_the_requests_list_filters_and_refuses_bad_queries(lgw, upstream, keys):
    conv = new_conversation()
    upstream.fail_with(429, {"error": {"message": "slow down", "type": "rate_limit"}}, count=1)
    with pytest.raises(openai.RateLimitError):
        openai_client(lgw, keys, "logged", Sent()).chat.completions.create(
            model="mock-model", messages=MESSAGES, extra_headers={CONV: conv})
    failed = wait_record(lgw, conv)
    errors = admin_json(lgw, "/api/v1/requests?status=error&provider=logged")["requests"]
    assert errors[0]["request_id"] == failed["request_id"] and errors[0]["status"] == 429
    assert all(r["status"] == 0 or r["status"] >= 400 for r in errors)
    ok = admin_json(lgw, "/api/v1/requests?status=2xx")["requests"]
    assert ok and all(200 <= r["status"] < 300 for r in ok)
    for bad in ("status=teapot", "limit=0", "from=yesterday", "colour=red"):
        status, body, _ = lgw.sidecar_admin(f"/api/v1/requests?{bad}")
        assert status == 400, (bad, body)
        assert json.loads(body)["error"]["type"]
    status, body, _ = lgw.sidecar_admin("/api/v1/requests/no-such-request")
    assert status == 404 and "no-such-request" in json.loads(body)["error"]["message"]
    status, _, _ = lgw.sidecar_admin("/api/v1/requests", token=None)
    assert status == 401


def test_retention_deletes_exactly_the_oldest_logs_past_the_size_limit(tmp_path, upstream, keys):
    # Each call's log weighs the same (same request, same answer); room for exactly three.
    gw = start(tmp_path, upstream, keys, {"retention": {"interval_secs": 1}}, "retention")
    try:
        convs = []
        for _ in range(5):
            conv = new_conversation()
            openai_client(gw, keys, "logged", Sent()).chat.completions.create(
                model="mock-model", messages=MESSAGES, extra_headers={CONV: conv})
            convs.append(conv)
        logs = [logged(gw, c)[1] for c in convs]
        size = len(logs[0]["request_body"]) + len(logs[0]["response_body"])
        assert all(len(l["request_body"]) + len(l["response_body"]) == size for l in logs)
        gw.reload({**gw.plugin, "request_logs": {"retention": {"interval_secs": 1, "max_total_bytes": 3 * size}}})

        def kept() -> list[bool]:
            return [admin_json(gw, f"/api/v1/requests/{l['request_id']}")["log"] is not None for l in logs]

        deadline = time.monotonic() + 5
        while kept() != [False, False, True, True, True] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert kept() == [False, False, True, True, True]
        deleted = [v for n, _, v in parse_metrics(gw.sidecar_admin("/metrics")[1].decode())
                   if n == "aigw_request_logs_deleted_total"]
        assert deleted == [2.0]
    finally:
        gw.stop()


def dropped(gw: Gateway) -> dict[str, float]:
    text = gw.sidecar_admin("/metrics")[1].decode()
    out = {labels.get("reason", ""): v for n, labels, v in parse_metrics(text) if n == "aigw_request_logs_dropped_total"}
    out["stored"] = next(v for n, _, v in parse_metrics(text) if n == "aigw_request_logs_stored_total")
    return out


def test_a_logging_store_that_is_down_never_fails_a_request(tmp_path, upstream, keys):
    try:
        pg = PostgresServer(tmp_path / "pg-logs", name="pg-logs").start()
    except ServiceUnavailable as e:
        pytest.fail(str(e), pytrace=False)
    gw = start(tmp_path / "gw", upstream, keys, {}, "logs-pg-down", store=pg.url(db="postgres"))
    try:
        client = openai_client(gw, keys, "logged", Sent())
        client.chat.completions.create(model="mock-model", messages=MESSAGES)
        deadline = time.monotonic() + 5
        while dropped(gw)["stored"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        pg.stop()
        answers = [client.chat.completions.create(model="mock-model", messages=MESSAGES).choices[0].message.content
                   for _ in range(3)]
        assert answers == [upstream.answer] * 3
        deadline = time.monotonic() + 10
        while dropped(gw)["store_error"] < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        counts = dropped(gw)
        assert counts["store_error"] == 3 and counts["stored"] == 1, counts
    finally:
        gw.stop()
        pg.cleanup()


def test_a_full_log_queue_drops_and_counts_without_failing_requests(tmp_path, upstream, keys):
    # A queue of two bodies' room, and 40 calls at once with large bodies.
    gw = start(tmp_path, upstream, keys, {"max_body_bytes": 2048, "queue_bytes": 4096}, "logs-full")
    try:
        client = openai_client(gw, keys, "logged", Sent())
        big = [{"role": "user", "content": "x" * 3000}]

        def call(_):
            return client.chat.completions.create(model="mock-model", messages=big).choices[0].message.content

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(call, range(40)))
        assert answers == [upstream.answer] * 40
        deadline = time.monotonic() + 5
        while sum(dropped(gw).values()) < 40 and time.monotonic() < deadline:
            time.sleep(0.1)
        counts = dropped(gw)
        # Every log is accounted for: stored, or counted as dropped.
        assert counts["stored"] + counts["queue_full"] + counts["store_error"] == 40, counts
        rows = admin_json(gw, "/api/v1/requests?provider=logged&limit=100")["requests"]
        assert len(rows) == 40 and sum(r["logged"] for r in rows) == counts["stored"]
    finally:
        gw.stop()
