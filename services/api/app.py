"""`ledger serve api`: the FastAPI app and the uvicorn server that runs it."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from schemas.entry_signing import EntryKeyError, read_signing_key
from services.api.auth import AuthConfigError, parse_tokens
from services.api.errors import install_error_handlers
from services.api.hot_paths import HotPaths
from services.api.limits import BodySizeLimit
from services.api.metrics import ApiMetrics, RequestMetrics
from services.api.resources import FaultPoints, open_resources
from services.api.routes import accounts, alerts, dashboard, health, holds, keys, pricing, usage
from services.api.server import tls_problem, uvicorn_options
from services.common.settings import Settings, load_settings

log = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with open_resources(app.state.settings, app.state.faults) as opened:
        app.state.resources = opened
        if getattr(app.state, "worker", False):
            # The parent bound the socket already; this worker accepts from now on.
            log.info("ready: api worker %d serving", os.getpid())
        yield


def create_app(settings: Settings, *, hot_paths: bool = True) -> FastAPI:
    """Raises AuthConfigError when the tokens are unusable: the API must not start then.
    `hot_paths=False` leaves every request to the routes (tests compare the two)."""
    tokens = parse_tokens(settings)
    metrics = ApiMetrics()
    app = FastAPI(
        title="Credit ledger API",
        version="1",
        summary="Balances, entries, usage; credits and adjustments; quotes; API keys.",
        lifespan=lifespan,
        # The API exports its own Prometheus metrics (services/api/metrics.py); FastAPI's
        # OpenTelemetry hooks, with no provider configured, still cost a check per request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.faults = FaultPoints.from_settings(settings)  # read once, here at the edge
    app.state.tokens = tokens
    app.state.metrics = metrics
    install_error_handlers(app)
    app.include_router(accounts.router)
    app.include_router(pricing.router)
    app.include_router(alerts.router)
    app.include_router(keys.router)
    app.include_router(holds.router)
    app.include_router(usage.router)
    app.include_router(health.router)
    app.include_router(dashboard.router)
    # Added last, so they wrap everything: oversized bodies are refused before any route
    # runs, and every answer (error answers included) is counted. Tokens are checked by
    # each route before its body is parsed (services/api/authenticate.py). The hot paths
    # are innermost: limited and counted like every request (services/api/hot_paths.py).
    if hot_paths:
        app.add_middleware(HotPaths, api=app)
    app.add_middleware(BodySizeLimit)
    app.add_middleware(RequestMetrics, metrics=metrics)
    return app


class Server(uvicorn.Server):
    """Logs the ready mark only once the socket is bound and the lifespan has started."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            log.info("ready: api serving on http://%s:%d", self.config.host, self.config.port)


def worker_app() -> FastAPI:
    """The app of one of `--workers N` processes (uvicorn imports it by name)."""
    app = create_app(load_settings())
    app.state.worker = True
    return app


def worker_logging(level: str) -> dict[str, Any]:
    """Each worker is a fresh interpreter; uvicorn configures its logging from this, as
    services/cli.py configures a single process."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        # One line per request would cost more than many a request itself.
        "loggers": {"aiokafka": {"level": "WARNING"}, "uvicorn.access": {"level": "WARNING"}},
    }


def run_workers(host: str, port: int, workers: int) -> int:
    """N processes sharing one listening socket; SIGTERM stops them all cleanly."""
    config = uvicorn.Config(
        "services.api.app:worker_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        lifespan="on",
        access_log=False,  # one line per request would cost more than many a request
        log_config=worker_logging(load_settings().ledger_log_level),
        **uvicorn_options(),
    )
    Multiprocess(config, sockets=[config.bind_socket()]).run()
    return 0


def run(host: str, port: int, workers: int = 1) -> int:
    settings = load_settings()
    try:
        # The lifespan reads the key again for the claims; here a missing one stops the
        # start with one line instead of a lifespan traceback.
        read_signing_key(settings.ledger_entry_signing_key)
        app = create_app(settings)
    except (AuthConfigError, EntryKeyError) as exc:
        print(f"ledger serve api: refusing to start: {exc}", file=sys.stderr)
        return 2
    if (problem := tls_problem(settings)) is not None:
        print(f"ledger serve api: refusing to start: {problem}", file=sys.stderr)
        return 2
    if workers > 1:
        return run_workers(host, port, workers)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        access_log=False,
        log_config=None,
        **uvicorn_options(),
    )
    server = Server(config)

    def stop(signum: int, frame: FrameType | None) -> None:
        server.should_exit = True

    # While serving, uvicorn handles SIGTERM/SIGINT itself: it stops accepting, finishes
    # in-flight requests and runs the lifespan shutdown (producer flushed, pool closed).
    # Afterwards it re-raises the signal; this handler turns that into a normal return,
    # so a clean stop exits 0 instead of dying by the signal.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    server.run()
    return 0 if server.started else 1
