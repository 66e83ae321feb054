"""A mock Bedrock runtime that verifies every request's SigV4 signature independently.

Runs in a thread inside pytest (plain HTTP, or TLS with `tls=TLSFiles` as `https://localhost:<port>`;
the gateway signs for `base_url`'s authority).
Each request is recorded (method, raw path, headers in order, body) together with the result
of the signature check (`mocks.sigv4.verify`: botocore's signer with the credentials the test
configured). An unverified request is answered like AWS: 403, `x-amzn-ErrorType:
InvalidSignatureException` (or `UnrecognizedClientException`, `ExpiredTokenException`,
`MissingAuthenticationTokenException`, `IncompleteSignatureException`), `{"message": …}`.

Credentials: `mock.creds` (a `CredentialStore`): `accept(ak, sk, token)`, `replace(...)` for a
rotation, `revoke(ak)`. The mock STS adds the temporary credentials it issues.

| request | answer |
|---|---|
| `POST …/model/{id}/converse` | Converse JSON: `output.message`, `stopReason`, `usage`, `metrics` |
| `POST …/model/{id}/converse-stream` | event stream: messageStart, contentBlockDelta × n, contentBlockStop, messageStop, metadata |
| `POST …/model/{id}/invoke` | Anthropic-messages JSON + `x-amzn-bedrock-{input,output}-token-count`, `-invocation-latency` |
| `POST …/model/{id}/invoke-with-response-stream` | event stream of `chunk` events `{"bytes": b64(inner JSON)}`, last with `amazon-bedrock-invocationMetrics` |
| `POST …/model/{id}/count-tokens` | `{"inputTokens": N}` |
| `POST …/guardrail/{id}/version/{v}/apply` | minimal ApplyGuardrail answer |
| `GET …/async-invoke[?…]`, `GET …/async-invoke/{arn}`, `POST …/async-invoke` | List/Get/StartAsyncInvoke |

Streams: `stream_chunks` text deltas, `frame_delay` seconds before every frame but the first,
each frame its own HTTP chunk, flushed (send times in `Recorded.chunk_times`, the exact bytes
in `Recorded.sent_frames`). `fail_with(status, error_type, message)` answers the next request
with an error; `stream_exception = (type, message, after_frames)` ends a stream with an
in-stream exception frame.

Usage (accounting tests; reset per test): `usage` replaces the Converse `TokenUsage` of
converse and the converse-stream `metadata` event; `invoke_usage` replaces the Anthropic
`usage` of invoke (body, plus the `x-amzn-bedrock-*-token-count` headers) and of the invoke
stream (`message_start` gets the input and cache fields, `message_delta` the output count,
`amazon-bedrock-invocationMetrics` the input and output counts). `invoke_usage = {}`: an invoke
body without `usage` (a model with its own counts, like Llama's), the headers still there.
`response_delay`: seconds to wait before answering.
"""

from __future__ import annotations

import base64
import json
import re
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from . import eventstream
from .sigv4 import CredentialStore, Verification, verify
from .upstream import TLSFiles, mock_llm

_MODEL_OP = re.compile(r"/model/(?P<id>[^/]+)/(?P<op>[a-z-]+)$")
_GUARDRAIL = re.compile(r"/guardrail/(?P<id>[^/]+)/version/(?P<v>[^/]+)/apply$")
_ASYNC = re.compile(r"/async-invoke(?:/(?P<arn>[^/]+))?$")


@dataclass
class BedrockRequest:
    """One request as the mock Bedrock received it, with its signature check."""

    method: str
    path: str  # raw request target, exactly as received (percent-encoding kept)
    headers: list[tuple[str, str]]
    body: bytes
    received_at: float
    verification: Verification
    operation: str | None = None
    model_id: str | None = None  # the raw path segment (e.g. `...v2%3A0`)
    status: int | None = None  # what the mock answered
    chunk_times: list[float] = field(default_factory=list)
    sent_frames: list[bytes] = field(default_factory=list)
    done_at: float | None = None

    @property
    def verified(self) -> bool:
        return self.verification.ok

    @property
    def model_id_decoded(self) -> str | None:
        return unquote(self.model_id) if self.model_id is not None else None

    def header(self, name: str) -> str | None:
        vals = self.header_all(name)
        return vals[0] if vals else None

    def header_all(self, name: str) -> list[str]:
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def header_names(self) -> set[str]:
        return {k.lower() for k, _ in self.headers}

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def contains(self, needle: str) -> bool:
        """Whether `needle` appears in the request line, headers or body."""
        if needle in self.path or any(needle in k or needle in v for k, v in self.headers):
            return True
        return needle.encode() in self.body

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status} [{self.verification}]"


# --------------------------------------------------------------------------- payloads


