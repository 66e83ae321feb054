"""Child processes the harness starts, and only those: tracked by PID, stopped with
SIGTERM then SIGKILL, their output captured to files."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Callable

_live: list["Managed"] = []


class StartupError(RuntimeError):
    """A process did not become ready; the message carries its captured output."""


class Managed:
    """One child process with stdout/stderr captured to `<log_dir>/<name>.{out,err}`."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None,
                 cwd: str | Path | None = None):
        self.name = name
        self.argv = [str(a) for a in argv]
        log_dir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = log_dir / f"{name}.out"
        self.stderr_path = log_dir / f"{name}.err"
        self._out = open(self.stdout_path, "wb")
        self._err = open(self.stderr_path, "wb")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err,
                                     env=env, cwd=cwd, close_fds=True)
        self.pid = self.proc.pid
        _live.append(self)

    # -- state

    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def stderr(self) -> str:
        return _read(self.stderr_path)

    def stdout(self) -> str:
        return _read(self.stdout_path)

    def output(self, limit: int = 20000) -> str:
        """stderr and stdout (tails) for a failure report."""
        parts = []
        for label, text in (("stderr", self.stderr()), ("stdout", self.stdout())):
            if text.strip():
                if len(text) > limit:
                    text = f"[... {len(text) - limit} bytes cut ...]\n" + text[-limit:]
                parts.append(f"----- {self.name} (pid {self.pid}) {label} -----\n{text.rstrip()}")
        rc = self.returncode
        status = "running" if rc is None else f"exited with {rc}"
        return "\n".join(parts) or f"----- {self.name} (pid {self.pid}): no output ({status}) -----"

    # -- waiting

    def wait_until(self, what: str, ready: Callable[[], bool], timeout: float, interval: float = 0.02) -> None:
        """Polls `ready()` until true; raises StartupError with the output if the process
        exits or `timeout` passes first."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.alive():
                raise StartupError(f"{self.name} exited with {self.returncode} before {what}\n{self.output()}")
            try:
                if ready():
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise StartupError(f"{self.name} not {what} after {timeout}s\n{self.output()}")
            time.sleep(interval)

    def wait_exit(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    # -- stopping

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM, then SIGKILL after `timeout`. Signals only this PID, and only while it is
        our unreaped child (so the PID cannot have been reused)."""
        if self.proc.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if self.wait_exit(timeout) is None:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.wait_exit(timeout)
        self._close()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL now (for fail-closed tests)."""
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.wait_exit(5.0)

    def _close(self) -> None:
        for f in (self._out, self._err):
            try:
                f.close()
            except OSError:
                pass
        if self in _live:
            _live.remove(self)


def stop_all() -> None:
    """Stops every process still running (end of session, interpreter exit)."""
    for p in list(_live):
        p.stop(timeout=3.0)


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", "replace")
    except OSError:
        return ""


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for processes that cannot bind port 0 and report it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
