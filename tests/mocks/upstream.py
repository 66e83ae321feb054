"""A recording mock upstream that answers like OpenAI, Anthropic and Gemini.

Runs in a thread inside pytest (`ThreadingHTTPServer`, HTTP/1.1 keep-alive), optionally over
TLS. Every request is recorded (method, raw path with query, headers as a list keeping case
and duplicates, body) before it is answered, so tests assert on exactly what the gateway sent.

Routes are matched on the path's ending, so any base-URL prefix works:

| request | answer |
|---|---|
| `GET  …/models` | OpenAI model list |
| `POST …/chat/completions` | OpenAI chat completion; SSE `data:` chunks ending `data: [DONE]` when `stream` |
| `POST …/embeddings` | OpenAI embeddings |
| `POST …/responses` | minimal OpenAI Responses object |
| `POST …/v1/messages` | Anthropic message; SSE with `event:` lines when `stream` |
| `POST …/models/{m}:generateContent` | Gemini `GenerateContentResponse` |
| `POST …/models/{m}:streamGenerateContent` | Gemini SSE (`data: …`, no `[DONE]`) |

Streams: `stream_chunks` content chunks, `chunk_delay` seconds apart (mock settings), or per
request through the model name: `…-chunks5-delay200…` = 5 chunks, 200 ms apart. The send time
of every chunk is recorded (`Recorded.chunk_times`, `time.monotonic()`), so a test compares
them with its own receive times.

Errors: `fail_with(status, body)` answers the next requests with that status and body.

Usage (for the accounting tests), mock settings reset per test:
- `usage`: the provider-shaped usage object to report instead of the computed one (OpenAI
  chat/Responses/embeddings `usage`, Anthropic `usage`, Gemini `usageMetadata`). Streams
  carry it where the provider does: OpenAI chat in the `include_usage` chunk, Responses in
  `response.completed`, Anthropic split over `message_start` (input and cache fields,
  `output_tokens: 1`) and `message_delta` (the cumulative `output_tokens`), Gemini on the
  last chunk (earlier chunks carry partial, cumulative counts).
- `response_model`: the model the answer names (default: the one asked for).
- `omit_usage`: answer without any usage (a compatible server that reports none; an OpenAI
  chat stream then has no usage chunk even when asked).
- `response_delay`: seconds to wait before answering (requests in flight together).
- `cut_stream_after`: a stream breaks after that many events (the connection is closed
  without the chunked body's end), as when the provider's connection drops.
"""

from __future__ import annotations

import importlib.util
import json
import re
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parents[2]


