#!/usr/bin/env python3
"""Latency the gateway adds (not a test).

Starts the demo mock LLM (examples/mock_llm.py, its own process) and a gateway (Envoy + aigw
filter + sidecar, via the test harness) in front of it, then sends N sequential non-streamed
chat completions on one keep-alive connection straight to the mock, and N through the
gateway, and prints median/p90/p99 of each and the median added latency.

    .venv/bin/python tests/measure_latency.py [--requests 1000] [--warmup 50]

Needs `make build`. Client, mock, Envoy and sidecar share the machine, so read the numbers as
an upper bound of what the gateway costs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Gateway, Managed, free_port, port_open, provider  # noqa: E402
from harness.gateway import GATEWAY_KEY_SECRET, REPO  # noqa: E402

BODY = json.dumps({"model": "demo-model", "messages": [{"role": "user", "content": "Say hello"}]}).encode()


def run(host: str, port: int, path: str, headers: dict[str, str], n: int, warmup: int) -> list[float]:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.connect()
    # http.client sends headers and body in separate writes; without TCP_NODELAY the body
    # waits for a delayed ACK.
    import socket

    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out = []
    try:
        for i in range(warmup + n):
            t0 = time.perf_counter()
            conn.request("POST", path, BODY, {"Content-Type": "application/json", **headers})
            r = conn.getresponse()
            r.read()
            dt = time.perf_counter() - t0
            if r.status != 200:
                raise SystemExit(f"request {i} to :{port}{path} got {r.status}")
            if i >= warmup:
                out.append(dt)
    finally:
        conn.close()
    return out


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s)) - 1))]


def fmt(xs: list[float]) -> str:
    return (f"median {statistics.median(xs) * 1e3:7.3f} ms   p90 {pct(xs, 90) * 1e3:7.3f} ms   "
            f"p99 {pct(xs, 99) * 1e3:7.3f} ms")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=50)
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="aigw-latency-"))
    mock_port = free_port()
    mock = Managed("mock_llm", [sys.executable, REPO / "examples" / "mock_llm.py", "--port", str(mock_port)], work)
    gw = None
    try:
        mock.wait_until("listening", lambda: port_open("127.0.0.1", mock_port), 10)
        key = "gw-latency-key"
        gw = Gateway(work / "gw", [provider("demo", "openai-compatible", f"http://127.0.0.1:{mock_port}/v1")],
                     {GATEWAY_KEY_SECRET: key}, name="latency").start()
        direct = run("127.0.0.1", mock_port, "/v1/chat/completions", {}, args.requests, args.warmup)
        via = run(gw.host, gw.port, "/llm/v1/providers/demo/chat/completions", {"Authorization": f"Bearer {key}"},
                  args.requests, args.warmup)
        print(f"{args.requests} sequential non-streamed chat completions, one keep-alive connection each")
        print(f"  direct to mock : {fmt(direct)}")
        print(f"  through gateway: {fmt(via)}")
        print(f"  added (median) : {(statistics.median(via) - statistics.median(direct)) * 1e3:.3f} ms")
        return 0
    except Exception:
        if gw is not None:
            print(gw.logs(), file=sys.stderr)
        raise
    finally:
        if gw is not None:
            gw.stop()
        mock.stop()


if __name__ == "__main__":
    sys.exit(main())
