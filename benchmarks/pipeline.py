"""The whole pipeline in the `main` namespace: pricing, projector and api as child processes,
and the end-to-end run timed from the first publish to the last debit applied in PostgreSQL."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from benchmarks.figures import StageFigure
from benchmarks.machine import process_groups
from benchmarks.namespace import Namespace
from benchmarks.processes import Service
from benchmarks.progress import applied_count, patience, wait_for_count
from benchmarks.resources import CpuMeter
from benchmarks.stages import Chunks, generate, publish
from services.traffic.traffic import TrafficPlan

# Events on accounts of their own before the clock starts: every consumer has joined its group
# and every connection is open, so the timed run measures work, not startup.
WARMUP_EVENTS = 200


@dataclass
class Pipeline:
    pricing: Service
    projector: Service
    api: Service
    api_url: str
    token: str

    def services(self) -> list[Service]:
        return [self.pricing, self.projector, self.api]

    def stop(self) -> None:
        for service in self.services():
            service.stop()


@dataclass
class EndToEnd:
    figure: StageFigure
    cpu_s: dict[str, float]  # CPU seconds of each process group during the run


def start_pipeline(ns: Namespace, log_dir: Path) -> Pipeline:
    token = secrets.token_hex(16)
    port = _free_port()
    env = ns.env(LEDGER_API_TOKENS=f"{token}:read")
    pipeline = Pipeline(
        pricing=Service("pricing", env, log_dir),
        projector=Service("projector", env, log_dir),
        api=Service("api", env, log_dir, "--port", str(port)),
        api_url=f"http://127.0.0.1:{port}",
        token=token,
    )
    try:
        for service in pipeline.services():
            service.start()
    except BaseException:
        pipeline.stop()
        raise
    return pipeline


async def warm_up(ns: Namespace, pipeline: Pipeline, conn: asyncpg.Connection, seed: int) -> None:
    plan = TrafficPlan(accounts=10, events=WARMUP_EVENTS, seed=seed, account_prefix="warm-")
    target = await applied_count(conn) + WARMUP_EVENTS
    await publish(ns.settings, generate(plan))
    await wait_for_count(lambda: applied_count(conn), target, 120.0, pipeline.services())


async def end_to_end(
    ns: Namespace,
    pipeline: Pipeline,
    conn: asyncpg.Connection,
    chunks: Chunks,
    events: int,
) -> EndToEnd:
    groups = process_groups(pipeline.services(), ns.database)
    target = await applied_count(conn) + events
    meter = CpuMeter(groups)
    started = time.monotonic()
    watcher = asyncio.create_task(
        wait_for_count(lambda: applied_count(conn), target, patience(events), pipeline.services())
    )
    try:
        await publish(ns.settings, chunks)
        reached = await watcher
    finally:
        watcher.cancel()
    return EndToEnd(StageFigure.of(events, reached.at - started), meter.used())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
