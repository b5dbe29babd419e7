"""What the gateway's end-to-end tests put around a real LiteLLM proxy: an upstream speaking
the OpenAI chat completions API that repeats one response id, a relay in front of the
ledger API that can drop POST /v1/usage, and the proxy's config with the upstream added.

Both servers run in threads of the test process, independent of its event loop, so the
proxy (a child process) can reach them while the test awaits."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.e2e.litellm_proxy import EXAMPLE_CONFIG

REPEATED_ID = "chatcmpl-the-same-every-time"
UPSTREAM_USAGE = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}


class _Server:
    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> _Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Quiet(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {"Content-Type": "application/json"}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _RepeatingUpstream(_Quiet):
    def do_POST(self) -> None:
        request = json.loads(self._body() or b"{}")
        reply = {
            "id": REPEATED_ID, "object": "chat.completion", "created": int(time.time()),
            "model": request.get("model", "m"),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "same id, new call"}}],
            "usage": UPSTREAM_USAGE,
        }  # fmt: skip
        self._answer(200, json.dumps(reply).encode())


class RepeatingUpstream(_Server):
    """An OpenAI-compatible upstream whose every answer carries the same response id."""

    def __init__(self) -> None:
        super().__init__(_RepeatingUpstream)


class _Relay(_Quiet):
    def _forward(self) -> None:
        relay: Relay = self.server.owner  # type: ignore[attr-defined]
        body = self._body()
        if relay.dropping and self.path.startswith("/v1/usage"):
            relay.dropped += 1
            self.close_connection = True  # no answer at all: the connection just ends
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        answer = httpx.request(self.command, relay.target + self.path, headers=headers,
                               content=body, timeout=30)  # fmt: skip
        if self.path.startswith("/v1/usage"):
            relay.delivered += 1
        keep = {k: v for k, v in answer.headers.items()
                if k.lower() not in ("content-length", "transfer-encoding", "connection",
                                     "content-encoding")}  # fmt: skip
        self._answer(answer.status_code, answer.content, keep)

    do_GET = do_POST = do_DELETE = _forward


class Relay(_Server):
    """Forwards to `target`; while `dropping`, POST /v1/usage gets no answer."""

    def __init__(self, target: str) -> None:
        super().__init__(_Relay)
        self.target = target.rstrip("/")
        self.dropping = False
        self.dropped = 0
        self.delivered = 0


def proxy_config(path: Path, upstream_url: str) -> Path:
    """examples/litellm/config.yaml as it is, plus `repeat-id`, served by `upstream_url`."""
    config = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    config["model_list"].append({
        "model_name": "repeat-id",
        "litellm_params": {"model": "openai/mimo-v2-pro", "api_key": "offline",
                           "api_base": f"{upstream_url}/v1"},
    })  # fmt: skip
    env = config["environment_variables"]
    env["LEDGER_LITELLM_MODELS"] += ",repeat-id=mimo-v2-pro"
    path.write_text(yaml.safe_dump(config))
    return path
