"""Liveness, readiness and metrics: no token needed, so probes and scrapers stay simple."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.alerts import store as alerts_store
from services.api import queries
from services.api.auth import require
from services.api.authenticate import ScopedRoute
from services.api.database import connection
from services.api.errors import ApiError, error_response
from services.api.metrics import ApiMetrics
from services.api.models import Health
from services.api.resources import Resources, resources
from services.common.settings import Settings
from services.common.topics import Topics

log = logging.getLogger(__name__)
router = APIRouter(
    tags=["health"], dependencies=[Depends(require("public"))], route_class=ScopedRoute
)
Opened = Annotated[Resources, Depends(resources)]
KAFKA_TIMEOUT = 5.0


@router.get("/healthz")
async def healthz() -> Health:
    return Health()


@router.get("/readyz", responses={503: {"description": "PostgreSQL or Kafka unreachable"}})
async def readyz(opened: Opened) -> JSONResponse:
    problems = {}
    try:
        async with connection(opened.pool) as conn:
            await queries.ping(conn)
    except ApiError as exc:
        problems["postgresql"] = str(exc.detail)
    try:
        async with asyncio.timeout(KAFKA_TIMEOUT):
            await opened.producer.client.fetch_all_metadata()
    except Exception as exc:  # any failure here means "not ready", reported in the answer
        problems["kafka"] = repr(exc)
    if problems:
        detail = "; ".join(f"{name}: {text}" for name, text in problems.items())
        return error_response(503, "not_ready", detail)
    return JSONResponse({"status": "ready", "postgresql": "ok", "kafka": "ok"})


@router.get("/metrics", response_class=Response)
async def metrics(request: Request, opened: Opened) -> Response:
    api_metrics: ApiMetrics = request.app.state.metrics
    settings: Settings = request.app.state.settings
    applied: dict[int, int] | None = None
    try:
        async with connection(opened.pool) as conn:
            counters, accounts = await queries.projector_counters(conn)
            raised = await alerts_store.alerts_raised(conn)
            outcomes = await alerts_store.counters(conn)
            holds, held = await queries.active_holds(conn)
            applied = await queries.applied_offsets(conn, Topics.from_settings(settings).ledger)
        api_metrics.set_projection(counters, accounts)
        api_metrics.set_alerts(raised, outcomes)
        api_metrics.set_holds(holds, held)
    except ApiError as exc:
        # Request metrics stay useful while PostgreSQL is away; the gauge says it is.
        log.warning("metrics without projection counters: %s", exc.detail)
        api_metrics.database_up.set(0)
    # Outside the connection: a slow broker never keeps one from the pool.
    await api_metrics.read_kafka(settings, applied)
    return Response(generate_latest(api_metrics.registry), media_type=CONTENT_TYPE_LATEST)