def _load_mock_llm():
    # examples/ is not a package; load the demo server by path (it imports nothing from tests).
    spec = importlib.util.spec_from_file_location("aigw_mock_llm", _REPO / "examples" / "mock_llm.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


mock_llm = _load_mock_llm()

_DIRECTIVE_CHUNKS = re.compile(r"chunks(\d+)")
_DIRECTIVE_DELAY = re.compile(r"delay(\d+)")


# --------------------------------------------------------------------------- records


@dataclass
class Recorded:
    """One request as the mock received it."""

    method: str
    path: str  # raw request target, query included
    headers: list[tuple[str, str]]  # in order, case and duplicates kept
    body: bytes
    received_at: float  # time.monotonic()
    chunk_times: list[float] = field(default_factory=list)  # send time of each streamed event
    done_at: float | None = None  # time the response was complete

    @property
    def path_only(self) -> str:
        return self.path.split("?", 1)[0]

    @property
    def query(self) -> str | None:
        return self.path.split("?", 1)[1] if "?" in self.path else None

    def header(self, name: str) -> str | None:
        """First value of `name` (case-insensitive), or None."""
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
        """Whether `needle` appears anywhere in the request line or headers."""
        if needle in self.path:
            return True
        return any(needle in k or needle in v for k, v in self.headers)


@dataclass
class ErrorReply:
    status: int
    body: bytes
    headers: dict[str, str]
    remaining: int | None  # None: until cleared


# --------------------------------------------------------------------------- TLS


@dataclass
class TLSFiles:
    """A throw-away CA and a `localhost` server certificate signed by it."""

    ca_cert: Path
    cert: Path
    key: Path


def make_tls_files(directory: Path, timeout: float = 30.0) -> TLSFiles:
    """Creates a CA and a server certificate for `localhost` (and 127.0.0.1) with openssl."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = d / "ca.key", d / "ca.pem"
    key, csr, cert, ext = d / "server.key", d / "server.csr", d / "server.pem", d / "server.ext"
    ext.write_text(
        "basicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
    )

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=timeout)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_cert),
        "-days", "2", "-subj", "/CN=aigw test CA",
        "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=localhost")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(cert), "-days", "2", "-extfile", str(ext))
    return TLSFiles(ca_cert=ca_cert, cert=cert, key=key)


# --------------------------------------------------------------------------- the handler


class _Handler(mock_llm.JSONHandler):
    server: "_Server"

    # One method for every verb: record first, then answer.
    def _handle(self) -> None:
        mock = self.server.mock
        body = self.read_body()
        rec = Recorded(
            method=self.command,
            path=self.path,
            headers=[(k, v) for k, v in self.headers.raw_items()],
            body=body,
            received_at=time.monotonic(),
        )
        mock._record(rec)
        try:
            if mock.response_delay:
                time.sleep(mock.response_delay)
            err = mock._take_error()
            if err is not None:
                self.send_json(err.status, err.body, err.headers)
            else:
                self._route(mock, rec)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
        finally:
            rec.done_at = time.monotonic()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

    # -- dispatch

    def _route(self, mock: "MockUpstream", rec: Recorded) -> None:
        path = rec.path_only
        req = mock_llm.parse_json(rec.body) if rec.body else {}
        if rec.method == "GET" and path.rstrip("/").endswith("/models"):
            self.send_json(200, mock_llm.models_list(mock.models), self._extra(mock))
        elif rec.method == "POST" and path.endswith("/chat/completions"):
            self._openai_chat(mock, rec, req)
        elif rec.method == "POST" and path.endswith("/embeddings"):
            self._openai_embeddings(mock, req)
        elif rec.method == "POST" and path.endswith("/responses"):
            self._openai_responses(mock, rec, req)
        elif rec.method == "POST" and path.endswith("/v1/messages"):
            self._anthropic_messages(mock, rec, req)
        elif rec.method == "POST" and re.search(r"/models/[^/]+:(stream)?[gG]enerateContent$", path):
            self._gemini(mock, rec, req, path)
        else:
            self.send_json(
                404,
                mock_llm.openai_error(404, f"mock upstream: no route for {rec.method} {path}", "not_found"),
            )

    def _extra(self, mock: "MockUpstream") -> dict[str, str]:
        return dict(mock.response_headers)

    def _stream_plan(self, mock: "MockUpstream", model: str) -> tuple[int, float]:
        n, delay = mock.stream_chunks, mock.chunk_delay
        if m := _DIRECTIVE_CHUNKS.search(model):
            n = int(m.group(1))
        if m := _DIRECTIVE_DELAY.search(model):
            delay = int(m.group(1)) / 1000.0
        return max(n, 1), delay

    def _send_stream(self, rec: Recorded, events: list[bytes], content_idx: set[int], delay: float) -> None:
        """Sends `events`, waiting `delay` before every content event but the first."""
        mock = self.server.mock
        out = self.start_sse(200, self._extra(mock))
        first = True
        for i, ev in enumerate(events):
            if i in content_idx:
                if not first and delay:
                    time.sleep(delay)
                first = False
            out.write(ev)
            rec.chunk_times.append(out.sent_at[-1])
            if mock.cut_stream_after is not None and i + 1 >= mock.cut_stream_after:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
        out.close()

    # -- OpenAI

    def _openai_chat(self, mock: "MockUpstream", rec: Recorded, req: dict) -> None:
        model = str(req.get("model") or "mock-model")
        answered = mock.response_model or model
        prompt_tokens = mock_llm.count_tokens(mock_llm.prompt_text(req.get("messages")))
        if not req.get("stream"):
            body = mock_llm.chat_completion(answered, mock.answer, prompt_tokens)
            if mock.omit_usage:
                body.pop("usage", None)
            elif mock.usage is not None:
                body["usage"] = mock.usage
            self.send_json(200, body, self._extra(mock))
            return
        n, delay = self._stream_plan(mock, model)
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        payloads = mock_llm.chat_stream_events(answered, _pieces(n), prompt_tokens, include_usage)
        if include_usage and (mock.omit_usage or mock.usage is not None):
            out: list = []
            for p in payloads:
                usage_chunk = isinstance(p, dict) and p.get("choices") == []
                if mock.omit_usage:
                    if usage_chunk:
                        continue
                    if isinstance(p, dict):
                        p.pop("usage", None)
                elif usage_chunk:
                    p["usage"] = mock.usage
                out.append(p)
            payloads = out
        events = [mock_llm.sse_data(p) for p in payloads]
        self._send_stream(rec, events, set(range(1, n + 1)), delay)

    def _openai_embeddings(self, mock: "MockUpstream", req: dict) -> None:
        inputs = req.get("input")
        inputs = inputs if isinstance(inputs, list) else [inputs]
        tokens = sum(mock_llm.count_tokens(str(i)) for i in inputs)
        body = {
            "object": "list",
            "data": [
                {"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3, float(i)]}
                for i in range(len(inputs))
            ],
            "model": mock.response_model or req.get("model") or "mock-embedding",
            "usage": mock.usage if mock.usage is not None else {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        if mock.omit_usage:
            del body["usage"]
        self.send_json(200, body, self._extra(mock))

    def _openai_responses(self, mock: "MockUpstream", rec: Recorded, req: dict) -> None:
        text = req.get("input")
        in_tokens = mock_llm.count_tokens(text if isinstance(text, str) else json.dumps(text))
        model = str(req.get("model") or "mock-model")
        stream = bool(req.get("stream"))
        n, delay = self._stream_plan(mock, model)
        answer = joined_pieces(n) if stream else mock.answer
        out_tokens = mock_llm.count_tokens(answer)
        usage = mock.usage if mock.usage is not None else {
            "input_tokens": in_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": out_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": in_tokens + out_tokens,
        }
        rid, mid = mock_llm.new_id("resp_"), mock_llm.new_id("msg_")

        def response(status: str, content: list, with_usage: bool) -> dict:
            r = {
                "id": rid,
                "object": "response",
                "created_at": int(time.time()),
                "status": status,
                "model": mock.response_model or req.get("model") or "mock-model",
                "output": [
                    {
                        "type": "message",
                        "id": mid,
                        "status": status,
                        "role": "assistant",
                        "content": content,
                    }
                ] if content else [],
                "parallel_tool_calls": True,
                "tool_choice": "auto",
                "tools": [],
                "usage": usage if with_usage and not mock.omit_usage else None,
            }
            if not with_usage or mock.omit_usage:
                r.pop("usage")
            return r

        done_part = {"type": "output_text", "text": answer, "annotations": []}
        if not stream:
            self.send_json(200, response("completed", [done_part], True), self._extra(mock))
            return
        ev = mock_llm.sse_event
        seq = iter(range(10_000))
        item = {"type": "message", "id": mid, "status": "in_progress", "role": "assistant", "content": []}
        events = [
            ev("response.created", {"type": "response.created", "sequence_number": next(seq),
                                    "response": response("in_progress", [], False)}),
            ev("response.output_item.added", {"type": "response.output_item.added", "sequence_number": next(seq),
                                              "output_index": 0, "item": item}),
            ev("response.content_part.added", {"type": "response.content_part.added", "sequence_number": next(seq),
                                               "item_id": mid, "output_index": 0, "content_index": 0,
                                               "part": {"type": "output_text", "text": "", "annotations": []}}),
        ]
        events += [
            ev("response.output_text.delta", {"type": "response.output_text.delta", "sequence_number": next(seq),
                                              "item_id": mid, "output_index": 0, "content_index": 0, "delta": p,
                                              "logprobs": []})
            for p in _pieces(n)
        ]
        events += [
            ev("response.output_text.done", {"type": "response.output_text.done", "sequence_number": next(seq),
                                             "item_id": mid, "output_index": 0, "content_index": 0, "text": answer,
                                             "logprobs": []}),
            ev("response.content_part.done", {"type": "response.content_part.done", "sequence_number": next(seq),
                                              "item_id": mid, "output_index": 0, "content_index": 0,
                                              "part": done_part}),
            ev("response.output_item.done", {"type": "response.output_item.done", "sequence_number": next(seq),
                                             "output_index": 0,
                                             "item": {**item, "status": "completed", "content": [done_part]}}),
            ev("response.completed", {"type": "response.completed", "sequence_number": next(seq),
                                      "response": response("completed", [done_part], True)}),
        ]
        self._send_stream(rec, events, set(range(3, 3 + n)), delay)

    # -- Anthropic

    def _anthropic_messages(self, mock: "MockUpstream", rec: Recorded, req: dict) -> None:
        model = str(req.get("model") or "claude-mock")
        answered = mock.response_model or model
        in_tokens = max(mock_llm.count_tokens(mock_llm.prompt_text(req.get("messages"))), 1)
        mid = mock_llm.new_id("msg_")
        usage = mock.usage if mock.usage is not None else {
            "input_tokens": in_tokens,
            "output_tokens": mock_llm.count_tokens(mock.answer),
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
        if not req.get("stream"):
            self.send_json(
                200,
                {
                    "id": mid,
                    "type": "message",
                    "role": "assistant",
                    "model": answered,
                    "content": [{"type": "text", "text": mock.answer}],
                    "stop_reason": "end_turn",
                    "stop_sequence": None,
                    **({} if mock.omit_usage else {"usage": usage}),
                },
                {"request-id": mock_llm.new_id("req_"), **self._extra(mock)},
            )
            return
        n, delay = self._stream_plan(mock, model)
        pieces = _pieces(n)
        ev = mock_llm.sse_event
        if mock.usage is not None:
            # message_start: input and cache fields, a small initial output count;
            # message_delta: the cumulative output count (and its details).
            start_usage = {k: v for k, v in mock.usage.items() if k not in ("output_tokens", "output_tokens_details")}
            start_usage["output_tokens"] = 1
            delta_usage = {k: v for k, v in mock.usage.items() if k in ("output_tokens", "output_tokens_details")}
        else:
            start_usage = {"input_tokens": in_tokens, "output_tokens": 1,
                           "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
            delta_usage = {"output_tokens": len(pieces)}
        events = [
            ev("message_start", {
                "type": "message_start",
                "message": {
                    "id": mid, "type": "message", "role": "assistant", "model": answered, "content": [],
                    "stop_reason": None, "stop_sequence": None,
                    "usage": start_usage,
                },
            }),
            ev("content_block_start", {"type": "content_block_start", "index": 0,
                                       "content_block": {"type": "text", "text": ""}}),
        ]
        events += [
            ev("content_block_delta", {"type": "content_block_delta", "index": 0,
                                       "delta": {"type": "text_delta", "text": p}})
            for p in pieces
        ]
        events += [
            ev("content_block_stop", {"type": "content_block_stop", "index": 0}),
            ev("message_delta", {"type": "message_delta",
                                 "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                 "usage": delta_usage}),
            ev("message_stop", {"type": "message_stop"}),
        ]
        self._send_stream(rec, events, set(range(2, 2 + n)), delay)

    # -- Gemini

    def _gemini(self, mock: "MockUpstream", rec: Recorded, req: dict, path: str) -> None:
        m = re.search(r"/models/([^/]+):(stream)?[gG]enerateContent$", path)
        assert m is not None
        model, stream = m.group(1), bool(m.group(2))
        prompt = " ".join(
            p.get("text", "")
            for c in (req.get("contents") or [])
            if isinstance(c, dict)
            for p in (c.get("parts") or [])
            if isinstance(p, dict)
        )
        p_tokens = max(mock_llm.count_tokens(prompt), 1)

        def response(text: str, done: bool, c_tokens: int) -> dict:
            cand: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
            if done:
                cand["finishReason"] = "STOP"
            r = {
                "candidates": [cand],
                "usageMetadata": {
                    "promptTokenCount": p_tokens,
                    "candidatesTokenCount": c_tokens,
                    "totalTokenCount": p_tokens + c_tokens,
                },
                "modelVersion": mock.response_model or model,
                "responseId": mock_llm.new_id("gem-"),
            }
            if done and mock.usage is not None:
                r["usageMetadata"] = mock.usage
            if mock.omit_usage:
                del r["usageMetadata"]
            return r

        if not stream:
            self.send_json(200, response(mock.answer, True, mock_llm.count_tokens(mock.answer)), self._extra(mock))
            return
        n, delay = self._stream_plan(mock, model)
        pieces = _pieces(n)
        events = [mock_llm.sse_data(response(p, i == n - 1, i + 1)) for i, p in enumerate(pieces)]
        self._send_stream(rec, events, set(range(n)), delay)


def _pieces(n: int) -> list[str]:
    """Deterministic stream content: `tok0 tok1 … tok{n-1}` as n pieces."""
    return [f"tok{i}" + (" " if i < n - 1 else "") for i in range(n)]


def joined_pieces(n: int) -> str:
    """What a client reassembles from an n-chunk stream."""
    return "".join(_pieces(n))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    mock: "MockUpstream"


# --------------------------------------------------------------------------- public API


class MockUpstream:
    """A provider stand-in. `start()`, point a base URL at `.url`, inspect `.requests`."""

    def __init__(self, tls: TLSFiles | None = None, host: str = "127.0.0.1"):
        self.tls = tls
        self.host = host
        self.models = ["mock-model", "mock-model-2"]
        self.answer = "Hello from the mock upstream."
        self.stream_chunks = 3
        self.chunk_delay = 0.0
        self.response_headers: dict[str, str] = {}
        self.usage: dict | None = None
        self.response_model: str | None = None
        self.omit_usage = False
        self.response_delay = 0.0
        self.cut_stream_after: int | None = None
        self._lock = threading.Lock()
        self._requests: list[Recorded] = []
        self._error: ErrorReply | None = None
        self._srv: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle

    def start(self) -> "MockUpstream":
        srv = _Server((self.host, 0), _Handler)
        srv.mock = self
        if self.tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(self.tls.cert), str(self.tls.key))
            ctx.set_alpn_protocols(["http/1.1"])
            srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        self._srv = srv
        self._thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"mock-upstream-{self.port}", daemon=True)
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

    def __enter__(self) -> "MockUpstream":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._srv is not None, "mock not started"
        return self._srv.server_address[1]

    @property
    def authority(self) -> str:
        """host:port as the gateway must send it in Host/:authority."""
        return f"{'localhost' if self.tls else self.host}:{self.port}"

    @property
    def url(self) -> str:
        """Base URL: http://127.0.0.1:<port>, or https://localhost:<port> with TLS."""
        return f"{'https' if self.tls else 'http'}://{self.authority}"

    # -- behaviour

    def reset(self) -> None:
        """Forget recorded requests and restore the default behaviour."""
        with self._lock:
            self._requests.clear()
            self._error = None
        self.stream_chunks = 3
        self.chunk_delay = 0.0
        self.response_headers = {}
        self.usage = None
        self.response_model = None
        self.omit_usage = False
        self.response_delay = 0.0
        self.cut_stream_after = None

    def fail_with(self, status: int, body: object, headers: dict[str, str] | None = None,
                  count: int | None = 1) -> None:
        """Answer the next `count` requests (None: all until reset) with this error."""
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        with self._lock:
            self._error = ErrorReply(status, raw, dict(headers or {}), count)

    def _take_error(self) -> ErrorReply | None:
        with self._lock:
            e = self._error
            if e is None:
                return None
            if e.remaining is not None:
                e.remaining -= 1
                if e.remaining <= 0:
                    self._error = None
            return e

    # -- records

    def _record(self, rec: Recorded) -> None:
        with self._lock:
            self._requests.append(rec)

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def last(self) -> Recorded:
        reqs = self.requests
        assert reqs, "the mock upstream received no request"
        return reqs[-1]

    def only(self) -> Recorded:
        reqs = self.requests
        assert len(reqs) == 1, f"expected exactly one upstream request, got {len(reqs)}: " + \
            ", ".join(f"{r.method} {r.path}" for r in reqs)
        return reqs[0]

    def wait_for(self, n: int = 1, timeout: float = 5.0) -> list[Recorded]:
        """Waits until at least `n` requests were recorded (and the n-th answered)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            reqs = self.requests
            if len(reqs) >= n and reqs[n - 1].done_at is not None:
                return reqs
            time.sleep(0.01)
        raise AssertionError(f"mock upstream: expected {n} request(s) within {timeout}s, got {len(self.requests)}")