def _text_of_content(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return ""


def converse_input_tokens(req: dict) -> int:
    texts = [_text_of_content(m.get("content")) for m in (req.get("messages") or []) if isinstance(m, dict)]
    texts += [str(s.get("text", "")) for s in (req.get("system") or []) if isinstance(s, dict)]
    return max(mock_llm.count_tokens(" ".join(texts)), 1)


def invoke_input_tokens(req: dict) -> int:
    texts = [_text_of_content(m.get("content")) for m in (req.get("messages") or []) if isinstance(m, dict)]
    if isinstance(req.get("system"), str):
        texts.append(req["system"])
    if isinstance(req.get("prompt"), str):
        texts.append(req["prompt"])
    return max(mock_llm.count_tokens(" ".join(texts)), 1)


def pieces(n: int) -> list[str]:
    """Deterministic stream content: `tok0 tok1 … tok{n-1}`."""
    return [f"tok{i}" + (" " if i < n - 1 else "") for i in range(n)]


def _padding(n: int) -> str:
    # AWS pads stream events with a "p" member of random length; clients ignore it.
    return "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123"[: (n * 7) % 40 + 1]


def _json(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def converse_stream_frames(n: int, in_tokens: int, usage: dict | None = None) -> list[bytes]:
    ps = pieces(n)
    f = eventstream.event_frame
    frames = [f("messageStart", _json({"p": _padding(0), "role": "assistant"}))]
    frames += [
        f("contentBlockDelta", _json({"contentBlockIndex": 0, "delta": {"text": p}, "p": _padding(i + 1)}))
        for i, p in enumerate(ps)
    ]
    frames += [
        f("contentBlockStop", _json({"contentBlockIndex": 0, "p": _padding(n + 1)})),
        f("messageStop", _json({"p": _padding(n + 2), "stopReason": "end_turn"})),
        f("metadata", _json({
            "metrics": {"latencyMs": 42},
            "p": _padding(n + 3),
            "usage": usage if usage is not None else
            {"inputTokens": in_tokens, "outputTokens": n, "totalTokens": in_tokens + n},
        })),
    ]
    return frames


def invoke_stream_inner(n: int, in_tokens: int, model: str, usage: dict | None = None) -> list[dict]:
    """The Anthropic-messages events Bedrock wraps in `chunk` frames."""
    ps = pieces(n)
    start_usage: dict = {"input_tokens": in_tokens, "output_tokens": 1}
    delta_usage: dict = {"output_tokens": n}
    out_tokens = n
    if usage is not None:
        start_usage = {k: v for k, v in usage.items() if k != "output_tokens"}
        start_usage["output_tokens"] = 1
        delta_usage = {"output_tokens": usage.get("output_tokens", n)}
        in_tokens, out_tokens = usage.get("input_tokens", in_tokens), usage.get("output_tokens", n)
    events: list[dict] = [
        {"type": "message_start", "message": {
            "id": "msg_bdrk_" + uuid.uuid4().hex[:20], "type": "message", "role": "assistant", "model": model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": start_usage}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    events += [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}} for p in ps]
    events += [
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": delta_usage},
        {"type": "message_stop", "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": in_tokens, "outputTokenCount": out_tokens, "invocationLatency": 42,
            "firstByteLatency": 7}},
    ]
    return events


def chunk_frame(inner: dict | bytes) -> bytes:
    raw = inner if isinstance(inner, bytes) else _json(inner)
    return eventstream.event_frame("chunk", _json({"bytes": base64.b64encode(raw).decode()}))


# --------------------------------------------------------------------------- the handler


class _Handler(mock_llm.JSONHandler):
    server: "_Server"
    server_version = "mock-bedrock/1"

    def _handle(self) -> None:
        mock = self.server.mock
        body = self.read_body()
        headers = [(k, v) for k, v in self.headers.raw_items()]
        v = verify(self.command, self.path, headers, body, mock.creds, service=mock.service, region=mock.region)
        rec = BedrockRequest(self.command, self.path, headers, body, time.monotonic(), v)
        path = self.path.split("?", 1)[0]
        if m := _MODEL_OP.search(path):
            rec.operation, rec.model_id = m.group("op"), m.group("id")
        elif _GUARDRAIL.search(path):
            rec.operation = "apply-guardrail"
        elif m := _ASYNC.search(path):
            rec.operation = ("get-async-invoke" if m.group("arn") else
                             "list-async-invokes" if self.command == "GET" else "start-async-invoke")
        mock._record(rec)
        try:
            if mock.response_delay:
                time.sleep(mock.response_delay)
            if not v.ok and mock.verify_signatures:
                self._aws_error(rec, v.status, v.error_type or "InvalidSignatureException", v.message or "")
                return
            err = mock._take_error()
            if err is not None:
                self._aws_error(rec, *err)
                return
            self._route(mock, rec)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
        finally:
            rec.done_at = time.monotonic()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

    def _aws_error(self, rec: BedrockRequest, status: int, error_type: str, message: str) -> None:
        rec.status = status
        self.send_json(status, {"message": message},
                       {"x-amzn-ErrorType": f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/",
                        "x-amzn-RequestId": str(uuid.uuid4())})

    def _ok_json(self, rec: BedrockRequest, obj: Any, headers: dict[str, str] | None = None) -> None:
        rec.status = 200
        self.send_json(200, obj, {"x-amzn-RequestId": str(uuid.uuid4()), **(headers or {})})

    def _route(self, mock: "MockBedrock", rec: BedrockRequest) -> None:
        try:
            req = json.loads(rec.body) if rec.body else {}
        except ValueError:
            self._aws_error(rec, 400, "ValidationException", "Malformed input request, please reformat your input")
            return
        if not isinstance(req, dict):
            req = {}
        op = rec.operation
        if op in ("list-async-invokes", "get-async-invoke") and rec.method == "GET":
            self._async(rec)
        elif rec.method != "POST" or op is None:
            self._aws_error(rec, 404, "UnknownOperationException", f"mock bedrock: no route for {rec.method} {rec.path}")
        elif op == "converse":
            self._converse(mock, rec, req)
        elif op == "converse-stream":
            n = mock.stream_chunks
            self._stream(mock, rec, converse_stream_frames(n, converse_input_tokens(req), mock.usage), {})
        elif op == "invoke":
            self._invoke(mock, rec, req)
        elif op == "invoke-with-response-stream":
            n = mock.stream_chunks
            inner = invoke_stream_inner(n, invoke_input_tokens(req), rec.model_id_decoded or "", mock.invoke_usage)
            self._stream(mock, rec, [chunk_frame(e) for e in inner],
                         {"X-Amzn-Bedrock-Content-Type": "application/json"})
        elif op == "count-tokens":
            inp = req.get("input") or {}
            if "converse" in inp:
                n = converse_input_tokens(inp["converse"])
            elif "invokeModel" in inp:
                n = invoke_input_tokens(json.loads(base64.b64decode(inp["invokeModel"].get("body", "")) or b"{}"))
            else:
                self._aws_error(rec, 400, "ValidationException", "input is required")
                return
            self._ok_json(rec, {"inputTokens": n})
        elif op == "start-async-invoke":
            self._ok_json(rec, {"invocationArn": "arn:aws:bedrock:us-east-1:123456789012:async-invoke/mock0001"})
        elif op == "apply-guardrail":
            self._ok_json(rec, {"usage": {"topicPolicyUnits": 1, "contentPolicyUnits": 1, "wordPolicyUnits": 0,
                                          "sensitiveInformationPolicyUnits": 0,
                                          "sensitiveInformationPolicyFreeUnits": 0,
                                          "contextualGroundingPolicyUnits": 0},
                                "action": "NONE", "outputs": [], "assessments": []})
        else:
            self._aws_error(rec, 404, "UnknownOperationException", f"mock bedrock: unknown operation {op!r}")

    def _async(self, rec: BedrockRequest) -> None:
        arn = "arn:aws:bedrock:us-east-1:123456789012:async-invoke/mock0001"
        summary = {"invocationArn": arn, "modelArn": "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-reel-v1:0",
                   "status": "Completed", "submitTime": "2026-01-01T00:00:00Z",
                   "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": "s3://mock-bucket/out"}}}
        if rec.operation == "get-async-invoke":
            self._ok_json(rec, {**summary, "invocationArn": unquote(rec.path.split("?")[0].rsplit("/", 1)[1])})
        else:
            self._ok_json(rec, {"asyncInvokeSummaries": [summary]})

    def _converse(self, mock: "MockBedrock", rec: BedrockRequest, req: dict) -> None:
        tin, tout = converse_input_tokens(req), mock_llm.count_tokens(mock.answer)
        self._ok_json(rec, {
            "output": {"message": {"role": "assistant", "content": [{"text": mock.answer}]}},
            "stopReason": "end_turn",
            "usage": mock.usage if mock.usage is not None else
            {"inputTokens": tin, "outputTokens": tout, "totalTokens": tin + tout},
            "metrics": {"latencyMs": 42},
        })

    def _invoke(self, mock: "MockBedrock", rec: BedrockRequest, req: dict) -> None:
        tin, tout = invoke_input_tokens(req), mock_llm.count_tokens(mock.answer)
        usage = {"input_tokens": tin, "output_tokens": tout}
        if mock.invoke_usage is not None:
            usage = mock.invoke_usage
            tin, tout = usage.get("input_tokens", tin), usage.get("output_tokens", tout)
        self._ok_json(rec, {
            "id": "msg_bdrk_" + uuid.uuid4().hex[:20],
            "type": "message",
            "role": "assistant",
            "model": rec.model_id_decoded,
            "content": [{"type": "text", "text": mock.answer}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            **({"usage": usage} if usage else {}),
        }, {
            "x-amzn-bedrock-input-token-count": str(tin),
            "x-amzn-bedrock-output-token-count": str(tout),
            "x-amzn-bedrock-invocation-latency": "42",
        })

    def _stream(self, mock: "MockBedrock", rec: BedrockRequest, frames: list[bytes], headers: dict[str, str]) -> None:
        exc = mock.stream_exception
        if exc is not None:
            etype, msg, after = exc
            frames = frames[:after] + [eventstream.exception_frame(etype, _json({"message": msg}))]
        rec.status = 200
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.amazon.eventstream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        out = mock_llm.ChunkedWriter(self)
        for i, fr in enumerate(frames):
            if i and mock.frame_delay:
                time.sleep(mock.frame_delay)
            out.write(fr)
            rec.sent_frames.append(fr)
            rec.chunk_times.append(out.sent_at[-1])
        out.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    mock: "MockBedrock"


# --------------------------------------------------------------------------- public API


class MockBedrock:
    """`start()`, point a Bedrock provider's `base_url` at `.url`, inspect `.requests`."""

    def __init__(self, region: str = "us-east-1", host: str = "127.0.0.1", tls: TLSFiles | None = None):
        self.host = host
        self.tls = tls
        self.region = region
        self.service = "bedrock"
        self.creds = CredentialStore()
        self.answer = "Hello from the mock Bedrock."
        self.stream_chunks = 3
        self.frame_delay = 0.0
        self.stream_exception: tuple[str, str, int] | None = None
        self.verify_signatures = True
        self.usage: dict | None = None
        self.invoke_usage: dict | None = None
        self.response_delay = 0.0
        self._lock = threading.Lock()
        self._requests: list[BedrockRequest] = []
        self._errors: list[tuple[int, str, str]] = []
        self._srv: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "MockBedrock":
        self._srv = _Server((self.host, 0), _Handler)
        self._srv.mock = self
        if self.tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(self.tls.cert), str(self.tls.key))
            ctx.set_alpn_protocols(["http/1.1"])
            self._srv.socket = ctx.wrap_socket(self._srv.socket, server_side=True)
        self._thread = threading.Thread(target=self._srv.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"mock-bedrock-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._srv is not None:
            self._srv.shutdown()
            self._srv.server_close()
            self._srv = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "MockBedrock":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._srv is not None, "mock not started"
        return self._srv.server_address[1]

    @property
    def authority(self) -> str:
        """host:port as the gateway must send (and sign) it in Host."""
        return f"{'localhost' if self.tls else self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.authority}"

    # -- behaviour

    def reset(self) -> None:
        """Forget requests, restore default behaviour. Credentials are kept (see `creds`)."""
        with self._lock:
            self._requests.clear()
            self._errors.clear()
        self.answer = "Hello from the mock Bedrock."
        self.stream_chunks = 3
        self.frame_delay = 0.0
        self.stream_exception = None
        self.verify_signatures = True
        self.region = "us-east-1"
        self.usage = None
        self.invoke_usage = None
        self.response_delay = 0.0

    def fail_with(self, status: int, error_type: str, message: str, count: int = 1) -> None:
        """Answer the next `count` verified requests with an AWS error."""
        with self._lock:
            self._errors.extend([(status, error_type, message)] * count)

    def _take_error(self) -> tuple[int, str, str] | None:
        with self._lock:
            return self._errors.pop(0) if self._errors else None

    # -- records

    def _record(self, rec: BedrockRequest) -> None:
        with self._lock:
            self._requests.append(rec)

    @property
    def requests(self) -> list[BedrockRequest]:
        with self._lock:
            return list(self._requests)

    def last(self) -> BedrockRequest:
        reqs = self.requests
        assert reqs, "the mock Bedrock received no request"
        return reqs[-1]

    def only(self) -> BedrockRequest:
        reqs = self.requests
        assert len(reqs) == 1, f"expected exactly one Bedrock request, got {len(reqs)}: " + \
            "; ".join(str(r) for r in reqs)
        return reqs[0]

    def wait_for(self, n: int = 1, timeout: float = 5.0) -> list[BedrockRequest]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reqs = self.requests
            if len(reqs) >= n and reqs[n - 1].done_at is not None:
                return reqs
            time.sleep(0.01)
        raise AssertionError(f"mock Bedrock: expected {n} request(s) within {timeout}s, got {len(self.requests)}")
