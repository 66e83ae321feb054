#!/usr/bin/env python3
"""`make bench`: what the gateway costs next to a plain Envoy, on this machine, in one run.

    .venv/bin/python bench/run.py [--quick] [--variants plain,wasm,gateway-noacct,gateway,unified]
    .venv/bin/python bench/run.py --memory [--requests 1000000]

Everything runs on 127.0.0.1 and every wait is bounded; the processes it starts are
stopped by PID at the end, also on Ctrl-C or SIGTERM. See bench/README.md for what is
measured and how; results go to bench/results/<UTC time>.json and .md.

Needs `make deps build`, `wrk` (Debian package) and cargo (the mock upstream and the load
generator in bench/mock-upstream/ are built here, a standalone cargo project).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))

from harness import GATEWAY_KEY_SECRET, Gateway, Managed, envoy_binary, http_filter, provider  # noqa: E402
from harness.services import PostgresServer  # noqa: E402
from harness.usage import budgets  # noqa: E402
from harness import gateway as harness_gateway  # noqa: E402
from harness import http as rawhttp  # noqa: E402
from harness.procs import StartupError, stop_all  # noqa: E402

MOCK_DIR = BENCH / "mock-upstream"
MOCK_TARGET = MOCK_DIR / "target"
MOCK_BIN = MOCK_TARGET / "release" / "mock-upstream"
LOADGEN_BIN = MOCK_TARGET / "release" / "loadgen"
RESULTS = BENCH / "results"

GATEWAY_KEY = "aigw-bench-gateway-key"
UPSTREAM_KEY = "sk-bench-upstream-key"
UPSTREAM_KEY_SECRET = "BENCH_UPSTREAM_KEY"
PROVIDER = "bench"
# The unified-translated variant's provider: type anthropic, base_url the mock (which answers
# Anthropic Messages on /v1/messages); the gateway injects `x-api-key`.
ANTHROPIC_PROVIDER = "bench-anthropic"
GW_PATH = f"/llm/v1/providers/{PROVIDER}/chat/completions"
UNIFIED_PATH = "/llm/v1/chat/completions"
DIRECT_PATH = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Say hello"}]
CLK_TCK = os.sysconf("SC_CLK_TCK")
MiB = 1024 * 1024
# A cell with more cores than this taken by others (processes + steal) is flagged (⚠).
DISTURBED = 0.15

# name -> what it is (the order is the table's)
VARIANTS = {
    "direct": "the mock upstream, no Envoy",
    "plain": "(a) plain Envoy: HCM + router + a static cluster",
    "dfp": "the gateway's Envoy config without the wasm filter and ext_proc (dynamic forward proxy, "
           "routes, local replies); the client sends the filter's x-aigw-upstream and Host itself",
    "wasm": "(b) Envoy + the aigw wasm filter (ext_proc removed)",
    "gateway-noacct": "sidecar path, accounting off (fast path off; allow_mode_override: false: "
                      "request headers only)",
    "gateway-sidecar": "the full gateway with its fast path off: every call through the sidecar "
                       "(key check, secret injection, accounting over ext_proc)",
    "gateway": "(c)/(d) the full gateway as shipped: key check, secret injection and accounting; "
               "API-key calls without budgets on the filter's fast path (no ext_proc round trip)",
    "unified": "the full gateway, load to the unified endpoint /llm/v1/chat/completions with "
               f"model {PROVIDER}/...: an openai provider, passed through untranslated (the sidecar "
               "sends it back into Envoy as the native call of `gateway`)",
    "unified-translated": "the full gateway, unified endpoint with model "
                          f"{ANTHROPIC_PROVIDER}/...: an anthropic provider, the request translated "
                          "to Anthropic Messages and the answer (and stream) back to OpenAI's shape",
    "gateway-logged": "the full gateway with log_requests on the provider: every call on the sidecar "
                      "path, its bodies captured (a stream as its assembled text), redacted and "
                      "stored by the request-log writer; compare with gateway-sidecar",
    "budget-sqlite": "the full gateway, the caller's agent with a budget (so the sidecar path: a "
                     "hold before the call, settled after), SQLite store, holds in the sidecar's memory",
    "budget-postgres": "as budget-sqlite with --store postgres://: the hold and its settle in "
                       "PostgreSQL (one aigw_reserve and one aigw_settle per call), records written "
                       "there; a local PostgreSQL (Debian's, fsync off), its CPU in the postgres column",
}
DEFAULT_VARIANTS = ["direct", "plain", "dfp", "wasm", "gateway-noacct", "gateway-sidecar", "gateway", "gateway-logged",
                    "unified", "unified-translated", "budget-sqlite", "budget-postgres"]
# The store's variants: the same budgeted calls, usage store and holds in SQLite / PostgreSQL.
STORE_VARIANTS = ("budget-sqlite", "budget-postgres")
# Variants whose calls must all go through the sidecar (fast path off).
SIDECAR_PATH = ("gateway-noacct", "gateway-sidecar")
# The unified endpoint's variants: variant -> the provider named in `model`, and the mock's
# API it must have been called on (see `mock_stats`).
UNIFIED = {"unified": (PROVIDER, "openai"), "unified-translated": (ANTHROPIC_PROVIDER, "anthropic")}
# Variants whose provider logs its calls (so the sidecar path, with the fast path on).
LOGGED = ("gateway-logged",)
# Variants with the sidecar (the full gateway, in one of its shapes).
GATEWAY_VARIANTS = ("gateway-noacct", "gateway-sidecar", "gateway", *LOGGED, *UNIFIED, *STORE_VARIANTS)
# Where the native path is measured that the unified variants are set against.
NATIVE = "gateway"
WORKLOADS = ["json", "sse"]

# --------------------------------------------------------------------------- processes

_children: list[subprocess.Popen] = []


def run_child(argv: list[str], timeout: float) -> subprocess.CompletedProcess:
    """A load generator run: tracked so Ctrl-C or a timeout stops exactly this PID."""
    p = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL, text=True)
    _children.append(p)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_child(p)
        out, err = p.communicate(timeout=5)
        raise RuntimeError(f"{Path(argv[0]).name} did not finish within {timeout:.0f}s\n{err[-2000:]}")
    except BaseException:  # Ctrl-C: stop it here, by its PID
        kill_child(p)
        raise
    finally:
        if p.poll() is not None and p in _children:
            _children.remove(p)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def kill_child(p: subprocess.Popen) -> None:
    if p.poll() is None:
        try:
            os.kill(p.pid, signal.SIGTERM)
            p.wait(timeout=3)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=3)
        except ProcessLookupError:
            pass


def proc_cpu_ticks(pid: int) -> int:
    """utime + stime of the whole process (all threads), in clock ticks."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def tree_cpu_ticks(pid: int) -> int:
    """proc_cpu_ticks of `pid` and its live children (PostgreSQL: the postmaster and one
    backend per connection)."""
    total = proc_cpu_ticks(pid)
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                    total += proc_cpu_ticks(int(d.name))
            except (OSError, ValueError):
                pass  # gone meanwhile
    return total


