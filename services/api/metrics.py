"""Prometheus metrics: requests by route and status, and the projector's counters."""

from __future__ import annotations

import time
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.projector.settlement import COUNTERS as HOLD_COUNTERS

# Always exported, 0 until the projector has counted one, so dashboards need no special case.
PROJECTOR_COUNTERS = ("applied", "duplicates", "conflicts", "rejected", *HOLD_COUNTERS)
# The webhooks service's counters (alerts.counters), by the outcome of each attempt.
DELIVERY_OUTCOMES = ("delivered", "retried", "failed")


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
