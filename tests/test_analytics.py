"""Latency analytics end to end: calls through the real gateway with latencies the mock
controls (a delay before it answers), some failing (500, 429) and some streamed; then the
percentiles, time to first token and error rates of `GET /api/v1/analytics/latency` equal
those computed here from the stored records (`records.csv`) by the documented definitions:
nearest-rank percentiles, errors = status >= 400 or outcome upstream_error. In SQLite and
PostgreSQL.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict

import openai
import pytest

from harness import Gateway, provider
from harness.usage import admin_json, api_records

MESSAGES = [{"role": "user", "content": "Say hello"}]
DELAYS = [0.0, 0.01, 0.03, 0.06, 0.1, 0.0, 0.02, 0.05]


def nearest_rank(values: list[int], p: int) -> int:
    ordered = sorted(values)
    return ordered[math.ceil(p * len(ordered) / 100) - 1]


def model(r: dict) -> str:
    """What the store groups by: the answered model, else the requested one."""
    return r["model_answered"] or r["model_requested"]


def expected(records: list[dict], key) -> dict:
    groups: dict[str, list[dict]] = defaultdict(list)
    for r in records:
        groups[key(r)].append(r)
    out = {}
    for k, rs in groups.items():
        lat = [int(r["latency_ms"]) for r in rs]
        ttft = [int(r["ttfb_ms"]) for r in rs if r["streamed"] == "true" and r["ttfb_ms"]]
        out[k] = {
            "requests": len(rs),
            "errors": sum(1 for r in rs if int(r["status"]) >= 400 or r["outcome"] == "upstream_error"),
            "latency_ms": {f"p{p}": nearest_rank(lat, p) for p in (50, 90, 99)},
            "streamed": len(ttft),
            "ttft_ms": {f"p{p}": nearest_rank(ttft, p) for p in (50, 90, 99)} if ttft else None,
        }
    return out


def traffic(gw: Gateway, mock, key: str) -> None:
    for name in ("quick", "steady"):
        client = openai.OpenAI(api_key=key, base_url=gw.url(name), max_retries=0, timeout=15)
        for i, delay in enumerate(DELAYS):
            mock.response_delay = delay if name == "steady" else delay / 4
            if i == 2:
                mock.fail_with(500, {"error": {"message": "boom", "type": "server_error"}}, count=1)
            if i == 5:
                mock.fail_with(429, {"error": {"message": "slow down", "type": "rate_limit"}}, count=1)
            try:
                if i % 3 == 0:
                    for _ in client.chat.completions.create(model="mock-model", messages=MESSAGES, stream=True):
                        pass
                else:
                    client.chat.completions.create(model="mock-model", messages=MESSAGES)
            except openai.APIStatusError:
                pass
    mock.response_delay = 0.0


@pytest.fixture(params=["sqlite", "postgres"])
def agw(request, tmp_path, upstream, keys):
    store = None
    if request.param == "postgres":
        store = request.getfixturevalue("postgres_server").new_database("analytics")
    providers = [provider("quick", "openai", f"{upstream.url}/v1", "OPENAI_API_KEY"),
                 provider("steady", "openai-compatible", f"{upstream.url}/v1")]
    gw = Gateway(tmp_path, providers, keys.secrets(), name=f"analytics-{request.param}", store=store).start()
    yield gw
    gw.stop()


def test_percentiles_and_error_rates_match_the_stored_records(agw, upstream, keys):
    traffic(agw, upstream, keys.gateway)
    deadline = time.monotonic() + 5
    while len(records := api_records(agw)) < 2 * len(DELAYS) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(records) == 2 * len(DELAYS)
    by_provider = expected(records, lambda r: r["provider"])
    # The traffic is what the test means it to be: errors, streams and distinct latencies.
    assert {k: v["errors"] for k, v in by_provider.items()} == {"quick": 2, "steady": 2}
    assert by_provider["steady"]["streamed"] == 3
    assert by_provider["steady"]["latency_ms"]["p99"] >= 100

    got = admin_json(agw, "/api/v1/analytics/latency?group_by=provider&granularity=hour")
    assert got["percentiles"] == "nearest-rank"
    totals = {t["key"]: {k: t[k] for k in ("requests", "errors", "latency_ms", "streamed", "ttft_ms")}
              for t in got["totals"]}
    assert totals == by_provider
    for t in got["totals"]:
        assert t["error_rate"] == pytest.approx(t["errors"] / t["requests"])

    # Per hour: each bucket's figures from that hour's records alone.
    hour = lambda r: r["time"][:13]  # noqa: E731 (RFC 3339 "YYYY-MM-DDTHH")
    for p in got["points"]:
        in_bucket = [r for r in records if hour(r) == p["bucket"][:13] and r["provider"] == p["key"]]
        e = expected(in_bucket, lambda r: r["provider"])[p["key"]]
        assert {k: p[k] for k in e} == e

    # By model, filtered to one provider.
    by_model = admin_json(agw, "/api/v1/analytics/latency?group_by=model&provider=steady")["totals"]
    assert {t["key"]: t["latency_ms"] for t in by_model} == \
        {k: v["latency_ms"] for k, v in expected([r for r in records if r["provider"] == "steady"], model).items()}


def test_bad_queries_are_refused(agw):
    for bad in ("group_by=token_type", "group_by=colour", "granularity=week", "from=soon"):
        status, body, _ = agw.sidecar_admin(f"/api/v1/analytics/latency?{bad}")
        assert status == 400, (bad, body)
    status, _, _ = agw.sidecar_admin("/api/v1/analytics/latency", token=None)
    assert status == 401
