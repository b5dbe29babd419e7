"""Each stage on its own, in the `stages` namespace: publish N usage events with nothing
running, then price them with only pricing running, then project the debits with only the
projector running. Every stage starts its clock when its process is ready, so interpreter
startup is not counted, and stops it when the last event went through."""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from benchmarks.figures import StageFigure
from benchmarks.machine import process_groups
from benchmarks.namespace import Namespace
from benchmarks.processes import Service
from benchmarks.progress import PricingOffsets, applied_count, patience, wait_for_count
from benchmarks.resources import CpuMeter
from services.common.progress import ProgressReport
from services.common.settings import Settings
from services.gateway.publisher import UsagePublisher
from services.traffic.sending import KeyedMessage, publish_chunks
from services.traffic.traffic import CHUNK, TrafficPlan, generate_chunks

Chunks = Sequence[Sequence[KeyedMessage]]


@dataclass
class StageResults:
    publish: StageFigure
    pricing: StageFigure
    projection: StageFigure
    peak_rss_mb: dict[str, float | None]


def generate(plan: TrafficPlan) -> list[list[KeyedMessage]]:
    """The plan's events, serialized ahead of time: the generator stands for the gateways,
    whose CPU is not the ledger's, so it stays out of every timed stage."""
    return [[(m.key, m.value) for m in chunk] for chunk in generate_chunks(plan)]


async def publish(settings: Settings, chunks: Chunks, rate: float = 0.0) -> float:
    """Publishes every chunk through the gateways' UsagePublisher; returns the seconds taken
    until the broker acknowledged the last event."""
    # The progress lines go nowhere: the bench reports its own phases, and stdout may be JSON.
    progress = ProgressReport("publish", None, stream=io.StringIO())
    async with UsagePublisher(settings) as publisher:
        started = time.monotonic()
        await publish_chunks(publisher, chunks, rate, progress, CHUNK)
        return time.monotonic() - started


async def run_stages(ns: Namespace, chunks: Chunks, events: int, log_dir: Path) -> StageResults:
    publish_s = await publish(ns.settings, chunks)
    pricing, pricing_rss = await _pricing_alone(ns, events, log_dir)
    projection, projector_rss = await _projection_alone(ns, events, log_dir)
    return StageResults(
        publish=StageFigure.of(events, publish_s),
        pricing=pricing,
        projection=projection,
        peak_rss_mb={"pricing": pricing_rss, "projector": projector_rss},
    )


async def _pricing_alone(
    ns: Namespace, events: int, log_dir: Path
) -> tuple[StageFigure, float | None]:
    service = Service("pricing", ns.env(), log_dir)
    try:
        service.start()
        meter = CpuMeter(process_groups([service], ns.database))
        async with PricingOffsets(ns.settings) as offsets:
            reached = await wait_for_count(offsets.count, events, patience(events), [service])
        figure = _figure(service, events, reached.at, meter)
    finally:
        service.stop()
    return figure, service.peak_rss_mb


async def _projection_alone(
    ns: Namespace, events: int, log_dir: Path
) -> tuple[StageFigure, float | None]:
    service = Service("projector", ns.env(), log_dir)
    conn = await asyncpg.connect(ns.settings.database_url)
    try:
        service.start()
        meter = CpuMeter(process_groups([service], ns.database))
        reached = await wait_for_count(
            lambda: applied_count(conn), events, patience(events), [service]
        )
        figure = _figure(service, events, reached.at, meter)
    finally:
        service.stop()
        await conn.close()
    return figure, service.peak_rss_mb


def _figure(service: Service, events: int, done_at: float, meter: CpuMeter) -> StageFigure:
    """The meter starts a moment after the ready mark; its cores cover the stage's work."""
    cores = meter.cores()
    figure = StageFigure.of(events, done_at - service.ready_at, meter.used()[service.name])
    figure.cores_used = cores
    return figure
