"""Reading what the gateway recorded, and what it should have: usage records through the
admin API (`records.csv`) and straight from the sidecar's SQLite store, budgets, metrics,
and the expected cost from `ext-proc/pricing/catalog.json` (providers.md §6).

Records are matched to requests by the conversation id the test sends
(`x-genai-conversation-id`), so tests sharing a gateway never see each other's records.
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable

from .gateway import REPO, Gateway
from .procs import StartupError

CATALOG = REPO / "ext-proc" / "pricing" / "catalog.json"
CONVERSATION_HEADER = "x-genai-conversation-id"

# The token buckets of a record, as CSV columns (records.csv) and SQLite columns.
BUCKETS = ("input", "cache_read", "cache_write_5m", "cache_write_1h", "cache_write_30m", "cache_write_12h", "output")
TOKEN_COLUMNS = tuple(f"{b}_tokens" for b in BUCKETS) + ("reasoning_tokens",)


def new_conversation() -> str:
    return "conv-" + uuid.uuid4().hex


# --------------------------------------------------------------------------- prices


def nano_per_token(usd_per_million: str) -> int:
    """"0.075" USD per 1M tokens is 75 nano-USD per token, exactly."""
    n = Decimal(usd_per_million) * 1000
    assert n == n.to_integral_value(), usd_per_million
    return int(n)


def catalog_prices(kind: str, model: str, prompt_tokens: int = 0, day: str | None = None) -> dict[str, int]:
    """nano-USD per token by bucket for `model` of provider `kind`, from the catalog JSON
    (the entry in force on `day`, today by default; the tier for `prompt_tokens`)."""
    day = day or time.strftime("%Y-%m-%d", time.gmtime())
    entries = [e for e in json.loads(CATALOG.read_text())["providers"].get(kind, [])
               if model in e["models"] and e.get("effective_from", "0000-00-00") <= day]
    assert entries, f"{kind} model {model!r} is not in the catalog"
    entry = max(entries, key=lambda e: e.get("effective_from", ""))
    prices = entry
    for tier in entry.get("tiers", []):
        if prompt_tokens > tier["above_prompt_tokens"]:
            prices = tier
    return {b: nano_per_token(prices[b]) for b in BUCKETS if b in prices}


def override_prices(override: dict[str, str]) -> dict[str, int]:
    return {b: nano_per_token(v) for b, v in override.items() if b in BUCKETS}


def cost(prices: dict[str, int], **tokens: int) -> int:
    """Σ bucket × price in nano-USD; a bucket with tokens but no price is a test error."""
    total = 0
    for b, n in tokens.items():
        assert b in BUCKETS, b
        if n:
            assert b in prices, f"no {b} price in {prices}"
            total += n * prices[b]
    return total


def usd(nanousd: int) -> str:
    """nano-USD as an exact decimal USD string (for config `cap_usd`)."""
    return f"{nanousd // 1_000_000_000}.{nanousd % 1_000_000_000:09d}"


# --------------------------------------------------------------------------- the admin API


def admin_json(gw: Gateway, path: str) -> Any:
    status, body, _ = gw.sidecar_admin(path)
    assert status == 200, f"GET {path}: {status} {body[:500]!r}"
    return json.loads(body)


def admin_csv(gw: Gateway, path: str) -> list[dict[str, str]]:
    status, body, headers = gw.sidecar_admin(path)
    assert status == 200, f"GET {path}: {status} {body[:500]!r}"
    ct = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    assert ct.startswith("text/csv"), ct
    return list(csv.DictReader(io.StringIO(body.decode("utf-8"), newline="")))


def api_records(gw: Gateway, query: str = "") -> list[dict[str, str]]:
    """Every record of the last 7 days through `GET /api/v1/usage/records.csv`."""
    return admin_csv(gw, "/api/v1/usage/records.csv" + (f"?{query}" if query else ""))


def wait_records(gw: Gateway, conversation: str, n: int = 1, timeout: float = 3.0) -> list[dict[str, str]]:
    """The records with this conversation id once there are `n` (API), then a little longer
    to be sure no more come."""
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in api_records(gw) if r["conversation_id"] == conversation]
        if len(found) >= n:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(found)} record(s) for conversation {conversation} after {timeout}s, "
                                 f"expected {n}: {found}")
        time.sleep(0.05)
    time.sleep(0.15)
    found = [r for r in api_records(gw) if r["conversation_id"] == conversation]
    assert len(found) == n, f"expected {n} record(s) for {conversation}, got {len(found)}: {found}"
    return found


def wait_record(gw: Gateway, conversation: str, timeout: float = 3.0) -> dict[str, str]:
    return wait_records(gw, conversation, 1, timeout)[0]


def tokens_of(rec: dict[str, Any]) -> dict[str, int]:
    """The buckets of a record (CSV or SQLite row) as ints, without the `_tokens` suffix."""
    return {c[: -len("_tokens")]: int(rec[c]) for c in TOKEN_COLUMNS}


def expect_tokens(**buckets: int) -> dict[str, int]:
    """All eight buckets, zero unless given."""
    out = {c[: -len("_tokens")]: 0 for c in TOKEN_COLUMNS}
    for k, v in buckets.items():
        assert k in out, k
        out[k] = v
    return out


# --------------------------------------------------------------------------- the store itself


def store_path(gw: Gateway) -> Path:
    return gw.workdir / "usage.db"


def db_records(path: Path | Gateway, where: str = "", args: Iterable[Any] = ()) -> list[dict[str, Any]]:
    """Rows of `usage_records` read directly with sqlite3 (read-only)."""
    p = store_path(path) if isinstance(path, Gateway) else path
    conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=5)
    try:
        conn.row_factory = sqlite3.Row
        sql = "SELECT * FROM usage_records" + (f" WHERE {where}" if where else "") + " ORDER BY id"
        try:
            return [dict(r) for r in conn.execute(sql, tuple(args))]
        except sqlite3.OperationalError as e:
            if "no such column: id" not in str(e):
                raise
            sql = sql.replace(" ORDER BY id", " ORDER BY time_ms")
            return [dict(r) for r in conn.execute(sql, tuple(args))]
    finally:
        conn.close()


# --------------------------------------------------------------------------- the sidecar


def restart_sidecar(gw: Gateway, timeout: float = 30.0) -> None:
    """Stops the sidecar (SIGTERM) and starts it again with the same config, gRPC and admin
    ports and store; Envoy keeps running."""
    from .gateway import sidecar_environment, start_sidecar, wait_sidecar_ready

    assert gw.sidecar is not None
    gw.sidecar.stop()
    name = f"sidecar-r{int(time.time() * 1000) % 100000}"
    gw.sidecar = start_sidecar(gw.yaml_path, gw.sidecar_port, gw.secrets_dir, gw.workdir, name=name,
                               extra_args=gw.sidecar_args, env=sidecar_environment(gw.sidecar_env),
                               admin_port=gw.sidecar_admin_port)
    wait_sidecar_ready(gw.sidecar, gw.sidecar_port, timeout)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if gw.sidecar_admin("/healthz", token=None, timeout=1.0)[0] == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise StartupError(f"restarted sidecar's admin API not up after {timeout}s\n{gw.sidecar.output()}")
        time.sleep(0.05)


def budgets(gw: Gateway) -> dict[str, dict]:
    """`GET /api/v1/budgets` by agent."""
    return {b["agent"]: b for b in admin_json(gw, "/api/v1/budgets")["budgets"]}


# --------------------------------------------------------------------------- metrics


def parse_metrics(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Prometheus text exposition → (name, labels, value) samples."""
    import re

    out = []
    label_re = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if "{" in line:
            name, rest = line.split("{", 1)
            labels_text, value = rest.rsplit("}", 1)
            labels = {k: v.encode().decode("unicode_escape") for k, v in label_re.findall(labels_text)}
        else:
            name, value = line.split(" ", 1)
            labels = {}
        out.append((name, labels, float(value.strip().split(" ")[0])))
    return out
