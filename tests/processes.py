"""Real service processes for end-to-end and fault tests: start, wait until ready, kill."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from services.common.settings import Settings

LEDGER = [sys.executable, "-m", "services.cli"]
# Every service logs this exact phrase once it consumes or serves (see services/*/service.py).
READY_MARK = "ready:"


class ServiceProcess:
    """`ledger serve NAME` as a child process with its output in a log file."""

    def __init__(
        self, name: str, settings: Settings, log_dir: Path, *args: str, **env: str
    ) -> None:
        self.name = name
        self.args = args
        self.env = service_env(settings, **env)
        self.log_path = log_dir / f"{name}-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        self.log_path = self.log_path.with_name(f"{self.name}-{time.monotonic_ns()}.log")
        # The child keeps its own copy of the descriptor; ours is closed at once.
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*LEDGER, "serve", self.name, *self.args], env=self.env, stdout=log, stderr=log
            )
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log()}")
            if READY_MARK in self.log():
                return
            time.sleep(0.1)
        raise TimeoutError(f"{self.name} not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to flush or commit anything."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: a clean stop."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a service subprocess needs to join a test's Kafka and database."""
    return {**os.environ, **settings.service_environment(), **extra}
