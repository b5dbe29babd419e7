"""The processes a phase's CPU is charged to: the bench's services, the bench itself, and the
native Kafka broker and PostgreSQL server `make up` started (found by their pid files)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from benchmarks.processes import Service
from benchmarks.resources import ProcessGroup, children_of, cmdline, pid_from_file
from services.common.settings import load_settings

REPO = Path(__file__).resolve().parent.parent


def local_dir() -> Path:
    """Where `make up` keeps the native Kafka's and PostgreSQL's pid files (infra/*.sh)."""
    return load_settings().ledger_local_dir or REPO / ".local"


def process_groups(services: Sequence[Service], database: str) -> list[ProcessGroup]:
    local = local_dir()
    groups = [ProcessGroup(s.name, _pid_of(s)) for s in services]
    groups.append(ProcessGroup("bench (publisher)", lambda: [os.getpid()]))
    kafka = pid_from_file(local / "kafka.pid")
    if kafka is not None:
        groups.append(ProcessGroup("kafka", lambda: [kafka]))
    # infra/postgres.sh keeps its cluster in postgres/data; pg-data was the older place.
    found = (pid_from_file(local / d / "postmaster.pid") for d in ("postgres/data", "pg-data"))
    postmaster = next((pid for pid in found if pid is not None), None)
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


async def settle_disk() -> None:
    """Writes the page cache's dirty pages out now (os.sync).

    The kernel writes a page back about 30 s after it was dirtied (vm.dirty_expire_centisecs).
    Without this, the gigabyte of log segments and tables one phase writes is written back
    in the middle of the next phase, and a PostgreSQL commit waits for that disk meanwhile:
    measured as a stall of 250-350 ms in the freshness phase, at the instant the kernel's
    dirty pages fell from about 1 GB to 20 MB. Each phase is measured on a settled disk.
    """
    await asyncio.to_thread(os.sync)
