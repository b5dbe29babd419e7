"""A webhook receiver for the tests, run as its own process:

    python -m tests.webhook_receiver PORT LOG_FILE

Every request is appended to LOG_FILE as one JSON line (path, headers, body, the answer)
before it is answered. The path chooses the behaviour: `/ok...` answers 204, `/fail-once...`
answers 500 to the first request of each webhook-id and 204 after, `/dead...` always 503,
`/hang...` never answers. `Receiver` starts and stops it from a test; `verify_from_spec`
checks a signature as the Standard Webhooks specification words it, apart from the code
that signs.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.processes import free_port

HANG_SECONDS = 3600.0


def verify_from_spec(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """The specification: key = base64-decode(secret without `whsec_`); signed content =
    `{webhook-id}.{webhook-timestamp}.{body}`; `webhook-signature` holds space-separated
    `v1,<base64 HMAC-SHA256>` values, any of which may match."""
    key = base64.b64decode(secret.split("_", 1)[1])
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    for candidate in headers["webhook-signature"].split(" "):
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return True
    return False


class Handler(BaseHTTPRequestHandler):
    server: Recording

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        answer = self.server.answer(self.path, self.headers.get("webhook-id", ""))
        self.server.record(
            {
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode(),
                "answer": answer,
                "at": time.time(),
            }
        )
        if answer is None:
            time.sleep(HANG_SECONDS)
            return
        self.send_response(answer)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the log file is the record."""


class Recording(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, log: Path) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.log = log.open("a", encoding="utf-8")
        self.lock = threading.Lock()
        self.seen: set[str] = set()

    def answer(self, path: str, webhook_id: str) -> int | None:
        if path.startswith("/hang"):
            return None
        if path.startswith("/dead"):
            return 503
        if path.startswith("/fail-once"):
            with self.lock:
                first = webhook_id not in self.seen
                self.seen.add(webhook_id)
            return 500 if first else 204
        return 204

    def record(self, request: dict[str, Any]) -> None:
        with self.lock:
            self.log.write(json.dumps(request) + "\n")
            self.log.flush()


class Receiver:
    """The receiver as a child process on 127.0.0.1, and what it recorded."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log = log_dir / f"receiver-{self.port}.jsonl"
        self.log.touch()
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def requests(self, path_prefix: str = "/") -> list[dict[str, Any]]:
        lines = self.log.read_text(encoding="utf-8").splitlines()
        found = [json.loads(line) for line in lines if line.strip()]
        return [r for r in found if r["path"].startswith(path_prefix)]

    @contextmanager
    def running(self) -> Iterator[Receiver]:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.webhook_receiver", str(self.port), str(self.log)]
        )
        try:
            self._wait_listening()
            yield self
        finally:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def _wait_listening(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"webhook receiver not listening on {self.port}")


if __name__ == "__main__":
    Recording(int(sys.argv[1]), Path(sys.argv[2])).serve_forever()
