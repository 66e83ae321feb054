"""Raw HTTP/1.1 requests with exactly the bytes a test means to send (path, duplicate
headers), and SSE reading with per-event receive timestamps."""

from __future__ import annotations

import http.client
import json
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    elapsed: float  # seconds from sending to the whole body read

    def header(self, name: str) -> str | None:
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return None

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise AssertionError(f"response body is not JSON ({e}): {self.body[:500]!r}") from None

    def __str__(self) -> str:
        return f"{self.status} {self.reason} {self.body[:300]!r}"


def request(
    host: str,
    port: int,
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | str | dict | None = None,
    timeout: float = 10.0,
    conn: http.client.HTTPConnection | None = None,
) -> Response:
    """Sends one request; `target` goes on the request line unchanged, `headers` in order
    (duplicates allowed). `Host` is added unless given. A dict body is sent as JSON.
    Pass `conn` to reuse a keep-alive connection."""
    hdrs = list(headers)
    if isinstance(body, dict):
        body = json.dumps(body).encode()
        if not any(k.lower() == "content-type" for k, _ in hdrs):
            hdrs.append(("Content-Type", "application/json"))
    elif isinstance(body, str):
        body = body.encode()
    own = conn is None
    c = conn or http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        t0 = time.monotonic()
        c.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        if not any(k.lower() == "host" for k, _ in hdrs):
            c.putheader("Host", f"{host}:{port}")
        for k, v in hdrs:
            c.putheader(k, v)
        if body is not None:
            c.putheader("Content-Length", str(len(body)))
        c.endheaders(body)
        r = c.getresponse()
        data = r.read()
        return Response(r.status, r.reason, list(r.getheaders()), data, time.monotonic() - t0)
    finally:
        if own:
            c.close()


@dataclass
class SSEEvent:
    event: str | None
    data: str
    received_at: float  # time.monotonic() when its terminating blank line was read

    def json(self) -> Any:
        return json.loads(self.data)


def iter_sse(resp: http.client.HTTPResponse) -> Iterator[SSEEvent]:
    """Parses an SSE body as it arrives (LF or CRLF line ends)."""
    event: str | None = None
    data: list[str] = []
    while True:
        line = resp.readline()
        if not line:
            if data:
                yield SSEEvent(event, "\n".join(data), time.monotonic())
            return
        text = line.decode("utf-8").rstrip("\r\n")
        if text == "":
            if data or event:
                yield SSEEvent(event, "\n".join(data), time.monotonic())
            event, data = None, []
        elif text.startswith(":"):
            continue
        else:
            name, _, value = text.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)


def request_large(
    host: str,
    port: int,
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    timeout: float = 30.0,
) -> Response:
    """Sends a (large) body while already reading the response, so a reply the server makes
    before the body is complete (e.g. 413, then closing the connection) is still read."""
    import socket
    import threading

    sock = socket.create_connection((host, port), timeout=timeout)
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines += [f"Content-Length: {len(body)}", "", ""]
    head = "\r\n".join(lines).encode()
    send_error: list[BaseException] = []

    def send() -> None:
        try:
            sock.sendall(head)
            view = memoryview(body)
            for i in range(0, len(body), 1 << 20):
                sock.sendall(view[i:i + (1 << 20)])
        except OSError as e:  # the server answered and closed: expected for early replies
            send_error.append(e)

    t0 = time.monotonic()
    sender = threading.Thread(target=send, daemon=True, name="request-large-sender")
    sender.start()
    try:
        r = http.client.HTTPResponse(sock, method=method)
        r.begin()
        data = r.read()
        return Response(r.status, r.reason, list(r.getheaders()), data, time.monotonic() - t0)
    finally:
        sock.close()
        sender.join(timeout=5)
