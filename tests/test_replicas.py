"""Several gateway replicas sharing state: two Envoys and two sidecars with the same plugin
configuration, one PostgreSQL database (`--store postgres://…`: usage records, budget holds,
token-limit counters) and one Redis (`--redis`: request-rate counters).

- A budget or a limit holds across replicas as it does on one: concurrency split over both
  never spends past a cap or passes a limit, and both admin APIs show the same figures.
- A replica killed mid-stream (SIGKILL, no drain) loses no record of a response its client
  read completely, and its holds are released by the survivor after `--hold-expiry-ms`.
- PostgreSQL stopped under load: budgeted calls fail closed (503 `shared_state_unavailable`,
  nothing forwarded) or, with `--shared-state-failure open`, pass; calls that need no shared
  decision keep working; once it is back every successful call has exactly one record.

Each test has its own database (and the Redis is flushed), so tests share no counters.
"""

from __future__ import annotations

import calendar
import http.client
import json
import os
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest

from harness import Gateway, PostgresServer, ServiceUnavailable, provider, wait_for
from harness.http import iter_sse
from harness.usage import (CONVERSATION_HEADER as CONV, api_records, budgets, cost, new_conversation,
                           override_prices, usd, wait_record, wait_records)
from test_budgets import assert_budget_exceeded, hold_of, wait_settled
from test_errors import assert_gateway_error
from test_rate_limits import away_from_minute_edge

PREFIX = "/llm/v1/providers"
HOUSE = {"input": "1.00", "output": "2.00", "cache_read": "0.10"}  # provider "house", models "m" and STREAM_MODEL
M = override_prices(HOUSE)
STREAM_MODEL = "m-chunks20-delay100"  # the mock streams 20 chunks, 100 ms apart
AGENTS = ["burst", "tokens", "rps", "rpm", "streamer", "budgeted", "free"]
KEYS = {a: f"gw-replica-{a}-" + os.urandom(6).hex() for a in AGENTS}


