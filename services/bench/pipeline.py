"""The whole pipeline in the `main` namespace: pricing, projector and api as child processes,
and the end-to-end run timed from the first publish to the last debit applied in PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg

import services
from services.bench.figures import StageFigure
from services.bench.namespace import Namespace
from services.bench.processes import Service
from services.bench.progress import applied_count, patience, wait_for_count
from services.bench.resources import (
    CpuMeter,
    ProcessGroup,
    children_of,
    cmdline,
    pid_from_file,
)
from services.bench.stages import Chunks, generate, publish
from services.gateway.traffic import TrafficPlan

# Events on accounts of their own before the clock starts: every consumer has joined its group
# and every connection is open, so the timed run measures work, not startup.
WARMUP_EVENTS = 200
REPO = Path(services.__file__).resolve().parent.parent


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
    groups = process_groups(pipeline, ns.database)
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


def local_dir() -> Path:
    """Where `make up` keeps the native Kafka's and PostgreSQL's pid files (infra/*.sh)."""
    return Path(os.environ.get("LEDGER_LOCAL_DIR", REPO / ".local"))


def process_groups(pipeline: Pipeline, database: str) -> list[ProcessGroup]:
    local = local_dir()
    groups = [ProcessGroup(s.name, _pid_of(s)) for s in pipeline.services()]
    groups.append(ProcessGroup("bench (publisher)", lambda: [os.getpid()]))
    kafka = pid_from_file(local / "kafka.pid")
    if kafka is not None:
        groups.append(ProcessGroup("kafka", lambda: [kafka]))
    postmaster = pid_from_file(local / "pg-data" / "postmaster.pid")
    if postmaster is not None:
        groups.append(ProcessGroup("postgresql", lambda: _postgres_pids(postmaster, database)))
    return groups


def _pid_of(service: Service) -> Callable[[], list[int]]:
    return lambda: [service.pid]


def _postgres_pids(postmaster: int, database: str) -> list[int]:
    """The postmaster, its background processes (WAL writer, checkpointer...) and the backends
    of the bench's database; backends of other databases belong to other users of the
    server and are left out."""
    pids = [postmaster]
    for pid in children_of(postmaster):
        line = cmdline(pid)
        is_backend = "(" in line or "[local]" in line
        if not is_backend or f" {database} " in line:
            pids.append(pid)
    return pids


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
