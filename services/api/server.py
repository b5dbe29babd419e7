"""How one API process treats its connections: slow, idle and surplus clients
(docs/operations.md, Connection limits).

uvicorn closes a keep-alive connection idle between requests, but gives a client that
never completes a request all the time it wants, and past its concurrency limit answers a
plain-text 503. `GuardedHttpProtocol` adds what it lacks: a connection must begin a request
within the idle timeout and send it whole (headers and body) within the header timeout,
else it is closed (with a 408 when its headers were not complete); past
LEDGER_API_MAX_CONNECTIONS open connections a request gets the API's JSON 503 `overloaded`
and its connection is closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import ssl
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from services.common.settings import Settings, load_settings

log = logging.getLogger(__name__)

# Descriptors a process needs besides its clients: the database pool, Kafka, logs.
RESERVED_FILES = 256
# Under overload every refused request would log a line: one per this many seconds.
OVERLOAD_LOG_INTERVAL_S = 10.0
# How long a timed-out connection is read and ignored after its 408, before it is closed.
LINGER_S = 2.0


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int
    header_timeout: float
    idle_timeout: float


def raise_file_limit() -> int:
    """Raises this process's soft RLIMIT_NOFILE to its hard limit; returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1_048_576)
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as error:
            log.warning("could not raise the open-file limit from %d to %d: %s", soft, hard, error)
    return soft


def connection_limits(settings: Settings, file_limit: int) -> ConnectionLimits:
    """The configured limits, the connection cap lowered to what the file limit allows: a
    process out of descriptors can answer nobody, not even with a 503."""
    cap = settings.ledger_api_max_connections
    allowed = max(file_limit - RESERVED_FILES, 1)
    if cap > allowed:
        log.warning(
            "LEDGER_API_MAX_CONNECTIONS=%d is more than the open-file limit (%d) allows: "
            "capped at %d connections (raise `ulimit -n` to allow more)",
            cap,
            file_limit,
            allowed,
        )
        cap = allowed
    return ConnectionLimits(
        cap, settings.ledger_api_header_timeout_seconds, settings.ledger_api_idle_timeout_seconds
    )


@lru_cache(maxsize=1)
def process_limits() -> ConnectionLimits:
    """Once per process (each `--workers` process computes its own)."""
    limits = connection_limits(load_settings(), raise_file_limit())
    log.info(
        "connections: at most %d, requests sent within %gs, idle ones closed after %gs",
        limits.max_connections,
        limits.header_timeout,
        limits.idle_timeout,
    )
    return limits


def tls_problem(settings: Settings) -> str | None:
    """Why the configured certificate and key cannot serve HTTPS (unreadable, not PEM, a key
    that is not the certificate's), checked before the server starts; None when they can."""
    if settings.ledger_api_tls_cert is None:
        return None
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
            settings.ledger_api_tls_cert, settings.ledger_api_tls_key
        )
    except (ssl.SSLError, OSError) as error:
        return f"LEDGER_API_TLS_CERT/LEDGER_API_TLS_KEY cannot serve HTTPS: {error}"
    return None


def uvicorn_options() -> dict[str, Any]:
    """What `uvicorn.Config` needs to run the API with these limits, over HTTPS when
    LEDGER_API_TLS_CERT and LEDGER_API_TLS_KEY name a certificate and its key."""
    settings = load_settings()
    tls = (
        {"ssl_certfile": settings.ledger_api_tls_cert, "ssl_keyfile": settings.ledger_api_tls_key}
        if settings.ledger_api_tls_cert is not None
        else {}
    )
    return {
        "http": GuardedHttpProtocol,
        "timeout_keep_alive": process_limits().idle_timeout,
        # Surplus connections are answered by GuardedHttpProtocol, in JSON.
        "limit_concurrency": None,
        **tls,
    }


def _json_answer(status: str, code: str, detail: str) -> bytes:
    body = json.dumps({"error": code, "detail": detail}).encode()
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


REQUEST_TIMEOUT = _json_answer(
    "408 Request Timeout", "request_timeout", "the request was not sent in time"
)


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with the limits of `process_limits()`."""

    # When an overload was last logged, shared by the process's connections.
    overload_logged_at = float("-inf")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = process_limits()
        self.request_timer: asyncio.TimerHandle | None = None
        self.reading_headers = False
        self.lingering = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Nothing sent yet: the connection is idle until a request begins.
        self._arm(self.limits.idle_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.reading_headers = True
        self._arm(self.limits.header_timeout)

    def on_headers_complete(self) -> None:
        self.reading_headers = False
        # The connection itself counts: the cap's next one is the first refused.
        if len(self.connections) > self.limits.max_connections:
            app, self.app = self.app, self._overloaded
            try:
                super().on_headers_complete()
            finally:
                self.app = app
        else:
            super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    async def _overloaded(self, scope: Any, receive: Any, send: Any) -> None:
        now = self.loop.time()
        if now - GuardedHttpProtocol.overload_logged_at >= OVERLOAD_LOG_INTERVAL_S:
            GuardedHttpProtocol.overload_logged_at = now
            log.warning(
                "more than %d connections open: requests answered 503 overloaded",
                self.limits.max_connections,
            )
        body = json.dumps(
            {
                "error": "overloaded",
                "detail": f"this API process has more than {self.limits.max_connections} "
                "connections open; retry shortly",
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", b"1"),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self.request_timer = self.loop.call_later(seconds, self._timed_out)

    def _disarm(self) -> None:
        if self.request_timer is not None:
            self.request_timer.cancel()
            self.request_timer = None

    def _timed_out(self) -> None:
        self.request_timer = None
        if self.transport.is_closing():
            return
        # Headers begun but not finished get a 408; a request whose body stalls is already
        # the app's (which may have answered it), and an idle connection just closes.
        if self.reading_headers:
            # A lingering close: closing a socket with unread input resets it, and the reset
            # can overtake the 408 on its way. So the answer is sent with our half closed,
            # whatever the client still sends is read and dropped, and the socket is closed
            # a moment later.
            self.transport.write(REQUEST_TIMEOUT)
            self.lingering = True
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.loop.call_later(LINGER_S, self.transport.close)
            return
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if not self.lingering:
            super().data_received(data)
