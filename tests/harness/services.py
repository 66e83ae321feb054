"""The shared state of gateway replicas, as child processes of the test run: a PostgreSQL
server (`initdb` into a tmp dir, `postgres` on a free port) and a Redis server, both on
127.0.0.1, started, stopped and restarted by PID like the gateways (see procs.py). The
Debian packages' own services are never used (`make deps` installs the packages).

    pg = PostgresServer(tmp_path).start()
    url = pg.new_database("budgets")          # postgres://aigw@127.0.0.1:<port>/budgets
    pg.query("budgets", "SELECT count(*) FROM usage_records")   # [("3",)]
    pg.stop(); pg.start()                     # same port and data dir
    pg.cleanup()

    redis = RedisServer(tmp_path).start()
    redis.url                                 # redis://127.0.0.1:<port>
    redis.stop()
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from .procs import Managed, StartupError, free_port, port_open

PG_USER = "aigw"  # the database superuser initdb creates (trust authentication)
_live: list["PostgresServer | RedisServer"] = []

INSTALL_HINT = "`make deps` installs them (Debian packages postgresql and redis-server)"


class ServiceUnavailable(RuntimeError):
    """A server binary is not installed."""


def live_services() -> list["PostgresServer | RedisServer"]:
    return list(_live)


def _start(server):
    """`server._start_on(port)` on its port, or on a free one (a picked port may be taken
    meanwhile: then another, up to three)."""
    assert server.proc is None or not server.proc.alive(), "already running"
    if server not in _live:
        _live.append(server)
    fixed = server.port is not None
    last: Exception | None = None
    for _ in range(1 if fixed else 3):
        port = server.port if fixed else free_port()
        try:
            server._start_on(port)
            server.port = port
            return server
        except StartupError as e:
            last = e
            if fixed or "in use" not in str(e).lower():
                raise
    raise last  # type: ignore[misc]


# --------------------------------------------------------------------------- PostgreSQL


def postgres_bin_dir() -> Path:
    """The newest /usr/lib/postgresql/<ver>/bin with `postgres` and `initdb` (Debian's
    layout; the server binaries are not on PATH), else the directory of `postgres` on PATH."""
    def version(d: str) -> tuple[int, ...]:
        v = Path(d).parent.name
        return tuple(int(x) for x in re.findall(r"\d+", v)) or (0,)

    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    on_path = shutil.which("postgres")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for d in candidates:
        if all(os.access(Path(d) / b, os.X_OK) for b in ("postgres", "initdb", "psql", "pg_isready")):
            return Path(d)
    raise ServiceUnavailable(f"PostgreSQL server binaries (postgres, initdb, psql) not found in "
                             f"/usr/lib/postgresql/<ver>/bin or on PATH; {INSTALL_HINT}")


def redis_binary() -> Path:
    p = shutil.which("redis-server")
    if not p:
        raise ServiceUnavailable(f"redis-server not found on PATH; {INSTALL_HINT}")
    return Path(p)


def _as_postgres_user() -> bool:
    """PostgreSQL refuses to run as root: then initdb and postgres run as the `postgres` user."""
    return os.geteuid() == 0


class PostgresServer:
    """A throwaway PostgreSQL cluster: trust authentication for user `aigw`, no fsync, TCP on
    127.0.0.1 only (the Unix socket in the data dir). `stop()` keeps the data dir and port for
    `start()`; `cleanup()` (or the end of the session) stops it and removes the data dir.

    The data dir is a short-named directory of the system tmp dir (pytest's own tmp dirs are
    private to the test user, and Unix socket paths are limited to 107 bytes); the server's
    output goes to `log_dir` (`postgres.err`: PostgreSQL logs to stderr)."""

    def __init__(self, log_dir: Path, name: str = "postgres", max_connections: int = 200,
                 start_timeout: float = 30.0):
        self.name = name
        self.log_dir = Path(log_dir)
        self.bin = postgres_bin_dir()
        self.max_connections = max_connections
        self.start_timeout = start_timeout
        self.base = Path(tempfile.mkdtemp(prefix="aigw-pg-"))
        self.data_dir = self.base / "data"
        self.port: int | None = None
        self.proc: Managed | None = None
        self.databases: list[str] = []
        self.fixture: str | None = None  # the session fixture serving it (for failure reports)
        self._starts = 0
        self._initdb()

    # -- set-up

    def _cmd(self, binary: str, *args: str) -> list[str]:
        argv = [str(self.bin / binary), *args]
        return ["runuser", "-u", "postgres", "--", *argv] if _as_postgres_user() else argv

    def _initdb(self) -> None:
        if _as_postgres_user():
            shutil.chown(self.base, "postgres", "postgres")
        argv = self._cmd("initdb", "-D", str(self.data_dir), "-A", "trust", "-U", PG_USER, "-E", "UTF8",
                         "--locale=C", "--no-sync", "--no-instructions")
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
                           cwd=self.base)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.log_dir / f"{self.name}-initdb.log").write_text(r.stdout + r.stderr)
        if r.returncode != 0:
            raise StartupError(f"initdb exited with {r.returncode}\n{r.stdout}{r.stderr}")

    # -- lifecycle

    def start(self) -> "PostgresServer":
        """Starts the server (again: on the same port and data dir) and waits until it
        accepts connections."""
        return _start(self)

    def _start_on(self, port: int) -> None:
        argv = [str(self.bin / "postgres"), "-D", str(self.data_dir), "-p", str(port), "-k", str(self.data_dir),
                "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
                "-c", f"max_connections={self.max_connections}",
                "-c", "log_min_messages=warning", "-c", "log_line_prefix=%m [%p] "]
        if _as_postgres_user():
            # setpriv execs in place (runuser would fork and wait, putting itself between our
            # PID and the postmaster, and turn a fast shutdown into SIGKILL after 2 s).
            argv = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--", *argv]
        name = self.name if self._starts == 0 else f"{self.name}-r{self._starts}"
        self._starts += 1
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        self.proc = Managed(name, argv, self.log_dir, env=env, cwd=self.base)
        try:
            self.proc.wait_until(f"accepting connections on 127.0.0.1:{port}", lambda: self._ready(port),
                                 self.start_timeout, interval=0.05)
        except StartupError:
            self.proc.stop()
            raise

    def _ready(self, port: int) -> bool:
        if not port_open("127.0.0.1", port):
            return False
        r = subprocess.run([str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port), "-U", PG_USER,
                            "-d", "postgres", "-t", "1"], stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=10)
        return r.returncode == 0

    def stop(self, timeout: float = 10.0) -> None:
        """Fast shutdown (SIGINT to the postmaster: open sessions are ended, the data kept),
        then SIGTERM/SIGKILL if it does not exit. The port stays this server's for `start()`."""
        p = self.proc
        if p is None:
            return
        if p.alive():
            try:
                os.kill(p.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            p.wait_exit(timeout)
        p.stop()

    def kill(self) -> None:
        """SIGKILL the postmaster (a crash; its backends exit on their own)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.stop()

    def cleanup(self) -> None:
        """Stops the server and removes its data dir."""
        self.stop()
        if self in _live:
            _live.remove(self)
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    # -- databases

    def url(self, db: str = "postgres") -> str:
        assert self.port, "server never started"
        return f"postgres://{PG_USER}@127.0.0.1:{self.port}/{db}"

    def new_database(self, name: str = "aigw") -> str:
        """Creates an empty database named after `name` (lower case, [a-z0-9_], a numeric
        suffix if this server already has one of that name) and returns its URL."""
        base = re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")[:40] or "db"
        if base[0].isdigit():
            base = "db_" + base
        db, n = base, 1
        while db in self.databases:
            n += 1
            db = f"{base}_{n}"
        self.psql("postgres", f'CREATE DATABASE "{db}"')
        self.databases.append(db)
        return self.url(db)

    def psql(self, db: str, sql: str, timeout: float = 30.0) -> str:
        """Runs `sql` with psql over TCP (as `aigw`); stdout, or AssertionError with stderr."""
        r = subprocess.run(
            [str(self.bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
             "-U", PG_USER, "-d", db_name(db), "-At", "-F", "\x1f", "-R", "\x1e", "-P", "null=\x1a", "-c", sql],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("PG")}, "PGCONNECT_TIMEOUT": "5"})
        if r.returncode != 0:
            raise AssertionError(f"psql {db_name(db)}: {sql!r} exited with {r.returncode}: "
                                 f"{r.stderr.decode('utf-8', 'replace').strip()}")
        return r.stdout.decode("utf-8")

    def query(self, db: str, sql: str) -> list[tuple[str | None, ...]]:
        """The rows of `sql` in database `db` (a name or a URL of this server), every value as
        psql prints it (text), NULL as None."""
        out = self.psql(db, sql)
        rows = []
        for line in out.split("\x1e"):
            line = line.strip("\n")
            if line == "":
                continue
            rows.append(tuple(None if v == "\x1a" else v for v in line.split("\x1f")))
        return rows

    # -- diagnostics

    def logs(self) -> str:
        head = f"===== {self.name}: {self.data_dir} (port {self.port}) ====="
        return head + ("\n" + self.proc.output() if self.proc is not None else "\n(never started)")


def db_name(db: str) -> str:
    """`postgres://u@h:p/name?x` → `name`; a bare name as it is."""
    if "://" in db:
        return db.split("://", 1)[1].split("/", 1)[1].split("?", 1)[0]
    return db


# --------------------------------------------------------------------------- Redis


class RedisServer:
    """`redis-server` on a free port of 127.0.0.1, no persistence, in the foreground (our
    child, stopped by PID). `stop()` keeps the port for `start()`."""

    def __init__(self, log_dir: Path, name: str = "redis", start_timeout: float = 15.0):
        self.name = name
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.binary = redis_binary()
        self.start_timeout = start_timeout
        self.port: int | None = None
        self.proc: Managed | None = None
        self.fixture: str | None = None  # the session fixture serving it (for failure reports)
        self._starts = 0

    def start(self) -> "RedisServer":
        """Starts the server (again: on the same port) and waits until it answers PING."""
        return _start(self)

    def _start_on(self, port: int) -> None:
        argv = [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--dir", str(self.log_dir), "--protected-mode", "yes"]
        name = self.name if self._starts == 0 else f"{self.name}-r{self._starts}"
        self._starts += 1
        self.proc = Managed(name, argv, self.log_dir, cwd=self.log_dir)

        def ready() -> bool:
            return port_open("127.0.0.1", port) and _resp(port, "PING") == "PONG"

        try:
            self.proc.wait_until(f"answering PING on 127.0.0.1:{port}", ready, self.start_timeout, interval=0.05)
        except StartupError:
            self.proc.stop()
            raise

    @property
    def url(self) -> str:
        assert self.port, "server never started"
        return f"redis://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def command(self, *args: str) -> object:
        """One command over RESP; the decoded reply (str, int, list or None)."""
        assert self.port, "server never started"
        return _resp(self.port, *args)

    def flushall(self) -> None:
        assert self.command("FLUSHALL") == "OK"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()

    def cleanup(self) -> None:
        self.stop()
        if self in _live:
            _live.remove(self)

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def logs(self) -> str:
        head = f"===== {self.name} (port {self.port}) ====="
        return head + ("\n" + self.proc.output() if self.proc is not None else "\n(never started)")


def _resp(port: int, *args: str, timeout: float = 2.0) -> object:
    """A minimal RESP2 client: sends one command, reads one reply."""
    payload = f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(a.encode())}\r\n".encode() + a.encode() + b"\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload)
        f = s.makefile("rb")
        return _read_reply(f)


def _read_reply(f) -> object:
    line = f.readline()
    if not line:
        raise ConnectionError("redis closed the connection")
    kind, rest = line[:1], line[1:].rstrip(b"\r\n").decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RuntimeError(f"redis error: {rest}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)
        return data[:-2].decode("utf-8", "replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_reply(f) for _ in range(n)]
    raise RuntimeError(f"unexpected redis reply {line!r}")


def stop_all_services() -> None:
    """Stops (and for PostgreSQL removes) every server still running."""
    for s in list(_live):
        try:
            s.cleanup()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


def wait_port_closed(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while port_open("127.0.0.1", port):
        if time.monotonic() > deadline:
            raise AssertionError(f"127.0.0.1:{port} still accepts connections after {timeout}s")
        time.sleep(0.05)
