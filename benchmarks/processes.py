"""The three services as real child processes (`ledger serve NAME`), with logs in files."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.resources import peak_rss_mb

LEDGER = [sys.executable, "-m", "services.cli"]
# Every service logs this phrase once it consumes or serves (services/*/service.py, api/app.py).
READY_MARK = "ready:"
READY_POLL_S = 0.02


class BenchError(RuntimeError):
    """The bench cannot go on; the message says which part failed and why."""


class Service:
    """`ledger serve NAME` in the background; `peak_rss_mb` is read just before it stops."""

    def __init__(self, name: str, env: dict[str, str], log_dir: Path, *args: str) -> None:
        self.name = name
        self.env = {**os.environ, **env}
        self.args = args
        self.log_path = log_dir / f"{name}-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_at = 0.0
        self.peak_rss_mb: float | None = None

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError(f"{self.name} is not running")
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> Service:
        # The child keeps its own copy of the log descriptor; ours is closed at once.
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*LEDGER, "serve", self.name, *self.args],
                env=self.env,
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if READY_MARK in self.log():
                self.ready_at = time.monotonic()
                return
            time.sleep(READY_POLL_S)
        raise BenchError(f"{self.name} not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited ({self.proc.returncode}):\n{self.log_tail()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM and wait (SIGKILL after `timeout`); idempotent."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.peak_rss_mb = peak_rss_mb(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
