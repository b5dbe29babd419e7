"""Real service processes for end-to-end and fault tests: start, wait until ready, kill.

The benchmark's `Service` does the work; tests name a deployment by its Settings.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from benchmarks.processes import LEDGER, READY_MARK, Service
from services.common.settings import Settings

__all__ = ["LEDGER", "READY_MARK", "ServiceProcess", "free_port", "service_env"]


class ServiceProcess(Service):
    """`ledger serve NAME` joined to `settings`' topics and database; `env` adds variables."""

    def __init__(
        self, name: str, settings: Settings, log_dir: Path, *args: str, **env: str
    ) -> None:
        super().__init__(name, {**settings.service_environment(), **env}, log_dir, *args)

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        # A restarted process gets a log of its own, so readiness is read from its own lines.
        self.log_path = self.log_path.with_name(f"{self.name}-{time.monotonic_ns()}.log")
        super().start(timeout)
        return self

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to flush or commit anything."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> int:  # type: ignore[override]
        """SIGTERM and wait: a clean stop; returns the exit code."""
        super().stop(timeout)
        return 0 if self.proc is None else self.proc.returncode


def service_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a service subprocess needs to join a test's Kafka and database."""
    return {**os.environ, **settings.service_environment(), **extra}


def refused_start(settings: Settings, name: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`ledger serve NAME` run to its end, for settings it must refuse at start (exit 2)."""
    return subprocess.run(
        [*LEDGER, "serve", name, *(["--port", str(free_port())] if name == "api" else [])],
        env=service_env(settings, **env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
