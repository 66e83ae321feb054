#!/usr/bin/env python3
"""An offline, OpenAI-compatible demo LLM (Python stdlib only).

`make run` starts it on 127.0.0.1:9100 as the `demo` provider, so the gateway can be tried
without any provider account:

    python3 examples/mock_llm.py --port 9100

It serves

- `GET  /v1/models`
- `POST /v1/chat/completions`, non-streamed (JSON with `usage`) and streamed (SSE `data:`
  chunks, one word each with a small delay, a usage chunk with `choices: []` when the request
  asks for `stream_options.include_usage`, then `data: [DONE]`).

The building blocks (`JSONHandler`, `ChunkedWriter`, the OpenAI payload builders) are reused
by the test suite's recording mock in `tests/mocks/upstream.py`; this file imports nothing
from the tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DEFAULT_MODEL = "demo-model"
CANNED_ANSWER = (
    "Hello! I am the gateway's offline demo model. Your request went through Envoy and "
    "the aigw filter, which checked your gateway key and added the upstream one; the "
    "sidecar priced and recorded the usage."
)


# --------------------------------------------------------------------------- token counts


def count_tokens(text: str) -> int:
    """A crude, deterministic token count: one token per whitespace-separated word."""
    return len(text.split())


def prompt_text(messages: object) -> str:
    """The text of OpenAI-style `messages` (string or content-part lists)."""
    parts: list[str] = []
    if isinstance(messages, list):
        for m in messages:
            if not isinstance(m, dict):
                continue
            content = m.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(
                    p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
                )
    return " ".join(parts)


def split_words(text: str) -> list[str]:
    """`text` as one piece per word (trailing space kept), concatenating back to `text`."""
    words = text.split(" ")
    return [w + " " for w in words[:-1]] + [words[-1]]


# --------------------------------------------------------------------------- OpenAI shapes


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


def openai_usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }


def chat_completion(model: str, answer: str, prompt_tokens: int) -> dict:
    """A non-streamed `chat.completion` object."""
    return {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": answer, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": openai_usage(prompt_tokens, count_tokens(answer)),
        "system_fingerprint": "fp_mock",
    }


def chat_stream_events(
    model: str, pieces: list[str], prompt_tokens: int, include_usage: bool
) -> list[dict | str]:
    """The `data:` payloads of a streamed chat completion, `[DONE]` last.

    Element 0 is the role chunk, elements 1..len(pieces) the content chunks, then the finish
    chunk, the usage chunk (only with `include_usage`) and `"[DONE]"`.
    """
    cid, created = new_id("chatcmpl-"), int(time.time())

    def chunk(delta: dict, finish: str | None = None, usage: dict | None = None, choices=True) -> dict:
        c = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_mock",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
            if choices
            else [],
        }
        if include_usage:
            c["usage"] = usage
        return c

    events: list[dict | str] = [chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [chunk({"content": p}) for p in pieces]
    events.append(chunk({}, finish="stop"))
    if include_usage:
        usage = openai_usage(prompt_tokens, count_tokens("".join(pieces)))
        events.append(chunk({}, usage=usage, choices=False))
    events.append("[DONE]")
    return events


def models_list(models: list[str]) -> dict:
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 1_700_000_000, "owned_by": "mock"} for m in models],
    }


def openai_error(status: int, message: str, code: str | None = None, type_: str = "invalid_request_error") -> dict:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def sse_data(payload: dict | str) -> bytes:
    """One SSE event with only a `data:` line (OpenAI and Gemini framing)."""
    text = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {text}\n\n".encode()


def sse_event(event: str, payload: dict) -> bytes:
    """One SSE event with an `event:` line (Anthropic framing)."""
    return f"event: {event}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()


# --------------------------------------------------------------------------- HTTP plumbing


class ChunkedWriter:
    """A `Transfer-Encoding: chunked` response body, one `write` per network send.

    Each SSE event is sent as its own HTTP chunk with one `sendall`, so it leaves the process
    immediately (the handler disables Nagle's algorithm).
    """

    def __init__(self, handler: BaseHTTPRequestHandler):
        self._h = handler
        self.sent_at: list[float] = []  # time.monotonic() of each write

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self._h.wfile.flush()
        self.sent_at.append(time.monotonic())

    def close(self) -> None:
        self._h.wfile.write(b"0\r\n\r\n")
        self._h.wfile.flush()


class JSONHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler with body reading and JSON/SSE replies."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server_version = "mock-llm/1"
    sys_version = ""
    quiet = True

    def log_message(self, fmt: str, *args) -> None:  # noqa: D401 - stdlib signature
        if not self.quiet:
            super().log_message(fmt, *args)

    def read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # Trailers, up to the blank line.
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(out)
                out += self.rfile.read(size)
                self.rfile.readline(3)  # CRLF after the chunk
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_json(self, status: int, obj: object, headers: dict[str, str] | None = None) -> None:
        body = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def start_sse(self, status: int = 200, headers: dict[str, str] | None = None) -> ChunkedWriter:
        self.send_response(status)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        return ChunkedWriter(self)


def parse_json(body: bytes) -> dict:
    try:
        v = json.loads(body or b"{}")
    except ValueError:
        return {}
    return v if isinstance(v, dict) else {}


# --------------------------------------------------------------------------- the demo server


class DemoHandler(JSONHandler):
    """The `make run` demo provider."""

    word_delay = 0.05  # seconds between streamed words

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?", 1)[0]
        if path.rstrip("/").endswith("/models"):
            self.send_json(200, models_list([DEFAULT_MODEL]))
        else:
            self.send_json(404, openai_error(404, f"no route for GET {path}", "not_found"))

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0]
        req = parse_json(self.read_body())
        if not path.endswith("/chat/completions"):
            self.send_json(404, openai_error(404, f"no route for POST {path}", "not_found"))
            return
        if not isinstance(req.get("messages"), list) or not req["messages"]:
            self.send_json(400, openai_error(400, "'messages' must be a non-empty list", "invalid_messages"))
            return
        model = str(req.get("model") or DEFAULT_MODEL)
        prompt_tokens = count_tokens(prompt_text(req["messages"]))
        if not req.get("stream"):
            self.send_json(200, chat_completion(model, CANNED_ANSWER, prompt_tokens))
            return
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        events = chat_stream_events(model, split_words(CANNED_ANSWER), prompt_tokens, include_usage)
        out = self.start_sse()
        try:
            for i, ev in enumerate(events):
                if 1 < i <= len(events) - 2:
                    time.sleep(self.word_delay)
                out.write(sse_data(ev))
            out.close()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-stream


def serve(host: str = "127.0.0.1", port: int = 9100, handler=DemoHandler) -> ThreadingHTTPServer:
    """Binds and serves in a daemon thread; returns the server (`.server_address`, `.shutdown()`)."""
    srv = ThreadingHTTPServer((host, port), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, name="mock-llm", daemon=True).start()
    return srv


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9100)
    ap.add_argument("--word-delay", type=float, default=DemoHandler.word_delay, help="seconds between streamed words")
    ap.add_argument("--verbose", action="store_true", help="log each request")
    args = ap.parse_args(argv)
    DemoHandler.word_delay = args.word_delay
    DemoHandler.quiet = not args.verbose
    srv = ThreadingHTTPServer((args.host, args.port), DemoHandler)
    srv.daemon_threads = True
    host, port = srv.server_address[:2]
    print(f"mock_llm: OpenAI-compatible demo model listening on http://{host}:{port}/v1", file=sys.stderr, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