def compact(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def replica_providers(mock) -> list[dict]:
    return [
        {**provider("house", "openai", f"{mock.url}/v1", "OPENAI_API_KEY"),
         "models": [{"name": "m", **HOUSE}, {"name": STREAM_MODEL, **HOUSE}]},
        provider("local", "openai-compatible", f"{mock.url}/v1"),
    ]


@dataclass
class Replicas:
    gws: list[Gateway]
    pg: PostgresServer
    db: str  # the database URL every replica's --store names

    def __getitem__(self, i: int) -> Gateway:
        return self.gws[i % len(self.gws)]

    def __iter__(self):
        return iter(self.gws)

    @property
    def a(self) -> Gateway:
        return self.gws[0]

    @property
    def b(self) -> Gateway:
        return self.gws[1]


@pytest.fixture
def replicas(request, tmp_path, upstream, keys, postgres_server, redis_server):
    """`replicas(budgets=…, rate_limits=…, sidecar_args=[…], postgres=<own server>)`: two
    gateways with identical plugin configs on a new database of `postgres` (the session
    server by default) and the session Redis; stopped after the test."""
    started: list[Gateway] = []
    redis_server.flushall()

    def make(*, budgets: dict | None = None, rate_limits: list | None = None, sidecar_args=(),
             postgres: PostgresServer | None = None, n: int = 2) -> Replicas:
        pg = postgres or postgres_server
        db = pg.new_database(request.node.name)
        secrets = {**keys.secrets(), **{f"REPLICA_KEY_{a.upper()}": k for a, k in KEYS.items()}}
        api_keys = [{"name": a, "secret": f"REPLICA_KEY_{a.upper()}"} for a in AGENTS]
        gws = []
        for i in range(1, n + 1):
            gw = Gateway(tmp_path / f"replica{i}", replica_providers(upstream), secrets, api_keys,
                         name=f"replica{i}", store=db, redis=redis_server.url, sidecar_args=list(sidecar_args))
            if budgets is not None:
                gw.plugin["budgets"] = budgets
            if rate_limits is not None:
                gw.plugin["rate_limits"] = rate_limits
            started.append(gw)
            gws.append(gw.start())
        assert gws[0].plugin == gws[-1].plugin
        return Replicas(gws, pg, db)

    yield make
    for gw in started:
        gw.stop()


@pytest.fixture
def own_postgres(tmp_path):
    """A PostgreSQL server of this test alone (the test stops and restarts it)."""
    try:
        pg = PostgresServer(tmp_path / "pg-own", name="pg-own")
    except ServiceUnavailable as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield pg.start()
    finally:
        pg.cleanup()


# --------------------------------------------------------------------------- helpers


def post(gw: Gateway, agent: str, body: dict | bytes, provider_name: str = "house", headers=(),
         timeout: float = 20.0):
    """A raw chat completion as `agent` (its own gateway key)."""
    raw = body if isinstance(body, bytes) else compact(body)
    return gw.request("POST", f"{PREFIX}/{provider_name}/v1/chat/completions",
                      [("Authorization", f"Bearer {KEYS[agent]}"), ("Content-Type", "application/json"), *headers],
                      raw, timeout=timeout)


def mock_conversations(upstream) -> Counter:
    """How many requests of each conversation id reached the mock provider."""
    return Counter(r.header(CONV) for r in upstream.requests)


def record_ms(rec: dict) -> int:
    """The record's `time` column (RFC 3339, UTC, optional milliseconds) in Unix ms."""
    t = rec["time"].rstrip("Z")
    whole, _, frac = t.partition(".")
    s = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return s * 1000 + (int(frac.ljust(3, "0")[:3]) if frac else 0)


def max_per_second(times_ms: list[int], limit: int, edge_ms: int) -> dict[int, int]:
    """Successes per UTC second by record time. A record's time is taken when the sidecar
    sees the request, a moment before the limit is decided: one within `edge_ms` after a
    second's start may have been counted in the previous second, and is placed there while
    that second has room (greedy in time order, which finds a fitting placement if any).
    Returns the per-second counts."""
    per: Counter = Counter()
    for t in sorted(times_ms):
        sec = t // 1000
        if t % 1000 < edge_ms and per[sec - 1] < limit:
            per[sec - 1] += 1
        else:
            per[sec] += 1
    return dict(per)


# --------------------------------------------------------------------------- budgets


BURST_BODY = compact({"model": "m", "messages": [{"role": "user", "content": "burst"}], "max_tokens": 1000})
BURST_HOLD = hold_of(BURST_BODY, M, 1000)
BURST_CAP = 10 * BURST_HOLD + BURST_HOLD // 2  # room for exactly 10 holds
BURST_USAGE = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
BURST_COST = cost(M, input=5, output=3)


@pytest.mark.timeout(60)
def test_budget_holds_are_shared_across_replicas(replicas, upstream):
    """64 requests at once, alternating between the replicas, against a cap with room for 10
    holds: at most 10 in total reach the provider (not 10 per replica), the rest are 429
    budget_exceeded; the recorded spend stays within the cap, and both admin APIs show it."""
    rs = replicas(budgets={"agents": {"burst": {"cap_usd": usd(BURST_CAP), "window": "daily"}}})
    upstream.usage = BURST_USAGE
    upstream.response_delay = 1.5  # the admitted ones hold their reservation meanwhile
    cid = new_conversation()
    n = 64
    barrier = threading.Barrier(n)

    def one(i: int):
        barrier.wait()
        t0 = time.monotonic()
        r = post(rs[i], "burst", BURST_BODY, headers=[(CONV, cid)])
        return r, t0, time.monotonic(), time.time()

    with ThreadPoolExecutor(n) as ex:
        results = list(ex.map(one, range(n)))
    ok = [i for i, (r, *_) in enumerate(results) if r.status == 200]
    refused = [i for i, (r, *_) in enumerate(results) if r.status == 429]
    assert len(ok) + len(refused) == n, Counter(r.status for r, *_ in results)
    assert 1 <= len(ok) <= 10, f"{len(ok)} admitted over two replicas against room for 10 holds of {BURST_HOLD}"
    assert {i % 2 for i in refused} == {0, 1}, "both replicas refused"
    for i in refused[:6]:
        r, _, _, at = results[i]
        assert_budget_exceeded(r, "burst", "daily", at=at)
    assert len(upstream.requests) == len(ok), "refused requests reached the provider"

    recs = wait_records(rs.a, cid, len(ok), timeout=5)
    spent = sum(int(r["cost_nanousd"]) for r in recs)
    assert spent == len(ok) * BURST_COST <= BURST_CAP
    assert sorted(r["request_id"] for r in wait_records(rs.b, cid, len(ok))) == sorted(r["request_id"] for r in recs)
    for gw in rs:
        b = wait_settled(gw, "burst", timeout=5)
        assert b["spent_nanousd"] == spent and b["reserved_nanousd"] == 0, (gw.name, b)
        assert b["cap_nanousd"] == BURST_CAP, (gw.name, b)


# --------------------------------------------------------------------------- token limits


TOKEN_BODY = compact({"model": "mock-model", "messages": [{"role": "user", "content": "tokens"}], "max_tokens": 1000})
TOKEN_HOLD = len(TOKEN_BODY) + 1000  # at least one token per body byte, plus the output cap
TOKEN_LIMIT = 3 * TOKEN_HOLD + TOKEN_HOLD // 2  # room for 3 holds
TOKEN_USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


@pytest.mark.timeout(90)
def test_tokens_per_minute_shared_across_replicas(replicas, upstream):
    """16 calls at once over both replicas against a per-minute token limit with room for 3
    holds: at most 3 admitted in total, their tokens within the limit; every refusal is a 429
    with the x-ratelimit-* headers and Retry-After, and never reached the provider."""
    rs = replicas(rate_limits=[{"name": "tpm", "per": "agent", "provider": "local",
                                "tokens_per_minute": TOKEN_LIMIT}])
    away_from_minute_edge()
    upstream.usage = TOKEN_USAGE
    upstream.response_delay = 1.5
    cid = new_conversation()
    n = 16
    barrier = threading.Barrier(n)

    def one(i: int):
        barrier.wait()
        return post(rs[i], "tokens", TOKEN_BODY, provider_name="local", headers=[(CONV, cid)])

    with ThreadPoolExecutor(n) as ex:
        results = list(ex.map(one, range(n)))
    ok = [r for r in results if r.status == 200]
    refused = [(i, r) for i, r in enumerate(results) if r.status != 200]
    assert 1 <= len(ok) <= 3, f"{len(ok)} admitted against room for 3 holds of {TOKEN_HOLD} in {TOKEN_LIMIT}"
    assert len(ok) * TOKEN_HOLD <= TOKEN_LIMIT
    assert {i % 2 for i, _ in refused} == {0, 1}, "both replicas refused"
    for _, r in refused:
        body = assert_gateway_error(r, 429, "rate_limited")
        assert "tpm" in body["error"]["message"], body
        assert r.header("x-ratelimit-limit-tokens") == str(TOKEN_LIMIT), r.headers
        remaining = r.header("x-ratelimit-remaining-tokens")
        assert remaining is not None and int(remaining) < TOKEN_HOLD, r.headers
        assert (r.header("x-ratelimit-reset-tokens") or "").endswith("s"), r.headers
        ra = r.header("retry-after")
        assert ra is not None and 1 <= int(ra) <= 60, r.headers
    assert len(upstream.requests) == len(ok), "refused calls reached the provider"

    recs = wait_records(rs.b, cid, len(ok), timeout=5)
    used = sum(int(r["input_tokens"]) + int(r["output_tokens"]) for r in recs)
    assert used == len(ok) * 15 <= TOKEN_LIMIT


# --------------------------------------------------------------------------- request limits (Redis)


SMALL_LOCAL = compact({"model": "mock-model", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})


@pytest.mark.timeout(60)
def test_requests_per_second_shared_across_replicas(replicas, upstream):
    """40 requests spread over 2 s, alternating replicas, against 5 per second counted in
    Redis: never more than 5 successes in one UTC second over both replicas (not 5 each)."""
    rs = replicas(rate_limits=[{"name": "rps", "per": "agent", "requests_per_second": 5}])
    cid = new_conversation()
    n, spacing = 40, 0.05
    t0 = time.monotonic() + 0.2

    def one(i: int):
        time.sleep(max(0.0, t0 + i * spacing - time.monotonic()))
        return post(rs[i], "rps", SMALL_LOCAL, provider_name="local", headers=[(CONV, cid)])

    with ThreadPoolExecutor(n) as ex:
        results = list(ex.map(one, range(n)))
    ok = [r for r in results if r.status == 200]
    refused = [(i, r) for i, r in enumerate(results) if r.status != 200]
    assert len(ok) >= 5, Counter(r.status for r in results)
    assert {i % 2 for i, _ in refused} == {0, 1}, "both replicas refused"
    for _, r in refused:
        assert_gateway_error(r, 429, "rate_limited")
        assert r.header("x-ratelimit-limit-requests") == "5", r.headers
        assert r.header("x-ratelimit-remaining-requests") == "0", r.headers
        assert r.header("retry-after") == "1", r.headers
    assert len(upstream.requests) == len(ok), "refused requests reached the provider"

    recs = wait_records(rs.a, cid, len(ok), timeout=5)
    per_second = max_per_second([record_ms(r) for r in recs], 5, edge_ms=100)
    assert max(per_second.values()) <= 5, f"successes per UTC second over both replicas: {per_second}"


@pytest.mark.timeout(90)
def test_requests_per_minute_exact_across_replicas(replicas, upstream):
    """20 requests at once over both replicas against 7 a minute: exactly 7 succeed."""
    rs = replicas(rate_limits=[{"name": "rpm", "per": "agent", "requests_per_minute": 7}])
    away_from_minute_edge()
    cid = new_conversation()
    n = 20
    barrier = threading.Barrier(n)

    def one(i: int):
        barrier.wait()
        return post(rs[i], "rpm", SMALL_LOCAL, provider_name="local", headers=[(CONV, cid)])

    with ThreadPoolExecutor(n) as ex:
        results = list(ex.map(one, range(n)))
    statuses = Counter(r.status for r in results)
    assert statuses == {200: 7, 429: 13}, statuses
    for r in results:
        if r.status == 429:
            assert_gateway_error(r, 429, "rate_limited")
            assert r.header("x-ratelimit-limit-requests") == "7", r.headers
            assert r.header("x-ratelimit-remaining-requests") == "0", r.headers
            assert 1 <= int(r.header("retry-after") or 0) <= 60, r.headers
    assert len(upstream.requests) == 7
    assert len(wait_records(rs.b, cid, 7)) == 7


# --------------------------------------------------------------------------- a replica crashes


STREAM_BODY = compact({"model": STREAM_MODEL, "messages": [{"role": "user", "content": "stream"}],
                       "max_tokens": 1000, "stream": True})
STREAM_HOLD = hold_of(STREAM_BODY, M, 1000)
STREAM_USAGE = {"prompt_tokens": 12, "completion_tokens": 20, "total_tokens": 32}
STREAM_COST = cost(M, input=12, output=20)
HOLD_EXPIRY_S = 3.0


class Stream(threading.Thread):
    """One streamed chat completion read to the end: `complete` when the client read the
    whole body (`[DONE]` and the end of the chunked body) without an error."""

    def __init__(self, gw: Gateway, agent: str):
        super().__init__(daemon=True, name=f"stream-{gw.name}")
        self.gw, self.agent = gw, agent
        self.cid = new_conversation()
        self.status: int | None = None
        self.events = 0
        self.saw_done = False
        self.error: BaseException | None = None
        self.complete = False

    def run(self) -> None:
        c = http.client.HTTPConnection(self.gw.host, self.gw.port, timeout=15)
        try:
            c.request("POST", f"{PREFIX}/house/v1/chat/completions", body=STREAM_BODY, headers={
                "Authorization": f"Bearer {KEYS[self.agent]}", "Content-Type": "application/json", CONV: self.cid})
            r = c.getresponse()
            self.status = r.status
            for ev in iter_sse(r):
                self.events += 1
                self.saw_done = self.saw_done or ev.data == "[DONE]"
            self.complete = self.status == 200 and self.saw_done
        except (OSError, http.client.HTTPException) as e:
            self.error = e
        finally:
            c.close()

    def __repr__(self) -> str:
        return (f"<{self.name} {self.cid} status={self.status} events={self.events} done={self.saw_done} "
                f"complete={self.complete} error={self.error!r}>")


def reserved(gw: Gateway, agent: str) -> int:
    return budgets(gw).get(agent, {}).get("reserved_nanousd", 0)


@pytest.mark.timeout(60)
def test_killed_replica_loses_no_completed_record_and_its_holds_expire(replicas, upstream):
    """Streams on both replicas; some complete; replica 1 is SIGKILLed with streams in flight.
    Every stream a client read to the end has its record (read on replica 2); the dead
    replica's holds stay visible on replica 2 right after the crash and are released within
    the hold expiry (3 s) plus a few seconds; spend is what the records say."""
    rs = replicas(budgets={"agents": {"streamer": {"cap_usd": "10", "window": "daily"}}},
                  sidecar_args=["--hold-expiry-ms", str(int(HOLD_EXPIRY_S * 1000))])
    upstream.usage = STREAM_USAGE

    early = [Stream(rs[i], "streamer") for i in range(4)]
    for s in early:
        s.start()
    for s in early:
        s.join(15)
    assert all(s.complete for s in early), early

    late_a = [Stream(rs.a, "streamer") for _ in range(4)]  # in flight on replica 1 when it dies
    late_b = [Stream(rs.b, "streamer") for _ in range(2)]
    for s in late_a + late_b:
        s.start()
    wait_for(lambda: all(s.events >= 3 for s in late_a + late_b), 10, what="every late stream under way")
    before = reserved(rs.b, "streamer")
    rs.a.kill()
    t_kill = time.monotonic()
    right_after = reserved(rs.b, "streamer")
    assert right_after >= len(late_a) * STREAM_HOLD, (
        f"reserved {right_after} on replica 2 right after the crash (before it: {before}); the dead replica's "
        f"{len(late_a)} streams hold {len(late_a)} × {STREAM_HOLD}")

    for s in late_a + late_b:
        s.join(15)
    assert not any(s.complete for s in late_a), f"a stream of the killed replica completed: {late_a}"
    assert all(s.complete for s in late_b), late_b

    deadline = t_kill + HOLD_EXPIRY_S + 5
    while (left := reserved(rs.b, "streamer")) != 0:
        assert time.monotonic() < deadline, (
            f"replica 2 still shows {left} reserved {time.monotonic() - t_kill:.1f} s after replica 1 died "
            f"(hold expiry {HOLD_EXPIRY_S} s)")
        time.sleep(0.1)

    for s in early + late_b:
        rec = wait_record(rs.b, s.cid)
        assert rec["status"] == "200" and rec["cost_nanousd"] == str(STREAM_COST), rec
    spent = sum(int(r["cost_nanousd"] or 0) for r in api_records(rs.b) if r["agent"] == "streamer")
    b = budgets(rs.b)["streamer"]
    assert b["spent_nanousd"] == spent and b["reserved_nanousd"] == 0, b


# --------------------------------------------------------------------------- PostgreSQL outage


BUDGETED = {"agents": {"budgeted": {"cap_usd": "10", "window": "daily"}}}
SMALL_HOUSE = compact({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 10})
OUTAGE_USAGE = {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}


@dataclass
class Call:
    agent: str
    replica: str
    cid: str
    sent: float
    done: float
    status: int | None
    resp: object = field(repr=False)


def call_as(rs: Replicas, agent: str, i: int, timeout: float = 20.0) -> Call:
    """One call as `agent` on replica i % 2: `budgeted` to the budgeted house model,
    `free` (no budget, no limit) to the openai-compatible provider."""
    gw = rs[i]
    cid = new_conversation()
    t0 = time.monotonic()
    try:
        if agent == "free":
            r = post(gw, agent, SMALL_LOCAL, provider_name="local", headers=[(CONV, cid)], timeout=timeout)
        else:
            r = post(gw, agent, SMALL_HOUSE, headers=[(CONV, cid)], timeout=timeout)
        status = r.status
    except (OSError, http.client.HTTPException) as e:
        r, status = e, None
    return Call(agent, gw.name, cid, t0, time.monotonic(), status, r)


def assert_one_record_each(gw: Gateway, cids: list[str], timeout: float = 15.0) -> None:
    """Every conversation in `cids` has exactly one record (queued records may take a moment
    to reach PostgreSQL once it is back)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = Counter(r["conversation_id"] for r in api_records(gw))
        missing = [c for c in cids if counts[c] == 0]
        if not missing:
            break
        assert time.monotonic() < deadline, f"{len(missing)} of {len(cids)} successful calls have no record"
        time.sleep(0.2)
    time.sleep(0.3)
    counts = Counter(r["conversation_id"] for r in api_records(gw))
    dup = {c: counts[c] for c in cids if counts[c] != 1}
    assert not dup, f"calls with other than one record: {dup}"


@pytest.mark.timeout(90)
def test_postgres_outage_fails_closed_and_recovers(own_postgres, replicas, upstream):
    """PostgreSQL stopped while two threads send calls: budgeted calls get JSON 503
    shared_state_unavailable and are not forwarded; calls needing no budget or limit still
    succeed; after the restart budgeted calls succeed again within a few seconds, and every
    successful call has exactly one record."""
    rs = replicas(postgres=own_postgres, budgets=BUDGETED)
    upstream.usage = OUTAGE_USAGE
    warm = [call_as(rs, "budgeted", 0), call_as(rs, "free", 1)]
    assert [c.status for c in warm] == [200, 200], warm

    calls: list[Call] = []
    lock = threading.Lock()
    stop = threading.Event()

    def loop(agent: str) -> None:
        i = 0
        while not stop.is_set():
            c = call_as(rs, agent, i)
            i += 1
            with lock:
                calls.append(c)
            time.sleep(0.1)

    threads = [threading.Thread(target=loop, args=(a,), daemon=True, name=f"load-{a}") for a in ("budgeted", "free")]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        own_postgres.stop()
        t_down = time.monotonic()
        time.sleep(3.0)
        t_restart = time.monotonic()
        own_postgres.start()
        t_up = time.monotonic()

        def recovered() -> list[Call]:
            with lock:
                return [c for c in calls if c.agent == "budgeted" and c.sent >= t_up and c.status == 200]

        wait_for(lambda: bool(recovered()), 10, what="a budgeted call succeeding after the restart")
        first = min(recovered(), key=lambda c: c.done)
        assert first.done - t_up < 5, f"budgeted calls back {first.done - t_up:.1f} s after the restart"
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join(25)
    with lock:
        calls = list(calls)

    at_mock = mock_conversations(upstream)
    during = [c for c in calls if c.sent >= t_down and c.done <= t_restart]
    refused = [c for c in during if c.agent == "budgeted"]
    assert len(refused) >= 3, f"only {len(refused)} budgeted calls answered during the outage: {calls}"
    for c in refused:
        assert c.status == 503, c
        assert_gateway_error(c.resp, 503, "shared_state_unavailable")
        assert c.done - c.sent < 5, f"the refusal took {c.done - c.sent:.1f} s"
        assert at_mock[c.cid] == 0, f"refused call {c.cid} reached the provider"
    free_down = [c for c in calls if c.agent == "free" and t_down <= c.sent < t_restart]
    assert free_down and all(c.status == 200 for c in free_down), free_down

    ok = [c for c in warm + calls if c.status == 200]
    assert all(at_mock[c.cid] == 1 for c in ok), "a successful call did not reach the provider exactly once"
    assert_one_record_each(rs.b, [c.cid for c in ok])
    for gw in rs:
        wait_settled(gw, "budgeted", timeout=5)


@pytest.mark.timeout(90)
def test_postgres_outage_fail_open_lets_budgeted_calls_through(own_postgres, replicas, upstream):
    """`--shared-state-failure open`: while PostgreSQL is down budgeted calls pass unchecked
    (and reach the provider); once it is back every successful call has exactly one record."""
    rs = replicas(postgres=own_postgres, budgets=BUDGETED, sidecar_args=["--shared-state-failure", "open"])
    upstream.usage = OUTAGE_USAGE
    ok = [call_as(rs, "budgeted", 0), call_as(rs, "free", 1)]
    assert [c.status for c in ok] == [200, 200], ok

    own_postgres.stop()
    down = [call_as(rs, "budgeted", i) for i in range(4)] + [call_as(rs, "free", i) for i in range(2)]
    own_postgres.start()
    refused = [(c, getattr(c.resp, "body", c.resp)) for c in down if c.status != 200]
    assert not refused, f"calls refused while PostgreSQL was down (fail open): {refused}"
    at_mock = mock_conversations(upstream)
    assert all(at_mock[c.cid] == 1 for c in down), "a call passed while PostgreSQL was down did not reach the provider"
    after = [call_as(rs, "budgeted", i, timeout=10) for i in range(2)]
    assert all(c.status == 200 for c in after), after
    assert_one_record_each(rs.a, [c.cid for c in ok + down + after])
    for gw in rs:
        wait_settled(gw, "budgeted", timeout=5)
