"""Start, await and stop the dev stack's child processes (loopback only), ended by their own PID."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on `host` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError):
        return False


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll `condition` until true; raise TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class ServiceExitedError(RuntimeError):
    """A service of the dev stack exited before it was ready; the message ends with its log's tail."""


@dataclass
class ManagedProcess:
    """A child process started by the dev stack, with its log file; stopped by its PID only."""

    name: str
    popen: subprocess.Popen
    log_path: Path | None = None
    info: dict = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_ready(self, condition: Callable[[], bool], timeout: float = 60) -> None:
        def ready() -> bool:
            if not self.alive():
                raise ServiceExitedError(
                    f"{self.name} exited with code {self.popen.returncode} before it was ready:\n"
                    + self.log_tail()
                )
            return condition()

        wait_until(ready, timeout, f"{self.name} to become ready")

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM the process group we created, then SIGKILL it if it lingers."""
        if self.popen.poll() is not None:
            return
        self._signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.popen.wait(timeout)

    def kill(self) -> None:
        """SIGKILL at once (crash tests)."""
        if self.popen.poll() is None:
            self._signal(signal.SIGKILL)
            self.popen.wait(10)

    def _signal(self, sig: int) -> None:
        # The child leads its own session (start_new_session), so its group id is its PID.
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass


def start_process(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path | None = None,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
) -> ManagedProcess:
    """Start `argv` in its own process group, output to `log_path` (or inherited)."""
    out = open(log_path, "ab") if log_path else None  # noqa: SIM115 - owned by the child
    try:
        popen = subprocess.Popen(
            list(argv),
            stdout=out or None,
            stderr=subprocess.STDOUT if out else None,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        if out:
            out.close()
    return ManagedProcess(name=name, popen=popen, log_path=log_path)


def python_module_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
