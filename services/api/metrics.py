"""Prometheus metrics: requests by route and status, the projector's counters, active
holds, and how far pricing and the projector are behind (Kafka's offsets)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.api.dashboard.offsets import KafkaFigures
from services.api.dashboard.overview import kafka_figures
from services.common.settings import Settings
from services.common.topics import Topics
from services.projector.settlement import COUNTERS as HOLD_COUNTERS

log = logging.getLogger(__name__)

# Always exported, 0 until the projector has counted one, so dashboards need no special case.
PROJECTOR_COUNTERS = ("applied", "duplicates", "conflicts", "rejected", *HOLD_COUNTERS)
# The webhooks service's counters (alerts.counters), by the outcome of each attempt.
DELIVERY_OUTCOMES = ("delivered", "retried", "failed")
# A scrape waits no longer than this for Kafka's offsets, then answers without them.
KAFKA_TIMEOUT = 2.0
# Kafka's offsets are read at most this often per process (seconds): /metrics needs no
# token, and each read opens two short-lived Kafka clients.
KAFKA_INTERVAL = 5.0


class ApiMetrics:
    """One registry per app, so several apps in one process (tests) never share series."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ledger_api_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ledger_api_request_seconds",
            "HTTP request latency, by route template and method",
            ["route", "method"],
            registry=self.registry,
        )
        self.projector = Gauge(
            "ledger_projector_events",
            "The projector's counters as stored in PostgreSQL",
            ["counter"],
            registry=self.registry,
        )
        self.accounts = Gauge(
            "ledger_accounts", "Accounts in the projection", registry=self.registry
        )
        self.database_up = Gauge(
            "ledger_api_database_up",
            "1 when the last scrape could read PostgreSQL",
            registry=self.registry,
        )
        self.alerts_raised = Gauge(
            "ledger_alerts_raised",
            "Balance alerts the projector raised (each crossing once)",
            registry=self.registry,
        )
        self.deliveries = Gauge(
            "ledger_webhook_deliveries",
            "Webhook attempts by outcome: delivered, retried (failed, tried again), failed",
            ["outcome"],
            registry=self.registry,
        )
        self.holds = Gauge(
            "ledger_holds_active",
            "Holds holding credits now (active, not past expiry)",
            registry=self.registry,
        )
        self.held = Gauge(
            "ledger_holds_active_credits",
            "Credits the active holds hold",
            registry=self.registry,
        )
        self.stage_lag = Gauge(
            "ledger_stage_lag",
            "Offsets a stage has still to read on its input topic: pricing on usage.v1, "
            "the projector on ledger.v1 (absent while Kafka cannot be read)",
            ["stage", "topic"],
            registry=self.registry,
        )
        self.usage_rejected = Gauge(
            "ledger_usage_rejected",
            "Usage events pricing rejected to usage.dlq.v1 (on a long topic, its offsets: an "
            "upper bound; absent while Kafka cannot be read)",
            ["topic"],
            registry=self.registry,
        )
        self.kafka_up = Gauge(
            "ledger_api_kafka_up",
            "1 when the last reading of Kafka's offsets succeeded",
            registry=self.registry,
        )
        self._kafka_lock = asyncio.Lock()
        self._kafka_read_at = -math.inf
        # Bounded as the series are: route templates x methods x statuses.
        self._counted: dict[tuple[str, str, int], Counter] = {}
        self._timed: dict[tuple[str, str], Histogram] = {}

    def answered(self, route: str, method: str, status: int, seconds: float) -> None:
        """Counts one answer. The labelled series are kept at hand: looking them up by
        label values on every request was a measurable share of a hold's CPU."""
        counter = self._counted.get((route, method, status))
        if counter is None:
            counter = self.requests.labels(route=route, method=method, status=str(status))
            self._counted[(route, method, status)] = counter
        counter.inc()
        timer = self._timed.get((route, method))
        if timer is None:
            timer = self._timed[(route, method)] = self.latency.labels(route=route, method=method)
        timer.observe(seconds)

    def set_alerts(self, raised: int, outcomes: Mapping[str, int]) -> None:
        self.alerts_raised.set(raised)
        for name in DELIVERY_OUTCOMES:
            self.deliveries.labels(outcome=name).set(outcomes.get(name, 0))

    def set_projection(self, counters: Mapping[str, int], accounts: int) -> None:
        for name in (*PROJECTOR_COUNTERS, *counters):
            self.projector.labels(counter=name).set(counters.get(name, 0))
        self.accounts.set(accounts)
        self.database_up.set(1)

    def set_holds(self, holds: int, credits: int) -> None:
        self.holds.set(holds)
        self.held.set(credits)

    async def read_kafka(self, settings: Settings, projector_done: dict[int, int] | None) -> None:
        """Sets the Kafka gauges from the figures the admin overview shows. `projector_done`:
        the projector's next ledger.v1 offsets, None when PostgreSQL could not say (then
        the projector's lag is left out). One reading at a time, at most one per
        KAFKA_INTERVAL: scrapes in between keep the last one."""
        async with self._kafka_lock:
            if time.monotonic() - self._kafka_read_at < KAFKA_INTERVAL:
                return
            try:
                # Shorter than the overview's own timeout: a scrape must answer quickly.
                async with asyncio.timeout(KAFKA_TIMEOUT):
                    figures, _ = await kafka_figures(settings, projector_done or {})
            except TimeoutError:
                log.warning("metrics without Kafka's figures: no answer in %s s", KAFKA_TIMEOUT)
                figures = None
            self._kafka_read_at = time.monotonic()
            self.set_kafka(Topics.from_settings(settings), figures, projector_done is not None)

    def set_kafka(self, topics: Topics, figures: KafkaFigures | None, projector: bool) -> None:
        # Absent rather than stale: a lag last seen before Kafka went away would read as 0.
        self.stage_lag.clear()
        self.usage_rejected.clear()
        self.kafka_up.set(0 if figures is None else 1)
        if figures is None:
            return
        self.stage_lag.labels(stage="pricing", topic=topics.usage).set(figures.pricing_behind)
        if projector:
            lag = self.stage_lag.labels(stage="projector", topic=topics.ledger)
            lag.set(figures.projector_behind)
        self.usage_rejected.labels(topic=topics.dlq).set(figures.rejected_usage())


class RequestMetrics:
    """ASGI middleware counting every answer, including the ones error handlers produce."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = _route_template(scope)
            method = scope["method"]
            self.metrics.answered(route, method, status, time.perf_counter() - started)


def _route_template(scope: Scope) -> str:
    # The template, not the raw path: account ids in labels would grow without bound.
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"