def ticks(key: str, pid: int) -> int:
    return tree_cpu_ticks(pid) if key == "postgres" else proc_cpu_ticks(pid)


def proc_mem(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM in bytes."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("VmRSS", "VmHWM"):
            out[k] = int(v.split()[0]) * 1024
    return out


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def system_busy_us() -> float:
    """CPU time all processes on the machine spent (user + system, all CPUs), in microseconds.
    Interrupt and softirq time are left out: the kernel charges them to no process, and most
    of it here is the loopback traffic of the benchmark itself."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system = f[:3]
    return (user + nice + system) * 1e6 / CLK_TCK


def steal_us() -> float:
    """Time the hypervisor ran something else while this VM's CPUs wanted to run (all CPUs)."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (f[7] if len(f) > 7 else 0) * 1e6 / CLK_TCK


def own_children_us() -> float:
    """CPU of this process and of its reaped children (the load generators), microseconds."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return (s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime) * 1e6


class Cpu:
    """CPU used by the measured processes between two snapshots, in microseconds, plus what
    everything else on the machine used meanwhile (`others_cores`: other helpers' builds, ...).
    `all_pids` are every process this run started (idle Envoys of the other variants too)."""

    def __init__(self, pids: dict[str, int], all_pids: list[int]):
        self.pids = pids
        self.all_pids = all_pids
        self.t0 = {k: ticks(k, p) for k, p in pids.items()}
        self.all0 = sum(proc_cpu_ticks(p) for p in all_pids)
        self.sys0 = system_busy_us()
        self.steal0 = steal_us()
        self.own0 = own_children_us()
        self.wall0 = time.monotonic()

    def stop(self) -> dict[str, float]:
        out = {k: (ticks(k, p) - self.t0[k]) * 1e6 / CLK_TCK for k, p in self.pids.items()}
        wall = (time.monotonic() - self.wall0) * 1e6
        ours = (sum(proc_cpu_ticks(p) for p in self.all_pids) - self.all0) * 1e6 / CLK_TCK
        ours += out.get("postgres", 0.0)  # its backends are not in all_pids
        ours += own_children_us() - self.own0
        out["wall"] = wall
        out["loadgen"] = own_children_us() - self.own0
        out["others_cores"] = max(0.0, system_busy_us() - self.sys0 - ours) / wall
        out["steal_cores"] = (steal_us() - self.steal0) / wall
        return out


# --------------------------------------------------------------------------- mock and builds


def build_tools(timeout: float) -> None:
    cmd = ["cargo", "build", "--release", "--quiet", "--manifest-path", str(MOCK_DIR / "Cargo.toml"),
           "--target-dir", str(MOCK_TARGET)]
    print("building bench/mock-upstream (mock upstream + load generator) ...", flush=True)
    try:
        subprocess.run(cmd, check=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        raise SystemExit(f"cargo build of bench/mock-upstream took more than {timeout:.0f}s")
    except subprocess.CalledProcessError as e:
        raise SystemExit(f"cargo build of bench/mock-upstream failed ({e.returncode})")


def start_mock(work: Path) -> tuple[Managed, int]:
    m = Managed("mock-upstream", [MOCK_BIN, "--listen", "127.0.0.1:0", "--threads", "1",
                                  "--upstream-key", UPSTREAM_KEY], work)
    m.wait_until("listening", lambda: "listening on" in m.stdout(), 10)
    port = int(m.stdout().split("listening on", 1)[1].split()[0].rsplit(":", 1)[1])
    return m, port


def snapshot_binaries(work: Path) -> dict[str, Any]:
    """Copies the sidecar and the wasm so a concurrent `make build` cannot swap them mid-run."""
    snap = work / "bin"
    snap.mkdir(parents=True, exist_ok=True)
    info = {}
    for label, src in (("sidecar", harness_gateway.SIDECAR), ("wasm", harness_gateway.WASM)):
        if not src.is_file():
            raise SystemExit(f"{src} is missing: run `make build` first")
        dst = snap / src.name
        shutil.copy2(src, dst)
        info[label] = {"path": str(src.relative_to(REPO)), "sha256": sha256(dst),
                       "mtime": dt.datetime.fromtimestamp(src.stat().st_mtime, dt.timezone.utc).isoformat()}
    harness_gateway.SIDECAR = snap / harness_gateway.SIDECAR.name  # start_sidecar reads the global
    info["wasm_copy"] = str(snap / harness_gateway.WASM.name)
    return info


def sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------------- the variants


def _hcm(cfg: dict) -> dict:
    for f in cfg["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]:
        if f["name"] == "envoy.filters.network.http_connection_manager":
            return f["typed_config"]
    raise KeyError("no http_connection_manager")


def patch_for(variant: str, wasm: str, mock_port: int) -> Callable[[dict], None]:
    def use_snapshot_wasm(cfg: dict) -> None:
        http_filter(cfg, "aigw")["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = wasm

    def plain(cfg: dict) -> None:
        # The gateway's own listener (same name, so the harness finds its port), reduced to a
        # plain proxy: only the router, one route, one static cluster to the mock.
        hcm = _hcm(cfg)
        hcm.pop("local_reply_config", None)
        hcm["http_filters"] = [{
            "name": "envoy.filters.http.router",
            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
        }]
        hcm["route_config"] = {"name": "bench", "virtual_hosts": [{
            "name": "bench", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "bench_mock", "timeout": "0s"}}],
        }]}
        cfg["static_resources"]["clusters"] = [{
            "name": "bench_mock", "type": "STATIC", "connect_timeout": "1s",
            "circuit_breakers": {"thresholds": [
                {"max_connections": 100000, "max_pending_requests": 100000, "max_requests": 100000}]},
            "load_assignment": {"cluster_name": "bench_mock", "endpoints": [{"lb_endpoints": [{"endpoint": {
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": mock_port}}}}]}]},
        }]

    def without(cfg: dict, names: tuple[str, ...]) -> None:
        hcm = _hcm(cfg)
        hcm["http_filters"] = [f for f in hcm["http_filters"] if f["name"] not in names]
        for vh in hcm["route_config"]["virtual_hosts"]:
            for r in vh["routes"]:
                (r.get("typed_per_filter_config") or {}).pop("envoy.filters.http.ext_proc", None)
                if r.get("typed_per_filter_config") == {}:
                    del r["typed_per_filter_config"]

    def wasm_only(cfg: dict) -> None:
        use_snapshot_wasm(cfg)
        without(cfg, ("envoy.filters.http.ext_proc",))

    def dfp(cfg: dict) -> None:
        use_snapshot_wasm(cfg)  # (then removed; the harness rendered it)
        without(cfg, ("envoy.filters.http.ext_proc", "aigw"))

    def no_accounting(cfg: dict) -> None:
        use_snapshot_wasm(cfg)
        http_filter(cfg, "envoy.filters.http.ext_proc")["typed_config"]["allow_mode_override"] = False

    return {"plain": plain, "dfp": dfp, "wasm": wasm_only, "gateway-noacct": no_accounting,
            "gateway-sidecar": use_snapshot_wasm, "gateway": use_snapshot_wasm, "gateway-logged": use_snapshot_wasm,
            "unified": use_snapshot_wasm, "unified-translated": use_snapshot_wasm,
            "budget-sqlite": use_snapshot_wasm, "budget-postgres": use_snapshot_wasm}[variant]


class Target:
    """Where the load goes, and the PIDs whose CPU and memory count."""

    def __init__(self, variant: str, host: str, port: int, path: str, gw: Gateway | None,
                 extra_headers: list[tuple[str, str]] | None = None, model_prefix: str = "",
                 postgres: Any = None):
        self.extra_headers = extra_headers or []
        # The PostgreSQL server this variant's sidecar uses (budget-postgres).
        self.postgres = postgres
        # `<provider>/` before the model name (the unified endpoint), else "".
        self.model_prefix = model_prefix
        self.variant = variant
        self.host = host
        self.port = port
        self.path = path
        self.gw = gw

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    def headers(self) -> list[tuple[str, str]]:
        # The same bytes to every variant: the plain proxy forwards the gateway key as is.
        return [("Authorization", f"Bearer {GATEWAY_KEY}"), ("Content-Type", "application/json"),
                *self.extra_headers]

    def pids(self, mock: Managed) -> dict[str, int]:
        out = {"mock": mock.pid}
        if self.gw is not None:
            out["envoy"] = self.gw.envoy.pid
            if self.gw.sidecar is not None:
                out["sidecar"] = self.gw.sidecar.pid
        if self.postgres is not None:
            out["postgres"] = self.postgres.proc.pid
        return out

    def stop(self) -> None:
        if self.gw is not None:
            self.gw.stop()
        if self.postgres is not None:
            self.postgres.cleanup()


def start_target(variant: str, work: Path, mock_port: int, wasm: str, args) -> Target:
    if variant == "direct":
        return Target(variant, "127.0.0.1", mock_port, DIRECT_PATH, None)
    provs = [provider(PROVIDER, "openai", f"http://127.0.0.1:{mock_port}/v1", api_key_secret=UPSTREAM_KEY_SECRET)]
    if variant == "unified-translated":
        # Anthropic's native path is <base_url>/v1/messages.
        provs.append(provider(ANTHROPIC_PROVIDER, "anthropic", f"http://127.0.0.1:{mock_port}",
                              api_key_secret=UPSTREAM_KEY_SECRET))
    pg = None
    if variant in LOGGED:
        provs[0]["log_requests"] = True
    if variant in STORE_VARIANTS:
        # Priced models (a budget needs prices), the names the workloads send.
        provs[0]["models"] = [{"name": m, "input": "1.00", "output": "2.00"} for m in bench_models(args)]
    if variant == "budget-postgres":
        pg = PostgresServer(work / variant / "postgres-logs", name="bench-postgres").start()
    gw = Gateway(work / variant, provs, {GATEWAY_KEY_SECRET: GATEWAY_KEY, UPSTREAM_KEY_SECRET: UPSTREAM_KEY},
                 sidecar=variant in GATEWAY_VARIANTS, patch=patch_for(variant, wasm, mock_port),
                 sidecar_args=args.sidecar_arg, sidecar_env=dict(kv.split("=", 1) for kv in args.sidecar_env),
                 name=f"bench-{variant}", start_timeout=30,
                 fast_path=variant not in SIDECAR_PATH, store=pg and pg.new_database("bench"))
    if variant in STORE_VARIANTS:
        # Room for every call of the run: nothing is refused, each call holds and settles.
        gw.plugin["budgets"] = {"default": {"cap_usd": "1000000", "window": "daily"}}
    gw.start()
    extra = [("x-aigw-upstream", "http"), ("Host", f"127.0.0.1:{mock_port}")] if variant == "dfp" else []
    if variant in UNIFIED:
        return Target(variant, gw.host, gw.port, UNIFIED_PATH, gw, extra, model_prefix=UNIFIED[variant][0] + "/")
    return Target(variant, gw.host, gw.port, GW_PATH, gw, extra, postgres=pg)


def bench_models(args) -> list[str]:
    """Every model name the workloads send (see body_for)."""
    return sorted({json.loads(body_for(k, False, args.chunks, d))["model"]
                   for k in WORKLOADS for d in (0, args.chunk_delay_ms)})


# --------------------------------------------------------------------------- requests


def body_for(kind: str, include_usage: bool, chunks: int, delay_ms: int = 0, prefix: str = "") -> str:
    """The request body; `prefix` (`<provider>/`) goes before the model name for the unified
    endpoint (the mock reads the chunk count and delay from the name, wherever they are)."""
    if kind == "json":
        b: dict[str, Any] = {"model": prefix + "bench-model", "messages": MESSAGES, "max_tokens": 16}
    else:
        model = prefix + f"bench-chunks{chunks}" + (f"-delay{delay_ms}" if delay_ms else "")
        b = {"model": model, "messages": MESSAGES, "stream": True}
        if include_usage:
            b["stream_options"] = {"include_usage": True}
    return json.dumps(b, separators=(",", ":"))


def mock_stats(mock_port: int) -> dict[str, dict[str, int]]:
    """The mock's counts of POSTs per API (openai / anthropic) and key verdict
    (upstream / other / none)."""
    r = rawhttp.request("127.0.0.1", mock_port, "GET", "/mock/stats", [], None, timeout=5)
    if r.status != 200:
        raise RuntimeError(f"mock /mock/stats: {r}")
    return json.loads(r.body)


def answer_text(kind: str, body: bytes) -> str | None:
    """The assistant's text of an OpenAI-shaped answer (a stream's deltas joined); None if
    the body is not that shape."""
    try:
        if kind == "json":
            return json.loads(body)["choices"][0]["message"]["content"]
        text = ""
        for ln in body.split(b"\n"):
            if ln.startswith(b"data: {"):
                for ch in json.loads(ln[6:]).get("choices") or []:
                    text += (ch.get("delta") or {}).get("content") or ""
        return text
    except (ValueError, KeyError, IndexError, TypeError):
        return None


def sanity(t: Target, args, mock_port: int | None = None) -> dict[str, Any]:
    """One plain and one streamed call; the gateway must have swapped in the upstream key,
    on the path the variant is about (the fast path, or the sidecar). The unified endpoint
    passes no upstream header on, so there the mock's own counts say which API it was
    called on and with which key, and `x-aigw-target` must name the target."""
    out = {}
    streams_before = t.gw.sidecar_streams() if t.gw and t.gw.with_sidecar else 0
    unified = UNIFIED.get(t.variant)
    stats_before = mock_stats(mock_port) if unified and mock_port else None
    for kind in WORKLOADS:
        body = body_for(kind, args.stream_include_usage, args.chunks, prefix=t.model_prefix)
        r = rawhttp.request(t.host, t.port, "POST", t.path, t.headers(), body, timeout=10)
        if r.status != 200:
            raise RuntimeError(f"{t.variant}: sanity {kind} request got {r}\n{t.gw.logs() if t.gw else ''}")
        if kind == "sse" and not r.body.endswith(b"data: [DONE]\n\n"):
            raise RuntimeError(f"{t.variant}: stream did not end with [DONE]: {r.body[-200:]!r}")
        text = answer_text(kind, r.body)
        want_text = "Hello there!" if kind == "json" else "tok " * (args.chunks - 1)
        if text != want_text:
            raise RuntimeError(f"{t.variant}: {kind} answer text {text!r}, expected {want_text!r}: {r.body[-400:]!r}")
        auth = r.header("x-mock-auth")
        if t.variant in GATEWAY_VARIANTS and not unified and auth != "upstream":
            raise RuntimeError(f"{t.variant}: the upstream saw Authorization {auth!r}, not the injected key")
        out[kind] = {"upstream_saw_auth": auth, "bytes": len(r.body),
                     **({"usage_chunk_reached_client": b'"usage"' in r.body} if kind == "sse" else {})}
        if kind == "sse" and out[kind]["usage_chunk_reached_client"] != args.stream_include_usage:
            raise RuntimeError(f"{t.variant}: the stream {'lacks' if args.stream_include_usage else 'has'} a usage "
                               f"chunk, but the client {'asked' if args.stream_include_usage else 'did not ask'} "
                               f"for one: {r.body[-400:]!r}")
        if unified:
            model = json.loads(body)["model"]
            target = r.header("x-aigw-target")
            if target != model:
                raise RuntimeError(f"{t.variant}: x-aigw-target {target!r}, expected {model!r}")
            out[kind]["target"] = target
    if stats_before is not None:
        after = mock_stats(mock_port)
        diff = {api: {k: after[api][k] - stats_before[api][k] for k in after[api]} for api in after}
        want = {api: {k: (len(WORKLOADS) if api == unified[1] and k == "upstream" else 0) for k in after[api]}
                for api in after}
        if diff != want:
            raise RuntimeError(f"{t.variant}: the mock saw {diff} (API: key verdict), expected {want}: "
                               "the upstream key was not injected, or the call reached the wrong API")
        out["upstream_saw"] = diff
    if t.gw and t.gw.with_sidecar:
        through_sidecar = t.gw.sidecar_streams() - streams_before
        # The unified hop itself is plain HTTP to the sidecar (no ext_proc stream); its inner
        # native call, on a key without a budget, takes the filter's fast path as `gateway`.
        want = len(WORKLOADS) if t.variant in (*SIDECAR_PATH, *LOGGED, *STORE_VARIANTS) else 0
        if through_sidecar != want:
            raise RuntimeError(f"{t.variant}: {through_sidecar} of {len(WORKLOADS)} calls went through the "
                               f"sidecar (ext_proc streams), expected {want}")
        out["through_sidecar"] = through_sidecar
    if t.variant in STORE_VARIANTS:
        # The holds were settled to what the calls cost, in this variant's store.
        deadline = time.monotonic() + 5
        while not (b := budgets(t.gw).get("tests", {})).get("spent_nanousd"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{t.variant}: no spend settled on the budget of agent 'tests': {b}")
            time.sleep(0.1)
        out["budget"] = {k: b[k] for k in ("spent_nanousd", "reserved_nanousd")}
    return out


WRK_LUA = """\
wrk.method = "POST"
wrk.body = [==[{body}]==]
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCHJSON {{"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}},' ..
    '"latency_us":{{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"max":%d}}}}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
"""


def wrk(t: Target, body: str, seconds: float, args, work: Path) -> dict[str, Any]:
    lua = work / f"wrk-{t.variant}-{hashlib.sha1(body.encode()).hexdigest()[:8]}.lua"
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in t.headers())
    lua.write_text(WRK_LUA.format(body=body, headers=headers))
    seconds = max(1, round(seconds))  # wrk takes whole seconds
    argv = ["wrk", "-c", str(args.connections), "-t", str(args.threads), "-d", f"{seconds}s",
            "--timeout", "5s", "-s", str(lua), t.url]
    r = run_child(argv, timeout=seconds + 30)
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if r.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({r.returncode}): {r.stdout[-1500:]}\n{r.stderr[-1500:]}")
    res = json.loads(line.split(" ", 1)[1])
    res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
    res["error_total"] = sum(res["errors"].values())
    if res["error_total"]:
        print(f"    ! wrk errors: {res['errors']}", flush=True)
    return res


def loadgen(t: Target, bodies: list[str], *, rate: float, connections: int, duration: float, warmup: float,
            requests: int | None = None, timeout: float | None = None) -> dict[str, Any]:
    argv: list[Any] = [LOADGEN_BIN, "--url", t.url, "--rate", rate, "--connections", connections,
                       "--duration", duration, "--warmup", warmup, "--timeout", 10]
    for k, v in t.headers():
        if k.lower() != "content-type":
            argv += ["-H", f"{k}: {v}"]
    for b in bodies:
        argv += ["--body", b]
    if requests is not None:
        argv += ["--requests", requests]
    r = run_child(argv, timeout=timeout or (duration + warmup + 30))
    if r.returncode != 0:
        raise RuntimeError(f"loadgen failed ({r.returncode}): {r.stderr[-2000:]}")
    res = json.loads(r.stdout.strip().splitlines()[-1])
    bad = res["errors"] + res["status_errors"] + res["incomplete_streams"]
    if bad:
        print(f"    ! loadgen: {bad} failed requests, first: {res['first_error']}", flush=True)
    if res.get("late_sends"):
        print(f"    ! loadgen: {res['late_sends']} sends more than 2 ms behind schedule "
              f"(max {res['max_late_us'] / 1000:.1f} ms): machine busy?", flush=True)
    if rate and not rate_held(res):
        print(f"    ! loadgen: the target did not keep up with {rate:g}/s on {connections} connections: "
              f"{res['rate_achieved']:.0f}/s, {res.get('unsent', 0)} due requests not sent", flush=True)
    return res


def rate_held(f: dict[str, Any]) -> bool:
    """Whether a fixed-rate run ran at (nearly) its rate: else its latencies are those of a
    target that could not keep up on the given connections (marked ‡ in the report)."""
    return not f.get("unsent") and f["rate_achieved"] >= 0.9 * f["rate_target"]


# --------------------------------------------------------------------------- the benchmark


def per_req(used: dict[str, float], n: int) -> dict[str, float]:
    return {k: v / max(1, n) for k, v in used.items() if k not in ("wall", "others_cores", "steal_cores")}


def measure_cell(t: Target, mock: Managed, kind: str, args, work: Path, all_pids: list[int]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    body_tp = body_for(kind, args.stream_include_usage, args.chunks, prefix=t.model_prefix)
    # warm up: connections, the wasm VM, the sidecar's channels
    wrk(t, body_tp, args.warmup, args, work)
    cpu = Cpu(t.pids(mock), all_pids)
    out["wrk"] = w = wrk(t, body_tp, args.duration, args, work)
    used = cpu.stop()
    out["cpu_us_per_req"] = per_req(used, w["requests"])
    out["cpu_cores"] = {k: v / used["wall"] for k, v in used.items()
                        if k not in ("wall", "others_cores", "steal_cores")}
    out["others_cores_during_wrk"] = used["others_cores"]
    out["steal_cores_during_wrk"] = used["steal_cores"]

    if kind == "json":
        bodies, rate, conns = [body_tp], args.rate, args.rate_connections
    else:
        bodies = [body_for(kind, args.stream_include_usage, args.chunks, args.chunk_delay_ms, prefix=t.model_prefix)]
        rate, conns = args.sse_rate, args.sse_connections
    cpu = Cpu(t.pids(mock), all_pids)
    out["fixed"] = f = loadgen(t, bodies, rate=rate, connections=conns, duration=args.duration, warmup=1.0)
    used = cpu.stop()
    out["fixed_cpu_us_per_req"] = per_req(used, f["sent"])
    out["others_cores_during_fixed"] = used["others_cores"]
    out["steal_cores_during_fixed"] = used["steal_cores"]
    return out


def disturbance(c: dict[str, Any]) -> float:
    """Cores taken by others (processes, hypervisor) during a cell's worse half."""
    return max(c["others_cores_during_wrk"] + c.get("steal_cores_during_wrk", 0),
               c["others_cores_during_fixed"] + c.get("steal_cores_during_fixed", 0))


def median_of(items: list[Any]) -> Any:
    """The element-wise median of equally shaped results (numbers; dicts recursively)."""
    present = [i for i in items if i is not None]
    if not present:
        return None
    if all(isinstance(i, dict) for i in present):
        keys = list(dict.fromkeys(k for i in present for k in i))
        return {k: median_of([i.get(k) for i in present]) for k in keys}
    if all(isinstance(i, (int, float)) and not isinstance(i, bool) for i in present):
        return statistics.median(present)
    return present[0]


def run_bench(args, work: Path, info: dict[str, Any]) -> dict[str, Any]:
    """Every variant is started first and stays up; the rounds then go through the cells
    (workload x variant) in turn, so a disturbance that comes and goes hits all of them
    alike. Each figure is the median over the rounds."""
    mock, mock_port = start_mock(work)
    results: dict[str, Any] = {"variants": {}}
    targets_: dict[str, Target] = {}
    try:
        for v in args.variants:
            targets_[v] = start_target(v, work, mock_port, info["binaries"]["wasm_copy"], args)
            results["variants"][v] = {"description": VARIANTS[v], "sanity": sanity(targets_[v], args, mock_port),
                                     "rounds": []}
        all_pids = [mock.pid] + [p for t in targets_.values() for k, p in t.pids(mock).items() if k != "mock"]
        for r in range(args.repeat):
            for kind in WORKLOADS:
                print(f"\n== round {r + 1}/{args.repeat}, {kind}", flush=True)
                for v, t in targets_.items():
                    c = measure_cell(t, mock, kind, args, work, all_pids)
                    rounds = results["variants"][v]["rounds"]
                    if len(rounds) <= r:
                        rounds.append({})
                    rounds[r][kind] = c
                    lat, ttft, cpu = c["fixed"]["latency_us"], c["fixed"]["ttft_us"], c["cpu_us_per_req"]
                    print(f"  {v:18} {c['wrk']['rps']:7.0f} rps @{args.connections}  "
                          f"fixed {c['fixed']['rate_achieved']:.0f}/s p50 {lat['p50'] / 1e3:.3f} "
                          f"p99 {lat['p99'] / 1e3:.3f} ms"
                          + (f"  ttft p50 {ttft['p50'] / 1e3:.3f} p99 {ttft['p99'] / 1e3:.3f}" if ttft else "")
                          + "  µs/req " + " ".join(f"{k} {x:.0f}" for k, x in cpu.items() if k != "loadgen")
                          + f"  others {c['others_cores_during_wrk']:.2f}/{c['others_cores_during_fixed']:.2f}"
                          + f" steal {c['steal_cores_during_wrk']:.2f}/{c['steal_cores_during_fixed']:.2f} cores",
                          flush=True)
        for v, t in targets_.items():
            vr = results["variants"][v]
            for kind in WORKLOADS:
                cells = [rd[kind] for rd in vr["rounds"]]
                if args.pick == "quietest":
                    vr[kind] = dict(min(cells, key=disturbance), picked_round=cells.index(min(cells, key=disturbance)))
                else:
                    vr[kind] = median_of(cells)
            vr["memory"] = {k: proc_mem(p) for k, p in t.pids(mock).items()}
    finally:
        for t in targets_.values():
            t.stop()
        mock.stop()
    return results


# --------------------------------------------------------------------------- memory check


def run_memory(args, work: Path, info: dict[str, Any]) -> dict[str, Any]:
    mock, mock_port = start_mock(work)
    t = None
    try:
        t = start_target("gateway", work, mock_port, info["binaries"]["wasm_copy"], args)
        sanity(t, args)
        bodies = [body_for("json", args.stream_include_usage, args.chunks),
                  body_for("sse", args.stream_include_usage, args.chunks)]
        if args.memory_workload != "mix":
            bodies = [bodies[WORKLOADS.index(args.memory_workload)]]
        pids = {"envoy": t.gw.envoy.pid, "sidecar": t.gw.sidecar.pid}
        warm = min(50_000, max(1000, args.requests // 10))
        print(f"memory check: {warm} warm-up requests, then {args.requests} ({args.memory_workload}) "
              f"through the full gateway, {args.connections} connections", flush=True)
        loadgen(t, bodies, rate=0, connections=args.connections, duration=0, warmup=0, requests=warm,
                timeout=warm / 100 + 120)
        time.sleep(1)
        before = {k: proc_mem(p) for k, p in pids.items()}
        samples: list[dict[str, Any]] = []
        stop = threading.Event()

        def sample() -> None:
            t0 = time.monotonic()
            while not stop.wait(2.0):
                try:
                    samples.append({"t_s": round(time.monotonic() - t0, 1),
                                    **{k: proc_mem(p)["VmRSS"] for k, p in pids.items()}})
                except OSError:
                    return

        th = threading.Thread(target=sample, daemon=True)
        th.start()
        cpu = Cpu(pids, [mock.pid, *pids.values()])
        try:
            run = loadgen(t, bodies, rate=0, connections=args.connections, duration=0, warmup=0,
                          requests=args.requests, timeout=args.requests / 100 + 300)
        finally:
            stop.set()
            th.join(timeout=5)
        used = cpu.stop()
        after = {k: proc_mem(p) for k, p in pids.items()}
        time.sleep(2)
        idle = {k: proc_mem(p) for k, p in pids.items()}
        verdict = {}
        for k in pids:
            growth = idle[k]["VmRSS"] - before[k]["VmRSS"]
            allowed = max(4 * MiB, 0.05 * before[k]["VmRSS"])
            verdict[k] = {"growth_bytes": growth, "allowed_bytes": int(allowed), "flat": growth <= allowed}
        return {"requests": args.requests, "warmup_requests": warm, "workload": args.memory_workload,
                "run": run, "cpu_us_per_req": per_req(used, run["sent"]), "others_cores": used["others_cores"],
                "steal_cores": used["steal_cores"],
                "before": before, "after": after, "after_idle_2s": idle, "samples": samples, "verdict": verdict}
    finally:
        if t is not None:
            t.stop()
        mock.stop()


# --------------------------------------------------------------------------- reporting


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a is not None and b else "-"


def ms(us: float) -> str:
    return f"{us / 1000:.2f}"


def dms(us: float) -> str:
    return f"{us / 1000:+.2f}"


def report_md(res: dict[str, Any], args) -> str:
    V = res["variants"]
    base = V.get("plain")
    lines = []
    cfg = res["config"]
    lines.append(f"aigw bench {res['time']} · {res['machine']['cpus']} CPUs · "
                 f"{res['machine']['busy_cores_before']:.2f} cores busy before · "
                 f"git {res['git']['commit'][:10]}{' (dirty)' if res['git']['dirty'] else ''}"
                 f"{' · QUICK' if args.quick else ''}")
    lines.append("")
    lines.append(f"rps: wrk -c {cfg['connections']} -t {cfg['threads']} -d {cfg['duration_s']:g}s. "
                 f"Latency: fixed rate (bench loadgen), non-streaming {cfg['rate']:g}/s on {cfg['rate_connections']} "
                 f"connections, streams {cfg['sse_rate']:g}/s ({cfg['chunks']} chunks {cfg['chunk_delay_ms']} ms apart). "
                 "CPU µs/request from /proc utime+stime during the wrk run; RSS = VmHWM. "
                 "Ratios and +added against plain Envoy in the same run"
                 + ((f"; per cell the least disturbed of {args.repeat} interleaved rounds" if args.pick == "quietest"
                     else f"; medians of {args.repeat} interleaved rounds") if args.repeat > 1 else "") + ". "
                 "others / steal: cores used by processes outside the benchmark, and cores the "
                 "hypervisor took away (steal), during the cell (worse of the two runs; 0 / 0 = undisturbed).")
    not_held: list[str] = []
    for kind, title in (("json", "Non-streaming chat completion (~260 B JSON)"),
                        ("sse", f"Streamed chat completion (SSE, {cfg['chunks']} chunks)")):
        lines.append("")
        lines.append(f"**{title}**")
        lines.append("")
        hdr = ["variant", "rps", "×plain", "p50 ms", "p99 ms", "added p50 / p99 ms"]
        if kind == "sse":
            hdr += ["TTFT p50 / p99 ms", "TTFT added p50 / p99"]
        hdr += ["Envoy µs/req", "×plain", "sidecar µs/req", "Envoy / sidecar RSS MiB", "others / steal"]
        lines.append("| " + " | ".join(hdr) + " |")
        lines.append("|" + "---|" * len(hdr))
        for name, vr in V.items():
            c = vr[kind]
            b = base[kind] if base else None
            lat = c["fixed"]["latency_us"]
            mark = "" if rate_held(c["fixed"]) else " ‡"
            if mark:
                not_held.append(f"{name} {kind}: {c['fixed']['rate_achieved']:.0f}/s of {c['fixed']['rate_target']:g}/s"
                                f" ({c['fixed'].get('unsent', 0)} due requests not sent)")
            row = [name, f"{c['wrk']['rps']:.0f}", ratio(c["wrk"]["rps"], b and b["wrk"]["rps"]),
                   ms(lat["p50"]) + mark, ms(lat["p99"]) + mark]
            if b and name not in ("plain", "direct"):
                bl = b["fixed"]["latency_us"]
                row.append(f"{dms(lat['p50'] - bl['p50'])} / {dms(lat['p99'] - bl['p99'])}")
            else:
                row.append("-")
            if kind == "sse":
                tt = c["fixed"]["ttft_us"] or {}
                row.append(f"{ms(tt['p50'])} / {ms(tt['p99'])}" if tt else "-")
                btt = (b["fixed"]["ttft_us"] if b else None) or {}
                if tt and btt and name not in ("plain", "direct"):
                    row.append(f"{dms(tt['p50'] - btt['p50'])} / {dms(tt['p99'] - btt['p99'])}")
                else:
                    row.append("-")
            cpu = c["cpu_us_per_req"]
            e = cpu.get("envoy")
            row += [f"{e:.0f}" if e is not None else "-",
                    ratio(e, b and b["cpu_us_per_req"].get("envoy")) if e is not None else "-",
                    f"{cpu['sidecar']:.0f}" if "sidecar" in cpu else "-"]
            mem = vr["memory"]
            row.append(" / ".join(f"{mem[k]['VmHWM'] / MiB:.0f}" if k in mem else "-" for k in ("envoy", "sidecar"))
                       if "envoy" in mem else "-")
            row.append(f"{max(c['others_cores_during_wrk'], c['others_cores_during_fixed']):.2f} / "
                       f"{max(c.get('steal_cores_during_wrk', 0), c.get('steal_cores_during_fixed', 0)):.2f}"
                       + (" ⚠" if disturbance(c) > DISTURBED else ""))
            lines.append("| " + " | ".join(row) + " |")
    if not_held:
        lines.append("")
        lines.append("‡ fixed rate not held (the target could not keep up on the given connections; "
                     "latency is per request from its write, the queueing shows as late sends): "
                     + "; ".join(not_held))
    lines += unified_md(res)
    lines += store_md(res)
    t = res.get("targets")
    if t:
        lines.append("")
        lines.append("**Targets** (reported, not asserted)")
        lines.append("")
        lines.append("| target | measured | |")
        lines.append("|---|---|---|")
        for row in t:
            lines.append(f"| {row['target']} | {row['measured']} | {'met' if row['met'] else '**missed**'}"
                         f"{' (cells disturbed: ' + ', '.join(row['disturbed']) + ')' if row['disturbed'] else ''} |")
    lines.append("")
    lines.append(f"mock upstream CPU: {res['mock_us_per_req']}")
    return "\n".join(lines) + "\n"


def unified_md(res: dict[str, Any]) -> list[str]:
    """The unified endpoint's variants set against the native path (`gateway`) of the same
    run: what the second pass through Envoy, the sidecar's HTTP hop and (translated) the
    translation add per request."""
    V = res["variants"]
    uni = [v for v in UNIFIED if v in V]
    if not uni or NATIVE not in V:
        return []
    base = V.get("plain")
    lines = ["", f"**Unified endpoint (`{UNIFIED_PATH}`) against the native path (`{NATIVE}`, "
             f"`/llm/v1/providers/{PROVIDER}/chat/completions`)**", "",
             "| variant | workload | rps | ×plain | ×native | added p50 / p99 ms vs native | TTFT added vs native "
             "p50 / p99 | Envoy µs/req (vs native) | sidecar µs/req (vs native) | Envoy + sidecar µs/req (vs native) "
             "| others / steal |",
             "|" + "---|" * 11]

    def cpu(c: dict[str, Any], k: str) -> float:
        return c["cpu_us_per_req"].get(k, 0.0)

    for kind in WORKLOADS:
        n = V[NATIVE][kind]
        for v in [NATIVE, *uni]:
            c = V[v][kind]
            lat, nl = c["fixed"]["latency_us"], n["fixed"]["latency_us"]
            tt, nt = c["fixed"]["ttft_us"] or {}, n["fixed"]["ttft_us"] or {}
            native = v == NATIVE

            def vs(x: float, y: float) -> str:
                return f"{x:.0f}" + ("" if native else f" ({x - y:+.0f})")

            both, nboth = cpu(c, "envoy") + cpu(c, "sidecar"), cpu(n, "envoy") + cpu(n, "sidecar")
            lines.append("| " + " | ".join([
                v + (" (native)" if native else ""), kind, f"{c['wrk']['rps']:.0f}",
                ratio(c["wrk"]["rps"], base and base[kind]["wrk"]["rps"]),
                "-" if native else ratio(c["wrk"]["rps"], n["wrk"]["rps"]),
                "-" if native else f"{dms(lat['p50'] - nl['p50'])} / {dms(lat['p99'] - nl['p99'])}"
                + ("" if rate_held(c["fixed"]) else " ‡"),
                f"{dms(tt['p50'] - nt['p50'])} / {dms(tt['p99'] - nt['p99'])}" if tt and nt and not native else "-",
                vs(cpu(c, "envoy"), cpu(n, "envoy")), vs(cpu(c, "sidecar"), cpu(n, "sidecar")), vs(both, nboth),
                f"{max(c['others_cores_during_wrk'], c['others_cores_during_fixed']):.2f} / "
                f"{max(c.get('steal_cores_during_wrk', 0), c.get('steal_cores_during_fixed', 0)):.2f}"
                + (" ⚠" if disturbance(c) > DISTURBED else ""),
            ]) + " |")
    return lines


def store_md(res: dict[str, Any]) -> list[str]:
    """Budgeted calls with the SQLite store (holds in the sidecar) against the PostgreSQL
    store (holds in the database), with the database's CPU per call."""
    V = res["variants"]
    if not all(v in V for v in STORE_VARIANTS):
        return []
    lines = ["", "**Budgeted calls: SQLite against PostgreSQL (holds, settles and records)**", "",
             "| workload | store | rps | p50 / p99 ms | added p50 / p99 ms vs SQLite | Envoy µs/req "
             "| sidecar µs/req | postgres µs/req | all three µs/req | others / steal |",
             "|" + "---|" * 10]
    for kind in WORKLOADS:
        lite = V["budget-sqlite"][kind]
        for v in STORE_VARIANTS:
            c = V[v][kind]
            cpu = c["cpu_us_per_req"]
            lat, ll = c["fixed"]["latency_us"], lite["fixed"]["latency_us"]
            lines.append("| " + " | ".join([
                kind, v.removeprefix("budget-"), f"{c['wrk']['rps']:.0f}",
                f"{ms(lat['p50'])} / {ms(lat['p99'])}" + ("" if rate_held(c["fixed"]) else " ‡"),
                "-" if v == "budget-sqlite" else f"{dms(lat['p50'] - ll['p50'])} / {dms(lat['p99'] - ll['p99'])}",
                f"{cpu.get('envoy', 0):.0f}", f"{cpu.get('sidecar', 0):.0f}",
                f"{cpu['postgres']:.0f}" if "postgres" in cpu else "-",
                f"{sum(cpu.get(k, 0) for k in ('envoy', 'sidecar', 'postgres')):.0f}",
                f"{max(c['others_cores_during_wrk'], c['others_cores_during_fixed']):.2f} / "
                f"{max(c.get('steal_cores_during_wrk', 0), c.get('steal_cores_during_fixed', 0)):.2f}"
                + (" ⚠" if disturbance(c) > DISTURBED else ""),
            ]) + " |")
    return lines


def targets(res: dict[str, Any]) -> list[dict[str, Any]]:
    V = res["variants"]
    if "plain" not in V or "gateway" not in V:
        return []
    p, g = V["plain"], V["gateway"]

    def disturbed(kind: str) -> list[str]:
        return [f"{v} {kind}" for v in ("plain", "gateway") if disturbance(V[v][kind]) > DISTURBED]

    out = []
    r = g["json"]["wrk"]["rps"] / p["json"]["wrk"]["rps"]
    out.append({"target": "full gateway ≥ 0.5× plain Envoy rps (non-streaming)", "measured": f"{r:.2f}×",
                "met": r >= 0.5, "value": r, "disturbed": disturbed("json")})
    d = (g["json"]["fixed"]["latency_us"]["p99"] - p["json"]["fixed"]["latency_us"]["p99"]) / 1000
    out.append({"target": f"p99 added ≤ 1 ms at {res['config']['rate']:g} req/s", "measured": f"{d:+.2f} ms",
                "met": d <= 1.0, "value": d, "disturbed": disturbed("json")})
    gt, pt = g["sse"]["fixed"]["ttft_us"], p["sse"]["fixed"]["ttft_us"]
    if gt and pt:
        d50 = (gt["p50"] - pt["p50"]) / 1000
        d99 = (gt["p99"] - pt["p99"]) / 1000
        out.append({"target": "TTFT added ≤ 0.5 ms (median; p99 shown)",
                    "measured": f"{d50:+.2f} ms (p99 {d99:+.2f} ms)", "met": d50 <= 0.5, "value": d50,
                    "disturbed": disturbed("sse")})
    side = max(V[v]["memory"]["sidecar"]["VmHWM"] for v in V if "sidecar" in V[v]["memory"]) / MiB
    out.append({"target": "sidecar RSS ≤ 64 MiB (peak, VmHWM)", "measured": f"{side:.1f} MiB",
                "met": side <= 64, "value": side, "disturbed": []})
    return out


def memory_md(res: dict[str, Any]) -> str:
    m = res["memory"]
    lines = [f"aigw bench --memory {res['time']} · {m['requests']} requests ({m['workload']}) through the full "
             f"gateway after {m['warmup_requests']} warm-up · {m['run']['rate_achieved']:.0f} req/s · "
             f"failed {m['run']['errors'] + m['run']['status_errors'] + m['run']['incomplete_streams']} · "
             f"{res['machine']['busy_cores_before']:.2f} cores busy before, others' load during "
             f"{m['others_cores']:.2f} cores, steal {m['steal_cores']:.2f} cores", "",
             "| process | RSS before MiB | after MiB | after 2 s idle MiB | peak (VmHWM) MiB | growth MiB | CPU µs/req | flat |",
             "|---|---|---|---|---|---|---|---|"]
    for k in ("envoy", "sidecar"):
        v = m["verdict"][k]
        lines.append(f"| {k} | {m['before'][k]['VmRSS'] / MiB:.1f} | {m['after'][k]['VmRSS'] / MiB:.1f} | "
                     f"{m['after_idle_2s'][k]['VmRSS'] / MiB:.1f} | {m['after_idle_2s'][k]['VmHWM'] / MiB:.1f} | "
                     f"{v['growth_bytes'] / MiB:+.1f} | {m['cpu_us_per_req'][k]:.0f} | "
                     f"{'yes' if v['flat'] else '**NO**'} (≤ {v['allowed_bytes'] / MiB:.1f}) |")
    if m["samples"]:
        s = m["samples"]
        pick = s[:: max(1, len(s) // 8)] + ([s[-1]] if len(s) > 1 else [])
        lines.append("")
        lines.append("RSS during the run (MiB, every ~2 s, thinned): " + ", ".join(
            f"{x['t_s']:.0f}s {x['envoy'] / MiB:.1f}/{x['sidecar'] / MiB:.1f}" for x in pick) + " (envoy/sidecar)")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def git_info() -> dict[str, Any]:
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD") or "unknown", "dirty": bool(status),
            "dirty_files": status.splitlines()[:50]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs (2 s each): a smoke test, not numbers")
    ap.add_argument("--memory", action="store_true", help="the memory check: --requests through the full gateway")
    ap.add_argument("--requests", type=int, default=1_000_000, help="memory check: how many (default 1000000)")
    ap.add_argument("--memory-workload", choices=["mix", "json", "sse"], default="mix",
                    help="memory check: alternate plain and streamed calls (mix, default), or one kind")
    ap.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                    help=f"comma-separated, of {', '.join(VARIANTS)} (default: all)")
    ap.add_argument("--repeat", type=int, default=1, help="rounds over all cells (see --pick)")
    ap.add_argument("--pick", choices=["quietest", "median"], default="quietest",
                    help="with --repeat: per cell, the round least disturbed by other processes and "
                         "hypervisor steal (default), or the median of the rounds")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk and per fixed-rate run")
    ap.add_argument("--warmup", type=float, default=2.0, help="wrk warm-up seconds before each measured run")
    ap.add_argument("--connections", type=int, default=32, help="wrk connections (also the memory check's)")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads")
    ap.add_argument("--rate", type=float, default=1000, help="fixed rate for non-streaming latency, req/s")
    ap.add_argument("--rate-connections", type=int, default=8)
    ap.add_argument("--sse-rate", type=float, default=200, help="fixed rate for streams (latency, TTFT), streams/s")
    ap.add_argument("--sse-connections", type=int, default=64)
    ap.add_argument("--chunks", type=int, default=8, help="content chunks per streamed answer")
    ap.add_argument("--chunk-delay-ms", type=int, default=5, help="gap between chunks in the fixed-rate stream runs")
    ap.add_argument("--stream-include-usage", action="store_true",
                    help="clients ask for stream usage themselves (default: they do not; the gateway adds it)")
    ap.add_argument("--sidecar-arg", action="append", default=[], metavar="ARG",
                    help="extra sidecar command-line argument (repeatable), e.g. --sidecar-arg=--workers=1")
    ap.add_argument("--sidecar-env", action="append", default=[], metavar="K=V",
                    help="extra sidecar environment variable (repeatable)")
    ap.add_argument("--no-build", action="store_true", help="do not (re)build bench/mock-upstream")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (configs, logs) after a successful run")
    ap.add_argument("--out", type=Path, default=RESULTS, help="results directory (default bench/results)")
    args = ap.parse_args()
    if args.quick:
        args.duration, args.warmup = 2.0, 1.0
        if args.memory and args.requests == 1_000_000:
            args.requests = 20_000
    args.variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        ap.error(f"unknown variants {unknown}; known: {', '.join(VARIANTS)}")

    if shutil.which("wrk") is None and not args.memory:
        raise SystemExit("wrk not found: apt-get install -y wrk (make bench does it)")
    if not args.no_build:
        build_tools(timeout=900)
    for b in (MOCK_BIN, LOADGEN_BIN):
        if not b.is_file():
            raise SystemExit(f"{b} is missing (cargo build --release --manifest-path bench/mock-upstream/Cargo.toml)")

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    work = Path(tempfile.mkdtemp(prefix="aigw-bench-"))
    ok = False
    try:
        la = loadavg()
        b0, s0 = system_busy_us(), steal_us()
        time.sleep(2)
        busy, steal = (system_busy_us() - b0) / 2e6, (steal_us() - s0) / 2e6
        if steal > 0.1:
            print(f"note: the hypervisor is taking {steal:.2f} cores (steal) from this VM: numbers will be "
                  "disturbed (see the steal column)", flush=True)
        if busy > 0.2:
            print(f"note: {busy:.2f} cores busy before the run (load average {la[0]:.2f}): something else "
                  "is using the CPU; numbers will be disturbed (see the others' load column)", flush=True)
        info: dict[str, Any] = {
            "time": stamp,
            "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "loadavg_before": la,
                        "busy_cores_before": busy, "steal_cores_before": steal},
            "git": git_info(),
            "envoy": subprocess.run([str(envoy_binary()), "--version"], capture_output=True, text=True,
                                    timeout=30).stdout.strip().splitlines()[-1],
            "binaries": snapshot_binaries(work),
            "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        }
        info["config"]["duration_s"] = args.duration
        if args.memory:
            res = {**info, "memory": run_memory(args, work, info)}
        else:
            res = {**info, **run_bench(args, work, info)}
        res["machine"]["loadavg_after"] = loadavg()
        res["binaries"] = {k: v for k, v in res["binaries"].items() if k != "wasm_copy"}
        args.out.mkdir(parents=True, exist_ok=True)
        name = stamp + ("-memory" if args.memory else "") + ("-quick" if args.quick else "")
        if args.memory:
            md = memory_md(res)
        else:
            res["targets"] = targets(res)
            res["mock_us_per_req"] = " · ".join(
                f"{v} {vr['json']['cpu_us_per_req']['mock']:.0f} (json) / {vr['sse']['cpu_us_per_req']['mock']:.0f} (sse) µs/req"
                for v, vr in res["variants"].items() if v in ("direct", "plain"))
            md = report_md(res, args)
        (args.out / f"{name}.json").write_text(json.dumps(res, indent=2) + "\n")
        (args.out / f"{name}.md").write_text(md)
        print("\n" + md)
        print(f"written: {(args.out / name).relative_to(REPO) if args.out.is_relative_to(REPO) else args.out / name}"
              ".{json,md}")
        ok = True
        if args.memory and not all(v["flat"] for v in res["memory"]["verdict"].values()):
            print("memory check: RSS grew beyond the allowance", file=sys.stderr)
            return 1
        return 0
    except KeyboardInterrupt:
        print(f"\ninterrupted; stopping everything (logs in {work})", file=sys.stderr)
        return 130
    except (StartupError, RuntimeError) as e:
        print(f"bench failed: {e}", file=sys.stderr)
        print(f"(logs kept in {work})", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # finish the clean-up even on a second Ctrl-C
        for p in list(_children):
            kill_child(p)
        for g in harness_gateway.live_gateways():
            g.stop()
        stop_all()
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        elif ok:
            print(f"work dir kept: {work}")


if __name__ == "__main__":
    sys.exit(main())
