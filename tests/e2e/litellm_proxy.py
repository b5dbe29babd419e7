"""The LiteLLM proxy as a real child process, started from a config file, offline."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = ROOT / "examples" / "litellm" / "config.yaml"
LITELLM = Path(sys.executable).with_name("litellm")
MASTER_KEY = "sk-e2e-3f9a6c1d8b2e4f7a9c0d1e2f3a4b5c6d"
# LiteLLM treats these as its own settings (DATABASE_URL would make it run its own
# database migrations); the callback needs none of them.
NOT_FOR_LITELLM = ("DATABASE_URL",)


class LiteLLMProxy:
    """`litellm --config CONFIG` on 127.0.0.1:`port`; env joins it to a test's ledger."""

    def __init__(
        self,
        config: Path,
        port: int,
        env: dict[str, str],
        log_dir: Path,
        without: tuple[str, ...] = (),
    ) -> None:
        """`without`: variables of the test's own environment the proxy must not inherit
        (KAFKA_BOOTSTRAP_SERVERS, for a callback that uses POST /v1/usage)."""
        self.config = config
        self.port = port
        base = {k: v for k, v in os.environ.items() if k not in NOT_FOR_LITELLM + without}
        self.env = {
            **{k: v for k, v in env.items() if k not in NOT_FOR_LITELLM},
            **{k: v for k, v in base.items() if k not in env},
            # LiteLLM must never reach the network: its price list comes from the package.
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_MASTER_KEY": MASTER_KEY,
        }
        self.log_path = log_dir / f"litellm-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> LiteLLMProxy:
        args = [str(LITELLM), "--config", str(self.config), "--host", "127.0.0.1",
                "--port", str(self.port)]  # fmt: skip
        with self.log_path.open("ab") as log:  # a restarted proxy's log follows the first
            self.proc = subprocess.Popen(
                args, env=self.env, stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"litellm exited {self.proc.returncode}:\n{self.log()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health/liveliness", timeout=2).status_code == 200:
                    return self
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"litellm not ready after {timeout:.0f} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def kill(self) -> None:
        """SIGKILL: no shutdown hook runs, nothing is flushed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
